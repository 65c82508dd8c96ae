/*
 * dir-store-sqlite.c - the SQLite implementation of dir-store.h.
 *
 * One database file in WAL mode with synchronous=FULL, so a change that
 * was answered with success survives a power cut.  Every thread gets its
 * own connection (SQLite connections must not be shared between threads
 * that use them at once); the store remembers every connection it opened
 * so that dir_store_close() can close them all after the server threads
 * have stopped.
 *
 * Each connection keeps the statements it ran, compiled once: compiling
 * SQL costs more than running these short queries.  Writes run in BEGIN
 * IMMEDIATE transactions, which take the write lock up front: the checks
 * inside a transaction (log tail, device state, limits) then see no
 * concurrent change.  The threads of one process queue for that lock on
 * a mutex, which wakes the next writer as soon as the last one is done;
 * SQLite's busy handler, which polls with sleeps of up to 100 ms, is left
 * to wait for other processes (the account tools).
 *
 * An append to an account log also appends the event's leaf to the
 * global transparency log and stores the tree nodes it completes, in the
 * same transaction.  The write lock orders the leaves; the frontier a
 * new leaf needs is kept from the last append of this process and used
 * while the tree still ends with the leaf it ended with then (another
 * process may have appended), else loaded from the stored nodes.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dir-store.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

/* How long a connection waits for another process's write lock. */
#define SQLITE_BUSY_MS 10000
/* A blob's hash: 64 hex digits. */
#define BLOB_HASH_HEX 64

/*
 * The statements the operations run.  Each connection compiles one on
 * its first use and keeps it until the store closes; stmt_sql[] holds
 * their text.
 */
enum stmt_id {
	STMT_BEGIN_READ,
	STMT_BEGIN_WRITE,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SCHEMA_VERSION,
	STMT_ACCOUNT_INSERT,
	STMT_ACCOUNT_GET,
	STMT_ACCOUNT_LIST,
	STMT_LOG_TAIL,
	STMT_LOG_EVENTS,
	STMT_EVENT_INSERT,
	STMT_DEVICE_OWNER,
	STMT_DEVICES_COUNT,
	STMT_DEVICE_UPSERT,
	STMT_DEVICE_IS_ACTIVE,
	STMT_DEVICE_DEACTIVATE,
	STMT_DEVICE_SESSIONS_END,
	STMT_DEVICE_GET,
	STMT_DEVICES_ACTIVE,
	STMT_SESSIONS_TRIM,
	STMT_SESSION_INSERT,
	STMT_SESSION_GET,
	STMT_NONCE_INSERT,
	STMT_SESSIONS_PURGE,
	STMT_NONCES_PURGE,
	STMT_MESSAGE_INSERT,
	STMT_DEVICE_ACCOUNT,
	STMT_QUEUE_FROM_SENDER,
	STMT_QUEUE_COUNT,
	STMT_QUEUE_INSERT,
	STMT_USAGE_ADD,
	STMT_USAGE_GET,
	STMT_INBOX_GET,
	STMT_DROP_USAGE,
	STMT_DROP_REFS,
	STMT_DROP_QUEUE,
	STMT_MESSAGES_GC,
	STMT_TLOG_SIZE,
	STMT_TLOG_NODE,
	STMT_TLOG_LEAF_INSERT,
	STMT_TLOG_NODE_INSERT,
	STMT_TLOG_LEAVES,
	STMT_TLOG_LATEST,
	STMT_CHECKPOINT_PUT,
	STMT_CHECKPOINT_GET,
	STMT_BLOB_OWNER,
	STMT_BLOB_USAGE,
	STMT_BLOB_INSERT,
	STMT_BLOB_GET,
	STMT_BLOB_MARK_LINKED,
	STMT_BLOB_LINK_INSERT,
	STMT_BLOB_EXPIRE,
	STMT_BLOB_EXISTS,
	STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_BEGIN_READ] = "BEGIN",
	[STMT_BEGIN_WRITE] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_SCHEMA_VERSION] = "SELECT value FROM meta WHERE key = 'schema'",
	[STMT_ACCOUNT_INSERT] = "INSERT INTO accounts(name, pw_hash, created) "
	    "VALUES (?, ?, ?)",
	[STMT_ACCOUNT_GET] = "SELECT pw_hash, created FROM accounts "
	    "WHERE name = ?",
	[STMT_ACCOUNT_LIST] = "SELECT name, created FROM accounts "
	    "ORDER BY name",
	/* One row when the account exists, with NULLs for an empty log;
	 * the events are read backwards along their primary key. */
	[STMT_LOG_TAIL] = "SELECT e.seq, e.hash FROM accounts a LEFT JOIN "
	    "events e ON e.account = a.name WHERE a.name = ? "
	    "ORDER BY e.seq DESC LIMIT 1",
	[STMT_LOG_EVENTS] = "SELECT seq, type, json FROM events "
	    "WHERE account = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
	[STMT_EVENT_INSERT] = "INSERT INTO events(account, seq, time, type, "
	    "prev, hash, json) VALUES (?, ?, ?, ?, ?, ?, ?)",
	[STMT_DEVICE_OWNER] = "SELECT account, active FROM devices "
	    "WHERE device = ?",
	[STMT_DEVICES_COUNT] = "SELECT COUNT(*) FROM devices WHERE "
	    "account = ? AND active = 1",
	[STMT_DEVICE_UPSERT] = "INSERT INTO devices(device, account, active, "
	    "record, sig_pub, added_time) VALUES (?, ?, 1, ?, ?, ?) "
	    "ON CONFLICT(device) DO UPDATE SET active = 1, "
	    "record = excluded.record, sig_pub = excluded.sig_pub, "
	    "added_time = excluded.added_time",
	[STMT_DEVICE_IS_ACTIVE] = "SELECT 1 FROM devices WHERE device = ? AND "
	    "account = ? AND active = 1",
	[STMT_DEVICE_DEACTIVATE] = "UPDATE devices SET active = 0 WHERE "
	    "device = ?",
	[STMT_DEVICE_SESSIONS_END] = "DELETE FROM sessions WHERE device = ?",
	[STMT_DEVICE_GET] = "SELECT account, active, sig_pub, added_time "
	    "FROM devices WHERE device = ?",
	[STMT_DEVICES_ACTIVE] = "SELECT device, record FROM devices WHERE "
	    "account = ? AND active = 1 ORDER BY device",
	/* Keeps the newest ?2 sessions of device ?1. */
	[STMT_SESSIONS_TRIM] = "DELETE FROM sessions WHERE device = ?1 AND "
	    "token_hash NOT IN (SELECT token_hash FROM sessions WHERE "
	    "device = ?1 ORDER BY expires DESC LIMIT ?2)",
	[STMT_SESSION_INSERT] = "INSERT INTO sessions(token_hash, device, "
	    "account, expires) VALUES (?, ?, ?, ?)",
	[STMT_SESSION_GET] = "SELECT s.device, s.account, s.expires FROM "
	    "sessions s JOIN devices d ON d.device = s.device WHERE "
	    "s.token_hash = ? AND s.expires > ? AND d.active = 1",
	[STMT_NONCE_INSERT] = "INSERT INTO nonces(device, nonce, expires) "
	    "VALUES (?, ?, ?)",
	[STMT_SESSIONS_PURGE] = "DELETE FROM sessions WHERE expires <= ?",
	[STMT_NONCES_PURGE] = "DELETE FROM nonces WHERE expires <= ?",
	[STMT_MESSAGE_INSERT] = "INSERT INTO messages(sender, msg_id, "
	    "envelope, refs) VALUES (?, ?, ?, ?)",
	[STMT_DEVICE_ACCOUNT] = "SELECT account FROM devices WHERE device = ?",
	[STMT_QUEUE_FROM_SENDER] = "SELECT COUNT(*) FROM queue WHERE "
	    "device = ? AND sender = ?",
	[STMT_QUEUE_COUNT] = "SELECT COUNT(*) FROM queue WHERE device = ?",
	[STMT_QUEUE_INSERT] = "INSERT INTO queue(device, message, sender, "
	    "account, size) VALUES (?, ?, ?, ?, ?)",
	[STMT_USAGE_ADD] = "INSERT INTO account_usage(account, bytes) "
	    "VALUES (?1, ?2) ON CONFLICT(account) DO UPDATE SET "
	    "bytes = bytes + excluded.bytes",
	[STMT_USAGE_GET] = "SELECT bytes FROM account_usage WHERE "
	    "account = ?",
	[STMT_INBOX_GET] = "SELECT q.seq, m.envelope FROM queue q JOIN "
	    "messages m ON m.id = q.message WHERE q.device = ? AND "
	    "q.seq > ? ORDER BY q.seq LIMIT ?",
	/* queue_drop: the usage and the references first, then the queue
	 * entries, then the envelopes nobody waits for any more. */
	[STMT_DROP_USAGE] = "UPDATE account_usage SET bytes = bytes - "
	    "(SELECT COALESCE(SUM(q.size), 0) FROM queue q WHERE "
	    "q.device = ?1 AND q.seq <= ?2 AND "
	    "q.account = account_usage.account) WHERE account IN (SELECT "
	    "account FROM queue WHERE device = ?1 AND seq <= ?2)",
	[STMT_DROP_REFS] = "UPDATE messages SET refs = refs - (SELECT "
	    "COUNT(*) FROM queue q WHERE q.message = messages.id AND "
	    "q.device = ?1 AND q.seq <= ?2) WHERE id IN (SELECT message "
	    "FROM queue WHERE device = ?1 AND seq <= ?2)",
	[STMT_DROP_QUEUE] = "DELETE FROM queue WHERE device = ?1 AND "
	    "seq <= ?2",
	[STMT_MESSAGES_GC] = "DELETE FROM messages WHERE refs <= 0",
	[STMT_TLOG_SIZE] = "SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_leaves",
	[STMT_TLOG_NODE] = "SELECT hash FROM tlog_nodes WHERE level = ? AND "
	    "idx = ?",
	[STMT_TLOG_LEAF_INSERT] = "INSERT INTO tlog_leaves(idx, account, seq, "
	    "hash) VALUES (?, ?, ?, ?)",
	[STMT_TLOG_NODE_INSERT] = "INSERT INTO tlog_nodes(level, idx, hash) "
	    "VALUES (?, ?, ?)",
	[STMT_TLOG_LEAVES] = "SELECT idx, account, seq, hash FROM tlog_leaves "
	    "WHERE idx >= ? AND idx < ? ORDER BY idx",
	/* An account's leaves follow its seqs: the last one below the size
	 * has the largest seq. */
	[STMT_TLOG_LATEST] = "SELECT seq, idx FROM tlog_leaves WHERE "
	    "account = ? AND idx < ? ORDER BY idx DESC LIMIT 1",
	/* Changes nothing for a smaller size: the caller says ERR_ROLLBACK. */
	[STMT_CHECKPOINT_PUT] = "INSERT INTO tlog_checkpoint(id, size, note) "
	    "VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET "
	    "size = excluded.size, note = excluded.note "
	    "WHERE excluded.size >= tlog_checkpoint.size",
	[STMT_CHECKPOINT_GET] = "SELECT size, note FROM tlog_checkpoint "
	    "WHERE id = 1",
	[STMT_BLOB_OWNER] = "SELECT device, expires FROM blobs WHERE hash = ?",
	[STMT_BLOB_USAGE] = "SELECT COALESCE(SUM(size), 0) FROM blobs "
	    "WHERE account = ?",
	[STMT_BLOB_INSERT] = "INSERT INTO blobs(hash, device, account, size, "
	    "created, expires, linked) VALUES (?, ?, ?, ?, ?, ?, 0)",
	/* The links of hash that a queue entry of device refers to, with
	 * the blob's row when it is still kept (the same for every row). */
	[STMT_BLOB_GET] = "SELECT b.size, b.expires, b.hash IS NOT NULL "
	    "FROM blob_links l JOIN queue q ON q.message = l.message "
	    "LEFT JOIN blobs b ON b.hash = l.hash WHERE l.hash = ?1 AND "
	    "q.device = ?2 LIMIT 1",
	/* Changes no row unless device uploaded hash and it is kept. */
	[STMT_BLOB_MARK_LINKED] = "UPDATE blobs SET linked = 1 WHERE "
	    "hash = ? AND device = ?",
	[STMT_BLOB_LINK_INSERT] = "INSERT OR IGNORE INTO blob_links(message, "
	    "hash) VALUES (?, ?)",
	/* The three rules of blob_expire: expired (?1 = now), never linked
	 * and uploaded before ?2, linked and no link left; at most ?3. */
	[STMT_BLOB_EXPIRE] = "DELETE FROM blobs WHERE hash IN (SELECT hash "
	    "FROM blobs WHERE expires <= ?1 OR (linked = 0 AND created < ?2) "
	    "OR (linked = 1 AND NOT EXISTS (SELECT 1 FROM blob_links l "
	    "WHERE l.hash = blobs.hash)) ORDER BY hash LIMIT ?3) "
	    "RETURNING hash",
	[STMT_BLOB_EXISTS] = "SELECT 1 FROM blobs WHERE hash = ?",
};

