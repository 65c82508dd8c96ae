/*
 * tpm-private.h - what the files of the TPM backend share.
 *
 * tpm-token.c: the token operations, reconnect-and-retry, key files.
 * tpm-session.c: the connection, the storage primary, the session, loading.
 * tpm-errors.c: TSS2_RC codes to ERR_* codes and messages.
 */
#ifndef DEVID_TPM_PRIVATE_H
#define DEVID_TPM_PRIVATE_H

#include <stdint.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tcti.h>

#include "errors.h"
#include "token.h"
#include "tpm-keyfile.h"
#include "tpm-token.h"

struct tpm_token {
	struct token base;              /* first: token.h casts */
	char *tcti_conf;                /* owned */
	char *sig_path;                 /* owned, absolute or state-relative */
	char *enc_path;
	char *parent_path;

	TSS2_TCTI_CONTEXT *tcti;        /* NULL when disconnected */
	ESYS_CONTEXT *esys;
	/* Loaded for the token's lifetime (ESYS_TR_NONE when not). */
	ESYS_TR sig_key;
	ESYS_TR enc_key;
	ESYS_TR session;

	int keys_known;                 /* sig_kf/enc_kf/parent_name valid */
	struct tpm_keyfile sig_kf;
	struct tpm_keyfile enc_kf;
	TPM2B_NAME parent_name;         /* pinned */

	/* The auth value: secret, wiped on close and when rejected. */
	TPM2B_AUTH auth;
	int have_auth;
	tpm_pin_fn pin_cb;
	void *pin_cb_arg;

	/* The TSS2_RC of the last failed TPM call, for reconnect decisions. */
	TSS2_RC last_rc;
	int ever_loaded;
};

/* --- tpm-errors.c --- */

/* The response code without its handle/session/parameter number. */
TSS2_RC tpm_rc_base(TSS2_RC rc);

/* The ERR_* code for a TSS2_RC (never 0 for a failure). */
int tpm_rc_to_err(TSS2_RC rc);

/*
 * True when rc means that the connection or the TPM's volatile state is
 * gone (TCTI I/O errors, TPM_RC_INITIALIZE, unknown handles or sessions):
 * the backend reconnects, reloads and retries once.
 */
int tpm_rc_is_stale(TSS2_RC rc);

/* True for the stale codes after which the TPM holds nothing of ours: the
 * connection failed or the TPM was reset (TPM_RC_INITIALIZE). */
int tpm_rc_is_reset(TSS2_RC rc);

/*
 * Records rc in tt->last_rc and a message "<what> on <tcti>: <decoded rc>"
 * plus advice in e; returns tpm_rc_to_err(rc).  Never used for auth
 * failures, which need the DA state (tpm_err_auth).
 */
int tpm_err_rc(struct tpm_token *tt, TSS2_RC rc, const char *what,
    struct err_ctx *e);

/*
 * For TPM_RC_AUTH_FAIL, TPM_RC_BAD_AUTH and TPM_RC_LOCKOUT: reads the
 * dictionary-attack state and records ERR_PIN_INCORRECT or ERR_PIN_LOCKED
 * with the failure count, the limit and when the TPM recovers.
 */
int tpm_err_auth(struct tpm_token *tt, TSS2_RC rc, const char *key_what,
    struct err_ctx *e);

/* --- tpm-session.c --- */

/* Opens the TCTI and ESAPI context if not open.  0 or an ERR_* code. */
int tpm_connect(struct tpm_token *tt, struct err_ctx *e);

/*
 * Closes the ESAPI context and TCTI.  With flush, first flushes the keys
 * and the session (best effort); without, only forgets them, for when the
 * TPM has lost them already (restart) and their handle numbers may now
 * belong to someone else.  Safe to call in any state.
 */
void tpm_disconnect(struct tpm_token *tt, int flush);

/*
 * Creates the H-2 storage primary under the owner hierarchy into *parent
 * (the caller flushes it) and checks or reports its name: when pinned is
 * not NULL the name must equal it (else ERR_PARENT_MISMATCH and nothing
 * stays loaded); name_out (may be NULL) receives the name.
 */
int tpm_parent_create(struct tpm_token *tt, const TPM2B_NAME *pinned,
    ESYS_TR *parent, TPM2B_NAME *name_out, struct err_ctx *e);

/*
 * Starts the HMAC session, salted with and bound to parent, AES-128-CFB
 * parameter encryption, SHA-256, continueSession, into tt->session.
 */
int tpm_session_start(struct tpm_token *tt, ESYS_TR parent,
    struct err_ctx *e);

/*
 * Sets the session attributes for the next command: continueSession plus
 * TPMA_SESSION_DECRYPT and/or TPMA_SESSION_ENCRYPT as the command allows.
 */
int tpm_session_attrs(struct tpm_token *tt, TPMA_SESSION attrs,
    struct err_ctx *e);

/*
 * Connects if needed and brings the token to its steady state from the
 * keys in sig_kf/enc_kf: parent re-created and its name checked against
 * the pinned one, session started, both keys loaded, parent flushed.  On
 * failure nothing stays loaded.
 */
int tpm_keys_load(struct tpm_token *tt, struct err_ctx *e);

/* Flushes h if it is not ESYS_TR_NONE (errors ignored) and clears it. */
void tpm_flush(struct tpm_token *tt, ESYS_TR *h);

/* The DA properties; any output may be NULL.  0 or an ERR_* code. */
int tpm_da_read(struct tpm_token *tt, uint32_t *counter, uint32_t *max_tries,
    uint32_t *interval_s, struct err_ctx *e);

#endif /* DEVID_TPM_PRIVATE_H */
