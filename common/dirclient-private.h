/*
 * dirclient-private.h - what the two HTTP clients of common/ share:
 * dirclient.c (the directory) and witclient.c (witnesses).  Not for use
 * outside common/.
 */
#ifndef DEVID_DIRCLIENT_PRIVATE_H
#define DEVID_DIRCLIENT_PRIVATE_H

#include <stddef.h>

/* An answer being received: at most max bytes, NUL-terminated. */
struct dirc_answer {
	char *p;
	size_t len;
	size_t cap;
	size_t max;
	int too_large;               /* more than max bytes came */
};

/* curl_global_init() once per process; 0, or -1 when it failed. */
int dirc_curl_init(void);

/* The CURLOPT_WRITEFUNCTION that fills a struct dirc_answer. */
size_t dirc_on_data(char *data, size_t size, size_t nmemb, void *arg);

#endif /* DEVID_DIRCLIENT_PRIVATE_H */
