/*
 * tpm-session.c - the TPM connection, the storage primary, the HMAC
 * session and loading the device keys (tpm-private.h).
 *
 * Without a resource manager a TPM holds only a few objects and sessions
 * (swtpm: 3 and 3), so every function here either leaves exactly what it
 * documents loaded or flushes what it loaded before returning.
 */
#include "config.h"

#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "tpm-private.h"

/*
 * The TCG "H-2" ECC storage key template (TCG TPM 2.0 Provisioning
 * Guidance): deterministic for a given owner seed, and the one other TPM
 * software uses for keys whose parent is 0x40000001.
 */
static const TPM2B_PUBLIC parent_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_FIXEDTPM |
		    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
		    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
		    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
		.parameters.eccDetail = {
			.symmetric = {
				.algorithm = TPM2_ALG_AES,
				.keyBits.aes = 128,
				.mode.aes = TPM2_ALG_CFB,
			},
			.scheme.scheme = TPM2_ALG_NULL,
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	},
};

/*
 * Any TCTI failure here means the TPM cannot be reached with this string:
 * ERR_TOKEN_NOT_PRESENT, with the TCTI rc kept in last_rc so that the
 * caller's retry logic sees a connection failure.
 */
int
tpm_connect(struct tpm_token *tt, struct err_ctx *e)
{
	TSS2_TCTI_CONTEXT *tcti = NULL;
	ESYS_CONTEXT *esys = NULL;
	TSS2_RC rc;

	if (tt->esys != NULL)
		return 0;
	rc = Tss2_TctiLdr_Initialize(tt->tcti_conf, &tcti);
	if (rc != TSS2_RC_SUCCESS) {
		tt->last_rc = rc;
		return err_set(e, ERR_TOKEN_NOT_PRESENT, "cannot open the TPM "
		    "through TCTI '%s': %s (0x%x): check the TCTI string and "
		    "that the TPM (or swtpm) is there and accessible",
		    tt->tcti_conf, Tss2_RC_Decode(rc), (unsigned int)rc);
	}
	rc = Esys_Initialize(&esys, tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		Tss2_TctiLdr_Finalize(&tcti);
		return tpm_err_rc(tt, rc, "ESAPI initialisation", e);
	}
	tt->tcti = tcti;
	tt->esys = esys;
	return 0;
}

void
tpm_flush(struct tpm_token *tt, ESYS_TR *h)
{
	if (*h == ESYS_TR_NONE)
		return;
	if (tt->esys != NULL &&
	    Esys_FlushContext(tt->esys, *h) != TSS2_RC_SUCCESS)
		(void)Esys_TR_Close(tt->esys, h);
	*h = ESYS_TR_NONE;
}

void
tpm_disconnect(struct tpm_token *tt, int flush)
{
	if (flush) {
		tpm_flush(tt, &tt->sig_key);
		tpm_flush(tt, &tt->enc_key);
		tpm_flush(tt, &tt->session);
	}
	/* Esys_Finalize releases ESAPI's side of whatever is left. */
	tt->sig_key = tt->enc_key = tt->session = ESYS_TR_NONE;
	if (tt->esys != NULL)
		Esys_Finalize(&tt->esys);
	if (tt->tcti != NULL)
		Tss2_TctiLdr_Finalize(&tt->tcti);
	tt->esys = NULL;
	tt->tcti = NULL;
}

int
tpm_parent_create(struct tpm_token *tt, const TPM2B_NAME *pinned,
    ESYS_TR *parent, TPM2B_NAME *name_out, struct err_ctx *e)
{
	TPM2B_SENSITIVE_CREATE in_sensitive;
	TPM2B_DATA outside_info;
	TPML_PCR_SELECTION creation_pcr;
	TPM2B_NAME *name = NULL;
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;
	int r = ERR_INTERNAL;

	memset(&in_sensitive, 0, sizeof(in_sensitive));
	memset(&outside_info, 0, sizeof(outside_info));
	memset(&creation_pcr, 0, sizeof(creation_pcr));
	/* The owner hierarchy's auth value is assumed empty, as other TPM
	 * software using parent 0x40000001 assumes. */
	rc = Esys_CreatePrimary(tt->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &in_sensitive, &parent_template,
	    &outside_info, &creation_pcr, &h, NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_err_rc(tt, rc, "creation of the storage primary", e);
		goto out;
	}
	rc = Esys_TR_GetName(tt->esys, h, &name);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_err_rc(tt, rc, "reading the storage primary's name", e);
		goto out;
	}
	if (pinned != NULL && (pinned->size != name->size ||
	    memcmp(pinned->name, name->name, name->size) != 0)) {
		r = err_set(e, ERR_PARENT_MISMATCH, "the TPM at '%s' has a "
		    "different storage parent than the one the device keys "
		    "were made under: another TPM, or its owner hierarchy was "
		    "cleared; the keys cannot be used with this TPM",
		    tt->tcti_conf);
		goto out;
	}
	if (name_out != NULL)
		*name_out = *name;
	*parent = h;
	h = ESYS_TR_NONE;       /* transferred */
	r = 0;
 out:
	Esys_Free(name);
	tpm_flush(tt, &h);
	return r;
}

