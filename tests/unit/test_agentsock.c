/*
 * test_agentsock.c - the agent's socket frames and server: header
 * limits, strict JSON bodies, and a real server in a temporary directory
 * driven in this process (modes, answers, broken frames, stale sockets,
 * a client of another uid refused by SO_PEERCRED and counted).
 *
 * The other-uid test changes a child's uid, which needs root: CI runs the
 * tests as root, and elsewhere the test fails saying so (it is never
 * skipped).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent-config.h"
#include "agent-ops.h"
#include "agent-sock.h"
#include "errors.h"

static void
test_header(void **state)
{
	uint8_t h[4];
	uint32_t len = 0;

	(void)state;
	memset(h, 0, 4);
	assert_int_equal(agent_sock_frame_header(h, 0, &len), ERR_FORMAT);
	h[3] = 1;
	assert_int_equal(agent_sock_frame_header(h, 0, &len), 0);
	assert_int_equal(len, 1);
	/* exactly 4 MiB is allowed, one more is not */
	h[0] = 0x00; h[1] = 0x40; h[2] = 0x00; h[3] = 0x00;
	assert_int_equal(agent_sock_frame_header(h, 0, &len), 0);
	assert_int_equal(len, 4 * 1024 * 1024);
	h[3] = 0x01;
	assert_int_equal(agent_sock_frame_header(h, 0, &len), ERR_TOO_LARGE);
	memset(h, 0xff, 4);
	assert_int_equal(agent_sock_frame_header(h, 0, &len), ERR_TOO_LARGE);
	/* a smaller cap */
	h[0] = 0; h[1] = 0; h[2] = 1; h[3] = 0;
	assert_int_equal(agent_sock_frame_header(h, 255, &len), ERR_TOO_LARGE);
}

static void
test_decode(void **state)
{
	static const char *const bad[] = {
		"", "{", "[]", "\"s\"", "1", "null", "{\"a\":1} {}",
		"{\"a\":1,\"a\":2}", "{\"a\":\"x\\u0000y\"}", "{'a':1}",
		"\xef\xbb\xbf{}", "{\"a\":\"\xff\"}",
	};
	struct err_ctx e;
	json_t *j = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (agent_sock_frame_decode((const uint8_t *)bad[i],
		    strlen(bad[i]), &j, &e) == 0)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_int_equal(agent_sock_frame_decode(
	    (const uint8_t *)"{\"op\":\"x\"}", 10, &j, &e), 0);
	assert_string_equal(json_string_value(json_object_get(j, "op")), "x");
	json_decref(j);
}

static void
test_encode(void **state)
{
	struct err_ctx e;
	json_t *o, *back = NULL;
	uint8_t *f = NULL;
	size_t n = 0;
	uint32_t len;
	char *big;

	(void)state;
	err_clear(&e);
	o = json_pack("{s:s, s:i}", "op", "status", "id", 3);
	assert_int_equal(agent_sock_frame_encode(o, &f, &n, &e), 0);
	assert_int_equal(agent_sock_frame_header(f, 0, &len), 0);
	assert_int_equal(len + 4, n);
	assert_int_equal(agent_sock_frame_decode(f + 4, len, &back, &e), 0);
	assert_true(json_equal(o, back));
	json_decref(back);
	json_decref(o);
	free(f);
	/* over the cap */
	big = malloc(AGENT_SOCK_FRAME_MAX + 1);
	memset(big, 'a', AGENT_SOCK_FRAME_MAX);
	big[AGENT_SOCK_FRAME_MAX] = '\0';
	o = json_pack("{s:s}", "x", big);
	f = NULL;
	assert_int_equal(agent_sock_frame_encode(o, &f, &n, &e), ERR_TOO_LARGE);
	assert_null(f);
	json_decref(o);
	free(big);
}

/* Echoes the op back; "boom" gets no answer. */
static json_t *
echo_handler(void *arg, struct agent_sock_conn *c, json_t *req)
{
	int *calls = arg;

	(void)c;
	(*calls)++;
	return json_pack("{s:b, s:O}", "ok", 1, "echo",
	    json_object_get(req, "op"));
}

struct srv {
	char dir[64];
	char path[128];
	struct agent_sock_server *s;
	int calls;
};

static int
srv_setup(void **state)
{
	struct srv *t = calloc(1, sizeof(*t));
	struct err_ctx e;

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "%s/devid-sock-XXXXXX", P_tmpdir);
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->path, sizeof(t->path), "%s/run/agent.sock", t->dir);
	err_clear(&e);
	if (agent_sock_server_open(t->path, echo_handler, &t->calls, &t->s,
	    &e) != 0)
		return -1;
	*state = t;
	return 0;
}

