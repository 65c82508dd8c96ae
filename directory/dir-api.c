/*
 * dir-api.c - the endpoints of PROTOCOL.md section 5 and their routing.
 *
 * Each handler validates its whole input first (syntax, signatures, the
 * log rules of section 3 through acctlog_state_apply()) and only then
 * asks the store for one transactional change; a refusal never reaches
 * the store.  Long-poll handlers register the key they watch before they
 * read, and are called again by the server when it changes: after this
 * server's own change, or another process's that the store reports
 * (changed()).  Appending to an account's log and signing its heads are
 * in dir-account.c.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dir-account.h"
#include "dir-api.h"
#include "dir-auth.h"
#include "dir-blob.h"
#include "dir-cache.h"
#include "dir-log.h"
#include "dir-net.h"
#include "dir-parse.h"
#include "dir-throttle.h"
#include "dir-tlog.h"
#include "envelope.h"
#include "errors.h"
#include "stream.h"
#include "transcript.h"

#define KEY_MAX (8 + DIR_ACCOUNT_MAX)          /* "log:" / "inbox:" + name */
#define APPEND_ATTEMPTS 5
#define PURGE_INTERVAL_S 60
#define BLOBS_PER_MESSAGE 16
/* The smallest blob: a header and one empty final segment. */
#define BLOB_MIN_LEN (STREAM_HEADER_LEN + STREAM_TAG_LEN)
/* Rounds of DIR_BLOB_EXPIRE_BATCH removals per purge at most. */
#define BLOB_EXPIRE_ROUNDS 16

/* Milliseconds of clock: CLOCK_REALTIME for the caches (whose entries
 * expire by the wall clock, as sessions do), CLOCK_MONOTONIC for the
 * password brake. */
static uint64_t
clock_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

static uint64_t
mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static uint64_t
now_s(void)
{
	time_t t = time(NULL);

	return t < 0 ? 0 : (uint64_t)t;
}

void
dir_api_config_default(struct dir_api_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_devices = DIR_MAX_DEVICES_DEFAULT;
	cfg->max_recipients = DIR_MAX_RECIPIENTS_DEFAULT;
	cfg->max_queue = DIR_MAX_QUEUE_DEFAULT;
	cfg->max_queue_per_sender = DIR_MAX_QUEUE_PER_SENDER_DEFAULT;
	cfg->account_quota = DIR_ACCOUNT_QUOTA_DEFAULT;
	cfg->max_sessions = DIR_MAX_SESSIONS_DEFAULT;
	cfg->scrypt_log_n = DIR_SCRYPT_LOG_N_DEFAULT;
	cfg->max_body = DIR_BODY_MAX_DEFAULT;
	cfg->blob_max = DIR_BLOB_MAX_DEFAULT;
	cfg->blob_quota = DIR_BLOB_QUOTA_DEFAULT;
	cfg->blob_days = DIR_BLOB_DAYS_DEFAULT;
}

int
dir_api_init(struct dir_api *api, const struct dir_api_config *cfg,
    struct dir_store *store, struct dir_key *key)
{
	uint8_t secret[32];
	char *dummy = NULL;
	int r;

	memset(api, 0, sizeof(*api));
	api->cfg = *cfg;
	api->store = store;
	api->key = key;
	/* A password nobody knows, hashed like every stored one. */
	if (crypto_random(secret, sizeof(secret)) != 0 ||
	    b64url_encode(secret, sizeof(secret), &dummy) != 0) {
		crypto_wipe(secret, sizeof(secret));
		return ERR_INTERNAL;
	}
	crypto_wipe(secret, sizeof(secret));
	r = dir_password_hash(dummy, strlen(dummy), cfg->scrypt_log_n,
	    &api->dummy_hash, NULL);
	crypto_wipe(dummy, strlen(dummy));
	free(dummy);
	if (r != 0)
		return r;
	if ((api->throttle = dir_throttle_new()) == NULL) {
		free(api->dummy_hash);
		return ERR_ALLOC;
	}
	if ((api->heads = calloc(DIR_HEAD_CACHE, sizeof(*api->heads))) ==
	    NULL || (api->cache = dir_cache_new()) == NULL) {
		free(api->heads);
		dir_throttle_free(api->throttle);
		free(api->dummy_hash);
		return ERR_ALLOC;
	}
	if (pthread_mutex_init(&api->purge_lock, NULL) != 0 ||
	    pthread_mutex_init(&api->head_lock, NULL) != 0) {
		dir_throttle_free(api->throttle);
		dir_cache_free(api->cache);
		free(api->heads);
		free(api->dummy_hash);
		return ERR_INTERNAL;
	}
	return 0;
}

void
dir_api_clear(struct dir_api *api)
{
	if (api == NULL)
		return;
	dir_api_watch_stop(api);
	pthread_mutex_destroy(&api->purge_lock);
	pthread_mutex_destroy(&api->head_lock);
	free(api->heads);
	dir_cache_free(api->cache);
	dir_throttle_free(api->throttle);
	free(api->dummy_hash);
	memset(api, 0, sizeof(*api));
}

void
dir_api_set_tlog(struct dir_api *api, struct dir_tlog *t)
{
	api->tlog = t;
}

void
dir_api_set_server(struct dir_api *api, struct dir_server *srv)
{
	api->srv = srv;
}

void
dir_api_set_blobs(struct dir_api *api, struct dir_blobs *b)
{
	api->blobs = b;
}

/* --- small helpers --- */

static int account_segment(struct dir_api *api, struct dir_request *rq,
    const char *account);
static int account_syntax(struct dir_request *rq, const char *account);

/* Answers with the status and code word that fit e's code. */
void
dir_api_reply_err(struct dir_request *rq, const struct err_ctx *e)
{
	const char *code;
	unsigned int status = dir_status_for(e->code, &code);
	char method[16], path[256];

	if (status == MHD_HTTP_INTERNAL_SERVER_ERROR || e->code == ERR_IO ||
	    e->code == ERR_NETWORK || e->code == ERR_ALLOC) {
		/* The detail may name files or database internals: log it,
		 * answer with a generic sentence. */
		dir_log_sanitize(dir_request_method(rq), method,
		    sizeof(method));
		dir_log_sanitize(dir_request_path(rq), path, sizeof(path));
		dir_log("error on %s %s: %s", method, path, err_msg(e));
		dir_reply_error(rq, status, code, "the directory failed to "
		    "handle this request%s; its operator has the details",
		    status == MHD_HTTP_SERVICE_UNAVAILABLE ? " for now, try "
		    "again later" : "");
		return;
	}
	dir_reply_error(rq, status, code, "%s", err_msg(e));
}

static void
notify(struct dir_api *api, const char *prefix, const char *name)
{
	char key[KEY_MAX + 1];

	snprintf(key, sizeof(key), "%.7s:%.128s", prefix, name);
	dir_server_notify(api->srv, key);
}

/*
 * After a change was committed, by this server or by another process on
 * the same database: forgets what the caches hold about it and wakes the
 * long-polls that wait for it.  The log's cached tail was forgotten
 * already when this server appended (dir-account.c does it before
 * anything else); forgetting it again costs nothing.
 */
static void
changed(struct dir_api *api, enum dir_change what, const char *name)
{
	switch (what) {
	case DIR_CHANGE_LOG:
		dir_cache_log_changed(api->cache, name);
		notify(api, "log", name);
		/* The tree grew with the log: a checkpoint is due. */
		dir_tlog_poke(api->tlog);
		break;
	case DIR_CHANGE_INBOX:
		notify(api, "inbox", name);
		break;
	case DIR_CHANGE_DEVICE:
		/* Revoked: its sessions ended, and a long-poll of its inbox
		 * learns that at once. */
		dir_cache_device_changed(api->cache, name);
		notify(api, "inbox", name);
		break;
	case DIR_CHANGE_ALL:
		dir_cache_forget_all(api->cache);
		dir_server_notify_all(api->srv);
		dir_tlog_poke(api->tlog);
		break;
	}
}

/* The store's dir_change_cb: a change another process committed. */
static void
on_store_change(void *arg, enum dir_change what, const char *name)
{
	struct dir_api *api = arg;

	if (what == DIR_CHANGE_ALL)
		dir_log("listening for changes made by other instances; "
		    "every long-poll reads again");
	changed(api, what, name);
}

