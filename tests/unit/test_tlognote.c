/*
 * test_tlognote.c - checkpoints, signed notes, verifier keys, the log's
 * ECDSA signature, cosignatures, tlog-witness requests and JSON proofs:
 * round trips, the C2SP examples and many malformed inputs.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "codec.h"
#include "crypto.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

#define DASH "\xe2\x80\x94"

/* The C2SP tlog-checkpoint example. */
#define SOFA_TEXT "example.com/behind-the-sofa\n20852163\n" \
	"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
#define SOFA_SIG DASH " example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1" \
	"Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAY" \
	"Q8=\n"

/* The signed-note example of the Go sumdb note package (type 0x01). */
#define PN_TEXT "If you think cryptography is the answer to your problem,\n" \
	"then you don't know what your problem is.\n"
#define PN_SIG DASH " PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcE" \
	"lZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
#define PN_VKEY "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4" \
	"izWy10TW"

/* A valid sigline body (key id 01020304, 5 signature bytes). */
#define SIG_B64 "AQIDBAUGBwgJ"

static int
note_parse_str(const char *s, struct tlog_note *n)
{
	struct err_ctx e;

	err_clear(&e);
	return tlog_note_parse(s, strlen(s), n, &e);
}

static int
cp_parse_str(const char *s, struct tlog_checkpoint *c)
{
	struct err_ctx e;

	err_clear(&e);
	return tlog_checkpoint_parse(s, strlen(s), c, &e);
}

static EVP_PKEY *
ed25519_generate(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	assert_non_null(k);
	return k;
}

/* --- leaves --- */

static void
test_leaf_hash(void **state)
{
	static const uint8_t tag[] = "devid-tlog-leaf-v1";
	uint8_t ev[MERKLE_HASH_LEN], leaf[128], want[32], got[32], got2[32];
	size_t o = 0;

	memset(ev, 0xab, sizeof(ev));
	/* H(0x00 || tag\0 || lp("bob") || u64(258) || lp(ev)), by hand. */
	leaf[o++] = 0x00;
	memcpy(leaf + o, tag, sizeof(tag));
	o += sizeof(tag);
	memcpy(leaf + o, "\0\0\0\3bob", 7);
	o += 7;
	memcpy(leaf + o, "\0\0\0\0\0\0\1\2", 8);
	o += 8;
	memcpy(leaf + o, "\0\0\0\x20", 4);
	o += 4;
	memcpy(leaf + o, ev, sizeof(ev));
	o += sizeof(ev);
	assert_int_equal(crypto_sha256(leaf, o, want), 0);
	assert_int_equal(tlog_leaf_hash("bob", 258, ev, got), 0);
	assert_memory_equal(got, want, 32);
	/* Every field counts. */
	assert_int_equal(tlog_leaf_hash("bob", 259, ev, got2), 0);
	assert_memory_not_equal(got, got2, 32);
	assert_int_equal(tlog_leaf_hash("bo", 258, ev, got2), 0);
	assert_memory_not_equal(got, got2, 32);
	ev[31] ^= 1;
	assert_int_equal(tlog_leaf_hash("bob", 258, ev, got2), 0);
	assert_memory_not_equal(got, got2, 32);
}

/* --- checkpoints --- */

static void
test_checkpoint_example(void **state)
{
	struct tlog_checkpoint c;
	uint8_t *root;
	size_t len;
	char out[256];

	assert_int_equal(cp_parse_str(SOFA_TEXT, &c), 0);
	assert_string_equal(c.origin, "example.com/behind-the-sofa");
	assert_true(c.size == 20852163);
	assert_int_equal(b64std_decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3"
	    "j2jxq2I=", 44, 32, &root, &len), 0);
	assert_int_equal(len, 32);
	assert_memory_equal(c.root, root, 32);
	assert_int_equal(root[0], 0x0a);
	free(root);
	/* Formatting gives the text back. */
	assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out), &len),
	    0);
	assert_int_equal(len, strlen(SOFA_TEXT));
	assert_string_equal(out, SOFA_TEXT);
	/* Extension lines are accepted and ignored. */
	assert_int_equal(cp_parse_str(SOFA_TEXT "ext one\nx\n", &c), 0);
	assert_true(c.size == 20852163);
}

static void
test_checkpoint_roundtrip(void **state)
{
	static const uint64_t sizes[] = { 0, 1, 9, 10, 1234567,
	    UINT64_C(0x7fffffffffffffff) };
	struct tlog_checkpoint c, d;
	char out[TLOG_TEXT_MAX + 1];
	size_t i, len;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(&c, 0, sizeof(c));
		snprintf(c.origin, sizeof(c.origin), "devid/%zu", i);
		c.size = sizes[i];
		memset(c.root, (int)i * 37, sizeof(c.root));
		c.root[5] = 0xfe;
		assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out),
		    &len), 0);
		assert_int_equal(len, strlen(out));
		assert_int_equal(cp_parse_str(out, &d), 0);
		assert_string_equal(d.origin, c.origin);
		assert_true(d.size == c.size);
		assert_memory_equal(d.root, c.root, 32);
	}
	assert_int_equal(tlog_checkpoint_format(&c, out, 20, &len),
	    ERR_TOO_LARGE);
	/* Origins that cannot be key names. */
	strcpy(c.origin, "");
	assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out), &len),
	    ERR_INVALID_ARG);
	strcpy(c.origin, "a b");
	assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out), &len),
	    ERR_INVALID_ARG);
	strcpy(c.origin, "a+b");
	assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out), &len),
	    ERR_INVALID_ARG);
	strcpy(c.origin, "a\tb");
	assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out), &len),
	    ERR_INVALID_ARG);
	strcpy(c.origin, "ok");
	c.size = UINT64_C(0x8000000000000000);
	assert_int_equal(tlog_checkpoint_format(&c, out, sizeof(out), &len),
	    ERR_INVALID_ARG);
}

