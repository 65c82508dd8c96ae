/*
 * agent-watch-tlog.c - the watcher's checks of the directory's global
 * transparency log (docs/protocol.md section 7.6, steps 1 to 5) and the
 * `tlog_fork` socket operation.
 *
 * Everything here is off without witnesses (a->tlog is NULL).  The
 * struct agent_tlog_run is the watcher thread's own: only that thread
 * touches it after agent_load(), so it is used without the agent lock,
 * which is taken for the registry's verified log, the alerts and the
 * summary `status` shows (a->tlog_status).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "acctlog.h"
#include "agent-alert.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-req.h"
#include "agent-tlog.h"
#include "agent-watch.h"
#include "codec.h"
#include "crypto.h"
#include "dirclient.h"
#include "errors.h"
#include "merkle.h"
#include "paths.h"
#include "tlog-client.h"
#include "tlog-note.h"

/* Leaves read in one round of the monitor before the frontier is
 * checked against the checkpoint and saved. */
#define TLOG_ROUND_LEAVES ((uint64_t)16 * DIRC_TLOG_LEAVES_MAX)
/* Seconds during which an unproven event is checked again every few
 * seconds. */
#define TLOG_QUICK_S 60
/* Rounds in one check; the rest is read on the next checks. */
#define TLOG_ROUNDS_PER_CHECK 8
/* Pages of the account's log read to find the hash of an event that
 * the verified state no longer keeps in its history. */
#define TLOG_CHAIN_PAGES 64

struct agent_tlog_run {
	struct tlog_policy policy;
	struct tlog_state st;           /* the kept checkpoint */
	struct agent_tlog_monitor mon;
	char *state_path;
	char *monitor_path;
	uint8_t spki[CRYPTO_SPKI_MAX];  /* the pinned directory key */
	size_t spki_len;
	uint64_t proven_seq;            /* latest own event proven */
	uint64_t unproven_seq;          /* the oldest event not proven ... */
	uint64_t unproven_since;        /* ... seen unproven since */
	struct tlog_check_result res;   /* scratch of one check */
	struct dirc_tlog_leaf *leaves;  /* DIRC_TLOG_LEAVES_MAX */
	/* Hashes of own events verified by their chain (older than the
	 * verified state's history): events chain_first.. */
	uint8_t (*chain)[MERKLE_HASH_LEN];
	uint64_t chain_first;
	size_t n_chain;
};

void
agent_watch_tlog_free(struct agent *a)
{
	struct agent_tlog_run *t = a->tlog;

	if (t == NULL)
		return;
	free(t->state_path);
	free(t->monitor_path);
	free(t->leaves);
	free(t->chain);
	free(t);
	a->tlog = NULL;
}

int
agent_watch_tlog_new(struct agent *a, struct err_ctx *e)
{
	struct agent_tlog_run *t;
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	a->tlog = NULL;
	memset(&a->tlog_status, 0, sizeof(a->tlog_status));
	if (a->cfg->n_witness == 0)
		return 0;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return ERR_ALLOC;
	a->tlog = t;
	if ((r = agent_config_tlog_policy(a->cfg, &t->policy, e)) != 0)
		goto fail;
	if ((t->state_path = path_join(a->cfg->state_dir,
	    AGENT_TLOG_CHECKPOINT_FILE)) == NULL ||
	    (t->monitor_path = path_join(a->cfg->state_dir,
	    AGENT_TLOG_MONITOR_FILE)) == NULL ||
	    (t->leaves = calloc(DIRC_TLOG_LEAVES_MAX,
	    sizeof(*t->leaves))) == NULL) {
		r = ERR_ALLOC;
		goto fail;
	}
	if ((r = crypto_spki_export(a->dir_pub, &der, &len)) != 0)
		goto fail;
	if (len > sizeof(t->spki)) {
		free(der);
		r = err_set(e, ERR_TOO_LARGE, "the pinned directory key is too "
		    "large");
		goto fail;
	}
	memcpy(t->spki, der, len);
	t->spki_len = len;
	free(der);
	if ((r = tlog_state_load(t->state_path, &t->st, e)) != 0 ||
	    (r = agent_tlog_monitor_load(t->monitor_path, &t->mon, e)) != 0)
		goto fail;
	/* Leaves checked by an earlier run were proven then. */
	t->proven_seq = t->mon.next_seq - 1;
	a->tlog_status.enabled = 1;
	a->tlog_status.checkpoint_size = t->st.have ? t->st.cp.size : 0;
	a->tlog_status.monitored = t->mon.f.size;
	a->tlog_status.proven_seq = t->proven_seq;
	return 0;
 fail:
	agent_watch_tlog_free(a);
	return r;
}

