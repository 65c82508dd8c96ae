/*
 * agent-alert.h - alerts: the journal, the open list and alert_command.
 *
 * Every alert is one log line, one line in the alert journal
 * ($state/alerts.jsonl, JSON lines, fsync'd before the alert counts as
 * raised), an entry in the open list that `status` and `alerts` show, and
 * a run of the optional alert_command with the details in DEVID_ALERT_*
 * environment variables.  An alert stays open until the user approves the
 * device or acknowledges it (or, for staleness, until a fresh check
 * succeeds); the journal records that too, so open alerts survive a
 * restart.
 *
 * Every alert has a severity: "info" (an announcement with nothing left
 * to do, such as a device added with the endorsement of an approved
 * device), "warning" or "critical"; each kind has a default and the
 * raiser may choose another.
 *
 * Journal lines:
 *   {"op":"raise","alert":{"id","kind","severity","time","account",
 *    "device","label","message","key","details"}}
 *   {"op":"close","id":"...","time":N,
 *    "how":"ack"|"approve"|"clear"|"endorsed"}
 * ("severity" is optional when reading: lines written before it existed
 * take their kind's default.)
 *
 * Not thread-safe: the agent serialises calls.
 */
#ifndef DEVID_AGENT_ALERT_H
#define DEVID_AGENT_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

#define AGENT_ALERT_JOURNAL "alerts.jsonl"
#define AGENT_ALERT_JOURNAL_MAX ((size_t)64 * 1024 * 1024)
/* A journal larger than this is rewritten with only the open alerts
 * when it is opened. */
#define AGENT_ALERT_COMPACT_AT ((size_t)1024 * 1024)
#define AGENT_ALERT_LINE_MAX ((size_t)256 * 1024)
#define AGENT_ALERT_ID_LEN 16
#define AGENT_ALERT_KIND_MAX 31
#define AGENT_ALERT_KEY_MAX 191
#define AGENT_ALERT_MESSAGE_MAX 511
#define AGENT_ALERT_MAX_OPEN 4096

/* The kinds of alert. */
#define AGENT_ALERT_DEVICE_ADDED "device_added"
#define AGENT_ALERT_DEVICE_REVOKED "device_revoked"
#define AGENT_ALERT_ROLLBACK "rollback"
#define AGENT_ALERT_FORK "fork"
#define AGENT_ALERT_WRONG_KEY "wrong_key"
#define AGENT_ALERT_LOG_INVALID "log_invalid"
#define AGENT_ALERT_STALE "stale"
#define AGENT_ALERT_REGISTRY "registry_tampered"
#define AGENT_ALERT_KEY_REPLACED "key_replaced"
/* The directory's transparency log (docs/protocol.md section 7.6). */
#define AGENT_ALERT_TLOG_NO_QUORUM "tlog_no_quorum"
#define AGENT_ALERT_TLOG_STALE "tlog_stale"
#define AGENT_ALERT_TLOG_FORK "tlog_fork"
#define AGENT_ALERT_TLOG_INCLUSION "tlog_inclusion"
#define AGENT_ALERT_TLOG_ACCOUNT_FORK "tlog_account_fork"

/* Severities, from the least to the most urgent. */
#define AGENT_ALERT_INFO "info"
#define AGENT_ALERT_WARNING "warning"
#define AGENT_ALERT_CRITICAL "critical"
#define AGENT_ALERT_SEVERITY_MAX 15

/* How an alert was closed: by the user (ack, approve), by the agent
 * when the condition went away (clear), or at once because a device was
 * added with the endorsement of an approved device (endorsed). */
#define AGENT_ALERT_HOW_ENDORSED "endorsed"

struct agent_alert {
	char id[AGENT_ALERT_ID_LEN + 1];
	char kind[AGENT_ALERT_KIND_MAX + 1];
	char severity[AGENT_ALERT_SEVERITY_MAX + 1];
	uint64_t time;
	char account[129];
	char device[65];        /* "" when no device is concerned */
	char label[65];
	char message[AGENT_ALERT_MESSAGE_MAX + 1];
	char key[AGENT_ALERT_KEY_MAX + 1];    /* one open alert per key */
	json_t *details;        /* owned; an object, maybe empty */
};

