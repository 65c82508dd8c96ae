/*
 * agent-ops.c - loading the agent's state and answering socket requests.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "agent-alert.h"
#include "agent-enrol.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-req.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "agent-watch.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "envelope.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "registry.h"
#include "timefmt.h"
#include "token.h"
#include "transcript.h"

/* --- loading --- */

/* Reads the pinned directory key (DER SPKI) and checks its id. */
static int
load_dir_key(struct agent *a, struct err_ctx *e)
{
	char *path = NULL, *der = NULL;
	size_t len = 0;
	int r;

	if ((path = path_join(a->cfg->state_dir, AGENT_DIRKEY_FILE)) ==
	    NULL)
		return ERR_ALLOC;
	r = fileio_read(path, CRYPTO_SPKI_MAX, 0, &der, &len, e);
	if (r == 0)
		r = crypto_spki_import((uint8_t *)der, len, &a->dir_pub, e);
	if (r == 0)
		r = devrec_pkey_id(a->dir_pub, a->dir_id);
	if (r != 0)
		r = err_wrap(e, r, "pinned directory key %s: %s (run "
		    "devid-agent init)", path, err_msg(e));
	else if (a->cfg->directory_key != NULL &&
	    strcmp(a->cfg->directory_key, a->dir_id) != 0)
		r = err_set(e, ERR_WRONG_KEY, "the directory key in %s (%s) is "
		    "not the configured directory_key %s", path, a->dir_id,
		    a->cfg->directory_key);
	free(path);
	free(der);
	return r;
}

/* A fresh registry with only this device, after a failed verification. */
static int
fresh_registry(struct agent *a, struct err_ctx *e)
{
	struct reg_device *d;
	int r;

	reg_clear(&a->reg);
	if ((r = reg_init(&a->reg, a->cfg->account, a->tok.device, a->dir_id,
	    e)) != 0 || (r = reg_add(&a->reg, a->tok.device, &d, e)) != 0)
		return r;
	snprintf(d->label, sizeof(d->label), "%s", a->cfg->label != NULL ?
	    a->cfg->label : "this device");
	d->state = REG_APPROVED;
	d->first_seen = d->changed = a->reg.updated = (uint64_t)time(NULL);
	return 0;
}

/*
 * Verifies the registry with the token's key (which must be known).  A
 * registry that fails is kept aside as evidence, alerted, and replaced by
 * a fresh one holding only this device: the watcher then announces every
 * other device of the log again.
 */
static int
verify_registry(struct agent *a, struct err_ctx *e)
{
	struct err_ctx local;
	char *path = NULL, *aside = NULL, msg[AGENT_ALERT_MESSAGE_MAX + 1];
	char key[64];
	int r;

	err_clear(&local);
	reg_clear(&a->reg);
	r = reg_load(a->cfg->state_dir, a->tok.sig_pub, &a->reg, &local);
	if (r == ERR_NOT_FOUND)
		return err_set(e, r, "%s (run devid-agent init)",
		    err_msg(&local));
	if (r == 0 && (strcmp(a->reg.account, a->cfg->account) != 0 ||
	    strcmp(a->reg.device, a->tok.device) != 0 ||
	    strcmp(a->reg.directory, a->dir_id) != 0))
		r = err_set(&local, ERR_FORMAT, "the registry is of another "
		    "account, device or directory");
	if (r == 0) {
		a->reg_verified = 1;
		a->reg_files_known = reg_files_digest(a->cfg->state_dir,
		    a->reg_files, NULL) == 0;
		return 0;
	}
	if (r == ERR_ALLOC || r == ERR_IO)
		return err_set(e, r, "%s", err_msg(&local));
	/* Tampered: keep the evidence, alert, start afresh. */
	path = path_join(a->cfg->state_dir, REG_FILE);
	if (path != NULL && asprintf(&aside, "%s.rejected-%llu", path,
	    (unsigned long long)time(NULL)) > 0)
		(void)rename(path, aside);
	snprintf(msg, sizeof(msg), "the registry failed verification and "
	    "was set aside%s%s: %s; the agent continues with a registry "
	    "holding only this device and announces every other device again",
	    aside != NULL ? " as " : "", aside != NULL ? aside : "",
	    err_msg(&local));
	snprintf(key, sizeof(key), "registry:%llu",
	    (unsigned long long)time(NULL));
	agent_raise(a, AGENT_ALERT_REGISTRY, key, NULL, NULL, msg, NULL);
	free(path);
	free(aside);
	if ((r = fresh_registry(a, e)) != 0)
		return r;
	a->reg_verified = 1;
	return agent_save_registry(a, e);
}

