/*
 * msg-recv.c - devid-msg recv: fetch the inbox, run the checks of
 * PROTOCOL.md section 4 in their order (the agent opens), show what was
 * accepted, acknowledge what was handled.
 */
#include "config.h"

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
#include "envelope.h"
#include "errors.h"
#include "fileio.h"
#include "msg-agent.h"
#include "msg-contacts.h"
#include "msg-replay.h"
#include "msg.h"
#include "registry.h"
#include "timefmt.h"

#define PIN_CACHE_MAX 32
#define INBOX_PAGE 100

/* --- received files --- */

int
msg_file_name_safe(const char *name)
{
	const unsigned char *p;
	size_t len;

	uint32_t cp;
	size_t n, i;

	if (name == NULL || (len = strlen(name)) == 0 || len > 255)
		return 0;
	if (name[0] == '.' || name[0] == '-')
		return 0;       /* also "." and ".." */
	for (p = (const unsigned char *)name; *p != '\0'; p += n) {
		/* Well-formed UTF-8, shortest form, no surrogates. */
		if (*p < 0x80) {
			cp = *p;
			n = 1;
		} else if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			n = 2;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			n = 3;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			n = 4;
		} else
			return 0;
		for (i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		/* Controls (C0, DEL, C1) and path separators. */
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == '/' ||
		    cp == '\\')
			return 0;
	}
	return 1;
}

int
msg_save_file(const char *dir, const char *name, const uint8_t *p,
    size_t len, char **path_out, struct err_ctx *e)
{
	struct err_ctx local;
	char *path = NULL;
	int i, r = ERR_INTERNAL;

	if (!msg_file_name_safe(name))
		return err_set(e, ERR_FORMAT, "refusing the file name in the "
		    "message");
	for (i = 0; i <= 100; i++) {
		free(path);
		if ((i == 0 ? asprintf(&path, "%s/%s", dir, name) :
		    asprintf(&path, "%s/%s (%d)", dir, name, i)) < 0) {
			path = NULL;
			r = ERR_ALLOC;
			goto out;
		}
		err_clear(&local);
		if ((r = fileio_write_new(path, p, len, 0600, &local)) !=
		    ERR_EXISTS)
			break;
	}
	if (r == ERR_EXISTS) {
		r = err_set(e, ERR_EXISTS, "%s/%s and 100 numbered variants "
		    "exist already", dir, name);
		goto out;
	}
	if (r != 0) {
		r = err_set(e, r, "%s", err_msg(&local));
		goto out;
	}
	*path_out = path;
	path = NULL;    /* transferred */
	r = 0;
 out:
	free(path);
	return r;
}

/* --- one run --- */

struct pin_slot {
	int loaded;
	int refreshed;
	int present;            /* a pin exists (the log is verified here) */
	struct registry pin;
};

struct recv_run {
	struct msg_ctx *c;
	const struct msg_cli *cli;
	struct msg_replay *replay;
	struct pin_slot pins[PIN_CACHE_MAX];
	json_t *own_devices;    /* the agent's "devices" answer */
	unsigned long shown;
	uint64_t held_qseq;     /* the held entry already named (--follow) */
	int own_refreshed;
	int own_retried;        /* refreshed for an unknown own device */
};

enum outcome {
	OUT_SHOWN,              /* accepted and shown: acknowledge */
	OUT_SKIPPED,            /* handled before: acknowledge */
	OUT_REJECTED,           /* failed a check: acknowledge */
	OUT_HELD,               /* from a device not accepted yet: keep */
};

static void
run_clear(struct recv_run *rr)
{
	size_t i;

	for (i = 0; i < PIN_CACHE_MAX; i++)
		reg_clear(&rr->pins[i].pin);
	json_decref(rr->own_devices);
	msg_replay_free(rr->replay);
}

/*
 * The pin of account from the cache.  When refresh, it is brought up to
 * date once per run (creating it on first contact); otherwise only an
 * existing pin is loaded.  *out is NULL when there is none.
 */
