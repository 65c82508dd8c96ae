/*
 * test_dir_store.c - the directory's stores: every operation, the
 * invariants it checks inside its transaction, that a refused change
 * leaves the database exactly as it was, the inbox limits, the update of
 * a database written by an older schema, the files' modes, and the
 * statements each connection keeps: reads stopped early, listings that
 * call the store again, writers on several threads, and closing; and the
 * global transparency log: one leaf per appended event in commit order,
 * stored nodes whose roots are the reference roots of the leaves, none
 * for a refused append or with the tree off, an account's latest leaf,
 * the checkpoint that never goes back, the sequencer, and the leaves
 * a schema update adds for the events stored before; and the blobs:
 * the quota of each account (exactly at it, one byte over), one
 * uploader per blob, a message linked only to its sender's kept blobs,
 * a blob served only to the devices a queued message naming it
 * addresses (gone once removed while queued), and the three rules of
 * expiry, links ending with their message on acknowledgement and
 * revocation.
 *
 * The cases run against SQLite in a temporary directory, or, when
 * DEVID_TEST_PG_URI names a PostgreSQL database, against that database
 * (its public schema dropped and made anew before each case; see
 * tests/integration/test-dir-store-pg.sh), with the cases that only
 * concern one backend run on that backend only.  PostgreSQL adds what
 * several directory processes on one database need: two stores
 * appending to one account give one chain, a nonce is used once across
 * them, a quota (of queued bytes and of blobs) holds across them, a
 * blob is never removed between being found and being linked, they
 * migrate the schema together,
 * a store outlives its connections being cut, a store that
 * watches hears of the changes the other commits, their appends give
 * one gap-free tree, and one of them at a time is the sequencer.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "dir-store.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"

/* Queue limits as an argument. */
#define LIM(queue, sender, quota) \
	(&(const struct dir_queue_limits){ (queue), (sender), (quota) })

struct fx {
	char dir[64];
	char path[128];
	struct dir_store *s;
	mode_t umask_saved;
};

/* The PostgreSQL database under test, or NULL for SQLite. */
static const char *pg_uri;

/* Runs sql on the PostgreSQL database under test, outside any store. */
static void
pg_exec(const char *sql)
{
	PGconn *db = PQconnectdb(pg_uri);
	PGresult *res;

	if (PQstatus(db) != CONNECTION_OK) {
		fprintf(stderr, "%s", PQerrorMessage(db));
		PQfinish(db);
		fail();
	}
	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s", PQerrorMessage(db));
		PQclear(res);
		PQfinish(db);
		fail();
	}
	PQclear(res);
	PQfinish(db);
}

/* Opens the store under test: f's SQLite file or the PostgreSQL
 * database. */
static int
store_open(struct fx *f, struct dir_store **s, struct err_ctx *e)
{
	if (pg_uri != NULL)
		return dir_store_pg_open(pg_uri, s, e);
	return dir_store_sqlite_open(f->path, s, e);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct err_ctx e;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/devid-store-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : P_tmpdir);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/dir.db", f->dir);
	f->umask_saved = umask(022);
	umask(f->umask_saved);
	err_clear(&e);
	/* An empty database for every case. */
	if (pg_uri != NULL)
		pg_exec("SET client_min_messages = warning; "
		    "DROP SCHEMA IF EXISTS public CASCADE; "
		    "CREATE SCHEMA public;");
	if (store_open(f, &f->s, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(f->s->ops->account_create(f->s, ALICE, "h-alice",
	    100, &e), 0);
	assert_int_equal(f->s->ops->account_create(f->s, BOB, "h-bob", 100,
	    &e), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *de;
	DIR *d;
	char p[384];

	dir_store_close(f->s);
	umask(f->umask_saved);
	/* Every database the test made, with its -wal and -shm. */
	if ((d = opendir(f->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A device id made of one repeated hex digit. */
static void
dev_id(char out[65], char c)
{
	memset(out, c, 64);
	out[64] = '\0';
}

/* Appends an add event for device id at the current tail. */
static int
add(struct fx *f, const char *account, const char *device,
    unsigned int max, struct err_ctx *e)
{
	struct dir_event_row ev;
	struct dir_device_row dev;
	uint8_t pub[3] = { 1, 2, 3 };
	char json[128];
	int r;

	memset(&ev, 0, sizeof(ev));
	ev.account = account;
	if ((r = f->s->ops->log_tail(f->s, account, &ev.seq, ev.prev,
	    e)) != 0)
		return r;
	ev.seq++;
	ev.time = 1000 + ev.seq;
	ev.type = "add";
	memset(ev.hash, (int)ev.seq, 32);
	snprintf(json, sizeof(json), "{\"seq\":%llu,\"device\":\"%.8s\"}",
	    (unsigned long long)ev.seq, device);
	ev.json = json;
	dev.device = device;
	dev.record_json = "{\"label\":\"x\"}";
	dev.sig_pub = pub;
	dev.sig_pub_len = sizeof(pub);
	return f->s->ops->log_append_add(f->s, &ev, &dev, max, e);
}

static int
do_revoke(struct fx *f, const char *account, const char *device,
    struct err_ctx *e)
{
	struct dir_event_row ev;
	int r;

	memset(&ev, 0, sizeof(ev));
	ev.account = account;
	if ((r = f->s->ops->log_tail(f->s, account, &ev.seq, ev.prev,
	    e)) != 0)
		return r;
	ev.seq++;
	ev.time = 1000 + ev.seq;
	ev.type = "revoke";
	memset(ev.hash, 0x80 | (int)ev.seq, 32);
	ev.json = "{}";
	return f->s->ops->log_append_revoke(f->s, &ev, device, e);
}

static int
count_cb(void *arg, uint64_t seq, const char *type, const char *json)
{
	(*(int *)arg)++;
	return 0;
}

static int
count_dev_cb(void *arg, const char *device, const char *record_json)
{
	(*(int *)arg)++;
	return 0;
}

static int
count_account_cb(void *arg, const char *name, uint64_t created)
{
	(*(int *)arg)++;
	return 0;
}

static int
count_active(struct fx *f, const char *account)
{
	struct err_ctx e;
	uint64_t seq;
	uint8_t h[32];
	int n = 0;

	err_clear(&e);
	assert_int_equal(f->s->ops->devices_active(f->s, account, &seq, h,
	    count_dev_cb, &n, &e), 0);
	return n;
}

static uint64_t
tail(struct fx *f, const char *account)
{
	struct err_ctx e;
	uint64_t seq;
	uint8_t h[32];

	err_clear(&e);
	assert_int_equal(f->s->ops->log_tail(f->s, account, &seq, h, &e), 0);
	return seq;
}

static void
test_accounts(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char *h = NULL;
	uint64_t created = 0;
	int n = 0;

	err_clear(&e);
	assert_int_equal(f->s->ops->account_create(f->s, ALICE, "other", 5,
	    &e), ERR_EXISTS);
	assert_int_equal(f->s->ops->account_get(f->s, ALICE, &h, &created,
	    &e), 0);
	assert_string_equal(h, "h-alice");
	assert_int_equal(created, 100);
	free(h);
	err_clear(&e);
	assert_int_equal(f->s->ops->account_get(f->s, "carol", NULL, NULL,
	    &e), ERR_NOT_FOUND);
	assert_non_null(strstr(err_msg(&e), "carol"));
	assert_int_equal(f->s->ops->account_list(f->s, count_account_cb, &n,
	    &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(f->s->ops->health(f->s, &e), 0);
}

static void
test_log_append_and_read(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char d1[65], d2[65];
	uint64_t seq;
	uint8_t h[32], zero[32] = { 0 };
	int n = 0;

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	err_clear(&e);
	assert_int_equal(f->s->ops->log_tail(f->s, ALICE, &seq, h, &e), 0);
	assert_int_equal(seq, 0);
	assert_memory_equal(h, zero, 32);
	assert_int_equal(add(f, ALICE, d1, 10, &e), 0);
	assert_int_equal(add(f, ALICE, d2, 10, &e), 0);
	assert_int_equal(tail(f, ALICE), 2);
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 100, 100,
	    count_cb, &n, &e), 0);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 1, 100, 100,
	    count_cb, &n, &e), 0);
	assert_int_equal(n, 1);
	n = 0;
	/* upto and limit both bound the answer. */
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 1, 100,
	    count_cb, &n, &e), 0);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 100, 1,
	    count_cb, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_active(f, ALICE), 2);
	assert_int_equal(count_active(f, BOB), 0);
	err_clear(&e);
	assert_int_equal(f->s->ops->log_tail(f->s, "nobody", &seq, h, &e),
	    ERR_NOT_FOUND);
}

static void
test_append_refusals_change_nothing(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	struct dir_event_row ev;
	struct dir_device_row dev;
	struct dir_device_info info;
	char d1[65], d2[65], d3[65];
	uint8_t pub[1] = { 9 };

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	dev_id(d3, 'c');
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 2, &e), 0);
	/* The same device again: active already. */
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 2, &e), ERR_EXISTS);
	/* The same device under another account. */
	err_clear(&e);
	assert_int_equal(add(f, BOB, d1, 2, &e), ERR_EXISTS);
	assert_non_null(strstr(err_msg(&e), "another account"));
	assert_int_equal(add(f, ALICE, d2, 2, &e), 0);
	/* Over the device limit. */
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d3, 2, &e), ERR_TOO_LARGE);
	/* A stale tail: seq that is not tail + 1, or a wrong prev. */
	memset(&ev, 0, sizeof(ev));
	ev.account = ALICE;
	ev.seq = 2;
	ev.type = "add";
	ev.json = "{}";
	dev.device = d3;
	dev.record_json = "{}";
	dev.sig_pub = pub;
	dev.sig_pub_len = 1;
	err_clear(&e);
	assert_int_equal(f->s->ops->log_append_add(f->s, &ev, &dev, 10, &e),
	    ERR_CHAIN);
	ev.seq = 3;
	err_clear(&e);
	assert_int_equal(f->s->ops->log_append_add(f->s, &ev, &dev, 10, &e),
	    ERR_CHAIN);
	/* An unknown account. */
	ev.account = "carol";
	ev.seq = 1;
	err_clear(&e);
	assert_int_equal(f->s->ops->log_append_add(f->s, &ev, &dev, 10, &e),
	    ERR_NOT_FOUND);
	/* Nothing of the above changed anything. */
	assert_int_equal(tail(f, ALICE), 2);
	assert_int_equal(tail(f, BOB), 0);
	assert_int_equal(count_active(f, ALICE), 2);
	err_clear(&e);
	assert_int_equal(f->s->ops->device_get(f->s, d3, &info, &e),
	    ERR_NOT_FOUND);
}

static void
test_revoke_and_readd(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	struct dir_device_info info;
	char d1[65], d2[65];
	uint8_t th[32];
	struct dir_session_info si;

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 10, &e), 0);
	memset(th, 7, sizeof(th));
	assert_int_equal(f->s->ops->session_put(f->s, th, d1, ALICE, 5000, 4,
	    &e), 0);
	assert_int_equal(f->s->ops->session_get(f->s, th, 10, &si, &e), 0);
	/* Revoking a device that is not active, or of another account. */
	err_clear(&e);
	assert_int_equal(do_revoke(f, ALICE, d2, &e), ERR_NOT_FOUND);
	err_clear(&e);
	assert_int_equal(do_revoke(f, BOB, d1, &e), ERR_NOT_FOUND);
	assert_int_equal(tail(f, ALICE), 1);
	assert_int_equal(tail(f, BOB), 0);
	err_clear(&e);
	assert_int_equal(do_revoke(f, ALICE, d1, &e), 0);
	assert_int_equal(tail(f, ALICE), 2);
	assert_int_equal(f->s->ops->device_get(f->s, d1, &info, &e), 0);
	assert_false(info.active);
	assert_string_equal(info.account, ALICE);
	/* Its session ended with it. */
	err_clear(&e);
	assert_int_equal(f->s->ops->session_get(f->s, th, 10, &si, &e),
	    ERR_NOT_FOUND);
	/* Twice is refused. */
	err_clear(&e);
	assert_int_equal(do_revoke(f, ALICE, d1, &e), ERR_NOT_FOUND);
	/* Added again, it is active again with a new add time. */
	assert_int_equal(add(f, ALICE, d1, 10, &e), 0);
	assert_int_equal(f->s->ops->device_get(f->s, d1, &info, &e), 0);
	assert_true(info.active);
	assert_int_equal(info.added_time, 1003);
	assert_int_equal(info.sig_pub_len, 3);
}

static void
test_sessions(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	struct dir_session_info si;
	char d1[65];
	uint8_t t[5][32];
	int i;

	dev_id(d1, 'a');
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 10, &e), 0);
	for (i = 0; i < 5; i++) {
		memset(t[i], i + 1, 32);
		assert_int_equal(f->s->ops->session_put(f->s, t[i], d1, ALICE,
		    1000 + (uint64_t)i, 3, &e), 0);
	}
	/* Only the newest three survive. */
	for (i = 0; i < 5; i++) {
		err_clear(&e);
		assert_int_equal(f->s->ops->session_get(f->s, t[i], 10, &si,
		    &e), i < 2 ? ERR_NOT_FOUND : 0);
	}
	assert_string_equal(si.device, d1);
	assert_string_equal(si.account, ALICE);
	assert_int_equal(si.expires, 1004);
	/* Expired at its expiry time. */
	err_clear(&e);
	assert_int_equal(f->s->ops->session_get(f->s, t[4], 1004, &si, &e),
	    ERR_NOT_FOUND);
	assert_int_equal(f->s->ops->purge(f->s, 1003, &e), 0);
	assert_int_equal(f->s->ops->session_get(f->s, t[4], 10, &si, &e), 0);
	err_clear(&e);
	assert_int_equal(f->s->ops->session_get(f->s, t[2], 10, &si, &e),
	    ERR_NOT_FOUND);
}

