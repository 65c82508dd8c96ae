/*
 * test_msgblob.c - attachments in devid-msg (msgclient/msg-blob.h): the
 * pending store, the naming of received files, and files sent and
 * received through an in-process directory (dir-server + dir-api + the
 * SQLite store + a blob directory, what devid-directory runs): contents
 * come back identical at the sizes around segment boundaries, a blob
 * changed on the directory's disk, a wrong key or size is rejected and
 * leaves nothing in the output directory, an existing name is never
 * replaced, a device the message did not address is refused, and
 * transfers cut by the network (a proxy that closes connections) resume
 * (downloads) or start again (uploads), within MSG_BLOB_TRIES, and a disk
 * that refuses the received file half-way stops the download.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "dir-api.h"
#include "dir-auth.h"
#include "dir-blob.h"
#include "dir-key.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dir-test-util.h"
#include "dirclient.h"
#include "envelope.h"
#include "errors.h"
#include "fileio.h"
#include "msg-blob.h"
#include "msg.h"
#include "stream.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define PW "alice's password"
#define BOB_PW "bob's password!"

struct fx {
	struct tdir d;               /* with blobs */
	char in_dir[512];
	char out_dir[512];
	struct tdir_devs dev;        /* alice: a1, a2; bob: b1 */
};

static void
sub_dir(struct fx *f, char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", f->d.dir, name);
	assert_int_equal(mkdir(out, 0700), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct tdir_opts o;

	assert_non_null(f);
	*state = f;
	tdir_opts_default(&o);
	o.blobs = 1;
	assert_int_equal(tdir_start(&f->d, &o), 0);
	sub_dir(f, f->in_dir, sizeof(f->in_dir), "in");
	sub_dir(f, f->out_dir, sizeof(f->out_dir), "out");
	assert_int_equal(tdir_devs_make(&f->d, &f->dev, ALICE, PW, BOB,
	    BOB_PW), 0);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tdir_devs_clear(&f->dev);
	tdir_stop(&f->d);
	free(f);
	return 0;
}

/* --- helpers --- */

/* Byte i of the test files (not periodic at any segment length). */
static uint8_t
pattern(uint64_t i, unsigned int seed)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL + seed;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(x >> 32);
}

/* Writes dir/name with size bytes of pattern(seed). */
static void
make_file(const char *dir, const char *name, uint64_t size,
    unsigned int seed, char *path, size_t path_len)
{
	uint8_t buf[8192];
	uint64_t i = 0;
	size_t n, k;
	FILE *fp;

	snprintf(path, path_len, "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "wb"));
	while (i < size) {
		n = size - i < sizeof(buf) ? (size_t)(size - i) : sizeof(buf);
		for (k = 0; k < n; k++)
			buf[k] = pattern(i + k, seed);
		assert_int_equal(fwrite(buf, 1, n, fp), n);
		i += n;
	}
	assert_int_equal(fclose(fp), 0);
}

/* 1 when path holds exactly size bytes of pattern(seed). */
static int
file_matches(const char *path, uint64_t size, unsigned int seed)
{
	uint8_t buf[8192];
	uint64_t i = 0;
	size_t n, k;
	FILE *fp;
	int ok = 1;

	if ((fp = fopen(path, "rb")) == NULL)
		return 0;
	while (ok && (n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		for (k = 0; k < n && ok; k++)
			ok = i + k < size && buf[k] == pattern(i + k, seed);
		i += n;
	}
	fclose(fp);
	return ok && i == size;
}

/* The entries of dir other than ".", ".." and the lock file of a blob
 * directory. */
static int
count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, ".lock") != 0)
			n++;
	closedir(d);
	return n;
}

/* count_entries(), after waiting up to 2 s for it to reach 0. */
static int
entries_settled(const char *dir)
{
	int i, n = count_entries(dir);

	for (i = 0; i < 100 && n != 0; i++) {
		tsleep_ms(20);
		n = count_entries(dir);
	}
	return n;
}

/*
 * a1 sends the file at path as a blob and posts a message naming it,
 * addressed to b1 only.  ref is filled.
 */
