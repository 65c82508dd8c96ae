/*
 * tlog-client.c - what a client checks of the directory's global
 * transparency log (docs/protocol.md section 7.6 and 7.7): the witness
 * policy, checkpoint verification, the kept checkpoint and its file,
 * consistency with it, and inclusion of an account's event.
 *
 * The network is reached only through callbacks; tlog_check_log() and
 * tlog_check_checkpoint(), which bind them to a struct dirc, are in
 * dirclient.c.
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "merkle.h"
#include "tlog-client.h"
#include "tlog-note.h"

/* The state file: {"checkpoint": note, "fresh": N}, JSON-escaped. */
#define TLOG_STATE_FILE_MAX ((size_t)8 * TLOG_NOTE_MAX)

/* --- policy --- */

int
tlog_policy_add_witness(struct tlog_policy *p, const char *s,
    struct err_ctx *e)
{
	struct tlog_vkey k;
	size_t i;
	int r;

	return_val_if_fail(p != NULL && s != NULL, ERR_INVALID_ARG);
	if ((r = tlog_vkey_parse(s, &k, e)) != 0)
		return r;
	if (k.type != TLOG_SIGTYPE_COSIG || k.key_len != TLOG_ED25519_LEN)
		return err_set(e, ERR_FORMAT, "witness key %s is not a "
		    "witness's cosignature key (type 0x04 with an Ed25519 "
		    "key); give the vkey devid-witness init printed", k.name);
	/*
	 * One witness is one public key: the same key under another name
	 * would count twice towards the quorum.
	 */
	for (i = 0; i < p->n_witness; i++) {
		if ((p->witness[i].key_len == k.key_len &&
		    memcmp(p->witness[i].key, k.key, k.key_len) == 0) ||
		    (strcmp(p->witness[i].name, k.name) == 0 &&
		    p->witness[i].key_id == k.key_id))
			return err_set(e, ERR_EXISTS, "witness %s is "
			    "configured twice (same key as %s); list each "
			    "witness once", k.name, p->witness[i].name);
	}
	if (p->n_witness >= TLOG_WITNESS_MAX)
		return err_set(e, ERR_TOO_LARGE, "more than %d witnesses "
		    "configured", TLOG_WITNESS_MAX);
	p->witness[p->n_witness++] = k;
	return 0;
}

int
tlog_policy_check(const struct tlog_policy *p, struct err_ctx *e)
{
	return_val_if_fail(p != NULL, ERR_INVALID_ARG);
	if (p->n_witness == 0 || p->quorum < 1 || p->quorum > p->n_witness)
		return err_set(e, ERR_CONFIG, "witness quorum %u with %zu "
		    "witnesses configured: the quorum must be between 1 and "
		    "the number of witnesses", p->quorum, p->n_witness);
	return 0;
}

/* --- checkpoints --- */

/* Sorts n timestamps into decreasing order (n <= TLOG_WITNESS_MAX). */
static void
sort_desc(uint64_t *t, size_t n)
{
	size_t i, j;
	uint64_t x;

	for (i = 1; i < n; i++) {
		x = t[i];
		for (j = i; j > 0 && t[j - 1] < x; j--)
			t[j] = t[j - 1];
		t[j] = x;
	}
}

