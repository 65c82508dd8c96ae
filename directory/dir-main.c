/*
 * dir-main.c - devid-directory: command line, start-up and shutdown.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "dir-api.h"
#include "dir-auth.h"
#include "dir-blob.h"
#include "dir-key.h"
#include "dir-log.h"
#include "dir-migrate.h"
#include "dir-net.h"
#include "dir-pool.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dir-tlog.h"
#include "errors.h"
#include "fileio.h"
#include "stream.h"

#define PROG "devid-directory"
/* With several processes on one blob directory, what another one may be
 * uploading right now is not swept: only files idle this long. */
#define BLOB_SWEEP_GRACE_SHARED_S 3600

static void
usage(FILE *f)
{
	fprintf(f,
"Usage: " PROG " COMMAND [OPTIONS]\n"
"\n"
"The devid directory: accounts, device logs with signed heads, mailbox.\n"
"\n"
"Commands:\n"
"  serve                 run the HTTP server\n"
"  account add NAME      create an account (password from --password-file,\n"
"                        or asked on the terminal, or one line on stdin)\n"
"  account list          list the accounts\n"
"  account show NAME     print an account's log and its current devices\n"
"  key                   print the head-signing key's directory id, its\n"
"                        fingerprint and the transparency log's key for\n"
"                        witnesses (creating the key file if needed)\n"
"  migrate --from FILE --to URI\n"
"                        copy a SQLite directory into an empty PostgreSQL\n"
"                        database and verify every account log there\n"
"\n"
"Common options:\n"
"  -d, --db PATH|URI         SQLite database file (created when missing),\n"
"                            or a PostgreSQL database: postgresql://...\n"
"                            (the password from PGPASSFILE or a service\n"
"                            file, never on the command line)\n"
"  -k, --signing-key F|URI   head-signing key: a PEM file (created with\n"
"                            mode 0600 on first start) or a pkcs11: URI;\n"
"                            default: the database path + \".key\"\n"
"                            (required with a PostgreSQL database)\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"serve options:\n"
"  -l, --listen ADDR:PORT    address to listen on, e.g. 127.0.0.1:8443 or\n"
"                            [::]:443; port 0 picks a free port\n"
"      --tls-cert FILE       PEM certificate (chain) for HTTPS\n"
"      --tls-key FILE        its PEM private key\n"
"      --open-signup         allow anyone to create accounts (POST\n"
"                            /v1/accounts); off by default\n"
"      --max-body BYTES      largest request body (default 1048576)\n"
"      --max-devices N       active devices per account (default 100)\n"
"      --max-recipients N    recipients per envelope (default 1024)\n"
"      --max-queue N         queued messages per device (default 10000)\n"
"      --max-queue-per-sender N  of those, from one sender device\n"
"                            (default 1000)\n"
"      --account-quota BYTES envelope bytes queued for one account's\n"
"                            devices (default 268435456)\n"
"      --max-sessions N      live sessions per device (default 16)\n"
"      --blob-dir DIR        where blobs (attachments) are kept, created\n"
"                            with mode 0700; default: the SQLite\n"
"                            database's path followed by .blobs.\n"
"                            With PostgreSQL give it (one directory\n"
"                            shared by every instance), else no blobs\n"
"                            are served\n"
"      --blob-max BYTES      largest blob (default 104857600)\n"
"      --blob-quota BYTES    blob bytes kept for one account's devices\n"
"                            (default 1073741824)\n"
"      --blob-days N         days a blob is kept at most (default 7)\n"
"      --rate N              requests per second per client address,\n"
"                            429 beyond; 0 turns the limit off (default 50)\n"
"      --burst N             requests a client may send at once\n"
"                            (default 2 * rate)\n"
"      --threads N           HTTP worker threads (default 4)\n"
"      --max-connections N   open connections, long-polls included\n"
"                            (default 4000)\n"
"      --max-per-address N   open connections per client address (IPv6:\n"
"                            per /64); more are closed at once; 0: no\n"
"                            limit (default 32)\n"
"      --request-timeout S   a request must arrive whole within S seconds\n"
"                            of the connection or of the previous answer;\n"
"                            idle connections close after S (default 30);\n"
"                            a blob upload gets S more seconds per 64 KiB\n"
"      --scrypt-cost N       password hashing cost as log2(N), 10..20\n"
"                            (default 15)\n"
"      --password-threads N  threads that hash and check passwords, off\n"
"                            the HTTP threads (default: one per CPU)\n"
"      --password-queue N    password checks that may wait; beyond, 503\n"
"                            (default 64)\n"
"      --throttle-delay MS   hold every 429 answer this long before\n"
"                            sending it, 0..10000 (default 1000)\n"
"      --behind-proxy        a TLS-terminating reverse proxy is in front:\n"
"                            allow plain HTTP on a non-loopback address\n"
"                            and take the client address from the last\n"
"                            X-Forwarded-For entry\n"
"      --ready-file FILE     write the bound ADDR:PORT to FILE once serving\n"
"\n"
"transparency log options (serve; --tlog-origin also for key):\n"
"      --tlog-origin NAME    the log's origin line, e.g. dir.example.org/devid\n"
"                            (default: devid/ and the directory id)\n"
"      --witness URL,VKEY    submit checkpoints to the witness at URL, whose\n"
"                            key devid-witness init printed; repeat for\n"
"                            each witness (docs/witness.md)\n"
"      --checkpoint-interval S  least time between checkpoints while the\n"
"                            tree grows (default 1); 0 makes none and\n"
"                            serves the last one stored\n"
"      --checkpoint-refresh S  most time between checkpoints, so that\n"
"                            cosignatures stay fresh (default 60)\n"
"      --quiet               no log line per request\n"
"\n"
"migrate options:\n"
"      --from FILE           the SQLite database to copy (only read)\n"
"      --to URI              the PostgreSQL database: postgresql://...\n"
"                            (the password from PGPASSFILE or a service\n"
"                            file); it must hold no data.  Stop every\n"
"                            serve on FILE first; sessions are not\n"
"                            copied (devices log in again)\n"
"\n"
"account add options:\n"
"      --password-file FILE  read the password from the first line of FILE\n"
"                            (mode 0600: one that others may read is refused)\n"
"\n"
"serve logs one line per request on standard error (never passwords,\n"
"tokens or bodies) and stops cleanly on SIGTERM or SIGINT: it stops\n"
"accepting, answers waiting long-polls, lets requests in flight finish and\n"
"closes the database.\n");
}

