/*
 * dir-migrate-client.c - the clients of test-dir-migrate.sh: software
 * devices that use a directory, then carry on against its migrated copy.
 *
 *   dir-migrate-client URL
 *
 * On URL (open sign-up): accounts alice and bob; alice's laptop and phone
 * and bob's desktop registered, alice's tablet registered and revoked;
 * two messages from the laptop to the phone and the desktop and a third
 * to the desktop alone, which reads and acknowledges all three (so the
 * highest seq ever given is no longer queued).  Prints "populated" and reads the
 * second directory's URL from standard input (the script migrates and
 * starts it meanwhile).  Against that one, with the same keys: the
 * devices log in again, each log reads and verifies under the same head
 * key with exactly the events seen before, the phone finds its two
 * messages with the seqs they had and the desktop none; a new message
 * lands above every seq given before, and a new device extends alice's
 * log.  Prints "ok"; any failure exits 1 with the reason.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "acctlog.h"
#include "crypto.h"
#include "dir-test-util.h"
#include "dirclient.h"
#include "errors.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define PW "correct horse battery staple"
#define BOB_PW "another fine password for bob"

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dir-migrate-client: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static struct dirc *
client(const char *url)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_new(url, NULL, &c, &e) != 0)
		die("client for %s: %s", url, err_msg(&e));
	return c;
}

static struct dirc *
login(const char *url, const char *dir_id, struct tdev *d)
{
	struct dirc *c = client(url);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_login(c, dir_id, d->rec.device, tdev_sign, d, NULL, &e) != 0)
		die("login of %.16s at %s: %s", d->rec.device, url,
		    err_msg(&e));
	return c;
}

/* The whole log of account, verified from seq 1 under dir_pub, into *st
 * (initialised here) and its events' JSON texts, one per line, into
 * *text (caller frees). */
static void
read_log(struct dirc *c, const char *account, const char *dir_id,
    EVP_PKEY *dir_pub, struct acctlog_state *st, char **text)
{
	struct acctlog_response *resp = NULL;
	struct err_ctx e;
	json_t *o;
	char *s, *all = NULL;
	size_t i, len = 0, n;

	err_clear(&e);
	if (acctlog_state_init(st, account, dir_id, &e) != 0 ||
	    dirc_get_log(c, account, 0, 0, &resp, &e) != 0 ||
	    acctlog_verify_update(st, resp->events, resp->n_events,
	    &resp->head, dir_pub, (uint64_t)time(NULL), 900, NULL, &e) != 0)
		die("log of %s: %s", account, err_msg(&e));
	for (i = 0; i < resp->n_events; i++) {
		if (acctlog_event_to_json(&resp->events[i], &o, &e) != 0 ||
		    (s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) ==
		    NULL)
			die("event JSON: %s", err_msg(&e));
		json_decref(o);
		n = strlen(s);
		if ((all = realloc(all, len + n + 2)) == NULL)
			die("out of memory");
		memcpy(all + len, s, n);
		all[len + n] = '\n';
		len += n + 1;
		all[len] = '\0';
		free(s);
	}
	acctlog_response_free(resp);
	*text = all != NULL ? all : strdup("");
}

/* The inbox of c: exactly n items, which dev opens (sent by from); their
 * seqs into seqs. */
static void
inbox_expect(struct dirc *c, const struct tdev *dev, const struct tdev *from,
    size_t n, uint64_t *seqs)
{
	struct dirc_inbox *in = NULL;
	struct err_ctx e;
	size_t i;

	err_clear(&e);
	if (dirc_inbox(c, 0, 0, &in, &e) != 0)
		die("inbox of %.16s: %s", dev->rec.device, err_msg(&e));
	if (in->n_items != n)
		die("inbox of %.16s: %zu messages, expected %zu",
		    dev->rec.device, in->n_items, n);
	for (i = 0; i < n; i++) {
		if (tenv_open(dev, from, in->items[i].envelope,
		    in->items[i].envelope_len) != 0)
			die("message %zu of %.16s does not open", i,
			    dev->rec.device);
		seqs[i] = in->items[i].seq;
	}
	dirc_inbox_free(in);
}

