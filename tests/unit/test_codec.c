/*
 * test_codec.c - strict base64url and hex: RFC 4648 vectors and rejects.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "errors.h"

/* RFC 4648 section 10, in the URL alphabet and without padding. */
static const struct {
	const char *raw;
	const char *enc;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg" },
	{ "fo", "Zm8" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg" },
	{ "fooba", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_b64url_vectors(void **state)
{
	size_t i, len;
	uint8_t *dec;
	char *enc;

	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		size_t rawlen = strlen(rfc4648[i].raw);

		assert_int_equal(b64url_encode((const uint8_t *)rfc4648[i].raw,
		    rawlen, &enc), 0);
		assert_string_equal(enc, rfc4648[i].enc);
		assert_int_equal(b64url_encoded_len(rawlen), strlen(enc));
		free(enc);
		assert_int_equal(b64url_decode(rfc4648[i].enc,
		    strlen(rfc4648[i].enc), 100, &dec, &len), 0);
		assert_int_equal(len, rawlen);
		assert_memory_equal(dec, rfc4648[i].raw, len);
		free(dec);
	}
}

static void
test_b64url_url_alphabet(void **state)
{
	const uint8_t raw[] = { 0xfb, 0xff };
	uint8_t out[2];
	char *enc;

	assert_int_equal(b64url_encode(raw, sizeof(raw), &enc), 0);
	assert_string_equal(enc, "-_8");
	free(enc);
	assert_int_equal(b64url_decode_exact("-_8", 3, out, 2), 0);
	assert_memory_equal(out, raw, 2);
}

static void
test_b64url_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg==",      /* padding */
		"Zg=",
		"Zm9v\n",    /* whitespace */
		"Zm 9v",
		" Zm9v",
		"Zm+v",      /* standard alphabet */
		"Zm/v",
		"Z",         /* impossible length */
		"Zm9vY",
		"Zh",        /* non-canonical trailing bits */
		"Zm9",
		"Zm9v\x80",  /* non-ASCII */
		"Zm\0v",     /* embedded NUL (length 4) */
	};
	size_t i, len, slen;
	uint8_t *dec = NULL, out[8];

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		slen = strcmp(bad[i], "Zm") == 0 ? 4 : strlen(bad[i]);
		assert_int_equal(b64url_decode(bad[i], slen, 100, &dec, &len),
		    ERR_FORMAT);
		assert_null(dec);
	}
	/* Exact-length decoding refuses shorter and longer values. */
	assert_int_equal(b64url_decode_exact("Zm9v", 4, out, 2), ERR_FORMAT);
	assert_int_equal(b64url_decode_exact("Zm9v", 4, out, 4), ERR_FORMAT);
	assert_int_equal(b64url_decode_exact("Zm9v", 4, out, 3), 0);
	/* The size limit applies before decoding. */
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, 5, &dec, &len),
	    ERR_TOO_LARGE);
	assert_null(dec);
}

static void
test_b64url_all_bytes(void **state)
{
	uint8_t raw[256], *dec;
	size_t i, n, len;
	char *enc;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)i;
	/* Every length mod 3 and every byte value round-trips. */
	for (n = 0; n <= sizeof(raw); n++) {
		assert_int_equal(b64url_encode(raw, n, &enc), 0);
		assert_int_equal(b64url_decode(enc, strlen(enc), n, &dec, &len),
		    0);
		assert_int_equal(len, n);
		assert_memory_equal(dec, raw, n);
		free(enc);
		free(dec);
	}
}

/* RFC 4648 section 10, standard alphabet with padding. */
static const struct {
	const char *raw;
	const char *enc;
} rfc4648_std[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_b64std_vectors(void **state)
{
	const uint8_t raw[] = { 0xfb, 0xff };
	size_t i, len;
	uint8_t *dec;
	char *enc;

	for (i = 0; i < sizeof(rfc4648_std) / sizeof(rfc4648_std[0]); i++) {
		size_t rawlen = strlen(rfc4648_std[i].raw);

		assert_int_equal(b64std_encode(
		    (const uint8_t *)rfc4648_std[i].raw, rawlen, &enc), 0);
		assert_string_equal(enc, rfc4648_std[i].enc);
		free(enc);
		assert_int_equal(b64std_decode(rfc4648_std[i].enc,
		    strlen(rfc4648_std[i].enc), 100, &dec, &len), 0);
		assert_int_equal(len, rawlen);
		assert_memory_equal(dec, rfc4648_std[i].raw, len);
		free(dec);
	}
	/* The standard alphabet, not the URL one. */
	assert_int_equal(b64std_encode(raw, sizeof(raw), &enc), 0);
	assert_string_equal(enc, "+/8=");
	assert_int_equal(b64std_decode(enc, 4, 2, &dec, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(dec, raw, 2);
	free(dec);
	free(enc);
}

static void
test_b64std_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg",        /* padding missing */
		"Zm8",
		"Zg=",       /* padding short */
		"Zg===",     /* padding long */
		"Z===",
		"====",
		"=Zg=",      /* padding not at the end */
		"Zg==Zm9v",
		"Zm=v",
		"Zm9v\n",    /* whitespace */
		"Zm9v Zm9v",
		" Zm9v",
		"Zm9v\r\n",
		"Zm-v",      /* URL alphabet */
		"Zm_v",
		"Zh==",      /* non-canonical trailing bits */
		"Zm9=",
		"Zm9v\x80xyz", /* non-ASCII */
		"Zm\0v",     /* embedded NUL (length 4) */
	};
	size_t i, len, slen;
	uint8_t *dec = NULL;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		slen = strcmp(bad[i], "Zm") == 0 ? 4 : strlen(bad[i]);
		assert_int_equal(b64std_decode(bad[i], slen, 100, &dec, &len),
		    ERR_FORMAT);
		assert_null(dec);
	}
	/* The size limit applies before decoding, padding counted out. */
	assert_int_equal(b64std_decode("Zm9vYmE=", 8, 4, &dec, &len),
	    ERR_TOO_LARGE);
	assert_null(dec);
	assert_int_equal(b64std_decode("Zm9vYmE=", 8, 5, &dec, &len), 0);
	assert_int_equal(len, 5);
	free(dec);
}

