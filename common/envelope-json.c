/*
 * envelope-json.c - the envelope's JSON form (PROTOCOL.md section 4): the
 * encoder, the strict bounded parser, and the inner payload.
 *
 * The parser trusts nothing: the size is checked before jansson sees the
 * bytes, the nesting depth is checked by a scan before jansson builds a
 * tree, every member is looked up by name with its exact type, unknown and
 * duplicate members are errors, and every binary field has its exact
 * length.  No field is ever normalised: what is not canonical is rejected.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "envelope.h"
#include "envelope-private.h"
#include "errors.h"
#include "tlog-note.h"

/* Deepest nesting of a valid envelope: root, "views"/"recipients"/
 * "sender", one element.  The inner payload is a flat object but for
 * "blobs": root, the array, its entries. */
#define ENV_JSON_MAX_DEPTH 3
#define ENV_PAYLOAD_MAX_DEPTH 3
/* A macro's value as a string literal, for messages. */
#define ENV_STR_(x) #x
#define ENV_STR(x) ENV_STR_(x)
/* The characters of a blob key (32 bytes) in base64url. */
#define ENV_BLOB_KEY_CHARS 43

/* --- helpers --- */

/*
 * A member of the top-level object whose string value was taken out of
 * the text before jansson saw it (env_json_scan()): the value's
 * characters are p[0..len), between its quotes in the caller's text.
 * Only for values of at least ENV_JSON_SPLICE_MIN characters without a
 * backslash: a large base64url string is decoded straight from the text
 * instead of being lexed, copied and decoded again by jansson.  Short
 * values go the same way, so that what every test and fuzz input runs
 * is what a large message runs.
 */
struct env_json_span {
	const char *p;			/* NULL: nothing taken out */
	size_t start, len;		/* offset of p in the text, length */
};

#define ENV_JSON_SPLICE_MIN 1

/*
 * The end of the JSON string whose first character (after the opening
 * quote) is at p[i]: the offset of its closing quote, or len when it is
 * not closed.  *plain is 1 when the string has no backslash.  memchr()
 * does the work: a megabyte of base64url is skipped at memory speed.
 */
static size_t
env_json_string_end(const uint8_t *p, size_t len, size_t i, int *plain)
{
	const uint8_t *q, *bs;
	int escaped = 0;

	*plain = 0;
	if ((q = memchr(p + i, '"', len - i)) == NULL)
		return len;
	if ((bs = memchr(p + i, '\\', (size_t)(q - (p + i)))) == NULL) {
		*plain = 1;
		return (size_t)(q - p);
	}
	for (i = (size_t)(bs - p); i < len; i++) {
		if (escaped)
			escaped = 0;
		else if (p[i] == '\\')
			escaped = 1;
		else if (p[i] == '"')
			return i;
	}
	return len;
}

/* What env_json_scan() knows of the top-level object's members so far. */
struct env_json_members_state {
	const char *key;		/* the member looked for, or NULL */
	size_t key_len;
	int after_colon;		/* a value comes next */
	int key_match;			/* and it is key's */
};

/*
 * A string p[start..end) (end: its closing quote) inside the top-level
 * object: a member name, or a value -- key's, which goes into span when
 * it is plain (no backslash) and long enough.
 */
static void
env_json_top_string(const uint8_t *p, size_t start, size_t end, int plain,
    struct env_json_members_state *m, struct env_json_span *span)
{
	size_t n = end - start;

	if (!m->after_colon) {
		m->key_match = plain && n == m->key_len &&
		    memcmp(p + start, m->key, n) == 0;
		return;
	}
	if (m->key_match && plain && span->p == NULL &&
	    n >= ENV_JSON_SPLICE_MIN) {
		span->p = (const char *)p + start;
		span->start = start;
		span->len = n;
	}
	m->key_match = 0;
	m->after_colon = 0;
}

/*
 * Returns 1 when the JSON text at p nests objects and arrays at most
 * max_depth deep, else 0.  Only brackets outside strings count; the text
 * need not be valid JSON (jansson judges that afterwards).  This keeps
 * jansson's recursive parser from ever descending deeper than we allow.
 *
 * With key not NULL, span receives the value of the top-level member
 * named key (its name written without escapes) when that value is a
 * string of at least ENV_JSON_SPLICE_MIN characters without a backslash
 * (the first such member when the text has several).  The reading of
 * members is right for valid JSON only; a caller that takes the value out
 * must let jansson judge the rest, and must fall back to the whole text
 * whenever anything fails.
 */
static int
env_json_scan(const uint8_t *p, size_t len, int max_depth, const char *key,
    struct env_json_span *span)
{
	struct env_json_members_state m;
	size_t i, end;
	int depth = 0, root_object = 0, seen_root = 0, plain;

	memset(&m, 0, sizeof(m));
	m.key = key;
	m.key_len = key == NULL ? 0 : strlen(key);
	if (span != NULL)
		memset(span, 0, sizeof(*span));
	for (i = 0; i < len; i++) {
		switch (p[i]) {
		case '"':
			end = env_json_string_end(p, len, i + 1, &plain);
			if (end >= len)
				return 1;	/* not closed: jansson's */
			if (key != NULL && span != NULL && depth == 1 &&
			    root_object)
				env_json_top_string(p, i + 1, end, plain, &m,
				    span);
			i = end;
			break;
		case '{':
		case '[':
			if (!seen_root) {
				seen_root = 1;
				root_object = p[i] == '{';
			}
			m.after_colon = 0;
			m.key_match = 0;
			if (++depth > max_depth)
				return 0;
			break;
		case '}':
		case ']':
			depth--;
			break;
		case ':':
			if (depth == 1)
				m.after_colon = 1;
			break;
		case ',':
			if (depth == 1) {
				m.after_colon = 0;
				m.key_match = 0;
			}
			break;
		}
	}
	return 1;
}

/*
 * env_json_scan()'s depth check for a tree that jansson built already
 * (an envelope inside a larger request): 1 when objects and arrays nest
 * at most
 * max_depth deep.  The recursion stops at max_depth + 1 levels.
 */
static int
env_json_tree_depth_ok(json_t *j, int max_depth)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(j) && !json_is_array(j))
		return 1;
	if (max_depth == 0)
		return 0;
	if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			if (!env_json_tree_depth_ok(v, max_depth - 1))
				return 0;
		}
		return 1;
	}
	json_object_foreach(j, key, v) {
		if (!env_json_tree_depth_ok(v, max_depth - 1))
			return 0;
	}
	return 1;
}

/*
 * Loads text with duplicate keys rejected; depth checked first.  With
 * key not NULL and a span found for it (env_json_scan()), jansson loads
 * a copy of the text whose value of that member is "" and *span says
 * where the characters are; a copy is wiped before it is freed (it may
 * be plaintext).  Otherwise span->p is NULL and the text is loaded as it
 * is.
 */
