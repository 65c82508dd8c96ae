/*
 * tlog-test-util.h - small transparency logs held in memory, for the
 * witness's tests: their leaves, their stored nodes (computed from the
 * leaves on demand), and a software key that signs their checkpoints as
 * a directory would.  The helpers fail the running cmocka test on error.
 */
#ifndef DEVID_TLOG_TEST_UTIL_H
#define DEVID_TLOG_TEST_UTIL_H

#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

#define TTREE_LEAVES_MAX 64

struct ttree {
	uint8_t leaf[TTREE_LEAVES_MAX][MERKLE_HASH_LEN];
	uint64_t n;
};

/*
 * n leaves (at most TTREE_LEAVES_MAX); leaves from fork_at on depend on
 * seed, so two trees built with other seeds share their first fork_at
 * leaves and differ after.
 */
void ttree_build(struct ttree *t, uint64_t n, unsigned int seed,
    uint64_t fork_at);

/* The merkle_node_fn of a struct ttree (arg), rebuilt from its leaves. */
int ttree_node(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e);

/* The tlog_ecdsa_sign_fn of a software P-256 key (arg, an EVP_PKEY *). */
int ttree_log_sign(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e);

/* The vkey of a log named name signing with the P-256 key k. */
void ttree_log_vkey(EVP_PKEY *k, const char *name, struct tlog_vkey *vk);

#endif /* DEVID_TLOG_TEST_UTIL_H */
