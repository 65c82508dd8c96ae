/*
 * test_msg_tamper.c - makes what an attacker between sender and recipient
 * would send: variants of a captured envelope (the 2016 iMessage attacks).
 *
 * Usage: test_msg_tamper MODE IN OUT [SOCKET]
 *   flip-ct      flip one bit of the body ciphertext
 *   flip-wrap    flip one bit of the first recipient's wrapped key
 *   move-wrap    swap the wraps of the first two recipients (the device
 *                ids stay: each device finds the other's wrap in its slot)
 *   resign       strip the signature and sign again as the device whose
 *                agent listens on SOCKET (a registered device of the
 *                recipient's account): the sender becomes that device,
 *                its own slot is removed, everything else is kept
 *
 * IN holds the envelope's JSON text; the variant goes to OUT.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "envelope.h"
#include "errors.h"
#include "msg-agent.h"

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
	if (argc < 4 || (strcmp(argv[1], "resign") == 0 && argc != 5)) {
		fprintf(stderr, "usage: test_msg_tamper flip-ct|flip-wrap|"
		    "move-wrap|resign IN OUT [SOCKET]\n");
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
