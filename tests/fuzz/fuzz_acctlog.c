/*
 * fuzz_acctlog.c - libFuzzer harness for the account-log and device-record
 * parsers and the log verifier.
 *
 * Every input is offered to each parser in turn:
 *  - the log response of GET /v1/accounts/{a}/log, one JSON object
 *        { "events": [ event, ... ], "head": { signed head } }
 *    (acctlog_response_parse); when it parses, it is verified against a
 *    fixed state (the empty log of alice@example.org under a fixed
 *    directory key) and, if that succeeds, verified once more from the
 *    resulting state;
 *  - a signed head on its own (acctlog_head_parse), then its signature;
 *  - a device record (devrec_parse), then devrec_verify(), and an
 *    encode/parse round trip that must give the same record back;
 *  - a single event and a saved state (from one JSON load).
 * Nothing may crash, leak or trip a sanitizer, whatever the input.
 *
 * The directory key is derived from a fixed scalar so that the seed corpus
 * in tests/fuzz/corpus/acctlog (signed with the same key) reaches the
 * deepest checks.  Heads are judged at a fixed time FUZZ_NOW.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ACCOUNT "alice@example.org"
#define FUZZ_NOW 1764401000ULL
#define FUZZ_MAX_STALE 900ULL

static EVP_PKEY *dir_key;
static char dir_id[DEVREC_ID_HEX_LEN + 1];

/* The directory key: scalar 1, 2, ..., 32 (also used by the corpus
 * generator).  Made once, kept for the life of the process. */
static void
fuzz_init(void)
{
	uint8_t scalar[CRYPTO_P256_SCALAR_LEN];
	size_t i;

	if (dir_key != NULL)
		return;
	for (i = 0; i < sizeof(scalar); i++)
		scalar[i] = (uint8_t)(i + 1);
	if (crypto_ec_from_scalar(scalar, &dir_key) != 0 ||
	    acctlog_directory_id(dir_key, dir_id) != 0)
		abort();
}

static void
fuzz_response(const char *s, size_t len)
{
	struct acctlog_response *resp = NULL;
	struct acctlog_state st;
	struct acctlog_evidence ev;
	struct err_ctx e;

	err_clear(&e);
	if (acctlog_response_parse(s, len, &resp, &e) != 0)
		return;
	(void)acctlog_head_verify(&resp->head, dir_key, NULL, NULL);
	if (acctlog_state_init(&st, FUZZ_ACCOUNT, dir_id, NULL) != 0)
		abort();
	err_clear(&e);
	if (acctlog_verify_update(&st, resp->events, resp->n_events,
	    &resp->head, dir_key, FUZZ_NOW, FUZZ_MAX_STALE, &ev, &e) == 0) {
		/* Verified: the state is at the head and repeating the
		 * update changes nothing. */
		if (st.seq != resp->head.seq ||
		    memcmp(st.hash, resp->head.hash, 32) != 0 ||
		    ev.n_applied != resp->n_events)
			abort();
		if (acctlog_verify_update(&st, resp->events, resp->n_events,
		    &resp->head, dir_key, FUZZ_NOW, FUZZ_MAX_STALE, &ev,
		    NULL) != 0 || ev.n_applied != 0)
			abort();
	} else if (st.seq != 0 || st.n_devices != 0 || st.has_head) {
		/* A failed update must leave the state untouched. */
		abort();
	}
	acctlog_state_clear(&st);
	acctlog_response_free(resp);
}

static void
fuzz_head(const char *s, size_t len)
{
	struct acctlog_head h;

	if (acctlog_head_parse(s, len, &h, NULL) != 0)
		return;
	(void)acctlog_head_verify(&h, dir_key, NULL, NULL);
	(void)acctlog_head_verify(&h, dir_key, dir_id, NULL);
}

static void
fuzz_record(const char *s, size_t len)
{
	struct devrec *rec, *back;
	char *text = NULL;

	if ((rec = calloc(2, sizeof(*rec))) == NULL)
		abort();
	back = rec + 1;
	if (devrec_parse(s, len, 0, rec, NULL) != 0)
		goto out;
	(void)devrec_verify(rec, NULL);
	if (devrec_encode(rec, &text, NULL) != 0 ||
	    devrec_parse(text, strlen(text), 0, back, NULL) != 0 ||
	    memcmp(rec, back, sizeof(*rec)) != 0)
		abort();
 out:
	free(text);
	free(rec);
}

static void
fuzz_json(const char *s, size_t len)
{
	struct acctlog_event *ev;
	struct acctlog_state st;
	json_t *obj = NULL;

	if (devrec_json_load(s, len, ACCTLOG_STATE_JSON_MAX, &obj, "input",
	    NULL) != 0)
		return;
	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		abort();
	(void)acctlog_event_from_json(obj, ev, NULL);
	if (acctlog_state_from_json(obj, &st, NULL) == 0) {
		json_t *again = NULL;

		if (acctlog_state_to_json(&st, &again, NULL) != 0)
			abort();
		json_decref(again);
	}
	acctlog_state_clear(&st);
	free(ev);
	json_decref(obj);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	fuzz_init();
	fuzz_response(s, size);
	fuzz_head(s, size);
	fuzz_record(s, size);
	fuzz_json(s, size);
	return 0;
}