static void
test_nonces(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	uint8_t n1[16], n2[16];
	char d1[65], d2[65];

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	memset(n1, 1, sizeof(n1));
	memset(n2, 2, sizeof(n2));
	err_clear(&e);
	assert_int_equal(f->s->ops->nonce_use(f->s, d1, n1, 16, 500, &e), 0);
	assert_int_equal(f->s->ops->nonce_use(f->s, d1, n2, 16, 500, &e), 0);
	/* A nonce is per device. */
	assert_int_equal(f->s->ops->nonce_use(f->s, d2, n1, 16, 500, &e), 0);
	assert_int_equal(f->s->ops->nonce_use(f->s, d1, n1, 16, 500, &e),
	    ERR_REPLAY);
	/* Forgotten after it expired (the time window rejects it then). */
	assert_int_equal(f->s->ops->purge(f->s, 500, &e), 0);
	err_clear(&e);
	assert_int_equal(f->s->ops->nonce_use(f->s, d1, n1, 16, 900, &e), 0);
}

struct inbox_seen {
	uint64_t seq[16];
	char env[16][32];
	int n;
};

static int
inbox_cb(void *arg, uint64_t seq, const char *envelope)
{
	struct inbox_seen *s = arg;

	s->seq[s->n] = seq;
	snprintf(s->env[s->n], sizeof(s->env[0]), "%s", envelope);
	s->n++;
	return 0;
}

static struct inbox_seen
inbox(struct fx *f, const char *device, unsigned int limit, size_t max)
{
	struct inbox_seen s;
	struct err_ctx e;

	memset(&s, 0, sizeof(s));
	err_clear(&e);
	assert_int_equal(f->s->ops->inbox_get(f->s, device, 0, limit, max,
	    inbox_cb, &s, &e), 0);
	return s;
}

static void
test_messages(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	struct inbox_seen s;
	char d1[65], d2[65], d3[65];
	const char *to12[2], *to2[1];
	uint8_t id1[16], id2[16], id3[16];
	uint64_t removed;

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	dev_id(d3, 'c');
	to12[0] = d1;
	to12[1] = d2;
	to2[0] = d2;
	memset(id1, 1, 16);
	memset(id2, 2, 16);
	memset(id3, 3, 16);
	err_clear(&e);
	assert_int_equal(f->s->ops->message_put(f->s, d3, id1, 16, "{\"m\":1}",
	    to12, 2, NULL, 0, LIM(2, UINT_MAX, UINT64_MAX), &e), 0);
	/* The same id from the same sender is refused... */
	assert_int_equal(f->s->ops->message_put(f->s, d3, id1, 16, "{\"m\":9}",
	    to12, 2, NULL, 0, LIM(2, UINT_MAX, UINT64_MAX), &e), ERR_EXISTS);
	/* ...from another sender it is a different message. */
	err_clear(&e);
	assert_int_equal(f->s->ops->message_put(f->s, d1, id1, 16, "{\"m\":2}",
	    to2, 1, NULL, 0, LIM(2, UINT_MAX, UINT64_MAX), &e), 0);
	/* d2's queue is full now (2): the whole message is refused, d1's
	 * queue does not get it either. */
	err_clear(&e);
	assert_int_equal(f->s->ops->message_put(f->s, d3, id3, 16, "{\"m\":3}",
	    to12, 2, NULL, 0, LIM(2, UINT_MAX, UINT64_MAX), &e), ERR_TOO_LARGE);
	assert_non_null(strstr(err_msg(&e), "bbbbbbbb"));
	s = inbox(f, d1, 100, 1 << 20);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.env[0], "{\"m\":1}");
	s = inbox(f, d2, 100, 1 << 20);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.env[0], "{\"m\":1}");
	assert_string_equal(s.env[1], "{\"m\":2}");
	assert_true(s.seq[0] < s.seq[1]);
	/* limit and byte bound (the first item always comes). */
	assert_int_equal(inbox(f, d2, 1, 1 << 20).n, 1);
	assert_int_equal(inbox(f, d2, 100, 3).n, 1);
	assert_int_equal(inbox(f, d2, 100, 14).n, 2);
	/* Ack the first of d2: the envelope stays for d1. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, d2, s.seq[0], &removed,
	    &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(inbox(f, d2, 100, 1 << 20).n, 1);
	assert_int_equal(inbox(f, d1, 100, 1 << 20).n, 1);
	/* Another device's ack does not touch d2's queue. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, d3, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(f->s->ops->inbox_ack(f->s, d1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(inbox(f, d1, 100, 1 << 20).n, 0);
	/* Acknowledged everywhere, the envelope is deleted and its id is
	 * free again (recipients' replay stores catch a replayed id). */
	assert_int_equal(f->s->ops->message_put(f->s, d3, id1, 16, "{\"m\":4}",
	    to2, 1, NULL, 0, LIM(5, UINT_MAX, UINT64_MAX), &e), 0);
	/* Revoking d2 empties its queue. */
	assert_int_equal(inbox(f, d2, 100, 1 << 20).n, 2);
	assert_int_equal(add(f, BOB, d2, 10, &e), 0);
	assert_int_equal(do_revoke(f, BOB, d2, &e), 0);
	assert_int_equal(inbox(f, d2, 100, 1 << 20).n, 0);
}

/* The number of entries queued for device. */
static int
queued_cb(void *arg, uint64_t seq, const char *envelope)
{
	(*(int *)arg)++;
	return 0;
}

static int
queued(struct fx *f, const char *device)
{
	struct err_ctx e;
	int n = 0;

	err_clear(&e);
	assert_int_equal(f->s->ops->inbox_get(f->s, device, 0, 100000,
	    SIZE_MAX, queued_cb, &n, &e), 0);
	return n;
}

/* The oldest entry queued for device (0 for none). */
static int
first_cb(void *arg, uint64_t seq, const char *envelope)
{
	*(uint64_t *)arg = seq;
	return 1;
}

static uint64_t
first_seq(struct fx *f, const char *device)
{
	struct err_ctx e;
	uint64_t seq = 0;

	err_clear(&e);
	(void)f->s->ops->inbox_get(f->s, device, 0, 1, SIZE_MAX, first_cb,
	    &seq, &e);
	return seq;
}

static uint64_t
usage(struct fx *f, const char *account)
{
	struct err_ctx e;
	uint64_t bytes = 0;

	err_clear(&e);
	assert_int_equal(f->s->ops->account_usage(f->s, account, &bytes, &e),
	    0);
	return bytes;
}

/* Posts envelope from sender with an id made of the byte id_byte. */
static int
put(struct fx *f, const char *sender, int id_byte, const char *envelope,
    const char *const *to, size_t n, const struct dir_queue_limits *lim,
    struct err_ctx *e)
{
	uint8_t id[16];

	memset(id, id_byte, sizeof(id));
	err_clear(e);
	return f->s->ops->message_put(f->s, sender, id, sizeof(id), envelope,
	    to, n, NULL, 0, lim, e);
}

static void
test_sender_share(void **state)
{
	struct fx *f = *state;
	const struct dir_queue_limits *lim = LIM(10, 3, UINT64_MAX);
	struct err_ctx e;
	char s1[65], s2[65], b1[65], b2[65];
	const char *to_b1[1], *to_b2[1], *to_both[2];
	uint64_t removed, used;
	int i;

	dev_id(s1, 'a');
	dev_id(s2, 'c');
	dev_id(b1, 'b');
	dev_id(b2, 'd');
	to_b1[0] = b1;
	to_b2[0] = b2;
	to_both[0] = b2;
	to_both[1] = b1;
	err_clear(&e);
	assert_int_equal(add(f, ALICE, s1, 10, &e), 0);
	assert_int_equal(add(f, ALICE, s2, 10, &e), 0);
	assert_int_equal(add(f, BOB, b1, 10, &e), 0);
	assert_int_equal(add(f, BOB, b2, 10, &e), 0);
	/* Up to the share, then no further. */
	for (i = 0; i < 3; i++)
		assert_int_equal(put(f, s1, 1 + i, "{\"m\":1}", to_b1, 1, lim,
		    &e), 0);
	used = usage(f, BOB);
	assert_int_equal(used, 3 * 7);
	assert_int_equal(put(f, s1, 10, "{\"m\":1}", to_b1, 1, lim, &e),
	    ERR_FAIR_SHARE);
	/* The sentence names the device and its account and says what to
	 * do. */
	assert_non_null(strstr(err_msg(&e), "bbbbbbbbbbbbbbbb"));
	assert_non_null(strstr(err_msg(&e), "'" BOB "'"));
	assert_non_null(strstr(err_msg(&e), "3 unread messages"));
	assert_non_null(strstr(err_msg(&e), "wait until it reads them"));
	/* Refused with another recipient whose queue had room: nothing is
	 * queued for that one either, and nothing was counted. */
	assert_int_equal(put(f, s1, 11, "{\"m\":1}", to_both, 2, lim, &e),
	    ERR_FAIR_SHARE);
	assert_int_equal(queued(f, b1), 3);
	assert_int_equal(queued(f, b2), 0);
	assert_int_equal(usage(f, BOB), used);
	/* The id of a refused message was not kept. */
	assert_int_equal(put(f, s1, 10, "{\"m\":1}", to_b2, 1, lim, &e), 0);
	/* Another sender still gets through to the same device. */
	assert_int_equal(put(f, s2, 1, "{\"m\":2}", to_b1, 1, lim, &e), 0);
	assert_int_equal(queued(f, b1), 4);
	/* Reading frees the share: one acknowledged, one more fits. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, first_seq(f, b1),
	    &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(put(f, s1, 12, "{\"m\":1}", to_b1, 1, lim, &e), 0);
	assert_int_equal(put(f, s1, 13, "{\"m\":1}", to_b1, 1, lim, &e),
	    ERR_FAIR_SHARE);
	/* The share is per recipient device: b2 has room for s1. */
	assert_int_equal(put(f, s1, 14, "{\"m\":1}", to_both, 2, lim, &e),
	    ERR_FAIR_SHARE);
	assert_int_equal(queued(f, b2), 1);
	/* A device never registered has no account to name. */
	{
		char u[65];
		const char *to_u[1];

		dev_id(u, 'e');
		to_u[0] = u;
		for (i = 0; i < 3; i++)
			assert_int_equal(put(f, s1, 20 + i, "{}", to_u, 1, lim,
			    &e), 0);
		assert_int_equal(put(f, s1, 23, "{}", to_u, 1, lim, &e),
		    ERR_FAIR_SHARE);
		assert_non_null(strstr(err_msg(&e), "eeeeeeee"));
	}
}

static void
test_quota(void **state)
{
	struct fx *f = *state;
	const struct dir_queue_limits *lim = LIM(100, 100, 25);
	static const char ten[] = "0123456789";
	struct err_ctx e;
	char a1[65], a2[65], b1[65], b2[65];
	const char *to_b[2], *to_b1[1], *to_b2[1], *to_a2b1[2], *to_a2[1];
	uint64_t removed;

	dev_id(a1, 'a');
	dev_id(a2, 'c');
	dev_id(b1, 'b');
	dev_id(b2, 'd');
	to_b[0] = b1;
	to_b[1] = b2;
	to_b1[0] = b1;
	to_b2[0] = b2;
	to_a2b1[0] = a2;
	to_a2b1[1] = b1;
	to_a2[0] = a2;
	err_clear(&e);
	assert_int_equal(add(f, ALICE, a1, 10, &e), 0);
	assert_int_equal(add(f, ALICE, a2, 10, &e), 0);
	assert_int_equal(add(f, BOB, b1, 10, &e), 0);
	assert_int_equal(add(f, BOB, b2, 10, &e), 0);
	assert_int_equal(usage(f, BOB), 0);
	/* Each entry counts: one envelope for two devices is 20 bytes. */
	assert_int_equal(put(f, a1, 1, ten, to_b, 2, lim, &e), 0);
	assert_int_equal(usage(f, BOB), 20);
	assert_int_equal(usage(f, ALICE), 0);
	/* 30 > 25: refused, naming the account, nothing stored. */
	assert_int_equal(put(f, a1, 2, ten, to_b1, 1, lim, &e), ERR_QUOTA);
	assert_non_null(strstr(err_msg(&e), "'" BOB "'"));
	assert_non_null(strstr(err_msg(&e), "25 bytes"));
	assert_int_equal(usage(f, BOB), 20);
	assert_int_equal(queued(f, b1), 1);
	assert_int_equal(queued(f, b2), 1);
	/* One account over quota refuses the whole message: alice's device
	 * gets nothing either. */
	assert_int_equal(put(f, a1, 3, ten, to_a2b1, 2, lim, &e), ERR_QUOTA);
	assert_int_equal(queued(f, a2), 0);
	assert_int_equal(usage(f, ALICE), 0);
	assert_int_equal(usage(f, BOB), 20);
	/* Exactly at the quota is allowed, one byte more is not. */
	assert_int_equal(put(f, a1, 4, "01234", to_b1, 1, lim, &e), 0);
	assert_int_equal(usage(f, BOB), 25);
	assert_int_equal(put(f, a1, 5, "0", to_b2, 1, lim, &e), ERR_QUOTA);
	assert_int_equal(usage(f, BOB), 25);
	/* Alice's quota is her own. */
	assert_int_equal(put(f, b1, 1, ten, to_a2, 1, lim, &e), 0);
	assert_int_equal(usage(f, ALICE), 10);
	/* Acknowledging gives the room back. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(usage(f, BOB), 10);
	assert_int_equal(put(f, a1, 6, ten, to_b1, 1, lim, &e), 0);
	assert_int_equal(usage(f, BOB), 20);
	/* A message larger than the quota on its own never fits. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(f->s->ops->inbox_ack(f->s, b2, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(usage(f, BOB), 0);
	assert_int_equal(put(f, a1, 7, "0123456789abcdefghijklmnopqrstuvwxyz",
	    to_b1, 1, lim, &e), ERR_QUOTA);
	assert_int_equal(usage(f, BOB), 0);
	/* Revoking a device empties its queue and its share of the usage. */
	assert_int_equal(put(f, a1, 8, ten, to_b, 2, lim, &e), 0);
	assert_int_equal(usage(f, BOB), 20);
	assert_int_equal(do_revoke(f, BOB, b2, &e), 0);
	assert_int_equal(usage(f, BOB), 10);
	assert_int_equal(queued(f, b1), 1);
	assert_int_equal(do_revoke(f, BOB, b1, &e), 0);
	assert_int_equal(usage(f, BOB), 0);
	assert_int_equal(usage(f, ALICE), 10);
	/* An account without entries, or unknown, uses nothing. */
	assert_int_equal(usage(f, "carol"), 0);
}

