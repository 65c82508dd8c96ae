/*
 * dir-api.h - the endpoints of PROTOCOL.md section 5.
 *
 * dir_api_handle() is the dir_handler_fn the server calls for every
 * request.  It checks everything on input -- account and label syntax,
 * device id = H(sig_pub), binding and endorsement signatures, the event
 * chain (through common/acctlog), login and revocation signatures, the
 * envelope structure and sizes (through common/envelope) -- before the
 * store sees anything, so bad input never changes stored state.  Every
 * refusal is the JSON error of section 5 with a sentence a client author
 * can act on.  The exact request and response shapes are in
 * docs/directory.md.
 */
#ifndef DEVID_DIR_API_H
#define DEVID_DIR_API_H

#include <pthread.h>
#include <stdint.h>

#include "dir-key.h"
#include "dir-parse.h"
#include "dir-server.h"
#include "dir-store.h"

#define DIR_MAX_DEVICES_DEFAULT 100
#define DIR_MAX_RECIPIENTS_DEFAULT 1024
#define DIR_MAX_QUEUE_DEFAULT 10000
#define DIR_MAX_QUEUE_PER_SENDER_DEFAULT 1000
#define DIR_ACCOUNT_QUOTA_DEFAULT ((uint64_t)256 * 1024 * 1024)
#define DIR_MAX_SESSIONS_DEFAULT 16
#define DIR_INBOX_LIMIT_DEFAULT 100
#define DIR_INBOX_LIMIT_MAX 1000
#define DIR_INBOX_BYTES_MAX ((size_t)4 * 1024 * 1024)
/* The largest answer built as text (a log page of 1024 events). */
#define DIR_ANSWER_MAX ((size_t)16 * 1024 * 1024)

struct dir_api_config {
	int open_signup;             /* POST /v1/accounts allowed */
	unsigned int max_devices;    /* active devices per account */
	unsigned int max_recipients; /* recipients per envelope */
	unsigned int max_queue;      /* queued messages per device */
	unsigned int max_queue_per_sender; /* of those, from one sender */
	uint64_t account_quota;      /* bytes queued for an account's devices */
	unsigned int max_sessions;   /* live sessions per device */
	unsigned int scrypt_log_n;   /* password hashing cost */
	size_t max_body;             /* request body cap (envelope size) */
	uint64_t blob_max;           /* bytes of one blob */
	uint64_t blob_quota;         /* bytes of blobs kept per account */
	unsigned int blob_days;      /* longest a blob is kept */
};

/* Fills cfg with the defaults above. */
void dir_api_config_default(struct dir_api_config *cfg);

/*
 * The endpoint layer's state.  store and key are borrowed and must outlive
 * it; srv is set once the server runs (dir_api_set_server) so that changes
 * wake long-polls.
 */
struct dir_throttle;
struct dir_tlog;
struct dir_head_cache;
struct dir_cache;
struct dir_api {
	struct dir_api_config cfg;
	struct dir_store *store;
	struct dir_key *key;
	struct dir_server *srv;
	pthread_mutex_t purge_lock;
	uint64_t last_purge;
	struct dir_throttle *throttle; /* password failures */
	char *dummy_hash;            /* verified for unknown accounts */
	pthread_mutex_t head_lock;
	struct dir_head_cache *heads; /* signed heads (dir-account.h) */
	struct dir_cache *cache;     /* sessions, log tails, event pages */
	int watching;                /* hears of other processes' changes */
	struct dir_tlog *tlog;       /* the transparency log, NULL: none
	                              * (borrowed, dir_api_set_tlog) */
	struct dir_blobs *blobs;     /* blob files, NULL: no blobs served
	                              * (borrowed, dir_api_set_blobs) */
};

/*
 * Initialises api; 0, ERR_ALLOC or ERR_INTERNAL.  It hashes a dummy
 * password once at the configured cost, so that checking a password of an
 * unknown account costs what checking a known one does.  Release with
 * dir_api_clear().
 */
int dir_api_init(struct dir_api *api, const struct dir_api_config *cfg,
    struct dir_store *store, struct dir_key *key);
void dir_api_clear(struct dir_api *api);
void dir_api_set_server(struct dir_api *api, struct dir_server *srv);

/*
 * Starts hearing of the changes other directory processes make to the
 * same database (the store's watch operation; nothing for a store
 * without one): they wake long-polls and end cached state exactly as the
 * server's own changes do, and a lost connection to them wakes every
 * long-poll and empties the caches.  Call it after dir_api_set_server();
 * call dir_api_watch_stop() before dir_server_stop() (it returns once
 * no wake-up runs or will run; not watching is fine).  0, or the store's
 * error.
 */
int dir_api_watch_start(struct dir_api *api, struct err_ctx *e);
void dir_api_watch_stop(struct dir_api *api);

/*
 * Serves blobs (docs/protocol.md section 8) from the blob directory b
 * (borrowed; NULL: none, and the blob endpoints answer 404) from now on;
 * the periodic purge then also expires blobs and deletes their files.
 * The server must have dir_api_headers as its headers function.
 */
struct dir_blobs;
void dir_api_set_blobs(struct dir_api *api, struct dir_blobs *b);

/*
 * The dir_headers_fn: POST /v1/blobs is answered from its headers alone
 * when it must be refused (401 without a session, 411 without a
 * Content-Length, 413 too_large over blob_max, 413 blob_quota), else its
 * body is streamed into a new blob file.  Every other request goes on.
 */
int dir_api_headers(void *arg, struct dir_request *rq);

/* Serves the transparency log t (borrowed; NULL: none) from now on;
 * appends tell it the tree grew. */
void dir_api_set_tlog(struct dir_api *api, struct dir_tlog *t);

/* Answers with the status and code word that fit e's code; details of
 * internal failures go to the log only. */
void dir_api_reply_err(struct dir_request *rq, const struct err_ctx *e);

/* The transparency log's endpoints (dir-api-tlog.c), ep one of the
 * DIR_EP_TLOG_* routes. */
void dir_api_tlog_handle(struct dir_api *api, struct dir_request *rq,
    enum dir_endpoint ep);

/*
 * The "tlog" member of a log read with tlog=1 for account: the latest
 * checkpoint, the account's latest event in it, its leaf index and
 * inclusion proof.  *out is NULL (and 0 returned) when there is no log,
 * no checkpoint yet, or no event of the account in it.
 */
int dir_api_tlog_member(struct dir_api *api, const char *account,
    json_t **out, struct err_ctx *e);

/* The dir_handler_fn: arg is the struct dir_api *. */
void dir_api_handle(void *arg, struct dir_request *rq);

/*
 * The dir_preauth_fn: a body larger than DIR_BODY_PREAUTH_MAX is read only
 * for a request whose bearer token names a live session (only
 * POST /v1/messages takes such bodies); otherwise it answers 401.
 */
int dir_api_preauth(void *arg, struct dir_request *rq);

/*
 * Appends an "add" event for rec (already parsed) to its account's log
 * after every check of section 3, as POST .../devices does; also used by
 * tools.  On success the new head is signed into *head (may be NULL) and
 * *event_json (may be NULL) is the event's JSON (caller json_decref).
 * Errors carry the sentence for the client in e.
 */
struct devrec;
struct acctlog_head;
int dir_api_add_device(struct dir_api *api, const struct devrec *rec,
    struct acctlog_head *head, json_t **event_json, struct err_ctx *e);

#endif /* DEVID_DIR_API_H */
