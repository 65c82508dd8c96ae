/*
 * fuzz_tpmkeyfile.c - libFuzzer harness for the TSS2 PRIVATE KEY parser.
 *
 * The input goes to the DER and to the PEM parser.  A key that parses must
 * encode back to exactly the input, since only canonical files are
 * accepted.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpm-keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tpm_keyfile kf;
	uint8_t *der = NULL;
	size_t der_len = 0;

	if (tpm_keyfile_decode_der(data, size, &kf, NULL) == 0) {
		if (tpm_keyfile_encode_der(&kf, &der, &der_len, NULL) != 0 ||
		    der_len != size || memcmp(der, data, size) != 0)
			abort();
		free(der);
	}
	(void)tpm_keyfile_decode_pem((const char *)data, size, &kf, NULL);
	return 0;
}
