/*
 * dir-auth.c - scrypt password hashes, session tokens, login time window.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "codec.h"
#include "crypto.h"
#include "dir-auth.h"
#include "dir-parse.h"
#include "errors.h"

int
dir_password_check(const char *pw, size_t pw_len, struct err_ctx *e)
{
	if (pw == NULL)
		return err_set(e, ERR_FORMAT, "password missing");
	if (pw_len < DIR_PASSWORD_MIN || pw_len > DIR_PASSWORD_MAX)
		return err_set(e, ERR_FORMAT, "the password must be %d to %d "
		    "bytes long", DIR_PASSWORD_MIN, DIR_PASSWORD_MAX);
	if (memchr(pw, '\0', pw_len) != NULL)
		return err_set(e, ERR_FORMAT, "the password must not contain "
		    "a NUL byte");
	return 0;
}

/* scrypt(pw, salt) into out; out is wiped on failure. */
static int
scrypt_derive(const char *pw, size_t pw_len, const uint8_t *salt,
    size_t salt_len, unsigned int log_n, uint8_t out[DIR_PWHASH_LEN],
    struct err_ctx *e)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[6], *p = params;
	uint64_t n = (uint64_t)1 << log_n;
	uint32_t rr = DIR_SCRYPT_R, pp = DIR_SCRYPT_P;
	/* 128 * r * N plus headroom; the default limit (32 MiB) is exactly
	 * what N = 2^15 needs and OpenSSL refuses it. */
	uint64_t maxmem = (uint64_t)128 * DIR_SCRYPT_R * n * 2 + (1u << 20);
	int r = ERR_CRYPTO;

	if ((kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SCRYPT, NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		r = err_set(e, ERR_CRYPTO, "scrypt is not available in this "
		    "OpenSSL");
		goto out;
	}
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	    (void *)(uintptr_t)pw, pw_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)(uintptr_t)salt, salt_len);
	*p++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*p++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr);
	*p++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_CTX_set_params(kctx, params) != 1) {
		r = err_set(e, ERR_CRYPTO, "scrypt rejected its parameters");
		goto out;
	}
	p = params;
	*p++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
	    &maxmem);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_CTX_set_params(kctx, params) != 1 ||
	    EVP_KDF_derive(kctx, out, DIR_PWHASH_LEN, NULL) != 1) {
		crypto_wipe(out, DIR_PWHASH_LEN);
		r = err_set(e, ERR_CRYPTO, "scrypt failed (out of memory?)");
		goto out;
	}
	r = 0;
 out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return r;
}

int
dir_password_hash(const char *pw, size_t pw_len, unsigned int log_n,
    char **out, struct err_ctx *e)
{
	struct dir_pwhash h;
	int r = ERR_INTERNAL;

	return_val_if_fail(pw != NULL && out != NULL, ERR_INVALID_ARG);
	if (log_n < DIR_SCRYPT_LOG_N_MIN || log_n > DIR_SCRYPT_LOG_N_MAX)
		return err_set(e, ERR_INVALID_ARG, "scrypt cost 2^%u is outside "
		    "2^%d..2^%d", log_n, DIR_SCRYPT_LOG_N_MIN,
		    DIR_SCRYPT_LOG_N_MAX);
	memset(&h, 0, sizeof(h));
	h.log_n = log_n;
	if ((r = crypto_random(h.salt, sizeof(h.salt))) != 0) {
		err_set(e, r, "no random salt");
		goto out;
	}
	if ((r = scrypt_derive(pw, pw_len, h.salt, sizeof(h.salt), log_n,
	    h.dk, e)) != 0)
		goto out;
	if ((r = dir_parse_pwhash_encode(&h, out)) != 0) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	r = 0;
 out:
	crypto_wipe(&h, sizeof(h));
	return r;
}

int
dir_password_verify(const char *pw, size_t pw_len, const char *stored,
    struct err_ctx *e)
{
	struct dir_pwhash want;
	uint8_t got[DIR_PWHASH_LEN];
	int r = ERR_INTERNAL;

	return_val_if_fail(pw != NULL && stored != NULL, ERR_INVALID_ARG);
	memset(&want, 0, sizeof(want));
	if ((r = dir_parse_pwhash(stored, &want, e)) != 0)
		goto out;
	if ((r = scrypt_derive(pw, pw_len, want.salt, sizeof(want.salt),
	    want.log_n, got, e)) != 0)
		goto out;
	if (crypto_memeq_ct(got, want.dk, sizeof(got)) != 0) {
		r = err_set(e, ERR_DENIED, "wrong password");
		goto out;
	}
	r = 0;
 out:
	crypto_wipe(got, sizeof(got));
	crypto_wipe(&want, sizeof(want));
	return r;
}

int
dir_token_new(char b64[DIR_TOKEN_B64_LEN + 1], uint8_t hash[32],
    struct err_ctx *e)
{
	uint8_t tok[DIR_TOKEN_LEN];
	char *s = NULL;
	int r = ERR_INTERNAL;

	if ((r = crypto_random(tok, sizeof(tok))) != 0) {
		err_set(e, r, "no random session token");
		goto out;
	}
	if ((r = b64url_encode(tok, sizeof(tok), &s)) != 0 ||
	    strlen(s) != DIR_TOKEN_B64_LEN) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = crypto_sha256(tok, sizeof(tok), hash)) != 0) {
		err_set(e, r, "cannot hash the session token");
		goto out;
	}
	memcpy(b64, s, DIR_TOKEN_B64_LEN + 1);
	r = 0;
 out:
	if (s != NULL) {
		crypto_wipe(s, strlen(s));
		free(s);
	}
	crypto_wipe(tok, sizeof(tok));
	return r;
}

int
dir_token_hash(const char *b64, size_t b64_len, uint8_t hash[32])
{
	uint8_t tok[DIR_TOKEN_LEN];
	int r;

	if (b64 == NULL || b64_len != DIR_TOKEN_B64_LEN)
		return ERR_FORMAT;
	if ((r = b64url_decode_exact(b64, b64_len, tok, sizeof(tok))) != 0)
		return ERR_FORMAT;
	r = crypto_sha256(tok, sizeof(tok), hash);
	crypto_wipe(tok, sizeof(tok));
	return r;
}

int
dir_login_time_check(uint64_t time, uint64_t now, struct err_ctx *e)
{
	uint64_t skew = time > now ? time - now : now - time;

	if (skew > DIR_LOGIN_WINDOW_S)
		return err_set(e, ERR_STALE, "the signed time is %llu s %s the "
		    "directory's clock, more than the %d s allowed: check the "
		    "device's clock", (unsigned long long)skew,
		    time > now ? "ahead of" : "behind", DIR_LOGIN_WINDOW_S);
	return 0;
}
