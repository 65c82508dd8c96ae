/*
 * agent-open.c - the `open` request: the recipient checks of PROTOCOL.md
 * section 4 run by env_open_tree() on the request's envelope with the
 * agent's callbacks (sender key, replay store, gossip against the own
 * verified log), the unwrap in the token and the body decrypted in the
 * agent.  Also `gossip_alert`: the conflicting heads of any account that
 * devid-msg found in a message's views or in a contact's log, kept as an
 * alert once they verify.
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
#include "agent-req.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "envelope.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "registry.h"
#include "timefmt.h"
#include "token.h"

/* --- the replay store: ids of opened messages, bound by time --- */

static uint64_t
replay_horizon(const struct agent *a)
{
	return a->replay_horizon_s != 0 ? a->replay_horizon_s :
	    AGENT_REPLAY_HORIZON_S;
}

static size_t
replay_max(const struct agent *a)
{
	return a->replay_max != 0 ? a->replay_max : AGENT_REPLAY_MAX;
}

/* Whether a message sent at `sent` is older than the horizon at now. */
static int
replay_too_old(const struct agent *a, uint64_t sent, uint64_t now)
{
	uint64_t h = replay_horizon(a);

	return now > h && sent < now - h;
}

int
agent_replay_window(const struct agent *a, uint64_t sent, uint64_t now,
    struct err_ctx *e)
{
	char when[TIMEFMT_UTC_LEN];

	if (replay_too_old(a, sent, now)) {
		timefmt_utc(sent, when, sizeof(when));
		return err_set(e, ERR_STALE, "outside the replay window: sent "
		    "%s, more than %llu s (%llu days) ago; ids that old are "
		    "not kept, so such a message is refused", when,
		    (unsigned long long)replay_horizon(a),
		    (unsigned long long)(replay_horizon(a) / 86400));
	}
	if (sent > now && sent - now > AGENT_REPLAY_FUTURE_S) {
		timefmt_utc(sent, when, sizeof(when));
		return err_set(e, ERR_STALE, "outside the replay window: sent "
		    "%s, %llu s ahead of this device's clock (at most %llu s "
		    "are allowed)", when, (unsigned long long)(sent - now),
		    (unsigned long long)AGENT_REPLAY_FUTURE_S);
	}
	return 0;
}

/* Forgets the ids whose messages the window refuses at now. */
static void
replay_prune(struct agent *a, uint64_t now)
{
	size_t i, j;

	for (i = 0, j = 0; i < a->n_replay; i++) {
		if (replay_too_old(a, a->replay[i].sent, now))
			continue;
		if (j != i)
			a->replay[j] = a->replay[i];
		j++;
	}
	a->n_replay = j;
}

/* The line of one id, NUL-terminated, into line. */
static int
replay_line(const struct agent_replay *rp, char *line, size_t len)
{
	char *b64 = NULL;
	int n;

	if (b64url_encode(rp->id, 16, &b64) != 0)
		return ERR_ALLOC;
	n = snprintf(line, len, "{\"device\":\"%s\",\"id\":\"%s\",\"sent\":%llu}"
	    "\n", rp->device, b64, (unsigned long long)rp->sent);
	free(b64);
	return n > 0 && (size_t)n < len ? 0 : ERR_INTERNAL;
}

/* Rewrites the replay store with the ids kept in memory (atomically). */
static int
replay_rewrite(struct agent *a, struct err_ctx *e)
{
	char *path = NULL, line[256];
	struct buf *b = NULL;
	size_t i;
	int r = ERR_ALLOC;

	if ((path = path_join(a->cfg->state_dir, AGENT_REPLAY_FILE)) ==
	    NULL || (b = buf_new(0)) == NULL)
		goto out;
	for (i = 0; i < a->n_replay; i++) {
		if ((r = replay_line(&a->replay[i], line, sizeof(line))) != 0 ||
		    (r = buf_put(b, line, strlen(line))) != 0)
			goto out;
	}
	if ((r = fileio_write_atomic(path, buf_ptr(b), buf_len(b), 0600,
	    e)) != 0)
		goto out;
	a->replay_lines = a->n_replay;
	r = 0;
 out:
	buf_free(b);
	free(path);
	return r;
}

/* Whether the file holds so many lines of forgotten ids that it is
 * rewritten. */
