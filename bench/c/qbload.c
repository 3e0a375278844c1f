/*
 * qbload.c -- libqb C load client for the qbipc benchmarks.
 *
 * Uses only the public client API (qbipcc.h).  Talks the echo protocol of
 * qb-echo-server.c: request {id 1, size 16 + n} + n payload bytes, answered
 * by {id 1, size 24 + n, error 0} + the same payload.
 *
 * Usage:
 *   qbload -n NAME -c CLIENTS -s PAYLOAD_BYTES [-k ROUNDS | -T SECONDS]
 *          [-d DEPTH] [-m MAXMSG] [-w WARMUP_ROUNDS] [-t TIMEOUT_MS]
 *   qbload -n NAME --churn -c CLIENTS -T SECONDS
 *   qbload -n NAME --events -c CLIENTS -s EVENT_BYTES [-b BATCH] -T SECONDS
 *
 *   -c  number of client processes (fork), default 1
 *   -s  payload bytes per request (after the 16-byte header), default 64
 *   -k  round trips per client (default 10000 unless -T is given)
 *   -T  run each client for this many seconds instead (fractions allowed)
 *   -d  requests kept in flight per client, default 1.  1 = synchronous
 *       qb_ipcc_sendv_recv(); >1 = qb_ipcc_sendv() until DEPTH are
 *       outstanding (or the request ring is full), then qb_ipcc_recv() one,
 *       send one more, ...
 *   -m  max message size asked for in qb_ipcc_connect(); the value used is
 *       max(MAXMSG, payload + 64) (libqb itself raises it to >= 12328)
 *   -w  verified round trips per client before the barrier (not measured)
 *   -t  per-response receive timeout in ms (default 10000); a timeout is an
 *       error and ends that client
 *   --churn  every client loops { qb_ipcc_connect, one 64-byte round trip,
 *       qb_ipcc_disconnect } for -T seconds (default 5); latency figures are
 *       per whole cycle
 *   --events  every client loops { one EVENTS request (id 2, payload
 *       {u32 BATCH, u32 EVENT_BYTES}), then qb_ipcc_event_recv() of the
 *       BATCH events the server pushes }; "messages" counts events, the
 *       latency figures are per whole batch (request to its last event)
 *   -b  events per request in --events mode, default 64
 *
 * Each child connects, does its warm-up, reports "ready" to the parent and
 * blocks on a barrier pipe; the parent closes the pipe once every child is
 * ready, so all clients start together.  Each child measures the latency of
 * every message with CLOCK_MONOTONIC (synchronous: around the round trip;
 * pipelined: from its send to the matching receive) into a log-linear
 * histogram (exact below 256 ns, then 128 sub-buckets per power of two,
 * i.e. < 0.8 % relative error, up to ~17 s) and sends histogram, counters
 * and its end timestamp to the parent through a pipe.
 *
 * Every response is checked: length == 24 + n, header id == 1, header size
 * == length, error == 0, and the first and last payload byte, which carry a
 * per-message sequence tag.  Mismatches count as errors.
 *
 * stdout: ONE JSON line, e.g.
 *   {"clients":8,"size":64,"depth":1,"messages":400000,"errors":0,
 *    "seconds":1.234567,"msgs_per_sec":324000.0,"mb_per_sec":20.7,
 *    "p50_us":23.1,"p99_us":55.2,"p999_us":120.3,"max_us":900.4}
 *   seconds   = wall time from barrier release to the last client finishing
 *   mb_per_sec= messages * size / seconds / 1e6 (request payload, one way)
 *   churn adds "mode":"churn","connects":N,"connects_per_sec":R
 *   (size is then 64, depth 1, messages = completed cycles).
 *   events adds "mode":"events","batch":B (size = event payload bytes,
 *   messages = events received, mb_per_sec = event payload bytes).
 *   synchronous round trips (depth 1, not churn or events) add
 *   "stalled_share": the share of the clients' time spent in round trips
 *   of 1 ms or more (histogram bucket upper bounds; < 0.8 % high), over the
 *   sum of each client's own measuring time.  A round
 *   trip that slow is a stall (on a VM: the host not running the vCPU),
 *   not work; it tells how much of a rate the stalls took.
 * Exit status: 0 only if errors == 0 and every client succeeded; 2 if a
 * client could not connect (message with strerror on stderr); 1 otherwise.
 * SIGTERM/SIGINT to the parent kill the clients, which are always reaped.
 *
 * Build: cc -O2 -Wall -Wextra $(pkg-config --cflags libqb) -o qbload qbload.c \
 *           $(pkg-config --libs libqb)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <qb/qbdefs.h>
#include <qb/qbipcc.h>

#define MSG_ECHO 1
#define MSG_EVENTS 2
#define MSG_EVENT 3
#define REQ_HDR ((size_t)sizeof(struct qb_ipc_request_header))
#define RES_HDR ((size_t)sizeof(struct qb_ipc_response_header))

/* ---------------------------------------------------------- histogram */

