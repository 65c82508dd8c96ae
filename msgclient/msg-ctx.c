/*
 * msg-ctx.c - what the devid-msg commands share: the agent, this device,
 * the directory session, verified account logs, contact pins and the
 * reporting of conflicting heads.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "msg-agent.h"
#include "msg-contacts.h"
#include "msg.h"
#include "paths.h"
#include "timefmt.h"
#include "tlog-client.h"

/* --data-dir, else the state directory the agent uses (paths.h). */
static int
data_dir_path(const char *given, char **out, struct err_ctx *e)
{
	int r;

	if (given != NULL)
		return (*out = strdup(given)) == NULL ? ERR_ALLOC : 0;
	if ((r = path_default_state_dir(out, e)) == ERR_CONFIG)
		return err_wrap(e, r, "neither XDG_DATA_HOME nor HOME is set: "
		    "give --data-dir");
	return r;
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/*
 * The witnesses the agent's "info" answer names ("witnesses": [vkey, ...],
 * "witness_quorum": k) into c->tlog; none (absent or empty): c->tlog
 * stays NULL and no transparency log checks are made.
 */
static int
ctx_witnesses(struct msg_ctx *c, const json_t *resp, struct err_ctx *e)
{
	const json_t *ws = json_object_get(resp, "witnesses");
	const json_t *q = json_object_get(resp, "witness_quorum"), *w;
	size_t i;
	int r;

	if (ws == NULL || json_is_null(ws) ||
	    (json_is_array(ws) && json_array_size(ws) == 0))
		return 0;
	if (!json_is_array(ws) || !json_is_integer(q) ||
	    json_integer_value(q) < 1 ||
	    json_integer_value(q) > TLOG_WITNESS_MAX)
		return err_set(e, ERR_CONFIG, "devid-agent names witnesses "
		    "without a usable quorum: check witnesses and "
		    "witness_quorum in its configuration");
	if ((c->tlog = calloc(1, sizeof(*c->tlog))) == NULL ||
	    (c->tlog_st = calloc(1, sizeof(*c->tlog_st))) == NULL)
		return ERR_ALLOC;
	json_array_foreach(ws, i, w) {
		if (!json_is_string(w))
			return err_set(e, ERR_CONFIG, "devid-agent names a "
			    "witness that is not a vkey string");
		if ((r = tlog_policy_add_witness(c->tlog,
		    json_string_value(w), e)) != 0) {
			char why[ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err_msg(e));
			return err_wrap(e, ERR_CONFIG, "devid-agent's witness "
			    "%zu is not usable: %s", i + 1, why);
		}
	}
	c->tlog->quorum = (unsigned int)json_integer_value(q);
	c->tlog->max_stale = c->cli->max_stale_s != 0 ? c->cli->max_stale_s :
	    MSG_MAX_STALE_DEFAULT;
	if ((r = tlog_policy_check(c->tlog, e)) != 0)
		return r;
	return 0;
}

/* Reads this device from the agent's "info" answer. */
static int
ctx_info(struct msg_ctx *c, struct err_ctx *e)
{
	json_t *req = NULL, *resp = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	char id[DEVREC_ID_HEX_LEN + 1];
	const char *s;
	int r = ERR_INTERNAL;

	if ((req = json_pack("{s:s}", "op", "info")) == NULL)
		return ERR_ALLOC;
	if ((r = msg_agent_call(c->agent, req, &resp, e)) != 0)
		goto out;
	if (!devrec_account_valid(jstr(resp, "account")) ||
	    !devrec_id_valid(jstr(resp, "device")) ||
	    !devrec_id_valid(jstr(resp, "directory_id"))) {
		r = err_set(e, ERR_FORMAT, "devid-agent has no device yet: run "
		    "devid-agent init and register first");
		goto out;
	}
	snprintf(c->account, sizeof(c->account), "%s", jstr(resp, "account"));
	snprintf(c->device, sizeof(c->device), "%s", jstr(resp, "device"));
	snprintf(c->label, sizeof(c->label), "%s", jstr(resp, "label"));
	snprintf(c->directory_id, sizeof(c->directory_id), "%s",
	    jstr(resp, "directory_id"));
	(void)devrec_short_id(c->device, c->short_id);
	s = jstr(resp, "sig_pub");
	if ((r = b64url_decode(s, strlen(s), CRYPTO_SPKI_MAX, &der,
	    &len)) != 0 || (r = devrec_device_id(der, len, id)) != 0 ||
	    strcmp(id, c->device) != 0) {
		r = err_set(e, ERR_FORMAT, "devid-agent gave a signing key "
		    "that is not its device's");
		goto out;
	}
	if ((r = crypto_spki_import(der, len, &c->self_pub, e)) != 0)
		goto out;
	if ((c->directory_url = strdup(jstr(resp, "directory"))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = ctx_witnesses(c, resp, e)) != 0)
		goto out;
	r = 0;
 out:
	free(der);
	json_decref(req);
	json_decref(resp);
	return r;
}

/* Takes the agent's directory session and checks the directory's key. */
static int
ctx_directory(struct msg_ctx *c, struct err_ctx *e)
{
	struct dirc_options opt;
	struct dirc_info info;
	json_t *req = NULL, *resp = NULL, *tok;
	const char *url;
	int r = ERR_INTERNAL;

	if ((req = json_pack("{s:s}", "op", "session")) == NULL)
		return ERR_ALLOC;
	if ((r = msg_agent_call(c->agent, req, &resp, e)) != 0)
		goto out;
	url = c->cli->directory != NULL ? c->cli->directory :
	    c->directory_url;
	memset(&opt, 0, sizeof(opt));
	if ((r = dirc_new(url, &opt, &c->dirc, e)) != 0)
		goto out;
	tok = json_object_get(resp, "token");
	if (!json_is_string(tok) || json_string_length(tok) == 0 ||
	    json_string_length(tok) > DIRC_TOKEN_MAX) {
		r = err_set(e, ERR_FORMAT, "devid-agent gave no session token");
		goto out;
	}
	if ((r = dirc_set_token(c->dirc, json_string_value(tok))) != 0)
		goto out;
	/* The token is a secret: wipe jansson's copy too. */
	crypto_wipe((void *)(uintptr_t)json_string_value(tok),
	    json_string_length(tok));
	if ((r = dirc_info(c->dirc, &info, e)) != 0)
		goto out;
	if (strcmp(info.directory_id, c->directory_id) != 0) {
		r = err_set(e, ERR_WRONG_KEY, "the directory at %s signs with "
		    "key %.16s..., but this device pinned %.16s...: refusing "
		    "to trust it", url, info.directory_id, c->directory_id);
		goto out;
	}
	if ((r = crypto_spki_import(info.head_key, info.head_key_len,
	    &c->dir_pub, e)) != 0)
		goto out;
	memcpy(c->dir_spki, info.head_key, info.head_key_len);
	c->dir_spki_len = info.head_key_len;
	c->max_blob = info.max_blob;
	c->blob_quota = info.blob_quota;
	c->blob_days = info.blob_days;
	c->used_url = url;
	if (c->tlog != NULL) {
		if (asprintf(&c->tlog_path, "%s/%s", c->data_dir,
		    MSG_TLOG_FILE) < 0) {
			c->tlog_path = NULL;
			r = ERR_ALLOC;
			goto out;
		}
		if ((r = tlog_state_load(c->tlog_path, c->tlog_st, e)) != 0)
			goto out;
	}
	r = 0;
 out:
	json_decref(req);
	json_decref(resp);
	return r;
}

/* Opens the local log for appending; a log past MSG_LOG_MAX is kept as
 * PATH.1 (replacing the one before) and a new one started.  NULL when it
 * cannot be opened: the log is for the curious, not a reason to fail. */
static FILE *
log_open(const char *path)
{
	struct stat st;
	char *old = NULL;
	int fd;

	if (stat(path, &st) == 0 && st.st_size > MSG_LOG_MAX &&
	    asprintf(&old, "%s.1", path) >= 0) {
		(void)rename(path, old);
		free(old);
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0)
		return NULL;
	return fdopen(fd, "a");
}

int
msg_ctx_open(struct msg_ctx *c, const struct msg_cli *cli,
    int with_directory, struct err_ctx *e)
{
	char *sock = NULL, *logpath = NULL;
	int r = ERR_INTERNAL;

	memset(c, 0, sizeof(*c));
	c->cli = cli;
	if ((r = data_dir_path(cli->data_dir, &c->data_dir, e)) != 0 ||
	    (r = path_private_dir(c->data_dir, e)) != 0)
		goto out;
	if (asprintf(&c->contacts_dir, "%s/%s", c->data_dir,
	    MSG_CONTACTS_DIR) < 0) {
		c->contacts_dir = NULL;
		r = ERR_ALLOC;
		goto out;
	}
	if (asprintf(&logpath, "%s/%s", c->data_dir, MSG_LOG_FILE) < 0) {
		logpath = NULL;
		r = ERR_ALLOC;
		goto out;
	}
	c->log = log_open(logpath);
	if ((r = msg_agent_socket_path(cli->socket, &sock, e)) != 0 ||
	    (r = msg_agent_connect(sock, &c->agent, e)) != 0 ||
	    (r = ctx_info(c, e)) != 0)
		goto out;
	if (with_directory && (r = ctx_directory(c, e)) != 0)
		goto out;
	r = 0;
 out:
	free(sock);
	free(logpath);
	return r;
}

void
msg_ctx_close(struct msg_ctx *c)
{
	if (c == NULL)
		return;
	msg_agent_free(c->agent);
	dirc_free(c->dirc);
	EVP_PKEY_free(c->self_pub);
	EVP_PKEY_free(c->dir_pub);
	free(c->directory_url);
	free(c->data_dir);
	free(c->contacts_dir);
	if (c->log != NULL)
		fclose(c->log);
	acctlog_state_clear(&c->own);
	free(c->tlog);
	free(c->tlog_st);
	free(c->tlog_path);
	memset(c, 0, sizeof(*c));
}

void
msg_log(struct msg_ctx *c, const char *fmt, ...)
{
	char when[48];
	va_list ap;

	if (c->log == NULL)
		return;
	timefmt_utc((uint64_t)time(NULL), when, sizeof(when));
	fprintf(c->log, "%s devid-msg[%ld]: ", when, (long)getpid());
	va_start(ap, fmt);
	vfprintf(c->log, fmt, ap);
	va_end(ap);
	fputc('\n', c->log);
	fflush(c->log);
}

/*
 * The transparency log check of one verified read: resp was read with
 * tlog=1 and work verified from it.  *pending is set when the latest
 * events are not yet proven.
 */
static int
log_tlog_check(struct msg_ctx *c, const struct acctlog_state *work,
    const struct acctlog_response *resp, int *pending, struct err_ctx *e)
{
	struct tlog_check_result *res = NULL;
	const uint8_t *ev = NULL;
	char why[ERR_MSG_MAX];
	size_t i;
	int r;

	*pending = 0;
	if ((res = calloc(1, sizeof(*res))) == NULL)
		return ERR_ALLOC;
	/* The hash of the proven event, as this device verified it. */
	if (resp->tlog.present) {
		if (resp->tlog.seq == work->seq)
			ev = work->hash;
		for (i = 0; ev == NULL && i < work->n_history; i++)
			if (work->history[i].seq == resp->tlog.seq)
				ev = work->history[i].hash;
	}
	r = tlog_check_log(c->tlog, c->dir_spki, c->dir_spki_len, c->tlog_st,
	    c->tlog_path, c->dirc, work->account, resp, ev,
	    (uint64_t)time(NULL), res, e);
	if (r == ERR_FORK && res->have_fork)
		(void)msg_report_tlog_fork(c, &res->fork, NULL);
	if (r != 0) {
		msg_log(c, "transparency log check of %s failed: %s",
		    work->account, err_msg(e));
		switch (r) {
		case ERR_DENIED:
		case ERR_STALE:
		case ERR_FORK:
		case ERR_SIGNATURE:
		case ERR_FORMAT:
			/* What the log does not vouch for (not a failure
			 * to reach the directory). */
			c->tlog_err = r;
			snprintf(why, sizeof(why), "%s", err_msg(e));
			r = err_wrap(e, r, "refusing the directory's log of "
			    "%s: %s", work->account, why);
			break;
		default:
			break;
		}
		goto out;
	}
	if (res->pending) {
		*pending = 1;
		c->tlog_err = ERR_TIMEOUT;
		r = err_set(e, ERR_TIMEOUT, "the directory has not yet "
		    "published the latest events of %s (up to %" PRIu64 ", "
		    "proven up to %" PRIu64 ") in its transparency log; try "
		    "again", work->account, res->head_seq, res->proven_seq);
	}
 out:
	free(res);
	return r;
}

/* One read of st's log, verified into st unless *pending. */
static int
log_update_once(struct msg_ctx *c, struct acctlog_state *st,
    struct acctlog_evidence *ev, int *pending, struct err_ctx *e)
{
	struct acctlog_response *resp = NULL;
	struct acctlog_state work;
	uint64_t now, max_stale;
	int r = ERR_INTERNAL;

	*pending = 0;
	memset(&work, 0, sizeof(work));
	if ((r = acctlog_state_copy(&work, st)) != 0)
		goto out;
	max_stale = c->cli->max_stale_s != 0 ? c->cli->max_stale_s :
	    MSG_MAX_STALE_DEFAULT;
	for (;;) {
		acctlog_response_free(resp);
		resp = NULL;
		r = c->tlog != NULL ?
		    dirc_get_log_tlog(c->dirc, work.account, work.seq, 0,
		    &resp, e) :
		    dirc_get_log(c->dirc, work.account, work.seq, 0, &resp, e);
		if (r != 0) {
			if (r == ERR_NOT_FOUND)
				r = err_wrap(e, r, "recipient unknown: the "
				    "directory has no account %s",
				    work.account);
			goto out;
		}
		/* A long log comes in pages: apply all but the last. */
		if (resp->n_events > 0 &&
		    resp->events[resp->n_events - 1].seq < resp->head.seq) {
			if ((r = acctlog_state_apply(&work, resp->events,
			    resp->n_events, e)) != 0)
				goto out;
			continue;
		}
		break;
	}
	now = (uint64_t)time(NULL);
	if ((r = acctlog_verify_update(&work, resp->events, resp->n_events,
	    &resp->head, c->dir_pub, now, max_stale, ev, e)) != 0) {
		if (r == ERR_STALE)
			r = err_wrap(e, r, "the directory's view of %s is "
			    "older than %llu s: someone may be holding back the "
			    "directory", work.account,
			    (unsigned long long)max_stale);
		goto out;
	}
	if (c->tlog != NULL &&
	    (r = log_tlog_check(c, &work, resp, pending, e)) != 0)
		goto out;
	acctlog_state_clear(st);
	*st = work;
	memset(&work, 0, sizeof(work));     /* transferred */
	r = 0;
 out:
	acctlog_state_clear(&work);
	acctlog_response_free(resp);
	return r;
}

int
msg_log_update(struct msg_ctx *c, struct acctlog_state *st,
    struct acctlog_evidence *ev, struct err_ctx *e)
{
	struct timespec step;
	unsigned int waited = 0;
	int r, pending = 0;

	for (;;) {
		c->tlog_err = 0;
		r = log_update_once(c, st, ev, &pending, e);
		if (r == 0 || !pending || waited >= MSG_TLOG_WAIT_MS)
			return r;
		err_clear(e);
		step.tv_sec = 0;
		step.tv_nsec = (long)MSG_TLOG_STEP_MS * 1000000L;
		while (nanosleep(&step, &step) != 0)
			;
		waited += MSG_TLOG_STEP_MS;
	}
}

int
msg_own_log(struct msg_ctx *c, struct err_ctx *e)
{
	int r;

	if (!c->have_own) {
		acctlog_state_clear(&c->own);
		if ((r = acctlog_state_init(&c->own, c->account,
		    c->directory_id, e)) != 0)
			return r;
	}
	if ((r = msg_log_update(c, &c->own, NULL, e)) != 0)
		return r;
	c->have_own = 1;
	return 0;
}

static int
ctx_sign(void *arg, const uint8_t *tr, size_t len, uint8_t sig[64],
    struct err_ctx *e)
{
	struct msg_ctx *c = arg;
	int r;

	if ((r = msg_agent_sign(c->agent, tr, len, sig, e)) == ERR_DENIED)
		r = err_wrap(e, r, "devid-agent refuses to sign the contact "
		    "pin (a \"%s\" transcript): this devid-agent is too old "
		    "for devid-msg", MSG_CONTACT_TAG);
	return r;
}

int
msg_contact_store(struct msg_ctx *c, const struct registry *pin,
    struct err_ctx *e)
{
	return msg_contact_save(c->contacts_dir, pin, c->self_pub, ctx_sign,
	    c, e);
}

/* A device accepted because trust_endorsed is on: said on stderr and in
 * the local log, since it changes who can read what is sent. */
static void
show_endorsed(void *arg, const struct registry *pin, const char *device)
{
	struct msg_ctx *c = arg;
	char msg[512];

	msg_contact_explain(pin, device, msg, sizeof(msg));
	fprintf(stderr, "devid-msg: %s added a device, accepted because "
	    "trust_endorsed is on for %s: %s\n", pin->account, pin->account,
	    msg);
	msg_log(c, "accepted (trust_endorsed) %s", msg);
}

int
msg_contact_refresh(struct msg_ctx *c, const char *account,
    struct registry *pin, int *first, struct err_ctx *e)
{
	struct acctlog_evidence ev;
	uint64_t now = (uint64_t)time(NULL), seq0;
	int r, is_first = 0, changed = 0;

	r = msg_contact_load(c->contacts_dir, account, c->device, c->self_pub,
	    pin, e);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		is_first = 1;
		if ((r = reg_init(pin, account, c->device, c->directory_id,
		    e)) != 0)
			return r;
	} else if (r == ERR_SIGNATURE) {
		char why[ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err_msg(e));
		return err_wrap(e, r, "%s; run devid-msg trust %s to check "
		    "its devices and pin them anew", why, account);
	} else if (r != 0)
		return r;
	if (strcmp(pin->directory, c->directory_id) != 0)
		return err_set(e, ERR_WRONG_KEY, "the pin of %s was made under "
		    "another directory key", account);
	seq0 = pin->log.seq;
	memset(&ev, 0, sizeof(ev));
	if ((r = msg_log_update(c, &pin->log, &ev, e)) != 0) {
		if ((r == ERR_ROLLBACK || r == ERR_FORK || r == ERR_CHAIN) &&
		    ev.kind != 0 && ev.has_verified)
			(void)msg_report_split(c, account, r == ERR_ROLLBACK ?
			    "rollback" : "fork", &ev.verified,
			    &ev.conflicting, NULL);
		return r;
	}
	if ((r = msg_contact_sync(pin, is_first, now, &changed, e)) != 0)
		return r;
	if (!is_first && msg_contact_accept_endorsed(pin, now, show_endorsed,
	    c) > 0)
		changed = 1;
	if (is_first || changed || pin->log.seq != seq0) {
		pin->updated = now;
		if ((r = msg_contact_store(c, pin, e)) != 0)
			return r;
	}
	if (first != NULL)
		*first = is_first;
	return 0;
}

