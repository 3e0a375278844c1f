/*
 * fuzz.c -- a seeded fuzzer over every byte a libqb IPC client can write,
 * without libqb: the 24-byte connection request (fields, splits, truncation,
 * trailing bytes), and then, on the transport the server chose,
 *   SHM:    the three ring headers (write_pt, read_pt, word_size, paths,
 *           ref_count, semaphore words, flow control), chunk size and magic
 *           words, request headers and payloads, data words anywhere in the
 *           rings, semaphore posts, doorbell bytes on the setup socket, and
 *           a truncated ring file now and then;
 *   SOCKET: datagrams of any length and header to the request socket, the
 *           control file's words, bytes on the setup socket, and sockets
 *           bound but never connected (or not bound at all).
 * Valid requests are mixed in, so the server keeps parsing past the first
 * fault. Each case is one connection, closed (or abandoned) at its end.
 *
 * Usage: fuzz NAME SEED [-n CASES] [-t SECONDS] [-f FIRST]
 *   Runs cases FIRST, FIRST+1, ... until CASES were run or SECONDS passed.
 *   Case i draws everything from a generator seeded with (SEED, i), so
 *   `fuzz NAME SEED -f i -n 1` replays case i's bytes (what the server
 *   answers, and so what the case reads back, may differ from run to run).
 *
 * stdout: "progress cases=N" every 500 cases; at the end
 *   "result=done cases=N accepted=A shm=S socket=K refused=R disconnected=D
 *    handshake_timeouts=H ms=T"
 * or, when the server stops accepting connections,
 *   "result=server-gone case=I errno=E cases=N"      (exit status 4).
 * (accepted: handshakes answered with success; refused: answered with an
 * error; disconnected: cases the server ended before the case did.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <sys/un.h>

#include "peer-closed.h"

#define CONN_REQ_SIZE		24
#define CONN_RESP_SIZE		12328
#define RESP_OFF_ERROR		16
#define RESP_OFF_TYPE		24
#define RESP_OFF_MAX		28
#define RESP_OFF_REQUEST	40
#define RESP_OFF_RESPONSE	4136
#define RESP_OFF_EVENT		8232
#define PATH_FIELD		4096
#define TYPE_SOCKET		0
#define TYPE_SHM		1
#define HDR_MAP_SIZE		8252
#define HDR_STRUCT_SIZE		8248
#define H_WRITE_PT		0
#define H_READ_PT		4
#define H_WORD_SIZE		8
#define H_SEM			8208
#define MAGIC_VALID		0xA1A1A1A1u
#define MAGIC_ALLOC		0xA110CED0u
#define MAGIC_DEAD		0xD0D0D0D0u
#define CONTROL_SIZE		24
#define MAX_MAP			(8u << 20)	/* rings larger than this are not mapped */
#define HANDSHAKE_MS		3000

/* ---- deterministic generator: splitmix64 ---- */

static uint64_t rng_state;

static uint64_t next64(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(next64() % n);
}

static int chance(uint32_t percent)
{
	return below(100) < percent;
}

static uint32_t any32(void)
{
	static const uint32_t edges[] = { 0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 23, 24, 25, 4095, 4096, 4097,
		0x7fffffffu, 0x80000000u, 0xffffffffu, 0xfffffffeu, 0xffffff00u, MAGIC_VALID, MAGIC_ALLOC, MAGIC_DEAD };

	return chance(50) ? edges[below(sizeof(edges) / sizeof(edges[0]))] : (uint32_t)next64();
}

static void fill(void *p, size_t n)
{
	unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		b[i] = (unsigned char)next64();
	}
}

/* ---- time, sockets ---- */

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int setup_connect(const char *name, int *err)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	strncpy(a.sun_path + 1, name, sizeof(a.sun_path) - 2);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

static void send_bytes(int fd, const void *p, size_t n)
{
	if (n > 0) {
		(void)send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
}

/* Reads up to n bytes within ms; returns the count (short on close or timeout). */
static size_t recv_upto(int fd, unsigned char *buf, size_t n, int ms)
{
	long long end = now_ms() + ms;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		long long left = end - now_ms();
		ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);

		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EINTR) || left <= 0) {
			break;
		}
		(void)poll(&p, 1, (int)left);
	}
	return got;
}

/* ---- statistics ---- */

static uint64_t current_case;
static unsigned long cases, accepted, shm_cases, socket_cases, refused, disconnected, handshake_timeouts;

/* ---- the connection request ---- */

