/*
 * wit-main.c - devid-witness: command line, start-up and shutdown.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "errors.h"
#include "fileio.h"
#include "timefmt.h"
#include "tlog-note.h"
#include "wit-signer.h"
#include "wit-server.h"
#include "wit-store.h"
#include "wit-witness.h"

#define PROG "devid-witness"
#define LOGS_FILE_MAX ((size_t)1 << 20)

static const char usage_main[] =
"Usage: " PROG " COMMAND [OPTIONS]\n"
"\n"
"A C2SP tlog-witness for devid directories: cosigns a directory's\n"
"checkpoints only when they extend the ones it cosigned before.\n"
"\n"
"Commands:\n"
"  init      create the witness key and print its vkey\n"
"  vkey      print the witness's vkey again\n"
"  run       serve POST /add-checkpoint\n"
"  status    print the latest checkpoint cosigned for each log\n"
"  evidence  print every checkpoint refused as not extending a log's\n"
"            history, with the one held\n"
"\n"
PROG " COMMAND --help describes each command.  See docs/witness.md.\n";

static const char usage_init[] =
"Usage: " PROG " init --key FILE|URI --name NAME [--pin-file FILE]\n"
"\n"
"Creates an Ed25519 key in FILE (PEM, mode 0600; an existing FILE is\n"
"never overwritten), or in the PKCS#11 token a pkcs11: URI names (the\n"
"key \"<object>-sig\", never over an existing one; the token must support\n"
"CKM_EDDSA), and prints the witness's vkey, the line to give to the\n"
"directories and clients that rely on this witness.\n"
"\n"
"  -k, --key FILE|URI  the key file to create, or a pkcs11: URI\n"
"  -n, --name NAME     the witness's name, e.g. witness.example.org\n"
"      --pin-file FILE the token's PIN (when the URI has no pin-source)\n"
"  -h, --help          show this help\n";

static const char usage_vkey[] =
"Usage: " PROG " vkey --key FILE|URI --name NAME [--pin-file FILE]\n"
"\n"
"Prints the witness's vkey (NAME+KEYID+KEY) for the key in FILE or in\n"
"the token the pkcs11: URI names.\n"
"\n"
"  -k, --key FILE|URI  the witness key\n"
"  -n, --name NAME     the witness's name, as given to init\n"
"      --pin-file FILE the token's PIN (when the URI has no pin-source)\n"
"  -h, --help          show this help\n";

static const char usage_run[] =
"Usage: " PROG " run --key FILE|URI --name NAME --state DIR\n"
"           --listen ADDR:PORT --log VKEY [--log VKEY ...] [OPTIONS]\n"
"\n"
"Serves POST /add-checkpoint (C2SP tlog-witness) until SIGTERM or SIGINT.\n"
"\n"
"  -k, --key FILE|URI      the witness key (made by init): a file or a\n"
"                          pkcs11: URI\n"
"      --pin-file FILE     the token's PIN (when the URI has no\n"
"                          pin-source)\n"
"  -n, --name NAME         the witness's name, as given to init\n"
"  -s, --state DIR         the state directory (created mode 0700); one\n"
"                          witness process per directory\n"
"  -l, --listen ADDR:PORT  numeric address to listen on, e.g.\n"
"                          127.0.0.1:8446 or [::]:8446; port 0 picks one\n"
"  -L, --log VKEY          a log to witness: the vkey devid-directory\n"
"                          prints for it (ORIGIN+KEYID+KEY, type 0x02);\n"
"                          repeat for more logs\n"
"      --logs-file FILE    more log vkeys, one a line ('#' comments)\n"
"      --threads N         request threads (default 4)\n"
"      --max-connections N open connections (default 256)\n"
"      --per-address N     open connections per client address\n"
"                          (default 16)\n"
"      --timeout S         a request must arrive whole within S seconds\n"
"                          (default 10)\n"
"      --ready-file FILE   write the bound ADDR:PORT to FILE once serving\n"
"      --quiet             no log line per request\n"
"  -h, --help              show this help\n";

static const char usage_status[] =
"Usage: " PROG " status --state DIR\n"
"\n"
"Prints, for each log, its origin, the size and root of the latest\n"
"checkpoint cosigned, and when (one line per log).\n"
"\n"
"  -s, --state DIR   the state directory of the witness\n"
"  -h, --help        show this help\n";

static const char usage_evidence[] =
"Usage: " PROG " evidence --state DIR\n"
"\n"
"Prints every checkpoint the witness refused because it did not extend\n"
"the history it cosigned: time, origin, reason, then the signed note it\n"
"held and the one offered, verbatim.  Two notes of one size with\n"
"different roots, both signed by the log, prove that the log forked.\n"
"\n"
"  -s, --state DIR   the state directory of the witness\n"
"  -h, --help        show this help\n";

enum {
	OPT_LOGS_FILE = 256,
	OPT_THREADS,
	OPT_MAX_CONNECTIONS,
	OPT_PER_ADDRESS,
	OPT_TIMEOUT,
	OPT_READY_FILE,
	OPT_QUIET,
	OPT_PIN_FILE,
};

static const struct option long_opts[] = {
	{ "key", required_argument, NULL, 'k' },
	{ "name", required_argument, NULL, 'n' },
	{ "state", required_argument, NULL, 's' },
	{ "listen", required_argument, NULL, 'l' },
	{ "log", required_argument, NULL, 'L' },
	{ "logs-file", required_argument, NULL, OPT_LOGS_FILE },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "per-address", required_argument, NULL, OPT_PER_ADDRESS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "ready-file", required_argument, NULL, OPT_READY_FILE },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "pin-file", required_argument, NULL, OPT_PIN_FILE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

struct opts {
	const char *key;
	const char *name;
	const char *state;
	const char *listen;
	const char *logs_file;
	const char *ready_file;
	const char *pin_file;
	const char *log[WIT_LOGS_MAX];
	size_t nlog;
	unsigned int threads, max_connections, per_address, timeout_s;
	int quiet;
};

/* A decimal number 1..max into *out, or an error on stderr. */
static int
parse_uint(const char *opt, const char *s, unsigned int max,
    unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < 1 ||
	    v > max) {
		fprintf(stderr, PROG ": --%s wants a number from 1 to %u, not "
		    "'%s'\n", opt, max, s);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

/*
 * Parses the options after the command into o.  Returns 0, 1 after
 * printing help, or -1 after printing an error.
 */
static int
parse_opts(int argc, char **argv, const char *usage, struct opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:n:s:l:L:hV", long_opts,
	    NULL)) != -1) {
		switch (c) {
		case 'k': o->key = optarg; break;
		case 'n': o->name = optarg; break;
		case 's': o->state = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'L':
			if (o->nlog == WIT_LOGS_MAX) {
				fprintf(stderr, PROG ": at most %d logs\n",
				    WIT_LOGS_MAX);
				return -1;
			}
			o->log[o->nlog++] = optarg;
			break;
		case OPT_LOGS_FILE: o->logs_file = optarg; break;
		case OPT_READY_FILE: o->ready_file = optarg; break;
		case OPT_QUIET: o->quiet = 1; break;
		case OPT_PIN_FILE: o->pin_file = optarg; break;
		case OPT_THREADS:
			if (parse_uint("threads", optarg, 256, &o->threads))
				return -1;
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_uint("max-connections", optarg, 65536,
			    &o->max_connections))
				return -1;
			break;
		case OPT_PER_ADDRESS:
			if (parse_uint("per-address", optarg, 65536,
			    &o->per_address))
				return -1;
			break;
		case OPT_TIMEOUT:
			if (parse_uint("timeout", optarg, 3600, &o->timeout_s))
				return -1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		case 'V':
			puts(PROG " " PACKAGE_VERSION);
			return 1;
		default:
			fprintf(stderr, "Try '" PROG " %s --help'.\n", argv[0]);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG " %s: unexpected argument '%s'\n",
		    argv[0], argv[optind]);
		return -1;
	}
	return 0;
}