/* --- alerts (lock held) --- */

/* "tlog_fork:" and 16 hex digits of H(the two note texts, ordered). */
static void
fork_key(const char *held, const char *shown, char *key, size_t size)
{
	const char *x = held, *y = shown;
	size_t hx, hy;
	uint8_t d[32];
	char hex[65];
	EVP_MD_CTX *md;

	/* Only the texts (before the signatures): the same two trees with
	 * other cosignatures are the same fork. */
	hx = strstr(held, "\n\n") != NULL ?
	    (size_t)(strstr(held, "\n\n") - held) : strlen(held);
	hy = strstr(shown, "\n\n") != NULL ?
	    (size_t)(strstr(shown, "\n\n") - shown) : strlen(shown);
	if (hx > hy || (hx == hy && memcmp(held, shown, hx) > 0)) {
		size_t t = hx;

		x = shown;
		y = held;
		hx = hy;
		hy = t;
	}
	memset(d, 0, sizeof(d));
	if ((md = EVP_MD_CTX_new()) != NULL) {
		if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(md, x, hx) != 1 ||
		    EVP_DigestUpdate(md, "\n\n", 2) != 1 ||
		    EVP_DigestUpdate(md, y, hy) != 1 ||
		    EVP_DigestFinal_ex(md, d, NULL) != 1)
			memset(d, 0, sizeof(d));
		EVP_MD_CTX_free(md);
	}
	hex_encode(d, sizeof(d), hex);
	snprintf(key, size, "%s:%.16s", AGENT_ALERT_TLOG_FORK, hex);
}

/*
 * Raises (lock held) the `tlog_fork` alert for the two signed
 * checkpoints held and shown (the one kept, the one that contradicts
 * it), reported by reporter (NULL: this agent's watcher).  Returns what
 * agent_raise_alert() returns; *out as there.
 */
static int
raise_fork(struct agent *a, const char *held, const char *shown,
    const char *reporter, const char *why, const struct agent_alert **out,
    struct err_ctx *e)
{
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];
	json_t *det;

	fork_key(held, shown, key, sizeof(key));
	snprintf(msg, sizeof(msg), "the directory %s signed two checkpoints "
	    "of its transparency log that cannot both be true (%s)%s%s: it "
	    "shows different histories to different people; both notes are "
	    "in the alert's evidence", a->dir_id, why,
	    reporter != NULL ? "; reported by " : "",
	    reporter != NULL ? reporter : "");
	det = json_pack("{s:s, s:s, s:s}", "held", held, "shown", shown,
	    "source", reporter != NULL ? "tlog_fork request" : "watcher");
	if (det != NULL && reporter != NULL)
		json_object_set_new(det, "reporter", json_string(reporter));
	return agent_raise_alert(a, AGENT_ALERT_TLOG_FORK, key,
	    a->cfg->account, NULL, NULL, msg, det, out, e);
}

/* Raises (lock held) a warning that stays one open alert per kind. */
static void
raise_warning(struct agent *a, const char *kind, const char *msg,
    json_t *det)
{
	agent_raise(a, kind, kind, NULL, NULL, msg, det);
}

/* The signed note of v (the checkpoint checked) as a JSON string. */
static json_t *
note_json(const char *note)
{
	return note != NULL ? json_string(note) : json_null();
}

/*
 * Raises (lock held) the alert tlog_check_log()'s failure r calls for;
 * none for a directory that could not be asked (the staleness alert
 * covers that).  tlog_seq is the event whose inclusion was to be proven
 * (0: none); note is the checkpoint that was checked, when known.
 */
