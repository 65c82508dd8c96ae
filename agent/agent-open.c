/*
 * agent-open.c - the `open` request: the recipient checks of PROTOCOL.md
 * section 4 run by env_open() with the agent's callbacks (sender key,
 * replay store, gossip against the own verified log), the unwrap in the
 * token and the body decrypted in the agent.
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
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-registry.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "envelope.h"
#include "errors.h"
#include "token.h"

/* Rewrites the replay store with the ids kept in memory (atomically). */
static int
replay_rewrite(struct agent *a, struct err_ctx *e)
{
	char *path = NULL, *b64 = NULL, line[256];
	struct buf *b = NULL;
	size_t i;
	int r = ERR_ALLOC;

	if ((path = cfg_path_join(a->cfg->state_dir, AGENT_REPLAY_FILE)) ==
	    NULL || (b = buf_new(0)) == NULL)
		goto out;
	for (i = 0; i < a->n_replay; i++) {
		if (b64url_encode(a->replay[i].id, 16, &b64) != 0)
			goto out;
		snprintf(line, sizeof(line), "{\"device\":\"%s\",\"id\":\"%s\"}"
		    "\n", a->replay[i].device, b64);
		free(b64);
		b64 = NULL;
		if ((r = buf_put(b, line, strlen(line))) != 0)
			goto out;
	}
	r = reg_write_file(path, buf_ptr(b), buf_len(b), e);
 out:
	buf_free(b);
	free(path);
	return r;
}

int
agent_replay_load(struct agent *a, struct err_ctx *e)
{
	char *path, *text = NULL;
	size_t len = 0, pos = 0, n;
	json_t *o;
	const char *dev;
	struct agent_replay *rp;
	int r;

	if ((path = cfg_path_join(a->cfg->state_dir, AGENT_REPLAY_FILE)) ==
	    NULL)
		return ERR_ALLOC;
	r = reg_read_file(path, (size_t)64 * 1024 * 1024, &text, &len, e);
	free(path);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		return 0;
	}
	if (r != 0)
		return r;
	while (pos < len) {
		if (a->n_replay >= AGENT_REPLAY_MAX) {
			/* Keep the newest: drop the oldest half. */
			memmove(a->replay, a->replay + AGENT_REPLAY_MAX / 2,
			    (a->n_replay - AGENT_REPLAY_MAX / 2) *
			    sizeof(*a->replay));
			a->n_replay -= AGENT_REPLAY_MAX / 2;
		}
		for (n = 0; pos + n < len && text[pos + n] != '\n'; n++)
			;
		o = NULL;
		if (n > 0 && devrec_json_load(text + pos, n, 1024, &o, "replay",
		    NULL) == 0 && (dev = json_string_value(json_object_get(o,
		    "device"))) != NULL && devrec_id_valid(dev)) {
			rp = realloc(a->replay, (a->n_replay + 1) *
			    sizeof(*rp));
			if (rp != NULL) {
				a->replay = rp;
				rp = &a->replay[a->n_replay];
				snprintf(rp->device, sizeof(rp->device), "%s",
				    dev);
				if (devrec_json_b64_exact(o, "id", rp->id, 16,
				    "replay", NULL) == 0)
					a->n_replay++;
			}
		}
		json_decref(o);
		pos += n + 1;
	}
	free(text);
	if (len > AGENT_REPLAY_COMPACT_AT)
		return replay_rewrite(a, e);
	return 0;
}


/* --- open: env_open with the agent's callbacks --- */

struct open_ctx {
	struct agent *a;
	const char *sender_key_b64;     /* from the request, or NULL */
};