#define ROOT_B64 "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="

static void
test_checkpoint_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"o\n",
		"o\n5\n",
		"o\n5\n" ROOT_B64,                      /* no final newline */
		"o\n05\n" ROOT_B64 "\n",                /* leading zero */
		"o\n00\n" ROOT_B64 "\n",
		"o\n+5\n" ROOT_B64 "\n",
		"o\n-1\n" ROOT_B64 "\n",
		"o\n 5\n" ROOT_B64 "\n",
		"o\n5 \n" ROOT_B64 "\n",
		"o\n0x5\n" ROOT_B64 "\n",
		"o\n\n" ROOT_B64 "\n",                  /* empty size */
		"o\n9223372036854775808\n" ROOT_B64 "\n", /* 2^63 */
		"o\n18446744073709551616\n" ROOT_B64 "\n", /* 2^64 */
		"o\n99999999999999999999999\n" ROOT_B64 "\n",
		"\n5\n" ROOT_B64 "\n",                  /* empty origin */
		"a b\n5\n" ROOT_B64 "\n",               /* space */
		"a+b\n5\n" ROOT_B64 "\n",               /* plus */
		"a\xc2\xa0" "b\n5\n" ROOT_B64 "\n",     /* U+00A0 */
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
		"o\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n",
		"o\n5\n" ROOT_B64 "AAAA\n",
		"o\n5\n " ROOT_B64 "\n",
		"o\n5\n" ROOT_B64 "\r\n",               /* control char */
		"o\n5\n" ROOT_B64 "\n\n",               /* empty extension */
		"o\n5\n" ROOT_B64 "\next\n\n",
		"o\n5\n" ROOT_B64 "\next",              /* unterminated */
		"o\n5\n" ROOT_B64 "\nbad \x01 ext\n",
		"o\n5\n" ROOT_B64 "\nbad \xc3\x28\n",   /* bad UTF-8 */
		"o\n5\n" ROOT_B64 "\n\xe2\x82\n",
		"o\n5\n" ROOT_B64 "\n\xc0\xaf\n",       /* overlong */
		"o\n5\n" ROOT_B64 "\n\xed\xa0\x80\n",   /* surrogate */
		"o\n5\n" ROOT_B64 "\n\xf4\x90\x80\x80\n", /* > U+10FFFF */
		"o\n5\n" ROOT_B64 "\n\xc2\x85\n",       /* U+0085 (C1) */
		"o\x7f\n5\n" ROOT_B64 "\n",
	};
	struct tlog_checkpoint c;
	char big[TLOG_TEXT_MAX + 64];
	size_t i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = cp_parse_str(bad[i], &c);

		if (r != ERR_FORMAT && r != ERR_TOO_LARGE)
			fail_msg("checkpoint %zu accepted: %s", i, bad[i]);
	}
	assert_int_equal(cp_parse_str("o\n9223372036854775808\n" ROOT_B64 "\n",
	    &c), ERR_TOO_LARGE);
	/* An embedded NUL. */
	assert_int_equal(tlog_checkpoint_parse("o\n5\n" ROOT_B64 "\n\0\n",
	    5 + 44 + 3, &c, NULL), ERR_FORMAT);
	/* The largest size parses; the text limit holds. */
	assert_int_equal(cp_parse_str("o\n9223372036854775807\n" ROOT_B64 "\n",
	    &c), 0);
	len = (size_t)snprintf(big, sizeof(big), "o\n5\n" ROOT_B64 "\n");
	memset(big + len, 'x', sizeof(big) - len);
	big[TLOG_TEXT_MAX - 1] = '\n';
	assert_int_equal(tlog_checkpoint_parse(big, TLOG_TEXT_MAX, &c, NULL),
	    0);
	big[TLOG_TEXT_MAX] = '\n';
	assert_int_equal(tlog_checkpoint_parse(big, TLOG_TEXT_MAX + 1, &c,
	    NULL), ERR_TOO_LARGE);
	/* The origin length limit. */
	memset(big, 'a', TLOG_NAME_MAX + 1);
	len = TLOG_NAME_MAX + 1;
	len += (size_t)snprintf(big + len, sizeof(big) - len,
	    "\n5\n" ROOT_B64 "\n");
	assert_int_equal(tlog_checkpoint_parse(big, len, &c, NULL),
	    ERR_FORMAT);
	assert_int_equal(tlog_checkpoint_parse(big + 1, len - 1, &c, NULL), 0);
	assert_int_equal(strlen(c.origin), TLOG_NAME_MAX);
}

/* --- signed notes --- */

