/*
 * wit-key.h - the witness's Ed25519 key in a PEM file.
 */
#ifndef DEVID_WIT_KEY_H
#define DEVID_WIT_KEY_H

#include <openssl/evp.h>

#include "errors.h"

/*
 * Generates an Ed25519 key and writes it to path as unencrypted PKCS#8
 * PEM, mode 0600; an existing file (or symlink) at path is ERR_EXISTS and
 * left alone.  *out (may be NULL) gets the key; the caller frees it.
 */
int wit_key_generate(const char *path, EVP_PKEY **out, struct err_ctx *e);

/*
 * Reads the Ed25519 key at path into *out (caller frees).  A file that
 * group or others may access is ERR_DENIED, a missing one ERR_NOT_FOUND,
 * another kind of key ERR_UNSUPPORTED, anything else ERR_FORMAT.
 */
int wit_key_load(const char *path, EVP_PKEY **out, struct err_ctx *e);

#endif /* DEVID_WIT_KEY_H */
