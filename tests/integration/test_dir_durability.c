/*
 * test_dir_durability.c - kill -9 with hundreds of requests in flight
 * loses no acknowledged write.
 *
 * The real devid-directory ($top_builddir/directory/devid-directory) runs
 * on a free loopback port with a fresh database whose accounts were made
 * beforehand with `devid-directory account add`, and with its default
 * limits (32 connections per client network, 3 password checks at once
 * per account and per network, the default password pool and queue).
 *
 * The clients: N_CONNS kept-alive connections, CONNS_PER_ADDR from each
 * source address 127.0.0.2 .. 127.0.0.(N_ADDRS + 1), all driven by one
 * thread with epoll.  Every address has ACCTS_PER_ADDR accounts of its
 * own, each with a sender device and its bearer session.  On
 * REGS_PER_ADDR connections of an address (one per account) each request
 * registers a new device of that account (HTTP Basic: a password check,
 * so at most REGS_PER_ADDR of them are out per network at once); on the
 * others each request posts a message from one of the address's senders
 * to two of the N_RECIPS devices of one mailbox account.  Every request,
 * its bytes and what must follow from it are planned before the load.
 *
 * The load runs in rounds of one request on every connection.
 * ROUNDS_BEFORE rounds run to the end: every answer must be 2xx.  In the
 * last round every connection sends its request as fast as it can; once
 * the first ANSWERS_BEFORE_KILL answers of that round were read (or
 * sooner, should the unanswered requests come close to MIN_IN_FLIGHT),
 * the server is killed with SIGKILL, and the test requires that at least
 * MIN_IN_FLIGHT requests were then sent whole with nothing of their
 * answer arrived.  Every request notes whether it was sent whole,
 * whether any of its answer had arrived when the signal was sent, and its
 * answer: 2xx, another status (a failure: nothing here may be refused),
 * or none (whatever was left in the sockets is read after the kill).
 *
 * Restarted on the same database, the directory must show:
 *  - every account log, fetched over HTTP, verifies from scratch with
 *    common/acctlog under the directory key announced before the kill,
 *    and holds every device whose registration was acknowledged;
 *  - every acknowledged message is in the inbox of each of its two
 *    recipient devices, every envelope there opens for its recipient, and
 *    an unacknowledged message is queued for both or for neither;
 * and it stops on SIGTERM with exit status 0.  The server dies with the
 * test (PR_SET_PDEATHSIG); sockets, memory and the temporary directory
 * are released on every path (teardown).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"
#include "dir-server-fixture.h"

#define N_ADDRS 10                   /* 127.0.0.2 .. 127.0.0.11 */
#define CONNS_PER_ADDR 25            /* below --max-per-address (32) */
#define N_CONNS (N_ADDRS * CONNS_PER_ADDR)
#define ACCTS_PER_ADDR 2
#define N_ACCTS (N_ADDRS * ACCTS_PER_ADDR)
#define REGS_PER_ADDR ACCTS_PER_ADDR /* one registering connection each */
#define ROUNDS_BEFORE 1              /* answered in full before the kill */
#define ROUNDS (ROUNDS_BEFORE + 1)
#define N_REQS (ROUNDS * N_CONNS)
#define MIN_ACKED_BEFORE 200         /* acknowledged before the last round */
#define MIN_IN_FLIGHT 200            /* out when kill -9 comes */
#define ANSWERS_BEFORE_KILL 16       /* of the last round, if they come */
#define KILL_MARGIN 16               /* above MIN_IN_FLIGHT */
#define KILL_WAIT_MS 2000
#define N_RECIPS 4
#define MBOX "mbox@example.org"
#define PW "durability test password"
#define CONNECT_WAIT_MS 10000
#define ROUND_WAIT_MS 120000         /* a round that makes no progress */
#define DEAD_WAIT_MS 30000           /* sockets of the killed server */
#define ID_MAX 96

/* One planned request and what came of it. */
struct req {
	int conn;
	int round;
	int is_message;
	char *http;                      /* the whole request: head and body */
	size_t http_len;
	char id[ID_MAX];                 /* device hex or envelope id */
	int recips[2];                   /* messages: indexes into recips */
	int sent;                        /* its bytes were all written */
	int answer_started;              /* some answer bytes arrived */
	int in_flight_at_kill;           /* sent, nothing back at the kill */
	int answered_after_kill;         /* its answer was read after it */
	long status;                     /* 0: no (complete) answer */
};