static void
test_note_examples(void **state)
{
	uint8_t pub[33], *k;
	struct tlog_checkpoint c;
	struct tlog_vkey vk;
	struct tlog_note n;
	struct err_ctx e;
	EVP_MD_CTX *ctx;
	EVP_PKEY *pk;
	size_t len;

	/* The checkpoint example and its signature line. */
	assert_int_equal(note_parse_str(SOFA_TEXT "\n" SOFA_SIG, &n), 0);
	assert_int_equal(n.text_len, strlen(SOFA_TEXT));
	assert_string_equal(n.text, SOFA_TEXT);
	assert_int_equal(n.nsig, 1);
	assert_string_equal(n.sig[0].name, "example.com/behind-the-sofa");
	assert_int_equal(n.sig[0].key_id, 0x033de0ae);
	assert_int_equal(n.sig[0].sig_len, 64);
	err_clear(&e);
	assert_int_equal(tlog_checkpoint_parse(n.text, n.text_len, &c, &e), 0);
	assert_string_equal(c.origin, "example.com/behind-the-sofa");
	assert_true(c.size == 20852163);
	assert_int_equal(c.root[0], 0x0a);
	assert_int_equal(c.root[31], 0x62);

	/* The Go example: its key id and its Ed25519 signature check out,
	 * so the text was split off exactly. */
	assert_int_equal(note_parse_str(PN_TEXT "\n" PN_SIG, &n), 0);
	assert_string_equal(n.text, PN_TEXT);
	assert_int_equal(n.nsig, 1);
	assert_string_equal(n.sig[0].name, "PeterNeumann");
	assert_int_equal(n.sig[0].key_id, 0xc74f20a3);
	err_clear(&e);
	assert_int_equal(tlog_vkey_parse(PN_VKEY, &vk, &e), 0);
	assert_int_equal(vk.type, TLOG_SIGTYPE_ED25519);
	assert_int_equal(vk.key_id, 0xc74f20a3);
	assert_int_equal(vk.key_len, 32);
	assert_int_equal(b64std_decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4iz"
	    "Wy10TW", 44, 33, &k, &len), 0);
	memcpy(pub, k, 33);
	free(k);
	assert_int_equal(tlog_key_id("PeterNeumann", 0x01, pub + 1, 32),
	    0xc74f20a3);
	assert_int_not_equal(tlog_key_id("PeterNeumann", 0x04, pub + 1, 32),
	    0xc74f20a3);
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, vk.key, 32);
	assert_non_null(pk);
	ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(ctx, n.sig[0].sig, n.sig[0].sig_len,
	    (const uint8_t *)n.text, n.text_len), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);

	/* Two signatures; the text itself may hold an empty line, the LAST
	 * empty line separates. */
	assert_int_equal(note_parse_str("a\n\nb\n\n" DASH " k1 " SIG_B64 "\n"
	    DASH " k2 " SIG_B64 "\n", &n), 0);
	assert_string_equal(n.text, "a\n\nb\n");
	assert_int_equal(n.nsig, 2);
	assert_string_equal(n.sig[1].name, "k2");
	assert_int_equal(n.sig[1].key_id, 0x01020304);
	assert_int_equal(n.sig[1].sig_len, 5);
	assert_memory_equal(n.sig[1].sig, "\5\6\7\x8\x9", 5);
	/* Non-ASCII names. */
	assert_int_equal(note_parse_str("t\n\n" DASH " caf\xc3\xa9 " SIG_B64
	    "\n", &n), 0);
	assert_string_equal(n.sig[0].name, "caf\xc3\xa9");
}

static void
test_note_roundtrip(void **state)
{
	static const char *const notes[] = {
		SOFA_TEXT "\n" SOFA_SIG,
		PN_TEXT "\n" PN_SIG,
		SOFA_TEXT "\n" SOFA_SIG PN_SIG DASH " x " SIG_B64 "\n",
		"a\n\nb\n\n" DASH " k1 " SIG_B64 "\n",
	};
	struct tlog_note n, m;
	size_t i, len;
	char *out;

	for (i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
		assert_int_equal(note_parse_str(notes[i], &n), 0);
		assert_int_equal(tlog_note_format(&n, &out, &len), 0);
		assert_int_equal(len, strlen(notes[i]));
		assert_string_equal(out, notes[i]);
		assert_int_equal(note_parse_str(out, &m), 0);
		assert_int_equal(m.nsig, n.nsig);
		free(out);
	}
	/* A note that is not one cannot be formatted. */
	memset(&n, 0, sizeof(n));
	strcpy(n.text, "t\n");
	n.text_len = 2;
	assert_int_equal(tlog_note_format(&n, &out, &len), ERR_INVALID_ARG);
	n.text_len = 1;
	assert_int_equal(tlog_note_format(&n, &out, &len), ERR_INVALID_ARG);
}

