/*
 * dir-log.h - devid-directory's log lines.
 *
 * One line per event on standard error, prefixed with the UTC time, so
 * that systemd's journal or a log file keeps them in order.  Callers never
 * pass passwords, tokens or request bodies.
 */
#ifndef DEVID_DIR_LOG_H
#define DEVID_DIR_LOG_H

#include <stddef.h>

/*
 * Copies at most out_len - 1 bytes of untrusted text (a request path) to
 * out, replacing every byte outside printable ASCII with '?', so that it
 * can neither break a log line nor a JSON string.
 */
void dir_log_sanitize(const char *in, char *out, size_t out_len);

/* Writes one line (a newline is added). */
void dir_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* DEVID_DIR_LOG_H */
