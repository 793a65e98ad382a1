/*
 * xmpp_link.c: the XMPP channel's link: libstrophe on the channel's own
 * thread.  It owns the libstrophe context and connection, the socket it
 * polls, the presence table and watchers, rooms and their occupants, the
 * queue of messages kept while offline, reconnects and pings.  It answers
 * what needs no core state itself (pings, disco, unknown iqs, probes) and
 * posts the rest (messages, subscription requests, ad-hoc requests) to the
 * core; it applies the ops the core queues.  It makes no decision about
 * who may do what.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <strophe.h>

#include "channel.h"
#include "core.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "xmpp_adhoc.h"
#include "xmpp_link.h"

/* ---- small helpers ---- */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
xl_op_free(struct op *o)
{
	free(o->node);
	free(o->to);
	free(o->from);
	free(o->thread);
	free(o->text);
	free(o->show);
	free(o->status);
	free(o);
}

void
xl_unref(struct xlink *l)
{
	if (atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	for (struct op *o = l->head, *n; o; o = n) {
		n = o->next;
		xl_op_free(o);
	}
	pthread_mutex_destroy(&l->lock);
	if (l->efd >= 0)
		close(l->efd);
	free(l->chan);
	free(l->server);
	free(l->jid);
	free(l->password);
	free(l->resource);
	free(l->node);
	free(l->domain);
	free(l->secret);
	free(l->ca_file);
	free(l->nick);
	free(l->roster_group);
	for (size_t i = 0; i < l->nwatch_cfg; i++)
		free(l->watch_cfg[i]);
	free(l->watch_cfg);
	for (size_t i = 0; i < l->nrooms; i++)
		free(l->rooms[i].jid);
	free(l->rooms);
	free(l);
}

/* Core -> thread: a chain at once, so that one drain sees all of it.
 * Takes the ops.  Only a push onto an empty queue wakes the thread: a
 * non-empty one has its wake-up on the way already (drain() reads the
 * eventfd before it takes the queue), so a burst of replies costs one
 * write, not one each. */
void
xl_push_ops(struct xlink *l, struct op *head, struct op *tail)
{
	uint64_t one = 1;
	int was_empty;

	if (head == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	was_empty = l->head == NULL;
	if (l->tail)
		l->tail->next = head;
	else
		l->head = head;
	l->tail = tail;
	pthread_mutex_unlock(&l->lock);
	if (was_empty)
		(void)!write(l->efd, &one, sizeof(one));
}

/* Core -> thread. Takes o. */
void
xl_push_op(struct xlink *l, struct op *o)
{
	xl_push_ops(l, o, o);
}

/* Each link's thread: its link (the sockopt callback has no user data;
 * xl_post_event runs a message inline only on its own link's thread). */
static __thread struct xlink *tl_link;

/* Thread -> core.  A message is run on this thread when the loop thread
 * is idle (sb_loop_try_run): a command's answer then costs no thread
 * switch; the thread sends it, then wakes the loop (xl_thread_main).  A
 * loop asleep for less than INLINE_IDLE_US is taken for a burst, where
 * the loop working beside this thread answers more: the message is
 * posted.  (Commands one at a time come a round trip apart, 0.4 ms or
 * more; 32 in flight, well under 0.1 ms.) */
#define INLINE_IDLE_US	200

void
xl_post_event(struct xlink *l, struct xevent *e)
{
	e->l = l;
	atomic_fetch_add(&l->refs, 1);
	if (e->kind == EV_MESSAGE && tl_link == l &&
	    sb_loop_try_run(sb_core.loop, INLINE_IDLE_US, xl_event_run, e)) {
		l->ran_inline = 1;
		return;
	}
	if (sb_loop_post(sb_core.loop, xl_event_run, e) < 0) {
		atomic_fetch_sub(&l->refs, 1);
		xl_event_free(e);
	}
}

/* Notices' results go to the spool on the loop thread.  Takes ids. */
void
xl_post_results(struct xlink *l, uint64_t *ids, size_t n, int result)
{
	struct xevent *e;

	if (n == 0) {
		free(ids);
		return;
	}
	e = sb_calloc(1, sizeof(*e));
	e->kind = EV_RESULT;
	e->ids = ids;
	e->nids = n;
	e->result = result;
	xl_post_event(l, e);
}

/* ---- presence table (thread side) ---- */

static unsigned
hash(const char *s)
{
	return sb_strhash(s) % BUCKETS;
}

static struct pres *
pres_get(struct xlink *l, const char *node, int create)
{
	unsigned h = hash(node);
	struct pres *p;

	for (p = l->pres[h]; p; p = p->next)
		if (strcmp(p->node, node) == 0)
			return p;
	if (!create)
		return NULL;
	p = sb_calloc(1, sizeof(*p));
	p->node = sb_strdup(node);
	p->next = l->pres[h];
	l->pres[h] = p;
	return p;
}

/* Returns 0, or -1 when the list is full: a flood of probes (from a
 * server that forges them) must not grow it without bound. */
static int
watcher_add(struct watcher_list *w, const char *bare)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->jids[i], bare) == 0)
			return 0;
	if (w->n >= SB_XMPP_MAX_WATCHERS)
		return -1;
	w->jids = sb_realloc(w->jids, (w->n + 1) * sizeof(char *));
	w->jids[w->n++] = sb_strdup(bare);
	return 0;
}

static void
watcher_del(struct watcher_list *w, const char *bare)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->jids[i], bare) == 0) {
			free(w->jids[i]);
			w->jids[i] = w->jids[--w->n];
			return;
		}
}

static void
pres_free_all(struct xlink *l)
{
	for (size_t b = 0; b < BUCKETS; b++) {
		struct pres *p, *n;

		for (p = l->pres[b]; p; p = n) {
			n = p->next;
			for (size_t i = 0; i < p->w.n; i++)
				free(p->w.jids[i]);
			free(p->w.jids);
			free(p->node);
			free(p->show);
			free(p->status);
			free(p);
		}
		l->pres[b] = NULL;
	}
}

/* ---- stanza building (thread side) ---- */

static void
node_jid(struct xlink *l, const char *node, char *out, size_t len)
{
	if (l->component)
		snprintf(out, len, "%s@%s", node, l->domain);
	else
		snprintf(out, len, "%s", l->bound ? l->bound : l->jid);
}

static void
add_text_child(xmpp_ctx_t *ctx, xmpp_stanza_t *parent, const char *name, const char *text)
{
	xmpp_stanza_t *c = xmpp_stanza_new(ctx), *t = xmpp_stanza_new(ctx);

	xmpp_stanza_set_name(c, name);
	xmpp_stanza_set_text(t, text);
	xmpp_stanza_add_child(c, t);
	xmpp_stanza_release(t);
	xmpp_stanza_add_child(parent, c);
	xmpp_stanza_release(c);
}

