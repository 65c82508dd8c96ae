/*
 * agent-tlog.c - the transparency-log monitor's state and its checks of
 * leaves (agent-tlog.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent-tlog.h"
#include "codec.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "fileio.h"
#include "merkle.h"
#include "tlog-client.h"
#include "tlog-note.h"

void
agent_tlog_monitor_init(struct agent_tlog_monitor *m)
{
	memset(m, 0, sizeof(*m));
	merkle_frontier_init(&m->f);
	m->next_seq = 1;
}

int
agent_tlog_monitor_parse(const char *text, size_t len,
    struct agent_tlog_monitor *m, struct err_ctx *e)
{
	static const char *const keys[] = { "version", "size", "next_seq",
	    "frontier" };
	struct agent_tlog_monitor tmp;
	json_t *o = NULL;
	const json_t *arr, *h;
	uint64_t version = 0, size = 0, next = 0;
	unsigned int want;
	size_t i;
	int r;

	if (len > AGENT_TLOG_MONITOR_MAX)
		return err_set(e, ERR_TOO_LARGE, "tlog monitor state: larger "
		    "than %zu bytes", AGENT_TLOG_MONITOR_MAX);
	if ((r = devrec_json_load(text, len, AGENT_TLOG_MONITOR_MAX, &o,
	    "tlog monitor state", e)) != 0)
		return r;
	if ((r = devrec_json_keys(o, keys, 4, "tlog monitor state", e)) != 0 ||
	    (r = devrec_json_u64(o, "version", &version, "tlog monitor state",
	    e)) != 0 ||
	    (r = devrec_json_u64(o, "size", &size, "tlog monitor state",
	    e)) != 0 ||
	    (r = devrec_json_u64(o, "next_seq", &next, "tlog monitor state",
	    e)) != 0)
		goto out;
	arr = json_object_get(o, "frontier");
	r = ERR_FORMAT;
	if (version != 1) {
		err_set(e, r, "tlog monitor state: version %llu is not 1",
		    (unsigned long long)version);
		goto out;
	}
	if (size > MERKLE_SIZE_MAX || next == 0) {
		err_set(e, r, "tlog monitor state: size or next_seq out of "
		    "range");
		goto out;
	}
	want = (unsigned int)__builtin_popcountll(size);
	if (!json_is_array(arr) || json_array_size(arr) != want) {
		err_set(e, r, "tlog monitor state: the frontier must be an "
		    "array of %u hashes for size %llu", want,
		    (unsigned long long)size);
		goto out;
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.f.size = size;
	tmp.f.count = want;
	tmp.next_seq = next;
	for (i = 0; i < want; i++) {
		h = json_array_get(arr, i);
		if (!json_is_string(h) || b64url_decode_exact(
		    json_string_value(h), json_string_length(h),
		    tmp.f.node[i], MERKLE_HASH_LEN) != 0) {
			err_set(e, r, "tlog monitor state: frontier hash %zu is "
			    "not 32 bytes of base64url", i);
			goto out;
		}
	}
	*m = tmp;
	r = 0;
 out:
	json_decref(o);
	return r;
}

int
agent_tlog_monitor_format(const struct agent_tlog_monitor *m, char **out,
    size_t *len)
{
	json_t *o = NULL, *arr = NULL;
	char *text = NULL;
	unsigned int i;
	int r = ERR_ALLOC;

	if (m->f.count > MERKLE_PROOF_MAX)
		return ERR_INVALID_ARG;
	if ((o = json_object()) == NULL || (arr = json_array()) == NULL ||
	    json_object_set(o, "frontier", arr) != 0)
		goto out;
	if ((r = devrec_json_set_u64(o, "version", 1)) != 0 ||
	    (r = devrec_json_set_u64(o, "size", m->f.size)) != 0 ||
	    (r = devrec_json_set_u64(o, "next_seq", m->next_seq)) != 0)
		goto out;
	r = ERR_ALLOC;
	for (i = 0; i < m->f.count; i++) {
		char *b = NULL;

		if (b64url_encode(m->f.node[i], MERKLE_HASH_LEN, &b) != 0)
			goto out;
		if (json_array_append_new(arr, json_string(b)) != 0) {
			free(b);
			goto out;
		}
		free(b);
	}
	if ((text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	*len = strlen(text);
	*out = text;
	r = 0;
 out:
	json_decref(arr);
	json_decref(o);
	return r;
}

int
agent_tlog_monitor_load(const char *path, struct agent_tlog_monitor *m,
    struct err_ctx *e)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = fileio_read(path, AGENT_TLOG_MONITOR_MAX, 0, &text, &len, e);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		agent_tlog_monitor_init(m);
		return 0;
	}
	if (r != 0)
		return r;
	if ((r = agent_tlog_monitor_parse(text, len, m, e)) != 0)
		r = err_wrap(e, r, "%s: %s (remove it to read the whole "
		    "transparency log again)", path, err_msg(e));
	free(text);
	return r;
}

int
agent_tlog_monitor_save(const char *path, const struct agent_tlog_monitor *m,
    struct err_ctx *e)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if ((r = agent_tlog_monitor_format(m, &text, &len)) != 0)
		return err_set(e, r, "tlog monitor state: cannot format it");
	r = fileio_write_atomic(path, text, len, 0600, e);
	free(text);
	return r;
}

/* Appends one leaf of the own account to *own. */
static int
own_push(struct agent_tlog_own **own, size_t *n_own, uint64_t index,
    const struct dirc_tlog_leaf *l, struct err_ctx *e)
{
	struct agent_tlog_own *n;

	if (*n_own >= AGENT_TLOG_OWN_MAX)
		return err_set(e, ERR_TOO_LARGE, "more than %zu leaves of this "
		    "account in one read of the transparency log",
		    AGENT_TLOG_OWN_MAX);
	/* The array holds 16, 32, 64, ... entries: grown when full. */
	if (*n_own == 0 || (*n_own >= 16 && (*n_own & (*n_own - 1)) == 0)) {
		if ((n = realloc(*own, (*n_own == 0 ? 16 : 2 * *n_own) *
		    sizeof(*n))) == NULL)
			return ERR_ALLOC;
		*own = n;
	}
	n = *own;
	n[*n_own].index = index;
	n[*n_own].seq = l->seq;
	memcpy(n[*n_own].hash, l->hash, MERKLE_HASH_LEN);
	(*n_own)++;
	return 0;
}