int
tpm_session_start(struct tpm_token *tt, ESYS_TR parent, struct err_ctx *e)
{
	const TPMT_SYM_DEF sym = {
		.algorithm = TPM2_ALG_AES,
		.keyBits.aes = 128,
		.mode.aes = TPM2_ALG_CFB,
	};
	ESYS_TR s = ESYS_TR_NONE;
	TSS2_RC rc;

	if (tt->session != ESYS_TR_NONE)
		return 0;
	/* Salted with the parent: the session key is unknown to anyone
	 * watching the bus.  Bound to it: its (empty) auth value enters
	 * the session key; each key's own auth value still enters each
	 * command's HMAC, so the PIN never crosses the bus. */
	rc = Esys_StartAuthSession(tt->esys, parent, parent, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym,
	    TPM2_ALG_SHA256, &s);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err_rc(tt, rc, "start of the HMAC session", e);
	tt->session = s;
	return 0;
}

int
tpm_session_attrs(struct tpm_token *tt, TPMA_SESSION attrs,
    struct err_ctx *e)
{
	TSS2_RC rc;

	rc = Esys_TRSess_SetAttributes(tt->esys, tt->session,
	    TPMA_SESSION_CONTINUESESSION | attrs, 0xff);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err_rc(tt, rc, "setting session attributes", e);
	return 0;
}

/* Loads one key under parent into *out through the session. */
static int
tpm_key_load(struct tpm_token *tt, ESYS_TR parent,
    const struct tpm_keyfile *kf, const char *path, ESYS_TR *out,
    struct err_ctx *e)
{
	TSS2_RC rc;
	int r;

	if ((r = tpm_session_attrs(tt, TPMA_SESSION_DECRYPT, e)) != 0)
		return r;
	rc = Esys_Load(tt->esys, parent, tt->session, ESYS_TR_NONE,
	    ESYS_TR_NONE, &kf->priv, &kf->pub, out);
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	if (tpm_rc_base(rc) == TPM2_RC_INTEGRITY) {
		tt->last_rc = rc;
		return err_set(e, ERR_PARENT_MISMATCH, "the TPM at '%s' "
		    "refused the key in %s (TPM_RC_INTEGRITY): it was made by "
		    "another TPM or under another parent, or the file was "
		    "altered", tt->tcti_conf, path);
	}
	return tpm_err_rc(tt, rc, "loading a device key", e);
}

int
tpm_keys_load(struct tpm_token *tt, struct err_ctx *e)
{
	ESYS_TR parent = ESYS_TR_NONE;
	int r = ERR_INTERNAL;

	if (!tt->keys_known)
		return err_set(e, ERR_INVALID_ARG,
		    "TPM token: no keys created or opened");
	if ((r = tpm_connect(tt, e)) != 0)
		return r;
	if ((r = tpm_parent_create(tt, &tt->parent_name, &parent, NULL,
	    e)) != 0 ||
	    (r = tpm_session_start(tt, parent, e)) != 0 ||
	    (r = tpm_key_load(tt, parent, &tt->sig_kf, tt->sig_path,
	    &tt->sig_key, e)) != 0 ||
	    (r = tpm_key_load(tt, parent, &tt->enc_kf, tt->enc_path,
	    &tt->enc_key, e)) != 0)
		goto out;
	r = 0;
 out:
	/* The parent is only needed to load and to salt: never kept. */
	tpm_flush(tt, &parent);
	if (r != 0) {
		tpm_flush(tt, &tt->sig_key);
		tpm_flush(tt, &tt->enc_key);
		tpm_flush(tt, &tt->session);
	}
	return r;
}

int
tpm_da_read(struct tpm_token *tt, uint32_t *counter, uint32_t *max_tries,
    uint32_t *interval_s, struct err_ctx *e)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TPML_TAGGED_TPM_PROPERTY *props;
	uint32_t i, found = 0;
	TSS2_RC rc;
	int r = ERR_INTERNAL;

	if ((r = tpm_connect(tt, e)) != 0)
		return r;
	rc = Esys_GetCapability(tt->esys, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_LOCKOUT_COUNTER, 3,
	    &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err_rc(tt, rc, "reading the dictionary-attack state",
		    e);
	props = &cap->data.tpmProperties;
	for (i = 0; i < props->count && i < TPM2_MAX_TPM_PROPERTIES; i++) {
		uint32_t v = props->tpmProperty[i].value;

		switch (props->tpmProperty[i].property) {
		case TPM2_PT_LOCKOUT_COUNTER:
			if (counter != NULL)
				*counter = v;
			found |= 1;
			break;
		case TPM2_PT_MAX_AUTH_FAIL:
			if (max_tries != NULL)
				*max_tries = v;
			found |= 2;
			break;
		case TPM2_PT_LOCKOUT_INTERVAL:
			if (interval_s != NULL)
				*interval_s = v;
			found |= 4;
			break;
		default:
			break;
		}
	}
	if (found != 7) {
		r = err_set(e, ERR_TOKEN, "the TPM at '%s' did not report its "
		    "dictionary-attack state", tt->tcti_conf);
		goto out;
	}
	r = 0;
 out:
	Esys_Free(cap);
	return r;
}
