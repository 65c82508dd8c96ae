/*
 * acctlog-verify.c - the rules that move the verified state of an
 * account forward (PROTOCOL.md section 3): events applied one by one to
 * a state (acctlog_state_apply, which the directory also runs before it
 * appends), and a log update checked against a signed head for rollback,
 * forks, staleness and a broken chain (acctlog_verify_update).  Both work
 * on a copy and change the caller's state only when everything holds.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"

/* --- applying events --- */

/* Appends the summary of ev, whose hash is hash, to st's history. */
static int
history_append(struct acctlog_state *st, const struct acctlog_event *ev,
    const uint8_t hash[32])
{
	struct acctlog_entry *h, *ent;

	/* Trimmed back to ACCTLOG_HISTORY_MAX after each batch. */
	if ((h = realloc(st->history, (st->n_history + 1) *
	    sizeof(*h))) == NULL)
		return ERR_ALLOC;
	st->history = h;
	ent = &h[st->n_history++];
	memset(ent, 0, sizeof(*ent));
	ent->seq = ev->seq;
	ent->time = ev->time;
	ent->type = ev->type;
	memcpy(ent->device, ev->device, sizeof(ent->device));
	memcpy(ent->hash, hash, 32);
	return 0;
}

/* Drops the oldest summaries beyond ACCTLOG_HISTORY_MAX. */
static void
history_trim(struct acctlog_state *st)
{
	size_t drop;

	if (st->n_history <= ACCTLOG_HISTORY_MAX)
		return;
	drop = st->n_history - ACCTLOG_HISTORY_MAX;
	memmove(st->history, st->history + drop,
	    ACCTLOG_HISTORY_MAX * sizeof(*st->history));
	st->n_history = ACCTLOG_HISTORY_MAX;
}

/* Checks an add event against st and appends its device. */
static int
apply_add(struct acctlog_state *st, const struct acctlog_event *ev,
    const uint8_t hash[32], struct err_ctx *e)
{
	const struct devrec *rec = &ev->record;
	const struct acctlog_device *by;
	struct acctlog_device *d;
	unsigned long long seq = (unsigned long long)ev->seq;
	int r;

	if ((r = devrec_verify(rec, e)) != 0)
		return err_wrap(e, r, "event %llu: %s", seq, err_msg(e));
	if (strcmp(rec->account, st->account) != 0)
		return err_set(e, ERR_FORMAT, "event %llu adds a device of "
		    "account %s to the log of %s", seq, rec->account,
		    st->account);
	if (strcmp(ev->device, rec->device) != 0)
		return err_set(e, ERR_FORMAT, "event %llu: device field does "
		    "not match the record", seq);
	if (acctlog_state_find(st, rec->device) != NULL)
		return err_set(e, ERR_EXISTS, "event %llu adds device %.16s..., "
		    "which is already active", seq, rec->device);
	if (rec->has_endorsement) {
		if ((by = acctlog_state_find(st, rec->endorsed_by)) == NULL)
			return err_set(e, ERR_NOT_FOUND, "event %llu: endorsed "
			    "by %.16s..., which is not an active device", seq,
			    rec->endorsed_by);
		if ((r = devrec_verify_endorsement(rec, by->rec.sig_pub,
		    by->rec.sig_pub_len, e)) != 0)
			return err_wrap(e, r, "event %llu: %s", seq, err_msg(e));
	}
	if (st->n_devices >= ACCTLOG_MAX_DEVICES)
		return err_set(e, ERR_TOO_LARGE, "event %llu: account has more "
		    "than %d active devices", seq, ACCTLOG_MAX_DEVICES);
	if ((d = realloc(st->devices, (st->n_devices + 1) * sizeof(*d))) == NULL)
		return ERR_ALLOC;
	st->devices = d;
	d = &st->devices[st->n_devices++];
	d->rec = *rec;
	d->add_seq = ev->seq;
	memcpy(d->add_hash, hash, 32);
	return 0;
}

/* Checks a revoke event against st and removes its device. */
static int
apply_revoke(struct acctlog_state *st, const struct acctlog_event *ev,
    struct err_ctx *e)
{
	const struct acctlog_device *target;
	EVP_PKEY *pub = NULL;
	uint8_t d[32];
	size_t i, idx;
	unsigned long long seq = (unsigned long long)ev->seq;
	int r, signed_ok = 0;

	if ((target = acctlog_state_find(st, ev->device)) == NULL)
		return err_set(e, ERR_NOT_FOUND, "event %llu revokes device "
		    "%.16s..., which is not active", seq, ev->device);
	idx = (size_t)(target - st->devices);
	if ((r = acctlog_revoke_digest(st->account, ev->device, ev->time,
	    d)) != 0)
		return r;
	for (i = 0; i < st->n_devices && !signed_ok; i++) {
		if (crypto_spki_import(st->devices[i].rec.sig_pub,
		    st->devices[i].rec.sig_pub_len, &pub, NULL) != 0)
			continue;
		signed_ok = crypto_ecdsa_verify(pub, d, ev->revoke_sig) == 0;
		EVP_PKEY_free(pub);
		pub = NULL;
	}
	if (!signed_ok)
		return err_set(e, ERR_SIGNATURE, "event %llu: the revocation of "
		    "%.16s... is not signed by an active device", seq,
		    ev->device);
	memmove(&st->devices[idx], &st->devices[idx + 1],
	    (st->n_devices - idx - 1) * sizeof(*st->devices));
	st->n_devices--;
	return 0;
}