static void
test_note_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"text\n",                                   /* no blank line */
		"text\n" DASH " k " SIG_B64 "\n",
		"text\n\n",                                 /* no signature */
		"text\n\n" DASH " k " SIG_B64,              /* no newline */
		"text\n\n" DASH " k " SIG_B64 "\n\n",       /* blank at end */
		"text\n\n" DASH " k " SIG_B64 "\n\n" DASH " k2 " SIG_B64 "\n\n",
		"text\n\n" DASH " k " SIG_B64 "\nstray\n",  /* not a sig line */
		"text\n\n- k " SIG_B64 "\n",                /* hyphen */
		"text\n\n" DASH "k " SIG_B64 "\n",          /* no space */
		"text\n\n" DASH "  k " SIG_B64 "\n",        /* empty name */
		"text\n\n" DASH " k  " SIG_B64 "\n",        /* two spaces */
		"text\n\n" DASH " k " SIG_B64 " \n",
		"text\n\n" DASH " k+1 " SIG_B64 "\n",       /* plus */
		"text\n\n" DASH " k\xe3\x80\x80x " SIG_B64 "\n", /* U+3000 */
		"text\n\n" DASH " k\n",                     /* no signature */
		"text\n\n" DASH " k \n",
		"text\n\n" DASH " k AQIDBA==\n",            /* key id only */
		"text\n\n" DASH " k AQIDBAUGBwgJ\n" DASH " k AQIDBAUGBwgK\n",
		"text\n\n" DASH " k AQIDBAUGBwg\n",         /* no padding */
		"text\n\n" DASH " k AQIDBAUGBw=\n",         /* bad length */
		"text\n\n" DASH " k AQIDBAUGBwgJ=\n",
		"text\n\n" DASH " k AQIDBAUGBwg-\n",        /* URL alphabet */
		"text\n\n" DASH " k AQIDBAUGBwgK=\n",
		"text\n\n" DASH " k AQIDBAUGBwh*\n",
		"text\n\n" DASH " k AQIDBAUGBw==AAAA\n",
		"te\txt\n\n" DASH " k " SIG_B64 "\n",       /* control chars */
		"text\r\n\n" DASH " k " SIG_B64 "\n",
		"text\n\n" DASH " k " SIG_B64 "\r\n",
		"te\xffxt\n\n" DASH " k " SIG_B64 "\n",     /* bad UTF-8 */
		"text\n\n" DASH " k\xc3 " SIG_B64 "\n",
		"text\n\n\xe2\x80 k " SIG_B64 "\n",         /* cut dash */
		"text\n\n\xe2\x80\x93 k " SIG_B64 "\n",     /* en dash */
	};
	char big[TLOG_NOTE_MAX + 512], sig[512];
	struct tlog_note n;
	size_t i, o;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&n, 0x55, sizeof(n));
		r = note_parse_str(bad[i], &n);
		if (r != ERR_FORMAT && r != ERR_TOO_LARGE)
			fail_msg("note %zu accepted (%d): %s", i, r, bad[i]);
		assert_int_equal(n.nsig, 0);
	}
	/* Embedded NUL. */
	assert_int_equal(tlog_note_parse("t\0\n\n" DASH " k " SIG_B64 "\n",
	    4 + 5 + 13, &n, NULL), ERR_FORMAT);

	/* 32 signatures parse, 33 do not. */
	o = (size_t)snprintf(big, sizeof(big), "text\n\n");
	for (i = 0; i < TLOG_SIGS_MAX; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o,
		    DASH " k%zu " SIG_B64 "\n", i);
	assert_int_equal(note_parse_str(big, &n), 0);
	assert_int_equal(n.nsig, TLOG_SIGS_MAX);
	snprintf(big + o, sizeof(big) - o, DASH " k33 " SIG_B64 "\n");
	assert_int_equal(note_parse_str(big, &n), ERR_TOO_LARGE);

	/* Text of TLOG_TEXT_MAX bytes parses, one more does not. */
	memset(big, 'x', TLOG_TEXT_MAX);
	big[TLOG_TEXT_MAX - 1] = '\n';
	snprintf(big + TLOG_TEXT_MAX, sizeof(big) - TLOG_TEXT_MAX,
	    "\n" DASH " k " SIG_B64 "\n");
	assert_int_equal(note_parse_str(big, &n), 0);
	assert_int_equal(n.text_len, TLOG_TEXT_MAX);
	memset(big, 'x', TLOG_TEXT_MAX + 1);
	big[TLOG_TEXT_MAX] = '\n';
	snprintf(big + TLOG_TEXT_MAX + 1, sizeof(big) - TLOG_TEXT_MAX - 1,
	    "\n" DASH " k " SIG_B64 "\n");
	assert_int_equal(note_parse_str(big, &n), ERR_TOO_LARGE);
	/* A note over TLOG_NOTE_MAX. */
	memset(big, 'x', TLOG_NOTE_MAX);
	big[1] = '\n';
	snprintf(big + TLOG_NOTE_MAX - 20, 40, "\n\n" DASH " k " SIG_B64 "\n");
	assert_int_equal(note_parse_str(big, &n), ERR_TOO_LARGE);

	/* A signature of TLOG_SIG_MAX bytes parses, one more does not. */
	for (r = 0; r <= 1; r++) {
		uint8_t raw[4 + TLOG_SIG_MAX + 1];
		char *b64;

		memset(raw, 0x42, sizeof(raw));
		assert_int_equal(b64std_encode(raw, 4 + TLOG_SIG_MAX +
		    (size_t)r, &b64), 0);
		snprintf(sig, sizeof(sig), "t\n\n" DASH " k %s\n", b64);
		free(b64);
		assert_int_equal(note_parse_str(sig, &n),
		    r == 0 ? 0 : ERR_TOO_LARGE);
	}
	/* A name of TLOG_NAME_MAX bytes parses, one more does not. */
	for (r = 0; r <= 1; r++) {
		o = (size_t)snprintf(sig, sizeof(sig), "t\n\n" DASH " ");
		memset(sig + o, 'n', TLOG_NAME_MAX + (size_t)r);
		o += TLOG_NAME_MAX + (size_t)r;
		snprintf(sig + o, sizeof(sig) - o, " " SIG_B64 "\n");
		assert_int_equal(note_parse_str(sig, &n),
		    r == 0 ? 0 : ERR_FORMAT);
	}
}

static void
test_sigline(void **state)
{
	struct tlog_sigline sl;
	struct err_ctx e;
	const char *s = DASH " k " SIG_B64 "\n";

	err_clear(&e);
	assert_int_equal(tlog_sigline_parse(s, strlen(s), &sl, &e), 0);
	assert_string_equal(sl.name, "k");
	assert_int_equal(sl.key_id, 0x01020304);
	assert_int_equal(sl.sig_len, 5);
	/* Without its newline, or cut anywhere, it is refused. */
	assert_int_equal(tlog_sigline_parse(s, strlen(s) - 1, &sl, &e),
	    ERR_FORMAT);
	assert_int_equal(tlog_sigline_parse(s, 3, &sl, NULL), ERR_FORMAT);
	assert_int_equal(tlog_sigline_parse(s, 0, &sl, NULL), ERR_FORMAT);
	assert_int_equal(tlog_sigline_parse(s + 1, strlen(s) - 1, &sl, NULL),
	    ERR_FORMAT);
	s = DASH " k " SIG_B64 "\n" DASH " k " SIG_B64 "\n";
	assert_int_equal(tlog_sigline_parse(s, strlen(s), &sl, NULL),
	    ERR_FORMAT);
	assert_true(strlen(err_msg(&e)) > 0);
}

