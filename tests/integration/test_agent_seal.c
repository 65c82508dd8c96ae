/*
 * test_agent_seal.c - seals a message to one device the way a sender
 * would, for the agent's `open` tests.  The sender is a fresh software
 * device of SENDER_ACCOUNT; the envelope carries the recipient account's
 * signed head read from HEAD_FILE (as the directory served it).  With
 * DIR_KEY_PEM, that head is replaced by a forged one at the same seq with
 * another hash, signed with the directory's own key: the split view a
 * compromised directory would show the sender; with "ahead" after it, the
 * forged head is one seq further than HEAD_FILE (a newer log the
 * directory hides from the recipient).
 *
 * Usage: test_agent_seal SENDER_ACCOUNT RECIPIENT_DEVICE ENC_PUB_B64
 *            HEAD_FILE TEXT [DIR_KEY_PEM [ahead]]
 *
 * Prints the envelope JSON and the sender's signing key (base64url SPKI),
 * one per line.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "envelope.h"
#include "errors.h"
#include "token.h"

/* env_sign_fn: the sender signs H(transcript) with its software key. */
static int
sign_pkey(void *arg, const uint8_t *transcript, size_t len,
    uint8_t sig[ENV_SIG_LEN], struct err_ctx *e)
{
	uint8_t digest[32];
	int r;

	if ((r = crypto_sha256(transcript, len, digest)) != 0)
		return r;
	return devrec_sign_pkey(arg, digest, sig, e);
}

int
main(int argc, char **argv)
{
	struct acctlog_head views[2];
	struct env_recipient_key rk;
	struct env_seal_args sa;
	struct env *env = NULL;
	struct err_ctx e;
	EVP_PKEY *sender = NULL, *encpub = NULL, *dirkey = NULL;
	uint8_t *spki = NULL, *encder = NULL, *payload = NULL;
	size_t spki_len = 0, encder_len = 0, payload_len = 0, json_len = 0;
	char sender_id[DEVREC_ID_HEX_LEN + 1], *json = NULL, *spki_b64 = NULL;
	char *head_text = NULL, dir_id[DEVREC_ID_HEX_LEN + 1];
	const char *to[2];
	FILE *f;
	long n;
	int rc = 1, mine;

	err_clear(&e);
	if (argc < 6 || argc > 8) {
		fprintf(stderr, "usage: test_agent_seal SENDER_ACCOUNT "
		    "RECIPIENT_DEVICE ENC_PUB_B64 HEAD_FILE TEXT "
		    "[DIR_KEY_PEM [ahead]]\n");
		return 2;
	}
	if ((f = fopen(argv[4], "r")) == NULL)
		return 2;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	head_text = calloc(1, (size_t)n + 1);
	if (head_text == NULL || fread(head_text, 1, (size_t)n, f) !=
	    (size_t)n) {
		fclose(f);
		goto out;
	}
	fclose(f);
	mine = 0;       /* env_seal sorts to[] and views[] itself */
	memset(views, 0, sizeof(views));
	if (acctlog_head_parse(head_text, strlen(head_text), &views[mine],
	    &e) != 0) {
		fprintf(stderr, "head: %s\n", err_msg(&e));
		goto out;
	}
	if (argc >= 7) {
		if (argc == 8 && strcmp(argv[7], "ahead") == 0)
			views[mine].seq++;
		if (crypto_pkey_load_pem(argv[6], &dirkey, &e) != 0 ||
		    acctlog_directory_id(dirkey, dir_id) != 0 ||
		    crypto_random(views[mine].hash, 32) != 0 ||
		    acctlog_head_sign(&views[mine], dir_id, devrec_sign_pkey,
		    dirkey, &e) != 0) {
			fprintf(stderr, "forge: %s\n", err_msg(&e));
			goto out;
		}
	}
	/* The sender's own account: an empty log under some head. */
	snprintf(views[!mine].account, sizeof(views[!mine].account), "%s",
	    argv[1]);
	views[!mine].time = (uint64_t)time(NULL);
	to[0] = argv[1];
	to[1] = views[mine].account;
	if (crypto_ec_generate(&sender) != 0 ||
	    crypto_spki_export(sender, &spki, &spki_len) != 0 ||
	    devrec_device_id(spki, spki_len, sender_id) != 0 ||
	    b64url_encode(spki, spki_len, &spki_b64) != 0 ||
	    b64url_decode(argv[3], strlen(argv[3]), CRYPTO_SPKI_MAX, &encder,
	    &encder_len) != 0 ||
	    crypto_spki_import(encder, encder_len, &encpub, &e) != 0 ||
	    env_payload_encode("text/plain; charset=utf-8",
	    (const uint8_t *)argv[5], strlen(argv[5]), NULL, &payload,
	    &payload_len, &e) != 0) {
		fprintf(stderr, "setup: %s\n", err_msg(&e));
		goto out;
	}
	rk.device = argv[2];
	rk.alg = TOKEN_ENC_HPKE_P256;
	rk.enc_pub = encpub;
	memset(&sa, 0, sizeof(sa));
	sa.sender_account = argv[1];
	sa.sender_device = sender_id;
	sa.sent = (uint64_t)time(NULL);
	sa.to = to;
	sa.n_to = 2;
	sa.views = views;
	sa.n_views = 2;
	sa.recipients = &rk;
	sa.n_recipients = 1;
	sa.payload = payload;
	sa.payload_len = payload_len;
	sa.sign = sign_pkey;
	sa.sign_arg = sender;
	if (env_seal(&sa, &env, &e) != 0 ||
	    env_to_json(env, &json, &json_len) != 0) {
		fprintf(stderr, "seal: %s\n", err_msg(&e));
		goto out;
	}
	printf("%s\n%s\n", json, spki_b64);
	rc = 0;
 out:
	env_free(env);
	EVP_PKEY_free(sender);
	EVP_PKEY_free(encpub);
	EVP_PKEY_free(dirkey);
	free(spki);
	free(encder);
	free(payload);
	free(json);
	free(spki_b64);
	free(head_text);
	return rc;
}
