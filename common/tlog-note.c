/*
 * tlog-note.c - C2SP checkpoints, signed notes, cosignatures, verifier
 * keys and tlog-witness requests for the global transparency log
 * (docs/protocol.md section 7).
 *
 * All text from the network is read through a cursor that hands out one
 * line at a time (struct tlog_lines) and is checked against the limits of
 * tlog-note.h before anything is copied.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

#define TLOG_LEAF_TAG "devid-tlog-leaf-v1"
#define TLOG_COSIG_PREFIX "cosignature/v1\ntime "
#define TLOG_DASH "\xe2\x80\x94"      /* U+2014 EM DASH */
#define TLOG_DASH_LEN 3
#define TLOG_U64_DIGITS 20
/* Accounts are at most 128 bytes (devrec.h); a leaf hash is not where
 * that is enforced, only where a runaway string is stopped. */
#define TLOG_ACCOUNT_MAX 1024
#define TLOG_HASH_B64_LEN 44          /* standard base64 of 32 bytes */
/* The proof lines of a witness request: one fewer than MERKLE_PROOF_MAX,
 * as C2SP tlog-witness allows (a proof below 2^63 has at most 63). */
#define TLOG_WITNESS_PROOF_MAX (MERKLE_PROOF_MAX - 1)
/* The head of a witness request: "old N\n", the proof, the empty line. */
#define TLOG_WITNESS_HEAD_MAX (4 + TLOG_U64_DIGITS + 1 + \
	TLOG_WITNESS_PROOF_MAX * (TLOG_HASH_B64_LEN + 1) + 1)
/* Base64 of a key id and the longest signature. */
#define TLOG_SIG_B64_MAX (((4 + TLOG_SIG_MAX + 2) / 3) * 4)

/* --- text checks --- */

/*
 * Decodes the UTF-8 sequence at s[0..len) into *cp and returns its length,
 * or 0 when it is not the shortest encoding of a scalar value (overlong
 * forms, surrogates, values above U+10FFFF, truncated sequences).
 */
static size_t
utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c, min;
	size_t n, i;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Unicode control characters (general category Cc). */
static int
is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Unicode white space (the White_Space property). */
static int
is_space(uint32_t cp)
{
	return cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0x85 ||
	    cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
	    cp == 0x3000;
}

/* Whether s[0..len) is valid UTF-8 without control characters other than
 * newline. */
static int
text_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		if ((n = utf8_next(p + i, len - i, &cp)) == 0)
			return 0;
		if (is_control(cp) && cp != '\n')
			return 0;
		i += n;
	}
	return 1;
}

/* Whether s[0..len) is a key name: 1 to TLOG_NAME_MAX bytes of UTF-8
 * without control characters, white space or '+'. */
static int
name_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	uint32_t cp;

	if (len == 0 || len > TLOG_NAME_MAX)
		return 0;
	while (i < len) {
		if ((n = utf8_next(p + i, len - i, &cp)) == 0)
			return 0;
		if (is_control(cp) || is_space(cp) || cp == '+')
			return 0;
		i += n;
	}
	return 1;
}

/* A NUL-terminated name that name_ok() accepts. */
static int
name_str_ok(const char *name)
{
	return name != NULL && name_ok(name, strnlen(name, TLOG_NAME_MAX + 1));
}

/*
 * Parses s[0..len) as a decimal u64 without sign or leading zeros.
 * ERR_FORMAT for anything else, ERR_TOO_LARGE above max.
 */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > TLOG_U64_DIGITS || (s[0] == '0' && len > 1))
		return ERR_FORMAT;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return ERR_FORMAT;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return ERR_TOO_LARGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return ERR_TOO_LARGE;
	*out = v;
	return 0;
}

