/*
 * wit-store.c - devid-witness's state on SQLite.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "errors.h"
#include "paths.h"
#include "wit-store.h"

#define BUSY_MS 10000
#define SCHEMA_VERSION "1"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	" key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT OR IGNORE INTO meta VALUES ('schema', '" SCHEMA_VERSION "');"
	/* the latest cosigned checkpoint of each log */
	"CREATE TABLE IF NOT EXISTS logs ("
	" origin TEXT PRIMARY KEY, size INTEGER NOT NULL,"
	" root BLOB NOT NULL, note TEXT NOT NULL, time INTEGER NOT NULL);"
	/* every checkpoint ever cosigned */
	"CREATE TABLE IF NOT EXISTS history ("
	" origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL,"
	" note TEXT NOT NULL, time INTEGER NOT NULL,"
	" PRIMARY KEY (origin, size));"
	"CREATE TABLE IF NOT EXISTS evidence ("
	" id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" origin TEXT NOT NULL, reason TEXT NOT NULL, held TEXT NOT NULL,"
	" offered TEXT NOT NULL, UNIQUE (origin, offered));";

struct wit_store {
	sqlite3 *db;
	int lock_fd;
	char *path;
	pthread_mutex_t lock;
};

static int
db_fail(struct wit_store *s, struct err_ctx *e, const char *what)
{
	int code = sqlite3_errcode(s->db);

	return err_set(e, code == SQLITE_BUSY || code == SQLITE_LOCKED ?
	    ERR_TIMEOUT : ERR_IO, "witness state %s: %s failed: %s", s->path,
	    what, sqlite3_errmsg(s->db));
}

static int
db_exec(struct wit_store *s, const char *sql, const char *what,
    struct err_ctx *e)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, e, what);
	return 0;
}

/* Creates path with mode 0600 when missing, whatever the umask. */
static int
file_create_private(const char *path, struct err_ctx *e)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY |
	    O_NOFOLLOW, S_IRUSR | S_IWUSR);
	if (fd == -1)
		return errno == EEXIST ? 0 : err_set(e, ERR_IO, "cannot "
		    "create %s: %s", path, strerror(errno));
	if (fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
		close(fd);
		unlink(path);
		return err_set(e, ERR_IO, "cannot set mode 0600 on %s: %s",
		    path, strerror(errno));
	}
	if (close(fd) != 0)
		return err_set(e, ERR_IO, "cannot create %s: %s", path,
		    strerror(errno));
	return 0;
}

/* Takes the exclusive lock of the state directory dir into s. */
static int
lock_take(struct wit_store *s, const char *dir, struct err_ctx *e)
{
	char *path;
	int r = ERR_INTERNAL;

	if ((path = path_join(dir, "witness.lock")) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY |
	    O_NOFOLLOW, S_IRUSR | S_IWUSR);
	if (s->lock_fd == -1) {
		r = err_set(e, ERR_IO, "cannot open the lock file %s: %s",
		    path, strerror(errno));
		goto out;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		r = errno == EWOULDBLOCK ? err_set(e, ERR_EXISTS, "another "
		    "devid-witness serves the state directory %s (it holds "
		    "%s); stop it first, or give this one its own --state",
		    dir, path) : err_set(e, ERR_IO, "cannot lock %s: %s",
		    path, strerror(errno));
		goto out;
	}
	r = 0;
 out:
	free(path);
	return r;
}