struct handshake {
	int fd;
	int ok;
	int32_t type;
	uint32_t max;
	char request[PATH_FIELD];
	char response[PATH_FIELD];
	char event[PATH_FIELD];
};

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Sends a (mostly valid) request, in pieces or not, and reads the answer. 0 = case over. */
static int fuzz_handshake(struct handshake *h)
{
	static unsigned char resp[CONN_RESP_SIZE];
	unsigned char req[CONN_REQ_SIZE + 64];
	size_t len = CONN_REQ_SIZE, sent = 0, got;
	static const uint32_t sizes[] = { 0, 1, 24, 100, 4096, 12328, 65536, 1u << 20, 1u << 30, 0xffffffffu };

	memset(req, 0, sizeof(req));
	put32(req, chance(85) ? 0xffffffffu : any32());		/* id: -1 authenticate */
	put32(req + 8, chance(85) ? CONN_REQ_SIZE : any32());	/* size */
	put32(req + 16, chance(70) ? sizes[below(6)] + below(64) : chance(50) ? sizes[below(10)] : any32());
	if (chance(20)) {
		fill(req + 4, 4);
		fill(req + 12, 4);
		fill(req + 20, 4);
	}
	if (chance(10)) {
		len = below(CONN_REQ_SIZE);			/* truncated, then closed */
	} else if (chance(10)) {
		len = CONN_REQ_SIZE + 1 + below(64);		/* trailing bytes */
		fill(req + CONN_REQ_SIZE, len - CONN_REQ_SIZE);
	}
	while (sent < len) {
		size_t piece = chance(15) ? 1 + below((uint32_t)(len - sent)) : len - sent;

		send_bytes(h->fd, req + sent, piece);
		sent += piece;
		if (sent < len && chance(50)) {
			(void)poll(NULL, 0, 1);		/* let the server see the pieces apart */
		}
	}
	if (len < CONN_REQ_SIZE) {
		return 0;
	}
	got = recv_upto(h->fd, resp, sizeof(resp), HANDSHAKE_MS);
	if (got < sizeof(resp)) {
		if (got == 0 && !peer_closed(h->fd, 0)) {
			handshake_timeouts++;
			printf("note=handshake-timeout case=%llu request=", (unsigned long long)current_case);
			for (sent = 0; sent < len; sent++) {
				printf("%02x", req[sent]);
			}
			printf("\n");
			fflush(stdout);
		}
		return 0;
	}
	if ((int32_t)get32(resp + RESP_OFF_ERROR) != 0) {
		refused++;
		return 0;
	}
	accepted++;
	h->ok = 1;
	h->type = (int32_t)get32(resp + RESP_OFF_TYPE);
	h->max = get32(resp + RESP_OFF_MAX);
	memcpy(h->request, resp + RESP_OFF_REQUEST, PATH_FIELD);
	memcpy(h->response, resp + RESP_OFF_RESPONSE, PATH_FIELD);
	memcpy(h->event, resp + RESP_OFF_EVENT, PATH_FIELD);
	h->request[PATH_FIELD - 1] = h->response[PATH_FIELD - 1] = h->event[PATH_FIELD - 1] = '\0';
	return 1;
}

/* ---- SHM ---- */

struct ring {
	unsigned char *hdr;
	uint32_t *data;
	size_t hdr_len, d;
	uint32_t n, wp;
	int fd_data;
};

static int map_ring(struct ring *r, const char *base, size_t d)
{
	char path[PATH_FIELD + 16];
	struct stat st;
	int fd;

	memset(r, 0, sizeof(*r));
	r->fd_data = -1;
	snprintf(path, sizeof(path), "%s-header", base);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		return -1;
	}
	if (fstat(fd, &st) < 0 || st.st_size < HDR_STRUCT_SIZE) {
		close(fd);
		return -1;
	}
	r->hdr_len = HDR_MAP_SIZE;
	r->hdr = mmap(NULL, r->hdr_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (r->hdr == MAP_FAILED) {
		r->hdr = NULL;
		return -1;
	}
	snprintf(path, sizeof(path), "%s-data", base);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size < d) {
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	r->data = mmap(NULL, d, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->data == MAP_FAILED) {
		r->data = NULL;
		close(fd);
		return -1;
	}
	r->fd_data = fd;
	r->d = d;
	r->n = (uint32_t)(d / 4);
	r->wp = __atomic_load_n((uint32_t *)(void *)(r->hdr + H_WRITE_PT), __ATOMIC_ACQUIRE) % r->n;
	return 0;
}

