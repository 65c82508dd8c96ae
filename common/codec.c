/*
 * codec.c - strict base64url and hex.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "errors.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
b64url_encoded_len(size_t len)
{
	return (len / 3) * 4 + ((len % 3) == 0 ? 0 : (len % 3) + 1);
}

void
b64url_encode_buf(const uint8_t *p, size_t len, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o] = b64url_alphabet[(v >> 18) & 63];
		out[o + 1] = b64url_alphabet[(v >> 12) & 63];
		out[o + 2] = b64url_alphabet[(v >> 6) & 63];
		out[o + 3] = b64url_alphabet[v & 63];
		o += 4;
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
	}
}

int
b64url_encode(const uint8_t *p, size_t len, char **out)
{
	size_t olen;
	char *s;

	if (len > (SIZE_MAX / 4) * 3 - 3)
		return ERR_TOO_LARGE;
	olen = b64url_encoded_len(len);
	if ((s = malloc(olen + 1)) == NULL)
		return ERR_ALLOC;
	b64url_encode_buf(p, len, s);
	s[olen] = '\0';
	*out = s;
	return 0;
}

/* Value of each byte in the URL alphabet, -1 outside it: a table, since
 * decoding megabyte bodies one branchy comparison at a time is slow. */
static const signed char b64url_table[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int
b64url_value(unsigned char c)
{
	return b64url_table[c];
}

/*
 * The same table four times, each entry already shifted to its place in
 * a group's 24 bits, with bit 24 set for a character outside the
 * alphabet: a group is then four loads and three ORs.
 */
#define B64URL_V(c) ((c) >= 'A' && (c) <= 'Z' ? (c) - 'A' : \
	(c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26 : \
	(c) >= '0' && (c) <= '9' ? (c) - '0' + 52 : \
	(c) == '-' ? 62 : (c) == '_' ? 63 : -1)
#define B64URL_BAD 0x1000000u
#define B64URL_AT(c, shift) (B64URL_V(c) < 0 ? B64URL_BAD : \
	(uint32_t)B64URL_V(c) << (shift))
#define B64URL_R4(s, n) B64URL_AT((n), s), B64URL_AT((n) + 1, s), \
	B64URL_AT((n) + 2, s), B64URL_AT((n) + 3, s)
#define B64URL_R16(s, n) B64URL_R4(s, n), B64URL_R4(s, (n) + 4), \
	B64URL_R4(s, (n) + 8), B64URL_R4(s, (n) + 12)
#define B64URL_R64(s, n) B64URL_R16(s, n), B64URL_R16(s, (n) + 16), \
	B64URL_R16(s, (n) + 32), B64URL_R16(s, (n) + 48)
#define B64URL_R256(s) B64URL_R64(s, 0), B64URL_R64(s, 64), \
	B64URL_R64(s, 128), B64URL_R64(s, 192)

static const uint32_t b64url_d0[256] = { B64URL_R256(18) };
static const uint32_t b64url_d1[256] = { B64URL_R256(12) };
static const uint32_t b64url_d2[256] = { B64URL_R256(6) };
static const uint32_t b64url_d3[256] = { B64URL_R256(0) };

/*
 * Decodes into out, which has room for the exact decoded length.  There
 * is no branch per character: a character outside the alphabet is
 * collected in `bad` and judged once at the end (out then holds garbage,
 * which the callers discard).
 */
static int
b64url_decode_into(const char *s, size_t slen, uint8_t *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, o = 0, rem = slen % 4;
	uint32_t v, bad = 0;
	int a, b, c;

	for (i = 0; i + 4 <= slen; i += 4) {
		v = b64url_d0[u[i]] | b64url_d1[u[i + 1]] |
		    b64url_d2[u[i + 2]] | b64url_d3[u[i + 3]];
		bad |= v;
		out[o] = (uint8_t)(v >> 16);
		out[o + 1] = (uint8_t)(v >> 8);
		out[o + 2] = (uint8_t)v;
		o += 3;
	}
	if ((bad & B64URL_BAD) != 0)
		return ERR_FORMAT;
	if (rem == 2) {
		if ((a = b64url_value(u[i])) < 0 ||
		    (b = b64url_value(u[i + 1])) < 0)
			return ERR_FORMAT;
		if ((b & 0x0f) != 0)	/* non-canonical trailing bits */
			return ERR_FORMAT;
		out[o++] = (uint8_t)(a << 2 | b >> 4);
	} else if (rem == 3) {
		if ((a = b64url_value(u[i])) < 0 ||
		    (b = b64url_value(u[i + 1])) < 0 ||
		    (c = b64url_value(u[i + 2])) < 0)
			return ERR_FORMAT;
		if ((c & 0x03) != 0)
			return ERR_FORMAT;
		out[o++] = (uint8_t)(a << 2 | b >> 4);
		out[o++] = (uint8_t)(b << 4 | c >> 2);
	}
	return 0;
}

