/*
 * merkle.c - the RFC 9162 section 2.1 Merkle tree over stored nodes.
 *
 * Every subtree the RFC's recursions name is a range [begin, end) of
 * leaves where begin is a multiple of a power of two 2^m >= end - begin.
 * Its hash is that of the perfect stored nodes along the binary
 * representation of end - begin (largest first, each aligned because the
 * larger ones before it are), folded from the right: H(n1, H(n2, ...)).
 * So a range costs one stored-node read per set bit of its length: a
 * root reads popcount(size) nodes, and a proof fewer than two per level
 * of the tree (one per sibling, plus the bits of the one sibling range
 * on the right edge of the tree, plus those of a consistency proof's
 * base, which lie below the levels its siblings use).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "errors.h"
#include "merkle.h"

#define MERKLE_LEAF_PREFIX 0x00
#define MERKLE_NODE_PREFIX 0x01

/* --- hashing --- */

/*
 * A SHA-256 context that one operation reuses for all its hashes, set up
 * on first use, so that a proof costs one allocation rather than one per
 * node.  Start with MERKLE_HASHER_INIT; merkle_hasher_free on every path.
 */
struct merkle_hasher {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
};
#define MERKLE_HASHER_INIT { NULL, NULL }

static void
merkle_hasher_free(struct merkle_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	h->ctx = NULL;
	h->md = NULL;
}

/* SHA-256 of prefix || a || b (b may be NULL/0).  0 or ERR_CRYPTO. */
static int
merkle_hasher_run(struct merkle_hasher *h, uint8_t prefix, const uint8_t *a,
    size_t a_len, const uint8_t *b, size_t b_len,
    uint8_t out[MERKLE_HASH_LEN])
{
	unsigned int out_len = 0;

	if (h->ctx == NULL) {
		if ((h->md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
		    (h->ctx = EVP_MD_CTX_new()) == NULL) {
			merkle_hasher_free(h);
			return ERR_CRYPTO;
		}
	}
	if (EVP_DigestInit_ex(h->ctx, h->md, NULL) != 1 ||
	    EVP_DigestUpdate(h->ctx, &prefix, 1) != 1 ||
	    (a_len > 0 && EVP_DigestUpdate(h->ctx, a, a_len) != 1) ||
	    (b_len > 0 && EVP_DigestUpdate(h->ctx, b, b_len) != 1) ||
	    EVP_DigestFinal_ex(h->ctx, out, &out_len) != 1 ||
	    out_len != MERKLE_HASH_LEN)
		return ERR_CRYPTO;
	return 0;
}

/* H(0x01 || left || right); out may be left or right. */
static int
merkle_hasher_node(struct merkle_hasher *h, const uint8_t *left,
    const uint8_t *right, uint8_t out[MERKLE_HASH_LEN])
{
	return merkle_hasher_run(h, MERKLE_NODE_PREFIX, left, MERKLE_HASH_LEN,
	    right, MERKLE_HASH_LEN, out);
}

int
merkle_leaf_hash(const uint8_t *leaf, size_t len,
    uint8_t out[MERKLE_HASH_LEN])
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	int r;

	return_val_if_fail(leaf != NULL || len == 0, ERR_INVALID_ARG);
	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	r = merkle_hasher_run(&h, MERKLE_LEAF_PREFIX, leaf, len, NULL, 0, out);
	merkle_hasher_free(&h);
	return r;
}

int
merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN],
    const uint8_t right[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN])
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	int r;

	return_val_if_fail(left != NULL && right != NULL, ERR_INVALID_ARG);
	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	r = merkle_hasher_node(&h, left, right, out);
	merkle_hasher_free(&h);
	return r;
}

void
merkle_empty_root(uint8_t out[MERKLE_HASH_LEN])
{
	/* SHA-256(""), a constant, so that this cannot fail. */
	static const uint8_t empty[MERKLE_HASH_LEN] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
		0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
		0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
		0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};

	memcpy(out, empty, MERKLE_HASH_LEN);
}

/* --- subtrees from stored nodes --- */

