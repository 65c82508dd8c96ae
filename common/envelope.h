/*
 * envelope.h - the message envelope (PROTOCOL.md section 4).
 *
 * A sender seals an inner payload once with AES-256-GCM under a random
 * content key K, wraps K to every recipient device (HPKE P-256 or
 * RSA-OAEP-SHA256) and signs the whole with its device signing key.  A
 * recipient runs the checks of section 4 in their fixed order and learns
 * only "rejected" or the payload; the precise reason goes to its local log.
 *
 * envelope.c holds the structure, the HDR/SIG transcripts, seal and open;
 * envelope-json.c the JSON encoding, the strict parser and the inner
 * payload.  Private keys are never touched here: signing, the recipient's
 * DH and RSA decryption are callbacks so that they can run in a token.
 */
#ifndef DEVID_ENVELOPE_H
#define DEVID_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "buf.h"
#include "errors.h"
#include "hpke.h"
#include "token.h"

#define ENV_VERSION 1
#define ENV_ID_LEN 16
#define ENV_KEY_LEN 32               /* content key K */
#define ENV_NONCE_LEN 12
#define ENV_TAG_LEN 16
#define ENV_SIG_LEN 64
#define ENV_DEVICE_LEN 64            /* hex device id */
#define ENV_ACCOUNT_MAX 128
#define ENV_HPKE_WRAPPED_LEN 48      /* K (32) + AES-128-GCM tag (16) */

/* Limits.  ENV_MAX_RECIPIENTS is section 4's; the others are devid's
 * choices where the protocol leaves room. */
#define ENV_MAX_RECIPIENTS 1024
#define ENV_MAX_TO 256               /* accounts in "to" */
#define ENV_MAX_BYTES_DEFAULT ((size_t)8 * 1024 * 1024)
#define ENV_PAYLOAD_TYPE_MAX 255
#define ENV_PAYLOAD_NAME_MAX 255
/* Largest integer a JSON member may carry (docs/protocol.md section 6). */
#define ENV_JSON_INT_MAX ((uint64_t)1 << 53)
/* RSA-OAEP wraps: RSA 2048 or 3072 only (docs/protocol.md section 6). */
#define ENV_RSA2048_WRAPPED_LEN 256
#define ENV_RSA3072_WRAPPED_LEN 384

/* One recipient device's copy of the content key. */
struct env_recipient {
	char device[ENV_DEVICE_LEN + 1];
	enum token_enc_alg alg;
	uint8_t enc[HPKE_ENC_LEN];   /* hpke-p256: ephemeral point; else 0s */
	uint8_t *wrapped;            /* owned */
	size_t wrapped_len;
};

/*
 * A sealed or parsed envelope.  Every pointer is owned by the envelope and
 * released by env_free().  Invariants established by env_seal() and checked
 * by env_parse(): to[] sorted, unique, containing sender_account;
 * n_views == n_to and views[i].account equals to[i]; recipients[] sorted
 * by device, unique, non-empty and without the sender device;
 * ciphertext_len >= ENV_TAG_LEN.
 */
struct env {
	uint8_t id[ENV_ID_LEN];
	char sender_account[ENV_ACCOUNT_MAX + 1];
	char sender_device[ENV_DEVICE_LEN + 1];
	uint64_t sent;
	char **to;
	size_t n_to;
	struct acctlog_head *views;
	size_t n_views;
	struct env_recipient *recipients;
	size_t n_recipients;
	uint8_t nonce[ENV_NONCE_LEN];
	uint8_t *ciphertext;         /* body ciphertext || tag */
	size_t ciphertext_len;
	uint8_t sig[ENV_SIG_LEN];
};

/* Frees env and everything it owns; NULL is fine. */
void env_free(struct env *env);

/*
 * Transcripts (section 4).  env_hdr() appends HDR to b; env_hdr_hash() is
 * H(HDR); env_sig_digest() is H(SIG), the digest the sender signs.  They
 * encode the fields as they are, without checking the invariants.  0 or
 * ERR_ALLOC / ERR_TOO_LARGE / ERR_CRYPTO.
 */
int env_hdr(const struct env *env, struct buf *b);
int env_hdr_hash(const struct env *env, uint8_t out[32]);
int env_sig_digest(const struct env *env, uint8_t out[32]);
/* Appends the SIG transcript itself to b. */
int env_sig_transcript(const struct env *env, struct buf *b);

/* --- sealing --- */

/*
 * Signs the SIG transcript (len bytes, beginning with the domain tag
 * "devid-env-sig-v1"\0) with the sender's device signing key: the signer
 * computes H(transcript) and signs that digest, raw r||s out.  The whole
 * transcript is passed, not only its hash, so that a signer such as the
 * agent can check the domain tag (tr_is_signable) before it signs.
 */
