/*
 * test_dir_tlog.c - the directory's transparency log: checkpoints made by
 * dir-tlog and the endpoints of docs/protocol.md section 7.5, served by
 * an in-process server (dir-server + dir-api + the SQLite store, what
 * devid-directory runs) on a free loopback port.
 *
 * Everything served is checked with the client-side code alone (merkle.h,
 * tlog-note.h): the checkpoint's signature under the log's key, its root
 * against a full rebuild from the leaves served, every inclusion proof,
 * consistency between two checkpoints, and the "tlog" member of a log
 * read.  Malformed and out-of-range requests are refused with 400 or 404,
 * and witnesses given as options are parsed strictly.  With a witness
 * (devid-witness's own modules, in process, on loopback), checkpoints
 * come back cosigned, and a second directory on another history with the
 * same key gets nothing from it but an evidence record.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "codec.h"
#include "crypto.h"
#include "dir-api.h"
#include "dir-key.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dir-test-util.h"
#include "dir-tlog.h"
#include "dirclient.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"
#include "wit-server.h"
#include "wit-signer.h"
#include "wit-store.h"
#include "wit-witness.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define NDEV 5

struct fx {
	struct tdir d;
	struct dir_tlog *tlog;       /* given to d.api */
	struct tdev dev[NDEV];
};

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct tdir_opts o;
	struct dir_tlog_config tc;
	struct err_ctx e;
	int i;

	assert_non_null(f);
	*state = f;
	err_clear(&e);
	tdir_opts_default(&o);
	dir_api_config_default(&o.api);   /* the server's own defaults */
	assert_int_equal(tdir_open(&f->d, &o), 0);
	dir_tlog_config_default(&tc);
	tc.interval_s = 0;              /* checkpoints only when asked */
	assert_int_equal(dir_tlog_new(&tc, f->d.store, f->d.key, &f->tlog,
	    &e), 0);
	dir_api_set_tlog(&f->d.api, f->tlog);
	assert_int_equal(tdir_serve(&f->d, &o), 0);
	assert_int_equal(f->d.store->ops->account_create(f->d.store, ALICE,
	    "x", now_s(), &e), 0);
	assert_int_equal(f->d.store->ops->account_create(f->d.store, BOB,
	    "x", now_s(), &e), 0);
	for (i = 0; i < NDEV; i++) {
		char label[16];

		snprintf(label, sizeof(label), "d%d", i);
		assert_int_equal(tdev_make(&f->dev[i], i % 2 ? BOB : ALICE,
		    label, now_s()), 0);
	}
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int i;

	/* The log goes after the server and before the store. */
	dir_server_stop(f->d.srv);
	f->d.srv = NULL;
	dir_tlog_free(f->tlog);
	tdir_stop(&f->d);
	for (i = 0; i < NDEV; i++)
		tdev_clear(&f->dev[i]);
	free(f);
	return 0;
}

static void
add(struct fx *f, int i)
{
	struct acctlog_head head;
	struct err_ctx e;
	json_t *evj = NULL;

	err_clear(&e);
	if (dir_api_add_device(&f->d.api, &f->dev[i].rec, &head, &evj, &e) != 0)
		fail_msg("registration: %s", err_msg(&e));
	json_decref(evj);
}

static uint64_t
checkpoint(struct fx *f)
{
	struct err_ctx e;
	uint64_t size = 0;

	err_clear(&e);
	if (dir_tlog_checkpoint_now(f->tlog, &size, &e) != 0)
		fail_msg("checkpoint: %s", err_msg(&e));
	return size;
}

static long
get(struct fx *f, const char *path, json_t **out)
{
	return thttp(f->d.base, "GET", path, NULL, 0, NULL, NULL, NULL, out);
}

/* The served checkpoint, its directory signature checked. */
static void
served(struct fx *f, struct tlog_note *n, struct tlog_checkpoint *cp)
{
	struct tlog_vkey log;
	struct err_ctx e;
	const char *s;
	json_t *o = NULL;

	err_clear(&e);
	assert_int_equal(get(f, "/v1/tlog/checkpoint", &o), 200);
	assert_non_null(s = json_string_value(json_object_get(o,
	    "checkpoint")));
	assert_int_equal(tlog_note_parse(s, strlen(s), n, &e), 0);
	assert_int_equal(tlog_checkpoint_parse(n->text, n->text_len, cp, &e),
	    0);
	assert_int_equal(tlog_vkey_parse(dir_tlog_vkey(f->tlog), &log, &e), 0);
	assert_int_equal(tlog_note_verify_log(n, &log, &e), 0);
	assert_string_equal(cp->origin, dir_tlog_origin(f->tlog));
	json_decref(o);
}