static int
replay_needs_rewrite(const struct agent *a)
{
	return a->replay_lines >= 2 * a->n_replay + AGENT_REPLAY_COMPACT_SLACK;
}

/* Appends rp to the ids in memory. */
static int
replay_remember(struct agent *a, const struct agent_replay *rp)
{
	struct agent_replay *n;
	size_t want;

	if (a->n_replay == a->replay_alloc) {
		want = a->replay_alloc < 64 ? 64 : a->replay_alloc * 2;
		if ((n = realloc(a->replay, want * sizeof(*n))) == NULL)
			return ERR_ALLOC;
		a->replay = n;
		a->replay_alloc = want;
	}
	a->replay[a->n_replay++] = *rp;
	return 0;
}

/*
 * One line of the file into *out: {"device", "id"} and, since the store
 * is bound by time, "sent" (absent: sent_default).  ERR_FORMAT for a
 * damaged line.
 */
static int
replay_parse_line(const char *text, size_t len, uint64_t sent_default,
    struct agent_replay *out)
{
	json_t *o = NULL, *sent;
	const char *dev;
	int r = ERR_FORMAT;

	memset(out, 0, sizeof(*out));
	if (devrec_json_load(text, len, 1024, &o, "replay", NULL) != 0)
		return ERR_FORMAT;
	if ((dev = json_string_value(json_object_get(o, "device"))) == NULL ||
	    !devrec_id_valid(dev) ||
	    devrec_json_b64_exact(o, "id", out->id, 16, "replay", NULL) != 0)
		goto out;
	snprintf(out->device, sizeof(out->device), "%s", dev);
	out->sent = sent_default;
	if ((sent = json_object_get(o, "sent")) != NULL) {
		if (!json_is_integer(sent) || json_integer_value(sent) < 0)
			goto out;
		out->sent = (uint64_t)json_integer_value(sent);
	}
	r = 0;
 out:
	json_decref(o);
	return r;
}

int
agent_replay_load(struct agent *a, struct err_ctx *e)
{
	struct agent_replay rp;
	char *path, *text = NULL;
	size_t len = 0, pos = 0, n;
	uint64_t now = (uint64_t)time(NULL);
	int r;

	if ((path = path_join(a->cfg->state_dir, AGENT_REPLAY_FILE)) ==
	    NULL)
		return ERR_ALLOC;
	r = fileio_read(path, AGENT_REPLAY_FILE_MAX, 0, &text, &len, e);
	free(path);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		return 0;
	}
	if (r != 0)
		return r;
	while (pos < len) {
		for (n = 0; pos + n < len && text[pos + n] != '\n'; n++)
			;
		if (n > 0) {
			a->replay_lines++;
			/* A damaged line (a write cut short) is skipped. */
			if (replay_parse_line(text + pos, n, now, &rp) == 0 &&
			    !replay_too_old(a, rp.sent, now) &&
			    (r = replay_remember(a, &rp)) != 0)
				goto out;
		}
		pos += n + 1;
	}
	r = replay_needs_rewrite(a) ? replay_rewrite(a, e) : 0;
 out:
	free(text);
	return r;
}

int
agent_replay_check(struct agent *a, const char *device,
    const uint8_t id[16], uint64_t sent, uint64_t now, struct err_ctx *e)
{
	size_t i;
	int r;

	/* Outside the window the store may have forgotten the id. */
	if ((r = agent_replay_window(a, sent, now, e)) != 0)
		return r;
	for (i = 0; i < a->n_replay; i++)
		if (memcmp(a->replay[i].id, id, 16) == 0 &&
		    strcmp(a->replay[i].device, device) == 0)
			return err_set(e, ERR_REPLAY, "message id seen before");
	return 0;
}

int
agent_replay_room(struct agent *a, uint64_t now, struct err_ctx *e)
{
	char when[TIMEFMT_UTC_LEN];
	uint64_t oldest;
	size_t i;

	replay_prune(a, now);
	if (a->n_replay < replay_max(a))
		return 0;
	for (i = 0, oldest = UINT64_MAX; i < a->n_replay; i++)
		if (a->replay[i].sent < oldest)
			oldest = a->replay[i].sent;
	timefmt_utc(oldest + replay_horizon(a) + 1, when, sizeof(when));
	return err_set(e, ERR_QUOTA, "the replay store is full: it holds the "
	    "ids of %zu messages opened from the last %llu days, its limit; "
	    "no message is opened until the oldest leaves the window at %s "
	    "(the messages stay in the inbox: try again then)", a->n_replay,
	    (unsigned long long)(replay_horizon(a) / 86400), when);
}

