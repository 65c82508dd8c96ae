/*
 * msg-recv.c - devid-msg recv: fetch the inbox, run the checks of
 * PROTOCOL.md section 4 in their order (the agent opens), show what was
 * accepted, acknowledge what was handled.
 */
#include "config.h"

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
#include "envelope.h"
#include "errors.h"
#include "fileio.h"
#include "msg-agent.h"
#include "msg-blob.h"
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
msg_file_create_numbered(const char *dir, const char *name,
    msg_file_create_fn create, void *arg, char **path_out,
    struct err_ctx *e)
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
		if ((r = create(arg, path, &local)) != ERR_EXISTS)
			break;
	}
	if (r == ERR_EXISTS) {
		r = err_set(e, ERR_EXISTS, "%s/%s and 100 numbered variants "
		    "exist already: move some away, then try again", dir,
		    name);
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

/* The bytes msg_save_file() writes. */
struct save_bytes {
	const uint8_t *p;
	size_t len;
};

static int
create_with_bytes(void *arg, const char *path, struct err_ctx *e)
{
	const struct save_bytes *sb = arg;

	return fileio_write_new(path, sb->p, sb->len, 0600, e);
}

int
msg_save_file(const char *dir, const char *name, const uint8_t *p,
    size_t len, char **path_out, struct err_ctx *e)
{
	struct save_bytes sb = { p, len };

	return msg_file_create_numbered(dir, name, create_with_bytes, &sb,
	    path_out, e);
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
	OUT_NEXT,               /* passed the checks so far: go on */
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

static void print_entry_status(const struct recv_run *rr, const char *status,
    uint64_t qseq, const struct env *env, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Says what became of an inbox entry that is not shown (status "held" or
 * "rejected"): with --json one line {"status", "inbox_seq"} with the
 * sender's "account" and "device" when env is not NULL, else the text of
 * fmt.  env_parse() checked the account name and the device id: nothing
 * in them needs escaping.
 */
static void
print_entry_status(const struct recv_run *rr, const char *status,
    uint64_t qseq, const struct env *env, const char *fmt, ...)
{
	va_list ap;

	if (rr->cli->json) {
		printf("{\"status\":\"%s\",\"inbox_seq\":%llu", status,
		    (unsigned long long)qseq);
		if (env != NULL)
			printf(",\"account\":\"%s\",\"device\":\"%s\"",
			    env->sender_account, env->sender_device);
		printf("}\n");
	} else {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	fflush(stdout);
}

/* Prints o as one line of compact JSON; the text is wiped (it may hold a
 * message body). */
static int
print_json_line(const json_t *o)
{
	char *s;

	if ((s = json_dumps(o, JSON_COMPACT)) == NULL)
		return ERR_ALLOC;
	printf("%s\n", s);
	crypto_wipe(s, strlen(s));
	free(s);
	return 0;
}

static void
report_rejected(struct recv_run *rr, uint64_t qseq, const char *why)
{
	msg_log(rr->c, "recv: inbox entry %llu rejected: %s",
	    (unsigned long long)qseq, why);
	print_entry_status(rr, "rejected", qseq, NULL, "Rejected a message "
	    "(inbox entry %llu): it failed devid's checks; the reason is in "
	    "the local log.\n", (unsigned long long)qseq);
}

/*
 * 1 when the held entry qseq was named already (a --follow run fetches
 * it again); otherwise remembers it and returns 0.
 */
static int
held_named_before(struct recv_run *rr, uint64_t qseq)
{
	if (rr->held_qseq == qseq)
		return 1;
	rr->held_qseq = qseq;
	return 0;
}

/* --- check 7 for the contacts' logs --- */

/*
 * The log of account that this device verified itself, or NULL: the own
 * log, or the log in the contact's pin (loaded, not refreshed).
 */
static const struct acctlog_state *
known_log(struct recv_run *rr, const char *account, int own)
{
	struct registry *pin;
	struct err_ctx e2;

	if (own)
		return rr->c->have_own ? &rr->c->own : NULL;
	err_clear(&e2);
	if (pin_get(rr, account, 0, &pin, &e2) == 0 && pin != NULL)
		return &pin->log;
	return NULL;
}

/*
 * A contact's view v that is newer than the log verified here: the log is
 * fetched again (once per run).  Returns it to compare v with, or NULL
 * when there is nothing to compare: it could not be fetched, or the
 * directory still does not show v's seq (logged and warned about).
 */
static const struct acctlog_state *
catch_up_with_view(struct recv_run *rr, const struct acctlog_head *v)
{
	const struct acctlog_state *st;
	struct registry *pin;
	struct err_ctx e2;

	err_clear(&e2);
	if (pin_get(rr, v->account, 1, &pin, &e2) != 0 || pin == NULL)
		return NULL;
	st = &pin->log;
	if (v->seq <= st->seq)
		return st;
	msg_log(rr->c, "recv: the sender saw %s at seq %llu, the directory "
	    "shows this device only %llu", v->account,
	    (unsigned long long)v->seq, (unsigned long long)st->seq);
	fprintf(stderr, "devid-msg: warning: the sender saw a newer log of %s "
	    "than the directory shows this device (seq %llu > %llu)\n",
	    v->account, (unsigned long long)v->seq,
	    (unsigned long long)st->seq);
	return NULL;
}

/*
 * 1 when v shows another hash than st at v's seq: st's head, or an older
 * entry st still has in its history.  0 when they agree or st knows
 * nothing of that seq.
 */
static int
view_differs(const struct acctlog_state *st, const struct acctlog_head *v)
{
	size_t k;

	if (v->seq == st->seq)
		return memcmp(v->hash, st->hash, 32) != 0;
	for (k = 0; k < st->n_history; k++) {
		if (st->history[k].seq == v->seq)
			return memcmp(st->history[k].hash, v->hash, 32) != 0;
	}
	return 0;
}

/*
 * A split view in a message from sender_device: sent to the agent as a
 * gossip_alert (to_agent), or only named when the agent raised it already
 * as it rejected the message.
 */
static void
report_split_view(struct recv_run *rr, const struct acctlog_state *st,
    const struct acctlog_head *v, const char *sender_device, int to_agent)
{
	if (to_agent)
		(void)msg_report_split(rr->c, v->account, "split_view",
		    &st->head, v, sender_device);
	else
		fprintf(stderr, "devid-msg: ALERT: split view of %s: a "
		    "message's sender was shown another log at seq %llu than "
		    "this device verified (devid-agent status shows the "
		    "alert)\n", v->account, (unsigned long long)v->seq);
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
	struct err_ctx e2;
	size_t i;
	int split = 0, own;

	for (i = 0; i < env->n_views; i++) {
		v = &env->views[i];
		own = strcmp(v->account, rr->c->account) == 0;
		if ((st = known_log(rr, v->account, own)) == NULL ||
		    !st->has_head)
			continue;
		err_clear(&e2);
		if (acctlog_head_verify(v, rr->c->dir_pub, NULL, &e2) != 0) {
			msg_log(rr->c, "recv: the view of %s in a message from "
			    "%.16s is not signed by the pinned directory: %s",
			    v->account, env->sender_device, err_msg(&e2));
			split = 1;
			continue;
		}
		/* Newer than ours: look again now. */
		if (v->seq > st->seq && !own &&
		    (st = catch_up_with_view(rr, v)) == NULL)
			continue;
		if (!view_differs(st, v))
			continue;
		split = 1;
		report_split_view(rr, st, v, env->sender_device,
		    forward || !own);
	}
	if (split)
		return err_set(e, ERR_FORK, "split view in the message's "
		    "views");
	return 0;
}

/* --- showing an accepted message --- */

/* An accepted message as the agent's open answer gives it: strings
 * borrowed from the answer, body decoded (opened_msg_clear() wipes it). */
struct opened_msg {
	const char *type;
	const char *b64;                /* the body as the agent sent it */
	const char *name;               /* NULL: none */
	const char *account;
	const char *device;
	const char *msg_id;
	uint64_t sent;
	uint8_t *body;
	size_t len;
};

static void
opened_msg_clear(struct opened_msg *m)
{
	if (m->body != NULL) {
		crypto_wipe(m->body, m->len);
		free(m->body);
	}
	memset(m, 0, sizeof(*m));
}

/* Reads the agent's open answer ans into m (cleared by the caller). */
static int
opened_msg_read(const json_t *ans, struct opened_msg *m, struct err_ctx *e)
{
	const json_t *pl = json_object_get(ans, "payload");
	const json_t *sender = json_object_get(ans, "sender");
	int r;

	m->type = json_string_value(json_object_get(pl, "type"));
	m->b64 = json_string_value(json_object_get(pl, "body"));
	m->name = json_string_value(json_object_get(pl, "name"));
	m->account = json_string_value(json_object_get(sender, "account"));
	m->device = json_string_value(json_object_get(sender, "device"));
	m->msg_id = json_string_value(json_object_get(ans, "msg_id"));
	m->sent = (uint64_t)json_integer_value(json_object_get(ans, "sent"));
	if (m->type == NULL || m->b64 == NULL || m->account == NULL ||
	    m->device == NULL || m->msg_id == NULL)
		return err_set(e, ERR_FORMAT, "devid-agent's open answer lacks "
		    "fields");
	if ((r = b64url_decode(m->b64, strlen(m->b64), MSG_AGENT_FRAME_MAX,
	    &m->body, &m->len)) != 0)
		return err_set(e, r, "devid-agent's open answer has a bad "
		    "body");
	return 0;
}

/*
 * --json: the message m as one line.  A file saved as path (not NULL)
 * under name is given by its name, path and size; a text by its body.
 */
static int
print_message_json(uint64_t qseq, const struct opened_msg *m,
    const char *short_id, const char *label, const char *name,
    const char *path)
{
	json_t *o;
	int r;

	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:I, s:I, s:s}",
	    "status", "ok", "msg_id", m->msg_id, "sender", "account",
	    m->account, "device", m->device, "short_id", short_id, "label",
	    label, "sent", (json_int_t)m->sent, "inbox_seq", (json_int_t)qseq,
	    "type", m->type);
	if (o == NULL)
		return ERR_ALLOC;
	if (path != NULL) {
		json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "file", json_string(path));
		json_object_set_new(o, "size",
		    json_integer((json_int_t)m->len));
	} else
		json_object_set_new(o, "body", json_string(m->b64));
	r = print_json_line(o);
	json_decref(o);
	return r;
}

/* The message m for people: its sender, then the text or the file
 * (path); with name "" and no path, the text only when it is not empty
 * (a caption). */
static void
print_message_text(const struct opened_msg *m, const char *short_id,
    const char *label, const char *name, const char *path)
{
	char when[48];

	timefmt_utc(m->sent, when, sizeof(when));
	printf("From %s '%s' %s at %s:\n", m->account, label, short_id, when);
	if (path != NULL)
		printf("[file '%s', %zu bytes, %s, saved as %s]\n", name,
		    m->len, m->type, path);
	else if (m->len > 0 || name == NULL)
		print_text(m->body, m->len);
}

/* --- the steps of one inbox entry --- */

/* One inbox entry on its way through the checks. */
struct entry {
	const struct dirc_inbox_item *it;
	struct env *env;                /* check 1's parse */
	json_t *tree;                   /* the same, for the agent */
	int own;                        /* from the own account */
	struct registry *pin;           /* a contact's pin (in the cache) */
	/* The sender in its verified log; points into a cache that the
	 * gossip check may change: not used after that. */
	const struct acctlog_device *ad;
	char label[DEVREC_LABEL_MAX + 1];
	json_t *ans;                    /* the agent's open answer */
	char why[ERR_MSG_MAX + 64];     /* why it was rejected */
};

/*
 * A step of handle(): 0 or an error that stops the run.  A step that
 * decides the entry sets *oc (it stays OUT_NEXT when the entry passed).
 */
typedef int (*recv_step)(struct recv_run *rr, struct entry *en,
    enum outcome *oc, struct err_ctx *e);

static int reject(struct entry *en, enum outcome *oc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Decides en rejected for the reason fmt (for the local log only). */
static int
reject(struct entry *en, enum outcome *oc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(en->why, sizeof(en->why), fmt, ap);
	va_end(ap);
	*oc = OUT_REJECTED;
	return 0;
}

/*
 * r is the error of bringing the sender's log up to date.  A log that
 * does not verify holds the entry (named once) and gives 0; any other
 * error is returned as it is and stops the run.
 */
static int
hold_if_log_broken(struct recv_run *rr, struct entry *en, enum outcome *oc,
    int r, struct err_ctx *e)
{
	const struct env *env = en->env;

	/* The transparency log did not vouch for the log: the same. */
	if (!view_broken(r) && (r == 0 || r != rr->c->tlog_err))
		return r;
	msg_log(rr->c, "recv: inbox entry %llu held: the log of %s does not "
	    "verify: %s", (unsigned long long)en->it->seq,
	    env->sender_account, err_msg(e));
	if (!held_named_before(rr, en->it->seq))
		print_entry_status(rr, "held", en->it->seq, env, "Held a "
		    "message from %s: the directory's log of %s does not "
		    "verify (%s).\n", env->sender_account, env->sender_account,
		    err_msg(e));
	err_clear(e);
	*oc = OUT_HELD;
	return 0;
}

/* Check 1: a bounded, strict parse.  Its JSON tree is kept for the
 * agent's open request: the envelope's bytes are parsed once. */
static int
parse_envelope(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	struct env_limits lim;
	struct err_ctx e2;

	(void)e;
	memset(&lim, 0, sizeof(lim));
	lim.max_bytes = MSG_AGENT_FRAME_MAX - 4096;
	err_clear(&e2);
	if (env_parse_keep_tree((const uint8_t *)en->it->envelope,
	    en->it->envelope_len, &lim, &en->env, &en->tree, &e2) != 0)
		return reject(en, oc, "check 1 (parse): %s", err_msg(&e2));
	en->own = strcmp(en->env->sender_account, rr->c->account) == 0;
	return 0;
}

/*
 * Check 2, first half: the sender is another device, active in its
 * account's log as verified here: the own log (fetched again, once per
 * page, for a device this run has not seen) or the contact's (brought up
 * to date once per run; pinned on first contact).  Sets en->ad, en->label
 * and, for a contact, en->pin.
 */
static int
check_sender_known(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	struct msg_ctx *c = rr->c;
	const struct env *env = en->env;
	const struct acctlog_state *st;
	int r;

	if (en->own) {
		if (strcmp(env->sender_device, c->device) == 0)
			return reject(en, oc, "check 2 (sender): a message "
			    "from this very device (reflected)");
		if (!rr->own_refreshed ||
		    (acctlog_state_find(&c->own, env->sender_device) == NULL &&
		    !rr->own_retried)) {
			rr->own_retried = rr->own_refreshed;
			if ((r = own_refresh(rr, e)) != 0)
				return hold_if_log_broken(rr, en, oc, r, e);
		}
		st = &c->own;
	} else {
		if ((r = pin_get(rr, env->sender_account, 1, &en->pin,
		    e)) != 0) {
			if (r != ERR_NOT_FOUND)
				return hold_if_log_broken(rr, en, oc, r, e);
			reject(en, oc, "check 2 (sender): %s", err_msg(e));
			err_clear(e);
			return 0;
		}
		st = &en->pin->log;
	}
	if ((en->ad = acctlog_state_find(st, env->sender_device)) == NULL) {
		if (en->own)
			return reject(en, oc, "check 2 (sender): own device "
			    "%.16s is not active in the verified log on this "
			    "device", env->sender_device);
		return reject(en, oc, "check 2 (sender): %.16s is not an "
		    "active device of %s", env->sender_device,
		    env->sender_account);
	}
	snprintf(en->label, sizeof(en->label), "%s", en->ad->rec.label);
	return 0;
}

/*
 * Check 2, second half: the sender device is accepted here -- for the
 * own account approved by the agent, for a contact accepted in the pin.
 * A device that waits for that (pending, or new since the pin) holds the
 * entry until the user decides; it is named once.
 */
static int
check_sender_device_accepted(struct recv_run *rr, struct entry *en,
    enum outcome *oc, struct err_ctx *e)
{
	const struct env *env = en->env;
	unsigned long long seq = (unsigned long long)en->it->seq;
	const char *state;
	char msg[512];

	(void)e;
	if (!en->own) {
		if (msg_contact_accepted(en->pin, env->sender_device))
			return 0;
		*oc = OUT_HELD;
		if (held_named_before(rr, en->it->seq))
			return 0;
		msg_contact_explain(en->pin, env->sender_device, msg,
		    sizeof(msg));
		msg_log(rr->c, "recv: inbox entry %llu held: sender %s", seq,
		    msg);
		print_entry_status(rr, "held", en->it->seq, env, "Held a "
		    "message from %s: %s, which you have not accepted.  If %s "
		    "confirms it, run devid-msg trust %s, then devid-msg "
		    "recv.\n", env->sender_account, msg, env->sender_account,
		    env->sender_account);
		return 0;
	}
	state = own_state(rr, env->sender_device);
	if (state != NULL && strcmp(state, "pending") == 0) {
		*oc = OUT_HELD;
		if (held_named_before(rr, en->it->seq))
			return 0;
		msg_log(rr->c, "recv: inbox entry %llu held: own device %s not "
		    "approved", seq, env->sender_device);
		print_entry_status(rr, "held", en->it->seq, env, "Held a "
		    "message from your device '%s' %.4s..., which is not "
		    "approved on this device.  If it is yours, run devid-agent "
		    "approve %.8s, then devid-msg recv.\n", en->label,
		    env->sender_device, env->sender_device);
		return 0;
	}
	if (state == NULL || strcmp(state, "approved") != 0)
		return reject(en, oc, "check 2 (sender): own device %.16s is "
		    "%s on this device", env->sender_device,
		    state != NULL ? state : "unknown");
	return 0;
}

/* Check 3: the signature verifies under the sender's key from the
 * verified log. */
static int
check_signature(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	const struct env *env = en->env;
	EVP_PKEY *spub = NULL;
	uint8_t digest[32];
	int r;

	(void)rr;
	if ((r = crypto_spki_import(en->ad->rec.sig_pub,
	    en->ad->rec.sig_pub_len, &spub, e)) != 0)
		return r;
	if (env_sig_digest(env, digest) != 0 ||
	    crypto_ecdsa_verify(spub, digest, env->sig) != 0)
		reject(en, oc, "check 3 (signature): does not verify under the "
		    "key of %.16s", env->sender_device);
	EVP_PKEY_free(spub);
	return 0;
}

/* --- attachments (docs/protocol.md section 8) --- */

static int renew_session(struct msg_ctx *c, struct err_ctx *e);

/* 1 for the errors that reject one attachment for good: the message
 * stays accepted, the other files are still fetched. */
static int
file_refused(int r)
{
	return r == ERR_DENIED || r == ERR_GONE || r == ERR_DECRYPT ||
	    r == ERR_FORMAT || r == ERR_TRUNCATED;
}

/* msg_blob_recv() with the agent's new session after a 401, once. */
static int
recv_one(struct recv_run *rr, const struct env_blob_ref *ref, char **path,
    struct err_ctx *e)
{
	struct msg_blob_opts bo;
	struct err_ctx e2;
	int r, renewed = 0;

	memset(&bo, 0, sizeof(bo));
	bo.progress = !rr->cli->quiet;
	bo.label = ref->name;
	for (;;) {
		err_clear(&e2);
		r = msg_blob_recv(rr->c->dirc, ref, rr->cli->out_dir != NULL ?
		    rr->cli->out_dir : ".", &bo, path, &e2);
		if (r != ERR_DENIED || renewed ||
		    dirc_last_status(rr->c->dirc) != 401)
			break;
		renewed = 1;
		if ((r = renew_session(rr->c, &e2)) != 0)
			break;
	}
	if (r != 0)
		err_set(e, r, "%s", err_msg(&e2));
	return r;
}

/* The --json line of a message with files (type and body NULL for the
 * files of a message shown before). */
struct files_line {
	const char *msg_id;
	const char *account;
	const char *device;
	const char *short_id;
	const char *label;
	uint64_t sent;
	uint64_t qseq;
	const char *type;
	const char *body;
};

/*
 * Prints l with files, "status" "ok" when r is 0 and "incomplete"
 * otherwise (the line comes also when the run stops).  Returns r, or
 * ERR_ALLOC when r was 0 and the line could not be made.
 */
static int
print_files_line(const struct files_line *l, json_t *files, int r)
{
	json_t *o;

	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:I, s:I, s:O}",
	    "status", r == 0 ? "ok" : "incomplete", "msg_id", l->msg_id,
	    "sender", "account", l->account, "device", l->device, "short_id",
	    l->short_id, "label", l->label, "sent", (json_int_t)l->sent,
	    "inbox_seq", (json_int_t)l->qseq, "files", files);
	if (o != NULL && l->type != NULL &&
	    (json_object_set_new(o, "type", json_string(l->type)) != 0 ||
	    json_object_set_new(o, "body", json_string(l->body)) != 0)) {
		json_decref(o);
		o = NULL;
	}
	if (o == NULL)
		return r != 0 ? r : ERR_ALLOC;
	if (print_json_line(o) != 0 && r == 0)
		r = ERR_ALLOC;
	json_decref(o);
	return r;
}