/* Decodes standard base64 of exactly want bytes into out. */
static int
b64std_decode_exact(const char *s, size_t slen, uint8_t *out, size_t want)
{
	uint8_t *p = NULL;
	size_t len;
	int r;

	if ((r = b64std_decode(s, slen, want, &p, &len)) != 0)
		return r == ERR_ALLOC ? r : ERR_FORMAT;
	if (len != want) {
		free(p);
		return ERR_FORMAT;
	}
	memcpy(out, p, len);
	free(p);
	return 0;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* --- a cursor over lines --- */

struct tlog_lines {
	const char *s;
	size_t len;
	size_t pos;
};

/*
 * The next line: *line and *line_len (without its newline).  0, or
 * ERR_FORMAT at the end of the input or when the line has no newline.
 */
static int
lines_next(struct tlog_lines *l, const char **line, size_t *line_len)
{
	const char *nl;

	if (l->pos >= l->len)
		return ERR_FORMAT;
	if ((nl = memchr(l->s + l->pos, '\n', l->len - l->pos)) == NULL)
		return ERR_FORMAT;
	*line = l->s + l->pos;
	*line_len = (size_t)(nl - *line);
	l->pos += *line_len + 1;
	return 0;
}

/* --- devid's leaves --- */

int
tlog_leaf_hash(const char *account, uint64_t seq,
    const uint8_t ev[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN])
{
	struct buf *b = NULL;
	size_t alen;
	int r = ERR_INTERNAL;

	return_val_if_fail(account != NULL && ev != NULL && out != NULL,
	    ERR_INVALID_ARG);
	alen = strnlen(account, TLOG_ACCOUNT_MAX + 1);
	if (alen > TLOG_ACCOUNT_MAX)
		return ERR_INVALID_ARG;
	if ((b = buf_new(sizeof(TLOG_LEAF_TAG) + 4 + alen + 8 + 4 +
	    MERKLE_HASH_LEN)) == NULL)
		return ERR_ALLOC;
	if ((r = buf_put(b, TLOG_LEAF_TAG, sizeof(TLOG_LEAF_TAG))) != 0 ||
	    (r = buf_put_lp(b, account, alen)) != 0 ||
	    (r = buf_put_u64(b, seq)) != 0 ||
	    (r = buf_put_lp(b, ev, MERKLE_HASH_LEN)) != 0)
		goto out;
	r = merkle_leaf_hash(buf_ptr(b), buf_len(b), out);
 out:
	buf_free(b);
	return r;
}

/* --- checkpoints --- */

int
tlog_checkpoint_format(const struct tlog_checkpoint *c, char *out,
    size_t out_size, size_t *len)
{
	char *root = NULL;
	int n, r;

	return_val_if_fail(c != NULL && out != NULL && len != NULL,
	    ERR_INVALID_ARG);
	if (!name_ok(c->origin, strnlen(c->origin, sizeof(c->origin))) ||
	    c->size > MERKLE_SIZE_MAX)
		return ERR_INVALID_ARG;
	if ((r = b64std_encode(c->root, MERKLE_HASH_LEN, &root)) != 0)
		return r;
	n = snprintf(out, out_size, "%s\n%llu\n%s\n", c->origin,
	    (unsigned long long)c->size, root);
	free(root);
	if (n < 0)
		return ERR_INTERNAL;
	if ((size_t)n >= out_size || (size_t)n > TLOG_TEXT_MAX)
		return ERR_TOO_LARGE;
	*len = (size_t)n;
	return 0;
}

int
tlog_checkpoint_parse(const char *text, size_t len,
    struct tlog_checkpoint *c, struct err_ctx *e)
{
	struct tlog_lines l = { text, len, 0 };
	struct tlog_checkpoint tmp;
	const char *line;
	size_t line_len;
	int r;

	return_val_if_fail(text != NULL && c != NULL, ERR_INVALID_ARG);
	if (len > TLOG_TEXT_MAX)
		return err_set(e, ERR_TOO_LARGE, "checkpoint: text of %zu "
		    "bytes is longer than %d", len, TLOG_TEXT_MAX);
	if (len == 0 || text[len - 1] != '\n')
		return err_set(e, ERR_FORMAT,
		    "checkpoint: text does not end in a newline");
	if (!text_ok(text, len))
		return err_set(e, ERR_FORMAT, "checkpoint: text is not UTF-8 "
		    "without control characters");
	memset(&tmp, 0, sizeof(tmp));
	if (lines_next(&l, &line, &line_len) != 0 ||
	    !name_ok(line, line_len))
		return err_set(e, ERR_FORMAT, "checkpoint: the origin line is "
		    "not a key name (empty, spaces, '+' or too long)");
	memcpy(tmp.origin, line, line_len);
	tmp.origin[line_len] = '\0';
	if (lines_next(&l, &line, &line_len) != 0)
		return err_set(e, ERR_FORMAT, "checkpoint '%s': no size line",
		    tmp.origin);
	if ((r = parse_u64(line, line_len, MERKLE_SIZE_MAX, &tmp.size)) != 0)
		return err_set(e, r, "checkpoint '%s': the size is not a "
		    "decimal number up to 2^63-1 without leading zeros",
		    tmp.origin);
	if (lines_next(&l, &line, &line_len) != 0 ||
	    b64std_decode_exact(line, line_len, tmp.root,
	    MERKLE_HASH_LEN) != 0)
		return err_set(e, ERR_FORMAT, "checkpoint '%s': the root line "
		    "is not standard base64 of 32 bytes", tmp.origin);
	/* Extension lines: kept in the text, ignored, but never empty. */
	while (l.pos < l.len) {
		if (lines_next(&l, &line, &line_len) != 0 || line_len == 0)
			return err_set(e, ERR_FORMAT, "checkpoint '%s': empty "
			    "extension line", tmp.origin);
	}
	*c = tmp;
	return 0;
}

/* --- signed notes --- */

int
tlog_sigline_parse(const char *s, size_t len, struct tlog_sigline *sl,
    struct err_ctx *e)
{
	const char *sp, *b64, *name;
	size_t name_len, b64_len;
	uint8_t *raw = NULL;
	size_t raw_len;
	int r;

	return_val_if_fail(s != NULL && sl != NULL, ERR_INVALID_ARG);
	if (len > TLOG_DASH_LEN + 1 + TLOG_NAME_MAX + 1 + TLOG_SIG_B64_MAX + 1)
		return err_set(e, ERR_TOO_LARGE, "note signature: line of %zu "
		    "bytes is too long", len);
	if (len < TLOG_DASH_LEN + 2 || s[len - 1] != '\n' ||
	    memcmp(s, TLOG_DASH " ", TLOG_DASH_LEN + 1) != 0)
		return err_set(e, ERR_FORMAT, "note signature: a line must be "
		    "an em dash, a space, a key name, a space, base64 and a "
		    "newline");
	name = s + TLOG_DASH_LEN + 1;
	len -= TLOG_DASH_LEN + 2;            /* dash, space and newline */
	if ((sp = memchr(name, ' ', len)) == NULL)
		return err_set(e, ERR_FORMAT, "note signature: no space after "
		    "the key name");
	name_len = (size_t)(sp - name);
	if (!name_ok(name, name_len))
		return err_set(e, ERR_FORMAT, "note signature: the key name "
		    "is empty, too long, not UTF-8 or has spaces, '+' or "
		    "control characters");
	b64 = sp + 1;
	b64_len = len - name_len - 1;
	if ((r = b64std_decode(b64, b64_len, 4 + TLOG_SIG_MAX, &raw,
	    &raw_len)) != 0) {
		if (r == ERR_ALLOC)
			return err_set(e, r, "note signature: out of memory");
		return err_set(e, r == ERR_TOO_LARGE ? r : ERR_FORMAT,
		    "note signature of '%.*s': not standard base64 of a key "
		    "id and at most %d bytes", (int)name_len, name,
		    TLOG_SIG_MAX);
	}
	if (raw_len < 5) {
		free(raw);
		return err_set(e, ERR_FORMAT, "note signature of '%.*s': "
		    "shorter than a key id and a signature", (int)name_len,
		    name);
	}
	memset(sl, 0, sizeof(*sl));
	memcpy(sl->name, name, name_len);
	sl->name[name_len] = '\0';
	sl->key_id = get_be32(raw);
	sl->sig_len = raw_len - 4;
	memcpy(sl->sig, raw + 4, sl->sig_len);
	free(raw);
	return 0;
}

/* Whether sl names the key (name, key_id). */
static int
sigline_is(const struct tlog_sigline *sl, const char *name, uint32_t key_id)
{
	return sl->key_id == key_id && strcmp(sl->name, name) == 0;
}

/*
 * The split: the text is everything up to and including the newline before
 * the LAST empty line, so a text may itself hold empty lines; signature
 * lines are never empty.  A note with two lines of one name and key id is
 * refused, so that verifiers never have to choose between them.  On
 * failure *n is left zeroed (no text, no signatures).
 */
int
tlog_note_parse(const char *s, size_t len, struct tlog_note *n,
    struct err_ctx *e)
{
	struct tlog_lines l;
	const char *line;
	size_t i, split, line_len;
	int r, found = 0;

	return_val_if_fail(s != NULL && n != NULL, ERR_INVALID_ARG);
	memset(n, 0, sizeof(*n));
	if (len > TLOG_NOTE_MAX)
		return err_set(e, ERR_TOO_LARGE, "signed note: %zu bytes is "
		    "longer than %d", len, TLOG_NOTE_MAX);
	if (len == 0 || s[len - 1] != '\n')
		return err_set(e, ERR_FORMAT,
		    "signed note: does not end in a newline");
	if (!text_ok(s, len))
		return err_set(e, ERR_FORMAT, "signed note: not UTF-8 without "
		    "control characters");
	/* s[split] is the newline that ends the text, s[split + 1] the
	 * empty line. */
	for (split = len - 1; split > 0; split--) {
		if (s[split] == '\n' && s[split - 1] == '\n') {
			found = 1;
			split--;
			break;
		}
	}
	if (!found)
		return err_set(e, ERR_FORMAT, "signed note: no empty line "
		    "between the text and the signatures");
	if (split + 1 > TLOG_TEXT_MAX)
		return err_set(e, ERR_TOO_LARGE, "signed note: text of %zu "
		    "bytes is longer than %d", split + 1, TLOG_TEXT_MAX);
	memcpy(n->text, s, split + 1);
	n->text[split + 1] = '\0';
	n->text_len = split + 1;
	l.s = s;
	l.len = len;
	l.pos = split + 2;
	if (l.pos >= l.len) {
		r = err_set(e, ERR_FORMAT, "signed note: no signature lines");
		goto fail;
	}
	while (l.pos < l.len) {
		if (lines_next(&l, &line, &line_len) != 0) {
			r = err_set(e, ERR_FORMAT,
			    "signed note: unterminated signature line");
			goto fail;
		}
		if (n->nsig == TLOG_SIGS_MAX) {
			r = err_set(e, ERR_TOO_LARGE, "signed note: more than "
			    "%d signature lines", TLOG_SIGS_MAX);
			goto fail;
		}
		if ((r = tlog_sigline_parse(line, line_len + 1,
		    &n->sig[n->nsig], e)) != 0)
			goto fail;
		for (i = 0; i < n->nsig; i++) {
			if (sigline_is(&n->sig[i], n->sig[n->nsig].name,
			    n->sig[n->nsig].key_id)) {
				r = err_set(e, ERR_FORMAT, "signed note: two "
				    "signatures of key '%s' %08x",
				    n->sig[i].name, n->sig[i].key_id);
				goto fail;
			}
		}
		n->nsig++;
	}
	return 0;
 fail:
	memset(n, 0, sizeof(*n));
	return r;
}

/* Appends the line "— name base64(key id || sig)\n" of sl to b. */
static int
sigline_put(struct buf *b, const struct tlog_sigline *sl)
{
	uint8_t raw[4 + TLOG_SIG_MAX];
	char *b64 = NULL;
	int r;

	if (sl->sig_len == 0 || sl->sig_len > TLOG_SIG_MAX ||
	    !name_str_ok(sl->name))
		return ERR_INVALID_ARG;
	put_be32(raw, sl->key_id);
	memcpy(raw + 4, sl->sig, sl->sig_len);
	if ((r = b64std_encode(raw, 4 + sl->sig_len, &b64)) != 0)
		return r;
	if ((r = buf_put(b, TLOG_DASH " ", TLOG_DASH_LEN + 1)) != 0 ||
	    (r = buf_put(b, sl->name, strlen(sl->name))) != 0 ||
	    (r = buf_put_u8(b, ' ')) != 0 ||
	    (r = buf_put(b, b64, strlen(b64))) != 0 ||
	    (r = buf_put_u8(b, '\n')) != 0)
		goto out;
	r = 0;
 out:
	free(b64);
	return r;
}

int
tlog_note_format(const struct tlog_note *n, char **out, size_t *len)
{
	struct buf *b = NULL;
	uint8_t *p = NULL;
	size_t i, plen;
	int r = ERR_INTERNAL;

	return_val_if_fail(n != NULL && out != NULL && len != NULL,
	    ERR_INVALID_ARG);
	if (n->text_len == 0 || n->text_len > TLOG_TEXT_MAX ||
	    n->text[n->text_len - 1] != '\n' || n->nsig == 0 ||
	    n->nsig > TLOG_SIGS_MAX)
		return ERR_INVALID_ARG;
	if ((b = buf_new(TLOG_NOTE_MAX + 1)) == NULL)
		return ERR_ALLOC;
	if ((r = buf_put(b, n->text, n->text_len)) != 0 ||
	    (r = buf_put_u8(b, '\n')) != 0)
		goto out;
	for (i = 0; i < n->nsig; i++)
		if ((r = sigline_put(b, &n->sig[i])) != 0)
			goto out;
	if (buf_len(b) > TLOG_NOTE_MAX) {
		r = ERR_TOO_LARGE;
		goto out;
	}
	if ((r = buf_put_u8(b, '\0')) != 0 ||
	    (r = buf_steal(b, &p, &plen)) != 0)
		goto out;
	*out = (char *)p;
	*len = plen - 1;
	r = 0;
 out:
	buf_free(b);
	return r;
}

int
tlog_note_add_sig(struct tlog_note *n, const struct tlog_sigline *sl)
{
	size_t i;

	return_val_if_fail(n != NULL && sl != NULL, ERR_INVALID_ARG);
	if (sl->sig_len == 0 || sl->sig_len > TLOG_SIG_MAX ||
	    !name_str_ok(sl->name) || n->nsig > TLOG_SIGS_MAX)
		return ERR_INVALID_ARG;
	for (i = 0; i < n->nsig; i++) {
		if (sigline_is(&n->sig[i], sl->name, sl->key_id)) {
			n->sig[i] = *sl;
			return 0;
		}
	}
	if (n->nsig == TLOG_SIGS_MAX)
		return ERR_TOO_LARGE;
	n->sig[n->nsig++] = *sl;
	return 0;
}

/* The line of key (name, key_id) in n, or NULL. */
static const struct tlog_sigline *
note_find(const struct tlog_note *n, const char *name, uint32_t key_id)
{
	size_t i;

	for (i = 0; i < n->nsig && i < TLOG_SIGS_MAX; i++)
		if (sigline_is(&n->sig[i], name, key_id))
			return &n->sig[i];
	return NULL;
}

/* --- verifier keys --- */

/* SHA-256(name || "\n" || type || key)[:4] into *id; ERR_CRYPTO (or
 * ERR_ALLOC) when hashing fails. */
static int
key_id_compute(const char *name, uint8_t type, const uint8_t *key,
    size_t key_len, uint32_t *id)
{
	uint8_t h[CRYPTO_SHA256_LEN];
	EVP_MD_CTX *ctx;
	int r = ERR_CRYPTO;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return ERR_ALLOC;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, name, strlen(name)) == 1 &&
	    EVP_DigestUpdate(ctx, "\n", 1) == 1 &&
	    EVP_DigestUpdate(ctx, &type, 1) == 1 &&
	    EVP_DigestUpdate(ctx, key, key_len) == 1 &&
	    EVP_DigestFinal_ex(ctx, h, NULL) == 1) {
		*id = get_be32(h);
		r = 0;
	} else
		ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return r;
}

