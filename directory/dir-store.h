/*
 * dir-store.h - the directory's storage interface.
 *
 * Everything devid-directory keeps -- accounts, account logs, devices,
 * sessions, login nonces, messages and per-device queues -- goes through
 * one table of operations, so that the code above never asks which
 * database it talks to.  The first implementation is SQLite
 * (dir-store-sqlite.c); the second is PostgreSQL (dir-store-pg.c), for
 * several directory processes on one database.
 *
 * Contract shared by every operation:
 * - returns 0 or a negative ERR_* code with a sentence in e;
 * - a failed operation changes nothing (each change is one transaction);
 * - the store checks the invariants that must hold across concurrent
 *   requests (log tail, device state, limits) inside that transaction, so
 *   two requests can never both append event N;
 * - it is safe to call from several threads at once: each thread gets its
 *   own database connection;
 * - strings passed in are borrowed; strings handed to callbacks are only
 *   valid during the call.
 *
 * The store does not validate protocol syntax or signatures: dir-api.c
 * and dir-account.c do that before anything reaches it.
 */
#ifndef DEVID_DIR_STORE_H
#define DEVID_DIR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define DIR_ACCOUNT_MAX 128
#define DIR_DEVICE_HEX 64
#define DIR_SPKI_MAX 1024

struct dir_store;

/* One event to append to an account log, prepared by the caller. */
struct dir_event_row {
	const char *account;
	uint64_t seq;                 /* must be the current tail + 1 */
	uint64_t time;
	const char *type;             /* "add" or "revoke" */
	uint8_t prev[32];             /* hash of event seq - 1 (zeros for 1) */
	uint8_t hash[32];             /* hash of this event */
	const char *json;             /* the event as served to clients */
};

/* The device an "add" event brings in. */
struct dir_device_row {
	const char *device;           /* 64 hex */
	const char *record_json;      /* the device record as registered */
	const uint8_t *sig_pub;       /* DER SPKI */
	size_t sig_pub_len;
};

/* What the store knows about one device. */
struct dir_device_info {
	char account[DIR_ACCOUNT_MAX + 1];
	int active;
	uint8_t sig_pub[DIR_SPKI_MAX];
	size_t sig_pub_len;
	uint64_t added_time;          /* time of its latest add event */
};

/* A bearer session. */
struct dir_session_info {
	char device[DIR_DEVICE_HEX + 1];
	char account[DIR_ACCOUNT_MAX + 1];
	uint64_t expires;
};

/* Callbacks for listings; a non-zero return stops the listing and is
 * returned by the operation. */
typedef int (*dir_account_cb)(void *arg, const char *name, uint64_t created);
typedef int (*dir_event_cb)(void *arg, uint64_t seq, const char *type,
    const char *json);
typedef int (*dir_device_cb)(void *arg, const char *device,
    const char *record_json);
typedef int (*dir_queue_cb)(void *arg, uint64_t seq, const char *envelope);
/* One leaf of the transparency log: event seq of account with hash. */
typedef int (*dir_leaf_cb)(void *arg, uint64_t index, const char *account,
    uint64_t seq, const uint8_t hash[32]);

/*
 * What a change made by another process concerns (the watch operation).
 * name is an account for DIR_CHANGE_LOG, a device id for the others, and
 * NULL for DIR_CHANGE_ALL: anything may have changed (notifications may
 * have been missed), so every waiter is woken and every cache dropped.
 */
enum dir_change {
	DIR_CHANGE_LOG,               /* an event was appended to the log */
	DIR_CHANGE_INBOX,             /* a message was queued for the device */
	DIR_CHANGE_DEVICE,            /* the device was revoked: its sessions
	                               * ended */
	DIR_CHANGE_ALL
};
typedef void (*dir_change_cb)(void *arg, enum dir_change what,
    const char *name);

/* The bounds message_put keeps on the queues. */
struct dir_queue_limits {
	unsigned int max_queue;       /* messages queued for one device */
	unsigned int max_per_sender;  /* of those, from one sender device */
	uint64_t quota_bytes;         /* envelope bytes queued for the devices
	                               * of one account, each entry counting
	                               * its envelope's size */
};

