/*
 * wit-witness.c - the add-checkpoint request of C2SP tlog-witness.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "errors.h"
#include "tlog-note.h"
#include "wit-check.h"
#include "wit-signer.h"
#include "wit-store.h"
#include "wit-witness.h"

struct wit {
	struct wit_signer *signer;
	struct tlog_vkey vkey;
	struct tlog_vkey *logs;
	size_t nlogs;
	struct wit_store *store;
};

/* The parts of one request, on the heap (a note is 20 KiB). */
struct req {
	uint64_t old;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t nproof;
	size_t note_off;
	struct tlog_note note;
	struct tlog_checkpoint cp;
};

int
wit_new(const char *name, struct wit_signer *signer,
    const struct tlog_vkey *logs, size_t nlogs, struct wit_store *store,
    struct wit **out, struct err_ctx *e)
{
	EVP_PKEY *key;
	struct wit *w = NULL;
	size_t i;
	int r = ERR_INTERNAL;

	return_val_if_fail(name != NULL && signer != NULL && store != NULL &&
	    out != NULL && (nlogs == 0 || logs != NULL), ERR_INVALID_ARG);
	key = wit_signer_public(signer);
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519)
		return err_set(e, ERR_INVALID_ARG, "the witness key must be "
		    "an Ed25519 key");
	if (nlogs > WIT_LOGS_MAX)
		return err_set(e, ERR_TOO_LARGE, "a witness serves at most %d "
		    "logs", WIT_LOGS_MAX);
	for (i = 0; i < nlogs; i++)
		if (logs[i].type != TLOG_SIGTYPE_ECDSA)
			return err_set(e, ERR_INVALID_ARG, "log '%.200s': its "
			    "vkey must be of type 0x02 (a devid directory's "
			    "ECDSA key, as devid-directory prints it)",
			    logs[i].name);
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (nlogs > 0 && (w->logs = calloc(nlogs, sizeof(*logs))) == NULL)) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = tlog_vkey_cosigner(name, key, &w->vkey, e)) != 0)
		goto out;
	if (nlogs > 0)
		memcpy(w->logs, logs, nlogs * sizeof(*logs));
	w->nlogs = nlogs;
	w->signer = signer;
	w->store = store;
	*out = w;
	w = NULL; /* transferred */
	r = 0;
 out:
	wit_free(w);
	return r;
}

void
wit_free(struct wit *w)
{
	if (w == NULL)
		return;
	free(w->logs);
	free(w);
}

const struct tlog_vkey *
wit_vkey(const struct wit *w)
{
	return &w->vkey;
}