struct sqlite_store;

/* One thread's connection and the statements compiled on it. */
struct sqlite_conn {
	sqlite3 *db;
	struct sqlite_store *store;
	sqlite3_stmt *stmt[STMT_COUNT];   /* NULL until first used */
	unsigned char in_use[STMT_COUNT]; /* handed out by stmt_get() */
	int writing;                      /* holds store->write_lock */
	/* The frontier after this transaction's leaf, kept by the store on
	 * commit (tlog_append()). */
	int tlog_pending;
	struct merkle_frontier tlog_next;
	uint8_t tlog_next_last[MERKLE_HASH_LEN];
	struct sqlite_conn *next;
};

struct sqlite_store {
	struct dir_store head;          /* first: cast target */
	char *path;
	pthread_key_t key;              /* this thread's struct sqlite_conn */
	pthread_mutex_t lock;           /* guards conns */
	struct sqlite_conn *conns;
	/* Held from BEGIN IMMEDIATE to COMMIT or ROLLBACK.  A leaf: nothing
	 * that runs while it is held takes another lock of this file or
	 * calls out of it. */
	pthread_mutex_t write_lock;
	/* Guarded by write_lock: the frontier of the tree as this process
	 * last committed it, and its last leaf hash.  Another process may
	 * have appended since: it is used only while the tree still has
	 * that size and that last leaf. */
	int tlog_cache_ok;
	struct merkle_frontier tlog_cache;
	uint8_t tlog_cache_last[MERKLE_HASH_LEN];
};

/*
 * The schema is versioned in meta('schema').  Version 1 is created as it
 * was first released; each later version is a step that brings the
 * previous one up to date, run once in the transaction that opens the
 * store, so a new database and an old one end up with the same tables.
 */
#define SCHEMA_VERSION 4

static const char *const schema_v1_sql =
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

/*
 * Version 2, inbox fairness: each queue entry records its sender device,
 * the account of its device (NULL for a device never registered) and its
 * envelope's size in bytes; account_usage keeps the sum of those sizes
 * per account so that a quota check is one lookup.  Entries queued before
 * take their values from the rows they came from.
 */
static const char *const schema_v2_sql =
	"ALTER TABLE queue ADD COLUMN sender TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE queue ADD COLUMN account TEXT;"
	"ALTER TABLE queue ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"
	"UPDATE queue SET"
	"  sender = COALESCE((SELECT m.sender FROM messages m"
	"    WHERE m.id = queue.message), ''),"
	"  size = COALESCE((SELECT length(CAST(m.envelope AS BLOB))"
	"    FROM messages m WHERE m.id = queue.message), 0),"
	"  account = (SELECT d.account FROM devices d"
	"    WHERE d.device = queue.device);"
	"CREATE INDEX queue_by_sender ON queue(device, sender);"
	"CREATE TABLE account_usage ("
	"  account TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO account_usage(account, bytes)"
	"  SELECT account, SUM(size) FROM queue WHERE account IS NOT NULL"
	"  GROUP BY account;"
	"UPDATE meta SET value = '2' WHERE key = 'schema';";

/*
 * Version 3, the global transparency log (docs/protocol.md section 7):
 * its leaves (one per account log event, in commit order), the stored
 * nodes of its Merkle tree (merkle.h) and the latest checkpoint.  The
 * leaves and nodes of the events stored before are added by
 * tlog_backfill() in the same transaction.
 */
static const char *const schema_v3_sql =
	"CREATE TABLE tlog_leaves ("
	"  idx INTEGER PRIMARY KEY, account TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, hash BLOB NOT NULL,"
	"  UNIQUE (account, seq));"
	"CREATE INDEX tlog_leaves_by_account ON tlog_leaves(account, idx);"
	"CREATE TABLE tlog_nodes ("
	"  level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
	"  PRIMARY KEY (level, idx)) WITHOUT ROWID;"
	"CREATE TABLE tlog_checkpoint ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL,"
	"  note TEXT NOT NULL);"
	"UPDATE meta SET value = '3' WHERE key = 'schema';";

/*
 * Version 4, attachments (docs/protocol.md section 8): the blobs kept
 * (the bytes are files of dir-blob.c) and the links of messages to the
 * blobs they were posted with.  A link goes with its message (the
 * cascade: foreign keys are on for every connection, and messages are
 * removed with DELETE), but does not refer to the blob: a link whose
 * blob expired is what makes blob_get say ERR_GONE.  queue_by_message
 * lets blob_get go from a link to the queue entries of its message.
 */
static const char *const schema_v4_sql =
	"CREATE TABLE blobs ("
	"  hash TEXT PRIMARY KEY, device TEXT NOT NULL,"
	"  account TEXT NOT NULL, size INTEGER NOT NULL,"
	"  created INTEGER NOT NULL, expires INTEGER NOT NULL,"
	"  linked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE INDEX blobs_by_account ON blobs(account, size);"
	"CREATE INDEX blobs_by_expiry ON blobs(expires);"
	"CREATE TABLE blob_links ("
	"  message INTEGER NOT NULL REFERENCES messages(id)"
	"    ON DELETE CASCADE,"
	"  hash TEXT NOT NULL, PRIMARY KEY (message, hash)) WITHOUT ROWID;"
	"CREATE INDEX blob_links_by_hash ON blob_links(hash, message);"
	"CREATE INDEX queue_by_message ON queue(message, device);"
	"UPDATE meta SET value = '4' WHERE key = 'schema';";

/*
 * The events stored before version 3 in the order the tree takes them.
 * The events table keeps no insertion order (it has no rowid), so they
 * go by time, where the time of an event is the latest time of its log
 * up to it: a clock that stepped back never puts an account's events
 * out of seq order.  Ties go by account and seq.  The PostgreSQL store
 * backfills in the same order, so one directory gives the same tree on
 * both.
 */
static const char *const tlog_backfill_sql =
	"SELECT account, seq, hash FROM (SELECT account, seq, hash, "
	"MAX(time) OVER (PARTITION BY account ORDER BY seq ROWS UNBOUNDED "
	"PRECEDING) AS t FROM events) ORDER BY t, account, seq";

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

/* Finalizes c's statements, closes its database and frees c. */
static void
conn_free(struct sqlite_conn *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close(c->db);
	free(c);
}

/* This thread's connection, opened on first use. */
static int
conn_get(struct sqlite_store *st, struct sqlite_conn **out,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((c = pthread_getspecific(st->key)) != NULL) {
		*out = c;
		return 0;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	c->store = st;
	if ((r = conn_open(st->path, &c->db, e)) != 0) {
		free(c);
		return r;
	}
	if (pthread_setspecific(st->key, c) != 0) {
		conn_free(c);
		return err_set(e, ERR_INTERNAL, "cannot keep a database "
		    "connection for this thread");
	}
	pthread_mutex_lock(&st->lock);
	c->next = st->conns;
	st->conns = c;
	pthread_mutex_unlock(&st->lock);
	*out = c;
	return 0;
}

/* Compiles sql for one use; the caller finalizes *st. */
static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct err_ctx *e)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(db, e, "preparing a statement");
	return 0;
}

/*
 * Statement id on c, ready to bind, in *out: the one c keeps, compiled on
 * first use.  While that one is handed out (a listing callback that calls
 * the store again on the same thread) a new one is compiled instead, so
 * that no statement is ever stepped by two callers at once.  Every
 * statement got here goes back with stmt_put() on every path.
 */
static int
stmt_get(struct sqlite_conn *c, enum stmt_id id, sqlite3_stmt **out,
    struct err_ctx *e)
{
	if (c->in_use[id])
		return prepare(c->db, stmt_sql[id], out, e);
	if (c->stmt[id] == NULL && sqlite3_prepare_v3(c->db, stmt_sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, &c->stmt[id], NULL) != SQLITE_OK)
		return db_fail(c->db, e, "preparing a statement");
	c->in_use[id] = 1;
	*out = c->stmt[id];
	return 0;
}

/*
 * Gives back st (NULL is fine) got from stmt_get(c, id): a kept statement
 * is reset, which ends the read transaction of a query stopped before its
 * last row, and loses its bindings; another one is finalized.
 */
static void
stmt_put(struct sqlite_conn *c, enum stmt_id id, sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	if (st != c->stmt[id]) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	c->in_use[id] = 0;
}

/*
 * Binders.  Strings and blobs are not copied: what they point to must
 * stay valid until the statement has run and gone back with stmt_put(),
 * or has been bound again.
 */