struct dir_store_ops {
	const char *name;

	/* Releases every connection; s is freed.  NULL is fine. */
	void (*close)(struct dir_store *s);

	/* A cheap read that proves the database answers. */
	int (*health)(struct dir_store *s, struct err_ctx *e);

	/* --- accounts --- */

	/* ERR_EXISTS when name is taken. */
	int (*account_create)(struct dir_store *s, const char *name,
	    const char *pw_hash, uint64_t now, struct err_ctx *e);
	/* The stored password hash in a new string (*pw_hash, caller frees)
	 * and the creation time (may be NULL); ERR_NOT_FOUND. */
	int (*account_get)(struct dir_store *s, const char *name,
	    char **pw_hash, uint64_t *created, struct err_ctx *e);
	/* Every account in name order. */
	int (*account_list)(struct dir_store *s, dir_account_cb cb, void *arg,
	    struct err_ctx *e);

	/* --- account logs --- */

	/* The last event's seq and hash; seq 0 and a zero hash for an
	 * empty log.  The account must exist (ERR_NOT_FOUND). */
	int (*log_tail)(struct dir_store *s, const char *account,
	    uint64_t *seq, uint8_t hash[32], struct err_ctx *e);
	/* Events with since < seq <= upto, in order, at most limit. */
	int (*log_events)(struct dir_store *s, const char *account,
	    uint64_t since, uint64_t upto, unsigned int limit,
	    dir_event_cb cb, void *arg, struct err_ctx *e);

	/*
	 * Appends an "add" event and activates dev in ev->account.  Fails
	 * without changing anything with ERR_CHAIN when ev->seq/prev no longer
	 * match the tail (another change won: the caller rebuilds and
	 * retries), ERR_EXISTS when the device is active or belongs to another
	 * account, ERR_TOO_LARGE when the account already has max_devices
	 * active devices, or ERR_NOT_FOUND for an unknown account.
	 */
	int (*log_append_add)(struct dir_store *s,
	    const struct dir_event_row *ev, const struct dir_device_row *dev,
	    unsigned int max_devices, struct err_ctx *e);
	/*
	 * Appends a "revoke" event and deactivates device, which must be an
	 * active device of ev->account (ERR_NOT_FOUND otherwise); ERR_CHAIN
	 * as above.  The device's sessions end with it and its queue is
	 * emptied (it can no longer fetch it).
	 */
	int (*log_append_revoke)(struct dir_store *s,
	    const struct dir_event_row *ev, const char *device,
	    struct err_ctx *e);

	/* --- devices --- */

	/* ERR_NOT_FOUND for a device never registered. */
	int (*device_get)(struct dir_store *s, const char *device,
	    struct dir_device_info *out, struct err_ctx *e);
	/* The active devices of account in device id order and the log tail
	 * they belong to, read in one consistent snapshot.  ERR_NOT_FOUND
	 * for an unknown account. */
	int (*devices_active)(struct dir_store *s, const char *account,
	    uint64_t *seq, uint8_t hash[32], dir_device_cb cb, void *arg,
	    struct err_ctx *e);

	/* --- sessions and login nonces --- */

	/* Stores a session under the hash of its token; when the device
	 * already has max_per_device sessions the oldest ones end. */
	int (*session_put)(struct dir_store *s, const uint8_t token_hash[32],
	    const char *device, const char *account, uint64_t expires,
	    unsigned int max_per_device, struct err_ctx *e);
	/* ERR_NOT_FOUND for an unknown or expired (expires <= now) token or
	 * one whose device is no longer active. */
	int (*session_get)(struct dir_store *s, const uint8_t token_hash[32],
	    uint64_t now, struct dir_session_info *out, struct err_ctx *e);
	/* Records that device used nonce; ERR_REPLAY when it was used before
	 * and is still remembered (until expires). */
	int (*nonce_use)(struct dir_store *s, const char *device,
	    const uint8_t *nonce, size_t nonce_len, uint64_t expires,
	    struct err_ctx *e);
	/* Forgets expired sessions and nonces. */
	int (*purge)(struct dir_store *s, uint64_t now, struct err_ctx *e);

