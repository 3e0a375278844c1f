/*
 * qbclient.c -- a stock libqb IPC client (qb_ipcc_* only), driven line by
 * line over stdin, for the qbipc test suite.
 *
 * Application protocol (that of bench/c/qb-echo-server.c):
 *   request  = 16-byte struct qb_ipc_request_header {id, size} + payload
 *   response = 24-byte struct qb_ipc_response_header {id, size, error} + payload
 *   id 1 ECHO   -> response id 1, error 0, same payload
 *   id 2 EVENTS -> payload {u32 count, u32 len}: bare 24-byte response (id 2),
 *                  then `count` events: id 3, size 24+len, error = k,
 *                  payload byte j = (k + j) & 0xff
 *   other ids   -> response with the same id, size 24, error -EINVAL
 *
 * Interactive mode (no arguments): one command per line on stdin, exactly
 * one reply line on stdout per command ("ok ..." or "err ...", key=value
 * fields, errno values positive).  EOF on stdin behaves like "quit".
 *
 *   connect NAME MAXMSG           ok buffer_size=N | err errno=E
 *   echo SIZE [TIMEOUT_MS]        ok n=N | err errno=E | err mismatch ...
 *   sweep FROM TO [STEP]          ok count=N | err size=S errno=E | err mismatch size=S ...
 *   rounds K SIZE                 ok count=K usec=T | err at=I errno=E | err mismatch at=I ...
 *   pipeline DEPTH SIZE ROUNDS    ok count=N usec=T depth=D | err round=R count=N errno=E | err mismatch ...
 *   send ID SIZE                  ok n=RET | err errno=E
 *   sendraw LEN                   ok n=RET | err errno=E
 *   request ID WORD...            ok n=RET | err errno=E
 *                                 (a request whose payload is the given u32
 *                                 words, sent once without waiting; the
 *                                 receive buffer then grows to 4 x buffer_size
 *                                 + 4096 bytes, for messages over the size)
 *   recv TIMEOUT_MS               ok n=N id=I size=S error=E [match=0|1] | err errno=E
 *   events COUNT LEN [TIMEOUT_MS] ok count=C usec=T | err at=K errno=E | err mismatch at=K ...
 *   eventreq COUNT LEN            ok | err at=request errno=E | err mismatch at=request ...
 *                                 (only the id-2 request and its bare response;
 *                                 the events are left for eventrecv/fdpoll)
 *   eventrecv TIMEOUT_MS          ok n=N id=I size=S error=E | err errno=E
 *   connected                     ok connected=0|1
 *   fcmax N                       ok | err errno=E
 *   auth                          ok pid=P uid=U gid=G | err errno=E
 *   fdpoll TIMEOUT_MS             ok revents=R | err errno=E
 *   disconnect                    ok
 *   quit                          (disconnects, exits 0, no reply)
 *   anything else                 err unknown
 * Commands that need a connection reply "err noconn" without one ("connect"
 * while connected: "err already-connected"); malformed arguments give
 * "err usage".  Payload bytes follow a pattern of (size, per-call seed), so
 * every echo checks the returned length, id, size field, error and bytes.
 *
 * echo/sweep/rounds/events use qb_ipcc_sendv_recv; a -EAGAIN from it (ring
 * full or flow control) is retried until the timeout has passed, then
 * reported as errno=11.  "send" never retries: it is how a test observes
 * EAGAIN, ENOTCONN or EMSGSIZE; "recv" checks (match=) an id-1 response
 * against the oldest unanswered "send 1 SIZE".  "pipeline" (and -d) caps
 * DEPTH at the number of responses the response ring holds (depth=D),
 * because a libqb-style server drops a response that does not fit.
 * Receive buffers are max(buffer_size, 24 + payload) bytes: libqb servers
 * send responses larger than buffer_size (a request of buffer_size bytes
 * gets a response of buffer_size + 8) and they must still be verified.
 *
 * Non-interactive load mode:
 *   qbclient -n NAME -k ROUNDS -s SIZE [-m MAXMSG] [-d DEPTH] [-t TIMEOUT_MS] [-v]
 * prints "ok count=N usec=T errors=0" and exits 0 only if every round trip
 * verified; otherwise prints "err ..." and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <qb/qbdefs.h>
#include <qb/qbipcc.h>
#include <qb/qblog.h>

#define ID_ECHO		1
#define ID_EVENTS	2
#define ID_EVENT	3
#define REQ_HDR		16
#define RESP_HDR	24
#define DEFAULT_TIMEOUT	5000
#define FIFO_LEN	4096

static qb_ipcc_connection_t *conn;
static size_t buffer_size;
static uint32_t next_seed = 1;

static unsigned char *sbuf;	/* request build buffer */
static size_t sbuf_cap;
static unsigned char *rbuf;	/* response / event receive buffer */
static size_t rbuf_cap;