/* Says on standard error and in the log that the pending file of inbox
 * entry qseq could not be written (pe), and what follows (then). */
static void
pending_warn(struct recv_run *rr, uint64_t qseq, const struct err_ctx *pe,
    const char *then)
{
	fprintf(stderr, "devid-msg: warning: inbox entry %llu: %s; %s\n",
	    (unsigned long long)qseq, err_msg(pe), then);
	msg_log(rr->c, "recv: inbox entry %llu: %s; %s",
	    (unsigned long long)qseq, err_msg(pe), then);
}

/*
 * Fetches the attachments refs[0..n) of inbox entry qseq into -o DIR,
 * keeping the pending file of the entry up to date when kept is 1 (it
 * was written): after each saved file it holds only those still to
 * fetch, and it is dropped at the end.  A pending file that cannot be
 * updated stays as it was (a later run may fetch a saved file again,
 * under a new name, rather than lose one).  With kept 0 there is no
 * pending file: the keys are in refs only.  Each file is reported (text:
 * one line; --json: an object appended to files).  A file the directory
 * refused or that failed a check is reported and skipped for good; an
 * error that may pass (the network, the disk, no free name) stops here
 * and is returned (files then names the ones not fetched with "error":
 * "pending"): the entry must not be acknowledged, and recv run again.
 */
