/*
 * manyconn.c -- many stock libqb client connections from one process, for the
 * tests of the server's SIGBUS guard at scale.
 *
 * Usage: manyconn NAME COUNT TRUNCATE [MAXMSG]
 *
 *  1. Opens up to COUNT SHM connections to NAME (qb_ipcc_connect), stopping at
 *     the first refusal.
 *  2. Truncates to 0 bytes the event ring data file of TRUNCATE of them: the
 *     connection directories of this process (/dev/shm/qb-SPID-MYPID-FD-*),
 *     ordered by the server's fd, evenly spread and always including the last
 *     one opened (the mapping the server registered last).
 *  3. Sends every connection an events request (id 2: one 16-byte event). The
 *     server answers, then writes the event: into a truncated file, that write
 *     faults, and the server must drop that connection and only that one. This
 *     process never reads an event ring, so it never touches a truncated file.
 *  4. Waits (at most 20 s) until TRUNCATE connections have hung up, then makes
 *     one verified echo round trip (id 1) on each connection still up.
 *
 * Output (stdout), one line each:
 *   opened n=N [refused_errno=E]
 *   result opened=N truncated=T unanswered=U dropped=D served=S failed=F ms=T
 *          open_ms=.. ask_ms=.. drop_ms=.. echo_ms=..
 * unanswered: events requests whose bare response did not come (the server
 * answers before it writes the event, so even the dropped ones get it);
 * ms: the whole run, then each of steps 1-4.
 * Exit status: 0 when it ran to the end, 1 on setup failure, 2 on usage
 * errors, 3 when an access of this process raised SIGBUS.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

#include <qb/qbipcc.h>

#define ID_ECHO		1
#define ID_EVENTS	2
#define REQ_HDR		16
#define TIMEOUT_MS	5000
#define DROP_WAIT_MS	20000

struct dir_entry {
	long server_fd;
	char name[256];
};

static void on_sigbus(int signo)
{
	static const char msg[] = "manyconn: SIGBUS in this process\n";

	(void)signo;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(3);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int by_server_fd(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;

	return (x->server_fd > y->server_fd) - (x->server_fd < y->server_fd);
}

/* This process's connection directories, ordered by the server's setup fd (the order they were accepted in). */
static struct dir_entry *own_directories(size_t *count)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	struct dir_entry *list = NULL;
	size_t n = 0, cap = 0;
	long me = (long)getpid();

	if (d == NULL) {
		perror("manyconn: /dev/shm");
		exit(1);
	}
	while ((e = readdir(d)) != NULL) {
		long server, client, fd;
		int used = 0;

		if (sscanf(e->d_name, "qb-%ld-%ld-%ld-%n", &server, &client, &fd, &used) != 3 || used == 0 || client != me) {
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			list = realloc(list, cap * sizeof(*list));
			if (list == NULL) {
				fprintf(stderr, "manyconn: out of memory\n");
				exit(1);
			}
		}
		list[n].server_fd = fd;
		snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
		n++;
	}
	closedir(d);
	qsort(list, n, sizeof(*list), by_server_fd);
	*count = n;
	return list;
}

/* One id-2 request asking for one 16-byte event; the bare response is read (1 when it came), the event is not. */
static int ask_for_event(qb_ipcc_connection_t *c)
{
	struct {
		struct qb_ipc_request_header hdr;
		uint32_t count, len;
	} req;
	char resp[4096];
	struct iovec iov = { &req, sizeof(req) };

	memset(&req, 0, sizeof(req));
	req.hdr.id = ID_EVENTS;
	req.hdr.size = sizeof(req);
	req.count = 1;
	req.len = 16;
	return qb_ipcc_sendv_recv(c, &iov, 1, resp, sizeof(resp), TIMEOUT_MS) == (ssize_t)sizeof(struct qb_ipc_response_header);
}

/* One verified echo round trip: 1 when the same id, size and payload came back. */
static int echo_once(qb_ipcc_connection_t *c, uint32_t seed)
{
	unsigned char req[REQ_HDR + 64], resp[4096];
	struct qb_ipc_request_header hdr;
	struct qb_ipc_response_header rh;
	struct iovec iov = { req, sizeof(req) };
	ssize_t rc;
	size_t j;

	memset(&hdr, 0, sizeof(hdr));
	hdr.id = ID_ECHO;
	hdr.size = sizeof(req);
	memcpy(req, &hdr, sizeof(hdr));
	for (j = REQ_HDR; j < sizeof(req); j++) {
		req[j] = (unsigned char)(seed * 31u + j);
	}
	rc = qb_ipcc_sendv_recv(c, &iov, 1, resp, sizeof(resp), TIMEOUT_MS);
	if (rc != (ssize_t)(sizeof(rh) + sizeof(req) - REQ_HDR)) {
		return 0;
	}
	memcpy(&rh, resp, sizeof(rh));
	return rh.id == ID_ECHO && rh.size == rc && rh.error == 0 &&
	       memcmp(resp + sizeof(rh), req + REQ_HDR, sizeof(req) - REQ_HDR) == 0;
}

