/*
 * bench-tlog.c - what the global transparency log costs the directory
 * (docs/performance.md, "Transparency log").
 *
 * One run measures, in this process, on a fresh SQLite database in a
 * temporary directory:
 *
 *  1. appends per second through the store, with and without the tree
 *     (the store's tlog_off switch), every second append without it, so
 *     that the machine's drift (each append waits for its fsync) weighs
 *     on both alike; APPEND_ROUNDS rounds, the median round's ratio is
 *     quoted;
 *  2. the cost of a registration with and without the tree: the whole of
 *     dir_api_add_device() -- the account's log read and verified again,
 *     the record's checks, the append -- without the password check and
 *     HTTP, which would only dilute the tree's share; every second one
 *     without the tree again, ROUNDS rounds;
 *  3. checkpoint latency: a round of the checkpointer (root from stored
 *     nodes, signature with the head key, store) without witnesses; one
 *     cosignature made in process; and, for each --witness URL,VKEY, a
 *     round that submits to the witnesses given -- medians.  Start the
 *     witnesses by hand (docs/witness.md) with --log set to what
 *     `devid-directory key -k FILE` prints for the key FILE given here as
 *     --signing-key, and a fresh state each run (the tree is new);
 *  4. proof sizes at 10^6 leaves, from a tree built in memory: the
 *     inclusion proof of every leaf (most hashes, mean) and consistency
 *     proofs from sampled older sizes, in hashes and in bytes as the
 *     directory's JSON carries them.
 *
 * The proof serving rate over HTTP next to the HTTP ceiling is measured
 * by bench-directory (phase 7), with its load generator.
 *
 * With --keep-db FILE the database is kept as FILE at the end (about
 * 6 x --appends leaves): bench-directory --tlog-db FILE serves proofs
 * from it.
 *
 * Usage: bench-tlog [--appends N] [--registrations N] [--witness URL,VKEY]
 *                   [--signing-key FILE] [--keep-db FILE]
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-util.h"
#include "codec.h"
#include "crypto.h"
#include "dir-api.h"
#include "dir-key.h"
#include "dir-store.h"
#include "dir-test-util.h"
#include "dir-tlog.h"
#include "merkle.h"
#include "tlog-note.h"

#define PROG "bench-tlog"
#define ROUNDS 5
#define APPEND_ROUNDS 9
#define APPENDS_DEFAULT 20000
#define REGISTRATIONS_DEFAULT 400
#define DEVICES_PER_ACCOUNT 40
#define CHECKPOINTS 200
#define COSIGNS 2000
#define BIG_TREE 1000000

static char *tmp;

/* On a fatal error: the temporary directory goes. */
static void
remove_tmp(void)
{
	ttmpdir_remove(tmp);
	tmp = NULL;
}

/* --- 1. appends through the store --- */

struct chain {
	char account[32];
	uint64_t seq;
	uint8_t hash[32];
};

/*
 * n "add" events, spread over accounts of DEVICES_PER_ACCOUNT events;
 * *next numbers the accounts and devices across calls.  With alternate,
 * every second one goes without the tree and *without gets their rate;
 * the rate of the others is returned.
 */
static double
appends(struct dir_store *s, size_t n, unsigned int *next, int alternate,
    double *without)
{
	double t_off = 0;
	size_t n_off = 0;
	int keep = s->tlog_off;
	struct dir_event_row ev;
	struct dir_device_row dev;
	struct chain c;
	struct err_ctx e;
	uint8_t id[32], spki[91];
	char hex[65];
	double t0, t;
	size_t i;

	memset(spki, 0x30, sizeof(spki));
	memset(&c, 0, sizeof(c));
	t = 0;
	for (i = 0; i < n; i++) {
		err_clear(&e);
		if (i % DEVICES_PER_ACCOUNT == 0) {
			snprintf(c.account, sizeof(c.account), "a%u", *next);
			c.seq = 0;
			memset(c.hash, 0, sizeof(c.hash));
			if (s->ops->account_create(s, c.account, "x", 1,
			    &e) != 0)
				bench_die("account: %s", err_msg(&e));
		}
		(*next)++;
		memset(&ev, 0, sizeof(ev));
		ev.account = c.account;
		ev.seq = c.seq + 1;
		ev.time = 1764400000;
		ev.type = "add";
		memcpy(ev.prev, c.hash, 32);
		crypto_random(ev.hash, 32);
		ev.json = "{}";
		crypto_random(id, sizeof(id));
		hex_encode(id, sizeof(id), hex);
		dev.device = hex;
		dev.record_json = "{}";
		dev.sig_pub = spki;
		dev.sig_pub_len = sizeof(spki);
		if (alternate)
			s->tlog_off = (int)(i % 2);
		t0 = tmono_ms();
		if (s->ops->log_append_add(s, &ev, &dev, 1000, &e) != 0)
			bench_die("append: %s", err_msg(&e));
		if (alternate && s->tlog_off) {
			t_off += tmono_ms() - t0;
			n_off++;
		} else {
			t += tmono_ms() - t0;
		}
		c.seq = ev.seq;
		memcpy(c.hash, ev.hash, 32);
	}
	s->tlog_off = keep;
	if (alternate && without != NULL)
		*without = (double)n_off / (t_off / 1000.0);
	return (double)(n - n_off) / (t / 1000.0);
}

