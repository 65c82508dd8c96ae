/*
 * witclient.h - the directory's side of the C2SP tlog-witness protocol
 * (docs/protocol.md section 7.4): submits a checkpoint to one witness
 * and brings back its cosignature lines, on libcurl.
 *
 * One struct witc per witness and per thread; not thread-safe.
 */
#ifndef DEVID_WITCLIENT_H
#define DEVID_WITCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct witc;

/*
 * A client for the witness whose submission prefix is url (http:// only
 * to loopback, as dirc_url_check() requires, or https://).  timeout_s 0
 * means 10 s.
 */
int witc_new(const char *url, long timeout_s, struct witc **out,
    struct err_ctx *e);

/* NULL is fine. */
void witc_free(struct witc *w);

/*
 * POST <url>/add-checkpoint with body (len bytes, made with
 * tlog_witness_req_format()).  On 200, *lines gets the answer's
 * signature lines in a new string (caller frees), at most TLOG_NOTE_MAX
 * bytes.  Errors: 409 -> ERR_EXISTS with *witness_size (may be NULL) set
 * from the text/x.tlog.size body when it has one (else 0), 422 ->
 * ERR_SIGNATURE (the proof did not verify), 403 -> ERR_DENIED, 404 ->
 * ERR_NOT_FOUND, 400 -> ERR_FORMAT, unreachable -> ERR_NETWORK, too slow
 * -> ERR_TIMEOUT; the message names the witness URL.
 */
int witc_add_checkpoint(struct witc *w, const char *body, size_t len,
    char **lines, uint64_t *witness_size, struct err_ctx *e);

#endif /* DEVID_WITCLIENT_H */
