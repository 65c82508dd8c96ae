/*
 * tlog-test-util.c - small transparency logs in memory (see
 * tlog-test-util.h).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "tlog-test-util.h"

void
ttree_build(struct ttree *t, uint64_t n, unsigned int seed, uint64_t fork_at)
{
	char s[64];
	uint64_t i;

	assert_true(n <= TTREE_LEAVES_MAX);
	for (i = 0; i < n; i++) {
		snprintf(s, sizeof(s), "leaf %u %llu", i >= fork_at ? seed : 0,
		    (unsigned long long)i);
		assert_int_equal(merkle_leaf_hash((const uint8_t *)s,
		    strlen(s), t->leaf[i]), 0);
	}
	t->n = n;
}

int
ttree_node(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	const struct ttree *t = arg;
	uint64_t start = index << level, count = UINT64_C(1) << level;

	if (level >= 32 || start + count > t->n)
		return err_set(e, ERR_NOT_FOUND, "no node %u/%llu", level,
		    (unsigned long long)index);
	return merkle_root_reference(
	    (const uint8_t (*)[MERKLE_HASH_LEN])t->leaf + start, count, out);
}

int
ttree_log_sign(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	(void)e;
	return crypto_ecdsa_sign(arg, digest, sig);
}

void
ttree_log_vkey(EVP_PKEY *k, const char *name, struct tlog_vkey *vk)
{
	struct err_ctx e;
	uint8_t *spki = NULL;
	size_t len = 0;

	err_clear(&e);
	assert_int_equal(crypto_spki_export(k, &spki, &len), 0);
	assert_int_equal(tlog_vkey_log(name, spki, len, vk, &e), 0);
	free(spki);
}