static int
fetch_files(struct recv_run *rr, uint64_t qseq, const char *msg_id,
    const struct env_blob_ref *refs, size_t n, int kept, json_t *files,
    struct err_ctx *e)
{
	struct err_ctx fe, pe;
	json_t *o;
	char *path = NULL;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		err_clear(&fe);
		r = recv_one(rr, &refs[i], &path, &fe);
		if (r != 0 && !file_refused(r)) {
			size_t j;

			for (j = i; files != NULL && j < n; j++)
				(void)json_array_append_new(files, json_pack(
				    "{s:s, s:s, s:I, s:s}", "name",
				    refs[j].name, "type", refs[j].type, "size",
				    (json_int_t)refs[j].size, "error",
				    "pending"));
			if (!kept)
				return err_set(e, r, "attachment '%s': %s; its "
				    "key could not be kept in %s/pending (see "
				    "the warning above), so it cannot be "
				    "fetched again", refs[i].name,
				    err_msg(&fe), rr->c->data_dir);
			return err_set(e, r, "attachment '%s': %s; the message "
			    "stays in the inbox: run devid-msg recv again later",
			    refs[i].name, err_msg(&fe));
		}
		if (r != 0) {
			msg_log(rr->c, "recv: inbox entry %llu: attachment %s "
			    "(%s) refused: %s", (unsigned long long)qseq,
			    refs[i].name, refs[i].hash, err_msg(&fe));
			if (files != NULL)
				o = json_pack("{s:s, s:s, s:I, s:s, s:s}",
				    "name", refs[i].name, "type",
				    refs[i].type, "size",
				    (json_int_t)refs[i].size, "error",
				    r == ERR_GONE ? "expired" : "rejected",
				    "reason", err_msg(&fe));
			else if (r == ERR_GONE)
				printf("[file '%s' expired on the directory; "
				    "nothing was saved: ask the sender to send "
				    "it again]\n", refs[i].name);
			else
				printf("[attachment '%s' rejected: %s; nothing "
				    "was saved]\n", refs[i].name,
				    err_msg(&fe));
		} else {
			msg_log(rr->c, "recv: inbox entry %llu: saved %s",
			    (unsigned long long)qseq, path);
			if (files != NULL)
				o = json_pack("{s:s, s:s, s:I, s:s}", "name",
				    refs[i].name, "file", path, "size",
				    (json_int_t)refs[i].size, "type",
				    refs[i].type);
			else
				printf("[file '%s', %llu bytes, %s, saved as "
				    "%s]\n", refs[i].name,
				    (unsigned long long)refs[i].size,
				    refs[i].type, path);
			free(path);
			path = NULL;
		}
		if (files != NULL && (o == NULL ||
		    json_array_append_new(files, o) != 0))
			return ERR_ALLOC;
		fflush(stdout);
		/* What is done is not fetched again after a cut. */
		err_clear(&pe);
		if (kept && i + 1 < n && msg_pending_save(rr->c->data_dir,
		    qseq, msg_id, &refs[i + 1], n - i - 1, &pe) != 0)
			pending_warn(rr, qseq, &pe, "the files saved so far "
			    "may be fetched again by a later run");
	}
	return kept ? msg_pending_drop(rr->c->data_dir, qseq, e) : 0;
}

