/*
 * msg-blob.c - attachments (msg-blob.h): a file encrypted as it is read
 * and uploaded as it is encrypted; a blob hashed and decrypted as it is
 * downloaded into an unnamed file that gets its name only once every
 * check passed; the pending store that keeps the references of an inbox
 * entry until its files are saved.
 *
 * A download runs on two threads joined by a ring of RING_SLOTS
 * buffers: curl's thread hashes what arrives while a worker decrypts and
 * writes it.  An upload stays on curl's thread: the directory's work
 * (hashing and writing the blob) already runs beside it, and a second
 * thread here only took CPU time from it.
 *
 * Memory: sending, one read buffer and one output buffer of CHUNK bytes
 * (plus the stream's one segment); receiving, the ring (RING_SLOTS x
 * RING_SLOT bytes), one buffer of CHUNK bytes and the stream's segment;
 * whatever the file's size.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "codec.h"
#include "crypto.h"
#include "dirclient.h"
#include "envelope.h"
#include "errors.h"
#include "fileio.h"
#include "msg-blob.h"
#include "msg-progress.h"
#include "msg.h"
#include "paths.h"
#include "stream.h"

/* Bytes read from a file or written to one at a time. */
#define CHUNK ((size_t)256 * 1024)
/* Room for what one CHUNK of plaintext becomes (segments, tags, header). */
#define OUT_CAP (CHUNK + STREAM_SEGMENT_DEFAULT + 4096)
/* The ring between the two threads of a download: 2 MiB. */
#define RING_SLOTS 8
#define RING_SLOT ((size_t)256 * 1024)
/* Received bytes between two writeback requests (sink_flush()). */
#define WRITEBACK_STEP ((uint64_t)8 * 1024 * 1024)
#define TYPE_FILE "application/octet-stream"
#define PENDING_DIR "pending"
#define PENDING_MAX ((size_t)64 * 1024)
#define SIZE_MAX_53 ((uint64_t)1 << 53)

void
msg_blob_ref_clear(struct env_blob_ref *ref)
{
	if (ref == NULL)
		return;
	crypto_wipe(ref->key, sizeof(ref->key));
	free(ref->type);
	free(ref->name);
	memset(ref, 0, sizeof(*ref));
}

void
msg_blob_refs_free(struct env_blob_ref *refs, size_t n)
{
	size_t i;

	if (refs == NULL)
		return;
	for (i = 0; i < n; i++)
		msg_blob_ref_clear(&refs[i]);
	free(refs);
}

/* Progress of a transfer: dirclient counts a resumed download from the
 * blob's start and knows its size once the answer came (else total). */
struct progress_ctx {
	struct msg_progress *bar;
	uint64_t total;
};

static int
progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct progress_ctx *pc = arg;

	msg_progress_update(pc->bar, done, total != 0 ? total : pc->total);
	return 0;
}

/* --- a ring of buffers between two threads --- */

/*
 * RING_SLOTS buffers of RING_SLOT bytes that one thread (the producer)
 * fills and another (the consumer) empties, in order.  Each side works on
 * its own slot without the lock, which is taken only to hand a slot over:
 * the producer waits while every slot is full, the consumer while none
 * is.  ring_stop() ends both sides at once: every wait and hand-over then
 * returns its code (the first one given), so an error on either side, or
 * the end of the transfer, never leaves the other one waiting.
 */
struct ring {
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* a slot filled or emptied, close, stop */
	uint8_t *mem;           /* RING_SLOTS * RING_SLOT; NULL: no ring */
	size_t len[RING_SLOTS]; /* bytes in each filled slot */
	uint64_t filled;        /* slots handed to the consumer so far */
	uint64_t emptied;       /* slots it handed back */
	int closed;             /* the producer has no more */
	int stopped;            /* the stop code (< 0), 0 while running */
	uint8_t *w;             /* the producer's: the slot it fills */
	size_t w_len;
	int holding;            /* the consumer's: it holds slot emptied */
};

/* ring_next(): the producer closed the ring and every slot was taken. */
#define RING_END 1

/* Sets up g (zeroed by the caller).  0 or ERR_ALLOC. */
static int
ring_init(struct ring *g)
{
	if (pthread_mutex_init(&g->mu, NULL) != 0)
		return ERR_ALLOC;
	if (pthread_cond_init(&g->cv, NULL) != 0) {
		pthread_mutex_destroy(&g->mu);
		return ERR_ALLOC;
	}
	if ((g->mem = malloc(RING_SLOTS * RING_SLOT)) == NULL) {
		pthread_cond_destroy(&g->cv);
		pthread_mutex_destroy(&g->mu);
		return ERR_ALLOC;
	}
	return 0;
}

/* Frees what ring_init() made, wiping the slots; a zeroed g is fine.
 * No thread may use g any more. */
