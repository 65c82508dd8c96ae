/*
 * test_merkle.c - the RFC 9162 Merkle tree: roots, inclusion and
 * consistency proofs from stored nodes against the recursive definition,
 * their verification under every kind of tampering, frontiers, the
 * number of stored nodes each operation reads, and known answers.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "merkle.h"

/* The largest tree built; every smaller one is a prefix of it. */
#define BIG_N UINT64_C(100000)
#define BIG_LEVELS 17          /* 2^16 <= BIG_N < 2^17 */
/* The bound on stored-node reads per root or proof asked of merkle.c. */
#define READS_MAX (2 * 64 + 2)

typedef uint8_t hash_t[MERKLE_HASH_LEN];

/*
 * The in-memory node table: filled only by merkle_frontier_append's put
 * callback, read through node_get, which checks that merkle.c asks only
 * for nodes complete in the size it names (limit) and counts reads.
 */
struct table {
	hash_t *node[BIG_LEVELS];
	uint8_t *have[BIG_LEVELS];
	uint64_t limit;          /* the tree size of the current call */
	uint64_t reads;
	uint64_t fail_at;        /* node_get fails on this read (1-based) */
	/* put checks */
	uint64_t put_end;        /* leaves the appended leaf completes */
	int put_next_level;
};

static struct table tab;
static hash_t *leaves;           /* BIG_N leaf hashes */
static hash_t *ref_roots;        /* reference roots of sizes 0..REF_SMALL */
#define REF_SMALL 1100
/* The sizes tested, and the reference roots of those above REF_SMALL. */
#define SIZES_MAX 100
static uint64_t sizes[SIZES_MAX];
static hash_t big_roots[SIZES_MAX];
static size_t nsizes;
#define SIZES_SMALL 71           /* sizes[0..70] are 0..70 */

/* Deterministic so that a failure can be replayed. */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t
rng_below(uint64_t n)
{
	return rng() % n;
}

static int
node_get(void *arg, unsigned int level, uint64_t index, uint8_t out[32],
    struct err_ctx *e)
{
	struct table *t = arg;

	t->reads++;
	if (t->fail_at != 0 && t->reads == t->fail_at)
		return err_set(e, ERR_IO, "test store: node (%u, %llu) "
		    "unreadable", level, (unsigned long long)index);
	assert_true(level < BIG_LEVELS);
	assert_true(index < (BIG_N >> level));
	/* Complete in the tree size the caller named. */
	assert_true(((index + 1) << level) <= t->limit);
	assert_true(t->have[level][index]);
	memcpy(out, t->node[level][index], MERKLE_HASH_LEN);
	return 0;
}

static int
node_put(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[32], struct err_ctx *e)
{
	struct table *t = arg;

	(void)e;
	/* Levels in order from the leaf up, each node ending at the new
	 * leaf, each stored once. */
	assert_int_equal(level, t->put_next_level);
	t->put_next_level++;
	assert_true(level < BIG_LEVELS);
	assert_true(((index + 1) << level) == t->put_end);
	assert_false(t->have[level][index]);
	memcpy(t->node[level][index], hash, MERKLE_HASH_LEN);
	t->have[level][index] = 1;
	return 0;
}

/* Appends leaf hash h to f and to the table. */
static void
table_append(struct merkle_frontier *f, const uint8_t h[32])
{
	struct err_ctx e;

	err_clear(&e);
	tab.put_end = f->size + 1;
	tab.put_next_level = 0;
	assert_int_equal(merkle_frontier_append(f, h, node_put, &tab, &e), 0);
	/* The new leaf completes one node per trailing one bit, plus itself. */
	assert_int_equal(tab.put_next_level,
	    __builtin_ctzll(f->size) + 1);
}

static void
make_leaf(uint64_t i, uint8_t out[32])
{
	uint8_t data[16] = "leaf ";
	int j;

	for (j = 0; j < 8; j++)
		data[8 + j] = (uint8_t)(i >> (56 - 8 * j));
	assert_int_equal(merkle_leaf_hash(data, sizeof(data), out), 0);
}

/* 0..70, around 128, 256 and 1024, a few random sizes, and BIG_N. */
static void
make_sizes(void)
{
	static const uint64_t around[] = { 127, 128, 129, 255, 256, 257,
	    1023, 1024, 1025 };
	size_t i;

	nsizes = 0;
	for (i = 0; i < SIZES_SMALL; i++)
		sizes[nsizes++] = i;
	for (i = 0; i < sizeof(around) / sizeof(around[0]); i++)
		sizes[nsizes++] = around[i];
	for (i = 0; i < 5; i++)
		sizes[nsizes++] = REF_SMALL + 1 +
		    rng_below(BIG_N - REF_SMALL - 1);
	sizes[nsizes++] = BIG_N;
}

