/*
 * devrec.c - device records: syntax, ids, binding and endorsement
 * signatures, JSON.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "transcript.h"

/* Transcripts here hold two SPKIs and short strings. */
#define DEVREC_TRANSCRIPT_MAX (3 * CRYPTO_SPKI_MAX)

int
devrec_sign_pkey(void *arg, const uint8_t digest[32],
    uint8_t sig[DEVREC_SIG_LEN], struct err_ctx *e)
{
	int r;

	return_val_if_fail(arg != NULL && digest != NULL && sig != NULL,
	    ERR_INVALID_ARG);
	if ((r = crypto_ecdsa_sign((EVP_PKEY *)arg, digest, sig)) != 0)
		return err_set(e, r, "software key could not sign");
	return 0;
}

/* --- syntax --- */

static int
account_char_ok(unsigned char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return 1;
	if (first)
		return 0;
	return c == '.' || c == '_' || c == '+' || c == '@' || c == '-';
}

int
devrec_account_check(const char *s, struct err_ctx *e)
{
	size_t i, len;

	if (s == NULL)
		return err_set(e, ERR_FORMAT, "account name missing");
	len = strlen(s);
	if (len == 0 || len > DEVREC_ACCOUNT_MAX)
		return err_set(e, ERR_FORMAT, "account name must be 1 to %d "
		    "bytes long (got %zu)", DEVREC_ACCOUNT_MAX, len);
	for (i = 0; i < len; i++) {
		if (!account_char_ok((unsigned char)s[i], i == 0))
			return err_set(e, ERR_FORMAT, "account name has a "
			    "character not allowed at byte %zu: use a-z, 0-9 "
			    "and ._+@- (starting with a-z or 0-9)", i + 1);
	}
	return 0;
}

int
devrec_account_valid(const char *s)
{
	return devrec_account_check(s, NULL) == 0;
}

/*
 * Code points a label must not contain: the controls (C0, DEL, C1) that
 * PROTOCOL.md excludes, and the bidirectional formatting controls, which
 * can make one label display as another.
 */
static int
label_cp_forbidden(uint32_t cp)
{
	if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
		return 1;
	if (cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return 1;
	return 0;
}

int
devrec_label_check(const char *s, struct err_ctx *e)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, k, n, len;
	uint32_t cp;

	if (s == NULL)
		return err_set(e, ERR_FORMAT, "device label missing");
	len = strlen(s);
	if (len == 0 || len > DEVREC_LABEL_MAX)
		return err_set(e, ERR_FORMAT, "device label must be 1 to %d "
		    "bytes long (got %zu)", DEVREC_LABEL_MAX, len);
	while (i < len) {
		if (p[i] < 0x80) {
			cp = p[i];
			n = 0;
		} else if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			cp = p[i] & 0x1f;
			n = 1;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			cp = p[i] & 0x0f;
			n = 2;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			cp = p[i] & 0x07;
			n = 3;
		} else
			goto bad_utf8;
		if (len - i - 1 < n)
			goto bad_utf8;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				goto bad_utf8;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad_utf8;
		if (label_cp_forbidden(cp))
			return err_set(e, ERR_FORMAT, "device label contains "
			    "the control character U+%04X at byte %zu",
			    (unsigned int)cp, i + 1);
		i += n + 1;
	}
	return 0;
 bad_utf8:
	return err_set(e, ERR_FORMAT, "device label is not valid UTF-8 at "
	    "byte %zu", i + 1);
}

int
devrec_label_valid(const char *s)
{
	return devrec_label_check(s, NULL) == 0;
}

int
devrec_id_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < DEVREC_ID_HEX_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return s[DEVREC_ID_HEX_LEN] == '\0';
}

static int
enc_alg_known(const char *alg)
{
	return strcmp(alg, DEVREC_ENC_HPKE_P256) == 0 ||
	    strcmp(alg, DEVREC_ENC_RSA_OAEP) == 0;
}

