/*
 * wit-check.h - what a witness does with an add-checkpoint request, given
 * what it holds for the log (C2SP tlog-witness, docs/protocol.md 7.4).
 *
 * Pure logic on caller memory, so that the rules are tested without HTTP
 * or a database: the store (wit-store.c) reads what the witness holds,
 * calls wit_check() inside its write transaction and acts on the verdict.
 */
#ifndef DEVID_WIT_CHECK_H
#define DEVID_WIT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "tlog-note.h"

/* What the witness holds for one log. */
struct wit_held {
	int have;                     /* 0: nothing cosigned yet */
	uint64_t size;                /* last cosigned size (0 without) */
	uint8_t root[MERKLE_HASH_LEN];/* its root (H("") without) */
	int have_at_size;             /* a cosigned checkpoint of the offered
	                               * size exists in the history */
	uint8_t root_at_size[MERKLE_HASH_LEN];
};

enum wit_verdict {
	WIT_COSIGN_NEW = 0,           /* extends: store it, then cosign */
	WIT_COSIGN_SAME,              /* the checkpoint held: cosign again */
	WIT_BAD_OLD,                  /* old > size: 400 */
	WIT_STALE,                    /* old is not the held size: 409 */
	WIT_FORK,                     /* a cosigned size with another root:
	                               * 409, and evidence */
	WIT_BAD_PROOF,                /* the proof does not verify: 422,
	                               * and evidence when a checkpoint is
	                               * held */
};

/*
 * The verdict on the request "old, proof (n hashes), checkpoint c" given
 * h, in this order: old > c->size is WIT_BAD_OLD; a cosigned checkpoint
 * of c's size with another root is WIT_FORK (whatever old says); old
 * other than h->size is WIT_STALE; old == c->size needs an empty proof
 * (else WIT_BAD_PROOF) and then is WIT_COSIGN_SAME, or WIT_COSIGN_NEW for
 * a log with nothing held yet; otherwise the RFC 9162 consistency proof
 * from (h->size, h->root) to c decides between WIT_COSIGN_NEW and
 * WIT_BAD_PROOF.  Never fails.
 */
enum wit_verdict wit_check(const struct wit_held *h, uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const struct tlog_checkpoint *c);

/* A short text for the evidence record of WIT_FORK and WIT_BAD_PROOF. */
const char *wit_verdict_reason(enum wit_verdict v);

#endif /* DEVID_WIT_CHECK_H */
