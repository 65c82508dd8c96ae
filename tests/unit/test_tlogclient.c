/*
 * test_tlogclient.c - what a client checks of the transparency log
 * (common/tlog-client.c): witness policy, checkpoint verification with a
 * quorum of distinct witnesses, freshness, the kept checkpoint and its
 * file, consistency in both directions with fork evidence, inclusion,
 * and the whole check of a log read.
 *
 * Everything is real: a Merkle tree of devid leaves in memory, a P-256
 * directory key signing checkpoints, three Ed25519 witnesses cosigning
 * them.
 */
#include "config.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "crypto.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-client.h"
#include "tlog-note.h"

#define NOW UINT64_C(1800000000)
#define ORIGIN "devid/test.example"
#define TREE_MAX 64
#define N_WIT 3

/* An in-memory tree: leaf hashes, stored nodes computed on demand. */
struct tree {
	uint8_t leaf[TREE_MAX][MERKLE_HASH_LEN];
	uint64_t size;
	unsigned int proof_calls;
};

struct fx {
	EVP_PKEY *dir;                  /* the directory's head key */
	uint8_t *spki;
	size_t spki_len;
	EVP_PKEY *wit[N_WIT + 1];       /* the last one is not configured */
	struct tlog_vkey wvk[N_WIT + 1];
	struct tlog_policy pol;
	struct tree a;                  /* the true history */
	struct tree b;                  /* another one */
	char dir_path[256];
};

/* --- helpers --- */

static void
ev_hash(const char *tag, uint64_t i, uint8_t out[32])
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s-%llu", tag, (unsigned long long)i);
	assert_int_equal(crypto_sha256((const uint8_t *)buf, strlen(buf),
	    out), 0);
}

/* Leaves of tree t: event i + 1 of account "alice" with hash of tag. */
static void
tree_fill(struct tree *t, const char *tag, uint64_t n)
{
	uint8_t ev[32];
	uint64_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < n; i++) {
		ev_hash(tag, i + 1, ev);
		assert_int_equal(tlog_leaf_hash("alice", i + 1, ev,
		    t->leaf[i]), 0);
	}
	t->size = n;
}

static int
tree_node(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct tree *t = arg;
	uint64_t begin = index << level, n = UINT64_C(1) << level;

	(void)e;
	if (begin + n > t->size)
		return ERR_NOT_FOUND;
	return merkle_root_reference(
	    (const uint8_t (*)[MERKLE_HASH_LEN])t->leaf + begin, n, out);
}

static void
tree_root(struct tree *t, uint64_t size, uint8_t root[MERKLE_HASH_LEN])
{
	assert_int_equal(merkle_root(size, tree_node, t, root, NULL), 0);
}

/* tlog_proof_fn over a tree: the proofs the directory would serve. */
static int
tree_consistency(void *arg, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	struct tree *t = arg;

	t->proof_calls++;
	return merkle_consistency_proof(old, size, tree_node, t, proof, n, e);
}

static int
fail_proof(void *arg, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	(void)arg;
	(void)old;
	(void)size;
	(void)proof;
	(void)n;
	return err_set(e, ERR_NETWORK, "unreachable");
}

static int
dir_sign(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	(void)e;
	return crypto_ecdsa_sign(arg, digest, sig);
}

/*
 * A checkpoint of the first size leaves of t under origin, signed by the
 * directory and cosigned by the witnesses i with ts[i] != 0 at ts[i].
 */
static char *
checkpoint(struct fx *f, struct tree *t, const char *origin, uint64_t size,
    const uint64_t ts[N_WIT + 1])
{
	struct tlog_note *n = calloc(1, sizeof(*n));
	struct tlog_checkpoint cp;
	struct tlog_vkey log;
	struct tlog_sigline sl;
	char *out = NULL;
	size_t len = 0;
	unsigned int i;

	assert_non_null(n);
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "%s", origin);
	cp.size = size;
	tree_root(t, size, cp.root);
	assert_int_equal(tlog_checkpoint_format(&cp, n->text,
	    sizeof(n->text), &n->text_len), 0);
	assert_int_equal(tlog_vkey_log(origin, f->spki, f->spki_len, &log,
	    NULL), 0);
	assert_int_equal(tlog_note_sign_log(n, &log, dir_sign, f->dir, NULL),
	    0);
	for (i = 0; i <= N_WIT; i++) {
		if (ts[i] == 0)
			continue;
		assert_int_equal(tlog_cosign(n->text, n->text_len, f->wit[i],
		    &f->wvk[i], ts[i], &sl, NULL), 0);
		assert_int_equal(tlog_note_add_sig(n, &sl), 0);
	}
	assert_int_equal(tlog_note_format(n, &out, &len), 0);
	free(n);
	return out;
}

