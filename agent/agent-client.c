/*
 * agent-client.c - the devid-agent commands that talk to the running
 * daemon over its socket (status, info, devices, approve, ack, revoke,
 * alerts, unlock, lock, endorse): the request each one sends and how its
 * answer is printed.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent-cmd.h"
#include "agent-config.h"
#include "agent-enrol.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "timefmt.h"

#define CLIENT_TIMEOUT_MS 120000

/* Prints the signed note s of an alert's evidence, indented. */
static void
print_note(const char *what, const char *s)
{
	const char *nl;

	if (s == NULL)
		return;
	printf("    %s:\n", what);
	while (*s != '\0') {
		nl = strchr(s, '\n');
		if (nl == s)
			printf("\n");  /* the line between text and signatures */
		else
			printf("      %.*s\n", nl != NULL ? (int)(nl - s) :
			    (int)strlen(s), s);
		if (nl == NULL)
			break;
		s = nl + 1;
	}
}

/*
 * The evidence of the transparency log's alerts, which a user keeps or
 * hands on: both checkpoints of a fork, the leaf of an account fork.
 */
static void
print_alert_evidence(const json_t *al)
{
	const char *kind = json_string_value(json_object_get(al, "kind"));
	const json_t *d = json_object_get(al, "details");

	if (kind == NULL || !json_is_object(d))
		return;
	if (strcmp(kind, "tlog_fork") == 0) {
		print_note("checkpoint held", json_string_value(
		    json_object_get(d, "held")));
		print_note("checkpoint shown", json_string_value(
		    json_object_get(d, "shown")));
	} else if (strcmp(kind, "tlog_account_fork") == 0) {
		printf("    leaf %" JSON_INTEGER_FORMAT ": event %"
		    JSON_INTEGER_FORMAT " hash %s\n",
		    json_integer_value(json_object_get(d, "index")),
		    json_integer_value(json_object_get(d, "seq")),
		    json_string_value(json_object_get(d, "hash")) != NULL ?
		    json_string_value(json_object_get(d, "hash")) : "?");
		print_note("in checkpoint", json_string_value(
		    json_object_get(d, "checkpoint")));
	}
}

static void
print_alert(const json_t *al)
{
	const char *sev = json_string_value(json_object_get(al, "severity"));
	char when[32];

	timefmt_utc((uint64_t)json_integer_value(json_object_get(al, "time")),
	    when, sizeof(when));
	printf("alert %s  %-17s %-8s %s  %s\n",
	    json_string_value(json_object_get(al, "id")),
	    json_string_value(json_object_get(al, "kind")),
	    sev != NULL ? sev : "", when,
	    json_string_value(json_object_get(al, "message")));
	print_alert_evidence(al);
}

/* Prints every alert of the array arr (nothing when arr is not one). */
static void
print_alerts(const json_t *arr)
{
	size_t i;

	for (i = 0; i < json_array_size(arr); i++)
		print_alert(json_array_get(arr, i));
}

static void
print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
}

