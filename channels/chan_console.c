/*
 * chan_console.c: the control socket.  A Unix socket (mode 0600) that
 * "switchboard -x CMD" and "switchboard -r" talk to; whoever can open it is
 * the local admin.  It owns the listening socket and its clients; it knows
 * nothing of what commands do.
 *
 * The protocol is line-based, one request or answer a line:
 *   client: "TAG COMMAND"        TAG is 1-9 digits, chosen by the client
 *           "!events on|off"     live events (state changes, notices)
 *   daemon: "TAG >"              received: the daemon is alive
 *           "TAG + TEXT"         one line of the command's output
 *           "TAG . ok|fail"      the command finished
 *           "* TEXT"             a live event line
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "net.h"
#include "util.h"

#define MAX_CLIENTS 64
#define MAX_IN      (SB_MAX_LINE * 4)	/* longer lines are cut off */
#define MAX_OUT     (4u << 20)		/* a client that reads nothing is dropped */

struct client {
	struct console *con;
	unsigned long id;
	int     fd;			/* -1 once closed */
	int     events;
	char    identity[96];
	char    in[MAX_IN + 1];
	size_t  inlen;
	int     discarding;		/* inside an overlong line */
	struct sb_buf out;
	size_t  outoff;
};

struct console {
	struct sb_channel *ch;
	char   *path;
	int     fd;
	int     bound;			/* we created path: unlink it on stop */
	struct client **clients;
	size_t  nclients;
	unsigned long next_id;
	int     stopped;
};

static const struct sb_conf_key console_keys[] = {
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static void client_close(struct client *);

static void
client_flush(struct client *c)
{
	while (c->fd >= 0 && c->outoff < c->out.len) {
		ssize_t n = write(c->fd, c->out.buf + c->outoff, c->out.len - c->outoff);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	if (c->fd < 0)
		return;
	if (c->outoff == c->out.len) {
		c->out.len = c->outoff = 0;
		sb_loop_mod_fd(sb_core.loop, c->fd, SB_READ);
	} else {
		sb_loop_mod_fd(sb_core.loop, c->fd, SB_READ | SB_WRITE);
	}
}

/* Queue "prefix line\n" for each line of text, control characters blanked. */
static void
client_write(struct client *c, const char *prefix, const char *text)
{
	const char *p = text;

	if (c->fd < 0)
		return;
	do {
		size_t len = strcspn(p, "\n");
		size_t start = c->out.len;

		sb_buf_puts(&c->out, prefix);
		sb_buf_add(&c->out, p, len);
		c->out.buf[c->out.len] = '\0';
		sb_sanitize_line(c->out.buf + start);
		sb_buf_add(&c->out, "\n", 1);
		p += len;
	} while (*p++ == '\n');
	if (c->out.len - c->outoff > MAX_OUT) {
		sb_warnx("console: client %lu reads too slowly; dropped", c->id);
		client_close(c);
		return;
	}
	client_flush(c);
}

static void
client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	sb_loop_del_fd(sb_core.loop, c->fd);
	close(c->fd);
	c->fd = -1;
	sb_debug("console: client %lu left", c->id);
}

static struct client *
client_find(struct console *con, unsigned long id)
{
	for (size_t i = 0; i < con->nclients; i++)
		if (con->clients[i]->id == id && con->clients[i]->fd >= 0)
			return con->clients[i];
	return NULL;
}

static void
client_line(struct client *c, char *line)
{
	struct console *con = c->con;
	char tag[16], conv[48], prefix[24];
	size_t taglen = strspn(line, "0123456789");
	struct sb_msg *m;

	if (strcmp(line, "!events on") == 0 || strcmp(line, "!events off") == 0) {
		c->events = strcmp(line, "!events on") == 0;
		return;
	}
	if (taglen == 0 || taglen > 9 || line[taglen] != ' ') {
		client_write(c, "* ", "error: expected \"TAG COMMAND\"");
		return;
	}
	memcpy(tag, line, taglen);
	tag[taglen] = '\0';
	snprintf(prefix, sizeof(prefix), "%s >", tag);
	client_write(c, prefix, "");
	snprintf(conv, sizeof(conv), "%lu/%s", c->id, tag);
	m = sb_msg_new(con->ch->name, c->identity, conv, line + taglen + 1);
	/* Every connection of the local admin is one conversation, so a code
	 * from one "-x" is confirmed by the next. */
	sb_msg_set_session(m, "local");
	sb_dispatch(m);
}

static void
client_read(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct client *c = ud;
	struct console *con = c->con;
	char buf[4096];
	ssize_t n;

	(void)loop;
	(void)fd;
	if (mask & SB_WRITE)
		client_flush(c);
	if (!(mask & SB_READ) || c->fd < 0)
		return;
	n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char ch = buf[i];

		if (ch == '\n') {
			c->in[c->inlen] = '\0';
			if (c->discarding) {
				client_write(c, "* ", "error: line too long; ignored");
			} else {
				if (c->inlen && c->in[c->inlen - 1] == '\r')
					c->in[c->inlen - 1] = '\0';
				client_line(c, c->in);
			}
			c->inlen = 0;
			c->discarding = 0;
			/* The command may have stopped this channel or this
			 * client; the structs live on until close(). */
			if (con->stopped || c->fd < 0)
				return;
			continue;
		}
		if (ch == '\0')
			ch = ' ';
		if (c->inlen == MAX_IN)
			c->discarding = 1;
		else
			c->in[c->inlen++] = ch;
	}
}

