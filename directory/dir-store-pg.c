/*
 * dir-store-pg.c - the PostgreSQL implementation of dir-store.h.
 *
 * Made for several devid-directory processes on one database, so every
 * invariant that SQLite gets from its single writer is kept here by the
 * database itself:
 * - an append to an account log locks the account's row (SELECT ... FOR
 *   UPDATE) before it reads the tail, so appends to one account are
 *   serialised across processes; the (account, seq) key backs that up,
 *   and a conflict on it is ERR_CHAIN like a moved tail;
 * - a login nonce is single-use through its (device, nonce) key;
 * - the queue of one device is written under a transaction-level
 *   advisory lock on that device, so its entries commit in the order of
 *   their seq (a reader that saw seq N never later finds a smaller one)
 *   and its limits are counted without a concurrent writer; an account's
 *   quota is one row updated in place;
 * - the global transparency log takes one leaf per appended event: an
 *   append takes the transaction-level advisory lock (PG_LOCK_TLOG, 0)
 *   first thing, before it reads the tail of the tree or of the account
 *   log, so appends of every process go one at a time, their leaves
 *   follow the order in which they commit and no index is used twice;
 *   the frontier (the O(log n) stored nodes a new leaf needs) is read in
 *   one query;
 * - the process that makes checkpoints is the one that holds the session
 *   lock (PG_LOCK_SEQUENCER, 0) on a connection kept for that alone;
 *   a stored checkpoint is replaced only by one at least as large, in one
 *   statement;
 * - a serialization failure or a deadlock rolls back and runs the
 *   operation again a few times (an append gives ERR_CHAIN instead: its
 *   caller rebuilds the event and retries).
 *
 * Transactions run at READ COMMITTED (each statement sees what committed
 * before it, and the locks above order the writers); devices_active reads
 * in one REPEATABLE READ snapshot.
 *
 * Connections: a small pool; an operation takes one from a free list (or
 * opens one), prepares each statement once on it, and gives it back.  A
 * connection that broke is closed instead of given back, and the
 * operation that saw it break fails with ERR_NETWORK (the server answers
 * 503); the next operation opens a new one.  After a failed attempt to
 * connect, operations fail at once for PG_RECONNECT_PAUSE_MS instead of
 * each waiting for a server that is not there.  A free connection that the
 * server closed meanwhile (a restart, a failover) is noticed before it
 * is used and replaced.  Messages name the database
 * and the server but never the password a connection string may carry.
 *
 * The schema is a list of numbered migrations recorded in
 * schema_migrations, applied at open under an advisory lock so that
 * several processes starting together do not race.
 *
 * Changes across processes: a write that another process's long-polls or
 * caches must hear of sends pg_notify() on the channel "devid" inside its
 * transaction, so the notification goes out on commit and never for a
 * rollback.  Its payload is "INSTANCE KIND NAMES": the random id of the
 * sending store (a store ignores its own: it woke its waiters itself),
 * then "log ACCOUNT" (the account's log grew), "inbox DEVICE..." (those
 * devices' queues grew; at most PG_NOTIFY_DEVICES per notification) or
 * "device DEVICE" (revoked: its sessions ended).  watch() starts a thread
 * with a connection of its own that LISTENs on the channel; every time it
 * (re)connects it reports DIR_CHANGE_ALL, since whatever committed while
 * it was away was not heard.  Anyone who may connect to the database may
 * notify on the channel, so a payload is checked like any input and one
 * that does not parse is dropped.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dir-store.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

/* How often an operation runs again after a serialization failure. */
#define PG_RETRIES 5
/* After a failed connection attempt, how long operations fail at once
 * rather than each wait for a server that is not there. */
#define PG_RECONNECT_PAUSE_MS 500
/* Connection timeout unless the connection string sets one. */
#define PG_CONNECT_TIMEOUT_S "10"
/* The advisory lock that migrations run under ("devi"). */
#define PG_MIGRATION_LOCK 0x64657669
/* Classes of the transaction-level advisory locks (first key). */
#define PG_LOCK_SESSIONS 1
#define PG_LOCK_QUEUE 2
/* The transparency log: every append holds (PG_LOCK_TLOG, 0) for its
 * transaction, so leaves go in one at a time in commit order; the
 * process that makes checkpoints holds (PG_LOCK_SEQUENCER, 0) for its
 * session on a connection of its own. */
#define PG_LOCK_TLOG 3
#define PG_LOCK_SEQUENCER 4
/* Blobs: blob_put holds (PG_LOCK_BLOB_QUOTA, account) while it checks
 * and adds to the account's blobs; blob_expire holds (PG_LOCK_BLOBS, 0)
 * exclusively and message_put, while it links blobs, shared, so that a
 * blob is never removed between being found kept and being linked. */
#define PG_LOCK_BLOB_QUOTA 5
#define PG_LOCK_BLOBS 6
/* A blob's hash: 64 hex digits. */
#define BLOB_HASH_HEX 64
#define PG_PARAMS_MAX 8
/* The notification channel and the bounds of one payload (PostgreSQL
 * takes up to 8000 bytes). */
#define PG_CHANNEL "devid"
#define PG_NOTIFY_DEVICES 100
#define PG_PAYLOAD_MAX (16 + 8 + PG_NOTIFY_DEVICES * (DIR_DEVICE_HEX + 1))
#define PG_INSTANCE_HEX 16
/* The listening connection: pauses between attempts to connect (doubling
 * up to the maximum), and TCP keepalives so that a peer gone silent is
 * noticed. */
#define PG_WATCH_PAUSE_MIN_MS 100
#define PG_WATCH_PAUSE_MAX_MS 5000
#define PG_WATCH_CONNECT_MS 10000

enum stmt_id {
	STMT_SCHEMA_VERSION,
	STMT_ACCOUNT_INSERT,
	STMT_ACCOUNT_GET,
	STMT_ACCOUNT_LIST,
	STMT_ACCOUNT_LOCK,
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
	STMT_DEVICE_XLOCK,
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
	STMT_NOTIFY,
	STMT_TLOG_LOCK,
	STMT_TLOG_SIZE,
	STMT_TLOG_NODE,
	STMT_TLOG_FRONTIER,
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
	STMT_BLOBS_LOCK,
	STMT_BLOBS_LOCK_SHARED,
	STMT_COUNT
};

/*
 * Parameters carry their type in the text (the server infers it from the
 * cast); results come back in binary, so hashes and keys need no
 * unescaping and integers are 8 bytes in network order.
 */
static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0)::bigint "
	    "FROM schema_migrations",
	[STMT_ACCOUNT_INSERT] = "INSERT INTO accounts(name, pw_hash, created) "
	    "VALUES ($1::text, $2::text, $3::bigint)",
	[STMT_ACCOUNT_GET] = "SELECT pw_hash, created FROM accounts "
	    "WHERE name = $1::text",
	/* Byte order, as SQLite sorts. */
	[STMT_ACCOUNT_LIST] = "SELECT name, created FROM accounts "
	    "ORDER BY name COLLATE \"C\"",
	[STMT_ACCOUNT_LOCK] = "SELECT 1 FROM accounts WHERE name = $1::text "
	    "FOR UPDATE",
	[STMT_LOG_TAIL] = "SELECT e.seq, e.hash FROM accounts a LEFT JOIN "
	    "LATERAL (SELECT seq, hash FROM events WHERE account = a.name "
	    "ORDER BY seq DESC LIMIT 1) e ON true WHERE a.name = $1::text",
	[STMT_LOG_EVENTS] = "SELECT seq, type, json FROM events "
	    "WHERE account = $1::text AND seq > $2::bigint AND "
	    "seq <= $3::bigint ORDER BY seq LIMIT $4::bigint",
	[STMT_EVENT_INSERT] = "INSERT INTO events(account, seq, time, type, "
	    "prev, hash, json) VALUES ($1::text, $2::bigint, $3::bigint, "
	    "$4::text, $5::bytea, $6::bytea, $7::text)",
	[STMT_DEVICE_OWNER] = "SELECT account, active FROM devices "
	    "WHERE device = $1::text",
	[STMT_DEVICES_COUNT] = "SELECT COUNT(*) FROM devices WHERE "
	    "account = $1::text AND active",
	/* Changes no row for a device of another account or an active one:
	 * the caller checked both, so that is a concurrent add. */
	[STMT_DEVICE_UPSERT] = "INSERT INTO devices(device, account, active, "
	    "record, sig_pub, added_time) VALUES ($1::text, $2::text, true, "
	    "$3::text, $4::bytea, $5::bigint) ON CONFLICT (device) DO UPDATE "
	    "SET active = true, record = excluded.record, "
	    "sig_pub = excluded.sig_pub, added_time = excluded.added_time "
	    "WHERE devices.account = excluded.account AND NOT devices.active",
	[STMT_DEVICE_IS_ACTIVE] = "SELECT 1 FROM devices WHERE "
	    "device = $1::text AND account = $2::text AND active",
	[STMT_DEVICE_DEACTIVATE] = "UPDATE devices SET active = false "
	    "WHERE device = $1::text",
	[STMT_DEVICE_SESSIONS_END] = "DELETE FROM sessions WHERE "
	    "device = $1::text",
	[STMT_DEVICE_GET] = "SELECT account, active, sig_pub, added_time "
	    "FROM devices WHERE device = $1::text",
	[STMT_DEVICES_ACTIVE] = "SELECT device, record FROM devices WHERE "
	    "account = $1::text AND active ORDER BY device COLLATE \"C\"",
	/* Lock class $1 of device $2 until the transaction ends. */
	[STMT_DEVICE_XLOCK] = "SELECT pg_advisory_xact_lock($1::integer, "
	    "hashtext($2::text))",
	[STMT_SESSIONS_TRIM] = "DELETE FROM sessions WHERE device = $1::text "
	    "AND token_hash NOT IN (SELECT token_hash FROM sessions WHERE "
	    "device = $1::text ORDER BY expires DESC LIMIT $2::bigint)",
	[STMT_SESSION_INSERT] = "INSERT INTO sessions(token_hash, device, "
	    "account, expires) VALUES ($1::bytea, $2::text, $3::text, "
	    "$4::bigint)",
	[STMT_SESSION_GET] = "SELECT s.device, s.account, s.expires FROM "
	    "sessions s JOIN devices d ON d.device = s.device WHERE "
	    "s.token_hash = $1::bytea AND s.expires > $2::bigint AND d.active",
	[STMT_NONCE_INSERT] = "INSERT INTO nonces(device, nonce, expires) "
	    "VALUES ($1::text, $2::bytea, $3::bigint)",
	[STMT_SESSIONS_PURGE] = "DELETE FROM sessions WHERE "
	    "expires <= $1::bigint",
	[STMT_NONCES_PURGE] = "DELETE FROM nonces WHERE expires <= $1::bigint",
	[STMT_MESSAGE_INSERT] = "INSERT INTO messages(sender, msg_id, "
	    "envelope, refs) VALUES ($1::text, $2::bytea, $3::text, "
	    "$4::bigint) RETURNING id",
	[STMT_DEVICE_ACCOUNT] = "SELECT account FROM devices "
	    "WHERE device = $1::text",
	[STMT_QUEUE_FROM_SENDER] = "SELECT COUNT(*) FROM queue WHERE "
	    "device = $1::text AND sender = $2::text",
	[STMT_QUEUE_COUNT] = "SELECT COUNT(*) FROM queue WHERE "
	    "device = $1::text",
	[STMT_QUEUE_INSERT] = "INSERT INTO queue(device, message, sender, "
	    "account, size) VALUES ($1::text, $2::bigint, $3::text, $4::text, "
	    "$5::bigint)",
	/* The row stays locked to the end of the transaction, and the sum
	 * returned includes every committed entry. */
	[STMT_USAGE_ADD] = "INSERT INTO account_usage(account, bytes) "
	    "VALUES ($1::text, $2::bigint) ON CONFLICT (account) DO UPDATE "
	    "SET bytes = account_usage.bytes + excluded.bytes RETURNING bytes",
	[STMT_USAGE_GET] = "SELECT bytes FROM account_usage WHERE "
	    "account = $1::text",
	[STMT_INBOX_GET] = "SELECT q.seq, m.envelope FROM queue q JOIN "
	    "messages m ON m.id = q.message WHERE q.device = $1::text AND "
	    "q.seq > $2::bigint ORDER BY q.seq LIMIT $3::bigint",
	[STMT_DROP_USAGE] = "UPDATE account_usage u SET bytes = u.bytes - "
	    "d.total FROM (SELECT account, SUM(size)::bigint AS total FROM "
	    "queue WHERE device = $1::text AND seq <= $2::bigint AND account "
	    "IS NOT NULL GROUP BY account) d WHERE u.account = d.account",
	[STMT_DROP_REFS] = "UPDATE messages m SET refs = m.refs - d.n FROM "
	    "(SELECT message, COUNT(*) AS n FROM queue WHERE "
	    "device = $1::text AND seq <= $2::bigint GROUP BY message) d "
	    "WHERE m.id = d.message",
	[STMT_DROP_QUEUE] = "DELETE FROM queue WHERE device = $1::text AND "
	    "seq <= $2::bigint",
	[STMT_MESSAGES_GC] = "DELETE FROM messages WHERE refs <= 0",
	[STMT_NOTIFY] = "SELECT pg_notify('" PG_CHANNEL "', $1::text)",
	[STMT_TLOG_LOCK] = "SELECT pg_advisory_xact_lock($1::integer, 0)",
	[STMT_TLOG_SIZE] = "SELECT COALESCE(MAX(idx) + 1, 0)::bigint FROM "
	    "tlog_leaves",
	[STMT_TLOG_NODE] = "SELECT hash FROM tlog_nodes WHERE "
	    "level = $1::integer AND idx = $2::bigint",
	/* The nodes of a frontier in one round trip: levels $1, indexes
	 * $2. */
	[STMT_TLOG_FRONTIER] = "SELECT n.level, n.idx, n.hash FROM tlog_nodes "
	    "n JOIN unnest($1::integer[], $2::bigint[]) AS w(level, idx) "
	    "ON n.level = w.level AND n.idx = w.idx",
	[STMT_TLOG_LEAF_INSERT] = "INSERT INTO tlog_leaves(idx, account, seq, "
	    "hash) VALUES ($1::bigint, $2::text, $3::bigint, $4::bytea)",
	[STMT_TLOG_NODE_INSERT] = "INSERT INTO tlog_nodes(level, idx, hash) "
	    "VALUES ($1::integer, $2::bigint, $3::bytea)",
	[STMT_TLOG_LEAVES] = "SELECT idx, account, seq, hash FROM tlog_leaves "
	    "WHERE idx >= $1::bigint AND idx < $2::bigint ORDER BY idx",
	/* An account's leaves follow its seqs: the last one below the size
	 * has the largest seq. */
	[STMT_TLOG_LATEST] = "SELECT seq, idx FROM tlog_leaves WHERE "
	    "account = $1::text AND idx < $2::bigint ORDER BY idx DESC LIMIT 1",
	/* Changes no row for a smaller size: the caller says ERR_ROLLBACK.
	 * The conflict locks the row, so two puts cannot both pass. */
	[STMT_CHECKPOINT_PUT] = "INSERT INTO tlog_checkpoint(id, size, note) "
	    "VALUES (1, $1::bigint, $2::text) ON CONFLICT (id) DO UPDATE SET "
	    "size = excluded.size, note = excluded.note "
	    "WHERE tlog_checkpoint.size <= excluded.size",
	[STMT_CHECKPOINT_GET] = "SELECT size, note FROM tlog_checkpoint "
	    "WHERE id = 1",
	[STMT_BLOB_OWNER] = "SELECT device, expires FROM blobs WHERE hash = "
	    "$1::text",
	[STMT_BLOB_USAGE] = "SELECT COALESCE(SUM(size), 0)::bigint FROM blobs "
	    "WHERE account = $1::text",
	/* No row back when another transaction stored hash first. */
	[STMT_BLOB_INSERT] = "INSERT INTO blobs(hash, device, account, size, "
	    "created, expires, linked) VALUES ($1::text, $2::text, $3::text, "
	    "$4::bigint, $5::bigint, $6::bigint, false) ON CONFLICT (hash) "
	    "DO NOTHING RETURNING 1",
	/* The links of hash that a queue entry of device refers to, with
	 * the blob's row when it is still kept (the same for every row). */
	[STMT_BLOB_GET] = "SELECT b.size, b.expires, b.hash IS NOT NULL "
	    "FROM blob_links l JOIN queue q ON q.message = l.message "
	    "LEFT JOIN blobs b ON b.hash = l.hash WHERE l.hash = $1::text "
	    "AND q.device = $2::text LIMIT 1",
	/* Changes no row unless device uploaded hash and it is kept. */
	[STMT_BLOB_MARK_LINKED] = "UPDATE blobs SET linked = true WHERE "
	    "hash = $1::text AND device = $2::text",
	[STMT_BLOB_LINK_INSERT] = "INSERT INTO blob_links(message, hash) "
	    "VALUES ($1::bigint, $2::text) ON CONFLICT DO NOTHING",
	/* The three rules of blob_expire: expired ($1 = now), never linked
	 * and uploaded before $2, linked and no link left; at most $3. */
	[STMT_BLOB_EXPIRE] = "DELETE FROM blobs WHERE hash IN (SELECT hash "
	    "FROM blobs WHERE expires <= $1::bigint OR (NOT linked AND "
	    "created < $2::bigint) OR (linked AND NOT EXISTS (SELECT 1 FROM "
	    "blob_links l WHERE l.hash = blobs.hash)) ORDER BY hash "
	    "COLLATE \"C\" LIMIT $3::bigint) RETURNING hash",
	[STMT_BLOB_EXISTS] = "SELECT 1 FROM blobs WHERE hash = $1::text",
	[STMT_BLOBS_LOCK] = "SELECT pg_advisory_xact_lock($1::integer, 0)",
	[STMT_BLOBS_LOCK_SHARED] = "SELECT pg_advisory_xact_lock_shared("
	    "$1::integer, 0)",
};