static int
env_json_load_span(const uint8_t *p, size_t len, int max_depth,
    const char *what, const char *key, struct env_json_span *span,
    json_t **out, struct err_ctx *e)
{
	json_error_t jerr;
	json_t *j;
	uint8_t *copy = NULL;
	size_t copy_len = 0;

	if (!env_json_scan(p, len, max_depth, key, span))
		return err_set(e, ERR_FORMAT, "%s: JSON nested deeper than %d "
		    "levels", what, max_depth);
	if (span != NULL && span->p != NULL) {
		copy_len = len - span->len;
		if ((copy = malloc(copy_len)) == NULL)
			return ERR_ALLOC;
		memcpy(copy, p, span->start);
		memcpy(copy + span->start, p + span->start + span->len,
		    len - span->start - span->len);
	}
	j = json_loadb(copy != NULL ? (const char *)copy : (const char *)p,
	    copy != NULL ? copy_len : len, JSON_REJECT_DUPLICATES, &jerr);
	if (copy != NULL) {
		crypto_wipe(copy, copy_len);
		free(copy);
	}
	if (j == NULL)
		return err_set(e, ERR_FORMAT, "%s: invalid JSON at line %d "
		    "column %d: %s", what, jerr.line, jerr.column, jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, ERR_FORMAT, "%s: not a JSON object", what);
	}
	*out = j;
	return 0;
}

/* Every member of obj must be one of the n names in allowed. */
static int
env_json_members(json_t *obj, const char *const *allowed, size_t n,
    const char *what, struct err_ctx *e)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(obj, key, v) {
		for (i = 0; i < n; i++) {
			if (strcmp(key, allowed[i]) == 0)
				break;
		}
		if (i == n)
			return err_set(e, ERR_FORMAT, "%s: unknown member "
			    "\"%.32s\"", what, key);
	}
	return 0;
}

/* A member that must be present and have the given type. */
static json_t *
env_json_get(json_t *obj, const char *key, json_type type, const char *what,
    int *r, struct err_ctx *e)
{
	json_t *v;

	if ((v = json_object_get(obj, key)) == NULL) {
		*r = err_set(e, ERR_FORMAT, "%s: member \"%s\" is missing",
		    what, key);
		return NULL;
	}
	if (json_typeof(v) != type) {
		*r = err_set(e, ERR_FORMAT, "%s: member \"%s\" has the wrong "
		    "type", what, key);
		return NULL;
	}
	return v;
}

/* A string member without NUL bytes, and its length. */
static int
env_json_str(json_t *obj, const char *key, const char *what,
    const char **s, size_t *len, struct err_ctx *e)
{
	json_t *v;
	int r = ERR_FORMAT;

	if ((v = env_json_get(obj, key, JSON_STRING, what, &r, e)) == NULL)
		return r;
	*s = json_string_value(v);
	*len = json_string_length(v);
	if (memchr(*s, '\0', *len) != NULL)
		return err_set(e, ERR_FORMAT, "%s: member \"%s\" contains a "
		    "NUL character", what, key);
	return 0;
}

/* A non-negative integer member. */
static int
env_json_u64(json_t *obj, const char *key, const char *what, uint64_t *out,
    struct err_ctx *e)
{
	json_t *v;
	json_int_t n;
	int r = ERR_FORMAT;

	if ((v = env_json_get(obj, key, JSON_INTEGER, what, &r, e)) == NULL)
		return r;
	if ((n = json_integer_value(v)) < 0 ||
	    (uint64_t)n > ENV_JSON_INT_MAX)
		return err_set(e, ERR_FORMAT, "%s: member \"%s\" is negative "
		    "or above 2^53", what, key);
	*out = (uint64_t)n;
	return 0;
}

/* A base64url member of exactly want bytes. */
static int
env_json_b64_exact(json_t *obj, const char *key, const char *what,
    uint8_t *out, size_t want, struct err_ctx *e)
{
	const char *s;
	size_t len;
	int r;

	if ((r = env_json_str(obj, key, what, &s, &len, e)) != 0)
		return r;
	if (b64url_decode_exact(s, len, out, want) != 0)
		return err_set(e, ERR_FORMAT, "%s: member \"%s\" is not "
		    "base64url of exactly %zu bytes", what, key, want);
	return 0;
}

/* A base64url member of at most max bytes, into a new array. */
static int
env_json_b64_alloc(json_t *obj, const char *key, const char *what,
    size_t max, uint8_t **out, size_t *out_len, struct err_ctx *e)
{
	const char *s;
	size_t len;
	int r;

	if ((r = env_json_str(obj, key, what, &s, &len, e)) != 0)
		return r;
	if ((r = b64url_decode(s, len, max, out, out_len)) != 0) {
		if (r == ERR_ALLOC)
			return r;
		return err_set(e, r, "%s: member \"%s\" is not base64url%s",
		    what, key, r == ERR_TOO_LARGE ? " of an allowed size" :
		    "");
	}
	return 0;
}

/*
 * env_json_b64_alloc() for a member whose characters may have been taken
 * out of the text (span not NULL, span->p not NULL): the member must
 * still be there as a string, and the characters are decoded from the
 * span, once, straight into the new array.
 */
static int
env_json_b64_span(json_t *obj, const char *key,
    const struct env_json_span *span, const char *what, size_t max,
    uint8_t **out, size_t *out_len, struct err_ctx *e)
{
	const char *s;
	size_t len;
	int r;

	if (span == NULL || span->p == NULL)
		return env_json_b64_alloc(obj, key, what, max, out, out_len,
		    e);
	if ((r = env_json_str(obj, key, what, &s, &len, e)) != 0)
		return r;
	if ((r = b64url_decode(span->p, span->len, max, out, out_len)) != 0) {
		if (r == ERR_ALLOC)
			return r;
		return err_set(e, r, "%s: member \"%s\" is not base64url%s",
		    what, key, r == ERR_TOO_LARGE ? " of an allowed size" :
		    "");
	}
	return 0;
}

/* A new JSON string holding the base64url of len bytes at p. */
static json_t *
env_json_b64_new(const uint8_t *p, size_t len)
{
	char *s = NULL;
	json_t *j;

	if (b64url_encode(p, len, &s) != 0)
		return NULL;
	j = json_stringn_nocheck(s, strlen(s));
	/* The inner payload's body is plaintext. */
	crypto_wipe(s, strlen(s));
	free(s);
	return j;
}

/* json_dump_callback sink: appends to a struct buf. */
static int
env_json_sink(const char *p, size_t len, void *arg)
{
	return buf_put((struct buf *)arg, p, len) == 0 ? 0 : -1;
}

/*
 * Serialises the object j compactly into the new buffer *out (caller
 * frees it with buf_free(), which wipes it); the text is at least "{}".
 */
static int
env_json_dump_buf(json_t *j, struct buf **out)
{
	struct buf *b;

	if ((b = buf_new(0)) == NULL)
		return ERR_ALLOC;
	if (json_dump_callback(j, env_json_sink, b, JSON_COMPACT) != 0) {
		buf_free(b);
		return ERR_ALLOC;
	}
	if (buf_len(b) < 2 || buf_ptr(b)[0] != '{' ||
	    buf_ptr(b)[buf_len(b) - 1] != '}') {
		buf_free(b);
		return ERR_INTERNAL;
	}
	*out = b;
	return 0;
}

/* Appends the len characters at p to out at *o. */
static void
env_json_put(char *out, size_t *o, const char *p, size_t len)
{
	memcpy(out + *o, p, len);
	*o += len;
}

#define ENV_JSON_CT_OPEN ",\"ciphertext\":\""
#define ENV_JSON_SIG_OPEN "\",\"sig\":\""
#define ENV_JSON_TAIL_CLOSE "\"}"