int
agent_load(struct agent *a, const struct agent_config *cfg,
    struct err_ctx *e)
{
	char *path = NULL;
	uint64_t now = (uint64_t)time(NULL);
	int r;

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->wake_pipe[0] = a->wake_pipe[1] = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake_watch, NULL);
	a->started = a->last_success = now;
	if (cfg->account == NULL || cfg->token == NULL ||
	    cfg->directory == NULL)
		return err_set(e, ERR_CONFIG, "account, token and directory "
		    "must be configured (run devid-agent init)");
	if ((a->pending_bcast = json_array()) == NULL)
		return ERR_ALLOC;
	if (pipe2(a->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return err_set(e, ERR_IO, "pipe: %s", strerror(errno));
	if ((r = path_private_dir(cfg->state_dir, e)) != 0)
		return r;
	if ((path = path_join(cfg->state_dir, AGENT_ALERT_JOURNAL)) == NULL)
		return ERR_ALLOC;
	r = agent_alert_list_open(&a->alerts, path, cfg->alert_command, e);
	free(path);
	if (r != 0)
		return r;
	if ((r = load_dir_key(a, e)) != 0)
		return r;
	if ((r = agent_watch_tlog_new(a, e)) != 0)
		return r;
	if ((r = agent_token_init(&a->tok, cfg->token, cfg->tcti,
	    cfg->state_dir, 0, e)) != 0)
		return r;
	if (cfg->pin_file != NULL &&
	    (r = agent_token_pin_file(&a->tok, cfg->pin_file, e)) != 0)
		return r;
	r = agent_token_open(&a->tok, e);
	if (r == ERR_PIN_REQUIRED) {
		agent_log(LOG_NOTICE, "the token needs a PIN: starting locked "
		    "(devid-agent unlock)");
		err_clear(e);
	} else if (r == ERR_KEY_POLICY) {
		/* Keys init would not have taken: alerted, never used. */
		agent_anchor_keys_refused(a, e);
		err_clear(e);
	} else if (r != 0) {
		return r;
	} else if ((r = agent_anchor_check(a, e)) != 0) {
		return r;
	} else if (!agent_anchor_blocked(&a->anchor) &&
	    (r = verify_registry(a, e)) != 0) {
		return r;
	}
	if ((r = agent_replay_load(a, e)) != 0)
		return r;
	return 0;
}

void
agent_free(struct agent *a)
{
	if (a == NULL)
		return;
	agent_watch_tlog_free(a);
	agent_token_free(&a->tok);
	crypto_wipe(a->session, sizeof(a->session));
	reg_clear(&a->reg);
	agent_alert_list_free(&a->alerts);
	EVP_PKEY_free(a->dir_pub);
	free(a->replay);
	json_decref(a->pending_bcast);
	if (a->wake_pipe[0] >= 0)
		close(a->wake_pipe[0]);
	if (a->wake_pipe[1] >= 0)
		close(a->wake_pipe[1]);
	pthread_cond_destroy(&a->wake_watch);
	pthread_mutex_destroy(&a->lock);
	memset(a, 0, sizeof(*a));
}

/* --- shared by the threads --- */

int
agent_session_cached(struct agent *a, const char **token, uint64_t *expires)
{
	if (a->session[0] == '\0' ||
	    a->session_expires <= (uint64_t)time(NULL) + 60)
		return 0;
	*token = a->session;
	*expires = a->session_expires;
	return 1;
}

void
agent_session_store(struct agent *a, const char *token, uint64_t expires)
{
	crypto_wipe(a->session, sizeof(a->session));
	a->session_expires = 0;
	if (token == NULL || strlen(token) >= sizeof(a->session))
		return;
	memcpy(a->session, token, strlen(token) + 1);
	a->session_expires = expires;
}

void
agent_wake_main(struct agent *a)
{
	char c = 1;

	if (a->wake_pipe[1] >= 0)
		(void)!write(a->wake_pipe[1], &c, 1);
}

int
agent_raise_alert(struct agent *a, const char *kind, const char *key,
    const char *account, const char *device, const char *label,
    const char *message, json_t *details, const struct agent_alert **out,
    struct err_ctx *e)
{
	return agent_raise_alert_severity(a, kind, NULL, key, account, device,
	    label, message, details, out, e);
}

int
agent_raise_alert_severity(struct agent *a, const char *kind,
    const char *severity, const char *key, const char *account,
    const char *device, const char *label, const char *message,
    json_t *details, const struct agent_alert **out, struct err_ctx *e)
{
	const struct agent_alert *al = NULL;
	int r;

	r = agent_alert_raise_severity(&a->alerts, kind, severity, key,
	    account, device, label, message, details, &al, e);
	if (r < 0) {
		agent_log(LOG_ERR, "ALERT NOT RECORDED [%s]: %s (%s)", kind,
		    message, err_msg(e));
		return r;
	}
	if (r == 1 && al != NULL && a->pending_bcast != NULL) {
		json_array_append_new(a->pending_bcast,
		    agent_alert_to_json(al));
		agent_wake_main(a);
	}
	if (out != NULL)
		*out = al;
	return r;
}

int
agent_raise(struct agent *a, const char *kind, const char *key,
    const char *device, const char *label, const char *message,
    json_t *details)
{
	struct err_ctx e;

	err_clear(&e);
	return agent_raise_alert(a, kind, key, a->cfg->account, device, label,
	    message, details, NULL, &e);
}

int
agent_save_registry(struct agent *a, struct err_ctx *e)
{
	int r;

	if (!a->reg_verified)
		return err_set(e, ERR_PIN_REQUIRED, "registry not verified "
		    "yet");
	if (agent_anchor_blocked(&a->anchor))
		return agent_anchor_refuse(a, e);
	r = reg_save(&a->reg, a->cfg->state_dir, agent_token_sign_cb, &a->tok,
	    e);
	a->reg_dirty = r != 0;
	if (r == 0)
		a->reg_files_known = reg_files_digest(a->cfg->state_dir,
		    a->reg_files, NULL) == 0;
	return r;
}

void
agent_flush_broadcast(struct agent *a)
{
	json_t *list, *msg;
	size_t i;

	pthread_mutex_lock(&a->lock);
	list = a->pending_bcast;
	a->pending_bcast = json_array();
	pthread_mutex_unlock(&a->lock);
	if (list == NULL)
		return;
	for (i = 0; i < json_array_size(list) && a->srv != NULL; i++) {
		msg = json_pack("{s:b, s:s, s:O}", "ok", 1, "event", "alert",
		    "alert", json_array_get(list, i));
		if (msg != NULL)
			agent_sock_server_broadcast(a->srv, msg);
		json_decref(msg);
	}
	json_decref(list);
}

/*
 * Lock held.  Notices a registry changed on disk while the agent runs
 * (someone without the token edited it): an alert, the changed files kept
 * aside as evidence, and the registry the agent holds written again.
 */
static void
check_registry_files(struct agent *a, uint64_t now)
{
	char hex[65], key[AGENT_ALERT_KEY_MAX + 1],
	    msg[AGENT_ALERT_MESSAGE_MAX + 1];
	char *path = NULL, *aside = NULL;
	uint8_t d[32];
	struct err_ctx e;
	int r;

	a->reg_checked = now;
	err_clear(&e);
	r = reg_files_digest(a->cfg->state_dir, d, &e);
	if (r == 0 && memcmp(d, a->reg_files, 32) == 0)
		return;
	if (r == ERR_ALLOC)
		return;
	hex_encode(d, 32, hex);
	path = path_join(a->cfg->state_dir, REG_FILE);
	if (r == 0 && path != NULL && asprintf(&aside, "%s.rejected-%llu",
	    path, (unsigned long long)now) > 0)
		(void)rename(path, aside);
	snprintf(msg, sizeof(msg), "the registry files were changed outside "
	    "the agent while it runs%s%s; the agent keeps its own verified "
	    "registry and writes it again", aside != NULL ? " (kept as " : "",
	    aside != NULL ? aside : "");
	if (aside != NULL)
		strncat(msg, ")", sizeof(msg) - strlen(msg) - 1);
	snprintf(key, sizeof(key), "registry:%.16s", r == 0 ? hex : "missing");
	agent_raise(a, AGENT_ALERT_REGISTRY, key, NULL, NULL, msg, NULL);
	free(path);
	free(aside);
	if (agent_save_registry(a, &e) != 0)
		agent_log(LOG_ERR, "registry not rewritten: %s", err_msg(&e));
}

void
agent_tick(struct agent *a)
{
	uint64_t now = (uint64_t)time(NULL), age;
	char msg[AGENT_ALERT_MESSAGE_MAX + 1], when[TIMEFMT_UTC_LEN];

	pthread_mutex_lock(&a->lock);
	age = now > a->last_success ? now - a->last_success : 0;
	if (age > a->cfg->max_stale && agent_alert_find_key(&a->alerts,
	    "stale") ==
	    NULL) {
		timefmt_utc(a->last_success, when, sizeof(when));
		snprintf(msg, sizeof(msg), "no successful, fresh check of the "
		    "log of %s for %llu s (since %s; max_stale %llu s): the "
		    "directory, the network or push may be blocked%s%s%s",
		    a->cfg->account, (unsigned long long)age, when,
		    (unsigned long long)a->cfg->max_stale,
		    agent_token_locked(&a->tok) ? "; the agent is locked" : "",
		    a->last_error[0] != '\0' ? "; last error: " : "",
		    a->last_error);
		agent_raise(a, AGENT_ALERT_STALE, "stale", NULL, NULL, msg,
		    json_pack("{s:I, s:I}", "last_success",
		    (json_int_t)a->last_success, "max_stale",
		    (json_int_t)a->cfg->max_stale));
	}
	if (a->reg_files_known &&
	    now - a->reg_checked >= a->cfg->check_interval)
		check_registry_files(a, now);
	if (a->cfg->pin_timeout > 0 && a->tok.pin_set &&
	    now - a->tok.pin_time > a->cfg->pin_timeout) {
		agent_log(LOG_NOTICE, "PIN timeout: locking");
		agent_token_lock(&a->tok);
	}
	pthread_mutex_unlock(&a->lock);
	agent_alert_reap();
}

/* --- pieces of the answers --- */

static void
stats_json(json_t *o, const struct token_stats *s)
{
	json_object_set_new(o, "signs", json_integer((json_int_t)s->signs));
	json_object_set_new(o, "ecdhs", json_integer((json_int_t)s->ecdhs));
	json_object_set_new(o, "decrypts",
	    json_integer((json_int_t)s->decrypts));
	json_object_set_new(o, "logins", json_integer((json_int_t)s->logins));
	json_object_set_new(o, "reconnects",
	    json_integer((json_int_t)s->reconnects));
}

static json_t *
alerts_array(struct agent *a)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < a->alerts.n_open; i++)
		json_array_append_new(arr,
		    agent_alert_to_json(&a->alerts.open[i]));
	return arr;
}