static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ?
	    0 : ERR_INTERNAL;
}

static int
bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
	if (len > INT32_MAX)
		return ERR_TOO_LARGE;
	return sqlite3_bind_blob(st, i, p, (int)len, SQLITE_STATIC) ==
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

static const char *
col_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "";
}

/* A blob column of exactly 32 bytes into out; ERR_IO otherwise. */
static int
col_hash(sqlite3_stmt *st, int i, uint8_t out[32], struct err_ctx *e,
    const char *account, uint64_t seq)
{
	const void *p = sqlite3_column_blob(st, i);

	if (p == NULL || sqlite3_column_bytes(st, i) != 32)
		return err_set(e, ERR_IO, "event %llu of '%s' has a damaged "
		    "hash column", (unsigned long long)seq, account);
	memcpy(out, p, 32);
	return 0;
}

/* Runs a statement that returns no rows. */
static int
step_done(sqlite3 *db, sqlite3_stmt *st, struct err_ctx *e, const char *what)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, e, what);
	return 0;
}

/*
 * Runs an insert: 0 when the row went in, ERR_EXISTS when a constraint
 * (a key already taken) refused it, with no message in e: the caller
 * says what exists.  Otherwise a database error about what.
 */
static int
step_insert(sqlite3 *db, sqlite3_stmt *st, struct err_ctx *e,
    const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_CONSTRAINT)
		return ERR_EXISTS;
	if (rc != SQLITE_DONE)
		return db_fail(db, e, what);
	return 0;
}

/*
 * Steps a query for its one row: 0 with the row ready to read,
 * ERR_NOT_FOUND when there is none, with no message in e: the caller says
 * what is missing.  Otherwise a database error about what.
 */
static int
step_row(sqlite3 *db, sqlite3_stmt *st, struct err_ctx *e, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return ERR_NOT_FOUND;
	return db_fail(db, e, what);
}

/*
 * The tail of running a statement that returns no rows: when bound is 0
 * (stmt_get() and the binding of st went well), runs st.  Gives st back
 * to c either way (NULL is fine).  Returns bound when it is not 0, else
 * step_done()'s result.
 */
static int
stmt_run_put(struct sqlite_conn *c, enum stmt_id id, sqlite3_stmt *st,
    int bound, struct err_ctx *e, const char *what)
{
	int r = bound;

	if (r == 0)
		r = step_done(c->db, st, e, what);
	stmt_put(c, id, st);
	return r;
}

/* Runs the kept statement id, which takes no parameters and returns no
 * rows. */
static int
stmt_exec(struct sqlite_conn *c, enum stmt_id id, struct err_ctx *e,
    const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = stmt_get(c, id, &st, e);
	return stmt_run_put(c, id, st, r, e, what);
}

/*
 * Starts a write transaction on c, after this process's other writers
 * are done; end it with tx_commit() or tx_rollback().
 */
static int
tx_begin(struct sqlite_conn *c, struct err_ctx *e)
{
	int r;

	pthread_mutex_lock(&c->store->write_lock);
	if ((r = stmt_exec(c, STMT_BEGIN_WRITE, e,
	    "starting a transaction")) != 0) {
		pthread_mutex_unlock(&c->store->write_lock);
		return r;
	}
	c->writing = 1;
	return 0;
}

/* Starts a read transaction: its queries see one snapshot. */
static int
tx_begin_read(struct sqlite_conn *c, struct err_ctx *e)
{
	return stmt_exec(c, STMT_BEGIN_READ, e, "starting a transaction");
}

/* Lets the next writer of this process in, when c was writing. */
static void
tx_end(struct sqlite_conn *c)
{
	if (c->writing) {
		c->writing = 0;
		pthread_mutex_unlock(&c->store->write_lock);
	}
}

/* Commits; on failure the transaction is still open and the caller
 * calls tx_rollback().  A leaf the transaction appended makes its
 * frontier the store's, before the next writer may append. */
static int
tx_commit(struct sqlite_conn *c, struct err_ctx *e)
{
	struct sqlite_store *st = c->store;
	int r;

	if ((r = stmt_exec(c, STMT_COMMIT, e,
	    "committing a transaction")) != 0)
		return r;
	if (c->tlog_pending && c->writing) {
		st->tlog_cache = c->tlog_next;
		memcpy(st->tlog_cache_last, c->tlog_next_last,
		    sizeof(st->tlog_cache_last));
		st->tlog_cache_ok = 1;
	}
	c->tlog_pending = 0;
	tx_end(c);
	return 0;
}

/* Rolls back whatever c has open (nothing is fine); the statements of
 * the transaction went back with stmt_put() already. */
static void
tx_rollback(struct sqlite_conn *c)
{
	if (!sqlite3_get_autocommit(c->db))
		(void)stmt_exec(c, STMT_ROLLBACK, NULL, "rolling back");
	c->tlog_pending = 0;
	tx_end(c);
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
		conn_free(c);
	}
	pthread_key_delete(st->key);
	pthread_mutex_destroy(&st->write_lock);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

static int
sqlite_health(struct dir_store *s, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_SCHEMA_VERSION, &st, e)) != 0)
		goto out;
	/* No row is damage too: the store writes it when it opens. */
	if ((r = step_row(c->db, st, e, "reading the schema version")) ==
	    ERR_NOT_FOUND)
		r = db_fail(c->db, e, "reading the schema version");
 out:
	stmt_put(c, STMT_SCHEMA_VERSION, st);
	return r;
}

static int
sqlite_account_create(struct dir_store *s, const char *name,
    const char *pw_hash, uint64_t now, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_ACCOUNT_INSERT, &st, e)) != 0 ||
	    (r = bind_text(st, 1, name)) != 0 ||
	    (r = bind_text(st, 2, pw_hash)) != 0 ||
	    (r = bind_u64(st, 3, now)) != 0)
		goto out;
	if ((r = step_insert(c->db, st, e, "creating an account")) ==
	    ERR_EXISTS)
		r = err_set(e, ERR_EXISTS, "account '%s' already exists",
		    name);
 out:
	stmt_put(c, STMT_ACCOUNT_INSERT, st);
	return r;
}

static int
sqlite_account_get(struct dir_store *s, const char *name, char **pw_hash,
    uint64_t *created, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	char *h = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_ACCOUNT_GET, &st, e)) != 0 ||
	    (r = bind_text(st, 1, name)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading an account")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "account '%s' does not "
			    "exist", name);
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
	stmt_put(c, STMT_ACCOUNT_GET, st);
	return r;
}

static int
sqlite_account_list(struct dir_store *s, dir_account_cb cb, void *arg,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_ACCOUNT_LIST, &st, e)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = cb(arg, (const char *)sqlite3_column_text(st, 0),
		    col_u64(st, 1))) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(c->db, e, "listing accounts");
 out:
	stmt_put(c, STMT_ACCOUNT_LIST, st);
	return r;
}

/* The tail of account's log on c, in one query (one read transaction
 * unless the caller has one open). */
static int
tail_read(struct sqlite_conn *c, const char *account, uint64_t *seq,
    uint8_t hash[32], struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_LOG_TAIL, &st, e)) != 0 ||
	    (r = bind_text(st, 1, account)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading the log tail")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "account '%s' does not "
			    "exist", account);
		goto out;
	}
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		*seq = 0;
		memset(hash, 0, 32);
	} else if (sqlite3_column_bytes(st, 1) == 32) {
		*seq = col_u64(st, 0);
		memcpy(hash, sqlite3_column_blob(st, 1), 32);
	} else {
		r = db_fail(c->db, e, "reading the log tail");
		goto out;
	}
	r = 0;
 out:
	stmt_put(c, STMT_LOG_TAIL, st);
	return r;
}

static int
sqlite_log_tail(struct dir_store *s, const char *account, uint64_t *seq,
    uint8_t hash[32], struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	return tail_read(c, account, seq, hash, e);
}

static int
sqlite_log_events(struct dir_store *s, const char *account, uint64_t since,
    uint64_t upto, unsigned int limit, dir_event_cb cb, void *arg,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_LOG_EVENTS, &st, e)) != 0 ||
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
	r = rc == SQLITE_DONE ? 0 : db_fail(c->db, e, "reading the log");
 out:
	stmt_put(c, STMT_LOG_EVENTS, st);
	return r;
}

/* Inside a transaction: the tail must still be (ev->seq - 1, ev->prev). */
static int
tail_check(struct sqlite_conn *c, const struct dir_event_row *ev,
    struct err_ctx *e)
{
	uint64_t seq;
	uint8_t hash[32];
	int r;

	if ((r = tail_read(c, ev->account, &seq, hash, e)) != 0)
		return r;
	if (seq + 1 != ev->seq || memcmp(hash, ev->prev, 32) != 0)
		return err_set(e, ERR_CHAIN, "the log of '%s' changed "
		    "meanwhile", ev->account);
	return 0;
}

static int
event_insert(struct sqlite_conn *c, const struct dir_event_row *ev,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_EVENT_INSERT, &st, e)) == 0 &&
	    (r = bind_text(st, 1, ev->account)) == 0 &&
	    (r = bind_u64(st, 2, ev->seq)) == 0 &&
	    (r = bind_u64(st, 3, ev->time)) == 0 &&
	    (r = bind_text(st, 4, ev->type)) == 0 &&
	    (r = bind_blob(st, 5, ev->prev, 32)) == 0 &&
	    (r = bind_blob(st, 6, ev->hash, 32)) == 0)
		r = bind_text(st, 7, ev->json);
	return stmt_run_put(c, STMT_EVENT_INSERT, st, r, e,
	    "appending an event");
}

/* --- the transparency log's tree --- */

/* The number of leaves, on c (in c's transaction when one is open). */
static int
tlog_size_read(struct sqlite_conn *c, uint64_t *size, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_TLOG_SIZE, &st, e)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading the transparency log "
	    "size")) == ERR_NOT_FOUND)
		r = db_fail(c->db, e, "reading the transparency log size");
	if (r == 0)
		*size = col_u64(st, 0);
 out:
	stmt_put(c, STMT_TLOG_SIZE, st);
	return r;
}

/* The stored node (level, index) on c: a merkle_node_fn (arg is c). */
static int
tlog_node_read(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct sqlite_conn *c = arg;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_TLOG_NODE, &st, e)) != 0 ||
	    (r = bind_u64(st, 1, level)) != 0 ||
	    (r = bind_u64(st, 2, index)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a transparency log "
	    "node")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "the transparency log "
			    "has no node (%u, %llu)", level,
			    (unsigned long long)index);
		goto out;
	}
	if (sqlite3_column_bytes(st, 0) != MERKLE_HASH_LEN) {
		r = err_set(e, ERR_IO, "transparency log node (%u, %llu) is "
		    "damaged: the database needs repair", level,
		    (unsigned long long)index);
		goto out;
	}
	memcpy(out, sqlite3_column_blob(st, 0), MERKLE_HASH_LEN);
 out:
	stmt_put(c, STMT_TLOG_NODE, st);
	return r;
}