static void unmap_ring(struct ring *r)
{
	if (r->hdr != NULL) {
		munmap(r->hdr, r->hdr_len);
	}
	if (r->data != NULL) {
		munmap(r->data, r->d);
	}
	if (r->fd_data >= 0) {
		close(r->fd_data);
	}
	memset(r, 0, sizeof(*r));
}

static uint32_t *hword(struct ring *r, size_t off)
{
	return (uint32_t *)(void *)(r->hdr + off);
}

/*
 * The semaphores by hand (glibc's sem_t with 64-bit atomics: the value in the
 * low word): glibc aborts the process when a semaphore it operates on was
 * scribbled over, and scribbling over them is part of the case.
 */
static void sem_up(struct ring *r)
{
	__atomic_fetch_add(hword(r, H_SEM), 1, __ATOMIC_RELEASE);
}

static int sem_take(struct ring *r)
{
	uint32_t v = __atomic_load_n(hword(r, H_SEM), __ATOMIC_ACQUIRE);

	while (v > 0 && v < 0x10000000u) {
		if (__atomic_compare_exchange_n(hword(r, H_SEM), &v, v - 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			return 1;
		}
	}
	return 0;
}

/* A chunk at the private write pointer: size word, magic, payload (wrapping), write_pt, post. */
static void put_chunk(struct ring *r, const unsigned char *payload, uint32_t len, uint32_t size_word, uint32_t magic)
{
	uint32_t w = r->wp, i, words = (len + 3) / 4;

	if (words + 3 >= r->n) {
		return;
	}
	r->data[w] = 0;
	__atomic_store_n(&r->data[(w + 1) % r->n], MAGIC_ALLOC, __ATOMIC_RELEASE);
	for (i = 0; i < words; i++) {
		uint32_t v = 0;

		memcpy(&v, payload + i * 4, len - i * 4 < 4 ? len - i * 4 : 4);
		r->data[(w + 2 + i) % r->n] = v;
	}
	r->data[w] = size_word;
	r->wp = (w + 2 + words) % r->n;
	__atomic_store_n(hword(r, H_WRITE_PT), r->wp, __ATOMIC_RELEASE);
	__atomic_store_n(&r->data[(w + 1) % r->n], magic, __ATOMIC_RELEASE);
	sem_up(r);
}

/* An echo request (id 1) of `len` bytes, or another id and a lying size field. */
static uint32_t make_request(unsigned char *buf, uint32_t cap, int valid)
{
	static const int32_t ids[] = { 1, 1, 1, 2, 3, -3, -1, 0, 0x7fffffff, (int32_t)0x80000000 };
	uint32_t len = 16 + below(chance(80) ? 256 : cap > 16 ? cap - 16 : 1);

	if (len > cap) {
		len = cap;
	}
	fill(buf, len);
	if (valid) {
		put32(buf, 1);
		put32(buf + 4, 0);
		put32(buf + 8, len);
		put32(buf + 12, 0);
	} else {
		put32(buf, (uint32_t)ids[below(10)]);
		put32(buf + 8, chance(50) ? len : any32());
		if (get32(buf) == 2 && len >= 24) {		/* EVENTS {count, len}: keep it small */
			put32(buf + 16, below(200));
			put32(buf + 20, below(chance(90) ? 256 : 20000));
		}
	}
	return len;
}

static void fuzz_shm(struct handshake *h)
{
	static unsigned char buf[70000];
	struct ring rings[3];
	const char *bases[3];
	size_t d = ((size_t)h->max + 13u + 4095u) / 4096u * 4096u;
	uint32_t ops = 1 + below(60), k;
	int i, dead = 0, truncated = -1, closed = 0;

	shm_cases++;
	if (d > MAX_MAP || h->max < 24) {
		return;
	}
	bases[0] = h->request;
	bases[1] = h->response;
	bases[2] = h->event;
	for (i = 0; i < 3; i++) {
		if (map_ring(&rings[i], bases[i], d) < 0) {
			while (i >= 0) {
				unmap_ring(&rings[i--]);
			}
			return;
		}
	}
	for (k = 0; k < ops && !dead; k++) {
		struct ring *r = &rings[below(3)];
		uint32_t op = below(100), len;

		if (op < 30) {				/* a valid echo request */
			len = make_request(buf, (uint32_t)(d - 64 < sizeof(buf) ? d - 64 : sizeof(buf)), 1);
			put_chunk(&rings[0], buf, len, len, MAGIC_VALID);
			send_bytes(h->fd, "\x15", 1);
		} else if (op < 50) {			/* a chunk with any size word, magic, header */
			len = make_request(buf, (uint32_t)(d - 64 < sizeof(buf) ? d - 64 : sizeof(buf)), 0);
			put_chunk(&rings[0], buf, len, chance(50) ? len : any32(), chance(70) ? MAGIC_VALID : any32());
			send_bytes(h->fd, "\x15", 1);
		} else if (op < 65) {			/* a header word of any ring, or its semaphore */
			static const size_t offs[] = { H_WRITE_PT, H_READ_PT, H_WORD_SIZE, 8204, H_SEM, H_SEM + 4, H_SEM + 8, 8240, 12, 4108 };
			size_t off = chance(80) ? offs[below(10)] : 4u * below(HDR_STRUCT_SIZE / 4);

			__atomic_store_n(hword(r, off), any32(), __ATOMIC_RELEASE);
			if (chance(50)) {
				send_bytes(h->fd, "\x15", 1);
			}
		} else if (op < 75) {			/* any data word of any ring */
			r->data[below(r->n)] = any32();
		} else if (op < 83) {			/* doorbell bytes, any number, any value */
			len = below(chance(90) ? 8 : 4096);
			fill(buf, len);
			send_bytes(h->fd, buf, len);
		} else if (op < 88) {			/* semaphore posts without chunks */
			for (len = below(5); len > 0; len--) {
				sem_up(&rings[0]);
			}
		} else if (op < 97) {			/* read what the server wrote: take tokens, move read_pt on */
			struct ring *from = &rings[1 + below(2)];

			while (sem_take(from)) {
				uint32_t rp = __atomic_load_n(hword(from, H_READ_PT), __ATOMIC_ACQUIRE) % from->n;
				uint32_t size = from->data[rp];

				if (__atomic_load_n(&from->data[(rp + 1) % from->n], __ATOMIC_ACQUIRE) != MAGIC_VALID || size > from->d) {
					break;
				}
				__atomic_store_n(&from->data[(rp + 1) % from->n], MAGIC_DEAD, __ATOMIC_RELEASE);
				__atomic_store_n(hword(from, H_READ_PT), (rp + 2 + (size + 3) / 4) % from->n, __ATOMIC_RELEASE);
			}
		} else if (truncated < 0 && chance(30)) { /* a ring's data file cut short (the server's access faults) */
			truncated = (int)below(3);
			if (ftruncate(rings[truncated].fd_data, chance(50) ? 0 : 4096) == 0) {
				munmap(rings[truncated].data, rings[truncated].d);
				rings[truncated].data = NULL;
				dead = 1;	/* our own mapping would fault too: end the case */
				send_bytes(h->fd, "\x15", 1);
			}
		}
		if (chance(20) && peer_closed(h->fd, (int)below(3))) {
			closed = 1;
			break;
		}
	}
	if (!closed && !dead && chance(50)) {
		closed = peer_closed(h->fd, 2);
	}
	disconnected += (unsigned long)closed;
	for (i = 0; i < 3; i++) {
		unmap_ring(&rings[i]);
	}
}

/* ---- SOCKET ---- */

static int dgram_bind(const char *base, const char *suffix)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "%s-%s", base, suffix);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void dgram_connect(int fd, const char *base, const char *suffix)
{
	struct sockaddr_un a;

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "%s-%s", base, suffix);
	(void)connect(fd, (struct sockaddr *)&a, sizeof(a));
}

