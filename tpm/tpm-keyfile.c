/*
 * tpm-keyfile.c - "TSS2 PRIVATE KEY" PEM/DER encoding and strict parsing
 * (tpm-keyfile.h), and loading and saving key files.
 */
#include "config.h"


#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <tss2/tss2_mu.h>

#include "fileio.h"
#include "tpm-keyfile.h"

/* The ASN.1 form; only this file sees it. */
typedef struct {
	ASN1_OBJECT *type;
	ASN1_BOOLEAN empty_auth;            /* -1: absent */
	STACK_OF(ASN1_TYPE) *policy;
	ASN1_OCTET_STRING *secret;
	ASN1_INTEGER *parent;
	ASN1_OCTET_STRING *pubkey;
	ASN1_OCTET_STRING *privkey;
} TPM_KEYFILE_ASN1;

ASN1_SEQUENCE(TPM_KEYFILE_ASN1) = {
	ASN1_SIMPLE(TPM_KEYFILE_ASN1, type, ASN1_OBJECT),
	ASN1_EXP_OPT(TPM_KEYFILE_ASN1, empty_auth, ASN1_BOOLEAN, 0),
	ASN1_EXP_SEQUENCE_OF_OPT(TPM_KEYFILE_ASN1, policy, ASN1_ANY, 1),
	ASN1_EXP_OPT(TPM_KEYFILE_ASN1, secret, ASN1_OCTET_STRING, 2),
	ASN1_SIMPLE(TPM_KEYFILE_ASN1, parent, ASN1_INTEGER),
	ASN1_SIMPLE(TPM_KEYFILE_ASN1, pubkey, ASN1_OCTET_STRING),
	ASN1_SIMPLE(TPM_KEYFILE_ASN1, privkey, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(TPM_KEYFILE_ASN1)

static void
keyfile_asn1_free(TPM_KEYFILE_ASN1 *a)
{
	if (a != NULL)
		ASN1_item_free((ASN1_VALUE *)a, ASN1_ITEM_rptr(TPM_KEYFILE_ASN1));
}

int
tpm_keyfile_encode_der(const struct tpm_keyfile *kf, uint8_t **der,
    size_t *der_len, struct err_ctx *e)
{
	TPM_KEYFILE_ASN1 *a = NULL;
	uint8_t pub[sizeof(TPM2B_PUBLIC)], priv[sizeof(TPM2B_PRIVATE)];
	size_t pub_len = 0, priv_len = 0;
	unsigned char *out = NULL;
	int n, r = ERR_INTERNAL;

	return_val_if_fail(kf != NULL && der != NULL && der_len != NULL,
	    ERR_INVALID_ARG);
	if (kf->parent != TPM2_RH_OWNER)
		return err_set(e, ERR_INVALID_ARG,
		    "TPM key file: parent 0x%08x is not the owner primary",
		    (unsigned int)kf->parent);
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&kf->pub, pub, sizeof(pub),
	    &pub_len) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(&kf->priv, priv, sizeof(priv),
	    &priv_len) != TSS2_RC_SUCCESS) {
		r = err_set(e, ERR_INVALID_ARG,
		    "TPM key file: the key's TPM structures do not marshal");
		goto out;
	}
	a = (TPM_KEYFILE_ASN1 *)ASN1_item_new(ASN1_ITEM_rptr(TPM_KEYFILE_ASN1));
	if (a == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	a->type = OBJ_txt2obj(TPM_KEYFILE_OID_LOADABLE, 1);
	a->empty_auth = kf->empty_auth ? 0xff : -1;
	if (a->type == NULL ||
	    !ASN1_INTEGER_set_uint64(a->parent, kf->parent) ||
	    !ASN1_OCTET_STRING_set(a->pubkey, pub, (int)pub_len) ||
	    !ASN1_OCTET_STRING_set(a->privkey, priv, (int)priv_len)) {
		r = ERR_ALLOC;
		goto out;
	}
	n = ASN1_item_i2d((ASN1_VALUE *)a, &out,
	    ASN1_ITEM_rptr(TPM_KEYFILE_ASN1));
	if (n <= 0) {
		r = err_set(e, ERR_INTERNAL, "TPM key file: DER encoding failed");
		goto out;
	}
	*der = out;
	*der_len = (size_t)n;
	out = NULL;     /* transferred */
	r = 0;
 out:
	OPENSSL_free(out);
	keyfile_asn1_free(a);
	return r;
}

/* Copies an OCTET STRING holding one marshalled TPM2B_PUBLIC into pub. */
static int
keyfile_get_public(const ASN1_OCTET_STRING *os, TPM2B_PUBLIC *pub,
    struct err_ctx *e)
{
	const uint8_t *p = ASN1_STRING_get0_data(os);
	size_t len = (size_t)ASN1_STRING_length(os), off = 0;
	uint8_t again[sizeof(TPM2B_PUBLIC)];
	size_t again_len = 0;

	if (len > sizeof(TPM2B_PUBLIC) ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(p, len, &off, pub) !=
	    TSS2_RC_SUCCESS || off != len)
		return err_set(e, ERR_FORMAT,
		    "TPM key file: pubkey is not one TPM2B_PUBLIC");
	/* The size field must agree with what it holds: re-marshal. */
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, again, sizeof(again),
	    &again_len) != TSS2_RC_SUCCESS || again_len != len ||
	    memcmp(again, p, len) != 0)
		return err_set(e, ERR_FORMAT,
		    "TPM key file: pubkey is not a canonical TPM2B_PUBLIC");
	return 0;
}