static int
pin_get(struct recv_run *rr, const char *account, int refresh,
    struct registry **out, struct err_ctx *e)
{
	struct pin_slot *s = NULL;
	size_t i;
	int r;

	*out = NULL;
	for (i = 0; i < PIN_CACHE_MAX; i++) {
		if (rr->pins[i].loaded &&
		    strcmp(rr->pins[i].pin.account, account) == 0) {
			s = &rr->pins[i];
			break;
		}
	}
	if (s == NULL) {
		for (i = 0; i < PIN_CACHE_MAX && rr->pins[i].loaded; i++)
			;
		if (i == PIN_CACHE_MAX) {
			/* Forget the first slot: bounded memory. */
			reg_clear(&rr->pins[0].pin);
			memset(&rr->pins[0], 0, sizeof(rr->pins[0]));
			i = 0;
		}
		s = &rr->pins[i];
		r = msg_contact_load(rr->c->contacts_dir, account,
		    rr->c->device, rr->c->self_pub, &s->pin, e);
		if (r == 0)
			s->present = 1;
		else if (r == ERR_NOT_FOUND)
			err_clear(e);
		else
			return r;
		s->loaded = 1;
		/* An empty slot remembers the account for the lookup. */
		if (!s->present)
			snprintf(s->pin.account, sizeof(s->pin.account), "%s",
			    account);
	}
	if (refresh && !s->refreshed) {
		reg_clear(&s->pin);
		if ((r = msg_contact_refresh(rr->c, account, &s->pin, NULL,
		    e)) != 0) {
			reg_clear(&s->pin);
			memset(s, 0, sizeof(*s));
			return r;
		}
		s->present = 1;
		s->refreshed = 1;
	}
	if (s->present)
		*out = &s->pin;
	return 0;
}

/* The agent's state of an own device: "approved", "pending", ... */
static const char *
own_state(struct recv_run *rr, const char *device)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(rr->own_devices, "devices"), i, d) {
		const char *id = json_string_value(json_object_get(d,
		    "device"));

		if (id != NULL && strcmp(id, device) == 0) {
			if (!json_is_true(json_object_get(d, "active")))
				return "inactive";
			return json_string_value(json_object_get(d, "state"));
		}
	}
	return NULL;
}

static int
own_refresh(struct recv_run *rr, struct err_ctx *e)
{
	json_t *req;
	int r;

	if ((r = msg_own_log(rr->c, e)) != 0)
		return r;
	if ((req = json_pack("{s:s}", "op", "devices")) == NULL)
		return ERR_ALLOC;
	json_decref(rr->own_devices);
	rr->own_devices = NULL;
	r = msg_agent_call(rr->c->agent, req, &rr->own_devices, e);
	json_decref(req);
	rr->own_refreshed = 1;
	return r;
}

/*
 * 1 for the errors that say the directory's view of an account does not
 * verify (a fork, a rollback, a broken chain, another key, a stale or
 * malformed answer): a message from that account is held, not lost, and
 * the others are still read.  The rest stop the run (unreachable, locked,
 * out of memory, a pin changed outside devid-msg).
 */
static int
view_broken(int r)
{
	return r == ERR_FORK || r == ERR_ROLLBACK || r == ERR_CHAIN ||
	    r == ERR_WRONG_KEY || r == ERR_STALE || r == ERR_FORMAT;
}

/* Prints text, replacing what a terminal would interpret. */
static void
print_text(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t') ||
		    p[i] == 0x7f)
			putchar('?');
		else if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f) {
			putchar('?');
			i++;
		} else
			putchar(p[i]);
	}
	if (len == 0 || p[len - 1] != '\n')
		putchar('\n');
}

static void
report_rejected(struct recv_run *rr, uint64_t qseq, const char *why)
{
	msg_log(rr->c, "recv: inbox entry %llu rejected: %s",
	    (unsigned long long)qseq, why);
	if (rr->cli->json)
		printf("{\"status\":\"rejected\",\"inbox_seq\":%llu}\n",
		    (unsigned long long)qseq);
	else
		printf("Rejected a message (inbox entry %llu): it failed "
		    "devid's checks; the reason is in the local log.\n",
		    (unsigned long long)qseq);
	fflush(stdout);
}

