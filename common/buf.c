/*
 * buf.c - bounded byte buffers: allocation, growth and the read offset.
 * The typed get/put helpers are in buf-getput.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "buf-private.h"
#include "errors.h"

struct buf *
buf_new(size_t max_len)
{
	struct buf *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->max = max_len == 0 ? BUF_MAX_DEFAULT : max_len;
	return b;
}

struct buf *
buf_from(const void *p, size_t len, size_t max_len)
{
	struct buf *b;

	if ((b = buf_new(max_len)) == NULL)
		return NULL;
	if (buf_put(b, p, len) != 0) {
		buf_free(b);
		return NULL;
	}
	return b;
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	if (b->d != NULL) {
		OPENSSL_cleanse(b->d, b->alloc);
		free(b->d);
	}
	free(b);
}

void
buf_reset(struct buf *b)
{
	if (b == NULL)
		return;
	if (b->d != NULL)
		OPENSSL_cleanse(b->d, b->alloc);
	b->off = 0;
	b->size = 0;
}

const uint8_t *
buf_ptr(const struct buf *b)
{
	return b->d == NULL ? (const uint8_t *)"" : b->d + b->off;
}

size_t
buf_len(const struct buf *b)
{
	return b->size - b->off;
}

size_t
buf_max(const struct buf *b)
{
	return b->max;
}

int
buf_steal(struct buf *b, uint8_t **out, size_t *len_out)
{
	size_t len = buf_len(b);
	uint8_t *p;

	if ((p = malloc(len == 0 ? 1 : len)) == NULL)
		return ERR_ALLOC;
	if (len > 0)
		memcpy(p, b->d + b->off, len);
	buf_reset(b);
	*out = p;
	*len_out = len;
	return 0;
}

/*
 * Grows the allocation so that len more bytes fit.  On failure the buffer
 * is unchanged.  The old block is wiped before it is freed, so a secret
 * never survives in memory released by a resize.
 */
int
buf_grow(struct buf *b, size_t len)
{
	size_t need, nalloc;
	uint8_t *nd;

	if (len > b->max || b->size > b->max - len)
		return ERR_TOO_LARGE;
	need = b->size + len;
	if (need <= b->alloc)
		return 0;
	/* Compact first: consumed bytes are never needed again. */
	if (b->off > 0 && need - b->off <= b->alloc) {
		memmove(b->d, b->d + b->off, b->size - b->off);
		OPENSSL_cleanse(b->d + b->size - b->off, b->off);
		b->size -= b->off;
		b->off = 0;
		return 0;
	}
	nalloc = b->alloc < 256 ? 256 : b->alloc;
	while (nalloc < need)
		nalloc = nalloc > b->max / 2 ? b->max : nalloc * 2;
	if (nalloc > b->max)
		nalloc = b->max;
	if ((nd = malloc(nalloc)) == NULL)
		return ERR_ALLOC;
	if (b->d != NULL) {
		memcpy(nd, b->d, b->size);
		OPENSSL_cleanse(b->d, b->alloc);
		free(b->d);
	}
	b->d = nd;
	b->alloc = nalloc;
	return 0;
}
