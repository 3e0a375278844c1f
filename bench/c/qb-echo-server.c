/*
 * qb-echo-server.c -- libqb C baseline server for the qbipc benchmarks.
 *
 * A single-threaded qb_loop server built only on the public libqb API
 * (qbipcs.h, qbloop.h, qblog.h).  It is the reference point the TypeScript
 * server is measured against, so the hot path does as little as possible:
 * the echo response is sent with qb_ipcs_response_sendv() whose payload
 * iovec points straight into the request (which libqb hands us in place),
 * and nothing is allocated per message.
 *
 * Application protocol (host byte order):
 *   request  = struct qb_ipc_request_header {id@0, size@8}            (16 B)
 *              + payload
 *   response = struct qb_ipc_response_header {id@0, size@8, error@16} (24 B)
 *              + payload
 *
 *   id 1 ECHO   -> id 1, error 0, size 24 + n, the request payload.
 *   id 2 EVENTS -> payload {u32 count, u32 len}.  Answer: bare response
 *                  (id 2, error 0, size 24); then `count` events: event k
 *                  has id 3, error k, size 24 + len and payload byte
 *                  j = (k + j) & 0xff.  Events that do not fit in the event
 *                  channel are retried from the loop (first as loop jobs,
 *                  then from a 1 ms timer).  A new EVENTS request replaces
 *                  any events still pending on that connection.
 *                  Payload shorter than 8 bytes -> error -EINVAL;
 *                  24 + len larger than the connection buffer -> -EMSGSIZE.
 *   other ids   -> same id, size 24, error -EINVAL.
 *
 * Responses that do not fit in the response channel (-EAGAIN: the client
 * keeps more requests in flight than the response ring can hold) are not
 * lost: they are copied into a per-connection backlog (a buffer that only
 * grows, so no per-message allocation in steady state) and flushed, in
 * order, before any later response of that connection.
 *
 * Usage: qb-echo-server -n NAME [-t shm|socket] [-r fast|normal|slow]
 *   -t  transport chosen by the server (default shm)
 *   -r  qb_ipcs_request_rate_limit level (default normal = libqb default:
 *       5 requests per dispatch; fast = 50; slow = 1)
 *
 * stdout: "ready pid=P" once qb_ipcs_run() succeeded (flushed);
 *         "rate limit OFF" / "rate limit NORMAL" after SIGUSR1 / SIGUSR2 was applied;
 *         "rusage user_us=U sys_us=S maxrss_kb=M" at exit.
 * SIGTERM / SIGINT: leave the loop, qb_ipcs_destroy() (removes the /dev/shm
 * objects of every connection), print the rusage line, exit 0.
 *
 * Build: cc -O2 -Wall -Wextra $(pkg-config --cflags --libs libqb) \
 *           -o qb-echo-server qb-echo-server.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <qb/qbdefs.h>
#include <qb/qbipcs.h>
#include <qb/qbloop.h>
#include <qb/qblog.h>

enum { MSG_ECHO = 1, MSG_EVENTS = 2, MSG_EVENT = 3 };

/* After this many fruitless retry jobs in a row, fall back to a timer. */
#define RETRY_JOBS_MAX  64
#define RETRY_TIMER_NS  (1000ULL * 1000ULL)	/* 1 ms */
/* A client that lets more than this pile up in its backlog is dropped. */
#define BACKLOG_LIMIT   (256u * 1024u * 1024u)

struct conn {
	qb_ipcs_connection_t *qc;

	/* Response backlog: records of {u32 len, u32 pad, bytes[len]},
	 * each record padded to a multiple of 8 bytes. */
	char *bl;
	size_t bl_head;
	size_t bl_tail;
	size_t bl_cap;

	/* Pending events. */
	uint32_t ev_next;
	uint32_t ev_total;
	uint32_t ev_len;

	/* Retry scheduling. */
	int job_armed;
	int timer_armed;
	unsigned fruitless;
	qb_loop_timer_handle timer;
};

static qb_loop_t *loop;
static qb_ipcs_service_t *service;
static enum qb_loop_priority retry_prio = QB_LOOP_MED;