static void
send_file(struct fx *f, const char *path, struct env_blob_ref *ref)
{
	static const char *const to[] = { ALICE, BOB };
	const struct tdev *rcpt[] = { &f->dev.b1 };
	const char *hashes[1];
	struct err_ctx e;
	char *json = NULL;
	size_t len = 0;
	uint64_t queued = 0;

	err_clear(&e);
	if (msg_blob_send(f->dev.ca, path, NULL, DIR_BLOB_MAX_DEFAULT, NULL,
	    ref, &e) != 0)
		fail_msg("send %s: %s", path, err_msg(&e));
	assert_int_equal(tenv_make(&f->dev.a1, to, 2, f->dev.views, 2, rcpt, 1,
	    &json, &len), 0);
	hashes[0] = ref->hash;
	if (dirc_post_message_blobs(f->dev.ca, json, len, hashes, 1, &queued,
	    &e) != 0)
		fail_msg("post: %s", err_msg(&e));
	assert_int_equal(queued, 1);
	free(json);
}

/* The blob file of hash on the directory's disk. */
static void
blob_file(struct fx *f, const char *hash, char *out, size_t len)
{
	snprintf(out, len, "%s/%.2s/%s", f->d.blob_dir, hash, hash);
}

/* --- the pending store --- */

static void
make_ref(struct env_blob_ref *r, unsigned int i)
{
	size_t k;

	memset(r, 0, sizeof(*r));
	for (k = 0; k < 64; k++)
		r->hash[k] = "0123456789abcdef"[(k * 7 + i) % 16];
	r->size = 1000 + i;
	for (k = 0; k < sizeof(r->key); k++)
		r->key[k] = (uint8_t)(k * 13 + i);
	assert_non_null(r->type = strdup("image/png"));
	assert_int_equal(asprintf(&r->name, "photo %u.png", i) > 0, 1);
}

/* Writes text as the pending file of entry 7 (mode 0600). */
static void
write_pending(struct fx *f, const char *text)
{
	struct err_ctx e;
	char path[600];

	err_clear(&e);
	snprintf(path, sizeof(path), "%s/pending/7.json", f->d.dir);
	assert_int_equal(fileio_write_atomic(path, text, strlen(text), 0600,
	    &e), 0);
}

