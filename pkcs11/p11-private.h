/*
 * p11-private.h - what the files of the PKCS#11 backend share.
 *
 * p11-token.c: module loading, slot choice, session, login, reconnection
 *              and the private-key operations (the table of operations);
 * p11-keys.c:  key generation, lookup, attribute checks, public keys;
 * p11-uri.c:   URIs and PIN sources.
 */
#ifndef DEVID_P11_PRIVATE_H
#define DEVID_P11_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include <p11-kit/p11-kit.h>

#include "errors.h"
#include "token.h"
#include "p11-token.h"
#include "p11-uri.h"

/* A return value for "the token answered, but nonsense" (wrong lengths). */
#define P11_RV_BAD_OUTPUT (CKR_VENDOR_DEFINED | 0x0d0e1dUL)

/* One device key on the token. */
struct p11_key {
	CK_OBJECT_HANDLE priv;          /* CK_INVALID_HANDLE until found */
	CK_KEY_TYPE type;               /* CKK_EC or CKK_RSA */
	char label[P11_LABEL_MAX + 1];
	uint8_t id[P11_ID_MAX];
	size_t id_len;
	uint8_t *spki;                  /* public key, read when opened */
	size_t spki_len;
	size_t rsa_bytes;               /* modulus length of an RSA key */
	int always_auth;                /* CKA_ALWAYS_AUTHENTICATE */
	char attrs[TOKEN_DESC_MAX];     /* the attributes that were checked */
};

struct p11_token {
	struct token base;              /* first: struct token * casts here */

	/* The module: initialised once by us, finalised in close. */
	CK_FUNCTION_LIST *module;
	int module_initialized;
	char module_desc[128];          /* for messages: name or path */

	struct p11_uri *uri;
	struct p11_options opt;         /* strings below are our copies */
	char *opt_pin_file;
	char label_base[P11_LABEL_MAX - 3];

	/* The token we chose; reconnection looks for this one again. */
	CK_SLOT_ID slot;
	CK_TOKEN_INFO tinfo;
	char token_label[33];           /* tinfo.label, trimmed */

	CK_SESSION_HANDLE session;
	int have_session;
	int logged_in;
	struct p11_pin pin;             /* cached after a good login */
	int pin_refused;                /* never try a PIN again */

	struct p11_key sig;
	struct p11_key enc;             /* stays empty with opt.sig_only */
	int keys_ready;
};

/* --- p11-token.c --- */

/* The devid error code for a PKCS#11 return value. */
int p11_rv_err(CK_RV rv);

/* The CKR name of rv, or its number in hex written to buf. */
const char *p11_rv_text(CK_RV rv, char *buf, size_t buf_len);

/* True for the return values that mean the token or session went away. */
int p11_rv_is_loss(CK_RV rv);

/*
 * Records in e "token 'LABEL': WHAT failed (CKR_NAME)" with the code from
 * p11_rv_err() (ERR_TOKEN_NOT_PRESENT for loss, with what to do), and
 * returns that code.
 */
int p11_fail(struct p11_token *p, CK_RV rv, struct err_ctx *e,
    const char *what);

/*
 * Records in e that the token was opened for its signing key only
 * (opt.sig_only), so it has no encryption key for what ("ECDH"), and
 * returns ERR_UNSUPPORTED.
 */
int p11_no_enc_key(struct p11_token *p, struct err_ctx *e, const char *what);

/* Logs in if the token needs it and this session is not logged in yet.
 * Never tries a PIN that the token refused before. */
int p11_login(struct p11_token *p, struct err_ctx *e);

/* A session that is logged in, reopened first if it was lost while nothing
 * used it (for create_keys and open_keys). */
int p11_ensure_session(struct p11_token *p, struct err_ctx *e);

/* --- p11-keys.c --- */

/* The token_ops entries for keys. */
int p11_create_keys(struct token *t, enum token_enc_alg alg,
    struct err_ctx *e);
int p11_open_keys(struct token *t, struct err_ctx *e);
int p11_public_key(struct token *t, enum token_key which, uint8_t **spki,
    size_t *spki_len, struct err_ctx *e);

/*
 * After a reconnection: finds the keys again (both, or the signing key
 * alone with opt.sig_only; handles may change) and checks that their
 * public keys are the ones opened before, so that a different token with
 * the same label is never used silently.  0, or an ERR_* code with the
 * reason in e.
 */
int p11_keys_refind(struct p11_token *p, struct err_ctx *e);

/*
 * The 65-byte uncompressed point from a CKA_EC_POINT value, which modules
 * give either DER-wrapped (an OCTET STRING: 04 41 04 X Y, as PKCS#11
 * says) or raw (04 X Y).  0, or ERR_FORMAT for anything else.  Does not
 * check that the point is on the curve.
 */
int p11_ec_point_decode(const uint8_t *v, size_t len, uint8_t point[65]);

/* --- p11-eddsa.c --- */

/*
 * The 32-byte Ed25519 public key from a CKA_EC_POINT value, DER-wrapped
 * (04 20 ...) or raw.  0, or ERR_FORMAT.
 */
int p11_eddsa_point_decode(const uint8_t *v, size_t len, uint8_t pub[32]);

/* Frees what the key holds and resets it.  NULL is fine. */
void p11_key_clear(struct p11_key *k);

/*
 * Reads one attribute of obj into a new array (caller frees) of *len bytes,
 * at most max.  Returns the CK_RV (CKR_ATTRIBUTE_VALUE_INVALID when longer
 * than max, CKR_ATTRIBUTE_SENSITIVE or _TYPE_INVALID as the token says).
 */
CK_RV p11_attr_get(struct p11_token *p, CK_OBJECT_HANDLE obj,
    CK_ATTRIBUTE_TYPE type, size_t max, uint8_t **val, size_t *len);

#endif /* DEVID_P11_PRIVATE_H */
