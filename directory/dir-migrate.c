/*
 * dir-migrate.c - devid-directory migrate (dir-migrate.h).
 *
 * The source's dump (dir_store_sqlite_dump()) goes through a counting
 * sink into the import's sink (dir_store_pg_import_begin()); the import
 * is then read back in its own transaction through a sink that counts
 * again and verifies every account log, and commits only when all of it
 * holds.  Both sinks fold the tree's leaves into a frontier, so the
 * source's root, the root of the leaves read back and the root of the
 * nodes the target stored can be compared.  Blob rows and links are
 * counted on both sides; each link read back must name a message the
 * copy holds.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acctlog.h"
#include "dir-migrate.h"
#include "dir-store.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

/* The logs are verified without heads: any well-formed directory id. */
static const char verify_directory_id[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* The source's rows on their way to the target, counted. */
struct copy_ctx {
	const struct dir_dump_sink *to;
	struct dir_migrate_counts n;
	struct merkle_frontier tlog;    /* the source's leaves */
};

/* Appends leaf index (event seq of account with hash) to f, which must
 * hold index leaves. */
static int
tlog_fold(struct merkle_frontier *f, uint64_t index, const char *account,
    uint64_t seq, const uint8_t hash[32], const char *whose,
    struct err_ctx *e)
{
	uint8_t leaf[MERKLE_HASH_LEN];
	int r;

	if (index != f->size)
		return err_set(e, ERR_FORMAT, "%s transparency log has leaf %"
		    PRIu64 " where leaf %" PRIu64 " is due: its leaves have "
		    "a gap", whose, index, f->size);
	if ((r = tlog_leaf_hash(account, seq, hash, leaf)) != 0)
		return err_set(e, r, "%s transparency log: leaf %" PRIu64
		    " (event %" PRIu64 " of '%.128s') has no leaf hash", whose,
		    index, seq, account);
	return merkle_frontier_append(f, leaf, NULL, NULL, e);
}

static int
copy_account(void *arg, const struct dir_dump_account *a, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.accounts++;
	return c->to->account(c->to->arg, a, e);
}

static int
copy_event(void *arg, const struct dir_event_row *ev, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.events++;
	return c->to->event(c->to->arg, ev, e);
}

static int
copy_device(void *arg, const struct dir_dump_device *d, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.devices++;
	c->n.active_devices += d->active != 0;
	return c->to->device(c->to->arg, d, e);
}

static int
copy_nonce(void *arg, const struct dir_dump_nonce *n, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.nonces++;
	return c->to->nonce(c->to->arg, n, e);
}

static int
copy_message(void *arg, const struct dir_dump_message *m, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.messages++;
	return c->to->message(c->to->arg, m, e);
}

static int
copy_queue(void *arg, const struct dir_dump_queue *q, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.queued++;
	c->n.queue_bytes += q->account != NULL ? q->size : 0;
	return c->to->queue(c->to->arg, q, e);
}

static int
copy_usage(void *arg, const char *account, uint64_t bytes,
    struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.usage_rows++;
	c->n.usage_bytes += bytes;
	return c->to->usage(c->to->arg, account, bytes, e);
}

static int
copy_queue_last(void *arg, uint64_t seq, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.queue_last = seq;
	return c->to->queue_last(c->to->arg, seq, e);
}

static int
copy_tlog_leaf(void *arg, uint64_t index, const char *account, uint64_t seq,
    const uint8_t hash[32], struct err_ctx *e)
{
	struct copy_ctx *c = arg;
	int r;

	if ((r = tlog_fold(&c->tlog, index, account, seq, hash, "the "
	    "source's", e)) != 0)
		return r;
	c->n.tlog_size = c->tlog.size;
	return c->to->tlog_leaf(c->to->arg, index, account, seq, hash, e);
}

static int
copy_checkpoint(void *arg, uint64_t size, const char *note,
    struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.checkpoint_size = size;
	return c->to->checkpoint(c->to->arg, size, note, e);
}

static int
copy_blob(void *arg, const struct dir_dump_blob *b, struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.blobs++;
	c->n.blob_bytes += b->size;
	return c->to->blob(c->to->arg, b, e);
}

static int
copy_blob_link(void *arg, uint64_t message, const char *hash,
    struct err_ctx *e)
{
	struct copy_ctx *c = arg;

	c->n.blob_links++;
	return c->to->blob_link(c->to->arg, message, hash, e);
}

/* --- verification of what the target holds --- */

/* One account being verified, and what its devices table says. */
struct verify_account {
	char *name;
	struct acctlog_state st;
	uint64_t active_rows;
	uint64_t leaf_seq;              /* of its last leaf read back */
};

struct verify_ctx {
	struct verify_account *acc;     /* in bytewise name order */
	size_t n, cap;
	uint64_t *msg;                  /* the message ids, ascending */
	size_t n_msg, cap_msg;
	char last_blob[65];             /* the hash of the last blob row */
	struct dir_migrate_counts n_rows;
	struct merkle_frontier tlog;    /* the leaves read back */
};

static int
account_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct verify_account *)elem)->name);
}