int
agent_replay_record(struct agent *a, const char *device,
    const uint8_t id[16], uint64_t sent, uint64_t now, struct err_ctx *e)
{
	struct agent_replay rp;
	char *path = NULL, line[256];
	int fd = -1, r = ERR_IO;
	size_t len;

	if (!devrec_id_valid(device))
		return err_set(e, ERR_INVALID_ARG, "replay store: bad device "
		    "id");
	if ((r = agent_replay_room(a, now, e)) != 0)
		return r;
	memset(&rp, 0, sizeof(rp));
	snprintf(rp.device, sizeof(rp.device), "%s", device);
	memcpy(rp.id, id, 16);
	rp.sent = sent;
	if ((r = replay_line(&rp, line, sizeof(line))) != 0)
		return r;
	len = strlen(line);
	if ((path = path_join(a->cfg->state_dir, AGENT_REPLAY_FILE)) == NULL)
		return ERR_ALLOC;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 ||
	    write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
		r = err_set(e, ERR_IO, "replay store: %s", strerror(errno));
		goto out;
	}
	a->replay_lines++;
	if ((r = replay_remember(a, &rp)) != 0)
		goto out;
	/* The id is on disk: a failed rewrite only leaves the file long. */
	if (replay_needs_rewrite(a) && replay_rewrite(a, e) != 0) {
		agent_log(LOG_WARNING, "replay store: %s", err_msg(e));
		err_clear(e);
	}
	r = 0;
 out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

/* --- open: env_open_tree with the agent's callbacks --- */

struct open_ctx {
	struct agent *a;
	const char *sender_key_b64;     /* from the request, or NULL */
	uint64_t sent;                  /* the envelope's, for check 4 */
	uint64_t now;
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

	return agent_replay_check(oc->a, device, id, oc->sent, oc->now, e);
}

static int
open_replay_record(void *arg, const char *device, const uint8_t id[16],
    uint64_t sent, struct err_ctx *e)
{
	struct open_ctx *oc = arg;
	int r;

	r = agent_replay_record(oc->a, device, id, sent, oc->now, e);
	/* agent_op_open() made room under the lock: should the store still
	 * be full, the message is not opened now, nor rejected. */
	return r == ERR_QUOTA ? ERR_IO : r;
}

/* Lock held: a split-view alert with the sender's head as evidence. */
static void
gossip_alert(struct agent *a, const struct acctlog_head *view,
    const char *sender_device, const char *what)
{
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1],
	    hex[65];
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
	agent_raise(a, AGENT_ALERT_FORK, key, NULL, NULL, msg, det);
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

int
agent_open_args(const json_t *req, struct err_ctx *e)
{
	static const char *const keys[] = { "envelope", "sender_key" };
	int r;

	if ((r = agent_req_keys(req, keys, 2, e)) != 0)
		return r;
	if (!json_is_object(json_object_get(req, "envelope")))
		return err_set(e, ERR_FORMAT, "envelope must be an object");
	if (json_object_get(req, "sender_key") != NULL &&
	    agent_req_str(req, "sender_key", 2048, e) == NULL)
		return ERR_FORMAT;
	return 0;
}

/*
 * The receiving device for env_open(): the token backend t decrypts (ECDH
 * for hpke-p256, RSA-OAEP otherwise).  For hpke-p256 the token's public
 * encryption key is imported into *encpub (the caller frees it, also on
 * failure) and its point copied into self->enc_point.
 */
static int
open_self(struct agent *a, struct token *t, struct env_self *self,
    EVP_PKEY **encpub, struct err_ctx *e)
{
	int r;

	memset(self, 0, sizeof(*self));
	self->device = a->tok.device;
	self->alg = a->tok.enc_alg;
	if (self->alg != TOKEN_ENC_HPKE_P256) {
		self->rsa_decrypt = env_token_rsa_decrypt;
		self->rsa_arg = t;
		return 0;
	}
	if ((r = crypto_spki_import(a->tok.enc_spki, a->tok.enc_spki_len,
	    encpub, e)) != 0 ||
	    (r = crypto_ec_point_get(*encpub, self->enc_point)) != 0)
		return r;
	self->dh = token_hpke_dh;
	self->dh_arg = t;
	return 0;
}

