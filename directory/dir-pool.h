/*
 * dir-pool.h - a small bounded pool of worker threads.
 *
 * The directory runs its expensive, CPU-bound work (scrypt password
 * checks) here rather than on the HTTP threads, so that a flood of such
 * work can slow down only itself: a request that needs no password never
 * waits behind one.  The queue is bounded; a full queue is refused at once
 * (the caller answers 503) instead of growing without limit.  Workers run
 * at a lower CPU priority than the rest of the process.
 */
#ifndef DEVID_DIR_POOL_H
#define DEVID_DIR_POOL_H

#include "errors.h"

#define DIR_POOL_THREADS_MAX 64
#define DIR_POOL_QUEUE_DEFAULT 64
#define DIR_POOL_QUEUE_MAX 100000
#define DIR_POOL_NICE 10        /* added to the workers' nice value */

struct dir_pool;

/* A job: runs once on a worker thread with the argument it was given. */
typedef void (*dir_pool_fn)(void *arg);

/* The number of online processors (at least 1, at most the maximum). */
unsigned int dir_pool_default_threads(void);

/*
 * Starts threads workers (1..DIR_POOL_THREADS_MAX) and a queue of at most
 * queue_max waiting jobs (1..DIR_POOL_QUEUE_MAX).  0 with *out set, or
 * ERR_INVALID_ARG, ERR_ALLOC, ERR_INTERNAL with a sentence in e.
 */
int dir_pool_new(unsigned int threads, unsigned int queue_max,
    struct dir_pool **out, struct err_ctx *e);

/*
 * Queues fn(arg).  0 when it will run; ERR_TOO_LARGE when queue_max jobs
 * are already waiting, ERR_DENIED once the pool is stopping: then fn is
 * never called and arg stays the caller's.
 */
int dir_pool_submit(struct dir_pool *p, dir_pool_fn fn, void *arg);

/* Jobs waiting now (not counting those running). */
unsigned int dir_pool_waiting(struct dir_pool *p);

/*
 * Refuses new jobs, runs every job already queued, joins the workers and
 * frees p.  NULL is fine.
 */
void dir_pool_free(struct dir_pool *p);

#endif /* DEVID_DIR_POOL_H */
