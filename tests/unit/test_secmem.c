/*
 * test_secmem.c - the wipe-on-free allocator and jansson through it.
 *
 * The program is linked with -Wl,--wrap=OPENSSL_cleanse: every wipe that
 * secmem_free() makes goes through __wrap_OPENSSL_cleanse() below, which
 * looks at the block while it is still allocated (before the real wipe,
 * for the secret; after it, for zeroes) and counts.  Nothing reads memory
 * that was freed.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "secmem.h"

void __real_OPENSSL_cleanse(void *p, size_t len);
void __wrap_OPENSSL_cleanse(void *p, size_t len);

/* What the wipes did while armed. */
static struct {
	int armed;
	const char *secret;     /* looked for in each block before its wipe */
	size_t calls;
	size_t held_secret;     /* wipes of a block that held the secret */
	size_t left_nonzero;    /* wipes after which a byte was not zero */
	void *last_p;
	size_t last_len;
} rec;

static void
rec_arm(const char *secret)
{
	memset(&rec, 0, sizeof(rec));
	rec.secret = secret;
	rec.armed = 1;
}

static int
holds(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; n > 0 && i + n <= len; i++)
		if (memcmp(p + i, s, n) == 0)
			return 1;
	return 0;
}

void
__wrap_OPENSSL_cleanse(void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	if (rec.armed) {
		rec.calls++;
		rec.last_p = p;
		rec.last_len = len;
		if (rec.secret != NULL && holds(b, len, rec.secret))
			rec.held_secret++;
	}
	__real_OPENSSL_cleanse(p, len);
	if (rec.armed) {
		for (i = 0; i < len; i++) {
			if (b[i] != 0) {
				rec.left_nonzero++;
				break;
			}
		}
	}
}

/* secmem_free() wipes the whole block, then frees it. */
static void
test_free_wipes(void **state)
{
	static const char secret[] = "pin-6a1f-7c2e";
	char *p;

	(void)state;
	assert_non_null(p = secmem_malloc(40));
	memset(p, 'x', 40);
	memcpy(p + 10, secret, strlen(secret));
	rec_arm(secret);
	secmem_free(p);
	rec.armed = 0;
	assert_int_equal(rec.calls, 1);
	assert_ptr_equal(rec.last_p, p);
	assert_true(rec.last_len >= 40);
	assert_int_equal(rec.held_secret, 1);
	assert_int_equal(rec.left_nonzero, 0);
}

/* NULL is no block; a zero-byte request still gets one to free. */
static void
test_null_and_zero(void **state)
{
	void *p;

	(void)state;
	rec_arm(NULL);
	secmem_free(NULL);
	assert_int_equal(rec.calls, 0);
	assert_non_null(p = secmem_malloc(0));
	secmem_free(p);
	rec.armed = 0;
	assert_int_equal(rec.calls, 1);
}

/*
 * Once installed, jansson allocates and frees through secmem: a PIN that
 * went through json_loads() (an `unlock` request) is wiped when the tree
 * is released, and so is a payload built with json_pack() (an `open`
 * answer).
 */
static void
test_json_wipes(void **state)
{
	static const char pin[] = "pin-0b5d-93ae";
	static const char body[] = "aGVsbG8gZnJvbSBib2IsIGEgc2VjcmV0";
	json_t *o;
	json_error_t jerr;
	json_malloc_t m = NULL;
	json_free_t f = NULL;

	(void)state;
	json_get_alloc_funcs(&m, &f);
	assert_true(m == secmem_malloc);
	assert_true(f == secmem_free);

	o = json_loads("{\"op\": \"unlock\", \"pin\": \"pin-0b5d-93ae\"}", 0,
	    &jerr);
	assert_non_null(o);
	rec_arm(pin);
	json_decref(o);
	rec.armed = 0;
	assert_true(rec.held_secret >= 1);
	assert_int_equal(rec.left_nonzero, 0);

	o = json_pack("{s:b, s:{s:s, s:s}}", "ok", 1, "payload", "type",
	    "text/plain", "body", body);
	assert_non_null(o);
	rec_arm(body);
	json_decref(o);
	rec.armed = 0;
	assert_true(rec.held_secret >= 1);
	assert_int_equal(rec.left_nonzero, 0);
}

/* json_dumps() text is a plain malloc() block: free() and secmem_free()
 * both release it (the code base frees it with free()). */
static void
test_dumps_either_free(void **state)
{
	json_t *o = json_pack("{s:s}", "pin", "pin-5e11-0c4d");
	char *a, *b;

	(void)state;
	assert_non_null(o);
	assert_non_null(a = json_dumps(o, JSON_COMPACT));
	assert_non_null(b = json_dumps(o, JSON_COMPACT));
	free(a);
	rec_arm("pin-5e11-0c4d");
	secmem_free(b);
	rec.armed = 0;
	assert_int_equal(rec.held_secret, 1);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_wipes),
		cmocka_unit_test(test_null_and_zero),
		cmocka_unit_test(test_json_wipes),
		cmocka_unit_test(test_dumps_either_free),
	};

	/* As devid-agent and devid-msg do: first, before any JSON value. */
	secmem_json_install();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
