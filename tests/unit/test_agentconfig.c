/*
 * test_agentconfig.c - the agent's INI parser, settings and XDG paths:
 * what it accepts, and everything it must refuse with a message naming
 * the file and line; and the directory URL rule (dirc_url_check) that the
 * agent, devid-msg and the directory client share.
 */
#include "config.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "agent-config.h"
#include "agent-token.h"
#include "dirclient.h"
#include "errors.h"
#include "paths.h"
#include "tlog-client.h"
#include "tlog-note.h"

#define ID64 "5c7a655f4354ad30ee348a2235da1e4af5c21822e90ad926f88fea1e9d01278f"

static int
parse(struct agent_config *c, const char *text, struct err_ctx *e)
{
	agent_config_init(c);
	err_clear(e);
	return agent_config_parse(c, text, strlen(text), "test.conf", 0, e);
}

static void
test_defaults(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_init(&c);
	assert_int_equal(c.check_interval, 60);
	assert_int_equal(c.max_stale, 900);
	assert_int_equal(c.long_poll, 60);
	assert_int_equal(c.require_endorsement, 0);
	assert_null(c.account);
	agent_config_free(&c);
	agent_config_free(NULL);
}

static void
test_parse_good(void **state)
{
	struct agent_config c;
	struct err_ctx e;
	const char *text =
	    "# a comment\n"
	    "; another\n"
	    "\n"
	    "[agent]\n"
	    "account = alice@example.org\n"
	    "label=laptop \xc3\xa9t\xc3\xa9\r\n"
	    "  token = pkcs11:token=card?module-name=softhsm2\n"
	    "directory = https://dir.example.org\n"
	    "directory_key = " ID64 "\n"
	    "check_interval = 2\n"
	    "max_stale = 6\n"
	    "long_poll = 0\n"
	    "alert_command = notify-send devid \"$DEVID_ALERT_MESSAGE\"\n"
	    "log = syslog\n"
	    "enc_alg = rsa-oaep-sha256\n"
	    "pin_timeout = 300";    /* no final newline */

	(void)state;
	assert_int_equal(parse(&c, text, &e), 0);
	assert_string_equal(c.account, "alice@example.org");
	assert_string_equal(c.label, "laptop \xc3\xa9t\xc3\xa9");
	assert_string_equal(c.token, "pkcs11:token=card?module-name=softhsm2");
	assert_string_equal(c.directory_key, ID64);
	assert_int_equal(c.check_interval, 2);
	assert_int_equal(c.max_stale, 6);
	assert_int_equal(c.long_poll, 0);
	assert_int_equal(c.pin_timeout, 300);
	assert_string_equal(c.alert_command,
	    "notify-send devid \"$DEVID_ALERT_MESSAGE\"");
	assert_string_equal(c.log, "syslog");
	agent_config_free(&c);
}

static void
test_flags_win(void **state)
{
	struct agent_config c;
	struct err_ctx e;
	uint64_t locked;

	(void)state;
	agent_config_init(&c);
	err_clear(&e);
	assert_int_equal(agent_config_set(&c, "check_interval", "5",
	    "--check-interval", &e), 0);
	locked = (uint64_t)1 << agent_config_key_index("check_interval");
	assert_int_equal(agent_config_parse(&c,
	    "check_interval = 99\nmax_stale = 7\n",
	    strlen("check_interval = 99\nmax_stale = 7\n"), "f", locked,
	    &e), 0);
	assert_int_equal(c.check_interval, 5);
	assert_int_equal(c.max_stale, 7);
	agent_config_free(&c);
}

