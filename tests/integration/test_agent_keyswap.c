/*
 * test_agent_keyswap.c - what malware running as the user, without the
 * token PIN, does to a device's state directory and token, for
 * tests/integration/test-agent-keyswap.sh:
 *
 *   test_agent_keyswap resign MODE SRC_DIR OUT_DIR SIGNER...
 *       Reads SRC_DIR/registry.json (no verification), makes it the
 *       registry of the signer's key pair and writes it, signed with that
 *       key, to OUT_DIR.  MODE:
 *         keep   this device's entry replaced by the new key's record;
 *                the view of the account's log left as it was;
 *         view   also the view's device of this device replaced by the
 *                new key's record (the head stays the directory's);
 *         fresh  a registry of a device never registered: the new key
 *                alone, seq 0.
 *       SIGNER:
 *         tpm TCTI STATE_DIR      the TPM key files in STATE_DIR (keys
 *                                 the malware made with the user's TPM);
 *         soft SIG_PEM ENC_PEM    software keys;
 *         p11 MODULE TOKEN BASE   the key pair BASE-sig/BASE-enc that
 *                                 p11-swap token made, used without login.
 *       Prints the new device id.
 *
 *   test_agent_keyswap p11-swap MODULE TOKEN BASE soft SIG_PEM ENC_PEM
 *   test_agent_keyswap p11-swap MODULE TOKEN BASE token
 *       Without logging in: relabels the public-key objects BASE-sig and
 *       BASE-enc to BASE-sig.orig and BASE-enc.orig and puts objects of
 *       the malware's own under the old labels, with the same CKA_ID:
 *       public-key objects holding fresh software keys (saved as PEM), or
 *       (token) key pairs generated on the token as public objects, which
 *       no PIN protects.
 *
 *   test_agent_keyswap p11-restore MODULE TOKEN BASE
 *       Destroys what a session without login sees labelled BASE-sig and
 *       BASE-enc, and gives the .orig objects their labels back.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "registry.h"
#include "token.h"
#include "tpm-token.h"

static void
die(const char *what, const struct err_ctx *e)
{
	fprintf(stderr, "test_agent_keyswap: %s%s%s\n", what,
	    e != NULL ? ": " : "", e != NULL ? err_msg(e) : "");
	exit(1);
}

/* --- PKCS#11 without login --- */

struct p11 {
	void *dl;
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE s;
};

