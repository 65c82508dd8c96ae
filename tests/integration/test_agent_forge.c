/*
 * test_agent_forge.c - makes what a compromised directory would insert
 * into its own database: a valid device record (under a fresh software
 * key) and the add event that chains it onto an account's log.
 *
 * Usage: test_agent_forge ACCOUNT LABEL SEQ PREV_HEX TIME
 *            [KEY_OUT_PEM [ENDORSER_KEY_PEM]]
 *
 * Prints five lines: the device id, the event hash (hex), the event JSON,
 * the record JSON and the signing key's SPKI in hex.  The agent
 * integration tests write them into the directory's SQLite file.  With
 * KEY_OUT_PEM the new device's signing key is saved there; with
 * ENDORSER_KEY_PEM the record is endorsed by the device of that key.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"

int
main(int argc, char **argv)
{
	EVP_PKEY *sig = NULL, *enc = NULL, *endorser = NULL;
	uint8_t *end_der = NULL;
	size_t end_len = 0;
	uint8_t *sig_der = NULL, *enc_der = NULL, prev[32];
	size_t sig_len = 0, enc_len = 0;
	struct devrec rec;
	struct acctlog_event ev;
	struct err_ctx e;
	json_t *ej = NULL;
	char *etext = NULL, *rtext = NULL, hash[65], *spki_hex = NULL;
	int rc = 1;

	err_clear(&e);
	if (argc < 6 || argc > 8) {
		fprintf(stderr, "usage: test_agent_forge ACCOUNT LABEL SEQ "
		    "PREV_HEX TIME [KEY_OUT_PEM [ENDORSER_KEY_PEM]]\n");
		return 2;
	}
	if (hex_decode(argv[4], strlen(argv[4]), prev, 32) != 0) {
		fprintf(stderr, "bad PREV_HEX\n");
		return 2;
	}
	if (crypto_ec_generate(&sig) != 0 || crypto_ec_generate(&enc) != 0 ||
	    crypto_spki_export(sig, &sig_der, &sig_len) != 0 ||
	    crypto_spki_export(enc, &enc_der, &enc_len) != 0)
		goto out;
	if (devrec_build(&rec, argv[1], argv[2], sig_der, sig_len,
	    DEVREC_ENC_HPKE_P256, enc_der, enc_len,
	    strtoull(argv[5], NULL, 10), devrec_sign_pkey, sig, &e) != 0 ||
	    (argc >= 7 && crypto_pkey_save_pem(argv[6], sig, &e) != 0) ||
	    (argc == 8 && (crypto_pkey_load_pem(argv[7], &endorser, &e) != 0 ||
	    crypto_spki_export(endorser, &end_der, &end_len) != 0 ||
	    devrec_endorse(&rec, end_der, end_len, devrec_sign_pkey, endorser,
	    &e) != 0)) ||
	    acctlog_event_add(&ev, strtoull(argv[3], NULL, 10),
	    strtoull(argv[5], NULL, 10), prev, &rec, &e) != 0 ||
	    acctlog_event_to_json(&ev, &ej, &e) != 0 ||
	    devrec_encode(&rec, &rtext, &e) != 0) {
		fprintf(stderr, "test_agent_forge: %s\n", err_msg(&e));
		goto out;
	}
	if ((etext = json_dumps(ej, JSON_COMPACT)) == NULL ||
	    (spki_hex = malloc(sig_len * 2 + 1)) == NULL)
		goto out;
	hex_encode(ev.hash, 32, hash);
	hex_encode(sig_der, sig_len, spki_hex);
	printf("%s\n%s\n%s\n%s\n%s\n", rec.device, hash, etext, rtext,
	    spki_hex);
	rc = 0;
 out:
	EVP_PKEY_free(sig);
	EVP_PKEY_free(enc);
	EVP_PKEY_free(endorser);
	free(end_der);
	free(sig_der);
	free(enc_der);
	free(etext);
	free(rtext);
	free(spki_hex);
	json_decref(ej);
	return rc;
}
