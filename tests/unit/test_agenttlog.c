/*
 * test_agenttlog.c - the agent's monitor of the transparency log
 * (agent-tlog.h): its state file, the leaves it appends and checks
 * against a checkpoint's root, the check of the own account's leaves
 * against the verified log, and the summary of a note's cosignatures.
 */
#include "config.h"

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

#include "agent-tlog.h"
#include "dirclient.h"
#include "errors.h"
#include "merkle.h"
#include "paths.h"
#include "tlog-client.h"
#include "tlog-note.h"

#define N_LEAVES 300

/* A log of N_LEAVES leaves: every third of "me@x.org" (seq 1, 2, ...),
 * the others of "other@x.org". */
static struct dirc_tlog_leaf leaves[N_LEAVES];
static uint8_t lhash[N_LEAVES][MERKLE_HASH_LEN];
static uint8_t own_ev[N_LEAVES][MERKLE_HASH_LEN];  /* by seq - 1 */
static size_t n_own_ev;

static void
make_log(void)
{
	uint64_t me = 0, other = 0;
	size_t i, k;

	for (i = 0; i < N_LEAVES; i++) {
		struct dirc_tlog_leaf *l = &leaves[i];

		if (i % 3 == 0) {
			snprintf(l->account, sizeof(l->account), "me@x.org");
			l->seq = ++me;
		} else {
			snprintf(l->account, sizeof(l->account), "other@x.org");
			l->seq = ++other;
		}
		for (k = 0; k < 32; k++)
			l->hash[k] = (uint8_t)(i * 7 + k + (i % 3 == 0));
		if (i % 3 == 0)
			memcpy(own_ev[l->seq - 1], l->hash, 32);
		assert_int_equal(tlog_leaf_hash(l->account, l->seq, l->hash,
		    lhash[i]), 0);
	}
	n_own_ev = (size_t)me;
}

/* A merkle_node_fn over lhash: the root of the perfect subtree. */
static int
node_fn(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	(void)arg;
	(void)e;
	return merkle_root_reference(lhash + (index << level),
	    UINT64_C(1) << level, out);
}

static void
root_of(uint64_t n, uint8_t out[MERKLE_HASH_LEN])
{
	assert_int_equal(merkle_root_reference(lhash, n, out), 0);
}

static int
setup(void **state)
{
	(void)state;
	make_log();
	return 0;
}

/* --- the state file --- */

static void
test_monitor_format_parse(void **state)
{
	struct agent_tlog_monitor m, p;
	struct agent_tlog_own *own = NULL;
	size_t n_own = 0;
	struct err_ctx e;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	err_clear(&e);
	agent_tlog_monitor_init(&m);
	assert_int_equal(m.f.size, 0);
	assert_int_equal(m.next_seq, 1);
	assert_int_equal(agent_tlog_monitor_format(&m, &text, &len), 0);
	assert_int_equal(agent_tlog_monitor_parse(text, len, &p, &e), 0);
	assert_int_equal(p.f.size, 0);
	assert_int_equal(p.next_seq, 1);
	free(text);

	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org", leaves, 77,
	    &own, &n_own, &e), 0);
	m.next_seq = 9;
	assert_int_equal(agent_tlog_monitor_format(&m, &text, &len), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(agent_tlog_monitor_parse(text, len, &p, &e), 0);
	assert_int_equal(p.f.size, 77);
	assert_int_equal(p.f.count, 4);         /* 64 + 8 + 4 + 1 */
	assert_int_equal(p.next_seq, 9);
	assert_memory_equal(p.f.node, m.f.node, 4 * MERKLE_HASH_LEN);
	free(text);
	free(own);
}