static void
post(struct dirc *c, const struct tdev *from, const struct acctlog_head *views,
    const struct tdev *const *recips, size_t n)
{
	const char *to[2] = { ALICE, BOB };
	struct err_ctx e;
	char *json = NULL;
	size_t len = 0;

	err_clear(&e);
	if (tenv_make(from, to, 2, views, 2, recips, n, &json, &len) != 0)
		die("cannot make an envelope");
	if (dirc_post_message(c, json, len, NULL, &e) != 0)
		die("post: %s", err_msg(&e));
	free(json);
}

int
main(int argc, char **argv)
{
	struct tdev laptop, phone, tablet, desk, card;
	const struct tdev *recips[2] = { &phone, &desk };
	struct acctlog_state alice, bob, alice2, bob2;
	struct acctlog_head views[2];
	struct dirc_info info;
	struct dirc *c, *cl, *cp, *cd;
	struct err_ctx e;
	EVP_PKEY *dir_pub = NULL;
	char *alice_log, *bob_log, *alice_log2, *bob_log2;
	char url2[512], dir_id[DEVREC_ID_HEX_LEN + 1];
	uint64_t now = (uint64_t)time(NULL), phone_seqs[3], desk_seqs[3];
	uint64_t removed = 0, last, revoke_time;
	uint8_t sig[64];

	if (argc != 2)
		die("usage: dir-migrate-client URL");
	err_clear(&e);

	/* The first directory. */
	c = client(argv[1]);
	if (dirc_info(c, &info, &e) != 0 ||
	    crypto_spki_import(info.head_key, info.head_key_len, &dir_pub,
	    &e) != 0 ||
	    dirc_create_account(c, ALICE, PW, &e) != 0 ||
	    dirc_create_account(c, BOB, BOB_PW, &e) != 0)
		die("set-up: %s", err_msg(&e));
	snprintf(dir_id, sizeof(dir_id), "%s", info.directory_id);
	if (tdev_make(&laptop, ALICE, "laptop", now) != 0 ||
	    tdev_make(&phone, ALICE, "phone", now) != 0 ||
	    tdev_make(&tablet, ALICE, "tablet", now) != 0 ||
	    tdev_make(&card, ALICE, "card", now) != 0 ||
	    tdev_make(&desk, BOB, "desktop", now) != 0)
		die("cannot make devices");
	if (dirc_register_device(c, PW, &laptop.rec, NULL, &e) != 0 ||
	    dirc_register_device(c, PW, &phone.rec, NULL, &e) != 0 ||
	    dirc_register_device(c, PW, &tablet.rec, NULL, &e) != 0 ||
	    dirc_register_device(c, BOB_PW, &desk.rec, NULL, &e) != 0)
		die("registering: %s", err_msg(&e));
	cl = login(argv[1], dir_id, &laptop);
	/* Signed now, not at the start: the registrations above may have
	 * taken past a second boundary, and a revocation may not be older
	 * than the device's add event. */
	revoke_time = (uint64_t)time(NULL);
	if (tdev_sign_revoke(&laptop, ALICE, tablet.rec.device, revoke_time,
	    sig) != 0 ||
	    dirc_revoke(cl, ALICE, tablet.rec.device, revoke_time, sig, NULL,
	    &e) != 0)
		die("revoking the tablet: %s", err_msg(&e));
	read_log(cl, ALICE, dir_id, dir_pub, &alice, &alice_log);
	read_log(cl, BOB, dir_id, dir_pub, &bob, &bob_log);
	if (alice.seq != 4 || alice.n_devices != 2 || bob.seq != 1)
		die("unexpected logs: alice at %" PRIu64 " with %zu devices, "
		    "bob at %" PRIu64, alice.seq, alice.n_devices, bob.seq);
	views[0] = alice.head;
	views[1] = bob.head;
	post(cl, &laptop, views, recips, 2);
	post(cl, &laptop, views, recips, 2);
	post(cl, &laptop, views, recips + 1, 1);
	cd = login(argv[1], dir_id, &desk);
	inbox_expect(cd, &desk, &laptop, 3, desk_seqs);
	if (dirc_ack(cd, desk_seqs[2], &removed, &e) != 0 || removed != 3)
		die("desktop ack: %s", err_msg(&e));
	cp = login(argv[1], dir_id, &phone);
	inbox_expect(cp, &phone, &laptop, 2, phone_seqs);
	dirc_free(c);
	dirc_free(cl);
	dirc_free(cp);
	dirc_free(cd);
	printf("populated\n");
	fflush(stdout);

	/* The migrated directory. */
	if (fgets(url2, sizeof(url2), stdin) == NULL)
		die("no second URL on standard input");
	url2[strcspn(url2, "\n")] = '\0';
	c = client(url2);
	if (dirc_info(c, &info, &e) != 0)
		die("info of the copy: %s", err_msg(&e));
	if (strcmp(info.directory_id, dir_id) != 0)
		die("the copy signs with another head key");
	cl = login(url2, dir_id, &laptop);
	cp = login(url2, dir_id, &phone);
	cd = login(url2, dir_id, &desk);
	read_log(cp, ALICE, dir_id, dir_pub, &alice2, &alice_log2);
	read_log(cp, BOB, dir_id, dir_pub, &bob2, &bob_log2);
	if (strcmp(alice_log, alice_log2) != 0 ||
	    strcmp(bob_log, bob_log2) != 0)
		die("a log differs after the copy:\n%s%s---\n%s%s", alice_log,
		    bob_log, alice_log2, bob_log2);
	/* A revoked device stays out. */
	{
		struct dirc *ct = client(url2);

		err_clear(&e);
		if (dirc_login(ct, dir_id, tablet.rec.device, tdev_sign,
		    &tablet, NULL, &e) == 0)
			die("the revoked tablet logged in to the copy");
		dirc_free(ct);
	}
	{
		uint64_t s[2];

		inbox_expect(cp, &phone, &laptop, 2, s);
		if (s[0] != phone_seqs[0] || s[1] != phone_seqs[1])
			die("the phone's messages changed seq");
		inbox_expect(cd, &desk, &laptop, 0, s);
	}
	/* New messages continue above every seq given before. */
	views[0] = alice2.head;
	views[1] = bob2.head;
	post(cl, &laptop, views, recips, 2);
	inbox_expect(cp, &phone, &laptop, 3, phone_seqs);
	last = desk_seqs[2];
	inbox_expect(cd, &desk, &laptop, 1, desk_seqs);
	if (phone_seqs[2] <= last || desk_seqs[0] <= last)
		die("a new message got seq %" PRIu64 " or %" PRIu64 ", not "
		    "above %" PRIu64 ", given before", phone_seqs[2],
		    desk_seqs[0], last);
	err_clear(&e);
	if (dirc_ack(cp, phone_seqs[2], &removed, &e) != 0 || removed != 3)
		die("phone ack on the copy: %s", err_msg(&e));
	/* The log goes on from where it was. */
	if (dirc_register_device(c, PW, &card.rec, NULL, &e) != 0)
		die("registering on the copy: %s", err_msg(&e));
	acctlog_state_clear(&alice2);
	free(alice_log2);
	read_log(cp, ALICE, dir_id, dir_pub, &alice2, &alice_log2);
	if (alice2.seq != 5 || alice2.n_devices != 3)
		die("alice's log on the copy: seq %" PRIu64 ", %zu devices",
		    alice2.seq, alice2.n_devices);

	acctlog_state_clear(&alice);
	acctlog_state_clear(&bob);
	acctlog_state_clear(&alice2);
	acctlog_state_clear(&bob2);
	free(alice_log);
	free(bob_log);
	free(alice_log2);
	free(bob_log2);
	dirc_free(c);
	dirc_free(cl);
	dirc_free(cp);
	dirc_free(cd);
	tdev_clear(&laptop);
	tdev_clear(&phone);
	tdev_clear(&tablet);
	tdev_clear(&card);
	tdev_clear(&desk);
	EVP_PKEY_free(dir_pub);
	printf("ok\n");
	return 0;
}
