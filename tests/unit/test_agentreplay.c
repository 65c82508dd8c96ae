/*
 * test_agentreplay.c - the agent's replay store, bound by time: the
 * window's edges (the horizon and 300 s ahead), ids kept exactly as long
 * as the window admits their messages, a deleted or expired store that
 * opens nothing old again, the limit that refuses rather than forgets,
 * the file read back (older lines without `sent`, damaged lines) and
 * kept small.  A struct agent holding only its settings and the store,
 * in a temporary state directory.
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

#include "agent-config.h"
#include "agent-ops.h"
#include "errors.h"

#define DEV1 "1111111111111111111111111111111111111111111111111111111111111111"
#define DEV2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H AGENT_REPLAY_HORIZON_S
#define AHEAD AGENT_REPLAY_FUTURE_S

struct fx {
	char dir[256];
	char path[320];
	struct agent_config cfg;
	struct agent a;
	uint64_t now;
};

static void
agent_fresh(struct fx *f)
{
	free(f->a.replay);
	memset(&f->a, 0, sizeof(f->a));
	f->a.cfg = &f->cfg;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *base = getenv("TMPDIR");

	assert_non_null(f);
	if (base == NULL || *base != '/')
		base = P_tmpdir;
	snprintf(f->dir, sizeof(f->dir), "%s/devid-replay.XXXXXX", base);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir,
	    AGENT_REPLAY_FILE);
	agent_config_init(&f->cfg);
	f->cfg.state_dir = f->dir;
	agent_fresh(f);
	f->now = (uint64_t)time(NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char tmp[340];

	free(f->a.replay);
	unlink(f->path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	unlink(tmp);
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
	id[15] = 0x5a;
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

/* record must succeed. */
static void
record(struct fx *f, const char *dev, unsigned int n, uint64_t sent,
    uint64_t now)
{
	struct err_ctx e;
	uint8_t id[16];

	err_clear(&e);
	id_of(n, id);
	if (agent_replay_record(&f->a, dev, id, sent, now, &e) != 0)
		fail_msg("record %u: %s", n, err_msg(&e));
}

/* agent_replay_check() of message n from dev. */
static int
check(struct fx *f, const char *dev, unsigned int n, uint64_t sent,
    uint64_t now, struct err_ctx *e)
{
	uint8_t id[16];

	err_clear(e);
	id_of(n, id);
	return agent_replay_check(&f->a, dev, id, sent, now, e);
}

/* The window: [now - horizon, now + 300 s], both edges included. */
static void
test_window_edges(void **state)
{
	struct fx *f = *state;
	uint64_t now = f->now;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(agent_replay_window(&f->a, now, now, &e), 0);
	assert_int_equal(agent_replay_window(&f->a, now - H, now, &e), 0);
	assert_int_equal(agent_replay_window(&f->a, now - H - 1, now, &e),
	    ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "outside the replay window"));
	assert_non_null(strstr(err_msg(&e), "30 days"));
	err_clear(&e);
	assert_int_equal(agent_replay_window(&f->a, now + AHEAD, now, &e), 0);
	assert_int_equal(agent_replay_window(&f->a, now + AHEAD + 1, now,
	    &e), ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "ahead of this device's clock"));
	err_clear(&e);
	assert_int_equal(agent_replay_window(&f->a, 0, now, &e), ERR_STALE);
	/* Check 4 applies it before looking for the id. */
	assert_int_equal(check(f, DEV1, 1, now - H - 1, now, &e), ERR_STALE);
	assert_int_equal(check(f, DEV1, 1, now + AHEAD + 1, now, &e),
	    ERR_STALE);
	assert_int_equal(check(f, DEV1, 1, now - H, now, &e), 0);
	/* A shorter horizon moves the edge. */
	f->a.replay_horizon_s = 86400;
	assert_int_equal(agent_replay_window(&f->a, now - 86400, now, &e), 0);
	assert_int_equal(agent_replay_window(&f->a, now - 86401, now, &e),
	    ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "86400 s"));
}

/* An id opened once is refused again, from the same device only. */
static void
test_seen_before(void **state)
{
	struct fx *f = *state;
	uint64_t now = f->now;
	struct err_ctx e;

	assert_int_equal(check(f, DEV1, 7, now - 60, now, &e), 0);
	record(f, DEV1, 7, now - 60, now);
	assert_int_equal(check(f, DEV1, 7, now - 60, now, &e), ERR_REPLAY);
	assert_non_null(strstr(err_msg(&e), "seen before"));
	assert_int_equal(check(f, DEV2, 7, now - 60, now, &e), 0);
	assert_int_equal(check(f, DEV1, 8, now - 60, now, &e), 0);
	/* And after a restart, from the file. */
	agent_fresh(f);
	assert_int_equal(agent_replay_load(&f->a, &e), 0);
	assert_int_equal(check(f, DEV1, 7, now - 60, now, &e), ERR_REPLAY);
	assert_int_equal(lines_in(f->path), 1);
}

/*
 * The store is deleted: a message opened before is within the window
 * while it is young (the store's own business), but one older than the
 * horizon is refused although no id of it is kept -- whether the store
 * was deleted, or forgot the id because it left the window.
 */