/* Event payload source: byte i = i & 0xff.  Event k with length len uses
 * pattern + (k & 0xff), so no per-event fill or allocation is needed. */
static unsigned char *pattern;
static size_t pattern_len;

static int
ensure_pattern(size_t len)
{
	size_t need = len + 256, i;
	unsigned char *p;

	if (need <= pattern_len) {
		return 0;
	}
	p = realloc(pattern, need);
	if (p == NULL) {
		return -ENOMEM;
	}
	for (i = pattern_len; i < need; i++) {
		p[i] = (unsigned char)(i & 0xff);
	}
	pattern = p;
	pattern_len = need;
	return 0;
}

static int
is_busy(ssize_t rc)
{
	return rc == -EAGAIN || rc == -ETIMEDOUT || rc == -ENOBUFS;
}

/* Errors that just mean "the client has gone": not worth a message. */
static int
is_gone(ssize_t rc)
{
	return rc == -EPIPE || rc == -ENOTCONN || rc == -ECONNREFUSED ||
	       rc == -ECONNRESET || rc == -ESHUTDOWN;
}

/* ---------------------------------------------------------------- glue */

static int32_t
glue_job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(loop, p, data, fn);
}

static int32_t
glue_poll_add(enum qb_loop_priority p, int32_t fd, int32_t events,
	      void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(loop, p, fd, events, data, fn);
}

static int32_t
glue_poll_mod(enum qb_loop_priority p, int32_t fd, int32_t events,
	      void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(loop, p, fd, events, data, fn);
}

static int32_t
glue_poll_del(int32_t fd)
{
	return qb_loop_poll_del(loop, fd);
}

/* ------------------------------------------------------ backlog + events */