static void
test_monitor_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{\"version\":1,\"size\":0,\"next_seq\":1}",
		"{\"version\":2,\"size\":0,\"next_seq\":1,\"frontier\":[]}",
		"{\"version\":1,\"size\":0,\"next_seq\":0,\"frontier\":[]}",
		"{\"version\":1,\"size\":-1,\"next_seq\":1,\"frontier\":[]}",
		"{\"version\":1,\"size\":1,\"next_seq\":1,\"frontier\":[]}",
		"{\"version\":1,\"size\":0,\"next_seq\":1,\"frontier\":[],"
		    "\"x\":1}",
		"{\"version\":1,\"size\":0,\"next_seq\":1,\"frontier\":[],"
		    "\"size\":0}",
		"{\"version\":1,\"size\":1,\"next_seq\":1,\"frontier\":"
		    "[\"AAAA\"]}",
		"{\"version\":1,\"size\":1,\"next_seq\":1,\"frontier\":[1]}",
		"{\"version\":1,\"size\":0,\"next_seq\":1,\"frontier\":{}}",
		"{\"version\":1,\"size\":9223372036854775808,\"next_seq\":1,"
		    "\"frontier\":[]}",
	};
	struct agent_tlog_monitor m;
	struct err_ctx e;
	char *big;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		memset(&m, 0x5a, sizeof(m));
		assert_int_not_equal(agent_tlog_monitor_parse(bad[i],
		    strlen(bad[i]), &m, &e), 0);
		/* Untouched on failure. */
		assert_int_equal(m.next_seq, UINT64_C(0x5a5a5a5a5a5a5a5a));
	}
	big = malloc(AGENT_TLOG_MONITOR_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', AGENT_TLOG_MONITOR_MAX + 1);
	big[AGENT_TLOG_MONITOR_MAX + 1] = '\0';
	err_clear(&e);
	assert_int_equal(agent_tlog_monitor_parse(big,
	    AGENT_TLOG_MONITOR_MAX + 1, &m, &e), ERR_TOO_LARGE);
	free(big);
}

static void
test_monitor_load_save(void **state)
{
	char dir[64], *path;
	struct agent_tlog_monitor m, p;
	struct agent_tlog_own *own = NULL;
	size_t n_own = 0;
	struct err_ctx e;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/devid-tlog-XXXXXX", P_tmpdir);
	assert_non_null(mkdtemp(dir));
	path = path_join(dir, AGENT_TLOG_MONITOR_FILE);
	assert_non_null(path);
	err_clear(&e);
	/* Missing: the empty monitor. */
	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(agent_tlog_monitor_load(path, &p, &e), 0);
	assert_int_equal(p.f.size, 0);
	assert_int_equal(p.next_seq, 1);
	agent_tlog_monitor_init(&m);
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org", leaves, 5,
	    &own, &n_own, &e), 0);
	m.next_seq = 3;
	assert_int_equal(agent_tlog_monitor_save(path, &m, &e), 0);
	assert_int_equal(agent_tlog_monitor_load(path, &p, &e), 0);
	assert_int_equal(p.f.size, 5);
	assert_int_equal(p.next_seq, 3);
	/* A damaged file is an error that names it. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"version\":1}", f);
	fclose(f);
	err_clear(&e);
	assert_int_equal(agent_tlog_monitor_load(path, &p, &e), ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), path));
	unlink(path);
	free(path);
	free(own);
	rmdir(dir);
}

/* --- appending and checking the root --- */