static void
test_b64std_all_bytes(void **state)
{
	uint8_t raw[256], *dec;
	size_t i, n, len;
	char *enc;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(255 - i);
	for (n = 0; n <= sizeof(raw); n++) {
		assert_int_equal(b64std_encode(raw, n, &enc), 0);
		assert_int_equal(strlen(enc), ((n + 2) / 3) * 4);
		assert_int_equal(b64std_decode(enc, strlen(enc), n, &dec, &len),
		    0);
		assert_int_equal(len, n);
		assert_memory_equal(dec, raw, n);
		free(enc);
		free(dec);
	}
}

static void
test_hex(void **state)
{
	const uint8_t raw[] = { 0x00, 0x7f, 0x80, 0xff, 0x3f };
	uint8_t out[5];
	char s[11];

	hex_encode(raw, sizeof(raw), s);
	assert_string_equal(s, "007f80ff3f");
	assert_int_equal(hex_decode(s, 10, out, 5), 0);
	assert_memory_equal(out, raw, 5);
	assert_int_equal(hex_decode("007F80FF3F", 10, out, 5), ERR_FORMAT);
	assert_int_equal(hex_decode("007f80ff3", 9, out, 5), ERR_FORMAT);
	assert_int_equal(hex_decode("007f80ff3f00", 12, out, 5), ERR_FORMAT);
	assert_int_equal(hex_decode("007f80ff3g", 10, out, 5), ERR_FORMAT);
	assert_int_equal(hex_decode(" 07f80ff3f", 10, out, 5), ERR_FORMAT);
	hex_encode(raw, 0, s);
	assert_string_equal(s, "");
}

/* b64url_encode_buf() writes what b64url_encode() does, without a NUL
 * and without touching a byte past it. */
static void
test_hex_text_valid(void **state)
{
	(void)state;
	assert_int_equal(hex_text_valid("00ff", 4), 1);
	assert_int_equal(hex_text_valid("0123456789abcdef", 16), 1);
	assert_int_equal(hex_text_valid("", 0), 1);
	assert_int_equal(hex_text_valid(NULL, 0), 0);
	assert_int_equal(hex_text_valid("00FF", 4), 0);     /* uppercase */
	assert_int_equal(hex_text_valid("00fg", 4), 0);
	assert_int_equal(hex_text_valid("00ff0", 4), 0);    /* longer */
	assert_int_equal(hex_text_valid("00f", 4), 0);      /* shorter */
	assert_int_equal(hex_text_valid("0 ff", 4), 0);
	assert_int_equal(hex_text_valid("00ff\n", 4), 0);
}

static void
test_b64url_encode_buf(void **state)
{
	uint8_t raw[200];
	char out[300], *enc;
	size_t len, i, n;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 37 + 11);
	for (len = 0; len <= sizeof(raw); len++) {
		memset(out, '#', sizeof(out));
		assert_int_equal(b64url_encode(raw, len, &enc), 0);
		n = b64url_encoded_len(len);
		b64url_encode_buf(raw, len, out);
		assert_int_equal(strlen(enc), n);
		assert_memory_equal(out, enc, n);
		assert_int_equal(out[n], '#');
		free(enc);
	}
	(void)state;
}

/*
 * The decoder judges a long input's characters all at once: one bad
 * character anywhere (each position of each group, and the tail) is
 * still ERR_FORMAT, and a long valid input still decodes exactly.
 */
static void
test_b64url_long_rejects(void **state)
{
	static const char bad[] = { '!', '=', '+', '/', ' ', '\0', '"', '\\',
	    (char)0x80, (char)0xff, '\n', '.' };
	uint8_t raw[300], *dec = NULL, fixed[300];
	size_t len, dec_len, i, k, slen;
	char *enc, saved;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 101 + 7);
	for (len = 298; len <= 300; len++) {
		assert_int_equal(b64url_encode(raw, len, &enc), 0);
		slen = strlen(enc);
		assert_int_equal(b64url_decode(enc, slen, len, &dec,
		    &dec_len), 0);
		assert_int_equal(dec_len, len);
		assert_memory_equal(dec, raw, len);
		free(dec);
		for (i = 0; i < slen; i++) {
			saved = enc[i];
			for (k = 0; k < sizeof(bad); k++) {
				enc[i] = bad[k];
				dec = NULL;
				assert_int_equal(b64url_decode(enc, slen, len,
				    &dec, &dec_len), ERR_FORMAT);
				assert_null(dec);
				assert_int_equal(b64url_decode_exact(enc, slen,
				    fixed, len), ERR_FORMAT);
			}
			enc[i] = saved;
		}
		free(enc);
	}
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_text_valid),
		cmocka_unit_test(test_b64url_vectors),
		cmocka_unit_test(test_b64url_url_alphabet),
		cmocka_unit_test(test_b64url_rejects),
		cmocka_unit_test(test_b64url_all_bytes),
		cmocka_unit_test(test_b64url_encode_buf),
		cmocka_unit_test(test_b64url_long_rejects),
		cmocka_unit_test(test_b64std_vectors),
		cmocka_unit_test(test_b64std_rejects),
		cmocka_unit_test(test_b64std_all_bytes),
		cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
