/*
 * fuzz_envelope.c - libFuzzer harness for the envelope parser, the inner
 * payload parser and the recipient's open path (PROTOCOL.md section 4).
 *
 * Every input goes through:
 *   - env_parse(); when it parses, encoding and parsing again must succeed
 *     and encode to the same bytes (the encoding is canonical);
 *   - when it loads as JSON, env_parse_tree() on the tree (devid-agent's
 *     `open` request) must judge it as env_parse() does, with the same
 *     code and message, and env_parse_keep_tree() must keep that tree;
 *   - env_payload_parse(); when it parses, env_payload_encode_full() of
 *     the result must parse again and encode to the same bytes (the
 *     attachments of section 8.2 included);
 *   - env_open() for a fixed receiving device, with fixed sender and
 *     receiver keys made once from constant scalars, so that seeds sealed
 *     with these keys open and the fuzzer starts from the deepest path.
 * A crash, a sanitizer report, a leak or a broken round trip is a finding.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "codec.h"
#include "crypto.h"
#include "envelope.h"
#include "errors.h"
#include "hpke.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SENDER_ACCOUNT "alice@example.org"

/* Constant private scalars (valid P-256 scalars, far below the order). */
static const uint8_t fuzz_sender_sig_scalar[32] = {
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x01,
	0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
	0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
};
static const uint8_t fuzz_self_sig_scalar[32] = {
	0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98,
	0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f, 0x10,
	0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
	0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21,
};
static const uint8_t fuzz_self_enc_scalar[32] = {
	0x31, 0x42, 0x53, 0x64, 0x75, 0x86, 0x97, 0xa8,
	0xb9, 0xca, 0xdb, 0xec, 0xfd, 0x0e, 0x1f, 0x20,
	0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
	0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31,
};

struct fuzz_world {
	int ready;
	EVP_PKEY *sender_sig;
	EVP_PKEY *self_sig;
	EVP_PKEY *self_enc;
	char sender_id[ENV_DEVICE_LEN + 1];
	char self_id[ENV_DEVICE_LEN + 1];
	struct env_self self;
};

static struct fuzz_world fw;

static int
fuzz_device_id(EVP_PKEY *sig, char out[ENV_DEVICE_LEN + 1])
{
	uint8_t *der = NULL, hash[32];
	size_t der_len = 0;
	int r;

	if ((r = crypto_spki_export(sig, &der, &der_len)) == 0 &&
	    (r = crypto_sha256(der, der_len, hash)) == 0)
		hex_encode(hash, sizeof(hash), out);
	free(der);
	return r;
}

/* Keys made once per process; they live until exit. */
static void
fuzz_init(void)
{
	if (fw.ready)
		return;
	if (crypto_ec_from_scalar(fuzz_sender_sig_scalar,
	    &fw.sender_sig) != 0 ||
	    crypto_ec_from_scalar(fuzz_self_sig_scalar, &fw.self_sig) != 0 ||
	    crypto_ec_from_scalar(fuzz_self_enc_scalar, &fw.self_enc) != 0 ||
	    fuzz_device_id(fw.sender_sig, fw.sender_id) != 0 ||
	    fuzz_device_id(fw.self_sig, fw.self_id) != 0 ||
	    crypto_ec_point_get(fw.self_enc, fw.self.enc_point) != 0) {
		fprintf(stderr, "fuzz_envelope: cannot make the fixed keys\n");
		abort();
	}
	fw.self.device = fw.self_id;
	fw.self.alg = TOKEN_ENC_HPKE_P256;
	fw.self.dh = hpke_dh_software;
	fw.self.dh_arg = fw.self_enc;
	fw.ready = 1;
}

static int
fuzz_sender_key(void *arg, const char *account, const char *device,
    EVP_PKEY **sig_pub, struct err_ctx *e)
{
	(void)arg;
	if (strcmp(account, FUZZ_SENDER_ACCOUNT) != 0 ||
	    strcmp(device, fw.sender_id) != 0)
		return err_set(e, ERR_NOT_FOUND, "unknown sender");
	if (EVP_PKEY_up_ref(fw.sender_sig) != 1)
		return ERR_CRYPTO;
	*sig_pub = fw.sender_sig;
	return 0;
}

static int
fuzz_replay_check(void *arg, const char *device, const uint8_t id[16],
    struct err_ctx *e)
{
	(void)arg;
	(void)device;
	(void)e;
	/* One id counts as seen, so the replay branch runs too. */
	return id[0] == 0xff && id[1] == 0xff ? ERR_REPLAY : 0;
}

