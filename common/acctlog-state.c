/*
 * acctlog-state.c - the verified state of one account (struct
 * acctlog_state): its life (init, copy, find, clear) and its JSON in the
 * agent's registry.  What moves a state forward, and the rules it checks,
 * are in acctlog-verify.c.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acctlog.h"
#include "acctlog-private.h"
#include "devrec.h"
#include "errors.h"

/* How the messages of this file name what they parse. */
static const char what[] = "account state";

/* --- the state's life --- */

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


/* --- state JSON --- */

/* Sets obj[key] to v, which it takes over even on failure. */
static int
obj_set_new(json_t *obj, const char *key, json_t *v)
{
	return json_object_set_new(obj, key, v) != 0 ? ERR_ALLOC : 0;
}

/* Appends v to arr, which takes it over even on failure. */
static int
arr_append_new(json_t *arr, json_t *v)
{
	return json_array_append_new(arr, v) != 0 ? ERR_ALLOC : 0;
}

/* { "record", "add_seq", "add_hash" } of d as a new object in *out. */
static int
device_to_json(const struct acctlog_device *d, json_t **out,
    struct err_ctx *e)
{
	json_t *obj, *rec;
	int r;

	if ((obj = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_to_json(&d->rec, &rec, e)) != 0 ||
	    (r = obj_set_new(obj, "record", rec)) != 0 ||
	    (r = devrec_json_set_u64(obj, "add_seq", d->add_seq)) != 0 ||
	    (r = devrec_json_set_hex(obj, "add_hash", d->add_hash, 32)) != 0) {
		json_decref(obj);
		return r;
	}
	*out = obj;
	return 0;
}

/* { "seq", "time", "type", "device", "hash" } of h as a new object. */
static int
entry_to_json(const struct acctlog_entry *h, json_t **out)
{
	json_t *obj;
	int r;

	if ((obj = json_object()) == NULL)
		return ERR_ALLOC;
	if ((r = devrec_json_set_u64(obj, "seq", h->seq)) != 0 ||
	    (r = devrec_json_set_u64(obj, "time", h->time)) != 0 ||
	    (r = devrec_json_set_str(obj, "type",
	    acctlog_type_name(h->type))) != 0 ||
	    (r = devrec_json_set_str(obj, "device", h->device)) != 0 ||
	    (r = devrec_json_set_hex(obj, "hash", h->hash, 32)) != 0) {
		json_decref(obj);
		return r;
	}
	*out = obj;
	return 0;
}

/* The active devices of st as a new array in *out. */
static int
devices_to_json(const struct acctlog_state *st, json_t **out,
    struct err_ctx *e)
{
	json_t *arr, *v;
	size_t i;
	int r = ERR_INTERNAL;

	if ((arr = json_array()) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < st->n_devices; i++) {
		if ((r = device_to_json(&st->devices[i], &v, e)) != 0 ||
		    (r = arr_append_new(arr, v)) != 0)
			goto out;
	}
	*out = arr;
	arr = NULL;	/* transferred */
	r = 0;
 out:
	json_decref(arr);
	return r;
}

/* The history of st as a new array in *out. */
static int
history_to_json(const struct acctlog_state *st, json_t **out)
{
	json_t *arr, *v;
	size_t i;
	int r = ERR_INTERNAL;

	if ((arr = json_array()) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < st->n_history; i++) {
		if ((r = entry_to_json(&st->history[i], &v)) != 0 ||
		    (r = arr_append_new(arr, v)) != 0)
			goto out;
	}
	*out = arr;
	arr = NULL;	/* transferred */
	r = 0;
 out:
	json_decref(arr);
	return r;
}

int
acctlog_state_to_json(const struct acctlog_state *st, json_t **out,
    struct err_ctx *e)
{
	json_t *obj = NULL, *v;
	int r = ERR_INTERNAL;