static void
alert_check_failed(struct agent *a, int r, const struct err_ctx *why,
    uint64_t tlog_seq, const char *note, size_t note_len)
{
	struct agent_tlog_run *t = a->tlog;
	const struct tlog_check_result *res = &t->res;
	char msg[AGENT_ALERT_MESSAGE_MAX + 1], key[AGENT_ALERT_KEY_MAX + 1];
	char who[300];
	struct err_ctx e;

	err_clear(&e);
	switch (r) {
	case ERR_FORK:
		if (res->have_fork)
			(void)raise_fork(a, res->fork.held, res->fork.shown,
			    NULL, err_msg(why), NULL, &e);
		return;
	case ERR_STALE:
		snprintf(msg, sizeof(msg), "the directory's transparency log "
		    "checkpoint has no quorum of cosignatures newer than "
		    "max_stale (%llu s): the freshest quorum cosignature is "
		    "from %llu; the directory withholds updates or its "
		    "witnesses cannot reach it: %s",
		    (unsigned long long)a->cfg->max_stale,
		    (unsigned long long)(res->have_v ? res->v.fresh : 0),
		    err_msg(why));
		raise_warning(a, AGENT_ALERT_TLOG_STALE, msg,
		    json_pack("{s:I, s:I, s:o}", "fresh", (json_int_t)
		    (res->have_v ? res->v.fresh : 0), "max_stale",
		    (json_int_t)a->cfg->max_stale, "checkpoint",
		    note_json(note)));
		return;
	case ERR_SIGNATURE:
		if (res->inclusion_failed) {
			snprintf(key, sizeof(key), "%s:proof:%llu:%llu",
			    AGENT_ALERT_TLOG_INCLUSION,
			    (unsigned long long)tlog_seq, (unsigned long long)
			    (res->have_v ? res->v.cp.size : 0));
			snprintf(msg, sizeof(msg), "the directory's proof that "
			    "event %llu of %s is in its transparency log does "
			    "not verify: %s", (unsigned long long)tlog_seq,
			    a->cfg->account, err_msg(why));
			agent_raise(a, AGENT_ALERT_TLOG_INCLUSION, key, NULL,
			    NULL, msg, json_pack("{s:s, s:I, s:o}", "reason",
			    "proof", "seq", (json_int_t)tlog_seq,
			    "checkpoint", note_json(note)));
			return;
		}
		/* FALLTHROUGH */
	case ERR_DENIED:
	case ERR_FORMAT:
		who[0] = '\0';
		if (note != NULL)
			agent_tlog_cosig_summary(&t->policy, note, note_len,
			    who, sizeof(who));
		snprintf(msg, sizeof(msg), "the directory's transparency log "
		    "checkpoint is not cosigned by %u of the configured "
		    "witnesses%s%s: %s", t->policy.quorum,
		    who[0] != '\0' ? ": " : "", who, err_msg(why));
		raise_warning(a, AGENT_ALERT_TLOG_NO_QUORUM, msg,
		    json_pack("{s:I, s:s, s:o}", "quorum",
		    (json_int_t)t->policy.quorum, "witnesses", who,
		    "checkpoint", note_json(note)));
		return;
	default:
		return;
	}
}

/* --- hashes of the own account's events --- */

/*
 * The hash of event seq from the verified log (lock held): the state's
 * last event or its history, else the chain read before.  0, 1 when the
 * state no longer keeps it, ERR_NOT_FOUND past the verified log.
 */
static int
hash_known(struct agent *a, uint64_t seq, uint8_t out[MERKLE_HASH_LEN])
{
	const struct acctlog_state *st = &a->reg.log;
	struct agent_tlog_run *t = a->tlog;
	size_t k;

	if (seq == 0 || seq > st->seq)
		return ERR_NOT_FOUND;
	if (seq == st->seq) {
		memcpy(out, st->hash, MERKLE_HASH_LEN);
		return 0;
	}
	for (k = st->n_history; k-- > 0;)
		if (st->history[k].seq == seq) {
			memcpy(out, st->history[k].hash, MERKLE_HASH_LEN);
			return 0;
		}
	if (t->n_chain > 0 && seq >= t->chain_first &&
	    seq - t->chain_first < t->n_chain) {
		memcpy(out, t->chain[seq - t->chain_first], MERKLE_HASH_LEN);
		return 0;
	}
	return 1;
}

/*
 * Reads (lock not held) the account's log from event seq on and keeps
 * the hashes of its events in the chain cache, once every event's hash
 * is recomputed, each one's prev is the hash before, and the chain ends
 * in an event whose hash the verified state knows: the events are then
 * the verified log's.  ERR_CHAIN when the directory's answer does not
 * link up.
 */