/*
 * The envelope's text: root (every member up to "nonce") serialised
 * compactly, with "ciphertext" and "sig" after them, into a new
 * NUL-terminated array (caller frees).  The bytes are those jansson
 * writes for the whole object -- base64url needs no escaping -- but the
 * ciphertext is encoded once, straight into the text, instead of into a
 * string that jansson copies and then escapes character by character.
 */
static int
env_json_dump_tail(json_t *root, const uint8_t *ct, size_t ct_len,
    const uint8_t sig[ENV_SIG_LEN], uint8_t **out, size_t *out_len)
{
	struct buf *head = NULL;
	size_t n_head, ct_chars, sig_chars, total, o;
	char *text;
	int r;

	if (ct_len > (SIZE_MAX / 4) * 3 - 3)
		return ERR_TOO_LARGE;
	ct_chars = b64url_encoded_len(ct_len);
	sig_chars = b64url_encoded_len(ENV_SIG_LEN);
	if ((r = env_json_dump_buf(root, &head)) != 0)
		return r;
	n_head = buf_len(head);
	if (ct_chars > SIZE_MAX - n_head - 64 - sig_chars) {
		buf_free(head);
		return ERR_TOO_LARGE;
	}
	total = n_head - 1 + strlen(ENV_JSON_CT_OPEN) + ct_chars +
	    strlen(ENV_JSON_SIG_OPEN) + sig_chars +
	    strlen(ENV_JSON_TAIL_CLOSE);
	if ((text = malloc(total + 1)) == NULL) {
		buf_free(head);
		return ERR_ALLOC;
	}
	o = 0;			/* all of head but its closing brace */
	env_json_put(text, &o, (const char *)buf_ptr(head), n_head - 1);
	buf_free(head);
	env_json_put(text, &o, ENV_JSON_CT_OPEN, strlen(ENV_JSON_CT_OPEN));
	b64url_encode_buf(ct, ct_len, text + o);
	o += ct_chars;
	env_json_put(text, &o, ENV_JSON_SIG_OPEN, strlen(ENV_JSON_SIG_OPEN));
	b64url_encode_buf(sig, ENV_SIG_LEN, text + o);
	o += sig_chars;
	env_json_put(text, &o, ENV_JSON_TAIL_CLOSE,
	    strlen(ENV_JSON_TAIL_CLOSE));
	text[o] = '\0';
	*out = (uint8_t *)text;
	*out_len = o;
	return 0;
}

/* Wipes a JSON string's bytes in place (jansson owns them). */
static void
env_json_wipe_string(json_t *v)
{
	if (v != NULL && json_is_string(v))
		crypto_wipe((char *)json_string_value(v),
		    json_string_length(v));
}

/*
 * Wipes every string of the tree j in place: a parsed or built inner
 * payload (plaintext, blob keys).  Its depth was bounded by whoever built
 * it (env_json_scan(), or the encoder).
 */
static void
env_json_wipe_tree(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_string(j))
		env_json_wipe_string(j);
	else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			env_json_wipe_tree(v);
	} else if (json_is_object(j)) {
		json_object_foreach(j, key, v)
			env_json_wipe_tree(v);
	}
}

/* --- encoding --- */

/* Adds j (a new reference, may be NULL) to arr; j is consumed. */
static int
env_json_append(json_t *arr, json_t *j)
{
	return json_array_append_new(arr, j) == 0 ? 0 : ERR_ALLOC;
}

/* Sets obj[key] = j (a new reference, may be NULL); j is consumed. */
static int
env_json_set(json_t *obj, const char *key, json_t *j)
{
	return json_object_set_new(obj, key, j) == 0 ? 0 : ERR_ALLOC;
}

static int
env_recipient_to_json(const struct env_recipient *rc, json_t **out)
{
	json_t *o;
	int r;

	if (rc->alg != TOKEN_ENC_HPKE_P256 && rc->alg != TOKEN_ENC_RSA_OAEP)
		return ERR_INVALID_ARG;
	if ((o = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = env_json_set(o, "device", json_string(rc->device))) != 0 ||
	    (r = env_json_set(o, "alg",
	    json_string(token_enc_alg_name(rc->alg)))) != 0 ||
	    (rc->alg == TOKEN_ENC_HPKE_P256 &&
	    (r = env_json_set(o, "enc",
	    env_json_b64_new(rc->enc, sizeof(rc->enc)))) != 0) ||
	    (r = env_json_set(o, "wrapped", env_json_b64_new(rc->wrapped ==
	    NULL ? (const uint8_t *)"" : rc->wrapped, rc->wrapped_len))) != 0) {
		json_decref(o);
		return r;
	}
	*out = o;
	return 0;
}

/* The sender as a new object {"account", "device"} in *out. */
static int
env_sender_to_json(const struct env *env, json_t **out)
{
	json_t *o;
	int r;

	if ((o = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = env_json_set(o, "account",
	    json_string(env->sender_account))) != 0 ||
	    (r = env_json_set(o, "device",
	    json_string(env->sender_device))) != 0) {
		json_decref(o);
		return r;
	}
	*out = o;
	return 0;
}

/*
 * The lists of env as new arrays: "to" (account names), "views" (signed
 * heads in acctlog's own JSON form) and "recipients".  On failure nothing
 * is left to release.
 */
static int
env_lists_to_json(const struct env *env, json_t **to_out,
    json_t **views_out, json_t **recips_out)
{
	json_t *to = NULL, *views = NULL, *recips = NULL, *j = NULL;
	size_t i;
	int r = ERR_ALLOC;

	if ((to = json_array()) == NULL || (views = json_array()) == NULL ||
	    (recips = json_array()) == NULL)
		goto out;
	for (i = 0; i < env->n_to; i++) {
		if ((r = env_json_append(to, json_string(env->to[i]))) != 0)
			goto out;
	}
	for (i = 0; i < env->n_views; i++) {
		if ((r = acctlog_head_to_json(&env->views[i], &j, NULL)) != 0 ||
		    (r = env_json_append(views, j)) != 0)
			goto out;
	}
	for (i = 0; i < env->n_recipients; i++) {
		if ((r = env_recipient_to_json(&env->recipients[i], &j)) != 0 ||
		    (r = env_json_append(recips, j)) != 0)
			goto out;
	}
	*to_out = to;
	*views_out = views;
	*recips_out = recips;
	to = views = recips = NULL;	/* transferred */
	r = 0;
 out:
	json_decref(to);
	json_decref(views);
	json_decref(recips);
	return r;
}

