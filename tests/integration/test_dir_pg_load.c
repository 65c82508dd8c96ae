/*
 * test_dir_pg_load.c - two devid-directory processes on one PostgreSQL
 * database, under load.
 *
 * Run by tests/integration/test-dir-pg-load.sh, which starts a
 * throw-away cluster (swtpm-ci/pg-start) and passes its URI in
 * $DEVID_TEST_PG_URI and its directory in $DEVID_TEST_PG_DIR (for
 * pg-stop and pg-start); without them the test fails.  Both instances
 * are the real binary (tests/integration/dir-server-fixture), with one
 * head key (--signing-key) and --max-devices above what the load adds.
 *
 *  - one chain: 100 registrations to one account, from client threads
 *    split across both instances at once, give one log with seq 1..100
 *    that verifies from scratch under the directory key, as read through
 *    either instance, with every device in it;
 *  - kill -9 of one instance while both take registrations: every
 *    registration acknowledged (2xx) by either instance is in the logs
 *    afterwards, read through the survivor and through the killed one
 *    restarted, and every log verifies;
 *  - PostgreSQL stopped and started again under load: both instances
 *    keep running, answer 503 meanwhile (nothing else but 2xx and 429),
 *    and acknowledge registrations again afterwards without a restart of
 *    their own; every acknowledged registration is in the logs.
 *
 * No timing thresholds: the waits below are deadlines for something
 * that must happen, far above what it takes.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"
#include "dir-server-fixture.h"

#define PW "pg load test password"
#define CHAIN_ACCT "chain@example.org"
#define CHAIN_REGS 100
#define MAX_DEVICES "256"
/* Client threads per instance: the per-network limit of password
 * checks at once is 3, so these are never throttled for that. */
#define THREADS_PER_INST 3
#define N_THREADS (2 * THREADS_PER_INST)
/* On one account: a check still running counts as a failure of the
 * account, so three at once would be held back now and then. */
#define CHAIN_THREADS_PER_INST 2
#define REG_TRIES 600                /* of one registration, 429/503 */
#define RETRY_MS 20
#define MAX_ACKS_PER_THREAD 100      /* two threads per account: below
                                      * --max-devices */
#define MAX_RECS 20000              /* answers noted, 503s included */
#define PHASE_WAIT_MS 120000         /* a deadline, not a threshold */
#define ID_MAX 72

/* One registration sent, and its answer (0: none, the server gone). */
struct rec {
	char device[ID_MAX];
	char account[DEVREC_ACCOUNT_MAX + 1];
	long status;
};

/* What the load threads share. */
struct load {
	pthread_mutex_t mu;
	struct rec *recs;
	size_t n_recs;
	int stop;                        /* set by the test thread */
	unsigned int acks[2];            /* 2xx per instance */
	unsigned int unavailable[2];     /* 503 per instance */
	unsigned int lost[2];            /* no answer per instance */
	char bad[256];                   /* the first unexpected answer */
	/* The chain test: the planned devices, taken in turn. */
	struct tdev *planned;
	size_t n_planned, next_planned;
};

struct worker {
	struct load *ld;
	pthread_t tid;
	int started;
	int inst;                        /* 0 or 1 */
	const char *url;
	char account[64];
	int stop_when_lost;              /* the instance may be killed */
};

/* Set up once: the database and the shared head key. */
static const char *pg_uri;
static const char *pg_dir;
static char *key_dir;
static char key_path[600];

struct fx {
	struct tsrv *srv[2];
	struct load *ld;
	struct worker w[N_THREADS];
	struct dirc *c;
	struct acctlog_response *resp;
	struct acctlog_state st;
	int st_live;
	EVP_PKEY *dir_pub;
	struct dirc_info info;
	struct tdev reader;              /* a device to log in with */
	int has_reader;
};

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static void
load_free(struct load *ld)
{
	size_t i;

	if (ld == NULL)
		return;
	for (i = 0; i < ld->n_planned; i++)
		tdev_clear(&ld->planned[i]);
	free(ld->planned);
	free(ld->recs);
	pthread_mutex_destroy(&ld->mu);
	free(ld);
}

