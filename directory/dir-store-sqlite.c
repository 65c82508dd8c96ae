/*
 * dir-store-sqlite.c - the SQLite implementation of dir-store.h.
 *
 * One database file in WAL mode with synchronous=FULL, so a change that
 * was answered with success survives a power cut.  Every thread gets its
 * own connection (SQLite connections must not be shared between threads
 * that use them at once); the store remembers every connection it opened
 * so that dir_store_close() can close them all after the server threads
 * have stopped.  Writes run in BEGIN IMMEDIATE transactions, which take the
 * write lock up front: the checks inside a transaction (log tail, device
 * state, limits) then see no concurrent change.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dir-store.h"
#include "errors.h"

/* How long a connection waits for another one's write lock. */
#define SQLITE_BUSY_MS 10000

struct sqlite_conn {
	sqlite3 *db;
	struct sqlite_conn *next;
};

struct sqlite_store {
	struct dir_store head;          /* first: cast target */
	char *path;
	pthread_key_t key;              /* this thread's struct sqlite_conn */
	pthread_mutex_t lock;           /* guards conns */
	struct sqlite_conn *conns;
};

static const char *const schema_sql =
	"CREATE TABLE IF NOT EXISTS meta ("
	"  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', '1');"
	"CREATE TABLE IF NOT EXISTS accounts ("
	"  name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS events ("
	"  account TEXT NOT NULL REFERENCES accounts(name),"
	"  seq INTEGER NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,"
	"  prev BLOB NOT NULL, hash BLOB NOT NULL, json TEXT NOT NULL,"
	"  PRIMARY KEY (account, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS devices ("
	"  device TEXT PRIMARY KEY,"
	"  account TEXT NOT NULL REFERENCES accounts(name),"
	"  active INTEGER NOT NULL, record TEXT NOT NULL,"
	"  sig_pub BLOB NOT NULL, added_time INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS devices_by_account"
	"  ON devices(account, active, device);"
	"CREATE TABLE IF NOT EXISTS sessions ("
	"  token_hash BLOB PRIMARY KEY, device TEXT NOT NULL,"
	"  account TEXT NOT NULL, expires INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS sessions_by_device"
	"  ON sessions(device, expires);"
	"CREATE TABLE IF NOT EXISTS nonces ("
	"  device TEXT NOT NULL, nonce BLOB NOT NULL,"
	"  expires INTEGER NOT NULL, PRIMARY KEY (device, nonce))"
	"  WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS messages ("
	"  id INTEGER PRIMARY KEY, sender TEXT NOT NULL,"
	"  msg_id BLOB NOT NULL, envelope TEXT NOT NULL,"
	"  refs INTEGER NOT NULL, UNIQUE (sender, msg_id));"
	"CREATE TABLE IF NOT EXISTS queue ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL,"
	"  message INTEGER NOT NULL REFERENCES messages(id));"
	"CREATE INDEX IF NOT EXISTS queue_by_device ON queue(device, seq);";

static struct sqlite_store *
to_sqlite(struct dir_store *s)
{
	return (struct sqlite_store *)s;
}

static int
db_fail(sqlite3 *db, struct err_ctx *e, const char *what)
{
	return err_set(e, ERR_IO, "database error while %s: %s", what,
	    db != NULL ? sqlite3_errmsg(db) : "no connection");
}

/* Runs SQL without results. */
static int
db_exec(sqlite3 *db, const char *sql, struct err_ctx *e, const char *what)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, e, what);
	return 0;
}