/*
 * An entry handled before whose attachments were not all fetched (its
 * pending file exists): fetches them now.  The agent does not open a
 * message twice, so the sender and the time come from the envelope.
 * *found is 0 when there is no pending file for the entry.
 */
static int
fetch_pending(struct recv_run *rr, struct entry *en, int *found,
    struct err_ctx *e)
{
	struct env_blob_ref *refs = NULL;
	const struct env *env = en->env;
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "?", when[48], *idb = NULL;
	json_t *files = NULL;
	struct err_ctx le;
	size_t n = 0;
	int r;

	*found = 0;
	err_clear(&le);
	r = msg_pending_load(rr->c->data_dir, en->it->seq, &refs, &n, &le);
	if (r == ERR_NOT_FOUND)
		return 0;
	if (r == ERR_FORMAT) {
		/* Its keys are lost: say so and let the entry go. */
		fprintf(stderr, "devid-msg: warning: %s\n", err_msg(&le));
		msg_log(rr->c, "recv: %s", err_msg(&le));
		return msg_pending_drop(rr->c->data_dir, en->it->seq, e);
	}
	if (r != 0)
		return err_set(e, r, "%s", err_msg(&le));
	*found = 1;
	(void)devrec_short_id(env->sender_device, short_id);
	if ((r = b64url_encode(env->id, ENV_ID_LEN, &idb)) != 0)
		goto out;
	if (rr->cli->json) {
		if ((files = json_array()) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
	} else {
		timefmt_utc(env->sent, when, sizeof(when));
		printf("From %s '%s' %s at %s (the files of a message received "
		    "before):\n", env->sender_account, en->label, short_id,
		    when);
	}
	r = fetch_files(rr, en->it->seq, idb, refs, n, 1, files, e);
	if (rr->cli->json) {
		struct files_line fl = { idb, env->sender_account,
		    env->sender_device, short_id, en->label, env->sent,
		    en->it->seq, NULL, NULL };

		r = print_files_line(&fl, files, r);
	}
	if (r != 0)
		goto out;
	fflush(stdout);
 out:
	json_decref(files);
	msg_blob_refs_free(refs, n);
	free(idb);
	return r;
}

/*
 * Check 4: the message was sent inside the replay window and its id was
 * never seen from this sender device.  The same inbox entry again
 * (handled, not acknowledged yet) is skipped -- after fetching the files
 * it still has pending, if any.
 */
static int
check_replay(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	struct err_ctx why;
	uint64_t q = 0;

	(void)e;
	/* Outside the window the store keeps ids for, a message is refused
	 * whether or not its id is still there (msg-replay.h). */
	err_clear(&why);
	if (msg_replay_window(0, en->env->sent, (uint64_t)time(NULL),
	    &why) != 0)
		return reject(en, oc, "check 4 (replay): %s", err_msg(&why));
	if (!msg_replay_find(rr->replay, en->env->sender_device, en->env->id,
	    &q))
		return 0;
	if (q == en->it->seq) {
		int found = 0, r;

		/* Handled before, but maybe with files still to fetch. */
		if ((r = fetch_pending(rr, en, &found, e)) != 0)
			return r;
		*oc = found ? OUT_SHOWN : OUT_SKIPPED;
		return 0;
	}
	return reject(en, oc, "check 4 (replay): message id seen before "
	    "(inbox entry %llu)", (unsigned long long)q);
}

/*
 * Checks 5 to 7 in devid-agent: the unwrap in the token, AES-256-GCM, the
 * inner payload, the gossip check of the own account.  The request
 * carries the envelope as check 1 parsed it and, for a contact, the
 * sender's key from the verified log.  Once the agent accepted, the id
 * goes into the replay store before anything else; en->ans is the answer.
 */
static int
open_in_agent(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	const struct env *env = en->env;
	json_t *req = NULL;
	struct err_ctx e2;
	char *sk = NULL;
	int r = ERR_INTERNAL;

	if ((req = json_pack("{s:s, s:O}", "op", "open", "envelope",
	    en->tree)) == NULL)
		return ERR_ALLOC;
	if (!en->own) {
		if ((r = b64url_encode(en->ad->rec.sig_pub,
		    en->ad->rec.sig_pub_len, &sk)) != 0)
			goto out;
		json_object_set_new(req, "sender_key", json_string(sk));
	}
	if ((r = msg_agent_call(rr->c->agent, req, &en->ans, e)) != 0) {
		if (r != ERR_REJECTED)
			goto out;
		err_clear(e);
		/* Tell the user about a split view the agent saw. */
		err_clear(&e2);
		(void)gossip_check(rr, env, 0, &e2);
		r = reject(en, oc, "checks 5-7 in devid-agent (its log has the "
		    "reason)");
		goto out;
	}
	r = msg_replay_add(rr->replay, env->sender_device, env->id,
	    en->it->seq, (uint64_t)time(NULL), e);
 out:
	free(sk);
	json_decref(req);
	return r;
}

/* Check 7 for the contacts' logs: the message's views agree with them. */
static int
check_gossip(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	struct err_ctx e2;

	(void)e;
	en->ad = NULL;          /* the pin cache may change now */
	err_clear(&e2);
	if (gossip_check(rr, en->env, 1, &e2) != 0)
		return reject(en, oc, "check 7 (gossip): %s", err_msg(&e2));
	return 0;
}

/*
 * PROTOCOL.md section 7.7, with witnesses configured: the checkpoint the
 * sender kept (in the inner payload, as the agent's open answer gives it)
 * is checked against the one kept here.  A fork rejects the message like
 * a split view (and is reported to the agent); a checkpoint the
 * witnesses do not vouch for is logged and ignored.
 */
static int
check_checkpoint(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	const json_t *pl = json_object_get(en->ans, "payload");
	const char *note;
	struct err_ctx e2;
	int r;

	if (rr->c->tlog == NULL ||
	    (note = json_string_value(json_object_get(pl, "checkpoint"))) ==
	    NULL)
		return 0;
	err_clear(&e2);
	r = msg_tlog_check_sender(rr->c, note, en->env->sender_device, &e2);
	if (r == ERR_FORK)
		return reject(en, oc, "check 7 (transparency log): %s",
		    err_msg(&e2));
	if (r != 0)
		return err_set(e, r, "%s", err_msg(&e2));
	return 0;
}

/*
 * The accepted message m has attachments (the payload's "blobs"): their
 * references are kept durably (the pending store) before the first
 * download (when that fails, a warning, and the files are fetched all
 * the same: the agent does not open m again), the caption and each file
 * are shown as the files are fetched (--json: one line with a "files"
 * array at the end).  A reference list the agent let through but that
 * devid-msg cannot read rejects the message.
 */
static int
show_with_files(struct recv_run *rr, struct entry *en,
    const struct opened_msg *m, const json_t *blobs, const char *short_id,
    enum outcome *oc, struct err_ctx *e)
{
	struct env_blob_ref *refs = NULL;
	json_t *files = NULL;
	struct err_ctx fe, pe;
	size_t n = 0;
	int r, kept = 1;

