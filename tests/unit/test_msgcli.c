/*
 * test_msgcli.c - devid-msg's command line, the agent socket's frame
 * header and error words, and the safety of file names taken from
 * received messages (-o never writes over a file or through a link).
 */
#include "config.h"

#include <sys/stat.h>

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
#include "msg-agent.h"
#include "msg.h"

#define ARGV(...) \
	char *argv[] = { "devid-msg", __VA_ARGS__, NULL }; \
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1

/* A new directory under $TMPDIR (or the system's temporary directory). */
static void
tmp_dir(char *out, size_t len, const char *name)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base != '/')
		base = P_tmpdir;
	snprintf(out, len, "%s/%s.XXXXXX", base, name);
	assert_non_null(mkdtemp(out));
}

static int
parse(int argc, char **argv, struct msg_cli *cli)
{
	struct err_ctx e;

	err_clear(&e);
	return msg_cli_parse(argc, argv, cli, &e);
}

static void
test_send(void **state)
{
	struct msg_cli cli;

	(void)state;
	{
		ARGV("send", "bob@example.org", "carol@example.org", "-m",
		    "hi", "bob@example.org");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_int_equal(cli.cmd, MSG_CMD_SEND);
		assert_int_equal(cli.n_accounts, 2);   /* duplicate dropped */
		assert_string_equal(cli.accounts[0], "bob@example.org");
		assert_string_equal(cli.accounts[1], "carol@example.org");
		assert_string_equal(cli.text, "hi");
	}
	{
		ARGV("--socket", "/s", "send", "bob@example.org", "-f", "x.pdf",
		    "--type", "application/pdf", "--max-stale", "60");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_string_equal(cli.socket, "/s");
		assert_string_equal(cli.file, "x.pdf");
		assert_string_equal(cli.type, "application/pdf");
		assert_int_equal(cli.max_stale_s, 60);
	}
	{
		/* -m with -f: the file's caption. */
		ARGV("send", "bob@example.org", "-f", "photo.jpg", "-m",
		    "the view", "-t", "image/jpeg");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_string_equal(cli.file, "photo.jpg");
		assert_string_equal(cli.text, "the view");
		assert_string_equal(cli.type, "image/jpeg");
	}
	{
		ARGV("send", "bob@example.org");        /* standard input */
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_null(cli.text);
		assert_null(cli.file);
	}
}

static void
test_send_refusals(void **state)
{
	struct msg_cli cli;

	(void)state;
	{
		ARGV("send", "-m", "hi");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		/* -t names the type of a file: not with -m alone. */
		ARGV("send", "bob@example.org", "-m", "a", "-t", "image/png");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "bob@example.org", "-f");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "Bob@example.org", "-m", "a");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "../../etc", "-m", "a");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "bob@example.org", "-t", "text/plain", "-m", "a");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "bob@example.org", "-o", "downloads");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "bob@example.org", "--max-stale", "0");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "bob@example.org", "--max-stale", "12x");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("send", "bob@example.org", "-m");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
}

static void
test_other_commands(void **state)
{
	struct msg_cli cli;

	(void)state;
	{
		ARGV("recv", "--follow", "--json", "-o", "downloads", "--count",
		    "3");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_int_equal(cli.cmd, MSG_CMD_RECV);
		assert_true(cli.follow && cli.json);
		assert_string_equal(cli.out_dir, "downloads");
		assert_int_equal(cli.count, 3);
	}
	{
		ARGV("recv", "bob@example.org");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("recv", "--count", "0");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("recv", "-m", "x");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("recv", "-f", "x");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("trust", "bob@example.org", "--device", "3f2a");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_int_equal(cli.cmd, MSG_CMD_TRUST);
		assert_string_equal(cli.device, "3f2a");
	}
	{
		ARGV("trust", "bob@example.org", "carol@example.org");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("trust");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("contacts", "--device", "3f2a");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("contacts", "--json");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_int_equal(cli.cmd, MSG_CMD_CONTACTS);
	}
	{
		ARGV("recv", "--directory", "http://127.0.0.1:8080");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_string_equal(cli.directory, "http://127.0.0.1:8080");
	}
	{
		ARGV("recv", "--directory", "https://dir.example.org");
		assert_int_equal(parse(argc, argv, &cli), 0);
	}
	{
		/* Plain HTTP to another host: refused before anything runs
		 * (the whole rule is tested in test_agentconfig). */
		struct err_ctx e;

		ARGV("recv", "--directory", "http://dir.example.org");
		err_clear(&e);
		assert_int_equal(msg_cli_parse(argc, argv, &cli, &e),
		    ERR_INVALID_ARG);
		assert_non_null(strstr(err_msg(&e), "--directory: refusing "
		    "plain http:// to dir.example.org: "));
	}
	{
		ARGV("--help");
		assert_int_equal(parse(argc, argv, &cli), 0);
		assert_int_equal(cli.cmd, MSG_CMD_HELP);
	}
	{
		ARGV("frobnicate");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		ARGV("recv", "--no-such-option");
		assert_int_equal(parse(argc, argv, &cli), ERR_INVALID_ARG);
	}
	{
		char *argv[] = { "devid-msg", NULL };

		assert_int_equal(parse(1, argv, &cli), ERR_INVALID_ARG);
	}
}

/* --help says what -f takes now (a file as an attachment, up to the
 * directory's limit) and that -m goes with it. */
