/*
 * test_agentalert.c - the alert journal: raising (journalled before it
 * counts), one open alert per key, closing, the open list surviving a
 * reopen, damaged lines skipped, the line parser's refusals, id prefixes,
 * severities (defaults, chosen ones, lines from before they existed) and
 * alert_command's environment.
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
#include <jansson.h>

#include "agent-alert.h"
#include "agent-config.h"
#include "errors.h"
#include "paths.h"

#define DEV "3f2a9c0177deb410" "0000000000000000" "0000000000000000" \
	"0000000000000001"

struct fx {
	char dir[64];
	char *journal;
	char *envout;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/devid-alert-XXXXXX", P_tmpdir);
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->journal = path_join(f->dir, AGENT_ALERT_JOURNAL);
	f->envout = path_join(f->dir, "env.out");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->journal);
	unlink(f->envout);
	rmdir(f->dir);
	free(f->journal);
	free(f->envout);
	free(f);
	return 0;
}

static void
test_raise_close_reopen(void **state)
{
	struct fx *f = *state;
	struct agent_alert_list l;
	const struct agent_alert *a = NULL, *b = NULL;
	struct err_ctx e;
	struct stat st;
	char id1[AGENT_ALERT_ID_LEN + 1], id2[AGENT_ALERT_ID_LEN + 1];

	err_clear(&e);
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(stat(f->journal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_DEVICE_ADDED,
	    "added:x:2",
	    "alice@example.org", DEV, "card", "new device 'card'",
	    json_pack("{s:i}", "seq", 2), &a, &e), 1);
	assert_int_equal(strlen(a->id), AGENT_ALERT_ID_LEN);
	memcpy(id1, a->id, sizeof(id1));
	/* same key: no second alert */
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_DEVICE_ADDED,
	    "added:x:2",
	    "alice@example.org", DEV, "card", "again", NULL, &b, &e), 0);
	assert_string_equal(b->id, id1);
	assert_int_equal(l.n_open, 1);
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_STALE, "stale",
	    "alice@example.org", NULL, NULL, "no check for 900 s", NULL, &a,
	    &e), 1);
	memcpy(id2, a->id, sizeof(id2));
	assert_int_equal(l.n_open, 2);
	assert_int_equal(l.raised, 2);
	agent_alert_list_free(&l);

	/* Reopen: both still open. */
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(l.n_open, 2);
	assert_non_null(agent_alert_find_key(&l, "added:x:2"));
	assert_int_equal(agent_alert_find(&l, id1, &a, &e), 0);
	assert_string_equal(a->label, "card");
	assert_string_equal(a->device, DEV);
	assert_int_equal(json_integer_value(json_object_get(a->details,
	    "seq")), 2);
	/* close by id; the other by kind */
	assert_int_equal(agent_alert_close(&l, id1, "ack", &e), 0);
	assert_int_equal(agent_alert_close(&l, id1, "ack", &e), ERR_NOT_FOUND);
	assert_int_equal(agent_alert_close_matching(&l, AGENT_ALERT_STALE, NULL,
	    "clear", &e), 1);
	assert_int_equal(l.n_open, 0);
	/* after closing, the same key raises anew */
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_DEVICE_ADDED,
	    "added:x:2",
	    "alice@example.org", DEV, "card", "new device 'card'", NULL, &a,
	    &e), 1);
	assert_string_not_equal(a->id, id1);
	agent_alert_list_free(&l);

	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(l.n_open, 1);
	assert_null(agent_alert_find_key(&l, "stale"));
	agent_alert_list_free(&l);
	(void)id2;
}

static void
test_damaged_journal(void **state)
{
	struct fx *f = *state;
	struct agent_alert_list l;
	const struct agent_alert *a;
	struct err_ctx e;
	FILE *fp;

	err_clear(&e);
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_FORK, "fork:3",
	    "a@b", NULL, NULL, "fork at 3", NULL, &a, &e), 1);
	agent_alert_list_free(&l);
	fp = fopen(f->journal, "a");
	fputs("garbage\n{\"op\":\"raise\"}\n{\"op\":\"close\",\"id\":\"zz\"}\n"
	    "{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\",\"kind\":"
	    "\"stale\",\"time\":1,\"message\":\"m\",\"key\":\"stale\","
	    "\"ev", fp);
	fclose(fp);
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(l.n_open, 1);
	assert_int_equal(l.bad_lines, 4);
	assert_non_null(agent_alert_find_key(&l, "fork:3"));
	/* appending still works after a cut line */
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_STALE, "stale",
	    "a@b", NULL, NULL, "stale", NULL, &a, &e), 1);
	agent_alert_list_free(&l);
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(l.n_open, 2);
	agent_alert_list_free(&l);
}