static void
test_note_add_sig(void **state)
{
	struct tlog_sigline sl;
	struct tlog_note n;
	size_t i;

	assert_int_equal(note_parse_str("t\n\n" DASH " a " SIG_B64 "\n", &n),
	    0);
	memset(&sl, 0, sizeof(sl));
	strcpy(sl.name, "a");
	sl.key_id = 0x01020304;
	sl.sig_len = 2;
	sl.sig[0] = 9;
	/* Same name and key id: replaced. */
	assert_int_equal(tlog_note_add_sig(&n, &sl), 0);
	assert_int_equal(n.nsig, 1);
	assert_int_equal(n.sig[0].sig_len, 2);
	/* Another key id: appended. */
	sl.key_id = 7;
	assert_int_equal(tlog_note_add_sig(&n, &sl), 0);
	assert_int_equal(n.nsig, 2);
	for (i = 2; i < TLOG_SIGS_MAX; i++) {
		sl.key_id = (uint32_t)(100 + i);
		assert_int_equal(tlog_note_add_sig(&n, &sl), 0);
	}
	assert_int_equal(n.nsig, TLOG_SIGS_MAX);
	sl.key_id = 99;
	assert_int_equal(tlog_note_add_sig(&n, &sl), ERR_TOO_LARGE);
	sl.key_id = 7;
	assert_int_equal(tlog_note_add_sig(&n, &sl), 0);
	/* Lines that could not be written. */
	n.nsig = 1;
	strcpy(sl.name, "a b");
	assert_int_equal(tlog_note_add_sig(&n, &sl), ERR_INVALID_ARG);
	strcpy(sl.name, "a");
	sl.sig_len = 0;
	assert_int_equal(tlog_note_add_sig(&n, &sl), ERR_INVALID_ARG);
	sl.sig_len = TLOG_SIG_MAX + 1;
	assert_int_equal(tlog_note_add_sig(&n, &sl), ERR_INVALID_ARG);
}

/* --- verifier keys --- */

static void
test_vkey_cosigner(void **state)
{
	char s[2 * TLOG_VKEY_MAX], t[2 * TLOG_VKEY_MAX];
	struct tlog_vkey k, p;
	struct err_ctx e;
	EVP_PKEY *priv, *ec;
	char *plus;

	priv = ed25519_generate();
	err_clear(&e);
	assert_int_equal(tlog_vkey_cosigner("witness.example/w1", priv, &k,
	    &e), 0);
	assert_int_equal(k.type, TLOG_SIGTYPE_COSIG);
	assert_int_equal(k.key_len, 32);
	assert_int_equal(k.key_id, tlog_key_id("witness.example/w1", 0x04,
	    k.key, 32));
	assert_int_equal(tlog_vkey_format(&k, s, sizeof(s)), 0);
	assert_int_equal(tlog_vkey_parse(s, &p, &e), 0);
	assert_string_equal(p.name, k.name);
	assert_int_equal(p.key_id, k.key_id);
	assert_int_equal(p.type, k.type);
	assert_memory_equal(p.key, k.key, 32);
	assert_int_equal(tlog_vkey_format(&k, s, 20), ERR_TOO_LARGE);

	/* A changed key id, name or key breaks the check. */
	assert_int_equal(tlog_vkey_format(&k, s, sizeof(s)), 0);
	plus = strchr(s, '+');
	strcpy(t, s);
	t[plus - s + 1] = t[plus - s + 1] == '0' ? '1' : '0';
	assert_int_equal(tlog_vkey_parse(t, &p, NULL), ERR_FORMAT);
	strcpy(t, s);
	t[0] = 'W';
	assert_int_equal(tlog_vkey_parse(t, &p, NULL), ERR_FORMAT);
	strcpy(t, s);
	t[plus - s + 12] = t[plus - s + 12] == 'A' ? 'B' : 'A';
	assert_int_equal(tlog_vkey_parse(t, &p, NULL), ERR_FORMAT);

	/* Bad names and keys. */
	assert_int_equal(tlog_vkey_cosigner("", priv, &k, NULL),
	    ERR_INVALID_ARG);
	assert_int_equal(tlog_vkey_cosigner("a b", priv, &k, NULL),
	    ERR_INVALID_ARG);
	assert_int_equal(tlog_vkey_cosigner("a+b", priv, &k, NULL),
	    ERR_INVALID_ARG);
	assert_int_equal(crypto_ec_generate(&ec), 0);
	assert_int_equal(tlog_vkey_cosigner("w", ec, &k, NULL),
	    ERR_INVALID_ARG);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(priv);
}

static void
test_vkey_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"PeterNeumann",
		"PeterNeumann+c74f20a3",
		"PeterNeumann+c74f20a3+",
		"+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
		"PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
		"PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
		"PeterNeumann+c74f20a30+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
		"PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
		"Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
		"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
		"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW ",
		"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",
		"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",
		"PeterNeumann+c74f20a3+ARpc",
		"PeterNeumann+c74f20a3+AQ==",
		"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
		"x+00000000+AgAA",                      /* 0x02 not an SPKI */
	};
	char big[3 * TLOG_VKEY_MAX];
	struct tlog_vkey k;
	size_t i;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = tlog_vkey_parse(bad[i], &k, NULL);
		if (r != ERR_FORMAT && r != ERR_TOO_LARGE)
			fail_msg("vkey %zu accepted (%d): %s", i, r, bad[i]);
	}
	/* Unknown signature types. */
	assert_int_equal(tlog_vkey_parse("x+00000000+BQAA", &k, NULL),
	    ERR_UNSUPPORTED);
	memset(big, 'A', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "n+00000000+", 11);
	assert_int_equal(tlog_vkey_parse(big, &k, NULL), ERR_TOO_LARGE);
}

