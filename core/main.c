/*
 * main.c: the command line.  Runs the daemon (in the foreground with -f),
 * or acts as a client of a running one (-x, -r), or checks a config.
 * Signals reach the loop through a signalfd: SIGTERM/SIGINT stop cleanly,
 * SIGHUP reloads.  Also what a process owes its surroundings: systemd's
 * READY=1 and watchdog pings, the switch to an unprivileged user once the
 * sockets and the store are open, and a descriptor limit that select()
 * inside the XMPP and IRC libraries can live with.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <ftw.h>
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

/* ---- systemd: readiness and the watchdog, without libsystemd ---- */

static int sd_fd = -1;
static struct sockaddr_un sd_addr = { .sun_family = AF_UNIX };
static socklen_t sd_len;

/* Open a datagram socket towards $NOTIFY_SOCKET, if systemd set one.  Done
 * before the privileges go; sending needs none (the socket is the
 * manager's, writable by the service whatever its user). */
static void
sd_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sd_addr.sun_path))
		return;
	strcpy(sd_addr.sun_path, path);
	if (path[0] == '@')
		sd_addr.sun_path[0] = '\0';	/* abstract namespace */
	sd_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	sd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static void
sd_send(const char *msg)
{
	if (sd_fd >= 0 && sendto(sd_fd, msg, strlen(msg), 0,
	    (struct sockaddr *)&sd_addr, sd_len) < 0)
		sb_debug("sd_notify %s: %s", msg, strerror(errno));
}

/*
 * The watchdog ping comes from a loop timer, so it stops when the loop
 * stops turning (a callback stuck, a deadlock): that is what systemd
 * should restart us for.  Half the interval, as sd_watchdog_enabled(3)
 * recommends.
 */
static long
on_watchdog(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	(void)loop;
	(void)t;
	sd_send("WATCHDOG=1");
	return (long)(intptr_t)ud;
}

static void
sd_watchdog_start(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long us;
	char *end;
	long ms;

	if (sd_fd < 0 || usec == NULL)
		return;
	if (pid && strtol(pid, NULL, 10) != (long)getpid())
		return;		/* meant for another process */
	errno = 0;
	us = strtoull(usec, &end, 10);
	if (errno || *end || us == 0) {
		sb_warnx("WATCHDOG_USEC=\"%s\" is not a number of microseconds: no watchdog", usec);
		return;
	}
	ms = (long)(us / 2000);
	if (ms < 1)
		ms = 1;
	sb_loop_add_timer(sb_core.loop, ms, on_watchdog, (void *)(intptr_t)ms);
	sb_info("systemd watchdog: a ping every %ld ms", ms);
}

/* ---- least privilege ---- */

/*
 * No descriptor may reach FD_SETSIZE: libstrophe and libircclient select()
 * on theirs, and FD_SET() past 1023 writes outside the set.  A soft limit of
 * 1024 makes the kernel refuse such a descriptor (EMFILE, an error the
 * callers handle) instead; the HTTP channel's connection cap keeps well
 * under it.
 */
static void
fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > FD_SETSIZE) {
		rl.rlim_cur = FD_SETSIZE;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			sb_warn("cannot lower the descriptor limit to %d", FD_SETSIZE);
	}
}

static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_SL || flag == FTW_SLN || (st->st_uid == chown_uid &&
	    st->st_gid == chown_gid))
		return 0;	/* a link is never followed */
	if (flag == FTW_F && st->st_nlink > 1) {
		/* A hard link could be a file from elsewhere: never give it away. */
		sb_warnx("%s: left alone (it has %lu links)", path, (unsigned long)st->st_nlink);
		return 0;
	}
	if (lchown(path, chown_uid, chown_gid) < 0)
		sb_warn("chown %s", path);
	return 0;
}

/*
 * The user's: the state folder and what the store opened in it, so the
 * store can go on writing (and SQLite remove its WAL files at the end);
 * the control socket, with the socket_group's members allowed in.
 */
