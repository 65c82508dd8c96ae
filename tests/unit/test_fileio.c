/*
 * test_fileio.c - bounded whole-file reads and durable writes: size
 * limits at and one past the bound, missing files, symlinks, non-regular
 * files and private modes on reads; exact modes whatever the umask,
 * replacement that keeps the old contents on failure, and exclusive
 * creation that leaves existing files and symlinks alone.
 */
#include "config.h"

#include <sys/stat.h>

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "errors.h"
#include "fileio.h"

struct fx {
	char dir[256];
	char path[320];
	char other[320];
	char link[320];
	char tmp[330];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *base = getenv("TMPDIR");

	assert_non_null(f);
	if (base == NULL || *base != '/')
		base = P_tmpdir;
	snprintf(f->dir, sizeof(f->dir), "%s/devid-fileio.XXXXXX", base);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/file", f->dir);
	snprintf(f->other, sizeof(f->other), "%s/other", f->dir);
	snprintf(f->link, sizeof(f->link), "%s/link", f->dir);
	snprintf(f->tmp, sizeof(f->tmp), "%s.tmp", f->path);
	*state = f;
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		chmod(path, 0700);
	return remove(path) != 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	chmod(f->dir, 0700);
	nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Writes len bytes of c to path with mode. */
static void
put_file(const char *path, int c, size_t len, mode_t mode)
{
	FILE *fp;
	size_t i;

	assert_non_null(fp = fopen(path, "w"));
	for (i = 0; i < len; i++)
		assert_int_not_equal(fputc(c, fp), EOF);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Asserts that path holds exactly want. */
static void
assert_contents(const char *path, const char *want)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(fileio_read(path, 4096, 0, &text, &len, NULL), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(text, want);
	free(text);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void
test_read_limits(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char *text = NULL;
	size_t len = 0, i;

	/* Exactly max_len bytes, NUL-terminated. */
	put_file(f->path, 'a', 100, 0600);
	err_clear(&e);
	assert_int_equal(fileio_read(f->path, 100, 0, &text, &len, &e), 0);
	assert_int_equal(len, 100);
	for (i = 0; i < len; i++)
		assert_int_equal(text[i], 'a');
	assert_int_equal(text[len], '\0');
	free(text);
	text = NULL;

	/* One byte over is refused, and nothing is handed out. */
	put_file(f->path, 'a', 101, 0600);
	err_clear(&e);
	len = 7;
	assert_int_equal(fileio_read(f->path, 100, FILEIO_SECRET, &text,
	    &len, &e), ERR_TOO_LARGE);
	assert_null(text);
	assert_int_equal(len, 7);
	assert_non_null(strstr(err_msg(&e), f->path));
	assert_non_null(strstr(err_msg(&e), "100 bytes"));

	/* An empty file is an empty string. */
	put_file(f->path, 'a', 0, 0600);
	assert_int_equal(fileio_read(f->path, 0, 0, &text, &len, NULL), 0);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);
}

static void
test_read_refusals(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	char *text = NULL;
	size_t len = 0;

	/* A missing file. */
	err_clear(&e);
	assert_int_equal(fileio_read(f->path, 100, 0, &text, &len, &e),
	    ERR_NOT_FOUND);
	assert_null(text);
	assert_non_null(strstr(err_msg(&e), f->path));

	/* A symlink is refused unless the caller follows it. */
	put_file(f->path, 'b', 3, 0600);
	assert_int_equal(symlink(f->path, f->link), 0);
	err_clear(&e);
	assert_int_equal(fileio_read(f->link, 100, 0, &text, &len, &e),
	    ERR_IO);
	assert_null(text);
	assert_non_null(strstr(err_msg(&e), "symbolic link"));
	assert_int_equal(fileio_read(f->link, 100, FILEIO_FOLLOW, &text, &len,
	    NULL), 0);
	assert_string_equal(text, "bbb");
	free(text);
	text = NULL;

	/* A directory is not a file. */
	err_clear(&e);
	assert_int_equal(fileio_read(f->dir, 100, FILEIO_FOLLOW, &text, &len,
	    &e), ERR_IO);
	assert_null(text);
	assert_non_null(strstr(err_msg(&e), "not a regular file"));

	/* Private files: any group or other access is refused. */
	assert_int_equal(chmod(f->path, 0640), 0);
	err_clear(&e);
	assert_int_equal(fileio_read(f->path, 100, FILEIO_PRIVATE, &text, &len,
	    &e), ERR_DENIED);
	assert_null(text);
	assert_non_null(strstr(err_msg(&e), "0640"));
	assert_int_equal(chmod(f->path, 0604), 0);
	assert_int_equal(fileio_read(f->path, 100, FILEIO_PRIVATE, &text, &len,
	    NULL), ERR_DENIED);
	assert_int_equal(chmod(f->path, 0400), 0);
	assert_int_equal(fileio_read(f->path, 100, FILEIO_PRIVATE |
	    FILEIO_SECRET, &text, &len, NULL), 0);
	assert_string_equal(text, "bbb");
	free(text);
}

static void
test_write_atomic(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	mode_t old;

	/* A new file gets exactly the mode asked for, whatever the umask. */
	old = umask(0);
	err_clear(&e);
	assert_int_equal(fileio_write_atomic(f->path, "one\n", 4, 0600, &e),
	    0);
	umask(old);
	assert_int_equal(mode_of(f->path), 0600);
	assert_contents(f->path, "one\n");
	assert_int_equal(access(f->tmp, F_OK), -1);

	/* Replacing: new contents and mode, no temporary file left. */
	assert_int_equal(chmod(f->path, 0644), 0);
	old = umask(0777);
	assert_int_equal(fileio_write_atomic(f->path, "two\n", 4, 0600, NULL),
	    0);
	umask(old);
	assert_int_equal(mode_of(f->path), 0600);
	assert_contents(f->path, "two\n");
	assert_int_equal(access(f->tmp, F_OK), -1);

	/* Empty contents. */
	assert_int_equal(fileio_write_atomic(f->other, NULL, 0, 0600, NULL),
	    0);
	assert_contents(f->other, "");

	/* A symlink planted at the temporary name is not written through. */
	assert_int_equal(symlink(f->other, f->tmp), 0);
	assert_int_equal(fileio_write_atomic(f->path, "three\n", 6, 0600,
	    NULL), 0);
	assert_contents(f->path, "three\n");
	assert_contents(f->other, "");
	assert_int_equal(access(f->tmp, F_OK), -1);
}

static void
test_write_atomic_failure(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;

	assert_int_equal(fileio_write_atomic(f->path, "old\n", 4, 0600, NULL),
	    0);

	/* The rename fails (a directory is in the way): the directory stays
	 * and no temporary file is left behind. */
	assert_int_equal(mkdir(f->other, 0700), 0);
	{
		char inner[400];

		snprintf(inner, sizeof(inner), "%s/x", f->other);
		put_file(inner, 'x', 1, 0600);
	}
	err_clear(&e);
	assert_int_equal(fileio_write_atomic(f->other, "new\n", 4, 0600, &e),
	    ERR_IO);
	assert_non_null(strstr(err_msg(&e), f->other));
	{
		char tmp[400];

		snprintf(tmp, sizeof(tmp), "%s.tmp", f->other);
		assert_int_equal(access(tmp, F_OK), -1);
	}

	/* An unwritable directory: the old contents stay.  Root writes
	 * anyway, so this part only runs for other users. */
	if (geteuid() == 0)
		return;
	assert_int_equal(chmod(f->dir, 0500), 0);
	err_clear(&e);
	assert_int_equal(fileio_write_atomic(f->path, "new\n", 4, 0600, &e),
	    ERR_IO);
	assert_non_null(strstr(err_msg(&e), f->tmp));
	assert_int_equal(chmod(f->dir, 0700), 0);
	assert_contents(f->path, "old\n");
	assert_int_equal(access(f->tmp, F_OK), -1);
}

static void
test_write_new(void **state)
{
	struct fx *f = *state;
	struct err_ctx e;
	mode_t old;

	old = umask(0);
	err_clear(&e);
	assert_int_equal(fileio_write_new(f->path, "key\n", 4, 0600, &e), 0);
	umask(old);
	assert_int_equal(mode_of(f->path), 0600);
	assert_contents(f->path, "key\n");

	/* An existing file is refused and left as it was. */
	err_clear(&e);
	assert_int_equal(fileio_write_new(f->path, "other\n", 6, 0600, &e),
	    ERR_EXISTS);
	assert_non_null(strstr(err_msg(&e), "already exists"));
	assert_contents(f->path, "key\n");

	/* So is a symlink, dangling or not, and its target is not made. */
	assert_int_equal(symlink(f->other, f->link), 0);
	assert_int_equal(fileio_write_new(f->link, "x", 1, 0600, NULL),
	    ERR_EXISTS);
	assert_int_equal(access(f->other, F_OK), -1);
	assert_int_equal(unlink(f->link), 0);
	assert_int_equal(symlink(f->path, f->link), 0);
	assert_int_equal(fileio_write_new(f->link, "x", 1, 0600, NULL),
	    ERR_EXISTS);
	assert_contents(f->path, "key\n");

	/* The mode is exact with a restrictive umask as well. */
	old = umask(0777);
	assert_int_equal(fileio_write_new(f->other, "y", 1, 0600, NULL), 0);
	umask(old);
	assert_int_equal(mode_of(f->other), 0600);

	/* A directory that cannot be written to. */
	if (geteuid() == 0)
		return;
	assert_int_equal(unlink(f->other), 0);
	assert_int_equal(chmod(f->dir, 0500), 0);
	err_clear(&e);
	assert_int_equal(fileio_write_new(f->other, "y", 1, 0600, &e), ERR_IO);
	assert_non_null(strstr(err_msg(&e), f->other));
	assert_int_equal(chmod(f->dir, 0700), 0);
	assert_int_equal(access(f->other, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_limits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_failure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_new, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
