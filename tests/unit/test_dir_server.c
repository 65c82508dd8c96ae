/*
 * test_dir_server.c - the directory's HTTP layer on its own, with handlers
 * written for the test: the client network behind a proxy, jobs on the
 * worker pool (and a full queue), held answers, and a stop while jobs and
 * long-polls are in flight, waking long-polls by key and all at once.
 * Requests go over raw sockets so that the test controls every header
 * line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>

#include "dir-server.h"
#include "errors.h"

/* --- a tiny HTTP client --- */

static int
connect_to(const char *address)
{
	struct sockaddr_in sin;
	struct timeval tv = { 20, 0 };
	char host[64];
	const char *colon = strrchr(address, ':');
	int fd;

	assert_non_null(colon);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - address), address);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	assert_int_equal(inet_pton(AF_INET, host, &sin.sin_addr), 1);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Copies as much of src as fits into dst, always NUL-terminated. */
static void
copy_text(char *dst, size_t dst_len, const char *src)
{
	size_t n = strlen(src);

	if (dst_len == 0)
		return;
	if (n >= dst_len)
		n = dst_len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/*
 * Sends "GET path" with the extra header lines (each ending in \r\n) and
 * reads the whole answer (Connection: close).  Returns the status, the
 * body in body (NUL-terminated) and the headers in head, or 0.
 */
static int
request(const char *address, const char *path, const char *extra,
    char *head, size_t head_len, char *body, size_t body_len)
{
	char req[2048], buf[8192], *sep;
	size_t got = 0;
	ssize_t n;
	int fd, status = 0;

	if ((fd = connect_to(address)) < 0)
		return 0;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n%s\r\n", path, extra != NULL ? extra : "");
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return 0;
	}
	while (got < sizeof(buf) - 1 &&
	    (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return 0;
	if ((sep = strstr(buf, "\r\n\r\n")) == NULL)
		return 0;
	*sep = '\0';
	if (head != NULL)
		copy_text(head, head_len, buf);
	if (body != NULL)
		copy_text(body, body_len, sep + 4);
	return status;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- handlers --- */

/* A gate that jobs wait on, so that the test decides when they end. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
	int ran;
};

static struct gate the_gate = { PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_COND_INITIALIZER, 1, 0 };

static void
gate_set(int open)
{
	pthread_mutex_lock(&the_gate.lock);
	the_gate.open = open;
	pthread_cond_broadcast(&the_gate.cond);
	pthread_mutex_unlock(&the_gate.lock);
}

/* A job's result, the request state. */
struct job_state {
	int done;
	long value;
};

static void
job_fn(void *arg)
{
	struct job_state *js = arg;

	pthread_mutex_lock(&the_gate.lock);
	while (!the_gate.open)
		pthread_cond_wait(&the_gate.cond, &the_gate.lock);
	the_gate.ran++;
	pthread_mutex_unlock(&the_gate.lock);
	js->value = 42;
	js->done = 1;
}

/*
 * /net: answers the client's network.  /job: runs job_fn on the pool and
 * answers its result.  /hold: answers 429 after the throttle delay.
 * /wait: a long-poll on "k" for 30 s.  /wake/KEY: a long-poll on KEY for
 * 30 s that answers once it was woken.
 */
static void
handler(void *arg, struct dir_request *rq)
{
	const char *path = dir_request_path(rq);
	struct job_state *js;
	int r;

	(void)arg;
	if (strcmp(path, "/net") == 0) {
		dir_reply_json(rq, 200, json_pack("{s:s}", "net",
		    dir_request_network(rq)));
	} else if (strcmp(path, "/job") == 0) {
		if ((js = dir_request_state(rq)) != NULL) {
			dir_reply_json(rq, js->done ? 200 : 500,
			    json_pack("{s:i}", "value", (int)js->value));
			return;
		}
		js = calloc(1, sizeof(*js));
		assert_non_null(js);
		dir_request_set_state(rq, js, free);
		if ((r = dir_request_run_job(rq, job_fn, js)) != 0) {
			dir_reply_error(rq, 503, "overloaded", "queue full (%d)",
			    r);
			dir_reply_retry_after(rq, 7);
		}
	} else if (strcmp(path, "/hold") == 0) {
		dir_reply_error(rq, 429, "throttled", "slow down");
		dir_reply_retry_after(rq, 3);
		dir_reply_hold(rq);
	} else if (strcmp(path, "/wait") == 0) {
		if (dir_request_watch(rq, "k") != 0) {
			dir_reply_error(rq, 503, "overloaded", "oom");
			return;
		}
		if (!dir_request_expired(rq)) {
			dir_request_wait(rq, 30);
			return;
		}
		dir_reply_json(rq, 200, NULL);
	} else if (strncmp(path, "/wake/", 6) == 0) {
		if (dir_request_state(rq) != NULL) {
			dir_reply_json(rq, 200, NULL);
			return;
		}
		if ((js = calloc(1, sizeof(*js))) == NULL ||
		    dir_request_watch(rq, path + 6) != 0) {
			free(js);
			dir_reply_error(rq, 503, "overloaded", "oom");
			return;
		}
		dir_request_set_state(rq, js, free);
		dir_request_wait(rq, 30);
	} else {
		dir_reply_error(rq, 404, "not_found", "no");
	}
}

static struct dir_server *
start(struct dir_server_config *sc)
{
	struct dir_server *srv = NULL;
	struct err_ctx e;

	err_clear(&e);
	sc->listen = "127.0.0.1:0";
	sc->quiet = 1;
	sc->handler = handler;
	if (dir_server_start(sc, &srv, &e) != 0)
		fail_msg("%s", err_msg(&e));
	return srv;
}

/* --- tests --- */

static void
expect_net(const char *addr, const char *extra, const char *want)
{
	char body[512], expect[256];

	assert_int_equal(request(addr, "/net", extra, NULL, 0, body,
	    sizeof(body)), 200);
	snprintf(expect, sizeof(expect), "{\"net\":\"%s\"}", want);
	assert_string_equal(body, expect);
}

static void
test_proxy_client(void **state)
{
	struct dir_server_config sc;
	struct dir_server *srv;
	const char *a;

	(void)state;
	memset(&sc, 0, sizeof(sc));
	srv = start(&sc);
	a = dir_server_address(srv);
	/* Not behind a proxy: the header is only the client's word. */
	expect_net(a, "X-Forwarded-For: 203.0.113.9\r\n", "127.0.0.1");
	dir_server_stop(srv);

	memset(&sc, 0, sizeof(sc));
	sc.behind_proxy = 1;
	srv = start(&sc);
	a = dir_server_address(srv);
	expect_net(a, NULL, "127.0.0.1");
	expect_net(a, "X-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9");
	/* The last entry is the one the proxy appended. */
	expect_net(a, "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n",
	    "203.0.113.9");
	/* A header line of the proxy's own comes after the client's. */
	expect_net(a, "X-Forwarded-For: 198.51.100.1\r\n"
	    "X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7");
	expect_net(a, "X-Forwarded-For: 2001:db8:1:2::99\r\n",
	    "2001:db8:1:2::/64");
	/* Garbage: the peer stays the client. */
	expect_net(a, "X-Forwarded-For: 203.0.113.9, nonsense\r\n",
	    "127.0.0.1");
	dir_server_stop(srv);
}

struct client_arg {
	const char *address;
	const char *path;
	int status;
	char head[1024];
	char body[256];
};

static void *
client_main(void *arg)
{
	struct client_arg *c = arg;

	c->status = request(c->address, c->path, NULL, c->head,
	    sizeof(c->head), c->body, sizeof(c->body));
	return NULL;
}

static void
test_jobs(void **state)
{
	struct dir_server_config sc;
	struct dir_server *srv;
	struct client_arg c[12];
	pthread_t th[12];
	int i, ok = 0, full = 0;

	(void)state;
	/* Many jobs through two workers: each request gets its result. */
	memset(&sc, 0, sizeof(sc));
	sc.job_threads = 2;
	sc.job_queue = 64;
	srv = start(&sc);
	gate_set(1);
	for (i = 0; i < 12; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].address = dir_server_address(srv);
		c[i].path = "/job";
		assert_int_equal(pthread_create(&th[i], NULL, client_main,
		    &c[i]), 0);
	}
	for (i = 0; i < 12; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].status, 200);
		assert_string_equal(c[i].body, "{\"value\":42}");
	}
	dir_server_stop(srv);

	/* One worker held at the gate and a queue of one: the rest are
	 * refused at once, while requests without jobs are served. */
	memset(&sc, 0, sizeof(sc));
	sc.job_threads = 1;
	sc.job_queue = 1;
	srv = start(&sc);
	gate_set(0);
	for (i = 0; i < 6; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].address = dir_server_address(srv);
		c[i].path = "/job";
		assert_int_equal(pthread_create(&th[i], NULL, client_main,
		    &c[i]), 0);
	}
	/* Those refused answer while the gate is still shut. */
	for (i = 0; i < 50 && full < 4; i++) {
		int j;

		usleep(100 * 1000);
		for (j = 0, full = 0; j < 6; j++)
			full += c[j].status == 503;
	}
	assert_true(full >= 4);
	expect_net(dir_server_address(srv), NULL, "127.0.0.1");
	gate_set(1);
	for (i = 0, ok = 0, full = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		if (c[i].status == 200) {
			ok++;
			assert_string_equal(c[i].body, "{\"value\":42}");
		} else {
			assert_int_equal(c[i].status, 503);
			assert_non_null(strstr(c[i].head, "Retry-After: 7"));
			full++;
		}
	}
	assert_true(ok >= 1 && ok <= 2);
	assert_int_equal(ok + full, 6);
	dir_server_stop(srv);
}