typedef int (*env_sign_fn)(void *arg, const uint8_t *transcript, size_t len,
    uint8_t sig[ENV_SIG_LEN], struct err_ctx *e);

/* A recipient device as the sender knows it.  enc_pub is borrowed. */
struct env_recipient_key {
	const char *device;          /* 64 lowercase hex */
	enum token_enc_alg alg;
	/* P-256 for hpke-p256, RSA for rsa-oaep; from crypto_spki_import
	 * (which validates it: seal does not validate it again). */
	EVP_PKEY *enc_pub;
};

/*
 * What env_seal() needs; everything is borrowed.  to[] is in any order and
 * may repeat an account (seal sorts and removes duplicates); it must name
 * sender_account.  views[] holds exactly one signed head per distinct
 * account of to[], in any order (seal puts them in the order of to).
 * recipients[] is in any order, at least one, at most ENV_MAX_RECIPIENTS,
 * without duplicates and without the sender device.  payload is the
 * encoded inner payload (env_payload_encode()).
 */
struct env_seal_args {
	const char *sender_account;
	const char *sender_device;
	uint64_t sent;
	const char *const *to;
	size_t n_to;
	const struct acctlog_head *views;
	size_t n_views;
	const struct env_recipient_key *recipients;
	size_t n_recipients;
	const uint8_t *payload;
	size_t payload_len;
	env_sign_fn sign;
	void *sign_arg;
};

/*
 * Seals a new envelope: random id, nonce and K; the payload encrypted once
 * with AES-256-GCM (AAD = HDR); K wrapped once per recipient; signed
 * through a->sign.  On success *out is a new envelope (free with
 * env_free()).  Returns 0, ERR_INVALID_ARG (with the reason in e) for
 * arguments that break the rules above, or the error of a failed
 * operation; *out is untouched on failure.  K is wiped on every path.
 */
int env_seal(const struct env_seal_args *a, struct env **out,
    struct err_ctx *e);

/* --- JSON (envelope-json.c) --- */

/* Limits for env_parse() and env_open(); a zero field means its default
 * (ENV_MAX_BYTES_DEFAULT, ENV_MAX_RECIPIENTS).  max_recipients may not
 * exceed ENV_MAX_RECIPIENTS. */
struct env_limits {
	size_t max_bytes;
	size_t max_recipients;
};

/*
 * Encodes env as compact JSON (section 4) into a new NUL-terminated string
 * in *out of *out_len bytes (the caller frees it).  Fields are written as
 * they are: the invariants are env_seal()'s business.  0, ERR_ALLOC or
 * ERR_INVALID_ARG (an algorithm without a name, or sent above
 * ENV_JSON_INT_MAX, which JSON cannot carry).
 */
int env_to_json(const struct env *env, char **out, size_t *out_len);

/*
 * Parses the len bytes at json into a new envelope in *out (free with
 * env_free()).  Strict and bounded: at most lim->max_bytes bytes and
 * lim->max_recipients recipients (lim may be NULL), nesting at most three
 * levels, no duplicate or unknown members, exact types and lengths,
 * strict base64url, lowercase hex ids, valid account names, every
 * invariant of struct env.  Returns 0, ERR_TOO_LARGE, ERR_FORMAT or
 * ERR_ALLOC with the reason in e; *out is untouched on failure.
 */
int env_parse(const uint8_t *json, size_t len, const struct env_limits *lim,
    struct env **out, struct err_ctx *e);

/*
 * env_parse() that also hands back the JSON tree it read the envelope
 * from: on success *tree, when tree is not NULL, is a new reference to it
 * (release it with json_decref()), so that the caller can pass the same
 * envelope on -- devid-msg puts it into its `open` request to devid-agent
 * -- without parsing the bytes again.  *out and *tree are untouched on
 * failure.
 */
int env_parse_keep_tree(const uint8_t *json, size_t len,
    const struct env_limits *lim, struct env **out, json_t **tree,
    struct err_ctx *e);

/*
 * env_parse() for an envelope that arrives as a JSON tree inside a larger
 * message (devid-agent's `open` request): the same rules and messages,
 * the nesting checked on the tree.  root is borrowed and left as it is.
 * There are no bytes to count: lim->max_bytes bounds the ciphertext only,
 * and whoever parsed the enclosing text bounded its size.
 */
int env_parse_tree(json_t *root, const struct env_limits *lim,
    struct env **out, struct err_ctx *e);

