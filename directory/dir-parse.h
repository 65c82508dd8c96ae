/*
 * dir-parse.h - the directory's own small parsers, free of HTTP and storage.
 *
 * Every step that turns request bytes into values lives here so that it
 * can be called (and fuzzed, tests/fuzz/fuzz_directory.c) on its own: the
 * request path and its route, decimal query arguments, the JSON bodies of
 * login, revocation, acknowledgement and account creation, HTTP Basic
 * credentials, and the stored password-hash text.  Device records and
 * envelopes go through common/devrec and common/envelope instead.
 *
 * Each parser returns 0 or an ERR_* code with the sentence a client sees
 * in e (the exact words of docs/directory.md's errors), and writes its
 * outputs only on success.
 */
#ifndef DEVID_DIR_PARSE_H
#define DEVID_DIR_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "devrec.h"
#include "dir-auth.h"
#include "errors.h"

#define DIR_PATH_SEGMENTS_MAX 6
#define DIR_PATH_SEGMENT_MAX 256       /* bytes per segment */
#define DIR_LOGIN_JSON_MAX 1024        /* POST /v1/session body */
#define DIR_SMALL_JSON_MAX 4096        /* other small JSON bodies */
#define DIR_SIG_LEN 64                 /* raw ECDSA P-256 r || s */

/* --- paths --- */

/* A request path split at '/': "/v1/a/b" is { "v1", "a", "b" }. */
struct dir_path {
	char seg[DIR_PATH_SEGMENTS_MAX][DIR_PATH_SEGMENT_MAX + 1];
	size_t n;
};

/*
 * Splits the decoded path (a C string) into segments.  It must start with
 * '/'; one trailing '/' is allowed, empty segments ("//"), segments longer
 * than DIR_PATH_SEGMENT_MAX and more than DIR_PATH_SEGMENTS_MAX segments
 * are not.  0 or ERR_FORMAT; *out is scratch on failure.
 */
int dir_parse_path(const char *path, struct dir_path *out);

/* The endpoints of docs/directory.md, by path alone. */
enum dir_endpoint {
	DIR_EP_NONE = 0,        /* no endpoint: 404 */
	DIR_EP_INFO,            /* /v1/info */
	DIR_EP_HEALTH,          /* /v1/health */
	DIR_EP_ACCOUNTS,        /* /v1/accounts */
	DIR_EP_SESSION,         /* /v1/session */
	DIR_EP_MESSAGES,        /* /v1/messages */
	DIR_EP_INBOX,           /* /v1/inbox */
	DIR_EP_INBOX_ACK,       /* /v1/inbox/ack */
	DIR_EP_LOG,             /* /v1/accounts/{a}/log */
	DIR_EP_DEVICES,         /* /v1/accounts/{a}/devices */
	DIR_EP_DEVICE,          /* /v1/accounts/{a}/devices/{d} */
	DIR_EP_TLOG_CHECKPOINT, /* /v1/tlog/checkpoint */
	DIR_EP_TLOG_INCLUSION,  /* /v1/tlog/proof/inclusion */
	DIR_EP_TLOG_CONSISTENCY, /* /v1/tlog/proof/consistency */
	DIR_EP_TLOG_LEAVES,     /* /v1/tlog/leaves */
	DIR_EP_BLOBS,           /* /v1/blobs */
	DIR_EP_BLOB,            /* /v1/blobs/{hash} */
};

/* A routed path: account, device and blob are set (else "") for the
 * endpoints that name them; their syntax is not checked here. */
struct dir_route {
	enum dir_endpoint endpoint;
	char account[DIR_PATH_SEGMENT_MAX + 1];
	char device[DIR_PATH_SEGMENT_MAX + 1];
	char blob[DIR_PATH_SEGMENT_MAX + 1];
};

/*
 * Routes a decoded path; returns out->endpoint, DIR_EP_NONE for a path
 * that is malformed or names no endpoint.  The method is the caller's
 * business (405 vs. 404).
 */
