/*
 * bench-directory.c - what devid-directory sustains on this machine, and
 * how it holds up while others misbehave (docs/performance.md).
 *
 * One run measures, against the real server binary on loopback:
 *
 *  1. the HTTP ceiling: a minimal libmicrohttpd server in this process,
 *     with the directory's thread model, answering every request with a
 *     fixed JSON body as large as a real log answer;
 *  2. authenticated log reads per second, and their ratio to 1: one
 *     account read with one session, so every cache of the directory
 *     stays hot (1 and 2 in three rounds, in turn; the median round is
 *     quoted, since the machine's speed drifts between measurements);
 *  2b. the same reads across 2,000 accounts, each read with its own
 *     account's session in turn, so that the directory's caches of log
 *     tails, event pages and signed heads mostly miss (measured after 4,
 *     on a server and database of its own, reported after 2);
 *  3. message posts per second (distinct envelopes, one recipient
 *     device each);
 *  4. 2,000 idle inbox long-polls: the server's resident memory with
 *     them, and the log-read rate with them against without, in three
 *     rounds of without-then-with (the median round is quoted);
 *  5. the log-read latency (p50, p99) of one well-behaved client while
 *     nothing else runs, and while (a) 16 connections from one address
 *     and (b) 256 connections from 64 addresses send wrong passwords, with
 *     the server's default limits and password cost;
 *  7. with --tlog-db FILE (a database with a large transparency log, as
 *     bench-tlog --keep-db FILE leaves one), and then only this phase:
 *     inclusion proofs at random leaves of the latest checkpoint served
 *     per second, in turn with the ceiling (same answer size), ROUNDS
 *     rounds, the median round quoted;
 *  6. with --pg URI (an empty PostgreSQL database, such as the one
 *     swtpm-ci/pg-start prints): the log reads of 2 and the posts of 3
 *     on PostgreSQL, through one instance and then through two on that
 *     database (the connections split between them), printed beside the
 *     ceiling and the SQLite figures of 1-3.
 *
 * The load comes from a small HTTP/1.1 client on raw sockets (keep-alive,
 * one request in flight per connection, one epoll loop), the same for the
 * ceiling and for the server, so that the client's own cost weighs the
 * same on both.  Clients play several hosts by binding their sockets to
 * 127.0.0.x source addresses.  Everything stays on 127.0.0.0/8; the
 * server runs on a fresh database in a temporary directory, dies with
 * this process (PR_SET_PDEATHSIG) and is stopped on every exit path.
 *
 * Usage: bench-directory [--directory PATH] [--seconds N] [--pg URI] [-q]
 *
 * The whole run takes about 20 x --seconds (default 5) plus the set-up.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
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

#include <microhttpd.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "devrec.h"
#include "dirclient.h"
#include "bench-util.h"
#include "errors.h"
#include "dir-test-util.h"

#define PROG "bench-directory"

#define ALICE "alice@example.org"              /* reads, sends, is attacked */
#define ALICE_PATH "alice%40example.org"
#define BOB "bob@example.org"                  /* receives the posts */
#define CAROL "carol@example.org"              /* holds the long-polls */
#define PASSWORD "the password of the bench"
#define WRONG_PASSWORD "a wrong guess"

#define SECONDS_DEFAULT 5
#define SECONDS_QUICK 1
#define WARMUP_S 0.5
#define LOAD_CONNS 8                    /* throughput phases, 127.0.0.1 */
#define LONGPOLLS 2000
#define ROUNDS 3                    /* paired measurements, median quoted */
#define LONGPOLLS_PER_ADDRESS 20
#define LONGPOLL_FIRST_HOST 10          /* 127.0.0.10 .. 127.0.0.109 */
#define LONGPOLL_DEVICES 20
#define LONGPOLL_WAIT_S 60
#define READER_HOST 2                   /* the well-behaved client */
#define READER_RATE 40                  /* its requests per second */
#define LATENCY_FACTOR 2                /* phase 5 measures 2 x --seconds,
                                         * for enough samples for a p99 */
#define FLOOD_A_HOST 3
#define FLOOD_A_CONNS 16
#define FLOOD_B_FIRST_HOST 64           /* 127.0.0.64 .. 127.0.0.127 */
#define FLOOD_B_HOSTS 64
#define FLOOD_B_PER_HOST 4
#define ENVELOPES_PER_SECOND 4000       /* pool of the post phase */
#define ENVELOPES_PER_RECIPIENT 500     /* within any sender's share */
#define RECIPIENTS_MAX 90               /* bob's devices */
#define ENVGEN_THREADS 2
#define ANSWER_MAX (64 * 1024)
#define READY_WAIT_S 30
#define ANSWER_WAIT_S 10                /* the well-behaved client's limit */
#define BIG_LIMIT "1000000"
#define BIG_QUOTA "4294967296"          /* bytes */
#define BUSY_OTHER 0.2                  /* cores others may use unnoticed */
#define COLD_ACCOUNTS 2000              /* phase 2b: accounts, one device
                                         * and one session each */
#define COLD_NAME "reader%04zu@example.org"
#define COLD_PATH "/v1/accounts/reader%04zu%%40example.org/log?since=0"
#define COLD_SCRYPT_COST "10"           /* its server's password cost */
#define COLD_SETUP_THREADS 3            /* <= DIR_THROTTLE_FREE password
                                         * checks at once from 127.0.0.1 */
#define COLD_SETUP_MAX_S 60             /* the set-up gives up after */

static int quiet;
static char *tmp;               /* removed at exit */