/* 0 when hashing fails (out of memory), which no caller can mistake for
 * success: every check compares against a key id computed the same way
 * in key_id_compute(), which reports the failure. */
uint32_t
tlog_key_id(const char *name, uint8_t type, const uint8_t *key,
    size_t key_len)
{
	uint32_t id = 0;

	if (name == NULL || (key == NULL && key_len != 0))
		return 0;
	if (key_id_compute(name, type, key, key_len, &id) != 0)
		return 0;
	return id;
}

/* The key id a vkey of type type must have: SHA-256 of the DER SPKI for
 * ECDSA keys (type 0x02, as C2SP signed-note defines it), tlog_key_id()
 * for the others. */
static int
vkey_expected_id(const char *name, uint8_t type, const uint8_t *key,
    size_t key_len, uint32_t *id)
{
	uint8_t h[CRYPTO_SHA256_LEN];
	int r;

	if (type == TLOG_SIGTYPE_ECDSA) {
		if ((r = crypto_sha256(key, key_len, h)) != 0)
			return r;
		*id = get_be32(h);
		return 0;
	}
	return key_id_compute(name, type, key, key_len, id);
}

/*
 * Types 0x01 and 0x04 carry a 32-byte Ed25519 key.  Type 0x02 carries a
 * DER SPKI that must import as a P-256 key, and its key id is
 * SHA-256(SPKI)[:4] rather than SHA-256(name || "\n" || type || key)[:4]:
 * that is how C2SP signed-note defines ECDSA keys, and how the directory
 * names its head key (docs/protocol.md 7.2).  Other types are
 * ERR_UNSUPPORTED; hex is lowercase only.
 */