int
dir_api_watch_start(struct dir_api *api, struct err_ctx *e)
{
	int r;

	if (api->store->ops->watch == NULL || api->watching)
		return 0;
	if ((r = api->store->ops->watch(api->store, on_store_change, api,
	    e)) != 0)
		return r;
	api->watching = 1;
	return 0;
}

void
dir_api_watch_stop(struct dir_api *api)
{
	if (!api->watching)
		return;
	(void)api->store->ops->watch(api->store, NULL, NULL, NULL);
	api->watching = 0;
}

/* The decimal query argument name in [min, max]; absent gives def. */
static int
query_u64(struct dir_request *rq, const char *name, uint64_t def,
    uint64_t min, uint64_t max, uint64_t *out, struct err_ctx *e)
{
	return dir_parse_query_u64(name, dir_request_query(rq, name), def,
	    min, max, out, e);
}

/* The session of the request's bearer token. */
static int
bearer(struct dir_api *api, struct dir_request *rq,
    struct dir_session_info *s, struct err_ctx *e)
{
	const char *h = dir_request_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
	uint8_t th[32];
	uint64_t now, epoch;
	int r;

	dir_reply_auth_scheme(rq, "Bearer");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return err_set(e, ERR_DENIED, "this endpoint needs a session: "
		    "log in with POST /v1/session and send 'Authorization: "
		    "Bearer <token>'");
	if (dir_token_hash(h + 7, strlen(h + 7), th) != 0)
		return err_set(e, ERR_DENIED, "the bearer token is not the "
		    "base64url text of 32 bytes: send the token POST "
		    "/v1/session returned");
	now = wall_ms();
	if (dir_cache_session_get(api->cache, th, now, s) == 0) {
		crypto_wipe(th, sizeof(th));
		return 0;
	}
	epoch = dir_cache_session_epoch(api->cache);
	if ((r = api->store->ops->session_get(api->store, th, now / 1000, s,
	    e)) == 0)
		dir_cache_session_put(api->cache, th, s, epoch, now);
	crypto_wipe(th, sizeof(th));
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		return err_set(e, ERR_DENIED, "the session is unknown, expired "
		    "or its device was revoked: log in again");
	}
	return r;
}

/* Answers 401 for authentication failures (ERR_DENIED from bearer()). */
static void
reply_auth_err(struct dir_request *rq, const struct err_ctx *e)
{
	if (e->code == ERR_DENIED)
		dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "%s", err_msg(e));
	else
		dir_api_reply_err(rq, e);
}

int
dir_api_add_device(struct dir_api *api, const struct devrec *rec,
    struct acctlog_head *head, json_t **event_json, struct err_ctx *e)
{
	struct acctlog_event ev;
	json_t *evj = NULL;
	uint64_t now = 0;
	int r = ERR_INTERNAL, attempt;

	if ((r = devrec_verify(rec, e)) != 0)
		return r;
	for (attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
		err_clear(e);
		now = now_s();
		if ((r = dir_account_append_add(api, rec, now, &ev, &evj,
		    e)) != ERR_CHAIN)
			break;
	}
	if (r != 0)
		goto out;
	if (api->srv != NULL)
		changed(api, DIR_CHANGE_LOG, rec->account);
	if (head != NULL && (r = dir_account_sign_head(api, rec->account,
	    ev.seq, ev.hash, now, head, e)) != 0)
		goto out;
	if (event_json != NULL) {
		*event_json = evj;
		evj = NULL; /* transferred */
	}
	r = 0;
 out:
	json_decref(evj);
	return r;
}

/* --- endpoints --- */

static void
handle_info(struct dir_api *api, struct dir_request *rq)
{
	const uint8_t *spki;
	size_t spki_len;
	char *b64 = NULL;
	json_t *o;

	spki = dir_key_spki(api->key, &spki_len);
	if (b64url_encode(spki, spki_len, &b64) != 0) {
		dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
		    "the directory is out of memory: try again later");
		return;
	}
	o = json_pack("{s:s,s:s,s:s,s:I,s:b,"
	    "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}",
	    "version", PACKAGE_VERSION,
	    "directory_id", dir_key_id(api->key),
	    "head_key", b64,
	    "time", (json_int_t)now_s(),
	    "open_signup", api->cfg.open_signup,
	    "limits",
	    "max_body", (json_int_t)api->cfg.max_body,
	    "max_devices", (json_int_t)api->cfg.max_devices,
	    "max_recipients", (json_int_t)api->cfg.max_recipients,
	    "max_queue", (json_int_t)api->cfg.max_queue,
	    "max_queue_per_sender", (json_int_t)api->cfg.max_queue_per_sender,
	    "account_quota", (json_int_t)(api->cfg.account_quota > INT64_MAX ?
	    INT64_MAX : api->cfg.account_quota),
	    "max_wait", (json_int_t)DIR_WAIT_MAX_S,
	    "max_log_events", (json_int_t)ACCTLOG_MAX_EVENTS);
	free(b64);
	if (o != NULL && api->blobs != NULL &&
	    (json_object_set_new(json_object_get(o, "limits"), "max_blob",
	    json_integer((json_int_t)api->cfg.blob_max)) != 0 ||
	    json_object_set_new(json_object_get(o, "limits"), "blob_quota",
	    json_integer((json_int_t)api->cfg.blob_quota)) != 0 ||
	    json_object_set_new(json_object_get(o, "limits"), "blob_days",
	    json_integer((json_int_t)api->cfg.blob_days)) != 0)) {
		json_decref(o);
		o = NULL;
	}
	if (o != NULL && api->tlog != NULL &&
	    (json_object_set_new(o, "tlog_origin",
	    json_string(dir_tlog_origin(api->tlog))) != 0 ||
	    json_object_set_new(o, "tlog_vkey",
	    json_string(dir_tlog_vkey(api->tlog))) != 0)) {
		json_decref(o);
		o = NULL;
	}
	dir_reply_json(rq, MHD_HTTP_OK, o);
}

static void
handle_health(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;

	err_clear(&e);
	if (api->store->ops->health(api->store, &e) != 0) {
		dir_log("health check failed: %s", err_msg(&e));
		dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
		    "the directory's storage does not answer");
		return;
	}
	dir_reply_json(rq, MHD_HTTP_OK, json_pack("{s:s,s:I}", "status", "ok",
	    "time", (json_int_t)now_s()));
}

/* --- passwords: checked and hashed on the server's worker pool --- */

/*
 * One password check or hash in flight, the request's state while the
 * pool works on it.  The pool thread writes only result, hash and e; the
 * HTTP thread reads them once the job woke the request again.
 */
struct pw_job {
	int verify;                  /* 1: check pw against stored */
	char *pw;                    /* owned, wiped */
	size_t pw_len;
	char *stored;                /* owned: the account's hash or dummy */
	int known;                   /* the account exists */
	unsigned int log_n;          /* hashing cost (verify == 0) */
	int result;                  /* 0, ERR_DENIED, or another error */
	char *hash;                  /* new hash (verify == 0), owned */
	struct err_ctx e;
	char account[DIR_ACCOUNT_MAX + 1];
	char net[DIR_NET_KEY_MAX];
	int throttled;               /* dir_throttle_begin() succeeded */
	struct dir_throttle *throttle;
};

static void
pw_job_free(void *arg)
{
	struct pw_job *j = arg;

	if (j == NULL)
		return;
	if (j->throttled)
		dir_throttle_end(j->throttle, j->verify ? j->account : NULL,
		    j->net, DIR_THROTTLE_ABANDONED, mono_ms());
	if (j->pw != NULL) {
		crypto_wipe(j->pw, j->pw_len);
		free(j->pw);
	}
	if (j->stored != NULL) {
		crypto_wipe(j->stored, strlen(j->stored));
		free(j->stored);
	}
	free(j->hash);
	free(j);
}

/* Runs on a pool thread. */
static void
pw_job_run(void *arg)
{
	struct pw_job *j = arg;

	err_clear(&j->e);
	if (j->verify) {
		j->result = dir_password_verify(j->pw, j->pw_len, j->stored,
		    &j->e);
		if (!j->known && j->result == 0)
			j->result = ERR_DENIED; /* cannot happen; never let in */
	} else {
		j->result = dir_password_hash(j->pw, j->pw_len, j->log_n,
		    &j->hash, &j->e);
	}
	crypto_wipe(j->pw, j->pw_len);
}