/* --- 2. registrations --- */

/*
 * Registers devs[0..n) (DEVICES_PER_ACCOUNT per account, the accounts
 * created here), the tree switched off for every second one, so that
 * the machine's drift weighs on both alike; *with and *without get the
 * mean time spent in dir_api_add_device, in ms.
 */
static void
registrations(struct dir_api *api, struct tdev *devs, size_t n,
    double *with, double *without)
{
	struct acctlog_head head;
	struct err_ctx e;
	json_t *evj;
	double t0, t[2] = { 0, 0 };
	size_t i, count[2] = { 0, 0 };
	int off;

	for (i = 0; i < n; i++) {
		err_clear(&e);
		if (i % DEVICES_PER_ACCOUNT == 0 &&
		    api->store->ops->account_create(api->store,
		    devs[i].rec.account, "x", 1, &e) != 0)
			bench_die("account %s: %s", devs[i].rec.account,
			    err_msg(&e));
		off = (int)((i + i / DEVICES_PER_ACCOUNT) % 2);
		api->store->tlog_off = off;
		t0 = tmono_ms();
		if (dir_api_add_device(api, &devs[i].rec, &head, &evj,
		    &e) != 0)
			bench_die("registration: %s", err_msg(&e));
		t[off] += tmono_ms() - t0;
		count[off]++;
		json_decref(evj);
	}
	api->store->tlog_off = 0;
	*with = t[0] / (double)count[0];
	*without = t[1] / (double)count[1];
}

static struct tdev *
devices_make(size_t n, const char *prefix)
{
	struct tdev *d;
	char account[64], label[32];
	size_t i;

	if ((d = calloc(n, sizeof(*d))) == NULL)
		bench_die("out of memory");
	for (i = 0; i < n; i++) {
		snprintf(account, sizeof(account), "%s%zu", prefix,
		    i / DEVICES_PER_ACCOUNT);
		snprintf(label, sizeof(label), "d%zu", i);
		if (tdev_make(&d[i], account, label,
		    (uint64_t)time(NULL)) != 0)
			bench_die("device %zu", i);
	}
	return d;
}

static void
devices_free(struct tdev *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		tdev_clear(&d[i]);
	free(d);
}

/* --- 4. a big tree in memory --- */

struct memtree {
	uint8_t (*lv[MERKLE_PROOF_MAX])[MERKLE_HASH_LEN];
	uint64_t cap;
};

static int
mem_put(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct memtree *m = arg;

	if (m->lv[level] == NULL &&
	    (m->lv[level] = calloc((m->cap >> level) + 1,
	    MERKLE_HASH_LEN)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(m->lv[level][index], hash, MERKLE_HASH_LEN);
	return 0;
}

static int
mem_get(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct memtree *m = arg;

	if (m->lv[level] == NULL)
		return err_set(e, ERR_NOT_FOUND, "no node");
	memcpy(out, m->lv[level][index], MERKLE_HASH_LEN);
	return 0;
}

/* Bytes of a proof of n hashes in the directory's JSON: "proof":[...]
 * with each hash as 43 base64url characters in quotes. */
static size_t
proof_json_bytes(size_t n)
{
	return strlen("\"proof\":[]") + n * (43 + 2) + (n > 0 ? n - 1 : 0);
}

static void
big_tree(void)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN], leaf[32], ev[32];
	struct merkle_frontier f;
	struct memtree m;
	struct err_ctx e;
	uint64_t i, old;
	size_t n, most = 0, cmost = 0;
	double sum = 0, t0;
	unsigned int k;

	memset(&m, 0, sizeof(m));
	m.cap = BIG_TREE;
	merkle_frontier_init(&f);
	t0 = tmono_ms();
	for (i = 0; i < BIG_TREE; i++) {
		err_clear(&e);
		memset(ev, 0, sizeof(ev));
		memcpy(ev, &i, sizeof(i));
		if (tlog_leaf_hash("alice@example.org", i + 1, ev, leaf) != 0 ||
		    merkle_frontier_append(&f, leaf, mem_put, &m, &e) != 0)
			bench_die("building the tree: %s", err_msg(&e));
	}
	printf("   tree of %d leaves built in memory in %.1f s\n", BIG_TREE,
	    (tmono_ms() - t0) / 1000);
	for (i = 0; i < BIG_TREE; i++) {
		if (merkle_inclusion_proof(i, BIG_TREE, mem_get, &m, proof, &n,
		    &e) != 0)
			bench_die("inclusion proof: %s", err_msg(&e));
		sum += (double)n;
		if (n > most)
			most = n;
	}
	for (k = 1; k <= 1000; k++) {
		old = (uint64_t)k * (BIG_TREE / 1000) - (k % 7);
		if (merkle_consistency_proof(old, BIG_TREE, mem_get, &m, proof,
		    &n, &e) != 0)
			bench_die("consistency proof: %s", err_msg(&e));
		if (n > cmost)
			cmost = n;
	}
	printf("4. proofs at %d leaves:\n", BIG_TREE);
	printf("   inclusion:   at most %zu hashes (%zu bytes raw, %zu in "
	    "JSON), mean %.2f\n", most, most * MERKLE_HASH_LEN,
	    proof_json_bytes(most), sum / BIG_TREE);
	printf("   consistency: at most %zu hashes (%zu bytes raw, %zu in "
	    "JSON) over 1000 older sizes\n", cmost, cmost * MERKLE_HASH_LEN,
	    proof_json_bytes(cmost));
	for (k = 0; k < MERKLE_PROOF_MAX; k++)
		free(m.lv[k]);
}