static void
test_pending(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref refs[3], *got = NULL;
	struct err_ctx e;
	struct stat st;
	char path[600], *text = NULL, *key = NULL;
	size_t n = 0, i;
	static const char *const damaged[] = {
		"",
		"{",
		"[]",
		"{\"inbox_seq\":7,\"msg_id\":\"x\"}",
		"{\"inbox_seq\":8,\"msg_id\":\"x\",\"blobs\":[]}",
		"{\"inbox_seq\":7,\"msg_id\":\"x\",\"blobs\":[]}",
		"{\"inbox_seq\":7,\"msg_id\":\"x\",\"blobs\":{}}",
		"{\"inbox_seq\":7,\"msg_id\":\"x\",\"blobs\":[1]}",
		"{\"inbox_seq\":7,\"msg_id\":\"x\",\"blobs\":[{}],\"y\":1}",
	};

	(void)state;
	err_clear(&e);
	for (i = 0; i < 3; i++)
		make_ref(&refs[i], (unsigned int)i);
	assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e),
	    ERR_NOT_FOUND);
	assert_int_equal(msg_pending_drop(f->d.dir, 7, &e), 0);
	err_clear(&e);
	assert_int_equal(msg_pending_save(f->d.dir, 7, "msgid", refs, 3, &e),
	    0);
	snprintf(path, sizeof(path), "%s/pending", f->d.dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/pending/7.json", f->d.dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The key is stored in base64url. */
	assert_int_equal(fileio_read(path, 65536, 0, &text, &n, &e), 0);
	assert_int_equal(b64url_encode(refs[1].key, 32, &key), 0);
	assert_non_null(strstr(text, key));
	free(text);
	free(key);
	assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(got[i].hash, refs[i].hash);
		assert_int_equal(got[i].size, refs[i].size);
		assert_memory_equal(got[i].key, refs[i].key, 32);
		assert_string_equal(got[i].type, refs[i].type);
		assert_string_equal(got[i].name, refs[i].name);
	}
	msg_blob_refs_free(got, n);
	got = NULL;
	/* Saving again replaces: what is left to fetch. */
	assert_int_equal(msg_pending_save(f->d.dir, 7, "msgid", &refs[2], 1,
	    &e), 0);
	assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].name, refs[2].name);
	msg_blob_refs_free(got, n);
	got = NULL;
	/* Another entry is another file. */
	assert_int_equal(msg_pending_load(f->d.dir, 8, &got, &n, &e),
	    ERR_NOT_FOUND);
	err_clear(&e);
	/* Damaged files are errors, not crashes, and keep nothing. */
	for (i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
		write_pending(f, damaged[i]);
		err_clear(&e);
		assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e),
		    ERR_FORMAT);
		assert_null(got);
		assert_int_equal(n, 0);
		assert_non_null(strstr(err_msg(&e), "damaged"));
	}
	/* A reference with a bad member. */
	{
		char upper[65], shorter[65], ref_text[600], file_text[800];
		struct {
			const char *hash, *size, *type, *rest;
		} bad_refs[] = {
			{ upper, "1", "a/b", ",\"name\":\"n\"" },
			{ shorter, "1", "a/b", ",\"name\":\"n\"" },
			{ refs[0].hash, "-1", "a/b", ",\"name\":\"n\"" },
			{ refs[0].hash, "1.5", "a/b", ",\"name\":\"n\"" },
			{ refs[0].hash, "1", "a/b", ",\"name\":\"../n\"" },
			{ refs[0].hash, "1", "", ",\"name\":\"n\"" },
			{ refs[0].hash, "1", "a\\u0007b", ",\"name\":\"n\"" },
			{ refs[0].hash, "1", "a/b", ",\"name\":\"n\",\"x\":1" },
			{ refs[0].hash, "1", "a/b", "" },
		};
		size_t j;

		memcpy(upper, refs[0].hash, 65);
		upper[63] = 'A';
		memcpy(shorter, refs[0].hash, 65);
		shorter[62] = '\0';
		assert_int_equal(b64url_encode(refs[0].key, 32, &key), 0);
		for (j = 0; j < sizeof(bad_refs) / sizeof(bad_refs[0]); j++) {
			snprintf(ref_text, sizeof(ref_text), "{\"hash\":\"%s\","
			    "\"size\":%s,\"key\":\"%s\",\"type\":\"%s\"%s}",
			    bad_refs[j].hash, bad_refs[j].size, key,
			    bad_refs[j].type, bad_refs[j].rest);
			snprintf(file_text, sizeof(file_text),
			    "{\"inbox_seq\":7,\"msg_id\":\"x\",\"blobs\":[%s]}",
			    ref_text);
			write_pending(f, file_text);
			err_clear(&e);
			assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n,
			    &e), ERR_FORMAT);
		}
		/* A short key. */
		snprintf(file_text, sizeof(file_text), "{\"inbox_seq\":7,"
		    "\"msg_id\":\"x\",\"blobs\":[{\"hash\":\"%s\",\"size\":1,"
		    "\"key\":\"%.20s\",\"type\":\"a/b\",\"name\":\"n\"}]}",
		    refs[0].hash, key);
		write_pending(f, file_text);
		assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e),
		    ERR_FORMAT);
		/* The same reference, well-formed, loads. */
		snprintf(file_text, sizeof(file_text), "{\"inbox_seq\":7,"
		    "\"msg_id\":\"x\",\"blobs\":[{\"hash\":\"%s\",\"size\":1,"
		    "\"key\":\"%s\",\"type\":\"a/b\",\"name\":\"n\"}]}",
		    refs[0].hash, key);
		write_pending(f, file_text);
		err_clear(&e);
		assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e),
		    0);
		assert_memory_equal(got[0].key, refs[0].key, 32);
		msg_blob_refs_free(got, n);
		got = NULL;
		free(key);
	}
	/* A file others may read is refused. */
	assert_int_equal(chmod(path, 0644), 0);
	err_clear(&e);
	assert_int_equal(msg_pending_load(f->d.dir, 7, &got, &n, &e),
	    ERR_DENIED);
	assert_int_equal(msg_pending_drop(f->d.dir, 7, &e), 0);
	assert_int_not_equal(access(path, F_OK), 0);
	for (i = 0; i < 3; i++)
		msg_blob_ref_clear(&refs[i]);
}