static void
test_usage(void **state)
{
	char buf[8192];
	size_t n;
	FILE *fp;

	(void)state;
	assert_non_null(fp = fmemopen(buf, sizeof(buf) - 1, "w"));
	msg_cli_usage(fp);
	n = (size_t)ftell(fp);
	fclose(fp);
	buf[n < sizeof(buf) - 1 ? n : sizeof(buf) - 1] = '\0';
	assert_non_null(strstr(buf, "[-m TEXT] [-f FILE [-t TYPE]]"));
	assert_non_null(strstr(buf, "send FILE as an attachment (up to the "
	    "directory's\n                       limit, 100 MiB by "
	    "default)"));
	assert_null(strstr(buf, "512 KiB"));
}

static void
test_frames_and_errors(void **state)
{
	uint8_t hdr[4];
	size_t len = 0;

	(void)state;
	assert_int_equal(msg_agent_frame(0x00203040, hdr), 0);
	assert_int_equal(hdr[1], 0x20);
	assert_int_equal(hdr[3], 0x40);
	assert_int_equal(msg_agent_frame_len(hdr, &len), 0);
	assert_int_equal(len, 0x00203040);
	assert_int_equal(msg_agent_frame(0, hdr), ERR_TOO_LARGE);
	assert_int_equal(msg_agent_frame(MSG_AGENT_FRAME_MAX + 1, hdr),
	    ERR_TOO_LARGE);
	assert_int_equal(msg_agent_frame(MSG_AGENT_FRAME_MAX, hdr), 0);
	hdr[0] = 0xff;
	assert_int_equal(msg_agent_frame_len(hdr, &len), ERR_TOO_LARGE);
	memset(hdr, 0, 4);
	assert_int_equal(msg_agent_frame_len(hdr, &len), ERR_TOO_LARGE);
	assert_int_equal(msg_agent_error_code("locked"), ERR_PIN_REQUIRED);
	assert_int_equal(msg_agent_error_code("rejected"), ERR_REJECTED);
	assert_int_equal(msg_agent_error_code("unavailable"), ERR_NETWORK);
	assert_int_equal(msg_agent_error_code("denied"), ERR_DENIED);
	assert_int_equal(msg_agent_error_code("what"), ERR_INTERNAL);
	assert_int_equal(msg_agent_error_code(NULL), ERR_INTERNAL);
}

static void
test_agent_not_running(void **state)
{
	struct msg_agent *a = NULL;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(msg_agent_connect("/nonexistent/devid/agent.sock",
	    &a, &e), ERR_NETWORK);
	assert_null(a);
	assert_non_null(strstr(err_msg(&e), "devid-agent is not running"));
}

static void
test_file_names(void **state)
{
	static const char *const good[] = {
		"report.pdf", "a", "Bericht über Qualität.odt", "x y (1).txt",
		"日本語.txt", "name.with.dots",
	};
	static const char *const bad[] = {
		"", ".", "..", ".bashrc", "-rf", "a/b", "../x", "a\\b",
		"tab\there", "new\nline", "esc\033[2J", "del\177",
		"c1\xc2\x9b", "bad\xff", "over\xc0\xaflong", "surr\xed\xa0\x80",
		"cut\xe2\x82",
	};
	char longname[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(msg_file_name_safe(good[i]));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(msg_file_name_safe(bad[i]));
	assert_false(msg_file_name_safe(NULL));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[255] = '\0';
	assert_true(msg_file_name_safe(longname));
	longname[255] = 'a';
	longname[256] = '\0';
	assert_false(msg_file_name_safe(longname));
}

static void
test_save_never_overwrites(void **state)
{
	char dir[256], path[320], target[300], *out = NULL, buf[16];
	struct err_ctx e;
	struct stat st;
	FILE *fp;
	int i;

	(void)state;
	err_clear(&e);
	tmp_dir(dir, sizeof(dir), "devid-msgf");
	snprintf(target, sizeof(target), "%s.target", dir);
	assert_int_equal(msg_save_file(dir, "r.txt", (const uint8_t *)"one",
	    3, &out, &e), 0);
	snprintf(path, sizeof(path), "%s/r.txt", dir);
	assert_string_equal(out, path);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(out);
	assert_int_equal(msg_save_file(dir, "r.txt", (const uint8_t *)"two",
	    3, &out, &e), 0);
	snprintf(path, sizeof(path), "%s/r.txt (1)", dir);
	assert_string_equal(out, path);
	free(out);
	/* The first is untouched. */
	snprintf(path, sizeof(path), "%s/r.txt", dir);
	assert_non_null(fp = fopen(path, "r"));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(fread(buf, 1, sizeof(buf) - 1, fp), 3);
	fclose(fp);
	assert_string_equal(buf, "one");
	/* A symbolic link in the way is not followed. */
	snprintf(path, sizeof(path), "%s/link", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(msg_save_file(dir, "link", (const uint8_t *)"x", 1,
	    &out, &e), 0);
	assert_non_null(strstr(out, "link (1)"));
	assert_int_not_equal(access(target, F_OK), 0);
	free(out);
	/* Unsafe names are refused outright. */
	assert_int_equal(msg_save_file(dir, "../escape", (const uint8_t *)"x",
	    1, &out, &e), ERR_FORMAT);
	assert_int_equal(msg_save_file(dir, ".profile", (const uint8_t *)"x",
	    1, &out, &e), ERR_FORMAT);
	/* Clean up. */
	unlink(path);
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), i == 0 ? "%s/r.txt" :
		    "%s/r.txt (1)", dir);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/link (1)", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send),
		cmocka_unit_test(test_send_refusals),
		cmocka_unit_test(test_other_commands),
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_frames_and_errors),
		cmocka_unit_test(test_agent_not_running),
		cmocka_unit_test(test_file_names),
		cmocka_unit_test(test_save_never_overwrites),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
