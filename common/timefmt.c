/*
 * timefmt.c - Unix times as people read them.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "timefmt.h"

void
timefmt_utc(uint64_t t, char *out, size_t out_len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (out_len == 0)
		return;
	if (t > (uint64_t)INT64_MAX || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, out_len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, out_len, "%llu", (unsigned long long)t);
}
