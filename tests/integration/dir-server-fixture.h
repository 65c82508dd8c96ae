/*
 * dir-server-fixture.h - the real devid-directory binary for the
 * integration tests (cmocka).
 *
 * A struct tsrv owns a private temporary directory holding the database
 * (dir.db), the ready file and the files of tsrv_run().  tsrv_start()
 * runs `$top_builddir/directory/devid-directory serve` on a free loopback
 * port (port 0; the server writes the bound address to its ready file)
 * and waits until it serves.  The server dies with the test process
 * (PR_SET_PDEATHSIG) should the test crash, and tsrv_free() kills it
 * and removes the directory on every other path, so that a teardown
 * calling it leaves nothing behind.
 *
 * Failures to start are test failures (cmocka fail_msg), so these calls
 * belong to the test's own thread.
 */
#ifndef DEVID_DIR_SERVER_FIXTURE_H
#define DEVID_DIR_SERVER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "dirclient.h"
#include "dir-test-util.h"

/* Flags of tsrv_new(). */
#define TSRV_OPEN_SIGNUP 0x1         /* serve with --open-signup */
#define TSRV_UMASK_022 0x2           /* server and tools under umask 022
                                      * (otherwise the test's own) */

struct tsrv {
	char *dir;                   /* the temporary directory */
	char db[512];                /* dir/dir.db */
	pid_t pid;                   /* the running server, 0 when none */
	char addr[128];              /* ADDR:PORT as its ready file says */
	uint16_t port;
	char url[160];               /* SCHEME://127.0.0.1:PORT */
	unsigned int flags;
	char **argv;                 /* of the last start, for a restart */
	char scheme[8];
};

/* A certificate and key for serving TLS, and the arguments that say so. */
struct tsrv_tls {
	char cert[600];              /* PEM, also the CA to pin */
	char key[600];
	const char *args[5];         /* --tls-cert CERT --tls-key KEY NULL */
};

/*
 * A fixture with a new temporary directory and no server running, or
 * NULL (said on stderr) when the directory cannot be made.  flags:
 * TSRV_*.  Release with tsrv_free().
 */
struct tsrv *tsrv_new(unsigned int flags);

/*
 * Makes the server of s use db, a file path or a libpq URI
 * (postgresql://...), in place of dir/dir.db; the temporary directory
 * still holds the ready file and the files of tsrv_run().  A server on
 * PostgreSQL needs --signing-key among the extra arguments of
 * tsrv_start(), and several fixtures may name one database.  Call it
 * before the start; fails the test when db does not fit.
 */
void tsrv_use_db(struct tsrv *s, const char *db);

/* Kills a running server (SIGKILL) and reaps it, removes the directory,
 * and frees s.  Accepts NULL. */
void tsrv_free(struct tsrv *s);

/* A cmocka teardown for a *state made by tsrv_new(): tsrv_free(). */
int tsrv_teardown(void **state);

/*
 * Starts `serve` on s->db listening on listen ("127.0.0.1:0" when NULL),
 * with the test defaults (--scrypt-cost 10 --rate 0 --quiet, and
 * --open-signup with TSRV_OPEN_SIGNUP) and then the extra arguments
 * (NULL-terminated, may be NULL; later flags win), and waits for its
 * ready file.  scheme ("http" when NULL, or "https") is that of s->url,
 * which always names loopback, whatever the server listens on.  The
 * server must not be running.  Fails the test when it exits or is not
 * ready in time.
 */
void tsrv_start_on(struct tsrv *s, const char *listen, const char *scheme,
    const char *const *extra);

/* tsrv_start_on(s, NULL, NULL, extra): http on 127.0.0.1:0. */
void tsrv_start(struct tsrv *s, const char *const *extra);

/* Starts the server again with the arguments of the last start, on the
 * same database (it must have been stopped or killed). */
void tsrv_restart(struct tsrv *s);

/*
 * Reaps the server once it exits of its own accord or on a signal the
 * test sent: its exit status, or -1 when a signal ended it.  s->pid is
 * 0 afterwards; returns -1 at once when no server runs.
 */
int tsrv_wait(struct tsrv *s);

/* SIGTERM (the server drains and exits) and tsrv_wait(). */
int tsrv_stop(struct tsrv *s);

/* kill -9 and tsrv_wait(): -1 unless the server had already exited. */
int tsrv_kill(struct tsrv *s);

/*
 * Runs `devid-directory args...` (args NULL-terminated, without the
 * program name) and waits for it: standard input is the text input
 * (/dev/null when NULL), standard output and error go to out
 * (NUL-terminated, cut at out_len - 1 bytes), under the fixture's
 * umask.  With timeout_ms > 0 the tool is killed after that long, else
 * it may take as long as it likes.  Returns its exit status (127 when it
 * could not be executed), -1 when a signal ended it, -2 when it was
 * still running at the deadline.
 */
int tsrv_run(const struct tsrv *s, const char *const *args, const char *input,
    unsigned int timeout_ms, char *out, size_t out_len);

/*
 * Makes a self-signed P-256 certificate for 127.0.0.1, valid for a day,
 * and its key in s->dir with the openssl tool ($OPENSSL_BIN, else
 * "openssl"), and fills t->args for tsrv_start_on(); t must stay where
 * it is while t->args is in use.  Fails the test when openssl fails.
 */
void tsrv_tls_make(const struct tsrv *s, struct tsrv_tls *t);

/* A dirclient of the running server; fails the test on error.  Caller
 * dirc_free()s it. */
struct dirc *tsrv_client(const struct tsrv *s);

/* A new client with a session of device d (signed login) to directory
 * dir_id; fails the test on error.  Caller dirc_free()s it. */
struct dirc *tsrv_login(const struct tsrv *s, const char *dir_id,
    struct tdev *d);

/* Brings st up to date from the directory through c, verifying every
 * event and the head under dir_pub; fails the test otherwise. */
void tsrv_watch(struct dirc *c, struct acctlog_state *st,
    EVP_PKEY *dir_pub);

#endif /* DEVID_DIR_SERVER_FIXTURE_H */
