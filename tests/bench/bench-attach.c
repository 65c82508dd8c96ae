/*
 * bench-attach.c - what attachments (docs/protocol.md section 8) cost on
 * this machine, end to end through the real devid-directory on loopback
 * (docs/performance.md, "Attachments").
 *
 * One run measures:
 *
 *  1. the single-core baseline: AES-256-GCM over SIZE MiB in 64 KiB
 *     segments (one key, a nonce per segment, as common/stream.c does)
 *     and SHA-256 of the output, in this process with OpenSSL EVP; the
 *     best of three passes, in MiB/s;
 *  2. RUNS times, through a devid-directory on a fresh SQLite database
 *     and blob directory: a sender child encrypts and uploads a file of
 *     SIZE MiB of random bytes (msg_blob_send) and posts an envelope
 *     naming it to another device (env_seal with software keys,
 *     dirc_post_message_blobs); then a recipient child fetches its
 *     inbox, opens the envelope (env_open), downloads, decrypts and
 *     verifies the file (msg_blob_recv) and acknowledges.  Each side's
 *     time, its MiB/s and their ratio to 1, the end-to-end rate (SIZE
 *     over both times), and each child's peak resident memory
 *     (getrusage(RUSAGE_SELF).ru_maxrss);
 *  3. the directory's peak resident memory (VmHWM) while SENDERS
 *     uploads of SIZE MiB run at once (one child each), on a server
 *     started afresh whose VmHWM is reset once it has started
 *     (clear_refs), so that the peak is this phase's.
 *
 * The file each recipient saves is compared with the one sent.  The
 * children are forked from a small parent (keys, sessions, libcurl), so
 * their peaks include what they inherit.  The server runs in a private
 * temporary directory, dies with this process and is stopped on every
 * exit path.
 *
 * Usage: bench-attach [--size MiB] [--runs N] [--senders N]
 *                     [--directory-bin PATH]
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "bench-util.h"
#include "crypto.h"
#include "devrec.h"
#include "dir-test-util.h"
#include "dirclient.h"
#include "envelope.h"
#include "errors.h"
#include "hpke.h"
#include "msg-blob.h"
#include "stream.h"

#define PROG "bench-attach"

#define ACCOUNT "bench@example.org"
#define PASSWORD "the password of the bench"
#define SIZE_MIB_DEFAULT 100
#define RUNS_DEFAULT 3
#define SENDERS_DEFAULT 8
#define SENDERS_MAX 64
#define BASELINE_PASSES 3
#define SEGMENT STREAM_SEGMENT_DEFAULT
#define FILE_CHUNK ((size_t)1 << 20)
#define CHILD_TIMEOUT_S 60      /* dirclient's low-speed window */
#define QUOTA "1099511627776"   /* 1 TiB: never the limit here */
#define TARGET_RATIO 0.5
#define TARGET_CHILD_MIB 32
#define TARGET_SERVER_MIB 64

static char *tmp;               /* removed at exit */

/* At exit of the parent: the server stopped, the temporary tree gone. */
static void
cleanup(void)
{
	bench_server_kill();
	if (!bench_is_parent())
		return;
	ttmpdir_remove(tmp);
	tmp = NULL;
}

/* --- 1: the baseline --- */

/*
 * One pass of AES-256-GCM over size_mib MiB in SEGMENT-byte segments and
 * SHA-256 of the ciphertext and tags, as the sender does it; returns
 * the MiB/s.  The plaintext is one segment of random bytes, encrypted
 * over and over (the cost does not depend on the bytes).
 */
