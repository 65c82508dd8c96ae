/*
 * msg.h - devid-msg: the command line, the context the commands share
 * (the agent connection, this device, the directory session and the
 * pinned directory key) and the commands themselves.
 *
 * msg-cli.c parses arguments, msg-ctx.c opens the context and verifies
 * account logs, msg-send.c, msg-recv.c and msg-trust.c are the commands.
 */
#ifndef DEVID_MSG_H
#define DEVID_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "msg-agent.h"
#include "registry.h"
#include "tlog-client.h"

#define MSG_MAX_TO 64                    /* accounts on one send */
/* A text (or caption) fits the directory's body limit; files go as blobs. */
#define MSG_BODY_MAX ((size_t)512 * 1024)
#define MSG_MAX_STALE_DEFAULT 900
#define MSG_FOLLOW_WAIT_S 30
#define MSG_LOG_FILE "msg.log"
#define MSG_LOG_MAX ((off_t)1024 * 1024)   /* then rotated to msg.log.1 */
/* The kept checkpoint of the directory's transparency log (data dir). */
#define MSG_TLOG_FILE "tlog-checkpoint"
/* How long a log read waits for its latest events to be proven. */
#define MSG_TLOG_WAIT_MS 10000
#define MSG_TLOG_STEP_MS 500

enum msg_cmd {
	MSG_CMD_NONE = 0,
	MSG_CMD_SEND,
	MSG_CMD_RECV,
	MSG_CMD_TRUST,
	MSG_CMD_CONTACTS,
	MSG_CMD_HELP,
	MSG_CMD_VERSION,
};

/* The parsed command line.  Strings point into argv (borrowed). */
struct msg_cli {
	enum msg_cmd cmd;
	const char *accounts[MSG_MAX_TO];        /* send, trust (one) */
	size_t n_accounts;
	const char *text;                /* send -m (with -f: the caption) */
	const char *file;                /* send -f: sent as an attachment */
	const char *type;                /* send --type */
	const char *out_dir;             /* recv -o */
	const char *device;              /* trust --device PREFIX */
	enum {
		MSG_ENDORSED_UNSET = 0,
		MSG_ENDORSED_YES,
		MSG_ENDORSED_NO,
	} endorsed;                      /* trust --endorsed yes|no */
	const char *socket;              /* --socket */
	const char *directory;           /* --directory URL */
	const char *data_dir;            /* --data-dir */
	uint64_t max_stale_s;            /* --max-stale */
	unsigned long count;             /* recv --count N (0: no limit) */
	int follow;                      /* recv --follow */
	int json;                        /* --json */
	int quiet;                       /* -q */
};

/*
 * Parses argv into cli.  Returns 0, or ERR_INVALID_ARG with the problem
 * in e (the caller prints it with a pointer to --help).  Accounts are
 * checked for syntax here.  send takes -m, -f or standard input; -m with
 * -f is the file's caption (standard input is then not read).
 */
int msg_cli_parse(int argc, char **argv, struct msg_cli *cli,
    struct err_ctx *e);

/* The --help text. */
void msg_cli_usage(FILE *f);

/* What the commands share.  Everything is owned; msg_ctx_close()
 * releases it. */
struct msg_ctx {
	const struct msg_cli *cli;
	struct msg_agent *agent;
	char account[DEVREC_ACCOUNT_MAX + 1];
	char device[DEVREC_ID_HEX_LEN + 1];
	char short_id[DEVREC_SHORT_ID_LEN + 1];
	char label[DEVREC_LABEL_MAX + 1];
	char directory_id[DEVREC_ID_HEX_LEN + 1];
	char *directory_url;
	EVP_PKEY *self_pub;              /* this device's signing key */
	EVP_PKEY *dir_pub;               /* the pinned directory key */
	struct dirc *dirc;               /* with the agent's session */
	char *data_dir;                  /* $XDG_DATA_HOME/devid */
	char *contacts_dir;
	FILE *log;                       /* the local log, may be NULL */
	struct acctlog_state own;        /* own account's verified log */
	int have_own;
	/* The transparency log (docs/protocol.md section 7), when the
	 * agent's info names witnesses; NULL otherwise (no checks). */
	struct tlog_policy *tlog;
	struct tlog_state *tlog_st;      /* the kept checkpoint */
	char *tlog_path;                 /* its file */
	uint8_t dir_spki[CRYPTO_SPKI_MAX];       /* the pinned key's SPKI */
	size_t dir_spki_len;
	int tlog_err;        /* the error of the last msg_log_update() when
	                      * its transparency log check failed, else 0 */
	/* The directory's limits for attachments (GET /v1/info; max_blob
	 * 0: it takes none), with its URL as used. */
	uint64_t max_blob;
	uint64_t blob_quota;
	uint64_t blob_days;
	const char *used_url;            /* points into cli or directory_url */
};

/*
 * Opens the context: connects to the agent, reads this device (info),
 * and, when with_directory, takes the agent's directory session, checks
 * that the directory still signs with the pinned key and imports it.
 * The caller runs msg_ctx_close() on every path.
 */
int msg_ctx_open(struct msg_ctx *c, const struct msg_cli *cli,
    int with_directory, struct err_ctx *e);
void msg_ctx_close(struct msg_ctx *c);

/* One line to the local log (msg.log in the data directory): the place
 * for the reasons of rejections, which are not shown to the user. */