int
tlog_vkey_parse(const char *s, struct tlog_vkey *k, struct err_ctx *e)
{
	const char *p1, *p2;
	size_t slen, name_len, raw_len = 0;
	uint8_t idb[4], *raw = NULL;
	EVP_PKEY *pk = NULL;
	uint32_t want;
	int r;

	return_val_if_fail(s != NULL && k != NULL, ERR_INVALID_ARG);
	slen = strnlen(s, 2 * TLOG_VKEY_MAX + 1);
	if (slen > 2 * TLOG_VKEY_MAX)
		return err_set(e, ERR_TOO_LARGE, "verifier key: longer than "
		    "%d characters", 2 * TLOG_VKEY_MAX);
	if ((p1 = memchr(s, '+', slen)) == NULL ||
	    (size_t)(p1 - s) + 10 > slen || p1[9] != '+')
		return err_set(e, ERR_FORMAT, "verifier key: not "
		    "'<name>+<8 hex digits>+<base64 key>'");
	name_len = (size_t)(p1 - s);
	if (!name_ok(s, name_len))
		return err_set(e, ERR_FORMAT, "verifier key: the name is "
		    "empty, too long, not UTF-8 or has spaces or control "
		    "characters");
	if (hex_decode(p1 + 1, 8, idb, sizeof(idb)) != 0)
		return err_set(e, ERR_FORMAT, "verifier key '%.*s': the key "
		    "id is not 8 lowercase hex digits", (int)name_len, s);
	p2 = p1 + 10;
	if ((r = b64std_decode(p2, slen - (size_t)(p2 - s), TLOG_VKEY_MAX + 1,
	    &raw, &raw_len)) != 0) {
		if (r == ERR_ALLOC)
			return err_set(e, r, "verifier key: out of memory");
		return err_set(e, r == ERR_TOO_LARGE ? r : ERR_FORMAT,
		    "verifier key '%.*s': the key is not standard base64 of "
		    "at most %d bytes", (int)name_len, s, TLOG_VKEY_MAX + 1);
	}
	if (raw_len < 2) {
		r = err_set(e, ERR_FORMAT, "verifier key '%.*s': no key",
		    (int)name_len, s);
		goto out;
	}
	switch (raw[0]) {
	case TLOG_SIGTYPE_ED25519:
	case TLOG_SIGTYPE_COSIG:
		if (raw_len - 1 != TLOG_ED25519_LEN) {
			r = err_set(e, ERR_FORMAT, "verifier key '%.*s': an "
			    "Ed25519 key of %zu bytes, not 32", (int)name_len,
			    s, raw_len - 1);
			goto out;
		}
		break;
	case TLOG_SIGTYPE_ECDSA:
		if ((r = crypto_spki_import(raw + 1, raw_len - 1, &pk,
		    e)) != 0) {
			r = err_wrap(e, ERR_FORMAT, "verifier key '%.*s': the "
			    "key is not the DER SPKI of a P-256 key: %s",
			    (int)name_len, s, err_msg(e));
			goto out;
		}
		if (!crypto_is_p256(pk)) {
			r = err_set(e, ERR_FORMAT, "verifier key '%.*s': an "
			    "ECDSA key must be P-256", (int)name_len, s);
			goto out;
		}
		break;
	default:
		r = err_set(e, ERR_UNSUPPORTED, "verifier key '%.*s': "
		    "signature type 0x%02x is not supported (0x01, 0x02, "
		    "0x04 are)", (int)name_len, s, raw[0]);
		goto out;
	}
	memset(k, 0, sizeof(*k));
	memcpy(k->name, s, name_len);
	k->name[name_len] = '\0';
	k->type = raw[0];
	k->key_len = raw_len - 1;
	memcpy(k->key, raw + 1, k->key_len);
	k->key_id = get_be32(idb);
	if ((r = vkey_expected_id(k->name, k->type, k->key, k->key_len,
	    &want)) != 0) {
		memset(k, 0, sizeof(*k));
		goto out;
	}
	if (want != k->key_id) {
		r = err_set(e, ERR_FORMAT, "verifier key '%s': key id %08x "
		    "does not match the key (%08x); the key was mistyped or "
		    "altered", k->name, k->key_id, want);
		memset(k, 0, sizeof(*k));
		goto out;
	}
	r = 0;
 out:
	EVP_PKEY_free(pk);
	free(raw);
	return r;
}

