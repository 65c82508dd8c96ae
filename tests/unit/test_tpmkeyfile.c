/*
 * test_tpmkeyfile.c - "TSS2 PRIVATE KEY" encoding and strict parsing
 * (tpm/tpm-keyfile.c).  No TPM needed: the key structures are synthetic.
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
#include <unistd.h>

#include <cmocka.h>

#include <tss2/tss2_mu.h>

#include "fileio.h"
#include "tpm-keyfile.h"

/* 2.23.133.10.1.3 and 2.23.133.10.1.4 (importable), DER contents. */
static const uint8_t oid_loadable[] = { 0x67, 0x81, 0x05, 0x0a, 0x01, 0x03 };
static const uint8_t oid_importable[] = { 0x67, 0x81, 0x05, 0x0a, 0x01, 0x04 };

static void
make_key(struct tpm_keyfile *kf, int empty_auth)
{
	TPMT_PUBLIC *p = &kf->pub.publicArea;
	size_t i;

	memset(kf, 0, sizeof(*kf));
	kf->empty_auth = empty_auth;
	kf->parent = TPM2_RH_OWNER;
	p->type = TPM2_ALG_ECC;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
	    TPMA_OBJECT_SIGN_ENCRYPT;
	p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	p->unique.ecc.x.size = 32;
	p->unique.ecc.y.size = 32;
	for (i = 0; i < 32; i++) {
		p->unique.ecc.x.buffer[i] = (uint8_t)(i + 1);
		p->unique.ecc.y.buffer[i] = (uint8_t)(0xa0 + i);
	}
	kf->priv.size = 126;
	for (i = 0; i < kf->priv.size; i++)
		kf->priv.buffer[i] = (uint8_t)(i * 7);
}

/* --- a tiny DER writer for hand-made variants --- */

struct der {
	uint8_t b[4096];
	size_t len;
};

static void
der_raw(struct der *d, const void *p, size_t len)
{
	assert_true(d->len + len <= sizeof(d->b));
	memcpy(d->b + d->len, p, len);
	d->len += len;
}

/* tag, definite length (long_form forces 0x81 even for short ones), body */
static void
der_tlv(struct der *d, uint8_t tag, const void *body, size_t len,
    int long_form)
{
	uint8_t h[4];
	size_t n = 0;

	h[n++] = tag;
	if (len < 0x80 && !long_form) {
		h[n++] = (uint8_t)len;
	} else if (len < 0x100) {
		h[n++] = 0x81;
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = 0x82;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	}
	der_raw(d, h, n);
	der_raw(d, body, len);
}

struct variant {
	const uint8_t *oid;
	size_t oid_len;
	int empty_auth_byte;            /* -1: absent */
	int with_policy;
	int with_secret;
	uint32_t parent;
	int pub_trailing;               /* extra byte inside pubkey */
	int pub_size_delta;             /* corrupt the TPM2B size field */
	int long_form_oid;              /* non-minimal length */
};

static void
build(const struct variant *v, const struct tpm_keyfile *kf, struct der *out)
{
	struct der body = { .len = 0 };
	uint8_t pub[sizeof(TPM2B_PUBLIC) + 1], priv[sizeof(TPM2B_PRIVATE)];
	size_t pub_len = 0, priv_len = 0;
	uint8_t parent[5];
	size_t parent_len;

	assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&kf->pub, pub,
	    sizeof(pub), &pub_len), TSS2_RC_SUCCESS);
	assert_int_equal(Tss2_MU_TPM2B_PRIVATE_Marshal(&kf->priv, priv,
	    sizeof(priv), &priv_len), TSS2_RC_SUCCESS);
	if (v->pub_trailing)
		pub[pub_len++] = 0x00;
	if (v->pub_size_delta) {
		uint16_t sz = (uint16_t)(((pub[0] << 8) | pub[1]) +
		    v->pub_size_delta);
		pub[0] = (uint8_t)(sz >> 8);
		pub[1] = (uint8_t)sz;
	}

	der_tlv(&body, 0x06, v->oid, v->oid_len, v->long_form_oid);
	if (v->empty_auth_byte >= 0) {
		uint8_t b[3] = { 0x01, 0x01, (uint8_t)v->empty_auth_byte };

		der_tlv(&body, 0xa0, b, sizeof(b), 0);
	}
	if (v->with_policy) {
		/* [1] { SEQUENCE { SEQUENCE { [0] INTEGER cc, [1] OCTETS } } } */
		static const uint8_t pol[] = {
			0x30, 0x0d, 0x30, 0x0b, 0xa0, 0x04, 0x02, 0x02, 0x01,
			0x6b, 0xa1, 0x03, 0x04, 0x01, 0x00,
		};
		der_tlv(&body, 0xa1, pol, sizeof(pol), 0);
	}
	if (v->with_secret) {
		static const uint8_t sec[] = { 0x04, 0x02, 0x12, 0x34 };

		der_tlv(&body, 0xa2, sec, sizeof(sec), 0);
	}
	/* INTEGER, minimal two's complement */
	if (v->parent & 0x80000000u) {
		parent[0] = 0x00;
		parent[1] = (uint8_t)(v->parent >> 24);
		parent[2] = (uint8_t)(v->parent >> 16);
		parent[3] = (uint8_t)(v->parent >> 8);
		parent[4] = (uint8_t)v->parent;
		parent_len = 5;
	} else {
		parent[0] = (uint8_t)(v->parent >> 24);
		parent[1] = (uint8_t)(v->parent >> 16);
		parent[2] = (uint8_t)(v->parent >> 8);
		parent[3] = (uint8_t)v->parent;
		parent_len = 4;
	}
	der_tlv(&body, 0x02, parent, parent_len, 0);
	der_tlv(&body, 0x04, pub, pub_len, 0);
	der_tlv(&body, 0x04, priv, priv_len, 0);
	out->len = 0;
	der_tlv(out, 0x30, body.b, body.len, 0);
}

