/*
 * agent-tlog.h - the agent's monitor of the directory's global
 * transparency log (docs/protocol.md section 7.6 step 5), as pure
 * functions on caller memory and one state file.
 *
 * With witnesses configured, the agent reads every leaf of the global
 * log up to each checkpoint it accepted, appends their leaf hashes to a
 * frontier (a compact range, merkle.h), and requires the frontier's root
 * to be the checkpoint's (or, for a frontier short of the checkpoint, to
 * be consistent with it).  The leaves of its own account must be the
 * events of its verified account log, one by one in order of seq: a leaf
 * of its account that is not (another history of the account, shown to
 * someone else) is a fork of the account.
 *
 * The monitor's state is a small JSON file in the state directory
 * (AGENT_TLOG_MONITOR_FILE), written durably:
 *
 *     { "version": 1, "size": N, "next_seq": S,
 *       "frontier": [ "<base64url hash>", ... ] }
 *
 * size leaves were read and checked, the frontier has one hash per set
 * bit of size (largest subtree first), and S is the seq of the own
 * account's event the next leaf of that account must be.
 *
 * The watcher (agent-watch-tlog.c) talks to the directory and raises the
 * alerts; everything here is tested on its own
 * (tests/unit/test_agenttlog.c).
 */
#ifndef DEVID_AGENT_TLOG_H
#define DEVID_AGENT_TLOG_H

#include <stddef.h>
#include <stdint.h>

#include "dirclient.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-client.h"

#define AGENT_TLOG_CHECKPOINT_FILE "tlog-checkpoint"
#define AGENT_TLOG_MONITOR_FILE "tlog-monitor"
/* The largest monitor file read (64 hashes of 43 characters and some). */
#define AGENT_TLOG_MONITOR_MAX ((size_t)8192)
/* Leaves of the own account collected in one round at most. */
#define AGENT_TLOG_OWN_MAX ((size_t)65536)

/* What the monitor has read and checked. */
struct agent_tlog_monitor {
	struct merkle_frontier f;       /* of the f.size leaves read */
	uint64_t next_seq;              /* >= 1 */
};

/* A leaf of the own account met while reading. */
struct agent_tlog_own {
	uint64_t index;                 /* its leaf index */
	uint64_t seq;
	uint8_t hash[MERKLE_HASH_LEN];  /* the event hash it states */
};

/* Why a leaf of the own account is not the verified log's. */
enum agent_tlog_why {
	AGENT_TLOG_OK = 0,
	AGENT_TLOG_SEQ,         /* not the next seq (a gap, a repeat) */
	AGENT_TLOG_HASH,        /* another event at a verified seq */
	AGENT_TLOG_BEYOND,      /* a seq past the log the directory shows
	                         * this device */
};

struct agent_tlog_finding {
	enum agent_tlog_why why;
	struct agent_tlog_own leaf;     /* the leaf */
	uint64_t expected_seq;          /* the seq it should have had */
	int have_expected_hash;
	uint8_t expected_hash[MERKLE_HASH_LEN]; /* the verified event's */
};

/* What `status` shows of the transparency log (a member of struct
 * agent, written by the watcher with the agent lock held). */
struct agent_tlog_status {
	int enabled;                    /* witnesses are configured */
	uint64_t checkpoint_size;       /* of the kept checkpoint */
	uint64_t fresh;                 /* its quorum cosignature time */
	uint64_t monitored;             /* leaves read and checked */
	uint64_t proven_seq;            /* own events proven up to */
	uint64_t head_seq;              /* of the verified log */
	int pending;                    /* proven_seq < head_seq */
	char last_error[256];
};

/* The empty monitor: no leaf read, next_seq 1. */
void agent_tlog_monitor_init(struct agent_tlog_monitor *m);

