/*
 * tlog-client.h - what a client (devid-agent, devid-msg) checks of the
 * directory's global transparency log (docs/protocol.md section 7).
 *
 * A client is configured with witnesses (vkeys) and a quorum k.  It
 * accepts a checkpoint only when it carries the directory's signature
 * under the pinned directory key and valid cosignatures of at least k
 * distinct configured witnesses; it keeps the largest checkpoint it has
 * accepted (struct tlog_state, a file) and requires every new one to be
 * consistent with it; and it accepts an account's log only with an
 * inclusion proof of the account's event in an accepted checkpoint.
 *
 * Nothing here talks to the network: proofs the client needs from the
 * directory are asked for through a callback (tlog_proof_fn), which
 * dirclient's tlog calls implement.
 */
#ifndef DEVID_TLOG_CLIENT_H
#define DEVID_TLOG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

#define TLOG_WITNESS_MAX 16
/* Cosignature timestamps this far in the future are refused. */
#define TLOG_FUTURE_SKEW 300

struct tlog_policy {
	struct tlog_vkey witness[TLOG_WITNESS_MAX];
	size_t n_witness;
	unsigned int quorum;          /* 1 .. n_witness */
	uint64_t max_stale;           /* seconds; 0: not checked */
};

/*
 * Adds the witness named by the vkey string s (type 0x04).  ERR_FORMAT
 * for a malformed vkey or another type, ERR_EXISTS for a witness given
 * twice, ERR_TOO_LARGE past TLOG_WITNESS_MAX.
 */
int tlog_policy_add_witness(struct tlog_policy *p, const char *s,
    struct err_ctx *e);

/* ERR_CONFIG unless 1 <= quorum <= n_witness. */
int tlog_policy_check(const struct tlog_policy *p, struct err_ctx *e);

/* A checkpoint that passed tlog_checkpoint_verify(). */
struct tlog_verified {
	struct tlog_note note;
	struct tlog_checkpoint cp;
	unsigned int n_cosig;         /* valid cosignatures of configured
	                               * witnesses */
	uint64_t fresh;               /* the quorum-th newest of their
	                               * timestamps */
};

/*
 * Verifies the signed note (len bytes) as a checkpoint of the directory
 * whose SPKI is dir_spki: the directory's type 0x02 signature under the
 * note's origin, then each configured witness's cosignature.  Fails with
 * ERR_SIGNATURE (directory signature missing or bad, or a configured
 * witness's line present but invalid), ERR_DENIED (fewer than quorum
 * valid cosignatures; the message says how many of how many), ERR_STALE
 * (now - fresh > max_stale; *out is filled all the same) or ERR_FORMAT.
 */
int tlog_checkpoint_verify(const struct tlog_policy *p,
    const uint8_t *dir_spki, size_t spki_len, const char *note, size_t len,
    uint64_t now, struct tlog_verified *out, struct err_ctx *e);

/* The largest checkpoint a client has accepted. */
struct tlog_state {
	int have;
	char note[TLOG_NOTE_MAX + 1]; /* as served, with its signatures */
	size_t note_len;
	struct tlog_checkpoint cp;
	uint64_t fresh;
};

/* Loads st from path; a missing file is the empty state (have 0). */
int tlog_state_load(const char *path, struct tlog_state *st,
    struct err_ctx *e);
/* Writes st to path durably (temporary file, fsync, rename), mode 0600. */
int tlog_state_save(const char *path, const struct tlog_state *st,
    struct err_ctx *e);

/* Fetches the consistency proof from size old to size new. */
typedef int (*tlog_proof_fn)(void *arg, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e);

/* Two checkpoints that cannot both be true. */
struct tlog_fork {
	char held[TLOG_NOTE_MAX + 1];   /* the one the client had */
	char shown[TLOG_NOTE_MAX + 1];  /* the one that contradicts it */
};

/*
 * Brings st up to the accepted checkpoint v.  Same size: the roots must
 * be equal.  v larger: a consistency proof from st to v (through get)
 * must verify, and st becomes v.  v smaller: a proof from v to st must
 * verify, and st stays.  A different origin, unequal roots or a proof
 * that fails are ERR_FORK with both notes in *fork (may be NULL); a
 * proof that cannot be fetched is get's error.  *changed (may be NULL)
 * is set when st changed and should be saved.
 */
int tlog_state_update(struct tlog_state *st, const struct tlog_verified *v,
    tlog_proof_fn get, void *arg, int *changed, struct tlog_fork *fork,
    struct err_ctx *e);

/*
 * Whether event seq of account, whose hash is ev, is leaf index of the
 * checkpoint v by the inclusion proof (n hashes).  0, or ERR_SIGNATURE
 * when the proof fails.
 */
int tlog_inclusion_check(const struct tlog_verified *v, const char *account,
    uint64_t seq, const uint8_t ev[MERKLE_HASH_LEN], uint64_t index,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n, struct err_ctx *e);

#endif /* DEVID_TLOG_CLIENT_H */
