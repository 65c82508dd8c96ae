/*
 * test_stream.c - the chunked blob AEAD (stream.h): round trips for the
 * boundary sizes and random sizes fed in random pieces, an independent
 * decryption from the documented byte format, the header parser, and
 * rejection of truncation, reordering, duplication, extension, splicing,
 * bit flips and a wrong key; the fd functions on temporary files.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto.h"
#include "errors.h"
#include "stream.h"

#define SEG 64u  /* a small segment length, so blobs have many segments */

/* A growing byte buffer filled by the emit callback. */
struct sink {
	uint8_t *p;
	size_t len, cap;
	size_t calls;
	int fail_at;    /* emit fails with ERR_IO on this call (1-based) */
};

static int
sink_emit(void *arg, const uint8_t *p, size_t len)
{
	struct sink *k = arg;

	k->calls++;
	if (k->fail_at > 0 && (size_t)k->fail_at == k->calls)
		return ERR_IO;
	assert_true(len > 0);
	if (k->len + len > k->cap) {
		k->cap = (k->len + len) * 2;
		k->p = realloc(k->p, k->cap);
		assert_non_null(k->p);
	}
	memcpy(k->p + k->len, p, len);
	k->len += len;
	return 0;
}

static void
sink_reset(struct sink *k)
{
	free(k->p);
	memset(k, 0, sizeof(*k));
}

static uint32_t rng_state = 0x9e3779b9u;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static uint8_t key_a[STREAM_KEY_LEN], key_b[STREAM_KEY_LEN];

static uint8_t *
pattern(size_t len)
{
	uint8_t *p = malloc(len == 0 ? 1 : len);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + (i >> 8) * 7 + 3);
	return p;
}

/* Piece length for feeding: max_piece 0 means all at once. */
static size_t
piece(size_t left, size_t max_piece)
{
	size_t n;

	if (max_piece == 0)
		return left;
	n = 1 + rng() % max_piece;
	return n > left ? left : n;
}

/* Encrypts pt into *out with key and segment length, fed in pieces. */
static void
encrypt_buf(const uint8_t *key, uint32_t seg, const uint8_t *pt,
    size_t len, size_t max_piece, struct sink *out)
{
	struct stream_enc *enc = NULL;
	struct err_ctx e;
	size_t off = 0, n;

	err_clear(&e);
	memset(out, 0, sizeof(*out));
	assert_int_equal(stream_enc_new(key, seg, sink_emit, out, &enc, &e),
	    0);
	/* An empty update is allowed and changes nothing. */
	assert_int_equal(stream_enc_update(enc, NULL, 0, &e), 0);
	while (off < len) {
		n = piece(len - off, max_piece);
		assert_int_equal(stream_enc_update(enc, pt + off, n, &e), 0);
		off += n;
	}
	assert_int_equal(stream_enc_finish(enc, &e), 0);
	/* Finished is finished. */
	assert_int_equal(stream_enc_finish(enc, &e), ERR_INVALID_ARG);
	stream_enc_free(enc);
}

/* Decrypts ct into *out; returns the first error or finish's result.
 * Checks that plaintext comes one whole segment per call. */
static int
decrypt_buf(const uint8_t *key, const uint8_t *ct, size_t len,
    size_t max_piece, struct sink *out)
{
	struct stream_dec *dec = NULL;
	struct err_ctx e;
	size_t off = 0, n;
	int r;

	err_clear(&e);
	memset(out, 0, sizeof(*out));
	assert_int_equal(stream_dec_new(key, sink_emit, out, &dec, &e), 0);
	while (off < len) {
		n = piece(len - off, max_piece);
		if ((r = stream_dec_update(dec, ct + off, n, &e)) != 0)
			goto done;
		off += n;
		/* Whole segments only, never more than one held back. */
		if (stream_dec_segment_len(dec) != 0)
			assert_int_equal(out->len %
			    stream_dec_segment_len(dec), 0);
	}
	r = stream_dec_finish(dec, &e);
 done:
	if (r != 0) {
		assert_int_equal(e.code, r);
		assert_true(strlen(err_msg(&e)) > 0);
		/* Errors are sticky. */
		assert_int_equal(stream_dec_finish(dec, NULL), r);
		assert_int_equal(stream_dec_update(dec, ct, len > 0, NULL), r);
	}
	stream_dec_free(dec);
	return r;
}

