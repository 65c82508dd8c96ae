/*
 * stream.h - a chunked AEAD for large blobs (attachments), in constant
 * memory, in the style of the STREAM construction (Hoang, Reyhanitabar,
 * Rogaway, Vizar 2015) as used by age and Tink.
 *
 * Design.  A blob is encrypted under a 32-byte content key K that travels
 * elsewhere (inside an envelope's encrypted payload).  Each blob starts
 * with a header holding a fresh 32-byte random salt, and its segments are
 * sealed with AES-256-GCM under a per-blob key
 *
 *     BK = HKDF-SHA256(salt = header.salt, IKM = K,
 *                      info = "devid stream v1" || header)   (32 bytes)
 *
 * so one K may encrypt any number of blobs: (key, nonce) pairs never
 * repeat across blobs unless two 256-bit salts collide.  Inside one blob
 * the nonce is the segment counter and a final flag, so it never repeats
 * inside the blob either, and the order, the count and the end of the
 * segments are all authenticated: a reordered, duplicated, dropped or
 * spliced segment fails its tag, and so do a truncation (the last segment
 * present was not sealed as final) and an extension (the segment before
 * it was).  The whole header is in the HKDF info, so any change to it
 * (version, segment size, salt) gives another key and the first segment
 * fails.  An empty plaintext is one final segment with no plaintext.
 *
 * Byte format (all integers big-endian):
 *
 *   blob    = header || segment_0 || ... || segment_n      (n >= 0)
 *   header  = magic "DVST" (44 56 53 54)                   4 bytes
 *          || version 0x01                                 1 byte
 *          || segment_len L (u32, 16 <= L <= 1048576)      4 bytes
 *          || salt (random)                                32 bytes
 *                                                          (41 bytes)
 *   segment_i = AES-256-GCM-Seal(BK, nonce_i, aad = empty, P_i)
 *             = ciphertext (|P_i| bytes) || tag (16 bytes)
 *   nonce_i = 00 00 00 00 00 00 00 || u32 i || last        12 bytes
 *             last = 0x01 for segment_n, 0x00 for all others
 *
 * P_0 .. P_{n-1} hold exactly L plaintext bytes each; P_n holds 1 .. L
 * bytes, or 0 bytes only when n = 0 (empty plaintext).  So a plaintext of
 * length N gives n + 1 = max(1, ceil(N / L)) segments and a blob of
 * 41 + N + 16 * (n + 1) bytes (stream_ciphertext_len).  At most 2^32
 * segments.  The default L is 65536 (STREAM_SEGMENT_DEFAULT): large
 * enough that the per-segment cost (one GCM init and tag, 16 bytes) is
 * below 0.1 %, small enough that both ends hold only ~130 KiB.
 *
 * A decryptor cannot tell where a segment ends before it sees either more
 * bytes or the end of input, so it holds back one full segment; a
 * non-final segment is released only once bytes after it have arrived,
 * and the last one only by stream_dec_finish().  Every byte released has
 * been authenticated, but a caller must still treat output as provisional
 * until stream_dec_finish() returns 0 (a truncated blob releases a valid
 * prefix first).
 *
 * Errors: ERR_FORMAT for a bad header, for an empty final segment after
 * others, and for data after a full-length final segment; ERR_TRUNCATED
 * when the input ends inside the header, before any segment, or right
 * after a complete non-final segment (the final one is missing);
 * ERR_DECRYPT for every other authentication failure (corruption, wrong
 * key, reordering, splicing, a cut inside a segment, or bytes after a
 * short final segment, which cannot be told apart from a corrupt one).
 */
#ifndef DEVID_STREAM_H
#define DEVID_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define STREAM_KEY_LEN 32
#define STREAM_SALT_LEN 32
#define STREAM_TAG_LEN 16
#define STREAM_VERSION 1
#define STREAM_HEADER_LEN 41
#define STREAM_SEGMENT_MIN 16u
#define STREAM_SEGMENT_MAX (1u << 20)
#define STREAM_SEGMENT_DEFAULT 65536u

/* The parsed form of a blob header. */
struct stream_header {
	uint8_t version;                /* STREAM_VERSION */
	uint32_t segment_len;           /* plaintext bytes per segment */
	uint8_t salt[STREAM_SALT_LEN];
};

/*
 * Parses the first STREAM_HEADER_LEN bytes of p (len may be larger; the
 * rest is ignored) into *h.  0; ERR_TRUNCATED when len is too short;
 * ERR_FORMAT (message in e) for a wrong magic, an unknown version or a
 * segment length outside STREAM_SEGMENT_MIN .. STREAM_SEGMENT_MAX.  *h is
 * untouched on failure.
 */
int stream_header_parse(const uint8_t *p, size_t len, struct stream_header *h,
    struct err_ctx *e);

/* Writes h in its STREAM_HEADER_LEN-byte form.  0 or ERR_INVALID_ARG. */
int stream_header_format(const struct stream_header *h,
    uint8_t out[STREAM_HEADER_LEN]);

/*
 * The exact blob length for plaintext_len bytes in segments of
 * segment_len, or 0 when segment_len is out of range or the plaintext
 * would need more than 2^32 segments or overflow 64 bits.
 */
