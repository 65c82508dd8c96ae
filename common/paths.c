/*
 * paths.c - XDG paths and private directories (paths.h).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "paths.h"

char *
path_join(const char *dir, const char *name)
{
	char *out;

	if (asprintf(&out, "%s/%s", dir, name) < 0)
		return NULL;
	return out;
}

int
path_xdg(const char *var, const char *home_sub, const char *sub, char **out,
    struct err_ctx *e)
{
	const char *base = getenv(var), *home;
	char *p;

	if (base != NULL && base[0] == '/') {
		if (asprintf(&p, "%s/%s", base, sub) < 0)
			return ERR_ALLOC;
	} else {
		if (home_sub == NULL)
			return err_set(e, ERR_CONFIG, "%s is not set: give the "
			    "path with a flag", var);
		if ((home = getenv("HOME")) == NULL || home[0] != '/')
			return err_set(e, ERR_CONFIG, "neither %s nor HOME is "
			    "set", var);
		if (asprintf(&p, "%s/%s/%s", home, home_sub, sub) < 0)
			return ERR_ALLOC;
	}
	*out = p;
	return 0;
}

int
path_default_state_dir(char **out, struct err_ctx *e)
{
	return path_xdg("XDG_DATA_HOME", ".local/share", "devid", out, e);
}

int
path_default_socket(char **out, struct err_ctx *e)
{
	return path_xdg("XDG_RUNTIME_DIR", NULL, "devid/agent.sock", out, e);
}

int
path_private_dir(const char *dir, struct err_ctx *e)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i, len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return err_set(e, ERR_CONFIG, "bad directory path");
	memcpy(path, dir, len + 1);
	/* Parents with the default mode, the last one 0700. */
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, i == len ? 0700 : 0755) != 0 &&
		    errno != EEXIST)
			return err_set(e, ERR_IO, "cannot create %s: %s", path,
			    strerror(errno));
		if (i < len)
			path[i] = '/';
	}
	if (lstat(dir, &st) != 0)
		return err_set(e, ERR_IO, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_DENIED, "%s is not a directory", dir);
	if (st.st_uid != geteuid())
		return err_set(e, ERR_DENIED, "%s belongs to uid %u, not to "
		    "this user", dir, (unsigned int)st.st_uid);
	if ((st.st_mode & 077) != 0)
		return err_set(e, ERR_DENIED, "%s may be accessed by others "
		    "(mode %03o): run chmod 700 %s", dir,
		    (unsigned int)(st.st_mode & 0777), dir);
	return 0;
}
