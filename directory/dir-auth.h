/*
 * dir-auth.h - account passwords, session tokens and login checks.
 *
 * Passwords are stored as scrypt hashes with a per-account random salt in
 * a self-describing text form, "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" (salt
 * and hash in base64url), so the cost can be raised later without breaking
 * old accounts.  Session tokens are 32 random bytes handed to the client in
 * base64url; the directory keeps only H(token), so a copy of the database
 * does not hold usable tokens.  Passwords and tokens are wiped after use
 * and never logged.
 */
#ifndef DEVID_DIR_AUTH_H
#define DEVID_DIR_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define DIR_PASSWORD_MIN 8
#define DIR_PASSWORD_MAX 1024
#define DIR_SCRYPT_LOG_N_DEFAULT 15
#define DIR_SCRYPT_LOG_N_MIN 10
#define DIR_SCRYPT_LOG_N_MAX 20
#define DIR_SALT_LEN 16
#define DIR_PWHASH_LEN 32
#define DIR_PWHASH_TEXT_MAX 128

#define DIR_TOKEN_LEN 32
#define DIR_TOKEN_B64_LEN 43      /* base64url of 32 bytes, no padding */
#define DIR_SESSION_TTL_S 3600
#define DIR_LOGIN_WINDOW_S 300
#define DIR_NONCE_MIN 16
#define DIR_NONCE_MAX 64

/*
 * Checks that a proposed password has DIR_PASSWORD_MIN..DIR_PASSWORD_MAX
 * bytes and no NUL; 0 or ERR_FORMAT with the reason in e.
 */
int dir_password_check(const char *pw, size_t pw_len, struct err_ctx *e);

/*
 * Hashes pw_len bytes of password with scrypt (N = 2^log_n, r = 8, p = 1)
 * and a fresh random salt into a new string in *out (caller frees).  The
 * password is not copied anywhere.  0, ERR_INVALID_ARG, ERR_CRYPTO or
 * ERR_ALLOC.
 */
int dir_password_hash(const char *pw, size_t pw_len, unsigned int log_n,
    char **out, struct err_ctx *e);

/*
 * Verifies a password against a stored hash (constant-time comparison of
 * the derived key).  0 when it matches, ERR_DENIED when it does not,
 * ERR_FORMAT for a stored hash that cannot be read, ERR_CRYPTO.
 */
int dir_password_verify(const char *pw, size_t pw_len, const char *stored,
    struct err_ctx *e);

/*
 * A new session token: its base64url text in b64 (DIR_TOKEN_B64_LEN + 1
 * bytes) and H(token) in hash.  The caller wipes b64 after sending it.
 */
int dir_token_new(char b64[DIR_TOKEN_B64_LEN + 1], uint8_t hash[32],
    struct err_ctx *e);

/*
 * H(token) of the text a client sent as its bearer token; ERR_FORMAT
 * unless it is the base64url text of exactly DIR_TOKEN_LEN bytes.
 */
int dir_token_hash(const char *b64, size_t b64_len, uint8_t hash[32]);

/*
 * Checks a login time against now: ERR_STALE (with the skew in e) unless
 * |time - now| <= DIR_LOGIN_WINDOW_S.
 */
int dir_login_time_check(uint64_t time, uint64_t now, struct err_ctx *e);

#endif /* DEVID_DIR_AUTH_H */
