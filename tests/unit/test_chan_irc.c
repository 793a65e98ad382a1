/*
 * test_chan_irc.c: unit tests for channels/chan_irc.c.
 *
 * The pure parts first (chan_irc.h): line budgets, cutting on UTF-8
 * boundaries, CR/LF/NUL scrubbing, the token bucket, how a line addresses
 * the bot.  Then the driver itself on the real loop against a scripted
 * server on 127.0.0.1: what reaches the wire, byte for byte (registration,
 * nick collision, injection attempts, the 512-byte limit with the prefix
 * the server adds, the channel line limit, refusals), and how spooled
 * notices are confirmed: DONE once written, LATER with their queued lines
 * dropped when the connection goes.  Waits run the loop until the
 * expected line arrives or PATIENCE_MS passes; nothing sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libconfig.h>

#include "acl.h"
#include "chan_irc.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "util.h"

#define PATIENCE_MS 10000

/* ---- helpers ------------------------------------------------------------- */

static int
has_wire_breaks(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 1;
	return 0;
}

/* Is s[0..len) valid UTF-8 (no check of overlongs: enough here)? */
static int
utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 :
		    (s[i] & 0xF0) == 0xE0 ? 3 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;

		if (n == 0 || i + n > len)
			return 0;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += n;
	}
	return 1;
}

static void
free_pieces(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- budget and cutting --------------------------------------------------- */

static void
test_budget_fills_512_exactly(void **state)
{
	const char *prefix = "sbbot!~switchbd@host.example.org";
	size_t b = sb_irc_text_budget(strlen(prefix), "PRIVMSG", "#ops");
	char line[1024];
	int n;

	(void)state;
	memset(line, 0, sizeof(line));
	n = snprintf(line, sizeof(line), ":%s PRIVMSG #ops :%*s\r\n", prefix, (int)b, "x");
	assert_int_equal(n, SB_IRC_LINE_MAX);
	/* Nothing fits when the fixed part alone is too long. */
	assert_int_equal(sb_irc_text_budget(600, "PRIVMSG", "#ops"), 0);
}

static void
test_cut_ascii(void **state)
{
	char s[100];

	(void)state;
	memset(s, 'a', sizeof(s));
	assert_int_equal(sb_irc_cut(s, sizeof(s), 40), 40);
	assert_int_equal(sb_irc_cut(s, 30, 40), 30);	/* fits whole */
	assert_int_equal(sb_irc_cut(s, 30, 0), 0);
}

static void
test_cut_prefers_a_space_near_the_end(void **state)
{
	const char *s = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

	(void)state;
	/* the space is at 34; with max 40 it is in the last quarter */
	assert_int_equal(sb_irc_cut(s, strlen(s), 40), 35);
	/* with max 60 it is not: cut at the limit */
	assert_int_equal(sb_irc_cut(s, strlen(s), 60), 60);
}

static void
test_cut_never_splits_utf8(void **state)
{
	/* é (2 bytes), € (3 bytes), 😀 (4 bytes), mixed with ASCII */
	const char *pieces[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "a" };
	unsigned char s[400];
	size_t len = 0;

	(void)state;
	for (int i = 0; len + 4 < sizeof(s); i++) {
		const char *p = pieces[(i * 7 + i / 3) % 4];

		memcpy(s + len, p, strlen(p));
		len += strlen(p);
	}
	for (size_t max = 1; max < 120; max++) {
		size_t off = 0;

		while (off < len) {
			size_t n = sb_irc_cut((const char *)s + off, len - off, max);

			assert_true(n > 0 && n <= max);
			/* a 1- or 2-byte budget cannot hold a 3- or 4-byte
			 * character: then, and only then, the cut may split */
			if (max >= 4)
				assert_true(utf8_ok(s + off, n));
			off += n;
		}
		assert_int_equal(off, len);
	}
}

static void
test_cut_invalid_utf8_still_progresses(void **state)
{
	unsigned char s[64];

	(void)state;
	memset(s, 0x80, sizeof(s));	/* continuation bytes only */
	assert_int_equal(sb_irc_cut((const char *)s, sizeof(s), 10), 10);
}

/* ---- scrubbing and wrapping ----------------------------------------------- */

static void
test_scrub(void **state)
{
	char s[] = "a\rb\nc\0d";

	(void)state;
	sb_irc_scrub(s, sizeof(s) - 1);
	assert_memory_equal(s, "a b c d", 7);
}

static void
test_wrap_lines_and_crlf(void **state)
{
	const char *text = "one\r\n\ntwo\nthree\r\n";
	char **v;
	size_t n = sb_irc_wrap(text, strlen(text), 100, &v);

	(void)state;
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "one");
	assert_string_equal(v[1], "two");
	assert_string_equal(v[2], "three");
	assert_null(v[3]);
	free_pieces(v, n);
}

