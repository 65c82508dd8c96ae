/*
 * test_dir_pool.c - the bounded worker pool: every accepted job runs,
 * a full queue is refused at once, stopping runs what was queued.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dir-pool.h"
#include "errors.h"

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
	int ran;
};

/* Blocks until the gate opens, then counts itself. */
static void
gated_job(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	g->ran++;
	pthread_mutex_unlock(&g->lock);
}

static void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void
test_bounded_queue(void **state)
{
	struct dir_pool *p = NULL;
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	    0, 0 };
	struct err_ctx e;
	int accepted = 0, refused = 0, i, r;

	(void)state;
	err_clear(&e);
	assert_int_equal(dir_pool_new(1, 2, &p, &e), 0);
	/* One job runs (blocked), two wait, the rest are refused. */
	for (i = 0; i < 10; i++) {
		r = dir_pool_submit(p, gated_job, &g);
		if (r == 0)
			accepted++;
		else if (r == ERR_TOO_LARGE)
			refused++;
	}
	assert_true(accepted >= 2 && accepted <= 3);
	assert_int_equal(accepted + refused, 10);
	assert_true(dir_pool_waiting(p) <= 2);
	gate_open(&g);
	/* Stopping runs everything accepted. */
	dir_pool_free(p);
	assert_int_equal(g.ran, accepted);
}

static void
test_runs_all_and_args(void **state)
{
	struct dir_pool *p = NULL;
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	    1, 0 };
	struct err_ctx e;
	int i, n = 0;

	(void)state;
	err_clear(&e);
	assert_int_equal(dir_pool_new(dir_pool_default_threads(), 1000, &p,
	    &e), 0);
	for (i = 0; i < 500; i++)
		if (dir_pool_submit(p, gated_job, &g) == 0)
			n++;
	dir_pool_free(p);
	assert_int_equal(g.ran, n);
	assert_true(n > 0);
	dir_pool_free(NULL);
}

static void
test_bad_arguments(void **state)
{
	struct dir_pool *p = NULL;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(dir_pool_new(0, 1, &p, &e), ERR_INVALID_ARG);
	assert_int_equal(dir_pool_new(1, 0, &p, &e), ERR_INVALID_ARG);
	assert_int_equal(dir_pool_new(DIR_POOL_THREADS_MAX + 1, 1, &p, &e),
	    ERR_INVALID_ARG);
	assert_null(p);
	assert_true(dir_pool_default_threads() >= 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded_queue),
		cmocka_unit_test(test_runs_all_and_args),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
