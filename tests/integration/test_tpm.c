/*
 * test_tpm.c - the TPM token against a real (software) TPM.
 *
 * Run by tests/integration/test-tpm.sh, which starts swtpm and sets:
 *   DEVID_TCTI        the TCTI string of the running swtpm
 *   DEVID_TPM_STATE   the directory holding the key files
 *   DEVID_SWTPM_DIR   the swtpm directory (for restart and kill)
 *   DEVID_SWTPM_CI    the directory with swtpm-start/-stop/-restart
 * The first argument chooses the phase: create (fresh keys; sign, ECDH,
 * HPKE, attributes, restart), reload (same keys in a new process), kill
 * (the TPM disappears), pin (PIN, dictionary attack, lockout; needs a
 * fresh swtpm with 3 tries and a long recovery time).
 */
#include "config.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "crypto.h"
#include "errors.h"
#include "fileio.h"
#include "hpke.h"
#include "token.h"
#include "tpm-keyfile.h"
#include "tpm-token.h"

/* Handle ranges; tss2's TPM2_TRANSIENT_FIRST shifts into the sign bit. */
#define HANDLES_TRANSIENT 0x80000000u
#define HANDLES_LOADED_SESSION 0x02000000u
#define HANDLES_SAVED_SESSION 0x03000000u

#define GOOD_PIN "1234"
#define BAD_PIN "9999"

static const char *tcti_conf, *state_dir, *swtpm_dir, *swtpm_ci;

static char *
state_path(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", state_dir, name) > 0);
	return p;
}

/* --- independent views of the TPM, over a connection of our own --- */

struct tpm_view {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
};

static void
view_open(struct tpm_view *v)
{
	assert_int_equal(Tss2_TctiLdr_Initialize(tcti_conf, &v->tcti),
	    TSS2_RC_SUCCESS);
	assert_int_equal(Esys_Initialize(&v->esys, v->tcti, NULL),
	    TSS2_RC_SUCCESS);
}

static void
view_close(struct tpm_view *v)
{
	Esys_Finalize(&v->esys);
	Tss2_TctiLdr_Finalize(&v->tcti);
}

static unsigned int
view_count(struct tpm_view *v, TPM2_HC first)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	unsigned int n;

	assert_int_equal(Esys_GetCapability(v->esys, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, first,
	    TPM2_MAX_CAP_HANDLES, &more, &cap), TSS2_RC_SUCCESS);
	n = cap->data.handles.count;
	Esys_Free(cap);
	return n;
}

/* Asserts what the TPM holds: transient objects and loaded sessions. */
static void
assert_loaded(unsigned int objects, unsigned int sessions)
{
	struct tpm_view v;

	view_open(&v);
	assert_int_equal(view_count(&v, HANDLES_TRANSIENT), objects);
	assert_int_equal(view_count(&v, HANDLES_LOADED_SESSION), sessions);
	/* No session saved away either (context-saved sessions). */
	assert_int_equal(view_count(&v, HANDLES_SAVED_SESSION), 0);
	view_close(&v);
}

static uint32_t
da_counter(void)
{
	struct tpm_view v;
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	uint32_t value;

	view_open(&v);
	assert_int_equal(Esys_GetCapability(v.esys, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_LOCKOUT_COUNTER, 1,
	    &more, &cap), TSS2_RC_SUCCESS);
	assert_int_equal(cap->data.tpmProperties.count, 1);
	assert_int_equal(cap->data.tpmProperties.tpmProperty[0].property,
	    TPM2_PT_LOCKOUT_COUNTER);
	value = cap->data.tpmProperties.tpmProperty[0].value;
	Esys_Free(cap);
	view_close(&v);
	return value;
}

/* --- helpers --- */

static struct token *
new_token(const char *pin)
{
	struct tpm_options opt;
	struct token *t = NULL;
	struct err_ctx e;

	memset(&opt, 0, sizeof(opt));
	opt.pin = pin;
	err_clear(&e);
	assert_int_equal(tpm_token_new(tcti_conf, state_dir, &opt, &t, &e), 0);
	assert_non_null(t);
	return t;
}

