/*
 * test_wit_witness.c - the add-checkpoint request (witness/wit-witness.c)
 * on a real state directory (witness/wit-store.c), without HTTP.
 */
#include "config.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "merkle.h"
#include "tlog-note.h"
#include "tlog-test-util.h"
#include "wit-key.h"
#include "wit-signer.h"
#include "wit-store.h"
#include "wit-witness.h"

#define ORIGIN "dir.example/log"
#define NOW UINT64_C(1800000000)

struct fx {
	char dir[64];
	char key_path[128];
	EVP_PKEY *key;                /* the witness */
	struct wit_signer *signer;
	EVP_PKEY *log_key, *other_key;
	struct tlog_vkey log_vk, other_vk;
	struct wit_store *store;
	struct wit *w;
	struct ttree t, f;             /* the log and a fork of it */
};

/*
 * The body of a request: old, the proof from old in tree t (none when
 * no_proof), the checkpoint of size of t signed with key as vk.
 */
static char *
request(const struct ttree *t, uint64_t old, uint64_t size, EVP_PKEY *key,
    const struct tlog_vkey *vk, const char *origin, size_t *len)
{
	struct tlog_checkpoint c;
	struct tlog_note *n;
	struct err_ctx e;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	size_t np = 0, note_len = 0;
	char *note = NULL, *body = NULL;

	err_clear(&e);
	n = calloc(1, sizeof(*n));
	assert_non_null(n);
	memset(&c, 0, sizeof(c));
	snprintf(c.origin, sizeof(c.origin), "%s", origin);
	c.size = size;
	assert_int_equal(merkle_root(size, ttree_node, (void *)t, c.root, &e), 0);
	assert_int_equal(tlog_checkpoint_format(&c, n->text, sizeof(n->text),
	    &n->text_len), 0);
	assert_int_equal(tlog_note_sign_log(n, vk, ttree_log_sign, key, &e), 0);
	assert_int_equal(tlog_note_format(n, &note, &note_len), 0);
	if (old <= size)
		assert_int_equal(merkle_consistency_proof(old, size, ttree_node,
		    (void *)t, proof, &np, &e), 0);
	assert_int_equal(tlog_witness_req_format(old,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, np, note, note_len,
	    &body, len), 0);
	free(note);
	free(n);
	return body;
}

static void
submit(struct fx *x, const char *body, size_t len, unsigned int status,
    struct wit_answer *a)
{
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(wit_add_checkpoint(x->w, body, len, NOW, a, &e), 0);
	if (a->status != status)
		fail_msg("status %u, wanted %u: %.*s", a->status, status,
		    (int)a->body_len, a->body != NULL ? a->body : "");
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct err_ctx e;