static void
note(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* At exit, whatever the path: the server goes, and so does tmp. */
static void
cleanup(void)
{
	bench_server_kill();
	ttmpdir_remove(tmp);
	tmp = NULL;
}

static void
raise_fd_limit(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		bench_die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		bench_die("%llu file descriptors needed, the hard limit is "
		    "%llu (raise it with ulimit -Hn)", (unsigned long long)want,
		    (unsigned long long)rl.rlim_max);
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		bench_die("setrlimit: %s", strerror(errno));
}

/* 127.0.0.host */
static struct in_addr
loopback(unsigned int host)
{
	struct in_addr a;

	a.s_addr = htonl(0x7f000000u | (host & 0xffffffu));
	return a;
}

/* --- the server process --- */

/* 1 when `binary --help` mentions option (e.g. "--max-per-address"). */
static int
server_has_option(const char *binary, const char *option)
{
	const char *argv[] = { binary, "--help", NULL };
	char path[PATH_MAX], buf[16384];
	size_t n;
	FILE *f;

	if (bench_tool_run(argv) != 0)
		bench_die("%s does not run", binary);
	snprintf(path, sizeof(path), "%s/tool.out", tmp);
	if ((f = fopen(path, "r")) == NULL)
		bench_die("%s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, option) != NULL;
}

/* The server's open descriptors (connections included), or 0. */
static size_t
server_fd_count(const struct bench_server *s)
{
	char path[64];
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)s->pid);
	if ((dir = opendir(path)) == NULL)
		return 0;
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* --- set-up through common/dirclient --- */

static void
directory_id(const struct bench_server *s, char out[DEVREC_ID_HEX_LEN + 1])
{
	struct dirc_info info;

	bench_info(s, &info);
	snprintf(out, DEVREC_ID_HEX_LEN + 1, "%s", info.directory_id);
}

/* --- raw HTTP/1.1 --- */

/*
 * A request as one allocated string (caller frees) of *len bytes: method
 * path, Host, an optional header line (without CRLF) and an optional JSON
 * body with its Content-Length.
 */
static char *
http_request(const char *method, const char *path, const char *host,
    const char *header, const char *body, size_t body_len, size_t *len)
{
	char head[1024];
	char *req;
	int n;

	n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\n"
	    "%s%s", method, path, host, header != NULL ? header : "",
	    header != NULL ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		bench_die("request head too long");
	if (body != NULL) {
		int m = snprintf(head + n, sizeof(head) - (size_t)n,
		    "Content-Type: application/json\r\n"
		    "Content-Length: %zu\r\n", body_len);

		if (m < 0 || (size_t)m >= sizeof(head) - (size_t)n)
			bench_die("request head too long");
		n += m;
	}
	if ((size_t)n + 3 > sizeof(head))
		bench_die("request head too long");
	memcpy(head + n, "\r\n", 3);
	n += 2;
	*len = (size_t)n + (body != NULL ? body_len : 0);
	if ((req = malloc(*len + 1)) == NULL)
		bench_die("out of memory");
	memcpy(req, head, (size_t)n);
	if (body != NULL)
		memcpy(req + n, body, body_len);
	req[*len] = '\0';
	return req;
}

/* "Authorization: Basic base64(user:password)" into out. */
static void
basic_header(const char *user, const char *password, char *out,
    size_t out_len)
{
	unsigned char plain[512], enc[700];
	int n;

	n = snprintf((char *)plain, sizeof(plain), "%s:%s", user, password);
	if (n < 0 || (size_t)n >= sizeof(plain))
		bench_die("credentials too long");
	EVP_EncodeBlock(enc, plain, n);
	snprintf(out, out_len, "Authorization: Basic %s", enc);
}

/*
 * One HTTP/1.x answer at the start of p[0..len): 0 while incomplete; once
 * complete its total length, with the status, the body's length and
 * whether the server closes the connection after it; -1 when malformed,
 * without Content-Length, or larger than ANSWER_MAX.
 */
static long
http_answer_parse(const char *p, size_t len, int *status, size_t *body_len,
    int *close_after)
{
	const char *end, *line, *next;
	unsigned long cl = ULONG_MAX;
	size_t head_len;

	if ((end = memmem(p, len, "\r\n\r\n", 4)) == NULL)
		return len >= ANSWER_MAX ? -1 : 0;
	head_len = (size_t)(end - p) + 4;
	if (head_len < 13 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9')
		return -1;
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	*close_after = p[7] == '0';
	line = (const char *)memmem(p, head_len, "\r\n", 2) + 2;
	while (line < end + 2) {
		next = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (next == NULL)
			break;
		if (next - line > 15 &&
		    strncasecmp(line, "Content-Length:", 15) == 0)
			cl = strtoul(line + 15, NULL, 10);
		else if (next - line >= 16 &&
		    strncasecmp(line, "Connection:", 11) == 0 &&
		    memmem(line, (size_t)(next - line), "close", 5) != NULL)
			*close_after = 1;
		line = next + 2;
	}
	if (cl == ULONG_MAX || cl > ANSWER_MAX || head_len + cl > ANSWER_MAX)
		return -1;
	if (len < head_len + cl)
		return 0;
	*body_len = cl;
	return (long)(head_len + cl);
}

/* A blocking TCP connection from src (any port) to dst, TCP_NODELAY;
 * -1 with errno on failure. */
static int
tcp_connect(struct in_addr src, const struct sockaddr_in *dst)
{
	struct sockaddr_in sa;
	int fd, one = 1, saved;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr = src;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Sends all of p, blocking; 0 or -1. */
static int
send_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(fd, p, len, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * One exchange on a blocking connection: sends req and reads one whole
 * answer within deadline (CLOCK_MONOTONIC seconds).  The status in
 * *status, the body length in *body_len.  0, or -1 when the connection
 * broke, timed out or answered garbage (then close it).  *close_after
 * tells that the server closes after this answer.
 */
static int
http_exchange(int fd, const char *req, size_t req_len, double deadline,
    int *status, size_t *body_len, int *close_after)
{
	static __thread char in[ANSWER_MAX];
	struct pollfd pfd;
	size_t in_len = 0;
	double left;
	ssize_t n;
	long r;

	if (send_all(fd, req, req_len) != 0)
		return -1;
	for (;;) {
		r = http_answer_parse(in, in_len, status, body_len,
		    close_after);
		if (r < 0)
			return -1;
		if (r > 0)
			return 0;
		left = deadline - bench_now_s();
		if (left <= 0)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 &&
		    errno != EINTR)
			return -1;
		if (pfd.revents == 0)
			continue;
		n = recv(fd, in + in_len, sizeof(in) - in_len, MSG_DONTWAIT);
		if (n == 0)
			return -1;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		in_len += (size_t)n;
	}
}

/* --- where the CPU time goes --- */

/*
 * CPU seconds used so far: by the calling thread (the load's client), by
 * the server (the process pid, or for pid 0 this process without the
 * calling thread: the in-process ceiling server), and by the whole
 * machine (every CPU's non-idle time, /proc/stat).
 */
struct cpu_sample {
	double client_s, server_s, machine_s;
};

static double
clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Non-idle CPU seconds of the machine, 0 when unknown. */
static double
machine_cpu_s(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f;
	int n;

	if ((f = fopen("/proc/stat", "r")) == NULL)
		return 0;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8)
		return 0;
	/* user nice system (idle iowait) irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
	    (double)sysconf(_SC_CLK_TCK);
}

/* server2: a second server process whose CPU counts too, or 0. */
static void
cpu_sample_take(struct cpu_sample *c, pid_t server, pid_t server2)
{
	c->client_s = clock_s(CLOCK_THREAD_CPUTIME_ID);
	c->server_s = server > 0 ? bench_proc_cpu_s(server) :
	    clock_s(CLOCK_PROCESS_CPUTIME_ID) - c->client_s;
	if (server2 > 0)
		c->server_s += bench_proc_cpu_s(server2);
	c->machine_s = machine_cpu_s();
}

/* Cores busy between two samples elapsed_s apart. */
struct cpu_use {
	double server, client, other;
};

static void
cpu_use_between(const struct cpu_sample *a, const struct cpu_sample *b,
    double elapsed_s, struct cpu_use *u)
{
	memset(u, 0, sizeof(*u));
	if (elapsed_s <= 0)
		return;
	u->server = (b->server_s - a->server_s) / elapsed_s;
	u->client = (b->client_s - a->client_s) / elapsed_s;
	u->other = (b->machine_s - a->machine_s) / elapsed_s - u->server -
	    u->client;
	if (u->other < 0)
		u->other = 0;
}

/* --- the load: many keep-alive connections in one epoll loop --- */

struct hconn {
	int fd;                         /* -1 while disconnected */
	struct in_addr src;
	const struct sockaddr_in *dst;  /* l->dst or l->dst2 */
	const char *out;                /* request being sent (not owned) */
	size_t out_len, out_off;
	int want_out;                   /* EPOLLOUT armed */
	int in_flight;
	double retry_at;
	char in[ANSWER_MAX];
	size_t in_len;
};

/* The next request to send: bytes that stay valid during the run, NULL
 * when there are no more. */
typedef const char *(*load_next_fn)(void *arg, size_t *len);

struct load {
	struct sockaddr_in dst;
	struct sockaddr_in dst2;        /* every second connection, when set */
	struct hconn *conns;
	size_t n_conns;
	int ep;
	load_next_fn next;
	void *next_arg;
	int ok_status;                  /* answers that count as done */
	int counting;                   /* after the warm-up */
	int exhausted;                  /* next() returned NULL */
	uint64_t ok;                    /* counted answers with ok_status */
	uint64_t errors;                /* broken connections, garbage */
	uint64_t by_status[600];
	char sample[160];               /* the first other answer's body */
	double elapsed_s;               /* of the counted window */
	pid_t server;                   /* whose CPU use to measure */
	pid_t server2;                  /* and, when not 0, this one's too */
	struct cpu_use cpu;             /* during the counted window */
};

/* n connections from the source hosts[i] (127.0.0.hosts[i]). */
static void
load_init(struct load *l, const struct sockaddr_in *dst,
    const unsigned int *hosts, size_t n, load_next_fn next, void *next_arg,
    int ok_status)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	l->dst = *dst;
	l->n_conns = n;
	if ((l->conns = calloc(n, sizeof(*l->conns))) == NULL)
		bench_die("out of memory");
	for (i = 0; i < n; i++) {
		l->conns[i].fd = -1;
		l->conns[i].src = loopback(hosts[i]);
		l->conns[i].dst = &l->dst;
	}
	l->next = next;
	l->next_arg = next_arg;
	l->ok_status = ok_status;
	if ((l->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		bench_die("epoll_create1: %s", strerror(errno));
}

static void
load_free(struct load *l)
{
	size_t i;

	for (i = 0; i < l->n_conns; i++)
		if (l->conns[i].fd >= 0)
			close(l->conns[i].fd);
	free(l->conns);
	close(l->ep);
	memset(l, 0, sizeof(*l));
}

static void
conn_close(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in_len = 0;
	c->in_flight = 0;
	c->want_out = 0;
	c->retry_at = 0;
}

/* The connection broke: a request in flight counts as an error. */
static void
conn_fail(struct load *l, struct hconn *c)
{
	if (c->in_flight && l->counting)
		l->errors++;
	conn_close(c);
	c->retry_at = bench_now_s() + 0.01;
}

static void
conn_arm(struct load *l, struct hconn *c, int want_out)
{
	struct epoll_event ev;

	if (c->want_out == want_out)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = want_out;
}

/* Writes what is left of the request; arms EPOLLOUT when the socket is
 * full. */
static void
conn_flush(struct load *l, struct hconn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				conn_arm(l, c, 1);
				return;
			}
			conn_fail(l, c);
			return;
		}
		c->out_off += (size_t)n;
	}
	conn_arm(l, c, 0);
}

static void
conn_send_next(struct load *l, struct hconn *c)
{
	if ((c->out = l->next(l->next_arg, &c->out_len)) == NULL) {
		l->exhausted = 1;
		return;
	}
	c->out_off = 0;
	c->in_flight = 1;
	conn_flush(l, c);
}

static void
conn_open(struct load *l, struct hconn *c)
{
	struct epoll_event ev;

	if ((c->fd = tcp_connect(c->src, c->dst)) < 0) {
		if (l->counting)
			l->errors++;
		c->retry_at = bench_now_s() + 0.01;
		return;
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		bench_die("epoll_ctl: %s", strerror(errno));
	c->want_out = 0;
	if (!l->exhausted)
		conn_send_next(l, c);
}

/* Reads what came, counts the whole answers and sends the next request. */
static void
conn_readable(struct load *l, struct hconn *c)
{
	size_t body_len;
	int status, close_after;
	ssize_t n;
	long r;

	for (;;) {
		n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
		    MSG_DONTWAIT);
		if (n == 0) {
			conn_fail(l, c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			conn_fail(l, c);
			return;
		}
		c->in_len += (size_t)n;
		if (c->in_len == sizeof(c->in))
			break;
	}
	while ((r = http_answer_parse(c->in, c->in_len, &status, &body_len,
	    &close_after)) > 0) {
		if (l->counting) {
			l->by_status[status]++;
			if (status == l->ok_status)
				l->ok++;
			else if (l->sample[0] == '\0')
				snprintf(l->sample, sizeof(l->sample),
				    "%d %.*s", status, (int)(body_len < 140 ?
				    body_len : 140), c->in + (size_t)r -
				    body_len);
		}
		c->in_flight = 0;
		memmove(c->in, c->in + r, c->in_len - (size_t)r);
		c->in_len -= (size_t)r;
		if (close_after) {
			conn_close(c);
			return;
		}
		if (!l->exhausted)
			conn_send_next(l, c);
		if (c->fd < 0)
			return;
	}
	if (r < 0)
		conn_fail(l, c);
}

/*
 * Runs the load for warmup_s, then counts for seconds (or until next()
 * has no more requests and none is in flight).  Connections that break
 * are opened again.  The counts are in l; all connections are closed
 * at the end.
 */
static void
load_run(struct load *l, double warmup_s, double seconds)
{
	struct epoll_event evs[64];
	struct cpu_sample c0, c1;
	double t0, t, start = 0, end;
	size_t i;
	int n, k, busy;

	for (i = 0; i < l->n_conns; i++)
		conn_open(l, &l->conns[i]);
	t0 = bench_now_s();
	end = t0 + warmup_s + seconds;
	if (warmup_s <= 0) {
		l->counting = 1;
		start = t0;
		cpu_sample_take(&c0, l->server, l->server2);
	}
	while (!bench_interrupted) {
		t = bench_now_s();
		if (!l->counting && t >= t0 + warmup_s) {
			l->counting = 1;
			start = t;
			cpu_sample_take(&c0, l->server, l->server2);
			l->ok = l->errors = 0;
			memset(l->by_status, 0, sizeof(l->by_status));
			l->sample[0] = '\0';
		}
		if (t >= end)
			break;
		if (l->exhausted) {
			for (i = 0, busy = 0; i < l->n_conns; i++)
				busy |= l->conns[i].in_flight;
			if (!busy)
				break;
		}
		n = epoll_wait(l->ep, evs, 64, 20);
		for (k = 0; k < n; k++) {
			struct hconn *c = evs[k].data.ptr;

			if (c->fd < 0)
				continue;
			if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(l, c);
			if (c->fd >= 0 && (evs[k].events & EPOLLOUT))
				conn_flush(l, c);
		}
		for (i = 0, t = bench_now_s(); i < l->n_conns; i++)
			if (l->conns[i].fd < 0 && t >= l->conns[i].retry_at)
				conn_open(l, &l->conns[i]);
	}
	bench_check_interrupted();
	if (l->counting) {
		cpu_sample_take(&c1, l->server, l->server2);
		l->elapsed_s = bench_now_s() - start;
		cpu_use_between(&c0, &c1, l->elapsed_s, &l->cpu);
	}
	for (i = 0; i < l->n_conns; i++)
		conn_close(&l->conns[i]);
}

static double
load_rate(const struct load *l)
{
	return l->elapsed_s > 0 ? (double)l->ok / l->elapsed_s : 0;
}

/* "401 x 12, 429 x 3" of the statuses other than ok_status. */
static void
load_statuses(const struct load *l, char *out, size_t out_len)
{
	size_t n = 0;
	int s;

	out[0] = '\0';
	for (s = 100; s < 600; s++) {
		if (l->by_status[s] == 0)
			continue;
		n += (size_t)snprintf(out + n, out_len - n, "%s%d x %" PRIu64,
		    n > 0 ? ", " : "", s, l->by_status[s]);
		if (n >= out_len)
			break;
	}
	if (out[0] == '\0')
		snprintf(out, out_len, "none");
}

struct fixed_request {
	const char *req;
	size_t len;
};

static const char *
next_fixed(void *arg, size_t *len)
{
	const struct fixed_request *f = arg;

	*len = f->len;
	return f->req;
}

struct throughput {
	double rate;                    /* answers with ok_status per second */
	struct cpu_use cpu;
	int exhausted;                  /* next() ran out before the end */
};

static void measure_throughput2(const struct sockaddr_in *dst, pid_t server,
    const struct sockaddr_in *dst2, pid_t server2, load_next_fn next,
    void *next_arg, int ok_status, double seconds, const char *what,
    struct throughput *out);

/*
 * LOAD_CONNS connections from 127.0.0.1 sending next()'s requests for
 * seconds after a warm-up; the rate of answers with ok_status and the CPU
 * use of server (a pid, or 0: this process) into out.  Other answers and
 * broken connections are reported as a warning about what.
 */
static void
measure_throughput(const struct sockaddr_in *dst, pid_t server,
    load_next_fn next, void *next_arg, int ok_status, double seconds,
    const char *what, struct throughput *out)
{
	measure_throughput2(dst, server, NULL, 0, next, next_arg, ok_status,
	    seconds, what, out);
}

/*
 * measure_throughput() with every second connection to dst2 (NULL: none)
 * and the CPU use of server2 (0: none) counted as the server's too.
 */
static void
measure_throughput2(const struct sockaddr_in *dst, pid_t server,
    const struct sockaddr_in *dst2, pid_t server2, load_next_fn next,
    void *next_arg, int ok_status, double seconds, const char *what,
    struct throughput *out)
{
	unsigned int hosts[LOAD_CONNS];
	struct load l;
	char other[256];
	size_t i;

	for (i = 0; i < LOAD_CONNS; i++)
		hosts[i] = 1;
	load_init(&l, dst, hosts, LOAD_CONNS, next, next_arg, ok_status);
	l.server = server;
	l.server2 = server2;
	if (dst2 != NULL) {
		l.dst2 = *dst2;
		for (i = 1; i < LOAD_CONNS; i += 2)
			l.conns[i].dst = &l.dst2;
	}
	load_run(&l, WARMUP_S, seconds);
	out->rate = load_rate(&l);
	out->cpu = l.cpu;
	out->exhausted = l.exhausted;
	l.by_status[ok_status] = 0;
	load_statuses(&l, other, sizeof(other));
	if (l.errors > 0 || strcmp(other, "none") != 0)
		fprintf(stderr, PROG ": WARNING: %s: %" PRIu64 " broken "
		    "connections, other answers: %s (%s)\n", what, l.errors,
		    other, l.sample);
	load_free(&l);
}

/* --- 1. the HTTP ceiling --- */

struct ceiling {
	struct MHD_Daemon *daemon;
	char *body;
	size_t body_len;
	struct sockaddr_in addr;
};

/* Answers every request, once it has arrived whole, with the fixed body,
 * the way the directory answers (a response object per request). */
static enum MHD_Result
ceiling_answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	static int seen;
	struct ceiling *cs = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;
	if (*req_cls == NULL) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	resp = MHD_create_response_from_buffer(cs->body_len, cs->body,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Starts the ceiling server on 127.0.0.1:0 with a body of body_len. */
static void
ceiling_start(struct ceiling *cs, size_t body_len)
{
	const union MHD_DaemonInfo *di;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(cs->addr);
	size_t i;

	memset(cs, 0, sizeof(*cs));
	if (body_len < 16)
		body_len = 16;
	if ((cs->body = malloc(body_len)) == NULL)
		bench_die("out of memory");
	memcpy(cs->body, "{\"pad\":\"", 8);
	for (i = 8; i < body_len - 2; i++)
		cs->body[i] = 'x';
	memcpy(cs->body + body_len - 2, "\"}", 2);
	cs->body_len = body_len;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr = loopback(1);
	cs->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    ceiling_answer, cs,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)4,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)4000,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
	    MHD_OPTION_END);
	if (cs->daemon == NULL)
		bench_die("cannot start the libmicrohttpd ceiling server");
	if ((di = MHD_get_daemon_info(cs->daemon,
	    MHD_DAEMON_INFO_LISTEN_FD)) == NULL ||
	    getsockname(di->listen_fd, (struct sockaddr *)&cs->addr,
	    &sl) != 0)
		bench_die("cannot find the ceiling server's port");
}