/* (seed, size) of id-1 requests sent with "send", matched by "recv". */
static struct {
	uint32_t seed;
	uint32_t size;
} fifo[FIFO_LEN];
static unsigned fifo_head, fifo_count;

/* Outcome of one operation, turned into a reply line by the caller. */
struct outcome {
	int err;		/* positive errno, 0 = none */
	int mismatch;		/* 1 = verification failed, details in msg */
	char msg[256];
};

/* ------------------------------------------------------------------ */

static void reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void pause_briefly(void)
{
	struct timespec ts = { 0, 200000 };	/* 0.2 ms between EAGAIN retries */

	nanosleep(&ts, NULL);
}

static void *grow(unsigned char **buf, size_t *cap, size_t need)
{
	if (need == 0) {
		need = 1;
	}
	if (*cap < need) {
		unsigned char *p = realloc(*buf, need);

		if (p == NULL) {
			fprintf(stderr, "qbclient: out of memory (%zu bytes)\n", need);
			exit(3);
		}
		*buf = p;
		*cap = need;
	}
	return *buf;
}

/* Payload byte j of a message of `size` payload bytes built with `seed`. */
static unsigned char pattern(uint32_t seed, uint32_t size, size_t j)
{
	uint32_t x = seed * 0x9E3779B1u ^ (size + 1u) * 0x85EBCA77u;

	x ^= x >> 15;
	return (unsigned char)((x >> 24) + (x >> 7) + (uint32_t)j * 131u +
			       (uint32_t)(j >> 8) * 7u);
}

/* Build a 16 + size request in sbuf. */
static void build_request(int32_t id, uint32_t size, uint32_t seed)
{
	struct qb_ipc_request_header hdr;
	size_t j;

	grow(&sbuf, &sbuf_cap, REQ_HDR + (size_t)size);
	memset(&hdr, 0, sizeof(hdr));
	hdr.id = id;
	hdr.size = (int32_t)(REQ_HDR + size);
	memcpy(sbuf, &hdr, sizeof(hdr));
	for (j = 0; j < size; j++) {
		sbuf[REQ_HDR + j] = pattern(seed, size, j);
	}
}

static size_t response_capacity(size_t payload)
{
	size_t need = RESP_HDR + payload;

	return need > buffer_size ? need : buffer_size;
}

static void read_resp_header(const unsigned char *p, ssize_t n,
			     int32_t *id, int32_t *size, int32_t *error)
{
	struct qb_ipc_response_header h;

	memset(&h, 0, sizeof(h));
	memcpy(&h, p, n >= (ssize_t)sizeof(h) ? sizeof(h) : (size_t)(n > 0 ? n : 0));
	*id = h.id;
	*size = h.size;
	*error = h.error;
}

/* Verify an echo response of `rc` bytes in rbuf against (seed, size). */
static int verify_echo(ssize_t rc, uint32_t size, uint32_t seed, struct outcome *o)
{
	int32_t id, hsize, error;
	size_t j;

	read_resp_header(rbuf, rc, &id, &hsize, &error);
	if (rc != (ssize_t)(RESP_HDR + size) || id != ID_ECHO ||
	    hsize != (int32_t)(RESP_HDR + size) || error != 0) {
		o->mismatch = 1;
		snprintf(o->msg, sizeof(o->msg),
			 "n=%zd want=%u id=%d hsize=%d error=%d",
			 rc, (unsigned)(RESP_HDR + size), id, hsize, error);
		return -1;
	}
	for (j = 0; j < size; j++) {
		if (rbuf[RESP_HDR + j] != pattern(seed, size, j)) {
			o->mismatch = 1;
			snprintf(o->msg, sizeof(o->msg),
				 "n=%zd payload_at=%zu got=%u want=%u", rc, j,
				 rbuf[RESP_HDR + j], pattern(seed, size, j));
			return -1;
		}
	}
	return 0;
}

