/*
 * sigfile.c - text files with a detached signature line (sigfile.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "errors.h"
#include "fileio.h"
#include "sigfile.h"
#include "transcript.h"

int
sigfile_transcript(const char *tag, const char *text, size_t len,
    size_t text_max, struct buf **out)
{
	struct buf *b;
	int r;

	if ((b = buf_new(text_max + 64)) == NULL)
		return ERR_ALLOC;
	if ((r = buf_put_tag(b, tag)) != 0 ||
	    (r = buf_put(b, text, len)) != 0) {
		buf_free(b);
		return r;
	}
	*out = b;
	return 0;
}

int
sigfile_digest(const char *tag, const char *text, size_t len,
    size_t text_max, uint8_t out[32])
{
	struct buf *b = NULL;
	int r;

	if ((r = sigfile_transcript(tag, text, len, text_max, &b)) != 0)
		return r;
	r = tr_hash(b, out);
	buf_free(b);
	return r;
}

int
sigfile_verify(const char *tag, const char *text, size_t len,
    size_t text_max, const uint8_t sig[64], EVP_PKEY *pub)
{
	uint8_t digest[32];
	int r;

	if ((r = sigfile_digest(tag, text, len, text_max, digest)) != 0)
		return r;
	return crypto_ecdsa_verify(pub, digest, sig) == 0 ? 0 : ERR_SIGNATURE;
}

int
sigfile_write(const char *path, const char *sig_path, const char *text,
    size_t len, const uint8_t sig[64], struct err_ctx *e)
{
	char *b64 = NULL, *line = NULL;
	int r = ERR_INTERNAL;

	if ((r = b64url_encode(sig, 64, &b64)) != 0)
		goto out;
	if (asprintf(&line, "%s\n", b64) < 0) {
		line = NULL;
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = fileio_write_atomic(path, text, len, 0600, e)) != 0 ||
	    (r = fileio_write_atomic(sig_path, line, strlen(line), 0600,
	    e)) != 0)
		goto out;
	r = 0;
 out:
	free(b64);
	free(line);
	return r;
}

int
sigfile_read(const char *path, const char *sig_path, size_t text_max,
    char **text, size_t *len, uint8_t sig[64], struct err_ctx *e)
{
	char *t = NULL, *line = NULL;
	size_t tlen = 0, slen = 0;
	int r = ERR_INTERNAL;

	if ((r = fileio_read(path, text_max, 0, &t, &tlen, e)) != 0)
		goto out;
	if ((r = fileio_read(sig_path, SIGFILE_LINE_MAX, 0, &line, &slen,
	    e)) != 0) {
		if (r == ERR_NOT_FOUND)
			r = err_wrap(e, ERR_SIGNATURE, "%s has no signature "
			    "file %s", path, sig_path);
		else if (r == ERR_TOO_LARGE)
			r = err_wrap(e, ERR_SIGNATURE, "%s is not a "
			    "signature line", sig_path);
		goto out;
	}
	if (slen < 2 || line[slen - 1] != '\n' ||
	    b64url_decode_exact(line, slen - 1, sig, 64) != 0) {
		r = err_set(e, ERR_SIGNATURE, "%s is not a signature line",
		    sig_path);
		goto out;
	}
	*text = t;
	*len = tlen;
	t = NULL;       /* transferred */
	r = 0;
 out:
	free(t);
	free(line);
	return r;
}

int
sigfile_files_digest(const char *path, const char *sig_path,
    size_t text_max, uint8_t out[32], struct err_ctx *e)
{
	const char *const paths[2] = { path, sig_path };
		uint8_t both[64];
	char *text = NULL;
	size_t len = 0, i;
	int r;

	for (i = 0; i < 2; i++) {
		if ((r = fileio_read(paths[i], text_max, 0, &text, &len,
		    e)) != 0)
			return r;
		r = crypto_sha256(text, len, both + 32 * i);
		free(text);
		text = NULL;
		if (r != 0)
			return r;
	}
	return crypto_sha256(both, sizeof(both), out);
}
