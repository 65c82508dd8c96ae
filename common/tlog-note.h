/*
 * tlog-note.h - checkpoints, signed notes and cosignatures of the global
 * transparency log (docs/protocol.md section 7).
 *
 * Formats, all from C2SP:
 * - tlog-checkpoint: the note text "<origin>\n<size>\n<base64 root>\n",
 *   optionally followed by extension lines, base64 standard with padding;
 * - signed-note: the text, an empty line, then one or more lines
 *   "\xe2\x80\x94 <key name> <base64(u32 key id || signature)>\n";
 * - the directory's signature: signature type 0x02, ECDSA P-256 over
 *   SHA-256 of the note text, DER-encoded; key name = the origin; key id
 *   = the first four bytes of SHA-256(directory SPKI);
 * - tlog-cosignature v1: signature type 0x04, key id = SHA-256(name ||
 *   "\n" || 0x04 || 32-byte Ed25519 key)[:4], signature = u64 timestamp ||
 *   Ed25519 over "cosignature/v1\ntime <T>\n" || note text;
 * - verifier keys ("vkeys"): "<name>+<8 hex key id>+<base64(type ||
 *   public key)>", the way witnesses are named in configuration.
 *
 * And devid's leaf: "devid-tlog-leaf-v1"\0 lp(account) u64(seq)
 * lp(event hash, 32 raw bytes).
 *
 * Parsers are strict and bounded: a note is at most TLOG_NOTE_MAX bytes
 * and TLOG_SIGS_MAX signature lines, valid UTF-8 without control
 * characters other than newline; anything else is ERR_FORMAT or
 * ERR_TOO_LARGE.
 */
#ifndef DEVID_TLOG_NOTE_H
#define DEVID_TLOG_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"
#include "merkle.h"

#define TLOG_NOTE_MAX 16384           /* a whole signed note */
#define TLOG_TEXT_MAX 4096            /* its text */
#define TLOG_NAME_MAX 255             /* an origin or key name */
#define TLOG_SIGS_MAX 32              /* signature lines in a note */
#define TLOG_SIG_MAX 256              /* one signature, key id excluded */
#define TLOG_VKEY_MAX 512             /* a verifier key string */

#define TLOG_SIGTYPE_ED25519 0x01
#define TLOG_SIGTYPE_ECDSA 0x02
#define TLOG_SIGTYPE_COSIG 0x04

#define TLOG_ED25519_LEN 32
#define TLOG_COSIG_LEN (8 + 64)       /* timestamp || Ed25519 signature */

/* A parsed checkpoint (the first three lines of the note text). */
struct tlog_checkpoint {
	char origin[TLOG_NAME_MAX + 1];
	uint64_t size;                /* at most MERKLE_SIZE_MAX */
	uint8_t root[MERKLE_HASH_LEN];
};

/* One signature line. */
struct tlog_sigline {
	char name[TLOG_NAME_MAX + 1];
	uint32_t key_id;
	uint8_t sig[TLOG_SIG_MAX];
	size_t sig_len;
};

/* A parsed signed note; text is a copy, NUL-terminated. */
struct tlog_note {
	char text[TLOG_TEXT_MAX + 1];
	size_t text_len;
	struct tlog_sigline sig[TLOG_SIGS_MAX];
	size_t nsig;
};

/* A verifier key: a witness (type 0x04) or a log (0x01, 0x02). */
struct tlog_vkey {
	char name[TLOG_NAME_MAX + 1];
	uint32_t key_id;
	uint8_t type;
	uint8_t key[TLOG_VKEY_MAX];   /* 32 bytes Ed25519, or DER SPKI */
	size_t key_len;
};

/* --- devid's leaves --- */

/* The leaf hash H(0x00 || leaf) of event seq of account with hash ev. */
int tlog_leaf_hash(const char *account, uint64_t seq,
    const uint8_t ev[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN]);

/* --- checkpoints --- */

/*
 * Writes the note text of c into out (size out_size, NUL-terminated);
 * *len gets its length without the NUL.  ERR_TOO_LARGE when it does not
 * fit, ERR_INVALID_ARG for an origin that is empty, has spaces, '+' or
 * control characters.
 */
int tlog_checkpoint_format(const struct tlog_checkpoint *c, char *out,
    size_t out_size, size_t *len);

/*
 * Parses note text (len bytes, the text only, ending in "\n") as a
 * checkpoint: origin line, decimal size without leading zeros, base64 of
 * exactly 32 bytes, then any extension lines (non-empty, kept in the text
 * and ignored here).
 */
int tlog_checkpoint_parse(const char *text, size_t len,
    struct tlog_checkpoint *c, struct err_ctx *e);

/* --- signed notes --- */