static int
conn_open(const char *path, sqlite3 **out, struct err_ctx *e)
{
	sqlite3 *db = NULL;
	int r = ERR_IO;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = err_set(e, ERR_IO, "cannot open database %s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
	if ((r = db_exec(db, "PRAGMA journal_mode=WAL;", e,
	    "enabling WAL")) != 0 ||
	    (r = db_exec(db, "PRAGMA synchronous=FULL;", e,
	    "setting synchronous=FULL")) != 0 ||
	    (r = db_exec(db, "PRAGMA foreign_keys=ON;", e,
	    "enabling foreign keys")) != 0)
		goto out;
	*out = db;
	db = NULL; /* transferred */
	r = 0;
 out:
	sqlite3_close(db);
	return r;
}

/* This thread's connection, opened on first use. */
static int
conn_get(struct sqlite_store *st, sqlite3 **out, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((c = pthread_getspecific(st->key)) != NULL) {
		*out = c->db;
		return 0;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	if ((r = conn_open(st->path, &c->db, e)) != 0) {
		free(c);
		return r;
	}
	if (pthread_setspecific(st->key, c) != 0) {
		sqlite3_close(c->db);
		free(c);
		return err_set(e, ERR_INTERNAL, "cannot keep a database "
		    "connection for this thread");
	}
	pthread_mutex_lock(&st->lock);
	c->next = st->conns;
	st->conns = c;
	pthread_mutex_unlock(&st->lock);
	*out = c->db;
	return 0;
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct err_ctx *e)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(db, e, "preparing a statement");
	return 0;
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) == SQLITE_OK ?
	    0 : ERR_INTERNAL;
}

static int
bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
	if (len > INT32_MAX)
		return ERR_TOO_LARGE;
	return sqlite3_bind_blob(st, i, p, (int)len, SQLITE_TRANSIENT) ==
	    SQLITE_OK ? 0 : ERR_INTERNAL;
}

static int
bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	if (v > INT64_MAX)
		return ERR_INVALID_ARG;
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v) == SQLITE_OK ?
	    0 : ERR_INTERNAL;
}

static uint64_t
col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : (uint64_t)v;
}

/* Runs a statement that returns no rows. */
static int
step_done(sqlite3 *db, sqlite3_stmt *st, struct err_ctx *e, const char *what)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, e, what);
	return 0;
}

static int
tx_begin(sqlite3 *db, struct err_ctx *e)
{
	return db_exec(db, "BEGIN IMMEDIATE;", e, "starting a transaction");
}

static int
tx_commit(sqlite3 *db, struct err_ctx *e)
{
	return db_exec(db, "COMMIT;", e, "committing a transaction");
}

static void
tx_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		(void)sqlite3_exec(db, "ROLLBACK;", NULL, NULL, NULL);
}

/* --- operations --- */

static void
sqlite_close(struct dir_store *s)
{
	struct sqlite_store *st = to_sqlite(s);
	struct sqlite_conn *c, *next;

	if (st == NULL)
		return;
	for (c = st->conns; c != NULL; c = next) {
		next = c->next;
		sqlite3_close(c->db);
		free(c);
	}
	pthread_key_delete(st->key);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

static int
sqlite_health(struct dir_store *s, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT value FROM meta WHERE key = 'schema'",
	    &st, e)) != 0)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = db_fail(db, e, "reading the schema version");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_account_create(struct dir_store *s, const char *name,
    const char *pw_hash, uint64_t now, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "INSERT INTO accounts(name, pw_hash, created) "
	    "VALUES (?, ?, ?)", &st, e)) != 0)
		goto out;
	if ((r = bind_text(st, 1, name)) != 0 ||
	    (r = bind_text(st, 2, pw_hash)) != 0 ||
	    (r = bind_u64(st, 3, now)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT) {
		r = err_set(e, ERR_EXISTS, "account '%s' already exists",
		    name);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(db, e, "creating an account");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_account_get(struct dir_store *s, const char *name, char **pw_hash,
    uint64_t *created, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	char *h = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT pw_hash, created FROM accounts "
	    "WHERE name = ?", &st, e)) != 0 ||
	    (r = bind_text(st, 1, name)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = err_set(e, ERR_NOT_FOUND, "account '%s' does not exist",
		    name);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_fail(db, e, "reading an account");
		goto out;
	}
	if (pw_hash != NULL) {
		if ((h = strdup((const char *)sqlite3_column_text(st, 0))) ==
		    NULL) {
			r = err_set(e, ERR_ALLOC, "out of memory");
			goto out;
		}
		*pw_hash = h;
		h = NULL; /* transferred */
	}
	if (created != NULL)
		*created = col_u64(st, 1);
	r = 0;
 out:
	free(h);
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_account_list(struct dir_store *s, dir_account_cb cb, void *arg,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT name, created FROM accounts "
	    "ORDER BY name", &st, e)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = cb(arg, (const char *)sqlite3_column_text(st, 0),
		    col_u64(st, 1))) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(db, e, "listing accounts");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