static int
open_sender_key(void *arg, const char *account, const char *device,
    EVP_PKEY **sig_pub, struct err_ctx *e)
{
	struct open_ctx *oc = arg;
	struct agent *a = oc->a;
	const struct acctlog_device *ad;
	uint8_t *der = NULL;
	size_t len = 0;
	char id[DEVREC_ID_HEX_LEN + 1];
	int r;

	if (strcmp(account, a->reg.account) == 0) {
		if ((ad = acctlog_state_find(&a->reg.log, device)) == NULL)
			return err_set(e, ERR_NOT_FOUND, "sender device is not "
			    "active in the verified log of %s", account);
		return crypto_spki_import(ad->rec.sig_pub, ad->rec.sig_pub_len,
		    sig_pub, e);
	}
	if (oc->sender_key_b64 == NULL)
		return err_set(e, ERR_NOT_FOUND, "sender of another account "
		    "and no sender_key in the request");
	if ((r = b64url_decode(oc->sender_key_b64,
	    strlen(oc->sender_key_b64), CRYPTO_SPKI_MAX, &der, &len)) != 0)
		return err_set(e, r, "sender_key is not base64url");
	if ((r = devrec_device_id(der, len, id)) == 0 &&
	    strcmp(id, device) != 0)
		r = err_set(e, ERR_DENIED, "sender_key is not the key of the "
		    "sender device");
	if (r == 0)
		r = crypto_spki_import(der, len, sig_pub, e);
	free(der);
	return r;
}

static int
open_replay_check(void *arg, const char *device, const uint8_t id[16],
    struct err_ctx *e)
{
	struct open_ctx *oc = arg;
	size_t i;

	for (i = 0; i < oc->a->n_replay; i++)
		if (memcmp(oc->a->replay[i].id, id, 16) == 0 &&
		    strcmp(oc->a->replay[i].device, device) == 0)
			return err_set(e, ERR_REPLAY, "message id seen before");
	return 0;
}

static int
open_replay_record(void *arg, const char *device, const uint8_t id[16],
    uint64_t sent, struct err_ctx *e)
{
	struct open_ctx *oc = arg;
	struct agent *a = oc->a;
	struct agent_replay *rp;
	char *path = NULL, *b64 = NULL, *line = NULL;
	int fd = -1, r = ERR_IO;
	size_t n;

	if (a->n_replay >= AGENT_REPLAY_MAX) {
		/* Forget the oldest half: bounded memory. */
		n = AGENT_REPLAY_MAX / 2;
		memmove(a->replay, a->replay + n, (a->n_replay - n) *
		    sizeof(*a->replay));
		a->n_replay -= n;
		if ((r = replay_rewrite(a, e)) != 0)
			return r;
	}
	if ((rp = realloc(a->replay, (a->n_replay + 1) * sizeof(*rp))) == NULL)
		return ERR_ALLOC;
	a->replay = rp;
	if ((path = cfg_path_join(a->cfg->state_dir, AGENT_REPLAY_FILE)) ==
	    NULL || b64url_encode(id, 16, &b64) != 0 ||
	    asprintf(&line, "{\"device\":\"%s\",\"id\":\"%s\",\"sent\":%llu}\n",
	    device, b64, (unsigned long long)sent) < 0) {
		line = NULL;
		r = ERR_ALLOC;
		goto out;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line) ||
	    fsync(fd) != 0) {
		r = err_set(e, ERR_IO, "replay store: %s", strerror(errno));
		goto out;
	}
	rp = &a->replay[a->n_replay++];
	snprintf(rp->device, sizeof(rp->device), "%s", device);
	memcpy(rp->id, id, 16);
	r = 0;
 out:
	if (fd >= 0)
		close(fd);
	free(path);
	free(b64);
	free(line);
	return r;
}

/* Lock held: a split-view alert with the sender's head as evidence. */
static void
gossip_alert(struct agent *a, const struct acctlog_head *view,
    const char *sender_device, const char *what)
{
	char key[ALERT_KEY_MAX + 1], msg[ALERT_MESSAGE_MAX + 1], hex[65];
	json_t *det = json_object(), *h = NULL;

	hex_encode(view->hash, 32, hex);
	snprintf(key, sizeof(key), "fork:gossip:%llu:%.16s",
	    (unsigned long long)view->seq, hex);
	snprintf(msg, sizeof(msg), "split view: device %.16s was shown a log "
	    "of %s at seq %llu that %s", sender_device, a->reg.account,
	    (unsigned long long)view->seq, what);
	if (det != NULL) {
		if (a->reg.log.has_head &&
		    acctlog_head_to_json(&a->reg.log.head, &h, NULL) == 0)
			json_object_set_new(det, "verified_head", h);
		h = NULL;
		if (acctlog_head_to_json(view, &h, NULL) == 0)
			json_object_set_new(det, "conflicting_head", h);
	}
	agent_raise(a, ALERT_FORK, key, NULL, NULL, msg, det);
}