int
env_to_json(const struct env *env, char **out, size_t *out_len)
{
	json_t *root = NULL, *sender = NULL, *to = NULL, *views = NULL;
	json_t *recips = NULL;
	uint8_t *text = NULL;
	size_t len = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(env != NULL && out != NULL && out_len != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(env->n_to == 0 || env->to != NULL, ERR_INVALID_ARG);
	return_val_if_fail(env->n_views == 0 || env->views != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(env->n_recipients == 0 || env->recipients != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(env->ciphertext != NULL || env->ciphertext_len == 0,
	    ERR_INVALID_ARG);
	if (env->sent > ENV_JSON_INT_MAX)
		return ERR_INVALID_ARG;

	if ((r = env_sender_to_json(env, &sender)) != 0 ||
	    (r = env_lists_to_json(env, &to, &views, &recips)) != 0)
		goto out;
	if ((root = json_object()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	/* The members in the order of section 4 but for the last two, which
	 * env_json_dump_tail() writes itself; env_json_set consumes its
	 * value even on failure. */
	if ((r = env_json_set(root, "v", json_integer(ENV_VERSION))) != 0 ||
	    (r = env_json_set(root, "id",
	    env_json_b64_new(env->id, sizeof(env->id)))) != 0 ||
	    (r = env_json_set(root, "sender", json_incref(sender))) != 0 ||
	    (r = env_json_set(root, "sent",
	    json_integer((json_int_t)env->sent))) != 0 ||
	    (r = env_json_set(root, "to", json_incref(to))) != 0 ||
	    (r = env_json_set(root, "views", json_incref(views))) != 0 ||
	    (r = env_json_set(root, "recipients", json_incref(recips))) != 0 ||
	    (r = env_json_set(root, "nonce",
	    env_json_b64_new(env->nonce, sizeof(env->nonce)))) != 0)
		goto out;
	if ((r = env_json_dump_tail(root, env->ciphertext == NULL ?
	    (const uint8_t *)"" : env->ciphertext, env->ciphertext_len,
	    env->sig, &text, &len)) != 0)
		goto out;
	*out = (char *)text;
	*out_len = len;
	r = 0;
 out:
	json_decref(sender);
	json_decref(to);
	json_decref(views);
	json_decref(recips);
	json_decref(root);
	return r;
}

/* --- parsing --- */

static int
env_parse_view(json_t *o, const char *account, struct acctlog_head *v,
    struct err_ctx *e)
{
	int r;

	if (!json_is_object(o))
		return err_set(e, ERR_FORMAT, "envelope: a view is not an "
		    "object");
	if ((r = acctlog_head_from_json(o, v, e)) != 0)
		return r;
	if (strcmp(v->account, account) != 0)
		return err_set(e, ERR_FORMAT, "envelope: the views are not "
		    "one per \"to\" account in the same order");
	return 0;
}

static int
env_parse_recipient(json_t *o, struct env_recipient *rc, struct err_ctx *e)
{
	static const char *const hpke_members[] = {
		"device", "alg", "enc", "wrapped"
	};
	static const char *const rsa_members[] = {
		"device", "alg", "wrapped"
	};
	const char *s;
	size_t len;
	int r;

	if (!json_is_object(o))
		return err_set(e, ERR_FORMAT, "envelope: a recipient is not "
		    "an object");
	if ((r = env_json_str(o, "device", "envelope recipient", &s, &len,
	    e)) != 0)
		return r;
	if (!env_device_valid(s, len))
		return err_set(e, ERR_FORMAT, "envelope: a recipient device "
		    "is not 64 lowercase hex digits");
	memcpy(rc->device, s, len + 1);
	if ((r = env_json_str(o, "alg", "envelope recipient", &s, &len,
	    e)) != 0)
		return r;
	if (strcmp(s, "hpke-p256") == 0) {
		rc->alg = TOKEN_ENC_HPKE_P256;
		if ((r = env_json_members(o, hpke_members, 4,
		    "envelope recipient", e)) != 0 ||
		    (r = env_json_b64_exact(o, "enc", "envelope recipient",
		    rc->enc, sizeof(rc->enc), e)) != 0)
			return r;
		if (rc->enc[0] != 0x04)
			return err_set(e, ERR_FORMAT, "envelope: recipient "
			    "%.16s: enc is not an uncompressed point",
			    rc->device);
		if ((rc->wrapped = malloc(ENV_HPKE_WRAPPED_LEN)) == NULL)
			return ERR_ALLOC;
		rc->wrapped_len = ENV_HPKE_WRAPPED_LEN;
		return env_json_b64_exact(o, "wrapped", "envelope recipient",
		    rc->wrapped, ENV_HPKE_WRAPPED_LEN, e);
	}
	if (strcmp(s, "rsa-oaep-sha256") == 0) {
		rc->alg = TOKEN_ENC_RSA_OAEP;
		if ((r = env_json_members(o, rsa_members, 3,
		    "envelope recipient", e)) != 0 ||
		    (r = env_json_b64_alloc(o, "wrapped", "envelope recipient",
		    ENV_RSA3072_WRAPPED_LEN, &rc->wrapped, &rc->wrapped_len,
		    e)) != 0)
			return r;
		if (rc->wrapped_len != ENV_RSA2048_WRAPPED_LEN &&
		    rc->wrapped_len != ENV_RSA3072_WRAPPED_LEN)
			return err_set(e, ERR_FORMAT, "envelope: recipient "
			    "%.16s: an RSA-wrapped key of %zu bytes",
			    rc->device, rc->wrapped_len);
		return 0;
	}
	return err_set(e, ERR_FORMAT, "envelope: recipient %.16s has an "
	    "unknown algorithm", rc->device);
}

/* The sender: an account name and a device id, nothing else. */
static int
env_parse_sender(json_t *root, struct env *env, struct err_ctx *e)
{
	static const char *const sender_members[] = { "account", "device" };
	json_t *sender;
	const char *s;
	size_t len;
	int r = ERR_FORMAT;

	if ((sender = env_json_get(root, "sender", JSON_OBJECT, "envelope",
	    &r, e)) == NULL)
		return r;
	if ((r = env_json_members(sender, sender_members, 2,
	    "envelope sender", e)) != 0 ||
	    (r = env_json_str(sender, "account", "envelope sender", &s, &len,
	    e)) != 0)
		return r;
	if (!env_account_valid(s, len))
		return err_set(e, ERR_FORMAT, "envelope: the sender account is "
		    "not a valid account name");
	memcpy(env->sender_account, s, len + 1);
	if ((r = env_json_str(sender, "device", "envelope sender", &s, &len,
	    e)) != 0)
		return r;
	if (!env_device_valid(s, len))
		return err_set(e, ERR_FORMAT, "envelope: the sender device is "
		    "not 64 lowercase hex digits");
	memcpy(env->sender_device, s, len + 1);
	return 0;
}

/* "to": sorted, unique, valid names, naming the sender's account. */
static int
env_parse_to(json_t *root, struct env *env, struct err_ctx *e)
{
	json_t *to, *v;
	const char *s;
	size_t i, n;
	int r = ERR_FORMAT, found_sender = 0;

	if ((to = env_json_get(root, "to", JSON_ARRAY, "envelope", &r,
	    e)) == NULL)
		return r;
	n = json_array_size(to);
	if (n == 0 || n > ENV_MAX_TO)
		return err_set(e, n == 0 ? ERR_FORMAT : ERR_TOO_LARGE,
		    "envelope: \"to\" must list 1 to %d accounts, not %zu",
		    ENV_MAX_TO, n);
	if ((env->to = calloc(n, sizeof(*env->to))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		v = json_array_get(to, i);
		if (!json_is_string(v) ||
		    !env_account_valid(json_string_value(v),
		    json_string_length(v)))
			return err_set(e, ERR_FORMAT, "envelope: \"to\" entry "
			    "%zu is not a valid account name", i);
		s = json_string_value(v);
		if (i > 0 && strcmp(env->to[i - 1], s) >= 0)
			return err_set(e, ERR_FORMAT, "envelope: \"to\" is not "
			    "sorted and free of duplicates");
		if ((env->to[i] = strdup(s)) == NULL)
			return ERR_ALLOC;
		env->n_to++;
		if (strcmp(s, env->sender_account) == 0)
			found_sender = 1;
	}
	if (!found_sender)
		return err_set(e, ERR_FORMAT, "envelope: \"to\" does not "
		    "include the sender's account");
	return 0;
}

/* "views": one signed head per "to" account, in the same order. */
static int
env_parse_views(json_t *root, struct env *env, struct err_ctx *e)
{
	json_t *views;
	size_t i, n = env->n_to;
	int r = ERR_FORMAT;

	if ((views = env_json_get(root, "views", JSON_ARRAY, "envelope", &r,
	    e)) == NULL)
		return r;
	if (json_array_size(views) != n)
		return err_set(e, ERR_FORMAT, "envelope: %zu views for %zu "
		    "accounts in \"to\"", json_array_size(views), n);
	if ((env->views = calloc(n, sizeof(*env->views))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		if ((r = env_parse_view(json_array_get(views, i), env->to[i],
		    &env->views[i], e)) != 0)
			return r;
		env->n_views++;
	}
	return 0;
}

/* "recipients": bounded, sorted by device, unique, not the sender. */
static int
env_parse_recipients(json_t *root, size_t max_recipients, struct env *env,
    struct err_ctx *e)
{
	json_t *recips;
	size_t i, n;
	int r = ERR_FORMAT;

	if ((recips = env_json_get(root, "recipients", JSON_ARRAY, "envelope",
	    &r, e)) == NULL)
		return r;
	n = json_array_size(recips);
	if (n == 0)
		return err_set(e, ERR_FORMAT, "envelope: no recipients");
	if (n > max_recipients)
		return err_set(e, ERR_TOO_LARGE, "envelope: %zu recipients, "
		    "more than the %zu allowed", n, max_recipients);
	if ((env->recipients = calloc(n, sizeof(*env->recipients))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		/* Counted first so that env_free() releases a partial one. */
		env->n_recipients++;
		if ((r = env_parse_recipient(json_array_get(recips, i),
		    &env->recipients[i], e)) != 0)
			return r;
		if (i > 0 && strcmp(env->recipients[i - 1].device,
		    env->recipients[i].device) >= 0)
			return err_set(e, ERR_FORMAT, "envelope: the "
			    "recipients are not sorted by device and free of "
			    "duplicates");
		if (strcmp(env->recipients[i].device,
		    env->sender_device) == 0)
			return err_set(e, ERR_FORMAT, "envelope: the sender "
			    "device is listed as a recipient");
	}
	return 0;
}

/*
 * Reads every member of the envelope object root into env, in the order
 * of section 4, checking each as it goes.  On failure env holds what was
 * read so far (env_free() releases it).
 */
static int
env_parse_members(json_t *root, const struct env_json_span *ct,
    size_t max_bytes, size_t max_recipients, struct env *env,
    struct err_ctx *e)
{
	static const char *const members[] = {
		"v", "id", "sender", "sent", "to", "views", "recipients",
		"nonce", "ciphertext", "sig"
	};
	json_t *v;
	int r = ERR_FORMAT;

	if ((v = env_json_get(root, "v", JSON_INTEGER, "envelope", &r,
	    e)) == NULL)
		return r;
	if (json_integer_value(v) != ENV_VERSION)
		return err_set(e, ERR_FORMAT, "envelope: version %lld is not "
		    "supported (only %d)", (long long)json_integer_value(v),
		    ENV_VERSION);
	if ((r = env_json_members(root, members, 10, "envelope", e)) != 0 ||
	    (r = env_json_b64_exact(root, "id", "envelope", env->id,
	    sizeof(env->id), e)) != 0 ||
	    (r = env_parse_sender(root, env, e)) != 0 ||
	    (r = env_json_u64(root, "sent", "envelope", &env->sent, e)) != 0 ||
	    (r = env_parse_to(root, env, e)) != 0 ||
	    (r = env_parse_views(root, env, e)) != 0 ||
	    (r = env_parse_recipients(root, max_recipients, env, e)) != 0 ||
	    (r = env_json_b64_exact(root, "nonce", "envelope", env->nonce,
	    sizeof(env->nonce), e)) != 0 ||
	    (r = env_json_b64_span(root, "ciphertext", ct, "envelope",
	    max_bytes, &env->ciphertext, &env->ciphertext_len, e)) != 0)
		return r;
	if (env->ciphertext_len < ENV_TAG_LEN)
		return err_set(e, ERR_FORMAT, "envelope: ciphertext shorter "
		    "than its tag");
	return env_json_b64_exact(root, "sig", "envelope", env->sig,
	    sizeof(env->sig), e);
}

/* The limits in force: lim's, or the defaults for its zero fields. */
static int
env_limits_get(const struct env_limits *lim, size_t *max_bytes,
    size_t *max_recipients, struct err_ctx *e)
{
	*max_bytes = ENV_MAX_BYTES_DEFAULT;
	*max_recipients = ENV_MAX_RECIPIENTS;
	if (lim != NULL && lim->max_bytes != 0)
		*max_bytes = lim->max_bytes;
	if (lim != NULL && lim->max_recipients != 0)
		*max_recipients = lim->max_recipients;
	if (*max_recipients > ENV_MAX_RECIPIENTS)
		return err_set(e, ERR_INVALID_ARG, "envelope: at most %d "
		    "recipients may be allowed", ENV_MAX_RECIPIENTS);
	return 0;
}

/* A new envelope from the loaded object root, in *out; untouched on
 * failure. */
static int
env_from_tree(json_t *root, const struct env_json_span *ct,
    size_t max_bytes, size_t max_recipients, struct env **out,
    struct err_ctx *e)
{
	struct env *env;
	int r;

	if ((env = calloc(1, sizeof(*env))) == NULL)
		return ERR_ALLOC;
	if ((r = env_parse_members(root, ct, max_bytes, max_recipients, env,
	    e)) != 0) {
		env_free(env);
		return r;
	}
	*out = env;
	return 0;
}

/*
 * One try at check 1 on the text: with splice, the ciphertext's
 * characters are taken out before jansson loads the text and decoded
 * straight from it (*spliced says whether that happened); the tree handed
 * back gets them again as a string.  Without splice, the text is loaded
 * as it is.  *out and *tree are untouched on failure.
 */
static int
env_parse_text(const uint8_t *json, size_t len, size_t max_bytes,
    size_t max_recipients, int splice, int *spliced, struct env **out,
    json_t **tree, struct err_ctx *e)
{
	struct env_json_span ct;
	struct env *env = NULL;
	json_t *root = NULL, *s = NULL;
	int r = ERR_INTERNAL;

	*spliced = 0;
	if ((r = env_json_load_span(json, len, ENV_JSON_MAX_DEPTH, "envelope",
	    splice ? "ciphertext" : NULL, &ct, &root, e)) != 0)
		goto out;
	*spliced = ct.p != NULL;
	if ((r = env_from_tree(root, &ct, max_bytes, max_recipients, &env,
	    e)) != 0)
		goto out;
	if (tree != NULL && ct.p != NULL) {
		if ((s = json_stringn_nocheck(ct.p, ct.len)) == NULL ||
		    json_object_set_new_nocheck(root, "ciphertext", s) != 0) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if (tree != NULL) {
		*tree = root;
		root = NULL;	/* transferred */
	}
	*out = env;
	env = NULL;		/* transferred */
	r = 0;
 out:
	env_free(env);
	json_decref(root);
	return r;
}

int
env_parse_keep_tree(const uint8_t *json, size_t len,
    const struct env_limits *lim, struct env **out, json_t **tree,
    struct err_ctx *e)
{
	struct err_ctx fast;
	size_t max_bytes, max_recipients;
	int r, spliced = 0;

	return_val_if_fail(json != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = env_limits_get(lim, &max_bytes, &max_recipients, e)) != 0)
		return r;
	if (len > max_bytes)
		return err_set(e, ERR_TOO_LARGE, "envelope: %zu bytes, more "
		    "than the %zu allowed", len, max_bytes);
	/*
	 * The ciphertext is most of the bytes: decoded straight from the
	 * text, not lexed and copied by jansson first.  Should anything fail
	 * that way, the text is judged again as a whole, so that a refusal
	 * and its reason are exactly those of the plain parse.
	 */
	err_clear(&fast);
	r = env_parse_text(json, len, max_bytes, max_recipients, 1, &spliced,
	    out, tree, &fast);
	if (r == 0 || !spliced) {
		/* The plain parse's result: its reason as it was. */
		if (r != 0 && e != NULL && e->code == 0)
			*e = fast;
		return r;
	}
	return env_parse_text(json, len, max_bytes, max_recipients, 0,
	    &spliced, out, tree, e);
}

int
env_parse(const uint8_t *json, size_t len, const struct env_limits *lim,
    struct env **out, struct err_ctx *e)
{
	return env_parse_keep_tree(json, len, lim, out, NULL, e);
}

int
env_parse_tree(json_t *root, const struct env_limits *lim, struct env **out,
    struct err_ctx *e)
{
	size_t max_bytes, max_recipients;
	int r;

	return_val_if_fail(root != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = env_limits_get(lim, &max_bytes, &max_recipients, e)) != 0)
		return r;
	/* What env_json_load() checks on the text, on the tree. */
	if (!env_json_tree_depth_ok(root, ENV_JSON_MAX_DEPTH))
		return err_set(e, ERR_FORMAT, "envelope: JSON nested deeper "
		    "than %d levels", ENV_JSON_MAX_DEPTH);
	if (!json_is_object(root))
		return err_set(e, ERR_FORMAT, "envelope: not a JSON object");
	return env_from_tree(root, NULL, max_bytes, max_recipients, out, e);
}

/* --- the inner payload --- */

/* Wipes and frees the n blob references at blobs (NULL is fine). */
static void
env_payload_blobs_free(struct env_blob_ref *blobs, size_t n)
{
	size_t i;

	if (blobs == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (blobs[i].type != NULL) {
			crypto_wipe(blobs[i].type, strlen(blobs[i].type));
			free(blobs[i].type);
		}
		if (blobs[i].name != NULL) {
			crypto_wipe(blobs[i].name, strlen(blobs[i].name));
			free(blobs[i].name);
		}
	}
	crypto_wipe(blobs, n * sizeof(*blobs));
	free(blobs);
}

void
env_payload_clear(struct env_payload *p)
{
	if (p == NULL)
		return;
	if (p->type != NULL) {
		crypto_wipe(p->type, strlen(p->type));
		free(p->type);
	}
	if (p->body != NULL) {
		crypto_wipe(p->body, p->body_len);
		free(p->body);
	}
	if (p->name != NULL) {
		crypto_wipe(p->name, strlen(p->name));
		free(p->name);
	}
	if (p->checkpoint != NULL) {
		crypto_wipe(p->checkpoint, strlen(p->checkpoint));
		free(p->checkpoint);
	}
	env_payload_blobs_free(p->blobs, p->n_blobs);
	memset(p, 0, sizeof(*p));
}

/* A media type: 1..ENV_PAYLOAD_TYPE_MAX printable ASCII characters. */
static int
env_payload_type_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > ENV_PAYLOAD_TYPE_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	}
	return 1;
}

/*
 * A file name to save under: 1..ENV_PAYLOAD_NAME_MAX bytes of well-formed
 * UTF-8 without C0, DEL or C1 controls, '/', '\\', and not starting with
 * '.' (so neither "..", nor a hidden file, nor a path).
 */
static int
env_payload_name_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n, k;
	uint32_t cp;

	if (len == 0 || len > ENV_PAYLOAD_NAME_MAX || p[0] == '.')
		return 0;
	while (i < len) {
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/' ||
			    p[i] == '\\')
				return 0;
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			n = 1;
			cp = p[i] & 0x1f;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			n = 2;
			cp = p[i] & 0x0f;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			n = 3;
			cp = p[i] & 0x07;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f))
			return 0;
		i += n + 1;
	}
	return 1;
}

_Static_assert(ENV_PAYLOAD_CHECKPOINT_MAX == TLOG_NOTE_MAX,
    "a checkpoint member holds one signed note");

/* A checkpoint member: 1..ENV_PAYLOAD_CHECKPOINT_MAX bytes, no NUL. */
static int
env_payload_checkpoint_valid(const char *s, size_t len)
{
	return len > 0 && len <= ENV_PAYLOAD_CHECKPOINT_MAX &&
	    memchr(s, '\0', len) == NULL;
}

int
env_payload_encode(const char *type, const uint8_t *body, size_t body_len,
    const char *name, uint8_t **out, size_t *out_len, struct err_ctx *e)
{
	return env_payload_encode_cp(type, body, body_len, name, NULL, out,
	    out_len, e);
}

#define ENV_JSON_BODY_OPEN ",\"body\":\""

/*
 * The inner payload's text from head ({"type"}) and rest ({"name",
 * "checkpoint"}, maybe empty) with "body" between them, in a new
 * NUL-terminated array: the bytes jansson writes for the whole object in
 * the order type, body, name, checkpoint, but with the body encoded once,
 * straight into the text.
 */
static int
env_payload_dump(json_t *head, json_t *rest, const uint8_t *body,
    size_t body_len, uint8_t **out, size_t *out_len)
{
	struct buf *h = NULL, *t = NULL;
	size_t body_chars, total, o;
	char *text = NULL;
	int r = ERR_INTERNAL;

	if (body_len > (SIZE_MAX / 4) * 3 - 3)
		return ERR_TOO_LARGE;
	body_chars = b64url_encoded_len(body_len);
	if ((r = env_json_dump_buf(head, &h)) != 0 ||
	    (r = env_json_dump_buf(rest, &t)) != 0)
		goto out;
	if (body_chars > SIZE_MAX - buf_len(h) - buf_len(t) - 64) {
		r = ERR_TOO_LARGE;
		goto out;
	}
	/* head without "}", ,"body":"...", '"', then rest with "," for its
	 * "{" (or its "}" alone when it is empty). */
	total = buf_len(h) - 1 + strlen(ENV_JSON_BODY_OPEN) + body_chars + 1 +
	    buf_len(t);
	if ((text = malloc(total + 1)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	o = 0;
	env_json_put(text, &o, (const char *)buf_ptr(h), buf_len(h) - 1);
	env_json_put(text, &o, ENV_JSON_BODY_OPEN, strlen(ENV_JSON_BODY_OPEN));
	b64url_encode_buf(body, body_len, text + o);
	o += body_chars;
	text[o++] = '"';
	if (buf_len(t) == 2)	/* "{}": only its brace closes the object */
		text[o++] = '}';
	else {
		text[o++] = ',';
		env_json_put(text, &o, (const char *)buf_ptr(t) + 1,
		    buf_len(t) - 1);
	}
	text[o] = '\0';
	*out = (uint8_t *)text;
	*out_len = o;
	text = NULL;		/* transferred */
	r = 0;
 out:
	buf_free(h);		/* wiped: the type, name and checkpoint */
	buf_free(t);
	free(text);
	return r;
}

int
env_payload_encode_cp(const char *type, const uint8_t *body,
    size_t body_len, const char *name, const char *checkpoint,
    uint8_t **out, size_t *out_len, struct err_ctx *e)
{
	struct env_payload p;

	memset(&p, 0, sizeof(p));
	/* Only read: encode_full() takes a struct whose strings it never
	 * writes. */
	p.type = (char *)(uintptr_t)type;
	p.body = (uint8_t *)(uintptr_t)body;
	p.body_len = body_len;
	p.name = (char *)(uintptr_t)name;
	p.checkpoint = (char *)(uintptr_t)checkpoint;
	return env_payload_encode_full(&p, out, out_len, e);
}

/*
 * Checks the n blob references at blobs against section 8.2 for the
 * encoder: 0, or ERR_INVALID_ARG with the reason.
 */
static int
env_payload_blobs_check(const struct env_blob_ref *blobs, size_t n,
    struct err_ctx *e)
{
	size_t i, j;

	if (n > ENV_PAYLOAD_BLOBS_MAX || blobs == NULL)
		return err_set(e, ERR_INVALID_ARG, "message: 1 to %d "
		    "attachments, not %zu", ENV_PAYLOAD_BLOBS_MAX, n);
	for (i = 0; i < n; i++) {
		if (!hex_text_valid(blobs[i].hash, 64))
			return err_set(e, ERR_INVALID_ARG, "message: "
			    "attachment %zu has no hash of 64 lowercase hex "
			    "digits", i + 1);
		for (j = 0; j < i; j++) {
			if (strcmp(blobs[i].hash, blobs[j].hash) == 0)
				return err_set(e, ERR_INVALID_ARG, "message: "
				    "attachments %zu and %zu are the same "
				    "blob", j + 1, i + 1);
		}
		if (blobs[i].size > ENV_JSON_INT_MAX)
			return err_set(e, ERR_INVALID_ARG, "message: "
			    "attachment %zu is larger than 2^53 bytes", i + 1);
		if (blobs[i].type == NULL ||
		    !env_payload_type_valid(blobs[i].type,
		    strlen(blobs[i].type)))
			return err_set(e, ERR_INVALID_ARG, "message: the media "
			    "type of attachment %zu must be 1 to %d "
			    "printable ASCII characters", i + 1,
			    ENV_PAYLOAD_TYPE_MAX);
		if (blobs[i].name == NULL ||
		    !env_payload_name_valid(blobs[i].name,
		    strlen(blobs[i].name)))
			return err_set(e, ERR_INVALID_ARG, "message: the file "
			    "name of attachment %zu must be 1 to %d bytes of "
			    "UTF-8 without control characters, '/' or '\\', "
			    "and must not start with '.'", i + 1,
			    ENV_PAYLOAD_NAME_MAX);
	}
	return 0;
}

/* The "blobs" array of the n references at blobs, into *out. */
static int
env_payload_blobs_to_json(const struct env_blob_ref *blobs, size_t n,
    json_t **out)
{
	char key[ENV_BLOB_KEY_CHARS + 1];
	json_t *arr, *o;
	size_t i;
	int r = ERR_ALLOC;

	if ((arr = json_array()) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		b64url_encode_buf(blobs[i].key, sizeof(blobs[i].key), key);
		key[ENV_BLOB_KEY_CHARS] = '\0';
		o = json_object();
		if (env_json_append(arr, o) != 0 ||
		    env_json_set(o, "hash", json_string(blobs[i].hash)) != 0 ||
		    env_json_set(o, "size",
		    json_integer((json_int_t)blobs[i].size)) != 0 ||
		    env_json_set(o, "key", json_stringn(key,
		    ENV_BLOB_KEY_CHARS)) != 0 ||
		    env_json_set(o, "type", json_string(blobs[i].type)) != 0 ||
		    env_json_set(o, "name", json_string(blobs[i].name)) != 0)
			goto out;
	}
	*out = arr;
	arr = NULL;		/* transferred */
	r = 0;
 out:
	crypto_wipe(key, sizeof(key));
	if (arr != NULL) {
		env_json_wipe_tree(arr);
		json_decref(arr);
	}
	return r;
}

int
env_payload_encode_full(const struct env_payload *p, uint8_t **out,
    size_t *out_len, struct err_ctx *e)
{
	json_t *head = NULL, *rest = NULL, *blobs = NULL;
	int r = ERR_ALLOC;

	return_val_if_fail(p != NULL && p->type != NULL && out != NULL &&
	    out_len != NULL, ERR_INVALID_ARG);
	return_val_if_fail(p->body != NULL || p->body_len == 0,
	    ERR_INVALID_ARG);
	if (!env_payload_type_valid(p->type, strlen(p->type)))
		return err_set(e, ERR_INVALID_ARG, "message: the media type "
		    "must be 1 to %d printable ASCII characters",
		    ENV_PAYLOAD_TYPE_MAX);
	if (p->name != NULL && !env_payload_name_valid(p->name,
	    strlen(p->name)))
		return err_set(e, ERR_INVALID_ARG, "message: the file name "
		    "must be 1 to %d bytes of UTF-8 without control "
		    "characters, '/' or '\\', and must not start with '.'",
		    ENV_PAYLOAD_NAME_MAX);
	if (p->checkpoint != NULL && !env_payload_checkpoint_valid(
	    p->checkpoint, strlen(p->checkpoint)))
		return err_set(e, ERR_INVALID_ARG, "message: the checkpoint "
		    "must be 1 to %d bytes", ENV_PAYLOAD_CHECKPOINT_MAX);
	if (p->n_blobs > 0 &&
	    (r = env_payload_blobs_check(p->blobs, p->n_blobs, e)) != 0)
		return r;

	/* The members in the order type, body, name, checkpoint, blobs;
	 * the body is written by env_payload_dump(). */
	r = ERR_ALLOC;
	if ((head = json_object()) == NULL || (rest = json_object()) == NULL)
		goto out;
	if (json_object_set_new(head, "type", json_string(p->type)) != 0 ||
	    (p->name != NULL && json_object_set_new(rest, "name",
	    json_string(p->name)) != 0) ||
	    (p->checkpoint != NULL && json_object_set_new(rest, "checkpoint",
	    json_string(p->checkpoint)) != 0))
		goto out;
	if (p->n_blobs > 0) {
		if ((r = env_payload_blobs_to_json(p->blobs, p->n_blobs,
		    &blobs)) != 0)
			goto out;
		if (json_object_set(rest, "blobs", blobs) != 0) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if ((r = env_payload_dump(head, rest, p->body == NULL ?
	    (const uint8_t *)"" : p->body, p->body_len, out, out_len)) != 0)
		goto out;
	r = 0;
 out:
	env_json_wipe_tree(head);
	env_json_wipe_tree(rest);
	env_json_wipe_tree(blobs);
	json_decref(head);
	json_decref(rest);
	json_decref(blobs);
	return r;
}

/* A copy of the string member key of o (already checked by valid). */
static int
env_payload_blob_str(json_t *o, const char *key, size_t i,
    int (*valid)(const char *, size_t), const char *rule, char **out,
    struct err_ctx *e)
{
	const char *s;
	size_t len;
	int r;

	if ((r = env_json_str(o, key, "message attachment", &s, &len,
	    e)) != 0)
		return r;
	if (!valid(s, len))
		return err_set(e, ERR_FORMAT, "message: attachment %zu: the "
		    "%s", i + 1, rule);
	if ((*out = strdup(s)) == NULL)
		return ERR_ALLOC;
	return 0;
}

/*
 * The "blobs" member arr (section 8.2) into out->blobs: 1 to
 * ENV_PAYLOAD_BLOBS_MAX objects of exactly hash, size, key, type and
 * name, with distinct hashes.  On failure what was filled is left for
 * env_payload_clear().
 */
static int
env_payload_parse_blobs(json_t *arr, struct env_payload *out,
    struct err_ctx *e)
{
	static const char *const members[] = {
		"hash", "size", "key", "type", "name"
	};
	static const char what[] = "message attachment";
	struct env_blob_ref *b;
	json_t *o;
	const char *s;
	size_t i, j, n, len;
	int r;

	if (!json_is_array(arr))
		return err_set(e, ERR_FORMAT, "message: \"blobs\" is not an "
		    "array");
	n = json_array_size(arr);
	if (n == 0 || n > ENV_PAYLOAD_BLOBS_MAX)
		return err_set(e, ERR_FORMAT, "message: %zu attachments, not "
		    "1 to %d", n, ENV_PAYLOAD_BLOBS_MAX);
	if ((out->blobs = calloc(n, sizeof(*out->blobs))) == NULL)
		return ERR_ALLOC;
	out->n_blobs = n;
	for (i = 0; i < n; i++) {
		b = &out->blobs[i];
		o = json_array_get(arr, i);
		if (!json_is_object(o))
			return err_set(e, ERR_FORMAT, "message: attachment "
			    "%zu is not an object", i + 1);
		if ((r = env_json_members(o, members, 5, what, e)) != 0 ||
		    (r = env_json_str(o, "hash", what, &s, &len, e)) != 0)
			return r;
		if (len != 64 || !hex_text_valid(s, 64))
			return err_set(e, ERR_FORMAT, "message: attachment "
			    "%zu: the hash is not 64 lowercase hex digits",
			    i + 1);
		memcpy(b->hash, s, 64);
		b->hash[64] = '\0';
		for (j = 0; j < i; j++) {
			if (strcmp(out->blobs[j].hash, b->hash) == 0)
				return err_set(e, ERR_FORMAT, "message: "
				    "attachments %zu and %zu name the same "
				    "blob", j + 1, i + 1);
		}
		if ((r = env_json_u64(o, "size", what, &b->size, e)) != 0 ||
		    (r = env_json_b64_exact(o, "key", what, b->key,
		    sizeof(b->key), e)) != 0 ||
		    (r = env_payload_blob_str(o, "type", i,
		    env_payload_type_valid, "media type is not 1 to "
		    ENV_STR(ENV_PAYLOAD_TYPE_MAX) " printable ASCII "
		    "characters", &b->type, e)) != 0 ||
		    (r = env_payload_blob_str(o, "name", i,
		    env_payload_name_valid, "file name is not acceptable (a "
		    "path, hidden, control characters or too long)", &b->name,
		    e)) != 0)
			return r;
	}
	return 0;
}

/*
 * One try at env_payload_parse(): with splice, the body's characters are
 * taken out of the text before jansson loads it and decoded straight from
 * the plaintext (*spliced says whether that happened).
 */
static int
env_payload_parse_text(const uint8_t *p, size_t len, int splice,
    int *spliced, struct env_payload *out, struct err_ctx *e)
{
	static const char *const members[] = {
		"type", "body", "name", "checkpoint", "blobs"
	};
	struct env_json_span body;
	json_t *root = NULL;
	const char *s;
	size_t slen;
	int r = ERR_INTERNAL;

	memset(out, 0, sizeof(*out));
	*spliced = 0;
	if ((r = env_json_load_span(p, len, ENV_PAYLOAD_MAX_DEPTH, "message",
	    splice ? "body" : NULL, &body, &root, e)) != 0)
		goto out;
	*spliced = body.p != NULL;
	if ((r = env_json_members(root, members, 5, "message", e)) != 0 ||
	    (r = env_json_str(root, "type", "message", &s, &slen, e)) != 0)
		goto out;
	if (!env_payload_type_valid(s, slen)) {
		r = err_set(e, ERR_FORMAT, "message: the media type is not "
		    "1 to %d printable ASCII characters", ENV_PAYLOAD_TYPE_MAX);
		goto out;
	}
	if ((out->type = strdup(s)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (json_object_get(root, "name") != NULL) {
		if ((r = env_json_str(root, "name", "message", &s, &slen,
		    e)) != 0)
			goto out;
		if (!env_payload_name_valid(s, slen)) {
			r = err_set(e, ERR_FORMAT, "message: the file name is "
			    "not acceptable (a path, hidden, control "
			    "characters or too long)");
			goto out;
		}
		if ((out->name = strdup(s)) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if (json_object_get(root, "checkpoint") != NULL) {
		if ((r = env_json_str(root, "checkpoint", "message", &s,
		    &slen, e)) != 0)
			goto out;
		if (!env_payload_checkpoint_valid(s, slen)) {
			r = err_set(e, slen > ENV_PAYLOAD_CHECKPOINT_MAX ?
			    ERR_TOO_LARGE : ERR_FORMAT, "message: the "
			    "checkpoint is not 1 to %d bytes",
			    ENV_PAYLOAD_CHECKPOINT_MAX);
			goto out;
		}
		if ((out->checkpoint = strdup(s)) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if (json_object_get(root, "blobs") != NULL &&
	    (r = env_payload_parse_blobs(json_object_get(root, "blobs"), out,
	    e)) != 0)
		goto out;
	if ((r = env_json_b64_span(root, "body", &body, "message", len,
	    &out->body, &out->body_len, e)) != 0)
		goto out;
	r = 0;
 out:
	if (root != NULL) {
		env_json_wipe_tree(root);
		json_decref(root);
	}
	if (r != 0)
		env_payload_clear(out);
	return r;
}

int
env_payload_parse(const uint8_t *p, size_t len, struct env_payload *out,
    struct err_ctx *e)
{
	struct err_ctx fast;
	int r, spliced = 0;

	return_val_if_fail(p != NULL && out != NULL, ERR_INVALID_ARG);
	/* As env_parse_keep_tree() does with the ciphertext: the body
	 * decoded once, straight from the plaintext; on any failure the
	 * plaintext is judged again as a whole, for the plain reason. */
	err_clear(&fast);
	r = env_payload_parse_text(p, len, 1, &spliced, out, &fast);
	if (r == 0 || !spliced) {
		if (r != 0 && e != NULL && e->code == 0)
			*e = fast;
		return r;
	}
	return env_payload_parse_text(p, len, 0, &spliced, out, e);
}