/* --- file names --- */

static int
create_counting(void *arg, const char *path, struct err_ctx *e)
{
	int *calls = arg;

	(void)path;
	(void)e;
	(*calls)++;
	return ERR_EXISTS;
}

static void
test_file_numbering(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char path[600], *out = NULL;
	int calls = 0;

	err_clear(&e);
	/* All 101 names taken. */
	assert_int_equal(msg_file_create_numbered(f->out_dir, "a.txt",
	    create_counting, &calls, &out, &e), ERR_EXISTS);
	assert_int_equal(calls, 101);
	assert_null(out);
	/* An unsafe name is refused before anything is created. */
	calls = 0;
	assert_int_equal(msg_file_create_numbered(f->out_dir, "../a.txt",
	    create_counting, &calls, &out, &e), ERR_FORMAT);
	assert_int_equal(calls, 0);
	/* Taken names are skipped, never replaced. */
	err_clear(&e);
	assert_int_equal(msg_save_file(f->out_dir, "a.txt",
	    (const uint8_t *)"1", 1, &out, &e), 0);
	free(out);
	assert_int_equal(msg_save_file(f->out_dir, "a.txt",
	    (const uint8_t *)"2", 1, &out, &e), 0);
	snprintf(path, sizeof(path), "%s/a.txt (1)", f->out_dir);
	assert_string_equal(out, path);
	free(out);
}

/* --- through a directory --- */

static void
round_trip(struct fx *f, uint64_t size, unsigned int seed)
{
	struct env_blob_ref ref;
	struct err_ctx e;
	struct stat st;
	char name[64], path[600], blob[700], want[600], *out = NULL;

	memset(&ref, 0, sizeof(ref));
	snprintf(name, sizeof(name), "file-%llu.bin", (unsigned long long)size);
	make_file(f->in_dir, name, size, seed, path, sizeof(path));
	send_file(f, path, &ref);
	assert_int_equal(ref.size, size);
	assert_string_equal(ref.name, name);
	assert_string_equal(ref.type, "application/octet-stream");
	/* The directory keeps exactly the STREAM blob. */
	blob_file(f, ref.hash, blob, sizeof(blob));
	assert_int_equal(stat(blob, &st), 0);
	assert_int_equal((uint64_t)st.st_size,
	    stream_ciphertext_len(size, STREAM_SEGMENT_DEFAULT));
	err_clear(&e);
	if (msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out, &e) != 0)
		fail_msg("recv of %llu bytes: %s", (unsigned long long)size,
		    err_msg(&e));
	snprintf(want, sizeof(want), "%s/%s", f->out_dir, name);
	assert_string_equal(out, want);
	assert_true(file_matches(out, size, seed));
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(out);
	msg_blob_ref_clear(&ref);
}

static void
test_round_trips(void **state)
{
	struct fx *f = *state;
	static const uint64_t sizes[] = {
		0, 1, 65535, 65536, 65537, 3 * 1024 * 1024 + 12345,
	};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		round_trip(f, sizes[i], (unsigned int)i + 1);
	assert_int_equal(count_entries(f->out_dir),
	    (int)(sizeof(sizes) / sizeof(sizes[0])));
}

/* Flips one byte at offset of the blob file of hash. */
static void
flip_blob_byte(struct fx *f, const char *hash, off_t offset)
{
	char path[700];
	uint8_t b;
	int fd;

	blob_file(f, hash, path, sizeof(path));
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &b, 1, offset), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, offset), 1);
	close(fd);
}