static void
round_trip(uint32_t seg, size_t len, size_t enc_piece, size_t dec_piece)
{
	struct sink ct, pt;
	uint8_t *in = pattern(len);
	uint32_t L = seg == 0 ? STREAM_SEGMENT_DEFAULT : seg;

	encrypt_buf(key_a, seg, in, len, enc_piece, &ct);
	assert_int_equal(ct.len, stream_ciphertext_len(len, L));
	assert_int_equal(decrypt_buf(key_a, ct.p, ct.len, dec_piece, &pt), 0);
	assert_int_equal(pt.len, len);
	if (len > 0)
		assert_memory_equal(pt.p, in, len);
	/* One emit per segment; an empty blob emits nothing. */
	assert_int_equal(pt.calls, len == 0 ? 0 : (len + L - 1) / L);
	sink_reset(&ct);
	sink_reset(&pt);
	free(in);
}

static void
test_round_trip_sizes(void **state)
{
	const size_t small[] = { 0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG,
	    5 * SEG + 17, 7 * SEG };
	const size_t big[] = { 0, 1, STREAM_SEGMENT_DEFAULT - 1,
	    STREAM_SEGMENT_DEFAULT, STREAM_SEGMENT_DEFAULT + 1,
	    3 * STREAM_SEGMENT_DEFAULT + 12345 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		round_trip(SEG, small[i], 0, 0);
		round_trip(SEG, small[i], 1, 1);
		round_trip(SEG, small[i], 7, 100);
	}
	for (i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		round_trip(0, big[i], 0, 0);
		round_trip(0, big[i], 10000, 70000);
	}
	round_trip(STREAM_SEGMENT_MIN, 100, 3, 5);
	round_trip(STREAM_SEGMENT_MAX, STREAM_SEGMENT_MAX + 1, 0, 4096);
}

static void
test_round_trip_random(void **state)
{
	const uint32_t segs[] = { 16, 17, 100, 1000, 4096 };
	int i;

	(void)state;
	for (i = 0; i < 200; i++)
		round_trip(segs[rng() % 5], rng() % 20000,
		    rng() % 3000, rng() % 3000);
}

/* Two encryptions of the same plaintext differ (fresh salt). */
static void
test_fresh_salt(void **state)
{
	struct sink a, b;
	uint8_t pt[10] = { 0 };

	(void)state;
	encrypt_buf(key_a, SEG, pt, sizeof(pt), 0, &a);
	encrypt_buf(key_a, SEG, pt, sizeof(pt), 0, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.p + 9, b.p + 9, STREAM_SALT_LEN);
	assert_memory_not_equal(a.p + STREAM_HEADER_LEN,
	    b.p + STREAM_HEADER_LEN, a.len - STREAM_HEADER_LEN);
	sink_reset(&a);
	sink_reset(&b);
}

/* The blob key, computed from the documented format with crypto.h. */
static void
doc_blob_key(const uint8_t *key, const uint8_t *header, uint8_t bk[32])
{
	static const char info_label[] = "devid stream v1";
	uint8_t prk[32], info[sizeof(info_label) - 1 + STREAM_HEADER_LEN];

	memcpy(info, info_label, sizeof(info_label) - 1);
	memcpy(info + sizeof(info_label) - 1, header, STREAM_HEADER_LEN);
	assert_int_equal(crypto_hkdf_extract(header + 9, 32, key, 32, prk), 0);
	assert_int_equal(crypto_hkdf_expand(prk, info, sizeof(info), bk, 32),
	    0);
}

static void
doc_nonce(uint32_t i, int last, uint8_t nonce[12])
{
	memset(nonce, 0, 12);
	nonce[7] = (uint8_t)(i >> 24);
	nonce[8] = (uint8_t)(i >> 16);
	nonce[9] = (uint8_t)(i >> 8);
	nonce[10] = (uint8_t)i;
	nonce[11] = (uint8_t)last;
}