/* --- ids and hashes --- */

int
devrec_device_id(const uint8_t *sig_pub, size_t sig_pub_len,
    char out[DEVREC_ID_HEX_LEN + 1])
{
	uint8_t h[32];
	int r;

	return_val_if_fail(sig_pub != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = crypto_sha256(sig_pub, sig_pub_len, h)) != 0)
		return r;
	hex_encode(h, sizeof(h), out);
	return 0;
}

int
devrec_pkey_id(EVP_PKEY *pkey, char out[DEVREC_ID_HEX_LEN + 1])
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(pkey != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = crypto_spki_export(pkey, &der, &der_len)) != 0)
		goto out;
	r = devrec_device_id(der, der_len, out);
 out:
	free(der);
	return r;
}

int
devrec_short_id(const char *id, char out[DEVREC_SHORT_ID_LEN + 1])
{
	size_t i, o = 0;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (!devrec_id_valid(id))
		return ERR_INVALID_ARG;
	for (i = 0; i < 16; i++) {
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = id[i];
	}
	out[o] = '\0';
	return 0;
}

int
devrec_binding_hash(const struct devrec *rec, uint8_t out[32])
{
	struct buf *b;
	int r;

	return_val_if_fail(rec != NULL && out != NULL, ERR_INVALID_ARG);
	if ((b = buf_new(DEVREC_TRANSCRIPT_MAX)) == NULL)
		return ERR_ALLOC;
	r = tr_device_binding(b, rec->account, rec->label, rec->sig_pub,
	    rec->sig_pub_len, rec->enc_alg, rec->enc_pub, rec->enc_pub_len,
	    rec->created);
	return tr_hash_free(b, r, out);
}

int
devrec_endorsement_hash(const struct devrec *rec, uint8_t out[32])
{
	struct buf *b;
	uint8_t hb[32];
	int r;

	return_val_if_fail(rec != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = devrec_binding_hash(rec, hb)) != 0)
		return r;
	if ((b = buf_new(DEVREC_TRANSCRIPT_MAX)) == NULL)
		return ERR_ALLOC;
	r = tr_endorsement(b, rec->account, rec->device, hb);
	return tr_hash_free(b, r, out);
}

/* --- keys --- */

/*
 * Imports sig_pub and enc_pub and checks their kinds against enc_alg.  On
 * success and when sig_out is not NULL, *sig_out is the signing key (caller
 * frees).  0 or ERR_FORMAT with a message.
 */
static int
check_keys(const struct devrec *rec, EVP_PKEY **sig_out, struct err_ctx *e)
{
	EVP_PKEY *sig = NULL, *enc = NULL;
	int r = ERR_INTERNAL;

	if (rec->sig_pub_len == 0 || rec->sig_pub_len > CRYPTO_SPKI_MAX ||
	    rec->enc_pub_len == 0 || rec->enc_pub_len > CRYPTO_SPKI_MAX) {
		r = err_set(e, ERR_FORMAT, "device record: key length out of "
		    "range");
		goto out;
	}
	if ((r = crypto_spki_import(rec->sig_pub, rec->sig_pub_len, &sig,
	    e)) != 0) {
		r = err_wrap(e, ERR_FORMAT, "device record: sig_pub: %s",
		    err_msg(e));
		goto out;
	}
	if (!crypto_is_p256(sig)) {
		r = err_set(e, ERR_FORMAT, "device record: sig_pub is not an "
		    "EC P-256 key");
		goto out;
	}
	if ((r = crypto_spki_import(rec->enc_pub, rec->enc_pub_len, &enc,
	    e)) != 0) {
		r = err_wrap(e, ERR_FORMAT, "device record: enc_pub: %s",
		    err_msg(e));
		goto out;
	}
	if (strcmp(rec->enc_alg, DEVREC_ENC_HPKE_P256) == 0) {
		if (!crypto_is_p256(enc)) {
			r = err_set(e, ERR_FORMAT, "device record: enc_pub is "
			    "not an EC P-256 key as hpke-p256 requires");
			goto out;
		}
	} else if (strcmp(rec->enc_alg, DEVREC_ENC_RSA_OAEP) == 0) {
		/* PROTOCOL section 2: RSA 2048 or 3072, nothing else. */
		if (!crypto_is_rsa(enc) || (EVP_PKEY_get_bits(enc) != 2048 &&
		    EVP_PKEY_get_bits(enc) != 3072)) {
			r = err_set(e, ERR_FORMAT, "device record: enc_pub is "
			    "not an RSA 2048 or 3072 key as rsa-oaep-sha256 "
			    "requires");
			goto out;
		}
	} else {
		r = err_set(e, ERR_FORMAT, "device record: unknown enc_alg");
		goto out;
	}
	if (sig_out != NULL) {
		*sig_out = sig;
		sig = NULL;	/* transferred */
	}
	r = 0;
 out:
	EVP_PKEY_free(sig);
	EVP_PKEY_free(enc);
	return r;
}