/* --- the log's signature --- */

static int
sign_with(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	(void)e;
	return crypto_ecdsa_sign(arg, digest, sig);
}

static int
sign_fails(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	(void)arg;
	(void)digest;
	(void)sig;
	return err_set(e, ERR_TOKEN, "token went away");
}

static void
make_log_vkey(EVP_PKEY *key, const char *name, struct tlog_vkey *k)
{
	uint8_t *spki, h[32];
	size_t spki_len;
	struct err_ctx e;

	assert_int_equal(crypto_spki_export(key, &spki, &spki_len), 0);
	err_clear(&e);
	assert_int_equal(tlog_vkey_log(name, spki, spki_len, k, &e), 0);
	assert_int_equal(crypto_sha256(spki, spki_len, h), 0);
	/* The C2SP key id of ECDSA keys: the hash of the SPKI. */
	assert_int_equal(k->key_id, (uint32_t)h[0] << 24 |
	    (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]);
	assert_int_equal(k->type, TLOG_SIGTYPE_ECDSA);
	free(spki);
}

static void
test_log_signature(void **state)
{
	char text[256], vs[2 * TLOG_VKEY_MAX], *out;
	struct tlog_vkey log, other, parsed;
	struct tlog_checkpoint c;
	struct tlog_note n, m;
	EVP_PKEY *key, *key2;
	struct err_ctx e;
	size_t len;

	assert_int_equal(crypto_ec_generate(&key), 0);
	assert_int_equal(crypto_ec_generate(&key2), 0);
	make_log_vkey(key, "devid/abc", &log);
	make_log_vkey(key2, "devid/abc", &other);

	/* The vkey of a log round-trips through its string. */
	assert_int_equal(tlog_vkey_format(&log, vs, sizeof(vs)), 0);
	err_clear(&e);
	assert_int_equal(tlog_vkey_parse(vs, &parsed, &e), 0);
	assert_int_equal(parsed.key_id, log.key_id);
	assert_int_equal(parsed.key_len, log.key_len);
	assert_memory_equal(parsed.key, log.key, log.key_len);

	memset(&c, 0, sizeof(c));
	strcpy(c.origin, "devid/abc");
	c.size = 42;
	memset(c.root, 7, 32);
	assert_int_equal(tlog_checkpoint_format(&c, text, sizeof(text), &len),
	    0);
	memset(&n, 0, sizeof(n));
	memcpy(n.text, text, len + 1);
	n.text_len = len;
	err_clear(&e);
	assert_int_equal(tlog_note_sign_log(&n, &log, sign_with, key, &e), 0);
	assert_int_equal(n.nsig, 1);
	assert_int_equal(n.sig[0].key_id, log.key_id);
	assert_string_equal(n.sig[0].name, "devid/abc");
	assert_int_equal(tlog_note_verify_log(&n, &log, &e), 0);

	/* Through the wire format and back. */
	assert_int_equal(tlog_note_format(&n, &out, &len), 0);
	assert_int_equal(tlog_note_parse(out, len, &m, &e), 0);
	free(out);
	assert_int_equal(tlog_note_verify_log(&m, &log, &e), 0);

	/* Another key: no line for it; its key id forced: no match. */
	assert_int_equal(tlog_note_verify_log(&m, &other, NULL),
	    ERR_NOT_FOUND);
	other.key_id = log.key_id;
	err_clear(&e);
	assert_int_equal(tlog_note_verify_log(&m, &other, &e), ERR_SIGNATURE);
	/* A changed text or signature. */
	m.text[m.text_len - 2] ^= 1;
	assert_int_equal(tlog_note_verify_log(&m, &log, NULL), ERR_SIGNATURE);
	m.text[m.text_len - 2] ^= 1;
	m.sig[0].sig[m.sig[0].sig_len - 1] ^= 1;
	assert_int_equal(tlog_note_verify_log(&m, &log, NULL), ERR_SIGNATURE);
	m.sig[0].sig[m.sig[0].sig_len - 1] ^= 1;
	m.sig[0].sig_len--;
	assert_int_equal(tlog_note_verify_log(&m, &log, NULL), ERR_SIGNATURE);
	m.sig[0].sig_len++;
	assert_int_equal(tlog_note_verify_log(&m, &log, NULL), 0);

	/* A failing signer's error comes back. */
	n.nsig = 0;
	err_clear(&e);
	assert_int_equal(tlog_note_sign_log(&n, &log, sign_fails, NULL, &e),
	    ERR_TOKEN);
	assert_non_null(strstr(err_msg(&e), "token went away"));
	assert_int_equal(n.nsig, 0);

	/* Keys that are not P-256 SPKIs. */
	assert_int_equal(tlog_vkey_log("x", (const uint8_t *)"abc", 3, &log,
	    NULL), ERR_INVALID_ARG);
	assert_int_equal(tlog_vkey_log("a b", parsed.key, parsed.key_len,
	    &log, NULL), ERR_INVALID_ARG);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
}

/* --- cosignatures --- */

