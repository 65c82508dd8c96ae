/*
 * dir-blob.h - the bytes of blobs (docs/protocol.md section 8) as files.
 *
 * The store keeps a row per blob (dir-store.h, blob_put and friends);
 * the bytes live in one directory, --blob-dir, as files named by their
 * hash under a two-level fan-out:
 *
 *     BLOBDIR/ab/ab0123...   (the 64 lowercase hex digits of H(blob))
 *     BLOBDIR/.tmp-<random>  (an upload in progress)
 *     BLOBDIR/.lock          (flock(2): an upload's link and row against
 *                             expiry and the sweep, see dir-blob.c)
 *
 * An upload is written to a hidden temporary file as it arrives, hashed
 * on the way, checked to start with a well-formed STREAM header, and
 * only once it is complete fsync'ed and linked under its hash name; a
 * connection cut early leaves nothing but the temporary file, which the
 * upload's free removes.  Several directory processes on one PostgreSQL
 * database share one blob directory: names are content hashes and links
 * never replace a file, so they cannot step on each other.
 */
#ifndef DEVID_DIR_BLOB_H
#define DEVID_DIR_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "dir-store.h"
#include "errors.h"

#define DIR_BLOB_HASH_HEX 64
#define DIR_BLOB_MAX_DEFAULT ((uint64_t)100 * 1024 * 1024)
#define DIR_BLOB_QUOTA_DEFAULT ((uint64_t)1024 * 1024 * 1024)
#define DIR_BLOB_DAYS_DEFAULT 7
/* A blob that no message named is removed this long after its upload. */
#define DIR_BLOB_UNLINKED_S 3600
/* Blobs removed by one dir_blobs_expire() call at most. */
#define DIR_BLOB_EXPIRE_BATCH 256
/* An upload's write buffer (less for a shorter blob): the file grows by
 * this much per write(2). */
#define DIR_BLOB_WRITE_BUF ((size_t)256 * 1024)
/* Uploads that hold a write buffer at once; others write each piece as
 * it arrives. */
#define DIR_BLOB_BUFFERS_MAX 32
/* Written bytes after which an upload asks the kernel to start writing
 * them out, ahead of the fsync that ends it. */
#define DIR_BLOB_WRITEBACK ((uint64_t)4 * 1024 * 1024)

struct dir_blobs;
struct dir_blob_upload;

/*
 * Opens the blob directory at path, creating it (mode 0700) when it is
 * missing.  ERR_CONFIG when path exists and is not a directory, or is
 * open to group or others; ERR_IO when it cannot be created.  *out is
 * freed with dir_blobs_free().
 */
int dir_blobs_open(const char *path, struct dir_blobs **out,
    struct err_ctx *e);
/* NULL is fine. */
void dir_blobs_free(struct dir_blobs *b);
const char *dir_blobs_path(const struct dir_blobs *b);

/* 1 when s is exactly 64 lowercase hex digits (a blob's hash). */
int dir_blob_hash_valid(const char *s);

/*
 * Starts an upload of exactly length bytes: a new temporary file in the
 * blob directory and a write buffer of at most DIR_BLOB_WRITE_BUF bytes
 * (none when DIR_BLOB_BUFFERS_MAX uploads hold one).  ERR_IO when the
 * file cannot be created, ERR_ALLOC.  Free with
 * dir_blob_upload_free(), which removes the file unless
 * dir_blob_upload_finish() linked it.
 */
int dir_blob_upload_begin(struct dir_blobs *b, uint64_t length,
    struct dir_blob_upload **out, struct err_ctx *e);
/*
 * Appends len bytes: hashed, written to the file through the upload's
 * buffer (a whole buffer at a time, so a failed write may show only at
 * a later call or at the finish), the first STREAM_HEADER_LEN checked
 * with stream_header_parse().  0, or the first error (ERR_FORMAT for a
 * bad header, ERR_TOO_LARGE past the announced length, ERR_IO), which
 * the upload keeps: later writes and the finish return it again.  A
 * dir_sink_fn (arg is the upload).
 */
int dir_blob_upload_write(void *arg, const uint8_t *p, size_t len);
/*
 * Records the blob hash whose file is in place (the store's blob_put):
 * 0, or an error with e set.  Runs under the blob directory's lock.
 */
typedef int (*dir_blob_commit_fn)(void *arg, const char *hash,
    struct err_ctx *e);

/*
 * Ends an upload whose every byte arrived: the rest of the buffer is
 * written and the file synced; then, under the blob directory's lock,
 * linked under its hash name (left as it is when that name exists: same
 * hash, same bytes) and commit (may be NULL) called with arg, so that
 * expiry and the sweep never remove the file between the two; the
 * temporary name is removed.  When commit fails, its error is returned
 * and a file this call linked is removed again.  hash gets the 64 hex
 * digits; *created (may be NULL) is 1 when this call made the file, 0
 * when it existed.  ERR_TRUNCATED when fewer bytes than announced
 * arrived, the error kept by a write, or ERR_IO.
 */
int dir_blob_upload_finish(struct dir_blob_upload *u,
    char hash[DIR_BLOB_HASH_HEX + 1], dir_blob_commit_fn commit, void *arg,
    int *created, struct err_ctx *e);
/* Bytes accepted so far (all in the file once finished). */
uint64_t dir_blob_upload_size(const struct dir_blob_upload *u);
/* The error that a write kept (0: none) and its message. */
int dir_blob_upload_error(const struct dir_blob_upload *u,
    const struct err_ctx **e);
/* Closes the upload, removing its temporary file; NULL is fine. */
void dir_blob_upload_free(struct dir_blob_upload *u);
/* dir_blob_upload_free for a request state's free function. */
void dir_blob_upload_free_state(void *u);

/*
 * Opens the file of hash for reading: *fd (the caller closes it) and its
 * size in *size.  ERR_NOT_FOUND when there is none, ERR_IO otherwise.
 */
int dir_blob_open(struct dir_blobs *b, const char *hash, int *fd,
    uint64_t *size, struct err_ctx *e);

/*
 * One round of expiry (docs/protocol.md section 8.4), under the blob
 * directory's lock: the store's blob_expire at now with
 * DIR_BLOB_UNLINKED_S, the files of the blobs it removed deleted, at
 * most DIR_BLOB_EXPIRE_BATCH of them.  *removed (may be NULL) gets
 * their number.
 */
int dir_blobs_expire(struct dir_blobs *b, struct dir_store *s, uint64_t now,
    uint64_t *removed, struct err_ctx *e);

/*
 * The start-up sweep: removes temporary files and hash-named files the
 * store keeps no row for (blob_exists), each only once it was last
 * written more than grace_s seconds ago (0 for a directory only this
 * process uses; longer when other processes may be uploading into the
 * same one).  Files with other names are left alone.  *removed (may be
 * NULL) gets the number of files removed.
 */
int dir_blobs_sweep(struct dir_blobs *b, struct dir_store *s,
    uint64_t grace_s, uint64_t *removed, struct err_ctx *e);

#endif /* DEVID_DIR_BLOB_H */