uint64_t stream_ciphertext_len(uint64_t plaintext_len, uint32_t segment_len);

/*
 * Output callback: receives len bytes at p (ciphertext from an
 * encryptor, authenticated plaintext from a decryptor).  Returns 0, or an
 * ERR_* code that stops the operation and is returned by the call that
 * emitted.  p is only valid during the call.
 */
typedef int (*stream_emit_fn)(void *arg, const uint8_t *p, size_t len);

struct stream_enc;
struct stream_dec;

/*
 * A new encryptor under key, with segments of segment_len plaintext bytes
 * (0 means STREAM_SEGMENT_DEFAULT).  Draws the salt and derives the blob
 * key; the key is not kept.  Output goes to emit(arg, ...), the header
 * with the first segment.  0, ERR_INVALID_ARG, ERR_ALLOC or ERR_CRYPTO;
 * *out is NULL on failure.
 */
int stream_enc_new(const uint8_t key[STREAM_KEY_LEN], uint32_t segment_len,
    stream_emit_fn emit, void *arg, struct stream_enc **out,
    struct err_ctx *e);

/*
 * Feeds len plaintext bytes (any size, also 0).  Full segments are
 * sealed and emitted as soon as it is known they are not the last; at
 * most one segment stays buffered.  0, or ERR_TOO_LARGE (more than 2^32
 * segments), ERR_CRYPTO, or an error from emit; after an error or
 * finish, the encryptor only returns errors.
 */
int stream_enc_update(struct stream_enc *s, const void *pt, size_t len,
    struct err_ctx *e);

/* Seals and emits the final segment (and the header for an empty blob).
 * 0 or as stream_enc_update. */
int stream_enc_finish(struct stream_enc *s, struct err_ctx *e);

/* Frees s, wiping the buffered plaintext and the cipher state.  NULL is
 * fine. */
void stream_enc_free(struct stream_enc *s);

/*
 * A new decryptor under key.  Authenticated plaintext goes to
 * emit(arg, ...), one segment per call (never an empty call).  The header
 * is parsed from the first bytes fed; buffers are sized by its segment
 * length (at most ~2 MiB for STREAM_SEGMENT_MAX).  0, ERR_INVALID_ARG or
 * ERR_ALLOC.
 */
int stream_dec_new(const uint8_t key[STREAM_KEY_LEN], stream_emit_fn emit,
    void *arg, struct stream_dec **out, struct err_ctx *e);

/*
 * Feeds len ciphertext bytes (any size, also 0).  0, or ERR_FORMAT /
 * ERR_DECRYPT as described at the top, ERR_ALLOC, ERR_CRYPTO, or an error
 * from emit.  Errors are sticky: the decryptor then only returns errors.
 */
int stream_dec_update(struct stream_dec *s, const void *ct, size_t len,
    struct err_ctx *e);

/*
 * Ends the input: authenticates the held-back segment as the final one and
 * emits it.  0 only when the blob was complete and nothing followed its
 * final segment; otherwise ERR_TRUNCATED, ERR_DECRYPT, ERR_FORMAT (see
 * the top) or an error from emit.
 */
int stream_dec_finish(struct stream_dec *s, struct err_ctx *e);

/* Segment length from the parsed header, 0 before it is complete. */
uint32_t stream_dec_segment_len(const struct stream_dec *s);

/* Frees s, wiping buffers and cipher state.  NULL is fine. */
void stream_dec_free(struct stream_dec *s);

/* What the fd functions report. */
struct stream_fd_result {
	uint64_t plaintext_len;
	uint64_t ciphertext_len;
	uint8_t ciphertext_sha256[32];  /* of all ciphertext bytes */
};

/*
 * Reads in_fd to its end, encrypts under key with segment_len (0 =
 * default) and writes the blob to out_fd, computing the SHA-256 of the
 * blob as it passes.  Memory does not depend on the size.  Retries on
 * EINTR and short writes.  0 and *res filled (res may be NULL), or
 * ERR_IO (message names the failing side), ERR_TOO_LARGE, ERR_CRYPTO,
 * ERR_ALLOC.  On failure out_fd holds a partial blob: write to a
 * temporary file and rename on success.
 */
int stream_encrypt_fd(int in_fd, int out_fd,
    const uint8_t key[STREAM_KEY_LEN], uint32_t segment_len,
    struct stream_fd_result *res, struct err_ctx *e);

/*
 * Reads a blob from in_fd to its end, hashing it, and writes the
 * authenticated plaintext to out_fd.  When expect_sha256 is not NULL the
 * blob's SHA-256 must equal it, else ERR_DECRYPT.  0 and *res filled, or
 * the decryptor's errors, or ERR_IO.  On failure out_fd may hold a
 * verified prefix of the plaintext: write to a temporary file, remove it
 * on failure and rename it only on success.
 */
int stream_decrypt_fd(int in_fd, int out_fd,
    const uint8_t key[STREAM_KEY_LEN], const uint8_t *expect_sha256,
    struct stream_fd_result *res, struct err_ctx *e);

#endif /* DEVID_STREAM_H */
