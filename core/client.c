/*
 * client.c: the client side of the control socket (protocol in
 * channels/chan_console.c).  "-x CMD" sends one command and prints its
 * output; "-r" is an interactive console with line editing and history
 * (libedit) that also prints live events as they happen.  When standard
 * input is not a terminal, -r reads commands line by line, waiting for each
 * to finish, so scripts and tests can drive it.
 *
 * libedit is loaded (dlopen) by the interactive console alone: the daemon
 * and -x never map it, nor libtinfo, libbsd and libmd under it (four
 * libraries fewer at every start).  Without it, -r on a terminal reads
 * lines as from a pipe.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include "client.h"
#include "module.h"
#include "util.h"

static struct {
	int	(*add)(const char *);
	int	(*read)(const char *);
	int	(*write)(const char *);
	void	(*handler_install)(const char *, rl_vcpfunc_t *);
	void	(*handler_remove)(void);
	void	(*read_char)(void);
	void	(*redisplay)(void);
	int	*end;
	int	*catch_signals;
	int	(**getc_function)(FILE *);
} ed;

#define add_history			ed.add
#define read_history			ed.read
#define write_history			ed.write
#define rl_callback_handler_install	ed.handler_install
#define rl_callback_handler_remove	ed.handler_remove
#define rl_callback_read_char		ed.read_char
#define rl_forced_update_display	ed.redisplay
#define rl_end				(*ed.end)
#define rl_catch_signals		(*ed.catch_signals)
#define rl_getc_function		(*ed.getc_function)

/* Fills ed; -1 (said on standard error) when libedit cannot be used. */
static int
edit_load(void)
{
	static const char *const sonames[] = { "libedit.so.2" };
	static const struct sb_libsym syms[] = {
#define SYM(f, name) { name, offsetof(__typeof__(ed), f) }
		SYM(add, "add_history"), SYM(read, "read_history"),
		SYM(write, "write_history"),
		SYM(handler_install, "rl_callback_handler_install"),
		SYM(handler_remove, "rl_callback_handler_remove"),
		SYM(read_char, "rl_callback_read_char"),
		SYM(redisplay, "rl_forced_update_display"), SYM(end, "rl_end"),
		SYM(catch_signals, "rl_catch_signals"),
		SYM(getc_function, "rl_getc_function"),
#undef SYM
	};
	char why[256];

	if (sb_library_load(sonames, SB_ARRAY_LEN(sonames), syms, SB_ARRAY_LEN(syms), &ed,
	    why, sizeof(why)) < 0) {
		fprintf(stderr, "switchboard: no line editing (%s)\n", why);
		return -1;
	}
	return 0;
}

struct conn {
	int     fd;
	char    in[65536];
	size_t  inlen;
	unsigned tag;		/* the command in flight, 0 if none */
	int     acked;
	int     status;		/* SB_EXIT_* of the last finished command */
	int     interactive;
};

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof(*c));
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "switchboard: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "switchboard: no daemon at %s: %s\n", path, strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		return -1;
	}
	return 0;
}

