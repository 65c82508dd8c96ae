/*
 * netaddr.c - listen addresses (see netaddr.h).
 */
#include "config.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"

int
net_listen_parse(const char *listen, int numeric,
    struct sockaddr_storage *ss, socklen_t *ss_len, struct err_ctx *e)
{
	struct addrinfo hints, *res = NULL;
	char host[NETADDR_HOST_MAX + 1];
	const char *sep, *h, *port;
	size_t hlen;
	int r;

	return_val_if_fail(listen != NULL && ss != NULL && ss_len != NULL,
	    ERR_INVALID_ARG);
	if (listen[0] == '[') {
		if ((sep = strstr(listen, "]:")) == NULL)
			goto bad;
		h = listen + 1;
		port = sep + 2;
	} else {
		if ((sep = strrchr(listen, ':')) == NULL)
			goto bad;
		h = listen;
		port = sep + 1;
	}
	hlen = (size_t)(sep - h);
	if (hlen == 0 || hlen > NETADDR_HOST_MAX || *port == '\0' ||
	    strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    atoi(port) > 65535)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV |
	    (numeric ? AI_NUMERICHOST : 0);
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL ||
	    res->ai_addrlen > sizeof(*ss)) {
		r = err_set(e, ERR_CONFIG, numeric ? "the listen address '%s' "
		    "is not a numeric address and port" : "cannot resolve the "
		    "listen address '%s'", listen);
		goto out;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*ss_len = res->ai_addrlen;
	r = 0;
	goto out;
 bad:
	r = err_set(e, ERR_CONFIG, "listen address '%s' is not ADDR:PORT or "
	    "[ADDR]:PORT", listen);
 out:
	if (res != NULL)
		freeaddrinfo(res);
	return r;
}
