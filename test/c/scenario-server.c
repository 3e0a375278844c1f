/*
 * scenario-server.c -- a libqb 2.x server (qbipcs.h on its own qb_loop) that
 * reports what its callbacks and statistics see, one JSON object per line on
 * stdout, for the differential tests (test/85-libqb-differential.test.ts).
 * Its twin on qbipc is test/helpers/scenario-server.ts: both must print the
 * same lines for the same client actions; the test compares them.
 *
 * Usage: scenario-server --scenario NAME -n SERVICE [-t shm|socket]
 *
 * Scenarios (what differs from the plain behaviour):
 *   plain           nothing
 *   jobfail         the poll handlers' job_add fails (returns -1, schedules
 *                   nothing); connection_closed asks once for a retry (1)
 *   backoff         msg_process answers an echo, then returns -1 (back off)
 *   authset         connection_accept calls qb_ipcs_connection_auth_set
 *                   (uid 4242, gid 4343, mode 0640)
 *   created-disconnect  connection_created calls qb_ipcs_disconnect
 *
 * Requests: id 1 echo (response id 1, error 0, the payload back);
 *   id 10 {u32 api, u32 size}: one send of `size` bytes (a response header
 *   {id 10, size, 0} then 0xab filler): api 0 response_send, 1
 *   response_sendv, 2 event_send, 3 event_sendv (sendv: two iovecs, header
 *   and filler); prints {"ev":"send",...} with the result and the stats;
 *   anything else: a bare response with error -EINVAL.
 * Every call goes through poll handlers of ours, which count job_add calls.
 *
 * Lines: {"ev":"ready","pid":P} once running; {"ev":"accept"|"created"|
 * "closed"|"destroyed","pid":CLIENT} from the callbacks.
 * Commands on stdin, one per line, each answered by one line:
 *   walk       {"ev":"walk","pids":[...]}  connection_first_get/next_get order
 *   stats      {"ev":"stats","active":A,"closed":C}
 *   connstats  {"ev":"connstats","conns":[{stats of each connection, walk order}]}
 *   jobs       {"ev":"jobs","count":N}     job_add calls so far
 *   unref      {"ev":"unref"}              after qb_ipcs_unref
 *   destroy    {"ev":"destroy"}            after qb_ipcs_destroy
 *   pause      {"ev":"paused"}, then the whole server blocks reading one
 *              byte from fd 3 (the test's gate pipe): requests the client
 *              sends meanwhile queue up unread; then {"ev":"resumed"}
 * SIGTERM or EOF on stdin: qb_ipcs_destroy (if not done), exit 0.
 *
 * Build: cc -O2 -Wall $(pkg-config --cflags libqb) -o scenario-server
 *           scenario-server.c $(pkg-config --libs libqb)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <qb/qbdefs.h>
#include <qb/qbipcs.h>
#include <qb/qbloop.h>

enum { MSG_ECHO = 1, MSG_SEND = 10 };
/* The test's gate pipe (see the pause command). */
#define GATE_FD 3
enum { API_RESPONSE_SEND, API_RESPONSE_SENDV, API_EVENT_SEND, API_EVENT_SENDV };
static const char *const api_names[] = { "responseSend", "responseSendv", "eventSend", "eventSendv" };

static qb_loop_t *loop;
static qb_ipcs_service_t *service;
static const char *scenario = "plain";
static int destroyed_service;
static int unrefs;
static unsigned long job_calls;
static char line_buf[4096];
static size_t line_len;

static int is_scenario(const char *name)
{
	return strcmp(scenario, name) == 0;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int client_pid(qb_ipcs_connection_t *c)
{
	struct qb_ipcs_connection_stats st;

	memset(&st, 0, sizeof(st));
	qb_ipcs_connection_stats_get(c, &st, 0);
	return st.client_pid;
}

/* ---------------------------------------------------------- poll glue */

static int32_t glue_job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	job_calls++;
	if (is_scenario("jobfail")) {
		return -1;
	}
	return qb_loop_job_add(loop, p, data, fn);
}

