/*
 * test_dir_shutdown.c - stopping the directory while it is busy.
 *
 * The in-process server (dir-server + dir-api + the SQLite store, as in
 * test_dir_api.c) is started and stopped CYCLES times on one database,
 * and on one port whenever the system lets it bind that port again.  In
 * every cycle client threads are at work when dir_server_stop() is
 * called: registrations (HTTP Basic, a new connection each, one source
 * address 127.0.0.2, 127.0.0.3 ... per thread), message posts (a bearer
 * session on a kept-alive connection), quick reads that keep the HTTP
 * threads turning, and long-polls (an inbox that stays empty, the log of
 * an account that does not change, and the log of an account that the
 * registrations extend).  Required:
 *  - the process survives every stop;
 *  - every long-poll ends with an answer (200, or 503 while draining) or
 *    with a closed connection, and the stop returns before its drain
 *    limit, which it only reaches when a request was left behind;
 *  - no acknowledged write is lost: after each cycle every device
 *    registered with a 2xx answer is active and every message posted with
 *    a 2xx answer is queued for its recipient, and at the end every
 *    account log, replayed event by event through common/acctlog,
 *    verifies and holds every acknowledged device.
 * With DEVID_TEST_PG_URI (tests/integration/test-dir-pg-instances.sh) it
 * runs on that PostgreSQL database instead, listening for other
 * processes' changes in every cycle as devid-directory does.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "acctlog.h"
#include "devrec.h"
#include "dir-api.h"
#include "dir-auth.h"
#include "dir-key.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"

#define CYCLES 100
#define N_REG_ACCOUNTS 8
#define N_REGISTRARS 2
#define N_POSTERS 2
#define N_READERS 2
#define N_POLLERS 3
#define N_RECIPS 4                   /* cycle n posts to recipient n % 4 */
/* A poster stops at this many acknowledged messages in a cycle, which
 * keeps each sender's share of a recipient's queue under the server's
 * per-sender bound (1000 by default): CYCLES * POSTS_MAX / N_RECIPS. */
#define POSTS_MAX 30
#define N_WORKERS (N_REGISTRARS + N_POSTERS + N_READERS + N_POLLERS)
#define MAX_DEVICES 250              /* below ACCTLOG_MAX_DEVICES */
#define POLL_WAIT_S 30
#define CYCLE_WAIT_S 60              /* a cycle that makes no progress */
#define PW "shutdown test password"
#define MAIL "mail@example.org"
#define QUIET "quiet@example.org"
#define ID_MAX 96

enum work_kind {
	WORK_REGISTER,
	WORK_POST,
	WORK_READ,
	WORK_POLL_INBOX,                 /* the long-polls come last */
	WORK_POLL_QUIET_LOG,
	WORK_POLL_BUSY_LOG,
};

/* One write and the answer it got (0: none). */
struct write_rec {
	enum work_kind kind;
	int cycle;
	long status;
	char account[DIR_ACCOUNT_MAX + 1];
	char id[ID_MAX];                 /* device hex or envelope id */
	int recip;                       /* messages: the recipient */
};

/* An envelope queued for recipient recip. */
struct queued_id {
	int recip;
	char id[ID_MAX];
};

/* The PostgreSQL database to run on (DEVID_TEST_PG_URI, an empty one),
 * or NULL: a SQLite file in the fixture's directory. */
static const char *pg_uri;

struct fx {
	char *dir;
	char db[512];
	struct dir_key *key;
	struct tdev senders[N_POSTERS];
	struct tdev recips[N_RECIPS];    /* get the messages */
	struct tdev idle;                /* never gets one */
	char sender_token[N_POSTERS][DIRC_TOKEN_MAX + 1];
	char idle_token[DIRC_TOKEN_MAX + 1];
	struct acctlog_head mail_head;
	uint64_t quiet_seq;
	char reg_account[N_REG_ACCOUNTS][DIR_ACCOUNT_MAX + 1];
	unsigned int port;

	/* The fields below are guarded by lock while client threads run. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct write_rec *writes;
	size_t n_writes, cap_writes;

	/* Envelopes queued for the recipients, as read from the store. */
	struct queued_id *queued;
	size_t n_queued, cap_queued;
	uint64_t queued_after[N_RECIPS];

