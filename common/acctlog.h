/*
 * acctlog.h - account logs and signed heads (PROTOCOL.md section 3).
 *
 * The directory appends events to each account's log and signs heads; the
 * agent's watcher and the messaging client keep a verified view of a log
 * (struct acctlog_state) and move it forward only through
 * acctlog_verify_update(), which checks every new event and the signed head
 * and changes nothing unless all of it holds.
 *
 * Log responses (GET /v1/accounts/{a}/log) are one JSON object:
 *
 *     { "events": [ event, ... ], "head": { signed head } }
 *
 * with the events in increasing seq order, consecutive, at most
 * ACCTLOG_MAX_EVENTS of them.
 *
 * Events, heads and responses are in acctlog.c, the state's life and JSON
 * in acctlog-state.c, and the rules that move a state forward in
 * acctlog-verify.c.
 */
#ifndef DEVID_ACCTLOG_H
#define DEVID_ACCTLOG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "devrec.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

#define ACCTLOG_ACCOUNT_MAX 128

/* A directory-signed head: what the directory says the log ends with. */
struct acctlog_head {
	char account[ACCTLOG_ACCOUNT_MAX + 1];
	uint64_t seq;
	uint8_t hash[32];       /* all zeros when seq is 0 */
	uint64_t time;
	uint8_t sig[64];        /* raw r||s by the directory's head key */
};

/* Limits of what a verifier accepts. */
#define ACCTLOG_MAX_EVENTS 1024          /* events in one log response */
#define ACCTLOG_MAX_DEVICES 256          /* active devices of one account */
#define ACCTLOG_HISTORY_MAX 1024         /* event summaries a state keeps */
#define ACCTLOG_HEAD_JSON_MAX ((size_t)1024)
#define ACCTLOG_EVENT_JSON_MAX ((size_t)10240)
#define ACCTLOG_RESPONSE_MAX ((size_t)4 * 1024 * 1024)
#define ACCTLOG_STATE_JSON_MAX ((size_t)8 * 1024 * 1024)

enum acctlog_type {
	ACCTLOG_ADD = 1,
	ACCTLOG_REVOKE = 2,
};

/* "add" / "revoke"; NULL for anything else. */
const char *acctlog_type_name(enum acctlog_type type);

/*
 * One event.  For an add, record is the device record and device is a copy
 * of record.device; for a revoke, device is the revoked device and
 * revoke_sig the revoking device's signature over R (whose time is the
 * event's time).  hash is the event hash as the directory states it; a
 * verifier recomputes it.
 */
struct acctlog_event {
	uint64_t seq;
	uint64_t time;
	enum acctlog_type type;
	uint8_t prev[32];
	uint8_t hash[32];
	struct devrec record;                   /* add */
	char device[DEVREC_ID_HEX_LEN + 1];     /* add and revoke */
	uint8_t revoke_sig[DEVREC_SIG_LEN];     /* revoke */
};

/* --- events --- */

/* The event hash of ev from its fields (ev->hash is ignored). */
int acctlog_event_hash(const struct acctlog_event *ev, uint8_t out[32]);

/* H(R): what an active device signs to revoke device_id at time. */
int acctlog_revoke_digest(const char *account, const char *device_id,
    uint64_t time, uint8_t out[32]);

/*
 * Directory side: fills *ev with a complete event at seq after prev (the
 * previous event's hash, zeros for seq 1) and computes its hash.  The
 * record or revoke signature is taken as given; check it against the
 * account's state with acctlog_state_apply() before appending.  *ev is only
 * written on success.
 */
int acctlog_event_add(struct acctlog_event *ev, uint64_t seq, uint64_t time,
    const uint8_t prev[32], const struct devrec *rec, struct err_ctx *e);
int acctlog_event_revoke(struct acctlog_event *ev, uint64_t seq,
    uint64_t time, const uint8_t prev[32], const char *device_id,
    const uint8_t revoke_sig[DEVREC_SIG_LEN], struct err_ctx *e);

/*
 * JSON of one event.  to_json gives a new object (caller json_decref).
 * from_json is strict (known fields only, every type checked, ids and
 * hashes exactly 64 lowercase hex digits, seq >= 1) and verifies nothing
 * cryptographic (the chain is checked by acctlog_state_apply()); *out is
 * only written on success.
 */
int acctlog_event_to_json(const struct acctlog_event *ev, json_t **out,
    struct err_ctx *e);
int acctlog_event_from_json(const json_t *obj, struct acctlog_event *out,
    struct err_ctx *e);

/* --- signed heads --- */

/* hex(H(SPKI)) of the directory's head key into out. */
int acctlog_directory_id(EVP_PKEY *dir_pub, char out[DEVREC_ID_HEX_LEN + 1]);

