/*
 * p11-modconf.c - p11-kit module registrations, read without loading.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11-modconf.h"

#define MODCONF_MAX_LINE 4096

static int
modconf_name_valid(const char *name)
{
	const char *c;

	if (name == NULL || name[0] == '\0' || name[0] == '.' ||
	    strlen(name) > 128)
		return 0;
	for (c = name; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' &&
		    *c != '.')
			return 0;
	return 1;
}

static char *
modconf_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/*
 * Reads the "module:" value of one registration file into path.  Returns
 * 0, ERR_NOT_FOUND when the file does not exist, ERR_FORMAT, ERR_TOO_LARGE
 * or ERR_IO.
 */
static int
modconf_read(const char *file, char *path, size_t path_max,
    struct err_ctx *e)
{
	char line[MODCONF_MAX_LINE], *key, *val, *colon;
	int r = ERR_FORMAT;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return ERR_NOT_FOUND;
		return err_set(e, ERR_IO, "cannot read p11-kit module "
		    "registration %s: %s", file, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		key = modconf_trim(line);
		if (*key == '#' || *key == '\0')
			continue;
		if ((colon = strchr(key, ':')) == NULL)
			continue;
		*colon = '\0';
		val = modconf_trim(colon + 1);
		if (strcmp(modconf_trim(key), "module") != 0)
			continue;
		if (*val == '\0')
			break;
		if (*val == '/') {
			if (strlen(val) >= path_max)
				r = ERR_TOO_LARGE;
			else {
				memcpy(path, val, strlen(val) + 1);
				r = 0;
			}
		} else {
			int n = snprintf(path, path_max, "%s/%s",
			    P11_MODULE_PATH, val);

			r = (n < 0 || (size_t)n >= path_max) ?
			    ERR_TOO_LARGE : 0;
		}
		break;
	}
	fclose(f);
	if (r != 0)
		return err_set(e, r, "p11-kit module registration %s has no "
		    "usable 'module:' line", file);
	return 0;
}

int
p11_modconf_resolve(const char *name, const char *const *dirs, char *path,
    size_t path_max, struct err_ctx *e)
{
	const char *std[4], *home, *xdg;
	char user_dir[1024], file[1200];
	size_t i, n = 0;
	int r;

	if (!modconf_name_valid(name))
		return err_set(e, ERR_FORMAT, "'%s' is not a valid p11-kit "
		    "module name", name != NULL ? name : "");
	if (dirs == NULL) {
		xdg = getenv("XDG_CONFIG_HOME");
		home = getenv("HOME");
		user_dir[0] = '\0';
		if (xdg != NULL && xdg[0] == '/')
			snprintf(user_dir, sizeof(user_dir), "%s/pkcs11/modules",
			    xdg);
		else if (home != NULL && home[0] == '/')
			snprintf(user_dir, sizeof(user_dir),
			    "%s/.config/pkcs11/modules", home);
		if (user_dir[0] != '\0')
			std[n++] = user_dir;
		std[n++] = P11_SYSTEM_CONFIG_MODULES;
		std[n++] = P11_PACKAGE_CONFIG_MODULES;
		std[n] = NULL;
		dirs = std;
	}
	for (i = 0; dirs[i] != NULL; i++) {
		snprintf(file, sizeof(file), "%s/%s.module", dirs[i], name);
		r = modconf_read(file, path, path_max, e);
		if (r != ERR_NOT_FOUND)
			return r;
	}
	return err_set(e, ERR_NOT_FOUND, "no PKCS#11 module named '%s' is "
	    "registered with p11-kit (see `p11-kit list-modules`); give "
	    "module-path=/path/to/module.so instead", name);
}
