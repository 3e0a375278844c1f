/*
 * hostile.c -- a raw libqb IPC client that does NOT use libqb: it performs
 * the handshake and the SHM ring protocol by hand (plain sockets, mmap and
 * glibc semaphores) and then misbehaves in one chosen way, reporting what
 * the server did.
 *
 * Usage: hostile NAME ATTACK [ARG]
 *
 * Output (stdout):
 *   dir=DIR                      the connection directory (when a handshake
 *                                response was received)
 *   result=R key=value...        R is one of
 *       alive         the server still answers: a hand-made echo round trip
 *                     verified after the attack (handshake attacks: the
 *                     socket is still open)
 *       disconnected  the server closed the setup socket (EOF/HUP)
 *       unresponsive  neither a verified answer nor a close within 3 s
 *       error         setup failed (msg=...), exit status 1
 * Exit status: 0 when the attack was carried out, 1 on setup failure,
 * 2 on usage errors, 3 when a ring access raised SIGBUS.
 *
 * Common result fields: phase=attack|check (where the close was seen),
 * ms=T (attack to verdict), skipped=N (unexpected responses seen during
 * the check), and, when a response arrived right after the attack chunk,
 * resp_n/resp_id/resp_size/resp_error (resp=0 when none arrived).
 *
 * Attacks:
 *   ok [K]             no attack, one valid round trip (must be alive); with
 *                      K, K round trips of 1..256 payload bytes (exercises
 *                      the wrap-around of this raw client; rounds=N)
 *   bad-magic          committed chunk whose magic word is not VALID
 *   huge-size          chunk size word 0x7fffff00, VALID magic
 *   size-beyond-write  chunk size word 4096: more than lies between
 *                      read_pt and write_pt, but within max_msg_size
 *   write-pt-oob       valid chunk, request write_pt := word_size + 100
 *   read-pt-oob        after one valid round trip, response read_pt :=
 *                      0xFFFFFF00, then a valid request (resp2=0|1 tells
 *                      whether its answer came); read_pt is then restored
 *                      and the usual check runs
 *   word-size [V]      word_size of all three headers := V (default
 *                      0x7fffffff, e.g. 1), then a valid request
 *   paths VICTIMDIR    hdr_path/data_path of all three headers :=
 *                      VICTIMDIR/victim-header, VICTIMDIR/victim-data, one
 *                      valid round trip, then close and exit
 *   hdr-size-lies      valid chunk whose request header size is chunk + 1000
 *   hdr-size-small     valid chunk whose request header size is 3
 *   zero-length        committed chunk of size 0, VALID magic
 *   disconnect-msg     valid request with id -3
 *   garbage-handshake  24 random bytes (id != -1) instead of the request;
 *                      response_bytes=N
 *   split-handshake    the request in 3 pieces 50 ms apart, then a round trip
 *   stall-handshake [S] only 10 bytes of the request, then wait up to S
 *                      seconds (default 5) for the server to close
 *   flood-doorbells [N] N (default 100000) doorbell bytes without chunks
 *                      (sent=N), then a round trip
 *   silent [K]         K times (default 20): a round trip, 20 ms of pause, then
 *                      a request whose doorbell is held back until its answer
 *                      or for 50 ms; silent=N counts those answered first
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include "peer-closed.h"

/* wire constants (docs/wire.md §4, §6) */
#define MSG_AUTHENTICATE	(-1)
#define MSG_DISCONNECT		(-3)
#define CONN_REQ_SIZE		24
#define CONN_RESP_SIZE		12328
#define RESP_OFF_ERROR		16
#define RESP_OFF_TYPE		24
#define RESP_OFF_MAX		28
#define RESP_OFF_REQUEST	40
#define RESP_OFF_RESPONSE	4136
#define RESP_OFF_EVENT		8232
#define PATH_FIELD		4096
#define TYPE_SHM		1

#define HDR_MAP_SIZE		8252
#define HDR_STRUCT_SIZE		8248
#define H_WRITE_PT		0
#define H_READ_PT		4
#define H_WORD_SIZE		8
#define H_HDR_PATH		12
#define H_DATA_PATH		4108
#define H_REF_COUNT		8204
#define H_SEM			8208

#define MAGIC_VALID		0xA1A1A1A1u
#define MAGIC_ALLOC		0xA110CED0u
#define MAGIC_DEAD		0xD0D0D0D0u
#define MAGIC_BAD		0xBADC0DE5u