/* Checks every field's syntax (not the keys). */
static int
check_fields(const struct devrec *rec, struct err_ctx *e)
{
	int r;

	if ((r = devrec_account_check(rec->account, e)) != 0 ||
	    (r = devrec_label_check(rec->label, e)) != 0)
		return r;
	if (!devrec_id_valid(rec->device))
		return err_set(e, ERR_FORMAT, "device record: device id is not "
		    "64 lowercase hex digits");
	if (!enc_alg_known(rec->enc_alg))
		return err_set(e, ERR_FORMAT, "device record: enc_alg must be "
		    "\"hpke-p256\" or \"rsa-oaep-sha256\"");
	if (rec->has_endorsement && !devrec_id_valid(rec->endorsed_by))
		return err_set(e, ERR_FORMAT, "device record: endorsement "
		    "\"by\" is not a device id");
	return 0;
}

/* Verifies sig over digest with pub; ERR_SIGNATURE with what in e. */
static int
verify_sig(EVP_PKEY *pub, const uint8_t digest[32],
    const uint8_t sig[DEVREC_SIG_LEN], const char *what, struct err_ctx *e)
{
	int r;

	if ((r = crypto_ecdsa_verify(pub, digest, sig)) == 0)
		return 0;
	if (r == ERR_SIGNATURE)
		return err_set(e, ERR_SIGNATURE, "%s does not verify", what);
	return err_set(e, r, "%s: verification failed: %s", what, err_str(r));
}

int
devrec_verify(const struct devrec *rec, struct err_ctx *e)
{
	EVP_PKEY *sig = NULL;
	char id[DEVREC_ID_HEX_LEN + 1];
	uint8_t hb[32];
	int r = ERR_INTERNAL;

	return_val_if_fail(rec != NULL, ERR_INVALID_ARG);
	if ((r = check_fields(rec, e)) != 0 ||
	    (r = check_keys(rec, &sig, e)) != 0)
		goto out;
	if ((r = devrec_device_id(rec->sig_pub, rec->sig_pub_len, id)) != 0)
		goto out;
	if (strcmp(id, rec->device) != 0) {
		r = err_set(e, ERR_FORMAT, "device record: device id %.16s... "
		    "is not the hash of its sig_pub", rec->device);
		goto out;
	}
	if ((r = devrec_binding_hash(rec, hb)) != 0)
		goto out;
	r = verify_sig(sig, hb, rec->binding_sig, "device record: "
	    "binding_sig", e);
 out:
	EVP_PKEY_free(sig);
	return r;
}

int
devrec_verify_endorsement(const struct devrec *rec,
    const uint8_t *endorser_sig_pub, size_t endorser_sig_pub_len,
    struct err_ctx *e)
{
	EVP_PKEY *pub = NULL;
	char id[DEVREC_ID_HEX_LEN + 1];
	uint8_t h[32];
	int r = ERR_INTERNAL;

