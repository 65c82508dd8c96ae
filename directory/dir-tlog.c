/*
 * dir-tlog.c - checkpoints of the global transparency log, their
 * witnesses, and proofs (see dir-tlog.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "dir-log.h"
#include "dir-tlog.h"
#include "witclient.h"

/* Stored nodes kept in memory: a direct-mapped table (nodes never
 * change, so a hit is always right), its slots guarded by
 * NODE_CACHE_LOCKS locks so that request threads seldom wait on each
 * other. */
#define NODE_CACHE_SLOTS 131072
#define NODE_CACHE_LOCKS 64
/* How long a process that is not the sequencer serves a checkpoint it
 * read from the store before reading again. */
#define LATEST_REUSE_MS 250

struct node_slot {
	uint64_t index;
	uint8_t level;
	uint8_t used;
	uint8_t hash[MERKLE_HASH_LEN];
};

struct wit_state {
	struct witc *client;
	uint64_t size;                /* what it last cosigned, as we know */
};

struct dir_tlog {
	struct dir_tlog_config cfg;
	struct dir_store *store;
	struct dir_key *key;
	struct tlog_vkey log;
	char vkey_text[TLOG_VKEY_MAX * 2];

	pthread_mutex_t lock;         /* everything below */
	pthread_cond_t cond;
	int running, stop, poked;
	pthread_t thread;
	/* the latest checkpoint this process knows */
	char *latest;
	uint64_t latest_size;
	uint64_t latest_ms;           /* when read or made */
	uint64_t made_s;              /* when this process last made one */

	pthread_mutex_t round_lock;   /* one round at a time */
	struct wit_state wit[TLOG_WITNESS_MAX];

	pthread_mutex_t cache_lock[NODE_CACHE_LOCKS];
	struct node_slot *cache;
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
dir_tlog_config_default(struct dir_tlog_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->interval_s = DIR_TLOG_INTERVAL_DEFAULT;
	cfg->refresh_s = DIR_TLOG_REFRESH_DEFAULT;
}

/* A key name as C2SP signed-note allows it: printable, no space, no '+'. */
static int
name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > TLOG_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == '+')
			return 0;
	}
	return 1;
}

int
dir_tlog_set_origin(struct dir_tlog_config *cfg, const char *origin,
    struct err_ctx *e)
{
	if (!name_ok(origin))
		return err_set(e, ERR_CONFIG, "--tlog-origin must be 1 to %d "
		    "characters without spaces, '+' or control characters, "
		    "such as dir.example.org/devid", TLOG_NAME_MAX);
	snprintf(cfg->origin, sizeof(cfg->origin), "%s", origin);
	return 0;
}

int
dir_tlog_add_witness(struct dir_tlog_config *cfg, const char *spec,
    struct err_ctx *e)
{
	struct dir_tlog_witness *w;
	const char *comma;
	size_t i, ulen;
	struct err_ctx ie;

	if (cfg->n_witness == TLOG_WITNESS_MAX)
		return err_set(e, ERR_CONFIG, "at most %d --witness options",
		    TLOG_WITNESS_MAX);
	if ((comma = strchr(spec, ',')) == NULL || comma == spec)
		return err_set(e, ERR_CONFIG, "--witness takes URL,VKEY: the "
		    "witness's submission URL, a comma, and the key "
		    "devid-witness init printed");
	ulen = (size_t)(comma - spec);
	if (ulen > DIR_TLOG_URL_MAX)
		return err_set(e, ERR_CONFIG, "--witness: the URL is longer "
		    "than %d characters", DIR_TLOG_URL_MAX);
	w = &cfg->witness[cfg->n_witness];
	memset(w, 0, sizeof(*w));
	memcpy(w->url, spec, ulen);
	w->url[ulen] = '\0';
	err_clear(&ie);
	if (tlog_vkey_parse(comma + 1, &w->vkey, &ie) != 0)
		return err_set(e, ERR_CONFIG, "--witness %s: %s", w->url,
		    err_msg(&ie));
	if (w->vkey.type != TLOG_SIGTYPE_COSIG)
		return err_set(e, ERR_CONFIG, "--witness %s: the key is not a "
		    "witness's cosigning key (type 0x04)", w->url);
	for (i = 0; i < cfg->n_witness; i++)
		if (strcmp(cfg->witness[i].vkey.name, w->vkey.name) == 0 &&
		    cfg->witness[i].vkey.key_id == w->vkey.key_id)
			return err_set(e, ERR_CONFIG, "--witness %s is given "
			    "twice", w->vkey.name);
	cfg->n_witness++;
	return 0;
}

