/*
 * dir-account.h - the account logs as the endpoints change and read
 * them (PROTOCOL.md section 3).
 *
 * An append rebuilds the verified state of the account from its stored
 * log (every stored event is checked again, so a damaged database is
 * noticed before it is extended), applies the new event to it with
 * acctlog_state_apply() (every rule of section 3), and asks the store to
 * append it only if the log's tail has not moved meanwhile.  ERR_CHAIN
 * from an append means another change won that race: the caller tries
 * again.  Reads hand out signed heads, reusing a recent one (below).
 */
#ifndef DEVID_DIR_ACCOUNT_H
#define DEVID_DIR_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "acctlog.h"
#include "devrec.h"
#include "errors.h"

struct dir_api;

/*
 * Log reads reuse a head signed for the same (account, seq, hash) within
 * the last second instead of signing again: its time is then at most a
 * second old, far inside any client's max_stale, and a busy account costs
 * one signature per second instead of one per read.  The cache is a table
 * of DIR_HEAD_CACHE slots in struct dir_api, a slot per account hash.
 */
#define DIR_HEAD_CACHE 256
#define DIR_HEAD_REUSE_S 1

/* A signed head and its JSON text, as log reads hand it out. */
struct dir_head_cache {
	struct acctlog_head h;
	char text[ACCTLOG_HEAD_JSON_MAX + 1];
	size_t text_len;
};

/*
 * One attempt at appending an "add" event for rec, made at time now, to
 * the log of rec's account, after the account's device limit and every
 * check of section 3.  On success *ev is the appended event and *evj its
 * JSON (caller json_decref); on failure neither is meaningful.  Errors
 * carry the sentence for the client in e; ERR_CHAIN: try again.
 */
int dir_account_append_add(struct dir_api *api, const struct devrec *rec,
    uint64_t now, struct acctlog_event *ev, json_t **evj, struct err_ctx *e);

/*
 * One attempt at appending a "revoke" event of device, signed by sig at
 * time t, to the log of account; otherwise like dir_account_append_add().
 * The revoked device's sessions end with it.
 */
int dir_account_append_revoke(struct dir_api *api, const char *account,
    const char *device, uint64_t t, const uint8_t sig[DEVREC_SIG_LEN],
    struct acctlog_event *ev, json_t **evj, struct err_ctx *e);

/*
 * Signs a fresh head of account at (seq, hash) with time now into *head
 * (zeroed first).  ERR_INVALID_ARG for an account name that is too long,
 * or the error of the directory's key.
 */
int dir_account_sign_head(struct dir_api *api, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t now,
    struct acctlog_head *head, struct err_ctx *e);

/*
 * A signed head of account at (seq, hash) and its JSON text in *out: the
 * one signed within DIR_HEAD_REUSE_S seconds before now for exactly this
 * point of the log, or a freshly signed one, which then replaces it in
 * the cache.  Safe to call from several threads at once.
 */
int dir_account_head(struct dir_api *api, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t now,
    struct dir_head_cache *out, struct err_ctx *e);

/* Like dir_account_head(), as a new JSON object in *out (caller
 * json_decref). */
int dir_account_head_json(struct dir_api *api, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t now, json_t **out,
    struct err_ctx *e);

#endif /* DEVID_DIR_ACCOUNT_H */