#define H_LINEAR   256		/* exact buckets for 0..255 ns */
#define H_SUB      128		/* sub-buckets per power of two above */
#define H_TOP_BIT  34		/* values >= 2^34 ns (~17 s) are clamped */
#define H_BUCKETS  (H_LINEAR + (H_TOP_BIT - 8) * H_SUB)

struct hist {
	uint64_t count[H_BUCKETS];
	uint64_t n;
	uint64_t max;
};

static unsigned
h_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < H_LINEAR) {
		return (unsigned)v;
	}
	if (v >= (1ULL << H_TOP_BIT)) {
		v = (1ULL << H_TOP_BIT) - 1;
	}
	msb = 63u - (unsigned)__builtin_clzll(v);	/* >= 8 */
	shift = msb - 7u;				/* v >> shift in [128, 255] */
	return H_LINEAR + (shift - 1u) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* Highest value that maps to bucket i. */
static uint64_t
h_upper(unsigned i)
{
	unsigned k, shift;
	uint64_t low;

	if (i < H_LINEAR) {
		return i;
	}
	k = i - H_LINEAR;
	shift = k / H_SUB + 1u;
	low = (uint64_t)(k % H_SUB + H_SUB) << shift;
	return low + (1ULL << shift) - 1;
}

static inline void
h_record(struct hist *h, uint64_t v)
{
	h->count[h_index(v)]++;
	h->n++;
	if (v > h->max) {
		h->max = v;
	}
}

