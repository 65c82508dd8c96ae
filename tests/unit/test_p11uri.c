/*
 * test_p11uri.c - PKCS#11 URI and PIN-source parsing (pkcs11/p11-uri.c),
 * and the other token-free pieces of the backend: CKR names and the
 * CKA_EC_POINT decoder.  No token is needed.
 */
#include "config.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "p11-modconf.h"
#include "p11-private.h"
#include "p11-uri.h"

/* --- helpers --- */

static char tmpdir[512];

static int
setup_dir(void **state)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || base[0] == '\0')
		base = P_tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_p11uri.XXXXXX", base);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown_dir(void **state)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes len bytes to a new file in tmpdir with the given mode. */
static const char *
write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static struct p11_uri *
parse_ok(const char *text)
{
	struct p11_uri *u = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (p11_uri_parse(text, &u, &e) != 0)
		fail_msg("parse failed: %s", err_msg(&e));
	assert_non_null(u);
	return u;
}

static void
parse_fails(const char *text, int code, const char *needle)
{
	struct p11_uri *u = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(p11_uri_parse(text, &u, &e), code);
	assert_null(u);
	assert_int_equal(e.code, code);
	if (needle != NULL && strstr(e.msg, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

/* --- URIs --- */

static void
test_uri_module_name(void **state)
{
	struct p11_uri *u = parse_ok(
	    "pkcs11:token=devid;object=devid-sig;type=private"
	    "?module-name=softhsm2");
	CK_TOKEN_INFO ti;

	assert_string_equal(u->module_name, "softhsm2");
	assert_null(u->module_path);
	assert_string_equal(u->object, "devid-sig");
	assert_int_equal(u->id_len, 0);
	assert_false(u->pin.set);
	assert_null(u->pin_file);
	/* The token attribute reaches p11-kit's matcher. */
	memset(&ti, ' ', sizeof(ti));
	ti.flags = 0;
	memcpy(ti.label, "devid", 5);
	assert_true(p11_kit_uri_match_token_info(u->kit, &ti));
	memcpy(ti.label, "other", 5);
	assert_false(p11_kit_uri_match_token_info(u->kit, &ti));
	p11_uri_free(u);
}

static void
test_uri_module_path_id(void **state)
{
	struct p11_uri *u = parse_ok(
	    "pkcs11:token=card;serial=0123;id=%01%02%ff"
	    "?module-path=/usr/lib/x/opensc-pkcs11.so");
	const uint8_t want[] = { 0x01, 0x02, 0xff };

	assert_null(u->module_name);
	assert_string_equal(u->module_path, "/usr/lib/x/opensc-pkcs11.so");
	assert_null(u->object);
	assert_int_equal(u->id_len, sizeof(want));
	assert_memory_equal(u->id, want, sizeof(want));
	p11_uri_free(u);
}

static void
test_uri_pin_value(void **state)
{
	struct p11_uri *u = parse_ok(
	    "pkcs11:token=devid?module-name=softhsm2&pin-value=12%2034");

	assert_true(u->pin.set);
	assert_int_equal(u->pin.len, 5);
	assert_string_equal(u->pin.value, "12 34");
	/* p11-kit keeps no copy. */
	assert_null(p11_kit_uri_get_pin_value(u->kit));
	p11_uri_free(u);
}

static void
test_uri_pin_source(void **state)
{
	struct p11_uri *u;

	u = parse_ok("pkcs11:token=a?module-name=m&pin-source=file:/etc/pin");
	assert_string_equal(u->pin_file, "/etc/pin");
	assert_false(u->pin.set);
	p11_uri_free(u);
	u = parse_ok("pkcs11:token=a?module-name=m&pin-source=file:///etc/p");
	assert_string_equal(u->pin_file, "/etc/p");
	p11_uri_free(u);
	u = parse_ok("pkcs11:token=a?module-name=m&pin-source=/etc/q");
	assert_string_equal(u->pin_file, "/etc/q");
	p11_uri_free(u);
}

static void
test_uri_negatives(void **state)
{
	char big[5000];
	char id[400];
	size_t i, n;

	parse_fails("http://example.org/", ERR_CONFIG, "RFC 7512");
	parse_fails("pkcs11:token=devid", ERR_CONFIG, "module-name");
	parse_fails("pkcs11:token=devid?module-name=a&module-path=/b.so",
	    ERR_CONFIG, "both");
	parse_fails("pkcs11:token=devid?module-path=lib/x.so", ERR_CONFIG,
	    "absolute");
	parse_fails("pkcs11:token=devid?module-name=%2fusr%2fx.so",
	    ERR_CONFIG, "not a path");
	parse_fails("pkcs11:token=d?module-name=m&pin-source=%7cprog",
	    ERR_CONFIG, "absolute file path");
	parse_fails("pkcs11:token=d?module-name=m&pin-source=pin.txt",
	    ERR_CONFIG, "absolute file path");
	parse_fails("pkcs11:token=d?module-name=m&pin-value=1234"
	    "&pin-source=file:/p", ERR_CONFIG, "both pin-value");
	parse_fails("pkcs11:token=d;type=cert?module-name=m", ERR_CONFIG,
	    "private");
	parse_fails("pkcs11:token=d;colour=red?module-name=m", ERR_CONFIG,
	    "does not know");
	parse_fails("pkcs11:token=d;object=a%00b?module-name=m", ERR_CONFIG,
	    "NUL");
	parse_fails("pkcs11:token=d?module-name=m&pin-value=", ERR_CONFIG,
	    "empty");
	parse_fails("pkcs11:token=%zz?module-name=m", ERR_CONFIG, NULL);

	/* An id of 65 bytes. */
	n = (size_t)snprintf(id, sizeof(id), "pkcs11:id=");
	for (i = 0; i < P11_ID_MAX + 1; i++)
		n += (size_t)snprintf(id + n, sizeof(id) - n, "%%%02x",
		    (unsigned int)i);
	snprintf(id + n, sizeof(id) - n, "?module-name=m");
	parse_fails(id, ERR_CONFIG, "id must be");

	/* A pin-value of P11_PIN_MAX + 1 bytes. */
	n = (size_t)snprintf(big, sizeof(big), "pkcs11:?module-name=m"
	    "&pin-value=");
	memset(big + n, '7', P11_PIN_MAX + 1);
	big[n + P11_PIN_MAX + 1] = '\0';
	parse_fails(big, ERR_CONFIG, "longer");

	/* A URI longer than any real one. */
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "pkcs11:object=", 14);
	big[sizeof(big) - 1] = '\0';
	parse_fails(big, ERR_CONFIG, "longer");
}

static void
test_uri_error_never_quotes_pin(void **state)
{
	struct p11_uri *u = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(p11_uri_parse("pkcs11:token=d;bogus=1?module-name=m"
	    "&pin-value=s3cr3tpin", &u, &e), ERR_CONFIG);
	assert_null(strstr(e.msg, "s3cr3tpin"));
	err_clear(&e);
	assert_int_equal(p11_uri_parse("pkcs11:token=d?pin-value=s3cr3tpin",
	    &u, &e), ERR_CONFIG);
	assert_null(strstr(e.msg, "s3cr3tpin"));
}

static void
test_label_base(void **state)
{
	struct p11_uri *u;
	struct err_ctx e;
	char base[P11_LABEL_MAX];
	char small[9];

	err_clear(&e);
	u = parse_ok("pkcs11:object=laptop-sig?module-name=m");
	assert_int_equal(p11_uri_label_base(u, "x", base, sizeof(base), &e),
	    0);
	assert_string_equal(base, "laptop");
	p11_uri_free(u);

	u = parse_ok("pkcs11:object=laptop-enc?module-name=m");
	assert_int_equal(p11_uri_label_base(u, "x", base, sizeof(base), &e),
	    0);
	assert_string_equal(base, "laptop");
	p11_uri_free(u);

	u = parse_ok("pkcs11:object=card?module-name=m");
	assert_int_equal(p11_uri_label_base(u, "x", base, sizeof(base), &e),
	    0);
	assert_string_equal(base, "card");
	assert_int_equal(p11_uri_label_base(u, NULL, small, sizeof(small),
	    &e), 0);
	assert_string_equal(small, "card");
	p11_uri_free(u);

	u = parse_ok("pkcs11:token=t?module-name=m");
	assert_int_equal(p11_uri_label_base(u, "work", base, sizeof(base),
	    &e), 0);
	assert_string_equal(base, "work");
	assert_int_equal(p11_uri_label_base(u, NULL, base, sizeof(base), &e),
	    0);
	assert_string_equal(base, P11_LABEL_BASE_DEFAULT);
	/* "-sig" needs room after the base. */
	assert_int_equal(p11_uri_label_base(u, "abcde", small, sizeof(small),
	    &e), ERR_CONFIG);
	err_clear(&e);
	assert_int_equal(p11_uri_label_base(u, "abcd", small, sizeof(small),
	    &e), 0);
	assert_int_equal(p11_uri_label_base(u, "", base, sizeof(base), &e),
	    ERR_CONFIG);
	p11_uri_free(u);
}

/* --- PIN files --- */

static void
read_pin_ok(const char *content, size_t len, const char *want)
{
	struct p11_pin pin;
	struct err_ctx e;
	const char *path = write_file("pin", content, len, 0600);

	err_clear(&e);
	if (p11_pin_read_file(path, &pin, &e) != 0)
		fail_msg("reading PIN failed: %s", err_msg(&e));
	assert_true(pin.set);
	assert_int_equal(pin.len, strlen(want));
	assert_string_equal(pin.value, want);
	p11_pin_clear(&pin);
	assert_false(pin.set);
	assert_int_equal(pin.len, 0);
	assert_int_equal(pin.value[0], '\0');
}

static void
read_pin_fails(const char *content, size_t len, mode_t mode, int code)
{
	struct p11_pin pin;
	struct err_ctx e;
	const char *path = write_file("pin", content, len, mode);

	err_clear(&e);
	memset(&pin, 0x55, sizeof(pin));
	assert_int_equal(p11_pin_read_file(path, &pin, &e), code);
	assert_false(pin.set);
	assert_int_equal(pin.len, 0);
	/* The message names the file, never its contents. */
	assert_non_null(strstr(e.msg, path));
	if (len >= 4 && memchr(content, '\0', len) == NULL)
		assert_null(strstr(e.msg, "s3cr"));
}

static void
test_pin_file(void **state)
{
	read_pin_ok("1234", 4, "1234");
	read_pin_ok("1234\n", 5, "1234");
	read_pin_ok("1234\r\n", 6, "1234");
	/* Only one line end is removed. */
	read_pin_ok("12 34\n\n", 7, "12 34\n");
}

static void
test_pin_file_limits(void **state)
{
	char big[P11_PIN_MAX + 3];
	char want[P11_PIN_MAX + 1];
	struct p11_pin pin;
	struct err_ctx e;
	const char *path;

	memset(big, 'p', sizeof(big));
	memset(want, 'p', P11_PIN_MAX);
	want[P11_PIN_MAX] = '\0';
	/* Exactly P11_PIN_MAX bytes, with and without "\r\n". */
	big[P11_PIN_MAX] = '\r';
	big[P11_PIN_MAX + 1] = '\n';
	read_pin_ok(big, P11_PIN_MAX + 2, want);
	read_pin_ok(big, P11_PIN_MAX, want);
	/* One byte more. */
	memset(big, 'p', sizeof(big));
	read_pin_fails(big, P11_PIN_MAX + 1, 0600, ERR_TOO_LARGE);
	big[P11_PIN_MAX + 1] = '\n';
	read_pin_fails(big, P11_PIN_MAX + 2, 0600, ERR_TOO_LARGE);
	read_pin_fails(big, sizeof(big), 0600, ERR_TOO_LARGE);

	read_pin_fails("", 0, 0600, ERR_FORMAT);
	read_pin_fails("\n", 1, 0600, ERR_FORMAT);
	read_pin_fails("\r\n", 2, 0600, ERR_FORMAT);
	read_pin_fails("12\0" "34", 5, 0600, ERR_FORMAT);
	read_pin_fails("s3cret", 6, 0604, ERR_DENIED);
	read_pin_fails("s3cret", 6, 0602, ERR_DENIED);
	/* The group may not read it either (as ssh with a private key), and
	 * the message says what to run. */
	read_pin_fails("s3cret", 6, 0640, ERR_DENIED);
	read_pin_fails("s3cret", 6, 0620, ERR_DENIED);
	path = write_file("pin", "s3cret", 6, 0640);
	err_clear(&e);
	assert_int_equal(p11_pin_read_file(path, &pin, &e), ERR_DENIED);
	assert_non_null(strstr(e.msg, "chmod 600"));
	path = write_file("pin", "s3cret", 6, 0400);
	err_clear(&e);
	assert_int_equal(p11_pin_read_file(path, &pin, &e), 0);
	p11_pin_clear(&pin);

	err_clear(&e);
	assert_int_equal(p11_pin_read_file(tmpdir, &pin, &e), ERR_IO);
	err_clear(&e);
	assert_int_equal(p11_pin_read_file("/nonexistent/devid/pin", &pin,
	    &e), ERR_IO);
	assert_non_null(strstr(e.msg, "/nonexistent/devid/pin"));
	assert_false(pin.set);
}

static void
test_pin_set(void **state)
{
	char big[P11_PIN_MAX + 2];
	struct p11_pin pin;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(p11_pin_set(&pin, "0000", &e), 0);
	assert_string_equal(pin.value, "0000");
	assert_int_equal(pin.len, 4);
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(p11_pin_set(&pin, big, &e), ERR_TOO_LARGE);
	assert_false(pin.set);
	assert_int_equal(p11_pin_set(&pin, "", &e), ERR_FORMAT);
	assert_false(pin.set);
	p11_pin_clear(NULL);
}

/* --- resolution order --- */

struct prompt_state {
	int calls;
	char seen_label[64];
	const char *answer;  /* NULL: fill the whole buffer, no NUL */
	int rc;
};

static int
fake_prompt(void *arg, const char *token_label, char *pin, size_t pin_max)
{
	struct prompt_state *s = arg;

	s->calls++;
	snprintf(s->seen_label, sizeof(s->seen_label), "%s", token_label);
	if (s->rc != 0)
		return s->rc;
	assert_int_equal(pin_max, P11_PIN_MAX + 1);
	if (s->answer == NULL)
		memset(pin, '9', pin_max);
	else
		snprintf(pin, pin_max, "%s", s->answer);
	return 0;
}

static void
test_pin_resolve(void **state)
{
	struct prompt_state ps;
	struct p11_options opt;
	struct p11_uri *u;
	struct p11_pin pin;
	struct err_ctx e;
	char file[600];
	char uri[800];

	memset(&ps, 0, sizeof(ps));
	memset(&opt, 0, sizeof(opt));
	opt.pin_prompt = fake_prompt;
	opt.pin_prompt_arg = &ps;
	ps.answer = "5555";
	snprintf(file, sizeof(file), "%s",
	    write_file("optpin", "2222\n", 5, 0600));
	opt.pin_file = file;
	err_clear(&e);

	/* pin-value first. */
	u = parse_ok("pkcs11:token=t?module-name=m&pin-value=1111");
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e), 0);
	assert_string_equal(pin.value, "1111");
	p11_uri_free(u);

	/* Then pin-source. */
	write_file("uripin", "3333", 4, 0600);
	snprintf(uri, sizeof(uri), "pkcs11:token=t?module-name=m"
	    "&pin-source=file:%s/uripin", tmpdir);
	u = parse_ok(uri);
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e), 0);
	assert_string_equal(pin.value, "3333");
	p11_uri_free(u);

	/* Then the PIN file option, then the prompt. */
	u = parse_ok("pkcs11:token=t?module-name=m");
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e), 0);
	assert_string_equal(pin.value, "2222");
	assert_int_equal(ps.calls, 0);
	opt.pin_file = NULL;
	assert_int_equal(p11_pin_resolve(u, &opt, "card 7", &pin, &e), 0);
	assert_string_equal(pin.value, "5555");
	assert_int_equal(ps.calls, 1);
	assert_string_equal(ps.seen_label, "card 7");

	/* The prompt's failures. */
	ps.rc = ERR_PIN_REQUIRED;
	err_clear(&e);
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e),
	    ERR_PIN_REQUIRED);
	assert_false(pin.set);
	ps.rc = 0;
	ps.answer = "";
	err_clear(&e);
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e),
	    ERR_PIN_REQUIRED);
	ps.answer = NULL;
	err_clear(&e);
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e),
	    ERR_TOO_LARGE);
	assert_false(pin.set);

	/* No source at all. */
	err_clear(&e);
	assert_int_equal(p11_pin_resolve(u, NULL, "t", &pin, &e),
	    ERR_PIN_REQUIRED);
	assert_non_null(strstr(e.msg, "'t'"));
	p11_uri_free(u);

	/* A missing pin-source file is an error, not a fall-through. */
	snprintf(uri, sizeof(uri), "pkcs11:token=t?module-name=m"
	    "&pin-source=file:%s/absent", tmpdir);
	u = parse_ok(uri);
	opt.pin_file = file;
	err_clear(&e);
	assert_int_equal(p11_pin_resolve(u, &opt, "t", &pin, &e), ERR_IO);
	p11_uri_free(u);
	p11_pin_clear(&pin);
}