/* The account called name; ERR_NOT_FOUND (naming what refers to it)
 * when the target has no such account. */
static int
verify_find(struct verify_ctx *v, const char *name, const char *what,
    struct verify_account **out, struct err_ctx *e)
{
	struct verify_account *a = NULL;

	/* Rows come in account order: the last one found is likely. */
	if (v->n > 0 && strcmp(v->acc[v->n - 1].name, name) == 0)
		a = &v->acc[v->n - 1];
	if (a == NULL)
		a = bsearch(name, v->acc, v->n, sizeof(*v->acc), account_cmp);
	if (a == NULL)
		return err_set(e, ERR_NOT_FOUND, "%s refers to account "
		    "'%.128s', which the copy does not hold", what, name);
	*out = a;
	return 0;
}

static int
verify_account(void *arg, const struct dir_dump_account *a,
    struct err_ctx *e)
{
	struct verify_ctx *v = arg;
	struct verify_account *x;
	size_t cap;
	int r;

	if (v->n > 0 && strcmp(v->acc[v->n - 1].name, a->name) >= 0)
		return err_set(e, ERR_INTERNAL, "the accounts are not read "
		    "back in order");
	if (v->n == v->cap) {
		cap = v->cap > 0 ? v->cap * 2 : 64;
		if ((x = realloc(v->acc, cap * sizeof(*x))) == NULL)
			return err_set(e, ERR_ALLOC, "out of memory");
		v->acc = x;
		v->cap = cap;
	}
	x = &v->acc[v->n];
	memset(x, 0, sizeof(*x));
	if ((x->name = strdup(a->name)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	v->n++;
	v->n_rows.accounts++;
	if ((r = acctlog_state_init(&x->st, a->name, verify_directory_id,
	    e)) != 0)
		return err_wrap(e, r, "account '%.128s' of the copy: %s",
		    a->name, err_msg(e));
	return 0;
}

/*
 * Applies one stored event to its account's state: the stored columns
 * must say what the event's JSON says, and the event must continue the
 * log (seq, prev, recomputed hash, record and signatures).
 */
static int
verify_event(void *arg, const struct dir_event_row *row, struct err_ctx *e)
{
	struct verify_ctx *v = arg;
	struct verify_account *a;
	struct acctlog_event ev;
	json_t *obj;
	int r;

	v->n_rows.events++;
	if ((r = verify_find(v, row->account, "an event", &a, e)) != 0)
		return r;
	if ((obj = json_loads(row->json, 0, NULL)) == NULL)
		return err_set(e, ERR_CHAIN, "the log of '%.128s' does not "
		    "verify: event %" PRIu64 " is not JSON", row->account,
		    row->seq);
	r = acctlog_event_from_json(obj, &ev, e);
	json_decref(obj);
	if (r != 0)
		return err_wrap(e, ERR_CHAIN, "the log of '%.128s' does not "
		    "verify: event %" PRIu64 ": %s", row->account, row->seq,
		    err_msg(e));
	if (ev.seq != row->seq || ev.time != row->time ||
	    acctlog_type_name(ev.type) == NULL ||
	    strcmp(acctlog_type_name(ev.type), row->type) != 0 ||
	    memcmp(ev.prev, row->prev, 32) != 0 ||
	    memcmp(ev.hash, row->hash, 32) != 0)
		return err_set(e, ERR_CHAIN, "the log of '%.128s' does not "
		    "verify: the stored columns of event %" PRIu64 " (seq, "
		    "time, type, prev or hash) differ from its JSON",
		    row->account, row->seq);
	if ((r = acctlog_state_apply(&a->st, &ev, 1, e)) != 0)
		return err_wrap(e, ERR_CHAIN, "the log of '%.128s' does not "
		    "verify at event %" PRIu64 ": %s", row->account, row->seq,
		    err_msg(e));
	return 0;
}

/* A device row must agree with its account's log: active exactly when
 * the log says so, with the key of the record the log added. */
static int
verify_device(void *arg, const struct dir_dump_device *d, struct err_ctx *e)
{
	struct verify_ctx *v = arg;
	struct verify_account *a;
	const struct acctlog_device *ld;
	int r;

	v->n_rows.devices++;
	if ((r = verify_find(v, d->account, "a device", &a, e)) != 0)
		return r;
	ld = acctlog_state_find(&a->st, d->device);
	if (d->active) {
		v->n_rows.active_devices++;
		a->active_rows++;
		if (ld == NULL)
			return err_set(e, ERR_CHAIN, "device %.16s is active "
			    "in the devices table but not in the log of "
			    "'%.128s'", d->device, d->account);
		if (d->sig_pub_len != ld->rec.sig_pub_len ||
		    memcmp(d->sig_pub, ld->rec.sig_pub, d->sig_pub_len) != 0)
			return err_set(e, ERR_CHAIN, "device %.16s of "
			    "'%.128s': the key in the devices table is not "
			    "the one its log added", d->device, d->account);
	} else if (ld != NULL) {
		return err_set(e, ERR_CHAIN, "device %.16s is active in the "
		    "log of '%.128s' but not in the devices table", d->device,
		    d->account);
	}
	return 0;
}

static int
verify_nonce(void *arg, const struct dir_dump_nonce *n, struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	(void)n;
	(void)e;
	v->n_rows.nonces++;
	return 0;
}

/* Keeps the ids of the messages, for the links read back last. */
static int
verify_message(void *arg, const struct dir_dump_message *m,
    struct err_ctx *e)
{
	struct verify_ctx *v = arg;
	uint64_t *x;
	size_t cap;

	if (v->n_msg > 0 && v->msg[v->n_msg - 1] >= m->id)
		return err_set(e, ERR_INTERNAL, "the messages are not read "
		    "back in order");
	if (v->n_msg == v->cap_msg) {
		cap = v->cap_msg > 0 ? v->cap_msg * 2 : 256;
		if (cap > SIZE_MAX / sizeof(*x) ||
		    (x = realloc(v->msg, cap * sizeof(*x))) == NULL)
			return err_set(e, ERR_ALLOC, "out of memory");
		v->msg = x;
		v->cap_msg = cap;
	}
	v->msg[v->n_msg++] = m->id;
	v->n_rows.messages++;
	return 0;
}

static int
verify_queue(void *arg, const struct dir_dump_queue *q, struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	(void)e;
	v->n_rows.queued++;
	v->n_rows.queue_bytes += q->account != NULL ? q->size : 0;
	return 0;
}

static int
verify_usage(void *arg, const char *account, uint64_t bytes,
    struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	(void)account;
	(void)e;
	v->n_rows.usage_rows++;
	v->n_rows.usage_bytes += bytes;
	return 0;
}

static int
verify_queue_last(void *arg, uint64_t seq, struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	(void)e;
	v->n_rows.queue_last = seq;
	return 0;
}

/* A leaf read back must name an event of the copy, each account's leaves
 * in seq order. */
static int
verify_tlog_leaf(void *arg, uint64_t index, const char *account,
    uint64_t seq, const uint8_t hash[32], struct err_ctx *e)
{
	struct verify_ctx *v = arg;
	struct verify_account *a;
	int r;

	if ((r = verify_find(v, account, "a transparency log leaf", &a,
	    e)) != 0)
		return r;
	if (seq == 0 || seq > a->st.seq || seq <= a->leaf_seq)
		return err_set(e, ERR_CHAIN, "transparency log leaf %" PRIu64
		    " names event %" PRIu64 " of '%.128s', which the copy's "
		    "log (at seq %" PRIu64 ", last leaf at seq %" PRIu64 ") "
		    "cannot have next", index, seq, account, a->st.seq,
		    a->leaf_seq);
	a->leaf_seq = seq;
	if ((r = tlog_fold(&v->tlog, index, account, seq, hash, "the copy's",
	    e)) != 0)
		return r;
	v->n_rows.tlog_size = v->tlog.size;
	return 0;
}

static int
verify_checkpoint(void *arg, uint64_t size, const char *note,
    struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	(void)note;
	(void)e;
	v->n_rows.checkpoint_size = size;
	return 0;
}

static int
verify_blob(void *arg, const struct dir_dump_blob *b, struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	if (v->n_rows.blobs > 0 && strcmp(v->last_blob, b->hash) >= 0)
		return err_set(e, ERR_INTERNAL, "the blobs are not read back "
		    "in order");
	snprintf(v->last_blob, sizeof(v->last_blob), "%s", b->hash);
	v->n_rows.blobs++;
	v->n_rows.blob_bytes += b->size;
	return 0;
}

static int
msg_id_cmp(const void *key, const void *elem)
{
	uint64_t a = *(const uint64_t *)key, b = *(const uint64_t *)elem;

	return a < b ? -1 : a > b;
}

/* A link read back must name a message of the copy (its blob may have
 * expired: links outlive blobs). */
static int
verify_blob_link(void *arg, uint64_t message, const char *hash,
    struct err_ctx *e)
{
	struct verify_ctx *v = arg;

	v->n_rows.blob_links++;
	if (bsearch(&message, v->msg, v->n_msg, sizeof(*v->msg),
	    msg_id_cmp) == NULL)
		return err_set(e, ERR_IO, "the copy links blob %.64s to "
		    "message %" PRIu64 ", which it does not hold", hash,
		    message);
	return 0;
}

static void
verify_clear(struct verify_ctx *v)
{
	size_t i;

	for (i = 0; i < v->n; i++) {
		free(v->acc[i].name);
		acctlog_state_clear(&v->acc[i].st);
	}
	free(v->acc);
	free(v->msg);
	memset(v, 0, sizeof(*v));
}

/* After the read-back: every account's active devices are in the devices
 * table, and the target holds what the source held. */
static int
verify_totals(const struct verify_ctx *v, const struct dir_migrate_counts *src,
    struct err_ctx *e)
{
	const struct dir_migrate_counts *t = &v->n_rows;
	size_t i;

	for (i = 0; i < v->n; i++) {
		if (v->acc[i].active_rows != v->acc[i].st.n_devices)
			return err_set(e, ERR_CHAIN, "the log of '%.128s' has "
			    "%zu active devices but the devices table %" PRIu64,
			    v->acc[i].name, v->acc[i].st.n_devices,
			    v->acc[i].active_rows);
	}
#define SAME(field, what)						\
	do {								\
		if (t->field != src->field)				\
			return err_set(e, ERR_IO, "the copy holds %"	\
			    PRIu64 " %s, the source %" PRIu64, t->field, \
			    what, src->field);				\
	} while (0)
	SAME(accounts, "accounts");
	SAME(events, "events");
	SAME(devices, "devices");
	SAME(active_devices, "active devices");
	SAME(messages, "messages");
	SAME(queued, "queue entries");
	SAME(usage_rows, "account usage rows");
	SAME(usage_bytes, "bytes of account usage");
	SAME(tlog_size, "transparency log leaves");
	SAME(checkpoint_size, "as the size of the latest checkpoint");
	SAME(blobs, "blobs");
	SAME(blob_bytes, "bytes of blobs");
	SAME(blob_links, "links to blobs");
#undef SAME
	if (t->usage_bytes != t->queue_bytes)
		return err_set(e, ERR_IO, "the accounts' usage (%" PRIu64
		    " bytes) is not the size of their queued messages (%"
		    PRIu64 " bytes)", t->usage_bytes, t->queue_bytes);
	if (t->queue_last < src->queue_last)
		return err_set(e, ERR_IO, "the queue counter of the copy (%"
		    PRIu64 ") is behind the source's (%" PRIu64 ")",
		    t->queue_last, src->queue_last);
	return 0;
}

/*
 * The tree of the copy: the leaves read back and the nodes the target
 * stored both give the source's root, for the source's size.
 */
static int
verify_tree(struct dir_import *imp, const struct verify_ctx *v,
    const struct dir_migrate_counts *src, struct err_ctx *e)
{
	uint8_t leaves_root[MERKLE_HASH_LEN], nodes_root[MERKLE_HASH_LEN];
	uint64_t size;
	int r;

	if ((r = merkle_frontier_root(&v->tlog, leaves_root)) != 0)
		return err_set(e, r, "cannot compute the root of the copy's "
		    "transparency log");
	if ((r = dir_store_pg_import_tlog_root(imp, &size, nodes_root,
	    e)) != 0)
		return r;
	if (size != src->tlog_size)
		return err_set(e, ERR_IO, "the copy's transparency log has %"
		    PRIu64 " leaves, the source's %" PRIu64, size,
		    src->tlog_size);
	if (memcmp(leaves_root, src->tlog_root, MERKLE_HASH_LEN) != 0 ||
	    memcmp(nodes_root, src->tlog_root, MERKLE_HASH_LEN) != 0)
		return err_set(e, ERR_IO, "the copy's transparency log of %"
		    PRIu64 " leaves has another root than the source's",
		    size);
	return 0;
}

int
dir_migrate_run(const char *from, const char *to,
    struct dir_migrate_counts *copied, struct err_ctx *e)
{
	struct dir_store *target = NULL;
	struct dir_import *imp = NULL;
	struct copy_ctx cc;
	struct verify_ctx vc;
	struct dir_dump_sink copy = { &cc, copy_account, copy_event,
	    copy_device, copy_nonce, copy_message, copy_queue, copy_usage,
	    copy_queue_last, copy_tlog_leaf, copy_checkpoint, copy_blob,
	    copy_blob_link };
	struct dir_dump_sink verify = { &vc, verify_account, verify_event,
	    verify_device, verify_nonce, verify_message, verify_queue,
	    verify_usage, verify_queue_last, verify_tlog_leaf,
	    verify_checkpoint, verify_blob, verify_blob_link };
	int r;

	return_val_if_fail(from != NULL && to != NULL, ERR_INVALID_ARG);
	memset(&cc, 0, sizeof(cc));
	memset(&vc, 0, sizeof(vc));
	merkle_frontier_init(&cc.tlog);
	merkle_frontier_init(&vc.tlog);
	if ((r = dir_store_pg_open(to, &target, e)) != 0) {
		r = err_wrap(e, r, "the target: %s", err_msg(e));
		goto out;
	}
	if ((r = dir_store_pg_import_begin(target, &imp, e)) != 0)
		goto out;
	cc.to = dir_store_pg_import_sink(imp);
	if ((r = dir_store_sqlite_dump(from, &copy, e)) != 0) {
		r = err_wrap(e, r, "copying %s: %s", from, err_msg(e));
		goto out;
	}
	if ((r = merkle_frontier_root(&cc.tlog, cc.n.tlog_root)) != 0) {
		r = err_set(e, r, "cannot compute the root of the source's "
		    "transparency log");
		goto out;
	}
	if ((r = dir_store_pg_import_dump(imp, &verify, e)) != 0 ||
	    (r = verify_totals(&vc, &cc.n, e)) != 0 ||
	    (r = verify_tree(imp, &vc, &cc.n, e)) != 0) {
		r = err_wrap(e, r, "verifying the copy (nothing was kept): "
		    "%s", err_msg(e));
		goto out;
	}
	r = dir_store_pg_import_end(imp, 1, e);
	imp = NULL; /* ended */
	if (r == 0 && copied != NULL)
		*copied = cc.n;
 out:
	(void)dir_store_pg_import_end(imp, 0, NULL);
	verify_clear(&vc);
	dir_store_close(target);
	return r;
}