static void
test_append_verify(void **state)
{
	struct agent_tlog_monitor m, cut;
	struct agent_tlog_own *own = NULL;
	uint8_t root[MERKLE_HASH_LEN], proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t n_own = 0, np = 0, i;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	agent_tlog_monitor_init(&m);
	/* In uneven pieces, as pages come. */
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org", leaves, 100,
	    &own, &n_own, &e), 0);
	cut = m;
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org",
	    leaves + 100, 0, &own, &n_own, &e), 0);
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org",
	    leaves + 100, N_LEAVES - 100, &own, &n_own, &e), 0);
	assert_int_equal(m.f.size, N_LEAVES);
	assert_int_equal(n_own, N_LEAVES / 3);
	for (i = 0; i < n_own; i++) {
		assert_int_equal(own[i].index, i * 3);
		assert_int_equal(own[i].seq, i + 1);
		assert_memory_equal(own[i].hash, own_ev[i], 32);
	}
	root_of(N_LEAVES, root);
	assert_int_equal(agent_tlog_monitor_verify(&m, N_LEAVES, root, NULL, 0,
	    &e), 0);
	/* Another root: not the tree. */
	root[5] ^= 1;
	err_clear(&e);
	assert_int_equal(agent_tlog_monitor_verify(&m, N_LEAVES, root, NULL, 0,
	    &e), ERR_SIGNATURE);
	root[5] ^= 1;
	/* A frontier short of the checkpoint, with a consistency proof. */
	assert_int_equal(merkle_consistency_proof(100, N_LEAVES, node_fn, NULL,
	    proof, &np, &e), 0);
	assert_int_equal(agent_tlog_monitor_verify(&cut, N_LEAVES, root, proof,
	    np, &e), 0);
	proof[0][0] ^= 1;
	err_clear(&e);
	assert_int_equal(agent_tlog_monitor_verify(&cut, N_LEAVES, root, proof,
	    np, &e), ERR_SIGNATURE);
	proof[0][0] ^= 1;
	/* Without the proof it fails too. */
	assert_int_equal(agent_tlog_monitor_verify(&cut, N_LEAVES, root, NULL,
	    0, &e), ERR_SIGNATURE);
	/* Read more than the checkpoint: misuse. */
	root_of(100, root);
	err_clear(&e);
	assert_int_equal(agent_tlog_monitor_verify(&m, 100, root, NULL, 0, &e),
	    ERR_INVALID_ARG);
	free(own);
}

/* A directory that serves a leaf other than the one it logged. */
static void
test_append_bad_leaf(void **state)
{
	struct dirc_tlog_leaf *copy;
	struct agent_tlog_monitor m;
	struct agent_tlog_own *own = NULL;
	uint8_t root[MERKLE_HASH_LEN];
	size_t n_own = 0;
	struct err_ctx e;

	(void)state;
	copy = malloc(sizeof(leaves));
	assert_non_null(copy);
	memcpy(copy, leaves, sizeof(leaves));
	copy[150].hash[0] ^= 1;
	err_clear(&e);
	agent_tlog_monitor_init(&m);
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org", copy,
	    N_LEAVES, &own, &n_own, &e), 0);
	root_of(N_LEAVES, root);
	assert_int_equal(agent_tlog_monitor_verify(&m, N_LEAVES, root, NULL, 0,
	    &e), ERR_SIGNATURE);
	free(own);
	own = NULL;
	n_own = 0;
	/* More leaves of the own account than one round may hold. */
	free(copy);
	copy = calloc(AGENT_TLOG_OWN_MAX + 1, sizeof(*copy));
	assert_non_null(copy);
	for (n_own = 0; n_own <= AGENT_TLOG_OWN_MAX; n_own++) {
		snprintf(copy[n_own].account, sizeof(copy[n_own].account),
		    "me@x.org");
		copy[n_own].seq = n_own + 1;
	}
	n_own = 0;
	agent_tlog_monitor_init(&m);
	err_clear(&e);
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org", copy,
	    AGENT_TLOG_OWN_MAX + 1, &own, &n_own, &e), ERR_TOO_LARGE);
	assert_int_equal(n_own, AGENT_TLOG_OWN_MAX);
	free(own);
	free(copy);
}

/* --- the own account's leaves against the verified log --- */

/* The verified log: events 1..verified_to of own_ev. */
struct fake_log {
	uint64_t verified_to;
	int calls;
	int fail;               /* another error to return */
};