/*
 * Migration N brings a database at version N - 1 to N; each runs once,
 * in the transaction that records it.  The numbers are the SQLite
 * store's schema versions, step for step: 1 is the schema as first
 * released, 2 adds inbox fairness (each queue entry's sender, account
 * and size, and the bytes queued per account), 3 the global
 * transparency log (its leaves, the stored nodes of its tree and the
 * latest checkpoint; migration_code[] adds the leaves of the events
 * stored before), 4 attachments: the blobs kept and the links of
 * messages to them.  A link goes with its message (ON DELETE CASCADE:
 * messages are removed with DELETE) but does not refer to the blob: a
 * link whose blob expired is what makes blob_get say ERR_GONE.
 */
static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE accounts ("
	"  name text PRIMARY KEY, pw_hash text NOT NULL,"
	"  created bigint NOT NULL);"
	"CREATE TABLE events ("
	"  account text NOT NULL REFERENCES accounts(name),"
	"  seq bigint NOT NULL, time bigint NOT NULL, type text NOT NULL,"
	"  prev bytea NOT NULL, hash bytea NOT NULL, json text NOT NULL,"
	"  PRIMARY KEY (account, seq));"
	"CREATE TABLE devices ("
	"  device text PRIMARY KEY,"
	"  account text NOT NULL REFERENCES accounts(name),"
	"  active boolean NOT NULL, record text NOT NULL,"
	"  sig_pub bytea NOT NULL, added_time bigint NOT NULL);"
	"CREATE INDEX devices_by_account ON devices(account, active, device);"
	"CREATE TABLE sessions ("
	"  token_hash bytea PRIMARY KEY, device text NOT NULL,"
	"  account text NOT NULL, expires bigint NOT NULL);"
	"CREATE INDEX sessions_by_device ON sessions(device, expires);"
	"CREATE INDEX sessions_by_expiry ON sessions(expires);"
	"CREATE TABLE nonces ("
	"  device text NOT NULL, nonce bytea NOT NULL,"
	"  expires bigint NOT NULL, PRIMARY KEY (device, nonce));"
	"CREATE INDEX nonces_by_expiry ON nonces(expires);"
	"CREATE TABLE messages ("
	"  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  sender text NOT NULL, msg_id bytea NOT NULL,"
	"  envelope text NOT NULL, refs bigint NOT NULL,"
	"  UNIQUE (sender, msg_id));"
	"CREATE INDEX messages_unreferenced ON messages(id) WHERE refs <= 0;"
	"CREATE TABLE queue ("
	"  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  device text NOT NULL,"
	"  message bigint NOT NULL REFERENCES messages(id));"
	"CREATE INDEX queue_by_device ON queue(device, seq);"
	"CREATE INDEX queue_by_message ON queue(message);",
	/* 2 */
	"ALTER TABLE queue ADD COLUMN sender text NOT NULL DEFAULT '',"
	"  ADD COLUMN account text, ADD COLUMN size bigint NOT NULL DEFAULT 0;"
	"UPDATE queue q SET sender = m.sender,"
	"  size = octet_length(m.envelope) FROM messages m"
	"  WHERE m.id = q.message;"
	"UPDATE queue q SET account = d.account FROM devices d"
	"  WHERE d.device = q.device;"
	"CREATE INDEX queue_by_sender ON queue(device, sender);"
	"CREATE TABLE account_usage ("
	"  account text PRIMARY KEY, bytes bigint NOT NULL);"
	"INSERT INTO account_usage(account, bytes)"
	"  SELECT account, SUM(size) FROM queue WHERE account IS NOT NULL"
	"  GROUP BY account;",
	/* 3 */
	"CREATE TABLE tlog_leaves ("
	"  idx bigint PRIMARY KEY, account text NOT NULL,"
	"  seq bigint NOT NULL, hash bytea NOT NULL, UNIQUE (account, seq));"
	"CREATE INDEX tlog_leaves_by_account ON tlog_leaves(account, idx);"
	"CREATE TABLE tlog_nodes ("
	"  level integer NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL,"
	"  PRIMARY KEY (level, idx));"
	"CREATE TABLE tlog_checkpoint ("
	"  id integer PRIMARY KEY CHECK (id = 1), size bigint NOT NULL,"
	"  note text NOT NULL);",
	/* 4 */
	"CREATE TABLE blobs ("
	"  hash text PRIMARY KEY, device text NOT NULL,"
	"  account text NOT NULL, size bigint NOT NULL,"
	"  created bigint NOT NULL, expires bigint NOT NULL,"
	"  linked boolean NOT NULL DEFAULT false);"
	"CREATE INDEX blobs_by_account ON blobs(account);"
	"CREATE INDEX blobs_by_expiry ON blobs(expires);"
	"CREATE TABLE blob_links ("
	"  message bigint NOT NULL REFERENCES messages(id)"
	"    ON DELETE CASCADE,"
	"  hash text NOT NULL, PRIMARY KEY (message, hash));"
	"CREATE INDEX blob_links_by_hash ON blob_links(hash, message);",
};

#define SCHEMA_VERSION (sizeof(migrations) / sizeof(migrations[0]))

struct pg_conn;

static int tlog_backfill(struct pg_conn *c, struct err_ctx *e);

/* What migration N runs after its SQL, in the same transaction (NULL:
 * nothing). */
static int (*const migration_code[SCHEMA_VERSION])(struct pg_conn *c,
    struct err_ctx *e) = {
	[2] = tlog_backfill,
};

struct pg_store;

/* One connection and the statements prepared on it. */
struct pg_conn {
	PGconn *db;
	struct pg_store *store;
	unsigned char prepared[STMT_COUNT];
	int retry;                      /* the last failure may pass on a
	                                 * second try */
	struct pg_conn *next;           /* in the free list */
};

struct pg_store {
	struct dir_store head;          /* first: cast target */
	char *conninfo;                 /* may hold a password: never shown */
	char where[160];                /* "database 'x' on host", for errors */
	pthread_mutex_t lock;           /* guards free, down_* */
	struct pg_conn *free;
	uint64_t down_until_ms;         /* no new attempt before (monotonic) */
	char down_msg[256];             /* why the last attempt failed */
	char instance[PG_INSTANCE_HEX + 1]; /* names this store's payloads */
	/* watch(): only the thread that calls watch changes these. */
	int watching;
	pthread_t watcher;
	int stop_fd[2];                 /* a byte written here stops it */
	dir_change_cb cb;
	void *cb_arg;
	/* tlog_sequencer(): the connection that holds (or tries for) the
	 * sequencer's lock, and whether it holds it. */
	pthread_mutex_t seq_lock;
	struct pg_conn *seq_c;
	int seq_held;
};

/* Parameters of one statement, in text format except byte strings. */
struct pg_args {
	int n;
	const char *v[PG_PARAMS_MAX];
	int len[PG_PARAMS_MAX];
	int fmt[PG_PARAMS_MAX];
	char num[PG_PARAMS_MAX][24];
	int bad;                        /* a value that cannot be sent */
};

static void watch_stop(struct pg_store *st);

static struct pg_store *
to_pg(struct dir_store *s)
{
	return (struct pg_store *)s;
}

static void
arg_text(struct pg_args *a, const char *s)
{
	if (a->n >= PG_PARAMS_MAX) {
		a->bad = ERR_INTERNAL;
		return;
	}
	a->v[a->n] = s;
	a->len[a->n] = 0;
	a->fmt[a->n] = 0;
	a->n++;
}

static void
arg_blob(struct pg_args *a, const void *p, size_t len)
{
	if (a->n >= PG_PARAMS_MAX || len > INT32_MAX) {
		a->bad = a->n >= PG_PARAMS_MAX ? ERR_INTERNAL : ERR_TOO_LARGE;
		return;
	}
	/* libpq sends a NULL value as SQL NULL: an empty string is "". */
	a->v[a->n] = p != NULL ? (const char *)p : "";
	a->len[a->n] = (int)len;
	a->fmt[a->n] = 1;
	a->n++;
}

static void
arg_u64(struct pg_args *a, uint64_t v)
{
	if (v > INT64_MAX) {
		a->bad = ERR_INVALID_ARG;
		return;
	}
	if (a->n >= PG_PARAMS_MAX) {
		a->bad = ERR_INTERNAL;
		return;
	}
	snprintf(a->num[a->n], sizeof(a->num[a->n]), "%llu",
	    (unsigned long long)v);
	arg_text(a, a->num[a->n]);
}

/* An integer column of a binary result; 0 for NULL. */
static uint64_t
col_u64(const PGresult *res, int row, int col)
{
	const unsigned char *p;
	int len, i;
	int64_t v = 0;

	if (PQgetisnull(res, row, col))
		return 0;
	p = (const unsigned char *)PQgetvalue(res, row, col);
	len = PQgetlength(res, row, col);
	if (len != 8 && len != 4 && len != 2 && len != 1)
		return 0;
	/* Sign-extend from the first byte. */
	v = (p[0] & 0x80) != 0 ? -1 : 0;
	for (i = 0; i < len; i++)
		v = (int64_t)(((uint64_t)v << 8) | p[i]);
	return v < 0 ? 0 : (uint64_t)v;
}

static const char *
col_text(const PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col);
}

/* The first line of a libpq message, without its newline. */
static void
msg_line(const char *m, char *out, size_t out_len)
{
	size_t n = m != NULL ? strcspn(m, "\n") : 0;

	if (n >= out_len)
		n = out_len - 1;
	if (n > 0)
		memcpy(out, m, n);
	out[n] = '\0';
}

/*
 * Turns a failed result (NULL is fine) of what into an error: ERR_NETWORK
 * for a lost connection, ERR_EXISTS (no message: the caller says what
 * exists) for a unique key taken, ERR_CHAIN for a serialization failure or
 * a deadlock (c->retry set), ERR_IO otherwise.
 */
static int
pg_fail(struct pg_conn *c, const PGresult *res, struct err_ctx *e,
    const char *what)
{
	const char *state = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[256];

	msg_line(primary != NULL ? primary : PQerrorMessage(c->db), msg,
	    sizeof(msg));
	if (PQstatus(c->db) != CONNECTION_OK ||
	    (state != NULL && (strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0))) {
		/* Do not give this connection back. */
		if (PQstatus(c->db) == CONNECTION_OK) {
			PQfinish(c->db);
			c->db = NULL;
		}
		return err_set(e, ERR_NETWORK, "lost the connection to "
		    "PostgreSQL (%s) while %s: %s", c->store->where, what,
		    msg[0] != '\0' ? msg : "connection closed");
	}
	if (state != NULL && strcmp(state, "23505") == 0)
		return ERR_EXISTS;
	if (state != NULL && (strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0)) {
		c->retry = 1;
		return err_set(e, ERR_CHAIN, "a concurrent change got in the way "
		    "while %s (%s): try again", what, msg);
	}
	return err_set(e, ERR_IO, "database error while %s: %s", what, msg);
}

static int
conn_broken(const struct pg_conn *c)
{
	return c->db == NULL || PQstatus(c->db) != CONNECTION_OK;
}

/* Runs sql (no parameters, no rows) outside the prepared statements. */
static int
pg_simple(struct pg_conn *c, const char *sql, struct err_ctx *e,
    const char *what)
{
	PGresult *res;
	int r = 0;

	if (conn_broken(c))
		return pg_fail(c, NULL, e, what);
	res = PQexec(c->db, sql);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK))
		r = pg_fail(c, res, e, what);
	PQclear(res);
	return r;
}

/*
 * Runs statement id with a, preparing it on c first when needed.  On
 * success *out (may be NULL: the result is dropped) gets the result, which
 * the caller PQclear()s; on failure nothing is left to free.
 */
static int
pg_run(struct pg_conn *c, enum stmt_id id, const struct pg_args *a,
    PGresult **out, struct err_ctx *e, const char *what)
{
	char name[16];
	PGresult *res;
	ExecStatusType status;
	int r;

	if (a != NULL && a->bad != 0)
		return err_set(e, a->bad, "a value out of range while %s",
		    what);
	if (conn_broken(c))
		return pg_fail(c, NULL, e, what);
	snprintf(name, sizeof(name), "devid_%d", (int)id);
	if (!c->prepared[id]) {
		res = PQprepare(c->db, name, stmt_sql[id], 0, NULL);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			r = pg_fail(c, res, e, "preparing a statement");
			PQclear(res);
			return r;
		}
		PQclear(res);
		c->prepared[id] = 1;
	}
	res = PQexecPrepared(c->db, name, a != NULL ? a->n : 0,
	    a != NULL ? a->v : NULL, a != NULL ? a->len : NULL,
	    a != NULL ? a->fmt : NULL, 1);
	status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		r = pg_fail(c, res, e, what);
		PQclear(res);
		return r;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