static void
test_parse_line(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{}", "{\"op\":\"raise\"}",
		"{\"op\":\"nope\",\"id\":\"0123456789abcdef\"}",
		"{\"op\":\"close\",\"id\":\"0123456789abcdef\",\"time\":1}",
		"{\"op\":\"close\",\"id\":\"0123456789abcdef\",\"time\":1,"
		    "\"how\":\"maybe\"}",
		"{\"op\":\"close\",\"id\":\"0123456789ABCDEF\",\"time\":1,"
		    "\"how\":\"ack\"}",
		"{\"op\":\"close\",\"id\":\"0123\",\"time\":1,\"how\":\"ack\"}",
		"{\"op\":\"close\",\"id\":\"0123456789abcdef\",\"time\":-1,"
		    "\"how\":\"ack\"}",
		"{\"op\":\"close\",\"id\":\"0123456789abcdef\",\"time\":1,"
		    "\"how\":\"ack\",\"x\":1}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"\",\"time\":1,\"message\":\"m\","
		    "\"key\":\"k\"}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"details\":[]}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"bogus\":1}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\"}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"device\":1}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"label\":\"" "0123456789012345678901234567890123456789"
		    "012345678901234567890123456789\"}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"severity\":\"urgent\"}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"severity\":\"\"}}",
		"{\"op\":\"raise\",\"alert\":{\"id\":\"0123456789abcdef\","
		    "\"kind\":\"k\",\"time\":1,\"message\":\"m\",\"key\":\"k\","
		    "\"severity\":2}}",
		"{\"op\":\"close\",\"id\":\"0123456789abcdef\",\"time\":1,"
		    "\"how\":\"endorse\"}",
	};
	struct agent_alert a;
	char how[16];
	struct err_ctx e;
	size_t i;
	const char *good = "{\"op\":\"raise\",\"alert\":{\"id\":"
	    "\"0123456789abcdef\",\"kind\":\"k\",\"time\":1,\"message\":\"m\","
	    "\"key\":\"k\"}}";

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (agent_alert_parse_line(bad[i], strlen(bad[i]), &a, how,
		    &e) >= 0)
			fail_msg("accepted line %zu: %s", i, bad[i]);
	}
	assert_int_equal(agent_alert_parse_line(good, strlen(good), &a, how,
	    &e), 1);
	assert_true(json_is_object(a.details));
	/* a line from before severities: the kind's default */
	assert_string_equal(a.severity, "warning");
	json_decref(a.details);
}

static void
test_severity(void **state)
{
	struct fx *f = *state;
	struct agent_alert_list l;
	const struct agent_alert *a;
	struct agent_alert p;
	struct err_ctx e;
	json_t *j;
	char id[AGENT_ALERT_ID_LEN + 1], how[16];
	const char *old_fork = "{\"op\":\"raise\",\"alert\":{\"id\":"
	    "\"0123456789abcdef\",\"kind\":\"fork\",\"time\":1,"
	    "\"message\":\"m\",\"key\":\"fork:1\"}}";
	const char *with = "{\"op\":\"raise\",\"alert\":{\"id\":"
	    "\"0123456789abcdef\",\"kind\":\"device_added\",\"severity\":"
	    "\"critical\",\"time\":1,\"message\":\"m\",\"key\":\"k\"}}";
	const char *endorsed = "{\"op\":\"close\",\"id\":"
	    "\"0123456789abcdef\",\"time\":1,\"how\":\"endorsed\"}";

	err_clear(&e);
	/* defaults per kind */
	assert_string_equal(agent_alert_default_severity(
	    AGENT_ALERT_DEVICE_ADDED), "warning");
	assert_string_equal(agent_alert_default_severity(AGENT_ALERT_STALE),
	    "warning");
	assert_string_equal(agent_alert_default_severity(
	    AGENT_ALERT_DEVICE_REVOKED), "warning");
	assert_string_equal(agent_alert_default_severity(AGENT_ALERT_FORK),
	    "critical");
	assert_string_equal(agent_alert_default_severity(AGENT_ALERT_ROLLBACK),
	    "critical");
	assert_string_equal(agent_alert_default_severity(
	    AGENT_ALERT_WRONG_KEY), "critical");
	assert_string_equal(agent_alert_default_severity(
	    AGENT_ALERT_LOG_INVALID), "critical");
	assert_string_equal(agent_alert_default_severity(
	    AGENT_ALERT_REGISTRY), "critical");
	assert_int_equal(agent_alert_severity_valid("info"), 1);
	assert_int_equal(agent_alert_severity_valid("Info"), 0);
	assert_int_equal(agent_alert_severity_valid(NULL), 0);
	/* old journal lines take their kind's default; new ones keep theirs */
	assert_int_equal(agent_alert_parse_line(old_fork, strlen(old_fork), &p,
	    how, &e), 1);
	assert_string_equal(p.severity, "critical");
	json_decref(p.details);
	assert_int_equal(agent_alert_parse_line(with, strlen(with), &p, how,
	    &e), 1);
	assert_string_equal(p.severity, "critical");
	json_decref(p.details);
	assert_int_equal(agent_alert_parse_line(endorsed, strlen(endorsed), &p,
	    how, &e), 2);
	assert_string_equal(how, "endorsed");

	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	/* chosen severities; an unknown word raises nothing */
	assert_int_equal(agent_alert_raise_severity(&l,
	    AGENT_ALERT_DEVICE_ADDED, "critical", "added:a:2", "a@b", DEV,
	    "card", "m", NULL, &a, &e), 1);
	assert_string_equal(a->severity, "critical");
	j = agent_alert_to_json(a);
	assert_string_equal(json_string_value(json_object_get(j, "severity")),
	    "critical");
	json_decref(j);
	assert_int_equal(agent_alert_raise_severity(&l,
	    AGENT_ALERT_DEVICE_ADDED, "info", "added:b:3", "a@b", DEV,
	    "phone", "m", NULL, &a, &e), 1);
	memcpy(id, a->id, sizeof(id));
	assert_int_equal(agent_alert_close(&l, id, "endorsed", &e), 0);
	assert_int_equal(agent_alert_raise(&l, AGENT_ALERT_FORK, "fork:9",
	    "a@b", NULL, NULL, "m", NULL, &a, &e), 1);
	assert_string_equal(a->severity, "critical");
	err_clear(&e);
	assert_int_equal(agent_alert_raise_severity(&l, AGENT_ALERT_STALE,
	    "loud", "stale", "a@b", NULL, NULL, "m", json_object(), &a, &e),
	    ERR_INVALID_ARG);
	assert_int_equal(l.n_open, 2);
	agent_alert_list_free(&l);
	/* the journal keeps them: reopened, same severities, the closed
	 * one closed */
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(l.n_open, 2);
	assert_int_equal(l.bad_lines, 0);
	assert_string_equal(agent_alert_find_key(&l, "added:a:2")->severity,
	    "critical");
	assert_null(agent_alert_find_key(&l, "added:b:3"));
	agent_alert_list_free(&l);
}