static void
test_rv_names(void **state)
{
	assert_string_equal(p11_rv_name(CKR_PIN_INCORRECT),
	    "CKR_PIN_INCORRECT");
	assert_string_equal(p11_rv_name(CKR_DEVICE_REMOVED),
	    "CKR_DEVICE_REMOVED");
	assert_string_equal(p11_rv_name(CKR_OK), "CKR_OK");
	assert_null(p11_rv_name(0x7777UL));
}

/* A witness key's CKA_EC_POINT: DER-wrapped or raw, 32 bytes. */
static void
test_eddsa_point_decode(void **state)
{
	uint8_t v[40], pub[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v); i++)
		v[i] = (uint8_t)(0x40 + i);
	v[0] = 0x04;
	v[1] = 0x20;
	assert_int_equal(p11_eddsa_point_decode(v, 34, pub), 0);
	assert_memory_equal(pub, v + 2, 32);
	assert_int_equal(p11_eddsa_point_decode(v + 2, 32, pub), 0);
	assert_memory_equal(pub, v + 2, 32);
	assert_int_equal(p11_eddsa_point_decode(v, 33, pub), ERR_FORMAT);
	assert_int_equal(p11_eddsa_point_decode(v, 35, pub), ERR_FORMAT);
	assert_int_equal(p11_eddsa_point_decode(v, 31, pub), ERR_FORMAT);
	assert_int_equal(p11_eddsa_point_decode(v, 0, pub), ERR_FORMAT);
	v[1] = 0x21;
	assert_int_equal(p11_eddsa_point_decode(v, 34, pub), ERR_FORMAT);
	v[1] = 0x20;
	v[0] = 0x03;
	assert_int_equal(p11_eddsa_point_decode(v, 34, pub), ERR_FORMAT);
}