/* require_endorsement: a yes/no setting, also as a flag alone. */
static void
test_require_endorsement(void **state)
{
	static const struct {
		const char *text;
		int want;
	} good[] = {
		{ "require_endorsement = yes\n", 1 },
		{ "require_endorsement = true\n", 1 },
		{ "require_endorsement=no\n", 0 },
		{ "require_endorsement = false\n", 0 },
	};
	struct agent_config c;
	struct err_ctx e;
	uint64_t locked;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(parse(&c, good[i].text, &e), 0);
		assert_int_equal(c.require_endorsement, good[i].want);
		agent_config_free(&c);
	}
	assert_int_equal(agent_config_key_is_bool("require_endorsement"), 1);
	assert_int_equal(agent_config_key_is_bool("max_stale"), 0);
	assert_int_equal(agent_config_key_is_bool("account"), 0);
	assert_int_equal(agent_config_key_is_bool("nosuch"), 0);
	/* the flag wins over the file */
	agent_config_init(&c);
	err_clear(&e);
	assert_int_equal(agent_config_set(&c, "require_endorsement", "yes",
	    "--require-endorsement", &e), 0);
	locked = (uint64_t)1 << agent_config_key_index("require_endorsement");
	assert_int_equal(agent_config_parse(&c, "require_endorsement = no\n",
	    strlen("require_endorsement = no\n"), "f", locked, &e), 0);
	assert_int_equal(c.require_endorsement, 1);
	/* a bad value leaves the setting as it was */
	assert_int_equal(agent_config_set(&c, "require_endorsement", "maybe",
	    "--require-endorsement", &e), ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "--require-endorsement: "
	    "require_endorsement must be yes or no"));
	assert_int_equal(c.require_endorsement, 1);
	agent_config_free(&c);
}

/* Each of these must fail, naming the line. */
static void
test_parse_bad(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{ "nosuch = 1\n", "test.conf:1: unknown setting" },
		{ "account = a@b\naccount = c@d\n", "test.conf:2: 'account' is "
		    "set twice" },
		{ "[other]\n", "unknown section" },
		{ "[agent\n", "unknown section" },
		{ "just words\n", "expected 'key = value'" },
		{ "account = a\x01" "b\n", "control character" },
		{ "label = a\x7f\n", "control character" },
		{ "check_interval = -1\n", "whole number" },
		{ "check_interval = 0\n", "whole number" },
		{ "check_interval = 1x\n", "whole number" },
		{ "check_interval = \n", "whole number" },
		{ "check_interval = 99999999999999999999999\n",
		    "whole number" },
		{ "max_stale = 18446744073709551616\n", "whole number" },
		{ "long_poll = 61\n", "whole number" },
		{ "account = Alice@example.org\n", "not a valid account" },
		{ "account = -alice\n", "not a valid account" },
		{ "label = \xff\xfe\n", "label must be" },
		{ "label = \n", "is empty" },
		{ "token = tpm3\n", "token must be" },
		{ "directory = ftp://x\n", "test.conf:1: directory URL "
		    "'ftp://x' must start with https://" },
		{ "directory = http://dir.example.org\n", "test.conf:1: "
		    "refusing plain http:// to dir.example.org: " },
		{ "directory_key = abcd\n", "directory_key must be" },
		{ "directory_key = " ID64 "0\n", "directory_key must be" },
		{ "enc_alg = rsa\n", "enc_alg must be" },
		{ "log = file\n", "log must be" },
		{ "require_endorsement = 1\n", "require_endorsement must be "
		    "yes or no, not '1'" },
		{ "require_endorsement = Yes\n", "must be yes or no" },
		{ "require_endorsement =\n", "must be yes or no" },
		{ "require_endorsement = yes\nrequire_endorsement = no\n",
		    "test.conf:2: 'require_endorsement' is set twice" },
		{ "= value\n", "unknown setting" },
	};
	struct agent_config c;
	struct err_ctx e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse(&c, bad[i].text, &e);

		if (r != ERR_CONFIG || strstr(err_msg(&e), bad[i].msg) == NULL)
			fail_msg("case %zu '%s': r=%d msg '%s'", i, bad[i].text,
			    r, err_msg(&e));
		agent_config_free(&c);
	}
}

