/*
 * dir-migrate.h - devid-directory migrate: copies a SQLite directory
 * into an empty PostgreSQL database and verifies the copy.
 *
 * Everything a device relies on is copied as it is stored: accounts with
 * their password hashes and creation times, every account log event with
 * its stored hash, the devices (revoked ones too), login nonces, queued
 * messages with their queue entries and seqs, the bytes counted against
 * each account's quota, the queue counter, the global transparency log's
 * leaves in index order (the target computes the stored nodes of its tree
 * from them) and its latest checkpoint, and the rows of the blobs kept
 * with the links of messages to them (the blob files stay in the
 * --blob-dir both directories use).  Sessions are not copied:
 * a device logs in again.  The source is only read; the target is written
 * in one transaction that commits only after every account log in it
 * verified from seq 1 (acctlog_state_apply(): the chain, each event's
 * hash, the records and revoke signatures), the devices table matched
 * each log's active devices, every count matched the source's, each
 * leaf of the tree named an event of the copy, the tree computed
 * from the target's stored nodes had the size and root of the source's
 * leaves, and every link named a message of the copy.
 */
#ifndef DEVID_DIR_MIGRATE_H
#define DEVID_DIR_MIGRATE_H

#include <stdint.h>

#include "errors.h"

/* What a dump holds, counted row by row. */
struct dir_migrate_counts {
	uint64_t accounts;
	uint64_t events;
	uint64_t devices;             /* revoked ones too */
	uint64_t active_devices;
	uint64_t nonces;
	uint64_t messages;            /* envelopes */
	uint64_t queued;              /* queue entries: one per recipient */
	uint64_t usage_rows;
	uint64_t queue_bytes;         /* sum of the queue entries' sizes */
	uint64_t usage_bytes;         /* sum of the account usage */
	uint64_t queue_last;          /* the highest queue seq given */
	uint64_t tlog_size;           /* leaves of the transparency log */
	uint8_t tlog_root[32];        /* the root of those leaves */
	uint64_t checkpoint_size;     /* the latest checkpoint's (0: none) */
	uint64_t blobs;               /* blob rows */
	uint64_t blob_bytes;          /* sum of their sizes */
	uint64_t blob_links;          /* links of messages to blobs */
};

/*
 * Copies the SQLite directory at from into the PostgreSQL database that
 * the connection string to names (its schema is created when missing; it
 * must hold no row), then verifies the copy as above before committing.
 * On success *copied (may be NULL) gets the counts.  On any failure the
 * target keeps no row of the copy and e says what failed: ERR_EXISTS for
 * a target that is not empty, ERR_CHAIN when a log does not verify (the
 * source is damaged), ERR_IO when a count or the tree's root differs,
 * ERR_FORMAT when the source's leaves have a gap, or the error of
 * reading the source or writing the target.  Messages never show to,
 * which may carry a password.
 */
int dir_migrate_run(const char *from, const char *to,
    struct dir_migrate_counts *copied, struct err_ctx *e);

#endif /* DEVID_DIR_MIGRATE_H */
