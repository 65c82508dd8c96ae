/*
 * test_msgreplay.c - devid-msg's replay store: what was added is found
 * again after a reopen, a redelivery keeps its inbox seq, damaged lines
 * are skipped, entries are kept for the horizon (and the window's edges),
 * a full store refuses instead of forgetting, the file is compacted, and
 * bad input is refused.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "errors.h"
#include "msg-replay.h"

#define DEV1 "1111111111111111111111111111111111111111111111111111111111111111"
#define DEV2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H MSG_REPLAY_HORIZON_S
#define AHEAD MSG_REPLAY_FUTURE_S

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
	assert_int_equal(msg_replay_add(rp, DEV1, id, 17, (uint64_t)time(NULL),
	    &e), 0);
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

	uint64_t now = (uint64_t)time(NULL);

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 0, &rp, &e), 0);
	id_of(1, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 1, now, &e), 0);
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
	assert_int_equal(msg_replay_add(rp, DEV2, id, 2, now, &e), 0);
	assert_int_equal(msg_replay_find(rp, DEV2, id, NULL), 1);
	id_of(1, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	msg_replay_free(rp);
}

/* The window at now: [now - horizon, now + 300 s], edges included. */
static void
test_window_edges(void **state)
{
	uint64_t now = (uint64_t)time(NULL);
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(msg_replay_window(0, now, now, &e), 0);
	assert_int_equal(msg_replay_window(0, now - H, now, &e), 0);
	assert_int_equal(msg_replay_window(0, now - H - 1, now, &e),
	    ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "outside the replay window"));
	err_clear(&e);
	assert_int_equal(msg_replay_window(0, now + AHEAD, now, &e), 0);
	assert_int_equal(msg_replay_window(0, now + AHEAD + 1, now, &e),
	    ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "ahead"));
	err_clear(&e);
	assert_int_equal(msg_replay_window(3600, now - 3600, now, &e), 0);
	assert_int_equal(msg_replay_window(3600, now - 3601, now, &e),
	    ERR_STALE);
}

/*
 * An entry is kept for the horizon and the 300 s a message may be ahead,
 * counted from when it was handled: up to its last second, and forgotten
 * after, in memory and when the file is read again.
 */
static void
test_horizon(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint64_t now = (uint64_t)time(NULL), keep = H + AHEAD;
	uint8_t id[16];

	err_clear(&e);
	assert_int_equal(msg_replay_open_at(f->path, 0, 0, now - keep - 10,
	    &rp, &e), 0);
	id_of(1, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 1, now - keep - 1, &e),
	    0);
	id_of(2, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 2, now - keep, &e), 0);
	msg_replay_free(rp);
	rp = NULL;
	/* Read back now: the first left the horizon a second ago. */
	assert_int_equal(msg_replay_open_at(f->path, 0, 0, now, &rp, &e), 0);
	assert_int_equal(rp->n, 1);
	id_of(1, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	id_of(2, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	/* Adding a second later forgets the second one too. */
	id_of(3, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 3, now + 1, &e), 0);
	id_of(2, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	assert_int_equal(rp->n, 1);
	msg_replay_free(rp);
	rp = NULL;
	/*
	 * A deleted store remembers nothing; what it would have kept is
	 * what the window still admits: a message handled when the entry
	 * was written was sent at most 300 s later, and is outside the
	 * window by the time the entry expires.
	 */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(msg_replay_open_at(f->path, 0, 0, now, &rp, &e), 0);
	assert_int_equal(rp->n, 0);
	assert_int_equal(msg_replay_window(0, (now - keep - 1) + AHEAD, now,
	    &e), ERR_STALE);
	msg_replay_free(rp);
}

/* A full store refuses one more entry of the horizon (and says until
 * when), forgetting none; once entries leave the horizon there is room. */
static void
test_full_refuses(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint64_t now = (uint64_t)time(NULL);
	uint8_t id[16];
	unsigned int i;

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 3, &rp, &e), 0);
	for (i = 0; i < 3; i++) {
		id_of(i, id);
		assert_int_equal(msg_replay_add(rp, DEV1, id, i, now - 10 + i,
		    &e), 0);
	}
	id_of(3, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 3, now, &e), ERR_QUOTA);
	assert_non_null(strstr(err_msg(&e), "is full"));
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	assert_int_equal(rp->n, 3);
	assert_int_equal(lines_in(f->path), 3);
	for (i = 0; i < 3; i++) {
		id_of(i, id);
		assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 1);
	}
	/* The first leaves the horizon: room for one more. */
	err_clear(&e);
	id_of(3, id);
	assert_int_equal(msg_replay_add(rp, DEV1, id, 3, now - 10 + H + AHEAD +
	    1, &e), 0);
	id_of(0, id);
	assert_int_equal(msg_replay_find(rp, DEV1, id, NULL), 0);
	assert_int_equal(rp->n, 3);
	msg_replay_free(rp);
}

/* Entries that leave the horizon do not pile up in the file. */
static void
test_compacted(void **state)
{
	struct fx *f = *state;
	struct msg_replay *rp = NULL;
	struct err_ctx e;
	uint64_t t = (uint64_t)time(NULL);
	uint8_t id[16];
	unsigned int i;

	err_clear(&e);
	assert_int_equal(msg_replay_open(f->path, 10, &rp, &e), 0);
	for (i = 0; i < MSG_REPLAY_COMPACT_SLACK + 64; i++) {
		id_of(i, id);
		assert_int_equal(msg_replay_add(rp, DEV1, id, i, t, &e), 0);
		t += H + AHEAD + 1;
		assert_true(rp->n <= 1);
		assert_true(lines_in(f->path) <=
		    2 * rp->n + MSG_REPLAY_COMPACT_SLACK);
	}
	assert_true(lines_in(f->path) < 64 + 2);
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
	for (i = 0; i < (2 * 2 + MSG_REPLAY_COMPACT_SLACK + 16) *
	    MSG_REPLAY_LINE_MAX / 63 + 10; i++)
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
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test_setup_teardown(test_horizon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_refuses, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_compacted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