static uint64_t
h_percentile(const struct hist *h, double pct)
{
	uint64_t want, seen = 0, v;
	unsigned i;

	if (h->n == 0) {
		return 0;
	}
	want = (uint64_t)((pct / 100.0) * (double)h->n + 0.999999);
	if (want < 1) {
		want = 1;
	}
	if (want > h->n) {
		want = h->n;
	}
	for (i = 0; i < H_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want) {
			v = h_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

/* Round trips of at least this long count as stalls, not work. */
#define STALL_NS 1000000ULL

/* Share of `client_seconds` spent in round trips of STALL_NS or more. */
static double
stalled_share(const struct hist *h, double client_seconds)
{
	double stalled_ns = 0;
	unsigned i;

	for (i = 0; i < H_BUCKETS; i++) {
		if (h->count[i] != 0 && h_upper(i) >= STALL_NS) {
			stalled_ns += (double)h->count[i] * (double)h_upper(i);
		}
	}
	if (client_seconds <= 0) {
		return 0;
	}
	stalled_ns /= client_seconds * 1e9;
	return stalled_ns > 1 ? 1 : stalled_ns;
}

/* ------------------------------------------------------------ results */

struct result {
	uint32_t magic;
	int32_t status;		/* 0 ok, 1 failed */
	uint64_t messages;
	uint64_t errors;
	uint64_t connects;
	uint64_t t_start_ns;
	uint64_t t_end_ns;
	struct hist hist;
};
#define RESULT_MAGIC 0x71626c64u

enum { READY_OK = 0, READY_FAIL = 1, READY_NOCONN = 2 };

/* ------------------------------------------------------------ options */

struct opts {
	const char *name;
	long clients;
	size_t size;
	uint64_t rounds;
	double seconds;
	long depth;
	size_t maxmsg;
	uint64_t warmup;
	int32_t timeout_ms;
	int churn;
	int events;
	uint32_t batch;
};

static struct opts o = {
	.clients = 1, .size = 64, .rounds = 0, .seconds = 0, .depth = 1,
	.maxmsg = 0, .warmup = 0, .timeout_ms = 10000, .churn = 0,
	.events = 0, .batch = 64,
};

static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- client */

static int child_id;
static unsigned long reported_errors;

static void
report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
report_error(const char *fmt, ...)
{
	va_list ap;

	if (reported_errors++ >= 5) {
		return;	/* don't flood stderr */
	}
	fprintf(stderr, "qbload: client %d: ", child_id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct client {
	qb_ipcc_connection_t *c;
	unsigned char *req;	/* request header + payload, contiguous */
	size_t req_len;
	unsigned char *resp;
	size_t resp_cap;
	size_t size;
};

static qb_ipcc_connection_t *
connect_retry(const char *name, size_t maxmsg)
{
	qb_ipcc_connection_t *c;
	int tries = 0;

	/* libqb 2.0.6 fails the connect with EAGAIN when the handshake reply
	 * arrives split; that is transient, so retry it a few times. */
	for (;;) {
		c = qb_ipcc_connect(name, maxmsg);
		if (c != NULL || errno != EAGAIN || ++tries >= 20) {
			return c;
		}
		usleep(1000);
	}
}

/* Put the sequence tag of message `seq` into the request payload. */
static inline void
tag_request(struct client *cl, uint64_t seq)
{
	if (cl->size > 0) {
		cl->req[REQ_HDR] = (unsigned char)(seq & 0xff);
		cl->req[REQ_HDR + cl->size - 1] =
			(unsigned char)(((seq >> 8) ^ 0x5a) & 0xff);
		if (cl->size == 1) {
			cl->req[REQ_HDR] = (unsigned char)(seq & 0xff);
		}
	}
}

/* Check a response of length len for message seq; returns 0 if good. */
static int
check_response(struct client *cl, ssize_t len, uint64_t seq)
{
	const struct qb_ipc_response_header *h =
		(const struct qb_ipc_response_header *)cl->resp;
	unsigned char first = (unsigned char)(seq & 0xff);
	unsigned char last = (unsigned char)(((seq >> 8) ^ 0x5a) & 0xff);

	if (cl->size == 1) {
		last = first;
	}
	if ((size_t)len != RES_HDR + cl->size || h->id != MSG_ECHO ||
	    h->size != (int32_t)len || h->error != 0) {
		report_error("bad response to message %llu: len=%zd id=%d "
			     "size=%d error=%d (expected len %zu)",
			     (unsigned long long)seq, len, h->id, h->size,
			     h->error, RES_HDR + cl->size);
		return -1;
	}
	if (cl->size > 0 &&
	    (cl->resp[RES_HDR] != first ||
	     cl->resp[RES_HDR + cl->size - 1] != last)) {
		report_error("payload mismatch in response to message %llu",
			     (unsigned long long)seq);
		return -1;
	}
	return 0;
}

/*
 * Back-off while a send returns -EAGAIN: spin briefly, then yield the CPU
 * (the server may need this very core), then sleep.  Returns -1 once
 * TIMEOUT_MS have passed since the first -EAGAIN.
 */
static int
eagain_backoff(unsigned *spins, uint64_t *since)
{
	if (*spins == 0) {
		*since = now_ns();
	}
	(*spins)++;
	if (*spins <= 16) {
		return 0;
	}
	if (*spins <= 4096) {
		sched_yield();
	} else {
		usleep(50);
	}
	if ((*spins & 63) == 0 &&
	    now_ns() - *since > (uint64_t)o.timeout_ms * 1000000ULL) {
		return -1;
	}
	return 0;
}

/*
 * One synchronous round trip.  Returns 0 ok, 1 bad response (counted,
 * continue), -1 fatal.  -EAGAIN from qb_ipcc_sendv_recv means the request
 * was not sent: flow control, or -- with messages close to the buffer size --
 * the request ring still holds our previous request, because a libqb server
 * reclaims a request only after msg_process() (which already posted the
 * response) returns.  If the connection died while waiting for the response
 * libqb also reports -EAGAIN; the retry then fails with ENOTCONN.
 */
static ssize_t
send_recv(struct client *cl)
{
	struct iovec iov = { cl->req, cl->req_len };
	unsigned spins = 0;
	uint64_t since = 0;
	ssize_t rc;

	for (;;) {
		rc = qb_ipcc_sendv_recv(cl->c, &iov, 1, cl->resp, cl->resp_cap,
					o.timeout_ms);
		if (rc != -EAGAIN || eagain_backoff(&spins, &since) != 0) {
			return rc;
		}
	}
}

static int
round_trip(struct client *cl, uint64_t seq)
{
	ssize_t rc;

	tag_request(cl, seq);
	rc = send_recv(cl);
	if (rc < 0) {
		report_error("qb_ipcc_sendv_recv: %s", strerror((int)-rc));
		return -1;
	}
	return check_response(cl, rc, seq) == 0 ? 0 : 1;
}

/*
 * Connects and prepares a request of SIZE payload bytes; RECV_SIZE is the
 * largest payload the client must be able to receive (events mode: the
 * event payload).
 */
static int
client_setup(struct client *cl, size_t size, size_t recv_size)
{
	struct qb_ipc_request_header *rh;
	size_t big = size > recv_size ? size : recv_size;
	size_t maxmsg = o.maxmsg > big + 64 ? o.maxmsg : big + 64;
	int32_t bufsz;
	size_t j;

	memset(cl, 0, sizeof(*cl));
	cl->size = size;
	cl->c = connect_retry(o.name, maxmsg);
	if (cl->c == NULL) {
		int e = errno;

		report_error("qb_ipcc_connect(\"%s\", %zu) failed: %s "
			     "(errno %d)", o.name, maxmsg, strerror(e), e);
		return READY_NOCONN;
	}
	bufsz = qb_ipcc_get_buffer_size(cl->c);
	if (bufsz <= 0 || (size_t)bufsz < RES_HDR + big) {
		report_error("negotiated buffer %d too small for %zu-byte "
			     "payloads", bufsz, big);
		qb_ipcc_disconnect(cl->c);
		cl->c = NULL;
		return READY_FAIL;
	}
	cl->resp_cap = (size_t)bufsz;
	cl->req_len = REQ_HDR + size;
	cl->req = malloc(cl->req_len);
	cl->resp = malloc(cl->resp_cap);
	if (cl->req == NULL || cl->resp == NULL) {
		report_error("out of memory");
		return READY_FAIL;
	}
	memset(cl->req, 0, REQ_HDR);
	rh = (struct qb_ipc_request_header *)cl->req;
	rh->id = MSG_ECHO;
	rh->size = (int32_t)cl->req_len;
	for (j = 0; j < size; j++) {
		cl->req[REQ_HDR + j] = (unsigned char)((j * 31u + 7u) & 0xff);
	}
	return READY_OK;
}

static void
client_teardown(struct client *cl)
{
	if (cl->c != NULL) {
		qb_ipcc_disconnect(cl->c);
		cl->c = NULL;
	}
	free(cl->req);
	free(cl->resp);
	cl->req = cl->resp = NULL;
}

/* Synchronous mode (DEPTH 1). */
static int
run_sync(struct client *cl, struct result *r, uint64_t deadline)
{
	uint64_t seq = 0, t0, t1 = now_ns();

	for (;;) {
		int rc;

		if (deadline ? t1 >= deadline : seq >= o.rounds) {
			break;
		}
		t0 = now_ns();
		rc = round_trip(cl, o.warmup + seq);
		t1 = now_ns();
		if (rc < 0) {
			r->errors++;
			return -1;
		}
		if (rc > 0) {
			r->errors++;
		}
		h_record(&r->hist, t1 - t0);
		r->messages++;
		seq++;
	}
	return 0;
}

/*
 * qb_ipcc_recv() (or qb_ipcc_event_recv()) in slices of at most 500 ms: a
 * single long wait would not notice a dead server (libqb checks the
 * connection only when a wait times out), so a crash would cost the whole
 * timeout.
 */
static ssize_t
recv_sliced(struct client *cl,
	    ssize_t (*recv_fn)(qb_ipcc_connection_t *, void *, size_t, int32_t))
{
	int32_t left = o.timeout_ms;
	ssize_t rc;

	for (;;) {
		int32_t slice = left < 500 ? left : 500;

		rc = recv_fn(cl->c, cl->resp, cl->resp_cap, slice);
		if (rc != -ETIMEDOUT && rc != -EAGAIN) {
			return rc;
		}
		left -= slice;
		if (left <= 0) {
			return -ETIMEDOUT;
		}
	}
}

/* Pipelined mode (DEPTH > 1). */
static int
run_pipelined(struct client *cl, struct result *r, uint64_t deadline)
{
	size_t depth = (size_t)o.depth;
	uint64_t *sent_at = calloc(depth, sizeof(uint64_t));
	uint64_t next_send = 0, next_recv = 0, base = o.warmup, since = 0;
	unsigned spins = 0;
	int sending = 1, ret = 0;

	if (sent_at == NULL) {
		report_error("out of memory");
		return -1;
	}
	for (;;) {
		uint64_t t;
		ssize_t rc;

		/* fill the pipeline */
		while (sending && next_send - next_recv < depth) {
			t = now_ns();
			if (deadline ? t >= deadline : next_send >= o.rounds) {
				sending = 0;
				break;
			}
			tag_request(cl, base + next_send);
			rc = qb_ipcc_send(cl->c, cl->req, cl->req_len);
			if (rc == -EAGAIN) {
				if (next_send != next_recv) {
					break;	/* ring full: receive first */
				}
				/* nothing outstanding: flow control, or our
				 * last request is not reclaimed yet */
				if (eagain_backoff(&spins, &since) == 0) {
					continue;
				}
			}
			if (rc < 0) {
				report_error("qb_ipcc_send: %s",
					     strerror((int)-rc));
				r->errors++;
				ret = -1;
				goto out;
			}
			spins = 0;
			sent_at[next_send % depth] = t;
			next_send++;
		}
		if (next_recv == next_send) {
			if (!sending) {
				break;
			}
			continue;
		}
		rc = recv_sliced(cl, qb_ipcc_recv);
		t = now_ns();
		if (rc < 0) {
			report_error("qb_ipcc_recv (message %llu): %s",
				     (unsigned long long)(base + next_recv),
				     strerror((int)-rc));
			r->errors++;
			ret = -1;
			goto out;
		}
		if (check_response(cl, rc, base + next_recv) != 0) {
			r->errors++;
		}
		h_record(&r->hist, t - sent_at[next_recv % depth]);
		r->messages++;
		next_recv++;
	}
out:
	free(sent_at);
	return ret;
}

/* Churn mode: connect + one 64-byte round trip + disconnect. */
static int
run_churn(struct result *r, uint64_t deadline)
{
	struct client cl;
	uint64_t seq = 0, t0, t1 = now_ns();

	while (t1 < deadline) {
		int rc;

		t0 = t1;
		rc = client_setup(&cl, 64, 64);
		if (rc != READY_OK) {
			r->errors++;
			client_teardown(&cl);
			t1 = now_ns();
			usleep(1000);	/* don't spin on a dead server */
			continue;
		}
		r->connects++;
		rc = round_trip(&cl, seq++);
		client_teardown(&cl);
		t1 = now_ns();
		if (rc != 0) {
			r->errors++;
			if (rc < 0) {
				continue;
			}
		}
		h_record(&r->hist, t1 - t0);
		r->messages++;
	}
	return 0;
}

/* Events mode: the request payload is {u32 batch, u32 event bytes}. */
static void
events_request_init(struct client *cl)
{
	uint32_t args[2] = { o.batch, (uint32_t)o.size };

	((struct qb_ipc_request_header *)cl->req)->id = MSG_EVENTS;
	memcpy(cl->req + REQ_HDR, args, sizeof(args));
}

/*
 * One EVENTS request and its BATCH events, each checked: length, id 3,
 * header size, error == its index in the batch, first and last payload byte
 * ((k + j) & 0xff).  Returns 0 ok, 1 bad (counted in R if given), -1 fatal.
 */
static int
event_batch(struct client *cl, struct result *r)
{
	const struct qb_ipc_response_header *h =
		(const struct qb_ipc_response_header *)cl->resp;
	size_t len = o.size;
	ssize_t rc;
	uint32_t k;
	int bad = 0;

	rc = send_recv(cl);
	if (rc < 0) {
		report_error("events request: %s", strerror((int)-rc));
		return -1;
	}
	if ((size_t)rc != RES_HDR || h->id != MSG_EVENTS || h->error != 0) {
		report_error("bad answer to the events request: len=%zd id=%d "
			     "error=%d (does the server implement id 2?)",
			     rc, h->id, h->error);
		return -1;
	}
	for (k = 0; k < o.batch; k++) {
		rc = recv_sliced(cl, qb_ipcc_event_recv);
		if (rc < 0) {
			report_error("qb_ipcc_event_recv (event %u): %s", k,
				     strerror((int)-rc));
			return -1;
		}
		if ((size_t)rc != RES_HDR + len || h->id != MSG_EVENT ||
		    h->size != (int32_t)rc || h->error != (int32_t)k ||
		    (len > 0 &&
		     (cl->resp[RES_HDR] != (unsigned char)(k & 0xff) ||
		      cl->resp[RES_HDR + len - 1] !=
		      (unsigned char)((k + len - 1) & 0xff)))) {
			report_error("bad event %u: len=%zd id=%d size=%d "
				     "error=%d", k, rc, h->id, h->size,
				     h->error);
			bad = 1;
		}
		if (r != NULL) {
			r->messages++;
		}
	}
	if (bad && r != NULL) {
		r->errors++;
	}
	return bad;
}

/* Events mode: request a batch, receive it, until the deadline. */
static int
run_events(struct client *cl, struct result *r, uint64_t deadline)
{
	uint64_t n = 0, t0, t1 = now_ns();

	for (;;) {
		if (deadline ? t1 >= deadline : n >= o.rounds) {
			break;
		}
		t0 = now_ns();
		if (event_batch(cl, r) < 0) {
			r->errors++;
			return -1;
		}
		t1 = now_ns();
		h_record(&r->hist, t1 - t0);
		n++;
	}
	return 0;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		if (n == 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
signal_ready(int fd, unsigned char status)
{
	if (write_all(fd, &status, 1) != 0) {
		_exit(1);
	}
	close(fd);
}

static int
child_main(int ready_wr, int barrier_rd, int result_wr)
{
	static struct result r;		/* ~28 KiB: keep it off the stack */
	struct client cl;
	uint64_t deadline = 0, seq;
	char b;
	int rc = 0, st;

	memset(&r, 0, sizeof(r));
	r.magic = RESULT_MAGIC;

	if (o.churn) {
		/* probe once so that a missing server is a connect failure */
		st = client_setup(&cl, 64, 64);
		if (st == READY_OK && round_trip(&cl, 0) != 0) {
			st = READY_FAIL;
		}
		client_teardown(&cl);
	} else if (o.events) {
		st = client_setup(&cl, 8, o.size);
		if (st == READY_OK) {
			events_request_init(&cl);
			/* one verified batch, so a server without events fails
			 * here and not in the measurement */
			if (event_batch(&cl, NULL) != 0) {
				st = READY_FAIL;
			}
		}
	} else {
		st = client_setup(&cl, o.size, o.size);
		for (seq = 0; st == READY_OK && seq < o.warmup; seq++) {
			if (round_trip(&cl, seq) != 0) {
				st = READY_FAIL;
			}
		}
	}
	signal_ready(ready_wr, (unsigned char)st);
	if (st != READY_OK) {
		client_teardown(&cl);
		return st == READY_NOCONN ? 2 : 1;
	}

	/* barrier: the parent closes the write end when everyone is ready */
	while (read(barrier_rd, &b, 1) < 0 && errno == EINTR) {
	}
	close(barrier_rd);

	r.t_start_ns = now_ns();
	if (o.seconds > 0) {
		deadline = r.t_start_ns + (uint64_t)(o.seconds * 1e9);
	}
	if (o.churn) {
		rc = run_churn(&r, deadline);
	} else if (o.events) {
		rc = run_events(&cl, &r, deadline);
	} else if (o.depth <= 1) {
		rc = run_sync(&cl, &r, deadline);
	} else {
		rc = run_pipelined(&cl, &r, deadline);
	}
	r.t_end_ns = now_ns();
	if (!o.churn) {
		client_teardown(&cl);
	}
	r.status = rc == 0 ? 0 : 1;
	if (write_all(result_wr, &r, sizeof(r)) != 0) {
		return 1;
	}
	close(result_wr);
	return r.status;
}

/* ------------------------------------------------------------- parent */

static pid_t *children;
static volatile sig_atomic_t nchildren;
static volatile sig_atomic_t got_signal;

static void
on_term(int sig)
{
	sig_atomic_t i;

	got_signal = sig;
	for (i = 0; i < nchildren; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGTERM);
		}
	}
}

static void
kill_all(void)
{
	long i;

	for (i = 0; i < nchildren; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGTERM);
		}
	}
}

/* Reap every child; returns the number that did not exit with 0. */
static int
reap_all(int *status_out)
{
	int bad = 0;
	long i;

	for (i = 0; i < nchildren; i++) {
		int st = 0;

		if (children[i] <= 0) {
			continue;
		}
		while (waitpid(children[i], &st, 0) < 0) {
			if (errno != EINTR) {
				st = -1;
				break;
			}
		}
		if (status_out != NULL) {
			status_out[i] = st;
		}
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			bad++;
		}
		children[i] = 0;
	}
	return bad;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: qbload -n NAME -c CLIENTS -s PAYLOAD_BYTES "
		"[-k ROUNDS | -T SECONDS]\n"
		"              [-d DEPTH] [-m MAXMSG] [-w WARMUP_ROUNDS] "
		"[-t TIMEOUT_MS]\n"
		"       qbload -n NAME --churn -c CLIENTS -T SECONDS\n"
		"       qbload -n NAME --events -c CLIENTS -s EVENT_BYTES "
		"[-b BATCH] -T SECONDS\n");
	exit(2);
}