static int
setup_tree(void **state)
{
	struct merkle_frontier f;
	hash_t root, froot;
	struct err_ctx e;
	uint64_t i;
	int l;

	(void)state;
	memset(&tab, 0, sizeof(tab));
	for (l = 0; l < BIG_LEVELS; l++) {
		if ((tab.node[l] = calloc(BIG_N >> l, sizeof(hash_t))) == NULL ||
		    (tab.have[l] = calloc(BIG_N >> l, 1)) == NULL)
			return -1;
	}
	if ((leaves = calloc(BIG_N, sizeof(hash_t))) == NULL ||
	    (ref_roots = calloc(REF_SMALL + 1, sizeof(hash_t))) == NULL)
		return -1;
	merkle_frontier_init(&f);
	for (i = 0; i < BIG_N; i++) {
		make_leaf(i, leaves[i]);
		table_append(&f, leaves[i]);
		assert_int_equal(f.size, i + 1);
		assert_int_equal(f.count, __builtin_popcountll(i + 1));
		assert_memory_equal(tab.node[0][i], leaves[i], 32);
		/* The frontier's root is the stored nodes' root. */
		if (i < 2048 || i % 1009 == 0) {
			err_clear(&e);
			tab.limit = i + 1;
			assert_int_equal(merkle_root(i + 1, node_get, &tab, root,
			    &e), 0);
			assert_int_equal(merkle_frontier_root(&f, froot), 0);
			assert_memory_equal(root, froot, 32);
		}
	}
	/* Every node of the tree was stored. */
	for (l = 0; l < BIG_LEVELS; l++)
		for (i = 0; i < (BIG_N >> l); i++)
			assert_true(tab.have[l][i]);
	for (i = 0; i <= REF_SMALL; i++)
		assert_int_equal(merkle_root_reference(leaves, i,
		    ref_roots[i]), 0);
	make_sizes();
	for (i = 0; i < nsizes; i++)
		if (sizes[i] > REF_SMALL)
			assert_int_equal(merkle_root_reference(leaves,
			    sizes[i], big_roots[i]), 0);
	return 0;
}

static int
teardown_tree(void **state)
{
	int l;

	(void)state;
	for (l = 0; l < BIG_LEVELS; l++) {
		free(tab.node[l]);
		free(tab.have[l]);
	}
	free(leaves);
	free(ref_roots);
	return 0;
}

/* The reference root of sizes[i]. */
static const uint8_t *
ref_root(size_t i)
{
	return sizes[i] <= REF_SMALL ? ref_roots[sizes[i]] : big_roots[i];
}

static uint64_t
split(uint64_t n)
{
	uint64_t k = 1;

	while (k < n - k)
		k <<= 1;
	return k;
}

/*
 * The shapes of proofs, straight from the recursions of RFC 9162
 * (2.1.3.1 PATH, 2.1.4.1 SUBPROOF), in proof order: 'L' a sibling on the
 * left, 'R' one on the right, 'B' the SUBPROOF base MTH(D[m]).  A verifier
 * combines hashes only by the shape, so parameters with the shape of the
 * proof (say index 0 of 3 leaves or of 4) verify it as well: the tree size
 * is bound by the signed checkpoint, not by the proof.  Mutated
 * parameters must verify exactly when their shape is the proof's.
 */
static void
shape_path(uint64_t m, uint64_t n, char *s, size_t *len)
{
	uint64_t k;

	if (n <= 1)
		return;
	k = split(n);
	if (m < k) {
		shape_path(m, k, s, len);
		s[(*len)++] = 'R';
	} else {
		shape_path(m - k, n - k, s, len);
		s[(*len)++] = 'L';
	}
}

static void
shape_subproof(uint64_t m, uint64_t n, int b, char *s, size_t *len)
{
	uint64_t k;

	if (m == n) {
		if (!b)
			s[(*len)++] = 'B';
		return;
	}
	k = split(n);
	if (m <= k) {
		shape_subproof(m, k, b, s, len);
		s[(*len)++] = 'R';
	} else {
		shape_subproof(m - k, n - k, 0, s, len);
		s[(*len)++] = 'L';
	}
}

/* Whether index' of size' has the shape of (index, size). */
static int
same_path_shape(uint64_t index, uint64_t size, uint64_t index2,
    uint64_t size2)
{
	char a[130], b[130];
	size_t na = 0, nb = 0;

	if (index2 >= size2 || size2 > MERKLE_SIZE_MAX)
		return 0;
	shape_path(index, size, a, &na);
	shape_path(index2, size2, b, &nb);
	return na == nb && memcmp(a, b, na) == 0;
}

/* What merkle_consistency_verify must say for (old2, size2) given the
 * proof made for (old, size) and the roots of those. */
static int
consistency_expect(uint64_t old, uint64_t size, uint64_t old2,
    uint64_t size2, size_t n, int roots_equal)
{
	char a[130], b[130];
	size_t na = 0, nb = 0;

	if (old2 > size2 || size2 > MERKLE_SIZE_MAX)
		return ERR_SIGNATURE;
	if (old2 == 0)
		return n == 0 ? 0 : ERR_SIGNATURE;
	if (old2 == size2)
		return n == 0 && roots_equal ? 0 : ERR_SIGNATURE;
	if (n == 0 || old == 0 || old == size)
		return ERR_SIGNATURE;
	shape_subproof(old, size, 1, a, &na);
	shape_subproof(old2, size2, 1, b, &nb);
	return na == nb && memcmp(a, b, na) == 0 ? 0 : ERR_SIGNATURE;
}

/* PATH and PROOF by the RFC's recursions over the leaves themselves. */
static void
ref_path(uint64_t m, uint64_t begin, uint64_t end, hash_t *out, size_t *n)
{
	uint64_t k;

	if (end - begin <= 1)
		return;
	k = split(end - begin);
	if (m < k) {
		ref_path(m, begin, begin + k, out, n);
		assert_int_equal(merkle_root_reference(leaves + begin + k,
		    end - begin - k, out[(*n)++]), 0);
	} else {
		ref_path(m - k, begin + k, end, out, n);
		assert_int_equal(merkle_root_reference(leaves + begin, k,
		    out[(*n)++]), 0);
	}
}

