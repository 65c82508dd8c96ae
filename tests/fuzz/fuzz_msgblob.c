/*
 * fuzz_msgblob.c - libFuzzer harness for devid-msg's reader of file
 * references (msg-blob.h: msg_blob_refs_from_json), which reads the
 * "blobs" of the agent's open answer and the pending store's files.
 *
 * The input is JSON text; what parses is handed to the reader.  Nothing
 * may crash, leak or trip a sanitizer, and what it accepts must hold,
 * else the harness aborts:
 *  - 1 to ENV_PAYLOAD_BLOBS_MAX references, each with a 64-digit
 *    lowercase hex hash, a type and a name that msg_file_name_safe()
 *    accepts;
 *  - the references encode as an inner payload (env_payload_encode_full)
 *    and that payload parses back to the same references: the reader
 *    accepts nothing that section 8.2 of docs/protocol.md refuses.
 * msg_blob_json_wipe_keys() runs on every parsed tree.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "envelope.h"
#include "errors.h"
#include "msg-blob.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The accepted refs go through the payload encoder and parser intact. */
static void
check_accepted(const struct env_blob_ref *refs, size_t n)
{
	struct env_payload pl, back;
	struct err_ctx e;
	uint8_t *enc = NULL;
	size_t len = 0, i;

	if (n < 1 || n > ENV_PAYLOAD_BLOBS_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (!hex_text_valid(refs[i].hash, 64) || refs[i].type == NULL ||
		    !msg_file_name_safe(refs[i].name))
			abort();
	memset(&pl, 0, sizeof(pl));
	pl.type = (char *)"text/plain; charset=utf-8";
	pl.body = (uint8_t *)"";
	pl.blobs = (struct env_blob_ref *)refs;
	pl.n_blobs = n;
	err_clear(&e);
	if (env_payload_encode_full(&pl, &enc, &len, &e) != 0)
		abort();
	if (env_payload_parse(enc, len, &back, &e) != 0 ||
	    back.n_blobs != n)
		abort();
	for (i = 0; i < n; i++)
		if (strcmp(back.blobs[i].hash, refs[i].hash) != 0 ||
		    back.blobs[i].size != refs[i].size ||
		    memcmp(back.blobs[i].key, refs[i].key, 32) != 0 ||
		    strcmp(back.blobs[i].type, refs[i].type) != 0 ||
		    strcmp(back.blobs[i].name, refs[i].name) != 0)
			abort();
	env_payload_clear(&back);
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env_blob_ref *refs = NULL;
	struct err_ctx e;
	json_t *root;
	size_t n = 0;
	int r;

	root = json_loadb((const char *)data, size,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (root == NULL)
		return 0;
	err_clear(&e);
	r = msg_blob_refs_from_json(root, &refs, &n, &e);
	if (r == 0) {
		check_accepted(refs, n);
		msg_blob_refs_free(refs, n);
	} else if (r != ERR_FORMAT && r != ERR_ALLOC)
		abort();
	else if (refs != NULL)
		abort();
	msg_blob_json_wipe_keys(root);
	json_decref(root);
	return 0;
}