static int
backlog_push(struct conn *cn, const struct iovec *iov, int n)
{
	size_t len = 0, rec, off;
	int i;

	for (i = 0; i < n; i++) {
		len += iov[i].iov_len;
	}
	rec = (8 + len + 7) & ~(size_t)7;
	if (cn->bl_head == cn->bl_tail) {
		cn->bl_head = cn->bl_tail = 0;
	}
	if (cn->bl_tail + rec > cn->bl_cap) {
		size_t live = cn->bl_tail - cn->bl_head;

		/* compact first, grow only if still needed */
		if (cn->bl_head > 0) {
			memmove(cn->bl, cn->bl + cn->bl_head, live);
			cn->bl_head = 0;
			cn->bl_tail = live;
		}
		if (live + rec > cn->bl_cap) {
			size_t cap = cn->bl_cap ? cn->bl_cap : 65536;
			char *nb;

			while (cap < live + rec) {
				cap *= 2;
			}
			if (cap > BACKLOG_LIMIT) {
				return -ENOBUFS;
			}
			nb = realloc(cn->bl, cap);
			if (nb == NULL) {
				return -ENOMEM;
			}
			cn->bl = nb;
			cn->bl_cap = cap;
		}
	}
	off = cn->bl_tail;
	{
		uint32_t l32 = (uint32_t)len;

		memcpy(cn->bl + off, &l32, sizeof(l32));
	}
	off += 8;
	for (i = 0; i < n; i++) {
		if (iov[i].iov_len > 0) {
			memcpy(cn->bl + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
	}
	cn->bl_tail += rec;
	return 0;
}

/* Returns 1 if something is still pending, 0 if all done, <0 fatal. */
static int
flush_backlog(struct conn *cn, int *progress)
{
	while (cn->bl_head < cn->bl_tail) {
		uint32_t len;
		ssize_t rc;

		memcpy(&len, cn->bl + cn->bl_head, sizeof(len));
		rc = qb_ipcs_response_send(cn->qc, cn->bl + cn->bl_head + 8, len);
		if (is_busy(rc)) {
			return 1;
		}
		if (rc < 0) {
			cn->bl_head = cn->bl_tail = 0;
			return (int)rc;
		}
		*progress = 1;
		cn->bl_head += (8 + (size_t)len + 7) & ~(size_t)7;
	}
	cn->bl_head = cn->bl_tail = 0;
	return 0;
}

static int
pump_events(struct conn *cn, int *progress)
{
	struct qb_ipc_response_header hdr;
	struct iovec iov[2];

	memset(&hdr, 0, sizeof(hdr));
	hdr.id = MSG_EVENT;
	hdr.size = (int32_t)(sizeof(hdr) + cn->ev_len);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_len = cn->ev_len;

	while (cn->ev_next < cn->ev_total) {
		ssize_t rc;

		hdr.error = (int32_t)cn->ev_next;
		iov[1].iov_base = pattern + (cn->ev_next & 0xff);
		rc = qb_ipcs_event_sendv(cn->qc, iov, cn->ev_len ? 2 : 1);
		if (is_busy(rc)) {
			return 1;
		}
		if (rc < 0) {
			if (!is_gone(rc)) {
				fprintf(stderr, "qb-echo-server: event_sendv: "
					"%s\n", strerror((int)-rc));
			}
			cn->ev_total = cn->ev_next;
			return (int)rc;
		}
		*progress = 1;
		cn->ev_next++;
	}
	return 0;
}

static void retry_job(void *data);

static void
schedule_retry(struct conn *cn)
{
	if (cn->job_armed || cn->timer_armed) {
		return;
	}
	if (cn->fruitless < RETRY_JOBS_MAX) {
		if (qb_loop_job_add(loop, retry_prio, cn, retry_job) == 0) {
			cn->job_armed = 1;
			return;
		}
	}
	if (qb_loop_timer_add(loop, retry_prio, RETRY_TIMER_NS, cn,
			      retry_job, &cn->timer) == 0) {
		cn->timer_armed = 1;
	}
}

/* Flush whatever is pending; schedule another attempt if still blocked. */
static void
service_pending(struct conn *cn)
{
	int progress = 0, rb, re;

	rb = flush_backlog(cn, &progress);
	re = pump_events(cn, &progress);
	if (rb < 0 && !is_gone(rb)) {
		fprintf(stderr, "qb-echo-server: response_send: %s\n",
			strerror(-rb));
	}
	if (rb == 1 || re == 1) {
		cn->fruitless = progress ? 0 : cn->fruitless + 1;
		schedule_retry(cn);
	} else {
		cn->fruitless = 0;
	}
}

static void
retry_job(void *data)
{
	struct conn *cn = data;

	cn->job_armed = 0;
	cn->timer_armed = 0;
	service_pending(cn);
}

/* ------------------------------------------------------------- handlers */

static int32_t
on_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
	(void)c;
	(void)uid;
	(void)gid;
	return 0;
}

static void
on_created(qb_ipcs_connection_t *c)
{
	struct conn *cn = calloc(1, sizeof(*cn));

	if (cn == NULL) {
		fprintf(stderr, "qb-echo-server: out of memory, dropping client\n");
		qb_ipcs_disconnect(c);
		return;
	}
	cn->qc = c;
	qb_ipcs_context_set(c, cn);
}

static int32_t
on_closed(qb_ipcs_connection_t *c)
{
	(void)c;
	return 0;
}

static void
on_destroyed(qb_ipcs_connection_t *c)
{
	struct conn *cn = qb_ipcs_context_get(c);

	if (cn == NULL) {
		return;
	}
	if (cn->job_armed) {
		qb_loop_job_del(loop, retry_prio, cn, retry_job);
	}
	if (cn->timer_armed) {
		qb_loop_timer_del(loop, cn->timer);
	}
	qb_ipcs_context_set(c, NULL);
	free(cn->bl);
	free(cn);
}

/* Send (or queue) one response; keeps per-connection order.
 * Returns -1 if the connection was dropped, else 0. */
static int
respond(qb_ipcs_connection_t *c, struct conn *cn, const struct iovec *iov,
	int n)
{
	ssize_t rc;

	if (cn != NULL && cn->bl_head != cn->bl_tail) {
		rc = -EAGAIN;	/* older responses are still queued */
	} else {
		rc = qb_ipcs_response_sendv(c, iov, (size_t)n);
	}
	if (rc >= 0) {
		return 0;
	}
	if (is_busy(rc) && cn != NULL) {
		int err = backlog_push(cn, iov, n);

		if (err < 0) {
			fprintf(stderr, "qb-echo-server: response backlog: %s; "
				"disconnecting client\n", strerror(-err));
			qb_ipcs_disconnect(c);
			return -1;
		}
		if (!cn->job_armed && !cn->timer_armed) {
			service_pending(cn);
		}	/* else: a retry is already scheduled */
		return 0;
	}
	if (!is_gone(rc)) {
		fprintf(stderr, "qb-echo-server: response_sendv: %s\n",
			strerror((int)-rc));
	}
	return 0;
}

static int32_t
on_msg(qb_ipcs_connection_t *c, void *data, size_t size)
{
	struct qb_ipc_request_header req;	/* the ring only guarantees
						 * 4-byte alignment: copy */
	struct conn *cn = qb_ipcs_context_get(c);
	struct qb_ipc_response_header hdr;
	struct iovec iov[2];
	size_t plen;

	hdr.size = (int32_t)sizeof(hdr);
	hdr.error = 0;
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);

	if (size < sizeof(req)) {
		/* cannot even read an id: answer -EINVAL with id 0 */
		hdr.id = 0;
		hdr.error = -EINVAL;
		respond(c, cn, iov, 1);
		return 0;
	}
	memcpy(&req, data, sizeof(req));
	hdr.id = req.id;
	plen = size - sizeof(req);

	if (req.id == MSG_ECHO) {
		hdr.size = (int32_t)(sizeof(hdr) + plen);
		iov[1].iov_base = (char *)data + sizeof(req);
		iov[1].iov_len = plen;
		respond(c, cn, iov, plen ? 2 : 1);
		return 0;
	}

	if (req.id == MSG_EVENTS) {
		uint32_t args[2];
		int32_t bufsz = qb_ipcs_connection_get_buffer_size(c);

		if (plen < sizeof(args)) {
			hdr.error = -EINVAL;
			respond(c, cn, iov, 1);
			return 0;
		}
		memcpy(args, (const char *)data + sizeof(req), sizeof(args));
		if ((uint64_t)args[1] + sizeof(hdr) > (uint64_t)(bufsz > 0 ? bufsz : 0)) {
			hdr.error = -EMSGSIZE;
			respond(c, cn, iov, 1);
			return 0;
		}
		if (cn == NULL || ensure_pattern(args[1]) < 0) {
			hdr.error = -ENOMEM;
			respond(c, cn, iov, 1);
			return 0;
		}
		if (respond(c, cn, iov, 1) < 0) {
			return 0;
		}
		cn->ev_next = 0;
		cn->ev_total = args[0];
		cn->ev_len = args[1];
		service_pending(cn);
		return 0;
	}

	hdr.error = -EINVAL;
	respond(c, cn, iov, 1);
	return 0;
}