static int
fake_event(void *arg, uint64_t seq, uint8_t out[MERKLE_HASH_LEN],
    struct err_ctx *e)
{
	struct fake_log *fl = arg;

	fl->calls++;
	if (fl->fail != 0)
		return err_set(e, fl->fail, "fake failure");
	if (seq == 0 || seq > fl->verified_to)
		return err_set(e, ERR_NOT_FOUND, "past the verified log");
	memcpy(out, own_ev[seq - 1], MERKLE_HASH_LEN);
	return 0;
}

/* The own leaves of the whole log into *own. */
static size_t
own_leaves(struct agent_tlog_own **own)
{
	struct agent_tlog_monitor m;
	size_t n = 0;

	*own = NULL;
	agent_tlog_monitor_init(&m);
	assert_int_equal(agent_tlog_monitor_append(&m, "me@x.org", leaves,
	    N_LEAVES, own, &n, NULL), 0);
	return n;
}

static void
test_check_own_good(void **state)
{
	struct agent_tlog_own *own;
	struct agent_tlog_finding f;
	struct fake_log fl = { N_LEAVES, 0, 0 };
	size_t n = own_leaves(&own), done = 0;
	uint64_t next = 1;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), 0);
	assert_int_equal(done, n);
	assert_int_equal(next, n + 1);
	assert_int_equal(fl.calls, (int)n);
	assert_int_equal(f.why, AGENT_TLOG_OK);
	/* Nothing to check. */
	done = 0;
	assert_int_equal(agent_tlog_check_own(NULL, 0, &done, &next,
	    fake_event, &fl, &f, &e), 0);
	/* Resumed in the middle (the monitor read some before). */
	done = 10;
	next = 11;
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), 0);
	assert_int_equal(next, n + 1);
	free(own);
}

static void
test_check_own_fork(void **state)
{
	struct agent_tlog_own *own;
	struct agent_tlog_finding f;
	struct fake_log fl = { N_LEAVES, 0, 0 };
	size_t n = own_leaves(&own), done;
	uint64_t next;
	struct err_ctx e;

	(void)state;
	/* Another event at a verified seq. */
	own[20].hash[31] ^= 0x80;
	done = 0;
	next = 1;
	err_clear(&e);
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), ERR_FORK);
	assert_int_equal(f.why, AGENT_TLOG_HASH);
	assert_int_equal(done, 20);
	assert_int_equal(next, 21);
	assert_int_equal(f.leaf.index, 60);
	assert_int_equal(f.leaf.seq, 21);
	assert_int_equal(f.have_expected_hash, 1);
	assert_memory_equal(f.expected_hash, own_ev[20], 32);
	assert_string_equal(agent_tlog_why_name(f.why), "hash");
	own[20].hash[31] ^= 0x80;

	/* A gap: event 31 logged twice, or 32 skipped. */
	own[31].seq = 31;
	done = 0;
	next = 1;
	err_clear(&e);
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), ERR_FORK);
	assert_int_equal(f.why, AGENT_TLOG_SEQ);
	assert_int_equal(f.expected_seq, 32);
	assert_int_equal(f.leaf.seq, 31);
	assert_string_equal(agent_tlog_why_name(f.why), "seq");
	own[31].seq = 32;
	own[31].seq = 40;
	done = 0;
	next = 1;
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), ERR_FORK);
	assert_int_equal(f.why, AGENT_TLOG_SEQ);
	own[31].seq = 32;

	/* The first own leaf is not event 1. */
	done = 0;
	next = 2;
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), ERR_FORK);
	assert_int_equal(done, 0);
	free(own);
}