/*
 * Applies events to st in place; st may be half-changed on failure, so
 * callers work on a copy.
 */
static int
apply_events(struct acctlog_state *st, const struct acctlog_event *events,
    size_t n, struct err_ctx *e)
{
	const struct acctlog_event *ev;
	uint8_t h[32];
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		ev = &events[i];
		if (st->seq == UINT64_MAX || ev->seq != st->seq + 1)
			return err_set(e, ERR_CHAIN, "account log of %s: event "
			    "%llu where %llu was expected", st->account,
			    (unsigned long long)ev->seq,
			    (unsigned long long)st->seq + 1);
		if (memcmp(ev->prev, st->hash, 32) != 0)
			return err_set(e, ERR_CHAIN, "account log of %s: event "
			    "%llu does not follow the verified event %llu "
			    "(prev differs)", st->account,
			    (unsigned long long)ev->seq,
			    (unsigned long long)st->seq);
		if ((r = acctlog_event_hash(ev, h)) != 0)
			return err_set(e, r, "event %llu: cannot hash",
			    (unsigned long long)ev->seq);
		if (memcmp(h, ev->hash, 32) != 0)
			return err_set(e, ERR_CHAIN, "account log of %s: event "
			    "%llu does not hash to its stated hash",
			    st->account, (unsigned long long)ev->seq);
		if (ev->type == ACCTLOG_ADD)
			r = apply_add(st, ev, h, e);
		else if (ev->type == ACCTLOG_REVOKE)
			r = apply_revoke(st, ev, e);
		else
			r = err_set(e, ERR_FORMAT, "event %llu: unknown type",
			    (unsigned long long)ev->seq);
		if (r != 0)
			return r;
		if ((r = history_append(st, ev, h)) != 0)
			return r;
		st->seq = ev->seq;
		memcpy(st->hash, h, 32);
	}
	history_trim(st);
	return 0;
}

int
acctlog_state_apply(struct acctlog_state *st,
    const struct acctlog_event *events, size_t n, struct err_ctx *e)
{
	struct acctlog_state work;
	int r;

	return_val_if_fail(st != NULL && (events != NULL || n == 0),
	    ERR_INVALID_ARG);
	if ((r = acctlog_state_copy(&work, st)) != 0)
		return r;
	if ((r = apply_events(&work, events, n, e)) != 0) {
		acctlog_state_clear(&work);
		return r;
	}
	if (n > 0)
		work.has_head = 0;
	acctlog_state_clear(st);
	*st = work;	/* transferred */
	return 0;
}

/* --- verifying an update against a signed head --- */

/* Records in ev (NULL is fine) what a failed update proves. */
static void
evidence_set(struct acctlog_evidence *ev, int kind, uint64_t seq,
    const struct acctlog_state *st, const struct acctlog_head *head)
{
	if (ev == NULL)
		return;
	ev->kind = kind;
	ev->seq = seq;
	ev->has_verified = st->has_head;
	if (st->has_head)
		ev->verified = st->head;
	ev->conflicting = *head;
}

/* Rule 1: head is for st's account and signed by dir_pub, the pinned key. */
static int
head_signed_by_pinned(const struct acctlog_state *st,
    const struct acctlog_head *head, EVP_PKEY *dir_pub, struct err_ctx *e)
{
	char id[DEVREC_ID_HEX_LEN + 1];
	int r;

	if (strcmp(head->account, st->account) != 0)
		return err_set(e, ERR_FORMAT, "signed head is for account "
		    "%.128s, not %s", head->account, st->account);
	if ((r = acctlog_directory_id(dir_pub, id)) != 0)
		return err_set(e, r, "cannot compute the directory id");
	if (strcmp(id, st->directory) != 0)
		return err_set(e, ERR_WRONG_KEY, "account log of %s: head "
		    "checked with directory key %.16s..., but %.16s... is "
		    "pinned", st->account, id, st->directory);
	return acctlog_head_verify(head, dir_pub, NULL, e);
}

/* Rule 2: head neither rolls st back nor forks from it at st's seq. */
static int
head_extends_state(const struct acctlog_state *st,
    const struct acctlog_head *head, struct acctlog_evidence *ev,
    struct err_ctx *e)
{
	if (head->seq < st->seq) {
		evidence_set(ev, ERR_ROLLBACK, head->seq, st, head);
		return err_set(e, ERR_ROLLBACK, "account log of %s rolled "
		    "back: signed head at seq %llu, but seq %llu was verified",
		    st->account, (unsigned long long)head->seq,
		    (unsigned long long)st->seq);
	}
	if (head->seq == st->seq && memcmp(head->hash, st->hash, 32) != 0) {
		evidence_set(ev, ERR_FORK, head->seq, st, head);
		return err_set(e, ERR_FORK, "account log of %s forked: two "
		    "different signed hashes at seq %llu", st->account,
		    (unsigned long long)head->seq);
	}
	return 0;
}