static double
baseline_pass(uint64_t size_mib)
{
	static uint8_t pt[SEGMENT], ct[SEGMENT + 16];
	uint8_t key[32], nonce[12], digest[32];
	uint64_t segs = size_mib * ((uint64_t)1 << 20) / SEGMENT, i;
	EVP_CIPHER_CTX *c;
	EVP_MD_CTX *md;
	unsigned int dl;
	double t0, t1;
	int n;

	if (crypto_random(key, sizeof(key)) != 0 ||
	    crypto_random(pt, sizeof(pt)) != 0)
		bench_die("no random bytes");
	if ((c = EVP_CIPHER_CTX_new()) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL)
		bench_die("out of memory");
	memset(nonce, 0, sizeof(nonce));
	t0 = bench_now_s();
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL) != 1 ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		bench_die("EVP init failed");
	for (i = 0; i < segs; i++) {
		nonce[7] = (uint8_t)(i >> 24);
		nonce[8] = (uint8_t)(i >> 16);
		nonce[9] = (uint8_t)(i >> 8);
		nonce[10] = (uint8_t)i;
		nonce[11] = i + 1 == segs;
		if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
		    EVP_EncryptUpdate(c, ct, &n, pt, SEGMENT) != 1 ||
		    EVP_EncryptFinal_ex(c, ct + n, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
		    ct + SEGMENT) != 1 ||
		    EVP_DigestUpdate(md, ct, sizeof(ct)) != 1)
			bench_die("AES-256-GCM failed");
	}
	if (EVP_DigestFinal_ex(md, digest, &dl) != 1)
		bench_die("SHA-256 failed");
	t1 = bench_now_s();
	EVP_CIPHER_CTX_free(c);
	EVP_MD_CTX_free(md);
	crypto_wipe(key, sizeof(key));
	return (double)(segs * SEGMENT) / (1 << 20) / (t1 - t0);
}

/* --- the server --- */

/* The server of this bench: blobs kept in blob_dir, of blob_max bytes. */
struct server {
	struct bench_server bs;
	char blob_dir[PATH_MAX];
	char blob_max[32];
};

/* serve with blobs in s->blob_dir; waits until it is ready. */
static void
server_start(struct server *s)
{
	const char *extra[] = { "--rate", "0", "--blob-dir", s->blob_dir,
	    "--blob-max", s->blob_max, "--blob-quota", QUOTA, NULL };

	bench_server_start(&s->bs, extra);
}

/*
 * Resets the peak resident memory (VmHWM) of pid to its current one
 * (clear_refs 5), so that a later VmHWM is the peak since now.  0, or
 * -1 when the kernel refuses.
 */
static int
proc_reset_hwm(pid_t pid)
{
	char path[64];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "/proc/%ld/clear_refs", (long)pid);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	r = fputs("5", f) < 0;
	return fclose(f) != 0 || r ? -1 : 0;
}

/* A client of the bench's server with a child's request timeout. */
static struct dirc *
client(const struct server *s, const char *token)
{
	return bench_client(&s->bs, token, CHILD_TIMEOUT_S);
}

/* --- the children --- */

/* Everything a child needs, set up by the parent before it forks. */
struct bench {
	struct server srv;
	struct tdev sender;             /* software devices of ACCOUNT */
	struct tdev recipient;
	char sender_token[DIRC_TOKEN_MAX + 1];
	char recipient_token[DIRC_TOKEN_MAX + 1];
	struct acctlog_head head;       /* the account's view for seal */
	uint64_t max_blob;
	uint64_t size_mib;
	char file[PATH_MAX];            /* what is sent */
	char out_dir[PATH_MAX];         /* where the recipient saves it */
};

/* What a child reports, in memory shared with the parent. */
struct child_result {
	int ok;
	double transfer_s;              /* msg_blob_send or msg_blob_recv */
	double total_s;                 /* with the envelope, inbox, ack */
	double user_s;                  /* CPU time */
	double sys_s;
	long maxrss_kib;
	char path[PATH_MAX];            /* the recipient's saved file */
	char err[ERR_MSG_MAX];
};

static void
child_usage(struct child_result *res)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return;
	res->maxrss_kib = ru.ru_maxrss;
	res->user_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	res->sys_s = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* A child's failure: the reason into res, exit 1. */
static void
child_fail(struct child_result *res, const char *what,
    const struct err_ctx *e)
{
	snprintf(res->err, sizeof(res->err), "%s: %s", what, err_msg(e));
	_exit(1);
}

/*
 * The sender: the file as a blob, then an envelope from the sender to
 * the recipient device naming it.
 */
