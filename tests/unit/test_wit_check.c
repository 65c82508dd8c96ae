/*
 * test_wit_check.c - the witness's rules for extending a log's history
 * (witness/wit-check.c), on trees built here.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "merkle.h"
#include "tlog-note.h"
#include "tlog-test-util.h"
#include "wit-check.h"


static void
root_of(const struct ttree *t, uint64_t size, uint8_t root[MERKLE_HASH_LEN])
{
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(merkle_root(size, ttree_node, (void *)t, root, &e), 0);
}

static void
checkpoint(const struct ttree *t, uint64_t size, struct tlog_checkpoint *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->origin, sizeof(c->origin), "dir.example");
	c->size = size;
	root_of(t, size, c->root);
}

static size_t
proof_of(const struct ttree *t, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN])
{
	struct err_ctx e;
	size_t n = 0;

	err_clear(&e);
	assert_int_equal(merkle_consistency_proof(old, size, ttree_node,
	    (void *)t, proof, &n, &e), 0);
	return n;
}

static void
held_of(const struct ttree *t, uint64_t size, struct wit_held *h)
{
	memset(h, 0, sizeof(*h));
	h->have = 1;
	h->size = size;
	root_of(t, size, h->root);
}

static void
test_first_checkpoint(void **state)
{
	struct ttree t;
	struct wit_held h;
	struct tlog_checkpoint c;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];

	(void)state;
	ttree_build(&t, 5, 0, 0);
	memset(&h, 0, sizeof(h));
	merkle_empty_root(h.root);
	checkpoint(&t, 5, &c);
	assert_int_equal(wit_check(&h, 0, NULL, 0, &c), WIT_COSIGN_NEW);
	/* old 0 takes an empty proof only */
	memset(proof, 7, sizeof(proof[0]));
	assert_int_equal(wit_check(&h, 0, (const uint8_t (*)[32])proof, 1,
	    &c), WIT_BAD_PROOF);
	assert_int_equal(wit_check(&h, 1, NULL, 0, &c), WIT_STALE);
	assert_int_equal(wit_check(&h, 6, NULL, 0, &c), WIT_BAD_OLD);
	/* an empty first checkpoint must have the empty root */
	checkpoint(&t, 0, &c);
	assert_int_equal(wit_check(&h, 0, NULL, 0, &c), WIT_COSIGN_NEW);
	c.root[0] ^= 1;
	assert_int_equal(wit_check(&h, 0, NULL, 0, &c), WIT_BAD_PROOF);
}

static void
test_extend(void **state)
{
	struct ttree t;
	struct wit_held h;
	struct tlog_checkpoint c;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint64_t old, size;
	size_t n;

	(void)state;
	ttree_build(&t, 40, 0, 0);
	for (old = 1; old <= 20; old += 3) {
		for (size = old + 1; size <= 40; size += 5) {
			held_of(&t, old, &h);
			checkpoint(&t, size, &c);
			n = proof_of(&t, old, size, proof);
			assert_int_equal(wit_check(&h, old,
			    (const uint8_t (*)[32])proof, n, &c),
			    WIT_COSIGN_NEW);
			/* any hash changed, one dropped or one added */
			if (n > 0) {
				proof[n - 1][3] ^= 0x10;
				assert_int_equal(wit_check(&h, old,
				    (const uint8_t (*)[32])proof, n, &c),
				    WIT_BAD_PROOF);
				proof[n - 1][3] ^= 0x10;
				assert_int_equal(wit_check(&h, old,
				    (const uint8_t (*)[32])proof, n - 1, &c),
				    WIT_BAD_PROOF);
			}
			assert_int_equal(wit_check(&h, old,
			    (const uint8_t (*)[32])proof, n + 1, &c),
			    WIT_BAD_PROOF);
			/* an old size other than the held one */
			assert_int_equal(wit_check(&h, old - 1,
			    (const uint8_t (*)[32])proof, n, &c), WIT_STALE);
		}
	}
}

static void
test_same_and_fork(void **state)
{
	struct ttree t, f;
	struct wit_held h;
	struct tlog_checkpoint c;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t n;

	(void)state;
	ttree_build(&t, 20, 0, 0);
	ttree_build(&f, 20, 9, 6);     /* forks from t after leaf 5 */
	held_of(&t, 10, &h);
	h.have_at_size = 1;
	memcpy(h.root_at_size, h.root, MERKLE_HASH_LEN);
	checkpoint(&t, 10, &c);
	assert_int_equal(wit_check(&h, 10, NULL, 0, &c), WIT_COSIGN_SAME);
	memset(proof, 1, sizeof(proof[0]));
	assert_int_equal(wit_check(&h, 10, (const uint8_t (*)[32])proof, 1,
	    &c), WIT_BAD_PROOF);
	/* the same size, another root: a fork, whatever old says */
	checkpoint(&f, 10, &c);
	assert_int_equal(wit_check(&h, 10, NULL, 0, &c), WIT_FORK);
	assert_int_equal(wit_check(&h, 4, NULL, 0, &c), WIT_FORK);
	h.have_at_size = 0;
	assert_int_equal(wit_check(&h, 10, NULL, 0, &c), WIT_FORK);
	/* a larger forked tree with a valid proof from its own size 10 */
	checkpoint(&f, 15, &c);
	n = proof_of(&f, 10, 15, proof);
	assert_int_equal(wit_check(&h, 10, (const uint8_t (*)[32])proof, n,
	    &c), WIT_BAD_PROOF);
	/* a smaller size cosigned before with another root */
	h.have_at_size = 1;
	root_of(&t, 7, h.root_at_size);
	checkpoint(&f, 7, &c);
	assert_int_equal(wit_check(&h, 7, NULL, 0, &c), WIT_FORK);
	/* ... and with the same root only stale */
	checkpoint(&t, 7, &c);
	assert_int_equal(wit_check(&h, 7, NULL, 0, &c), WIT_STALE);
}

static void
test_reasons(void **state)
{
	int v;

	(void)state;
	for (v = WIT_COSIGN_NEW; v <= WIT_BAD_PROOF; v++)
		assert_true(strlen(wit_verdict_reason((enum wit_verdict)v)) >
		    0);
	assert_string_equal(wit_verdict_reason((enum wit_verdict)99),
	    "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_checkpoint),
		cmocka_unit_test(test_extend),
		cmocka_unit_test(test_same_and_fork),
		cmocka_unit_test(test_reasons),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