static const struct variant good_variant = {
	.oid = oid_loadable, .oid_len = sizeof(oid_loadable),
	.empty_auth_byte = 0xff, .parent = TPM2_RH_OWNER,
};

static void
assert_zeroed(const struct tpm_keyfile *kf)
{
	static const struct tpm_keyfile zero;

	assert_memory_equal(kf, &zero, sizeof(zero));
}

static void
assert_same_key(const struct tpm_keyfile *a, const struct tpm_keyfile *b)
{
	assert_int_equal(a->empty_auth, b->empty_auth);
	assert_int_equal(a->parent, b->parent);
	assert_memory_equal(&a->pub.publicArea, &b->pub.publicArea,
	    sizeof(a->pub.publicArea));
	assert_int_equal(a->priv.size, b->priv.size);
	assert_memory_equal(a->priv.buffer, b->priv.buffer, a->priv.size);
}

/* --- tests --- */

static void
test_der_round_trip(void **state)
{
	struct tpm_keyfile kf, back;
	struct der hand;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int empty;

	(void)state;
	for (empty = 0; empty <= 1; empty++) {
		make_key(&kf, empty);
		assert_int_equal(tpm_keyfile_encode_der(&kf, &der, &der_len,
		    NULL), 0);
		assert_int_equal(tpm_keyfile_decode_der(der, der_len, &back,
		    NULL), 0);
		assert_same_key(&kf, &back);

		/* The encoding is exactly the standard layout. */
		{
			struct variant v = good_variant;

			v.empty_auth_byte = empty ? 0xff : -1;
			build(&v, &kf, &hand);
			assert_int_equal(hand.len, der_len);
			assert_memory_equal(hand.b, der, der_len);
		}
		free(der);
		der = NULL;
	}
}

static void
test_pem_round_trip(void **state)
{
	struct tpm_keyfile kf, back;
	char *pem = NULL;
	size_t pem_len = 0;

	(void)state;
	make_key(&kf, 0);
	assert_int_equal(tpm_keyfile_encode_pem(&kf, &pem, &pem_len, NULL), 0);
	assert_int_equal(strlen(pem), pem_len);
	assert_true(strncmp(pem, "-----BEGIN TSS2 PRIVATE KEY-----\n", 33)
	    == 0);
	assert_non_null(strstr(pem, "-----END TSS2 PRIVATE KEY-----\n"));
	assert_int_equal(tpm_keyfile_decode_pem(pem, pem_len, &back, NULL), 0);
	assert_same_key(&kf, &back);
	free(pem);
}

static void
expect_der(const struct variant *v, int want)
{
	struct tpm_keyfile kf, back;
	struct der d;
	struct err_ctx e;

	make_key(&kf, 1);
	build(v, &kf, &d);
	err_clear(&e);
	memset(&back, 0xa5, sizeof(back));
	assert_int_equal(tpm_keyfile_decode_der(d.b, d.len, &back, &e), want);
	if (want != 0) {
		assert_int_equal(e.code, want);
		assert_true(strlen(e.msg) > 0);
		assert_zeroed(&back);
	}
}