int
tlog_checkpoint_verify(const struct tlog_policy *p,
    const uint8_t *dir_spki, size_t spki_len, const char *note, size_t len,
    uint64_t now, struct tlog_verified *out, struct err_ctx *e)
{
	struct tlog_vkey log;
	uint64_t ts[TLOG_WITNESS_MAX], t;
	size_t i, n = 0;
	int r;

	return_val_if_fail(p != NULL && dir_spki != NULL && note != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	memset(out, 0, sizeof(*out));
	if ((r = tlog_policy_check(p, e)) != 0)
		return r;
	if (len > TLOG_NOTE_MAX)
		return err_set(e, ERR_TOO_LARGE, "checkpoint of %zu bytes, "
		    "more than %d", len, TLOG_NOTE_MAX);
	if ((r = tlog_note_parse(note, len, &out->note, e)) != 0 ||
	    (r = tlog_checkpoint_parse(out->note.text, out->note.text_len,
	    &out->cp, e)) != 0)
		return r;
	if ((r = tlog_vkey_log(out->cp.origin, dir_spki, spki_len, &log,
	    e)) != 0)
		return r;
	if ((r = tlog_note_verify_log(&out->note, &log, NULL)) != 0) {
		if (r == ERR_NOT_FOUND || r == ERR_SIGNATURE)
			return err_set(e, ERR_SIGNATURE, "checkpoint of %s "
			    "(size %" PRIu64 "): %s under the pinned "
			    "directory key; it is not the directory's",
			    out->cp.origin, out->cp.size,
			    r == ERR_NOT_FOUND ? "no signature" :
			    "the signature does not verify");
		return err_set(e, r, "checkpoint of %s: checking the "
		    "directory's signature failed", out->cp.origin);
	}
	for (i = 0; i < p->n_witness; i++) {
		r = tlog_cosig_verify(&out->note, &p->witness[i], &t, NULL);
		if (r == ERR_NOT_FOUND)
			continue;
		if (r == ERR_SIGNATURE)
			return err_set(e, ERR_SIGNATURE, "checkpoint of %s "
			    "(size %" PRIu64 "): the cosignature of witness "
			    "%s does not verify; the checkpoint is refused",
			    out->cp.origin, out->cp.size,
			    p->witness[i].name);
		if (r != 0)
			return err_set(e, r, "checkpoint of %s: checking the "
			    "cosignature of witness %s failed",
			    out->cp.origin, p->witness[i].name);
		if (t > now && t - now > TLOG_FUTURE_SKEW)
			return err_set(e, ERR_STALE, "checkpoint of %s: "
			    "witness %s cosigned it %" PRIu64 " s in the "
			    "future; check this computer's clock",
			    out->cp.origin, p->witness[i].name, t - now);
		ts[n++] = t;
	}
	out->n_cosig = (unsigned int)n;
	if (n < p->quorum)
		return err_set(e, ERR_DENIED, "checkpoint of %s (size %"
		    PRIu64 "): %zu of the %zu configured witnesses cosigned "
		    "it, %u needed; the directory's witnesses may be "
		    "unreachable, or it shows a view they did not see",
		    out->cp.origin, out->cp.size, n, p->n_witness,
		    p->quorum);
	sort_desc(ts, n);
	out->fresh = ts[p->quorum - 1];
	if (p->max_stale != 0 && now > out->fresh &&
	    now - out->fresh > p->max_stale)
		return err_set(e, ERR_STALE, "checkpoint of %s (size %"
		    PRIu64 "): its witnesses last cosigned it %" PRIu64
		    " s ago, more than %" PRIu64 " s; the directory "
		    "withholds updates or cannot reach its witnesses",
		    out->cp.origin, out->cp.size, now - out->fresh,
		    p->max_stale);
	return 0;
}

/* --- the kept checkpoint --- */

static const char *const state_fields[] = { "checkpoint", "fresh" };

int
tlog_state_load(const char *path, struct tlog_state *st, struct err_ctx *e)
{
	static const char what[] = "transparency log state";
	struct tlog_note *note = NULL;
	json_t *obj = NULL;
	const char *s;
	char *text = NULL, why[ERR_MSG_MAX];
	size_t len = 0;
	int r;

	return_val_if_fail(path != NULL && st != NULL, ERR_INVALID_ARG);
	memset(st, 0, sizeof(*st));
	r = fileio_read(path, TLOG_STATE_FILE_MAX, FILEIO_PRIVATE, &text, &len,
	    e);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		return 0;
	}
	if (r != 0)
		return r;
	if ((note = calloc(1, sizeof(*note))) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = devrec_json_load(text, len, TLOG_STATE_FILE_MAX, &obj, what,
	    e)) != 0 ||
	    (r = devrec_json_keys(obj, state_fields, 2, what, e)) != 0 ||
	    (r = devrec_json_str(obj, "checkpoint", TLOG_NOTE_MAX, &s, what,
	    e)) != 0 ||
	    (r = devrec_json_u64(obj, "fresh", &st->fresh, what, e)) != 0)
		goto bad;
	st->note_len = strlen(s);
	memcpy(st->note, s, st->note_len + 1);
	if ((r = tlog_note_parse(st->note, st->note_len, note, e)) != 0 ||
	    (r = tlog_checkpoint_parse(note->text, note->text_len, &st->cp,
	    e)) != 0)
		goto bad;
	st->have = 1;
	r = 0;
	goto out;
 bad:
	memset(st, 0, sizeof(*st));
	if (r == ERR_ALLOC)
		goto out;
	snprintf(why, sizeof(why), "%s", err_msg(e));
	r = err_wrap(e, ERR_FORMAT, "%s in %s is damaged (%s); restore it "
	    "from a backup, or remove it to accept the directory's current "
	    "checkpoint afresh (losing the protection against a fork before "
	    "it)", what, path, why);
 out:
	json_decref(obj);
	free(note);
	free(text);
	return r;
}

