/*
 * fuzz_crypto.c - libFuzzer harness for the small binary parsers of
 * common/: SPKI import, DER ECDSA signatures, base64url and hex.
 *
 * The first input byte picks the parser; the rest is its input.  Whatever
 * parses must re-encode to exactly the input (each parser accepts one
 * canonical encoding only), which the harness checks with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec.h"
#include "crypto.h"
#include "errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_spki(const uint8_t *p, size_t len)
{
	EVP_PKEY *pkey = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;

	if (crypto_spki_import(p, len, &pkey, NULL) != 0)
		return;
	if (crypto_spki_export(pkey, &der, &der_len) != 0 ||
	    der_len != len || memcmp(der, p, len) != 0)
		abort();
	free(der);
	EVP_PKEY_free(pkey);
}

static void
fuzz_sig(const uint8_t *p, size_t len)
{
	uint8_t raw[CRYPTO_ECDSA_SIG_LEN], *der = NULL;
	size_t der_len = 0;

	if (crypto_ecdsa_der_to_raw(p, len, raw) != 0)
		return;
	if (crypto_ecdsa_raw_to_der(raw, &der, &der_len) != 0 ||
	    der_len != len || memcmp(der, p, len) != 0)
		abort();
	free(der);
}

static void
fuzz_b64url(const uint8_t *p, size_t len)
{
	uint8_t *dec = NULL;
	size_t dec_len = 0;
	char *enc = NULL;

	if (b64url_decode((const char *)p, len, 1 << 20, &dec, &dec_len) != 0)
		return;
	if (b64url_encode(dec, dec_len, &enc) != 0 || strlen(enc) != len ||
	    memcmp(enc, p, len) != 0)
		abort();
	free(enc);
	free(dec);
}

static void
fuzz_hex(const uint8_t *p, size_t len)
{
	uint8_t out[64];
	char back[129];

	if (len % 2 != 0 || len / 2 > sizeof(out))
		return;
	if (hex_decode((const char *)p, len, out, len / 2) != 0)
		return;
	hex_encode(out, len / 2, back);
	if (memcmp(back, p, len) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_spki(data + 1, size - 1);
		break;
	case 1:
		fuzz_sig(data + 1, size - 1);
		break;
	case 2:
		fuzz_b64url(data + 1, size - 1);
		break;
	default:
		fuzz_hex(data + 1, size - 1);
		break;
	}
	return 0;
}
