/*
 * merkle.h - the RFC 9162 (Certificate Transparency 2.0) Merkle tree.
 *
 * Leaf hash H(0x00 || leaf), node hash H(0x01 || left || right), and the
 * root of the empty tree H("").  The global transparency log of a devid
 * directory (docs/protocol.md section 7) is such a tree.
 *
 * A *stored node* (level, index) is the root of the perfect subtree of
 * 2^level leaves that starts at leaf index << level; level 0 holds the
 * leaf hashes.  The directory stores every stored node once it is complete
 * and never changes it.  Every root, inclusion proof and consistency proof
 * is computed from O(log n) stored nodes, read through a merkle_node_fn,
 * never by rebuilding the tree.
 *
 * A *frontier* (compact range) is the list of stored nodes that make up a
 * tree of size n: one per set bit of n, largest first.  Appending a leaf
 * to a frontier yields the nodes that the leaf completes; a monitor keeps
 * one to check that the leaves it reads add up to a checkpoint's root.
 *
 * Everything here is pure computation on caller memory; no allocation.
 */
#ifndef DEVID_MERKLE_H
#define DEVID_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define MERKLE_HASH_LEN 32
/* Hashes in any proof, and nodes in any frontier, for sizes below 2^63. */
#define MERKLE_PROOF_MAX 64
/* The largest tree size accepted anywhere (2^63 - 1). */
#define MERKLE_SIZE_MAX UINT64_C(0x7fffffffffffffff)

/* H(0x00 || leaf). */
int merkle_leaf_hash(const uint8_t *leaf, size_t len,
    uint8_t out[MERKLE_HASH_LEN]);
/* H(0x01 || left || right). */
int merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN],
    const uint8_t right[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN]);
/* H(""), the root of the empty tree. */
void merkle_empty_root(uint8_t out[MERKLE_HASH_LEN]);

/*
 * Reads the stored node (level, index) into out.  The caller of the
 * functions below only asks for nodes that are complete in the tree size
 * it names.  Returns 0, or a negative ERR_* with e set (the error is
 * passed up unchanged).
 */
typedef int (*merkle_node_fn)(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e);

/* The root of the tree of the first size leaves; size 0 gives H(""). */
int merkle_root(uint64_t size, merkle_node_fn get, void *arg,
    uint8_t root[MERKLE_HASH_LEN], struct err_ctx *e);

/*
 * The RFC 9162 section 2.1.3.1 inclusion proof of leaf index in the tree
 * of size leaves (index < size), into proof (room for MERKLE_PROOF_MAX
 * hashes); *n gets the number of hashes.  ERR_INVALID_ARG for index >=
 * size.
 */
int merkle_inclusion_proof(uint64_t index, uint64_t size,
    merkle_node_fn get, void *arg, uint8_t proof[][MERKLE_HASH_LEN],
    size_t *n, struct err_ctx *e);

/*
 * The RFC 9162 section 2.1.4.1 consistency proof from the tree of size
 * old to the tree of size size (old <= size), into proof as above.  The
 * proof is empty when old is 0 or old == size.  ERR_INVALID_ARG for old >
 * size.
 */
int merkle_consistency_proof(uint64_t old, uint64_t size,
    merkle_node_fn get, void *arg, uint8_t proof[][MERKLE_HASH_LEN],
    size_t *n, struct err_ctx *e);

/*
 * RFC 9162 section 2.1.3.2: whether proof (n hashes) shows that the leaf
 * whose hash is leaf_hash is leaf index of the tree of size size whose
 * root is root.  0 when it does; ERR_SIGNATURE when the proof does not
 * verify (wrong hashes, wrong length, index >= size).
 */
int merkle_inclusion_verify(uint64_t index, uint64_t size,
    const uint8_t leaf_hash[MERKLE_HASH_LEN],
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const uint8_t root[MERKLE_HASH_LEN]);

/*
 * RFC 9162 section 2.1.4.2: whether proof (n hashes) shows that the tree
 * of size old with root old_root is a prefix of the tree of size size
 * with root root.  old == size requires an empty proof and equal roots;
 * old == 0 requires an empty proof.  0 when it does; ERR_SIGNATURE when
 * not (including old > size).
 */
int merkle_consistency_verify(uint64_t old, uint64_t size,
    const uint8_t old_root[MERKLE_HASH_LEN],
    const uint8_t root[MERKLE_HASH_LEN],
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n);

/* A compact range of the first size leaves: count nodes, largest first. */
struct merkle_frontier {
	uint64_t size;
	unsigned int count;
	uint8_t node[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
};

/* The frontier of the empty tree. */
void merkle_frontier_init(struct merkle_frontier *f);

/* The frontier of the tree of size leaves, from its stored nodes. */
int merkle_frontier_load(struct merkle_frontier *f, uint64_t size,
    merkle_node_fn get, void *arg, struct err_ctx *e);

/*
 * Called for each stored node a new leaf completes, level 0 (the leaf
 * hash itself) first.  Same return convention as merkle_node_fn.
 */
typedef int (*merkle_put_fn)(void *arg, unsigned int level, uint64_t index,
    const uint8_t hash[MERKLE_HASH_LEN], struct err_ctx *e);

/*
 * Appends the leaf with hash leaf_hash; put (may be NULL) gets every
 * stored node it completes.  When put fails, f is left unchanged and its
 * error returned.  ERR_TOO_LARGE at MERKLE_SIZE_MAX.
 */
int merkle_frontier_append(struct merkle_frontier *f,
    const uint8_t leaf_hash[MERKLE_HASH_LEN], merkle_put_fn put, void *arg,
    struct err_ctx *e);

/* The root of the tree the frontier describes. */
int merkle_frontier_root(const struct merkle_frontier *f,
    uint8_t root[MERKLE_HASH_LEN]);

/*
 * The reference: the root of n leaf hashes by the recursive definition of
 * RFC 9162 section 2.1.1, rebuilding everything.  For tests and tools;
 * uses O(log n) stack.
 */
int merkle_root_reference(const uint8_t leaves[][MERKLE_HASH_LEN],
    uint64_t n, uint8_t root[MERKLE_HASH_LEN]);

#endif /* DEVID_MERKLE_H */