#define REQ_HDR			16
#define RESP_HDR		24
#define ID_ECHO			1
#define MAX_MSG			12328
#define VERDICT_MS		3000
/* silent: how long a request waits for its answer before its doorbell goes */
#define SILENT_HOLD_MS		50
/* silent: the pause after a round trip, long enough for a server that does not
 * spin to have read that round trip's doorbell and gone back to sleep */
#define SILENT_PAUSE_MS		20
#define ATTACK_PAYLOAD		32
#define MAX_CHECK_PAYLOAD	256

struct ring {
	const char *what;
	char base[PATH_FIELD];
	unsigned char *hdr;
	uint32_t *data;
	size_t d;		/* data bytes */
	uint32_t n;		/* words, private copy */
	uint32_t wp;		/* private producer pointer (request ring) */
	uint32_t rp;		/* private consumer pointer (response, event) */
};

static int sock = -1;
static struct ring req_ring = { .what = "request" };
static struct ring resp_ring = { .what = "response" };
static struct ring ev_ring = { .what = "event" };
static uint32_t seed_counter = 1;
static struct timespec t_attack;

/* ------------------------------------------------------------------ */

static void on_sigbus(int sig)
{
	static const char m[] = "result=error msg=sigbus\n";
	ssize_t ignored;

	(void)sig;
	ignored = write(STDOUT_FILENO, m, sizeof(m) - 1);
	(void)ignored;
	_exit(3);
}

static long long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)(t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void fail(const char *msg, int err)
{
	if (err) {
		printf("result=error msg=%s errno=%d\n", msg, err);
	} else {
		printf("result=error msg=%s\n", msg);
	}
	fflush(stdout);
	exit(1);
}

static uint32_t *hword(struct ring *r, size_t off)
{
	return (uint32_t *)(void *)(r->hdr + off);
}

static sem_t *hsem(struct ring *r)
{
	return (sem_t *)(void *)(r->hdr + H_SEM);
}

static unsigned char pattern(uint32_t seed, size_t j)
{
	return (unsigned char)(seed * 37u + (uint32_t)j * 131u + (uint32_t)(j >> 8) * 7u + 11u);
}

static void put32(unsigned char *p, int32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static int32_t get32(const unsigned char *p)
{
	int32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* ------------------------------------------------------------------ */
/* socket helpers */

static int connect_service(const char *name)
{
	struct sockaddr_un a;
	int fd, one = 1;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail("socket", errno);
	}
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	/* abstract: NUL, then the name, zero padded; addrlen = whole struct */
	strncpy(a.sun_path + 1, name, sizeof(a.sun_path) - 2);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fail("connect", errno);
	}
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		fail("passcred", errno);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		fail("nonblock", errno);
	}
	return fd;
}

/* Send all of buf within timeout_ms; returns bytes sent, -1 if the peer closed. */
static ssize_t send_all(const void *buf, size_t len, int timeout_ms)
{
	struct timespec t0;
	size_t done = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < len) {
		ssize_t rc = send(sock, (const char *)buf + done, len - done, MSG_NOSIGNAL);

		if (rc > 0) {
			done += (size_t)rc;
			continue;
		}
		if (rc < 0 && errno == EINTR) {
			continue;
		}
		if (rc < 0 && errno == EAGAIN) {
			struct pollfd p = { sock, POLLOUT, 0 };
			long long left = timeout_ms - ms_since(&t0);

			if (left <= 0) {
				break;
			}
			if (poll(&p, 1, (int)left) > 0 && (p.revents & (POLLHUP | POLLERR))) {
				return done > 0 ? (ssize_t)done : -1;
			}
			continue;
		}
		return done > 0 ? (ssize_t)done : -1;	/* EPIPE, ECONNRESET */
	}
	return (ssize_t)done;
}

/*
 * Receive up to len bytes within timeout_ms.  *eof is set when the peer
 * closed (EOF, reset or HUP).  Returns the bytes received.
 */
static size_t recv_upto(void *buf, size_t len, int timeout_ms, int *eof)
{
	struct timespec t0;
	size_t done = 0;

	*eof = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < len) {
		ssize_t rc = recv(sock, (char *)buf + done, len - done, MSG_DONTWAIT);

		if (rc > 0) {
			done += (size_t)rc;
			continue;
		}
		if (rc == 0 || (errno != EAGAIN && errno != EINTR)) {
			*eof = 1;
			break;
		}
		{
			struct pollfd p = { sock, POLLIN | POLLRDHUP, 0 };
			long long left = timeout_ms - ms_since(&t0);

			if (left <= 0 || poll(&p, 1, (int)left) == 0) {
				break;
			}
		}
	}
	return done;
}

