/*
 * test_msg_tamper.c - makes what an attacker between sender and recipient
 * would send: variants of a captured envelope (the 2016 iMessage attacks).
 *
 * Usage: test_msg_tamper MODE IN OUT [SOCKET]
 *        test_msg_tamper seal-at AGE IN OUT SOCKET TEXT
 *   flip-ct      flip one bit of the body ciphertext
 *   flip-wrap    flip one bit of the first recipient's wrapped key
 *   move-wrap    swap the wraps of the first two recipients (the device
 *                ids stay: each device finds the other's wrap in its slot)
 *   resign       strip the signature and sign again as the device whose
 *                agent listens on SOCKET (a registered device of the
 *                recipient's account): the sender becomes that device,
 *                its own slot is removed, everything else is kept
 *   seal-at      a new message TEXT from the device whose agent listens on
 *                SOCKET to the other approved, active devices of its own
 *                account, sent AGE seconds ago (negative: in the future),
 *                with IN's view of that account, signed by that agent:
 *                what a capture made AGE seconds ago looks like when the
 *                directory delivers it again
 *
 * IN holds the envelope's JSON text; the variant goes to OUT.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "envelope.h"
#include "errors.h"
#include "msg-agent.h"
#include "token.h"

static int
read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *p;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (p = malloc((size_t)n + 1)) == NULL) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	if (fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		fclose(f);
		return -1;
	}
	fclose(f);
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	p[n] = '\0';
	*out = p;
	*len = (size_t)n;
	return 0;
}

/* Signs env again through the agent at sock, as that agent's device. */
static int
resign(struct env *env, const char *sock, struct err_ctx *e)
{
	struct msg_agent *a = NULL;
	json_t *req = NULL, *resp = NULL;
	struct buf *b = NULL;
	const char *acct, *dev;
	size_t i, j;
	int r = -1;

	if (msg_agent_connect(sock, &a, e) != 0)
		goto out;
	if ((req = json_pack("{s:s}", "op", "info")) == NULL ||
	    msg_agent_call(a, req, &resp, e) != 0)
		goto out;
	acct = json_string_value(json_object_get(resp, "account"));
	dev = json_string_value(json_object_get(resp, "device"));
	if (acct == NULL || dev == NULL)
		goto out;
	snprintf(env->sender_account, sizeof(env->sender_account), "%s",
	    acct);
	snprintf(env->sender_device, sizeof(env->sender_device), "%s", dev);
	/* The new sender may not have a slot of its own. */
	for (i = 0, j = 0; i < env->n_recipients; i++) {
		if (strcmp(env->recipients[i].device, dev) == 0) {
			free(env->recipients[i].wrapped);
			continue;
		}
		env->recipients[j++] = env->recipients[i];
	}
	env->n_recipients = j;
	if ((b = buf_new(0)) == NULL || env_sig_transcript(env, b) != 0 ||
	    msg_agent_sign(a, buf_ptr(b), buf_len(b), env->sig, e) != 0)
		goto out;
	r = 0;
 out:
	buf_free(b);
	json_decref(req);
	json_decref(resp);
	msg_agent_free(a);
	return r;
}

/* env_sign_fn through the agent. */
static int
agent_sign_cb(void *arg, const uint8_t *transcript, size_t len,
    uint8_t sig[ENV_SIG_LEN], struct err_ctx *e)
{
	return msg_agent_sign(arg, transcript, len, sig, e);
}

#define SEAL_MAX_RECIPIENTS 16

/*
 * seal-at: a new envelope in *out from the agent's device at sock to the
 * other approved, active devices of its account, sent at `sent`, with the
 * view of that account taken from `in`.
 */