static int
srv_teardown(void **state)
{
	struct srv *t = *state;
	char run[128];

	agent_sock_server_close(t->s);
	snprintf(run, sizeof(run), "%s/run", t->dir);
	rmdir(run);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* Serves until fd has something to read (bounded). */
static void
pump(struct srv *t, int n)
{
	int i;

	for (i = 0; i < n; i++)
		assert_true(agent_sock_server_poll(t->s, 20, -1) >= 0);
}

static void
test_server_modes(void **state)
{
	struct srv *t = *state;
	char run[128];
	struct stat st;

	snprintf(run, sizeof(run), "%s/run", t->dir);
	assert_int_equal(stat(run, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(lstat(t->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void
test_server_roundtrip(void **state)
{
	struct srv *t = *state;
	struct err_ctx e;
	json_t *req, *resp = NULL;
	int fd = -1;

	err_clear(&e);
	assert_int_equal(agent_sock_client_connect(t->path, &fd, &e), 0);
	req = json_pack("{s:s}", "op", "hello");
	assert_int_equal(agent_sock_client_send(fd, req, &e), 0);
	pump(t, 5);
	assert_int_equal(agent_sock_client_recv(fd, 2000, &resp, &e), 0);
	assert_string_equal(json_string_value(json_object_get(resp, "echo")),
	    "hello");
	json_decref(resp);
	/* garbage: an error answer, and the connection still works */
	{
		uint8_t f[4 + 5] = { 0, 0, 0, 5, '{', 'x', 'x', 'x', '}' };

		assert_int_equal(write(fd, f, sizeof(f)), (ssize_t)sizeof(f));
	}
	pump(t, 5);
	assert_int_equal(agent_sock_client_recv(fd, 2000, &resp, &e), 0);
	assert_false(json_is_true(json_object_get(resp, "ok")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    resp, "error"), "code")), "bad_request");
	json_decref(resp);
	assert_int_equal(agent_sock_client_send(fd, req, &e), 0);
	pump(t, 5);
	assert_int_equal(agent_sock_client_recv(fd, 2000, &resp, &e), 0);
	assert_true(json_is_true(json_object_get(resp, "ok")));
	json_decref(resp);
	json_decref(req);
	close(fd);
	pump(t, 3);
	assert_int_equal(agent_sock_server_clients(t->s), 0);
}

static void
test_server_oversize(void **state)
{
	struct srv *t = *state;
	struct err_ctx e;
	json_t *resp = NULL;
	uint8_t h[4] = { 0x00, 0x40, 0x00, 0x01 };
	char c;
	int fd = -1, calls = t->calls;

	err_clear(&e);
	assert_int_equal(agent_sock_client_connect(t->path, &fd, &e), 0);
	assert_int_equal(write(fd, h, 4), 4);
	pump(t, 5);
	assert_int_equal(agent_sock_client_recv(fd, 2000, &resp, &e), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    resp, "error"), "code")), "too_large");
	json_decref(resp);
	pump(t, 3);
	/* closed by the server, the handler never called */
	assert_int_equal(read(fd, &c, 1), 0);
	assert_int_equal(t->calls, calls);
	assert_true(agent_sock_server_bad_frames(t->s) >= 1);
	close(fd);
	/* a truncated frame, then EOF: dropped, nothing called */
	assert_int_equal(agent_sock_client_connect(t->path, &fd, &e), 0);
	h[0] = 0; h[1] = 0; h[2] = 0; h[3] = 50;
	assert_int_equal(write(fd, h, 4), 4);
	assert_int_equal(write(fd, "{\"op\"", 5), 5);
	close(fd);
	pump(t, 5);
	assert_int_equal(t->calls, calls);
	assert_int_equal(agent_sock_server_clients(t->s), 0);
}

static void
test_server_exclusive(void **state)
{
	struct srv *t = *state;
	struct agent_sock_server *other = NULL;
	struct err_ctx e;
	char stale[100];
	int fd;
	struct sockaddr_un sa;

	/* A live agent on the path: refused. */
	err_clear(&e);
	assert_int_equal(agent_sock_server_open(t->path, echo_handler,
	    &t->calls, &other, &e), ERR_EXISTS);
	/* A stale socket (nobody listening) is replaced. */
	snprintf(stale, sizeof(stale), "%s/run/stale.sock", t->dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	err_clear(&e);
	assert_int_equal(agent_sock_server_open(stale, echo_handler, &t->calls,
	    &other, &e), 0);
	agent_sock_server_close(other);
	/* Not a socket: refused, left alone. */
	fd = open(stale, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	err_clear(&e);
	assert_int_equal(agent_sock_server_open(stale, echo_handler, &t->calls,
	    &other, &e), ERR_EXISTS);
	unlink(stale);
	/* A socket directory others may enter: refused. */
	{
		char dir[128], path[160];

		snprintf(dir, sizeof(dir), "%s/open", t->dir);
		assert_int_equal(mkdir(dir, 0755), 0);
		assert_int_equal(chmod(dir, 0755), 0);
		snprintf(path, sizeof(path), "%s/agent.sock", dir);
		err_clear(&e);
		assert_int_equal(agent_sock_server_open(path, echo_handler,
		    &t->calls, &other, &e), ERR_DENIED);
		rmdir(dir);
	}
	/* Relative or directory-less paths are refused. */
	assert_int_equal(agent_sock_server_open("agent.sock", echo_handler,
	    &t->calls, &other, &e), ERR_CONFIG);
}

/* The uid and gid of "nobody", which the other client runs as. */
#define OTHER_UID 65534
#define OTHER_GID 65534

/*
 * The child's side of test_server_other_uid: becomes OTHER_UID, connects,
 * asks for status and reads the answer.  Exit status: 0 when the agent
 * answered "denied" naming the uid (or closed without an answer), 3 when
 * it served the request, other values when the child could not run the
 * test.  Never returns.
 */
static void
other_uid_client(const char *path)
{
	struct err_ctx e;
	json_t *req, *resp = NULL, *err;
	const char *code, *msg;
	int fd = -1, r;

	/* The agent may close before the request is written. */
	signal(SIGPIPE, SIG_IGN);
	if (setgroups(0, NULL) != 0 || setgid(OTHER_GID) != 0 ||
	    setuid(OTHER_UID) != 0 || getuid() != OTHER_UID ||
	    geteuid() != OTHER_UID)
		_exit(10);
	err_clear(&e);
	if (agent_sock_client_connect(path, &fd, &e) != 0)
		_exit(11);
	req = json_pack("{s:s}", "op", "status");
	(void)agent_sock_client_send(fd, req, &e);
	json_decref(req);
	/* A safety bound: the server answers as soon as it accepts. */
	r = agent_sock_client_recv(fd, 60000, &resp, &e);
	close(fd);
	if (r == ERR_TIMEOUT)
		_exit(12);
	if (r != 0)
		_exit(0);       /* closed without a frame: refused too */
	err = json_object_get(resp, "error");
	code = json_string_value(json_object_get(err, "code"));
	msg = json_string_value(json_object_get(err, "message"));
	if (json_is_false(json_object_get(resp, "ok")) && code != NULL &&
	    strcmp(code, "denied") == 0 && msg != NULL &&
	    strstr(msg, "peer uid 65534") != NULL)
		_exit(0);
	_exit(3);
}

/*
 * A client of another uid reaches the socket (the file modes opened up so
 * that only SO_PEERCRED stands in its way): it is refused with "denied",
 * never reaches the handler, and the refusal is counted.
 */
static void
test_server_other_uid(void **state)
{
	struct srv *t = *state;
	char run[128];
	uint64_t refused = agent_sock_server_refused_peers(t->s);
	int calls = t->calls, st = 0;
	pid_t pid, w;

	if (geteuid() != 0)
		fail_msg("this test must run as root: it connects from a child "
		    "whose uid it changes to %d (CI runs the tests as root)",
		    OTHER_UID);
	snprintf(run, sizeof(run), "%s/run", t->dir);
	assert_int_equal(chmod(t->dir, 0711), 0);
	assert_int_equal(chmod(run, 0711), 0);
	assert_int_equal(chmod(t->path, 0666), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		other_uid_client(t->path);
	/* Serve until the child is done. */
	while ((w = waitpid(pid, &st, WNOHANG)) == 0)
		assert_true(agent_sock_server_poll(t->s, 50, -1) >= 0);
	assert_int_equal(w, pid);
	assert_int_equal(chmod(run, 0700), 0);
	assert_int_equal(chmod(t->path, 0600), 0);
	if (!WIFEXITED(st))
		fail_msg("the client of uid %d did not exit (status %d)",
		    OTHER_UID, st);
	switch (WEXITSTATUS(st)) {
	case 0:
		break;
	case 3:
		fail_msg("the agent served a client of uid %d", OTHER_UID);
		break;
	default:
		fail_msg("the client of uid %d could not run (exit %d: 10 "
		    "setuid, 11 connect, 12 no answer)", OTHER_UID,
		    WEXITSTATUS(st));
	}
	assert_int_equal(agent_sock_server_refused_peers(t->s), refused + 1);
	assert_int_equal(t->calls, calls);
	pump(t, 3);
	assert_int_equal(agent_sock_server_clients(t->s), 0);
	/* The own uid is still served, and not counted. */
	{
		struct err_ctx e;
		json_t *req, *resp = NULL;
		int fd = -1;

		err_clear(&e);
		assert_int_equal(agent_sock_client_connect(t->path, &fd, &e),
		    0);
		req = json_pack("{s:s}", "op", "hello");
		assert_int_equal(agent_sock_client_send(fd, req, &e), 0);
		pump(t, 5);
		assert_int_equal(agent_sock_client_recv(fd, 2000, &resp, &e),
		    0);
		assert_true(json_is_true(json_object_get(resp, "ok")));
		json_decref(resp);
		json_decref(req);
		close(fd);
		assert_int_equal(agent_sock_server_refused_peers(t->s),
		    refused + 1);
	}
}

static void
test_client_no_agent(void **state)
{
	struct err_ctx e;
	int fd;

	(void)state;
	err_clear(&e);
	assert_int_equal(agent_sock_client_connect(
	    "/nonexistent/devid/agent.sock", &fd, &e), ERR_NOT_FOUND);
	assert_non_null(strstr(err_msg(&e), "is devid-agent running"));
}

/* The answer of agent_handle() to the request in text. */
static json_t *
dispatch(struct agent *a, const char *text)
{
	json_t *req, *resp;

	req = json_loads(text, 0, NULL);
	assert_non_null(req);
	resp = agent_handle(a, NULL, req);
	json_decref(req);
	assert_non_null(resp);
	return resp;
}

static void
assert_refused(json_t *resp, const char *code, const char *msg)
{
	json_t *err = json_object_get(resp, "error");

	assert_true(json_is_false(json_object_get(resp, "ok")));
	assert_string_equal(json_string_value(json_object_get(err, "code")),
	    code);
	if (msg != NULL)
		assert_string_equal(json_string_value(json_object_get(err,
		    "message")), msg);
	json_decref(resp);
}

/* The table of operations: unknown names, the lock test and its order
 * after the field checks, and a known operation reaching its handler. */
static void
test_dispatch(void **state)
{
	static const char locked[] = "the agent is locked: run devid-agent "
	    "unlock";
	struct agent a;
	json_t *resp;

	(void)state;
	memset(&a, 0, sizeof(a));
	pthread_mutex_init(&a.lock, NULL);
	/* A fresh agent whose token was never unlocked: reg_verified 0. */
	resp = dispatch(&a, "{\"op\": \"frobnicate\", \"id\": 7}");
	assert_int_equal(json_integer_value(json_object_get(resp, "id")), 7);
	assert_refused(resp, "bad_request", "unknown op 'frobnicate'");
	assert_refused(dispatch(&a, "{\"id\": 1}"), "bad_request", NULL);
	assert_refused(dispatch(&a, "{\"op\": \"approve\", \"device\": "
	    "\"ab12\"}"), "locked", locked);
	assert_refused(dispatch(&a, "{\"op\": \"revoke\", \"device\": "
	    "\"ab12\"}"), "locked", locked);
	assert_refused(dispatch(&a, "{\"op\": \"open\", \"envelope\": {}}"),
	    "locked", locked);
	/* A malformed request is answered as such, locked or not. */
	assert_refused(dispatch(&a, "{\"op\": \"revoke\"}"), "bad_request",
	    NULL);
	assert_refused(dispatch(&a, "{\"op\": \"approve\", \"device\": "
	    "\"ab12\", \"x\": 1}"), "bad_request",
	    "unknown field 'x' in the request");
	assert_refused(dispatch(&a, "{\"op\": \"open\", \"envelope\": 1}"),
	    "bad_request", "envelope must be an object");
	/* Known operations reach their handlers. */
	assert_refused(dispatch(&a, "{\"op\": \"alerts\", \"follow\": 3}"),
	    "bad_request", "follow must be true or false");
	resp = dispatch(&a, "{\"op\": \"alerts\", \"id\": \"q\"}");
	assert_true(json_is_true(json_object_get(resp, "ok")));
	assert_int_equal(json_array_size(json_object_get(resp, "alerts")), 0);
	assert_string_equal(json_string_value(json_object_get(resp, "id")),
	    "q");
	json_decref(resp);
	pthread_mutex_destroy(&a.lock);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_encode),
		cmocka_unit_test_setup_teardown(test_server_modes, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_server_roundtrip,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_server_oversize, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_server_exclusive,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_server_other_uid,
		    srv_setup, srv_teardown),
		cmocka_unit_test(test_client_no_agent),
		cmocka_unit_test(test_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