static void
test_rejected_blobs(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref ref;
	struct err_ctx e;
	char path[600], *out = NULL;

	memset(&ref, 0, sizeof(ref));
	make_file(f->in_dir, "doc.pdf", 200000, 9, path, sizeof(path));
	send_file(f, path, &ref);

	/* A wrong key: the hash matches, the first segment fails. */
	ref.key[0] ^= 1;
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), ERR_DECRYPT);
	assert_null(out);
	assert_int_equal(count_entries(f->out_dir), 0);
	ref.key[0] ^= 1;

	/* Another size than the message says. */
	ref.size++;
	err_clear(&e);
	assert_int_not_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL,
	    &out, &e), 0);
	assert_int_equal(count_entries(f->out_dir), 0);
	ref.size -= 2;
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), ERR_DECRYPT);
	assert_int_equal(count_entries(f->out_dir), 0);
	ref.size++;

	/* A byte changed on the directory's disk, late in the blob (after
	 * segments were written out): the hash catches it. */
	flip_blob_byte(f, ref.hash, 150000);
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), ERR_DECRYPT);
	assert_non_null(strstr(err_msg(&e), "does not match the message"));
	assert_null(out);
	assert_int_equal(count_entries(f->out_dir), 0);
	/* And early, in the header. */
	flip_blob_byte(f, ref.hash, 150000);
	flip_blob_byte(f, ref.hash, 10);
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), ERR_DECRYPT);
	assert_int_equal(count_entries(f->out_dir), 0);
	/* Put back, it is received. */
	flip_blob_byte(f, ref.hash, 10);
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), 0);
	assert_true(file_matches(out, 200000, 9));
	free(out);
	msg_blob_ref_clear(&ref);
}

static void
test_existing_name(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref ref;
	struct err_ctx e;
	char path[600], old[600], link_path[600], want[600], *out = NULL;

	memset(&ref, 0, sizeof(ref));
	make_file(f->in_dir, "x.bin", 70000, 3, path, sizeof(path));
	/* Already in the output directory: a file and a symbolic link. */
	make_file(f->out_dir, "x.bin", 10, 4, old, sizeof(old));
	snprintf(link_path, sizeof(link_path), "%s/x.bin (1)", f->out_dir);
	assert_int_equal(symlink("/nonexistent-devid-target", link_path), 0);
	send_file(f, path, &ref);
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), 0);
	snprintf(want, sizeof(want), "%s/x.bin (2)", f->out_dir);
	assert_string_equal(out, want);
	assert_true(file_matches(out, 70000, 3));
	assert_true(file_matches(old, 10, 4));
	assert_int_not_equal(access("/nonexistent-devid-target", F_OK), 0);
	assert_int_equal(count_entries(f->out_dir), 3);
	free(out);
	msg_blob_ref_clear(&ref);
}

static void
test_not_addressed(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref ref;
	struct err_ctx e;
	char path[600], *out = NULL;

	memset(&ref, 0, sizeof(ref));
	make_file(f->in_dir, "secret.txt", 1000, 5, path, sizeof(path));
	send_file(f, path, &ref);
	/* a2 is alice's, but the message was not encrypted to it. */
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.c2, &ref, f->out_dir, NULL, &out,
	    &e), ERR_DENIED);
	assert_null(out);
	assert_int_equal(count_entries(f->out_dir), 0);
	/* A hash the directory never saw: the same answer. */
	memset(ref.hash, 'a', 64);
	err_clear(&e);
	assert_int_equal(msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out,
	    &e), ERR_DENIED);
	assert_int_equal(count_entries(f->out_dir), 0);
	msg_blob_ref_clear(&ref);
}