static void
test_der_variants(void **state)
{
	struct variant v;

	(void)state;
	v = good_variant;
	expect_der(&v, 0);
	v.empty_auth_byte = -1;                 /* absent: needs auth */
	expect_der(&v, 0);
	/* Explicit FALSE: valid DER, but a second encoding of "absent",
	 * which would not survive a save (found by fuzz_tpmkeyfile). */
	v.empty_auth_byte = 0x00;
	expect_der(&v, ERR_FORMAT);
	v.empty_auth_byte = 0x01;               /* BER TRUE, not DER */
	expect_der(&v, ERR_FORMAT);

	v = good_variant;
	v.oid = oid_importable;
	expect_der(&v, ERR_UNSUPPORTED);
	v = good_variant;
	v.with_policy = 1;
	expect_der(&v, ERR_UNSUPPORTED);
	v = good_variant;
	v.with_secret = 1;
	expect_der(&v, ERR_UNSUPPORTED);
	v = good_variant;
	v.parent = 0x81000001;                  /* a persistent parent */
	expect_der(&v, ERR_UNSUPPORTED);
	v = good_variant;
	v.pub_trailing = 1;
	expect_der(&v, ERR_FORMAT);
	v = good_variant;
	v.pub_size_delta = 1;
	expect_der(&v, ERR_FORMAT);
	v = good_variant;
	v.pub_size_delta = -1;
	expect_der(&v, ERR_FORMAT);
	v = good_variant;
	v.long_form_oid = 1;                    /* non-minimal length */
	expect_der(&v, ERR_FORMAT);
}

static void
test_der_truncated_and_trailing(void **state)
{
	struct tpm_keyfile kf, back;
	struct der d;
	uint8_t buf[sizeof(d.b) + 1];
	size_t n;
	int r;

	(void)state;
	make_key(&kf, 1);
	build(&good_variant, &kf, &d);
	for (n = 0; n < d.len; n++) {
		r = tpm_keyfile_decode_der(d.b, n, &back, NULL);
		assert_true(r == ERR_FORMAT || r == ERR_UNSUPPORTED);
		assert_zeroed(&back);
	}
	memcpy(buf, d.b, d.len);
	buf[d.len] = 0x00;
	assert_int_equal(tpm_keyfile_decode_der(buf, d.len + 1, &back, NULL),
	    ERR_FORMAT);
	/* A flipped bit anywhere: rejected or still a well-formed key. */
	for (n = 0; n < d.len; n++) {
		memcpy(buf, d.b, d.len);
		buf[n] ^= 0x40;
		r = tpm_keyfile_decode_der(buf, d.len, &back, NULL);
		assert_true(r == 0 || r == ERR_FORMAT || r == ERR_UNSUPPORTED);
	}
	assert_int_equal(tpm_keyfile_decode_der(d.b, TPM_KEYFILE_MAX + 1,
	    &back, NULL), ERR_TOO_LARGE);
}

static void
test_pem_negatives(void **state)
{
	struct tpm_keyfile kf, back;
	char *pem = NULL, *bad;
	size_t pem_len = 0, n;
	struct err_ctx e;

	(void)state;
	make_key(&kf, 1);
	assert_int_equal(tpm_keyfile_encode_pem(&kf, &pem, &pem_len, NULL), 0);
	bad = malloc(pem_len + 64);
	assert_non_null(bad);

	/* Trailing whitespace is fine, anything else is not. */
	n = (size_t)snprintf(bad, pem_len + 64, "%s \n\n", pem);
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL), 0);
	n = (size_t)snprintf(bad, pem_len + 64, "%sjunk\n", pem);
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL),
	    ERR_FORMAT);
	n = (size_t)snprintf(bad, pem_len + 64, "%s%s", pem, pem);
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL),
	    ERR_FORMAT);
	/* Leading text. */
	n = (size_t)snprintf(bad, pem_len + 64, "key:\n%s", pem);
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL),
	    ERR_FORMAT);
	/* Another label. */
	n = (size_t)snprintf(bad, pem_len + 64, "%s", pem);
	memcpy(bad + 11, "TSS2 PRIVATE KEX", 16);
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL),
	    ERR_FORMAT);
	/* A PEM header line. */
	n = (size_t)snprintf(bad, pem_len + 64,
	    "-----BEGIN TSS2 PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n%s",
	    pem + 33);
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL),
	    ERR_FORMAT);
	/* Broken base64. */
	n = (size_t)snprintf(bad, pem_len + 64, "%s", pem);
	bad[40] = '*';
	assert_int_equal(tpm_keyfile_decode_pem(bad, n, &back, NULL),
	    ERR_FORMAT);
	/* Truncated. */
	assert_int_equal(tpm_keyfile_decode_pem(pem, pem_len - 10, &back,
	    NULL), ERR_FORMAT);
	/* Too large, checked before parsing. */
	err_clear(&e);
	assert_int_equal(tpm_keyfile_decode_pem(pem, TPM_KEYFILE_MAX + 1,
	    &back, &e), ERR_TOO_LARGE);
	assert_int_equal(e.code, ERR_TOO_LARGE);
	free(bad);
	free(pem);
}