static struct token *
open_token(const char *pin)
{
	struct token *t = new_token(pin);
	struct err_ctx e;
	int r;

	err_clear(&e);
	r = token_open_keys(t, &e);
	if (r != 0)
		fail_msg("open_keys: %s", err_msg(&e));
	assert_int_equal(t->enc_alg, TOKEN_ENC_HPKE_P256);
	return t;
}

static EVP_PKEY *
public_key(struct token *t, enum token_key which)
{
	uint8_t *spki = NULL;
	size_t spki_len = 0;
	EVP_PKEY *pkey = NULL;

	assert_int_equal(token_public_key(t, which, &spki, &spki_len, NULL), 0);
	assert_int_equal(crypto_spki_import(spki, spki_len, &pkey, NULL), 0);
	assert_int_equal(crypto_is_p256(pkey), 1);
	free(spki);
	return pkey;
}

/* Signs a fresh digest in the TPM and verifies it with OpenSSL. */
static void
check_sign(struct token *t)
{
	uint8_t digest[32], sig[64];
	EVP_PKEY *pub = public_key(t, TOKEN_KEY_SIG);
	struct err_ctx e;
	int r;

	assert_int_equal(crypto_random(digest, sizeof(digest)), 0);
	err_clear(&e);
	r = token_sign_digest(t, digest, sig, &e);
	if (r != 0)
		fail_msg("sign: %s", err_msg(&e));
	assert_int_equal(crypto_ecdsa_verify(pub, digest, sig), 0);
	digest[0] ^= 1;
	assert_int_equal(crypto_ecdsa_verify(pub, digest, sig), ERR_SIGNATURE);
	EVP_PKEY_free(pub);
}

/* ECDH in the TPM equals OpenSSL's with the exported public key. */
static void
check_ecdh(struct token *t)
{
	EVP_PKEY *peer = NULL, *enc_pub = public_key(t, TOKEN_KEY_ENC);
	uint8_t point[65], z_tpm[32], z_sw[32];
	struct err_ctx e;
	int r;

	assert_int_equal(crypto_ec_generate(&peer), 0);
	assert_int_equal(crypto_ec_point_get(peer, point), 0);
	err_clear(&e);
	r = token_ecdh(t, point, z_tpm, &e);
	if (r != 0)
		fail_msg("ecdh: %s", err_msg(&e));
	assert_int_equal(crypto_ecdh(peer, enc_pub, z_sw), 0);
	assert_memory_equal(z_tpm, z_sw, 32);
	crypto_wipe(z_tpm, sizeof(z_tpm));
	crypto_wipe(z_sw, sizeof(z_sw));
	EVP_PKEY_free(peer);
	EVP_PKEY_free(enc_pub);
}

/* A wrap sealed in software to the TPM key opens through the TPM. */
static void
check_hpke(struct token *t)
{
	static const uint8_t info[] = "devid tpm test";
	static const uint8_t aad[] = "aad";
	static const uint8_t msg[] = "a 32-byte content key, roughly!";
	EVP_PKEY *enc_pub = public_key(t, TOKEN_KEY_ENC);
	uint8_t pk_r[65], enc[HPKE_ENC_LEN];
	uint8_t ct[sizeof(msg) + HPKE_TAG_LEN], pt[sizeof(msg)];
	struct hpke_ctx s, rx;
	struct err_ctx e;
	int r;

	assert_int_equal(crypto_ec_point_get(enc_pub, pk_r), 0);
	assert_int_equal(hpke_setup_base_s(pk_r, info, sizeof(info), NULL, 0,
	    enc, &s, NULL), 0);
	assert_int_equal(hpke_seal(&s, aad, sizeof(aad), msg, sizeof(msg),
	    ct), 0);
	err_clear(&e);
	r = hpke_setup_base_r(enc, pk_r, token_hpke_dh, t, info, sizeof(info),
	    &rx, &e);
	if (r != 0)
		fail_msg("hpke_setup_base_r: %s", err_msg(&e));
	assert_int_equal(hpke_open(&rx, aad, sizeof(aad), ct, sizeof(ct), pt),
	    0);
	assert_memory_equal(pt, msg, sizeof(msg));
	/* And a tampered one does not. */
	hpke_ctx_wipe(&rx);
	assert_int_equal(hpke_setup_base_r(enc, pk_r, token_hpke_dh, t, info,
	    sizeof(info), &rx, NULL), 0);
	ct[0] ^= 1;
	assert_int_equal(hpke_open(&rx, aad, sizeof(aad), ct, sizeof(ct), pt),
	    ERR_DECRYPT);
	hpke_ctx_wipe(&s);
	hpke_ctx_wipe(&rx);
	EVP_PKEY_free(enc_pub);
}