/* Rule 3: head was signed at most max_stale_s before now. */
static int
head_fresh(const struct acctlog_state *st, const struct acctlog_head *head,
    uint64_t now, uint64_t max_stale_s, struct err_ctx *e)
{
	if (now > head->time && now - head->time > max_stale_s)
		return err_set(e, ERR_STALE, "account log of %s: signed head "
		    "is %llu s old (limit %llu s)", st->account,
		    (unsigned long long)(now - head->time),
		    (unsigned long long)max_stale_s);
	return 0;
}

/*
 * Rule 4, first half: skips the events st has already (seq <= st->seq),
 * the one at st->seq being the one st verified, and sets *first to the
 * index of the first new one, which must not be past head.
 */
static int
skip_known_events(const struct acctlog_state *st,
    const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, struct acctlog_evidence *ev,
    size_t *first, struct err_ctx *e)
{
	uint8_t h[32];
	size_t i = 0;
	int r;

	while (i < n && events[i].seq <= st->seq) {
		if (events[i].seq == st->seq) {
			if ((r = acctlog_event_hash(&events[i], h)) != 0)
				return r;
			if (memcmp(h, st->hash, 32) != 0) {
				evidence_set(ev, ERR_FORK, st->seq, st, head);
				return err_set(e, ERR_FORK, "account log of %s "
				    "forked: event %llu differs from the one "
				    "verified", st->account,
				    (unsigned long long)st->seq);
			}
		}
		i++;
	}
	if (i < n && events[i].seq > head->seq)
		return err_set(e, ERR_FORMAT, "account log of %s: events past "
		    "the signed head", st->account);
	*first = i;
	return 0;
}

/*
 * Rule 4, second half: applies the n new events to work, a copy of st,
 * and checks that they end exactly in head.  work is half-changed on
 * failure.
 */
static int
apply_up_to_head(struct acctlog_state *work, const struct acctlog_state *st,
    const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, struct acctlog_evidence *ev,
    struct err_ctx *e)
{
	int r;

	if ((r = apply_events(work, events, n, e)) != 0) {
		if (r == ERR_CHAIN)
			evidence_set(ev, ERR_CHAIN, work->seq + 1, st, head);
		return r;
	}
	if (work->seq > head->seq)
		return err_set(e, ERR_FORMAT, "account log of %s: events "
		    "past the signed head", st->account);
	if (work->seq < head->seq)
		/* Chained correctly but stopped short: fetch the rest. */
		return err_set(e, ERR_TRUNCATED, "account log of %s: events "
		    "end at seq %llu, the signed head is at %llu", st->account,
		    (unsigned long long)work->seq,
		    (unsigned long long)head->seq);
	if (memcmp(work->hash, head->hash, 32) != 0) {
		evidence_set(ev, ERR_CHAIN, head->seq, st, head);
		return err_set(e, ERR_CHAIN, "account log of %s: the events "
		    "do not end in the signed hash at seq %llu", st->account,
		    (unsigned long long)head->seq);
	}
	return 0;
}

int
acctlog_verify_update(struct acctlog_state *st,
    const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, EVP_PKEY *dir_pub, uint64_t now,
    uint64_t max_stale_s, struct acctlog_evidence *ev, struct err_ctx *e)
{
	struct acctlog_state work;
	size_t first = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(st != NULL && head != NULL && dir_pub != NULL &&
	    (events != NULL || n == 0), ERR_INVALID_ARG);
	memset(&work, 0, sizeof(work));
	if (ev != NULL)
		memset(ev, 0, sizeof(*ev));
	if ((r = head_signed_by_pinned(st, head, dir_pub, e)) != 0 ||
	    (r = head_extends_state(st, head, ev, e)) != 0 ||
	    (r = head_fresh(st, head, now, max_stale_s, e)) != 0 ||
	    (r = skip_known_events(st, events, n, head, ev, &first, e)) != 0)
		return r;
	/* The new events, on a copy. */
	if ((r = acctlog_state_copy(&work, st)) != 0 ||
	    (r = apply_up_to_head(&work, st, events + first, n - first, head,
	    ev, e)) != 0)
		goto out;

	/* Commit.  An older head at the same seq does not replace a newer
	 * one. */
	if (!st->has_head || head->seq > st->seq ||
	    head->time >= st->head.time)
		work.head = *head;
	work.has_head = 1;
	acctlog_state_clear(st);
	*st = work;	/* transferred */
	memset(&work, 0, sizeof(work));
	if (ev != NULL) {
		ev->first_applied = first;
		ev->n_applied = n - first;
	}
	r = 0;
 out:
	acctlog_state_clear(&work);
	return r;
}