static void
identify(struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(c->identity, sizeof(c->identity), "console:%s", pw.pw_name);
	else if (len == sizeof(cred))
		snprintf(c->identity, sizeof(c->identity), "console:uid%u", (unsigned)cred.uid);
	else
		snprintf(c->identity, sizeof(c->identity), "console:unknown");
}

/* Forget closed clients; only called where no client callback is running. */
static void
reap(struct console *con)
{
	size_t j = 0;

	for (size_t i = 0; i < con->nclients; i++) {
		struct client *c = con->clients[i];

		if (c->fd >= 0) {
			con->clients[j++] = c;
		} else {
			sb_buf_free(&c->out);
			free(c);
		}
	}
	con->nclients = j;
}

static void
on_accept(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct console *con = ud;
	struct client *c;
	int cfd;

	(void)mask;
	if ((cfd = sb_accept(loop, fd, NULL, NULL, "console", NULL)) < 0) {
		if (errno != EAGAIN && errno != EINTR && !SB_ACCEPT_STARVED(errno))
			sb_warn("console: accept");
		return;
	}
	reap(con);
	if (con->nclients >= MAX_CLIENTS) {
		static const char busy[] = "* error: too many console clients\n";

		(void)!write(cfd, busy, sizeof(busy) - 1);
		close(cfd);
		sb_warnx("console: too many clients; one refused");
		return;
	}
	c = sb_calloc(1, sizeof(*c));
	c->con = con;
	c->fd = cfd;
	c->id = ++con->next_id;
	identify(c);
	if (sb_loop_add_fd(loop, cfd, SB_READ, client_read, c) < 0) {
		close(cfd);
		free(c);
		return;
	}
	con->clients = sb_realloc(con->clients, (con->nclients + 1) * sizeof(*con->clients));
	con->clients[con->nclients++] = c;
	sb_debug("console: client %lu is %s", c->id, c->identity);
}

static int
console_open(struct sb_channel *ch, const config_setting_t *s, char *err, size_t errlen)
{
	struct console *con = sb_calloc(1, sizeof(*con));

	(void)s;
	(void)err;
	(void)errlen;
	con->ch = ch;
	con->fd = -1;
	ch->priv = con;
	return 0;
}

/* Is a live daemon listening on path? */
static int
socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int alive;

	if (fd < 0)
		return 0;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return alive;
}