/* H(head transcript) of h for the directory directory_id. */
int acctlog_head_digest(const struct acctlog_head *h,
    const char *directory_id, uint8_t out[32]);

/* Directory side: signs h (account, seq, hash, time set) in place. */
int acctlog_head_sign(struct acctlog_head *h, const char *directory_id,
    devrec_sign_fn sign, void *sign_arg, struct err_ctx *e);

/*
 * Verifies h under the pinned directory key.  presented_id, when not NULL,
 * is the directory id the directory claims to sign with now (from
 * /v1/info, for example): if it is not the pinned key's id the head is
 * ERR_WRONG_KEY whatever its signature.  Otherwise a signature that does
 * not verify under the pinned key is ERR_SIGNATURE.  The account name must
 * be valid and seq 0 must come with a zero hash (ERR_FORMAT).
 */
int acctlog_head_verify(const struct acctlog_head *h, EVP_PKEY *pinned,
    const char *presented_id, struct err_ctx *e);

/* JSON of a signed head, strict like the events; parse takes len bytes of
 * text (at most ACCTLOG_HEAD_JSON_MAX), rejecting duplicate keys. */
int acctlog_head_to_json(const struct acctlog_head *h, json_t **out,
    struct err_ctx *e);
int acctlog_head_from_json(const json_t *obj, struct acctlog_head *out,
    struct err_ctx *e);
int acctlog_head_parse(const char *s, size_t len, struct acctlog_head *out,
    struct err_ctx *e);

/* --- log responses --- */

/*
 * The optional "tlog" member of a log response read with tlog=1
 * (PROTOCOL.md section 7.5): a signed checkpoint of the global
 * transparency log, and the inclusion proof of the account's event seq at
 * leaf index in it.  Parsed, not verified (tlog_check_log() does that).
 * present is 0 when the member was absent; checkpoint is then NULL.
 */
struct acctlog_tlog {
	int present;
	char *checkpoint;              /* NUL-terminated, at most
	                                * TLOG_NOTE_MAX bytes */
	size_t checkpoint_len;
	uint64_t seq;                  /* >= 1 */
	uint64_t index;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t n_proof;
};

/* A parsed log response; free with acctlog_response_free(). */
struct acctlog_response {
	struct acctlog_event *events;
	size_t n_events;
	struct acctlog_head head;
	struct acctlog_tlog tlog;      /* present only with tlog=1 */
};

/* NULL is fine. */
void acctlog_response_free(struct acctlog_response *resp);

/*
 * Builds a response object from n events and a head (directory side).
 */
int acctlog_response_to_json(const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, json_t **out, struct err_ctx *e);

/*
 * Parses a log response of len bytes (at most ACCTLOG_RESPONSE_MAX):
 * { "events": [...], "head": {...} } with at most ACCTLOG_MAX_EVENTS
 * events of consecutive seq, the last not past head.seq, and optionally
 * "tlog": { "checkpoint": string of 1..TLOG_NOTE_MAX bytes, "seq":
 * 1..head.seq, "index": integer >= 0, "proof": array of at most
 * MERKLE_PROOF_MAX base64url hashes } with exactly those keys (into
 * resp->tlog; ERR_FORMAT or ERR_TOO_LARGE otherwise).  Returns a new
 * response in *out (caller frees) or an ERR_* code with *out untouched.
 */
int acctlog_response_parse(const char *s, size_t len,
    struct acctlog_response **out, struct err_ctx *e);

/* --- verified state of one account --- */

/* An active device and the add event that brought it in. */
struct acctlog_device {
	struct devrec rec;
	uint64_t add_seq;
	uint8_t add_hash[32];
};

/* A summary of one applied event. */
struct acctlog_entry {
	uint64_t seq;
	uint64_t time;
	enum acctlog_type type;
	char device[DEVREC_ID_HEX_LEN + 1];
	uint8_t hash[32];
};

/*
 * The verified view of one account's log under one directory key.
 * seq/hash are the last verified event (0 and zeros for the empty log);
 * head is the last verified signed head (valid when has_head; its seq and
 * hash equal seq and hash).  devices are the active devices in order of
 * addition.  history keeps the summaries of the last ACCTLOG_HISTORY_MAX
 * events this state applied (older ones are dropped first).  The arrays
 * are owned by the state; release everything with acctlog_state_clear().
 */
struct acctlog_state {
	char account[ACCTLOG_ACCOUNT_MAX + 1];
	char directory[DEVREC_ID_HEX_LEN + 1];  /* pinned directory id */
	uint64_t seq;
	uint8_t hash[32];
	int has_head;
	struct acctlog_head head;
	struct acctlog_device *devices;
	size_t n_devices;
	struct acctlog_entry *history;
	size_t n_history;
};

