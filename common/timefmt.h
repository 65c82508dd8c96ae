/*
 * timefmt.h - Unix times as people read them in alerts and messages.
 */
#ifndef DEVID_TIMEFMT_H
#define DEVID_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Room for "YYYY-MM-DD HH:MM:SS UTC" and any fallback. */
#define TIMEFMT_UTC_LEN 32

/*
 * Writes t as "2026-11-29 09:08:59 UTC" to out (out_len bytes, NUL
 * included); a time the C library cannot convert is written as its
 * decimal seconds instead, so out always holds something true.
 */
void timefmt_utc(uint64_t t, char *out, size_t out_len);

#endif /* DEVID_TIMEFMT_H */
