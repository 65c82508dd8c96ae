/*
 * test_timefmt.c - Unix times as people read them.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "timefmt.h"

static void
test_utc(void **state)
{
	char out[TIMEFMT_UTC_LEN];

	timefmt_utc(0, out, sizeof(out));
	assert_string_equal(out, "1970-01-01 00:00:00 UTC");
	timefmt_utc(1764400000, out, sizeof(out));
	assert_string_equal(out, "2025-11-29 07:06:40 UTC");
}

static void
test_fallbacks(void **state)
{
	char out[TIMEFMT_UTC_LEN], small[8];

	/* Beyond what the C library converts: the seconds, not garbage. */
	timefmt_utc(UINT64_MAX, out, sizeof(out));
	assert_string_equal(out, "18446744073709551615");
	/* Too small a buffer for the date: the seconds instead. */
	timefmt_utc(0, small, sizeof(small));
	assert_string_equal(small, "0");
	timefmt_utc(0, small, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utc),
		cmocka_unit_test(test_fallbacks),
	};

	return cmocka_run_group_tests_name("timefmt", tests, NULL, NULL);
}