static void
sender_main(const struct bench *b, struct child_result *res)
{
	struct dirc *c = client(&b->srv, b->sender_token);
	struct env_blob_ref ref;
	struct env_payload p;
	struct env_recipient_key rk;
	struct env_seal_args a;
	struct env *env = NULL;
	struct msg_blob_opts o;
	struct err_ctx e;
	const char *to[] = { ACCOUNT };
	const char *hashes[1];
	uint8_t *payload = NULL;
	size_t payload_len = 0, json_len = 0;
	char *json = NULL;
	double t0, t1, t2;

	err_clear(&e);
	memset(&o, 0, sizeof(o));
	t0 = bench_now_s();
	if (msg_blob_send(c, b->file, NULL, b->max_blob, &o, &ref, &e) != 0)
		child_fail(res, "msg_blob_send", &e);
	t1 = bench_now_s();
	memset(&p, 0, sizeof(p));
	p.type = (char *)(uintptr_t)"text/plain; charset=utf-8";
	p.body = (uint8_t *)(uintptr_t)"bench";
	p.body_len = 5;
	p.blobs = &ref;
	p.n_blobs = 1;
	rk.device = b->recipient.rec.device;
	rk.alg = TOKEN_ENC_HPKE_P256;
	rk.enc_pub = b->recipient.enc;
	memset(&a, 0, sizeof(a));
	a.sender_account = ACCOUNT;
	a.sender_device = b->sender.rec.device;
	a.sent = (uint64_t)time(NULL);
	a.to = to;
	a.n_to = 1;
	a.views = &b->head;
	a.n_views = 1;
	a.recipients = &rk;
	a.n_recipients = 1;
	a.sign = tdev_sign;
	a.sign_arg = (void *)(uintptr_t)&b->sender;
	hashes[0] = ref.hash;
	if (env_payload_encode_full(&p, &payload, &payload_len, &e) != 0)
		child_fail(res, "payload", &e);
	a.payload = payload;
	a.payload_len = payload_len;
	if (env_seal(&a, &env, &e) != 0)
		child_fail(res, "env_seal", &e);
	if (env_to_json(env, &json, &json_len) != 0)
		child_fail(res, "env_to_json", &e);
	if (dirc_post_message_blobs(c, json, json_len, hashes, 1, NULL,
	    &e) != 0)
		child_fail(res, "posting the envelope", &e);
	t2 = bench_now_s();
	res->transfer_s = t1 - t0;
	res->total_s = t2 - t0;
	child_usage(res);
	res->ok = 1;
	crypto_wipe(payload, payload_len);
	free(payload);
	free(json);
	env_free(env);
	msg_blob_ref_clear(&ref);
	dirc_free(c);
	_exit(0);
}

/* The recipient: its inbox (one envelope), opened, the file fetched,
 * the envelope acknowledged. */