/* A read-write session on the token labelled label, not logged in. */
static void
p11_open(struct p11 *p, const char *module, const char *label)
{
	CK_C_GetFunctionList gfl;
	CK_SLOT_ID slots[16], slot = 0;
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;
	size_t len = strlen(label);
	int found = 0;

	memset(p, 0, sizeof(*p));
	if ((p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL ||
	    (gfl = (CK_C_GetFunctionList)dlsym(p->dl,
	    "C_GetFunctionList")) == NULL || gfl(&p->f) != CKR_OK ||
	    p->f->C_Initialize(NULL) != CKR_OK ||
	    p->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		die("cannot load the PKCS#11 module", NULL);
	for (i = 0; i < n; i++)
		if (p->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    len <= sizeof(ti.label) &&
		    memcmp(ti.label, label, len) == 0 &&
		    (len == sizeof(ti.label) || ti.label[len] == ' ')) {
			slot = slots[i];
			found = 1;
		}
	if (!found || p->f->C_OpenSession(slot, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &p->s) != CKR_OK)
		die("no such token, or no session on it", NULL);
}

static void
p11_close(struct p11 *p)
{
	p->f->C_CloseSession(p->s);
	p->f->C_Finalize(NULL);
	dlclose(p->dl);
}

/* Objects of class cls (or any, when cls is (CK_ULONG)-1) labelled
 * label; at most max into out, the number found returned. */
static CK_ULONG
p11_find(struct p11 *p, CK_ULONG cls, const char *label,
    CK_OBJECT_HANDLE *out, CK_ULONG max)
{
	CK_ATTRIBUTE tmpl[2];
	CK_ULONG n = 0, count = 0;

	tmpl[n].type = CKA_LABEL;
	tmpl[n].pValue = (void *)label;
	tmpl[n++].ulValueLen = strlen(label);
	if (cls != (CK_ULONG)-1) {
		tmpl[n].type = CKA_CLASS;
		tmpl[n].pValue = &cls;
		tmpl[n++].ulValueLen = sizeof(cls);
	}
	if (p->f->C_FindObjectsInit(p->s, tmpl, n) != CKR_OK ||
	    p->f->C_FindObjects(p->s, out, max, &count) != CKR_OK ||
	    p->f->C_FindObjectsFinal(p->s) != CKR_OK)
		die("C_FindObjects failed", NULL);
	return count;
}

static void
p11_relabel(struct p11 *p, CK_OBJECT_HANDLE h, const char *label)
{
	CK_ATTRIBUTE a = { CKA_LABEL, (void *)label, strlen(label) };

	if (p->f->C_SetAttributeValue(p->s, h, &a, 1) != CKR_OK)
		die("C_SetAttributeValue(CKA_LABEL) failed", NULL);
}

/* The CKA_ID of the public-key object labelled label. */
static size_t
p11_id_of(struct p11 *p, const char *label, uint8_t id[64])
{
	CK_OBJECT_HANDLE h;
	CK_ATTRIBUTE a = { CKA_ID, id, 64 };

	if (p11_find(p, CKO_PUBLIC_KEY, label, &h, 1) != 1 ||
	    p->f->C_GetAttributeValue(p->s, h, &a, 1) != CKR_OK)
		die("no public-key object with that label", NULL);
	return a.ulValueLen;
}

static const uint8_t p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x03, 0x01, 0x07 };

/* A public-key object label/id holding the point of pkey. */
static void
p11_put_public(struct p11 *p, const char *label, const uint8_t *id,
    size_t id_len, EVP_PKEY *pkey, int sig)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	uint8_t point[2 + CRYPTO_P256_POINT_LEN];
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)id, id_len },
		{ CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid) },
		{ CKA_EC_POINT, point, sizeof(point) },
		{ sig ? CKA_VERIFY : CKA_DERIVE, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE h;

	/* DER OCTET STRING around the uncompressed point. */
	point[0] = 0x04;
	point[1] = CRYPTO_P256_POINT_LEN;
	if (crypto_ec_point_get(pkey, point + 2) != 0 ||
	    p->f->C_CreateObject(p->s, tmpl, sizeof(tmpl) / sizeof(tmpl[0]),
	    &h) != CKR_OK)
		die("cannot create a public-key object without login", NULL);
}

/* A key pair label/id generated on the token with both halves public
 * objects: usable by anyone, with no PIN. */
static void
p11_put_pair(struct p11 *p, const char *label, const uint8_t *id,
    size_t id_len, int sig)
{
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)id, id_len },
		{ CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid) },
		{ sig ? CKA_VERIFY : CKA_DERIVE, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)id, id_len },
		{ sig ? CKA_SIGN : CKA_DERIVE, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE hpub, hpriv;

	if (p->f->C_GenerateKeyPair(p->s, &mech, pub,
	    sizeof(pub) / sizeof(pub[0]), priv, sizeof(priv) / sizeof(priv[0]),
	    &hpub, &hpriv) != CKR_OK)
		die("cannot generate a key pair without login", NULL);
}