/* The characters of a blob key (32 bytes) in base64url. */
#define OPEN_BLOB_KEY_CHARS 43

/*
 * The payload's attachments (docs/protocol.md section 8.2) as the answer's
 * "blobs" array in *out, keys in base64url: the client on the socket is
 * the user's own program and fetches the blobs itself, as it gets the
 * body.  The encoded keys are wiped after use.  0 or ERR_ALLOC.
 */
static int
open_blobs(const struct env_payload *p, json_t **out)
{
	char key[OPEN_BLOB_KEY_CHARS + 1];
	json_t *arr, *o;
	size_t i;
	int r = ERR_ALLOC;

	if ((arr = json_array()) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < p->n_blobs; i++) {
		b64url_encode_buf(p->blobs[i].key, sizeof(p->blobs[i].key),
		    key);
		key[OPEN_BLOB_KEY_CHARS] = '\0';
		o = json_pack("{s:s, s:I, s:s%, s:s, s:s}", "hash",
		    p->blobs[i].hash, "size", (json_int_t)p->blobs[i].size,
		    "key", key, (size_t)OPEN_BLOB_KEY_CHARS, "type",
		    p->blobs[i].type, "name", p->blobs[i].name);
		crypto_wipe(key, sizeof(key));
		if (o == NULL || json_array_append_new(arr, o) != 0)
			goto out;
	}
	*out = arr;
	arr = NULL; /* transferred */
	r = 0;
 out:
	json_decref(arr);
	return r;
}

/*
 * The answer to an `open` that was accepted, in *out: the message id, the
 * sender, the time and the payload with its body in base64url, and its
 * attachments when it names any.  The encoded body is wiped after use.
 */
