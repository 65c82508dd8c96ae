/*
 * paths.h - where devid keeps its files: XDG base directories, private
 * directories and path joining, shared by the agent and devid-msg.
 *
 * Both programs keep their state under one directory,
 * $XDG_DATA_HOME/devid (else $HOME/.local/share/devid), and meet at the
 * agent's socket, $XDG_RUNTIME_DIR/devid/agent.sock.
 */
#ifndef DEVID_PATHS_H
#define DEVID_PATHS_H

#include "errors.h"

/*
 * $var/sub when the environment variable var is set to an absolute path,
 * else $HOME/home_sub/sub; a new string in *out (caller frees).
 * home_sub NULL means there is no fallback under $HOME.  ERR_CONFIG when
 * neither applies (the message names var), ERR_ALLOC.
 */
int path_xdg(const char *var, const char *home_sub, const char *sub,
    char **out, struct err_ctx *e);

/* The state directory of the agent and devid-msg: $XDG_DATA_HOME/devid,
 * else $HOME/.local/share/devid.  As path_xdg(). */
int path_default_state_dir(char **out, struct err_ctx *e);

/* The agent's socket: $XDG_RUNTIME_DIR/devid/agent.sock.  ERR_CONFIG
 * when XDG_RUNTIME_DIR is not set (there is no safe fallback). */
int path_default_socket(char **out, struct err_ctx *e);

/*
 * Creates dir (and missing parents, with mode 0755) with mode 0700 and
 * checks that it is a directory, not a symlink, owned by the current user,
 * that nobody else may access.  ERR_CONFIG for an empty or too long path,
 * ERR_IO when it cannot be created, ERR_DENIED (with what to run) when it
 * is someone else's or open to others.
 */
int path_private_dir(const char *dir, struct err_ctx *e);

/* dir "/" name in a new string, or NULL when out of memory. */
char *path_join(const char *dir, const char *name);

#endif /* DEVID_PATHS_H */