/*
 * Check 7 for the own account (lock held): the sender's view, signed by
 * the pinned directory key, must agree with the verified log.  Another
 * hash at a seq this device verified is a split view (alert, reject).  A
 * newer view wakes the watcher and answers "try again" (ERR_TIMEOUT: the
 * message is neither accepted nor recorded); if the directory still does
 * not show that seq after a full check, the watcher alerts, and from then
 * on such messages are rejected (ERR_STALE).
 */
static int
open_gossip(void *arg, const char *sender_account, const char *sender_device,
    const struct acctlog_head *views, size_t n_views, struct err_ctx *e)
{
	struct open_ctx *oc = arg;
	struct agent *a = oc->a;
	const struct acctlog_head *v;
	const uint8_t *known = NULL;
	static const uint8_t zero[32];
	size_t i, k;

	(void)sender_account;
	for (i = 0; i < n_views; i++) {
		v = &views[i];
		if (strcmp(v->account, a->reg.account) != 0)
			continue;
		if (acctlog_head_verify(v, a->dir_pub, NULL, e) != 0)
			return err_set(e, ERR_SIGNATURE, "the sender's view of "
			    "%s is not signed by the pinned directory key",
			    a->reg.account);
		if (v->seq > a->reg.log.seq) {
			if (a->gossip_alerted && a->gossip_head.seq <= v->seq)
				return err_set(e, ERR_STALE, "the directory "
				    "does not show this device the log of %s "
				    "at seq %llu that the sender saw",
				    a->reg.account,
				    (unsigned long long)v->seq);
			if (!a->gossip_pending || v->seq > a->gossip_head.seq) {
				a->gossip_head = *v;
				snprintf(a->gossip_device,
				    sizeof(a->gossip_device), "%s",
				    sender_device);
				a->gossip_checks = a->checks;
				a->gossip_pending = 1;
			}
			a->refresh = 1;
			pthread_cond_signal(&a->wake_watch);
			return err_set(e, ERR_TIMEOUT, "the sender saw a newer "
			    "log of %s (seq %llu, this device %llu): checking "
			    "the directory, try again shortly", a->reg.account,
			    (unsigned long long)v->seq,
			    (unsigned long long)a->reg.log.seq);
		}
		if (v->seq == a->reg.log.seq)
			known = a->reg.log.hash;
		else if (v->seq == 0)
			known = zero;
		else
			for (k = 0, known = NULL; k < a->reg.log.n_history; k++)
				if (a->reg.log.history[k].seq == v->seq)
					known = a->reg.log.history[k].hash;
		if (known != NULL && memcmp(known, v->hash, 32) != 0) {
			gossip_alert(a, v, sender_device, "differs from the one "
			    "this device verified");
			return err_set(e, ERR_FORK, "split view of %s at seq "
			    "%llu", a->reg.account, (unsigned long long)v->seq);
		}
	}
	return 0;
}

void
agent_gossip_check(struct agent *a)
{
	const struct acctlog_entry *h;
	size_t k;

	if (!a->gossip_pending)
		return;
	if (a->reg.log.seq >= a->gossip_head.seq) {
		/* The directory shows it now: the same history? */
		for (k = 0; k < a->reg.log.n_history; k++) {
			h = &a->reg.log.history[k];
			if (h->seq == a->gossip_head.seq &&
			    memcmp(h->hash, a->gossip_head.hash, 32) != 0)
				gossip_alert(a, &a->gossip_head,
				    a->gossip_device, "differs from the one "
				    "the directory shows this device");
		}
		a->gossip_pending = 0;
		a->gossip_alerted = 0;
		return;
	}
	/* A whole check that began after the message, still behind. */
	if (a->checks >= a->gossip_checks + 2 && !a->gossip_alerted) {
		gossip_alert(a, &a->gossip_head, a->gossip_device,
		    "the directory does not show this device");
		a->gossip_alerted = 1;
	}
}

