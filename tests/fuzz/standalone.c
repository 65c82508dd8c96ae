/*
 * standalone.c - runs a libFuzzer harness without libFuzzer.
 *
 * Normal builds link each tests/fuzz/fuzz_*.c harness with this driver so
 * that `make check` replays the seed corpus and a fixed, deterministic set
 * of mutations of it through the same code the fuzzer exercises.  A crash,
 * a sanitizer report or a leak fails the test.  Real fuzzing uses the
 * libFuzzer build (configure CC=clang --enable-fuzzing; make fuzz).
 *
 * Usage: fuzz_NAME [FILE-OR-DIR...]; without arguments the corpus
 * directory compiled in as FUZZ_CORPUS_DIR is used.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (8u * 1024 * 1024)
#define MUTATIONS_PER_INPUT 64

static unsigned long inputs_run;

/* A small fixed-seed generator: the same mutations on every run. */
static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void
run_one(const uint8_t *data, size_t len)
{
	uint8_t *copy;

	/* An exact-size heap copy lets ASan catch any over-read. */
	if ((copy = malloc(len == 0 ? 1 : len)) == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	if (len > 0)
		memcpy(copy, data, len);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
	inputs_run++;
}

static void
run_mutations(const uint8_t *data, size_t len, uint32_t seed)
{
	uint8_t *m;
	size_t cut;
	int i;

	if (len == 0)
		return;
	if ((m = malloc(len)) == NULL)
		exit(2);
	for (i = 0; i < MUTATIONS_PER_INPUT; i++) {
		memcpy(m, data, len);
		switch (next_rand(&seed) % 4) {
		case 0:	/* flip one bit */
			m[next_rand(&seed) % len] ^=
			    (uint8_t)(1u << (next_rand(&seed) % 8));
			run_one(m, len);
			break;
		case 1:	/* truncate */
			cut = next_rand(&seed) % len;
			run_one(m, cut);
			break;
		case 2:	/* overwrite a byte with a structural character */
			m[next_rand(&seed) % len] =
			    (uint8_t)"{}[]\",:0-=\\ \x00\xff"[next_rand(&seed) % 14];
			run_one(m, len);
			break;
		default: /* duplicate a slice over another place */
			cut = next_rand(&seed) % len;
			memmove(m + cut, m, len - cut);
			run_one(m, len);
			break;
		}
	}
	free(m);
}

static int
run_file(const char *path)
{
	uint8_t *data;
	size_t len;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((data = malloc(FUZZ_MAX_INPUT)) == NULL) {
		fclose(f);
		return -1;
	}
	len = fread(data, 1, FUZZ_MAX_INPUT, f);
	fclose(f);
	run_one(data, len);
	run_mutations(data, len, (uint32_t)len * 2654435761u + 1);
	free(data);
	return 0;
}

static int
run_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	char sub[4096];
	int i, n, r = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	/* Sorted, so the run is the same everywhere. */
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && r == 0) {
			snprintf(sub, sizeof(sub), "%s/%s", path,
			    names[i]->d_name);
			r = run_path(sub);
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int
main(int argc, char **argv)
{
	int i;

	if (argc < 2) {
		if (run_path(FUZZ_CORPUS_DIR) != 0)
			return 1;
	}
	for (i = 1; i < argc; i++)
		if (run_path(argv[i]) != 0)
			return 1;
	if (inputs_run == 0) {
		fprintf(stderr, "no inputs found\n");
		return 1;
	}
	printf("%lu passed, 0 failed\n", inputs_run);
	return 0;
}
