/*
 * dir-throttle.h - brakes on password guessing.
 *
 * Every password check (HTTP Basic on device registration) is counted
 * twice: against the account it names and against the client network it
 * comes from (dir-net.h).  Either key slows down on its own:
 *
 * - the first DIR_THROTTLE_FREE failures cost nothing; after n failures the
 *   next attempt must wait 2^(n - DIR_THROTTLE_FREE) seconds after the
 *   last one, at most DIR_THROTTLE_WAIT_MAX_S;
 * - a check still running counts as a failure until it ends, so a burst
 *   of parallel guesses gets no more tries than guesses one after the
 *   other (at most DIR_THROTTLE_FREE at once, then one at a time);
 * - a success clears the account's failures (never the network's: a
 *   guesser with an account of its own must not be able to reset its
 *   brake); failures are forgotten DIR_THROTTLE_FORGET_S after the last.
 *
 * Nothing else is slowed: device-signed logins and bearer requests never
 * look at this table, so someone else's failures on an account cannot keep
 * its devices out.  Unknown accounts are counted exactly like known ones,
 * so the answers do not tell them apart.
 */
#ifndef DEVID_DIR_THROTTLE_H
#define DEVID_DIR_THROTTLE_H

#include <stdint.h>

#define DIR_THROTTLE_FREE 3
#define DIR_THROTTLE_WAIT_MAX_S 900
#define DIR_THROTTLE_FORGET_S 3600
#define DIR_THROTTLE_ENTRIES_MAX 100000

struct dir_throttle;

/* A new empty table, or NULL when out of memory. */
struct dir_throttle *dir_throttle_new(void);
/* NULL is fine. */
void dir_throttle_free(struct dir_throttle *t);

/*
 * Asks to start a password check for account (may be NULL: only the
 * network counts) from network net at now_ms (a monotonic clock).  0: go
 * ahead, and call dir_throttle_end() with the same keys when done.
 * Otherwise *retry_s (>= 1) says when to come back: ERR_DENIED while a key
 * must wait or has as many checks running as it may, ERR_ALLOC when the
 * table is full.
 */
int dir_throttle_begin(struct dir_throttle *t, const char *account,
    const char *net, uint64_t now_ms, unsigned int *retry_s);

/* How a check ended. */
enum dir_throttle_outcome {
	DIR_THROTTLE_OK,             /* the password matched */
	DIR_THROTTLE_FAILED,         /* it did not (or no such account) */
	DIR_THROTTLE_ABANDONED       /* no verdict (overload, storage error) */
};

/*
 * Ends a check begun with dir_throttle_begin() with the same keys: a
 * failure is counted against both keys; a success clears the account's
 * failures; an abandoned check only ends.
 */
void dir_throttle_end(struct dir_throttle *t, const char *account,
    const char *net, enum dir_throttle_outcome outcome, uint64_t now_ms);

/* The failures counted now against account, or against net when account
 * is NULL; for tests and logs. */
unsigned int dir_throttle_failures(struct dir_throttle *t,
    const char *account, const char *net);

#endif /* DEVID_DIR_THROTTLE_H */
