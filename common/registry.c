/*
 * registry.c - the registry file, its signature and its entries.
 */
#include "config.h"

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "paths.h"
#include "registry.h"
#include "sigfile.h"
#include "transcript.h"

const char *
reg_state_name(enum reg_state s)
{
	switch (s) {
	case REG_APPROVED:
		return "approved";
	case REG_REVOKED:
		return "revoked";
	case REG_PENDING:
		break;
	}
	return "pending";
}

static int
reg_state_parse(const char *s, enum reg_state *out)
{
	if (strcmp(s, "approved") == 0)
		*out = REG_APPROVED;
	else if (strcmp(s, "pending") == 0)
		*out = REG_PENDING;
	else if (strcmp(s, "revoked") == 0)
		*out = REG_REVOKED;
	else
		return -1;
	return 0;
}

int
reg_init(struct registry *reg, const char *account, const char *device,
    const char *directory, struct err_ctx *e)
{
	return_val_if_fail(reg != NULL && account != NULL && device != NULL &&
	    directory != NULL, ERR_INVALID_ARG);
	memset(reg, 0, sizeof(*reg));
	if (!devrec_id_valid(device) || !devrec_id_valid(directory))
		return err_set(e, ERR_FORMAT, "registry: bad device or "
		    "directory id");
	snprintf(reg->account, sizeof(reg->account), "%s", account);
	snprintf(reg->device, sizeof(reg->device), "%s", device);
	snprintf(reg->directory, sizeof(reg->directory), "%s", directory);
	return acctlog_state_init(&reg->log, account, directory, e);
}

void
reg_clear(struct registry *reg)
{
	if (reg == NULL)
		return;
	acctlog_state_clear(&reg->log);
	free(reg->devs);
	memset(reg, 0, sizeof(*reg));
}

int
reg_copy(struct registry *dst, const struct registry *src)
{
	int r;

	memset(dst, 0, sizeof(*dst));
	memcpy(dst->account, src->account, sizeof(dst->account));
	memcpy(dst->device, src->device, sizeof(dst->device));
	memcpy(dst->directory, src->directory, sizeof(dst->directory));
	dst->updated = src->updated;
	dst->trust_endorsed = src->trust_endorsed;
	if ((r = acctlog_state_copy(&dst->log, &src->log)) != 0)
		return r;
	if (src->n_devs > 0) {
		if ((dst->devs = calloc(src->n_devs,
		    sizeof(*dst->devs))) == NULL) {
			reg_clear(dst);
			return ERR_ALLOC;
		}
		memcpy(dst->devs, src->devs, src->n_devs * sizeof(*dst->devs));
		dst->n_devs = src->n_devs;
	}
	return 0;
}

struct reg_device *
reg_find(struct registry *reg, const char *device)
{
	size_t i;

	for (i = 0; i < reg->n_devs; i++)
		if (strcmp(reg->devs[i].device, device) == 0)
			return &reg->devs[i];
	return NULL;
}

int
reg_add(struct registry *reg, const char *device, struct reg_device **out,
    struct err_ctx *e)
{
	struct reg_device *n;

	if (!devrec_id_valid(device))
		return err_set(e, ERR_FORMAT, "registry: bad device id");
	if (reg_find(reg, device) != NULL)
		return err_set(e, ERR_EXISTS, "registry: device already known");
	if (reg->n_devs >= REG_MAX_DEVICES)
		return err_set(e, ERR_TOO_LARGE, "registry: more than %d "
		    "devices", REG_MAX_DEVICES);
	if ((n = realloc(reg->devs, (reg->n_devs + 1) * sizeof(*n))) == NULL)
		return ERR_ALLOC;
	reg->devs = n;
	n = &reg->devs[reg->n_devs++];
	memset(n, 0, sizeof(*n));
	snprintf(n->device, sizeof(n->device), "%s", device);
	*out = n;
	return 0;
}

int
reg_match(struct registry *reg, const char *prefix, struct reg_device **out,
    struct err_ctx *e)
{
	char hex[DEVREC_ID_HEX_LEN + 1];
	struct reg_device *found = NULL;
	size_t i, n = 0;

