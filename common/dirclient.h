/*
 * dirclient.h - a client of the directory's HTTP API (PROTOCOL.md section
 * 5) on libcurl, for the agent, the messaging client and tests.
 *
 * Every call is one HTTP request; answers are parsed strictly with the
 * same code that verifies them (devrec, acctlog), and their size is
 * bounded.  Nothing here trusts the directory: a log or device list
 * returned by these calls is parsed, not verified -- verification against
 * the pinned key is acctlog_verify_update()'s job.
 *
 * Errors: a directory that cannot be reached is ERR_NETWORK with "directory
 * at URL is unreachable: ..."; a request that takes longer than its timeout
 * is ERR_TIMEOUT; an error answer becomes the code below with the
 * directory's own sentence in e:
 *   400 -> ERR_FORMAT (ERR_SIGNATURE for "bad_signature"),
 *   401 -> ERR_DENIED (ERR_STALE for "bad_time", ERR_REPLAY for
 *          "replayed"), 403 -> ERR_DENIED, 404 -> ERR_NOT_FOUND,
 *   409 -> ERR_EXISTS (ERR_REPLAY for "replayed"), 410 -> ERR_GONE,
 *   413 -> ERR_TOO_LARGE (ERR_QUOTA for "blob_quota"), 416 -> ERR_FORMAT,
 *   429 and 503 -> ERR_NETWORK (try again later), others -> ERR_NETWORK.
 * Blob transfers have no total timeout: one that stays too slow for the
 * request timeout is cut (ERR_NETWORK).
 * The HTTP status of the last answer is kept (dirc_last_status), and the
 * error word of the last error answer (dirc_last_error_code), for callers
 * that need them.
 *
 * A struct dirc is not thread-safe: one per thread.  Secrets: the session
 * token and passwords are wiped from devid's memory after use (libcurl
 * keeps its own short-lived copy of a Basic password while a request
 * runs).
 */
#ifndef DEVID_DIRCLIENT_H
#define DEVID_DIRCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "acctlog.h"
#include "devrec.h"
#include "errors.h"
#include "merkle.h"

/* Largest answer accepted by default (a full inbox page or log page). */
#define DIRC_RESPONSE_MAX_DEFAULT ((size_t)16 * 1024 * 1024)
#define DIRC_TIMEOUT_S_DEFAULT 30
#define DIRC_NONCE_LEN 32
#define DIRC_TOKEN_MAX 128

struct dirc;

struct dirc_options {
	const char *ca_file;         /* CA bundle for HTTPS; NULL: system */
	long timeout_s;              /* per request, long-polls get wait on
	                              * top; 0: DIRC_TIMEOUT_S_DEFAULT */
	size_t max_response;         /* 0: DIRC_RESPONSE_MAX_DEFAULT */
};

/*
 * Checks that url may be used as a directory's base URL: https:// to any
 * host, or plain http:// only to a loopback address (127.0.0.0/8 written
 * as a dotted quad, [::1], or "localhost" in any case), since over plain
 * HTTP the directory's answers and the session token travel unencrypted.
 * An http:// URL must name its host plainly: no user name ('@'), no
 * backslash, no space or control character, a port of 1-65535 if any.
 * IPv4-mapped addresses ([::ffff:127.0.0.1]) and other spellings of
 * loopback are refused.  Returns 0, or ERR_CONFIG with a sentence that
 * says why and what to do.  The one place this rule lives: dirc_new()
 * and the agent's configuration call it.
 */
int dirc_url_check(const char *url, struct err_ctx *e);

/*
 * A client for the directory at base_url ("https://dir.example.org" or
 * "http://127.0.0.1:8080", without a trailing /v1), which must pass
 * dirc_url_check().  opt may be NULL.  Plain http:// requests never go
 * through a proxy (the proxy would see them unencrypted).  Calls
 * curl_global_init() once per process.
 */
int dirc_new(const char *base_url, const struct dirc_options *opt,
    struct dirc **out, struct err_ctx *e);

/* Frees c and wipes its session token; NULL is fine. */
void dirc_free(struct dirc *c);

/* The HTTP status of the last answer (0 when none came). */
long dirc_last_status(const struct dirc *c);

/* Longest error word kept (PROTOCOL.md's are much shorter). */
#define DIRC_CODE_MAX 63

/* The "code" of the last error answer ("unknown" when it had none), or ""
 * before any error answer; valid until the next request on c. */
const char *dirc_last_error_code(const struct dirc *c);

/* Uses a session token obtained elsewhere (copied; NULL forgets it). */
int dirc_set_token(struct dirc *c, const char *token);

/* The current session token ("" when none), owned by c: for handing the
 * session to another local program.  Never log it. */
const char *dirc_token(const struct dirc *c);

/* --- GET /v1/info, GET /v1/health --- */

