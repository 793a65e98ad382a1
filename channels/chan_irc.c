/*
 * chan_irc.c: the IRC channel on libircclient.
 *
 * One connection to one server, on the core loop: libircclient's socket is
 * watched with sb_loop fds (irc_add_select_descriptors says what it waits
 * for, irc_process_select_descriptors does the I/O), so a reply goes out as
 * soon as the socket takes it and no thread is needed.  Nothing here
 * blocks: libircclient resolves a host name with a blocking
 * gethostbyname(), so the driver hands it numeric addresses only and
 * resolves a configured host name on a short-lived thread first
 * (irc_resolve.c).  The pure text and pacing parts are in irc_text.c.
 *
 * What it does: registers (server password, alternative nicks on a
 * collision, NickServ), joins channels (with keys; again after a kick and
 * after a reconnect), turns private messages and addressed channel lines
 * into sb_msg ("irc:nick!user@host"), answers where the command came from,
 * announces notifications, and mirrors the worst node state in its AWAY
 * message.  Every outgoing line goes through its own queue, cut to the
 * 512-byte limit and paced by a token bucket; CR, LF and NUL never reach the
 * wire from any text.  It knows nothing of commands or policy.
 *
 * libircclient 1.9 quirks this file works around (see the notes below):
 * the registration lines are formatted twice (so '%' is doubled), the
 * session's own idea of our nick goes stale after an alternative nick, its
 * output buffer is 1 KB, its CTCP handler answers unpaced, and its fd
 * sets are select()'s (fds below FD_SETSIZE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libircclient.h>

#include "acl.h"
#include "chan_irc.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "node.h"
#include "notify.h"
#include "util.h"

#define TICK_MS          1000		/* timeouts, rejoins, reconnects */
#define CONNECT_TIMEOUT  60000		/* ms from connect() to the welcome */
#define JOIN_RETRY       60000		/* ms between attempts at a channel we could not join */
#define REJOIN_DELAY     3000		/* ms after a kick */
#define REGAIN_EVERY     60000		/* ms between attempts at our own nick */
#define REFUSE_EVERY     60000		/* ms: one refusal per sender and minute */
#define NICK_TRIES       20		/* generated nicks before giving up */
#define HOST_MAX         63		/* host part assumed until the server tells */
#define AWAY_MAX         300		/* bytes of AWAY text */
#define POINTER_CMD_MAX  80		/* bytes of the command quoted in a cut note */

/* ---- the driver ---- */

enum link_state {
	ST_DOWN,		/* waiting to connect */
	ST_RESOLVING,		/* a thread looks the server's name up */
	ST_CONNECTING,		/* TCP connect in progress */
	ST_REGISTERING,		/* PASS/NICK/USER sent, waiting for 001 */
	ST_UP,			/* registered */
};

struct line {
	struct line *next;
	char   *target;		/* NULL: a command to the server itself */
	char   *wire;		/* the whole message, without CR LF */
	uint64_t notice;	/* the spooled notice it is part of, 0: none */
};

/* A spooled notice whose lines are queued or being written. */
struct inote {
	struct inote *next;
	uint64_t id;
	size_t  left;		/* lines not yet handed to libircclient */
};

struct lq {
	struct line *head, *tail;
	size_t  n;
};

struct ichan {
	char   *name, *key;
	int     joined;
	int     kicked;		/* and rejoin is off: leave it */
	uint64_t retry_at;	/* ms; 0: no attempt planned */
};

/* A channel reply in progress, for the line limit. */
struct cut {
	struct cut *next;
	const struct sb_msg *req;	/* borrowed: alive until its DONE reply */
	size_t  sent;
	int     cut;
};

/* A chat line taken from libircclient, dispatched once it returns. */
struct pending {
	struct pending *next;
	char   *origin, *target, *text;
};

struct refusal {
	char    who[160];
	uint64_t at;
};

struct irc {
	struct sb_channel *ch;
	/* config, fixed once open() returns */
	char   *server;
	int     port;
	char   *password;
	char   *nick;
	char  **alt;
	size_t  nalt;
	char   *username, *realname;
	struct ichan *chans;
	size_t  nchans;
	char   *ns_nick, *ns_password;
	int     rejoin;
	size_t  max_lines;
	double  burst, rate;
	size_t  queue_max;
	int     away_enabled;
	int     ping_interval;	/* s, 0: never */
	int     reconnect_max;	/* s */
	char   *cmd_prefix;
	size_t  max_nick;	/* longest nick we may end up with */

	/* the connection */
	int     started;
	int     warned_plain;	/* said once that the server is not local */
	irc_session_t *s;
	enum link_state state;
	int     fd;		/* libircclient's socket, -1 when none */
	unsigned fdmask;
	struct sb_irc_resolve *res;	/* a lookup in flight */
	uint64_t next_connect, conn_started, up_since, last_rx, ping_sent, last_regain;
	unsigned backoff;	/* ms */
	int     nick_try;
	char    cur_nick[64];
	size_t  user_len, host_len;	/* as the server shows us; 0: unknown */
	char    last_error[200];

	/* output */
	struct lq ctl, msg;	/* control lines go first */
	struct sb_irc_bucket bucket;
	struct sb_timer *pump_timer, *tick_timer, *away_timer;
	char   *away_sent;	/* what the server holds; NULL: not away */
	int     dropping;	/* warned that the queue overflows */
	struct cut *cuts;
	struct inote *notes;	/* notices in the queue or the library's buffer */
	struct inote *queuing;	/* the notice whose lines are being queued */
	int     kick_due;	/* tell the spool we are ready, out of callbacks */
	int     up_once;	/* registered before: the next time is a reconnect */
	struct pending *pend, *pend_tail;
	struct refusal refused[32];
	unsigned refused_next;

	unsigned long lines_in, lines_out, dropped, connects;
};