/*
 * One id-1 round trip through qb_ipcc_sendv_recv.  -EAGAIN (ring full or
 * flow control) is retried until timeout_ms has passed (forever if < 0).
 */
static int do_echo(uint32_t size, int32_t timeout_ms, struct outcome *o)
{
	uint32_t seed = next_seed++;
	uint64_t deadline = now_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;
	struct iovec iov[2];
	size_t cap = response_capacity(size);
	ssize_t rc;

	build_request(ID_ECHO, size, seed);
	grow(&rbuf, &rbuf_cap, cap);
	iov[0].iov_base = sbuf;
	iov[0].iov_len = REQ_HDR;
	iov[1].iov_base = sbuf + REQ_HDR;
	iov[1].iov_len = size;
	for (;;) {
		rc = qb_ipcc_sendv_recv(conn, iov, size ? 2 : 1, rbuf, cap, timeout_ms);
		if (rc != -EAGAIN || (timeout_ms >= 0 && now_us() >= deadline)) {
			break;
		}
		pause_briefly();
	}
	if (rc < 0) {
		o->err = (int)-rc;
		return -1;
	}
	if (verify_echo(rc, size, seed, o) != 0) {
		return -1;
	}
	return (int)rc;
}

static void reply_failure(const char *prefix, const struct outcome *o)
{
	if (o->mismatch) {
		reply("err mismatch%s%s %s", prefix[0] ? " " : "", prefix, o->msg);
	} else {
		reply("err%s%s errno=%d", prefix[0] ? " " : "", prefix, o->err);
	}
}

/*
 * How many responses of `size` payload bytes the response ring holds at
 * once (free space rule of the ring: a chunk of L bytes needs L + 12 free
 * bytes).  A libqb server does not queue a response that does not fit
 * (response_send returns -EAGAIN), so a pipeline never has more requests
 * in flight.
 */
static uint32_t response_ring_capacity(uint32_t size)
{
	uint64_t d = ((uint64_t)buffer_size + 13u + 4095u) / 4096u * 4096u;
	uint64_t n = d / 4u, len = RESP_HDR + (uint64_t)size;
	uint64_t words = 2u + (len + 3u) / 4u, k;

	if (n < 1u || 4u * (n - 1u) < len + 12u) {
		return 1;
	}
	k = (4u * (n - 1u) - len - 12u) / (4u * words) + 1u;
	return k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
}

/*
 * One pipelined batch: send up to `depth` requests (stop early on -EAGAIN
 * once at least one went out), then receive and verify each in order.
 * Returns the number verified, or -1 with o filled.
 */
static long pipeline_batch(uint32_t depth, uint32_t size, int32_t timeout_ms,
			   uint32_t *seeds, struct outcome *o)
{
	size_t cap = response_capacity(size);
	uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000u;
	uint32_t sent = 0, i;
	ssize_t rc;

	grow(&rbuf, &rbuf_cap, cap);
	while (sent < depth) {
		uint32_t seed = next_seed++;

		build_request(ID_ECHO, size, seed);
		rc = qb_ipcc_send(conn, sbuf, REQ_HDR + (size_t)size);
		if (rc == -EAGAIN) {
			if (sent > 0) {
				break;
			}
			if (now_us() >= deadline) {
				o->err = EAGAIN;
				return -1;
			}
			pause_briefly();
			continue;
		}
		if (rc < 0) {
			o->err = (int)-rc;
			return -1;
		}
		if (rc != (ssize_t)(REQ_HDR + size)) {
			o->mismatch = 1;
			snprintf(o->msg, sizeof(o->msg), "send_returned=%zd want=%u",
				 rc, (unsigned)(REQ_HDR + size));
			return -1;
		}
		seeds[sent++] = seed;
	}
	for (i = 0; i < sent; i++) {
		rc = qb_ipcc_recv(conn, rbuf, cap, timeout_ms);
		if (rc < 0) {
			o->err = (int)-rc;
			return -1;
		}
		if (verify_echo(rc, size, seeds[i], o) != 0) {
			return -1;
		}
	}
	return (long)sent;
}

/* ------------------------------------------------------------------ */
/* argument parsing */

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0') {
		return -1;
	}
	errno = 0;
	v = strtol(s, &end, 0);
	if (errno != 0 || *end != '\0' || v < lo || v > hi) {
		return -1;
	}
	*out = v;
	return 0;
}

#define MAX_ARGS 8