/* --- blobs --- */

/* Records blob_put of a blob whose hash is c repeated, uploaded at now
 * and kept until expires. */
static int
bput(struct fx *f, char c, const char *device, const char *account,
    uint64_t size, uint64_t now, uint64_t expires, uint64_t quota,
    int *existed, struct err_ctx *e)
{
	char hash[65];

	dev_id(hash, c);
	err_clear(e);
	return f->s->ops->blob_put(f->s, hash, device, account, size, now,
	    &expires, quota, existed, e);
}

static uint64_t
blob_usage(struct fx *f, const char *account)
{
	struct err_ctx e;
	uint64_t bytes = 99;

	err_clear(&e);
	assert_int_equal(f->s->ops->blob_usage(f->s, account, &bytes, &e), 0);
	return bytes;
}

static int
blob_kept(struct fx *f, char c)
{
	struct err_ctx e;
	char hash[65];
	int kept = -1;

	dev_id(hash, c);
	err_clear(&e);
	assert_int_equal(f->s->ops->blob_exists(f->s, hash, &kept, &e), 0);
	return kept;
}

/* blob_get of the blob c for device; its size and expiry in *size and
 * *expires (may be NULL). */
static int
bget(struct fx *f, char c, const char *device, uint64_t *size,
    uint64_t *expires, struct err_ctx *e)
{
	char hash[65];
	uint64_t s_ = 0, x_ = 0;

	dev_id(hash, c);
	err_clear(e);
	return f->s->ops->blob_get(f->s, hash, device,
	    size != NULL ? size : &s_, expires != NULL ? expires : &x_, e);
}

/* Posts envelope "{}" from sender with an id made of id_byte, naming
 * the blobs whose hashes are the characters of blobs repeated. */
static int
bpost(struct fx *f, const char *sender, int id_byte, const char *blobs,
    const char *const *to, size_t n, struct err_ctx *e)
{
	char hashes[16][65];
	const char *list[16];
	uint8_t id[16];
	size_t i, nb = strlen(blobs);

	assert_true(nb <= 16);
	for (i = 0; i < nb; i++) {
		dev_id(hashes[i], blobs[i]);
		list[i] = hashes[i];
	}
	memset(id, id_byte, sizeof(id));
	err_clear(e);
	return f->s->ops->message_put(f->s, sender, id, sizeof(id), "{}", to,
	    n, nb > 0 ? list : NULL, nb, LIM(100, 100, UINT64_MAX), e);
}

/* The hashes a blob_expire callback was given, as their first
 * characters. */
struct expired {
	char first[64];
	int n;
};

static int
expired_cb(void *arg, const char *hash)
{
	struct expired *x = arg;

	assert_int_equal(strlen(hash), 64);
	if (x->n < (int)sizeof(x->first) - 1)
		x->first[x->n++] = hash[0];
	return 1; /* ignored */
}

/* Runs blob_expire; the first characters of the hashes removed, in
 * the order the callback got them. */
static struct expired
bexpire(struct fx *f, uint64_t now, uint64_t unlinked_s, unsigned int limit)
{
	struct expired x;
	struct err_ctx e;
	uint64_t removed = 99;

	memset(&x, 0, sizeof(x));
	err_clear(&e);
	assert_int_equal(f->s->ops->blob_expire(f->s, now, unlinked_s, limit,
	    expired_cb, &x, &removed, &e), 0);
	assert_int_equal(removed, (uint64_t)x.n);
	return x;
}

static void
test_blob_put_quota(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char a1[65], a2[65], b1[65], hash[65];
	uint64_t expires;
	int existed = -1;

	dev_id(a1, 'a');
	dev_id(a2, 'c');
	dev_id(b1, 'b');
	assert_int_equal(blob_usage(f, ALICE), 0);
	assert_int_equal(blob_kept(f, '1'), 0);
	assert_int_equal(bput(f, '1', a1, ALICE, 60, 100, 1000, 100, &existed,
	    &e), 0);
	assert_int_equal(existed, 0);
	assert_int_equal(blob_usage(f, ALICE), 60);
	assert_int_equal(blob_kept(f, '1'), 1);
	/* The same bytes from the same device: kept once, nothing changes,
	 * and the time given back is the kept row's. */
	dev_id(hash, '1');
	expires = 2000;
	assert_int_equal(f->s->ops->blob_put(f->s, hash, a1, ALICE, 60, 200,
	    &expires, 100, &existed, &e), 0);
	assert_int_equal(existed, 1);
	assert_int_equal(expires, 1000);
	assert_int_equal(blob_usage(f, ALICE), 60);
	/* From another device, even of another account: refused. */
	existed = -1;
	assert_int_equal(bput(f, '1', b1, BOB, 60, 200, 2000, 100, &existed,
	    &e), ERR_EXISTS);
	assert_int_equal(existed, 0);
	assert_non_null(strstr(err_msg(&e), "another device"));
	assert_int_equal(blob_usage(f, BOB), 0);
	assert_int_equal(bput(f, '1', a2, ALICE, 60, 200, 2000, 100, NULL,
	    &e), ERR_EXISTS);
	/* One byte over the quota: refused, naming the account, nothing
	 * stored. */
	assert_int_equal(bput(f, '2', a2, ALICE, 41, 100, 1000, 100, &existed,
	    &e), ERR_QUOTA);
	assert_non_null(strstr(err_msg(&e), "'" ALICE "'"));
	assert_non_null(strstr(err_msg(&e), "100 bytes"));
	assert_int_equal(blob_kept(f, '2'), 0);
	assert_int_equal(blob_usage(f, ALICE), 60);
	/* Exactly at the quota, with another device of the account. */
	assert_int_equal(bput(f, '2', a2, ALICE, 40, 100, 1000, 100, &existed,
	    &e), 0);
	assert_int_equal(existed, 0);
	assert_int_equal(blob_usage(f, ALICE), 100);
	assert_int_equal(bput(f, '3', a1, ALICE, 1, 100, 1000, 100, NULL, &e),
	    ERR_QUOTA);
	/* An empty blob still fits; a blob larger than the quota never
	 * does. */
	assert_int_equal(bput(f, '4', a1, ALICE, 0, 100, 1000, 100, NULL, &e),
	    0);
	assert_int_equal(bput(f, '5', b1, BOB, 101, 100, 1000, 100, NULL, &e),
	    ERR_QUOTA);
	assert_non_null(strstr(err_msg(&e), "'" BOB "'"));
	/* Bob's quota is his own. */
	assert_int_equal(bput(f, '5', b1, BOB, 100, 100, 1000, 100, NULL, &e),
	    0);
	assert_int_equal(blob_usage(f, BOB), 100);
	assert_int_equal(blob_usage(f, ALICE), 100);
	assert_int_equal(blob_usage(f, "carol"), 0);
}

/*
 * Enrolls ALICE's device a1 ('a') and BOB's b1 ('b') and b2 ('d'),
 * each of 65 bytes, and fills in to_b1 (b1) and to_b12 (b1, b2).
 */
static void
blob_peers(struct fx *f, char *a1, char *b1, char *b2, const char **to_b1,
    const char **to_b12)
{
	struct err_ctx e;

	dev_id(a1, 'a');
	dev_id(b1, 'b');
	dev_id(b2, 'd');
	to_b1[0] = b1;
	to_b12[0] = b1;
	to_b12[1] = b2;
	err_clear(&e);
	assert_int_equal(add(f, ALICE, a1, 10, &e), 0);
	assert_int_equal(add(f, BOB, b1, 10, &e), 0);
	assert_int_equal(add(f, BOB, b2, 10, &e), 0);
}

static void
test_blob_message_put(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char a1[65], b1[65], b2[65], h2[65];
	const char *to_b1[1], *to_b12[2];
	uint64_t size = 0, expires = 0, removed;

	blob_peers(f, a1, b1, b2, to_b1, to_b12);
	dev_id(h2, '2');
	err_clear(&e);
	assert_int_equal(bput(f, '1', a1, ALICE, 70, 100, 5000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bput(f, '2', b2, BOB, 20, 100, 5000, 1000, NULL, &e),
	    0);
	/* Another device's blob: refused, naming it, nothing queued, and
	 * the id stays free. */
	assert_int_equal(bpost(f, a1, 1, "12", to_b1, 1, &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), h2));
	assert_int_equal(queued(f, b1), 0);
	/* A hash never uploaded: the same. */
	assert_int_equal(bpost(f, a1, 1, "19", to_b1, 1, &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), "99999999"));
	assert_int_equal(queued(f, b1), 0);
	/* The refusals linked nothing: both blobs still count as never
	 * posted, which keeps them until an hour after their upload (a
	 * blob linked once would go as soon as no link is left). */
	assert_int_equal(bexpire(f, 150, 3600, 0).n, 0);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), ERR_DENIED);
	/* Its own blob goes through. */
	assert_int_equal(bpost(f, a1, 1, "1", to_b1, 1, &e), 0);
	assert_int_equal(queued(f, b1), 1);
	/* The addressed device may fetch it... */
	assert_int_equal(bget(f, '1', b1, &size, &expires, &e), 0);
	assert_int_equal(size, 70);
	assert_int_equal(expires, 5000);
	/* ...another device may not, not even its uploader, and a hash
	 * never seen says the same. */
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), "dddddddd"));
	assert_int_equal(bget(f, '1', a1, NULL, NULL, &e), ERR_DENIED);
	assert_int_equal(bget(f, '9', b1, NULL, NULL, &e), ERR_DENIED);
	assert_int_equal(bget(f, '2', b2, NULL, NULL, &e), ERR_DENIED);
	/* Once acknowledged, no entry names it for b1 any more. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), ERR_DENIED);
	assert_int_equal(blob_kept(f, '1'), 1);
	/* A blob may travel with several messages; one removed while a
	 * message naming it is queued is gone, not denied. */
	assert_int_equal(bpost(f, a1, 2, "1", to_b12, 2, &e), 0);
	assert_int_equal(bpost(f, a1, 3, "1", to_b1, 1, &e), 0);
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), 0);
	assert_int_equal(bexpire(f, 5000, 3600, 0).n, 2); /* '1' and '2' */
	assert_int_equal(blob_kept(f, '1'), 0);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), ERR_GONE);
	assert_non_null(strstr(err_msg(&e), "expired"));
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), ERR_GONE);
	/* Gone is only for an addressed device. */
	assert_int_equal(bget(f, '1', a1, NULL, NULL, &e), ERR_DENIED);
	/* A removed blob cannot be posted any more. */
	assert_int_equal(bpost(f, a1, 4, "1", to_b1, 1, &e), ERR_DENIED);
	/* After b1 read both messages, still gone for b2, denied for b1. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), ERR_DENIED);
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), ERR_GONE);
	assert_int_equal(f->s->ops->inbox_ack(f->s, b2, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), ERR_DENIED);
	/* Uploaded again, it is a new blob. */
	assert_int_equal(bput(f, '1', a1, ALICE, 70, 6000, 9000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bpost(f, a1, 4, "1", to_b1, 1, &e), 0);
	assert_int_equal(bget(f, '1', b1, NULL, &expires, &e), 0);
	assert_int_equal(expires, 9000);
}

/*
 * The three rules of blob_expire: linked and no link left (every
 * recipient acknowledged, or was revoked), never linked and uploaded
 * before now - unlinked_s, or expired; in hash order, at most limit at
 * a time, the callback told of each one removed.
 */
