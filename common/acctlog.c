/*
 * acctlog.c - account-log events, signed heads and log responses
 * (PROTOCOL.md section 3): their hashes and signatures, and their strict
 * JSON.  The verified state of an account is in acctlog-state.c (its
 * life and its JSON) and acctlog-verify.c (moving it forward).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "acctlog-private.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "tlog-note.h"
#include "transcript.h"

/* Transcripts and payloads hold at most two SPKIs and short fields. */
#define ACCTLOG_TRANSCRIPT_MAX (4 * CRYPTO_SPKI_MAX)

const uint8_t acctlog_zero_hash[32];

const char *
acctlog_type_name(enum acctlog_type type)
{
	switch (type) {
	case ACCTLOG_ADD:
		return "add";
	case ACCTLOG_REVOKE:
		return "revoke";
	}
	return NULL;
}

/* --- events --- */

/* Appends the payload P of ev (section 3) to b. */
static int
event_payload(const struct acctlog_event *ev, struct buf *b)
{
	const struct devrec *rec = &ev->record;
	struct buf *bt = NULL;
	int r = ERR_INTERNAL;

	switch (ev->type) {
	case ACCTLOG_ADD:
		if ((bt = buf_new(ACCTLOG_TRANSCRIPT_MAX)) == NULL)
			return ERR_ALLOC;
		if ((r = tr_device_binding(bt, rec->account, rec->label,
		    rec->sig_pub, rec->sig_pub_len, rec->enc_alg, rec->enc_pub,
		    rec->enc_pub_len, rec->created)) != 0 ||
		    (r = buf_put_lp(b, buf_ptr(bt), buf_len(bt))) != 0 ||
		    (r = buf_put_lp(b, rec->binding_sig,
		    sizeof(rec->binding_sig))) != 0)
			goto out;
		if (rec->has_endorsement) {
			if ((r = buf_put_lp_str(b, rec->endorsed_by)) != 0 ||
			    (r = buf_put_lp(b, rec->endorsement_sig,
			    sizeof(rec->endorsement_sig))) != 0)
				goto out;
		} else {
			if ((r = buf_put_lp(b, "", 0)) != 0 ||
			    (r = buf_put_lp(b, "", 0)) != 0)
				goto out;
		}
		break;
	case ACCTLOG_REVOKE:
		if ((r = buf_put_lp_str(b, ev->device)) != 0 ||
		    (r = buf_put_lp(b, ev->revoke_sig,
		    sizeof(ev->revoke_sig))) != 0)
			goto out;
		break;
	default:
		r = ERR_INVALID_ARG;
		goto out;
	}
	r = 0;
 out:
	buf_free(bt);
	return r;
}

int
acctlog_event_hash(const struct acctlog_event *ev, uint8_t out[32])
{
	struct buf *p = NULL, *b = NULL;
	const char *type;
	int r = ERR_INTERNAL;

	return_val_if_fail(ev != NULL && out != NULL, ERR_INVALID_ARG);
	if ((type = acctlog_type_name(ev->type)) == NULL)
		return ERR_INVALID_ARG;
	if ((p = buf_new(ACCTLOG_TRANSCRIPT_MAX)) == NULL ||
	    (b = buf_new(ACCTLOG_TRANSCRIPT_MAX + 128)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = event_payload(ev, p)) != 0)
		goto out;
	r = tr_event(b, ev->seq, ev->time, type, ev->prev, buf_ptr(p),
	    buf_len(p));
 out:
	buf_free(p);
	return tr_hash_free(b, r, out);
}