	err_clear(&fe);
	r = msg_blob_refs_from_json(blobs, &refs, &n, &fe);
	/* The keys stay in refs only (and the pending file). */
	msg_blob_json_wipe_keys((json_t *)(uintptr_t)blobs);
	if (r != 0) {
		if (r != ERR_FORMAT)
			return r;
		return reject(en, oc, "the message's files: %s",
		    err_msg(&fe));
	}
	/* The agent opens a message once: should the references not be
	 * kept, the files are still fetched now, with the keys in memory. */
	err_clear(&pe);
	if (msg_pending_save(rr->c->data_dir, en->it->seq, m->msg_id, refs,
	    n, &pe) != 0) {
		pending_warn(rr, en->it->seq, &pe, "the files are fetched now, "
		    "but if this run is cut they cannot be fetched again");
		kept = 0;
	}
	if (rr->cli->json) {
		if ((files = json_array()) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
	} else {
		/* The caption, if any; the files follow. */
		print_message_text(m, short_id, en->label, "", NULL);
		fflush(stdout);
	}
	r = fetch_files(rr, en->it->seq, m->msg_id, refs, n, kept, files,
	    e);
	/* With --json the line comes also when the run stops here. */
	if (rr->cli->json) {
		struct files_line fl = { m->msg_id, m->account, m->device,
		    short_id, en->label, m->sent, en->it->seq, m->type,
		    m->b64 };

		r = print_files_line(&fl, files, r);
	}
	if (r != 0)
		goto out;
	fflush(stdout);
	*oc = OUT_SHOWN;
	r = 0;
 out:
	json_decref(files);
	msg_blob_refs_free(refs, n);
	return r;
}

/*
 * Shows the accepted message: a text on standard output (or one JSON
 * line), its attachments fetched and saved (show_with_files()), an
 * inline file (version 1) saved as a file (never written to a terminal).
 */
static int
print_message(struct recv_run *rr, struct entry *en, enum outcome *oc,
    struct err_ctx *e)
{
	struct opened_msg m;
	const json_t *blobs;
	const char *name;
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "?", gen[40];
	char *path = NULL;
	int r = ERR_INTERNAL;