struct agent_alert_list {
	char *journal;          /* path */
	char *command;          /* alert_command or NULL */
	struct agent_alert *open;
	size_t n_open;
	uint64_t raised;        /* alerts raised since start */
	uint64_t bad_lines;     /* journal lines skipped at load */
};

/*
 * Opens the journal at path (created 0600 when missing) and replays it:
 * raised alerts not closed later are open.  A line that does not parse
 * (for example one cut short by a crash) is skipped and counted.  A
 * journal over AGENT_ALERT_COMPACT_AT is rewritten with the open alerts only
 * (closed ones stay in the log lines).  command
 * may be NULL.  list is initialised here.
 */
int agent_alert_list_open(struct agent_alert_list *list, const char *path,
    const char *command, struct err_ctx *e);

/* Frees the list.  NULL is fine. */
void agent_alert_list_free(struct agent_alert_list *list);

/*
 * Parses one journal line (len bytes, no newline) into *op: 1 for a
 * raise (alert filled; caller frees details), 2 for a close (id and how
 * filled).  ERR_FORMAT for anything else.  For the replay and the tests.
 */
int agent_alert_parse_line(const char *line, size_t len, struct agent_alert *a,
    char how[16], struct err_ctx *e);

/*
 * The default severity of an alert kind: "critical" for the kinds that
 * show a directory or a file that lies (rollback, fork, wrong_key,
 * log_invalid, registry_tampered, key_replaced, tlog_fork,
 * tlog_inclusion, tlog_account_fork), "warning" for every other kind.
 */
const char *agent_alert_default_severity(const char *kind);

/* 1 when s is one of "info", "warning", "critical". */
int agent_alert_severity_valid(const char *s);

/*
 * Raises an alert unless one with the same key is open (then *out, when
 * not NULL, points at it and 0 is returned).  Takes ownership of details
 * (NULL: {}).  Writes the journal (fsync) first; on failure nothing is
 * added.  Logs the alert and starts alert_command.  Returns 1 when a new
 * alert was raised.  The severity is the kind's default.
 */
int agent_alert_raise(struct agent_alert_list *list, const char *kind,
    const char *key, const char *account, const char *device, const char *label,
    const char *message, json_t *details, const struct agent_alert **out,
    struct err_ctx *e);

/* Like agent_alert_raise() with a severity (NULL: the kind's default;
 * ERR_INVALID_ARG for a word that is no severity). */
int agent_alert_raise_severity(struct agent_alert_list *list,
    const char *kind, const char *severity, const char *key,
    const char *account, const char *device, const char *label,
    const char *message, json_t *details, const struct agent_alert **out,
    struct err_ctx *e);

/* Closes the open alert with this id; how is "ack", "approve", "clear"
 * or "endorsed".  ERR_NOT_FOUND. */
int agent_alert_close(struct agent_alert_list *list, const char *id,
    const char *how, struct err_ctx *e);

/* Closes every open alert of kind (and, when device is not NULL, of that
 * device).  Returns the number closed or an error. */
int agent_alert_close_matching(struct agent_alert_list *list, const char *kind,
    const char *device, const char *how, struct err_ctx *e);

/* The one open alert whose id starts with prefix (at least 4 chars);
 * ERR_NOT_FOUND, ERR_EXISTS when ambiguous. */
int agent_alert_find(struct agent_alert_list *list, const char *prefix,
    const struct agent_alert **out, struct err_ctx *e);

/* The open alert with this key, or NULL. */
const struct agent_alert *agent_alert_find_key(
    const struct agent_alert_list *list, const char *key);

/* A new JSON object describing a. */
json_t *agent_alert_to_json(const struct agent_alert *a);

/* Reaps finished alert_command children; call from time to time. */
void agent_alert_reap(void);

#endif /* DEVID_AGENT_ALERT_H */