static void
test_parse_limits(void **state)
{
	struct agent_config c;
	struct err_ctx e;
	char *big;

	(void)state;
	/* A line over the limit. */
	big = malloc(AGENT_CONFIG_FILE_MAX + 2);
	assert_non_null(big);
	memset(big, '#', AGENT_CONFIG_LINE_MAX + 1);
	big[AGENT_CONFIG_LINE_MAX + 1] = '\0';
	assert_int_equal(parse(&c, big, &e), ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "longer than"));
	agent_config_free(&c);
	/* A line of exactly the limit is fine. */
	big[AGENT_CONFIG_LINE_MAX] = '\0';
	assert_int_equal(parse(&c, big, &e), 0);
	agent_config_free(&c);
	/* A file over the limit, even of short lines. */
	memset(big, '\n', AGENT_CONFIG_FILE_MAX + 1);
	agent_config_init(&c);
	assert_int_equal(agent_config_parse(&c, big, AGENT_CONFIG_FILE_MAX + 1,
	    "f", 0, &e), ERR_CONFIG);
	agent_config_free(&c);
	/* A NUL inside the text is a control character. */
	assert_int_equal(agent_config_parse(&c, "label = a\0b\n", 12, "f", 0,
	    &e), ERR_CONFIG);
	agent_config_free(&c);
	free(big);
}