/* Runs a statement for its one row: ERR_NOT_FOUND (no message) when it
 * returned none; *out as pg_run(). */
static int
pg_row(struct pg_conn *c, enum stmt_id id, const struct pg_args *a,
    PGresult **out, struct err_ctx *e, const char *what)
{
	PGresult *res = NULL;
	int r;

	if ((r = pg_run(c, id, a, &res, e, what)) != 0)
		return r;
	if (PQntuples(res) < 1) {
		PQclear(res);
		return ERR_NOT_FOUND;
	}
	*out = res;
	return 0;
}

/* A one-row, one-integer query; 0 in *v when it returned no row. */
static int
pg_u64(struct pg_conn *c, enum stmt_id id, const struct pg_args *a,
    uint64_t *v, struct err_ctx *e, const char *what)
{
	PGresult *res = NULL;
	int r;

	*v = 0;
	if ((r = pg_row(c, id, a, &res, e, what)) == ERR_NOT_FOUND)
		return 0;
	if (r != 0)
		return r;
	*v = col_u64(res, 0, 0);
	PQclear(res);
	return 0;
}

/* --- connections --- */

static void
conn_free(struct pg_conn *c)
{
	if (c == NULL)
		return;
	if (c->db != NULL)
		PQfinish(c->db);
	free(c);
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Notices ("already exists, skipping") are not errors: not shown. */
static void
notice_drop(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* A new connection to st's database. */
static int
conn_open(struct pg_store *st, struct pg_conn **out, struct err_ctx *e)
{
	/* The connection string comes last: what it sets wins. */
	const char *const keys[] = { "connect_timeout",
	    "fallback_application_name", "dbname", NULL };
	const char *const vals[] = { PG_CONNECT_TIMEOUT_S, "devid-directory",
	    st->conninfo, NULL };
	struct pg_conn *c;
	char msg[256];
	uint64_t now = mono_ms();

	pthread_mutex_lock(&st->lock);
	if (now < st->down_until_ms) {
		snprintf(msg, sizeof(msg), "%s", st->down_msg);
		pthread_mutex_unlock(&st->lock);
		return err_set(e, ERR_NETWORK, "cannot connect to PostgreSQL "
		    "(%s): %s", st->where, msg);
	}
	pthread_mutex_unlock(&st->lock);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	c->store = st;
	c->db = PQconnectdbParams(keys, vals, 1);
	if (c->db == NULL) {
		free(c);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	if (PQstatus(c->db) != CONNECTION_OK) {
		msg_line(PQerrorMessage(c->db), msg, sizeof(msg));
		conn_free(c);
		pthread_mutex_lock(&st->lock);
		st->down_until_ms = mono_ms() + PG_RECONNECT_PAUSE_MS;
		snprintf(st->down_msg, sizeof(st->down_msg), "%s", msg);
		pthread_mutex_unlock(&st->lock);
		return err_set(e, ERR_NETWORK, "cannot connect to PostgreSQL "
		    "(%s): %s", st->where, msg);
	}
	PQsetNoticeProcessor(c->db, notice_drop, NULL);
	if (PQsetClientEncoding(c->db, "UTF8") != 0) {
		msg_line(PQerrorMessage(c->db), msg, sizeof(msg));
		conn_free(c);
		return err_set(e, ERR_IO, "cannot use UTF-8 with PostgreSQL "
		    "(%s): %s", st->where, msg);
	}
	*out = c;
	return 0;
}

/*
 * Whether free connection c can still be used.  The server sends nothing
 * on an idle connection unless it is closing it (a restart, a failover,
 * an administrator ending it): its farewell, then the end of the stream.
 * Anything waiting to be read means that, and is found without blocking
 * before an operation is spent on the connection.
 */
static int
conn_idle_ok(const struct pg_conn *c)
{
	struct pollfd p;

	if (conn_broken(c) || (p.fd = PQsocket(c->db)) < 0)
		return 0;
	p.events = POLLIN;
	p.revents = 0;
	return poll(&p, 1, 0) == 0;
}

/* A connection for one operation: a free one, or a new one. */
static int
conn_get(struct pg_store *st, struct pg_conn **out, struct err_ctx *e)
{
	struct pg_conn *c;

	for (;;) {
		pthread_mutex_lock(&st->lock);
		if ((c = st->free) != NULL)
			st->free = c->next;
		pthread_mutex_unlock(&st->lock);
		if (c == NULL)
			return conn_open(st, out, e);
		c->next = NULL;
		c->retry = 0;
		if (conn_idle_ok(c)) {
			*out = c;
			return 0;
		}
		conn_free(c);
	}
}

/* Gives c back (NULL is fine), or closes it when it broke or is inside
 * a transaction that could not be ended. */
static void
conn_put(struct pg_store *st, struct pg_conn *c)
{
	if (c == NULL)
		return;
	if (conn_broken(c) || PQtransactionStatus(c->db) != PQTRANS_IDLE) {
		conn_free(c);
		return;
	}
	pthread_mutex_lock(&st->lock);
	c->next = st->free;
	st->free = c;
	pthread_mutex_unlock(&st->lock);
}

/* Rolls back what c has open, if anything. */
static void
tx_rollback(struct pg_conn *c)
{
	if (!conn_broken(c) && PQtransactionStatus(c->db) != PQTRANS_IDLE)
		(void)pg_simple(c, "ROLLBACK", NULL, "rolling back");
}

typedef int (*tx_body)(struct pg_conn *c, void *arg, struct err_ctx *e);

/*
 * Runs body in one transaction started with begin and commits it; on
 * failure rolls back.  A serialization failure or a deadlock runs it
 * again (up to PG_RETRIES times) unless retry is 0.
 */
static int
pg_tx(struct pg_store *st, const char *begin, tx_body body, void *arg,
    int retry, struct err_ctx *e)
{
	struct pg_conn *c = NULL;
	int r, attempt;

	for (attempt = 0; ; attempt++) {
		if ((r = conn_get(st, &c, e)) != 0)
			return r;
		if ((r = pg_simple(c, begin, e, "starting a transaction")) ==
		    0 && (r = body(c, arg, e)) == 0)
			r = pg_simple(c, "COMMIT", e,
			    "committing a transaction");
		if (r != 0)
			tx_rollback(c);
		if (r != 0 && c->retry && retry && attempt < PG_RETRIES) {
			conn_put(st, c);
			err_clear(e);
			continue;
		}
		conn_put(st, c);
		return r;
	}
}

#define BEGIN_WRITE "BEGIN ISOLATION LEVEL READ COMMITTED"
#define BEGIN_SNAPSHOT "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

/* --- operations --- */

static void
pg_close(struct dir_store *s)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c, *next;

	if (st == NULL)
		return;
	watch_stop(st);
	for (c = st->free; c != NULL; c = next) {
		next = c->next;
		conn_free(c);
	}
	/* Ends the session, and with it the sequencer's lock. */
	conn_free(st->seq_c);
	pthread_mutex_destroy(&st->seq_lock);
	pthread_mutex_destroy(&st->lock);
	if (st->conninfo != NULL) {
		/* It may hold a password. */
		memset(st->conninfo, 0, strlen(st->conninfo));
		free(st->conninfo);
	}
	free(st);
}

static int
pg_health(struct dir_store *s, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c;
	uint64_t v;
	int r;

	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	if ((r = pg_u64(c, STMT_SCHEMA_VERSION, NULL, &v, e,
	    "reading the schema version")) == 0 && v == 0)
		r = err_set(e, ERR_IO, "the database (%s) has no schema",
		    st->where);
	conn_put(st, c);
	return r;
}

static int
pg_account_create(struct dir_store *s, const char *name, const char *pw_hash,
    uint64_t now, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	int r;

	arg_text(&a, name);
	arg_text(&a, pw_hash);
	arg_u64(&a, now);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	if ((r = pg_run(c, STMT_ACCOUNT_INSERT, &a, NULL, e,
	    "creating an account")) == ERR_EXISTS)
		r = err_set(e, ERR_EXISTS, "account '%s' already exists",
		    name);
	conn_put(st, c);
	return r;
}

static int
pg_account_get(struct dir_store *s, const char *name, char **pw_hash,
    uint64_t *created, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	char *h;
	int r;

	arg_text(&a, name);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, STMT_ACCOUNT_GET, &a, &res, e, "reading an account");
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "account '%s' does not exist",
		    name);
	if (r != 0)
		return r;
	if (pw_hash != NULL) {
		if ((h = strdup(col_text(res, 0, 0))) == NULL) {
			PQclear(res);
			return err_set(e, ERR_ALLOC, "out of memory");
		}
		*pw_hash = h;
	}
	if (created != NULL)
		*created = col_u64(res, 0, 1);
	PQclear(res);
	return 0;
}

static int
pg_account_list(struct dir_store *s, dir_account_cb cb, void *arg,
    struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c;
	PGresult *res = NULL;
	int r, i;

	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_run(c, STMT_ACCOUNT_LIST, NULL, &res, e, "listing accounts");
	conn_put(st, c);
	if (r != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++)
		r = cb(arg, col_text(res, i, 0), col_u64(res, i, 1));
	PQclear(res);
	return r;
}

/* The tail of account's log on c. */
static int
tail_read(struct pg_conn *c, const char *account, uint64_t *seq,
    uint8_t hash[32], struct err_ctx *e)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	arg_text(&a, account);
	if ((r = pg_row(c, STMT_LOG_TAIL, &a, &res, e,
	    "reading the log tail")) == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "account '%s' does not exist",
		    account);
	if (r != 0)
		return r;
	if (PQgetisnull(res, 0, 0)) {
		*seq = 0;
		memset(hash, 0, 32);
	} else if (PQgetlength(res, 0, 1) == 32) {
		*seq = col_u64(res, 0, 0);
		memcpy(hash, PQgetvalue(res, 0, 1), 32);
	} else {
		r = err_set(e, ERR_IO, "database error while reading the log "
		    "tail of '%s': a damaged hash", account);
	}
	PQclear(res);
	return r;
}

static int
pg_log_tail(struct dir_store *s, const char *account, uint64_t *seq,
    uint8_t hash[32], struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c;
	int r;

	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = tail_read(c, account, seq, hash, e);
	conn_put(st, c);
	return r;
}

static int
pg_log_events(struct dir_store *s, const char *account, uint64_t since,
    uint64_t upto, unsigned int limit, dir_event_cb cb, void *arg,
    struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r, i;

	arg_text(&a, account);
	arg_u64(&a, since > INT64_MAX ? INT64_MAX : since);
	arg_u64(&a, upto > INT64_MAX ? INT64_MAX : upto);
	arg_u64(&a, limit);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_run(c, STMT_LOG_EVENTS, &a, &res, e, "reading the log");
	conn_put(st, c);
	if (r != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++)
		r = cb(arg, col_u64(res, i, 0), col_text(res, i, 1),
		    col_text(res, i, 2));
	PQclear(res);
	return r;
}

/*
 * Inside an append's transaction: locks the account's row, so appends to
 * it wait for each other across processes, then checks that the tail is
 * still (ev->seq - 1, ev->prev).
 */
static int
tail_lock_check(struct pg_conn *c, const struct dir_event_row *ev,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	uint64_t seq;
	uint8_t hash[32];
	int r;

	arg_text(&a, ev->account);
	if ((r = pg_run(c, STMT_ACCOUNT_LOCK, &a, NULL, e,
	    "locking an account")) != 0 ||
	    (r = tail_read(c, ev->account, &seq, hash, e)) != 0)
		return r;
	if (seq + 1 != ev->seq || memcmp(hash, ev->prev, 32) != 0)
		return err_set(e, ERR_CHAIN, "the log of '%s' changed "
		    "meanwhile", ev->account);
	return 0;
}

static int
event_insert(struct pg_conn *c, const struct dir_event_row *ev,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	int r;

	arg_text(&a, ev->account);
	arg_u64(&a, ev->seq);
	arg_u64(&a, ev->time);
	arg_text(&a, ev->type);
	arg_blob(&a, ev->prev, 32);
	arg_blob(&a, ev->hash, 32);
	arg_text(&a, ev->json);
	if ((r = pg_run(c, STMT_EVENT_INSERT, &a, NULL, e,
	    "appending an event")) == ERR_EXISTS)
		r = err_set(e, ERR_CHAIN, "the log of '%s' changed meanwhile",
		    ev->account);
	return r;
}

/* --- the transparency log's tree --- */

/* The number of leaves, on c (in c's transaction when one is open). */
static int
tlog_size_read(struct pg_conn *c, uint64_t *size, struct err_ctx *e)
{
	return pg_u64(c, STMT_TLOG_SIZE, NULL, size, e,
	    "reading the transparency log size");
}

/* The stored node (level, index) on c: a merkle_node_fn (arg is c). */
static int
tlog_node_read(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct pg_conn *c = arg;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	arg_u64(&a, level);
	arg_u64(&a, index);
	if ((r = pg_row(c, STMT_TLOG_NODE, &a, &res, e,
	    "reading a transparency log node")) == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "the transparency log has no "
		    "node (%u, %llu)", level, (unsigned long long)index);
	if (r != 0)
		return r;
	if (PQgetlength(res, 0, 0) == MERKLE_HASH_LEN)
		memcpy(out, PQgetvalue(res, 0, 0), MERKLE_HASH_LEN);
	else
		r = err_set(e, ERR_IO, "transparency log node (%u, %llu) is "
		    "damaged: the database needs repair", level,
		    (unsigned long long)index);
	PQclear(res);
	return r;
}

/* The nodes of one frontier, read in one query. */
struct tlog_prefetch {
	unsigned int n;
	unsigned int level[MERKLE_PROOF_MAX];
	uint64_t index[MERKLE_PROOF_MAX];
	uint8_t hash[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	unsigned char found[MERKLE_PROOF_MAX];
};

/* A merkle_node_fn that serves the prefetched nodes (arg). */
static int
tlog_prefetch_get(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	const struct tlog_prefetch *p = arg;
	unsigned int i;

	for (i = 0; i < p->n; i++) {
		if (p->level[i] == level && p->index[i] == index &&
		    p->found[i]) {
			memcpy(out, p->hash[i], MERKLE_HASH_LEN);
			return 0;
		}
	}
	return err_set(e, ERR_IO, "the transparency log has no node (%u, "
	    "%llu) though its size needs it: the database needs repair",
	    level, (unsigned long long)index);
}

/*
 * The frontier of the tree of size leaves on c: its nodes (one per set
 * bit of size: level b, index (size >> b) - 1) fetched in one query,
 * then put together by merkle_frontier_load().
 */
static int
tlog_frontier_read(struct pg_conn *c, uint64_t size,
    struct merkle_frontier *f, struct err_ctx *e)
{
	struct tlog_prefetch p;
	struct pg_args a = { 0 };
	char levels[MERKLE_PROOF_MAX * 4 + 3];
	char indexes[MERKLE_PROOF_MAX * 21 + 3];
	size_t ll = 0, il = 0;
	PGresult *res = NULL;
	unsigned int b, i;
	int r, row;

