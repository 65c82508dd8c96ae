/*
 * sigfile.h - a text file with a detached signature line.
 *
 * The agent's registry and devid-msg's contact pins are both kept this
 * way: FILE holds the text, and a companion file holds one line, the
 * base64url of the raw r||s ECDSA P-256 signature followed by a newline.
 * The signature is over H(tag || text), where tag is a domain tag of
 * transcript.h (ASCII and its NUL), one per kind of file, so that a file
 * of one kind never passes for another.  The key that verifies comes
 * from the token, never from a file next to the signed one.
 */
#ifndef DEVID_SIGFILE_H
#define DEVID_SIGFILE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "buf.h"
#include "errors.h"

/* The signature line: 86 base64url characters and a newline, with room. */
#define SIGFILE_LINE_MAX 128

/*
 * The signed transcript tag || text in a new buffer (*out, caller frees
 * with buf_free) of at most text_max + 64 bytes.  ERR_ALLOC or
 * ERR_TOO_LARGE.
 */
int sigfile_transcript(const char *tag, const char *text, size_t len,
    size_t text_max, struct buf **out);

/* H(tag || text) into out; 0, ERR_ALLOC or ERR_TOO_LARGE. */
int sigfile_digest(const char *tag, const char *text, size_t len,
    size_t text_max, uint8_t out[32]);

/*
 * Whether sig (raw r||s) is pub's signature of H(tag || text): 0, or
 * ERR_SIGNATURE (no message: the caller says what the file is and what
 * its failing means), or ERR_ALLOC / ERR_TOO_LARGE.
 */
int sigfile_verify(const char *tag, const char *text, size_t len,
    size_t text_max, const uint8_t sig[64], EVP_PKEY *pub);

/*
 * Writes text to path and the signature line to sig_path, each replaced
 * atomically with mode 0600 and synced, the text first and the signature
 * last: a crash in between leaves a signature that does not match, which
 * readers refuse, never a file they trust.
 */
int sigfile_write(const char *path, const char *sig_path, const char *text,
    size_t len, const uint8_t sig[64], struct err_ctx *e);

/*
 * Reads path (at most text_max bytes; a new NUL-terminated string in
 * *text, caller frees) and the signature line at sig_path into sig.
 * Nothing is verified here.  ERR_NOT_FOUND when path does not exist,
 * ERR_SIGNATURE (with a message naming sig_path) when the signature file
 * is missing or is not exactly one base64url signature and a newline,
 * or what fileio_read returns.  *text is set only on success.
 */
int sigfile_read(const char *path, const char *sig_path, size_t text_max,
    char **text, size_t *len, uint8_t sig[64], struct err_ctx *e);

/*
 * A fingerprint of the two files as they are on disk: SHA-256 over
 * H(text file) || H(signature file), to notice a change made behind the
 * writer's back.  ERR_NOT_FOUND when either file is missing.
 */
int sigfile_files_digest(const char *path, const char *sig_path,
    size_t text_max, uint8_t out[32], struct err_ctx *e);

#endif /* DEVID_SIGFILE_H */