	return_val_if_fail(rec != NULL && endorser_sig_pub != NULL,
	    ERR_INVALID_ARG);
	if (!rec->has_endorsement)
		return err_set(e, ERR_NOT_FOUND, "device record has no "
		    "endorsement");
	if ((r = devrec_device_id(endorser_sig_pub, endorser_sig_pub_len,
	    id)) != 0)
		goto out;
	if (strcmp(id, rec->endorsed_by) != 0) {
		r = err_set(e, ERR_FORMAT, "endorsement is by %.16s..., not by "
		    "the key given (%.16s...)", rec->endorsed_by, id);
		goto out;
	}
	if ((r = crypto_spki_import(endorser_sig_pub, endorser_sig_pub_len,
	    &pub, e)) != 0)
		goto out;
	if (!crypto_is_p256(pub)) {
		r = err_set(e, ERR_FORMAT, "endorser key is not EC P-256");
		goto out;
	}
	if ((r = devrec_endorsement_hash(rec, h)) != 0)
		goto out;
	r = verify_sig(pub, h, rec->endorsement_sig, "device record: "
	    "endorsement", e);
 out:
	EVP_PKEY_free(pub);
	return r;
}

/* --- building --- */

/* Copies the NUL-terminated s into dst of dst_size; ERR_FORMAT if longer. */
static int
copy_str(char *dst, size_t dst_size, const char *s)
{
	size_t len = strlen(s);

	if (len >= dst_size)
		return ERR_FORMAT;
	memcpy(dst, s, len + 1);
	return 0;
}

int
devrec_build(struct devrec *out, const char *account, const char *label,
    const uint8_t *sig_pub, size_t sig_pub_len, const char *enc_alg,
    const uint8_t *enc_pub, size_t enc_pub_len, uint64_t created,
    devrec_sign_fn sign, void *sign_arg, struct err_ctx *e)
{
	struct devrec *rec = NULL;
	EVP_PKEY *pub = NULL;
	uint8_t hb[32];
	int r = ERR_INTERNAL;

	return_val_if_fail(out != NULL && account != NULL && label != NULL &&
	    sig_pub != NULL && enc_alg != NULL && enc_pub != NULL &&
	    sign != NULL, ERR_INVALID_ARG);
	if ((r = devrec_account_check(account, e)) != 0 ||
	    (r = devrec_label_check(label, e)) != 0)
		return r;
	if (!enc_alg_known(enc_alg))
		return err_set(e, ERR_UNSUPPORTED, "encryption algorithm "
		    "\"%.32s\" is not supported", enc_alg);
	if (sig_pub_len > CRYPTO_SPKI_MAX || enc_pub_len > CRYPTO_SPKI_MAX)
		return err_set(e, ERR_TOO_LARGE, "public key larger than %d "
		    "bytes", CRYPTO_SPKI_MAX);
	/* The record is ~2 KiB: keep it off the stack. */
	if ((rec = calloc(1, sizeof(*rec))) == NULL)
		return ERR_ALLOC;
	if ((r = copy_str(rec->account, sizeof(rec->account), account)) != 0 ||
	    (r = copy_str(rec->label, sizeof(rec->label), label)) != 0 ||
	    (r = copy_str(rec->enc_alg, sizeof(rec->enc_alg), enc_alg)) != 0)
		goto out;
	memcpy(rec->sig_pub, sig_pub, sig_pub_len);
	rec->sig_pub_len = sig_pub_len;
	memcpy(rec->enc_pub, enc_pub, enc_pub_len);
	rec->enc_pub_len = enc_pub_len;
	rec->created = created;
	if ((r = check_keys(rec, &pub, e)) != 0 ||
	    (r = devrec_device_id(sig_pub, sig_pub_len, rec->device)) != 0 ||
	    (r = devrec_binding_hash(rec, hb)) != 0)
		goto out;
	if ((r = sign(sign_arg, hb, rec->binding_sig, e)) != 0)
		goto out;
	if ((r = verify_sig(pub, hb, rec->binding_sig, "binding signature "
	    "made by the token (is it the token's signing key?)", e)) != 0)
		goto out;
	*out = *rec;
	r = 0;
 out:
	EVP_PKEY_free(pub);
	free(rec);
	return r;
}