	for (i = 0; prefix[i] != '\0'; i++) {
		if (prefix[i] == '-')
			continue;
		if (n >= DEVREC_ID_HEX_LEN || !((prefix[i] >= '0' &&
		    prefix[i] <= '9') || (prefix[i] >= 'a'
		    && prefix[i] <= 'f')))
			return err_set(e, ERR_FORMAT, "'%.80s' is not a device "
			    "id prefix (lowercase hex)", prefix);
		hex[n++] = prefix[i];
	}
	hex[n] = '\0';
	if (n < 4)
		return err_set(e, ERR_FORMAT, "give at least 4 hex digits of "
		    "the device id");
	for (i = 0; i < reg->n_devs; i++) {
		if (strncmp(reg->devs[i].device, hex, n) != 0)
			continue;
		if (found != NULL)
			return err_set(e, ERR_EXISTS, "'%s' matches several "
			    "devices: give more digits", prefix);
		found = &reg->devs[i];
	}
	if (found == NULL)
		return err_set(e, ERR_NOT_FOUND, "no device %s in the registry",
		    prefix);
	*out = found;
	return 0;
}

/* One registry entry as a new JSON object in *out. */
static int
device_to_json(const struct reg_device *d, json_t **out, struct err_ctx *e)
{
	json_t *o = NULL, *rec = NULL;
	int r = ERR_ALLOC;

	if ((o = json_object()) == NULL)
		goto out;
	if (devrec_json_set_str(o, "device", d->device) != 0 ||
	    devrec_json_set_str(o, "label", d->label) != 0 ||
	    devrec_json_set_str(o, "state", reg_state_name(d->state)) != 0 ||
	    devrec_json_set_u64(o, "first_seen", d->first_seen) != 0 ||
	    devrec_json_set_u64(o, "changed", d->changed) != 0 ||
	    devrec_json_set_u64(o, "add_seq", d->add_seq) != 0 ||
	    devrec_json_set_hex(o, "add_hash", d->add_hash, 32) != 0)
		goto out;
	if (d->has_record) {
		if ((r = devrec_to_json(&d->rec, &rec, e)) != 0)
			goto out;
		if (json_object_set_new(o, "record", rec) != 0) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	*out = o;
	o = NULL;
	r = 0;
 out:
	json_decref(o);
	return r;
}

int
reg_encode(const struct registry *reg, char **out, size_t *out_len,
    struct err_ctx *e)
{
	json_t *o = NULL, *arr = NULL, *d = NULL, *log = NULL;
	char *text;
	size_t i;
	int r = ERR_ALLOC;

	if ((o = json_object()) == NULL || (arr = json_array()) == NULL)
		goto out;
	if (devrec_json_set_u64(o, "version", REG_VERSION) != 0 ||
	    devrec_json_set_str(o, "account", reg->account) != 0 ||
	    devrec_json_set_str(o, "device", reg->device) != 0 ||
	    devrec_json_set_str(o, "directory", reg->directory) != 0 ||
	    devrec_json_set_u64(o, "updated", reg->updated) != 0)
		goto out;
	if ((r = acctlog_state_to_json(&reg->log, &log, e)) != 0)
		goto out;
	if (json_object_set_new(o, "log", log) != 0) {
		r = ERR_ALLOC;
		goto out;
	}
	/* Written only when on, so that a file without it reads the same. */
	if (reg->trust_endorsed &&
	    json_object_set_new(o, "trust_endorsed", json_true()) != 0) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < reg->n_devs; i++) {
		if ((r = device_to_json(&reg->devs[i], &d, e)) != 0)
			goto out;
		if (json_array_append_new(arr, d) != 0) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if (json_object_set(o, "devices", arr) != 0) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	*out = text;
	*out_len = strlen(text);
	r = 0;
 out:
	json_decref(arr);
	json_decref(o);
	return r;
}

static const char *const reg_keys[] = {
	"version", "account", "device", "directory", "updated", "log",
	"devices", "trust_endorsed"
};
static const char *const dev_keys[] = {
	"device", "label", "state", "first_seen", "changed", "add_seq",
	"add_hash", "record"
};

/* One registry entry, strictly; a record present must verify and be of
 * the entry's device.  d is zeroed first. */
static int
device_from_json(const json_t *o, struct reg_device *d, struct err_ctx *e)
{
	const char *label, *state;
	const json_t *rec;
	int r;

	memset(d, 0, sizeof(*d));
	if ((r = devrec_json_keys(o, dev_keys, 8, "registry device", e)) != 0 ||
	    (r = devrec_json_id(o, "device", d->device, "registry device",
	    e)) != 0 ||
	    (r = devrec_json_str(o, "label", DEVREC_LABEL_MAX, &label,
	    "registry device", e)) != 0 ||
	    (r = devrec_json_str(o, "state", 16, &state, "registry device",
	    e)) != 0 ||
	    (r = devrec_json_u64(o, "first_seen", &d->first_seen,
	    "registry device", e)) != 0 ||
	    (r = devrec_json_u64(o, "changed", &d->changed,
	    "registry device", e)) != 0 ||
	    (r = devrec_json_u64(o, "add_seq", &d->add_seq,
	    "registry device", e)) != 0 ||
	    (r = devrec_json_hex32(o, "add_hash", d->add_hash,
	    "registry device", e)) != 0)
		return r;
	if (!devrec_label_valid(label))
		return err_set(e, ERR_FORMAT, "registry: bad label");
	snprintf(d->label, sizeof(d->label), "%s", label);
	if (reg_state_parse(state, &d->state) != 0)
		return err_set(e, ERR_FORMAT, "registry: unknown state '%s'",
		    state);
	if ((rec = json_object_get(o, "record")) != NULL) {
		if ((r = devrec_from_json(rec, &d->rec, e)) != 0 ||
		    (r = devrec_verify(&d->rec, e)) != 0)
			return r;
		if (strcmp(d->rec.device, d->device) != 0)
			return err_set(e, ERR_FORMAT, "registry: record of "
			    "another device");
		d->has_record = 1;
	}
	return 0;
}

int
reg_parse(const char *text, size_t len, struct registry *reg, struct err_ctx *e)
{
	json_t *o = NULL;
	const json_t *arr, *v;
	const char *account;
	struct reg_device d, *slot;
	uint64_t version;
	size_t i;
	int r = ERR_INTERNAL;

	memset(reg, 0, sizeof(*reg));
	if ((r = devrec_json_load(text, len, REG_FILE_MAX, &o, "registry",
	    e)) != 0)
		return r;
	if ((r = devrec_json_keys(o, reg_keys, 8, "registry", e)) != 0 ||
	    (r = devrec_json_u64(o, "version", &version, "registry", e)) != 0 ||
	    (r = devrec_json_str(o, "account", DEVREC_ACCOUNT_MAX, &account,
	    "registry", e)) != 0 ||
	    (r = devrec_json_id(o, "device", reg->device, "registry",
	    e)) != 0 ||
	    (r = devrec_json_id(o, "directory", reg->directory, "registry",
	    e)) != 0 ||
	    (r = devrec_json_u64(o, "updated", &reg->updated, "registry",
	    e)) != 0)
		goto out;
	if (version != REG_VERSION) {
		r = err_set(e, ERR_FORMAT, "registry: version %llu is not %d",
		    (unsigned long long)version, REG_VERSION);
		goto out;
	}
	if (!devrec_account_valid(account)) {
		r = err_set(e, ERR_FORMAT, "registry: bad account");
		goto out;
	}
	snprintf(reg->account, sizeof(reg->account), "%s", account);
	if ((v = json_object_get(o, "trust_endorsed")) != NULL) {
		if (!json_is_boolean(v)) {
			r = err_set(e, ERR_FORMAT, "registry: trust_endorsed "
			    "is not true or false");
			goto out;
		}
		reg->trust_endorsed = json_is_true(v);
	}
	if ((v = json_object_get(o, "log")) == NULL) {
		r = err_set(e, ERR_FORMAT, "registry: no log state");
		goto out;
	}
	if ((r = acctlog_state_from_json(v, &reg->log, e)) != 0)
		goto out;
	if (strcmp(reg->log.account, reg->account) != 0 ||
	    strcmp(reg->log.directory, reg->directory) != 0) {
		r = err_set(e, ERR_FORMAT, "registry: the log state is of "
		    "another account or directory");
		goto out;
	}
	arr = json_object_get(o, "devices");
	if (!json_is_array(arr)) {
		r = err_set(e, ERR_FORMAT, "registry: devices is not an array");
		goto out;
	}
	if (json_array_size(arr) > REG_MAX_DEVICES) {
		r = err_set(e, ERR_TOO_LARGE, "registry: too many devices");
		goto out;
	}
	for (i = 0; i < json_array_size(arr); i++) {
		if ((r = device_from_json(json_array_get(arr, i), &d, e)) != 0)
			goto out;
		if ((r = reg_add(reg, d.device, &slot, e)) != 0)
			goto out;
		*slot = d;
	}
	r = 0;
 out:
	json_decref(o);
	if (r != 0)
		reg_clear(reg);
	return r;
}

int
reg_digest(const char *text, size_t len, uint8_t out[32])
{
	return sigfile_digest(TR_TAG_REGISTRY, text, len, REG_FILE_MAX, out);
}

int
reg_verify(const char *text, size_t len, const uint8_t sig[64],
    EVP_PKEY *pub, struct err_ctx *e)
{
	int r;

	if ((r = sigfile_verify(TR_TAG_REGISTRY, text, len, REG_FILE_MAX, sig,
	    pub)) == ERR_SIGNATURE)
		return err_set(e, ERR_SIGNATURE, "the registry signature does "
		    "not verify with this device's token key: the registry "
		    "was changed outside the agent");
	return r;
}

/* dir/registry.json and dir/registry.sig, new strings. */
static int
reg_paths(const char *dir, char **path, char **sig_path)
{
	*path = path_join(dir, REG_FILE);
	*sig_path = path_join(dir, REG_SIG_FILE);
	if (*path == NULL || *sig_path == NULL) {
		free(*path);
		free(*sig_path);
		*path = *sig_path = NULL;
		return ERR_ALLOC;
	}
	return 0;
}

int
reg_save(const struct registry *reg, const char *dir, reg_sign_fn sign,
    void *sign_arg, struct err_ctx *e)
{
	char *text = NULL, *path = NULL, *sig_path = NULL;
	uint8_t digest[32], sig[64];
	size_t len = 0;
	int r = ERR_INTERNAL;

	if ((r = reg_encode(reg, &text, &len, e)) != 0 ||
	    (r = reg_digest(text, len, digest)) != 0 ||
	    (r = sign(sign_arg, digest, sig, e)) != 0 ||
	    (r = reg_paths(dir, &path, &sig_path)) != 0 ||
	    (r = sigfile_write(path, sig_path, text, len, sig, e)) != 0)
		goto out;
	r = 0;
 out:
	free(text);
	free(path);
	free(sig_path);
	return r;
}

int
reg_load(const char *dir, EVP_PKEY *pub, struct registry *reg,
    struct err_ctx *e)
{
	char *path = NULL, *sig_path = NULL, *text = NULL;
	uint8_t sig[64];
	size_t len = 0;
	int r = ERR_INTERNAL;

	memset(reg, 0, sizeof(*reg));
	if ((r = reg_paths(dir, &path, &sig_path)) != 0 ||
	    (r = sigfile_read(path, sig_path, REG_FILE_MAX, &text, &len, sig,
	    e)) != 0 ||
	    (r = reg_verify(text, len, sig, pub, e)) != 0)
		goto out;
	r = reg_parse(text, len, reg, e);
 out:
	free(path);
	free(sig_path);
	free(text);
	return r;
}

int
reg_files_digest(const char *dir, uint8_t out[32], struct err_ctx *e)
{
	char *path = NULL, *sig_path = NULL;
	int r;

	if ((r = reg_paths(dir, &path, &sig_path)) != 0)
		return r;
	r = sigfile_files_digest(path, sig_path, REG_FILE_MAX, out, e);
	free(path);
	free(sig_path);
	return r;
}