	/* --- messages --- */

	/*
	 * Stores an envelope once and queues it for each of the n devices,
	 * within lim; when any bound would be passed nothing is stored.
	 * ERR_EXISTS when the sender device already posted msg_id;
	 * ERR_FAIR_SHARE (naming the device and its account) when a
	 * device's queue already holds lim->max_per_sender messages from
	 * sender_device; ERR_TOO_LARGE (naming the device) when a queue
	 * already holds lim->max_queue messages; ERR_QUOTA (naming the
	 * account) when the entries would take a recipient account past
	 * lim->quota_bytes.  A device that was never registered has no
	 * account and no quota.  blobs[0..n_blobs) (64-hex hashes, may be
	 * NULL when n_blobs is 0) are linked to the message in the same
	 * transaction; each must be a kept blob that sender_device
	 * uploaded, else ERR_DENIED naming it and nothing is stored.
	 */
	int (*message_put)(struct dir_store *s, const char *sender_device,
	    const uint8_t *msg_id, size_t msg_id_len, const char *envelope,
	    const char *const *devices, size_t n,
	    const char *const *blobs, size_t n_blobs,
	    const struct dir_queue_limits *lim, struct err_ctx *e);
	/* Queued envelopes of device with seq > after, oldest first, at most
	 * limit of them and (after the first) at most max_bytes of
	 * envelope text in total. */
	int (*inbox_get)(struct dir_store *s, const char *device,
	    uint64_t after, unsigned int limit, size_t max_bytes,
	    dir_queue_cb cb, void *arg, struct err_ctx *e);
	/* Removes the device's queue entries with seq <= upto (and envelopes
	 * no queue refers to any more); *removed gets their number. */
	int (*inbox_ack)(struct dir_store *s, const char *device,
	    uint64_t upto, uint64_t *removed, struct err_ctx *e);
	/* The bytes counted against account's quota: the envelope sizes of
	 * every entry queued for its devices (0 when there is none). */
	int (*account_usage)(struct dir_store *s, const char *account,
	    uint64_t *bytes, struct err_ctx *e);

	/* --- blobs (docs/protocol.md section 8) ---
	 *
	 * The store keeps the rows; the bytes are files that dir-blob.c
	 * writes before blob_put and deletes after blob_expire named them.
	 * A blob is linked to every message posted with it (message_put's
	 * blobs); a link ends with its message (when no queue entry refers
	 * to the message any more), a blob row does not. */

	/*
	 * Records the blob hash (64 hex) of size bytes that device (of
	 * account) uploaded at now, kept until *expires at the latest.
	 * Within the same transaction the blobs kept for account's devices
	 * plus size must stay within quota (else ERR_QUOTA naming the
	 * account, nothing stored).  When device already has this hash,
	 * *existed = 1, nothing changes, *expires gets the kept row's time
	 * and 0 is returned; when another device uploaded the same bytes,
	 * ERR_EXISTS (the caller refuses: blobs are per uploader).
	 * *existed (may be NULL) is 0 otherwise.
	 */
	int (*blob_put)(struct dir_store *s, const char *hash,
	    const char *device, const char *account, uint64_t size,
	    uint64_t now, uint64_t *expires, uint64_t quota, int *existed,
	    struct err_ctx *e);
	/* The bytes of blobs kept for the devices of account (0 when none):
	 * what blob_put checks against the quota. */
	int (*blob_usage)(struct dir_store *s, const char *account,
	    uint64_t *bytes, struct err_ctx *e);
	/*
	 * Whether device may download hash: 0 with *size and *expires when
	 * a message linked to hash has a queue entry for device and the
	 * blob is kept; ERR_GONE when such an entry exists but the blob was
	 * removed; ERR_DENIED otherwise (also for a hash never seen).
	 */
	int (*blob_get)(struct dir_store *s, const char *hash,
	    const char *device, uint64_t *size, uint64_t *expires,
	    struct err_ctx *e);
	/*
	 * Removes the rows of every blob that is to go at now: it was linked
	 * and no link is left; it was never linked and was uploaded before
	 * now - unlinked_s; or now >= its expires.  cb(arg, hash) is called
	 * for each removed hash after the removal committed (the caller
	 * deletes the file; its return value is ignored); *removed (may be
	 * NULL) gets their number.  At most limit blobs per call (0: no
	 * limit).
	 */
	int (*blob_expire)(struct dir_store *s, uint64_t now,
	    uint64_t unlinked_s, unsigned int limit,
	    int (*cb)(void *arg, const char *hash), void *arg,
	    uint64_t *removed, struct err_ctx *e);
	/* Whether a row for hash is kept: *kept 1 or 0 (for the sweep of
	 * files without a row at start-up). */
	int (*blob_exists)(struct dir_store *s, const char *hash, int *kept,
	    struct err_ctx *e);