static void
test_ec_point_decode(void **state)
{
	uint8_t raw[65], der[67], point[65], odd[68];
	size_t i;

	raw[0] = 0x04;
	for (i = 1; i < sizeof(raw); i++)
		raw[i] = (uint8_t)i;
	der[0] = 0x04;
	der[1] = 0x41;
	memcpy(der + 2, raw, sizeof(raw));

	/* Raw, as some modules give it. */
	memset(point, 0, sizeof(point));
	assert_int_equal(p11_ec_point_decode(raw, sizeof(raw), point), 0);
	assert_memory_equal(point, raw, sizeof(raw));
	/* DER-wrapped, as PKCS#11 says and SoftHSM does. */
	memset(point, 0, sizeof(point));
	assert_int_equal(p11_ec_point_decode(der, sizeof(der), point), 0);
	assert_memory_equal(point, raw, sizeof(raw));

	/* Everything else. */
	assert_int_equal(p11_ec_point_decode(raw, 64, point), ERR_FORMAT);
	assert_int_equal(p11_ec_point_decode(der, 66, point), ERR_FORMAT);
	assert_int_equal(p11_ec_point_decode(raw, 0, point), ERR_FORMAT);
	raw[0] = 0x02;          /* compressed */
	assert_int_equal(p11_ec_point_decode(raw, sizeof(raw), point),
	    ERR_FORMAT);
	der[2] = 0x03;
	assert_int_equal(p11_ec_point_decode(der, sizeof(der), point),
	    ERR_FORMAT);
	der[2] = 0x04;
	der[1] = 0x40;          /* wrong length */
	assert_int_equal(p11_ec_point_decode(der, sizeof(der), point),
	    ERR_FORMAT);
	der[1] = 0x41;
	der[0] = 0x03;          /* BIT STRING, not OCTET STRING */
	assert_int_equal(p11_ec_point_decode(der, sizeof(der), point),
	    ERR_FORMAT);
	/* Long-form length (04 81 41 04 ...) is not DER for 65 bytes. */
	odd[0] = 0x04;
	odd[1] = 0x81;
	odd[2] = 0x41;
	memcpy(odd + 3, der + 2, 65);
	odd[3] = 0x04;
	assert_int_equal(p11_ec_point_decode(odd, sizeof(odd), point),
	    ERR_FORMAT);
}