	memset(&p, 0, sizeof(p));
	levels[ll++] = '{';
	indexes[il++] = '{';
	for (b = 64; b-- > 0;) {
		if ((size >> b & 1) == 0)
			continue;
		p.level[p.n] = b;
		p.index[p.n] = (size >> b) - 1;
		ll += (size_t)snprintf(levels + ll, sizeof(levels) - ll, "%s%u",
		    p.n > 0 ? "," : "", b);
		il += (size_t)snprintf(indexes + il, sizeof(indexes) - il,
		    "%s%llu", p.n > 0 ? "," : "",
		    (unsigned long long)p.index[p.n]);
		p.n++;
	}
	snprintf(levels + ll, sizeof(levels) - ll, "}");
	snprintf(indexes + il, sizeof(indexes) - il, "}");
	if (p.n > 0) {
		arg_text(&a, levels);
		arg_text(&a, indexes);
		if ((r = pg_run(c, STMT_TLOG_FRONTIER, &a, &res, e,
		    "reading the transparency log frontier")) != 0)
			return r;
		for (row = 0; row < PQntuples(res); row++) {
			for (i = 0; i < p.n; i++) {
				if (p.level[i] != col_u64(res, row, 0) ||
				    p.index[i] != col_u64(res, row, 1) ||
				    PQgetlength(res, row, 2) !=
				    MERKLE_HASH_LEN)
					continue;
				memcpy(p.hash[i], PQgetvalue(res, row, 2),
				    MERKLE_HASH_LEN);
				p.found[i] = 1;
			}
		}
		PQclear(res);
	}
	return merkle_frontier_load(f, size, tlog_prefetch_get, &p, e);
}

/* Stores a node an appended leaf completed: a merkle_put_fn (arg is c). */
static int
tlog_node_write(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct pg_conn *c = arg;
	struct pg_args a = { 0 };
	int r;

	arg_u64(&a, level);
	arg_u64(&a, index);
	arg_blob(&a, hash, MERKLE_HASH_LEN);
	if ((r = pg_run(c, STMT_TLOG_NODE_INSERT, &a, NULL, e,
	    "storing a transparency log node")) == ERR_EXISTS)
		r = err_set(e, ERR_IO, "transparency log node (%u, %llu) is "
		    "stored already: the tree and its leaves disagree, the "
		    "database needs repair", level, (unsigned long long)index);
	return r;
}

/* Inserts leaf index (event seq of account with hash) and stores the
 * nodes it completes in f, on c. */
static int
tlog_leaf_add(struct pg_conn *c, struct merkle_frontier *f,
    const char *account, uint64_t seq, const uint8_t hash[32],
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	uint8_t leaf[MERKLE_HASH_LEN];
	int r;

	if ((r = tlog_leaf_hash(account, seq, hash, leaf)) != 0)
		return err_set(e, r, "cannot compute the transparency log leaf "
		    "of event %llu of '%.128s'", (unsigned long long)seq,
		    account);
	arg_u64(&a, f->size);
	arg_text(&a, account);
	arg_u64(&a, seq);
	arg_blob(&a, hash, 32);
	if ((r = pg_run(c, STMT_TLOG_LEAF_INSERT, &a, NULL, e,
	    "appending to the transparency log")) == ERR_EXISTS)
		return err_set(e, ERR_IO, "the transparency log already has a "
		    "leaf for event %llu of '%.128s' or at index %llu: the "
		    "database needs repair", (unsigned long long)seq, account,
		    (unsigned long long)f->size);
	if (r != 0)
		return r;
	return merkle_frontier_append(f, leaf, tlog_node_write, c, e);
}

/*
 * First thing in an append's transaction: waits for the appends of
 * every process that got there first to end, so that the tail read
 * next is the tree's last leaf until this transaction ends.  Nothing
 * when the store has the tree off.
 */
static int
tlog_lock(struct pg_conn *c, struct err_ctx *e)
{
	struct pg_args a = { 0 };

	if (c->store->head.tlog_off)
		return 0;
	arg_u64(&a, PG_LOCK_TLOG);
	return pg_run(c, STMT_TLOG_LOCK, &a, NULL, e,
	    "waiting for the transparency log");
}

/* Inside an append's transaction, under tlog_lock(), after the event
 * went in: appends its leaf and stores the nodes it completes. */
static int
tlog_append(struct pg_conn *c, const struct dir_event_row *ev,
    struct err_ctx *e)
{
	struct merkle_frontier f;
	uint64_t size;
	int r;

	if (c->store->head.tlog_off)
		return 0;
	if ((r = tlog_size_read(c, &size, e)) != 0)
		return r;
	if ((r = tlog_frontier_read(c, size, &f, e)) != 0)
		return err_wrap(e, r, "cannot append to the transparency log: "
		    "%s", err_msg(e));
	return tlog_leaf_add(c, &f, ev->account, ev->seq, ev->hash, e);
}

/*
 * Inside a write's transaction: tells the other processes, on commit,
 * that kind ("log", "inbox" or "device") changed for names[0..n), at
 * most PG_NOTIFY_DEVICES names to a notification (see the top).
 */
static int
notify_change(struct pg_conn *c, const char *kind, const char *const *names,
    size_t n, struct err_ctx *e)
{
	char payload[PG_PAYLOAD_MAX + 1];
	struct pg_args a;
	size_t i = 0, k, len, nl;
	int r;

	while (i < n) {
		len = (size_t)snprintf(payload, sizeof(payload), "%s %s",
		    c->store->instance, kind);
		for (k = 0; k < PG_NOTIFY_DEVICES && i < n; k++, i++) {
			nl = strlen(names[i]);
			if (len + 1 + nl >= sizeof(payload)) {
				if (k == 0)
					return err_set(e, ERR_INTERNAL, "a "
					    "name too long to announce");
				break;
			}
			payload[len++] = ' ';
			memcpy(payload + len, names[i], nl + 1);
			len += nl;
		}
		memset(&a, 0, sizeof(a));
		arg_text(&a, payload);
		if ((r = pg_run(c, STMT_NOTIFY, &a, NULL, e,
		    "announcing a change")) != 0)
			return r;
	}
	return 0;
}

/* Inside log_append_add's transaction: dev may be added to account. */
static int
device_addable(struct pg_conn *c, const char *device, const char *account,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	arg_text(&a, device);
	if ((r = pg_row(c, STMT_DEVICE_OWNER, &a, &res, e,
	    "reading a device")) == ERR_NOT_FOUND)
		return 0;	/* never registered */
	if (r != 0)
		return r;
	if (strcmp(col_text(res, 0, 0), account) != 0)
		r = err_set(e, ERR_EXISTS, "device %.16s is registered to "
		    "another account", device);
	else if (col_u64(res, 0, 1) != 0)
		r = err_set(e, ERR_EXISTS, "device %.16s is already an active "
		    "device of '%s'", device, account);
	PQclear(res);
	return r;
}

struct append_add {
	const struct dir_event_row *ev;
	const struct dir_device_row *dev;
	unsigned int max_devices;
};

static int
append_add_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	const struct append_add *x = arg;
	const struct dir_event_row *ev = x->ev;
	const struct dir_device_row *dev = x->dev;
	struct pg_args a = { 0 }, u = { 0 };
	PGresult *res = NULL;
	uint64_t n;
	int r;

	arg_text(&a, ev->account);
	if ((r = tlog_lock(c, e)) != 0 ||
	    (r = tail_lock_check(c, ev, e)) != 0 ||
	    (r = device_addable(c, dev->device, ev->account, e)) != 0 ||
	    (r = pg_u64(c, STMT_DEVICES_COUNT, &a, &n, e,
	    "counting devices")) != 0)
		return r;
	if (n >= x->max_devices)
		return err_set(e, ERR_TOO_LARGE, "account '%s' already has %u "
		    "active devices, the most this directory allows: revoke "
		    "one first", ev->account, x->max_devices);
	if ((r = event_insert(c, ev, e)) != 0 ||
	    (r = tlog_append(c, ev, e)) != 0)
		return r;
	arg_text(&u, dev->device);
	arg_text(&u, ev->account);
	arg_text(&u, dev->record_json);
	arg_blob(&u, dev->sig_pub, dev->sig_pub_len);
	arg_u64(&u, ev->time);
	if ((r = pg_run(c, STMT_DEVICE_UPSERT, &u, &res, e,
	    "storing a device")) != 0)
		return r;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		r = err_set(e, ERR_EXISTS, "device %.16s was registered "
		    "meanwhile", dev->device);
	PQclear(res);
	if (r != 0)
		return r;
	return notify_change(c, "log", &ev->account, 1, e);
}

static int
pg_log_append_add(struct dir_store *s, const struct dir_event_row *ev,
    const struct dir_device_row *dev, unsigned int max_devices,
    struct err_ctx *e)
{
	struct append_add x = { ev, dev, max_devices };

	/* A conflict is ERR_CHAIN: the caller rebuilds and retries. */
	return pg_tx(to_pg(s), BEGIN_WRITE, append_add_body, &x, 0, e);
}

/* Runs statement id (no rows) with one text parameter. */
static int
exec_text(struct pg_conn *c, enum stmt_id id, const char *param,
    struct err_ctx *e, const char *what)
{
	struct pg_args a = { 0 };

	arg_text(&a, param);
	return pg_run(c, id, &a, NULL, e, what);
}

/* Runs statement id (no rows) with device and upto; *changed (may be
 * NULL) gets the number of rows it changed. */
static int
exec_device_upto(struct pg_conn *c, enum stmt_id id, const char *device,
    uint64_t upto, uint64_t *changed, struct err_ctx *e, const char *what)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	arg_text(&a, device);
	arg_u64(&a, upto);
	if ((r = pg_run(c, id, &a, &res, e, what)) != 0)
		return r;
	if (changed != NULL)
		*changed = strtoull(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

/*
 * Inside a transaction: removes device's queue entries with seq <= upto,
 * takes their sizes off their accounts' usage, and removes the envelopes
 * no queue refers to any more; *removed (may be NULL) gets the number of
 * entries.
 */
static int
queue_drop(struct pg_conn *c, const char *device, uint64_t upto,
    uint64_t *removed, struct err_ctx *e)
{
	int r;

	if ((r = exec_device_upto(c, STMT_DROP_USAGE, device, upto, NULL, e,
	    "counting an account's usage")) != 0 ||
	    (r = exec_device_upto(c, STMT_DROP_REFS, device, upto, NULL, e,
	    "acknowledging")) != 0 ||
	    (r = exec_device_upto(c, STMT_DROP_QUEUE, device, upto, removed,
	    e, "acknowledging")) != 0)
		return r;
	return pg_run(c, STMT_MESSAGES_GC, NULL, NULL, e,
	    "deleting delivered messages");
}

struct append_revoke {
	const struct dir_event_row *ev;
	const char *device;
};

static int
append_revoke_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	const struct append_revoke *x = arg;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	arg_text(&a, x->device);
	arg_text(&a, x->ev->account);
	if ((r = tlog_lock(c, e)) != 0 ||
	    (r = tail_lock_check(c, x->ev, e)) != 0)
		return r;
	if ((r = pg_row(c, STMT_DEVICE_IS_ACTIVE, &a, &res, e,
	    "reading a device")) == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "device %.16s is not an "
		    "active device of '%s'", x->device, x->ev->account);
	if (r != 0)
		return r;
	PQclear(res);
	if ((r = event_insert(c, x->ev, e)) != 0 ||
	    (r = tlog_append(c, x->ev, e)) != 0 ||
	    (r = exec_text(c, STMT_DEVICE_DEACTIVATE, x->device, e,
	    "revoking a device")) != 0 ||
	    (r = exec_text(c, STMT_DEVICE_SESSIONS_END, x->device, e,
	    "ending sessions")) != 0 ||
	    (r = queue_drop(c, x->device, INT64_MAX, NULL, e)) != 0 ||
	    (r = notify_change(c, "log", &x->ev->account, 1, e)) != 0)
		return r;
	return notify_change(c, "device", &x->device, 1, e);
}

static int
pg_log_append_revoke(struct dir_store *s, const struct dir_event_row *ev,
    const char *device, struct err_ctx *e)
{
	struct append_revoke x = { ev, device };

	return pg_tx(to_pg(s), BEGIN_WRITE, append_revoke_body, &x, 0, e);
}

static int
pg_device_get(struct dir_store *s, const char *device,
    struct dir_device_info *out, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r, n;

	arg_text(&a, device);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, STMT_DEVICE_GET, &a, &res, e, "reading a device");
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "device %.16s is not "
		    "registered", device);
	if (r != 0)
		return r;
	n = PQgetlength(res, 0, 2);
	if (n <= 0 || (size_t)n > sizeof(out->sig_pub)) {
		PQclear(res);
		return err_set(e, ERR_IO, "database error while reading "
		    "device %.16s: a damaged key", device);
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->account, sizeof(out->account), "%s",
	    col_text(res, 0, 0));
	out->active = col_u64(res, 0, 1) != 0;
	memcpy(out->sig_pub, PQgetvalue(res, 0, 2), (size_t)n);
	out->sig_pub_len = (size_t)n;
	out->added_time = col_u64(res, 0, 3);
	PQclear(res);
	return 0;
}

struct devices_active {
	const char *account;
	uint64_t *seq;
	uint8_t *hash;
	dir_device_cb cb;
	void *arg;
};

static int
devices_active_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	const struct devices_active *x = arg;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r, i;

	arg_text(&a, x->account);
	if ((r = tail_read(c, x->account, x->seq, x->hash, e)) != 0 ||
	    (r = pg_run(c, STMT_DEVICES_ACTIVE, &a, &res, e,
	    "listing devices")) != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++)
		r = x->cb(x->arg, col_text(res, i, 0), col_text(res, i, 1));
	PQclear(res);
	return r;
}

static int
pg_devices_active(struct dir_store *s, const char *account, uint64_t *seq,
    uint8_t hash[32], dir_device_cb cb, void *arg, struct err_ctx *e)
{
	struct devices_active x = { account, seq, hash, cb, arg };

	/* One snapshot: the devices and the tail belong together. */
	return pg_tx(to_pg(s), BEGIN_SNAPSHOT, devices_active_body, &x, 1, e);
}

/* Inside a transaction: takes lock class cls of device until its end. */
static int
device_xlock(struct pg_conn *c, int cls, const char *device,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };

	arg_u64(&a, (uint64_t)cls);
	arg_text(&a, device);
	return pg_run(c, STMT_DEVICE_XLOCK, &a, NULL, e, "locking a device");
}

struct session_put {
	const uint8_t *token_hash;
	const char *device;
	const char *account;
	uint64_t expires;
	unsigned int max_per_device;
};