/* Writes or compares the DER SPKI of a key with a file from phase 1. */
static void
spki_file(struct token *t, enum token_key which, const char *name, int save)
{
	uint8_t *spki = NULL;
	char *saved = NULL;
	size_t spki_len = 0, saved_len = 0;
	char *path = state_path(name);

	assert_int_equal(token_public_key(t, which, &spki, &spki_len, NULL), 0);
	if (save) {
		assert_int_equal(fileio_write_atomic(path, spki, spki_len,
		    0600, NULL), 0);
	} else {
		assert_int_equal(fileio_read(path, CRYPTO_SPKI_MAX, 0, &saved,
		    &saved_len, NULL), 0);
		assert_int_equal(saved_len, spki_len);
		assert_memory_equal(saved, spki, spki_len);
	}
	free(saved);
	free(spki);
	free(path);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
run_script(const char *script, const char *args)
{
	char *cmd = NULL;

	assert_true(asprintf(&cmd, "'%s/%s' %s '%s' >/dev/null", swtpm_ci,
	    script, args, swtpm_dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* --- phase create --- */

static void
test_create(void **state)
{
	struct token *t = new_token(NULL), *t2;
	char *sig = state_path(TPM_SIG_FILE_DEFAULT);
	char *enc = state_path(TPM_ENC_FILE_DEFAULT);
	char *parent = state_path(TPM_PARENT_FILE_DEFAULT);
	struct stat st;
	struct err_ctx e;
	int r;

	(void)state;
	assert_loaded(0, 0);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_RSA_OAEP, &e),
	    ERR_UNSUPPORTED);
	assert_non_null(strstr(e.msg, "rsa-oaep"));
	assert_loaded(0, 0);
	err_clear(&e);
	r = token_create_keys(t, TOKEN_ENC_NONE, &e);
	if (r != 0)
		fail_msg("create_keys: %s", err_msg(&e));
	assert_int_equal(t->enc_alg, TOKEN_ENC_HPKE_P256);
	/* Exactly the two keys and one session, the parent flushed. */
	assert_loaded(2, 1);
	{
		unsigned int objects = 0, sessions = 0;

		assert_int_equal(tpm_token_loaded_handles(t, &objects,
		    &sessions, NULL), 0);
		assert_int_equal(objects, 2);
		assert_int_equal(sessions, 1);
	}
	/* Files with mode 0600. */
	assert_int_equal(stat(sig, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(enc, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 69);

	check_sign(t);
	spki_file(t, TOKEN_KEY_SIG, "sig.spki", 1);
	spki_file(t, TOKEN_KEY_ENC, "enc.spki", 1);

	/* A second creation refuses to overwrite. */
	t2 = new_token(NULL);
	err_clear(&e);
	assert_int_equal(token_create_keys(t2, TOKEN_ENC_NONE, &e), ERR_EXISTS);
	token_close(t2);
	assert_int_equal(t->stats.reconnects, 0);
	token_close(t);
	assert_loaded(0, 0);
	free(sig);
	free(enc);
	free(parent);
}

static void
test_sign_ecdh_hpke(void **state)
{
	struct token *t = open_token(NULL);

	(void)state;
	assert_loaded(2, 1);
	check_sign(t);
	check_ecdh(t);
	check_hpke(t);
	assert_int_equal(t->stats.signs, 1);
	assert_int_equal(t->stats.ecdhs, 1 + 2);
	assert_int_equal(t->stats.reconnects, 0);
	assert_loaded(2, 1);
	token_close(t);
	assert_loaded(0, 0);
}

static void
test_bad_peer_point(void **state)
{
	struct token *t = open_token(NULL);
	uint8_t point[65], z[32];
	struct err_ctx e;

	(void)state;
	memset(point, 0, sizeof(point));
	point[0] = 0x04;
	point[64] = 1;                  /* (0, 1) is not on P-256 */
	err_clear(&e);
	assert_int_equal(token_ecdh(t, point, z, &e), ERR_FORMAT);
	point[0] = 0x02;
	assert_int_equal(token_ecdh(t, point, z, NULL), ERR_FORMAT);
	assert_int_equal(t->stats.reconnects, 0);
	assert_int_equal(t->stats.ecdhs, 0);
	/* Still usable, nothing leaked. */
	check_ecdh(t);
	assert_loaded(2, 1);
	token_close(t);
	assert_loaded(0, 0);
}

static int
has_attr(const char *list, const char *name)
{
	char buf[TOKEN_DESC_MAX + 2];
	char want[64];

	snprintf(buf, sizeof(buf), "|%s|", list);
	snprintf(want, sizeof(want), "|%s|", name);
	return strstr(buf, want) != NULL;
}

static void
test_attributes(void **state)
{
	struct token *t = open_token(NULL);
	struct token_desc d;
	struct tpm_keyfile kf;
	const TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM |
	    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	    TPMA_OBJECT_USERWITHAUTH;
	char *path, *parent_file;
	char *pinned = NULL;
	size_t pinned_len = 0;
	int i;

	(void)state;
	/* Read back from the TPM by describe (TPM2_ReadPublic). */
	assert_int_equal(token_describe(t, &d, NULL), 0);
	assert_string_equal(d.backend, "tpm2");
	assert_string_equal(d.token, tcti_conf);
	assert_int_equal(d.enc_alg, TOKEN_ENC_HPKE_P256);
	for (i = 0; i < 2; i++) {
		const char *a = i == 0 ? d.sig_attrs : d.enc_attrs;

		assert_true(has_attr(a, "fixedTPM"));
		assert_true(has_attr(a, "fixedParent"));
		assert_true(has_attr(a, "sensitiveDataOrigin"));
		assert_true(has_attr(a, "userWithAuth"));
		assert_false(has_attr(a, "noDA"));
		assert_false(has_attr(a, "restricted"));
	}
	assert_true(has_attr(d.sig_attrs, "sign"));
	assert_false(has_attr(d.sig_attrs, "decrypt"));
	assert_true(has_attr(d.enc_attrs, "decrypt"));
	assert_false(has_attr(d.enc_attrs, "sign"));
	/* The parent's name is the pinned one: SHA-256 name, 34 bytes. */
	assert_int_equal(strlen(d.parent), 68);
	assert_true(strncmp(d.parent, "000b", 4) == 0);
	parent_file = state_path(TPM_PARENT_FILE_DEFAULT);
	assert_int_equal(fileio_read(parent_file, 128, 0, &pinned, &pinned_len,
	    NULL), 0);
	assert_int_equal(pinned_len, 69);
	assert_memory_equal(pinned, d.parent, 68);
	free(pinned);
	free(parent_file);

	/* And from the files' TPM2B_PUBLIC. */
	for (i = 0; i < 2; i++) {
		path = state_path(i == 0 ? TPM_SIG_FILE_DEFAULT :
		    TPM_ENC_FILE_DEFAULT);
		assert_int_equal(tpm_keyfile_load(path, &kf, NULL), 0);
		assert_int_equal(kf.empty_auth, 1);
		assert_int_equal(kf.parent, TPM2_RH_OWNER);
		assert_int_equal(kf.pub.publicArea.type, TPM2_ALG_ECC);
		assert_int_equal(kf.pub.publicArea.parameters.eccDetail.curveID,
		    TPM2_ECC_NIST_P256);
		assert_int_equal(kf.pub.publicArea.objectAttributes & need,
		    need);
		assert_int_equal(kf.pub.publicArea.objectAttributes &
		    TPMA_OBJECT_NODA, 0);
		free(path);
	}
	token_close(t);
	assert_loaded(0, 0);
}

static void
test_parent_mismatch(void **state)
{
	struct tpm_options opt;
	struct token *t = NULL;
	struct err_ctx e;
	char *other = state_path("other-parent.name");
	static const char wrong[] = "000b"
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

	(void)state;
	assert_int_equal(fileio_write_atomic(other, wrong, strlen(wrong), 0600,
	    NULL), 0);
	memset(&opt, 0, sizeof(opt));
	opt.parent_file = "other-parent.name";
	assert_int_equal(tpm_token_new(tcti_conf, state_dir, &opt, &t, NULL),
	    0);
	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_PARENT_MISMATCH);
	assert_non_null(strstr(e.msg, "parent"));
	/* Nothing stays loaded, and the keys cannot be used. */
	assert_loaded(0, 0);
	assert_int_equal(token_sign_digest(t, (const uint8_t *)wrong,
	    (uint8_t[64]){ 0 }, NULL), ERR_INVALID_ARG);
	token_close(t);
	unlink(other);
	free(other);
	assert_loaded(0, 0);
}

static void
test_tcti_choice(void **state)
{
	struct token *t = NULL;
	struct token_desc d;
	char *saved = strdup(tcti_conf);

	(void)state;
	/* NULL: DEVID_TCTI when set ... */
	assert_int_equal(tpm_token_new(NULL, state_dir, NULL, &t, NULL), 0);
	assert_int_equal(token_describe(t, &d, NULL), 0);
	assert_string_equal(d.token, saved);
	token_close(t);
	/* ... else the kernel resource manager. */
	assert_int_equal(unsetenv("DEVID_TCTI"), 0);
	assert_int_equal(tpm_token_new(NULL, state_dir, NULL, &t, NULL), 0);
	assert_int_equal(token_describe(t, &d, NULL), 0);
	assert_string_equal(d.token, "device:/dev/tpmrm0");
	token_close(t);
	assert_int_equal(setenv("DEVID_TCTI", saved, 1), 0);
	free(saved);
	tcti_conf = getenv("DEVID_TCTI");
}

/* A key file whose public part was edited does not load: no key is
 * believed from a file alone, and nothing stays loaded. */
static void
test_tampered_file(void **state)
{
	struct tpm_options opt;
	struct tpm_keyfile kf;
	struct token *t = NULL;
	struct err_ctx e;
	char *enc = state_path(TPM_ENC_FILE_DEFAULT);
	char *bad = state_path("tampered-enc.pem");

	(void)state;
	assert_int_equal(tpm_keyfile_load(enc, &kf, NULL), 0);
	kf.pub.publicArea.unique.ecc.x.buffer[5] ^= 0x01;
	unlink(bad);
	assert_int_equal(tpm_keyfile_save(bad, &kf, NULL), 0);
	memset(&opt, 0, sizeof(opt));
	opt.enc_file = "tampered-enc.pem";
	assert_int_equal(tpm_token_new(tcti_conf, state_dir, &opt, &t, NULL),
	    0);
	err_clear(&e);
	/* The signing key loads first; the encryption key then fails. */
	assert_int_equal(token_open_keys(t, &e), ERR_PARENT_MISMATCH);
	assert_non_null(strstr(e.msg, "tampered-enc.pem"));
	assert_loaded(0, 0);
	token_close(t);
	unlink(bad);
	free(bad);
	free(enc);
	assert_loaded(0, 0);
}

static void
test_restart(void **state)
{
	struct token *t = open_token(NULL);

	(void)state;
	check_sign(t);
	assert_int_equal(t->stats.reconnects, 0);
	/* Same state, orderly TPM2_Shutdown, then TPM2_Startup(CLEAR):
	 * every loaded handle of the token is gone. */
	run_script("swtpm-restart", "");
	assert_loaded(0, 0);
	check_sign(t);
	assert_int_equal(t->stats.reconnects, 1);
	assert_loaded(2, 1);
	check_ecdh(t);
	assert_int_equal(t->stats.reconnects, 1);
	token_close(t);
	assert_loaded(0, 0);
}

/* --- phase reload: a new process --- */

static void
test_reload(void **state)
{
	struct token *t = open_token(NULL);

	(void)state;
	spki_file(t, TOKEN_KEY_SIG, "sig.spki", 0);
	spki_file(t, TOKEN_KEY_ENC, "enc.spki", 0);
	check_sign(t);
	check_ecdh(t);
	check_hpke(t);
	assert_int_equal(t->stats.reconnects, 0);
	assert_loaded(2, 1);
	token_close(t);
	assert_loaded(0, 0);
}

/* --- phase kill --- */

static void
test_kill(void **state)
{
	struct token *t = open_token(NULL);
	uint8_t digest[32] = { 1 }, sig[64];
	struct err_ctx e;
	double t0, elapsed;

	(void)state;
	check_sign(t);
	run_script("swtpm-stop", "--kill");
	t0 = now_s();
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_TOKEN_NOT_PRESENT);
	elapsed = now_s() - t0;
	print_message("sign without a TPM: %.3f s: %s\n", elapsed, e.msg);
	assert_true(elapsed < 5.0);
	assert_non_null(strstr(e.msg, tcti_conf));
	/* Still clear and prompt the second time; close does not hang. */
	t0 = now_s();
	assert_int_equal(token_ecdh(t, (uint8_t[65]){ 4 }, sig, NULL),
	    ERR_TOKEN_NOT_PRESENT);
	assert_int_equal(t->stats.reconnects, 0);
	token_close(t);
	assert_true(now_s() - t0 < 5.0);
}

/* --- phase pin: a fresh swtpm, MAX_AUTH_FAIL 3, long recovery --- */

struct prompt {
	int calls;
	const char *answer;
};

static int
prompt_pin(void *arg, const char *what, char *pin, size_t pin_max)
{
	struct prompt *p = arg;

	p->calls++;
	assert_non_null(what);
	if (p->answer == NULL)
		return ERR_PIN_REQUIRED;
	snprintf(pin, pin_max, "%s", p->answer);
	return 0;
}

static void
test_pin_create(void **state)
{
	struct token *t = new_token(GOOD_PIN);
	struct tpm_keyfile kf;
	char *path = state_path(TPM_SIG_FILE_DEFAULT);
	struct err_ctx e;
	int r;

	(void)state;
	assert_int_equal(da_counter(), 0);
	err_clear(&e);
	r = token_create_keys(t, TOKEN_ENC_HPKE_P256, &e);
	if (r != 0)
		fail_msg("create_keys: %s", err_msg(&e));
	check_sign(t);
	check_ecdh(t);
	token_close(t);
	/* With a PIN, emptyAuth is absent (FALSE). */
	assert_int_equal(tpm_keyfile_load(path, &kf, NULL), 0);
	assert_int_equal(kf.empty_auth, 0);
	free(path);
	/* The right PIN in a new process-like token. */
	t = open_token(GOOD_PIN);
	check_hpke(t);
	token_close(t);
	assert_int_equal(da_counter(), 0);
	assert_loaded(0, 0);
}

static void
test_pin_long_rejected(void **state)
{
	struct tpm_options opt;
	struct token *t = NULL;

	(void)state;
	memset(&opt, 0, sizeof(opt));
	opt.pin = "123456789012345678901234567890123";   /* 33 bytes */
	assert_int_equal(tpm_token_new(tcti_conf, state_dir, &opt, &t, NULL),
	    ERR_INVALID_ARG);
	assert_null(t);
}

static void
test_pin_missing(void **state)
{
	struct token *t = open_token(NULL);
	uint8_t digest[32] = { 2 }, sig[64];
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_PIN_REQUIRED);
	assert_int_equal(da_counter(), 0);
	token_close(t);
	assert_loaded(0, 0);
}

static void
test_pin_wrong(void **state)
{
	struct token *t = open_token(BAD_PIN);
	uint8_t digest[32] = { 3 }, sig[64], z[32];
	EVP_PKEY *peer = NULL;
	uint8_t point[65];
	struct err_ctx e;
	uint32_t before;

	(void)state;
	before = da_counter();
	assert_int_equal(before, 0);
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_PIN_INCORRECT);
	print_message("wrong PIN: %s\n", e.msg);
	assert_non_null(strstr(e.msg, "1 of 3"));
	/* Exactly one failure counted: no retry. */
	assert_int_equal(da_counter(), before + 1);
	assert_int_equal(t->stats.reconnects, 0);
	/* The rejected PIN is forgotten, never tried again. */
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_PIN_REQUIRED);
	assert_int_equal(crypto_ec_generate(&peer), 0);
	assert_int_equal(crypto_ec_point_get(peer, point), 0);
	assert_int_equal(token_ecdh(t, point, z, NULL), ERR_PIN_REQUIRED);
	EVP_PKEY_free(peer);
	assert_int_equal(da_counter(), before + 1);
	assert_loaded(2, 1);
	token_close(t);
	assert_loaded(0, 0);
}