static void
test_blob_expire(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char a1[65], b1[65], b2[65];
	const char *to_b1[1], *to_b12[2];
	struct expired x;
	uint64_t removed = 99;

	blob_peers(f, a1, b1, b2, to_b1, to_b12);
	err_clear(&e);
	/* '1' to b1 and b2; '2' and '3' never posted (uploaded at 100 and
	 * 500); '4' posted but kept until 1000 only; '5' to b1. */
	assert_int_equal(bput(f, '1', a1, ALICE, 1, 100, 10000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bput(f, '2', a1, ALICE, 1, 100, 10000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bput(f, '3', a1, ALICE, 1, 500, 10000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bput(f, '4', a1, ALICE, 1, 100, 1000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bput(f, '5', a1, ALICE, 1, 100, 10000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bpost(f, a1, 1, "14", to_b12, 2, &e), 0);
	assert_int_equal(bpost(f, a1, 2, "5", to_b1, 1, &e), 0);
	assert_int_equal(blob_usage(f, ALICE), 5);
	/* Nothing is due yet (now - unlinked_s would be before 0). */
	x = bexpire(f, 900, 3600, 0);
	assert_int_equal(x.n, 0);
	/* Never posted before 1000 - 600: '2' ('3' came at 500); '4' has
	 * reached its expiry although queued. */
	x = bexpire(f, 1000, 600, 0);
	assert_string_equal(x.first, "24");
	assert_int_equal(blob_kept(f, '2'), 0);
	assert_int_equal(blob_kept(f, '4'), 0);
	assert_int_equal(blob_kept(f, '3'), 1);
	assert_int_equal(blob_usage(f, ALICE), 3);
	assert_int_equal(bexpire(f, 1000, 600, 0).n, 0);
	/* b1 reads everything: '5' has no link left; '1' is still queued
	 * for b2. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 2);
	x = bexpire(f, 1001, 3600, 0);
	assert_string_equal(x.first, "5");
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), 0);
	/* Revoking b2, the last recipient, drops the message and its
	 * links. */
	assert_int_equal(do_revoke(f, BOB, b2, &e), 0);
	assert_int_equal(bget(f, '1', b2, NULL, NULL, &e), ERR_DENIED);
	x = bexpire(f, 1002, 3600, 0);
	assert_string_equal(x.first, "1");
	assert_int_equal(blob_usage(f, ALICE), 1);
	/* The limit: '3', '6' and '7' are due; two at a time, in hash
	 * order. */
	assert_int_equal(bput(f, '7', a1, ALICE, 1, 100, 10000, 1000, NULL,
	    &e), 0);
	assert_int_equal(bput(f, '6', a1, ALICE, 1, 100, 10000, 1000, NULL,
	    &e), 0);
	x = bexpire(f, 20000, 3600, 2);
	assert_string_equal(x.first, "36");
	x = bexpire(f, 20000, 3600, 2);
	assert_string_equal(x.first, "7");
	assert_int_equal(blob_usage(f, ALICE), 0);
	/* No callback and no count wanted. */
	assert_int_equal(bput(f, '8', a1, ALICE, 1, 100, 200, 1000, NULL, &e),
	    0);
	assert_int_equal(f->s->ops->blob_expire(f->s, 200, 3600, 0, NULL,
	    NULL, NULL, &e), 0);
	assert_int_equal(blob_kept(f, '8'), 0);
}

/* The schema of version 1, as devid-directory first wrote it. */
static const char *const schema_v1_sql =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT INTO meta(key, value) VALUES ('schema', '1');"
	"CREATE TABLE accounts (name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE events ("
	"  account TEXT NOT NULL REFERENCES accounts(name),"
	"  seq INTEGER NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,"
	"  prev BLOB NOT NULL, hash BLOB NOT NULL, json TEXT NOT NULL,"
	"  PRIMARY KEY (account, seq)) WITHOUT ROWID;"
	"CREATE TABLE devices (device TEXT PRIMARY KEY,"
	"  account TEXT NOT NULL REFERENCES accounts(name),"
	"  active INTEGER NOT NULL, record TEXT NOT NULL,"
	"  sig_pub BLOB NOT NULL, added_time INTEGER NOT NULL);"
	"CREATE INDEX devices_by_account ON devices(account, active, device);"
	"CREATE TABLE sessions (token_hash BLOB PRIMARY KEY,"
	"  device TEXT NOT NULL, account TEXT NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX sessions_by_device ON sessions(device, expires);"
	"CREATE TABLE nonces (device TEXT NOT NULL, nonce BLOB NOT NULL,"
	"  expires INTEGER NOT NULL, PRIMARY KEY (device, nonce))"
	"  WITHOUT ROWID;"
	"CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT NOT NULL,"
	"  msg_id BLOB NOT NULL, envelope TEXT NOT NULL,"
	"  refs INTEGER NOT NULL, UNIQUE (sender, msg_id));"
	"CREATE TABLE queue ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL,"
	"  message INTEGER NOT NULL REFERENCES messages(id));"
	"CREATE INDEX queue_by_device ON queue(device, seq);";

/* Runs sql on the database at path with a plain SQLite connection. */
static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "%s\n", msg != NULL ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db);
		fail();
	}
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* meta('schema') of the database at path. */
static int
raw_schema_version(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT CAST(value AS "
	    "INTEGER) FROM meta WHERE key = 'schema'", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return v;
}

static void
test_schema_update(void **state)
{
	struct fx *f = *state;
	const struct dir_queue_limits *lim = LIM(100, 2, 1000);
	struct err_ctx e;
	char path[160], sql[2048], a1[65], a2[65], b1[65], u[65];
	const char *to_b1[1];
	uint64_t removed;

	dev_id(a1, 'a');
	dev_id(a2, 'c');
	dev_id(b1, 'b');
	dev_id(u, 'e');
	to_b1[0] = b1;
	/* A version 1 database with queued messages: a1 sent one envelope
	 * of 10 bytes to b1 and a2, and one of 6 bytes ("h\u00e9llo" in
	 * UTF-8) to b1 and a device never registered. */
	snprintf(path, sizeof(path), "%s/old.db", f->dir);
	raw_exec(path, schema_v1_sql);
	snprintf(sql, sizeof(sql),
	    "INSERT INTO accounts VALUES ('%s', 'h', 1), ('%s', 'h', 1);"
	    "INSERT INTO devices VALUES ('%s', '%s', 1, '{}', x'01', 1),"
	    "  ('%s', '%s', 1, '{}', x'01', 1), ('%s', '%s', 1, '{}',"
	    "  x'01', 1);"
	    "INSERT INTO messages VALUES (1, '%s', x'01', '0123456789', 2),"
	    "  (2, '%s', x'02', 'h\xc3\xa9llo', 2);"
	    "INSERT INTO queue(device, message) VALUES ('%s', 1), ('%s', 1),"
	    "  ('%s', 2), ('%s', 2);",
	    ALICE, BOB, a1, ALICE, a2, ALICE, b1, BOB, a1, a1, b1, a2, b1, u);
	raw_exec(path, sql);
	dir_store_close(f->s);
	f->s = NULL;
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(path, &f->s, &e), 0);
	assert_int_equal(raw_schema_version(path), 4);
	/* The usage was computed from the rows that were there. */
	assert_int_equal(usage(f, BOB), 16);
	assert_int_equal(usage(f, ALICE), 10);
	assert_int_equal(queued(f, b1), 2);
	/* The senders were too: a1 has used its share of b1. */
	assert_int_equal(put(f, a1, 3, "{}", to_b1, 1, lim, &e),
	    ERR_FAIR_SHARE);
	assert_int_equal(put(f, a2, 3, "{}", to_b1, 1, lim, &e), 0);
	assert_int_equal(usage(f, BOB), 18);
	/* Acknowledging old entries takes their sizes off. */
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(removed, 3);
	assert_int_equal(usage(f, BOB), 0);
	assert_int_equal(queued(f, u), 1);
	assert_int_equal(f->s->ops->inbox_ack(f->s, a2, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(usage(f, ALICE), 0);
	/* Opening an up-to-date database again changes nothing. */
	assert_int_equal(put(f, a1, 4, "0123", to_b1, 1, lim, &e), 0);
	dir_store_close(f->s);
	f->s = NULL;
	assert_int_equal(dir_store_sqlite_open(path, &f->s, &e), 0);
	assert_int_equal(raw_schema_version(path), 4);
	assert_int_equal(usage(f, BOB), 4);
	assert_int_equal(queued(f, b1), 1);
	assert_int_equal(queued(f, u), 1);
	/* Version 4 brought the blobs, and the link of a queued message. */
	assert_int_equal(bput(f, '1', a1, ALICE, 5, 1, 100, 100, NULL, &e),
	    0);
	assert_int_equal(bpost(f, a1, 9, "1", to_b1, 1, &e), 0);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), 0);
	assert_int_equal(f->s->ops->inbox_ack(f->s, b1, UINT32_MAX, &removed,
	    &e), 0);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), ERR_DENIED);
}

static void
test_schema_newer_refused(void **state)
{
	struct fx *f = *state;
	struct dir_store *s = NULL;
	struct err_ctx e;
	char path[160];

	snprintf(path, sizeof(path), "%s/new.db", f->dir);
	raw_exec(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT "
	    "NOT NULL); INSERT INTO meta VALUES ('schema', '5');");
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(path, &s, &e), ERR_CONFIG);
	assert_null(s);
	assert_non_null(strstr(err_msg(&e), "version 5"));
	assert_int_equal(raw_schema_version(path), 5);
}

/* The permission bits of path. */
static mode_t
file_mode(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		fail_msg("%s is missing", path);
	return sb.st_mode & 07777;
}

/* Opens a new database under umask mask and checks the three files. */
static void
modes_under(struct fx *f, mode_t mask)
{
	struct dir_store *s = NULL;
	struct err_ctx e;
	char path[160], side[192];

	snprintf(path, sizeof(path), "%s/umask%03o.db", f->dir,
	    (unsigned int)mask);
	umask(mask);
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(path, &s, &e), 0);
	umask(f->umask_saved);
	/* A write, so that the -wal holds something. */
	assert_int_equal(s->ops->account_create(s, "carol", "h", 1, &e), 0);
	assert_int_equal(file_mode(path), 0600);
	snprintf(side, sizeof(side), "%s-wal", path);
	assert_int_equal(file_mode(side), 0600);
	snprintf(side, sizeof(side), "%s-shm", path);
	assert_int_equal(file_mode(side), 0600);
	dir_store_close(s);
}

static void
test_file_modes(void **state)
{
	struct fx *f = *state;

	modes_under(f, 022);
	modes_under(f, 0);
	modes_under(f, 077);
}

static void
test_existing_file_mode_kept(void **state)
{
	struct fx *f = *state;
	struct dir_store *s = NULL;
	struct err_ctx e;
	char path[160];
	FILE *fp;

	/* An empty file the operator made: its mode is the operator's. */
	snprintf(path, sizeof(path), "%s/given.db", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0640), 0);
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(path, &s, &e), 0);
	assert_int_equal(s->ops->account_create(s, "carol", "h", 1, &e), 0);
	assert_int_equal(file_mode(path), 0640);
	dir_store_close(s);
}

/* --- the statements each connection keeps --- */

struct add_job {
	struct fx *f;
	const char *account;
	const char *device;
	int r;
};

static void *
add_thread(void *arg)
{
	struct add_job *j = arg;
	struct err_ctx e;

	err_clear(&e);
	j->r = add(j->f, j->account, j->device, 100, &e);
	return NULL;
}

/* add() on a thread of its own, which uses a database connection of its
 * own. */
static int
add_elsewhere(struct fx *f, const char *account, const char *device)
{
	struct add_job j = { f, account, device, ERR_INTERNAL };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, add_thread, &j), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	return j.r;
}

/*
 * Another connection appends to ALICE's log; this thread must see the
 * new tail at once.  A statement of this thread's connection left in the
 * middle of its rows would keep its read transaction open, and with it
 * the snapshot from before the append.
 */
static void
sees_fresh_tail(struct fx *f, char *next_dev, uint64_t *seq)
{
	char d[65];

	dev_id(d, (*next_dev)++);
	assert_int_equal(add_elsewhere(f, ALICE, d), 0);
	(*seq)++;
	assert_int_equal(tail(f, ALICE), *seq);
}

static int
stop_event_cb(void *arg, uint64_t seq, const char *type, const char *json)
{
	(*(int *)arg)++;
	return ERR_FORMAT;
}

static int
stop_account_cb(void *arg, const char *name, uint64_t created)
{
	(*(int *)arg)++;
	return ERR_FORMAT;
}

static int
stop_device_cb(void *arg, const char *device, const char *record_json)
{
	(*(int *)arg)++;
	return ERR_FORMAT;
}

static int
stop_queue_cb(void *arg, uint64_t seq, const char *envelope)
{
	(*(int *)arg)++;
	return ERR_FORMAT;
}

static void
test_stopped_reads_end_their_snapshot(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	struct dir_session_info si;
	struct dir_device_info di;
	char d1[65], d2[65], next_dev = '0';
	const char *to_d1[1];
	uint8_t token[32];
	uint64_t seq = 2;
	uint8_t h[32];
	char *pw = NULL;
	int n;

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	to_d1[0] = d1;
	memset(token, 7, sizeof(token));
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 100, &e), 0);
	assert_int_equal(add(f, ALICE, d2, 100, &e), 0);
	assert_int_equal(f->s->ops->session_put(f->s, token, d1, ALICE, 1000,
	    4, &e), 0);
	assert_int_equal(put(f, d2, 1, "{\"m\":1}", to_d1, 1,
	    LIM(10, 10, UINT64_MAX), &e), 0);
	assert_int_equal(put(f, d2, 2, "{\"m\":2}", to_d1, 1,
	    LIM(10, 10, UINT64_MAX), &e), 0);

	/* Listings stopped by their callback after the first row. */
	n = 0;
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 100, 100,
	    stop_event_cb, &n, &e), ERR_FORMAT);
	assert_int_equal(n, 1);
	sees_fresh_tail(f, &next_dev, &seq);
	n = 0;
	assert_int_equal(f->s->ops->account_list(f->s, stop_account_cb, &n,
	    &e), ERR_FORMAT);
	assert_int_equal(n, 1);
	sees_fresh_tail(f, &next_dev, &seq);
	n = 0;
	assert_int_equal(f->s->ops->devices_active(f->s, ALICE, &seq, h,
	    stop_device_cb, &n, &e), ERR_FORMAT);
	assert_int_equal(n, 1);
	sees_fresh_tail(f, &next_dev, &seq);
	n = 0;
	assert_int_equal(f->s->ops->inbox_get(f->s, d1, 0, 100, SIZE_MAX,
	    stop_queue_cb, &n, &e), ERR_FORMAT);
	assert_int_equal(n, 1);
	sees_fresh_tail(f, &next_dev, &seq);
	/* The byte bound ends the inbox before its last row. */
	assert_int_equal(inbox(f, d1, 100, 1).n, 1);
	sees_fresh_tail(f, &next_dev, &seq);

	/* Lookups that read one row and stop there. */
	assert_int_equal(f->s->ops->session_get(f->s, token, 10, &si, &e), 0);
	sees_fresh_tail(f, &next_dev, &seq);
	assert_int_equal(f->s->ops->device_get(f->s, d1, &di, &e), 0);
	sees_fresh_tail(f, &next_dev, &seq);
	assert_int_equal(f->s->ops->account_get(f->s, ALICE, &pw, NULL, &e),
	    0);
	free(pw);
	sees_fresh_tail(f, &next_dev, &seq);
	assert_int_equal(usage(f, BOB), 0);
	sees_fresh_tail(f, &next_dev, &seq);
	assert_int_equal(f->s->ops->health(f->s, &e), 0);
	sees_fresh_tail(f, &next_dev, &seq);
	assert_int_equal(f->s->ops->log_tail(f->s, ALICE, &seq, h, &e), 0);
	sees_fresh_tail(f, &next_dev, &seq);

	/* Refused writes, then reads. */
	assert_int_equal(put(f, d2, 1, "{}", to_d1, 1, LIM(10, 10,
	    UINT64_MAX), &e), ERR_EXISTS);
	sees_fresh_tail(f, &next_dev, &seq);
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 100, &e), ERR_EXISTS);
	sees_fresh_tail(f, &next_dev, &seq);

	/* And this thread still writes. */
	err_clear(&e);
	assert_int_equal(f->s->ops->inbox_ack(f->s, d1, UINT32_MAX, NULL, &e),
	    0);
	assert_int_equal(queued(f, d1), 0);
	assert_int_equal(do_revoke(f, ALICE, d2, &e), 0);
	assert_int_equal(tail(f, ALICE), seq + 1);
}