int
tlog_vkey_format(const struct tlog_vkey *k, char *out, size_t out_size)
{
	uint8_t raw[1 + TLOG_VKEY_MAX];
	char *b64 = NULL;
	int n, r;

	return_val_if_fail(k != NULL && out != NULL, ERR_INVALID_ARG);
	if (!name_str_ok(k->name) || k->key_len == 0 ||
	    k->key_len > TLOG_VKEY_MAX)
		return ERR_INVALID_ARG;
	raw[0] = k->type;
	memcpy(raw + 1, k->key, k->key_len);
	if ((r = b64std_encode(raw, 1 + k->key_len, &b64)) != 0)
		return r;
	n = snprintf(out, out_size, "%s+%08x+%s", k->name,
	    (unsigned int)k->key_id, b64);
	free(b64);
	if (n < 0)
		return ERR_INTERNAL;
	if ((size_t)n >= out_size)
		return ERR_TOO_LARGE;
	return 0;
}

int
tlog_vkey_cosigner(const char *name, EVP_PKEY *pub, struct tlog_vkey *k,
    struct err_ctx *e)
{
	size_t len = TLOG_ED25519_LEN;

	return_val_if_fail(name != NULL && pub != NULL && k != NULL,
	    ERR_INVALID_ARG);
	if (!name_str_ok(name))
		return err_set(e, ERR_INVALID_ARG, "cosigner name '%.*s' is "
		    "empty, too long or has spaces, '+' or control characters",
		    TLOG_NAME_MAX, name);
	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_ED25519)
		return err_set(e, ERR_INVALID_ARG, "cosigner '%s': the key "
		    "is not an Ed25519 key", name);
	memset(k, 0, sizeof(*k));
	if (EVP_PKEY_get_raw_public_key(pub, k->key, &len) != 1 ||
	    len != TLOG_ED25519_LEN) {
		ERR_clear_error();
		memset(k, 0, sizeof(*k));
		return err_set(e, ERR_CRYPTO, "cosigner '%s': cannot read "
		    "the Ed25519 public key", name);
	}
	strcpy(k->name, name);
	k->type = TLOG_SIGTYPE_COSIG;
	k->key_len = TLOG_ED25519_LEN;
	if (key_id_compute(k->name, k->type, k->key, k->key_len,
	    &k->key_id) != 0) {
		memset(k, 0, sizeof(*k));
		return err_set(e, ERR_CRYPTO, "cosigner '%s': cannot hash "
		    "the key", name);
	}
	return 0;
}