/* Stores a node an appended leaf completed: a merkle_put_fn (arg is c). */
static int
tlog_node_write(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct sqlite_conn *c = arg;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_TLOG_NODE_INSERT, &st, e)) != 0 ||
	    (r = bind_u64(st, 1, level)) != 0 ||
	    (r = bind_u64(st, 2, index)) != 0 ||
	    (r = bind_blob(st, 3, hash, MERKLE_HASH_LEN)) != 0)
		goto out;
	if ((r = step_insert(c->db, st, e, "storing a transparency log "
	    "node")) == ERR_EXISTS)
		r = err_set(e, ERR_IO, "transparency log node (%u, %llu) is "
		    "stored already: the tree and its leaves disagree, the "
		    "database needs repair", level, (unsigned long long)index);
 out:
	stmt_put(c, STMT_TLOG_NODE_INSERT, st);
	return r;
}

/*
 * Inside an append's transaction, after the event went in: appends the
 * event's leaf and stores the nodes it completes.  The frontier comes
 * from the store's cache when the tree still ends where this process
 * left it (one node read to check), else from the stored nodes (O(log n)
 * reads).  The new frontier waits in c until the commit.  Nothing when
 * the store has the tree off.
 */
static int
tlog_append(struct sqlite_conn *c, const struct dir_event_row *ev,
    struct err_ctx *e)
{
	struct sqlite_store *st = c->store;
	sqlite3_stmt *ins = NULL;
	uint8_t leaf[MERKLE_HASH_LEN], last[MERKLE_HASH_LEN];
	uint64_t size;
	int r, cached = 0;

	if (st->head.tlog_off)
		return 0;
	if ((r = tlog_size_read(c, &size, e)) != 0)
		return r;
	if (st->tlog_cache_ok && st->tlog_cache.size == size) {
		if (size == 0)
			cached = 1;
		else if ((r = tlog_node_read(c, 0, size - 1, last, e)) != 0)
			return r;
		else
			cached = memcmp(last, st->tlog_cache_last,
			    sizeof(last)) == 0;
	}
	if (cached)
		c->tlog_next = st->tlog_cache;
	else if ((r = merkle_frontier_load(&c->tlog_next, size,
	    tlog_node_read, c, e)) != 0)
		return err_wrap(e, r, "cannot append to the transparency log: "
		    "%s", err_msg(e));
	if ((r = tlog_leaf_hash(ev->account, ev->seq, ev->hash, leaf)) != 0)
		return err_set(e, r, "cannot compute the transparency log leaf "
		    "of event %llu of '%s'", (unsigned long long)ev->seq,
		    ev->account);
	if ((r = stmt_get(c, STMT_TLOG_LEAF_INSERT, &ins, e)) == 0 &&
	    (r = bind_u64(ins, 1, size)) == 0 &&
	    (r = bind_text(ins, 2, ev->account)) == 0 &&
	    (r = bind_u64(ins, 3, ev->seq)) == 0)
		r = bind_blob(ins, 4, ev->hash, 32);
	if (r == 0 && (r = step_insert(c->db, ins, e, "appending to the "
	    "transparency log")) == ERR_EXISTS)
		r = err_set(e, ERR_IO, "the transparency log already has a "
		    "leaf for event %llu of '%s' or at index %llu: the "
		    "database needs repair", (unsigned long long)ev->seq,
		    ev->account, (unsigned long long)size);
	stmt_put(c, STMT_TLOG_LEAF_INSERT, ins);
	if (r != 0)
		return r;
	if ((r = merkle_frontier_append(&c->tlog_next, leaf, tlog_node_write,
	    c, e)) != 0)
		return r;
	memcpy(c->tlog_next_last, leaf, sizeof(leaf));
	c->tlog_pending = 1;
	return 0;
}

/* Runs statement id, a one-row, one-integer query with one text
 * parameter; *found tells whether it returned its row. */
static int
query_u64(struct sqlite_conn *c, enum stmt_id id, const char *param,
    uint64_t *out, int *found, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, id, &st, e)) != 0 ||
	    (r = bind_text(st, 1, param)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading")) == 0) {
		*out = col_u64(st, 0);
		*found = 1;
	} else if (r == ERR_NOT_FOUND) {
		*out = 0;
		*found = 0;
		r = 0;
	}
 out:
	stmt_put(c, id, st);
	return r;
}

/* Inside log_append_add's transaction: dev may be added to account, being
 * unknown or a revoked device of that account. */
static int
device_addable(struct sqlite_conn *c, const char *device,
    const char *account, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	const char *owner;
	int r;

	if ((r = stmt_get(c, STMT_DEVICE_OWNER, &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a device")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = 0;	/* never registered */
		goto out;
	}
	owner = (const char *)sqlite3_column_text(st, 0);
	if (owner == NULL || strcmp(owner, account) != 0) {
		r = err_set(e, ERR_EXISTS, "device %.16s is registered to "
		    "another account", device);
		goto out;
	}
	if (sqlite3_column_int(st, 1) != 0) {
		r = err_set(e, ERR_EXISTS, "device %.16s is already an active "
		    "device of '%s'", device, account);
		goto out;
	}
	r = 0;
 out:
	stmt_put(c, STMT_DEVICE_OWNER, st);
	return r;
}

/* Inside log_append_add's transaction: account has room for one more
 * active device. */
static int
device_room(struct sqlite_conn *c, const char *account,
    unsigned int max_devices, struct err_ctx *e)
{
	uint64_t n;
	int r, found;

	if ((r = query_u64(c, STMT_DEVICES_COUNT, account, &n, &found,
	    e)) != 0)
		return r;
	if (n >= max_devices)
		return err_set(e, ERR_TOO_LARGE, "account '%s' already has %u "
		    "active devices, the most this directory allows: revoke "
		    "one first", account, max_devices);
	return 0;
}

/* Inside log_append_add's transaction: dev, added by ev, is an active
 * device of ev's account from now on (again, for a revoked one). */
static int
device_upsert(struct sqlite_conn *c, const struct dir_device_row *dev,
    const struct dir_event_row *ev, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_DEVICE_UPSERT, &st, e)) == 0 &&
	    (r = bind_text(st, 1, dev->device)) == 0 &&
	    (r = bind_text(st, 2, ev->account)) == 0 &&
	    (r = bind_text(st, 3, dev->record_json)) == 0 &&
	    (r = bind_blob(st, 4, dev->sig_pub, dev->sig_pub_len)) == 0)
		r = bind_u64(st, 5, ev->time);
	return stmt_run_put(c, STMT_DEVICE_UPSERT, st, r, e,
	    "storing a device");
}

static int
sqlite_log_append_add(struct dir_store *s, const struct dir_event_row *ev,
    const struct dir_device_row *dev, unsigned int max_devices,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = tail_check(c, ev, e)) != 0 ||
	    (r = device_addable(c, dev->device, ev->account, e)) != 0 ||
	    (r = device_room(c, ev->account, max_devices, e)) != 0 ||
	    (r = event_insert(c, ev, e)) != 0 ||
	    (r = tlog_append(c, ev, e)) != 0 ||
	    (r = device_upsert(c, dev, ev, e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

/* Runs statement id, which returns no rows, with one text parameter. */
static int
exec_text(struct sqlite_conn *c, enum stmt_id id, const char *param,
    struct err_ctx *e, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, id, &st, e)) == 0)
		r = bind_text(st, 1, param);
	return stmt_run_put(c, id, st, r, e, what);
}

static int queue_drop(struct sqlite_conn *c, const char *device,
    uint64_t upto, uint64_t *removed, struct err_ctx *e);

/* Inside log_append_revoke's transaction: device must be an active device
 * of account. */
static int
device_revocable(struct sqlite_conn *c, const char *device,
    const char *account, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_DEVICE_IS_ACTIVE, &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_text(st, 2, account)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a device")) ==
	    ERR_NOT_FOUND)
		r = err_set(e, ERR_NOT_FOUND, "device %.16s is not an active "
		    "device of '%s'", device, account);
 out:
	stmt_put(c, STMT_DEVICE_IS_ACTIVE, st);
	return r;
}

static int
sqlite_log_append_revoke(struct dir_store *s, const struct dir_event_row *ev,
    const char *device, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = tail_check(c, ev, e)) != 0 ||
	    (r = device_revocable(c, device, ev->account, e)) != 0 ||
	    (r = event_insert(c, ev, e)) != 0 ||
	    (r = tlog_append(c, ev, e)) != 0 ||
	    (r = exec_text(c, STMT_DEVICE_DEACTIVATE, device, e,
	    "revoking a device")) != 0 ||
	    (r = exec_text(c, STMT_DEVICE_SESSIONS_END, device, e,
	    "ending sessions")) != 0 ||
	    (r = queue_drop(c, device, INT64_MAX, NULL, e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

static int
sqlite_device_get(struct dir_store *s, const char *device,
    struct dir_device_info *out, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r, n;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_DEVICE_GET, &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a device")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "device %.16s is not "
			    "registered", device);
		goto out;
	}
	n = sqlite3_column_bytes(st, 2);
	if (n <= 0 || (size_t)n > sizeof(out->sig_pub)) {
		r = db_fail(c->db, e, "reading a device");
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
	stmt_put(c, STMT_DEVICE_GET, st);
	return r;
}

/* Calls cb for each active device of account, in the open transaction. */
static int
devices_list(struct sqlite_conn *c, const char *account, dir_device_cb cb,
    void *arg, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = stmt_get(c, STMT_DEVICES_ACTIVE, &st, e)) != 0 ||
	    (r = bind_text(st, 1, account)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = cb(arg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1))) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(c->db, e, "listing devices");
 out:
	stmt_put(c, STMT_DEVICES_ACTIVE, st);
	return r;
}

static int
sqlite_devices_active(struct dir_store *s, const char *account,
    uint64_t *seq, uint8_t hash[32], dir_device_cb cb, void *arg,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	/* A read transaction: the devices and the tail of one snapshot. */
	if ((r = tx_begin_read(c, e)) != 0)
		return r;
	if ((r = tail_read(c, account, seq, hash, e)) != 0 ||
	    (r = devices_list(c, account, cb, arg, e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

/* Inside session_put's transaction: ends all but the newest keep sessions
 * of device. */
static int
sessions_trim(struct sqlite_conn *c, const char *device, uint64_t keep,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_SESSIONS_TRIM, &st, e)) == 0 &&
	    (r = bind_text(st, 1, device)) == 0)
		r = bind_u64(st, 2, keep);
	return stmt_run_put(c, STMT_SESSIONS_TRIM, st, r, e,
	    "ending old sessions");
}

/* Inside session_put's transaction: stores one session. */
static int
session_insert(struct sqlite_conn *c, const uint8_t token_hash[32],
    const char *device, const char *account, uint64_t expires,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_SESSION_INSERT, &st, e)) == 0 &&
	    (r = bind_blob(st, 1, token_hash, 32)) == 0 &&
	    (r = bind_text(st, 2, device)) == 0 &&
	    (r = bind_text(st, 3, account)) == 0)
		r = bind_u64(st, 4, expires);
	return stmt_run_put(c, STMT_SESSION_INSERT, st, r, e,
	    "storing a session");
}