static const struct sb_conf_key irc_keys[] = {
	{ "server", SB_CT_STRING, 0, NULL, "127.0.0.1",
	  "server address (a host name is resolved off the loop); plaintext: use a local TLS tunnel across networks" },
	{ "port", SB_CT_INT, 0, NULL, "6667", "server port" },
	{ "password", SB_CT_STRING, 0, NULL, NULL,
	  "server password (PASS; the config file must not be world-readable)" },
	{ "password_file", SB_CT_STRING, 0, NULL, NULL,
	  "a file holding the server password instead; relative: in $CREDENTIALS_DIRECTORY" },
	{ "nick", SB_CT_STRING, 0, NULL, "sbbot", "the bot's nick" },
	{ "alt_nicks", SB_CT_STRINGS, 0, NULL, "[ \"<nick>_\" ]",
	  "nicks to try when nick is taken; then <nick> with 3 random digits" },
	{ "username", SB_CT_STRING, 0, NULL, "switchbd", "user name (the part before @)" },
	{ "realname", SB_CT_STRING, 0, NULL, "switchboard", "real name shown by WHOIS" },
	{ "channels", SB_CT_STRINGS, 0, NULL, "[ ]",
	  "channels to join: \"#chan\" or \"#chan key\"" },
	{ "nickserv_password", SB_CT_STRING, 0, NULL, NULL,
	  "identify to NickServ with this password after connecting" },
	{ "nickserv_password_file", SB_CT_STRING, 0, NULL, NULL,
	  "a file holding the NickServ password instead; relative: in $CREDENTIALS_DIRECTORY" },
	{ "nickserv_nick", SB_CT_STRING, 0, NULL, "NickServ", "the nick of the nick service" },
	{ "rejoin", SB_CT_BOOL, 0, NULL, "true", "rejoin a channel after being kicked" },
	{ "max_channel_lines", SB_CT_INT, 0, NULL, "10",
	  "a reply in a channel is cut after this many lines, with a pointer to ask in a query" },
	{ "flood_burst", SB_CT_INT, 0, NULL, "4", "lines sent at once before pacing starts" },
	{ "flood_rate", SB_CT_FLOAT, 0, NULL, "1.0", "lines per second once the burst is spent" },
	{ "queue_max", SB_CT_INT, 0, NULL, "1000",
	  "lines kept while disconnected or paced; the oldest are dropped past it, and logged" },
	{ "refuse", SB_CT_STRING, 0, NULL, "notice",
	  "unauthorized senders get one short NOTICE a minute (notice) or nothing (silent)" },
	{ "away", SB_CT_BOOL, 0, NULL, "true",
	  "mirror the worst node state in the bot's AWAY message" },
	{ "ping_interval", SB_CT_INT, 0, NULL, "120",
	  "seconds of silence before the bot pings the server; twice that and it reconnects (0: never)" },
	{ "reconnect_max", SB_CT_INT, 0, NULL, "300",
	  "longest wait between connection attempts, in seconds (the wait doubles from 1 s, with jitter)" },
	{ "command_prefix", SB_CT_STRING, 0, NULL, "!",
	  "in a channel, a line starting with this is a command (\"!status\")" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

void (*sb_irc_notice_result)(uint64_t, int) = sb_notice_result;
void (*sb_irc_notify_kick)(const char *) = sb_notify_kick;

static void link_down(struct irc *, const char *why);
static void pump(struct irc *);
static void connect_begin(struct irc *);
static void connect_addr(struct irc *, const char *addr, int family);
static unsigned jitter_rand(struct irc *);

/* ---- queues ---- */

static void
line_free(struct line *ln)
{
	free(ln->target);
	free(ln->wire);
	free(ln);
}

static void
lq_clear(struct lq *q)
{
	for (struct line *ln = q->head, *n; ln; ln = n) {
		n = ln->next;
		line_free(ln);
	}
	q->head = q->tail = NULL;
	q->n = 0;
}

/* ---- spooled notices: what confirms them ---- */

struct result {
	uint64_t id;
	int     result;
};

static void
result_run(void *ud)
{
	struct result *r = ud;

	sb_irc_notice_result(r->id, r->result);
	free(r);
}

/* Results reach the spool from the loop, never from inside deliver() or
 * a libircclient callback: the spool may deliver again in its answer. */
static void
report(uint64_t id, int result)
{
	struct result *r = sb_calloc(1, sizeof(*r));

	r->id = id;
	r->result = result;
	if (sb_loop_post(sb_core.loop, result_run, r) < 0) {
		free(r);	/* the spool times the PENDING out */
		sb_warnx("irc: cannot report notice %llu", (unsigned long long)id);
	}
}

static struct inote *
note_find(struct irc *l, uint64_t id)
{
	for (struct inote *n = l->notes; n; n = n->next)
		if (n->id == id)
			return n;
	return NULL;
}

/* Drop what is left of notice id from the message queue and report
 * result for it, so that the spool's retry does not double its lines. */
static void
note_abort(struct irc *l, uint64_t id, int result)
{
	struct inote **np, *n;

	for (struct line **pp = &l->msg.head; *pp; ) {
		if ((*pp)->notice == id) {
			struct line *ln = *pp;

			*pp = ln->next;
			l->msg.n--;
			line_free(ln);
		} else {
			pp = &(*pp)->next;
		}
	}
	l->msg.tail = l->msg.head;
	while (l->msg.tail && l->msg.tail->next)
		l->msg.tail = l->msg.tail->next;
	for (np = &l->notes; (n = *np) != NULL; np = &n->next)
		if (n->id == id) {
			*np = n->next;
			if (n != l->queuing)	/* cannot be: deliver() makes room */
				free(n);
			report(id, result);
			return;
		}
}

/* The connection is gone (or the channel stops): every notice not yet
 * confirmed is sent again later, whole. */
static void
notes_abort_all(struct irc *l)
{
	while (l->notes)
		note_abort(l, l->notes->id, SB_SEND_LATER);
}

/* A line of a notice went to libircclient. */
static void
note_line_out(struct irc *l, uint64_t id)
{
	struct inote *n = note_find(l, id);

	if (n && n->left)
		n->left--;
}

/* libircclient's buffer is empty: the notices whose every line was in it
 * have been written to the socket. */
static void
notes_written(struct irc *l)
{
	struct inote **np = &l->notes, *n;

	while ((n = *np) != NULL) {
		if (n->left == 0 && n != l->queuing) {
			*np = n->next;
			report(n->id, SB_SEND_DONE);
			free(n);
		} else {
			np = &n->next;
		}
	}
}

/* Append a line (wire taken); the message queue is bounded. */
static void
queue_line(struct irc *l, struct lq *q, const char *target, char *wire)
{
	struct line *ln = sb_calloc(1, sizeof(*ln));

	ln->target = sb_strdup(target);
	ln->wire = wire;
	if (q == &l->msg && l->queuing) {
		ln->notice = l->queuing->id;
		l->queuing->left++;
	}
	if (q == &l->msg && q->n >= l->queue_max && q->head) {
		struct line *old = q->head;

		q->head = old->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->n--;
		/* A notice loses all its lines, and is sent again later. */
		if (old->notice)
			note_abort(l, old->notice, SB_SEND_LATER);
		line_free(old);
		l->dropped++;
		if (!l->dropping)
			sb_warnx("irc %s: output queue full (%zu lines); dropping the oldest",
			    l->ch->name, l->queue_max);
		l->dropping = 1;
	}
	if (q->tail)
		q->tail->next = ln;
	else
		q->head = ln;
	q->tail = ln;
	q->n++;
}

static void
queue_ctl(struct irc *l, const char *fmt, ...) SB_PRINTF(2, 3);

static void
queue_ctl(struct irc *l, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = sb_vasprintf(fmt, ap);
	va_end(ap);
	sb_irc_scrub(s, strlen(s));	/* the last line of defence */
	queue_line(l, &l->ctl, NULL, s);
}

/* Our "nick!user@host" as the server will show it, or a length it cannot
 * exceed while we do not know it. */
static size_t
prefix_len(const struct irc *l)
{
	size_t user = l->user_len ? l->user_len : strlen(l->username) + 1;	/* "~" */
	size_t host = l->host_len ? l->host_len : HOST_MAX;
	size_t nick = strlen(l->cur_nick) > l->max_nick ? strlen(l->cur_nick) : l->max_nick;

	return nick + 1 + user + 1 + host;
}

/*
 * Queue text for target as cmd ("PRIVMSG", "NOTICE") messages, one a
 * piece.  room: how many more lines may go (NULL: no limit), lowered by
 * the lines queued.  Returns how many pieces did not fit.
 */
static size_t
queue_text(struct irc *l, const char *cmd, const char *target, const char *text, size_t *room)
{
	size_t budget, n, over = 0;
	char **pieces;

	if (!sb_irc_valid_target(target)) {
		sb_warnx("irc %s: not a nick or channel: \"%.60s\"; message dropped",
		    l->ch->name, target);
		return 0;
	}
	budget = sb_irc_text_budget(prefix_len(l), cmd, target);
	n = sb_irc_wrap(text, strlen(text), budget, &pieces);
	for (size_t i = 0; i < n; i++) {
		if (room && *room == 0) {
			over++;
		} else {
			if (room)
				(*room)--;
			queue_line(l, &l->msg, target,
			    sb_asprintf("%s %s :%s", cmd, target, pieces[i]));
		}
		free(pieces[i]);
	}
	free(pieces);
	return over;
}

static struct ichan *
chan_find(struct irc *l, const char *name)
{
	for (size_t i = 0; i < l->nchans; i++)
		if (sb_irc_casecmp(l->chans[i].name, name) == 0)
			return &l->chans[i];
	return NULL;
}

/* May a message to target go now (1), later (0), or never (-1)?  A
 * configured channel waits until we are in it ("cannot send to channel"
 * otherwise); one we were kicked from for good takes nothing more. */
static int
target_ready(struct irc *l, const char *target)
{
	struct ichan *c;

	if (target == NULL || !sb_irc_is_channel(target) || (c = chan_find(l, target)) == NULL)
		return 1;
	return c->joined ? 1 : c->kicked ? -1 : 0;
}

/* Take *pp out of q and return it. */
static struct line *
lq_unlink(struct lq *q, struct line **pp)
{
	struct line *ln = *pp;

	*pp = ln->next;
	if (q->tail == ln) {
		struct line *t = q->head;

		while (t && t->next)
			t = t->next;
		q->tail = t;
	}
	q->n--;
	return ln;
}

/* What libircclient waits for on its socket, as SB_READ/SB_WRITE. */
static unsigned
lib_mask(struct irc *l)
{
	fd_set in, out;
	int maxfd = 0;
	unsigned m = 0;

	if (l->fd < 0)
		return 0;
	FD_ZERO(&in);
	FD_ZERO(&out);
	if (irc_add_select_descriptors(l->s, &in, &out, &maxfd) != 0)
		return 0;
	if (FD_ISSET(l->fd, &in))
		m |= SB_READ;
	if (FD_ISSET(l->fd, &out))
		m |= SB_WRITE;
	return m;
}

static void
update_fd(struct irc *l)
{
	unsigned m;

	if (l->fd < 0)
		return;
	m = lib_mask(l);
	if (m != l->fdmask && sb_loop_mod_fd(sb_core.loop, l->fd, m) == 0)
		l->fdmask = m;
}

static long
pump_fire(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct irc *l = ud;

	(void)loop;
	(void)t;
	l->pump_timer = NULL;
	pump(l);
	return SB_TIMER_STOP;
}

/*
 * Hand the next line to libircclient when its output buffer is empty and
 * the bucket has a token.  One line at a time: the library's buffer holds
 * only 1 KB, and a PONG it writes itself must always find room.
 */
static void
pump(struct irc *l)
{
	uint64_t now = sb_now_ms();

	while (l->started && l->state == ST_UP && !(lib_mask(l) & SB_WRITE)) {
		struct lq *q = l->ctl.head ? &l->ctl : &l->msg;
		struct line *ln, **pp;

		notes_written(l);
		for (pp = &q->head; *pp; ) {
			int ready = target_ready(l, (*pp)->target);

			if (ready > 0)
				break;
			if (ready < 0) {
				uint64_t id = (*pp)->notice;

				line_free(lq_unlink(q, pp));
				if (id) {
					/* Later: a reconnect clears the kick. */
					note_abort(l, id, SB_SEND_LATER);
					pp = &q->head;
				}
			} else {
				pp = &(*pp)->next;
			}
		}
		if (*pp == NULL)
			break;
		if (!sb_irc_bucket_take(&l->bucket, now)) {
			if (l->pump_timer == NULL)
				l->pump_timer = sb_loop_add_timer(sb_core.loop,
				    sb_irc_bucket_wait(&l->bucket, now), pump_fire, l);
			break;
		}
		ln = lq_unlink(q, pp);
		if (q == &l->msg && q->n < l->queue_max / 2)
			l->dropping = 0;
		if (irc_send_raw(l->s, "%s", ln->wire) != 0) {
			sb_warnx("irc %s: line not sent: %s", l->ch->name,
			    irc_strerror(irc_errno(l->s)));
			if (ln->notice)
				note_abort(l, ln->notice, SB_SEND_LATER);
		} else {
			l->lines_out++;
			if (ln->notice)
				note_line_out(l, ln->notice);
		}
		line_free(ln);
	}
	update_fd(l);
}

/* ---- AWAY: the worst node ---- */

static char *
away_text(void)
{
	const struct sb_node *worst = NULL;
	size_t others = 0;
	char *text, *full;

	for (size_t i = 0; i < sb_node_count(); i++) {
		const struct sb_node *n = sb_node_at(i);

		if (n->state == SB_ST_OK || n->state == SB_ST_UNKNOWN)
			continue;
		if (worst == NULL || sb_state_rank(n->state) > sb_state_rank(worst->state)) {
			if (worst)
				others++;
			worst = n;
		} else {
			others++;
		}
	}
	if (worst == NULL)
		return NULL;
	text = sb_asprintf("%s: %s%s%s", worst->name, sb_state_name(worst->state),
	    worst->reason[0] ? ", " : "", worst->reason);
	if (others)
		full = sb_asprintf("%s (+%zu more)", text, others);
	else
		full = sb_strdup(text);
	free(text);
	full[sb_irc_cut(full, strlen(full), AWAY_MAX)] = '\0';
	sb_irc_scrub(full, strlen(full));
	return full;
}

static void
away_update(struct irc *l)
{
	char *text;

	if (!l->away_enabled || l->state != ST_UP)
		return;
	text = away_text();
	if ((text == NULL && l->away_sent == NULL) ||
	    (text && l->away_sent && strcmp(text, l->away_sent) == 0)) {
		free(text);
		return;
	}
	if (text)
		queue_ctl(l, "AWAY :%s", text);
	else
		queue_ctl(l, "AWAY");
	free(l->away_sent);
	l->away_sent = text;
	pump(l);
}

static long
away_fire(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct irc *l = ud;

	(void)loop;
	(void)t;
	l->away_timer = NULL;
	away_update(l);
	return SB_TIMER_STOP;
}

/* ---- libircclient callbacks: record, never dispatch (see on_io) ---- */

static struct irc *
ctx_of(irc_session_t *s)
{
	return irc_get_ctx(s);
}

static void
nick_of(const char *origin, char *out, size_t len)
{
	size_t n = origin ? strcspn(origin, "!@") : 0;

	if (n >= len)
		n = len - 1;
	memcpy(out, origin ? origin : "", n);
	out[n] = '\0';
}

/* Learn how long our user and host are from "nick!user@host". */
static void
learn_prefix(struct irc *l, const char *mask)
{
	const char *bang = mask ? strchr(mask, '!') : NULL;
	const char *at = bang ? strchr(bang, '@') : NULL;

	if (at == NULL || at[1] == '\0')
		return;
	l->user_len = (size_t)(at - bang - 1);
	l->host_len = strlen(at + 1);
}

static const char *
nick_candidate(struct irc *l, int i, char *buf, size_t len)
{
	if (i == 0)
		return l->nick;
	if ((size_t)i <= l->nalt)
		return l->alt[i - 1];
	/* Generated: the first 6 bytes of nick and 3 digits fit the 9 that
	 * RFC 2812 promises. */
	snprintf(buf, len, "%.6s%03u", l->nick, jitter_rand(l) % 1000);
	return buf;
}

static void
on_numeric(irc_session_t *s, unsigned ev, const char *origin, const char **params,
           unsigned count)
{
	struct irc *l = ctx_of(s);
	const char *last = count ? params[count - 1] : "";
	struct ichan *c;

	(void)origin;
	switch (ev) {
	case 1: {			/* RPL_WELCOME */
		const char *mask = strrchr(last, ' ');

		l->state = ST_UP;
		l->up_since = sb_now_ms();
		l->last_rx = l->up_since;
		l->ping_sent = 0;
		l->last_regain = l->up_since;
		snprintf(l->cur_nick, sizeof(l->cur_nick), "%s", count ? params[0] : l->nick);
		learn_prefix(l, mask ? mask + 1 : last);
		sb_irc_bucket_init(&l->bucket, l->burst, l->rate, l->up_since);
		sb_info("irc %s: connected to %s:%d as %s", l->ch->name, l->server, l->port,
		    l->cur_nick);
		if (sb_irc_casecmp(l->cur_nick, l->nick) != 0)
			sb_notice("irc %s: nick %s is taken; using %s", l->ch->name, l->nick,
			    l->cur_nick);
		if (l->ns_password)
			queue_ctl(l, "PRIVMSG %s :IDENTIFY %s", l->ns_nick, l->ns_password);
		for (size_t i = 0; i < l->nchans; i++) {
			l->chans[i].joined = 0;
			l->chans[i].kicked = 0;
			l->chans[i].retry_at = l->up_since + JOIN_RETRY;
			if (l->chans[i].key)
				queue_ctl(l, "JOIN %s %s", l->chans[i].name, l->chans[i].key);
			else
				queue_ctl(l, "JOIN %s", l->chans[i].name);
		}
		free(l->away_sent);
		l->away_sent = NULL;	/* a new connection is not away */
		away_update(l);
		if (l->up_once)
			l->ch->reconnects++;
		l->up_once = 1;
		l->kick_due = 1;	/* nicks can be told now */
		break;
	}
	case 431: case 432: case 433: case 436: case 437: {	/* nick refused */
		char buf[32];
		const char *next;

		if (l->state != ST_REGISTERING)
			break;		/* a regain attempt failed: keep ours */
		if (++l->nick_try > (int)l->nalt + NICK_TRIES) {
			snprintf(l->last_error, sizeof(l->last_error), "no nick accepted");
			break;		/* the tick's connect timeout ends it */
		}
		next = nick_candidate(l, l->nick_try, buf, sizeof(buf));
		sb_debug("irc %s: nick refused (%u); trying %s", l->ch->name, ev, next);
		irc_send_raw(s, "NICK %s", next);
		break;
	}
	case 403: case 405: case 471: case 473: case 474: case 475: case 477:	/* cannot join */
		if (count >= 2 && (c = chan_find(l, params[1])) != NULL) {
			sb_warnx("irc %s: cannot join %s: %s; trying again in %d s", l->ch->name,
			    c->name, last, JOIN_RETRY / 1000);
			c->retry_at = sb_now_ms() + JOIN_RETRY;
		}
		break;
	case 404:			/* cannot send to channel */
		if (count >= 2)
			sb_warnx("irc %s: cannot send to %s: %s", l->ch->name, params[1], last);
		break;
	case 464:			/* password incorrect */
		sb_warnx("irc %s: the server refused the password", l->ch->name);
		snprintf(l->last_error, sizeof(l->last_error), "password refused");
		break;
	default:
		break;
	}
}

static int
is_self(struct irc *l, const char *origin)
{
	char nick[64];

	nick_of(origin, nick, sizeof(nick));
	return l->cur_nick[0] && sb_irc_casecmp(nick, l->cur_nick) == 0;
}

static void
on_join(irc_session_t *s, const char *ev, const char *origin, const char **params,
        unsigned count)
{
	struct irc *l = ctx_of(s);
	struct ichan *c;

	(void)ev;
	if (count < 1 || !is_self(l, origin))
		return;
	learn_prefix(l, origin);
	if ((c = chan_find(l, params[0])) != NULL) {
		if (!c->joined) {
			sb_info("irc %s: joined %s", l->ch->name, c->name);
			l->kick_due = 1;	/* and the channel too */
		}
		c->joined = 1;
		c->retry_at = 0;
	}
}

static void
on_part(irc_session_t *s, const char *ev, const char *origin, const char **params,
        unsigned count)
{
	struct irc *l = ctx_of(s);
	struct ichan *c;

	(void)ev;
	if (count >= 1 && is_self(l, origin) && (c = chan_find(l, params[0])) != NULL) {
		c->joined = 0;
		c->retry_at = sb_now_ms() + REJOIN_DELAY;
	}
}

static void
on_kick(irc_session_t *s, const char *ev, const char *origin, const char **params,
        unsigned count)
{
	struct irc *l = ctx_of(s);
	struct ichan *c;
	char by[64];

	(void)ev;
	if (count < 2 || sb_irc_casecmp(params[1], l->cur_nick) != 0 ||
	    (c = chan_find(l, params[0])) == NULL)
		return;
	nick_of(origin, by, sizeof(by));
	c->joined = 0;
	if (l->rejoin) {
		sb_warnx("irc %s: kicked from %s by %s (%s); rejoining", l->ch->name, c->name, by,
		    count > 2 ? params[2] : "");
		c->retry_at = sb_now_ms() + REJOIN_DELAY;
	} else {
		sb_warnx("irc %s: kicked from %s by %s (%s); not rejoining (rejoin = false)",
		    l->ch->name, c->name, by, count > 2 ? params[2] : "");
		c->kicked = 1;
		c->retry_at = 0;
	}
}

static void
on_nick(irc_session_t *s, const char *ev, const char *origin, const char **params,
        unsigned count)
{
	struct irc *l = ctx_of(s);

	(void)ev;
	if (count >= 1 && is_self(l, origin)) {
		sb_info("irc %s: nick is now %s", l->ch->name, params[0]);
		snprintf(l->cur_nick, sizeof(l->cur_nick), "%s", params[0]);
	}
}

static void
on_message(irc_session_t *s, const char *ev, const char *origin, const char **params,
           unsigned count)
{
	struct irc *l = ctx_of(s);
	struct pending *p;

	(void)ev;
	l->lines_in++;
	/* From a server, or malformed: not a person. */
	if (count < 2 || origin == NULL || !strchr(origin, '!') || !strchr(origin, '@') ||
	    is_self(l, origin))
		return;
	p = sb_calloc(1, sizeof(*p));
	p->origin = sb_strdup(origin);
	p->target = sb_strdup(params[0]);
	p->text = sb_strdup(params[1]);
	if (l->pend_tail)
		l->pend_tail->next = p;
	else
		l->pend = p;
	l->pend_tail = p;
}

/* libircclient's own CTCP handler answers at once, past our pacing: ours
 * answers VERSION only, through the queue, and only while it is short. */
static void
on_ctcp(irc_session_t *s, const char *ev, const char *origin, const char **params,
        unsigned count)
{
	struct irc *l = ctx_of(s);
	char nick[64];

	(void)ev;
	nick_of(origin, nick, sizeof(nick));
	if (count >= 1 && strcmp(params[0], "VERSION") == 0 && l->ctl.n < 4 &&
	    sb_irc_valid_target(nick))
		queue_ctl(l, "NOTICE %s :\001VERSION switchboard %s\001", nick, SB_VERSION);
}

static void
on_invite(irc_session_t *s, const char *ev, const char *origin, const char **params,
          unsigned count)
{
	struct irc *l = ctx_of(s);
	struct ichan *c;

	(void)ev;
	(void)origin;
	/* Only to a channel we are configured for and not in. */
	if (count >= 2 && (c = chan_find(l, params[1])) != NULL && !c->joined)
		c->retry_at = sb_now_ms();
}

static void
on_unknown(irc_session_t *s, const char *ev, const char *origin, const char **params,
           unsigned count)
{
	struct irc *l = ctx_of(s);

	(void)origin;
	if (strcmp(ev, "ERROR") == 0 && count >= 1)
		snprintf(l->last_error, sizeof(l->last_error), "%s", params[0]);
	else if (strcmp(ev, "PONG") == 0)
		l->ping_sent = 0;
}

static void
on_dcc_chat(irc_session_t *s, const char *nick, const char *addr, irc_dcc_t id)
{
	(void)nick;
	(void)addr;
	irc_dcc_decline(s, id);
}

static void
on_dcc_send(irc_session_t *s, const char *nick, const char *addr, const char *file,
            unsigned long size, irc_dcc_t id)
{
	(void)nick;
	(void)addr;
	(void)file;
	(void)size;
	irc_dcc_decline(s, id);
}

/* ---- commands in ---- */

static int
node_exists(const char *name, void *ud)
{
	(void)ud;
	return sb_node_find(name) != NULL;
}

/* One refusal per sender a minute, so a stranger cannot make the bot
 * flood (and be killed for it). */
static int
refusal_due(struct irc *l, const char *who)
{
	uint64_t now = sb_now_ms();
	struct refusal *r;

	for (size_t i = 0; i < SB_ARRAY_LEN(l->refused); i++)
		if (strcmp(l->refused[i].who, who) == 0 && l->refused[i].at &&
		    now - l->refused[i].at < REFUSE_EVERY)
			return 0;
	r = &l->refused[l->refused_next++ % SB_ARRAY_LEN(l->refused)];
	snprintf(r->who, sizeof(r->who), "%s", who);
	r->at = now;
	return 1;
}

static void
take_line(struct irc *l, struct pending *p)
{
	struct sb_channel *ch = l->ch;
	int query = !sb_irc_is_channel(p->target);
	char node[128], nick[64], *identity, *session;
	const char *cmd;
	struct sb_msg *m;
	int level;

	if (!sb_irc_parse_command(p->text, query, l->cur_nick, l->cmd_prefix, node_exists, NULL,
	    node, sizeof(node), &cmd))
		return;		/* people talking to each other */
	nick_of(p->origin, nick, sizeof(nick));
	identity = sb_asprintf("irc:%s", p->origin);
	/* The driver refuses by itself: on IRC a refusal is a NOTICE to the
	 * sender, never a line in the channel, and at most one a minute. */
	if (sb_acl_role(identity, &level) == NULL) {
		sb_notice("%s on %s: not authorized; refused \"%.60s\"", identity, ch->name, cmd);
		if (!ch->silent_refusal && sb_irc_valid_target(nick) && refusal_due(l, identity)) {
			queue_text(l, "NOTICE", nick, "not authorized", NULL);
			pump(l);
		}
		free(identity);
		return;
	}
	m = sb_msg_new(ch->name, identity, query ? nick : p->target, cmd);
	m->kind = query ? SB_MSG_DIRECT : SB_MSG_GROUP;
	if (node[0])
		sb_msg_set_node(m, node);
	/* Confirmation codes belong to the person, and in a channel to the
	 * person there. */
	session = query ? sb_strdup(p->origin) : sb_asprintf("%s %s", p->target, p->origin);
	sb_msg_set_session(m, session);
	free(session);
	free(identity);
	sb_dispatch(m);
}

/* Dispatch what libircclient handed us.  A command may stop this channel
 * (a reload): then stop at once and touch nothing but l. */
static void
take_pending(struct irc *l)
{
	struct pending *p = l->pend, *n;

	l->pend = l->pend_tail = NULL;
	for (; p; p = n) {
		n = p->next;
		if (l->started)
			take_line(l, p);
		free(p->origin);
		free(p->target);
		free(p->text);
		free(p);
	}
}

/* ---- the connection ---- */

static void
on_io(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct irc *l = ud;
	fd_set in, out;
	int rc;

	(void)loop;
	FD_ZERO(&in);
	FD_ZERO(&out);
	if (l->state == ST_CONNECTING) {
		/* Any event, an error included, settles the connect: the
		 * library then looks at the socket itself. */
		FD_SET(fd, &out);
	} else {
		if (mask & SB_READ) {
			FD_SET(fd, &in);
			l->last_rx = sb_now_ms();
		}
		if (mask & SB_WRITE)
			FD_SET(fd, &out);
	}
	rc = irc_process_select_descriptors(l->s, &in, &out);
	if (rc == 0 && l->state == ST_CONNECTING) {
		l->state = ST_REGISTERING;
		sb_debug("irc %s: TCP connected; registering", l->ch->name);
	}
	if (rc != 0 && !irc_is_connected(l->s))
		link_down(l, irc_strerror(irc_errno(l->s)));
	take_pending(l);
	if (l->started)
		pump(l);
	if (l->started && l->kick_due) {
		l->kick_due = 0;
		sb_irc_notify_kick(l->ch->name);
	}
}

/* Jitter must differ between daemons restarted together: not rand(). */
static unsigned
jitter_rand(struct irc *l)
{
	static uint64_t x;

	if (x == 0)
		x = sb_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)l;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (unsigned)(x >> 16);
}

static void
schedule_reconnect(struct irc *l)
{
	unsigned max = (unsigned)l->reconnect_max * 1000, jitter;

	l->backoff = l->backoff ? l->backoff * 2 : 1000;
	if (l->backoff > max)
		l->backoff = max;
	/* +-20 %: many bots on one restarted server do not come back at once */
	jitter = jitter_rand(l) % (l->backoff * 2 / 5 + 1);
	l->next_connect = sb_now_ms() + l->backoff - l->backoff / 5 + jitter;
	sb_debug("irc %s: next attempt in %u ms", l->ch->name,
	    (unsigned)(l->next_connect - sb_now_ms()));
}

static void
link_down(struct irc *l, const char *why)
{
	int was_up = l->state == ST_UP;

	if (l->fd >= 0)
		sb_loop_del_fd(sb_core.loop, l->fd);
	l->fd = -1;
	l->fdmask = 0;
	if (l->s)
		irc_disconnect(l->s);	/* closes the socket */
	if (was_up)
		sb_warnx("irc %s: disconnected from %s:%d: %s%s%s", l->ch->name, l->server,
		    l->port, why, l->last_error[0] ? "; " : "", l->last_error);
	else
		sb_warnx("irc %s: cannot connect to %s:%d: %s%s%s", l->ch->name, l->server,
		    l->port, why, l->last_error[0] ? "; " : "", l->last_error);
	/* A connection that lasted is a success: start the waits over. */
	if (was_up && sb_now_ms() - l->up_since >= 60000)
		l->backoff = 0;
	l->state = ST_DOWN;
	l->last_error[0] = '\0';
	l->kick_due = 0;
	for (size_t i = 0; i < l->nchans; i++)
		l->chans[i].joined = 0;
	notes_abort_all(l);
	/* Control lines belong to the connection; messages wait for the next. */
	lq_clear(&l->ctl);
	free(l->away_sent);
	l->away_sent = NULL;
	if (l->started)
		schedule_reconnect(l);
}

/* ---- resolving a host name off the loop (irc_resolve.c) ---- */

static void
on_resolved(void *ud, const char *addr, int family, const char *err)
{
	struct irc *l = ud;

	l->res = NULL;		/* the handle ends with this call */
	if (family == 0) {
		link_down(l, err);
		return;
	}
	sb_debug("irc %s: %s is %s", l->ch->name, l->server, addr);
	l->state = ST_DOWN;
	connect_addr(l, addr, family);
}

static void
resolve_start(struct irc *l)
{
	if ((l->res = sb_irc_resolve(l->server, on_resolved, l)) == NULL) {
		sb_warn("irc %s: cannot start the resolver", l->ch->name);
		schedule_reconnect(l);
		return;
	}
	l->state = ST_RESOLVING;
}

static void
resolve_abandon(struct irc *l)
{
	if (l->res)
		sb_irc_resolve_abandon(l->res);
	l->res = NULL;
}

/* ---- connecting ---- */

static void
connect_addr(struct irc *l, const char *addr, int family)
{
	char *pass = sb_irc_escape_percent(l->password);
	char *user = sb_irc_escape_percent(l->username);
	char *real = sb_irc_escape_percent(l->realname);
	fd_set in, out;
	int maxfd = 0, probe, rc;

	/*
	 * libircclient's fd sets are select()'s, so its socket must be below
	 * FD_SETSIZE.  socket() takes the lowest free number, which this
	 * probe sees first; the margin covers fds other threads (XMPP, HAL
	 * workers) may open in between.
	 */
	probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0)
		close(probe);
	if (probe < 0 || probe >= FD_SETSIZE - 64) {
		link_down(l, probe < 0 ? strerror(errno) : "no free fd below FD_SETSIZE");
		goto out;
	}
	if (!sb_irc_is_loopback(addr) && !l->warned_plain) {
		sb_warnx("irc %s: %s (%s) is not this host, and this connection is plaintext: "
		    "passwords and commands cross the network in the clear; connect through a "
		    "local TLS tunnel (doc/irc.md)", l->ch->name, l->server, addr);
		l->warned_plain = 1;
	}
	l->nick_try = 0;
	l->cur_nick[0] = '\0';
	l->last_error[0] = '\0';
	if (family == AF_INET6)
		rc = irc_connect6(l->s, addr, (unsigned short)l->port, pass, l->nick, user, real);
	else
		rc = irc_connect(l->s, addr, (unsigned short)l->port, pass, l->nick, user, real);
	if (rc != 0) {
		const char *why = irc_strerror(irc_errno(l->s));

		irc_disconnect(l->s);	/* a failed connect leaves its socket open */
		link_down(l, why);
		goto out;
	}
	FD_ZERO(&in);
	FD_ZERO(&out);
	if (irc_add_select_descriptors(l->s, &in, &out, &maxfd) != 0 || !FD_ISSET(maxfd, &out)) {
		irc_disconnect(l->s);
		link_down(l, "libircclient has no socket");
		goto out;
	}
	l->fd = maxfd;
	(void)fcntl(l->fd, F_SETFD, FD_CLOEXEC);	/* HAL helpers need not inherit it */
	if (sb_loop_add_fd(sb_core.loop, l->fd, SB_WRITE, on_io, l) < 0) {
		l->fd = -1;
		irc_disconnect(l->s);
		link_down(l, "cannot watch the socket");
		goto out;
	}
	l->fdmask = SB_WRITE;
	l->state = ST_CONNECTING;
	l->conn_started = sb_now_ms();
	l->connects++;
	sb_debug("irc %s: connecting to %s port %d", l->ch->name, addr, l->port);
out:
	free(pass);
	free(user);
	free(real);
}