	/* --- the global transparency log (docs/protocol.md section 7) ---
	 *
	 * log_append_add and log_append_revoke also append the event's leaf
	 * (tlog_leaf_hash() of account, seq and hash) to the tree and store
	 * the stored nodes it completes (merkle.h), in the same transaction,
	 * so that leaves follow the order in which events commit.  Several
	 * processes on one database append one after the other.  An append
	 * reads O(log n) stored nodes (the frontier), never the whole tree.
	 * With s->tlog_off set, appends leave the tree alone. */

	/* The number of leaves in the tree. */
	int (*tlog_size)(struct dir_store *s, uint64_t *size,
	    struct err_ctx *e);
	/* The stored node (level, index): the merkle_node_fn of the tree;
	 * ERR_NOT_FOUND for a node not (yet) complete. */
	int (*tlog_node)(struct dir_store *s, unsigned int level,
	    uint64_t index, uint8_t out[32], struct err_ctx *e);
	/* Leaves start .. end-1 in order, those of them the tree holds
	 * (none past its size); ERR_INVALID_ARG unless start <= end and
	 * end - start <= 1024. */
	int (*tlog_leaves)(struct dir_store *s, uint64_t start, uint64_t end,
	    dir_leaf_cb cb, void *arg, struct err_ctx *e);
	/* The account's event with the largest seq among the leaves with
	 * index < size: its seq and leaf index; ERR_NOT_FOUND when none. */
	int (*tlog_latest)(struct dir_store *s, const char *account,
	    uint64_t size, uint64_t *seq, uint64_t *index, struct err_ctx *e);
	/* Stores note (a signed checkpoint of size leaves, NUL-terminated)
	 * as the latest checkpoint.  One of the same size replaces it (new
	 * cosignatures); a smaller one is refused with ERR_ROLLBACK. */
	int (*checkpoint_put)(struct dir_store *s, uint64_t size,
	    const char *note, struct err_ctx *e);
	/* The latest checkpoint: its size and note in a new string (caller
	 * frees); ERR_NOT_FOUND before the first. */
	int (*checkpoint_get)(struct dir_store *s, uint64_t *size,
	    char **note, struct err_ctx *e);
	/* Whether this process is the one that makes checkpoints: always for
	 * SQLite; on PostgreSQL the one process that holds the sequencer's
	 * advisory lock (taken on a connection of its own, released when the
	 * process ends or the connection breaks).  *leader gets 1 or 0;
	 * cheap to call often. */
	int (*tlog_sequencer)(struct dir_store *s, int *leader,
	    struct err_ctx *e);

	/* --- changes made by other processes --- */

	/*
	 * Optional: NULL for a store that one process serves (its own
	 * writes are all it needs to hear of).  With cb, starts calling
	 * cb(arg, ...) from a thread of the store for each change that
	 * another process commits, and with DIR_CHANGE_ALL whenever it
	 * (re)connected and may have missed some; the caller makes cb safe
	 * to run on that thread.  With cb NULL, stops: on return no call of
	 * cb runs or will run.  close stops it too.  ERR_EXISTS when
	 * already watching, ERR_ALLOC or ERR_INTERNAL (no thread).
	 */
	int (*watch)(struct dir_store *s, dir_change_cb cb, void *arg,
	    struct err_ctx *e);
};

