/*
 * msg-blob.h - attachments (docs/protocol.md section 8): a file sent as a
 * blob, encrypted (stream.h) as it is read and uploaded as it is
 * encrypted; a blob downloaded, hashed and decrypted as it arrives into a
 * file that appears under its final name only once every check passed.
 * Memory does not depend on the file's size.
 *
 * Pending attachments.  devid-agent opens a message once (its replay
 * store refuses it later), so a message whose attachments could not be
 * fetched yet (the directory unreachable, the disk full) must keep their
 * references -- keys included -- on this device until they are: one file
 * per inbox entry under the data directory's "pending/" (mode 0600 in a
 * 0700 directory), written durably before the first download and removed
 * once every attachment of the entry was saved or finally refused.
 */
#ifndef DEVID_MSG_BLOB_H
#define DEVID_MSG_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dirclient.h"
#include "envelope.h"
#include "errors.h"

/* Attempts of one transfer cut by the network before giving up. */
#define MSG_BLOB_TRIES 3

/* How a transfer reports itself. */
struct msg_blob_opts {
	int progress;                /* a progress bar on standard error
	                              * (only when it is a terminal) */
	const char *label;           /* what the bar names (a file name) */
};

/*
 * Sends the file at path as a blob through d (which holds a session):
 * checks its size against max_blob (from dirc_info; 0: no check), draws
 * a fresh key, encrypts with stream.h as it uploads, and checks that the
 * hash the directory answered is the one computed here.  An upload cut
 * by the network is started again (new salt), up to MSG_BLOB_TRIES
 * times.  The file must not change while it is read (ERR_IO otherwise).
 * On success ref is filled: hash, size, key, type (the given one or
 * "application/octet-stream"), name (the file's base name, which must
 * pass msg_file_name_safe()); clear it with msg_blob_ref_clear().
 * Errors: ERR_IO (the file), ERR_TOO_LARGE (over max_blob, or the
 * directory's 413), ERR_QUOTA, ERR_NETWORK, ERR_DENIED, ERR_INVALID_ARG
 * (a name that cannot be sent), each with a sentence saying what to do.
 */
int msg_blob_send(struct dirc *d, const char *path, const char *type,
    uint64_t max_blob, const struct msg_blob_opts *o, struct env_blob_ref *ref,
    struct err_ctx *e);

/*
 * Receives ref into the directory dir: downloads the blob (resuming with
 * a Range request where a cut left off, up to MSG_BLOB_TRIES times),
 * checks its hash, decrypts it into an unnamed file in dir (O_TMPFILE,
 * or a hidden temporary name where that is not supported), checks the
 * final segment and the size, fsyncs, and only then links it under
 * ref->name -- or "name (1)", "name (2)", ... when that exists -- never
 * replacing anything.  *path_out (caller frees) gets the path.  Nothing
 * is left in dir on failure.
 * Errors: ERR_DENIED (not addressed), ERR_GONE (expired at the
 * directory), ERR_DECRYPT / ERR_FORMAT / ERR_TRUNCATED (the blob does
 * not match the message: rejected for good), ERR_NETWORK (try later),
 * ERR_IO (the disk), ERR_EXISTS (100 numbered names taken).
 */
int msg_blob_recv(struct dirc *d, const struct env_blob_ref *ref,
    const char *dir, const struct msg_blob_opts *o, char **path_out,
    struct err_ctx *e);

/* Wipes the key and frees the strings of ref; NULL is fine. */
void msg_blob_ref_clear(struct env_blob_ref *ref);

/* Clears the n refs and frees the array; NULL is fine. */
void msg_blob_refs_free(struct env_blob_ref *refs, size_t n);

/*
 * Reads a JSON array of file references as the inner payload's "blobs"
 * has them (docs/protocol.md section 8.2: hash, size, key in base64url,
 * type, name; nothing else) -- the agent's open answer and the pending
 * store -- into *out (n refs, msg_blob_refs_free()).  Names must pass
 * msg_file_name_safe().  0, ERR_FORMAT (nothing kept) or ERR_ALLOC.
 */
int msg_blob_refs_from_json(const json_t *arr, struct env_blob_ref **out,
    size_t *n, struct err_ctx *e);

/* Wipes the "key" strings of such an array in place (before it is
 * freed); anything else in arr is left alone.  NULL is fine. */
void msg_blob_json_wipe_keys(json_t *arr);

/*
 * Pending attachments of the inbox entry qseq, under data_dir.  save
 * writes them durably (replacing an older file of the entry); load gives
 * ERR_NOT_FOUND when there is none (*out: n refs, caller clears each and
 * frees the array); drop removes the file (none is fine).
 */
int msg_pending_save(const char *data_dir, uint64_t qseq,
    const char *msg_id, const struct env_blob_ref *refs, size_t n,
    struct err_ctx *e);
int msg_pending_load(const char *data_dir, uint64_t qseq,
    struct env_blob_ref **out, size_t *n, struct err_ctx *e);
int msg_pending_drop(const char *data_dir, uint64_t qseq, struct err_ctx *e);

#endif /* DEVID_MSG_BLOB_H */