int
acctlog_revoke_digest(const char *account, const char *device_id,
    uint64_t time, uint8_t out[32])
{
	struct buf *b;
	int r;

	return_val_if_fail(account != NULL && device_id != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if ((b = buf_new(1024)) == NULL)
		return ERR_ALLOC;
	r = tr_revoke(b, account, device_id, time);
	return tr_hash_free(b, r, out);
}

int
acctlog_event_add(struct acctlog_event *ev, uint64_t seq, uint64_t time,
    const uint8_t prev[32], const struct devrec *rec, struct err_ctx *e)
{
	struct acctlog_event *tmp = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(ev != NULL && prev != NULL && rec != NULL,
	    ERR_INVALID_ARG);
	if (seq == 0)
		return err_set(e, ERR_INVALID_ARG, "events are numbered from 1");
	if ((tmp = calloc(1, sizeof(*tmp))) == NULL)
		return ERR_ALLOC;
	tmp->seq = seq;
	tmp->time = time;
	tmp->type = ACCTLOG_ADD;
	memcpy(tmp->prev, prev, 32);
	tmp->record = *rec;
	memcpy(tmp->device, rec->device, sizeof(tmp->device));
	if ((r = acctlog_event_hash(tmp, tmp->hash)) != 0) {
		err_set(e, r, "cannot hash add event %llu",
		    (unsigned long long)seq);
		goto out;
	}
	*ev = *tmp;
	r = 0;
 out:
	free(tmp);
	return r;
}

int
acctlog_event_revoke(struct acctlog_event *ev, uint64_t seq, uint64_t time,
    const uint8_t prev[32], const char *device_id,
    const uint8_t revoke_sig[DEVREC_SIG_LEN], struct err_ctx *e)
{
	struct acctlog_event *tmp = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(ev != NULL && prev != NULL && device_id != NULL &&
	    revoke_sig != NULL, ERR_INVALID_ARG);
	if (seq == 0)
		return err_set(e, ERR_INVALID_ARG, "events are numbered from 1");
	if (!devrec_id_valid(device_id))
		return err_set(e, ERR_FORMAT, "revoke: not a device id");
	if ((tmp = calloc(1, sizeof(*tmp))) == NULL)
		return ERR_ALLOC;
	tmp->seq = seq;
	tmp->time = time;
	tmp->type = ACCTLOG_REVOKE;
	memcpy(tmp->prev, prev, 32);
	memcpy(tmp->device, device_id, sizeof(tmp->device));
	memcpy(tmp->revoke_sig, revoke_sig, DEVREC_SIG_LEN);
	if ((r = acctlog_event_hash(tmp, tmp->hash)) != 0) {
		err_set(e, r, "cannot hash revoke event %llu",
		    (unsigned long long)seq);
		goto out;
	}
	*ev = *tmp;
	r = 0;
 out:
	free(tmp);
	return r;
}

/* --- event JSON --- */

int
acctlog_event_to_json(const struct acctlog_event *ev, json_t **out,
    struct err_ctx *e)
{
	json_t *obj = NULL, *rec = NULL;
	const char *type;
	int r = ERR_INTERNAL;

	return_val_if_fail(ev != NULL && out != NULL, ERR_INVALID_ARG);
	if ((type = acctlog_type_name(ev->type)) == NULL)
		return err_set(e, ERR_INVALID_ARG, "event: unknown type");
	if ((obj = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_json_set_u64(obj, "seq", ev->seq)) != 0 ||
	    (r = devrec_json_set_u64(obj, "time", ev->time)) != 0 ||
	    (r = devrec_json_set_str(obj, "type", type)) != 0 ||
	    (r = devrec_json_set_hex(obj, "prev", ev->prev, 32)) != 0)
		goto out;
	if (ev->type == ACCTLOG_ADD) {
		if ((r = devrec_to_json(&ev->record, &rec, e)) != 0)
			goto out;
		r = json_object_set_new(obj, "record", rec) != 0 ?
		    ERR_ALLOC : 0;
		rec = NULL;	/* transferred (even on failure) */
		if (r != 0)
			goto out;
	} else {
		if ((r = devrec_json_set_str(obj, "device", ev->device)) != 0 ||
		    (r = devrec_json_set_b64(obj, "revoke_sig", ev->revoke_sig,
		    sizeof(ev->revoke_sig))) != 0)
			goto out;
	}
	if ((r = devrec_json_set_hex(obj, "hash", ev->hash, 32)) != 0)
		goto out;
	*out = obj;
	obj = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		err_set(e, r, "event %llu: cannot encode: %s",
		    (unsigned long long)ev->seq, err_str(r));
	json_decref(obj);
	return r;
}

static const char *const add_fields[] = {
	"seq", "time", "type", "prev", "record", "hash",
};
static const char *const revoke_fields[] = {
	"seq", "time", "type", "prev", "device", "revoke_sig", "hash",
};

int
acctlog_event_from_json(const json_t *obj, struct acctlog_event *out,
    struct err_ctx *e)
{
	static const char what[] = "event";
	struct acctlog_event *ev = NULL;
	const json_t *rec;
	const char *type;
	int r = ERR_INTERNAL;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_json_str(obj, "type", 8, &type, what, e)) != 0) {
		if (r == ERR_TOO_LARGE)
			r = err_wrap(e, ERR_FORMAT, "event: unknown type");
		goto out;
	}
	if (strcmp(type, "add") == 0) {
		ev->type = ACCTLOG_ADD;
		r = devrec_json_keys(obj, add_fields,
		    sizeof(add_fields) / sizeof(add_fields[0]), what, e);
	} else if (strcmp(type, "revoke") == 0) {
		ev->type = ACCTLOG_REVOKE;
		r = devrec_json_keys(obj, revoke_fields,
		    sizeof(revoke_fields) / sizeof(revoke_fields[0]), what, e);
	} else
		r = err_set(e, ERR_FORMAT, "event: type must be \"add\" or "
		    "\"revoke\"");
	if (r != 0)
		goto out;
	if ((r = devrec_json_u64(obj, "seq", &ev->seq, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, "time", &ev->time, what, e)) != 0 ||
	    (r = devrec_json_hex32(obj, "prev", ev->prev, what, e)) != 0 ||
	    (r = devrec_json_hex32(obj, "hash", ev->hash, what, e)) != 0)
		goto out;
	if (ev->seq == 0) {
		r = err_set(e, ERR_FORMAT, "event: seq 0 does not exist (events "
		    "are numbered from 1)");
		goto out;
	}
	if (ev->type == ACCTLOG_ADD) {
		if ((rec = json_object_get(obj, "record")) == NULL) {
			r = err_set(e, ERR_FORMAT, "event %llu: field \"record\" "
			    "missing", (unsigned long long)ev->seq);
			goto out;
		}
		if ((r = devrec_from_json(rec, &ev->record, e)) != 0)
			goto out;
		memcpy(ev->device, ev->record.device, sizeof(ev->device));
	} else {
		if ((r = devrec_json_id(obj, "device", ev->device, what,
		    e)) != 0 ||
		    (r = devrec_json_b64_exact(obj, "revoke_sig",
		    ev->revoke_sig, DEVREC_SIG_LEN, what, e)) != 0)
			goto out;
	}
	*out = *ev;
	r = 0;
 out:
	free(ev);
	return r;
}