static void
test_wrap_injection_becomes_text(void **state)
{
	/* A reply trying to smuggle a second command, with CR alone, LF,
	 * CRLF and NUL: each part is a piece of text, never a line break. */
	const char text[] = "ok\r\nQUIT :bye\rPRIVMSG #x :hi\0KILL me";
	char **v;
	size_t n = sb_irc_wrap(text, sizeof(text) - 1, 100, &v);

	(void)state;
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "ok");
	assert_string_equal(v[1], "QUIT :bye PRIVMSG #x :hi KILL me");
	for (size_t i = 0; i < n; i++)
		assert_false(has_wire_breaks(v[i], strlen(v[i])));
	free_pieces(v, n);
}

static void
test_wrap_long_line_reassembles(void **state)
{
	char text[3000];
	char **v;
	size_t n, len = 0;
	char back[3000];

	(void)state;
	while (len + 3 < sizeof(text) - 1) {
		memcpy(text + len, len % 5 ? "\xe2\x82\xac" : "ab ", 3);	/* € and ASCII */
		len += 3;
	}
	text[len] = '\0';
	n = sb_irc_wrap(text, len, 100, &v);
	assert_true(n >= len / 100);
	back[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		assert_true(strlen(v[i]) <= 100 && strlen(v[i]) > 0);
		assert_true(utf8_ok((unsigned char *)v[i], strlen(v[i])));
		strcat(back, v[i]);
	}
	assert_string_equal(back, text);
	free_pieces(v, n);
}

static void
test_wrap_fuzz(void **state)
{
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 300; round++) {
		char text[600];
		size_t len = (size_t)(round * 2 % 599) + 1, budget = (size_t)round % 60 + 1;
		char **v;
		size_t n;

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			text[i] = "ab \r\n\0\xc3\xa9\x80x"[(seed >> 16) % 10];
		}
		n = sb_irc_wrap(text, len, budget, &v);
		for (size_t i = 0; i < n; i++) {
			size_t pl = strlen(v[i]);

			assert_true(pl > 0 && pl <= budget);
			assert_false(has_wire_breaks(v[i], pl));
		}
		assert_null(v[n]);
		free_pieces(v, n);
	}
}

/* ---- the token bucket -------------------------------------------------------- */

static void
test_bucket_burst_then_rate(void **state)
{
	struct sb_irc_bucket b;

	(void)state;
	sb_irc_bucket_init(&b, 4, 2.0, 1000);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sb_irc_bucket_take(&b, 1000), 1);
	assert_int_equal(sb_irc_bucket_take(&b, 1000), 0);
	/* 2 a second: the next token in 500 ms */
	assert_in_range(sb_irc_bucket_wait(&b, 1000), 500, 501);
	assert_int_equal(sb_irc_bucket_take(&b, 1400), 0);
	assert_int_equal(sb_irc_bucket_take(&b, 1501), 1);
	assert_int_equal(sb_irc_bucket_take(&b, 1501), 0);
	/* a long silence refills to the burst, no more */
	for (int i = 0; i < 4; i++)
		assert_int_equal(sb_irc_bucket_take(&b, 100000), 1);
	assert_int_equal(sb_irc_bucket_take(&b, 100000), 0);
	assert_true(sb_irc_bucket_wait(&b, 100000) > 0);
}

static void
test_bucket_long_run_rate(void **state)
{
	struct sb_irc_bucket b;
	uint64_t t = 0;
	int sent = 0;

	(void)state;
	sb_irc_bucket_init(&b, 5, 4.0, 0);
	/* Take as fast as the bucket allows for 10 s: burst + 10 * rate. */
	while (t <= 10000) {
		if (sb_irc_bucket_take(&b, t))
			sent++;
		else
			t += (uint64_t)sb_irc_bucket_wait(&b, t);
	}
	assert_in_range(sent, 44, 45);
}

/* ---- addressing ---------------------------------------------------------------- */