static void
ceiling_stop(struct ceiling *cs)
{
	MHD_stop_daemon(cs->daemon);
	free(cs->body);
	memset(cs, 0, sizeof(*cs));
}

/* --- 3. envelopes for the post phase --- */

struct envpool {
	char **reqs;
	size_t *lens;
	size_t n, next;
	/* for the generator threads */
	const struct tdev *sender;
	const struct tdev *recips;              /* bob's devices */
	size_t n_recips;
	struct acctlog_head views[2];           /* of alice and bob */
	const char *host;
	char auth[DIRC_TOKEN_MAX + 32];
};

struct envgen {
	struct envpool *p;
	size_t from, to;
	int r;
};

static void *
envgen_main(void *arg)
{
	static const char *const to[] = { ALICE, BOB };
	struct envgen *g = arg;
	struct envpool *p = g->p;
	const struct tdev *recips[1];
	char *json;
	size_t i, len;

	for (i = g->from; i < g->to && !bench_interrupted; i++) {
		json = NULL;
		recips[0] = &p->recips[i % p->n_recips];
		if ((g->r = tenv_make(p->sender, to, 2, p->views, 2, recips, 1,
		    &json, &len)) != 0)
			return NULL;
		p->reqs[i] = http_request("POST", "/v1/messages", p->host,
		    p->auth, json, len, &p->lens[i]);
		free(json);
	}
	return NULL;
}

/* n distinct envelopes from sender (alice), each to one of bob's devices
 * in turn, as whole requests. */
static void
envpool_make(struct envpool *p, size_t n)
{
	struct envgen g[ENVGEN_THREADS];
	pthread_t th[ENVGEN_THREADS];
	size_t i;

	p->n = n;
	p->next = 0;
	if ((p->reqs = calloc(n, sizeof(*p->reqs))) == NULL ||
	    (p->lens = calloc(n, sizeof(*p->lens))) == NULL)
		bench_die("out of memory");
	for (i = 0; i < ENVGEN_THREADS; i++) {
		g[i].p = p;
		g[i].from = n * i / ENVGEN_THREADS;
		g[i].to = n * (i + 1) / ENVGEN_THREADS;
		g[i].r = 0;
		if (pthread_create(&th[i], NULL, envgen_main, &g[i]) != 0)
			bench_die("pthread_create failed");
	}
	for (i = 0; i < ENVGEN_THREADS; i++)
		pthread_join(th[i], NULL);
	bench_check_interrupted();
	for (i = 0; i < ENVGEN_THREADS; i++)
		if (g[i].r != 0)
			bench_die("sealing an envelope: %s", err_str(g[i].r));
}

static void
envpool_free(struct envpool *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->reqs[i]);
	free(p->reqs);
	free(p->lens);
	p->reqs = NULL;
	p->lens = NULL;
	p->n = 0;
}

static const char *
next_envelope(void *arg, size_t *len)
{
	struct envpool *p = arg;

	if (p->next >= p->n)
		return NULL;
	*len = p->lens[p->next];
	return p->reqs[p->next++];
}

/* --- 4. idle long-polls --- */

/* Opens LONGPOLLS connections, LONGPOLLS_PER_ADDRESS per source address,
 * each sending one of the n_reqs requests.  Dies when one fails. */
