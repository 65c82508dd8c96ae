/*
 * buf-getput.c - typed, bounds-checked reads and writes on struct buf.
 */
#include "config.h"

#include <string.h>

#include "buf.h"
#include "buf-private.h"
#include "errors.h"

int
buf_reserve(struct buf *b, size_t len, uint8_t **out)
{
	int r;

	if ((r = buf_grow(b, len)) != 0)
		return r;
	*out = b->d + b->size;
	b->size += len;
	return 0;
}

int
buf_put(struct buf *b, const void *p, size_t len)
{
	uint8_t *dst;
	int r;

	if (len == 0)
		return 0;
	if ((r = buf_reserve(b, len, &dst)) != 0)
		return r;
	memcpy(dst, p, len);
	return 0;
}

int
buf_put_u8(struct buf *b, uint8_t v)
{
	return buf_put(b, &v, 1);
}

int
buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4];

	x[0] = (uint8_t)(v >> 24);
	x[1] = (uint8_t)(v >> 16);
	x[2] = (uint8_t)(v >> 8);
	x[3] = (uint8_t)v;
	return buf_put(b, x, sizeof(x));
}

int
buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	int i;

	for (i = 7; i >= 0; i--) {
		x[i] = (uint8_t)v;
		v >>= 8;
	}
	return buf_put(b, x, sizeof(x));
}

int
buf_put_lp(struct buf *b, const void *p, size_t len)
{
	uint8_t *dst;
	int r;

	if (len > UINT32_MAX)
		return ERR_TOO_LARGE;
	/* Reserve both parts at once so a failure leaves b unchanged. */
	if ((r = buf_reserve(b, 4 + len, &dst)) != 0)
		return r;
	dst[0] = (uint8_t)(len >> 24);
	dst[1] = (uint8_t)(len >> 16);
	dst[2] = (uint8_t)(len >> 8);
	dst[3] = (uint8_t)len;
	if (len > 0)
		memcpy(dst + 4, p, len);
	return 0;
}

int
buf_put_lp_str(struct buf *b, const char *s)
{
	return buf_put_lp(b, s, strlen(s));
}

int
buf_put_tag(struct buf *b, const char *tag)
{
	/* strlen + 1: the NUL terminator is part of the tag. */
	return buf_put(b, tag, strlen(tag) + 1);
}

int
buf_get(struct buf *b, void *p, size_t len)
{
	if (len > buf_len(b))
		return ERR_TRUNCATED;
	if (len > 0) {
		if (p != NULL)
			memcpy(p, b->d + b->off, len);
		b->off += len;
	}
	return 0;
}

int
buf_skip(struct buf *b, size_t len)
{
	return buf_get(b, NULL, len);
}

int
buf_get_u8(struct buf *b, uint8_t *v)
{
	return buf_get(b, v, 1);
}

int
buf_get_u32(struct buf *b, uint32_t *v)
{
	uint8_t x[4];
	int r;

	if ((r = buf_get(b, x, sizeof(x))) != 0)
		return r;
	*v = (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 |
	    (uint32_t)x[2] << 8 | (uint32_t)x[3];
	return 0;
}

int
buf_get_u64(struct buf *b, uint64_t *v)
{
	uint8_t x[8];
	uint64_t n = 0;
	int i, r;

	if ((r = buf_get(b, x, sizeof(x))) != 0)
		return r;
	for (i = 0; i < 8; i++)
		n = n << 8 | x[i];
	*v = n;
	return 0;
}

int
buf_get_lp(struct buf *b, const uint8_t **p, size_t *len, size_t max_len)
{
	const uint8_t *s;
	uint32_t n;

	if (buf_len(b) < 4)
		return ERR_TRUNCATED;
	s = b->d + b->off;
	n = (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 |
	    (uint32_t)s[2] << 8 | (uint32_t)s[3];
	if (n > max_len)
		return ERR_TOO_LARGE;
	if ((size_t)n > buf_len(b) - 4)
		return ERR_TRUNCATED;
	*p = s + 4;
	*len = n;
	b->off += 4 + (size_t)n;
	return 0;
}