/*
 * Parses the monitor file's text (len bytes, at most
 * AGENT_TLOG_MONITOR_MAX) strictly: exactly the keys above, version 1,
 * size at most MERKLE_SIZE_MAX, next_seq >= 1, popcount(size) frontier
 * hashes of 32 bytes.  ERR_FORMAT or ERR_TOO_LARGE; m untouched then.
 */
int agent_tlog_monitor_parse(const char *text, size_t len,
    struct agent_tlog_monitor *m, struct err_ctx *e);

/* The file's text for m as a new NUL-terminated string (caller frees). */
int agent_tlog_monitor_format(const struct agent_tlog_monitor *m,
    char **out, size_t *len);

/* Loads m from path; a missing file is the empty monitor. */
int agent_tlog_monitor_load(const char *path, struct agent_tlog_monitor *m,
    struct err_ctx *e);

/* Writes m to path durably (fileio_write_atomic, mode 0600). */
int agent_tlog_monitor_save(const char *path,
    const struct agent_tlog_monitor *m, struct err_ctx *e);

/*
 * Appends n leaves, the first of which is leaf m->f.size, to m's
 * frontier (their leaf hashes per tlog_leaf_hash()).  Those of account
 * are appended to the array *own of *n_own entries (grown with realloc
 * to 16, 32, 64, ... entries: start from NULL and 0 and keep adding to
 * the same array; the caller frees it), at most AGENT_TLOG_OWN_MAX (ERR_TOO_LARGE).  On
 * failure m may hold some of the leaves: work on a copy.
 */
int agent_tlog_monitor_append(struct agent_tlog_monitor *m,
    const char *account, const struct dirc_tlog_leaf *leaves, size_t n,
    struct agent_tlog_own **own, size_t *n_own, struct err_ctx *e);

/*
 * Whether the leaves m read are those of the checkpoint of size leaves
 * with root root: equal roots when m has read size leaves, else proof (n
 * hashes, from m's size to size) must show m's root is a prefix of it.
 * 0, ERR_SIGNATURE when they are not (the directory served leaves that
 * are not its tree), ERR_INVALID_ARG when m read more than size.
 */
int agent_tlog_monitor_verify(const struct agent_tlog_monitor *m,
    uint64_t size, const uint8_t root[MERKLE_HASH_LEN],
    const uint8_t proof[][MERKLE_HASH_LEN], size_t n, struct err_ctx *e);

/*
 * The hash of the own account's event seq from its verified log into
 * out: 0; ERR_NOT_FOUND when seq is past the verified log (the caller
 * reads the log again and retries); any other error is passed up.
 */
typedef int (*agent_tlog_event_fn)(void *arg, uint64_t seq,
    uint8_t out[MERKLE_HASH_LEN], struct err_ctx *e);

/*
 * Checks own[*done..n) in order: each leaf must have seq *next_seq and
 * the hash event() gives for it; each one that does advances *done and
 * *next_seq.  Returns 0 when all matched; ERR_FORK with f filled (why
 * SEQ or HASH) at the first that does not; event()'s ERR_NOT_FOUND (f
 * filled with why BEYOND; *done at that leaf) when a leaf's seq is past
 * the verified log; another error of event() as it is.
 */
int agent_tlog_check_own(const struct agent_tlog_own *own, size_t n,
    size_t *done, uint64_t *next_seq, agent_tlog_event_fn event, void *arg,
    struct agent_tlog_finding *f, struct err_ctx *e);

/* A short word for why: "seq", "hash", "beyond" ("" for OK). */
const char *agent_tlog_why_name(enum agent_tlog_why why);

/*
 * Which configured witnesses have a valid cosignature on the signed
 * note (len bytes): writes "N of K needed (valid: a, b; missing: c;
 * invalid: d)" into out (out_size bytes, cut when longer).  A note that
 * does not parse gives "the checkpoint does not parse: ...".
 */
void agent_tlog_cosig_summary(const struct tlog_policy *p, const char *note,
    size_t len, char *out, size_t out_size);

#endif /* DEVID_AGENT_TLOG_H */