static void
test_hold(void **state)
{
	struct dir_server_config sc;
	struct dir_server *srv;
	char head[1024];
	uint64_t t0;

	(void)state;
	memset(&sc, 0, sizeof(sc));
	sc.throttle_delay_ms = 400;
	srv = start(&sc);
	t0 = now_ms();
	assert_int_equal(request(dir_server_address(srv), "/hold", NULL, head,
	    sizeof(head), NULL, 0), 429);
	/* Held for the delay (a lower bound only: it cannot come early). */
	assert_true(now_ms() - t0 >= 400);
	assert_non_null(strstr(head, "Retry-After: 3"));
	dir_server_stop(srv);
	/* Without a delay it comes at once, with the same headers. */
	memset(&sc, 0, sizeof(sc));
	srv = start(&sc);
	assert_int_equal(request(dir_server_address(srv), "/hold", NULL, head,
	    sizeof(head), NULL, 0), 429);
	assert_non_null(strstr(head, "Retry-After: 3"));
	dir_server_stop(srv);
}

/* A stop while jobs wait at the gate, long-polls and held answers are in
 * flight: every one of them gets its answer, and the stop returns. */
static void
test_stop_in_flight(void **state)
{
	struct dir_server_config sc;
	struct dir_server *srv;
	struct client_arg c[9];
	pthread_t th[9];
	static const char *paths[3] = { "/job", "/wait", "/hold" };
	int i, round;

	(void)state;
	for (round = 0; round < 5; round++) {
		memset(&sc, 0, sizeof(sc));
		sc.job_threads = 1;
		sc.job_queue = 8;
		sc.throttle_delay_ms = 5000;
		srv = start(&sc);
		gate_set(0);
		for (i = 0; i < 9; i++) {
			memset(&c[i], 0, sizeof(c[i]));
			c[i].address = dir_server_address(srv);
			c[i].path = paths[i % 3];
			assert_int_equal(pthread_create(&th[i], NULL,
			    client_main, &c[i]), 0);
		}
		usleep(300 * 1000);
		/* The jobs end while the server drains. */
		gate_set(1);
		dir_server_stop(srv);
		for (i = 0; i < 9; i++) {
			pthread_join(th[i], NULL);
			if (i % 3 == 0) {
				assert_int_equal(c[i].status, 200);
				assert_string_equal(c[i].body,
				    "{\"value\":42}");
			} else if (i % 3 == 1) {
				assert_int_equal(c[i].status, 200);
			} else {
				assert_int_equal(c[i].status, 429);
			}
			/* Draining answers send the clients away. */
			assert_non_null(strstr(c[i].head,
			    "Connection: close"));
		}
	}
}