static int
read_chain(struct agent *a, struct dirc *c, uint64_t seq, struct err_ctx *e)
{
	struct agent_tlog_run *t = a->tlog;
	struct acctlog_response *resp = NULL;
	uint8_t (*hashes)[MERKLE_HASH_LEN] = NULL, (*n)[MERKLE_HASH_LEN];
	uint8_t h[MERKLE_HASH_LEN], known[MERKLE_HASH_LEN];
	uint64_t since = seq - 1;
	size_t count = 0, i;
	int pages, r, linked = 0;

	for (pages = 0; pages < TLOG_CHAIN_PAGES && !linked; pages++) {
		if ((r = dirc_get_log(c, a->cfg->account, since, 0, &resp,
		    e)) != 0)
			goto out;
		if (resp->n_events == 0) {
			r = err_set(e, ERR_CHAIN, "the directory's log of %s "
			    "ends before event %llu", a->cfg->account,
			    (unsigned long long)(since + 1));
			goto out;
		}
		for (i = 0; i < resp->n_events; i++) {
			const struct acctlog_event *ev = &resp->events[i];

			if (ev->seq != seq + count ||
			    acctlog_event_hash(ev, h) != 0 ||
			    memcmp(h, ev->hash, MERKLE_HASH_LEN) != 0 ||
			    (count > 0 && memcmp(ev->prev, hashes[count - 1],
			    MERKLE_HASH_LEN) != 0)) {
				r = err_set(e, ERR_CHAIN, "the directory's log "
				    "of %s does not chain at event %llu",
				    a->cfg->account,
				    (unsigned long long)ev->seq);
				goto out;
			}
			if ((n = realloc(hashes, (count + 1) *
			    sizeof(*hashes))) == NULL) {
				r = ERR_ALLOC;
				goto out;
			}
			hashes = n;
			memcpy(hashes[count++], h, MERKLE_HASH_LEN);
			pthread_mutex_lock(&a->lock);
			r = hash_known(a, ev->seq, known);
			pthread_mutex_unlock(&a->lock);
			if (r == 0 && ev->seq > seq) {
				if (memcmp(known, h, MERKLE_HASH_LEN) != 0) {
					r = err_set(e, ERR_CHAIN, "the "
					    "directory's log of %s differs "
					    "from the verified one at event "
					    "%llu", a->cfg->account,
					    (unsigned long long)ev->seq);
					goto out;
				}
				linked = 1;
				break;
			}
		}
		since = resp->events[resp->n_events - 1].seq;
		acctlog_response_free(resp);
		resp = NULL;
	}
	if (!linked) {
		r = err_set(e, ERR_CHAIN, "the log of %s from event %llu does "
		    "not reach the verified events within %d pages",
		    a->cfg->account, (unsigned long long)seq,
		    TLOG_CHAIN_PAGES);
		goto out;
	}
	free(t->chain);
	t->chain = hashes;
	hashes = NULL;          /* transferred */
	t->chain_first = seq;
	t->n_chain = count;
	r = 0;
 out:
	acctlog_response_free(resp);
	free(hashes);
	return r;
}

/* What the event lookups of one check need. */
struct hash_ctx {
	struct agent *a;
	struct dirc *c;
};

/*
 * An agent_tlog_event_fn (lock not held): the hash of own event seq
 * from the verified log, read again from the directory when the state
 * no longer keeps it.
 */
static int
event_hash(void *arg, uint64_t seq, uint8_t out[MERKLE_HASH_LEN],
    struct err_ctx *e)
{
	struct hash_ctx *hc = arg;
	int r;

	pthread_mutex_lock(&hc->a->lock);
	r = hash_known(hc->a, seq, out);
	pthread_mutex_unlock(&hc->a->lock);
	if (r != 1)
		return r == ERR_NOT_FOUND ? err_set(e, r, "event %llu is past "
		    "the verified log", (unsigned long long)seq) : r;
	if ((r = read_chain(hc->a, hc->c, seq, e)) != 0)
		return r;
	pthread_mutex_lock(&hc->a->lock);
	r = hash_known(hc->a, seq, out);
	pthread_mutex_unlock(&hc->a->lock);
	return r == 0 ? 0 : err_set(e, ERR_INTERNAL, "event %llu not kept",
	    (unsigned long long)seq);
}

/* --- monitoring (7.6 step 5) --- */