/* Every store object starts with this head. */
struct dir_store {
	const struct dir_store_ops *ops;
	/* Set by tests/bench/bench-tlog only: appends skip the tree, to
	 * measure what the tree costs.  Never set in devid-directory. */
	int tlog_off;
};

/*
 * Opens (creating when needed) the SQLite database at path: WAL journal,
 * synchronous=FULL, foreign keys on, schema created, or checked and
 * brought up to date.  A new database file is created mode 0600 whatever
 * the umask (SQLite gives its -wal and -shm files the same mode); an
 * existing file keeps its mode.  On success *out is a new store; close it
 * with dir_store_close().  ERR_CONFIG for a database written by a newer
 * devid-directory.
 */
int dir_store_sqlite_open(const char *path, struct dir_store **out,
    struct err_ctx *e);

/*
 * Whether uri may be given on a command line: ERR_CONFIG when it is not a
 * libpq connection string, or when it carries a password (which the
 * process list shows to every user; libpq reads it from PGPASSFILE or a
 * service file instead).  The message never quotes the string.
 */
int dir_store_pg_uri_check(const char *uri, struct err_ctx *e);

/*
 * Opens the PostgreSQL database that uri names: a libpq connection URI
 * (postgresql://...) or a keyword string.  The password comes from
 * libpq's own sources (PGPASSFILE, a service file) or from uri; no
 * message ever shows it.  Brings the schema up to date under an advisory
 * lock, so several processes may open one database at once.  Connections
 * are opened as threads need them and kept in a small pool; one that
 * breaks makes its operation fail with ERR_NETWORK, and the next
 * operation connects again.  Its writes announce what they changed with
 * NOTIFY on commit, and watch LISTENs on a connection of its own, so
 * that long-polls wake across processes.  On success *out is a new
 * store; close it with dir_store_close().  ERR_NETWORK when the database
 * cannot be reached, ERR_CONFIG for a malformed uri or a database written
 * by a newer devid-directory.
 */
int dir_store_pg_open(const char *uri, struct dir_store **out,
    struct err_ctx *e);

/* s->ops->close(s); NULL is fine. */
void dir_store_close(struct dir_store *s);

/*
 * --- Bulk copy (devid-directory migrate, dir-migrate.c) ---
 *
 * A whole directory as rows, with what the operations above never hand
 * out: stored hashes, inactive devices, queue entries with their seq.
 * A dump calls the sink once per row, in this order: accounts (by name),
 * events (by account, then seq), devices (by account, then device id),
 * nonces, messages (by id), queue entries (by seq), account usage (by
 * account), queue_last, then the transparency log's leaves (by index,
 * from 0 without a gap), its latest checkpoint (none before the first),
 * and last the blobs and their links.  Names are ordered bytewise.  A
 * callback's non-zero return stops the dump and is returned by it; a
 * callback sets e itself.  A
 * NULL tlog_leaf or checkpoint skips those rows (a sink written before
 * the tree).  Sessions are not part of a dump: a device logs in again;
 * nor are the tree's stored nodes: an import computes them from the
 * leaves.
 */
struct dir_dump_account {
	const char *name;
	const char *pw_hash;
	uint64_t created;
};

struct dir_dump_device {
	const char *device;
	const char *account;
	int active;
	const char *record_json;
	const uint8_t *sig_pub;
	size_t sig_pub_len;
	uint64_t added_time;
};

struct dir_dump_nonce {
	const char *device;
	const uint8_t *nonce;
	size_t nonce_len;
	uint64_t expires;
};

struct dir_dump_message {
	uint64_t id;
	const char *sender;
	const uint8_t *msg_id;
	size_t msg_id_len;
	const char *envelope;
	uint64_t refs;
};

struct dir_dump_queue {
	uint64_t seq;
	const char *device;
	uint64_t message;             /* dir_dump_message.id */
	const char *sender;
	const char *account;          /* NULL: a device never registered */
	uint64_t size;
};

struct dir_dump_blob {
	const char *hash;
	const char *device;           /* the uploader */
	const char *account;          /* its account */
	uint64_t size;
	uint64_t created;
	uint64_t expires;
	int linked;                   /* a message was ever posted with it */
};