static void
recipient_main(const struct bench *b, struct child_result *res)
{
	struct dirc *c = client(&b->srv, b->recipient_token);
	struct dirc_inbox *in = NULL;
	struct env_self me;
	struct env_open_ops ops;
	struct env_opened o;
	struct msg_blob_opts mo;
	struct err_ctx e;
	char *path = NULL;
	double t0, t1, t2, tr;

	err_clear(&e);
	memset(&me, 0, sizeof(me));
	memset(&o, 0, sizeof(o));
	memset(&mo, 0, sizeof(mo));
	me.device = b->recipient.rec.device;
	me.alg = TOKEN_ENC_HPKE_P256;
	if (crypto_ec_point_get(b->recipient.enc, me.enc_point) != 0)
		child_fail(res, "the recipient's key", &e);
	me.dh = hpke_dh_software;
	me.dh_arg = b->recipient.enc;
	/* One known sender, no replay store (each envelope is opened
	 * once), no logs to compare. */
	tenv_open_ops(&ops, &b->sender);
	t0 = bench_now_s();
	if (dirc_inbox(c, 0, 0, &in, &e) != 0)
		child_fail(res, "inbox", &e);
	if (in->n_items != 1) {
		snprintf(res->err, sizeof(res->err), "%zu envelopes in the "
		    "inbox, expected 1", in->n_items);
		_exit(1);
	}
	if (env_open((const uint8_t *)in->items[0].envelope,
	    in->items[0].envelope_len, NULL, &me, &ops, &o, &e) != 0)
		child_fail(res, "env_open", &e);
	if (o.payload.n_blobs != 1) {
		snprintf(res->err, sizeof(res->err), "the envelope names "
		    "%zu blobs, expected 1", o.payload.n_blobs);
		_exit(1);
	}
	t1 = bench_now_s();
	if (msg_blob_recv(c, &o.payload.blobs[0], b->out_dir, &mo, &path,
	    &e) != 0)
		child_fail(res, "msg_blob_recv", &e);
	tr = bench_now_s() - t1;
	if (dirc_ack(c, in->items[0].seq, NULL, &e) != 0)
		child_fail(res, "ack", &e);
	t2 = bench_now_s();
	res->transfer_s = tr;
	res->total_s = t2 - t0;
	snprintf(res->path, sizeof(res->path), "%s", path);
	child_usage(res);
	res->ok = 1;
	free(path);
	env_opened_clear(&o);
	dirc_inbox_free(in);
	dirc_free(c);
	_exit(0);
}

/* Forks fn(b, res) as a child; returns its pid. */
static pid_t
child_start(void (*fn)(const struct bench *, struct child_result *),
    const struct bench *b, struct child_result *res)
{
	pid_t pid;

	memset(res, 0, sizeof(*res));
	fflush(NULL);
	if ((pid = fork()) < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fn(b, res);
		_exit(1);
	}
	return pid;
}

/* Waits for pid; dies with the child's reason when it failed. */
static void
child_wait(pid_t pid, const char *what, const struct child_result *res)
{
	int status;

	while (waitpid(pid, &status, 0) != pid)
		if (errno != EINTR)
			bench_die("waitpid: %s", strerror(errno));
		else
			bench_check_interrupted();
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !res->ok)
		bench_die("the %s failed: %s", what, res->err[0] != '\0' ?
		    res->err : "it crashed");
}

/*
 * Dies unless the files at a and b hold the same bytes.  Its buffers (as
 * random_file's) are given back to the system before the next fork, so
 * that the children do not inherit them in their peak memory.
 */
static void
files_equal(const char *a, const char *b)
{
	uint8_t *x, *y;
	FILE *f, *g;
	size_t n, m;

	if ((x = malloc(FILE_CHUNK)) == NULL ||
	    (y = malloc(FILE_CHUNK)) == NULL)
		bench_die("out of memory");
	if ((f = fopen(a, "rb")) == NULL || (g = fopen(b, "rb")) == NULL)
		bench_die("cannot compare %s and %s: %s", a, b,
		    strerror(errno));
	do {
		n = fread(x, 1, FILE_CHUNK, f);
		m = fread(y, 1, FILE_CHUNK, g);
		if (n != m || memcmp(x, y, n) != 0)
			bench_die("the file received differs from the one "
			    "sent");
	} while (n > 0);
	fclose(f);
	fclose(g);
	free(x);
	free(y);
}

/* size_mib MiB of random bytes into path. */
static void
random_file(const char *path, uint64_t size_mib)
{
	uint8_t *buf;
	uint64_t i;
	FILE *f;

	if ((buf = malloc(FILE_CHUNK)) == NULL)
		bench_die("out of memory");
	if ((f = fopen(path, "wb")) == NULL)
		bench_die("%s: %s", path, strerror(errno));
	for (i = 0; i < size_mib; i++)
		if (crypto_random(buf, FILE_CHUNK) != 0 ||
		    fwrite(buf, 1, FILE_CHUNK, f) != FILE_CHUNK)
			bench_die("%s: cannot write", path);
	if (fclose(f) != 0)
		bench_die("%s: %s", path, strerror(errno));
	free(buf);
}