static void
print_status(const json_t *j)
{
	const json_t *w = json_object_get(j, "watcher");
	const json_t *t = json_object_get(j, "token");
	const json_t *al = json_object_get(j, "alerts"), *tl;
	char when[32];

	timefmt_utc((uint64_t)json_integer_value(json_object_get(w,
	    "last_success")), when, sizeof(when));
	printf("account:   %s\ndevice:    %s\nlocked:    %s\n"
	    "registry:  %s\nlog seq:   %" JSON_INTEGER_FORMAT "\n"
	    "checks:    %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT
	    " failed), last fresh check %s (%" JSON_INTEGER_FORMAT
	    " s ago)%s\n",
	    json_string_value(json_object_get(j, "account")),
	    json_string_value(json_object_get(j, "short_id")),
	    json_is_true(json_object_get(j, "locked")) ? "yes (devid-agent "
	    "unlock)" : "no",
	    json_is_true(json_object_get(j, "registry_verified")) ?
	    "verified" : "not verified yet",
	    json_integer_value(json_object_get(w, "seq")),
	    json_integer_value(json_object_get(w, "checks")),
	    json_integer_value(json_object_get(w, "failed")), when,
	    json_integer_value(json_object_get(w, "age")),
	    json_is_true(json_object_get(w, "stale")) ? " STALE" : "");
	if (json_string_length(json_object_get(w, "last_error")) > 0)
		printf("last error: %s\n",
		    json_string_value(json_object_get(w, "last_error")));
	printf("token:     %s: %" JSON_INTEGER_FORMAT " signatures, %"
	    JSON_INTEGER_FORMAT " ECDH, %" JSON_INTEGER_FORMAT " decryptions, %"
	    JSON_INTEGER_FORMAT " logins\n",
	    json_string_value(json_object_get(t, "backend")),
	    json_integer_value(json_object_get(t, "signs")),
	    json_integer_value(json_object_get(t, "ecdhs")),
	    json_integer_value(json_object_get(t, "decrypts")),
	    json_integer_value(json_object_get(t, "logins")));
	if ((tl = json_object_get(j, "tlog")) != NULL)
		printf("tlog:      %" JSON_INTEGER_FORMAT " of %"
		    JSON_INTEGER_FORMAT " witnesses; checkpoint size %"
		    JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT " leaves "
		    "monitored; events proven up to seq %" JSON_INTEGER_FORMAT
		    "%s%s%s\n",
		    json_integer_value(json_object_get(tl, "quorum")),
		    json_integer_value(json_object_get(tl, "witnesses")),
		    json_integer_value(json_object_get(tl, "checkpoint_size")),
		    json_integer_value(json_object_get(tl, "monitored")),
		    json_integer_value(json_object_get(tl, "proven_seq")),
		    json_is_true(json_object_get(tl, "pending")) ?
		    " (newer not yet proven)" : "",
		    json_string_length(json_object_get(tl, "last_error")) > 0 ?
		    "; last error: " : "",
		    json_string_length(json_object_get(tl, "last_error")) > 0 ?
		    json_string_value(json_object_get(tl, "last_error")) : "");
	printf("alerts:    %zu open\n", json_array_size(al));
	print_alerts(al);
}

static void
print_devices(const json_t *j)
{
	const json_t *arr = json_object_get(j, "devices"), *d;
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		d = json_array_get(arr, i);
		printf("%s  %-9s %-8s %-15s '%s'%s\n",
		    json_string_value(json_object_get(d, "short_id")),
		    json_string_value(json_object_get(d, "state")),
		    json_is_true(json_object_get(d, "active")) ? "active" :
		    "-", json_string_value(json_object_get(d, "enc_alg")),
		    json_string_value(json_object_get(d, "label")),
		    json_is_true(json_object_get(d, "self")) ?
		    " (this device)" : "");
	}
}

/*
 * The `unlock` request (a new object) with the PIN from pin_file or, when
 * unset, the terminal; NULL after printing why no PIN was read (or when
 * out of memory).  Every copy of the PIN made here is wiped; the one in
 * the request is the caller's to wipe (wipe_request_pin).
 */
static json_t *
client_unlock_request(const struct agent_config *c)
{
	struct agent_token pinsrc;
	struct err_ctx e;
	char pin[AGENT_PIN_MAX + 2];
	json_t *req = NULL;

	err_clear(&e);
	memset(&pinsrc, 0, sizeof(pinsrc));
	if (c->pin_file != NULL) {
		if (agent_token_pin_file(&pinsrc, c->pin_file, &e) != 0) {
			agent_cli_die("unlock", &e);
			goto out;
		}
		snprintf(pin, sizeof(pin), "%s", pinsrc.pin);
		crypto_wipe(pinsrc.pin, sizeof(pinsrc.pin));
	} else if (agent_read_secret("Token PIN: ", pin, sizeof(pin),
	    &e) != 0) {
		agent_cli_die("unlock", &e);
		goto out;
	}
	req = json_pack("{s:s, s:s}", "op", "unlock", "pin", pin);
 out:
	crypto_wipe(pin, sizeof(pin));
	agent_token_free(&pinsrc);
	return req;
}

/* Wipes the PIN of an `unlock` request in place (jansson's copy). */
static void
wipe_request_pin(const json_t *req)
{
	const json_t *pv = json_object_get(req, "pin");

	if (pv != NULL)
		crypto_wipe((void *)(uintptr_t)json_string_value(pv),
		    json_string_length(pv));
}

/*
 * The request the command sends (a new object), or NULL after printing
 * why it cannot be sent: an unknown command, a missing ID, no PIN (or
 * out of memory, silently).
 */