int
devrec_endorse(struct devrec *rec, const uint8_t *endorser_sig_pub,
    size_t endorser_sig_pub_len, devrec_sign_fn sign, void *sign_arg,
    struct err_ctx *e)
{
	char by[DEVREC_ID_HEX_LEN + 1];
	uint8_t h[32], sig[DEVREC_SIG_LEN];
	int r = ERR_INTERNAL;
	int had;
	char old_by[DEVREC_ID_HEX_LEN + 1];
	uint8_t old_sig[DEVREC_SIG_LEN];

	return_val_if_fail(rec != NULL && endorser_sig_pub != NULL &&
	    sign != NULL, ERR_INVALID_ARG);
	if ((r = devrec_device_id(endorser_sig_pub, endorser_sig_pub_len,
	    by)) != 0 ||
	    (r = devrec_endorsement_hash(rec, h)) != 0)
		return r;
	if ((r = sign(sign_arg, h, sig, e)) != 0)
		return r;
	/* Set it tentatively so the shared verifier checks it. */
	had = rec->has_endorsement;
	memcpy(old_by, rec->endorsed_by, sizeof(old_by));
	memcpy(old_sig, rec->endorsement_sig, sizeof(old_sig));
	rec->has_endorsement = 1;
	memcpy(rec->endorsed_by, by, sizeof(by));
	memcpy(rec->endorsement_sig, sig, sizeof(sig));
	if ((r = devrec_verify_endorsement(rec, endorser_sig_pub,
	    endorser_sig_pub_len, e)) != 0) {
		rec->has_endorsement = had;
		memcpy(rec->endorsed_by, old_by, sizeof(old_by));
		memcpy(rec->endorsement_sig, old_sig, sizeof(old_sig));
		return r;
	}
	return 0;
}

/* --- JSON helpers --- */

int
devrec_json_keys(const json_t *obj, const char *const *allowed, size_t n,
    const char *what, struct err_ctx *e)
{
	size_t i, present = 0;

	if (!json_is_object(obj))
		return err_set(e, ERR_FORMAT, "%s: not a JSON object", what);
	for (i = 0; i < n; i++) {
		if (json_object_get(obj, allowed[i]) != NULL)
			present++;
	}
	if (present != json_object_size(obj))
		return err_set(e, ERR_FORMAT, "%s: unknown field", what);
	return 0;
}

int
devrec_json_load(const char *s, size_t len, size_t max_len, json_t **out,
    const char *what, struct err_ctx *e)
{
	json_error_t jerr;
	json_t *v;

	return_val_if_fail(s != NULL && out != NULL, ERR_INVALID_ARG);
	if (len > max_len)
		return err_set(e, ERR_TOO_LARGE, "%s: %zu bytes, more than the "
		    "limit of %zu", what, len, max_len);
	if ((v = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return err_set(e, ERR_FORMAT, "%s: invalid JSON at byte %d: "
		    "%.80s", what, jerr.position, jerr.text);
	if (!json_is_object(v)) {
		json_decref(v);
		return err_set(e, ERR_FORMAT, "%s: not a JSON object", what);
	}
	*out = v;
	return 0;
}

/* The value of a required field; NULL (with e set) when missing. */
static json_t *
field(const json_t *obj, const char *key, const char *what, struct err_ctx *e)
{
	json_t *v;

	if (!json_is_object(obj)) {
		err_set(e, ERR_FORMAT, "%s: not a JSON object", what);
		return NULL;
	}
	if ((v = json_object_get(obj, key)) == NULL)
		err_set(e, ERR_FORMAT, "%s: field \"%s\" missing", what, key);
	return v;
}

int
devrec_json_str(const json_t *obj, const char *key, size_t max_len,
    const char **out, const char *what, struct err_ctx *e)
{
	const json_t *v;
	const char *s;
	size_t len;

	if ((v = field(obj, key, what, e)) == NULL)
		return ERR_FORMAT;
	if (!json_is_string(v))
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" must be a "
		    "string", what, key);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0)
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" is empty",
		    what, key);
	if (len > max_len)
		return err_set(e, ERR_TOO_LARGE, "%s: field \"%s\" is longer "
		    "than %zu bytes", what, key, max_len);
	if (memchr(s, '\0', len) != NULL)
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" contains a NUL",
		    what, key);
	*out = s;
	return 0;
}