	memset(&m, 0, sizeof(m));
	if ((r = opened_msg_read(en->ans, &m, e)) != 0)
		goto out;
	(void)devrec_short_id(m.device, short_id);
	blobs = json_object_get(json_object_get(en->ans, "payload"), "blobs");
	if (blobs != NULL) {
		r = show_with_files(rr, en, &m, blobs, short_id, oc, e);
		goto out;
	}
	name = m.name;
	if (name == NULL && strncmp(m.type, "text/", 5) != 0) {
		snprintf(gen, sizeof(gen), "message-%.22s", m.msg_id);
		name = gen;
	}
	if (name != NULL && (r = msg_save_file(rr->cli->out_dir != NULL ?
	    rr->cli->out_dir : ".", name, m.body, m.len, &path, e)) != 0)
		goto out;
	if (rr->cli->json) {
		if ((r = print_message_json(en->it->seq, &m, short_id,
		    en->label, name, path)) != 0)
			goto out;
	} else
		print_message_text(&m, short_id, en->label, name, path);
	fflush(stdout);
	*oc = OUT_SHOWN;
	r = 0;
 out:
	opened_msg_clear(&m);
	free(path);
	return r;
}

/*
 * Handles one inbox entry: the checks of PROTOCOL.md section 4 in their
 * order, then shows it.  Returns 0 with *oc set, or an error that stops
 * the run without acknowledging this entry (the agent is locked, the
 * directory or the agent cannot be reached, the disk is full).
 */
static int
handle(struct recv_run *rr, const struct dirc_inbox_item *it,
    enum outcome *oc, struct err_ctx *e)
{
	static const recv_step steps[] = {
		parse_envelope,
		check_sender_known,
		check_sender_device_accepted,
		check_signature,
		check_replay,
		open_in_agent,
		check_gossip,
		check_checkpoint,
		print_message,
	};
	struct entry en;
	size_t i;
	int r = 0;