static int
cmd_p11_swap(int argc, char **argv)
{
	struct p11 p;
	CK_OBJECT_HANDLE h;
	EVP_PKEY *sig = NULL, *enc = NULL;
	char label[96], orig[128];
	uint8_t id[64];
	size_t id_len;
	struct err_ctx e;
	int soft, role;

	err_clear(&e);
	if (argc < 4 || (strcmp(argv[3], "soft") == 0 ? argc != 6 :
	    strcmp(argv[3], "token") != 0 || argc != 4))
		die("usage: p11-swap MODULE TOKEN BASE soft SIG_PEM ENC_PEM | "
		    "token", NULL);
	soft = strcmp(argv[3], "soft") == 0;
	p11_open(&p, argv[0], argv[1]);
	snprintf(label, sizeof(label), "%s-sig", argv[2]);
	id_len = p11_id_of(&p, label, id);
	if (soft && (crypto_ec_generate(&sig) != 0 ||
	    crypto_ec_generate(&enc) != 0 ||
	    crypto_pkey_save_pem(argv[4], sig, &e) != 0 ||
	    crypto_pkey_save_pem(argv[5], enc, &e) != 0))
		die("software keys", &e);
	for (role = 0; role < 2; role++) {
		snprintf(label, sizeof(label), "%s-%s", argv[2],
		    role == 0 ? "sig" : "enc");
		snprintf(orig, sizeof(orig), "%s.orig", label);
		if (p11_find(&p, CKO_PUBLIC_KEY, label, &h, 1) != 1)
			die("no public-key object to relabel", NULL);
		p11_relabel(&p, h, orig);
		if (soft)
			p11_put_public(&p, label, id, id_len,
			    role == 0 ? sig : enc, role == 0);
		else
			p11_put_pair(&p, label, id, id_len, role == 0);
	}
	p11_close(&p);
	EVP_PKEY_free(sig);
	EVP_PKEY_free(enc);
	return 0;
}

static int
cmd_p11_restore(int argc, char **argv)
{
	struct p11 p;
	CK_OBJECT_HANDLE h[8];
	char label[96], orig[128];
	CK_ULONG n, i;
	int role;

	if (argc != 3)
		die("usage: p11-restore MODULE TOKEN BASE", NULL);
	p11_open(&p, argv[0], argv[1]);
	for (role = 0; role < 2; role++) {
		snprintf(label, sizeof(label), "%s-%s", argv[2],
		    role == 0 ? "sig" : "enc");
		snprintf(orig, sizeof(orig), "%s.orig", label);
		n = p11_find(&p, (CK_ULONG)-1, label, h, 8);
		for (i = 0; i < n; i++)
			if (p.f->C_DestroyObject(p.s, h[i]) != CKR_OK)
				die("C_DestroyObject failed", NULL);
		n = p11_find(&p, (CK_ULONG)-1, orig, h, 8);
		for (i = 0; i < n; i++)
			p11_relabel(&p, h[i], label);
	}
	p11_close(&p);
	return 0;
}

/* --- signers --- */

struct signer {
	struct token *tpm;
	EVP_PKEY *soft;
	struct p11 p11;
	CK_OBJECT_HANDLE p11_key;
	uint8_t *sig_pub, *enc_pub;
	size_t sig_len, enc_len;
};

static int
signer_sign(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	struct signer *s = arg;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ULONG len = 64;

	if (s->tpm != NULL)
		return token_sign_digest(s->tpm, digest, sig, e);
	if (s->soft != NULL)
		return devrec_sign_pkey(s->soft, digest, sig, e);
	if (s->p11.f->C_SignInit(s->p11.s, &mech, s->p11_key) != CKR_OK ||
	    s->p11.f->C_Sign(s->p11.s, (CK_BYTE_PTR)digest, 32, sig,
	    &len) != CKR_OK || len != 64)
		return err_set(e, ERR_TOKEN, "signing without login failed");
	return 0;
}

