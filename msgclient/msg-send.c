/*
 * msg-send.c - devid-msg send: verify every recipient device, upload the
 * attachment (if any), seal once, have the agent sign, post.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "envelope.h"
#include "errors.h"
#include "msg-agent.h"
#include "msg-blob.h"
#include "msg-contacts.h"
#include "msg-progress.h"
#include "msg.h"
#include "registry.h"
#include "token.h"

#define TYPE_TEXT "text/plain; charset=utf-8"

/* Reads at most max bytes from fd into a new buffer (caller wipes). */
static int
read_bounded(int fd, const char *what, size_t max, uint8_t **out,
    size_t *out_len, struct err_ctx *e)
{
	uint8_t *p = NULL, *q;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (len == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > max + 1)
				cap = max + 1;
			if ((q = realloc(p, cap)) == NULL) {
				free(p);
				return ERR_ALLOC;
			}
			p = q;
		}
		if ((n = read(fd, p + len, cap - len)) < 0) {
			if (errno == EINTR)
				continue;
			free(p);
			return err_set(e, ERR_IO, "reading %s: %s", what,
			    strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			crypto_wipe(p, len);
			free(p);
			return err_set(e, ERR_TOO_LARGE, "%s is larger than %zu "
			    "bytes", what, max);
		}
	}
	*out = p;
	*out_len = len;
	return 0;
}

/*
 * The message text: -m, or standard input when neither -m nor -f was
 * given, into a new buffer *body (caller wipes; NULL and 0 for a file
 * sent without a caption).
 */
static int
read_text(const struct msg_cli *cli, uint8_t **body, size_t *len,
    struct err_ctx *e)
{
	*body = NULL;
	*len = 0;
	if (cli->text != NULL) {
		*len = strlen(cli->text);
		if (*len > MSG_BODY_MAX)
			return err_set(e, ERR_TOO_LARGE, "the message is "
			    "larger than %zu bytes (send a file with -f)",
			    MSG_BODY_MAX);
		if ((*body = malloc(*len + 1)) == NULL)
			return ERR_ALLOC;
		memcpy(*body, cli->text, *len);
		return 0;
	}
	if (cli->file != NULL)
		return 0;
	if (isatty(STDIN_FILENO))
		fprintf(stderr, "devid-msg: type the message, end with "
		    "Ctrl-D\n");
	return read_bounded(STDIN_FILENO, "standard input", MSG_BODY_MAX,
	    body, len, e);
}

/*
 * The inner payload: the text, with blob (may be NULL) as its one
 * attachment (the text is then its caption, possibly empty).
 */
static int
make_payload(const uint8_t *body, size_t len, const struct env_blob_ref *blob,
    uint8_t **out, size_t *out_len, struct err_ctx *e)
{
	struct env_payload pl;

	memset(&pl, 0, sizeof(pl));
	pl.type = TYPE_TEXT;
	pl.body = (uint8_t *)(uintptr_t)(body != NULL ? body :
	    (const uint8_t *)"");
	pl.body_len = len;
	pl.blobs = (struct env_blob_ref *)(uintptr_t)blob;
	pl.n_blobs = blob != NULL ? 1 : 0;
	return env_payload_encode_full(&pl, out, out_len, e);
}

/*
 * With witnesses configured, adds the checkpoint this device keeps (as
 * the logs just read left it) to the encoded payload *p (replaced; the
 * old one wiped), PROTOCOL.md section 7.7.  Without, or before any
 * checkpoint was kept, *p stays as it is.
 */
static int
payload_add_checkpoint(struct msg_ctx *c, uint8_t **p, size_t *len,
    struct err_ctx *e)
{
	struct env_payload pl;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int r;

	if (c->tlog == NULL || !c->tlog_st->have)
		return 0;
	if ((r = env_payload_parse(*p, *len, &pl, e)) != 0)
		return r;
	/* Every member is kept (blobs too); only the checkpoint is set. */
	free(pl.checkpoint);
	if ((pl.checkpoint = strdup(c->tlog_st->note)) == NULL)
		r = ERR_ALLOC;
	else
		r = env_payload_encode_full(&pl, &out, &out_len, e);
	env_payload_clear(&pl);
	if (r != 0)
		return r;
	crypto_wipe(*p, *len);
	free(*p);
	*p = out;
	*len = out_len;
	return 0;
}