static int *
longpolls_open(const struct sockaddr_in *dst, char *const *reqs,
    const size_t *lens, size_t n_reqs)
{
	int *fds;
	size_t i;

	if ((fds = malloc(LONGPOLLS * sizeof(*fds))) == NULL)
		bench_die("out of memory");
	for (i = 0; i < LONGPOLLS; i++) {
		unsigned int host = LONGPOLL_FIRST_HOST +
		    (unsigned int)(i / LONGPOLLS_PER_ADDRESS);

		if ((fds[i] = tcp_connect(loopback(host), dst)) < 0)
			bench_die("long-poll %zu from 127.0.0.%u: %s", i, host,
			    strerror(errno));
		if (send_all(fds[i], reqs[i % n_reqs], lens[i % n_reqs]) != 0)
			bench_die("long-poll %zu: %s", i, strerror(errno));
		bench_check_interrupted();
	}
	return fds;
}

/* How many of the long-polls are still open without an answer. */
static size_t
longpolls_waiting(const int *fds)
{
	size_t i, n = 0;
	char c;

	for (i = 0; i < LONGPOLLS; i++)
		if (recv(fds[i], &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
		    errno == EAGAIN)
			n++;
	return n;
}

static void
longpolls_close(int *fds)
{
	size_t i;

	for (i = 0; i < LONGPOLLS; i++)
		close(fds[i]);
	free(fds);
}

/* --- 5. the well-behaved client --- */

struct reader {
	struct sockaddr_in dst;
	struct in_addr src;
	const char *req;
	size_t req_len;
	double start_s, seconds;
	double *lat_ms;
	size_t n_lat, max_lat;
	uint64_t sent, failed;
};

/*
 * Sends req at READER_RATE per second from its own address on one
 * keep-alive connection (opened again when it breaks), from start_s for
 * seconds, keeping the latency of each 200 answer; anything else (another
 * status, a broken connection, no answer within ANSWER_WAIT_S) counts as
 * failed.
 */
static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	struct timespec ts;
	double at = rd->start_s, end = rd->start_s + rd->seconds, t;
	size_t body_len;
	int fd = -1, status, close_after;

	while (!bench_interrupted) {
		ts.tv_sec = (time_t)at;
		ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR && !bench_interrupted)
			;
		if ((t = bench_now_s()) >= end)
			break;
		rd->sent++;
		if (fd < 0 && (fd = tcp_connect(rd->src, &rd->dst)) < 0) {
			rd->failed++;
		} else if (http_exchange(fd, rd->req, rd->req_len,
		    t + ANSWER_WAIT_S, &status, &body_len,
		    &close_after) != 0) {
			rd->failed++;
			close(fd);
			fd = -1;
		} else {
			if (status == 200 && rd->n_lat < rd->max_lat)
				rd->lat_ms[rd->n_lat++] =
				    (bench_now_s() - t) * 1e3;
			else if (status != 200)
				rd->failed++;
			if (close_after) {
				close(fd);
				fd = -1;
			}
		}
		at += 1.0 / READER_RATE;
		if (at < bench_now_s())
			at = bench_now_s();
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

struct latency {
	double p50_ms, p99_ms;
	uint64_t sent, failed;
	size_t n;
	char flood[256];                /* the flood's answers */
	double flood_rate;
};

/*
 * The reader's latency while n_flood connections from hosts[] send
 * flood_req as fast as they get answers (none when n_flood is 0).
 */
static void
measure_latency(const struct sockaddr_in *dst, const char *read_req,
    size_t read_len, const unsigned int *hosts, size_t n_flood,
    const char *flood_req, size_t flood_len, double seconds,
    struct latency *out)
{
	struct fixed_request f = { flood_req, flood_len };
	struct reader rd;
	struct load l;
	pthread_t th;

	memset(&rd, 0, sizeof(rd));
	memset(out, 0, sizeof(*out));
	rd.dst = *dst;
	rd.src = loopback(READER_HOST);
	rd.req = read_req;
	rd.req_len = read_len;
	rd.seconds = seconds;
	rd.max_lat = (size_t)(seconds * READER_RATE) + 16;
	if ((rd.lat_ms = calloc(rd.max_lat, sizeof(*rd.lat_ms))) == NULL)
		bench_die("out of memory");
	/* The flood runs first for a while, so that the reader meets it in
	 * its steady state. */
	rd.start_s = bench_now_s() + (n_flood > 0 ? 1.0 : 0);
	if (pthread_create(&th, NULL, reader_main, &rd) != 0)
		bench_die("pthread_create failed");
	if (n_flood > 0) {
		load_init(&l, dst, hosts, n_flood, next_fixed, &f, -1);
		load_run(&l, 1.0, seconds + 0.2);
		load_statuses(&l, out->flood, sizeof(out->flood));
		out->flood_rate = l.elapsed_s > 0 ? (double)(l.by_status[401] +
		    l.by_status[429] + l.by_status[503]) / l.elapsed_s : 0;
		if (l.errors > 0)
			snprintf(out->flood + strlen(out->flood),
			    sizeof(out->flood) - strlen(out->flood),
			    ", %" PRIu64 " broken", l.errors);
		load_free(&l);
	}
	pthread_join(th, NULL);
	bench_check_interrupted();
	out->sent = rd.sent;
	out->failed = rd.failed;
	out->n = rd.n_lat;
	out->p50_ms = bench_quantile(rd.lat_ms, rd.n_lat, 0.50);
	out->p99_ms = bench_quantile(rd.lat_ms, rd.n_lat, 0.99);
	free(rd.lat_ms);
}

/* --- the run --- */

struct throughput;
static void pick_median(const struct throughput *base,
    const struct throughput *b, double *ratio, struct throughput *base_out,
    struct throughput *b_out);

struct results {
	size_t answer_len;
	struct throughput ceiling, reads, posts;  /* the median round */
	struct throughput ceilings[ROUNDS], hot_reads[ROUNDS];
	double hot_ratio[ROUNDS];
	size_t posts_pool;
	struct throughput cold;         /* 2b */
	size_t cold_answer_len;
	double cold_setup_s;
	struct throughput reads_without, reads_with; /* the median round */
	struct throughput lp_without[ROUNDS], lp_with[ROUNDS];
	double lp_ratio[ROUNDS];
	size_t lp_held_before, lp_held_after;
	unsigned long rss_before_kib, rss_with_kib;
	struct latency idle, flood_a, flood_b;
	int stop_a, stop_b, stop_c;
	/* 7: proofs of the transparency log, in turn with the ceiling */
	int tlog_done;
	uint64_t tlog_size;
	size_t tlog_answer_len;
	struct throughput tlog_ceilings[ROUNDS], tlog_proofs[ROUNDS];
	struct throughput tlog_ceiling, tlog_proof;
	double tlog_ratio[ROUNDS];
	int stop_t;
	/* 6: through one instance [0] and two [1] */
	int pg_done;
	struct throughput pg_reads[2], pg_posts[2];
	size_t pg_posts_pool[2];
	int stop_pg;
};

/*
 * The ratio b/base of each of the ROUNDS rounds into ratio[], and into
 * *base_out and *b_out the pair of the round whose ratio is the median.
 */
static void
pick_median(const struct throughput *base, const struct throughput *b,
    double *ratio, struct throughput *base_out, struct throughput *b_out)
{
	int order[ROUNDS], k, m, t;

	for (k = 0; k < ROUNDS; k++) {
		ratio[k] = base[k].rate > 0 ? b[k].rate / base[k].rate : 0;
		order[k] = k;
	}
	for (k = 1; k < ROUNDS; k++)
		for (m = k; m > 0 && ratio[order[m - 1]] > ratio[order[m]];
		    m--) {
			t = order[m];
			order[m] = order[m - 1];
			order[m - 1] = t;
		}
	*base_out = base[order[ROUNDS / 2]];
	*b_out = b[order[ROUNDS / 2]];
}

static void
usage(FILE *f)
{
	fprintf(f,
"Usage: " PROG " [--directory PATH] [--seconds N] [--pg URI] [-q]\n"
"       " PROG " --tlog-db FILE [--directory PATH] [--seconds N]\n"
"\n"
"Measures devid-directory on loopback: the HTTP ceiling of libmicrohttpd,\n"
"log reads (of one account, and across 2,000), message posts, 2,000 idle\n"
"long-polls, a client's read latency under password floods, and with\n"
"--pg the reads and posts on PostgreSQL through one and two instances\n"
"(docs/performance.md).\n"
"\n"
"  --directory PATH  the devid-directory binary (default: the one of\n"
"                    this build tree)\n"
"  --seconds N       seconds per measurement (default %d; the latency\n"
"                    measurements take twice as long)\n"
"  --pg URI          an empty PostgreSQL database for phase 6\n"
"                    (swtpm-ci/pg-start DIR prints one)\n"
"  --tlog-db FILE    only phase 7: inclusion proofs served from a copy\n"
"                    of FILE (bench-tlog --keep-db FILE makes one)\n"
"  -q                short phases (%d s) and no progress lines\n",
	    SECONDS_DEFAULT, SECONDS_QUICK);
}

static void
print_machine(void)
{
	char line[256], model[128] = "unknown";
	FILE *f;

	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "model name : %127[^\n]",
			    model) == 1)
				break;
		fclose(f);
	}
	printf("machine: %s, %ld online CPUs\n", model,
	    sysconf(_SC_NPROCESSORS_ONLN));
	if ((f = fopen("/proc/loadavg", "r")) != NULL) {
		if (fgets(line, sizeof(line), f) != NULL)
			printf("load average at the start: %.14s\n", line);
		fclose(f);
	}
}