static int
sqlite_session_put(struct dir_store *s, const uint8_t token_hash[32],
    const char *device, const char *account, uint64_t expires,
    unsigned int max_per_device, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if (max_per_device == 0)
		return err_set(e, ERR_INVALID_ARG, "no sessions allowed");
	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	/* Keep the newest max_per_device - 1, then add this one. */
	if ((r = sessions_trim(c, device, max_per_device - 1, e)) != 0 ||
	    (r = session_insert(c, token_hash, device, account, expires,
	    e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

static int
sqlite_session_get(struct dir_store *s, const uint8_t token_hash[32],
    uint64_t now, struct dir_session_info *out, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_SESSION_GET, &st, e)) != 0 ||
	    (r = bind_blob(st, 1, token_hash, 32)) != 0 ||
	    (r = bind_u64(st, 2, now)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a session")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "session unknown or "
			    "expired");
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
	stmt_put(c, STMT_SESSION_GET, st);
	return r;
}

static int
sqlite_nonce_use(struct dir_store *s, const char *device,
    const uint8_t *nonce, size_t nonce_len, uint64_t expires,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_NONCE_INSERT, &st, e)) != 0 ||
	    (r = bind_text(st, 1, device)) != 0 ||
	    (r = bind_blob(st, 2, nonce, nonce_len)) != 0 ||
	    (r = bind_u64(st, 3, expires)) != 0)
		goto out;
	if ((r = step_insert(c->db, st, e, "storing a nonce")) == ERR_EXISTS)
		r = err_set(e, ERR_REPLAY, "this login nonce was used before: "
		    "make a new random nonce for every login");
 out:
	stmt_put(c, STMT_NONCE_INSERT, st);
	return r;
}

/* Runs statement id, which returns no rows, with one integer parameter. */
static int
exec_u64(struct sqlite_conn *c, enum stmt_id id, uint64_t v,
    struct err_ctx *e, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, id, &st, e)) == 0)
		r = bind_u64(st, 1, v);
	return stmt_run_put(c, id, st, r, e, what);
}

static int
sqlite_purge(struct dir_store *s, uint64_t now, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = exec_u64(c, STMT_SESSIONS_PURGE, now, e,
	    "purging sessions")) != 0 ||
	    (r = exec_u64(c, STMT_NONCES_PURGE, now, e,
	    "purging nonces")) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

/* The statements message_put runs once per recipient device. */
struct put_stmts {
	sqlite3_stmt *account;          /* the device's account */
	sqlite3_stmt *from_sender;      /* its entries from the sender */
	sqlite3_stmt *queued;           /* all its entries */
	sqlite3_stmt *insert;           /* a new entry */
	sqlite3_stmt *usage_add;        /* the account's usage + size */
	sqlite3_stmt *usage_get;        /* the account's usage */
};

static int
put_stmts_get(struct sqlite_conn *c, struct put_stmts *ps, struct err_ctx *e)
{
	int r;

	if ((r = stmt_get(c, STMT_DEVICE_ACCOUNT, &ps->account, e)) != 0 ||
	    (r = stmt_get(c, STMT_QUEUE_FROM_SENDER, &ps->from_sender,
	    e)) != 0 ||
	    (r = stmt_get(c, STMT_QUEUE_COUNT, &ps->queued, e)) != 0 ||
	    (r = stmt_get(c, STMT_QUEUE_INSERT, &ps->insert, e)) != 0 ||
	    (r = stmt_get(c, STMT_USAGE_ADD, &ps->usage_add, e)) != 0 ||
	    (r = stmt_get(c, STMT_USAGE_GET, &ps->usage_get, e)) != 0)
		return r;
	return 0;
}

static void
put_stmts_put(struct sqlite_conn *c, struct put_stmts *ps)
{
	stmt_put(c, STMT_DEVICE_ACCOUNT, ps->account);
	stmt_put(c, STMT_QUEUE_FROM_SENDER, ps->from_sender);
	stmt_put(c, STMT_QUEUE_COUNT, ps->queued);
	stmt_put(c, STMT_QUEUE_INSERT, ps->insert);
	stmt_put(c, STMT_USAGE_ADD, ps->usage_add);
	stmt_put(c, STMT_USAGE_GET, ps->usage_get);
	memset(ps, 0, sizeof(*ps));
}

/* Steps st (bound already) for one row of one integer, then resets it. */
static int
step_u64(sqlite3 *db, sqlite3_stmt *st, uint64_t *out, struct err_ctx *e,
    const char *what)
{
	int rc = sqlite3_step(st);

	*out = rc == SQLITE_ROW ? col_u64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, e, what);
	return 0;
}

/*
 * Inside message_put's transaction: queues message id (size bytes, from
 * sender) for device after checking lim, and counts the entry against the
 * quota of the device's account.  On failure the caller rolls back.  The
 * statements are bound anew for every device: account[] is bound without
 * a copy and is only valid here.
 */
static int
queue_one(sqlite3 *db, struct put_stmts *ps, const char *sender,
    const char *device, sqlite3_int64 id, uint64_t size,
    const struct dir_queue_limits *lim, struct err_ctx *e)
{
	char account[DIR_ACCOUNT_MAX + 1];
	const char *a;
	uint64_t n;
	int r, rc, has_account = 0;

	/* A device never changes account, so the entry can keep it. */
	sqlite3_reset(ps->account);
	if ((r = bind_text(ps->account, 1, device)) != 0)
		return r;
	rc = sqlite3_step(ps->account);
	if (rc == SQLITE_ROW &&
	    (a = (const char *)sqlite3_column_text(ps->account, 0)) != NULL) {
		snprintf(account, sizeof(account), "%s", a);
		has_account = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = db_fail(db, e, "reading a device");
		sqlite3_reset(ps->account);
		return r;
	}
	sqlite3_reset(ps->account);

	if ((r = bind_text(ps->from_sender, 1, device)) != 0 ||
	    (r = bind_text(ps->from_sender, 2, sender)) != 0 ||
	    (r = step_u64(db, ps->from_sender, &n, e,
	    "counting a sender's messages")) != 0)
		return r;
	if (n >= lim->max_per_sender) {
		if (has_account)
			return err_set(e, ERR_FAIR_SHARE, "device %.16s of "
			    "'%s' already holds %llu unread messages from "
			    "this device, the most one sender may queue "
			    "there: wait until it reads them", device,
			    account, (unsigned long long)n);
		return err_set(e, ERR_FAIR_SHARE, "device %.16s already "
		    "holds %llu unread messages from this device, the most "
		    "one sender may queue there: wait until it reads them",
		    device, (unsigned long long)n);
	}
	if ((r = bind_text(ps->queued, 1, device)) != 0 ||
	    (r = step_u64(db, ps->queued, &n, e, "counting a queue")) != 0)
		return r;
	if (n >= lim->max_queue)
		return err_set(e, ERR_TOO_LARGE, "the queue of device %.16s "
		    "is full (%u messages): it must fetch and acknowledge "
		    "first", device, lim->max_queue);

	sqlite3_reset(ps->insert);
	if ((r = bind_text(ps->insert, 1, device)) != 0 ||
	    (r = bind_u64(ps->insert, 2, (uint64_t)id)) != 0 ||
	    (r = bind_text(ps->insert, 3, sender)) != 0 ||
	    (r = (has_account ? bind_text(ps->insert, 4, account) :
	    (sqlite3_bind_null(ps->insert, 4) == SQLITE_OK ? 0 :
	    ERR_INTERNAL))) != 0 ||
	    (r = bind_u64(ps->insert, 5, size)) != 0 ||
	    (r = step_done(db, ps->insert, e, "queueing a message")) != 0)
		return r;
	if (!has_account)
		return 0;

	sqlite3_reset(ps->usage_add);
	if ((r = bind_text(ps->usage_add, 1, account)) != 0 ||
	    (r = bind_u64(ps->usage_add, 2, size)) != 0 ||
	    (r = step_done(db, ps->usage_add, e,
	    "counting an account's usage")) != 0 ||
	    (r = bind_text(ps->usage_get, 1, account)) != 0 ||
	    (r = step_u64(db, ps->usage_get, &n, e,
	    "reading an account's usage")) != 0)
		return r;
	if (n > lim->quota_bytes)
		return err_set(e, ERR_QUOTA, "account '%s' has no room for "
		    "this message: with it, the messages queued for its "
		    "devices would take more than its quota of %llu bytes; "
		    "try again when its devices have read their messages",
		    account, (unsigned long long)lim->quota_bytes);
	return 0;
}

/*
 * Inside message_put's transaction: stores envelope (from sender, with
 * msg_id, waiting for refs recipients) and sets *id to its row id.
 * ERR_EXISTS when sender posted msg_id before.
 */
static int
message_insert(struct sqlite_conn *c, const char *sender,
    const uint8_t *msg_id, size_t msg_id_len, const char *envelope,
    size_t refs, sqlite3_int64 *id, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_MESSAGE_INSERT, &st, e)) != 0 ||
	    (r = bind_text(st, 1, sender)) != 0 ||
	    (r = bind_blob(st, 2, msg_id, msg_id_len)) != 0 ||
	    (r = bind_text(st, 3, envelope)) != 0 ||
	    (r = bind_u64(st, 4, refs)) != 0)
		goto out;
	if ((r = step_insert(c->db, st, e, "storing a message")) != 0) {
		if (r == ERR_EXISTS)
			r = err_set(e, ERR_EXISTS, "this device already posted "
			    "a message with this id");
		goto out;
	}
	*id = sqlite3_last_insert_rowid(c->db);
 out:
	stmt_put(c, STMT_MESSAGE_INSERT, st);
	return r;
}

/* Inside message_put's transaction: queues message id (size bytes, from
 * sender) for each of the n devices, as queue_one() does. */
static int
queue_all(struct sqlite_conn *c, const char *sender,
    const char *const *devices, size_t n, sqlite3_int64 id, uint64_t size,
    const struct dir_queue_limits *lim, struct err_ctx *e)
{
	struct put_stmts ps;
	size_t i;
	int r;

	memset(&ps, 0, sizeof(ps));
	if ((r = put_stmts_get(c, &ps, e)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = queue_one(c->db, &ps, sender, devices[i], id, size,
		    lim, e)) != 0)
			goto out;
	}
	r = 0;
 out:
	put_stmts_put(c, &ps);
	return r;
}