enum {
	OPT_TLS_CERT = 256,
	OPT_TLS_KEY,
	OPT_OPEN_SIGNUP,
	OPT_MAX_BODY,
	OPT_MAX_DEVICES,
	OPT_MAX_RECIPIENTS,
	OPT_MAX_QUEUE,
	OPT_MAX_SESSIONS,
	OPT_RATE,
	OPT_BURST,
	OPT_THREADS,
	OPT_MAX_CONNECTIONS,
	OPT_SCRYPT_COST,
	OPT_READY_FILE,
	OPT_QUIET,
	OPT_PASSWORD_FILE,
	OPT_MAX_PER_ADDRESS,
	OPT_REQUEST_TIMEOUT,
	OPT_PASSWORD_THREADS,
	OPT_PASSWORD_QUEUE,
	OPT_THROTTLE_DELAY,
	OPT_BEHIND_PROXY,
	OPT_MAX_QUEUE_PER_SENDER,
	OPT_ACCOUNT_QUOTA,
	OPT_FROM,
	OPT_TO,
	OPT_TLOG_ORIGIN,
	OPT_WITNESS,
	OPT_CHECKPOINT_INTERVAL,
	OPT_CHECKPOINT_REFRESH,
	OPT_BLOB_DIR,
	OPT_BLOB_MAX,
	OPT_BLOB_QUOTA,
	OPT_BLOB_DAYS,
};

static const struct option long_opts[] = {
	{ "db", required_argument, NULL, 'd' },
	{ "signing-key", required_argument, NULL, 'k' },
	{ "listen", required_argument, NULL, 'l' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "open-signup", no_argument, NULL, OPT_OPEN_SIGNUP },
	{ "max-body", required_argument, NULL, OPT_MAX_BODY },
	{ "max-devices", required_argument, NULL, OPT_MAX_DEVICES },
	{ "max-recipients", required_argument, NULL, OPT_MAX_RECIPIENTS },
	{ "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
	{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "burst", required_argument, NULL, OPT_BURST },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "scrypt-cost", required_argument, NULL, OPT_SCRYPT_COST },
	{ "ready-file", required_argument, NULL, OPT_READY_FILE },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
	{ "max-per-address", required_argument, NULL, OPT_MAX_PER_ADDRESS },
	{ "request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT },
	{ "password-threads", required_argument, NULL, OPT_PASSWORD_THREADS },
	{ "password-queue", required_argument, NULL, OPT_PASSWORD_QUEUE },
	{ "throttle-delay", required_argument, NULL, OPT_THROTTLE_DELAY },
	{ "behind-proxy", no_argument, NULL, OPT_BEHIND_PROXY },
	{ "max-queue-per-sender", required_argument, NULL,
	    OPT_MAX_QUEUE_PER_SENDER },
	{ "account-quota", required_argument, NULL, OPT_ACCOUNT_QUOTA },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "tlog-origin", required_argument, NULL, OPT_TLOG_ORIGIN },
	{ "witness", required_argument, NULL, OPT_WITNESS },
	{ "checkpoint-interval", required_argument, NULL,
	    OPT_CHECKPOINT_INTERVAL },
	{ "checkpoint-refresh", required_argument, NULL,
	    OPT_CHECKPOINT_REFRESH },
	{ "blob-dir", required_argument, NULL, OPT_BLOB_DIR },
	{ "blob-max", required_argument, NULL, OPT_BLOB_MAX },
	{ "blob-quota", required_argument, NULL, OPT_BLOB_QUOTA },
	{ "blob-days", required_argument, NULL, OPT_BLOB_DAYS },
	{ NULL, 0, NULL, 0 },
};