/* A recipient key list that owns its public keys. */
struct rcpts {
	struct env_recipient_key keys[ENV_MAX_RECIPIENTS];
	size_t n;
};

static void
rcpts_clear(struct rcpts *rc)
{
	size_t i;

	for (i = 0; i < rc->n; i++)
		EVP_PKEY_free(rc->keys[i].enc_pub);
	rc->n = 0;
}

/* Adds rec (borrowed: rec->device must outlive rc) as a recipient. */
static int
rcpts_add(struct rcpts *rc, const struct devrec *rec, struct err_ctx *e)
{
	struct env_recipient_key *k;
	size_t i;
	int r;

	for (i = 0; i < rc->n; i++)
		if (strcmp(rc->keys[i].device, rec->device) == 0)
			return 0;
	if (rc->n == ENV_MAX_RECIPIENTS)
		return err_set(e, ERR_TOO_LARGE, "more than %d recipient "
		    "devices", ENV_MAX_RECIPIENTS);
	k = &rc->keys[rc->n];
	memset(k, 0, sizeof(*k));
	if ((r = token_enc_alg_parse(rec->enc_alg, &k->alg)) != 0)
		return err_set(e, r, "device %.16s has an unknown encryption "
		    "algorithm", rec->device);
	if ((r = crypto_spki_import(rec->enc_pub, rec->enc_pub_len,
	    &k->enc_pub, e)) != 0)
		return r;
	k->device = rec->device;
	rc->n++;
	return 0;
}

static int
seal_sign(void *arg, const uint8_t *tr, size_t len, uint8_t sig[ENV_SIG_LEN],
    struct err_ctx *e)
{
	struct msg_ctx *c = arg;

	return msg_agent_sign(c->agent, tr, len, sig, e);
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/*
 * The own account's devices to encrypt to: active in the verified own
 * log, approved on this device by the agent, with the key the agent
 * knows.  Others are named on standard error and skipped.
 */
static int
own_recipients(struct msg_ctx *c, struct rcpts *rc, size_t *skipped,
    struct err_ctx *e)
{
	json_t *req = NULL, *resp = NULL, *devs, *d;
	const struct acctlog_device *ad;
	char short_id[DEVREC_SHORT_ID_LEN + 1], *enc = NULL;
	const char *state;
	size_t i, j;
	int r = ERR_INTERNAL, ok;

	*skipped = 0;
	if ((req = json_pack("{s:s}", "op", "devices")) == NULL)
		return ERR_ALLOC;
	if ((r = msg_agent_call(c->agent, req, &resp, e)) != 0)
		goto out;
	devs = json_object_get(resp, "devices");
	for (i = 0; i < c->own.n_devices; i++) {
		ad = &c->own.devices[i];
		if (strcmp(ad->rec.device, c->device) == 0)
			continue;
		free(enc);
		enc = NULL;
		if ((r = b64url_encode(ad->rec.enc_pub, ad->rec.enc_pub_len,
		    &enc)) != 0)
			goto out;
		ok = 0;
		state = "unknown";
		json_array_foreach(devs, j, d) {
			if (strcmp(jstr(d, "device"), ad->rec.device) != 0)
				continue;
			state = jstr(d, "state");
			/* The agent's key must be the one in the log. */
			ok = strcmp(state, "approved") == 0 &&
			    json_is_true(json_object_get(d, "active")) &&
			    strcmp(jstr(d, "enc_pub"), enc) == 0;
			break;
		}
		if (ok) {
			if ((r = rcpts_add(rc, &ad->rec, e)) != 0)
				goto out;
			continue;
		}
		(*skipped)++;
		(void)devrec_short_id(ad->rec.device, short_id);
		fprintf(stderr, "devid-msg: not encrypting to your device '%s' "
		    "%s: it is %s on this device (if it is yours: devid-agent "
		    "approve %s)\n", ad->rec.label, short_id,
		    strcmp(state, "approved") == 0 ? "approved but not in the "
		    "agent's verified log yet" : state, short_id);
		msg_log(c, "send: skipped own device %s (%s)", ad->rec.device,
		    state);
	}
	r = 0;
 out:
	free(enc);
	json_decref(req);
	json_decref(resp);
	return r;
}

/*
 * Brings the pin of every recipient account other than the own one up to
 * date (pins[0..*n_pins), which the caller clears, also on failure): the
 * log verified against the pin, or on first contact pinned whole, and
 * then listed.  An account without an active device is an error.
 */
static int
pin_recipients(struct msg_ctx *c, const struct msg_cli *cli,
    struct registry *pins, size_t *n_pins, struct err_ctx *e)
{
	struct registry *pin;
	char msg[512];
	size_t i, j;
	int r, first;

