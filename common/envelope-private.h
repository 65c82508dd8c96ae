/*
 * envelope-private.h - helpers shared by envelope.c and envelope-json.c.
 * Not part of the envelope interface.
 */
#ifndef DEVID_ENVELOPE_PRIVATE_H
#define DEVID_ENVELOPE_PRIVATE_H

#include <stddef.h>

/* 1 when s (NUL-terminated, len bytes before the NUL, none inside) is an
 * account name of PROTOCOL.md section 1 (devrec_account_valid()); else 0. */
int env_account_valid(const char *s, size_t len);

/* 1 when s (len bytes) is a device id: 64 lowercase hex digits; else 0. */
int env_device_valid(const char *s, size_t len);

/* The first 16 hex digits of a device id in groups of four, as people see
 * it ("3f2a-9c01-77de-b410"), into out; a malformed id gives "?". */
#define ENV_SHORT_ID_LEN 20
void env_short_id(const char *device, char out[ENV_SHORT_ID_LEN]);

#endif /* DEVID_ENVELOPE_PRIVATE_H */