static void
send_stanza(struct xlink *l, xmpp_stanza_t *s)
{
	char *text;
	size_t len;

	if (l->batching && xmpp_stanza_to_text(s, &text, &len) == XMPP_EOK) {
		sb_buf_add(&l->out, text, len);
		xmpp_free(l->ctx, text);
	} else {
		xmpp_send(l->conn, s);
	}
	xmpp_stanza_release(s);
	atomic_fetch_add(&l->stanzas_out, 1);
}

static void
send_presence_to(struct xlink *l, const struct pres *p, const char *to)
{
	xmpp_stanza_t *s;
	char from[512];

	if (!p->known)
		return;		/* no presence until the first poll */
	s = xmpp_presence_new(l->ctx);
	if (l->component) {
		node_jid(l, p->node, from, sizeof(from));
		xmpp_stanza_set_from(s, from);
	}
	if (to)
		xmpp_stanza_set_to(s, to);
	if (p->unavailable)
		xmpp_stanza_set_type(s, "unavailable");
	if (p->show && *p->show && !p->unavailable)
		add_text_child(l->ctx, s, "show", p->show);
	if (p->status && *p->status)
		add_text_child(l->ctx, s, "status", p->status);
	send_stanza(l, s);
}

/* Announce one node: in client mode the server fans out to subscribers;
 * in component mode we send to each watcher ourselves. */
static void
announce(struct xlink *l, const struct pres *p)
{
	if (!l->component) {
		if (l->node && strcmp(l->node, p->node) == 0)
			send_presence_to(l, p, NULL);
		return;
	}
	for (size_t i = 0; i < l->nwatch_cfg; i++)
		send_presence_to(l, p, l->watch_cfg[i]);
	for (size_t i = 0; i < p->w.n; i++) {
		int dup = 0;

		for (size_t j = 0; j < l->nwatch_cfg && !dup; j++)
			dup = strcmp(l->watch_cfg[j], p->w.jids[i]) == 0;
		if (!dup)
			send_presence_to(l, p, p->w.jids[i]);
	}
}

/* Length of the valid UTF-8 character at s (at most len bytes) that XML
 * 1.0 allows in text, or 0: no C0 control but tab, LF and CR, no
 * surrogate, no U+FFFE or U+FFFF, nothing past U+10FFFF, no overlong. */
static size_t
xml_char_len(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n;

	if (c < 0x80)
		return c >= 0x20 || c == '\t' || c == '\n' || c == '\r' ? 1 : 0;
	n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
	if (n == 0 || n > len)
		return 0;
	c &= 0x7F >> n;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) || c == 0xFFFE || c == 0xFFFF)
		return 0;
	return n;
}

/*
 * A copy of text that is safe as XML character data: every byte that is
 * not part of an allowed character becomes '?'.  A server closes the
 * stream on one bad byte (not-well-formed), and a spooled notice holding
 * one would then take the link down at every retry.
 */
static char *
xml_clean(const char *text)
{
	size_t len = strlen(text), i = 0;
	char *out = sb_strdup(text);

	while (i < len) {
		size_t n = xml_char_len((const unsigned char *)text + i, len - i);

		if (n == 0) {
			out[i++] = '?';
			continue;
		}
		i += n;
	}
	return out;
}

/* Split on line boundaries into pieces of at most max bytes; a line longer
 * than that is cut at a UTF-8 character boundary.  With an id (a spooled
 * notice's), the first piece carries it and the next ones "<id>.2", ... */
static void
send_text(struct xlink *l, const char *to, const char *from, const char *thread,
          int groupchat, const char *id, const char *dirty)
{
	char *text = xml_clean(dirty);
	size_t len = strlen(text), off = 0, max = l->max_message;
	unsigned piece_no = 0;

	while (off < len) {
		size_t n = len - off;
		xmpp_stanza_t *m;
		char *piece, pid[64];

		if (n > max) {
			size_t cut = max;

			while (cut > 0 && text[off + cut - 1] != '\n')
				cut--;
			if (cut == 0) {
				cut = max;
				while (cut > 0 && ((unsigned char)text[off + cut] & 0xC0) == 0x80)
					cut--;
				if (cut == 0)
					cut = max;
			}
			n = cut;
		}
		piece = sb_strndup(text + off, n);
		if (n > 0 && piece[n - 1] == '\n')
			piece[n - 1] = '\0';
		if (id && piece_no++ > 0)
			snprintf(pid, sizeof(pid), "%s.%u", id, piece_no);
		else if (id)
			snprintf(pid, sizeof(pid), "%s", id);
		m = xmpp_message_new(l->ctx, groupchat ? "groupchat" : "chat", to, id ? pid : NULL);
		if (from)
			xmpp_stanza_set_from(m, from);
		xmpp_message_set_body(m, piece);
		if (thread && *thread)
			add_text_child(l->ctx, m, "thread", thread);
		send_stanza(l, m);
		free(piece);
		off += n;
	}
	free(text);
}

static void
send_message_op(struct xlink *l, const struct op *o)
{
	char from[512];
	const char *f = NULL;

	if (l->component) {
		if (o->from)
			f = o->from;
		else if (o->groupchat) {
			snprintf(from, sizeof(from), "%s/%s", l->domain, l->nick);
			f = from;
		} else {
			f = l->domain;
		}
	}
	if (o->kind == OP_NOTICE) {
		char id[32];

		snprintf(id, sizeof(id), "sb-%llu", (unsigned long long)o->id);
		send_text(l, o->to, f, NULL, o->groupchat, id, o->text);
	} else {
		send_text(l, o->to, f, o->thread, o->groupchat, NULL, o->text);
	}
}

static void
send_subscription(struct xlink *l, const char *type, const char *from, const char *to)
{
	xmpp_stanza_t *s = xmpp_presence_new(l->ctx);

	xmpp_stanza_set_type(s, type);
	if (from)
		xmpp_stanza_set_from(s, from);
	xmpp_stanza_set_to(s, to);
	send_stanza(l, s);
}

/*
 * The fallback when no shared roster puts the nodes in operators' rosters
 * (off by default): the first time a node is seen on this link, ask each
 * configured watcher to subscribe to it, with a XEP-0144 roster item
 * exchange suggesting the group it belongs in.
 */