/* The leaf hashes of the first size leaves, as served. */
static uint8_t (*leaves(struct fx *f, uint64_t size))[MERKLE_HASH_LEN]
{
	uint8_t (*h)[MERKLE_HASH_LEN] = calloc(size + 1, MERKLE_HASH_LEN);
	uint8_t ev[32];
	char path[128];
	json_t *o = NULL, *l;
	size_t i;

	assert_non_null(h);
	snprintf(path, sizeof(path), "/v1/tlog/leaves?start=0&end=%llu",
	    (unsigned long long)size);
	assert_int_equal(get(f, path, &o), 200);
	assert_int_equal(json_array_size(json_object_get(o, "leaves")), size);
	json_array_foreach(json_object_get(o, "leaves"), i, l) {
		const char *hex = json_string_value(json_object_get(l,
		    "hash"));

		assert_non_null(hex);
		assert_int_equal(hex_decode(hex, strlen(hex), ev, 32), 0);
		assert_int_equal(tlog_leaf_hash(json_string_value(
		    json_object_get(l, "account")), (uint64_t)json_integer_value(
		    json_object_get(l, "seq")), ev, h[i]), 0);
	}
	json_decref(o);
	return h;
}

static size_t
proof_of(json_t *o, uint8_t proof[][MERKLE_HASH_LEN])
{
	struct err_ctx e;
	size_t n = 0;

	err_clear(&e);
	assert_int_equal(tlog_proof_from_json(json_object_get(o, "proof"),
	    proof, &n, &e), 0);
	return n;
}

static void
test_endpoints(void **state)
{
	struct fx *f = *state;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN], root[32];
	uint8_t (*h)[MERKLE_HASH_LEN];
	struct tlog_checkpoint cp, cp1;
	struct tlog_note n;
	char path[160];
	json_t *o = NULL;
	uint64_t size1, i;
	size_t np;

	/* Nothing published yet. */
	assert_int_equal(get(f, "/v1/tlog/checkpoint", &o), 404);
	json_decref(o);
	o = NULL;
	add(f, 0);
	add(f, 1);
	add(f, 2);
	size1 = checkpoint(f);
	assert_int_equal(size1, 3);
	served(f, &n, &cp1);
	assert_int_equal(cp1.size, 3);
	h = leaves(f, 3);
	assert_int_equal(merkle_root_reference((const uint8_t (*)[32])h, 3,
	    root), 0);
	assert_memory_equal(root, cp1.root, 32);
	free(h);

	add(f, 3);
	add(f, 4);
	assert_int_equal(checkpoint(f), 5);
	served(f, &n, &cp);
	h = leaves(f, 5);
	assert_int_equal(merkle_root_reference((const uint8_t (*)[32])h, 5,
	    root), 0);
	assert_memory_equal(root, cp.root, 32);
	for (i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "/v1/tlog/proof/inclusion?"
		    "index=%llu&size=5", (unsigned long long)i);
		assert_int_equal(get(f, path, &o), 200);
		np = proof_of(o, proof);
		assert_int_equal(merkle_inclusion_verify(i, 5, h[i],
		    (const uint8_t (*)[32])proof, np, cp.root), 0);
		json_decref(o);
		o = NULL;
	}
	assert_int_equal(get(f, "/v1/tlog/proof/consistency?old=3&size=5",
	    &o), 200);
	np = proof_of(o, proof);
	assert_int_equal(merkle_consistency_verify(3, 5, cp1.root, cp.root,
	    (const uint8_t (*)[32])proof, np), 0);
	json_decref(o);
	o = NULL;
	free(h);

	/* Refusals: beyond what is published, malformed, wrong method. */
	assert_int_equal(get(f, "/v1/tlog/proof/inclusion?index=0&size=6",
	    &o), 404);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/proof/inclusion?index=5&size=5",
	    &o), 400);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/proof/inclusion?size=5", &o), 400);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/proof/inclusion?index=x&size=5",
	    &o), 400);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/proof/consistency?old=6&size=5",
	    &o), 400);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/leaves?start=0&end=6", &o), 404);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/leaves?start=2&end=2", &o), 400);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/leaves?start=0&end=1025", &o), 400);
	json_decref(o);
	o = NULL;
	assert_int_equal(get(f, "/v1/tlog/nothing", &o), 404);
	json_decref(o);
	o = NULL;
	assert_int_equal(thttp(f->d.base, "POST", "/v1/tlog/checkpoint", "{}",
	    2, NULL, NULL, NULL, &o), 405);
	json_decref(o);
	o = NULL;

	/* /v1/info names the log. */
	assert_int_equal(get(f, "/v1/info", &o), 200);
	assert_string_equal(json_string_value(json_object_get(o,
	    "tlog_origin")), dir_tlog_origin(f->tlog));
	assert_string_equal(json_string_value(json_object_get(o,
	    "tlog_vkey")), dir_tlog_vkey(f->tlog));
	json_decref(o);
}

