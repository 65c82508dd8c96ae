/*
 * test_msgreplay.c - devid-msg's replay store: what was added is found
 * again after a reopen, a redelivery keeps its inbox seq, damaged lines
 * are skipped, the store stays within its bound and the file is
 * compacted, and bad input is refused.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "errors.h"
#include "msg-replay.h"

#define DEV1 "1111111111111111111111111111111111111111111111111111111111111111"
#define DEV2 "2222222222222222222222222222222222222222222222222222222222222222"

struct fx {
	char dir[256];
	char path[320];
};

/* A new directory under $TMPDIR (or the system's temporary directory). */
static void
tmp_dir(char *out, size_t len, const char *name)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base != '/')
		base = P_tmpdir;
	snprintf(out, len, "%s/%s.XXXXXX", base, name);
	assert_non_null(mkdtemp(out));
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	tmp_dir(f->dir, sizeof(f->dir), "devid-msgr");
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, MSG_REPLAY_FILE);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
id_of(unsigned int n, uint8_t id[16])
{
	memset(id, 0, 16);
	id[0] = (uint8_t)(n >> 8);
	id[1] = (uint8_t)n;
	id[15] = 0xa5;
}

static size_t
lines_in(const char *path)
{
	FILE *fp = fopen(path, "r");
	size_t n = 0;
	int c;

	if (fp == NULL)
		return 0;
	while ((c = fgetc(fp)) != EOF)
		n += c == '\n';
	fclose(fp);
	return n;
}

static void
test_add_find_reopen(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint8_t id[16];
	uint64_t q = 0;

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 0, &rp, &e), 0);
	id_of(1, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 17, 1764400000, &e), 0);
	assert_int_equal(msg_replay_find(rp, DEV1, id, &q), 1);
	assert_int_equal(q, 17);
	/* Keyed by device and id together. */
	assert_int_equal(msg_replay_find(rp, DEV2, id, NULL), 0);
	msg_replay_free(rp);
	rp = NULL;
	assert_int_equal(msg_replay_open(f->path, 0, &rp, &e), 0);
	assert_int_equal(msg_replay_find(rp, DEV1, id, &q), 1);
	assert_int_equal(q, 17);
	id_of(2, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	msg_replay_free(rp);
}

static void
test_damaged_lines_skipped(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint8_t id[16];
	FILE *fp;

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 0, &rp, &e), 0);
	id_of(1, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 1, 1, &e), 0);
	msg_replay_free(rp);
	rp = NULL;
	assert_non_null(fp = fopen(f->path, "a"));
	fputs("{\"device\":\"" DEV2 "\",\"id\":\"AAAA\n", fp);  /* cut short */
	fputs("{\"device\":\"" DEV2 "\",\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\","
	    "\"qseq\":1,\"time\":1,\"extra\":1}\n", fp);       /* unknown key */
	fputs("not json at all\n", fp);
	fclose(fp);
	id_of(2, id);
	assert_int_equal(msg_replay_open(f->path, 0, &rp, &e), 0);
	assert_int_equal(rp->n, 1);
	assert_int_equal(msg_replay_add(rp, DEV2, id, 2, 2, &e), 0);
	assert_int_equal(msg_replay_find(rp, DEV2, id, NULL), 1);
	id_of(1, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	msg_replay_free(rp);
}

static void
test_bounded_and_compacted(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint8_t id[16];
	unsigned int i;

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 10, &rp, &e), 0);
	for (i = 0; i < 25; i++) {
		id_of(i, id);
		assert_int_equal(msg_replay_add(rp, DEV1, id, i, i, &e), 0);
		assert_true(rp->n <= 10);
		assert_true(lines_in(f->path) < 20);
	}
	/* The newest are kept, the oldest forgotten. */
	id_of(24, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	id_of(15, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	id_of(3, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	msg_replay_free(rp);
	rp = NULL;
	assert_int_equal(msg_replay_open(f->path, 10, &rp, &e), 0);
	id_of(24, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	assert_true(rp->n <= 10);
	msg_replay_free(rp);
}

static void
test_bad_input(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint8_t id[16] = { 0 };
	char big[64];
	FILE *fp;
	size_t i;

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 0, &rp, &e), 0);
	assert_int_equal(msg_replay_add(rp, "not-an-id", id, 1, 1, &e),
	    ERR_FORMAT);
	assert_int_equal(msg_replay_add(rp, "ABCD111111111111111111111111111111"
	    "111111111111111111111111111111", id, 1, 1, &e), ERR_FORMAT);
	msg_replay_free(rp);
	rp = NULL;
	/* A file far beyond its bound is refused, not read. */
	assert_non_null(fp = fopen(f->path, "w"));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < (2 * 2 + 16) * MSG_REPLAY_LINE_MAX / 63 + 10; i++)
		fputs(big, fp);
	fclose(fp);
	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 2, &rp, &e), ERR_TOO_LARGE);
	assert_null(rp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_find_reopen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damaged_lines_skipped,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_and_compacted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
