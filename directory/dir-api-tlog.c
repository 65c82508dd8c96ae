/*
 * dir-api-tlog.c - the endpoints of the global transparency log
 * (docs/protocol.md section 7.5) and the "tlog" member of log reads.
 *
 * Everything here is public: the tree, its checkpoints and its proofs
 * reveal account names and event hashes, which witnesses and monitors
 * need, and nothing a session would protect beyond that.  Proofs are
 * served only into the latest stored checkpoint's tree or smaller ones,
 * never into leaves the directory has not committed to.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "codec.h"
#include "dir-api.h"
#include "dir-log.h"
#include "dir-parse.h"
#include "dir-tlog.h"
#include "errors.h"
#include "merkle.h"

/* Leaves per /v1/tlog/leaves answer. */
#define LEAVES_MAX 1024

/* A JSON array of base64url hashes; NULL when out of memory. */
static json_t *
proof_json(const uint8_t proof[][MERKLE_HASH_LEN], size_t n)
{
	json_t *arr;
	char *b64;
	size_t i;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (b64url_encode(proof[i], MERKLE_HASH_LEN, &b64) != 0 ||
		    json_array_append_new(arr, json_string(b64)) != 0) {
			free(b64);
			json_decref(arr);
			return NULL;
		}
		free(b64);
	}
	return arr;
}

/*
 * Answers 200 with {"<a>":x,"size":size,"proof":[...]} built as text:
 * proofs are the log's most frequent answer, and building them through
 * JSON objects cost more than computing them.
 */
static void
reply_proof(struct dir_request *rq, const char *a, uint64_t x,
    uint64_t size, const uint8_t proof[][MERKLE_HASH_LEN], size_t n)
{
	struct err_ctx e;
	char *text, *p, *b64 = NULL;
	size_t i, cap = 96 + n * (2 + 43 + 1);
	int len;

	if ((text = malloc(cap)) == NULL)
		goto oom;
	len = snprintf(text, cap, "{\"%s\":%llu,\"size\":%llu,\"proof\":[",
	    a, (unsigned long long)x, (unsigned long long)size);
	if (len < 0 || (size_t)len >= cap)
		goto oom;
	p = text + len;
	for (i = 0; i < n; i++) {
		if (b64url_encode(proof[i], MERKLE_HASH_LEN, &b64) != 0)
			goto oom;
		*p++ = i > 0 ? ',' : '"';
		if (i > 0)
			*p++ = '"';
		memcpy(p, b64, 43);
		p += 43;
		*p++ = '"';
		free(b64);
		b64 = NULL;
	}
	*p++ = ']';
	*p++ = '}';
	dir_reply_text(rq, MHD_HTTP_OK, text, (size_t)(p - text));
	return;
 oom:
	free(text);
	free(b64);
	err_clear(&e);
	err_set(&e, ERR_ALLOC, "out of memory");
	dir_api_reply_err(rq, &e);
}

/* Answers 200 with o, or 503 when building o ran out of memory. */
static void
reply_obj(struct dir_request *rq, json_t *o)
{
	struct err_ctx e;

	if (o == NULL) {
		err_clear(&e);
		err_set(&e, ERR_ALLOC, "out of memory");
		dir_api_reply_err(rq, &e);
		return;
	}
	dir_reply_json(rq, MHD_HTTP_OK, o);
}

/* The size of the latest checkpoint (0 before the first). */
static int
published_size(struct dir_api *api, uint64_t *size, struct err_ctx *e)
{
	int r;

	r = dir_tlog_latest_size(api->tlog, size, e);
	if (r == ERR_NOT_FOUND) {
		*size = 0;
		err_clear(e);
		return 0;
	}
	return r;
}

static int
query(struct dir_request *rq, const char *name, uint64_t *out,
    struct err_ctx *e)
{
	if (dir_request_query(rq, name) == NULL)
		return err_set(e, ERR_FORMAT, "query argument '%s' is "
		    "required", name);
	return dir_parse_query_u64(name, dir_request_query(rq, name), 0, 0,
	    MERKLE_SIZE_MAX, out, e);
}

/* A tree size a proof may be asked for: at most the published one. */
static int
size_published(struct dir_api *api, uint64_t size, struct err_ctx *e)
{
	uint64_t pub;
	int r;

	if ((r = published_size(api, &pub, e)) != 0)
		return r;
	if (size > pub)
		return err_set(e, ERR_NOT_FOUND, "no checkpoint of size %llu "
		    "has been published (the latest has %llu leaves)",
		    (unsigned long long)size, (unsigned long long)pub);
	return 0;
}

static void
handle_checkpoint(struct dir_api *api, struct dir_request *rq)
{
	struct err_ctx e;
	uint64_t size;
	char *note = NULL;

	err_clear(&e);
	if (dir_tlog_latest(api->tlog, &size, &note, &e) != 0) {
		if (e.code == ERR_NOT_FOUND)
			err_set(&e, ERR_NOT_FOUND, "no checkpoint has been "
			    "made yet: try again in a few seconds");
		dir_api_reply_err(rq, &e);
		return;
	}
	reply_obj(rq, json_pack("{s:s}", "checkpoint",
	    note));
	free(note);
}

