/*
 * dir-cache.c - the directory's in-memory caches (see dir-cache.h).
 *
 * Every table is direct-mapped (a key hashes to one slot, a new entry
 * replaces the old) and guarded by striped mutexes, so that threads
 * reading different accounts rarely meet on a lock.  Epochs are atomic
 * counters, raised before a slot is cleared; a reader stores only under
 * the slot's lock and only when the epoch it took before reading the
 * store is still current.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "dir-cache.h"
#include "errors.h"

#define STRIPES 64

struct session_slot {
	int used;
	uint8_t token_hash[32];
	struct dir_session_info s;
	uint64_t cached_at;
};

struct tail_slot {
	int used;
	uint64_t cached_at;
	char account[DIR_ACCOUNT_MAX + 1];
	uint64_t seq;
	uint8_t hash[32];
};

struct page_slot {
	uint64_t cached_at;
	char account[DIR_ACCOUNT_MAX + 1];
	uint64_t since, upto;
	char *text;                      /* NULL: empty slot */
	size_t len;
};

struct dir_cache {
	pthread_mutex_t lock[STRIPES];
	uint64_t session_epoch;
	uint64_t log_epoch;
	struct session_slot sessions[DIR_CACHE_SESSION_SLOTS];
	struct tail_slot tails[DIR_CACHE_TAIL_SLOTS];
	struct page_slot pages[DIR_CACHE_PAGE_SLOTS];
};

static uint32_t
hash_bytes(uint32_t h, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len-- > 0)
		h = (h ^ *b++) * 16777619u;
	return h;
}

static uint32_t
hash_str(const char *s)
{
	return hash_bytes(2166136261u, s, strlen(s));
}

struct dir_cache *
dir_cache_new(void)
{
	struct dir_cache *c;
	size_t i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	for (i = 0; i < STRIPES; i++)
		pthread_mutex_init(&c->lock[i], NULL);
	return c;
}

void
dir_cache_free(struct dir_cache *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < DIR_CACHE_PAGE_SLOTS; i++)
		free(c->pages[i].text);
	for (i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&c->lock[i]);
	/* Session slots hold hashes of bearer tokens. */
	crypto_wipe(c->sessions, sizeof(c->sessions));
	free(c);
}

/* Whether an entry cached at cached_at may still be used at now_ms. */
static int
fresh(uint64_t cached_at, uint64_t now_ms)
{
	return cached_at <= now_ms && now_ms - cached_at < DIR_CACHE_TTL_MS;
}

static uint64_t
epoch_get(uint64_t *epoch)
{
	return __atomic_load_n(epoch, __ATOMIC_ACQUIRE);
}

static void
epoch_raise(uint64_t *epoch)
{
	__atomic_add_fetch(epoch, 1, __ATOMIC_ACQ_REL);
}

/* --- sessions --- */

uint64_t
dir_cache_session_epoch(struct dir_cache *c)
{
	return epoch_get(&c->session_epoch);
}

int
dir_cache_session_get(struct dir_cache *c, const uint8_t token_hash[32],
    uint64_t now_ms, struct dir_session_info *out)
{
	/* The token hash is uniformly random: its first bytes are a hash. */
	size_t i = (size_t)(token_hash[0] | token_hash[1] << 8) %
	    DIR_CACHE_SESSION_SLOTS;
	struct session_slot *x = &c->sessions[i];
	int r = -1;

	pthread_mutex_lock(&c->lock[i % STRIPES]);
	if (x->used && crypto_memeq_ct(x->token_hash, token_hash, 32) == 0 &&
	    x->s.expires > now_ms / 1000 && fresh(x->cached_at, now_ms)) {
		*out = x->s;
		r = 0;
	}
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
	return r;
}

void
dir_cache_session_put(struct dir_cache *c, const uint8_t token_hash[32],
    const struct dir_session_info *s, uint64_t epoch, uint64_t now_ms)
{
	size_t i = (size_t)(token_hash[0] | token_hash[1] << 8) %
	    DIR_CACHE_SESSION_SLOTS;
	struct session_slot *x = &c->sessions[i];

	pthread_mutex_lock(&c->lock[i % STRIPES]);
	if (epoch_get(&c->session_epoch) == epoch) {
		x->used = 1;
		memcpy(x->token_hash, token_hash, 32);
		x->s = *s;
		x->cached_at = now_ms;
	}
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
}

void
dir_cache_device_changed(struct dir_cache *c, const char *device)
{
	size_t i;

	epoch_raise(&c->session_epoch);
	for (i = 0; i < DIR_CACHE_SESSION_SLOTS; i++) {
		pthread_mutex_lock(&c->lock[i % STRIPES]);
		if (c->sessions[i].used &&
		    strcmp(c->sessions[i].s.device, device) == 0) {
			crypto_wipe(&c->sessions[i], sizeof(c->sessions[i]));
			c->sessions[i].used = 0;
		}
		pthread_mutex_unlock(&c->lock[i % STRIPES]);
	}
}

