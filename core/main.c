/*
 * main.c: the command line.  Runs the daemon (in the foreground with -f),
 * or acts as a client of a running one (-x, -r), or checks a config.
 * Signals reach the loop through a signalfd: SIGTERM/SIGINT stop cleanly,
 * SIGHUP reloads.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "conf.h"
#include "core.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#ifndef SB_SYSCONFDIR
#define SB_SYSCONFDIR "/etc/switchboard"
#endif
#define DEFAULT_CONF SB_SYSCONFDIR "/switchboard.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: switchboard [-fv] [-c FILE] [-s SOCKET] [-d DIR]\n"
	    "       switchboard [-c FILE] [-s SOCKET] [-t SECONDS] -x COMMAND\n"
	    "       switchboard [-c FILE] [-s SOCKET] -r\n"
	    "       switchboard [-c FILE] --check-config\n"
	    "       switchboard --version | --dump-keys | --help\n"
	    "\n"
	    "  -c, --config FILE    configuration (default " DEFAULT_CONF ")\n"
	    "  -f, --foreground     do not detach; log to standard error\n"
	    "  -s, --socket PATH    control socket (overrides daemon.socket)\n"
	    "  -d, --state-dir DIR  state folder (overrides daemon.state_dir)\n"
	    "  -v, --verbose        log at debug level\n"
	    "  -x, --exec COMMAND   run one command in the running daemon\n"
	    "  -t, --timeout SECS   how long -x waits for a result (default 120)\n"
	    "  -r, --remote         interactive console to the running daemon\n"
	    "      --check-config   check the configuration and exit\n"
	    "      --dump-keys      list every configuration key and exit\n"
	    "      --version        print the version and exit\n");
}

static void
on_signal(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct signalfd_siginfo si;
	char err[1024];

	(void)loop;
	(void)mask;
	(void)ud;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			sb_notice("signal %u: stopping", si.ssi_signo);
			sb_core_stop();
			break;
		case SIGHUP:
			sb_notice("SIGHUP: reloading %s", sb_core.conf_path);
			sb_core_reload(err, sizeof(err));
			break;
		}
	}
}

/* Tell systemd (Type=notify) that start-up finished, if it is listening. */
static void
notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static const char msg[] = "READY=1";
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	strcpy(sun.sun_path, path);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	(void)sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sun, len);
	close(fd);
}

static void
detach(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0)
		sb_fatal("fork");
	if (pid > 0)
		_exit(0);
	setsid();
	if ((pid = fork()) < 0)
		sb_fatal("fork");
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		sb_fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static int
run_daemon(struct sb_config *conf, int foreground)
{
	char err[1024];
	sigset_t set;
	int sfd;

	/* Under systemd, standard error already goes to the journal: syslog
	 * too would log every line twice. */
	if (foreground && getenv("JOURNAL_STREAM"))
		sb_log_init("switchboard", 1, 0);
	else
		sb_log_init("switchboard", foreground, conf->use_syslog || !foreground);
	if (!foreground)
		detach();
	/* Block the signals before any thread starts, so only the loop's
	 * signalfd sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sb_core.loop = sb_loop_new()) == NULL)
		sb_fatalx("cannot create the event loop");
	if ((sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		sb_fatal("signalfd");
	sb_loop_add_fd(sb_core.loop, sfd, SB_READ, on_signal, NULL);
	if (sb_core_start(conf, err, sizeof(err)) < 0) {
		sb_errorx("cannot start: %s", err);
		sb_core_shutdown();
		return 1;
	}
	notify_ready();
	sb_loop_run(sb_core.loop);
	sb_notice("switchboard stopped");
	sb_core_shutdown();
	sb_loop_del_fd(sb_core.loop, sfd);
	close(sfd);
	sb_loop_free(sb_core.loop);
	return 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_VERSION, OPT_DUMP, OPT_HELP };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "exec", required_argument, NULL, 'x' },
		{ "timeout", required_argument, NULL, 't' },
		{ "remote", no_argument, NULL, 'r' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "dump-keys", no_argument, NULL, OPT_DUMP },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = NULL, *exec = NULL;
	int foreground = 0, check = 0, remote = 0, timeout = 120, ch;
	struct sb_config *conf;
	char err[1024];

	while ((ch = getopt_long(argc, argv, "c:fs:d:vx:t:rh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'f': foreground = 1; break;
		case 's': sb_core.socket_override = optarg; break;
		case 'd': sb_core.state_override = optarg; break;
		case 'v':
			sb_core.verbose = 1;
			sb_log_set_level(SB_LOG_DEBUG);
			break;
		case 'x': exec = optarg; break;
		case 't':
			timeout = atoi(optarg);
			if (timeout < 1)
				timeout = 1;
			break;
		case 'r': remote = 1; break;
		case OPT_CHECK: check = 1; break;
		case OPT_VERSION:
			printf("switchboard %s\n", SB_VERSION);
			return 0;
		case OPT_DUMP:
			sb_conf_dump_keys();
			return 0;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (exec || remote) {
		const char *sock = sb_core.socket_override;

		/* Without -s, the socket is the one the config names. */
		if (sock == NULL) {
			sb_log_init("switchboard", 1, 0);
			conf = sb_conf_load(conf_path ? conf_path : DEFAULT_CONF, err, sizeof(err));
			if (conf == NULL) {
				fprintf(stderr, "switchboard: %s\n", err);
				return SB_EXIT_NODAEMON;
			}
			sock = sb_strdup(conf->socket);
			sb_conf_free(conf);
		}
		return exec ? sb_client_exec(sock, exec, timeout) : sb_client_console(sock);
	}

	sb_log_init("switchboard", 1, 0);
	sb_core.conf_path = conf_path ? conf_path : DEFAULT_CONF;
	if ((conf = sb_conf_load(sb_core.conf_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "switchboard: %s\n", err);
		return 1;
	}
	if (check) {
		if (sb_core_check(conf, err, sizeof(err)) < 0) {
			fprintf(stderr, "switchboard: %s\n", err);
			sb_conf_free(conf);
			return 1;
		}
		printf("%s: configuration OK (%zu nodes, %zu channels)\n", sb_core.conf_path,
		    conf->nnodes, conf->nchannels);
		sb_conf_free(conf);
		return 0;
	}
	sb_core.foreground = foreground;
	return run_daemon(conf, foreground);
}
