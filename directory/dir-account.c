/*
 * dir-account.c - the account logs as the endpoints change and read them:
 * the verified state of an account rebuilt from its stored log, one
 * attempt at appending an add or a revoke event, and the signed heads
 * that log reads hand out (signed fresh, or reused within a second).
 * Retrying a lost race and waking long-polls are the endpoints' part
 * (dir-api.c).
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acctlog.h"
#include "devrec.h"
#include "dir-account.h"
#include "dir-api.h"
#include "dir-cache.h"
#include "dir-key.h"
#include "dir-store.h"
#include "errors.h"

/* --- signed heads --- */

int
dir_account_sign_head(struct dir_api *api, const char *account, uint64_t seq,
    const uint8_t hash[32], uint64_t now, struct acctlog_head *head,
    struct err_ctx *e)
{
	memset(head, 0, sizeof(*head));
	if (strlen(account) > ACCTLOG_ACCOUNT_MAX)
		return err_set(e, ERR_INVALID_ARG, "account name too long");
	memcpy(head->account, account, strlen(account) + 1);
	head->seq = seq;
	memcpy(head->hash, hash, 32);
	head->time = now;
	return acctlog_head_sign(head, dir_key_id(api->key), dir_key_sign,
	    api->key, e);
}

/* The head cache slot of account (FNV-1a). */
static size_t
head_slot(const char *account)
{
	uint32_t h = 2166136261u;

	for (; *account != '\0'; account++)
		h = (h ^ (uint8_t)*account) * 16777619u;
	return h % DIR_HEAD_CACHE;
}

int
dir_account_head(struct dir_api *api, const char *account, uint64_t seq,
    const uint8_t hash[32], uint64_t now, struct dir_head_cache *out,
    struct err_ctx *e)
{
	struct dir_head_cache *c;
	json_t *j = NULL;
	char *text = NULL;
	int r, hit = 0;

	c = &api->heads[head_slot(account)];
	pthread_mutex_lock(&api->head_lock);
	if (c->text_len > 0 && c->h.seq == seq && c->h.time <= now &&
	    now - c->h.time <= DIR_HEAD_REUSE_S &&
	    strcmp(c->h.account, account) == 0 &&
	    memcmp(c->h.hash, hash, 32) == 0) {
		*out = *c;
		hit = 1;
	}
	pthread_mutex_unlock(&api->head_lock);
	if (hit)
		return 0;
	memset(out, 0, sizeof(*out));
	if ((r = dir_account_sign_head(api, account, seq, hash, now, &out->h,
	    e)) != 0 ||
	    (r = acctlog_head_to_json(&out->h, &j, e)) != 0)
		goto done;
	if ((text = json_dumps(j, JSON_COMPACT)) == NULL ||
	    strlen(text) > ACCTLOG_HEAD_JSON_MAX) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto done;
	}
	out->text_len = strlen(text);
	memcpy(out->text, text, out->text_len + 1);
	pthread_mutex_lock(&api->head_lock);
	*c = *out;
	pthread_mutex_unlock(&api->head_lock);
	r = 0;
 done:
	free(text);
	json_decref(j);
	return r;
}

int
dir_account_head_json(struct dir_api *api, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t now, json_t **out,
    struct err_ctx *e)
{
	struct dir_head_cache c;
	int r;

	if ((r = dir_account_head(api, account, seq, hash, now, &c, e)) != 0)
		return r;
	return acctlog_head_to_json(&c.h, out, e);
}

/* --- the verified state of an account, rebuilt from the stored log --- */

struct load_ctx {
	struct acctlog_state *st;
	struct err_ctx *e;
};

/* Applies one stored event to the state being rebuilt. */
static int
load_event(void *arg, uint64_t seq, const char *type, const char *json)
{
	struct load_ctx *lc = arg;
	struct acctlog_event ev;
	json_t *obj;
	int r;

	if ((obj = json_loads(json, 0, NULL)) == NULL)
		return err_set(lc->e, ERR_INTERNAL, "stored event %" PRIu64
		    " of %s is not JSON", seq, lc->st->account);
	r = acctlog_event_from_json(obj, &ev, lc->e);
	json_decref(obj);
	if (r != 0)
		return err_wrap(lc->e, ERR_INTERNAL, "stored event: %s",
		    err_msg(lc->e));
	if ((r = acctlog_state_apply(lc->st, &ev, 1, lc->e)) != 0)
		return err_wrap(lc->e, ERR_INTERNAL, "stored log of %s does "
		    "not verify: %s", lc->st->account, err_msg(lc->e));
	return 0;
}

/*
 * Rebuilds the verified state of account from its stored log: every event
 * is checked again, so a damaged database is noticed before it is
 * extended.  st must be cleared by the caller either way.
 */
static int
state_load(struct dir_api *api, const char *account,
    struct acctlog_state *st, struct err_ctx *e)
{
	struct load_ctx lc = { st, e };
	uint64_t seq;
	uint8_t hash[32];
	int r;

