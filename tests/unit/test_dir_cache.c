/*
 * test_dir_cache.c - the directory's in-memory caches: a value read before
 * a change never lands after it (epochs), nothing is used after
 * DIR_CACHE_TTL_MS or from the future, sessions end with their expiry and
 * their device's next login or revocation, tails are forgotten on append,
 * pages are kept as given and only up to their size limit, and
 * everything but pages can be forgotten at once.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "dir-cache.h"

#define DEV_A "aa00000000000000000000000000000000000000000000000000000000000000"
#define DEV_B "bb00000000000000000000000000000000000000000000000000000000000000"

static void
session_of(struct dir_session_info *s, const char *device, uint64_t expires)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->device, sizeof(s->device), "%s", device);
	snprintf(s->account, sizeof(s->account), "alice@example.org");
	s->expires = expires;
}

static void
test_sessions(void **state)
{
	struct dir_cache *c = dir_cache_new();
	struct dir_session_info s, got;
	uint8_t t1[32], t2[32];
	uint64_t now = 1000000000ull, epoch; /* ms */

	(void)state;
	assert_non_null(c);
	memset(t1, 1, sizeof(t1));
	memset(t2, 2, sizeof(t2));
	assert_int_equal(dir_cache_session_get(c, t1, now, &got), -1);
	session_of(&s, DEV_A, now / 1000 + 3600);
	epoch = dir_cache_session_epoch(c);
	dir_cache_session_put(c, t1, &s, epoch, now);
	assert_int_equal(dir_cache_session_get(c, t1, now + 1, &got), 0);
	assert_string_equal(got.device, DEV_A);
	/* Not from the future (the clock went back). */
	assert_int_equal(dir_cache_session_get(c, t1, now - 1, &got), -1);
	/* Another token is not this one. */
	assert_int_equal(dir_cache_session_get(c, t2, now, &got), -1);
	/* Kept only DIR_CACHE_TTL_MS, then read again. */
	assert_int_equal(dir_cache_session_get(c, t1,
	    now + DIR_CACHE_TTL_MS - 1, &got), 0);
	assert_int_equal(dir_cache_session_get(c, t1, now + DIR_CACHE_TTL_MS,
	    &got), -1);
	/* Never past its expiry (in seconds). */
	session_of(&s, DEV_A, now / 1000 + 1);
	dir_cache_session_put(c, t1, &s, dir_cache_session_epoch(c), now);
	assert_int_equal(dir_cache_session_get(c, t1, now + 999, &got), 0);
	dir_cache_session_put(c, t1, &s, dir_cache_session_epoch(c),
	    now + 1000);
	assert_int_equal(dir_cache_session_get(c, t1, now + 1000, &got), -1);
	/* A login or revocation of the device forgets its sessions, and
	 * only its own. */
	session_of(&s, DEV_A, now / 1000 + 3600);
	dir_cache_session_put(c, t1, &s, dir_cache_session_epoch(c), now);
	session_of(&s, DEV_B, now / 1000 + 3600);
	dir_cache_session_put(c, t2, &s, dir_cache_session_epoch(c), now);
	dir_cache_device_changed(c, DEV_A);
	assert_int_equal(dir_cache_session_get(c, t1, now, &got), -1);
	assert_int_equal(dir_cache_session_get(c, t2, now, &got), 0);
	/* Read before a change, stored after it: not kept. */
	epoch = dir_cache_session_epoch(c);
	dir_cache_device_changed(c, DEV_A);
	session_of(&s, DEV_A, now / 1000 + 3600);
	dir_cache_session_put(c, t1, &s, epoch, now);
	assert_int_equal(dir_cache_session_get(c, t1, now, &got), -1);
	dir_cache_free(c);
	dir_cache_free(NULL);
}

static void
test_tails(void **state)
{
	struct dir_cache *c = dir_cache_new();
	uint8_t h[32], got_h[32];
	uint64_t seq = 0, epoch, now = 5000000;

	(void)state;
	memset(h, 7, sizeof(h));
	assert_int_equal(dir_cache_tail_get(c, "alice", now, &seq, got_h), -1);
	dir_cache_tail_put(c, "alice", 3, h, dir_cache_log_epoch(c), now);
	assert_int_equal(dir_cache_tail_get(c, "alice", now, &seq, got_h), 0);
	assert_int_equal(seq, 3);
	assert_memory_equal(got_h, h, 32);
	assert_int_equal(dir_cache_tail_get(c, "bob", now, &seq, got_h), -1);
	/* A change behind the server's back shows after DIR_CACHE_TTL_MS. */
	assert_int_equal(dir_cache_tail_get(c, "alice",
	    now + DIR_CACHE_TTL_MS, &seq, got_h), -1);
	/* An append forgets the tail at once. */
	dir_cache_log_changed(c, "alice");
	assert_int_equal(dir_cache_tail_get(c, "alice", now, &seq, got_h), -1);
	/* A tail read before an append is not kept after it, whichever
	 * account changed. */
	epoch = dir_cache_log_epoch(c);
	dir_cache_log_changed(c, "bob");
	dir_cache_tail_put(c, "alice", 3, h, epoch, now);
	assert_int_equal(dir_cache_tail_get(c, "alice", now, &seq, got_h), -1);
	dir_cache_free(c);
}

