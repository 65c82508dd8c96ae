/*
 * secmem.c - wipe-on-free allocation for jansson (see secmem.h).
 */
#include "config.h"

#include <malloc.h>
#include <stdlib.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "secmem.h"

void *
secmem_malloc(size_t len)
{
	return malloc(len == 0 ? 1 : len);
}

void
secmem_free(void *p)
{
	if (p == NULL)
		return;
	/* Everything the block holds, also what lies past the size asked
	 * for: a string that shrank may have left bytes there. */
	OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

void
secmem_json_install(void)
{
	json_set_alloc_funcs(secmem_malloc, secmem_free);
}