/* Raises (lock held) `tlog_account_fork` for f in the checkpoint kept. */
static void
alert_account_fork(struct agent *a, const struct agent_tlog_finding *f,
    const struct err_ctx *why)
{
	struct agent_tlog_run *t = a->tlog;
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];
	char hash[65], want[65] = "";

	hex_encode(f->leaf.hash, MERKLE_HASH_LEN, hash);
	if (f->have_expected_hash)
		hex_encode(f->expected_hash, MERKLE_HASH_LEN, want);
	snprintf(key, sizeof(key), "%s:%llu", AGENT_ALERT_TLOG_ACCOUNT_FORK,
	    (unsigned long long)f->leaf.index);
	snprintf(msg, sizeof(msg), "the directory's transparency log holds, "
	    "at leaf %llu, event %llu of %s that this device never saw in "
	    "its account log (%s): the directory shows another history of "
	    "the account to someone else; check the account's devices and "
	    "keep the evidence", (unsigned long long)f->leaf.index,
	    (unsigned long long)f->leaf.seq, a->cfg->account, err_msg(why));
	agent_raise(a, AGENT_ALERT_TLOG_ACCOUNT_FORK, key, NULL, NULL, msg,
	    json_pack("{s:I, s:I, s:s, s:s, s:I, s:s, s:s}", "index",
	    (json_int_t)f->leaf.index, "seq", (json_int_t)f->leaf.seq,
	    "hash", hash, "reason", agent_tlog_why_name(f->why),
	    "expected_seq", (json_int_t)f->expected_seq,
	    "expected_hash", want, "checkpoint", t->st.note));
}

/* Raises (lock held) `tlog_inclusion` for leaves that are not the tree
 * of the kept checkpoint. */
static void
alert_bad_leaves(struct agent *a, uint64_t read, const struct err_ctx *why)
{
	struct agent_tlog_run *t = a->tlog;
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];
	char root[65];

	hex_encode(t->st.cp.root, MERKLE_HASH_LEN, root);
	snprintf(key, sizeof(key), "%s:leaves:%llu:%.16s",
	    AGENT_ALERT_TLOG_INCLUSION, (unsigned long long)t->st.cp.size,
	    root);
	snprintf(msg, sizeof(msg), "the directory served leaves of its "
	    "transparency log that are not the tree of its checkpoint of size "
	    "%llu: %s", (unsigned long long)t->st.cp.size, err_msg(why));
	agent_raise(a, AGENT_ALERT_TLOG_INCLUSION, key, NULL, NULL, msg,
	    json_pack("{s:s, s:I, s:s}", "reason", "leaves", "read",
	    (json_int_t)read, "checkpoint", t->st.note));
}

/*
 * One round of the monitor (lock not held): reads leaves from the
 * monitor's size towards the kept checkpoint's, checks them against it
 * and the own ones against the verified log, and saves the monitor.
 * Returns 0 (also after an alert, which leaves the monitor where it
 * was), or the error of a request or a write.  *more is set when the
 * checkpoint was not reached.
 */
static int
monitor_round(struct agent *a, struct dirc *c, int *more, struct err_ctx *e)
{
	struct agent_tlog_run *t = a->tlog;
	struct agent_tlog_monitor m = t->mon;
	struct agent_tlog_own *own = NULL;
	struct agent_tlog_finding f;
	struct hash_ctx hc = { a, c };
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint64_t size = t->st.cp.size, target, end, next;
	size_t n_own = 0, n, np = 0, done = 0;
	struct err_ctx why;
	int r, refreshed = 0;

	*more = 0;
	err_clear(&why);
	target = size - m.f.size > TLOG_ROUND_LEAVES ?
	    m.f.size + TLOG_ROUND_LEAVES : size;
	while (m.f.size < target) {
		end = target - m.f.size > DIRC_TLOG_LEAVES_MAX ?
		    m.f.size + DIRC_TLOG_LEAVES_MAX : target;
		if ((r = dirc_tlog_leaves(c, m.f.size, end, t->leaves, &n,
		    e)) != 0 ||
		    (r = agent_tlog_monitor_append(&m, a->cfg->account,
		    t->leaves, n, &own, &n_own, e)) != 0)
			goto out;
	}
	if (target < size &&
	    (r = dirc_tlog_consistency(c, target, size, proof, &np, e)) != 0)
		goto out;
	if (agent_tlog_monitor_verify(&m, size, t->st.cp.root, proof, np,
	    &why) != 0) {
		pthread_mutex_lock(&a->lock);
		alert_bad_leaves(a, m.f.size, &why);
		pthread_mutex_unlock(&a->lock);
		r = 0;
		goto out;
	}
	next = m.next_seq;
	for (;;) {
		err_clear(&why);
		r = agent_tlog_check_own(own, n_own, &done, &next, event_hash,
		    &hc, &f, &why);
		if (r != ERR_NOT_FOUND || refreshed)
			break;
		/* A leaf past the verified log: read the log again. */
		refreshed = 1;
		pthread_mutex_lock(&a->lock);
		r = agent_watch_refresh_log(a, c, e);
		pthread_mutex_unlock(&a->lock);
		if (r != 0)
			goto out;
	}
	if (r == ERR_FORK || r == ERR_NOT_FOUND) {
		pthread_mutex_lock(&a->lock);
		alert_account_fork(a, &f, &why);
		pthread_mutex_unlock(&a->lock);
		r = 0;
		goto out;
	}
	if (r != 0) {
		r = err_set(e, r, "%s", err_msg(&why));
		goto out;
	}
	m.next_seq = next;
	if ((r = agent_tlog_monitor_save(t->monitor_path, &m, e)) != 0)
		goto out;
	t->mon = m;
	if (m.next_seq - 1 > t->proven_seq)
		t->proven_seq = m.next_seq - 1;
	*more = m.f.size < size;
 out:
	free(own);
	return r;
}