	for (i = 0; i < cli->n_accounts; i++) {
		if (strcmp(cli->accounts[i], c->account) == 0)
			continue;
		pin = &pins[*n_pins];
		first = 0;
		if ((r = msg_contact_refresh(c, cli->accounts[i], pin, &first,
		    e)) != 0) {
			reg_clear(pin);
			return r;
		}
		(*n_pins)++;
		if (pin->log.n_devices == 0)
			return err_set(e, ERR_NOT_FOUND, "%s has no active "
			    "device to send to", cli->accounts[i]);
		if (!first || cli->quiet)
			continue;
		printf("First contact with %s: pinned its %zu device(s):\n",
		    cli->accounts[i], pin->log.n_devices);
		for (j = 0; j < pin->log.n_devices; j++) {
			msg_contact_explain(pin, pin->log.devices[j].rec.device,
			    msg, sizeof(msg));
			printf("  %s\n", msg);
		}
	}
	return 0;
}

/*
 * Any active device of a recipient that the user has not accepted stops
 * the send before anything is sealed: each is named with what to do.
 * ERR_DENIED then.
 */
static int
refuse_unaccepted(struct msg_ctx *c, const struct registry *pins,
    size_t n_pins, struct err_ctx *e)
{
	const char *dev;
	char msg[512];
	size_t i, j;
	int here, blocked = 0;

	for (i = 0; i < n_pins; i++) {
		here = 0;
		for (j = 0; j < pins[i].log.n_devices; j++) {
			dev = pins[i].log.devices[j].rec.device;
			if (msg_contact_accepted(&pins[i], dev))
				continue;
			msg_contact_explain(&pins[i], dev, msg, sizeof(msg));
			fprintf(stderr, "devid-msg: %s has a device you have "
			    "not accepted: %s.\n", pins[i].account, msg);
			here++;
		}
		if (here == 0)
			continue;
		fprintf(stderr, "devid-msg: not sent.  Ask %s (not through "
		    "this channel) whether they added it; if they did, run: "
		    "devid-msg trust %s\n", pins[i].account, pins[i].account);
		msg_log(c, "send: refused, %d unaccepted device(s) on %s", here,
		    pins[i].account);
		blocked += here;
	}
	if (blocked > 0)
		return err_set(e, ERR_DENIED, "message not sent: %d device(s) "
		    "not accepted", blocked);
	return 0;
}

/*
 * The devices to encrypt to, into rc: the own account's approved devices
 * (from its verified log; *skipped counts those left out) and every
 * device of the pinned recipients.  ERR_NOT_FOUND when there is none.
 */
static int
collect_recipients(struct msg_ctx *c, const struct registry *pins,
    size_t n_pins, struct rcpts *rc, size_t *skipped, struct err_ctx *e)
{
	size_t i, j;
	int r;

	if ((r = msg_own_log(c, e)) != 0 ||
	    (r = own_recipients(c, rc, skipped, e)) != 0)
		return r;
	for (i = 0; i < n_pins; i++)
		for (j = 0; j < pins[i].log.n_devices; j++)
			if ((r = rcpts_add(rc, &pins[i].log.devices[j].rec,
			    e)) != 0)
				return r;
	if (rc->n == 0)
		return err_set(e, ERR_NOT_FOUND, "nobody to send to: no other "
		    "approved device");
	return 0;
}

/*
 * Seals payload to rc with, as "to" and "views", the own account and
 * every pinned one with its verified head (gossip); the agent signs, and
 * the signature must verify under this device's key.  *out: the new
 * envelope (env_free()).
 */
static int
seal_message(struct msg_ctx *c, const struct registry *pins, size_t n_pins,
    const struct rcpts *rc, const uint8_t *payload, size_t payload_len,
    struct env **out, struct err_ctx *e)
{
	struct acctlog_head views[MSG_MAX_TO + 1];
	const char *to[MSG_MAX_TO + 1];
	struct env_seal_args sa;
	struct env *env = NULL;
	uint8_t digest[32];
	size_t i, n_to = 0;
	int r;