static int
is_node(const char *name, void *ud)
{
	(void)ud;
	return strcmp(name, "mail") == 0 || strcmp(name, "web01") == 0;
}

static const char *
parse(const char *text, int query, char *node)
{
	const char *cmd = NULL;

	if (!sb_irc_parse_command(text, query, "sbbot", "!", is_node, NULL, node, 32, &cmd))
		return NULL;
	return cmd;
}

static void
test_parse_channel(void **state)
{
	char node[32];

	(void)state;
	assert_string_equal(parse("!status", 0, node), "status");
	assert_string_equal(node, "");
	assert_string_equal(parse("  !status web01", 0, node), "status web01");
	assert_null(parse("! status", 0, node));
	assert_null(parse("!", 0, node));
	assert_null(parse("hello everyone", 0, node));
	assert_null(parse("bob: are you there?", 0, node));	/* not a node */
	assert_string_equal(parse("sbbot: nodes", 0, node), "nodes");
	assert_string_equal(parse("SBBOT, nodes", 0, node), "nodes");
	assert_null(parse("sbbot:", 0, node));
	assert_null(parse("sbbotx: nodes", 0, node));
	assert_string_equal(parse("mail: status", 0, node), "status");
	assert_string_equal(node, "mail");
	assert_string_equal(parse("sbbot: web01: sensors", 0, node), "sensors");
	assert_string_equal(node, "web01");
	assert_null(parse("mail:", 0, node));
	assert_string_equal(node, "");
	assert_null(parse("mail, status", 0, node));	/* a comma addresses people */
}

static void
test_parse_query(void **state)
{
	char node[32];

	(void)state;
	assert_string_equal(parse("status", 1, node), "status");
	assert_string_equal(parse("!status", 1, node), "status");
	assert_string_equal(parse("sbbot: status", 1, node), "status");
	assert_string_equal(parse("mail: power cycle", 1, node), "power cycle");
	assert_string_equal(node, "mail");
	assert_null(parse("   ", 1, node));
}

static void
test_parse_irc_case_mapping(void **state)
{
	const char *cmd;
	char node[32];

	(void)state;
	assert_int_equal(sb_irc_casecmp("Sb[Bot]\\^", "sB{bOT}|~"), 0);
	assert_true(sb_irc_casecmp("sbbot", "sbbot_") != 0);
	assert_int_equal(sb_irc_parse_command("SB{BOT}: nodes", 0, "sb[bot]", "!", is_node,
	    NULL, node, sizeof(node), &cmd), 1);
	assert_string_equal(cmd, "nodes");
}

static void
test_targets(void **state)
{
	(void)state;
	assert_true(sb_irc_valid_target("#ops"));
	assert_true(sb_irc_valid_target("alice"));
	assert_false(sb_irc_valid_target(""));
	assert_false(sb_irc_valid_target(NULL));
	assert_false(sb_irc_valid_target(":alice"));
	assert_false(sb_irc_valid_target("#ops\r\nQUIT"));
	assert_false(sb_irc_valid_target("#ops QUIT"));
	assert_false(sb_irc_valid_target("#a,#b"));
	assert_true(sb_irc_is_channel("#ops"));
	assert_true(sb_irc_is_channel("&local"));
	assert_false(sb_irc_is_channel("alice"));
	assert_false(sb_irc_is_channel("#"));
}

static void
test_loopback(void **state)
{
	(void)state;
	assert_true(sb_irc_is_loopback("127.0.0.1"));
	assert_true(sb_irc_is_loopback("127.1.2.3"));
	assert_true(sb_irc_is_loopback("::1"));
	assert_true(sb_irc_is_loopback("::ffff:127.0.0.1"));
	assert_false(sb_irc_is_loopback("192.0.2.7"));
	assert_false(sb_irc_is_loopback("2001:db8::1"));
	assert_false(sb_irc_is_loopback("localhost"));	/* numeric only */
}

static void
test_escape_percent(void **state)
{
	char *s;

	(void)state;
	s = sb_irc_escape_percent("pa%ss%");
	assert_string_equal(s, "pa%%ss%%");
	free(s);
	s = sb_irc_escape_percent("");
	assert_string_equal(s, "");
	free(s);
	assert_null(sb_irc_escape_percent(NULL));
}

/* ---- the driver against a scripted server ----------------------------------- */

struct server {
	int     lfd, fd;
	int     port;
	char    in[65536];
	size_t  inlen;
};