static void
ref_subproof(uint64_t m, uint64_t begin, uint64_t end, int b, hash_t *out,
    size_t *n)
{
	uint64_t k;

	if (m == end - begin) {
		if (!b)
			assert_int_equal(merkle_root_reference(leaves + begin,
			    m, out[(*n)++]), 0);
		return;
	}
	k = split(end - begin);
	if (m <= k) {
		ref_subproof(m, begin, begin + k, b, out, n);
		assert_int_equal(merkle_root_reference(leaves + begin + k,
		    end - begin - k, out[(*n)++]), 0);
	} else {
		ref_subproof(m - k, begin + k, end, 0, out, n);
		assert_int_equal(merkle_root_reference(leaves + begin, k,
		    out[(*n)++]), 0);
	}
}

static uint64_t max_incl_reads, max_cons_reads;

/*
 * Makes the inclusion proof of index in size from the table, checks it
 * against the definition (compare: when the sizes are small enough),
 * that it verifies against the reference root, and that every mutation
 * fails.
 */
static void
check_inclusion(uint64_t index, uint64_t size, const uint8_t root[32],
    int compare)
{
	hash_t proof[MERKLE_PROOF_MAX + 1], ref[MERKLE_PROOF_MAX], leaf, bad;
	uint64_t alt[6];
	struct err_ctx e;
	size_t n = 0, rn = 0, i;
	char shape[130];
	size_t shape_len = 0;

	err_clear(&e);
	tab.limit = size;
	tab.reads = 0;
	assert_int_equal(merkle_inclusion_proof(index, size, node_get, &tab,
	    proof, &n, &e), 0);
	assert_true(tab.reads <= READS_MAX);
	if (tab.reads > max_incl_reads)
		max_incl_reads = tab.reads;
	shape_path(index, size, shape, &shape_len);
	assert_int_equal(n, shape_len);
	if (compare) {
		ref_path(index, 0, size, ref, &rn);
		assert_int_equal(rn, n);
		assert_memory_equal(ref, proof, n * 32);
	}
	memcpy(leaf, leaves[index], 32);
	assert_int_equal(merkle_inclusion_verify(index, size, leaf, proof, n,
	    root), 0);

	/* Any hash byte. */
	for (i = 0; i < n; i++) {
		size_t at = (i * 7 + index) % 32;

		proof[i][at] ^= 0x01 << (i % 8);
		assert_int_equal(merkle_inclusion_verify(index, size, leaf,
		    proof, n, root), ERR_SIGNATURE);
		proof[i][at] ^= 0x01 << (i % 8);
	}
	/* The leaf, and the root. */
	memcpy(bad, leaf, 32);
	bad[index % 32] ^= 0x80;
	assert_int_equal(merkle_inclusion_verify(index, size, bad, proof, n,
	    root), ERR_SIGNATURE);
	memcpy(bad, root, 32);
	bad[31] ^= 0x01;
	assert_int_equal(merkle_inclusion_verify(index, size, leaf, proof, n,
	    bad), ERR_SIGNATURE);
	/* The index. */
	alt[0] = index + 1;
	alt[1] = index - 1;         /* wraps for 0: >= size */
	alt[2] = index ^ 1;
	alt[3] = size;
	alt[4] = rng_below(size);
	alt[5] = UINT64_MAX;
	for (i = 0; i < 6; i++) {
		if (alt[i] == index)
			continue;
		assert_false(same_path_shape(index, size, alt[i], size));
		assert_int_equal(merkle_inclusion_verify(alt[i], size, leaf,
		    proof, n, root), ERR_SIGNATURE);
	}
	/* The size: fails unless the shape stays the same (see above). */
	alt[0] = size + 1;
	alt[1] = size - 1;
	alt[2] = size * 2;
	alt[3] = index;
	alt[4] = index + 1 + rng_below(2 * size);
	alt[5] = MERKLE_SIZE_MAX + 1;
	for (i = 0; i < 6; i++) {
		if (alt[i] == size)
			continue;
		assert_int_equal(merkle_inclusion_verify(index, alt[i], leaf,
		    proof, n, root), same_path_shape(index, size, index,
		    alt[i]) ? 0 : ERR_SIGNATURE);
	}
	/* A hash added at the end or at the front, or removed. */
	memcpy(proof[n], root, 32);
	assert_int_equal(merkle_inclusion_verify(index, size, leaf, proof,
	    n + 1, root), ERR_SIGNATURE);
	memmove(proof[1], proof[0], n * 32);
	memcpy(proof[0], leaf, 32);
	assert_int_equal(merkle_inclusion_verify(index, size, leaf, proof,
	    n + 1, root), ERR_SIGNATURE);
	memmove(proof[0], proof[1], n * 32);
	if (n > 0) {
		assert_int_equal(merkle_inclusion_verify(index, size, leaf,
		    proof, n - 1, root), ERR_SIGNATURE);
		assert_int_equal(merkle_inclusion_verify(index, size, leaf,
		    proof + 1, n - 1, root), ERR_SIGNATURE);
	}
	/* Still the same proof after all that. */
	assert_int_equal(merkle_inclusion_verify(index, size, leaf, proof, n,
	    root), 0);
}