static void
test_pages(void **state)
{
	struct dir_cache *c = dir_cache_new();
	struct buf *b = buf_new(0);
	static char big[DIR_CACHE_PAGE_MAX + 1];
	const char page[] = "{\"seq\":1},{\"seq\":2}";

	(void)state;
	assert_non_null(b);
	assert_int_equal(dir_cache_page_get(c, "alice", 0, 2, 9000, b), -1);
	dir_cache_page_put(c, "alice", 0, 2, page, strlen(page), 9000);
	assert_int_equal(dir_cache_page_get(c, "alice", 0, 2, 9000, b), 0);
	assert_int_equal(buf_len(b), strlen(page));
	assert_memory_equal(buf_ptr(b), page, strlen(page));
	/* Another range or account is another page. */
	assert_int_equal(dir_cache_page_get(c, "alice", 0, 3, 9000, b), -1);
	assert_int_equal(dir_cache_page_get(c, "alice", 1, 2, 9000, b), -1);
	assert_int_equal(dir_cache_page_get(c, "bob", 0, 2, 9000, b), -1);
	/* And only for DIR_CACHE_TTL_MS. */
	assert_int_equal(dir_cache_page_get(c, "alice", 0, 2,
	    9000 + DIR_CACHE_TTL_MS, b), -1);
	/* Too large a page is not kept. */
	memset(big, 'x', sizeof(big));
	dir_cache_page_put(c, "carol", 0, 9, big, sizeof(big), 9000);
	assert_int_equal(dir_cache_page_get(c, "carol", 0, 9, 9000, b), -1);
	buf_free(b);
	dir_cache_free(c);
}

/*
 * Forgetting everything (another process's changes may have been missed):
 * every session and tail is gone, a value read before is not stored, and
 * pages, which never change, stay.
 */
static void
test_forget_all(void **state)
{
	struct dir_cache *c = dir_cache_new();
	struct buf *b = buf_new(0);
	struct dir_session_info s, got;
	uint8_t t1[32], t2[32], h[32];
	uint64_t now = 1000000000ull, seq, se, le;

	(void)state;
	assert_non_null(c);
	assert_non_null(b);
	memset(t1, 1, sizeof(t1));
	memset(t2, 2, sizeof(t2));
	memset(h, 7, sizeof(h));
	session_of(&s, DEV_A, now / 1000 + 3600);
	dir_cache_session_put(c, t1, &s, dir_cache_session_epoch(c), now);
	session_of(&s, DEV_B, now / 1000 + 3600);
	dir_cache_session_put(c, t2, &s, dir_cache_session_epoch(c), now);
	dir_cache_tail_put(c, "alice", 3, h, dir_cache_log_epoch(c), now);
	dir_cache_tail_put(c, "bob", 4, h, dir_cache_log_epoch(c), now);
	dir_cache_page_put(c, "alice", 0, 3, "{}", 2, now);
	se = dir_cache_session_epoch(c);
	le = dir_cache_log_epoch(c);

	dir_cache_forget_all(c);
	assert_int_equal(dir_cache_session_get(c, t1, now, &got), -1);
	assert_int_equal(dir_cache_session_get(c, t2, now, &got), -1);
	assert_int_equal(dir_cache_tail_get(c, "alice", now, &seq, h), -1);
	assert_int_equal(dir_cache_tail_get(c, "bob", now, &seq, h), -1);
	assert_int_equal(dir_cache_page_get(c, "alice", 0, 3, now, b), 0);
	/* Read before it: not kept. */
	dir_cache_session_put(c, t1, &s, se, now);
	assert_int_equal(dir_cache_session_get(c, t1, now, &got), -1);
	dir_cache_tail_put(c, "alice", 3, h, le, now);
	assert_int_equal(dir_cache_tail_get(c, "alice", now, &seq, h), -1);
	buf_free(b);
	dir_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_tails),
		cmocka_unit_test(test_pages),
		cmocka_unit_test(test_forget_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