/* --- one check --- */

/*
 * Keeps (lock held) the age of the oldest event of the verified log not
 * yet proven in an accepted checkpoint, and raises `tlog_inclusion` when
 * it is older than max_stale.  Returns 1 while events are unproven and
 * the next check should come soon: for the first TLOG_QUICK_S seconds
 * (a checkpoint normally follows within seconds), then at the usual
 * pace.
 */
static int
check_withheld(struct agent *a, uint64_t now)
{
	struct agent_tlog_run *t = a->tlog;
	char key[AGENT_ALERT_KEY_MAX + 1], msg[AGENT_ALERT_MESSAGE_MAX + 1];
	uint64_t head = a->reg.log.seq;
	int quick;

	if (t->proven_seq >= head) {
		t->unproven_seq = t->unproven_since = 0;
		return 0;
	}
	if (t->unproven_seq != t->proven_seq + 1) {
		t->unproven_seq = t->proven_seq + 1;
		t->unproven_since = now;
	}
	quick = now - t->unproven_since < TLOG_QUICK_S;
	if (now - t->unproven_since > a->cfg->max_stale) {
		quick = 0;
		snprintf(key, sizeof(key), "%s:withheld:%llu",
		    AGENT_ALERT_TLOG_INCLUSION,
		    (unsigned long long)t->unproven_seq);
		snprintf(msg, sizeof(msg), "event %llu of %s is still in no "
		    "checkpoint of the directory's transparency log that the "
		    "witnesses cosigned, %llu s after this device saw it "
		    "(max_stale %llu s): the directory withholds it from the "
		    "public log", (unsigned long long)t->unproven_seq,
		    a->cfg->account,
		    (unsigned long long)(now - t->unproven_since),
		    (unsigned long long)a->cfg->max_stale);
		agent_raise(a, AGENT_ALERT_TLOG_INCLUSION, key, NULL, NULL,
		    msg, json_pack("{s:s, s:I, s:I, s:I}", "reason",
		    "withheld", "seq", (json_int_t)t->unproven_seq,
		    "proven_seq", (json_int_t)t->proven_seq, "since",
		    (json_int_t)t->unproven_since));
	}
	return quick;
}

/* Copies (lock held) what `status` shows. */
static void
publish_status(struct agent *a, const char *error)
{
	struct agent_tlog_run *t = a->tlog;
	struct agent_tlog_status *s = &a->tlog_status;

	s->checkpoint_size = t->st.have ? t->st.cp.size : 0;
	s->fresh = t->st.have ? t->st.fresh : 0;
	s->monitored = t->mon.f.size;
	s->proven_seq = t->proven_seq;
	s->head_seq = a->reg.log.seq;
	s->pending = t->proven_seq < a->reg.log.seq;
	snprintf(s->last_error, sizeof(s->last_error), "%s",
	    error != NULL ? error : "");
}