int
agent_tlog_monitor_append(struct agent_tlog_monitor *m, const char *account,
    const struct dirc_tlog_leaf *leaves, size_t n,
    struct agent_tlog_own **own, size_t *n_own, struct err_ctx *e)
{
	uint8_t lh[MERKLE_HASH_LEN];
	uint64_t index;
	size_t i;
	int r;

	return_val_if_fail(m != NULL && account != NULL && own != NULL &&
	    n_own != NULL && (leaves != NULL || n == 0), ERR_INVALID_ARG);
	for (i = 0; i < n; i++) {
		index = m->f.size;
		if (tlog_leaf_hash(leaves[i].account, leaves[i].seq,
		    leaves[i].hash, lh) != 0)
			return err_set(e, ERR_FORMAT, "transparency log leaf "
			    "%llu: its account or seq cannot be a leaf",
			    (unsigned long long)index);
		if ((r = merkle_frontier_append(&m->f, lh, NULL, NULL, e)) != 0)
			return r;
		if (strcmp(leaves[i].account, account) == 0 &&
		    (r = own_push(own, n_own, index, &leaves[i], e)) != 0)
			return r;
	}
	return 0;
}

int
agent_tlog_monitor_verify(const struct agent_tlog_monitor *m, uint64_t size,
    const uint8_t root[MERKLE_HASH_LEN],
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n, struct err_ctx *e)
{
	uint8_t mine[MERKLE_HASH_LEN];
	int r;

	if (m->f.size > size)
		return err_set(e, ERR_INVALID_ARG, "the monitor read %llu "
		    "leaves, more than the checkpoint's %llu",
		    (unsigned long long)m->f.size, (unsigned long long)size);
	if ((r = merkle_frontier_root(&m->f, mine)) != 0)
		return err_set(e, r, "the monitor's frontier is inconsistent");
	if (m->f.size == size) {
		if (memcmp(mine, root, MERKLE_HASH_LEN) != 0)
			return err_set(e, ERR_SIGNATURE, "the %llu leaves the "
			    "directory served do not add up to the root of "
			    "its checkpoint", (unsigned long long)size);
		return 0;
	}
	if (merkle_consistency_verify(m->f.size, size, mine, root, proof,
	    n) != 0)
		return err_set(e, ERR_SIGNATURE, "the first %llu leaves the "
		    "directory served are not a prefix of its checkpoint of "
		    "size %llu", (unsigned long long)m->f.size,
		    (unsigned long long)size);
	return 0;
}