int
devrec_json_u64(const json_t *obj, const char *key, uint64_t *out,
    const char *what, struct err_ctx *e)
{
	const json_t *v;
	json_int_t i;

	if ((v = field(obj, key, what, e)) == NULL)
		return ERR_FORMAT;
	if (!json_is_integer(v))
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" must be an "
		    "integer", what, key);
	if ((i = json_integer_value(v)) < 0)
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" is negative",
		    what, key);
	/* docs/protocol.md: integers stay exact in every JSON parser. */
	if ((uint64_t)i > DEVREC_JSON_INT_MAX)
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" is above "
		    "2^53", what, key);
	*out = (uint64_t)i;
	return 0;
}

int
devrec_json_id(const json_t *obj, const char *key,
    char out[DEVREC_ID_HEX_LEN + 1], const char *what, struct err_ctx *e)
{
	const char *s;
	int r;

	if ((r = devrec_json_str(obj, key, DEVREC_ID_HEX_LEN, &s, what,
	    e)) != 0) {
		if (r == ERR_TOO_LARGE)
			r = err_wrap(e, ERR_FORMAT, "%s: field \"%s\" is not "
			    "64 lowercase hex digits", what, key);
		return r;
	}
	if (!devrec_id_valid(s))
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" is not 64 "
		    "lowercase hex digits", what, key);
	memcpy(out, s, DEVREC_ID_HEX_LEN + 1);
	return 0;
}

int
devrec_json_hex32(const json_t *obj, const char *key, uint8_t out[32],
    const char *what, struct err_ctx *e)
{
	char id[DEVREC_ID_HEX_LEN + 1];
	int r;

	if ((r = devrec_json_id(obj, key, id, what, e)) != 0)
		return r;
	if (hex_decode(id, DEVREC_ID_HEX_LEN, out, 32) != 0)
		return err_set(e, ERR_FORMAT, "%s: field \"%s\": bad hex",
		    what, key);
	return 0;
}

int
devrec_json_b64(const json_t *obj, const char *key, uint8_t *out,
    size_t max_len, size_t *out_len, const char *what, struct err_ctx *e)
{
	const char *s;
	uint8_t *tmp = NULL;
	size_t tmp_len = 0;
	int r;

	if ((r = devrec_json_str(obj, key, b64url_encoded_len(max_len), &s,
	    what, e)) != 0)
		return r;
	if ((r = b64url_decode(s, strlen(s), max_len, &tmp, &tmp_len)) != 0) {
		if (r == ERR_ALLOC)
			return r;
		return err_set(e, r, "%s: field \"%s\" is not canonical "
		    "unpadded base64url of at most %zu bytes", what, key,
		    max_len);
	}
	memcpy(out, tmp, tmp_len);
	*out_len = tmp_len;
	free(tmp);
	return 0;
}

int
devrec_json_b64_exact(const json_t *obj, const char *key, uint8_t *out,
    size_t want_len, const char *what, struct err_ctx *e)
{
	const char *s;
	int r;

	if ((r = devrec_json_str(obj, key, b64url_encoded_len(want_len), &s,
	    what, e)) != 0) {
		if (r == ERR_TOO_LARGE)
			r = err_wrap(e, ERR_FORMAT, "%s: field \"%s\" is not "
			    "%zu bytes", what, key, want_len);
		return r;
	}
	if (b64url_decode_exact(s, strlen(s), out, want_len) != 0)
		return err_set(e, ERR_FORMAT, "%s: field \"%s\" is not "
		    "canonical unpadded base64url of %zu bytes", what, key,
		    want_len);
	return 0;
}

