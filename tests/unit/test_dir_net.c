/*
 * test_dir_net.c - the client-network keys of the directory's limits:
 * IPv4 addresses stand alone, IPv6 addresses fold into their /64, mapped
 * IPv4 counts as IPv4; loopback detection.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dir-net.h"

static struct sockaddr_storage
sa_of(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return ss;
}

static void
expect_key(const char *addr, const char *want)
{
	struct sockaddr_storage ss = sa_of(addr);
	char key[DIR_NET_KEY_MAX], key2[DIR_NET_KEY_MAX];

	assert_int_equal(dir_net_key((struct sockaddr *)&ss, key,
	    sizeof(key)), 0);
	assert_string_equal(key, want);
	/* The text form (X-Forwarded-For) gives the same key. */
	assert_int_equal(dir_net_key_text(addr, key2, sizeof(key2)), 0);
	assert_string_equal(key2, want);
}

static void
test_keys(void **state)
{
	(void)state;
	expect_key("192.0.2.7", "192.0.2.7");
	expect_key("127.0.0.1", "127.0.0.1");
	/* One /64, many addresses: one key. */
	expect_key("2001:db8:1:2::1", "2001:db8:1:2::/64");
	expect_key("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64");
	expect_key("2001:db8:1:3::1", "2001:db8:1:3::/64");
	expect_key("::1", "::/64");
	/* Mapped IPv4 is the IPv4 client. */
	expect_key("::ffff:192.0.2.7", "192.0.2.7");
}

static void
test_bad_input(void **state)
{
	char key[DIR_NET_KEY_MAX];
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(dir_net_key(NULL, key, sizeof(key)), -1);
	assert_string_equal(key, "unknown");
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_int_equal(dir_net_key((struct sockaddr *)&ss, key,
	    sizeof(key)), -1);
	assert_string_equal(key, "unknown");
	/* Too small an output. */
	ss = sa_of("2001:db8:1:2::1");
	assert_int_equal(dir_net_key((struct sockaddr *)&ss, key, 8), -1);
	/* Header text: blanks around are fine, anything else is not. */
	assert_int_equal(dir_net_key_text("  192.0.2.9 ", key, sizeof(key)),
	    0);
	assert_string_equal(key, "192.0.2.9");
	assert_int_equal(dir_net_key_text("192.0.2.9 x", key, sizeof(key)),
	    -1);
	assert_int_equal(dir_net_key_text("unknown", key, sizeof(key)), -1);
	assert_int_equal(dir_net_key_text("", key, sizeof(key)), -1);
	assert_int_equal(dir_net_key_text("192.0.2.999", key, sizeof(key)),
	    -1);
	assert_int_equal(dir_net_key_text("[2001:db8::1]", key, sizeof(key)),
	    -1);
	assert_int_equal(dir_net_key_text(NULL, key, sizeof(key)), -1);
	assert_string_equal(key, "unknown");
}

static void
test_loopback(void **state)
{
	struct sockaddr_storage ss;
	static const struct {
		const char *addr;
		int loop;
	} cases[] = {
		{ "127.0.0.1", 1 }, { "127.255.3.4", 1 }, { "::1", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "128.0.0.1", 0 },
		{ "0.0.0.0", 0 }, { "::", 0 }, { "10.0.0.1", 0 },
		{ "::ffff:10.0.0.1", 0 }, { "2001:db8::1", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ss = sa_of(cases[i].addr);
		assert_int_equal(dir_net_is_loopback((struct sockaddr *)&ss),
		    cases[i].loop);
	}
	assert_int_equal(dir_net_is_loopback(NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