/* A log read with tlog=1 proves the account's latest published event. */
static void
test_log_member(void **state)
{
	struct fx *f = *state;
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN], ev[32], leaf[32];
	struct tlog_checkpoint cp;
	struct tlog_note n;
	struct dirc *c = NULL;
	struct err_ctx e;
	char auth[256], path[160];
	json_t *o = NULL, *t, *evs;
	const char *note, *hex;
	size_t np;
	uint64_t seq;

	err_clear(&e);
	add(f, 0);
	add(f, 1);
	add(f, 2);                      /* alice: 1, 2; bob: 1 */
	assert_int_equal(tdir_login(&f->d, &f->dev[0], &c), 0);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    dirc_token(c));
	snprintf(path, sizeof(path), "/v1/accounts/%s/log?since=0&tlog=1",
	    ALICE);
	/* No checkpoint yet: no member, and none without tlog=1. */
	assert_int_equal(thttp(f->d.base, "GET", path, NULL, 0, auth, NULL,
	    NULL, &o), 200);
	assert_null(json_object_get(o, "tlog"));
	json_decref(o);
	o = NULL;
	checkpoint(f);
	snprintf(path, sizeof(path), "/v1/accounts/%s/log?since=0", ALICE);
	assert_int_equal(thttp(f->d.base, "GET", path, NULL, 0, auth, NULL,
	    NULL, &o), 200);
	assert_null(json_object_get(o, "tlog"));
	json_decref(o);
	o = NULL;
	snprintf(path, sizeof(path), "/v1/accounts/%s/log?since=0&tlog=1",
	    ALICE);
	assert_int_equal(thttp(f->d.base, "GET", path, NULL, 0, auth, NULL,
	    NULL, &o), 200);
	assert_non_null(t = json_object_get(o, "tlog"));
	seq = (uint64_t)json_integer_value(json_object_get(t, "seq"));
	assert_int_equal(seq, 2);
	assert_non_null(note = json_string_value(json_object_get(t,
	    "checkpoint")));
	assert_int_equal(tlog_note_parse(note, strlen(note), &n, &e), 0);
	assert_int_equal(tlog_checkpoint_parse(n.text, n.text_len, &cp, &e),
	    0);
	evs = json_object_get(o, "events");
	assert_int_equal(json_array_size(evs), 2);
	assert_non_null(hex = json_string_value(json_object_get(
	    json_array_get(evs, 1), "hash")));
	assert_int_equal(hex_decode(hex, 64, ev, 32), 0);
	assert_int_equal(tlog_leaf_hash(ALICE, seq, ev, leaf), 0);
	np = proof_of(t, proof);
	assert_int_equal(merkle_inclusion_verify((uint64_t)json_integer_value(
	    json_object_get(t, "index")), cp.size, leaf,
	    (const uint8_t (*)[32])proof, np, cp.root), 0);
	/* The proof is for that leaf only. */
	ev[0] ^= 1;
	assert_int_equal(tlog_leaf_hash(ALICE, seq, ev, leaf), 0);
	assert_int_not_equal(merkle_inclusion_verify(
	    (uint64_t)json_integer_value(json_object_get(t, "index")), cp.size,
	    leaf, (const uint8_t (*)[32])proof, np, cp.root), 0);
	json_decref(o);
	o = NULL;
	/* An event after the checkpoint is not claimed. */
	add(f, 4);                      /* alice 3, not published */
	assert_int_equal(thttp(f->d.base, "GET", path, NULL, 0, auth, NULL,
	    NULL, &o), 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o,
	    "tlog"), "seq")), 2);
	json_decref(o);
	dirc_free(c);
}