static int
seal_at(const struct env *in, uint64_t sent, const char *sock,
    const char *text, struct env **out, struct err_ctx *e)
{
	struct msg_agent *a = NULL;
	json_t *req = NULL, *info = NULL, *devs = NULL, *d;
	struct env_recipient_key keys[SEAL_MAX_RECIPIENTS];
	EVP_PKEY *pubs[SEAL_MAX_RECIPIENTS];
	struct env_seal_args sa;
	const struct acctlog_head *view = NULL;
	const char *acct, *dev, *to[1], *s;
	uint8_t *payload = NULL, *der = NULL;
	size_t payload_len = 0, der_len = 0, n = 0, i;
	int r = -1;

	memset(pubs, 0, sizeof(pubs));
	if (msg_agent_connect(sock, &a, e) != 0)
		goto out;
	if ((req = json_pack("{s:s}", "op", "info")) == NULL ||
	    msg_agent_call(a, req, &info, e) != 0)
		goto out;
	json_decref(req);
	if ((req = json_pack("{s:s}", "op", "devices")) == NULL ||
	    msg_agent_call(a, req, &devs, e) != 0)
		goto out;
	acct = json_string_value(json_object_get(info, "account"));
	dev = json_string_value(json_object_get(info, "device"));
	if (acct == NULL || dev == NULL)
		goto out;
	for (i = 0; i < in->n_views; i++)
		if (strcmp(in->views[i].account, acct) == 0)
			view = &in->views[i];
	if (view == NULL) {
		err_set(e, ERR_NOT_FOUND, "IN has no view of %s", acct);
		goto out;
	}
	json_array_foreach(json_object_get(devs, "devices"), i, d) {
		if (json_is_true(json_object_get(d, "self")) ||
		    !json_is_true(json_object_get(d, "active")) ||
		    (s = json_string_value(json_object_get(d, "state"))) ==
		    NULL || strcmp(s, "approved") != 0)
			continue;
		if (n == SEAL_MAX_RECIPIENTS)
			goto out;
		memset(&keys[n], 0, sizeof(keys[n]));
		keys[n].device = json_string_value(json_object_get(d,
		    "device"));
		if (keys[n].device == NULL || token_enc_alg_parse(
		    json_string_value(json_object_get(d, "enc_alg")),
		    &keys[n].alg) != 0 ||
		    (s = json_string_value(json_object_get(d, "enc_pub"))) ==
		    NULL || b64url_decode(s, strlen(s), CRYPTO_SPKI_MAX, &der,
		    &der_len) != 0 ||
		    crypto_spki_import(der, der_len, &pubs[n], e) != 0)
			goto out;
		free(der);
		der = NULL;
		keys[n].enc_pub = pubs[n];
		n++;
	}
	if (n == 0) {
		err_set(e, ERR_NOT_FOUND, "%s has no other approved device",
		    acct);
		goto out;
	}
	if (env_payload_encode("text/plain; charset=utf-8",
	    (const uint8_t *)text, strlen(text), NULL, &payload, &payload_len,
	    e) != 0)
		goto out;
	to[0] = acct;
	memset(&sa, 0, sizeof(sa));
	sa.sender_account = acct;
	sa.sender_device = dev;
	sa.sent = sent;
	sa.to = to;
	sa.n_to = 1;
	sa.views = view;
	sa.n_views = 1;
	sa.recipients = keys;
	sa.n_recipients = n;
	sa.payload = payload;
	sa.payload_len = payload_len;
	sa.sign = agent_sign_cb;
	sa.sign_arg = a;
	if (env_seal(&sa, out, e) != 0)
		goto out;
	r = 0;
 out:
	for (i = 0; i < n; i++)
		EVP_PKEY_free(pubs[i]);
	if (payload != NULL) {
		crypto_wipe(payload, payload_len);
		free(payload);
	}
	free(der);
	json_decref(req);
	json_decref(info);
	json_decref(devs);
	msg_agent_free(a);
	return r;
}