/* 429 for a key that must wait: held, so hammering gains nothing. */
static void
reply_throttled(struct dir_request *rq, unsigned int retry_s)
{
	dir_reply_error(rq, MHD_HTTP_TOO_MANY_REQUESTS, "throttled",
	    "too many password attempts for this account or from this "
	    "network: try again in %u seconds", retry_s);
	dir_reply_retry_after(rq, retry_s);
	dir_reply_hold(rq);
}

/*
 * Hands j to the pool as the request's state; on failure answers 503
 * (the pool's queue is full) and frees j.  0 when the job runs.
 */
static int
pw_job_start(struct dir_request *rq, struct pw_job *j)
{
	int r;

	dir_request_set_state(rq, j, pw_job_free);
	if ((r = dir_request_run_job(rq, pw_job_run, j)) == 0)
		return 0;
	dir_request_set_state(rq, NULL, NULL); /* frees j */
	dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
	    "the directory has too many password checks waiting: try again "
	    "in a few seconds");
	dir_reply_retry_after(rq, 2);
	/* Whoever fills the queue is likely to hammer: slow it down too. */
	dir_reply_hold(rq);
	return r;
}

/* POST /v1/accounts: open sign-up only; the password is hashed with
 * scrypt on the pool and wiped from the request. */
static void
handle_account_create(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	struct dir_account_req req;
	struct pw_job *j = dir_request_state(rq);
	const uint8_t *body;
	unsigned int retry_s;
	size_t len;

	err_clear(&e);
	memset(&req, 0, sizeof(req));
	if (!api->cfg.open_signup) {
		dir_reply_error(rq, MHD_HTTP_FORBIDDEN, "signup_closed",
		    "this directory does not allow open sign-up: ask its "
		    "operator to create the account");
		return;
	}
	body = dir_request_body(rq, &len);
	if (dir_parse_account(body, len, &req, &e) != 0)
		goto fail;
	if (j == NULL) {
		/* First call: queue the hashing, counted per network. */
		if ((j = calloc(1, sizeof(*j))) == NULL ||
		    (j->pw = malloc(req.password_len + 1)) == NULL) {
			free(j);
			err_set(&e, ERR_ALLOC, "out of memory");
			goto fail;
		}
		memcpy(j->pw, req.password, req.password_len);
		j->pw_len = req.password_len;
		j->log_n = api->cfg.scrypt_log_n;
		j->throttle = api->throttle;
		snprintf(j->net, sizeof(j->net), "%s",
		    dir_request_network(rq));
		if (dir_throttle_begin(api->throttle, NULL, j->net, mono_ms(),
		    &retry_s) != 0) {
			pw_job_free(j);
			reply_throttled(rq, retry_s);
			goto out;
		}
		j->throttled = 1;
		(void)pw_job_start(rq, j);
		goto out;
	}
	/* Second call: the hash is ready. */
	dir_throttle_end(api->throttle, NULL, j->net, DIR_THROTTLE_OK,
	    mono_ms());
	j->throttled = 0;
	if (j->result != 0) {
		err_set(&e, j->result, "%s", err_msg(&j->e));
		goto fail;
	}
	if (api->store->ops->account_create(api->store, req.account, j->hash,
	    now_s(), &e) != 0)
		goto fail;
	dir_log("account '%s' created by %s", req.account,
	    dir_request_client(rq));
	dir_reply_json(rq, MHD_HTTP_CREATED, json_pack("{s:s}", "account",
	    req.account));
	goto out;
 fail:
	dir_api_reply_err(rq, &e);
 out:
	dir_parse_account_clear(&req);
}

/*
 * The second call of basic_auth(): the verdict of j, which is counted for
 * the throttle.  0 when the password matched; -1: answered (401, or the
 * error that kept the check from running).
 */
static int
basic_auth_verdict(struct dir_api *api, struct dir_request *rq,
    struct pw_job *j)
{
	if (j->result == 0) {
		dir_throttle_end(api->throttle, j->account, j->net,
		    DIR_THROTTLE_OK, mono_ms());
		j->throttled = 0;
		return 0;
	}
	if (j->result == ERR_DENIED) {
		dir_throttle_end(api->throttle, j->account, j->net,
		    DIR_THROTTLE_FAILED, mono_ms());
		j->throttled = 0;
		dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "wrong account name or password");
		return -1;
	}
	dir_api_reply_err(rq, &j->e);
	return -1;
}

/*
 * A job that checks the password *pw (pw_len bytes, taken over: *pw is
 * set to NULL) of account against its stored hash, or against the dummy
 * hash for an unknown account, counted by the throttle from now on.  NULL
 * when it answered instead (429, 503 or the store's error).
 */
static struct pw_job *
verify_job_new(struct dir_api *api, struct dir_request *rq,
    const char *account, char **pw, size_t pw_len)
{
	struct err_ctx e;
	struct pw_job *j;
	unsigned int retry_s;
	int r;

	err_clear(&e);
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
		    "out of memory");
		return NULL;
	}
	j->verify = 1;
	j->pw = *pw;
	j->pw_len = pw_len;
	*pw = NULL; /* transferred */
	j->throttle = api->throttle;
	snprintf(j->account, sizeof(j->account), "%.*s", DIR_ACCOUNT_MAX,
	    account);
	snprintf(j->net, sizeof(j->net), "%s", dir_request_network(rq));
	if (dir_throttle_begin(api->throttle, j->account, j->net, mono_ms(),
	    &retry_s) != 0) {
		pw_job_free(j);
		reply_throttled(rq, retry_s);
		return NULL;
	}
	j->throttled = 1;
	r = api->store->ops->account_get(api->store, account, &j->stored,
	    NULL, &e);
	if (r == ERR_NOT_FOUND) {
		err_clear(&e);
		if ((j->stored = strdup(api->dummy_hash)) == NULL)
			r = err_set(&e, ERR_ALLOC, "out of memory");
		else
			r = 0;
	} else if (r == 0) {
		j->known = 1;
	}
	if (r != 0) {
		pw_job_free(j);
		dir_api_reply_err(rq, &e);
		return NULL;
	}
	return j;
}

/*
 * HTTP Basic with the password of account, in two calls of the handler.
 * The first checks the form of the credentials and the throttle, looks up
 * the stored hash (a dummy one for an unknown account, so that both cost
 * the same and answer the same) and queues the check on the pool: it
 * returns 1.  The second call finds the verdict in the request state and
 * returns 0 when the password matched.  -1: answered (401, 429, 503).
 */
static int
basic_auth(struct dir_api *api, struct dir_request *rq, const char *account)
{
	struct pw_job *j = dir_request_state(rq);
	char *user = NULL, *pw = NULL;
	size_t pw_len = 0;
	int r;

	dir_reply_auth_scheme(rq, "Basic");
	if (j != NULL)
		return basic_auth_verdict(api, rq, j);
	if ((r = dir_request_basic_auth(rq, &user, &pw, &pw_len)) != 0) {
		if (r == ERR_ALLOC)
			dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "overloaded", "out of memory");
		else
			dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED,
			    "unauthorized", "registering a device needs the "
			    "account name and password as HTTP Basic "
			    "authentication");
		goto out;
	}
	if (strcmp(user, account) != 0) {
		dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "the HTTP Basic user name must be the account name '%s'",
		    account);
		goto out;
	}
	if ((j = verify_job_new(api, rq, account, &pw, pw_len)) == NULL)
		goto out;
	if (pw_job_start(rq, j) == 0) {
		dir_request_free_credentials(user, pw, pw_len);
		return 1;
	}
 out:
	dir_request_free_credentials(user, pw, pw_len);
	return -1;
}

/*
 * POST /v1/accounts/{a}/devices: HTTP Basic with a's password first (an
 * unknown account fails it like a wrong password), then the record
 * through dir_api_add_device().
 */
static void
handle_device_add(struct dir_api *api, struct dir_request *rq,
    const char *account)
{
	struct err_ctx e;
	struct devrec rec;
	struct acctlog_head head;
	const uint8_t *body;
	size_t len;
	json_t *evj = NULL, *hj = NULL;
	char short_id[DEVREC_SHORT_ID_LEN + 1];

	err_clear(&e);
	if (basic_auth(api, rq, account) != 0)
		return;
	body = dir_request_body(rq, &len);
	if (devrec_parse((const char *)body, len, DEVREC_JSON_MAX, &rec,
	    &e) != 0)
		goto fail;
	if (strcmp(rec.account, account) != 0) {
		err_set(&e, ERR_FORMAT, "the record is for account '%s' but "
		    "was posted to '%s'", rec.account, account);
		goto fail;
	}
	if (dir_api_add_device(api, &rec, &head, &evj, &e) != 0 ||
	    acctlog_head_to_json(&head, &hj, &e) != 0)
		goto fail;
	devrec_short_id(rec.device, short_id);
	dir_log("device %s '%s' added to '%s' as event %" PRIu64, short_id,
	    rec.label, account, head.seq);
	dir_reply_json(rq, MHD_HTTP_CREATED, json_pack("{s:o,s:o}", "head",
	    hj, "event", evj));
	return;
 fail:
	json_decref(evj);
	dir_api_reply_err(rq, &e);
}