/*
 * Check 7 for the accounts whose logs devid-msg verifies itself: the
 * contacts it has pins of (the agent checks the own account when it
 * opens, and devid-msg repeats it to report it).  A view with another hash
 * at a seq this device verified is a split view: reported, forwarded to
 * the agent, and the message rejected.  Returns 0 or ERR_FORK.
 */
static int
gossip_check(struct recv_run *rr, const struct env *env, int forward,
    struct err_ctx *e)
{
	const struct acctlog_head *v;
	const struct acctlog_state *st;
	struct registry *pin;
	struct err_ctx e2;
	size_t i, k;
	int r, split = 0, own, differs;

	for (i = 0; i < env->n_views; i++) {
		v = &env->views[i];
		own = strcmp(v->account, rr->c->account) == 0;
		err_clear(&e2);
		if (own)
			st = rr->c->have_own ? &rr->c->own : NULL;
		else if (pin_get(rr, v->account, 0, &pin, &e2) == 0 &&
		    pin != NULL)
			st = &pin->log;
		else
			st = NULL;
		if (st == NULL || !st->has_head)
			continue;
		if (acctlog_head_verify(v, rr->c->dir_pub, NULL, &e2) != 0) {
			msg_log(rr->c, "recv: the view of %s in a message from "
			    "%.16s is not signed by the pinned directory: %s",
			    v->account, env->sender_device, err_msg(&e2));
			split = 1;
			continue;
		}
		if (v->seq > st->seq && !own) {
			/* Newer than ours: look again now. */
			err_clear(&e2);
			if (pin_get(rr, v->account, 1, &pin, &e2) != 0 ||
			    pin == NULL)
				continue;
			st = &pin->log;
			if (v->seq > st->seq) {
				msg_log(rr->c, "recv: the sender saw %s at seq "
				    "%llu, the directory shows this device "
				    "only %llu", v->account,
				    (unsigned long long)v->seq,
				    (unsigned long long)st->seq);
				fprintf(stderr, "devid-msg: warning: the sender "
				    "saw a newer log of %s than the directory "
				    "shows this device (seq %llu > %llu)\n",
				    v->account, (unsigned long long)v->seq,
				    (unsigned long long)st->seq);
				continue;
			}
		}
		if (v->seq == st->seq)
			differs = memcmp(v->hash, st->hash, 32) != 0;
		else {
			/* An older view: compare with the history kept. */
			differs = 0;
			for (k = 0; k < st->n_history; k++) {
				if (st->history[k].seq == v->seq) {
					differs = memcmp(st->history[k].hash,
					    v->hash, 32) != 0;
					break;
				}
			}
		}
		if (!differs)
			continue;
		split = 1;
		if (forward || !own)
			(void)msg_report_split(rr->c, v->account, "split_view",
			    &st->head, v, env->sender_device);
		else    /* the agent raised it when it rejected the message */
			fprintf(stderr, "devid-msg: ALERT: split view of %s: a "
			    "message's sender was shown another log at seq %llu "
			    "than this device verified (devid-agent status "
			    "shows the alert)\n", v->account,
			    (unsigned long long)v->seq);
	}
	if (split) {
		r = err_set(e, ERR_FORK, "split view in the message's views");
		return r;
	}
	return 0;
}