static void
test_send_refusals(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref ref;
	struct err_ctx e;
	char path[600];

	memset(&ref, 0, sizeof(ref));
	/* Over the directory's limit: before anything is uploaded. */
	make_file(f->in_dir, "big.bin", 3 * 1024 * 1024, 1, path,
	    sizeof(path));
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, path, NULL, 2 * 1024 * 1024,
	    NULL, &ref, &e), ERR_TOO_LARGE);
	assert_non_null(strstr(err_msg(&e), "is 3 MiB; this directory takes "
	    "files up to 2 MiB"));
	assert_int_equal(count_entries(f->d.blob_dir), 0);
	/* Not a regular file; no such file. */
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, f->in_dir, NULL, 0, NULL,
	    &ref, &e), ERR_IO);
	snprintf(path, sizeof(path), "%s/missing", f->in_dir);
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, path, NULL, 0, NULL, &ref,
	    &e), ERR_IO);
	/* A name that cannot be sent. */
	make_file(f->in_dir, ".hidden", 10, 1, path, sizeof(path));
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, path, NULL, 0, NULL, &ref,
	    &e), ERR_INVALID_ARG);
	/* A file that is not the size it said: /proc files say 0 bytes. */
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, "/proc/self/status", NULL, 0,
	    NULL, &ref, &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), "changed while it was being "
	    "sent"));
	/* Without a session the directory refuses. */
	{
		struct dirc *anon = tdir_client(&f->d);

		assert_non_null(anon);
		make_file(f->in_dir, "ok.bin", 10, 1, path, sizeof(path));
		err_clear(&e);
		assert_int_equal(msg_blob_send(anon, path, "text/plain", 0,
		    NULL, &ref, &e), ERR_DENIED);
		dirc_free(anon);
	}
	/* A media type that cannot be sent: refused before the upload. */
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, path, "text/plain\n", 0, NULL,
	    &ref, &e), ERR_INVALID_ARG);
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, path, "", 0, NULL, &ref, &e),
	    ERR_INVALID_ARG);
	/* (The directory removes the part of the cut upload above once it
	 * notices the connection closed.) */
	assert_int_equal(entries_settled(f->d.blob_dir), 0);
	/* The type given is the one in the reference. */
	err_clear(&e);
	assert_int_equal(msg_blob_send(f->dev.ca, path, "text/plain", 0, NULL,
	    &ref, &e), 0);
	assert_string_equal(ref.type, "text/plain");
	assert_string_equal(ref.name, "ok.bin");
	msg_blob_ref_clear(&ref);
}

/*
 * b1 receives ref with files limited to limit bytes (RLIMIT_FSIZE: a
 * write past it fails with EFBIG, as on a full disk).  Nothing else may
 * write a file meanwhile: the directory here runs in this process.
 */
static int
recv_limited(struct fx *f, const struct env_blob_ref *ref, rlim_t limit,
    char **out, struct err_ctx *e)
{
	struct sigaction ign, old_sa;
	struct rlimit old, lim;
	int r;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = limit;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	r = msg_blob_recv(f->dev.cb, ref, f->out_dir, NULL, out, e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
	return r;
}

static void
test_write_fails(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref ref;
	struct err_ctx e;
	char path[600], *out = NULL;
	const uint64_t big = 8 * 1024 * 1024, last = 3 * 1024 * 1024 + 12345;

	/* Refused after 1 MiB while most of the blob is still to come:
	 * the writer stops the download. */
	memset(&ref, 0, sizeof(ref));
	make_file(f->in_dir, "big.bin", big, 21, path, sizeof(path));
	send_file(f, path, &ref);
	err_clear(&e);
	assert_int_equal(recv_limited(f, &ref, 1024 * 1024, &out, &e),
	    ERR_IO);
	assert_non_null(strstr(err_msg(&e), "writing the received file"));
	assert_null(out);
	assert_int_equal(count_entries(f->out_dir), 0);
	/* The same blob, once the disk takes it. */
	err_clear(&e);
	if (msg_blob_recv(f->dev.cb, &ref, f->out_dir, NULL, &out, &e) != 0)
		fail_msg("recv after a refused write: %s", err_msg(&e));
	assert_true(file_matches(out, big, 21));
	assert_int_equal(unlink(out), 0);
	free(out);
	out = NULL;
	msg_blob_ref_clear(&ref);

	/* Refused for the last bytes only, written once everything
	 * arrived and was decrypted. */
	make_file(f->in_dir, "last.bin", last, 22, path, sizeof(path));
	send_file(f, path, &ref);
	err_clear(&e);
	assert_int_equal(recv_limited(f, &ref, 3 * 1024 * 1024, &out, &e),
	    ERR_IO);
	assert_non_null(strstr(err_msg(&e), "writing the received file"));
	assert_null(out);
	assert_int_equal(count_entries(f->out_dir), 0);
	msg_blob_ref_clear(&ref);
}

/* --- a proxy that cuts connections (interrupted transfers) --- */

/*
 * Relays TCP connections to the server; while cuts_left > 0, each
 * connection is closed once cut_after bytes went through it (either
 * way), and cuts_left counts down.
 */
struct cutter {
	int lfd;
	char target[128];         /* host:port of the server */
	char base[128];           /* http://127.0.0.1:PORT */
	pthread_mutex_t mu;
	int cuts_left;
	size_t cut_after;
	int connections;
	int active;
	atomic_int stop;          /* read by the relays without mu */
	pthread_t thread;
};

/* The connections the cutter took so far. */
static int
cutter_connections(struct cutter *k)
{
	int n;

	pthread_mutex_lock(&k->mu);
	n = k->connections;
	pthread_mutex_unlock(&k->mu);
	return n;
}

struct cut_conn {
	struct cutter *k;
	int cfd;
};

static int
connect_to(const char *hostport)
{
	struct sockaddr_in sa;
	char host[64];
	const char *colon = strrchr(hostport, ':');
	int fd;

	assert_non_null(colon);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport),
	    hostport);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
