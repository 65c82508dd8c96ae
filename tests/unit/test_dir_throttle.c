/*
 * test_dir_throttle.c - the password-failure brake: free failures, the
 * doubling wait, checks in flight counted as failures, accounts and
 * networks independent, success clearing only the account, forgetting.
 * Time is passed in, so nothing here sleeps.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "dir-throttle.h"
#include "errors.h"

#define A "alice@example.org"
#define B "bob@example.org"
#define N1 "192.0.2.1"
#define N2 "192.0.2.2"
#define S 1000ull

/* One complete check that fails at time t. */
static void
fail_once(struct dir_throttle *t, const char *acct, const char *net,
    uint64_t now)
{
	unsigned int retry;

	assert_int_equal(dir_throttle_begin(t, acct, net, now, &retry), 0);
	dir_throttle_end(t, acct, net, DIR_THROTTLE_FAILED, now);
}

static void
test_backoff(void **state)
{
	struct dir_throttle *t = dir_throttle_new();
	unsigned int retry = 0;
	uint64_t now = 1000 * S;
	int i;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < DIR_THROTTLE_FREE; i++)
		fail_once(t, A, N1, now);
	assert_int_equal(dir_throttle_failures(t, A, NULL), 3);
	/* After 3 failures: wait 1 s, then 2 s, then 4 s. */
	assert_int_equal(dir_throttle_begin(t, A, N1, now, &retry),
	    ERR_DENIED);
	assert_int_equal(retry, 1);
	fail_once(t, A, N1, now + 1 * S);
	assert_int_equal(dir_throttle_begin(t, A, N1, now + 2 * S, &retry),
	    ERR_DENIED);
	assert_int_equal(retry, 1);
	fail_once(t, A, N1, now + 3 * S);
	assert_int_equal(dir_throttle_begin(t, A, N1, now + 3 * S + 1,
	    &retry), ERR_DENIED);
	assert_int_equal(retry, 4);
	/* The wait never passes the cap. */
	for (i = 0; i < 20; i++) {
		now += (uint64_t)DIR_THROTTLE_WAIT_MAX_S * S;
		fail_once(t, A, N2, now);
	}
	assert_int_equal(dir_throttle_begin(t, A, "192.0.2.99", now, &retry),
	    ERR_DENIED);
	assert_int_equal(retry, DIR_THROTTLE_WAIT_MAX_S);
	dir_throttle_free(t);
}

static void
test_keys_independent(void **state)
{
	struct dir_throttle *t = dir_throttle_new();
	unsigned int retry = 0;
	uint64_t now = 5000 * S;
	int i;

	(void)state;
	/* Four accounts guessed from one network: the network is braked,
	 * and so is any account from it, but not the same account from
	 * elsewhere. */
	fail_once(t, A, N1, now);
	fail_once(t, B, N1, now);
	fail_once(t, "c", N1, now);
	assert_int_equal(dir_throttle_begin(t, "d", N1, now, &retry),
	    ERR_DENIED);
	assert_int_equal(dir_throttle_begin(t, A, N2, now, &retry), 0);
	dir_throttle_end(t, A, N2, DIR_THROTTLE_OK, now);
	/* One account guessed from many networks: the account is braked
	 * from a fresh network too. */
	for (i = 0; i < DIR_THROTTLE_FREE; i++) {
		char net[32];

		snprintf(net, sizeof(net), "198.51.100.%d", i);
		fail_once(t, "e", net, now);
	}
	assert_int_equal(dir_throttle_begin(t, "e", "203.0.113.1", now,
	    &retry), ERR_DENIED);
	assert_true(retry >= 1);
	/* A network-only check (sign-up) ignores the accounts. */
	assert_int_equal(dir_throttle_begin(t, NULL, "203.0.113.1", now,
	    &retry), 0);
	dir_throttle_end(t, NULL, "203.0.113.1", DIR_THROTTLE_OK, now);
	dir_throttle_free(t);
}

static void
test_inflight_counts(void **state)
{
	struct dir_throttle *t = dir_throttle_new();
	unsigned int retry = 0;
	uint64_t now = 9000 * S;

	(void)state;
	/* Three parallel checks go; a fourth waits for one to end. */
	assert_int_equal(dir_throttle_begin(t, A, N1, now, &retry), 0);
	assert_int_equal(dir_throttle_begin(t, A, N1, now, &retry), 0);
	assert_int_equal(dir_throttle_begin(t, A, N1, now, &retry), 0);
	assert_int_equal(dir_throttle_begin(t, A, N1, now, &retry),
	    ERR_DENIED);
	assert_int_equal(retry, 1);
	/* An abandoned check frees its place without counting. */
	dir_throttle_end(t, A, N1, DIR_THROTTLE_ABANDONED, now);
	assert_int_equal(dir_throttle_failures(t, A, NULL), 0);
	assert_int_equal(dir_throttle_begin(t, A, N1, now, &retry), 0);
	dir_throttle_end(t, A, N1, DIR_THROTTLE_FAILED, now);
	dir_throttle_end(t, A, N1, DIR_THROTTLE_FAILED, now);
	dir_throttle_end(t, A, N1, DIR_THROTTLE_FAILED, now);
	assert_int_equal(dir_throttle_failures(t, A, NULL), 3);
	dir_throttle_free(t);
}

static void
test_success_and_forgetting(void **state)
{
	struct dir_throttle *t = dir_throttle_new();
	unsigned int retry = 0;
	uint64_t now = 20000 * S;

	(void)state;
	fail_once(t, A, N1, now);
	fail_once(t, A, N1, now);
	assert_int_equal(dir_throttle_begin(t, A, N2, now, &retry), 0);
	dir_throttle_end(t, A, N2, DIR_THROTTLE_OK, now);
	/* The account starts over; the network keeps its failures. */
	assert_int_equal(dir_throttle_failures(t, A, NULL), 0);
	assert_int_equal(dir_throttle_failures(t, NULL, N1), 2);
	fail_once(t, B, N1, now);
	assert_int_equal(dir_throttle_begin(t, "c", N1, now, &retry),
	    ERR_DENIED);
	/* Quiet for DIR_THROTTLE_FORGET_S: forgotten. */
	now += (uint64_t)DIR_THROTTLE_FORGET_S * S;
	assert_int_equal(dir_throttle_begin(t, "c", N1, now, &retry), 0);
	dir_throttle_end(t, "c", N1, DIR_THROTTLE_OK, now);
	assert_int_equal(dir_throttle_failures(t, NULL, N1), 0);
	dir_throttle_free(t);
	dir_throttle_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_keys_independent),
		cmocka_unit_test(test_inflight_counts),
		cmocka_unit_test(test_success_and_forgetting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