/* --- the operations (lock held unless said otherwise) --- */

static json_t *
op_info(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "";
	char *sig = NULL, *enc = NULL;
	json_t *o;

	if (a->tok.have_keys) {
		(void)devrec_short_id(a->tok.device, short_id);
		(void)b64url_encode(a->tok.sig_spki, a->tok.sig_spki_len, &sig);
		(void)b64url_encode(a->tok.enc_spki, a->tok.enc_spki_len, &enc);
	}
	o = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, "
	    "s:s, s:b}", "ok", 1, "version", PACKAGE_VERSION,
	    "account", a->cfg->account, "label",
	    a->cfg->label != NULL ? a->cfg->label : "",
	    "device", a->tok.have_keys ? a->tok.device : "",
	    "short_id", short_id,
	    "enc_alg", a->tok.have_keys ? token_enc_alg_name(a->tok.enc_alg) :
	    "", "sig_pub", sig, "enc_pub", enc,
	    "directory", a->cfg->directory, "directory_id", a->dir_id,
	    "locked", agent_token_locked(&a->tok));
	free(sig);
	free(enc);
	/* The witnesses a local client (devid-msg) checks with. */
	if (o != NULL) {
		json_t *w = json_array();
		size_t i;

		for (i = 0; w != NULL && i < a->cfg->n_witness; i++)
			json_array_append_new(w,
			    json_string(a->cfg->witness[i]));
		json_object_set_new(o, "witnesses", w);
		json_object_set_new(o, "witness_quorum", json_integer(
		    (json_int_t)(a->cfg->witness_quorum != 0 ?
		    a->cfg->witness_quorum : a->cfg->n_witness)));
	}
	return o;
}