static uint64_t
parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
		fprintf(stderr, "qbload: bad %s: \"%s\"\n", what, s);
		exit(2);
	}
	return (uint64_t)v;
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "churn", no_argument, NULL, 'C' },
		{ "events", no_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, have_k = 0;

	while ((opt = getopt_long(argc, argv, "n:c:s:k:T:d:m:w:t:b:h", lo,
				  NULL)) != -1) {
		switch (opt) {
		case 'n': o.name = optarg; break;
		case 'c': o.clients = (long)parse_u64(optarg, "-c"); break;
		case 's': o.size = (size_t)parse_u64(optarg, "-s"); break;
		case 'k': o.rounds = parse_u64(optarg, "-k"); have_k = 1; break;
		case 'T': {
			char *end;

			o.seconds = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(o.seconds > 0)) {
				fprintf(stderr, "qbload: bad -T: \"%s\"\n", optarg);
				exit(2);
			}
			break;
		}
		case 'd': o.depth = (long)parse_u64(optarg, "-d"); break;
		case 'm': o.maxmsg = (size_t)parse_u64(optarg, "-m"); break;
		case 'w': o.warmup = parse_u64(optarg, "-w"); break;
		case 't': o.timeout_ms = (int32_t)parse_u64(optarg, "-t"); break;
		case 'C': o.churn = 1; break;
		case 'E': o.events = 1; break;
		case 'b': {
			uint64_t b = parse_u64(optarg, "-b");

			if (b < 1 || b > 1000000) {
				fprintf(stderr, "qbload: -b must be 1..1000000\n");
				exit(2);
			}
			o.batch = (uint32_t)b;
			break;
		}
		default: usage();
		}
	}
	if (o.name == NULL || optind != argc) {
		usage();
	}
	if (o.clients < 1 || o.clients > 4096) {
		fprintf(stderr, "qbload: -c must be 1..4096\n");
		exit(2);
	}
	if (o.depth < 1 || o.depth > 1000000) {
		fprintf(stderr, "qbload: -d must be 1..1000000\n");
		exit(2);
	}
	if (o.size > (size_t)INT32_MAX - 1024) {
		fprintf(stderr, "qbload: -s too large\n");
		exit(2);
	}
	if (have_k && o.seconds > 0) {
		fprintf(stderr, "qbload: -k and -T are mutually exclusive\n");
		exit(2);
	}
	if (o.churn && o.events) {
		fprintf(stderr, "qbload: --churn and --events are mutually "
			"exclusive\n");
		exit(2);
	}
	if (o.events) {
		o.depth = 1;
	}
	if (o.churn) {
		o.size = 64;
		o.depth = 1;
		if (o.seconds <= 0) {
			o.seconds = 5;
		}
	} else if (!have_k && o.seconds <= 0) {
		o.rounds = 10000;
	}
}