int
tlog_state_save(const char *path, const struct tlog_state *st,
    struct err_ctx *e)
{
	json_t *obj = NULL;
	char *text = NULL;
	int r;

	return_val_if_fail(path != NULL && st != NULL, ERR_INVALID_ARG);
	return_val_if_fail(st->have && st->note_len <= TLOG_NOTE_MAX &&
	    st->note[st->note_len] == '\0', ERR_INVALID_ARG);
	if ((obj = json_object()) == NULL ||
	    devrec_json_set_str(obj, "checkpoint", st->note) != 0 ||
	    devrec_json_set_u64(obj, "fresh", st->fresh) != 0 ||
	    (text = json_dumps(obj, JSON_COMPACT)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	r = fileio_write_atomic(path, text, strlen(text), 0600, e);
 out:
	free(text);
	json_decref(obj);
	return r;
}

/* Makes st the checkpoint v (its note formatted back). */
static int
state_set(struct tlog_state *st, const struct tlog_verified *v,
    struct err_ctx *e)
{
	char *s = NULL;
	size_t len = 0;

	if (tlog_note_format(&v->note, &s, &len) != 0)
		return err_set(e, ERR_ALLOC, "out of memory");
	if (len > TLOG_NOTE_MAX) {
		free(s);
		return err_set(e, ERR_TOO_LARGE, "checkpoint of %s: longer "
		    "than %d bytes", v->cp.origin, TLOG_NOTE_MAX);
	}
	memcpy(st->note, s, len + 1);
	st->note_len = len;
	st->cp = v->cp;
	st->fresh = v->fresh;
	st->have = 1;
	free(s);
	return 0;
}

/* The evidence of a fork: st's note and v's, then ERR_FORK. */
static int
fork_found(const struct tlog_state *st, const struct tlog_verified *v,
    struct tlog_fork *fork, const char *why, struct err_ctx *e)
{
	char *s = NULL;
	size_t len = 0;

	if (fork != NULL) {
		memset(fork, 0, sizeof(*fork));
		memcpy(fork->held, st->note, st->note_len);
		if (tlog_note_format(&v->note, &s, &len) == 0) {
			if (len > TLOG_NOTE_MAX)
				len = TLOG_NOTE_MAX;
			memcpy(fork->shown, s, len);
		}
		free(s);
	}
	return err_set(e, ERR_FORK, "the directory's transparency log is "
	    "forked: the checkpoint of %s at size %" PRIu64 " contradicts "
	    "the one kept at size %" PRIu64 " (%s); keep both as evidence "
	    "and do not trust this directory's answers", v->cp.origin,
	    v->cp.size, st->cp.size, why);
}

int
tlog_state_update(struct tlog_state *st, const struct tlog_verified *v,
    tlog_proof_fn get, void *arg, int *changed, struct tlog_fork *fork,
    struct err_ctx *e)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint64_t from, to;
	const uint8_t *from_root, *to_root;
	size_t n = 0;
	int r;

	return_val_if_fail(st != NULL && v != NULL && get != NULL,
	    ERR_INVALID_ARG);
	if (changed != NULL)
		*changed = 0;
	if (!st->have) {
		if ((r = state_set(st, v, e)) != 0)
			return r;
		if (changed != NULL)
			*changed = 1;
		return 0;
	}
	if (strcmp(st->cp.origin, v->cp.origin) != 0)
		return fork_found(st, v, fork, "another origin", e);
	if (v->cp.size == st->cp.size) {
		if (CRYPTO_memcmp(v->cp.root, st->cp.root,
		    MERKLE_HASH_LEN) != 0)
			return fork_found(st, v, fork, "same size, another "
			    "root", e);
		/* The same tree: keep the note with the fresher quorum. */
		if (v->fresh > st->fresh) {
			if ((r = state_set(st, v, e)) != 0)
				return r;
			if (changed != NULL)
				*changed = 1;
		}
		return 0;
	}
	if (v->cp.size > st->cp.size) {
		from = st->cp.size;
		from_root = st->cp.root;
		to = v->cp.size;
		to_root = v->cp.root;
	} else {
		from = v->cp.size;
		from_root = v->cp.root;
		to = st->cp.size;
		to_root = st->cp.root;
	}
	if (from > 0 && (r = get(arg, from, to, proof, &n, e)) != 0)
		return r;
	if (merkle_consistency_verify(from, to, from_root, to_root, proof,
	    n) != 0)
		return fork_found(st, v, fork, "the consistency proof does "
		    "not verify", e);
	if (v->cp.size > st->cp.size) {
		if ((r = state_set(st, v, e)) != 0)
			return r;
		if (changed != NULL)
			*changed = 1;
	}
	return 0;
}

int
tlog_inclusion_check(const struct tlog_verified *v, const char *account,
    uint64_t seq, const uint8_t ev[MERKLE_HASH_LEN], uint64_t index,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n, struct err_ctx *e)
{
	uint8_t leaf[MERKLE_HASH_LEN];
	int r;

	return_val_if_fail(v != NULL && account != NULL && ev != NULL &&
	    (proof != NULL || n == 0), ERR_INVALID_ARG);
	if (tlog_leaf_hash(account, seq, ev, leaf) != 0)
		return err_set(e, ERR_FORMAT, "event %" PRIu64 " of %s: no "
		    "leaf can be made of it", seq, account);
	r = merkle_inclusion_verify(index, v->cp.size, leaf, proof, n,
	    v->cp.root);
	if (r == ERR_SIGNATURE)
		return err_set(e, ERR_SIGNATURE, "event %" PRIu64 " of %s is "
		    "not proven to be leaf %" PRIu64 " of the transparency "
		    "log at size %" PRIu64 ": the inclusion proof does not "
		    "verify", seq, account, index, v->cp.size);
	if (r != 0)
		return err_set(e, r, "checking the inclusion of event %"
		    PRIu64 " of %s failed", seq, account);
	return 0;
}

/* --- the checks of a client --- */

/*
 * Verifies note (steps 1 and, unless skip_stale, 2) into res->v and
 * brings st up to it (step 3), saving it to state_path when it changed.
 */
static int
check_note(const struct tlog_policy *p, const uint8_t *dir_spki,
    size_t spki_len, struct tlog_state *st, const char *state_path,
    tlog_proof_fn get, void *arg, const char *note, size_t len,
    uint64_t now, int skip_stale, struct tlog_check_result *res,
    struct err_ctx *e)
{
	struct tlog_policy *q = NULL;
	struct tlog_state *before = NULL;
	int r;