static json_t *
client_request(const struct agent_cli *cli, const struct agent_config *c)
{
	const char *cmd = cli->command;

	if ((strcmp(cmd, "approve") == 0 || strcmp(cmd, "ack") == 0 ||
	    strcmp(cmd, "revoke") == 0) && cli->n_args != 1) {
		fprintf(stderr, AGENT_PROG ": %s needs one ID argument\n", cmd);
		return NULL;
	}
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "devices") == 0 ||
	    strcmp(cmd, "lock") == 0 || strcmp(cmd, "info") == 0)
		return json_pack("{s:s}", "op", cmd);
	if (strcmp(cmd, "approve") == 0 && cli->force)
		return json_pack("{s:s, s:s, s:b}", "op", cmd, "device",
		    cli->args[0], "force", 1);
	if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "revoke") == 0)
		return json_pack("{s:s, s:s}", "op", cmd, "device",
		    cli->args[0]);
	if (strcmp(cmd, "ack") == 0)
		return json_pack("{s:s, s:s}", "op", cmd, "alert",
		    cli->args[0]);
	if (strcmp(cmd, "alerts") == 0)
		return json_pack("{s:s, s:b}", "op", cmd, "follow",
		    cli->follow);
	if (strcmp(cmd, "unlock") == 0)
		return client_unlock_request(c);
	fprintf(stderr, AGENT_PROG ": unknown command '%s' (see " AGENT_PROG
	    " --help)\n", cmd);
	return NULL;
}

/*
 * alerts --follow: sends req on a connection of its own and prints every
 * alert the daemon sends until the connection ends.  Returns the exit
 * status (0 once the request was sent).
 */
static int
client_follow_alerts(const struct agent_cli *cli, const char *socket,
    const json_t *req)
{
	struct err_ctx e;
	json_t *resp = NULL, *al;
	int fd = -1, rc = 1;

	err_clear(&e);
	if (agent_sock_client_connect(socket, &fd, &e) != 0 ||
	    agent_sock_client_send(fd, req, &e) != 0) {
		agent_cli_die(cli->command, &e);
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (agent_sock_client_recv(fd, -1, &resp, &e) == 0) {
		if (cli->json)
			print_json(resp);
		else if ((al = json_object_get(resp, "alert")) != NULL)
			print_alert(al);
		else
			print_alerts(json_object_get(resp, "alerts"));
		fflush(stdout);
		json_decref(resp);
		resp = NULL;
	}
	rc = 0;
 out:
	if (fd >= 0)
		close(fd);
	json_decref(resp);
	return rc;
}

/* Prints the daemon's answer to the command (as JSON with --json). */
static void
client_print_answer(const struct agent_cli *cli, const json_t *resp)
{
	const char *cmd = cli->command;
	const json_t *al;

	if (cli->json)
		print_json(resp);
	else if (strcmp(cmd, "status") == 0)
		print_status(resp);
	else if (strcmp(cmd, "devices") == 0)
		print_devices(resp);
	else if (strcmp(cmd, "alerts") == 0) {
		al = json_object_get(resp, "alerts");
		if (json_array_size(al) == 0)
			printf("no open alerts\n");
		print_alerts(al);
	} else if (strcmp(cmd, "approve") == 0)
		printf("approved device %s '%s'\n",
		    json_string_value(json_object_get(resp, "short_id")),
		    json_string_value(json_object_get(resp, "label")));
	else if (strcmp(cmd, "revoke") == 0)
		printf("revoked device %s\n",
		    json_string_value(json_object_get(resp, "short_id")));
	else if (strcmp(cmd, "ack") == 0)
		printf("acknowledged alert %s\n",
		    json_string_value(json_object_get(resp, "alert")));
	else if (strcmp(cmd, "info") == 0)
		print_json(resp);
	else
		printf("%s: done\n", cmd);
}

int
agent_cmd_client(const struct agent_cli *cli,
    const struct agent_config *flags)
{
	struct agent_config c;
	struct err_ctx e;
	json_t *req = NULL, *resp = NULL;
	const char *cmd = cli->command;
	int r, rc = 1;

	err_clear(&e);
	if ((r = agent_cli_load_settings(cli, flags, &c, NULL, 1, 1,
	    &e)) != 0)
		return agent_cli_die(cmd, &e);
	if ((req = client_request(cli, &c)) == NULL)
		goto out;
	if (strcmp(cmd, "alerts") == 0 && cli->follow) {
		rc = client_follow_alerts(cli, c.socket, req);
		goto out;
	}
	r = agent_sock_client_call(c.socket, req, CLIENT_TIMEOUT_MS, &resp, &e);
	if (strcmp(cmd, "unlock") == 0)
		wipe_request_pin(req);
	if (r != 0) {
		agent_cli_die(cmd, &e);
		goto out;
	}
	client_print_answer(cli, resp);
	rc = 0;
 out:
	json_decref(req);
	json_decref(resp);
	agent_config_free(&c);
	return rc;
}

/* --- endorse --- */

/*
 * The new device's record from the enrolment code given as the argument
 * (white space around it ignored), checked for the configured account.
 * Returns 0, or an error after printing why.
 */
static int
endorse_read_code(const struct agent_cli *cli, const struct agent_config *c,
    struct devrec *rec)
{
	const char *code;
	struct err_ctx e;
	size_t len;
	int r;

	err_clear(&e);
	if (cli->n_args != 1) {
		fprintf(stderr, AGENT_PROG ": endorse needs the enrolment code "
		    "that the new device shows (" AGENT_PROG " enroll there)\n");
		return ERR_INVALID_ARG;
	}
	code = cli->args[0];
	while (isspace((unsigned char)*code))
		code++;
	len = strlen(code);
	while (len > 0 && isspace((unsigned char)code[len - 1]))
		len--;
	if ((r = agent_enrol_code_parse(code, len, c->account, rec,
	    &e)) != 0) {
		agent_cli_die("enrolment code", &e);
		return r;
	}
	return 0;
}

/*
 * Shows the new device and, unless --yes, asks whether the new device
 * shows the same.  Returns 1 when the endorsement may go ahead.
 */
static int
endorse_confirm(const struct agent_cli *cli, const struct devrec *rec)
{
	char short_id[DEVREC_SHORT_ID_LEN + 1], when[32];

	(void)devrec_short_id(rec->device, short_id);
	timefmt_utc(rec->created, when, sizeof(when));
	printf("New device of %s:\n    '%s' %s   (keys made %s)\n",
	    rec->account, rec->label, short_id, when);
	fflush(stdout);
	if (cli->yes)
		return 1;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, AGENT_PROG ": endorse asks whether the new "
		    "device shows this label and id, and there is no terminal "
		    "to ask on: compare them yourself, then run it again with "
		    "--yes\n");
		return 0;
	}
	if (agent_cli_ask_yes("Does the new device show this label and id?"))
		return 1;
	fprintf(stderr, AGENT_PROG ": not endorsed.  If the new device shows "
	    "another label or id, the code was changed on its way: do not "
	    "endorse it, and start again with " AGENT_PROG " enroll on the new "
	    "device.\n");
	return 0;
}