/*
 * Opens a blob segment by segment as stream.h documents it, with
 * crypto_aes_gcm_open only, and checks the plaintext.
 */
static void
test_documented_format(void **state)
{
	const size_t len = 3 * SEG + 5;
	uint8_t *in = pattern(len), bk[32], nonce[12], out[SEG];
	struct sink ct;
	size_t off, i, n;

	(void)state;
	encrypt_buf(key_a, SEG, in, len, 0, &ct);
	assert_memory_equal(ct.p, "DVST\x01\x00\x00\x00\x40", 9);
	doc_blob_key(key_a, ct.p, bk);
	off = STREAM_HEADER_LEN;
	for (i = 0; i < 4; i++) {
		n = i < 3 ? SEG : 5;
		doc_nonce((uint32_t)i, i == 3, nonce);
		assert_int_equal(crypto_aes_gcm_open(bk, 32, nonce, NULL, 0,
		    ct.p + off, n + 16, out), 0);
		assert_memory_equal(out, in + i * SEG, n);
		off += n + 16;
	}
	assert_int_equal(off, ct.len);
	sink_reset(&ct);
	free(in);
}

/*
 * Blobs forged with the blob key: an empty final segment after full
 * ones must be refused (one plaintext, one blob), and a blob whose
 * segments are all sealed as non-final is truncated.
 */
static void
test_forged_noncanonical(void **state)
{
	uint8_t *in = pattern(2 * SEG), bk[32], nonce[12];
	uint8_t blob[STREAM_HEADER_LEN + 3 * (SEG + 16)];
	struct sink ct, pt;
	size_t off;

	(void)state;
	encrypt_buf(key_a, SEG, in, 2 * SEG, 0, &ct);
	memcpy(blob, ct.p, STREAM_HEADER_LEN);
	doc_blob_key(key_a, blob, bk);
	off = STREAM_HEADER_LEN;
	doc_nonce(0, 0, nonce);
	assert_int_equal(crypto_aes_gcm_seal(bk, 32, nonce, NULL, 0, in, SEG,
	    blob + off), 0);
	off += SEG + 16;
	doc_nonce(1, 0, nonce);
	assert_int_equal(crypto_aes_gcm_seal(bk, 32, nonce, NULL, 0,
	    in + SEG, SEG, blob + off), 0);
	off += SEG + 16;
	assert_int_equal(decrypt_buf(key_a, blob, off, 0, &pt),
	    ERR_TRUNCATED);
	sink_reset(&pt);
	doc_nonce(2, 1, nonce);
	assert_int_equal(crypto_aes_gcm_seal(bk, 32, nonce, NULL, 0, in, 0,
	    blob + off), 0);
	off += 16;
	assert_int_equal(decrypt_buf(key_a, blob, off, 0, &pt), ERR_FORMAT);
	sink_reset(&pt);
	sink_reset(&ct);
	free(in);
}

