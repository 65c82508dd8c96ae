/*
 * wit-store.h - devid-witness's state: for each log the last checkpoint
 * it cosigned, every checkpoint it ever cosigned, and the evidence of
 * checkpoints it refused because they did not extend that history.
 *
 * One SQLite database, STATE/witness.db (mode 0600, WAL,
 * synchronous=FULL), in a private directory.  A submission is checked
 * and stored in one BEGIN IMMEDIATE transaction, so that two requests (or
 * two processes) can never both extend one size.  One process serves a
 * state directory at a time: it holds an exclusive lock on
 * STATE/witness.lock; readers (status, evidence) take no lock.
 *
 * A struct wit_store may be used from several threads; calls are
 * serialised.
 */
#ifndef DEVID_WIT_STORE_H
#define DEVID_WIT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"
#include "wit-check.h"

#define WIT_STORE_READONLY 0x1        /* status, evidence: no lock, no
                                       * creation, no writes */

struct wit_store;

/*
 * Opens (creating with flags 0) the state in dir.  Without
 * WIT_STORE_READONLY it creates dir with mode 0700 when missing and
 * takes the lock: ERR_EXISTS when another process holds it.  With it, a
 * missing database is ERR_NOT_FOUND.
 */
int wit_store_open(const char *dir, unsigned int flags,
    struct wit_store **out, struct err_ctx *e);

/* Closes s and releases its lock.  NULL is fine. */
void wit_store_close(struct wit_store *s);

/*
 * In one transaction: reads what is held for c->origin, asks wit_check()
 * and acts on its verdict *v: WIT_COSIGN_NEW stores c with its signed
 * note (note_len bytes) and time now as the log's latest and in its
 * history; WIT_FORK and WIT_BAD_PROOF (when something is held) store an
 * evidence record with the note held and the note offered, once per
 * offered note.  *held_size gets the size held before the call.  Returns
 * 0 whatever the verdict once it is durable, or an error (nothing
 * changed).
 */
int wit_store_submit(struct wit_store *s, uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const struct tlog_checkpoint *c, const char *note, size_t note_len,
    uint64_t now, enum wit_verdict *v, uint64_t *held_size,
    struct err_ctx *e);

/* One log's latest cosigned checkpoint. */
struct wit_status {
	const char *origin;
	uint64_t size;
	const uint8_t *root;          /* MERKLE_HASH_LEN bytes */
	uint64_t time;                /* when it was cosigned, Unix time */
	const char *note;             /* the signed note as submitted */
};

/* One refused checkpoint. */
struct wit_evidence {
	uint64_t time;
	const char *origin;
	const char *reason;
	const char *held;             /* the signed note the witness held */
	const char *offered;          /* the one it refused */
};

typedef int (*wit_status_fn)(void *arg, const struct wit_status *st);
typedef int (*wit_evidence_fn)(void *arg, const struct wit_evidence *ev);

/*
 * Calls fn for every log (by origin) or every evidence record (oldest
 * first); a non-zero return from fn stops and is returned.
 */
int wit_store_status(struct wit_store *s, wit_status_fn fn, void *arg,
    struct err_ctx *e);
int wit_store_evidence(struct wit_store *s, wit_evidence_fn fn, void *arg,
    struct err_ctx *e);

#endif /* DEVID_WIT_STORE_H */