static void
test_write_roundtrip(void **state)
{
	char dir[64], *path;
	struct agent_config c, d;
	struct err_ctx e;
	struct stat st;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/devid-cfg-XXXXXX", P_tmpdir);
	assert_non_null(mkdtemp(dir));
	path = path_join(dir, "agent.conf");
	assert_non_null(path);
	agent_config_init(&c);
	err_clear(&e);
	assert_int_equal(agent_config_set(&c, "account", "bob@example.org",
	    NULL, &e), 0);
	assert_int_equal(agent_config_set(&c, "token", "tpm2", NULL, &e), 0);
	assert_int_equal(agent_config_set(&c, "tcti", "swtpm:path=/x/sock",
	    NULL, &e), 0);
	assert_int_equal(agent_config_set(&c, "max_stale", "42", NULL, &e), 0);
	assert_int_equal(agent_config_set(&c, "require_endorsement", "yes",
	    NULL, &e), 0);
	assert_int_equal(agent_config_write(&c, path, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	agent_config_init(&d);
	assert_int_equal(agent_config_load(&d, path, 0, &e), 0);
	assert_string_equal(d.account, "bob@example.org");
	assert_string_equal(d.tcti, "swtpm:path=/x/sock");
	assert_int_equal(d.max_stale, 42);
	assert_int_equal(d.require_endorsement, 1);
	assert_null(d.label);
	agent_config_free(&d);
	agent_config_free(&c);
	/* Missing files are ERR_NOT_FOUND. */
	unlink(path);
	agent_config_init(&d);
	assert_int_equal(agent_config_load(&d, path, 0, &e), ERR_NOT_FOUND);
	agent_config_free(&d);
	free(path);
	rmdir(dir);
}

static void
test_xdg(void **state)
{
	struct err_ctx e;
	char *p = NULL;

	(void)state;
	err_clear(&e);
	setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
	assert_int_equal(agent_config_default_config_path(&p, &e), 0);
	assert_string_equal(p, "/x/cfg/devid/agent.conf");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(agent_config_default_config_path(&p, &e), 0);
	assert_string_equal(p, "/home/u/.config/devid/agent.conf");
	free(p);
	/* A relative XDG value is ignored, as the spec says. */
	setenv("XDG_DATA_HOME", "rel", 1);
	assert_int_equal(agent_config_default_state_dir(&p, &e), 0);
	assert_string_equal(p, "/home/u/.local/share/devid");
	free(p);
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	assert_int_equal(agent_config_default_socket(&p, &e), 0);
	assert_string_equal(p, "/run/user/1000/devid/agent.sock");
	free(p);
	unsetenv("XDG_RUNTIME_DIR");
	assert_int_equal(agent_config_default_socket(&p, &e), ERR_CONFIG);
}

static void
test_private_dir(void **state)
{
	char dir[64], *sub;
	struct err_ctx e;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/devid-pdir-XXXXXX", P_tmpdir);
	assert_non_null(mkdtemp(dir));
	sub = path_join(dir, "a/b");
	err_clear(&e);
	assert_int_equal(path_private_dir(sub, &e), 0);
	assert_int_equal(chmod(sub, 0750), 0);
	err_clear(&e);
	assert_int_equal(path_private_dir(sub, &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), "chmod 700"));
	rmdir(sub);
	free(sub);
	sub = path_join(dir, "a");
	rmdir(sub);
	free(sub);
	rmdir(dir);
}

/*
 * The directory URL rule: https:// to anything, http:// only to a
 * loopback address written plainly.
 */
static void
test_directory_url(void **state)
{
	static const struct {
		const char *url;
		int ok;
		const char *msg;        /* part of the refusal */
	} cases[] = {
		{ "https://x", 1, NULL },
		{ "https://dir.example.org:8443/base", 1, NULL },
		{ "HTTPS://dir.example.org", 1, NULL },
		{ "https://user@dir.example.org", 1, NULL },
		{ "http://127.0.0.1:8080", 1, NULL },
		{ "http://127.0.0.1:8080/", 1, NULL },
		{ "http://127.0.0.1", 1, NULL },
		{ "http://127.9.9.9", 1, NULL },
		{ "http://127.255.255.255:65535", 1, NULL },
		{ "http://127.0.0.0", 1, NULL },
		{ "http://[::1]:80", 1, NULL },
		{ "http://[::1]", 1, NULL },
		{ "http://[0:0:0:0:0:0:0:1]/", 1, NULL },
		{ "http://localhost", 1, NULL },
		{ "http://LOCALHOST", 1, NULL },
		{ "http://LocalHost:8080/dir", 1, NULL },
		{ "HTTP://127.0.0.1", 1, NULL },
		{ "http://dir.example.org", 0, "refusing plain http:// to "
		    "dir.example.org: the directory's answers and your session "
		    "token would travel unencrypted; use https://, or http:// "
		    "only to a loopback address (127.0.0.1, [::1], "
		    "localhost)" },
		{ "http://dir.example.org:8080/x", 0, "refusing plain http:// "
		    "to dir.example.org: " },
		{ "HTTP://dir.example.org", 0, "to dir.example.org: " },
		{ "http://10.0.0.1", 0, "to 10.0.0.1: " },
		{ "http://128.0.0.1", 0, "to 128.0.0.1: " },
		{ "http://127.0.0.1.evil.com", 0, "to 127.0.0.1.evil.com: " },
		{ "http://127.0.0.1.", 0, "to 127.0.0.1.: " },
		{ "http://localhost.", 0, "to localhost.: " },
		{ "http://localhost.evil.com", 0, "to localhost.evil.com: " },
		{ "http://evil.localhost", 0, "to evil.localhost: " },
		{ "http://127.1", 0, "to 127.1: " },
		{ "http://0127.0.0.1", 0, "to 0127.0.0.1: " },
		{ "http://127.0.0.01", 0, "to 127.0.0.01: " },
		{ "http://127.0.0.256", 0, "to 127.0.0.256: " },
		{ "http://127.0.0.1.1", 0, "to 127.0.0.1.1: " },
		{ "http://2130706433", 0, "to 2130706433: " },
		{ "http://0x7f.0.0.1", 0, "to 0x7f.0.0.1: " },
		{ "http://[::ffff:127.0.0.1]", 0, "to [::ffff:127.0.0.1]: " },
		{ "http://[::2]", 0, "to [::2]: " },
		{ "http://[::1%25lo]", 0, "to [::1%25lo]: " },
		{ "http://[::1", 0, "closed with ']'" },
		{ "http://[::1]x", 0, "port must be" },
		{ "http://127.0.0.1:", 0, "port must be" },
		{ "http://127.0.0.1:0", 0, "port must be" },
		{ "http://127.0.0.1:65536", 0, "port must be" },
		{ "http://127.0.0.1:123456", 0, "port must be" },
		{ "http://127.0.0.1:80x", 0, "port must be" },
		{ "http://127.0.0.1:8080:80", 0, "port must be" },
		{ "http://user@127.0.0.1", 0, "must not carry a user name" },
		{ "http://user:pw@127.0.0.1:8080", 0, "must not carry" },
		{ "http://127.0.0.1@dir.example.org", 0, "must not carry" },
		{ "http://dir.example.org@127.0.0.1", 0, "must not carry" },
		{ "http://127.0.0.1\\@dir.example.org", 0, "backslash" },
		{ "http://127.0.0.1\\.evil.com", 0, "backslash" },
		{ "http://127.0.0.1 .evil.com", 0, "space" },
		{ "http://", 0, "names no host" },
		{ "http:///v1", 0, "names no host" },
		{ "http://:8080", 0, "names no host" },
		{ "ftp://127.0.0.1", 0, "must start with https://" },
		{ "127.0.0.1:8080", 0, "must start with https://" },
		{ "", 0, "must start with https://" },
		{ "https:/x", 0, "must start with https://" },
	};
	struct agent_config c;
	struct err_ctx e;
	struct dirc *dc = NULL;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&e);
		r = dirc_url_check(cases[i].url, &e);
		if (cases[i].ok ? r != 0 : (r != ERR_CONFIG ||
		    strstr(err_msg(&e), cases[i].msg) == NULL))
			fail_msg("case %zu '%s': r=%d msg '%s'", i,
			    cases[i].url, r, err_msg(&e));
		/* The agent's setting (and so --directory) says the same. */
		agent_config_init(&c);
		err_clear(&e);
		r = agent_config_set(&c, "directory", cases[i].url,
		    "--directory", &e);
		if (cases[i].url[0] != '\0' && (cases[i].ok ? r != 0 :
		    (r != ERR_CONFIG || strncmp(err_msg(&e), "--directory: ",
		    13) != 0 || strstr(err_msg(&e), cases[i].msg) == NULL)))
			fail_msg("agent_config_set case %zu '%s': r=%d "
			    "msg '%s'", i, cases[i].url, r, err_msg(&e));
		if (!cases[i].ok)
			assert_null(c.directory);
		agent_config_free(&c);
		/* And the client refuses what the rule refuses. */
		err_clear(&e);
		r = dirc_new(cases[i].url, NULL, &dc, &e);
		if (cases[i].ok ? r != 0 : r != ERR_CONFIG)
			fail_msg("dirc_new case %zu '%s': r=%d msg '%s'", i,
			    cases[i].url, r, err_msg(&e));
		if (!cases[i].ok)
			assert_null(dc);
		dirc_free(dc);
		dc = NULL;
	}
}