#define MERKLE_ERR_SHA "merkle: SHA-256 of a tree node failed (OpenSSL); " \
	"check the OpenSSL installation"

/* The largest power of two strictly below n (n >= 2). */
static uint64_t
merkle_split(uint64_t n)
{
	return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

/*
 * The hash of leaves [begin, end) (begin < end), a subtree in the sense
 * above, from popcount(end - begin) stored nodes read through get: the
 * smallest (rightmost) first, so that the fold needs no buffer.
 */
static int
merkle_range_hash(struct merkle_hasher *h, uint64_t begin, uint64_t end,
    merkle_node_fn get, void *arg, uint8_t out[MERKLE_HASH_LEN],
    struct err_ctx *e)
{
	uint8_t node[MERKLE_HASH_LEN];
	uint64_t len = end - begin, pos = end;
	unsigned int level;
	int first = 1, r;

	return_val_if_fail(begin < end, ERR_INTERNAL);
	for (level = 0; level < 64; level++) {
		if ((len >> level & 1) == 0)
			continue;
		pos -= UINT64_C(1) << level;
		if ((r = get(arg, level, pos >> level, first ? out : node,
		    e)) != 0)
			return r;
		if (!first && merkle_hasher_node(h, node, out, out) != 0)
			return err_set(e, ERR_CRYPTO, MERKLE_ERR_SHA);
		first = 0;
	}
	return 0;
}

static int
merkle_size_check(uint64_t size, struct err_ctx *e)
{
	if (size > MERKLE_SIZE_MAX)
		return err_set(e, ERR_INVALID_ARG, "merkle: tree size %llu is "
		    "larger than the largest supported (2^63 - 1)",
		    (unsigned long long)size);
	return 0;
}

int
merkle_root(uint64_t size, merkle_node_fn get, void *arg,
    uint8_t root[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	int r;

	return_val_if_fail(get != NULL && root != NULL, ERR_INVALID_ARG);
	if ((r = merkle_size_check(size, e)) != 0)
		return r;
	if (size == 0) {
		merkle_empty_root(root);
		return 0;
	}
	r = merkle_range_hash(&h, 0, size, get, arg, root, e);
	merkle_hasher_free(&h);
	return r;
}

/*
 * RFC 9162 section 2.1.3.1, PATH(m, D[n]), unrolled from the top: each
 * step names the sibling of the half holding leaf index, so the siblings
 * come out root-first and are written from the end of the proof.  Once
 * the walk turns left into a perfect subtree every later sibling is one
 * stored node, so a proof reads at most depth + popcount(size) nodes.
 */
int
merkle_inclusion_proof(uint64_t index, uint64_t size,
    merkle_node_fn get, void *arg, uint8_t proof[][MERKLE_HASH_LEN],
    size_t *n, struct err_ctx *e)
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	uint8_t sibling[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint64_t begin = 0, end = size, k;
	size_t count = 0, i;
	int r;

	return_val_if_fail(get != NULL && proof != NULL && n != NULL,
	    ERR_INVALID_ARG);
	*n = 0;
	if ((r = merkle_size_check(size, e)) != 0)
		return r;
	if (index >= size)
		return err_set(e, ERR_INVALID_ARG, "merkle: no leaf %llu in a "
		    "tree of %llu leaves; ask for an index below the size",
		    (unsigned long long)index, (unsigned long long)size);
	/* At most 63 halvings below 2^63 leaves. */
	while (end - begin > 1 && count < MERKLE_PROOF_MAX) {
		k = merkle_split(end - begin);
		if (index < begin + k) {
			r = merkle_range_hash(&h, begin + k, end, get, arg,
			    sibling[count], e);
			end = begin + k;
		} else {
			r = merkle_range_hash(&h, begin, begin + k, get, arg,
			    sibling[count], e);
			begin += k;
		}
		if (r != 0)
			goto out;
		count++;
	}
	if (end - begin > 1) {
		r = err_set(e, ERR_INTERNAL, "merkle: inclusion proof longer "
		    "than %d hashes", MERKLE_PROOF_MAX);
		goto out;
	}
	for (i = 0; i < count; i++)
		memcpy(proof[i], sibling[count - 1 - i], MERKLE_HASH_LEN);
	*n = count;
	r = 0;
 out:
	merkle_hasher_free(&h);
	return r;
}

/*
 * RFC 9162 section 2.1.4.1, SUBPROOF(m, D[n], b), unrolled from the top
 * like the inclusion proof: the recursion appends each step's sibling
 * after the proof of the half it descends into, so the siblings come out
 * last-first; the base case (MTH(D[m]) when b is false) comes first.
 */
int
merkle_consistency_proof(uint64_t old, uint64_t size,
    merkle_node_fn get, void *arg, uint8_t proof[][MERKLE_HASH_LEN],
    size_t *n, struct err_ctx *e)
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	uint8_t sibling[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint64_t begin = 0, end = size, k;
	size_t count = 0, out = 0, i;
	int whole = 1, r;

	return_val_if_fail(get != NULL && proof != NULL && n != NULL,
	    ERR_INVALID_ARG);
	*n = 0;
	if ((r = merkle_size_check(size, e)) != 0)
		return r;
	if (old > size)
		return err_set(e, ERR_INVALID_ARG, "merkle: no consistency "
		    "proof from %llu leaves to fewer (%llu); the old size must "
		    "not exceed the new one", (unsigned long long)old,
		    (unsigned long long)size);
	if (old == 0 || old == size)
		return 0;
	/*
	 * Here begin < old < end throughout, so end - begin >= 2; at most
	 * 63 halvings below 2^63 leaves, plus the base.
	 */
	while (old != end && count < MERKLE_PROOF_MAX - 1) {
		k = merkle_split(end - begin);
		if (old - begin <= k) {
			r = merkle_range_hash(&h, begin + k, end, get, arg,
			    sibling[count], e);
			end = begin + k;
		} else {
			r = merkle_range_hash(&h, begin, begin + k, get, arg,
			    sibling[count], e);
			begin += k;
			whole = 0;
		}
		if (r != 0)
			goto out;
		count++;
	}
	if (old != end) {
		r = err_set(e, ERR_INTERNAL, "merkle: consistency proof longer "
		    "than %d hashes", MERKLE_PROOF_MAX);
		goto out;
	}
	if (!whole) {
		if ((r = merkle_range_hash(&h, begin, end, get, arg,
		    proof[out], e)) != 0)
			goto out;
		out++;
	}
	for (i = 0; i < count; i++)
		memcpy(proof[out++], sibling[count - 1 - i], MERKLE_HASH_LEN);
	*n = out;
	r = 0;
 out:
	merkle_hasher_free(&h);
	return r;
}

/* --- verification --- */

/* Shifts fn and sn right together until fn's lowest bit is set or fn is
 * 0 (RFC 9162 section 2.1.3.2 step 4b; 2.1.4.2 step 6b). */
static void
merkle_shift_to_set_bit(uint64_t *fn, uint64_t *sn)
{
	while (*fn != 0 && (*fn & 1) == 0) {
		*fn >>= 1;
		*sn >>= 1;
	}
}

int
merkle_inclusion_verify(uint64_t index, uint64_t size,
    const uint8_t leaf_hash[MERKLE_HASH_LEN],
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const uint8_t root[MERKLE_HASH_LEN])
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	uint8_t r[MERKLE_HASH_LEN];
	uint64_t fn, sn;
	size_t i;
	int ret = ERR_SIGNATURE;

	return_val_if_fail(leaf_hash != NULL && root != NULL, ERR_INVALID_ARG);
	return_val_if_fail(proof != NULL || n == 0, ERR_INVALID_ARG);
	if (index >= size || size > MERKLE_SIZE_MAX || n > MERKLE_PROOF_MAX)
		return ERR_SIGNATURE;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf_hash, MERKLE_HASH_LEN);
	for (i = 0; i < n; i++) {
		if (sn == 0)
			goto out;
		if ((fn & 1) != 0 || fn == sn) {
			if (merkle_hasher_node(&h, proof[i], r, r) != 0) {
				ret = ERR_CRYPTO;
				goto out;
			}
			if ((fn & 1) == 0)
				merkle_shift_to_set_bit(&fn, &sn);
		} else {
			if (merkle_hasher_node(&h, r, proof[i], r) != 0) {
				ret = ERR_CRYPTO;
				goto out;
			}
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn == 0 && CRYPTO_memcmp(r, root, MERKLE_HASH_LEN) == 0)
		ret = 0;
 out:
	merkle_hasher_free(&h);
	return ret;
}

/*
 * old == 0: every tree extends the empty one; old_root is not looked at
 * (a size-0 checkpoint with another root is for its parser to refuse).
 */
int
merkle_consistency_verify(uint64_t old, uint64_t size,
    const uint8_t old_root[MERKLE_HASH_LEN],
    const uint8_t root[MERKLE_HASH_LEN],
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n)
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	uint8_t fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
	uint64_t fn, sn;
	size_t i;
	int ret = ERR_SIGNATURE;

	return_val_if_fail(old_root != NULL && root != NULL, ERR_INVALID_ARG);
	return_val_if_fail(proof != NULL || n == 0, ERR_INVALID_ARG);
	if (old > size || size > MERKLE_SIZE_MAX || n > MERKLE_PROOF_MAX)
		return ERR_SIGNATURE;
	if (old == 0)
		return n == 0 ? 0 : ERR_SIGNATURE;
	if (old == size) {
		if (n != 0 ||
		    CRYPTO_memcmp(old_root, root, MERKLE_HASH_LEN) != 0)
			return ERR_SIGNATURE;
		return 0;
	}
	/* Step 1. */
	if (n == 0)
		return ERR_SIGNATURE;
	/*
	 * Step 2 prepends old_root when old is a power of two; rather than
	 * copy, i starts at the first hash after the (virtual) first one.
	 */
	if ((old & (old - 1)) == 0) {
		memcpy(fr, old_root, MERKLE_HASH_LEN);
		i = 0;
	} else {
		memcpy(fr, proof[0], MERKLE_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, MERKLE_HASH_LEN);
	fn = old - 1;
	sn = size - 1;
	while ((fn & 1) != 0) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < n; i++) {
		if (sn == 0)
			goto out;
		if ((fn & 1) != 0 || fn == sn) {
			if (merkle_hasher_node(&h, proof[i], fr, fr) != 0 ||
			    merkle_hasher_node(&h, proof[i], sr, sr) != 0) {
				ret = ERR_CRYPTO;
				goto out;
			}
			if ((fn & 1) == 0)
				merkle_shift_to_set_bit(&fn, &sn);
		} else {
			if (merkle_hasher_node(&h, sr, proof[i], sr) != 0) {
				ret = ERR_CRYPTO;
				goto out;
			}
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn == 0 && CRYPTO_memcmp(fr, old_root, MERKLE_HASH_LEN) == 0 &&
	    CRYPTO_memcmp(sr, root, MERKLE_HASH_LEN) == 0)
		ret = 0;
 out:
	merkle_hasher_free(&h);
	return ret;
}

/* --- frontiers --- */

void
merkle_frontier_init(struct merkle_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

/* On failure f is left unchanged. */
int
merkle_frontier_load(struct merkle_frontier *f, uint64_t size,
    merkle_node_fn get, void *arg, struct err_ctx *e)
{
	struct merkle_frontier t;
	uint64_t pos = 0;
	unsigned int level;
	int r;

	return_val_if_fail(f != NULL && get != NULL, ERR_INVALID_ARG);
	if ((r = merkle_size_check(size, e)) != 0)
		return r;
	merkle_frontier_init(&t);
	for (level = 64; level-- > 0;) {
		if ((size >> level & 1) == 0)
			continue;
		if ((r = get(arg, level, pos >> level, t.node[t.count],
		    e)) != 0)
			return r;
		t.count++;
		pos += UINT64_C(1) << level;
	}
	t.size = size;
	*f = t;
	return 0;
}

/* Whether f's node count is the one its size implies. */
static int
merkle_frontier_valid(const struct merkle_frontier *f)
{
	return f->size <= MERKLE_SIZE_MAX &&
	    f->count == (unsigned int)__builtin_popcountll(f->size);
}

/*
 * The new leaf is leaf f->size; with it the trailing one bits of f->size
 * carry: each merges the last frontier node (its left sibling) into a
 * node one level up.  Nothing in f changes until every put succeeded.
 */
int
merkle_frontier_append(struct merkle_frontier *f,
    const uint8_t leaf_hash[MERKLE_HASH_LEN], merkle_put_fn put, void *arg,
    struct err_ctx *e)
{
	struct merkle_hasher hs = MERKLE_HASHER_INIT;
	uint8_t h[MERKLE_HASH_LEN];
	uint64_t index;
	unsigned int level = 0, count;
	int r;

	return_val_if_fail(f != NULL && leaf_hash != NULL, ERR_INVALID_ARG);
	return_val_if_fail(merkle_frontier_valid(f), ERR_INVALID_ARG);
	if (f->size >= MERKLE_SIZE_MAX)
		return err_set(e, ERR_TOO_LARGE, "merkle: the tree is full "
		    "(2^63 - 1 leaves); no leaf can be appended");
	count = f->count;
	index = f->size;
	memcpy(h, leaf_hash, MERKLE_HASH_LEN);
	for (;;) {
		if (put != NULL && (r = put(arg, level, index, h, e)) != 0)
			goto out;
		if ((index & 1) == 0)
			break;
		/* count >= 1: index is odd, so f->size has this bit set. */
		if (merkle_hasher_node(&hs, f->node[--count], h, h) != 0) {
			r = err_set(e, ERR_CRYPTO, MERKLE_ERR_SHA);
			goto out;
		}
		level++;
		index >>= 1;
	}
	memcpy(f->node[count], h, MERKLE_HASH_LEN);
	f->count = count + 1;
	f->size++;
	r = 0;
 out:
	merkle_hasher_free(&hs);
	return r;
}

int
merkle_frontier_root(const struct merkle_frontier *f,
    uint8_t root[MERKLE_HASH_LEN])
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	unsigned int i;
	int r = 0;

	return_val_if_fail(f != NULL && root != NULL, ERR_INVALID_ARG);
	return_val_if_fail(merkle_frontier_valid(f), ERR_INVALID_ARG);
	if (f->count == 0) {
		merkle_empty_root(root);
		return 0;
	}
	memcpy(root, f->node[f->count - 1], MERKLE_HASH_LEN);
	for (i = f->count - 1; i-- > 0 && r == 0;)
		r = merkle_hasher_node(&h, f->node[i], root, root);
	merkle_hasher_free(&h);
	return r;
}

/* MTH(D[n]) of RFC 9162 section 2.1.1 over n >= 1 leaf hashes. */
static int
merkle_reference_range(struct merkle_hasher *h,
    const uint8_t leaves[][MERKLE_HASH_LEN], uint64_t n,
    uint8_t out[MERKLE_HASH_LEN])
{
	uint8_t left[MERKLE_HASH_LEN], right[MERKLE_HASH_LEN];
	uint64_t k;
	int r;

	if (n == 1) {
		memcpy(out, leaves[0], MERKLE_HASH_LEN);
		return 0;
	}
	k = merkle_split(n);
	if ((r = merkle_reference_range(h, leaves, k, left)) != 0 ||
	    (r = merkle_reference_range(h, leaves + k, n - k, right)) != 0)
		return r;
	return merkle_hasher_node(h, left, right, out);
}

int
merkle_root_reference(const uint8_t leaves[][MERKLE_HASH_LEN],
    uint64_t n, uint8_t root[MERKLE_HASH_LEN])
{
	struct merkle_hasher h = MERKLE_HASHER_INIT;
	int r;

	return_val_if_fail(root != NULL, ERR_INVALID_ARG);
	return_val_if_fail(leaves != NULL || n == 0, ERR_INVALID_ARG);
	if (n > MERKLE_SIZE_MAX)
		return ERR_INVALID_ARG;
	if (n == 0) {
		merkle_empty_root(root);
		return 0;
	}
	r = merkle_reference_range(&h, leaves, n, root);
	merkle_hasher_free(&h);
	return r;
}