static int
group_setup(void **state)
{
	(void)state;
	pg_uri = getenv("DEVID_TEST_PG_URI");
	pg_dir = getenv("DEVID_TEST_PG_DIR");
	if (pg_uri == NULL || pg_dir == NULL) {
		fprintf(stderr, "run through test-dir-pg-load.sh: "
		    "DEVID_TEST_PG_URI and DEVID_TEST_PG_DIR are not set\n");
		return -1;
	}
	if ((key_dir = ttmpdir_make()) == NULL)
		return -1;
	snprintf(key_path, sizeof(key_path), "%s/head.key", key_dir);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	ttmpdir_remove(key_dir);
	key_dir = NULL;
	return 0;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	int i;

	if (fx == NULL)
		return -1;
	for (i = 0; i < 2; i++) {
		if ((fx->srv[i] = tsrv_new(0)) == NULL) {
			tsrv_free(fx->srv[0]);
			free(fx);
			return -1;
		}
	}
	*state = fx;
	return 0;
}

/* Waits for every load thread, stopping them first with stop. */
static void
workers_join(struct fx *fx, int stop)
{
	int i;

	if (fx->ld != NULL && stop) {
		pthread_mutex_lock(&fx->ld->mu);
		fx->ld->stop = 1;
		pthread_mutex_unlock(&fx->ld->mu);
	}
	for (i = 0; i < N_THREADS; i++) {
		if (fx->w[i].started)
			pthread_join(fx->w[i].tid, NULL);
		fx->w[i].started = 0;
	}
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	if (fx == NULL)
		return 0;
	workers_join(fx, 1);
	tsrv_free(fx->srv[0]);
	tsrv_free(fx->srv[1]);
	load_free(fx->ld);
	dirc_free(fx->c);
	acctlog_response_free(fx->resp);
	if (fx->st_live)
		acctlog_state_clear(&fx->st);
	EVP_PKEY_free(fx->dir_pub);
	if (fx->has_reader)
		tdev_clear(&fx->reader);
	free(fx);
	return 0;
}

/* `devid-directory ARGS... --db URI` must succeed. */
static void
tool(struct fx *fx, const char *what, const char *const *args)
{
	char out[4096];

	if (tsrv_run(fx->srv[0], args, NULL, 0, out, sizeof(out)) != 0)
		fail_msg("%s: %s", what, out);
}

/* Adds accounts with the tool (the password in a private file). */
static void
accounts_add(struct fx *fx, const char *const *names)
{
	char pwfile[600];
	const char *add[] = { "account", "add", NULL, "--db", pg_uri,
		"--scrypt-cost", "10", "--password-file", pwfile, NULL };
	FILE *f;
	size_t i;

	snprintf(pwfile, sizeof(pwfile), "%s/pw", fx->srv[0]->dir);
	assert_non_null(f = fopen(pwfile, "w"));
	fprintf(f, "%s\n", PW);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(pwfile, 0600), 0);
	for (i = 0; names[i] != NULL; i++) {
		add[2] = names[i];
		tool(fx, names[i], add);
	}
}

/*
 * Both instances on the database, with the head key (made by the first
 * test that runs), and the directory's id and key; a reader device of
 * the first account in names, registered, to log in with.
 */
static void
instances_start(struct fx *fx, const char *const *names)
{
	const char *key[] = { "key", "--db", pg_uri, "--signing-key",
		key_path, NULL };
	const char *extra[] = { "--signing-key", key_path, "--max-devices",
		MAX_DEVICES, NULL };
	struct dirc_info other;
	struct err_ctx e;
	int i;

	err_clear(&e);
	tool(fx, "key", key);
	accounts_add(fx, names);
	for (i = 0; i < 2; i++) {
		tsrv_use_db(fx->srv[i], pg_uri);
		tsrv_start(fx->srv[i], extra);
	}
	fx->c = tsrv_client(fx->srv[0]);
	assert_int_equal(dirc_info(fx->c, &fx->info, &e), 0);
	assert_int_equal(crypto_spki_import(fx->info.head_key,
	    fx->info.head_key_len, &fx->dir_pub, &e), 0);
	dirc_free(fx->c);
	fx->c = tsrv_client(fx->srv[1]);
	assert_int_equal(dirc_info(fx->c, &other, &e), 0);
	assert_string_equal(other.directory_id, fx->info.directory_id);
	assert_int_equal(tdev_make(&fx->reader, names[0], "reader", now_s()),
	    0);
	fx->has_reader = 1;
	if (dirc_register_device(fx->c, PW, &fx->reader.rec, NULL, &e) != 0)
		fail_msg("registration of the reader: %s", err_msg(&e));
	dirc_free(fx->c);
	fx->c = NULL;
}