/* A client account: its sender device and credentials. */
struct acct {
	char name[64];
	struct tdev sender;
	int has_sender;
	struct acctlog_head head;        /* for envelope views */
	char bearer[64 + DIRC_TOKEN_MAX];
	char basic[256];
};

struct conn {
	int fd;
	int addr;                        /* 0 .. N_ADDRS - 1 */
	int acct;
	int is_reg;
	struct req *cur;                 /* sent, answer not complete */
	char *buf;                       /* answer bytes so far */
	size_t len, cap;
	int reopen;                      /* the server asked to close */
};

struct load {
	struct acct acct[N_ACCTS];
	struct conn conn[N_CONNS];
	struct req req[N_REQS];
	struct tdev recips[N_RECIPS];
	int n_recips;
	struct acctlog_head mbox_head;
	struct sockaddr_in server;
	char host[128];                  /* for the Host header */
	int ep;                          /* epoll */
	int killed;
};

/* The test's state, released by teardown on every path. */
struct fx {
	struct tsrv *srv;
	struct load *ld;
	struct dirc *c, *cr;
	struct dirc_inbox *in;
	struct acctlog_response *resp;
	struct acctlog_state st;
	int st_live;
	EVP_PKEY *dir_pub;
	char (*seen[N_RECIPS])[ID_MAX];
};

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static void
load_free(struct load *ld)
{
	int i;

	if (ld == NULL)
		return;
	for (i = 0; i < N_CONNS; i++) {
		if (ld->conn[i].fd >= 0)
			close(ld->conn[i].fd);
		free(ld->conn[i].buf);
	}
	if (ld->ep >= 0)
		close(ld->ep);
	for (i = 0; i < N_REQS; i++)
		free(ld->req[i].http);
	for (i = 0; i < N_ACCTS; i++)
		if (ld->acct[i].has_sender)
			tdev_clear(&ld->acct[i].sender);
	for (i = 0; i < ld->n_recips; i++)
		tdev_clear(&ld->recips[i]);
	free(ld);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if ((fx->srv = tsrv_new(0)) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	int j;

	if (fx == NULL)
		return 0;
	/* The server first: it is killed before the sockets close. */
	tsrv_free(fx->srv);
	load_free(fx->ld);
	dirc_free(fx->c);
	dirc_free(fx->cr);
	if (fx->in != NULL)
		dirc_inbox_free(fx->in);
	acctlog_response_free(fx->resp);
	if (fx->st_live)
		acctlog_state_clear(&fx->st);
	EVP_PKEY_free(fx->dir_pub);
	for (j = 0; j < N_RECIPS; j++)
		free(fx->seen[j]);
	free(fx);
	return 0;
}

/* --- planning --- */

/* The whole HTTP/1.1 request into q->http. */
static void
req_http(struct load *ld, struct req *q, const char *path,
    const char *auth, const char *body, size_t body_len)
{
	char head[1024];
	int n;

	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Content-Type: application/json\r\n"
	    "%s\r\n"
	    "Content-Length: %zu\r\n"
	    "\r\n", path, ld->host, auth, body_len);
	assert_true(n > 0 && (size_t)n < sizeof(head));
	assert_non_null(q->http = malloc((size_t)n + body_len));
	memcpy(q->http, head, (size_t)n);
	memcpy(q->http + n, body, body_len);
	q->http_len = (size_t)n + body_len;
}

/*
 * Plans request q: a registration of a new device of the connection's
 * account, or a message from the account's sender to two mailbox devices
 * ("to" names the mailbox and the sender's own account).
 */
