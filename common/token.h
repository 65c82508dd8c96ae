/*
 * token.h - the device-key token interface.
 *
 * A token holds a device's two private keys (PROTOCOL.md section 2): an
 * ECDSA P-256 signing key and an encryption key, either EC P-256 for ECDH
 * (hpke-p256) or RSA for RSA-OAEP-SHA256 (rsa-oaep-sha256).  The private
 * halves never leave the token.  Two implementations exist: tpm/ (TPM 2.0
 * through tpm2-tss) and pkcs11/ (PKCS#11 through p11-kit).  Code above this
 * interface never asks which one it has.
 *
 * Ownership and secrets: every output buffer is the caller's.  ECDH outputs
 * and RSA-decrypted plaintexts are secrets; the caller wipes them
 * (crypto_wipe) as soon as it has used them.
 *
 * Threads: a token is not thread-safe; callers serialise access.
 */
#ifndef DEVID_TOKEN_H
#define DEVID_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

enum token_enc_alg {
	TOKEN_ENC_NONE = 0,     /* choose from what the token can do */
	TOKEN_ENC_HPKE_P256,    /* "hpke-p256" */
	TOKEN_ENC_RSA_OAEP,     /* "rsa-oaep-sha256" */
};

/* Protocol names of the encryption algorithms, and back (0 / -1). */
const char *token_enc_alg_name(enum token_enc_alg alg);
int token_enc_alg_parse(const char *name, enum token_enc_alg *out);

enum token_key {
	TOKEN_KEY_SIG = 0,
	TOKEN_KEY_ENC = 1,
};

/* What a token says about itself and its keys (for status and attestation). */
#define TOKEN_DESC_MAX 256
struct token_desc {
	char backend[16];                 /* "tpm2" or "pkcs11" */
	char token[TOKEN_DESC_MAX];       /* token label / TCTI string */
	char sig_ref[TOKEN_DESC_MAX];     /* URI or key file of the signing key */
	char enc_ref[TOKEN_DESC_MAX];     /* same for the encryption key */
	enum token_enc_alg enc_alg;
	/* Attributes that prove non-exportability, as text, e.g.
	 * "fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth" or
	 * "sensitive,always-sensitive,never-extractable". */
	char sig_attrs[TOKEN_DESC_MAX];
	char enc_attrs[TOKEN_DESC_MAX];
	char parent[TOKEN_DESC_MAX];      /* TPM: parent name (hex); else "" */
};

/* Counters of private-key operations, reported by `devid-agent status`. */
struct token_stats {
	uint64_t signs;
	uint64_t ecdhs;
	uint64_t decrypts;
	uint64_t logins;
	uint64_t reconnects;
};

struct token;

/*
 * The table of operations a backend implements.  Every operation returns
 * 0 or a negative ERR_* code and records a human message in e.  Token loss
 * is ERR_TOKEN_NOT_PRESENT; a wrong PIN is ERR_PIN_INCORRECT with the
 * remaining tries in the message, a blocked one ERR_PIN_LOCKED.
 */
struct token_ops {
	const char *name;

	/*
	 * Creates both device keys (non-exportable) with the given encryption
	 * algorithm (TOKEN_ENC_NONE: the best the token supports).  Fails with
	 * ERR_EXISTS when keys already exist under this token's references.
	 */
	int (*create_keys)(struct token *t, enum token_enc_alg alg,
	    struct err_ctx *e);

	/* Opens keys that already exist (created earlier or by other tools).
	 * Checks their attributes; ERR_KEY_POLICY when they could be exported. */
	int (*open_keys)(struct token *t, struct err_ctx *e);

	/* DER SubjectPublicKeyInfo of one key, into a new array (caller frees). */
	int (*public_key)(struct token *t, enum token_key which,
	    uint8_t **spki, size_t *spki_len, struct err_ctx *e);

	/* ECDSA P-256 over a SHA-256 digest with the signing key; raw r||s. */
	int (*sign_digest)(struct token *t, const uint8_t digest[32],
	    uint8_t sig[64], struct err_ctx *e);

	/* ECDH of the encryption key with a 65-byte uncompressed peer point:
	 * the 32-byte shared x-coordinate (a secret: caller wipes).
	 * ERR_UNSUPPORTED for an RSA encryption key. */
	int (*ecdh)(struct token *t, const uint8_t peer[65], uint8_t out[32],
	    struct err_ctx *e);

	/* RSA-OAEP-SHA256 (MGF1-SHA256, empty label) decryption with the
	 * encryption key, into out (at most out_max bytes; secret: caller
	 * wipes).  ERR_DECRYPT on bad padding; ERR_UNSUPPORTED for EC. */
	int (*rsa_decrypt)(struct token *t, const uint8_t *ct, size_t ct_len,
	    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e);

	/* Fills d; never touches the private keys. */
	int (*describe)(struct token *t, struct token_desc *d,
	    struct err_ctx *e);

	/* Releases every handle, session and secret; t is freed. */
	void (*close)(struct token *t);
};

/*
 * The common head of every backend's token object.  Backends embed it as
 * their first member and cast.
 */
struct token {
	const struct token_ops *ops;
	enum token_enc_alg enc_alg;   /* known after create/open */
	struct token_stats stats;
};

/* Convenience wrappers: they check arguments and dispatch through ops. */
int token_create_keys(struct token *t, enum token_enc_alg alg,
    struct err_ctx *e);
int token_open_keys(struct token *t, struct err_ctx *e);
int token_public_key(struct token *t, enum token_key which, uint8_t **spki,
    size_t *spki_len, struct err_ctx *e);
int token_sign_digest(struct token *t, const uint8_t digest[32],
    uint8_t sig[64], struct err_ctx *e);
int token_ecdh(struct token *t, const uint8_t peer[65], uint8_t out[32],
    struct err_ctx *e);
int token_rsa_decrypt(struct token *t, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e);
int token_describe(struct token *t, struct token_desc *d, struct err_ctx *e);
/* NULL is fine. */
void token_close(struct token *t);

/* A hpke_dh_fn (hpke.h) that runs the DH step in a token: arg is the
 * struct token *. */
int token_hpke_dh(void *arg, const uint8_t pk_e[65], uint8_t dh_out[32],
    struct err_ctx *e);

#endif /* DEVID_TOKEN_H */
