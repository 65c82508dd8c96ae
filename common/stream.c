/*
 * stream.c - the chunked AEAD for blobs (format and design in stream.h).
 *
 * One EVP_CIPHER_CTX per object holds the AES-256 key schedule of the
 * blob key; each segment only re-initialises it with a new nonce.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "errors.h"
#include "fileio.h"
#include "stream.h"

static const uint8_t stream_magic[4] = { 'D', 'V', 'S', 'T' };
static const char stream_info[] = "devid stream v1";

#define STREAM_NONCE_LEN 12
/* Read size of the fd functions. */
#define STREAM_IO_CHUNK 65536

struct stream_enc {
	EVP_CIPHER_CTX *cctx;
	uint8_t header[STREAM_HEADER_LEN];
	uint32_t segment_len;
	uint32_t counter;           /* index of the segment being filled */
	uint8_t *pt;                /* segment_len bytes */
	size_t pt_have;
	uint8_t *ct;                /* segment_len + tag */
	stream_emit_fn emit;
	void *arg;
	int header_sent;
	int state;                  /* 0 open, 1 finished, < 0 failed */
};

struct stream_dec {
	EVP_CIPHER_CTX *cctx;
	uint8_t key[STREAM_KEY_LEN];    /* until the header has arrived */
	uint8_t header[STREAM_HEADER_LEN];
	size_t header_have;
	uint32_t segment_len;       /* 0 until the header is parsed */
	uint32_t counter;
	uint8_t *ct;                /* segment_len + tag */
	size_t ct_have;
	uint8_t *pt;                /* segment_len */
	stream_emit_fn emit;
	void *arg;
	int state;                  /* 0 open, 1 finished, < 0 failed */
};

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
segment_nonce(uint32_t counter, int last, uint8_t nonce[STREAM_NONCE_LEN])
{
	memset(nonce, 0, 7);
	put_u32(nonce + 7, counter);
	nonce[11] = last ? 1 : 0;
}

int
stream_header_parse(const uint8_t *p, size_t len, struct stream_header *h,
    struct err_ctx *e)
{
	uint32_t seg;

	return_val_if_fail(h != NULL && (p != NULL || len == 0),
	    ERR_INVALID_ARG);
	if (len < STREAM_HEADER_LEN)
		return err_set(e, ERR_TRUNCATED, "stream: the blob ends inside "
		    "its %d-byte header (%zu bytes): the blob is incomplete",
		    STREAM_HEADER_LEN, len);
	if (memcmp(p, stream_magic, sizeof(stream_magic)) != 0)
		return err_set(e, ERR_FORMAT, "stream: not a devid encrypted "
		    "blob (bad magic)");
	if (p[4] != STREAM_VERSION)
		return err_set(e, ERR_FORMAT, "stream: blob format version %u "
		    "is not supported (this devid reads version %d): update "
		    "devid", p[4], STREAM_VERSION);
	seg = get_u32(p + 5);
	if (seg < STREAM_SEGMENT_MIN || seg > STREAM_SEGMENT_MAX)
		return err_set(e, ERR_FORMAT, "stream: segment length %u is "
		    "outside %u .. %u", seg, STREAM_SEGMENT_MIN,
		    STREAM_SEGMENT_MAX);
	h->version = p[4];
	h->segment_len = seg;
	memcpy(h->salt, p + 9, STREAM_SALT_LEN);
	return 0;
}

int
stream_header_format(const struct stream_header *h,
    uint8_t out[STREAM_HEADER_LEN])
{
	return_val_if_fail(h != NULL && out != NULL, ERR_INVALID_ARG);
	return_val_if_fail(h->version == STREAM_VERSION &&
	    h->segment_len >= STREAM_SEGMENT_MIN &&
	    h->segment_len <= STREAM_SEGMENT_MAX, ERR_INVALID_ARG);
	memcpy(out, stream_magic, sizeof(stream_magic));
	out[4] = h->version;
	put_u32(out + 5, h->segment_len);
	memcpy(out + 9, h->salt, STREAM_SALT_LEN);
	return 0;
}

uint64_t
stream_ciphertext_len(uint64_t plaintext_len, uint32_t segment_len)
{
	uint64_t nseg;

	if (segment_len < STREAM_SEGMENT_MIN ||
	    segment_len > STREAM_SEGMENT_MAX)
		return 0;
	nseg = plaintext_len == 0 ? 1 :
	    plaintext_len / segment_len + (plaintext_len % segment_len != 0);
	if (nseg > UINT64_C(1) << 32)
		return 0;
	/* nseg <= 2^32 and segment_len <= 2^20 keep this below 2^53. */
	return STREAM_HEADER_LEN + plaintext_len + nseg * STREAM_TAG_LEN;
}

