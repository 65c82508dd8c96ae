/*
 * dir-blob.c - blob files under the blob directory (dir-blob.h).
 *
 * Every path is opened relative to a descriptor of the blob directory
 * with O_NOFOLLOW, so a symbolic link placed inside never redirects a
 * write or a removal.  Names come from hashes this module computed or
 * checked (dir_blob_hash_valid), never from a client's text.
 *
 * An upload reaches the file in blocks of DIR_BLOB_WRITE_BUF bytes at
 * offsets that are multiples of it, gathered from the small pieces
 * libmicrohttpd hands over: a few hundred write(2) calls per 100 MiB
 * instead of thousands, each into large page-cache folios.  Every
 * DIR_BLOB_WRITEBACK bytes the kernel is asked to start writing them
 * out (sync_file_range, which does not wait), so that the fsync before
 * the answer finds little left to write.  Neither changes what is kept
 * or when: the file is still fsync'ed before it is linked.  At most
 * DIR_BLOB_BUFFERS_MAX uploads hold a buffer at once; more write each
 * piece as it comes, so uploads in progress cost a bounded amount of
 * memory however many there are.
 *
 * A file and its row are made and removed in opposite orders (the file
 * before the row on upload, the row before the file on expiry), so the
 * two meet under the blob directory's lock file, BLOBDIR/.lock, taken
 * with flock(2) on a descriptor of its own each time, which excludes the
 * other threads of this process as well as other directory processes
 * that share the blob directory: an upload holds it from its link to its
 * row's commit, expiry from its rows' removal to their files', the sweep
 * while it checks a file's row and removes the file.  Without it, an
 * upload of bytes that are being expired could find the old file, commit
 * a new row, and see the file removed under that row.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "codec.h"
#include "crypto.h"
#include "dir-blob.h"
#include "dir-log.h"
#include "errors.h"
#include "fileio.h"
#include "stream.h"

#define TMP_PREFIX ".tmp-"
#define LOCK_NAME ".lock"
#define TMP_NAME_MAX (sizeof(TMP_PREFIX) + 32)
/* "ab/" + 64 hex digits + NUL */
#define REL_NAME_MAX (3 + DIR_BLOB_HASH_HEX + 1)

struct dir_blobs {
	char *path;
	int dirfd;
	unsigned int buffers;            /* uploads holding a buffer */
};

struct dir_blob_upload {
	struct dir_blobs *b;
	int fd;                          /* -1 once closed */
	char tmp[TMP_NAME_MAX];          /* "" once removed or linked */
	uint64_t length;                 /* announced */
	uint64_t size;                   /* accepted: hashed, buffered */
	uint8_t *wbuf;                   /* mmap'ed, wbuf_cap bytes; NULL:
	                                    every piece written as it is */
	size_t wbuf_cap;
	size_t wbuf_len;                 /* bytes waiting in wbuf */
	uint64_t written;                /* bytes in the file */
	uint64_t started;                /* handed to write-back */
	uint8_t hdr[STREAM_HEADER_LEN];
	size_t hdr_len;
	EVP_MD_CTX *md;
	int err;                         /* the first failure, kept */
	struct err_ctx e;
};

int
dir_blob_hash_valid(const char *s)
{
	return hex_text_valid(s, DIR_BLOB_HASH_HEX);
}

/* "ab/abcdef..." for hash (valid) into out. */
static void
rel_name(const char *hash, char out[REL_NAME_MAX])
{
	snprintf(out, REL_NAME_MAX, "%.2s/%s", hash, hash);
}

/*
 * Takes the blob directory's lock (blocking until every other holder let
 * go): *fd is the descriptor that holds it, given back to blobs_unlock().
 * ERR_IO when the lock file cannot be opened or locked.
 */
