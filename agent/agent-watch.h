/*
 * agent-watch.h - the watcher: keeps a directory session, long-polls the
 * account's log (and checks at least every check_interval), verifies
 * every event and signed head against the pinned directory key and the
 * registry, and raises alerts.
 *
 * A check that finds nothing new costs no token operation: the session
 * is renewed by one signature per hour, and the registry is re-signed only
 * when events arrive.
 */
#ifndef DEVID_AGENT_WATCH_H
#define DEVID_AGENT_WATCH_H

#include <pthread.h>

#include <jansson.h>

#include "acctlog.h"
#include "agent-ops.h"
#include "errors.h"

struct dirc;

/* Starts the watcher thread. */
int agent_watch_start(struct agent *a, pthread_t *th, struct err_ctx *e);

/*
 * Applies one log response to the agent (lock held): verifies it and
 * raises the alerts it calls for, updating and re-signing the registry
 * when events were applied.  Returns 0 for a fresh, verified check.
 */
int agent_watch_apply(struct agent *a, const struct acctlog_response *resp,
    uint64_t now, struct err_ctx *e);

/*
 * The device of this registry that endorsed d's record (lock held), when
 * it is approved here and is not d itself; else NULL.  The log's
 * verification already checked that the endorsement is valid and that
 * its endorser was active when d was added.
 */
struct reg_device *agent_watch_endorser_approved(struct agent *a,
    const struct reg_device *d);

/*
 * 1 when approving the pending device d takes --force (lock held):
 * require_endorsement is on, d has no endorsement by an approved device,
 * and d is not the account's first device (log seq 1, which nothing can
 * have endorsed).
 */
int agent_watch_needs_force(struct agent *a, const struct reg_device *d);

/* A devrec_sign_fn that takes the agent lock and signs with its token. */
int agent_watch_sign_locked(void *arg, const uint8_t digest[32],
    uint8_t sig[64], struct err_ctx *e);

/*
 * A dirc_sign_fn (the directory client hands over the whole transcript):
 * refuses anything that does not start with a domain tag a device signs,
 * then signs its hash like agent_watch_sign_locked.
 */
int agent_watch_sign_transcript(void *arg, const uint8_t *transcript,
    size_t len, uint8_t sig[64], struct err_ctx *e);

/*
 * Reads (lock held; released while the directory answers) the account's
 * log after the verified seq, with the pages that follow, and applies it
 * with agent_watch_apply().  For the transparency-log monitor, which
 * meets a leaf of the account past the verified log.  0 or an error.
 */
int agent_watch_refresh_log(struct agent *a, struct dirc *c,
    struct err_ctx *e);

/* --- agent-watch-tlog.c: the transparency log (docs/protocol.md 7.6) --- */

/*
 * At load (before the watcher starts): with witnesses configured, the
 * policy from the configuration, the kept checkpoint (tlog-checkpoint in
 * the state directory) and the monitor's state (tlog-monitor) in a new
 * a->tlog; without, a->tlog stays NULL and nothing below does anything.
 */
int agent_watch_tlog_new(struct agent *a, struct err_ctx *e);
void agent_watch_tlog_free(struct agent *a);

/*
 * After a fresh, verified check of resp (read with tlog=1; lock held,
 * released while the directory answers): 7.6 steps 1 to 4 through
 * tlog_check_log() (the kept checkpoint saved when it moves), then step
 * 5, the monitor, up to the kept checkpoint; raises tlog_no_quorum,
 * tlog_stale, tlog_fork, tlog_inclusion and tlog_account_fork, and
 * closes the first two when a checkpoint passes.  *pending is set while
 * the latest verified event is not yet proven (check again soon).
 * Returns 0, or the error of the check (already alerted as it calls
 * for; a directory that cannot be reached is no alert).
 */
int agent_watch_tlog_check(struct agent *a, struct dirc *c,
    const struct acctlog_response *resp, int *pending, struct err_ctx *e);

/*
 * The `tlog_fork` request (lock held; released while the directory is
 * asked): two signed checkpoints {held, shown, reporter} a local client
 * found in conflict.  Both must carry the pinned directory's signature
 * and be of one origin, and contradict each other: the same size with
 * different roots, or sizes for which the directory's consistency proof
 * fails.  Then a critical `tlog_fork` alert with both notes is raised
 * (once per pair); anything else is refused.
 */
json_t *agent_op_tlog_fork(struct agent *a, const json_t *req,
    struct err_ctx *e);

#endif /* DEVID_AGENT_WATCH_H */