/* Prints an accepted message (or saves its file). */
static int
show(struct recv_run *rr, uint64_t qseq, const json_t *ans,
    const char *label, struct err_ctx *e)
{
	const json_t *pl = json_object_get(ans, "payload");
	const char *type = json_string_value(json_object_get(pl, "type"));
	const char *b64 = json_string_value(json_object_get(pl, "body"));
	const char *name = json_string_value(json_object_get(pl, "name"));
	const char *acct = json_string_value(json_object_get(
	    json_object_get(ans, "sender"), "account"));
	const char *dev = json_string_value(json_object_get(
	    json_object_get(ans, "sender"), "device"));
	const char *mid = json_string_value(json_object_get(ans, "msg_id"));
	uint64_t sent = (uint64_t)json_integer_value(json_object_get(ans,
	    "sent"));
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "?", when[48], gen[40];
	char *path = NULL;
	uint8_t *body = NULL;
	size_t len = 0;
	json_t *o = NULL;
	int r = ERR_INTERNAL;

	if (type == NULL || b64 == NULL || acct == NULL || dev == NULL ||
	    mid == NULL)
		return err_set(e, ERR_FORMAT, "devid-agent's open answer lacks "
		    "fields");
	if ((r = b64url_decode(b64, strlen(b64), MSG_AGENT_FRAME_MAX, &body,
	    &len)) != 0)
		return err_set(e, r, "devid-agent's open answer has a bad body");
	(void)devrec_short_id(dev, short_id);
	timefmt_utc(sent, when, sizeof(when));
	/* Anything but text is a file: saved, never written to a terminal. */
	if (name == NULL && strncmp(type, "text/", 5) != 0) {
		snprintf(gen, sizeof(gen), "message-%.22s", mid);
		name = gen;
	}
	if (name != NULL) {
		if ((r = msg_save_file(rr->cli->out_dir != NULL ?
		    rr->cli->out_dir : ".", name, body, len, &path, e)) != 0)
			goto out;
	}
	if (rr->cli->json) {
		o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:I, s:I, "
		    "s:s}", "status", "ok", "msg_id", mid, "sender", "account",
		    acct, "device", dev, "short_id", short_id, "label", label,
		    "sent", (json_int_t)sent, "inbox_seq", (json_int_t)qseq,
		    "type", type);
		if (o == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		if (path != NULL) {
			json_object_set_new(o, "name", json_string(name));
			json_object_set_new(o, "file", json_string(path));
			json_object_set_new(o, "size", json_integer(
			    (json_int_t)len));
		} else
			json_object_set_new(o, "body", json_string(b64));
		{
			char *s = json_dumps(o, JSON_COMPACT);

			if (s == NULL) {
				r = ERR_ALLOC;
				goto out;
			}
			printf("%s\n", s);
			crypto_wipe(s, strlen(s));
			free(s);
		}
	} else {
		printf("From %s '%s' %s at %s:\n", acct, label, short_id, when);
		if (path != NULL)
			printf("[file '%s', %zu bytes, %s, saved as %s]\n", name,
			    len, type, path);
		else
			print_text(body, len);
	}
	fflush(stdout);
	r = 0;
 out:
	if (body != NULL) {
		crypto_wipe(body, len);
		free(body);
	}
	json_decref(o);
	free(path);
	return r;
}

/*
 * Handles one inbox entry.  Returns 0 with *oc set, or an error that
 * stops the run without acknowledging this entry (the agent is locked,
 * the directory or the agent cannot be reached, the disk is full).
 */
static int
handle(struct recv_run *rr, const struct dirc_inbox_item *it,
    enum outcome *oc, struct err_ctx *e)
{
	struct msg_ctx *c = rr->c;
	struct env_limits lim;
	struct env *env = NULL;
	struct registry *pin = NULL;
	const struct acctlog_device *ad;
	const struct acctlog_state *st;
	EVP_PKEY *spub = NULL;
	json_t *ej = NULL, *req = NULL, *ans = NULL;
	json_error_t jerr;
	struct err_ctx e2;
	char *sk = NULL, why[ERR_MSG_MAX + 64], msg[512];
	char label[DEVREC_LABEL_MAX + 1];
	const char *state;
	uint8_t digest[32];
	uint64_t q = 0;
	int r = ERR_INTERNAL, own;