static void
test_encode_rejects_other_parent(void **state)
{
	struct tpm_keyfile kf;
	uint8_t *der = NULL;
	size_t der_len = 0;

	(void)state;
	make_key(&kf, 1);
	kf.parent = 0x81000001;
	assert_int_equal(tpm_keyfile_encode_der(&kf, &der, &der_len, NULL),
	    ERR_INVALID_ARG);
	assert_null(der);
}

struct file_dir {
	char dir[256];
	char path[300], link_path[300], big_path[300];
};

/* A private temporary directory, removed again even when a test fails. */
static int
files_setup(void **state)
{
	const char *tmpdir = getenv("TMPDIR");
	struct file_dir *fd = calloc(1, sizeof(*fd));

	if (fd == NULL)
		return -1;
	if (tmpdir == NULL || tmpdir[0] == '\0')
		tmpdir = P_tmpdir;
	snprintf(fd->dir, sizeof(fd->dir), "%s/devid-keyfile-XXXXXX", tmpdir);
	if (mkdtemp(fd->dir) == NULL) {
		free(fd);
		return -1;
	}
	snprintf(fd->path, sizeof(fd->path), "%s/key.pem", fd->dir);
	snprintf(fd->link_path, sizeof(fd->link_path), "%s/link.pem", fd->dir);
	snprintf(fd->big_path, sizeof(fd->big_path), "%s/big.pem", fd->dir);
	*state = fd;
	return 0;
}

static int
files_teardown(void **state)
{
	struct file_dir *fd = *state;
	char tmp[320];

	unlink(fd->link_path);
	unlink(fd->path);
	unlink(fd->big_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", fd->big_path);
	unlink(tmp);
	rmdir(fd->dir);
	free(fd);
	return 0;
}

static void
test_files(void **state)
{
	struct file_dir *fd = *state;
	struct tpm_keyfile kf, back;
	struct stat st;
	struct err_ctx e;
	FILE *f;
	size_t i;

	make_key(&kf, 0);
	err_clear(&e);
	assert_int_equal(tpm_keyfile_load(fd->path, &back, &e), ERR_NOT_FOUND);
	assert_int_equal(tpm_keyfile_save(fd->path, &kf, NULL), 0);
	assert_int_equal(stat(fd->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(tpm_keyfile_save(fd->path, &kf, NULL), ERR_EXISTS);
	assert_int_equal(tpm_keyfile_load(fd->path, &back, NULL), 0);
	assert_same_key(&kf, &back);

	/* Symlinks are not followed. */
	assert_int_equal(symlink(fd->path, fd->link_path), 0);
	assert_int_equal(tpm_keyfile_load(fd->link_path, &back, NULL), ERR_IO);

	/* Oversized files are refused before parsing. */
	f = fopen(fd->big_path, "w");
	assert_non_null(f);
	for (i = 0; i < TPM_KEYFILE_MAX + 1; i++)
		fputc(' ', f);
	fclose(f);
	assert_int_equal(tpm_keyfile_load(fd->big_path, &back, NULL),
	    ERR_TOO_LARGE);

	/* Replacing writes go through a temporary file. */
	assert_int_equal(fileio_write_atomic(fd->big_path, "x\n", 2, 0600,
	    NULL), 0);
	assert_int_equal(stat(fd->big_path, &st), 0);
	assert_int_equal(st.st_size, 2);
	assert_int_equal(st.st_mode & 0777, 0600);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_der_round_trip),
		cmocka_unit_test(test_pem_round_trip),
		cmocka_unit_test(test_der_variants),
		cmocka_unit_test(test_der_truncated_and_trailing),
		cmocka_unit_test(test_pem_negatives),
		cmocka_unit_test(test_encode_rejects_other_parent),
		cmocka_unit_test_setup_teardown(test_files, files_setup,
		    files_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