static int
session_put_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	const struct session_put *x = arg;
	struct pg_args t = { 0 }, a = { 0 };
	int r;

	/* Keep the newest max_per_device - 1, then add this one. */
	arg_text(&t, x->device);
	arg_u64(&t, x->max_per_device - 1);
	arg_blob(&a, x->token_hash, 32);
	arg_text(&a, x->device);
	arg_text(&a, x->account);
	arg_u64(&a, x->expires);
	if ((r = device_xlock(c, PG_LOCK_SESSIONS, x->device, e)) != 0 ||
	    (r = pg_run(c, STMT_SESSIONS_TRIM, &t, NULL, e,
	    "ending old sessions")) != 0)
		return r;
	if ((r = pg_run(c, STMT_SESSION_INSERT, &a, NULL, e,
	    "storing a session")) == ERR_EXISTS)
		r = err_set(e, ERR_IO, "database error while storing a "
		    "session: its token is taken");
	return r;
}

static int
pg_session_put(struct dir_store *s, const uint8_t token_hash[32],
    const char *device, const char *account, uint64_t expires,
    unsigned int max_per_device, struct err_ctx *e)
{
	struct session_put x = { token_hash, device, account, expires,
	    max_per_device };

	if (max_per_device == 0)
		return err_set(e, ERR_INVALID_ARG, "no sessions allowed");
	return pg_tx(to_pg(s), BEGIN_WRITE, session_put_body, &x, 1, e);
}

static int
pg_session_get(struct dir_store *s, const uint8_t token_hash[32],
    uint64_t now, struct dir_session_info *out, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r;

	arg_blob(&a, token_hash, 32);
	arg_u64(&a, now > INT64_MAX ? INT64_MAX : now);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, STMT_SESSION_GET, &a, &res, e, "reading a session");
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "session unknown or expired");
	if (r != 0)
		return r;
	memset(out, 0, sizeof(*out));
	snprintf(out->device, sizeof(out->device), "%s", col_text(res, 0, 0));
	snprintf(out->account, sizeof(out->account), "%s",
	    col_text(res, 0, 1));
	out->expires = col_u64(res, 0, 2);
	PQclear(res);
	return 0;
}

static int
pg_nonce_use(struct dir_store *s, const char *device, const uint8_t *nonce,
    size_t nonce_len, uint64_t expires, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	int r;

	arg_text(&a, device);
	arg_blob(&a, nonce, nonce_len);
	arg_u64(&a, expires);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	/* The key makes it single-use across every process. */
	if ((r = pg_run(c, STMT_NONCE_INSERT, &a, NULL, e,
	    "storing a nonce")) == ERR_EXISTS)
		r = err_set(e, ERR_REPLAY, "this login nonce was used before: "
		    "make a new random nonce for every login");
	conn_put(st, c);
	return r;
}

static int
purge_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	struct pg_args a = { 0 };
	int r;

	arg_u64(&a, *(const uint64_t *)arg);
	if ((r = pg_run(c, STMT_SESSIONS_PURGE, &a, NULL, e,
	    "purging sessions")) != 0)
		return r;
	return pg_run(c, STMT_NONCES_PURGE, &a, NULL, e, "purging nonces");
}

static int
pg_purge(struct dir_store *s, uint64_t now, struct err_ctx *e)
{
	uint64_t t = now > INT64_MAX ? INT64_MAX : now;

	return pg_tx(to_pg(s), BEGIN_WRITE, purge_body, &t, 1, e);
}

struct message_put {
	const char *sender;
	const uint8_t *msg_id;
	size_t msg_id_len;
	const char *envelope;
	const char *const *devices;
	size_t n;
	const struct dir_queue_limits *lim;
	const size_t *order;            /* devices in lock order */
	const char *const *blobs;
	size_t n_blobs;
	const size_t *blob_order;       /* blobs in lock order */
};

/*
 * Inside message_put's transaction, holding device's queue lock: queues
 * message id (size bytes) for device after checking the limits, and
 * counts it against the quota of the device's account.
 */
static int
queue_one(struct pg_conn *c, const struct message_put *x, const char *device,
    uint64_t id, uint64_t size, struct err_ctx *e)
{
	const struct dir_queue_limits *lim = x->lim;
	char account[DIR_ACCOUNT_MAX + 1];
	struct pg_args a = { 0 }, fs = { 0 }, q = { 0 }, ins = { 0 },
	    u = { 0 };
	PGresult *res = NULL;
	uint64_t n;
	int r, has_account = 0;

	arg_text(&a, device);
	if ((r = pg_row(c, STMT_DEVICE_ACCOUNT, &a, &res, e,
	    "reading a device")) == 0) {
		snprintf(account, sizeof(account), "%s", col_text(res, 0, 0));
		has_account = 1;
		PQclear(res);
	} else if (r != ERR_NOT_FOUND) {
		return r;
	}

	arg_text(&fs, device);
	arg_text(&fs, x->sender);
	if ((r = pg_u64(c, STMT_QUEUE_FROM_SENDER, &fs, &n, e,
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
	arg_text(&q, device);
	if ((r = pg_u64(c, STMT_QUEUE_COUNT, &q, &n, e,
	    "counting a queue")) != 0)
		return r;
	if (n >= lim->max_queue)
		return err_set(e, ERR_TOO_LARGE, "the queue of device %.16s "
		    "is full (%u messages): it must fetch and acknowledge "
		    "first", device, lim->max_queue);

	arg_text(&ins, device);
	arg_u64(&ins, id);
	arg_text(&ins, x->sender);
	arg_text(&ins, has_account ? account : NULL);
	arg_u64(&ins, size);
	if ((r = pg_run(c, STMT_QUEUE_INSERT, &ins, NULL, e,
	    "queueing a message")) != 0 || !has_account)
		return r;

	arg_text(&u, account);
	arg_u64(&u, size);
	if ((r = pg_u64(c, STMT_USAGE_ADD, &u, &n, e,
	    "counting an account's usage")) != 0)
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
 * Inside message_put's transaction: links message id to each blob of x,
 * each of which must be kept and uploaded by the sender (else ERR_DENIED
 * naming it), and marks them linked.  Holds off blob_expire until the
 * transaction ends, and locks the blobs' rows in one order everywhere,
 * so two messages with the same blobs do not deadlock.
 */
static int
link_all(struct pg_conn *c, const struct message_put *x, uint64_t id,
    struct err_ctx *e)
{
	struct pg_args lk = { 0 };
	PGresult *res = NULL;
	const char *hash;
	uint64_t changed;
	size_t i;
	int r;

	if (x->n_blobs == 0)
		return 0;
	arg_u64(&lk, PG_LOCK_BLOBS);
	if ((r = pg_run(c, STMT_BLOBS_LOCK_SHARED, &lk, NULL, e,
	    "locking the blobs")) != 0)
		return r;
	for (i = 0; i < x->n_blobs; i++) {
		struct pg_args m = { 0 }, l = { 0 };

		hash = x->blobs[x->blob_order[i]];
		arg_text(&m, hash);
		arg_text(&m, x->sender);
		if ((r = pg_run(c, STMT_BLOB_MARK_LINKED, &m, &res, e,
		    "linking a blob")) != 0)
			return r;
		changed = strtoull(PQcmdTuples(res), NULL, 10);
		PQclear(res);
		if (changed == 0)
			return err_set(e, ERR_DENIED, "blob %.64s is not a "
			    "blob this device uploaded, or it was removed: "
			    "upload it again before posting the message",
			    hash);
		arg_u64(&l, id);
		arg_text(&l, hash);
		if ((r = pg_run(c, STMT_BLOB_LINK_INSERT, &l, NULL, e,
		    "linking a blob")) != 0)
			return r;
	}
	return 0;
}

static int
message_put_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	const struct message_put *x = arg;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	uint64_t id, size = (uint64_t)strlen(x->envelope);
	size_t i;
	int r;

	arg_text(&a, x->sender);
	arg_blob(&a, x->msg_id, x->msg_id_len);
	arg_text(&a, x->envelope);
	arg_u64(&a, x->n);
	if ((r = pg_row(c, STMT_MESSAGE_INSERT, &a, &res, e,
	    "storing a message")) == ERR_EXISTS)
		return err_set(e, ERR_EXISTS, "this device already posted a "
		    "message with this id");
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_IO, "database error while storing a "
		    "message: no id");
	if (r != 0)
		return r;
	id = col_u64(res, 0, 0);
	PQclear(res);
	if ((r = link_all(c, x, id, e)) != 0)
		return r;
	/* The queue locks in one order everywhere, so two messages to the
	 * same devices do not deadlock. */
	for (i = 0; i < x->n; i++) {
		if ((r = device_xlock(c, PG_LOCK_QUEUE,
		    x->devices[x->order[i]], e)) != 0)
			return r;
	}
	for (i = 0; i < x->n; i++) {
		if ((r = queue_one(c, x, x->devices[i], id, size, e)) != 0)
			return r;
	}
	return notify_change(c, "inbox", x->devices, x->n, e);
}

/* qsort_r() comparison of two indexes into the devices array. */
static int
order_cmp(const void *a, const void *b, void *arg)
{
	const char *const *devices = arg;

	return strcmp(devices[*(const size_t *)a], devices[*(const size_t *)b]);
}

/* A new array of the indexes 0..n-1 of names in strcmp() order (caller
 * frees); NULL when out of memory. */
static size_t *
order_new(const char *const *names, size_t n)
{
	size_t *order, i;

	if ((order = calloc(n > 0 ? n : 1, sizeof(*order))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		order[i] = i;
	if (n > 0)
		qsort_r(order, n, sizeof(*order), order_cmp, (void *)names);
	return order;
}

static int
pg_message_put(struct dir_store *s, const char *sender_device,
    const uint8_t *msg_id, size_t msg_id_len, const char *envelope,
    const char *const *devices, size_t n, const char *const *blobs,
    size_t n_blobs, const struct dir_queue_limits *lim, struct err_ctx *e)
{
	struct message_put x = { sender_device, msg_id, msg_id_len, envelope,
	    devices, n, lim, NULL, blobs, n_blobs, NULL };
	size_t *order = NULL, *blob_order = NULL;
	int r;

	return_val_if_fail(lim != NULL, ERR_INVALID_ARG);
	return_val_if_fail(n_blobs == 0 || blobs != NULL, ERR_INVALID_ARG);
	if ((order = order_new(devices, n)) == NULL ||
	    (blob_order = order_new(blobs, n_blobs)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	x.order = order;
	x.blob_order = blob_order;
	r = pg_tx(to_pg(s), BEGIN_WRITE, message_put_body, &x, 1, e);
 out:
	free(order);
	free(blob_order);
	return r;
}

static int
pg_inbox_get(struct dir_store *s, const char *device, uint64_t after,
    unsigned int limit, size_t max_bytes, dir_queue_cb cb, void *arg,
    struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	size_t total = 0, len;
	int r, i;

	arg_text(&a, device);
	arg_u64(&a, after > INT64_MAX ? INT64_MAX : after);
	arg_u64(&a, limit);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_run(c, STMT_INBOX_GET, &a, &res, e, "reading the inbox");
	conn_put(st, c);
	if (r != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++) {
		len = (size_t)PQgetlength(res, i, 1);
		if (i > 0 && (total + len < total || total + len > max_bytes))
			break;
		total += len;
		r = cb(arg, col_u64(res, i, 0), col_text(res, i, 1));
	}
	PQclear(res);
	return r;
}

struct inbox_ack {
	const char *device;
	uint64_t upto;
	uint64_t *removed;
};

static int
inbox_ack_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	const struct inbox_ack *x = arg;

	return queue_drop(c, x->device, x->upto, x->removed, e);
}

static int
pg_inbox_ack(struct dir_store *s, const char *device, uint64_t upto,
    uint64_t *removed, struct err_ctx *e)
{
	struct inbox_ack x = { device, upto > INT64_MAX ? INT64_MAX : upto,
	    removed };

	return pg_tx(to_pg(s), BEGIN_WRITE, inbox_ack_body, &x, 1, e);
}

static int
pg_account_usage(struct dir_store *s, const char *account, uint64_t *bytes,
    struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	int r;

	arg_text(&a, account);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_u64(c, STMT_USAGE_GET, &a, bytes, e,
	    "reading an account's usage");
	conn_put(st, c);
	return r;
}

/* --- blobs --- */

struct blob_put {
	const char *hash;
	const char *device;
	const char *account;
	uint64_t size;
	uint64_t now;
	uint64_t expires;
	uint64_t quota;
	int existed;
	uint64_t kept_expires;           /* the kept row's, when existed */
};

/*
 * Inside blob_put's transaction: whether hash is kept.  With it, 0 with
 * x->existed and x->kept_expires (the kept row's time) set when
 * x->device uploaded it, ERR_EXISTS otherwise; *found 1 or 0.
 */
static int
blob_owner_check(struct pg_conn *c, struct blob_put *x, int *found,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	uint64_t kept_until;
	int r, same;

	*found = 0;
	arg_text(&a, x->hash);
	if ((r = pg_row(c, STMT_BLOB_OWNER, &a, &res, e,
	    "reading a blob")) == ERR_NOT_FOUND)
		return 0;
	if (r != 0)
		return r;
	same = strcmp(col_text(res, 0, 0), x->device) == 0;
	kept_until = col_u64(res, 0, 1);
	PQclear(res);
	*found = 1;
	if (!same)
		return err_set(e, ERR_EXISTS, "blob %.64s was uploaded by "
		    "another device", x->hash);
	x->existed = 1;
	x->kept_expires = kept_until;
	return 0;
}

static int
blob_put_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	struct blob_put *x = arg;
	struct pg_args u = { 0 }, ins = { 0 };
	PGresult *res = NULL;
	uint64_t used;
	int r, found, inserted;

	x->existed = 0;
	/* One upload of the account at a time checks and adds: the sum
	 * read after the lock includes every blob committed before. */
	if ((r = device_xlock(c, PG_LOCK_BLOB_QUOTA, x->account, e)) != 0 ||
	    (r = blob_owner_check(c, x, &found, e)) != 0 || found)
		return r;
	arg_text(&u, x->account);
	if ((r = pg_u64(c, STMT_BLOB_USAGE, &u, &used, e,
	    "reading an account's blobs")) != 0)
		return r;
	if (used > x->quota || x->size > x->quota - used)
		return err_set(e, ERR_QUOTA, "account '%s' has no room for "
		    "this blob: with its %llu bytes, the blobs kept for its "
		    "devices would take more than its quota of %llu bytes; "
		    "try again when older attachments have been fetched or "
		    "have expired", x->account, (unsigned long long)x->size,
		    (unsigned long long)x->quota);
	arg_text(&ins, x->hash);
	arg_text(&ins, x->device);
	arg_text(&ins, x->account);
	arg_u64(&ins, x->size);
	arg_u64(&ins, x->now);
	arg_u64(&ins, x->expires);
	if ((r = pg_run(c, STMT_BLOB_INSERT, &ins, &res, e,
	    "storing a blob")) != 0)
		return r;
	inserted = PQntuples(res) > 0;
	PQclear(res);
	if (inserted)
		return 0;
	/* A device of another account stored it first, and committed: this
	 * statement sees it. */
	if ((r = blob_owner_check(c, x, &found, e)) != 0)
		return r;
	if (!found)
		return err_set(e, ERR_IO, "database error while storing a "
		    "blob: its row is neither new nor kept");
	return 0;
}

static int
pg_blob_put(struct dir_store *s, const char *hash, const char *device,
    const char *account, uint64_t size, uint64_t now, uint64_t *expires,
    uint64_t quota, int *existed, struct err_ctx *e)
{
	struct blob_put x;
	int r;

	return_val_if_fail(hash != NULL && device != NULL && account != NULL &&
	    expires != NULL, ERR_INVALID_ARG);
	if (existed != NULL)
		*existed = 0;
	x = (struct blob_put){ hash, device, account, size, now, *expires,
	    quota, 0, 0 };
	r = pg_tx(to_pg(s), BEGIN_WRITE, blob_put_body, &x, 1, e);
	if (r == 0 && x.existed)
		*expires = x.kept_expires;
	if (r == 0 && existed != NULL)
		*existed = x.existed;
	return r;
}

/* Runs statement id, a one-row, one-integer query with one text
 * parameter, on a connection of its own: *v 0 without a row; *found (may
 * be NULL) 1 or 0. */
static int
pg_query_text(struct dir_store *s, enum stmt_id id, const char *param,
    uint64_t *v, int *found, struct err_ctx *e, const char *what)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r;

	*v = 0;
	if (found != NULL)
		*found = 0;
	arg_text(&a, param);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, id, &a, &res, e, what);
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return 0;
	if (r != 0)
		return r;
	*v = col_u64(res, 0, 0);
	if (found != NULL)
		*found = 1;
	PQclear(res);
	return 0;
}

static int
pg_blob_usage(struct dir_store *s, const char *account, uint64_t *bytes,
    struct err_ctx *e)
{
	return pg_query_text(s, STMT_BLOB_USAGE, account, bytes, NULL, e,
	    "reading an account's blobs");
}

static int
pg_blob_get(struct dir_store *s, const char *hash, const char *device,
    uint64_t *size, uint64_t *expires, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r;

	return_val_if_fail(hash != NULL && device != NULL, ERR_INVALID_ARG);
	arg_text(&a, hash);
	arg_text(&a, device);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, STMT_BLOB_GET, &a, &res, e, "reading a blob");
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_DENIED, "no message queued for device "
		    "%.16s names blob %.64s", device, hash);
	if (r != 0)
		return r;
	if (col_u64(res, 0, 2) == 0) {
		PQclear(res);
		return err_set(e, ERR_GONE, "blob %.64s expired and was "
		    "removed", hash);
	}
	if (size != NULL)
		*size = col_u64(res, 0, 0);
	if (expires != NULL)
		*expires = col_u64(res, 0, 1);
	PQclear(res);
	return 0;
}