static int split(char *line, char **argv)
{
	int argc = 0;
	char *save = NULL;
	char *tok = strtok_r(line, " \t\r\n", &save);

	while (tok != NULL && argc < MAX_ARGS) {
		argv[argc++] = tok;
		tok = strtok_r(NULL, " \t\r\n", &save);
	}
	return tok != NULL ? -1 : argc;
}

/* ------------------------------------------------------------------ */
/* commands */

static void cmd_connect(int argc, char **argv)
{
	long maxmsg;
	int32_t bs;

	if (argc != 3 || parse_long(argv[2], 0, INT32_MAX, &maxmsg) != 0) {
		reply("err usage");
		return;
	}
	if (conn != NULL) {
		reply("err already-connected");
		return;
	}
	conn = qb_ipcc_connect(argv[1], (size_t)maxmsg);
	if (conn == NULL) {
		reply("err errno=%d", errno);
		return;
	}
	bs = qb_ipcc_get_buffer_size(conn);
	buffer_size = bs > 0 ? (size_t)bs : 0;
	fifo_head = fifo_count = 0;
	reply("ok buffer_size=%d", bs);
}

static void cmd_echo(int argc, char **argv)
{
	struct outcome o = { 0, 0, "" };
	long size, timeout = DEFAULT_TIMEOUT;
	int rc;

	if (argc < 2 || argc > 3 || parse_long(argv[1], 0, INT32_MAX - 64, &size) != 0 ||
	    (argc == 3 && parse_long(argv[2], -1, INT32_MAX, &timeout) != 0)) {
		reply("err usage");
		return;
	}
	rc = do_echo((uint32_t)size, (int32_t)timeout, &o);
	if (rc < 0) {
		reply_failure("", &o);
	} else {
		reply("ok n=%d", rc);
	}
}

static void cmd_sweep(int argc, char **argv)
{
	struct outcome o = { 0, 0, "" };
	long from, to, step = 1, s, count = 0;
	char where[32];

	if (argc < 3 || argc > 4 || parse_long(argv[1], 0, INT32_MAX - 64, &from) != 0 ||
	    parse_long(argv[2], 0, INT32_MAX - 64, &to) != 0 ||
	    (argc == 4 && parse_long(argv[3], 1, INT32_MAX, &step) != 0)) {
		reply("err usage");
		return;
	}
	for (s = from; s <= to; s += step) {
		if (do_echo((uint32_t)s, DEFAULT_TIMEOUT, &o) < 0) {
			snprintf(where, sizeof(where), "size=%ld", s);
			reply_failure(where, &o);
			return;
		}
		count++;
	}
	reply("ok count=%ld", count);
}

static void cmd_rounds(int argc, char **argv)
{
	struct outcome o = { 0, 0, "" };
	long k, size, i;
	uint64_t t0;
	char where[32];

	if (argc != 3 || parse_long(argv[1], 0, LONG_MAX, &k) != 0 ||
	    parse_long(argv[2], 0, INT32_MAX - 64, &size) != 0) {
		reply("err usage");
		return;
	}
	t0 = now_us();
	for (i = 0; i < k; i++) {
		if (do_echo((uint32_t)size, DEFAULT_TIMEOUT, &o) < 0) {
			snprintf(where, sizeof(where), "at=%ld", i);
			reply_failure(where, &o);
			return;
		}
	}
	reply("ok count=%ld usec=%llu", k, (unsigned long long)(now_us() - t0));
}

static void cmd_pipeline(int argc, char **argv)
{
	struct outcome o = { 0, 0, "" };
	long depth, size, rounds, r, got, total = 0;
	uint32_t *seeds;
	uint64_t t0;
	char where[64];

	if (argc != 4 || parse_long(argv[1], 1, 1000000, &depth) != 0 ||
	    parse_long(argv[2], 0, INT32_MAX - 64, &size) != 0 ||
	    parse_long(argv[3], 0, LONG_MAX, &rounds) != 0) {
		reply("err usage");
		return;
	}
	seeds = calloc((size_t)depth, sizeof(*seeds));
	if (seeds == NULL) {
		reply("err errno=%d", ENOMEM);
		return;
	}
	t0 = now_us();
	if ((uint32_t)depth > response_ring_capacity((uint32_t)size)) {
		depth = (long)response_ring_capacity((uint32_t)size);
	}
	for (r = 0; r < rounds; r++) {
		got = pipeline_batch((uint32_t)depth, (uint32_t)size, DEFAULT_TIMEOUT, seeds, &o);
		if (got < 0) {
			snprintf(where, sizeof(where), "round=%ld count=%ld", r, total);
			reply_failure(where, &o);
			free(seeds);
			return;
		}
		total += got;
	}
	free(seeds);
	reply("ok count=%ld usec=%llu depth=%ld", total, (unsigned long long)(now_us() - t0),
	      depth);
}

