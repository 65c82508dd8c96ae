/*
 * fuzz_tlog.c - libFuzzer harness for the transparency-log text formats
 * (tlog-note.h): everything a directory, a witness or a client reads from
 * a peer.
 *
 * The first input byte picks the parser; the rest is its input:
 *  0  a checkpoint text; one that parses is formatted again and must give
 *     the same fields back;
 *  1  a signed note; one that parses must format to exactly the input and
 *     parse again to the same note, and its text goes on to the checkpoint
 *     parser and its lines to the log and cosignature verifiers;
 *  2  one signature line;
 *  3  a verifier key string; one that parses must format to the input;
 *  4  a tlog-witness add-checkpoint body; one that parses must format to
 *     exactly the input, and its note is parsed;
 *  5  a JSON proof array, loaded with jansson first (bounded).
 * Nothing may crash, leak or trip a sanitizer; a failed round trip aborts.
 *
 * The log key (P-256, scalar 1..32) and the witness key (Ed25519, seed
 * 32 bytes of 0x42) are fixed, so seeds signed with them in
 * tests/fuzz/corpus/tlog reach the signature checks.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_LOG_NAME "devid/fuzz"
#define FUZZ_WITNESS_NAME "witness.example/fuzz"
#define FUZZ_JSON_MAX 65536

static struct tlog_vkey log_vkey, wit_vkey;
static int keys_ready;

/* The fixed keys, made once for the life of the process. */
static void
fuzz_init(void)
{
	uint8_t scalar[CRYPTO_P256_SCALAR_LEN], seed[32], *spki = NULL;
	EVP_PKEY *ec = NULL, *ed = NULL;
	size_t i, spki_len;

	if (keys_ready)
		return;
	for (i = 0; i < sizeof(scalar); i++)
		scalar[i] = (uint8_t)(i + 1);
	memset(seed, 0x42, sizeof(seed));
	if (crypto_ec_from_scalar(scalar, &ec) != 0 ||
	    crypto_spki_export(ec, &spki, &spki_len) != 0 ||
	    tlog_vkey_log(FUZZ_LOG_NAME, spki, spki_len, &log_vkey,
	    NULL) != 0 ||
	    (ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    sizeof(seed))) == NULL ||
	    tlog_vkey_cosigner(FUZZ_WITNESS_NAME, ed, &wit_vkey, NULL) != 0)
		abort();
	free(spki);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	keys_ready = 1;
}

static void
fuzz_checkpoint(const char *s, size_t len)
{
	struct tlog_checkpoint c, d;
	char out[TLOG_TEXT_MAX + 1];
	size_t out_len;

	if (tlog_checkpoint_parse(s, len, &c, NULL) != 0)
		return;
	if (tlog_checkpoint_format(&c, out, sizeof(out), &out_len) != 0 ||
	    out_len > len || memcmp(out, s, out_len) != 0 ||
	    tlog_checkpoint_parse(out, out_len, &d, NULL) != 0 ||
	    strcmp(c.origin, d.origin) != 0 || c.size != d.size ||
	    memcmp(c.root, d.root, sizeof(c.root)) != 0)
		abort();
}

static struct tlog_note note_a, note_b;

static void
fuzz_note(const char *s, size_t len)
{
	struct tlog_checkpoint c;
	size_t i, out_len;
	char *out = NULL;
	uint64_t t;

	if (tlog_note_parse(s, len, &note_a, NULL) != 0)
		return;
	if (tlog_note_format(&note_a, &out, &out_len) != 0 ||
	    out_len != len || memcmp(out, s, len) != 0 ||
	    tlog_note_parse(out, out_len, &note_b, NULL) != 0 ||
	    note_a.text_len != note_b.text_len ||
	    memcmp(note_a.text, note_b.text, note_a.text_len) != 0 ||
	    note_a.nsig != note_b.nsig)
		abort();
	for (i = 0; i < note_a.nsig; i++)
		if (strcmp(note_a.sig[i].name, note_b.sig[i].name) != 0 ||
		    note_a.sig[i].key_id != note_b.sig[i].key_id ||
		    note_a.sig[i].sig_len != note_b.sig[i].sig_len ||
		    memcmp(note_a.sig[i].sig, note_b.sig[i].sig,
		    note_a.sig[i].sig_len) != 0)
			abort();
	free(out);
	(void)tlog_checkpoint_parse(note_a.text, note_a.text_len, &c, NULL);
	(void)tlog_note_verify_log(&note_a, &log_vkey, NULL);
	(void)tlog_cosig_verify(&note_a, &wit_vkey, &t, NULL);
}

static void
fuzz_vkey(const char *s, size_t len)
{
	char str[2 * TLOG_VKEY_MAX + 2], out[2 * TLOG_VKEY_MAX + 2];
	struct tlog_vkey k;

	if (len >= sizeof(str))
		len = sizeof(str) - 1;
	memcpy(str, s, len);
	str[len] = '\0';
	if (tlog_vkey_parse(str, &k, NULL) != 0)
		return;
	if (tlog_vkey_format(&k, out, sizeof(out)) != 0 ||
	    strcmp(out, str) != 0)
		abort();
}

static void
fuzz_witness_req(const char *s, size_t len)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t n, off, out_len;
	char *out = NULL;
	uint64_t old;

	if (tlog_witness_req_parse(s, len, &old, proof, &n, &off, NULL) != 0)
		return;
	if (off > len || n >= MERKLE_PROOF_MAX)
		abort();
	/* The note part may be anything; the head must round-trip. */
	if (len - off <= TLOG_NOTE_MAX) {
		if (tlog_witness_req_format(old, proof, n, s + off, len - off,
		    &out, &out_len) != 0 || out_len != len ||
		    memcmp(out, s, len) != 0)
			abort();
		free(out);
	}
	fuzz_note(s + off, len - off);
}

static void
fuzz_proof(const char *s, size_t len)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	json_error_t jerr;
	json_t *j;
	size_t n;

	if (len > FUZZ_JSON_MAX)
		return;
	if ((j = json_loadb(s, len, JSON_DECODE_ANY, &jerr)) == NULL)
		return;
	if (tlog_proof_from_json(j, proof, &n, NULL) == 0 &&
	    n > MERKLE_PROOF_MAX)
		abort();
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlog_sigline sl;
	const char *s;

	if (size < 1)
		return 0;
	fuzz_init();
	s = (const char *)data + 1;
	size--;
	switch (data[0] % 6) {
	case 0:
		fuzz_checkpoint(s, size);
		break;
	case 1:
		fuzz_note(s, size);
		break;
	case 2:
		(void)tlog_sigline_parse(s, size, &sl, NULL);
		break;
	case 3:
		fuzz_vkey(s, size);
		break;
	case 4:
		fuzz_witness_req(s, size);
		break;
	default:
		fuzz_proof(s, size);
		break;
	}
	return 0;
}
