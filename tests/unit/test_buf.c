/*
 * test_buf.c - bounded buffer: limits, get/put round trips, truncation.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "errors.h"

static void
test_put_get_roundtrip(void **state)
{
	struct buf *b = buf_new(0);
	const uint8_t *p;
	uint8_t u8;
	uint32_t u32;
	uint64_t u64;
	size_t len;

	assert_non_null(b);
	assert_int_equal(buf_put_u8(b, 0xab), 0);
	assert_int_equal(buf_put_u32(b, 0x01020304), 0);
	assert_int_equal(buf_put_u64(b, 0x0102030405060708ULL), 0);
	assert_int_equal(buf_put_lp_str(b, "hello"), 0);
	assert_int_equal(buf_put_lp(b, NULL, 0), 0);
	assert_int_equal(buf_len(b), 1 + 4 + 8 + 4 + 5 + 4);
	/* Big-endian on the wire. */
	assert_memory_equal(buf_ptr(b), "\xab\x01\x02\x03\x04\x01\x02\x03"
	    "\x04\x05\x06\x07\x08\x00\x00\x00\x05hello", 22);

	assert_int_equal(buf_get_u8(b, &u8), 0);
	assert_int_equal(u8, 0xab);
	assert_int_equal(buf_get_u32(b, &u32), 0);
	assert_int_equal(u32, 0x01020304);
	assert_int_equal(buf_get_u64(b, &u64), 0);
	assert_true(u64 == 0x0102030405060708ULL);
	assert_int_equal(buf_get_lp(b, &p, &len, 100), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "hello", 5);
	assert_int_equal(buf_get_lp(b, &p, &len, 100), 0);
	assert_int_equal(len, 0);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_get_u8(b, &u8), ERR_TRUNCATED);
	buf_free(b);
}

static void
test_max_size(void **state)
{
	struct buf *b = buf_new(10);
	uint8_t *out;

	assert_non_null(b);
	assert_int_equal(buf_max(b), 10);
	assert_int_equal(buf_put(b, "0123456789", 10), 0);
	/* One byte over: refused, contents unchanged. */
	assert_int_equal(buf_put_u8(b, 1), ERR_TOO_LARGE);
	assert_int_equal(buf_len(b), 10);
	assert_int_equal(buf_reserve(b, 1, &out), ERR_TOO_LARGE);
	buf_reset(b);
	assert_int_equal(buf_len(b), 0);
	/* lp needs 4 + len: 4 + 7 > 10 fails and leaves b empty. */
	assert_int_equal(buf_put_lp(b, "abcdefg", 7), ERR_TOO_LARGE);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_put_lp(b, "abcdef", 6), 0);
	assert_int_equal(buf_len(b), 10);
	buf_free(b);

	/* Overflowing sizes are refused, not wrapped. */
	b = buf_new(0);
	assert_int_equal(buf_put(b, "x", 1), 0);
	assert_int_equal(buf_reserve(b, SIZE_MAX, &out), ERR_TOO_LARGE);
	buf_free(b);

	assert_null(buf_from("abc", 3, 2));
}

static void
test_truncated_reads(void **state)
{
	/* Each get that would read past the end fails and consumes nothing. */
	struct buf *b = buf_from("\x00\x00\x00\x09" "abc", 7, 0);
	const uint8_t *p;
	size_t len;
	uint32_t u32;
	uint64_t u64;

	assert_non_null(b);
	assert_int_equal(buf_get_lp(b, &p, &len, 100), ERR_TRUNCATED);
	assert_int_equal(buf_len(b), 7);
	assert_int_equal(buf_get_u64(b, &u64), ERR_TRUNCATED);
	assert_int_equal(buf_len(b), 7);
	/* Declared length over the caller's maximum: refused first. */
	assert_int_equal(buf_get_lp(b, &p, &len, 8), ERR_TOO_LARGE);
	assert_int_equal(buf_len(b), 7);
	assert_int_equal(buf_get_u32(b, &u32), 0);
	assert_int_equal(u32, 9);
	assert_int_equal(buf_skip(b, 4), ERR_TRUNCATED);
	assert_int_equal(buf_skip(b, 3), 0);
	assert_int_equal(buf_len(b), 0);
	buf_free(b);

	/* A length prefix cut short. */
	b = buf_from("\x00\x00\x01", 3, 0);
	assert_int_equal(buf_get_lp(b, &p, &len, 100), ERR_TRUNCATED);
	buf_free(b);
}

static void
test_tag_and_growth(void **state)
{
	struct buf *b = buf_new(0);
	uint8_t *data, big[5000];
	size_t i, len;

	assert_int_equal(buf_put_tag(b, "devid-test-v1"), 0);
	assert_int_equal(buf_len(b), 14);
	assert_int_equal(buf_ptr(b)[13], 0);
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	/* Many small puts cross several reallocations. */
	for (i = 0; i < sizeof(big); i++)
		assert_int_equal(buf_put_u8(b, big[i]), 0);
	assert_int_equal(buf_skip(b, 14), 0);
	assert_memory_equal(buf_ptr(b), big, sizeof(big));
	/* Reading then writing compacts instead of growing without bound. */
	for (i = 0; i < 100; i++) {
		assert_int_equal(buf_skip(b, 1000), 0);
		assert_int_equal(buf_put(b, big, 1000), 0);
	}
	assert_int_equal(buf_len(b), sizeof(big));
	assert_int_equal(buf_steal(b, &data, &len), 0);
	assert_int_equal(len, sizeof(big));
	assert_int_equal(buf_len(b), 0);
	free(data);
	/* Steal of an empty buffer is a valid allocation. */
	assert_int_equal(buf_steal(b, &data, &len), 0);
	assert_int_equal(len, 0);
	free(data);
	buf_free(b);
	buf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_roundtrip),
		cmocka_unit_test(test_max_size),
		cmocka_unit_test(test_truncated_reads),
		cmocka_unit_test(test_tag_and_growth),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