static void
test_header_parse(void **state)
{
	struct stream_header h, h2;
	uint8_t buf[STREAM_HEADER_LEN + 3], out[STREAM_HEADER_LEN];
	struct err_ctx e;

	(void)state;
	h.version = STREAM_VERSION;
	h.segment_len = 4096;
	memset(h.salt, 0xa5, sizeof(h.salt));
	assert_int_equal(stream_header_format(&h, buf), 0);
	memset(buf + STREAM_HEADER_LEN, 0xee, 3);
	/* Trailing bytes are the segments, not the header's business. */
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL), 0);
	assert_int_equal(h2.version, 1);
	assert_int_equal(h2.segment_len, 4096);
	assert_memory_equal(h2.salt, h.salt, sizeof(h.salt));
	assert_int_equal(stream_header_format(&h2, out), 0);
	assert_memory_equal(out, buf, STREAM_HEADER_LEN);

	err_clear(&e);
	assert_int_equal(stream_header_parse(buf, STREAM_HEADER_LEN - 1, &h2,
	    &e), ERR_TRUNCATED);
	assert_int_equal(stream_header_parse(NULL, 0, &h2, NULL),
	    ERR_TRUNCATED);
	buf[0] = 'X';
	err_clear(&e);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, &e),
	    ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "magic"));
	buf[0] = 'D';
	buf[4] = 2;
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	buf[4] = 0;
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	buf[4] = 1;
	/* Segment length 15, 2^20 + 1, 0, 2^32 - 1. */
	memcpy(buf + 5, "\x00\x00\x00\x0f", 4);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	memcpy(buf + 5, "\x00\x10\x00\x01", 4);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	memcpy(buf + 5, "\x00\x00\x00\x00", 4);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	memcpy(buf + 5, "\xff\xff\xff\xff", 4);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	/* The limits themselves are fine. */
	memcpy(buf + 5, "\x00\x10\x00\x00", 4);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL), 0);
	memcpy(buf + 5, "\x00\x00\x00\x10", 4);
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL), 0);
	/* *h untouched on failure. */
	memset(&h2, 0x77, sizeof(h2));
	buf[0] = 0;
	assert_int_equal(stream_header_parse(buf, sizeof(buf), &h2, NULL),
	    ERR_FORMAT);
	assert_int_equal(h2.version, 0x77);

	h.segment_len = 15;
	assert_int_equal(stream_header_format(&h, out), ERR_INVALID_ARG);
	/* A bad header through the decryptor is ERR_FORMAT too. */
	{
		struct sink pt;

		assert_int_equal(decrypt_buf(key_a, buf, sizeof(buf), 1, &pt),
		    ERR_FORMAT);
		sink_reset(&pt);
	}
}

static void
test_ciphertext_len(void **state)
{
	(void)state;
	assert_int_equal(stream_ciphertext_len(0, 16), 41 + 16);
	assert_int_equal(stream_ciphertext_len(16, 16), 41 + 16 + 16);
	assert_int_equal(stream_ciphertext_len(17, 16), 41 + 17 + 32);
	assert_int_equal(stream_ciphertext_len(0, 15), 0);
	assert_int_equal(stream_ciphertext_len(0, STREAM_SEGMENT_MAX + 1), 0);
	/* 2^32 segments is the most. */
	assert_int_equal(stream_ciphertext_len((uint64_t)16 << 32, 16),
	    41 + ((uint64_t)16 << 32) + ((uint64_t)16 << 32));
	assert_int_equal(stream_ciphertext_len(((uint64_t)16 << 32) + 1, 16),
	    0);
	assert_int_equal(stream_ciphertext_len(UINT64_MAX, STREAM_SEGMENT_MAX),
	    0);
}

/* The expected result of decrypting the first cut bytes of a blob with
 * segment length SEG. */
static int
expected_cut_result(size_t cut)
{
	size_t rem;

	if (cut < STREAM_HEADER_LEN)
		return ERR_TRUNCATED;
	rem = (cut - STREAM_HEADER_LEN) % (SEG + 16);
	if (rem < 16)   /* at a boundary or without room for a tag */
		return ERR_TRUNCATED;
	return ERR_DECRYPT;
}

static void
test_truncation(void **state)
{
	const size_t lens[] = { 0, 1, SEG, 3 * SEG, 3 * SEG + 20 };
	struct sink ct, pt;
	uint8_t *in;
	size_t i, cut;
	int r;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		in = pattern(lens[i]);
		encrypt_buf(key_a, SEG, in, lens[i], 0, &ct);
		for (cut = 0; cut < ct.len; cut++) {
			r = decrypt_buf(key_a, ct.p, cut, cut % 5 == 0 ? 0 :
			    cut % 50, &pt);
			assert_int_equal(r, expected_cut_result(cut));
			/* What came out is a verified prefix. */
			assert_true(pt.len <= lens[i]);
			if (pt.len > 0)
				assert_memory_equal(pt.p, in, pt.len);
			sink_reset(&pt);
		}
		sink_reset(&ct);
		free(in);
	}
}

