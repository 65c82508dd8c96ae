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

/* --- the checks of a client, over a directory (dirclient) --- */

struct dirc;
struct acctlog_response;

/*
 * What tlog_check_log() and tlog_check_checkpoint() found.  It is large
 * (two notes and a parsed one): allocate it, do not put it on a thread's
 * stack.
 *
 * On success: v is the checkpoint that was checked (have_v), changed says
 * that the kept state moved to it (and was saved), proven_seq is the
 * account's latest event proven to be in v (0: none) and head_seq the
 * account's signed head seq; pending is set when proven_seq < head_seq,
 * that is when events are "not yet proven" (not an error: wait for a
 * later checkpoint and read again).
 *
 * On failure the code says which alert to raise:
 *   ERR_DENIED     no quorum of the configured witnesses (or the
 *                  directory's signature missing: ERR_SIGNATURE, below);
 *   ERR_STALE      the checkpoint's quorum-th newest cosignature is older
 *                  than max_stale (v is filled, have_v set), or a
 *                  cosignature is more than TLOG_FUTURE_SKEW s ahead;
 *   ERR_FORK       the checkpoint contradicts the kept one: fork holds
 *                  both notes (held = kept, shown = the new one), have_fork
 *                  set;
 *   ERR_SIGNATURE  the directory's signature on the note, a configured
 *                  witness's cosignature line, or the inclusion proof of
 *                  the account's event does not verify (inclusion is
 *                  told apart by inclusion_failed);
 *   ERR_FORMAT     the note or the tlog member is malformed;
 *   others         the directory could not be asked (ERR_NETWORK, ...) or
 *                  the state could not be saved (ERR_IO; the kept state
 *                  in memory is then left as it was, too).
 */
struct tlog_check_result {
	uint64_t proven_seq;
	uint64_t head_seq;
	int pending;
	int changed;
	int have_v;
	struct tlog_verified v;
	int have_fork;
	struct tlog_fork fork;
	int inclusion_failed;
};

/* Fetches the directory's latest signed checkpoint (a new string). */
typedef int (*tlog_note_fn)(void *arg, char **note, size_t *len,
    struct err_ctx *e);

/*
 * 7.6 steps 1 to 4 for one log read of account (resp, read with
 * dirc_get_log_tlog() from c, the events of which the caller has already
 * verified with acctlog_verify_update()):
 *  - the checkpoint of resp->tlog (or, when resp has no tlog member, the
 *    directory's latest one, fetched from c) is verified with
 *    tlog_checkpoint_verify() under the pinned directory SPKI;
 *  - st is brought up to it with tlog_state_update(), consistency proofs
 *    fetched from c; when st changed it is saved to state_path (NULL: not
 *    saved) with tlog_state_save() before this returns;
 *  - resp->tlog's inclusion proof must verify the leaf of event
 *    resp->tlog.seq of account whose hash is ev_hash_of_tlog_seq; when
 *    that is NULL the hash is taken from resp (the event of that seq among
 *    resp->events, or resp->head when its seq is that one), and when resp
 *    does not have it either the check is ERR_INVALID_ARG (the caller must
 *    say it: it knows its verified history).  tlog.seq past the signed
 *    head is ERR_FORMAT.
 * res (not NULL) is filled as described above.  now is the client's
 * clock in seconds.
 *
 * tlog_check_log() is defined in dirclient.c (it is in the library that
 * links libcurl); it is tlog_check_log_cb() with c's
 * dirc_tlog_consistency() and dirc_tlog_checkpoint(), which does the work
 * and which tests call with their own callbacks (latest may be NULL: then
 * a response without a tlog member only sets pending).
 */
int tlog_check_log(const struct tlog_policy *p, const uint8_t *dir_spki,
    size_t spki_len, struct tlog_state *st, const char *state_path,
    struct dirc *c, const char *account, const struct acctlog_response *resp,
    const uint8_t *ev_hash_of_tlog_seq, uint64_t now,
    struct tlog_check_result *res, struct err_ctx *e);
int tlog_check_log_cb(const struct tlog_policy *p, const uint8_t *dir_spki,
    size_t spki_len, struct tlog_state *st, const char *state_path,
    tlog_proof_fn get, tlog_note_fn latest, void *arg, const char *account,
    const struct acctlog_response *resp, const uint8_t *ev_hash_of_tlog_seq,
    uint64_t now, struct tlog_check_result *res, struct err_ctx *e);

/*
 * 7.7: a checkpoint shown by someone else (a message's sender): 7.6 steps
 * 1 and 3 only -- its directory signature and quorum are verified (its
 * age is not: ERR_STALE only for a cosignature from more than
 * TLOG_FUTURE_SKEW seconds in the future), then st is brought up to it as
 * above (saved to state_path when it changed).  Errors and res as for
 * tlog_check_log(); proven_seq, head_seq and pending are 0.  Defined in
 * dirclient.c like tlog_check_log(); tlog_check_checkpoint_cb() does the
 * work.
 */
int tlog_check_checkpoint(const struct tlog_policy *p,
    const uint8_t *dir_spki, size_t spki_len, struct tlog_state *st,
    const char *state_path, struct dirc *c, const char *note, size_t len,
    uint64_t now, struct tlog_check_result *res, struct err_ctx *e);
int tlog_check_checkpoint_cb(const struct tlog_policy *p,
    const uint8_t *dir_spki, size_t spki_len, struct tlog_state *st,
    const char *state_path, tlog_proof_fn get, void *arg, const char *note,
    size_t len, uint64_t now, struct tlog_check_result *res,
    struct err_ctx *e);

#endif /* DEVID_TLOG_CLIENT_H */