struct blob_expire {
	uint64_t now;
	uint64_t cutoff;                /* never linked, uploaded before */
	uint64_t limit;
	char (*hash)[BLOB_HASH_HEX + 1]; /* the removed ones */
	size_t n;
};

/* qsort() comparison of two hashes: the order the callback gets them. */
static int
hash_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
blob_expire_body(struct pg_conn *c, void *arg, struct err_ctx *e)
{
	struct blob_expire *x = arg;
	struct pg_args lk = { 0 }, a = { 0 };
	PGresult *res = NULL;
	size_t n, i;
	int r;

	/* A retry starts from nothing. */
	free(x->hash);
	x->hash = NULL;
	x->n = 0;
	/* After the message_puts that link blobs have committed: their
	 * links are seen here, and the next ones wait for this one. */
	arg_u64(&lk, PG_LOCK_BLOBS);
	arg_u64(&a, x->now);
	arg_u64(&a, x->cutoff);
	arg_u64(&a, x->limit);
	if ((r = pg_run(c, STMT_BLOBS_LOCK, &lk, NULL, e,
	    "locking the blobs")) != 0 ||
	    (r = pg_run(c, STMT_BLOB_EXPIRE, &a, &res, e,
	    "removing blobs")) != 0)
		return r;
	n = (size_t)PQntuples(res);
	if (n > 0 && (x->hash = calloc(n, sizeof(*x->hash))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	for (i = 0; i < n; i++)
		snprintf(x->hash[i], sizeof(x->hash[i]), "%s",
		    col_text(res, (int)i, 0));
	x->n = n;
	PQclear(res);
	return 0;
}

static int
pg_blob_expire(struct dir_store *s, uint64_t now, uint64_t unlinked_s,
    unsigned int limit, int (*cb)(void *arg, const char *hash), void *arg,
    uint64_t *removed, struct err_ctx *e)
{
	struct blob_expire x;
	size_t i;
	int r;

	if (removed != NULL)
		*removed = 0;
	memset(&x, 0, sizeof(x));
	x.now = now > INT64_MAX ? INT64_MAX : now;
	x.cutoff = x.now > unlinked_s ? x.now - unlinked_s : 0;
	x.limit = limit > 0 ? limit : INT64_MAX;
	r = pg_tx(to_pg(s), BEGIN_WRITE, blob_expire_body, &x, 1, e);
	if (r == 0) {
		if (removed != NULL)
			*removed = x.n;
		if (x.n > 1)
			qsort(x.hash, x.n, sizeof(*x.hash), hash_cmp);
		for (i = 0; cb != NULL && i < x.n; i++)
			(void)cb(arg, x.hash[i]);
	}
	free(x.hash);
	return r;
}

static int
pg_blob_exists(struct dir_store *s, const char *hash, int *kept,
    struct err_ctx *e)
{
	uint64_t one;

	return pg_query_text(s, STMT_BLOB_EXISTS, hash, &one, kept, e,
	    "reading a blob");
}

/* --- the transparency log --- */

static int
pg_tlog_size(struct dir_store *s, uint64_t *size, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c;
	int r;

	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = tlog_size_read(c, size, e);
	conn_put(st, c);
	return r;
}

static int
pg_tlog_node(struct dir_store *s, unsigned int level, uint64_t index,
    uint8_t out[32], struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c;
	int r;

	if (level >= 64 || index > INT64_MAX)
		return err_set(e, ERR_NOT_FOUND, "the transparency log has no "
		    "node (%u, %llu)", level, (unsigned long long)index);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = tlog_node_read(c, level, index, out, e);
	conn_put(st, c);
	return r;
}

static int
pg_tlog_leaves(struct dir_store *s, uint64_t start, uint64_t end,
    dir_leaf_cb cb, void *arg, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r, i;

	if (start > end || end - start > 1024 || end > INT64_MAX)
		return err_set(e, ERR_INVALID_ARG, "transparency log leaves "
		    "%llu to %llu: at most 1024 leaves, start <= end",
		    (unsigned long long)start, (unsigned long long)end);
	arg_u64(&a, start);
	arg_u64(&a, end);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_run(c, STMT_TLOG_LEAVES, &a, &res, e,
	    "reading the transparency log");
	conn_put(st, c);
	if (r != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++) {
		if (PQgetlength(res, i, 3) != 32)
			r = err_set(e, ERR_IO, "transparency log leaf %llu is "
			    "damaged: the database needs repair",
			    (unsigned long long)col_u64(res, i, 0));
		else
			r = cb(arg, col_u64(res, i, 0), col_text(res, i, 1),
			    col_u64(res, i, 2),
			    (const uint8_t *)PQgetvalue(res, i, 3));
	}
	PQclear(res);
	return r;
}

static int
pg_tlog_latest(struct dir_store *s, const char *account, uint64_t size,
    uint64_t *seq, uint64_t *index, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r;

	arg_text(&a, account);
	arg_u64(&a, size > INT64_MAX ? INT64_MAX : size);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, STMT_TLOG_LATEST, &a, &res, e,
	    "reading the transparency log");
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "the first %llu leaves of the "
		    "transparency log hold no event of '%s'",
		    (unsigned long long)size, account);
	if (r != 0)
		return r;
	*seq = col_u64(res, 0, 0);
	*index = col_u64(res, 0, 1);
	PQclear(res);
	return 0;
}

static int
pg_checkpoint_put(struct dir_store *s, uint64_t size, const char *note,
    struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_args a = { 0 };
	struct pg_conn *c;
	PGresult *res = NULL;
	int r;

	arg_u64(&a, size);
	arg_text(&a, note);
	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	/* One statement: the size check and the write are one change. */
	r = pg_run(c, STMT_CHECKPOINT_PUT, &a, &res, e,
	    "storing a checkpoint");
	conn_put(st, c);
	if (r != 0)
		return r;
	if (strcmp(PQcmdTuples(res), "0") == 0)
		r = err_set(e, ERR_ROLLBACK, "a checkpoint of %llu leaves is "
		    "older than the one stored: not kept",
		    (unsigned long long)size);
	PQclear(res);
	return r;
}

static int
pg_checkpoint_get(struct dir_store *s, uint64_t *size, char **note,
    struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	struct pg_conn *c;
	PGresult *res = NULL;
	char *n;
	int r;

	if ((r = conn_get(st, &c, e)) != 0)
		return r;
	r = pg_row(c, STMT_CHECKPOINT_GET, NULL, &res, e,
	    "reading the checkpoint");
	conn_put(st, c);
	if (r == ERR_NOT_FOUND)
		return err_set(e, ERR_NOT_FOUND, "no checkpoint has been made "
		    "yet");
	if (r != 0)
		return r;
	if ((n = strdup(col_text(res, 0, 1))) == NULL) {
		PQclear(res);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	*size = col_u64(res, 0, 0);
	*note = n;
	PQclear(res);
	return 0;
}

/*
 * On st's sequencer connection (opened when missing): one try for the
 * sequencer's session lock.  *got gets whether it was taken.  A failure
 * closes the connection.
 */
static int
sequencer_try(struct pg_store *st, int *got, struct err_ctx *e)
{
	char sql[64];
	PGresult *res;
	int r = 0;

	if (st->seq_c == NULL && (r = conn_open(st, &st->seq_c, e)) != 0)
		return r;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d, 0)",
	    PG_LOCK_SEQUENCER);
	res = PQexec(st->seq_c->db, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQntuples(res) != 1) {
		r = pg_fail(st->seq_c, res, e, "trying for the sequencer "
		    "lock");
		conn_free(st->seq_c);
		st->seq_c = NULL;
	} else {
		*got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	}
	PQclear(res);
	return r;
}

/*
 * The one process that holds (PG_LOCK_SEQUENCER, 0) makes checkpoints.
 * Held on a connection of its own, it ends with that connection: one
 * that broke (the server restarted, an administrator ended it) is
 * noticed without a round trip (conn_idle_ok()), replaced, and the lock
 * tried again, once more on a fresh connection when the first try
 * fails.  While another process holds it, each call tries once.
 */
static int
pg_tlog_sequencer(struct dir_store *s, int *leader, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);
	int r = 0, got = 0;

	pthread_mutex_lock(&st->seq_lock);
	if (st->seq_c != NULL && !conn_idle_ok(st->seq_c)) {
		/* Lost, and the lock with it. */
		conn_free(st->seq_c);
		st->seq_c = NULL;
		st->seq_held = 0;
	}
	if (!st->seq_held) {
		if ((r = sequencer_try(st, &got, e)) != 0) {
			err_clear(e);
			r = sequencer_try(st, &got, e);
		}
		st->seq_held = r == 0 && got;
	}
	*leader = st->seq_held;
	pthread_mutex_unlock(&st->seq_lock);
	return r;
}

/*
 * Describes the database of conninfo in where, for messages: its name
 * and server, never its password.
 */
static void
describe(const char *conninfo, char *where, size_t where_len)
{
	PQconninfoOption *opts, *o;
	const char *db = NULL, *host = NULL, *port = NULL;

	snprintf(where, where_len, "the configured database");
	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return;
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
		else if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0 && host == NULL)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
	}
	snprintf(where, where_len, "database '%.40s' on %.80s%s%.8s",
	    db != NULL ? db : "(default)",
	    host != NULL ? host : "the default server",
	    port != NULL ? " port " : "", port != NULL ? port : "");
	PQconninfoFree(opts);
}

/*
 * On c, under the migration lock: brings the schema up to date.
 * ERR_CONFIG for a database written by a newer devid-directory.
 */
static int
schema_update(struct pg_conn *c, struct err_ctx *e)
{
	char sql[128];
	uint64_t version;
	size_t v;
	int r;

	if ((r = pg_simple(c, "BEGIN", e, "starting a transaction")) != 0)
		return r;
	if ((r = pg_simple(c, "CREATE TABLE IF NOT EXISTS schema_migrations "
	    "(version bigint PRIMARY KEY, applied timestamptz NOT NULL "
	    "DEFAULT now())", e, "creating the migrations table")) != 0 ||
	    (r = pg_u64(c, STMT_SCHEMA_VERSION, NULL, &version, e,
	    "reading the schema version")) != 0)
		goto out;
	if (version > SCHEMA_VERSION) {
		r = err_set(e, ERR_CONFIG, "%s has schema version %llu, newer "
		    "than the %zu this devid-directory knows: run the "
		    "devid-directory that wrote it, or a newer one",
		    c->store->where, (unsigned long long)version,
		    (size_t)SCHEMA_VERSION);
		goto out;
	}
	for (v = (size_t)version + 1; v <= SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations"
		    "(version) VALUES (%zu)", v);
		if ((r = pg_simple(c, migrations[v - 1], e,
		    "updating the schema")) != 0 ||
		    (migration_code[v - 1] != NULL &&
		    (r = migration_code[v - 1](c, e)) != 0) ||
		    (r = pg_simple(c, sql, e, "recording a migration")) != 0)
			goto out;
	}
	r = pg_simple(c, "COMMIT", e, "committing the schema");
 out:
	if (r != 0)
		tx_rollback(c);
	return r;
}

/*
 * Migration 3, on c inside its transaction: appends a leaf for every
 * stored event and stores the nodes they complete.  The events table
 * keeps no insertion order, so they go by time, where the time of an
 * event is the latest time of its log up to it (a clock that stepped
 * back never puts an account's events out of seq order), then account
 * and seq: the order of the SQLite store's version 3, so one directory
 * gives one tree on both.
 */
static int
tlog_backfill(struct pg_conn *c, struct err_ctx *e)
{
	struct merkle_frontier f;
	PGresult *res;
	int r = 0, i;

	res = PQexecParams(c->db, "SELECT account, seq, hash FROM (SELECT "
	    "account, seq, hash, MAX(time) OVER (PARTITION BY account ORDER BY "
	    "seq ROWS UNBOUNDED PRECEDING) AS t FROM events) x ORDER BY t, "
	    "account COLLATE \"C\", seq", 0, NULL, NULL, NULL, NULL, 1);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pg_fail(c, res, e, "reading the events for the "
		    "transparency log");
		PQclear(res);
		return r;
	}
	merkle_frontier_init(&f);
	for (i = 0; i < PQntuples(res) && r == 0; i++) {
		if (PQgetlength(res, i, 2) != 32)
			r = err_set(e, ERR_IO, "event %llu of '%.128s' has a "
			    "damaged hash column",
			    (unsigned long long)col_u64(res, i, 1),
			    col_text(res, i, 0));
		else
			r = tlog_leaf_add(c, &f, col_text(res, i, 0),
			    col_u64(res, i, 1),
			    (const uint8_t *)PQgetvalue(res, i, 2), e);
	}
	PQclear(res);
	return r;
}

/* --- changes made by other processes (watch) --- */

/*
 * Waits until fd (none when negative) is ready for events, at most
 * timeout_ms (negative: no limit): 1 when it is, 0 at the timeout, -1
 * when the store is stopping the watch.
 */