static int
verify(struct fx *f, const char *note, struct tlog_verified *v,
    struct err_ctx *e)
{
	err_clear(e);
	return tlog_checkpoint_verify(&f->pol, f->spki, f->spki_len, note,
	    strlen(note), NOW, v, e);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char name[16], vk[TLOG_VKEY_MAX * 2];
	unsigned int i;

	if (f == NULL)
		return -1;
	if (crypto_ec_generate(&f->dir) != 0 ||
	    crypto_spki_export(f->dir, &f->spki, &f->spki_len) != 0)
		return -1;
	for (i = 0; i <= N_WIT; i++) {
		snprintf(name, sizeof(name), "witness%u", i);
		if ((f->wit[i] = EVP_PKEY_Q_keygen(NULL, NULL,
		    "ED25519")) == NULL ||
		    tlog_vkey_cosigner(name, f->wit[i], &f->wvk[i],
		    NULL) != 0 ||
		    tlog_vkey_format(&f->wvk[i], vk, sizeof(vk)) != 0)
			return -1;
		if (i < N_WIT &&
		    tlog_policy_add_witness(&f->pol, vk, NULL) != 0)
			return -1;
	}
	f->pol.quorum = 2;
	f->pol.max_stale = 600;
	tree_fill(&f->a, "a", 20);
	tree_fill(&f->b, "b", 20);
	snprintf(f->dir_path, sizeof(f->dir_path), "%s/devid-tlogc-XXXXXX",
	    P_tmpdir);
	if (mkdtemp(f->dir_path) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[320];
	unsigned int i;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir_path);
	if (system(cmd) != 0)
		return -1;
	EVP_PKEY_free(f->dir);
	for (i = 0; i <= N_WIT; i++)
		EVP_PKEY_free(f->wit[i]);
	free(f->spki);
	free(f);
	return 0;
}

/* --- policy --- */

static void
test_policy(void **state)
{
	struct fx *f = *state;
	struct tlog_policy p;
	struct tlog_vkey k;
	char vk[TLOG_VKEY_MAX * 2];
	struct err_ctx e;

	memset(&p, 0, sizeof(p));
	err_clear(&e);
	assert_int_equal(tlog_vkey_format(&f->wvk[0], vk, sizeof(vk)), 0);
	assert_int_equal(tlog_policy_add_witness(&p, vk, &e), 0);
	assert_int_equal(tlog_policy_add_witness(&p, vk, &e), ERR_EXISTS);
	/* The same key under another name is the same witness. */
	assert_int_equal(tlog_vkey_cosigner("other", f->wit[0], &k, NULL), 0);
	assert_int_equal(tlog_vkey_format(&k, vk, sizeof(vk)), 0);
	err_clear(&e);
	assert_int_equal(tlog_policy_add_witness(&p, vk, &e), ERR_EXISTS);
	/* A log key is no witness key. */
	assert_int_equal(tlog_vkey_log(ORIGIN, f->spki, f->spki_len, &k,
	    NULL), 0);
	assert_int_equal(tlog_vkey_format(&k, vk, sizeof(vk)), 0);
	err_clear(&e);
	assert_int_equal(tlog_policy_add_witness(&p, vk, &e), ERR_FORMAT);
	err_clear(&e);
	assert_int_not_equal(tlog_policy_add_witness(&p, "garbage", &e), 0);
	assert_int_equal(p.n_witness, 1);

	p.quorum = 0;
	assert_int_equal(tlog_policy_check(&p, NULL), ERR_CONFIG);
	p.quorum = 2;
	assert_int_equal(tlog_policy_check(&p, NULL), ERR_CONFIG);
	p.quorum = 1;
	assert_int_equal(tlog_policy_check(&p, NULL), 0);
}