static int doorbell(void)
{
	char b = 0x15;

	return send_all(&b, 1, VERDICT_MS) == 1 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* ring helpers (single mapping, wrap-around by hand) */

static uint32_t step(const struct ring *r, uint32_t idx, uint32_t len)
{
	uint64_t next = (uint64_t)idx + 2u + (len + 3u) / 4u;

	return (uint32_t)(next % r->n);
}

static void ring_put(struct ring *r, uint32_t word, const void *src, size_t len)
{
	size_t off = (size_t)word * 4u;
	size_t first = len < r->d - off ? len : r->d - off;

	memcpy((unsigned char *)r->data + off, src, first);
	memcpy(r->data, (const unsigned char *)src + first, len - first);
}

static void ring_get(struct ring *r, uint32_t word, void *dst, size_t len)
{
	size_t off = (size_t)word * 4u;
	size_t first = len < r->d - off ? len : r->d - off;

	memcpy(dst, (unsigned char *)r->data + off, first);
	memcpy((unsigned char *)dst + first, r->data, len - first);
}

static void attach(struct ring *r, const unsigned char *resp_field, size_t d)
{
	char path[PATH_FIELD + 16];
	struct stat st;
	void *p;
	int fd;

	memcpy(r->base, resp_field, PATH_FIELD);
	r->base[PATH_FIELD - 1] = '\0';
	if (r->base[0] != '/') {
		fail("relative-path", 0);
	}

	snprintf(path, sizeof(path), "%s-header", r->base);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fail("open-header", errno);
	}
	if (fstat(fd, &st) < 0 || st.st_size < HDR_STRUCT_SIZE) {
		fail("header-size", errno);
	}
	p = mmap(NULL, HDR_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap-header", errno);
	}
	close(fd);
	r->hdr = p;

	snprintf(path, sizeof(path), "%s-data", r->base);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fail("open-data", errno);
	}
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < d) {
		fail("data-size", errno);
	}
	p = mmap(NULL, d, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap-data", errno);
	}
	close(fd);
	r->data = p;
	r->d = d;
	r->n = (uint32_t)(d / 4u);

	if (__atomic_load_n(hword(r, H_WORD_SIZE), __ATOMIC_ACQUIRE) != r->n) {
		fail("word-size-mismatch", 0);
	}
	r->wp = __atomic_load_n(hword(r, H_WRITE_PT), __ATOMIC_ACQUIRE);
	r->rp = __atomic_load_n(hword(r, H_READ_PT), __ATOMIC_ACQUIRE);
	if (r->wp >= r->n || r->rp >= r->n) {
		fail("bad-initial-pointers", 0);
	}
	__atomic_fetch_add((int32_t *)(void *)hword(r, H_REF_COUNT), 1, __ATOMIC_SEQ_CST);
}

/* Free bytes in the request ring as the producer sees them. */
static size_t request_free_bytes(void)
{
	struct ring *r = &req_ring;
	uint32_t rd = __atomic_load_n(hword(r, H_READ_PT), __ATOMIC_ACQUIRE);
	uint32_t w = r->wp;

	if (rd >= r->n) {
		return 0;
	}
	if (w == rd) {
		return (size_t)r->n * 4u;
	}
	if (w > rd) {
		return (size_t)(rd - w + r->n - 1u) * 4u;
	}
	return (size_t)(rd - w - 1u) * 4u;
}

/*
 * Write one chunk of `len` payload bytes into the request ring with the
 * given size word and final magic; write_pt is stored as `wp_value` (or the
 * real next index when wp_value is UINT32_MAX).  Posts the semaphore.
 */
static void write_chunk(const void *payload, uint32_t len, uint32_t size_word,
			uint32_t magic, uint32_t wp_value)
{
	struct ring *r = &req_ring;
	uint32_t w = r->wp;
	uint32_t next = step(r, w, len);

	r->data[w] = 0;
	__atomic_store_n(&r->data[(w + 1u) % r->n], MAGIC_ALLOC, __ATOMIC_RELEASE);
	if (len > 0) {
		ring_put(r, (w + 2u) % r->n, payload, len);
	}
	r->data[w] = size_word;
	r->wp = next;
	__atomic_store_n(hword(r, H_WRITE_PT), wp_value == UINT32_MAX ? next : wp_value,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&r->data[(w + 1u) % r->n], magic, __ATOMIC_RELEASE);
	sem_post(hsem(r));
}