/* A log_events callback that reads the same log again, twice over. */
struct nest {
	struct fx *f;
	uint64_t last;
	int inner_ok;
};

static int
nested_event_cb(void *arg, uint64_t seq, const char *type, const char *json)
{
	struct nest *n = arg;
	struct err_ctx e;
	uint64_t t;
	uint8_t h[32];
	int inner = 0, stopped = 0;

	/* The outer listing goes on in order whatever the inner ones do. */
	if (seq != n->last + 1)
		return ERR_CHAIN;
	n->last = seq;
	err_clear(&e);
	if (n->f->s->ops->log_events(n->f->s, ALICE, 0, 100, 100, count_cb,
	    &inner, &e) != 0 || inner != 3)
		return ERR_INTERNAL;
	if (n->f->s->ops->log_events(n->f->s, ALICE, 1, 100, 100,
	    stop_event_cb, &stopped, &e) != ERR_FORMAT || stopped != 1)
		return ERR_INTERNAL;
	if (n->f->s->ops->log_tail(n->f->s, ALICE, &t, h, &e) != 0 || t != 3)
		return ERR_INTERNAL;
	n->inner_ok++;
	return 0;
}

static void
test_nested_listing(void **state)
{
	struct fx *f = *state;
	struct nest n = { f, 0, 0 };
	struct err_ctx e;
	char d[65];
	int i, count = 0;

	err_clear(&e);
	for (i = 0; i < 3; i++) {
		dev_id(d, (char)('a' + i));
		assert_int_equal(add(f, ALICE, d, 100, &e), 0);
	}
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 100, 100,
	    nested_event_cb, &n, &e), 0);
	assert_int_equal(n.last, 3);
	assert_int_equal(n.inner_ok, 3);
	/* The statements are free for the next operation. */
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 100, 100,
	    count_cb, &count, &e), 0);
	assert_int_equal(count, 3);
	dev_id(d, 'f');
	assert_int_equal(add_elsewhere(f, ALICE, d), 0);
	assert_int_equal(tail(f, ALICE), 4);
}

#define WRITERS 4
#define WRITER_POSTS 20

struct writer_job {
	struct fx *f;
	int id;
	char recipient[65];
	int posted, added, refused, failed;
};

/*
 * Posts WRITER_POSTS messages, each followed by the same one again
 * (refused: the transaction rolls back), and every fifth time adds a
 * device to ALICE's log, racing the other writers for each event.
 */
static void *
writer_thread(void *arg)
{
	struct writer_job *j = arg;
	struct err_ctx e;
	const char *to[1] = { j->recipient };
	char sender[65], device[65];
	uint8_t id[16];
	int i, r;

	dev_id(sender, (char)('0' + j->id));
	for (i = 0; i < WRITER_POSTS; i++) {
		memset(id, 0, sizeof(id));
		id[0] = (uint8_t)j->id;
		id[1] = (uint8_t)i;
		err_clear(&e);
		r = j->f->s->ops->message_put(j->f->s, sender, id, sizeof(id),
		    "{}", to, 1, NULL, 0, LIM(1000, 1000, UINT64_MAX), &e);
		if (r == 0)
			j->posted++;
		else
			j->failed++;
		err_clear(&e);
		r = j->f->s->ops->message_put(j->f->s, sender, id, sizeof(id),
		    "{}", to, 1, NULL, 0, LIM(1000, 1000, UINT64_MAX), &e);
		if (r == ERR_EXISTS)
			j->refused++;
		else
			j->failed++;
		if (i % 5 != 0)
			continue;
		dev_id(device, (char)('a' + j->id));
		device[1] = (char)('0' + i / 5);
		do {
			err_clear(&e);
			r = add(j->f, ALICE, device, 100, &e);
		} while (r == ERR_CHAIN);
		if (r == 0)
			j->added++;
		else
			j->failed++;
	}
	return NULL;
}

static void
test_concurrent_writers(void **state)
{
	struct fx *f = *state;
	struct writer_job jobs[WRITERS];
	pthread_t t[WRITERS];
	struct err_ctx e;
	char b1[65];
	uint64_t seq;
	uint8_t h[32];
	int i, n = 0;

	dev_id(b1, 'b');
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < WRITERS; i++) {
		jobs[i].f = f;
		jobs[i].id = i;
		memcpy(jobs[i].recipient, b1, sizeof(b1));
		assert_int_equal(pthread_create(&t[i], NULL, writer_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < WRITERS; i++) {
		assert_int_equal(jobs[i].failed, 0);
		assert_int_equal(jobs[i].posted, WRITER_POSTS);
		assert_int_equal(jobs[i].refused, WRITER_POSTS);
		assert_int_equal(jobs[i].added, WRITER_POSTS / 5);
	}
	assert_int_equal(queued(f, b1), WRITERS * WRITER_POSTS);
	assert_int_equal(tail(f, ALICE), WRITERS * (WRITER_POSTS / 5));
	err_clear(&e);
	assert_int_equal(f->s->ops->devices_active(f->s, ALICE, &seq, h,
	    count_dev_cb, &n, &e), 0);
	assert_int_equal(n, WRITERS * (WRITER_POSTS / 5));
}

/*
 * Closing finalizes every statement the connections kept: SQLite closes
 * a connection only without statements, and the last connection to close
 * removes the -wal file.
 */
static void
test_close_with_kept_statements(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	struct dir_session_info si;
	char d1[65], d2[65], wal[160];
	const char *to_d1[1];
	uint8_t token[32];
	int n = 0;

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	to_d1[0] = d1;
	memset(token, 9, sizeof(token));
	err_clear(&e);
	/* Statements kept on two connections, one of them stopped in the
	 * middle of a listing. */
	assert_int_equal(add(f, ALICE, d1, 100, &e), 0);
	assert_int_equal(add_elsewhere(f, ALICE, d2), 0);
	assert_int_equal(f->s->ops->session_put(f->s, token, d1, ALICE, 1000,
	    4, &e), 0);
	assert_int_equal(f->s->ops->session_get(f->s, token, 10, &si, &e), 0);
	assert_int_equal(put(f, d2, 1, "{}", to_d1, 1, LIM(10, 10,
	    UINT64_MAX), &e), 0);
	assert_int_equal(inbox(f, d1, 100, SIZE_MAX).n, 1);
	assert_int_equal(f->s->ops->log_events(f->s, ALICE, 0, 100, 100,
	    stop_event_cb, &n, &e), ERR_FORMAT);
	assert_int_equal(f->s->ops->purge(f->s, 1, &e), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	if (pg_uri == NULL)
		assert_int_equal(access(wal, F_OK), 0);
	dir_store_close(f->s);
	f->s = NULL;
	if (pg_uri == NULL) {
		errno = 0;
		assert_int_equal(access(wal, F_OK), -1);
		assert_int_equal(errno, ENOENT);
	}
	/* Everything written is there. */
	assert_int_equal(store_open(f, &f->s, &e), 0);
	assert_int_equal(tail(f, ALICE), 2);
	assert_int_equal(queued(f, d1), 1);
	assert_int_equal(f->s->ops->session_get(f->s, token, 10, &si, &e), 0);
}

/* --- PostgreSQL: several directory processes on one database --- */

static void
test_pg_schema_newer_refused(void **state)
{
	struct fx *f = *state;
	struct dir_store *s = NULL;
	struct err_ctx e;

	(void)f;
	pg_exec("INSERT INTO schema_migrations(version) VALUES (99)");
	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &s, &e), ERR_CONFIG);
	assert_null(s);
	assert_non_null(strstr(err_msg(&e), "version 99"));
	/* The connection string is never shown. */
	assert_null(strstr(err_msg(&e), pg_uri));
}

/*
 * A database at migration 1 (the schema as first released, as SQLite's
 * version 1) with queued messages is brought to 2 the way the SQLite
 * store brings its version 1: senders, sizes, accounts and the bytes per
 * account computed from the rows that were there.
 */
static void
test_pg_schema_update(void **state)
{
	struct fx *f = *state;
	const struct dir_queue_limits *lim = LIM(100, 2, 1000);
	struct err_ctx e;
	char sql[2048], a1[65], a2[65], b1[65], u[65];
	const char *to_b1[1];

	dev_id(a1, 'a');
	dev_id(a2, 'c');
	dev_id(b1, 'b');
	dev_id(u, 'e');
	to_b1[0] = b1;
	dir_store_close(f->s);
	f->s = NULL;
	/* Back to migration 1, empty: what 2 added is gone. */
	pg_exec("DELETE FROM queue; DELETE FROM messages; DELETE FROM events;"
	    "DELETE FROM sessions; DELETE FROM nonces; DELETE FROM devices;"
	    "DELETE FROM accounts;"
	    "DROP TABLE account_usage; DROP INDEX queue_by_sender;"
	    "ALTER TABLE queue DROP COLUMN sender, DROP COLUMN account,"
	    "  DROP COLUMN size;"
	    "DROP TABLE tlog_leaves, tlog_nodes, tlog_checkpoint;"
	    "DROP TABLE blob_links, blobs;"
	    "DELETE FROM schema_migrations WHERE version >= 2;");
	snprintf(sql, sizeof(sql),
	    "INSERT INTO accounts VALUES ('%s', 'h', 1), ('%s', 'h', 1);"
	    "INSERT INTO devices VALUES ('%s', '%s', true, '{}', '\\x01', 1),"
	    "  ('%s', '%s', true, '{}', '\\x01', 1), ('%s', '%s', true, '{}',"
	    "  '\\x01', 1);"
	    "INSERT INTO messages(sender, msg_id, envelope, refs) VALUES"
	    "  ('%s', '\\x01', '0123456789', 2),"
	    "  ('%s', '\\x02', 'h\xc3\xa9llo', 2);"
	    "INSERT INTO queue(device, message) SELECT '%s', id FROM messages"
	    "  WHERE msg_id = '\\x01';"
	    "INSERT INTO queue(device, message) SELECT '%s', id FROM messages"
	    "  WHERE msg_id = '\\x01';"
	    "INSERT INTO queue(device, message) SELECT '%s', id FROM messages"
	    "  WHERE msg_id = '\\x02';"
	    "INSERT INTO queue(device, message) SELECT '%s', id FROM messages"
	    "  WHERE msg_id = '\\x02';",
	    ALICE, BOB, a1, ALICE, a2, ALICE, b1, BOB, a1, a1, b1, a2, b1, u);
	pg_exec(sql);
	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &f->s, &e), 0);
	assert_int_equal(usage(f, BOB), 16);
	assert_int_equal(usage(f, ALICE), 10);
	assert_int_equal(queued(f, b1), 2);
	/* The senders were computed too: a1 has used its share of b1. */
	assert_int_equal(put(f, a1, 3, "{}", to_b1, 1, lim, &e),
	    ERR_FAIR_SHARE);
	assert_int_equal(put(f, a2, 3, "{}", to_b1, 1, lim, &e), 0);
	assert_int_equal(usage(f, BOB), 18);
	assert_int_equal(queued(f, u), 1);
	/* Migration 4 brought the blobs. */
	assert_int_equal(bput(f, '1', a1, ALICE, 5, 1, 100, 100, NULL, &e),
	    0);
	assert_int_equal(bpost(f, a1, 9, "1", to_b1, 1, &e), 0);
	assert_int_equal(bget(f, '1', b1, NULL, NULL, &e), 0);
}

struct open_job {
	struct dir_store *s;
	int r;
};

static void *
open_thread(void *arg)
{
	struct open_job *j = arg;
	struct err_ctx e;

	err_clear(&e);
	j->r = dir_store_pg_open(pg_uri, &j->s, &e);
	if (j->r != 0)
		fprintf(stderr, "open: %s\n", err_msg(&e));
	return NULL;
}

/* Several processes starting together on an empty database: one
 * migrates under the lock, the others find the schema done. */
static void
test_pg_migrate_together(void **state)
{
	struct fx *f = *state;
	struct open_job jobs[4];
	pthread_t t[4];
	int i;

	dir_store_close(f->s);
	f->s = NULL;
	pg_exec("SET client_min_messages = warning; "
	    "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, open_thread,
		    &jobs[i]), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(jobs[i].r, 0);
		if (i > 0)
			dir_store_close(jobs[i].s);
	}
	f->s = jobs[0].s;
	assert_int_equal(f->s->ops->account_create(f->s, ALICE, "h", 1,
	    NULL), 0);
	assert_int_equal(tail(f, ALICE), 0);
}

#define PG_THREADS 3
#define PG_ADDS 8

struct chain_job {
	struct fx fx;                   /* its own store in fx.s */
	int id;
	const char *account;            /* NULL: ALICE */
	int added, retries, failed;
};

/* Adds PG_ADDS devices to j->account, rebuilding the event on ERR_CHAIN
 * as dir-account.c does. */
static void *
chain_thread(void *arg)
{
	struct chain_job *j = arg;
	const char *account = j->account != NULL ? j->account : ALICE;
	struct err_ctx e;
	char device[65];
	int i, r;

	for (i = 0; i < PG_ADDS; i++) {
		dev_id(device, (char)('a' + j->id));
		device[1] = (char)('0' + i);
		for (;;) {
			err_clear(&e);
			r = add(&j->fx, account, device, 1000, &e);
			if (r != ERR_CHAIN)
				break;
			j->retries++;
		}
		if (r == 0)
			j->added++;
		else
			j->failed++;
	}
	return NULL;
}

struct seq_check {
	uint64_t next;
	int bad;
};

static int
seq_cb(void *arg, uint64_t seq, const char *type, const char *json)
{
	struct seq_check *c = arg;

	(void)type;
	(void)json;
	if (seq != c->next)
		c->bad++;
	c->next = seq + 1;
	return 0;
}

/*
 * Two stores on one database, as two directory processes would be,
 * append to one account from several threads each: one chain with
 * consecutive seqs, every device in it, no fork.
 */
