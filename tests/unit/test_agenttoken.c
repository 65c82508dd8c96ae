/*
 * test_agenttoken.c - the agent's PIN and password files: read only when
 * neither group nor others may access them (like ssh's key files), with
 * a refusal that says to run chmod 600 and changes nothing; the first
 * line only, within its bounds.
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

#include "agent-token.h"
#include "errors.h"

struct fx {
	char dir[256];
	char path[320];
	char link[320];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *base = getenv("TMPDIR");

	assert_non_null(f);
	if (base == NULL || *base != '/')
		base = P_tmpdir;
	snprintf(f->dir, sizeof(f->dir), "%s/devid-secret.XXXXXX", base);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/pin", f->dir);
	snprintf(f->link, sizeof(f->link), "%s/link", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->link);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Writes text to f->path with exactly mode. */
static void
put(struct fx *f, const char *text, mode_t mode)
{
	FILE *fp;

	assert_non_null(fp = fopen(f->path, "w"));
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(f->path, mode), 0);
}

/* Modes that let group or others in are refused with the command to run;
 * owner-only modes are read. */
static void
test_modes(void **state)
{
	static const mode_t refused[] = { 0644, 0640, 0604, 0660, 0606, 0610,
	    0601, 0666 };
	static const mode_t read_ok[] = { 0600, 0400, 0700 };
	struct fx *f = *state;
	struct err_ctx e;
	char out[64], want[400];
	size_t i, len;

	snprintf(want, sizeof(want), "run chmod 600 %s", f->path);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		put(f, "pin-1234\n", refused[i]);
		err_clear(&e);
		memset(out, 'x', sizeof(out));
		assert_int_equal(agent_read_secret_file(f->path, "PIN", out,
		    sizeof(out), &len, &e), ERR_DENIED);
		if (strstr(err_msg(&e), want) == NULL ||
		    strstr(err_msg(&e), "the PIN file") == NULL)
			fail_msg("mode %04o: '%s'", (unsigned int)refused[i],
			    err_msg(&e));
		assert_string_equal(out, "");
		assert_null(strstr(err_msg(&e), "pin-1234"));
	}
	for (i = 0; i < sizeof(read_ok) / sizeof(read_ok[0]); i++) {
		put(f, "pin-1234\r\nsecond line\n", read_ok[i]);
		err_clear(&e);
		len = 0;
		if (agent_read_secret_file(f->path, "password", out,
		    sizeof(out), &len, &e) != 0)
			fail_msg("mode %04o: %s", (unsigned int)read_ok[i],
			    err_msg(&e));
		assert_string_equal(out, "pin-1234");
		assert_int_equal(len, 8);
	}
	/* A symbolic link to a private file is followed; to an open one,
	 * refused. */
	assert_int_equal(symlink(f->path, f->link), 0);
	put(f, "pin-5678\n", 0600);
	err_clear(&e);
	assert_int_equal(agent_read_secret_file(f->link, "PIN", out,
	    sizeof(out), NULL, &e), 0);
	assert_string_equal(out, "pin-5678");
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(agent_read_secret_file(f->link, "PIN", out,
	    sizeof(out), NULL, &e), ERR_DENIED);
}

/* The first line: empty or too long is refused, so is a missing file. */
static void
test_first_line(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char out[8];

	put(f, "\nsecond\n", 0600);
	err_clear(&e);
	assert_int_equal(agent_read_secret_file(f->path, "password", out,
	    sizeof(out), NULL, &e), ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "holds no password"));
	put(f, "1234567", 0600);
	err_clear(&e);
	assert_int_equal(agent_read_secret_file(f->path, "PIN", out,
	    sizeof(out), NULL, &e), 0);
	assert_string_equal(out, "1234567");
	put(f, "12345678\n", 0600);
	err_clear(&e);
	assert_int_equal(agent_read_secret_file(f->path, "PIN", out,
	    sizeof(out), NULL, &e), ERR_CONFIG);
	assert_string_equal(out, "");
	unlink(f->path);
	err_clear(&e);
	assert_int_equal(agent_read_secret_file(f->path, "PIN", out,
	    sizeof(out), NULL, &e), ERR_NOT_FOUND);
}

/* pin_file: a refused file leaves the cached PIN as it was. */
static void
test_pin_file(void **state)
{
	struct fx *f = *state;
	struct agent_token at;
	struct err_ctx e;

	memset(&at, 0, sizeof(at));
	err_clear(&e);
	put(f, "pin-open\n", 0644);
	assert_int_equal(agent_token_pin_file(&at, f->path, &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), "chmod 600"));
	assert_int_equal(at.pin_set, 0);
	assert_int_equal(agent_token_set_pin(&at, "pin-old", 7, &e), 0);
	assert_int_equal(agent_token_pin_file(&at, f->path, &e), ERR_DENIED);
	assert_int_equal(at.pin_set, 1);
	assert_string_equal(at.pin, "pin-old");
	assert_int_equal(chmod(f->path, 0600), 0);
	err_clear(&e);
	assert_int_equal(agent_token_pin_file(&at, f->path, &e), 0);
	assert_string_equal(at.pin, "pin-open");
	assert_int_equal(at.pin_len, 8);
	agent_token_free(&at);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_line, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pin_file, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
