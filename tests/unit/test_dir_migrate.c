/*
 * test_dir_migrate.c - devid-directory migrate below the command line:
 * the read-only dump of a SQLite directory (rows in order, the queue
 * counter past acknowledged entries, the file never changed) and what it
 * refuses (a missing file, a database of another program or an older
 * schema, a damaged hash column); and, when DEVID_TEST_PG_URI names a
 * PostgreSQL database (tests/integration/test-dir-migrate.sh), the copy
 * and what its verification refuses: a target that holds data, a device
 * the log never added, usage that is not the size of the queues, a
 * transparency log leaf without its event or after a gap, each leaving
 * the target empty or as it was.  The dump hands over the tree's leaves
 * and the latest checkpoint, then the blobs and their links, and skips
 * them for a sink without those callbacks; blobs and links survive the
 * copy, and a link to a message the source does not hold leaves the
 * target empty.  Logs damaged in their chain
 * are the integration test's (it has real devices to sign them).
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
#include <libpq-fe.h>
#include <sqlite3.h>

#include "dir-migrate.h"
#include "dir-store.h"
#include "dir-test-util.h"
#include "errors.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define DEV_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DEV_X "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define BLOB1 "1111111111111111111111111111111111111111111111111111111111111111"
#define BLOB2 "2222222222222222222222222222222222222222222222222222222222222222"

static const char *pg_uri;

struct fx {
	char *dir;
	char path[256];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(f->dir = ttmpdir_make());
	snprintf(f->path, sizeof(f->path), "%s/dir.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	ttmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* Runs sql on the SQLite file at path (outside the store). */
static void
sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* The file's bytes, for "unchanged" (caller frees). */
static char *
file_bytes(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	assert_non_null(buf = malloc((size_t)n + 1));
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

/* A directory with two accounts, a device of alice's (stored directly:
 * the store does not check signatures) and one message queued for it
 * and acknowledged, and a second still queued; both were posted with
 * BLOB1 (the link of the first went with it), and BLOB2 was never
 * posted. */
static void
populate(const char *path)
{
	static const uint8_t spki[3] = { 1, 2, 3 }, id1[1] = { 1 },
	    id2[1] = { 2 };
	const char *devs[1] = { DEV_A }, *blobs[1] = { BLOB1 };
	const struct dir_queue_limits lim = { 10, 10, 1000 };
	struct dir_event_row ev;
	struct dir_device_row dev = { DEV_A, "{}", spki, sizeof(spki) };
	uint64_t exp1, exp2;
	struct dir_store *s = NULL;
	struct err_ctx e;
	uint64_t removed;

	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(path, &s, &e), 0);
	assert_int_equal(s->ops->account_create(s, BOB, "h-bob", 7, &e), 0);
	assert_int_equal(s->ops->account_create(s, ALICE, "h-alice", 5, &e),
	    0);
	memset(&ev, 0, sizeof(ev));
	ev.account = ALICE;
	ev.seq = 1;
	ev.time = 10;
	ev.type = "add";
	memset(ev.hash, 0x11, 32);
	ev.json = "{}";
	assert_int_equal(s->ops->log_append_add(s, &ev, &dev, 10, &e), 0);
	exp1 = 1000;
	exp2 = 1001;
	assert_int_equal(s->ops->blob_put(s, BLOB1, DEV_X, BOB, 100, 20,
	    &exp1, 1000, NULL, &e), 0);
	assert_int_equal(s->ops->blob_put(s, BLOB2, DEV_X, BOB, 30, 21,
	    &exp2, 1000, NULL, &e), 0);
	assert_int_equal(s->ops->message_put(s, DEV_X, id1, 1, "one", devs,
	    1, blobs, 1, &lim, &e), 0);
	assert_int_equal(s->ops->message_put(s, DEV_X, id2, 1, "two!", devs,
	    1, blobs, 1, &lim, &e), 0);
	assert_int_equal(s->ops->inbox_ack(s, DEV_A, 1, &removed, &e), 0);
	assert_int_equal(removed, 1);
	dir_store_close(s);
}