static void
plan_one(struct load *ld, struct req *q)
{
	struct conn *cn = &ld->conn[q->conn];
	struct acct *a = &ld->acct[cn->acct];
	const char *to[2] = { MBOX, a->name };
	struct acctlog_head views[2];
	const struct tdev *rc[2];
	char path[128], label[32], *body = NULL;
	size_t len;
	struct tdev d;
	int r;

	if (q->is_message) {
		views[0] = ld->mbox_head;
		views[1] = a->head;
		q->recips[0] = (q->conn + q->round) % N_RECIPS;
		q->recips[1] = (q->conn + q->round + 1) % N_RECIPS;
		rc[0] = &ld->recips[q->recips[0]];
		rc[1] = &ld->recips[q->recips[1]];
		if ((r = tenv_make(&a->sender, to, 2, views, 2, rc, 2, &body,
		    &len)) != 0)
			fail_msg("cannot make an envelope: %s", err_str(r));
		if (tenv_id(body, len, q->id, sizeof(q->id)) != 0) {
			free(body);
			fail_msg("an envelope without an id");
		}
		req_http(ld, q, "/v1/messages", a->bearer, body, len);
		free(body);
		return;
	}
	snprintf(label, sizeof(label), "load-%d-%d", q->conn, q->round);
	if ((r = tdev_make(&d, a->name, label, now_s())) != 0)
		fail_msg("cannot make a device: %s", err_str(r));
	if ((r = devrec_encode(&d.rec, &body, NULL)) != 0) {
		tdev_clear(&d);
		fail_msg("cannot encode a device record: %s", err_str(r));
	}
	snprintf(q->id, sizeof(q->id), "%s", d.rec.device);
	tdev_clear(&d);
	snprintf(path, sizeof(path), "/v1/accounts/%s/devices", a->name);
	req_http(ld, q, path, a->basic, body, strlen(body));
	free(body);
}

/* "Authorization: Basic base64(user:pw)" into out. */
static void
basic_header(const char *user, const char *pw, char *out, size_t out_len)
{
	char cred[192];
	unsigned char b64[272];
	int n, m;

	n = snprintf(cred, sizeof(cred), "%s:%s", user, pw);
	assert_true(n > 0 && (size_t)n < sizeof(cred));
	assert_true((size_t)(n + 2) / 3 * 4 < sizeof(b64));
	m = EVP_EncodeBlock(b64, (const unsigned char *)cred, n);
	assert_true(m > 0);
	n = snprintf(out, out_len, "Authorization: Basic %s", b64);
	assert_true(n > 0 && (size_t)n < out_len);
}

/* --- the connections --- */

/* Opens connection k from its source address and watches it. */
static void
conn_open(struct load *ld, int k)
{
	struct conn *cn = &ld->conn[k];
	struct sockaddr_in src;
	struct epoll_event ev;
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0, r;

	cn->fd = -1;
	cn->len = 0;
	cn->reopen = 0;
	cn->cur = NULL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_msg("socket: %s", strerror(errno));
	cn->fd = fd;
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(0x7f000000u + 2u + (uint32_t)cn->addr);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)
		fail_msg("bind to 127.0.0.%d: %s", 2 + cn->addr,
		    strerror(errno));
	if (connect(fd, (struct sockaddr *)&ld->server,
	    sizeof(ld->server)) != 0) {
		if (errno != EINPROGRESS)
			fail_msg("connect: %s", strerror(errno));
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			r = poll(&pfd, 1, CONNECT_WAIT_MS);
		while (r < 0 && errno == EINTR);
		if (r != 1)
			fail_msg("connection %d was not established", k);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 ||
		    err != 0)
			fail_msg("connect: %s", strerror(err != 0 ? err :
			    errno));
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.u32 = (uint32_t)k;
	if (epoll_ctl(ld->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		fail_msg("epoll_ctl: %s", strerror(errno));
}

static void
conn_close(struct load *ld, struct conn *cn)
{
	if (cn->fd >= 0) {
		epoll_ctl(ld->ep, EPOLL_CTL_DEL, cn->fd, NULL);
		close(cn->fd);
	}
	cn->fd = -1;
	cn->cur = NULL;                  /* left unanswered */
	cn->len = 0;
}

/* Writes request q whole on its connection. */
static void
send_req(struct load *ld, struct req *q)
{
	struct conn *cn = &ld->conn[q->conn];
	struct pollfd pfd;
	size_t off = 0;
	ssize_t n;
	int r;

	assert_true(cn->fd >= 0 && cn->cur == NULL && cn->len == 0);
	while (off < q->http_len) {
		n = send(cn->fd, q->http + off, q->http_len - off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			pfd.fd = cn->fd;
			pfd.events = POLLOUT;
			do
				r = poll(&pfd, 1, ROUND_WAIT_MS);
			while (r < 0 && errno == EINTR);
			if (r == 1)
				continue;
		}
		fail_msg("request %d of round %d could not be sent: %s",
		    q->conn, q->round, n < 0 ? strerror(errno) : "stalled");
	}
	q->sent = 1;
	cn->cur = q;
}

/*
 * Parses an answer at the start of cn->buf: 1 with *status and *used (its
 * length) when it is complete, 0 when more must come.
 */
static int
answer_parse(struct conn *cn, long *status, size_t *used, int *close_after)
{
	const char *p, *end, *h;
	char *head;
	size_t hlen, clen = 0;
	int have_len = 0;

	if (cn->len < 4)
		return 0;
	end = memmem(cn->buf, cn->len, "\r\n\r\n", 4);
	if (end == NULL)
		return 0;
	hlen = (size_t)(end - cn->buf) + 4;
	assert_non_null(head = strndup(cn->buf, hlen));
	if (strncmp(head, "HTTP/1.", 7) != 0 || strlen(head) < 12) {
		free(head);
		fail_msg("not an HTTP answer: %.40s", cn->buf);
	}
	*status = strtol(head + 9, NULL, 10);
	*close_after = 0;
	for (p = strstr(head, "\r\n"); p != NULL && p[2] != '\r';
	    p = strstr(p + 2, "\r\n")) {
		h = p + 2;
		if (strncasecmp(h, "Content-Length:", 15) == 0) {
			clen = strtoul(h + 15, NULL, 10);
			have_len = 1;
		} else if (strncasecmp(h, "Connection:", 11) == 0 &&
		    strncasecmp(h + 11 + strspn(h + 11, " "), "close", 5) ==
		    0) {
			*close_after = 1;
		} else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0) {
			free(head);
			fail_msg("a chunked answer: this client reads answers "
			    "with a Content-Length only");
		}
	}
	free(head);
	if (!have_len)
		fail_msg("an answer without a Content-Length");
	if (cn->len < hlen + clen)
		return 0;
	*used = hlen + clen;
	return 1;
}