static int
keyfile_get_private(const ASN1_OCTET_STRING *os, TPM2B_PRIVATE *priv,
    struct err_ctx *e)
{
	const uint8_t *p = ASN1_STRING_get0_data(os);
	size_t len = (size_t)ASN1_STRING_length(os), off = 0;

	if (len > sizeof(TPM2B_PRIVATE) ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(p, len, &off, priv) !=
	    TSS2_RC_SUCCESS || off != len || priv->size == 0)
		return err_set(e, ERR_FORMAT,
		    "TPM key file: privkey is not one TPM2B_PRIVATE");
	return 0;
}

int
tpm_keyfile_decode_der(const uint8_t *der, size_t der_len,
    struct tpm_keyfile *kf, struct err_ctx *e)
{
	TPM_KEYFILE_ASN1 *a = NULL;
	ASN1_OBJECT *oid = NULL;
	const unsigned char *p = der;
	unsigned char *again = NULL;
	uint64_t parent = 0;
	int n, r = ERR_INTERNAL;

	return_val_if_fail(kf != NULL && (der != NULL || der_len == 0),
	    ERR_INVALID_ARG);
	memset(kf, 0, sizeof(*kf));
	if (der_len > TPM_KEYFILE_MAX)
		return err_set(e, ERR_TOO_LARGE,
		    "TPM key file: %zu bytes of DER, more than %d", der_len,
		    TPM_KEYFILE_MAX);
	if (der_len == 0)
		return err_set(e, ERR_FORMAT, "TPM key file: empty");