/* Build an echo request: header {id, size=hdr_size} + payload_len bytes. */
static uint32_t build_request(unsigned char *buf, int32_t id, int32_t hdr_size,
			      uint32_t payload_len, uint32_t seed)
{
	uint32_t j;

	memset(buf, 0, REQ_HDR);
	put32(buf, id);
	put32(buf + 8, hdr_size);
	for (j = 0; j < payload_len; j++) {
		buf[REQ_HDR + j] = pattern(seed, j);
	}
	return REQ_HDR + payload_len;
}

struct response {
	int got;
	uint32_t n;
	int32_t id, size, error;
	unsigned char body[MAX_CHECK_PAYLOAD];
};

/* Take one response from the response ring (a token was already taken). */
static int take_response(struct response *out)
{
	struct ring *r = &resp_ring;
	uint32_t rp = r->rp;
	uint32_t magic = __atomic_load_n(&r->data[(rp + 1u) % r->n], __ATOMIC_ACQUIRE);
	uint32_t len;
	unsigned char head[RESP_HDR];

	memset(out, 0, sizeof(*out));
	if (magic != MAGIC_VALID) {
		return -1;
	}
	len = r->data[rp];
	if (len > r->d - 12u) {
		return -1;
	}
	memset(head, 0, sizeof(head));
	ring_get(r, (rp + 2u) % r->n, head, len < RESP_HDR ? len : RESP_HDR);
	if (len > RESP_HDR) {
		uint32_t body = len - RESP_HDR;

		ring_get(r, (uint32_t)((rp + 2u + RESP_HDR / 4u) % r->n), out->body,
			 body < sizeof(out->body) ? body : sizeof(out->body));
	}
	out->got = 1;
	out->n = len;
	out->id = get32(head);
	out->size = get32(head + 8);
	out->error = get32(head + 16);

	r->data[rp] = 0;
	__atomic_store_n(&r->data[(rp + 1u) % r->n], MAGIC_DEAD, __ATOMIC_RELEASE);
	r->rp = step(r, rp, len);
	__atomic_store_n(hword(r, H_READ_PT), r->rp, __ATOMIC_RELEASE);
	return 0;
}

enum wait_result { W_TIMEOUT, W_RESPONSE, W_CLOSED, W_BADCHUNK };

/* Wait up to timeout_ms for a response or a close of the setup socket. */
static enum wait_result wait_response(int timeout_ms, struct response *out)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec abs;

		if (sem_trywait(hsem(&resp_ring)) == 0) {
			return take_response(out) == 0 ? W_RESPONSE : W_BADCHUNK;
		}
		if (peer_closed(sock, 0)) {
			return W_CLOSED;
		}
		if (ms_since(&t0) >= timeout_ms) {
			return W_TIMEOUT;
		}
		clock_gettime(CLOCK_REALTIME, &abs);
		abs.tv_nsec += 10 * 1000000;
		if (abs.tv_nsec >= 1000000000) {
			abs.tv_sec++;
			abs.tv_nsec -= 1000000000;
		}
		if (sem_timedwait(hsem(&resp_ring), &abs) == 0) {
			return take_response(out) == 0 ? W_RESPONSE : W_BADCHUNK;
		}
	}
}

/* ------------------------------------------------------------------ */
/* verdicts */

struct report {
	const char *result;
	const char *phase;
	struct response attack_resp;
	int attack_resp_wanted;
	int skipped;
	char extra[256];
};

static void print_report(const struct report *rep)
{
	printf("result=%s", rep->result);
	if (rep->phase != NULL) {
		printf(" phase=%s", rep->phase);
	}
	printf(" ms=%lld skipped=%d", ms_since(&t_attack), rep->skipped);
	if (rep->attack_resp_wanted) {
		const struct response *a = &rep->attack_resp;

		if (a->got) {
			printf(" resp=1 resp_n=%u resp_id=%d resp_size=%d resp_error=%d",
			       a->n, a->id, a->size, a->error);
		} else {
			printf(" resp=0");
		}
	}
	if (rep->extra[0]) {
		printf(" %s", rep->extra);
	}
	printf("\n");
	fflush(stdout);
}