/* The transparency log's part of `status`, or NULL without witnesses. */
static json_t *
tlog_status_json(struct agent *a)
{
	const struct agent_tlog_status *s = &a->tlog_status;

	if (!s->enabled)
		return NULL;
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s}",
	    "witnesses", (json_int_t)a->cfg->n_witness,
	    "quorum", (json_int_t)(a->cfg->witness_quorum != 0 ?
	    a->cfg->witness_quorum : a->cfg->n_witness),
	    "checkpoint_size", (json_int_t)s->checkpoint_size,
	    "fresh", (json_int_t)s->fresh,
	    "monitored", (json_int_t)s->monitored,
	    "proven_seq", (json_int_t)s->proven_seq,
	    "head_seq", (json_int_t)s->head_seq,
	    "pending", s->pending, "last_error", s->last_error);
}

static json_t *
op_status(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	struct token_stats st;
	json_t *o, *tok, *w;
	uint64_t now = (uint64_t)time(NULL);
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "";

	agent_token_stats(&a->tok, &st);
	if (a->tok.have_keys)
		(void)devrec_short_id(a->tok.device, short_id);
	if ((tok = json_object()) == NULL)
		return NULL;
	json_object_set_new(tok, "backend", json_string(a->tok.backend));
	stats_json(tok, &st);
	w = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:I, "
	    "s:I, s:b}", "running", a->watch_running,
	    "checks", (json_int_t)a->checks,
	    "failed", (json_int_t)a->checks_failed,
	    "last_success", (json_int_t)a->last_success,
	    "last_attempt", (json_int_t)a->last_attempt,
	    "age", (json_int_t)(now - a->last_success),
	    "events", (json_int_t)a->events_seen,
	    "last_error", a->last_error,
	    "seq", (json_int_t)a->reg.log.seq,
	    "check_interval", (json_int_t)a->cfg->check_interval,
	    "max_stale", (json_int_t)a->cfg->max_stale,
	    "stale", now - a->last_success > a->cfg->max_stale);
	o = json_pack("{s:b, s:s, s:s, s:s, s:b, s:b, s:b, s:o, s:o*, s:o, "
	    "s:I, s:I}", "ok", 1, "account", a->cfg->account,
	    "device", a->tok.have_keys ? a->tok.device : "",
	    "short_id", short_id,
	    "locked", agent_token_locked(&a->tok),
	    "registry_verified", a->reg_verified,
	    "registry_unsaved", a->reg_dirty,
	    "token", tok, "watcher", w, "alerts", alerts_array(a),
	    "clients", (json_int_t)(a->srv != NULL ?
	    agent_sock_server_clients(a->srv) : 0),
	    "refused_peers", (json_int_t)(a->srv != NULL ?
	    agent_sock_server_refused_peers(a->srv) : 0));
	if (o != NULL && a->tlog_status.enabled)
		json_object_set_new(o, "tlog", tlog_status_json(a));
	return o;
}