static void
connect_begin(struct irc *l)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, l->server, buf) == 1)
		connect_addr(l, l->server, AF_INET);
	else if (inet_pton(AF_INET6, l->server, buf) == 1)
		connect_addr(l, l->server, AF_INET6);
	else
		resolve_start(l);
}

static long
tick(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct irc *l = ud;
	uint64_t now = sb_now_ms(), iv = (uint64_t)l->ping_interval * 1000;

	(void)loop;
	(void)t;
	switch (l->state) {
	case ST_DOWN:
		if (now >= l->next_connect)
			connect_begin(l);
		break;
	case ST_RESOLVING:
		break;
	case ST_CONNECTING:
	case ST_REGISTERING:
		if (now - l->conn_started > CONNECT_TIMEOUT)
			link_down(l, "timed out");
		break;
	case ST_UP:
		for (size_t i = 0; i < l->nchans; i++) {
			struct ichan *c = &l->chans[i];

			if (!c->joined && !c->kicked && c->retry_at && now >= c->retry_at) {
				if (c->key)
					queue_ctl(l, "JOIN %s %s", c->name, c->key);
				else
					queue_ctl(l, "JOIN %s", c->name);
				c->retry_at = now + JOIN_RETRY;
			}
		}
		if (iv) {
			if (l->ping_sent && l->last_rx > l->ping_sent)
				l->ping_sent = 0;
			if (l->ping_sent && now - l->ping_sent > iv) {
				link_down(l, "the server stopped answering");
				break;
			}
			if (!l->ping_sent && now - l->last_rx >= iv) {
				queue_ctl(l, "PING :%s", l->cur_nick);
				l->ping_sent = now;
			}
		}
		if (sb_irc_casecmp(l->cur_nick, l->nick) != 0 && now - l->last_regain >= REGAIN_EVERY) {
			queue_ctl(l, "NICK %s", l->nick);
			l->last_regain = now;
		}
		pump(l);
		break;
	}
	return TICK_MS;
}