/* One attachment named by a payload (docs/protocol.md section 8.2). */
#define ENV_PAYLOAD_BLOBS_MAX 16
struct env_blob_ref {
	char hash[65];               /* hex SHA-256 of the blob bytes */
	uint64_t size;               /* plaintext bytes */
	uint8_t key[32];             /* the blob key (secret: wiped) */
	char *type;                  /* media type */
	char *name;                  /* file name */
};

/*
 * The inner payload: media type, body bytes, optional file name, and the
 * sender's kept checkpoint of the directory's transparency log
 * (PROTOCOL.md section 7.7), a signed note verified by the recipient, not
 * here.
 */
struct env_payload {
	char *type;
	uint8_t *body;
	size_t body_len;
	char *name;                  /* NULL when absent */
	char *checkpoint;            /* NULL when absent */
	struct env_blob_ref *blobs;  /* NULL when absent */
	size_t n_blobs;              /* 1..ENV_PAYLOAD_BLOBS_MAX, or 0 */
};

/* The longest "checkpoint" member (a signed note, TLOG_NOTE_MAX). */
#define ENV_PAYLOAD_CHECKPOINT_MAX 16384

/* Wipes and frees what p holds and zeroes it; p may be NULL. */
void env_payload_clear(struct env_payload *p);

/*
 * Encodes an inner payload: {"type","body","name"} with body in
 * base64url; name may be NULL.  The type is 1..ENV_PAYLOAD_TYPE_MAX
 * printable ASCII characters; a name is 1..ENV_PAYLOAD_NAME_MAX bytes of
 * UTF-8 without control characters, '/', '\\', and not starting with '.'.
 * *out (caller wipes and frees: it is plaintext) gets the bytes.  0,
 * ERR_INVALID_ARG, ERR_ALLOC.
 */
int env_payload_encode(const char *type, const uint8_t *body,
    size_t body_len, const char *name, uint8_t **out, size_t *out_len,
    struct err_ctx *e);

/*
 * As env_payload_encode(), with the optional member "checkpoint": the
 * signed note checkpoint (NULL: no member), 1..ENV_PAYLOAD_CHECKPOINT_MAX
 * bytes without NUL (else ERR_INVALID_ARG).
 */
int env_payload_encode_cp(const char *type, const uint8_t *body,
    size_t body_len, const char *name, const char *checkpoint,
    uint8_t **out, size_t *out_len, struct err_ctx *e);

/*
 * Encodes every member of p that is set (type and body always; name,
 * checkpoint and blobs when present, with the rules above and of
 * section 8.2: 1..ENV_PAYLOAD_BLOBS_MAX blobs with distinct lowercase
 * hex hashes, size <= 2^53, type and name as the payload's).  The
 * encode functions above are this with fewer members.  *out as above.
 */
int env_payload_encode_full(const struct env_payload *p, uint8_t **out,
    size_t *out_len, struct err_ctx *e);

/*
 * Parses an inner payload strictly (the same rules, unknown members
 * rejected; "checkpoint", when present, a string of
 * 1..ENV_PAYLOAD_CHECKPOINT_MAX bytes; "blobs", when present, as
 * env_payload_encode_full() writes them) into out, which the caller
 * clears with env_payload_clear().
 * 0, ERR_FORMAT, ERR_TOO_LARGE or ERR_ALLOC; out is zeroed on failure.
 */
int env_payload_parse(const uint8_t *p, size_t len, struct env_payload *out,
    struct err_ctx *e);

/* --- opening --- */

/* RSA-OAEP-SHA256 decryption with the own encryption key (in the agent:
 * env_token_rsa_decrypt()). */
typedef int (*env_rsa_decrypt_fn)(void *arg, const uint8_t *ct,
    size_t ct_len, uint8_t *out, size_t out_max, size_t *out_len,
    struct err_ctx *e);

/* An env_rsa_decrypt_fn for a token: arg is the struct token *. */
int env_token_rsa_decrypt(void *arg, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e);

/* The receiving device.  For hpke-p256 set enc_point, dh and dh_arg (in
 * the agent: token_hpke_dh with the token); for rsa-oaep-sha256 set
 * rsa_decrypt and rsa_arg. */
struct env_self {
	const char *device;          /* own device id, 64 lowercase hex */
	enum token_enc_alg alg;
	uint8_t enc_point[HPKE_ENC_LEN];
	hpke_dh_fn dh;
	void *dh_arg;
	env_rsa_decrypt_fn rsa_decrypt;
	void *rsa_arg;
};