/*
 * Derives the blob key from key and the complete header and loads it into
 * a new cipher context (*out).  The derived key is wiped here.
 */
static int
blob_cipher_new(const uint8_t key[STREAM_KEY_LEN],
    const uint8_t header[STREAM_HEADER_LEN], int encrypt,
    EVP_CIPHER_CTX **out)
{
	uint8_t prk[CRYPTO_SHA256_LEN], bk[STREAM_KEY_LEN];
	uint8_t info[sizeof(stream_info) - 1 + STREAM_HEADER_LEN];
	EVP_CIPHER_CTX *cctx = NULL;
	int r = ERR_CRYPTO;

	*out = NULL;
	memcpy(info, stream_info, sizeof(stream_info) - 1);
	memcpy(info + sizeof(stream_info) - 1, header, STREAM_HEADER_LEN);
	if ((r = crypto_hkdf_extract(header + 9, STREAM_SALT_LEN, key,
	    STREAM_KEY_LEN, prk)) != 0 ||
	    (r = crypto_hkdf_expand(prk, info, sizeof(info), bk,
	    sizeof(bk))) != 0)
		goto out;
	r = ERR_ALLOC;
	if ((cctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	r = ERR_CRYPTO;
	if (EVP_CipherInit_ex(cctx, EVP_aes_256_gcm(), NULL, bk, NULL,
	    encrypt) != 1)
		goto out;
	*out = cctx;
	cctx = NULL;  /* transferred */
	r = 0;
 out:
	crypto_wipe(prk, sizeof(prk));
	crypto_wipe(bk, sizeof(bk));
	EVP_CIPHER_CTX_free(cctx);
	ERR_clear_error();
	return r;
}

/* Seals len bytes at pt as segment `counter` into ct (len + tag bytes). */
static int
segment_seal(EVP_CIPHER_CTX *cctx, uint32_t counter, int last,
    const uint8_t *pt, size_t len, uint8_t *ct)
{
	uint8_t nonce[STREAM_NONCE_LEN];
	int n;

	segment_nonce(counter, last, nonce);
	if (EVP_EncryptInit_ex(cctx, NULL, NULL, NULL, nonce) != 1)
		goto fail;
	if (len > 0 && (EVP_EncryptUpdate(cctx, ct, &n, pt, (int)len) != 1 ||
	    (size_t)n != len))
		goto fail;
	if (EVP_EncryptFinal_ex(cctx, ct + len, &n) != 1 || n != 0)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, STREAM_TAG_LEN,
	    ct + len) != 1)
		goto fail;
	return 0;
 fail:
	ERR_clear_error();
	crypto_wipe(ct, len + STREAM_TAG_LEN);
	return ERR_CRYPTO;
}

/*
 * Opens ct_len (>= tag) bytes at ct as segment `counter` with the given
 * final flag into pt.  0 or ERR_DECRYPT (pt wiped); ct is not changed.
 */
static int
segment_open(EVP_CIPHER_CTX *cctx, uint32_t counter, int last,
    const uint8_t *ct, size_t ct_len, uint8_t *pt)
{
	uint8_t nonce[STREAM_NONCE_LEN], tag[STREAM_TAG_LEN];
	size_t len = ct_len - STREAM_TAG_LEN;
	int n;

	segment_nonce(counter, last, nonce);
	memcpy(tag, ct + len, STREAM_TAG_LEN);
	if (EVP_DecryptInit_ex(cctx, NULL, NULL, NULL, nonce) != 1)
		goto fail;
	if (len > 0 && (EVP_DecryptUpdate(cctx, pt, &n, ct, (int)len) != 1 ||
	    (size_t)n != len))
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, STREAM_TAG_LEN,
	    tag) != 1)
		goto fail;
	if (EVP_DecryptFinal_ex(cctx, pt + len, &n) != 1)
		goto fail;
	return 0;
 fail:
	ERR_clear_error();
	crypto_wipe(pt, len);
	return ERR_DECRYPT;
}

/* --- encryptor --- */