/* ---- configuration ---- */

/* No CR, LF or other control character but tab. */
static int
plain_text(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 0;
	return 1;
}

static int
valid_nick(const char *s)
{
	return sb_irc_valid_target(s) && !sb_irc_is_channel(s) && strlen(s) <= 30 &&
	    strpbrk(s, "!@%*?") == NULL;
}

static char *
copy_str(const config_setting_t *s, const char *key, const char *def)
{
	return sb_strdup(sb_conf_str(s, key, def));
}

static void
irc_free(struct irc *l)
{
	if (l == NULL)
		return;
	free(l->server);
	free(l->password);
	free(l->nick);
	for (size_t i = 0; i < l->nalt; i++)
		free(l->alt[i]);
	free(l->alt);
	free(l->username);
	free(l->realname);
	for (size_t i = 0; i < l->nchans; i++) {
		free(l->chans[i].name);
		free(l->chans[i].key);
	}
	free(l->chans);
	free(l->ns_nick);
	free(l->ns_password);
	free(l->cmd_prefix);
	lq_clear(&l->ctl);
	lq_clear(&l->msg);
	for (struct inote *n = l->notes, *nx; n; n = nx) {
		nx = n->next;
		report(n->id, SB_SEND_LATER);
		free(n);
	}
	free(l->away_sent);
	for (struct cut *c = l->cuts, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(l);
}

static int
parse_channels(struct irc *l, const config_setting_t *list, char *err, size_t errlen)
{
	size_t n = list ? (size_t)config_setting_length(list) : 0;

	l->chans = sb_calloc(n + 1, sizeof(*l->chans));
	for (size_t i = 0; i < n; i++) {
		const char *e = config_setting_get_string_elem(list, (int)i);
		size_t nl = e ? strcspn(e, " \t") : 0;
		char *name = e ? sb_strndup(e, nl) : NULL;
		const char *key = e ? e + nl + strspn(e + nl, " \t") : "";

		if (name == NULL || !sb_irc_is_channel(name) ||
		    (*key && (!sb_irc_valid_target(key) || strpbrk(key, " \t")))) {
			snprintf(err, errlen, "channels: \"%s\" is not \"#channel\" or \"#channel key\"",
			    e ? e : "");
			free(name);
			return -1;
		}
		if (chan_find(l, name)) {
			snprintf(err, errlen, "channels: %s is listed twice", name);
			free(name);
			return -1;
		}
		l->chans[l->nchans].name = name;
		l->chans[l->nchans].key = *key ? sb_strdup(key) : NULL;
		l->nchans++;
	}
	return 0;
}

static int
irc_open(struct sb_channel *ch, const config_setting_t *s, char *err, size_t errlen)
{
	struct irc *l = sb_calloc(1, sizeof(*l));
	const char *refuse = sb_conf_str(s, "refuse", "notice");
	config_setting_t *alt = s ? config_setting_get_member(s, "alt_nicks") : NULL;
	long long n;

	l->ch = ch;
	l->fd = -1;
	l->server = copy_str(s, "server", "127.0.0.1");
	if (l->server[0] == '#' || !sb_irc_valid_target(l->server)) {
		snprintf(err, errlen, l->server[0] == '#' ?
		    "server: this libircclient has no TLS (\"#host\"); connect through a local TLS tunnel (doc/irc.md)" :
		    "server: \"%s\" is not a host name or address", l->server);
		goto fail;
	}
	n = sb_conf_int(s, "port", 6667);
	if (n < 1 || n > 65535) {
		snprintf(err, errlen, "port must be 1 to 65535");
		goto fail;
	}
	l->port = (int)n;
	if (sb_conf_secret(s, "password", &l->password, err, errlen) < 0)
		goto fail;
	if (l->password && !*l->password) {	/* "PASS" with nothing is a syntax error */
		free(l->password);
		l->password = NULL;
	}
	l->nick = copy_str(s, "nick", "sbbot");
	l->username = copy_str(s, "username", "switchbd");
	l->realname = copy_str(s, "realname", "switchboard");
	l->ns_nick = copy_str(s, "nickserv_nick", "NickServ");
	if (sb_conf_secret(s, "nickserv_password", &l->ns_password, err, errlen) < 0)
		goto fail;
	l->cmd_prefix = copy_str(s, "command_prefix", "!");
	if (!valid_nick(l->nick) || !valid_nick(l->ns_nick)) {
		snprintf(err, errlen, "nick: \"%s\" is not a valid nick",
		    valid_nick(l->nick) ? l->ns_nick : l->nick);
		goto fail;
	}
	if (!sb_irc_valid_target(l->username) || strpbrk(l->username, "@!%") ||
	    strlen(l->username) > 20) {
		snprintf(err, errlen, "username: \"%s\" is not a valid user name", l->username);
		goto fail;
	}
	if (!plain_text(l->password) || !plain_text(l->realname) || !plain_text(l->ns_password) ||
	    !*l->realname) {
		snprintf(err, errlen, "password, realname and nickserv_password must be one line of text");
		goto fail;
	}
	if (!sb_irc_valid_target(l->cmd_prefix) || strlen(l->cmd_prefix) > 8) {
		snprintf(err, errlen, "command_prefix must be 1 to 8 characters without blanks");
		goto fail;
	}
	l->nalt = alt ? (size_t)config_setting_length(alt) : 1;
	l->alt = sb_calloc(l->nalt + 1, sizeof(char *));
	l->max_nick = strlen(l->nick) > 9 ? strlen(l->nick) : 9;
	for (size_t i = 0; i < l->nalt; i++) {
		l->alt[i] = alt ? sb_strdup(config_setting_get_string_elem(alt, (int)i)) :
		    sb_asprintf("%s_", l->nick);
		if (l->alt[i] == NULL || !valid_nick(l->alt[i])) {
			snprintf(err, errlen, "alt_nicks: \"%s\" is not a valid nick",
			    l->alt[i] ? l->alt[i] : "");
			goto fail;
		}
		if (strlen(l->alt[i]) > l->max_nick)
			l->max_nick = strlen(l->alt[i]);
	}
	if (parse_channels(l, s ? config_setting_get_member(s, "channels") : NULL, err, errlen) < 0)
		goto fail;
	l->rejoin = sb_conf_bool(s, "rejoin", 1);
	l->away_enabled = sb_conf_bool(s, "away", 1);
	n = sb_conf_int(s, "max_channel_lines", 10);
	if (n < 1 || n > 1000) {
		snprintf(err, errlen, "max_channel_lines must be 1 to 1000");
		goto fail;
	}
	l->max_lines = (size_t)n;
	n = sb_conf_int(s, "flood_burst", 4);
	if (n < 1 || n > 100) {
		snprintf(err, errlen, "flood_burst must be 1 to 100 lines");
		goto fail;
	}
	l->burst = (double)n;
	l->rate = sb_conf_float(s, "flood_rate", 1.0);
	if (!(l->rate >= 0.05 && l->rate <= 100)) {
		snprintf(err, errlen, "flood_rate must be 0.05 to 100 lines a second");
		goto fail;
	}
	n = sb_conf_int(s, "queue_max", 1000);
	if (n < 10 || n > 1000000) {
		snprintf(err, errlen, "queue_max must be 10 to 1000000 lines");
		goto fail;
	}
	l->queue_max = (size_t)n;
	n = sb_conf_int(s, "ping_interval", 120);
	if (n != 0 && (n < 5 || n > 3600)) {
		snprintf(err, errlen, "ping_interval must be 0 (never) or 5 to 3600 seconds");
		goto fail;
	}
	l->ping_interval = (int)n;
	n = sb_conf_int(s, "reconnect_max", 300);
	if (n < 2 || n > 86400) {
		snprintf(err, errlen, "reconnect_max must be 2 to 86400 seconds");
		goto fail;
	}
	l->reconnect_max = (int)n;
	if (strcmp(refuse, "notice") == 0 || strcmp(refuse, "reply") == 0) {
		ch->silent_refusal = 0;
	} else if (strcmp(refuse, "silent") == 0) {
		ch->silent_refusal = 1;
	} else {
		snprintf(err, errlen, "refuse must be notice or silent, not \"%s\"", refuse);
		goto fail;
	}
	ch->priv = l;
	return 0;
fail:
	irc_free(l);
	return -1;
}

/* ---- the driver's entry points ---- */

static int
irc_start(struct sb_channel *ch)
{
	struct irc *l = ch->priv;
	irc_callbacks_t cb;

	memset(&cb, 0, sizeof(cb));
	cb.event_numeric = on_numeric;
	cb.event_join = on_join;
	cb.event_part = on_part;
	cb.event_kick = on_kick;
	cb.event_nick = on_nick;
	cb.event_privmsg = on_message;
	cb.event_channel = on_message;
	cb.event_ctcp_req = on_ctcp;
	cb.event_invite = on_invite;
	cb.event_unknown = on_unknown;
	cb.event_dcc_chat_req = on_dcc_chat;
	cb.event_dcc_send_req = on_dcc_send;
	if ((l->s = irc_create_session(&cb)) == NULL) {
		sb_warnx("irc %s: cannot create a libircclient session", ch->name);
		return -1;
	}
	irc_set_ctx(l->s, l);
	l->started = 1;
	l->state = ST_DOWN;
	l->up_once = 0;
	l->kick_due = 0;
	l->backoff = 0;
	l->next_connect = 0;
	l->warned_plain = 0;
	l->tick_timer = sb_loop_add_timer(sb_core.loop, TICK_MS, tick, l);
	connect_begin(l);
	return 0;
}

static struct cut *
cut_get(struct irc *l, const struct sb_msg *req)
{
	struct cut *c;

	for (c = l->cuts; c; c = c->next)
		if (c->req == req)
			return c;
	c = sb_calloc(1, sizeof(*c));
	c->req = req;
	c->next = l->cuts;
	l->cuts = c;
	return c;
}

static void
cut_forget(struct irc *l, const struct sb_msg *req)
{
	for (struct cut **cp = &l->cuts; *cp; cp = &(*cp)->next)
		if ((*cp)->req == req) {
			struct cut *c = *cp;

			*cp = c->next;
			free(c);
			return;
		}
}

/* "(40 more lines cut; for all of it: /msg sbbot mail: status)" */
static void
queue_cut_note(struct irc *l, const char *target, size_t over, const struct sb_msg *req)
{
	char cmd[POINTER_CMD_MAX + 1], *note;

	if (req) {
		snprintf(cmd, sizeof(cmd), "%s%s%s", req->node ? req->node : "",
		    req->node ? ": " : "", req->text);
		cmd[sb_irc_cut(cmd, strlen(cmd), POINTER_CMD_MAX)] = '\0';
		note = sb_asprintf("(%zu more line%s cut; for all of it: /msg %s %s)", over,
		    over == 1 ? "" : "s", l->cur_nick[0] ? l->cur_nick : l->nick, cmd);
	} else {
		note = sb_asprintf("(%zu more line%s cut)", over, over == 1 ? "" : "s");
	}
	queue_text(l, req ? "PRIVMSG" : "NOTICE", target, note, NULL);
	free(note);
}

static int
irc_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text, unsigned flags)
{
	struct irc *l = ch->priv;

	if (text && *text) {
		if (req->kind == SB_MSG_GROUP) {
			/* A channel is shared: a long answer goes to a query. */
			struct cut *c = cut_get(l, req);

			if (!c->cut) {
				size_t room = l->max_lines - c->sent, before = room;
				size_t over = queue_text(l, "PRIVMSG", req->conv, text, &room);

				c->sent += before - room;
				if (over) {
					c->cut = 1;
					queue_cut_note(l, req->conv, over, req);
				}
			}
		} else {
			queue_text(l, "PRIVMSG", req->conv, text, NULL);
		}
	}
	if (flags & SB_REPLY_DONE)
		cut_forget(l, req);
	pump(l);
	return 0;
}

