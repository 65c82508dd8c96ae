/*
 * bench-util.c - what the benchmarks share (see bench-util.h).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "errors.h"

#define READY_WAIT_S 30
#define STOP_WAIT_S 20

volatile sig_atomic_t bench_interrupted;

static const char *prog = "bench";
static pid_t parent_pid;
static void (*die_hook)(void);
static const char *workdir = ".";
static pid_t last_pid;                  /* the server started last */
static char last_log[PATH_MAX];         /* and its log */

static void
on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

void
bench_init(const char *name)
{
	prog = name;
	parent_pid = getpid();
}

void
bench_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int
bench_is_parent(void)
{
	return getpid() == parent_pid;
}

void
bench_set_die_hook(void (*hook)(void))
{
	die_hook = hook;
}

static void __attribute__((format(printf, 2, 0), noreturn))
vdie(int with_hook, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	if (!bench_is_parent())
		_exit(1);
	if (with_hook && die_hook != NULL)
		die_hook();
	exit(1);
}

void
bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdie(1, fmt, ap);
}

static void __attribute__((format(printf, 1, 2), noreturn))
die_plain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdie(0, fmt, ap);
}

void
bench_check_interrupted(void)
{
	if (bench_interrupted)
		die_plain("interrupted");
}

double
bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
bench_sleep_s(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR &&
	    !bench_interrupted)
		;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double
bench_quantile(double *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(q * (double)n + 0.999999);
	if (i > 0)
		i--;
	return v[i < n ? i : n - 1];
}

