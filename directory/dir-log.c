/*
 * dir-log.c - log lines on standard error.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dir-log.h"

void
dir_log_sanitize(const char *in, char *out, size_t out_len)
{
	size_t i;

	if (out_len == 0)
		return;
	for (i = 0; in != NULL && in[i] != '\0' && i + 1 < out_len; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
}

void
dir_log(const char *fmt, ...)
{
	char line[1024];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;
	size_t n;

	gmtime_r(&now, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	/* One write per line so that threads do not interleave. */
	n = strlen(line);
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
}