	if ((r = acctlog_state_init(st, account, dir_key_id(api->key), e)) !=
	    0 ||
	    (r = api->store->ops->log_tail(api->store, account, &seq, hash,
	    e)) != 0)
		return r;
	return api->store->ops->log_events(api->store, account, 0, seq,
	    UINT32_MAX, load_event, &lc, e);
}

/* --- appending events --- */

/* Maps acctlog_state_apply() failures of a new event to client errors. */
static int
apply_error(struct err_ctx *e)
{
	switch (e->code) {
	case ERR_ALLOC:
	case ERR_INTERNAL:
	case ERR_CRYPTO:
		return e->code;
	case ERR_EXISTS:
		return ERR_EXISTS;
	case ERR_TOO_LARGE:
		return err_wrap(e, ERR_DENIED, "%s", err_msg(e));
	case ERR_SIGNATURE:
		return ERR_SIGNATURE;
	default:
		return err_wrap(e, ERR_FORMAT, "%s", err_msg(e));
	}
}

/*
 * Applies ev, made to follow st, to st (every check of section 3) and
 * encodes it: *obj is its JSON and *text that JSON as compact text.  The
 * caller releases both (json_decref, free) whether this fails or not.
 */
static int
event_check_encode(struct acctlog_state *st, const struct acctlog_event *ev,
    json_t **obj, char **text, struct err_ctx *e)
{
	int r;

	if (acctlog_state_apply(st, ev, 1, e) != 0)
		return apply_error(e);
	if ((r = acctlog_event_to_json(ev, obj, e)) != 0)
		return r;
	if ((*text = json_dumps(*obj, JSON_COMPACT)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	return 0;
}

/* The store's row for ev of account, whose JSON text is json. */
static void
event_row(struct dir_event_row *row, const char *account,
    const struct acctlog_event *ev, const char *json)
{
	memset(row, 0, sizeof(*row));
	row->account = account;
	row->seq = ev->seq;
	row->time = ev->time;
	row->type = acctlog_type_name(ev->type);
	memcpy(row->prev, ev->prev, 32);
	memcpy(row->hash, ev->hash, 32);
	row->json = json;
}

int
dir_account_append_add(struct dir_api *api, const struct devrec *rec,
    uint64_t now, struct acctlog_event *ev, json_t **evj, struct err_ctx *e)
{
	struct acctlog_state st;
	struct dir_event_row row;
	struct dir_device_row dev;
	json_t *obj = NULL;
	char *text = NULL, *rec_text = NULL;
	int r = ERR_INTERNAL;

	memset(&st, 0, sizeof(st));
	if ((r = state_load(api, rec->account, &st, e)) != 0)
		goto out;
	if (st.n_devices >= api->cfg.max_devices) {
		r = err_set(e, ERR_DENIED, "account '%s' already has %u active "
		    "devices, the most this directory allows: revoke one "
		    "first", rec->account, api->cfg.max_devices);
		goto out;
	}
	if ((r = acctlog_event_add(ev, st.seq + 1, now, st.hash, rec,
	    e)) != 0 ||
	    (r = event_check_encode(&st, ev, &obj, &text, e)) != 0)
		goto out;
	if ((rec_text = json_dumps(json_object_get(obj, "record"),
	    JSON_COMPACT)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	event_row(&row, rec->account, ev, text);
	/* The device as the log shows it. */
	dev.device = rec->device;
	dev.record_json = rec_text;
	dev.sig_pub = rec->sig_pub;
	dev.sig_pub_len = rec->sig_pub_len;
	r = api->store->ops->log_append_add(api->store, &row, &dev,
	    api->cfg.max_devices, e);
	/* Before anyone hears of it (and even after a failure, which might
	 * hide a commit): the cached tail is stale. */
	dir_cache_log_changed(api->cache, rec->account);
	if (r != 0)
		goto out;
	*evj = obj;
	obj = NULL; /* transferred */
	r = 0;
 out:
	acctlog_state_clear(&st);
	json_decref(obj);
	free(text);
	free(rec_text);
	return r;
}

int
dir_account_append_revoke(struct dir_api *api, const char *account,
    const char *device, uint64_t t, const uint8_t sig[DEVREC_SIG_LEN],
    struct acctlog_event *ev, json_t **evj, struct err_ctx *e)
{
	struct acctlog_state st;
	struct dir_event_row row;
	json_t *obj = NULL;
	char *text = NULL;
	int r = ERR_INTERNAL;

	memset(&st, 0, sizeof(st));
	if ((r = state_load(api, account, &st, e)) != 0 ||
	    (r = acctlog_event_revoke(ev, st.seq + 1, t, st.hash, device, sig,
	    e)) != 0 ||
	    (r = event_check_encode(&st, ev, &obj, &text, e)) != 0)
		goto out;
	event_row(&row, account, ev, text);
	r = api->store->ops->log_append_revoke(api->store, &row, device, e);
	dir_cache_log_changed(api->cache, account);
	dir_cache_device_changed(api->cache, device);
	if (r != 0)
		goto out;
	*evj = obj;
	obj = NULL; /* transferred */
	r = 0;
 out:
	acctlog_state_clear(&st);
	json_decref(obj);
	free(text);
	return r;
}