/* The tail of account's log on an open connection. */
static int
tail_read(sqlite3 *db, const char *account, uint64_t *seq, uint8_t hash[32],
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(db, "SELECT 1 FROM accounts WHERE name = ?", &st,
	    e)) != 0 || (r = bind_text(st, 1, account)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = err_set(e, ERR_NOT_FOUND, "account '%s' does not exist",
		    account);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_fail(db, e, "reading an account");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prepare(db, "SELECT seq, hash FROM events WHERE account = ? "
	    "ORDER BY seq DESC LIMIT 1", &st, e)) != 0 ||
	    (r = bind_text(st, 1, account)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*seq = 0;
		memset(hash, 0, 32);
	} else if (rc == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 1) == 32) {
		*seq = col_u64(st, 0);
		memcpy(hash, sqlite3_column_blob(st, 1), 32);
	} else {
		r = db_fail(db, e, "reading the log tail");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_log_tail(struct dir_store *s, const char *account, uint64_t *seq,
    uint8_t hash[32], struct err_ctx *e)
{
	sqlite3 *db;
	int r;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0)
		return r;
	return tail_read(db, account, seq, hash, e);
}

static int
sqlite_log_events(struct dir_store *s, const char *account, uint64_t since,
    uint64_t upto, unsigned int limit, dir_event_cb cb, void *arg,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT seq, type, json FROM events "
	    "WHERE account = ? AND seq > ? AND seq <= ? ORDER BY seq "
	    "LIMIT ?", &st, e)) != 0 ||
	    (r = bind_text(st, 1, account)) != 0 ||
	    (r = bind_u64(st, 2, since)) != 0 ||
	    (r = bind_u64(st, 3, upto > INT64_MAX ? INT64_MAX : upto)) != 0 ||
	    (r = bind_u64(st, 4, limit)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = cb(arg, col_u64(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2))) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(db, e, "reading the log");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

/* Inside a transaction: the tail must still be (ev->seq - 1, ev->prev). */
static int
tail_check(sqlite3 *db, const struct dir_event_row *ev, struct err_ctx *e)
{
	uint64_t seq;
	uint8_t hash[32];
	int r;

	if ((r = tail_read(db, ev->account, &seq, hash, e)) != 0)
		return r;
	if (seq + 1 != ev->seq || memcmp(hash, ev->prev, 32) != 0)
		return err_set(e, ERR_CHAIN, "the log of '%s' changed "
		    "meanwhile", ev->account);
	return 0;
}

static int
event_insert(sqlite3 *db, const struct dir_event_row *ev, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(db, "INSERT INTO events(account, seq, time, type, "
	    "prev, hash, json) VALUES (?, ?, ?, ?, ?, ?, ?)", &st, e)) != 0)
		goto out;
	if ((r = bind_text(st, 1, ev->account)) != 0 ||
	    (r = bind_u64(st, 2, ev->seq)) != 0 ||
	    (r = bind_u64(st, 3, ev->time)) != 0 ||
	    (r = bind_text(st, 4, ev->type)) != 0 ||
	    (r = bind_blob(st, 5, ev->prev, 32)) != 0 ||
	    (r = bind_blob(st, 6, ev->hash, 32)) != 0 ||
	    (r = bind_text(st, 7, ev->json)) != 0)
		goto out;
	r = step_done(db, st, e, "appending an event");
 out:
	sqlite3_finalize(st);
	return r;
}