/* Module names resolve through the registration files, first dir wins. */
static void
test_modconf_resolve(void **state)
{
	char a[600], b[600], path[1024];
	const char *dirs[3];
	struct err_ctx e;
	static const char softhsm[] = "# registration\n"
	    "critical: no\n"
	    "  module:  /opt/softhsm/libsofthsm2.so  \n";

	snprintf(a, sizeof(a), "%s/modules-a", tmpdir);
	snprintf(b, sizeof(b), "%s/modules-b", tmpdir);
	assert_int_equal(mkdir(a, 0700), 0);
	assert_int_equal(mkdir(b, 0700), 0);
	dirs[0] = a;
	dirs[1] = b;
	dirs[2] = NULL;
	write_file("modules-b/softhsm2.module", softhsm, strlen(softhsm),
	    0644);
	write_file("modules-b/rel.module", "module: librel.so\n", 18, 0644);
	write_file("modules-b/empty.module", "# nothing\nmodule:\n", 19,
	    0644);
	write_file("modules-a/over.module", "module: /a/over.so\n", 19, 0644);
	write_file("modules-b/over.module", "module: /b/over.so\n", 19, 0644);

	err_clear(&e);
	assert_int_equal(p11_modconf_resolve("softhsm2", dirs, path,
	    sizeof(path), &e), 0);
	assert_string_equal(path, "/opt/softhsm/libsofthsm2.so");
	assert_int_equal(p11_modconf_resolve("rel", dirs, path,
	    sizeof(path), &e), 0);
	assert_string_equal(path, P11_MODULE_PATH "/librel.so");
	assert_int_equal(p11_modconf_resolve("over", dirs, path,
	    sizeof(path), &e), 0);
	assert_string_equal(path, "/a/over.so");

	err_clear(&e);
	assert_int_equal(p11_modconf_resolve("empty", dirs, path,
	    sizeof(path), &e), ERR_FORMAT);
	err_clear(&e);
	assert_int_equal(p11_modconf_resolve("missing", dirs, path,
	    sizeof(path), &e), ERR_NOT_FOUND);
	assert_non_null(strstr(err_msg(&e), "module-path"));
	/* Names never reach outside the registration directories. */
	err_clear(&e);
	assert_int_equal(p11_modconf_resolve("../modules-b/softhsm2", dirs,
	    path, sizeof(path), &e), ERR_FORMAT);
	assert_int_equal(p11_modconf_resolve("a/b", dirs, path, sizeof(path),
	    NULL), ERR_FORMAT);
	assert_int_equal(p11_modconf_resolve("", dirs, path, sizeof(path),
	    NULL), ERR_FORMAT);
	assert_int_equal(p11_modconf_resolve(".hidden", dirs, path,
	    sizeof(path), NULL), ERR_FORMAT);
	/* A path that does not fit is refused, not cut. */
	assert_int_equal(p11_modconf_resolve("softhsm2", dirs, path, 10,
	    NULL), ERR_TOO_LARGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_module_name),
		cmocka_unit_test(test_uri_module_path_id),
		cmocka_unit_test(test_uri_pin_value),
		cmocka_unit_test(test_uri_pin_source),
		cmocka_unit_test(test_uri_negatives),
		cmocka_unit_test(test_uri_error_never_quotes_pin),
		cmocka_unit_test(test_label_base),
		cmocka_unit_test(test_pin_file),
		cmocka_unit_test(test_pin_file_limits),
		cmocka_unit_test(test_pin_set),
		cmocka_unit_test(test_pin_resolve),
		cmocka_unit_test(test_rv_names),
		cmocka_unit_test(test_ec_point_decode),
		cmocka_unit_test(test_eddsa_point_decode),
		cmocka_unit_test(test_modconf_resolve),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