/* One parser decides which backend a `token` setting names: the specs it
 * takes, and the config takes them too. */
static void
test_token_spec_good(void **state)
{
	static const struct {
		const char *spec;
		enum agent_token_kind kind;
		const char *backend;
		size_t pin_max;
	} good[] = {
		{ "tpm2", AGENT_TOKEN_TPM2, "tpm2", 32 },
		{ "pkcs11:", AGENT_TOKEN_PKCS11, "pkcs11", 0 },
		{ "pkcs11:token=card?module-name=softhsm2", AGENT_TOKEN_PKCS11,
		    "pkcs11", 0 },
		{ "pkcs11:token=devid;object=sig?pin-value=1234",
		    AGENT_TOKEN_PKCS11, "pkcs11", 0 },
	};
	struct agent_token_spec spec;
	struct agent_config c;
	struct err_ctx e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err_clear(&e);
		memset(&spec, 0xa5, sizeof(spec));
		if (agent_token_spec_parse(good[i].spec, &spec, &e) != 0)
			fail_msg("good case %zu '%s': %s", i, good[i].spec,
			    err_msg(&e));
		assert_int_equal(spec.kind, good[i].kind);
		assert_string_equal(spec.backend, good[i].backend);
		assert_int_equal(spec.pin_max, good[i].pin_max);
		/* The config takes what the parser takes. */
		agent_config_init(&c);
		assert_int_equal(agent_config_set(&c, "token", good[i].spec,
		    "x.conf", &e), 0);
		assert_string_equal(c.token, good[i].spec);
		agent_config_free(&c);
	}
}