static void
test_pg_two_stores_one_chain(void **state)
{
	struct fx *f = *state;
	struct dir_store *other = NULL;
	struct chain_job jobs[2 * PG_THREADS];
	pthread_t t[2 * PG_THREADS];
	struct seq_check c = { 1, 0 };
	struct err_ctx e;
	int i, n = 2 * PG_THREADS;

	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &other, &e), 0);
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < n; i++) {
		jobs[i].fx = *f;
		jobs[i].fx.s = i % 2 == 0 ? f->s : other;
		jobs[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, chain_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < n; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(jobs[i].failed, 0);
		assert_int_equal(jobs[i].added, PG_ADDS);
	}
	assert_int_equal(tail(f, ALICE), n * PG_ADDS);
	assert_int_equal(f->s->ops->log_events(other, ALICE, 0, 1000, 1000,
	    seq_cb, &c, &e), 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.next, n * PG_ADDS + 1);
	assert_int_equal(count_active(f, ALICE), n * PG_ADDS);
	dir_store_close(other);
}

struct nonce_job {
	struct dir_store *s;
	int r;
};

static void *
nonce_thread(void *arg)
{
	struct nonce_job *j = arg;
	uint8_t nonce[16];
	char d[65];

	memset(nonce, 0x42, sizeof(nonce));
	dev_id(d, 'a');
	j->r = j->s->ops->nonce_use(j->s, d, nonce, sizeof(nonce), 1000,
	    NULL);
	return NULL;
}

/* One nonce offered to two stores at once is accepted once. */
static void
test_pg_nonce_once_across_stores(void **state)
{
	struct fx *f = *state;
	struct dir_store *other = NULL;
	struct nonce_job jobs[6];
	pthread_t t[6];
	struct err_ctx e;
	int i, ok = 0, replay = 0;

	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &other, &e), 0);
	for (i = 0; i < 6; i++) {
		jobs[i].s = i % 2 == 0 ? f->s : other;
		jobs[i].r = ERR_INTERNAL;
		assert_int_equal(pthread_create(&t[i], NULL, nonce_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < 6; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		ok += jobs[i].r == 0;
		replay += jobs[i].r == ERR_REPLAY;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(replay, 5);
	dir_store_close(other);
}

#define QUOTA_THREADS 6
#define QUOTA_POSTS 3
#define BLOB_POSTS 3

/*
 * One attempt of a quota race: attempt `i` of thread `id`, through the
 * store in fx->s.  Returns 0 if it went in, ERR_QUOTA if the quota
 * refused it, another error code if it failed otherwise.
 */
typedef int (*quota_attempt_fn)(struct fx *fx, int id, int i);

struct quota_job {
	struct fx fx;                   /* its own store in fx.s */
	int id;
	int attempts;
	quota_attempt_fn attempt;
	int ok, over, failed;
};

/* Makes j->attempts attempts and counts how each ended. */
static void *
quota_thread(void *arg)
{
	struct quota_job *j = arg;
	int i, r;

	for (i = 0; i < j->attempts; i++) {
		r = j->attempt(&j->fx, j->id, i);
		if (r == 0)
			j->ok++;
		else if (r == ERR_QUOTA)
			j->over++;
		else
			j->failed++;
	}
	return NULL;
}

/*
 * Opens a second store on the database of f and runs QUOTA_THREADS
 * threads at once, every other one through each store, each making
 * `attempts` attempts with `attempt`.  Asserts that no attempt failed
 * but for the quota, that exactly `fit` went in and that all the others
 * were refused for the quota.
 */
static void
quota_race(struct fx *f, quota_attempt_fn attempt, int attempts, int fit)
{
	struct dir_store *other = NULL;
	struct quota_job jobs[QUOTA_THREADS];
	pthread_t t[QUOTA_THREADS];
	struct err_ctx e;
	int i, ok = 0, over = 0;

	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &other, &e), 0);
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < QUOTA_THREADS; i++) {
		jobs[i].fx = *f;
		jobs[i].fx.s = i % 2 == 0 ? f->s : other;
		jobs[i].id = i;
		jobs[i].attempts = attempts;
		jobs[i].attempt = attempt;
		assert_int_equal(pthread_create(&t[i], NULL, quota_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < QUOTA_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(jobs[i].failed, 0);
		ok += jobs[i].ok;
		over += jobs[i].over;
	}
	assert_int_equal(ok, fit);
	assert_int_equal(over, QUOTA_THREADS * attempts - fit);
	dir_store_close(other);
}

/* Posts an envelope of 10 bytes to both of BOB's devices. */
static int
quota_post(struct fx *fx, int id, int i)
{
	struct err_ctx e;
	char sender[65], b1[65], b2[65];
	const char *to[2] = { b1, b2 };

	dev_id(sender, (char)('0' + id));
	dev_id(b1, 'b');
	dev_id(b2, 'c');
	return put(fx, sender, 1 + i, "0123456789", to, 2,
	    LIM(1000, 1000, 100), &e);
}

/*
 * Two stores post at once to the devices of one account with a quota of
 * 100 bytes, 20 bytes a message: five messages fit, and only five go in,
 * whichever store they come through.
 */
static void
test_pg_quota_across_stores(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char b1[65], b2[65];

	dev_id(b1, 'b');
	dev_id(b2, 'c');
	err_clear(&e);
	assert_int_equal(add(f, BOB, b1, 100, &e), 0);
	assert_int_equal(add(f, BOB, b2, 100, &e), 0);
	quota_race(f, quota_post, QUOTA_POSTS, 5);
	assert_int_equal(usage(f, BOB), 100);
	assert_int_equal(queued(f, b1), 5);
	assert_int_equal(queued(f, b2), 5);
}

/* Uploads a blob of 10 bytes from a device of ALICE's. */
static int
quota_blob(struct fx *fx, int id, int i)
{
	struct err_ctx e;
	char device[65], hash[65];
	uint64_t expires = 1000;

	dev_id(device, (char)('0' + id));
	memset(hash, 'f', 64);
	hash[0] = (char)('0' + id);
	hash[1] = (char)('0' + i);
	hash[64] = '\0';
	err_clear(&e);
	return fx->s->ops->blob_put(fx->s, hash, device, ALICE, 10, 1,
	    &expires, 50, NULL, &e);
}

/*
 * Two stores upload at once for the devices of one account with a blob
 * quota of 50 bytes, 10 bytes a blob: five fit, and only five go in,
 * whichever store they come through.
 */
static void
test_pg_blob_quota_across_stores(void **state)
{
	struct fx *f = *state;

	quota_race(f, quota_blob, BLOB_POSTS, 5);
	assert_int_equal(blob_usage(f, ALICE), 50);
}

#define LINK_ROUNDS 20

struct link_job {
	struct fx fx;                   /* its own store in fx.s */
	char blob;                      /* the blob of this round */
	int r;
};

static void *
link_post_thread(void *arg)
{
	struct link_job *j = arg;
	char a1[65], b1[65];
	const char *to[1] = { b1 };
	struct err_ctx e;

	dev_id(a1, 'a');
	dev_id(b1, 'b');
	j->r = bpost(&j->fx, a1, j->blob, (char[]){ j->blob, '\0' }, to, 1,
	    &e);
	return NULL;
}

static void *
link_expire_thread(void *arg)
{
	struct link_job *j = arg;
	struct err_ctx e;

	err_clear(&e);
	j->r = j->fx.s->ops->blob_expire(j->fx.s, 100000, 3600, 0, NULL, NULL,
	    NULL, &e);
	return NULL;
}

/*
 * A store posts a message with a blob that was never posted before and
 * is due to go, while another store expires blobs: either the post wins
 * and the blob stays (linked, its message queued), or the expiry wins
 * and the post is refused; never a queued message whose blob is gone.
 */
static void
test_pg_blob_link_races_expire(void **state)
{
	struct fx *f = *state;
	struct dir_store *other = NULL;
	struct link_job post, expire;
	pthread_t tp, tx;
	struct err_ctx e;
	char a1[65], b1[65];
	int i, kept, posted = 0;

	dev_id(a1, 'a');
	dev_id(b1, 'b');
	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &other, &e), 0);
	for (i = 0; i < LINK_ROUNDS; i++) {
		char c = (char)(i < 10 ? '0' + i : 'a' + i - 10);

		assert_int_equal(bput(f, c, a1, ALICE, 1, 1, 1000000, 1000,
		    NULL, &e), 0);
		memset(&post, 0, sizeof(post));
		memset(&expire, 0, sizeof(expire));
		post.fx = *f;
		post.blob = c;
		expire.fx = *f;
		expire.fx.s = other;
		assert_int_equal(pthread_create(&tp, NULL, link_post_thread,
		    &post), 0);
		assert_int_equal(pthread_create(&tx, NULL, link_expire_thread,
		    &expire), 0);
		assert_int_equal(pthread_join(tp, NULL), 0);
		assert_int_equal(pthread_join(tx, NULL), 0);
		assert_int_equal(expire.r, 0);
		assert_true(post.r == 0 || post.r == ERR_DENIED);
		kept = blob_kept(f, c);
		assert_int_equal(kept, post.r == 0);
		if (post.r == 0) {
			posted++;
			assert_int_equal(bget(f, c, b1, NULL, NULL, &e), 0);
		}
	}
	assert_int_equal(queued(f, b1), posted);
	dir_store_close(other);
}

/*
 * The server ends every connection of the store (as a restart or a
 * failover would): the store notices before it uses one and connects
 * again, so the operations after it see nothing of it.  (A database that
 * stays away gives ERR_NETWORK, and a 503 from the server:
 * tests/integration/test-dir-store-pg.sh.)
 */
static void
test_pg_connection_lost(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char d[65];

	dev_id(d, 'a');
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d, 100, &e), 0);
	assert_int_equal(add_elsewhere(f, ALICE, "b"), 0);
	pg_exec("SELECT pg_terminate_backend(pid, 10000) FROM "
	    "pg_stat_activity WHERE datname = current_database() AND "
	    "pid <> pg_backend_pid()");
	if (f->s->ops->account_create(f->s, "carol", "h", 1, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(f->s->ops->health(f->s, &e), 0);
	assert_int_equal(tail(f, ALICE), 2);
	assert_int_equal(count_active(f, ALICE), 2);
}

/* A server that cannot be reached: ERR_NETWORK, and no password shown. */
static void
test_pg_unreachable(void **state)
{
	struct dir_store *s = NULL;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(dir_store_pg_open("postgresql://devid:s3cret@"
	    "127.0.0.1:1/devid?connect_timeout=2", &s, &e), ERR_NETWORK);
	assert_null(s);
	assert_null(strstr(err_msg(&e), "s3cret"));
	err_clear(&e);
	assert_int_equal(dir_store_pg_open("postgresql://x:s3cret@h/d?"
	    "nosuchoption=1", &s, &e), ERR_CONFIG);
	assert_null(strstr(err_msg(&e), "s3cret"));
}

/* What a watch heard, in order. */
#define HEARD_MAX 512
struct heard {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n;
	enum dir_change what[HEARD_MAX];
	char name[HEARD_MAX][DIR_ACCOUNT_MAX + 1];
};

static void
heard_cb(void *arg, enum dir_change what, const char *name)
{
	struct heard *h = arg;

	pthread_mutex_lock(&h->lock);
	if (h->n < HEARD_MAX) {
		h->what[h->n] = what;
		snprintf(h->name[h->n], sizeof(h->name[h->n]), "%s",
		    name != NULL ? name : "");
		h->n++;
	}
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* Waits up to 10 s for (what, name) at index *from or later: its index,
 * after which *from then points; -1 when it did not come. */
static int
heard_wait(struct heard *h, int *from, enum dir_change what,
    const char *name)
{
	struct timespec ts;
	int i, found = -1;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		for (i = *from; i < h->n && found < 0; i++) {
			if (h->what[i] == what &&
			    strcmp(h->name[i], name) == 0)
				found = i;
		}
		if (found >= 0 || pthread_cond_timedwait(&h->cond, &h->lock,
		    &ts) != 0)
			break;
	}
	pthread_mutex_unlock(&h->lock);
	if (found >= 0)
		*from = found + 1;
	return found;
}

/* o posts one message to n devices never registered: each is heard of,
 * in order.  0, or -1. */
static int
heard_wait_many(struct heard *h, int *at, struct fx *o, int n)
{
	const char **to = calloc((size_t)n, sizeof(*to));
	char (*ids)[65] = calloc((size_t)n, sizeof(*ids));
	struct err_ctx e;
	uint8_t id[16];
	int i, r = 0;

	assert_non_null(to);
	assert_non_null(ids);
	memset(id, 8, sizeof(id));
	for (i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%064x", 0x1000 + i);
		to[i] = ids[i];
	}
	err_clear(&e);
	assert_int_equal(o->s->ops->message_put(o->s, ids[0], id, 16, "{}",
	    to, (size_t)n, NULL, 0, LIM(10, 10, UINT64_MAX), &e), 0);
	for (i = 0; i < n && r == 0; i++)
		r = heard_wait(h, at, DIR_CHANGE_INBOX, ids[i]) >= 0 ? 0 : -1;
	free(to);
	free(ids);
	return r;
}

static int
heard_count(struct heard *h)
{
	int n;

	pthread_mutex_lock(&h->lock);
	n = h->n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

/*
 * The changes another store commits reach a watching store: an append
 * names its account, a message each recipient device, a revocation the
 * account and the device; its own changes and payloads that do not parse
 * are not reported; connecting again after its connection was cut
 * reports that anything may have changed; after the watch stopped
 * nothing comes.
 */
static void
test_pg_watch(void **state)
{
	struct fx *f = *state, o;
	struct heard h;
	struct err_ctx e;
	char d1[65], d2[65], d3[65], d4[65], sql[256];
	const char *to[2];
	uint8_t id[16];
	int at = 0, n;

	memset(&h, 0, sizeof(h));
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	o = *f;
	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &o.s, &e), 0);
	dev_id(d1, '1');
	dev_id(d2, '2');
	dev_id(d3, '3');
	dev_id(d4, '4');
	to[0] = d1;
	to[1] = d2;
	memset(id, 7, sizeof(id));
	assert_non_null(f->s->ops->watch);
	assert_int_equal(f->s->ops->watch(f->s, heard_cb, &h, &e), 0);
	assert_int_equal(f->s->ops->watch(f->s, heard_cb, &h, &e),
	    ERR_EXISTS);
	/* Listening: anything may have changed before. */
	assert_true(heard_wait(&h, &at, DIR_CHANGE_ALL, "") >= 0);

	assert_int_equal(add(&o, ALICE, d1, 100, &e), 0);
	assert_true(heard_wait(&h, &at, DIR_CHANGE_LOG, ALICE) >= 0);
	/* Its own append is not reported: the next is bob's. */
	assert_int_equal(add(f, ALICE, d2, 100, &e), 0);
	assert_int_equal(add(&o, BOB, d3, 100, &e), 0);
	n = at;
	assert_int_equal(heard_wait(&h, &at, DIR_CHANGE_LOG, BOB), n);

	assert_int_equal(o.s->ops->message_put(o.s, d3, id, 16, "{}", to, 2,
	    NULL, 0, LIM(10, 10, UINT64_MAX), &e), 0);
	n = at;
	assert_true(heard_wait(&h, &at, DIR_CHANGE_INBOX, d1) >= 0);
	assert_true(heard_wait(&h, &n, DIR_CHANGE_INBOX, d2) >= 0);
	at = n > at ? n : at;

	/* Many recipients take several notifications. */
	assert_int_equal(heard_wait_many(&h, &at, &o, 150), 0);

	assert_int_equal(do_revoke(&o, ALICE, d1, &e), 0);
	n = at;
	assert_true(heard_wait(&h, &at, DIR_CHANGE_LOG, ALICE) >= 0);
	assert_true(heard_wait(&h, &n, DIR_CHANGE_DEVICE, d1) >= 0);
	at = n > at ? n : at;

	/* Anyone may notify on the channel: what does not parse is
	 * dropped. */
	pg_exec("NOTIFY devid, 'garbage'");
	pg_exec("NOTIFY devid, '0123456789abcdef log '");
	pg_exec("NOTIFY devid, '0123456789abcdef log a b'");
	pg_exec("NOTIFY devid, '0123456789abcdef inbox 12'");
	pg_exec("NOTIFY devid, '0123456789ABCDEF log x'");
	pg_exec("NOTIFY devid, '0123456789abcdef what x'");
	n = heard_count(&h);
	snprintf(sql, sizeof(sql), "NOTIFY devid, '0123456789abcdef device "
	    "%s'", d4);
	pg_exec(sql);
	assert_int_equal(heard_wait(&h, &at, DIR_CHANGE_DEVICE, d4), n);

	/* Cut: it connects again and says anything may have changed. */
	pg_exec("SELECT pg_terminate_backend(pid, 10000) FROM "
	    "pg_stat_activity WHERE datname = current_database() AND "
	    "pid <> pg_backend_pid()");
	assert_true(heard_wait(&h, &at, DIR_CHANGE_ALL, "") >= 0);
	assert_int_equal(add(&o, BOB, d4, 100, &e), 0);
	assert_true(heard_wait(&h, &at, DIR_CHANGE_LOG, BOB) >= 0);

	/* Stopped: nothing more. */
	assert_int_equal(f->s->ops->watch(f->s, NULL, NULL, &e), 0);
	assert_int_equal(f->s->ops->watch(f->s, NULL, NULL, &e), 0);
	n = heard_count(&h);
	assert_int_equal(do_revoke(&o, BOB, d4, &e), 0);
	usleep(300 * 1000);
	assert_int_equal(heard_count(&h), n);
	/* It may start again; close stops it. */
	assert_int_equal(f->s->ops->watch(f->s, heard_cb, &h, &e), 0);
	assert_true(heard_wait(&h, &at, DIR_CHANGE_ALL, "") >= 0);
	dir_store_close(f->s);
	f->s = NULL;
	dir_store_close(o.s);
	pthread_cond_destroy(&h.cond);
	pthread_mutex_destroy(&h.lock);
}