/*
 * Initialises *st to the empty log (seq 0) of account under the directory
 * whose id is directory_id.  0, ERR_FORMAT (bad account or id) or
 * ERR_INVALID_ARG.  *st needs acctlog_state_clear() afterwards either way.
 */
int acctlog_state_init(struct acctlog_state *st, const char *account,
    const char *directory_id, struct err_ctx *e);

/* Frees what st holds and zeroes it; NULL is fine. */
void acctlog_state_clear(struct acctlog_state *st);

/* Makes dst a deep copy of src (dst is overwritten, not cleared first). */
int acctlog_state_copy(struct acctlog_state *dst,
    const struct acctlog_state *src);

/* The active device with this id, or NULL. */
const struct acctlog_device *acctlog_state_find(
    const struct acctlog_state *st, const char *device_id);

/*
 * Applies n events, which must continue st exactly (first seq st->seq + 1,
 * consecutive, each prev the hash before it), checking each: recomputed
 * hash equals the stated one; an add's record verifies, is of this account,
 * is not already active, and its endorsement (if any) is by a device active
 * at that point and verifies; a revoke names an active device and its
 * revoke_sig verifies under the key of a device active at that point.  On
 * success st has moved to the last event (has_head is cleared: the head no
 * longer matches).  On any failure st is left exactly as it was.  Errors:
 * ERR_CHAIN (seq, prev or hash), ERR_FORMAT, ERR_SIGNATURE, ERR_EXISTS,
 * ERR_NOT_FOUND, ERR_TOO_LARGE (device or count limit).  The directory uses
 * this to check an event before appending it.
 */
int acctlog_state_apply(struct acctlog_state *st,
    const struct acctlog_event *events, size_t n, struct err_ctx *e);

/*
 * What a failed update proves, and what a successful one changed.
 * On ERR_ROLLBACK, ERR_FORK and ERR_CHAIN after the new head's signature
 * verified, kind is that code, seq the seq at which the views disagree,
 * verified the last head st had verified (has_verified says whether st had
 * one) and conflicting the new signed head: together they are the
 * evidence to keep and show.  On success kind is 0, and events
 * [first_applied, first_applied + n_applied) of the caller's array were
 * newly applied, in order (the watcher announces each add and revoke).
 */
struct acctlog_evidence {
	int kind;
	uint64_t seq;
	int has_verified;
	struct acctlog_head verified;
	struct acctlog_head conflicting;
	size_t first_applied;
	size_t n_applied;
};

/*
 * Moves st forward to head, verifying it all (PROTOCOL.md section 3, client
 * rules):
 *  1. head is for st's account and signed by dir_pub, whose id must be
 *     st->directory (else ERR_WRONG_KEY; a bad signature is ERR_SIGNATURE);
 *  2. head.seq < st->seq: ERR_ROLLBACK; head.seq == st->seq with another
 *     hash: ERR_FORK (both with the two heads in ev);
 *  3. head.time + max_stale_s < now: ERR_STALE (UINT64_MAX never stale);
 *  4. events: those at or below st->seq are skipped (the one at st->seq
 *     must hash to st->hash, else ERR_FORK), the rest are applied as by
 *     acctlog_state_apply() (ERR_CHAIN when they do not continue st's hash,
 *     with the heads in ev), and must end exactly at head.seq with
 *     head.hash (ERR_CHAIN).
 * Only when everything holds is st changed (seq, hash, devices, history,
 * head); on any failure st is untouched.  ev may be NULL.
 */
int acctlog_verify_update(struct acctlog_state *st,
    const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, EVP_PKEY *dir_pub, uint64_t now,
    uint64_t max_stale_s, struct acctlog_evidence *ev, struct err_ctx *e);

/*
 * State JSON for the agent's registry:
 *   { "account", "directory", "seq", "hash", "head" (optional),
 *     "devices": [ { "record", "add_seq", "add_hash" } ],
 *     "history": [ { "seq", "time", "type", "device", "hash" } ] }
 * from_json checks syntax, limits, each record (devrec_verify) and that the
 * head matches (seq, hash); it does not check the head signature (the
 * registry is signed as a whole).  *st is initialised by from_json (clear
 * it afterwards) and left empty on failure.
 */
int acctlog_state_to_json(const struct acctlog_state *st, json_t **out,
    struct err_ctx *e);
int acctlog_state_from_json(const json_t *obj, struct acctlog_state *st,
    struct err_ctx *e);

#endif /* DEVID_ACCTLOG_H */
