/*
 * dir-net.c - client network keys for the directory's limits.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dir-net.h"

static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static int
key_v4(const void *addr4, char *out, size_t out_len)
{
	char text[INET_ADDRSTRLEN];

	if (inet_ntop(AF_INET, addr4, text, sizeof(text)) == NULL ||
	    (size_t)snprintf(out, out_len, "%s", text) >= out_len)
		return -1;
	return 0;
}

/* The /64 of a 16-byte IPv6 address, or the IPv4 one it maps. */
static int
key_v6(const uint8_t a[16], char *out, size_t out_len)
{
	struct in6_addr prefix;
	char text[INET6_ADDRSTRLEN];

	if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0)
		return key_v4(a + 12, out, out_len);
	memset(&prefix, 0, sizeof(prefix));
	memcpy(prefix.s6_addr, a, 8);
	if (inet_ntop(AF_INET6, &prefix, text, sizeof(text)) == NULL ||
	    (size_t)snprintf(out, out_len, "%s/64", text) >= out_len)
		return -1;
	return 0;
}

static int
unknown(char *out, size_t out_len)
{
	if (out_len > 0)
		snprintf(out, out_len, "unknown");
	return -1;
}

int
dir_net_key(const struct sockaddr *sa, char *out, size_t out_len)
{
	const struct sockaddr_in *s4;
	const struct sockaddr_in6 *s6;
	int r = -1;

	if (sa != NULL && sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		r = key_v4(&s4->sin_addr, out, out_len);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		r = key_v6(s6->sin6_addr.s6_addr, out, out_len);
	}
	return r == 0 ? 0 : unknown(out, out_len);
}

int
dir_net_key_text(const char *addr, char *out, size_t out_len)
{
	char text[INET6_ADDRSTRLEN];
	struct in_addr a4;
	struct in6_addr a6;
	size_t n;

	if (addr == NULL)
		return unknown(out, out_len);
	addr += strspn(addr, " \t");
	n = strcspn(addr, " \t");
	if (n == 0 || n >= sizeof(text))
		return unknown(out, out_len);
	memcpy(text, addr, n);
	text[n] = '\0';
	if (addr[n + strspn(addr + n, " \t")] != '\0')
		return unknown(out, out_len);
	if (inet_pton(AF_INET, text, &a4) == 1)
		return key_v4(&a4, out, out_len) == 0 ? 0 :
		    unknown(out, out_len);
	if (inet_pton(AF_INET6, text, &a6) == 1)
		return key_v6(a6.s6_addr, out, out_len) == 0 ? 0 :
		    unknown(out, out_len);
	return unknown(out, out_len);
}

int
dir_net_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in *s4;
	const struct sockaddr_in6 *s6;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return memcmp(s6->sin6_addr.s6_addr, v4mapped,
		    sizeof(v4mapped)) == 0 && s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}