/* Runs a one-row, one-integer query with one text parameter. */
static int
query_u64(sqlite3 *db, const char *sql, const char *param, uint64_t *out,
    int *found, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(db, sql, &st, e)) != 0 ||
	    (r = bind_text(st, 1, param)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = col_u64(st, 0);
		*found = 1;
	} else if (rc == SQLITE_DONE) {
		*out = 0;
		*found = 0;
	} else {
		r = db_fail(db, e, "reading");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_log_append_add(struct dir_store *s, const struct dir_event_row *ev,
    const struct dir_device_row *dev, unsigned int max_devices,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	uint64_t n;
	int r, found;
	char owner[DIR_ACCOUNT_MAX + 1];

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		return r;
	if ((r = tail_check(db, ev, e)) != 0)
		goto out;
	/* The device: unknown, or a revoked device of this account. */
	if ((r = prepare(db, "SELECT account, active FROM devices "
	    "WHERE device = ?", &st, e)) != 0 ||
	    (r = bind_text(st, 1, dev->device)) != 0)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(owner, sizeof(owner), "%s",
		    (const char *)sqlite3_column_text(st, 0));
		if (strcmp(owner, ev->account) != 0) {
			r = err_set(e, ERR_EXISTS, "device %.16s is registered "
			    "to another account", dev->device);
			goto out;
		}
		if (sqlite3_column_int(st, 1) != 0) {
			r = err_set(e, ERR_EXISTS, "device %.16s is already an "
			    "active device of '%s'", dev->device, ev->account);
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = query_u64(db, "SELECT COUNT(*) FROM devices WHERE "
	    "account = ? AND active = 1", ev->account, &n, &found, e)) != 0)
		goto out;
	if (n >= max_devices) {
		r = err_set(e, ERR_TOO_LARGE, "account '%s' already has %u "
		    "active devices, the most this directory allows: revoke "
		    "one first", ev->account, max_devices);
		goto out;
	}
	if ((r = event_insert(db, ev, e)) != 0)
		goto out;
	if ((r = prepare(db, "INSERT INTO devices(device, account, active, "
	    "record, sig_pub, added_time) VALUES (?, ?, 1, ?, ?, ?) "
	    "ON CONFLICT(device) DO UPDATE SET active = 1, "
	    "record = excluded.record, sig_pub = excluded.sig_pub, "
	    "added_time = excluded.added_time", &st, e)) != 0)
		goto out;
	if ((r = bind_text(st, 1, dev->device)) != 0 ||
	    (r = bind_text(st, 2, ev->account)) != 0 ||
	    (r = bind_text(st, 3, dev->record_json)) != 0 ||
	    (r = bind_blob(st, 4, dev->sig_pub, dev->sig_pub_len)) != 0 ||
	    (r = bind_u64(st, 5, ev->time)) != 0)
		goto out;
	if ((r = step_done(db, st, e, "storing a device")) != 0 ||
	    (r = tx_commit(db, e)) != 0)
		goto out;
	r = 0;
 out:
	sqlite3_finalize(st);
	if (r != 0)
		tx_rollback(db);
	return r;
}

static int
exec_text(sqlite3 *db, const char *sql, const char *param, struct err_ctx *e,
    const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(db, sql, &st, e)) != 0 ||
	    (r = bind_text(st, 1, param)) != 0)
		goto out;
	r = step_done(db, st, e, what);
 out:
	sqlite3_finalize(st);
	return r;
}

static int queue_drop(sqlite3 *db, const char *device, uint64_t upto,
    uint64_t *removed, struct err_ctx *e);

static int
sqlite_log_append_revoke(struct dir_store *s, const struct dir_event_row *ev,
    const char *device, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		return r;
	if ((r = tail_check(db, ev, e)) != 0)
		goto out;
	if ((r = prepare(db, "SELECT 1 FROM devices WHERE device = ? AND "
	    "account = ? AND active = 1", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_text(st, 2, ev->account)) != 0)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? err_set(e, ERR_NOT_FOUND, "device "
		    "%.16s is not an active device of '%s'", device,
		    ev->account) : db_fail(db, e, "reading a device");
		goto out;
	}
	if ((r = event_insert(db, ev, e)) != 0 ||
	    (r = exec_text(db, "UPDATE devices SET active = 0 WHERE "
	    "device = ?", device, e, "revoking a device")) != 0 ||
	    (r = exec_text(db, "DELETE FROM sessions WHERE device = ?",
	    device, e, "ending sessions")) != 0 ||
	    (r = queue_drop(db, device, INT64_MAX, NULL, e)) != 0 ||
	    (r = tx_commit(db, e)) != 0)
		goto out;
	r = 0;
 out:
	sqlite3_finalize(st);
	if (r != 0)
		tx_rollback(db);
	return r;
}

