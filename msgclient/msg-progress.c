/*
 * msg-progress.c - the transfer progress bar (msg-progress.h).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msg-progress.h"

#define LABEL_MAX 32
#define REDRAW_MS 100.0

struct msg_progress {
	char label[LABEL_MAX + 4];
	double start_ms;
	double last_ms;         /* last drawing, 0: none yet */
	int drawn;              /* the line holds a bar */
};

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void
msg_progress_bytes(uint64_t n, char *out, size_t out_len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		snprintf(out, out_len, "%llu B", (unsigned long long)n);
		return;
	}
	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(out, out_len, "%llu %s", (unsigned long long)v,
		    units[u]);
	else
		snprintf(out, out_len, "%.1f %s", v, units[u]);
}

struct msg_progress *
msg_progress_new(const char *label, int enabled)
{
	struct msg_progress *p;
	size_t len;

	if (!enabled || !isatty(STDERR_FILENO))
		return NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (label == NULL)
		label = "";
	len = strlen(label);
	/* Only printable ASCII of the name reaches the terminal. */
	if (len > LABEL_MAX) {
		memcpy(p->label, label, LABEL_MAX - 3);
		memcpy(p->label + LABEL_MAX - 3, "...", 4);
	} else
		memcpy(p->label, label, len + 1);
	for (len = 0; p->label[len] != '\0'; len++)
		if ((unsigned char)p->label[len] < 0x20 ||
		    (unsigned char)p->label[len] >= 0x7f)
			p->label[len] = '?';
	p->start_ms = now_ms();
	return p;
}

/* "1:02:03" or "02:03" for s seconds. */
static void
fmt_time(double s, char *out, size_t out_len)
{
	unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);

	if (t >= 3600)
		snprintf(out, out_len, "%lu:%02lu:%02lu", t / 3600,
		    t / 60 % 60, t % 60);
	else
		snprintf(out, out_len, "%02lu:%02lu", t / 60, t % 60);
}

void
msg_progress_update(struct msg_progress *p, uint64_t done, uint64_t total)
{
	char d[24], t[24], rate[24], left[24];
	double now, secs, bps;

	if (p == NULL)
		return;
	now = now_ms();
	if (p->last_ms != 0 && now - p->last_ms < REDRAW_MS &&
	    (total == 0 || done < total))
		return;
	p->last_ms = now;
	secs = (now - p->start_ms) / 1000.0;
	bps = secs > 0.05 ? (double)done / secs : 0;
	msg_progress_bytes(done, d, sizeof(d));
	msg_progress_bytes((uint64_t)bps, rate, sizeof(rate));
	if (total > 0 && bps > 0 && done <= total)
		fmt_time((double)(total - done) / bps, left, sizeof(left));
	else
		snprintf(left, sizeof(left), "--:--");
	if (total > 0) {
		msg_progress_bytes(total, t, sizeof(t));
		fprintf(stderr, "\r\033[K%s  %s / %s  %3u%%  %s/s  %s left",
		    p->label, d, t, (unsigned int)(done >= total ? 100 :
		    (double)done * 100.0 / (double)total), rate, left);
	} else
		fprintf(stderr, "\r\033[K%s  %s  %s/s", p->label, d, rate);
	fflush(stderr);
	p->drawn = 1;
}

void
msg_progress_end(struct msg_progress *p)
{
	if (p == NULL || !p->drawn)
		return;
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
	p->drawn = 0;
}

void
msg_progress_free(struct msg_progress *p)
{
	if (p == NULL)
		return;
	msg_progress_end(p);
	free(p);
}