/* --- 3. checkpoints --- */

static void
checkpoints(struct dir_store *s, struct dir_key *key,
    const struct dir_tlog_config *cfg, const char *what)
{
	struct dir_tlog *t = NULL;
	struct err_ctx e;
	double v[CHECKPOINTS];
	unsigned int i, n = cfg->n_witness > 0 ? CHECKPOINTS / 4 : CHECKPOINTS;
	static unsigned int next = 5000000;   /* accounts of their own */
	uint64_t size;

	err_clear(&e);
	if (dir_tlog_new(cfg, s, key, &t, &e) != 0)
		bench_die("log: %s", err_msg(&e));
	for (i = 0; i < n; i++) {
		double t0;

		/* One new leaf per round, as a busy log has. */
		appends(s, 1, &next, 0, NULL);
		t0 = tmono_ms();
		if (dir_tlog_checkpoint_now(t, &size, &e) != 0)
			bench_die("checkpoint: %s", err_msg(&e));
		v[i] = tmono_ms() - t0;
	}
	printf("   %-34s median %.2f ms (of %u rounds)\n", what,
	    bench_median(v, n), n);
	dir_tlog_free(t);
}

static void
cosigns(void)
{
	struct tlog_checkpoint cp;
	struct tlog_sigline sl;
	struct tlog_vkey vk;
	struct err_ctx e;
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *kc;
	char text[TLOG_TEXT_MAX + 1];
	size_t len;
	double t0, v[COSIGNS];
	unsigned int i;

	if ((kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL)) == NULL ||
	    EVP_PKEY_keygen_init(kc) <= 0 || EVP_PKEY_keygen(kc, &k) <= 0)
		bench_die("Ed25519 key");
	EVP_PKEY_CTX_free(kc);
	err_clear(&e);
	if (tlog_vkey_cosigner("witness.example/w1", k, &vk, &e) != 0)
		bench_die("vkey: %s", err_msg(&e));
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "dir.example.org/devid");
	cp.size = 123456;
	if (tlog_checkpoint_format(&cp, text, sizeof(text), &len) != 0)
		bench_die("checkpoint text");
	for (i = 0; i < COSIGNS; i++) {
		t0 = tmono_ms();
		if (tlog_cosign(text, len, k, &vk, 1764400000 + i, &sl,
		    &e) != 0)
			bench_die("cosign: %s", err_msg(&e));
		v[i] = tmono_ms() - t0;
	}
	printf("   %-34s median %.3f ms\n", "one cosignature (Ed25519)",
	    bench_median(v, COSIGNS));
	EVP_PKEY_free(k);
}