static int
open_answer(const struct env_opened *opened, json_t **out)
{
	char *body = NULL, *idb = NULL;
	json_t *payload, *blobs = NULL, *o = NULL;
	int r;

	if ((r = b64url_encode(opened->payload.body, opened->payload.body_len,
	    &body)) != 0 || (r = b64url_encode(opened->id,
	    sizeof(opened->id), &idb)) != 0)
		goto out;
	if (opened->payload.n_blobs > 0 &&
	    (r = open_blobs(&opened->payload, &blobs)) != 0)
		goto out;
	/* The sender's checkpoint, when it sent one, goes to devid-msg,
	 * which compares it with its own (docs/protocol.md section 7.7). */
	payload = json_pack("{s:s, s:s, s:s?, s:s?, s:o*}", "type",
	    opened->payload.type, "body", body, "name", opened->payload.name,
	    "checkpoint", opened->payload.checkpoint, "blobs", blobs);
	blobs = NULL; /* transferred, or freed by a failed json_pack */
	o = json_pack("{s:b, s:s, s:{s:s, s:s}, s:I, s:o}", "ok", 1,
	    "msg_id", idb, "sender", "account", opened->sender_account,
	    "device", opened->sender_device, "sent", (json_int_t)opened->sent,
	    "payload", payload);
	if (o == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	*out = o;
	r = 0;
 out:
	if (body != NULL) {
		crypto_wipe(body, strlen(body));
		free(body);
	}
	free(idb);
	return r;
}

json_t *
agent_op_open(struct agent *a, const json_t *req, struct err_ctx *e)
{
	struct env_opened opened;
	struct env_open_ops ops;
	struct env_limits lim;
	struct env_self self;
	struct open_ctx oc;
	struct token *t;
	EVP_PKEY *encpub = NULL;
	json_t *o = NULL;
	int r;

	memset(&opened, 0, sizeof(opened));
	oc.a = a;
	/* NULL when absent: agent_open_args() let only a string through. */
	oc.sender_key_b64 = json_string_value(json_object_get(req,
	    "sender_key"));
	/* Check 1 parses the tree strictly before check 4 looks at this: by
	 * then "sent" is an integer from 0 to 2^53. */
	oc.sent = (uint64_t)json_integer_value(json_object_get(
	    json_object_get(req, "envelope"), "sent"));
	oc.now = (uint64_t)time(NULL);
	/* A full store opens nothing (a local condition: try again later),
	 * before any token operation. */
	if ((r = agent_replay_room(a, oc.now, e)) != 0) {
		agent_log(LOG_WARNING, "open: %s", err_msg(e));
		return agent_reply_err(r, e);
	}
	if ((t = agent_token_backend(&a->tok, e)) == NULL)
		return agent_reply_err(e->code != 0 ? e->code : ERR_TOKEN, e);
	if ((r = open_self(a, t, &self, &encpub, e)) != 0)
		goto out;
	memset(&ops, 0, sizeof(ops));
	ops.sender_key = open_sender_key;
	ops.replay_check = open_replay_check;
	ops.replay_record = open_replay_record;
	ops.gossip = open_gossip;
	ops.arg = &oc;
	memset(&lim, 0, sizeof(lim));
	lim.max_bytes = AGENT_SOCK_FRAME_MAX;
	/* The envelope is parsed once, from the request's tree. */
	r = env_open_tree(json_object_get(req, "envelope"), &lim, &self, &ops,
	    &opened, e);
	if (r != 0) {
		agent_log(LOG_NOTICE, "open: %s", err_msg(e));
		if (r == ERR_REJECTED)
			err_wrap(e, r, "message rejected");
		goto out;
	}
	r = open_answer(&opened, &o);
 out:
	EVP_PKEY_free(encpub);
	env_opened_clear(&opened);
	if (o == NULL)
		o = agent_reply_err(r, e);
	return o;
}

/* --- gossip_alert: conflicting heads that a local client found --- */

#define REPORT_SPLIT_VIEW "split_view"
#define REPORT_FORK "fork"
#define REPORT_ROLLBACK "rollback"

/*
 * One signed head of a gossip_alert request, in *out: parsed strictly (the
 * fields of PROTOCOL.md section 3 and nothing else), of account, and
 * verified under the pinned directory key.  ERR_FORMAT for a malformed
 * head or one of another account, ERR_REJECTED for one that does not
 * verify.  *out is meaningful only on success.
 */
static int
report_head(struct agent *a, const json_t *req, const char *field,
    const char *account, struct acctlog_head *out, struct err_ctx *e)
{
	const json_t *o = json_object_get(req, field);
	struct err_ctx local;
	int r;

	err_clear(&local);
	if (!json_is_object(o))
		return err_set(e, ERR_FORMAT, "%s must be a signed head (an "
		    "object)", field);
	if (acctlog_head_from_json(o, out, &local) != 0)
		return err_set(e, ERR_FORMAT, "%s: %s", field,
		    err_msg(&local));
	if (strcmp(out->account, account) != 0)
		return err_set(e, ERR_FORMAT, "%s is a head of %s, not of %s",
		    field, out->account, account);
	if ((r = acctlog_head_verify(out, a->dir_pub, NULL, &local)) != 0)
		return err_set(e, r == ERR_SIGNATURE || r == ERR_WRONG_KEY ?
		    ERR_REJECTED : r, "%s: %s", field, err_msg(&local));
	return 0;
}

/*
 * Whether the verified heads v (what the reporter verified) and c (what
 * conflicts with it) prove by themselves the conflict that kind names
 * (what: its name for people, used in the reason).  A fork or split view:
 * the same seq with different hashes (one seq, one history).  A rollback:
 * a smaller seq signed strictly later than the larger one (an older head
 * signed earlier may be replayed by anyone and proves nothing against the
 * directory).  0 or ERR_REJECTED with the reason.
 */
static int
report_conflict(const char *kind, const char *what,
    const struct acctlog_head *v, const struct acctlog_head *c,
    struct err_ctx *e)
{
	if (strcmp(kind, REPORT_ROLLBACK) == 0) {
		if (c->seq >= v->seq)
			return err_set(e, ERR_REJECTED, "not a rollback: the "
			    "conflicting head (seq %llu) is not older than the "
			    "verified head (seq %llu)",
			    (unsigned long long)c->seq,
			    (unsigned long long)v->seq);
		if (c->time <= v->time)
			return err_set(e, ERR_REJECTED, "not a rollback: the "
			    "head at seq %llu was signed at %llu, not after the "
			    "head at seq %llu (signed at %llu); an older signed "
			    "head may be replayed by anyone and proves nothing",
			    (unsigned long long)c->seq,
			    (unsigned long long)c->time,
			    (unsigned long long)v->seq,
			    (unsigned long long)v->time);
		return 0;
	}
	if (c->seq != v->seq)
		return err_set(e, ERR_REJECTED, "not a %s that the heads "
		    "prove: they are at seq %llu and %llu, and two signed heads "
		    "conflict by themselves only at the same seq", what,
		    (unsigned long long)v->seq, (unsigned long long)c->seq);
	if (memcmp(c->hash, v->hash, 32) == 0)
		return err_set(e, ERR_REJECTED, "not a %s: both heads show the "
		    "same log at seq %llu", what, (unsigned long long)v->seq);
	return 0;
}

/*
 * The alert key of a reported conflict: the alert kind and H(the account
 * and the two (seq, hash) pairs), without times or signatures, so that the
 * same two histories reported again (the directory signs fresh heads of
 * them every time) find the alert already open.  For a fork the pair is
 * taken in hash order: either side may be the one the reporter verified.
 */
static int
report_key(const char *alert_kind, const struct acctlog_head *v,
    const struct acctlog_head *c, char key[AGENT_ALERT_KEY_MAX + 1])
{
	const struct acctlog_head *first = v, *second = c;
	struct buf *b = NULL;
	uint8_t d[32];
	char hex[65];
	int r = ERR_ALLOC;

	if (strcmp(alert_kind, AGENT_ALERT_FORK) == 0 &&
	    memcmp(v->hash, c->hash, 32) > 0) {
		first = c;
		second = v;
	}
	if ((b = buf_new(1024)) == NULL)
		goto out;
	if ((r = buf_put_lp_str(b, alert_kind)) != 0 ||
	    (r = buf_put_lp_str(b, v->account)) != 0 ||
	    (r = buf_put_u64(b, first->seq)) != 0 ||
	    (r = buf_put_lp(b, first->hash, 32)) != 0 ||
	    (r = buf_put_u64(b, second->seq)) != 0 ||
	    (r = buf_put_lp(b, second->hash, 32)) != 0 ||
	    (r = crypto_sha256(buf_ptr(b), buf_len(b), d)) != 0)
		goto out;
	hex_encode(d, 16, hex);
	snprintf(key, AGENT_ALERT_KEY_MAX + 1, "%s:report:%s", alert_kind, hex);
	r = 0;
 out:
	buf_free(b);
	return r;
}

/* The alert's details: what was reported, both heads, the reporter. */
static json_t *
report_details(const char *kind, const struct acctlog_head *v,
    const struct acctlog_head *c, const char *reporter, struct err_ctx *e)
{
	json_t *det = NULL, *vj = NULL, *cj = NULL;

	if (acctlog_head_to_json(v, &vj, e) != 0 ||
	    acctlog_head_to_json(c, &cj, e) != 0 ||
	    (det = json_object()) == NULL ||
	    json_object_set_new(det, "report", json_string(kind)) != 0 ||
	    json_object_set(det, "verified_head", vj) != 0 ||
	    json_object_set(det, "conflicting_head", cj) != 0 ||
	    (reporter != NULL && json_object_set_new(det, "reporter",
	    json_string(reporter)) != 0)) {
		json_decref(det);
		det = NULL;
	}
	json_decref(vj);
	json_decref(cj);
	return det;
}

/*
 * The fields of a gossip_alert request: account, kind and the optional
 * reporter (NULL when absent), borrowed from req.  ERR_FORMAT with e set.
 */
static int
report_args(const json_t *req, const char **account, const char **kind,
    const char **reporter, struct err_ctx *e)
{
	static const char *const keys[] = { "account", "kind",
	    "verified_head", "conflicting_head", "reporter" };
	int r;

	*reporter = NULL;
	if ((r = agent_req_keys(req, keys, sizeof(keys) / sizeof(keys[0]),
	    e)) != 0)
		return r;
	if ((*account = agent_req_str(req, "account", ACCTLOG_ACCOUNT_MAX,
	    e)) == NULL ||
	    (*kind = agent_req_str(req, "kind", 16, e)) == NULL ||
	    (json_object_get(req, "reporter") != NULL &&
	    (*reporter = agent_req_str(req, "reporter", DEVREC_ID_HEX_LEN,
	    e)) == NULL))
		return ERR_FORMAT;
	if ((r = devrec_account_check(*account, e)) != 0)
		return r;
	if (*reporter != NULL && !devrec_id_valid(*reporter))
		return err_set(e, ERR_FORMAT, "reporter must be a device id "
		    "(64 lowercase hex digits)");
	return 0;
}

/* The alert kind of a reported kind, and its name for people. */
static int
report_kind(const char *kind, const char **alert_kind, const char **what,
    struct err_ctx *e)
{
	if (strcmp(kind, REPORT_SPLIT_VIEW) == 0) {
		*alert_kind = AGENT_ALERT_FORK;
		*what = "split view";
	} else if (strcmp(kind, REPORT_FORK) == 0) {
		*alert_kind = AGENT_ALERT_FORK;
		*what = "fork";
	} else if (strcmp(kind, REPORT_ROLLBACK) == 0) {
		*alert_kind = AGENT_ALERT_ROLLBACK;
		*what = "rollback";
	} else
		return err_set(e, ERR_FORMAT, "kind must be split_view, fork "
		    "or rollback");
	return 0;
}

/* The alert's message for the verified heads v and c, into msg. */
static void
report_message(const char *alert_kind, const char *what,
    const char *account, const struct acctlog_head *v,
    const struct acctlog_head *c, const char *reporter, char *msg,
    size_t msg_len)
{
	char vhex[65], chex[65], vwhen[32], cwhen[32];

	hex_encode(v->hash, 32, vhex);
	hex_encode(c->hash, 32, chex);
	if (strcmp(alert_kind, AGENT_ALERT_ROLLBACK) == 0) {
		timefmt_utc(v->time, vwhen, sizeof(vwhen));
		timefmt_utc(c->time, cwhen, sizeof(cwhen));
		snprintf(msg, msg_len, "rollback of %s: the directory "
		    "signed seq %llu (at %s) after it had signed seq %llu (at "
		    "%s)%s%.16s; reported by a local client, both heads "
		    "verified under the pinned directory key", account,
		    (unsigned long long)c->seq, cwhen,
		    (unsigned long long)v->seq, vwhen,
		    reporter != NULL ? "; shown to device " : "",
		    reporter != NULL ? reporter : "");
	} else {
		snprintf(msg, msg_len, "%s of %s: the directory signed "
		    "two different logs at seq %llu: hash %.16s verified by "
		    "this device, hash %.16s %s%.16s; reported by a local "
		    "client, both heads verified under the pinned directory "
		    "key", what, account, (unsigned long long)v->seq, vhex,
		    chex, reporter != NULL ? "shown to device " :
		    "shown later", reporter != NULL ? reporter : "");
	}
}

json_t *
agent_op_gossip_alert(struct agent *a, const json_t *req, struct err_ctx *e)
{
	struct acctlog_head v, c;
	const struct agent_alert *al = NULL;
	const char *account = NULL, *kind = NULL, *reporter = NULL;
	const char *alert_kind = NULL, *what = NULL;
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];
	char id[AGENT_ALERT_ID_LEN + 1];
	json_t *det = NULL, *o = NULL;
	int r;

	if ((r = report_args(req, &account, &kind, &reporter, e)) != 0 ||
	    (r = report_kind(kind, &alert_kind, &what, e)) != 0)
		goto out;
	if ((r = report_head(a, req, "verified_head", account, &v, e)) != 0 ||
	    (r = report_head(a, req, "conflicting_head", account, &c,
	    e)) != 0 ||
	    (r = report_conflict(kind, what, &v, &c, e)) != 0 ||
	    (r = report_key(alert_kind, &v, &c, key)) != 0)
		goto out;
	report_message(alert_kind, what, account, &v, &c, reporter, msg,
	    sizeof(msg));
	if ((det = report_details(kind, &v, &c, reporter, e)) == NULL) {
		r = e->code != 0 ? e->code : ERR_ALLOC;
		goto out;
	}
	r = agent_raise_alert(a, alert_kind, key, account, NULL, NULL, msg,
	    det, &al, e);
	det = NULL;	/* transferred */
	if (r < 0)
		goto out;
	if (al == NULL) {
		r = err_set(e, ERR_INTERNAL, "the alert was not kept");
		goto out;
	}
	memcpy(id, al->id, sizeof(id));
	o = json_pack("{s:b, s:s, s:b}", "ok", 1, "alert", id, "new", r == 1);
	if (o == NULL)
		r = ERR_ALLOC;
 out:
	json_decref(det);
	if (o == NULL) {
		if (r == ERR_FORMAT || r == ERR_REJECTED)
			agent_log(LOG_NOTICE, "gossip_alert refused: %s",
			    err_msg(e));
		o = agent_reply_err(r, e);
	}
	return o;
}