/* What a dump handed over, as one line per row. */
struct rec {
	char text[2048];
	uint64_t queue_last;
};

static void
rec_add(struct rec *r, const char *fmt, ...)
{
	size_t n = strlen(r->text);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->text + n, sizeof(r->text) - n, fmt, ap);
	va_end(ap);
}

static int
rec_account(void *arg, const struct dir_dump_account *a, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "account %s %s %llu\n", a->name, a->pw_hash,
	    (unsigned long long)a->created);
	return 0;
}

static int
rec_event(void *arg, const struct dir_event_row *ev, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "event %s %llu %s %02x\n", ev->account,
	    (unsigned long long)ev->seq, ev->type, ev->hash[0]);
	return 0;
}

static int
rec_device(void *arg, const struct dir_dump_device *d, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "device %.4s %s %d %zu\n", d->device, d->account,
	    d->active, d->sig_pub_len);
	return 0;
}

static int
rec_nonce(void *arg, const struct dir_dump_nonce *n, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "nonce %.4s\n", n->device);
	return 0;
}

static int
rec_message(void *arg, const struct dir_dump_message *m, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "message %s %llu\n", m->envelope,
	    (unsigned long long)m->refs);
	return 0;
}

static int
rec_queue(void *arg, const struct dir_dump_queue *q, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "queue %llu %.4s %s %llu\n", (unsigned long long)q->seq,
	    q->device, q->account != NULL ? q->account : "-",
	    (unsigned long long)q->size);
	return 0;
}

static int
rec_usage(void *arg, const char *account, uint64_t bytes, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "usage %s %llu\n", account, (unsigned long long)bytes);
	return 0;
}

static int
rec_queue_last(void *arg, uint64_t seq, struct err_ctx *e)
{
	(void)e;
	((struct rec *)arg)->queue_last = seq;
	return 0;
}

static int
rec_tlog_leaf(void *arg, uint64_t index, const char *account, uint64_t seq,
    const uint8_t hash[32], struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "leaf %llu %s %llu %02x\n", (unsigned long long)index,
	    account, (unsigned long long)seq, hash[0]);
	return 0;
}

static int
rec_checkpoint(void *arg, uint64_t size, const char *note,
    struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "checkpoint %llu %s\n", (unsigned long long)size, note);
	return 0;
}

static int
rec_blob(void *arg, const struct dir_dump_blob *b, struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "blob %.4s %.4s %s %llu %llu %llu %d\n", b->hash,
	    b->device, b->account, (unsigned long long)b->size,
	    (unsigned long long)b->created, (unsigned long long)b->expires,
	    b->linked);
	return 0;
}

static int
rec_blob_link(void *arg, uint64_t message, const char *hash,
    struct err_ctx *e)
{
	(void)e;
	rec_add(arg, "link %llu %.4s\n", (unsigned long long)message, hash);
	return 0;
}

static void
test_dump_rows_readonly(void **state)
{
	struct fx *f = *state;
	struct rec r;
	struct dir_dump_sink sink = { &r, rec_account, rec_event, rec_device,
	    rec_nonce, rec_message, rec_queue, rec_usage, rec_queue_last,
	    rec_tlog_leaf, rec_checkpoint, rec_blob, rec_blob_link };
	struct dir_store *s = NULL;
	struct err_ctx e;
	char *before, *after;
	size_t n_before, n_after;

	populate(f->path);
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(f->path, &s, &e), 0);
	assert_int_equal(s->ops->checkpoint_put(s, 1, "note", &e), 0);
	dir_store_close(s);
	before = file_bytes(f->path, &n_before);
	memset(&r, 0, sizeof(r));
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), 0);
	assert_string_equal(r.text,
	    "account alice@example.org h-alice 5\n"
	    "account bob@example.org h-bob 7\n"
	    "event alice@example.org 1 add 11\n"
	    "device aaaa alice@example.org 1 3\n"
	    "message two! 1\n"
	    "queue 2 aaaa alice@example.org 4\n"
	    "usage alice@example.org 4\n"
	    "leaf 0 alice@example.org 1 11\n"
	    "checkpoint 1 note\n"
	    "blob 1111 0123 bob@example.org 100 20 1000 1\n"
	    "blob 2222 0123 bob@example.org 30 21 1001 0\n"
	    "link 2 1111\n");
	assert_int_equal(r.queue_last, 2);
	after = file_bytes(f->path, &n_after);
	assert_int_equal(n_before, n_after);
	assert_memory_equal(before, after, n_before);
	free(before);
	free(after);
}

