/*
 * msg-trust.c - devid-msg trust and contacts: accepting a contact's
 * devices and listing the pins.
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "devrec.h"
#include "errors.h"
#include "msg-contacts.h"
#include "msg.h"
#include "registry.h"
#include "timefmt.h"

/* A device accepted by trust --endorsed yes, printed like trust does. */
static void
print_endorsed(void *arg, const struct registry *pin, const char *device)
{
	char msg[512];

	(void)arg;
	msg_contact_explain(pin, device, msg, sizeof(msg));
	printf("Accepted %s\n", msg);
}

/*
 * trust ACCOUNT --endorsed yes|no: sets trust_endorsed in the pin (signed
 * with it, so that nobody without the token can turn it on), accepts at
 * once what it now covers, and re-signs the pin.
 */
static int
set_trust_endorsed(struct msg_ctx *c, struct registry *pin, int on,
    uint64_t now, struct err_ctx *e)
{
	int r, n = 0;

	pin->trust_endorsed = on;
	pin->updated = now;
	if (on)
		n = msg_contact_accept_endorsed(pin, now, print_endorsed, c);
	if ((r = msg_contact_store(c, pin, e)) != 0)
		return r;
	if (on)
		printf("trust_endorsed is on for %s: a new device of %s that "
		    "a device you accepted endorsed is accepted without "
		    "asking, and shown when it is.\n", pin->account,
		    pin->account);
	else
		printf("trust_endorsed is off for %s: every new device of %s "
		    "stops a send until you trust it.\n", pin->account,
		    pin->account);
	msg_log(c, "trust: trust_endorsed %s for %s (%d device(s) "
	    "accepted)", on ? "on" : "off", pin->account, n);
	return 0;
}

int
msg_cmd_trust(const struct msg_cli *cli)
{
	struct msg_ctx c;
	struct registry pin, before;
	struct err_ctx e;
	const char *account = cli->accounts[0];
	char msg[512];
	uint64_t now = (uint64_t)time(NULL);
	size_t n = 0, i;
	int r = ERR_INTERNAL, first = 0;

	err_clear(&e);
	memset(&pin, 0, sizeof(pin));
	memset(&before, 0, sizeof(before));
	if ((r = msg_ctx_open(&c, cli, 1, &e)) != 0)
		goto out;
	if (strcmp(account, c.account) == 0) {
		r = err_set(&e, ERR_INVALID_ARG, "%s is your own account: its "
		    "devices are approved with devid-agent approve", account);
		goto out;
	}
	r = msg_contact_refresh(&c, account, &pin, &first, &e);
	if (r == ERR_SIGNATURE) {
		/* A pin changed outside devid-msg: keep it, pin anew. */
		fprintf(stderr, "devid-msg: %s\n", err_msg(&e));
		err_clear(&e);
		if ((r = msg_contact_reject(c.contacts_dir, account, now,
		    &e)) != 0)
			goto out;
		fprintf(stderr, "devid-msg: the old pin was moved aside as "
		    "%s.json.rejected-%llu\n", account,
		    (unsigned long long)now);
		reg_clear(&pin);
		r = msg_contact_refresh(&c, account, &pin, &first, &e);
	}
	if (r != 0)
		goto out;
	if (first) {
		printf("First contact with %s: pinned its %zu device(s):\n",
		    account, pin.log.n_devices);
		for (i = 0; i < pin.log.n_devices; i++) {
			msg_contact_explain(&pin, pin.log.devices[i].rec.device,
			    msg, sizeof(msg));
			printf("  %s\n", msg);
		}
	}
	if (cli->endorsed != MSG_ENDORSED_UNSET) {
		r = set_trust_endorsed(&c, &pin,
		    cli->endorsed == MSG_ENDORSED_YES, now, &e);
		goto out;
	}
	if (first) {
		r = 0;
		goto out;
	}
	if ((r = reg_copy(&before, &pin)) != 0 ||
	    (r = msg_contact_trust(&pin, cli->device, now, &n, &e)) != 0)
		goto out;
	if (n == 0) {
		printf("Every active device of %s is accepted already.\n",
		    account);
		r = 0;
		goto out;
	}
	if ((r = msg_contact_store(&c, &pin, &e)) != 0)
		goto out;
	for (i = 0; i < pin.log.n_devices; i++) {
		const char *dev = pin.log.devices[i].rec.device;

		if (msg_contact_accepted(&before, dev))
			continue;
		msg_contact_explain(&pin, dev, msg, sizeof(msg));
		printf("Accepted %s\n", msg);
	}
	msg_log(&c, "trust: accepted %zu device(s) of %s", n, account);
	r = 0;
 out:
	if (r != 0)
		fprintf(stderr, "devid-msg: trust: %s\n", e.code != 0 ?
		    err_msg(&e) : err_str(r));
	reg_clear(&pin);
	reg_clear(&before);
	msg_ctx_close(&c);
	return r == 0 ? 0 : 1;
}

