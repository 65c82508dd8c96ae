/*
 * agent-watch.c - the watcher thread and the verification of what the
 * directory shows against the registry.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "acctlog.h"
#include "agent-alert.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-watch.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "registry.h"
#include "timefmt.h"
#include "transcript.h"

int
agent_watch_sign_locked(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	struct agent *a = arg;
	int r;

	pthread_mutex_lock(&a->lock);
	r = agent_token_sign(&a->tok, digest, sig, e);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int
agent_watch_sign_transcript(void *arg, const uint8_t *transcript, size_t len,
    uint8_t sig[64], struct err_ctx *e)
{
	uint8_t digest[32];
	int r;

	if (!tr_is_signable(transcript, len))
		return err_set(e, ERR_DENIED, "refused to sign a transcript "
		    "without a devid domain tag");
	if ((r = crypto_sha256(transcript, len, digest)) != 0)
		return r;
	return agent_watch_sign_locked(arg, digest, sig, e);
}

static json_t *
head_json(const struct acctlog_head *h)
{
	json_t *j = NULL;

	if (acctlog_head_to_json(h, &j, NULL) != 0)
		return json_null();
	return j;
}

/* Evidence of a failed update: both heads. */
static json_t *
evidence_json(const struct acctlog_evidence *ev,
    const struct acctlog_head *presented)
{
	json_t *d = json_object();

	if (d == NULL)
		return NULL;
	json_object_set_new(d, "seq", json_integer((json_int_t)ev->seq));
	json_object_set_new(d, "verified_head", ev->has_verified ?
	    head_json(&ev->verified) : json_null());
	json_object_set_new(d, "conflicting_head", head_json(
	    ev->kind != 0 ? &ev->conflicting : presented));
	return d;
}

struct reg_device *
agent_watch_endorser_approved(struct agent *a, const struct reg_device *d)
{
	struct reg_device *by;

	if (!d->has_record || !d->rec.has_endorsement ||
	    strcmp(d->rec.endorsed_by, d->device) == 0 ||
	    (by = reg_find(&a->reg, d->rec.endorsed_by)) == NULL ||
	    by->state != REG_APPROVED)
		return NULL;
	return by;
}

int
agent_watch_needs_force(struct agent *a, const struct reg_device *d)
{
	return a->cfg->require_endorsement && d->add_seq != 1 &&
	    agent_watch_endorser_approved(a, d) == NULL;
}

/*
 * Raises (lock held) the `device_added` alert of an addition that needs
 * nothing more from the user, as severity info, and closes it at once
 * with how "endorsed": it is still announced (log line, alert_command,
 * journal).  Takes ownership of det.
 */
static void
announce_settled(struct agent *a, const char *key, const char *device,
    const char *label, const char *msg, json_t *det)
{
	const struct agent_alert *al = NULL;
	char id[AGENT_ALERT_ID_LEN + 1];
	struct err_ctx e;

	err_clear(&e);
	if (agent_raise_alert_severity(a, AGENT_ALERT_DEVICE_ADDED,
	    AGENT_ALERT_INFO, key, a->cfg->account, device, label, msg, det,
	    &al, &e) < 0 || al == NULL)
		return;
	memcpy(id, al->id, sizeof(id));
	if (agent_alert_close(&a->alerts, id, AGENT_ALERT_HOW_ENDORSED,
	    &e) != 0)
		agent_log(LOG_ERR, "alert %s not closed: %s", id, err_msg(&e));
}

/*
 * The alert for an add event of another device.  An addition endorsed by
 * a device this registry approved is approved here (d becomes approved)
 * and announced as settled; any other stays pending, as a critical alert
 * when require_endorsement asks for an endorsement it lacks.
 */
static void
announce_add(struct agent *a, const struct acctlog_event *evt,
    struct reg_device *d, uint64_t now)
{
	const struct devrec *rec = &evt->record;
	struct reg_device *endorser = NULL, *approver;
	char short_id[DEVREC_SHORT_ID_LEN + 1], eshort[DEVREC_SHORT_ID_LEN + 1];
	char when[32], msg[AGENT_ALERT_MESSAGE_MAX + 1],
	    key[AGENT_ALERT_KEY_MAX + 1];
	char hash[65], endorse[160] = "", force[160] = "";
	json_t *det, *recj = NULL;
	int critical;