/*
 * Inside message_put's transaction: links message id to each of the
 * n_blobs blobs, each of which must be kept and uploaded by sender (else
 * ERR_DENIED naming it), and marks them linked.  On failure the caller
 * rolls back.
 */
static int
link_all(struct sqlite_conn *c, const char *sender,
    const char *const *blobs, size_t n_blobs, sqlite3_int64 id,
    struct err_ctx *e)
{
	sqlite3_stmt *mark = NULL, *link = NULL;
	size_t i;
	int r;

	if (n_blobs == 0)
		return 0;
	if ((r = stmt_get(c, STMT_BLOB_MARK_LINKED, &mark, e)) != 0 ||
	    (r = stmt_get(c, STMT_BLOB_LINK_INSERT, &link, e)) != 0)
		goto out;
	for (i = 0; i < n_blobs; i++) {
		sqlite3_reset(mark);
		if ((r = bind_text(mark, 1, blobs[i])) != 0 ||
		    (r = bind_text(mark, 2, sender)) != 0 ||
		    (r = step_done(c->db, mark, e, "linking a blob")) != 0)
			goto out;
		if (sqlite3_changes(c->db) == 0) {
			r = err_set(e, ERR_DENIED, "blob %.64s is not a blob "
			    "this device uploaded, or it was removed: upload "
			    "it again before posting the message", blobs[i]);
			goto out;
		}
		sqlite3_reset(link);
		if ((r = bind_u64(link, 1, (uint64_t)id)) != 0 ||
		    (r = bind_text(link, 2, blobs[i])) != 0 ||
		    (r = step_done(c->db, link, e, "linking a blob")) != 0)
			goto out;
	}
	r = 0;
 out:
	stmt_put(c, STMT_BLOB_MARK_LINKED, mark);
	stmt_put(c, STMT_BLOB_LINK_INSERT, link);
	return r;
}

static int
sqlite_message_put(struct dir_store *s, const char *sender_device,
    const uint8_t *msg_id, size_t msg_id_len, const char *envelope,
    const char *const *devices, size_t n, const char *const *blobs,
    size_t n_blobs, const struct dir_queue_limits *lim, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_int64 id = 0;
	uint64_t size;
	int r;

	return_val_if_fail(lim != NULL, ERR_INVALID_ARG);
	return_val_if_fail(n_blobs == 0 || blobs != NULL, ERR_INVALID_ARG);
	size = (uint64_t)strlen(envelope);
	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = message_insert(c, sender_device, msg_id, msg_id_len,
	    envelope, n, &id, e)) != 0 ||
	    (r = link_all(c, sender_device, blobs, n_blobs, id, e)) != 0 ||
	    (r = queue_all(c, sender_device, devices, n, id, size, lim,
	    e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

static int
sqlite_inbox_get(struct dir_store *s, const char *device, uint64_t after,
    unsigned int limit, size_t max_bytes, dir_queue_cb cb, void *arg,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	size_t total = 0, len;
	unsigned int n = 0;
	int r, rc;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_INBOX_GET, &st, e)) != 0 ||
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
	/* SQLITE_ROW: stopped at max_bytes. */
	r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 :
	    db_fail(c->db, e, "reading the inbox");
 out:
	stmt_put(c, STMT_INBOX_GET, st);
	return r;
}

/* Runs statement id, which returns no rows, with parameters device and
 * upto. */
static int
exec_device_upto(struct sqlite_conn *c, enum stmt_id id, const char *device,
    uint64_t upto, struct err_ctx *e, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, id, &st, e)) == 0 &&
	    (r = bind_text(st, 1, device)) == 0)
		r = bind_u64(st, 2, upto);
	return stmt_run_put(c, id, st, r, e, what);
}

/*
 * Inside a transaction: removes device's queue entries with seq <= upto,
 * takes their sizes off their account's usage, and removes the envelopes
 * no queue refers to any more; *removed (may be NULL) gets the number of
 * entries.
 */
static int
queue_drop(struct sqlite_conn *c, const char *device, uint64_t upto,
    uint64_t *removed, struct err_ctx *e)
{
	int r;

	if ((r = exec_device_upto(c, STMT_DROP_USAGE, device, upto, e,
	    "counting an account's usage")) != 0 ||
	    (r = exec_device_upto(c, STMT_DROP_REFS, device, upto, e,
	    "acknowledging")) != 0 ||
	    (r = exec_device_upto(c, STMT_DROP_QUEUE, device, upto, e,
	    "acknowledging")) != 0)
		return r;
	if (removed != NULL)
		*removed = (uint64_t)sqlite3_changes(c->db);
	return stmt_exec(c, STMT_MESSAGES_GC, e, "deleting delivered messages");
}

static int
sqlite_inbox_ack(struct dir_store *s, const char *device, uint64_t upto,
    uint64_t *removed, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = queue_drop(c, device, upto, removed, e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		tx_rollback(c);
	return r;
}

static int
sqlite_account_usage(struct dir_store *s, const char *account,
    uint64_t *bytes, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r, found;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	return query_u64(c, STMT_USAGE_GET, account, bytes, &found, e);
}

/* --- blobs --- */

/*
 * Inside blob_put's transaction: whether hash is kept already.  *owner
 * gets its uploader (a device id, cut to fit) and *expires its time when
 * it is; *found 1 or 0.
 */
static int
blob_owner(struct sqlite_conn *c, const char *hash, char *owner,
    size_t owner_len, uint64_t *expires, int *found, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*found = 0;
	if ((r = stmt_get(c, STMT_BLOB_OWNER, &st, e)) != 0 ||
	    (r = bind_text(st, 1, hash)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a blob")) == 0) {
		snprintf(owner, owner_len, "%s", col_str(st, 0));
		*expires = col_u64(st, 1);
		*found = 1;
	} else if (r == ERR_NOT_FOUND) {
		r = 0;
	}
 out:
	stmt_put(c, STMT_BLOB_OWNER, st);
	return r;
}

/* Inside blob_put's transaction: stores the row of a new blob. */
static int
blob_insert(struct sqlite_conn *c, const char *hash, const char *device,
    const char *account, uint64_t size, uint64_t now, uint64_t expires,
    struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, STMT_BLOB_INSERT, &st, e)) != 0 ||
	    (r = bind_text(st, 1, hash)) != 0 ||
	    (r = bind_text(st, 2, device)) != 0 ||
	    (r = bind_text(st, 3, account)) != 0 ||
	    (r = bind_u64(st, 4, size)) != 0 ||
	    (r = bind_u64(st, 5, now)) != 0 ||
	    (r = bind_u64(st, 6, expires)) != 0)
		goto out;
	/* The owner was read in this transaction: a taken key is damage. */
	if ((r = step_insert(c->db, st, e, "storing a blob")) == ERR_EXISTS)
		r = db_fail(c->db, e, "storing a blob");
 out:
	stmt_put(c, STMT_BLOB_INSERT, st);
	return r;
}

/*
 * Inside blob_put's transaction: 0 when the blobs kept for account plus
 * size stay within quota, else ERR_QUOTA naming the account.
 */
static int
blob_quota_check(struct sqlite_conn *c, const char *account, uint64_t size,
    uint64_t quota, struct err_ctx *e)
{
	uint64_t used;
	int r, found;

	if ((r = query_u64(c, STMT_BLOB_USAGE, account, &used, &found,
	    e)) != 0)
		return r;
	if (used > quota || size > quota - used)
		return err_set(e, ERR_QUOTA, "account '%s' has no room for "
		    "this blob: with its %llu bytes, the blobs kept for its "
		    "devices would take more than its quota of %llu bytes; "
		    "try again when older attachments have been fetched or "
		    "have expired", account, (unsigned long long)size,
		    (unsigned long long)quota);
	return 0;
}

static int
sqlite_blob_put(struct dir_store *s, const char *hash, const char *device,
    const char *account, uint64_t size, uint64_t now, uint64_t *expires,
    uint64_t quota, int *existed, struct err_ctx *e)
{
	struct sqlite_conn *c;
	char owner[DIR_DEVICE_HEX + 1];
	uint64_t kept_until = 0;
	int r, found = 0;

	return_val_if_fail(hash != NULL && device != NULL && account != NULL &&
	    expires != NULL, ERR_INVALID_ARG);
	if (existed != NULL)
		*existed = 0;
	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = blob_owner(c, hash, owner, sizeof(owner), &kept_until,
	    &found, e)) != 0)
		goto fail;
	if (found) {
		tx_rollback(c);
		if (strcmp(owner, device) != 0)
			return err_set(e, ERR_EXISTS, "blob %.64s was uploaded "
			    "by another device", hash);
		if (existed != NULL)
			*existed = 1;
		*expires = kept_until;
		return 0;
	}
	if ((r = blob_quota_check(c, account, size, quota, e)) != 0 ||
	    (r = blob_insert(c, hash, device, account, size, now, *expires,
	    e)) != 0 ||
	    (r = tx_commit(c, e)) != 0)
		goto fail;
	return 0;
 fail:
	tx_rollback(c);
	return r;
}

static int
sqlite_blob_usage(struct dir_store *s, const char *account, uint64_t *bytes,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r, found;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	return query_u64(c, STMT_BLOB_USAGE, account, bytes, &found, e);
}

static int
sqlite_blob_get(struct dir_store *s, const char *hash, const char *device,
    uint64_t *size, uint64_t *expires, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	return_val_if_fail(hash != NULL && device != NULL, ERR_INVALID_ARG);
	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_BLOB_GET, &st, e)) != 0 ||
	    (r = bind_text(st, 1, hash)) != 0 ||
	    (r = bind_text(st, 2, device)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading a blob")) == ERR_NOT_FOUND) {
		r = err_set(e, ERR_DENIED, "no message queued for device "
		    "%.16s names blob %.64s", device, hash);
		goto out;
	}
	if (r != 0)
		goto out;
	if (sqlite3_column_int(st, 2) == 0) {
		r = err_set(e, ERR_GONE, "blob %.64s expired and was "
		    "removed", hash);
		goto out;
	}
	if (size != NULL)
		*size = col_u64(st, 0);
	if (expires != NULL)
		*expires = col_u64(st, 1);
 out:
	stmt_put(c, STMT_BLOB_GET, st);
	return r;
}

/* The hashes blob_expire removed, for its callback after the commit. */
struct hash_list {
	char (*hash)[BLOB_HASH_HEX + 1];
	size_t n, cap;
};