/*
 * Long-polls whose clients hung up stop counting against the per-address
 * limit: libmicrohttpd does not watch suspended connections, the server
 * does.
 */
static void
test_gone_long_polls(void **state)
{
	struct dir_server_config sc;
	struct dir_server *srv;
	const char *req = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
	char body[256];
	int fd[2], i, status = 0;

	(void)state;
	memset(&sc, 0, sizeof(sc));
	sc.max_per_address = 2;
	srv = start(&sc);
	for (i = 0; i < 2; i++) {
		assert_true((fd[i] = connect_to(dir_server_address(srv))) >= 0);
		assert_int_equal(write(fd[i], req, strlen(req)),
		    (ssize_t)strlen(req));
	}
	/* Both are waiting (30 s): a third connection is refused. */
	usleep(300 * 1000);
	assert_int_equal(request(dir_server_address(srv), "/net", NULL, NULL,
	    0, body, sizeof(body)), 0);
	close(fd[0]);
	close(fd[1]);
	/* Within a few seconds, not 30, the address may connect again. */
	for (i = 0; i < 100 && status != 200; i++) {
		usleep(100 * 1000);
		status = request(dir_server_address(srv), "/net", NULL, NULL,
		    0, body, sizeof(body));
	}
	assert_int_equal(status, 200);
	dir_server_stop(srv);
}