int
stream_enc_new(const uint8_t key[STREAM_KEY_LEN], uint32_t segment_len,
    stream_emit_fn emit, void *arg, struct stream_enc **out,
    struct err_ctx *e)
{
	struct stream_header h;
	struct stream_enc *s = NULL;
	int r;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	*out = NULL;
	return_val_if_fail(key != NULL && emit != NULL, ERR_INVALID_ARG);
	if (segment_len == 0)
		segment_len = STREAM_SEGMENT_DEFAULT;
	if (segment_len < STREAM_SEGMENT_MIN ||
	    segment_len > STREAM_SEGMENT_MAX)
		return err_set(e, ERR_INVALID_ARG, "stream: segment length %u "
		    "is outside %u .. %u", segment_len, STREAM_SEGMENT_MIN,
		    STREAM_SEGMENT_MAX);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->pt = malloc(segment_len)) == NULL ||
	    (s->ct = malloc((size_t)segment_len + STREAM_TAG_LEN)) == NULL) {
		r = err_set(e, ERR_ALLOC, "stream: out of memory for a "
		    "%u-byte segment", segment_len);
		goto out;
	}
	s->segment_len = segment_len;
	s->emit = emit;
	s->arg = arg;
	h.version = STREAM_VERSION;
	h.segment_len = segment_len;
	if ((r = crypto_random(h.salt, sizeof(h.salt))) != 0 ||
	    (r = stream_header_format(&h, s->header)) != 0 ||
	    (r = blob_cipher_new(key, s->header, 1, &s->cctx)) != 0) {
		err_set(e, r, "stream: cannot set up the blob key (%s)",
		    err_str(r));
		goto out;
	}
	*out = s;
	s = NULL;  /* transferred */
	r = 0;
 out:
	stream_enc_free(s);
	return r;
}

/* Seals the buffered plaintext as the current segment and emits it,
 * preceded by the header if that has not gone out yet. */
static int
enc_flush(struct stream_enc *s, int last, struct err_ctx *e)
{
	int r;

	if (!s->header_sent) {
		if ((r = s->emit(s->arg, s->header, STREAM_HEADER_LEN)) != 0)
			return r;
		s->header_sent = 1;
	}
	if ((r = segment_seal(s->cctx, s->counter, last, s->pt, s->pt_have,
	    s->ct)) != 0)
		return err_set(e, r, "stream: sealing segment %u failed",
		    s->counter);
	if ((r = s->emit(s->arg, s->ct, s->pt_have + STREAM_TAG_LEN)) != 0)
		return r;
	/* The next segment overwrites the plaintext; free wipes it. */
	s->pt_have = 0;
	return 0;
}

int
stream_enc_update(struct stream_enc *s, const void *pt, size_t len,
    struct err_ctx *e)
{
	const uint8_t *p = pt;
	size_t n;
	int r;

	return_val_if_fail(s != NULL && (pt != NULL || len == 0),
	    ERR_INVALID_ARG);
	if (s->state < 0)
		return s->state;
	if (s->state > 0)
		return err_set(e, ERR_INVALID_ARG, "stream: the encryptor "
		    "is already finished");
	while (len > 0) {
		if (s->pt_have == s->segment_len) {
			/* More data follows, so this one is not the last. */
			if (s->counter == UINT32_MAX) {
				r = err_set(e, ERR_TOO_LARGE, "stream: the "
				    "plaintext needs more than 2^32 segments");
				goto fail;
			}
			if ((r = enc_flush(s, 0, e)) != 0)
				goto fail;
			s->counter++;
		}
		n = s->segment_len - s->pt_have;
		if (n > len)
			n = len;
		memcpy(s->pt + s->pt_have, p, n);
		s->pt_have += n;
		p += n;
		len -= n;
	}
	return 0;
 fail:
	s->state = r;
	return r;
}

int
stream_enc_finish(struct stream_enc *s, struct err_ctx *e)
{
	int r;

	return_val_if_fail(s != NULL, ERR_INVALID_ARG);
	if (s->state < 0)
		return s->state;
	if (s->state > 0)
		return err_set(e, ERR_INVALID_ARG, "stream: the encryptor "
		    "is already finished");
	if ((r = enc_flush(s, 1, e)) != 0) {
		s->state = r;
		return r;
	}
	s->state = 1;
	return 0;
}

void
stream_enc_free(struct stream_enc *s)
{
	if (s == NULL)
		return;
	EVP_CIPHER_CTX_free(s->cctx);
	if (s->pt != NULL)
		crypto_wipe(s->pt, s->segment_len);
	free(s->pt);
	free(s->ct);
	crypto_wipe(s, sizeof(*s));
	free(s);
}

/* --- decryptor --- */