static int
watch_wait(struct pg_store *st, int fd, short events, int timeout_ms)
{
	struct pollfd p[2];
	int n;

	p[0].fd = st->stop_fd[0];
	p[0].events = POLLIN;
	p[1].fd = fd;
	p[1].events = events;
	for (;;) {
		p[0].revents = p[1].revents = 0;
		n = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[0].revents != 0)
			return -1;
		return n > 0 ? 1 : 0;
	}
}

/*
 * Runs sql (no rows) on the listening connection db without blocking the
 * stop: 0, or -1 when it failed, took longer than PG_WATCH_CONNECT_MS or
 * the watch is stopping.
 */
static int
watch_exec(struct pg_store *st, PGconn *db, const char *sql)
{
	PGresult *res;
	int ok = 1;

	if (!PQsendQuery(db, sql))
		return -1;
	for (;;) {
		while (PQisBusy(db)) {
			if (watch_wait(st, PQsocket(db), POLLIN,
			    PG_WATCH_CONNECT_MS) != 1 || !PQconsumeInput(db))
				return -1;
		}
		if ((res = PQgetResult(db)) == NULL)
			break;
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			ok = 0;
		PQclear(res);
	}
	return ok ? 0 : -1;
}

/*
 * A new connection that LISTENs on the channel, or NULL when connecting
 * failed or the watch is stopping.  Connects without blocking so that a
 * stop never waits for an unreachable server.
 */
static PGconn *
watch_connect(struct pg_store *st)
{
	/* The connection string comes last: what it sets wins. */
	const char *const keys[] = { "fallback_application_name",
	    "client_encoding", "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "dbname", NULL };
	const char *const vals[] = { "devid-directory", "UTF8", "1", "30",
	    "10", "3", st->conninfo, NULL };
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	uint64_t now, deadline = mono_ms() + PG_WATCH_CONNECT_MS;
	PGconn *db;
	int w;

	if ((db = PQconnectStartParams(keys, vals, 1)) == NULL)
		return NULL;
	while (PQstatus(db) != CONNECTION_BAD && ps != PGRES_POLLING_FAILED) {
		if (ps == PGRES_POLLING_OK) {
			PQsetNoticeProcessor(db, notice_drop, NULL);
			if (watch_exec(st, db, "LISTEN " PG_CHANNEL) != 0)
				break;
			return db;
		}
		if ((now = mono_ms()) >= deadline)
			break;
		w = watch_wait(st, PQsocket(db), ps == PGRES_POLLING_READING ?
		    POLLIN : POLLOUT, (int)(deadline - now));
		if (w < 0)
			break;
		if (w > 0)
			ps = PQconnectPoll(db);
	}
	PQfinish(db);
	return NULL;
}

static int
is_lower_hex(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	}
	return 1;
}

/*
 * Reports the change a payload describes (see the top), unless this store
 * sent it or it does not parse.
 */
static void
payload_dispatch(struct pg_store *st, const char *payload)
{
	char name[DIR_DEVICE_HEX + 1];
	enum dir_change what;
	const char *p = payload;
	size_t len;

	if (strlen(p) > PG_PAYLOAD_MAX || strlen(p) < PG_INSTANCE_HEX + 1 ||
	    !is_lower_hex(p, PG_INSTANCE_HEX) || p[PG_INSTANCE_HEX] != ' ' ||
	    strncmp(p, st->instance, PG_INSTANCE_HEX) == 0)
		return;
	p += PG_INSTANCE_HEX + 1;
	if (strncmp(p, "log ", 4) == 0) {
		p += 4;
		if (strlen(p) <= DIR_ACCOUNT_MAX && devrec_account_valid(p))
			st->cb(st->cb_arg, DIR_CHANGE_LOG, p);
		return;
	}
	if (strncmp(p, "inbox ", 6) == 0) {
		what = DIR_CHANGE_INBOX;
		p += 6;
	} else if (strncmp(p, "device ", 7) == 0) {
		what = DIR_CHANGE_DEVICE;
		p += 7;
	} else {
		return;
	}
	while (*p != '\0') {
		len = strcspn(p, " ");
		if (len != DIR_DEVICE_HEX || !is_lower_hex(p, len))
			return;
		memcpy(name, p, len);
		name[len] = '\0';
		st->cb(st->cb_arg, what, name);
		p += len;
		if (*p == ' ')
			p++;
	}
}

/*
 * The watch thread: keeps one listening connection and reports what it
 * hears.  After every (re)connection it reports DIR_CHANGE_ALL, since
 * notifications sent while it was away are lost; between failed attempts
 * it pauses, longer each time up to PG_WATCH_PAUSE_MAX_MS.
 */
static void *
watch_main(void *arg)
{
	struct pg_store *st = arg;
	PGconn *db = NULL;
	PGnotify *n;
	int pause_ms = PG_WATCH_PAUSE_MIN_MS;

	for (;;) {
		if (db == NULL) {
			if ((db = watch_connect(st)) == NULL) {
				if (watch_wait(st, -1, 0, pause_ms) < 0)
					break;
				pause_ms = pause_ms * 2 > PG_WATCH_PAUSE_MAX_MS ?
				    PG_WATCH_PAUSE_MAX_MS : pause_ms * 2;
				continue;
			}
			pause_ms = PG_WATCH_PAUSE_MIN_MS;
			st->cb(st->cb_arg, DIR_CHANGE_ALL, NULL);
		}
		/* Those read meanwhile too (LISTEN's answer may bring some). */
		while ((n = PQnotifies(db)) != NULL) {
			if (strcmp(n->relname, PG_CHANNEL) == 0)
				payload_dispatch(st, n->extra);
			PQfreemem(n);
		}
		if (watch_wait(st, PQsocket(db), POLLIN, -1) < 0)
			break;
		if (!PQconsumeInput(db) || PQstatus(db) != CONNECTION_OK) {
			/* Lost: reconnect, then everybody reads again. */
			PQfinish(db);
			db = NULL;
		}
	}
	if (db != NULL)
		PQfinish(db);
	return NULL;
}

/* Stops the watch thread, if any, and waits for it. */
static void
watch_stop(struct pg_store *st)
{
	ssize_t n;

	if (!st->watching)
		return;
	/* Never read: every wait of the thread sees it from now on. */
	n = write(st->stop_fd[1], "", 1);
	(void)n;
	pthread_join(st->watcher, NULL);
	close(st->stop_fd[0]);
	close(st->stop_fd[1]);
	st->watching = 0;
	st->cb = NULL;
	st->cb_arg = NULL;
}

static int
pg_watch(struct dir_store *s, dir_change_cb cb, void *arg, struct err_ctx *e)
{
	struct pg_store *st = to_pg(s);

	if (cb == NULL) {
		watch_stop(st);
		return 0;
	}
	if (st->watching)
		return err_set(e, ERR_EXISTS, "already listening for changes");
	if (pipe2(st->stop_fd, O_CLOEXEC) != 0)
		return err_set(e, ERR_INTERNAL, "cannot make a pipe: %s",
		    strerror(errno));
	st->cb = cb;
	st->cb_arg = arg;
	if (pthread_create(&st->watcher, NULL, watch_main, st) != 0) {
		close(st->stop_fd[0]);
		close(st->stop_fd[1]);
		st->cb = NULL;
		st->cb_arg = NULL;
		return err_set(e, ERR_INTERNAL, "cannot start the thread that "
		    "listens for changes");
	}
	st->watching = 1;
	return 0;
}

static const struct dir_store_ops pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.health = pg_health,
	.account_create = pg_account_create,
	.account_get = pg_account_get,
	.account_list = pg_account_list,
	.log_tail = pg_log_tail,
	.log_events = pg_log_events,
	.log_append_add = pg_log_append_add,
	.log_append_revoke = pg_log_append_revoke,
	.device_get = pg_device_get,
	.devices_active = pg_devices_active,
	.session_put = pg_session_put,
	.session_get = pg_session_get,
	.nonce_use = pg_nonce_use,
	.purge = pg_purge,
	.message_put = pg_message_put,
	.inbox_get = pg_inbox_get,
	.inbox_ack = pg_inbox_ack,
	.account_usage = pg_account_usage,
	.blob_put = pg_blob_put,
	.blob_usage = pg_blob_usage,
	.blob_get = pg_blob_get,
	.blob_expire = pg_blob_expire,
	.blob_exists = pg_blob_exists,
	.tlog_size = pg_tlog_size,
	.tlog_node = pg_tlog_node,
	.tlog_leaves = pg_tlog_leaves,
	.tlog_latest = pg_tlog_latest,
	.checkpoint_put = pg_checkpoint_put,
	.checkpoint_get = pg_checkpoint_get,
	.tlog_sequencer = pg_tlog_sequencer,
	.watch = pg_watch,
};

int
dir_store_pg_uri_check(const char *uri, struct err_ctx *e)
{
	PQconninfoOption *opts, *o;
	int r = 0;

	return_val_if_fail(uri != NULL, ERR_INVALID_ARG);
	if ((opts = PQconninfoParse(uri, NULL)) == NULL)
		return err_set(e, ERR_CONFIG, "not a PostgreSQL connection "
		    "string");
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    o->val[0] != '\0')
			r = err_set(e, ERR_CONFIG, "the database URI carries a "
			    "password, which every user of this machine can "
			    "read in the process list: leave it out and put it "
			    "in PGPASSFILE (~/.pgpass) or a service file");
	PQconninfoFree(opts);
	return r;
}

int
dir_store_pg_open(const char *uri, struct dir_store **out, struct err_ctx *e)
{
	struct pg_store *st = NULL;
	struct pg_conn *c = NULL;
	char *errmsg = NULL, lock[96], msg[256];
	uint8_t rnd[PG_INSTANCE_HEX / 2];
	PQconninfoOption *opts;
	int r = ERR_INTERNAL;

	return_val_if_fail(uri != NULL && out != NULL, ERR_INVALID_ARG);
	if ((opts = PQconninfoParse(uri, &errmsg)) == NULL) {
		/* libpq's message quotes no value of the string. */
		msg_line(errmsg, msg, sizeof(msg));
		PQfreemem(errmsg);
		return err_set(e, ERR_CONFIG, "not a PostgreSQL connection "
		    "string: %s", msg[0] != '\0' ? msg : "out of memory");
	}
	PQconninfoFree(opts);
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->conninfo = strdup(uri)) == NULL) {
		free(st);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	st->head.ops = &pg_ops;
	describe(uri, st->where, sizeof(st->where));
	if (crypto_random(rnd, sizeof(rnd)) != 0) {
		free(st->conninfo);
		free(st);
		return err_set(e, ERR_CRYPTO, "no random bytes");
	}
	hex_encode(rnd, sizeof(rnd), st->instance);
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st->conninfo);
		free(st);
		return err_set(e, ERR_INTERNAL, "cannot create a mutex");
	}
	if (pthread_mutex_init(&st->seq_lock, NULL) != 0) {
		pthread_mutex_destroy(&st->lock);
		free(st->conninfo);
		free(st);
		return err_set(e, ERR_INTERNAL, "cannot create a mutex");
	}
	if ((r = conn_open(st, &c, e)) != 0)
		goto out;
	/* Several processes may start at once: one migrates, the others
	 * wait and then find the schema up to date. */
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%d)",
	    PG_MIGRATION_LOCK);
	if ((r = pg_simple(c, lock, e, "waiting for the migration lock")) != 0)
		goto out;
	r = schema_update(c, e);
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%d)",
	    PG_MIGRATION_LOCK);
	if (r == 0)
		r = pg_simple(c, lock, e, "releasing the migration lock");
	if (r != 0)
		goto out;
	conn_put(st, c);
	c = NULL; /* transferred */
	*out = &st->head;
	st = NULL; /* transferred */
	r = 0;
 out:
	/* Closing the connection also releases the session's lock. */
	conn_free(c);
	pg_close(st != NULL ? &st->head : NULL);
	return r;
}

/* --- bulk copy: import (dir-store.h) --- */

struct dir_import {
	struct pg_store *st;
	struct pg_conn *c;              /* inside the import's transaction */
	struct dir_dump_sink sink;      /* arg: this import */
	struct merkle_frontier tlog;    /* the leaves copied so far */
};

/* The tables an import fills, each checked empty first. */
static const char *const import_tables[] = {
	"accounts", "events", "devices", "sessions", "nonces", "messages",
	"queue", "account_usage", "tlog_leaves", "tlog_nodes",
	"tlog_checkpoint", "blobs", "blob_links",
};

/*
 * Runs sql (not prepared: an import runs each statement for many rows,
 * once) with a on the import's connection; *out as pg_run().  A taken key
 * is ERR_EXISTS with what in the message.
 */
static int
import_exec(struct dir_import *imp, const char *sql, const struct pg_args *a,
    PGresult **out, struct err_ctx *e, const char *what)
{
	struct pg_conn *c = imp->c;
	PGresult *res;
	ExecStatusType status;
	int r;

	if (a != NULL && a->bad != 0)
		return err_set(e, a->bad, "a value out of range while %s",
		    what);
	if (conn_broken(c))
		return pg_fail(c, NULL, e, what);
	res = PQexecParams(c->db, sql, a != NULL ? a->n : 0, NULL,
	    a != NULL ? a->v : NULL, a != NULL ? a->len : NULL,
	    a != NULL ? a->fmt : NULL, 1);
	status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		if ((r = pg_fail(c, res, e, what)) == ERR_EXISTS)
			r = err_set(e, ERR_EXISTS, "database error while %s: "
			    "the key is taken", what);
		PQclear(res);
		return r;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

static int
import_account(void *arg, const struct dir_dump_account *x,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[200];

	arg_text(&a, x->name);
	arg_text(&a, x->pw_hash);
	arg_u64(&a, x->created);
	snprintf(what, sizeof(what), "copying account '%.128s'", x->name);
	return import_exec(arg, stmt_sql[STMT_ACCOUNT_INSERT], &a, NULL, e,
	    what);
}

static int
import_event(void *arg, const struct dir_event_row *ev, struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[200];

	arg_text(&a, ev->account);
	arg_u64(&a, ev->seq);
	arg_u64(&a, ev->time);
	arg_text(&a, ev->type);
	arg_blob(&a, ev->prev, 32);
	arg_blob(&a, ev->hash, 32);
	arg_text(&a, ev->json);
	snprintf(what, sizeof(what), "copying event %llu of '%.128s'",
	    (unsigned long long)ev->seq, ev->account);
	return import_exec(arg, stmt_sql[STMT_EVENT_INSERT], &a, NULL, e,
	    what);
}

static int
import_device(void *arg, const struct dir_dump_device *d, struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[200];

	arg_text(&a, d->device);
	arg_text(&a, d->account);
	arg_text(&a, d->active ? "true" : "false");
	arg_text(&a, d->record_json);
	arg_blob(&a, d->sig_pub, d->sig_pub_len);
	arg_u64(&a, d->added_time);
	snprintf(what, sizeof(what), "copying device %.16s of '%.128s'",
	    d->device, d->account);
	return import_exec(arg, "INSERT INTO devices(device, account, active, "
	    "record, sig_pub, added_time) VALUES ($1::text, $2::text, "
	    "$3::boolean, $4::text, $5::bytea, $6::bigint)", &a, NULL, e,
	    what);
}

static int
import_nonce(void *arg, const struct dir_dump_nonce *n, struct err_ctx *e)
{
	struct pg_args a = { 0 };

	arg_text(&a, n->device);
	arg_blob(&a, n->nonce, n->nonce_len);
	arg_u64(&a, n->expires);
	return import_exec(arg, stmt_sql[STMT_NONCE_INSERT], &a, NULL, e,
	    "copying a login nonce");
}

static int
import_message(void *arg, const struct dir_dump_message *m,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[64];

	arg_u64(&a, m->id);
	arg_text(&a, m->sender);
	arg_blob(&a, m->msg_id, m->msg_id_len);
	arg_text(&a, m->envelope);
	arg_u64(&a, m->refs);
	snprintf(what, sizeof(what), "copying message %llu",
	    (unsigned long long)m->id);
	return import_exec(arg, "INSERT INTO messages(id, sender, msg_id, "
	    "envelope, refs) OVERRIDING SYSTEM VALUE VALUES ($1::bigint, "
	    "$2::text, $3::bytea, $4::text, $5::bigint)", &a, NULL, e, what);
}

static int
import_queue(void *arg, const struct dir_dump_queue *q, struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[64];

	arg_u64(&a, q->seq);
	arg_text(&a, q->device);
	arg_u64(&a, q->message);
	arg_text(&a, q->sender);
	arg_text(&a, q->account);
	arg_u64(&a, q->size);
	snprintf(what, sizeof(what), "copying queue entry %llu",
	    (unsigned long long)q->seq);
	return import_exec(arg, "INSERT INTO queue(seq, device, message, "
	    "sender, account, size) OVERRIDING SYSTEM VALUE VALUES "
	    "($1::bigint, $2::text, $3::bigint, $4::text, $5::text, "
	    "$6::bigint)", &a, NULL, e, what);
}

static int
import_usage(void *arg, const char *account, uint64_t bytes,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };

	arg_text(&a, account);
	arg_u64(&a, bytes);
	return import_exec(arg, "INSERT INTO account_usage(account, bytes) "
	    "VALUES ($1::text, $2::bigint)", &a, NULL, e,
	    "copying the account usage");
}