	(void)devrec_short_id(evt->device, short_id);
	timefmt_utc(evt->time, when, sizeof(when));
	hex_encode(evt->hash, 32, hash);
	approver = agent_watch_endorser_approved(a, d);
	critical = agent_watch_needs_force(a, d);
	if (rec->has_endorsement) {
		endorser = reg_find(&a->reg, rec->endorsed_by);
		(void)devrec_short_id(rec->endorsed_by, eshort);
		snprintf(endorse, sizeof(endorse), "%sendorsed by %s device "
		    "'%s' %s%s", approver != NULL ? "" : "; ",
		    approver != NULL ? "approved" : "unapproved",
		    endorser != NULL ? endorser->label : "?", eshort,
		    strcmp(rec->endorsed_by, a->reg.device) == 0 ?
		    " (this device)" : "");
	}
	snprintf(key, sizeof(key), "added:%s:%llu", evt->device,
	    (unsigned long long)evt->seq);
	(void)devrec_to_json(rec, &recj, NULL);
	det = json_pack("{s:I, s:s, s:I, s:b, s:s, s:b, s:b, s:o*}",
	    "seq", (json_int_t)evt->seq, "hash", hash,
	    "added", (json_int_t)evt->time,
	    "endorsed", rec->has_endorsement,
	    "endorsed_by", rec->has_endorsement ? rec->endorsed_by : "",
	    "endorser_approved", approver != NULL,
	    "approved", approver != NULL, "record", recj);
	if (approver != NULL) {
		d->state = REG_APPROVED;
		d->changed = now;
		snprintf(msg, sizeof(msg), "new device '%s' %s added to %s at "
		    "%s, %s: approved", d->label, short_id, a->reg.account,
		    when, endorse);
		announce_settled(a, key, evt->device, d->label, msg, det);
		return;
	}
	if (critical)
		snprintf(force, sizeof(force), "; require_endorsement is on: "
		    "approve it only if you added it yourself (devid-agent "
		    "approve --force %s)", short_id);
	else
		snprintf(force, sizeof(force), " (devid-agent approve %s)",
		    short_id);
	/* A message cut at its limit still names the device first. */
	if (snprintf(msg, sizeof(msg), "new device '%s' %s added to %s at %s, "
	    "not yet approved%s%s", d->label, short_id, a->reg.account, when,
	    endorse, force) >= (int)sizeof(msg))
		agent_log(LOG_DEBUG, "alert message cut short");
	(void)agent_raise_alert_severity(a, AGENT_ALERT_DEVICE_ADDED,
	    critical ? AGENT_ALERT_CRITICAL : NULL, key, a->cfg->account,
	    evt->device, d->label, msg, det, NULL, NULL);
}

/*
 * The add event in events[0..n) of the device this one vouched for when
 * it enrolled: this device's record in the registry (written by `enroll`
 * and signed by the token) carries an endorsement by X, the batch holds
 * this device's first registration with an endorsement by that same X,
 * and the index of X's last add event before it is returned (X was
 * active then, which the log's verification checked).  The user compared
 * X's enrolment on both screens, so X is approved without a question.
 * Returns n when there is none.
 */
static size_t
enrolment_endorser_event(struct agent *a, const struct acctlog_event *events,
    size_t n)
{
	const struct reg_device *self = reg_find(&a->reg, a->reg.device);
	const struct devrec *own;
	size_t i, at = n;

	if (self == NULL || !self->has_record || !self->rec.has_endorsement ||
	    self->add_seq != 0)
		return n;
	for (i = 0; i < n; i++)
		if (events[i].type == ACCTLOG_ADD &&
		    strcmp(events[i].device, a->reg.device) == 0)
			break;
	if (i == n)
		return n;
	own = &events[i].record;
	if (!own->has_endorsement ||
	    strcmp(own->endorsed_by, self->rec.endorsed_by) != 0)
		return n;
	while (i-- > 0)
		if (events[i].type == ACCTLOG_ADD &&
		    strcmp(events[i].device, own->endorsed_by) == 0) {
			at = i;
			break;
		}
	return at;
}

/* Approves (lock held) d, the device that endorsed this device's
 * enrolment, at its add event evt, and announces it as settled. */