/* Phases 1-4: one server with the rate limit off. */
static void
run_throughput(struct bench_server *s, double seconds, struct results *res)
{
	static const char *const base_args[] = {
		"--rate", "0", "--max-queue", "10000000",
	};
	const char *extra[16];
	struct tdev laptop, *bobs, lp[LONGPOLL_DEVICES];
	char dir_id[DEVREC_ID_HEX_LEN + 1];
	char token[DIRC_TOKEN_MAX + 1], laptop_token[DIRC_TOKEN_MAX + 1];
	char auth[DIRC_TOKEN_MAX + 32];
	char lp_auth[LONGPOLL_DEVICES][DIRC_TOKEN_MAX + 32];
	char *read_req, *lp_reqs[LONGPOLL_DEVICES], label[32], lp_path[64];
	size_t read_len, lp_lens[LONGPOLL_DEVICES], body_len, n = 0, i;
	size_t n_envelopes, n_bobs;
	struct acctlog_response *resp = NULL;
	struct fixed_request read_fixed;
	struct ceiling cs;
	struct envpool pool;
	struct dirc *c;
	struct err_ctx e;
	double t0;
	int status, close_after, fd, *lp_fds, round, waited;
	size_t held, fds_idle;

	for (i = 0; i < sizeof(base_args) / sizeof(base_args[0]); i++)
		extra[n++] = base_args[i];
	/* Neither the sender's share of a queue nor the account quota may
	 * end the post phase early. */
	if (server_has_option(s->binary, "--max-queue-per-sender")) {
		extra[n++] = "--max-queue-per-sender";
		extra[n++] = BIG_LIMIT;
	}
	if (server_has_option(s->binary, "--account-quota")) {
		extra[n++] = "--account-quota";
		extra[n++] = BIG_QUOTA;
	}
	extra[n] = NULL;

	/* Posts go to bob's devices in turn, few enough to each that no
	 * sender's share of a queue fills. */
	n_envelopes = (size_t)(seconds * ENVELOPES_PER_SECOND);
	n_bobs = n_envelopes / ENVELOPES_PER_RECIPIENT + 1;
	if (n_bobs > RECIPIENTS_MAX)
		n_bobs = RECIPIENTS_MAX;
	if ((bobs = calloc(n_bobs, sizeof(*bobs))) == NULL)
		bench_die("out of memory");

	note("setting up accounts and devices...\n");
	bench_account_add(s, ALICE, "10");
	bench_account_add(s, BOB, "10");
	bench_account_add(s, CAROL, "10");
	bench_server_start(s, extra);
	directory_id(s, dir_id);
	bench_device_add(s, &laptop, ALICE, "laptop", PASSWORD, NULL);
	for (i = 0; i < n_bobs; i++) {
		snprintf(label, sizeof(label), "desktop %zu", i);
		bench_device_add(s, &bobs[i], BOB, label, PASSWORD, NULL);
	}
	for (i = 0; i < LONGPOLL_DEVICES; i++) {
		snprintf(label, sizeof(label), "poller %zu", i);
		bench_device_add(s, &lp[i], CAROL, label, PASSWORD, NULL);
	}
	bench_login(s, dir_id, &laptop, laptop_token);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    laptop_token);
	snprintf(lp_path, sizeof(lp_path), "/v1/inbox?wait=%d",
	    LONGPOLL_WAIT_S);
	for (i = 0; i < LONGPOLL_DEVICES; i++) {
		bench_login(s, dir_id, &lp[i], token);
		snprintf(lp_auth[i], sizeof(lp_auth[i]),
		    "Authorization: Bearer %s", token);
		lp_reqs[i] = http_request("GET", lp_path, s->host, lp_auth[i],
		    NULL, 0, &lp_lens[i]);
	}
	read_req = http_request("GET", "/v1/accounts/" ALICE_PATH
	    "/log?since=0", s->host, auth, NULL, 0, &read_len);
	read_fixed.req = read_req;
	read_fixed.len = read_len;

	/* The size of a real log answer, for the ceiling's body. */
	if ((fd = tcp_connect(loopback(1), &s->addr)) < 0)
		bench_die("connect: %s", strerror(errno));
	if (http_exchange(fd, read_req, read_len, bench_now_s() + ANSWER_WAIT_S,
	    &status, &body_len, &close_after) != 0 || status != 200)
		bench_die("the first log read failed (status %d)", status);
	close(fd);
	res->answer_len = body_len;

	/*
	 * The ceiling and the reads in turn, ROUNDS times: each round's
	 * ratio compares neighbours in time, and the median round is quoted.
	 */
	note("1. and 2. HTTP ceiling and log reads, %d rounds...\n", ROUNDS);
	ceiling_start(&cs, body_len);
	for (round = 0; round < ROUNDS; round++) {
		measure_throughput(&cs.addr, 0, next_fixed, &read_fixed, 200,
		    seconds, "ceiling", &res->ceilings[round]);
		measure_throughput(&s->addr, s->pid, next_fixed, &read_fixed,
		    200, seconds, "log reads", &res->hot_reads[round]);
	}
	ceiling_stop(&cs);
	pick_median(res->ceilings, res->hot_reads, res->hot_ratio,
	    &res->ceiling, &res->reads);

	note("3. message posts (sealing the envelopes first)...\n");
	c = bench_client(s, NULL, 0);
	err_clear(&e);
	memset(&pool, 0, sizeof(pool));
	if (dirc_set_token(c, laptop_token) != 0)
		bench_die("out of memory");
	for (i = 0; i < 2; i++) {
		const char *account = i == 0 ? ALICE : BOB;

		if (dirc_get_log(c, account, 0, 0, &resp, &e) != 0)
			bench_die("log of %s: %s", account, err_msg(&e));
		pool.views[i] = resp->head;
		acctlog_response_free(resp);
		resp = NULL;
	}
	dirc_free(c);
	pool.sender = &laptop;
	pool.recips = bobs;
	pool.n_recips = n_bobs;
	pool.host = s->host;
	snprintf(pool.auth, sizeof(pool.auth), "%s", auth);
	t0 = bench_now_s();
	envpool_make(&pool, n_envelopes);
	note("   %zu envelopes sealed in %.1f s\n", n_envelopes,
	    bench_now_s() - t0);
	measure_throughput(&s->addr, s->pid, next_envelope, &pool, 201,
	    seconds, "posts", &res->posts);
	res->posts_pool = pool.n;
	envpool_free(&pool);

	/*
	 * ROUNDS rounds of without, then with: the machine's speed drifts
	 * between measurements, so each round's ratio compares neighbours,
	 * and the median of the rounds is quoted.  Between rounds the
	 * long-polls are closed and the server must notice that they are
	 * gone before they may be opened again (the per-address limit).
	 */
	note("4. log reads without and with %d idle long-polls, %d "
	    "rounds...\n", LONGPOLLS, ROUNDS);
	fds_idle = server_fd_count(s);
	for (round = 0; round < ROUNDS; round++) {
		measure_throughput(&s->addr, s->pid, next_fixed, &read_fixed,
		    200, seconds, "log reads", &res->lp_without[round]);
		if (round == 0)
			res->rss_before_kib = bench_proc_status_kib(s->pid,
			    "VmRSS");
		lp_fds = longpolls_open(&s->addr, lp_reqs, lp_lens,
		    LONGPOLL_DEVICES);
		bench_sleep_s(1.0);
		held = longpolls_waiting(lp_fds);
		if (round == 0 || held < res->lp_held_before)
			res->lp_held_before = held;
		if (round == 0)
			res->rss_with_kib = bench_proc_status_kib(s->pid,
			    "VmRSS");
		measure_throughput(&s->addr, s->pid, next_fixed, &read_fixed,
		    200, seconds, "log reads beside long-polls",
		    &res->lp_with[round]);
		held = longpolls_waiting(lp_fds);
		if (round == 0 || held < res->lp_held_after)
			res->lp_held_after = held;
		longpolls_close(lp_fds);
		/* The server ends long-polls whose client went away. */
		for (waited = 0; waited < 100 &&
		    server_fd_count(s) > fds_idle + 16; waited++)
			bench_sleep_s(0.1);
	}
	pick_median(res->lp_without, res->lp_with, res->lp_ratio,
	    &res->reads_without, &res->reads_with);
	res->stop_a = bench_server_stop(s);

	free(read_req);
	for (i = 0; i < LONGPOLL_DEVICES; i++) {
		free(lp_reqs[i]);
		tdev_clear(&lp[i]);
	}
	tdev_clear(&laptop);
	for (i = 0; i < n_bobs; i++)
		tdev_clear(&bobs[i]);
	free(bobs);
}

/* --- 6. PostgreSQL: one instance, then two --- */

/*
 * The log reads of 2 and the posts of 3 on the (empty) PostgreSQL
 * database uri: through one instance, then through two on it, every
 * second connection to the second.  Dies when the database is not empty
 * (the accounts exist).
 */
static void
run_pg(const char *binary, const char *uri, double seconds,
    struct results *res)
{
	static const char *const base_args[] = {
		"--rate", "0", "--max-queue", "10000000",
	};
	const char *extra[20];
	struct bench_server p[2];
	struct tdev laptop, *bobs;
	char dir_id[DEVREC_ID_HEX_LEN + 1], token[DIRC_TOKEN_MAX + 1];
	char auth[DIRC_TOKEN_MAX + 32], key[PATH_MAX], label[32];
	const char *key_argv[] = { binary, "key", "--db", uri,
		"--signing-key", key, NULL };
	size_t read_len, n = 0, i, n_envelopes, n_bobs;
	struct acctlog_response *resp = NULL;
	struct fixed_request read_fixed;
	struct envpool pool;
	struct dirc *c;
	struct err_ctx e;
	char *read_req;
	int k;

	memset(p, 0, sizeof(p));
	for (k = 0; k < 2; k++) {
		p[k].binary = binary;
		if (strlen(uri) >= sizeof(p[k].db))
			bench_die("--pg: the URI is too long");
		snprintf(p[k].db, sizeof(p[k].db), "%s", uri);
		snprintf(p[k].log, sizeof(p[k].log), "%s/pg%d.log", tmp, k + 1);
	}
	snprintf(key, sizeof(key), "%s/head.key", tmp);
	for (i = 0; i < sizeof(base_args) / sizeof(base_args[0]); i++)
		extra[n++] = base_args[i];
	if (server_has_option(binary, "--max-queue-per-sender")) {
		extra[n++] = "--max-queue-per-sender";
		extra[n++] = BIG_LIMIT;
	}
	if (server_has_option(binary, "--account-quota")) {
		extra[n++] = "--account-quota";
		extra[n++] = BIG_QUOTA;
	}
	extra[n++] = "--signing-key";
	extra[n++] = key;
	extra[n] = NULL;
	n_envelopes = (size_t)(seconds * ENVELOPES_PER_SECOND);
	n_bobs = n_envelopes / ENVELOPES_PER_RECIPIENT + 1;
	if (n_bobs > RECIPIENTS_MAX)
		n_bobs = RECIPIENTS_MAX;
	if ((bobs = calloc(n_bobs, sizeof(*bobs))) == NULL)
		bench_die("out of memory");