static int
sqlite_device_get(struct dir_store *s, const char *device,
    struct dir_device_info *out, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc, n;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT account, active, sig_pub, added_time "
	    "FROM devices WHERE device = ?", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = err_set(e, ERR_NOT_FOUND, "device %.16s is not registered",
		    device);
		goto out;
	}
	n = sqlite3_column_bytes(st, 2);
	if (rc != SQLITE_ROW || n <= 0 || (size_t)n > sizeof(out->sig_pub)) {
		r = db_fail(db, e, "reading a device");
		goto out;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->account, sizeof(out->account), "%s",
	    (const char *)sqlite3_column_text(st, 0));
	out->active = sqlite3_column_int(st, 1) != 0;
	memcpy(out->sig_pub, sqlite3_column_blob(st, 2), (size_t)n);
	out->sig_pub_len = (size_t)n;
	out->added_time = col_u64(st, 3);
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_devices_active(struct dir_store *s, const char *account,
    uint64_t *seq, uint8_t hash[32], dir_device_cb cb, void *arg,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0)
		return r;
	/* A read transaction: the devices and the tail of one snapshot. */
	if ((r = db_exec(db, "BEGIN;", e, "starting a transaction")) != 0)
		return r;
	if ((r = tail_read(db, account, seq, hash, e)) != 0 ||
	    (r = prepare(db, "SELECT device, record FROM devices WHERE "
	    "account = ? AND active = 1 ORDER BY device", &st, e)) != 0 ||
	    (r = bind_text(st, 1, account)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = cb(arg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1))) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(db, e, "listing devices");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	r = tx_commit(db, e);
 out:
	sqlite3_finalize(st);
	if (r != 0)
		tx_rollback(db);
	return r;
}

static int
sqlite_session_put(struct dir_store *s, const uint8_t token_hash[32],
    const char *device, const char *account, uint64_t expires,
    unsigned int max_per_device, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r;

	if (max_per_device == 0)
		return err_set(e, ERR_INVALID_ARG, "no sessions allowed");
	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		return r;
	/* Keep the newest max_per_device - 1, then add this one. */
	if ((r = prepare(db, "DELETE FROM sessions WHERE device = ?1 AND "
	    "token_hash NOT IN (SELECT token_hash FROM sessions WHERE "
	    "device = ?1 ORDER BY expires DESC LIMIT ?2)", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_u64(st, 2, max_per_device - 1)) != 0 ||
	    (r = step_done(db, st, e, "ending old sessions")) != 0)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prepare(db, "INSERT INTO sessions(token_hash, device, "
	    "account, expires) VALUES (?, ?, ?, ?)", &st, e)) != 0 ||
	    (r = bind_blob(st, 1, token_hash, 32)) != 0 ||
	    (r = bind_text(st, 2, device)) != 0 ||
	    (r = bind_text(st, 3, account)) != 0 ||
	    (r = bind_u64(st, 4, expires)) != 0 ||
	    (r = step_done(db, st, e, "storing a session")) != 0 ||
	    (r = tx_commit(db, e)) != 0)
		goto out;
	r = 0;
 out:
	sqlite3_finalize(st);
	if (r != 0)
		tx_rollback(db);
	return r;
}