/* --- checkpoints --- */

static void
test_quorum(void **state)
{
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	struct err_ctx e;
	uint64_t ts[N_WIT + 1] = { NOW - 10, NOW - 20, 0, 0 };
	uint64_t ts1[N_WIT + 1] = { NOW - 10, 0, 0, 0 };
	uint64_t ts3[N_WIT + 1] = { NOW - 30, NOW - 10, NOW - 20, 0 };
	char *note;

	assert_non_null(v);
	/* 2 of 3: accepted, fresh is the 2nd newest. */
	note = checkpoint(f, &f->a, ORIGIN, 7, ts);
	assert_int_equal(verify(f, note, v, &e), 0);
	assert_int_equal(v->n_cosig, 2);
	assert_int_equal(v->fresh, NOW - 20);
	assert_int_equal(v->cp.size, 7);
	assert_string_equal(v->cp.origin, ORIGIN);
	free(note);

	/* 3 of 3: the 2nd newest of three. */
	note = checkpoint(f, &f->a, ORIGIN, 7, ts3);
	assert_int_equal(verify(f, note, v, &e), 0);
	assert_int_equal(v->n_cosig, 3);
	assert_int_equal(v->fresh, NOW - 20);
	free(note);

	/* 1 of 3: no quorum. */
	note = checkpoint(f, &f->a, ORIGIN, 7, ts1);
	assert_int_equal(verify(f, note, v, &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), "1 of the 3"));
	free(note);

	/* The directory's signature under another key: refused. */
	note = checkpoint(f, &f->a, ORIGIN, 7, ts);
	{
		EVP_PKEY *other = NULL;
		uint8_t *spki = NULL;
		size_t spki_len = 0;

		assert_int_equal(crypto_ec_generate(&other), 0);
		assert_int_equal(crypto_spki_export(other, &spki, &spki_len),
		    0);
		err_clear(&e);
		assert_int_equal(tlog_checkpoint_verify(&f->pol, spki,
		    spki_len, note, strlen(note), NOW, v, &e), ERR_SIGNATURE);
		free(spki);
		EVP_PKEY_free(other);
	}
	free(note);
	free(v);
}

static void
test_bad_cosig(void **state)
{
	static const char other[] = "other\n1\n"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	struct tlog_note *n = calloc(1, sizeof(*n));
	struct tlog_sigline sl;
	struct err_ctx e;
	uint64_t ts[N_WIT + 1] = { NOW, NOW, 0, 0 };
	char *note, *out = NULL;
	size_t len = 0;

	assert_non_null(v);
	assert_non_null(n);
	note = checkpoint(f, &f->a, ORIGIN, 5, ts);
	assert_int_equal(tlog_note_parse(note, strlen(note), n, NULL), 0);
	/* Witness 2 "cosigns" another text: its line does not verify. */
	assert_int_equal(tlog_cosign(other, strlen(other), f->wit[2],
	    &f->wvk[2], NOW, &sl, NULL), 0);
	assert_int_equal(tlog_note_add_sig(n, &sl), 0);
	assert_int_equal(tlog_note_format(n, &out, &len), 0);
	assert_int_equal(verify(f, out, v, &e), ERR_SIGNATURE);
	assert_non_null(strstr(err_msg(&e), "witness2"));
	free(out);
	free(note);
	free(n);
	free(v);
}