static void
head_line(const struct acctlog_head *h, char *out, size_t out_len)
{
	char hash[65], when[48];

	hex_encode(h->hash, 32, hash);
	timefmt_utc(h->time, when, sizeof(when));
	snprintf(out, out_len, "seq %llu hash %.16s... signed %s",
	    (unsigned long long)h->seq, hash, when);
}

/*
 * NULL when the two heads prove by themselves the conflict that kind names
 * (what devid-agent's gossip_alert accepts, docs/agent.md): the same seq
 * with different hashes, or for a rollback a smaller seq signed later.
 * Else why they do not (the evidence is then in the log's events).
 */
static const char *
split_unproven(const char *kind, const struct acctlog_head *verified,
    const struct acctlog_head *conflicting)
{
	if (strcmp(kind, "rollback") == 0)
		return conflicting->seq < verified->seq &&
		    conflicting->time > verified->time ? NULL : "the older "
		    "head was not signed after the newer one";
	if (conflicting->seq != verified->seq)
		return "the heads are at different seqs: the conflict is in "
		    "the log's events";
	if (memcmp(conflicting->hash, verified->hash, 32) == 0)
		return "the heads agree";
	return NULL;
}

int
msg_report_split(struct msg_ctx *c, const char *account, const char *kind,
    const struct acctlog_head *verified,
    const struct acctlog_head *conflicting, const char *reporter)
{
	const char *unproven = NULL, *alert_id;
	struct err_ctx e;
	json_t *req = NULL, *resp = NULL, *vh = NULL, *ch = NULL;
	char vline[128], cline[128];
	int r = ERR_INTERNAL;

	err_clear(&e);
	head_line(verified, vline, sizeof(vline));
	head_line(conflicting, cline, sizeof(cline));
	fprintf(stderr, "devid-msg: ALERT: %s of %s: the directory signed two "
	    "different views: this device verified %s; %s %s\n",
	    strcmp(kind, "split_view") == 0 ? "split view" : kind, account,
	    vline, reporter != NULL ? "a message's sender was shown" :
	    "the directory now shows", cline);
	msg_log(c, "alert %s of %s: verified %s, conflicting %s%s%.64s",
	    kind, account, vline, cline, reporter != NULL ? ", reported by " :
	    "", reporter != NULL ? reporter : "");
	if ((unproven = split_unproven(kind, verified, conflicting)) != NULL) {
		/* devid-agent keeps only what the two heads prove. */
		fprintf(stderr, "devid-msg: devid-agent keeps no alert for "
		    "this (%s): keep this output and devid-msg's log as "
		    "evidence\n", unproven);
		r = ERR_REJECTED;
		goto out;
	}
	if ((r = acctlog_head_to_json(verified, &vh, &e)) != 0 ||
	    (r = acctlog_head_to_json(conflicting, &ch, &e)) != 0)
		goto out;
	if ((req = json_pack("{s:s, s:s, s:s, s:O, s:O}", "op", "gossip_alert",
	    "account", account, "kind", kind, "verified_head", vh,
	    "conflicting_head", ch)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (reporter != NULL)
		json_object_set_new(req, "reporter", json_string(reporter));
	if ((r = msg_agent_call(c->agent, req, &resp, &e)) != 0)
		goto out;
	alert_id = json_string_value(json_object_get(resp, "alert"));
	fprintf(stderr, "devid-msg: devid-agent keeps the alert%s%.16s with "
	    "both heads (devid-agent alerts --json)\n",
	    alert_id != NULL ? " " : "", alert_id != NULL ? alert_id : "");
	r = 0;
 out:
	if (r != 0 && unproven == NULL) {
		fprintf(stderr, "devid-msg: error: the alert was not kept "
		    "(%s): keep this output as evidence\n",
		    err_msg(&e)[0] != '\0' ? err_msg(&e) : err_str(r));
		msg_log(c, "alert %s of %s not kept by devid-agent: %s", kind,
		    account, err_msg(&e)[0] != '\0' ? err_msg(&e) :
		    err_str(r));
	}
	json_decref(vh);
	json_decref(ch);
	json_decref(req);
	json_decref(resp);
	return r;
}

int
msg_report_tlog_fork(struct msg_ctx *c, const struct tlog_fork *fork,
    const char *reporter)
{
	struct err_ctx e;
	json_t *req = NULL, *resp = NULL;
	const char *alert_id;
	int r = ERR_INTERNAL;

	err_clear(&e);
	fprintf(stderr, "devid-msg: ALERT: the directory's transparency log "
	    "is forked: this device kept one checkpoint and %s another that "
	    "contradicts it.\n--- kept:\n%s--- shown:\n%s---\n",
	    reporter != NULL ? "a message's sender was shown" :
	    "the directory now shows", fork->held, fork->shown);
	msg_log(c, "alert tlog_fork%s%.64s", reporter != NULL ?
	    ", reported by " : "", reporter != NULL ? reporter : "");
	if ((req = json_pack("{s:s, s:s, s:s}", "op", "tlog_fork", "held",
	    fork->held, "shown", fork->shown)) == NULL ||
	    /* "reporter" only when a message's sender showed it. */
	    (reporter != NULL && json_object_set_new(req, "reporter",
	    json_string(reporter)) != 0)) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = msg_agent_call(c->agent, req, &resp, &e)) != 0)
		goto out;
	alert_id = json_string_value(json_object_get(resp, "alert"));
	fprintf(stderr, "devid-msg: devid-agent keeps the alert%s%.16s with "
	    "both checkpoints (devid-agent alerts --json)\n",
	    alert_id != NULL ? " " : "", alert_id != NULL ? alert_id : "");
	r = 0;
 out:
	if (r != 0) {
		fprintf(stderr, "devid-msg: error: devid-agent did not take "
		    "the alert (%s): keep this output as evidence\n",
		    err_msg(&e)[0] != '\0' ? err_msg(&e) : err_str(r));
		msg_log(c, "alert tlog_fork not kept by devid-agent: %s",
		    err_msg(&e)[0] != '\0' ? err_msg(&e) : err_str(r));
	}
	json_decref(req);
	json_decref(resp);
	return r;
}

