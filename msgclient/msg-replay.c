/*
 * msg-replay.c - the messaging client's replay store: fsync'd, bound by
 * time and by size (see msg-replay.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "codec.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "msg-replay.h"
#include "timefmt.h"

static uint64_t
horizon_of(uint64_t horizon_s)
{
	return horizon_s != 0 ? horizon_s : MSG_REPLAY_HORIZON_S;
}

/* Whether an entry handled at `time` has left the horizon at now: the
 * message was sent at most MSG_REPLAY_FUTURE_S after it was handled. */
static int
expired(const struct msg_replay *rp, const struct msg_replay_entry *ent,
    uint64_t now)
{
	uint64_t keep = rp->horizon_s + MSG_REPLAY_FUTURE_S;

	return now > keep && ent->time < now - keep;
}

int
msg_replay_window(uint64_t horizon_s, uint64_t sent, uint64_t now,
    struct err_ctx *e)
{
	uint64_t h = horizon_of(horizon_s);
	char when[TIMEFMT_UTC_LEN];

	if (now > h && sent < now - h) {
		timefmt_utc(sent, when, sizeof(when));
		return err_set(e, ERR_STALE, "outside the replay window: sent "
		    "%s, more than %llu days ago", when,
		    (unsigned long long)(h / 86400));
	}
	if (sent > now && sent - now > MSG_REPLAY_FUTURE_S) {
		timefmt_utc(sent, when, sizeof(when));
		return err_set(e, ERR_STALE, "outside the replay window: sent "
		    "%s, %llu s ahead of this device's clock (at most %llu s)",
		    when, (unsigned long long)(sent - now),
		    (unsigned long long)MSG_REPLAY_FUTURE_S);
	}
	return 0;
}

/* Parses one line; 0 or ERR_FORMAT.  Strict: exactly the four members. */
static int
parse_line(const char *s, size_t len, struct msg_replay_entry *out)
{
	static const char *const keys[] = { "device", "id", "qseq", "time" };
	struct msg_replay_entry ent;
	json_t *o = NULL;
	const char *id;
	int r;

	memset(&ent, 0, sizeof(ent));
	if ((r = devrec_json_load(s, len, MSG_REPLAY_LINE_MAX, &o, "replay",
	    NULL)) != 0)
		return ERR_FORMAT;
	if (devrec_json_keys(o, keys, 4, "replay", NULL) != 0 ||
	    devrec_json_id(o, "device", ent.device, "replay", NULL) != 0 ||
	    devrec_json_str(o, "id", 32, &id, "replay", NULL) != 0 ||
	    b64url_decode_exact(id, strlen(id), ent.id, 16) != 0 ||
	    devrec_json_u64(o, "qseq", &ent.qseq, "replay", NULL) != 0 ||
	    devrec_json_u64(o, "time", &ent.time, "replay", NULL) != 0) {
		json_decref(o);
		return ERR_FORMAT;
	}
	json_decref(o);
	*out = ent;
	return 0;
}

/* Appends ent to rp->entries (the caller keeps to the bound). */
static int
remember(struct msg_replay *rp, const struct msg_replay_entry *ent)
{
	struct msg_replay_entry *p;
	size_t want;

	if (rp->n == rp->alloc) {
		want = rp->alloc < 64 ? 64 : rp->alloc * 2;
		if ((p = realloc(rp->entries, want * sizeof(*p))) == NULL)
			return ERR_ALLOC;
		rp->entries = p;
		rp->alloc = want;
	}
	rp->entries[rp->n++] = *ent;
	return 0;
}

/* Forgets the entries that left the horizon at now. */
static void
prune(struct msg_replay *rp, uint64_t now)
{
	size_t i, j;

	for (i = 0, j = 0; i < rp->n; i++) {
		if (expired(rp, &rp->entries[i], now))
			continue;
		if (j != i)
			rp->entries[j] = rp->entries[i];
		j++;
	}
	rp->n = j;
}

static int
encode_line(const struct msg_replay_entry *ent, char **out)
{
	char *b64 = NULL;
	int r;

	if ((r = b64url_encode(ent->id, 16, &b64)) != 0)
		return r;
	if (asprintf(out, "{\"device\":\"%s\",\"id\":\"%s\",\"qseq\":%llu,"
	    "\"time\":%llu}\n", ent->device, b64,
	    (unsigned long long)ent->qseq, (unsigned long long)ent->time) < 0) {
		*out = NULL;
		r = ERR_ALLOC;
	}
	free(b64);
	return r;
}

