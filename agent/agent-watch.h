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

#include "acctlog.h"
#include "agent-ops.h"
#include "errors.h"

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

#endif /* DEVID_AGENT_WATCH_H */
