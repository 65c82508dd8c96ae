/*
 * msg-progress.h - a progress bar for file transfers on standard error:
 * the file's name, bytes done of the total, the rate and the time left,
 * redrawn at most about ten times a second on one line that is cleared
 * at the end.  Only when standard error is a terminal and the user did
 * not ask for quiet: otherwise nothing at all is written (scripts and
 * tests see no bar).
 */
#ifndef DEVID_MSG_PROGRESS_H
#define DEVID_MSG_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

struct msg_progress;

/*
 * A new bar naming label (copied, shortened to fit), or NULL when no bar
 * is to be drawn: enabled is 0, standard error is not a terminal, or
 * memory ran out.  Every function below accepts NULL and then does
 * nothing.
 */
struct msg_progress *msg_progress_new(const char *label, int enabled);

/*
 * Reports done of total bytes (total 0: unknown) and redraws when the
 * last drawing is older than ~100 ms or the transfer is complete.
 */
void msg_progress_update(struct msg_progress *p, uint64_t done,
    uint64_t total);

/* Clears the bar's line (the transfer ended, well or not). */
void msg_progress_end(struct msg_progress *p);

/* Clears the line if needed and frees p. */
void msg_progress_free(struct msg_progress *p);

/*
 * Formats n bytes for people: "512 B", "1.5 KiB", "100 MiB", "3.1 GiB"
 * (one decimal unless the value is whole) into out (at least 16 bytes).
 */
void msg_progress_bytes(uint64_t n, char *out, size_t out_len);

#endif /* DEVID_MSG_PROGRESS_H */
