/*
 * test_dir_durability.c - kill -9 under load loses no acknowledged write.
 *
 * The real devid-directory ($top_builddir/directory/devid-directory) runs
 * on a free loopback port with a fresh database whose accounts were made
 * beforehand with `devid-directory account add`.  Client threads, two per
 * source address 127.0.0.2 .. 127.0.0.9, each send a planned series of
 * messages (a bearer session of the thread's sender device, to two of the
 * recipient devices of one mailbox account); the first thread of each
 * address sends device registrations (HTTP Basic, into the thread's own
 * account) in between, so that no address has more than one password
 * check out at a time.  Every thread notes exactly which requests were
 * answered 2xx.  Once KILL_AFTER of them were, the server
 * is killed with SIGKILL while the others are still out.  Restarted on the
 * same database, the directory must show:
 *  - every account log, fetched over HTTP, verifies from scratch with
 *    common/acctlog under the directory key announced before the kill,
 *    and holds every device whose registration was acknowledged;
 *  - every acknowledged message is in the inbox of each of its recipient
 *    devices, and every envelope there opens for its recipient;
 * whatever an unanswered request left behind must verify just the same.
 * It then stops on SIGTERM with exit status 0.  The server dies with the
 * test (PR_SET_PDEATHSIG), and the temporary directory is removed on
 * every path.
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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"

#define N_ADDRS 8                    /* 127.0.0.2 .. 127.0.0.9 */
#define THREADS_PER_ADDR 2
#define N_THREADS (N_ADDRS * THREADS_PER_ADDR)
#define PER_THREAD 26                /* planned requests: 416 in all */
#define KILL_AFTER 208               /* acknowledged before kill -9 */
#define N_RECIPS 4
#define MBOX "mbox@example.org"
#define PW "durability test password"
#define READY_WAIT_MS 30000
#define LOAD_WAIT_S 300              /* a load phase that makes no progress */
#define REQUEST_TIMEOUT_S 120
#define ID_MAX 96

struct server {
	char *dir;
	pid_t pid;
	char url[160];
	char db[512];
};

/* One planned request and what came of it. */
struct planned {
	int is_message;
	char *body;
	size_t body_len;
	char id[ID_MAX];                 /* device hex or envelope id */
	int recips[2];                   /* messages: indexes into recips */
	long status;                     /* 0: no answer */
	int sent;
};

struct load;

struct client {
	struct load *ld;
	int idx;
	char account[64];
	char addr[32];                   /* "host!127.0.0.N" */
	struct tdev sender;
	struct acctlog_head own_head;    /* of account, for envelope views */
	char bearer[64 + DIRC_TOKEN_MAX];
	struct planned plan[PER_THREAD];
	int busy;                        /* ld->lock; 2: a registration */
	pthread_t th;
	int th_ok;
	char failure[512];
};

struct load {
	const char *url;
	struct tdev recips[N_RECIPS];
	struct acctlog_head mbox_head;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int ready;              /* threads with their plan made */
	int go;                          /* 1: start, -1: give up */
	int killed;
	unsigned int acked;
	unsigned int finished;           /* threads that ran out of plan */
	struct client c[N_THREADS];
};

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static const char *
binary(void)
{
	static char path[1024];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/directory/devid-directory",
	    top != NULL ? top : ".");
	return path;
}

/* --- the server process --- */

/* Starts `serve` on the database in s->dir and waits for its ready file. */
static void
server_start(struct server *s)
{
	const char *argv[24];
	char ready[600], addr[128];
	FILE *f;
	double t0;
	size_t n = 0;
	int status;

	snprintf(ready, sizeof(ready), "%s/ready", s->dir);
	unlink(ready);
	argv[n++] = binary();
	argv[n++] = "serve";
	argv[n++] = "--db";
	argv[n++] = s->db;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--ready-file";
	argv[n++] = ready;
	argv[n++] = "--scrypt-cost";
	argv[n++] = "10";
	argv[n++] = "--rate";
	argv[n++] = "0";
	argv[n++] = "--quiet";
	argv[n] = NULL;
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	t0 = mono_ms();
	while ((f = fopen(ready, "r")) == NULL) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			fail_msg("devid-directory exited before it was ready");
		}
		if (mono_ms() - t0 > READY_WAIT_MS)
			fail_msg("devid-directory did not become ready");
		usleep(20 * 1000);
	}
	assert_non_null(fgets(addr, sizeof(addr), f));
	fclose(f);
	addr[strcspn(addr, "\n")] = '\0';
	snprintf(s->url, sizeof(s->url), "http://%s", addr);
}

