/*
 * tpm-token.h - the TPM 2.0 implementation of the token interface.
 *
 * Device keys are ordinary children of the TCG H-2 ECC storage primary
 * (re-created on demand under the owner hierarchy), kept as "TSS2 PRIVATE
 * KEY" PEM files in the state directory (tpm-keyfile.h) so that other TPM
 * software can use them too.  The storage primary's name is pinned when
 * the keys are created and checked on every load (ERR_PARENT_MISMATCH).
 *
 * The backend talks to the TPM through ESAPI over one explicitly named
 * TCTI, never tctildr's guessing.  It works without a resource manager:
 * while open it keeps exactly its two keys and one salted, parent-bound
 * HMAC session loaded (the primary is flushed once the keys are loaded),
 * and flushes everything else on every path.  When the TPM restarts or its
 * handles go stale it reconnects, reloads the keys from their files and
 * retries the operation once; a wrong PIN is never retried.
 *
 * Statistics (token.h): signs, ecdhs, reconnects (successful reloads after
 * the first load), logins (PINs obtained from tpm_options.pin_cb).
 *
 * docs/tpm.md describes the behaviour for users.
 */
#ifndef DEVID_TPM_TOKEN_H
#define DEVID_TPM_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "token.h"

/* The TCTI when neither the caller nor DEVID_TCTI names one. */
#define TPM_TCTI_DEFAULT "device:/dev/tpmrm0"
/* The environment variable that overrides the default TCTI. */
#define TPM_TCTI_ENV "DEVID_TCTI"

/* Default file names, relative to the state directory. */
#define TPM_SIG_FILE_DEFAULT "tpm-sig.pem"
#define TPM_ENC_FILE_DEFAULT "tpm-enc.pem"
#define TPM_PARENT_FILE_DEFAULT "tpm-parent.name"

/* The longest auth value (PIN): the size of a SHA-256 digest, the keys'
 * name algorithm. */
#define TPM_PIN_MAX 32

/*
 * Asks for a PIN when a key needs one and none was given (or the given one
 * was rejected).  Writes a NUL-terminated PIN of at most pin_max - 1 bytes
 * into pin and returns 0, or returns a negative ERR_* code (e.g.
 * ERR_PIN_REQUIRED when the user cancels).  The backend wipes pin after
 * use.  what is "signing key" or "encryption key".
 */
typedef int (*tpm_pin_fn)(void *arg, const char *what, char *pin,
    size_t pin_max);

struct tpm_options {
	/* The keys' auth value; NULL or "" for none.  Copied (and the copy
	 * wiped at close); the caller's string is left untouched. */
	const char *pin;
	/* Optional prompt, used only when a key needs a PIN and pin is NULL
	 * or has been rejected by the TPM. */
	tpm_pin_fn pin_cb;
	void *pin_cb_arg;
	/* File names; NULL: the defaults above.  Relative names are taken
	 * relative to the state directory. */
	const char *sig_file;
	const char *enc_file;
	const char *parent_file;
};

/*
 * Creates a TPM token object.  tcti is a TCTI configuration string such as
 * "device:/dev/tpmrm0" or "swtpm:path=/run/swtpm/sock"; NULL means the
 * DEVID_TCTI environment variable when set, else TPM_TCTI_DEFAULT.
 * state_dir holds the key files (it must exist).  opt may be NULL.
 *
 * Nothing talks to the TPM yet: create_keys or open_keys connects.  On
 * success *out is a token the caller closes with token_close(); on failure
 * *out is untouched.  Returns 0, ERR_INVALID_ARG (e.g. a PIN longer than
 * TPM_PIN_MAX) or ERR_ALLOC.
 */
int tpm_token_new(const char *tcti, const char *state_dir,
    const struct tpm_options *opt, struct token **out, struct err_ctx *e);

/*
 * What the TPM currently holds, for status and for tests that check for
 * leaks: the number of loaded transient objects and of loaded sessions,
 * read with TPM2_GetCapability(TPM2_CAP_HANDLES) over this token's
 * connection (connecting if needed).  t must be a TPM token.
 */
int tpm_token_loaded_handles(struct token *t, unsigned int *objects,
    unsigned int *sessions, struct err_ctx *e);

/*
 * The dictionary-attack state (TPM2_PT_LOCKOUT_COUNTER, MAX_AUTH_FAIL,
 * LOCKOUT_INTERVAL in seconds).  Any of the outputs may be NULL.
 */
int tpm_token_da_state(struct token *t, uint32_t *counter,
    uint32_t *max_tries, uint32_t *interval_s, struct err_ctx *e);

#endif /* DEVID_TPM_TOKEN_H */