/* Complains about a missing option; returns -1. */
static int
need(const char *cmd, const char *what, const void *v)
{
	if (v != NULL)
		return 0;
	fprintf(stderr, PROG " %s needs %s (see " PROG " %s --help)\n", cmd,
	    what, cmd);
	return -1;
}

static int
fail(const char *cmd, const struct err_ctx *e)
{
	fprintf(stderr, PROG " %s: %s\n", cmd, err_msg(e));
	return 1;
}

/* Prints the vkey of the key pkey under name. */
static int
print_vkey(const char *name, EVP_PKEY *pkey, struct err_ctx *e)
{
	struct tlog_vkey k;
	char s[TLOG_VKEY_MAX * 2];
	int r;

	if ((r = tlog_vkey_cosigner(name, pkey, &k, e)) != 0)
		return r;
	if ((r = tlog_vkey_format(&k, s, sizeof(s))) != 0)
		return err_set(e, r, "cannot format the vkey of '%.200s' (a "
		    "name without spaces or '+', at most %d bytes)", name,
		    TLOG_NAME_MAX);
	printf("%s\n", s);
	return 0;
}

/* Checks a witness name before a key is made for it. */
static int
name_check(const char *name, struct err_ctx *e)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > TLOG_NAME_MAX)
		return err_set(e, ERR_CONFIG, "the witness name must have 1 "
		    "to %d bytes", TLOG_NAME_MAX);
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] <= 0x20 || name[i] == '+' ||
		    name[i] == 0x7f)
			return err_set(e, ERR_CONFIG, "the witness name '%.200s' "
			    "must not contain spaces, '+' or control "
			    "characters", name);
	return 0;
}