void
wit_answer_clear(struct wit_answer *a)
{
	if (a == NULL)
		return;
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/* Sets a to status with a text body made by fmt. */
static int
answer(struct wit_answer *a, unsigned int status, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
answer(struct wit_answer *a, unsigned int status, const char *type,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	free(a->body);
	a->body = NULL;
	a->body_len = 0;
	a->status = status;
	a->content_type = type;
	va_start(ap, fmt);
	n = vasprintf(&a->body, fmt, ap);
	va_end(ap);
	if (n < 0) {
		a->body = NULL;
		a->status = 500;
		a->content_type = "text/plain; charset=utf-8";
		return ERR_ALLOC;
	}
	a->body_len = (size_t)n;
	return 0;
}

#define TEXT "text/plain; charset=utf-8"

/*
 * The body of a 200: the cosignature line of w over q's note at time
 * now, formatted the way a signed note carries it.
 */
static int
cosign(struct wit *w, const struct req *q, uint64_t now,
    struct wit_answer *a, struct err_ctx *e)
{
	struct tlog_note *one = NULL;
	struct tlog_sigline sl;
	char *s = NULL;
	size_t len = 0;
	int r = ERR_INTERNAL;

	if ((one = calloc(1, sizeof(*one))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(one->text, q->note.text, q->note.text_len + 1);
	one->text_len = q->note.text_len;
	if ((r = wit_signer_cosign(w->signer, q->note.text, q->note.text_len,
	    &w->vkey, now, &sl, e)) != 0 ||
	    (r = tlog_note_add_sig(one, &sl)) != 0 ||
	    (r = tlog_note_format(one, &s, &len)) != 0) {
		r = err_set(e, r, "cannot cosign the checkpoint of '%.200s'",
		    q->cp.origin);
		goto out;
	}
	/* text, the empty line, then the line we want */
	if (len < one->text_len + 1) {
		r = err_set(e, ERR_INTERNAL, "a formatted note is shorter "
		    "than its text");
		goto out;
	}
	free(a->body);
	if ((a->body = strdup(s + one->text_len + 1)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	a->body_len = len - one->text_len - 1;
	a->status = 200;
	a->content_type = TEXT;
	r = 0;
 out:
	free(s);
	free(one);
	return r;
}

/* Checks the log's signature on q's note: 0, or the status to answer. */
static unsigned int
log_signature_check(const struct wit *w, const struct req *q)
{
	struct err_ctx ignore;
	size_t i;
	int known = 0;

	for (i = 0; i < w->nlogs; i++) {
		if (strcmp(w->logs[i].name, q->cp.origin) != 0)
			continue;
		known = 1;
		err_clear(&ignore);
		if (tlog_note_verify_log(&q->note, &w->logs[i], &ignore) == 0)
			return 0;
	}
	return known ? 403 : 404;
}

int
wit_add_checkpoint(struct wit *w, const char *body, size_t len,
    uint64_t now, struct wit_answer *a, struct err_ctx *e)
{
	struct req *q = NULL;
	struct err_ctx pe;
	enum wit_verdict v;
	uint64_t held = 0;
	unsigned int status;
	int r = ERR_INTERNAL;

	return_val_if_fail(w != NULL && a != NULL && (body != NULL ||
	    len == 0), ERR_INVALID_ARG);
	memset(a, 0, sizeof(*a));
	err_clear(&pe);
	if (len > WIT_BODY_MAX)
		return answer(a, 413, TEXT, "request body larger than %zu "
		    "bytes\n", WIT_BODY_MAX);
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		answer(a, 500, TEXT, "out of memory\n");
		return r;
	}
	if (tlog_witness_req_parse(body, len, &q->old, q->proof, &q->nproof,
	    &q->note_off, &pe) != 0 || q->note_off > len ||
	    tlog_note_parse(body + q->note_off, len - q->note_off, &q->note,
	    &pe) != 0 ||
	    tlog_checkpoint_parse(q->note.text, q->note.text_len, &q->cp,
	    &pe) != 0) {
		r = answer(a, 400, TEXT, "malformed add-checkpoint request: "
		    "%s\n", err_msg(&pe));
		snprintf(a->summary, sizeof(a->summary), "malformed");
		goto out;
	}
	snprintf(a->summary, sizeof(a->summary), "%.120s old %" PRIu64
	    " size %" PRIu64, q->cp.origin, q->old, q->cp.size);
	if ((status = log_signature_check(w, q)) != 0) {
		r = answer(a, status, TEXT, status == 404 ?
		    "this witness does not witness the log '%s'\n" :
		    "the signature of the log '%s' does not verify under "
		    "the key this witness has for it\n", q->cp.origin);
		goto out;
	}
	if (q->old > q->cp.size) {
		r = answer(a, 400, TEXT, "old size %" PRIu64 " is larger "
		    "than the checkpoint's size %" PRIu64 "\n", q->old,
		    q->cp.size);
		goto out;
	}
	if ((r = wit_store_submit(w->store, q->old,
	    (const uint8_t (*)[MERKLE_HASH_LEN])q->proof, q->nproof, &q->cp,
	    body + q->note_off, len - q->note_off, now, &v, &held, e)) != 0) {
		answer(a, 500, TEXT, "the witness cannot store its state\n");
		goto out;
	}
	switch (v) {
	case WIT_COSIGN_NEW:
	case WIT_COSIGN_SAME:
		if ((r = cosign(w, q, now, a, e)) != 0)
			answer(a, 500, TEXT, "cannot cosign\n");
		break;
	case WIT_BAD_OLD:
		r = answer(a, 400, TEXT, "old size is larger than the "
		    "checkpoint's size\n");
		break;
	case WIT_STALE:
	case WIT_FORK:
		r = answer(a, 409, "text/x.tlog.size", "%" PRIu64 "\n", held);
		if (v == WIT_FORK)
			snprintf(a->summary, sizeof(a->summary), "%.120s size "
			    "%" PRIu64 ": FORK, evidence kept", q->cp.origin,
			    q->cp.size);
		break;
	case WIT_BAD_PROOF:
		r = answer(a, 422, TEXT, "the consistency proof from size %"
		    PRIu64 " to %" PRIu64 " does not verify\n", q->old,
		    q->cp.size);
		break;
	}
 out:
	free(q);
	return r;
}