/* The specs the parser refuses, with out untouched, and no spec at all. */
static void
test_token_spec_bad(void **state)
{
	static const char *const bad[] = {
		"", "tpm", "tpm3", "TPM2", "tpm2 ", " tpm2", "tpm2:",
		"tpm2:swtpm:path=/x/sock", "pkcs11", "PKCS11:token=x",
		"pkcs:token=x", " pkcs11:token=x", "p11-kit:token=x",
	};
	struct agent_token_spec spec, untouched;
	struct err_ctx e;
	size_t i;

	(void)state;
	memset(&untouched, 0xa5, sizeof(untouched));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		memset(&spec, 0xa5, sizeof(spec));
		if (agent_token_spec_parse(bad[i], &spec, &e) != ERR_CONFIG ||
		    strcmp(err_msg(&e), "token must be 'tpm2' or a 'pkcs11:' "
		    "URI") != 0)
			fail_msg("bad case %zu '%s': msg '%s'", i, bad[i],
			    err_msg(&e));
		assert_memory_equal(&spec, &untouched, sizeof(spec));
	}
	err_clear(&e);
	assert_int_equal(agent_token_spec_parse(NULL, &spec, &e), ERR_CONFIG);
	assert_string_equal(err_msg(&e), "no token configured: give --token "
	    "tpm2 or --token 'pkcs11:...'");
}

/* The config puts the file and line in front of the parser's refusal (the
 * empty value is refused before the parser sees it). */
static void
test_token_spec_config(void **state)
{
	struct agent_config c;
	struct err_ctx e;

	(void)state;
	agent_config_init(&c);
	err_clear(&e);
	assert_int_equal(agent_config_set(&c, "token", "tpm2:x", "x.conf:3",
	    &e), ERR_CONFIG);
	assert_string_equal(err_msg(&e), "x.conf:3: token must be 'tpm2' or a "
	    "'pkcs11:' URI");
	assert_null(c.token);
	err_clear(&e);
	assert_int_equal(agent_config_set(&c, "token", "", "x.conf:4", &e),
	    ERR_CONFIG);
	assert_string_equal(err_msg(&e), "x.conf:4: token is empty");
	agent_config_free(&c);
}

/* agent_token_init refuses the same specs and names the backend. */
static void
test_token_spec_init(void **state)
{
	struct agent_token at;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(agent_token_init(&at, "tpm3", NULL, "/nonexistent",
	    0, &e), ERR_CONFIG);
	assert_string_equal(err_msg(&e), "token must be 'tpm2' or a "
	    "'pkcs11:' URI");
	agent_token_free(&at);
	err_clear(&e);
	assert_int_equal(agent_token_init(&at, NULL, NULL, "/nonexistent",
	    0, &e), ERR_CONFIG);
	agent_token_free(&at);
	err_clear(&e);
	assert_int_equal(agent_token_init(&at, "tpm2", "swtpm:path=/x", "/x",
	    0, &e), 0);
	assert_string_equal(at.backend, "tpm2");
	assert_int_equal(at.parsed.kind, AGENT_TOKEN_TPM2);
	assert_null(at.t);
	agent_token_free(&at);
	assert_int_equal(agent_token_init(&at, "pkcs11:token=card", NULL, "/x",
	    0, &e), 0);
	assert_string_equal(at.backend, "pkcs11");
	assert_int_equal(at.parsed.kind, AGENT_TOKEN_PKCS11);
	agent_token_free(&at);
}

/* --- witnesses of the transparency log --- */

/* A log's vkey (type 0x01): not a witness. */
#define LOG_VKEY "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4" \
	"izWy10TW"

/* A fresh witness vkey named name into out. */
static void
witness_vkey(const char *name, char *out, size_t size)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct tlog_vkey v;

	assert_non_null(k);
	assert_int_equal(tlog_vkey_cosigner(name, k, &v, NULL), 0);
	assert_int_equal(tlog_vkey_format(&v, out, size), 0);
	EVP_PKEY_free(k);
}