/* After an attack chunk: wait for the first response or a close. */
static int observe_attack(struct report *rep, int timeout_ms)
{
	enum wait_result w;

	rep->attack_resp_wanted = 1;
	w = wait_response(timeout_ms, &rep->attack_resp);
	if (w == W_CLOSED) {
		rep->result = "disconnected";
		rep->phase = "attack";
		return 1;
	}
	if (w == W_BADCHUNK) {
		snprintf(rep->extra, sizeof(rep->extra), "note=bad-response-chunk");
	}
	return 0;
}

/*
 * A valid echo round trip by hand.  Responses that do not match are
 * skipped (counted).  Sets rep->result.
 */
/*
 * Waits up to timeout_ms for the echo of the request made with `seed` and
 * `plen` payload bytes. Returns 1 (rep: alive) when it came, verified; 0 on
 * timeout when `quiet` (rep untouched); otherwise -1 with rep saying why.
 */
static int await_echo(struct report *rep, uint32_t seed, uint32_t plen, int timeout_ms, int quiet)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct response resp;
		long long left = timeout_ms - ms_since(&t0);
		enum wait_result w = wait_response(left > 0 ? (int)left : 0, &resp);
		uint32_t j;
		int ok;

		if (w == W_TIMEOUT && quiet) {
			return 0;
		}
		if (w == W_CLOSED) {
			rep->result = "disconnected";
			rep->phase = "check";
			return -1;
		}
		if (w == W_TIMEOUT || w == W_BADCHUNK) {
			rep->result = "unresponsive";
			rep->phase = "check";
			if (w == W_BADCHUNK) {
				snprintf(rep->extra + strlen(rep->extra),
					 sizeof(rep->extra) - strlen(rep->extra),
					 "%snote=bad-response-chunk", rep->extra[0] ? " " : "");
			}
			return -1;
		}
		ok = resp.n == RESP_HDR + plen && resp.id == ID_ECHO &&
		     resp.size == (int32_t)(RESP_HDR + plen) && resp.error == 0;
		for (j = 0; ok && j < plen; j++) {
			ok = resp.body[j] == pattern(seed, j);
		}
		if (ok) {
			rep->result = "alive";
			rep->phase = "check";
			return 1;
		}
		rep->skipped++;
	}
}

/*
 * One echo request of plen payload bytes. Its doorbell is sent at once when
 * hold_ms < 0; otherwise after the answer, or after hold_ms without one (a
 * server may count on one byte per request: it is always sent). Returns 1
 * when the answer came before its doorbell, 0 when after, -1 when no verified
 * answer came (rep says why).
 */
static int echo_trip(struct report *rep, uint32_t plen, int hold_ms)
{
	unsigned char buf[REQ_HDR + MAX_CHECK_PAYLOAD];
	uint32_t seed = seed_counter++;
	uint32_t len = build_request(buf, ID_ECHO, (int32_t)(REQ_HDR + plen), plen, seed);
	int got;

	if (peer_closed(sock, 0)) {
		rep->result = "disconnected";
		rep->phase = "check";
		return -1;
	}
	if (request_free_bytes() < len + 12u) {
		rep->result = "unresponsive";
		rep->phase = "check";
		snprintf(rep->extra + strlen(rep->extra), sizeof(rep->extra) - strlen(rep->extra),
			 "%snote=request-ring-full", rep->extra[0] ? " " : "");
		return -1;
	}
	write_chunk(buf, len, len, MAGIC_VALID, UINT32_MAX);
	got = hold_ms >= 0 ? await_echo(rep, seed, plen, hold_ms, 1) : 0;
	if (got < 0) {
		return got;
	}
	if (doorbell() != 0) {
		rep->result = "disconnected";
		rep->phase = "check";
		return -1;
	}
	if (got == 1) {
		return 1;
	}
	return await_echo(rep, seed, plen, VERDICT_MS, 0) == 1 ? 0 : -1;
}

static void round_trip_sized(struct report *rep, uint32_t plen)
{
	echo_trip(rep, plen, -1);
}

static void round_trip(struct report *rep)
{
	round_trip_sized(rep, 48);
}

/* ------------------------------------------------------------------ */
/* handshake */

