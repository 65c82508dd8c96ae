/*
 * agent-ops.h - the running agent: its state and the socket requests.
 *
 * One struct agent holds everything the daemon knows.  Two threads use
 * it: the main thread runs the socket server (agent-sock) and the timers
 * (staleness, PIN timeout); the watcher thread (agent-watch) talks to the
 * directory.  `lock` serialises every access to the state and to the
 * token; network requests run without it, so a slow directory never
 * stalls the socket.
 *
 * The requests are described in docs/agent.md.
 */
#ifndef DEVID_AGENT_OPS_H
#define DEVID_AGENT_OPS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "agent-alert.h"
#include "agent-config.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "errors.h"
#include "registry.h"
#include "transcript.h"

#define AGENT_REPLAY_FILE "replay.jsonl"
#define AGENT_DIRKEY_FILE "directory.pub"
/* Message ids remembered per agent; beyond, the oldest half is dropped
 * (a client should also bound the age of `sent`). */
#define AGENT_REPLAY_MAX 100000
/* A replay store file larger than this is rewritten at start. */
#define AGENT_REPLAY_COMPACT_AT ((size_t)16 * 1024 * 1024)

/* A remembered (device, message id): the replay store. */
struct agent_replay {
	char device[65];
	uint8_t id[16];
};

struct agent {
	const struct agent_config *cfg;         /* borrowed */
	pthread_mutex_t lock;

	struct agent_token tok;
	struct registry reg;
	int reg_verified;       /* the registry verified with the token key */
	int reg_dirty;          /* changes not yet signed (locked token) */
	uint8_t reg_files[32];  /* reg_files_digest of what is on disk */
	int reg_files_known;
	uint64_t reg_checked;   /* when the files were last compared */
	struct agent_alert_list alerts;
	EVP_PKEY *dir_pub;      /* the pinned directory key */
	char dir_id[65];

	/* watcher */
	uint64_t started;
	uint64_t last_success;  /* last fresh, verified check */
	uint64_t last_attempt;
	uint64_t checks;
	uint64_t checks_failed;
	uint64_t events_seen;
	char last_error[256];
	int watch_running;
	int refresh;            /* ask the watcher to check now */
	pthread_cond_t wake_watch;

	/* the directory session shared by the watcher and `session` */
	char session[160];
	uint64_t session_expires;

	/* a newer view of the own log seen in a message (check 7) */
	int gossip_pending;
	int gossip_alerted;
	struct acctlog_head gossip_head;
	char gossip_device[65];
	uint64_t gossip_checks; /* a->checks when it was seen */

	/* replay store of opened messages */
	struct agent_replay *replay;
	size_t n_replay;

	/* main loop */
	int wake_pipe[2];       /* watcher -> main: new alerts */
	json_t *pending_bcast;  /* alerts not yet sent to followers */
	volatile int stop;
	struct agent_sock_server *srv;
};

/*
 * Loads everything a running agent needs from cfg: the token (with the
 * PIN from pin_file when set; the agent starts locked when the token
 * needs a PIN it does not have), the pinned directory key, the registry
 * (verified with the token's key; a failure raises an alert and the agent
 * continues with a registry holding only this device), the alert journal
 * and the replay store.  a is initialised here; free it with
 * agent_free() either way.
 */
int agent_load(struct agent *a, const struct agent_config *cfg,
    struct err_ctx *e);
void agent_free(struct agent *a);

/*
 * The socket handler (agent_sock_handler_fn); arg is the agent.  Looks the
 * request's "op" up in the table of operations, answers an unknown one
 * with a format error, and runs a known one with the agent lock held.
 * Returns a new answer, with the request's "id" echoed.
 */
json_t *agent_handle(void *arg, struct agent_sock_conn *c, json_t *req);

/* --- agent-open.c --- */

/* Reads the replay store (ids of opened messages), keeping the newest
 * AGENT_REPLAY_MAX; rewrites it when it has grown large. */
int agent_replay_load(struct agent *a, struct err_ctx *e);

/* The fields of an `open` request: 0, or ERR_FORMAT with e set. */
int agent_open_args(const json_t *req, struct err_ctx *e);

/* The `open` request (lock held; fields checked by agent_open_args() and
 * the registry verified, both by agent_handle()); see docs/agent.md. */
json_t *agent_op_open(struct agent *a, const json_t *req, struct err_ctx *e);

/*
 * The `gossip_alert` request (lock held): two directory-signed heads of
 * one account that a local client (devid-msg) found in conflict.  Both
 * must verify under the pinned directory key and prove the conflict by
 * themselves (docs/agent.md); then a `fork` or `rollback` alert is raised
 * for that account, once per conflicting pair.
 */
json_t *agent_op_gossip_alert(struct agent *a, const json_t *req,
    struct err_ctx *e);

/*
 * Raises an alert (agent lock held) and queues it for followers.  Takes
 * ownership of details.  Returns 1 when new, 0 when already open.
 */
int agent_raise(struct agent *a, const char *kind, const char *key,
    const char *device, const char *label, const char *message,
    json_t *details);

/*
 * Like agent_raise() for any account, with the alert (borrowed from the
 * open list until the next change of it; new or the one already open
 * under key) in *out when out is not NULL.  Returns 1 when new, 0 when
 * already open, or an error (recorded in e and logged; nothing raised).
 */
int agent_raise_alert(struct agent *a, const char *kind, const char *key,
    const char *account, const char *device, const char *label,
    const char *message, json_t *details, const struct agent_alert **out,
    struct err_ctx *e);

/* Signs and writes the registry (agent lock held); on a locked token the
 * change is kept and written at unlock (reg_dirty). */
int agent_save_registry(struct agent *a, struct err_ctx *e);

/* After a successful check (lock held): a newer view reported by a
 * sender is either shown by the directory now or, after a full check,
 * alerted as a split view. */
void agent_gossip_check(struct agent *a);

/* Timers (main thread, lock not held): staleness and the PIN timeout. */
void agent_tick(struct agent *a);

/* Sends queued alerts to followers (main thread). */
void agent_flush_broadcast(struct agent *a);

/* Lock held: 1 and the token (borrowed until the lock is released) when
 * a session valid for at least another minute is cached, else 0. */
int agent_session_cached(struct agent *a, const char **token,
    uint64_t *expires);

/* Lock held: caches a session (token copied) or, with NULL, forgets it. */
void agent_session_store(struct agent *a, const char *token,
    uint64_t expires);

/* Wakes the main loop (any thread). */
void agent_wake_main(struct agent *a);

#endif /* DEVID_AGENT_OPS_H */