json_t *
agent_op_open(struct agent *a, const json_t *req, struct err_ctx *e)
{
	static const char *const keys[] = { "envelope", "sender_key" };
	struct env_opened opened;
	struct env_open_ops ops;
	struct env_limits lim;
	struct env_self self;
	struct open_ctx oc;
	struct token *t;
	const json_t *env;
	EVP_PKEY *encpub = NULL;
	char *text = NULL, *body = NULL, id_b64[32] = "";
	char *idb = NULL;
	json_t *o = NULL, *payload;
	int r;

	memset(&opened, 0, sizeof(opened));
	if ((r = agent_req_keys(req, keys, 2, e)) != 0)
		return agent_reply_err(r, e);
	env = json_object_get(req, "envelope");
	if (!json_is_object(env))
		return agent_reply_err(err_set(e, ERR_FORMAT, "envelope must be an "
		    "object"), e);
	oc.a = a;
	oc.sender_key_b64 = NULL;
	if (json_object_get(req, "sender_key") != NULL &&
	    (oc.sender_key_b64 = agent_req_str(req, "sender_key", 2048, e)) == NULL)
		return agent_reply_err(ERR_FORMAT, e);
	if (!a->reg_verified)
		return agent_reply_err(err_set(e, ERR_PIN_REQUIRED, "the agent is "
		    "locked: run devid-agent unlock"), e);
	if ((t = agent_token_backend(&a->tok, e)) == NULL)
		return agent_reply_err(e->code != 0 ? e->code : ERR_TOKEN, e);
	memset(&self, 0, sizeof(self));
	self.device = a->tok.device;
	self.alg = a->tok.enc_alg;
	if (self.alg == TOKEN_ENC_HPKE_P256) {
		if ((r = crypto_spki_import(a->tok.enc_spki,
		    a->tok.enc_spki_len, &encpub, e)) != 0 ||
		    (r = crypto_ec_point_get(encpub, self.enc_point)) != 0)
			goto out;
		self.dh = token_hpke_dh;
		self.dh_arg = t;
	} else {
		self.rsa_decrypt = env_token_rsa_decrypt;
		self.rsa_arg = t;
	}
	memset(&ops, 0, sizeof(ops));
	ops.sender_key = open_sender_key;
	ops.replay_check = open_replay_check;
	ops.replay_record = open_replay_record;
	ops.gossip = open_gossip;
	ops.arg = &oc;
	memset(&lim, 0, sizeof(lim));
	lim.max_bytes = SOCK_FRAME_MAX;
	if ((text = json_dumps(env, JSON_COMPACT)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	r = env_open((const uint8_t *)text, strlen(text), &lim, &self, &ops,
	    &opened, e);
	if (r != 0) {
		agent_log(LOG_NOTICE, "open: %s", err_msg(e));
		if (r == ERR_REJECTED)
			err_wrap(e, r, "message rejected");
		goto out;
	}
	if ((r = b64url_encode(opened.payload.body, opened.payload.body_len,
	    &body)) != 0 || (r = b64url_encode(opened.id, sizeof(opened.id),
	    &idb)) != 0)
		goto out;
	snprintf(id_b64, sizeof(id_b64), "%s", idb);
	payload = json_pack("{s:s, s:s, s:s?}", "type", opened.payload.type,
	    "body", body, "name", opened.payload.name);
	o = json_pack("{s:b, s:s, s:{s:s, s:s}, s:I, s:o}", "ok", 1,
	    "msg_id", id_b64, "sender", "account", opened.sender_account,
	    "device", opened.sender_device, "sent", (json_int_t)opened.sent,
	    "payload", payload);
 out:
	if (body != NULL) {
		crypto_wipe(body, strlen(body));
		free(body);
	}
	free(idb);
	free(text);
	EVP_PKEY_free(encpub);
	env_opened_clear(&opened);
	if (o == NULL)
		o = agent_reply_err(r, e);
	return o;
}