static void
suggest(struct xlink *l, struct pres *p)
{
	char from[512];

	if (!l->component)
		return;
	p->suggested = 1;
	node_jid(l, p->node, from, sizeof(from));
	for (size_t i = 0; i < l->nwatch_cfg; i++) {
		xmpp_stanza_t *m = xmpp_message_new(l->ctx, NULL, l->watch_cfg[i], NULL);
		xmpp_stanza_t *x = xmpp_stanza_new(l->ctx), *item = xmpp_stanza_new(l->ctx);

		send_subscription(l, "subscribe", from, l->watch_cfg[i]);
		xmpp_stanza_set_from(m, from);
		xmpp_stanza_set_name(x, "x");
		xmpp_stanza_set_ns(x, NS_ROSTERX);
		xmpp_stanza_set_name(item, "item");
		xmpp_stanza_set_attribute(item, "action", "add");
		xmpp_stanza_set_attribute(item, "jid", from);
		xmpp_stanza_set_attribute(item, "name", p->node);
		add_text_child(l->ctx, item, "group", l->roster_group);
		xmpp_stanza_add_child(x, item);
		xmpp_stanza_release(item);
		xmpp_stanza_add_child(m, x);
		xmpp_stanza_release(x);
		send_stanza(l, m);
	}
}

static void
join_room(struct xlink *l, struct room *r)
{
	xmpp_stanza_t *s = xmpp_presence_new(l->ctx), *x = xmpp_stanza_new(l->ctx);
	xmpp_stanza_t *h = xmpp_stanza_new(l->ctx);
	char to[512], from[512];

	snprintf(to, sizeof(to), "%s/%s", r->jid, l->nick);
	xmpp_stanza_set_to(s, to);
	if (l->component) {
		snprintf(from, sizeof(from), "%s/%s", l->domain, l->nick);
		xmpp_stanza_set_from(s, from);
	}
	xmpp_stanza_set_name(x, "x");
	xmpp_stanza_set_ns(x, NS_MUC);
	/* No history: old messages must never run as commands. */
	xmpp_stanza_set_name(h, "history");
	xmpp_stanza_set_attribute(h, "maxchars", "0");
	xmpp_stanza_add_child(x, h);
	xmpp_stanza_release(h);
	xmpp_stanza_add_child(s, x);
	xmpp_stanza_release(x);
	send_stanza(l, s);
	r->rejoin_at = 0;
}

static void
occupants_clear(struct room *r)
{
	struct occupant *o, *n;

	for (o = r->occupants; o; o = n) {
		n = o->next;
		free(o->nick);
		free(o->real);
		free(o);
	}
	r->occupants = NULL;
}

static struct room *
room_find(struct xlink *l, const char *bare)
{
	for (size_t i = 0; i < l->nrooms; i++)
		if (strcasecmp(l->rooms[i].jid, bare) == 0)
			return &l->rooms[i];
	return NULL;
}

/* ---- delivery barriers (thread side) ---- */

/*
 * libstrophe 0.12 has no per-stanza acknowledgement (stream management's
 * acks are not exposed), so a batch of notices is followed by a XEP-0199
 * ping: the server handles a stream's stanzas in order, so its answer
 * (a result or an error alike) says that every message sent before the
 * ping has been taken.  If the link drops first, the batch is reported
 * LATER and sent again, with the same ids: at least once.
 */
static void
barrier_free(struct barrier *b)
{
	free(b->ids);
	free(b);
}

/* The answer to ping seq: it and every older barrier are confirmed. */
static void
barrier_answered(struct xlink *l, unsigned long seq)
{
	struct barrier *b;
	int found = 0;

	for (b = l->barriers; b && !found; b = b->next)
		found = b->seq == seq;
	if (!found)
		return;		/* one from an earlier connection */
	while ((b = l->barriers) != NULL) {
		l->barriers = b->next;
		found = b->seq == seq;
		xl_post_results(l, b->ids, b->n, SB_SEND_DONE);
		b->ids = NULL;
		barrier_free(b);
		if (found)
			break;
	}
	if (l->barriers == NULL)
		l->barriers_tail = NULL;
}

/* The link is gone: what waited for a ping is sent again later. */
static void
barriers_fail(struct xlink *l)
{
	struct barrier *b;

	while ((b = l->barriers) != NULL) {
		l->barriers = b->next;
		xl_post_results(l, b->ids, b->n, SB_SEND_LATER);
		b->ids = NULL;
		barrier_free(b);
	}
	l->barriers_tail = NULL;
}

static void send_ping(struct xlink *, const char *id);

/* After a batch of notices: one ping whose answer confirms them.  Takes
 * ids. */
static void
barrier_add(struct xlink *l, uint64_t *ids, size_t n)
{
	struct barrier *b = sb_calloc(1, sizeof(*b));
	char id[32];

	b->seq = ++l->note_seq;
	b->sent = now_ms();
	b->ids = ids;
	b->n = n;
	snprintf(id, sizeof(id), "sbnote%lu", b->seq);
	send_ping(l, id);
	if (l->barriers_tail)
		l->barriers_tail->next = b;
	else
		l->barriers = b;
	l->barriers_tail = b;
}

/* ---- incoming stanzas (thread side) ---- */

char *
xl_bare_of(const char *jid)
{
	const char *slash = jid ? strchr(jid, '/') : NULL;

	return jid ? (slash ? sb_strndup(jid, (size_t)(slash - jid)) : sb_strdup(jid)) : NULL;
}

static const char *
resource_of(const char *jid)
{
	const char *slash = jid ? strchr(jid, '/') : NULL;

	return slash ? slash + 1 : "";
}

static int
on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	struct xlink *l = ud;
	const char *type = xmpp_stanza_get_type(st), *from = xmpp_stanza_get_from(st);
	xmpp_stanza_t *th;
	struct xevent *e;
	char *body;

	(void)conn;
	atomic_fetch_add(&l->stanzas_in, 1);
	if (from == NULL || (type && strcmp(type, "error") == 0))
		return 1;
	/* Carbons copy our own and others' chats: never commands. */
	if (xmpp_stanza_get_child_by_ns(st, NS_CARBONS))
		return 1;
	if ((body = xmpp_message_get_body(st)) == NULL)
		return 1;
	e = sb_calloc(1, sizeof(*e));
	e->kind = EV_MESSAGE;
	e->body = sb_strdup(body);
	xmpp_free(l->ctx, body);
	if (type && strcmp(type, "groupchat") == 0) {
		char *bare = xl_bare_of(from);
		struct room *r = room_find(l, bare);
		const char *nick = resource_of(from);

		/* Our own echo, history, or a room we are not in. */
		if (r == NULL || *nick == '\0' || strcmp(nick, l->nick) == 0 ||
		    xmpp_stanza_get_child_by_ns(st, NS_DELAY)) {
			free(bare);
			free(e->body);
			free(e);
			return 1;
		}
		e->group = 1;
		e->room = bare;
		e->nick = sb_strdup(nick);
		for (struct occupant *o = r->occupants; o; o = o->next)
			if (strcmp(o->nick, nick) == 0 && o->real)
				e->from_bare = sb_strdup(o->real);
	} else {
		e->from_full = sb_strdup(from);
		e->from_bare = xl_bare_of(from);
		e->to = sb_strdup(xmpp_stanza_get_to(st));
		if ((th = xmpp_stanza_get_child_by_name(st, "thread")) != NULL) {
			char *t = xmpp_stanza_get_text(th);

			e->thread = sb_strdup(t);
			xmpp_free(l->ctx, t);
		}
	}
	xl_post_event(l, e);
	return 1;
}

