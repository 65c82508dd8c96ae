/*
 * test_netaddr.c - listen addresses: the forms devid's servers accept
 * and those they refuse.
 */
#include "config.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "netaddr.h"

static void
test_accepted(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(net_listen_parse("127.0.0.1:8443", 1, &ss, &len, &e),
	    0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8443);
	assert_int_equal(net_listen_parse("[::1]:0", 1, &ss, &len, &e), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(net_listen_parse("0.0.0.0:65535", 1, &ss, &len, &e),
	    0);
	assert_int_equal(net_listen_parse("localhost:80", 0, &ss, &len, &e),
	    0);
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"", ":", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536",
		"127.0.0.1:123456", "127.0.0.1:8x", "127.0.0.1:-1", "[::1]",
		"[::1]:", "[]:80", "::1:80x", "127.0.0.1: 80",
	};
	struct sockaddr_storage ss;
	socklen_t len = 0;
	struct err_ctx e;
	char longhost[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (net_listen_parse(bad[i], 0, &ss, &len, &e) != ERR_CONFIG)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(strstr(err_msg(&e), "listen address"));
	}
	/* A name where a numeric address is required. */
	err_clear(&e);
	assert_int_equal(net_listen_parse("localhost:80", 1, &ss, &len, &e),
	    ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "not a numeric address"));
	memset(longhost, 'a', 290);
	memcpy(longhost + 290, ":80", 4);
	assert_int_equal(net_listen_parse(longhost, 0, &ss, &len, &e),
	    ERR_CONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