static void cmd_send(int argc, char **argv)
{
	long id, size;
	uint32_t seed = next_seed++;
	ssize_t rc;

	if (argc != 3 || parse_long(argv[1], INT32_MIN, INT32_MAX, &id) != 0 ||
	    parse_long(argv[2], 0, INT32_MAX - 64, &size) != 0) {
		reply("err usage");
		return;
	}
	build_request((int32_t)id, (uint32_t)size, seed);
	rc = qb_ipcc_send(conn, sbuf, REQ_HDR + (size_t)size);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
		return;
	}
	if (id == ID_ECHO) {
		unsigned slot = (fifo_head + fifo_count) % FIFO_LEN;

		fifo[slot].seed = seed;
		fifo[slot].size = (uint32_t)size;
		if (fifo_count < FIFO_LEN) {
			fifo_count++;
		} else {
			fifo_head = (fifo_head + 1) % FIFO_LEN;
		}
	}
	reply("ok n=%zd", rc);
}

static void cmd_sendraw(int argc, char **argv)
{
	long len, j;
	uint32_t seed = next_seed++;
	ssize_t rc;

	if (argc != 2 || parse_long(argv[1], 0, INT32_MAX, &len) != 0) {
		reply("err usage");
		return;
	}
	grow(&sbuf, &sbuf_cap, (size_t)len);
	for (j = 0; j < len; j++) {
		sbuf[j] = pattern(seed, (uint32_t)len, (size_t)j);
	}
	rc = qb_ipcc_send(conn, sbuf, (size_t)len);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
	} else {
		reply("ok n=%zd", rc);
	}
}

static void cmd_request(int argc, char **argv)
{
	struct qb_ipc_request_header hdr;
	uint32_t words[MAX_ARGS];
	long id, v;
	int i, n = argc - 2;
	ssize_t rc;

	if (argc < 2 || parse_long(argv[1], INT32_MIN, INT32_MAX, &id) != 0) {
		reply("err usage");
		return;
	}
	for (i = 0; i < n; i++) {
		if (parse_long(argv[i + 2], 0, UINT32_MAX, &v) != 0) {
			reply("err usage");
			return;
		}
		words[i] = (uint32_t)v;
	}
	grow(&sbuf, &sbuf_cap, REQ_HDR + sizeof(words));
	memset(&hdr, 0, sizeof(hdr));
	hdr.id = (int32_t)id;
	hdr.size = (int32_t)(REQ_HDR + (size_t)n * sizeof(uint32_t));
	memcpy(sbuf, &hdr, sizeof(hdr));
	memcpy(sbuf + REQ_HDR, words, (size_t)n * sizeof(uint32_t));
	grow(&rbuf, &rbuf_cap, 4 * buffer_size + 4096);
	rc = qb_ipcc_send(conn, sbuf, (size_t)hdr.size);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
	} else {
		reply("ok n=%zd", rc);
	}
}

/* Shared by recv and eventrecv: parses TIMEOUT_MS and sizes the receive buffer.
 * Returns 0, or -1 after replying "err usage". */
static int receive_setup(int argc, char **argv, long *timeout, size_t *cap)
{
	if (argc != 2 || parse_long(argv[1], -1, INT32_MAX, timeout) != 0) {
		reply("err usage");
		return -1;
	}
	*cap = response_capacity(0);
	if (rbuf_cap > *cap) {
		*cap = rbuf_cap;
	}
	grow(&rbuf, &rbuf_cap, *cap);
	return 0;
}

