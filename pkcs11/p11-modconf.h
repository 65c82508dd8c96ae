/*
 * p11-modconf.h - resolving a p11-kit module name to its library path.
 *
 * p11-kit's own API resolves a registered name only after loading every
 * registered module, and loading a module runs its code (some talk to
 * daemons or hardware as soon as they are loaded).  devid instead reads
 * the NAME.module registration file itself and loads only that library.
 */
#ifndef DEVID_P11_MODCONF_H
#define DEVID_P11_MODCONF_H

#include <stddef.h>

#include "errors.h"

/*
 * Finds NAME.module in the user's, the system's and the packages' p11-kit
 * module directories (in that order: the first that has it wins) and
 * writes the library path of its "module:" line into path (a relative one
 * is taken from p11-kit's module directory).  dirs, when not NULL, is a
 * NULL-terminated list that replaces the standard directories (tests).
 * Returns 0, ERR_FORMAT (bad name, file without a module line),
 * ERR_NOT_FOUND (no registration) or ERR_TOO_LARGE (path too long).
 */
int p11_modconf_resolve(const char *name, const char *const *dirs,
    char *path, size_t path_max, struct err_ctx *e);

#endif /* DEVID_P11_MODCONF_H */