/* An announcement to one nick or channel: NOTICEs, cut after
 * max_channel_lines in a channel. */
static void
announce(struct irc *l, const char *to, const char *text)
{
	size_t room = l->max_lines, over;

	if (!sb_irc_is_channel(to)) {
		queue_text(l, "NOTICE", to, text, NULL);
		return;
	}
	if ((over = queue_text(l, "NOTICE", to, text, &room)) > 0)
		queue_cut_note(l, to, over, NULL);
}

static int
irc_send(struct sb_channel *ch, const char *to, const char *text)
{
	struct irc *l = ch->priv;

	if (to == NULL) {
		/* The default audience: every configured channel. */
		if (l->nchans == 0)
			return -1;
		for (size_t i = 0; i < l->nchans; i++)
			announce(l, l->chans[i].name, text);
	} else if (!sb_irc_valid_target(to)) {
		sb_warnx("irc %s: notification to \"%.60s\" dropped: not a nick or channel",
		    ch->name, to);
		return -1;
	} else {
		announce(l, to, text);
	}
	pump(l);
	return 0;
}

/* Lines an announcement of text to target may take in the queue, its cut
 * note included. */
static size_t
lines_needed(struct irc *l, const char *target, const char *text)
{
	char **pieces;
	size_t n = sb_irc_wrap(text, strlen(text),
	    sb_irc_text_budget(prefix_len(l), "NOTICE", target), &pieces);

	for (size_t i = 0; i < n; i++)
		free(pieces[i]);
	free(pieces);
	if (sb_irc_is_channel(target) && n > l->max_lines)
		n = l->max_lines + 1;
	return n;
}