static void
check_consistency(uint64_t old, uint64_t size, const uint8_t old_root[32],
    const uint8_t root[32], int compare)
{
	hash_t proof[MERKLE_PROOF_MAX + 1], ref[MERKLE_PROOF_MAX], bad;
	uint64_t alt[6];
	struct err_ctx e;
	size_t n = 0, rn = 0, i;
	char shape[130];
	size_t shape_len = 0;
	int eq = memcmp(old_root, root, 32) == 0;

	err_clear(&e);
	tab.limit = size;
	tab.reads = 0;
	assert_int_equal(merkle_consistency_proof(old, size, node_get, &tab,
	    proof, &n, &e), 0);
	assert_true(tab.reads <= READS_MAX);
	if (tab.reads > max_cons_reads)
		max_cons_reads = tab.reads;
	if (old != 0 && old != size)
		shape_subproof(old, size, 1, shape, &shape_len);
	assert_int_equal(n, shape_len);
	if (compare && old != 0 && old != size) {
		ref_subproof(old, 0, size, 1, ref, &rn);
		assert_int_equal(rn, n);
		assert_memory_equal(ref, proof, n * 32);
	}
	assert_int_equal(merkle_consistency_verify(old, size, old_root, root,
	    proof, n), 0);

	for (i = 0; i < n; i++) {
		size_t at = (i * 11 + old) % 32;

		proof[i][at] ^= 0x01 << (i % 8);
		assert_int_equal(merkle_consistency_verify(old, size,
		    old_root, root, proof, n), ERR_SIGNATURE);
		proof[i][at] ^= 0x01 << (i % 8);
	}
	/* Either root (the old one is not looked at for old == 0). */
	memcpy(bad, old_root, 32);
	bad[old % 32] ^= 0x04;
	assert_int_equal(merkle_consistency_verify(old, size, bad, root,
	    proof, n), old == 0 ? 0 : ERR_SIGNATURE);
	memcpy(bad, root, 32);
	bad[size % 32] ^= 0x04;
	assert_int_equal(merkle_consistency_verify(old, size, old_root, bad,
	    proof, n), old == 0 ? 0 : ERR_SIGNATURE);
	/* The old size. */
	alt[0] = old + 1;
	alt[1] = old - 1;
	alt[2] = old ^ 1;
	alt[3] = size + 1;
	alt[4] = rng_below(size + 1);
	alt[5] = 0;
	for (i = 0; i < 6; i++) {
		if (alt[i] == old)
			continue;
		assert_int_equal(merkle_consistency_verify(alt[i], size,
		    old_root, root, proof, n), consistency_expect(old, size,
		    alt[i], size, n, eq));
	}
	/* The new size. */
	alt[0] = size + 1;
	alt[1] = size - 1;
	alt[2] = size * 2;
	alt[3] = old;
	alt[4] = old + rng_below(2 * size + 1);
	alt[5] = MERKLE_SIZE_MAX + 1;
	for (i = 0; i < 6; i++) {
		if (alt[i] == size)
			continue;
		assert_int_equal(merkle_consistency_verify(old, alt[i],
		    old_root, root, proof, n), consistency_expect(old, size,
		    old, alt[i], n, eq));
	}
	/* A hash added at the end or at the front, or removed. */
	memcpy(proof[n], old_root, 32);
	assert_int_equal(merkle_consistency_verify(old, size, old_root, root,
	    proof, n + 1), ERR_SIGNATURE);
	memmove(proof[1], proof[0], n * 32);
	memcpy(proof[0], old_root, 32);
	assert_int_equal(merkle_consistency_verify(old, size, old_root, root,
	    proof, n + 1), ERR_SIGNATURE);
	memmove(proof[0], proof[1], n * 32);
	if (n > 0) {
		assert_int_equal(merkle_consistency_verify(old, size,
		    old_root, root, proof, n - 1), ERR_SIGNATURE);
		assert_int_equal(merkle_consistency_verify(old, size,
		    old_root, root, proof + 1, n - 1), ERR_SIGNATURE);
	}
	assert_int_equal(merkle_consistency_verify(old, size, old_root, root,
	    proof, n), 0);
}

static void
test_roots(void **state)
{
	struct merkle_frontier f;
	hash_t root, froot;
	struct err_ctx e;
	uint64_t size;
	size_t i;

	(void)state;
	for (i = 0; i < nsizes; i++) {
		size = sizes[i];
		err_clear(&e);
		tab.limit = size;
		tab.reads = 0;
		assert_int_equal(merkle_root(size, node_get, &tab, root, &e), 0);
		assert_memory_equal(root, ref_root(i), 32);
		/* One read per set bit of the size. */
		assert_int_equal(tab.reads, __builtin_popcountll(size));
		tab.reads = 0;
		assert_int_equal(merkle_frontier_load(&f, size, node_get, &tab,
		    &e), 0);
		assert_int_equal(tab.reads, __builtin_popcountll(size));
		assert_true(f.size == size);
		assert_int_equal(merkle_frontier_root(&f, froot), 0);
		assert_memory_equal(froot, ref_root(i), 32);
	}
}

