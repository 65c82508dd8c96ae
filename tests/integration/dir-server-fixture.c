/*
 * dir-server-fixture.c - the real devid-directory binary for the
 * integration tests: start, wait for ready, stop, kill -9, restart, and
 * its command-line tools (dir-server-fixture.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "errors.h"
#include "dir-server-fixture.h"

#define READY_WAIT_MS 30000
#define ARGV_MAX 48

static const char *
binary(void)
{
	static char path[1024];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/directory/devid-directory",
	    top != NULL ? top : ".");
	return path;
}

struct tsrv *
tsrv_new(unsigned int flags)
{
	struct tsrv *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if ((s->dir = ttmpdir_make()) == NULL) {
		fprintf(stderr, "cannot make a temporary directory: %s\n",
		    strerror(errno));
		free(s);
		return NULL;
	}
	snprintf(s->db, sizeof(s->db), "%s/dir.db", s->dir);
	s->flags = flags;
	return s;
}

void
tsrv_use_db(struct tsrv *s, const char *db)
{
	assert_non_null(s);
	assert_int_equal(s->pid, 0);
	if (strlen(db) >= sizeof(s->db))
		fail_msg("a database name of %zu bytes is too long",
		    strlen(db));
	snprintf(s->db, sizeof(s->db), "%s", db);
}

static void
argv_free(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

void
tsrv_free(struct tsrv *s)
{
	if (s == NULL)
		return;
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	argv_free(s->argv);
	ttmpdir_remove(s->dir);
	free(s);
}

int
tsrv_teardown(void **state)
{
	tsrv_free(*state);
	*state = NULL;
	return 0;
}

/* In a child: the settings the fixture promises every program it runs. */
static void
child_settings(const struct tsrv *s)
{
	/* Gone with the test, should it die without a teardown. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (s->flags & TSRV_UMASK_022)
		umask(022);
}

static void
ready_path(const struct tsrv *s, char *out, size_t out_len)
{
	snprintf(out, out_len, "%s/ready", s->dir);
}

/* Runs s->argv and waits until the server has written its ready file. */
static void
spawn_and_wait(struct tsrv *s)
{
	char ready[600], *colon;
	FILE *f;
	double t0;
	long port;
	int status;

	assert_int_equal(s->pid, 0);
	ready_path(s, ready, sizeof(ready));
	unlink(ready);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		child_settings(s);
		execv(s->argv[0], s->argv);
		fprintf(stderr, "cannot run %s: %s\n", s->argv[0],
		    strerror(errno));
		_exit(127);
	}
	t0 = tmono_ms();
	while ((f = fopen(ready, "r")) == NULL) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			fail_msg("devid-directory exited (status %d) before it "
			    "was ready", WIFEXITED(status) ?
			    WEXITSTATUS(status) : -1);
		}
		if (tmono_ms() - t0 > READY_WAIT_MS)
			fail_msg("devid-directory did not become ready within "
			    "%d s", READY_WAIT_MS / 1000);
		tsleep_ms(20);
	}
	if (fgets(s->addr, sizeof(s->addr), f) == NULL)
		s->addr[0] = '\0';
	fclose(f);
	s->addr[strcspn(s->addr, "\n")] = '\0';
	if ((colon = strrchr(s->addr, ':')) == NULL)
		fail_msg("ready file without a port: '%s'", s->addr);
	port = strtol(colon + 1, NULL, 10);
	assert_true(port > 0 && port < 65536);
	s->port = (uint16_t)port;
	/* Whatever it listens on, it is reached over loopback. */
	snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%ld", s->scheme,
	    port);
}

void
tsrv_start_on(struct tsrv *s, const char *listen, const char *scheme,
    const char *const *extra)
{
	const char *argv[ARGV_MAX];
	char ready[600];
	size_t n = 0, i;

	assert_non_null(s);
	assert_int_equal(s->pid, 0);
	ready_path(s, ready, sizeof(ready));
	argv[n++] = binary();
	argv[n++] = "serve";
	argv[n++] = "--db";
	argv[n++] = s->db;
	argv[n++] = "--listen";
	argv[n++] = listen != NULL ? listen : "127.0.0.1:0";
	argv[n++] = "--ready-file";
	argv[n++] = ready;
	if (s->flags & TSRV_OPEN_SIGNUP)
		argv[n++] = "--open-signup";
	argv[n++] = "--scrypt-cost";
	argv[n++] = "10";
	argv[n++] = "--rate";
	argv[n++] = "0";
	argv[n++] = "--quiet";
	for (i = 0; extra != NULL && extra[i] != NULL; i++) {
		if (n == ARGV_MAX - 1)
			fail_msg("more than %d arguments", ARGV_MAX - 1);
		argv[n++] = extra[i];
	}
	argv[n] = NULL;

	/* Kept, copied, for tsrv_restart(). */
	argv_free(s->argv);
	assert_non_null(s->argv = calloc(n + 1, sizeof(*s->argv)));
	for (i = 0; i < n; i++)
		assert_non_null(s->argv[i] = strdup(argv[i]));
	snprintf(s->scheme, sizeof(s->scheme), "%s", scheme != NULL ? scheme :
	    "http");
	spawn_and_wait(s);
}