static void cmd_recv(int argc, char **argv)
{
	long timeout;
	size_t cap;
	int32_t id, hsize, error;
	ssize_t rc;

	if (receive_setup(argc, argv, &timeout, &cap) != 0) {
		return;
	}
	rc = qb_ipcc_recv(conn, rbuf, cap, (int32_t)timeout);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
		return;
	}
	read_resp_header(rbuf, rc, &id, &hsize, &error);
	if (id == ID_ECHO && fifo_count > 0) {
		struct outcome o = { 0, 0, "" };
		uint32_t seed = fifo[fifo_head].seed, size = fifo[fifo_head].size;

		fifo_head = (fifo_head + 1) % FIFO_LEN;
		fifo_count--;
		reply("ok n=%zd id=%d size=%d error=%d match=%d", rc, id, hsize, error,
		      verify_echo(rc, size, seed, &o) == 0);
		return;
	}
	reply("ok n=%zd id=%d size=%d error=%d", rc, id, hsize, error);
}

/* events (consume = 1) or eventreq (consume = 0: only request them). */
static void cmd_events(int argc, char **argv, int consume)
{
	long count, len, timeout = DEFAULT_TIMEOUT, k;
	struct qb_ipc_request_header hdr;
	uint32_t args[2];
	struct iovec iov[2];
	uint64_t t0, deadline;
	size_t cap;
	ssize_t rc;
	int32_t id, hsize, error;

	if (argc < 3 || argc > (consume ? 4 : 3) ||
	    parse_long(argv[1], 0, UINT32_MAX, &count) != 0 ||
	    parse_long(argv[2], 0, INT32_MAX - 64, &len) != 0 ||
	    (argc == 4 && parse_long(argv[3], -1, INT32_MAX, &timeout) != 0)) {
		reply("err usage");
		return;
	}
	cap = response_capacity((size_t)len);
	grow(&rbuf, &rbuf_cap, cap);
	memset(&hdr, 0, sizeof(hdr));
	hdr.id = ID_EVENTS;
	hdr.size = (int32_t)(sizeof(hdr) + sizeof(args));
	args[0] = (uint32_t)count;
	args[1] = (uint32_t)len;
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = args;
	iov[1].iov_len = sizeof(args);

	t0 = now_us();
	deadline = t0 + DEFAULT_TIMEOUT * 1000u;
	for (;;) {
		rc = qb_ipcc_sendv_recv(conn, iov, 2, rbuf, cap, DEFAULT_TIMEOUT);
		if (rc != -EAGAIN || now_us() >= deadline) {
			break;
		}
		pause_briefly();
	}
	if (rc < 0) {
		reply("err at=request errno=%d", (int)-rc);
		return;
	}
	read_resp_header(rbuf, rc, &id, &hsize, &error);
	if (rc != RESP_HDR || id != ID_EVENTS || hsize != RESP_HDR || error != 0) {
		reply("err mismatch at=request n=%zd id=%d hsize=%d error=%d",
		      rc, id, hsize, error);
		return;
	}
	if (!consume) {
		reply("ok");
		return;
	}
	for (k = 0; k < count; k++) {
		long j;

		rc = qb_ipcc_event_recv(conn, rbuf, cap, (int32_t)timeout);
		if (rc < 0) {
			reply("err at=%ld errno=%d", k, (int)-rc);
			return;
		}
		read_resp_header(rbuf, rc, &id, &hsize, &error);
		if (rc != RESP_HDR + len || id != ID_EVENT || hsize != RESP_HDR + len ||
		    error != (int32_t)k) {
			reply("err mismatch at=%ld n=%zd want=%ld id=%d hsize=%d error=%d",
			      k, rc, RESP_HDR + len, id, hsize, error);
			return;
		}
		for (j = 0; j < len; j++) {
			if (rbuf[RESP_HDR + j] != (unsigned char)((k + j) & 0xff)) {
				reply("err mismatch at=%ld payload_at=%ld got=%u want=%u", k, j,
				      rbuf[RESP_HDR + j], (unsigned)((k + j) & 0xff));
				return;
			}
		}
	}
	reply("ok count=%ld usec=%llu", count, (unsigned long long)(now_us() - t0));
}

static void cmd_eventrecv(int argc, char **argv)
{
	long timeout;
	size_t cap;
	int32_t id, hsize, error;
	ssize_t rc;

	if (receive_setup(argc, argv, &timeout, &cap) != 0) {
		return;
	}
	rc = qb_ipcc_event_recv(conn, rbuf, cap, (int32_t)timeout);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
		return;
	}
	read_resp_header(rbuf, rc, &id, &hsize, &error);
	reply("ok n=%zd id=%d size=%d error=%d", rc, id, hsize, error);
}

