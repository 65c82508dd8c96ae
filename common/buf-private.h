/*
 * buf-private.h - struct buf layout, shared by buf.c and buf-getput.c only.
 */
#ifndef DEVID_BUF_PRIVATE_H
#define DEVID_BUF_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *d;     /* allocation, NULL while empty */
	size_t alloc;   /* bytes allocated at d */
	size_t size;    /* bytes written */
	size_t off;     /* read offset, <= size */
	size_t max;     /* size may never exceed this */
};

/* Makes room for len more bytes; 0, ERR_TOO_LARGE or ERR_ALLOC. */
int buf_grow(struct buf *b, size_t len);

#endif /* DEVID_BUF_PRIVATE_H */