	err_clear(&e);
	assert_non_null(x);
	snprintf(x->dir, sizeof(x->dir), "/tmp/devid-wit.XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->key_path, sizeof(x->key_path), "%s/key.pem", x->dir);
	assert_int_equal(wit_key_generate(x->key_path, &x->key, &e), 0);
	assert_int_equal(wit_signer_open(x->key_path, NULL, 0, &x->signer,
	    &e), 0);
	assert_int_equal(crypto_ec_generate(&x->log_key), 0);
	assert_int_equal(crypto_ec_generate(&x->other_key), 0);
	ttree_log_vkey(x->log_key, ORIGIN, &x->log_vk);
	ttree_log_vkey(x->other_key, ORIGIN, &x->other_vk);
	ttree_build(&x->t, TTREE_LEAVES_MAX, 0, 0);
	ttree_build(&x->f, TTREE_LEAVES_MAX, 7, 3);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	char cmd[200];

	wit_free(x->w);
	wit_store_close(x->store);
	wit_signer_free(x->signer);
	EVP_PKEY_free(x->key);
	EVP_PKEY_free(x->log_key);
	EVP_PKEY_free(x->other_key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	assert_int_equal(system(cmd), 0);
	free(x);
	return 0;
}

static void
open_witness(struct fx *x)
{
	struct err_ctx e;
	char state[128];

	err_clear(&e);
	snprintf(state, sizeof(state), "%s/state", x->dir);
	assert_int_equal(wit_store_open(state, 0, &x->store, &e), 0);
	assert_int_equal(wit_new("witness.example", x->signer, &x->log_vk, 1,
	    x->store, &x->w, &e), 0);
}

static int
count_evidence(void *arg, const struct wit_evidence *ev)
{
	int *n = arg;

	assert_string_equal(ev->origin, ORIGIN);
	assert_non_null(strstr(ev->held, "\n\n"));
	assert_non_null(strstr(ev->offered, "\n\n"));
	(*n)++;
	return 0;
}

static int
held_size(void *arg, const struct wit_status *st)
{
	*(uint64_t *)arg = st->size;
	return 0;
}

/* The cosignature in a (200) verifies over the note in body. */
static void
cosig_check(struct fx *x, const char *body, size_t len,
    const struct wit_answer *a)
{
	struct tlog_note *n = calloc(1, sizeof(*n));
	struct tlog_sigline sl;
	struct err_ctx e;
	const char *note = strstr(body, "\n\n");
	uint64_t t = 0;

	err_clear(&e);
	assert_non_null(n);
	assert_non_null(note);
	note += 2;
	assert_int_equal(tlog_note_parse(note, len - (size_t)(note - body), n,
	    &e), 0);
	assert_int_equal(tlog_sigline_parse(a->body, a->body_len, &sl, &e), 0);
	assert_int_equal(tlog_note_add_sig(n, &sl), 0);
	assert_int_equal(tlog_cosig_verify(n, wit_vkey(x->w), &t, &e), 0);
	assert_true(t == NOW);
	/* and not under another witness's key */
	n->text[0] ^= 1;
	assert_int_not_equal(tlog_cosig_verify(n, wit_vkey(x->w), &t, &e), 0);
	free(n);
}

static void
test_witness(void **state)
{
	struct fx *x = *state;
	struct wit_answer a;
	struct err_ctx e;
	char *body, *big;
	size_t len;
	uint64_t size = 0;
	int nev = 0;

	memset(&a, 0, sizeof(a));
	err_clear(&e);
	open_witness(x);

	body = request(&x->t, 0, 5, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 200, &a);
	cosig_check(x, body, len, &a);
	wit_answer_clear(&a);
	/* again: the same checkpoint is cosigned again */
	submit(x, body, len, 409, &a);     /* old 0 is stale now */
	assert_string_equal(a.body, "5\n");
	assert_string_equal(a.content_type, "text/x.tlog.size");
	wit_answer_clear(&a);
	free(body);

	body = request(&x->t, 5, 5, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 200, &a);
	wit_answer_clear(&a);
	free(body);

	body = request(&x->t, 5, 12, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 200, &a);
	cosig_check(x, body, len, &a);
	wit_answer_clear(&a);
	free(body);

	/* stale */
	body = request(&x->t, 5, 20, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 409, &a);
	assert_string_equal(a.body, "12\n");
	wit_answer_clear(&a);
	free(body);

	/* forks: the same size, then larger with a proof of its own */
	body = request(&x->f, 12, 12, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 409, &a);
	wit_answer_clear(&a);
	submit(x, body, len, 409, &a);     /* the same evidence only once */
	wit_answer_clear(&a);
	free(body);
	body = request(&x->f, 12, 30, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 422, &a);
	wit_answer_clear(&a);
	free(body);
	/* a smaller size cosigned before, forked */
	body = request(&x->f, 5, 5, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 409, &a);
	wit_answer_clear(&a);
	free(body);
	assert_int_equal(wit_store_evidence(x->store, count_evidence, &nev,
	    &e), 0);
	assert_int_equal(nev, 3);

	/* another key for the origin, an unknown origin */
	body = request(&x->t, 12, 20, x->other_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 403, &a);
	wit_answer_clear(&a);
	free(body);
	body = request(&x->t, 12, 20, x->other_key, &x->other_vk, ORIGIN,
	    &len);
	submit(x, body, len, 403, &a);
	wit_answer_clear(&a);
	free(body);
	body = request(&x->t, 12, 20, x->log_key, &x->log_vk, "other.example",
	    &len);
	submit(x, body, len, 404, &a);
	wit_answer_clear(&a);
	free(body);

	/* malformed, old > size, too large */
	submit(x, "old 1\n\nnot a note\n", 18, 400, &a);
	wit_answer_clear(&a);
	submit(x, "", 0, 400, &a);
	wit_answer_clear(&a);
	body = request(&x->t, 12, 20, x->log_key, &x->log_vk, ORIGIN, &len);
	assert_memory_equal(body, "old 12\n", 7);
	body[4] = '3';                     /* old 32 > 20 */
	submit(x, body, len, 400, &a);
	wit_answer_clear(&a);
	body[4] = '1';
	big = calloc(1, WIT_BODY_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', WIT_BODY_MAX + 1);
	submit(x, big, WIT_BODY_MAX + 1, 413, &a);
	wit_answer_clear(&a);
	free(big);

	/* the extension still works after all that */
	submit(x, body, len, 200, &a);
	wit_answer_clear(&a);
	free(body);
	assert_int_equal(wit_store_status(x->store, held_size, &size, &e), 0);
	assert_true(size == 20);
}

static void
test_state_survives_and_is_locked(void **state)
{
	struct fx *x = *state;
	struct wit_store *second = NULL, *ro = NULL;
	struct wit_answer a;
	struct err_ctx e;
	char path[128];
	struct stat st;
	char *body;
	size_t len;
	uint64_t size = 0;

	memset(&a, 0, sizeof(a));
	err_clear(&e);
	open_witness(x);
	body = request(&x->t, 0, 9, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 200, &a);
	wit_answer_clear(&a);
	free(body);

	snprintf(path, sizeof(path), "%s/state", x->dir);
	assert_int_equal(wit_store_open(path, 0, &second, &e), ERR_EXISTS);
	assert_null(second);
	assert_int_equal(wit_store_open(path, WIT_STORE_READONLY, &ro, &e), 0);
	assert_int_equal(wit_store_status(ro, held_size, &size, &e), 0);
	assert_true(size == 9);
	wit_store_close(ro);
	snprintf(path, sizeof(path), "%s/state/witness.db", x->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	wit_free(x->w);
	x->w = NULL;
	wit_store_close(x->store);
	x->store = NULL;
	open_witness(x);
	body = request(&x->t, 0, 9, x->log_key, &x->log_vk, ORIGIN, &len);
	submit(x, body, len, 409, &a);
	assert_string_equal(a.body, "9\n");
	wit_answer_clear(&a);
	free(body);

	snprintf(path, sizeof(path), "%s/none", x->dir);
	assert_int_equal(wit_store_open(path, WIT_STORE_READONLY, &ro, &e),
	    ERR_NOT_FOUND);
}

static void
test_keys(void **state)
{
	struct fx *x = *state;
	struct err_ctx e;
	EVP_PKEY *k = NULL;
	struct wit_signer *sg = NULL;
	char path[128];

	err_clear(&e);
	assert_int_equal(wit_key_generate(x->key_path, NULL, &e), ERR_EXISTS);
	assert_int_equal(wit_key_load(x->key_path, &k, &e), 0);
	EVP_PKEY_free(k);
	k = NULL;
	chmod(x->key_path, 0644);
	assert_int_equal(wit_key_load(x->key_path, &k, &e), ERR_DENIED);
	snprintf(path, sizeof(path), "%s/p256.pem", x->dir);
	assert_int_equal(crypto_pkey_save_pem(path, x->log_key, &e), 0);
	assert_int_equal(wit_key_load(path, &k, &e), ERR_UNSUPPORTED);
	assert_int_equal(wit_new("w", x->signer, &x->log_vk, 1, NULL,
	    &x->w, &e), ERR_INVALID_ARG);
	assert_null(x->w);
	/* a witness key for a log is refused */
	{
		struct tlog_vkey wv;
		struct wit_store *st = NULL;
		char sp[128];

		snprintf(sp, sizeof(sp), "%s/st", x->dir);
		assert_int_equal(wit_store_open(sp, 0, &st, &e), 0);
		assert_int_equal(tlog_vkey_cosigner("w", x->key, &wv, &e), 0);
		assert_int_equal(wit_new("w", x->signer, &wv, 1, st, &x->w,
		    &e), ERR_INVALID_ARG);
		assert_null(x->w);
		wit_store_close(st);
	}
	/* a file that exists is never overwritten through the signer */
	assert_int_equal(wit_signer_open(x->key_path, NULL, 1, &sg, &e),
	    ERR_EXISTS);
	assert_null(sg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_witness, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_state_survives_and_is_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