/*
 * A spooled notice: its lines go through the paced queue like any
 * announcement, and it is confirmed (sb_notice_result DONE) once its last
 * line has left libircclient's buffer for the socket.  If the connection
 * drops first, its queued lines are dropped and it is reported LATER, so
 * the spool's retry sends it whole and once more.  Only while registered
 * and, for a configured channel, joined: else LATER at once.
 */
static int
irc_deliver(struct sb_channel *ch, const struct sb_notice *n)
{
	struct irc *l = ch->priv;
	const char *text = n->text ? n->text : "";
	size_t ntargets = n->to ? 1 : l->nchans, need = 0;
	struct inote *note;

	if (n->to == NULL && l->nchans == 0) {
		sb_warnx("irc %s: notice %llu has no address and no channel is configured",
		    ch->name, (unsigned long long)n->id);
		return SB_SEND_FAIL;
	}
	if (n->to && !sb_irc_valid_target(n->to)) {
		sb_warnx("irc %s: notice %llu to \"%.60s\" dropped: not a nick or channel",
		    ch->name, (unsigned long long)n->id, n->to);
		return SB_SEND_FAIL;
	}
	if (!l->started || l->state != ST_UP)
		return SB_SEND_LATER;
	for (size_t i = 0; i < ntargets; i++) {
		const char *to = n->to ? n->to : l->chans[i].name;

		if (target_ready(l, to) <= 0)
			return SB_SEND_LATER;
		need += lines_needed(l, to, text);
	}
	if (need == 0)
		return SB_SEND_DONE;	/* nothing to say: blank text */
	if (need > l->queue_max) {
		sb_warnx("irc %s: notice %llu dropped: %zu lines, more than queue_max (%zu)",
		    ch->name, (unsigned long long)n->id, need, l->queue_max);
		return SB_SEND_FAIL;
	}
	/* Busy: it waits in the spool rather than push replies out. */
	if (l->msg.n + need > l->queue_max)
		return SB_SEND_LATER;
	if (note_find(l, n->id))
		return SB_SEND_PENDING;	/* already on its way */
	note = sb_calloc(1, sizeof(*note));
	note->id = n->id;
	note->next = l->notes;
	l->notes = note;
	l->queuing = note;
	for (size_t i = 0; i < ntargets; i++)
		announce(l, n->to ? n->to : l->chans[i].name, text);
	l->queuing = NULL;
	pump(l);
	return SB_SEND_PENDING;
}