/* Offset of segment i of a blob with segment length SEG. */
static size_t
seg_off(size_t i)
{
	return STREAM_HEADER_LEN + i * (SEG + 16);
}

static void
test_dropped_final(void **state)
{
	uint8_t *in = pattern(3 * SEG + 9);
	struct sink ct, pt;

	(void)state;
	encrypt_buf(key_a, SEG, in, 3 * SEG + 9, 0, &ct);
	assert_int_equal(decrypt_buf(key_a, ct.p, seg_off(3), 0, &pt),
	    ERR_TRUNCATED);
	assert_int_equal(pt.len, 2 * SEG);  /* segment 2 held back */
	sink_reset(&pt);
	/* Only the header. */
	assert_int_equal(decrypt_buf(key_a, ct.p, STREAM_HEADER_LEN, 0, &pt),
	    ERR_TRUNCATED);
	sink_reset(&pt);
	sink_reset(&ct);
	free(in);
}

static void
test_reorder_duplicate(void **state)
{
	const size_t len = 4 * SEG + 3, n = SEG + 16;
	uint8_t *in = pattern(len), *m;
	struct sink ct, pt;

	(void)state;
	encrypt_buf(key_a, SEG, in, len, 0, &ct);
	assert_non_null(m = malloc(ct.len + n));

	/* Swap segments 1 and 2. */
	memcpy(m, ct.p, ct.len);
	memcpy(m + seg_off(1), ct.p + seg_off(2), n);
	memcpy(m + seg_off(2), ct.p + seg_off(1), n);
	assert_int_equal(decrypt_buf(key_a, m, ct.len, 0, &pt), ERR_DECRYPT);
	assert_int_equal(pt.len, SEG);  /* segment 0 only */
	sink_reset(&pt);

	/* Segment 1 twice. */
	memcpy(m, ct.p, seg_off(2));
	memcpy(m + seg_off(2), ct.p + seg_off(1), ct.len - seg_off(1));
	assert_int_equal(decrypt_buf(key_a, m, ct.len + n, 7, &pt),
	    ERR_DECRYPT);
	assert_int_equal(pt.len, 2 * SEG);
	sink_reset(&pt);

	/* Segment 0 dropped: segment 1 is not segment 0. */
	memcpy(m, ct.p, STREAM_HEADER_LEN);
	memcpy(m + STREAM_HEADER_LEN, ct.p + seg_off(1),
	    ct.len - seg_off(1));
	assert_int_equal(decrypt_buf(key_a, m, ct.len - n, 0, &pt),
	    ERR_DECRYPT);
	assert_int_equal(pt.len, 0);
	sink_reset(&pt);

	/* The final segment moved in front of the one before it. */
	memcpy(m, ct.p, ct.len);
	memcpy(m + seg_off(3), ct.p + seg_off(4), 3 + 16);
	memcpy(m + seg_off(3) + 19, ct.p + seg_off(3), n);
	assert_int_equal(decrypt_buf(key_a, m, ct.len, 0, &pt), ERR_DECRYPT);
	sink_reset(&pt);

	free(m);
	sink_reset(&ct);
	free(in);
}