int
msg_replay_open_at(const char *path, size_t max, uint64_t horizon_s,
    uint64_t now, struct msg_replay **out, struct err_ctx *e)
{
	struct msg_replay *rp = NULL;
	struct msg_replay_entry ent;
	char *text = NULL;
	size_t len = 0, i, start;
	int r = ERR_INTERNAL;

	if (max == 0)
		max = MSG_REPLAY_MAX_DEFAULT;
	if ((rp = calloc(1, sizeof(*rp))) == NULL ||
	    (rp->path = strdup(path)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	rp->max = max;
	rp->horizon_s = horizon_of(horizon_s);
	/* What compaction lets the file hold, and some room. */
	r = fileio_read(path, (max * 2 + MSG_REPLAY_COMPACT_SLACK + 16) *
	    MSG_REPLAY_LINE_MAX, 0, &text, &len, e);
	if (r == ERR_NOT_FOUND) {
		err_clear(e);
		*out = rp;
		rp = NULL;
		r = 0;
		goto out;
	}
	if (r != 0)
		goto out;
	for (start = 0, i = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		if (i > start) {
			rp->lines++;
			/* A damaged line is skipped, an entry that left the
			 * horizon forgotten; the rest still counts.  Within
			 * the horizon nothing is dropped: the read bound
			 * bounds the entries. */
			if (i - start <= MSG_REPLAY_LINE_MAX &&
			    parse_line(text + start, i - start, &ent) == 0 &&
			    !expired(rp, &ent, now) &&
			    (r = remember(rp, &ent)) != 0)
				goto out;
		}
		start = i + 1;
	}
	*out = rp;
	rp = NULL;
	r = 0;
 out:
	free(text);
	msg_replay_free(rp);
	return r;
}

int
msg_replay_open(const char *path, size_t max, struct msg_replay **out,
    struct err_ctx *e)
{
	return msg_replay_open_at(path, max, 0, (uint64_t)time(NULL), out, e);
}

void
msg_replay_free(struct msg_replay *rp)
{
	if (rp == NULL)
		return;
	free(rp->path);
	free(rp->entries);
	free(rp);
}

int
msg_replay_find(const struct msg_replay *rp, const char *device,
    const uint8_t id[16], uint64_t *qseq)
{
	size_t i;

	for (i = rp->n; i > 0; i--) {
		if (memcmp(rp->entries[i - 1].id, id, 16) == 0 &&
		    strcmp(rp->entries[i - 1].device, device) == 0) {
			if (qseq != NULL)
				*qseq = rp->entries[i - 1].qseq;
			return 1;
		}
	}
	return 0;
}

/* Rewrites the file with the entries in memory (atomically). */
static int
compact(struct msg_replay *rp, struct err_ctx *e)
{
	char *all = NULL, *line = NULL, *p;
	size_t len = 0, i, l;
	int r = ERR_INTERNAL;

	for (i = 0; i < rp->n; i++) {
		if ((r = encode_line(&rp->entries[i], &line)) != 0)
			goto out;
		l = strlen(line);
		if ((p = realloc(all, len + l + 1)) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		all = p;
		memcpy(all + len, line, l);
		len += l;
		free(line);
		line = NULL;
	}
	if ((r = fileio_write_atomic(rp->path, all, len, 0600, e)) != 0)
		goto out;
	rp->lines = rp->n;
	r = 0;
 out:
	free(all);
	free(line);
	return r;
}

int
msg_replay_add(struct msg_replay *rp, const char *device,
    const uint8_t id[16], uint64_t qseq, uint64_t time, struct err_ctx *e)
{
	struct msg_replay_entry ent;
	char *line = NULL, when[TIMEFMT_UTC_LEN];
	uint64_t oldest;
	size_t len, i;
	int fd = -1, r = ERR_INTERNAL;

	if (!devrec_id_valid(device))
		return err_set(e, ERR_FORMAT, "replay store: bad device id");
	prune(rp, time);
	if (rp->n >= rp->max) {
		/* Refuse rather than forget an entry of the horizon. */
		for (i = 0, oldest = UINT64_MAX; i < rp->n; i++)
			if (rp->entries[i].time < oldest)
				oldest = rp->entries[i].time;
		timefmt_utc(oldest + rp->horizon_s + MSG_REPLAY_FUTURE_S + 1,
		    when, sizeof(when));
		return err_set(e, ERR_QUOTA, "the replay store %s is full: it "
		    "holds %zu messages handled in the last %llu days, its "
		    "limit; no more can be received until the oldest leaves "
		    "it (%s)", rp->path, rp->n,
		    (unsigned long long)(rp->horizon_s / 86400), when);
	}
	memset(&ent, 0, sizeof(ent));
	snprintf(ent.device, sizeof(ent.device), "%s", device);
	memcpy(ent.id, id, 16);
	ent.qseq = qseq;
	ent.time = time;
	if ((r = encode_line(&ent, &line)) != 0)
		goto out;
	len = strlen(line);
	if ((fd = open(rp->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 ||
	    write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
		r = err_set(e, ERR_IO, "replay store %s: %s", rp->path,
		    strerror(errno));
		goto out;
	}
	rp->lines++;
	if ((r = remember(rp, &ent)) != 0)
		goto out;
	if (rp->lines >= 2 * rp->n + MSG_REPLAY_COMPACT_SLACK &&
	    (r = compact(rp, e)) != 0)
		goto out;
	r = 0;
 out:
	if (fd >= 0)
		close(fd);
	free(line);
	return r;
}