static int
hand_over(const struct sb_config *conf, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	const char *sock = sb_core.socket;
	struct group *sg;
	gid_t sgid = gid;
	mode_t mode = 0600;

	chown_uid = uid;
	chown_gid = gid;
	if (nftw(sb_core.state_dir, chown_one, 16, FTW_PHYS | FTW_MOUNT) < 0) {
		snprintf(err, errlen, "%s: %s", sb_core.state_dir, strerror(errno));
		return -1;
	}
	if (conf->socket_group) {
		if ((sg = getgrnam(conf->socket_group)) == NULL) {
			snprintf(err, errlen, "socket_group %s: no such group", conf->socket_group);
			return -1;
		}
		sgid = sg->gr_gid;
		mode = 0660;
	}
	if (lchown(sock, uid, sgid) < 0 || chmod(sock, mode) < 0) {
		snprintf(err, errlen, "%s: %s", sock, strerror(errno));
		return -1;
	}
	return 0;
}

/* Only the group: the socket of a daemon that stays root. */
static int
socket_group_only(const struct sb_config *conf, char *err, size_t errlen)
{
	struct group *sg;

	if (conf->socket_group == NULL)
		return 0;
	if ((sg = getgrnam(conf->socket_group)) == NULL) {
		snprintf(err, errlen, "socket_group %s: no such group", conf->socket_group);
		return -1;
	}
	if (chown(sb_core.socket, (uid_t)-1, sg->gr_gid) < 0 ||
	    chmod(sb_core.socket, 0660) < 0) {
		snprintf(err, errlen, "%s: %s", sb_core.socket, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Become daemon.user (and daemon.group) for good, once everything that
 * needed root is open.  Supplementary groups first (the user's own, from
 * /etc/group), then the group, then the user; then make sure none of it
 * can be undone.
 */
static int
drop_privileges(const struct sb_config *conf, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;

	if (conf->user == NULL)
		return socket_group_only(conf, err, errlen);
	if ((pw = getpwnam(conf->user)) == NULL) {
		snprintf(err, errlen, "user %s: no such user", conf->user);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (conf->group) {
		if ((gr = getgrnam(conf->group)) == NULL) {
			snprintf(err, errlen, "group %s: no such group", conf->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (geteuid() == uid && getegid() == gid)
			return socket_group_only(conf, err, errlen);
		snprintf(err, errlen, "started as uid %u, not root: cannot become user %s",
		    (unsigned)geteuid(), conf->user);
		return -1;
	}
	if (uid == 0) {
		snprintf(err, errlen, "user %s is root: nothing would be dropped", conf->user);
		return -1;
	}
	if (hand_over(conf, uid, gid, err, errlen) < 0)
		return -1;
	if (initgroups(conf->user, gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "cannot become %s: %s", conf->user, strerror(errno));
		return -1;
	}
	/* Paranoia, as OpenSSH's permanently_set_uid(): it must not come back. */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
		snprintf(err, errlen, "could become root again after dropping to %s", conf->user);
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
		snprintf(err, errlen, "the switch to %s did not take", conf->user);
		return -1;
	}
	/* The store reopens nothing, but SQLite removes its WAL files by name
	 * at the end and the IPMI backend writes its SDR cache there. */
	if (access(sb_core.state_dir, R_OK | W_OK | X_OK) < 0) {
		snprintf(err, errlen, "user %s cannot reach the state folder %s (%s): let it "
		    "through every folder above", conf->user, sb_core.state_dir, strerror(errno));
		return -1;
	}
	sb_notice("running as user %s (uid %u, gid %u)", conf->user, (unsigned)uid,
	    (unsigned)gid);
	return 0;
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
	fd_limit();
	sd_open();
	/* Only root becomes another user (drop_privileges); the start orders
	 * itself by it. */
	sb_core.will_drop = conf->user != NULL && geteuid() == 0;
	if (sb_core_start(conf, err, sizeof(err)) < 0) {
		sb_errorx("cannot start: %s", err);
		sb_core_shutdown();
		return 1;
	}
	if (drop_privileges(conf, err, sizeof(err)) < 0) {
		sb_errorx("cannot start: %s", err);
		sb_core_shutdown();
		return 1;
	}
	sd_send("READY=1");
	sd_watchdog_start();
	sb_loop_run(sb_core.loop);
	sd_send("STOPPING=1");
	sb_notice("switchboard stopped");
	sb_core_shutdown();
	sb_loop_del_fd(sb_core.loop, sfd);
	close(sfd);
	sb_loop_free(sb_core.loop);
	if (sd_fd >= 0)
		close(sd_fd);
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