static void
test_empty_and_one(void **state)
{
	uint8_t empty[32], leaf[32], root[32], proof[MERKLE_PROOF_MAX][32];
	struct merkle_frontier f;
	struct err_ctx e;
	size_t n = 99;

	(void)state;
	err_clear(&e);
	merkle_empty_root(empty);
	/* SHA-256 of the empty string. */
	assert_memory_equal(empty, "\xe3\xb0\xc4\x42\x98\xfc\x1c\x14\x9a\xfb"
	    "\xf4\xc8\x99\x6f\xb9\x24\x27\xae\x41\xe4\x64\x9b\x93\x4c\xa4\x95"
	    "\x99\x1b\x78\x52\xb8\x55", 32);
	tab.limit = 0;
	tab.reads = 0;
	assert_int_equal(merkle_root(0, node_get, &tab, root, &e), 0);
	assert_memory_equal(root, empty, 32);
	assert_int_equal(tab.reads, 0);
	assert_int_equal(merkle_root_reference(NULL, 0, root), 0);
	assert_memory_equal(root, empty, 32);
	merkle_frontier_init(&f);
	assert_int_equal(merkle_frontier_root(&f, root), 0);
	assert_memory_equal(root, empty, 32);
	/* No leaf in the empty tree. */
	assert_int_equal(merkle_inclusion_proof(0, 0, node_get, &tab, proof,
	    &n, &e), ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_int_equal(merkle_inclusion_verify(0, 0, empty, proof, 0,
	    empty), ERR_SIGNATURE);
	/* Empty to empty. */
	assert_int_equal(merkle_consistency_proof(0, 0, node_get, &tab, proof,
	    &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(merkle_consistency_verify(0, 0, empty, empty, proof,
	    0), 0);

	/* One leaf: the root is its hash, the proof is empty. */
	tab.limit = 1;
	assert_int_equal(merkle_root(1, node_get, &tab, root, &e), 0);
	assert_memory_equal(root, leaves[0], 32);
	assert_int_equal(merkle_inclusion_proof(0, 1, node_get, &tab, proof,
	    &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(merkle_inclusion_verify(0, 1, leaves[0], proof, 0,
	    root), 0);
	memcpy(leaf, leaves[1], 32);
	assert_int_equal(merkle_inclusion_verify(0, 1, leaf, proof, 0, root),
	    ERR_SIGNATURE);
	assert_int_equal(merkle_inclusion_verify(1, 1, leaves[0], proof, 0,
	    root), ERR_SIGNATURE);
	memcpy(proof[0], leaf, 32);
	assert_int_equal(merkle_inclusion_verify(0, 1, leaves[0], proof, 1,
	    root), ERR_SIGNATURE);
}

static void
test_inclusion(void **state)
{
	uint64_t size, index;
	size_t i, j;

	(void)state;
	for (i = 0; i < nsizes; i++) {
		size = sizes[i];
		if (size == 0)
			continue;
		if (size <= 257) {
			for (index = 0; index < size; index++)
				check_inclusion(index, size, ref_root(i),
				    size <= 129);
			continue;
		}
		check_inclusion(0, size, ref_root(i), 0);
		check_inclusion(size - 1, size, ref_root(i), 0);
		for (j = 0; j < 60; j++)
			check_inclusion(rng_below(size), size, ref_root(i), 0);
	}
	print_message("most stored-node reads for an inclusion proof: %llu\n",
	    (unsigned long long)max_incl_reads);
}

static void
test_consistency(void **state)
{
	static const uint64_t around[] = { 127, 128, 129, 255, 256, 257 };
	static const uint64_t large[] = { 1023, 1024, 1025 };
	uint64_t old, size;
	size_t i, j;

	(void)state;
	/* All pairs of small sizes. */
	for (size = 0; size <= 70; size++)
		for (old = 0; old <= size; old++)
			check_consistency(old, size, ref_roots[old],
			    ref_roots[size], 1);
	/* Every old size for the sizes around 128 and 256. */
	for (i = 0; i < sizeof(around) / sizeof(around[0]); i++) {
		size = around[i];
		for (old = 0; old <= size; old++)
			check_consistency(old, size, ref_roots[old],
			    ref_roots[size], size <= 129);
	}
	/* Around 1024: the first and last few, powers of two, a sample. */
	for (i = 0; i < sizeof(large) / sizeof(large[0]); i++) {
		size = large[i];
		for (old = 0; old <= size; old++) {
			if (old > 8 && old + 8 < size && old % 37 != 0 &&
			    (old & (old - 1)) != 0)
				continue;
			check_consistency(old, size, ref_roots[old],
			    ref_roots[size], 0);
		}
	}
	/* Pairs of the larger test sizes (up to BIG_N), and random small
	 * old sizes into them. */
	for (i = SIZES_SMALL; i < nsizes; i++) {
		size = sizes[i];
		for (j = SIZES_SMALL; j < nsizes; j++) {
			if (sizes[j] <= size)
				check_consistency(sizes[j], size, ref_root(j),
				    ref_root(i), 0);
		}
		for (j = 0; j < 10; j++) {
			old = rng_below(REF_SMALL + 1);
			if (old <= size)
				check_consistency(old, size, ref_roots[old],
				    ref_root(i), 0);
		}
	}
	print_message("most stored-node reads for a consistency proof: %llu\n",
	    (unsigned long long)max_cons_reads);
}

/* The proofs read O(log n) nodes: the bound above at BIG_N, every index. */
static void
test_reads_bounded(void **state)
{
	hash_t proof[MERKLE_PROOF_MAX];
	struct err_ctx e;
	uint64_t i, most = 0;
	size_t n;

	(void)state;
	err_clear(&e);
	tab.limit = BIG_N;
	for (i = 0; i < BIG_N; i += 97) {
		tab.reads = 0;
		assert_int_equal(merkle_inclusion_proof(i, BIG_N, node_get,
		    &tab, proof, &n, &e), 0);
		assert_true(tab.reads <= READS_MAX);
		most = tab.reads > most ? tab.reads : most;
		tab.reads = 0;
		assert_int_equal(merkle_consistency_proof(i, BIG_N, node_get,
		    &tab, proof, &n, &e), 0);
		assert_true(tab.reads <= READS_MAX);
		most = tab.reads > most ? tab.reads : most;
	}
	/* 17 levels: two reads per level is plenty. */
	assert_true(most <= 2 * BIG_LEVELS + 2);
}

/*
 * A virtual tree of any size up to 2^63 - 1 whose leaves all have the
 * same hash, so that every stored node of level l is level[l]: it tests
 * sizes no table could hold.
 */
struct uniform {
	hash_t level[64];
	uint64_t limit;
	uint64_t reads;
};

static int
uniform_get(void *arg, unsigned int level, uint64_t index, uint8_t out[32],
    struct err_ctx *e)
{
	struct uniform *u = arg;

	(void)e;
	u->reads++;
	assert_true(level < 63);
	assert_true(index < (UINT64_C(1) << (63 - level)));
	assert_true(((index + 1) << level) <= u->limit);
	memcpy(out, u->level[level], 32);
	return 0;
}

static void
test_huge_sizes(void **state)
{
	static const uint64_t huge[] = { MERKLE_SIZE_MAX,
	    MERKLE_SIZE_MAX - 1, UINT64_C(1) << 62, (UINT64_C(1) << 62) + 1,
	    UINT64_C(0x5555555555555555), UINT64_C(1) << 40 };
	hash_t proof[MERKLE_PROOF_MAX], root, old_root, froot;
	struct merkle_frontier f;
	struct uniform u;
	struct err_ctx e;
	uint64_t size, index, old;
	size_t i, j, n;

	(void)state;
	err_clear(&e);
	memset(&u, 0, sizeof(u));
	make_leaf(7, u.level[0]);
	for (i = 1; i < 64; i++)
		assert_int_equal(merkle_node_hash(u.level[i - 1],
		    u.level[i - 1], u.level[i]), 0);
	for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		size = huge[i];
		u.limit = size;
		u.reads = 0;
		assert_int_equal(merkle_root(size, uniform_get, &u, root, &e),
		    0);
		assert_int_equal(u.reads, __builtin_popcountll(size));
		assert_int_equal(merkle_frontier_load(&f, size, uniform_get, &u,
		    &e), 0);
		assert_int_equal(merkle_frontier_root(&f, froot), 0);
		assert_memory_equal(froot, root, 32);
		for (j = 0; j < 20; j++) {
			index = j < 2 ? (j == 0 ? 0 : size - 1) :
			    rng() % size;
			u.reads = 0;
			assert_int_equal(merkle_inclusion_proof(index, size,
			    uniform_get, &u, proof, &n, &e), 0);
			assert_true(u.reads <= READS_MAX);
			assert_true(n <= 63);
			assert_int_equal(merkle_inclusion_verify(index, size,
			    u.level[0], proof, n, root), 0);
			proof[n / 2][0] ^= 1;
			if (n > 0)
				assert_int_equal(merkle_inclusion_verify(index,
				    size, u.level[0], proof, n, root),
				    ERR_SIGNATURE);

			old = j < 2 ? (j == 0 ? 1 : size - 1) :
			    1 + rng() % size;
			if (old > size)
				old = size;
			u.limit = old;
			assert_int_equal(merkle_root(old, uniform_get, &u,
			    old_root, &e), 0);
			u.limit = size;
			u.reads = 0;
			assert_int_equal(merkle_consistency_proof(old, size,
			    uniform_get, &u, proof, &n, &e), 0);
			assert_true(u.reads <= READS_MAX);
			assert_true(n <= MERKLE_PROOF_MAX);
			assert_int_equal(merkle_consistency_verify(old, size,
			    old_root, root, proof, n), 0);
			if (n > 0) {
				proof[n - 1][5] ^= 1;
				assert_int_equal(merkle_consistency_verify(old,
				    size, old_root, root, proof, n),
				    ERR_SIGNATURE);
			}
		}
	}
	/* Past the largest size. */
	u.limit = MERKLE_SIZE_MAX;
	assert_int_equal(merkle_root(MERKLE_SIZE_MAX + 1, uniform_get, &u,
	    root, &e), ERR_INVALID_ARG);
	err_clear(&e);
	assert_int_equal(merkle_frontier_load(&f, MERKLE_SIZE_MAX + 1,
	    uniform_get, &u, &e), ERR_INVALID_ARG);
	err_clear(&e);
	assert_int_equal(merkle_inclusion_proof(0, MERKLE_SIZE_MAX + 1,
	    uniform_get, &u, proof, &n, &e), ERR_INVALID_ARG);
	err_clear(&e);
	assert_int_equal(merkle_consistency_proof(1, MERKLE_SIZE_MAX + 1,
	    uniform_get, &u, proof, &n, &e), ERR_INVALID_ARG);
	assert_int_equal(merkle_inclusion_verify(0, MERKLE_SIZE_MAX + 1,
	    u.level[0], proof, 0, root), ERR_SIGNATURE);
	assert_int_equal(merkle_consistency_verify(0, MERKLE_SIZE_MAX + 1,
	    root, root, proof, 0), ERR_SIGNATURE);

	/* A full frontier takes no leaf; one short of full takes the last. */
	err_clear(&e);
	u.limit = MERKLE_SIZE_MAX - 1;
	assert_int_equal(merkle_frontier_load(&f, MERKLE_SIZE_MAX - 1,
	    uniform_get, &u, &e), 0);
	assert_int_equal(f.count, 62);
	assert_int_equal(merkle_frontier_append(&f, u.level[0], NULL, NULL,
	    &e), 0);
	assert_true(f.size == MERKLE_SIZE_MAX);
	assert_int_equal(f.count, 63);
	u.limit = MERKLE_SIZE_MAX;
	assert_int_equal(merkle_root(MERKLE_SIZE_MAX, uniform_get, &u, root,
	    &e), 0);
	assert_int_equal(merkle_frontier_root(&f, froot), 0);
	assert_memory_equal(froot, root, 32);
	assert_int_equal(merkle_frontier_append(&f, u.level[0], NULL, NULL,
	    &e), ERR_TOO_LARGE);
	assert_true(f.size == MERKLE_SIZE_MAX);
}

/* A put that fails at level *arg. */
static int
failing_put(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[32], struct err_ctx *e)
{
	(void)hash;
	if ((int)level == *(int *)arg)
		return err_set(e, ERR_IO, "test store: cannot store node "
		    "(%u, %llu)", level, (unsigned long long)index);
	return 0;
}

/* Errors from the node store pass up unchanged; nothing half-done. */
static void
test_store_errors(void **state)
{
	hash_t proof[MERKLE_PROOF_MAX], root, leaf;
	struct merkle_frontier f, copy;
	struct err_ctx e;
	uint64_t at;
	size_t n;

	(void)state;
	tab.limit = 1000;
	for (at = 1; at <= 6; at++) {
		tab.fail_at = at;
		err_clear(&e);
		tab.reads = 0;
		assert_int_equal(merkle_root(1000, node_get, &tab, root, &e),
		    ERR_IO);
		assert_non_null(strstr(err_msg(&e), "unreadable"));
		err_clear(&e);
		tab.reads = 0;
		assert_int_equal(merkle_inclusion_proof(999, 1000, node_get,
		    &tab, proof, &n, &e), ERR_IO);
		assert_non_null(strstr(err_msg(&e), "unreadable"));
		err_clear(&e);
		tab.reads = 0;
		assert_int_equal(merkle_consistency_proof(999, 1000, node_get,
		    &tab, proof, &n, &e), ERR_IO);
		assert_non_null(strstr(err_msg(&e), "unreadable"));
		/* A load that fails leaves the frontier as it was. */
		merkle_frontier_init(&f);
		copy = f;
		err_clear(&e);
		tab.reads = 0;
		assert_int_equal(merkle_frontier_load(&f, 1000, node_get, &tab,
		    &e), ERR_IO);
		assert_memory_equal(&f, &copy, sizeof(f));
	}
	tab.fail_at = 0;

	/* A put that fails leaves the frontier unchanged, at any level. */
	tab.limit = 7;
	err_clear(&e);
	assert_int_equal(merkle_frontier_load(&f, 7, node_get, &tab, &e), 0);
	make_leaf(123456789, leaf);
	for (at = 0; at <= 3; at++) {
		int fail_level = (int)at;

		copy = f;
		err_clear(&e);
		assert_int_equal(merkle_frontier_append(&f, leaf, failing_put,
		    &fail_level, &e), ERR_IO);
		assert_non_null(strstr(err_msg(&e), "cannot store"));
		assert_memory_equal(&f, &copy, sizeof(f));
	}
	/* Without put, the append is the same as the table's. */
	assert_int_equal(merkle_frontier_append(&f, leaves[7], NULL, NULL, &e),
	    0);
	assert_int_equal(merkle_frontier_root(&f, root), 0);
	assert_memory_equal(root, ref_roots[8], 32);
}

static void
test_bad_args(void **state)
{
	hash_t proof[MERKLE_PROOF_MAX + 1], root;
	struct merkle_frontier f;
	struct err_ctx e;
	size_t n = 5;

	(void)state;
	err_clear(&e);
	tab.limit = 10;
	assert_int_equal(merkle_inclusion_proof(10, 10, node_get, &tab, proof,
	    &n, &e), ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err_msg(&e), "no leaf 10"));
	err_clear(&e);
	n = 5;
	assert_int_equal(merkle_consistency_proof(11, 10, node_get, &tab,
	    proof, &n, &e), ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_int_equal(merkle_consistency_verify(11, 10, ref_roots[10],
	    ref_roots[10], proof, 0), ERR_SIGNATURE);
	/* old == size: equal roots and nothing else. */
	assert_int_equal(merkle_consistency_verify(10, 10, ref_roots[10],
	    ref_roots[10], proof, 0), 0);
	assert_int_equal(merkle_consistency_verify(10, 10, ref_roots[10],
	    ref_roots[9], proof, 0), ERR_SIGNATURE);
	memcpy(proof[0], ref_roots[10], 32);
	assert_int_equal(merkle_consistency_verify(10, 10, ref_roots[10],
	    ref_roots[10], proof, 1), ERR_SIGNATURE);
	/* old == 0: the empty proof. */
	assert_int_equal(merkle_consistency_verify(0, 10, ref_roots[0],
	    ref_roots[10], proof, 0), 0);
	assert_int_equal(merkle_consistency_verify(0, 10, ref_roots[0],
	    ref_roots[10], proof, 1), ERR_SIGNATURE);
	/* An empty proof between different sizes. */
	assert_int_equal(merkle_consistency_verify(4, 10, ref_roots[4],
	    ref_roots[10], proof, 0), ERR_SIGNATURE);
	/* More hashes than any proof has. */
	memset(proof, 0, sizeof(proof));
	assert_int_equal(merkle_inclusion_verify(0, 10, leaves[0], proof,
	    MERKLE_PROOF_MAX + 1, ref_roots[10]), ERR_SIGNATURE);
	assert_int_equal(merkle_consistency_verify(3, 10, ref_roots[3],
	    ref_roots[10], proof, MERKLE_PROOF_MAX + 1), ERR_SIGNATURE);
	/* A frontier whose count does not match its size is refused. */
	merkle_frontier_init(&f);
	f.size = 3;
	f.count = 1;
	assert_int_equal(merkle_frontier_root(&f, root), ERR_INVALID_ARG);
	assert_int_equal(merkle_frontier_append(&f, leaves[0], NULL, NULL,
	    &e), ERR_INVALID_ARG);
}

/*
 * Known answers: the eight leaves of the RFC 6962 reference tests.  The
 * expected hashes were computed for this test by a separate few-line
 * Python script that applies the RFC 9162 definitions (MTH, PATH,
 * SUBPROOF) recursively with hashlib.sha256.
 */
static const char *const kat_roots[9] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct kat_proof {
	uint64_t a, b;   /* index and size, or old and size */
	size_t n;
	const char *hash[4];
};

static const struct kat_proof kat_paths[] = {
	{ 0, 8, 3, {
	    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 5, 8, 3, {
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 3, 1, {
	    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125" } },
	{ 4, 5, 1, {
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 3, 7, 3, {
	    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	    "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e" } },
};

static const struct kat_proof kat_consistency[] = {
	{ 1, 8, 3, {
	    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 6, 8, 3, {
	    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 5, 2, {
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
	{ 3, 7, 4, {
	    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
	    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	    "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e" } },
	{ 4, 8, 1, {
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
};

static void
unhex(const char *s, uint8_t out[32])
{
	size_t i;

	assert_int_equal(strlen(s), 64);
	for (i = 0; i < 32; i++) {
		unsigned int v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* A node table of up to 8 leaves for the known answers. */
struct kat_table {
	hash_t node[4][8];
	uint64_t limit;
};

static int
kat_get(void *arg, unsigned int level, uint64_t index, uint8_t out[32],
    struct err_ctx *e)
{
	struct kat_table *t = arg;

	(void)e;
	assert_true(level < 4 && index < (8u >> level));
	assert_true(((index + 1) << level) <= t->limit);
	memcpy(out, t->node[level][index], 32);
	return 0;
}

static int
kat_put(void *arg, unsigned int level, uint64_t index, const uint8_t h[32],
    struct err_ctx *e)
{
	struct kat_table *t = arg;

	(void)e;
	assert_true(level < 4 && index < (8u >> level));
	memcpy(t->node[level][index], h, 32);
	return 0;
}

static void
test_known_answers(void **state)
{
	static const uint8_t d6[] = { 0x50, 0x51, 0x52, 0x53, 0x54, 0x55,
	    0x56, 0x57 };
	static const uint8_t d7[] = { 0x60, 0x61, 0x62, 0x63, 0x64, 0x65,
	    0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f };
	static const struct { const uint8_t *p; size_t len; } data[8] = {
		{ (const uint8_t *)"", 0 },
		{ (const uint8_t *)"\x00", 1 },
		{ (const uint8_t *)"\x10", 1 },
		{ (const uint8_t *)"\x20\x21", 2 },
		{ (const uint8_t *)"\x30\x31", 2 },
		{ (const uint8_t *)"\x40\x41\x42\x43", 4 },
		{ d6, sizeof(d6) },
		{ d7, sizeof(d7) },
	};
	hash_t lh[8], proof[MERKLE_PROOF_MAX], want, root, old_root;
	struct kat_table t;
	struct merkle_frontier f;
	struct err_ctx e;
	size_t i, j, n;

	(void)state;
	memset(&t, 0, sizeof(t));
	err_clear(&e);
	merkle_frontier_init(&f);
	for (i = 0; i <= 8; i++) {
		unhex(kat_roots[i], want);
		t.limit = i;
		assert_int_equal(merkle_root(i, kat_get, &t, root, &e), 0);
		assert_memory_equal(root, want, 32);
		assert_int_equal(merkle_root_reference(lh, i, root), 0);
		assert_memory_equal(root, want, 32);
		assert_int_equal(merkle_frontier_root(&f, root), 0);
		assert_memory_equal(root, want, 32);
		if (i == 8)
			break;
		assert_int_equal(merkle_leaf_hash(data[i].p, data[i].len,
		    lh[i]), 0);
		assert_int_equal(merkle_frontier_append(&f, lh[i], kat_put, &t,
		    &e), 0);
	}
	t.limit = 8;
	for (i = 0; i < sizeof(kat_paths) / sizeof(kat_paths[0]); i++) {
		const struct kat_proof *k = &kat_paths[i];

		t.limit = k->b;
		assert_int_equal(merkle_inclusion_proof(k->a, k->b, kat_get, &t,
		    proof, &n, &e), 0);
		assert_int_equal(n, k->n);
		for (j = 0; j < n; j++) {
			unhex(k->hash[j], want);
			assert_memory_equal(proof[j], want, 32);
		}
		unhex(kat_roots[k->b], root);
		assert_int_equal(merkle_inclusion_verify(k->a, k->b, lh[k->a],
		    proof, n, root), 0);
	}
	for (i = 0; i < sizeof(kat_consistency) / sizeof(kat_consistency[0]);
	    i++) {
		const struct kat_proof *k = &kat_consistency[i];

		t.limit = k->b;
		assert_int_equal(merkle_consistency_proof(k->a, k->b, kat_get,
		    &t, proof, &n, &e), 0);
		assert_int_equal(n, k->n);
		for (j = 0; j < n; j++) {
			unhex(k->hash[j], want);
			assert_memory_equal(proof[j], want, 32);
		}
		unhex(kat_roots[k->a], old_root);
		unhex(kat_roots[k->b], root);
		assert_int_equal(merkle_consistency_verify(k->a, k->b,
		    old_root, root, proof, n), 0);
		assert_int_equal(merkle_consistency_verify(k->a, k->b, root,
		    old_root, proof, n), ERR_SIGNATURE);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_empty_and_one),
		cmocka_unit_test(test_roots),
		cmocka_unit_test(test_inclusion),
		cmocka_unit_test(test_consistency),
		cmocka_unit_test(test_reads_bounded),
		cmocka_unit_test(test_huge_sizes),
		cmocka_unit_test(test_store_errors),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests_name("merkle", tests, setup_tree,
	    teardown_tree);
}