struct options {
	const char *db;
	const char *signing_key;
	char *default_key;
	const char *listen;
	const char *tls_cert;
	const char *tls_key;
	const char *ready_file;
	const char *password_file;
	const char *from, *to;          /* migrate */
	const char *blob_dir;
	char *default_blob_dir;
	int quiet;
	int behind_proxy;
	unsigned int rate, burst, threads, max_connections;
	unsigned int max_per_address, request_timeout_s;
	unsigned int password_threads, password_queue, throttle_delay_ms;
	struct dir_api_config api;
	struct dir_tlog_config tlog;
};

/* A decimal option value in [min, max]; exits with a message otherwise. */
static unsigned long long
number_arg(const char *opt, const char *s, unsigned long long min,
    unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || errno != 0 || *end != '\0' || v < min ||
	    v > max) {
		fprintf(stderr, PROG ": --%s must be a number from %llu to "
		    "%llu (got '%s')\n", opt, min, max, s);
		exit(2);
	}
	return v;
}

/* Exits with e's message when r is an error. */
static void
tlog_option(int r, const struct err_ctx *e)
{
	if (r != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(e));
		exit(2);
	}
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	struct err_ctx e;
	int c;

	err_clear(&e);

	while ((c = getopt_long(argc, argv, "d:k:l:hV", long_opts,
	    NULL)) != -1) {
		switch (c) {
		case 'd':
			o->db = optarg;
			break;
		case 'k':
			o->signing_key = optarg;
			break;
		case 'l':
			o->listen = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf(PROG " " PACKAGE_VERSION "\n");
			exit(0);
		case OPT_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			o->tls_key = optarg;
			break;
		case OPT_OPEN_SIGNUP:
			o->api.open_signup = 1;
			break;
		case OPT_MAX_BODY:
			o->api.max_body = number_arg("max-body", optarg, 4096,
			    (unsigned long long)64 * 1024 * 1024);
			break;
		case OPT_MAX_DEVICES:
			o->api.max_devices = number_arg("max-devices", optarg,
			    1, ACCTLOG_MAX_DEVICES);
			break;
		case OPT_MAX_RECIPIENTS:
			o->api.max_recipients = number_arg("max-recipients",
			    optarg, 1, 1024);
			break;
		case OPT_MAX_QUEUE:
			o->api.max_queue = number_arg("max-queue", optarg, 1,
			    10000000);
			break;
		case OPT_MAX_SESSIONS:
			o->api.max_sessions = number_arg("max-sessions", optarg,
			    1, 1000);
			break;
		case OPT_RATE:
			o->rate = number_arg("rate", optarg, 0, 1000000);
			break;
		case OPT_BURST:
			o->burst = number_arg("burst", optarg, 1, 10000000);
			break;
		case OPT_THREADS:
			o->threads = number_arg("threads", optarg, 1, 256);
			break;
		case OPT_MAX_CONNECTIONS:
			o->max_connections = number_arg("max-connections",
			    optarg, 1, 1000000);
			break;
		case OPT_SCRYPT_COST:
			o->api.scrypt_log_n = number_arg("scrypt-cost", optarg,
			    DIR_SCRYPT_LOG_N_MIN, DIR_SCRYPT_LOG_N_MAX);
			break;
		case OPT_READY_FILE:
			o->ready_file = optarg;
			break;
		case OPT_QUIET:
			o->quiet = 1;
			break;
		case OPT_PASSWORD_FILE:
			o->password_file = optarg;
			break;
		case OPT_MAX_PER_ADDRESS:
			o->max_per_address = number_arg("max-per-address",
			    optarg, 0, 1000000);
			if (o->max_per_address == 0)
				o->max_per_address = DIR_UNLIMITED;
			break;
		case OPT_REQUEST_TIMEOUT:
			o->request_timeout_s = number_arg("request-timeout",
			    optarg, 1, 3600);
			break;
		case OPT_PASSWORD_THREADS:
			o->password_threads = number_arg("password-threads",
			    optarg, 1, DIR_POOL_THREADS_MAX);
			break;
		case OPT_PASSWORD_QUEUE:
			o->password_queue = number_arg("password-queue",
			    optarg, 1, DIR_POOL_QUEUE_MAX);
			break;
		case OPT_THROTTLE_DELAY:
			o->throttle_delay_ms = number_arg("throttle-delay",
			    optarg, 0, DIR_THROTTLE_DELAY_MAX_MS);
			break;
		case OPT_BEHIND_PROXY:
			o->behind_proxy = 1;
			break;
		case OPT_MAX_QUEUE_PER_SENDER:
			o->api.max_queue_per_sender = number_arg(
			    "max-queue-per-sender", optarg, 1, 10000000);
			break;
		case OPT_ACCOUNT_QUOTA:
			o->api.account_quota = number_arg("account-quota",
			    optarg, 1, INT64_MAX);
			break;
		case OPT_FROM:
			o->from = optarg;
			break;
		case OPT_TO:
			o->to = optarg;
			break;
		case OPT_TLOG_ORIGIN:
			tlog_option(dir_tlog_set_origin(&o->tlog, optarg,
			    &e), &e);
			break;
		case OPT_WITNESS:
			tlog_option(dir_tlog_add_witness(&o->tlog, optarg,
			    &e), &e);
			break;
		case OPT_CHECKPOINT_INTERVAL:
			o->tlog.interval_s = number_arg("checkpoint-interval",
			    optarg, 0, 3600);
			break;
		case OPT_CHECKPOINT_REFRESH:
			o->tlog.refresh_s = number_arg("checkpoint-refresh",
			    optarg, 1, 86400);
			break;
		case OPT_BLOB_DIR:
			o->blob_dir = optarg;
			break;
		case OPT_BLOB_MAX:
			o->api.blob_max = number_arg("blob-max", optarg,
			    STREAM_HEADER_LEN + STREAM_TAG_LEN, INT64_MAX);
			break;
		case OPT_BLOB_QUOTA:
			o->api.blob_quota = number_arg("blob-quota", optarg, 1,
			    INT64_MAX);
			break;
		case OPT_BLOB_DAYS:
			o->api.blob_days = number_arg("blob-days", optarg, 1,
			    3650);
			break;
		default:
			fprintf(stderr, "Try '" PROG " --help'.\n");
			exit(2);
		}
	}
}