static void
muc_presence(struct xlink *l, struct room *r, xmpp_stanza_t *st, const char *type,
             const char *nick)
{
	xmpp_stanza_t *x = xmpp_stanza_get_child_by_ns(st, NS_MUC_USER), *c;
	const char *real = NULL;
	int kicked = 0, self = 0;

	if (x) {
		for (c = xmpp_stanza_get_children(x); c; c = xmpp_stanza_get_next(c)) {
			const char *name = xmpp_stanza_get_name(c);

			if (name && strcmp(name, "item") == 0)
				real = xmpp_stanza_get_attribute(c, "jid");
			if (name && strcmp(name, "status") == 0) {
				const char *code = xmpp_stanza_get_attribute(c, "code");

				if (code && strcmp(code, "110") == 0)
					self = 1;
				if (code && (strcmp(code, "307") == 0 || strcmp(code, "301") == 0))
					kicked = 1;
			}
		}
	}
	if (strcmp(nick, l->nick) == 0)
		self = 1;
	if (type && strcmp(type, "error") == 0) {
		if (self || strcmp(nick, l->nick) == 0) {
			sb_warnx("xmpp %s: could not join %s", l->chan, r->jid);
			r->joined = 0;
			r->rejoin_at = now_ms() + 30000;
		}
		return;
	}
	if (type && strcmp(type, "unavailable") == 0) {
		if (self) {
			r->joined = 0;
			occupants_clear(r);
			if (kicked && l->rejoin) {
				sb_warnx("xmpp %s: removed from %s; rejoining", l->chan, r->jid);
				r->rejoin_at = now_ms() + 2000;
			}
			return;
		}
		for (struct occupant **op = &r->occupants; *op; op = &(*op)->next)
			if (strcmp((*op)->nick, nick) == 0) {
				struct occupant *o = *op;

				*op = o->next;
				free(o->nick);
				free(o->real);
				free(o);
				break;
			}
		return;
	}
	if (self) {
		if (!r->joined) {
			struct xevent *e = sb_calloc(1, sizeof(*e));

			sb_info("xmpp %s: joined %s", l->chan, r->jid);
			/* Notices for the room may go now. */
			e->kind = EV_STATE;
			e->up = 1;
			e->room = sb_strdup(r->jid);
			xl_post_event(l, e);
		}
		r->joined = 1;
		return;
	}
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0) {
			free(o->real);
			o->real = xl_bare_of(real);
			return;
		}
	{
		struct occupant *o = sb_calloc(1, sizeof(*o));

		o->nick = sb_strdup(nick);
		o->real = xl_bare_of(real);
		o->next = r->occupants;
		r->occupants = o;
	}
}

const char *
xl_node_of_jid(struct xlink *l, const char *to, char *buf, size_t len)
{
	const char *at;
	char *bare;

	if (!l->component || to == NULL)
		return l->node;
	bare = xl_bare_of(to);
	at = strchr(bare, '@');
	if (at == NULL || strcmp(at + 1, l->domain) != 0) {
		free(bare);
		return NULL;
	}
	snprintf(buf, len, "%.*s", (int)(at - bare), bare);
	free(bare);
	return buf;
}

static int
on_presence(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	struct xlink *l = ud;
	const char *type = xmpp_stanza_get_type(st), *from = xmpp_stanza_get_from(st);
	const char *to = xmpp_stanza_get_to(st);
	char nodebuf[256];
	const char *node;
	struct room *r;
	char *bare;

	(void)conn;
	atomic_fetch_add(&l->stanzas_in, 1);
	if (from == NULL)
		return 1;
	bare = xl_bare_of(from);
	if ((r = room_find(l, bare)) != NULL) {
		muc_presence(l, r, st, type, resource_of(from));
		free(bare);
		return 1;
	}
	node = xl_node_of_jid(l, to, nodebuf, sizeof(nodebuf));
	if (type && strcmp(type, "subscribe") == 0) {
		struct xevent *e = sb_calloc(1, sizeof(*e));

		e->kind = EV_SUBSCRIBE;
		e->from_bare = bare;
		e->to = sb_strdup(node ? node : "");
		xl_post_event(l, e);
		return 1;
	}
	if (type && strcmp(type, "probe") == 0 && l->component && node) {
		struct pres *p = pres_get(l, node, 0);

		/* A probe says the prober holds a subscription: it watches. */
		if (p) {
			if (watcher_add(&p->w, bare) < 0 && !p->w.full_logged) {
				sb_warnx("xmpp %s: node %s already has %d watchers; probes from "
				    "more (%s) are answered but not remembered", l->chan, node,
				    SB_XMPP_MAX_WATCHERS, bare);
				p->w.full_logged = 1;
			}
			send_presence_to(l, p, bare);
		} else {
			char fromjid[512];

			node_jid(l, node, fromjid, sizeof(fromjid));
			{
				xmpp_stanza_t *s = xmpp_presence_new(l->ctx);

				xmpp_stanza_set_from(s, fromjid);
				xmpp_stanza_set_to(s, bare);
				xmpp_stanza_set_type(s, "unavailable");
				send_stanza(l, s);
			}
		}
	} else if (type && (strcmp(type, "unsubscribe") == 0) && l->component && node) {
		struct pres *p = pres_get(l, node, 0);

		if (p)
			watcher_del(&p->w, bare);
		send_subscription(l, "unsubscribed", to, bare);
	}
	free(bare);
	return 1;
}

static void
reply_result(struct xlink *l, xmpp_stanza_t *st, xmpp_stanza_t *child)
{
	xmpp_stanza_t *r = xmpp_stanza_reply(st);
	const char *to = xmpp_stanza_get_to(st);

	/* libstrophe makes no reply to a stanza without a 'from' (one from
	 * our own server, RFC 6120 8.1.2.1): answer nothing rather than
	 * crash (found by tests/fuzz/fuzz_xmpp.c). */
	if (r == NULL) {
		if (child)
			xmpp_stanza_release(child);
		return;
	}
	xmpp_stanza_set_type(r, "result");
	if (l->component && to)
		xmpp_stanza_set_from(r, to);
	if (child) {
		xmpp_stanza_add_child(r, child);
		xmpp_stanza_release(child);
	}
	send_stanza(l, r);
}