static void
test_unknown_and_duplicate(void **state)
{
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	struct err_ctx e;
	uint64_t ts_unknown[N_WIT + 1] = { NOW, 0, 0, NOW };
	uint64_t ts_ok[N_WIT + 1] = { NOW, 0, NOW, NOW };
	char *note, *dup, *last;
	size_t len;

	assert_non_null(v);
	/* A line of an unknown witness is ignored: it does not count... */
	note = checkpoint(f, &f->a, ORIGIN, 5, ts_unknown);
	assert_int_equal(verify(f, note, v, &e), ERR_DENIED);
	free(note);
	/* ...and does not hurt. */
	note = checkpoint(f, &f->a, ORIGIN, 5, ts_ok);
	assert_int_equal(verify(f, note, v, &e), 0);
	assert_int_equal(v->n_cosig, 2);
	free(note);

	/* Two lines of witness 0: one witness, no quorum of 2. */
	note = checkpoint(f, &f->a, ORIGIN, 5, ts_unknown);
	/* The last line is witness3's; replace it with a copy of
	 * witness0's line, which comes before it. */
	len = strlen(note);
	last = note + len - 1;
	while (last > note && last[-1] != '\n')
		last--;
	{
		char *w0 = strstr(note, "\xe2\x80\x94 witness0 ");
		size_t w0len;

		assert_non_null(w0);
		w0len = (size_t)(strchr(w0, '\n') + 1 - w0);
		dup = calloc(1, len + w0len + 1);
		assert_non_null(dup);
		memcpy(dup, note, (size_t)(last - note));
		memcpy(dup + (last - note), w0, w0len);
	}
	err_clear(&e);
	assert_int_not_equal(verify(f, dup, v, &e), 0);
	free(dup);
	free(note);
	free(v);
}

static void
test_freshness(void **state)
{
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	struct err_ctx e;
	uint64_t old[N_WIT + 1] = { NOW, NOW - 1000, 0, 0 };
	uint64_t future[N_WIT + 1] = { NOW + TLOG_FUTURE_SKEW + 10, NOW, 0,
	    0 };
	uint64_t skew[N_WIT + 1] = { NOW + TLOG_FUTURE_SKEW - 10, NOW, 0, 0 };
	char *note;

	assert_non_null(v);
	/* The quorum-th newest is 1000 s old, max_stale 600. */
	note = checkpoint(f, &f->a, ORIGIN, 5, old);
	assert_int_equal(verify(f, note, v, &e), ERR_STALE);
	assert_int_equal(v->fresh, NOW - 1000);       /* filled all the same */
	/* With a quorum of 1 the newest counts. */
	f->pol.quorum = 1;
	assert_int_equal(verify(f, note, v, &e), 0);
	assert_int_equal(v->fresh, NOW);
	f->pol.quorum = 2;
	/* max_stale 0: not checked. */
	f->pol.max_stale = 0;
	assert_int_equal(verify(f, note, v, &e), 0);
	f->pol.max_stale = 600;
	free(note);

	note = checkpoint(f, &f->a, ORIGIN, 5, future);
	assert_int_equal(verify(f, note, v, &e), ERR_STALE);
	assert_non_null(strstr(err_msg(&e), "future"));
	free(note);
	note = checkpoint(f, &f->a, ORIGIN, 5, skew);
	assert_int_equal(verify(f, note, v, &e), 0);
	free(note);
	free(v);
}

/* --- the kept checkpoint --- */

static void
accept(struct fx *f, struct tree *t, const char *origin, uint64_t size,
    struct tlog_verified *v)
{
	uint64_t ts[N_WIT + 1] = { NOW, NOW, 0, 0 };
	struct err_ctx e;
	char *note = checkpoint(f, t, origin, size, ts);

	assert_int_equal(verify(f, note, v, &e), 0);
	free(note);
}