static struct server srv;
static struct sb_channel chan;
static config_t cf;

/* What the driver told the spool (sb_irc_notice_result, sb_irc_notify_kick). */
static struct {
	uint64_t id;
	int     result;
} results[64];
static size_t nresults;
static unsigned kicks;

static void
capture_result(uint64_t id, int result)
{
	assert_true(nresults < SB_ARRAY_LEN(results));
	results[nresults].id = id;
	results[nresults].result = result;
	nresults++;
}

static void
capture_kick(const char *channel)
{
	assert_string_equal(channel, "irc");
	kicks++;
}

static void
srv_listen(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	memset(&srv, 0, sizeof(srv));
	srv.fd = -1;
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(srv.lfd >= 0);
	assert_int_equal(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(srv.lfd, 4), 0);
	assert_int_equal(getsockname(srv.lfd, (struct sockaddr *)&a, &alen), 0);
	srv.port = ntohs(a.sin_port);
}

/* Run the loop a little, and take what the bot sent. */
static void
turn(void)
{
	struct pollfd p = { .fd = srv.fd >= 0 ? srv.fd : srv.lfd, .events = POLLIN };

	sb_loop_once(sb_core.loop, 20);
	if (poll(&p, 1, 0) <= 0)
		return;
	if (srv.fd < 0) {
		srv.fd = accept(srv.lfd, NULL, NULL);
		return;
	}
	for (;;) {
		ssize_t n = recv(srv.fd, srv.in + srv.inlen, sizeof(srv.in) - srv.inlen - 1,
		    MSG_DONTWAIT);

		if (n <= 0)
			break;
		srv.inlen += (size_t)n;
	}
}

/* The next line the bot sent (CR LF stripped; caller frees), or NULL
 * after PATIENCE_MS.  Every line must end with CR LF and be at most 512
 * bytes with it. */
static char *
srv_line(void)
{
	uint64_t end = sb_now_ms() + PATIENCE_MS;

	while (sb_now_ms() < end) {
		char *nl = memchr(srv.in, '\n', srv.inlen);

		if (nl) {
			size_t len = (size_t)(nl - srv.in) + 1;
			char *line;

			assert_true(len >= 2 && nl[-1] == '\r');
			assert_true(len <= SB_IRC_LINE_MAX);
			line = strndup(srv.in, len - 2);
			assert_false(has_wire_breaks(line, len - 2));
			memmove(srv.in, srv.in + len, srv.inlen - len);
			srv.inlen -= len;
			return line;
		}
		turn();
	}
	return NULL;
}

/* Skip lines until one starts with want; returns it (caller frees). */
static char *
srv_expect(const char *want)
{
	char *line;

	while ((line = srv_line()) != NULL) {
		if (strncmp(line, want, strlen(want)) == 0)
			return line;
		free(line);
	}
	fail_msg("the bot never sent \"%s\"", want);
	return NULL;
}

/* Nothing more arrives within ms (the loop keeps running). */
static void
srv_quiet(long ms)
{
	uint64_t end = sb_now_ms() + (uint64_t)ms;

	while (sb_now_ms() < end)
		turn();
	if (srv.inlen) {
		srv.in[srv.inlen] = '\0';
		fail_msg("unexpected output: %s", srv.in);
	}
}

static void
srv_send(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	memcpy(buf + n, "\r\n", 2);
	assert_int_equal(send(srv.fd, buf, (size_t)n + 2, MSG_NOSIGNAL), n + 2);
}

#define HOST "host.example.org"

/* The pacing under test: none to speak of, but for test_wire_pacing. */
static const char *pacing = "flood_burst = 100; flood_rate = 100.0;";
static const char *extra = "";	/* more keys, for one test */