	memset(&en, 0, sizeof(en));
	en.it = it;
	*oc = OUT_NEXT;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]) && *oc == OUT_NEXT;
	    i++) {
		if ((r = steps[i](rr, &en, oc, e)) != 0)
			break;
	}
	if (r == 0 && *oc == OUT_REJECTED)
		report_rejected(rr, it->seq, en.why);
	json_decref(en.ans);
	json_decref(en.tree);
	env_free(en.env);
	return r;
}

/* --- the run --- */

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

/*
 * Starts the run rr of cli on the opened context c: the replay store and
 * the own account's verified log.  A log that does not verify is no
 * error: the messages of contacts can still be read.
 */
static int
recv_start(struct recv_run *rr, struct msg_ctx *c, const struct msg_cli *cli,
    struct err_ctx *e)
{
	char *rpath = NULL;
	int r;

	rr->c = c;
	rr->cli = cli;
	if (asprintf(&rpath, "%s/%s", c->data_dir, MSG_REPLAY_FILE) < 0)
		return ERR_ALLOC;
	r = msg_replay_open(rpath, 0, &rr->replay, e);
	free(rpath);
	if (r != 0)
		return r;
	if ((r = own_refresh(rr, e)) != 0) {
		if (!view_broken(r))
			return r;
		fprintf(stderr, "devid-msg: warning: %s; messages from your "
		    "own devices are held\n", err_msg(e));
		err_clear(e);
	}
	return 0;
}