static struct load *
load_new(size_t max_recs)
{
	struct load *ld = calloc(1, sizeof(*ld));

	assert_non_null(ld);
	assert_int_equal(pthread_mutex_init(&ld->mu, NULL), 0);
	assert_non_null(ld->recs = calloc(max_recs, sizeof(*ld->recs)));
	return ld;
}

/* Notes one answer (under ld->mu); 0 when it is one the test allows. */
static int
note_answer(struct worker *w, const struct tdev *d, long status)
{
	struct load *ld = w->ld;
	struct rec *r;
	int ok = 1;

	pthread_mutex_lock(&ld->mu);
	if (ld->n_recs < MAX_RECS) {
		r = &ld->recs[ld->n_recs++];
		snprintf(r->device, sizeof(r->device), "%s", d->rec.device);
		snprintf(r->account, sizeof(r->account), "%s", d->rec.account);
		r->status = status;
	} else {
		ok = 0;
		snprintf(ld->bad, sizeof(ld->bad), "more than %d requests",
		    MAX_RECS);
	}
	if (status >= 200 && status <= 299)
		ld->acks[w->inst]++;
	else if (status == 503)
		ld->unavailable[w->inst]++;
	else if (status == 0)
		ld->lost[w->inst]++;
	if (status != 0 && status != 429 && status != 503 &&
	    (status < 200 || status > 299)) {
		ok = 0;
		if (ld->bad[0] == '\0')
			snprintf(ld->bad, sizeof(ld->bad), "a registration "
			    "through instance %d was answered %ld", w->inst,
			    status);
	}
	if (status == 0 && !w->stop_when_lost && ld->bad[0] == '\0') {
		ok = 0;
		snprintf(ld->bad, sizeof(ld->bad), "instance %d did not "
		    "answer a registration", w->inst);
	}
	pthread_mutex_unlock(&ld->mu);
	return ok;
}

/* A thread that cannot go on: the test thread fails with why. */
static void
worker_failed(struct worker *w, const char *why)
{
	pthread_mutex_lock(&w->ld->mu);
	if (w->ld->bad[0] == '\0')
		snprintf(w->ld->bad, sizeof(w->ld->bad), "a client of instance "
		    "%d: %s", w->inst, why);
	pthread_mutex_unlock(&w->ld->mu);
}

static int
should_stop(struct load *ld)
{
	int stop;

	pthread_mutex_lock(&ld->mu);
	stop = ld->stop || ld->bad[0] != '\0';
	pthread_mutex_unlock(&ld->mu);
	return stop;
}

/* One registration of d; its HTTP status, 0 without an answer. */
static long
register_once(struct dirc *c, const struct tdev *d)
{
	struct err_ctx e;

	err_clear(&e);
	if (dirc_register_device(c, PW, &d->rec, NULL, &e) == 0)
		return dirc_last_status(c) != 0 ? dirc_last_status(c) : 201;
	return dirc_last_status(c);
}

/*
 * The chain test's threads: take the next planned device and register
 * it, again after 429 or 503, until it is acknowledged.
 */
static void *
chain_worker(void *arg)
{
	struct worker *w = arg;
	struct load *ld = w->ld;
	struct dirc *c = NULL;
	struct err_ctx e;
	const struct tdev *d;
	long status;
	int tries;

	err_clear(&e);
	if (dirc_new(w->url, NULL, &c, &e) != 0) {
		worker_failed(w, err_msg(&e));
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&ld->mu);
		d = ld->next_planned < ld->n_planned ?
		    &ld->planned[ld->next_planned++] : NULL;
		pthread_mutex_unlock(&ld->mu);
		if (d == NULL || should_stop(ld))
			break;
		for (tries = 0; tries < REG_TRIES; tries++) {
			status = register_once(c, d);
			if (!note_answer(w, d, status) ||
			    (status >= 200 && status <= 299))
				break;
			tsleep_ms(RETRY_MS);
		}
		if (should_stop(ld))
			break;
	}
	dirc_free(c);
	return NULL;
}