/* Sends sig and reaps the server; its exit status, or -1 when a signal
 * ended it. */
static int
server_signal(struct server *s, int sig)
{
	int status = 0, ret = -1;

	if (s->pid > 0) {
		kill(s->pid, sig);
		if (waitpid(s->pid, &status, 0) == s->pid &&
		    WIFEXITED(status))
			ret = WEXITSTATUS(status);
		s->pid = 0;
	}
	return ret;
}

/* Runs `devid-directory args`; 0 when it exits 0. */
static int
run_tool(const char *args)
{
	char cmd[4096], out[4096];
	size_t n = 0;
	FILE *p;
	int status;

	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", binary(), args);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (n + 1 < sizeof(out) &&
	    fgets(out + n, (int)(sizeof(out) - n), p) != NULL)
		n = strlen(out);
	out[n] = '\0';
	status = pclose(p);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "devid-directory %s failed:\n%s\n", args, out);
		return -1;
	}
	return 0;
}

static int
setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	if ((s->dir = ttmpdir_make()) == NULL) {
		free(s);
		return -1;
	}
	snprintf(s->db, sizeof(s->db), "%s/dir.db", s->dir);
	*state = s;
	return 0;
}

static int
teardown(void **state)
{
	struct server *s = *state;

	if (s == NULL)
		return 0;
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	ttmpdir_remove(s->dir);
	free(s);
	return 0;
}

/* --- HTTP from a chosen source address --- */

struct answer {
	char *p;
	size_t len;
};

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;
	char *np;

	if ((np = realloc(a->p, a->len + n + 1)) == NULL)
		return 0;
	a->p = np;
	memcpy(a->p + a->len, data, n);
	a->len += n;
	a->p[a->len] = '\0';
	return n;
}

/*
 * POSTs body to url + path on c's kept-alive connection from source
 * address iface, with a bearer header or Basic credentials.  Returns the
 * HTTP status, 0 when no answer came.
 */
static long
post_from(CURL *c, const char *iface, const char *url, const char *path,
    const char *body, size_t len, const char *header, const char *user,
    const char *pw)
{
	struct curl_slist *hdrs = NULL, *h;
	struct answer a = { NULL, 0 };
	char full[512];
	long status = 0;

	snprintf(full, sizeof(full), "%s%s", url, path);
	if ((h = curl_slist_append(hdrs, "Content-Type: application/json")) ==
	    NULL)
		return 0;
	hdrs = h;
	if (header != NULL) {
		if ((h = curl_slist_append(hdrs, header)) == NULL)
			goto out;
		hdrs = h;
	}
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)REQUEST_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (user != NULL) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, pw);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
 out:
	free(a.p);
	curl_slist_free_all(hdrs);
	return status;
}

/* --- the load --- */