/*
 * Every PURGE_INTERVAL_S at most: forgets expired sessions and nonces
 * and, when blobs are served, removes the blobs that are to go (section
 * 8.4) with their files.  Cheap when not due: one atomic load.
 */
static void
maybe_purge(struct dir_api *api, uint64_t now)
{
	struct err_ctx e;
	uint64_t removed;
	int due, round;

	if (now < __atomic_load_n(&api->last_purge, __ATOMIC_RELAXED) +
	    PURGE_INTERVAL_S)
		return;
	pthread_mutex_lock(&api->purge_lock);
	due = now >= api->last_purge + PURGE_INTERVAL_S;
	if (due)
		__atomic_store_n(&api->last_purge, now, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&api->purge_lock);
	if (!due)
		return;
	err_clear(&e);
	if (api->store->ops->purge(api->store, now, &e) != 0)
		dir_log("purging expired sessions failed: %s", err_msg(&e));
	for (round = 0; api->blobs != NULL && round < BLOB_EXPIRE_ROUNDS;
	    round++) {
		err_clear(&e);
		if (dir_blobs_expire(api->blobs, api->store, now, &removed,
		    &e) != 0) {
			dir_log("expiring blobs failed: %s", err_msg(&e));
			break;
		}
		if (removed < DIR_BLOB_EXPIRE_BATCH)
			break;
	}
}

/* H(login transcript) of device at req's time and nonce: what the device
 * signs to log in here.  0, ERR_ALLOC or ERR_CRYPTO. */
static int
login_digest(struct dir_api *api, const char *device,
    const struct dir_login_req *req, uint8_t out[32])
{
	struct buf *b;
	int r;

	if ((b = buf_new(1024)) == NULL)
		return ERR_ALLOC;
	r = tr_login(b, dir_key_id(api->key), device, req->time, req->nonce,
	    req->nonce_len);
	return tr_hash_free(b, r, out);
}

/*
 * After a verified login of device (of dev's account): a new session,
 * stored by the hash of its token, and the 200 answer with the token.
 * The token is wiped here on every path.
 */
static int
session_open(struct dir_api *api, struct dir_request *rq,
    const char *device, const struct dir_device_info *dev, uint64_t now,
    struct err_ctx *e)
{
	char token[DIR_TOKEN_B64_LEN + 1];
	uint8_t th[32];
	int r;

	memset(token, 0, sizeof(token));
	memset(th, 0, sizeof(th));
	maybe_purge(api, now);
	if ((r = dir_token_new(token, th, e)) != 0 ||
	    (r = api->store->ops->session_put(api->store, th, device,
	    dev->account, now + DIR_SESSION_TTL_S, api->cfg.max_sessions,
	    e)) != 0)
		goto out;
	/* The device's oldest sessions may have ended to make room. */
	dir_cache_device_changed(api->cache, device);
	dir_reply_json(rq, MHD_HTTP_OK, json_pack("{s:s,s:I,s:s,s:s}",
	    "token", token, "expires", (json_int_t)(now + DIR_SESSION_TTL_S),
	    "account", dev->account, "device", device));
	r = 0;
 out:
	crypto_wipe(token, sizeof(token));
	crypto_wipe(th, sizeof(th));
	return r;
}

/*
 * POST /v1/session: a registered active device signs the login transcript
 * over its own fresh nonce and the time; the nonce is recorded only after
 * the signature verified, so nobody can burn another device's nonces.
 */
static void
handle_session(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	struct dir_device_info dev;
	struct dir_login_req req;
	const uint8_t *body;
	const char *device = req.device;
	uint8_t digest[32];
	size_t len;
	uint64_t now = now_s();
	EVP_PKEY *pub = NULL;

	err_clear(&e);
	dir_reply_auth_scheme(rq, "Bearer");
	body = dir_request_body(rq, &len);
	if (dir_parse_login(body, len, &req, &e) != 0)
		goto fail;
	if (api->store->ops->device_get(api->store, device, &dev, &e) != 0 ||
	    !dev.active) {
		if (e.code == 0 || e.code == ERR_NOT_FOUND) {
			err_clear(&e);
			dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED,
			    "unknown_device", "device %.16s is not an active "
			    "device of any account: register it first",
			    device);
			goto out;
		}
		goto fail;
	}
	if (dir_login_time_check(req.time, now, &e) != 0) {
		dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "bad_time", "%s",
		    err_msg(&e));
		goto out;
	}
	if (login_digest(api, device, &req, digest) != 0) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (crypto_spki_import(dev.sig_pub, dev.sig_pub_len, &pub, &e) != 0)
		goto fail;
	if (crypto_ecdsa_verify(pub, digest, req.sig) != 0) {
		dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "bad_signature",
		    "the login signature does not verify under the signing "
		    "key of device %.16s (it covers \"devid-login-v1\", "
		    "this directory's id, the device id, time and nonce)",
		    device);
		goto out;
	}
	if (api->store->ops->nonce_use(api->store, device, req.nonce,
	    req.nonce_len, now + 2 * DIR_LOGIN_WINDOW_S + 1, &e) != 0) {
		if (e.code == ERR_REPLAY) {
			dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "replayed",
			    "%s", err_msg(&e));
			goto out;
		}
		goto fail;
	}
	if (session_open(api, rq, device, &dev, now, &e) != 0)
		goto fail;
	goto out;
 fail:
	dir_api_reply_err(rq, &e);
 out:
	EVP_PKEY_free(pub);
}

struct events_ctx {
	json_t *arr;
	struct err_ctx *e;
};

/* Appends a stored JSON text (one event or envelope, as written by this
 * server) to an answer being built: a comma first unless it is the
 * first item. */
struct text_ctx {
	struct buf *b;
	size_t n;
	struct err_ctx *e;
};

static int
text_append(struct text_ctx *tc, const char *json)
{
	size_t len = strlen(json);

	/* The store holds what this server wrote; a row that is not even
	 * an object is damage, not something to pass on. */
	if (len < 2 || json[0] != '{' || json[len - 1] != '}')
		return err_set(tc->e, ERR_INTERNAL, "a stored JSON object is "
		    "damaged");
	if ((tc->n > 0 && buf_put(tc->b, ",", 1) != 0) ||
	    buf_put(tc->b, json, len) != 0)
		return err_set(tc->e, ERR_ALLOC, "out of memory");
	tc->n++;
	return 0;
}

static int
add_event_text(void *arg, uint64_t seq, const char *type, const char *json)
{
	return text_append(arg, json);
}

/* Hands the built answer to the server as it stands. */
static void
reply_text(struct dir_request *rq, struct text_ctx *tc, struct err_ctx *e)
{
	uint8_t *p = NULL;
	size_t len = 0;

	if (buf_steal(tc->b, &p, &len) != 0) {
		err_set(e, ERR_ALLOC, "out of memory");
		dir_api_reply_err(rq, e);
		return;
	}
	dir_reply_text(rq, MHD_HTTP_OK, (char *)p, len);
}

/* The tail of account's log, from the cache or the store. */
static int
log_tail_cached(struct dir_api *api, const char *account, uint64_t *seq,
    uint8_t hash[32], struct err_ctx *e)
{
	uint64_t epoch, now = wall_ms();
	int r;

	if (dir_cache_tail_get(api->cache, account, now, seq, hash) == 0)
		return 0;
	epoch = dir_cache_log_epoch(api->cache);
	if ((r = api->store->ops->log_tail(api->store, account, seq, hash,
	    e)) == 0)
		dir_cache_tail_put(api->cache, account, *seq, hash, epoch, now);
	return r;
}

