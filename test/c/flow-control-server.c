/*
 * flow-control-server.c -- a libqb C echo server whose rate limit a test
 * switches at run time, for the qbipc conformance matrix (items 23 and 30 of
 * docs/wire.md §18: the qbipc client against libqb's own flow control).
 *
 * Public libqb API only (qbipcs.h, qbloop.h, qblog.h).
 *
 * Application protocol (host byte order):
 *   request  = struct qb_ipc_request_header {id@0, size@8} (16 B) + payload
 *   response = struct qb_ipc_response_header {id@0, size@8, error@16} (24 B)
 *              + payload
 *   id 1 ECHO  -> id 1, error 0, size 24 + n, the request payload.
 *   other ids  -> same id, size 24, error -EINVAL.
 *
 * Usage: flow-control-server -n NAME [-t shm|socket]
 * stdout, each line flushed:
 *   "ready pid=P"        once qb_ipcs_run() succeeded;
 *   "rate limit OFF"     after SIGUSR1 was handled: qb_ipcs_request_rate_limit(OFF)
 *                        has returned, so every current connection has flow
 *                        control on;
 *   "rate limit NORMAL"  after SIGUSR2 was handled (flow control off again).
 * SIGTERM / SIGINT: qb_ipcs_destroy() (removes every connection's files), exit 0.
 *
 * Signals reach the handlers through qb_loop (not in signal context), so the
 * handlers may print and call libqb.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <qb/qbdefs.h>
#include <qb/qbipcs.h>
#include <qb/qbloop.h>
#include <qb/qblog.h>

enum { MSG_ECHO = 1 };

static qb_loop_t *loop;
static qb_ipcs_service_t *service;

/* ---------------------------------------------------------------- glue */

static int32_t
glue_job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(loop, p, data, fn);
}

static int32_t
glue_dispatch_add(enum qb_loop_priority p, int32_t fd, int32_t events,
		  void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(loop, p, fd, events, data, fn);
}

static int32_t
glue_dispatch_mod(enum qb_loop_priority p, int32_t fd, int32_t events,
		  void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(loop, p, fd, events, data, fn);
}

static int32_t
glue_dispatch_del(int32_t fd)
{
	return qb_loop_poll_del(loop, fd);
}

/* ------------------------------------------------------------ handlers */

static int32_t
on_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
	return 0;
}

static void
on_created(qb_ipcs_connection_t *c)
{
}

static int32_t
on_closed(qb_ipcs_connection_t *c)
{
	return 0;
}

static void
on_destroyed(qb_ipcs_connection_t *c)
{
}

static int32_t
on_msg(qb_ipcs_connection_t *c, void *data, size_t size)
{
	const struct qb_ipc_request_header *req = data;
	struct qb_ipc_response_header hdr;
	struct iovec iov[2];
	size_t n;
	ssize_t rc;

	if (size < sizeof(*req)) {
		return 0;
	}
	n = size - sizeof(*req);
	memset(&hdr, 0, sizeof(hdr));
	hdr.id = req->id;
	if (req->id == MSG_ECHO) {
		hdr.size = (int32_t)(sizeof(hdr) + n);
		iov[0].iov_base = &hdr;
		iov[0].iov_len = sizeof(hdr);
		iov[1].iov_base = (char *)data + sizeof(*req);
		iov[1].iov_len = n;
		rc = qb_ipcs_response_sendv(c, iov, n > 0 ? 2 : 1);
	} else {
		hdr.size = sizeof(hdr);
		hdr.error = -EINVAL;
		rc = qb_ipcs_response_send(c, &hdr, sizeof(hdr));
	}
	if (rc < 0) {
		fprintf(stderr, "response send failed: %s\n", strerror((int)-rc));
	}
	return 0;
}

static int32_t
on_signal(int32_t sig, void *data)
{
	if (sig == SIGUSR1) {
		qb_ipcs_request_rate_limit(service, QB_IPCS_RATE_OFF);
		printf("rate limit OFF\n");
	} else if (sig == SIGUSR2) {
		qb_ipcs_request_rate_limit(service, QB_IPCS_RATE_NORMAL);
		printf("rate limit NORMAL\n");
	} else {
		qb_loop_stop(loop);
	}
	fflush(stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	struct qb_ipcs_service_handlers handlers = {
		.connection_accept = on_accept,
		.connection_created = on_created,
		.msg_process = on_msg,
		.connection_closed = on_closed,
		.connection_destroyed = on_destroyed,
	};
	struct qb_ipcs_poll_handlers poll_handlers = {
		.job_add = glue_job_add,
		.dispatch_add = glue_dispatch_add,
		.dispatch_mod = glue_dispatch_mod,
		.dispatch_del = glue_dispatch_del,
	};
	enum qb_ipc_type type = QB_IPC_SHM;
	const char *name = NULL;
	int opt;
	int32_t rc;

	while ((opt = getopt(argc, argv, "n:t:")) != -1) {
		if (opt == 'n') {
			name = optarg;
		} else if (opt == 't' && strcmp(optarg, "shm") == 0) {
			type = QB_IPC_SHM;
		} else if (opt == 't' && strcmp(optarg, "socket") == 0) {
			type = QB_IPC_SOCKET;
		} else {
			name = NULL;
			break;
		}
	}
	if (name == NULL) {
		fprintf(stderr, "usage: %s -n NAME [-t shm|socket]\n", argv[0]);
		return 2;
	}

	qb_log_init("flow-control-server", LOG_USER, LOG_INFO);
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_FALSE);

	loop = qb_loop_create();
	service = qb_ipcs_create(name, 0, type, &handlers);
	if (loop == NULL || service == NULL) {
		fprintf(stderr, "create failed: %s\n", strerror(errno));
		return 1;
	}
	qb_ipcs_poll_handlers_set(service, &poll_handlers);
	rc = qb_ipcs_run(service);
	if (rc != 0) {
		fprintf(stderr, "qb_ipcs_run: %s\n", strerror(-rc));
		return 1;
	}
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGINT, NULL, on_signal, NULL);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGTERM, NULL, on_signal, NULL);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGUSR1, NULL, on_signal, NULL);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGUSR2, NULL, on_signal, NULL);

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	qb_loop_run(loop);

	qb_ipcs_destroy(service);
	qb_loop_destroy(loop);
	qb_log_fini();
	return 0;
}