int
tlog_vkey_log(const char *name, const uint8_t *spki, size_t spki_len,
    struct tlog_vkey *k, struct err_ctx *e)
{
	EVP_PKEY *pk = NULL;
	uint32_t id;
	int r;

	return_val_if_fail(name != NULL && spki != NULL && k != NULL,
	    ERR_INVALID_ARG);
	if (!name_str_ok(name))
		return err_set(e, ERR_INVALID_ARG, "log name '%.*s' is empty, "
		    "too long or has spaces, '+' or control characters",
		    TLOG_NAME_MAX, name);
	if (spki_len > TLOG_VKEY_MAX)
		return err_set(e, ERR_INVALID_ARG, "log '%s': SPKI of %zu "
		    "bytes is too long", name, spki_len);
	if ((r = crypto_spki_import(spki, spki_len, &pk, e)) != 0)
		return err_wrap(e, ERR_INVALID_ARG, "log '%s': the key is not "
		    "a DER SPKI: %s", name, err_msg(e));
	r = crypto_is_p256(pk);
	EVP_PKEY_free(pk);
	if (!r)
		return err_set(e, ERR_INVALID_ARG, "log '%s': the key is not "
		    "a P-256 key", name);
	if ((r = vkey_expected_id(name, TLOG_SIGTYPE_ECDSA, spki, spki_len,
	    &id)) != 0)
		return err_set(e, r, "log '%s': cannot hash the key", name);
	memset(k, 0, sizeof(*k));
	strcpy(k->name, name);
	k->type = TLOG_SIGTYPE_ECDSA;
	memcpy(k->key, spki, spki_len);
	k->key_len = spki_len;
	k->key_id = id;
	return 0;
}

/* --- the directory's signature (type 0x02) --- */

int
tlog_note_sign_log(struct tlog_note *n, const struct tlog_vkey *log,
    tlog_ecdsa_sign_fn sign, void *arg, struct err_ctx *e)
{
	uint8_t digest[CRYPTO_SHA256_LEN], raw[CRYPTO_ECDSA_SIG_LEN];
	struct tlog_sigline sl;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int r;

	return_val_if_fail(n != NULL && log != NULL && sign != NULL,
	    ERR_INVALID_ARG);
	if (log->type != TLOG_SIGTYPE_ECDSA || n->text_len == 0 ||
	    n->text_len > TLOG_TEXT_MAX)
		return err_set(e, ERR_INVALID_ARG, "log '%s': cannot sign: "
		    "not an ECDSA log key, or no note text", log->name);
	if ((r = crypto_sha256(n->text, n->text_len, digest)) != 0)
		return err_set(e, r, "log '%s': cannot hash the note",
		    log->name);
	if ((r = sign(arg, digest, raw, e)) != 0)
		return err_wrap(e, r, "log '%s': signing the checkpoint "
		    "failed: %s", log->name, err_msg(e));
	if ((r = crypto_ecdsa_raw_to_der(raw, &der, &der_len)) != 0)
		return err_set(e, r, "log '%s': cannot encode the signature",
		    log->name);
	if (der_len > TLOG_SIG_MAX) {
		free(der);
		return err_set(e, ERR_INTERNAL, "log '%s': DER signature of "
		    "%zu bytes", log->name, der_len);
	}
	memset(&sl, 0, sizeof(sl));
	strcpy(sl.name, log->name);
	sl.key_id = log->key_id;
	memcpy(sl.sig, der, der_len);
	sl.sig_len = der_len;
	free(der);
	if ((r = tlog_note_add_sig(n, &sl)) != 0)
		return err_set(e, r, "log '%s': cannot add the signature "
		    "(the note has %zu)", log->name, n->nsig);
	return 0;
}

int
tlog_note_verify_log(const struct tlog_note *n,
    const struct tlog_vkey *log, struct err_ctx *e)
{
	uint8_t digest[CRYPTO_SHA256_LEN], raw[CRYPTO_ECDSA_SIG_LEN];
	const struct tlog_sigline *sl;
	EVP_PKEY *pub = NULL;
	int r;

	return_val_if_fail(n != NULL && log != NULL, ERR_INVALID_ARG);
	if (log->type != TLOG_SIGTYPE_ECDSA || n->text_len > TLOG_TEXT_MAX)
		return err_set(e, ERR_INVALID_ARG, "log '%s': not an ECDSA "
		    "log key", log->name);
	if ((sl = note_find(n, log->name, log->key_id)) == NULL)
		return err_set(e, ERR_NOT_FOUND, "checkpoint: no signature "
		    "of log '%s' key %08x", log->name, log->key_id);
	if (crypto_ecdsa_der_to_raw(sl->sig, sl->sig_len, raw) != 0)
		return err_set(e, ERR_SIGNATURE, "checkpoint: the signature "
		    "of log '%s' is not a DER ECDSA signature", log->name);
	if ((r = crypto_spki_import(log->key, log->key_len, &pub, e)) != 0)
		return err_wrap(e, ERR_INVALID_ARG, "log '%s': bad key: %s",
		    log->name, err_msg(e));
	if ((r = crypto_sha256(n->text, n->text_len, digest)) != 0) {
		r = err_set(e, r, "log '%s': cannot hash the note",
		    log->name);
		goto out;
	}
	r = crypto_ecdsa_verify(pub, digest, raw);
	if (r == ERR_SIGNATURE)
		r = err_set(e, r, "checkpoint: the signature of log '%s' key "
		    "%08x does not verify", log->name, log->key_id);
	else if (r != 0)
		r = err_set(e, r, "checkpoint: cannot verify the signature "
		    "of log '%s'", log->name);
 out:
	EVP_PKEY_free(pub);
	return r;
}