static void
fail_client(struct client *cl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
fail_client(struct client *cl, const char *fmt, ...)
{
	va_list ap;

	if (cl->failure[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(cl->failure, sizeof(cl->failure), fmt, ap);
	va_end(ap);
}

/* The "id" member of JSON text into id; 0 or -1. */
static int
json_id(const char *json, size_t len, char id[ID_MAX])
{
	json_t *o = json_loadb(json, len, 0, NULL);
	const char *s = json_string_value(json_object_get(o, "id"));
	int r = -1;

	if (s != NULL && strlen(s) < ID_MAX) {
		snprintf(id, ID_MAX, "%s", s);
		r = 0;
	}
	json_decref(o);
	return r;
}

/*
 * Prepares the client's plan: messages from its sender to two mailbox
 * devices and, for the first client of an address, registrations of new
 * devices of its account in turn with them.
 */
static int
plan_make(struct client *cl)
{
	struct load *ld = cl->ld;
	const char *to[2] = { MBOX, cl->account };
	struct acctlog_head views[2];
	const struct tdev *rc[2];
	struct planned *p;
	struct tdev d;
	char label[32];
	int i, r;

	/* "to" must name the sender's own account. */
	views[0] = ld->mbox_head;
	views[1] = cl->own_head;
	for (i = 0; i < PER_THREAD; i++) {
		p = &cl->plan[i];
		p->is_message = cl->idx % THREADS_PER_ADDR != 0 || i % 2 == 1;
		if (p->is_message) {
			p->recips[0] = (cl->idx + i) % N_RECIPS;
			p->recips[1] = (cl->idx + i + 1) % N_RECIPS;
			rc[0] = &ld->recips[p->recips[0]];
			rc[1] = &ld->recips[p->recips[1]];
			if ((r = tenv_make(&cl->sender, to, 2, views, 2, rc, 2,
			    &p->body, &p->body_len)) != 0)
				return r;
			if (json_id(p->body, p->body_len, p->id) != 0)
				return ERR_FORMAT;
			continue;
		}
		snprintf(label, sizeof(label), "load-%d", i);
		if ((r = tdev_make(&d, cl->account, label, now_s())) != 0 ||
		    (r = devrec_encode(&d.rec, &p->body, NULL)) != 0) {
			tdev_clear(&d);
			return r;
		}
		p->body_len = strlen(p->body);
		snprintf(p->id, sizeof(p->id), "%s", d.rec.device);
		tdev_clear(&d);
	}
	return 0;
}

static void *
client_main(void *arg)
{
	struct client *cl = arg;
	struct load *ld = cl->ld;
	struct planned *p;
	char path[128];
	CURL *c = NULL;
	long st;
	int i, go, r;

	if ((r = plan_make(cl)) != 0)
		fail_client(cl, "cannot prepare the requests: %s",
		    err_str(r));
	if ((c = curl_easy_init()) == NULL)
		fail_client(cl, "libcurl failed to initialise");
	snprintf(path, sizeof(path), "/v1/accounts/%s/devices", cl->account);
	/* Everyone starts together, once every plan is ready. */
	pthread_mutex_lock(&ld->lock);
	ld->ready++;
	pthread_cond_broadcast(&ld->cond);
	while (!ld->go)
		pthread_cond_wait(&ld->cond, &ld->lock);
	go = ld->go > 0 && cl->failure[0] == '\0';
	pthread_mutex_unlock(&ld->lock);
	for (i = 0; go && i < PER_THREAD; i++) {
		p = &cl->plan[i];
		pthread_mutex_lock(&ld->lock);
		if (ld->killed) {
			pthread_mutex_unlock(&ld->lock);
			break;
		}
		cl->busy = p->is_message ? 1 : 2;
		p->sent = 1;
		pthread_mutex_unlock(&ld->lock);
		if (p->is_message)
			st = post_from(c, cl->addr, ld->url, "/v1/messages",
			    p->body, p->body_len, cl->bearer, NULL, NULL);
		else
			st = post_from(c, cl->addr, ld->url, path, p->body,
			    p->body_len, NULL, cl->account, PW);
		pthread_mutex_lock(&ld->lock);
		cl->busy = 0;
		p->status = st;
		if (st >= 200 && st <= 299)
			ld->acked++;
		pthread_cond_broadcast(&ld->cond);
		pthread_mutex_unlock(&ld->lock);
		if (st == 0)
			break;
		/* Nothing here may be refused. */
		if (st < 200 || st > 299) {
			fail_client(cl, "request %d of %s answered %ld", i,
			    cl->account, st);
			break;
		}
	}
	pthread_mutex_lock(&ld->lock);
	ld->finished++;
	pthread_cond_broadcast(&ld->cond);
	pthread_mutex_unlock(&ld->lock);
	if (c != NULL)
		curl_easy_cleanup(c);
	return NULL;
}

/* --- checks after the restart --- */

static struct dirc *
client_new(const struct server *s)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_new(s->url, NULL, &c, &e) != 0)
		fail_msg("%s", err_msg(&e));
	return c;
}

static struct dirc *
login(const struct server *s, const char *dir_id, struct tdev *d)
{
	struct dirc *c = client_new(s);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_login(c, dir_id, d->rec.device, tdev_sign, d, NULL, &e) != 0)
		fail_msg("login of %.16s: %s", d->rec.device, err_msg(&e));
	return c;
}