/*
 * The next page of the inbox in *in (replacing the one there), waiting
 * for new messages with --follow.  When the directory refuses the session
 * the agent's new one is taken, once; with --follow a directory that
 * cannot be reached is tried again every 10 s.
 */
static int
fetch_page(struct recv_run *rr, struct dirc_inbox **in, struct err_ctx *e)
{
	unsigned int wait_s = rr->cli->follow ? MSG_FOLLOW_WAIT_S : 0;
	int r, renewed = 0;

	for (;;) {
		dirc_inbox_free(*in);
		*in = NULL;
		if ((r = dirc_inbox(rr->c->dirc, wait_s, INBOX_PAGE, in,
		    e)) == 0)
			return 0;
		if (r == ERR_DENIED && !renewed) {
			/* The session ended: take the agent's new one. */
			renewed = 1;
			err_clear(e);
			if ((r = renew_session(rr->c, e)) != 0)
				return r;
			continue;
		}
		if (!rr->cli->follow || (r != ERR_NETWORK && r != ERR_TIMEOUT))
			return r;
		fprintf(stderr, "devid-msg: %s; trying again in 10 s\n",
		    err_msg(e));
		err_clear(e);
		sleep(10);
	}
}

/*
 * Handles the entries of page in order.  *ack_upto gets the last entry
 * before the first held one (0: none), *held whether one was held, *done
 * whether --count is reached.  An error stops at its entry.
 */
static int
handle_page(struct recv_run *rr, const struct dirc_inbox *page,
    uint64_t *ack_upto, int *held, int *done, struct err_ctx *e)
{
	enum outcome oc;
	size_t i;
	int r;

	*ack_upto = 0;
	*held = 0;
	for (i = 0; i < page->n_items; i++) {
		if ((r = handle(rr, &page->items[i], &oc, e)) != 0)
			return r;
		if (oc == OUT_HELD)
			*held = 1;
		else if (!*held)
			*ack_upto = page->items[i].seq;
		if (oc == OUT_SHOWN && rr->cli->count != 0 &&
		    ++rr->shown >= rr->cli->count) {
			*done = 1;
			break;
		}
	}
	return 0;
}

/*
 * Acknowledges the inbox up to ack_upto (0: nothing), also after the page
 * stopped with the error r, which it returns.  When r is 0, a failed
 * acknowledgement becomes the run's error (ERR_NETWORK, reason in e).
 */
static int
acknowledge(struct recv_run *rr, uint64_t ack_upto, int r, struct err_ctx *e)
{
	struct err_ctx e2;

	if (ack_upto == 0)
		return r;
	err_clear(&e2);
	if (dirc_ack(rr->c->dirc, ack_upto, NULL, &e2) != 0 && r == 0) {
		*e = e2;
		return ERR_NETWORK;
	}
	return r;
}

int
msg_cmd_recv(const struct msg_cli *cli)
{
	struct msg_ctx c;
	struct recv_run rr;
	struct err_ctx e;
	struct dirc_inbox *in = NULL;
	uint64_t ack_upto;
	int r = ERR_INTERNAL, held, done = 0;

	err_clear(&e);
	memset(&rr, 0, sizeof(rr));
	if ((r = msg_ctx_open(&c, cli, 1, &e)) != 0 ||
	    (r = recv_start(&rr, &c, cli, &e)) != 0)
		goto out;
	while (!done) {
		if ((r = fetch_page(&rr, &in, &e)) != 0)
			goto out;
		rr.own_retried = 0;
		if (in->n_items == 0) {
			if (!cli->follow)
				break;
			continue;
		}
		r = handle_page(&rr, in, &ack_upto, &held, &done, &e);
		if ((r = acknowledge(&rr, ack_upto, r, &e)) != 0)
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
	run_clear(&rr);
	msg_ctx_close(&c);
	return r == 0 ? 0 : 1;
}