/*
 * The load of the other tests: new devices of w->account, one after the
 * other, until the test says stop, MAX_ACKS_PER_THREAD were
 * acknowledged, or (stop_when_lost) the instance is gone.
 */
static void *
load_worker(void *arg)
{
	struct worker *w = arg;
	struct load *ld = w->ld;
	struct dirc *c = NULL;
	struct err_ctx e;
	struct tdev d;
	char label[48];
	unsigned int acked = 0, n = 0;
	long status;
	int r;

	err_clear(&e);
	if (dirc_new(w->url, NULL, &c, &e) != 0) {
		worker_failed(w, err_msg(&e));
		return NULL;
	}
	while (acked < MAX_ACKS_PER_THREAD && !should_stop(ld)) {
		snprintf(label, sizeof(label), "load-%d-%u", w->inst, n++);
		if (tdev_make(&d, w->account, label, now_s()) != 0) {
			worker_failed(w, "cannot make a device");
			break;
		}
		status = register_once(c, &d);
		r = note_answer(w, &d, status);
		tdev_clear(&d);
		if (!r)
			break;
		if (status >= 200 && status <= 299)
			acked++;
		else if (status == 0 && w->stop_when_lost)
			break;
		else if (status == 429 || status == 503)
			tsleep_ms(RETRY_MS);
	}
	dirc_free(c);
	return NULL;
}

static void
workers_start(struct fx *fx, int n, void *(*fn)(void *),
    const char *const *accounts, int stop_when_lost)
{
	int i;

	for (i = 0; i < n; i++) {
		struct worker *w = &fx->w[i];

		w->ld = fx->ld;
		w->inst = i % 2;
		w->url = fx->srv[w->inst]->url;
		w->stop_when_lost = stop_when_lost && w->inst == 0;
		if (accounts != NULL)
			snprintf(w->account, sizeof(w->account), "%s",
			    accounts[(i / 2) % THREADS_PER_INST]);
		assert_int_equal(pthread_create(&w->tid, NULL, fn, w), 0);
		w->started = 1;
	}
}

/* A snapshot of the counters; fails the test on an unexpected answer. */
static void
counters(struct fx *fx, unsigned int acks[2], unsigned int unavailable[2])
{
	char bad[256];

	pthread_mutex_lock(&fx->ld->mu);
	memcpy(acks, fx->ld->acks, sizeof(fx->ld->acks));
	if (unavailable != NULL)
		memcpy(unavailable, fx->ld->unavailable,
		    sizeof(fx->ld->unavailable));
	memcpy(bad, fx->ld->bad, sizeof(bad));
	pthread_mutex_unlock(&fx->ld->mu);
	if (bad[0] != '\0')
		fail_msg("%s", bad);
}

/* Waits until both instances acknowledged at least min more each. */
static void
wait_acks(struct fx *fx, unsigned int min, const char *what)
{
	unsigned int start[2], now[2];
	double t0 = tmono_ms();

	counters(fx, start, NULL);
	for (;;) {
		counters(fx, now, NULL);
		if (now[0] >= start[0] + min && now[1] >= start[1] + min)
			return;
		if (tmono_ms() - t0 > PHASE_WAIT_MS)
			fail_msg("%s: %u and %u registrations acknowledged, "
			    "not %u by each instance", what, now[0] - start[0],
			    now[1] - start[1], min);
		tsleep_ms(20);
	}
}

/*
 * Fetches the whole log of account through instance inst and verifies
 * it from scratch into fx->st (state_done() after use).
 */
static void
verify_log(struct fx *fx, int inst, const char *account)
{
	struct err_ctx e;

	err_clear(&e);
	dirc_free(fx->c);
	fx->c = tsrv_login(fx->srv[inst], fx->info.directory_id, &fx->reader);
	memset(&fx->st, 0, sizeof(fx->st));
	if (acctlog_state_init(&fx->st, account, fx->info.directory_id,
	    &e) != 0)
		fail_msg("%s", err_msg(&e));
	fx->st_live = 1;
	if (dirc_get_log(fx->c, account, 0, 0, &fx->resp, &e) != 0 ||
	    acctlog_verify_update(&fx->st, fx->resp->events,
	    fx->resp->n_events, &fx->resp->head, fx->dir_pub, now_s(), 900,
	    NULL, &e) != 0)
		fail_msg("the log of %s through instance %d does not verify: "
		    "%s", account, inst, err_msg(&e));
	/* Shorter than one answer's ACCTLOG_MAX_EVENTS. */
	assert_int_equal(fx->resp->head.seq, fx->st.seq);
	acctlog_response_free(fx->resp);
	fx->resp = NULL;
}

