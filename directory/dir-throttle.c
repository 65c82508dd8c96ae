/*
 * dir-throttle.c - failure counts per account and per client network
 * (see dir-throttle.h), in one hash table under one mutex.  Entries that
 * hold no failure and no running check are dropped when their chain is
 * walked, so the table holds only keys that were active recently.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dir-throttle.h"
#include "errors.h"

#define SLOTS 4096
#define KEY_MAX 160                    /* "a:" + account, "n:" + network */

struct entry {
	char key[KEY_MAX];
	unsigned int failures;
	unsigned int inflight;
	uint64_t last_fail_ms;
	struct entry *next;
};

struct dir_throttle {
	pthread_mutex_t lock;
	struct entry *slot[SLOTS];
	size_t entries;
};

struct dir_throttle *
dir_throttle_new(void)
{
	struct dir_throttle *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void
dir_throttle_free(struct dir_throttle *t)
{
	struct entry *x, *next;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < SLOTS; i++) {
		for (x = t->slot[i]; x != NULL; x = next) {
			next = x->next;
			free(x);
		}
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static size_t
slot_of(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (uint8_t)*key) * 16777619u;
	return h % SLOTS;
}

static int
forgotten(const struct entry *x, uint64_t now_ms)
{
	return x->inflight == 0 && (x->failures == 0 ||
	    now_ms - x->last_fail_ms >= (uint64_t)DIR_THROTTLE_FORGET_S * 1000);
}

/*
 * The entry of key, created when create is set; NULL when absent (or the
 * table is full).  Drops forgotten entries of the chain on the way.  Lock
 * held.
 */
static struct entry *
lookup(struct dir_throttle *t, const char *key, int create, uint64_t now_ms)
{
	struct entry **pp, *x, *found = NULL;
	size_t s = slot_of(key);

	pp = &t->slot[s];
	while ((x = *pp) != NULL) {
		if (strcmp(x->key, key) == 0) {
			found = x;
			pp = &x->next;
		} else if (forgotten(x, now_ms)) {
			*pp = x->next;
			free(x);
			t->entries--;
		} else {
			pp = &x->next;
		}
	}
	if (found != NULL && forgotten(found, now_ms))
		found->failures = 0;
	if (found != NULL || !create)
		return found;
	if (t->entries >= DIR_THROTTLE_ENTRIES_MAX ||
	    (x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	snprintf(x->key, sizeof(x->key), "%s", key);
	x->next = t->slot[s];
	t->slot[s] = x;
	t->entries++;
	return x;
}

/* Seconds until x may try again (0: now). */
static unsigned int
wait_left(const struct entry *x, uint64_t now_ms)
{
	uint64_t wait_ms, until;
	unsigned int over;

	/* A check in flight may yet fail: it counts as one until it ends,
	 * so parallel guesses get no more tries than sequential ones. */
	if (x->failures < DIR_THROTTLE_FREE)
		return x->failures + x->inflight < DIR_THROTTLE_FREE ? 0 : 1;
	if (x->inflight > 0)
		return 1;
	over = x->failures - DIR_THROTTLE_FREE;
	wait_ms = over >= 10 ? (uint64_t)DIR_THROTTLE_WAIT_MAX_S * 1000 :
	    ((uint64_t)1000 << over);
	if (wait_ms > (uint64_t)DIR_THROTTLE_WAIT_MAX_S * 1000)
		wait_ms = (uint64_t)DIR_THROTTLE_WAIT_MAX_S * 1000;
	until = x->last_fail_ms + wait_ms;
	if (until <= now_ms)
		return 0;
	return (unsigned int)((until - now_ms + 999) / 1000);
}

static void
make_key(char out[KEY_MAX], const char *ns, const char *name)
{
	snprintf(out, KEY_MAX, "%s:%s", ns, name);
}

int
dir_throttle_begin(struct dir_throttle *t, const char *account,
    const char *net, uint64_t now_ms, unsigned int *retry_s)
{
	char ka[KEY_MAX], kn[KEY_MAX];
	struct entry *xa = NULL, *xn;
	unsigned int wa = 0, wn;
	int r = 0;

	*retry_s = 1;
	make_key(kn, "n", net);
	if (account != NULL)
		make_key(ka, "a", account);
	pthread_mutex_lock(&t->lock);
	if ((xn = lookup(t, kn, 1, now_ms)) == NULL ||
	    (account != NULL && (xa = lookup(t, ka, 1, now_ms)) == NULL)) {
		r = ERR_ALLOC;
		goto out;
	}
	wn = wait_left(xn, now_ms);
	if (xa != NULL)
		wa = wait_left(xa, now_ms);
	if (wn > 0 || wa > 0) {
		*retry_s = wn > wa ? wn : wa;
		r = ERR_DENIED;
		goto out;
	}
	xn->inflight++;
	if (xa != NULL)
		xa->inflight++;
 out:
	pthread_mutex_unlock(&t->lock);
	return r;
}

static void
end_one(struct dir_throttle *t, const char *key,
    enum dir_throttle_outcome outcome, int clear, uint64_t now_ms)
{
	struct entry *x;

	if ((x = lookup(t, key, 0, now_ms)) == NULL)
		return;
	if (x->inflight > 0)
		x->inflight--;
	if (outcome == DIR_THROTTLE_FAILED) {
		if (x->failures < UINT32_MAX)
			x->failures++;
		x->last_fail_ms = now_ms;
	} else if (outcome == DIR_THROTTLE_OK && clear) {
		x->failures = 0;
	}
}

void
dir_throttle_end(struct dir_throttle *t, const char *account,
    const char *net, enum dir_throttle_outcome outcome, uint64_t now_ms)
{
	char k[KEY_MAX];

	pthread_mutex_lock(&t->lock);
	make_key(k, "n", net);
	end_one(t, k, outcome, 0, now_ms);
	if (account != NULL) {
		make_key(k, "a", account);
		end_one(t, k, outcome, 1, now_ms);
	}
	pthread_mutex_unlock(&t->lock);
}

unsigned int
dir_throttle_failures(struct dir_throttle *t, const char *account,
    const char *net)
{
	char k[KEY_MAX];
	struct entry *x;
	unsigned int n = 0;

	pthread_mutex_lock(&t->lock);
	if (account != NULL)
		make_key(k, "a", account);
	else
		make_key(k, "n", net != NULL ? net : "");
	for (x = t->slot[slot_of(k)]; x != NULL; x = x->next)
		if (strcmp(x->key, k) == 0)
			n = x->failures;
	pthread_mutex_unlock(&t->lock);
	return n;
}