	if (skip_stale) {
		if ((q = malloc(sizeof(*q))) == NULL)
			return err_set(e, ERR_ALLOC, "out of memory");
		*q = *p;
		q->max_stale = 0;
		p = q;
	}
	r = tlog_checkpoint_verify(p, dir_spki, spki_len, note, len, now,
	    &res->v, e);
	free(q);
	res->have_v = r == 0 || r == ERR_STALE;
	if (r != 0)
		return r;
	if ((before = malloc(sizeof(*before))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	*before = *st;
	r = tlog_state_update(st, &res->v, get, arg, &res->changed,
	    &res->fork, e);
	if (r == ERR_FORK)
		res->have_fork = 1;
	if (r == 0 && res->changed && state_path != NULL &&
	    (r = tlog_state_save(state_path, st, e)) != 0) {
		/* What is not kept on disk is not kept at all. */
		*st = *before;
		res->changed = 0;
	}
	free(before);
	return r;
}

int
tlog_check_log_cb(const struct tlog_policy *p, const uint8_t *dir_spki,
    size_t spki_len, struct tlog_state *st, const char *state_path,
    tlog_proof_fn get, tlog_note_fn latest, void *arg, const char *account,
    const struct acctlog_response *resp, const uint8_t *ev_hash_of_tlog_seq,
    uint64_t now, struct tlog_check_result *res, struct err_ctx *e)
{
	const struct acctlog_tlog *t;
	const uint8_t *ev = ev_hash_of_tlog_seq;
	char *note = NULL;
	size_t len = 0, i;
	int r;

	return_val_if_fail(p != NULL && dir_spki != NULL && st != NULL &&
	    get != NULL && account != NULL && resp != NULL && res != NULL,
	    ERR_INVALID_ARG);
	memset(res, 0, sizeof(*res));
	res->head_seq = resp->head.seq;
	t = &resp->tlog;
	if (!t->present) {
		/*
		 * No checkpoint holds an event of the account (yet): the
		 * latest one is still checked, so that a directory cannot
		 * hide a stale or forked log behind a missing member.
		 */
		res->pending = resp->head.seq > 0;
		if (latest == NULL)
			return 0;
		if ((r = latest(arg, &note, &len, e)) != 0)
			return r;
		r = check_note(p, dir_spki, spki_len, st, state_path, get,
		    arg, note, len, now, 0, res, e);
		free(note);
		return r;
	}
	if (t->seq == 0 || t->seq > resp->head.seq || t->checkpoint == NULL)
		return err_set(e, ERR_FORMAT, "log of %s: the transparency "
		    "log proves event %" PRIu64 ", past the signed head (%"
		    PRIu64 ")", account, t->seq, resp->head.seq);
	if (ev == NULL) {
		if (resp->head.seq == t->seq)
			ev = resp->head.hash;
		for (i = 0; ev == NULL && i < resp->n_events; i++)
			if (resp->events[i].seq == t->seq)
				ev = resp->events[i].hash;
		if (ev == NULL)
			return err_set(e, ERR_INVALID_ARG, "log of %s: the "
			    "hash of event %" PRIu64 " is needed to check its "
			    "inclusion", account, t->seq);
	}
	if ((r = check_note(p, dir_spki, spki_len, st, state_path, get, arg,
	    t->checkpoint, t->checkpoint_len, now, 0, res, e)) != 0)
		return r;
	if ((r = tlog_inclusion_check(&res->v, account, t->seq, ev, t->index,
	    (const uint8_t (*)[MERKLE_HASH_LEN])t->proof, t->n_proof,
	    e)) != 0) {
		res->inclusion_failed = r == ERR_SIGNATURE;
		return r;
	}
	res->proven_seq = t->seq;
	res->pending = res->proven_seq < res->head_seq;
	return 0;
}

int
tlog_check_checkpoint_cb(const struct tlog_policy *p,
    const uint8_t *dir_spki, size_t spki_len, struct tlog_state *st,
    const char *state_path, tlog_proof_fn get, void *arg, const char *note,
    size_t len, uint64_t now, struct tlog_check_result *res,
    struct err_ctx *e)
{
	return_val_if_fail(p != NULL && dir_spki != NULL && st != NULL &&
	    get != NULL && note != NULL && res != NULL, ERR_INVALID_ARG);
	memset(res, 0, sizeof(*res));
	return check_note(p, dir_spki, spki_len, st, state_path, get, arg,
	    note, len, now, 1, res, e);
}