int
msg_tlog_check_sender(struct msg_ctx *c, const char *note,
    const char *reporter, struct err_ctx *e)
{
	struct tlog_check_result *res = NULL;
	struct err_ctx e2;
	int r;

	if (c->tlog == NULL || note == NULL)
		return 0;
	if ((res = calloc(1, sizeof(*res))) == NULL)
		return ERR_ALLOC;
	err_clear(&e2);
	r = tlog_check_checkpoint(c->tlog, c->dir_spki, c->dir_spki_len,
	    c->tlog_st, c->tlog_path, c->dirc, note, strlen(note),
	    (uint64_t)time(NULL), res, &e2);
	switch (r) {
	case 0:
		break;
	case ERR_FORK:
		if (res->have_fork)
			(void)msg_report_tlog_fork(c, &res->fork, reporter);
		r = err_set(e, ERR_FORK, "the checkpoint the sender %.16s "
		    "kept contradicts this device's: %s", reporter != NULL ?
		    reporter : "?", err_msg(&e2));
		break;
	case ERR_NETWORK:
	case ERR_TIMEOUT:
	case ERR_IO:
	case ERR_ALLOC:
		r = err_set(e, r, "checking the checkpoint of a message: %s",
		    err_msg(&e2));
		break;
	default:
		/* Not vouched for by the witnesses: proves nothing. */
		msg_log(c, "checkpoint kept by sender %.64s ignored: %s",
		    reporter != NULL ? reporter : "?", err_msg(&e2));
		r = 0;
		break;
	}
	free(res);
	return r;
}