/* SQLite has nothing to watch: one process serves it. */
static void
test_sqlite_no_watch(void **state)
{
	struct fx *f = *state;

	assert_null(f->s->ops->watch);
}

/* --- the global transparency log --- */

#define TREE_MAX 256

/* The leaves of a tree as read back, with their leaf hashes. */
struct tree_read {
	uint64_t n;
	char account[TREE_MAX][DIR_ACCOUNT_MAX + 1];
	uint64_t seq[TREE_MAX];
	uint8_t ev[TREE_MAX][32];
	uint8_t leaf[TREE_MAX][32];
	int bad;                        /* an index out of order */
};

static int
tree_leaf_cb(void *arg, uint64_t index, const char *account, uint64_t seq,
    const uint8_t hash[32])
{
	struct tree_read *t = arg;

	if (index != t->n || t->n >= TREE_MAX) {
		t->bad++;
		return 0;
	}
	snprintf(t->account[t->n], sizeof(t->account[t->n]), "%s", account);
	t->seq[t->n] = seq;
	memcpy(t->ev[t->n], hash, 32);
	assert_int_equal(tlog_leaf_hash(account, seq, hash, t->leaf[t->n]), 0);
	t->n++;
	return 0;
}

/* A merkle_node_fn over the store's stored nodes. */
static int
store_node(void *arg, unsigned int level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e)
{
	struct dir_store *s = arg;

	return s->ops->tlog_node(s, level, index, out, e);
}

/*
 * Reads s's whole tree into t and checks it: tlog_size leaves, indexes
 * 0.. without a gap, and for every size up to it, the root from the
 * stored nodes is the reference root of the leaves.
 */
static void
tree_check(struct dir_store *s, struct tree_read *t)
{
	struct err_ctx e;
	uint8_t want[32], got[32];
	uint64_t size, k;

	memset(t, 0, sizeof(*t));
	err_clear(&e);
	assert_int_equal(s->ops->tlog_size(s, &size, &e), 0);
	assert_true(size <= TREE_MAX);
	if (s->ops->tlog_leaves(s, 0, size + 5, tree_leaf_cb, t, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(t->bad, 0);
	assert_int_equal(t->n, size);
	for (k = 0; k <= size; k++) {
		assert_int_equal(merkle_root_reference(
		    (const uint8_t (*)[32])t->leaf, k, want), 0);
		if (merkle_root(k, store_node, s, got, &e) != 0)
			fail_msg("root of %llu: %s", (unsigned long long)k,
			    err_msg(&e));
		assert_memory_equal(got, want, 32);
	}
}

/* The hash add() and do_revoke() give event seq of an add or a revoke. */
static void
ev_hash(uint8_t out[32], int revoke, uint64_t seq)
{
	memset(out, revoke ? 0x80 | (int)seq : (int)seq, 32);
}

static void
test_tlog_appends(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *account;
		char device;
		int revoke;
	} steps[] = {
		{ ALICE, 'a', 0 }, { BOB, 'b', 0 }, { ALICE, 'c', 0 },
		{ ALICE, 'a', 1 }, { BOB, 'd', 0 }, { BOB, 'b', 1 },
		{ ALICE, 'e', 0 }, { BOB, 'f', 0 }, { ALICE, 'a', 0 },
	};
	const size_t n = sizeof(steps) / sizeof(steps[0]);
	struct tree_read t;
	struct err_ctx e;
	uint64_t size, seq, idx, seqs[2] = { 0, 0 };
	uint8_t h[32], node[32];
	char d[65];
	size_t i;
	int who;

	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_size(f->s, &size, &e), 0);
	assert_int_equal(size, 0);
	tree_check(f->s, &t);
	for (i = 0; i < n; i++) {
		dev_id(d, steps[i].device);
		if (steps[i].revoke)
			assert_int_equal(do_revoke(f, steps[i].account, d,
			    &e), 0);
		else
			assert_int_equal(add(f, steps[i].account, d, 10, &e),
			    0);
		assert_int_equal(f->s->ops->tlog_size(f->s, &size, &e), 0);
		assert_int_equal(size, i + 1);
	}
	/* The leaves in commit order, each naming its event. */
	tree_check(f->s, &t);
	for (i = 0; i < n; i++) {
		who = strcmp(steps[i].account, ALICE) == 0 ? 0 : 1;
		seqs[who]++;
		assert_string_equal(t.account[i], steps[i].account);
		assert_int_equal(t.seq[i], seqs[who]);
		ev_hash(h, steps[i].revoke, seqs[who]);
		assert_memory_equal(t.ev[i], h, 32);
	}
	/* Level 0 holds the leaf hashes; nothing past the tree. */
	assert_int_equal(f->s->ops->tlog_node(f->s, 0, 4, node, &e), 0);
	assert_memory_equal(node, t.leaf[4], 32);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_node(f->s, 0, n, node, &e),
	    ERR_NOT_FOUND);
	/* 9 leaves: (3, 0) is complete, (3, 1) and (1, 4) are not. */
	assert_int_equal(f->s->ops->tlog_node(f->s, 3, 0, node, &e), 0);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_node(f->s, 3, 1, node, &e),
	    ERR_NOT_FOUND);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_node(f->s, 1, 4, node, &e),
	    ERR_NOT_FOUND);
	/* An account's latest event below a size. */
	assert_int_equal(f->s->ops->tlog_latest(f->s, ALICE, n, &seq, &idx,
	    &e), 0);
	assert_int_equal(seq, 5);
	assert_int_equal(idx, 8);
	assert_int_equal(f->s->ops->tlog_latest(f->s, ALICE, 8, &seq, &idx,
	    &e), 0);
	assert_int_equal(seq, 4);
	assert_int_equal(idx, 6);
	assert_int_equal(f->s->ops->tlog_latest(f->s, BOB, 2, &seq, &idx,
	    &e), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(idx, 1);
	assert_int_equal(f->s->ops->tlog_latest(f->s, BOB, UINT64_MAX, &seq,
	    &idx, &e), 0);
	assert_int_equal(seq, 4);
	assert_int_equal(idx, 7);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_latest(f->s, BOB, 1, &seq, &idx,
	    &e), ERR_NOT_FOUND);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_latest(f->s, "carol@example.org",
	    n, &seq, &idx, &e), ERR_NOT_FOUND);
	/* Part of the leaves; ranges refused. */
	memset(&t, 0, sizeof(t));
	t.n = 3;
	assert_int_equal(f->s->ops->tlog_leaves(f->s, 3, 5, tree_leaf_cb, &t,
	    &e), 0);
	assert_int_equal(t.n, 5);
	assert_int_equal(t.bad, 0);
	assert_string_equal(t.account[4], BOB);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_leaves(f->s, 5, 3, tree_leaf_cb, &t,
	    &e), ERR_INVALID_ARG);
	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_leaves(f->s, 0, 1025, tree_leaf_cb,
	    &t, &e), ERR_INVALID_ARG);
}

/* Appends that fail add no leaf, and the tree carries on after them. */
static void
test_tlog_failed_append(void **state)
{
	struct fx *f = *state;
	struct dir_event_row ev;
	struct dir_device_row dev;
	struct tree_read t;
	struct err_ctx e;
	uint8_t pub[3] = { 1, 2, 3 };
	uint64_t size;
	char d1[65], d2[65];

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 10, &e), 0);
	/* A stale tail: ERR_CHAIN. */
	memset(&ev, 0, sizeof(ev));
	ev.account = ALICE;
	ev.seq = 1;
	ev.time = 5000;
	ev.type = "add";
	memset(ev.hash, 0x55, 32);
	ev.json = "{}";
	dev.device = d2;
	dev.record_json = "{}";
	dev.sig_pub = pub;
	dev.sig_pub_len = sizeof(pub);
	assert_int_equal(f->s->ops->log_append_add(f->s, &ev, &dev, 10, &e),
	    ERR_CHAIN);
	err_clear(&e);
	assert_int_equal(do_revoke(f, ALICE, d2, &e), ERR_NOT_FOUND);
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 10, &e), ERR_EXISTS);
	err_clear(&e);
	assert_int_equal(add(f, BOB, d2, 0, &e), ERR_TOO_LARGE);
	assert_int_equal(f->s->ops->tlog_size(f->s, &size, &e), 0);
	assert_int_equal(size, 1);
	assert_int_equal(add(f, BOB, d2, 10, &e), 0);
	assert_int_equal(do_revoke(f, ALICE, d1, &e), 0);
	tree_check(f->s, &t);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.account[1], BOB);
	assert_int_equal(t.seq[2], 2);
}

/* With the tree off (tests/bench/bench-tlog), appends leave it alone. */
static void
test_tlog_off(void **state)
{
	struct fx *f = *state;
	struct tree_read t;
	struct err_ctx e;
	uint64_t size;
	char d1[65], d2[65];

	dev_id(d1, 'a');
	dev_id(d2, 'b');
	err_clear(&e);
	assert_int_equal(add(f, ALICE, d1, 10, &e), 0);
	f->s->tlog_off = 1;
	assert_int_equal(add(f, ALICE, d2, 10, &e), 0);
	assert_int_equal(do_revoke(f, ALICE, d1, &e), 0);
	assert_int_equal(tail(f, ALICE), 3);
	assert_int_equal(f->s->ops->tlog_size(f->s, &size, &e), 0);
	assert_int_equal(size, 1);
	/* Back on, it continues from its own last leaf. */
	f->s->tlog_off = 0;
	dev_id(d1, 'c');
	assert_int_equal(add(f, BOB, d1, 10, &e), 0);
	tree_check(f->s, &t);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.seq[0], 1);
	assert_string_equal(t.account[1], BOB);
}

