/*
 * dir-cache.h - what the directory keeps in memory to answer its most
 * frequent request, an authenticated log read, without the database.
 *
 * Three caches, each a fixed table of slots (a slot holds the last entry
 * that hashed to it, so memory is bounded and nothing needs sweeping):
 *
 * - sessions: H(token) -> the session, never past its expiry;
 * - log tails: account -> (seq, hash) of its last event;
 * - event pages: (account, since, upto) -> the JSON text of the events
 *   since < seq <= upto.
 *
 * Nothing is kept longer than DIR_CACHE_TTL_MS: a busy account is read
 * from the database once a second instead of at every request, and a
 * change made to the database behind the server's back (an operator's
 * tool, or a test playing a compromised directory) shows within a second.
 *
 * Changes the server makes itself show at once: it tells the cache
 * (dir_cache_log_changed after an append, dir_cache_device_changed after
 * a login or a revocation of a device) before it answers or wakes anyone.
 * So do appends and revocations of other directory processes on the same
 * database, when the store reports them (dir-store.h, watch), and
 * dir_cache_forget_all when the store may have missed some.
 * A reader that missed takes an epoch before it reads the database and
 * stores what it read only if no change was announced since, so a value
 * read just before a change never lands in the cache after it.
 *
 * Times are wall-clock milliseconds (now_ms); an entry from the future
 * (the clock went back) is not used.
 */
#ifndef DEVID_DIR_CACHE_H
#define DEVID_DIR_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dir-store.h"

#define DIR_CACHE_TTL_MS 1000
#define DIR_CACHE_SESSION_SLOTS 4096
#define DIR_CACHE_TAIL_SLOTS 1024
#define DIR_CACHE_PAGE_SLOTS 256
#define DIR_CACHE_PAGE_MAX ((size_t)16 * 1024) /* larger pages: not kept */

struct dir_cache;

/* A new empty cache, or NULL when out of memory.  Free with
 * dir_cache_free() (NULL is fine). */
struct dir_cache *dir_cache_new(void);
void dir_cache_free(struct dir_cache *c);

/* --- sessions --- */

/* The epoch to take before reading a session from the store. */
uint64_t dir_cache_session_epoch(struct dir_cache *c);
/* 0 and *out for a cached live session of token_hash; -1 otherwise. */
int dir_cache_session_get(struct dir_cache *c, const uint8_t token_hash[32],
    uint64_t now_ms, struct dir_session_info *out);
/* Keeps s (read from the store at epoch) unless a change came since. */
void dir_cache_session_put(struct dir_cache *c, const uint8_t token_hash[32],
    const struct dir_session_info *s, uint64_t epoch, uint64_t now_ms);
/* Forgets every cached session of device (logged in again: older ones
 * may have ended; revoked: all ended). */
void dir_cache_device_changed(struct dir_cache *c, const char *device);

/* --- log tails and pages --- */

uint64_t dir_cache_log_epoch(struct dir_cache *c);
/* 0 and the cached tail of account; -1 when not cached. */
int dir_cache_tail_get(struct dir_cache *c, const char *account,
    uint64_t now_ms, uint64_t *seq, uint8_t hash[32]);
/* Keeps a tail read from the store at epoch, unless a change came since. */
void dir_cache_tail_put(struct dir_cache *c, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t epoch, uint64_t now_ms);
/* Announces an append to account's log: its tail is forgotten. */
void dir_cache_log_changed(struct dir_cache *c, const char *account);

/*
 * Forgets every session and every tail: anything may have changed (the
 * directory lost track of another process's changes).  Pages stay: the
 * events up to a tail never change.
 */
void dir_cache_forget_all(struct dir_cache *c);

/*
 * Appends the cached events text of (account, since, upto) to b: 0 when
 * it was cached, -1 when not, ERR_ALLOC/ERR_TOO_LARGE from b.
 */
int dir_cache_page_get(struct dir_cache *c, const char *account,
    uint64_t since, uint64_t upto, uint64_t now_ms, struct buf *b);
/* Keeps a page of len bytes (not kept above DIR_CACHE_PAGE_MAX). */
void dir_cache_page_put(struct dir_cache *c, const char *account,
    uint64_t since, uint64_t upto, const void *text, size_t len,
    uint64_t now_ms);

#endif /* DEVID_DIR_CACHE_H */