int
stream_dec_new(const uint8_t key[STREAM_KEY_LEN], stream_emit_fn emit,
    void *arg, struct stream_dec **out, struct err_ctx *e)
{
	struct stream_dec *s;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	*out = NULL;
	return_val_if_fail(key != NULL && emit != NULL, ERR_INVALID_ARG);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return err_set(e, ERR_ALLOC, "stream: out of memory");
	memcpy(s->key, key, STREAM_KEY_LEN);
	s->emit = emit;
	s->arg = arg;
	*out = s;
	return 0;
}

uint32_t
stream_dec_segment_len(const struct stream_dec *s)
{
	return s == NULL ? 0 : s->segment_len;
}

/* The header is complete: check it, derive the blob key, size buffers. */
static int
dec_start(struct stream_dec *s, struct err_ctx *e)
{
	struct stream_header h;
	int r;

	if ((r = stream_header_parse(s->header, s->header_have, &h, e)) != 0)
		return r;
	r = blob_cipher_new(s->key, s->header, 0, &s->cctx);
	crypto_wipe(s->key, sizeof(s->key));
	if (r != 0)
		return err_set(e, r, "stream: cannot set up the blob key (%s)",
		    err_str(r));
	if ((s->ct = malloc((size_t)h.segment_len + STREAM_TAG_LEN)) == NULL ||
	    (s->pt = malloc(h.segment_len)) == NULL)
		return err_set(e, ERR_ALLOC, "stream: out of memory for a "
		    "%u-byte segment", h.segment_len);
	s->segment_len = h.segment_len;
	return 0;
}

/*
 * Opens the held-back full segment, which bytes follow, as a non-final
 * one and emits it.  If it only opens as a final segment, the data after
 * it is an extension: ERR_FORMAT.
 */
static int
dec_segment_middle(struct stream_dec *s, struct err_ctx *e)
{
	int r;

	if (segment_open(s->cctx, s->counter, 0, s->ct, s->ct_have,
	    s->pt) != 0) {
		if (segment_open(s->cctx, s->counter, 1, s->ct, s->ct_have,
		    s->pt) == 0) {
			crypto_wipe(s->pt, s->segment_len);
			return err_set(e, ERR_FORMAT, "stream: data follows "
			    "the final segment (%u) of the blob: the blob was "
			    "extended", s->counter);
		}
		return err_set(e, ERR_DECRYPT, "stream: segment %u does not "
		    "authenticate: the blob is corrupt, reordered or not "
		    "for this key", s->counter);
	}
	if (s->counter == UINT32_MAX)
		return err_set(e, ERR_FORMAT, "stream: more than 2^32 "
		    "segments");
	/* The next segment overwrites the plaintext; free wipes it. */
	if ((r = s->emit(s->arg, s->pt, s->ct_have - STREAM_TAG_LEN)) != 0)
		return r;
	s->counter++;
	s->ct_have = 0;
	return 0;
}

int
stream_dec_update(struct stream_dec *s, const void *ct, size_t len,
    struct err_ctx *e)
{
	const uint8_t *p = ct;
	size_t n, full;
	int r;

	return_val_if_fail(s != NULL && (ct != NULL || len == 0),
	    ERR_INVALID_ARG);
	if (s->state < 0)
		return s->state;
	if (s->state > 0) {
		if (len == 0)
			return 0;
		r = err_set(e, ERR_FORMAT, "stream: data follows the end of "
		    "the blob");
		goto fail;
	}
	if (s->segment_len == 0 && len > 0) {
		n = STREAM_HEADER_LEN - s->header_have;
		if (n > len)
			n = len;
		memcpy(s->header + s->header_have, p, n);
		s->header_have += n;
		p += n;
		len -= n;
		if (s->header_have == STREAM_HEADER_LEN &&
		    (r = dec_start(s, e)) != 0)
			goto fail;
	}
	full = (size_t)s->segment_len + STREAM_TAG_LEN;
	while (len > 0) {
		if (s->ct_have == full && (r = dec_segment_middle(s, e)) != 0)
			goto fail;
		n = full - s->ct_have;
		if (n > len)
			n = len;
		memcpy(s->ct + s->ct_have, p, n);
		s->ct_have += n;
		p += n;
		len -= n;
	}
	return 0;
 fail:
	s->state = r;
	return r;
}