int
main(int argc, char **argv)
{
	struct result *res;
	struct hist *all;
	struct sigaction sa;
	int ready_p[2], barrier_p[2];
	int *result_rd, *status;
	uint64_t t_release, t_last = 0, messages = 0, errors = 0, connects = 0;
	long i, nready = 0;
	int failed = 0, noconn = 0, bad;
	double secs, client_ns = 0;

	parse_args(argc, argv);

	children = calloc((size_t)o.clients, sizeof(pid_t));
	result_rd = calloc((size_t)o.clients, sizeof(int));
	status = calloc((size_t)o.clients, sizeof(int));
	res = malloc(sizeof(*res));
	all = calloc(1, sizeof(*all));
	if (children == NULL || result_rd == NULL || status == NULL ||
	    res == NULL || all == NULL) {
		fprintf(stderr, "qbload: out of memory\n");
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pipe2(ready_p, O_CLOEXEC) != 0 || pipe2(barrier_p, O_CLOEXEC) != 0) {
		perror("qbload: pipe");
		return 1;
	}

	fflush(stdout);
	fflush(stderr);
	for (i = 0; i < o.clients && !got_signal; i++) {
		int rp[2];
		pid_t pid;

		if (pipe2(rp, O_CLOEXEC) != 0) {
			perror("qbload: pipe");
			failed = 1;
			break;
		}
		pid = fork();
		if (pid < 0) {
			perror("qbload: fork");
			close(rp[0]);
			close(rp[1]);
			failed = 1;
			break;
		}
		if (pid == 0) {
			long j;

			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1) {
				_exit(1);
			}
			for (j = 0; j < i; j++) {
				close(result_rd[j]);
			}
			close(rp[0]);
			close(ready_p[0]);
			close(barrier_p[1]);
			child_id = (int)i;
			_exit(child_main(ready_p[1], barrier_p[0], rp[1]));
		}
		close(rp[1]);
		result_rd[i] = rp[0];
		children[i] = pid;
		nchildren = (sig_atomic_t)(i + 1);
	}
	close(ready_p[1]);
	close(barrier_p[0]);

	/* Wait until every child reported ready (or failed). */
	while (!failed && !got_signal && nready < nchildren) {
		unsigned char st;
		ssize_t n = read(ready_p[0], &st, 1);

		if (n == 1) {
			nready++;
			if (st == READY_NOCONN) {
				noconn = 1;
				failed = 1;
			} else if (st != READY_OK) {
				failed = 1;
			}
		} else if (n == 0) {
			/* every child closed its end: one died early */
			fprintf(stderr, "qbload: a client exited before it "
				"was ready\n");
			failed = 1;
		} else if (errno != EINTR) {
			perror("qbload: read");
			failed = 1;
		}
	}
	close(ready_p[0]);
	if (failed || got_signal) {
		kill_all();
		close(barrier_p[1]);
		reap_all(NULL);
		if (got_signal) {
			fprintf(stderr, "qbload: interrupted by signal %d\n",
				(int)got_signal);
		}
		return noconn ? 2 : 1;
	}

	/* Release the barrier. */
	t_release = now_ns();
	close(barrier_p[1]);

	for (i = 0; i < nchildren; i++) {
		unsigned b;

		if (read_all(result_rd[i], res, sizeof(*res)) != 0 ||
		    res->magic != RESULT_MAGIC) {
			if (!got_signal) {
				fprintf(stderr, "qbload: client %ld sent no "
					"result\n", i);
			}
			failed = 1;
			close(result_rd[i]);
			continue;
		}
		close(result_rd[i]);
		if (res->status != 0) {
			failed = 1;
		}
		messages += res->messages;
		errors += res->errors;
		connects += res->connects;
		if (res->t_end_ns > t_last) {
			t_last = res->t_end_ns;
		}
		if (res->t_end_ns > res->t_start_ns) {
			client_ns += (double)(res->t_end_ns - res->t_start_ns);
		}
		for (b = 0; b < H_BUCKETS; b++) {
			all->count[b] += res->hist.count[b];
		}
		all->n += res->hist.n;
		if (res->hist.max > all->max) {
			all->max = res->hist.max;
		}
	}
	bad = reap_all(status);
	if (bad > 0) {
		failed = 1;
		for (i = 0; i < o.clients; i++) {
			if (WIFSIGNALED(status[i])) {
				fprintf(stderr, "qbload: client %ld killed by "
					"signal %d\n", i, WTERMSIG(status[i]));
			}
		}
	}
	if (got_signal) {
		fprintf(stderr, "qbload: interrupted by signal %d\n",
			(int)got_signal);
		return 1;
	}

	secs = t_last > t_release ? (double)(t_last - t_release) / 1e9 : 0.0;
	if (secs <= 0) {
		secs = 1e-9;
	}
	if (o.churn) {
		printf("{\"mode\":\"churn\",");
	} else if (o.events) {
		printf("{\"mode\":\"events\",\"batch\":%u,", o.batch);
	} else {
		printf("{");
	}
	printf("\"clients\":%ld,\"size\":%zu,\"depth\":%ld,"
	       "\"messages\":%llu,\"errors\":%llu,\"seconds\":%.6f,"
	       "\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f,",
	       o.clients, o.size, o.depth,
	       (unsigned long long)messages, (unsigned long long)errors, secs,
	       (double)messages / secs,
	       (double)messages * (double)o.size / secs / 1e6);
	if (o.churn) {
		printf("\"connects\":%llu,\"connects_per_sec\":%.1f,",
		       (unsigned long long)connects, (double)connects / secs);
	}
	if (!o.churn && !o.events && o.depth <= 1) {
		printf("\"stalled_share\":%.4f,", stalled_share(all, client_ns / 1e9));
	}
	printf("\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,"
	       "\"max_us\":%.3f}\n",
	       (double)h_percentile(all, 50.0) / 1e3,
	       (double)h_percentile(all, 99.0) / 1e3,
	       (double)h_percentile(all, 99.9) / 1e3,
	       (double)all->max / 1e3);
	fflush(stdout);

	free(children);
	free(result_rd);
	free(status);
	free(res);
	free(all);
	return (failed || errors != 0) ? 1 : 0;
}