unsigned long
bench_proc_status_kib(pid_t pid, const char *name)
{
	char path[64], line[256];
	unsigned long kib = 0;
	size_t len = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			kib = strtoul(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

double
bench_proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the command's closing ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void
bench_print_tail(const char *path)
{
	char buf[4096];
	FILE *f;
	long size;
	size_t n;

	if ((f = fopen(path, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ?
	    size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "--- %s ---\n%s--- end ---\n", path, buf);
}

void
bench_set_workdir(const char *dir)
{
	workdir = dir;
}

pid_t
bench_spawn(const char *const *argv, const char *out_path)
{
	pid_t parent = getpid(), pid;
	int fd;

	if ((pid = fork()) < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid > 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if ((fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600)) >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	execv(argv[0], (char *const *)(uintptr_t)argv);
	fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int
bench_tool_run(const char *const *argv)
{
	char out[PATH_MAX];
	pid_t pid;
	int status;

	snprintf(out, sizeof(out), "%s/tool.out", workdir);
	unlink(out);
	pid = bench_spawn(argv, out);
	while (waitpid(pid, &status, 0) != pid)
		if (errno != EINTR)
			bench_die("waitpid: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "%s: %s %s failed\n", prog, argv[0], argv[1]);
	bench_print_tail(out);
	return -1;
}

void
bench_password_file(const char *password)
{
	char pw[PATH_MAX];
	FILE *f;

	snprintf(pw, sizeof(pw), "%s/pw", workdir);
	if ((f = fopen(pw, "w")) == NULL)
		bench_die("%s: %s", pw, strerror(errno));
	if (fprintf(f, "%s\n", password) < 0 || fclose(f) != 0)
		bench_die("%s: cannot write", pw);
	/* A password file others may read is refused. */
	if (chmod(pw, 0600) != 0)
		bench_die("%s: %s", pw, strerror(errno));
}

const char *
bench_default_binary(void)
{
	static char path[PATH_MAX + 32];
	const char *top = getenv("top_builddir");
	char exe[PATH_MAX], *p;
	ssize_t n;
	int i;

	if (top != NULL && *top != '\0') {
		snprintf(path, sizeof(path), "%s/directory/devid-directory",
		    top);
		return path;
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0)
		bench_die("cannot find this program: %s", strerror(errno));
	exe[n] = '\0';
	for (i = 0; i < 3; i++)
		if ((p = strrchr(exe, '/')) != NULL)
			*p = '\0';
	snprintf(path, sizeof(path), "%s/directory/devid-directory", exe);
	return path;
}

void
bench_account_add(const struct bench_server *s, const char *name,
    const char *cost)
{
	const char *argv[12];
	char pw[PATH_MAX];
	size_t n = 0;

	snprintf(pw, sizeof(pw), "%s/pw", workdir);
	argv[n++] = s->binary;
	argv[n++] = "account";
	argv[n++] = "add";
	argv[n++] = name;
	argv[n++] = "--db";
	argv[n++] = s->db;
	argv[n++] = "--password-file";
	argv[n++] = pw;
	if (cost != NULL) {
		argv[n++] = "--scrypt-cost";
		argv[n++] = cost;
	}
	argv[n] = NULL;
	if (bench_tool_run(argv) != 0)
		bench_die("cannot create account %s", name);
}

/* The ready file's "ADDRESS:PORT" line into s->addr, host and url. */
static void
server_address(struct bench_server *s, char *line)
{
	char *colon;

	line[strcspn(line, "\n")] = '\0';
	if ((colon = strrchr(line, ':')) == NULL)
		bench_die("unexpected ready file: %s", line);
	*colon = '\0';
	memset(&s->addr, 0, sizeof(s->addr));
	s->addr.sin_family = AF_INET;
	s->addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, line, &s->addr.sin_addr) != 1)
		bench_die("unexpected address in the ready file: %s", line);
	snprintf(s->host, sizeof(s->host), "%s:%s", line, colon + 1);
	snprintf(s->url, sizeof(s->url), "http://%s", s->host);
}

void
bench_server_start(struct bench_server *s, const char *const *extra)
{
	const char *argv[40];
	char ready[PATH_MAX], line[128];
	double t0;
	size_t n = 0, i;
	FILE *f;
	int status;

	snprintf(ready, sizeof(ready), "%s/ready", workdir);
	unlink(ready);
	argv[n++] = s->binary;
	argv[n++] = "serve";
	argv[n++] = "--db";
	argv[n++] = s->db;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--ready-file";
	argv[n++] = ready;
	argv[n++] = "--quiet";
	for (i = 0; extra != NULL && extra[i] != NULL && n < 39; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	s->pid = last_pid = bench_spawn(argv, s->log);
	snprintf(last_log, sizeof(last_log), "%s", s->log);
	t0 = bench_now_s();
	while ((f = fopen(ready, "r")) == NULL) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = last_pid = 0;
			bench_print_tail(s->log);
			bench_die("devid-directory exited before it was ready");
		}
		if (bench_now_s() - t0 > READY_WAIT_S)
			bench_die("devid-directory did not become ready in "
			    "%d s", READY_WAIT_S);
		bench_check_interrupted();
		bench_sleep_s(0.01);
	}
	if (fgets(line, sizeof(line), f) == NULL)
		bench_die("empty ready file");
	fclose(f);
	server_address(s, line);
}

int
bench_server_stop(struct bench_server *s)
{
	double t0 = bench_now_s();
	int status = 0;

	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGTERM);
	while (waitpid(s->pid, &status, WNOHANG) == 0) {
		if (bench_now_s() - t0 > STOP_WAIT_S) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			break;
		}
		bench_sleep_s(0.01);
	}
	if (last_pid == s->pid)
		last_pid = 0;
	s->pid = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "%s: WARNING: devid-directory ended by "
		    "signal %d on SIGTERM\n", prog, WTERMSIG(status));
	else
		fprintf(stderr, "%s: WARNING: devid-directory exited %d "
		    "on SIGTERM\n", prog, WEXITSTATUS(status));
	bench_print_tail(s->log);
	return -1;
}

void
bench_server_kill(void)
{
	if (last_pid <= 0 || !bench_is_parent())
		return;
	kill(last_pid, SIGKILL);
	waitpid(last_pid, NULL, 0);
	last_pid = 0;
}

void
bench_server_print_log(void)
{
	if (last_pid > 0 && last_log[0] != '\0')
		bench_print_tail(last_log);
}

struct dirc *
bench_client(const struct bench_server *s, const char *token, long timeout_s)
{
	struct dirc_options opt;
	struct dirc *c = NULL;
	struct err_ctx e;

	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = timeout_s;
	err_clear(&e);
	if (dirc_new(s->url, &opt, &c, &e) != 0)
		bench_die("client: %s", err_msg(&e));
	if (token != NULL && dirc_set_token(c, token) != 0)
		bench_die("client: cannot set the session");
	return c;
}

void
bench_info(const struct bench_server *s, struct dirc_info *info)
{
	struct dirc *c = bench_client(s, NULL, 0);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_info(c, info, &e) != 0)
		bench_die("info: %s", err_msg(&e));
	dirc_free(c);
}

void
bench_device_add(const struct bench_server *s, struct tdev *d,
    const char *account, const char *label, const char *password,
    struct acctlog_head *head)
{
	struct dirc *c;
	struct err_ctx e;
	int r;

	if ((r = tdev_make(d, account, label, (uint64_t)time(NULL))) != 0)
		bench_die("device %s: %s", label, err_str(r));
	c = bench_client(s, NULL, 0);
	err_clear(&e);
	if (dirc_register_device(c, password, &d->rec, head, &e) != 0)
		bench_die("registering %s: %s", label, err_msg(&e));
	dirc_free(c);
}

void
bench_login(const struct bench_server *s, const char *dir_id,
    struct tdev *d, char token[DIRC_TOKEN_MAX + 1])
{
	struct dirc *c = bench_client(s, NULL, 0);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_login(c, dir_id, d->rec.device, tdev_sign, d, NULL, &e) != 0)
		bench_die("login of %s: %s", d->rec.label, err_msg(&e));
	snprintf(token, DIRC_TOKEN_MAX + 1, "%s", dirc_token(c));
	dirc_free(c);
}