static void fuzz_socket(struct handshake *h)
{
	static unsigned char buf[70000];
	uint32_t *control = NULL;
	uint32_t ops = 1 + below(60), k, cap = h->max < sizeof(buf) ? h->max : (uint32_t)sizeof(buf);
	int fd, resp = -1, ev = -1, closed = 0;

	socket_cases++;
	fd = open(h->request, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		control = mmap(NULL, CONTROL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (control == MAP_FAILED) {
			control = NULL;
		}
	}
	if (chance(95)) {
		resp = dgram_bind(h->response, "response");
		if (resp >= 0 && chance(95)) {
			dgram_connect(resp, h->response, "request");
		}
	}
	if (chance(90)) {
		ev = dgram_bind(h->response, "event");
		if (ev >= 0 && chance(95)) {
			dgram_connect(ev, h->response, "event-tx");
		}
	}
	for (k = 0; k < ops; k++) {
		uint32_t op = below(100), len;

		if (op < 35 && resp >= 0) {		/* a valid request */
			len = make_request(buf, cap, 1);
			(void)send(resp, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else if (op < 65 && resp >= 0) {	/* any datagram: length 0 to past the buffer, any header */
			len = chance(10) ? below(16) : chance(10) ? cap + below(64) : make_request(buf, cap, 0);
			if (len > sizeof(buf)) {
				len = sizeof(buf);
			}
			if (chance(30)) {
				fill(buf, len);
			}
			(void)send(resp, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else if (op < 75 && control != NULL) {	/* a control word */
			__atomic_store_n(&control[below(CONTROL_SIZE / 4)], any32(), __ATOMIC_RELEASE);
		} else if (op < 82) {			/* bytes on the setup socket */
			len = below(chance(90) ? 8 : 4096);
			fill(buf, len);
			send_bytes(h->fd, buf, len);
		} else if (resp >= 0) {			/* read what came back */
			while (recv(resp, buf, sizeof(buf), MSG_DONTWAIT) >= 0) {
			}
			if (ev >= 0) {
				while (recv(ev, buf, sizeof(buf), MSG_DONTWAIT) >= 0) {
				}
			}
		}
		if (chance(20) && peer_closed(h->fd, (int)below(3))) {
			closed = 1;
			break;
		}
	}
	if (!closed && chance(50)) {
		closed = peer_closed(h->fd, 2);
	}
	disconnected += (unsigned long)closed;
	if (control != NULL) {
		munmap(control, CONTROL_SIZE);
	}
	if (resp >= 0) {
		close(resp);
	}
	if (ev >= 0) {
		close(ev);
	}
}

/* ---- driver ---- */

/* One case. -errno when the server could not be reached at all. */
static int run_case(const char *name, uint64_t seed, uint64_t index)
{
	struct handshake h;
	int err = 0;

	current_case = index;
	rng_state = seed * 0xD1B54A32D192ED03ull ^ (index + 1) * 0x9E3779B97F4A7C15ull;
	(void)next64();
	memset(&h, 0, sizeof(h));
	h.fd = setup_connect(name, &err);
	if (h.fd < 0) {
		return err == EAGAIN ? 0 : -err;	/* a full listen queue is not a dead server */
	}
	if (fuzz_handshake(&h)) {
		if (h.type == TYPE_SHM) {
			fuzz_shm(&h);
		} else if (h.type == TYPE_SOCKET) {
			fuzz_socket(&h);
		}
	}
	if (chance(10)) {
		(void)shutdown(h.fd, SHUT_WR);
	}
	close(h.fd);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed, first = 0, count = UINT64_MAX, i;
	long long start = now_ms(), seconds = -1;
	int opt;

	if (argc < 3) {
		fprintf(stderr, "usage: fuzz NAME SEED [-n CASES] [-t SECONDS] [-f FIRST]\n");
		return 2;
	}
	seed = strtoull(argv[2], NULL, 0);
	optind = 3;
	while ((opt = getopt(argc, argv, "n:t:f:")) != -1) {
		switch (opt) {
		case 'n': count = strtoull(optarg, NULL, 0); break;
		case 't': seconds = strtoll(optarg, NULL, 0); break;
		case 'f': first = strtoull(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: fuzz NAME SEED [-n CASES] [-t SECONDS] [-f FIRST]\n");
			return 2;
		}
	}
	if (count == UINT64_MAX && seconds < 0) {
		count = 1000;
	}
	signal(SIGPIPE, SIG_IGN);
	for (i = first; i - first < count; i++) {
		int rc;

		if (seconds >= 0 && now_ms() - start >= seconds * 1000) {
			break;
		}
		rc = run_case(argv[1], seed, i);
		if (rc < 0) {
			printf("result=server-gone case=%llu errno=%d cases=%lu\n", (unsigned long long)i, -rc, cases);
			fflush(stdout);
			return 4;
		}
		cases++;
		if (cases % 500 == 0) {
			printf("progress cases=%lu\n", cases);
			fflush(stdout);
		}
	}
	printf("result=done cases=%lu accepted=%lu shm=%lu socket=%lu refused=%lu disconnected=%lu handshake_timeouts=%lu ms=%lld\n",
	       cases, accepted, shm_cases, socket_cases, refused, disconnected, handshake_timeouts, now_ms() - start);
	fflush(stdout);
	return 0;
}