static int
conn_send(struct conn *c, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = write(c->fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static int
start_command(struct conn *c, const char *cmd)
{
	char *line;
	int rc;

	c->tag = c->tag % 999999999 + 1;
	c->acked = 0;
	line = sb_asprintf("%u %s\n", c->tag, cmd);
	rc = conn_send(c, line);
	free(line);
	return rc;
}

static void
print_event(struct conn *c, const char *text)
{
	if (c->interactive) {
		/* Print above the prompt, then redraw what was being typed. */
		fputs("\r\033[K", stdout);
		printf("%s\n", text);
		fflush(stdout);
		rl_forced_update_display();
	} else {
		printf("%s\n", text);
		fflush(stdout);
	}
}

/* Handle one line from the daemon; returns 1 when the command finished. */
static int
handle_line(struct conn *c, char *line)
{
	char *sp;
	unsigned long tag;

	if (line[0] == '*' && line[1] == ' ') {
		print_event(c, line + 2);
		return 0;
	}
	tag = strtoul(line, &sp, 10);
	if (sp == line || *sp != ' ' || tag != c->tag)
		return 0;
	if (sp[1] == '>') {
		c->acked = 1;
	} else if (sp[1] == '+' && sp[2] == ' ') {
		printf("%s\n", sp + 3);
	} else if (sp[1] == '.') {
		c->status = strcmp(sp + 2, " ok") == 0 ? SB_EXIT_OK : SB_EXIT_FAIL;
		c->tag = c->tag;	/* keep for numbering */
		fflush(stdout);
		return 1;
	}
	return 0;
}

/* Read what is there; returns 1 if the command finished, -1 on EOF. */
static int
conn_read(struct conn *c)
{
	ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
	int finished = 0;
	char *start, *nl;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	c->inlen += (size_t)n;
	c->in[c->inlen] = '\0';
	start = c->in;
	while ((nl = strchr(start, '\n')) != NULL) {
		*nl = '\0';
		finished |= handle_line(c, start);
		start = nl + 1;
	}
	c->inlen -= (size_t)(start - c->in);
	memmove(c->in, start, c->inlen);
	if (c->inlen == sizeof(c->in) - 1)
		c->inlen = 0;	/* an absurd line: drop it */
	return finished;
}

/* Wait for the command in flight.  The daemon must acknowledge within
 * ack_ms; then the command has until done_ms. */
static int
wait_command(struct conn *c, long long ack_ms, long long done_ms)
{
	long long start = mono_ms();

	for (;;) {
		long long now = mono_ms(), deadline = c->acked ? start + done_ms : start + ack_ms;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r;

		if (now >= deadline) {
			if (!c->acked) {
				fprintf(stderr, "switchboard: the daemon did not answer within %lld s\n",
				    ack_ms / 1000);
				return SB_EXIT_NODAEMON;
			}
			fprintf(stderr, "switchboard: no result within %lld s\n", done_ms / 1000);
			return SB_EXIT_FAIL;
		}
		r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		switch (conn_read(c)) {
		case 1:
			return c->status;
		case -1:
			fprintf(stderr, "switchboard: the daemon closed the connection\n");
			return c->acked ? SB_EXIT_FAIL : SB_EXIT_NODAEMON;
		}
	}
}

int
sb_client_exec(const char *path, const char *command, int timeout_s)
{
	struct conn c;
	int rc;

	if (conn_open(&c, path) < 0)
		return SB_EXIT_NODAEMON;
	if (start_command(&c, command) < 0) {
		close(c.fd);
		return SB_EXIT_NODAEMON;
	}
	rc = wait_command(&c, 2000, (long long)timeout_s * 1000);
	close(c.fd);
	return rc;
}

/* ---- interactive console ---- */

static struct conn *active;
static int want_quit;

static void
on_line(char *line)
{
	if (line == NULL) {
		want_quit = 1;
		return;
	}
	if (*line) {
		add_history(line);
		if (strcmp(line, "quit") == 0 || strcmp(line, "exit") == 0) {
			want_quit = 1;
		} else if (start_command(active, line) < 0) {
			want_quit = 1;
		} else {
			/* Let the output appear before the next prompt. */
			rl_callback_handler_remove();
			if (wait_command(active, 2000, 600000) == SB_EXIT_NODAEMON)
				want_quit = 1;
			if (!want_quit)
				rl_callback_handler_install("switchboard> ", on_line);
		}
	}
	free(line);
}

/*
 * libedit's callback interface echoes ^D instead of ending the session, so
 * the console reads keys itself: ^D on an empty line, or the end of input,
 * leaves like "quit" does.
 */
static int
console_getc(FILE *f)
{
	unsigned char c;
	ssize_t n;

	do
		n = read(fileno(f), &c, 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || (c == 4 && rl_end == 0)) {
		want_quit = 1;
		return '\n';
	}
	return c;
}

static char *
history_path(void)
{
	const char *home = getenv("HOME");

	return home ? sb_asprintf("%s/.switchboard_history", home) : NULL;
}

static int
console_tty(struct conn *c)
{
	char *hist = history_path();

	active = c;
	c->interactive = 1;
	if (hist)
		read_history(hist);
	/* libedit would re-send a caught signal to the whole process group,
	 * hitting whatever started us (make, a demo runner). */
	rl_catch_signals = 0;
	rl_getc_function = console_getc;
	rl_callback_handler_install("switchboard> ", on_line);
	while (!want_quit) {
		struct pollfd p[2] = {
			{ .fd = 0, .events = POLLIN },
			{ .fd = c->fd, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents && conn_read(c) < 0) {
			print_event(c, "the daemon closed the connection");
			break;
		}
		if (p[0].revents && !want_quit)
			rl_callback_read_char();
	}
	rl_callback_handler_remove();
	putchar('\n');
	if (hist) {
		write_history(hist);
		free(hist);
	}
	return SB_EXIT_OK;
}

static int
console_pipe(struct conn *c)
{
	char line[8192];
	int rc = SB_EXIT_OK;

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strcmp(line, "quit") == 0 || strcmp(line, "exit") == 0)
			break;
		printf("switchboard> %s\n", line);
		if (start_command(c, line) < 0)
			return SB_EXIT_NODAEMON;
		if ((rc = wait_command(c, 2000, 600000)) == SB_EXIT_NODAEMON)
			return rc;
	}
	return SB_EXIT_OK;
}

int
sb_client_console(const char *path)
{
	struct conn c;
	int rc;

	if (conn_open(&c, path) < 0)
		return SB_EXIT_NODAEMON;
	signal(SIGPIPE, SIG_IGN);
	if (conn_send(&c, "!events on\n") < 0) {
		close(c.fd);
		return SB_EXIT_NODAEMON;
	}
	if (isatty(0) && edit_load() == 0) {
		printf("Connected to switchboard at %s. Type 'help', or 'quit' to leave.\n", path);
		rc = console_tty(&c);
	} else {
		rc = console_pipe(&c);
	}
	close(c.fd);
	return rc;
}
