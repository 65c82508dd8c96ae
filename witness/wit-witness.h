/*
 * wit-witness.h - the add-checkpoint request of C2SP tlog-witness
 * (docs/protocol.md 7.4), apart from HTTP: a request body in, a status,
 * a content type and a body out.
 */
#ifndef DEVID_WIT_WITNESS_H
#define DEVID_WIT_WITNESS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"
#include "tlog-note.h"
#include "wit-signer.h"
#include "wit-store.h"

/* The largest request body read; beyond, 413. */
#define WIT_BODY_MAX ((size_t)65536)
/* The logs one witness serves. */
#define WIT_LOGS_MAX 256

struct wit;

/* An answer; body is owned by the answer (wit_answer_clear). */
struct wit_answer {
	unsigned int status;          /* HTTP status */
	const char *content_type;     /* static */
	char *body;
	size_t body_len;
	char summary[200];            /* for the log line: origin, sizes */
};

/*
 * A witness named name with the Ed25519 key of signer (kept, not owned:
 * the caller frees it after wit_free()), witnessing the nlogs logs
 * (copied; at most WIT_LOGS_MAX, each a vkey of type TLOG_SIGTYPE_ECDSA)
 * on store (not owned).  ERR_INVALID_ARG for a key that is not Ed25519
 * or a log of another type.
 */
int wit_new(const char *name, struct wit_signer *signer,
    const struct tlog_vkey *logs, size_t nlogs, struct wit_store *store,
    struct wit **out, struct err_ctx *e);

/* NULL is fine. */
void wit_free(struct wit *w);

/* The witness's own verifier key. */
const struct tlog_vkey *wit_vkey(const struct wit *w);

/*
 * Handles one add-checkpoint body (len bytes) at Unix time now and fills
 * *a: 200 with the cosignature line once the checkpoint is durable; 400
 * malformed (or old larger than the size), 403 the log's signature does
 * not verify, 404 an origin not witnessed, 409 with "<held size>\n" as
 * text/x.tlog.size when old is not the size held or a size already
 * cosigned comes with another root, 413 a body over WIT_BODY_MAX, 422 a
 * consistency proof that does not verify, 500 (and the error returned,
 * e set) when the state cannot be read or written.  A fork and a bad
 * proof against a held checkpoint are kept as evidence (wit-store.h).
 */
int wit_add_checkpoint(struct wit *w, const char *body, size_t len,
    uint64_t now, struct wit_answer *a, struct err_ctx *e);

/* Frees what a holds and zeroes it.  NULL is fine. */
void wit_answer_clear(struct wit_answer *a);

#endif /* DEVID_WIT_WITNESS_H */