static int
origin_of(const char *origin, struct dir_key *key, char out[TLOG_NAME_MAX + 1])
{
	if (origin != NULL && origin[0] != '\0')
		snprintf(out, TLOG_NAME_MAX + 1, "%s", origin);
	else
		snprintf(out, TLOG_NAME_MAX + 1, "devid/%s", dir_key_id(key));
	return 0;
}

int
dir_tlog_vkey_of(const char *origin, struct dir_key *key, char *out,
    size_t out_size, struct err_ctx *e)
{
	char o[TLOG_NAME_MAX + 1];
	struct tlog_vkey v;
	const uint8_t *spki;
	size_t spki_len;
	int r;

	origin_of(origin, key, o);
	spki = dir_key_spki(key, &spki_len);
	if ((r = tlog_vkey_log(o, spki, spki_len, &v, e)) != 0)
		return r;
	if (tlog_vkey_format(&v, out, out_size) != 0)
		return err_set(e, ERR_INTERNAL, "the log's key does not fit "
		    "its buffer");
	return 0;
}

/* --- stored nodes, through the cache --- */

static size_t
slot_of(unsigned int level, uint64_t index)
{
	uint64_t h = index * UINT64_C(0x9e3779b97f4a7c15) + level;

	return (size_t)((h ^ (h >> 29)) % NODE_CACHE_SLOTS);
}

static int
node_get(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct dir_tlog *t = arg;
	size_t slot = slot_of(level, index);
	struct node_slot *sl = &t->cache[slot];
	pthread_mutex_t *lock = &t->cache_lock[slot % NODE_CACHE_LOCKS];
	int r;

	pthread_mutex_lock(lock);
	if (sl->used && sl->level == level && sl->index == index) {
		memcpy(out, sl->hash, MERKLE_HASH_LEN);
		pthread_mutex_unlock(lock);
		return 0;
	}
	pthread_mutex_unlock(lock);
	if ((r = t->store->ops->tlog_node(t->store, level, index, out,
	    e)) != 0)
		return r;
	pthread_mutex_lock(lock);
	sl->used = 1;
	sl->level = (uint8_t)level;
	sl->index = index;
	memcpy(sl->hash, out, MERKLE_HASH_LEN);
	pthread_mutex_unlock(lock);
	return 0;
}

int
dir_tlog_inclusion(struct dir_tlog *t, uint64_t index, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	return merkle_inclusion_proof(index, size, node_get, t, proof, n, e);
}

int
dir_tlog_consistency(struct dir_tlog *t, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	return merkle_consistency_proof(old, size, node_get, t, proof, n, e);
}

/* --- the object --- */

int
dir_tlog_new(const struct dir_tlog_config *cfg, struct dir_store *store,
    struct dir_key *key, struct dir_tlog **out, struct err_ctx *e)
{
	struct dir_tlog *t;
	const uint8_t *spki;
	size_t i, spki_len;
	int r;