static int
bot_setup(void **state)
{
	char text[1024], err[256] = "";
	const config_setting_t *s;
	static const struct sb_acl_rule rules[] = {
		{ (char *)"irc:alice!*@" HOST, (char *)"admin", 1 },
	};

	(void)state;
	sb_log_set_level(SB_LOG_ERR);
	sb_irc_notice_result = capture_result;
	sb_irc_notify_kick = capture_kick;
	nresults = 0;
	kicks = 0;
	sb_core.loop = sb_loop_new();
	assert_non_null(sb_core.loop);
	assert_int_equal(sb_acl_apply("acl.conf", rules, 1, NULL, 0, err, sizeof(err)), 0);
	srv_listen();
	snprintf(text, sizeof(text),
	    "irc = { server = \"127.0.0.1\"; port = %d; password = \"pa%%ss\";"
	    " nick = \"sbbot\"; alt_nicks = [ \"sbbot_\" ]; username = \"switchbd\";"
	    " channels = [ \"#ops sesame\" ]; %s"
	    " max_channel_lines = 3; %s };", srv.port, pacing, extra);
	config_init(&cf);
	assert_int_equal(config_read_string(&cf, text), CONFIG_TRUE);
	s = config_lookup(&cf, "irc");
	memset(&chan, 0, sizeof(chan));
	chan.drv = &sb_chan_irc;
	chan.name = (char *)"irc";
	chan.context = chan.group_context = (char *)"default";
	assert_int_equal(sb_chan_irc.open(&chan, s, err, sizeof(err)), 0);
	assert_int_equal(sb_channel_register(&chan), 0);
	assert_int_equal(sb_chan_irc.start(&chan), 0);
	chan.started = 1;
	return 0;
}

static int
bot_setup_paced(void **state)
{
	pacing = "flood_burst = 2; flood_rate = 10.0;";
	return bot_setup(state);
}

static int
bot_setup_small_queue(void **state)
{
	extra = "queue_max = 10;";
	return bot_setup(state);
}

static int
bot_teardown(void **state)
{
	pacing = "flood_burst = 100; flood_rate = 100.0;";
	extra = "";
	(void)state;
	sb_chan_irc.close(&chan);
	sb_channel_unregister(&chan);
	config_destroy(&cf);
	if (srv.fd >= 0)
		close(srv.fd);
	close(srv.lfd);
	sb_acl_clear();
	sb_loop_free(sb_core.loop);
	sb_core.loop = NULL;
	return 0;
}

/* Registration up to the join of #ops: the nick is taken at first. */
static void
register_bot(void)
{
	char *l;

	l = srv_expect("PASS");
	assert_string_equal(l, "PASS pa%ss");	/* not formatted a second time */
	free(l);
	l = srv_expect("NICK");
	assert_string_equal(l, "NICK sbbot");
	free(l);
	free(srv_expect("USER switchbd "));
	srv_send(":irc.test 433 * sbbot :Nickname already in use");
	l = srv_expect("NICK");
	assert_string_equal(l, "NICK sbbot_");
	free(l);
	srv_send(":irc.test 001 sbbot_ :Welcome to the test network sbbot_!~switchbd@" HOST);
	l = srv_expect("JOIN");
	assert_string_equal(l, "JOIN #ops sesame");
	free(l);
	srv_send(":sbbot_!~switchbd@" HOST " JOIN #ops");
}

static struct sb_msg *
request(const char *conv, int group, const char *text)
{
	struct sb_msg *m = sb_msg_new("irc", "irc:alice!a@" HOST, conv, text);

	m->kind = group ? SB_MSG_GROUP : SB_MSG_DIRECT;
	return m;
}

static void
test_wire_registration_and_collision(void **state)
{
	(void)state;
	register_bot();
	srv_quiet(100);
}

static void
test_wire_injection_in_reply(void **state)
{
	struct sb_msg *m;
	char *l;

	(void)state;
	register_bot();
	m = request("alice", 0, "status");
	sb_chan_irc.reply(&chan, m, "ok\r\nQUIT :pwned\rJOIN #evil\nKILL x", SB_REPLY_DONE);
	sb_msg_unref(m);
	l = srv_line();
	assert_string_equal(l, "PRIVMSG alice :ok");
	free(l);
	l = srv_line();
	assert_string_equal(l, "PRIVMSG alice :QUIT :pwned JOIN #evil");
	free(l);
	l = srv_line();
	assert_string_equal(l, "PRIVMSG alice :KILL x");
	free(l);
	/* A destination cannot smuggle one either. */
	assert_int_equal(sb_chan_irc.send(&chan, "#ops\r\nQUIT", "x"), -1);
	assert_int_equal(sb_chan_irc.send(&chan, "#ops QUIT", "x"), -1);
	srv_quiet(100);
}