static void
test_deleted_store(void **state)
{
	struct fx *f = *state;
	uint64_t now = f->now, sent = now - 2 * 86400;
	struct err_ctx e;

	record(f, DEV1, 1, sent, now);
	assert_int_equal(unlink(f->path), 0);
	agent_fresh(f);
	assert_int_equal(agent_replay_load(&f->a, &e), 0);
	assert_int_equal(f->a.n_replay, 0);
	/* What a capture older than the horizon gets, store or no store. */
	assert_int_equal(check(f, DEV1, 2, now - H - 1, now, &e), ERR_STALE);
	/* The same message once the horizon has passed it: refused. */
	assert_int_equal(check(f, DEV1, 1, sent, sent + H + 1, &e),
	    ERR_STALE);
	/* Which is what the store, had it been kept, would have forgotten:
	 * an id is kept exactly while the window admits its message. */
	agent_fresh(f);
	record(f, DEV1, 1, sent, now);
	assert_int_equal(agent_replay_room(&f->a, sent + H, &e), 0);
	assert_int_equal(f->a.n_replay, 1);
	assert_int_equal(check(f, DEV1, 1, sent, sent + H, &e), ERR_REPLAY);
	assert_int_equal(agent_replay_room(&f->a, sent + H + 1, &e), 0);
	assert_int_equal(f->a.n_replay, 0);
	assert_int_equal(check(f, DEV1, 1, sent, sent + H + 1, &e),
	    ERR_STALE);
}

/* Reading the file back: ids that left the window are dropped, a line
 * of an older store without `sent` counts as sent now, damaged lines
 * are skipped. */
static void
test_load(void **state)
{
	struct fx *f = *state;
	uint64_t now = f->now;
	struct err_ctx e;
	FILE *fp;

	/* Written "days ago", so that some have left the window by now. */
	record(f, DEV1, 1, now - H - 3600, now - 7200);     /* gone */
	record(f, DEV1, 2, now - H + 3600, now - 7200);     /* kept */
	record(f, DEV1, 3, now + 100, now);                 /* kept */
	assert_non_null(fp = fopen(f->path, "a"));
	fputs("{\"device\":\"" DEV2 "\",\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\"}\n",
	    fp);                                            /* no sent */
	fputs("{\"device\":\"" DEV2 "\",\"id\":\"AAAA\n", fp); /* cut short */
	fputs("{\"device\":\"" DEV2 "\",\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\","
	    "\"sent\":-4}\n", fp);
	fputs("garbage\n", fp);
	fclose(fp);
	agent_fresh(f);
	assert_int_equal(agent_replay_load(&f->a, &e), 0);
	assert_int_equal(f->a.n_replay, 3);
	assert_int_equal(check(f, DEV1, 1, now - H - 3600, now, &e),
	    ERR_STALE);
	assert_int_equal(check(f, DEV1, 2, now - H + 3600, now, &e),
	    ERR_REPLAY);
	assert_int_equal(check(f, DEV1, 3, now + 100, now, &e), ERR_REPLAY);
	{
		static const uint8_t zero[16];

		err_clear(&e);
		assert_int_equal(agent_replay_check(&f->a, DEV2, zero, now - 5,
		    now, &e), ERR_REPLAY);
	}
	assert_true(f->a.replay[2].sent >= now);
}

/*
 * The limit: a full store refuses the next id (ERR_QUOTA, with what to
 * do) and forgets none of the window; once ids leave the window there is
 * room again.
 */
static void
test_limit_refuses(void **state)
{
	struct fx *f = *state;
	uint64_t now = f->now;
	struct err_ctx e;
	uint8_t id[16];
	unsigned int i;

	f->a.replay_max = 3;
	record(f, DEV1, 1, now - 86400, now);
	record(f, DEV1, 2, now - 60, now);
	record(f, DEV1, 3, now, now);
	err_clear(&e);
	assert_int_equal(agent_replay_room(&f->a, now, &e), ERR_QUOTA);
	assert_non_null(strstr(err_msg(&e), "replay store is full"));
	assert_non_null(strstr(err_msg(&e), "try again"));
	id_of(4, id);
	err_clear(&e);
	assert_int_equal(agent_replay_record(&f->a, DEV1, id, now, now, &e),
	    ERR_QUOTA);
	assert_int_equal(f->a.n_replay, 3);
	assert_int_equal(lines_in(f->path), 3);
	for (i = 1; i <= 3; i++)
		assert_int_equal(check(f, DEV1, i, now, now, &e), ERR_REPLAY);
	assert_int_equal(check(f, DEV1, 4, now, now, &e), 0);
	/* The first leaves the window: room for one. */
	assert_int_equal(agent_replay_room(&f->a, now - 86400 + H + 1, &e), 0);
	record(f, DEV1, 4, now, now - 86400 + H + 1);
	assert_int_equal(f->a.n_replay, 3);
	assert_int_equal(agent_replay_room(&f->a, now - 86400 + H + 1, &e),
	    ERR_QUOTA);
}

/* A long run of messages whose ids leave the window keeps the file
 * within twice the ids kept and the slack. */
static void
test_file_stays_small(void **state)
{
	struct fx *f = *state;
	uint64_t t = f->now;
	unsigned int i;
	struct err_ctx e;

	for (i = 0; i < AGENT_REPLAY_COMPACT_SLACK + 64; i++) {
		/* Each message was sent a horizon before the next. */
		record(f, DEV1, i, t, t);
		t += H + 1;
		assert_true(lines_in(f->path) <=
		    2 * f->a.n_replay + AGENT_REPLAY_COMPACT_SLACK);
	}
	assert_true(f->a.n_replay <= 1);
	/* It was rewritten at least once. */
	assert_true(lines_in(f->path) < 64 + 2);
	agent_fresh(f);
	assert_int_equal(agent_replay_load(&f->a, &e), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_window_edges, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_seen_before, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deleted_store, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_refuses, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_file_stays_small, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