static int
cmd_init(int argc, char **argv)
{
	struct opts o;
	struct err_ctx e;
	struct wit_signer *signer = NULL;
	int r;

	err_clear(&e);
	if ((r = parse_opts(argc, argv, usage_init, &o)) != 0)
		return r > 0 ? 0 : 2;
	if (need("init", "--key FILE|URI", o.key) ||
	    need("init", "--name NAME", o.name))
		return 2;
	if (name_check(o.name, &e) != 0 ||
	    wit_signer_open(o.key, o.pin_file, 1, &signer, &e) != 0 ||
	    print_vkey(o.name, wit_signer_public(signer), &e) != 0) {
		wit_signer_free(signer);
		return fail("init", &e);
	}
	wit_signer_free(signer);
	return 0;
}

static int
cmd_vkey(int argc, char **argv)
{
	struct opts o;
	struct err_ctx e;
	struct wit_signer *signer = NULL;
	int r;

	err_clear(&e);
	if ((r = parse_opts(argc, argv, usage_vkey, &o)) != 0)
		return r > 0 ? 0 : 2;
	if (need("vkey", "--key FILE|URI", o.key) ||
	    need("vkey", "--name NAME", o.name))
		return 2;
	if (wit_signer_open(o.key, o.pin_file, 0, &signer, &e) != 0 ||
	    print_vkey(o.name, wit_signer_public(signer), &e) != 0) {
		wit_signer_free(signer);
		return fail("vkey", &e);
	}
	wit_signer_free(signer);
	return 0;
}

/* Adds the vkey s to logs (room for WIT_LOGS_MAX), naming where from. */
static int
log_add(const char *s, const char *from, struct tlog_vkey *logs,
    size_t *n, struct err_ctx *e)
{
	struct err_ctx pe;
	size_t i;

	err_clear(&pe);
	if (*n == WIT_LOGS_MAX)
		return err_set(e, ERR_TOO_LARGE, "at most %d logs",
		    WIT_LOGS_MAX);
	if (tlog_vkey_parse(s, &logs[*n], &pe) != 0)
		return err_set(e, ERR_CONFIG, "%s: '%.100s' is not a log's "
		    "vkey: %s", from, s, err_msg(&pe));
	if (logs[*n].type != TLOG_SIGTYPE_ECDSA)
		return err_set(e, ERR_CONFIG, "%s: '%.100s' is not the vkey "
		    "of a devid directory's log (type 0x02)", from, s);
	for (i = 0; i < *n; i++)
		if (logs[i].key_id == logs[*n].key_id &&
		    strcmp(logs[i].name, logs[*n].name) == 0)
			return err_set(e, ERR_CONFIG, "%s: the log '%.200s' is "
			    "given twice", from, logs[i].name);
	(*n)++;
	return 0;
}

/* Reads the vkeys of path, one a line, into logs. */
static int
logs_file_read(const char *path, struct tlog_vkey *logs, size_t *n,
    struct err_ctx *e)
{
	char *data = NULL, *line, *save = NULL, *p;
	size_t len = 0;
	int r;