static void
announce_enrolment_endorser(struct agent *a, const struct acctlog_event *evt,
    struct reg_device *d, uint64_t now)
{
	char short_id[DEVREC_SHORT_ID_LEN + 1], when[32], hash[65];
	char msg[AGENT_ALERT_MESSAGE_MAX + 1], key[AGENT_ALERT_KEY_MAX + 1];
	json_t *recj = NULL;

	d->state = REG_APPROVED;
	d->changed = now;
	(void)devrec_short_id(evt->device, short_id);
	timefmt_utc(evt->time, when, sizeof(when));
	hex_encode(evt->hash, 32, hash);
	snprintf(msg, sizeof(msg), "device '%s' %s of %s (added at %s) "
	    "endorsed the enrolment of this device: approved", d->label,
	    short_id, a->reg.account, when);
	snprintf(key, sizeof(key), "added:%s:%llu", evt->device,
	    (unsigned long long)evt->seq);
	(void)devrec_to_json(&evt->record, &recj, NULL);
	announce_settled(a, key, evt->device, d->label, msg,
	    json_pack("{s:I, s:s, s:I, s:b, s:s, s:b, s:b, s:b, s:o*}",
	    "seq", (json_int_t)evt->seq, "hash", hash,
	    "added", (json_int_t)evt->time,
	    "endorsed", evt->record.has_endorsement,
	    "endorsed_by", evt->record.has_endorsement ?
	    evt->record.endorsed_by : "", "endorser_approved", 0,
	    "approved", 1, "enrolment_endorser", 1, "record", recj));
}

/* Brings the registry up to date with newly applied events. */
static void
apply_events(struct agent *a, const struct acctlog_event *events, size_t n,
    uint64_t now)
{
	const struct acctlog_event *evt;
	struct reg_device *d;
	char short_id[DEVREC_SHORT_ID_LEN + 1], when[32];
	char msg[AGENT_ALERT_MESSAGE_MAX + 1], key[AGENT_ALERT_KEY_MAX + 1];
	struct err_ctx e;
	size_t i, vouched = enrolment_endorser_event(a, events, n);

	for (i = 0; i < n; i++) {
		evt = &events[i];
		a->events_seen++;
		err_clear(&e);
		d = reg_find(&a->reg, evt->device);
		if (d == NULL && reg_add(&a->reg, evt->device, &d, &e) != 0) {
			agent_log(LOG_ERR, "registry: %s", err_msg(&e));
			continue;
		}
		if (d->first_seen == 0)
			d->first_seen = now;
		(void)devrec_short_id(evt->device, short_id);
		if (evt->type == ACCTLOG_ADD) {
			snprintf(d->label, sizeof(d->label), "%s",
			    evt->record.label);
			d->rec = evt->record;
			d->has_record = 1;
			if (strcmp(evt->device, a->reg.device) == 0 &&
			    d->state == REG_APPROVED && d->add_seq == 0) {
				/* This device's own registration. */
				d->add_seq = evt->seq;
				memcpy(d->add_hash, evt->hash, 32);
				d->changed = now;
				agent_log(LOG_NOTICE, "this device %s is "
				    "registered at seq %llu", short_id,
				    (unsigned long long)evt->seq);
				continue;
			}
			if (d->state == REG_APPROVED &&
			    d->add_seq == evt->seq &&
			    memcmp(d->add_hash, evt->hash, 32) == 0)
				continue;
			d->state = REG_PENDING;
			d->add_seq = evt->seq;
			memcpy(d->add_hash, evt->hash, 32);
			d->changed = now;
			if (i == vouched)
				announce_enrolment_endorser(a, evt, d, now);
			else
				announce_add(a, evt, d, now);
		} else {
			int expected = d->state == REG_REVOKED;

			d->state = REG_REVOKED;
			d->changed = now;
			if (expected)
				continue;       /* revoked by this agent */
			timefmt_utc(evt->time, when, sizeof(when));
			snprintf(msg, sizeof(msg), "device '%s' %s of %s was "
			    "revoked at %s%s", d->label, short_id,
			    a->reg.account, when,
			    strcmp(evt->device, a->reg.device) == 0 ?
			    " (this device)" : "");
			snprintf(key, sizeof(key), "revoked:%s:%llu",
			    evt->device, (unsigned long long)evt->seq);
			agent_raise(a, AGENT_ALERT_DEVICE_REVOKED, key,
			    evt->device,
			    d->label, msg, json_pack("{s:I}", "seq",
			    (json_int_t)evt->seq));
		}
	}
}

