/*
 * fuzz_console.c: the control socket's protocol (channels/chan_console.c)
 * as a client's bytes arrive: framing into lines (CR LF, NULs, overlong
 * lines), "TAG COMMAND" and "!events", dispatch, and the answers written
 * back, every one of which must be a well-formed protocol line ("TAG >",
 * "TAG + TEXT", "TAG . ok|fail", "* TEXT") with no control character.
 *
 * chan_console.c is included rather than linked so that its static reader
 * can be called; each input is one client on a socket pair.  The client
 * is given the identity fuzz:op, an operator through the ACL, rather than
 * the local admin the socket's owner is: the fuzzer would otherwise be
 * free to reload and stop the daemon under itself.
 *
 * Input: the bytes the client writes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "chan_console.c"

#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct sb_channel cch;
static struct console *CON;

static void
setup(void)
{
	static char name[] = "console", ctx[] = "default";
	char err[256];

	sb_fuzz_world_start(NULL);
	cch.drv = &sb_chan_console;
	cch.name = name;
	cch.context = cch.group_context = ctx;
	if (console_open(&cch, NULL, err, sizeof(err)) < 0)
		abort();
	cch.started = 1;
	if (sb_channel_register(&cch) < 0)
		abort();
	CON = cch.priv;
}

/* Every line the daemon wrote is one of the protocol's. */
static void
check_output(char *out, size_t len)
{
	char *line = out, *end = out + len;

	if (len && out[len - 1] != '\n')
		abort();
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t tag = strspn(line, "0123456789");

		*nl = '\0';
		for (char *p = line; *p; p++)
			if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				abort();
		if (strncmp(line, "* ", 2) != 0) {
			if (tag == 0 || tag > 9)
				abort();
			if (strcmp(line + tag, " >") != 0 && strncmp(line + tag, " + ", 3) != 0 &&
			    strcmp(line + tag, " . ok") != 0 && strcmp(line + tag, " . fail") != 0)
				abort();
		}
		line = nl + 1;
	}
}

static size_t
drain(int fd, char **buf, size_t len)
{
	char tmp[65536];
	ssize_t n;

	while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
		*buf = realloc(*buf, len + (size_t)n + 1);
		if (*buf == NULL)
			abort();
		memcpy(*buf + len, tmp, (size_t)n);
		len += (size_t)n;
	}
	return len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client *c;
	int sv[2], avail;
	size_t off = 0, outlen = 0;
	char *out = NULL;

	if (size > 65536)
		return -1;
	if (CON == NULL)
		setup();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	c = sb_calloc(1, sizeof(*c));
	c->con = CON;
	c->fd = sv[0];
	c->id = ++CON->next_id;
	snprintf(c->identity, sizeof(c->identity), "fuzz:op");
	CON->clients = sb_realloc(CON->clients, (CON->nclients + 1) * sizeof(*CON->clients));
	CON->clients[CON->nclients++] = c;

	/* In pieces, as a socket delivers them: every read() of client_read
	 * meets what is there. */
	while (off < size && c->fd >= 0) {
		ssize_t n = write(sv[1], data + off, size - off < 4096 ? size - off : 4096);

		if (n <= 0)
			abort();
		off += (size_t)n;
		while (c->fd >= 0 && ioctl(sv[0], FIONREAD, &avail) == 0 && avail > 0)
			client_read(sb_core.loop, sv[0], SB_READ, c);
		outlen = drain(sv[1], &out, outlen);
		for (int i = 0; i < 4; i++)
			sb_loop_once(sb_core.loop, 0);
	}
	for (int i = 0; i < 8; i++)
		sb_loop_once(sb_core.loop, 0);
	if (c->fd >= 0)
		client_flush(c);
	outlen = drain(sv[1], &out, outlen);
	if (out)
		check_output(out, outlen);
	free(out);
	client_close(c);
	close(sv[1]);
	reap(CON);
	return 0;
}