int
devrec_json_set_u64(json_t *obj, const char *key, uint64_t v)
{
	if (v > DEVREC_JSON_INT_MAX)
		return ERR_INVALID_ARG;
	if (json_object_set_new(obj, key, json_integer((json_int_t)v)) != 0)
		return ERR_ALLOC;
	return 0;
}

int
devrec_json_set_str(json_t *obj, const char *key, const char *v)
{
	if (json_object_set_new(obj, key, json_string(v)) != 0)
		return ERR_ALLOC;
	return 0;
}

int
devrec_json_set_b64(json_t *obj, const char *key, const uint8_t *p,
    size_t len)
{
	char *s = NULL;
	int r;

	if ((r = b64url_encode(p, len, &s)) != 0)
		return r;
	r = json_object_set_new(obj, key, json_string(s)) != 0 ? ERR_ALLOC : 0;
	free(s);
	return r;
}

int
devrec_json_set_hex(json_t *obj, const char *key, const uint8_t *p,
    size_t len)
{
	char *s;
	int r;

	if (len > 1024)
		return ERR_INVALID_ARG;
	if ((s = malloc(2 * len + 1)) == NULL)
		return ERR_ALLOC;
	hex_encode(p, len, s);
	r = json_object_set_new(obj, key, json_string(s)) != 0 ? ERR_ALLOC : 0;
	free(s);
	return r;
}

/* --- record JSON --- */