void
tsrv_start(struct tsrv *s, const char *const *extra)
{
	tsrv_start_on(s, NULL, NULL, extra);
}

void
tsrv_restart(struct tsrv *s)
{
	assert_non_null(s);
	if (s->argv == NULL)
		fail_msg("tsrv_restart() before any start");
	spawn_and_wait(s);
}

int
tsrv_wait(struct tsrv *s)
{
	int status = 0, ret = -1;

	if (s->pid > 0) {
		if (waitpid(s->pid, &status, 0) == s->pid &&
		    WIFEXITED(status))
			ret = WEXITSTATUS(status);
		s->pid = 0;
	}
	return ret;
}

int
tsrv_stop(struct tsrv *s)
{
	if (s->pid > 0)
		kill(s->pid, SIGTERM);
	return tsrv_wait(s);
}

int
tsrv_kill(struct tsrv *s)
{
	if (s->pid > 0)
		kill(s->pid, SIGKILL);
	return tsrv_wait(s);
}

/* The whole of path into out (NUL-terminated, cut at out_len - 1). */
static void
read_into(const char *path, char *out, size_t out_len)
{
	size_t got = 0;
	ssize_t k;
	int fd;

	out[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	while (got < out_len - 1) {
		k = read(fd, out + got, out_len - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	out[got] = '\0';
	close(fd);
}

int
tsrv_run(const struct tsrv *s, const char *const *args, const char *input,
    unsigned int timeout_ms, char *out, size_t out_len)
{
	const char *argv[ARGV_MAX];
	char out_path[600], in_path[600];
	size_t n = 0, i;
	double t0;
	pid_t pid;
	FILE *f;
	int fd, status = 0, ret = -2;

	assert_true(out_len > 0);
	argv[n++] = binary();
	for (i = 0; args[i] != NULL; i++) {
		if (n == ARGV_MAX - 1)
			fail_msg("more than %d arguments", ARGV_MAX - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/run.out", s->dir);
	snprintf(in_path, sizeof(in_path), "%s/run.in", s->dir);
	unlink(out_path);
	if (input != NULL) {
		assert_non_null(f = fopen(in_path, "w"));
		assert_int_equal(fputs(input, f) < 0, 0);
		assert_int_equal(fclose(f), 0);
	} else {
		snprintf(in_path, sizeof(in_path), "/dev/null");
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		child_settings(s);
		if ((fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC,
		    0600)) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		close(fd);
		if ((fd = open(in_path, O_RDONLY)) < 0 || dup2(fd, 0) < 0)
			_exit(126);
		close(fd);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	t0 = tmono_ms();
	for (;;) {
		if (waitpid(pid, &status, timeout_ms > 0 ? WNOHANG : 0) ==
		    pid) {
			ret = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			break;
		}
		if (timeout_ms > 0 && tmono_ms() - t0 > timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		if (timeout_ms > 0)
			tsleep_ms(20);
	}
	read_into(out_path, out, out_len);
	return ret;
}

void
tsrv_tls_make(const struct tsrv *s, struct tsrv_tls *t)
{
	const char *openssl = getenv("OPENSSL_BIN");
	char cmd[2048];

	snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", s->dir);
	snprintf(t->key, sizeof(t->key), "%s/key.pem", s->dir);
	snprintf(cmd, sizeof(cmd), "'%s' req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 "
	    "-addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' "
	    ">/dev/null 2>&1", openssl != NULL && *openssl != '\0' ? openssl :
	    "openssl", t->key, t->cert);
	if (system(cmd) != 0)
		fail_msg("cannot make a certificate: %s", cmd);
	t->args[0] = "--tls-cert";
	t->args[1] = t->cert;
	t->args[2] = "--tls-key";
	t->args[3] = t->key;
	t->args[4] = NULL;
}

struct dirc *
tsrv_client(const struct tsrv *s)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_new(s->url, NULL, &c, &e) != 0)
		fail_msg("%s", err_msg(&e));
	return c;
}

struct dirc *
tsrv_login(const struct tsrv *s, const char *dir_id, struct tdev *d)
{
	struct dirc *c = tsrv_client(s);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_login(c, dir_id, d->rec.device, tdev_sign, d, NULL, &e) !=
	    0) {
		dirc_free(c);
		fail_msg("login of %.16s: %s", d->rec.device, err_msg(&e));
	}
	return c;
}

void
tsrv_watch(struct dirc *c, struct acctlog_state *st, EVP_PKEY *dir_pub)
{
	struct acctlog_response *resp = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_get_log(c, st->account, st->seq, 0, &resp, &e) != 0 ||
	    acctlog_verify_update(st, resp->events, resp->n_events,
	    &resp->head, dir_pub, (uint64_t)time(NULL), 900, NULL, &e) != 0)
		fail_msg("log of %s: %s", st->account, err_msg(&e));
	acctlog_response_free(resp);
}
