/*
 * bench-envelope.c - what sealing and opening an envelope cost, next to
 * the bare primitives they are made of (docs/performance.md).
 *
 * Sealing encrypts the body once and wraps the content key once per
 * recipient device, so its cost should be close to
 *
 *     body AES-256-GCM + N x (P-256 key generation + P-256 ECDH +
 *                             HPKE key schedule (HKDF) + AES-128-GCM of K)
 *
 * The program measures each of these primitives and the real seal for
 * 1, 10 and 100 hpke-p256 recipients with 1 KiB, 64 KiB and 1 MiB bodies,
 * and prints seal / (that sum).
 *
 * One recipient's whole open path (JSON parse, signature, unwrap, body,
 * inner payload) is then set next to the cryptography it cannot avoid:
 *
 *     crypto = AES-256-GCM open of the ciphertext + SHA-256 of the
 *              ciphertext (the signature transcript hashes it) + one P-256
 *              ECDH + one HPKE key schedule (HKDF) + one ECDSA P-256 verify
 *
 * and prints open / crypto, and encode / crypto for encoding the sealed
 * envelope as JSON text.  The target for a 64 KiB message is
 * open / crypto <= 3.  Every figure is the median of several runs
 * (CLOCK_MONOTONIC).
 *
 * Usage: bench-envelope [-q]      (-q: fewer repetitions, for a smoke run)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "bench-util.h"
#include "codec.h"
#include "crypto.h"
#include "envelope.h"
#include "errors.h"
#include "hpke.h"

#define MAX_RECIPIENTS 100
#define SENDER_ACCOUNT "alice@example.org"

static int quick;

static void
die(const char *what, int r)
{
	fprintf(stderr, "bench-envelope: %s failed (%d: %s)\n", what, r,
	    err_str(r));
	exit(1);
}

/*
 * The median over `rounds` rounds of the time of one fn(arg), each round
 * timing `batch` calls together (so that short operations are not lost in
 * the clock's own cost).
 */
static double
time_op(void (*fn)(void *), void *arg, int batch, int rounds)
{
	double t[64];
	int i, k;

	if (rounds > 64)
		rounds = 64;
	fn(arg);		/* warm up */
	for (i = 0; i < rounds; i++) {
		double t0 = bench_now_s();

		for (k = 0; k < batch; k++)
			fn(arg);
		t[i] = (bench_now_s() - t0) / batch;
	}
	return bench_median(t, (size_t)rounds);
}

/* --- the world --- */

static EVP_PKEY *sender_sig;
static char sender_id[ENV_DEVICE_LEN + 1];
static EVP_PKEY *rcpt_enc[MAX_RECIPIENTS];
static EVP_PKEY *rcpt_sig_last;
static char rcpt_id[MAX_RECIPIENTS][ENV_DEVICE_LEN + 1];
static struct acctlog_head views[2];

static void
device_id_of(EVP_PKEY *sig, char out[ENV_DEVICE_LEN + 1])
{
	uint8_t *der = NULL, hash[32];
	size_t der_len = 0;
	int r;

	if ((r = crypto_spki_export(sig, &der, &der_len)) != 0 ||
	    (r = crypto_sha256(der, der_len, hash)) != 0)
		die("device id", r);
	hex_encode(hash, sizeof(hash), out);
	free(der);
}

static void
world_init(void)
{
	EVP_PKEY *k;
	size_t i;
	int r;

	if ((r = crypto_ec_generate(&sender_sig)) != 0)
		die("key generation", r);
	device_id_of(sender_sig, sender_id);
	for (i = 0; i < MAX_RECIPIENTS; i++) {
		if ((r = crypto_ec_generate(&rcpt_enc[i])) != 0 ||
		    (r = crypto_ec_generate(&k)) != 0)
			die("key generation", r);
		device_id_of(k, rcpt_id[i]);
		if (i == MAX_RECIPIENTS - 1)
			rcpt_sig_last = k;
		else
			EVP_PKEY_free(k);
	}
	for (i = 0; i < 2; i++) {
		strcpy(views[i].account, i == 0 ? SENDER_ACCOUNT :
		    "bob@example.org");
		views[i].seq = 42;
		memset(views[i].hash, 0x11 * (int)(i + 1), 32);
		views[i].time = 1764400000;
		memset(views[i].sig, 0x22, 64);
	}
}