static void
test_cosignature(void **state)
{
	struct tlog_vkey k, k2, kx;
	struct tlog_sigline sl;
	struct tlog_note n, m;
	EVP_PKEY *priv, *priv2;
	struct err_ctx e;
	uint64_t t = 0;
	size_t len;
	char *out;

	priv = ed25519_generate();
	priv2 = ed25519_generate();
	assert_int_equal(tlog_vkey_cosigner("w1", priv, &k, NULL), 0);
	assert_int_equal(tlog_vkey_cosigner("w2", priv2, &k2, NULL), 0);
	assert_int_equal(note_parse_str(SOFA_TEXT "\n" SOFA_SIG, &n), 0);

	err_clear(&e);
	assert_int_equal(tlog_cosign(n.text, n.text_len, priv, &k,
	    UINT64_C(1764401000), &sl, &e), 0);
	assert_int_equal(sl.sig_len, TLOG_COSIG_LEN);
	assert_int_equal(sl.key_id, k.key_id);
	assert_string_equal(sl.name, "w1");
	assert_int_equal(tlog_note_add_sig(&n, &sl), 0);
	assert_int_equal(tlog_cosign(n.text, n.text_len, priv2, &k2,
	    UINT64_C(0xfffffffffffffff0), &sl, &e), 0);
	assert_int_equal(tlog_note_add_sig(&n, &sl), 0);

	/* Both verify, also after the wire format. */
	assert_int_equal(tlog_note_format(&n, &out, &len), 0);
	assert_int_equal(tlog_note_parse(out, len, &m, &e), 0);
	free(out);
	assert_int_equal(m.nsig, 3);
	assert_int_equal(tlog_cosig_verify(&m, &k, &t, &e), 0);
	assert_true(t == UINT64_C(1764401000));
	assert_int_equal(tlog_cosig_verify(&m, &k2, &t, &e), 0);
	assert_true(t == UINT64_C(0xfffffffffffffff0));

	/* A changed byte of the text. */
	n = m;
	n.text[3] ^= 0x20;
	assert_int_equal(tlog_cosig_verify(&n, &k, &t, NULL), ERR_SIGNATURE);
	/* A changed timestamp. */
	n = m;
	n.sig[1].sig[7] ^= 1;
	assert_int_equal(tlog_cosig_verify(&n, &k, &t, NULL), ERR_SIGNATURE);
	/* A changed signature byte. */
	n = m;
	n.sig[1].sig[40] ^= 0x80;
	assert_int_equal(tlog_cosig_verify(&n, &k, &t, NULL), ERR_SIGNATURE);
	/* A changed key id or name: no line of that key any more. */
	n = m;
	n.sig[1].key_id ^= 1;
	assert_int_equal(tlog_cosig_verify(&n, &k, &t, NULL), ERR_NOT_FOUND);
	n = m;
	strcpy(n.sig[1].name, "w3");
	assert_int_equal(tlog_cosig_verify(&n, &k, &t, NULL), ERR_NOT_FOUND);
	/* A vkey with another name but the same key and a forced key id:
	 * the name is not signed, but the key id binds it, so the line is
	 * found and verifies only for the original vkey. */
	kx = k;
	strcpy(kx.name, "w9");
	assert_int_equal(tlog_cosig_verify(&m, &kx, &t, NULL), ERR_NOT_FOUND);
	/* The line of k under k2's key. */
	kx = k2;
	strcpy(kx.name, "w1");
	kx.key_id = k.key_id;
	assert_int_equal(tlog_cosig_verify(&m, &kx, &t, NULL), ERR_SIGNATURE);
	/* A line of the wrong length. */
	n = m;
	n.sig[1].sig_len = 71;
	assert_int_equal(tlog_cosig_verify(&n, &k, &t, NULL), ERR_SIGNATURE);
	/* The checkpoint's own line is not a cosignature. */
	assert_int_equal(n.sig[0].sig_len, 64);

	/* Signing with a key that is not the vkey's. */
	assert_int_equal(tlog_cosign(m.text, m.text_len, priv2, &k, 1, &sl,
	    NULL), ERR_WRONG_KEY);
	assert_int_equal(tlog_cosign(m.text, m.text_len - 1, priv, &k, 1, &sl,
	    NULL), ERR_INVALID_ARG);
	kx = k;
	kx.type = TLOG_SIGTYPE_ED25519;
	assert_int_equal(tlog_cosign(m.text, m.text_len, priv, &kx, 1, &sl,
	    NULL), ERR_INVALID_ARG);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(priv2);
}

/* --- witness requests and JSON proofs --- */

static void
test_witness_req(void **state)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t got[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	const char *note = SOFA_TEXT "\n" SOFA_SIG;
	size_t i, n, off, len;
	struct err_ctx e;
	uint64_t old;
	char *out;

	for (i = 0; i < MERKLE_PROOF_MAX; i++)
		memset(proof[i], (int)i, MERKLE_HASH_LEN);
	/* 0, 1 and 63 hashes. */
	for (i = 0; i < 3; i++) {
		size_t cnt = i == 0 ? 0 : i == 1 ? 1 : 63;

		assert_int_equal(tlog_witness_req_format(cnt * 1000, proof,
		    cnt, note, strlen(note), &out, &len), 0);
		assert_int_equal(len, strlen(out));
		err_clear(&e);
		assert_int_equal(tlog_witness_req_parse(out, len, &old, got,
		    &n, &off, &e), 0);
		assert_true(old == cnt * 1000);
		assert_int_equal(n, cnt);
		if (cnt > 0)
			assert_memory_equal(got, proof, cnt * MERKLE_HASH_LEN);
		assert_string_equal(out + off, note);
		free(out);
	}
	assert_int_equal(tlog_witness_req_format(5, proof, 64, note,
	    strlen(note), &out, &len), ERR_INVALID_ARG);
	assert_int_equal(tlog_witness_req_format(UINT64_C(1) << 63, proof, 1,
	    note, strlen(note), &out, &len), ERR_INVALID_ARG);

	/* The C2SP example shape. */
	assert_int_equal(tlog_witness_req_parse("old 0\n\n" SOFA_TEXT "\n"
	    SOFA_SIG, strlen("old 0\n\n" SOFA_TEXT "\n" SOFA_SIG), &old, got,
	    &n, &off, &e), 0);
	assert_true(old == 0);
	assert_int_equal(n, 0);
	assert_int_equal(off, 7);
}

