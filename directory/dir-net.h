/*
 * dir-net.h - client addresses as the directory's limits see them.
 *
 * Every per-client limit (request rate, open connections, password
 * failures) is keyed by a client *network*, not a bare address: an IPv4
 * address stands for itself, while an IPv6 client is keyed by its /64,
 * because one host is routinely given a whole /64 and could otherwise
 * rotate through 2^64 addresses to escape every limit.  IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) count as the IPv4 address they carry.
 */
#ifndef DEVID_DIR_NET_H
#define DEVID_DIR_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Room for the longest key: an IPv6 /64 prefix text plus "/64". */
#define DIR_NET_KEY_MAX 64

/*
 * Writes the limit key of sa into out (at most out_len bytes, always
 * NUL-terminated): "192.0.2.7" for IPv4, "2001:db8:1:2::/64" for IPv6.
 * Anything else (or a NULL sa) gives "unknown".  Returns 0, or -1 when the
 * key did not fit (out then holds "unknown").
 */
int dir_net_key(const struct sockaddr *sa, char *out, size_t out_len);

/*
 * The same for a numeric address text, as found in X-Forwarded-For
 * ("192.0.2.7", "2001:db8::1"; surrounding blanks are ignored).  Returns
 * 0, or -1 for text that is not a numeric IPv4 or IPv6 address.
 */
int dir_net_key_text(const char *addr, char *out, size_t out_len);

/*
 * 1 when sa is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z),
 * else 0.
 */
int dir_net_is_loopback(const struct sockaddr *sa);

#endif /* DEVID_DIR_NET_H */
