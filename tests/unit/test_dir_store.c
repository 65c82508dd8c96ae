/*
 * test_dir_store.c - the directory's SQLite store: every operation, the
 * invariants it checks inside its transaction, and that a refused change
 * leaves the database exactly as it was.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dir-store.h"
#include "errors.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"

struct fx {
	char dir[64];
	char path[128];
	struct dir_store *s;
};

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
	err_clear(&e);
	assert_int_equal(dir_store_sqlite_open(f->path, &f->s, &e), 0);
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
	char p[192];

	dir_store_close(f->s);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	unlink(f->path);
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
	    to12, 2, 2, &e), 0);
	/* The same id from the same sender is refused... */
	assert_int_equal(f->s->ops->message_put(f->s, d3, id1, 16, "{\"m\":9}",
	    to12, 2, 2, &e), ERR_EXISTS);
	/* ...from another sender it is a different message. */
	err_clear(&e);
	assert_int_equal(f->s->ops->message_put(f->s, d1, id1, 16, "{\"m\":2}",
	    to2, 1, 2, &e), 0);
	/* d2's queue is full now (2): the whole message is refused, d1's
	 * queue does not get it either. */
	err_clear(&e);
	assert_int_equal(f->s->ops->message_put(f->s, d3, id3, 16, "{\"m\":3}",
	    to12, 2, 2, &e), ERR_TOO_LARGE);
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
	    to2, 1, 5, &e), 0);
	/* Revoking d2 empties its queue. */
	assert_int_equal(inbox(f, d2, 100, 1 << 20).n, 2);
	assert_int_equal(add(f, BOB, d2, 10, &e), 0);
	assert_int_equal(do_revoke(f, BOB, d2, &e), 0);
	assert_int_equal(inbox(f, d2, 100, 1 << 20).n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_accounts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_log_append_and_read,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_append_refusals_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoke_and_readd, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nonces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