static void
state_done(struct fx *fx)
{
	acctlog_state_clear(&fx->st);
	fx->st_live = 0;
}

/*
 * Every acknowledged registration of account is in its log, read
 * through each instance; the number of those acknowledged.
 */
static unsigned int
check_acked(struct fx *fx, const char *account)
{
	unsigned int acked = 0;
	size_t i;
	int inst;

	for (inst = 0; inst < 2; inst++) {
		verify_log(fx, inst, account);
		acked = 0;
		for (i = 0; i < fx->ld->n_recs; i++) {
			const struct rec *r = &fx->ld->recs[i];

			if (strcmp(r->account, account) != 0 ||
			    r->status < 200 || r->status > 299)
				continue;
			acked++;
			if (acctlog_state_find(&fx->st, r->device) == NULL)
				fail_msg("device %.16s of %s was acknowledged "
				    "(%ld) but is not in the log read through "
				    "instance %d", r->device, account,
				    r->status, inst);
		}
		state_done(fx);
	}
	return acked;
}

/* Both instances answer /v1/health with 200 (they still run). */
static void
both_healthy(struct fx *fx)
{
	struct err_ctx e;
	int i;

	for (i = 0; i < 2; i++) {
		err_clear(&e);
		dirc_free(fx->c);
		fx->c = tsrv_client(fx->srv[i]);
		if (dirc_health(fx->c, &e) != 0)
			fail_msg("instance %d: %s", i, err_msg(&e));
	}
	dirc_free(fx->c);
	fx->c = NULL;
}

static void
test_one_chain(void **state)
{
	struct fx *fx = *state;
	const char *names[] = { CHAIN_ACCT, NULL };
	unsigned int acks[2];
	size_t i;
	char label[32];

	instances_start(fx, names);
	fx->ld = load_new(MAX_RECS);
	assert_non_null(fx->ld->planned = calloc(CHAIN_REGS,
	    sizeof(*fx->ld->planned)));
	/* The reader is seq 1: 99 more make the hundred. */
	for (i = 0; i < CHAIN_REGS - 1; i++) {
		snprintf(label, sizeof(label), "chain-%zu", i);
		assert_int_equal(tdev_make(&fx->ld->planned[i], CHAIN_ACCT,
		    label, now_s()), 0);
		fx->ld->n_planned++;
	}
	workers_start(fx, 2 * CHAIN_THREADS_PER_INST, chain_worker, NULL, 0);
	workers_join(fx, 0);
	counters(fx, acks, NULL);
	assert_int_equal(acks[0] + acks[1], CHAIN_REGS - 1);
	/* Both took their share. */
	assert_true(acks[0] > 0 && acks[1] > 0);

	for (i = 0; i < 2; i++) {
		size_t k;

		verify_log(fx, (int)i, CHAIN_ACCT);
		assert_int_equal(fx->st.seq, CHAIN_REGS);
		assert_int_equal(fx->st.n_devices, CHAIN_REGS);
		assert_non_null(acctlog_state_find(&fx->st,
		    fx->reader.rec.device));
		for (k = 0; k < fx->ld->n_planned; k++)
			if (acctlog_state_find(&fx->st,
			    fx->ld->planned[k].rec.device) == NULL)
				fail_msg("device %zu is not in the log", k);
		state_done(fx);
	}
	print_message("%u and %u of the registrations went through the two "
	    "instances (%zu answers in all, the others 429 or 503, tried "
	    "again); one log of seq 1..%d verifies through both\n", acks[0],
	    acks[1], fx->ld->n_recs, CHAIN_REGS);
	assert_int_equal(tsrv_stop(fx->srv[0]), 0);
	assert_int_equal(tsrv_stop(fx->srv[1]), 0);
}