static void
world_free(void)
{
	size_t i;

	EVP_PKEY_free(sender_sig);
	EVP_PKEY_free(rcpt_sig_last);
	for (i = 0; i < MAX_RECIPIENTS; i++)
		EVP_PKEY_free(rcpt_enc[i]);
}

/* --- primitives --- */

struct prim {
	uint8_t *body;
	size_t body_len;
	uint8_t *out;
	EVP_PKEY *a, *b;
};

static void
op_keygen(void *arg)
{
	EVP_PKEY *k = NULL;
	int r;

	(void)arg;
	if ((r = crypto_ec_generate(&k)) != 0)
		die("P-256 key generation", r);
	EVP_PKEY_free(k);
}

/*
 * The bare ECDH: OpenSSL's derive without validating the peer again.
 * Validation of a recipient key belongs to its import (once per key), not
 * to every message; crypto_ecdh() may add its own check on top.
 */
static void
op_ecdh(void *arg)
{
	struct prim *p = arg;
	EVP_PKEY_CTX *pctx;
	uint8_t dh[32];
	size_t len = sizeof(dh);

	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, p->a, NULL)) == NULL ||
	    EVP_PKEY_derive_init(pctx) != 1 ||
	    EVP_PKEY_derive_set_peer_ex(pctx, p->b, 0) != 1 ||
	    EVP_PKEY_derive(pctx, dh, &len) != 1 || len != sizeof(dh))
		die("ECDH", ERR_CRYPTO);
	EVP_PKEY_CTX_free(pctx);
	crypto_wipe(dh, sizeof(dh));
}

/* crypto_ecdh() as devid calls it, for comparison. */
static void
op_crypto_ecdh(void *arg)
{
	struct prim *p = arg;
	uint8_t dh[32];
	int r;

	if ((r = crypto_ecdh(p->a, p->b, dh)) != 0)
		die("ECDH", r);
	crypto_wipe(dh, sizeof(dh));
}

/* hpke_setup_base_s() + hpke_seal() of K: one wrap as the seal does it. */
static void
op_hpke_wrap(void *arg)
{
	static const uint8_t k[32], aad[32], info[102];
	struct prim *p = arg;
	struct hpke_ctx ctx;
	uint8_t pk_r[HPKE_ENC_LEN], enc[HPKE_ENC_LEN], out[48];
	int r;

	if ((r = crypto_ec_point_get(p->b, pk_r)) != 0 ||
	    (r = hpke_setup_base_s(pk_r, info, sizeof(info), NULL, 0, enc,
	    &ctx, NULL)) != 0 ||
	    (r = hpke_seal(&ctx, aad, sizeof(aad), k, sizeof(k), out)) != 0)
		die("HPKE wrap", r);
	hpke_ctx_wipe(&ctx);
}

static void
op_sign(void *arg)
{
	static const uint8_t digest[32];
	struct prim *p = arg;
	uint8_t sig[64];
	int r;

	if ((r = crypto_ecdsa_sign(p->a, digest, sig)) != 0)
		die("ECDSA", r);
}

static void
op_verify(void *arg)
{
	static const uint8_t digest[32];
	static uint8_t sig[64];
	static int have_sig;
	struct prim *p = arg;
	int r;

	if (!have_sig) {
		if ((r = crypto_ecdsa_sign(p->a, digest, sig)) != 0)
			die("ECDSA", r);
		have_sig = 1;
	}
	if ((r = crypto_ecdsa_verify(p->a, digest, sig)) != 0)
		die("ECDSA verify", r);
}

static void
op_body_sha256(void *arg)
{
	struct prim *p = arg;
	uint8_t h[32];
	int r;

	if ((r = crypto_sha256(p->out, p->body_len + 16, h)) != 0)
		die("SHA-256", r);
}