/* The counter of a queue whose last entries were acknowledged. */
static void
test_dump_queue_last_past_acked(void **state)
{
	struct fx *f = *state;
	struct rec r;
	struct dir_dump_sink sink = { &r, rec_account, rec_event, rec_device,
	    rec_nonce, rec_message, rec_queue, rec_usage, rec_queue_last,
	    rec_tlog_leaf, rec_checkpoint, rec_blob, rec_blob_link };
	struct dir_store *s = NULL;
	struct err_ctx e;
	uint64_t removed;

	populate(f->path);
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(f->path, &s, &e), 0);
	assert_int_equal(s->ops->inbox_ack(s, DEV_A, 2, &removed, &e), 0);
	assert_int_equal(removed, 1);
	dir_store_close(s);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), 0);
	assert_null(strstr(r.text, "queue "));
	assert_int_equal(r.queue_last, 2);
}

/* A sink's error stops the dump and comes back. */
static int
stop_at_event(void *arg, const struct dir_event_row *ev, struct err_ctx *e)
{
	(void)arg;
	(void)ev;
	return err_set(e, ERR_IO, "sink full");
}

static void
test_dump_sink_error(void **state)
{
	struct fx *f = *state;
	struct rec r;
	struct dir_dump_sink sink = { &r, rec_account, stop_at_event,
	    rec_device, rec_nonce, rec_message, rec_queue, rec_usage,
	    rec_queue_last, rec_tlog_leaf, rec_checkpoint, rec_blob,
	    rec_blob_link };
	struct err_ctx e;

	populate(f->path);
	memset(&r, 0, sizeof(r));
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), ERR_IO);
	assert_string_equal(err_msg(&e), "sink full");
	assert_null(strstr(r.text, "device"));
}

static void
test_dump_refuses(void **state)
{
	struct fx *f = *state;
	struct rec r;
	struct dir_dump_sink sink = { &r, rec_account, rec_event, rec_device,
	    rec_nonce, rec_message, rec_queue, rec_usage, rec_queue_last,
	    rec_tlog_leaf, rec_checkpoint, rec_blob, rec_blob_link };
	struct err_ctx e;
	char other[300];

	/* Missing: not created. */
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e),
	    ERR_NOT_FOUND);
	assert_non_null(strstr(err_msg(&e), f->path));
	assert_int_equal(access(f->path, F_OK), -1);

	/* Another program's database. */
	snprintf(other, sizeof(other), "%s/other.db", f->dir);
	sql_exec(other, "CREATE TABLE t(x);");
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(other, &sink, &e), ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "not a devid-directory"));

	/* An older schema: refused, not brought up to date. */
	populate(f->path);
	sql_exec(f->path, "UPDATE meta SET value = '1' WHERE key = 'schema';");
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e),
	    ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "schema version 1"));

	/* A version 2 database (before the transparency log) is older. */
	sql_exec(f->path, "UPDATE meta SET value = '2' WHERE key = 'schema';");
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e),
	    ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "schema version 2"));

	/* A hash column of the wrong length. */
	sql_exec(f->path, "UPDATE meta SET value = '4' WHERE key = 'schema';"
	    "UPDATE events SET hash = x'0011';");
	memset(&r, 0, sizeof(r));
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), "event 1 of 'alice@example.org' "
	    "has a damaged hash column"));

	/* A leaf's hash too. */
	sql_exec(f->path, "DELETE FROM events;"
	    "UPDATE tlog_leaves SET hash = x'00';");
	memset(&r, 0, sizeof(r));
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), "event 1 of 'alice@example.org' "
	    "has a damaged hash column"));
}

