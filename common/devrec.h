/*
 * devrec.h - device records (PROTOCOL.md sections 1 and 2).
 *
 * A device record names one device of an account: its ECDSA P-256 signing
 * key, its encryption key and algorithm, a human label, and a binding
 * signature made with the signing key that proves possession of it and ties
 * the encryption key to it.  Optionally another device of the same account
 * endorses the record.
 *
 * A struct devrec holds everything inline (no heap memory), so records are
 * copied by assignment and need no free function.  Parsing fills a caller's
 * struct and checks syntax and key types; devrec_verify() checks the
 * cryptography.  Parsing never verifies signatures: a parsed record is not
 * a trusted record until devrec_verify() said so.
 */
#ifndef DEVID_DEVREC_H
#define DEVID_DEVREC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "errors.h"

#define DEVREC_ACCOUNT_MAX 128      /* bytes */
#define DEVREC_LABEL_MAX 64         /* bytes of UTF-8 */
#define DEVREC_ID_HEX_LEN 64        /* hex(H(sig_pub)) */
#define DEVREC_SHORT_ID_LEN 19      /* "3f2a-9c01-77de-b410" */
#define DEVREC_ENC_ALG_MAX 15       /* strlen("rsa-oaep-sha256") */
#define DEVREC_SIG_LEN 64           /* raw r||s */
/* Largest JSON text accepted for one record (two RSA-4096 sized SPKIs in
 * base64url are well below this). */
#define DEVREC_JSON_MAX ((size_t)8192)
/* The largest integer in devid JSON: 2^53, exact in every JSON parser. */
#define DEVREC_JSON_INT_MAX ((uint64_t)1 << 53)

#define DEVREC_ENC_HPKE_P256 "hpke-p256"
#define DEVREC_ENC_RSA_OAEP "rsa-oaep-sha256"

struct devrec {
	char account[DEVREC_ACCOUNT_MAX + 1];
	char device[DEVREC_ID_HEX_LEN + 1];     /* hex(H(sig_pub)) */
	char label[DEVREC_LABEL_MAX + 1];
	uint8_t sig_pub[CRYPTO_SPKI_MAX];       /* DER SPKI, EC P-256 */
	size_t sig_pub_len;
	char enc_alg[DEVREC_ENC_ALG_MAX + 1];   /* one of DEVREC_ENC_* */
	uint8_t enc_pub[CRYPTO_SPKI_MAX];       /* DER SPKI, P-256 or RSA */
	size_t enc_pub_len;
	uint64_t created;
	uint8_t binding_sig[DEVREC_SIG_LEN];
	int has_endorsement;                    /* 1 when the next two are set */
	char endorsed_by[DEVREC_ID_HEX_LEN + 1];
	uint8_t endorsement_sig[DEVREC_SIG_LEN];
};

/*
 * A signing step kept behind a callback so the private key can stay in a
 * token: signs the 32-byte SHA-256 digest with ECDSA P-256 and writes the
 * raw r||s to sig.  Returns 0 or a negative ERR_* code with a message in e.
 */
typedef int (*devrec_sign_fn)(void *arg, const uint8_t digest[32],
    uint8_t sig[DEVREC_SIG_LEN], struct err_ctx *e);

/* A devrec_sign_fn for a software private key: arg is an EVP_PKEY *.  For
 * the directory's head key and for tests. */
int devrec_sign_pkey(void *arg, const uint8_t digest[32],
    uint8_t sig[DEVREC_SIG_LEN], struct err_ctx *e);

/*
 * Syntax checks of PROTOCOL.md section 1.  Both return 1 when s (NUL
 * terminated) is acceptable and 0 otherwise; nothing is ever normalised.
 * Account: 1-128 bytes of [a-z0-9._+@-], the first one of [a-z0-9].
 * Label: 1-64 bytes of well-formed UTF-8 (no overlong forms, surrogates
 * or code points above U+10FFFF) without control characters (C0, DEL, C1).
 */
int devrec_account_valid(const char *s);
int devrec_label_valid(const char *s);

/* Like the above, recording in e what is wrong; 0 or ERR_FORMAT. */
int devrec_account_check(const char *s, struct err_ctx *e);
int devrec_label_check(const char *s, struct err_ctx *e);

/* 1 when s is exactly 64 lowercase hex digits (a device or directory id). */
int devrec_id_valid(const char *s);

/* The device id hex(H(sig_pub)) into out (65 bytes with the NUL).  0 or
 * ERR_CRYPTO / ERR_INVALID_ARG. */
int devrec_device_id(const uint8_t *sig_pub, size_t sig_pub_len,
    char out[DEVREC_ID_HEX_LEN + 1]);

/* The id of an EVP_PKEY's public half: hex(H(SPKI DER)).  Also the
 * directory id of a directory's head key. */
int devrec_pkey_id(EVP_PKEY *pkey, char out[DEVREC_ID_HEX_LEN + 1]);

/* The short form of an id for people: its first 16 hex digits in groups of
 * four, "3f2a-9c01-77de-b410".  ERR_INVALID_ARG if id is not a valid id. */
int devrec_short_id(const char *id, char out[DEVREC_SHORT_ID_LEN + 1]);

/* H(B), the hash of the binding transcript of rec (section 2). */
int devrec_binding_hash(const struct devrec *rec, uint8_t out[32]);

/* H(endorsement transcript) for rec (needs account, device and H(B)). */
int devrec_endorsement_hash(const struct devrec *rec, uint8_t out[32]);

