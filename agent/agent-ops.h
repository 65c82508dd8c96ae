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
#include "agent-anchor.h"
#include "agent-config.h"
#include "agent-sock.h"
#include "agent-tlog.h"
#include "agent-token.h"
#include "errors.h"
#include "registry.h"
#include "transcript.h"

#define AGENT_REPLAY_FILE "replay.jsonl"
#define AGENT_DIRKEY_FILE "directory.pub"
/*
 * The replay store is bound by time: a message opens only when its `sent`
 * lies in the window [now - AGENT_REPLAY_HORIZON_S, now +
 * AGENT_REPLAY_FUTURE_S], and its id is kept exactly as long as the
 * window admits it.  So an id that was forgotten -- it left the window,
 * or the file was deleted -- belongs to a message the window refuses.
 */
#define AGENT_REPLAY_HORIZON_S ((uint64_t)30 * 86400)
#define AGENT_REPLAY_FUTURE_S ((uint64_t)300)
/* Ids of the window kept at most; beyond, opening is refused (ERR_QUOTA)
 * until ids leave the window: never forgotten early. */
#define AGENT_REPLAY_MAX 100000
/* The file is rewritten once it holds this many lines more than twice
 * the ids kept (the others left the window). */
#define AGENT_REPLAY_COMPACT_SLACK 1024
/* The largest replay store file read. */
#define AGENT_REPLAY_FILE_MAX ((size_t)64 * 1024 * 1024)

/* A remembered (device, message id) and the message's `sent`. */
struct agent_replay {
	char device[65];
	uint8_t id[16];
	uint64_t sent;
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
	struct agent_anchor anchor;     /* are the token's keys this device's */
	EVP_PKEY *dir_pub;      /* the pinned directory key */
	char dir_id[65];

	/* the transparency log (agent-watch-tlog.c): NULL without
	 * witnesses; the run is the watcher's, the status is under lock */
	struct agent_tlog_run *tlog;
	struct agent_tlog_status tlog_status;

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
	size_t replay_alloc;            /* entries allocated */
	size_t replay_lines;            /* lines in the file */
	uint64_t replay_horizon_s;      /* 0: AGENT_REPLAY_HORIZON_S */
	size_t replay_max;              /* 0: AGENT_REPLAY_MAX */

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
 * and the replay store.  Token keys that are not this device's
 * (agent-anchor.h) raise `key_replaced` and are never used; the agent
 * still starts, to show the alert.  a is initialised here; free it with
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

/*
 * Reads the replay store (ids of opened messages) from the state
 * directory, keeping the ids whose messages the window still admits now;
 * a line without `sent` (an older store) counts as sent now.  Damaged
 * lines are skipped.  Rewrites the file when most of it has left the
 * window.  A missing file is an empty store.
 */
int agent_replay_load(struct agent *a, struct err_ctx *e);

/*
 * The window at now: 0 when a message sent at `sent` may be opened, else
 * ERR_STALE with the reason (older than the horizon, or more than
 * AGENT_REPLAY_FUTURE_S ahead) in e.
 */
int agent_replay_window(const struct agent *a, uint64_t sent, uint64_t now,
    struct err_ctx *e);

/*
 * Check 4 (lock held): 0 when `sent` lies in the window at now and id was
 * never opened from device; ERR_STALE (outside the window) or ERR_REPLAY
 * (seen) with the reason in e.
 */
int agent_replay_check(struct agent *a, const char *device,
    const uint8_t id[16], uint64_t sent, uint64_t now, struct err_ctx *e);

/*
 * Whether the store can take one more id at now (lock held): forgets the
 * ids that left the window, then 0, or ERR_QUOTA with what to do in e
 * when it still holds its limit (the store refuses rather than forget an
 * id the window admits).
 */
int agent_replay_room(struct agent *a, uint64_t now, struct err_ctx *e);

/*
 * Remembers (device, id) of a message sent at `sent` (lock held): one
 * line appended to the file and fsync'd, the file rewritten when it has
 * grown.  0, ERR_QUOTA (no room: agent_replay_room()), ERR_IO, ERR_ALLOC;
 * on failure the id is not remembered.
 */
int agent_replay_record(struct agent *a, const char *device,
    const uint8_t id[16], uint64_t sent, uint64_t now, struct err_ctx *e);

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

/* Like agent_raise_alert() with a severity ("info", "warning",
 * "critical"; NULL: the kind's default). */
int agent_raise_alert_severity(struct agent *a, const char *kind,
    const char *severity, const char *key, const char *account,
    const char *device, const char *label, const char *message,
    json_t *details, const struct agent_alert **out, struct err_ctx *e);

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