	to[n_to] = c->account;
	views[n_to++] = c->own.head;
	for (i = 0; i < n_pins; i++) {
		to[n_to] = pins[i].account;
		views[n_to++] = pins[i].log.head;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sender_account = c->account;
	sa.sender_device = c->device;
	sa.sent = (uint64_t)time(NULL);
	sa.to = to;
	sa.n_to = n_to;
	sa.views = views;
	sa.n_views = n_to;
	sa.recipients = rc->keys;
	sa.n_recipients = rc->n;
	sa.payload = payload;
	sa.payload_len = payload_len;
	sa.sign = seal_sign;
	sa.sign_arg = c;
	if ((r = env_seal(&sa, &env, e)) != 0)
		return r;
	/* The agent signs with the token: check it is this device's key. */
	if ((r = env_sig_digest(env, digest)) != 0 ||
	    crypto_ecdsa_verify(c->self_pub, digest, env->sig) != 0) {
		env_free(env);
		return err_set(e, ERR_SIGNATURE, "the agent's signature does "
		    "not verify under this device's key");
	}
	*out = env;
	return 0;
}

/*
 * "Sent to ACCOUNT...: N device(s) ... (message ID).", or for a file
 * "Sent FILE (N bytes) to ...".
 */
static void
print_sent(const struct msg_cli *cli, const struct env_blob_ref *blob,
    size_t n_devices, size_t skipped, const char *msg_id)
{
	size_t i;

	if (blob != NULL)
		printf("Sent %s (%llu bytes) to", blob->name,
		    (unsigned long long)blob->size);
	else
		printf("Sent to");
	for (i = 0; i < cli->n_accounts; i++)
		printf(" %s", cli->accounts[i]);
	printf(": %zu device(s)", n_devices);
	if (skipped > 0)
		printf(", %zu own device(s) left out", skipped);
	printf(" (message %s).\n", msg_id);
}

/*
 * -f: the directory must take blobs (GET /v1/info's limits.max_blob, as
 * msg_ctx_open() read it) and the file must be a regular file within
 * that limit: checked before the recipients so that a send that cannot
 * work stops early (msg_blob_send() checks again as it opens the file).
 */
static int
check_file_sendable(const struct msg_ctx *c, const char *path,
    struct err_ctx *e)
{
	struct stat st;
	char have[32], lim[32];