/*
 * Checks (lock held) that the head is of the registry's account and
 * signed with the pinned directory key, raising a `log_invalid` or
 * `wrong_key` alert when it is not.  hash is the head's hash in hex.
 * Returns 0, or ERR_FORMAT / ERR_WRONG_KEY with the reason in e.
 */
static int
watch_check_head(struct agent *a, const struct acctlog_head *h,
    const char *hash, struct err_ctx *e)
{
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];
	struct err_ctx local;

	err_clear(&local);
	if (strcmp(h->account, a->reg.account) != 0) {
		snprintf(key, sizeof(key), "log_invalid:account");
		agent_raise(a, AGENT_ALERT_LOG_INVALID, key, NULL, NULL, "the "
		    "directory answered with the log of another account",
		    json_pack("{s:o}", "head", head_json(h)));
		return err_set(e, ERR_FORMAT, "head of another account");
	}
	if (acctlog_head_verify(h, a->dir_pub, NULL, &local) != 0) {
		snprintf(key, sizeof(key), "wrong_key:%llu:%.16s",
		    (unsigned long long)h->seq, hash);
		snprintf(msg, sizeof(msg), "the directory signed the head of "
		    "%s (seq %llu) with a key other than the pinned one %.16s: "
		    "%s", a->reg.account, (unsigned long long)h->seq,
		    a->dir_id, err_msg(&local));
		agent_raise(a, AGENT_ALERT_WRONG_KEY, key, NULL, NULL, msg,
		    json_pack("{s:o, s:s}", "head", head_json(h),
		    "pinned_directory", a->dir_id));
		return err_set(e, ERR_WRONG_KEY, "%s", err_msg(&local));
	}
	return 0;
}

/*
 * Raises (lock held) the alert for an update that acctlog_verify_update()
 * refused with r (why says why, ev holds the evidence): `rollback`,
 * `fork` (also for a rewritten event), `log_invalid`; none for a stale
 * head, which max_stale alerts on its own.  hash is the presented head's
 * hash in hex.
 */
static void
watch_alert_refused_update(struct agent *a, int r,
    const struct acctlog_evidence *ev, const struct acctlog_head *h,
    const char *hash, const struct err_ctx *why)
{
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];

	switch (r) {
	case ERR_ROLLBACK:
		snprintf(key, sizeof(key), "rollback:%llu:%llu",
		    (unsigned long long)a->reg.log.seq,
		    (unsigned long long)h->seq);
		snprintf(msg, sizeof(msg), "the directory rolled back the log "
		    "of %s: it now shows seq %llu, but seq %llu was verified "
		    "before", a->reg.account, (unsigned long long)h->seq,
		    (unsigned long long)a->reg.log.seq);
		agent_raise(a, AGENT_ALERT_ROLLBACK, key, NULL, NULL, msg,
		    evidence_json(ev, h));
		break;
	case ERR_FORK:
	case ERR_CHAIN:
		snprintf(key, sizeof(key), "fork:%llu:%.16s",
		    (unsigned long long)ev->seq, hash);
		snprintf(msg, sizeof(msg), "the directory shows a different "
		    "history of %s at seq %llu than the one verified before "
		    "(a fork or a rewritten event): %s", a->reg.account,
		    (unsigned long long)ev->seq, err_msg(why));
		agent_raise(a, AGENT_ALERT_FORK, key, NULL, NULL, msg,
		    evidence_json(ev, h));
		break;
	case ERR_STALE:
		/* Not trusted, not an alert of its own: max_stale will. */
		break;
	default:
		snprintf(key, sizeof(key), "log_invalid:%llu:%.16s",
		    (unsigned long long)h->seq, hash);
		snprintf(msg, sizeof(msg), "the log of %s up to seq %llu does "
		    "not verify: %s", a->reg.account,
		    (unsigned long long)h->seq, err_msg(why));
		agent_raise(a, AGENT_ALERT_LOG_INVALID, key, NULL, NULL, msg,
		    json_pack("{s:o}", "head", head_json(h)));
		break;
	}
}

