/*
 * secmem.h - an allocator that wipes what it frees, for libraries that
 * keep copies of secrets in memory of their own.
 *
 * jansson copies every string it parses or builds: the PIN of an `unlock`
 * request, the decrypted payload of an `open` answer, a session token.
 * Those copies are freed inside jansson, out of reach of the caller's
 * crypto_wipe().  secmem_json_install() makes jansson allocate through
 * secmem_malloc() and free through secmem_free(), which wipes the whole
 * block with OPENSSL_cleanse() before handing it back to free().
 *
 * The blocks are plain malloc() blocks (the size to wipe comes from
 * malloc_usable_size(), not from a header), so that what jansson hands
 * out -- json_dumps() text, which callers release with free() -- may be
 * freed either way, and a value allocated before the hooks were installed
 * may be freed after.  Only what goes through secmem_free() is wiped:
 * callers still wipe json_dumps() text that holds a secret.
 */
#ifndef DEVID_SECMEM_H
#define DEVID_SECMEM_H

#include <stddef.h>

/* malloc(len) (a block of at least one byte for 0); NULL when out of
 * memory. */
void *secmem_malloc(size_t len);

/* Wipes the whole block at p, then frees it.  NULL is fine. */
void secmem_free(void *p);

/*
 * Makes jansson allocate with secmem_malloc() and free with secmem_free()
 * for the rest of the process.  Call it first thing in main(), before any
 * thread starts and before any JSON value exists (jansson's hooks are
 * process-wide and not synchronised).
 */
void secmem_json_install(void);

#endif /* DEVID_SECMEM_H */