/* The SPKI of the public-key object labelled label (not logged in). */
static void
p11_spki(struct p11 *p, const char *label, uint8_t **der, size_t *len)
{
	CK_OBJECT_HANDLE h;
	uint8_t v[128];
	CK_ATTRIBUTE a = { CKA_EC_POINT, v, sizeof(v) };
	EVP_PKEY *pkey = NULL;

	if (p11_find(p, CKO_PUBLIC_KEY, label, &h, 1) != 1 ||
	    p->f->C_GetAttributeValue(p->s, h, &a, 1) != CKR_OK ||
	    a.ulValueLen != 2 + CRYPTO_P256_POINT_LEN ||
	    crypto_ec_point_to_pkey(v + 2, CRYPTO_P256_POINT_LEN, &pkey) != 0 ||
	    crypto_spki_export(pkey, der, len) != 0)
		die("cannot read the public key of the malware's pair", NULL);
	EVP_PKEY_free(pkey);
}

static void
signer_open(struct signer *s, int argc, char **argv)
{
	EVP_PKEY *enc = NULL;
	CK_OBJECT_HANDLE h;
	char label[96];
	struct err_ctx e;

	memset(s, 0, sizeof(*s));
	err_clear(&e);
	if (argc == 3 && strcmp(argv[0], "tpm") == 0) {
		if (tpm_token_new(argv[1], argv[2], NULL, &s->tpm, &e) != 0 ||
		    token_open_keys(s->tpm, &e) != 0 ||
		    token_public_key(s->tpm, TOKEN_KEY_SIG, &s->sig_pub,
		    &s->sig_len, &e) != 0 ||
		    token_public_key(s->tpm, TOKEN_KEY_ENC, &s->enc_pub,
		    &s->enc_len, &e) != 0)
			die("the malware's TPM keys", &e);
	} else if (argc == 3 && strcmp(argv[0], "soft") == 0) {
		if (crypto_pkey_load_pem(argv[1], &s->soft, &e) != 0 ||
		    crypto_pkey_load_pem(argv[2], &enc, &e) != 0 ||
		    crypto_spki_export(s->soft, &s->sig_pub,
		    &s->sig_len) != 0 ||
		    crypto_spki_export(enc, &s->enc_pub, &s->enc_len) != 0)
			die("the software keys", &e);
		EVP_PKEY_free(enc);
	} else if (argc == 4 && strcmp(argv[0], "p11") == 0) {
		p11_open(&s->p11, argv[1], argv[2]);
		snprintf(label, sizeof(label), "%s-sig", argv[3]);
		/* The malware's private key: the only one a session without
		 * login sees under that label. */
		if (p11_find(&s->p11, CKO_PRIVATE_KEY, label, &h, 1) != 1)
			die("no private key visible without login", NULL);
		s->p11_key = h;
		p11_spki(&s->p11, label, &s->sig_pub, &s->sig_len);
		snprintf(label, sizeof(label), "%s-enc", argv[3]);
		p11_spki(&s->p11, label, &s->enc_pub, &s->enc_len);
	} else {
		die("SIGNER is tpm TCTI DIR | soft SIG_PEM ENC_PEM | p11 "
		    "MODULE TOKEN BASE", NULL);
	}
}

static void
signer_close(struct signer *s)
{
	token_close(s->tpm);
	EVP_PKEY_free(s->soft);
	if (s->p11.f != NULL)
		p11_close(&s->p11);
	free(s->sig_pub);
	free(s->enc_pub);
}

/* --- registries --- */

