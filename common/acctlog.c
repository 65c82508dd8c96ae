/*
 * acctlog.c - account-log events, signed heads, log responses and the
 * verified state of one account (PROTOCOL.md section 3).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "transcript.h"

/* Transcripts and payloads hold at most two SPKIs and short fields. */
#define ACCTLOG_TRANSCRIPT_MAX (4 * CRYPTO_SPKI_MAX)

static const uint8_t zero_hash[32];

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
	if ((r = event_payload(ev, p)) != 0 ||
	    (r = tr_event(b, ev->seq, ev->time, type, ev->prev, buf_ptr(p),
	    buf_len(p))) != 0 ||
	    (r = tr_hash(b, out)) != 0)
		goto out;
	r = 0;
 out:
	buf_free(p);
	buf_free(b);
	return r;
}

int
acctlog_revoke_digest(const char *account, const char *device_id,
    uint64_t time, uint8_t out[32])
{
	struct buf *b = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(account != NULL && device_id != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if ((b = buf_new(1024)) == NULL)
		return ERR_ALLOC;
	if ((r = tr_revoke(b, account, device_id, time)) != 0 ||
	    (r = tr_hash(b, out)) != 0)
		goto out;
	r = 0;
 out:
	buf_free(b);
	return r;
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
	struct buf *b = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(h != NULL && directory_id != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if ((b = buf_new(1024)) == NULL)
		return ERR_ALLOC;
	if ((r = tr_head(b, directory_id, h->account, h->seq, h->hash,
	    h->time)) != 0 ||
	    (r = tr_hash(b, out)) != 0)
		goto out;
	r = 0;
 out:
	buf_free(b);
	return r;
}

/* Syntax of a head: valid account, zero hash at seq 0. */
static int
head_check(const struct acctlog_head *h, struct err_ctx *e)
{
	int r;

	if ((r = devrec_account_check(h->account, e)) != 0)
		return err_wrap(e, r, "signed head: %s", err_msg(e));
	if (h->seq == 0 && memcmp(h->hash, zero_hash, 32) != 0)
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

static const char *const response_fields[] = { "events", "head" };

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
	if ((r = devrec_json_keys(obj, response_fields, 2, what, e)) != 0)
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
	*out = resp;
	resp = NULL;	/* transferred */
	r = 0;
 out:
	acctlog_response_free(resp);
	json_decref(obj);
	return r;
}

/* --- state --- */

int
acctlog_state_init(struct acctlog_state *st, const char *account,
    const char *directory_id, struct err_ctx *e)
{
	int r;

	return_val_if_fail(st != NULL, ERR_INVALID_ARG);
	memset(st, 0, sizeof(*st));
	if ((r = devrec_account_check(account, e)) != 0)
		return r;
	if (!devrec_id_valid(directory_id))
		return err_set(e, ERR_FORMAT, "directory id is not 64 lowercase "
		    "hex digits");
	memcpy(st->account, account, strlen(account) + 1);
	memcpy(st->directory, directory_id, DEVREC_ID_HEX_LEN + 1);
	return 0;
}

void
acctlog_state_clear(struct acctlog_state *st)
{
	if (st == NULL)
		return;
	free(st->devices);
	free(st->history);
	memset(st, 0, sizeof(*st));
}

/* Copies n elements of size sz into a new array (NULL for n == 0). */
static int
dup_array(void **dst, const void *src, size_t n, size_t sz)
{
	*dst = NULL;
	if (n == 0)
		return 0;
	if ((*dst = calloc(n, sz)) == NULL)
		return ERR_ALLOC;
	memcpy(*dst, src, n * sz);
	return 0;
}

int
acctlog_state_copy(struct acctlog_state *dst, const struct acctlog_state *src)
{
	struct acctlog_state tmp;
	void *dev = NULL, *hist = NULL;

	return_val_if_fail(dst != NULL && src != NULL, ERR_INVALID_ARG);
	if (dup_array(&dev, src->devices, src->n_devices,
	    sizeof(*src->devices)) != 0 ||
	    dup_array(&hist, src->history, src->n_history,
	    sizeof(*src->history)) != 0) {
		free(dev);
		return ERR_ALLOC;
	}
	tmp = *src;
	tmp.devices = dev;
	tmp.history = hist;
	*dst = tmp;
	return 0;
}

const struct acctlog_device *
acctlog_state_find(const struct acctlog_state *st, const char *device_id)
{
	size_t i;

	if (st == NULL || device_id == NULL)
		return NULL;
	for (i = 0; i < st->n_devices; i++) {
		if (strcmp(st->devices[i].rec.device, device_id) == 0)
			return &st->devices[i];
	}
	return NULL;
}

static int
history_append(struct acctlog_state *st, const struct acctlog_event *ev,
    const uint8_t hash[32])
{
	struct acctlog_entry *h, *ent;

	/* Trimmed back to ACCTLOG_HISTORY_MAX after each batch. */
	if ((h = realloc(st->history, (st->n_history + 1) *
	    sizeof(*h))) == NULL)
		return ERR_ALLOC;
	st->history = h;
	ent = &h[st->n_history++];
	memset(ent, 0, sizeof(*ent));
	ent->seq = ev->seq;
	ent->time = ev->time;
	ent->type = ev->type;
	memcpy(ent->device, ev->device, sizeof(ent->device));
	memcpy(ent->hash, hash, 32);
	return 0;
}

static void
history_trim(struct acctlog_state *st)
{
	size_t drop;

	if (st->n_history <= ACCTLOG_HISTORY_MAX)
		return;
	drop = st->n_history - ACCTLOG_HISTORY_MAX;
	memmove(st->history, st->history + drop,
	    ACCTLOG_HISTORY_MAX * sizeof(*st->history));
	st->n_history = ACCTLOG_HISTORY_MAX;
}

/* Checks an add event against st and appends its device. */
static int
apply_add(struct acctlog_state *st, const struct acctlog_event *ev,
    const uint8_t hash[32], struct err_ctx *e)
{
	const struct devrec *rec = &ev->record;
	const struct acctlog_device *by;
	struct acctlog_device *d;
	unsigned long long seq = (unsigned long long)ev->seq;
	int r;

	if ((r = devrec_verify(rec, e)) != 0)
		return err_wrap(e, r, "event %llu: %s", seq, err_msg(e));
	if (strcmp(rec->account, st->account) != 0)
		return err_set(e, ERR_FORMAT, "event %llu adds a device of "
		    "account %s to the log of %s", seq, rec->account,
		    st->account);
	if (strcmp(ev->device, rec->device) != 0)
		return err_set(e, ERR_FORMAT, "event %llu: device field does "
		    "not match the record", seq);
	if (acctlog_state_find(st, rec->device) != NULL)
		return err_set(e, ERR_EXISTS, "event %llu adds device %.16s..., "
		    "which is already active", seq, rec->device);
	if (rec->has_endorsement) {
		if ((by = acctlog_state_find(st, rec->endorsed_by)) == NULL)
			return err_set(e, ERR_NOT_FOUND, "event %llu: endorsed "
			    "by %.16s..., which is not an active device", seq,
			    rec->endorsed_by);
		if ((r = devrec_verify_endorsement(rec, by->rec.sig_pub,
		    by->rec.sig_pub_len, e)) != 0)
			return err_wrap(e, r, "event %llu: %s", seq, err_msg(e));
	}
	if (st->n_devices >= ACCTLOG_MAX_DEVICES)
		return err_set(e, ERR_TOO_LARGE, "event %llu: account has more "
		    "than %d active devices", seq, ACCTLOG_MAX_DEVICES);
	if ((d = realloc(st->devices, (st->n_devices + 1) * sizeof(*d))) == NULL)
		return ERR_ALLOC;
	st->devices = d;
	d = &st->devices[st->n_devices++];
	d->rec = *rec;
	d->add_seq = ev->seq;
	memcpy(d->add_hash, hash, 32);
	return 0;
}

/* Checks a revoke event against st and removes its device. */
static int
apply_revoke(struct acctlog_state *st, const struct acctlog_event *ev,
    struct err_ctx *e)
{
	const struct acctlog_device *target;
	EVP_PKEY *pub = NULL;
	uint8_t d[32];
	size_t i, idx;
	unsigned long long seq = (unsigned long long)ev->seq;
	int r, signed_ok = 0;

	if ((target = acctlog_state_find(st, ev->device)) == NULL)
		return err_set(e, ERR_NOT_FOUND, "event %llu revokes device "
		    "%.16s..., which is not active", seq, ev->device);
	idx = (size_t)(target - st->devices);
	if ((r = acctlog_revoke_digest(st->account, ev->device, ev->time,
	    d)) != 0)
		return r;
	for (i = 0; i < st->n_devices && !signed_ok; i++) {
		if (crypto_spki_import(st->devices[i].rec.sig_pub,
		    st->devices[i].rec.sig_pub_len, &pub, NULL) != 0)
			continue;
		signed_ok = crypto_ecdsa_verify(pub, d, ev->revoke_sig) == 0;
		EVP_PKEY_free(pub);
		pub = NULL;
	}
	if (!signed_ok)
		return err_set(e, ERR_SIGNATURE, "event %llu: the revocation of "
		    "%.16s... is not signed by an active device", seq,
		    ev->device);
	memmove(&st->devices[idx], &st->devices[idx + 1],
	    (st->n_devices - idx - 1) * sizeof(*st->devices));
	st->n_devices--;
	return 0;
}

/*
 * Applies events to st in place; st may be half-changed on failure, so
 * callers work on a copy.
 */
static int
apply_events(struct acctlog_state *st, const struct acctlog_event *events,
    size_t n, struct err_ctx *e)
{
	const struct acctlog_event *ev;
	uint8_t h[32];
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		ev = &events[i];
		if (st->seq == UINT64_MAX || ev->seq != st->seq + 1)
			return err_set(e, ERR_CHAIN, "account log of %s: event "
			    "%llu where %llu was expected", st->account,
			    (unsigned long long)ev->seq,
			    (unsigned long long)st->seq + 1);
		if (memcmp(ev->prev, st->hash, 32) != 0)
			return err_set(e, ERR_CHAIN, "account log of %s: event "
			    "%llu does not follow the verified event %llu "
			    "(prev differs)", st->account,
			    (unsigned long long)ev->seq,
			    (unsigned long long)st->seq);
		if ((r = acctlog_event_hash(ev, h)) != 0)
			return err_set(e, r, "event %llu: cannot hash",
			    (unsigned long long)ev->seq);
		if (memcmp(h, ev->hash, 32) != 0)
			return err_set(e, ERR_CHAIN, "account log of %s: event "
			    "%llu does not hash to its stated hash",
			    st->account, (unsigned long long)ev->seq);
		if (ev->type == ACCTLOG_ADD)
			r = apply_add(st, ev, h, e);
		else if (ev->type == ACCTLOG_REVOKE)
			r = apply_revoke(st, ev, e);
		else
			r = err_set(e, ERR_FORMAT, "event %llu: unknown type",
			    (unsigned long long)ev->seq);
		if (r != 0)
			return r;
		if ((r = history_append(st, ev, h)) != 0)
			return r;
		st->seq = ev->seq;
		memcpy(st->hash, h, 32);
	}
	history_trim(st);
	return 0;
}

int
acctlog_state_apply(struct acctlog_state *st,
    const struct acctlog_event *events, size_t n, struct err_ctx *e)
{
	struct acctlog_state work;
	int r;

	return_val_if_fail(st != NULL && (events != NULL || n == 0),
	    ERR_INVALID_ARG);
	if ((r = acctlog_state_copy(&work, st)) != 0)
		return r;
	if ((r = apply_events(&work, events, n, e)) != 0) {
		acctlog_state_clear(&work);
		return r;
	}
	if (n > 0)
		work.has_head = 0;
	acctlog_state_clear(st);
	*st = work;	/* transferred */
	return 0;
}

static void
evidence_set(struct acctlog_evidence *ev, int kind, uint64_t seq,
    const struct acctlog_state *st, const struct acctlog_head *head)
{
	if (ev == NULL)
		return;
	ev->kind = kind;
	ev->seq = seq;
	ev->has_verified = st->has_head;
	if (st->has_head)
		ev->verified = st->head;
	ev->conflicting = *head;
}

int
acctlog_verify_update(struct acctlog_state *st,
    const struct acctlog_event *events, size_t n,
    const struct acctlog_head *head, EVP_PKEY *dir_pub, uint64_t now,
    uint64_t max_stale_s, struct acctlog_evidence *ev, struct err_ctx *e)
{
	struct acctlog_state work;
	char id[DEVREC_ID_HEX_LEN + 1];
	uint8_t h[32];
	size_t first = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(st != NULL && head != NULL && dir_pub != NULL &&
	    (events != NULL || n == 0), ERR_INVALID_ARG);
	memset(&work, 0, sizeof(work));
	if (ev != NULL)
		memset(ev, 0, sizeof(*ev));

	/* 1. the head: our account, our directory, a good signature. */
	if (strcmp(head->account, st->account) != 0)
		return err_set(e, ERR_FORMAT, "signed head is for account "
		    "%.128s, not %s", head->account, st->account);
	if ((r = acctlog_directory_id(dir_pub, id)) != 0)
		return err_set(e, r, "cannot compute the directory id");
	if (strcmp(id, st->directory) != 0)
		return err_set(e, ERR_WRONG_KEY, "account log of %s: head "
		    "checked with directory key %.16s..., but %.16s... is "
		    "pinned", st->account, id, st->directory);
	if ((r = acctlog_head_verify(head, dir_pub, NULL, e)) != 0)
		return r;

	/* 2. rollback and fork against what we verified. */
	if (head->seq < st->seq) {
		evidence_set(ev, ERR_ROLLBACK, head->seq, st, head);
		return err_set(e, ERR_ROLLBACK, "account log of %s rolled back: "
		    "signed head at seq %llu, but seq %llu was verified",
		    st->account, (unsigned long long)head->seq,
		    (unsigned long long)st->seq);
	}
	if (head->seq == st->seq && memcmp(head->hash, st->hash, 32) != 0) {
		evidence_set(ev, ERR_FORK, head->seq, st, head);
		return err_set(e, ERR_FORK, "account log of %s forked: two "
		    "different signed hashes at seq %llu", st->account,
		    (unsigned long long)head->seq);
	}

	/* 3. freshness. */
	if (now > head->time && now - head->time > max_stale_s)
		return err_set(e, ERR_STALE, "account log of %s: signed head "
		    "is %llu s old (limit %llu s)", st->account,
		    (unsigned long long)(now - head->time),
		    (unsigned long long)max_stale_s);

	/* 4. events we already have: the one at st->seq must be ours. */
	while (first < n && events[first].seq <= st->seq) {
		if (events[first].seq == st->seq) {
			if ((r = acctlog_event_hash(&events[first], h)) != 0)
				return r;
			if (memcmp(h, st->hash, 32) != 0) {
				evidence_set(ev, ERR_FORK, st->seq, st, head);
				return err_set(e, ERR_FORK, "account log of %s "
				    "forked: event %llu differs from the one "
				    "verified", st->account,
				    (unsigned long long)st->seq);
			}
		}
		first++;
	}
	if (first < n && events[first].seq > head->seq)
		return err_set(e, ERR_FORMAT, "account log of %s: events past "
		    "the signed head", st->account);

	/* 5. the new events, on a copy. */
	if ((r = acctlog_state_copy(&work, st)) != 0)
		return r;
	if ((r = apply_events(&work, events + first, n - first, e)) != 0) {
		if (r == ERR_CHAIN)
			evidence_set(ev, ERR_CHAIN, work.seq + 1, st, head);
		goto out;
	}
	if (work.seq != head->seq) {
		if (work.seq > head->seq) {
			r = err_set(e, ERR_FORMAT, "account log of %s: events "
			    "past the signed head", st->account);
			goto out;
		}
		/* Chained correctly but stopped short: fetch the rest. */
		r = err_set(e, ERR_TRUNCATED, "account log of %s: events end "
		    "at seq %llu, the signed head is at %llu", st->account,
		    (unsigned long long)work.seq,
		    (unsigned long long)head->seq);
		goto out;
	}
	if (memcmp(work.hash, head->hash, 32) != 0) {
		evidence_set(ev, ERR_CHAIN, head->seq, st, head);
		r = err_set(e, ERR_CHAIN, "account log of %s: the events do not "
		    "end in the signed hash at seq %llu", st->account,
		    (unsigned long long)head->seq);
		goto out;
	}

	/* 6. commit.  An older head at the same seq does not replace a
	 * newer one. */
	if (!st->has_head || head->seq > st->seq ||
	    head->time >= st->head.time)
		work.head = *head;
	work.has_head = 1;
	acctlog_state_clear(st);
	*st = work;	/* transferred */
	memset(&work, 0, sizeof(work));
	if (ev != NULL) {
		ev->first_applied = first;
		ev->n_applied = n - first;
	}
	r = 0;
 out:
	acctlog_state_clear(&work);
	return r;
}

/* --- state JSON --- */

int
acctlog_state_to_json(const struct acctlog_state *st, json_t **out,
    struct err_ctx *e)
{
	json_t *obj = NULL, *devs = NULL, *hist = NULL, *v = NULL, *d = NULL;
	size_t i;
	int r = ERR_INTERNAL;

	return_val_if_fail(st != NULL && out != NULL, ERR_INVALID_ARG);
	if ((obj = json_object()) == NULL || (devs = json_array()) == NULL ||
	    (hist = json_array()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = devrec_json_set_str(obj, "account", st->account)) != 0 ||
	    (r = devrec_json_set_str(obj, "directory", st->directory)) != 0 ||
	    (r = devrec_json_set_u64(obj, "seq", st->seq)) != 0 ||
	    (r = devrec_json_set_hex(obj, "hash", st->hash, 32)) != 0)
		goto out;
	if (st->has_head) {
		if ((r = acctlog_head_to_json(&st->head, &v, e)) != 0)
			goto out;
		r = json_object_set_new(obj, "head", v) != 0 ? ERR_ALLOC : 0;
		v = NULL;	/* transferred */
		if (r != 0)
			goto out;
	}
	for (i = 0; i < st->n_devices; i++) {
		if ((d = json_object()) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		if ((r = devrec_to_json(&st->devices[i].rec, &v, e)) != 0)
			goto out;
		r = json_object_set_new(d, "record", v) != 0 ? ERR_ALLOC : 0;
		v = NULL;	/* transferred */
		if (r != 0 ||
		    (r = devrec_json_set_u64(d, "add_seq",
		    st->devices[i].add_seq)) != 0 ||
		    (r = devrec_json_set_hex(d, "add_hash",
		    st->devices[i].add_hash, 32)) != 0)
			goto out;
		r = json_array_append_new(devs, d) != 0 ? ERR_ALLOC : 0;
		d = NULL;	/* transferred */
		if (r != 0)
			goto out;
	}
	for (i = 0; i < st->n_history; i++) {
		const struct acctlog_entry *h = &st->history[i];

		if ((d = json_object()) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		if ((r = devrec_json_set_u64(d, "seq", h->seq)) != 0 ||
		    (r = devrec_json_set_u64(d, "time", h->time)) != 0 ||
		    (r = devrec_json_set_str(d, "type",
		    acctlog_type_name(h->type))) != 0 ||
		    (r = devrec_json_set_str(d, "device", h->device)) != 0 ||
		    (r = devrec_json_set_hex(d, "hash", h->hash, 32)) != 0)
			goto out;
		r = json_array_append_new(hist, d) != 0 ? ERR_ALLOC : 0;
		d = NULL;	/* transferred */
		if (r != 0)
			goto out;
	}
	r = json_object_set_new(obj, "devices", devs) != 0 ? ERR_ALLOC : 0;
	devs = NULL;	/* transferred */
	if (r != 0)
		goto out;
	r = json_object_set_new(obj, "history", hist) != 0 ? ERR_ALLOC : 0;
	hist = NULL;	/* transferred */
	if (r != 0)
		goto out;
	*out = obj;
	obj = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		err_set(e, r, "account state: cannot encode: %s", err_str(r));
	json_decref(d);
	json_decref(hist);
	json_decref(devs);
	json_decref(obj);
	return r;
}

static const char *const state_fields[] = {
	"account", "directory", "seq", "hash", "head", "devices", "history",
};
static const char *const device_fields[] = { "record", "add_seq", "add_hash" };
static const char *const entry_fields[] = {
	"seq", "time", "type", "device", "hash",
};

int
acctlog_state_from_json(const json_t *obj, struct acctlog_state *st,
    struct err_ctx *e)
{
	static const char what[] = "account state";
	const json_t *devs, *hist, *v, *h;
	struct acctlog_device *d;
	struct acctlog_entry *ent;
	const char *s;
	char dir[DEVREC_ID_HEX_LEN + 1];
	size_t i, n;
	int r = ERR_INTERNAL;

	return_val_if_fail(st != NULL, ERR_INVALID_ARG);
	memset(st, 0, sizeof(*st));
	if ((r = devrec_json_keys(obj, state_fields,
	    sizeof(state_fields) / sizeof(state_fields[0]), what, e)) != 0 ||
	    (r = devrec_json_str(obj, "account", ACCTLOG_ACCOUNT_MAX, &s, what,
	    e)) != 0 ||
	    (r = devrec_json_id(obj, "directory", dir, what, e)) != 0 ||
	    (r = acctlog_state_init(st, s, dir, e)) != 0 ||
	    (r = devrec_json_u64(obj, "seq", &st->seq, what, e)) != 0 ||
	    (r = devrec_json_hex32(obj, "hash", st->hash, what, e)) != 0)
		goto out;
	if (st->seq == 0 && memcmp(st->hash, zero_hash, 32) != 0) {
		r = err_set(e, ERR_FORMAT, "%s: seq 0 with a non-zero hash",
		    what);
		goto out;
	}
	if ((h = json_object_get(obj, "head")) != NULL) {
		if ((r = acctlog_head_from_json(h, &st->head, e)) != 0)
			goto out;
		if (strcmp(st->head.account, st->account) != 0 ||
		    st->head.seq != st->seq ||
		    memcmp(st->head.hash, st->hash, 32) != 0) {
			r = err_set(e, ERR_FORMAT, "%s: the head does not match "
			    "the verified seq and hash", what);
			goto out;
		}
		st->has_head = 1;
	}
	devs = json_object_get(obj, "devices");
	hist = json_object_get(obj, "history");
	if (!json_is_array(devs) || !json_is_array(hist)) {
		r = err_set(e, ERR_FORMAT, "%s: \"devices\" and \"history\" "
		    "must be arrays", what);
		goto out;
	}
	if ((n = json_array_size(devs)) > ACCTLOG_MAX_DEVICES ||
	    json_array_size(hist) > ACCTLOG_HISTORY_MAX) {
		r = err_set(e, ERR_TOO_LARGE, "%s: too many devices or history "
		    "entries", what);
		goto out;
	}
	if (n > 0 && (st->devices = calloc(n, sizeof(*d))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		v = json_array_get(devs, i);
		d = &st->devices[i];
		if ((r = devrec_json_keys(v, device_fields, 3, what, e)) != 0)
			goto out;
		if ((h = json_object_get(v, "record")) == NULL) {
			r = err_set(e, ERR_FORMAT, "%s: device without record",
			    what);
			goto out;
		}
		if ((r = devrec_from_json(h, &d->rec, e)) != 0 ||
		    (r = devrec_verify(&d->rec, e)) != 0 ||
		    (r = devrec_json_u64(v, "add_seq", &d->add_seq, what,
		    e)) != 0 ||
		    (r = devrec_json_hex32(v, "add_hash", d->add_hash, what,
		    e)) != 0)
			goto out;
		if (strcmp(d->rec.account, st->account) != 0 ||
		    d->add_seq == 0 || d->add_seq > st->seq) {
			r = err_set(e, ERR_FORMAT, "%s: device %.16s... does not "
			    "belong to this log", what, d->rec.device);
			goto out;
		}
		if (acctlog_state_find(st, d->rec.device) != NULL) {
			r = err_set(e, ERR_FORMAT, "%s: device %.16s... listed "
			    "twice", what, d->rec.device);
			goto out;
		}
		st->n_devices++;
	}
	n = json_array_size(hist);
	if (n > 0 && (st->history = calloc(n, sizeof(*ent))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		v = json_array_get(hist, i);
		ent = &st->history[i];
		if ((r = devrec_json_keys(v, entry_fields, 5, what, e)) != 0 ||
		    (r = devrec_json_u64(v, "seq", &ent->seq, what, e)) != 0 ||
		    (r = devrec_json_u64(v, "time", &ent->time, what, e)) != 0 ||
		    (r = devrec_json_str(v, "type", 8, &s, what, e)) != 0 ||
		    (r = devrec_json_id(v, "device", ent->device, what,
		    e)) != 0 ||
		    (r = devrec_json_hex32(v, "hash", ent->hash, what, e)) != 0)
			goto out;
		if (strcmp(s, "add") == 0)
			ent->type = ACCTLOG_ADD;
		else if (strcmp(s, "revoke") == 0)
			ent->type = ACCTLOG_REVOKE;
		else {
			r = err_set(e, ERR_FORMAT, "%s: history entry of "
			    "unknown type", what);
			goto out;
		}
		if (ent->seq == 0 || ent->seq > st->seq ||
		    (i > 0 && ent->seq <= st->history[i - 1].seq)) {
			r = err_set(e, ERR_FORMAT, "%s: history out of order",
			    what);
			goto out;
		}
		st->n_history++;
	}
	r = 0;
 out:
	if (r != 0)
		acctlog_state_clear(st);
	return r;
}
