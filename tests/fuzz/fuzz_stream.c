/*
 * fuzz_stream.c - libFuzzer harness for the blob stream format
 * (stream.h): the header parser and the segment decryptor.
 *
 * The whole input is a blob, decrypted under a fixed key (32 bytes
 * 0x00 .. 0x1f), so seeds made by the encryptor with that key in
 * tests/fuzz/corpus/stream reach the segment logic and the final-segment
 * checks.  Nothing may crash, leak or trip a sanitizer.  These must hold,
 * else the harness aborts:
 *  - a header that parses formats back to the same 41 bytes;
 *  - the result (code, plaintext length and a checksum of the plaintext)
 *    is the same whether the blob is fed at once or in small pieces;
 *  - plaintext arrives as whole segments, a short one only last;
 *  - an accepted blob has exactly stream_ciphertext_len() bytes for the
 *    plaintext it gave, and any error is one of those stream.h names.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a decryption gave. */
struct outcome {
	int r;
	uint64_t len;
	uint64_t sum;           /* FNV-1a over the plaintext */
	uint32_t segment_len;
	int short_seen;         /* a segment shorter than segment_len came */
	struct stream_dec *dec;
};

static int
fuzz_emit(void *arg, const uint8_t *p, size_t len)
{
	struct outcome *o = arg;
	uint32_t seg = stream_dec_segment_len(o->dec);
	size_t i;

	if (len == 0 || len > seg || o->short_seen)
		abort();
	if (len < seg)
		o->short_seen = 1;
	for (i = 0; i < len; i++) {
		o->sum ^= p[i];
		o->sum *= UINT64_C(0x100000001b3);
	}
	o->len += len;
	return 0;
}

static void
decrypt(const uint8_t *key, const uint8_t *data, size_t size, size_t step,
    struct outcome *o)
{
	struct stream_dec *dec = NULL;
	struct err_ctx e;
	size_t off = 0, n;

	memset(o, 0, sizeof(*o));
	o->sum = UINT64_C(0xcbf29ce484222325);
	err_clear(&e);
	if (stream_dec_new(key, fuzz_emit, o, &dec, &e) != 0)
		abort();
	o->dec = dec;
	o->r = 0;
	while (off < size && o->r == 0) {
		n = size - off < step ? size - off : step;
		o->r = stream_dec_update(dec, data + off, n, &e);
		off += n;
		/* Every segment but the last is full. */
		if (o->r == 0 && stream_dec_segment_len(dec) != 0 &&
		    o->len % stream_dec_segment_len(dec) != 0)
			abort();
	}
	if (o->r == 0)
		o->r = stream_dec_finish(dec, &e);
	o->segment_len = stream_dec_segment_len(dec);
	if (o->r != 0 && o->r != ERR_FORMAT && o->r != ERR_TRUNCATED &&
	    o->r != ERR_DECRYPT && o->r != ERR_ALLOC)
		abort();
	stream_dec_free(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_header h;
	uint8_t key[STREAM_KEY_LEN], again[STREAM_HEADER_LEN];
	struct outcome whole, pieces;
	size_t i, step;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;

	if (stream_header_parse(data, size, &h, NULL) == 0) {
		if (stream_header_format(&h, again) != 0 ||
		    memcmp(again, data, STREAM_HEADER_LEN) != 0)
			abort();
	}

	decrypt(key, data, size, size == 0 ? 1 : size, &whole);
	/* A piece size from the input, so the fuzzer explores splits. */
	step = size == 0 ? 1 : 1 + (size_t)data[size - 1] % 61;
	decrypt(key, data, size, step, &pieces);
	if (whole.r != pieces.r || whole.len != pieces.len ||
	    whole.sum != pieces.sum)
		abort();

	if (whole.r == 0 &&
	    stream_ciphertext_len(whole.len, whole.segment_len) != size)
		abort();
	return 0;
}
