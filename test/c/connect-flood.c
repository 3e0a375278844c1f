/*
 * connect-flood.c -- many stock libqb clients connecting at once, for the
 * qbipc tests of servers short of file descriptors or at a connection limit.
 *
 *   connect-flood -n NAME -c CLIENTS [-m MAXMSG] [-t TIMEOUT_MS] [-k]
 *
 * Forks CLIENTS processes. Each one calls qb_ipcc_connect(NAME, MAXMSG) and,
 * once connected, makes one echo round trip (id 1, 16 payload bytes, answered
 * by qb-echo-server's protocol), reports the outcome to the parent, and then
 * holds its connection until the parent has heard from every client, so the
 * connections pile up. Then they all disconnect (-k: they _exit without
 * disconnecting, as killed clients would).
 *
 * stdout, one line:
 *   ok clients=C served=S refused=R failed=F errnos=E1:N1,E2:N2
 *   served  connected and echoed; refused: qb_ipcc_connect failed (its errno
 *   counted in errnos); failed: connected but the round trip did not verify.
 * Exit 0 when every client reported. Children die with the parent
 * (PR_SET_PDEATHSIG), so a test that kills the parent by pid ends them all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <qb/qbdefs.h>
#include <qb/qbipcc.h>

#define ID_ECHO 1
#define PAYLOAD 16
#define MAX_ERRNO 512

struct report {
	int32_t status; /* 0 served, > 0 connect errno, < 0 -(round-trip errno) or -1000 mismatch */
};

static int echo_once(qb_ipcc_connection_t *c, int timeout_ms)
{
	unsigned char req[sizeof(struct qb_ipc_request_header) + PAYLOAD];
	unsigned char resp[4096];
	struct qb_ipc_request_header hdr = { .id = ID_ECHO, .size = sizeof(req) };
	struct qb_ipc_response_header rh;
	struct iovec iov = { req, sizeof(req) };
	ssize_t rc;
	int i;

	memcpy(req, &hdr, sizeof(hdr));
	for (i = 0; i < PAYLOAD; i++) {
		req[sizeof(hdr) + i] = (unsigned char)(getpid() + i);
	}
	rc = qb_ipcc_sendv_recv(c, &iov, 1, resp, sizeof(resp), timeout_ms);
	if (rc < 0) {
		return (int)rc;
	}
	memcpy(&rh, resp, sizeof(rh));
	if (rc != (ssize_t)(sizeof(rh) + PAYLOAD) || rh.id != ID_ECHO || rh.error != 0 ||
	    memcmp(resp + sizeof(rh), req + sizeof(hdr), PAYLOAD) != 0) {
		return -1000;
	}
	return 0;
}

static void child(const char *name, size_t maxmsg, int timeout_ms, int report_fd, int barrier_fd, int killed)
{
	struct report r = { 0 };
	qb_ipcc_connection_t *c;
	char byte;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1) {
		_exit(1);
	}
	c = qb_ipcc_connect(name, maxmsg);
	if (c == NULL) {
		r.status = errno > 0 ? errno : EIO;
	} else {
		r.status = echo_once(c, timeout_ms);
	}
	if (write(report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
		_exit(2);
	}
	if (c == NULL) {
		_exit(0);
	}
	/* Hold the connection until the parent closes the barrier (EOF). */
	while (read(barrier_fd, &byte, 1) < 0 && errno == EINTR) {
	}
	if (killed) {
		_exit(0);
	}
	qb_ipcc_disconnect(c);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *name = NULL;
	long clients = 100;
	size_t maxmsg = 12328;
	int timeout_ms = 10000;
	int killed = 0;
	int report_pipe[2], barrier_pipe[2];
	static long errnos[MAX_ERRNO];
	long served = 0, refused = 0, failed = 0, heard = 0, i;
	int opt, first = 1;

	while ((opt = getopt(argc, argv, "n:c:m:t:k")) != -1) {
		switch (opt) {
		case 'n': name = optarg; break;
		case 'c': clients = strtol(optarg, NULL, 10); break;
		case 'm': maxmsg = (size_t)strtoul(optarg, NULL, 10); break;
		case 't': timeout_ms = (int)strtol(optarg, NULL, 10); break;
		case 'k': killed = 1; break;
		default:
			fprintf(stderr, "usage: connect-flood -n NAME -c CLIENTS [-m MAXMSG] [-t TIMEOUT_MS] [-k]\n");
			return 2;
		}
	}
	if (name == NULL || clients < 1) {
		fprintf(stderr, "connect-flood: -n NAME and -c CLIENTS >= 1 are required\n");
		return 2;
	}
	if (pipe(report_pipe) < 0 || pipe(barrier_pipe) < 0) {
		perror("connect-flood: pipe");
		return 1;
	}
	for (i = 0; i < clients; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("connect-flood: fork");
			return 1;
		}
		if (pid == 0) {
			close(report_pipe[0]);
			close(barrier_pipe[1]);
			child(name, maxmsg, timeout_ms, report_pipe[1], barrier_pipe[0], killed);
		}
	}
	close(report_pipe[1]);
	close(barrier_pipe[0]);
	while (heard < clients) {
		struct report r;
		ssize_t n = read(report_pipe[0], &r, sizeof(r));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n != (ssize_t)sizeof(r)) {
			break; /* every writer gone: a child died before reporting */
		}
		heard++;
		if (r.status == 0) {
			served++;
		} else if (r.status > 0) {
			refused++;
			errnos[r.status < MAX_ERRNO ? r.status : 0]++;
		} else {
			failed++;
		}
	}
	close(barrier_pipe[1]);
	while (wait(NULL) > 0 || errno == EINTR) {
	}
	printf("%s clients=%ld served=%ld refused=%ld failed=%ld errnos=", heard == clients ? "ok" : "err", clients, served, refused, failed);
	for (i = 0; i < MAX_ERRNO; i++) {
		if (errnos[i] > 0) {
			printf("%s%ld:%ld", first ? "" : ",", i, errnos[i]);
			first = 0;
		}
	}
	printf("%s\n", first ? "none" : "");
	return heard == clients ? 0 : 1;
}