static void
test_consistency(void **state)
{
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	struct tlog_state *st = calloc(1, sizeof(*st));
	struct tlog_state *copy = calloc(1, sizeof(*copy));
	struct tlog_fork *fork = calloc(1, sizeof(*fork));
	struct tree *mix = calloc(1, sizeof(*mix));
	struct err_ctx e;
	int changed;

	assert_non_null(v);
	assert_non_null(st);
	assert_non_null(copy);
	assert_non_null(fork);
	assert_non_null(mix);
	/* The first checkpoint is taken as it is. */
	accept(f, &f->a, ORIGIN, 4, v);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->a,
	    &changed, fork, NULL), 0);
	assert_true(changed);
	assert_true(st->have);
	assert_int_equal(st->cp.size, 4);
	assert_non_null(strstr(st->note, "\n4\n"));

	/* Forward, with a proof. */
	accept(f, &f->a, ORIGIN, 13, v);
	f->a.proof_calls = 0;
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->a,
	    &changed, fork, NULL), 0);
	assert_true(changed);
	assert_int_equal(st->cp.size, 13);
	assert_int_equal(f->a.proof_calls, 1);

	/* Backward: proven consistent, the kept one stays. */
	accept(f, &f->a, ORIGIN, 6, v);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->a,
	    &changed, fork, NULL), 0);
	assert_false(changed);
	assert_int_equal(st->cp.size, 13);

	/* Same size, same root. */
	accept(f, &f->a, ORIGIN, 13, v);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->a,
	    &changed, fork, NULL), 0);
	assert_int_equal(st->cp.size, 13);

	/* A proof that cannot be fetched: its error, nothing changes. */
	accept(f, &f->a, ORIGIN, 15, v);
	*copy = *st;
	err_clear(&e);
	assert_int_equal(tlog_state_update(st, v, fail_proof, NULL, &changed,
	    fork, &e), ERR_NETWORK);
	assert_memory_equal(copy, st, sizeof(*st));

	/* Same size, another root: a fork with both notes. */
	accept(f, &f->b, ORIGIN, 13, v);
	memset(fork, 0, sizeof(*fork));
	err_clear(&e);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->b,
	    &changed, fork, &e), ERR_FORK);
	assert_false(changed);
	assert_string_equal(fork->held, st->note);
	assert_non_null(strstr(fork->shown, "\n13\n"));
	assert_string_not_equal(fork->shown, fork->held);
	assert_memory_equal(copy, st, sizeof(*st));

	/* Larger, but not an extension (the directory's "proof" is from its
	 * other history): a fork. */
	accept(f, &f->b, ORIGIN, 17, v);
	memset(fork, 0, sizeof(*fork));
	err_clear(&e);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->b,
	    &changed, fork, &e), ERR_FORK);
	assert_non_null(strstr(fork->shown, "\n17\n"));
	assert_string_equal(fork->held, st->note);
	assert_int_equal(st->cp.size, 13);

	/* Smaller, not a prefix: a fork. */
	accept(f, &f->b, ORIGIN, 9, v);
	memset(fork, 0, sizeof(*fork));
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->a,
	    &changed, fork, NULL), ERR_FORK);
	assert_non_null(strstr(fork->shown, "\n9\n"));

	/* A tree that shares the first 13 leaves and goes on otherwise
	 * extends the kept one: accepted. */
	*mix = f->a;
	memcpy(mix->leaf[13], f->b.leaf[13], 7 * MERKLE_HASH_LEN);
	accept(f, mix, ORIGIN, 20, v);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, mix,
	    &changed, fork, NULL), 0);
	assert_int_equal(st->cp.size, 20);

	/* Another origin: a fork, even for the same tree. */
	accept(f, mix, "devid/elsewhere", 20, v);
	memset(fork, 0, sizeof(*fork));
	assert_int_equal(tlog_state_update(st, v, tree_consistency, mix,
	    &changed, fork, NULL), ERR_FORK);
	assert_non_null(strstr(fork->shown, "devid/elsewhere"));
	assert_non_null(strstr(fork->held, ORIGIN "\n"));

	free(mix);
	free(fork);
	free(copy);
	free(st);
	free(v);
}

static void
test_inclusion(void **state)
{
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN], ev[32];
	size_t n = 0;
	struct err_ctx e;

	assert_non_null(v);
	accept(f, &f->a, ORIGIN, 11, v);
	assert_int_equal(merkle_inclusion_proof(6, 11, tree_node, &f->a,
	    proof, &n, NULL), 0);
	ev_hash("a", 7, ev);
	assert_int_equal(tlog_inclusion_check(v, "alice", 7, ev, 6,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, NULL), 0);
	/* Another seq, another account, another hash, another index. */
	err_clear(&e);
	assert_int_equal(tlog_inclusion_check(v, "alice", 8, ev, 6,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, &e), ERR_SIGNATURE);
	assert_int_equal(tlog_inclusion_check(v, "bob", 7, ev, 6,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, NULL),
	    ERR_SIGNATURE);
	assert_int_equal(tlog_inclusion_check(v, "alice", 7, ev, 5,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, NULL),
	    ERR_SIGNATURE);
	assert_int_equal(tlog_inclusion_check(v, "alice", 7, ev, 6,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n - 1, NULL),
	    ERR_SIGNATURE);
	ev_hash("b", 7, ev);
	assert_int_equal(tlog_inclusion_check(v, "alice", 7, ev, 6,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, NULL),
	    ERR_SIGNATURE);
	free(v);
}