/*
 * Makes a complete signed record in *out from the public keys (DER SPKI):
 * checks the account, label, algorithm and key types, computes the device
 * id and H(B), and asks sign (the device's signing key, usually in a token)
 * for binding_sig, which is then verified against sig_pub so a token that
 * signs with another key is caught here.  No endorsement.  Returns 0 or an
 * ERR_* code with a message in e; *out is only written on success.
 */
int devrec_build(struct devrec *out, const char *account, const char *label,
    const uint8_t *sig_pub, size_t sig_pub_len, const char *enc_alg,
    const uint8_t *enc_pub, size_t enc_pub_len, uint64_t created,
    devrec_sign_fn sign, void *sign_arg, struct err_ctx *e);

/*
 * Adds an endorsement by the device endorser_id to rec: sign is the
 * endorser's signing key.  The signature is checked with
 * endorser_sig_pub, whose id must be endorser_id.  rec is only changed on
 * success.
 */
int devrec_endorse(struct devrec *rec, const uint8_t *endorser_sig_pub,
    size_t endorser_sig_pub_len, devrec_sign_fn sign, void *sign_arg,
    struct err_ctx *e);

/*
 * Verifies a record on its own: syntax of every field, key types matching
 * enc_alg, device == hex(H(sig_pub)) and binding_sig under sig_pub.  The
 * endorsement (if any) is not checked: that needs the endorser's key, see
 * devrec_verify_endorsement().  Returns 0, ERR_FORMAT (fields, id
 * mismatch) or ERR_SIGNATURE, with a message in e.
 */
int devrec_verify(const struct devrec *rec, struct err_ctx *e);

/*
 * Verifies rec's endorsement with the endorser's signing key (DER SPKI):
 * the key's id must equal rec->endorsed_by and the signature must verify.
 * ERR_NOT_FOUND when rec has no endorsement, ERR_FORMAT when the key is not
 * the one named by endorsed_by, ERR_SIGNATURE when it does not verify.
 */
int devrec_verify_endorsement(const struct devrec *rec,
    const uint8_t *endorser_sig_pub, size_t endorser_sig_pub_len,
    struct err_ctx *e);

/*
 * JSON.  devrec_to_json() returns a new object in *out (caller json_decref).
 * devrec_from_json() reads a record object strictly: every required field
 * present with the right type, no unknown fields, bounded strings,
 * canonical unpadded base64url, lowercase 64-digit hex ids, enc_alg one of
 * the two names and enc_pub of the matching kind (EC P-256 / RSA
 * 2048..4096), sig_pub EC P-256.  It does not verify signatures.  *out is
 * only written on success.  devrec_parse() does the same from len bytes of
 * JSON text (not NUL-terminated, at most max_len: 0 means DEVREC_JSON_MAX),
 * rejecting duplicate keys.
 */
int devrec_to_json(const struct devrec *rec, json_t **out, struct err_ctx *e);
int devrec_from_json(const json_t *obj, struct devrec *out,
    struct err_ctx *e);
int devrec_parse(const char *s, size_t len, size_t max_len,
    struct devrec *out, struct err_ctx *e);

/* Compact JSON text of rec in a new NUL-terminated string (caller frees). */
int devrec_encode(const struct devrec *rec, char **out, struct err_ctx *e);

/*
 * Strict JSON field readers shared with the account-log and envelope
 * parsers.  Each takes the object, the key, and `what` (the object's name
 * for messages), returns 0 or ERR_FORMAT / ERR_TOO_LARGE with a message in
 * e, and writes its output only on success.
 */

/* obj is an object whose keys are all among the n names in allowed. */
int devrec_json_keys(const json_t *obj, const char *const *allowed, size_t n,
    const char *what, struct err_ctx *e);
/* Loads len bytes of JSON text (at most max_len) rejecting duplicate keys;
 * *out is a new reference. */
int devrec_json_load(const char *s, size_t len, size_t max_len,
    json_t **out, const char *what, struct err_ctx *e);
/* A required string of 1..max_len bytes without NUL; *out is borrowed. */
int devrec_json_str(const json_t *obj, const char *key, size_t max_len,
    const char **out, const char *what, struct err_ctx *e);
/* A required non-negative integer. */
int devrec_json_u64(const json_t *obj, const char *key, uint64_t *out,
    const char *what, struct err_ctx *e);
/* A required 64-digit lowercase hex id copied to out. */
int devrec_json_id(const json_t *obj, const char *key,
    char out[DEVREC_ID_HEX_LEN + 1], const char *what, struct err_ctx *e);
/* A required 64-digit lowercase hex string decoded to 32 bytes. */
int devrec_json_hex32(const json_t *obj, const char *key, uint8_t out[32],
    const char *what, struct err_ctx *e);
/* A required base64url value of 1..max_len bytes decoded into out. */
int devrec_json_b64(const json_t *obj, const char *key, uint8_t *out,
    size_t max_len, size_t *out_len, const char *what, struct err_ctx *e);
/* A required base64url value of exactly want_len bytes. */
int devrec_json_b64_exact(const json_t *obj, const char *key, uint8_t *out,
    size_t want_len, const char *what, struct err_ctx *e);
/* Sets key on obj to a new integer / string / base64url / hex value;
 * 0, ERR_ALLOC or ERR_INVALID_ARG (integer above INT64_MAX). */
int devrec_json_set_u64(json_t *obj, const char *key, uint64_t v);
int devrec_json_set_str(json_t *obj, const char *key, const char *v);
int devrec_json_set_b64(json_t *obj, const char *key, const uint8_t *p,
    size_t len);
int devrec_json_set_hex(json_t *obj, const char *key, const uint8_t *p,
    size_t len);

#endif /* DEVID_DEVREC_H */