struct dirc_info {
	char version[64];
	char directory_id[DEVREC_ID_HEX_LEN + 1];
	uint8_t head_key[CRYPTO_SPKI_MAX];       /* DER SPKI */
	size_t head_key_len;
	uint64_t time;
	int open_signup;
	/* limits.max_blob, blob_quota, blob_days (section 8.3); 0 when the
	 * directory serves no blobs. */
	uint64_t max_blob;
	uint64_t blob_quota;
	uint64_t blob_days;
};

/* Checks that directory_id is hex(H(head_key)) before returning. */
int dirc_info(struct dirc *c, struct dirc_info *out, struct err_ctx *e);
int dirc_health(struct dirc *c, struct err_ctx *e);

/* --- accounts and devices --- */

/* POST /v1/accounts. */
int dirc_create_account(struct dirc *c, const char *account,
    const char *password, struct err_ctx *e);

/*
 * POST /v1/accounts/{rec->account}/devices with HTTP Basic; on success
 * *head (may be NULL) is the signed head the directory answered with
 * (parsed, not verified).
 */
int dirc_register_device(struct dirc *c, const char *password,
    const struct devrec *rec, struct acctlog_head *head, struct err_ctx *e);

/*
 * Signs a transcript with the device's signing key: the signer computes
 * H(transcript) and signs that digest, raw r||s out.  The whole transcript
 * is passed (it begins with the "devid-login-v1" domain tag) so that a
 * signer such as the agent can check the tag (tr_is_signable) before it
 * signs; the same shape as env_sign_fn.
 */
typedef int (*dirc_sign_fn)(void *arg, const uint8_t *transcript,
    size_t len, uint8_t sig[64], struct err_ctx *e);

/*
 * POST /v1/session: builds the login transcript for device_id over a fresh
 * 32-byte nonce and the current time, has sign sign it (the device's key,
 * usually in a token), and keeps the returned token in c for the calls
 * below.  directory_id is the pinned directory's id (the login is bound to
 * it).  *expires (may be NULL) gets the session's end.
 */
int dirc_login(struct dirc *c, const char *directory_id,
    const char *device_id, dirc_sign_fn sign, void *sign_arg,
    uint64_t *expires, struct err_ctx *e);

/*
 * GET /v1/accounts/{a}/log?since=N[&wait=S]: events after since (at most
 * ACCTLOG_MAX_EVENTS; ask again from the last one when the head is
 * further) and a fresh signed head.  wait_s 0 does not wait.  *out is a
 * new response (acctlog_response_free()).
 */
int dirc_get_log(struct dirc *c, const char *account, uint64_t since,
    unsigned int wait_s, struct acctlog_response **out, struct err_ctx *e);

/*
 * As dirc_get_log(), with tlog=1 (PROTOCOL.md section 7.5): the response
 * also carries (*out)->tlog when the directory's latest checkpoint holds an
 * event of the account.  Parsed, not verified: see tlog_check_log().
 */
int dirc_get_log_tlog(struct dirc *c, const char *account, uint64_t since,
    unsigned int wait_s, struct acctlog_response **out, struct err_ctx *e);

/* --- the global transparency log (PROTOCOL.md section 7.5) --- */

/*
 * GET /v1/tlog/checkpoint: the latest signed checkpoint with its
 * cosignatures, as a new NUL-terminated string *note (caller frees) of
 * *len bytes, at most TLOG_NOTE_MAX.  Parsed as JSON only; the note is
 * not verified (tlog_checkpoint_verify()).
 */
int dirc_tlog_checkpoint(struct dirc *c, char **note, size_t *len,
    struct err_ctx *e);

/*
 * GET /v1/tlog/proof/consistency?old=M&size=N into proof (room for
 * MERKLE_PROOF_MAX hashes), *n hashes.  c is a struct dirc *: the shape
 * of tlog_proof_fn, so it can be passed to tlog_state_update() as is.
 * The answer's "old" and "size" must be the ones asked (ERR_FORMAT).
 */
int dirc_tlog_consistency(void *c, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e);

/* GET /v1/tlog/proof/inclusion?index=I&size=N, as above. */
int dirc_tlog_inclusion(struct dirc *c, uint64_t index, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e);

/* One leaf of the global log: event seq of account, with its hash. */
struct dirc_tlog_leaf {
	char account[ACCTLOG_ACCOUNT_MAX + 1];
	uint64_t seq;
	uint8_t hash[32];
};

/* The most leaves one request asks for. */
#define DIRC_TLOG_LEAVES_MAX 1024

/*
 * GET /v1/tlog/leaves?start=S&end=E: leaves start..end-1 into out (room
 * for end - start, which must be 1..DIRC_TLOG_LEAVES_MAX, else
 * ERR_INVALID_ARG).  *n gets how many came: the directory may answer with
 * fewer (never more, never zero: ERR_FORMAT), the first being start.
 */
int dirc_tlog_leaves(struct dirc *c, uint64_t start, uint64_t end,
    struct dirc_tlog_leaf *out, size_t *n, struct err_ctx *e);