/* Appends a hash (64 hex, cut to fit) to l. */
static int
hash_list_add(struct hash_list *l, const char *hash, struct err_ctx *e)
{
	char (*x)[BLOB_HASH_HEX + 1];
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap > 0 ? l->cap * 2 : 64;
		if (cap > SIZE_MAX / sizeof(*x) ||
		    (x = realloc(l->hash, cap * sizeof(*x))) == NULL)
			return err_set(e, ERR_ALLOC, "out of memory");
		l->hash = x;
		l->cap = cap;
	}
	snprintf(l->hash[l->n], sizeof(l->hash[l->n]), "%s", hash);
	l->n++;
	return 0;
}

/* qsort() comparison of two hashes: the order the callback gets them. */
static int
hash_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Inside blob_expire's transaction: removes the rows that are to go and
 * adds their hashes to l. */
static int
blob_expire_rows(struct sqlite_conn *c, uint64_t now, uint64_t cutoff,
    uint64_t limit, struct hash_list *l, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = stmt_get(c, STMT_BLOB_EXPIRE, &st, e)) != 0 ||
	    (r = bind_u64(st, 1, now)) != 0 ||
	    (r = bind_u64(st, 2, cutoff)) != 0 ||
	    (r = bind_u64(st, 3, limit)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = hash_list_add(l, col_str(st, 0), e)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(c->db, e, "removing blobs");
 out:
	stmt_put(c, STMT_BLOB_EXPIRE, st);
	return r;
}

static int
sqlite_blob_expire(struct dir_store *s, uint64_t now, uint64_t unlinked_s,
    unsigned int limit, int (*cb)(void *arg, const char *hash), void *arg,
    uint64_t *removed, struct err_ctx *e)
{
	struct sqlite_conn *c;
	struct hash_list l = { NULL, 0, 0 };
	size_t i;
	int r;

	if (removed != NULL)
		*removed = 0;
	if (now > INT64_MAX)
		now = INT64_MAX;
	if ((r = conn_get(to_sqlite(s), &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		return r;
	if ((r = blob_expire_rows(c, now, now > unlinked_s ?
	    now - unlinked_s : 0, limit > 0 ? limit : INT64_MAX, &l,
	    e)) != 0 ||
	    (r = tx_commit(c, e)) != 0) {
		tx_rollback(c);
		goto out;
	}
	if (removed != NULL)
		*removed = l.n;
	if (l.n > 1)
		qsort(l.hash, l.n, sizeof(*l.hash), hash_cmp);
	for (i = 0; cb != NULL && i < l.n; i++)
		(void)cb(arg, l.hash[i]);
 out:
	free(l.hash);
	return r;
}

static int
sqlite_blob_exists(struct dir_store *s, const char *hash, int *kept,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	uint64_t one;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	return query_u64(c, STMT_BLOB_EXISTS, hash, &one, kept, e);
}

/* --- the transparency log --- */

static int
sqlite_tlog_size(struct dir_store *s, uint64_t *size, struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	return tlog_size_read(c, size, e);
}

static int
sqlite_tlog_node(struct dir_store *s, unsigned int level, uint64_t index,
    uint8_t out[32], struct err_ctx *e)
{
	struct sqlite_conn *c;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if (level >= 64 || index > INT64_MAX)
		return err_set(e, ERR_NOT_FOUND, "the transparency log has no "
		    "node (%u, %llu)", level, (unsigned long long)index);
	return tlog_node_read(c, level, index, out, e);
}

static int
sqlite_tlog_leaves(struct dir_store *s, uint64_t start, uint64_t end,
    dir_leaf_cb cb, void *arg, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (start > end || end - start > 1024 || end > INT64_MAX)
		return err_set(e, ERR_INVALID_ARG, "transparency log leaves "
		    "%llu to %llu: at most 1024 leaves, start <= end",
		    (unsigned long long)start, (unsigned long long)end);
	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_TLOG_LEAVES, &st, e)) != 0 ||
	    (r = bind_u64(st, 1, start)) != 0 ||
	    (r = bind_u64(st, 2, end)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 3) != 32) {
			r = err_set(e, ERR_IO, "transparency log leaf %llu is "
			    "damaged: the database needs repair",
			    (unsigned long long)col_u64(st, 0));
			goto out;
		}
		if ((r = cb(arg, col_u64(st, 0),
		    (const char *)sqlite3_column_text(st, 1), col_u64(st, 2),
		    sqlite3_column_blob(st, 3))) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(c->db, e,
	    "reading the transparency log");
 out:
	stmt_put(c, STMT_TLOG_LEAVES, st);
	return r;
}

static int
sqlite_tlog_latest(struct dir_store *s, const char *account, uint64_t size,
    uint64_t *seq, uint64_t *index, struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_TLOG_LATEST, &st, e)) != 0 ||
	    (r = bind_text(st, 1, account)) != 0 ||
	    (r = bind_u64(st, 2, size > INT64_MAX ? INT64_MAX : size)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading the transparency log")) !=
	    0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "the first %llu leaves "
			    "of the transparency log hold no event of '%s'",
			    (unsigned long long)size, account);
		goto out;
	}
	*seq = col_u64(st, 0);
	*index = col_u64(st, 1);
 out:
	stmt_put(c, STMT_TLOG_LATEST, st);
	return r;
}

static int
sqlite_checkpoint_put(struct dir_store *s, uint64_t size, const char *note,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	/* One statement: the size check and the write are one change. */
	if ((r = stmt_get(c, STMT_CHECKPOINT_PUT, &st, e)) != 0 ||
	    (r = bind_u64(st, 1, size)) != 0 ||
	    (r = bind_text(st, 2, note)) != 0 ||
	    (r = step_done(c->db, st, e, "storing a checkpoint")) != 0)
		goto out;
	if (sqlite3_changes(c->db) == 0)
		r = err_set(e, ERR_ROLLBACK, "a checkpoint of %llu leaves is "
		    "older than the one stored: not kept",
		    (unsigned long long)size);
 out:
	stmt_put(c, STMT_CHECKPOINT_PUT, st);
	return r;
}

static int
sqlite_checkpoint_get(struct dir_store *s, uint64_t *size, char **note,
    struct err_ctx *e)
{
	struct sqlite_conn *c;
	sqlite3_stmt *st = NULL;
	const char *text;
	int r;

	if ((r = conn_get(to_sqlite(s), &c, e)) != 0)
		return r;
	if ((r = stmt_get(c, STMT_CHECKPOINT_GET, &st, e)) != 0)
		goto out;
	if ((r = step_row(c->db, st, e, "reading the checkpoint")) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_set(e, ERR_NOT_FOUND, "no checkpoint has been "
			    "made yet");
		goto out;
	}
	if ((text = (const char *)sqlite3_column_text(st, 1)) == NULL) {
		r = db_fail(c->db, e, "reading the checkpoint");
		goto out;
	}
	if ((*note = strdup(text)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	*size = col_u64(st, 0);
 out:
	stmt_put(c, STMT_CHECKPOINT_GET, st);
	return r;
}

/* One process serves a SQLite directory: it makes the checkpoints. */
static int
sqlite_tlog_sequencer(struct dir_store *s, int *leader, struct err_ctx *e)
{
	(void)s;
	(void)e;
	*leader = 1;
	return 0;
}

/* A node the backfill completed: a merkle_put_fn (arg is the insert). */
static int
backfill_node_write(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[MERKLE_HASH_LEN], struct err_ctx *e)
{
	sqlite3_stmt *st = arg;
	int r;

	sqlite3_reset(st);
	if ((r = bind_u64(st, 1, level)) != 0 ||
	    (r = bind_u64(st, 2, index)) != 0 ||
	    (r = bind_blob(st, 3, hash, MERKLE_HASH_LEN)) != 0)
		return err_set(e, r, "cannot store a transparency log node");
	return step_done(sqlite3_db_handle(st), st, e, "storing a "
	    "transparency log node");
}

/*
 * Inside the transaction that brings the schema to version 3: appends
 * a leaf for every stored event, in the order of tlog_backfill_sql, and
 * stores the nodes they complete.
 */
static int
tlog_backfill(sqlite3 *db, struct err_ctx *e)
{
	sqlite3_stmt *sel = NULL, *leaf_ins = NULL, *node_ins = NULL;
	struct merkle_frontier f;
	uint8_t leaf[MERKLE_HASH_LEN], hash[32];
	const char *account;
	uint64_t seq;
	int r, rc;

	merkle_frontier_init(&f);
	if ((r = prepare(db, tlog_backfill_sql, &sel, e)) != 0 ||
	    (r = prepare(db, stmt_sql[STMT_TLOG_LEAF_INSERT], &leaf_ins,
	    e)) != 0 ||
	    (r = prepare(db, stmt_sql[STMT_TLOG_NODE_INSERT], &node_ins,
	    e)) != 0)
		goto out;
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		account = col_str(sel, 0);
		seq = col_u64(sel, 1);
		if ((r = col_hash(sel, 2, hash, e, account, seq)) != 0)
			goto out;
		if ((r = tlog_leaf_hash(account, seq, hash, leaf)) != 0) {
			r = err_set(e, r, "cannot compute the transparency log "
			    "leaf of event %llu of '%s'",
			    (unsigned long long)seq, account);
			goto out;
		}
		sqlite3_reset(leaf_ins);
		if ((r = bind_u64(leaf_ins, 1, f.size)) != 0 ||
		    (r = bind_text(leaf_ins, 2, account)) != 0 ||
		    (r = bind_u64(leaf_ins, 3, seq)) != 0 ||
		    (r = bind_blob(leaf_ins, 4, hash, 32)) != 0) {
			r = err_set(e, r, "cannot add a transparency log leaf");
			goto out;
		}
		if ((r = step_done(db, leaf_ins, e, "adding the transparency "
		    "log leaves")) != 0 ||
		    (r = merkle_frontier_append(&f, leaf, backfill_node_write,
		    node_ins, e)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(db, e, "reading the events for "
	    "the transparency log");
 out:
	sqlite3_finalize(sel);
	sqlite3_finalize(leaf_ins);
	sqlite3_finalize(node_ins);
	return r;
}

/*
 * Creates path mode 0600 when it does not exist, whatever the umask:
 * SQLite gives a database's -wal and -shm files the mode of the database
 * file, so none of them is readable by others.  An existing file is left
 * as it is.
 */
static int
db_file_create(const char *path, struct err_ctx *e)
{
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
	    S_IRUSR | S_IWUSR);
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		return err_set(e, ERR_IO, "cannot create database %s: %s",
		    path, strerror(errno));
	}
	/* The umask may have taken bits away from 0600. */
	if (fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
		r = err_set(e, ERR_IO, "cannot set mode 0600 on database %s: "
		    "%s", path, strerror(errno));
		close(fd);
		unlink(path);
		return r;
	}
	if (close(fd) != 0)
		return err_set(e, ERR_IO, "cannot create database %s: %s",
		    path, strerror(errno));
	return 0;
}

/*
 * Inside the opening transaction: creates the version 1 tables where they
 * are missing, then runs every later step the database has not had.
 * ERR_CONFIG for a version this code does not know.
 */
static int
schema_update(sqlite3 *db, const char *path, struct err_ctx *e)
{
	sqlite3_stmt *st = NULL;
	const char *text;
	char *end;
	long version;
	int r;

	if ((r = db_exec(db, schema_v1_sql, e, "creating the schema")) != 0 ||
	    (r = prepare(db, stmt_sql[STMT_SCHEMA_VERSION], &st, e)) != 0)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW ||
	    (text = (const char *)sqlite3_column_text(st, 0)) == NULL) {
		r = db_fail(db, e, "reading the schema version");
		goto out;
	}
	errno = 0;
	version = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || version < 1) {
		r = err_set(e, ERR_CONFIG, "database %s has the schema version "
		    "'%.32s', which devid-directory never writes: is it a "
		    "devid-directory database?", path, text);
		goto out;
	}
	if (version > SCHEMA_VERSION) {
		r = err_set(e, ERR_CONFIG, "database %s has schema version "
		    "%ld, newer than the %d this devid-directory knows: run "
		    "the devid-directory that wrote it, or a newer one", path,
		    version, SCHEMA_VERSION);
		goto out;
	}
	if (version < 2 && (r = db_exec(db, schema_v2_sql, e,
	    "updating the schema to version 2")) != 0)
		goto out;
	if (version < 3 && ((r = db_exec(db, schema_v3_sql, e,
	    "updating the schema to version 3")) != 0 ||
	    (r = tlog_backfill(db, e)) != 0))
		goto out;
	if (version < 4 && (r = db_exec(db, schema_v4_sql, e,
	    "updating the schema to version 4")) != 0)
		goto out;
	r = 0;
 out:
	sqlite3_finalize(st);
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
	.account_usage = sqlite_account_usage,
	.blob_put = sqlite_blob_put,
	.blob_usage = sqlite_blob_usage,
	.blob_get = sqlite_blob_get,
	.blob_expire = sqlite_blob_expire,
	.blob_exists = sqlite_blob_exists,
	.tlog_size = sqlite_tlog_size,
	.tlog_node = sqlite_tlog_node,
	.tlog_leaves = sqlite_tlog_leaves,
	.tlog_latest = sqlite_tlog_latest,
	.checkpoint_put = sqlite_checkpoint_put,
	.checkpoint_get = sqlite_checkpoint_get,
	.tlog_sequencer = sqlite_tlog_sequencer,
};