static void
test_extension(void **state)
{
	const size_t n = SEG + 16;
	struct stream_dec *dec = NULL;
	uint8_t *in = pattern(3 * SEG), *m, zero = 0;
	struct sink ct, pt;
	struct err_ctx e;

	(void)state;
	/* A full-length final segment: anything after it is ERR_FORMAT. */
	encrypt_buf(key_a, SEG, in, 3 * SEG, 0, &ct);
	assert_non_null(m = malloc(ct.len + n));
	memcpy(m, ct.p, ct.len);
	m[ct.len] = 0;
	assert_int_equal(decrypt_buf(key_a, m, ct.len + 1, 0, &pt),
	    ERR_FORMAT);
	assert_int_equal(pt.len, 2 * SEG);
	sink_reset(&pt);
	memcpy(m + ct.len, ct.p + seg_off(1), n);
	assert_int_equal(decrypt_buf(key_a, m, ct.len + n, 9, &pt),
	    ERR_FORMAT);
	sink_reset(&pt);
	sink_reset(&ct);

	/* A short final segment: the boundary is unknown, ERR_DECRYPT. */
	encrypt_buf(key_a, SEG, in, 2 * SEG + 5, 0, &ct);
	memcpy(m, ct.p, ct.len);
	memcpy(m + ct.len, ct.p + seg_off(1), n);
	assert_int_equal(decrypt_buf(key_a, m, ct.len + 1, 0, &pt),
	    ERR_DECRYPT);
	sink_reset(&pt);
	assert_int_equal(decrypt_buf(key_a, m, ct.len + n, 0, &pt),
	    ERR_DECRYPT);
	sink_reset(&pt);

	/* An empty blob with a byte after it. */
	sink_reset(&ct);
	encrypt_buf(key_a, SEG, in, 0, 0, &ct);
	memcpy(m, ct.p, ct.len);
	m[ct.len] = 0;
	assert_int_equal(decrypt_buf(key_a, m, ct.len + 1, 0, &pt),
	    ERR_DECRYPT);
	sink_reset(&pt);

	/* Bytes fed after a successful finish. */
	err_clear(&e);
	assert_int_equal(stream_dec_new(key_a, sink_emit, &pt, &dec, &e), 0);
	assert_int_equal(stream_dec_update(dec, ct.p, ct.len, &e), 0);
	assert_int_equal(stream_dec_finish(dec, &e), 0);
	assert_int_equal(stream_dec_update(dec, NULL, 0, &e), 0);
	assert_int_equal(stream_dec_update(dec, &zero, 1, &e), ERR_FORMAT);
	stream_dec_free(dec);
	sink_reset(&pt);

	free(m);
	sink_reset(&ct);
	free(in);
}

static void
test_bit_flips(void **state)
{
	const size_t len = 2 * SEG + 10;
	uint8_t *in = pattern(len), *m;
	struct sink ct, pt;
	size_t i;
	int bit, r;

	(void)state;
	encrypt_buf(key_a, SEG, in, len, 0, &ct);
	assert_non_null(m = malloc(ct.len));
	for (i = 0; i < ct.len; i++) {
		for (bit = 0; bit < 8; bit++) {
			memcpy(m, ct.p, ct.len);
			m[i] ^= (uint8_t)(1u << bit);
			r = decrypt_buf(key_a, m, ct.len, 0, &pt);
			if (i < 5)  /* magic and version */
				assert_int_equal(r, ERR_FORMAT);
			else
				assert_true(r == ERR_DECRYPT ||
				    r == ERR_FORMAT || r == ERR_TRUNCATED);
			/* Nothing from a segment at or after the flip. */
			assert_true(i < STREAM_HEADER_LEN ? pt.len == 0 :
			    pt.len <= (i - STREAM_HEADER_LEN) / (SEG + 16) *
			    SEG);
			sink_reset(&pt);
		}
	}
	free(m);
	sink_reset(&ct);
	free(in);
}

static void
test_splice_and_wrong_key(void **state)
{
	const size_t len = 3 * SEG + 1, n = SEG + 16;
	uint8_t *in = pattern(len), *m;
	struct sink a, b, pt;

	(void)state;
	encrypt_buf(key_a, SEG, in, len, 0, &a);
	encrypt_buf(key_a, SEG, in, len, 0, &b);
	assert_non_null(m = malloc(a.len));

	/* Segment 1 of blob b in blob a, same key and position. */
	memcpy(m, a.p, a.len);
	memcpy(m + seg_off(1), b.p + seg_off(1), n);
	assert_int_equal(decrypt_buf(key_a, m, a.len, 0, &pt), ERR_DECRYPT);
	assert_int_equal(pt.len, SEG);
	sink_reset(&pt);

	/* The header of b on the body of a. */
	memcpy(m, b.p, STREAM_HEADER_LEN);
	memcpy(m + STREAM_HEADER_LEN, a.p + STREAM_HEADER_LEN,
	    a.len - STREAM_HEADER_LEN);
	assert_int_equal(decrypt_buf(key_a, m, a.len, 0, &pt), ERR_DECRYPT);
	assert_int_equal(pt.len, 0);
	sink_reset(&pt);

	/* Wrong key, also for an empty blob. */
	assert_int_equal(decrypt_buf(key_b, a.p, a.len, 0, &pt), ERR_DECRYPT);
	assert_int_equal(pt.len, 0);
	sink_reset(&pt);
	sink_reset(&a);
	encrypt_buf(key_a, SEG, in, 0, 0, &a);
	assert_int_equal(decrypt_buf(key_b, a.p, a.len, 0, &pt), ERR_DECRYPT);
	assert_int_equal(decrypt_buf(key_a, a.p, a.len, 0, &pt), 0);
	sink_reset(&pt);

	free(m);
	sink_reset(&a);
	sink_reset(&b);
	free(in);
}