static int
sqlite_session_get(struct dir_store *s, const uint8_t token_hash[32],
    uint64_t now, struct dir_session_info *out, struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT s.device, s.account, s.expires FROM "
	    "sessions s JOIN devices d ON d.device = s.device WHERE "
	    "s.token_hash = ? AND s.expires > ? AND d.active = 1", &st,
	    e)) != 0 ||
	    (r = bind_blob(st, 1, token_hash, 32)) != 0 ||
	    (r = bind_u64(st, 2, now)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = err_set(e, ERR_NOT_FOUND, "session unknown or expired");
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_fail(db, e, "reading a session");
		goto out;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->device, sizeof(out->device), "%s",
	    (const char *)sqlite3_column_text(st, 0));
	snprintf(out->account, sizeof(out->account), "%s",
	    (const char *)sqlite3_column_text(st, 1));
	out->expires = col_u64(st, 2);
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_nonce_use(struct dir_store *s, const char *device,
    const uint8_t *nonce, size_t nonce_len, uint64_t expires,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "INSERT INTO nonces(device, nonce, expires) "
	    "VALUES (?, ?, ?)", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_blob(st, 2, nonce, nonce_len)) != 0 ||
	    (r = bind_u64(st, 3, expires)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT) {
		r = err_set(e, ERR_REPLAY, "this login nonce was used before: "
		    "make a new random nonce for every login");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(db, e, "storing a nonce");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
exec_u64(sqlite3 *db, const char *sql, uint64_t v, struct err_ctx *e,
    const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(db, sql, &st, e)) != 0 ||
	    (r = bind_u64(st, 1, v)) != 0)
		goto out;
	r = step_done(db, st, e, what);
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_purge(struct dir_store *s, uint64_t now, struct err_ctx *e)
{
	sqlite3 *db;
	int r;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		return r;
	if ((r = exec_u64(db, "DELETE FROM sessions WHERE expires <= ?", now,
	    e, "purging sessions")) != 0 ||
	    (r = exec_u64(db, "DELETE FROM nonces WHERE expires <= ?", now,
	    e, "purging nonces")) != 0 ||
	    (r = tx_commit(db, e)) != 0)
		tx_rollback(db);
	return r;
}

static int
sqlite_message_put(struct dir_store *s, const char *sender_device,
    const uint8_t *msg_id, size_t msg_id_len, const char *envelope,
    const char *const *devices, size_t n, unsigned int max_queue,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id;
	uint64_t queued;
	size_t i;
	int r, rc, found;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		return r;
	if ((r = prepare(db, "INSERT INTO messages(sender, msg_id, envelope, "
	    "refs) VALUES (?, ?, ?, ?)", &st, e)) != 0 ||
	    (r = bind_text(st, 1, sender_device)) != 0 ||
	    (r = bind_blob(st, 2, msg_id, msg_id_len)) != 0 ||
	    (r = bind_text(st, 3, envelope)) != 0 ||
	    (r = bind_u64(st, 4, n)) != 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT) {
		r = err_set(e, ERR_EXISTS, "this device already posted a "
		    "message with this id");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(db, e, "storing a message");
		goto out;
	}
	id = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prepare(db, "INSERT INTO queue(device, message) "
	    "VALUES (?, ?)", &st, e)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = query_u64(db, "SELECT COUNT(*) FROM queue WHERE "
		    "device = ?", devices[i], &queued, &found, e)) != 0)
			goto out;
		if (queued >= max_queue) {
			r = err_set(e, ERR_TOO_LARGE, "the queue of device "
			    "%.16s is full (%u messages): it must fetch and "
			    "acknowledge first", devices[i], max_queue);
			goto out;
		}
		sqlite3_reset(st);
		if ((r = bind_text(st, 1, devices[i])) != 0 ||
		    (r = bind_u64(st, 2, (uint64_t)id)) != 0 ||
		    (r = step_done(db, st, e, "queueing a message")) != 0)
			goto out;
	}
	if ((r = tx_commit(db, e)) != 0)
		goto out;
	r = 0;
 out:
	sqlite3_finalize(st);
	if (r != 0)
		tx_rollback(db);
	return r;
}