static void
usage(FILE *f)
{
	fprintf(f, "Usage: " PROG " [--appends N] [--registrations N] "
	    "[--witness URL,VKEY]... [--signing-key FILE] [--keep-db FILE]\n"
	    "What the transparency log costs the directory; see "
	    "docs/performance.md.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "appends", required_argument, NULL, 'a' },
		{ "registrations", required_argument, NULL, 'r' },
		{ "witness", required_argument, NULL, 'w' },
		{ "keep-db", required_argument, NULL, 'k' },
		{ "signing-key", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct dir_tlog_config cfg, nowit;
	struct dir_api_config acfg;
	struct dir_store *s = NULL;
	struct dir_key *key = NULL;
	struct dir_api api;
	struct err_ctx e;
	struct tdev *devs;
	char path[4096], cmd[9000];
	const char *keep = NULL, *keyfile = NULL;
	size_t n_app = APPENDS_DEFAULT, n_reg = REGISTRATIONS_DEFAULT;
	double with[APPEND_ROUNDS], without[APPEND_ROUNDS],
	    ratio[APPEND_ROUNDS], rw[ROUNDS], rwo[ROUNDS], rratio[ROUNDS];
	double sum_with = 0, sum_without = 0;
	unsigned int next = 0;
	int c, round;
	char prefix[16];

	err_clear(&e);
	dir_tlog_config_default(&cfg);
	bench_init(PROG);
	bench_set_die_hook(remove_tmp);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			n_app = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			n_reg = strtoul(optarg, NULL, 10);
			break;
		case 'w':
			if (dir_tlog_add_witness(&cfg, optarg, &e) != 0)
				bench_die("%s", err_msg(&e));
			break;
		case 'k':
			keep = optarg;
			break;
		case 's':
			keyfile = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (n_app < 100 || n_reg < DEVICES_PER_ACCOUNT)
		bench_die("--appends must be at least 100, --registrations at "
		    "least %d", DEVICES_PER_ACCOUNT);
	n_reg -= n_reg % DEVICES_PER_ACCOUNT;
	if ((tmp = ttmpdir_make()) == NULL)
		bench_die("no temporary directory");
	snprintf(path, sizeof(path), "%s/bench.db", tmp);
	if (dir_store_sqlite_open(path, &s, &e) != 0)
		bench_die("store: %s", err_msg(&e));
	snprintf(path, sizeof(path), "%s/head.key", tmp);
	if (dir_key_open(keyfile != NULL ? keyfile : path, 1, &key, NULL,
	    &e) != 0)
		bench_die("key: %s", err_msg(&e));

	printf("devid transparency log benchmark (SQLite, synchronous=FULL)\n");
	printf("1. appends through the store, %zu per round, every second "
	    "one without the tree, %d rounds:\n", n_app / APPEND_ROUNDS,
	    APPEND_ROUNDS);
	for (round = 0; round < APPEND_ROUNDS; round++) {
		with[round] = appends(s, n_app / APPEND_ROUNDS, &next, 1,
		    &without[round]);
		ratio[round] = with[round] / without[round];
		sum_with += with[round];
		sum_without += without[round];
		printf("   round %d: %.0f/s without the tree, %.0f/s with "
		    "(%.3f)\n", round + 1, without[round], with[round],
		    ratio[round]);
	}
	printf("   mean rates: %.0f/s without, %.0f/s with; median round "
	    "ratio with/without: %.3f\n", sum_without / APPEND_ROUNDS,
	    sum_with / APPEND_ROUNDS, bench_median(ratio, APPEND_ROUNDS));
	s->tlog_off = 0;

	dir_api_config_default(&acfg);
	if (dir_api_init(&api, &acfg, s, key) != 0)
		bench_die("api");
	printf("2. registrations (dir_api_add_device), %zu per round, every "
	    "second one without the tree, %d rounds:\n", n_reg, ROUNDS);
	for (round = 0; round < ROUNDS; round++) {
		snprintf(prefix, sizeof(prefix), "r%dx", round);
		devs = devices_make(n_reg, prefix);
		registrations(&api, devs, n_reg, &rw[round], &rwo[round]);
		devices_free(devs, n_reg);
		rratio[round] = rw[round] / rwo[round];
		printf("   round %d: %.3f ms without the tree, %.3f ms with "
		    "(%.3f)\n", round + 1, rwo[round], rw[round],
		    rratio[round]);
	}
	printf("   median cost ratio with/without: %.3f\n",
	    bench_median(rratio, ROUNDS));
	dir_api_clear(&api);

	printf("3. checkpoints:\n");
	dir_tlog_config_default(&nowit);
	checkpoints(s, key, &nowit, "sign and store, no witness");
	cosigns();
	if (cfg.n_witness > 0) {
		char what[64];

		snprintf(what, sizeof(what), "sign, %zu witness%s, store",
		    cfg.n_witness, cfg.n_witness == 1 ? "" : "es");
		checkpoints(s, key, &cfg, what);
	} else {
		printf("   with witnesses: not measured (give --witness "
		    "URL,VKEY)\n");
	}
	dir_key_free(key);
	dir_store_close(s);
	if (keep != NULL) {
		snprintf(path, sizeof(path), "%s/bench.db", tmp);
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, keep);
		if (strchr(keep, '\'') != NULL || system(cmd) != 0)
			bench_die("cannot keep the database as %s", keep);
		printf("   the database is kept as %s\n", keep);
	}

	big_tree();
	ttmpdir_remove(tmp);
	return 0;
}