static xmpp_stanza_t *
new_elem(xmpp_ctx_t *ctx, const char *name, const char *ns)
{
	xmpp_stanza_t *s = xmpp_stanza_new(ctx);

	xmpp_stanza_set_name(s, name);
	if (ns)
		xmpp_stanza_set_ns(s, ns);
	return s;
}

static void
add_feature(xmpp_ctx_t *ctx, xmpp_stanza_t *q, const char *var)
{
	xmpp_stanza_t *f = new_elem(ctx, "feature", NULL);

	xmpp_stanza_set_attribute(f, "var", var);
	xmpp_stanza_add_child(q, f);
	xmpp_stanza_release(f);
}

/* Hand an ad-hoc request (XEP-0050) to the core, which knows the
 * commands and the requester's role. */
static void
adhoc_request(struct xlink *l, xmpp_stanza_t *st, xmpp_stanza_t *q, int list)
{
	struct xa_request *r = sb_calloc(1, sizeof(*r));
	struct xevent *e = sb_calloc(1, sizeof(*e));
	const char *from = xmpp_stanza_get_from(st);

	r->from_full = sb_strdup(from ? from : "");
	r->from_bare = xl_bare_of(r->from_full);
	r->to = sb_strdup(xmpp_stanza_get_to(st) ? xmpp_stanza_get_to(st) :
	    (l->bound ? l->bound : l->jid));
	r->id = sb_strdup(xmpp_stanza_get_id(st) ? xmpp_stanza_get_id(st) : "");
	r->list = list;
	if (!list) {
		xmpp_stanza_t *x = xmpp_stanza_get_child_by_ns(q, NS_DATA), *f;

		r->node = sb_strdup(xmpp_stanza_get_attribute(q, "node"));
		r->action = sb_strdup(xmpp_stanza_get_attribute(q, "action"));
		r->sessionid = sb_strdup(xmpp_stanza_get_attribute(q, "sessionid"));
		for (f = x ? xmpp_stanza_get_children(x) : NULL; f; f = xmpp_stanza_get_next(f)) {
			const char *name = xmpp_stanza_get_name(f), *var;
			xmpp_stanza_t *v;
			char *text;

			if (!name || strcmp(name, "field") != 0 ||
			    !(var = xmpp_stanza_get_attribute(f, "var")) || r->nfields >= 32)
				continue;
			v = xmpp_stanza_get_child_by_name(f, "value");
			text = v ? xmpp_stanza_get_text(v) : NULL;
			r->vars = sb_realloc(r->vars, (r->nfields + 1) * sizeof(char *));
			r->vals = sb_realloc(r->vals, (r->nfields + 1) * sizeof(char *));
			r->vars[r->nfields] = sb_strdup(var);
			r->vals[r->nfields] = sb_strdup(text ? text : "");
			r->nfields++;
			if (text)
				xmpp_free(l->ctx, text);
		}
	}
	e->kind = EV_ADHOC;
	e->adhoc = r;
	xl_post_event(l, e);
}

static int
on_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	struct xlink *l = ud;
	const char *type = xmpp_stanza_get_type(st);
	xmpp_stanza_t *q = xmpp_stanza_get_children(st);
	const char *ns = NULL, *name = NULL;

	(void)conn;
	atomic_fetch_add(&l->stanzas_in, 1);
	/* Results and errors are answers: never answer them.  Any answer to
	 * our ping, even an error, proves the link alive. */
	if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
		const char *id = xmpp_stanza_get_id(st);

		if (id && strncmp(id, "sbping", 6) == 0)
			l->ping_sent = 0;
		else if (id && strncmp(id, "sbnote", 6) == 0)
			barrier_answered(l, strtoul(id + 6, NULL, 10));
		return 1;
	}
	while (q && !xmpp_stanza_is_tag(q))
		q = xmpp_stanza_get_next(q);
	if (q) {
		ns = xmpp_stanza_get_ns(q);
		name = xmpp_stanza_get_name(q);
	}
	if (l->component) {
		char nodebuf[256];
		const char *target = xl_node_of_jid(l, xmpp_stanza_get_to(st), nodebuf,
		    sizeof(nodebuf));

		/* RFC 6120 10.5.3.1: a JID of ours that names no node. */
		if (target && pres_get(l, target, 0) == NULL) {
			xmpp_stanza_t *err = xmpp_stanza_reply_error(st, "cancel",
			    "service-unavailable", NULL);

			if (err) {
				xmpp_stanza_set_from(err, xmpp_stanza_get_to(st));
				send_stanza(l, err);
			}
			return 1;
		}
	}
	if (ns && strcmp(type, "get") == 0 && strcmp(ns, NS_PING) == 0) {
		reply_result(l, st, NULL);
		return 1;
	}
	if (ns && strcmp(type, "get") == 0 && strcmp(ns, NS_DISCO_INFO) == 0 &&
	    name && strcmp(name, "query") == 0) {
		xmpp_stanza_t *r = new_elem(l->ctx, "query", NS_DISCO_INFO);
		xmpp_stanza_t *id = new_elem(l->ctx, "identity", NULL);
		const char *node = xmpp_stanza_get_attribute(q, "node");
		char nodebuf[256];
		const char *target = xl_node_of_jid(l, xmpp_stanza_get_to(st), nodebuf, sizeof(nodebuf));

		if (node)
			xmpp_stanza_set_attribute(r, "node", node);
		if (l->component && target == NULL) {
			xmpp_stanza_set_attribute(id, "category", "gateway");
			xmpp_stanza_set_attribute(id, "type", "generic");
			xmpp_stanza_set_attribute(id, "name", "switchboard");
		} else {
			xmpp_stanza_set_attribute(id, "category", "client");
			xmpp_stanza_set_attribute(id, "type", "bot");
			xmpp_stanza_set_attribute(id, "name", target ? target : "switchboard");
		}
		xmpp_stanza_add_child(r, id);
		xmpp_stanza_release(id);
		add_feature(l->ctx, r, NS_DISCO_INFO);
		add_feature(l->ctx, r, NS_DISCO_ITEMS);
		add_feature(l->ctx, r, NS_PING);
		add_feature(l->ctx, r, NS_VERSION);
		add_feature(l->ctx, r, NS_COMMANDS);
		reply_result(l, st, r);
		return 1;
	}
	if (ns && (strcmp(ns, NS_COMMANDS) == 0 || (strcmp(type, "get") == 0 &&
	    strcmp(ns, NS_DISCO_ITEMS) == 0 && xmpp_stanza_get_attribute(q, "node") &&
	    strcmp(xmpp_stanza_get_attribute(q, "node"), NS_COMMANDS) == 0))) {
		adhoc_request(l, st, q, strcmp(ns, NS_COMMANDS) != 0);
		return 1;
	}
	if (ns && strcmp(type, "get") == 0 && strcmp(ns, NS_DISCO_ITEMS) == 0) {
		xmpp_stanza_t *r = new_elem(l->ctx, "query", NS_DISCO_ITEMS);
		const char *node = xmpp_stanza_get_attribute(q, "node");

		if (node)
			xmpp_stanza_set_attribute(r, "node", node);
		reply_result(l, st, r);
		return 1;
	}
	if (ns && strcmp(type, "get") == 0 && strcmp(ns, NS_VERSION) == 0) {
		xmpp_stanza_t *r = new_elem(l->ctx, "query", NS_VERSION);

		add_text_child(l->ctx, r, "name", "switchboard");
		add_text_child(l->ctx, r, "version", SB_VERSION);
		reply_result(l, st, r);
		return 1;
	}
	/* RFC 6120 8.2.3: an iq get/set nobody handles gets an error. */
	{
		xmpp_stanza_t *err = xmpp_stanza_reply_error(st, "cancel",
		    "service-unavailable", NULL);
		const char *to = xmpp_stanza_get_to(st);

		if (err) {
			if (l->component && to)
				xmpp_stanza_set_from(err, to);
			send_stanza(l, err);
		}
	}
	return 1;
}