static void
handle_inclusion(struct dir_api *api, struct dir_request *rq)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	struct err_ctx e;
	uint64_t index, size;
	size_t n;

	err_clear(&e);
	if (query(rq, "index", &index, &e) != 0 ||
	    query(rq, "size", &size, &e) != 0)
		goto fail;
	if (index >= size) {
		err_set(&e, ERR_FORMAT, "index must be below size");
		goto fail;
	}
	if (size_published(api, size, &e) != 0 ||
	    dir_tlog_inclusion(api->tlog, index, size, proof, &n, &e) != 0)
		goto fail;
	reply_proof(rq, "index", index, size,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n);
	return;
 fail:
	dir_api_reply_err(rq, &e);
}

static void
handle_consistency(struct dir_api *api, struct dir_request *rq)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	struct err_ctx e;
	uint64_t old, size;
	size_t n;

	err_clear(&e);
	if (query(rq, "old", &old, &e) != 0 ||
	    query(rq, "size", &size, &e) != 0)
		goto fail;
	if (old > size) {
		err_set(&e, ERR_FORMAT, "old must not be above size");
		goto fail;
	}
	if (size_published(api, size, &e) != 0 ||
	    dir_tlog_consistency(api->tlog, old, size, proof, &n, &e) != 0)
		goto fail;
	reply_proof(rq, "old", old, size,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n);
	return;
 fail:
	dir_api_reply_err(rq, &e);
}

struct leaves_ctx {
	json_t *arr;
	int oom;
};

static int
add_leaf(void *arg, uint64_t index, const char *account, uint64_t seq,
    const uint8_t hash[32])
{
	struct leaves_ctx *lc = arg;
	char hex[2 * MERKLE_HASH_LEN + 1];

	(void)index;
	hex_encode(hash, MERKLE_HASH_LEN, hex);
	if (json_array_append_new(lc->arr, json_pack("{s:s,s:I,s:s}",
	    "account", account, "seq", (json_int_t)seq, "hash", hex)) != 0) {
		lc->oom = 1;
		return 1;
	}
	return 0;
}

static void
handle_leaves(struct dir_api *api, struct dir_request *rq)
{
	struct leaves_ctx lc = { NULL, 0 };
	struct err_ctx e;
	uint64_t start, end;

	err_clear(&e);
	if (query(rq, "start", &start, &e) != 0 ||
	    query(rq, "end", &end, &e) != 0)
		goto fail;
	if (end <= start || end - start > LEAVES_MAX) {
		err_set(&e, ERR_FORMAT, "end must be above start, by at most "
		    "%d", LEAVES_MAX);
		goto fail;
	}
	if (size_published(api, end, &e) != 0)
		goto fail;
	if ((lc.arr = json_array()) == NULL) {
		err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (api->store->ops->tlog_leaves(api->store, start, end, add_leaf,
	    &lc, &e) != 0 || lc.oom) {
		if (lc.oom)
			err_set(&e, ERR_ALLOC, "out of memory");
		goto fail;
	}
	if (json_array_size(lc.arr) != end - start) {
		err_set(&e, ERR_INTERNAL, "the store holds %zu of leaves "
		    "%llu to %llu", json_array_size(lc.arr),
		    (unsigned long long)start, (unsigned long long)end - 1);
		goto fail;
	}
	reply_obj(rq, json_pack("{s:o}", "leaves", lc.arr));
	return;
 fail:
	json_decref(lc.arr);
	dir_api_reply_err(rq, &e);
}

void
dir_api_tlog_handle(struct dir_api *api, struct dir_request *rq,
    enum dir_endpoint ep)
{
	if (api->tlog == NULL) {
		dir_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "this "
		    "directory keeps no transparency log");
		return;
	}
	switch (ep) {
	case DIR_EP_TLOG_CHECKPOINT:
		handle_checkpoint(api, rq);
		break;
	case DIR_EP_TLOG_INCLUSION:
		handle_inclusion(api, rq);
		break;
	case DIR_EP_TLOG_CONSISTENCY:
		handle_consistency(api, rq);
		break;
	case DIR_EP_TLOG_LEAVES:
		handle_leaves(api, rq);
		break;
	default:
		dir_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "no such "
		    "transparency log endpoint");
		break;
	}
}

int
dir_api_tlog_member(struct dir_api *api, const char *account, json_t **out,
    struct err_ctx *e)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint64_t size, seq, index;
	char *note = NULL;
	json_t *arr;
	size_t n;
	int r;

	*out = NULL;
	if (api->tlog == NULL)
		return 0;
	if ((r = dir_tlog_latest(api->tlog, &size, &note, e)) != 0) {
		if (r == ERR_NOT_FOUND) {
			err_clear(e);
			return 0;
		}
		return r;
	}
	r = api->store->ops->tlog_latest(api->store, account, size, &seq,
	    &index, e);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		free(note);
		return 0;
	}
	if (r != 0 || (r = dir_tlog_inclusion(api->tlog, index, size, proof,
	    &n, e)) != 0) {
		free(note);
		return r;
	}
	if ((arr = proof_json((const uint8_t (*)[MERKLE_HASH_LEN])proof,
	    n)) == NULL ||
	    (*out = json_pack("{s:s,s:I,s:I,s:o}", "checkpoint", note, "seq",
	    (json_int_t)seq, "index", (json_int_t)index, "proof", arr)) ==
	    NULL) {
		free(note);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	free(note);
	return 0;
}