static int
fuzz_replay_record(void *arg, const char *device, const uint8_t id[16],
    uint64_t sent, struct err_ctx *e)
{
	(void)arg;
	(void)device;
	(void)id;
	(void)sent;
	(void)e;
	return 0;
}

static int
fuzz_gossip(void *arg, const char *sender_account, const char *sender_device,
    const struct acctlog_head *views, size_t n, struct err_ctx *e)
{
	size_t i;

	(void)arg;
	(void)sender_account;
	(void)sender_device;
	for (i = 0; i < n; i++) {
		if (views[i].seq == 0x7fff)
			return err_set(e, ERR_FORK, "split view");
	}
	return 0;
}

static const struct env_open_ops fuzz_ops = {
	.sender_key = fuzz_sender_key,
	.replay_check = fuzz_replay_check,
	.replay_record = fuzz_replay_record,
	.gossip = fuzz_gossip,
	.arg = NULL,
};

/* parse -> encode -> parse -> encode: both encodings must agree. */
static void
fuzz_parse_roundtrip(const uint8_t *data, size_t size)
{
	struct env *env = NULL, *again = NULL;
	char *j1 = NULL, *j2 = NULL;
	size_t l1 = 0, l2 = 0;

	if (env_parse(data, size, NULL, &env, NULL) != 0)
		return;
	if (env_to_json(env, &j1, &l1) != 0 ||
	    env_parse((const uint8_t *)j1, l1, NULL, &again, NULL) != 0 ||
	    env_to_json(again, &j2, &l2) != 0 ||
	    l1 != l2 || memcmp(j1, j2, l1) != 0) {
		fprintf(stderr, "fuzz_envelope: parse/encode round trip "
		    "broken\n");
		abort();
	}
	free(j1);
	free(j2);
	env_free(env);
	env_free(again);
}

/* The tree path must agree with the text path. */
static void
fuzz_parse_tree_agrees(const uint8_t *data, size_t size)
{
	struct env *from_text = NULL, *from_tree = NULL;
	struct err_ctx et, ej;
	json_t *root, *kept = NULL;
	int rt, rj;

	if (size > ENV_MAX_BYTES_DEFAULT ||
	    (root = json_loadb((const char *)data, size,
	    JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return;
	err_clear(&et);
	err_clear(&ej);
	rt = env_parse_keep_tree(data, size, NULL, &from_text, &kept, &et);
	rj = env_parse_tree(root, NULL, &from_tree, &ej);
	if (rt != rj || strcmp(et.msg, ej.msg) != 0 ||
	    (rt == 0 && !json_equal(kept, root))) {
		fprintf(stderr, "fuzz_envelope: text and tree parses differ: "
		    "%d (%s) and %d (%s)\n", rt, et.msg, rj, ej.msg);
		abort();
	}
	json_decref(kept);
	json_decref(root);
	env_free(from_text);
	env_free(from_tree);
}

/* payload parse -> encode -> parse -> encode: both encodings agree. */
static void
fuzz_payload_roundtrip(const uint8_t *data, size_t size)
{
	struct env_payload p1, p2;
	uint8_t *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;

	memset(&p2, 0, sizeof(p2));
	if (env_payload_parse(data, size, &p1, NULL) != 0)
		return;
	if (env_payload_encode_full(&p1, &t1, &l1, NULL) != 0 ||
	    env_payload_parse(t1, l1, &p2, NULL) != 0 ||
	    env_payload_encode_full(&p2, &t2, &l2, NULL) != 0 ||
	    l1 != l2 || memcmp(t1, t2, l1) != 0 ||
	    p1.n_blobs != p2.n_blobs) {
		fprintf(stderr, "fuzz_envelope: payload parse/encode round "
		    "trip broken\n");
		abort();
	}
	if (t1 != NULL)
		crypto_wipe(t1, l1);
	if (t2 != NULL)
		crypto_wipe(t2, l2);
	free(t1);
	free(t2);
	env_payload_clear(&p1);
	env_payload_clear(&p2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env_opened opened;
	struct err_ctx e;
	int r;

	fuzz_init();
	fuzz_parse_roundtrip(data, size);
	fuzz_parse_tree_agrees(data, size);

	fuzz_payload_roundtrip(data, size);

	err_clear(&e);
	r = env_open(data, size, NULL, &fw.self, &fuzz_ops, &opened, &e);
	if (r != 0 && r != ERR_REJECTED && r != ERR_ALLOC) {
		fprintf(stderr, "fuzz_envelope: open gave %d: %s\n", r,
		    err_msg(&e));
		abort();
	}
	env_opened_clear(&opened);
	return 0;
}