/* ---- connection (thread side) ---- */

/* libstrophe hands us each new socket before it connects: remember it so
 * the thread can poll it, and turn off Nagle (replies are small). */
static int
sockopt_capture(xmpp_conn_t *conn, void *sock)
{
	int fd = *(int *)sock, one = 1;

	if (tl_link)
		tl_link->sock = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return xmpp_sockopt_cb_keepalive(conn, sock);
}

static void
schedule_reconnect(struct xlink *l)
{
	unsigned jitter;

	l->backoff = l->backoff ? l->backoff * 2 : 1000;
	if (l->backoff > 60000)
		l->backoff = 60000;
	/* +-10 % so that many gateways do not all come back at once */
	jitter = (unsigned)(rand() % (int)(l->backoff / 5 + 1));
	l->next_connect = now_ms() + l->backoff - l->backoff / 10 + jitter;
}

static void
flush_offline(struct xlink *l)
{
	struct op *o, *n;

	for (o = l->offline; o; o = n) {
		n = o->next;
		send_message_op(l, o);
		xl_op_free(o);
	}
	l->offline = l->offline_tail = NULL;
	l->noffline = 0;
}

static void
on_connected(struct xlink *l)
{
	struct xevent *e;

	l->backoff = 0;
	l->ping_sent = 0;
	l->last_ping = now_ms();
	atomic_store(&l->connected, 1);
	free(l->bound);
	l->bound = sb_strdup(xmpp_conn_get_bound_jid(l->conn));
	sb_info("xmpp %s: connected as %s", l->chan,
	    l->component ? l->domain : (l->bound ? l->bound : l->jid));
	/* Presence first (a restarted link must re-announce everything: the
	 * server keeps nothing for a component), then rooms, then what was
	 * queued while we were away. */
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct pres *p = l->pres[b]; p; p = p->next) {
			if (l->suggest && p->known && !p->suggested)
				suggest(l, p);
			announce(l, p);
		}
	for (size_t i = 0; i < l->nrooms; i++) {
		l->rooms[i].joined = 0;
		occupants_clear(&l->rooms[i]);
		join_room(l, &l->rooms[i]);
	}
	flush_offline(l);
	e = sb_calloc(1, sizeof(*e));
	e->kind = EV_STATE;
	e->up = 1;
	xl_post_event(l, e);
}

static void
on_conn(xmpp_conn_t *conn, xmpp_conn_event_t status, int error,
        xmpp_stream_error_t *serr, void *ud)
{
	struct xlink *l = ud;

	(void)conn;
	if (status == XMPP_CONN_CONNECT) {
		on_connected(l);
		return;
	}
	if (status != XMPP_CONN_DISCONNECT && status != XMPP_CONN_FAIL)
		return;
	if (atomic_load(&l->connected)) {
		struct xevent *e = sb_calloc(1, sizeof(*e));

		sb_warnx("xmpp %s: disconnected%s%s%s", l->chan,
		    error ? ": " : "", error ? strerror(error) : "",
		    serr && serr->text ? serr->text : "");
		e->kind = EV_STATE;
		e->up = 0;
		xl_post_event(l, e);
	} else {
		sb_warnx("xmpp %s: cannot connect to %s:%d%s%s%s", l->chan, l->server, l->port,
		    error ? ": " : "", error ? strerror(error) : "",
		    serr ? " (stream error)" : "");
	}
	atomic_store(&l->connected, 0);
	barriers_fail(l);
	l->active = 0;
	l->sock = -1;
	for (size_t i = 0; i < l->nrooms; i++)
		l->rooms[i].joined = 0;
	schedule_reconnect(l);
}

static void
do_connect(struct xlink *l)
{
	int rc;

	l->sock = -1;
	if (l->conn)
		xmpp_conn_release(l->conn);
	l->conn = xmpp_conn_new(l->ctx);
	xmpp_conn_set_sockopt_callback(l->conn, sockopt_capture);
	xmpp_handler_add(l->conn, on_message, NULL, "message", NULL, l);
	xmpp_handler_add(l->conn, on_presence, NULL, "presence", NULL, l);
	xmpp_handler_add(l->conn, on_iq, NULL, "iq", NULL, l);
	if (l->component) {
		xmpp_conn_set_jid(l->conn, l->domain);
		xmpp_conn_set_pass(l->conn, l->secret);
		/*
		 * NOTE: libstrophe 0.12.2 allocates its stream-management state
		 * only in xmpp_connect_client(); a component connection without
		 * it crashes right after the handshake.  Calling
		 * xmpp_connect_client() with an empty alternative domain fails
		 * at once in getaddrinfo("") without any network I/O but leaves
		 * that state allocated.  Remove once Debian ships a fixed
		 * libstrophe.
		 */
		(void)xmpp_connect_client(l->conn, "", (unsigned short)l->port, NULL, NULL);
		rc = xmpp_connect_component(l->conn, l->server, (unsigned short)l->port, on_conn, l);
	} else {
		char *full = sb_asprintf("%s/%s", l->jid, l->resource);
		long flags = XMPP_CONN_FLAG_MANDATORY_TLS;

		if (!l->tls_verify)
			flags |= XMPP_CONN_FLAG_TRUST_TLS;
		xmpp_conn_set_flags(l->conn, flags);
		xmpp_conn_set_jid(l->conn, full);
		xmpp_conn_set_pass(l->conn, l->password);
		if (l->ca_file)
			xmpp_conn_set_cafile(l->conn, l->ca_file);
		free(full);
		/* An explicit server avoids libstrophe's blocking SRV lookup. */
		rc = xmpp_connect_client(l->conn, l->server, (unsigned short)l->port, on_conn, l);
	}
	if (rc != XMPP_EOK) {
		sb_warnx("xmpp %s: cannot start connecting to %s:%d", l->chan, l->server, l->port);
		schedule_reconnect(l);
		return;
	}
	l->active = 1;
	l->tcp_pending = 1;
	atomic_fetch_add(&l->reconnects, 1);
}