int
agent_tlog_check_own(const struct agent_tlog_own *own, size_t n, size_t *done,
    uint64_t *next_seq, agent_tlog_event_fn event, void *arg,
    struct agent_tlog_finding *f, struct err_ctx *e)
{
	const struct agent_tlog_own *l;
	uint8_t want[MERKLE_HASH_LEN];
	int r;

	return_val_if_fail(done != NULL && next_seq != NULL && event != NULL &&
	    f != NULL && (own != NULL || n == 0), ERR_INVALID_ARG);
	memset(f, 0, sizeof(*f));
	for (; *done < n; (*done)++) {
		l = &own[*done];
		f->leaf = *l;
		f->expected_seq = *next_seq;
		if (l->seq != *next_seq) {
			f->why = AGENT_TLOG_SEQ;
			return err_set(e, ERR_FORK, "transparency log leaf %llu "
			    "is event %llu of this account, but event %llu "
			    "comes next", (unsigned long long)l->index,
			    (unsigned long long)l->seq,
			    (unsigned long long)*next_seq);
		}
		if ((r = event(arg, l->seq, want, e)) != 0) {
			if (r == ERR_NOT_FOUND)
				f->why = AGENT_TLOG_BEYOND;
			return r;
		}
		if (memcmp(want, l->hash, MERKLE_HASH_LEN) != 0) {
			f->why = AGENT_TLOG_HASH;
			f->have_expected_hash = 1;
			memcpy(f->expected_hash, want, MERKLE_HASH_LEN);
			return err_set(e, ERR_FORK, "transparency log leaf %llu "
			    "states another event %llu of this account than "
			    "the one this device verified",
			    (unsigned long long)l->index,
			    (unsigned long long)l->seq);
		}
		(*next_seq)++;
	}
	memset(f, 0, sizeof(*f));
	return 0;
}

const char *
agent_tlog_why_name(enum agent_tlog_why why)
{
	switch (why) {
	case AGENT_TLOG_SEQ:
		return "seq";
	case AGENT_TLOG_HASH:
		return "hash";
	case AGENT_TLOG_BEYOND:
		return "beyond";
	case AGENT_TLOG_OK:
		break;
	}
	return "";
}

/* Appends ", name" (or "name" first) to list (size bytes). */
static void
list_add(char *list, size_t size, const char *name)
{
	size_t n = strlen(list);

	if (n + 1 < size)
		snprintf(list + n, size - n, "%s%s", n > 0 ? ", " : "", name);
}

void
agent_tlog_cosig_summary(const struct tlog_policy *p, const char *note,
    size_t len, char *out, size_t out_size)
{
	char valid[256] = "", missing[256] = "", invalid[256] = "";
	struct tlog_note *n;
	struct err_ctx e;
	unsigned int good = 0;
	uint64_t t;
	size_t i;
	int r;

	if (out_size == 0)
		return;
	/* A parsed note is some 20 KiB: not on the watcher's stack. */
	if ((n = calloc(1, sizeof(*n))) == NULL) {
		snprintf(out, out_size, "out of memory");
		return;
	}
	err_clear(&e);
	if (tlog_note_parse(note, len, n, &e) != 0) {
		snprintf(out, out_size, "the checkpoint does not parse: %s",
		    err_msg(&e));
		free(n);
		return;
	}
	for (i = 0; i < p->n_witness; i++) {
		r = tlog_cosig_verify(n, &p->witness[i], &t, NULL);
		if (r == 0) {
			good++;
			list_add(valid, sizeof(valid), p->witness[i].name);
		} else if (r == ERR_NOT_FOUND) {
			list_add(missing, sizeof(missing), p->witness[i].name);
		} else {
			list_add(invalid, sizeof(invalid), p->witness[i].name);
		}
	}
	snprintf(out, out_size, "%u of %u needed (valid: %s; missing: %s; "
	    "invalid: %s)", good, p->quorum, valid[0] ? valid : "none",
	    missing[0] ? missing : "none", invalid[0] ? invalid : "none");
	free(n);
}
