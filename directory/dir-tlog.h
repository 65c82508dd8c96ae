/*
 * dir-tlog.h - the directory's global transparency log: checkpoints,
 * their witnesses, and the proofs it serves (docs/protocol.md section 7).
 *
 * The tree itself lives in the store, which appends a leaf with every
 * event (dir-store.h).  This module makes checkpoints of it: a thread
 * (the checkpointer) that, in the one process that is the store's
 * sequencer, signs a checkpoint with the head key when the tree has grown
 * and at least every refresh_s seconds, submits it to every configured
 * witness (C2SP tlog-witness, common/witclient.h), keeps the valid
 * cosignatures it gets back and stores the cosigned checkpoint.  Every
 * process serves the latest stored checkpoint and proofs into it; proofs
 * read O(log n) stored nodes through a small cache of them (nodes never
 * change once stored).
 *
 * Thread-safety: every function but dir_tlog_free() may be called from
 * any thread.
 */
#ifndef DEVID_DIR_TLOG_H
#define DEVID_DIR_TLOG_H

#include <stddef.h>
#include <stdint.h>

#include "dir-key.h"
#include "dir-store.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-client.h"
#include "tlog-note.h"

#define DIR_TLOG_INTERVAL_DEFAULT 1
#define DIR_TLOG_REFRESH_DEFAULT 60
#define DIR_TLOG_WITNESS_TIMEOUT_S 10
#define DIR_TLOG_URL_MAX 512

struct dir_tlog_witness {
	char url[DIR_TLOG_URL_MAX + 1];
	struct tlog_vkey vkey;
};

struct dir_tlog_config {
	char origin[TLOG_NAME_MAX + 1];  /* "": devid/<directory id> */
	unsigned int interval_s;      /* least time between checkpoints while
	                               * the tree grows; 0: make none */
	unsigned int refresh_s;       /* most time between checkpoints */
	struct dir_tlog_witness witness[TLOG_WITNESS_MAX];
	size_t n_witness;
};

struct dir_tlog;

/* Fills cfg with the defaults: no witness, intervals above. */
void dir_tlog_config_default(struct dir_tlog_config *cfg);

/*
 * Adds the witness given as "URL,VKEY" (--witness): URL its submission
 * prefix (plain http only to loopback), VKEY its verifier key.
 * ERR_CONFIG with a sentence for anything wrong.
 */
int dir_tlog_add_witness(struct dir_tlog_config *cfg, const char *spec,
    struct err_ctx *e);

/* ERR_CONFIG for an origin that is not a valid key name. */
int dir_tlog_set_origin(struct dir_tlog_config *cfg, const char *origin,
    struct err_ctx *e);

/*
 * A transparency log over store, signed with key (both borrowed; they
 * must outlive it).  Starts nothing yet.
 */
int dir_tlog_new(const struct dir_tlog_config *cfg, struct dir_store *store,
    struct dir_key *key, struct dir_tlog **out, struct err_ctx *e);

/* Starts the checkpointer thread (unless interval_s is 0). */
int dir_tlog_start(struct dir_tlog *t, struct err_ctx *e);

/* Stops the checkpointer (waits for a round in progress) and frees t;
 * NULL is fine. */
void dir_tlog_free(struct dir_tlog *t);

/* Tells the checkpointer the tree has grown (after an append). */
void dir_tlog_poke(struct dir_tlog *t);

/*
 * One checkpointer round now, whatever the timers say: sign, submit,
 * store.  *size (may be NULL) gets the checkpoint's size.  Used by the
 * checkpointer, tests and the benchmark.  ERR_DENIED when this process
 * is not the sequencer.
 */
int dir_tlog_checkpoint_now(struct dir_tlog *t, uint64_t *size,
    struct err_ctx *e);

/* The origin and the log's vkey (for witnesses' --log). */
const char *dir_tlog_origin(const struct dir_tlog *t);
const char *dir_tlog_vkey(const struct dir_tlog *t);

/*
 * The latest stored checkpoint: its size and note in a new string
 * (caller frees).  ERR_NOT_FOUND before the first.
 */
int dir_tlog_latest(struct dir_tlog *t, uint64_t *size, char **note,
    struct err_ctx *e);

/* The size of the latest stored checkpoint, as dir_tlog_latest() sees
 * it but without copying the note; ERR_NOT_FOUND before the first. */
int dir_tlog_latest_size(struct dir_tlog *t, uint64_t *size,
    struct err_ctx *e);

/* Proofs into the tree of size leaves (see merkle.h). */
int dir_tlog_inclusion(struct dir_tlog *t, uint64_t index, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e);
int dir_tlog_consistency(struct dir_tlog *t, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e);

/* The log's vkey for origin (cfg's, or the default) and key, into out
 * (TLOG_VKEY_MAX * 2 bytes), without starting anything. */
int dir_tlog_vkey_of(const char *origin, struct dir_key *key, char *out,
    size_t out_size, struct err_ctx *e);

#endif /* DEVID_DIR_TLOG_H */