	err_clear(&e2);
	*oc = OUT_REJECTED;
	memset(&lim, 0, sizeof(lim));
	lim.max_bytes = MSG_AGENT_FRAME_MAX - 4096;
	/* 1: bounded parse. */
	if (env_parse((const uint8_t *)it->envelope, it->envelope_len, &lim,
	    &env, &e2) != 0) {
		snprintf(why, sizeof(why), "check 1 (parse): %s", err_msg(&e2));
		goto rejected;
	}
	own = strcmp(env->sender_account, c->account) == 0;
	/* 2: the sender is an active device this device accepted. */
	if (own) {
		if (strcmp(env->sender_device, c->device) == 0) {
			snprintf(why, sizeof(why), "check 2 (sender): a message "
			    "from this very device (reflected)");
			goto rejected;
		}
		/* A device this run has not seen: look once more per page. */
		if (!rr->own_refreshed ||
		    (acctlog_state_find(&c->own, env->sender_device) == NULL &&
		    !rr->own_retried)) {
			rr->own_retried = rr->own_refreshed;
			if ((r = own_refresh(rr, e)) != 0) {
				if (view_broken(r))
					goto held_view;
				goto out;
			}
		}
		st = &c->own;
		state = own_state(rr, env->sender_device);
		ad = acctlog_state_find(st, env->sender_device);
		if (ad != NULL && state != NULL &&
		    strcmp(state, "pending") == 0) {
			/* Kept until the user approves it (or not). */
			*oc = OUT_HELD;
			r = 0;
			if (rr->held_qseq == it->seq)
				goto out;
			rr->held_qseq = it->seq;
			msg_log(c, "recv: inbox entry %llu held: own device %s "
			    "not approved", (unsigned long long)it->seq,
			    env->sender_device);
			if (rr->cli->json)
				printf("{\"status\":\"held\",\"inbox_seq\":%llu,"
				    "\"account\":\"%s\",\"device\":\"%s\"}\n",
				    (unsigned long long)it->seq,
				    env->sender_account, env->sender_device);
			else
				printf("Held a message from your device '%s' "
				    "%.4s..., which is not approved on this "
				    "device.  If it is yours, run devid-agent "
				    "approve %.8s, then devid-msg recv.\n",
				    ad->rec.label, env->sender_device,
				    env->sender_device);
			fflush(stdout);
			goto out;
		}
		if (ad == NULL ||
		    state == NULL || strcmp(state, "approved") != 0) {
			snprintf(why, sizeof(why), "check 2 (sender): own device "
			    "%.16s is %s on this device", env->sender_device,
			    ad == NULL ? "not active in the verified log" :
			    state != NULL ? state : "unknown");
			goto rejected;
		}
	} else {
		if ((r = pin_get(rr, env->sender_account, 1, &pin, e)) != 0) {
			if (r == ERR_NOT_FOUND) {
				snprintf(why, sizeof(why), "check 2 (sender): "
				    "%s", err_msg(e));
				err_clear(e);
				goto rejected;
			}
			if (view_broken(r))
				goto held_view;
			goto out;
		}
		st = &pin->log;
		if ((ad = acctlog_state_find(st, env->sender_device)) == NULL) {
			snprintf(why, sizeof(why), "check 2 (sender): %.16s is "
			    "not an active device of %s", env->sender_device,
			    env->sender_account);
			goto rejected;
		}
		if (!msg_contact_accepted(pin, env->sender_device)) {
			*oc = OUT_HELD;
			r = 0;
			if (rr->held_qseq == it->seq)
				goto out;       /* named already */
			rr->held_qseq = it->seq;
			msg_contact_explain(pin, env->sender_device, msg,
			    sizeof(msg));
			msg_log(c, "recv: inbox entry %llu held: sender %s",
			    (unsigned long long)it->seq, msg);
			if (rr->cli->json)
				printf("{\"status\":\"held\",\"inbox_seq\":%llu,"
				    "\"account\":\"%s\",\"device\":\"%s\"}\n",
				    (unsigned long long)it->seq,
				    env->sender_account, env->sender_device);
			else
				printf("Held a message from %s: %s, which you "
				    "have not accepted.  If %s confirms it, run "
				    "devid-msg trust %s, then devid-msg recv.\n",
				    env->sender_account, msg,
				    env->sender_account, env->sender_account);
			fflush(stdout);
			goto out;
		}
	}
	/* ad points into a cache that the gossip check may change. */
	snprintf(label, sizeof(label), "%s", ad->rec.label);
	if ((r = crypto_spki_import(ad->rec.sig_pub, ad->rec.sig_pub_len,
	    &spub, e)) != 0)
		goto out;
	/* 3: the signature. */
	if (env_sig_digest(env, digest) != 0 ||
	    crypto_ecdsa_verify(spub, digest, env->sig) != 0) {
		snprintf(why, sizeof(why), "check 3 (signature): does not "
		    "verify under the key of %.16s", env->sender_device);
		goto rejected;
	}
	/* 4: seen before? */
	if (msg_replay_find(rr->replay, env->sender_device, env->id, &q)) {
		if (q == it->seq) {
			*oc = OUT_SKIPPED;   /* handled, not acknowledged yet */
			r = 0;
			goto out;
		}
		snprintf(why, sizeof(why), "check 4 (replay): message id seen "
		    "before (inbox entry %llu)", (unsigned long long)q);
		goto rejected;
	}
	/* 5-7 in the agent: unwrap in the token, AES-GCM, payload, gossip
	 * for the own account. */
	if ((ej = json_loadb(it->envelope, it->envelope_len,
	    JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(why, sizeof(why), "check 1 (parse): not JSON");
		goto rejected;
	}
	if ((req = json_pack("{s:s, s:O}", "op", "open", "envelope", ej)) ==
	    NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (!own) {
		if ((r = b64url_encode(ad->rec.sig_pub, ad->rec.sig_pub_len,
		    &sk)) != 0)
			goto out;
		json_object_set_new(req, "sender_key", json_string(sk));
	}
	if ((r = msg_agent_call(c->agent, req, &ans, e)) != 0) {
		if (r != ERR_REJECTED)
			goto out;
		err_clear(e);
		/* Tell the user about a split view the agent saw. */
		(void)gossip_check(rr, env, 0, &e2);
		snprintf(why, sizeof(why), "checks 5-7 in devid-agent (its log "
		    "has the reason)");
		goto rejected;
	}
	/* The agent accepted: remember it before anything else. */
	if ((r = msg_replay_add(rr->replay, env->sender_device, env->id,
	    it->seq, (uint64_t)time(NULL), e)) != 0)
		goto out;
	/* 7 for the contacts' logs. */
	err_clear(&e2);
	if (gossip_check(rr, env, 1, &e2) != 0) {
		snprintf(why, sizeof(why), "check 7 (gossip): %s",
		    err_msg(&e2));
		goto rejected;
	}
	if ((r = show(rr, it->seq, ans, label, e)) != 0)
		goto out;
	*oc = OUT_SHOWN;
	r = 0;
	goto out;
 held_view:
	/* The sender's log does not verify: keep the message, say why. */
	msg_log(c, "recv: inbox entry %llu held: the log of %s does not "
	    "verify: %s", (unsigned long long)it->seq, env->sender_account,
	    err_msg(e));
	if (rr->held_qseq != it->seq) {
		rr->held_qseq = it->seq;
		if (rr->cli->json)
			printf("{\"status\":\"held\",\"inbox_seq\":%llu,"
			    "\"account\":\"%s\",\"device\":\"%s\"}\n",
			    (unsigned long long)it->seq, env->sender_account,
			    env->sender_device);
		else
			printf("Held a message from %s: the directory's log of "
			    "%s does not verify (%s).\n", env->sender_account,
			    env->sender_account, err_msg(e));
		fflush(stdout);
	}
	err_clear(e);
	*oc = OUT_HELD;
	r = 0;
	goto out;
 rejected:
	report_rejected(rr, it->seq, why);
	*oc = OUT_REJECTED;
	r = 0;
 out:
	EVP_PKEY_free(spub);
	free(sk);
	json_decref(ej);
	json_decref(req);
	json_decref(ans);
	env_free(env);
	return r;
}

/* Takes a new session from the agent (after the directory refused it). */
static int
renew_session(struct msg_ctx *c, struct err_ctx *e)
{
	json_t *req, *resp = NULL;
	const char *tok;
	int r;

	if ((req = json_pack("{s:s}", "op", "session")) == NULL)
		return ERR_ALLOC;
	r = msg_agent_call(c->agent, req, &resp, e);
	json_decref(req);
	if (r != 0)
		return r;
	if ((tok = json_string_value(json_object_get(resp, "token"))) == NULL)
		r = err_set(e, ERR_FORMAT, "devid-agent gave no session token");
	else {
		r = dirc_set_token(c->dirc, tok);
		crypto_wipe((void *)(uintptr_t)tok, strlen(tok));
	}
	json_decref(resp);
	return r;
}

int
msg_cmd_recv(const struct msg_cli *cli)
{
	struct msg_ctx c;
	struct recv_run rr;
	struct err_ctx e;
	struct dirc_inbox *in = NULL;
	enum outcome oc;
	char *rpath = NULL;
	uint64_t ack_upto;
	size_t i;
	int r = ERR_INTERNAL, held, renewed = 0, done = 0;
	unsigned int wait_s;

	err_clear(&e);
	memset(&rr, 0, sizeof(rr));
	if ((r = msg_ctx_open(&c, cli, 1, &e)) != 0)
		goto out;
	rr.c = &c;
	rr.cli = cli;
	if (asprintf(&rpath, "%s/%s", c.data_dir, MSG_REPLAY_FILE) < 0) {
		rpath = NULL;
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = msg_replay_open(rpath, 0, &rr.replay, &e)) != 0)
		goto out;
	if ((r = own_refresh(&rr, &e)) != 0) {
		if (!view_broken(r))
			goto out;
		/* Messages of contacts can still be read. */
		fprintf(stderr, "devid-msg: warning: %s; messages from your "
		    "own devices are held\n", err_msg(&e));
		err_clear(&e);
	}
	while (!done) {
		wait_s = cli->follow ? MSG_FOLLOW_WAIT_S : 0;
		dirc_inbox_free(in);
		in = NULL;
		if ((r = dirc_inbox(c.dirc, wait_s, INBOX_PAGE, &in, &e)) != 0) {
			if (r == ERR_DENIED && !renewed) {
				/* The session ended: take the agent's new one. */
				renewed = 1;
				err_clear(&e);
				if ((r = renew_session(&c, &e)) != 0)
					goto out;
				continue;
			}
			if (cli->follow && (r == ERR_NETWORK ||
			    r == ERR_TIMEOUT)) {
				fprintf(stderr, "devid-msg: %s; trying again in "
				    "10 s\n", err_msg(&e));
				err_clear(&e);
				sleep(10);
				continue;
			}
			goto out;
		}
		renewed = 0;
		rr.own_retried = 0;
		if (in->n_items == 0) {
			if (!cli->follow)
				break;
			continue;
		}
		ack_upto = 0;
		held = 0;
		for (i = 0; i < in->n_items; i++) {
			if ((r = handle(&rr, &in->items[i], &oc, &e)) != 0)
				break;
			if (oc == OUT_HELD)
				held = 1;
			else if (!held)
				ack_upto = in->items[i].seq;
			if (oc == OUT_SHOWN && cli->count != 0 &&
			    ++rr.shown >= cli->count) {
				done = 1;
				break;
			}
		}
		if (ack_upto > 0) {
			struct err_ctx e2;

			err_clear(&e2);
			if (dirc_ack(c.dirc, ack_upto, NULL, &e2) != 0 &&
			    r == 0) {
				r = ERR_NETWORK;
				e = e2;
			}
		}
		if (r != 0)
			goto out;
		/* Held entries stay: stop instead of fetching them again. */
		if (held && !cli->follow)
			break;
		if (held)
			sleep(MSG_FOLLOW_WAIT_S);
		if (!cli->follow && in->n_items < INBOX_PAGE)
			break;
	}
	r = 0;
 out:
	if (r != 0)
		fprintf(stderr, "devid-msg: recv: %s\n", e.code != 0 ?
		    err_msg(&e) : err_str(r));
	dirc_inbox_free(in);
	free(rpath);
	run_clear(&rr);
	msg_ctx_close(&c);
	return r == 0 ? 0 : 1;
}