static int
blobs_lock(struct dir_blobs *b, int *fd, struct err_ctx *e)
{
	int f;

	*fd = -1;
	if ((f = openat(b->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) < 0)
		return err_set(e, ERR_IO, "cannot open the lock file %s/%s: "
		    "%s", b->path, LOCK_NAME, strerror(errno));
	while (flock(f, LOCK_EX) != 0) {
		if (errno == EINTR)
			continue;
		err_set(e, ERR_IO, "cannot lock %s/%s: %s", b->path,
		    LOCK_NAME, strerror(errno));
		close(f);
		return ERR_IO;
	}
	*fd = f;
	return 0;
}

/* Lets go of the lock blobs_lock() took (fd < 0: none). */
static void
blobs_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int
dir_blobs_open(const char *path, struct dir_blobs **out, struct err_ctx *e)
{
	struct dir_blobs *b = NULL;
	struct stat st;
	int fd, lk, r;

	return_val_if_fail(path != NULL && out != NULL, ERR_INVALID_ARG);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return err_set(e, ERR_IO, "cannot create the blob directory "
		    "%s: %s", path, strerror(errno));
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return err_set(e, errno == ENOTDIR ? ERR_CONFIG : ERR_IO,
		    "cannot open the blob directory %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
		close(fd);
		return err_set(e, ERR_CONFIG, "the blob directory %s is open "
		    "to group or others: run chmod 700 %s", path, path);
	}
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->path = strdup(path)) == NULL) {
		free(b);
		close(fd);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	b->dirfd = fd;
	/* The lock file from the start: a directory it cannot be made in
	 * is refused now rather than at the first upload. */
	if ((r = blobs_lock(b, &lk, e)) != 0) {
		dir_blobs_free(b);
		return r;
	}
	blobs_unlock(lk);
	*out = b;
	return 0;
}

void
dir_blobs_free(struct dir_blobs *b)
{
	if (b == NULL)
		return;
	close(b->dirfd);
	free(b->path);
	free(b);
}

const char *
dir_blobs_path(const struct dir_blobs *b)
{
	return b->path;
}

/* --- uploads --- */

/*
 * Gives u a write buffer of at most DIR_BLOB_WRITE_BUF bytes unless
 * DIR_BLOB_BUFFERS_MAX uploads hold one (u then has none).  mmap, not
 * malloc: the buffer goes back to the system when the upload ends,
 * whatever malloc's thresholds would keep.  0, or ERR_ALLOC.
 */