/* GET /v1/accounts/{a}/devices. */
struct dirc_devices {
	struct devrec *devices;
	size_t n_devices;
	struct acctlog_head head;
};
void dirc_devices_free(struct dirc_devices *d);
int dirc_devices(struct dirc *c, const char *account,
    struct dirc_devices **out, struct err_ctx *e);

/*
 * DELETE /v1/accounts/{a}/devices/{d} with {time, revoke_sig}; revoke_sig
 * is the signature of an active device of the account over
 * acctlog_revoke_digest(account, device, time).  *head (may be NULL) gets
 * the new head.
 */
int dirc_revoke(struct dirc *c, const char *account, const char *device_id,
    uint64_t time, const uint8_t revoke_sig[64], struct acctlog_head *head,
    struct err_ctx *e);

/* --- mailbox --- */

/* POST /v1/messages with the envelope's JSON text; *queued (may be NULL)
 * gets the number of devices it was queued for. */
int dirc_post_message(struct dirc *c, const char *envelope_json,
    size_t len, uint64_t *queued, struct err_ctx *e);

struct dirc_inbox_item {
	uint64_t seq;
	char *envelope;              /* JSON text for env_open() */
	size_t envelope_len;
};

struct dirc_inbox {
	struct dirc_inbox_item *items;
	size_t n_items;
};
void dirc_inbox_free(struct dirc_inbox *in);

/* GET /v1/inbox?wait=S&limit=M (limit 0: the directory's default). */
int dirc_inbox(struct dirc *c, unsigned int wait_s, unsigned int limit,
    struct dirc_inbox **out, struct err_ctx *e);

/* POST /v1/inbox/ack {upto}; *removed (may be NULL) gets the count. */
int dirc_ack(struct dirc *c, uint64_t upto, uint64_t *removed,
    struct err_ctx *e);

/* --- blobs (PROTOCOL.md section 8) --- */

/*
 * Progress of a transfer: done of total bytes, called from inside the
 * transfer as bytes move.  0 goes on; an ERR_* code aborts the transfer
 * and is returned by it (the caller's own cancellation).
 */
typedef int (*dirc_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Produces the next bytes of an upload body: up to max bytes at buf,
 * *n gets how many (0 only once the len bytes announced are out).  0,
 * or an ERR_* code (with e set) that aborts the upload and is returned
 * by dirc_blob_upload().
 */
typedef int (*dirc_read_fn)(void *arg, uint8_t *buf, size_t max, size_t *n,
    struct err_ctx *e);

/*
 * Takes the next bytes of a download body (like stream_emit_fn): 0 or
 * an ERR_* code that aborts the download and is returned by
 * dirc_blob_download().
 */
typedef int (*dirc_write_fn)(void *arg, const uint8_t *p, size_t len);

/* What the directory answered to an upload. */
struct dirc_blob_info {
	char hash[65];               /* hex SHA-256 as the directory saw it */
	uint64_t size;
	uint64_t expires;
};

/*
 * POST /v1/blobs: streams exactly len bytes from rd(rd_arg, ...) as the
 * body, with Content-Length len, in constant memory.  progress (may be
 * NULL) is told of the bytes sent.  On 200/201 fills *out.  Errors:
 * ERR_TOO_LARGE (413 too_large), ERR_QUOTA (413 blob_quota), ERR_DENIED
 * (401/403), ERR_NETWORK (the connection failed or was cut: nothing was
 * kept, upload again), ERR_FORMAT (400 or a malformed answer), or rd's
 * error; each with the directory's message.
 */
int dirc_blob_upload(struct dirc *c, uint64_t len, dirc_read_fn rd,
    void *rd_arg, dirc_progress_fn progress, void *progress_arg,
    struct dirc_blob_info *out, struct err_ctx *e);

/*
 * GET /v1/blobs/{hash} from byte offset on (Range: bytes=offset- when
 * offset > 0): the body goes to wr(wr_arg, ...) as it arrives, in
 * constant memory.  *total (may be NULL) gets the whole blob's size.
 * Errors: ERR_DENIED (403 not_addressed), ERR_GONE (410 expired),
 * ERR_FORMAT (a malformed answer, a Content-Range that does not match
 * offset, or more bytes than announced), ERR_NETWORK (cut early: the
 * bytes given to wr so far are valid, resume from there), or wr's
 * error.
 */
int dirc_blob_download(struct dirc *c, const char *hash, uint64_t offset,
    dirc_write_fn wr, void *wr_arg, dirc_progress_fn progress,
    void *progress_arg, uint64_t *total, struct err_ctx *e);

/*
 * POST /v1/messages?blobs=H1,... (n 1..16 hashes; with n 0 it is
 * dirc_post_message()).  ERR_DENIED for 403 blob_refused.
 */
int dirc_post_message_blobs(struct dirc *c, const char *envelope_json,
    size_t len, const char *const *blobs, size_t n, uint64_t *queued,
    struct err_ctx *e);

#endif /* DEVID_DIRCLIENT_H */
