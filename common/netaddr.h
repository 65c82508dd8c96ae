/*
 * netaddr.h - the listen addresses of devid's servers (devid-directory,
 * devid-witness): "ADDR:PORT" or "[ADDR]:PORT".
 */
#ifndef DEVID_NETADDR_H
#define DEVID_NETADDR_H

#include <sys/socket.h>

#include "errors.h"

#define NETADDR_HOST_MAX 255

/*
 * Parses listen into *ss and *ss_len: an address (or, unless numeric is
 * set, a host name) before the last ':' or in brackets, and a decimal
 * port of 0 to 65535 (0: the kernel picks one).  ERR_CONFIG, naming
 * listen, for anything else or an address that does not resolve.
 */
int net_listen_parse(const char *listen, int numeric,
    struct sockaddr_storage *ss, socklen_t *ss_len, struct err_ctx *e);

#endif /* DEVID_NETADDR_H */