static int
upload_buffer_take(struct dir_blob_upload *u)
{
	size_t cap;

	if (__atomic_add_fetch(&u->b->buffers, 1, __ATOMIC_RELAXED) >
	    DIR_BLOB_BUFFERS_MAX) {
		__atomic_sub_fetch(&u->b->buffers, 1, __ATOMIC_RELAXED);
		return 0;
	}
	cap = u->length < DIR_BLOB_WRITE_BUF ? (size_t)u->length :
	    DIR_BLOB_WRITE_BUF;
	if (cap == 0)
		cap = 1;
	if ((u->wbuf = mmap(NULL, cap, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED) {
		u->wbuf = NULL;
		__atomic_sub_fetch(&u->b->buffers, 1, __ATOMIC_RELAXED);
		return ERR_ALLOC;
	}
	u->wbuf_cap = cap;
	return 0;
}

/* Returns u's buffer, if any. */
static void
upload_buffer_drop(struct dir_blob_upload *u)
{
	if (u->wbuf == NULL)
		return;
	(void)munmap(u->wbuf, u->wbuf_cap);
	u->wbuf = NULL;
	u->wbuf_cap = 0;
	__atomic_sub_fetch(&u->b->buffers, 1, __ATOMIC_RELAXED);
}

int
dir_blob_upload_begin(struct dir_blobs *b, uint64_t length,
    struct dir_blob_upload **out, struct err_ctx *e)
{
	struct dir_blob_upload *u;
	uint8_t rnd[16];
	char hex[2 * sizeof(rnd) + 1];
	int r;

	return_val_if_fail(b != NULL && out != NULL, ERR_INVALID_ARG);
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	u->b = b;
	u->fd = -1;
	u->length = length;
	err_clear(&u->e);
	if ((r = upload_buffer_take(u)) != 0) {
		dir_blob_upload_free(u);
		return err_set(e, r, "out of memory for an upload's buffer");
	}
	if ((u->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1) {
		dir_blob_upload_free(u);
		return err_set(e, ERR_ALLOC, "out of memory");
	}
	if (crypto_random(rnd, sizeof(rnd)) != 0) {
		dir_blob_upload_free(u);
		return err_set(e, ERR_CRYPTO, "no random bytes for a "
		    "temporary name");
	}
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(u->tmp, sizeof(u->tmp), TMP_PREFIX "%s", hex);
	if ((u->fd = openat(b->dirfd, u->tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		u->tmp[0] = '\0';
		dir_blob_upload_free(u);
		return err_set(e, ERR_IO, "cannot create a file in the blob "
		    "directory %s: %s", b->path, strerror(errno));
	}
	*out = u;
	return 0;
}

/* Keeps the upload's first failure and returns it. */
static int
upload_fail(struct dir_blob_upload *u, int code, const char *msg)
{
	if (u->err == 0)
		u->err = err_set(&u->e, code, "%s", msg);
	return u->err;
}

/*
 * Writes len bytes at p to the end of the file, and asks the kernel to
 * start writing out what has gathered since the last request once that
 * is DIR_BLOB_WRITEBACK or more.  0, or the kept ERR_IO.
 */
static int
upload_put(struct dir_blob_upload *u, const uint8_t *p, size_t len)
{
	char msg[ERR_MSG_MAX];

	if (fileio_write_all(u->fd, p, len) != 0) {
		snprintf(msg, sizeof(msg), "writing to the blob directory "
		    "%s failed: %s", u->b->path, strerror(errno));
		return upload_fail(u, ERR_IO, msg);
	}
	u->written += len;
#ifdef SYNC_FILE_RANGE_WRITE
	if (u->written - u->started >= DIR_BLOB_WRITEBACK) {
		/* Only a hint: a failure of the write-out shows in the
		 * fsync of dir_blob_upload_finish(). */
		(void)sync_file_range(u->fd, (off_t)u->started,
		    (off_t)(u->written - u->started), SYNC_FILE_RANGE_WRITE);
		u->started = u->written;
	}
#endif
	return 0;
}

/* Writes out what waits in the buffer.  0, or the kept ERR_IO. */
static int
upload_flush(struct dir_blob_upload *u)
{
	size_t n = u->wbuf_len;

	if (n == 0)
		return 0;
	u->wbuf_len = 0;
	return upload_put(u, u->wbuf, n);
}

/*
 * Appends len bytes to the file through the buffer: whole buffers
 * straight from p when the buffer is empty, so the file only ever grows
 * by whole buffers until the last one.  Without a buffer, p as it is.
 */
static int
upload_append(struct dir_blob_upload *u, const uint8_t *p, size_t len)
{
	size_t take;
	int r;

	if (u->wbuf == NULL)
		return len > 0 ? upload_put(u, p, len) : 0;
	while (len > 0) {
		if (u->wbuf_len == 0 && len >= u->wbuf_cap) {
			take = len - len % u->wbuf_cap;
			if ((r = upload_put(u, p, take)) != 0)
				return r;
		} else {
			take = u->wbuf_cap - u->wbuf_len;
			if (take > len)
				take = len;
			memcpy(u->wbuf + u->wbuf_len, p, take);
			u->wbuf_len += take;
			if (u->wbuf_len == u->wbuf_cap &&
			    (r = upload_flush(u)) != 0)
				return r;
		}
		p += take;
		len -= take;
	}
	return 0;
}

int
dir_blob_upload_write(void *arg, const uint8_t *p, size_t len)
{
	struct dir_blob_upload *u = arg;
	struct stream_header h;
	struct err_ctx he;
	size_t take;
	char msg[ERR_MSG_MAX];
	int r;

	if (u->err != 0)
		return u->err;
	if (len > u->length - u->size)
		return upload_fail(u, ERR_TOO_LARGE, "the body is longer than "
		    "its Content-Length");
	if (u->hdr_len < STREAM_HEADER_LEN) {
		take = STREAM_HEADER_LEN - u->hdr_len;
		if (take > len)
			take = len;
		memcpy(u->hdr + u->hdr_len, p, take);
		u->hdr_len += take;
		if (u->hdr_len == STREAM_HEADER_LEN) {
			err_clear(&he);
			if (stream_header_parse(u->hdr, u->hdr_len, &h,
			    &he) != 0) {
				snprintf(msg, sizeof(msg), "the body is not a "
				    "blob (docs/protocol.md section 8.1): %s",
				    err_msg(&he));
				return upload_fail(u, ERR_FORMAT, msg);
			}
		}
	}
	if (EVP_DigestUpdate(u->md, p, len) != 1)
		return upload_fail(u, ERR_CRYPTO, "hashing the blob failed");
	if ((r = upload_append(u, p, len)) != 0)
		return r;
	u->size += len;
	return 0;
}

/* Syncs the directory dirfd/name (the fan-out directory) so that a link
 * made in it survives a crash. */
static int
sync_subdir(int dirfd, const char *name)
{
	int fd, r;

	if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

int
dir_blob_upload_finish(struct dir_blob_upload *u,
    char hash[DIR_BLOB_HASH_HEX + 1], dir_blob_commit_fn commit, void *arg,
    int *created, struct err_ctx *e)
{
	uint8_t md[32];
	unsigned int md_len = 0;
	char sub[3], rel[REL_NAME_MAX];
	int made = 1, lk = -1, r;

	return_val_if_fail(u != NULL && hash != NULL, ERR_INVALID_ARG);
	if (created != NULL)
		*created = 0;
	if (u->err != 0)
		return err_set(e, u->err, "%s", err_msg(&u->e));
	if (u->size != u->length || u->hdr_len < STREAM_HEADER_LEN)
		return err_set(e, ERR_TRUNCATED, "the body ended after %llu "
		    "of %llu bytes: a blob is at least a %u-byte header and "
		    "one segment", (unsigned long long)u->size,
		    (unsigned long long)u->length, STREAM_HEADER_LEN);
	if (upload_flush(u) != 0)
		return err_set(e, u->err, "%s", err_msg(&u->e));
	upload_buffer_drop(u);
	if (EVP_DigestFinal_ex(u->md, md, &md_len) != 1 || md_len != 32)
		return err_set(e, ERR_CRYPTO, "hashing the blob failed");
	hex_encode(md, sizeof(md), hash);
	rel_name(hash, rel);
	snprintf(sub, sizeof(sub), "%.2s", hash);
	if (fsync(u->fd) != 0 ||
	    (mkdirat(u->b->dirfd, sub, 0700) != 0 && errno != EEXIST))
		return err_set(e, ERR_IO, "storing the blob in %s failed: %s",
		    u->b->path, strerror(errno));
	if ((r = blobs_lock(u->b, &lk, e)) != 0)
		return r;
	/* link, not rename: an existing file of the same name has the same
	 * bytes and may be another upload's, which must not be replaced. */
	if (linkat(u->b->dirfd, u->tmp, u->b->dirfd, rel, 0) != 0) {
		if (errno != EEXIST) {
			r = err_set(e, ERR_IO, "storing the blob in %s failed: "
			    "%s", u->b->path, strerror(errno));
			goto out;
		}
		made = 0;
	}
	if (made && sync_subdir(u->b->dirfd, sub) != 0) {
		r = err_set(e, ERR_IO, "syncing the blob directory %s failed: "
		    "%s", u->b->path, strerror(errno));
		goto unmake;
	}
	if (commit != NULL && (r = commit(arg, hash, e)) != 0)
		goto unmake;
	blobs_unlock(lk);
	(void)unlinkat(u->b->dirfd, u->tmp, 0);
	u->tmp[0] = '\0';
	if (created != NULL)
		*created = made;
	return 0;
 unmake:
	/* A file that was there before belongs to a kept blob (or to the
	 * sweep). */
	if (made)
		(void)unlinkat(u->b->dirfd, rel, 0);
 out:
	blobs_unlock(lk);
	return r;
}

uint64_t
dir_blob_upload_size(const struct dir_blob_upload *u)
{
	return u->size;
}

int
dir_blob_upload_error(const struct dir_blob_upload *u,
    const struct err_ctx **e)
{
	if (e != NULL)
		*e = &u->e;
	return u->err;
}

void
dir_blob_upload_free(struct dir_blob_upload *u)
{
	if (u == NULL)
		return;
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp[0] != '\0')
		(void)unlinkat(u->b->dirfd, u->tmp, 0);
	upload_buffer_drop(u);
	EVP_MD_CTX_free(u->md);
	free(u);
}

void
dir_blob_upload_free_state(void *u)
{
	dir_blob_upload_free(u);
}

/* --- downloads and removal --- */

int
dir_blob_open(struct dir_blobs *b, const char *hash, int *fd, uint64_t *size,
    struct err_ctx *e)
{
	char rel[REL_NAME_MAX];
	struct stat st;
	int f;

	return_val_if_fail(b != NULL && fd != NULL && size != NULL,
	    ERR_INVALID_ARG);
	if (!dir_blob_hash_valid(hash))
		return err_set(e, ERR_INVALID_ARG, "not a blob hash");
	rel_name(hash, rel);
	if ((f = openat(b->dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) <
	    0) {
		if (errno == ENOENT)
			return err_set(e, ERR_NOT_FOUND, "blob %.16s has no "
			    "file in %s", hash, b->path);
		return err_set(e, ERR_IO, "cannot open blob %.16s in %s: %s",
		    hash, b->path, strerror(errno));
	}
	if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(f);
		return err_set(e, ERR_IO, "blob %.16s in %s is not a regular "
		    "file", hash, b->path);
	}
	*fd = f;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Deletes the file of hash; 0 also when there was none.  Only for a
 * file whose row is gone, under the lock. */
static int
blob_remove(struct dir_blobs *b, const char *hash, struct err_ctx *e)
{
	char rel[REL_NAME_MAX];

	if (!dir_blob_hash_valid(hash))
		return err_set(e, ERR_INVALID_ARG, "not a blob hash");
	rel_name(hash, rel);
	if (unlinkat(b->dirfd, rel, 0) != 0 && errno != ENOENT)
		return err_set(e, ERR_IO, "cannot delete blob %.16s in %s: %s",
		    hash, b->path, strerror(errno));
	return 0;
}

/* blob_expire's callback: the row is gone, so is the file. */
static int
expire_cb(void *arg, const char *hash)
{
	struct dir_blobs *b = arg;
	struct err_ctx e;

	err_clear(&e);
	if (blob_remove(b, hash, &e) != 0)
		dir_log("expiring blobs: %s", err_msg(&e));
	return 0;
}

int
dir_blobs_expire(struct dir_blobs *b, struct dir_store *s, uint64_t now,
    uint64_t *removed, struct err_ctx *e)
{
	int lk, r;

	if (removed != NULL)
		*removed = 0;
	if (s->ops->blob_expire == NULL)
		return err_set(e, ERR_UNSUPPORTED, "the %s store keeps no "
		    "blobs", s->ops->name);
	/* The rows and then their files, with no upload's link and commit
	 * in between. */
	if ((r = blobs_lock(b, &lk, e)) != 0)
		return r;
	r = s->ops->blob_expire(s, now, DIR_BLOB_UNLINKED_S,
	    DIR_BLOB_EXPIRE_BATCH, expire_cb, b, removed, e);
	blobs_unlock(lk);
	return r;
}

/* --- the start-up sweep --- */

struct sweep {
	struct dir_blobs *b;
	struct dir_store *s;
	time_t before;                   /* remove what is older */
	uint64_t removed;
	struct err_ctx *e;
};

/* Removes dirfd/name when it is a regular file last written before
 * sw->before (a symbolic link or anything else stays). */
static void
sweep_unlink(struct sweep *sw, int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(st.st_mode) || st.st_mtime >= sw->before)
		return;
	if (unlinkat(dirfd, name, 0) == 0)
		sw->removed++;
}

/*
 * The hash-named file dirfd/name, once it is old enough, goes when the
 * store keeps no row for it: both looked at under the lock, so that an
 * upload linking the same name and committing its row comes before or
 * after, never in between.
 */
static int
sweep_orphan(struct sweep *sw, int dirfd, const char *name)
{
	struct stat st;
	int lk, kept = 1, r;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(st.st_mode) || st.st_mtime >= sw->before)
		return 0;
	if ((r = blobs_lock(sw->b, &lk, sw->e)) != 0)
		return r;
	if ((r = sw->s->ops->blob_exists(sw->s, name, &kept, sw->e)) == 0 &&
	    !kept)
		sweep_unlink(sw, dirfd, name);
	blobs_unlock(lk);
	return r;
}

/* One fan-out directory sub ("ab"): files without a row go. */
static int
sweep_subdir(struct sweep *sw, const char *sub)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if ((fd = openat(sw->b->dirfd, sub, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) < 0)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return err_set(sw->e, ERR_IO, "cannot read %s/%s: %s",
		    sw->b->path, sub, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) ==
		    0) {
			sweep_unlink(sw, fd, de->d_name);
			continue;
		}
		if (!dir_blob_hash_valid(de->d_name) ||
		    strncmp(de->d_name, sub, 2) != 0)
			continue;
		if ((r = sweep_orphan(sw, fd, de->d_name)) != 0)
			break;
	}
	closedir(d);
	return r;
}

int
dir_blobs_sweep(struct dir_blobs *b, struct dir_store *s, uint64_t grace_s,
    uint64_t *removed, struct err_ctx *e)
{
	struct sweep sw;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (removed != NULL)
		*removed = 0;
	if (s->ops->blob_exists == NULL)
		return err_set(e, ERR_UNSUPPORTED, "the %s store keeps no "
		    "blobs", s->ops->name);
	memset(&sw, 0, sizeof(sw));
	sw.b = b;
	sw.s = s;
	sw.e = e;
	/* Without grace every file goes, also one written this second. */
	sw.before = time(NULL) - (time_t)grace_s + (grace_s == 0 ? 1 : 0);
	if ((fd = dup(b->dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_IO, "cannot read the blob directory "
		    "%s: %s", b->path, strerror(errno));
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) ==
		    0) {
			sweep_unlink(&sw, b->dirfd, de->d_name);
			continue;
		}
		if (!hex_text_valid(de->d_name, 2))
			continue;
		if ((r = sweep_subdir(&sw, de->d_name)) != 0)
			break;
	}
	closedir(d);
	if (removed != NULL)
		*removed = sw.removed;
	return r;
}