static json_t *
op_devices(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	char short_id[DEVREC_SHORT_ID_LEN + 1], hash[65];
	json_t *arr = json_array(), *d;
	const struct reg_device *rd;
	size_t i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < a->reg.n_devs; i++) {
		rd = &a->reg.devs[i];
		(void)devrec_short_id(rd->device, short_id);
		hex_encode(rd->add_hash, 32, hash);
		d = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b, "
		    "s:b, s:s}", "device", rd->device, "short_id", short_id,
		    "label", rd->label, "state", reg_state_name(rd->state),
		    "first_seen", (json_int_t)rd->first_seen,
		    "changed", (json_int_t)rd->changed,
		    "add_seq", (json_int_t)rd->add_seq, "add_hash", hash,
		    "active", acctlog_state_find(&a->reg.log, rd->device) !=
		    NULL, "self", strcmp(rd->device, a->reg.device) == 0,
		    "enc_alg", rd->has_record ? rd->rec.enc_alg : "");
		if (d != NULL && rd->has_record) {
			char *sig = NULL, *enc = NULL;

			if (b64url_encode(rd->rec.sig_pub, rd->rec.sig_pub_len,
			    &sig) == 0)
				json_object_set_new(d, "sig_pub",
				    json_string(sig));
			if (b64url_encode(rd->rec.enc_pub, rd->rec.enc_pub_len,
			    &enc) == 0)
				json_object_set_new(d, "enc_pub",
				    json_string(enc));
			free(sig);
			free(enc);
		}
		json_array_append_new(arr, d);
	}
	return json_pack("{s:b, s:s, s:I, s:o}", "ok", 1, "account",
	    a->reg.account, "seq", (json_int_t)a->reg.log.seq, "devices", arr);
}

/*
 * The fields of approve and revoke: only "device", a device id or a
 * prefix of one.  Checked before the lock test, so that a malformed
 * request is answered as such by a locked agent too.
 */
static int
device_args(const json_t *req, struct err_ctx *e)
{
	static const char *const keys[] = { "device" };

	if (agent_req_keys(req, keys, 1, e) != 0 ||
	    agent_req_str(req, "device", 80, e) == NULL)
		return ERR_FORMAT;
	return 0;
}

/* The registry's device that the request names (fields checked by
 * device_args()) in *out, borrowed from a->reg; else an error in e. */
static int
request_device(struct agent *a, const json_t *req, struct reg_device **out,
    struct err_ctx *e)
{
	const char *prefix;

	if ((prefix = agent_req_str(req, "device", 80, e)) == NULL)
		return ERR_FORMAT;
	return reg_match(&a->reg, prefix, out, e);
}

/* The fields of approve: "device" as for revoke, "force" (optional, a
 * boolean: approve an unendorsed device under require_endorsement). */
static int
approve_args(const json_t *req, struct err_ctx *e)
{
	static const char *const keys[] = { "device", "force" };
	const json_t *f = json_object_get(req, "force");

	if (agent_req_keys(req, keys, 2, e) != 0 ||
	    agent_req_str(req, "device", 80, e) == NULL)
		return ERR_FORMAT;
	if (f != NULL && !json_is_boolean(f))
		return err_set(e, ERR_FORMAT, "force must be true or false");
	return 0;
}

static json_t *
op_approve(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	struct reg_device *d, saved;
	char short_id[DEVREC_SHORT_ID_LEN + 1];
	int r;

	if ((r = request_device(a, req, &d, e)) != 0)
		return agent_reply_err(r, e);
	(void)devrec_short_id(d->device, short_id);
	if (d->state == REG_REVOKED)
		return agent_reply_err(err_set(e, ERR_DENIED, "device %s is "
		    "revoked", short_id), e);
	if (d->state == REG_PENDING) {
		if (d->add_seq == 0)
			return agent_reply_err(err_set(e, ERR_DENIED, "device "
			    "%s has no add event to approve", short_id), e);
		if (!json_is_true(json_object_get(req, "force")) &&
		    agent_watch_needs_force(a, d))
			return agent_reply_err(err_set(e, ERR_DENIED, "device "
			    "'%s' %s was added without the endorsement of an "
			    "approved device, and require_endorsement is on: "
			    "if you are sure you added it yourself, run "
			    "devid-agent approve --force %s; if not, revoke it "
			    "(devid-agent revoke %s)", d->label, short_id,
			    short_id, short_id), e);
		saved = *d;
		d->state = REG_APPROVED;
		d->changed = (uint64_t)time(NULL);
		a->reg.updated = d->changed;
		if ((r = agent_save_registry(a, e)) != 0) {
			*d = saved;
			return agent_reply_err(r, e);
		}
		agent_log(LOG_NOTICE, "approved device '%s' %s (add event "
		    "%llu)", d->label, short_id,
		    (unsigned long long)d->add_seq);
	}
	(void)agent_alert_close_matching(&a->alerts, AGENT_ALERT_DEVICE_ADDED,
	    d->device,
	    "approve", NULL);
	return json_pack("{s:b, s:s, s:s, s:s, s:I}", "ok", 1, "device",
	    d->device, "short_id", short_id, "label", d->label, "add_seq",
	    (json_int_t)d->add_seq);
}