/* An emit error stops the operation, is returned and sticks. */
static void
test_emit_error(void **state)
{
	struct stream_enc *enc = NULL;
	struct stream_dec *dec = NULL;
	uint8_t *in = pattern(3 * SEG);
	struct sink ct, out;

	(void)state;
	memset(&out, 0, sizeof(out));
	out.fail_at = 2;   /* the header goes out, segment 0 fails */
	assert_int_equal(stream_enc_new(key_a, SEG, sink_emit, &out, &enc,
	    NULL), 0);
	assert_int_equal(stream_enc_update(enc, in, 3 * SEG, NULL), ERR_IO);
	assert_int_equal(stream_enc_finish(enc, NULL), ERR_IO);
	stream_enc_free(enc);
	sink_reset(&out);

	encrypt_buf(key_a, SEG, in, 3 * SEG, 0, &ct);
	out.fail_at = 2;
	assert_int_equal(stream_dec_new(key_a, sink_emit, &out, &dec, NULL),
	    0);
	assert_int_equal(stream_dec_update(dec, ct.p, ct.len, NULL), ERR_IO);
	assert_int_equal(stream_dec_finish(dec, NULL), ERR_IO);
	stream_dec_free(dec);
	sink_reset(&out);

	/* Misuse. */
	assert_int_equal(stream_enc_new(key_a, 15, sink_emit, &out, &enc,
	    NULL), ERR_INVALID_ARG);
	assert_null(enc);
	assert_int_equal(stream_enc_new(key_a, STREAM_SEGMENT_MAX + 1,
	    sink_emit, &out, &enc, NULL), ERR_INVALID_ARG);
	assert_int_equal(stream_enc_new(NULL, 0, sink_emit, &out, &enc,
	    NULL), ERR_INVALID_ARG);
	assert_int_equal(stream_dec_new(key_a, NULL, &out, &dec, NULL),
	    ERR_INVALID_ARG);
	stream_enc_free(NULL);
	stream_dec_free(NULL);
	sink_reset(&ct);
	free(in);
}