static void
test_wire_512_with_prefix(void **state)
{
	const char *prefix = ":sbbot_!~switchbd@" HOST " ";
	char text[4000], back[4000] = "";
	struct sb_msg *m;
	size_t len = 0;

	(void)state;
	register_bot();
	while (len + 3 < 3000) {
		memcpy(text + len, len % 7 ? "\xc3\xa9x" : "w\xc3\xa9", 3);
		len += 3;
	}
	text[len] = '\0';
	m = request("#ops", 1, "long");
	/* channel limit is 3 lines: use a query for the whole text */
	m->kind = SB_MSG_DIRECT;
	sb_chan_irc.reply(&chan, m, text, SB_REPLY_DONE);
	sb_msg_unref(m);
	while (strlen(back) < len) {
		char *l = srv_line();
		const char *body;

		assert_non_null(l);
		assert_true(strncmp(l, "PRIVMSG #ops :", 14) == 0);
		body = l + 14;
		/* as relayed, with the prefix the server adds: at most 512 */
		assert_true(strlen(prefix) + strlen(l) + 2 <= SB_IRC_LINE_MAX);
		assert_true(utf8_ok((const unsigned char *)body, strlen(body)));
		strcat(back, body);
		free(l);
	}
	assert_string_equal(back, text);
}

static void
test_wire_channel_reply_is_cut(void **state)
{
	struct sb_msg *m;
	char *l;

	(void)state;
	register_bot();
	m = request("#ops", 1, "big");
	sb_msg_set_node(m, "mail");
	sb_chan_irc.reply(&chan, m, "1\n2", 0);
	sb_chan_irc.reply(&chan, m, "3\n4\n5", 0);
	sb_chan_irc.reply(&chan, m, "6", SB_REPLY_DONE);
	sb_msg_unref(m);
	for (int i = 1; i <= 3; i++) {
		char want[32];

		snprintf(want, sizeof(want), "PRIVMSG #ops :%d", i);
		l = srv_line();
		assert_string_equal(l, want);
		free(l);
	}
	l = srv_line();
	assert_string_equal(l, "PRIVMSG #ops :(2 more lines cut; for all of it: /msg sbbot_ mail: big)");
	free(l);
	srv_quiet(100);
}

static void
test_wire_commands_in_and_refusal(void **state)
{
	char *l;

	(void)state;
	register_bot();
	/* An authorized query runs; the answer goes back to the nick. */
	srv_send(":alice!a@" HOST " PRIVMSG sbbot_ :core show version");
	l = srv_expect("PRIVMSG alice :");
	assert_string_equal(l, "PRIVMSG alice :switchboard " SB_VERSION);
	free(l);
	/* In the channel: to the channel. */
	srv_send(":alice!a@" HOST " PRIVMSG #ops :sbbot_: core show version");
	l = srv_expect("PRIVMSG #ops :");
	assert_string_equal(l, "PRIVMSG #ops :switchboard " SB_VERSION);
	free(l);
	/* People talking: nothing. */
	srv_send(":alice!a@" HOST " PRIVMSG #ops :lunch?");
	srv_quiet(150);
	/* A stranger: one NOTICE, then silence for a minute. */
	srv_send(":eve!e@evil.example PRIVMSG #ops :!core show version");
	l = srv_line();
	assert_string_equal(l, "NOTICE eve :not authorized");
	free(l);
	srv_send(":eve!e@evil.example PRIVMSG sbbot_ :core show version");
	srv_quiet(150);
	/* The same nick from another host is another identity. */
	srv_send(":alice!a@elsewhere.example PRIVMSG sbbot_ :core show version");
	l = srv_line();
	assert_string_equal(l, "NOTICE alice :not authorized");
	free(l);
}

static void
test_wire_kick_rejoin_and_announce(void **state)
{
	char *l;

	(void)state;
	register_bot();
	srv_send(":op!o@" HOST " KICK #ops sbbot_ :out");
	srv_quiet(200);
	/* announcements wait for the channel: the JOIN comes first */
	assert_int_equal(sb_chan_irc.send(&chan, "#ops", "web: ok -> critical: hot"), 0);
	l = srv_line();
	assert_string_equal(l, "JOIN #ops sesame");
	free(l);
	srv_quiet(100);
	srv_send(":sbbot_!~switchbd@" HOST " JOIN #ops");
	l = srv_line();
	assert_string_equal(l, "NOTICE #ops :web: ok -> critical: hot");
	free(l);
}