static void
op_body_gcm(void *arg)
{
	static const uint8_t key[32], nonce[12];
	struct prim *p = arg;
	int r;

	if ((r = crypto_aes_gcm_seal(key, 32, nonce, (const uint8_t *)"hdr", 3,
	    p->body, p->body_len, p->out)) != 0)
		die("AES-256-GCM", r);
}

/*
 * What opening costs per byte: the ciphertext of a sealed payload
 * (payload_len + 16 bytes), decrypted and hashed once each.
 */
struct ct_prim {
	uint8_t *ct;
	size_t ct_len;
	uint8_t *pt;
};

static const uint8_t ct_key[32], ct_nonce[12];

static void
op_ct_gcm_open(void *arg)
{
	struct ct_prim *p = arg;
	int r;

	if ((r = crypto_aes_gcm_open(ct_key, 32, ct_nonce,
	    (const uint8_t *)"hdr", 3, p->ct, p->ct_len, p->pt)) != 0)
		die("AES-256-GCM open", r);
}

static void
op_ct_sha256(void *arg)
{
	struct ct_prim *p = arg;
	uint8_t h[32];
	int r;

	if ((r = crypto_sha256(p->ct, p->ct_len, h)) != 0)
		die("SHA-256", r);
}

static void
op_wrap_gcm(void *arg)
{
	static const uint8_t key[16], nonce[12], k[32], aad[32];
	uint8_t out[48];
	int r;

	(void)arg;
	if ((r = crypto_aes_gcm_seal(key, 16, nonce, aad, 32, k, 32,
	    out)) != 0)
		die("AES-128-GCM", r);
}

/* One HPKE base-mode key schedule's HKDF work: DHKEM's ExtractAndExpand
 * (1 extract, 1 expand) and KeySchedule (3 extracts, 3 expands). */
static void
op_hkdf(void *arg)
{
	static const uint8_t ikm[32], info[128];
	uint8_t prk[32], out[32];
	int i, r;

	(void)arg;
	for (i = 0; i < 4; i++) {
		if ((r = crypto_hkdf_extract(NULL, 0, ikm, sizeof(ikm),
		    prk)) != 0 ||
		    (r = crypto_hkdf_expand(prk, info, sizeof(info), out,
		    sizeof(out))) != 0)
			die("HKDF", r);
	}
}

/* --- seal and open --- */

static int
sign_cb(void *arg, const uint8_t *transcript, size_t len, uint8_t sig[64],
    struct err_ctx *e)
{
	uint8_t digest[32];
	int r;

	(void)e;
	if ((r = crypto_sha256(transcript, len, digest)) != 0)
		return r;
	return crypto_ecdsa_sign((EVP_PKEY *)arg, digest, sig);
}

struct seal_case {
	struct env_seal_args args;
	struct env_recipient_key rk[MAX_RECIPIENTS];
	uint8_t *payload;
	size_t payload_len;
	struct env *env;            /* the first one sealed */
	char *json;                 /* and its encoding */
	size_t json_len;
};

static const char *const to_accounts[] = { "bob@example.org",
    SENDER_ACCOUNT };

static void
seal_case_init(struct seal_case *c, size_t n, uint8_t *body, size_t len)
{
	size_t i;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = env_payload_encode("application/octet-stream", body, len,
	    NULL, &c->payload, &c->payload_len, NULL)) != 0)
		die("payload", r);
	for (i = 0; i < n; i++) {
		c->rk[i].device = rcpt_id[MAX_RECIPIENTS - n + i];
		c->rk[i].alg = TOKEN_ENC_HPKE_P256;
		c->rk[i].enc_pub = rcpt_enc[MAX_RECIPIENTS - n + i];
	}
	c->args.sender_account = SENDER_ACCOUNT;
	c->args.sender_device = sender_id;
	c->args.sent = 1764400000;
	c->args.to = to_accounts;
	c->args.n_to = 2;
	c->args.views = views;
	c->args.n_views = 2;
	c->args.recipients = c->rk;
	c->args.n_recipients = n;
	c->args.payload = c->payload;
	c->args.payload_len = c->payload_len;
	c->args.sign = sign_cb;
	c->args.sign_arg = sender_sig;
}