static json_t *
op_ack(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	static const char *const keys[] = { "alert" };
	const struct agent_alert *al;
	char id[AGENT_ALERT_ID_LEN + 1];
	const char *prefix;
	int r;

	if ((r = agent_req_keys(req, keys, 1, e)) != 0 ||
	    (prefix = agent_req_str(req, "alert", 64, e)) == NULL)
		return agent_reply_err(ERR_FORMAT, e);
	if ((r = agent_alert_find(&a->alerts, prefix, &al, e)) != 0)
		return agent_reply_err(r, e);
	memcpy(id, al->id, sizeof(id));
	if ((r = agent_alert_close(&a->alerts, id, "ack", e)) != 0)
		return agent_reply_err(r, e);
	return json_pack("{s:b, s:s}", "ok", 1, "alert", id);
}

static json_t *
op_alerts(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	static const char *const keys[] = { "follow" };
	const json_t *f;
	int r;

	if ((r = agent_req_keys(req, keys, 1, e)) != 0)
		return agent_reply_err(r, e);
	f = json_object_get(req, "follow");
	if (f != NULL && !json_is_boolean(f))
		return agent_reply_err(err_set(e, ERR_FORMAT, "follow must be "
		    "true or false"), e);
	if (json_is_true(f))
		agent_sock_conn_set_follow(conn, 1);
	return json_pack("{s:b, s:o}", "ok", 1, "alerts", alerts_array(a));
}

static json_t *
op_unlock(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	static const char *const keys[] = { "pin" };
	const json_t *pv;
	const char *pin;
	size_t len;
	int r;

	if ((r = agent_req_keys(req, keys, 1, e)) != 0)
		return agent_reply_err(r, e);
	pv = json_object_get(req, "pin");
	if (!json_is_string(pv))
		return agent_reply_err(err_set(e, ERR_FORMAT, "pin must be a "
		    "string"), e);
	pin = json_string_value(pv);
	len = json_string_length(pv);
	r = agent_token_unlock(&a->tok, pin, len, e);
	crypto_wipe((void *)(uintptr_t)pin, len);
	if (r == ERR_KEY_POLICY) {
		agent_anchor_keys_refused(a, e);
		return agent_reply_err(agent_anchor_refuse(a, e), e);
	}
	if (r != 0)
		return agent_reply_err(r, e);
	agent_log(LOG_NOTICE, "unlocked");
	if ((r = agent_anchor_check(a, e)) != 0)
		return agent_reply_err(r, e);
	if (agent_anchor_blocked(&a->anchor))
		return agent_reply_err(agent_anchor_refuse(a, e), e);
	if (!a->reg_verified && (r = verify_registry(a, e)) != 0)
		return agent_reply_err(r, e);
	if (a->reg_dirty && agent_save_registry(a, e) != 0)
		agent_log(LOG_ERR, "registry not saved: %s", err_msg(e));
	a->refresh = 1;
	pthread_cond_signal(&a->wake_watch);
	return agent_reply_ok();
}

static json_t *
op_lock(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	agent_token_lock(&a->tok);
	agent_log(LOG_NOTICE, "locked");
	return agent_reply_ok();
}

static json_t *
op_sign(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	static const char *const keys[] = { "transcript" };
	const char *t;
	uint8_t *tr = NULL, digest[32], sig[64];
	size_t len = 0;
	char *sig_b64 = NULL;
	json_t *o = NULL;
	int r;

	if ((r = agent_req_keys(req, keys, 1, e)) != 0 ||
	    (t = agent_req_str(req, "transcript", AGENT_SOCK_FRAME_MAX,
	    e)) == NULL)
		return agent_reply_err(ERR_FORMAT, e);
	if ((r = b64url_decode(t, strlen(t), AGENT_SOCK_FRAME_MAX, &tr,
	    &len)) != 0)
		return agent_reply_err(r, (err_set(e, r, "transcript is not "
		    "base64url"), e));
	/* Registry signatures are the agent's own business (made directly
	 * with the token): tr_is_signable() does not list that tag. */
	if (!tr_is_signable(tr, len)) {
		r = err_set(e, ERR_DENIED, "refused: the transcript does not "
		    "start with a devid domain tag the agent signs");
		goto out;
	}
	if ((r = crypto_sha256(tr, len, digest)) != 0 ||
	    (r = agent_token_sign(&a->tok, digest, sig, e)) != 0 ||
	    (r = b64url_encode(sig, sizeof(sig), &sig_b64)) != 0)
		goto out;
	o = json_pack("{s:b, s:s, s:s}", "ok", 1, "sig", sig_b64, "device",
	    a->tok.device);
 out:
	free(tr);
	free(sig_b64);
	if (o == NULL)
		o = agent_reply_err(r, e);
	return o;
}

