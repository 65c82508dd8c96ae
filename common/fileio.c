/*
 * fileio.c - bounded whole-file reads and durable file writes (fileio.h).
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "errors.h"
#include "fileio.h"

/*
 * Doubles the buffer *p of *size bytes, all of them in use, up to
 * max_len + 1 bytes; the old buffer is wiped first with FILEIO_SECRET.
 * 0, ERR_TOO_LARGE when *size is past max_len already, or ERR_ALLOC; *p
 * stays valid (and the caller's to free) on failure.
 */
static int
grow(char **p, size_t *size, size_t max_len, int flags)
{
	size_t new_size;
	char *q;

	if (*size > max_len)
		return ERR_TOO_LARGE;
	new_size = *size > max_len / 2 ? max_len + 1 : *size * 2;
	if ((q = malloc(new_size)) == NULL)
		return ERR_ALLOC;
	memcpy(q, *p, *size);
	if ((flags & FILEIO_SECRET) != 0)
		crypto_wipe(*p, *size);
	free(*p);
	*p = q;
	*size = new_size;
	return 0;
}

int
fileio_read(const char *path, size_t max_len, int flags, char **out,
    size_t *out_len, struct err_ctx *e)
{
	struct stat st;
	char *p = NULL;
	size_t size = 0, got = 0;
	ssize_t n;
	int fd, oflags = O_RDONLY | O_CLOEXEC | O_NOCTTY, r = ERR_INTERNAL;

	return_val_if_fail(path != NULL && out != NULL && out_len != NULL &&
	    max_len < SIZE_MAX, ERR_INVALID_ARG);
	if ((flags & FILEIO_FOLLOW) == 0)
		oflags |= O_NOFOLLOW;
	if ((fd = open(path, oflags)) < 0) {
		if (errno == ENOENT)
			return err_set(e, ERR_NOT_FOUND, "%s does not exist",
			    path);
		if (errno == ELOOP && (flags & FILEIO_FOLLOW) == 0)
			return err_set(e, ERR_IO, "%s is a symbolic link; "
			    "refusing to follow it", path);
		return err_set(e, ERR_IO, "cannot open %s: %s", path,
		    strerror(errno));
	}
	if (fstat(fd, &st) != 0) {
		r = err_set(e, ERR_IO, "reading %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = err_set(e, ERR_IO, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max_len) {
		r = err_set(e, ERR_TOO_LARGE, "%s is larger than %zu bytes",
		    path, max_len);
		goto out;
	}
	if ((flags & FILEIO_PRIVATE) != 0 && (st.st_mode & 077) != 0) {
		r = err_set(e, ERR_DENIED, "%s: mode %04o lets other users "
		    "read it; run chmod 600 on it", path,
		    (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	/* One byte more than fstat promised: room for the NUL, and the
	 * way to notice a file that grows while it is read. */
	size = (size_t)st.st_size + 1;
	if ((p = malloc(size)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (;;) {
		if (got == size && (r = grow(&p, &size, max_len, flags)) != 0) {
			if (r == ERR_TOO_LARGE)
				r = err_set(e, r, "%s is larger than %zu bytes",
				    path, max_len);
			goto out;
		}
		n = read(fd, p + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_set(e, ERR_IO, "reading %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	p[got] = '\0';
	*out = p;
	*out_len = got;
	p = NULL;       /* transferred */
	r = 0;
 out:
	if (p != NULL) {
		if ((flags & FILEIO_SECRET) != 0)
			crypto_wipe(p, size);
		free(p);
	}
	close(fd);
	return r;
}

int
fileio_write_all(int fd, const void *p, size_t len)
{
	const char *q = p;
	ssize_t n;

	while (len > 0) {
		n = write(fd, q, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return EIO;
		q += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Syncs the directory that holds path, so that a file created or renamed
 * there survives a crash.  0 or ERR_IO.  File systems that cannot sync a
 * directory (EINVAL) are accepted as they are.
 */
static int
sync_parent(const char *path, struct err_ctx *e)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL;
	int fd, err = 0;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return ERR_ALLOC;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		err = errno;
	else if (fsync(fd) != 0 && errno != EINVAL)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err != 0) {
		free(dir);
		return err_set(e, ERR_IO, "syncing the directory of %s: %s",
		    path, strerror(err));
	}
	free(dir);
	return 0;
}

/*
 * Creates path exclusively (never through a symlink) with exactly mode,
 * writes the len bytes at p, syncs and closes it.  *created is set once
 * the file exists, so that the caller knows to remove it on failure.
 * 0, ERR_EXISTS or ERR_IO.
 */
static int
create_file(const char *path, const void *p, size_t len, mode_t mode,
    int *created, struct err_ctx *e)
{
	int fd, err;

	*created = 0;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY, mode)) < 0) {
		if (errno == EEXIST)
			return err_set(e, ERR_EXISTS, "%s already exists",
			    path);
		return err_set(e, ERR_IO, "cannot create %s: %s", path,
		    strerror(errno));
	}
	*created = 1;
	/* The umask can only remove bits; make the mode exact anyway. */
	if ((fchmod(fd, mode) != 0 && (err = errno) != 0) ||
	    (err = fileio_write_all(fd, p, len)) != 0 ||
	    (fsync(fd) != 0 && (err = errno) != 0)) {
		close(fd);
		return err_set(e, ERR_IO, "writing %s: %s", path,
		    strerror(err));
	}
	if (close(fd) != 0)
		return err_set(e, ERR_IO, "writing %s: %s", path,
		    strerror(errno));
	return 0;
}

int
fileio_write_atomic(const char *path, const void *p, size_t len,
    mode_t mode, struct err_ctx *e)
{
	char *tmp = NULL;
	int created = 0, r = ERR_INTERNAL;

	return_val_if_fail(path != NULL && (p != NULL || len == 0),
	    ERR_INVALID_ARG);
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		return ERR_ALLOC;
	}
	/* A temporary file left by a crash is only ever ours to replace. */
	(void)unlink(tmp);
	if ((r = create_file(tmp, p, len, mode, &created, e)) != 0)
		goto out;
	if (rename(tmp, path) != 0) {
		r = err_set(e, ERR_IO, "cannot replace %s: %s", path,
		    strerror(errno));
		goto out;
	}
	created = 0;    /* it is path now */
	r = sync_parent(path, e);
 out:
	if (created)
		(void)unlink(tmp);
	free(tmp);
	return r;
}

int
fileio_write_new(const char *path, const void *p, size_t len, mode_t mode,
    struct err_ctx *e)
{
	int created = 0, r = ERR_INTERNAL;

	return_val_if_fail(path != NULL && (p != NULL || len == 0),
	    ERR_INVALID_ARG);
	if ((r = create_file(path, p, len, mode, &created, e)) != 0)
		goto out;
	if ((r = sync_parent(path, e)) != 0)
		goto out;
	r = 0;
 out:
	if (r != 0 && created)
		(void)unlink(path);
	return r;
}