static int
console_start(struct sb_channel *ch)
{
	struct console *con = ch->priv;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;

	con->stopped = 0;
	free(con->path);
	con->path = sb_strdup(sb_core.socket);
	if (strlen(con->path) >= sizeof(sun.sun_path)) {
		sb_warnx("console: socket path too long: %s", con->path);
		return -1;
	}
	strcpy(sun.sun_path, con->path);
	if (socket_alive(&sun)) {
		sb_warnx("console: %s: another daemon is already listening", con->path);
		return -1;
	}
	unlink(con->path);	/* a stale socket from a daemon that died */
	if ((con->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		sb_warn("console: socket");
		return -1;
	}
	old = umask(0177);
	if (bind(con->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		sb_warn("console: bind %s", con->path);
		goto fail;
	}
	umask(old);
	con->bound = 1;
	if (chmod(con->path, 0600) < 0 || listen(con->fd, 16) < 0 ||
	    sb_loop_add_fd(sb_core.loop, con->fd, SB_READ, on_accept, con) < 0) {
		sb_warn("console: listen on %s", con->path);
		goto fail;
	}
	sb_info("console: listening on %s", con->path);
	return 0;
fail:
	close(con->fd);
	con->fd = -1;
	if (con->bound)
		unlink(con->path);
	con->bound = 0;
	return -1;
}

static int
console_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text,
              unsigned flags)
{
	struct console *con = ch->priv;
	unsigned long id = strtoul(req->conv, NULL, 10);
	const char *tag = strchr(req->conv, '/');
	struct client *c = client_find(con, id);
	char prefix[24];

	if (c == NULL || tag == NULL)
		return 0;	/* the client left: nothing to do */
	tag++;
	if (text && *text) {
		snprintf(prefix, sizeof(prefix), "%s + ", tag);
		client_write(c, prefix, text);
	}
	if ((flags & SB_REPLY_DONE) && c->fd >= 0) {
		snprintf(prefix, sizeof(prefix), "%s . ", tag);
		client_write(c, prefix, (flags & SB_REPLY_FAIL) ? "fail" : "ok");
	}
	return 0;
}

static int
console_send(struct sb_channel *ch, const char *to, const char *text)
{
	struct console *con = ch->priv;

	(void)to;
	for (size_t i = 0; i < con->nclients; i++)
		if (con->clients[i]->events && con->clients[i]->fd >= 0)
			client_write(con->clients[i], "* ", text);
	return 0;
}

/* A spooled notice: logged, and shown to the clients that asked for
 * events.  Nothing confirms more than that: done at once. */
static int
console_deliver(struct sb_channel *ch, const struct sb_notice *n)
{
	const char *text = n->text ? n->text : "";
	size_t first = strcspn(text, "\n");

	sb_info("console: notice %llu: %.*s%s", (unsigned long long)n->id,
	    (int)(first > 400 ? 400 : first), text, text[first] ? " ..." : "");
	console_send(ch, n->to, text);
	return SB_SEND_DONE;
}

static void
console_describe(struct sb_channel *ch, struct sb_buf *b)
{
	struct console *con = ch->priv;
	size_t live = 0;

	for (size_t i = 0; i < con->nclients; i++)
		live += con->clients[i]->fd >= 0;
	sb_buf_printf(b, "%s, %zu client%s", con->path ? con->path : "-", live,
	    live == 1 ? "" : "s");
}

static void
console_stop(struct sb_channel *ch)
{
	struct console *con = ch->priv;

	con->stopped = 1;
	for (size_t i = 0; i < con->nclients; i++)
		client_close(con->clients[i]);
	if (con->fd >= 0) {
		sb_loop_del_fd(sb_core.loop, con->fd);
		close(con->fd);
		con->fd = -1;
	}
	if (con->bound && con->path)
		unlink(con->path);
	con->bound = 0;
}

static void
console_close(struct sb_channel *ch)
{
	struct console *con = ch->priv;

	console_stop(ch);
	reap(con);
	free(con->clients);
	free(con->path);
	free(con);
	ch->priv = NULL;
}

const struct sb_channel_driver sb_chan_console = {
	.name = "console",
	.abi = SB_CHANNEL_ABI,
	.keys = console_keys,
	.open = console_open,
	.start = console_start,
	.reply = console_reply,
	.send = console_send,
	.deliver = console_deliver,
	.describe = console_describe,
	.stop = console_stop,
	.close = console_close,
};