/*
 * A leaf of the tree: stored as given, with the nodes it completes
 * computed here.  The leaves must come in index order from 0: the
 * tree is rebuilt, not copied node by node.
 */
static int
import_tlog_leaf(void *arg, uint64_t index, const char *account,
    uint64_t seq, const uint8_t hash[32], struct err_ctx *e)
{
	struct dir_import *imp = arg;

	if (index != imp->tlog.size)
		return err_set(e, ERR_FORMAT, "transparency log leaf %llu came "
		    "where leaf %llu was due: the source's leaves have a gap",
		    (unsigned long long)index,
		    (unsigned long long)imp->tlog.size);
	/* Its statements are the store's, prepared on the import's
	 * connection like any other. */
	return tlog_leaf_add(imp->c, &imp->tlog, account, seq, hash, e);
}

static int
import_checkpoint(void *arg, uint64_t size, const char *note,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };

	arg_u64(&a, size);
	arg_text(&a, note);
	return import_exec(arg, stmt_sql[STMT_CHECKPOINT_PUT], &a, NULL, e,
	    "copying the checkpoint");
}

/* Last in a dump: moves the message id and queue seq counters past every
 * copied row and past seq, so that new entries continue above both. */
static int
import_queue_last(void *arg, uint64_t seq, struct err_ctx *e)
{
	struct pg_args a = { 0 };
	int r;

	arg_u64(&a, seq);
	if ((r = import_exec(arg, "SELECT setval(pg_get_serial_sequence("
	    "'queue', 'seq'), GREATEST($1::bigint, (SELECT MAX(seq) FROM "
	    "queue)), true) WHERE GREATEST($1::bigint, (SELECT MAX(seq) FROM "
	    "queue)) > 0", &a, NULL, e, "setting the queue counter")) != 0)
		return r;
	return import_exec(arg, "SELECT setval(pg_get_serial_sequence("
	    "'messages', 'id'), MAX(id), true) FROM messages HAVING "
	    "MAX(id) > 0", NULL, NULL, e, "setting the message counter");
}

static int
import_blob(void *arg, const struct dir_dump_blob *b, struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[100];

	arg_text(&a, b->hash);
	arg_text(&a, b->device);
	arg_text(&a, b->account);
	arg_u64(&a, b->size);
	arg_u64(&a, b->created);
	arg_u64(&a, b->expires);
	arg_text(&a, b->linked ? "true" : "false");
	snprintf(what, sizeof(what), "copying blob %.64s", b->hash);
	return import_exec(arg, "INSERT INTO blobs(hash, device, account, "
	    "size, created, expires, linked) VALUES ($1::text, $2::text, "
	    "$3::text, $4::bigint, $5::bigint, $6::bigint, $7::boolean)", &a,
	    NULL, e, what);
}

static int
import_blob_link(void *arg, uint64_t message, const char *hash,
    struct err_ctx *e)
{
	struct pg_args a = { 0 };
	char what[140];

	arg_u64(&a, message);
	arg_text(&a, hash);
	snprintf(what, sizeof(what), "copying the link of message %llu to "
	    "blob %.64s", (unsigned long long)message, hash);
	return import_exec(arg, "INSERT INTO blob_links(message, hash) VALUES "
	    "($1::bigint, $2::text)", &a, NULL, e, what);
}

const struct dir_dump_sink *
dir_store_pg_import_sink(struct dir_import *imp)
{
	return &imp->sink;
}

int
dir_store_pg_import_begin(struct dir_store *s, struct dir_import **out,
    struct err_ctx *e)
{
	struct dir_import *imp;
	PGresult *res = NULL;
	char sql[128];
	size_t i;
	int r;

	return_val_if_fail(s != NULL && s->ops == &pg_ops && out != NULL,
	    ERR_INVALID_ARG);
	if ((imp = calloc(1, sizeof(*imp))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	imp->st = to_pg(s);
	imp->sink = (struct dir_dump_sink){ imp, import_account, import_event,
	    import_device, import_nonce, import_message, import_queue,
	    import_usage, import_queue_last, import_tlog_leaf,
	    import_checkpoint, import_blob, import_blob_link };
	merkle_frontier_init(&imp->tlog);
	if ((r = conn_get(imp->st, &imp->c, e)) != 0) {
		free(imp);
		return r;
	}
	/* EXCLUSIVE: others may read but not write until the end. */
	if ((r = pg_simple(imp->c, BEGIN_WRITE, e,
	    "starting the import")) != 0 ||
	    (r = pg_simple(imp->c, "LOCK TABLE accounts, events, devices, "
	    "sessions, nonces, messages, queue, account_usage, tlog_leaves, "
	    "tlog_nodes, tlog_checkpoint, blobs, blob_links IN EXCLUSIVE "
	    "MODE", e,
	    "locking the tables")) != 0)
		goto fail;
	for (i = 0; i < sizeof(import_tables) / sizeof(import_tables[0]);
	    i++) {
		snprintf(sql, sizeof(sql), "SELECT 1 FROM %s LIMIT 1",
		    import_tables[i]);
		if ((r = import_exec(imp, sql, NULL, &res, e,
		    "checking that the database is empty")) != 0)
			goto fail;
		if (PQntuples(res) > 0) {
			r = err_set(e, ERR_EXISTS, "%s is not empty (table "
			    "%s holds rows): migrate copies only into a new, "
			    "empty database", imp->st->where,
			    import_tables[i]);
			PQclear(res);
			goto fail;
		}
		PQclear(res);
	}
	*out = imp;
	return 0;
 fail:
	(void)dir_store_pg_import_end(imp, 0, NULL);
	return r;
}

/* Runs sql (no parameters) on the import and hands each row to row(). */
static int
import_read(struct dir_import *imp, const char *sql,
    int (*row)(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e), const struct dir_dump_sink *sink, struct err_ctx *e,
    const char *what)
{
	PGresult *res = NULL;
	int r, i;

	if ((r = import_exec(imp, sql, NULL, &res, e, what)) != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++)
		r = row(res, i, sink, e);
	PQclear(res);
	return r;
}

static int
read_account(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_account a = { col_text(res, i, 0),
	    col_text(res, i, 1), col_u64(res, i, 2) };

	return sink->account(sink->arg, &a, e);
}

static int
read_event(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_event_row ev;

	memset(&ev, 0, sizeof(ev));
	ev.account = col_text(res, i, 0);
	ev.seq = col_u64(res, i, 1);
	ev.time = col_u64(res, i, 2);
	ev.type = col_text(res, i, 3);
	if (PQgetlength(res, i, 4) != 32 || PQgetlength(res, i, 5) != 32)
		return err_set(e, ERR_IO, "event %llu of '%.128s' has a "
		    "damaged hash column", (unsigned long long)ev.seq,
		    ev.account);
	memcpy(ev.prev, PQgetvalue(res, i, 4), 32);
	memcpy(ev.hash, PQgetvalue(res, i, 5), 32);
	ev.json = col_text(res, i, 6);
	return sink->event(sink->arg, &ev, e);
}

static int
read_device(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_device d = { col_text(res, i, 0), col_text(res, i, 1),
	    col_u64(res, i, 2) != 0, col_text(res, i, 3),
	    (const uint8_t *)PQgetvalue(res, i, 4),
	    (size_t)PQgetlength(res, i, 4), col_u64(res, i, 5) };

	return sink->device(sink->arg, &d, e);
}

static int
read_message(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_message m = { col_u64(res, i, 0), col_text(res, i, 1),
	    (const uint8_t *)PQgetvalue(res, i, 2),
	    (size_t)PQgetlength(res, i, 2), "", col_u64(res, i, 3) };

	return sink->message(sink->arg, &m, e);
}

static int
read_queue(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_queue q = { col_u64(res, i, 0), col_text(res, i, 1),
	    col_u64(res, i, 2), col_text(res, i, 3),
	    PQgetisnull(res, i, 4) ? NULL : col_text(res, i, 4),
	    col_u64(res, i, 5) };

	return sink->queue(sink->arg, &q, e);
}

static int
read_usage(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->usage(sink->arg, col_text(res, i, 0), col_u64(res, i, 1),
	    e);
}

static int
read_queue_last(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->queue_last(sink->arg, col_u64(res, i, 0), e);
}

static int
read_tlog_leaf(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	if (PQgetlength(res, i, 3) != 32)
		return err_set(e, ERR_IO, "transparency log leaf %llu has a "
		    "damaged hash", (unsigned long long)col_u64(res, i, 0));
	return sink->tlog_leaf(sink->arg, col_u64(res, i, 0),
	    col_text(res, i, 1), col_u64(res, i, 2),
	    (const uint8_t *)PQgetvalue(res, i, 3), e);
}

static int
read_checkpoint(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->checkpoint(sink->arg, col_u64(res, i, 0),
	    col_text(res, i, 1), e);
}

static int
read_blob(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	struct dir_dump_blob b = { col_text(res, i, 0), col_text(res, i, 1),
	    col_text(res, i, 2), col_u64(res, i, 3), col_u64(res, i, 4),
	    col_u64(res, i, 5), col_u64(res, i, 6) != 0 };

	return sink->blob(sink->arg, &b, e);
}

static int
read_blob_link(const PGresult *res, int i, const struct dir_dump_sink *sink,
    struct err_ctx *e)
{
	return sink->blob_link(sink->arg, col_u64(res, i, 0),
	    col_text(res, i, 1), e);
}

int
dir_store_pg_import_dump(struct dir_import *imp,
    const struct dir_dump_sink *sink, struct err_ctx *e)
{
	static const struct {
		const char *sql;
		int (*row)(const PGresult *, int, const struct dir_dump_sink *,
		    struct err_ctx *);
		const char *what;
	} parts[] = {
		{ "SELECT name, pw_hash, created FROM accounts ORDER BY "
		    "name COLLATE \"C\"", read_account,
		    "reading the accounts back" },
		{ "SELECT account, seq, time, type, prev, hash, json FROM "
		    "events ORDER BY account COLLATE \"C\", seq", read_event,
		    "reading the account logs back" },
		{ "SELECT device, account, active, record, sig_pub, "
		    "added_time FROM devices ORDER BY account COLLATE \"C\", "
		    "device COLLATE \"C\"", read_device,
		    "reading the devices back" },
		{ "SELECT id, sender, msg_id, refs FROM messages ORDER BY id",
		    read_message, "reading the messages back" },
		{ "SELECT seq, device, message, sender, account, size FROM "
		    "queue ORDER BY seq", read_queue,
		    "reading the queues back" },
		{ "SELECT account, bytes FROM account_usage ORDER BY "
		    "account COLLATE \"C\"", read_usage,
		    "reading the account usage back" },
		{ "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_"
		    "sequence('queue', 'seq')::regclass), 0)",
		    read_queue_last, "reading the queue counter back" },
		{ "SELECT idx, account, seq, hash FROM tlog_leaves ORDER BY "
		    "idx", read_tlog_leaf,
		    "reading the transparency log back" },
		{ "SELECT size, note FROM tlog_checkpoint", read_checkpoint,
		    "reading the checkpoint back" },
		{ "SELECT hash, device, account, size, created, expires, "
		    "linked FROM blobs ORDER BY hash COLLATE \"C\"", read_blob,
		    "reading the blobs back" },
		{ "SELECT message, hash FROM blob_links ORDER BY message, "
		    "hash COLLATE \"C\"", read_blob_link,
		    "reading the links to blobs back" },
	};
	size_t i;
	int r;

	return_val_if_fail(imp != NULL && sink != NULL, ERR_INVALID_ARG);
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		/* A sink written before the tree or the blobs takes no
		 * part of them. */
		if ((parts[i].row == read_tlog_leaf && sink->tlog_leaf ==
		    NULL) || (parts[i].row == read_checkpoint &&
		    sink->checkpoint == NULL) || (parts[i].row == read_blob &&
		    sink->blob == NULL) || (parts[i].row == read_blob_link &&
		    sink->blob_link == NULL))
			continue;
		if ((r = import_read(imp, parts[i].sql, parts[i].row, sink, e,
		    parts[i].what)) != 0)
			return r;
	}
	return 0;
}

/* A stored node of the import's tree: a merkle_node_fn (arg is imp). */
static int
import_node_read(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct dir_import *imp = arg;

	return tlog_node_read(imp->c, level, index, out, e);
}

int
dir_store_pg_import_tlog_root(struct dir_import *imp, uint64_t *size,
    uint8_t root[32], struct err_ctx *e)
{
	int r;

	return_val_if_fail(imp != NULL && size != NULL && root != NULL,
	    ERR_INVALID_ARG);
	if ((r = tlog_size_read(imp->c, size, e)) != 0)
		return r;
	return merkle_root(*size, import_node_read, imp, root, e);
}

int
dir_store_pg_import_end(struct dir_import *imp, int commit,
    struct err_ctx *e)
{
	int r = 0;

	if (imp == NULL)
		return 0;
	if (commit)
		r = pg_simple(imp->c, "COMMIT", e, "committing the import");
	if (!commit || r != 0)
		tx_rollback(imp->c);
	conn_put(imp->st, imp->c);
	free(imp);
	return r;
}