static void
test_pin_prompt_after_wrong(void **state)
{
	struct tpm_options opt;
	struct prompt p = { 0, GOOD_PIN };
	struct token *t = NULL;
	uint8_t digest[32] = { 4 }, sig[64];

	(void)state;
	memset(&opt, 0, sizeof(opt));
	opt.pin = BAD_PIN;
	opt.pin_cb = prompt_pin;
	opt.pin_cb_arg = &p;
	assert_int_equal(tpm_token_new(tcti_conf, state_dir, &opt, &t, NULL),
	    0);
	assert_int_equal(token_open_keys(t, NULL), 0);
	assert_int_equal(token_sign_digest(t, digest, sig, NULL),
	    ERR_PIN_INCORRECT);
	assert_int_equal(p.calls, 0);
	assert_int_equal(da_counter(), 2);
	/* The next use asks, once, and works with the right PIN. */
	check_sign(t);
	check_ecdh(t);
	assert_int_equal(p.calls, 1);
	assert_int_equal(t->stats.logins, 1);
	/* The session survived the failed authorization. */
	assert_int_equal(t->stats.reconnects, 0);
	assert_int_equal(da_counter(), 2);
	token_close(t);
	assert_loaded(0, 0);
}

static void
test_lockout(void **state)
{
	struct token *t = open_token(BAD_PIN);
	uint8_t digest[32] = { 5 }, sig[64];
	struct err_ctx e;

	(void)state;
	assert_int_equal(da_counter(), 2);
	assert_int_equal(token_sign_digest(t, digest, sig, NULL),
	    ERR_PIN_INCORRECT);
	assert_int_equal(da_counter(), 3);
	token_close(t);

	/* Now even the right PIN is refused, with the lockout explained. */
	t = open_token(GOOD_PIN);
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_PIN_LOCKED);
	print_message("locked: %s\n", e.msg);
	assert_non_null(strstr(e.msg, "lockout"));
	assert_non_null(strstr(e.msg, "1000 s"));
	assert_int_equal(da_counter(), 3);
	assert_int_equal(t->stats.reconnects, 0);
	token_close(t);
	assert_loaded(0, 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest create_tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_sign_ecdh_hpke),
		cmocka_unit_test(test_bad_peer_point),
		cmocka_unit_test(test_attributes),
		cmocka_unit_test(test_parent_mismatch),
		cmocka_unit_test(test_tcti_choice),
		cmocka_unit_test(test_tampered_file),
		cmocka_unit_test(test_restart),
	};
	const struct CMUnitTest reload_tests[] = {
		cmocka_unit_test(test_reload),
	};
	const struct CMUnitTest kill_tests[] = {
		cmocka_unit_test(test_kill),
	};
	const struct CMUnitTest pin_tests[] = {
		cmocka_unit_test(test_pin_create),
		cmocka_unit_test(test_pin_long_rejected),
		cmocka_unit_test(test_pin_missing),
		cmocka_unit_test(test_pin_wrong),
		cmocka_unit_test(test_pin_prompt_after_wrong),
		cmocka_unit_test(test_lockout),
	};

	tcti_conf = getenv("DEVID_TCTI");
	state_dir = getenv("DEVID_TPM_STATE");
	swtpm_dir = getenv("DEVID_SWTPM_DIR");
	swtpm_ci = getenv("DEVID_SWTPM_CI");
	if (argc != 2 || tcti_conf == NULL || state_dir == NULL ||
	    swtpm_dir == NULL || swtpm_ci == NULL) {
		fprintf(stderr, "usage: DEVID_TCTI=... DEVID_TPM_STATE=... "
		    "DEVID_SWTPM_DIR=... DEVID_SWTPM_CI=... test_tpm "
		    "create|reload|kill|pin\n");
		return 2;
	}
	if (strcmp(argv[1], "create") == 0)
		return cmocka_run_group_tests_name("tpm create", create_tests,
		    NULL, NULL);
	if (strcmp(argv[1], "reload") == 0)
		return cmocka_run_group_tests_name("tpm reload", reload_tests,
		    NULL, NULL);
	if (strcmp(argv[1], "kill") == 0)
		return cmocka_run_group_tests_name("tpm kill", kill_tests,
		    NULL, NULL);
	if (strcmp(argv[1], "pin") == 0)
		return cmocka_run_group_tests_name("tpm pin", pin_tests,
		    NULL, NULL);
	fprintf(stderr, "test_tpm: unknown phase '%s'\n", argv[1]);
	return 2;
}