/*
 * Fetches the whole log of account and verifies it from scratch under
 * dir_pub; st (initialised here, cleared by the caller) is the result.
 */
static void
verify_log(struct dirc *c, const char *account, const char *dir_id,
    EVP_PKEY *dir_pub, struct acctlog_state *st)
{
	struct acctlog_response *resp = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (acctlog_state_init(st, account, dir_id, &e) != 0)
		fail_msg("%s", err_msg(&e));
	/* These logs are far shorter than one answer's ACCTLOG_MAX_EVENTS. */
	if (dirc_get_log(c, account, 0, 0, &resp, &e) != 0 ||
	    acctlog_verify_update(st, resp->events, resp->n_events,
	    &resp->head, dir_pub, now_s(), 900, NULL, &e) != 0)
		fail_msg("log of %s does not verify: %s", account, err_msg(&e));
	acctlog_response_free(resp);
}

/* The sender of an envelope JSON among the clients, or NULL. */
static const struct tdev *
sender_of(const struct load *ld, const char *json, size_t len)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	const char *dev = json_string_value(json_object_get(json_object_get(o,
	    "sender"), "device"));
	const struct tdev *found = NULL;
	int i;

	for (i = 0; dev != NULL && i < N_THREADS; i++)
		if (strcmp(ld->c[i].sender.rec.device, dev) == 0)
			found = &ld->c[i].sender;
	json_decref(o);
	return found;
}

struct seen {
	char (*ids)[ID_MAX];
	size_t n;
};

static int
seen_has(const struct seen *sn, const char *id)
{
	size_t i;

	for (i = 0; i < sn->n; i++)
		if (strcmp(sn->ids[i], id) == 0)
			return 1;
	return 0;
}