	/* Figures printed at the end. */
	unsigned long writes_busy_at_stop;
	unsigned long reads_busy_at_stop;
	unsigned long polls_busy_at_stop;
	unsigned long polls_answered;
	unsigned long polls_cut;
	unsigned long acked;
	unsigned long port_changes;
	double stop_ms_max;
};

struct cycle;

struct worker {
	struct cycle *cy;
	enum work_kind kind;
	int idx;
	int busy;                        /* a request is out (f->lock) */
	int started;                     /* sent its first request */
	pthread_t th;
	int th_ok;
	char failure[512];
};

struct cycle {
	struct fx *f;
	int n;
	char base[128];
	int stopping;                    /* f->lock */
	unsigned int acked_reg, acked_post;
	unsigned int posters_done;       /* reached POSTS_MAX */
	unsigned int polls_started;
	struct worker w[N_WORKERS];
};

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static void
fail_worker(struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Keeps the first failure of a worker for the main thread to report. */
static void
fail_worker(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failure[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(w->failure, sizeof(w->failure), fmt, ap);
	va_end(ap);
}

static int
cycle_stopping(struct cycle *cy)
{
	int s;

	pthread_mutex_lock(&cy->f->lock);
	s = cy->stopping;
	pthread_mutex_unlock(&cy->f->lock);
	return s;
}

static void
set_busy(struct worker *w, int busy)
{
	struct fx *f = w->cy->f;

	pthread_mutex_lock(&f->lock);
	w->busy = busy;
	if (busy && !w->started) {
		w->started = 1;
		if (w->kind >= WORK_POLL_INBOX)
			w->cy->polls_started++;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
}

/* Notes a write and its answer, and wakes the main thread. */
static void
record_write(struct worker *w, const char *account, const char *id,
    long status)
{
	int recip = w->cy->n % N_RECIPS;
	struct cycle *cy = w->cy;
	struct fx *f = cy->f;
	struct write_rec *nw;
	size_t cap;

	pthread_mutex_lock(&f->lock);
	w->busy = 0;
	if (f->n_writes == f->cap_writes) {
		cap = f->cap_writes == 0 ? 256 : 2 * f->cap_writes;
		if ((nw = realloc(f->writes, cap * sizeof(*nw))) == NULL) {
			fail_worker(w, "out of memory");
			goto out;
		}
		f->writes = nw;
		f->cap_writes = cap;
	}
	nw = &f->writes[f->n_writes++];
	memset(nw, 0, sizeof(*nw));
	nw->kind = w->kind;
	nw->cycle = cy->n;
	nw->status = status;
	snprintf(nw->account, sizeof(nw->account), "%s", account);
	snprintf(nw->id, sizeof(nw->id), "%s", id);
	nw->recip = recip;
	if (status >= 200 && status <= 299) {
		if (w->kind == WORK_REGISTER)
			cy->acked_reg++;
		else
			cy->acked_post++;
		f->acked++;
	}
	pthread_cond_broadcast(&f->cond);
 out:
	pthread_mutex_unlock(&f->lock);
}

/* --- the client threads --- */

/* Answers a write may get here: 2xx, 503 while the server drains, or
 * none. */
static void
check_write_status(struct worker *w, long st)
{
	if (st != 0 && st != 503 && (st < 200 || st > 299))
		fail_worker(w, "%s answered %ld", w->kind == WORK_REGISTER ?
		    "a registration" : "a message post", st);
}

/*
 * Registers new devices of one account, each on a new connection, until
 * the server is gone (no answer): the last attempts meet the stop.
 */
static void *
registrar_main(void *arg)
{
	struct worker *w = arg;
	struct cycle *cy = w->cy;
	const char *account = cy->f->reg_account[(cy->n * N_REGISTRARS +
	    w->idx) % N_REG_ACCOUNTS];
	char path[256], label[32], iface[32], *text;
	struct tdev d;
	unsigned int i;
	long st;

	snprintf(path, sizeof(path), "/v1/accounts/%s/devices", account);
	snprintf(iface, sizeof(iface), "host!127.0.0.%d", 2 + w->idx);
	for (i = 0;; i++) {
		snprintf(label, sizeof(label), "c%d-r%d-%u", cy->n, w->idx, i);
		text = NULL;
		if (tdev_make(&d, account, label, now_s()) != 0 ||
		    devrec_encode(&d.rec, &text, NULL) != 0) {
			fail_worker(w, "cannot make a device");
			tdev_clear(&d);
			break;
		}
		set_busy(w, 1);
		/* A new connection from the worker's own address. */
		st = thttp_from(iface, cy->base, "POST", path, text,
		    strlen(text), "Content-Type: application/json", account,
		    PW, NULL);
		record_write(w, account, d.rec.device, st);
		check_write_status(w, st);
		free(text);
		tdev_clear(&d);
		if (st == 0)
			break;
	}
	return NULL;
}

/* Posts messages to the cycle's recipient on one kept-alive connection
 * until the cycle ends or the server is gone, or POSTS_MAX of them were
 * acknowledged; it then waits for the end of the cycle. */
static void *
poster_main(void *arg)
{
	struct worker *w = arg;
	struct cycle *cy = w->cy;
	struct fx *f = cy->f;
	static const char *const to[] = { MAIL };
	const struct tdev *recips[] = { &f->recips[cy->n % N_RECIPS] };
	struct dirc *c = NULL;
	struct err_ctx e;
	char id[ID_MAX], *json;
	unsigned int acked = 0;
	size_t len;
	long st;

	err_clear(&e);
	if (dirc_new(cy->base, NULL, &c, &e) != 0 ||
	    dirc_set_token(c, f->sender_token[w->idx]) != 0) {
		fail_worker(w, "client: %s", err_msg(&e));
		goto out;
	}
	while (!cycle_stopping(cy)) {
		json = NULL;
		if (tenv_make(&f->senders[w->idx], to, 1, &f->mail_head, 1,
		    recips, 1, &json, &len) != 0 ||
		    tenv_id(json, len, id, sizeof(id)) != 0) {
			fail_worker(w, "cannot make an envelope");
			free(json);
			break;
		}
		set_busy(w, 1);
		err_clear(&e);
		dirc_post_message(c, json, len, NULL, &e);
		st = dirc_last_status(c);
		record_write(w, MAIL, id, st);
		check_write_status(w, st);
		free(json);
		if (st == 0)
			break;
		if (st >= 200 && st <= 299 && ++acked == POSTS_MAX) {
			pthread_mutex_lock(&f->lock);
			cy->posters_done++;
			pthread_cond_broadcast(&f->cond);
			while (!cy->stopping)
				pthread_cond_wait(&f->cond, &f->lock);
			pthread_mutex_unlock(&f->lock);
			break;
		}
	}
 out:
	dirc_free(c);
	return NULL;
}

/* Reads /v1/health on one kept-alive connection until the cycle ends or
 * the server is gone: 200, or 503 while the server drains. */
static void *
reader_main(void *arg)
{
	struct worker *w = arg;
	struct cycle *cy = w->cy;
	struct dirc *c = NULL;
	struct err_ctx e;
	long st;

	err_clear(&e);
	if (dirc_new(cy->base, NULL, &c, &e) != 0) {
		fail_worker(w, "client: %s", err_msg(&e));
		goto out;
	}
	while (!cycle_stopping(cy)) {
		set_busy(w, 1);
		err_clear(&e);
		dirc_health(c, &e);
		st = dirc_last_status(c);
		set_busy(w, 0);
		if (st == 0)
			break;
		if (st != 200 && st != 503)
			fail_worker(w, "health answered %ld: %s", st,
			    err_msg(&e));
	}
 out:
	dirc_free(c);
	return NULL;
}

/*
 * Long-polls until the cycle ends or the server is gone.  An answer is
 * 200 with nothing new (nothing changes what the idle inbox and the quiet
 * log watch; the busy log continues from its last verified head, every
 * answer verified under the head key) or 503 while the server drains;
 * anything else fails the test.
 */
static void *
poller_main(void *arg)
{
	struct worker *w = arg;
	struct cycle *cy = w->cy;
	struct fx *f = cy->f;
	const char *busy_account = f->reg_account[(cy->n * N_REGISTRARS) %
	    N_REG_ACCOUNTS];
	struct dirc *c = NULL;
	struct dirc_inbox *in;
	struct acctlog_response *resp;
	struct acctlog_state st_busy;
	struct err_ctx e;
	long st;
	int rc;

	err_clear(&e);
	memset(&st_busy, 0, sizeof(st_busy));
	if (acctlog_state_init(&st_busy, busy_account, dir_key_id(f->key),
	    &e) != 0 ||
	    dirc_new(cy->base, NULL, &c, &e) != 0 ||
	    dirc_set_token(c, f->idle_token) != 0) {
		fail_worker(w, "client: %s", err_msg(&e));
		goto out;
	}
	while (!cycle_stopping(cy)) {
		in = NULL;
		resp = NULL;
		set_busy(w, 1);
		err_clear(&e);
		switch (w->kind) {
		case WORK_POLL_INBOX:
			rc = dirc_inbox(c, POLL_WAIT_S, 0, &in, &e);
			if (rc == 0 && in->n_items != 0)
				fail_worker(w, "the idle inbox returned %zu "
				    "messages", in->n_items);
			break;
		case WORK_POLL_QUIET_LOG:
			rc = dirc_get_log(c, QUIET, f->quiet_seq, POLL_WAIT_S,
			    &resp, &e);
			if (rc == 0 && (resp->n_events != 0 ||
			    resp->head.seq != f->quiet_seq))
				fail_worker(w, "the quiet log changed");
			break;
		default:
			rc = dirc_get_log(c, busy_account, st_busy.seq,
			    POLL_WAIT_S, &resp, &e);
			if (rc == 0 && acctlog_verify_update(&st_busy,
			    resp->events, resp->n_events, &resp->head,
			    dir_key_public(f->key), now_s(), 900, NULL,
			    &e) != 0)
				fail_worker(w, "the log of %s does not "
				    "verify: %s", busy_account, err_msg(&e));
			break;
		}
		st = dirc_last_status(c);
		dirc_inbox_free(in);
		acctlog_response_free(resp);
		pthread_mutex_lock(&f->lock);
		w->busy = 0;
		if (st == 0)
			f->polls_cut++;
		else
			f->polls_answered++;
		pthread_mutex_unlock(&f->lock);
		if (st == 0)
			break;
		if (st == 200 && rc != 0)
			fail_worker(w, "long-poll answer: %s", err_msg(&e));
		else if (st != 200 && st != 503)
			fail_worker(w, "long-poll answered %ld: %s", st,
			    err_msg(&e));
	}
 out:
	acctlog_state_clear(&st_busy);
	dirc_free(c);
	return NULL;
}

/* --- checks against the store --- */

struct queue_ctx {
	struct fx *f;
	int recip;
	int bad;
};

static int
note_queued(void *arg, uint64_t seq, const char *envelope)
{
	struct queue_ctx *qc = arg;
	struct fx *f = qc->f;
	struct queued_id *nq;
	size_t cap;

	if (f->n_queued == f->cap_queued) {
		cap = f->cap_queued == 0 ? 256 : 2 * f->cap_queued;
		if ((nq = realloc(f->queued, cap * sizeof(*nq))) == NULL)
			return ERR_ALLOC;
		f->queued = nq;
		f->cap_queued = cap;
	}
	if (tenv_id(envelope, strlen(envelope), f->queued[f->n_queued].id,
	    sizeof(f->queued[f->n_queued].id)) != 0) {
		qc->bad = 1;
		return ERR_FORMAT;
	}
	f->queued[f->n_queued++].recip = qc->recip;
	if (seq > f->queued_after[qc->recip])
		f->queued_after[qc->recip] = seq;
	return 0;
}

static int
is_queued(const struct fx *f, int recip, const char *id)
{
	size_t i;

	for (i = 0; i < f->n_queued; i++)
		if (f->queued[i].recip == recip &&
		    strcmp(f->queued[i].id, id) == 0)
			return 1;
	return 0;
}

/* Adds the queue entries of recipient recip past its queued_after to
 * f->queued. */
static void
read_queue(struct fx *f, struct dir_store *store, int recip)
{
	struct queue_ctx qc = { f, recip, 0 };
	struct err_ctx e;

	err_clear(&e);
	if (store->ops->inbox_get(store, f->recips[recip].rec.device,
	    f->queued_after[recip], UINT32_MAX, SIZE_MAX, note_queued, &qc,
	    &e) != 0)
		fail_msg("inbox of recipient %d: %s", recip, err_msg(&e));
	assert_false(qc.bad);
}

/* The acknowledged writes of cycle n are stored (the server is stopped). */
static void
check_cycle(struct fx *f, struct dir_store *store, int n)
{
	struct dir_device_info info;
	struct err_ctx e;
	size_t i;

	read_queue(f, store, n % N_RECIPS);
	for (i = 0; i < f->n_writes; i++) {
		const struct write_rec *w = &f->writes[i];

		if (w->cycle != n || w->status < 200 || w->status > 299)
			continue;
		if (w->kind == WORK_POST) {
			if (!is_queued(f, w->recip, w->id))
				fail_msg("cycle %d: message %s was "
				    "acknowledged (%ld) but is not queued", n,
				    w->id, w->status);
			continue;
		}
		err_clear(&e);
		if (store->ops->device_get(store, w->id, &info, &e) != 0)
			fail_msg("cycle %d: device %.16s of %s was "
			    "acknowledged (%ld) but is not stored: %s", n,
			    w->id, w->account, w->status, err_msg(&e));
		if (!info.active || strcmp(info.account, w->account) != 0)
			fail_msg("cycle %d: device %.16s is stored but not "
			    "active in %s", n, w->id, w->account);
	}
}

struct replay_ctx {
	struct acctlog_state *st;
	struct err_ctx *e;
	uint64_t n;
};

static int
replay_event(void *arg, uint64_t seq, const char *type, const char *json)
{
	struct replay_ctx *rc = arg;
	struct acctlog_event ev;
	json_t *obj;
	int r;

	if ((obj = json_loads(json, 0, NULL)) == NULL)
		return err_set(rc->e, ERR_FORMAT, "event %llu is not JSON",
		    (unsigned long long)seq);
	r = acctlog_event_from_json(obj, &ev, rc->e);
	json_decref(obj);
	if (r != 0)
		return r;
	if (ev.seq != seq)
		return err_set(rc->e, ERR_CHAIN, "event %llu is stored as %llu",
		    (unsigned long long)ev.seq, (unsigned long long)seq);
	if ((r = acctlog_state_apply(rc->st, &ev, 1, rc->e)) != 0)
		return r;
	rc->n++;
	return 0;
}

/*
 * The whole stored log of account verifies from scratch, ends at the
 * stored tail, and holds every device acknowledged for it.
 */
static void
check_log(struct fx *f, struct dir_store *store, const char *account)
{
	struct acctlog_state st;
	struct replay_ctx rc;
	struct err_ctx e;
	uint64_t tail;
	uint8_t hash[32];
	size_t i;

	memset(&st, 0, sizeof(st));
	err_clear(&e);
	rc.st = &st;
	rc.e = &e;
	rc.n = 0;
	if (acctlog_state_init(&st, account, dir_key_id(f->key), &e) != 0 ||
	    store->ops->log_tail(store, account, &tail, hash, &e) != 0 ||
	    store->ops->log_events(store, account, 0, tail, UINT32_MAX,
	    replay_event, &rc, &e) != 0)
		fail_msg("log of %s does not verify: %s", account, err_msg(&e));
	assert_int_equal(rc.n, tail);
	assert_int_equal(st.seq, tail);
	assert_memory_equal(st.hash, hash, 32);
	for (i = 0; i < f->n_writes; i++) {
		const struct write_rec *w = &f->writes[i];

		if (w->kind != WORK_REGISTER || w->status < 200 ||
		    w->status > 299 || strcmp(w->account, account) != 0)
			continue;
		if (acctlog_state_find(&st, w->id) == NULL)
			fail_msg("device %.16s of %s (cycle %d) was "
			    "acknowledged but is not in the log", w->id,
			    account, w->cycle);
	}
	acctlog_state_clear(&st);
}

/* --- fixture --- */

static void
api_config(struct dir_api_config *cfg)
{
	dir_api_config_default(cfg);
	cfg->scrypt_log_n = DIR_SCRYPT_LOG_N_MIN;
	cfg->max_devices = MAX_DEVICES;
	cfg->max_queue = 100000;
}

/* Starts a server for api on f->port when set (else on a free port, which
 * becomes f->port); *base is its URL. */
static void
server_start(struct fx *f, struct dir_api *api, struct dir_server **srv,
    char *base, size_t base_len)
{
	struct dir_server_config sc;
	struct err_ctx e;
	char listen[64];
	const char *colon;
	int r;

	memset(&sc, 0, sizeof(sc));
	sc.quiet = 1;
	sc.handler = dir_api_handle;
	sc.handler_arg = api;
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", f->port);
	sc.listen = listen;
	err_clear(&e);
	if ((r = dir_server_start(&sc, srv, &e)) != 0 && f->port != 0) {
		/* Somebody else took the port meanwhile: move on. */
		f->port_changes++;
		sc.listen = "127.0.0.1:0";
		err_clear(&e);
		r = dir_server_start(&sc, srv, &e);
	}
	if (r != 0)
		fail_msg("server: %s", err_msg(&e));
	dir_api_set_server(api, *srv);
	snprintf(base, base_len, "http://%s", dir_server_address(*srv));
	colon = strrchr(dir_server_address(*srv), ':');
	assert_non_null(colon);
	f->port = (unsigned int)strtoul(colon + 1, NULL, 10);
}

static void
make_account(struct dir_store *store, const char *name)
{
	struct err_ctx e;
	char *h = NULL;

	err_clear(&e);
	assert_int_equal(dir_password_hash(PW, strlen(PW),
	    DIR_SCRYPT_LOG_N_MIN, &h, &e), 0);
	if (store->ops->account_create(store, name, h, now_s(), &e) != 0)
		fail_msg("account %s: %s", name, err_msg(&e));
	free(h);
}

static void
register_and_login(struct fx *f, const char *base, struct tdev *d,
    char *token)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(dirc_new(base, NULL, &c, &e), 0);
	if (dirc_register_device(c, PW, &d->rec, NULL, &e) != 0)
		fail_msg("registration: %s", err_msg(&e));
	if (token != NULL) {
		if (dirc_login(c, dir_key_id(f->key), d->rec.device, tdev_sign,
		    d, NULL, &e) != 0)
			fail_msg("login: %s", err_msg(&e));
		snprintf(token, DIRC_TOKEN_MAX + 1, "%s", dirc_token(c));
	}
	dirc_free(c);
}

/* Accounts, the fixed devices and their sessions, made once through a
 * first server run. */
static int
store_open(struct fx *f, struct dir_store **s, struct err_ctx *e)
{
	if (pg_uri != NULL)
		return dir_store_pg_open(pg_uri, s, e);
	return dir_store_sqlite_open(f->db, s, e);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct dir_api_config cfg;
	struct dir_store *store = NULL;
	struct dir_server *srv = NULL;
	struct dir_api api;
	struct acctlog_response *resp = NULL;
	struct dirc *c = NULL;
	struct err_ctx e;
	char path[600], base[128];
	int i;

	assert_non_null(f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	err_clear(&e);
	assert_non_null(f->dir = ttmpdir_make());
	snprintf(f->db, sizeof(f->db), "%s/dir.db", f->dir);
	snprintf(path, sizeof(path), "%s/head.key", f->dir);
	assert_int_equal(dir_key_open(path, 1, &f->key, NULL, &e), 0);
	assert_int_equal(store_open(f, &store, &e), 0);
	make_account(store, MAIL);
	make_account(store, QUIET);
	for (i = 0; i < N_REG_ACCOUNTS; i++) {
		snprintf(f->reg_account[i], sizeof(f->reg_account[i]),
		    "reg%d@example.org", i);
		make_account(store, f->reg_account[i]);
	}
	for (i = 0; i < N_POSTERS; i++) {
		snprintf(path, sizeof(path), "sender%d", i);
		assert_int_equal(tdev_make(&f->senders[i], MAIL, path,
		    now_s()), 0);
	}
	for (i = 0; i < N_RECIPS; i++) {
		snprintf(path, sizeof(path), "recipient%d", i);
		assert_int_equal(tdev_make(&f->recips[i], MAIL, path,
		    now_s()), 0);
	}
	assert_int_equal(tdev_make(&f->idle, QUIET, "idle", now_s()), 0);

	api_config(&cfg);
	assert_int_equal(dir_api_init(&api, &cfg, store, f->key), 0);
	server_start(f, &api, &srv, base, sizeof(base));
	for (i = 0; i < N_POSTERS; i++)
		register_and_login(f, base, &f->senders[i],
		    f->sender_token[i]);
	for (i = 0; i < N_RECIPS; i++)
		register_and_login(f, base, &f->recips[i], NULL);
	register_and_login(f, base, &f->idle, f->idle_token);
	/* The view of MAIL that every envelope carries, and QUIET's tail. */
	assert_int_equal(dirc_new(base, NULL, &c, &e), 0);
	assert_int_equal(dirc_set_token(c, f->idle_token), 0);
	assert_int_equal(dirc_get_log(c, MAIL, 0, 0, &resp, &e), 0);
	f->mail_head = resp->head;
	acctlog_response_free(resp);
	assert_int_equal(dirc_get_log(c, QUIET, 0, 0, &resp, &e), 0);
	f->quiet_seq = resp->head.seq;
	assert_int_equal(f->quiet_seq, 1);
	acctlog_response_free(resp);
	dirc_free(c);
	dir_server_stop(srv);
	dir_api_clear(&api);
	dir_store_close(store);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int i;

	if (f == NULL)
		return 0;
	dir_key_free(f->key);
	ttmpdir_remove(f->dir);
	for (i = 0; i < N_POSTERS; i++)
		tdev_clear(&f->senders[i]);
	for (i = 0; i < N_RECIPS; i++)
		tdev_clear(&f->recips[i]);
	tdev_clear(&f->idle);
	free(f->writes);
	free(f->queued);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
	return 0;
}

/* --- one cycle --- */

/* Progress the stop waits for: every long-poll sent, and a registration
 * and a message (unless the posters are done) acknowledged after that, so
 * that the long-polls have had a request's time to be suspended.  Called
 * with f->lock held. */
static int
cycle_ready(const struct cycle *cy, unsigned int reg0, unsigned int post0)
{
	return cy->polls_started == N_POLLERS && cy->acked_reg > reg0 &&
	    (cy->acked_post > post0 || cy->posters_done == N_POSTERS);
}

static void *(*const worker_main[])(void *) = {
	[WORK_REGISTER] = registrar_main,
	[WORK_POST] = poster_main,
	[WORK_READ] = reader_main,
	[WORK_POLL_INBOX] = poller_main,
	[WORK_POLL_QUIET_LOG] = poller_main,
	[WORK_POLL_BUSY_LOG] = poller_main,
};

static void
run_cycle(struct fx *f, int n)
{
	struct cycle *cy = calloc(1, sizeof(*cy));
	struct dir_api_config cfg;
	struct dir_store *store = NULL;
	struct dir_server *srv = NULL;
	struct dir_api api;
	struct timespec deadline;
	struct err_ctx e;
	unsigned int reg0 = 0, post0 = 0, i;
	int timed_out = 0, polls_seen = 0, all_started = 1;
	double t0, stop_ms;

	assert_non_null(cy);
	cy->f = f;
	cy->n = n;
	err_clear(&e);
	if (store_open(f, &store, &e) != 0)
		fail_msg("cycle %d: database: %s", n, err_msg(&e));
	api_config(&cfg);
	assert_int_equal(dir_api_init(&api, &cfg, store, f->key), 0);
	server_start(f, &api, &srv, cy->base, sizeof(cy->base));
	/* On PostgreSQL: (re)connecting wakes every long-poll to read
	 * again, while the load runs. */
	if (dir_api_watch_start(&api, &e) != 0)
		fail_msg("cycle %d: watch: %s", n, err_msg(&e));

	for (i = 0; i < N_WORKERS; i++) {
		struct worker *w = &cy->w[i];

		w->cy = cy;
		if (i < N_REGISTRARS) {
			w->kind = WORK_REGISTER;
			w->idx = (int)i;
		} else if (i < N_REGISTRARS + N_POSTERS) {
			w->kind = WORK_POST;
			w->idx = (int)(i - N_REGISTRARS);
		} else if (i < N_REGISTRARS + N_POSTERS + N_READERS) {
			w->kind = WORK_READ;
		} else {
			w->kind = (enum work_kind)(WORK_POLL_INBOX + (i -
			    N_REGISTRARS - N_POSTERS - N_READERS));
		}
		w->th_ok = pthread_create(&w->th, NULL, worker_main[w->kind],
		    w) == 0;
		if (!w->th_ok) {
			fail_worker(w, "cannot start a thread");
			all_started = 0;
		}
	}

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += CYCLE_WAIT_S;
	pthread_mutex_lock(&f->lock);
	for (;;) {
		if (!polls_seen && cy->polls_started == N_POLLERS) {
			polls_seen = 1;
			reg0 = cy->acked_reg;
			post0 = cy->acked_post;
		}
		if ((polls_seen && cycle_ready(cy, reg0, post0)) ||
		    !all_started)
			break;
		if (pthread_cond_timedwait(&f->cond, &f->lock, &deadline) ==
		    ETIMEDOUT) {
			timed_out = 1;
			break;
		}
	}
	cy->stopping = 1;
	pthread_cond_broadcast(&f->cond);
	for (i = 0; i < N_WORKERS; i++) {
		if (!cy->w[i].busy)
			continue;
		if (cy->w[i].kind >= WORK_POLL_INBOX)
			f->polls_busy_at_stop++;
		else if (cy->w[i].kind == WORK_READ)
			f->reads_busy_at_stop++;
		else
			f->writes_busy_at_stop++;
	}
	pthread_mutex_unlock(&f->lock);

	t0 = tmono_ms();
	dir_api_watch_stop(&api);
	dir_server_stop(srv);
	stop_ms = tmono_ms() - t0;
	if (stop_ms > f->stop_ms_max)
		f->stop_ms_max = stop_ms;
	for (i = 0; i < N_WORKERS; i++)
		if (cy->w[i].th_ok)
			pthread_join(cy->w[i].th, NULL);
	dir_api_clear(&api);

	if (timed_out)
		fail_msg("cycle %d made no progress in %d s (registrations "
		    "%u, messages %u, long-polls %u of %d)", n, CYCLE_WAIT_S,
		    cy->acked_reg, cy->acked_post, cy->polls_started,
		    N_POLLERS);
	for (i = 0; i < N_WORKERS; i++)
		if (cy->w[i].failure[0] != '\0')
			fail_msg("cycle %d: %s", n, cy->w[i].failure);
	/* Reaching the drain limit means a request or long-poll was left
	 * behind. */
	if (stop_ms >= DIR_DRAIN_MS)
		fail_msg("cycle %d: dir_server_stop() took %.0f ms, the whole "
		    "drain limit", n, stop_ms);
	check_cycle(f, store, n);
	dir_store_close(store);
	free(cy);
}

static void
test_stop_under_load(void **state)
{
	struct fx *f = *state;
	struct dir_store *store = NULL;
	struct err_ctx e;
	unsigned long posts = 0, regs = 0;
	size_t i;
	int n;

	for (n = 0; n < CYCLES; n++)
		run_cycle(f, n);

	/* Everything again, from a database opened afresh. */
	err_clear(&e);
	assert_int_equal(store_open(f, &store, &e), 0);
	f->n_queued = 0;
	for (i = 0; i < N_RECIPS; i++) {
		f->queued_after[i] = 0;
		read_queue(f, store, (int)i);
	}
	for (i = 0; i < f->n_writes; i++) {
		const struct write_rec *w = &f->writes[i];

		if (w->status < 200 || w->status > 299)
			continue;
		if (w->kind == WORK_POST) {
			posts++;
			if (!is_queued(f, w->recip, w->id))
				fail_msg("message %s (cycle %d) is lost",
				    w->id, w->cycle);
		} else {
			regs++;
		}
	}
	for (i = 0; i < N_REG_ACCOUNTS; i++)
		check_log(f, store, f->reg_account[i]);
	check_log(f, store, MAIL);
	check_log(f, store, QUIET);
	dir_store_close(store);
	print_message("%d stops: %lu registrations and %lu messages "
	    "acknowledged and found; %lu writes, %lu reads and %lu long-polls "
	    "were out when stop was called; long-polls answered %lu, cut "
	    "%lu; slowest stop %.0f ms; port changed %lu times\n", CYCLES,
	    regs, posts, f->writes_busy_at_stop, f->reads_busy_at_stop,
	    f->polls_busy_at_stop, f->polls_answered, f->polls_cut,
	    f->stop_ms_max, f->port_changes);
	assert_int_equal(posts + regs, f->acked);
	/* The premise: stops met requests that were out. */
	assert_true(f->writes_busy_at_stop > 0);
	assert_true(f->polls_busy_at_stop > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stop_under_load, setup,
		    teardown),
	};
	int r;

	signal(SIGPIPE, SIG_IGN);
	pg_uri = getenv("DEVID_TEST_PG_URI");
	if (pg_uri != NULL && pg_uri[0] == '\0')
		pg_uri = NULL;
	/* Before any thread: libcurl's global state is not thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