/* Decoded length of slen characters, or ERR_FORMAT for an impossible one. */
static int
b64url_decoded_len(size_t slen, size_t *len)
{
	if (slen % 4 == 1)
		return ERR_FORMAT;
	*len = (slen / 4) * 3 + (slen % 4 == 0 ? 0 : slen % 4 - 1);
	return 0;
}

int
b64url_decode(const char *s, size_t slen, size_t max_len,
    uint8_t **out, size_t *out_len)
{
	size_t len;
	uint8_t *p;
	int r;

	if ((r = b64url_decoded_len(slen, &len)) != 0)
		return r;
	if (len > max_len)
		return ERR_TOO_LARGE;
	if ((p = malloc(len == 0 ? 1 : len)) == NULL)
		return ERR_ALLOC;
	if ((r = b64url_decode_into(s, slen, p)) != 0) {
		free(p);
		return r;
	}
	*out = p;
	*out_len = len;
	return 0;
}

int
b64url_decode_exact(const char *s, size_t slen, uint8_t *out, size_t want_len)
{
	size_t len;
	int r;

	if ((r = b64url_decoded_len(slen, &len)) != 0)
		return r;
	if (len != want_len)
		return ERR_FORMAT;
	return b64url_decode_into(s, slen, out);
}

void
hex_encode(const uint8_t *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
hex_decode(const char *s, size_t slen, uint8_t *out, size_t out_len)
{
	size_t i;
	int hi, lo;

	if (out_len > SIZE_MAX / 2 || slen != 2 * out_len)
		return ERR_FORMAT;
	for (i = 0; i < out_len; i++) {
		if ((hi = hex_value((unsigned char)s[2 * i])) < 0 ||
		    (lo = hex_value((unsigned char)s[2 * i + 1])) < 0)
			return ERR_FORMAT;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
hex_text_valid(const char *s, size_t n)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (hex_value((unsigned char)s[i]) < 0)
			return 0;
	return s[n] == '\0';
}

static const char b64std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
b64std_encode(const uint8_t *p, size_t len, char **out)
{
	size_t i, o = 0, olen;
	uint32_t v;
	char *s;

	if (len > (SIZE_MAX / 4) * 3 - 3)
		return ERR_TOO_LARGE;
	olen = ((len + 2) / 3) * 4;
	if ((s = malloc(olen + 1)) == NULL)
		return ERR_ALLOC;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		s[o++] = b64std_alphabet[(v >> 18) & 63];
		s[o++] = b64std_alphabet[(v >> 12) & 63];
		s[o++] = b64std_alphabet[(v >> 6) & 63];
		s[o++] = b64std_alphabet[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		s[o++] = b64std_alphabet[(v >> 18) & 63];
		s[o++] = b64std_alphabet[(v >> 12) & 63];
		s[o++] = '=';
		s[o++] = '=';
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		s[o++] = b64std_alphabet[(v >> 18) & 63];
		s[o++] = b64std_alphabet[(v >> 12) & 63];
		s[o++] = b64std_alphabet[(v >> 6) & 63];
		s[o++] = '=';
	}
	s[o] = '\0';
	*out = s;
	return 0;
}

/* Value of c in the standard alphabet, -1 outside it (and for '='). */
static int
b64std_value(unsigned char c)
{
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == '-' || c == '_')
		return -1;
	return b64url_table[c];
}

int
b64std_decode(const char *s, size_t slen, size_t max_len,
    uint8_t **out, size_t *out_len)
{
	size_t i, o = 0, len, pad = 0, full;
	int v[4], k;
	uint8_t *p;

	if (slen % 4 != 0)
		return ERR_FORMAT;
	if (slen > 0 && s[slen - 1] == '=')
		pad = (slen > 1 && s[slen - 2] == '=') ? 2 : 1;
	len = (slen / 4) * 3 - pad;
	if (len > max_len)
		return ERR_TOO_LARGE;
	if ((p = malloc(len == 0 ? 1 : len)) == NULL)
		return ERR_ALLOC;
	/* Groups without padding, then the last one if it has any. */
	full = pad == 0 ? slen : slen - 4;
	for (i = 0; i < full; i += 4) {
		for (k = 0; k < 4; k++)
			if ((v[k] = b64std_value((unsigned char)s[i + k])) < 0)
				goto bad;
		p[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		p[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		p[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	if (pad != 0) {
		for (k = 0; k < 4 - (int)pad; k++)
			if ((v[k] = b64std_value((unsigned char)s[i + k])) < 0)
				goto bad;
		p[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (pad == 1) {
			if ((v[2] & 0x03) != 0)	/* non-canonical bits */
				goto bad;
			p[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		} else if ((v[1] & 0x0f) != 0)
			goto bad;
	}
	*out = p;
	*out_len = len;
	return 0;
 bad:
	free(p);
	return ERR_FORMAT;
}
