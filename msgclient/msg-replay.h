/*
 * msg-replay.h - the messaging client's replay store.
 *
 * Every envelope devid-msg has handled is remembered as (sender device,
 * message id, inbox sequence number) in one JSON line of a file, appended
 * and fsync'd before the envelope is acknowledged.  An envelope that comes
 * again under the inbox sequence number it was handled with is a
 * redelivery of something not yet acknowledged and is skipped quietly;
 * under any other sequence number it is a replay and is rejected.  (The
 * agent keeps its own store for the open operation; this one lets the
 * client tell a redelivery from a replay.)
 *
 * Bounded: at most max entries are kept in memory; when the file holds
 * twice that many lines it is rewritten with the newest max (atomically).
 * Lines that do not parse (a write cut short by a crash) are skipped.
 */
#ifndef DEVID_MSG_REPLAY_H
#define DEVID_MSG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "devrec.h"
#include "errors.h"

#define MSG_REPLAY_FILE "msg-replay.jsonl"
#define MSG_REPLAY_MAX_DEFAULT 20000
#define MSG_REPLAY_LINE_MAX 256

struct msg_replay_entry {
	char device[DEVREC_ID_HEX_LEN + 1];
	uint8_t id[16];
	uint64_t qseq;
	uint64_t time;
};

struct msg_replay {
	char *path;
	size_t max;
	size_t lines;                   /* lines in the file */
	struct msg_replay_entry *entries;
	size_t n;
};

/*
 * Reads the store at path (a missing file is an empty store) keeping at
 * most max entries (0: MSG_REPLAY_MAX_DEFAULT).  *out is new (free with
 * msg_replay_free()).  ERR_IO, ERR_TOO_LARGE (a file far over its bound),
 * ERR_ALLOC.
 */
int msg_replay_open(const char *path, size_t max, struct msg_replay **out,
    struct err_ctx *e);

/* NULL is fine. */
void msg_replay_free(struct msg_replay *rp);

/* 1 when (device, id) is in the store, with its inbox seq in *qseq
 * (may be NULL); else 0. */
int msg_replay_find(const struct msg_replay *rp, const char *device,
    const uint8_t id[16], uint64_t *qseq);

/*
 * Remembers (device, id, qseq): appends a line and fsyncs it, and
 * compacts the file when it holds 2 * max lines.  0, ERR_IO, ERR_ALLOC,
 * ERR_FORMAT (bad device id).
 */
int msg_replay_add(struct msg_replay *rp, const char *device,
    const uint8_t id[16], uint64_t qseq, uint64_t time, struct err_ctx *e);

#endif /* DEVID_MSG_REPLAY_H */
