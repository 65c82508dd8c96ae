/*
 * wit-signer.h - the witness's cosigning key: an Ed25519 key in a PEM
 * file (wit-key.h), or in a PKCS#11 token named by a pkcs11: URI
 * (pkcs11/p11-token.h, where the token supports CKM_EDDSA).
 *
 * A signer may be used from several threads: token operations are
 * serialised.
 */
#ifndef DEVID_WIT_SIGNER_H
#define DEVID_WIT_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"
#include "tlog-note.h"

struct wit_signer;

/*
 * Opens the key named by key: a file path, or a "pkcs11:" URI (the PIN
 * from the URI, else from pin_file, which may be NULL).  With create,
 * makes it first (a file: mode 0600, never over an existing one; a
 * token: the key "<base>-sig", never over an existing one).
 */
int wit_signer_open(const char *key, const char *pin_file, int create,
    struct wit_signer **out, struct err_ctx *e);

/* NULL is fine. */
void wit_signer_free(struct wit_signer *s);

/* The public key (owned by s). */
EVP_PKEY *wit_signer_public(const struct wit_signer *s);

/*
 * The cosignature line (tlog-cosignature v1) of the cosigner k, whose
 * key s holds, over the note text (len bytes) at time t.
 */
int wit_signer_cosign(struct wit_signer *s, const char *text, size_t len,
    const struct tlog_vkey *k, uint64_t t, struct tlog_sigline *out,
    struct err_ctx *e);

#endif /* DEVID_WIT_SIGNER_H */