static void
usage(FILE *f)
{
	fprintf(f, "Usage: " PROG " [--size MiB] [--runs N] [--senders N] "
	    "[--directory-bin PATH]\n"
	    "  --size MiB       the file sent (default %d)\n"
	    "  --runs N         end-to-end runs, the median quoted "
	    "(default %d)\n"
	    "  --senders N      uploads at once for the server's peak "
	    "memory (default %d)\n"
	    "  --directory-bin  the devid-directory to run (default: the "
	    "one of this build)\n", SIZE_MIB_DEFAULT, RUNS_DEFAULT,
	    SENDERS_DEFAULT);
}

/* A positive number option, at most max. */
static uint64_t
number_arg(const char *opt, const char *s, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || *s == '-' || v == 0 ||
	    v > max) {
		fprintf(stderr, PROG ": %s wants a number from 1 to %" PRIu64
		    "\n", opt, max);
		exit(2);
	}
	return v;
}

static double
mib(long kib)
{
	return (double)kib / 1024;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "senders", required_argument, NULL, 'n' },
		{ "directory-bin", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct child_result *res;
	struct bench b;
	struct dirc_info info;
	pid_t pids[SENDERS_MAX];
	double base[BASELINE_PASSES], *up, *down, *e2e, *post, *rss_s, *rss_r;
	double base_best = 0, t0, wall, size_f, cpu0, cpu1, cpu2, srv_cpu;
	unsigned long start_kib, idle_kib, hwm_kib, rss_kib, rss_max_kib = 0;
	unsigned long parent_kib;
	uint64_t runs = RUNS_DEFAULT, senders = SENDERS_DEFAULT, i;
	int opt;

	memset(&b, 0, sizeof(b));
	b.size_mib = SIZE_MIB_DEFAULT;
	b.srv.bs.binary = NULL;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			b.size_mib = number_arg("--size", optarg, 65536);
			break;
		case 'r':
			runs = number_arg("--runs", optarg, 1000);
			break;
		case 'n':
			senders = number_arg("--senders", optarg, SENDERS_MAX);
			break;
		case 'd':
			b.srv.bs.binary = optarg;
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
	bench_init(PROG);
	bench_catch_signals();
	if (b.srv.bs.binary == NULL)
		b.srv.bs.binary = bench_default_binary();
	if (access(b.srv.bs.binary, X_OK) != 0)
		bench_die("%s: %s (--directory-bin PATH)", b.srv.bs.binary,
		    strerror(errno));
	atexit(cleanup);
	size_f = (double)b.size_mib;

	res = mmap(NULL, sizeof(*res) * (SENDERS_MAX + 2),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	if ((up = calloc(runs, sizeof(double))) == NULL ||
	    (down = calloc(runs, sizeof(double))) == NULL ||
	    (e2e = calloc(runs, sizeof(double))) == NULL ||
	    (post = calloc(runs, sizeof(double))) == NULL ||
	    (rss_s = calloc(runs, sizeof(double))) == NULL ||
	    (rss_r = calloc(runs, sizeof(double))) == NULL)
		bench_die("out of memory");

	printf(PROG ": %" PRIu64 " MiB, %" PRIu64 " run(s), %" PRIu64
	    " sender(s) at once; %s\n", b.size_mib, runs, senders,
	    b.srv.bs.binary);

	/* 1 */
	for (i = 0; i < BASELINE_PASSES; i++) {
		bench_check_interrupted();
		base[i] = baseline_pass(b.size_mib);
		if (base[i] > base_best)
			base_best = base[i];
	}

	/* Set-up: the server, one account, two devices with sessions. */
	if ((tmp = ttmpdir_make()) == NULL)
		bench_die("cannot make a temporary directory");
	bench_set_workdir(tmp);
	snprintf(b.srv.bs.db, sizeof(b.srv.bs.db), "%s/dir.db", tmp);
	snprintf(b.srv.blob_dir, sizeof(b.srv.blob_dir), "%s/blobs", tmp);
	snprintf(b.srv.bs.log, sizeof(b.srv.bs.log), "%s/directory.log", tmp);
	snprintf(b.file, sizeof(b.file), "%s/sent.bin", tmp);
	snprintf(b.out_dir, sizeof(b.out_dir), "%s/received", tmp);
	if (mkdir(b.out_dir, 0700) != 0)
		bench_die("%s: %s", b.out_dir, strerror(errno));
	b.max_blob = stream_ciphertext_len(b.size_mib << 20, SEGMENT);
	snprintf(b.srv.blob_max, sizeof(b.srv.blob_max), "%" PRIu64,
	    b.max_blob);
	random_file(b.file, b.size_mib);
	bench_password_file(PASSWORD);
	bench_account_add(&b.srv.bs, ACCOUNT, "10");
	server_start(&b.srv);
	bench_device_add(&b.srv.bs, &b.sender, ACCOUNT, "sender", PASSWORD,
	    &b.head);
	bench_device_add(&b.srv.bs, &b.recipient, ACCOUNT, "recipient",
	    PASSWORD, &b.head);
	bench_info(&b.srv.bs, &info);
	if (info.max_blob < b.max_blob)
		bench_die("the directory takes blobs up to %" PRIu64 " bytes "
		    "only", info.max_blob);
	bench_login(&b.srv.bs, info.directory_id, &b.sender, b.sender_token);
	bench_login(&b.srv.bs, info.directory_id, &b.recipient,
	    b.recipient_token);

	/* 2 */
	parent_kib = bench_proc_status_kib(getpid(), "VmRSS");
	for (i = 0; i < runs; i++) {
		pid_t pid;

		bench_check_interrupted();
		cpu0 = bench_proc_cpu_s(b.srv.bs.pid);
		pid = child_start(sender_main, &b, &res[0]);
		child_wait(pid, "sender", &res[0]);
		cpu1 = bench_proc_cpu_s(b.srv.bs.pid);
		pid = child_start(recipient_main, &b, &res[1]);
		child_wait(pid, "recipient", &res[1]);
		cpu2 = bench_proc_cpu_s(b.srv.bs.pid);
		files_equal(b.file, res[1].path);
		if (unlink(res[1].path) != 0)
			bench_die("%s: %s", res[1].path, strerror(errno));
		up[i] = size_f / res[0].transfer_s;
		down[i] = size_f / res[1].transfer_s;
		e2e[i] = size_f / (res[0].total_s + res[1].total_s);
		post[i] = (res[0].total_s - res[0].transfer_s) * 1e3;
		rss_s[i] = mib(res[0].maxrss_kib);
		rss_r[i] = mib(res[1].maxrss_kib);
		printf("  run %" PRIu64 ": send %.2f s, %.0f MiB/s (CPU: "
		    "user %.2f s, sys %.2f s; directory %.2f s)\n"
		    "         recv %.2f s, %.0f MiB/s (CPU: user %.2f s, "
		    "sys %.2f s; directory %.2f s)\n"
		    "         end to end %.0f MiB/s; peak RSS %.1f MiB, "
		    "%.1f MiB\n", i + 1, res[0].total_s, up[i],
		    res[0].user_s, res[0].sys_s, cpu1 - cpu0, res[1].total_s,
		    down[i], res[1].user_s, res[1].sys_s, cpu2 - cpu1, e2e[i],
		    rss_s[i], rss_r[i]);
	}

	/* 3: a server of its own process, so that VmHWM is this phase's. */
	bench_server_stop(&b.srv.bs);
	server_start(&b.srv);
	bench_sleep_s(0.2);
	start_kib = bench_proc_status_kib(b.srv.bs.pid, "VmHWM");
	if (proc_reset_hwm(b.srv.bs.pid) != 0)
		fprintf(stderr, PROG ": cannot reset the directory's VmHWM: "
		    "the figure below includes its start\n");
	idle_kib = bench_proc_status_kib(b.srv.bs.pid, "VmHWM");
	cpu0 = bench_proc_cpu_s(b.srv.bs.pid);
	t0 = bench_now_s();
	for (i = 0; i < senders; i++)
		pids[i] = child_start(sender_main, &b, &res[i]);
	for (i = 0; i < senders; i++) {
		int status;

		while (waitpid(pids[i], &status, WNOHANG) == 0) {
			rss_kib = bench_proc_status_kib(b.srv.bs.pid, "VmRSS");
			if (rss_kib > rss_max_kib)
				rss_max_kib = rss_kib;
			bench_check_interrupted();
			bench_sleep_s(0.02);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
		    !res[i].ok)
			bench_die("sender %" PRIu64 " of %" PRIu64 " failed: "
			    "%s", i + 1, senders, res[i].err[0] != '\0' ?
			    res[i].err : "it crashed");
	}
	wall = bench_now_s() - t0;
	hwm_kib = bench_proc_status_kib(b.srv.bs.pid, "VmHWM");
	srv_cpu = bench_proc_cpu_s(b.srv.bs.pid) - cpu0;
	bench_server_stop(&b.srv.bs);

	printf("\n%-48s %12s %10s %s\n", "measurement", "median", "ratio",
	    "target");
	printf("%-48s %7.0f MiB/s %10s %s\n",
	    "(i) AES-256-GCM + SHA-256, 1 core, best of 3", base_best, "1",
	    "");
	printf("%-48s %7.0f MiB/s %10.2f %s\n",
	    "(ii) send: encrypt + upload", bench_median(up, runs),
	    bench_median(up, runs) / base_best, "");
	printf("%-48s %10.1f ms %10s %s\n", "     seal + post the envelope",
	    bench_median(post, runs), "", "");
	printf("%-48s %7.0f MiB/s %10.2f %s\n",
	    "     recv: download + decrypt + verify + save",
	    bench_median(down, runs), bench_median(down, runs) / base_best, "");
	printf("%-48s %7.0f MiB/s %10.2f %s\n",
	    "     end to end (send, then inbox + recv + ack)",
	    bench_median(e2e, runs), bench_median(e2e, runs) / base_best,
	    ">= 0.5");
	printf("%-48s %9.1f MiB %10s %s\n", "     sender's peak RSS",
	    bench_median(rss_s, runs), "", "< 32 MiB");
	printf("%-48s %9.1f MiB %10s %s\n", "     recipient's peak RSS",
	    bench_median(rss_r, runs), "", "< 32 MiB");
	printf("%-48s %9.1f MiB %10s %s\n", "     (the parent's VmRSS at the "
	    "fork)", mib((long)parent_kib), "", "");
	printf("%-48s %9.1f MiB %10s %s\n", "(iii) directory VmHWM, start-up",
	    mib((long)start_kib), "", "");
	printf("%-48s %9.1f MiB %10s %s\n", "      directory VmRSS, idle",
	    mib((long)idle_kib), "", "");
	printf("%-48s %9.1f MiB %10s %s\n", "      directory VmHWM, uploads "
	    "at once", mib((long)hwm_kib), "", "< 64 MiB");
	printf("%-48s %7.0f MiB/s %10s %s\n", "      their aggregate rate",
	    size_f * (double)senders / wall, "", "");
	printf("(%" PRIu64 " uploads at once, %.2f s; largest VmRSS sampled "
	    "%.1f MiB; directory CPU %.2f s)\n", senders, wall,
	    mib((long)rss_max_kib), srv_cpu);
	if (bench_median(e2e, runs) / base_best < TARGET_RATIO ||
	    bench_median(rss_s, runs) >= TARGET_CHILD_MIB ||
	    bench_median(rss_r, runs) >= TARGET_CHILD_MIB ||
	    mib((long)hwm_kib) >= TARGET_SERVER_MIB)
		printf("a target is missed\n");
	tdev_clear(&b.sender);
	tdev_clear(&b.recipient);
	crypto_wipe(b.sender_token, sizeof(b.sender_token));
	crypto_wipe(b.recipient_token, sizeof(b.recipient_token));
	free(up);
	free(down);
	free(e2e);
	free(post);
	free(rss_s);
	free(rss_r);
	munmap(res, sizeof(*res) * (SENDERS_MAX + 2));
	return 0;
}