enum dir_endpoint dir_parse_route(const char *path, struct dir_route *out);

/* --- query arguments --- */

/*
 * The decimal query argument `name` with text value (NULL when absent,
 * which gives def) in [min, max]: digits only, at most 20 of them.
 * 0 or ERR_FORMAT.
 */
int dir_parse_query_u64(const char *name, const char *value, uint64_t def,
    uint64_t min, uint64_t max, uint64_t *out, struct err_ctx *e);

/* --- JSON bodies (len bytes, not NUL-terminated) --- */

/* POST /v1/session: { device, time, nonce, sig }. */
struct dir_login_req {
	char device[DEVREC_ID_HEX_LEN + 1];
	uint64_t time;
	uint8_t nonce[DIR_NONCE_MAX];
	size_t nonce_len;                 /* DIR_NONCE_MIN..DIR_NONCE_MAX */
	uint8_t sig[DIR_SIG_LEN];
};
int dir_parse_login(const uint8_t *body, size_t len,
    struct dir_login_req *out, struct err_ctx *e);

/* DELETE /v1/accounts/{a}/devices/{d}: { time, revoke_sig }. */
struct dir_revoke_req {
	uint64_t time;
	uint8_t sig[DIR_SIG_LEN];
};
int dir_parse_revoke(const uint8_t *body, size_t len,
    struct dir_revoke_req *out, struct err_ctx *e);

/* POST /v1/inbox/ack: { upto }. */
int dir_parse_ack(const uint8_t *body, size_t len, uint64_t *upto,
    struct err_ctx *e);

/*
 * POST /v1/accounts: { account, password }.  The account name is checked
 * (devrec_account_check) and the password too (dir_password_check).  On
 * success out holds the parsed JSON (obj) and borrows its strings; release
 * it with dir_parse_account_clear(), which wipes the password.  On failure
 * the body's copy of the password is wiped already and out is untouched.
 */
struct dir_account_req {
	json_t *obj;
	const char *account;
	const char *password;             /* not NUL-free: use password_len */
	size_t password_len;
};
int dir_parse_account(const uint8_t *body, size_t len,
    struct dir_account_req *out, struct err_ctx *e);
void dir_parse_account_clear(struct dir_account_req *req);

/* --- HTTP Basic credentials --- */

/*
 * The value of an Authorization header, "Basic " and the standard base64
 * (padded, RFC 4648 section 4) of "user:password".  New strings in *user
 * and *pw (the caller wipes and frees pw, frees user); the split is at the
 * first ':', and neither may contain NUL.  0, ERR_NOT_FOUND when header is
 * NULL or not Basic, ERR_FORMAT for malformed credentials, ERR_ALLOC.
 */
int dir_parse_basic_auth(const char *header, char **user, char **pw,
    size_t *pw_len);

/* --- stored password hashes --- */

#define DIR_SCRYPT_R 8
#define DIR_SCRYPT_P 1

/* "$scrypt$ln=<log_n>,r=8,p=1$<salt>$<hash>", salt and hash base64url. */
struct dir_pwhash {
	unsigned int log_n;               /* DIR_SCRYPT_LOG_N_MIN..MAX */
	uint8_t salt[DIR_SALT_LEN];
	uint8_t dk[DIR_PWHASH_LEN];
};

/*
 * Reads a stored hash; only the text dir_parse_pwhash_encode() writes is
 * accepted (no signs, spaces or leading zeros).  0 or ERR_FORMAT; the
 * caller wipes out->dk after use.
 */
int dir_parse_pwhash(const char *stored, struct dir_pwhash *out,
    struct err_ctx *e);

/* The text form of h in a new string (caller frees); 0 or ERR_ALLOC. */
int dir_parse_pwhash_encode(const struct dir_pwhash *h, char **out);

#endif /* DEVID_DIR_PARSE_H */
