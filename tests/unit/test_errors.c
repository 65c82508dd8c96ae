/*
 * test_errors.c - error texts and the error context.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"

static void
test_every_code_has_text(void **state)
{
	int c;

	for (c = 0; c > ERR_LAST; c--)
		assert_string_not_equal(err_str(c), "unknown error");
	assert_string_equal(err_str(ERR_LAST), "unknown error");
	assert_string_equal(err_str(1), "unknown error");
	assert_string_equal(err_str(-1000), "unknown error");
	assert_string_equal(err_str(ERR_PIN_INCORRECT), "incorrect PIN");
}

static void
test_first_error_wins(void **state)
{
	struct err_ctx e;

	err_clear(&e);
	assert_string_equal(err_msg(&e), "success");
	assert_int_equal(err_set(&e, ERR_FORMAT, "field '%s' is bad", "id"),
	    ERR_FORMAT);
	assert_int_equal(err_set(&e, ERR_INTERNAL, "outer"), ERR_INTERNAL);
	assert_int_equal(e.code, ERR_FORMAT);
	assert_string_equal(err_msg(&e), "field 'id' is bad");
	/* NULL contexts are accepted everywhere. */
	assert_int_equal(err_set(NULL, ERR_IO, "x"), ERR_IO);
	assert_int_equal(err_wrap(NULL, ERR_IO, "x"), ERR_IO);
	err_clear(NULL);
}

static void
test_wrap_adds_context(void **state)
{
	struct err_ctx e;

	err_clear(&e);
	err_set(&e, ERR_SIGNATURE, "signature of device 3f2a does not verify");
	/* The argument points into e.msg itself: must not be corrupted. */
	assert_int_equal(err_wrap(&e, ERR_REJECTED, "message rejected: %s",
	    e.msg), ERR_REJECTED);
	assert_int_equal(e.code, ERR_REJECTED);
	assert_string_equal(err_msg(&e), "message rejected: signature of "
	    "device 3f2a does not verify");
}

static void
test_long_message_truncated(void **state)
{
	char big[2 * ERR_MSG_MAX];
	struct err_ctx e;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_clear(&e);
	err_set(&e, ERR_IO, "%s", big);
	assert_int_equal(strlen(err_msg(&e)), ERR_MSG_MAX - 1);
	/* Without a message the code's text is shown. */
	err_clear(&e);
	err_set(&e, ERR_TOKEN_NOT_PRESENT, NULL);
	assert_string_equal(err_msg(&e), "token not present");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_has_text),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_wrap_adds_context),
		cmocka_unit_test(test_long_message_truncated),
	};

	return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