	a = (TPM_KEYFILE_ASN1 *)ASN1_item_d2i(NULL, &p, (long)der_len,
	    ASN1_ITEM_rptr(TPM_KEYFILE_ASN1));
	if (a == NULL || p != der + der_len) {
		r = err_set(e, ERR_FORMAT,
		    "TPM key file: not a TSS2 PRIVATE KEY structure");
		goto out;
	}
	/* Canonical DER only: what we parsed must encode to the same bytes. */
	n = ASN1_item_i2d((ASN1_VALUE *)a, &again,
	    ASN1_ITEM_rptr(TPM_KEYFILE_ASN1));
	if (n <= 0 || (size_t)n != der_len || memcmp(again, der, der_len) != 0) {
		r = err_set(e, ERR_FORMAT, "TPM key file: not canonical DER");
		goto out;
	}
	if ((oid = OBJ_txt2obj(TPM_KEYFILE_OID_LOADABLE, 1)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (OBJ_cmp(a->type, oid) != 0) {
		r = err_set(e, ERR_UNSUPPORTED,
		    "TPM key file: type is not a loadable key (OID %s)",
		    TPM_KEYFILE_OID_LOADABLE);
		goto out;
	}
	/*
	 * DER wants TRUE as 0xff; OpenSSL keeps whatever byte it read.  An
	 * explicit FALSE is refused too: the standard writers (and devid)
	 * omit emptyAuth unless it is TRUE, so each key has one encoding.
	 */
	if (a->empty_auth != -1 && a->empty_auth != 0xff) {
		r = err_set(e, ERR_FORMAT, "TPM key file: emptyAuth must be "
		    "absent or DER TRUE");
		goto out;
	}
	if (a->policy != NULL || a->secret != NULL) {
		r = err_set(e, ERR_UNSUPPORTED, "TPM key file: keys with a "
		    "policy or an imported secret are not supported");
		goto out;
	}
	if (!ASN1_INTEGER_get_uint64(&parent, a->parent) ||
	    parent != TPM2_RH_OWNER) {
		r = err_set(e, ERR_UNSUPPORTED, "TPM key file: only keys under "
		    "the owner storage primary (parent 0x40000001) are "
		    "supported");
		goto out;
	}
	if ((r = keyfile_get_public(a->pubkey, &kf->pub, e)) != 0 ||
	    (r = keyfile_get_private(a->privkey, &kf->priv, e)) != 0)
		goto out;
	kf->parent = (uint32_t)parent;
	kf->empty_auth = a->empty_auth > 0;
	r = 0;
 out:
	if (r != 0)
		OPENSSL_cleanse(kf, sizeof(*kf));
	OPENSSL_free(again);
	ASN1_OBJECT_free(oid);
	keyfile_asn1_free(a);
	return r;
}

int
tpm_keyfile_encode_pem(const struct tpm_keyfile *kf, char **pem,
    size_t *pem_len, struct err_ctx *e)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	BIO *bio = NULL;
	char *data, *s = NULL;
	long n;
	int r = ERR_INTERNAL;

	return_val_if_fail(pem != NULL && pem_len != NULL, ERR_INVALID_ARG);
	if ((r = tpm_keyfile_encode_der(kf, &der, &der_len, e)) != 0)
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (PEM_write_bio(bio, TPM_KEYFILE_PEM_LABEL, "", der,
	    (long)der_len) <= 0 || (n = BIO_get_mem_data(bio, &data)) <= 0) {
		r = err_set(e, ERR_INTERNAL, "TPM key file: PEM encoding failed");
		goto out;
	}
	if ((s = malloc((size_t)n + 1)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*pem = s;
	*pem_len = (size_t)n;
	s = NULL;       /* transferred */
	r = 0;
 out:
	free(s);
	BIO_free(bio);
	OPENSSL_free(der);
	return r;
}

int
tpm_keyfile_decode_pem(const char *pem, size_t pem_len,
    struct tpm_keyfile *kf, struct err_ctx *e)
{
	static const char begin[] = "-----BEGIN " TPM_KEYFILE_PEM_LABEL "-----";
	BIO *bio = NULL;
	char *name = NULL, *header = NULL, *rest = NULL;
	unsigned char *der = NULL;
	long der_len = 0, rest_len, i;
	int r = ERR_INTERNAL;

	return_val_if_fail(pem != NULL && kf != NULL, ERR_INVALID_ARG);
	memset(kf, 0, sizeof(*kf));
	if (pem_len > TPM_KEYFILE_MAX)
		return err_set(e, ERR_TOO_LARGE,
		    "TPM key file: %zu bytes, more than %d", pem_len,
		    TPM_KEYFILE_MAX);
	if (pem_len < sizeof(begin) - 1 ||
	    memcmp(pem, begin, sizeof(begin) - 1) != 0)
		return err_set(e, ERR_FORMAT,
		    "TPM key file: does not begin with '%s'", begin);
	if ((bio = BIO_new_mem_buf(pem, (int)pem_len)) == NULL)
		return ERR_ALLOC;
	if (!PEM_read_bio(bio, &name, &header, &der, &der_len) ||
	    strcmp(name, TPM_KEYFILE_PEM_LABEL) != 0 || header[0] != '\0') {
		r = err_set(e, ERR_FORMAT, "TPM key file: bad PEM block");
		goto out;
	}
	rest_len = BIO_get_mem_data(bio, &rest);
	for (i = 0; i < rest_len; i++) {
		if (strchr(" \t\r\n", rest[i]) == NULL || rest[i] == '\0') {
			r = err_set(e, ERR_FORMAT,
			    "TPM key file: data after the PEM block");
			goto out;
		}
	}
	r = tpm_keyfile_decode_der(der, (size_t)der_len, kf, e);
 out:
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)der_len);
	OPENSSL_free(name);
	OPENSSL_free(header);
	BIO_free(bio);
	return r;
}

int
tpm_keyfile_save(const char *path, const struct tpm_keyfile *kf,
    struct err_ctx *e)
{
	char *pem = NULL;
	size_t pem_len = 0;
	int r;

	if ((r = tpm_keyfile_encode_pem(kf, &pem, &pem_len, e)) != 0)
		return r;
	r = fileio_write_new(path, pem, pem_len, 0600, e);
	OPENSSL_cleanse(pem, pem_len);
	free(pem);
	return r;
}

int
tpm_keyfile_load(const char *path, struct tpm_keyfile *kf, struct err_ctx *e)
{
	char *pem = NULL;
	size_t pem_len = 0;
	int r;

	return_val_if_fail(kf != NULL, ERR_INVALID_ARG);
	memset(kf, 0, sizeof(*kf));
	if ((r = fileio_read(path, TPM_KEYFILE_MAX, FILEIO_SECRET, &pem,
	    &pem_len, e)) != 0)
		return r;
	r = tpm_keyfile_decode_pem(pem, pem_len, kf, e);
	if (r != 0)
		err_wrap(e, r, "%s: %s", path, err_msg(e));
	OPENSSL_cleanse(pem, pem_len);
	free(pem);
	return r;
}