static int32_t glue_poll_add(enum qb_loop_priority p, int32_t fd, int32_t events, void *data,
			     qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(loop, p, fd, events, data, fn);
}

static int32_t glue_poll_mod(enum qb_loop_priority p, int32_t fd, int32_t events, void *data,
			     qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(loop, p, fd, events, data, fn);
}

static int32_t glue_poll_del(int32_t fd)
{
	return qb_loop_poll_del(loop, fd);
}

/* ----------------------------------------------------------- handlers */

static int32_t on_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
	(void)uid;
	(void)gid;
	emit("{\"ev\":\"accept\",\"pid\":%d}", client_pid(c));
	if (is_scenario("authset")) {
		qb_ipcs_connection_auth_set(c, 4242, 4343, 0640);
	}
	return 0;
}

static void on_created(qb_ipcs_connection_t *c)
{
	emit("{\"ev\":\"created\",\"pid\":%d}", client_pid(c));
	if (is_scenario("created-disconnect")) {
		qb_ipcs_disconnect(c);
	}
}

static void print_send(qb_ipcs_connection_t *c, int api, uint32_t size, ssize_t rc)
{
	struct qb_ipcs_connection_stats st;

	memset(&st, 0, sizeof(st));
	qb_ipcs_connection_stats_get(c, &st, 0);
	emit("{\"ev\":\"send\",\"api\":\"%s\",\"size\":%u,\"rc\":%zd,\"responses\":%llu,\"events\":%llu,"
	     "\"sendRetries\":%llu}", api_names[api], size, rc, (unsigned long long)st.responses,
	     (unsigned long long)st.events, (unsigned long long)st.send_retries);
}

/* One send of `size` bytes through `api` (request id 10). */
static void do_send(qb_ipcs_connection_t *c, int api, uint32_t size)
{
	struct qb_ipc_response_header hdr;
	unsigned char *buf;
	struct iovec iov[2];
	ssize_t rc;

	if (api < API_RESPONSE_SEND || api > API_EVENT_SENDV || size < sizeof(hdr)) {
		emit("{\"ev\":\"send\",\"bad\":1}");
		return;
	}
	buf = malloc(size);
	if (buf == NULL) {
		emit("{\"ev\":\"send\",\"enomem\":1}");
		return;
	}
	memset(buf, 0xab, size);
	memset(&hdr, 0, sizeof(hdr));
	hdr.id = MSG_SEND;
	hdr.size = (int32_t)size;
	memcpy(buf, &hdr, sizeof(hdr));
	iov[0].iov_base = buf;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = buf + sizeof(hdr);
	iov[1].iov_len = size - sizeof(hdr);
	switch (api) {
	case API_RESPONSE_SEND:
		rc = qb_ipcs_response_send(c, buf, size);
		break;
	case API_RESPONSE_SENDV:
		rc = qb_ipcs_response_sendv(c, iov, 2);
		break;
	case API_EVENT_SEND:
		rc = qb_ipcs_event_send(c, buf, size);
		break;
	default:
		rc = qb_ipcs_event_sendv(c, iov, 2);
		break;
	}
	free(buf);
	print_send(c, api, size, rc);
}

static int32_t on_msg(qb_ipcs_connection_t *c, void *data, size_t size)
{
	struct qb_ipc_request_header *req = data;
	struct qb_ipc_response_header hdr;
	struct iovec iov[2];
	uint32_t args[2];

	memset(&hdr, 0, sizeof(hdr));
	hdr.id = req->id;
	hdr.size = sizeof(hdr);
	if (req->id == MSG_ECHO) {
		hdr.size = (int32_t)(sizeof(hdr) + size - sizeof(*req));
		iov[0].iov_base = &hdr;
		iov[0].iov_len = sizeof(hdr);
		iov[1].iov_base = (char *)data + sizeof(*req);
		iov[1].iov_len = size - sizeof(*req);
		qb_ipcs_response_sendv(c, iov, iov[1].iov_len > 0 ? 2 : 1);
		return is_scenario("backoff") ? -1 : 0;
	}
	if (req->id == MSG_SEND && size >= sizeof(*req) + sizeof(args)) {
		memcpy(args, (char *)data + sizeof(*req), sizeof(args));
		do_send(c, (int)args[0], args[1]);
		return 0;
	}
	hdr.error = -EINVAL;
	qb_ipcs_response_send(c, &hdr, sizeof(hdr));
	return 0;
}