static void
op_seal(void *arg)
{
	struct seal_case *c = arg;
	struct env *env = NULL;
	struct err_ctx e;
	int r;

	err_clear(&e);
	if ((r = env_seal(&c->args, &env, &e)) != 0) {
		fprintf(stderr, "%s\n", err_msg(&e));
		die("seal", r);
	}
	if (c->env == NULL)
		c->env = env;
	else
		env_free(env);
}

static void
op_encode(void *arg)
{
	struct seal_case *c = arg;
	char *json = NULL;
	size_t len = 0;
	int r;

	if ((r = env_to_json(c->env, &json, &len)) != 0)
		die("encode", r);
	if (c->json == NULL) {
		c->json = json;
		c->json_len = len;
	} else
		free(json);
}

static int
cb_sender_key(void *arg, const char *account, const char *device,
    EVP_PKEY **sig_pub, struct err_ctx *e)
{
	(void)arg;
	(void)account;
	if (strcmp(device, sender_id) != 0)
		return err_set(e, ERR_NOT_FOUND, "unknown sender");
	EVP_PKEY_up_ref(sender_sig);
	*sig_pub = sender_sig;
	return 0;
}

static int
cb_replay_check(void *arg, const char *device, const uint8_t id[16],
    struct err_ctx *e)
{
	(void)arg;
	(void)device;
	(void)id;
	(void)e;
	return 0;
}