/* A component pings its own domain: the server routes it back to us,
 * proving the link both ways ("server" is a TCP host, not a JID). */
static void
send_ping(struct xlink *l, const char *id)
{
	xmpp_stanza_t *iq, *p;

	iq = xmpp_iq_new(l->ctx, "get", id);
	xmpp_stanza_set_to(iq, l->component ? l->domain : strchr(l->jid, '@') + 1);
	if (l->component)
		xmpp_stanza_set_from(iq, l->domain);
	p = new_elem(l->ctx, "ping", NS_PING);
	xmpp_stanza_add_child(iq, p);
	xmpp_stanza_release(p);
	send_stanza(l, iq);
}

/* The keepalive. */
static void
ping(struct xlink *l)
{
	char id[32];

	snprintf(id, sizeof(id), "sbping%lu", ++l->ping_seq);
	send_ping(l, id);
	l->ping_sent = now_ms();
}

/* May a notice go out now?  To a room only once we are in it: the room
 * would refuse it, and the ping would still say it was taken. */
static int
notice_ready(struct xlink *l, const struct op *o)
{
	struct room *r;

	if (!atomic_load(&l->connected))
		return 0;
	if (!o->groupchat)
		return 1;
	r = room_find(l, o->to);
	return r && r->joined;
}

static void
id_push(uint64_t **v, size_t *n, uint64_t id)
{
	*v = sb_realloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = id;
}

/* Apply the core's ops. */
static void
drain(struct xlink *l)
{
	struct op *o, *n;
	uint64_t v, *sent = NULL, *later = NULL;
	size_t nsent = 0, nlater = 0;

	(void)!read(l->efd, &v, sizeof(v));
	pthread_mutex_lock(&l->lock);
	o = l->head;
	l->head = l->tail = NULL;
	pthread_mutex_unlock(&l->lock);
	/*
	 * A component's stanzas of one drain leave in one write: a burst of
	 * replies or presences is one read for the server, not one each.
	 * Not for a client: with stream management (XEP-0198) libstrophe
	 * counts what it sends one stanza per xmpp_send().
	 */
	l->batching = l->component;
	for (; o; o = n) {
		int online = atomic_load(&l->connected);

		n = o->next;
		o->next = NULL;
		switch (o->kind) {
		case OP_PRESENCE: {
			struct pres *p = pres_get(l, o->node, 1);

			free(p->show);
			free(p->status);
			p->show = o->show;
			p->status = o->status;
			o->show = o->status = NULL;
			p->unavailable = o->unavailable;
			p->known = o->known;
			if (online) {
				if (l->suggest && p->known && !p->suggested)
					suggest(l, p);
				announce(l, p);
			}
			xl_op_free(o);
			break;
		}
		case OP_MESSAGE:
			if (online) {
				send_message_op(l, o);
				xl_op_free(o);
				break;
			}
			/* Keep it for the reconnect, bounded: drop the oldest. */
			if (l->noffline >= l->queue_max && l->offline) {
				struct op *old = l->offline;

				l->offline = old->next;
				if (l->offline == NULL)
					l->offline_tail = NULL;
				xl_op_free(old);
				l->noffline--;
				atomic_fetch_add(&l->dropped, 1);
				sb_warnx("xmpp %s: offline queue full (%zu); oldest message dropped",
				    l->chan, l->queue_max);
			}
			if (l->offline_tail)
				l->offline_tail->next = o;
			else
				l->offline = o;
			l->offline_tail = o;
			l->noffline++;
			break;
		case OP_NOTICE:
			/* Never the offline queue: the spool keeps it. */
			if (notice_ready(l, o)) {
				send_message_op(l, o);
				id_push(&sent, &nsent, o->id);
			} else {
				id_push(&later, &nlater, o->id);
			}
			xl_op_free(o);
			break;
		case OP_RAW:
			if (online && l->batching) {
				sb_buf_puts(&l->out, o->text);
				atomic_fetch_add(&l->stanzas_out, 1);
			} else if (online) {
				xmpp_send_raw(l->conn, o->text, strlen(o->text));
				atomic_fetch_add(&l->stanzas_out, 1);
			}
			xl_op_free(o);
			break;
		case OP_SUBSCRIPTION: {
			char from[512];
			const char *f = NULL;

			if (!online) {
				xl_op_free(o);
				break;
			}
			if (l->component && o->node && *o->node) {
				node_jid(l, o->node, from, sizeof(from));
				f = from;
			}
			send_subscription(l, o->accept ? "subscribed" : "unsubscribed", f, o->to);
			if (o->accept) {
				/* Both ways: ask for theirs too. */
				send_subscription(l, "subscribe", f, o->to);
				struct pres *p = l->component && o->node && *o->node ?
				    pres_get(l, o->node, 0) : NULL;

				if (p) {
					(void)watcher_add(&p->w, o->to);
					send_presence_to(l, p, o->to);
				}
			}
			xl_op_free(o);
			break;
		}
		}
	}
	if (nsent)
		barrier_add(l, sent, nsent);
	l->batching = 0;
	if (l->out.len > 0) {
		if (atomic_load(&l->connected))
			xmpp_send_raw(l->conn, l->out.buf, l->out.len);
		l->out.len = 0;
		if (l->out.cap > 65536)
			sb_buf_free(&l->out);	/* after a burst: not kept */
	}
	xl_post_results(l, later, nlater, SB_SEND_LATER);
}

static void
xlog(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
	(void)ud;
	if (level >= XMPP_LEVEL_WARN)
		sb_debug("libstrophe %s: %s", area, msg);
}

/* ms to wait for the ping after notices: as for the keepalive, 30 s
 * without one. */
static int
barrier_timeout(const struct xlink *l)
{
	return (l->ping_timeout > 0 ? l->ping_timeout : 30) * 1000;
}

/*
 * How long the thread may sleep: until its next deadline (a reconnect, a
 * room's rejoin, a ping or its timeout, a barrier's timeout), at most
 * IDLE_MS; eventfd writes (work from the core) and the socket wake it
 * earlier.  While a connection is being made, libstrophe keeps its own
 * timers (the connect timeout): CONNECTING_MS then.
 */