/*
 * GET /v1/accounts/{a}/log: events since N up to the current tail (at most
 * ACCTLOG_MAX_EVENTS) and a fresh head of that tail, read tail first so
 * the answer is one consistent prefix of the append-only log.  With wait,
 * an empty answer waits for "log:{a}".  The answer is put together from
 * the stored event texts and the head's text, without parsing them again:
 * this is the directory's most frequent request.
 */
static void
handle_log(struct dir_api *api, struct dir_request *rq, const char *account)
{
	struct err_ctx e;
	struct dir_session_info s;
	struct dir_head_cache head;
	struct text_ctx tc;
	uint64_t since, wait, seq, with_tlog;
	uint8_t hash[32];
	char key[KEY_MAX + 1];
	size_t start;
	uint64_t now;
	json_t *tlog = NULL;
	char *tlog_text = NULL;
	static const char open_events[] = "{\"events\":[";
	static const char open_head[] = "],\"head\":";
	static const char open_tlog[] = ",\"tlog\":";

	err_clear(&e);
	memset(&tc, 0, sizeof(tc));
	tc.e = &e;
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	/* Only now: whether an account exists is for sessions to see.  The
	 * log's tail below answers that (ERR_NOT_FOUND). */
	if (account_syntax(rq, account) != 0)
		return;
	if (query_u64(rq, "since", 0, 0, INT64_MAX, &since, &e) != 0 ||
	    query_u64(rq, "wait", 0, 0, DIR_WAIT_MAX_S, &wait, &e) != 0 ||
	    query_u64(rq, "tlog", 0, 0, 1, &with_tlog, &e) != 0)
		goto fail;
	if (wait > 0) {
		snprintf(key, sizeof(key), "log:%.128s", account);
		if (dir_request_watch(rq, key) != 0) {
			err_set(&e, ERR_ALLOC, "out of memory");
			goto fail;
		}
	}
	if (log_tail_cached(api, account, &seq, hash, &e) != 0)
		goto fail;
	if (seq <= since && wait > 0 && !dir_request_expired(rq)) {
		dir_request_wait(rq, (unsigned int)wait);
		return;
	}
	if ((tc.b = buf_new(DIR_ANSWER_MAX)) == NULL ||
	    buf_put(tc.b, open_events, sizeof(open_events) - 1) != 0) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	/* Events since < seq <= tail never change: a page read once is
	 * kept. */
	start = buf_len(tc.b);
	now = wall_ms();
	if (since < seq && dir_cache_page_get(api->cache, account, since, seq,
	    now, tc.b) != 0) {
		if (api->store->ops->log_events(api->store, account, since,
		    seq, ACCTLOG_MAX_EVENTS, add_event_text, &tc, &e) != 0)
			goto fail;
		dir_cache_page_put(api->cache, account, since, seq,
		    buf_ptr(tc.b) + start, buf_len(tc.b) - start, now);
	}
	if (dir_account_head(api, account, seq, hash, now_s(), &head,
	    &e) != 0)
		goto fail;
	if (buf_put(tc.b, open_head, sizeof(open_head) - 1) != 0 ||
	    buf_put(tc.b, head.text, head.text_len) != 0) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	/* With tlog=1: the proof that the account's latest published event
	 * is in the global log (docs/protocol.md section 7.5). */
	if (with_tlog && dir_api_tlog_member(api, account, &tlog, &e) != 0)
		goto fail;
	if (tlog != NULL && ((tlog_text = json_dumps(tlog,
	    JSON_COMPACT)) == NULL ||
	    buf_put(tc.b, open_tlog, sizeof(open_tlog) - 1) != 0 ||
	    buf_put(tc.b, tlog_text, strlen(tlog_text)) != 0)) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (buf_put(tc.b, "}", 1) != 0) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	reply_text(rq, &tc, &e);
	buf_free(tc.b);
	json_decref(tlog);
	free(tlog_text);
	return;
 fail:
	buf_free(tc.b);
	json_decref(tlog);
	free(tlog_text);
	dir_api_reply_err(rq, &e);
}

static int
add_device_json(void *arg, const char *device, const char *record_json)
{
	struct events_ctx *ec = arg;
	json_t *v;

	if ((v = json_loads(record_json, 0, NULL)) == NULL)
		return err_set(ec->e, ERR_INTERNAL, "stored record of %.16s "
		    "is not JSON", device);
	if (json_array_append_new(ec->arr, v) != 0)
		return err_set(ec->e, ERR_ALLOC, "out of memory");
	return 0;
}

/* GET /v1/accounts/{a}/devices: active records and a head of the same
 * snapshot. */
static void
handle_devices(struct dir_api *api, struct dir_request *rq,
    const char *account)
{
	struct err_ctx e;
	struct dir_session_info s;
	struct events_ctx ec;
	uint64_t seq;
	uint8_t hash[32];
	json_t *hj = NULL;

	err_clear(&e);
	ec.e = &e;
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	/* Only now: whether an account exists is for sessions to see. */
	if (account_segment(api, rq, account) != 0)
		return;
	if ((ec.arr = json_array()) == NULL) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (api->store->ops->devices_active(api->store, account, &seq, hash,
	    add_device_json, &ec, &e) != 0 ||
	    dir_account_head_json(api, account, seq, hash, now_s(), &hj,
	    &e) != 0)
		goto fail;
	dir_reply_json(rq, MHD_HTTP_OK, json_pack("{s:o,s:o}", "devices",
	    ec.arr, "head", hj));
	return;
 fail:
	json_decref(ec.arr);
	dir_api_reply_err(rq, &e);
}

/*
 * DELETE /v1/accounts/{a}/devices/{d}: the session's device must belong to
 * {a}; the revocation time must be within the window and not before the
 * device's latest addition; the signature must be by an active device
 * (acctlog_state_apply checks it).
 */
static void
handle_revoke(struct dir_api *api, struct dir_request *rq,
    const char *account, const char *device)
{
	struct err_ctx e;
	struct dir_session_info s;
	struct dir_device_info dev;
	struct dir_revoke_req req;
	struct acctlog_event ev;
	json_t *evj = NULL, *hj = NULL;
	char short_id[DEVREC_SHORT_ID_LEN + 1];
	const uint8_t *body;
	size_t len;
	int r = 0, attempt;

	err_clear(&e);
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	/* Only now: whether an account exists is for sessions to see. */
	if (account_segment(api, rq, account) != 0)
		return;
	if (strcmp(s.account, account) != 0) {
		err_set(&e, ERR_DENIED, "only a device of '%s' may revoke its "
		    "devices; this session belongs to '%s'", account,
		    s.account);
		goto fail;
	}
	if (!devrec_id_valid(device)) {
		err_set(&e, ERR_FORMAT, "the path does not end in a device id "
		    "(64 lowercase hex digits)");
		goto fail;
	}
	body = dir_request_body(rq, &len);
	if (dir_parse_revoke(body, len, &req, &e) != 0)
		goto fail;
	if (dir_login_time_check(req.time, now_s(), &e) != 0)
		goto fail;
	if (api->store->ops->device_get(api->store, device, &dev, &e) != 0)
		goto fail;
	if (!dev.active || strcmp(dev.account, account) != 0) {
		err_set(&e, ERR_NOT_FOUND, "device %.16s is not an active "
		    "device of '%s'", device, account);
		goto fail;
	}
	if (req.time < dev.added_time) {
		err_set(&e, ERR_STALE, "the revocation is signed with time "
		    "%" PRIu64 ", before the device was added (%" PRIu64 "): "
		    "sign it again with the current time", req.time,
		    dev.added_time);
		goto fail;
	}
	for (attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
		err_clear(&e);
		if ((r = dir_account_append_revoke(api, account, device,
		    req.time, req.sig, &ev, &evj, &e)) != ERR_CHAIN)
			break;
	}
	if (r != 0)
		goto fail;
	changed(api, DIR_CHANGE_LOG, account);
	changed(api, DIR_CHANGE_DEVICE, device);
	if (dir_account_head_json(api, account, ev.seq, ev.hash, now_s(), &hj,
	    &e) != 0)
		goto fail;
	devrec_short_id(device, short_id);
	dir_log("device %s of '%s' revoked as event %" PRIu64, short_id,
	    account, ev.seq);
	dir_reply_json(rq, MHD_HTTP_OK, json_pack("{s:o,s:o}", "head", hj,
	    "event", evj));
	evj = NULL; /* transferred */
	goto out;
 fail:
	dir_api_reply_err(rq, &e);
 out:
	json_decref(evj);
}