	return_val_if_fail(st != NULL && out != NULL, ERR_INVALID_ARG);
	if ((obj = json_object()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	/* The registry is signed as text: the keys keep this order. */
	if ((r = devrec_json_set_str(obj, "account", st->account)) != 0 ||
	    (r = devrec_json_set_str(obj, "directory", st->directory)) != 0 ||
	    (r = devrec_json_set_u64(obj, "seq", st->seq)) != 0 ||
	    (r = devrec_json_set_hex(obj, "hash", st->hash, 32)) != 0)
		goto out;
	if (st->has_head &&
	    ((r = acctlog_head_to_json(&st->head, &v, e)) != 0 ||
	    (r = obj_set_new(obj, "head", v)) != 0))
		goto out;
	if ((r = devices_to_json(st, &v, e)) != 0 ||
	    (r = obj_set_new(obj, "devices", v)) != 0 ||
	    (r = history_to_json(st, &v)) != 0 ||
	    (r = obj_set_new(obj, "history", v)) != 0)
		goto out;
	*out = obj;
	obj = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		err_set(e, r, "account state: cannot encode: %s", err_str(r));
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

/*
 * The point of the log obj holds ("account", "directory", "seq", "hash"):
 * initialises st with it.  Unknown keys are refused here.
 */
static int
point_from_json(const json_t *obj, struct acctlog_state *st,
    struct err_ctx *e)
{
	char dir[DEVREC_ID_HEX_LEN + 1];
	const char *s;
	int r;

	if ((r = devrec_json_keys(obj, state_fields,
	    sizeof(state_fields) / sizeof(state_fields[0]), what, e)) != 0 ||
	    (r = devrec_json_str(obj, "account", ACCTLOG_ACCOUNT_MAX, &s, what,
	    e)) != 0 ||
	    (r = devrec_json_id(obj, "directory", dir, what, e)) != 0 ||
	    (r = acctlog_state_init(st, s, dir, e)) != 0 ||
	    (r = devrec_json_u64(obj, "seq", &st->seq, what, e)) != 0 ||
	    (r = devrec_json_hex32(obj, "hash", st->hash, what, e)) != 0)
		return r;
	if (st->seq == 0 && memcmp(st->hash, acctlog_zero_hash, 32) != 0)
		return err_set(e, ERR_FORMAT, "%s: seq 0 with a non-zero hash",
		    what);
	return 0;
}

/* The optional "head" of obj, which must be at st's seq and hash. */
static int
head_from_json(const json_t *obj, struct acctlog_state *st,
    struct err_ctx *e)
{
	const json_t *h;
	int r;

	if ((h = json_object_get(obj, "head")) == NULL)
		return 0;
	if ((r = acctlog_head_from_json(h, &st->head, e)) != 0)
		return r;
	if (strcmp(st->head.account, st->account) != 0 ||
	    st->head.seq != st->seq ||
	    memcmp(st->head.hash, st->hash, 32) != 0)
		return err_set(e, ERR_FORMAT, "%s: the head does not match "
		    "the verified seq and hash", what);
	st->has_head = 1;
	return 0;
}

/*
 * One entry of "devices" into *d: a record that verifies, of this account,
 * added at or before st->seq, and not among the devices st has so far.
 */
static int
device_from_json(const json_t *v, const struct acctlog_state *st,
    struct acctlog_device *d, struct err_ctx *e)
{
	const json_t *rec;
	int r;

	if ((r = devrec_json_keys(v, device_fields, 3, what, e)) != 0)
		return r;
	if ((rec = json_object_get(v, "record")) == NULL)
		return err_set(e, ERR_FORMAT, "%s: device without record",
		    what);
	if ((r = devrec_from_json(rec, &d->rec, e)) != 0 ||
	    (r = devrec_verify(&d->rec, e)) != 0 ||
	    (r = devrec_json_u64(v, "add_seq", &d->add_seq, what, e)) != 0 ||
	    (r = devrec_json_hex32(v, "add_hash", d->add_hash, what,
	    e)) != 0)
		return r;
	if (strcmp(d->rec.account, st->account) != 0 ||
	    d->add_seq == 0 || d->add_seq > st->seq)
		return err_set(e, ERR_FORMAT, "%s: device %.16s... does not "
		    "belong to this log", what, d->rec.device);
	if (acctlog_state_find(st, d->rec.device) != NULL)
		return err_set(e, ERR_FORMAT, "%s: device %.16s... listed "
		    "twice", what, d->rec.device);
	return 0;
}

/*
 * One entry of "history" into *ent: of a known type, at or before
 * st->seq, and after the last entry st has so far.
 */
static int
entry_from_json(const json_t *v, const struct acctlog_state *st,
    struct acctlog_entry *ent, struct err_ctx *e)
{
	const char *type;
	int r;

	if ((r = devrec_json_keys(v, entry_fields, 5, what, e)) != 0 ||
	    (r = devrec_json_u64(v, "seq", &ent->seq, what, e)) != 0 ||
	    (r = devrec_json_u64(v, "time", &ent->time, what, e)) != 0 ||
	    (r = devrec_json_str(v, "type", 8, &type, what, e)) != 0 ||
	    (r = devrec_json_id(v, "device", ent->device, what, e)) != 0 ||
	    (r = devrec_json_hex32(v, "hash", ent->hash, what, e)) != 0)
		return r;
	if (strcmp(type, "add") == 0)
		ent->type = ACCTLOG_ADD;
	else if (strcmp(type, "revoke") == 0)
		ent->type = ACCTLOG_REVOKE;
	else
		return err_set(e, ERR_FORMAT, "%s: history entry of unknown "
		    "type", what);
	if (ent->seq == 0 || ent->seq > st->seq || (st->n_history > 0 &&
	    ent->seq <= st->history[st->n_history - 1].seq))
		return err_set(e, ERR_FORMAT, "%s: history out of order",
		    what);
	return 0;
}

/* The array devs into st->devices. */
static int
devices_from_json(const json_t *devs, struct acctlog_state *st,
    struct err_ctx *e)
{
	size_t i, n = json_array_size(devs);
	int r;

	if (n > 0 && (st->devices = calloc(n, sizeof(*st->devices))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		if ((r = device_from_json(json_array_get(devs, i), st,
		    &st->devices[i], e)) != 0)
			return r;
		st->n_devices++;
	}
	return 0;
}

/* The array hist into st->history. */
static int
history_from_json(const json_t *hist, struct acctlog_state *st,
    struct err_ctx *e)
{
	size_t i, n = json_array_size(hist);
	int r;

	if (n > 0 && (st->history = calloc(n, sizeof(*st->history))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		if ((r = entry_from_json(json_array_get(hist, i), st,
		    &st->history[i], e)) != 0)
			return r;
		st->n_history++;
	}
	return 0;
}

int
acctlog_state_from_json(const json_t *obj, struct acctlog_state *st,
    struct err_ctx *e)
{
	const json_t *devs, *hist;
	int r = ERR_INTERNAL;

	return_val_if_fail(st != NULL, ERR_INVALID_ARG);
	memset(st, 0, sizeof(*st));
	if ((r = point_from_json(obj, st, e)) != 0 ||
	    (r = head_from_json(obj, st, e)) != 0)
		goto out;
	devs = json_object_get(obj, "devices");
	hist = json_object_get(obj, "history");
	if (!json_is_array(devs) || !json_is_array(hist)) {
		r = err_set(e, ERR_FORMAT, "%s: \"devices\" and \"history\" "
		    "must be arrays", what);
		goto out;
	}
	if (json_array_size(devs) > ACCTLOG_MAX_DEVICES ||
	    json_array_size(hist) > ACCTLOG_HISTORY_MAX) {
		r = err_set(e, ERR_TOO_LARGE, "%s: too many devices or history "
		    "entries", what);
		goto out;
	}
	if ((r = devices_from_json(devs, st, e)) != 0 ||
	    (r = history_from_json(hist, st, e)) != 0)
		goto out;
	r = 0;
 out:
	if (r != 0)
		acctlog_state_clear(st);
	return r;
}