/* A sink written before the tree and the blobs (tlog_leaf, checkpoint,
 * blob and blob_link NULL) gets everything else. */
static void
test_dump_sink_without_tree(void **state)
{
	struct fx *f = *state;
	struct rec r;
	struct dir_dump_sink sink = { .arg = &r, .account = rec_account,
	    .event = rec_event, .device = rec_device, .nonce = rec_nonce,
	    .message = rec_message, .queue = rec_queue, .usage = rec_usage,
	    .queue_last = rec_queue_last };
	struct err_ctx e;

	populate(f->path);
	memset(&r, 0, sizeof(r));
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), 0);
	assert_non_null(strstr(r.text, "usage alice@example.org 4\n"));
	assert_null(strstr(r.text, "leaf"));
	assert_null(strstr(r.text, "blob"));
	assert_null(strstr(r.text, "link"));
	assert_int_equal(r.queue_last, 2);
}

/* The blob rows and links of a version 4 database, and a sink with
 * blobs but without the tree. */
static void
test_dump_blobs_only(void **state)
{
	struct fx *f = *state;
	struct rec r;
	struct dir_dump_sink sink = { .arg = &r, .account = rec_account,
	    .event = rec_event, .device = rec_device, .nonce = rec_nonce,
	    .message = rec_message, .queue = rec_queue, .usage = rec_usage,
	    .queue_last = rec_queue_last, .blob = rec_blob,
	    .blob_link = rec_blob_link };
	struct err_ctx e;

	populate(f->path);
	/* A link whose blob was removed is kept: it says "expired". */
	sql_exec(f->path, "DELETE FROM blobs WHERE hash = '" BLOB1 "';");
	memset(&r, 0, sizeof(r));
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e), 0);
	assert_null(strstr(r.text, "leaf"));
	assert_null(strstr(r.text, "blob 1111"));
	assert_non_null(strstr(r.text, "usage alice@example.org 4\n"
	    "blob 2222 0123 bob@example.org 30 21 1001 0\n"
	    "link 2 1111\n"));
	/* The version 3 schema, before the blobs, is older. */
	sql_exec(f->path, "UPDATE meta SET value = '3' WHERE key = 'schema';");
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_dump(f->path, &sink, &e),
	    ERR_CONFIG);
	assert_non_null(strstr(err_msg(&e), "schema version 3"));
}

/* --- PostgreSQL --- */

static void
pg_exec(const char *sql)
{
	PGconn *c = PQconnectdb(pg_uri);
	PGresult *res;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("%s", PQerrorMessage(c));
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
}

/* The number of rows of a table of the target. */
static long
pg_count(const char *table)
{
	PGconn *c = PQconnectdb(pg_uri);
	PGresult *res;
	char sql[128];
	long n;

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(c);
	return n;
}

static int
pg_setup(void **state)
{
	pg_exec("SET client_min_messages = warning; "
	    "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;");
	return setup(state);
}

static void
assert_target_empty(void)
{
	assert_int_equal(pg_count("accounts"), 0);
	assert_int_equal(pg_count("events"), 0);
	assert_int_equal(pg_count("devices"), 0);
	assert_int_equal(pg_count("queue"), 0);
	assert_int_equal(pg_count("messages"), 0);
	assert_int_equal(pg_count("blobs"), 0);
	assert_int_equal(pg_count("blob_links"), 0);
}