/* The active devices of every account in "to", for checking recipients. */
struct active_set {
	char (*ids)[DEVREC_ID_HEX_LEN + 1];
	size_t n, cap;
	struct err_ctx *e;
};

static int
collect_device(void *arg, const char *device, const char *record_json)
{
	struct active_set *as = arg;
	void *p;

	if (as->n == as->cap) {
		as->cap = as->cap == 0 ? 64 : as->cap * 2;
		if ((p = realloc(as->ids, as->cap * sizeof(*as->ids))) == NULL)
			return err_set(as->e, ERR_ALLOC, "out of memory");
		as->ids = p;
	}
	snprintf(as->ids[as->n++], DEVREC_ID_HEX_LEN + 1, "%s", device);
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * The recipient devices of env as an array of env->n_recipients ids
 * borrowed from env in *out (caller frees the array), each checked to be
 * an active device of an account in env's "to".
 */
static int
recipients_check(struct dir_api *api, const struct env *env,
    const char ***out, struct err_ctx *e)
{
	struct active_set as;
	const char **devs = NULL;
	uint64_t seq;
	uint8_t hash[32];
	size_t i;
	int r = ERR_INTERNAL;

	memset(&as, 0, sizeof(as));
	as.e = e;
	for (i = 0; i < env->n_to; i++) {
		if ((r = api->store->ops->devices_active(api->store, env->to[i],
		    &seq, hash, collect_device, &as, e)) != 0) {
			if (e->code == ERR_NOT_FOUND)
				r = err_wrap(e, ERR_NOT_FOUND, "recipient "
				    "account '%s' does not exist", env->to[i]);
			goto out;
		}
	}
	if (as.n > 0)
		qsort(as.ids, as.n, sizeof(*as.ids), cmp_id);
	if ((devs = calloc(env->n_recipients, sizeof(*devs))) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	for (i = 0; i < env->n_recipients; i++) {
		if (as.n == 0 || bsearch(env->recipients[i].device, as.ids,
		    as.n, sizeof(*as.ids), cmp_id) == NULL) {
			r = err_set(e, ERR_FORMAT, "recipient %.16s is not an "
			    "active device of an account in \"to\": fetch "
			    "the logs again and re-encrypt",
			    env->recipients[i].device);
			goto out;
		}
		devs[i] = env->recipients[i].device;
	}
	*out = devs;
	devs = NULL; /* transferred */
	r = 0;
 out:
	free(devs);
	free(as.ids);
	return r;
}

/*
 * POST /v1/messages: a strictly parsed envelope from the session's own
 * device, every recipient an active device of an account in "to"; stored
 * once and queued per recipient in one transaction, which wakes each
 * recipient's "inbox:{device}" waiters.
 */
/* The blob hashes of a blobs=H1,H2,... query argument. */
struct blob_list {
	char hash[BLOBS_PER_MESSAGE][DIR_BLOB_HASH_HEX + 1];
	const char *ptr[BLOBS_PER_MESSAGE];
	size_t n;
};

/*
 * Parses v (NULL: no blobs, n = 0): 1 to BLOBS_PER_MESSAGE distinct
 * 64-hex hashes separated by commas.  0 or ERR_FORMAT.
 */
static int
blob_list_parse(const char *v, struct blob_list *bl, struct err_ctx *e)
{
	const char *p = v;
	size_t len, i;

	memset(bl, 0, sizeof(*bl));
	if (v == NULL)
		return 0;
	for (;;) {
		len = strcspn(p, ",");
		if (bl->n == BLOBS_PER_MESSAGE)
			return err_set(e, ERR_FORMAT, "more than %d blobs: "
			    "an envelope names at most %d",
			    BLOBS_PER_MESSAGE, BLOBS_PER_MESSAGE);
		if (len != DIR_BLOB_HASH_HEX)
			return err_set(e, ERR_FORMAT, "blobs= holds %s: give "
			    "1 to %d hashes of 64 lowercase hex digits, "
			    "separated by commas", len == 0 ? "an empty "
			    "entry" : "an entry that is not a hash",
			    BLOBS_PER_MESSAGE);
		memcpy(bl->hash[bl->n], p, len);
		bl->hash[bl->n][len] = '\0';
		if (!dir_blob_hash_valid(bl->hash[bl->n]))
			return err_set(e, ERR_FORMAT, "blobs= holds an entry "
			    "that is not 64 lowercase hex digits");
		for (i = 0; i < bl->n; i++)
			if (strcmp(bl->hash[i], bl->hash[bl->n]) == 0)
				return err_set(e, ERR_FORMAT, "blobs= names "
				    "blob %.16s twice", bl->hash[i]);
		bl->ptr[bl->n] = bl->hash[bl->n];
		bl->n++;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

static void
handle_message(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	struct dir_session_info s;
	struct env_limits lim;
	struct dir_queue_limits qlim;
	struct env *env = NULL;
	struct blob_list bl;
	const uint8_t *body;
	const char **devs = NULL;
	char *text = NULL, *id_b64 = NULL;
	size_t len, i;
	int r;

	err_clear(&e);
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	memset(&bl, 0, sizeof(bl));
	if (dir_request_query(rq, "blobs") != NULL && api->blobs == NULL) {
		err_set(&e, ERR_UNSUPPORTED, "this directory keeps no blobs "
		    "(GET /v1/info has no limits.max_blob): send the "
		    "envelope without blobs=");
		goto fail;
	}
	if (blob_list_parse(dir_request_query(rq, "blobs"), &bl, &e) != 0)
		goto fail;
	body = dir_request_body(rq, &len);
	lim.max_bytes = api->cfg.max_body;
	lim.max_recipients = api->cfg.max_recipients;
	if (env_parse(body, len, &lim, &env, &e) != 0)
		goto fail;
	if (strcmp(env->sender_account, s.account) != 0 ||
	    strcmp(env->sender_device, s.device) != 0) {
		err_set(&e, ERR_DENIED, "the envelope's sender must be the "
		    "device of this session (%.16s of '%s')", s.device,
		    s.account);
		goto fail;
	}
	if (recipients_check(api, env, &devs, &e) != 0)
		goto fail;
	/* Stored as posted: the signature covers fields, not bytes, and
	 * recipients get exactly what the sender made. */
	if ((text = malloc(len + 1)) == NULL) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	memcpy(text, body, len);
	text[len] = '\0';
	qlim.max_queue = api->cfg.max_queue;
	qlim.max_per_sender = api->cfg.max_queue_per_sender;
	qlim.quota_bytes = api->cfg.account_quota;
	if ((r = api->store->ops->message_put(api->store, s.device, env->id,
	    sizeof(env->id), text, devs, env->n_recipients,
	    bl.n > 0 ? bl.ptr : NULL, bl.n, &qlim, &e)) != 0) {
		if (r == ERR_DENIED && bl.n > 0) {
			dir_reply_error(rq, MHD_HTTP_FORBIDDEN, "blob_refused",
			    "%s: a message names only blobs its sender's "
			    "device uploaded and the directory still keeps; "
			    "upload it again", err_msg(&e));
			goto out;
		}
		goto fail;
	}
	for (i = 0; i < env->n_recipients; i++)
		changed(api, DIR_CHANGE_INBOX, devs[i]);
	if (b64url_encode(env->id, sizeof(env->id), &id_b64) != 0) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	dir_reply_json(rq, MHD_HTTP_CREATED, json_pack("{s:s,s:I}", "id",
	    id_b64, "queued", (json_int_t)env->n_recipients));
	goto out;
 fail:
	/* The store's refusals: the sender's share of a recipient's queue
	 * and an account's quota pass with time (429 "sender_share" and
	 * "quota_exceeded" with Retry-After, from dir_status_for()); a full
	 * queue waits for its device (503). */
	if (e.code == ERR_TOO_LARGE && env != NULL)
		dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "queue_full", "%s", err_msg(&e));
	else
		dir_api_reply_err(rq, &e);
 out:
	free(id_b64);
	free(text);
	free(devs);
	env_free(env);
}

struct inbox_ctx {
	json_t *arr;
	struct err_ctx *e;
};

static int
add_inbox_item(void *arg, uint64_t seq, const char *envelope)
{
	struct inbox_ctx *ic = arg;
	json_t *v, *item;

	if ((v = json_loads(envelope, 0, NULL)) == NULL)
		return err_set(ic->e, ERR_INTERNAL, "stored envelope %" PRIu64
		    " is not JSON", seq);
	if ((item = json_pack("{s:I,s:o}", "seq", (json_int_t)seq,
	    "envelope", v)) == NULL ||
	    json_array_append_new(ic->arr, item) != 0)
		return err_set(ic->e, ERR_ALLOC, "out of memory");
	return 0;
}

/* GET /v1/inbox: the session device's queue, oldest first; with wait, an
 * empty queue waits for "inbox:{device}". */
static void
handle_inbox(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	struct dir_session_info s;
	struct inbox_ctx ic;
	uint64_t wait, limit;
	char key[KEY_MAX + 1];

	err_clear(&e);
	ic.arr = NULL;
	ic.e = &e;
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	if (query_u64(rq, "wait", 0, 0, DIR_WAIT_MAX_S, &wait, &e) != 0 ||
	    query_u64(rq, "limit", DIR_INBOX_LIMIT_DEFAULT, 1,
	    DIR_INBOX_LIMIT_MAX, &limit, &e) != 0)
		goto fail;
	if (wait > 0) {
		snprintf(key, sizeof(key), "inbox:%.64s", s.device);
		if (dir_request_watch(rq, key) != 0) {
			err_set(&e, ERR_ALLOC, "out of memory");
			goto fail;
		}
	}
	if ((ic.arr = json_array()) == NULL) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (api->store->ops->inbox_get(api->store, s.device, 0,
	    (unsigned int)limit, DIR_INBOX_BYTES_MAX, add_inbox_item, &ic,
	    &e) != 0)
		goto fail;
	if (json_array_size(ic.arr) == 0 && wait > 0 &&
	    !dir_request_expired(rq)) {
		json_decref(ic.arr);
		dir_request_wait(rq, (unsigned int)wait);
		return;
	}
	dir_reply_json(rq, MHD_HTTP_OK, json_pack("{s:o}", "messages",
	    ic.arr));
	return;
 fail:
	json_decref(ic.arr);
	dir_api_reply_err(rq, &e);
}

/* POST /v1/inbox/ack: removes the session device's entries up to seq. */
static void
handle_ack(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	struct dir_session_info s;
	const uint8_t *body;
	size_t len;
	uint64_t upto, removed = 0;

	err_clear(&e);
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	body = dir_request_body(rq, &len);
	if (dir_parse_ack(body, len, &upto, &e) != 0 ||
	    api->store->ops->inbox_ack(api->store, s.device, upto, &removed,
	    &e) != 0) {
		dir_api_reply_err(rq, &e);
		return;
	}
	dir_reply_json(rq, MHD_HTTP_OK, json_pack("{s:I}", "removed",
	    (json_int_t)removed));
}

/* --- routing --- */

static int
method_is(struct dir_request *rq, const char *m)
{
	return strcmp(dir_request_method(rq), m) == 0;
}

static void
wrong_method(struct dir_request *rq, const char *allowed)
{
	char method[16], path[256];

	dir_log_sanitize(dir_request_method(rq), method, sizeof(method));
	dir_log_sanitize(dir_request_path(rq), path, sizeof(path));
	dir_reply_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_method",
	    "%s %s is not an endpoint: this path takes %s", method, path,
	    allowed);
}

/* An account path segment of valid syntax; else answers 400. */
static int
account_syntax(struct dir_request *rq, const char *account)
{
	struct err_ctx e;

	err_clear(&e);
	if (devrec_account_check(account, &e) != 0) {
		dir_api_reply_err(rq, &e);
		return -1;
	}
	return 0;
}

/* An account path segment: valid syntax (400) and existing (404). */
static int
account_segment(struct dir_api *api, struct dir_request *rq,
    const char *account)
{
	struct err_ctx e;

	err_clear(&e);
	if (devrec_account_check(account, &e) != 0 ||
	    api->store->ops->account_get(api->store, account, NULL, NULL,
	    &e) != 0) {
		dir_api_reply_err(rq, &e);
		return -1;
	}
	return 0;
}

/* 1 when the request uses method m; else answers 405 and returns 0. */
static int
want(struct dir_request *rq, const char *m)
{
	if (method_is(rq, m))
		return 1;
	wrong_method(rq, m);
	return 0;
}

/* --- blobs (docs/protocol.md section 8) --- */

/* An upload under way: the request state of POST /v1/blobs. */
struct blob_post {
	struct dir_blob_upload *u;
	struct dir_session_info s;
};

static void
blob_post_free(void *arg)
{
	struct blob_post *bp = arg;

	if (bp == NULL)
		return;
	/* Unless finished, this removes the partial file: a connection
	 * cut early leaves nothing. */
	dir_blob_upload_free(bp->u);
	free(bp);
}

static int
blob_sink(void *arg, const uint8_t *p, size_t len)
{
	struct blob_post *bp = arg;

	return dir_blob_upload_write(bp->u, p, len);
}

/* The decimal Content-Length of rq, strictly; -1 when absent or not a
 * number. */
static int
content_length(struct dir_request *rq, uint64_t *out)
{
	const char *cl = dir_request_header(rq,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (cl == NULL || *cl < '0' || *cl > '9')
		return -1;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

/*
 * POST /v1/blobs from its headers: the refusals that need no body, then
 * the upload's file and the stream into it.  0 when the body streams,
 * -1 when answered.
 */
static int
blob_upload_start(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	struct blob_post *bp = NULL;
	uint64_t length = 0, usage = 0;

	err_clear(&e);
	if ((bp = calloc(1, sizeof(*bp))) == NULL) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (bearer(api, rq, &bp->s, &e) != 0) {
		reply_auth_err(rq, &e);
		goto out;
	}
	if (dir_request_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
	    NULL || content_length(rq, &length) != 0) {
		dir_reply_error(rq, MHD_HTTP_LENGTH_REQUIRED,
		    "length_required", "a blob is uploaded with its "
		    "Content-Length and without chunked encoding");
		goto out;
	}
	if (length > api->cfg.blob_max) {
		dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "the blob of %llu bytes is larger than the %llu bytes "
		    "this directory keeps (limits.max_blob)",
		    (unsigned long long)length,
		    (unsigned long long)api->cfg.blob_max);
		goto out;
	}
	if (length < BLOB_MIN_LEN) {
		dir_reply_error(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "a body of %llu bytes is not a blob: one is at least "
		    "%d bytes (docs/protocol.md section 8.1)",
		    (unsigned long long)length, BLOB_MIN_LEN);
		goto out;
	}
	if (api->store->ops->blob_usage == NULL) {
		err_set(&e, ERR_UNSUPPORTED, "the %s store keeps no blobs",
		    api->store->ops->name);
		goto fail;
	}
	if (api->store->ops->blob_usage(api->store, bp->s.account, &usage,
	    &e) != 0)
		goto fail;
	if (usage > api->cfg.blob_quota ||
	    length > api->cfg.blob_quota - usage) {
		dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "blob_quota",
		    "the blobs kept for the devices of '%s' take %llu of "
		    "its %llu bytes (limits.blob_quota): %llu more do not "
		    "fit; a blob is freed within a minute of its last "
		    "recipient fetching it, or when it expires",
		    bp->s.account, (unsigned long long)usage,
		    (unsigned long long)api->cfg.blob_quota,
		    (unsigned long long)length);
		goto out;
	}
	if (dir_blob_upload_begin(api->blobs, length, &bp->u, &e) != 0)
		goto fail;
	dir_request_set_state(rq, bp, blob_post_free);
	dir_request_stream(rq, length, blob_sink, bp);
	return 0;
 fail:
	dir_api_reply_err(rq, &e);
 out:
	blob_post_free(bp);
	return -1;
}

int
dir_api_headers(void *arg, struct dir_request *rq)
{
	struct dir_api *api = arg;
	struct dir_route route;

	if (api->blobs == NULL || !method_is(rq, "POST") ||
	    dir_parse_route(dir_request_path(rq), &route) != DIR_EP_BLOBS)
		return 0;
	return blob_upload_start(api, rq);
}

/* The row of an upload, stored while its file is linked (the commit of
 * dir_blob_upload_finish()). */
struct blob_row {
	struct dir_api *api;
	const struct dir_session_info *s;
	uint64_t size;
	uint64_t now;
	uint64_t expires;                /* in: a new row's; out: the row's */
	int existed;
};

static int
blob_row_put(void *arg, const char *hash, struct err_ctx *e)
{
	struct blob_row *br = arg;
	struct dir_store *st = br->api->store;

	return st->ops->blob_put(st, hash, br->s->device, br->s->account,
	    br->size, br->now, &br->expires, br->api->cfg.blob_quota,
	    &br->existed, e);
}

/* POST /v1/blobs once the body ended: the file under its hash name,
 * then the row. */
static void
handle_blob_post(struct dir_api *api, struct dir_request *rq)
{
	struct blob_post *bp = dir_request_state(rq);
	struct blob_row br;
	const struct err_ctx *we;
	struct err_ctx e;
	char hash[DIR_BLOB_HASH_HEX + 1];
	int complete = 0;

	err_clear(&e);
	if (bp == NULL || bp->u == NULL) {
		/* Not streamed: the server lacks dir_api_headers. */
		dir_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		    "this directory is not set up to receive blobs");
		return;
	}
	(void)dir_request_stream_received(rq, &complete);
	if (dir_blob_upload_error(bp->u, &we) != 0) {
		if (we->code == ERR_TOO_LARGE)
			dir_reply_error(rq, MHD_HTTP_BAD_REQUEST,
			    "bad_request", "%s", err_msg(we));
		else
			dir_api_reply_err(rq, we);
		return;
	}
	if (!complete) {
		dir_reply_error(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "the body did not arrive whole: nothing was kept");
		return;
	}
	memset(&br, 0, sizeof(br));
	br.api = api;
	br.s = &bp->s;
	br.size = dir_blob_upload_size(bp->u);
	br.now = now_s();
	br.expires = br.now + (uint64_t)api->cfg.blob_days * 86400;
	if (dir_blob_upload_finish(bp->u, hash, blob_row_put, &br, NULL,
	    &e) != 0) {
		if (e.code == ERR_QUOTA) {
			dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE,
			    "blob_quota", "%s (limits.blob_quota is %llu "
			    "bytes)", err_msg(&e),
			    (unsigned long long)api->cfg.blob_quota);
			return;
		}
		dir_api_reply_err(rq, &e);
		return;
	}
	/* A blob kept already answers with its own time. */
	dir_reply_json(rq, br.existed ? MHD_HTTP_OK : MHD_HTTP_CREATED,
	    json_pack("{s:s,s:I,s:I}", "hash", hash, "size",
	    (json_int_t)br.size, "expires", (json_int_t)br.expires));
}

