/*
 * fileio.h - bounded whole-file reads and durable file writes.
 *
 * Every file devid keeps (key files, registries, pins, journals, replay
 * stores, configuration) is small, read whole and written whole.  These
 * functions do that one way: reads are bounded and refuse anything but a
 * regular file, writes are synced, and a failed write never leaves a
 * partial file behind.
 */
#ifndef DEVID_FILEIO_H
#define DEVID_FILEIO_H

#include <sys/types.h>

#include <stddef.h>

#include "errors.h"

/* fileio_read() flags. */
#define FILEIO_FOLLOW   0x01    /* follow a symlink at path (default: refuse) */
#define FILEIO_SECRET   0x02    /* the contents are secret: wipe on failure */
#define FILEIO_PRIVATE  0x04    /* refuse a file group or others can access */

/*
 * Writes all len bytes to fd, going on after EINTR and short writes.
 * Returns 0, or the errno value of the write that failed (EIO when one
 * wrote nothing); errno is left as that write set it.
 */
int fileio_write_all(int fd, const void *p, size_t len);

/*
 * Reads the whole regular file at path, of at most max_len bytes, into a
 * new buffer with a NUL after the last byte; *out (caller frees) and
 * *out_len are set only on success.  A symlink at path is refused unless
 * flags has FILEIO_FOLLOW.  With FILEIO_PRIVATE a file whose mode gives
 * group or others any access is ERR_DENIED.  With FILEIO_SECRET the buffer
 * is wiped on every failure path; on success the caller wipes it.
 * A file that grows while it is read is read to its end, within max_len.
 * Returns 0, ERR_NOT_FOUND (no such file), ERR_TOO_LARGE, ERR_DENIED,
 * ERR_IO (a symlink, not a regular file, a read error) or ERR_ALLOC, with
 * a message naming path.
 */
int fileio_read(const char *path, size_t max_len, int flags, char **out,
    size_t *out_len, struct err_ctx *e);

/*
 * Replaces path with the len bytes at p, atomically: they are written to
 * PATH.tmp (created exclusively, never through a symlink, with exactly
 * mode whatever the umask), synced, renamed over path, and the directory
 * is synced.  On failure path keeps its old contents (or stays absent) and
 * the temporary file is removed.  Returns 0, ERR_IO or ERR_ALLOC
 * (ERR_EXISTS if something that cannot be removed sits at PATH.tmp).
 */
int fileio_write_atomic(const char *path, const void *p, size_t len,
    mode_t mode, struct err_ctx *e);

/*
 * Creates path (exclusively, never through a symlink, with exactly mode
 * whatever the umask) holding the len bytes at p, synced together with
 * its directory.  An existing file or symlink at path is ERR_EXISTS and
 * left alone; on any other failure the partly written file is removed.
 * Returns 0, ERR_EXISTS, ERR_IO or ERR_ALLOC.
 */
int fileio_write_new(const char *path, const void *p, size_t len,
    mode_t mode, struct err_ctx *e);

#endif /* DEVID_FILEIO_H */
