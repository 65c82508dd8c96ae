/*
 * test_transcript.c - the PROTOCOL.md transcripts, byte for byte.
 *
 * The expected bytes are spelled out here independently of the builders,
 * so a change of field order, width or tag fails the test.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "errors.h"
#include "transcript.h"

static void
assert_buf_equal(struct buf *b, const void *want, size_t want_len)
{
	assert_int_equal(buf_len(b), want_len);
	assert_memory_equal(buf_ptr(b), want, want_len);
}

static void
test_binding(void **state)
{
	static const uint8_t want[] =
	    "devid-device-v1\0"
	    "\0\0\0\x03" "a@b"
	    "\0\0\0\x06" "laptop"
	    "\0\0\0\x02" "\x30\x01"
	    "\0\0\0\x09" "hpke-p256"
	    "\0\0\0\x01" "\x30"
	    "\0\0\0\0\x69\x2b\x1b\x00";
	struct buf *b = buf_new(0);

	assert_int_equal(tr_device_binding(b, "a@b", "laptop",
	    (const uint8_t *)"\x30\x01", 2, "hpke-p256",
	    (const uint8_t *)"\x30", 1, 0x692b1b00ULL), 0);
	assert_buf_equal(b, want, sizeof(want) - 1);
	buf_free(b);
}

static void
test_event_and_head(void **state)
{
	uint8_t prev[32], hash[32];
	struct buf *b = buf_new(0), *w = buf_new(0);

	memset(prev, 0, sizeof(prev));
	memset(hash, 0xaa, sizeof(hash));
	assert_int_equal(tr_event(b, 1, 2, "add", prev,
	    (const uint8_t *)"PP", 2), 0);
	assert_int_equal(buf_put(w, "devid-event-v1", 15), 0);
	assert_int_equal(buf_put(w, "\0\0\0\0\0\0\0\x01", 8), 0);
	assert_int_equal(buf_put(w, "\0\0\0\0\0\0\0\x02", 8), 0);
	assert_int_equal(buf_put(w, "\0\0\0\x03" "add", 7), 0);
	assert_int_equal(buf_put(w, "\0\0\0\x20", 4), 0);
	assert_int_equal(buf_put(w, prev, 32), 0);
	assert_int_equal(buf_put(w, "\0\0\0\x02" "PP", 6), 0);
	assert_buf_equal(b, buf_ptr(w), buf_len(w));

	buf_reset(b);
	buf_reset(w);
	assert_int_equal(tr_head(b, "dd", "acct", 7, hash, 9), 0);
	assert_int_equal(buf_put(w, "devid-head-v1", 14), 0);
	assert_int_equal(buf_put(w, "\0\0\0\x02" "dd", 6), 0);
	assert_int_equal(buf_put(w, "\0\0\0\x04" "acct", 8), 0);
	assert_int_equal(buf_put(w, "\0\0\0\0\0\0\0\x07", 8), 0);
	assert_int_equal(buf_put(w, "\0\0\0\x20", 4), 0);
	assert_int_equal(buf_put(w, hash, 32), 0);
	assert_int_equal(buf_put(w, "\0\0\0\0\0\0\0\x09", 8), 0);
	assert_buf_equal(b, buf_ptr(w), buf_len(w));
	buf_free(b);
	buf_free(w);
}

static void
test_small_transcripts(void **state)
{
	static const uint8_t revoke[] = "devid-revoke-v1\0"
	    "\0\0\0\x01" "a" "\0\0\0\x02" "id" "\0\0\0\0\0\0\x01\x00";
	static const uint8_t login[] = "devid-login-v1\0"
	    "\0\0\0\x01" "D" "\0\0\0\x02" "id" "\0\0\0\0\0\0\0\x05"
	    "\0\0\0\x03" "\x01\x02\x03";
	static const uint8_t registry[] = "devid-registry-v1\0" "{}";
	uint8_t hb[32];
	struct buf *b = buf_new(0);

	assert_int_equal(tr_revoke(b, "a", "id", 256), 0);
	assert_buf_equal(b, revoke, sizeof(revoke) - 1);
	buf_reset(b);
	assert_int_equal(tr_login(b, "D", "id", 5,
	    (const uint8_t *)"\x01\x02\x03", 3), 0);
	assert_buf_equal(b, login, sizeof(login) - 1);
	buf_reset(b);
	assert_int_equal(tr_registry(b, (const uint8_t *)"{}", 2), 0);
	assert_buf_equal(b, registry, sizeof(registry) - 1);
	buf_reset(b);
	memset(hb, 1, sizeof(hb));
	assert_int_equal(tr_endorsement(b, "a", "id", hb), 0);
	assert_int_equal(buf_len(b), 17 + 5 + 6 + 36);
	buf_free(b);
}

static void
test_hash(void **state)
{
	/* SHA-256("abc"), FIPS 180-2. */
	static const uint8_t want[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	struct buf *b = buf_from("abc", 3, 0);
	uint8_t h[32];

	assert_int_equal(tr_hash(b, h), 0);
	assert_memory_equal(h, want, 32);
	buf_free(b);
}