/* Lists one pin; 0, or 1 when it does not verify. */
static int
list_one(struct msg_ctx *c, const char *account, int json)
{
	struct registry pin;
	struct err_ctx e;
	char short_id[DEVREC_SHORT_ID_LEN + 1], when[48];
	json_t *o = NULL, *arr = NULL;
	char *s;
	size_t i;
	int r;

	err_clear(&e);
	r = msg_contact_load(c->contacts_dir, account, c->device, c->self_pub,
	    &pin, &e);
	if (r != 0) {
		if (json)
			printf("{\"account\":\"%s\",\"verified\":false}\n",
			    account);
		else
			printf("%s: THE PIN DOES NOT VERIFY (%s)\n", account,
			    err_msg(&e));
		reg_clear(&pin);
		return 1;
	}
	timefmt_utc(pin.updated, when, sizeof(when));
	if (json) {
		arr = json_array();
		for (i = 0; arr != NULL && i < pin.n_devs; i++) {
			(void)devrec_short_id(pin.devs[i].device, short_id);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, "
			    "s:s, s:b, s:I}", "device", pin.devs[i].device,
			    "short_id", short_id, "label", pin.devs[i].label,
			    "state", reg_state_name(pin.devs[i].state),
			    "accepted", msg_contact_accepted(&pin,
			    pin.devs[i].device), "add_seq",
			    (json_int_t)pin.devs[i].add_seq));
		}
		o = json_pack("{s:s, s:b, s:I, s:I, s:b, s:o*}", "account",
		    account, "verified", 1, "seq", (json_int_t)pin.log.seq,
		    "updated", (json_int_t)pin.updated, "trust_endorsed",
		    pin.trust_endorsed, "devices", arr);
		if (o != NULL && (s = json_dumps(o, JSON_COMPACT)) != NULL) {
			printf("%s\n", s);
			free(s);
		}
		json_decref(o);
	} else {
		printf("%s (log entry %llu, pinned %s%s)\n", account,
		    (unsigned long long)pin.log.seq, when,
		    pin.trust_endorsed ? ", trust_endorsed" : "");
		for (i = 0; i < pin.n_devs; i++) {
			(void)devrec_short_id(pin.devs[i].device, short_id);
			printf("  %-8s %s '%s'\n", msg_contact_accepted(&pin,
			    pin.devs[i].device) ? "accepted" :
			    reg_state_name(pin.devs[i].state), short_id,
			    pin.devs[i].label);
		}
	}
	reg_clear(&pin);
	return 0;
}

int
msg_cmd_contacts(const struct msg_cli *cli)
{
	struct msg_ctx c;
	struct err_ctx e;
	struct dirent *de;
	DIR *d = NULL;
	char account[DEVREC_ACCOUNT_MAX + 1];
	size_t len;
	int r = ERR_INTERNAL, bad = 0, n = 0;

	err_clear(&e);
	if ((r = msg_ctx_open(&c, cli, 0, &e)) != 0)
		goto out;
	if ((d = opendir(c.contacts_dir)) == NULL) {
		if (!cli->json)
			printf("No contacts pinned yet.\n");
		r = 0;
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0 ||
		    len - 5 > DEVREC_ACCOUNT_MAX)
			continue;
		memcpy(account, de->d_name, len - 5);
		account[len - 5] = '\0';
		if (!devrec_account_valid(account))
			continue;
		bad |= list_one(&c, account, cli->json);
		n++;
	}
	if (n == 0 && !cli->json)
		printf("No contacts pinned yet.\n");
	r = bad ? err_set(&e, ERR_SIGNATURE, "a pin does not verify") : 0;
 out:
	if (d != NULL)
		closedir(d);
	if (r != 0)
		fprintf(stderr, "devid-msg: contacts: %s\n", e.code != 0 ?
		    err_msg(&e) : err_str(r));
	msg_ctx_close(&c);
	return r == 0 ? 0 : 1;
}
