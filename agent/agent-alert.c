/*
 * agent-alert.c - the alert journal, the open list and alert_command.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent-alert.h"
#include "agent-log.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"

extern char **environ;

static void
alert_free_fields(struct agent_alert *a)
{
	json_decref(a->details);
	a->details = NULL;
}

void
agent_alert_list_free(struct agent_alert_list *list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < list->n_open; i++)
		alert_free_fields(&list->open[i]);
	free(list->open);
	free(list->journal);
	free(list->command);
	memset(list, 0, sizeof(*list));
}

/* Copies a string field of at most max bytes; "" when absent and !req. */
static int
copy_field(const json_t *o, const char *key, char *dst, size_t max, int req,
    struct err_ctx *e)
{
	const json_t *v = json_object_get(o, key);
	const char *s;

	if (v == NULL && !req) {
		dst[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || (s = json_string_value(v)) == NULL ||
	    json_string_length(v) > max || strlen(s) != json_string_length(v))
		return err_set(e, ERR_FORMAT, "journal: bad field '%s'", key);
	memcpy(dst, s, json_string_length(v) + 1);
	return 0;
}

const char *
agent_alert_default_severity(const char *kind)
{
	static const char *const critical[] = { AGENT_ALERT_ROLLBACK,
	    AGENT_ALERT_FORK, AGENT_ALERT_WRONG_KEY, AGENT_ALERT_LOG_INVALID,
	    AGENT_ALERT_REGISTRY, AGENT_ALERT_KEY_REPLACED,
	    AGENT_ALERT_TLOG_FORK, AGENT_ALERT_TLOG_INCLUSION,
	    AGENT_ALERT_TLOG_ACCOUNT_FORK };
	size_t i;

	for (i = 0; kind != NULL && i < sizeof(critical) / sizeof(critical[0]);
	    i++)
		if (strcmp(kind, critical[i]) == 0)
			return AGENT_ALERT_CRITICAL;
	return AGENT_ALERT_WARNING;
}

int
agent_alert_severity_valid(const char *s)
{
	return s != NULL && (strcmp(s, AGENT_ALERT_INFO) == 0 ||
	    strcmp(s, AGENT_ALERT_WARNING) == 0 ||
	    strcmp(s, AGENT_ALERT_CRITICAL) == 0);
}

/* The words a close line may give as "how". */
static int
how_valid(const char *how)
{
	return strcmp(how, "ack") == 0 || strcmp(how, "approve") == 0 ||
	    strcmp(how, "clear") == 0 ||
	    strcmp(how, AGENT_ALERT_HOW_ENDORSED) == 0;
}

static int
id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return i == AGENT_ALERT_ID_LEN;
}