static void
test_witness_req_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"old 5",
		"old 5\n",                    /* no empty line */
		"old 5\n" ROOT_B64 "\n",
		"old  5\n\nnote",
		"old 05\n\nnote",             /* leading zero */
		"old 00\n\nnote",
		"old -1\n\nnote",
		"old +1\n\nnote",
		"old 1 \n\nnote",
		"old \n\nnote",
		"old\n\nnote",
		"Old 1\n\nnote",
		"new 1\n\nnote",
		"\nold 1\n\nnote",
		"old 9223372036854775808\n\nnote", /* 2^63 */
		"old 18446744073709551616\n\nnote",
		"old 1\n" "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n\nn",
		"old 1\n" "CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n\nn",
		"old 1\n" "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n\nn",
		"old 1\n" "Zm9v\n\nn",
		"old 1\n" ROOT_B64 " \n\nn",
		"old 1\n " ROOT_B64 "\n\nn",
		"old 1\r\n\nnote",
	};
	uint8_t got[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	char big[80 * MERKLE_PROOF_MAX];
	size_t i, n, off, o;
	uint64_t old;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = tlog_witness_req_parse(bad[i], strlen(bad[i]), &old, got,
		    &n, &off, NULL);
		if (r != ERR_FORMAT && r != ERR_TOO_LARGE)
			fail_msg("request %zu accepted (%d): %s", i, r, bad[i]);
	}
	assert_int_equal(tlog_witness_req_parse("old 9223372036854775808\n\nn",
	    26, &old, got, &n, &off, NULL), ERR_TOO_LARGE);
	assert_int_equal(tlog_witness_req_parse("old 9223372036854775807\n\nn",
	    26, &old, got, &n, &off, NULL), 0);
	assert_true(old == UINT64_C(9223372036854775807));
	/* 63 proof lines parse, 64 do not. */
	o = (size_t)snprintf(big, sizeof(big), "old 1\n");
	for (i = 0; i < 63; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, ROOT_B64 "\n");
	snprintf(big + o, sizeof(big) - o, "\nnote");
	assert_int_equal(tlog_witness_req_parse(big, strlen(big), &old, got,
	    &n, &off, NULL), 0);
	assert_int_equal(n, 63);
	o += (size_t)snprintf(big + o, sizeof(big) - o, ROOT_B64 "\n");
	snprintf(big + o, sizeof(big) - o, "\nnote");
	assert_int_equal(tlog_witness_req_parse(big, strlen(big), &old, got,
	    &n, &off, NULL), ERR_TOO_LARGE);
}

static int
proof_str(const char *s, uint8_t proof[][MERKLE_HASH_LEN], size_t *n)
{
	json_error_t jerr;
	json_t *j;
	int r;

	j = json_loads(s, 0, &jerr);
	r = tlog_proof_from_json(j, proof, n, NULL);
	json_decref(j);
	return r;
}

static void
test_proof_json(void **state)
{
	static const char *const bad[] = {
		"{}",
		"\"abc\"",
		"[1]",
		"[null]",
		"[\"\"]",
		"[\"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\"]",
		"[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\"]",
		"[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2\"]",
		"[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2J\"]",
		"[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2IA\"]",
		"[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I\", 5]",
		"[[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I\"]]",
	};
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	char big[64 * (MERKLE_PROOF_MAX + 2)];
	size_t i, n = 99, o;

	assert_int_equal(proof_str("[]", proof, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(proof_str("[\"CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2j"
	    "xq2I\", \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]", proof,
	    &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(proof[0][0], 0x0a);
	assert_int_equal(proof[0][31], 0x62);
	assert_int_equal(proof[1][0], 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (proof_str(bad[i], proof, &n) != ERR_FORMAT)
			fail_msg("proof %zu accepted: %s", i, bad[i]);
	assert_int_equal(tlog_proof_from_json(NULL, proof, &n, NULL),
	    ERR_FORMAT);
	/* MERKLE_PROOF_MAX hashes parse, one more does not. */
	o = (size_t)snprintf(big, sizeof(big), "[");
	for (i = 0; i < MERKLE_PROOF_MAX; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"%s\"",
		    i ? "," : "", "CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I");
	snprintf(big + o, sizeof(big) - o, "]");
	assert_int_equal(proof_str(big, proof, &n), 0);
	assert_int_equal(n, MERKLE_PROOF_MAX);
	snprintf(big + o, sizeof(big) - o, ",\"%s\"]",
	    "CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I");
	assert_int_equal(proof_str(big, proof, &n), ERR_TOO_LARGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checkpoint_example),
		cmocka_unit_test(test_checkpoint_roundtrip),
		cmocka_unit_test(test_checkpoint_rejects),
		cmocka_unit_test(test_note_examples),
		cmocka_unit_test(test_note_roundtrip),
		cmocka_unit_test(test_note_rejects),
		cmocka_unit_test(test_sigline),
		cmocka_unit_test(test_note_add_sig),
		cmocka_unit_test(test_vkey_cosigner),
		cmocka_unit_test(test_vkey_rejects),
		cmocka_unit_test(test_log_signature),
		cmocka_unit_test(test_cosignature),
		cmocka_unit_test(test_witness_req),
		cmocka_unit_test(test_witness_req_rejects),
		cmocka_unit_test(test_proof_json),
		cmocka_unit_test(test_leaf_hash),
	};

	return cmocka_run_group_tests_name("tlognote", tests, NULL, NULL);
}