/* An in-process witness of the fixture's log. */
struct witfx {
	struct wit_signer *signer;
	struct wit_store *store;
	struct wit *w;
	struct wit_server *srv;
	char spec[TLOG_VKEY_MAX * 3];   /* URL,VKEY for --witness */
};

static void
witness_start(struct fx *f, struct witfx *wf, const char *tag)
{
	struct wit_server_config sc;
	struct tlog_vkey log;
	struct err_ctx e;
	char path[512], vkey[TLOG_VKEY_MAX * 2];

	err_clear(&e);
	memset(wf, 0, sizeof(*wf));
	snprintf(path, sizeof(path), "%s/%s.key", f->d.dir, tag);
	assert_int_equal(wit_signer_open(path, NULL, 1, &wf->signer, &e), 0);
	snprintf(path, sizeof(path), "%s/%s.state", f->d.dir, tag);
	assert_int_equal(wit_store_open(path, 0, &wf->store, &e), 0);
	assert_int_equal(tlog_vkey_parse(dir_tlog_vkey(f->tlog), &log, &e), 0);
	assert_int_equal(wit_new("w.example/test", wf->signer, &log, 1,
	    wf->store, &wf->w, &e), 0);
	memset(&sc, 0, sizeof(sc));
	sc.listen = "127.0.0.1:0";
	sc.quiet = 1;
	assert_int_equal(wit_server_start(&sc, wf->w, &wf->srv, &e), 0);
	assert_int_equal(tlog_vkey_format(wit_vkey(wf->w), vkey,
	    sizeof(vkey)), 0);
	snprintf(wf->spec, sizeof(wf->spec), "http://%s,%s",
	    wit_server_address(wf->srv), vkey);
}

static void
witness_stop(struct witfx *wf)
{
	wit_server_stop(wf->srv);
	wit_free(wf->w);
	wit_store_close(wf->store);
	wit_signer_free(wf->signer);
}

static int
count_evidence(void *arg, const struct wit_evidence *ev)
{
	(*(int *)arg)++;
	assert_non_null(strstr(ev->held, "\n\n\xe2\x80\x94 "));
	assert_non_null(strstr(ev->offered, "\n\n\xe2\x80\x94 "));
	return 0;
}

/* A tlog of the fixture's store and key submitting to the witness. */
static struct dir_tlog *
witnessed_log(struct fx *f, struct dir_store *store, const struct witfx *wf)
{
	struct dir_tlog_config tc;
	struct dir_tlog *t = NULL;
	struct err_ctx e;

	err_clear(&e);
	dir_tlog_config_default(&tc);
	tc.interval_s = 0;
	assert_int_equal(dir_tlog_add_witness(&tc, wf->spec, &e), 0);
	assert_int_equal(dir_tlog_new(&tc, store, f->d.key, &t, &e), 0);
	return t;
}

/* Checkpoint now; the number of valid cosignatures of the witness. */
static int
cosigned(struct dir_tlog *t, const struct witfx *wf, uint64_t *size)
{
	struct tlog_note n;
	struct err_ctx e;
	uint64_t sz, ts;
	char *note = NULL;
	int ok;

	err_clear(&e);
	assert_int_equal(dir_tlog_checkpoint_now(t, size, &e), 0);
	assert_int_equal(dir_tlog_latest(t, &sz, &note, &e), 0);
	assert_int_equal(sz, *size);
	assert_int_equal(tlog_note_parse(note, strlen(note), &n, &e), 0);
	ok = tlog_cosig_verify(&n, wit_vkey(wf->w), &ts, &e) == 0;
	free(note);
	return ok;
}