static void
ring_free(struct ring *g)
{
	if (g->mem == NULL)
		return;
	crypto_wipe(g->mem, RING_SLOTS * RING_SLOT);
	free(g->mem);
	g->mem = NULL;
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

/* Stops both sides with code (< 0); a later code is ignored. */
static void
ring_stop(struct ring *g, int code)
{
	pthread_mutex_lock(&g->mu);
	if (g->stopped == 0)
		g->stopped = code;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* The stop code, 0 while g runs. */
static int
ring_stopped(struct ring *g)
{
	int r;

	pthread_mutex_lock(&g->mu);
	r = g->stopped;
	pthread_mutex_unlock(&g->mu);
	return r;
}

/* Producer: hands the slot being filled to the consumer.  0 or the
 * stop code. */
static int
ring_publish(struct ring *g)
{
	int r;

	pthread_mutex_lock(&g->mu);
	if ((r = g->stopped) == 0) {
		g->len[g->filled % RING_SLOTS] = g->w_len;
		g->filled++;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
	g->w = NULL;
	g->w_len = 0;
	return r;
}

/* Producer: copies len bytes into the ring, waiting for free slots.  0
 * or the stop code (then some of the bytes may not have been taken). */
static int
ring_write(struct ring *g, const uint8_t *p, size_t len)
{
	size_t take;
	int r;

	while (len > 0) {
		if (g->w == NULL) {
			pthread_mutex_lock(&g->mu);
			while (g->filled - g->emptied == RING_SLOTS &&
			    g->stopped == 0)
				pthread_cond_wait(&g->cv, &g->mu);
			r = g->stopped;
			pthread_mutex_unlock(&g->mu);
			if (r != 0)
				return r;
			g->w = g->mem + (g->filled % RING_SLOTS) * RING_SLOT;
		}
		take = RING_SLOT - g->w_len < len ? RING_SLOT - g->w_len : len;
		memcpy(g->w + g->w_len, p, take);
		g->w_len += take;
		p += take;
		len -= take;
		if (g->w_len == RING_SLOT && (r = ring_publish(g)) != 0)
			return r;
	}
	return 0;
}

/* Producer: hands over the last, partly filled slot and ends the
 * stream.  0 or the stop code. */
static int
ring_close(struct ring *g)
{
	int r;

	if (g->w != NULL && g->w_len > 0 && (r = ring_publish(g)) != 0)
		return r;
	pthread_mutex_lock(&g->mu);
	g->closed = 1;
	r = g->stopped;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return r;
}

/*
 * Consumer: gives back the slot taken before (if any) and waits for the
 * next one: 0 and *p, *len (never 0 bytes; valid until the next call),
 * RING_END, or the stop code.
 */
static int
ring_next(struct ring *g, const uint8_t **p, size_t *len)
{
	size_t i;
	int r;

	pthread_mutex_lock(&g->mu);
	if (g->holding) {
		g->emptied++;
		g->holding = 0;
		pthread_cond_broadcast(&g->cv);
	}
	while (g->filled == g->emptied && !g->closed && g->stopped == 0)
		pthread_cond_wait(&g->cv, &g->mu);
	if ((r = g->stopped) == 0 && g->filled == g->emptied)
		r = RING_END;
	if (r == 0) {
		i = g->emptied % RING_SLOTS;
		*p = g->mem + i * RING_SLOT;
		*len = g->len[i];
		g->holding = 1;
	}
	pthread_mutex_unlock(&g->mu);
	return r;
}

/* Starts fn(arg) on a new thread. */
static int
thread_start(pthread_t *t, void *(*fn)(void *), void *arg,
    struct err_ctx *e)
{
	int rc;

	if ((rc = pthread_create(t, NULL, fn, arg)) != 0)
		return err_set(e, ERR_INTERNAL, "cannot start a thread for the "
		    "transfer: %s", strerror(rc));
	return 0;
}

/* --- sending --- */

/* The upload body: the file, encrypted as the directory asks for it. */
struct send_src {
	int fd;
	const char *path;
	uint64_t size;          /* plaintext bytes announced */
	uint64_t read_total;    /* plaintext bytes read so far */
	struct stream_enc *enc;
	EVP_MD_CTX *md;         /* SHA-256 of the ciphertext */
	uint8_t *in;            /* CHUNK */
	uint8_t *out;           /* OUT_CAP: ciphertext not handed out yet */
	size_t out_len, out_off;
	int finished;
};

/* stream_emit_fn: ciphertext into the output buffer, hashed on its way. */
static int
send_emit(void *arg, const uint8_t *p, size_t len)
{
	struct send_src *s = arg;

	if (len > OUT_CAP - s->out_len)
		return ERR_INTERNAL;    /* OUT_CAP is sized for a CHUNK */
	if (EVP_DigestUpdate(s->md, p, len) != 1)
		return ERR_CRYPTO;
	memcpy(s->out + s->out_len, p, len);
	s->out_len += len;
	return 0;
}

/* (Re)starts the body from the file's first byte, with a new salt. */
static int
send_restart(struct send_src *s, const uint8_t key[STREAM_KEY_LEN],
    struct err_ctx *e)
{
	stream_enc_free(s->enc);
	s->enc = NULL;
	s->read_total = 0;
	s->out_len = s->out_off = 0;
	s->finished = 0;
	if (lseek(s->fd, 0, SEEK_SET) != 0)
		return err_set(e, ERR_IO, "cannot read %s again from its "
		    "start: %s", s->path, strerror(errno));
	if (EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1)
		return err_set(e, ERR_CRYPTO, "SHA-256 init failed");
	return stream_enc_new(key, STREAM_SEGMENT_DEFAULT, send_emit, s,
	    &s->enc, e);
}

/* Reads up to len bytes; a short count only at the end of the file. */
static int
read_full(int fd, uint8_t *p, size_t len, size_t *got)
{
	ssize_t n;

	*got = 0;
	while (*got < len) {
		n = read(fd, p + *got, len - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

static int
changed(const struct send_src *s, struct err_ctx *e)
{
	return err_set(e, ERR_IO, "%s changed while it was being sent (it "
	    "is no longer %llu bytes): send it again once it is complete",
	    s->path, (unsigned long long)s->size);
}

/* Fills the output buffer with the next ciphertext. */
static int
send_fill(struct send_src *s, struct err_ctx *e)
{
	uint64_t left = s->size - s->read_total;
	size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
	uint8_t extra;
	int r;

	s->out_len = s->out_off = 0;
	if (want > 0) {
		if (read_full(s->fd, s->in, want, &got) != 0)
			return err_set(e, ERR_IO, "reading %s: %s", s->path,
			    strerror(errno));
		if (got < want)
			return changed(s, e);
		s->read_total += got;
		/* The buffers are wiped once, when freed: the plaintext
		 * is the user's file, and wiping each chunk halves the
		 * rate. */
		if ((r = stream_enc_update(s->enc, s->in, got, e)) != 0)
			return r;
		if (s->read_total < s->size)
			return 0;
	}
	/* All announced bytes are in: the file must end here. */
	if (read_full(s->fd, &extra, 1, &got) != 0)
		return err_set(e, ERR_IO, "reading %s: %s", s->path,
		    strerror(errno));
	if (got != 0)
		return changed(s, e);
	if ((r = stream_enc_finish(s->enc, e)) != 0)
		return r;
	s->finished = 1;
	return 0;
}

/* dirc_read_fn. */
static int
send_read(void *arg, uint8_t *buf, size_t max, size_t *n, struct err_ctx *e)
{
	struct send_src *s = arg;
	size_t take;
	int r;

	*n = 0;
	while (s->out_off == s->out_len && !s->finished)
		if ((r = send_fill(s, e)) != 0)
			return r;
	take = s->out_len - s->out_off;
	if (take > max)
		take = max;
	memcpy(buf, s->out + s->out_off, take);
	s->out_off += take;
	*n = take;
	return 0;
}

/* 1 when t may be a payload's media type (envelope.h's rule). */
static int
type_ok(const char *t)
{
	size_t i;

	for (i = 0; t[i] != '\0'; i++)
		if (t[i] < 0x20 || t[i] > 0x7e || i >= ENV_PAYLOAD_TYPE_MAX)
			return 0;
	return i > 0;
}

/* The file's base name, which must be sendable, into a new string. */
static int
send_name(const char *path, char **out, struct err_ctx *e)
{
	const char *base;
	size_t len = strlen(path);
	char *copy;

	/* Trailing slashes name no file: the name is the last component. */
	while (len > 1 && path[len - 1] == '/')
		len--;
	if ((copy = strndup(path, len)) == NULL)
		return ERR_ALLOC;
	base = strrchr(copy, '/');
	base = base != NULL ? base + 1 : copy;
	if (!msg_file_name_safe(base)) {
		err_set(e, ERR_INVALID_ARG, "the file name '%.60s' cannot be "
		    "sent as it is (control characters, a leading '.' or '-', "
		    "more than 255 bytes): rename the file", base);
		free(copy);
		return ERR_INVALID_ARG;
	}
	memmove(copy, base, strlen(base) + 1);
	*out = copy;
	return 0;
}

/* Opens path, which must be a regular file of at most max_blob bytes. */
static int
send_open(const char *path, uint64_t max_blob, int *fd_out, uint64_t *size,
    struct err_ctx *e)
{
	char have[32], lim[32];
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return err_set(e, ERR_IO, "cannot open %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ERR_IO, "%s is not a regular file: only "
		    "files can be sent", path);
	}
	if (max_blob != 0 && (uint64_t)st.st_size > max_blob) {
		close(fd);
		msg_progress_bytes((uint64_t)st.st_size, have, sizeof(have));
		msg_progress_bytes(max_blob, lim, sizeof(lim));
		return err_set(e, ERR_TOO_LARGE, "%s is %s; this directory "
		    "takes files up to %s", path, have, lim);
	}
	if ((uint64_t)st.st_size > SIZE_MAX_53) {
		close(fd);
		return err_set(e, ERR_TOO_LARGE, "%s is too large to send",
		    path);
	}
	*fd_out = fd;
	*size = (uint64_t)st.st_size;
	return 0;
}

int
msg_blob_send(struct dirc *d, const char *path, const char *type,
    uint64_t max_blob, const struct msg_blob_opts *o, struct env_blob_ref *ref,
    struct err_ctx *e)
{
	struct send_src s;
	struct progress_ctx pc;
	struct dirc_blob_info info;
	struct err_ctx try_e;
	uint8_t key[STREAM_KEY_LEN], digest[32];
	char hex[65], *name = NULL, *type_copy = NULL;
	unsigned int digest_len = 0;
	uint64_t ct_len;
	int tries, r = ERR_INTERNAL;

	return_val_if_fail(d != NULL && path != NULL && ref != NULL,
	    ERR_INVALID_ARG);
	memset(&s, 0, sizeof(s));
	memset(&pc, 0, sizeof(pc));
	s.fd = -1;
	s.path = path;
	memset(ref, 0, sizeof(*ref));
	if ((r = send_name(path, &name, e)) != 0 ||
	    (r = send_open(path, max_blob, &s.fd, &s.size, e)) != 0)
		goto out;
	if ((ct_len = stream_ciphertext_len(s.size,
	    STREAM_SEGMENT_DEFAULT)) == 0) {
		r = err_set(e, ERR_TOO_LARGE, "%s is too large to send", path);
		goto out;
	}
	if (type != NULL && !type_ok(type)) {
		r = err_set(e, ERR_INVALID_ARG, "the media type '%.60s' cannot "
		    "be sent: 1 to %d printable ASCII characters, such as "
		    "image/png", type, ENV_PAYLOAD_TYPE_MAX);
		goto out;
	}
	if ((type_copy = strdup(type != NULL ? type : TYPE_FILE)) == NULL ||
	    (s.in = malloc(CHUNK)) == NULL ||
	    (s.out = malloc(OUT_CAP)) == NULL ||
	    (s.md = EVP_MD_CTX_new()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (crypto_random(key, sizeof(key)) != 0) {
		r = err_set(e, ERR_CRYPTO, "no random bytes for the file key");
		goto out;
	}
	pc.bar = msg_progress_new(o != NULL && o->label != NULL ? o->label :
	    name, o != NULL && o->progress);
	pc.total = ct_len;
	for (tries = 1;; tries++) {
		err_clear(&try_e);
		memset(&info, 0, sizeof(info));
		if ((r = send_restart(&s, key, &try_e)) == 0)
			r = dirc_blob_upload(d, ct_len, send_read, &s,
			    progress_cb, &pc, &info, &try_e);
		if ((r != ERR_NETWORK && r != ERR_TIMEOUT) ||
		    tries >= MSG_BLOB_TRIES)
			break;
	}
	msg_progress_end(pc.bar);
	if (r != 0) {
		if (r == ERR_NETWORK || r == ERR_TIMEOUT)
			r = err_set(e, ERR_NETWORK, "uploading %s failed %d "
			    "times (%s): try again later", path, tries,
			    err_msg(&try_e));
		else
			r = err_set(e, r, "uploading %s: %s", path,
			    err_msg(&try_e));
		goto out;
	}
	if (!s.finished || s.read_total != s.size) {
		r = err_set(e, ERR_INTERNAL, "the upload of %s ended early",
		    path);
		goto out;
	}
	if (EVP_DigestFinal_ex(s.md, digest, &digest_len) != 1 ||
	    digest_len != sizeof(digest)) {
		r = err_set(e, ERR_CRYPTO, "SHA-256 failed");
		goto out;
	}
	hex_encode(digest, sizeof(digest), hex);
	if (strcmp(hex, info.hash) != 0 || info.size != ct_len) {
		r = err_set(e, ERR_FORMAT, "the directory answered another "
		    "hash or size for %s than was sent: not sending it", path);
		goto out;
	}
	memcpy(ref->hash, hex, sizeof(ref->hash));
	ref->size = s.size;
	memcpy(ref->key, key, sizeof(key));
	ref->type = type_copy;
	type_copy = NULL;       /* transferred */
	ref->name = name;
	name = NULL;            /* transferred */
	r = 0;
 out:
	crypto_wipe(key, sizeof(key));
	msg_progress_free(pc.bar);
	stream_enc_free(s.enc);
	EVP_MD_CTX_free(s.md);
	if (s.out != NULL) {
		crypto_wipe(s.out, OUT_CAP);
		free(s.out);
	}
	if (s.in != NULL) {
		crypto_wipe(s.in, CHUNK);
		free(s.in);
	}
	if (s.fd >= 0)
		close(s.fd);
	free(type_copy);
	free(name);
	return r;
}

/* --- receiving --- */

/*
 * Where a download goes.  curl's thread checks its length, hashes it and
 * copies it into the ring (sink_write); a worker thread decrypts it and
 * writes the plaintext to the file in CHUNKs (recv_work, sink_emit).  The
 * worker and the decryptor live across the attempts of a resumed
 * download; once the worker is joined, curl's thread ends the decryptor
 * and checks the file (recv_verify).
 */
struct recv_sink {
	const struct env_blob_ref *ref;
	struct ring ring;
	/* curl's thread */
	EVP_MD_CTX *md;
	uint64_t ct_len;        /* the most bytes the blob can have */
	uint64_t received;      /* ciphertext bytes taken */
	int failed;             /* the error in e came from this sink */
	struct err_ctx e;
	/* The worker's: curl's thread uses them once it was joined, and we
	 * also once the worker stopped the ring (it was set before). */
	int fd;
	struct stream_dec *dec;
	uint64_t written;       /* plaintext bytes released */
	uint8_t *wbuf;          /* CHUNK */
	size_t wlen;
	uint64_t file_len;      /* bytes written to the file */
	uint64_t synced;        /* of those, handed to writeback */
	struct err_ctx we;      /* the error of decrypting or writing */
	pthread_t worker;
	int running;
};

/*
 * Writes the buffered plaintext to the file.  Every WRITEBACK_STEP bytes
 * the kernel is asked to start writing them to the disk, so that the
 * fsync at the end finds little left to do (a hint: its failure is
 * ignored, the fsync decides).
 */
static int
sink_flush(struct recv_sink *k)
{
	int err;

	if (k->wlen == 0)
		return 0;
	if ((err = fileio_write_all(k->fd, k->wbuf, k->wlen)) != 0)
		return err_set(&k->we, ERR_IO, "writing the received file: %s",
		    strerror(err));
	k->file_len += k->wlen;
	k->wlen = 0;            /* wiped once, when freed */
	if (k->file_len - k->synced >= WRITEBACK_STEP) {
		(void)sync_file_range(k->fd, (off_t)k->synced,
		    (off_t)(k->file_len - k->synced), SYNC_FILE_RANGE_WRITE);
		k->synced = k->file_len;
	}
	return 0;
}

/* stream_emit_fn: authenticated plaintext into the file. */
static int
sink_emit(void *arg, const uint8_t *p, size_t len)
{
	struct recv_sink *k = arg;
	size_t take;
	int r;

	if (len > k->ref->size - k->written)
		return err_set(&k->we, ERR_DECRYPT, "the file is longer than "
		    "the message says");
	k->written += len;
	while (len > 0) {
		take = CHUNK - k->wlen < len ? CHUNK - k->wlen : len;
		memcpy(k->wbuf + k->wlen, p, take);
		k->wlen += take;
		p += take;
		len -= take;
		if (k->wlen == CHUNK && (r = sink_flush(k)) != 0)
			return r;
	}
	return 0;
}

/* The worker: decrypts the ring into the file until it is closed, or
 * stops it with the error (in k->we). */
static void *
recv_work(void *arg)
{
	struct recv_sink *k = arg;
	const uint8_t *p;
	size_t len;
	int r;

	while (ring_next(&k->ring, &p, &len) == 0)
		if ((r = stream_dec_update(k->dec, p, len, &k->we)) != 0) {
			ring_stop(&k->ring, r);
			break;
		}
	return NULL;
}

/*
 * Whether the worker failed (it stopped the ring): 0, or its code, with
 * its message now in k->e as this sink's error.  Only the worker stops
 * the ring while the download runs.
 */
static int
sink_check(struct recv_sink *k)
{
	int r;

	if ((r = ring_stopped(&k->ring)) == 0)
		return 0;
	k->failed = 1;
	return err_set(&k->e, r, "%s", err_msg(&k->we));
}

/* dirc_write_fn (curl's thread): ciphertext from the directory. */
static int
sink_write(void *arg, const uint8_t *p, size_t len)
{
	struct recv_sink *k = arg;

	if (len > k->ct_len - k->received) {
		k->failed = 1;
		return err_set(&k->e, ERR_DECRYPT, "the directory served more "
		    "bytes than the message's file has");
	}
	if (EVP_DigestUpdate(k->md, p, len) != 1) {
		k->failed = 1;
		return err_set(&k->e, ERR_CRYPTO, "SHA-256 failed");
	}
	if (ring_write(&k->ring, p, len) != 0)
		return sink_check(k);
	k->received += len;
	return 0;
}

/* Ends the worker, when it runs: with drain, once it took everything
 * (then 0 or sink_check()'s error); else at once. */
static int
recv_join(struct recv_sink *k, int drain)
{
	if (!k->running)
		return 0;
	if (drain)
		(void)ring_close(&k->ring);
	else
		ring_stop(&k->ring, ERR_INTERNAL);
	pthread_join(k->worker, NULL);
	k->running = 0;
	return drain ? sink_check(k) : 0;
}

/* An output file: unnamed (O_TMPFILE) or under a hidden name. */
struct out_file {
	int fd;
	char *tmp_path;         /* the hidden name, NULL for O_TMPFILE */
};

static int
out_open(const char *dir, struct out_file *of, struct err_ctx *e)
{
	of->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (of->fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return err_set(e, ERR_IO, "cannot write into %s: %s", dir,
		    strerror(errno));
	/* No O_TMPFILE here: a hidden name, removed on every failure. */
	if (asprintf(&of->tmp_path, "%s/.devid-XXXXXX", dir) < 0) {
		of->tmp_path = NULL;
		return ERR_ALLOC;
	}
	if ((of->fd = mkostemp(of->tmp_path, O_CLOEXEC)) < 0) {
		free(of->tmp_path);
		of->tmp_path = NULL;
		return err_set(e, ERR_IO, "cannot write into %s: %s", dir,
		    strerror(errno));
	}
	return 0;
}

/* Removes what out_open() made (nothing is left of it). */
static void
out_discard(struct out_file *of)
{
	if (of->fd >= 0)
		close(of->fd);
	of->fd = -1;
	if (of->tmp_path != NULL)
		(void)unlink(of->tmp_path);
	free(of->tmp_path);
	of->tmp_path = NULL;
}

/* msg_file_create_fn: links the finished file under path, never over
 * anything (link(2) fails with EEXIST, also for a symbolic link). */
static int
out_link(void *arg, const char *path, struct err_ctx *e)
{
	const struct out_file *of = arg;
	char proc[64];
	int rc;

	if (of->tmp_path != NULL)
		rc = link(of->tmp_path, path);
	else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", of->fd);
		rc = linkat(AT_FDCWD, proc, AT_FDCWD, path,
		    AT_SYMLINK_FOLLOW);
		if (rc != 0 && errno == ENOENT)
			rc = linkat(of->fd, "", AT_FDCWD, path, AT_EMPTY_PATH);
	}
	if (rc == 0)
		return 0;
	if (errno == EEXIST)
		return ERR_EXISTS;
	return err_set(e, ERR_IO, "cannot create %s: %s", path,
	    strerror(errno));
}

static int
fsync_dir(const char *dir, struct err_ctx *e)
{
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return err_set(e, ERR_IO, "cannot open %s: %s", dir,
		    strerror(errno));
	rc = fsync(fd);
	close(fd);
	if (rc != 0 && errno != EINVAL)
		return err_set(e, ERR_IO, "cannot sync %s: %s", dir,
		    strerror(errno));
	return 0;
}

/* The error of a failed sink (k->failed) for the caller. */
static int
sink_error(const struct recv_sink *k, struct err_ctx *e)
{
	int r = k->e.code;

	if (r == ERR_DECRYPT || r == ERR_FORMAT || r == ERR_TRUNCATED)
		return err_set(e, r, "the directory served a blob that does "
		    "not match the message ('%s': %s)", k->ref->name,
		    err_msg(&k->e));
	return err_set(e, r, "%s", err_msg(&k->e));
}

/*
 * Downloads into k, resuming after a cut; a cut that moved nothing
 * counts as one of MSG_BLOB_TRIES attempts.
 */
static int
recv_download(struct dirc *d, struct recv_sink *k, struct progress_ctx *pc,
    struct err_ctx *e)
{
	struct err_ctx try_e;
	uint64_t before;
	int tries = 0, r;

	for (;;) {
		err_clear(&try_e);
		before = k->received;
		r = dirc_blob_download(d, k->ref->hash, k->received,
		    sink_write, k, progress_cb, pc, NULL, &try_e);
		/* The worker may have failed since it last took bytes. */
		if (r != 0 && !k->failed)
			(void)sink_check(k);
		if (r != 0 && k->failed)
			return sink_error(k, e);
		if (r != ERR_NETWORK && r != ERR_TIMEOUT)
			break;
		if (k->received == before)
			tries++;
		if (tries >= MSG_BLOB_TRIES)
			return err_set(e, ERR_NETWORK, "downloading '%s' "
			    "failed %d times (%s)", k->ref->name, tries,
			    err_msg(&try_e));
	}
	if (r == ERR_DENIED)
		return err_set(e, r, "the directory refuses '%s' to this "
		    "device (%s)", k->ref->name, err_msg(&try_e));
	if (r == ERR_GONE)
		return err_set(e, r, "'%s' expired on the directory",
		    k->ref->name);
	if (r == ERR_FORMAT || r == ERR_TOO_LARGE)
		return err_set(e, ERR_FORMAT, "the directory's answer for "
		    "'%s' is malformed (%s)", k->ref->name, err_msg(&try_e));
	if (r != 0)
		return err_set(e, r, "downloading '%s': %s", k->ref->name,
		    err_msg(&try_e));
	return 0;
}

/* Checks everything downloaded into k and flushes the file (once the
 * worker was joined). */
static int
recv_verify(struct recv_sink *k, struct err_ctx *e)
{
	uint8_t digest[32], want[32];
	unsigned int digest_len = 0;
	struct err_ctx fe;
	int r;

	if (EVP_DigestFinal_ex(k->md, digest, &digest_len) != 1 ||
	    digest_len != sizeof(digest))
		return err_set(e, ERR_CRYPTO, "SHA-256 failed");
	if (hex_decode(k->ref->hash, 64, want, sizeof(want)) != 0 ||
	    crypto_memeq_ct(digest, want, sizeof(want)) != 0)
		return err_set(e, ERR_DECRYPT, "the directory served a blob "
		    "that does not match the message ('%s')", k->ref->name);
	err_clear(&fe);
	if ((r = stream_dec_finish(k->dec, &fe)) != 0) {
		if (k->we.code != 0)    /* writing the last segment */
			return err_set(e, r, "%s", err_msg(&k->we));
		return err_set(e, r, "'%s' does not open with the message's "
		    "key (%s)", k->ref->name, err_msg(&fe));
	}
	if (k->written != k->ref->size)
		return err_set(e, ERR_DECRYPT, "'%s' has %llu bytes, the "
		    "message says %llu", k->ref->name,
		    (unsigned long long)k->written,
		    (unsigned long long)k->ref->size);
	if ((r = sink_flush(k)) != 0)
		return err_set(e, r, "%s", err_msg(&k->we));
	if (fsync(k->fd) != 0)
		return err_set(e, ERR_IO, "cannot sync the received file: %s",
		    strerror(errno));
	return 0;
}

int
msg_blob_recv(struct dirc *d, const struct env_blob_ref *ref,
    const char *dir, const struct msg_blob_opts *o, char **path_out,
    struct err_ctx *e)
{
	struct recv_sink k;
	struct out_file of = { -1, NULL };
	struct progress_ctx pc;
	char *path = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(d != NULL && ref != NULL && dir != NULL &&
	    path_out != NULL, ERR_INVALID_ARG);
	memset(&k, 0, sizeof(k));
	memset(&pc, 0, sizeof(pc));
	err_clear(&k.e);
	k.ref = ref;
	if (!msg_file_name_safe(ref->name))
		return err_set(e, ERR_FORMAT, "refusing the file name in the "
		    "message");
	/* Any segment length is valid (8.1): bound the blob by the
	 * smallest one, show progress against devid's own. */
	if (ref->size > SIZE_MAX_53 || (k.ct_len = stream_ciphertext_len(
	    ref->size, STREAM_SEGMENT_MIN)) == 0)
		return err_set(e, ERR_FORMAT, "the message names a file of "
		    "an impossible size");
	if ((k.wbuf = malloc(CHUNK)) == NULL ||
	    (k.md = EVP_MD_CTX_new()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (EVP_DigestInit_ex(k.md, EVP_sha256(), NULL) != 1) {
		r = err_set(e, ERR_CRYPTO, "SHA-256 init failed");
		goto out;
	}
	if ((r = ring_init(&k.ring)) != 0 ||
	    (r = stream_dec_new(ref->key, sink_emit, &k, &k.dec, e)) != 0 ||
	    (r = out_open(dir, &of, e)) != 0)
		goto out;
	k.fd = of.fd;
	if ((r = thread_start(&k.worker, recv_work, &k, e)) != 0)
		goto out;
	k.running = 1;
	pc.total = stream_ciphertext_len(ref->size, STREAM_SEGMENT_DEFAULT);
	pc.bar = msg_progress_new(o != NULL && o->label != NULL ? o->label :
	    ref->name, o != NULL && o->progress);
	r = recv_download(d, &k, &pc, e);
	msg_progress_end(pc.bar);
	if (r != 0)
		goto out;
	if (recv_join(&k, 1) != 0) {
		r = sink_error(&k, e);
		goto out;
	}
	if ((r = recv_verify(&k, e)) != 0 ||
	    (r = msg_file_create_numbered(dir, ref->name, out_link, &of,
	    &path, e)) != 0)
		goto out;
	if (of.tmp_path != NULL) {
		(void)unlink(of.tmp_path);
		free(of.tmp_path);
		of.tmp_path = NULL;
	}
	if ((r = fsync_dir(dir, e)) != 0) {
		/* Not durably there: take it back rather than leave it. */
		(void)unlink(path);
		goto out;
	}
	*path_out = path;
	path = NULL;    /* transferred */
	r = 0;
 out:
	(void)recv_join(&k, 0);
	out_discard(&of);
	msg_progress_free(pc.bar);
	stream_dec_free(k.dec);
	EVP_MD_CTX_free(k.md);
	ring_free(&k.ring);
	if (k.wbuf != NULL) {
		crypto_wipe(k.wbuf, CHUNK);
		free(k.wbuf);
	}
	free(path);
	return r;
}

/* --- references as JSON (the agent's answer, the pending store) --- */

static int
ref_from_json(const json_t *o, struct env_blob_ref *ref, struct err_ctx *e)
{
	const char *hash, *key, *type, *name;
	const json_t *size;
	size_t i;

	hash = json_string_value(json_object_get(o, "hash"));
	key = json_string_value(json_object_get(o, "key"));
	type = json_string_value(json_object_get(o, "type"));
	name = json_string_value(json_object_get(o, "name"));
	size = json_object_get(o, "size");
	if (!json_is_object(o) || json_object_size(o) != 5 || hash == NULL ||
	    key == NULL || type == NULL || name == NULL ||
	    !json_is_integer(size))
		return err_set(e, ERR_FORMAT, "a file reference lacks a "
		    "member or has another");
	if (strlen(hash) != 64)
		return err_set(e, ERR_FORMAT, "a file reference has a bad "
		    "hash");
	for (i = 0; i < 64; i++)
		if (!((hash[i] >= '0' && hash[i] <= '9') ||
		    (hash[i] >= 'a' && hash[i] <= 'f')))
			return err_set(e, ERR_FORMAT, "a file reference has a "
			    "bad hash");
	if (json_integer_value(size) < 0 ||
	    (uint64_t)json_integer_value(size) > SIZE_MAX_53)
		return err_set(e, ERR_FORMAT, "a file reference has a bad "
		    "size");
	if (b64url_decode_exact(key, strlen(key), ref->key,
	    sizeof(ref->key)) != 0)
		return err_set(e, ERR_FORMAT, "a file reference has a bad "
		    "key");
	if (!type_ok(type) || !msg_file_name_safe(name))
		return err_set(e, ERR_FORMAT, "a file reference has a bad "
		    "type or name");
	memcpy(ref->hash, hash, 65);
	ref->size = (uint64_t)json_integer_value(size);
	if ((ref->type = strdup(type)) == NULL ||
	    (ref->name = strdup(name)) == NULL)
		return ERR_ALLOC;
	return 0;
}

int
msg_blob_refs_from_json(const json_t *arr, struct env_blob_ref **out,
    size_t *n, struct err_ctx *e)
{
	struct env_blob_ref *refs;
	size_t i, j, count;
	int r;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr) || (count = json_array_size(arr)) == 0 ||
	    count > ENV_PAYLOAD_BLOBS_MAX)
		return err_set(e, ERR_FORMAT, "the list of files is not 1 to "
		    "%d references", ENV_PAYLOAD_BLOBS_MAX);
	if ((refs = calloc(count, sizeof(*refs))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < count; i++) {
		if ((r = ref_from_json(json_array_get(arr, i), &refs[i],
		    e)) != 0) {
			msg_blob_refs_free(refs, count);
			return r;
		}
		for (j = 0; j < i; j++)
			if (strcmp(refs[j].hash, refs[i].hash) == 0) {
				msg_blob_refs_free(refs, count);
				return err_set(e, ERR_FORMAT, "the list of "
				    "files names one twice");
			}
	}
	*out = refs;
	*n = count;
	return 0;
}

void
msg_blob_json_wipe_keys(json_t *arr)
{
	const char *k;
	json_t *o;
	size_t i;

	json_array_foreach(arr, i, o) {
		if ((k = json_string_value(json_object_get(o, "key"))) != NULL)
			crypto_wipe((void *)(uintptr_t)k, strlen(k));
	}
}

/* --- the pending store --- */

/* The pending file of qseq in *out (caller frees); with make_dir the
 * pending directory is created (0700) or checked first. */
static int
pending_path(const char *data_dir, uint64_t qseq, int make_dir, char **out,
    struct err_ctx *e)
{
	char *dir = NULL;
	int r;

	if (asprintf(&dir, "%s/%s", data_dir, PENDING_DIR) < 0)
		return ERR_ALLOC;
	if (make_dir && (r = path_private_dir(dir, e)) != 0) {
		free(dir);
		return r;
	}
	if (asprintf(out, "%s/%llu.json", dir, (unsigned long long)qseq) < 0) {
		*out = NULL;
		free(dir);
		return ERR_ALLOC;
	}
	free(dir);
	return 0;
}

int
msg_pending_save(const char *data_dir, uint64_t qseq, const char *msg_id,
    const struct env_blob_ref *refs, size_t n, struct err_ctx *e)
{
	json_t *o = NULL, *arr = NULL, *ref;
	char *path = NULL, *text = NULL, *key = NULL;
	size_t i;
	int r = ERR_INTERNAL;

	return_val_if_fail(data_dir != NULL && refs != NULL && n > 0 &&
	    n <= ENV_PAYLOAD_BLOBS_MAX, ERR_INVALID_ARG);
	if ((o = json_object()) == NULL || (arr = json_array()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = b64url_encode(refs[i].key, sizeof(refs[i].key),
		    &key)) != 0)
			goto out;
		ref = json_pack("{s:s, s:I, s:s, s:s, s:s}", "hash",
		    refs[i].hash, "size", (json_int_t)refs[i].size, "key", key,
		    "type", refs[i].type, "name", refs[i].name);
		crypto_wipe(key, strlen(key));
		free(key);
		key = NULL;
		if (ref == NULL || json_array_append_new(arr, ref) != 0) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	if (json_object_set_new(o, "inbox_seq",
	    json_integer((json_int_t)qseq)) != 0 ||
	    json_object_set_new(o, "msg_id", json_string(msg_id != NULL ?
	    msg_id : "")) != 0 ||
	    json_object_set(o, "blobs", arr) != 0 ||
	    (text = json_dumps(o, JSON_COMPACT)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = pending_path(data_dir, qseq, 1, &path, e)) != 0 ||
	    (r = fileio_write_atomic(path, text, strlen(text), 0600, e)) != 0)
		goto out;
	r = 0;
 out:
	if (text != NULL) {
		crypto_wipe(text, strlen(text));
		free(text);
	}
	if (arr != NULL)
		msg_blob_json_wipe_keys(arr);
	json_decref(arr);
	json_decref(o);
	free(path);
	return r;
}

int
msg_pending_load(const char *data_dir, uint64_t qseq,
    struct env_blob_ref **out, size_t *n, struct err_ctx *e)
{
	json_t *o = NULL, *arr;
	json_error_t jerr;
	char *path = NULL, *text = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = pending_path(data_dir, qseq, 0, &path, e)) != 0)
		return r;
	if ((r = fileio_read(path, PENDING_MAX, FILEIO_SECRET |
	    FILEIO_PRIVATE, &text, &len, e)) != 0)
		goto out;
	if ((o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL || !json_is_object(o) || json_object_size(o) != 3 ||
	    !json_is_integer(json_object_get(o, "inbox_seq")) ||
	    (uint64_t)json_integer_value(json_object_get(o, "inbox_seq")) !=
	    qseq || !json_is_string(json_object_get(o, "msg_id"))) {
		r = err_set(e, ERR_FORMAT, "%s is damaged: remove it (its "
		    "files cannot be fetched any more)", path);
		goto out;
	}
	arr = json_object_get(o, "blobs");
	if ((r = msg_blob_refs_from_json(arr, out, n, e)) != 0) {
		if (r == ERR_FORMAT)
			r = err_wrap(e, ERR_FORMAT, "%s is damaged: remove it "
			    "(its files cannot be fetched any more)", path);
		goto out;
	}
	r = 0;
 out:
	if (o != NULL)
		msg_blob_json_wipe_keys(json_object_get(o, "blobs"));
	json_decref(o);
	if (text != NULL) {
		crypto_wipe(text, len);
		free(text);
	}
	free(path);
	return r;
}

int
msg_pending_drop(const char *data_dir, uint64_t qseq, struct err_ctx *e)
{
	char *path = NULL;
	int r;

	if ((r = pending_path(data_dir, qseq, 0, &path, e)) != 0)
		return r;
	if (unlink(path) != 0 && errno != ENOENT) {
		r = err_set(e, ERR_IO, "cannot remove %s: %s", path,
		    strerror(errno));
		free(path);
		return r;
	}
	free(path);
	return 0;
}