struct dir_dump_sink {
	void *arg;
	int (*account)(void *arg, const struct dir_dump_account *a,
	    struct err_ctx *e);
	int (*event)(void *arg, const struct dir_event_row *ev,
	    struct err_ctx *e);
	int (*device)(void *arg, const struct dir_dump_device *d,
	    struct err_ctx *e);
	int (*nonce)(void *arg, const struct dir_dump_nonce *n,
	    struct err_ctx *e);
	int (*message)(void *arg, const struct dir_dump_message *m,
	    struct err_ctx *e);
	int (*queue)(void *arg, const struct dir_dump_queue *q,
	    struct err_ctx *e);
	int (*usage)(void *arg, const char *account, uint64_t bytes,
	    struct err_ctx *e);
	/* The highest queue seq ever handed out (entries acknowledged since
	 * may have had it): new entries must continue above it, since
	 * devices acknowledge and read on from their last seq. */
	int (*queue_last)(void *arg, uint64_t seq, struct err_ctx *e);
	/* Leaf index of the tree: event seq of account with hash (the
	 * event's hash; the leaf hash is tlog_leaf_hash() of the three). */
	int (*tlog_leaf)(void *arg, uint64_t index, const char *account,
	    uint64_t seq, const uint8_t hash[32], struct err_ctx *e);
	/* The latest checkpoint: size leaves, its note text. */
	int (*checkpoint)(void *arg, uint64_t size, const char *note,
	    struct err_ctx *e);
	/* Kept blobs (by hash), then the links of messages to blobs (by
	 * message, then hash); NULL skips them (a sink written before
	 * blobs).  The blob files themselves stay where they are: both
	 * directories use the same --blob-dir. */
	int (*blob)(void *arg, const struct dir_dump_blob *b,
	    struct err_ctx *e);
	int (*blob_link)(void *arg, uint64_t message, const char *hash,
	    struct err_ctx *e);
};

/*
 * Dumps the SQLite database at path into sink, read-only: the file is
 * opened read-only in one read transaction and never changed (nor
 * created, nor brought up to date).  ERR_NOT_FOUND when there is no such
 * file, ERR_CONFIG for a database of another schema version than this
 * devid-directory writes (open it once with this version's
 * devid-directory to bring it up to date), ERR_IO for a read error, or
 * the sink's error.
 */
int dir_store_sqlite_dump(const char *path, const struct dir_dump_sink *sink,
    struct err_ctx *e);

/*
 * An import into a PostgreSQL store: one transaction on one connection
 * of s, which must be empty.  dir_store_pg_import_begin() starts it,
 * locks every table against other writers and checks that none holds a
 * row (ERR_EXISTS, naming the table, otherwise); *out is the import, the
 * sink that stores rows in dump order (stored hashes, seqs and ids as
 * given, the id and queue counters moved past them).
 * dir_store_pg_import_dump() reads back what the import holds so far, in
 * the same transaction, as a dump (nonces and message bodies are left
 * out: the sink gets messages with envelope "").
 * dir_store_pg_import_end() commits when commit is non-zero (its error
 * when that fails) or rolls back, and frees imp either way; NULL is fine.
 * s must stay open until then.
 */
struct dir_import;

int dir_store_pg_import_begin(struct dir_store *s, struct dir_import **out,
    struct err_ctx *e);
const struct dir_dump_sink *dir_store_pg_import_sink(struct dir_import *imp);
int dir_store_pg_import_dump(struct dir_import *imp,
    const struct dir_dump_sink *sink, struct err_ctx *e);
int dir_store_pg_import_end(struct dir_import *imp, int commit,
    struct err_ctx *e);
/*
 * The size of the tree the import holds so far and its root, computed
 * from the stored nodes the import wrote (merkle_root()), in the same
 * transaction: what a migration compares with the source's tree.
 */
int dir_store_pg_import_tlog_root(struct dir_import *imp, uint64_t *size,
    uint8_t root[32], struct err_ctx *e);

#endif /* DEVID_DIR_STORE_H */
