/*
 * wit-check.c - the witness's rules for extending a log's history.
 */
#include "config.h"

#include <string.h>

#include "wit-check.h"

enum wit_verdict
wit_check(const struct wit_held *h, uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n,
    const struct tlog_checkpoint *c)
{
	if (old > c->size)
		return WIT_BAD_OLD;
	/*
	 * Two checkpoints of one size with different roots, both signed by
	 * the log, prove a fork whatever the request claims to extend.
	 */
	if (h->have_at_size &&
	    memcmp(h->root_at_size, c->root, MERKLE_HASH_LEN) != 0)
		return WIT_FORK;
	if (old != h->size)
		return WIT_STALE;
	if (old == c->size) {
		if (n != 0)
			return WIT_BAD_PROOF;
		if (memcmp(h->root, c->root, MERKLE_HASH_LEN) != 0)
			return h->have ? WIT_FORK : WIT_BAD_PROOF;
		return h->have ? WIT_COSIGN_SAME : WIT_COSIGN_NEW;
	}
	if (merkle_consistency_verify(old, c->size, h->root, c->root, proof,
	    n) != 0)
		return WIT_BAD_PROOF;
	return WIT_COSIGN_NEW;
}

const char *
wit_verdict_reason(enum wit_verdict v)
{
	switch (v) {
	case WIT_FORK:
		return "fork: a checkpoint of a size already cosigned, with "
		    "another root";
	case WIT_BAD_PROOF:
		return "the consistency proof from the held checkpoint does "
		    "not verify";
	case WIT_COSIGN_NEW:
		return "extends the held checkpoint";
	case WIT_COSIGN_SAME:
		return "the held checkpoint";
	case WIT_BAD_OLD:
		return "old size larger than the checkpoint's";
	case WIT_STALE:
		return "old size is not the held size";
	}
	return "unknown";
}