static void
test_witness_parse(void **state)
{
	char w1[TLOG_VKEY_MAX * 2], w2[TLOG_VKEY_MAX * 2], w3[TLOG_VKEY_MAX * 2];
	char text[4096];
	struct agent_config c;
	struct tlog_policy *p;
	struct err_ctx e;

	(void)state;
	witness_vkey("w1.example", w1, sizeof(w1));
	witness_vkey("w2.example", w2, sizeof(w2));
	witness_vkey("w3.example", w3, sizeof(w3));
	p = calloc(1, sizeof(*p));
	assert_non_null(p);

	/* None: the policy is off. */
	assert_int_equal(parse(&c, "account = a@b.c\n", &e), 0);
	assert_int_equal(c.n_witness, 0);
	assert_int_equal(agent_config_tlog_policy(&c, p, &e), 0);
	assert_int_equal(p->n_witness, 0);
	agent_config_free(&c);

	/* Repeated, in order; the quorum defaults to all of them. */
	snprintf(text, sizeof(text), "witness = %s\nwitness=%s\n"
	    "witness = %s\n", w1, w2, w3);
	assert_int_equal(parse(&c, text, &e), 0);
	assert_int_equal(c.n_witness, 3);
	assert_string_equal(c.witness[0], w1);
	assert_string_equal(c.witness[2], w3);
	assert_int_equal(c.witness_quorum, 0);
	c.max_stale = 77;
	assert_int_equal(agent_config_tlog_policy(&c, p, &e), 0);
	assert_int_equal(p->n_witness, 3);
	assert_int_equal(p->quorum, 3);
	assert_int_equal(p->max_stale, 77);
	assert_string_equal(p->witness[1].name, "w2.example");
	assert_int_equal(agent_config_finish(&c, 0, &e), 0);
	agent_config_free(&c);

	/* An explicit quorum. */
	snprintf(text, sizeof(text), "witness = %s\nwitness = %s\n"
	    "witness_quorum = 1\n", w1, w2);
	assert_int_equal(parse(&c, text, &e), 0);
	assert_int_equal(agent_config_tlog_policy(&c, p, &e), 0);
	assert_int_equal(p->quorum, 1);
	agent_config_free(&c);

	/* A quorum larger than the witnesses, or without any. */
	snprintf(text, sizeof(text), "witness = %s\nwitness_quorum = 2\n",
	    w1);
	assert_int_equal(parse(&c, text, &e), 0);
	assert_int_equal(agent_config_finish(&c, 0, &e), ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "witness_quorum"));
	err_clear(&e);
	assert_int_equal(agent_config_tlog_policy(&c, p, &e), ERR_CONFIG);
	agent_config_free(&c);
	assert_int_equal(parse(&c, "witness_quorum = 1\n", &e), 0);
	assert_int_equal(agent_config_tlog_policy(&c, p, &e), ERR_CONFIG);
	agent_config_free(&c);
	free(p);
}

static void
test_witness_bad(void **state)
{
	char w1[TLOG_VKEY_MAX * 2], text[4096], bad[TLOG_VKEY_MAX * 2];
	struct agent_config c;
	struct err_ctx e;
	size_t i;

	(void)state;
	witness_vkey("w1.example", w1, sizeof(w1));
	/* Given twice. */
	snprintf(text, sizeof(text), "witness = %s\nwitness = %s\n", w1, w1);
	assert_int_equal(parse(&c, text, &e), ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "test.conf:2"));
	assert_non_null(strstr(err_msg(&e), "twice"));
	agent_config_free(&c);
	/* A log's key, garbage, a wrong key id, empty. */
	assert_int_equal(parse(&c, "witness = " LOG_VKEY "\n", &e),
	    ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "test.conf:1"));
	agent_config_free(&c);
	assert_int_equal(parse(&c, "witness = nonsense\n", &e), ERR_CONFIG);
	agent_config_free(&c);
	snprintf(bad, sizeof(bad), "%s", w1);
	/* The key id follows the first '+': flip one of its digits. */
	i = strchr(bad, '+') - bad + 1;
	bad[i] = bad[i] == '0' ? '1' : '0';
	snprintf(text, sizeof(text), "witness = %s\n", bad);
	assert_int_equal(parse(&c, text, &e), ERR_CONFIG);
	agent_config_free(&c);
	assert_int_equal(parse(&c, "witness =\n", &e), ERR_CONFIG);
	agent_config_free(&c);
	/* Quorum out of range. */
	assert_int_equal(parse(&c, "witness_quorum = 0\n", &e), ERR_CONFIG);
	agent_config_free(&c);
	assert_int_equal(parse(&c, "witness_quorum = 17\n", &e), ERR_CONFIG);
	agent_config_free(&c);
	/* Other keys still may not repeat. */
	assert_int_equal(parse(&c, "witness_quorum = 1\nwitness_quorum = 1\n",
	    &e), ERR_CONFIG);
	agent_config_free(&c);
	/* At most TLOG_WITNESS_MAX. */
	agent_config_init(&c);
	for (i = 0; i < TLOG_WITNESS_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "w%zu", i);
		witness_vkey(name, text, sizeof(text));
		assert_int_equal(agent_config_set(&c, "witness", text, "--witness",
		    &e), 0);
	}
	witness_vkey("one-more", text, sizeof(text));
	assert_int_equal(agent_config_set(&c, "witness", text, "--witness", &e),
	    ERR_CONFIG);
	assert_int_equal(c.n_witness, TLOG_WITNESS_MAX);
	agent_config_free(&c);
}