static void
test_checkpoint(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	uint64_t size = 7;
	char *note = NULL;

	err_clear(&e);
	assert_int_equal(f->s->ops->checkpoint_get(f->s, &size, &note, &e),
	    ERR_NOT_FOUND);
	assert_null(note);
	assert_int_equal(f->s->ops->checkpoint_put(f->s, 3, "three\n", &e),
	    0);
	assert_int_equal(f->s->ops->checkpoint_get(f->s, &size, &note, &e),
	    0);
	assert_int_equal(size, 3);
	assert_string_equal(note, "three\n");
	free(note);
	/* The same size replaces it (more cosignatures). */
	assert_int_equal(f->s->ops->checkpoint_put(f->s, 3, "three+\n", &e),
	    0);
	assert_int_equal(f->s->ops->checkpoint_get(f->s, &size, &note, &e),
	    0);
	assert_string_equal(note, "three+\n");
	free(note);
	assert_int_equal(f->s->ops->checkpoint_put(f->s, 5, "five\n", &e), 0);
	/* A smaller one is refused and changes nothing. */
	err_clear(&e);
	assert_int_equal(f->s->ops->checkpoint_put(f->s, 4, "four\n", &e),
	    ERR_ROLLBACK);
	assert_non_null(strstr(err_msg(&e), "older"));
	err_clear(&e);
	assert_int_equal(f->s->ops->checkpoint_put(f->s, 0, "zero\n", &e),
	    ERR_ROLLBACK);
	assert_int_equal(f->s->ops->checkpoint_get(f->s, &size, &note, &e),
	    0);
	assert_int_equal(size, 5);
	assert_string_equal(note, "five\n");
	free(note);
}

/* Version 2 of the schema, as the store brings version 1 to it. */
static const char *const schema_v2_step_sql =
	"ALTER TABLE queue ADD COLUMN sender TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE queue ADD COLUMN account TEXT;"
	"ALTER TABLE queue ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX queue_by_sender ON queue(device, sender);"
	"CREATE TABLE account_usage ("
	"  account TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;"
	"UPDATE meta SET value = '2' WHERE key = 'schema';";

/*
 * A version 2 database with events: the update to version 3 gives each
 * event its leaf, by time (the latest time of its log so far, so that a
 * clock that stepped back keeps an account's events in seq order), then
 * account, then seq, and stores the tree's nodes.
 */
static const struct {
	const char *account;
	uint64_t seq, time;
} backfill_rows[] = {
	{ BOB, 2, 300 }, { ALICE, 3, 250 }, { ALICE, 1, 100 },
	{ BOB, 1, 200 }, { ALICE, 2, 300 },
};
/* The order of their leaves: indexes into backfill_rows[]. */
static const int backfill_order[] = { 2, 3, 4, 1, 0 };

/* The SQL that stores backfill_rows[i], event hash i + 1 repeated. */
static void
backfill_sql(char *sql, size_t len, size_t i, const char *hex_prefix)
{
	char hex[65];
	int k;

	for (k = 0; k < 32; k++)
		snprintf(hex + 2 * k, 3, "%02x", (unsigned)(i + 1));
	snprintf(sql, len, "INSERT INTO events VALUES ('%s', %llu, %llu, "
	    "'add', %s, %s%s', '{}');", backfill_rows[i].account,
	    (unsigned long long)backfill_rows[i].seq,
	    (unsigned long long)backfill_rows[i].time,
	    hex_prefix[0] == 'x' ? "zeroblob(32)" : "'\\x00'", hex_prefix,
	    hex);
}

/* The store's tree holds backfill_rows[] in backfill_order[], and a new
 * event carries on from it. */
static void
backfill_check(struct fx *f)
{
	struct tree_read t;
	struct err_ctx e;
	uint8_t h[32];
	char d[65];
	size_t i;
	int k;

	tree_check(f->s, &t);
	assert_int_equal(t.n, 5);
	for (i = 0; i < 5; i++) {
		k = backfill_order[i];
		assert_string_equal(t.account[i], backfill_rows[k].account);
		assert_int_equal(t.seq[i], backfill_rows[k].seq);
		memset(h, k + 1, sizeof(h));
		assert_memory_equal(t.ev[i], h, 32);
	}
	err_clear(&e);
	dev_id(d, 'a');
	assert_int_equal(add(f, BOB, d, 10, &e), 0);
	tree_check(f->s, &t);
	assert_int_equal(t.n, 6);
	assert_string_equal(t.account[5], BOB);
	assert_int_equal(t.seq[5], 3);
}

static void
test_schema_update_tlog(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char path[160], sql[512];
	size_t i;

	snprintf(path, sizeof(path), "%s/v2.db", f->dir);
	raw_exec(path, schema_v1_sql);
	raw_exec(path, schema_v2_step_sql);
	snprintf(sql, sizeof(sql), "INSERT INTO accounts VALUES ('%s', 'h', "
	    "1), ('%s', 'h', 1);", ALICE, BOB);
	raw_exec(path, sql);
	for (i = 0; i < sizeof(backfill_rows) / sizeof(backfill_rows[0]);
	    i++) {
		backfill_sql(sql, sizeof(sql), i, "x'");
		raw_exec(path, sql);
	}
	assert_int_equal(raw_schema_version(path), 2);
	dir_store_close(f->s);
	f->s = NULL;
	err_clear(&e);
	if (dir_store_sqlite_open(path, &f->s, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(raw_schema_version(path), 4);
	backfill_check(f);
}

/* PostgreSQL's migration 3 backfills the same tree from the same rows. */
static void
test_pg_schema_update_tlog(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char sql[512];
	size_t i;

	dir_store_close(f->s);
	f->s = NULL;
	pg_exec("DROP TABLE tlog_leaves, tlog_nodes, tlog_checkpoint;"
	    "DROP TABLE blob_links, blobs;"
	    "DELETE FROM schema_migrations WHERE version >= 3;");
	for (i = 0; i < sizeof(backfill_rows) / sizeof(backfill_rows[0]);
	    i++) {
		backfill_sql(sql, sizeof(sql), i, "'\\x");
		pg_exec(sql);
	}
	err_clear(&e);
	if (dir_store_pg_open(pg_uri, &f->s, &e) != 0)
		fail_msg("%s", err_msg(&e));
	backfill_check(f);
}

/* SQLite: the one process that serves it makes the checkpoints. */
static void
test_sqlite_sequencer(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	int leader = 0;

	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_sequencer(f->s, &leader, &e), 0);
	assert_int_equal(leader, 1);
}

/*
 * Two stores on one SQLite file (the account tools beside the server):
 * each appends after the other, so a frontier kept by one is stale
 * whenever the other appended.  The tree stays whole.
 */
static void
test_sqlite_two_stores_tree(void **state)
{
	struct fx *f = *state;
	struct fx g = *f;
	struct tree_read t;
	struct err_ctx e;
	char d[65];
	int i;

	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(f->path, &g.s, &e), 0);
	for (i = 0; i < 12; i++) {
		dev_id(d, (char)('a' + i));
		assert_int_equal(add(i % 3 == 0 ? &g : f, i % 2 ? ALICE : BOB,
		    d, 100, &e), 0);
	}
	tree_check(f->s, &t);
	assert_int_equal(t.n, 12);
	tree_check(g.s, &t);
	assert_int_equal(t.n, 12);
	dir_store_close(g.s);
}

/*
 * Two stores on one database append from several threads each, to two
 * accounts: one leaf per event, indexes without a gap, each account's
 * leaves in seq order, and a root from the stored nodes that is the
 * reference root of the leaves (no node written twice or skipped).
 */
static void
test_pg_tlog_two_stores(void **state)
{
	struct fx *f = *state;
	struct dir_store *other = NULL;
	struct chain_job jobs[2 * PG_THREADS];
	pthread_t t[2 * PG_THREADS];
	struct tree_read *tr;
	struct err_ctx e;
	uint64_t next[2] = { 1, 1 }, size;
	int i, n = 2 * PG_THREADS, who;

	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &other, &e), 0);
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < n; i++) {
		jobs[i].fx = *f;
		jobs[i].fx.s = i % 3 == 0 ? f->s : other;
		jobs[i].id = i;
		jobs[i].account = i % 2 == 0 ? ALICE : BOB;
		assert_int_equal(pthread_create(&t[i], NULL, chain_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < n; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(jobs[i].failed, 0);
		assert_int_equal(jobs[i].added, PG_ADDS);
	}
	assert_int_equal(other->ops->tlog_size(other, &size, &e), 0);
	assert_int_equal(size, n * PG_ADDS);
	assert_non_null(tr = calloc(1, sizeof(*tr)));
	tree_check(other, tr);
	for (i = 0; i < n * PG_ADDS; i++) {
		who = strcmp(tr->account[i], ALICE) == 0 ? 0 : 1;
		assert_int_equal(tr->seq[i], next[who]);
		next[who]++;
	}
	assert_int_equal(tail(f, ALICE), next[0] - 1);
	assert_int_equal(tail(f, BOB), next[1] - 1);
	free(tr);
	dir_store_close(other);
}

/*
 * Of two stores on one database, one is the sequencer; when it closes,
 * the other takes over (the server ends the first session's lock a
 * moment after the connection closes).
 */
static void
test_pg_sequencer(void **state)
{
	struct fx *f = *state;
	struct dir_store *other = NULL;
	struct err_ctx e;
	int leader = -1, i;

	err_clear(&e);
	assert_int_equal(dir_store_pg_open(pg_uri, &other, &e), 0);
	assert_int_equal(f->s->ops->tlog_sequencer(f->s, &leader, &e), 0);
	assert_int_equal(leader, 1);
	assert_int_equal(other->ops->tlog_sequencer(other, &leader, &e), 0);
	assert_int_equal(leader, 0);
	/* Asking again changes nothing. */
	assert_int_equal(f->s->ops->tlog_sequencer(f->s, &leader, &e), 0);
	assert_int_equal(leader, 1);
	assert_int_equal(other->ops->tlog_sequencer(other, &leader, &e), 0);
	assert_int_equal(leader, 0);
	dir_store_close(f->s);
	f->s = other;
	for (i = 0; i < 200; i++) {
		assert_int_equal(other->ops->tlog_sequencer(other, &leader,
		    &e), 0);
		if (leader)
			break;
		usleep(25000);
	}
	assert_int_equal(leader, 1);
}

/* Sessions holding the sequencer's lock, (4, 0) of dir-store-pg.c. */
#define SEQUENCER_HELD "SELECT COUNT(*) FROM pg_locks WHERE locktype = " \
	"'advisory' AND classid = 4 AND objid = 0 AND objsubid = 2 AND granted"

/* The one integer that sql returns on the database under test. */
static long
pg_count(const char *sql)
{
	PGconn *db = PQconnectdb(pg_uri);
	PGresult *res;
	long n;

	assert_int_equal(PQstatus(db), CONNECTION_OK);
	res = PQexec(db, sql);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(db);
	return n;
}

/*
 * The sequencer's connection cut by the server: the lock went with it,
 * and the next call takes it again on a new connection.
 */
static void
test_pg_sequencer_reconnects(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	int leader = -1, i;

	err_clear(&e);
	assert_int_equal(f->s->ops->tlog_sequencer(f->s, &leader, &e), 0);
	assert_int_equal(leader, 1);
	assert_int_equal(pg_count(SEQUENCER_HELD), 1);
	pg_exec("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
	    "locktype = 'advisory' AND classid = 4 AND objid = 0 AND "
	    "objsubid = 2");
	for (i = 0; i < 200 && pg_count(SEQUENCER_HELD) != 0; i++)
		usleep(25000);
	assert_int_equal(pg_count(SEQUENCER_HELD), 0);
	/* The farewell reaches the client a moment later. */
	usleep(200000);
	assert_int_equal(f->s->ops->tlog_sequencer(f->s, &leader, &e), 0);
	assert_int_equal(leader, 1);
	assert_int_equal(pg_count(SEQUENCER_HELD), 1);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	/* Every backend. */
	const struct CMUnitTest tests[] = {
		CASE(test_accounts),
		CASE(test_log_append_and_read),
		CASE(test_append_refusals_change_nothing),
		CASE(test_revoke_and_readd),
		CASE(test_sessions),
		CASE(test_nonces),
		CASE(test_messages),
		CASE(test_sender_share),
		CASE(test_quota),
		CASE(test_stopped_reads_end_their_snapshot),
		CASE(test_nested_listing),
		CASE(test_concurrent_writers),
		CASE(test_close_with_kept_statements),
		CASE(test_tlog_appends),
		CASE(test_tlog_failed_append),
		CASE(test_tlog_off),
		CASE(test_checkpoint),
		CASE(test_blob_put_quota),
		CASE(test_blob_message_put),
		CASE(test_blob_expire),
	};
	/* The SQLite file: its schema versions and its modes. */
	const struct CMUnitTest sqlite_tests[] = {
		CASE(test_schema_update),
		CASE(test_schema_newer_refused),
		CASE(test_file_modes),
		CASE(test_existing_file_mode_kept),
		CASE(test_sqlite_no_watch),
		CASE(test_schema_update_tlog),
		CASE(test_sqlite_sequencer),
		CASE(test_sqlite_two_stores_tree),
	};
	const struct CMUnitTest pg_tests[] = {
		CASE(test_pg_schema_newer_refused),
		CASE(test_pg_schema_update),
		CASE(test_pg_migrate_together),
		CASE(test_pg_two_stores_one_chain),
		CASE(test_pg_nonce_once_across_stores),
		CASE(test_pg_quota_across_stores),
		CASE(test_pg_blob_quota_across_stores),
		CASE(test_pg_blob_link_races_expire),
		CASE(test_pg_connection_lost),
		CASE(test_pg_unreachable),
		CASE(test_pg_watch),
		CASE(test_pg_schema_update_tlog),
		CASE(test_pg_tlog_two_stores),
		CASE(test_pg_sequencer),
		CASE(test_pg_sequencer_reconnects),
	};
	int r;

	pg_uri = getenv("DEVID_TEST_PG_URI");
	if (pg_uri != NULL && pg_uri[0] == '\0')
		pg_uri = NULL;
	if (pg_uri == NULL) {
		r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
		return r | cmocka_run_group_tests_name("sqlite-only",
		    sqlite_tests, NULL, NULL);
	}
	r = cmocka_run_group_tests_name("postgresql", tests, NULL, NULL);
	return r | cmocka_run_group_tests_name("postgresql-only", pg_tests,
	    NULL, NULL);
}