/* Makes reg the registry of rec per mode (see the top of this file). */
static void
forge(struct registry *reg, const char *mode, const struct devrec *rec)
{
	struct reg_device *old, *d, saved;
	struct acctlog_device *ad;
	char old_id[DEVREC_ID_HEX_LEN + 1];
	struct err_ctx e;
	size_t i;

	err_clear(&e);
	snprintf(old_id, sizeof(old_id), "%s", reg->device);
	if ((old = reg_find(reg, old_id)) == NULL)
		die("the registry has no entry of its own device", NULL);
	saved = *old;
	if (strcmp(mode, "fresh") == 0) {
		char account[DEVREC_ACCOUNT_MAX + 1];
		char dir[DEVREC_ID_HEX_LEN + 1];

		snprintf(account, sizeof(account), "%s", reg->account);
		snprintf(dir, sizeof(dir), "%s", reg->directory);
		reg_clear(reg);
		if (reg_init(reg, account, rec->device, dir, &e) != 0)
			die("reg_init", &e);
		saved.add_seq = 0;
		memset(saved.add_hash, 0, 32);
	} else {
		/* This device's entry goes; the new key takes its place. */
		i = (size_t)(old - reg->devs);
		memmove(reg->devs + i, reg->devs + i + 1,
		    (reg->n_devs - i - 1) * sizeof(*reg->devs));
		reg->n_devs--;
		snprintf(reg->device, sizeof(reg->device), "%s", rec->device);
		if (strcmp(mode, "keep") == 0) {
			saved.add_seq = 0;
			memset(saved.add_hash, 0, 32);
		}
	}
	if (reg_add(reg, rec->device, &d, &e) != 0)
		die("reg_add", &e);
	snprintf(d->label, sizeof(d->label), "%s", saved.label);
	d->state = REG_APPROVED;
	d->first_seen = saved.first_seen;
	d->changed = saved.changed;
	d->add_seq = saved.add_seq;
	memcpy(d->add_hash, saved.add_hash, 32);
	d->rec = *rec;
	d->has_record = 1;
	if (strcmp(mode, "view") != 0)
		return;
	/* The view: the old device's record swapped for the new one's, in
	 * the active devices and in the history. */
	for (i = 0; i < reg->log.n_devices; i++) {
		ad = &reg->log.devices[i];
		if (strcmp(ad->rec.device, old_id) == 0)
			ad->rec = *rec;
	}
	for (i = 0; i < reg->log.n_history; i++)
		if (strcmp(reg->log.history[i].device, old_id) == 0)
			snprintf(reg->log.history[i].device,
			    sizeof(reg->log.history[i].device), "%s",
			    rec->device);
}

static int
cmd_resign(int argc, char **argv)
{
	struct registry reg;
	struct signer s;
	struct devrec rec;
	const struct reg_device *self;
	struct err_ctx e;
	char *path = NULL, *text = NULL;
	size_t len = 0;

	err_clear(&e);
	if (argc < 4 || (strcmp(argv[0], "keep") != 0 &&
	    strcmp(argv[0], "view") != 0 && strcmp(argv[0], "fresh") != 0))
		die("usage: resign keep|view|fresh SRC_DIR OUT_DIR SIGNER...",
		    NULL);
	if ((path = path_join(argv[1], REG_FILE)) == NULL ||
	    fileio_read(path, REG_FILE_MAX, 0, &text, &len, &e) != 0 ||
	    reg_parse(text, len, &reg, &e) != 0)
		die("the registry", &e);
	if ((self = reg_find(&reg, reg.device)) == NULL)
		die("the registry has no entry of its own device", NULL);
	signer_open(&s, argc - 3, argv + 3);
	if (devrec_build(&rec, reg.account, self->label, s.sig_pub, s.sig_len,
	    DEVREC_ENC_HPKE_P256, s.enc_pub, s.enc_len, (uint64_t)time(NULL),
	    signer_sign, &s, &e) != 0)
		die("the malware's device record", &e);
	forge(&reg, argv[0], &rec);
	if (reg_save(&reg, argv[2], signer_sign, &s, &e) != 0)
		die("writing the registry", &e);
	printf("%s\n", rec.device);
	signer_close(&s);
	reg_clear(&reg);
	free(path);
	free(text);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "resign") == 0)
		return cmd_resign(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "p11-swap") == 0)
		return cmd_p11_swap(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "p11-restore") == 0)
		return cmd_p11_restore(argc - 2, argv + 2);
	fprintf(stderr, "usage: test_agent_keyswap resign|p11-swap|"
	    "p11-restore ...\n");
	return 2;
}