static void
test_find_prefix(void **state)
{
	struct fx *f = *state;
	struct agent_alert_list l;
	const struct agent_alert *a, *b;
	struct err_ctx e;
	char p[8];

	err_clear(&e);
	assert_int_equal(agent_alert_list_open(&l, f->journal, NULL, &e), 0);
	assert_int_equal(agent_alert_raise(&l, "x", "k1", "a@b", NULL, NULL,
	    "m", NULL, &a, &e), 1);
	memcpy(p, a->id, 6);
	p[6] = '\0';
	assert_int_equal(agent_alert_find(&l, p, &b, &e), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(agent_alert_find(&l, "abc", &b, &e), ERR_FORMAT);
	assert_int_equal(agent_alert_find(&l, "0123456789abcdef0", &b, &e),
	    ERR_FORMAT);
	p[0] = p[0] == 'f' ? 'e' : 'f';
	assert_int_equal(agent_alert_find(&l, p, &b, &e), ERR_NOT_FOUND);
	agent_alert_list_free(&l);
}

static void
test_command_env(void **state)
{
	struct fx *f = *state;
	struct agent_alert_list l;
	const struct agent_alert *a;
	struct err_ctx e;
	char *cmd, *text = NULL;
	int i;

	assert_true(asprintf(&cmd, "env | grep '^DEVID_ALERT_' | sort > "
	    "%s.tmp && mv %s.tmp %s", f->envout, f->envout, f->envout) > 0);
	err_clear(&e);
	setenv("DEVID_ALERT_KIND", "inherited-must-not-leak", 1);
	assert_int_equal(agent_alert_list_open(&l, f->journal, cmd, &e), 0);
	assert_int_equal(agent_alert_raise_severity(&l,
	    AGENT_ALERT_DEVICE_ADDED, "critical", "k", "alice@x.org",
	    DEV, "card", "new device 'card' added", NULL, &a, &e), 1);
	for (i = 0; i < 100 && access(f->envout, F_OK) != 0; i++)
		usleep(50000);
	agent_alert_reap();
	{
		FILE *fp = fopen(f->envout, "r");
		size_t n;

		assert_non_null(fp);
		text = calloc(1, 4096);
		n = fread(text, 1, 4095, fp);
		text[n] = '\0';
		fclose(fp);
	}
	assert_non_null(strstr(text, "DEVID_ALERT_KIND=device_added\n"));
	assert_non_null(strstr(text, "DEVID_ALERT_SEVERITY=critical\n"));
	assert_null(strstr(text, "inherited"));
	assert_non_null(strstr(text, "DEVID_ALERT_DEVICE=" DEV "\n"));
	assert_non_null(strstr(text, "DEVID_ALERT_LABEL=card\n"));
	assert_non_null(strstr(text, "DEVID_ALERT_ACCOUNT=alice@x.org\n"));
	assert_non_null(strstr(text, "DEVID_ALERT_MESSAGE=new device 'card' "
	    "added\n"));
	assert_non_null(strstr(text, "DEVID_ALERT_TIME="));
	assert_non_null(strstr(text, "DEVID_ALERT_ID="));
	unsetenv("DEVID_ALERT_KIND");
	free(text);
	free(cmd);
	agent_alert_list_free(&l);
	agent_alert_list_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raise_close_reopen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damaged_journal, setup,
		    teardown),
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test_setup_teardown(test_severity, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_find_prefix, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_command_env, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