/*
 * After a fresh, verified check (lock held): records the success,
 * settles a pending gossip report, closes the `stale` alert, checks that
 * the verified log still lists the token's keys (agent-anchor.h) and
 * brings the registry up to date with the events the check applied
 * (re-signing it).
 */
static void
watch_accept_update(struct agent *a, const struct acctlog_response *resp,
    const struct acctlog_evidence *ev, uint64_t now)
{
	struct err_ctx e;

	err_clear(&e);
	a->last_success = now;
	a->last_error[0] = '\0';
	agent_gossip_check(a);
	(void)agent_alert_close_matching(&a->alerts, AGENT_ALERT_STALE, NULL,
	    "clear", NULL);
	agent_anchor_after_check(a);
	if (ev->n_applied > 0) {
		apply_events(a, resp->events + ev->first_applied, ev->n_applied,
		    now);
		a->reg.updated = now;
		if (agent_save_registry(a, &e) != 0)
			agent_log(LOG_ERR, "registry not saved: %s",
			    err_msg(&e));
	}
}

int
agent_watch_apply(struct agent *a, const struct acctlog_response *resp,
    uint64_t now, struct err_ctx *e)
{
	const struct acctlog_head *h = &resp->head;
	struct acctlog_evidence ev;
	char hash[65];
	struct err_ctx local;
	int r;

	a->checks++;
	a->last_attempt = now;
	err_clear(&local);
	hex_encode(h->hash, 32, hash);
	if ((r = watch_check_head(a, h, hash, e)) != 0)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	if ((r = acctlog_verify_update(&a->reg.log, resp->events,
	    resp->n_events, h, a->dir_pub, now, a->cfg->max_stale, &ev,
	    &local)) != 0) {
		watch_alert_refused_update(a, r, &ev, h, hash, &local);
		r = err_set(e, r, "%s", err_msg(&local));
		goto fail;
	}
	watch_accept_update(a, resp, &ev, now);
	return 0;
 fail:
	a->checks_failed++;
	snprintf(a->last_error, sizeof(a->last_error), "%s", err_msg(e));
	agent_log(LOG_WARNING, "check failed: %s", err_msg(e));
	return r;
}

/* Seconds before the next check while the latest event waits for a
 * checkpoint of the transparency log that proves it. */
#define WATCH_TLOG_RECHECK_S 2

/* At most this many pages of events (1024 each) are joined in one check. */
#define WATCH_MAX_PAGES 8

/*
 * Moves the events of next to the end of resp and takes next's head (the
 * newer one), so that a log longer than one answer is verified as a whole
 * against the last head.  next is freed.  0 or ERR_ALLOC (resp unchanged,
 * next still freed).
 */
static int
watch_join_page(struct acctlog_response *resp, struct acctlog_response *next)
{
	struct acctlog_event *ev;
	size_t n;

	if (next->n_events > SIZE_MAX / sizeof(*ev) - resp->n_events) {
		acctlog_response_free(next);
		return ERR_ALLOC;
	}
	n = resp->n_events + next->n_events;
	if ((ev = realloc(resp->events, (n == 0 ? 1 : n) * sizeof(*ev))) ==
	    NULL) {
		acctlog_response_free(next);
		return ERR_ALLOC;
	}
	if (next->n_events > 0)
		memcpy(ev + resp->n_events, next->events,
		    next->n_events * sizeof(*ev));
	resp->events = ev;
	resp->n_events = n;
	resp->head = next->head;
	acctlog_response_free(next);
	return 0;
}

/*
 * Fetches the pages that follow resp (lock not held) until its events
 * reach its head or WATCH_MAX_PAGES pages are joined; the caller's
 * verification then refuses a log still cut short.
 */
static int
watch_fetch_rest(struct dirc *c, const char *account,
    struct acctlog_response *resp, struct err_ctx *e)
{
	struct acctlog_response *next = NULL;
	uint64_t last;
	int pages, r;

	for (pages = 1; pages < WATCH_MAX_PAGES; pages++) {
		if (resp->n_events == 0)
			return 0;
		last = resp->events[resp->n_events - 1].seq;
		if (last >= resp->head.seq)
			return 0;
		if ((r = dirc_get_log(c, account, last, 0, &next, e)) != 0)
			return r;
		if ((r = watch_join_page(resp, next)) != 0)
			return err_set(e, r, "out of memory joining log pages");
		next = NULL;	/* freed by watch_join_page */
	}
	return 0;
}