/* The start N of a "bytes=N-" Range value; -1 for every other form
 * (which is then ignored, as RFC 9110 section 14.2 allows). */
static int
range_start(const char *v, uint64_t *start)
{
	unsigned long long n;
	char *end;

	if (v == NULL || strncmp(v, "bytes=", 6) != 0 ||
	    v[6] < '0' || v[6] > '9')
		return -1;
	errno = 0;
	n = strtoull(v + 6, &end, 10);
	if (errno != 0 || end[0] != '-' || end[1] != '\0')
		return -1;
	*start = n;
	return 0;
}

/* GET /v1/blobs/{hash}: the file, to a device a queued envelope naming
 * the blob addresses. */
static void
handle_blob_get(struct dir_api *api, struct dir_request *rq,
    const char *hash)
{
	struct dir_session_info s;
	struct err_ctx e;
	uint64_t size = 0, expires = 0, start = 0;
	int fd = -1, r;

	err_clear(&e);
	if (bearer(api, rq, &s, &e) != 0) {
		reply_auth_err(rq, &e);
		return;
	}
	if (!dir_blob_hash_valid(hash)) {
		dir_reply_error(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "GET /v1/blobs/{hash} takes the blob's hash: 64 "
		    "lowercase hex digits");
		return;
	}
	r = api->store->ops->blob_get(api->store, hash, s.device, &size,
	    &expires, &e);
	if (r == 0)
		r = dir_blob_open(api->blobs, hash, &fd, &size, &e);
	if (r == ERR_DENIED) {
		dir_reply_error(rq, MHD_HTTP_FORBIDDEN, "not_addressed",
		    "no message queued for this device names blob %.16s",
		    hash);
		return;
	}
	if (r == ERR_GONE || r == ERR_NOT_FOUND) {
		dir_reply_error(rq, MHD_HTTP_GONE, "expired", "blob %.16s "
		    "was removed (kept at most %u days): ask its sender to "
		    "send it again", hash, api->cfg.blob_days);
		return;
	}
	if (r != 0) {
		dir_api_reply_err(rq, &e);
		return;
	}
	if (range_start(dir_request_header(rq, "Range"), &start) != 0) {
		dir_reply_file(rq, MHD_HTTP_OK, fd, 0, size, size);
		return;
	}
	if (start >= size) {
		close(fd);
		dir_reply_range_error(rq, size);
		return;
	}
	dir_reply_file(rq, MHD_HTTP_PARTIAL_CONTENT, fd, start, size - start,
	    size);
}