	return_val_if_fail(cfg != NULL && store != NULL && key != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	if (store->ops->tlog_size == NULL || store->ops->tlog_node == NULL ||
	    store->ops->checkpoint_get == NULL)
		return err_set(e, ERR_UNSUPPORTED, "the %s store keeps no "
		    "transparency log", store->ops->name);
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->cache = calloc(NODE_CACHE_SLOTS, sizeof(*t->cache))) == NULL) {
		free(t);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	t->cfg = *cfg;
	t->store = store;
	t->key = key;
	origin_of(cfg->origin, key, t->cfg.origin);
	spki = dir_key_spki(key, &spki_len);
	if ((r = tlog_vkey_log(t->cfg.origin, spki, spki_len, &t->log,
	    e)) != 0)
		goto fail;
	if (tlog_vkey_format(&t->log, t->vkey_text,
	    sizeof(t->vkey_text)) != 0) {
		r = err_set(e, ERR_INTERNAL, "the log's key does not fit its "
		    "buffer");
		goto fail;
	}
	for (i = 0; i < cfg->n_witness; i++)
		if ((r = witc_new(cfg->witness[i].url,
		    DIR_TLOG_WITNESS_TIMEOUT_S, &t->wit[i].client, e)) != 0)
			goto fail;
	pthread_mutex_init(&t->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&t->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&t->round_lock, NULL);
	for (i = 0; i < NODE_CACHE_LOCKS; i++)
		pthread_mutex_init(&t->cache_lock[i], NULL);
	*out = t;
	return 0;
 fail:
	for (i = 0; i < cfg->n_witness; i++)
		witc_free(t->wit[i].client);
	free(t->cache);
	free(t);
	return r;
}

const char *
dir_tlog_origin(const struct dir_tlog *t)
{
	return t->cfg.origin;
}

const char *
dir_tlog_vkey(const struct dir_tlog *t)
{
	return t->vkey_text;
}

int
dir_tlog_latest(struct dir_tlog *t, uint64_t *size, char **note,
    struct err_ctx *e)
{
	uint64_t now = mono_ms(), sz;
	char *n = NULL, *copy;
	int r;