cut_relay(void *arg)
{
	struct cut_conn *cc = arg;
	struct cutter *k = cc->k;
	struct pollfd pf[2];
	uint8_t buf[65536];
	size_t moved = 0, limit = 0;
	ssize_t n;
	int sfd, cut = 0, i;

	pthread_mutex_lock(&k->mu);
	k->connections++;
	if (k->cuts_left > 0) {
		k->cuts_left--;
		cut = 1;
		limit = k->cut_after;
	}
	pthread_mutex_unlock(&k->mu);
	if ((sfd = connect_to(k->target)) < 0)
		goto out;
	pf[0].fd = cc->cfd;
	pf[1].fd = sfd;
	for (;;) {
		pf[0].events = pf[1].events = POLLIN;
		if (poll(pf, 2, 200) < 0)
			break;
		if (k->stop)
			break;
		for (i = 0; i < 2; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[i].fd, buf, cut && limit - moved <
			    sizeof(buf) ? limit - moved : sizeof(buf));
			if (n <= 0)
				goto done;
			if (fileio_write_all(pf[1 - i].fd, buf, (size_t)n) != 0)
				goto done;
			moved += (size_t)n;
			if (cut && moved >= limit)
				goto done;
		}
	}
 done:
	close(sfd);
 out:
	close(cc->cfd);
	pthread_mutex_lock(&k->mu);
	k->active--;
	pthread_mutex_unlock(&k->mu);
	free(cc);
	return NULL;
}

