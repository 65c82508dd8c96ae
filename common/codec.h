/*
 * codec.h - base64url (RFC 4648 section 5, unpadded), standard base64
 * (section 4, padded) and lowercase hex.
 *
 * Decoders are strict, as PROTOCOL.md section 1 requires: padding (but
 * for the exact padding b64std_decode requires), whitespace, characters outside the alphabet and non-canonical trailing
 * bits are all rejected with ERR_FORMAT.
 */
#ifndef DEVID_CODEC_H
#define DEVID_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode len bytes, without the NUL. */
size_t b64url_encoded_len(size_t len);

/*
 * Encodes len bytes at p into a new NUL-terminated string in *out (the
 * caller frees it).  Returns 0 or ERR_ALLOC / ERR_TOO_LARGE.
 */
int b64url_encode(const uint8_t *p, size_t len, char **out);

/*
 * Encodes len bytes at p into the caller's out, which has room for
 * b64url_encoded_len(len) characters; writes exactly that many and no
 * NUL.  For building a larger text without an intermediate string.
 */
void b64url_encode_buf(const uint8_t *p, size_t len, char *out);

/*
 * Decodes the slen characters at s (s need not be NUL-terminated) into a
 * new array in *out of *out_len bytes (the caller frees it; a 1-byte
 * allocation for empty input).  Input that would decode to more than
 * max_len bytes fails with ERR_TOO_LARGE before anything is allocated.
 * Returns 0, ERR_FORMAT, ERR_TOO_LARGE or ERR_ALLOC; *out is untouched on
 * failure.
 */
int b64url_decode(const char *s, size_t slen, size_t max_len,
    uint8_t **out, size_t *out_len);

/*
 * Decodes into a caller buffer that must receive exactly want_len bytes:
 * anything shorter or longer is ERR_FORMAT.  For fixed-size fields.
 */
int b64url_decode_exact(const char *s, size_t slen, uint8_t *out,
    size_t want_len);

/* Writes 2*len lowercase hex digits and a NUL to out (2*len+1 bytes). */
void hex_encode(const uint8_t *p, size_t len, char *out);

/*
 * Decodes exactly 2*out_len lowercase hex digits at s into out.  Uppercase,
 * odd lengths and other characters are ERR_FORMAT.
 */
int hex_decode(const char *s, size_t slen, uint8_t *out, size_t out_len);

/*
 * 1 when s is exactly n lowercase hex digits followed by its NUL (an id
 * or a hash as text: no uppercase, no other character, no more), else 0.
 * NULL is 0.
 */
int hex_text_valid(const char *s, size_t n);

/*
 * Standard base64 (RFC 4648 section 4) with padding, as the C2SP text
 * formats of the transparency log use it.  b64std_encode() is
 * b64url_encode() in the other alphabet, with '=' padding to a multiple of
 * four characters.  b64std_decode() takes exactly canonical input: a
 * length that is a multiple of four, '=' only as the last one or two
 * characters of the last group, zero trailing bits, no whitespace;
 * anything else is ERR_FORMAT.  Otherwise as b64url_decode(): max_len
 * bounds the decoded bytes (ERR_TOO_LARGE before allocating), *out is a
 * new array (a 1-byte allocation for empty input) that the caller frees,
 * and is untouched on failure.
 */
int b64std_encode(const uint8_t *p, size_t len, char **out);
int b64std_decode(const char *s, size_t slen, size_t max_len,
    uint8_t **out, size_t *out_len);

#endif /* DEVID_CODEC_H */