/* tr_hash_free: hashes only what was built, frees the buffer either way
 * (the sanitizer build checks the freeing). */
static void
test_hash_free(void **state)
{
	struct buf *b = buf_from("abc", 3, 0);
	uint8_t want[32], h[32], untouched[32];

	assert_int_equal(tr_hash(b, want), 0);
	buf_free(b);
	assert_int_equal(tr_hash_free(buf_from("abc", 3, 0), 0, h), 0);
	assert_memory_equal(h, want, 32);
	memset(h, 0xa5, sizeof(h));
	memset(untouched, 0xa5, sizeof(untouched));
	assert_int_equal(tr_hash_free(buf_from("abc", 3, 0), ERR_TOO_LARGE,
	    h), ERR_TOO_LARGE);
	assert_memory_equal(h, untouched, 32);
	assert_int_equal(tr_hash_free(NULL, ERR_ALLOC, h), ERR_ALLOC);
}

static void
test_signable(void **state)
{
	static const char *const ok[] = {
		"devid-device-v1", "devid-revoke-v1", "devid-login-v1",
		"devid-env-sig-v1", "devid-contact-v1",
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_true(tr_is_signable((const uint8_t *)ok[i],
		    strlen(ok[i]) + 1));
	/* The NUL is part of the tag; heads and events are the directory's. */
	assert_false(tr_is_signable((const uint8_t *)"devid-login-v1",
	    strlen("devid-login-v1")));
	assert_false(tr_is_signable((const uint8_t *)"devid-login-v1x", 16));
	assert_false(tr_is_signable((const uint8_t *)"devid-head-v1", 14));
	assert_false(tr_is_signable((const uint8_t *)"devid-event-v1", 15));
	/* Only the agent signs its registry, directly with the token. */
	assert_false(tr_is_signable((const uint8_t *)TR_TAG_REGISTRY "\0{}",
	    strlen(TR_TAG_REGISTRY) + 3));
	assert_false(tr_is_signable((const uint8_t *)"devid-contact-v2",
	    strlen("devid-contact-v2") + 1));
	assert_string_equal(TR_TAG_CONTACT, "devid-contact-v1");
	/* Endorsements come from the agent's "endorse" and its checks. */
	assert_false(tr_is_signable((const uint8_t *)TR_TAG_ENDORSE,
	    strlen(TR_TAG_ENDORSE) + 1));
	assert_false(tr_is_signable((const uint8_t *)"", 0));
	assert_false(tr_is_signable((const uint8_t *)"\x30\x45\x02", 3));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binding),
		cmocka_unit_test(test_event_and_head),
		cmocka_unit_test(test_small_transcripts),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_hash_free),
		cmocka_unit_test(test_signable),
	};

	return cmocka_run_group_tests_name("transcript", tests, NULL, NULL);
}