/*
 * The recipient's view of the world, as callbacks sharing one arg.  Each
 * returns 0 or an ERR_* code with a message in e.
 *
 * sender_key (check 2): the signing public key of `device` when it is an
 *   active device in the verified log of `account` and, for a contact, one
 *   the user accepted; a new EVP_PKEY in *sig_pub that env_open() frees.
 *   Anything else is an error (ERR_NOT_FOUND, ERR_DENIED, ...).
 * replay_check (check 4): 0 when `id` was never accepted from `device`,
 *   ERR_REPLAY when it was.
 * replay_record: remembers (device, id) after every check has passed; a
 *   failure rejects the message, which is then not accepted.
 * gossip (check 7): compares the sender's views with the own verified
 *   logs, refreshing a log when a view is newer.  The callback raises the
 *   alert itself (it holds both signed heads).  It returns 0 to accept,
 *   or an error -- ERR_FORK for a split view, ERR_STALE when the directory
 *   will not show a newer head -- which rejects the message: a sender who
 *   saw another device list may have encrypted to a device this account
 *   never accepted, so the user hears about the alert before the text.
 */
struct env_open_ops {
	int (*sender_key)(void *arg, const char *account, const char *device,
	    EVP_PKEY **sig_pub, struct err_ctx *e);
	int (*replay_check)(void *arg, const char *device,
	    const uint8_t id[ENV_ID_LEN], struct err_ctx *e);
	int (*replay_record)(void *arg, const char *device,
	    const uint8_t id[ENV_ID_LEN], uint64_t sent, struct err_ctx *e);
	int (*gossip)(void *arg, const char *sender_account,
	    const char *sender_device, const struct acctlog_head *views,
	    size_t n_views, struct err_ctx *e);
	void *arg;
};

/* The checks of section 4, in their order. */
enum env_check {
	ENV_CHECK_NONE = 0,
	ENV_CHECK_PARSE = 1,         /* 1: bounded parse */
	ENV_CHECK_SENDER = 2,        /* 2: sender device active and accepted */
	ENV_CHECK_SIGNATURE = 3,     /* 3: sig verifies */
	ENV_CHECK_REPLAY = 4,        /* 4: id not seen before */
	ENV_CHECK_DECRYPT = 5,       /* 5: own entry, unwrap, AES-GCM */
	ENV_CHECK_PAYLOAD = 6,       /* 6: inner payload */
	ENV_CHECK_GOSSIP = 7,        /* 7: views agree with own logs */
	ENV_CHECK_RECORD = 8,        /* the replay store took the id */
};

/* "parse", "sender", ...: for log lines. */
const char *env_check_name(enum env_check c);

/* What an accepted message says. */
struct env_opened {
	uint8_t id[ENV_ID_LEN];
	char sender_account[ENV_ACCOUNT_MAX + 1];
	char sender_device[ENV_DEVICE_LEN + 1];
	uint64_t sent;
	struct env_payload payload;
	enum env_check failed;       /* on failure: the check that failed */
};

/* Wipes the payload and zeroes o; NULL is fine. */
void env_opened_clear(struct env_opened *o);

/*
 * Opens the len bytes at json for self: checks 1 to 7 of section 4 in
 * order, then records the id.  On success returns 0 and fills *out (clear
 * it with env_opened_clear()).  A message that fails a check gives the
 * uniform ERR_REJECTED with out->failed set and "message rejected at check
 * N (name): reason" in e, for the local log only.  Local conditions that
 * say nothing about the message -- ERR_ALLOC, a missing token or PIN
 * (ERR_TOKEN_NOT_PRESENT, ERR_PIN_*), ERR_IO, ERR_NETWORK, ERR_TIMEOUT --
 * are returned as they are so that the caller can try again later; the
 * message is then neither accepted nor recorded.  ERR_INVALID_ARG for
 * API misuse.  Nothing in the plaintext is looked at before the signature
 * and the AEAD tag have verified; K and every plaintext buffer are wiped
 * on every path.
 */
int env_open(const uint8_t *json, size_t len, const struct env_limits *lim,
    const struct env_self *self, const struct env_open_ops *ops,
    struct env_opened *out, struct err_ctx *e);

/*
 * env_open() for an envelope that arrives as a JSON tree (check 1 is
 * env_parse_tree()), with the same results; root is borrowed.
 */
int env_open_tree(json_t *root, const struct env_limits *lim,
    const struct env_self *self, const struct env_open_ops *ops,
    struct env_opened *out, struct err_ctx *e);

/* The same for an envelope already parsed with env_parse() (checks 2..7). */
int env_open_parsed(const struct env *env, const struct env_self *self,
    const struct env_open_ops *ops, struct env_opened *out,
    struct err_ctx *e);

#endif /* DEVID_ENVELOPE_H */