int
devrec_to_json(const struct devrec *rec, json_t **out, struct err_ctx *e)
{
	json_t *obj = NULL, *en = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(rec != NULL && out != NULL, ERR_INVALID_ARG);
	if ((obj = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_json_set_str(obj, "account", rec->account)) != 0 ||
	    (r = devrec_json_set_str(obj, "device", rec->device)) != 0 ||
	    (r = devrec_json_set_str(obj, "label", rec->label)) != 0 ||
	    (r = devrec_json_set_b64(obj, "sig_pub", rec->sig_pub,
	    rec->sig_pub_len)) != 0 ||
	    (r = devrec_json_set_str(obj, "enc_alg", rec->enc_alg)) != 0 ||
	    (r = devrec_json_set_b64(obj, "enc_pub", rec->enc_pub,
	    rec->enc_pub_len)) != 0 ||
	    (r = devrec_json_set_u64(obj, "created", rec->created)) != 0 ||
	    (r = devrec_json_set_b64(obj, "binding_sig", rec->binding_sig,
	    sizeof(rec->binding_sig))) != 0)
		goto out;
	if (rec->has_endorsement) {
		if ((en = json_object()) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		if ((r = devrec_json_set_str(en, "by", rec->endorsed_by)) != 0 ||
		    (r = devrec_json_set_b64(en, "sig", rec->endorsement_sig,
		    sizeof(rec->endorsement_sig))) != 0)
			goto out;
		if (json_object_set_new(obj, "endorsement", en) != 0) {
			en = NULL;	/* set_new consumed it */
			r = ERR_ALLOC;
			goto out;
		}
		en = NULL;	/* transferred */
	}
	*out = obj;
	obj = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		err_set(e, r, "device record: cannot encode: %s", err_str(r));
	json_decref(en);
	json_decref(obj);
	return r;
}

static const char *const devrec_fields[] = {
	"account", "device", "label", "sig_pub", "enc_alg", "enc_pub",
	"created", "binding_sig", "endorsement",
};
static const char *const endorsement_fields[] = { "by", "sig" };

int
devrec_from_json(const json_t *obj, struct devrec *out, struct err_ctx *e)
{
	static const char what[] = "device record";
	struct devrec *rec = NULL;
	const json_t *en;
	const char *s;
	int r = ERR_INTERNAL;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if ((rec = calloc(1, sizeof(*rec))) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_json_keys(obj, devrec_fields,
	    sizeof(devrec_fields) / sizeof(devrec_fields[0]), what, e)) != 0)
		goto out;
	if ((r = devrec_json_str(obj, "account", DEVREC_ACCOUNT_MAX, &s,
	    what, e)) != 0)
		goto out;
	memcpy(rec->account, s, strlen(s) + 1);
	if ((r = devrec_account_check(rec->account, e)) != 0)
		goto out;
	if ((r = devrec_json_id(obj, "device", rec->device, what, e)) != 0)
		goto out;
	if ((r = devrec_json_str(obj, "label", DEVREC_LABEL_MAX, &s, what,
	    e)) != 0)
		goto out;
	memcpy(rec->label, s, strlen(s) + 1);
	if ((r = devrec_label_check(rec->label, e)) != 0)
		goto out;
	if ((r = devrec_json_str(obj, "enc_alg", DEVREC_ENC_ALG_MAX, &s, what,
	    e)) != 0) {
		if (r == ERR_TOO_LARGE)
			r = err_wrap(e, ERR_FORMAT, "%s: unknown enc_alg", what);
		goto out;
	}
	memcpy(rec->enc_alg, s, strlen(s) + 1);
	if (!enc_alg_known(rec->enc_alg)) {
		r = err_set(e, ERR_FORMAT, "%s: enc_alg must be \"hpke-p256\" "
		    "or \"rsa-oaep-sha256\"", what);
		goto out;
	}
	if ((r = devrec_json_b64(obj, "sig_pub", rec->sig_pub,
	    CRYPTO_SPKI_MAX, &rec->sig_pub_len, what, e)) != 0 ||
	    (r = devrec_json_b64(obj, "enc_pub", rec->enc_pub,
	    CRYPTO_SPKI_MAX, &rec->enc_pub_len, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, "created", &rec->created, what, e)) != 0 ||
	    (r = devrec_json_b64_exact(obj, "binding_sig", rec->binding_sig,
	    DEVREC_SIG_LEN, what, e)) != 0)
		goto out;
	if ((en = json_object_get(obj, "endorsement")) != NULL) {
		if ((r = devrec_json_keys(en, endorsement_fields, 2,
		    "device record endorsement", e)) != 0 ||
		    (r = devrec_json_id(en, "by", rec->endorsed_by,
		    "device record endorsement", e)) != 0 ||
		    (r = devrec_json_b64_exact(en, "sig", rec->endorsement_sig,
		    DEVREC_SIG_LEN, "device record endorsement", e)) != 0)
			goto out;
		rec->has_endorsement = 1;
	}
	if ((r = check_keys(rec, NULL, e)) != 0)
		goto out;
	*out = *rec;
	r = 0;
 out:
	free(rec);
	return r;
}

int
devrec_parse(const char *s, size_t len, size_t max_len, struct devrec *out,
    struct err_ctx *e)
{
	json_t *obj = NULL;
	int r;

	return_val_if_fail(s != NULL && out != NULL, ERR_INVALID_ARG);
	if (max_len == 0)
		max_len = DEVREC_JSON_MAX;
	if ((r = devrec_json_load(s, len, max_len, &obj, "device record",
	    e)) != 0)
		return r;
	r = devrec_from_json(obj, out, e);
	json_decref(obj);
	return r;
}

int
devrec_encode(const struct devrec *rec, char **out, struct err_ctx *e)
{
	json_t *obj = NULL;
	char *s;
	int r;

	return_val_if_fail(rec != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = devrec_to_json(rec, &obj, e)) != 0)
		return r;
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s == NULL)
		return err_set(e, ERR_ALLOC, "device record: cannot encode");
	*out = s;
	return 0;
}