int
wit_store_open(const char *dir, unsigned int flags, struct wit_store **out,
    struct err_ctx *e)
{
	struct wit_store *s = NULL;
	int ro = (flags & WIT_STORE_READONLY) != 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(dir != NULL && out != NULL, ERR_INVALID_ARG);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	s->lock_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	if ((s->path = path_join(dir, "witness.db")) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if (ro) {
		if (access(s->path, F_OK) != 0) {
			r = err_set(e, ERR_NOT_FOUND, "no witness state in %s "
			    "(%s is missing): give the --state of a witness "
			    "that has run", dir, s->path);
			goto out;
		}
	} else if ((r = path_private_dir(dir, e)) != 0 ||
	    (r = lock_take(s, dir, e)) != 0 ||
	    (r = file_create_private(s->path, e)) != 0)
		goto out;
	if (sqlite3_open_v2(s->path, &s->db, ro ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		r = err_set(e, ERR_IO, "cannot open the witness state %s: %s",
		    s->path, s->db != NULL ? sqlite3_errmsg(s->db) :
		    "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(s->db, BUSY_MS);
	if (!ro && ((r = db_exec(s, "PRAGMA journal_mode=WAL;",
	    "enabling WAL", e)) != 0 ||
	    (r = db_exec(s, "PRAGMA synchronous=FULL;",
	    "setting synchronous=FULL", e)) != 0 ||
	    (r = db_exec(s, "BEGIN IMMEDIATE;", "starting a transaction",
	    e)) != 0))
		goto out;
	if (!ro && ((r = db_exec(s, schema_sql, "creating the schema",
	    e)) != 0 ||
	    (r = db_exec(s, "COMMIT;", "creating the schema", e)) != 0)) {
		sqlite3_exec(s->db, "ROLLBACK;", NULL, NULL, NULL);
		goto out;
	}
	*out = s;
	s = NULL; /* transferred */
	r = 0;
 out:
	wit_store_close(s);
	return r;
}

void
wit_store_close(struct wit_store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	if (s->lock_fd != -1)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}

static int
prepare(struct wit_store *s, const char *sql, sqlite3_stmt **st,
    struct err_ctx *e)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(s, e, "preparing a statement");
	return 0;
}

/*
 * The row (root, note) of sql bound to (origin, size when has_size), or
 * *found = 0.  *note (may be NULL) gets a new copy of the note.
 */
static int
read_checkpoint(struct wit_store *s, const char *sql, const char *origin,
    int has_size, uint64_t size, int *found, uint64_t *size_out,
    uint8_t root[MERKLE_HASH_LEN], char **note, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	const void *blob;
	const char *text;
	int r, rc;

	*found = 0;
	if ((r = prepare(s, sql, &st, e)) != 0)
		return r;
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	if (has_size)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_fail(s, e, "reading a checkpoint");
		goto out;
	}
	blob = sqlite3_column_blob(st, 1);
	text = (const char *)sqlite3_column_text(st, 2);
	if (sqlite3_column_int64(st, 0) < 0 || blob == NULL ||
	    sqlite3_column_bytes(st, 1) != MERKLE_HASH_LEN || text == NULL) {
		r = err_set(e, ERR_FORMAT, "witness state %s: the checkpoint "
		    "held for '%.200s' is damaged", s->path, origin);
		goto out;
	}
	if (size_out != NULL)
		*size_out = (uint64_t)sqlite3_column_int64(st, 0);
	memcpy(root, blob, MERKLE_HASH_LEN);
	if (note != NULL && (*note = strdup(text)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	*found = 1;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

/* Runs sql (an INSERT) bound to origin, size, root, note, time. */
static int
insert_checkpoint(struct wit_store *s, const char *sql,
    const struct tlog_checkpoint *c, const char *note, size_t note_len,
    uint64_t now, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(s, sql, &st, e)) != 0)
		return r;
	sqlite3_bind_text(st, 1, c->origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)c->size);
	sqlite3_bind_blob(st, 3, c->root, MERKLE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, note, (int)note_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
	r = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    db_fail(s, e, "storing a checkpoint");
	sqlite3_finalize(st);
	return r;
}

static int
insert_evidence(struct wit_store *s, uint64_t now, const char *origin,
    const char *reason, const char *held, const char *offered,
    size_t offered_len, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(s, "INSERT OR IGNORE INTO evidence (time, origin, "
	    "reason, held, offered) VALUES (?, ?, ?, ?, ?)", &st, e)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_text(st, 2, origin, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, held, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, offered, (int)offered_len, SQLITE_STATIC);
	r = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    db_fail(s, e, "storing evidence");
	sqlite3_finalize(st);
	return r;
}

/* Inside the transaction: wit_store_submit() without the locking. */
static int
submit_locked(struct wit_store *s, uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const struct tlog_checkpoint *c, const char *note, size_t note_len,
    uint64_t now, enum wit_verdict *v, uint64_t *held_size,
    struct err_ctx *e)
{
	struct wit_held h;
	char *latest = NULL, *at_size = NULL;
	const char *held;
	int r;

	memset(&h, 0, sizeof(h));
	merkle_empty_root(h.root);
	if ((r = read_checkpoint(s, "SELECT size, root, note FROM logs "
	    "WHERE origin = ?", c->origin, 0, 0, &h.have, &h.size, h.root,
	    &latest, e)) != 0 ||
	    (r = read_checkpoint(s, "SELECT size, root, note FROM history "
	    "WHERE origin = ? AND size = ?", c->origin, 1, c->size,
	    &h.have_at_size, NULL, h.root_at_size, &at_size, e)) != 0)
		goto out;
	*held_size = h.size;
	*v = wit_check(&h, old, proof, n, c);
	switch (*v) {
	case WIT_COSIGN_NEW:
		if ((r = insert_checkpoint(s, "INSERT OR REPLACE INTO logs "
		    "(origin, size, root, note, time) VALUES (?, ?, ?, ?, ?)",
		    c, note, note_len, now, e)) != 0 ||
		    (r = insert_checkpoint(s, "INSERT OR IGNORE INTO history "
		    "(origin, size, root, note, time) VALUES (?, ?, ?, ?, ?)",
		    c, note, note_len, now, e)) != 0)
			goto out;
		break;
	case WIT_FORK:
	case WIT_BAD_PROOF:
		held = *v == WIT_FORK && at_size != NULL ? at_size : latest;
		if (held == NULL)
			break;
		if ((r = insert_evidence(s, now, c->origin,
		    wit_verdict_reason(*v), held, note, note_len, e)) != 0)
			goto out;
		break;
	default:
		break;
	}
	r = 0;
 out:
	free(latest);
	free(at_size);
	return r;
}

int
wit_store_submit(struct wit_store *s, uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const struct tlog_checkpoint *c, const char *note, size_t note_len,
    uint64_t now, enum wit_verdict *v, uint64_t *held_size,
    struct err_ctx *e)
{
	int r;

	return_val_if_fail(s != NULL && c != NULL && note != NULL &&
	    v != NULL && held_size != NULL && (n == 0 || proof != NULL),
	    ERR_INVALID_ARG);
	if (note_len > INT32_MAX || c->size > MERKLE_SIZE_MAX)
		return ERR_INVALID_ARG;
	pthread_mutex_lock(&s->lock);
	/* IMMEDIATE: the write lock from the first read, so that the
	 * check and the update see one state. */
	if ((r = db_exec(s, "BEGIN IMMEDIATE;", "starting a transaction",
	    e)) != 0)
		goto out;
	if ((r = submit_locked(s, old, proof, n, c, note, note_len, now, v,
	    held_size, e)) != 0 ||
	    (r = db_exec(s, "COMMIT;", "committing", e)) != 0) {
		sqlite3_exec(s->db, "ROLLBACK;", NULL, NULL, NULL);
		goto out;
	}
	r = 0;
 out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

int
wit_store_status(struct wit_store *s, wit_status_fn fn, void *arg,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	struct wit_status ws;
	int r, rc;

	return_val_if_fail(s != NULL && fn != NULL, ERR_INVALID_ARG);
	pthread_mutex_lock(&s->lock);
	if ((r = prepare(s, "SELECT origin, size, root, time, note FROM logs "
	    "ORDER BY origin", &st, e)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ws.origin = (const char *)sqlite3_column_text(st, 0);
		ws.size = (uint64_t)sqlite3_column_int64(st, 1);
		ws.root = sqlite3_column_blob(st, 2);
		ws.time = (uint64_t)sqlite3_column_int64(st, 3);
		ws.note = (const char *)sqlite3_column_text(st, 4);
		if (ws.origin == NULL || ws.root == NULL || ws.note == NULL ||
		    sqlite3_column_bytes(st, 2) != MERKLE_HASH_LEN) {
			r = err_set(e, ERR_FORMAT, "witness state %s: a log's "
			    "row is damaged", s->path);
			goto out;
		}
		if ((r = fn(arg, &ws)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(s, e, "listing the logs");
 out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int
wit_store_evidence(struct wit_store *s, wit_evidence_fn fn, void *arg,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	struct wit_evidence ev;
	int r, rc;

	return_val_if_fail(s != NULL && fn != NULL, ERR_INVALID_ARG);
	pthread_mutex_lock(&s->lock);
	if ((r = prepare(s, "SELECT time, origin, reason, held, offered "
	    "FROM evidence ORDER BY id", &st, e)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ev.time = (uint64_t)sqlite3_column_int64(st, 0);
		ev.origin = (const char *)sqlite3_column_text(st, 1);
		ev.reason = (const char *)sqlite3_column_text(st, 2);
		ev.held = (const char *)sqlite3_column_text(st, 3);
		ev.offered = (const char *)sqlite3_column_text(st, 4);
		if (ev.origin == NULL || ev.reason == NULL ||
		    ev.held == NULL || ev.offered == NULL) {
			r = err_set(e, ERR_FORMAT, "witness state %s: an "
			    "evidence record is damaged", s->path);
			goto out;
		}
		if ((r = fn(arg, &ev)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(s, e, "listing the evidence");
 out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}