int
stream_dec_finish(struct stream_dec *s, struct err_ctx *e)
{
	size_t pt_len;
	int r;

	return_val_if_fail(s != NULL, ERR_INVALID_ARG);
	if (s->state < 0)
		return s->state;
	if (s->state > 0)
		return err_set(e, ERR_INVALID_ARG, "stream: the decryptor "
		    "is already finished");
	if (s->segment_len == 0) {
		r = err_set(e, ERR_TRUNCATED, "stream: the blob ends inside "
		    "its header (%zu of %d bytes): the blob is incomplete",
		    s->header_have, STREAM_HEADER_LEN);
		goto fail;
	}
	if (s->ct_have < STREAM_TAG_LEN) {
		r = err_set(e, ERR_TRUNCATED, "stream: the blob ends before "
		    "its final segment (%u): the blob is incomplete",
		    s->counter);
		goto fail;
	}
	pt_len = s->ct_have - STREAM_TAG_LEN;
	if (segment_open(s->cctx, s->counter, 1, s->ct, s->ct_have,
	    s->pt) != 0) {
		if (s->ct_have == (size_t)s->segment_len + STREAM_TAG_LEN &&
		    segment_open(s->cctx, s->counter, 0, s->ct, s->ct_have,
		    s->pt) == 0) {
			crypto_wipe(s->pt, s->segment_len);
			r = err_set(e, ERR_TRUNCATED, "stream: the blob ends "
			    "after segment %u, which is not the final one: "
			    "the blob is incomplete", s->counter);
		} else
			r = err_set(e, ERR_DECRYPT, "stream: the final "
			    "segment (%u) does not authenticate: the blob is "
			    "corrupt, cut short, extended or not for this key",
			    s->counter);
		goto fail;
	}
	if (pt_len == 0 && s->counter > 0) {
		r = err_set(e, ERR_FORMAT, "stream: empty final segment after "
		    "%u others", s->counter);
		goto fail;
	}
	r = pt_len > 0 ? s->emit(s->arg, s->pt, pt_len) : 0;
	if (r != 0)
		goto fail;
	s->ct_have = 0;
	s->state = 1;
	return 0;
 fail:
	s->state = r;
	return r;
}

void
stream_dec_free(struct stream_dec *s)
{
	if (s == NULL)
		return;
	EVP_CIPHER_CTX_free(s->cctx);
	if (s->pt != NULL)
		crypto_wipe(s->pt, s->segment_len);
	free(s->pt);
	free(s->ct);
	crypto_wipe(s, sizeof(*s));
	free(s);
}

/* --- file descriptors --- */

struct fd_sink {
	int fd;
	EVP_MD_CTX *md;     /* hashes what passes when not NULL */
	uint64_t count;
	int write_errno;    /* errno of a failed write */
};

static ssize_t
read_some(int fd, uint8_t *p, size_t len)
{
	ssize_t n;

	do {
		n = read(fd, p, len);
	} while (n < 0 && errno == EINTR);
	return n;
}

/* Emit callback of both fd functions: hash (encryption side) and write. */
static int
fd_sink_emit(void *arg, const uint8_t *p, size_t len)
{
	struct fd_sink *k = arg;

	if (k->md != NULL && EVP_DigestUpdate(k->md, p, len) != 1)
		return ERR_CRYPTO;
	if ((k->write_errno = fileio_write_all(k->fd, p, len)) != 0)
		return ERR_IO;
	k->count += len;
	return 0;
}

/* Turns an emit failure into a message. */
static int
emit_error(struct err_ctx *e, int r, const char *what, int saved_errno)
{
	if (r == ERR_IO)
		return err_set(e, r, "stream: writing the %s failed: %s", what,
		    strerror(saved_errno != 0 ? saved_errno : EIO));
	/* Every other code already carries its message, or is hashing. */
	return err_set(e, r, "stream: hashing the %s failed", what);
}

int
stream_encrypt_fd(int in_fd, int out_fd,
    const uint8_t key[STREAM_KEY_LEN], uint32_t segment_len,
    struct stream_fd_result *res, struct err_ctx *e)
{
	struct stream_enc *enc = NULL;
	struct fd_sink sink = { out_fd, NULL, 0, 0 };
	uint64_t pt_total = 0;
	uint8_t *buf = NULL;
	unsigned int md_len;
	ssize_t n;
	int r;