	pthread_mutex_lock(&t->lock);
	if (t->latest != NULL && now - t->latest_ms < LATEST_REUSE_MS) {
		copy = strdup(t->latest);
		sz = t->latest_size;
		pthread_mutex_unlock(&t->lock);
		if (copy == NULL)
			return err_set(e, ERR_ALLOC, "out of memory");
		*size = sz;
		*note = copy;
		return 0;
	}
	pthread_mutex_unlock(&t->lock);
	if ((r = t->store->ops->checkpoint_get(t->store, &sz, &n, e)) != 0)
		return r;
	if ((copy = strdup(n)) == NULL) {
		free(n);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	pthread_mutex_lock(&t->lock);
	free(t->latest);
	t->latest = copy;
	t->latest_size = sz;
	t->latest_ms = now;
	pthread_mutex_unlock(&t->lock);
	*size = sz;
	*note = n;
	return 0;
}

int
dir_tlog_latest_size(struct dir_tlog *t, uint64_t *size, struct err_ctx *e)
{
	char *note = NULL;
	int r;

	pthread_mutex_lock(&t->lock);
	if (t->latest != NULL && mono_ms() - t->latest_ms < LATEST_REUSE_MS) {
		*size = t->latest_size;
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	pthread_mutex_unlock(&t->lock);
	r = dir_tlog_latest(t, size, &note, e);
	free(note);
	return r;
}

/* --- one round: sign, submit, store --- */

/*
 * Submits the signed checkpoint (note: the text and the directory's
 * signature line, of size leaves) to witness i and adds the cosignature
 * it returns to cosigned, if it verifies.  A witness
 * that has another size than we thought is asked again once from its
 * size.  Failures are logged, not returned: a witness that is down or
 * refuses must not stop the log.
 */
static void
submit_one(struct dir_tlog *t, size_t i, const char *note, size_t note_len,
    uint64_t size, struct tlog_note *cosigned)
{
	struct dir_tlog_witness *w = &t->cfg.witness[i];
	struct wit_state *ws = &t->wit[i];
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	struct tlog_note check;
	struct tlog_sigline sl;
	struct err_ctx e;
	uint64_t wsize = 0, ts;
	char *body = NULL, *lines = NULL;
	const char *p, *nl;
	size_t n = 0, blen;
	int attempt, r, added = 0;

	for (attempt = 0; attempt < 2; attempt++) {
		err_clear(&e);
		if (ws->size > size) {
			dir_log("witness %s has cosigned a tree of %llu "
			    "leaves, larger than this log's %llu: this log "
			    "was rolled back or forked", w->vkey.name,
			    (unsigned long long)ws->size,
			    (unsigned long long)size);
			return;
		}
		if ((r = dir_tlog_consistency(t, ws->size, size, proof, &n,
		    &e)) != 0) {
			dir_log("checkpoint %llu for witness %s: no "
			    "consistency proof from %llu: %s",
			    (unsigned long long)size, w->vkey.name,
			    (unsigned long long)ws->size, err_msg(&e));
			return;
		}
		free(body);
		body = NULL;
		if (tlog_witness_req_format(ws->size,
		    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, note, note_len,
		    &body, &blen) != 0) {
			dir_log("checkpoint %llu: out of memory",
			    (unsigned long long)size);
			return;
		}
		r = witc_add_checkpoint(ws->client, body, blen, &lines, &wsize,
		    &e);
		if (r == ERR_EXISTS && attempt == 0 && wsize != ws->size &&
		    wsize <= size) {
			ws->size = wsize;	/* it knows better: again */
			continue;
		}
		break;
	}
	free(body);
	if (r != 0) {
		dir_log("witness %s refused or missed checkpoint %llu: %s",
		    w->vkey.name, (unsigned long long)size, err_msg(&e));
		return;
	}
	ws->size = size;
	/* Keep only lines of this witness's key that verify. */
	for (p = lines; p != NULL && *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		err_clear(&e);
		if (tlog_sigline_parse(p, (size_t)(nl - p + 1), &sl, &e) != 0 ||
		    strcmp(sl.name, w->vkey.name) != 0 ||
		    sl.key_id != w->vkey.key_id)
			continue;
		check = *cosigned;
		check.nsig = 0;
		if (tlog_note_add_sig(&check, &sl) != 0 ||
		    tlog_cosig_verify(&check, &w->vkey, &ts, &e) != 0) {
			dir_log("witness %s returned a cosignature on "
			    "checkpoint %llu that does not verify: %s",
			    w->vkey.name, (unsigned long long)size,
			    err_msg(&e));
			continue;
		}
		if (tlog_note_add_sig(cosigned, &sl) == 0)
			added = 1;
	}
	if (!added)
		dir_log("witness %s answered checkpoint %llu without a "
		    "cosignature of its key", w->vkey.name,
		    (unsigned long long)size);
	free(lines);
}

int
dir_tlog_checkpoint_now(struct dir_tlog *t, uint64_t *size,
    struct err_ctx *e)
{
	struct tlog_checkpoint cp;
	struct tlog_note note;
	char *text = NULL, *copy, *signed_note = NULL;
	uint64_t sz;
	size_t len, i, signed_len = 0;
	int leader = 0, r;

	pthread_mutex_lock(&t->round_lock);
	if ((r = t->store->ops->tlog_sequencer(t->store, &leader, e)) != 0)
		goto out;
	if (!leader) {
		r = err_set(e, ERR_DENIED, "another directory process makes "
		    "the checkpoints");
		goto out;
	}
	memset(&cp, 0, sizeof(cp));
	memset(&note, 0, sizeof(note));
	snprintf(cp.origin, sizeof(cp.origin), "%s", t->cfg.origin);
	if ((r = t->store->ops->tlog_size(t->store, &sz, e)) != 0 ||
	    (r = merkle_root(sz, node_get, t, cp.root, e)) != 0)
		goto out;
	cp.size = sz;
	if ((r = tlog_checkpoint_format(&cp, note.text, sizeof(note.text),
	    &note.text_len)) != 0) {
		r = err_set(e, r, "the checkpoint's text does not fit");
		goto out;
	}
	if ((r = tlog_note_sign_log(&note, &t->log, dir_key_sign, t->key,
	    e)) != 0)
		goto out;
	/* Witnesses get the note as the directory signed it. */
	if (t->cfg.n_witness > 0 &&
	    (r = tlog_note_format(&note, &signed_note, &signed_len)) != 0) {
		r = err_set(e, r, "out of memory");
		goto out;
	}
	for (i = 0; i < t->cfg.n_witness; i++)
		submit_one(t, i, signed_note, signed_len, sz, &note);
	if ((r = tlog_note_format(&note, &text, &len)) != 0) {
		r = err_set(e, r, "out of memory");
		goto out;
	}
	if ((r = t->store->ops->checkpoint_put(t->store, sz, text, e)) != 0)
		goto out;
	if ((copy = strdup(text)) != NULL) {
		pthread_mutex_lock(&t->lock);
		free(t->latest);
		t->latest = copy;
		t->latest_size = sz;
		t->latest_ms = mono_ms();
		t->made_s = (uint64_t)time(NULL);
		pthread_mutex_unlock(&t->lock);
	}
	if (size != NULL)
		*size = sz;
 out:
	pthread_mutex_unlock(&t->round_lock);
	free(text);
	free(signed_note);
	return r;
}

/* --- the checkpointer --- */

/* Whether a round is due: the tree grew past the latest checkpoint, or
 * refresh_s passed since this process made one. */
static int
round_due(struct dir_tlog *t, int *leader)
{
	struct err_ctx e;
	uint64_t sz, have, made;

	err_clear(&e);
	if (t->store->ops->tlog_sequencer(t->store, leader, &e) != 0) {
		dir_log("transparency log: %s", err_msg(&e));
		*leader = 0;
		return 0;
	}
	if (!*leader)
		return 0;
	if (t->store->ops->tlog_size(t->store, &sz, &e) != 0) {
		dir_log("transparency log: %s", err_msg(&e));
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	have = t->latest != NULL ? t->latest_size : UINT64_MAX;
	made = t->made_s;
	pthread_mutex_unlock(&t->lock);
	if (have == UINT64_MAX) {
		char *n = NULL;
		if (dir_tlog_latest(t, &have, &n, &e) != 0)
			return 1;	/* none yet: make the first */
		free(n);
	}
	return sz != have || (uint64_t)time(NULL) >= made + t->cfg.refresh_s;
}

/*
 * Waits until a round may run: at most one per interval, started early
 * by a poke (the tree grew) once the interval since the last round has
 * passed, otherwise once per interval to look (another process may have
 * appended, or the refresh may be due).  Returns non-zero to stop.
 */
static int
wait_next(struct dir_tlog *t, uint64_t last_round, uint64_t *last_look)
{
	uint64_t iv = (uint64_t)t->cfg.interval_s * 1000, now, target;
	struct timespec ts;
	int stop;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		if (t->stop)
			break;
		now = mono_ms();
		if (now >= last_round + iv &&
		    (t->poked || now >= *last_look + iv))
			break;
		target = now < last_round + iv ? last_round + iv :
		    *last_look + iv;
		ts.tv_sec = (time_t)(target / 1000);
		ts.tv_nsec = (long)(target % 1000) * 1000000;
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	t->poked = 0;
	stop = t->stop;
	pthread_mutex_unlock(&t->lock);
	*last_look = mono_ms();
	return stop;
}

static void *
checkpointer_main(void *arg)
{
	struct dir_tlog *t = arg;
	struct err_ctx e;
	uint64_t last_round = 0, last_look = 0;
	int leader;

	do {
		if (round_due(t, &leader)) {
			last_round = mono_ms();
			err_clear(&e);
			if (dir_tlog_checkpoint_now(t, NULL, &e) != 0 &&
			    e.code != ERR_DENIED)
				dir_log("transparency log: no checkpoint: %s",
				    err_msg(&e));
		}
	} while (!wait_next(t, last_round, &last_look));
	return NULL;
}

int
dir_tlog_start(struct dir_tlog *t, struct err_ctx *e)
{
	if (t->cfg.interval_s == 0)
		return 0;
	if (pthread_create(&t->thread, NULL, checkpointer_main, t) != 0)
		return err_set(e, ERR_INTERNAL, "cannot start the "
		    "checkpointer thread");
	t->running = 1;
	return 0;
}

void
dir_tlog_poke(struct dir_tlog *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->poked = 1;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void
dir_tlog_free(struct dir_tlog *t)
{
	size_t i;

	if (t == NULL)
		return;
	if (t->running) {
		pthread_mutex_lock(&t->lock);
		t->stop = 1;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
	}
	for (i = 0; i < t->cfg.n_witness; i++)
		witc_free(t->wit[i].client);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->round_lock);
	for (i = 0; i < NODE_CACHE_LOCKS; i++)
		pthread_mutex_destroy(&t->cache_lock[i]);
	free(t->latest);
	free(t->cache);
	free(t);
}