int main(int argc, char **argv)
{
	const char *name;
	long count, truncate_n, maxmsg = 12328, opened = 0, i;
	qb_ipcc_connection_t **conns;
	struct pollfd *fds;
	struct dir_entry *dirs;
	size_t ndirs;
	long truncated = 0, unanswered = 0, dropped = 0, served = 0, failed = 0;
	int refused_errno = 0;
	uint64_t start, deadline, t_open, t_ask, t_drop;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: manyconn NAME COUNT TRUNCATE [MAXMSG]\n");
		return 2;
	}
	name = argv[1];
	count = strtol(argv[2], NULL, 0);
	truncate_n = strtol(argv[3], NULL, 0);
	if (argc == 5) {
		maxmsg = strtol(argv[4], NULL, 0);
	}
	if (count < 1 || truncate_n < 0 || truncate_n > count || maxmsg < 1) {
		fprintf(stderr, "usage: manyconn NAME COUNT TRUNCATE [MAXMSG]\n");
		return 2;
	}
	signal(SIGBUS, on_sigbus);
	signal(SIGPIPE, SIG_IGN);
	start = now_ms();
	conns = calloc((size_t)count, sizeof(*conns));
	fds = calloc((size_t)count, sizeof(*fds));
	if (conns == NULL || fds == NULL) {
		fprintf(stderr, "manyconn: out of memory\n");
		return 1;
	}

	for (opened = 0; opened < count; opened++) {
		conns[opened] = qb_ipcc_connect(name, (size_t)maxmsg);
		if (conns[opened] == NULL) {
			refused_errno = errno;
			break;
		}
	}
	t_open = now_ms();
	if (refused_errno != 0) {
		printf("opened n=%ld refused_errno=%d\n", opened, refused_errno);
	} else {
		printf("opened n=%ld\n", opened);
	}
	fflush(stdout);

	dirs = own_directories(&ndirs);
	if (truncate_n > (long)ndirs) {
		fprintf(stderr, "manyconn: %zu connection directories found, %ld to truncate\n", ndirs, truncate_n);
		return 1;
	}
	for (i = 0; i < truncate_n; i++) {
		/* Evenly spread, the last one opened always among them. */
		size_t k = ndirs - 1 - (size_t)(i * (long)ndirs / truncate_n);
		char path[512];

		snprintf(path, sizeof(path), "/dev/shm/%s/qb-event-%s-data", dirs[k].name, name);
		if (truncate(path, 0) < 0) {
			fprintf(stderr, "manyconn: truncate %s: %s\n", path, strerror(errno));
			return 1;
		}
		truncated++;
	}
	free(dirs);

	for (i = 0; i < opened; i++) {
		int fd = -1;

		if (!ask_for_event(conns[i])) {
			unanswered++;
		}
		if (qb_ipcc_fd_get(conns[i], &fd) != 0) {
			fd = -1;
		}
		fds[i].fd = fd;
		fds[i].events = 0;	/* hang-ups only: the event doorbells keep POLLIN up */
	}
	t_ask = now_ms();
	deadline = t_ask + DROP_WAIT_MS;
	while (dropped < truncated && now_ms() < deadline) {
		int n = poll(fds, (nfds_t)opened, (int)(deadline - now_ms()));

		if (n < 0 && errno != EINTR) {
			perror("manyconn: poll");
			return 1;
		}
		for (i = 0; i < opened && n > 0; i++) {
			if (fds[i].fd >= 0 && (fds[i].revents & (POLLHUP | POLLERR)) != 0) {
				fds[i].fd = -1;
				fds[i].revents = 0;
				dropped++;
			}
		}
	}
	t_drop = now_ms();
	for (i = 0; i < opened; i++) {
		if (fds[i].fd < 0) {
			continue;
		}
		if (echo_once(conns[i], (uint32_t)i)) {
			served++;
		} else {
			failed++;
		}
	}
	for (i = 0; i < opened; i++) {
		qb_ipcc_disconnect(conns[i]);
	}
	printf("result opened=%ld truncated=%ld unanswered=%ld dropped=%ld served=%ld failed=%ld ms=%llu open_ms=%llu "
	       "ask_ms=%llu drop_ms=%llu echo_ms=%llu\n", opened, truncated, unanswered, dropped, served, failed,
	       (unsigned long long)(now_ms() - start), (unsigned long long)(t_open - start),
	       (unsigned long long)(t_ask - t_open), (unsigned long long)(t_drop - t_ask),
	       (unsigned long long)(now_ms() - t_drop));
	free(conns);
	free(fds);
	return 0;
}
