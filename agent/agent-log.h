/*
 * agent-log.h - the agent's log lines, to stderr or syslog.
 *
 * Log lines never contain a PIN, a password, a session token or a key.
 */
#ifndef DEVID_AGENT_LOG_H
#define DEVID_AGENT_LOG_H

#include <syslog.h>

/* Chooses syslog (ident "devid-agent") or stderr; debug adds LOG_DEBUG. */
void agent_log_init(int use_syslog, int debug);

/* One line at priority (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO,
 * LOG_DEBUG).  Thread-safe. */
void agent_log(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* DEVID_AGENT_LOG_H */