static void
test_check_own_beyond(void **state)
{
	struct agent_tlog_own *own;
	struct agent_tlog_finding f;
	struct fake_log fl = { 50, 0, 0 };
	size_t n = own_leaves(&own), done = 0;
	uint64_t next = 1;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	/* Past the verified log: stops at that leaf ... */
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), ERR_NOT_FOUND);
	assert_int_equal(f.why, AGENT_TLOG_BEYOND);
	assert_int_equal(done, 50);
	assert_int_equal(next, 51);
	assert_int_equal(f.leaf.seq, 51);
	assert_string_equal(agent_tlog_why_name(f.why), "beyond");
	/* ... and goes on once the log was read again. */
	fl.verified_to = N_LEAVES;
	err_clear(&e);
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), 0);
	assert_int_equal(next, n + 1);
	/* Other errors pass up as they are. */
	fl.fail = ERR_NETWORK;
	done = 0;
	next = 1;
	err_clear(&e);
	assert_int_equal(agent_tlog_check_own(own, n, &done, &next, fake_event,
	    &fl, &f, &e), ERR_NETWORK);
	assert_int_equal(done, 0);
	assert_string_equal(agent_tlog_why_name(AGENT_TLOG_OK), "");
	free(own);
}

/* --- which witnesses cosigned --- */

static void
test_cosig_summary(void **state)
{
	struct tlog_policy *p;
	struct tlog_note *n;
	struct tlog_checkpoint cp;
	struct tlog_sigline sl;
	EVP_PKEY *k[3];
	char *note = NULL, out[300], name[8];
	size_t len = 0, i;
	struct err_ctx e;

	(void)state;
	p = calloc(1, sizeof(*p));
	n = calloc(1, sizeof(*n));
	assert_non_null(p);
	assert_non_null(n);
	err_clear(&e);
	for (i = 0; i < 3; i++) {
		k[i] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		assert_non_null(k[i]);
		snprintf(name, sizeof(name), "w%zu", i + 1);
		assert_int_equal(tlog_vkey_cosigner(name, k[i],
		    &p->witness[i], &e), 0);
	}
	p->n_witness = 3;
	p->quorum = 2;
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "devid/test");
	cp.size = 5;
	assert_int_equal(tlog_checkpoint_format(&cp, n->text, sizeof(n->text),
	    &n->text_len), 0);
	/* w1 cosigns; w3 has a line over another time (invalid). */
	assert_int_equal(tlog_cosign(n->text, n->text_len, k[0],
	    &p->witness[0], 1000, &sl, &e), 0);
	assert_int_equal(tlog_note_add_sig(n, &sl), 0);
	assert_int_equal(tlog_cosign(n->text, n->text_len, k[2],
	    &p->witness[2], 1000, &sl, &e), 0);
	sl.sig[0] ^= 1;         /* the timestamp no longer matches */
	assert_int_equal(tlog_note_add_sig(n, &sl), 0);
	assert_int_equal(tlog_note_format(n, &note, &len), 0);
	agent_tlog_cosig_summary(p, note, len, out, sizeof(out));
	assert_non_null(strstr(out, "1 of 2 needed"));
	assert_non_null(strstr(out, "valid: w1;"));
	assert_non_null(strstr(out, "missing: w2;"));
	assert_non_null(strstr(out, "invalid: w3"));
	/* Cut short, still terminated. */
	agent_tlog_cosig_summary(p, note, len, out, 8);
	assert_int_equal(strlen(out), 7);
	/* Garbage. */
	agent_tlog_cosig_summary(p, "nonsense", 8, out, sizeof(out));
	assert_non_null(strstr(out, "does not parse"));
	free(note);
	for (i = 0; i < 3; i++)
		EVP_PKEY_free(k[i]);
	free(n);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monitor_format_parse),
		cmocka_unit_test(test_monitor_parse_bad),
		cmocka_unit_test(test_monitor_load_save),
		cmocka_unit_test(test_append_verify),
		cmocka_unit_test(test_append_bad_leaf),
		cmocka_unit_test(test_check_own_good),
		cmocka_unit_test(test_check_own_fork),
		cmocka_unit_test(test_check_own_beyond),
		cmocka_unit_test(test_cosig_summary),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