/* The blob endpoints answer 404 on a directory that keeps no blobs. */
static int
blobs_served(struct dir_api *api, struct dir_request *rq)
{
	if (api->blobs != NULL)
		return 1;
	dir_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "this directory "
	    "keeps no blobs (GET /v1/info has no limits.max_blob)");
	return 0;
}

int
dir_api_preauth(void *arg, struct dir_request *rq)
{
	struct dir_api *api = arg;
	struct dir_session_info s;
	struct err_ctx e;

	err_clear(&e);
	if (bearer(api, rq, &s, &e) != 0) {
		if (e.code == ERR_DENIED)
			dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED,
			    "unauthorized", "a body of more than %zu bytes is "
			    "read only with a valid session: %s",
			    DIR_BODY_PREAUTH_MAX, err_msg(&e));
		else
			dir_api_reply_err(rq, &e);
		return -1;
	}
	return 0;
}

void
dir_api_handle(void *arg, struct dir_request *rq)
{
	struct dir_api *api = arg;
	struct dir_route route;
	char method[16], path[256];

	maybe_purge(api, now_s());
	switch (dir_parse_route(dir_request_path(rq), &route)) {
	case DIR_EP_BLOBS:
		if (blobs_served(api, rq) && want(rq, "POST"))
			handle_blob_post(api, rq);
		return;
	case DIR_EP_BLOB:
		if (blobs_served(api, rq) && want(rq, "GET"))
			handle_blob_get(api, rq, route.blob);
		return;
	case DIR_EP_INFO:
		if (want(rq, "GET"))
			handle_info(api, rq);
		return;
	case DIR_EP_HEALTH:
		if (want(rq, "GET"))
			handle_health(api, rq);
		return;
	case DIR_EP_ACCOUNTS:
		if (want(rq, "POST"))
			handle_account_create(api, rq);
		return;
	case DIR_EP_SESSION:
		if (want(rq, "POST"))
			handle_session(api, rq);
		return;
	case DIR_EP_MESSAGES:
		if (want(rq, "POST"))
			handle_message(api, rq);
		return;
	case DIR_EP_INBOX:
		if (want(rq, "GET"))
			handle_inbox(api, rq);
		return;
	case DIR_EP_INBOX_ACK:
		if (want(rq, "POST"))
			handle_ack(api, rq);
		return;
	/* Credentials are checked before the account is looked up, so
	 * that nobody learns which accounts exist without them. */
	case DIR_EP_LOG:
		if (want(rq, "GET"))
			handle_log(api, rq, route.account);
		return;
	case DIR_EP_DEVICES:
		if (method_is(rq, "POST")) {
			if (account_syntax(rq, route.account) == 0)
				handle_device_add(api, rq, route.account);
		} else if (method_is(rq, "GET")) {
			handle_devices(api, rq, route.account);
		} else {
			wrong_method(rq, "GET or POST");
		}
		return;
	case DIR_EP_DEVICE:
		if (want(rq, "DELETE"))
			handle_revoke(api, rq, route.account, route.device);
		return;
	case DIR_EP_TLOG_CHECKPOINT:
	case DIR_EP_TLOG_INCLUSION:
	case DIR_EP_TLOG_CONSISTENCY:
	case DIR_EP_TLOG_LEAVES:
		if (want(rq, "GET"))
			dir_api_tlog_handle(api, rq, route.endpoint);
		return;
	case DIR_EP_NONE:
		break;
	}
	dir_log_sanitize(dir_request_method(rq), method, sizeof(method));
	dir_log_sanitize(dir_request_path(rq), path, sizeof(path));
	dir_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "no endpoint "
	    "%s %s: see docs/directory.md for the API", method, path);
}