/* A device in the devices table that the log never added. */
static void
test_pg_device_not_in_log(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;

	populate(f->path);
	/* Without alice's event and device, the logs are empty. */
	sql_exec(f->path, "DELETE FROM events; DELETE FROM devices;"
	    "DELETE FROM tlog_leaves; DELETE FROM tlog_nodes;");
	sql_exec(f->path, "INSERT INTO devices(device, account, active, "
	    "record, sig_pub, added_time) VALUES ('" DEV_X "', "
	    "'bob@example.org', 1, '{}', x'01', 3);");
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, NULL, &e),
	    ERR_CHAIN);
	assert_non_null(strstr(err_msg(&e), "device 0123456789abcdef is "
	    "active in the devices table but not in the log of "
	    "'bob@example.org'"));
	assert_target_empty();
}

/* An event whose JSON is no event: the log does not verify. */
static void
test_pg_event_not_an_event(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;

	/* populate()'s event is "{}": the copy refuses it. */
	populate(f->path);
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, NULL, &e),
	    ERR_CHAIN);
	assert_non_null(strstr(err_msg(&e), "the log of 'alice@example.org' "
	    "does not verify: event 1"));
	assert_target_empty();
}

/* Usage that is not the size of the queued entries; then a target that
 * holds data is refused and left as it was. */
static void
test_pg_usage_and_not_empty(void **state)
{
	struct fx *f = *state;
	struct dir_migrate_counts n;
	struct err_ctx e;

	populate(f->path);
	/* Without events and devices, the logs are empty and verify. */
	sql_exec(f->path, "DELETE FROM events; DELETE FROM devices; "
	    "DELETE FROM tlog_leaves; DELETE FROM tlog_nodes; "
	    "UPDATE account_usage SET bytes = bytes + 1;");
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, NULL, &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), "usage (5 bytes) is not the size "
	    "of their queued messages (4 bytes)"));
	assert_target_empty();

	sql_exec(f->path, "UPDATE account_usage SET bytes = bytes - 1;");
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, &n, &e), 0);
	assert_int_equal(n.accounts, 2);
	assert_int_equal(n.events, 0);
	assert_int_equal(n.queued, 1);
	assert_int_equal(n.queue_last, 2);
	assert_int_equal(n.tlog_size, 0);
	assert_int_equal(n.blobs, 2);
	assert_int_equal(n.blob_bytes, 130);
	assert_int_equal(n.blob_links, 1);
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, NULL, &e),
	    ERR_EXISTS);
	assert_non_null(strstr(err_msg(&e), "is not empty (table accounts"));
	assert_int_equal(pg_count("accounts"), 2);
	assert_int_equal(pg_count("queue"), 1);
}

/*
 * The tree's leaves must name events of the copy and come without a gap;
 * the checkpoint is copied.  (A tree of real events, copied and compared
 * root for root, is test-dir-migrate.sh's: it has devices to sign them.)
 */
