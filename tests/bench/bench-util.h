/*
 * bench-util.h - what the benchmarks share: messages and exit, a
 * monotonic clock, medians and quantiles, /proc figures of a process,
 * a devid-directory of this build run as a child on loopback, and its
 * accounts, devices (tests/unit's software devices) and sessions set up
 * through common/dirclient.
 *
 * A benchmark calls bench_init() first, before it forks or starts a
 * thread.  Everything here is for one process and its children; nothing
 * is safe to call from several threads at once except bench_now_s(),
 * bench_median() and bench_quantile().
 */
#ifndef DEVID_BENCH_UTIL_H
#define DEVID_BENCH_UTIL_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include <netinet/in.h>

#include "acctlog.h"
#include "dir-test-util.h"
#include "dirclient.h"

/* Set by SIGINT, SIGTERM and SIGHUP once bench_catch_signals() ran. */
extern volatile sig_atomic_t bench_interrupted;

/*
 * Names the program in messages (prog, a string that outlives the run)
 * and makes this process the parent that bench_die() exits.
 */
void bench_init(const char *prog);

/*
 * From now on SIGINT, SIGTERM and SIGHUP set bench_interrupted instead
 * of ending the process: for a benchmark that checks it (and so cleans
 * up its children and files on the way out).
 */
void bench_catch_signals(void);

/* 1 in the process that called bench_init(), 0 in its forked children. */
int bench_is_parent(void);

/*
 * hook runs in the parent after bench_die() has printed its message and
 * before it exits (e.g. to print a server's log); NULL for none.
 */
void bench_set_die_hook(void (*hook)(void));

/*
 * Prints "PROG: message" to stderr and ends the process: exit(1) in the
 * parent (its atexit handlers run), _exit(1) in a forked child.
 */
void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* bench_die("interrupted"), without the hook, once a signal came. */
void bench_check_interrupted(void);

/* Seconds on CLOCK_MONOTONIC. */
double bench_now_s(void);

/* Sleeps s seconds (nothing when s <= 0), resuming after a signal
 * unless it set bench_interrupted. */
void bench_sleep_s(double s);

/* The median of v[0..n), n > 0; sorts v. */
double bench_median(double *v, size_t n);

/* The q-quantile (0..1) of v[0..n), sorting v; 0 when n is 0. */
double bench_quantile(double *v, size_t n, double q);

/* A line "NAME: N kB" of /proc/PID/status in KiB, 0 when unknown. */
unsigned long bench_proc_status_kib(pid_t pid, const char *name);

/* User + system CPU seconds of pid so far, 0 when unknown. */
double bench_proc_cpu_s(pid_t pid);

/* Prints the last 4 KiB of the file at path to stderr, if it opens. */
void bench_print_tail(const char *path);

/*
 * The directory where bench_tool_run(), bench_password_file() and
 * bench_server_start() keep their files (tool.out, pw, ready); dir must
 * outlive their calls.
 */
void bench_set_workdir(const char *dir);

/*
 * Starts argv (NULL-terminated; argv[0] the program) with standard output
 * and error appended to out_path, dying with this process.  Returns its
 * pid; dies when it cannot fork.
 */
pid_t bench_spawn(const char *const *argv, const char *out_path);

/*
 * Runs argv to its end with its output in WORKDIR/tool.out.  0 when it
 * exits 0; otherwise prints that output and returns -1.
 */
int bench_tool_run(const char *const *argv);

/* password and a newline into WORKDIR/pw, mode 0600; dies on failure. */
void bench_password_file(const char *password);

/*
 * The devid-directory of this build tree: $top_builddir's, or the one of
 * the build directory this program sits in (tests/bench/).  A static
 * string.
 */
const char *bench_default_binary(void);

/* A devid-directory run by the benchmark. */
struct bench_server {
	const char *binary;
	char db[PATH_MAX];
	char log[PATH_MAX];             /* its standard output and error */
	struct sockaddr_in addr;
	char host[160];                 /* 127.0.0.1:PORT */
	char url[176];                  /* http://127.0.0.1:PORT */
	pid_t pid;                      /* 0 when it does not run */
};

/*
 * devid-directory account add NAME --db s->db --password-file WORKDIR/pw
 * [--scrypt-cost cost] (cost NULL: the default); dies on failure.
 */
void bench_account_add(const struct bench_server *s, const char *name,
    const char *cost);

/*
 * serve --db s->db on 127.0.0.1:0 with --quiet and the extra arguments
 * (NULL-terminated, may be NULL), and waits up to 30 s for its ready
 * file; fills in s->addr, host, url and pid.  Dies when it does not
 * become ready.  The server started last is killed by
 * bench_server_kill() and its log printed by bench_server_print_log().
 */
void bench_server_start(struct bench_server *s, const char *const *extra);

/*
 * SIGTERM and waits for the exit (SIGKILL after 20 s).  Returns 0 on a
 * clean exit or when it did not run; otherwise says how it ended, prints
 * its log and returns -1.
 */
int bench_server_stop(struct bench_server *s);

/* At exit: SIGKILL to the server started last if it still runs. */
void bench_server_kill(void);

/* The end of the log of the server started last, if it runs. */
void bench_server_print_log(void);

/*
 * A directory client for s->url, with the session token when token is
 * not NULL and requests limited to timeout_s (0: dirclient's default).
 * Dies on failure; the caller frees it with dirc_free().
 */
struct dirc *bench_client(const struct bench_server *s, const char *token,
    long timeout_s);

/* The directory's /v1/info into *info; dies on failure. */
void bench_info(const struct bench_server *s, struct dirc_info *info);

/*
 * Makes the software device label of account into d (tdev_clear() frees
 * it) and registers it with password; *head gets the account's new head
 * when head is not NULL.  Dies on failure.
 */
void bench_device_add(const struct bench_server *s, struct tdev *d,
    const char *account, const char *label, const char *password,
    struct acctlog_head *head);

/* Logs d in to the directory dir_id; its bearer token into token.  Dies
 * on failure. */
void bench_login(const struct bench_server *s, const char *dir_id,
    struct tdev *d, char token[DIRC_TOKEN_MAX + 1]);

#endif /* DEVID_BENCH_UTIL_H */