	note("6. PostgreSQL: setting up accounts and devices...\n");
	if (bench_tool_run(key_argv) != 0)
		bench_die("cannot make a head key on the --pg database");
	bench_account_add(&p[0], ALICE, "10");
	bench_account_add(&p[0], BOB, "10");
	bench_server_start(&p[0], extra);
	directory_id(&p[0], dir_id);
	bench_device_add(&p[0], &laptop, ALICE, "laptop", PASSWORD, NULL);
	for (i = 0; i < n_bobs; i++) {
		snprintf(label, sizeof(label), "desktop %zu", i);
		bench_device_add(&p[0], &bobs[i], BOB, label, PASSWORD, NULL);
	}
	bench_login(&p[0], dir_id, &laptop, token);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	read_req = http_request("GET", "/v1/accounts/" ALICE_PATH
	    "/log?since=0", p[0].host, auth, NULL, 0, &read_len);
	read_fixed.req = read_req;
	read_fixed.len = read_len;

	memset(&pool, 0, sizeof(pool));
	c = bench_client(&p[0], NULL, 0);
	err_clear(&e);
	if (dirc_set_token(c, token) != 0)
		bench_die("out of memory");
	for (i = 0; i < 2; i++) {
		const char *account = i == 0 ? ALICE : BOB;

		if (dirc_get_log(c, account, 0, 0, &resp, &e) != 0)
			bench_die("log of %s: %s", account, err_msg(&e));
		pool.views[i] = resp->head;
		acctlog_response_free(resp);
		resp = NULL;
	}
	dirc_free(c);
	pool.sender = &laptop;
	pool.recips = bobs;
	pool.n_recips = n_bobs;
	pool.host = p[0].host;
	snprintf(pool.auth, sizeof(pool.auth), "%s", auth);

	for (k = 0; k < 2; k++) {
		const struct sockaddr_in *dst2 = NULL;
		pid_t pid2 = 0;

		if (k == 1) {
			bench_server_start(&p[1], extra);
			dst2 = &p[1].addr;
			pid2 = p[1].pid;
		}
		note("6. PostgreSQL, %d instance%s: log reads, then posts...\n",
		    k + 1, k == 0 ? "" : "s");
		measure_throughput2(&p[0].addr, p[0].pid, dst2, pid2,
		    next_fixed, &read_fixed, 200, seconds,
		    "PostgreSQL log reads", &res->pg_reads[k]);
		envpool_make(&pool, n_envelopes);
		measure_throughput2(&p[0].addr, p[0].pid, dst2, pid2,
		    next_envelope, &pool, 201, seconds, "PostgreSQL posts",
		    &res->pg_posts[k]);
		res->pg_posts_pool[k] = pool.n;
		envpool_free(&pool);
	}
	res->stop_pg = bench_server_stop(&p[1]) | bench_server_stop(&p[0]);
	res->pg_done = 1;

	free(read_req);
	tdev_clear(&laptop);
	for (i = 0; i < n_bobs; i++)
		tdev_clear(&bobs[i]);
	free(bobs);
}

/* --- 2b. log reads that miss the caches --- */

/* COLD_SETUP_THREADS threads share the accounts to set up. */
struct cold_setup {
	const struct bench_server *s;
	const char *dir_id;
	char **reqs;                    /* each account's log read */
	size_t *lens;
	size_t n, next;                 /* accounts; the next to set up */
	double deadline;
	pthread_mutex_t lock;
	char error[512];                /* the first failure */
};

static void
cold_fail(struct cold_setup *cs, const char *what, const char *name,
    const char *msg)
{
	pthread_mutex_lock(&cs->lock);
	if (cs->error[0] == '\0')
		snprintf(cs->error, sizeof(cs->error), "%s %s: %s", what,
		    name, msg);
	pthread_mutex_unlock(&cs->lock);
}

/*
 * Until the accounts run out, the time is up or another thread failed:
 * takes the next account, creates it (open sign-up), makes, registers
 * and logs in its one device, and keeps that account's log read with the
 * device's bearer token.
 */
static void *
cold_setup_main(void *arg)
{
	struct cold_setup *cs = arg;
	char name[64], path[96], auth[DIRC_TOKEN_MAX + 32];
	struct dirc_options opt;
	struct dirc *c = NULL;
	struct err_ctx e;
	struct tdev d;
	size_t i;
	int r;

	/* Each request within ANSWER_WAIT_S, so that the set-up ends soon
	 * after its deadline (an account takes three requests). */
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = ANSWER_WAIT_S;
	err_clear(&e);
	if (dirc_new(cs->s->url, &opt, &c, &e) != 0) {
		cold_fail(cs, "client for", cs->s->url, err_msg(&e));
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&cs->lock);
		i = cs->error[0] == '\0' && !bench_interrupted &&
		    bench_now_s() < cs->deadline ? cs->next++ : cs->n;
		pthread_mutex_unlock(&cs->lock);
		if (i >= cs->n)
			break;
		snprintf(name, sizeof(name), COLD_NAME, i);
		err_clear(&e);
		if (dirc_create_account(c, name, PASSWORD, &e) != 0) {
			cold_fail(cs, "creating", name, err_msg(&e));
			break;
		}
		if ((r = tdev_make(&d, name, "device", (uint64_t)time(NULL))) !=
		    0) {
			tdev_clear(&d);
			cold_fail(cs, "device of", name, err_str(r));
			break;
		}
		if (dirc_register_device(c, PASSWORD, &d.rec, NULL, &e) != 0 ||
		    dirc_login(c, cs->dir_id, d.rec.device, tdev_sign, &d,
		    NULL, &e) != 0) {
			tdev_clear(&d);
			cold_fail(cs, "device of", name, err_msg(&e));
			break;
		}
		tdev_clear(&d);
		snprintf(path, sizeof(path), COLD_PATH, i);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    dirc_token(c));
		cs->reqs[i] = http_request("GET", path, cs->s->host, auth,
		    NULL, 0, &cs->lens[i]);
	}
	dirc_free(c);
	return NULL;
}

/* The requests of reqs[0..n) in turn, round and round. */
struct request_ring {
	char *const *reqs;
	const size_t *lens;
	size_t n, next;
};

static const char *
next_in_ring(void *arg, size_t *len)
{
	struct request_ring *r = arg;
	size_t i = r->next++ % r->n;

	*len = r->lens[i];
	return r->reqs[i];
}

/*
 * Phase 2b: a server of its own with the rate limit off, open sign-up and
 * a cheap password cost (for the set-up only: reads never check a
 * password), COLD_ACCOUNTS accounts with one device and one session each;
 * then the throughput of log reads that go to the accounts in turn, each
 * with its own account's token.  With more accounts than the directory
 * keeps log tails (1,024), event pages (256) and signed heads (256) of,
 * and every account coming back only after all the others, those mostly
 * miss; the sessions (4,096 slots, re-read after 10 s) mostly hit once
 * the first round has read them.
 */
static void
run_cold_reads(struct bench_server *s, double seconds, struct results *res)
{
	static const char *const args[] = {
		"--rate", "0", "--open-signup", "--scrypt-cost",
		COLD_SCRYPT_COST, NULL,
	};
	char dir_id[DEVREC_ID_HEX_LEN + 1];
	pthread_t th[COLD_SETUP_THREADS];
	struct cold_setup cs;
	struct request_ring ring;
	size_t body_len = 0, n_done, i;
	double t0;
	int status = 0, close_after, fd;

	note("2b. log reads across %d accounts and sessions (setting them "
	    "up)...\n", COLD_ACCOUNTS);
	snprintf(s->db, sizeof(s->db), "%s/cold.db", tmp);
	bench_server_start(s, args);
	directory_id(s, dir_id);        /* also initialises libcurl */
	memset(&cs, 0, sizeof(cs));
	cs.s = s;
	cs.dir_id = dir_id;
	cs.n = COLD_ACCOUNTS;
	if ((cs.reqs = calloc(cs.n, sizeof(*cs.reqs))) == NULL ||
	    (cs.lens = calloc(cs.n, sizeof(*cs.lens))) == NULL)
		bench_die("out of memory");
	if (pthread_mutex_init(&cs.lock, NULL) != 0)
		bench_die("pthread_mutex_init failed");
	t0 = bench_now_s();
	cs.deadline = t0 + COLD_SETUP_MAX_S;
	for (i = 0; i < COLD_SETUP_THREADS; i++)
		if (pthread_create(&th[i], NULL, cold_setup_main, &cs) != 0)
			bench_die("pthread_create failed");
	for (i = 0; i < COLD_SETUP_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&cs.lock);
	bench_check_interrupted();
	if (cs.error[0] != '\0')
		bench_die("%s", cs.error);
	for (i = 0, n_done = 0; i < cs.n; i++)
		n_done += cs.reqs[i] != NULL;
	if (n_done < cs.n)
		bench_die("setting up %d accounts took more than %d s (%zu "
		    "done)", COLD_ACCOUNTS, COLD_SETUP_MAX_S, n_done);
	res->cold_setup_s = bench_now_s() - t0;
	note("   %d accounts, devices and sessions in %.1f s\n",
	    COLD_ACCOUNTS, res->cold_setup_s);

	/* The size of these answers (the names are all as long). */
	if ((fd = tcp_connect(loopback(1), &s->addr)) < 0)
		bench_die("connect: %s", strerror(errno));
	if (http_exchange(fd, cs.reqs[0], cs.lens[0], bench_now_s() +
	    ANSWER_WAIT_S, &status, &body_len, &close_after) != 0 ||
	    status != 200)
		bench_die("the first log read across accounts failed "
		    "(status %d)", status);
	close(fd);
	res->cold_answer_len = body_len;

	/* Start the round elsewhere than the account just read. */
	ring.reqs = cs.reqs;
	ring.lens = cs.lens;
	ring.n = cs.n;
	ring.next = cs.n / 2;
	measure_throughput(&s->addr, s->pid, next_in_ring, &ring, 200,
	    seconds, "log reads across accounts", &res->cold);
	res->stop_c = bench_server_stop(s);
	for (i = 0; i < cs.n; i++)
		free(cs.reqs[i]);
	free(cs.reqs);
	free(cs.lens);
}