/* --- signed heads --- */

int
acctlog_directory_id(EVP_PKEY *dir_pub, char out[DEVREC_ID_HEX_LEN + 1])
{
	return devrec_pkey_id(dir_pub, out);
}

int
acctlog_head_digest(const struct acctlog_head *h, const char *directory_id,
    uint8_t out[32])
{
	struct buf *b;
	int r;

	return_val_if_fail(h != NULL && directory_id != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if ((b = buf_new(1024)) == NULL)
		return ERR_ALLOC;
	r = tr_head(b, directory_id, h->account, h->seq, h->hash, h->time);
	return tr_hash_free(b, r, out);
}

/* Syntax of a head: valid account, zero hash at seq 0. */
static int
head_check(const struct acctlog_head *h, struct err_ctx *e)
{
	int r;

	if ((r = devrec_account_check(h->account, e)) != 0)
		return err_wrap(e, r, "signed head: %s", err_msg(e));
	if (h->seq == 0 && memcmp(h->hash, acctlog_zero_hash, 32) != 0)
		return err_set(e, ERR_FORMAT, "signed head: seq 0 with a "
		    "non-zero hash");
	return 0;
}

int
acctlog_head_sign(struct acctlog_head *h, const char *directory_id,
    devrec_sign_fn sign, void *sign_arg, struct err_ctx *e)
{
	uint8_t d[32], sig[DEVREC_SIG_LEN];
	int r;

	return_val_if_fail(h != NULL && directory_id != NULL && sign != NULL,
	    ERR_INVALID_ARG);
	if ((r = head_check(h, e)) != 0 ||
	    (r = acctlog_head_digest(h, directory_id, d)) != 0 ||
	    (r = sign(sign_arg, d, sig, e)) != 0)
		return r;
	memcpy(h->sig, sig, sizeof(sig));
	return 0;
}

int
acctlog_head_verify(const struct acctlog_head *h, EVP_PKEY *pinned,
    const char *presented_id, struct err_ctx *e)
{
	char id[DEVREC_ID_HEX_LEN + 1];
	uint8_t d[32];
	int r;

	return_val_if_fail(h != NULL && pinned != NULL, ERR_INVALID_ARG);
	if ((r = acctlog_directory_id(pinned, id)) != 0)
		return err_set(e, r, "cannot compute the directory id");
	if (presented_id != NULL && strcmp(presented_id, id) != 0)
		return err_set(e, ERR_WRONG_KEY, "the directory signs with key "
		    "%.16s..., not with the pinned key %.16s...",
		    presented_id, id);
	if ((r = head_check(h, e)) != 0 ||
	    (r = acctlog_head_digest(h, id, d)) != 0)
		return r;
	if ((r = crypto_ecdsa_verify(pinned, d, h->sig)) != 0) {
		if (r != ERR_SIGNATURE)
			return err_set(e, r, "signed head: verification "
			    "failed: %s", err_str(r));
		return err_set(e, ERR_SIGNATURE, "signed head of %s at seq "
		    "%llu does not verify under the pinned directory key "
		    "%.16s...", h->account, (unsigned long long)h->seq, id);
	}
	return 0;
}

int
acctlog_head_to_json(const struct acctlog_head *h, json_t **out,
    struct err_ctx *e)
{
	json_t *obj;
	int r;

	return_val_if_fail(h != NULL && out != NULL, ERR_INVALID_ARG);
	if ((obj = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_json_set_str(obj, "account", h->account)) != 0 ||
	    (r = devrec_json_set_u64(obj, "seq", h->seq)) != 0 ||
	    (r = devrec_json_set_hex(obj, "hash", h->hash, 32)) != 0 ||
	    (r = devrec_json_set_u64(obj, "time", h->time)) != 0 ||
	    (r = devrec_json_set_b64(obj, "sig", h->sig, sizeof(h->sig))) != 0) {
		json_decref(obj);
		return err_set(e, r, "signed head: cannot encode: %s",
		    err_str(r));
	}
	*out = obj;
	return 0;
}

static const char *const head_fields[] = {
	"account", "seq", "hash", "time", "sig",
};

int
acctlog_head_from_json(const json_t *obj, struct acctlog_head *out,
    struct err_ctx *e)
{
	static const char what[] = "signed head";
	struct acctlog_head h;
	const char *s;
	int r;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	memset(&h, 0, sizeof(h));
	if ((r = devrec_json_keys(obj, head_fields,
	    sizeof(head_fields) / sizeof(head_fields[0]), what, e)) != 0 ||
	    (r = devrec_json_str(obj, "account", ACCTLOG_ACCOUNT_MAX, &s, what,
	    e)) != 0)
		return r;
	memcpy(h.account, s, strlen(s) + 1);
	if ((r = devrec_json_u64(obj, "seq", &h.seq, what, e)) != 0 ||
	    (r = devrec_json_hex32(obj, "hash", h.hash, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, "time", &h.time, what, e)) != 0 ||
	    (r = devrec_json_b64_exact(obj, "sig", h.sig, sizeof(h.sig), what,
	    e)) != 0 ||
	    (r = head_check(&h, e)) != 0)
		return r;
	*out = h;
	return 0;
}

int
acctlog_head_parse(const char *s, size_t len, struct acctlog_head *out,
    struct err_ctx *e)
{
	json_t *obj = NULL;
	int r;

	return_val_if_fail(s != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = devrec_json_load(s, len, ACCTLOG_HEAD_JSON_MAX, &obj,
	    "signed head", e)) != 0)
		return r;
	r = acctlog_head_from_json(obj, out, e);
	json_decref(obj);
	return r;
}

