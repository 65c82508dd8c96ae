/*
 * agent-run.c - devid-agent run: the daemon.  Detaching, the signals, the
 * main loop that serves the socket and the timers while the watcher
 * thread talks to the directory, and the way out.
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-cmd.h"
#include "agent-config.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "agent-watch.h"
#include "errors.h"

static volatile sig_atomic_t got_signal;
static int signal_fd = -1;

static void
on_signal(int sig)
{
	char c = 1;

	got_signal = sig;
	if (signal_fd >= 0)
		(void)!write(signal_fd, &c, 1);
}

static int
daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/*
 * SIGTERM, SIGINT and SIGHUP set got_signal and wake the main loop
 * through a's wake pipe; SIGPIPE is ignored (a client that went away is
 * seen as a write error).
 */
static void
run_catch_signals(struct agent *a)
{
	struct sigaction sa;

	signal_fd = a->wake_pipe[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/*
 * The main loop: serves the socket, sends the alerts the watcher queued
 * to followers and runs the timers, until a signal or a poll failure
 * (logged).
 */
static void
run_serve(struct agent *a)
{
	char drain[64];
	int r;

	while (!got_signal) {
		r = agent_sock_server_poll(a->srv, 1000, a->wake_pipe[0]);
		if (r == 1)
			while (read(a->wake_pipe[0], drain, sizeof(drain)) > 0)
				;
		if (r < 0) {
			agent_log(LOG_ERR, "poll failed: %s", strerror(errno));
			break;
		}
		agent_flush_broadcast(a);
		agent_tick(a);
	}
}

/*
 * Asks the watcher thread th to stop and joins it.  A long-poll in
 * flight ends within its wait; if the watcher is still in a request after
 * five seconds, the socket is closed, the token locked and the process
 * exits with status rc at once, leaving a to the watcher.
 */
static void
run_stop_watcher(struct agent *a, pthread_t th, int rc)
{
	int i;

	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_cond_broadcast(&a->wake_watch);
	pthread_mutex_unlock(&a->lock);
	for (i = 0; i < 50 && a->watch_running; i++)
		usleep(100000);
	if (a->watch_running) {
		agent_log(LOG_NOTICE, "watcher still in a request: exiting "
		    "without waiting");
		agent_sock_server_close(a->srv);
		a->srv = NULL;
		pthread_mutex_lock(&a->lock);
		agent_token_lock(&a->tok);
		fflush(NULL);
		_exit(rc);
	}
	pthread_join(th, NULL);
}

int
agent_cmd_run(const struct agent_cli *cli, const struct agent_config *flags)
{
	struct agent_config c;
	struct agent *a = NULL;
	struct err_ctx e;
	pthread_t th;
	int r, rc = 1, watching = 0;

	err_clear(&e);
	if ((r = agent_cli_load_settings(cli, flags, &c, NULL, 0, 1,
	    &e)) != 0)
		return agent_cli_die("run", &e);
	agent_log_init(c.log != NULL ? strcmp(c.log, "syslog") == 0 :
	    !cli->foreground, cli->debug);
	if (!cli->foreground && daemonize() != 0) {
		agent_log(LOG_ERR, "cannot detach: %s", strerror(errno));
		agent_config_free(&c);
		return 1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		goto out;
	if ((r = agent_load(a, &c, &e)) != 0) {
		agent_log(LOG_ERR, "cannot start: %s", err_msg(&e));
		goto out;
	}
	if ((r = agent_sock_server_open(c.socket, agent_handle, a, &a->srv,
	    &e)) != 0) {
		agent_log(LOG_ERR, "socket: %s", err_msg(&e));
		goto out;
	}
	run_catch_signals(a);
	if ((r = agent_watch_start(a, &th, &e)) != 0) {
		agent_log(LOG_ERR, "%s", err_msg(&e));
		goto out;
	}
	watching = 1;
	agent_log(LOG_NOTICE, "devid-agent %s for %s, device %.16s, listening "
	    "on %s%s", PACKAGE_VERSION, c.account, a->tok.device, c.socket,
	    agent_token_locked(&a->tok) ? " (locked)" : "");
	run_serve(a);
	agent_log(LOG_NOTICE, "stopping (signal %d)", (int)got_signal);
	rc = 0;
 out:
	if (watching)
		run_stop_watcher(a, th, rc);
	signal_fd = -1;
	if (a != NULL) {
		agent_sock_server_close(a->srv);
		a->srv = NULL;
		agent_free(a);
		free(a);
	}
	agent_config_free(&c);
	return rc;
}
