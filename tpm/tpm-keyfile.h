/*
 * tpm-keyfile.h - TPM keys as "TSS2 PRIVATE KEY" PEM files.
 *
 * The format other TPM software reads (tpm2-openssl, tpm2-tss-engine,
 * ssh-tpm-agent, tpm2-tools' tpm2_import/tpm2_load with -r):
 *
 *   TPMKey ::= SEQUENCE {
 *       type        OBJECT IDENTIFIER,     -- 2.23.133.10.1.3 (loadable key)
 *       emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
 *       policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
 *       secret      [2] EXPLICIT OCTET STRING OPTIONAL,
 *       parent      INTEGER,                -- 0x40000001: owner primary
 *       pubkey      OCTET STRING,           -- marshalled TPM2B_PUBLIC
 *       privkey     OCTET STRING            -- marshalled TPM2B_PRIVATE
 *   }
 *
 * devid writes emptyAuth TRUE when the key has no auth value and omits it
 * otherwise; it writes neither policy nor secret, and it reads only what
 * it writes: keys with a policy or an imported secret are ERR_UNSUPPORTED.
 * Parsing is strict and bounded: the input must be canonical DER (it is
 * re-encoded and compared), at most TPM_KEYFILE_MAX bytes, and both TPM
 * structures must unmarshal exactly, without trailing bytes.
 */
#ifndef DEVID_TPM_KEYFILE_H
#define DEVID_TPM_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "errors.h"

/* The largest key file (PEM or DER) accepted; real ones are under 1 KiB. */
#define TPM_KEYFILE_MAX 8192

/* The OID of a loadable key and the PEM label. */
#define TPM_KEYFILE_OID_LOADABLE "2.23.133.10.1.3"
#define TPM_KEYFILE_PEM_LABEL "TSS2 PRIVATE KEY"

/* A key as stored: no pointers, so it can be copied and zeroed freely. */
struct tpm_keyfile {
	int empty_auth;         /* 1: no auth value (emptyAuth TRUE) */
	uint32_t parent;        /* always TPM2_RH_OWNER here */
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
};

/*
 * DER encoding into a new array (*der, caller frees) of *der_len bytes.
 * Returns 0, ERR_INVALID_ARG (parent other than TPM2_RH_OWNER) or
 * ERR_ALLOC/ERR_INTERNAL; *der is untouched on failure.
 */
int tpm_keyfile_encode_der(const struct tpm_keyfile *kf, uint8_t **der,
    size_t *der_len, struct err_ctx *e);

/*
 * Parses der_len bytes of DER into kf.  Returns 0, ERR_TOO_LARGE,
 * ERR_FORMAT (not a canonical TPMKey, wrong OID, bad TPM structures) or
 * ERR_UNSUPPORTED (policy, secret, or a parent other than the owner
 * primary); kf is zeroed on failure.
 */
int tpm_keyfile_decode_der(const uint8_t *der, size_t der_len,
    struct tpm_keyfile *kf, struct err_ctx *e);

/*
 * PEM ("-----BEGIN TSS2 PRIVATE KEY-----") into a new NUL-terminated
 * string (*pem, caller frees) of *pem_len characters.
 */
int tpm_keyfile_encode_pem(const struct tpm_keyfile *kf, char **pem,
    size_t *pem_len, struct err_ctx *e);

/*
 * Parses one PEM block of that label.  The input must begin with the BEGIN
 * line and may be followed only by whitespace; PEM headers are rejected.
 * Errors as tpm_keyfile_decode_der.
 */
int tpm_keyfile_decode_pem(const char *pem, size_t pem_len,
    struct tpm_keyfile *kf, struct err_ctx *e);

/*
 * Writes kf as PEM to a new file at path with mode 0600.  Refuses to
 * replace an existing file (ERR_EXISTS) and removes a partly written one.
 * Returns 0, ERR_EXISTS, ERR_IO or an encoding error.
 */
int tpm_keyfile_save(const char *path, const struct tpm_keyfile *kf,
    struct err_ctx *e);

/*
 * Reads and parses the key file at path: a regular file (symlinks are not
 * followed) of at most TPM_KEYFILE_MAX bytes.  ERR_NOT_FOUND when missing,
 * ERR_IO, ERR_TOO_LARGE or a parse error otherwise.
 */
int tpm_keyfile_load(const char *path, struct tpm_keyfile *kf,
    struct err_ctx *e);

#endif /* DEVID_TPM_KEYFILE_H */