/* Reads what connection k has; closes it at the end of its stream. */
static void
conn_read(struct load *ld, int k)
{
	struct conn *cn = &ld->conn[k];
	char tmp[16384];
	size_t used;
	ssize_t n;
	long status;
	int close_after;

	for (;;) {
		n = recv(cn->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* The end, or a reset: whatever is out stays
			 * unanswered. */
			conn_close(ld, cn);
			return;
		}
		if (cn->cur == NULL)
			fail_msg("connection %d: %zd bytes nobody asked for", k,
			    n);
		cn->cur->answer_started = 1;
		if (cn->len + (size_t)n > cn->cap) {
			char *nb;

			assert_non_null(nb = realloc(cn->buf, cn->len +
			    (size_t)n + 4096));
			cn->buf = nb;
			cn->cap = cn->len + (size_t)n + 4096;
		}
		memcpy(cn->buf + cn->len, tmp, (size_t)n);
		cn->len += (size_t)n;
		if (!answer_parse(cn, &status, &used, &close_after))
			continue;
		if (used != cn->len)
			fail_msg("connection %d: bytes after the answer", k);
		cn->cur->status = status;
		cn->cur->answered_after_kill = ld->killed;
		cn->cur = NULL;
		cn->len = 0;
		cn->reopen = close_after;
	}
}