	if ((r = fileio_read(path, LOGS_FILE_MAX, FILEIO_FOLLOW, &data, &len,
	    e)) != 0)
		return r;
	if (strlen(data) != len) {
		r = err_set(e, ERR_FORMAT, "logs file %s holds a NUL byte",
		    path);
		goto out;
	}
	for (line = strtok_r(data, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		p = line + strlen(line);
		while (p > line && (p[-1] == ' ' || p[-1] == '\t' ||
		    p[-1] == '\r'))
			*--p = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		if ((r = log_add(line, path, logs, n, e)) != 0)
			goto out;
	}
	r = 0;
 out:
	free(data);
	return r;
}

static int
cmd_run(int argc, char **argv)
{
	struct opts o;
	struct err_ctx e;
	struct wit_server_config sc;
	struct tlog_vkey *logs = NULL;
	struct wit_store *store = NULL;
	struct wit_server *srv = NULL;
	struct wit *w = NULL;
	struct wit_signer *signer = NULL;
	sigset_t set;
	size_t i, nlogs = 0;
	int r, sig, rc = 1;

	err_clear(&e);
	if ((r = parse_opts(argc, argv, usage_run, &o)) != 0)
		return r > 0 ? 0 : 2;
	if (need("run", "--key FILE|URI", o.key) ||
	    need("run", "--name NAME", o.name) ||
	    need("run", "--state DIR", o.state) ||
	    need("run", "--listen ADDR:PORT", o.listen))
		return 2;
	if (o.nlog == 0 && o.logs_file == NULL) {
		fprintf(stderr, PROG " run needs at least one --log VKEY (the "
		    "vkey devid-directory prints for its log)\n");
		return 2;
	}
	if ((logs = calloc(WIT_LOGS_MAX, sizeof(*logs))) == NULL) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto out;
	}
	for (i = 0; i < o.nlog; i++)
		if (log_add(o.log[i], "--log", logs, &nlogs, &e) != 0)
			goto out;
	if (o.logs_file != NULL &&
	    logs_file_read(o.logs_file, logs, &nlogs, &e) != 0)
		goto out;
	/* Signals are taken by sigwait() below, in no other thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (wit_signer_open(o.key, o.pin_file, 0, &signer, &e) != 0 ||
	    wit_store_open(o.state, 0, &store, &e) != 0 ||
	    wit_new(o.name, signer, logs, nlogs, store, &w, &e) != 0)
		goto out;
	memset(&sc, 0, sizeof(sc));
	sc.listen = o.listen;
	sc.threads = o.threads;
	sc.max_connections = o.max_connections;
	sc.per_address = o.per_address;
	sc.timeout_s = o.timeout_s;
	sc.quiet = o.quiet;
	if (wit_server_start(&sc, w, &srv, &e) != 0)
		goto out;
	if (o.ready_file != NULL && fileio_write_atomic(o.ready_file,
	    wit_server_address(srv), strlen(wit_server_address(srv)), 0644,
	    &e) != 0)
		goto out;
	wit_log(PROG " " PACKAGE_VERSION " '%s' listening on %s, %zu log%s, "
	    "state in %s", o.name, wit_server_address(srv), nlogs,
	    nlogs == 1 ? "" : "s", o.state);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP)
			continue;
		break;
	}
	wit_log("stopping on signal %d", sig);
	rc = 0;
 out:
	wit_server_stop(srv);
	wit_free(w);
	wit_store_close(store);
	wit_signer_free(signer);
	free(logs);
	if (rc != 0)
		return fail("run", &e);
	return 0;
}

/* Standard base64 of the 32 bytes at p into out (45 bytes). */
static void
b64_hash(const uint8_t *p, char out[45])
{
	EVP_EncodeBlock((unsigned char *)out, p, MERKLE_HASH_LEN);
}

static int
print_status(void *arg, const struct wit_status *st)
{
	char when[TIMEFMT_UTC_LEN], root[45];

	(void)arg;
	b64_hash(st->root, root);
	timefmt_utc(st->time, when, sizeof(when));
	printf("%s %" PRIu64 " %s %s\n", st->origin, st->size, root, when);
	return 0;
}

static int
print_evidence(void *arg, const struct wit_evidence *ev)
{
	char when[TIMEFMT_UTC_LEN];
	unsigned int *count = arg;

	timefmt_utc(ev->time, when, sizeof(when));
	printf("%sevidence %u\ntime: %s (%" PRIu64 ")\norigin: %s\n"
	    "reason: %s\nheld:\n%s", *count == 0 ? "" : "\n", *count + 1,
	    when, ev->time, ev->origin, ev->reason, ev->held);
	printf("offered:\n%s", ev->offered);
	(*count)++;
	return 0;
}

/* status and evidence. */
static int
cmd_read(int argc, char **argv, int evidence)
{
	struct opts o;
	struct err_ctx e;
	struct wit_store *store = NULL;
	unsigned int count = 0;
	int r;

	err_clear(&e);
	if ((r = parse_opts(argc, argv, evidence ? usage_evidence :
	    usage_status, &o)) != 0)
		return r > 0 ? 0 : 2;
	if (need(argv[0], "--state DIR", o.state))
		return 2;
	if (wit_store_open(o.state, WIT_STORE_READONLY, &store, &e) != 0 ||
	    (evidence ? wit_store_evidence(store, print_evidence, &count,
	    &e) : wit_store_status(store, print_status, NULL, &e)) != 0) {
		wit_store_close(store);
		return fail(argv[0], &e);
	}
	wit_store_close(store);
	if (evidence && count == 0)
		printf("no evidence: every checkpoint offered extended the "
		    "history\n");
	if (fflush(stdout) != 0)
		return 1;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		fputs(usage_main, stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "help") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		puts(PROG " " PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(cmd, "vkey") == 0)
		return cmd_vkey(argc - 1, argv + 1);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return cmd_read(argc - 1, argv + 1, 0);
	if (strcmp(cmd, "evidence") == 0)
		return cmd_read(argc - 1, argv + 1, 1);
	fprintf(stderr, PROG ": unknown command '%s'\n%s", cmd, usage_main);
	return 2;
}