/* seal-at AGE IN OUT SOCKET TEXT */
static int
main_seal_at(char **argv)
{
	struct env *in = NULL, *env = NULL;
	struct err_ctx e;
	char *text = NULL, *out = NULL, *end;
	size_t len = 0, out_len = 0;
	long long age;
	FILE *f = NULL;
	int rc = 1;

	err_clear(&e);
	errno = 0;
	age = strtoll(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || end == argv[2]) {
		fprintf(stderr, "seal-at: AGE must be a number of seconds\n");
		return 2;
	}
	if (read_file(argv[3], &text, &len) != 0 ||
	    env_parse((const uint8_t *)text, len, NULL, &in, &e) != 0) {
		fprintf(stderr, "cannot read %s: %s\n", argv[3], err_msg(&e));
		goto out;
	}
	if (seal_at(in, (uint64_t)((long long)time(NULL) - age), argv[5],
	    argv[6], &env, &e) != 0) {
		fprintf(stderr, "seal-at: %s\n", err_msg(&e));
		goto out;
	}
	if (env_to_json(env, &out, &out_len) != 0 ||
	    (f = fopen(argv[4], "w")) == NULL ||
	    fwrite(out, 1, out_len, f) != out_len || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", argv[4]);
		f = NULL;
		goto out;
	}
	f = NULL;
	rc = 0;
 out:
	if (f != NULL)
		fclose(f);
	free(text);
	free(out);
	env_free(in);
	env_free(env);
	return rc;
}

int
main(int argc, char **argv)
{
	struct env *env = NULL;
	struct env_recipient tmp;
	struct err_ctx e;
	char *in = NULL, *out = NULL;
	size_t len = 0, out_len = 0;
	FILE *f = NULL;
	int rc = 1;

	err_clear(&e);
	if (argc == 7 && strcmp(argv[1], "seal-at") == 0)
		return main_seal_at(argv);
	if (argc < 4 || (strcmp(argv[1], "resign") == 0 && argc != 5)) {
		fprintf(stderr, "usage: test_msg_tamper flip-ct|flip-wrap|"
		    "move-wrap|resign IN OUT [SOCKET]\n"
		    "       test_msg_tamper seal-at AGE IN OUT SOCKET TEXT\n");
		return 2;
	}
	if (read_file(argv[2], &in, &len) != 0) {
		fprintf(stderr, "cannot read %s\n", argv[2]);
		goto out;
	}
	if (env_parse((const uint8_t *)in, len, NULL, &env, &e) != 0) {
		fprintf(stderr, "parse: %s\n", err_msg(&e));
		goto out;
	}
	if (strcmp(argv[1], "flip-ct") == 0) {
		env->ciphertext[env->ciphertext_len / 2] ^= 0x01;
	} else if (strcmp(argv[1], "flip-wrap") == 0) {
		env->recipients[0].wrapped[0] ^= 0x80;
	} else if (strcmp(argv[1], "move-wrap") == 0) {
		if (env->n_recipients < 2) {
			fprintf(stderr, "move-wrap needs two recipients\n");
			goto out;
		}
		tmp = env->recipients[0];
		memcpy(env->recipients[0].enc, env->recipients[1].enc,
		    sizeof(tmp.enc));
		env->recipients[0].wrapped = env->recipients[1].wrapped;
		env->recipients[0].wrapped_len = env->recipients[1].wrapped_len;
		env->recipients[0].alg = env->recipients[1].alg;
		memcpy(env->recipients[1].enc, tmp.enc, sizeof(tmp.enc));
		env->recipients[1].wrapped = tmp.wrapped;
		env->recipients[1].wrapped_len = tmp.wrapped_len;
		env->recipients[1].alg = tmp.alg;
	} else if (strcmp(argv[1], "resign") == 0) {
		if (resign(env, argv[4], &e) != 0) {
			fprintf(stderr, "resign: %s\n", err_msg(&e));
			goto out;
		}
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		goto out;
	}
	if (env_to_json(env, &out, &out_len) != 0 ||
	    (f = fopen(argv[3], "w")) == NULL ||
	    fwrite(out, 1, out_len, f) != out_len || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", argv[3]);
		f = NULL;
		goto out;
	}
	f = NULL;
	rc = 0;
 out:
	if (f != NULL)
		fclose(f);
	free(in);
	free(out);
	env_free(env);
	return rc;
}
