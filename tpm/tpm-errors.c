/*
 * tpm-errors.c - TSS2_RC response codes to devid errors and messages.
 */
#include "config.h"

#include <string.h>

#include <tss2/tss2_rc.h>

#include "tpm-private.h"

TSS2_RC
tpm_rc_base(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

	/* A resource manager passes TPM codes through in its own layer. */
	if (layer == TSS2_RESMGR_TPM_RC_LAYER)
		layer = TSS2_TPM_RC_LAYER;
	if (layer != TSS2_TPM_RC_LAYER)
		return rc;
	rc &= 0xfff;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc;
}

int
tpm_rc_is_stale(TSS2_RC rc)
{
	TSS2_RC b = tpm_rc_base(rc);

	switch (b) {
	case TSS2_TCTI_RC_IO_ERROR:
	case TSS2_TCTI_RC_NO_CONNECTION:
	case TPM2_RC_INITIALIZE:
	case TPM2_RC_HANDLE:
		return 1;
	default:
		break;
	}
	/* Handles or sessions that are no longer loaded. */
	return b >= TPM2_RC_REFERENCE_H0 && b <= TPM2_RC_REFERENCE_S6;
}

int
tpm_rc_is_reset(TSS2_RC rc)
{
	TSS2_RC b = tpm_rc_base(rc);

	return b == TSS2_TCTI_RC_IO_ERROR || b == TSS2_TCTI_RC_NO_CONNECTION ||
	    b == TPM2_RC_INITIALIZE;
}

int
tpm_rc_to_err(TSS2_RC rc)
{
	TSS2_RC b = tpm_rc_base(rc);

	if (rc == TSS2_RC_SUCCESS)
		return 0;
	switch (b) {
	case TSS2_TCTI_RC_IO_ERROR:
	case TSS2_TCTI_RC_NO_CONNECTION:
	case TPM2_RC_INITIALIZE:
		return ERR_TOKEN_NOT_PRESENT;
	case TSS2_TCTI_RC_TRY_AGAIN:
		return ERR_TIMEOUT;
	case TSS2_TCTI_RC_MEMORY:
	case TSS2_ESYS_RC_MEMORY:
		return ERR_ALLOC;
	case TPM2_RC_AUTH_FAIL:
	case TPM2_RC_BAD_AUTH:
		return ERR_PIN_INCORRECT;
	case TPM2_RC_LOCKOUT:
		return ERR_PIN_LOCKED;
	case TPM2_RC_ECC_POINT:
	case TPM2_RC_NO_RESULT:
		return ERR_FORMAT;
	case TPM2_RC_CURVE:
	case TPM2_RC_ASYMMETRIC:
	case TPM2_RC_SCHEME:
	case TPM2_RC_COMMAND_CODE:
		return ERR_UNSUPPORTED;
	default:
		return ERR_TOKEN;
	}
}

/* Advice for the codes a user can do something about; "" otherwise. */
static const char *
tpm_rc_advice(TSS2_RC rc)
{
	switch (tpm_rc_base(rc)) {
	case TSS2_TCTI_RC_IO_ERROR:
	case TSS2_TCTI_RC_NO_CONNECTION:
		return ": is the TPM (or swtpm) there, and may this user open it "
		    "(group tss for /dev/tpmrm0)?";
	case TPM2_RC_INITIALIZE:
		return ": the TPM has not been started (TPM2_Startup)";
	case TPM2_RC_OBJECT_MEMORY:
	case TPM2_RC_SESSION_MEMORY:
	case TPM2_RC_MEMORY:
	case TPM2_RC_SESSION_HANDLES:
		return ": the TPM is full; without a resource manager another "
		    "program may have left objects or sessions loaded";
	case TPM2_RC_HIERARCHY:
		return ": the owner hierarchy is disabled";
	case TPM2_RC_ECC_POINT:
		return ": the peer point is not on P-256";
	default:
		return "";
	}
}

int
tpm_err_rc(struct tpm_token *tt, TSS2_RC rc, const char *what,
    struct err_ctx *e)
{
	int code = tpm_rc_to_err(rc);

	if (code == 0)
		code = ERR_INTERNAL;
	if (tt != NULL)
		tt->last_rc = rc;
	return err_set(e, code, "TPM %s at '%s' failed: %s (0x%x)%s", what,
	    tt != NULL && tt->tcti_conf != NULL ? tt->tcti_conf : "?",
	    Tss2_RC_Decode(rc), (unsigned int)rc, tpm_rc_advice(rc));
}

int
tpm_err_auth(struct tpm_token *tt, TSS2_RC rc, const char *key_what,
    struct err_ctx *e)
{
	uint32_t counter = 0, max_tries = 0, interval_s = 0;
	int have_da, locked;

	tt->last_rc = rc;
	locked = tpm_rc_base(rc) == TPM2_RC_LOCKOUT;
	/* The DA state is advice; an error reading it must not mask rc. */
	have_da = tpm_da_read(tt, &counter, &max_tries, &interval_s,
	    NULL) == 0;
	if (locked) {
		if (!have_da)
			return err_set(e, ERR_PIN_LOCKED, "the TPM at '%s' is "
			    "in dictionary-attack lockout (TPM_RC_LOCKOUT): "
			    "the %s cannot be used until it recovers",
			    tt->tcti_conf, key_what);
		return err_set(e, ERR_PIN_LOCKED, "the TPM at '%s' is in "
		    "dictionary-attack lockout (TPM_RC_LOCKOUT) after %u "
		    "failed authorizations (limit %u): the %s can be used "
		    "again in at most %u s, when the TPM forgives one "
		    "failure, or after the owner clears the lockout "
		    "(tpm2_dictionarylockout --clear-lockout)", tt->tcti_conf,
		    (unsigned int)counter, (unsigned int)max_tries, key_what,
		    (unsigned int)interval_s);
	}
	if (!have_da)
		return err_set(e, ERR_PIN_INCORRECT, "the TPM at '%s' rejected "
		    "the PIN for the %s (%s); it was not retried", tt->tcti_conf,
		    key_what, Tss2_RC_Decode(rc));
	if (tpm_rc_base(rc) == TPM2_RC_BAD_AUTH)
		return err_set(e, ERR_PIN_INCORRECT, "the TPM at '%s' rejected "
		    "the PIN for the %s (TPM_RC_BAD_AUTH); it was not retried",
		    tt->tcti_conf, key_what);
	return err_set(e, ERR_PIN_INCORRECT, "the TPM at '%s' rejected the "
	    "PIN for the %s (TPM_RC_AUTH_FAIL); it was not retried: %u of %u "
	    "failed authorizations before dictionary-attack lockout, one is "
	    "forgiven every %u s", tt->tcti_conf, key_what,
	    (unsigned int)counter, (unsigned int)max_tries,
	    (unsigned int)interval_s);
}