static void
test_witnessed(void **state)
{
	struct fx *f = *state;
	struct witfx wf;
	struct dir_store *other = NULL;
	struct dir_tlog *t, *t2;
	struct err_ctx e;
	char path[512];
	uint64_t size;
	int n_ev = 0;

	err_clear(&e);
	witness_start(f, &wf, "w1");
	t = witnessed_log(f, f->d.store, &wf);
	add(f, 0);
	assert_true(cosigned(t, &wf, &size));
	assert_int_equal(size, 1);
	add(f, 1);
	add(f, 2);
	assert_true(cosigned(t, &wf, &size));
	assert_int_equal(size, 3);
	/* The same tree again: a fresh cosignature. */
	assert_true(cosigned(t, &wf, &size));
	/* A directory restarted knows nothing of the witness's size: the
	 * witness's 409 tells it, and it goes on from there. */
	dir_tlog_free(t);
	t = witnessed_log(f, f->d.store, &wf);
	add(f, 3);
	assert_true(cosigned(t, &wf, &size));
	assert_int_equal(size, 4);
	dir_tlog_free(t);

	/* Another history under the same key: refused, kept as evidence. */
	snprintf(path, sizeof(path), "%s/fork.db", f->d.dir);
	assert_int_equal(dir_store_sqlite_open(path, &other, &e), 0);
	assert_int_equal(other->ops->account_create(other, ALICE, "x",
	    now_s(), &e), 0);
	t2 = witnessed_log(f, other, &wf);
	{
		struct dir_api api2;
		struct dir_api_config cfg;
		struct acctlog_head head;
		json_t *evj = NULL;
		int i;

		dir_api_config_default(&cfg);
		assert_int_equal(dir_api_init(&api2, &cfg, other, f->d.key), 0);
		for (i = 0; i < NDEV; i += 2) {
			assert_int_equal(dir_api_add_device(&api2,
			    &f->dev[i].rec, &head, &evj, &e), 0);
			json_decref(evj);
			evj = NULL;
		}
		dir_api_clear(&api2);
	}
	assert_false(cosigned(t2, &wf, &size));
	assert_int_equal(size, 3);
	assert_int_equal(wit_store_evidence(wf.store, count_evidence, &n_ev,
	    &e), 0);
	assert_true(n_ev >= 1);
	dir_tlog_free(t2);
	dir_store_close(other);
	witness_stop(&wf);
}

/* The --witness and --tlog-origin options are parsed strictly. */
static void
test_options(void **state)
{
	struct dir_tlog_config cfg;
	struct tlog_vkey vk;
	struct err_ctx e;
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *kc;
	char vkey[TLOG_VKEY_MAX * 2], spec[TLOG_VKEY_MAX * 3];

	(void)state;
	err_clear(&e);
	dir_tlog_config_default(&cfg);
	assert_non_null(kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL));
	assert_true(EVP_PKEY_keygen_init(kc) > 0);
	assert_true(EVP_PKEY_keygen(kc, &k) > 0);
	EVP_PKEY_CTX_free(kc);
	assert_int_equal(tlog_vkey_cosigner("w1.example", k, &vk, &e), 0);
	assert_int_equal(tlog_vkey_format(&vk, vkey, sizeof(vkey)), 0);
	snprintf(spec, sizeof(spec), "http://127.0.0.1:9,%s", vkey);
	assert_int_equal(dir_tlog_add_witness(&cfg, spec, &e), 0);
	assert_int_equal(cfg.n_witness, 1);
	assert_string_equal(cfg.witness[0].url, "http://127.0.0.1:9");
	/* twice, no URL, no comma, not a vkey */
	assert_int_equal(dir_tlog_add_witness(&cfg, spec, &e), ERR_CONFIG);
	snprintf(spec, sizeof(spec), ",%s", vkey);
	assert_int_equal(dir_tlog_add_witness(&cfg, spec, &e), ERR_CONFIG);
	assert_int_equal(dir_tlog_add_witness(&cfg, vkey, &e), ERR_CONFIG);
	assert_int_equal(dir_tlog_add_witness(&cfg, "http://x,nokey", &e),
	    ERR_CONFIG);
	assert_int_equal(cfg.n_witness, 1);
	assert_int_equal(dir_tlog_set_origin(&cfg, "dir.example.org/devid",
	    &e), 0);
	assert_int_equal(dir_tlog_set_origin(&cfg, "", &e), ERR_CONFIG);
	assert_int_equal(dir_tlog_set_origin(&cfg, "a b", &e), ERR_CONFIG);
	assert_int_equal(dir_tlog_set_origin(&cfg, "a+b", &e), ERR_CONFIG);
	EVP_PKEY_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_endpoints, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_log_member, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_witnessed, setup,
		    teardown),
		cmocka_unit_test(test_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