static int
need_db(const struct options *o)
{
	if (o->db == NULL) {
		fprintf(stderr, PROG ": --db PATH is required\n");
		return -1;
	}
	return 0;
}

/* Whether db names a PostgreSQL database rather than a SQLite file. */
static int
db_is_pg(const char *db)
{
	return strncmp(db, "postgresql://", 13) == 0 ||
	    strncmp(db, "postgres://", 11) == 0;
}

/* Opens the store --db names: a PostgreSQL URI or a SQLite file. */
static int
store_open(const struct options *o, struct dir_store **store,
    struct err_ctx *e)
{
	int r;

	if (!db_is_pg(o->db))
		return dir_store_sqlite_open(o->db, store, e);
	if ((r = dir_store_pg_uri_check(o->db, e)) != 0)
		return r;
	return dir_store_pg_open(o->db, store, e);
}

/* The database as messages may show it: a URI may carry a password. */
static const char *
db_shown(const struct options *o)
{
	return db_is_pg(o->db) ? "on PostgreSQL" : o->db;
}

/* The key spec: --signing-key, or the database path + ".key". */
static const char *
key_spec(struct options *o)
{
	size_t n;

	if (o->signing_key != NULL)
		return o->signing_key;
	if (o->db == NULL || db_is_pg(o->db))
		return NULL;
	n = strlen(o->db) + 5;
	if ((o->default_key = malloc(n)) == NULL)
		return NULL;
	snprintf(o->default_key, n, "%s.key", o->db);
	return o->default_key;
}

static int
open_key(struct options *o, struct dir_key **k)
{
	struct err_ctx e;
	const char *spec;
	char fp[DIR_KEY_FINGERPRINT_LEN + 1];
	int created = 0;

	err_clear(&e);
	if ((spec = key_spec(o)) == NULL) {
		if (o->db != NULL && db_is_pg(o->db))
			fprintf(stderr, PROG ": with a PostgreSQL --db, give "
			    "--signing-key (a PEM file or a pkcs11: URI): "
			    "there is no database file to keep the key "
			    "next to\n");
		else
			fprintf(stderr, PROG ": give --signing-key or --db\n");
		return -1;
	}
	if (dir_key_open(spec, 1, k, &created, &e) != 0) {
		fprintf(stderr, PROG ": head-signing key: %s\n", err_msg(&e));
		return -1;
	}
	dir_key_fingerprint(*k, fp);
	if (created)
		dir_log("created a new head-signing key in %s", spec);
	dir_log("directory id %s", dir_key_id(*k));
	dir_log("head key fingerprint %s", fp);
	return 0;
}

/* The blob directory: --blob-dir, or DB.blobs for a SQLite database DB;
 * NULL (no blobs) with PostgreSQL and no --blob-dir, or out of memory. */
static const char *
blob_dir_spec(struct options *o)
{
	if (o->blob_dir != NULL)
		return o->blob_dir;
	if (o->db == NULL || db_is_pg(o->db))
		return NULL;
	/* Named after the database, so that two databases in one folder
	 * never share (and sweep) each other's blobs. */
	if (asprintf(&o->default_blob_dir, "%s.blobs", o->db) < 0) {
		o->default_blob_dir = NULL;
		return NULL;
	}
	return o->default_blob_dir;
}

/*
 * Opens the blob directory and sweeps what an earlier run left: partial
 * uploads and files without a row.  *out stays NULL when no blobs are
 * served.  0, or -1 with the reason on standard error.
 */