/* One epoll_wait of at most timeout_ms; the number of ready connections. */
static int
pump(struct load *ld, int timeout_ms)
{
	struct epoll_event evs[64];
	int n, i;

	do
		n = epoll_wait(ld->ep, evs, 64, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail_msg("epoll_wait: %s", strerror(errno));
	for (i = 0; i < n; i++)
		if (ld->conn[evs[i].data.u32].fd >= 0)
			conn_read(ld, (int)evs[i].data.u32);
	return n;
}

/* Reads every answer that already arrived, waiting for none. */
static void
drain(struct load *ld)
{
	while (pump(ld, 0) > 0)
		;
}

/* The number of connections with a request whose answer is incomplete. */
static int
outstanding(const struct load *ld)
{
	int k, n = 0;

	for (k = 0; k < N_CONNS; k++)
		n += ld->conn[k].cur != NULL;
	return n;
}

/* The order of the last round: the addresses in turn. */
static int
kill_order(int i)
{
	return (i % N_ADDRS) * CONNS_PER_ADDR + i / N_ADDRS;
}

/* Runs round r to its end: every request must be acknowledged. */
static unsigned int
run_round(struct load *ld, int r)
{
	double t0 = tmono_ms();
	unsigned int acked = 0;
	int k, i;

	for (i = 0; i < N_CONNS; i++) {
		k = kill_order(i);
		if (ld->conn[k].fd < 0 || ld->conn[k].reopen) {
			conn_close(ld, &ld->conn[k]);
			conn_open(ld, k);
		}
		send_req(ld, &ld->req[r * N_CONNS + k]);
	}
	while (outstanding(ld) > 0) {
		if (tmono_ms() - t0 > ROUND_WAIT_MS)
			fail_msg("round %d: %d requests still unanswered after "
			    "%d s", r, outstanding(ld), ROUND_WAIT_MS / 1000);
		pump(ld, 1000);
	}
	for (k = 0; k < N_CONNS; k++) {
		const struct req *q = &ld->req[r * N_CONNS + k];

		if (q->status == 0)
			fail_msg("%s on connection %d (127.0.0.%d) got no "
			    "answer", q->is_message ? "a message" :
			    "a registration", k, 2 + ld->conn[k].addr);
		if (q->status < 200 || q->status > 299)
			fail_msg("%s on connection %d (127.0.0.%d) was "
			    "answered %ld", q->is_message ? "a message" :
			    "a registration", k, 2 + ld->conn[k].addr,
			    q->status);
		acked++;
	}
	return acked;
}

/* --- checks after the restart --- */

/*
 * Fetches the whole log of account and verifies it from scratch under
 * dir_pub into fx->st (cleared by the caller).
 */
static void
verify_log(struct fx *fx, struct dirc *c, const char *account,
    const char *dir_id)
{
	struct err_ctx e;

	err_clear(&e);
	memset(&fx->st, 0, sizeof(fx->st));
	if (acctlog_state_init(&fx->st, account, dir_id, &e) != 0)
		fail_msg("%s", err_msg(&e));
	fx->st_live = 1;
	/* These logs are far shorter than one answer's ACCTLOG_MAX_EVENTS. */
	if (dirc_get_log(c, account, 0, 0, &fx->resp, &e) != 0 ||
	    acctlog_verify_update(&fx->st, fx->resp->events, fx->resp->n_events,
	    &fx->resp->head, fx->dir_pub, now_s(), 900, NULL, &e) != 0)
		fail_msg("log of %s does not verify: %s", account, err_msg(&e));
	acctlog_response_free(fx->resp);
	fx->resp = NULL;
}

static void
state_done(struct fx *fx)
{
	acctlog_state_clear(&fx->st);
	fx->st_live = 0;
}

/* The sender of an envelope JSON among the client accounts, or NULL. */
static const struct tdev *
sender_of(const struct load *ld, const char *json, size_t len)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	const char *dev = json_string_value(json_object_get(json_object_get(o,
	    "sender"), "device"));
	const struct tdev *found = NULL;
	int i;

	for (i = 0; dev != NULL && i < N_ACCTS; i++)
		if (strcmp(ld->acct[i].sender.rec.device, dev) == 0)
			found = &ld->acct[i].sender;
	json_decref(o);
	return found;
}

static int
seen_has(char (*ids)[ID_MAX], size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return 1;
	return 0;
}

