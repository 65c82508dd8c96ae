/*
 * p11-token.h - device keys in a PKCS#11 token (smartcard, HSM), reached
 * through p11-kit.
 *
 * The token, its module and the key objects are named by one RFC 7512 URI:
 *
 *   pkcs11:token=devid;object=devid?module-name=softhsm2
 *   pkcs11:token=card;id=%01?module-path=/usr/lib/opensc-pkcs11.so
 *       &pin-source=file:/etc/devid/pin      (one line)
 *
 * The query must name the module, either by its p11-kit registration
 * (module-name) or by its file (module-path): devid never initialises every
 * registered module.  The signing key is the private key labelled
 * "<base>-sig" and the encryption key "<base>-enc"; both share one CKA_ID.
 * <base> is the URI's object attribute without a "-sig"/"-enc" suffix, else
 * the label base of the options, else "devid".  With an id attribute, the
 * keys must also carry that CKA_ID; with an id and no object attribute, the
 * two private keys holding that CKA_ID are used whatever their labels.
 *
 * With the sig_only option the token holds the signing key alone (a
 * directory's head-signing key, for one): "<base>-sig", or with an id and
 * no object attribute the one signing key holding that CKA_ID.  No
 * encryption key is created, looked for or used, and an "<base>-enc" key
 * that happens to be on the token is ignored.
 *
 * The PIN comes, in this order, from the URI's pin-value, the URI's
 * pin-source (a file), the pin_file option, or the prompt callback.  It is
 * kept in the token object only (to log in again after the token was
 * removed and inserted), wiped when the object is closed, and never logged.
 * A PIN the token rejects is never tried again.  The URI string the caller
 * passes may itself hold a pin-value: wiping it is the caller's job.
 */
#ifndef DEVID_P11_TOKEN_H
#define DEVID_P11_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "token.h"

/* The longest PIN accepted from any source, in bytes. */
#define P11_PIN_MAX 256

/* The label base used when neither the URI nor the options give one. */
#define P11_LABEL_BASE_DEFAULT "devid"

/*
 * Asks the user for the PIN of the token labelled token_label.  Writes a
 * NUL-terminated PIN of at most pin_max - 1 bytes to pin and returns 0, or
 * returns ERR_PIN_REQUIRED (the user gave none) or another ERR_* code.  The
 * callee wipes its own copies; devid wipes pin.
 */
typedef int (*p11_pin_prompt_fn)(void *arg, const char *token_label,
    char *pin, size_t pin_max);

/* Options of p11_token_new(); every field may be zero/NULL. */
struct p11_options {
	const char *pin_file;          /* a file holding the PIN */
	p11_pin_prompt_fn pin_prompt;  /* asked when no other source has one */
	void *pin_prompt_arg;
	/* The encryption algorithm create_keys uses when its own argument is
	 * TOKEN_ENC_NONE (the --enc-alg override); TOKEN_ENC_NONE: choose
	 * from the token's mechanisms. */
	enum token_enc_alg enc_alg;
	const char *label_base;        /* NULL: P11_LABEL_BASE_DEFAULT */
	/* Nonzero: the signing key only.  create_keys makes just the
	 * ECDSA P-256 key "<base>-sig" (enc_alg must then be
	 * TOKEN_ENC_NONE, in the options and in its argument), open_keys
	 * finds just that key, token->enc_alg stays TOKEN_ENC_NONE,
	 * describe leaves enc_ref and enc_attrs empty, and public_key
	 * (TOKEN_KEY_ENC), ecdh and rsa_decrypt fail with ERR_UNSUPPORTED. */
	int sig_only;
};

/*
 * Loads the module the URI names, finds the one token that matches the URI
 * and opens a session on it.  Logging in waits for the first operation that
 * needs it (create_keys or open_keys).  On success *out is a new token
 * (close it with token_close()); on failure *out is untouched and e says
 * what went wrong: ERR_CONFIG for a bad URI or an ambiguous choice,
 * ERR_NOT_FOUND for an unknown module, ERR_TOKEN_NOT_PRESENT when no
 * matching token is inserted.  opt may be NULL; nothing in it is kept
 * except copies.
 *
 * stats.logins counts C_Login calls, successful or not; stats.reconnects
 * counts new sessions opened after the token went away (or after a module
 * left an operation stuck in the old session).
 */
int p11_token_new(const char *uri, const struct p11_options *opt,
    struct token **out, struct err_ctx *e);

/*
 * An Ed25519 key on the token (CKK_EC_EDWARDS, signing with CKM_EDDSA),
 * for a devid-witness's cosigning key, on a token made by
 * p11_token_new() with the sig_only option: the private key labelled
 * "<base>-sig" and its public key.  p11_eddsa_create() generates it
 * (sensitive, never extractable; ERR_EXISTS when a key of that label is
 * there, ERR_UNSUPPORTED when the token has no Ed25519 mechanisms);
 * p11_eddsa_open() finds it and checks that its private half never left
 * the token (ERR_KEY_POLICY otherwise).  Then p11_eddsa_public() gives
 * its 32-byte public key and p11_eddsa_sign() a 64-byte Ed25519
 * signature over msg (len bytes), reconnecting once when the token went
 * away, and only to the same key.  The ECDSA operations of the token
 * interface refuse such a token.  Not thread-safe, like every token.
 */
int p11_eddsa_create(struct token *t, struct err_ctx *e);
int p11_eddsa_open(struct token *t, struct err_ctx *e);
int p11_eddsa_public(struct token *t, uint8_t pub[32],
    struct err_ctx *e);
int p11_eddsa_sign(struct token *t, const uint8_t *msg, size_t len,
    uint8_t sig[64], struct err_ctx *e);

/* The PKCS#11 name of a return value ("CKR_PIN_INCORRECT"), or NULL when
 * the value is not in devid's table. */
const char *p11_rv_name(unsigned long rv);

#endif /* DEVID_P11_TOKEN_H */