static void
test_wire_pacing(void **state)
{
	struct sb_msg *m;
	uint64_t t[12];

	(void)state;
	register_bot();		/* the JOIN took one of the 2 tokens */
	srv_quiet(300);		/* and 3 more came back: full again (2) */
	m = request("alice", 0, "lines");
	sb_chan_irc.reply(&chan, m, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12", SB_REPLY_DONE);
	sb_msg_unref(m);
	for (int i = 0; i < 12; i++) {
		char *l = srv_line();

		assert_non_null(l);
		t[i] = sb_now_ms();
		free(l);
	}
	/* the burst at once, then 10 a second: 10 lines take 1 s */
	assert_true(t[1] - t[0] < 100);
	assert_in_range(t[11] - t[1], 900, 1600);
}

/* ---- spooled notices -------------------------------------------------------- */

static int
deliver(uint64_t id, const char *to, const char *text)
{
	struct sb_notice n = { .id = id, .to = to, .text = text, .attempt = 1 };

	return sb_chan_irc.deliver(&chan, &n);
}

/* The result reported for id, waiting for it up to PATIENCE_MS; -99 if
 * none came. */
static int
result_of(uint64_t id)
{
	uint64_t end = sb_now_ms() + PATIENCE_MS;

	do {
		for (size_t i = 0; i < nresults; i++)
			if (results[i].id == id)
				return results[i].result;
		turn();
	} while (sb_now_ms() < end);
	return -99;
}

static void
wait_nresults(size_t n)
{
	uint64_t end = sb_now_ms() + PATIENCE_MS;

	while (nresults < n && sb_now_ms() < end)
		turn();
	assert_int_equal(nresults, n);
}

/* The server hangs up; what the bot sent until then is discarded. */
static void
srv_hangup(void)
{
	close(srv.fd);
	srv.fd = -1;
	srv.inlen = 0;
}

static void
test_notice_done_once_written(void **state)
{
	char *l;

	(void)state;
	/* Not connected yet: the spool keeps it. */
	assert_int_equal(deliver(1, "#ops", "early"), SB_SEND_LATER);
	register_bot();
	/* Not a target: never. */
	assert_int_equal(deliver(2, "#ops\r\nQUIT", "x"), SB_SEND_FAIL);
	/* Joined once the server says so: then the kick. */
	srv_quiet(100);
	assert_true(kicks >= 2);	/* registered, then in #ops */
	assert_int_equal(deliver(3, "#ops", "web: critical\r\nQUIT :x"), SB_SEND_PENDING);
	assert_int_equal(deliver(4, "alice", "to a nick"), SB_SEND_PENDING);
	l = srv_line();
	assert_string_equal(l, "NOTICE #ops :web: critical");
	free(l);
	l = srv_line();
	assert_string_equal(l, "NOTICE #ops :QUIT :x");	/* no injection */
	free(l);
	l = srv_line();
	assert_string_equal(l, "NOTICE alice :to a nick");
	free(l);
	assert_int_equal(result_of(3), SB_SEND_DONE);
	assert_int_equal(result_of(4), SB_SEND_DONE);
	assert_int_equal(nresults, 2);
	/* The default audience: every configured channel. */
	assert_int_equal(deliver(5, NULL, "all"), SB_SEND_PENDING);
	l = srv_line();
	assert_string_equal(l, "NOTICE #ops :all");
	free(l);
	assert_int_equal(result_of(5), SB_SEND_DONE);
	srv_quiet(100);
}

static void
test_notice_waits_for_the_channel(void **state)
{
	char *l;

	(void)state;
	register_bot();
	srv_quiet(100);
	srv_send(":op!o@" HOST " KICK #ops sbbot_ :out");
	srv_quiet(100);
	assert_int_equal(deliver(6, "#ops", "hot"), SB_SEND_LATER);
	assert_int_equal(deliver(7, NULL, "hot"), SB_SEND_LATER);
	l = srv_line();
	assert_string_equal(l, "JOIN #ops sesame");
	free(l);
	kicks = 0;
	srv_send(":sbbot_!~switchbd@" HOST " JOIN #ops");
	srv_quiet(100);
	assert_int_equal(kicks, 1);
	assert_int_equal(deliver(6, "#ops", "hot"), SB_SEND_PENDING);
	l = srv_line();
	assert_string_equal(l, "NOTICE #ops :hot");
	free(l);
	assert_int_equal(result_of(6), SB_SEND_DONE);
}

static void
test_notice_dropped_on_disconnect(void **state)
{
	struct sb_msg *m;
	char *l;

	(void)state;
	register_bot();		/* the JOIN took one of the 2 tokens */
	srv_quiet(300);
	/* 8 lines to a nick (no channel cut) at 10 a second, and a reply
	 * queued behind them. */
	assert_int_equal(deliver(11, "alice", "1\n2\n3\n4\n5\n6\n7\n8"), SB_SEND_PENDING);
	m = request("alice", 0, "status");
	sb_chan_irc.reply(&chan, m, "reply", SB_REPLY_DONE);
	sb_msg_unref(m);
	l = srv_line();
	assert_string_equal(l, "NOTICE alice :1");
	free(l);
	srv_hangup();
	/* Lines of it were still queued: LATER, not DONE. */
	assert_int_equal(result_of(11), SB_SEND_LATER);
	assert_int_equal(deliver(12, "alice", "x"), SB_SEND_LATER);
	/* After the reconnect none of its lines come back (the spool sends
	 * it again, whole), but the reply does. */
	register_bot();
	assert_int_equal(chan.reconnects, 1);
	l = srv_line();		/* the next line after the JOIN */
	assert_string_equal(l, "PRIVMSG alice :reply");
	free(l);
	srv_quiet(300);
	assert_int_equal(nresults, 1);
	assert_int_equal(deliver(11, "alice", "1\n2"), SB_SEND_PENDING);
	l = srv_line();
	assert_string_equal(l, "NOTICE alice :1");
	free(l);
	l = srv_line();
	assert_string_equal(l, "NOTICE alice :2");
	free(l);
	wait_nresults(2);
	assert_int_equal(results[1].id, 11);
	assert_int_equal(results[1].result, SB_SEND_DONE);
}

static void
test_notice_busy_queue_is_later(void **state)
{
	char text[4096];
	struct sb_msg *m;
	size_t len = 0;

	(void)state;
	register_bot();
	srv_quiet(100);
	/* queue_max is 10 here.  A notice that can never fit is refused; one
	 * that does not fit now, behind a long reply (one line of which is
	 * out already), waits. */
	for (int i = 0; i < 12; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "line %d\n", i);
	assert_int_equal(deliver(21, "alice", text), SB_SEND_FAIL);
	m = request("alice", 0, "status");
	sb_chan_irc.reply(&chan, m, "1\n2\n3\n4\n5\n6\n7\n8\n9", SB_REPLY_DONE);
	sb_msg_unref(m);
	assert_int_equal(deliver(22, "alice", "a\nb\nc"), SB_SEND_LATER);
	assert_int_equal(deliver(23, "alice", "short"), SB_SEND_PENDING);
	assert_int_equal(result_of(23), SB_SEND_DONE);
	assert_int_equal(nresults, 1);
}

int
main(void)
{
#define W(f) cmocka_unit_test_setup_teardown(f, bot_setup, bot_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_fills_512_exactly),
		cmocka_unit_test(test_cut_ascii),
		cmocka_unit_test(test_cut_prefers_a_space_near_the_end),
		cmocka_unit_test(test_cut_never_splits_utf8),
		cmocka_unit_test(test_cut_invalid_utf8_still_progresses),
		cmocka_unit_test(test_scrub),
		cmocka_unit_test(test_wrap_lines_and_crlf),
		cmocka_unit_test(test_wrap_injection_becomes_text),
		cmocka_unit_test(test_wrap_long_line_reassembles),
		cmocka_unit_test(test_wrap_fuzz),
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_bucket_long_run_rate),
		cmocka_unit_test(test_parse_channel),
		cmocka_unit_test(test_parse_query),
		cmocka_unit_test(test_parse_irc_case_mapping),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_escape_percent),
		W(test_wire_registration_and_collision),
		W(test_wire_injection_in_reply),
		W(test_wire_512_with_prefix),
		W(test_wire_channel_reply_is_cut),
		W(test_wire_commands_in_and_refusal),
		W(test_wire_kick_rejoin_and_announce),
		cmocka_unit_test_setup_teardown(test_wire_pacing, bot_setup_paced, bot_teardown),
		W(test_notice_done_once_written),
		W(test_notice_waits_for_the_channel),
		cmocka_unit_test_setup_teardown(test_notice_dropped_on_disconnect, bot_setup_paced,
		    bot_teardown),
		cmocka_unit_test_setup_teardown(test_notice_busy_queue_is_later,
		    bot_setup_small_queue, bot_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