/* --- revoke: signs here, talks to the directory without the lock --- */

static json_t *
op_revoke(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	struct reg_device *d;
	struct dirc_options opt;
	struct dirc *c = NULL;
	char device[DEVREC_ID_HEX_LEN + 1], account[DEVREC_ACCOUNT_MAX + 1];
	char short_id[DEVREC_SHORT_ID_LEN + 1];
	uint8_t digest[32], sig[64];
	uint64_t now = (uint64_t)time(NULL);
	enum reg_state old_state;
	int r;

	if ((r = request_device(a, req, &d, e)) != 0)
		return agent_reply_err(r, e);
	memcpy(device, d->device, sizeof(device));
	memcpy(account, a->reg.account, sizeof(account));
	(void)devrec_short_id(device, short_id);
	if (acctlog_state_find(&a->reg.log, device) == NULL)
		return agent_reply_err(err_set(e, ERR_NOT_FOUND, "device %s is "
		    "not active in the verified log", short_id), e);
	if ((r = acctlog_revoke_digest(account, device, now, digest)) != 0 ||
	    (r = agent_token_sign(&a->tok, digest, sig, e)) != 0)
		return agent_reply_err(r, e);
	/* Revoked here before the directory hears of it, so that the
	 * watcher, which may see the event first, does not alert on a
	 * revocation this agent made.  Undone if the directory refuses. */
	old_state = d->state;
	d->state = REG_REVOKED;
	pthread_mutex_unlock(&a->lock);
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)a->cfg->http_timeout;
	r = dirc_new(a->cfg->directory, &opt, &c, e);
	if (r == 0) {
		const char *token;
		uint64_t expires = 0;

		pthread_mutex_lock(&a->lock);
		if (agent_session_cached(a, &token, &expires))
			r = dirc_set_token(c, token);
		else
			expires = 0;
		pthread_mutex_unlock(&a->lock);
		if (r == 0 && expires == 0) {
			r = dirc_login(c, a->dir_id, a->tok.device,
			    agent_watch_sign_transcript, a, &expires, e);
			pthread_mutex_lock(&a->lock);
			if (r == 0)
				agent_session_store(a, dirc_token(c), expires);
			pthread_mutex_unlock(&a->lock);
		}
	}
	if (r == 0)
		r = dirc_revoke(c, account, device, now, sig, NULL, e);
	dirc_free(c);
	pthread_mutex_lock(&a->lock);
	if (r != 0) {
		if ((d = reg_find(&a->reg, device)) != NULL &&
		    acctlog_state_find(&a->reg.log, device) != NULL)
			d->state = old_state;
		return agent_reply_err(r, e);
	}
	if ((d = reg_find(&a->reg, device)) != NULL) {
		d->state = REG_REVOKED;
		d->changed = now;
		a->reg.updated = now;
		if (agent_save_registry(a, e) != 0)
			agent_log(LOG_ERR, "registry not saved: %s",
			    err_msg(e));
	}
	(void)agent_alert_close_matching(&a->alerts, AGENT_ALERT_DEVICE_ADDED,
	    device,
	    "clear", NULL);
	agent_log(LOG_NOTICE, "revoked device %s", short_id);
	a->refresh = 1;
	pthread_cond_signal(&a->wake_watch);
	return json_pack("{s:b, s:s, s:s}", "ok", 1, "device", device,
	    "short_id", short_id);
}

/*
 * session: the directory session the agent holds (one signature per hour
 * for the watcher and every local client together); logs in when there
 * is none.  The login waits for the directory without the lock.
 */
static json_t *
op_session(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	struct dirc_options opt;
	struct dirc *c = NULL;
	const char *token;
	uint64_t expires = 0;
	json_t *o;
	int r;

	if ((r = agent_req_keys(req, NULL, 0, e)) != 0)
		return agent_reply_err(r, e);
	if (!agent_session_cached(a, &token, &expires)) {
		if (!a->reg_verified || agent_token_locked(&a->tok))
			return agent_reply_err(agent_err_locked(e), e);
		pthread_mutex_unlock(&a->lock);
		memset(&opt, 0, sizeof(opt));
		opt.timeout_s = (long)a->cfg->http_timeout;
		r = dirc_new(a->cfg->directory, &opt, &c, e);
		if (r == 0)
			r = dirc_login(c, a->dir_id, a->tok.device,
			    agent_watch_sign_transcript, a, &expires, e);
		pthread_mutex_lock(&a->lock);
		if (r == 0)
			agent_session_store(a, dirc_token(c), expires);
		dirc_free(c);
		if (r != 0)
			return agent_reply_err(r, e);
		if (!agent_session_cached(a, &token, &expires))
			return agent_reply_err(err_set(e, ERR_NETWORK, "the "
			    "directory gave a session that expires within a "
			    "minute"), e);
	}
	o = json_pack("{s:b, s:s, s:I, s:s, s:s, s:s, s:s}", "ok", 1,
	    "token", token, "expires", (json_int_t)expires,
	    "directory", a->cfg->directory, "directory_id", a->dir_id,
	    "account", a->reg.account, "device", a->tok.device);
	return o;
}