/*
 * Waking everyone (another process's changes may have been missed): the
 * long-polls of every key answer at once; a held answer still waits for
 * its delay.
 */
static void
test_notify_all(void **state)
{
	struct dir_server_config sc;
	struct dir_server *srv;
	struct client_arg c[3];
	pthread_t th[3];
	static const char *paths[3] = { "/wake/a", "/wake/b", "/hold" };
	uint64_t t0;
	int i;

	(void)state;
	memset(&sc, 0, sizeof(sc));
	sc.throttle_delay_ms = 4000;
	srv = start(&sc);
	t0 = now_ms();
	for (i = 0; i < 3; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].address = dir_server_address(srv);
		c[i].path = paths[i];
		assert_int_equal(pthread_create(&th[i], NULL, client_main,
		    &c[i]), 0);
	}
	usleep(300 * 1000);
	/* One key: only its long-poll. */
	dir_server_notify(srv, "a");
	pthread_join(th[0], NULL);
	assert_int_equal(c[0].status, 200);
	dir_server_notify_all(srv);
	pthread_join(th[1], NULL);
	assert_int_equal(c[1].status, 200);
	/* Woken, not timed out (30 s), while the held answer waits. */
	assert_true(now_ms() - t0 < 3500);
	pthread_join(th[2], NULL);
	assert_int_equal(c[2].status, 429);
	assert_true(now_ms() - t0 >= 4000);
	dir_server_notify_all(NULL);
	dir_server_stop(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxy_client),
		cmocka_unit_test(test_jobs),
		cmocka_unit_test(test_hold),
		cmocka_unit_test(test_stop_in_flight),
		cmocka_unit_test(test_gone_long_polls),
		cmocka_unit_test(test_notify_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