int
agent_alert_parse_line(const char *line, size_t len, struct agent_alert *a,
    char how[16], struct err_ctx *e)
{
	static const char *const top_raise[] = { "op", "alert" };
	static const char *const top_close[] = { "op", "id", "time", "how" };
	static const char *const fields[] = { "id", "kind", "severity",
	    "time", "account", "device", "label", "message", "key",
	    "details" };
	json_t *o = NULL;
	const json_t *al, *det;
	const char *op;
	int r = ERR_FORMAT;

	memset(a, 0, sizeof(*a));
	if ((r = devrec_json_load(line, len, AGENT_ALERT_LINE_MAX, &o,
	    "journal", e)) != 0)
		return r;
	if ((r = devrec_json_str(o, "op", 8, &op, "journal", e)) != 0)
		goto out;
	if (strcmp(op, "raise") == 0) {
		if ((r = devrec_json_keys(o, top_raise, 2, "journal", e)) != 0)
			goto out;
		al = json_object_get(o, "alert");
		if ((r = devrec_json_keys(al, fields, 10, "journal alert",
		    e)) != 0 ||
		    (r = copy_field(al, "id", a->id, AGENT_ALERT_ID_LEN, 1,
		    e)) != 0 ||
		    (r = copy_field(al, "kind", a->kind, AGENT_ALERT_KIND_MAX,
		    1, e)) != 0 ||
		    (r = copy_field(al, "severity", a->severity,
		    AGENT_ALERT_SEVERITY_MAX, 0, e)) != 0 ||
		    (r = copy_field(al, "account", a->account, 128, 0,
		    e)) != 0 ||
		    (r = copy_field(al, "device", a->device, 64, 0, e)) != 0 ||
		    (r = copy_field(al, "label", a->label, 64, 0, e)) != 0 ||
		    (r = copy_field(al, "message", a->message,
		    AGENT_ALERT_MESSAGE_MAX, 1, e)) != 0 ||
		    (r = copy_field(al, "key", a->key, AGENT_ALERT_KEY_MAX, 1,
		    e)) != 0 ||
		    (r = devrec_json_u64(al, "time", &a->time, "journal alert",
		    e)) != 0)
			goto out;
		if (!id_valid(a->id) || a->kind[0] == '\0') {
			r = err_set(e, ERR_FORMAT, "journal: bad alert id or "
			    "kind");
			goto out;
		}
		/* Lines written before severities existed have none. */
		if (json_object_get(al, "severity") == NULL)
			snprintf(a->severity, sizeof(a->severity), "%s",
			    agent_alert_default_severity(a->kind));
		else if (!agent_alert_severity_valid(a->severity)) {
			r = err_set(e, ERR_FORMAT, "journal: bad severity");
			goto out;
		}
		det = json_object_get(al, "details");
		if (det != NULL && !json_is_object(det)) {
			r = err_set(e, ERR_FORMAT, "journal: details is not an "
			    "object");
			goto out;
		}
		a->details = det != NULL ? json_deep_copy(det) : json_object();
		if (a->details == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		r = 1;
	} else if (strcmp(op, "close") == 0) {
		if ((r = devrec_json_keys(o, top_close, 4, "journal",
		    e)) != 0 ||
		    (r = copy_field(o, "id", a->id, AGENT_ALERT_ID_LEN, 1,
		    e)) != 0 ||
		    (r = copy_field(o, "how", how, 15, 1, e)) != 0 ||
		    (r = devrec_json_u64(o, "time", &a->time, "journal",
		    e)) != 0)
			goto out;
		if (!id_valid(a->id) || !how_valid(how)) {
			r = err_set(e, ERR_FORMAT, "journal: bad close line");
			goto out;
		}
		r = 2;
	} else {
		r = err_set(e, ERR_FORMAT, "journal: unknown op '%.16s'", op);
	}
 out:
	json_decref(o);
	if (r < 0)
		alert_free_fields(a);
	return r;
}

/* Removes open[i]. */
static void
remove_at(struct agent_alert_list *list, size_t i)
{
	alert_free_fields(&list->open[i]);
	list->open[i] = list->open[--list->n_open];
}

static int
append_open(struct agent_alert_list *list, struct agent_alert *a)
{
	struct agent_alert *n;

	if (list->n_open >= AGENT_ALERT_MAX_OPEN)
		return ERR_TOO_LARGE;
	n = realloc(list->open, (list->n_open + 1) * sizeof(*n));
	if (n == NULL)
		return ERR_ALLOC;
	list->open = n;
	list->open[list->n_open++] = *a;
	return 0;
}

/*
 * Rewrites the journal with only the open alerts (atomically: a new file,
 * fsync'd, renamed over the old one), so that it stays small.  On failure
 * the journal is left as it was.
 */
static int
journal_compact(struct agent_alert_list *list, struct err_ctx *e)
{
	char *all = NULL, *text;
	json_t *aj, *line;
	size_t i, len = 0;
	FILE *f;
	int failed = 0, r = ERR_INTERNAL;

	if ((f = open_memstream(&all, &len)) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < list->n_open && !failed; i++) {
		aj = agent_alert_to_json(&list->open[i]);
		if (aj != NULL)
			(void)json_object_del(aj, "short_id");
		line = aj != NULL ? json_pack("{s:s, s:o}", "op", "raise",
		    "alert", aj) : NULL;
		text = line != NULL ? json_dumps(line, JSON_COMPACT |
		    JSON_SORT_KEYS) : NULL;
		json_decref(line);
		if (text == NULL || fprintf(f, "%s\n", text) < 0)
			failed = 1;
		free(text);
	}
	/* A memory stream fails only when memory runs out. */
	if (ferror(f) != 0)
		failed = 1;
	if (fclose(f) != 0 || failed) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = fileio_write_atomic(list->journal, all, len, 0600, e)) != 0) {
		r = err_wrap(e, r, "compacting the alert journal: %s",
		    err_msg(e));
		goto out;
	}
	agent_log(LOG_INFO, "alert journal %s compacted to %zu open alerts",
	    list->journal, list->n_open);
	r = 0;
 out:
	free(all);
	return r;
}