static int32_t on_closed(qb_ipcs_connection_t *c)
{
	int *calls = qb_ipcs_context_get(c);

	emit("{\"ev\":\"closed\",\"pid\":%d}", client_pid(c));
	if (!is_scenario("jobfail")) {
		return 0;
	}
	if (calls == NULL) {
		calls = calloc(1, sizeof(*calls));
		qb_ipcs_context_set(c, calls);
	}
	return calls != NULL && (*calls)++ == 0 ? 1 : 0;
}

static void on_destroyed(qb_ipcs_connection_t *c)
{
	emit("{\"ev\":\"destroyed\",\"pid\":%d}", client_pid(c));
	free(qb_ipcs_context_get(c));
	qb_ipcs_context_set(c, NULL);
}

/* ----------------------------------------------------------- commands */

static void cmd_walk(void)
{
	qb_ipcs_connection_t *c, *next;
	char out[4096];
	size_t n = 0;

	n += (size_t)snprintf(out + n, sizeof(out) - n, "{\"ev\":\"walk\",\"pids\":[");
	for (c = qb_ipcs_connection_first_get(service); c != NULL; c = next) {
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%d", out[n - 1] == '[' ? "" : ",", client_pid(c));
		next = qb_ipcs_connection_next_get(service, c);
		qb_ipcs_connection_unref(c);
		if (n >= sizeof(out) - 32) {
			break;
		}
	}
	emit("%s]}", out);
}

static void cmd_connstats(void)
{
	qb_ipcs_connection_t *c, *next;
	struct qb_ipcs_connection_stats_2 *st;
	char out[8192];
	size_t n = 0;

	n += (size_t)snprintf(out + n, sizeof(out) - n, "{\"ev\":\"connstats\",\"conns\":[");
	for (c = qb_ipcs_connection_first_get(service); c != NULL; c = next) {
		st = qb_ipcs_connection_stats_get_2(c, 0);
		if (st != NULL && n < sizeof(out) - 512) {
			n += (size_t)snprintf(out + n, sizeof(out) - n,
				"%s{\"pid\":%d,\"requests\":%llu,\"responses\":%llu,\"events\":%llu,"
				"\"sendRetries\":%llu,\"recvRetries\":%llu,\"flowControlState\":%d,"
				"\"flowControlCount\":%llu,\"eventQLength\":%u}",
				out[n - 1] == '[' ? "" : ",", st->client_pid,
				(unsigned long long)st->requests, (unsigned long long)st->responses,
				(unsigned long long)st->events, (unsigned long long)st->send_retries,
				(unsigned long long)st->recv_retries, st->flow_control_state,
				(unsigned long long)st->flow_control_count, st->event_q_length);
		}
		free(st);
		next = qb_ipcs_connection_next_get(service, c);
		qb_ipcs_connection_unref(c);
	}
	emit("%s]}", out);
}

static void shutdown_service(void)
{
	if (service != NULL && !destroyed_service) {
		/* Give back the references the test dropped, so destroy's own unref is the last. */
		for (; unrefs > 0; unrefs--) {
			qb_ipcs_ref(service);
		}
		qb_ipcs_destroy(service);
		destroyed_service = 1;
	}
}