static void
test_kill_one_instance(void **state)
{
	struct fx *fx = *state;
	const char *names[] = { "kill0@example.org", "kill1@example.org",
		"kill2@example.org", NULL };
	unsigned int acks[2], acked = 0, lost;
	int i;

	instances_start(fx, names);
	fx->ld = load_new(MAX_RECS);
	workers_start(fx, N_THREADS, load_worker, names, 1);
	wait_acks(fx, 10, "before the kill");
	assert_int_equal(tsrv_kill(fx->srv[0]), -1);
	/* The survivor keeps acknowledging. */
	{
		unsigned int before[2], now[2];
		double t0 = tmono_ms();

		counters(fx, before, NULL);
		do {
			if (tmono_ms() - t0 > PHASE_WAIT_MS)
				fail_msg("the surviving instance acknowledged "
				    "nothing after the kill");
			tsleep_ms(20);
			counters(fx, now, NULL);
		} while (now[1] < before[1] + 10);
	}
	workers_join(fx, 1);
	counters(fx, acks, NULL);
	pthread_mutex_lock(&fx->ld->mu);
	lost = fx->ld->lost[0];
	pthread_mutex_unlock(&fx->ld->mu);

	/* Read through the survivor and the killed one restarted. */
	tsrv_restart(fx->srv[0]);
	for (i = 0; names[i] != NULL; i++)
		acked += check_acked(fx, names[i]);
	assert_int_equal(acked, acks[0] + acks[1]);
	print_message("%u registrations acknowledged by the killed instance, "
	    "%u by the other, %u left unanswered by kill -9; every "
	    "acknowledged one is in a log that verifies\n", acks[0], acks[1],
	    lost);
	assert_int_equal(tsrv_stop(fx->srv[0]), 0);
	assert_int_equal(tsrv_stop(fx->srv[1]), 0);
}

/* swtpm-ci/pg-stop or pg-start on the test's cluster. */
static void
pg_ctl(const char *what)
{
	const char *top = getenv("top_srcdir");
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "'%s/swtpm-ci/pg-%s' '%s' >/dev/null",
	    top != NULL ? top : ".", what, pg_dir);
	if (system(cmd) != 0)
		fail_msg("swtpm-ci/pg-%s failed", what);
}

static void
test_pg_restart(void **state)
{
	struct fx *fx = *state;
	const char *names[] = { "restart0@example.org",
		"restart1@example.org", "restart2@example.org", NULL };
	unsigned int acks[2], unavailable[2], acked = 0;
	double t0;
	int i;

	instances_start(fx, names);
	fx->ld = load_new(MAX_RECS);
	workers_start(fx, N_THREADS, load_worker, names, 0);
	wait_acks(fx, 5, "before PostgreSQL stopped");
	pg_ctl("stop");
	/* 503 from both meanwhile. */
	t0 = tmono_ms();
	for (;;) {
		unsigned int before[2];

		counters(fx, before, unavailable);
		if (unavailable[0] > 0 && unavailable[1] > 0)
			break;
		if (tmono_ms() - t0 > PHASE_WAIT_MS) {
			pg_ctl("start");
			fail_msg("no 503 from both instances without "
			    "PostgreSQL (%u, %u)", unavailable[0],
			    unavailable[1]);
		}
		tsleep_ms(20);
	}
	tsleep_ms(300);
	for (i = 0; i < 2; i++)
		if (kill(fx->srv[i]->pid, 0) != 0)
			fail_msg("instance %d died without PostgreSQL", i);
	pg_ctl("start");
	wait_acks(fx, 5, "after PostgreSQL came back");
	workers_join(fx, 1);
	counters(fx, acks, unavailable);
	both_healthy(fx);
	for (i = 0; names[i] != NULL; i++)
		acked += check_acked(fx, names[i]);
	assert_int_equal(acked, acks[0] + acks[1]);
	print_message("%u and %u registrations acknowledged, %u and %u "
	    "answered 503 while PostgreSQL was down; both instances served "
	    "again without a restart\n", acks[0], acks[1], unavailable[0],
	    unavailable[1]);
	assert_int_equal(tsrv_stop(fx->srv[0]), 0);
	assert_int_equal(tsrv_stop(fx->srv[1]), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_chain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_kill_one_instance, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pg_restart, setup,
		    teardown),
	};
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	r = cmocka_run_group_tests(tests, group_setup, group_teardown);
	curl_global_cleanup();
	return r;
}