int
agent_alert_list_open(struct agent_alert_list *list, const char *path,
    const char *command, struct err_ctx *e)
{
	struct agent_alert a;
	char how[16], *text = NULL;
	size_t len = 0, pos = 0, n, i;
	int fd, r = ERR_INTERNAL;

	memset(list, 0, sizeof(*list));
	if ((list->journal = strdup(path)) == NULL ||
	    (command != NULL && (list->command = strdup(command)) == NULL)) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0) {
		r = err_set(e, ERR_IO, "cannot open the alert journal %s: %s",
		    path, strerror(errno));
		goto out;
	}
	close(fd);
	if ((r = fileio_read(path, AGENT_ALERT_JOURNAL_MAX, 0, &text, &len,
	    e)) != 0)
		goto out;
	while (pos < len) {
		for (n = 0; pos + n < len && text[pos + n] != '\n'; n++)
			;
		if (n == 0) {
			pos++;
			continue;
		}
		r = agent_alert_parse_line(text + pos, n, &a, how, NULL);
		pos += n + 1;
		if (r == 1) {
			if (agent_alert_find_key(list, a.key) != NULL ||
			    append_open(list, &a) != 0)
				alert_free_fields(&a);
		} else if (r == 2) {
			for (i = 0; i < list->n_open; i++)
				if (strcmp(list->open[i].id, a.id) == 0) {
					remove_at(list, i);
					break;
				}
		} else {
			list->bad_lines++;
		}
	}
	/* A line cut short by a crash: end it so that the next alert
	 * starts on a line of its own. */
	if (len > 0 && text[len - 1] != '\n') {
		if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC |
		    O_NOFOLLOW)) < 0 || write(fd, "\n", 1) != 1 ||
		    fsync(fd) != 0) {
			r = err_set(e, ERR_IO, "repairing the alert journal "
			    "%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	if (len > AGENT_ALERT_COMPACT_AT && (r = journal_compact(list, e)) != 0)
		goto out;
	if (list->bad_lines > 0)
		agent_log(LOG_WARNING, "alert journal %s: skipped %llu lines "
		    "that do not parse", path,
		    (unsigned long long)list->bad_lines);
	r = 0;
 out:
	free(text);
	if (r != 0)
		agent_alert_list_free(list);
	return r;
}

/* Appends one line and fsyncs. */
static int
journal_append(struct agent_alert_list *list, json_t *o, struct err_ctx *e)
{
	char *text = NULL;
	size_t len;
	ssize_t n;
	int fd = -1, r = ERR_INTERNAL;

	if ((text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return ERR_ALLOC;
	len = strlen(text);
	text[len] = '\0';
	if ((fd = open(list->journal, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		r = err_set(e, ERR_IO, "alert journal %s: %s", list->journal,
		    strerror(errno));
		goto out;
	}
	/* One write of line + newline keeps lines whole with O_APPEND. */
	{
		char *line = realloc(text, len + 2);

		if (line == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		text = line;
		text[len++] = '\n';
		text[len] = '\0';
	}
	n = write(fd, text, len);
	if (n != (ssize_t)len || fsync(fd) != 0) {
		r = err_set(e, ERR_IO, "writing the alert journal %s: %s",
		    list->journal, strerror(errno));
		goto out;
	}
	r = 0;
 out:
	if (fd >= 0)
		close(fd);
	free(text);
	return r;
}

json_t *
agent_alert_to_json(const struct agent_alert *a)
{
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "";

	if (a->device[0] != '\0')
		(void)devrec_short_id(a->device, short_id);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, "
	    "s:O}", "id", a->id, "kind", a->kind, "severity",
	    a->severity[0] != '\0' ? a->severity :
	    agent_alert_default_severity(a->kind), "time", (json_int_t)a->time,
	    "account", a->account, "device", a->device, "short_id", short_id,
	    "label", a->label, "message", a->message, "key", a->key,
	    "details", a->details);
}

/* Builds NAME=value in a new string. */
static char *
env_pair(const char *name, const char *value)
{
	char *s;

	if (asprintf(&s, "%s=%s", name, value) < 0)
		return NULL;
	return s;
}

/* Starts sh -c command with the alert in the environment; no waiting. */
static void
run_command(const char *command, const struct agent_alert *a)
{
	char tbuf[32], **envp = NULL;
	size_t n_env = 0, i, k = 0, first;
	pid_t pid;

	while (environ != NULL && environ[n_env] != NULL)
		n_env++;
	/* The inherited environment, 8 variables of the alert, NULL. */
	if ((envp = calloc(n_env + 9, sizeof(*envp))) == NULL)
		return;
	for (i = 0; i < n_env; i++)
		if (strncmp(environ[i], "DEVID_ALERT_", 12) != 0)
			envp[k++] = environ[i];
	snprintf(tbuf, sizeof(tbuf), "%llu", (unsigned long long)a->time);
	first = i = k;
	envp[k++] = env_pair("DEVID_ALERT_KIND", a->kind);
	envp[k++] = env_pair("DEVID_ALERT_SEVERITY", a->severity);
	envp[k++] = env_pair("DEVID_ALERT_ID", a->id);
	envp[k++] = env_pair("DEVID_ALERT_DEVICE", a->device);
	envp[k++] = env_pair("DEVID_ALERT_LABEL", a->label);
	envp[k++] = env_pair("DEVID_ALERT_ACCOUNT", a->account);
	envp[k++] = env_pair("DEVID_ALERT_TIME", tbuf);
	envp[k++] = env_pair("DEVID_ALERT_MESSAGE", a->message);
	for (; i < k; i++)
		if (envp[i] == NULL)
			goto out;
	pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		execle("/bin/sh", "sh", "-c", command, (char *)NULL, envp);
		_exit(127);
	}
	if (pid < 0)
		agent_log(LOG_ERR, "alert_command: fork: %s", strerror(errno));
 out:
	for (i = first; i < k; i++)
		free(envp[i]);
	free(envp);
}

void
agent_alert_reap(void)
{
	int status;

	while (waitpid(-1, &status, WNOHANG) > 0)
		;
}

const struct agent_alert *
agent_alert_find_key(const struct agent_alert_list *list, const char *key)
{
	size_t i;

	for (i = 0; i < list->n_open; i++)
		if (strcmp(list->open[i].key, key) == 0)
			return &list->open[i];
	return NULL;
}

int
agent_alert_raise(struct agent_alert_list *list, const char *kind,
    const char *key, const char *account, const char *device, const char *label,
    const char *message, json_t *details, const struct agent_alert **out,
    struct err_ctx *e)
{
	return agent_alert_raise_severity(list, kind, NULL, key, account,
	    device, label, message, details, out, e);
}

int
agent_alert_raise_severity(struct agent_alert_list *list,
    const char *kind, const char *severity, const char *key,
    const char *account, const char *device, const char *label,
    const char *message, json_t *details, const struct agent_alert **out,
    struct err_ctx *e)
{
	struct agent_alert a;
	json_t *line = NULL, *aj = NULL;
	uint8_t rnd[AGENT_ALERT_ID_LEN / 2];
	const struct agent_alert *have;
	int r = ERR_INTERNAL;

	memset(&a, 0, sizeof(a));
	if (severity == NULL)
		severity = agent_alert_default_severity(kind);
	if (!agent_alert_severity_valid(severity)) {
		json_decref(details);
		return err_set(e, ERR_INVALID_ARG, "no alert severity '%.16s'",
		    severity);
	}
	if (details == NULL)
		details = json_object();
	if (details == NULL)
		return ERR_ALLOC;
	if ((have = agent_alert_find_key(list, key)) != NULL) {
		json_decref(details);
		if (out != NULL)
			*out = have;
		return 0;
	}
	a.details = details;
	details = NULL;         /* transferred */
	if ((r = crypto_random(rnd, sizeof(rnd))) != 0)
		goto out;
	hex_encode(rnd, sizeof(rnd), a.id);
	snprintf(a.kind, sizeof(a.kind), "%s", kind);
	snprintf(a.severity, sizeof(a.severity), "%s", severity);
	snprintf(a.key, sizeof(a.key), "%s", key);
	snprintf(a.account, sizeof(a.account), "%s", account ? account : "");
	snprintf(a.device, sizeof(a.device), "%s", device ? device : "");
	snprintf(a.label, sizeof(a.label), "%s", label ? label : "");
	snprintf(a.message, sizeof(a.message), "%s", message);
	a.time = (uint64_t)time(NULL);
	if ((aj = agent_alert_to_json(&a)) == NULL ||
	    json_object_del(aj, "short_id") != 0 ||
	    (line = json_pack("{s:s, s:O}", "op", "raise", "alert", aj)) ==
	    NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = journal_append(list, line, e)) != 0)
		goto out;
	if ((r = append_open(list, &a)) != 0)
		goto out;
	a.details = NULL;       /* transferred */
	list->raised++;
	agent_log(strcmp(a.severity, AGENT_ALERT_INFO) == 0 ? LOG_NOTICE :
	    strcmp(a.severity, AGENT_ALERT_CRITICAL) == 0 ? LOG_ERR :
	    LOG_WARNING, "ALERT %s [%s, %s]: %s", a.id, a.kind, a.severity,
	    a.message);
	if (list->command != NULL)
		run_command(list->command, &list->open[list->n_open - 1]);
	if (out != NULL)
		*out = &list->open[list->n_open - 1];
	r = 1;
 out:
	json_decref(aj);
	json_decref(line);
	alert_free_fields(&a);
	return r;
}

int
agent_alert_close(struct agent_alert_list *list, const char *id,
    const char *how, struct err_ctx *e)
{
	json_t *line;
	size_t i;
	int r;

	for (i = 0; i < list->n_open; i++)
		if (strcmp(list->open[i].id, id) == 0)
			break;
	if (i == list->n_open)
		return err_set(e, ERR_NOT_FOUND, "no open alert %s", id);
	if ((line = json_pack("{s:s, s:s, s:I, s:s}", "op", "close", "id", id,
	    "time", (json_int_t)time(NULL), "how", how)) == NULL)
		return ERR_ALLOC;
	r = journal_append(list, line, e);
	json_decref(line);
	if (r != 0)
		return r;
	agent_log(LOG_NOTICE, "alert %s [%s] closed (%s)", list->open[i].id,
	    list->open[i].kind, how);
	remove_at(list, i);
	return 0;
}

int
agent_alert_close_matching(struct agent_alert_list *list, const char *kind,
    const char *device, const char *how, struct err_ctx *e)
{
	char id[AGENT_ALERT_ID_LEN + 1];
	size_t i;
	int r, n = 0;

	for (i = 0; i < list->n_open;) {
		if (strcmp(list->open[i].kind, kind) == 0 && (device == NULL ||
		    strcmp(list->open[i].device, device) == 0)) {
			memcpy(id, list->open[i].id, sizeof(id));
			if ((r = agent_alert_close(list, id, how, e)) != 0)
				return r;
			n++;
			continue;       /* open[i] is another alert now */
		}
		i++;
	}
	return n;
}

int
agent_alert_find(struct agent_alert_list *list, const char *prefix,
    const struct agent_alert **out, struct err_ctx *e)
{
	const struct agent_alert *found = NULL;
	size_t i, n = strlen(prefix);

	if (n < 4 || n > AGENT_ALERT_ID_LEN)
		return err_set(e, ERR_FORMAT, "give 4 to %d characters of the "
		    "alert id", AGENT_ALERT_ID_LEN);
	for (i = 0; i < list->n_open; i++) {
		if (strncmp(list->open[i].id, prefix, n) != 0)
			continue;
		if (found != NULL)
			return err_set(e, ERR_EXISTS, "'%s' matches several "
			    "alerts", prefix);
		found = &list->open[i];
	}
	if (found == NULL)
		return err_set(e, ERR_NOT_FOUND, "no open alert %s", prefix);
	*out = found;
	return 0;
}