/* --- dispatch --- */

static json_t *
op_open(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	return agent_op_open(a, req, e);
}

static json_t *
op_gossip_alert(struct agent *a, struct agent_sock_conn *conn,
    const json_t *req, struct err_ctx *e)
{
	return agent_op_gossip_alert(a, req, e);
}

static json_t *
op_tlog_fork(struct agent *a, struct agent_sock_conn *conn,
    const json_t *req, struct err_ctx *e)
{
	return agent_op_tlog_fork(a, req, e);
}

static json_t *
op_endorse(struct agent *a, struct agent_sock_conn *conn, const json_t *req,
    struct err_ctx *e)
{
	return agent_op_endorse(a, req, e);
}

/*
 * One socket operation.  An operation that needs the token unlocked is
 * refused while the registry is unverified (until the first unlock); its
 * fields are checked by `args` before that test, so that a malformed
 * request is answered as such whether the agent is locked or not.
 * `args` is NULL where `run` checks the fields itself.  While the token's
 * keys are not this device's (agent-anchor.h), only the operations that
 * agent_anchor_op_allowed() names run.
 */
struct agent_op {
	const char *name;
	int needs_unlocked;
	int (*args)(const json_t *req, struct err_ctx *e);
	json_t *(*run)(struct agent *a, struct agent_sock_conn *conn,
	    const json_t *req, struct err_ctx *e);
};

static const struct agent_op agent_ops[] = {
	{ "info",         0, NULL,            op_info },
	{ "status",       0, NULL,            op_status },
	{ "devices",      0, NULL,            op_devices },
	{ "approve",      1, approve_args,    op_approve },
	{ "ack",          0, NULL,            op_ack },
	{ "revoke",       1, device_args,     op_revoke },
	{ "alerts",       0, NULL,            op_alerts },
	{ "unlock",       0, NULL,            op_unlock },
	{ "lock",         0, NULL,            op_lock },
	{ "sign",         0, NULL,            op_sign },
	{ "open",         1, agent_open_args, op_open },
	{ "gossip_alert", 0, NULL,            op_gossip_alert },
	{ "tlog_fork",    0, NULL,            op_tlog_fork },
	{ "endorse",      1, agent_endorse_args, op_endorse },
	/* Locked only when no session is cached: checked by op_session. */
	{ "session",      0, NULL,            op_session },
};

static const struct agent_op *
find_op(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(agent_ops) / sizeof(agent_ops[0]); i++)
		if (strcmp(agent_ops[i].name, name) == 0)
			return &agent_ops[i];
	return NULL;
}

/* The answer of op to req (lock held); NULL when out of memory. */
static json_t *
run_op(struct agent *a, const struct agent_op *op, struct agent_sock_conn *conn,
    const json_t *req, struct err_ctx *e)
{
	int r;

	if (op->args != NULL && (r = op->args(req, e)) != 0)
		return agent_reply_err(r, e);
	if (agent_anchor_blocked(&a->anchor) &&
	    !agent_anchor_op_allowed(op->name))
		return agent_reply_err(agent_anchor_refuse(a, e), e);
	if (op->needs_unlocked && !a->reg_verified)
		return agent_reply_err(agent_err_locked(e), e);
	return op->run(a, conn, req, e);
}

json_t *
agent_handle(void *arg, struct agent_sock_conn *c, json_t *req)
{
	struct agent *a = arg;
	const struct agent_op *op;
	struct err_ctx e;
	const char *name;
	json_t *resp = NULL, *id;

	err_clear(&e);
	if ((name = agent_req_str(req, "op", 32, &e)) == NULL)
		return agent_reply_err(ERR_FORMAT, &e);
	if ((op = find_op(name)) == NULL) {
		resp = agent_reply_err(ERR_FORMAT, (err_set(&e, ERR_FORMAT,
		    "unknown op '%s'", name), &e));
	} else {
		pthread_mutex_lock(&a->lock);
		resp = run_op(a, op, c, req, &e);
		pthread_mutex_unlock(&a->lock);
	}
	if (resp == NULL)
		resp = agent_sock_error_reply("internal", "out of memory");
	/* Echo a request id so that clients may pipeline. */
	if (resp != NULL && (id = json_object_get(req, "id")) != NULL &&
	    (json_is_integer(id) || json_is_string(id)))
		json_object_set(resp, "id", id);
	return resp;
}