/* Phase 5's server: one account (alice) with its reader device. */
struct latency_setup {
	struct tdev reader, intruder;
	char *read_req, *flood_req;
	size_t read_len, flood_len;
};

/*
 * A fresh database db_name in tmp with alice's password hashed at the
 * default cost, the server on it with the default limits, alice's reader
 * device registered and logged in; the reader's log request and the
 * flood's request (HTTP Basic with a wrong password, a valid-looking
 * device record of alice) into ls.
 */
static void
latency_setup(struct bench_server *s, const char *db_name,
    struct latency_setup *ls)
{
	char dir_id[DEVREC_ID_HEX_LEN + 1];
	char token[DIRC_TOKEN_MAX + 1], auth[DIRC_TOKEN_MAX + 32];
	char basic[800], *rec_json = NULL;
	struct err_ctx e;
	int r;

	memset(ls, 0, sizeof(*ls));
	snprintf(s->db, sizeof(s->db), "%s/%s", tmp, db_name);
	bench_account_add(s, ALICE, NULL);
	bench_server_start(s, NULL);
	directory_id(s, dir_id);
	bench_device_add(s, &ls->reader, ALICE, "reader", PASSWORD, NULL);
	bench_login(s, dir_id, &ls->reader, token);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	ls->read_req = http_request("GET", "/v1/accounts/" ALICE_PATH
	    "/log?since=0", s->host, auth, NULL, 0, &ls->read_len);
	if ((r = tdev_make(&ls->intruder, ALICE, "intruder",
	    (uint64_t)time(NULL))) != 0)
		bench_die("device: %s", err_str(r));
	err_clear(&e);
	if (devrec_encode(&ls->intruder.rec, &rec_json, &e) != 0)
		bench_die("device record: %s", err_msg(&e));
	basic_header(ALICE, WRONG_PASSWORD, basic, sizeof(basic));
	ls->flood_req = http_request("POST", "/v1/accounts/" ALICE_PATH
	    "/devices", s->host, basic, rec_json, strlen(rec_json),
	    &ls->flood_len);
	free(rec_json);
}

static void
latency_setup_clear(struct latency_setup *ls)
{
	free(ls->read_req);
	free(ls->flood_req);
	tdev_clear(&ls->reader);
	tdev_clear(&ls->intruder);
	memset(ls, 0, sizeof(*ls));
}

/*
 * Phase 5: a server with the default limits and password cost.  Flood
 * (b) gets a server and database of its own so that no throttling state
 * of flood (a) carries over.
 */
static void
run_latency(struct bench_server *s, double seconds, struct results *res)
{
	unsigned int hosts[FLOOD_B_HOSTS * FLOOD_B_PER_HOST];
	struct latency_setup ls;
	size_t i;

	note("5. read latency under password floods (default settings)...\n");
	seconds *= LATENCY_FACTOR;
	latency_setup(s, "latency-a.db", &ls);
	note("   idle\n");
	measure_latency(&s->addr, ls.read_req, ls.read_len, NULL, 0, NULL, 0,
	    seconds, &res->idle);
	note("   (a) %d connections from 127.0.0.%d\n", FLOOD_A_CONNS,
	    FLOOD_A_HOST);
	for (i = 0; i < FLOOD_A_CONNS; i++)
		hosts[i] = FLOOD_A_HOST;
	measure_latency(&s->addr, ls.read_req, ls.read_len, hosts,
	    FLOOD_A_CONNS, ls.flood_req, ls.flood_len, seconds,
	    &res->flood_a);
	res->stop_b = bench_server_stop(s);
	latency_setup_clear(&ls);

	latency_setup(s, "latency-b.db", &ls);
	note("   (b) %d connections from %d addresses\n",
	    FLOOD_B_HOSTS * FLOOD_B_PER_HOST, FLOOD_B_HOSTS);
	for (i = 0; i < FLOOD_B_HOSTS * FLOOD_B_PER_HOST; i++)
		hosts[i] = FLOOD_B_FIRST_HOST +
		    (unsigned int)(i / FLOOD_B_PER_HOST);
	measure_latency(&s->addr, ls.read_req, ls.read_len, hosts,
	    FLOOD_B_HOSTS * FLOOD_B_PER_HOST, ls.flood_req, ls.flood_len,
	    seconds, &res->flood_b);
	if (bench_server_stop(s) != 0)
		res->stop_b = -1;
	latency_setup_clear(&ls);
}

static const char *
verdict(int ok)
{
	return ok ? "met" : "NOT MET";
}

static void
print_latency(const char *what, const struct latency *l,
    const struct latency *idle)
{
	double r50 = idle->p50_ms > 0 ? l->p50_ms / idle->p50_ms : 0;
	double r99 = idle->p99_ms > 0 ? l->p99_ms / idle->p99_ms : 0;

	printf("  %-32s p50 %7.2f ms, p99 %7.2f ms", what, l->p50_ms,
	    l->p99_ms);
	if (l != idle)
		printf(" (x%.2f, x%.2f)", r50, r99);
	printf(", failed %" PRIu64 " of %" PRIu64 "\n", l->failed, l->sent);
	if (l != idle)
		printf("  %-32s flood answers: %s (%.0f/s)\n", "", l->flood,
		    l->flood_rate);
}

/* Server CPU microseconds per answer. */
static double
server_us(const struct throughput *t)
{
	return t->rate > 0 ? t->cpu.server / t->rate * 1e6 : 0;
}

static void
print_rate(const char *what, const struct throughput *t)
{
	printf("  %-32s %8.0f /s   server %5.1f us CPU each; cores: server "
	    "%.2f, client %.2f, others %.2f\n", what, t->rate, server_us(t),
	    t->cpu.server, t->cpu.client, t->cpu.other);
}

#define TLOG_PROOF_REQS 4096

/*
 * Phase 7: devid-directory on a copy of tlog_db (a fresh head key: its
 * checkpointer signs the tree anew), inclusion proofs of random leaves
 * of the checkpoint it serves, in turn with the ceiling.
 */
static void
run_tlog(struct bench_server *s, const char *tlog_db, double seconds,
    struct results *res)
{
	static const char *const args_tmpl[] = { "--rate", "0", NULL };
	struct request_ring ring;
	struct ceiling cs;
	char key[PATH_MAX], path[128], cmd[3 * PATH_MAX];
	char *reqs[TLOG_PROOF_REQS];
	size_t lens[TLOG_PROOF_REQS], body_len = 0, i;
	const char *args[8];
	json_t *o = NULL;
	const char *note_text;
	double t0;
	int status = 0, close_after, fd, round;

	note("7. transparency log proofs on a copy of %s...\n", tlog_db);
	snprintf(s->db, sizeof(s->db), "%s/tlog.db", tmp);
	snprintf(key, sizeof(key), "%s/tlog.key", tmp);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", tlog_db, s->db);
	if (strchr(tlog_db, '\'') != NULL || system(cmd) != 0)
		bench_die("cannot copy %s", tlog_db);
	args[0] = args_tmpl[0];
	args[1] = args_tmpl[1];
	args[2] = "--signing-key";
	args[3] = key;
	args[4] = NULL;
	bench_server_start(s, args);
	/* The first checkpoint of the new key. */
	for (t0 = bench_now_s(); ; bench_sleep_s(0.2)) {
		json_decref(o);
		o = NULL;
		if (thttp(s->url, "GET", "/v1/tlog/checkpoint", NULL, 0, NULL,
		    NULL, NULL, &o) == 200)
			break;
		if (bench_now_s() - t0 > READY_WAIT_S)
			bench_die("no checkpoint within %d s", READY_WAIT_S);
	}
	note_text = json_string_value(json_object_get(o, "checkpoint"));
	if (note_text == NULL || (note_text = strchr(note_text, '\n')) ==
	    NULL || sscanf(note_text + 1, "%" SCNu64, &res->tlog_size) != 1 ||
	    res->tlog_size < 2)
		bench_die("the checkpoint has no usable size");
	json_decref(o);
	for (i = 0; i < TLOG_PROOF_REQS; i++) {
		uint64_t r;

		crypto_random(&r, sizeof(r));
		snprintf(path, sizeof(path), "/v1/tlog/proof/inclusion?index="
		    "%" PRIu64 "&size=%" PRIu64, r % res->tlog_size,
		    res->tlog_size);
		reqs[i] = http_request("GET", path, s->host, NULL, NULL, 0,
		    &lens[i]);
	}
	if ((fd = tcp_connect(loopback(1), &s->addr)) < 0)
		bench_die("connect: %s", strerror(errno));
	if (http_exchange(fd, reqs[0], lens[0], bench_now_s() + ANSWER_WAIT_S,
	    &status, &body_len, &close_after) != 0 || status != 200)
		bench_die("the first inclusion proof failed (status %d)",
		    status);
	close(fd);
	res->tlog_answer_len = body_len;
	ring.reqs = reqs;
	ring.lens = lens;
	ring.n = TLOG_PROOF_REQS;
	ring.next = 0;
	ceiling_start(&cs, body_len);
	for (round = 0; round < ROUNDS; round++) {
		measure_throughput(&cs.addr, 0, next_in_ring, &ring, 200,
		    seconds, "ceiling", &res->tlog_ceilings[round]);
		measure_throughput(&s->addr, s->pid, next_in_ring, &ring, 200,
		    seconds, "inclusion proofs", &res->tlog_proofs[round]);
	}
	ceiling_stop(&cs);
	pick_median(res->tlog_ceilings, res->tlog_proofs, res->tlog_ratio,
	    &res->tlog_ceiling, &res->tlog_proof);
	res->stop_t = bench_server_stop(s);
	for (i = 0; i < TLOG_PROOF_REQS; i++)
		free(reqs[i]);
	res->tlog_done = 1;
}