static int
sqlite_inbox_get(struct dir_store *s, const char *device, uint64_t after,
    unsigned int limit, size_t max_bytes, dir_queue_cb cb, void *arg,
    struct err_ctx *e)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	size_t total = 0, len;
	unsigned int n = 0;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = prepare(db, "SELECT q.seq, m.envelope FROM queue q JOIN "
	    "messages m ON m.id = q.message WHERE q.device = ? AND "
	    "q.seq > ? ORDER BY q.seq LIMIT ?", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_u64(st, 2, after)) != 0 ||
	    (r = bind_u64(st, 3, limit)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		len = (size_t)sqlite3_column_bytes(st, 1);
		if (n > 0 && (total + len < total || total + len > max_bytes))
			break;
		total += len;
		n++;
		if ((r = cb(arg, col_u64(st, 0),
		    (const char *)sqlite3_column_text(st, 1))) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		r = db_fail(db, e, "reading the inbox");
		goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

/*
 * Inside a transaction: removes device's queue entries with seq <= upto
 * and the envelopes no queue refers to any more; *removed (may be NULL)
 * gets the number of entries.
 */
static int
queue_drop(sqlite3 *db, const char *device, uint64_t upto, uint64_t *removed,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	/* Drop the references first, then the queue entries, then the
	 * envelopes nobody waits for any more. */
	if ((r = prepare(db, "UPDATE messages SET refs = refs - (SELECT "
	    "COUNT(*) FROM queue q WHERE q.message = messages.id AND "
	    "q.device = ?1 AND q.seq <= ?2) WHERE id IN (SELECT message "
	    "FROM queue WHERE device = ?1 AND seq <= ?2)", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_u64(st, 2, upto)) != 0 ||
	    (r = step_done(db, st, e, "acknowledging")) != 0)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prepare(db, "DELETE FROM queue WHERE device = ?1 AND "
	    "seq <= ?2", &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_u64(st, 2, upto)) != 0 ||
	    (r = step_done(db, st, e, "acknowledging")) != 0)
		goto out;
	if (removed != NULL)
		*removed = (uint64_t)sqlite3_changes(db);
	r = db_exec(db, "DELETE FROM messages WHERE refs <= 0;", e,
	    "deleting delivered messages");
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_inbox_ack(struct dir_store *s, const char *device, uint64_t upto,
    uint64_t *removed, struct err_ctx *e)
{
	sqlite3 *db;
	int r;

	if ((r = conn_get(to_sqlite(s), &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		return r;
	if ((r = queue_drop(db, device, upto, removed, e)) != 0 ||
	    (r = tx_commit(db, e)) != 0)
		tx_rollback(db);
	return r;
}

static const struct dir_store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.health = sqlite_health,
	.account_create = sqlite_account_create,
	.account_get = sqlite_account_get,
	.account_list = sqlite_account_list,
	.log_tail = sqlite_log_tail,
	.log_events = sqlite_log_events,
	.log_append_add = sqlite_log_append_add,
	.log_append_revoke = sqlite_log_append_revoke,
	.device_get = sqlite_device_get,
	.devices_active = sqlite_devices_active,
	.session_put = sqlite_session_put,
	.session_get = sqlite_session_get,
	.nonce_use = sqlite_nonce_use,
	.purge = sqlite_purge,
	.message_put = sqlite_message_put,
	.inbox_get = sqlite_inbox_get,
	.inbox_ack = sqlite_inbox_ack,
};

int
dir_store_sqlite_open(const char *path, struct dir_store **out,
    struct err_ctx *e)
{
	struct sqlite_store *st = NULL;
	sqlite3 *db;
	int r = ERR_INTERNAL, key_ok = 0, lock_ok = 0;

	return_val_if_fail(path != NULL && out != NULL, ERR_INVALID_ARG);
	if (sqlite3_threadsafe() == 0)
		return err_set(e, ERR_CONFIG, "this SQLite library was built "
		    "without thread support");
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	st->head.ops = &sqlite_ops;
	if (pthread_key_create(&st->key, NULL) != 0) {
		r = err_set(e, ERR_INTERNAL, "cannot create a thread key");
		goto out;
	}
	key_ok = 1;
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		r = err_set(e, ERR_INTERNAL, "cannot create a mutex");
		goto out;
	}
	lock_ok = 1;
	if ((r = conn_get(st, &db, e)) != 0 ||
	    (r = tx_begin(db, e)) != 0)
		goto out;
	if ((r = db_exec(db, schema_sql, e, "creating the schema")) != 0 ||
	    (r = tx_commit(db, e)) != 0) {
		tx_rollback(db);
		goto out;
	}
	*out = &st->head;
	st = NULL; /* transferred */
	r = 0;
 out:
	if (st != NULL) {
		if (lock_ok && key_ok) {
			sqlite_close(&st->head);
		} else {
			if (key_ok)
				pthread_key_delete(st->key);
			free(st->path);
			free(st);
		}
	}
	return r;
}

void
dir_store_close(struct dir_store *s)
{
	if (s != NULL)
		s->ops->close(s);
}