int
agent_watch_tlog_check(struct agent *a, struct dirc *c,
    const struct acctlog_response *resp, int *pending, struct err_ctx *e)
{
	struct agent_tlog_run *t = a->tlog;
	const struct acctlog_tlog *tl = &resp->tlog;
	uint8_t ev[MERKLE_HASH_LEN];
	struct hash_ctx hc = { a, c };
	struct err_ctx why;
	char *fetched = NULL;
	size_t fetched_len = 0;
	uint64_t now;
	int r, more = 0, rounds, have_ev = 0;

	*pending = 0;
	if (t == NULL)
		return 0;
	err_clear(&why);
	pthread_mutex_unlock(&a->lock);
	if (tl->present) {
		r = event_hash(&hc, tl->seq, ev, &why);
		have_ev = r == 0;
		err_clear(&why);
	}
	now = (uint64_t)time(NULL);
	memset(&t->res, 0, sizeof(t->res));
	r = tlog_check_log(&t->policy, t->spki, t->spki_len, &t->st,
	    t->state_path, c, a->cfg->account, resp, have_ev ? ev : NULL, now,
	    &t->res, &why);
	/* The checkpoint that was checked, for the evidence: the one of
	 * the answer, else the latest one the directory serves. */
	if (r != 0 && !t->res.have_v && !tl->present && (r == ERR_DENIED ||
	    r == ERR_SIGNATURE || r == ERR_FORMAT) &&
	    dirc_tlog_checkpoint(c, &fetched, &fetched_len, NULL) != 0) {
		free(fetched);
		fetched = NULL;
	}
	pthread_mutex_lock(&a->lock);
	if (r != 0) {
		const char *note = t->res.have_v ? NULL : tl->present ?
		    tl->checkpoint : fetched;
		char *shown = NULL;
		size_t len = tl->present ? tl->checkpoint_len : fetched_len;

		if (t->res.have_v &&
		    tlog_note_format(&t->res.v.note, &shown, &len) == 0)
			note = shown;
		alert_check_failed(a, r, &why, tl->present ? tl->seq : 0, note,
		    note != NULL ? len : 0);
		free(shown);
		free(fetched);
		agent_log(LOG_WARNING, "transparency log: %s", err_msg(&why));
		/* Events stay unproven whatever the reason; the next check
		 * comes at the usual time. */
		(void)check_withheld(a, now);
		publish_status(a, err_msg(&why));
		return err_set(e, r, "transparency log: %s", err_msg(&why));
	}
	(void)agent_alert_close_matching(&a->alerts, AGENT_ALERT_TLOG_NO_QUORUM,
	    NULL, "clear", NULL);
	(void)agent_alert_close_matching(&a->alerts, AGENT_ALERT_TLOG_STALE,
	    NULL, "clear", NULL);
	if (t->res.proven_seq > t->proven_seq)
		t->proven_seq = t->res.proven_seq;
	/* Step 5: every leaf up to the kept checkpoint. */
	r = 0;
	if (t->st.have && t->mon.f.size < t->st.cp.size) {
		pthread_mutex_unlock(&a->lock);
		rounds = 0;
		do {
			err_clear(&why);
			r = monitor_round(a, c, &more, &why);
		} while (r == 0 && more && ++rounds < TLOG_ROUNDS_PER_CHECK &&
		    !a->stop);
		pthread_mutex_lock(&a->lock);
		if (r != 0)
			agent_log(LOG_WARNING, "transparency log monitor: %s",
			    err_msg(&why));
	}
	now = (uint64_t)time(NULL);
	*pending = check_withheld(a, now) || more;
	publish_status(a, r != 0 ? err_msg(&why) : NULL);
	if (r != 0)
		return err_set(e, r, "transparency log monitor: %s",
		    err_msg(&why));
	return 0;
}

/* --- the tlog_fork request --- */

/* A parsed signed checkpoint and its origin's log key. */
struct fork_note {
	struct tlog_note note;
	struct tlog_checkpoint cp;
};

/*
 * Parses note s (a request field) and checks that it carries the pinned
 * directory's signature.  0, or an error with e saying which note.
 */
static int
fork_note_check(const char *what, const char *s, const uint8_t *spki,
    size_t spki_len, struct fork_note *fn, struct err_ctx *e)
{
	struct tlog_vkey k;
	struct err_ctx why;
	int r;

	err_clear(&why);
	if ((r = tlog_note_parse(s, strlen(s), &fn->note, &why)) != 0 ||
	    (r = tlog_checkpoint_parse(fn->note.text, fn->note.text_len,
	    &fn->cp, &why)) != 0)
		return err_set(e, ERR_FORMAT, "%s is not a signed checkpoint: "
		    "%s", what, err_msg(&why));
	if ((r = tlog_vkey_log(fn->cp.origin, spki, spki_len, &k,
	    &why)) != 0 ||
	    (r = tlog_note_verify_log(&fn->note, &k, &why)) != 0)
		return err_set(e, ERR_REJECTED, "%s does not carry the pinned "
		    "directory's signature: %s", what, err_msg(&why));
	return 0;
}