static void
test_kill_under_load(void **state)
{
	struct server *s = *state;
	struct load *ld = calloc(1, sizeof(*ld));
	struct dirc *c = NULL, *cr;
	struct dirc_info info, again;
	struct dirc_inbox *in = NULL;
	struct acctlog_response *resp = NULL;
	struct acctlog_state st;
	struct seen seen[N_RECIPS];
	EVP_PKEY *dir_pub = NULL;
	struct timespec deadline;
	struct err_ctx e;
	char pwfile[600], args[2048], label[32], accounts[N_THREADS + 1][64];
	unsigned int out_at_kill = 0, regs_out_at_kill = 0, acked_at_kill;
	unsigned int unacked_present = 0;
	unsigned int acked_regs = 0, acked_msgs = 0, sent = 0;
	int i, j, k, timed_out = 0, rc;
	size_t n;
	FILE *f;

	assert_non_null(ld);
	memset(seen, 0, sizeof(seen));
	pthread_mutex_init(&ld->lock, NULL);
	pthread_cond_init(&ld->cond, NULL);
	err_clear(&e);

	/* Accounts, made with the tool before the server runs. */
	snprintf(pwfile, sizeof(pwfile), "%s/pw", s->dir);
	assert_non_null(f = fopen(pwfile, "w"));
	fprintf(f, "%s\n", PW);
	fclose(f);
	for (i = 0; i <= N_THREADS; i++) {
		if (i < N_THREADS)
			snprintf(accounts[i], sizeof(accounts[i]),
			    "load%02d@example.org", i);
		else
			snprintf(accounts[i], sizeof(accounts[i]), "%s", MBOX);
		snprintf(args, sizeof(args), "account add %s --db '%s' "
		    "--scrypt-cost 10 --password-file '%s'", accounts[i],
		    s->db, pwfile);
		assert_int_equal(run_tool(args), 0);
	}

	server_start(s);
	c = client_new(s);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(crypto_spki_import(info.head_key, info.head_key_len,
	    &dir_pub, &e), 0);
	/* The mailbox devices, and a sender with a session per client. */
	for (j = 0; j < N_RECIPS; j++) {
		snprintf(label, sizeof(label), "mailbox-%d", j);
		assert_int_equal(tdev_make(&ld->recips[j], MBOX, label,
		    now_s()), 0);
		if (dirc_register_device(c, PW, &ld->recips[j].rec, NULL,
		    &e) != 0)
			fail_msg("registration: %s", err_msg(&e));
	}
	for (i = 0; i < N_THREADS; i++) {
		struct client *cl = &ld->c[i];

		cl->ld = ld;
		cl->idx = i;
		snprintf(cl->account, sizeof(cl->account), "%s", accounts[i]);
		snprintf(cl->addr, sizeof(cl->addr), "host!127.0.0.%d",
		    2 + i / THREADS_PER_ADDR);
		assert_int_equal(tdev_make(&cl->sender, cl->account, "sender",
		    now_s()), 0);
		if (dirc_register_device(c, PW, &cl->sender.rec, NULL, &e) != 0)
			fail_msg("registration: %s", err_msg(&e));
		cr = login(s, info.directory_id, &cl->sender);
		snprintf(cl->bearer, sizeof(cl->bearer),
		    "Authorization: Bearer %s", dirc_token(cr));
		assert_int_equal(dirc_get_log(cr, cl->account, 0, 0, &resp,
		    &e), 0);
		cl->own_head = resp->head;
		acctlog_response_free(resp);
		resp = NULL;
		dirc_free(cr);
	}
	cr = login(s, info.directory_id, &ld->c[0].sender);
	assert_int_equal(dirc_get_log(cr, MBOX, 0, 0, &resp, &e), 0);
	ld->mbox_head = resp->head;
	acctlog_response_free(resp);
	resp = NULL;
	dirc_free(cr);
	ld->url = s->url;

	/* The load: every client prepares its plan, then all start. */
	for (i = 0; i < N_THREADS; i++) {
		ld->c[i].th_ok = pthread_create(&ld->c[i].th, NULL,
		    client_main, &ld->c[i]) == 0;
		if (!ld->c[i].th_ok)
			break;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += LOAD_WAIT_S;
	pthread_mutex_lock(&ld->lock);
	while (i == N_THREADS && ld->ready < N_THREADS && !timed_out)
		timed_out = pthread_cond_timedwait(&ld->cond, &ld->lock,
		    &deadline) == ETIMEDOUT;
	ld->go = i == N_THREADS && !timed_out ? 1 : -1;
	pthread_cond_broadcast(&ld->cond);
	/* kill -9 once KILL_AFTER requests were acknowledged. */
	while (ld->go > 0 && ld->acked < KILL_AFTER &&
	    ld->finished < N_THREADS) {
		if (pthread_cond_timedwait(&ld->cond, &ld->lock, &deadline) ==
		    ETIMEDOUT) {
			timed_out = 1;
			break;
		}
	}
	ld->killed = 1;
	for (i = 0; i < N_THREADS; i++) {
		out_at_kill += ld->c[i].busy != 0;
		regs_out_at_kill += ld->c[i].busy == 2;
	}
	acked_at_kill = ld->acked;
	pthread_mutex_unlock(&ld->lock);
	assert_int_equal(server_signal(s, SIGKILL), -1);
	for (i = 0; i < N_THREADS; i++)
		if (ld->c[i].th_ok)
			pthread_join(ld->c[i].th, NULL);
	for (i = 0; i < N_THREADS; i++) {
		assert_true(ld->c[i].th_ok);
		if (ld->c[i].failure[0] != '\0')
			fail_msg("client %d: %s", i, ld->c[i].failure);
	}
	if (timed_out)
		fail_msg("only %u requests were acknowledged in %d s",
		    acked_at_kill, LOAD_WAIT_S);
	/* The premise: the kill met requests that were out. */
	assert_true(acked_at_kill >= KILL_AFTER);
	assert_true(out_at_kill > 0);

	/* The restart on the same database. */
	dirc_free(c);
	server_start(s);
	c = client_new(s);
	assert_int_equal(dirc_info(c, &again, &e), 0);
	assert_string_equal(again.directory_id, info.directory_id);
	dirc_free(c);
	c = login(s, info.directory_id, &ld->c[0].sender);

	/* Every log verifies and holds every acknowledged device. */
	for (i = 0; i < N_THREADS; i++) {
		struct client *cl = &ld->c[i];

		memset(&st, 0, sizeof(st));
		verify_log(c, cl->account, info.directory_id, dir_pub, &st);
		assert_non_null(acctlog_state_find(&st,
		    cl->sender.rec.device));
		for (k = 0; k < PER_THREAD; k++) {
			const struct planned *p = &cl->plan[k];
			int present;

			sent += p->sent;
			if (p->is_message)
				continue;
			present = acctlog_state_find(&st, p->id) != NULL;
			if (p->status >= 200 && p->status <= 299) {
				acked_regs++;
				if (!present)
					fail_msg("device %.16s of %s was "
					    "acknowledged (%ld) but is not in "
					    "the log after the restart", p->id,
					    cl->account, p->status);
			} else if (present) {
				unacked_present++;
			}
		}
		acctlog_state_clear(&st);
	}
	memset(&st, 0, sizeof(st));
	verify_log(c, MBOX, info.directory_id, dir_pub, &st);
	assert_int_equal(st.n_devices, N_RECIPS);
	acctlog_state_clear(&st);

	/* Every envelope queued for a mailbox device opens for it. */
	for (j = 0; j < N_RECIPS; j++) {
		const struct tdev *sender;

		cr = login(s, info.directory_id, &ld->recips[j]);
		err_clear(&e);
		if (dirc_inbox(cr, 0, 1000, &in, &e) != 0)
			fail_msg("inbox: %s", err_msg(&e));
		/* One page holds it all. */
		assert_true(in->n_items < 1000);
		assert_non_null(seen[j].ids = calloc(in->n_items + 1,
		    sizeof(*seen[j].ids)));
		for (n = 0; n < in->n_items; n++) {
			const struct dirc_inbox_item *it = &in->items[n];

			assert_int_equal(json_id(it->envelope,
			    it->envelope_len, seen[j].ids[seen[j].n]), 0);
			seen[j].n++;
			sender = sender_of(ld, it->envelope, it->envelope_len);
			assert_non_null(sender);
			rc = tenv_open(&ld->recips[j], sender, it->envelope,
			    it->envelope_len);
			assert_int_equal(rc, 0);
		}
		dirc_inbox_free(in);
		in = NULL;
		dirc_free(cr);
	}
	/* ...and holds every acknowledged message addressed to it. */
	for (i = 0; i < N_THREADS; i++) {
		for (k = 0; k < PER_THREAD; k++) {
			const struct planned *p = &ld->c[i].plan[k];
			int present[2];

			if (!p->is_message)
				continue;
			present[0] = seen_has(&seen[p->recips[0]], p->id);
			present[1] = seen_has(&seen[p->recips[1]], p->id);
			if (p->status >= 200 && p->status <= 299) {
				acked_msgs++;
				if (!present[0] || !present[1])
					fail_msg("message %s was acknowledged "
					    "(%ld) but is not delivered to "
					    "mailbox device %d", p->id,
					    p->status, p->recips[present[0] ?
					    1 : 0]);
			} else {
				/* Queued for both or for none. */
				assert_int_equal(present[0], present[1]);
				unacked_present += present[0];
			}
		}
	}
	assert_int_equal(acked_regs + acked_msgs, ld->acked);
	print_message("%u requests sent, %u acknowledged (%u registrations, "
	    "%u messages), %u out when kill -9 came (%u registrations); %u "
	    "unanswered ones were kept\n", sent, ld->acked, acked_regs,
	    acked_msgs, out_at_kill, regs_out_at_kill, unacked_present);

	dirc_free(c);
	assert_int_equal(server_signal(s, SIGTERM), 0);
	for (j = 0; j < N_RECIPS; j++) {
		free(seen[j].ids);
		tdev_clear(&ld->recips[j]);
	}
	for (i = 0; i < N_THREADS; i++) {
		for (k = 0; k < PER_THREAD; k++)
			free(ld->c[i].plan[k].body);
		tdev_clear(&ld->c[i].sender);
	}
	EVP_PKEY_free(dir_pub);
	pthread_mutex_destroy(&ld->lock);
	pthread_cond_destroy(&ld->cond);
	free(ld);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_under_load, setup,
		    teardown),
	};
	int r;

	signal(SIGPIPE, SIG_IGN);
	/* Before any thread: libcurl's global state is not thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