static void cmd_fcmax(int argc, char **argv)
{
	long v;
	int32_t rc;

	if (argc != 2 || parse_long(argv[1], 0, UINT32_MAX, &v) != 0) {
		reply("err usage");
		return;
	}
	rc = qb_ipcc_fc_enable_max_set(conn, (uint32_t)v);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
	} else {
		reply("ok");
	}
}

static void cmd_auth(void)
{
	pid_t pid = 0;
	uid_t uid = 0;
	gid_t gid = 0;
	int32_t rc = qb_ipcc_auth_get(conn, &pid, &uid, &gid);

	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
	} else {
		reply("ok pid=%ld uid=%lu gid=%lu", (long)pid, (unsigned long)uid,
		      (unsigned long)gid);
	}
}

static void cmd_fdpoll(int argc, char **argv)
{
	long timeout;
	int32_t fd = -1, rc;
	struct pollfd p;
	int n;

	if (argc != 2 || parse_long(argv[1], -1, INT32_MAX, &timeout) != 0) {
		reply("err usage");
		return;
	}
	rc = qb_ipcc_fd_get(conn, &fd);
	if (rc < 0) {
		reply("err errno=%d", (int)-rc);
		return;
	}
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	do {
		n = poll(&p, 1, (int)timeout);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		reply("err errno=%d", errno);
		return;
	}
	reply("ok revents=%d", n == 0 ? 0 : (int)p.revents);
}

static void do_disconnect(void)
{
	if (conn != NULL) {
		qb_ipcc_disconnect(conn);
		conn = NULL;
		buffer_size = 0;
		fifo_head = fifo_count = 0;
	}
}

/* Returns 1 when the program should exit. */
static int dispatch(char *line)
{
	char *argv[MAX_ARGS];
	int argc = split(line, argv);
	const char *c;

	if (argc <= 0) {
		reply(argc < 0 ? "err usage" : "err unknown");
		return 0;
	}
	c = argv[0];
	if (strcmp(c, "quit") == 0) {
		return 1;
	}
	if (strcmp(c, "connect") == 0) {
		cmd_connect(argc, argv);
		return 0;
	}
	if (strcmp(c, "connected") == 0) {
		reply("ok connected=%d", conn != NULL && qb_ipcc_is_connected(conn) ? 1 : 0);
		return 0;
	}
	if (strcmp(c, "echo") != 0 && strcmp(c, "sweep") != 0 &&
	    strcmp(c, "rounds") != 0 && strcmp(c, "pipeline") != 0 &&
	    strcmp(c, "send") != 0 && strcmp(c, "sendraw") != 0 &&
	    strcmp(c, "request") != 0 &&
	    strcmp(c, "recv") != 0 && strcmp(c, "events") != 0 &&
	    strcmp(c, "eventreq") != 0 &&
	    strcmp(c, "eventrecv") != 0 && strcmp(c, "fcmax") != 0 &&
	    strcmp(c, "auth") != 0 && strcmp(c, "fdpoll") != 0 &&
	    strcmp(c, "disconnect") != 0) {
		reply("err unknown");
		return 0;
	}
	if (conn == NULL) {
		reply("err noconn");
		return 0;
	}
	if (strcmp(c, "echo") == 0) {
		cmd_echo(argc, argv);
	} else if (strcmp(c, "sweep") == 0) {
		cmd_sweep(argc, argv);
	} else if (strcmp(c, "rounds") == 0) {
		cmd_rounds(argc, argv);
	} else if (strcmp(c, "pipeline") == 0) {
		cmd_pipeline(argc, argv);
	} else if (strcmp(c, "send") == 0) {
		cmd_send(argc, argv);
	} else if (strcmp(c, "sendraw") == 0) {
		cmd_sendraw(argc, argv);
	} else if (strcmp(c, "request") == 0) {
		cmd_request(argc, argv);
	} else if (strcmp(c, "recv") == 0) {
		cmd_recv(argc, argv);
	} else if (strcmp(c, "events") == 0) {
		cmd_events(argc, argv, 1);
	} else if (strcmp(c, "eventreq") == 0) {
		cmd_events(argc, argv, 0);
	} else if (strcmp(c, "eventrecv") == 0) {
		cmd_eventrecv(argc, argv);
	} else if (strcmp(c, "fcmax") == 0) {
		cmd_fcmax(argc, argv);
	} else if (strcmp(c, "auth") == 0) {
		cmd_auth();
	} else if (strcmp(c, "fdpoll") == 0) {
		cmd_fdpoll(argc, argv);
	} else {
		do_disconnect();
		reply("ok");
	}
	return 0;
}

