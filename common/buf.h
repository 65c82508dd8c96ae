/*
 * buf.h - bounded byte buffers.
 *
 * Everything that comes off a wire or a disk is read through a struct buf,
 * and every transcript is written into one.  A buffer has a maximum size
 * fixed at creation; a put that would grow past it fails with ERR_TOO_LARGE
 * and leaves the buffer unchanged.  Reads consume from an internal offset; a
 * get that would read past the end fails with ERR_TRUNCATED and consumes
 * nothing.  All integers are big-endian as in PROTOCOL.md section 1.
 */
#ifndef DEVID_BUF_H
#define DEVID_BUF_H

#include <stddef.h>
#include <stdint.h>

/* The default maximum: 64 MiB, larger than any devid object. */
#define BUF_MAX_DEFAULT ((size_t)64 * 1024 * 1024)

struct buf;

/*
 * Returns a new empty buffer that may grow to max_len bytes (0 means
 * BUF_MAX_DEFAULT), or NULL when out of memory.  Free with buf_free().
 */
struct buf *buf_new(size_t max_len);

/*
 * Returns a new buffer holding a copy of the len bytes at p, with a maximum
 * of max_len (0: BUF_MAX_DEFAULT); NULL when out of memory or len > max.
 */
struct buf *buf_from(const void *p, size_t len, size_t max_len);

/* Frees b (NULL is fine).  The contents are wiped first: buffers often hold
 * secrets, and wiping everything is cheaper than remembering which do. */
void buf_free(struct buf *b);

/* Empties b (wiping the old contents) and rewinds the read offset. */
void buf_reset(struct buf *b);

/* Unread bytes: from the read offset to the end. */
const uint8_t *buf_ptr(const struct buf *b);
size_t buf_len(const struct buf *b);
/* The maximum given at creation. */
size_t buf_max(const struct buf *b);

/*
 * Hands the contents (unread part) to the caller as a malloc'd array and
 * its length, and empties b.  Returns 0 or ERR_ALLOC.  An empty buffer gives
 * a valid 1-byte allocation and *len_out = 0.  The caller frees the array.
 */
int buf_steal(struct buf *b, uint8_t **out, size_t *len_out);

/* --- writing; each returns 0, ERR_TOO_LARGE or ERR_ALLOC --- */
int buf_put(struct buf *b, const void *p, size_t len);
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
/* lp(x): a u32 length then the bytes; ERR_TOO_LARGE when len > UINT32_MAX. */
int buf_put_lp(struct buf *b, const void *p, size_t len);
/* lp(s) of a NUL-terminated string, without the NUL. */
int buf_put_lp_str(struct buf *b, const char *s);
/* A domain tag: the ASCII text and one NUL byte, not length-prefixed. */
int buf_put_tag(struct buf *b, const char *tag);
/*
 * Reserves len bytes at the end and returns a pointer to them in *out for
 * the caller to fill; the pointer is valid until the next put.
 */
int buf_reserve(struct buf *b, size_t len, uint8_t **out);

/* --- reading; each returns 0 or ERR_TRUNCATED and consumes nothing on
 * failure --- */
int buf_get(struct buf *b, void *p, size_t len);
int buf_get_u8(struct buf *b, uint8_t *v);
int buf_get_u32(struct buf *b, uint32_t *v);
int buf_get_u64(struct buf *b, uint64_t *v);
/*
 * Reads lp(x) and points *p into the buffer (valid until b changes) with
 * *len its length.  Fails with ERR_TOO_LARGE when the declared length is
 * larger than max_len, before looking at the bytes.
 */
int buf_get_lp(struct buf *b, const uint8_t **p, size_t *len, size_t max_len);
/* Skips len bytes. */
int buf_skip(struct buf *b, size_t len);

#endif /* DEVID_BUF_H */
