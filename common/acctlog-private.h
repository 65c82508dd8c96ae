/*
 * acctlog-private.h - what the parts of the account-log module
 * (acctlog.c, acctlog-state.c, acctlog-verify.c) share and no other
 * module uses.  The API is acctlog.h.
 */
#ifndef DEVID_ACCTLOG_PRIVATE_H
#define DEVID_ACCTLOG_PRIVATE_H

#include <stdint.h>

/* All zeros: the hash of the empty log, the only one seq 0 may have. */
extern const uint8_t acctlog_zero_hash[32];

#endif /* DEVID_ACCTLOG_PRIVATE_H */
