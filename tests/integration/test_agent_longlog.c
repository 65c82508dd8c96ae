/*
 * test_agent_longlog.c - makes a long, valid stretch of an account log,
 * as a directory could serve it: CYCLES pairs of events, each adding a
 * fresh device and then revoking it with that device's own signature.
 *
 * Usage: test_agent_longlog ACCOUNT SEQ PREV_HEX TIME CYCLES
 *
 * Prints SQL for the directory's database (one INSERT per event and one
 * per device) on stdout; the events start at SEQ and chain onto PREV_HEX.
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

/* Prints the INSERT of one event. */
static int
print_event(const char *account, const struct acctlog_event *ev,
    const char *type, struct err_ctx *e)
{
	char prev[65], hash[65], *text = NULL;
	json_t *j = NULL;
	int r;

	if ((r = acctlog_event_to_json(ev, &j, e)) != 0)
		return r;
	if ((text = json_dumps(j, JSON_COMPACT)) == NULL) {
		json_decref(j);
		return ERR_ALLOC;
	}
	hex_encode(ev->prev, 32, prev);
	hex_encode(ev->hash, 32, hash);
	printf("INSERT INTO events(account, seq, time, type, prev, hash, json) "
	    "VALUES('%s', %llu, %llu, '%s', X'%s', X'%s', '%s');\n", account,
	    (unsigned long long)ev->seq, (unsigned long long)ev->time, type,
	    prev, hash, text);
	free(text);
	json_decref(j);
	return 0;
}

int
main(int argc, char **argv)
{
	EVP_PKEY *sig = NULL, *enc = NULL;
	uint8_t *sig_der = NULL, *enc_der = NULL, prev[32], digest[32];
	uint8_t rsig[64];
	size_t sig_len = 0, enc_len = 0;
	unsigned long long seq, now, cycles, i;
	struct acctlog_event ev;
	struct devrec rec;
	struct err_ctx e;
	char label[32], *rtext = NULL, *spki = NULL;
	const char *account;
	int rc = 1;

	err_clear(&e);
	if (argc != 6) {
		fprintf(stderr, "usage: test_agent_longlog ACCOUNT SEQ "
		    "PREV_HEX TIME CYCLES\n");
		return 2;
	}
	account = argv[1];
	seq = strtoull(argv[2], NULL, 10);
	now = strtoull(argv[4], NULL, 10);
	cycles = strtoull(argv[5], NULL, 10);
	if (hex_decode(argv[3], strlen(argv[3]), prev, 32) != 0) {
		fprintf(stderr, "bad PREV_HEX\n");
		return 2;
	}
	printf("BEGIN;\n");
	for (i = 0; i < cycles; i++) {
		EVP_PKEY_free(sig);
		EVP_PKEY_free(enc);
		free(sig_der);
		free(enc_der);
		free(rtext);
		free(spki);
		sig = enc = NULL;
		sig_der = enc_der = NULL;
		rtext = spki = NULL;
		snprintf(label, sizeof(label), "burst-%llu", i);
		if (crypto_ec_generate(&sig) != 0 ||
		    crypto_ec_generate(&enc) != 0 ||
		    crypto_spki_export(sig, &sig_der, &sig_len) != 0 ||
		    crypto_spki_export(enc, &enc_der, &enc_len) != 0 ||
		    (spki = malloc(sig_len * 2 + 1)) == NULL)
			goto out;
		if (devrec_build(&rec, account, label, sig_der, sig_len,
		    DEVREC_ENC_HPKE_P256, enc_der, enc_len, now,
		    devrec_sign_pkey, sig, &e) != 0 ||
		    acctlog_event_add(&ev, seq, now, prev, &rec, &e) != 0 ||
		    print_event(account, &ev, "add", &e) != 0 ||
		    devrec_encode(&rec, &rtext, &e) != 0)
			goto out;
		hex_encode(sig_der, sig_len, spki);
		printf("INSERT INTO devices(device, account, active, record, "
		    "sig_pub, added_time) VALUES('%s', '%s', 0, '%s', X'%s', "
		    "%llu);\n", rec.device, account, rtext, spki, now);
		memcpy(prev, ev.hash, 32);
		seq++;
		/* The device revokes itself. */
		if (acctlog_revoke_digest(account, rec.device, now, digest) != 0 ||
		    crypto_ecdsa_sign(sig, digest, rsig) != 0 ||
		    acctlog_event_revoke(&ev, seq, now, prev, rec.device, rsig,
		    &e) != 0 ||
		    print_event(account, &ev, "revoke", &e) != 0)
			goto out;
		memcpy(prev, ev.hash, 32);
		seq++;
	}
	printf("COMMIT;\n");
	rc = 0;
 out:
	if (rc != 0)
		fprintf(stderr, "test_agent_longlog: %s\n", err_msg(&e));
	EVP_PKEY_free(sig);
	EVP_PKEY_free(enc);
	free(sig_der);
	free(enc_der);
	free(rtext);
	free(spki);
	return rc;
}