static int interactive(void)
{
	char *line = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, stdin) >= 0) {
		if (dispatch(line)) {
			break;
		}
	}
	free(line);
	do_disconnect();
	return 0;
}

/* ------------------------------------------------------------------ */

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s                      (interactive, commands on stdin)\n"
		"       %s -n NAME -k ROUNDS -s SIZE [-m MAXMSG] [-d DEPTH] [-t TIMEOUT_MS] [-v]\n",
		argv0, argv0);
	exit(2);
}

static int load_mode(const char *name, long rounds, long size, long maxmsg,
		     long depth, long timeout)
{
	struct outcome o = { 0, 0, "" };
	uint32_t *seeds;
	long done = 0, got;
	uint64_t t0;
	int32_t bs;

	if (maxmsg <= 0) {
		maxmsg = RESP_HDR + size;
	}
	conn = qb_ipcc_connect(name, (size_t)maxmsg);
	if (conn == NULL) {
		printf("err connect errno=%d\n", errno);
		return 1;
	}
	bs = qb_ipcc_get_buffer_size(conn);
	buffer_size = bs > 0 ? (size_t)bs : 0;
	if ((uint32_t)depth > response_ring_capacity((uint32_t)size)) {
		depth = (long)response_ring_capacity((uint32_t)size);
	}
	seeds = calloc((size_t)(depth > 0 ? depth : 1), sizeof(*seeds));
	if (seeds == NULL) {
		printf("err errno=%d\n", ENOMEM);
		do_disconnect();
		return 1;
	}
	t0 = now_us();
	while (done < rounds) {
		if (depth <= 1) {
			got = do_echo((uint32_t)size, (int32_t)timeout, &o) < 0 ? -1 : 1;
		} else {
			long want = rounds - done < depth ? rounds - done : depth;

			got = pipeline_batch((uint32_t)want, (uint32_t)size, (int32_t)timeout,
					     seeds, &o);
		}
		if (got < 0) {
			break;
		}
		done += got;
	}
	free(seeds);
	if (done < rounds) {
		if (o.mismatch) {
			printf("err mismatch at=%ld %s\n", done, o.msg);
		} else {
			printf("err at=%ld errno=%d\n", done, o.err);
		}
		do_disconnect();
		return 1;
	}
	printf("ok count=%ld usec=%llu errors=0\n", done,
	       (unsigned long long)(now_us() - t0));
	do_disconnect();
	return 0;
}

int main(int argc, char **argv)
{
	const char *name = NULL;
	long rounds = -1, size = -1, maxmsg = 0, depth = 1, timeout = DEFAULT_TIMEOUT;
	int verbose = 0;
	int opt;

	while ((opt = getopt(argc, argv, "n:k:s:m:d:t:v")) != -1) {
		switch (opt) {
		case 'n':
			name = optarg;
			break;
		case 'k':
			if (parse_long(optarg, 0, LONG_MAX, &rounds) != 0) {
				usage(argv[0]);
			}
			break;
		case 's':
			if (parse_long(optarg, 0, INT32_MAX - 64, &size) != 0) {
				usage(argv[0]);
			}
			break;
		case 'm':
			if (parse_long(optarg, 0, INT32_MAX, &maxmsg) != 0) {
				usage(argv[0]);
			}
			break;
		case 'd':
			if (parse_long(optarg, 1, 1000000, &depth) != 0) {
				usage(argv[0]);
			}
			break;
		case 't':
			if (parse_long(optarg, -1, INT32_MAX, &timeout) != 0) {
				usage(argv[0]);
			}
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc) {
		usage(argv[0]);
	}
	if (verbose) {
		qb_log_init("qbclient", LOG_USER, LOG_INFO);
		qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_FALSE);
		qb_log_filter_ctl(QB_LOG_STDERR, QB_LOG_FILTER_ADD,
				  QB_LOG_FILTER_FILE, "*", LOG_TRACE);
		qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, QB_TRUE);
	}
	if (name == NULL && rounds < 0 && size < 0) {
		return interactive();
	}
	if (name == NULL || rounds < 0 || size < 0) {
		usage(argv[0]);
	}
	return load_mode(name, rounds, size, maxmsg, depth, timeout);
}