static int
open_blobs(struct options *o, struct dir_store *store,
    struct dir_blobs **out)
{
	struct err_ctx e;
	const char *dir;
	uint64_t removed = 0;

	err_clear(&e);
	*out = NULL;
	if ((dir = blob_dir_spec(o)) == NULL) {
		dir_log("no --blob-dir: blobs (attachments) are not served");
		return 0;
	}
	if (dir_blobs_open(dir, out, &e) != 0) {
		fprintf(stderr, PROG ": blob directory: %s\n", err_msg(&e));
		return -1;
	}
	if (dir_blobs_sweep(*out, store, db_is_pg(o->db) ?
	    BLOB_SWEEP_GRACE_SHARED_S : 0, &removed, &e) != 0) {
		fprintf(stderr, PROG ": sweeping the blob directory: %s\n",
		    err_msg(&e));
		return -1;
	}
	if (removed > 0)
		dir_log("removed %" PRIu64 " partial or orphaned blob "
		    "files from %s", removed, dir);
	dir_log("blobs in %s, at most %" PRIu64 " bytes each, %" PRIu64
	    " per account, kept at most %u days", dir, o->api.blob_max,
	    o->api.blob_quota, o->api.blob_days);
	return 0;
}

/* Writes "ADDRESS\n" to path (replacing it atomically, mode 0644) for
 * the scripts that wait for the server to listen.  0 or an error code. */
static int
write_ready_file(const char *path, const char *address, struct err_ctx *e)
{
	char *line = NULL;
	int r;

	if (asprintf(&line, "%s\n", address) < 0)
		return err_set(e, ERR_ALLOC, "out of memory");
	r = fileio_write_atomic(path, line, strlen(line), 0644, e);
	free(line);
	return r;
}

/*
 * Long-polls hold a descriptor each: raise the soft descriptor limit
 * towards what --max-connections needs (never above the hard limit), and
 * say so when even that is too low.
 */
static void
raise_fd_limit(unsigned int max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ?
	    want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		dir_log("only %llu file descriptors allowed: fewer than "
		    "--max-connections %u clients can be served at once",
		    (unsigned long long)rl.rlim_cur, max_connections);
}

/*
 * A database made by an older version (or copied in) may be readable by
 * group or others: say so at every start rather than change its mode
 * behind the operator's back.
 */
static void
warn_if_readable(const char *db)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	struct stat st;
	char path[4096];
	size_t i;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", db, suffix[i]);
		if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
			dir_log("warning: %s is readable by group or others "
			    "(mode %03o): it holds password hashes and "
			    "sessions; run chmod 600 on it", path,
			    (unsigned int)(st.st_mode & 0777));
	}
}

/*
 * What the process sets up before any thread starts: SIGTERM, SIGINT and
 * SIGHUP blocked (every thread inherits the mask; the main thread waits
 * for them in *set with sigwait()), SIGPIPE ignored, a private umask,
 * SQLite without memory statistics, and enough file descriptors.
 */
static void
serve_process_setup(const struct options *o, sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The database, its journal and the head key are nobody else's. */
	umask(077);
	/* Before SQLite starts: no process-wide memory statistics, whose
	 * mutex every allocation of every thread would take. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	raise_fd_limit(o->max_connections != 0 ? o->max_connections :
	    DIR_CONNECTIONS_DEFAULT);
}

/* The server's settings from the options; api handles the requests. */
static void
server_config(const struct options *o, struct dir_api *api,
    struct dir_server_config *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->listen = o->listen;
	sc->tls_cert = o->tls_cert;
	sc->tls_key = o->tls_key;
	sc->max_body = o->api.max_body;
	sc->threads = o->threads;
	sc->rate = o->rate;
	sc->burst = o->burst;
	sc->max_connections = o->max_connections;
	sc->max_per_address = o->max_per_address;
	sc->request_timeout_s = o->request_timeout_s;
	sc->job_threads = o->password_threads;
	sc->job_queue = o->password_queue;
	sc->throttle_delay_ms = o->throttle_delay_ms;
	sc->behind_proxy = o->behind_proxy;
	sc->quiet = o->quiet;
	sc->handler = dir_api_handle;
	sc->preauth = dir_api_preauth;
	sc->headers = dir_api_headers;
	sc->handler_arg = api;
}

/* Waits for a signal of set other than SIGHUP and returns it. */
static int
wait_for_stop(const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP)
			continue;
		return sig;
	}
}