	return_val_if_fail(key != NULL && in_fd >= 0 && out_fd >= 0,
	    ERR_INVALID_ARG);
	if ((buf = malloc(STREAM_IO_CHUNK)) == NULL ||
	    (sink.md = EVP_MD_CTX_new()) == NULL) {
		r = err_set(e, ERR_ALLOC, "stream: out of memory");
		goto out;
	}
	if (EVP_DigestInit_ex(sink.md, EVP_sha256(), NULL) != 1) {
		r = err_set(e, ERR_CRYPTO, "stream: SHA-256 is unavailable");
		goto out;
	}
	if ((r = stream_enc_new(key, segment_len, fd_sink_emit, &sink, &enc,
	    e)) != 0)
		goto out;
	for (;;) {
		if ((n = read_some(in_fd, buf, STREAM_IO_CHUNK)) < 0) {
			r = err_set(e, ERR_IO, "stream: reading the plaintext "
			    "failed: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		pt_total += (uint64_t)n;
		if ((r = stream_enc_update(enc, buf, (size_t)n, e)) != 0) {
			emit_error(e, r, "ciphertext", sink.write_errno);
			goto out;
		}
	}
	if ((r = stream_enc_finish(enc, e)) != 0) {
		emit_error(e, r, "ciphertext", sink.write_errno);
		goto out;
	}
	if (res != NULL) {
		if (EVP_DigestFinal_ex(sink.md, res->ciphertext_sha256,
		    &md_len) != 1 || md_len != CRYPTO_SHA256_LEN) {
			r = err_set(e, ERR_CRYPTO, "stream: hashing failed");
			goto out;
		}
		res->plaintext_len = pt_total;
		res->ciphertext_len = sink.count;
	}
	r = 0;
 out:
	stream_enc_free(enc);
	EVP_MD_CTX_free(sink.md);
	if (buf != NULL)
		crypto_wipe(buf, STREAM_IO_CHUNK);
	free(buf);
	ERR_clear_error();
	return r;
}

int
stream_decrypt_fd(int in_fd, int out_fd,
    const uint8_t key[STREAM_KEY_LEN], const uint8_t *expect_sha256,
    struct stream_fd_result *res, struct err_ctx *e)
{
	struct stream_dec *dec = NULL;
	struct fd_sink sink = { out_fd, NULL, 0, 0 };
	EVP_MD_CTX *md = NULL;
	uint8_t digest[CRYPTO_SHA256_LEN];
	uint64_t ct_total = 0;
	uint8_t *buf = NULL;
	unsigned int md_len;
	ssize_t n;
	int r;

	return_val_if_fail(key != NULL && in_fd >= 0 && out_fd >= 0,
	    ERR_INVALID_ARG);
	if ((buf = malloc(STREAM_IO_CHUNK)) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL) {
		r = err_set(e, ERR_ALLOC, "stream: out of memory");
		goto out;
	}
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		r = err_set(e, ERR_CRYPTO, "stream: SHA-256 is unavailable");
		goto out;
	}
	if ((r = stream_dec_new(key, fd_sink_emit, &sink, &dec, e)) != 0)
		goto out;
	for (;;) {
		if ((n = read_some(in_fd, buf, STREAM_IO_CHUNK)) < 0) {
			r = err_set(e, ERR_IO, "stream: reading the blob "
			    "failed: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		ct_total += (uint64_t)n;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			r = err_set(e, ERR_CRYPTO, "stream: hashing failed");
			goto out;
		}
		if ((r = stream_dec_update(dec, buf, (size_t)n, e)) != 0) {
			emit_error(e, r, "plaintext", sink.write_errno);
			goto out;
		}
	}
	if ((r = stream_dec_finish(dec, e)) != 0) {
		emit_error(e, r, "plaintext", sink.write_errno);
		goto out;
	}
	if (EVP_DigestFinal_ex(md, digest, &md_len) != 1 ||
	    md_len != CRYPTO_SHA256_LEN) {
		r = err_set(e, ERR_CRYPTO, "stream: hashing failed");
		goto out;
	}
	if (expect_sha256 != NULL &&
	    crypto_memeq_ct(digest, expect_sha256, sizeof(digest)) != 0) {
		r = err_set(e, ERR_DECRYPT, "stream: the blob's SHA-256 does "
		    "not match the one its message names: it was replaced");
		goto out;
	}
	if (res != NULL) {
		memcpy(res->ciphertext_sha256, digest, sizeof(digest));
		res->plaintext_len = sink.count;
		res->ciphertext_len = ct_total;
	}
	r = 0;
 out:
	stream_dec_free(dec);
	EVP_MD_CTX_free(md);
	if (buf != NULL)
		crypto_wipe(buf, STREAM_IO_CHUNK);
	free(buf);
	ERR_clear_error();
	return r;
}
