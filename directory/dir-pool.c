/*
 * dir-pool.c - the bounded worker pool (see dir-pool.h).
 *
 * One mutex guards a ring of waiting jobs; workers sleep on a condition
 * variable.  Stopping lets the workers empty the ring before they exit, so
 * that every accepted job runs and its caller hears back.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dir-pool.h"

struct pool_job {
	dir_pool_fn fn;
	void *arg;
};

struct dir_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pool_job *ring;
	unsigned int cap, head, count;
	int stopping;
	pthread_t *threads;
	unsigned int n_threads;
};

unsigned int
dir_pool_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	if (n > DIR_POOL_THREADS_MAX)
		return DIR_POOL_THREADS_MAX;
	return (unsigned int)n;
}

static void *
worker_main(void *arg)
{
	struct dir_pool *p = arg;
	struct pool_job job;

	/* Linux keeps a nice value per thread: only the workers yield. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
	    getpriority(PRIO_PROCESS, 0) + DIR_POOL_NICE);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->count == 0 && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->count == 0)
			break;
		job = p->ring[p->head];
		p->head = (p->head + 1) % p->cap;
		p->count--;
		pthread_mutex_unlock(&p->lock);
		job.fn(job.arg);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int
dir_pool_new(unsigned int threads, unsigned int queue_max,
    struct dir_pool **out, struct err_ctx *e)
{
	struct dir_pool *p;
	unsigned int i;

	if (threads < 1 || threads > DIR_POOL_THREADS_MAX || queue_max < 1 ||
	    queue_max > DIR_POOL_QUEUE_MAX || out == NULL)
		return err_set(e, ERR_INVALID_ARG, "a worker pool needs 1 to "
		    "%d threads and a queue of 1 to %d jobs",
		    DIR_POOL_THREADS_MAX, DIR_POOL_QUEUE_MAX);
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->ring = calloc(queue_max, sizeof(*p->ring))) == NULL ||
	    (p->threads = calloc(threads, sizeof(*p->threads))) == NULL) {
		if (p != NULL)
			free(p->ring);
		free(p);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	p->cap = queue_max;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
			break;
		p->n_threads++;
	}
	if (p->n_threads != threads) {
		dir_pool_free(p);
		return err_set(e, ERR_INTERNAL, "cannot start %u worker "
		    "threads", threads);
	}
	*out = p;
	return 0;
}

int
dir_pool_submit(struct dir_pool *p, dir_pool_fn fn, void *arg)
{
	int r = 0;

	return_val_if_fail(p != NULL && fn != NULL, ERR_INVALID_ARG);
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		r = ERR_DENIED;
	} else if (p->count == p->cap) {
		r = ERR_TOO_LARGE;
	} else {
		p->ring[(p->head + p->count) % p->cap] =
		    (struct pool_job){ fn, arg };
		p->count++;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

unsigned int
dir_pool_waiting(struct dir_pool *p)
{
	unsigned int n;

	pthread_mutex_lock(&p->lock);
	n = p->count;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void
dir_pool_free(struct dir_pool *p)
{
	unsigned int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p->ring);
	free(p);
}