static int
cmd_serve(struct options *o)
{
	struct err_ctx e;
	struct dir_store *store = NULL;
	struct dir_key *key = NULL;
	struct dir_server *srv = NULL;
	struct dir_server_config sc;
	struct dir_api api;
	struct dir_tlog *tlog = NULL;
	struct dir_blobs *blobs = NULL;
	sigset_t set;
	int sig, ret = 1, api_ok = 0;

	err_clear(&e);
	if (need_db(o) != 0)
		return 2;
	if (o->listen == NULL) {
		fprintf(stderr, PROG ": serve needs --listen ADDR:PORT\n");
		return 2;
	}
	serve_process_setup(o, &set);

	if (!db_is_pg(o->db))
		warn_if_readable(o->db);
	if (store_open(o, &store, &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		goto out;
	}
	if (open_key(o, &key) != 0)
		goto out;
	if (dir_api_init(&api, &o->api, store, key) != 0) {
		fprintf(stderr, PROG ": cannot initialise\n");
		goto out;
	}
	api_ok = 1;
	if (open_blobs(o, store, &blobs) != 0)
		goto out;
	dir_api_set_blobs(&api, blobs);
	if (dir_tlog_new(&o->tlog, store, key, &tlog, &e) != 0) {
		fprintf(stderr, PROG ": transparency log: %s\n", err_msg(&e));
		goto out;
	}
	dir_api_set_tlog(&api, tlog);
	server_config(o, &api, &sc);
	if (dir_server_start(&sc, &srv, &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		if (e.code == ERR_CONFIG)
			ret = 2;
		goto out;
	}
	dir_api_set_server(&api, srv);
	if (dir_api_watch_start(&api, &e) != 0 ||
	    dir_tlog_start(tlog, &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		goto out;
	}
	dir_log("transparency log %s, %zu witness%s, a checkpoint %s",
	    dir_tlog_origin(tlog), o->tlog.n_witness,
	    o->tlog.n_witness == 1 ? "" : "es", o->tlog.interval_s == 0 ?
	    "never (--checkpoint-interval 0)" : "within seconds of growth");
	dir_log(PROG " " PACKAGE_VERSION " listening on %s (%s), database "
	    "%s, open sign-up %s", dir_server_address(srv),
	    o->tls_cert != NULL ? "HTTPS" : "plain HTTP", db_shown(o),
	    o->api.open_signup ? "on" : "off");
	if (o->ready_file != NULL &&
	    write_ready_file(o->ready_file, dir_server_address(srv),
	    &e) != 0) {
		fprintf(stderr, PROG ": ready file: %s\n", err_msg(&e));
		goto out;
	}
	sig = wait_for_stop(&set);
	dir_log("signal %d: draining requests and stopping", sig);
	ret = 0;
 out:
	/* Nothing may wake a request of the server once it is gone. */
	if (api_ok)
		dir_api_watch_stop(&api);
	dir_server_stop(srv);
	/* After the server: no request uses the log any more. */
	dir_tlog_free(tlog);
	if (api_ok)
		dir_api_clear(&api);
	dir_blobs_free(blobs);
	dir_key_free(key);
	dir_store_close(store);
	if (ret == 0)
		dir_log("stopped");
	return ret;
}

/* Reads one line from fd into a new string without the newline. */
static int
read_password_line(FILE *f, char **out, size_t *out_len)
{
	char buf[DIR_PASSWORD_MAX + 2];
	size_t n;

	if (fgets(buf, sizeof(buf), f) == NULL)
		return -1;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if ((*out = strdup(buf)) == NULL) {
		crypto_wipe(buf, sizeof(buf));
		return -1;
	}
	*out_len = n;
	crypto_wipe(buf, sizeof(buf));
	return 0;
}

static int
prompt_password(const char *prompt, char **out, size_t *out_len)
{
	struct termios old, quiet;
	FILE *tty;
	int r;

	if ((tty = fopen("/dev/tty", "r+")) == NULL)
		return -1;
	fprintf(tty, "%s", prompt);
	fflush(tty);
	tcgetattr(fileno(tty), &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	r = read_password_line(tty, out, out_len);
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fprintf(tty, "\n");
	fclose(tty);
	return r;
}

static void
free_password(char *pw, size_t len)
{
	if (pw != NULL) {
		crypto_wipe(pw, len);
		free(pw);
	}
}

/* The largest password file read: a line of DIR_PASSWORD_MAX and room. */
#define PASSWORD_FILE_MAX ((size_t)4096)

/*
 * The first line of the password file at path in a new string (*out, of
 * *out_len bytes; the caller wipes and frees it).  Like ssh with a key
 * file, a file that group or others may access is refused, with the
 * command that fixes it.  0, or -1 with the reason on standard error.
 */
static int
read_password_file(const char *path, char **out, size_t *out_len)
{
	struct err_ctx e;
	struct stat st;
	char *text = NULL;
	size_t len = 0, n;
	int r;

	err_clear(&e);
	r = fileio_read(path, PASSWORD_FILE_MAX, FILEIO_FOLLOW |
	    FILEIO_PRIVATE | FILEIO_SECRET, &text, &len, &e);
	if (r == ERR_DENIED) {
		fprintf(stderr, PROG ": the password file %s is open to other "
		    "users (mode %04o): run chmod 600 %s\n", path,
		    stat(path, &st) == 0 ?
		    (unsigned int)(st.st_mode & 07777) : 0u, path);
		return -1;
	}
	if (r != 0) {
		fprintf(stderr, PROG ": the password file: %s\n", err_msg(&e));
		return -1;
	}
	n = strcspn(text, "\r\n");
	r = -1;
	if (n == 0 || memchr(text, '\0', n) != NULL)
		fprintf(stderr, PROG ": %s holds no password line\n", path);
	else if ((*out = strndup(text, n)) != NULL) {
		*out_len = n;
		r = 0;
	}
	crypto_wipe(text, len);
	free(text);
	return r;
}

/* The new account's password: from a file, the terminal (twice) or one
 * line of standard input. */
static int
get_new_password(const struct options *o, char **out, size_t *out_len)
{
	char *again = NULL;
	size_t again_len = 0;
	int r;

	if (o->password_file != NULL)
		return read_password_file(o->password_file, out, out_len);
	if (!isatty(STDIN_FILENO)) {
		if (read_password_line(stdin, out, out_len) != 0) {
			fprintf(stderr, PROG ": no password on standard "
			    "input\n");
			return -1;
		}
		return 0;
	}
	if (prompt_password("New account password: ", out, out_len) != 0 ||
	    prompt_password("Repeat the password: ", &again,
	    &again_len) != 0) {
		fprintf(stderr, PROG ": no password given\n");
		free_password(*out, *out_len);
		*out = NULL;
		return -1;
	}
	r = again_len == *out_len &&
	    crypto_memeq_ct(again, *out, again_len) == 0 ? 0 : -1;
	free_password(again, again_len);
	if (r != 0) {
		fprintf(stderr, PROG ": the passwords differ\n");
		free_password(*out, *out_len);
		*out = NULL;
	}
	return r;
}

static int
cmd_account_add(struct options *o, const char *name)
{
	struct err_ctx e;
	struct dir_store *store = NULL;
	char *pw = NULL, *hash = NULL;
	size_t pw_len = 0;
	unsigned int log_n = o->api.scrypt_log_n;
	int ret = 1;

	err_clear(&e);
	if (devrec_account_check(name, &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		return 2;
	}
	if (get_new_password(o, &pw, &pw_len) != 0)
		goto out;
	if (dir_password_check(pw, pw_len, &e) != 0 ||
	    dir_password_hash(pw, pw_len, log_n, &hash, &e) != 0 ||
	    store_open(o, &store, &e) != 0 ||
	    store->ops->account_create(store, name, hash,
	    (uint64_t)time(NULL), &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		goto out;
	}
	printf("account %s created\n", name);
	ret = 0;
 out:
	free_password(pw, pw_len);
	free(hash);
	dir_store_close(store);
	return ret;
}

static int
print_account(void *arg, const char *name, uint64_t created)
{
	printf("%s\t%" PRIu64 "\n", name, created);
	return 0;
}

static int
print_event(void *arg, uint64_t seq, const char *type, const char *json)
{
	json_t *o = json_loads(json, 0, NULL);
	json_t *rec = o != NULL ? json_object_get(o, "record") : NULL;
	const char *dev;
	char short_id[DEVREC_SHORT_ID_LEN + 1];
	time_t t;
	struct tm tm;
	char when[32];

	t = (time_t)json_integer_value(json_object_get(o, "time"));
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	dev = rec != NULL ? json_string_value(json_object_get(rec, "device")) :
	    json_string_value(json_object_get(o, "device"));
	if (dev == NULL || devrec_short_id(dev, short_id) != 0)
		snprintf(short_id, sizeof(short_id), "?");
	printf("  %4" PRIu64 "  %s  %-6s  %s", seq, when, type, short_id);
	if (rec != NULL)
		printf("  '%s'", json_string_value(json_object_get(rec,
		    "label")));
	printf("  %s\n", json_string_value(json_object_get(o, "hash")));
	json_decref(o);
	return 0;
}

static int
print_device(void *arg, const char *device, const char *record_json)
{
	json_t *o = json_loads(record_json, 0, NULL);
	char short_id[DEVREC_SHORT_ID_LEN + 1];

	if (devrec_short_id(device, short_id) != 0)
		snprintf(short_id, sizeof(short_id), "?");
	printf("  %s  '%s'  %s  %s\n", short_id,
	    json_string_value(json_object_get(o, "label")),
	    json_string_value(json_object_get(o, "enc_alg")), device);
	json_decref(o);
	return 0;
}

static int
cmd_account_list(struct options *o)
{
	struct err_ctx e;
	struct dir_store *store = NULL;
	int ret = 1;

	err_clear(&e);
	if (store_open(o, &store, &e) != 0 ||
	    store->ops->account_list(store, print_account, NULL, &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		goto out;
	}
	ret = 0;
 out:
	dir_store_close(store);
	return ret;
}

static int
cmd_account_show(struct options *o, const char *name)
{
	struct err_ctx e;
	struct dir_store *store = NULL;
	uint64_t seq, created;
	uint8_t hash[32];
	int ret = 1;

	err_clear(&e);
	if (devrec_account_check(name, &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		return 2;
	}
	if (store_open(o, &store, &e) != 0 ||
	    store->ops->account_get(store, name, NULL, &created, &e) != 0 ||
	    store->ops->log_tail(store, name, &seq, hash, &e) != 0)
		goto fail;
	printf("account %s (created %" PRIu64 "), log at seq %" PRIu64 "\n",
	    name, created, seq);
	printf("log:\n");
	if (store->ops->log_events(store, name, 0, seq, UINT32_MAX,
	    print_event, NULL, &e) != 0)
		goto fail;
	printf("active devices:\n");
	if (store->ops->devices_active(store, name, &seq, hash, print_device,
	    NULL, &e) != 0)
		goto fail;
	ret = 0;
	goto out;
 fail:
	fprintf(stderr, PROG ": %s\n", err_msg(&e));
 out:
	dir_store_close(store);
	return ret;
}

static int
cmd_key(struct options *o)
{
	struct dir_key *key = NULL;
	char fp[DIR_KEY_FINGERPRINT_LEN + 1];
	char vkey[TLOG_VKEY_MAX * 2];
	struct err_ctx e;

	if (open_key(o, &key) != 0)
		return 1;
	dir_key_fingerprint(key, fp);
	printf("directory id: %s\nfingerprint:  %s\n", dir_key_id(key), fp);
	err_clear(&e);
	if (dir_tlog_vkey_of(o->tlog.origin, key, vkey, sizeof(vkey),
	    &e) != 0) {
		fprintf(stderr, PROG ": %s\n", err_msg(&e));
		dir_key_free(key);
		return 1;
	}
	printf("log key:      %s\n", vkey);
	dir_key_free(key);
	return 0;
}

static int
cmd_migrate(const struct options *o)
{
	struct err_ctx e;
	struct dir_migrate_counts n;

	err_clear(&e);
	if (o->from == NULL || o->to == NULL) {
		fprintf(stderr, PROG ": migrate needs --from FILE (a SQLite "
		    "database) and --to postgresql://...\n");
		return 2;
	}
	if (db_is_pg(o->from) || !db_is_pg(o->to)) {
		fprintf(stderr, PROG ": migrate copies from a SQLite file "
		    "(--from) to PostgreSQL (--to postgresql://...)\n");
		return 2;
	}
	if (dir_store_pg_uri_check(o->to, &e) != 0 ||
	    dir_migrate_run(o->from, o->to, &n, &e) != 0) {
		fprintf(stderr, PROG ": migrate: %s\n", err_msg(&e));
		return 1;
	}
	printf("%" PRIu64 " accounts, %" PRIu64 " events, %" PRIu64 " queued "
	    "messages copied; every log verifies\n", n.accounts, n.events,
	    n.queued);
	return 0;
}

int
main(int argc, char **argv)
{
	struct options o;
	const char *cmd, *sub = NULL, *name = NULL;
	int ret = 2;

	memset(&o, 0, sizeof(o));
	dir_api_config_default(&o.api);
	dir_tlog_config_default(&o.tlog);
	o.rate = DIR_RATE_DEFAULT;
	o.throttle_delay_ms = DIR_THROTTLE_DELAY_DEFAULT_MS;
	if (argc < 2 || argv[1][0] == '-') {
		parse_options(argc, argv, &o);
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	optind = 2;
	if (strcmp(cmd, "account") == 0) {
		if (argc < 3 || argv[2][0] == '-') {
			fprintf(stderr, PROG ": account needs add, list or "
			    "show\n");
			return 2;
		}
		sub = argv[2];
		optind = 3;
		if (strcmp(sub, "add") == 0 || strcmp(sub, "show") == 0) {
			if (argc < 4 || argv[3][0] == '-') {
				fprintf(stderr, PROG ": account %s needs an "
				    "account name\n", sub);
				return 2;
			}
			name = argv[3];
			optind = 4;
		}
	}
	parse_options(argc, argv, &o);
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if (strcmp(cmd, "serve") == 0) {
		ret = cmd_serve(&o);
	} else if (strcmp(cmd, "key") == 0) {
		ret = cmd_key(&o);
	} else if (strcmp(cmd, "migrate") == 0) {
		ret = cmd_migrate(&o);
	} else if (strcmp(cmd, "account") == 0) {
		if (need_db(&o) != 0)
			ret = 2;
		else if (strcmp(sub, "add") == 0)
			ret = cmd_account_add(&o, name);
		else if (strcmp(sub, "list") == 0)
			ret = cmd_account_list(&o);
		else if (strcmp(sub, "show") == 0)
			ret = cmd_account_show(&o, name);
		else
			fprintf(stderr, PROG ": unknown account command "
			    "'%s'\n", sub);
	} else {
		fprintf(stderr, PROG ": unknown command '%s'\n", cmd);
		usage(stderr);
	}
	free(o.default_key);
	free(o.default_blob_dir);
	return ret;
}