/* --- cosignatures (type 0x04) --- */

/* The signed message "cosignature/v1\ntime <t>\n" || text in a new buffer
 * in *msg of *msg_len bytes (caller frees). */
static int
cosig_message(const char *text, size_t text_len, uint64_t t, uint8_t **msg,
    size_t *msg_len)
{
	char head[sizeof(TLOG_COSIG_PREFIX) + TLOG_U64_DIGITS + 1];
	uint8_t *m;
	int hl;

	hl = snprintf(head, sizeof(head), TLOG_COSIG_PREFIX "%llu\n",
	    (unsigned long long)t);
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return ERR_INTERNAL;
	if ((m = malloc((size_t)hl + text_len + 1)) == NULL)
		return ERR_ALLOC;
	memcpy(m, head, (size_t)hl);
	memcpy(m + hl, text, text_len);
	*msg = m;
	*msg_len = (size_t)hl + text_len;
	return 0;
}

int
tlog_cosign(const char *text, size_t text_len, EVP_PKEY *priv,
    const struct tlog_vkey *k, uint64_t t, struct tlog_sigline *out,
    struct err_ctx *e)
{
	uint8_t pub[TLOG_ED25519_LEN], *msg = NULL;
	size_t pub_len = sizeof(pub), msg_len = 0, sig_len = 64;
	struct tlog_sigline sl;
	EVP_MD_CTX *ctx = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(text != NULL && priv != NULL && k != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	if (k->type != TLOG_SIGTYPE_COSIG || k->key_len != TLOG_ED25519_LEN ||
	    !name_str_ok(k->name))
		return err_set(e, ERR_INVALID_ARG, "cosigner: not a "
		    "cosignature (0x04) verifier key");
	if (text_len == 0 || text_len > TLOG_TEXT_MAX ||
	    text[text_len - 1] != '\n')
		return err_set(e, ERR_INVALID_ARG, "cosigner '%s': note text "
		    "empty, too long or without its final newline", k->name);
	if (EVP_PKEY_get_base_id(priv) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(priv, pub, &pub_len) != 1 ||
	    pub_len != TLOG_ED25519_LEN ||
	    memcmp(pub, k->key, TLOG_ED25519_LEN) != 0) {
		ERR_clear_error();
		return err_set(e, ERR_WRONG_KEY, "cosigner '%s': the private "
		    "key is not the Ed25519 key of the verifier key", k->name);
	}
	if ((r = cosig_message(text, text_len, t, &msg, &msg_len)) != 0)
		return err_set(e, r, "cosigner '%s': out of memory", k->name);
	memset(&sl, 0, sizeof(sl));
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		r = err_set(e, ERR_ALLOC, "cosigner '%s': out of memory",
		    k->name);
		goto out;
	}
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, priv) != 1 ||
	    EVP_DigestSign(ctx, sl.sig + 8, &sig_len, msg, msg_len) != 1 ||
	    sig_len != 64) {
		ERR_clear_error();
		r = err_set(e, ERR_CRYPTO, "cosigner '%s': Ed25519 signing "
		    "failed", k->name);
		goto out;
	}
	strcpy(sl.name, k->name);
	sl.key_id = k->key_id;
	put_be32(sl.sig, (uint32_t)(t >> 32));
	put_be32(sl.sig + 4, (uint32_t)t);
	sl.sig_len = TLOG_COSIG_LEN;
	*out = sl;
	r = 0;
 out:
	EVP_MD_CTX_free(ctx);
	free(msg);
	return r;
}

int
tlog_cosig_verify(const struct tlog_note *n, const struct tlog_vkey *k,
    uint64_t *t, struct err_ctx *e)
{
	const struct tlog_sigline *sl;
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *pub = NULL;
	uint8_t *msg = NULL;
	size_t msg_len = 0;
	uint64_t ts;
	int r = ERR_INTERNAL;

	return_val_if_fail(n != NULL && k != NULL && t != NULL,
	    ERR_INVALID_ARG);
	if (k->type != TLOG_SIGTYPE_COSIG || k->key_len != TLOG_ED25519_LEN ||
	    n->text_len > TLOG_TEXT_MAX)
		return err_set(e, ERR_INVALID_ARG, "witness '%s': not a "
		    "cosignature (0x04) verifier key", k->name);
	if ((sl = note_find(n, k->name, k->key_id)) == NULL)
		return err_set(e, ERR_NOT_FOUND, "checkpoint: no cosignature "
		    "of witness '%s' key %08x", k->name, k->key_id);
	if (sl->sig_len != TLOG_COSIG_LEN)
		return err_set(e, ERR_SIGNATURE, "checkpoint: the cosignature "
		    "of witness '%s' has %zu bytes, not %d", k->name,
		    sl->sig_len, TLOG_COSIG_LEN);
	ts = (uint64_t)get_be32(sl->sig) << 32 | get_be32(sl->sig + 4);
	if ((r = cosig_message(n->text, n->text_len, ts, &msg,
	    &msg_len)) != 0)
		return err_set(e, r, "witness '%s': out of memory", k->name);
	if ((pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
	    k->key, k->key_len)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL) {
		ERR_clear_error();
		r = err_set(e, ERR_CRYPTO, "witness '%s': cannot load the "
		    "Ed25519 key", k->name);
		goto out;
	}
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) != 1) {
		ERR_clear_error();
		r = err_set(e, ERR_CRYPTO, "witness '%s': cannot start "
		    "Ed25519 verification", k->name);
		goto out;
	}
	if (EVP_DigestVerify(ctx, sl->sig + 8, 64, msg, msg_len) != 1) {
		ERR_clear_error();
		r = err_set(e, ERR_SIGNATURE, "checkpoint: the cosignature of "
		    "witness '%s' key %08x does not verify", k->name,
		    k->key_id);
		goto out;
	}
	*t = ts;
	r = 0;
 out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
	free(msg);
	return r;
}