int
dir_store_sqlite_open(const char *path, struct dir_store **out,
    struct err_ctx *e)
{
	struct sqlite_store *st = NULL;
	struct sqlite_conn *c;
	int r = ERR_INTERNAL, key_ok = 0, locks_ok = 0;

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
	if (pthread_mutex_init(&st->write_lock, NULL) != 0) {
		pthread_mutex_destroy(&st->lock);
		r = err_set(e, ERR_INTERNAL, "cannot create a mutex");
		goto out;
	}
	locks_ok = 1;
	if ((r = db_file_create(path, e)) != 0 ||
	    (r = conn_get(st, &c, e)) != 0 ||
	    (r = tx_begin(c, e)) != 0)
		goto out;
	if ((r = schema_update(c->db, path, e)) != 0 ||
	    (r = tx_commit(c, e)) != 0) {
		tx_rollback(c);
		goto out;
	}
	*out = &st->head;
	st = NULL; /* transferred */
	r = 0;
 out:
	if (st != NULL) {
		if (locks_ok && key_ok) {
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

/* --- bulk copy: dump (dir-store.h) --- */

/* Runs sql on db and calls row(st, sink, e) for each row. */
static int
dump_rows(sqlite3 *db, const char *sql, const struct dir_dump_sink *sink,
    int (*row)(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e), struct err_ctx *e, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(db, sql, &st, e)) != 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = row(st, sink, e)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(db, e, what);
 out:
	sqlite3_finalize(st);
	return r;
}

static int
dump_account(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_account a = { col_str(st, 0), col_str(st, 1),
	    col_u64(st, 2) };

	return sink->account(sink->arg, &a, e);
}

static int
dump_event(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_event_row ev;
	int r;

	memset(&ev, 0, sizeof(ev));
	ev.account = col_str(st, 0);
	ev.seq = col_u64(st, 1);
	ev.time = col_u64(st, 2);
	ev.type = col_str(st, 3);
	if ((r = col_hash(st, 4, ev.prev, e, ev.account, ev.seq)) != 0 ||
	    (r = col_hash(st, 5, ev.hash, e, ev.account, ev.seq)) != 0)
		return r;
	ev.json = col_str(st, 6);
	return sink->event(sink->arg, &ev, e);
}

static int
dump_device(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_device d = { col_str(st, 0), col_str(st, 1),
	    sqlite3_column_int(st, 2) != 0, col_str(st, 3),
	    sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4),
	    col_u64(st, 5) };

	return sink->device(sink->arg, &d, e);
}

static int
dump_nonce(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_nonce n = { col_str(st, 0), sqlite3_column_blob(st, 1),
	    (size_t)sqlite3_column_bytes(st, 1), col_u64(st, 2) };

	return sink->nonce(sink->arg, &n, e);
}

static int
dump_message(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_message m = { col_u64(st, 0), col_str(st, 1),
	    sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
	    col_str(st, 3), col_u64(st, 4) };

	return sink->message(sink->arg, &m, e);
}

static int
dump_queue(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_queue q = { col_u64(st, 0), col_str(st, 1),
	    col_u64(st, 2), col_str(st, 3),
	    (const char *)sqlite3_column_text(st, 4), col_u64(st, 5) };

	return sink->queue(sink->arg, &q, e);
}

static int
dump_usage(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->usage(sink->arg, col_str(st, 0), col_u64(st, 1), e);
}

static int
dump_queue_last(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->queue_last(sink->arg, col_u64(st, 0), e);
}

static int
dump_tlog_leaf(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	uint8_t hash[32];
	const char *account = col_str(st, 1);
	uint64_t seq = col_u64(st, 2);
	int r;

	if ((r = col_hash(st, 3, hash, e, account, seq)) != 0)
		return r;
	return sink->tlog_leaf(sink->arg, col_u64(st, 0), account, seq, hash,
	    e);
}

static int
dump_checkpoint(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->checkpoint(sink->arg, col_u64(st, 0), col_str(st, 1), e);
}

static int
dump_blob(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_blob b = { col_str(st, 0), col_str(st, 1),
	    col_str(st, 2), col_u64(st, 3), col_u64(st, 4), col_u64(st, 5),
	    sqlite3_column_int(st, 6) != 0 };

	return sink->blob(sink->arg, &b, e);
}

static int
dump_blob_link(sqlite3_stmt *st, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->blob_link(sink->arg, col_u64(st, 0), col_str(st, 1), e);
}

int
dir_store_sqlite_dump(const char *path, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	/* Bytewise order, as the PostgreSQL store lists with "C". */
	static const struct {
		const char *sql;
		int (*row)(sqlite3_stmt *, const struct dir_dump_sink *,
		    struct err_ctx *);
		const char *what;
	} parts[] = {
		{ "SELECT name, pw_hash, created FROM accounts ORDER BY name",
		    dump_account, "reading the accounts" },
		{ "SELECT account, seq, time, type, prev, hash, json FROM "
		    "events ORDER BY account, seq", dump_event,
		    "reading the account logs" },
		{ "SELECT device, account, active, record, sig_pub, "
		    "added_time FROM devices ORDER BY account, device",
		    dump_device, "reading the devices" },
		{ "SELECT device, nonce, expires FROM nonces ORDER BY "
		    "device, nonce", dump_nonce, "reading the login nonces" },
		{ "SELECT id, sender, msg_id, envelope, refs FROM messages "
		    "ORDER BY id", dump_message, "reading the messages" },
		{ "SELECT seq, device, message, sender, account, size FROM "
		    "queue ORDER BY seq", dump_queue, "reading the queues" },
		{ "SELECT account, bytes FROM account_usage ORDER BY account",
		    dump_usage, "reading the account usage" },
		/* AUTOINCREMENT keeps the highest seq ever given. */
		{ "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE "
		    "name = 'queue'), 0), COALESCE((SELECT MAX(seq) FROM "
		    "queue), 0))", dump_queue_last,
		    "reading the queue counter" },
		{ "SELECT idx, account, seq, hash FROM tlog_leaves ORDER BY "
		    "idx", dump_tlog_leaf, "reading the transparency log" },
		{ "SELECT size, note FROM tlog_checkpoint", dump_checkpoint,
		    "reading the checkpoint" },
		{ "SELECT hash, device, account, size, created, expires, "
		    "linked FROM blobs ORDER BY hash", dump_blob,
		    "reading the blobs" },
		{ "SELECT message, hash FROM blob_links ORDER BY message, "
		    "hash", dump_blob_link, "reading the links to blobs" },
	};
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *text;
	char want[16];
	size_t i;
	int r = ERR_IO;

	return_val_if_fail(path != NULL && sink != NULL, ERR_INVALID_ARG);
	snprintf(want, sizeof(want), "%d", SCHEMA_VERSION);
	if (access(path, F_OK) != 0)
		return err_set(e, ERR_NOT_FOUND, "cannot open database %s: %s",
		    path, strerror(errno));
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = err_set(e, ERR_IO, "cannot open database %s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
	/* One snapshot from the first read to the last. */
	if ((r = db_exec(db, "BEGIN", e, "starting a read")) != 0)
		goto out;
	if (sqlite3_prepare_v2(db, stmt_sql[STMT_SCHEMA_VERSION], -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
	    (text = (const char *)sqlite3_column_text(st, 0)) == NULL) {
		r = err_set(e, ERR_CONFIG, "%s is not a devid-directory "
		    "database: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (strcmp(text, want) != 0) {
		r = err_set(e, ERR_CONFIG, "database %s has schema version "
		    "%.32s; this devid-directory copies version %d: open it "
		    "once with this devid-directory (account list) to bring "
		    "it up to date", path, text, SCHEMA_VERSION);
		goto out;
	}
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		/* A sink written before the tree or the blobs takes no
		 * part of them. */
		if ((parts[i].row == dump_tlog_leaf && sink->tlog_leaf ==
		    NULL) || (parts[i].row == dump_checkpoint &&
		    sink->checkpoint == NULL) || (parts[i].row == dump_blob &&
		    sink->blob == NULL) || (parts[i].row == dump_blob_link &&
		    sink->blob_link == NULL))
			continue;
		if ((r = dump_rows(db, parts[i].sql, sink, parts[i].row, e,
		    parts[i].what)) != 0)
			goto out;
	}
	r = 0;
 out:
	sqlite3_finalize(st);
	if (db != NULL)
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	return r;
}