static int
cb_replay_record(void *arg, const char *device, const uint8_t id[16],
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
cb_gossip(void *arg, const char *account, const char *device,
    const struct acctlog_head *v, size_t n, struct err_ctx *e)
{
	(void)arg;
	(void)account;
	(void)device;
	(void)v;
	(void)n;
	(void)e;
	return 0;
}

static const struct env_open_ops open_ops = {
	.sender_key = cb_sender_key,
	.replay_check = cb_replay_check,
	.replay_record = cb_replay_record,
	.gossip = cb_gossip,
};

struct open_case {
	const char *json;
	size_t len;
	struct env_self self;
};

static void
op_open(void *arg)
{
	struct open_case *c = arg;
	struct env_opened o;
	struct err_ctx e;
	int r;

	err_clear(&e);
	if ((r = env_open((const uint8_t *)c->json, c->len, NULL, &c->self,
	    &open_ops, &o, &e)) != 0) {
		fprintf(stderr, "%s\n", err_msg(&e));
		die("open", r);
	}
	env_opened_clear(&o);
}

/* "1 KiB", "64 KiB", "1 MiB" */
static const char *
size_name(size_t len, char *buf, size_t buf_len)
{
	if (len >= 1024 * 1024 && len % (1024 * 1024) == 0)
		snprintf(buf, buf_len, "%zu MiB", len / (1024 * 1024));
	else
		snprintf(buf, buf_len, "%zu KiB", len / 1024);
	return buf;
}

#define N_SIZES 3
#define N_COUNTS 3

/* One line of the open table. */
struct open_row {
	size_t body_len, n, ct_len, json_len;
	double t_gcm, t_sha, t_open, t_encode, crypto;
};

/*
 * The cryptography that opening a sealed payload of payload_len bytes
 * cannot avoid (see the top of this file), into row; t_fixed is the
 * ECDH + HKDF + verify part, the same for every size.
 */
static void
open_crypto(struct open_row *row, size_t payload_len, double t_fixed,
    int rounds)
{
	struct ct_prim cp;
	int batch, r;

	cp.ct_len = payload_len + 16;
	if ((cp.ct = malloc(cp.ct_len)) == NULL ||
	    (cp.pt = malloc(payload_len == 0 ? 1 : payload_len)) == NULL)
		die("allocation", ERR_ALLOC);
	if ((r = crypto_random(cp.pt, payload_len)) != 0 ||
	    (r = crypto_aes_gcm_seal(ct_key, 32, ct_nonce,
	    (const uint8_t *)"hdr", 3, cp.pt, payload_len, cp.ct)) != 0)
		die("AES-256-GCM", r);
	batch = cp.ct_len > 4096 ? 5 : 500;
	row->ct_len = cp.ct_len;
	row->t_gcm = time_op(op_ct_gcm_open, &cp, batch, rounds);
	row->t_sha = time_op(op_ct_sha256, &cp, batch, rounds);
	row->crypto = row->t_gcm + row->t_sha + t_fixed;
	free(cp.ct);
	free(cp.pt);
}

int
main(int argc, char **argv)
{
	static const size_t counts[N_COUNTS] = { 1, 10, 100 };
	static const size_t sizes[N_SIZES] = { 1024, 64 * 1024,
	    1024 * 1024 };
	static struct open_row rows[N_SIZES][N_COUNTS];
	struct open_row *row;
	struct prim p;
	struct seal_case *sc;
	struct open_case oc;
	double t_keygen, t_ecdh, t_hkdf, t_wrap_gcm, t_body, t_seal, t_open;
	double t_wrap, t_crypto_ecdh, t_hpke_wrap, t_sign, t_sha, t_encode;
	double t_verify, t_fixed, expected, open_crypto_t = 0;
	char name[32];
	size_t i, j, n;
	int rounds, batch, r;

	if (argc == 2 && strcmp(argv[1], "-q") == 0)
		quick = 1;
	else if (argc != 1) {
		fprintf(stderr, "usage: bench-envelope [-q]\n");
		return 2;
	}
	rounds = quick ? 3 : 15;
	world_init();
	memset(&p, 0, sizeof(p));
	if ((r = crypto_ec_generate(&p.a)) != 0 ||
	    (r = crypto_ec_generate(&p.b)) != 0)
		die("key generation", r);
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		die("allocation", ERR_ALLOC);

	t_keygen = time_op(op_keygen, NULL, 50, rounds);
	t_ecdh = time_op(op_ecdh, &p, 50, rounds);
	t_hkdf = time_op(op_hkdf, NULL, 200, rounds);
	t_wrap_gcm = time_op(op_wrap_gcm, NULL, 1000, rounds);
	t_wrap = t_keygen + t_ecdh + t_hkdf + t_wrap_gcm;
	t_crypto_ecdh = time_op(op_crypto_ecdh, &p, 50, rounds);
	t_hpke_wrap = time_op(op_hpke_wrap, &p, 50, rounds);
	t_sign = time_op(op_sign, &p, 50, rounds);
	t_verify = time_op(op_verify, &p, 50, rounds);
	t_fixed = t_ecdh + t_hkdf + t_verify;
	printf("primitives (median of %d rounds, microseconds):\n", rounds);
	printf("  P-256 key generation              %9.1f\n", t_keygen * 1e6);
	printf("  P-256 ECDH (bare derive)          %9.1f\n", t_ecdh * 1e6);
	printf("  HPKE key schedule HKDF (4+4)      %9.1f\n", t_hkdf * 1e6);
	printf("  AES-128-GCM of K (32 bytes)       %9.1f\n", t_wrap_gcm * 1e6);
	printf("  one wrap, sum of the above        %9.1f\n", t_wrap * 1e6);
	printf("  ECDSA P-256 verify (once per open)%9.1f\n", t_verify * 1e6);
	printf("for comparison:\n");
	printf("  crypto_ecdh()                     %9.1f\n",
	    t_crypto_ecdh * 1e6);
	printf("  hpke_setup_base_s() + hpke_seal() %9.1f\n",
	    t_hpke_wrap * 1e6);
	printf("  ECDSA P-256 sign (once per seal)  %9.1f\n", t_sign * 1e6);
	printf("\n%-6s %4s %9s %9s %11s %9s %6s %9s %9s\n", "body", "N",
	    "GCM us", "SHA256 us", "expected us", "seal us", "ratio",
	    "encode us", "open us");

	for (i = 0; i < N_SIZES; i++) {
		p.body_len = sizes[i];
		if ((p.body = malloc(p.body_len)) == NULL ||
		    (p.out = malloc(p.body_len + 16)) == NULL)
			die("allocation", ERR_ALLOC);
		if ((r = crypto_random(p.body, p.body_len)) != 0)
			die("random", r);
		batch = p.body_len > 4096 ? 5 : 500;
		t_body = time_op(op_body_gcm, &p, batch, rounds);
		t_sha = time_op(op_body_sha256, &p, batch, rounds);
		for (j = 0; j < N_COUNTS; j++) {
			n = counts[j];
			row = &rows[i][j];
			seal_case_init(sc, n, p.body, p.body_len);
			if (j == 0)
				open_crypto(row, sc->payload_len, t_fixed,
				    rounds);
			else {
				*row = rows[i][0];
			}
			open_crypto_t = row->crypto;
			batch = n >= 100 || p.body_len > 4096 ? 1 : 20;
			t_seal = time_op(op_seal, sc, batch, rounds);
			t_encode = time_op(op_encode, sc, batch, rounds);

			/* Open as the last recipient: the one whose key is
			 * rcpt_enc[MAX_RECIPIENTS - 1]. */
			memset(&oc, 0, sizeof(oc));
			oc.json = sc->json;
			oc.len = sc->json_len;
			oc.self.device = rcpt_id[MAX_RECIPIENTS - 1];
			oc.self.alg = TOKEN_ENC_HPKE_P256;
			if ((r = crypto_ec_point_get(rcpt_enc[MAX_RECIPIENTS -
			    1], oc.self.enc_point)) != 0)
				die("point", r);
			oc.self.dh = hpke_dh_software;
			oc.self.dh_arg = rcpt_enc[MAX_RECIPIENTS - 1];
			t_open = time_op(op_open, &oc, p.body_len > 4096 ?
			    1 : 20, rounds);

			row->body_len = p.body_len;
			row->n = n;
			row->json_len = sc->json_len;
			row->crypto = open_crypto_t;
			row->t_open = t_open;
			row->t_encode = t_encode;
			expected = t_body + (double)n * t_wrap;
			printf("%-6s %4zu %9.1f %9.1f %11.1f %9.1f %6.2f "
			    "%9.1f %9.1f\n", size_name(p.body_len, name,
			    sizeof(name)), n, t_body * 1e6, t_sha * 1e6,
			    expected * 1e6, t_seal * 1e6, t_seal / expected,
			    t_encode * 1e6, t_open * 1e6);
			env_free(sc->env);
			free(sc->json);
			crypto_wipe(sc->payload, sc->payload_len);
			free(sc->payload);
		}
		free(p.body);
		free(p.out);
	}

	printf("\nopening next to its cryptography (microseconds; crypto = "
	    "GCM + SHA256 of the\nciphertext + ECDH %.1f + HKDF %.1f + verify "
	    "%.1f; target open/crypto <= 3 at 64 KiB):\n", t_ecdh * 1e6,
	    t_hkdf * 1e6, t_verify * 1e6);
	printf("%-6s %4s %9s %9s %8s %8s %9s %9s %6s %9s %6s\n", "body", "N",
	    "ct bytes", "env bytes", "GCM us", "SHA us", "crypto us",
	    "open us", "open/c", "encode us", "enc/c");
	for (i = 0; i < N_SIZES; i++) {
		for (j = 0; j < N_COUNTS; j++) {
			row = &rows[i][j];
			printf("%-6s %4zu %9zu %9zu %8.1f %8.1f %9.1f %9.1f "
			    "%6.2f %9.1f %6.2f\n", size_name(row->body_len,
			    name, sizeof(name)), row->n, row->ct_len,
			    row->json_len, row->t_gcm * 1e6, row->t_sha * 1e6,
			    row->crypto * 1e6, row->t_open * 1e6,
			    row->t_open / row->crypto, row->t_encode * 1e6,
			    row->t_encode / row->crypto);
		}
	}
	free(sc);
	EVP_PKEY_free(p.a);
	EVP_PKEY_free(p.b);
	world_free();
	return 0;
}