static void run_command(const char *cmd)
{
	struct qb_ipcs_stats st;

	if (destroyed_service && strcmp(cmd, "jobs") != 0) {
		emit("{\"ev\":\"%s\",\"gone\":1}", cmd);
		return;
	}
	if (strcmp(cmd, "walk") == 0) {
		cmd_walk();
	} else if (strcmp(cmd, "stats") == 0) {
		memset(&st, 0, sizeof(st));
		qb_ipcs_stats_get(service, &st, 0);
		emit("{\"ev\":\"stats\",\"active\":%u,\"closed\":%u}", st.active_connections, st.closed_connections);
	} else if (strcmp(cmd, "connstats") == 0) {
		cmd_connstats();
	} else if (strcmp(cmd, "jobs") == 0) {
		emit("{\"ev\":\"jobs\",\"count\":%lu}", job_calls);
	} else if (strcmp(cmd, "unref") == 0) {
		unrefs++;
		qb_ipcs_unref(service);
		emit("{\"ev\":\"unref\"}");
	} else if (strcmp(cmd, "destroy") == 0) {
		qb_ipcs_destroy(service);
		destroyed_service = 1;
		emit("{\"ev\":\"destroy\"}");
	} else if (strcmp(cmd, "pause") == 0) {
		char byte;
		ssize_t n;

		emit("{\"ev\":\"paused\"}");
		do {
			n = read(GATE_FD, &byte, 1);
		} while (n < 0 && errno == EINTR);
		emit("{\"ev\":\"resumed\",\"gate\":%d}", n == 1 ? 1 : 0);
	} else {
		emit("{\"ev\":\"unknown\",\"command\":\"%s\"}", cmd);
	}
}

static void finish(void)
{
	shutdown_service();
	qb_loop_stop(loop);
}

static int32_t on_stdin(int32_t fd, int32_t revents, void *data)
{
	ssize_t n;
	char *nl;

	(void)revents;
	(void)data;
	n = read(fd, line_buf + line_len, sizeof(line_buf) - 1 - line_len);
	if (n <= 0) {
		qb_loop_poll_del(loop, fd);
		finish();
		return 0;
	}
	line_len += (size_t)n;
	line_buf[line_len] = '\0';
	while ((nl = strchr(line_buf, '\n')) != NULL) {
		*nl = '\0';
		run_command(line_buf);
		line_len -= (size_t)(nl + 1 - line_buf);
		memmove(line_buf, nl + 1, line_len + 1);
	}
	if (line_len == sizeof(line_buf) - 1) {
		line_len = 0; /* an overlong line: dropped */
	}
	return 0;
}

static int32_t on_sigterm(int32_t sig, void *data)
{
	(void)sig;
	(void)data;
	finish();
	return 0;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --scenario NAME -n SERVICE [-t shm|socket]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
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
		.dispatch_add = glue_poll_add,
		.dispatch_mod = glue_poll_mod,
		.dispatch_del = glue_poll_del,
	};
	enum qb_ipc_type type = QB_IPC_SHM;
	const char *name = NULL;
	qb_loop_signal_handle sig_handle;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc) {
			scenario = argv[++i];
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			name = argv[++i];
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "socket") == 0) {
				type = QB_IPC_SOCKET;
			} else if (strcmp(argv[i], "shm") != 0) {
				usage(argv[0]);
			}
		} else {
			usage(argv[0]);
		}
	}
	if (name == NULL) {
		usage(argv[0]);
	}
	loop = qb_loop_create();
	service = qb_ipcs_create(name, 0, type, &handlers);
	if (loop == NULL || service == NULL) {
		fprintf(stderr, "scenario-server: cannot create the loop or the service\n");
		return 1;
	}
	qb_ipcs_poll_handlers_set(service, &poll_handlers);
	rc = qb_ipcs_run(service);
	if (rc != 0) {
		fprintf(stderr, "scenario-server: qb_ipcs_run: %s\n", strerror(-rc));
		return 1;
	}
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGTERM, NULL, on_sigterm, &sig_handle);
	qb_loop_poll_add(loop, QB_LOOP_MED, STDIN_FILENO, POLLIN, NULL, on_stdin);
	emit("{\"ev\":\"ready\",\"pid\":%d}", (int)getpid());
	qb_loop_run(loop);
	qb_loop_destroy(loop);
	return 0;
}