static int
irc_presence(struct sb_channel *ch, const struct sb_node *n)
{
	struct irc *l = ch->priv;

	(void)n;
	/* Many nodes may change at once: one AWAY for all of them. */
	if (l->away_enabled && l->started && l->away_timer == NULL)
		l->away_timer = sb_loop_add_timer(sb_core.loop, 100, away_fire, l);
	return 0;
}

static void
irc_describe(struct sb_channel *ch, struct sb_buf *b)
{
	struct irc *l = ch->priv;
	size_t joined = 0;

	for (size_t i = 0; i < l->nchans; i++)
		joined += l->chans[i].joined;
	sb_buf_printf(b, "%s:%d, ", l->server, l->port);
	switch (l->state) {
	case ST_UP:
		sb_buf_printf(b, "connected as %s, in %zu of %zu channels", l->cur_nick, joined,
		    l->nchans);
		break;
	case ST_DOWN:
		sb_buf_printf(b, "disconnected");
		break;
	default:
		sb_buf_printf(b, "connecting");
		break;
	}
	sb_buf_printf(b, ", %zu queued, %lu lines out, %lu in, %lu connects%s",
	    l->ctl.n + l->msg.n, l->lines_out, l->lines_in, l->connects,
	    l->dropped ? ", some queued lines dropped" : "");
}