/* A temporary file holding len bytes of p (p may be NULL: empty). */
static int
temp_file(char *path, const uint8_t *p, size_t len)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, 256, "%s/test_stream.XXXXXX",
	    dir != NULL ? dir : "/tmp");
	assert_true((fd = mkstemp(path)) >= 0);
	if (len > 0)
		assert_int_equal(write(fd, p, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static uint8_t *
read_file(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *p;

	assert_true(end >= 0);
	assert_non_null(p = malloc((size_t)end + 1));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(read(fd, p, (size_t)end), end);
	*len = (size_t)end;
	return p;
}

static void
fd_case(size_t len, uint32_t seg)
{
	char in_path[256], ct_path[256], pt_path[256];
	struct stream_fd_result res, res2;
	uint8_t *in = pattern(len), *ct, *pt, digest[32];
	size_t ct_len, pt_len;
	int in_fd, ct_fd, pt_fd, bad_fd, r;
	struct err_ctx e;

	in_fd = temp_file(in_path, in, len);
	ct_fd = temp_file(ct_path, NULL, 0);
	pt_fd = temp_file(pt_path, NULL, 0);
	err_clear(&e);
	assert_int_equal(stream_encrypt_fd(in_fd, ct_fd, key_a, seg, &res,
	    &e), 0);
	ct = read_file(ct_fd, &ct_len);
	assert_int_equal(res.plaintext_len, len);
	assert_int_equal(res.ciphertext_len, ct_len);
	assert_int_equal(ct_len, stream_ciphertext_len(len,
	    seg == 0 ? STREAM_SEGMENT_DEFAULT : seg));
	assert_int_equal(crypto_sha256(ct, ct_len, digest), 0);
	assert_memory_equal(res.ciphertext_sha256, digest, 32);

	assert_int_equal(lseek(ct_fd, 0, SEEK_SET), 0);
	assert_int_equal(stream_decrypt_fd(ct_fd, pt_fd, key_a, digest, &res2,
	    &e), 0);
	assert_int_equal(res2.plaintext_len, len);
	assert_int_equal(res2.ciphertext_len, ct_len);
	assert_memory_equal(res2.ciphertext_sha256, digest, 32);
	pt = read_file(pt_fd, &pt_len);
	assert_int_equal(pt_len, len);
	if (len > 0)
		assert_memory_equal(pt, in, len);
	free(pt);

	/* Another expected hash. */
	digest[0] ^= 1;
	assert_int_equal(lseek(ct_fd, 0, SEEK_SET), 0);
	err_clear(&e);
	assert_int_equal(stream_decrypt_fd(ct_fd, pt_fd, key_a, digest, NULL,
	    &e), ERR_DECRYPT);
	assert_non_null(strstr(err_msg(&e), "SHA-256"));

	/* A truncated blob in a file. */
	assert_int_equal(ftruncate(ct_fd, (off_t)(ct_len - 1)), 0);
	assert_int_equal(lseek(ct_fd, 0, SEEK_SET), 0);
	err_clear(&e);
	r = stream_decrypt_fd(ct_fd, pt_fd, key_a, NULL, NULL, &e);
	/* An empty blob cut by one byte has no room for its tag. */
	assert_int_equal(r, len == 0 ? ERR_TRUNCATED : ERR_DECRYPT);

	/* A write error names the side. */
	assert_int_equal(lseek(in_fd, 0, SEEK_SET), 0);
	assert_true((bad_fd = dup(in_fd)) >= 0);
	close(bad_fd);
	err_clear(&e);
	assert_int_equal(stream_encrypt_fd(in_fd, bad_fd, key_a, seg, NULL,
	    &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), "ciphertext"));
	/* A read error too. */
	err_clear(&e);
	assert_int_equal(stream_encrypt_fd(bad_fd, ct_fd, key_a, seg, NULL,
	    &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), "plaintext"));

	free(ct);
	free(in);
	close(in_fd);
	close(ct_fd);
	close(pt_fd);
	unlink(in_path);
	unlink(ct_path);
	unlink(pt_path);
}

static void
test_fd(void **state)
{
	(void)state;
	fd_case(0, 0);
	fd_case(1, 0);
	fd_case(300 * 1024 + 7, 0);
	fd_case(5000, SEG);
	fd_case(2 * STREAM_SEGMENT_DEFAULT, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_sizes),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_fresh_salt),
		cmocka_unit_test(test_documented_format),
		cmocka_unit_test(test_forged_noncanonical),
		cmocka_unit_test(test_header_parse),
		cmocka_unit_test(test_ciphertext_len),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_dropped_final),
		cmocka_unit_test(test_reorder_duplicate),
		cmocka_unit_test(test_extension),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_splice_and_wrong_key),
		cmocka_unit_test(test_emit_error),
		cmocka_unit_test(test_fd),
	};
	size_t i;

	for (i = 0; i < sizeof(key_a); i++) {
		key_a[i] = (uint8_t)(0x10 + i);
		key_b[i] = (uint8_t)(0x10 + i);
	}
	key_b[31] ^= 0x80;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