static void
print_tlog(const struct results *r)
{
	int k;

	printf("\n7. transparency log: inclusion proofs at random leaves of "
	    "a %" PRIu64 "-leaf checkpoint\n   (%zu-byte answers), in turn "
	    "with the ceiling at the same size\n", r->tlog_size,
	    r->tlog_answer_len);
	for (k = 0; k < ROUNDS; k++)
		printf("  round %d: ceiling %8.0f /s, proofs %8.0f /s: %.2f\n",
		    k + 1, r->tlog_ceilings[k].rate, r->tlog_proofs[k].rate,
		    r->tlog_ratio[k]);
	print_rate("fixed answers", &r->tlog_ceiling);
	print_rate("inclusion proofs", &r->tlog_proof);
	if (r->stop_t != 0)
		printf("WARNING: devid-directory did not exit cleanly on "
		    "SIGTERM (see above)\n");
}

static void
print_results(const struct results *r)
{
	double ratio = r->ceiling.rate > 0 ?
	    r->reads.rate / r->ceiling.rate : 0;
	double cold_ratio = r->ceiling.rate > 0 ?
	    r->cold.rate / r->ceiling.rate : 0;
	double lp_ratio = r->reads_without.rate > 0 ?
	    r->reads_with.rate / r->reads_without.rate : 0;
	double rss_mib = (double)r->rss_with_kib / 1024;
	double a50, a99, b50, b99;
	int k;

	printf("\n1. HTTP ceiling: libmicrohttpd in this process, same "
	    "thread model, %zu-byte JSON\n", r->answer_len);
	printf("2. authenticated log reads (GET .../log?since=0, %zu-byte "
	    "answer), in turn with the ceiling\n", r->answer_len);
	for (k = 0; k < ROUNDS; k++)
		printf("  round %d: ceiling %8.0f /s, reads %8.0f /s: %.2f\n",
		    k + 1, r->ceilings[k].rate, r->hot_reads[k].rate,
		    r->hot_ratio[k]);
	print_rate("fixed answers", &r->ceiling);
	print_rate("log reads", &r->reads);
	printf("  %-32s %8.2f      target >= 0.60: %s\n",
	    "reads / ceiling (median round)", ratio, verdict(ratio >= 0.6));
	printf("2b. the same reads across %d,%03d accounts and sessions "
	    "(caches mostly cold):\n    each account in turn with its own "
	    "token, %zu-byte answers; set up in %.0f s\n",
	    COLD_ACCOUNTS / 1000, COLD_ACCOUNTS % 1000, r->cold_answer_len,
	    r->cold_setup_s);
	print_rate("log reads", &r->cold);
	printf("  %-32s %8.2f      (hot, phase 2: %.2f)\n",
	    "reads / ceiling", cold_ratio, ratio);
	printf("3. message posts (%zu distinct envelopes sealed, one "
	    "recipient device each)\n", r->posts_pool);
	print_rate("posts", &r->posts);
	if (r->posts.exhausted)
		printf("  (all envelopes were posted before the time was "
		    "up)\n");
	printf("4. %d idle inbox long-polls (wait=%d, %d per address)\n",
	    LONGPOLLS, LONGPOLL_WAIT_S, LONGPOLLS_PER_ADDRESS);
	printf("  %-32s %zu before, %zu after the reads\n",
	    "waiting without an answer", r->lp_held_before,
	    r->lp_held_after);
	printf("  %-32s %8.1f MiB  (%.1f MiB without: %.1f KiB each)  "
	    "target < 64 MiB: %s\n", "server resident memory", rss_mib,
	    (double)r->rss_before_kib / 1024,
	    ((double)r->rss_with_kib - (double)r->rss_before_kib) /
	    LONGPOLLS, verdict(r->rss_with_kib > 0 && rss_mib < 64 &&
	    r->lp_held_before == LONGPOLLS));
	for (k = 0; k < ROUNDS; k++)
		printf("  round %d: without %8.0f /s, with %8.0f /s: %.2f\n",
		    k + 1, r->lp_without[k].rate, r->lp_with[k].rate,
		    r->lp_ratio[k]);
	print_rate("log reads without them", &r->reads_without);
	print_rate("log reads with them", &r->reads_with);
	printf("  %-32s %8.2f      target >= 0.90: %s\n",
	    "with / without (median round)", lp_ratio, verdict(lp_ratio >= 0.9 &&
	    r->lp_held_after == LONGPOLLS));
	printf("  %-32s %8.2f\n", "server CPU per read, with/without",
	    server_us(&r->reads_without) > 0 ? server_us(&r->reads_with) /
	    server_us(&r->reads_without) : 0);
	printf("5. read latency of one client at %d/s from 127.0.0.%d "
	    "(default limits, scrypt cost 15)\n", READER_RATE, READER_HOST);
	print_latency("idle", &r->idle, &r->idle);
	print_latency("(a) 16 conns from 1 address", &r->flood_a, &r->idle);
	print_latency("(b) 256 conns from 64 addresses", &r->flood_b,
	    &r->idle);
	a50 = r->idle.p50_ms > 0 ? r->flood_a.p50_ms / r->idle.p50_ms : 0;
	a99 = r->idle.p99_ms > 0 ? r->flood_a.p99_ms / r->idle.p99_ms : 0;
	b50 = r->idle.p50_ms > 0 ? r->flood_b.p50_ms / r->idle.p50_ms : 0;
	b99 = r->idle.p99_ms > 0 ? r->flood_b.p99_ms / r->idle.p99_ms : 0;
	printf("  %-32s target <= 2x of idle, no failure: %s\n", "",
	    verdict(a50 <= 2 && a99 <= 2 && b50 <= 2 && b99 <= 2 &&
	    r->idle.failed == 0 && r->flood_a.failed == 0 &&
	    r->flood_b.failed == 0 && r->idle.n > 0));
	if (r->pg_done) {
		printf("6. the reads of 2 and the posts of 3 by store, beside "
		    "the ceiling of 1 (PostgreSQL's\n   own CPU counts under "
		    "others; two instances: every second connection to each)\n");
		print_rate("HTTP ceiling", &r->ceiling);
		print_rate("SQLite: log reads", &r->reads);
		print_rate("SQLite: posts", &r->posts);
		print_rate("PostgreSQL x1: log reads", &r->pg_reads[0]);
		print_rate("PostgreSQL x1: posts", &r->pg_posts[0]);
		print_rate("PostgreSQL x2: log reads", &r->pg_reads[1]);
		print_rate("PostgreSQL x2: posts", &r->pg_posts[1]);
		if (r->pg_posts[0].exhausted || r->pg_posts[1].exhausted)
			printf("  (all envelopes were posted before the time "
			    "was up)\n");
	} else {
		printf("6. PostgreSQL: not measured (--pg URI of an empty "
		    "database)\n");
	}
	if (r->stop_a != 0 || r->stop_b != 0 || r->stop_c != 0 ||
	    r->stop_pg != 0)
		printf("WARNING: devid-directory did not exit cleanly on "
		    "SIGTERM (see above)\n");
	if (r->ceiling.cpu.other > BUSY_OTHER ||
	    r->reads.cpu.other > BUSY_OTHER ||
	    r->cold.cpu.other > BUSY_OTHER ||
	    r->posts.cpu.other > BUSY_OTHER ||
	    r->reads_without.cpu.other > BUSY_OTHER ||
	    r->reads_with.cpu.other > BUSY_OTHER)
		printf("NOTE: other programs used more than %.2f cores during "
		    "a measurement: the figures are not reliable\n",
		    BUSY_OTHER);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "directory", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 's' },
		{ "pg", required_argument, NULL, 'p' },
		{ "tlog-db", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct results res;
	struct bench_server s;
	const char *binary = NULL, *pg_uri = NULL, *tlog_db = NULL;
	double seconds = SECONDS_DEFAULT, t0;
	char *end;
	long v;
	int c, seconds_set = 0;

	bench_init(PROG);
	bench_catch_signals();
	bench_set_die_hook(bench_server_print_log);
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			binary = optarg;
			break;
		case 's':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || v < 1 || v > 60) {
				fprintf(stderr, PROG ": --seconds must be a "
				    "number from 1 to 60\n");
				return 2;
			}
			seconds = (double)v;
			seconds_set = 1;
			break;
		case 'p':
			pg_uri = optarg;
			break;
		case 't':
			tlog_db = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (quiet && !seconds_set)
		seconds = SECONDS_QUICK;
	if (binary == NULL)
		binary = bench_default_binary();
	if (access(binary, X_OK) != 0)
		bench_die("%s: %s (give --directory PATH)", binary,
		    strerror(errno));

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(LONGPOLLS + FLOOD_B_HOSTS * FLOOD_B_PER_HOST + 256);
	if ((tmp = ttmpdir_make()) == NULL)
		bench_die("cannot make a temporary directory");
	atexit(cleanup);
	bench_set_workdir(tmp);
	bench_password_file(PASSWORD);

	memset(&res, 0, sizeof(res));
	memset(&s, 0, sizeof(s));
	s.binary = binary;
	snprintf(s.log, sizeof(s.log), "%s/server.log", tmp);
	printf("devid-directory benchmark: %s\n", binary);
	print_machine();
	printf("%.0f s per measurement (latency: %.0f s), %d client "
	    "connections for throughput\n", seconds, seconds *
	    LATENCY_FACTOR, LOAD_CONNS);
	fflush(stdout);
	t0 = bench_now_s();

	if (tlog_db != NULL) {
		run_tlog(&s, tlog_db, seconds, &res);
		print_tlog(&res);
		printf("(%.0f s in all)\n", bench_now_s() - t0);
		return 0;
	}
	snprintf(s.db, sizeof(s.db), "%s/throughput.db", tmp);
	run_throughput(&s, seconds, &res);
	run_cold_reads(&s, seconds, &res);
	run_latency(&s, seconds, &res);
	if (pg_uri != NULL)
		run_pg(binary, pg_uri, seconds, &res);

	print_results(&res);
	printf("(%.0f s in all)\n", bench_now_s() - t0);
	return 0;
}
