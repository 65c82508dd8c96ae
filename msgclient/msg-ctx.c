/*
 * msg-ctx.c - what the devid-msg commands share: the agent, this device,
 * the directory session, verified account logs, contact pins and the
 * reporting of conflicting heads.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
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

int
msg_log_update(struct msg_ctx *c, struct acctlog_state *st,
    struct acctlog_evidence *ev, struct err_ctx *e)
{
	struct acctlog_response *resp = NULL;
	struct acctlog_state work;
	uint64_t now, max_stale;
	int r = ERR_INTERNAL;

	memset(&work, 0, sizeof(work));
	if ((r = acctlog_state_copy(&work, st)) != 0)
		goto out;
	max_stale = c->cli->max_stale_s != 0 ? c->cli->max_stale_s :
	    MSG_MAX_STALE_DEFAULT;
	for (;;) {
		acctlog_response_free(resp);
		resp = NULL;
		if ((r = dirc_get_log(c->dirc, work.account, work.seq, 0,
		    &resp, e)) != 0) {
			if (r == ERR_NOT_FOUND)
				r = err_wrap(e, r, "recipient unknown: the "
				    "directory has no account %s", work.account);
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
			r = err_wrap(e, r, "the directory's view of %s is older "
			    "than %llu s: someone may be holding back the "
			    "directory", work.account,
			    (unsigned long long)max_stale);
		goto out;
	}
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