/* --- the state file --- */

static void
test_state_file(void **state)
{
	struct fx *f = *state;
	struct tlog_verified *v = calloc(1, sizeof(*v));
	struct tlog_state *st = calloc(1, sizeof(*st));
	struct tlog_state *st2 = calloc(1, sizeof(*st2));
	char path[320];
	struct stat sb;
	struct err_ctx e;
	FILE *fp;
	int changed;

	assert_non_null(v);
	assert_non_null(st);
	assert_non_null(st2);
	snprintf(path, sizeof(path), "%s/tlog-checkpoint", f->dir_path);
	/* Missing: the empty state. */
	assert_int_equal(tlog_state_load(path, st2, NULL), 0);
	assert_false(st2->have);

	accept(f, &f->a, ORIGIN, 9, v);
	assert_int_equal(tlog_state_update(st, v, tree_consistency, &f->a,
	    &changed, NULL, NULL), 0);
	assert_int_equal(tlog_state_save(path, st, NULL), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(tlog_state_load(path, st2, NULL), 0);
	assert_true(st2->have);
	assert_int_equal(st2->note_len, st->note_len);
	assert_string_equal(st2->note, st->note);
	assert_int_equal(st2->cp.size, 9);
	assert_memory_equal(st2->cp.root, st->cp.root, MERKLE_HASH_LEN);
	assert_string_equal(st2->cp.origin, ORIGIN);
	assert_int_equal(st2->fresh, st->fresh);

	/* Damaged files are refused, never taken as empty. */
	static const char *const bad[] = {
		"",
		"{}",
		"not json",
		"{\"checkpoint\":\"x\",\"fresh\":1}",
		"{\"checkpoint\":\"" ORIGIN "\\n9\\n\",\"fresh\":1}",
		"[1]",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(unlink(path), 0);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fputs(bad[i], fp);
		fclose(fp);
		assert_int_equal(chmod(path, 0600), 0);
		err_clear(&e);
		assert_int_equal(tlog_state_load(path, st2, &e), ERR_FORMAT);
		assert_false(st2->have);
		assert_non_null(strstr(err_msg(&e), "damaged"));
	}
	/* An extra member, or the note cut short. */
	{
		char *buf = malloc(strlen(st->note) * 2 + 64);
		size_t k, o = 0;

		assert_non_null(buf);
		o += (size_t)sprintf(buf, "{\"checkpoint\":\"");
		for (k = 0; k + 20 < st->note_len; k++) {
			if (st->note[k] == '\n') {
				buf[o++] = '\\';
				buf[o++] = 'n';
			} else
				buf[o++] = st->note[k];
		}
		sprintf(buf + o, "\",\"fresh\":1}");
		assert_int_equal(unlink(path), 0);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fputs(buf, fp);
		fclose(fp);
		assert_int_equal(chmod(path, 0600), 0);
		assert_int_equal(tlog_state_load(path, st2, NULL),
		    ERR_FORMAT);
		free(buf);
	}
	assert_int_equal(tlog_state_save(path, st, NULL), 0);
	assert_int_equal(tlog_state_load(path, st2, NULL), 0);
	assert_true(st2->have);
	/* A file others can read is refused. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_not_equal(tlog_state_load(path, st2, NULL), 0);
	free(st2);
	free(st);
	free(v);
}

/* --- the check of a log read --- */

static struct acctlog_response *
response(struct fx *f, struct tree *t, uint64_t size, uint64_t head_seq,
    uint64_t tlog_seq, uint64_t index)
{
	struct acctlog_response *r = calloc(1, sizeof(*r));
	uint64_t ts[N_WIT + 1] = { NOW, NOW, 0, 0 };
	size_t n = 0;

	assert_non_null(r);
	snprintf(r->head.account, sizeof(r->head.account), "alice");
	r->head.seq = head_seq;
	ev_hash("a", head_seq, r->head.hash);
	if (tlog_seq == 0)
		return r;
	r->tlog.present = 1;
	r->tlog.checkpoint = checkpoint(f, t, ORIGIN, size, ts);
	r->tlog.checkpoint_len = strlen(r->tlog.checkpoint);
	r->tlog.seq = tlog_seq;
	r->tlog.index = index;
	assert_int_equal(merkle_inclusion_proof(index, size, tree_node, t,
	    r->tlog.proof, &n, NULL), 0);
	r->tlog.n_proof = n;
	return r;
}

struct latest {
	struct fx *f;
	struct tree *t;
	uint64_t size;
};

static int
latest_note(void *arg, char **note, size_t *len, struct err_ctx *e)
{
	struct latest *l = arg;
	uint64_t ts[N_WIT + 1] = { NOW, NOW, 0, 0 };

	(void)e;
	*note = checkpoint(l->f, l->t, ORIGIN, l->size, ts);
	*len = strlen(*note);
	return 0;
}

static int
latest_proof(void *arg, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	struct latest *l = arg;

	return tree_consistency(l->t, old, size, proof, n, e);
}

static void
test_check_log(void **state)
{
	struct fx *f = *state;
	struct tlog_check_result *res = calloc(1, sizeof(*res));
	struct tlog_state *st = calloc(1, sizeof(*st));
	struct tlog_state *st2 = calloc(1, sizeof(*st2));
	struct acctlog_response *resp;
	struct latest l = { f, &f->a, 12 };
	uint8_t ev[32];
	char path[320];
	struct err_ctx e;

	assert_non_null(res);
	assert_non_null(st);
	assert_non_null(st2);
	snprintf(path, sizeof(path), "%s/check-state", f->dir_path);

	/* Event 10 at leaf 9 of a tree of 10, head at 10: proven. */
	resp = response(f, &f->a, 10, 10, 10, 9);
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL, NOW,
	    res, &e), 0);
	assert_int_equal(res->proven_seq, 10);
	assert_int_equal(res->head_seq, 10);
	assert_false(res->pending);
	assert_true(res->changed);
	assert_true(res->have_v);
	/* Kept durably. */
	assert_int_equal(tlog_state_load(path, st2, NULL), 0);
	assert_int_equal(st2->cp.size, 10);
	acctlog_response_free(resp);

	/* The head is at 12, the checkpoint proves 10: not yet proven. */
	resp = response(f, &f->a, 10, 12, 10, 9);
	ev_hash("a", 10, ev);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, ev, NOW,
	    res, &e), 0);
	assert_int_equal(res->proven_seq, 10);
	assert_true(res->pending);
	assert_false(res->changed);

	/* The hash of event 10 is not in the response: must be given. */
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL, NOW,
	    res, &e), ERR_INVALID_ARG);
	/* A wrong hash: the inclusion fails. */
	ev_hash("b", 10, ev);
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, ev, NOW,
	    res, &e), ERR_SIGNATURE);
	assert_true(res->inclusion_failed);
	acctlog_response_free(resp);

	/* A proof for another leaf. */
	resp = response(f, &f->a, 11, 11, 11, 9);
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL, NOW,
	    res, &e), ERR_SIGNATURE);
	assert_true(res->inclusion_failed);
	/* The checkpoint itself was fine, and is kept. */
	assert_int_equal(st->cp.size, 11);
	acctlog_response_free(resp);

	/* No tlog member: the latest checkpoint is still checked. */
	resp = response(f, &f->a, 0, 3, 0, 0);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL, NOW,
	    res, &e), 0);
	assert_true(res->pending);
	assert_int_equal(res->proven_seq, 0);
	assert_int_equal(st->cp.size, 12);
	acctlog_response_free(resp);

	/* No tlog member and nothing to fetch the latest with: pending,
	 * nothing changes; an empty log is not pending. */
	resp = response(f, &f->a, 0, 3, 0, 0);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, NULL, &l, "alice", resp, NULL, NOW, res, &e),
	    0);
	assert_true(res->pending);
	assert_false(res->have_v);
	resp->head.seq = 0;
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, NULL, &l, "alice", resp, NULL, NOW, res, &e),
	    0);
	assert_false(res->pending);
	acctlog_response_free(resp);

	/* A proven seq past the signed head. */
	resp = response(f, &f->a, 12, 11, 12, 11);
	resp->tlog.seq = 12;
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL, NOW,
	    res, &e), ERR_FORMAT);
	acctlog_response_free(resp);

	/* A state file that cannot be written: the kept checkpoint does not
	 * move either. */
	{
		char bad[400];
		uint64_t size0 = st->cp.size;
		struct latest l2 = { f, &f->a, 14 };

		snprintf(bad, sizeof(bad), "%s/no-such-dir/state", f->dir_path);
		resp = response(f, &f->a, 0, 3, 0, 0);
		err_clear(&e);
		assert_int_not_equal(tlog_check_log_cb(&f->pol, f->spki,
		    f->spki_len, st, bad, latest_proof, latest_note, &l2,
		    "alice", resp, NULL, NOW, res, &e), 0);
		assert_int_equal(st->cp.size, size0);
		assert_false(res->changed);
		acctlog_response_free(resp);
	}

	/* Without quorum. */
	resp = response(f, &f->a, 12, 12, 12, 11);
	{
		uint64_t ts[N_WIT + 1] = { NOW, 0, 0, NOW };

		free(resp->tlog.checkpoint);
		resp->tlog.checkpoint = checkpoint(f, &f->a, ORIGIN, 12, ts);
		resp->tlog.checkpoint_len = strlen(resp->tlog.checkpoint);
	}
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL, NOW,
	    res, &e), ERR_DENIED);
	acctlog_response_free(resp);

	/* Stale. */
	err_clear(&e);
	resp = response(f, &f->a, 12, 12, 12, 11);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, NULL,
	    NOW + 10000, res, &e), ERR_STALE);
	assert_true(res->have_v);
	acctlog_response_free(resp);

	/* The other history at the kept size: a fork, both notes. */
	resp = response(f, &f->b, 12, 12, 12, 11);
	ev_hash("b", 12, ev);
	err_clear(&e);
	assert_int_equal(tlog_check_log_cb(&f->pol, f->spki, f->spki_len, st,
	    path, latest_proof, latest_note, &l, "alice", resp, ev, NOW,
	    res, &e), ERR_FORK);
	assert_true(res->have_fork);
	assert_string_equal(res->fork.held, st->note);
	assert_non_null(strstr(res->fork.shown, "\n12\n"));
	assert_string_not_equal(res->fork.shown, res->fork.held);
	acctlog_response_free(resp);

	/* A checkpoint shown by a message's sender: no freshness, fork
	 * found the same way. */
	{
		uint64_t ts[N_WIT + 1] = { NOW - 100000, NOW - 100000, 0, 0 };
		char *note = checkpoint(f, &f->a, ORIGIN, 8, ts);

		assert_int_equal(tlog_check_checkpoint_cb(&f->pol, f->spki,
		    f->spki_len, st, path, latest_proof, &l, note,
		    strlen(note), NOW, res, NULL), 0);
		assert_false(res->changed);
		free(note);
		note = checkpoint(f, &f->b, ORIGIN, 8, ts);
		assert_int_equal(tlog_check_checkpoint_cb(&f->pol, f->spki,
		    f->spki_len, st, path, latest_proof, &l, note,
		    strlen(note), NOW, res, NULL), ERR_FORK);
		assert_true(res->have_fork);
		free(note);
	}
	free(st2);
	free(st);
	free(res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_quorum),
		cmocka_unit_test(test_bad_cosig),
		cmocka_unit_test(test_unknown_and_duplicate),
		cmocka_unit_test(test_freshness),
		cmocka_unit_test(test_consistency),
		cmocka_unit_test(test_inclusion),
		cmocka_unit_test(test_state_file),
		cmocka_unit_test(test_check_log),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