static void
irc_stop(struct sb_channel *ch)
{
	struct irc *l = ch->priv;

	if (!l->started)
		return;
	l->started = 0;
	resolve_abandon(l);
	if (l->tick_timer)
		sb_loop_del_timer(sb_core.loop, l->tick_timer);
	if (l->pump_timer)
		sb_loop_del_timer(sb_core.loop, l->pump_timer);
	if (l->away_timer)
		sb_loop_del_timer(sb_core.loop, l->away_timer);
	l->tick_timer = l->pump_timer = l->away_timer = NULL;
	if (l->fd >= 0 && l->state == ST_UP) {
		fd_set in, out;

		/* Say goodbye if the socket takes it now; never wait. */
		FD_ZERO(&in);
		FD_ZERO(&out);
		FD_SET(l->fd, &out);
		if (irc_send_raw(l->s, "QUIT :switchboard stopping") == 0)
			(void)irc_process_select_descriptors(l->s, &in, &out);
	}
	if (l->fd >= 0)
		sb_loop_del_fd(sb_core.loop, l->fd);
	l->fd = -1;
	l->fdmask = 0;
	if (l->s) {
		irc_disconnect(l->s);
		irc_destroy_session(l->s);
		l->s = NULL;
	}
	l->state = ST_DOWN;
	lq_clear(&l->ctl);
	notes_abort_all(l);
	for (struct pending *p = l->pend, *n; p; p = n) {
		n = p->next;
		free(p->origin);
		free(p->target);
		free(p->text);
		free(p);
	}
	l->pend = l->pend_tail = NULL;
	sb_info("irc %s: stopped", ch->name);
}

static void
irc_close(struct sb_channel *ch)
{
	struct irc *l = ch->priv;

	irc_stop(ch);
	irc_free(l);
	ch->priv = NULL;
}

const struct sb_channel_driver sb_chan_irc = {
	.name = "irc",
	.abi = SB_CHANNEL_ABI,
	.keys = irc_keys,
	.open = irc_open,
	.start = irc_start,
	.reply = irc_reply,
	.send = irc_send,
	.deliver = irc_deliver,
	.presence = irc_presence,
	.describe = irc_describe,
	.stop = irc_stop,
	.close = irc_close,
};