/* Witnesses given as flags replace the file's; init writes them. */
static void
test_witness_flags_write(void **state)
{
	char w1[TLOG_VKEY_MAX * 2], w2[TLOG_VKEY_MAX * 2], text[4096];
	char dir[64], *path;
	struct agent_config c, d;
	struct err_ctx e;
	uint64_t locked;

	(void)state;
	witness_vkey("w1.example", w1, sizeof(w1));
	witness_vkey("w2.example", w2, sizeof(w2));
	agent_config_init(&c);
	err_clear(&e);
	assert_int_equal(agent_config_set(&c, "witness", w2, "--witness", &e),
	    0);
	locked = (uint64_t)1 << agent_config_key_index("witness");
	snprintf(text, sizeof(text), "witness = %s\n", w1);
	assert_int_equal(agent_config_parse(&c, text, strlen(text), "f",
	    locked, &e), 0);
	assert_int_equal(c.n_witness, 1);
	assert_string_equal(c.witness[0], w2);
	/* Copies replace. */
	agent_config_init(&d);
	assert_int_equal(agent_config_set(&d, "witness", w1, NULL, &e), 0);
	assert_int_equal(agent_config_copy_witnesses(&d, &c), 0);
	assert_int_equal(d.n_witness, 1);
	assert_string_equal(d.witness[0], w2);
	agent_config_free(&d);

	/* Written and read back with the quorum. */
	assert_int_equal(agent_config_set(&c, "witness", w1, NULL, &e), 0);
	assert_int_equal(agent_config_set(&c, "witness_quorum", "1", NULL, &e),
	    0);
	snprintf(dir, sizeof(dir), "%s/devid-cfg-XXXXXX", P_tmpdir);
	assert_non_null(mkdtemp(dir));
	path = path_join(dir, "agent.conf");
	assert_non_null(path);
	assert_int_equal(agent_config_write(&c, path, &e), 0);
	agent_config_init(&d);
	assert_int_equal(agent_config_load(&d, path, 0, &e), 0);
	assert_int_equal(d.n_witness, 2);
	assert_string_equal(d.witness[0], w2);
	assert_string_equal(d.witness[1], w1);
	assert_int_equal(d.witness_quorum, 1);
	agent_config_free(&d);
	/* Without witnesses nothing of them is written. */
	agent_config_free(&c);
	agent_config_init(&c);
	assert_int_equal(agent_config_write(&c, path, &e), 0);
	agent_config_init(&d);
	assert_int_equal(agent_config_load(&d, path, 0, &e), 0);
	assert_int_equal(d.n_witness, 0);
	assert_int_equal(d.witness_quorum, 0);
	agent_config_free(&d);
	agent_config_free(&c);
	unlink(path);
	free(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_flags_win),
		cmocka_unit_test(test_require_endorsement),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_write_roundtrip),
		cmocka_unit_test(test_xdg),
		cmocka_unit_test(test_private_dir),
		cmocka_unit_test(test_directory_url),
		cmocka_unit_test(test_token_spec_good),
		cmocka_unit_test(test_token_spec_bad),
		cmocka_unit_test(test_token_spec_config),
		cmocka_unit_test(test_token_spec_init),
		cmocka_unit_test(test_witness_parse),
		cmocka_unit_test(test_witness_bad),
		cmocka_unit_test(test_witness_flags_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