int
agent_cmd_endorse(const struct agent_cli *cli,
    const struct agent_config *flags)
{
	struct agent_config c;
	struct devrec rec;
	struct err_ctx e;
	json_t *req = NULL, *resp = NULL, *recj = NULL;
	const char *text;
	int rc = 1;

	err_clear(&e);
	if (agent_cli_load_settings(cli, flags, &c, NULL, 1, 1, &e) != 0)
		return agent_cli_die("endorse", &e);
	if (endorse_read_code(cli, &c, &rec) != 0 ||
	    !endorse_confirm(cli, &rec))
		goto out;
	if (devrec_to_json(&rec, &recj, &e) != 0 ||
	    (req = json_pack("{s:s, s:o}", "op", "endorse", "record",
	    recj)) == NULL) {
		agent_cli_die("endorse", &e);
		goto out;
	}
	recj = NULL;    /* transferred */
	if (agent_sock_client_call(c.socket, req, CLIENT_TIMEOUT_MS, &resp,
	    &e) != 0) {
		agent_cli_die("endorse", &e);
		goto out;
	}
	if (cli->json) {
		print_json(resp);
		rc = 0;
		goto out;
	}
	text = json_string_value(json_object_get(resp, "endorsement"));
	if (text == NULL) {
		fprintf(stderr, AGENT_PROG ": endorse: the agent's answer has "
		    "no endorsement\n");
		goto out;
	}
	printf("\nEndorsed by this device '%s' %s.\nOn the new device, paste "
	    "this line into the waiting " AGENT_PROG " enroll\n(or give it "
	    "to " AGENT_PROG " enroll --endorsement):\n\n%s\n\n",
	    json_string_value(json_object_get(resp, "by_label")),
	    json_string_value(json_object_get(resp, "by_short_id")), text);
	if (agent_cli_print_qr(stdout, text, !cli->no_qr))
		printf("\n");
	rc = 0;
 out:
	json_decref(recj);
	json_decref(req);
	json_decref(resp);
	agent_config_free(&c);
	return rc;
}