json_t *
agent_op_tlog_fork(struct agent *a, const json_t *req, struct err_ctx *e)
{
	static const char *const keys[] = { "held", "shown", "reporter" };
	struct fork_note *fn = NULL;
	const struct agent_alert *al = NULL;
	const char *held, *shown, *reporter = NULL;
	char *held_c = NULL, *shown_c = NULL, *rep_c = NULL;
	char why[128], id[AGENT_ALERT_ID_LEN + 1];
	uint8_t *spki = NULL, proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t spki_len = 0, np = 0;
	struct dirc_options opt;
	struct dirc *c = NULL;
	const struct tlog_checkpoint *lo, *hi;
	json_t *o = NULL;
	int r;

	if ((r = agent_req_keys(req, keys, 3, e)) != 0 ||
	    (held = agent_req_str(req, "held", TLOG_NOTE_MAX, e)) == NULL ||
	    (shown = agent_req_str(req, "shown", TLOG_NOTE_MAX, e)) == NULL)
		return agent_reply_err(ERR_FORMAT, e);
	if (json_object_get(req, "reporter") != NULL &&
	    (reporter = agent_req_str(req, "reporter", 128, e)) == NULL)
		return agent_reply_err(ERR_FORMAT, e);
	if ((fn = calloc(2, sizeof(*fn))) == NULL ||
	    (held_c = strdup(held)) == NULL ||
	    (shown_c = strdup(shown)) == NULL ||
	    (reporter != NULL && (rep_c = strdup(reporter)) == NULL)) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = crypto_spki_export(a->dir_pub, &spki, &spki_len)) != 0 ||
	    (r = fork_note_check("held", held_c, spki, spki_len, &fn[0],
	    e)) != 0 ||
	    (r = fork_note_check("shown", shown_c, spki, spki_len, &fn[1],
	    e)) != 0)
		goto out;
	if (strcmp(fn[0].cp.origin, fn[1].cp.origin) != 0) {
		r = err_set(e, ERR_REJECTED, "refused: the checkpoints are of "
		    "two logs ('%.64s' and '%.64s'), not a fork",
		    fn[0].cp.origin, fn[1].cp.origin);
		goto out;
	}
	if (fn[0].cp.size == fn[1].cp.size) {
		if (memcmp(fn[0].cp.root, fn[1].cp.root, MERKLE_HASH_LEN) ==
		    0) {
			r = err_set(e, ERR_REJECTED, "refused: both checkpoints "
			    "are of the same tree");
			goto out;
		}
		snprintf(why, sizeof(why), "two roots for size %llu",
		    (unsigned long long)fn[0].cp.size);
	} else {
		lo = fn[0].cp.size < fn[1].cp.size ? &fn[0].cp : &fn[1].cp;
		hi = lo == &fn[0].cp ? &fn[1].cp : &fn[0].cp;
		/* The directory's own proof, asked without the lock. */
		pthread_mutex_unlock(&a->lock);
		memset(&opt, 0, sizeof(opt));
		opt.timeout_s = (long)a->cfg->http_timeout;
		r = dirc_new(a->cfg->directory, &opt, &c, e);
		if (r == 0)
			r = dirc_tlog_consistency(c, lo->size, hi->size, proof,
			    &np, e);
		dirc_free(c);
		pthread_mutex_lock(&a->lock);
		if (r != 0) {
			r = err_wrap(e, r, "cannot judge the checkpoints: the "
			    "directory gave no consistency proof from size "
			    "%llu to %llu: %s", (unsigned long long)lo->size,
			    (unsigned long long)hi->size, err_msg(e));
			goto out;
		}
		if (merkle_consistency_verify(lo->size, hi->size, lo->root,
		    hi->root, proof, np) == 0) {
			r = err_set(e, ERR_REJECTED, "refused: the directory "
			    "proved the checkpoint of size %llu a prefix of "
			    "the one of size %llu",
			    (unsigned long long)lo->size,
			    (unsigned long long)hi->size);
			goto out;
		}
		snprintf(why, sizeof(why), "no consistency proof from size "
		    "%llu to %llu", (unsigned long long)lo->size,
		    (unsigned long long)hi->size);
	}
	if ((r = raise_fork(a, held_c, shown_c, rep_c != NULL ? rep_c :
	    "a local client", why, &al, e)) < 0)
		goto out;
	memcpy(id, al != NULL ? al->id : "", al != NULL ? sizeof(id) : 1);
	o = json_pack("{s:b, s:s, s:b}", "ok", 1, "alert", id, "new", r == 1);
	r = 0;
 out:
	free(fn);
	free(spki);
	free(held_c);
	free(shown_c);
	free(rep_c);
	if (o == NULL)
		o = agent_reply_err(r != 0 ? r : ERR_ALLOC, e);
	return o;
}