void msg_log(struct msg_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Moves st forward to the directory's current signed head of st's
 * account, verifying every event and the head (acctlog_verify_update with
 * the pinned key and --max-stale).  On ERR_ROLLBACK, ERR_FORK or ERR_CHAIN
 * the evidence is in *ev and st is unchanged.  An unknown account is
 * ERR_NOT_FOUND "recipient unknown: ...".
 */
int msg_log_update(struct msg_ctx *c, struct acctlog_state *st,
    struct acctlog_evidence *ev, struct err_ctx *e);

/*
 * With witnesses configured (c->tlog), every read of msg_log_update() is
 * also checked against the transparency log (tlog_check_log()): no
 * quorum (ERR_DENIED), a stale checkpoint (ERR_STALE), a fork (ERR_FORK,
 * reported to the agent with msg_report_tlog_fork()) or an inclusion
 * proof that fails (ERR_SIGNATURE) refuse the read; events not yet
 * proven are read again every MSG_TLOG_STEP_MS for MSG_TLOG_WAIT_MS, then
 * refused with ERR_TIMEOUT.  Until then st is unchanged.
 */

/*
 * Reports two checkpoints of the transparency log that cannot both be
 * true: on standard error, in the local log and to the agent as a
 * "tlog_fork" request.  reporter is the device whose message carried
 * shown (NULL when the directory served it).  0 when the agent took it;
 * otherwise the reason is on standard error (not fatal to the caller).
 */
int msg_report_tlog_fork(struct msg_ctx *c, const struct tlog_fork *fork,
    const char *reporter);

/*
 * 7.7: checks the checkpoint a message's sender (device reporter) kept,
 * when witnesses are configured (otherwise 0 and nothing is done).  A
 * fork is reported and returned as ERR_FORK (reject the message like a
 * split view); a checkpoint that fails otherwise (no quorum, signatures,
 * format) is logged and ignored (0); an error of the directory
 * (ERR_NETWORK, ERR_TIMEOUT) or of the disk is returned.
 */
int msg_tlog_check_sender(struct msg_ctx *c, const char *note,
    const char *reporter, struct err_ctx *e);

/* Verifies the own account's log from its beginning into c->own. */
int msg_own_log(struct msg_ctx *c, struct err_ctx *e);

/*
 * The pin of account, brought up to date: loaded and verified (or, on
 * first contact, created with every active device accepted), its log
 * moved forward with msg_log_update() and its devices synced; saved
 * (signed by the token) when anything changed.  *first (may be NULL) is
 * 1 on first contact.  On a rollback or fork the evidence is reported
 * (msg_report_split()) and the error returned.
 */
int msg_contact_refresh(struct msg_ctx *c, const char *account,
    struct registry *pin, int *first, struct err_ctx *e);

/* Saves pin, signed through the agent. */
int msg_contact_store(struct msg_ctx *c, const struct registry *pin,
    struct err_ctx *e);

/*
 * Reports two directory-signed heads that disagree about account (a split
 * view, a rollback or a fork): on standard error and to the local log,
 * and, when the two heads prove the conflict by themselves (the same seq
 * with different hashes; for a rollback a smaller seq signed later), to
 * the agent as a "gossip_alert" so that it raises and keeps an alert with
 * both heads.  reporter is the device whose message carried the
 * conflicting head (NULL when the directory showed it directly).
 * Returns 0 when the agent took the alert; otherwise the reason is on
 * standard error.
 */
int msg_report_split(struct msg_ctx *c, const char *account,
    const char *kind, const struct acctlog_head *verified,
    const struct acctlog_head *conflicting, const char *reporter);

/* The commands; each returns a process exit status (0 or 1). */
int msg_cmd_send(const struct msg_cli *cli);
int msg_cmd_recv(const struct msg_cli *cli);
int msg_cmd_trust(const struct msg_cli *cli);
int msg_cmd_contacts(const struct msg_cli *cli);

/*
 * File names from received messages.  msg_file_name_safe() is 1 when
 * name may be created inside a directory as it is: 1..255 bytes of UTF-8
 * without control characters, '/', '\\', not "." or "..", not starting
 * with '.' or '-'.  msg_save_file() creates dir/name (never over an
 * existing file or through a symbolic link: "name (1)", "name (2)", ... are
 * tried instead, at most 100) with mode 0600 and fsyncs it; the path used
 * is in *path_out (caller frees).
 */
int msg_file_name_safe(const char *name);
int msg_save_file(const char *dir, const char *name, const uint8_t *p,
    size_t len, char **path_out, struct err_ctx *e);

/*
 * The naming rule of msg_save_file() for any way of making a file
 * appear: create(arg, path, e) is called with "dir/name", then
 * "dir/name (1)", ... "dir/name (100)" until it returns anything but
 * ERR_EXISTS; it must never replace what is at path nor follow a symbolic
 * link there.  0 with *path_out (caller frees) the path it created;
 * ERR_FORMAT for a name that fails msg_file_name_safe(); ERR_EXISTS when
 * all 101 names are taken; or create's error.
 */
typedef int (*msg_file_create_fn)(void *arg, const char *path,
    struct err_ctx *e);
int msg_file_create_numbered(const char *dir, const char *name,
    msg_file_create_fn create, void *arg, char **path_out,
    struct err_ctx *e);

#endif /* DEVID_MSG_H */