static void send_conn_request(int split)
{
	unsigned char req[CONN_REQ_SIZE];
	uint32_t max = MAX_MSG;
	int i;

	memset(req, 0, sizeof(req));
	put32(req, MSG_AUTHENTICATE);
	put32(req + 8, CONN_REQ_SIZE);
	memcpy(req + 16, &max, sizeof(max));
	if (!split) {
		if (send_all(req, sizeof(req), VERDICT_MS) != (ssize_t)sizeof(req)) {
			fail("handshake-send", errno);
		}
		return;
	}
	for (i = 0; i < 3; i++) {
		if (send_all(req + i * 8, 8, VERDICT_MS) != 8) {
			fail("handshake-send", errno);
		}
		if (i < 2) {
			usleep(50000);	/* the attack: pieces 50 ms apart */
		}
	}
}

static void handshake_attack(const char *attack, const char *arg)
{
	unsigned char buf[CONN_RESP_SIZE];
	struct timespec t0;
	size_t got;
	int eof, wait_ms = VERDICT_MS;

	if (strcmp(attack, "garbage-handshake") == 0) {
		unsigned char g[CONN_REQ_SIZE];
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		size_t j;

		if (fd < 0 || read(fd, g, sizeof(g)) != (ssize_t)sizeof(g)) {
			for (j = 0; j < sizeof(g); j++) {
				g[j] = pattern((uint32_t)getpid(), j);
			}
		}
		if (fd >= 0) {
			close(fd);
		}
		if (get32(g) == MSG_AUTHENTICATE) {
			g[0] = 0x42;
		}
		if (send_all(g, sizeof(g), VERDICT_MS) != (ssize_t)sizeof(g)) {
			fail("handshake-send", errno);
		}
	} else {
		unsigned char req[CONN_REQ_SIZE];
		uint32_t max = MAX_MSG;

		memset(req, 0, sizeof(req));
		put32(req, MSG_AUTHENTICATE);
		put32(req + 8, CONN_REQ_SIZE);
		memcpy(req + 16, &max, sizeof(max));
		if (send_all(req, 10, VERDICT_MS) != 10) {
			fail("handshake-send", errno);
		}
		if (arg != NULL) {
			wait_ms = atoi(arg) * 1000;
		} else {
			wait_ms = 5000;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t_attack = t0;
	got = recv_upto(buf, sizeof(buf), wait_ms, &eof);
	printf("result=%s ms=%lld response_bytes=%zu",
	       (eof && got < CONN_RESP_SIZE) ? "disconnected" : "alive", ms_since(&t0), got);
	if (got >= RESP_OFF_ERROR + 4) {
		printf(" resp_error=%d", get32(buf + RESP_OFF_ERROR));
	}
	printf("\n");
	fflush(stdout);
	exit(0);
}

static void handshake(int split)
{
	static unsigned char resp[CONN_RESP_SIZE];
	int32_t error, type;
	uint32_t max;
	size_t got, d;
	int eof, zero = 0;
	char dir[PATH_FIELD];
	char *slash;

	send_conn_request(split);
	got = recv_upto(resp, sizeof(resp), 5000, &eof);
	if (got < sizeof(resp)) {
		printf("result=error msg=%s response_bytes=%zu\n",
		       eof ? "handshake-closed" : "handshake-timeout", got);
		fflush(stdout);
		exit(1);
	}
	(void)setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &zero, sizeof(zero));
	if (get32(resp) != MSG_AUTHENTICATE || get32(resp + 8) != CONN_RESP_SIZE) {
		fail("bad-response-header", 0);
	}
	error = get32(resp + RESP_OFF_ERROR);
	if (error != 0) {
		printf("result=error msg=rejected errno=%d\n", -error);
		fflush(stdout);
		exit(1);
	}
	type = get32(resp + RESP_OFF_TYPE);
	if (type != TYPE_SHM) {
		printf("result=error msg=transport type=%d\n", type);
		fflush(stdout);
		exit(1);
	}
	memcpy(&max, resp + RESP_OFF_MAX, sizeof(max));
	if (max < CONN_REQ_SIZE || max > (1u << 30)) {
		fail("bad-max-msg-size", 0);
	}
	d = ((size_t)max + 13u + 4095u) / 4096u * 4096u;
	attach(&req_ring, resp + RESP_OFF_REQUEST, d);
	attach(&resp_ring, resp + RESP_OFF_RESPONSE, d);
	attach(&ev_ring, resp + RESP_OFF_EVENT, d);

	memcpy(dir, req_ring.base, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
	}
	printf("dir=%s\n", dir);
	fflush(stdout);
}

/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: hostile NAME ATTACK [ARG]\n"
		"attacks: ok [K] bad-magic huge-size size-beyond-write write-pt-oob read-pt-oob\n"
		"         word-size [V] paths VICTIMDIR hdr-size-lies hdr-size-small zero-length\n"
		"         disconnect-msg garbage-handshake split-handshake stall-handshake [S]\n"
		"         flood-doorbells [N] silent [K]\n");
	exit(2);
}

