/*
 * dir-key.h - the directory's head-signing key.
 *
 * The directory signs every head it serves (PROTOCOL.md section 3) with
 * one ECDSA P-256 key.  The key lives either in a PEM file (created on
 * first start with mode 0600) or in a PKCS#11 token named by an RFC 7512
 * URI.  Code above this module only sees the public key, the directory id
 * hex(H(SPKI)) and a signing callback of the devrec_sign_fn shape, so it
 * never asks where the key is.
 */
#ifndef DEVID_DIR_KEY_H
#define DEVID_DIR_KEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"

#define DIR_KEY_ID_LEN 64
/* "3f2a 9c01 ..." : the id in 16 groups of four, for people to compare. */
#define DIR_KEY_FINGERPRINT_LEN 79

struct dir_key;

/*
 * Opens the head key named by spec: a file path, or a "pkcs11:" URI.  For
 * a file that does not exist and create set, a new key is generated and
 * saved with mode 0600 (*created is then set to 1; created may be NULL).
 * A file readable by others is refused.  A URI names the token's signing
 * key "<object>-sig" alone (the backend's sig_only mode); with create, a
 * token without it gets one, and never an encryption key.  On success
 * *out is a new key object (free with dir_key_free()).
 */
int dir_key_open(const char *spec, int create, struct dir_key **out,
    int *created, struct err_ctx *e);

/* Releases the key and its token; NULL is fine. */
void dir_key_free(struct dir_key *k);

/* The directory id: 64 lowercase hex, NUL-terminated, owned by k. */
const char *dir_key_id(const struct dir_key *k);

/* The public key as DER SPKI (owned by k). */
const uint8_t *dir_key_spki(const struct dir_key *k, size_t *len);

/* The public key (owned by k), for verifying in tests and tools. */
EVP_PKEY *dir_key_public(const struct dir_key *k);

/* The fingerprint shown to operators: the id in groups of four. */
void dir_key_fingerprint(const struct dir_key *k,
    char out[DIR_KEY_FINGERPRINT_LEN + 1]);

/*
 * Signs a 32-byte digest with the head key; raw r||s out.  Has the
 * devrec_sign_fn shape (arg is the struct dir_key *) and is safe to call
 * from several threads: calls are serialised.
 */
int dir_key_sign(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e);

#endif /* DEVID_DIR_KEY_H */