static void
test_pg_tree_refusals_and_checkpoint(void **state)
{
	struct fx *f = *state;
	struct dir_migrate_counts n;
	struct dir_store *s = NULL;
	struct err_ctx e;

	populate(f->path);
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(f->path, &s, &e), 0);
	assert_int_equal(s->ops->checkpoint_put(s, 1, "a note\n", &e), 0);
	dir_store_close(s);
	/* A leaf whose event is gone. */
	sql_exec(f->path, "DELETE FROM events; DELETE FROM devices;");
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, NULL, &e),
	    ERR_CHAIN);
	assert_non_null(strstr(err_msg(&e), "transparency log leaf 0 names "
	    "event 1 of 'alice@example.org'"));
	assert_target_empty();
	assert_int_equal(pg_count("tlog_leaves"), 0);
	assert_int_equal(pg_count("tlog_nodes"), 0);
	assert_int_equal(pg_count("tlog_checkpoint"), 0);
	/* A gap. */
	sql_exec(f->path, "UPDATE tlog_leaves SET idx = 1;");
	err_clear(&e);
	assert_int_equal(dir_migrate_run(f->path, pg_uri, NULL, &e),
	    ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "leaf 1 where leaf 0 is due"));
	assert_target_empty();
	/* No leaves: the checkpoint alone is copied. */
	sql_exec(f->path, "DELETE FROM tlog_leaves; DELETE FROM tlog_nodes;");
	err_clear(&e);
	if (dir_migrate_run(f->path, pg_uri, &n, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(n.tlog_size, 0);
	assert_int_equal(n.checkpoint_size, 1);
	assert_int_equal(pg_count("tlog_checkpoint"), 1);
}

/*
 * Blob rows and links survive the copy, and the target serves them as
 * the source did: the addressed device may fetch the linked blob, a
 * link whose blob was removed says "gone", the never-linked blob is kept
 * and counts against its account.  A link to a message the source does
 * not hold (written past the foreign key) leaves the target empty.
 */
static void
test_pg_blobs_copied(void **state)
{
	struct fx *f = *state;
	struct dir_migrate_counts n;
	struct dir_store *s = NULL;
	struct err_ctx e;
	uint64_t size = 0, expires = 0, used = 0;
	int kept = 0;

	populate(f->path);
	/* Without events and devices, the logs are empty and verify. */
	sql_exec(f->path, "DELETE FROM events; DELETE FROM devices; "
	    "DELETE FROM tlog_leaves; DELETE FROM tlog_nodes;"
	    "INSERT INTO blob_links(message, hash) VALUES (77, '" BLOB2
	    "');");
	err_clear(&e);
	assert_int_not_equal(dir_migrate_run(f->path, pg_uri, NULL, &e), 0);
	assert_non_null(strstr(err_msg(&e), "message 77"));
	assert_target_empty();

	/* Now a link whose blob is gone, as after an expiry. */
	sql_exec(f->path, "DELETE FROM blob_links WHERE message = 77;"
	    "UPDATE blob_links SET hash = '" BLOB2 "';"
	    "INSERT INTO blob_links(message, hash) VALUES (2, '" BLOB1 "');"
	    "DELETE FROM blobs WHERE hash = '" BLOB1 "';"
	    "UPDATE blobs SET linked = 1;");
	err_clear(&e);
	if (dir_migrate_run(f->path, pg_uri, &n, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(n.blobs, 1);
	assert_int_equal(n.blob_bytes, 30);
	assert_int_equal(n.blob_links, 2);
	assert_int_equal(pg_count("blobs"), 1);
	assert_int_equal(pg_count("blob_links"), 2);

	assert_int_equal(dir_store_pg_open(pg_uri, &s, &e), 0);
	assert_int_equal(s->ops->blob_get(s, BLOB2, DEV_A, &size, &expires,
	    &e), 0);
	assert_int_equal(size, 30);
	assert_int_equal(expires, 1001);
	assert_int_equal(s->ops->blob_get(s, BLOB1, DEV_A, &size, &expires,
	    &e), ERR_GONE);
	assert_int_equal(s->ops->blob_get(s, BLOB2, DEV_X, &size, &expires,
	    &e), ERR_DENIED);
	assert_int_equal(s->ops->blob_exists(s, BLOB2, &kept, &e), 0);
	assert_int_equal(kept, 1);
	assert_int_equal(s->ops->blob_usage(s, BOB, &used, &e), 0);
	assert_int_equal(used, 30);
	dir_store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dump_rows_readonly,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_dump_queue_last_past_acked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dump_sink_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dump_refuses, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dump_sink_without_tree,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_dump_blobs_only, setup,
		    teardown),
	};
	const struct CMUnitTest pg_tests[] = {
		cmocka_unit_test_setup_teardown(test_pg_device_not_in_log,
		    pg_setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_event_not_an_event,
		    pg_setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_usage_and_not_empty,
		    pg_setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_tree_refusals_and_checkpoint, pg_setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_blobs_copied,
		    pg_setup, teardown),
	};
	int r;

	r = cmocka_run_group_tests_name("sqlite dump", tests, NULL, NULL);
	if ((pg_uri = getenv("DEVID_TEST_PG_URI")) != NULL)
		r |= cmocka_run_group_tests_name("migrate to postgresql",
		    pg_tests, NULL, NULL);
	return r;
}