static void set_path(struct ring *r, size_t off, const char *dir, const char *leaf)
{
	char path[PATH_FIELD];

	memset(path, 0, sizeof(path));
	snprintf(path, sizeof(path), "%s/%s", dir, leaf);
	memcpy(r->hdr + off, path, sizeof(path));
}

/* Write one attack chunk carrying an echo request, then ring the doorbell. */
static void attack_chunk(int32_t id, int32_t hdr_size, uint32_t size_word,
			 uint32_t magic, uint32_t wp_value)
{
	unsigned char buf[REQ_HDR + ATTACK_PAYLOAD];
	uint32_t len = build_request(buf, id, hdr_size, ATTACK_PAYLOAD, seed_counter++);

	write_chunk(buf, len, size_word == UINT32_MAX ? len : size_word, magic, wp_value);
	(void)doorbell();
}

int main(int argc, char **argv)
{
	const char *name, *attack, *arg;
	struct report rep;
	const uint32_t full = REQ_HDR + ATTACK_PAYLOAD;

	if (argc < 3 || argc > 4) {
		usage();
	}
	name = argv[1];
	attack = argv[2];
	arg = argc == 4 ? argv[3] : NULL;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGBUS, on_sigbus);
	memset(&rep, 0, sizeof(rep));
	rep.result = "unresponsive";

	if (strcmp(attack, "ok") != 0 && strcmp(attack, "bad-magic") != 0 &&
	    strcmp(attack, "huge-size") != 0 && strcmp(attack, "size-beyond-write") != 0 &&
	    strcmp(attack, "write-pt-oob") != 0 && strcmp(attack, "read-pt-oob") != 0 &&
	    strcmp(attack, "word-size") != 0 && strcmp(attack, "paths") != 0 &&
	    strcmp(attack, "hdr-size-lies") != 0 && strcmp(attack, "hdr-size-small") != 0 &&
	    strcmp(attack, "zero-length") != 0 && strcmp(attack, "disconnect-msg") != 0 &&
	    strcmp(attack, "garbage-handshake") != 0 && strcmp(attack, "split-handshake") != 0 &&
	    strcmp(attack, "stall-handshake") != 0 && strcmp(attack, "flood-doorbells") != 0 &&
	    strcmp(attack, "silent") != 0) {
		usage();
	}
	if (strcmp(attack, "paths") == 0 && arg == NULL) {
		usage();
	}

	sock = connect_service(name);
	if (strcmp(attack, "garbage-handshake") == 0 || strcmp(attack, "stall-handshake") == 0) {
		handshake_attack(attack, arg);
	}
	handshake(strcmp(attack, "split-handshake") == 0);
	clock_gettime(CLOCK_MONOTONIC, &t_attack);

	if (strcmp(attack, "ok") == 0 && arg != NULL) {
		long k = strtol(arg, NULL, 0), i;

		for (i = 0; i < k; i++) {
			round_trip_sized(&rep, (uint32_t)((i * 37) % MAX_CHECK_PAYLOAD) + 1u);
			if (strcmp(rep.result, "alive") != 0) {
				break;
			}
		}
		snprintf(rep.extra, sizeof(rep.extra), "rounds=%ld", i);
	} else if (strcmp(attack, "ok") == 0 || strcmp(attack, "split-handshake") == 0) {
		round_trip(&rep);
	} else if (strcmp(attack, "bad-magic") == 0) {
		attack_chunk(ID_ECHO, (int32_t)full, UINT32_MAX, MAGIC_BAD, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "huge-size") == 0) {
		attack_chunk(ID_ECHO, (int32_t)full, 0x7fffff00u, MAGIC_VALID, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "size-beyond-write") == 0) {
		attack_chunk(ID_ECHO, (int32_t)full, 4096u, MAGIC_VALID, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "write-pt-oob") == 0) {
		attack_chunk(ID_ECHO, (int32_t)full, UINT32_MAX, MAGIC_VALID, req_ring.n + 100u);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);	/* stores the real write_pt again */
		}
	} else if (strcmp(attack, "read-pt-oob") == 0) {
		round_trip(&rep);
		if (strcmp(rep.result, "alive") != 0) {
			printf("result=error msg=first-round-trip-%s\n", rep.result);
			fflush(stdout);
			return 1;
		}
		memset(&rep, 0, sizeof(rep));
		rep.result = "unresponsive";
		clock_gettime(CLOCK_MONOTONIC, &t_attack);
		__atomic_store_n(hword(&resp_ring, H_READ_PT), 0xFFFFFF00u, __ATOMIC_RELEASE);
		attack_chunk(ID_ECHO, (int32_t)full, UINT32_MAX, MAGIC_VALID, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			snprintf(rep.extra + strlen(rep.extra), sizeof(rep.extra) - strlen(rep.extra),
				 "%sresp2=%d", rep.extra[0] ? " " : "", rep.attack_resp.got);
			__atomic_store_n(hword(&resp_ring, H_READ_PT), resp_ring.rp,
					 __ATOMIC_RELEASE);
			round_trip(&rep);
		}
	} else if (strcmp(attack, "word-size") == 0) {
		uint32_t v = arg != NULL ? (uint32_t)strtoul(arg, NULL, 0) : 0x7fffffffu;

		__atomic_store_n(hword(&req_ring, H_WORD_SIZE), v, __ATOMIC_RELEASE);
		__atomic_store_n(hword(&resp_ring, H_WORD_SIZE), v, __ATOMIC_RELEASE);
		__atomic_store_n(hword(&ev_ring, H_WORD_SIZE), v, __ATOMIC_RELEASE);
		round_trip(&rep);
	} else if (strcmp(attack, "paths") == 0) {
		struct ring *rings[3] = { &req_ring, &resp_ring, &ev_ring };
		int i;

		for (i = 0; i < 3; i++) {
			set_path(rings[i], H_HDR_PATH, arg, "victim-header");
			set_path(rings[i], H_DATA_PATH, arg, "victim-data");
		}
		round_trip(&rep);
	} else if (strcmp(attack, "hdr-size-lies") == 0) {
		attack_chunk(ID_ECHO, (int32_t)full + 1000, UINT32_MAX, MAGIC_VALID, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "hdr-size-small") == 0) {
		attack_chunk(ID_ECHO, 3, UINT32_MAX, MAGIC_VALID, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "zero-length") == 0) {
		write_chunk(NULL, 0, 0, MAGIC_VALID, UINT32_MAX);
		(void)doorbell();
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "disconnect-msg") == 0) {
		attack_chunk(MSG_DISCONNECT, (int32_t)full, UINT32_MAX, MAGIC_VALID, UINT32_MAX);
		if (!observe_attack(&rep, VERDICT_MS)) {
			round_trip(&rep);
		}
	} else if (strcmp(attack, "silent") == 0) {
		long k = arg != NULL ? strtol(arg, NULL, 0) : 20, i, silent = 0;
		struct timespec pause = { 0, SILENT_PAUSE_MS * 1000000L };

		for (i = 0; i < k; i++) {
			int got;

			round_trip(&rep);
			if (strcmp(rep.result, "alive") != 0) {
				break;
			}
			nanosleep(&pause, NULL);
			got = echo_trip(&rep, 48, SILENT_HOLD_MS);
			if (got < 0) {
				break;
			}
			silent += got;
		}
		snprintf(rep.extra, sizeof(rep.extra), "silent=%ld rounds=%ld", silent, i);
	} else if (strcmp(attack, "flood-doorbells") == 0) {
		long count = arg != NULL ? strtol(arg, NULL, 0) : 100000;
		static char bells[4096];
		long sent = 0;

		memset(bells, 0x15, sizeof(bells));
		while (sent < count) {
			size_t chunk = (size_t)(count - sent) < sizeof(bells) ?
				       (size_t)(count - sent) : sizeof(bells);
			ssize_t rc = send_all(bells, chunk, 20000);

			if (rc > 0) {
				sent += rc;
			}
			if (rc != (ssize_t)chunk) {
				break;
			}
		}
		snprintf(rep.extra, sizeof(rep.extra), "sent=%ld", sent);
		round_trip(&rep);
	}
	print_report(&rep);
	close(sock);
	return 0;
}