static void *
cut_accept(void *arg)
{
	struct cutter *k = arg;
	struct cut_conn *cc;
	pthread_t t;
	int fd;

	for (;;) {
		if ((fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (k->stop || (cc = calloc(1, sizeof(*cc))) == NULL) {
			close(fd);
			break;
		}
		cc->k = k;
		cc->cfd = fd;
		pthread_mutex_lock(&k->mu);
		k->active++;
		pthread_mutex_unlock(&k->mu);
		if (pthread_create(&t, NULL, cut_relay, cc) != 0) {
			close(fd);
			free(cc);
			pthread_mutex_lock(&k->mu);
			k->active--;
			pthread_mutex_unlock(&k->mu);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static void
cutter_start(struct cutter *k, const char *target, int cuts,
    size_t cut_after)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	snprintf(k->target, sizeof(k->target), "%s", target);
	k->cuts_left = cuts;
	k->cut_after = cut_after;
	assert_true((k->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
	    0)) >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(k->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(k->lfd, 16), 0);
	assert_int_equal(getsockname(k->lfd, (struct sockaddr *)&sa, &len),
	    0);
	snprintf(k->base, sizeof(k->base), "http://127.0.0.1:%u",
	    (unsigned int)ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&k->thread, NULL, cut_accept, k), 0);
}

static void
cutter_stop(struct cutter *k)
{
	int i, active = 1;

	k->stop = 1;
	shutdown(k->lfd, SHUT_RDWR);
	pthread_join(k->thread, NULL);
	close(k->lfd);
	for (i = 0; i < 100 && active; i++) {
		pthread_mutex_lock(&k->mu);
		active = k->active;
		pthread_mutex_unlock(&k->mu);
		if (active)
			tsleep_ms(20);
	}
	pthread_mutex_destroy(&k->mu);
}

/* A client through the cutter with the session of c. */
static struct dirc *
client_via(struct cutter *k, struct dirc *c)
{
	struct dirc *p = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(dirc_new(k->base, NULL, &p, &e), 0);
	assert_int_equal(dirc_set_token(p, dirc_token(c)), 0);
	return p;
}

static void
test_interrupted(void **state)
{
	struct fx *f = *state;
	struct env_blob_ref ref;
	struct cutter k;
	struct dirc *via;
	struct err_ctx e;
	char path[600], *out = NULL;
	const uint64_t size = 3 * 1024 * 1024 + 7;

	memset(&ref, 0, sizeof(ref));
	make_file(f->in_dir, "long.bin", size, 11, path, sizeof(path));
	send_file(f, path, &ref);

	/* Two cuts after 1 MiB each: the download resumes twice where it
	 * stopped and the file is whole. */
	cutter_start(&k, dir_server_address(f->d.srv), 2, 1024 * 1024);
	via = client_via(&k, f->dev.cb);
	err_clear(&e);
	if (msg_blob_recv(via, &ref, f->out_dir, NULL, &out, &e) != 0)
		fail_msg("recv through cuts: %s", err_msg(&e));
	assert_true(file_matches(out, size, 11));
	assert_int_equal(cutter_connections(&k), 3);
	assert_int_equal(count_entries(f->out_dir), 1);
	assert_int_equal(unlink(out), 0);
	free(out);
	out = NULL;
	dirc_free(via);
	cutter_stop(&k);

	/* Every connection cut before any of the body: gives up after
	 * MSG_BLOB_TRIES attempts with ERR_NETWORK, nothing left. */
	cutter_start(&k, dir_server_address(f->d.srv), 1000, 64);
	via = client_via(&k, f->dev.cb);
	err_clear(&e);
	assert_int_equal(msg_blob_recv(via, &ref, f->out_dir, NULL, &out, &e),
	    ERR_NETWORK);
	assert_non_null(strstr(err_msg(&e), "failed 3 times"));
	assert_null(out);
	assert_int_equal(cutter_connections(&k), MSG_BLOB_TRIES);
	assert_int_equal(count_entries(f->out_dir), 0);
	dirc_free(via);
	cutter_stop(&k);
	msg_blob_ref_clear(&ref);

	/* An upload cut once starts again and arrives whole. */
	cutter_start(&k, dir_server_address(f->d.srv), 1, 512 * 1024);
	via = client_via(&k, f->dev.ca);
	err_clear(&e);
	if (msg_blob_send(via, path, NULL, 0, NULL, &ref, &e) != 0)
		fail_msg("send through a cut: %s", err_msg(&e));
	assert_int_equal(cutter_connections(&k), 2);
	assert_int_equal(ref.size, size);
	dirc_free(via);
	cutter_stop(&k);
	msg_blob_ref_clear(&ref);

	/* Cut every time: ERR_NETWORK after MSG_BLOB_TRIES uploads. */
	cutter_start(&k, dir_server_address(f->d.srv), 1000, 512 * 1024);
	via = client_via(&k, f->dev.ca);
	err_clear(&e);
	assert_int_equal(msg_blob_send(via, path, NULL, 0, NULL, &ref, &e),
	    ERR_NETWORK);
	assert_int_equal(cutter_connections(&k), MSG_BLOB_TRIES);
	dirc_free(via);
	cutter_stop(&k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_numbering, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_round_trips, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rejected_blobs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_existing_name, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_addressed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_send_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_interrupted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_fails, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