	if (c->max_blob == 0)
		return err_set(e, ERR_UNSUPPORTED, "the directory at %s does "
		    "not take files (no limits.max_blob in /v1/info): send "
		    "text only, or ask its operator to upgrade it",
		    c->used_url != NULL ? c->used_url : "?");
	if (stat(path, &st) != 0)
		return err_set(e, ERR_IO, "cannot read %s: %s", path,
		    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(e, ERR_IO, "%s is not a regular file: only "
		    "files can be sent", path);
	if ((uint64_t)st.st_size > c->max_blob) {
		msg_progress_bytes((uint64_t)st.st_size, have, sizeof(have));
		msg_progress_bytes(c->max_blob, lim, sizeof(lim));
		return err_set(e, ERR_TOO_LARGE, "%s is %s; this directory "
		    "takes files up to %s", path, have, lim);
	}
	return 0;
}

/* Posts env, naming blob (may be NULL) for the directory. */
static int
post_message(struct msg_ctx *c, const struct env *env,
    const struct env_blob_ref *blob, uint64_t *queued, struct err_ctx *e)
{
	const char *hashes[1];
	char *json = NULL;
	size_t json_len = 0;
	int r;

	if ((r = env_to_json(env, &json, &json_len)) != 0)
		return r;
	if (blob != NULL) {
		hashes[0] = blob->hash;
		r = dirc_post_message_blobs(c->dirc, json, json_len, hashes,
		    1, queued, e);
	} else
		r = dirc_post_message(c->dirc, json, json_len, queued, e);
	free(json);
	return r;
}

int
msg_cmd_send(const struct msg_cli *cli)
{
	struct msg_ctx c;
	struct err_ctx e;
	struct registry pins[MSG_MAX_TO];
	struct rcpts *rc = NULL;
	struct env *env = NULL;
	struct env_blob_ref blob, *bp = NULL;
	struct msg_blob_opts bo;
	uint8_t *payload = NULL, *text = NULL;
	size_t payload_len = 0, text_len = 0, n_pins = 0, i, skipped = 0;
	char *idb = NULL;
	uint64_t queued = 0;
	int r = ERR_INTERNAL;

	err_clear(&e);
	memset(pins, 0, sizeof(pins));
	memset(&blob, 0, sizeof(blob));
	if ((r = msg_ctx_open(&c, cli, 1, &e)) != 0)
		goto out;
	if (cli->file != NULL && (r = check_file_sendable(&c, cli->file,
	    &e)) != 0)
		goto out;
	if ((r = read_text(cli, &text, &text_len, &e)) != 0)
		goto out;
	if ((rc = calloc(1, sizeof(*rc))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = pin_recipients(&c, cli, pins, &n_pins, &e)) != 0 ||
	    (r = refuse_unaccepted(&c, pins, n_pins, &e)) != 0 ||
	    (r = collect_recipients(&c, pins, n_pins, rc, &skipped, &e)) != 0)
		goto out;
	/* Uploaded once the recipients were accepted, before sealing: the
	 * payload names the blob's hash. */
	if (cli->file != NULL) {
		memset(&bo, 0, sizeof(bo));
		bo.progress = !cli->quiet;
		if ((r = msg_blob_send(c.dirc, cli->file, cli->type,
		    c.max_blob, &bo, &blob, &e)) != 0)
			goto out;
		bp = &blob;
	}
	if ((r = make_payload(text, text_len, bp, &payload, &payload_len,
	    &e)) != 0 ||
	    (r = payload_add_checkpoint(&c, &payload, &payload_len,
	    &e)) != 0 ||
	    (r = seal_message(&c, pins, n_pins, rc, payload, payload_len,
	    &env, &e)) != 0 ||
	    (r = post_message(&c, env, bp, &queued, &e)) != 0)
		goto out;
	if ((r = b64url_encode(env->id, ENV_ID_LEN, &idb)) != 0)
		goto out;
	if (bp != NULL)
		msg_log(&c, "send: message %s with file %s (%llu bytes) to "
		    "%zu device(s)", idb, bp->hash,
		    (unsigned long long)bp->size, rc->n);
	else
		msg_log(&c, "send: message %s to %zu device(s)", idb, rc->n);
	if (!cli->quiet)
		print_sent(cli, bp, rc->n, skipped, idb);
	r = 0;
 out:
	if (r != 0)
		fprintf(stderr, "devid-msg: send: %s\n", e.code != 0 ?
		    err_msg(&e) : err_str(r));
	for (i = 0; i < n_pins; i++)
		reg_clear(&pins[i]);
	if (rc != NULL) {
		rcpts_clear(rc);
		free(rc);
	}
	if (payload != NULL) {
		crypto_wipe(payload, payload_len);
		free(payload);
	}
	if (text != NULL) {
		crypto_wipe(text, text_len);
		free(text);
	}
	msg_blob_ref_clear(&blob);
	free(idb);
	env_free(env);
	msg_ctx_close(&c);
	return r == 0 ? 0 : 1;
}