#define IDLE_MS		1000
#define CONNECTING_MS	50

static int
next_wait(const struct xlink *l, uint64_t now)
{
	uint64_t at = now + IDLE_MS;

#define SOONER(t) do { if ((t) < at) at = (t); } while (0)
	if (!l->active) {
		SOONER(l->next_connect);
	} else if (!atomic_load(&l->connected)) {
		return CONNECTING_MS;
	} else {
		for (size_t i = 0; i < l->nrooms; i++)
			if (!l->rooms[i].joined && l->rooms[i].rejoin_at)
				SOONER(l->rooms[i].rejoin_at);
		if (l->barriers)
			SOONER(l->barriers->sent + (uint64_t)barrier_timeout(l) + 1);
		if (l->ping_interval > 0 && l->ping_sent)
			SOONER(l->ping_sent + (uint64_t)l->ping_timeout * 1000 + 1);
		else if (l->ping_interval > 0)
			SOONER(l->last_ping + (uint64_t)l->ping_interval * 1000);
	}
#undef SOONER
	return at > now ? (int)(at - now) : 0;
}

void *
xl_thread_main(void *arg)
{
	struct xlink *l = arg;
	xmpp_log_t log = { .handler = xlog, .userdata = l };
	int work = 1;	/* the core's eventfd fired, or the wait timed out */

	sb_thread_name("xmpp %s", l->chan);
	tl_link = l;
	l->ctx = xmpp_ctx_new(NULL, &log);
	l->sock = -1;
	while (!atomic_load(&l->stop)) {
		struct pollfd p[2] = {
			{ .fd = l->efd, .events = POLLIN },
			{ .fd = l->sock, .events = POLLIN },
		};
		uint64_t now = now_ms();
		int n;

		if (!l->active && now >= l->next_connect)
			do_connect(l);
		if (atomic_load(&l->connected)) {
			for (size_t i = 0; i < l->nrooms; i++)
				if (!l->rooms[i].joined && l->rooms[i].rejoin_at &&
				    now >= l->rooms[i].rejoin_at)
					join_room(l, &l->rooms[i]);
			if (l->barriers && now - l->barriers->sent > (uint64_t)barrier_timeout(l)) {
				sb_warnx("xmpp %s: no answer to the ping after %zu notice%s in %d s; "
				    "reconnecting", l->chan, l->barriers->n,
				    l->barriers->n == 1 ? "" : "s", barrier_timeout(l) / 1000);
				barriers_fail(l);	/* now: a late answer is ignored */
				xmpp_disconnect(l->conn);
			} else if (l->ping_interval > 0) {
				if (l->ping_sent && now - l->ping_sent > (uint64_t)l->ping_timeout * 1000) {
					sb_warnx("xmpp %s: no answer to ping in %d s; reconnecting",
					    l->chan, l->ping_timeout);
					l->ping_sent = 0;
					xmpp_disconnect(l->conn);
				} else if (!l->ping_sent &&
				    now - l->last_ping >= (uint64_t)l->ping_interval * 1000) {
					ping(l);
					l->last_ping = now;
				}
			}
		}
		if (work)
			drain(l);
		/* xmpp_run_once() first sends what is queued, then reads; what
		 * the reading queues (the next step of a handshake, an answer)
		 * waits for the next call: make it now, not after a poll
		 * timeout (that cost ~50 ms a connect).  After a wake by the
		 * socket alone, the turn below has read already: another is
		 * needed only for what that queued. */
		if (work || !atomic_load(&l->connected) ||
		    (l->conn && xmpp_conn_send_queue_len(l->conn) > 0))
			xmpp_run_once(l->ctx, 0);
		if (l->conn && (!atomic_load(&l->connected) ||
		    xmpp_conn_send_queue_len(l->conn) > 0))
			xmpp_run_once(l->ctx, 0);
		if (l->ran_inline) {
			/* A message ran on this thread (xl_post_event): its
			 * answer is queued.  Send it, then let the loop run its
			 * hooks and see the timers the command may have set. */
			l->ran_inline = 0;
			drain(l);
			xmpp_run_once(l->ctx, 0);
			sb_loop_wake(sb_core.loop);
		}
		p[1].fd = l->sock;	/* do_connect() above may just have made it */
		/* What the socket could not take yet goes when it can; a
		 * connect in progress completes by turning writable (the
		 * server says nothing before our stream header): without
		 * POLLOUT a connect slower than the turns above slept out
		 * CONNECTING_MS.  (Only until then: libstrophe's "connecting"
		 * lasts the whole negotiation, when POLLOUT would spin.) */
		if (l->conn && (xmpp_conn_send_queue_len(l->conn) > 0 || l->tcp_pending))
			p[1].events |= POLLOUT;
		n = poll(p, l->sock >= 0 ? 2 : 1, next_wait(l, now_ms()));
		work = n <= 0 || p[0].revents;
		if (n > 0 && p[1].revents) {
			/* TLS may hold decrypted bytes the socket no longer
			 * shows (libstrophe reads a record in several calls):
			 * a few extra turns drain them.  A plain socket (a
			 * component's) shows what is left, so one turn, and the
			 * thread is soon back in poll(), off the core the loop
			 * thread needs for the command it just posted. */
			int turns = l->conn && xmpp_conn_is_secured(l->conn) ? 4 : 1;

			l->tcp_pending = 0;	/* connected, or failed: done either way */
			for (int i = 0; i < turns; i++)
				xmpp_run_once(l->ctx, 0);
		}
	}
	if (l->conn) {
		uint64_t deadline = now_ms() + 1000;

		if (atomic_load(&l->connected)) {
			xmpp_disconnect(l->conn);
			while (!xmpp_conn_is_disconnected(l->conn) && now_ms() < deadline)
				xmpp_run_once(l->ctx, 10);
		}
		xmpp_conn_release(l->conn);
		l->conn = NULL;
	}
	barriers_fail(l);	/* unless the disconnect above did */
	xmpp_ctx_free(l->ctx);
	l->ctx = NULL;
	pres_free_all(l);
	for (struct op *o = l->offline, *n; o; o = n) {
		n = o->next;
		xl_op_free(o);
	}
	for (size_t i = 0; i < l->nrooms; i++)
		occupants_clear(&l->rooms[i]);
	free(l->bound);
	l->bound = NULL;
	sb_buf_free(&l->out);
	atomic_store(&l->connected, 0);
	return NULL;
}


void
xl_event_free(struct xevent *e)
{
	free(e->ids);
	xa_request_free(e->adhoc);
	free(e->from_bare);
	free(e->from_full);
	free(e->to);
	free(e->body);
	free(e->thread);
	free(e->room);
	free(e->nick);
	free(e);
}