/* Parses a whole signed note (text, empty line, signature lines). */
int tlog_note_parse(const char *s, size_t len, struct tlog_note *n,
    struct err_ctx *e);

/*
 * Writes n back as a signed note into a new NUL-terminated string *out
 * (the caller frees it), signatures in their order in n.
 */
int tlog_note_format(const struct tlog_note *n, char **out, size_t *len);

/*
 * Adds sl to n, or replaces the line already there with the same name
 * and key id.  ERR_TOO_LARGE when n has TLOG_SIGS_MAX lines.
 */
int tlog_note_add_sig(struct tlog_note *n, const struct tlog_sigline *sl);

/* Parses one "\xe2\x80\x94 name base64\n" line (with its newline). */
int tlog_sigline_parse(const char *s, size_t len, struct tlog_sigline *sl,
    struct err_ctx *e);

/* --- verifier keys --- */

/* The key id SHA-256(name || "\n" || type || key)[:4], big-endian. */
uint32_t tlog_key_id(const char *name, uint8_t type, const uint8_t *key,
    size_t key_len);

/* Parses and checks a vkey string (its key id must match). */
int tlog_vkey_parse(const char *s, struct tlog_vkey *k, struct err_ctx *e);

/* Writes k as a vkey string into out (TLOG_VKEY_MAX * 2 is enough). */
int tlog_vkey_format(const struct tlog_vkey *k, char *out, size_t out_size);

/* The vkey of a cosigner with Ed25519 public key pub named name. */
int tlog_vkey_cosigner(const char *name, EVP_PKEY *pub, struct tlog_vkey *k,
    struct err_ctx *e);

/* The vkey of a log signing with the ECDSA key spki under name. */
int tlog_vkey_log(const char *name, const uint8_t *spki, size_t spki_len,
    struct tlog_vkey *k, struct err_ctx *e);

/* --- the directory's signature (type 0x02) --- */

/* Signs a 32-byte digest, raw r || s out (the devrec_sign_fn shape). */
typedef int (*tlog_ecdsa_sign_fn)(void *arg, const uint8_t digest[32],
    uint8_t sig[64], struct err_ctx *e);

/* Appends the log's signature line over n->text to n. */
int tlog_note_sign_log(struct tlog_note *n, const struct tlog_vkey *log,
    tlog_ecdsa_sign_fn sign, void *arg, struct err_ctx *e);

/*
 * Verifies the log's signature in n: the line with log's name and key id
 * must exist and verify.  ERR_NOT_FOUND without such a line,
 * ERR_SIGNATURE when it does not verify.
 */
int tlog_note_verify_log(const struct tlog_note *n,
    const struct tlog_vkey *log, struct err_ctx *e);

/* --- cosignatures (type 0x04) --- */

/* The cosignature line of the cosigner (priv, vkey k) at time t. */
int tlog_cosign(const char *text, size_t text_len, EVP_PKEY *priv,
    const struct tlog_vkey *k, uint64_t t, struct tlog_sigline *out,
    struct err_ctx *e);

/*
 * Verifies the cosignature of k in n; *t gets its timestamp.
 * ERR_NOT_FOUND without a line of k's name and key id, ERR_SIGNATURE
 * when it does not verify.
 */
int tlog_cosig_verify(const struct tlog_note *n, const struct tlog_vkey *k,
    uint64_t *t, struct err_ctx *e);

/* --- tlog-witness requests and JSON proofs --- */

/*
 * Parses an add-checkpoint request body (C2SP tlog-witness): "old N\n",
 * at most 63 base64 proof lines, an empty line, then a signed note.
 * *old, proof (room for MERKLE_PROOF_MAX) and *n get the first two;
 * *note_off is the offset of the note in s.  ERR_FORMAT for anything
 * malformed (leading zeros, a bad hash, no empty line), ERR_TOO_LARGE
 * past the limits.
 */
int tlog_witness_req_parse(const char *s, size_t len, uint64_t *old,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, size_t *note_off,
    struct err_ctx *e);

/*
 * Writes an add-checkpoint request body into a new string *out (caller
 * frees): old, the proof, the empty line, the note (note_len bytes).
 */
int tlog_witness_req_format(uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n, const char *note,
    size_t note_len, char **out, size_t *len);

/*
 * Reads a JSON array of at most MERKLE_PROOF_MAX base64url hashes (the
 * "proof" member of the log's answers, section 7.5) given as its text
 * (len bytes) or, with tlog_proof_from_json(), as a parsed jansson array
 * (json_t *, declared void * here to keep jansson out of this header).
 */
int tlog_proof_from_json(const void *array, uint8_t proof[][MERKLE_HASH_LEN],
    size_t *n, struct err_ctx *e);

#endif /* DEVID_TLOG_NOTE_H */