/* --- tails --- */

uint64_t
dir_cache_log_epoch(struct dir_cache *c)
{
	return epoch_get(&c->log_epoch);
}

int
dir_cache_tail_get(struct dir_cache *c, const char *account, uint64_t now_ms,
    uint64_t *seq, uint8_t hash[32])
{
	size_t i = hash_str(account) % DIR_CACHE_TAIL_SLOTS;
	struct tail_slot *x = &c->tails[i];
	int r = -1;

	pthread_mutex_lock(&c->lock[i % STRIPES]);
	if (x->used && fresh(x->cached_at, now_ms) &&
	    strcmp(x->account, account) == 0) {
		*seq = x->seq;
		memcpy(hash, x->hash, 32);
		r = 0;
	}
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
	return r;
}

void
dir_cache_tail_put(struct dir_cache *c, const char *account, uint64_t seq,
    const uint8_t hash[32], uint64_t epoch, uint64_t now_ms)
{
	size_t i = hash_str(account) % DIR_CACHE_TAIL_SLOTS;
	struct tail_slot *x = &c->tails[i];

	if (strlen(account) > DIR_ACCOUNT_MAX)
		return;
	pthread_mutex_lock(&c->lock[i % STRIPES]);
	if (epoch_get(&c->log_epoch) == epoch) {
		x->used = 1;
		x->cached_at = now_ms;
		memcpy(x->account, account, strlen(account) + 1);
		x->seq = seq;
		memcpy(x->hash, hash, 32);
	}
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
}

void
dir_cache_log_changed(struct dir_cache *c, const char *account)
{
	size_t i = hash_str(account) % DIR_CACHE_TAIL_SLOTS;

	epoch_raise(&c->log_epoch);
	pthread_mutex_lock(&c->lock[i % STRIPES]);
	c->tails[i].used = 0;
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
}

void
dir_cache_forget_all(struct dir_cache *c)
{
	size_t i;

	epoch_raise(&c->session_epoch);
	epoch_raise(&c->log_epoch);
	for (i = 0; i < DIR_CACHE_SESSION_SLOTS; i++) {
		pthread_mutex_lock(&c->lock[i % STRIPES]);
		if (c->sessions[i].used) {
			crypto_wipe(&c->sessions[i], sizeof(c->sessions[i]));
			c->sessions[i].used = 0;
		}
		pthread_mutex_unlock(&c->lock[i % STRIPES]);
	}
	for (i = 0; i < DIR_CACHE_TAIL_SLOTS; i++) {
		pthread_mutex_lock(&c->lock[i % STRIPES]);
		c->tails[i].used = 0;
		pthread_mutex_unlock(&c->lock[i % STRIPES]);
	}
}

/* --- pages --- */

static size_t
page_index(const char *account, uint64_t since, uint64_t upto)
{
	uint32_t h = hash_str(account);

	h = hash_bytes(h, &since, sizeof(since));
	h = hash_bytes(h, &upto, sizeof(upto));
	return h % DIR_CACHE_PAGE_SLOTS;
}

int
dir_cache_page_get(struct dir_cache *c, const char *account, uint64_t since,
    uint64_t upto, uint64_t now_ms, struct buf *b)
{
	size_t i = page_index(account, since, upto);
	struct page_slot *x = &c->pages[i];
	int r = -1;

	pthread_mutex_lock(&c->lock[i % STRIPES]);
	if (x->text != NULL && x->since == since && x->upto == upto &&
	    fresh(x->cached_at, now_ms) && strcmp(x->account, account) == 0)
		r = buf_put(b, x->text, x->len);
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
	return r;
}

void
dir_cache_page_put(struct dir_cache *c, const char *account, uint64_t since,
    uint64_t upto, const void *text, size_t len, uint64_t now_ms)
{
	size_t i = page_index(account, since, upto);
	struct page_slot *x = &c->pages[i];
	char *copy;

	if (len > DIR_CACHE_PAGE_MAX || strlen(account) > DIR_ACCOUNT_MAX ||
	    (copy = malloc(len + 1)) == NULL)
		return;
	memcpy(copy, text, len);
	copy[len] = '\0';
	pthread_mutex_lock(&c->lock[i % STRIPES]);
	free(x->text);
	x->text = copy;
	x->len = len;
	x->cached_at = now_ms;
	x->since = since;
	x->upto = upto;
	memcpy(x->account, account, strlen(account) + 1);
	pthread_mutex_unlock(&c->lock[i % STRIPES]);
}