/* SIGUSR1/SIGUSR2 switch the rate limit to OFF/NORMAL (the tests' flow-control
 * peer) and say so once applied; SIGTERM/SIGINT stop the loop. */
static int32_t
on_signal(int32_t sig, void *data)
{
	(void)data;
	if (sig == SIGUSR1 || sig == SIGUSR2) {
		qb_ipcs_request_rate_limit(service, sig == SIGUSR1 ? QB_IPCS_RATE_OFF : QB_IPCS_RATE_NORMAL);
		printf("rate limit %s\n", sig == SIGUSR1 ? "OFF" : "NORMAL");
		fflush(stdout);
		return 0;
	}
	qb_loop_stop(loop);
	return 0;
}

/* ----------------------------------------------------------------- main */

static void
usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s -n NAME [-t shm|socket] [-r fast|normal|slow] [-p PRIO]\n"
		"  -p PRIO  run at SCHED_RR priority PRIO (1-99), as corosync runs\n",
		argv0);
	exit(2);
}

int
main(int argc, char **argv)
{
	struct qb_ipcs_service_handlers sh = {
		.connection_accept = on_accept,
		.connection_created = on_created,
		.msg_process = on_msg,
		.connection_closed = on_closed,
		.connection_destroyed = on_destroyed,
	};
	struct qb_ipcs_poll_handlers ph = {
		.job_add = glue_job_add,
		.dispatch_add = glue_poll_add,
		.dispatch_mod = glue_poll_mod,
		.dispatch_del = glue_poll_del,
	};
	enum qb_ipc_type type = QB_IPC_SHM;
	enum qb_ipcs_rate_limit rate = QB_IPCS_RATE_NORMAL;
	const char *name = NULL;
	struct rusage ru;
	int32_t rc;
	int rt_priority = 0;
	int opt;

	while ((opt = getopt(argc, argv, "n:t:r:p:h")) != -1) {
		switch (opt) {
		case 'n':
			name = optarg;
			break;
		case 't':
			if (strcmp(optarg, "shm") == 0) {
				type = QB_IPC_SHM;
			} else if (strcmp(optarg, "socket") == 0) {
				type = QB_IPC_SOCKET;
			} else {
				usage(argv[0]);
			}
			break;
		case 'r':
			if (strcmp(optarg, "fast") == 0) {
				rate = QB_IPCS_RATE_FAST;
			} else if (strcmp(optarg, "normal") == 0) {
				rate = QB_IPCS_RATE_NORMAL;
			} else if (strcmp(optarg, "slow") == 0) {
				rate = QB_IPCS_RATE_SLOW;
			} else {
				usage(argv[0]);
			}
			break;
		case 'p':
			rt_priority = atoi(optarg);
			if (rt_priority < 1 || rt_priority > 99) {
				usage(argv[0]);
			}
			break;
		default:
			usage(argv[0]);
		}
	}
	if (name == NULL || optind != argc) {
		usage(argv[0]);
	}
	if (rt_priority > 0) {
		/* As corosync does: warn and go on at normal priority when refused. */
		struct sched_param sp = { .sched_priority = rt_priority };

		if (sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp) != 0) {
			fprintf(stderr, "qb-echo-server: SCHED_RR priority %d: %s\n",
				rt_priority, strerror(errno));
		}
	}
	retry_prio = rate == QB_IPCS_RATE_FAST ? QB_LOOP_HIGH :
		     rate == QB_IPCS_RATE_SLOW ? QB_LOOP_LOW : QB_LOOP_MED;

	signal(SIGPIPE, SIG_IGN);

	/* libqb logs to syslog by default; keep the hot paths quiet. */
	qb_log_init("qb-echo-server", LOG_USER, LOG_ERR);
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_FALSE);

	loop = qb_loop_create();
	if (loop == NULL) {
		fprintf(stderr, "qb-echo-server: qb_loop_create: %s\n",
			strerror(errno));
		return 1;
	}
	service = qb_ipcs_create(name, 0, type, &sh);
	if (service == NULL) {
		fprintf(stderr, "qb-echo-server: qb_ipcs_create: %s\n",
			strerror(errno));
		return 1;
	}
	qb_ipcs_poll_handlers_set(service, &ph);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGTERM, NULL, on_signal, NULL);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGINT, NULL, on_signal, NULL);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGUSR1, NULL, on_signal, NULL);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGUSR2, NULL, on_signal, NULL);
	rc = qb_ipcs_run(service);
	if (rc != 0) {
		fprintf(stderr, "qb-echo-server: qb_ipcs_run(\"%s\"): %s\n",
			name, strerror(-rc));
		qb_ipcs_destroy(service);
		qb_loop_destroy(loop);
		return 1;
	}
	qb_ipcs_request_rate_limit(service, rate);

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);

	qb_loop_run(loop);

	qb_ipcs_destroy(service);
	qb_loop_destroy(loop);
	qb_log_fini();
	free(pattern);

	getrusage(RUSAGE_SELF, &ru);
	printf("rusage user_us=%lld sys_us=%lld maxrss_kb=%ld\n",
	       (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec,
	       ru.ru_maxrss);
	fflush(stdout);
	return 0;
}