/* Waits (lock held) until deadline, a refresh request or stop. */
static void
watch_wait(struct agent *a, uint64_t seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)seconds;
	while (!a->stop && !a->refresh) {
		if (pthread_cond_timedwait(&a->wake_watch, &a->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	a->refresh = 0;
}

static void
watch_failed(struct agent *a, const struct err_ctx *e)
{
	a->checks++;
	a->checks_failed++;
	a->last_attempt = (uint64_t)time(NULL);
	snprintf(a->last_error, sizeof(a->last_error), "%s", err_msg(e));
	agent_log(LOG_WARNING, "check failed: %s", err_msg(e));
}

/*
 * Makes sure (lock held) that the directory client c has a session valid
 * for at least another minute (*expires: until when).  Takes the session
 * a client had the agent make or, when there is none, logs in with the
 * token (lock released meanwhile) and shares the new session.  Returns 1
 * when the caller may ask for the log now; 0 when it should go round
 * again: the token is locked, its keys are not this device's
 * (agent-anchor.h) or the login failed (recorded in e and in the agent;
 * either way it has waited), or a cached session was taken.
 */
static int
watch_have_session(struct agent *a, struct dirc *c, uint64_t *expires,
    struct err_ctx *e)
{
	const struct agent_config *cfg = a->cfg;
	const char *token;
	int r;

	if (agent_anchor_blocked(&a->anchor)) {
		/* The token's keys are not this device's: never used. */
		*expires = 0;
		snprintf(a->last_error, sizeof(a->last_error), "%.*s",
		    (int)sizeof(a->last_error) - 1, a->anchor.why);
		watch_wait(a, cfg->check_interval);
		return 0;
	}
	if (*expires > (uint64_t)time(NULL) + 60)
		return 1;
	if (agent_token_locked(&a->tok) || !a->reg_verified) {
		snprintf(a->last_error, sizeof(a->last_error), "locked: no "
		    "directory session until devid-agent unlock");
		watch_wait(a, cfg->check_interval);
		return 0;
	}
	/* A session a client had the agent make. */
	if (agent_session_cached(a, &token, expires) &&
	    dirc_set_token(c, token) == 0)
		return 0;
	pthread_mutex_unlock(&a->lock);
	r = dirc_login(c, a->dir_id, a->tok.device,
	    agent_watch_sign_transcript, a, expires, e);
	pthread_mutex_lock(&a->lock);
	if (r != 0) {
		*expires = 0;
		agent_anchor_login_refused(a, r, dirc_last_error_code(c), e);
		watch_failed(a, e);
		watch_wait(a, cfg->check_interval);
		return 0;
	}
	agent_session_store(a, dirc_token(c), *expires);
	agent_log(LOG_INFO, "directory session until %llu",
	    (unsigned long long)*expires);
	return 1;
}

/*
 * Asks (lock not held) for the account's log after seq since, waiting up
 * to wait_s seconds for news, and joins the pages that follow.  *resp is
 * the whole answer on success and NULL on failure.
 */
static int
watch_fetch_log(struct dirc *c, const char *account, uint64_t since,
    unsigned int wait_s, int tlog, struct acctlog_response **resp,
    struct err_ctx *e)
{
	int r;

	/* With witnesses, the first page carries the checkpoint and the
	 * inclusion proof (tlog=1); the pages that follow need none. */
	r = tlog ? dirc_get_log_tlog(c, account, since, wait_s, resp, e) :
	    dirc_get_log(c, account, since, wait_s, resp, e);
	/* A log longer than one answer comes in pages. */
	if (r == 0 && (r = watch_fetch_rest(c, account, *resp, e)) != 0) {
		acctlog_response_free(*resp);
		*resp = NULL;
	}
	return r;
}

int
agent_watch_refresh_log(struct agent *a, struct dirc *c, struct err_ctx *e)
{
	struct acctlog_response *resp = NULL;
	uint64_t since = a->reg.log.seq;
	int r;

	pthread_mutex_unlock(&a->lock);
	r = watch_fetch_log(c, a->reg.account, since, 0, 0, &resp, e);
	pthread_mutex_lock(&a->lock);
	if (r != 0)
		return r;
	r = agent_watch_apply(a, resp, (uint64_t)time(NULL), e);
	acctlog_response_free(resp);
	return r;
}

/*
 * The watcher thread.  Holds the agent lock except while it talks to the
 * directory; keeps one session (shared with `session`), asks for the log
 * after the last verified seq (at once after a start or a failure, then as
 * a long-poll of min(long_poll, check_interval) seconds, or every
 * check_interval without long-poll) and hands every answer to
 * agent_watch_apply().  Ends when a->stop is set.
 */
static void *
watch_main(void *arg)
{
	struct agent *a = arg;
	const struct agent_config *cfg = a->cfg;
	struct dirc_options opt;
	struct dirc *c = NULL;
	struct acctlog_response *resp = NULL;
	struct err_ctx e;
	uint64_t expires = 0, since, now, t0;
	unsigned int wait_s;
	int r, quick = 1, pending;

	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)cfg->http_timeout;
	err_clear(&e);
	if ((r = dirc_new(cfg->directory, &opt, &c, &e)) != 0) {
		pthread_mutex_lock(&a->lock);
		watch_failed(a, &e);
		a->watch_running = 0;
		pthread_mutex_unlock(&a->lock);
		return NULL;
	}
	wait_s = (unsigned int)(cfg->long_poll < cfg->check_interval ?
	    cfg->long_poll : cfg->check_interval);
	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		err_clear(&e);
		if (!watch_have_session(a, c, &expires, &e))
			continue;
		/* Once after a start: the registry's view against the log
		 * from seq 1 (a re-signed registry may carry a forged one). */
		if ((r = agent_anchor_reverify(a, c, &e)) != 0 ||
		    agent_anchor_blocked(&a->anchor)) {
			if (r == ERR_DENIED)
				expires = 0;
			if (r != 0 && !a->stop) {
				watch_failed(a, &e);
				watch_wait(a, cfg->check_interval);
			}
			continue;
		}
		since = a->reg.log.seq;
		pthread_mutex_unlock(&a->lock);
		t0 = (uint64_t)time(NULL);
		/* The first check after a start or a failure answers at
		 * once; then the long-poll waits for news. */
		r = watch_fetch_log(c, a->reg.account, since,
		    quick ? 0 : wait_s, a->tlog != NULL, &resp, &e);
		pthread_mutex_lock(&a->lock);
		if (a->stop) {
			acctlog_response_free(resp);
			resp = NULL;
			break;
		}
		if (r != 0) {
			if (r == ERR_DENIED) {
				/* Session gone: log in again. */
				expires = 0;
				agent_session_store(a, NULL, 0);
			}
			watch_failed(a, &e);
			quick = 1;
			watch_wait(a, r == ERR_DENIED ? 1 :
			    cfg->check_interval);
			continue;
		}
		now = (uint64_t)time(NULL);
		r = agent_watch_apply(a, resp, now, &e);
		pending = 0;
		if (r == 0 && a->tlog != NULL) {
			/* Its failures are alerts of their own, not a
			 * failed check of the account's log. */
			err_clear(&e);
			(void)agent_watch_tlog_check(a, c, resp, &pending, &e);
		}
		acctlog_response_free(resp);
		resp = NULL;
		quick = r != 0 || pending;
		if (a->stop)
			break;
		if (r == 0 && pending)
			/* The latest event is not proven yet: soon again,
			 * for a later checkpoint. */
			watch_wait(a, WATCH_TLOG_RECHECK_S);
		else if (r != 0 || wait_s == 0)
			watch_wait(a, cfg->check_interval);
		else if (now - t0 < 1 && since == a->reg.log.seq &&
		    a->checks > 1)
			watch_wait(a, 1);       /* never spin */
	}
	a->watch_running = 0;
	pthread_mutex_unlock(&a->lock);
	dirc_free(c);
	return NULL;
}

int
agent_watch_start(struct agent *a, pthread_t *th, struct err_ctx *e)
{
	int r;

	a->watch_running = 1;
	if ((r = pthread_create(th, NULL, watch_main, a)) != 0) {
		a->watch_running = 0;
		return err_set(e, ERR_INTERNAL, "cannot start the watcher: %s",
		    strerror(r));
	}
	return 0;
}