/* Enough descriptors for every connection and then some. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = N_CONNS + 256;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		fail_msg("%d connections need %llu descriptors; the hard limit "
		    "is %llu", N_CONNS, (unsigned long long)want,
		    (unsigned long long)rl.rlim_max);
	rl.rlim_cur = want;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void
test_kill_under_load(void **state)
{
	struct fx *fx = *state;
	struct load *ld;
	struct dirc_info info, again;
	struct err_ctx e;
	size_t n_seen[N_RECIPS];
	char pwfile[600], out[4096], label[32];
	static const char *const idle_long[] = { "--request-timeout", "600",
		NULL };
	const char *add[] = { "account", "add", NULL, "--db", fx->srv->db,
		"--scrypt-cost", "10", "--password-file", pwfile, NULL };
	unsigned int acked_before = 0, in_flight = 0, regs_in_flight = 0;
	unsigned int sent_last = 0, acked_after_kill = 0, never = 0;
	unsigned int late_in_flight = 0, acked = 0, acked_regs = 0;
	unsigned int acked_msgs = 0, unacked_present = 0, sent = 0;
	int i, j, k, r;
	size_t n;
	FILE *f;

	raise_nofile();
	assert_non_null(ld = calloc(1, sizeof(*ld)));
	fx->ld = ld;
	ld->ep = -1;
	for (k = 0; k < N_CONNS; k++)
		ld->conn[k].fd = -1;
	memset(n_seen, 0, sizeof(n_seen));
	err_clear(&e);

	/* Accounts, made with the tool before the server runs. */
	snprintf(pwfile, sizeof(pwfile), "%s/pw", fx->srv->dir);
	assert_non_null(f = fopen(pwfile, "w"));
	fprintf(f, "%s\n", PW);
	fclose(f);
	assert_int_equal(chmod(pwfile, 0600), 0);	/* others: refused */
	for (i = 0; i <= N_ACCTS; i++) {
		const char *name = MBOX;

		if (i < N_ACCTS) {
			snprintf(ld->acct[i].name, sizeof(ld->acct[i].name),
			    "load%02d@example.org", i);
			name = ld->acct[i].name;
		}
		add[2] = name;
		if (tsrv_run(fx->srv, add, NULL, 0, out, sizeof(out)) != 0)
			fail_msg("account add %s: %s", name, out);
	}

	/*
	 * The request deadline is also how long the server keeps an idle
	 * keep-alive connection.  On a loaded machine a round can take longer
	 * than the default 30 s, and a connection that answered early would
	 * then be closed by the server just as the next round reuses it: a
	 * race of keep-alive that clients settle by retrying, not what this
	 * test is about.  So the connections stay open for the whole test.
	 */
	tsrv_start(fx->srv, idle_long);
	fx->c = tsrv_client(fx->srv);
	assert_int_equal(dirc_info(fx->c, &info, &e), 0);
	assert_int_equal(crypto_spki_import(info.head_key, info.head_key_len,
	    &fx->dir_pub, &e), 0);
	/* The mailbox devices, and a sender with a session per account. */
	for (j = 0; j < N_RECIPS; j++) {
		snprintf(label, sizeof(label), "mailbox-%d", j);
		assert_int_equal(tdev_make(&ld->recips[j], MBOX, label,
		    now_s()), 0);
		ld->n_recips++;
		if (dirc_register_device(fx->c, PW, &ld->recips[j].rec, NULL,
		    &e) != 0)
			fail_msg("registration: %s", err_msg(&e));
	}
	for (i = 0; i < N_ACCTS; i++) {
		struct acct *a = &ld->acct[i];

		assert_int_equal(tdev_make(&a->sender, a->name, "sender",
		    now_s()), 0);
		a->has_sender = 1;
		if (dirc_register_device(fx->c, PW, &a->sender.rec, NULL,
		    &e) != 0)
			fail_msg("registration: %s", err_msg(&e));
		fx->cr = tsrv_login(fx->srv, info.directory_id, &a->sender);
		snprintf(a->bearer, sizeof(a->bearer),
		    "Authorization: Bearer %s", dirc_token(fx->cr));
		basic_header(a->name, PW, a->basic, sizeof(a->basic));
		assert_int_equal(dirc_get_log(fx->cr, a->name, 0, 0, &fx->resp,
		    &e), 0);
		a->head = fx->resp->head;
		acctlog_response_free(fx->resp);
		fx->resp = NULL;
		dirc_free(fx->cr);
		fx->cr = NULL;
	}
	fx->cr = tsrv_login(fx->srv, info.directory_id, &ld->acct[0].sender);
	assert_int_equal(dirc_get_log(fx->cr, MBOX, 0, 0, &fx->resp, &e), 0);
	ld->mbox_head = fx->resp->head;
	acctlog_response_free(fx->resp);
	fx->resp = NULL;
	dirc_free(fx->cr);
	fx->cr = NULL;

	/* Where the load goes. */
	snprintf(ld->host, sizeof(ld->host), "%s", fx->srv->addr);
	ld->server.sin_family = AF_INET;
	ld->server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ld->server.sin_port = htons(fx->srv->port);

	/* Every request planned before the first goes out. */
	for (k = 0; k < N_CONNS; k++) {
		struct conn *cn = &ld->conn[k];
		int jj = k % CONNS_PER_ADDR;

		cn->addr = k / CONNS_PER_ADDR;
		cn->acct = cn->addr * ACCTS_PER_ADDR + jj % ACCTS_PER_ADDR;
		cn->is_reg = jj < REGS_PER_ADDR;
	}
	for (r = 0; r < ROUNDS; r++) {
		for (k = 0; k < N_CONNS; k++) {
			struct req *q = &ld->req[r * N_CONNS + k];

			q->conn = k;
			q->round = r;
			q->is_message = !ld->conn[k].is_reg;
			plan_one(ld, q);
		}
	}

	/* The connections, all open before the load. */
	if ((ld->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		fail_msg("epoll_create1: %s", strerror(errno));
	for (k = 0; k < N_CONNS; k++)
		conn_open(ld, k);

	/* Rounds answered in full. */
	for (r = 0; r < ROUNDS_BEFORE; r++)
		acked_before += run_round(ld, r);
	assert_true(acked_before >= MIN_ACKED_BEFORE);

	/* The last round: every connection sends at once... */
	drain(ld);
	for (k = 0; k < N_CONNS; k++)
		if (ld->conn[k].fd < 0 || ld->conn[k].reopen) {
			conn_close(ld, &ld->conn[k]);
			conn_open(ld, k);
		}
	for (i = 0; i < N_CONNS; i++) {
		k = kill_order(i);
		send_req(ld, &ld->req[ROUNDS_BEFORE * N_CONNS + k]);
	}
	/*
	 * ...the first few answers of this round are let in, so that the
	 * kill comes while the server is busy with it, and kill -9 meets
	 * the rest.
	 */
	{
		double t0 = tmono_ms();
		unsigned int answered, waiting;

		for (;;) {
			drain(ld);
			answered = waiting = 0;
			for (k = 0; k < N_CONNS; k++) {
				const struct req *q =
				    &ld->req[ROUNDS_BEFORE * N_CONNS + k];

				answered += q->status != 0;
				waiting += q->sent && !q->answer_started;
			}
			if (answered >= ANSWERS_BEFORE_KILL ||
			    waiting <= MIN_IN_FLIGHT + KILL_MARGIN ||
			    tmono_ms() - t0 > KILL_WAIT_MS)
				break;
			pump(ld, 1);
		}
	}
	for (k = 0; k < N_CONNS; k++) {
		struct req *q = &ld->req[ROUNDS_BEFORE * N_CONNS + k];

		sent_last += q->sent;
		q->in_flight_at_kill = q->sent && !q->answer_started;
		in_flight += q->in_flight_at_kill;
		regs_in_flight += q->in_flight_at_kill && !q->is_message;
	}
	ld->killed = 1;
	assert_int_equal(tsrv_kill(fx->srv), -1);
	/* Whatever the server wrote before it died is read now. */
	{
		double t0 = tmono_ms();
		int open;

		do {
			pump(ld, 200);
			for (k = open = 0; k < N_CONNS; k++)
				open += ld->conn[k].fd >= 0;
		} while (open > 0 && tmono_ms() - t0 < DEAD_WAIT_MS);
		if (open > 0)
			fail_msg("%d connections still open %d s after the "
			    "server was killed", open, DEAD_WAIT_MS / 1000);
	}
	for (k = 0; k < N_CONNS; k++) {
		const struct req *q = &ld->req[ROUNDS_BEFORE * N_CONNS + k];

		if (q->status != 0 && (q->status < 200 || q->status > 299))
			fail_msg("%s on connection %d was answered %ld",
			    q->is_message ? "a message" : "a registration", k,
			    q->status);
		acked_after_kill += q->answered_after_kill;
		late_in_flight += q->in_flight_at_kill && q->status != 0;
		never += q->sent && q->status == 0;
	}
	/* The premise: the kill met at least MIN_IN_FLIGHT requests out,
	 * registrations among them. */
	if (in_flight < MIN_IN_FLIGHT)
		fail_msg("only %u of %u requests were in flight at the kill "
		    "(the server answered the rest first)", in_flight,
		    sent_last);
	assert_true(regs_in_flight > 0);
	assert_true(in_flight - regs_in_flight > 0);

	/* The restart on the same database. */
	for (k = 0; k < N_CONNS; k++)
		conn_close(ld, &ld->conn[k]);
	dirc_free(fx->c);
	fx->c = NULL;
	tsrv_restart(fx->srv);
	fx->c = tsrv_client(fx->srv);
	assert_int_equal(dirc_info(fx->c, &again, &e), 0);
	assert_string_equal(again.directory_id, info.directory_id);
	dirc_free(fx->c);
	fx->c = tsrv_login(fx->srv, info.directory_id, &ld->acct[0].sender);

	/* Every log verifies and holds every acknowledged device. */
	for (i = 0; i < N_ACCTS; i++) {
		verify_log(fx, fx->c, ld->acct[i].name, info.directory_id);
		assert_non_null(acctlog_state_find(&fx->st,
		    ld->acct[i].sender.rec.device));
		for (k = 0; k < N_REQS; k++) {
			const struct req *q = &ld->req[k];
			int present;

			if (q->is_message || ld->conn[q->conn].acct != i)
				continue;
			present = acctlog_state_find(&fx->st, q->id) != NULL;
			if (q->status >= 200 && q->status <= 299) {
				acked_regs++;
				if (!present)
					fail_msg("device %.16s of %s was "
					    "acknowledged (%ld) but is not in "
					    "the log after the restart", q->id,
					    ld->acct[i].name, q->status);
			} else if (present) {
				unacked_present++;
			}
		}
		state_done(fx);
	}
	verify_log(fx, fx->c, MBOX, info.directory_id);
	assert_int_equal(fx->st.n_devices, N_RECIPS);
	state_done(fx);

	/* Every envelope queued for a mailbox device opens for it. */
	for (j = 0; j < N_RECIPS; j++) {
		const struct tdev *sender;

		fx->cr = tsrv_login(fx->srv, info.directory_id, &ld->recips[j]);
		err_clear(&e);
		if (dirc_inbox(fx->cr, 0, 1000, &fx->in, &e) != 0)
			fail_msg("inbox: %s", err_msg(&e));
		/* One page holds it all. */
		assert_true(fx->in->n_items < 1000);
		assert_non_null(fx->seen[j] = calloc(fx->in->n_items + 1,
		    sizeof(*fx->seen[j])));
		for (n = 0; n < fx->in->n_items; n++) {
			const struct dirc_inbox_item *it = &fx->in->items[n];

			assert_int_equal(tenv_id(it->envelope,
			    it->envelope_len, fx->seen[j][n_seen[j]],
			    sizeof(fx->seen[j][0])), 0);
			n_seen[j]++;
			sender = sender_of(ld, it->envelope, it->envelope_len);
			assert_non_null(sender);
			assert_int_equal(tenv_open(&ld->recips[j], sender,
			    it->envelope, it->envelope_len), 0);
		}
		dirc_inbox_free(fx->in);
		fx->in = NULL;
		dirc_free(fx->cr);
		fx->cr = NULL;
	}
	/* ...and holds every acknowledged message addressed to it. */
	for (k = 0; k < N_REQS; k++) {
		const struct req *q = &ld->req[k];
		int present[2];

		sent += q->sent;
		if (q->status >= 200 && q->status <= 299)
			acked++;
		if (!q->is_message)
			continue;
		present[0] = seen_has(fx->seen[q->recips[0]],
		    n_seen[q->recips[0]], q->id);
		present[1] = seen_has(fx->seen[q->recips[1]],
		    n_seen[q->recips[1]], q->id);
		if (q->status >= 200 && q->status <= 299) {
			acked_msgs++;
			if (!present[0] || !present[1])
				fail_msg("message %s was acknowledged (%ld) "
				    "but is not delivered to mailbox device %d",
				    q->id, q->status,
				    q->recips[present[0] ? 1 : 0]);
		} else {
			/* Queued for both or for none. */
			if (present[0] != present[1])
				fail_msg("unacknowledged message %s is queued "
				    "for one of its recipients only", q->id);
			unacked_present += present[0];
		}
	}
	assert_int_equal(acked_regs + acked_msgs, acked);
	print_message("%d connections from %d addresses; %u requests "
	    "acknowledged before the last round; in it %u sent, %u in flight "
	    "when kill -9 came (%u registrations, %u messages), %u of them "
	    "answered 2xx from the socket afterwards, %u acknowledged after "
	    "the signal in all, %u never answered; %u sent and %u "
	    "acknowledged in all; %u unanswered ones were kept\n", N_CONNS,
	    N_ADDRS, acked_before, sent_last, in_flight, regs_in_flight,
	    in_flight - regs_in_flight, late_in_flight, acked_after_kill,
	    never, sent, acked, unacked_present);

	dirc_free(fx->c);
	fx->c = NULL;
	assert_int_equal(tsrv_stop(fx->srv), 0);
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
	/* Before any client: libcurl's global state. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