/* --- log responses --- */

void
acctlog_response_free(struct acctlog_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->events);
	free(resp->tlog.checkpoint);
	free(resp);
}

int
acctlog_response_to_json(const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, json_t **out, struct err_ctx *e)
{
	json_t *obj = NULL, *arr = NULL, *v = NULL;
	size_t i;
	int r = ERR_INTERNAL;

	return_val_if_fail((events != NULL || n == 0) && head != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	if (n > ACCTLOG_MAX_EVENTS)
		return err_set(e, ERR_TOO_LARGE, "log response: more than %d "
		    "events", ACCTLOG_MAX_EVENTS);
	if ((obj = json_object()) == NULL || (arr = json_array()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = acctlog_event_to_json(&events[i], &v, e)) != 0)
			goto out;
		if (json_array_append_new(arr, v) != 0) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if (json_object_set_new(obj, "events", arr) != 0) {
		arr = NULL;
		r = ERR_ALLOC;
		goto out;
	}
	arr = NULL;	/* transferred */
	if ((r = acctlog_head_to_json(head, &v, e)) != 0)
		goto out;
	if (json_object_set_new(obj, "head", v) != 0) {
		r = ERR_ALLOC;
		goto out;
	}
	*out = obj;
	obj = NULL;	/* transferred */
	r = 0;
 out:
	json_decref(arr);
	json_decref(obj);
	return r;
}

static const char *const response_fields[] = { "events", "head", "tlog" };
static const char *const tlog_fields[] = {
	"checkpoint", "seq", "index", "proof"
};

/*
 * The "tlog" member t of a log response (PROTOCOL.md section 7.5) into
 * *out, whose checkpoint is a new string; head_seq bounds its seq.
 */
static int
response_tlog(const json_t *t, uint64_t head_seq, struct acctlog_tlog *out,
    struct err_ctx *e)
{
	static const char what[] = "log response \"tlog\"";
	const char *note;
	size_t len;
	int r;

	if (!json_is_object(t))
		return err_set(e, ERR_FORMAT, "%s must be an object", what);
	if ((r = devrec_json_keys(t, tlog_fields, 4, what, e)) != 0)
		return r;
	if ((r = devrec_json_str(t, "checkpoint", TLOG_NOTE_MAX, &note, what,
	    e)) != 0 ||
	    (r = devrec_json_u64(t, "seq", &out->seq, what, e)) != 0 ||
	    (r = devrec_json_u64(t, "index", &out->index, what, e)) != 0)
		return r;
	if (out->seq == 0 || out->seq > head_seq)
		return err_set(e, ERR_FORMAT, "%s: seq %llu is not an event "
		    "up to the signed head (seq %llu)", what,
		    (unsigned long long)out->seq,
		    (unsigned long long)head_seq);
	if (json_object_get(t, "proof") == NULL)
		return err_set(e, ERR_FORMAT, "%s: field \"proof\" missing",
		    what);
	if ((r = tlog_proof_from_json(json_object_get(t, "proof"),
	    out->proof, &out->n_proof, e)) != 0)
		return r;
	len = strlen(note);
	if ((out->checkpoint = malloc(len + 1)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(out->checkpoint, note, len + 1);
	out->checkpoint_len = len;
	out->present = 1;
	return 0;
}

int
acctlog_response_parse(const char *s, size_t len,
    struct acctlog_response **out, struct err_ctx *e)
{
	static const char what[] = "log response";
	struct acctlog_response *resp = NULL;
	json_t *obj = NULL;
	const json_t *arr, *h;
	size_t i, n;
	int r = ERR_INTERNAL;

	return_val_if_fail(s != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = devrec_json_load(s, len, ACCTLOG_RESPONSE_MAX, &obj, what,
	    e)) != 0)
		return r;
	if ((r = devrec_json_keys(obj, response_fields, 3, what, e)) != 0)
		goto out;
	if ((arr = json_object_get(obj, "events")) == NULL ||
	    !json_is_array(arr)) {
		r = err_set(e, ERR_FORMAT, "%s: \"events\" must be an array",
		    what);
		goto out;
	}
	if ((h = json_object_get(obj, "head")) == NULL) {
		r = err_set(e, ERR_FORMAT, "%s: field \"head\" missing", what);
		goto out;
	}
	if ((n = json_array_size(arr)) > ACCTLOG_MAX_EVENTS) {
		r = err_set(e, ERR_TOO_LARGE, "%s: %zu events, more than %d",
		    what, n, ACCTLOG_MAX_EVENTS);
		goto out;
	}
	if ((resp = calloc(1, sizeof(*resp))) == NULL ||
	    (resp->events = calloc(n > 0 ? n : 1,
	    sizeof(*resp->events))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = acctlog_head_from_json(h, &resp->head, e)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = acctlog_event_from_json(json_array_get(arr, i),
		    &resp->events[i], e)) != 0)
			goto out;
		if (i > 0 && resp->events[i].seq != resp->events[i - 1].seq + 1) {
			r = err_set(e, ERR_FORMAT, "%s: event %llu follows "
			    "event %llu", what,
			    (unsigned long long)resp->events[i].seq,
			    (unsigned long long)resp->events[i - 1].seq);
			goto out;
		}
	}
	resp->n_events = n;
	if (n > 0 && resp->events[n - 1].seq > resp->head.seq) {
		r = err_set(e, ERR_FORMAT, "%s: events past the signed head "
		    "(seq %llu)", what, (unsigned long long)resp->head.seq);
		goto out;
	}
	if (json_object_get(obj, "tlog") != NULL &&
	    (r = response_tlog(json_object_get(obj, "tlog"), resp->head.seq,
	    &resp->tlog, e)) != 0)
		goto out;
	*out = resp;
	resp = NULL;	/* transferred */
	r = 0;
 out:
	acctlog_response_free(resp);
	json_decref(obj);
	return r;
}
