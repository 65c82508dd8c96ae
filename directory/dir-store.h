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
	 * account and no quota.
	 */
	int (*message_put)(struct dir_store *s, const char *sender_device,
	    const uint8_t *msg_id, size_t msg_id_len, const char *envelope,
	    const char *const *devices, size_t n,
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
};

/* Every store object starts with this head. */
struct dir_store {
	const struct dir_store_ops *ops;
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
 * Opens the PostgreSQL database that uri names: a libpq connection URI
 * (postgresql://...) or a keyword string.  The password comes from
 * libpq's own sources (PGPASSFILE, a service file) or from uri; no
 * message ever shows it.  Brings the schema up to date under an advisory
 * lock, so several processes may open one database at once.  Connections
 * are opened as threads need them and kept in a small pool; one that
 * breaks makes its operation fail with ERR_NETWORK, and the next
 * operation connects again.  On success *out is a new store; close it
 * with dir_store_close().  ERR_NETWORK when the database cannot be
 * reached, ERR_CONFIG for a malformed uri or a database written by a
 * newer devid-directory.
 */
int dir_store_pg_open(const char *uri, struct dir_store **out,
    struct err_ctx *e);

/* s->ops->close(s); NULL is fine. */
void dir_store_close(struct dir_store *s);

#endif /* DEVID_DIR_STORE_H */
