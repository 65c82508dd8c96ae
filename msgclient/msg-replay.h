/*
 * msg-replay.h - the messaging client's replay store.
 *
 * Every envelope devid-msg has handled is remembered as (sender device,
 * message id, inbox sequence number, when it was handled) in one JSON
 * line of a file, appended and fsync'd before the envelope is
 * acknowledged.  An envelope that comes again under the inbox sequence
 * number it was handled with is a redelivery of something not yet
 * acknowledged and is skipped quietly; under any other sequence number it
 * is a replay and is rejected.  (The agent keeps its own store for the
 * open operation; this one lets the client tell a redelivery from a
 * replay.)
 *
 * Bound by time, not by count.  devid-agent opens a message only when its
 * `sent` lies in the window [now - horizon, now + MSG_REPLAY_FUTURE_S]
 * (docs/agent.md), and msg_replay_window() is that window for the client.
 * An entry is kept until MSG_REPLAY_HORIZON_S + MSG_REPLAY_FUTURE_S after
 * it was handled: by then the message, which was sent at most
 * MSG_REPLAY_FUTURE_S after it was handled, is outside the window, so an
 * entry forgotten -- expired, or the file deleted -- never lets an old
 * envelope be opened again.
 *
 * Bounded in size: at most max entries; one more within the horizon is
 * refused (ERR_QUOTA) rather than an entry forgotten early.  When the
 * file holds twice the entries kept and MSG_REPLAY_COMPACT_SLACK lines
 * more, it is rewritten with the entries kept (atomically).  Lines that
 * do not parse (a write cut short by a crash) are skipped.
 */
#ifndef DEVID_MSG_REPLAY_H
#define DEVID_MSG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "devrec.h"
#include "errors.h"

#define MSG_REPLAY_FILE "msg-replay.jsonl"
/* The agent's window: docs/agent.md, "The replay window". */
#define MSG_REPLAY_HORIZON_S ((uint64_t)30 * 86400)
#define MSG_REPLAY_FUTURE_S ((uint64_t)300)
/* Twice the agent's limit of opened ids: the agent refuses first. */
#define MSG_REPLAY_MAX_DEFAULT 200000
#define MSG_REPLAY_COMPACT_SLACK 1024
#define MSG_REPLAY_LINE_MAX 256

struct msg_replay_entry {
	char device[DEVREC_ID_HEX_LEN + 1];
	uint8_t id[16];
	uint64_t qseq;
	uint64_t time;                  /* when it was handled */
};

struct msg_replay {
	char *path;
	size_t max;
	uint64_t horizon_s;
	size_t lines;                   /* lines in the file */
	struct msg_replay_entry *entries;
	size_t n;
	size_t alloc;
};

/*
 * Reads the store at path (a missing file is an empty store) as of now,
 * keeping the entries of the horizon (horizon_s, 0: MSG_REPLAY_HORIZON_S)
 * and taking at most max (0: MSG_REPLAY_MAX_DEFAULT).  *out is new (free
 * with msg_replay_free()).  ERR_IO, ERR_TOO_LARGE (a file far over its
 * bound), ERR_ALLOC.
 */
int msg_replay_open_at(const char *path, size_t max, uint64_t horizon_s,
    uint64_t now, struct msg_replay **out, struct err_ctx *e);

/* msg_replay_open_at() with the default horizon, now. */
int msg_replay_open(const char *path, size_t max, struct msg_replay **out,
    struct err_ctx *e);

/* NULL is fine. */
void msg_replay_free(struct msg_replay *rp);

/*
 * The replay window at now for an envelope sent at `sent` (horizon_s 0:
 * MSG_REPLAY_HORIZON_S): 0 inside, ERR_STALE with the reason in e when it
 * is older than the horizon or more than MSG_REPLAY_FUTURE_S ahead.
 */
int msg_replay_window(uint64_t horizon_s, uint64_t sent, uint64_t now,
    struct err_ctx *e);

/* 1 when (device, id) is in the store, with its inbox seq in *qseq
 * (may be NULL); else 0. */
int msg_replay_find(const struct msg_replay *rp, const char *device,
    const uint8_t id[16], uint64_t *qseq);

/*
 * Remembers (device, id, qseq) handled at `time` (now): forgets the
 * entries that left the horizon, appends a line and fsyncs it, and
 * compacts the file when it has grown.  0, ERR_QUOTA (max entries of the
 * horizon already: nothing is remembered, e says until when), ERR_IO,
 * ERR_ALLOC, ERR_FORMAT (bad device id).
 */
int msg_replay_add(struct msg_replay *rp, const char *device,
    const uint8_t id[16], uint64_t qseq, uint64_t time, struct err_ctx *e);

#endif /* DEVID_MSG_REPLAY_H */
