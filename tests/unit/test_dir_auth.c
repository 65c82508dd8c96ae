/*
 * test_dir_auth.c - scrypt password hashes, session tokens and the login
 * time window of the directory.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "dir-auth.h"
#include "errors.h"

/* The cheapest cost the directory accepts keeps the tests quick. */
#define LOG_N DIR_SCRYPT_LOG_N_MIN

static void
test_password_roundtrip(void **state)
{
	struct err_ctx e;
	char *h1 = NULL, *h2 = NULL;
	const char pw[] = "correct horse battery";

	err_clear(&e);
	assert_int_equal(dir_password_hash(pw, strlen(pw), LOG_N, &h1, &e), 0);
	assert_int_equal(dir_password_hash(pw, strlen(pw), LOG_N, &h2, &e), 0);
	assert_non_null(strstr(h1, "$scrypt$ln=10,r=8,p=1$"));
	/* A fresh salt every time. */
	assert_string_not_equal(h1, h2);
	/* The password itself is not in the stored text. */
	assert_null(strstr(h1, "horse"));
	assert_int_equal(dir_password_verify(pw, strlen(pw), h1, &e), 0);
	assert_int_equal(dir_password_verify(pw, strlen(pw), h2, &e), 0);
	err_clear(&e);
	assert_int_equal(dir_password_verify("correct horse batterz",
	    strlen(pw), h1, &e), ERR_DENIED);
	err_clear(&e);
	/* A prefix is not the password. */
	assert_int_equal(dir_password_verify(pw, strlen(pw) - 1, h1, &e),
	    ERR_DENIED);
	free(h1);
	free(h2);
}

static void
test_password_rules(void **state)
{
	struct err_ctx e;
	char big[DIR_PASSWORD_MAX + 2];
	char *h = NULL;

	err_clear(&e);
	assert_int_equal(dir_password_check("short", 5, &e), ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "8 to 1024"));
	err_clear(&e);
	assert_int_equal(dir_password_check("abc\0defgh", 9, &e), ERR_FORMAT);
	memset(big, 'x', sizeof(big));
	err_clear(&e);
	assert_int_equal(dir_password_check(big, DIR_PASSWORD_MAX + 1, &e),
	    ERR_FORMAT);
	assert_int_equal(dir_password_check(big, DIR_PASSWORD_MAX, &e), 0);
	assert_int_equal(dir_password_check("12345678", 8, &e), 0);
	/* Costs outside the range are refused. */
	assert_int_equal(dir_password_hash("12345678", 8, 9, &h, &e),
	    ERR_INVALID_ARG);
	assert_int_equal(dir_password_hash("12345678", 8, 21, &h, &e),
	    ERR_INVALID_ARG);
	assert_null(h);
}

static void
test_stored_hash_parsing(void **state)
{
	static const char *const bad[] = {
		"",
		"plain",
		"$scrypt$ln=10,r=8,p=1$",
		"$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$short",
		"$scrypt$ln=10,r=4,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAA=$"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
	};
	struct err_ctx e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(dir_password_verify("12345678", 8, bad[i],
		    &e), ERR_FORMAT);
	}
}

static void
test_tokens(void **state)
{
	struct err_ctx e;
	char t1[DIR_TOKEN_B64_LEN + 1], t2[DIR_TOKEN_B64_LEN + 1];
	uint8_t h1[32], h2[32], again[32];

	err_clear(&e);
	assert_int_equal(dir_token_new(t1, h1, &e), 0);
	assert_int_equal(dir_token_new(t2, h2, &e), 0);
	assert_int_equal(strlen(t1), DIR_TOKEN_B64_LEN);
	assert_string_not_equal(t1, t2);
	assert_memory_not_equal(h1, h2, 32);
	/* The client's text hashes to what the directory stored. */
	assert_int_equal(dir_token_hash(t1, strlen(t1), again), 0);
	assert_memory_equal(again, h1, 32);
	/* Anything but 43 base64url characters is not a token. */
	assert_int_equal(dir_token_hash(t1, strlen(t1) - 1, again),
	    ERR_FORMAT);
	t1[5] = '+';
	assert_int_equal(dir_token_hash(t1, strlen(t1), again), ERR_FORMAT);
	assert_int_equal(dir_token_hash("", 0, again), ERR_FORMAT);
	assert_int_equal(dir_token_hash(NULL, 0, again), ERR_FORMAT);
}

static void
test_login_window(void **state)
{
	struct err_ctx e;
	const uint64_t now = 1764400000;

	err_clear(&e);
	assert_int_equal(dir_login_time_check(now, now, &e), 0);
	assert_int_equal(dir_login_time_check(now + 300, now, &e), 0);
	assert_int_equal(dir_login_time_check(now - 300, now, &e), 0);
	assert_int_equal(dir_login_time_check(now + 301, now, &e), ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "ahead of"));
	err_clear(&e);
	assert_int_equal(dir_login_time_check(now - 301, now, &e), ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "behind"));
	assert_int_equal(dir_login_time_check(0, now, &e), ERR_STALE);
	assert_int_equal(dir_login_time_check(UINT64_MAX, now, &e), ERR_STALE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_roundtrip),
		cmocka_unit_test(test_password_rules),
		cmocka_unit_test(test_stored_hash_parsing),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_login_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