/* --- tlog-witness requests and JSON proofs --- */

int
tlog_witness_req_parse(const char *s, size_t len, uint64_t *old,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, size_t *note_off,
    struct err_ctx *e)
{
	struct tlog_lines l = { s, len, 0 };
	const char *line;
	size_t line_len, count = 0;
	uint64_t o;
	int r;

	return_val_if_fail(s != NULL && old != NULL && proof != NULL &&
	    n != NULL && note_off != NULL, ERR_INVALID_ARG);
	if (len > TLOG_WITNESS_HEAD_MAX + TLOG_NOTE_MAX)
		return err_set(e, ERR_TOO_LARGE, "add-checkpoint request: "
		    "%zu bytes is too long", len);
	if (lines_next(&l, &line, &line_len) != 0 || line_len < 4 ||
	    memcmp(line, "old ", 4) != 0)
		return err_set(e, ERR_FORMAT, "add-checkpoint request: does "
		    "not start with an 'old <size>' line");
	if ((r = parse_u64(line + 4, line_len - 4, MERKLE_SIZE_MAX, &o)) != 0)
		return err_set(e, r, "add-checkpoint request: the old size "
		    "is not a decimal number up to 2^63-1 without leading "
		    "zeros");
	for (;;) {
		if (lines_next(&l, &line, &line_len) != 0)
			return err_set(e, ERR_FORMAT, "add-checkpoint request: "
			    "no empty line before the checkpoint");
		if (line_len == 0)
			break;
		if (count == TLOG_WITNESS_PROOF_MAX)
			return err_set(e, ERR_TOO_LARGE, "add-checkpoint "
			    "request: more than %d proof hashes",
			    TLOG_WITNESS_PROOF_MAX);
		if (b64std_decode_exact(line, line_len, proof[count],
		    MERKLE_HASH_LEN) != 0)
			return err_set(e, ERR_FORMAT, "add-checkpoint request: "
			    "proof line %zu is not standard base64 of 32 "
			    "bytes", count + 1);
		count++;
	}
	*old = o;
	*n = count;
	*note_off = l.pos;
	return 0;
}

int
tlog_witness_req_format(uint64_t old,
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n, const char *note,
    size_t note_len, char **out, size_t *len)
{
	char head[4 + TLOG_U64_DIGITS + 2];
	struct buf *b = NULL;
	char *b64 = NULL;
	uint8_t *p = NULL;
	size_t i, plen;
	int hl, r = ERR_INTERNAL;

	return_val_if_fail(note != NULL && out != NULL && len != NULL &&
	    (proof != NULL || n == 0), ERR_INVALID_ARG);
	if (old > MERKLE_SIZE_MAX || n > TLOG_WITNESS_PROOF_MAX ||
	    note_len > TLOG_NOTE_MAX)
		return ERR_INVALID_ARG;
	hl = snprintf(head, sizeof(head), "old %llu\n",
	    (unsigned long long)old);
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return ERR_INTERNAL;
	if ((b = buf_new(TLOG_WITNESS_HEAD_MAX + TLOG_NOTE_MAX + 1)) == NULL)
		return ERR_ALLOC;
	if ((r = buf_put(b, head, (size_t)hl)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = b64std_encode(proof[i], MERKLE_HASH_LEN, &b64)) != 0)
			goto out;
		r = buf_put(b, b64, strlen(b64));
		free(b64);
		b64 = NULL;
		if (r != 0 || (r = buf_put_u8(b, '\n')) != 0)
			goto out;
	}
	if ((r = buf_put_u8(b, '\n')) != 0 ||
	    (r = buf_put(b, note, note_len)) != 0 ||
	    (r = buf_put_u8(b, '\0')) != 0 ||
	    (r = buf_steal(b, &p, &plen)) != 0)
		goto out;
	*out = (char *)p;
	*len = plen - 1;
	r = 0;
 out:
	buf_free(b);
	return r;
}

int
tlog_proof_from_json(const void *array, uint8_t proof[][MERKLE_HASH_LEN],
    size_t *n, struct err_ctx *e)
{
	const json_t *a = array;
	json_t *v;
	size_t i, count;

	return_val_if_fail(proof != NULL && n != NULL, ERR_INVALID_ARG);
	if (a == NULL || !json_is_array(a))
		return err_set(e, ERR_FORMAT, "proof: not a JSON array");
	count = json_array_size(a);
	if (count > MERKLE_PROOF_MAX)
		return err_set(e, ERR_TOO_LARGE, "proof: %zu hashes, more "
		    "than %d", count, MERKLE_PROOF_MAX);
	for (i = 0; i < count; i++) {
		v = json_array_get(a, i);
		if (!json_is_string(v) ||
		    b64url_decode_exact(json_string_value(v),
		    json_string_length(v), proof[i], MERKLE_HASH_LEN) != 0)
			return err_set(e, ERR_FORMAT, "proof: hash %zu is not "
			    "base64url of 32 bytes", i);
	}
	*n = count;
	return 0;
}
