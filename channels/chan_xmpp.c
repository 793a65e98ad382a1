/*
 * chan_xmpp.c: the XMPP channel on libstrophe.
 *
 * Two modes: a client (agent mode: one account is one node, presence is
 * broadcast by the server to subscribers), or an external component
 * (XEP-0114, gateway mode: every node is <node>@<component> with its own
 * presence, sent directly to the JIDs that probed or subscribed).
 *
 * Threads: libstrophe's STARTTLS handshake blocks and its context has no
 * locks, so the channel owns one thread that owns the libstrophe context.
 * The core talks to it through an op queue woken by an eventfd; the thread
 * talks to the core through sb_loop_post().  The thread polls the socket
 * libstrophe hands to the sockopt callback and calls xmpp_run_once(ctx, 0)
 * when it is readable and after queueing output, so no reply waits for a
 * timer tick.  Everything on the core side (ACL, dispatch, node lookups)
 * stays on the loop thread.
 *
 * This file knows XMPP; it knows nothing of commands or policy.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <strophe.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "node.h"
#include "util.h"
#include "xmpp_adhoc.h"

#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING        "urn:xmpp:ping"
#define NS_MUC         "http://jabber.org/protocol/muc"
#define NS_MUC_USER    "http://jabber.org/protocol/muc#user"
#define NS_CARBONS     "urn:xmpp:carbons:2"
#define NS_DELAY       "urn:xmpp:delay"
#define NS_VERSION     "jabber:iq:version"
#define NS_COMMANDS    "http://jabber.org/protocol/commands"
#define NS_DATA        "jabber:x:data"

#define BUCKETS 4096

/* ---- shared between the core and the XMPP thread ---- */

enum op_kind {
	OP_PRESENCE,		/* a node's presence changed */
	OP_MESSAGE,		/* send text */
	OP_SUBSCRIPTION,	/* answer a subscription request */
	OP_RAW,			/* send this XML (ad-hoc answers) */
};

struct op {
	struct op *next;
	enum op_kind kind;
	char   *node;		/* PRESENCE; SUBSCRIPTION: the node asked for */
	char   *to, *from, *thread, *text;
	char   *show, *status;	/* PRESENCE */
	int     unavailable;	/* PRESENCE */
	int     known;		/* PRESENCE: has a state worth announcing */
	int     groupchat;	/* MESSAGE */
	int     accept;		/* SUBSCRIPTION */
};

struct room {
	char   *jid;		/* bare room JID */
	int     joined;
	uint64_t rejoin_at;	/* ms, 0: none */
	struct occupant {
		char   *nick, *real;	/* real: bare JID or NULL if hidden */
		struct occupant *next;
	} *occupants;
};

struct watcher_list {
	char  **jids;
	size_t  n;
};

struct pres {
	struct pres *next;
	char   *node;
	char   *show, *status;
	int     unavailable, known;
	struct watcher_list w;
};

struct xlink {
	atomic_int refs;
	/* config, immutable once open() returns */
	char   *chan;		/* channel instance name */
	int     component;
	char   *server;
	int     port;
	char   *jid, *password, *resource, *node;	/* client mode */
	char   *domain, *secret;			/* component mode */
	int     tls_verify;
	char   *ca_file;
	char   *nick;
	int     silent;
	size_t  max_message;
	int     ping_interval, ping_timeout;
	size_t  queue_max;
	int     rejoin;
	char  **watch_cfg;	/* watchers from config */
	size_t  nwatch_cfg;

	/* the op queue */
	pthread_mutex_t lock;
	struct op *head, *tail;
	int     efd;
	atomic_int stop;
	pthread_t thread;
	int     thread_started;
	atomic_int closed;	/* the channel was closed: drop events */

	/* status, for describe() */
	atomic_int connected;
	atomic_ulong reconnects, stanzas_in, stanzas_out, dropped;

	/* ---- the XMPP thread's own ---- */
	xmpp_ctx_t *ctx;
	xmpp_conn_t *conn;
	int     sock;
	int     active;		/* a connection attempt or session exists */
	uint64_t next_connect;
	unsigned backoff;	/* ms */
	char   *bound;		/* our full JID (client) */
	struct room *rooms;
	size_t  nrooms;
	struct pres *pres[BUCKETS];
	struct op *offline, *offline_tail;	/* messages while disconnected */
	size_t  noffline;
	uint64_t ping_sent;	/* ms, 0 when none outstanding */
	uint64_t last_ping;
	unsigned long ping_seq;
};

static const struct sb_conf_key xmpp_keys[] = {
	{ "mode", SB_CT_STRING, 0, NULL, "client",
	  "client (agent mode: this account is one node) or component (gateway mode, XEP-0114)" },
	{ "server", SB_CT_STRING, 0, NULL, "the JID's domain",
	  "host to connect to" },
	{ "port", SB_CT_INT, 0, NULL, "5222 (client), 5347 (component)", "port to connect to" },
	{ "jid", SB_CT_STRING, 0, NULL, NULL, "client mode: the account, user@domain" },
	{ "password", SB_CT_STRING, 0, NULL, NULL, "client mode: its password" },
	{ "resource", SB_CT_STRING, 0, NULL, "switchboard",
	  "client mode: the resource, kept stable so ad-hoc queries can reach it" },
	{ "node", SB_CT_STRING, 0, NULL, "the only node",
	  "client mode: the node this account represents" },
	{ "component", SB_CT_STRING, 0, NULL, NULL,
	  "component mode: the component's domain; nodes are <node>@<component>" },
	{ "secret", SB_CT_STRING, 0, NULL, NULL, "component mode: the shared secret" },
	{ "tls_verify", SB_CT_BOOL, 0, NULL, "true",
	  "verify the server's certificate (false only for labs with self-signed certificates)" },
	{ "ca_file", SB_CT_STRING, 0, NULL, "system CAs",
	  "CA bundle for verification (also makes login faster than the whole system bundle)" },
	{ "rooms", SB_CT_STRINGS, 0, NULL, "[ ]", "group chat rooms (XEP-0045) to join" },
	{ "nick", SB_CT_STRING, 0, NULL, "switchboard", "nickname in rooms" },
	{ "refuse", SB_CT_STRING, 0, NULL, "reply",
	  "unauthorized senders get one short refusal (reply) or nothing (silent)" },
	{ "max_message", SB_CT_INT, 0, NULL, "4000",
	  "longest message sent; longer replies are split on line boundaries" },
	{ "ping_interval", SB_CT_INT, 0, NULL, "60",
	  "seconds between XEP-0199 pings that detect a dead link (0: none)" },
	{ "queue_max", SB_CT_INT, 0, NULL, "1000",
	  "messages kept while disconnected; the oldest are dropped past it, and logged" },
	{ "rejoin", SB_CT_BOOL, 0, NULL, "true", "rejoin a room after being kicked" },
	{ "watchers", SB_CT_STRINGS, 0, NULL, "[ ]",
	  "component mode: bare JIDs sent every node's presence at connect (operators)" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/* ---- small helpers ---- */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
op_free(struct op *o)
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

static void
link_unref(struct xlink *l)
{
	if (atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	for (struct op *o = l->head, *n; o; o = n) {
		n = o->next;
		op_free(o);
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
	for (size_t i = 0; i < l->nwatch_cfg; i++)
		free(l->watch_cfg[i]);
	free(l->watch_cfg);
	for (size_t i = 0; i < l->nrooms; i++)
		free(l->rooms[i].jid);
	free(l->rooms);
	free(l);
}

/* Core -> thread. Takes o. */
static void
push_op(struct xlink *l, struct op *o)
{
	uint64_t one = 1;

	pthread_mutex_lock(&l->lock);
	if (l->tail)
		l->tail->next = o;
	else
		l->head = o;
	l->tail = o;
	pthread_mutex_unlock(&l->lock);
	(void)!write(l->efd, &one, sizeof(one));
}

/* Thread -> core. */
enum ev_kind { EV_MESSAGE, EV_SUBSCRIBE, EV_STATE, EV_ADHOC };

struct xevent {
	struct xlink *l;
	enum ev_kind kind;
	char   *from_bare, *from_full, *to, *body, *thread, *room, *nick;
	int     group;
	int     up;		/* EV_STATE */
	struct xa_request *adhoc;	/* EV_ADHOC */
};

static void ev_run(void *ud);

static void xevent_free(struct xevent *);

static void
post_event(struct xlink *l, struct xevent *e)
{
	e->l = l;
	atomic_fetch_add(&l->refs, 1);
	if (sb_loop_post(sb_core.loop, ev_run, e) < 0) {
		atomic_fetch_sub(&l->refs, 1);
		xevent_free(e);
	}
}

/* ---- presence table (thread side) ---- */

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
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

static void
watcher_add(struct watcher_list *w, const char *bare)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->jids[i], bare) == 0)
			return;
	w->jids = sb_realloc(w->jids, (w->n + 1) * sizeof(char *));
	w->jids[w->n++] = sb_strdup(bare);
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
	xmpp_send(l->conn, s);
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

/* Split on line boundaries into pieces of at most max bytes; a line longer
 * than that is cut at a UTF-8 character boundary. */
static void
send_text(struct xlink *l, const char *to, const char *from, const char *thread,
          int groupchat, const char *text)
{
	size_t len = strlen(text), off = 0, max = l->max_message;

	while (off < len) {
		size_t n = len - off;
		xmpp_stanza_t *m;
		char *piece;

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
		m = xmpp_message_new(l->ctx, groupchat ? "groupchat" : "chat", to, NULL);
		if (from)
			xmpp_stanza_set_from(m, from);
		xmpp_message_set_body(m, piece);
		if (thread && *thread)
			add_text_child(l->ctx, m, "thread", thread);
		send_stanza(l, m);
		free(piece);
		off += n;
	}
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
	send_text(l, o->to, f, o->thread, o->groupchat, o->text);
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

/* ---- incoming stanzas (thread side) ---- */

static char *
bare_of(const char *jid)
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
		char *bare = bare_of(from);
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
		e->from_bare = bare_of(from);
		e->to = sb_strdup(xmpp_stanza_get_to(st));
		if ((th = xmpp_stanza_get_child_by_name(st, "thread")) != NULL) {
			char *t = xmpp_stanza_get_text(th);

			e->thread = sb_strdup(t);
			xmpp_free(l->ctx, t);
		}
	}
	post_event(l, e);
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
		if (!r->joined)
			sb_info("xmpp %s: joined %s", l->chan, r->jid);
		r->joined = 1;
		return;
	}
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0) {
			free(o->real);
			o->real = bare_of(real);
			return;
		}
	{
		struct occupant *o = sb_calloc(1, sizeof(*o));

		o->nick = sb_strdup(nick);
		o->real = bare_of(real);
		o->next = r->occupants;
		r->occupants = o;
	}
}

static const char *
node_of_jid(struct xlink *l, const char *to, char *buf, size_t len)
{
	const char *at;
	char *bare;

	if (!l->component || to == NULL)
		return l->node;
	bare = bare_of(to);
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
	bare = bare_of(from);
	if ((r = room_find(l, bare)) != NULL) {
		muc_presence(l, r, st, type, resource_of(from));
		free(bare);
		return 1;
	}
	node = node_of_jid(l, to, nodebuf, sizeof(nodebuf));
	if (type && strcmp(type, "subscribe") == 0) {
		struct xevent *e = sb_calloc(1, sizeof(*e));

		e->kind = EV_SUBSCRIBE;
		e->from_bare = bare;
		e->to = sb_strdup(node ? node : "");
		post_event(l, e);
		return 1;
	}
	if (type && strcmp(type, "probe") == 0 && l->component && node) {
		struct pres *p = pres_get(l, node, 0);

		/* A probe says the prober holds a subscription: it watches. */
		if (p) {
			watcher_add(&p->w, bare);
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
	r->from_bare = bare_of(r->from_full);
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
	post_event(l, e);
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
		const char *target = node_of_jid(l, xmpp_stanza_get_to(st), nodebuf,
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
		const char *target = node_of_jid(l, xmpp_stanza_get_to(st), nodebuf, sizeof(nodebuf));

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

/* The sockopt callback has no user data; each link's thread sets this. */
static __thread struct xlink *tl_link;

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
		op_free(o);
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
		for (struct pres *p = l->pres[b]; p; p = p->next)
			announce(l, p);
	for (size_t i = 0; i < l->nrooms; i++) {
		l->rooms[i].joined = 0;
		occupants_clear(&l->rooms[i]);
		join_room(l, &l->rooms[i]);
	}
	flush_offline(l);
	e = sb_calloc(1, sizeof(*e));
	e->kind = EV_STATE;
	e->up = 1;
	post_event(l, e);
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
		post_event(l, e);
	} else {
		sb_warnx("xmpp %s: cannot connect to %s:%d%s%s%s", l->chan, l->server, l->port,
		    error ? ": " : "", error ? strerror(error) : "",
		    serr ? " (stream error)" : "");
	}
	atomic_store(&l->connected, 0);
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
	atomic_fetch_add(&l->reconnects, 1);
}

static void
ping(struct xlink *l)
{
	xmpp_stanza_t *iq, *p;
	char id[32];

	snprintf(id, sizeof(id), "sbping%lu", ++l->ping_seq);
	iq = xmpp_iq_new(l->ctx, "get", id);
	/* A component pings its own domain: the server routes it back to us,
	 * proving the link both ways ("server" is a TCP host, not a JID). */
	xmpp_stanza_set_to(iq, l->component ? l->domain : strchr(l->jid, '@') + 1);
	if (l->component)
		xmpp_stanza_set_from(iq, l->domain);
	p = new_elem(l->ctx, "ping", NS_PING);
	xmpp_stanza_add_child(iq, p);
	xmpp_stanza_release(p);
	send_stanza(l, iq);
	l->ping_sent = now_ms();
}

/* Apply the core's ops. */
static void
drain(struct xlink *l)
{
	struct op *o, *n;
	uint64_t v;

	(void)!read(l->efd, &v, sizeof(v));
	pthread_mutex_lock(&l->lock);
	o = l->head;
	l->head = l->tail = NULL;
	pthread_mutex_unlock(&l->lock);
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
			if (online)
				announce(l, p);
			op_free(o);
			break;
		}
		case OP_MESSAGE:
			if (online) {
				send_message_op(l, o);
				op_free(o);
				break;
			}
			/* Keep it for the reconnect, bounded: drop the oldest. */
			if (l->noffline >= l->queue_max && l->offline) {
				struct op *old = l->offline;

				l->offline = old->next;
				if (l->offline == NULL)
					l->offline_tail = NULL;
				op_free(old);
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
		case OP_RAW:
			if (online) {
				xmpp_send_raw(l->conn, o->text, strlen(o->text));
				atomic_fetch_add(&l->stanzas_out, 1);
			}
			op_free(o);
			break;
		case OP_SUBSCRIPTION: {
			char from[512];
			const char *f = NULL;

			if (!online) {
				op_free(o);
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
					watcher_add(&p->w, o->to);
					send_presence_to(l, p, o->to);
				}
			}
			op_free(o);
			break;
		}
		}
	}
}

static void
xlog(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
	(void)ud;
	if (level >= XMPP_LEVEL_WARN)
		sb_debug("libstrophe %s: %s", area, msg);
}

static void *
thread_main(void *arg)
{
	struct xlink *l = arg;
	xmpp_log_t log = { .handler = xlog, .userdata = l };

	tl_link = l;
	l->ctx = xmpp_ctx_new(NULL, &log);
	l->sock = -1;
	while (!atomic_load(&l->stop)) {
		struct pollfd p[2] = {
			{ .fd = l->efd, .events = POLLIN },
			{ .fd = l->sock, .events = POLLIN },
		};
		uint64_t now = now_ms();
		int timeout = 50;

		if (!l->active && now >= l->next_connect)
			do_connect(l);
		if (atomic_load(&l->connected)) {
			for (size_t i = 0; i < l->nrooms; i++)
				if (!l->rooms[i].joined && l->rooms[i].rejoin_at &&
				    now >= l->rooms[i].rejoin_at)
					join_room(l, &l->rooms[i]);
			if (l->ping_interval > 0) {
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
		drain(l);
		xmpp_run_once(l->ctx, 0);
		if (poll(p, l->sock >= 0 ? 2 : 1, timeout) > 0 && p[1].revents) {
			/* TLS may hold decrypted bytes the socket no longer
			 * shows: a few extra turns drain them. */
			xmpp_run_once(l->ctx, 0);
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
	xmpp_ctx_free(l->ctx);
	l->ctx = NULL;
	pres_free_all(l);
	for (struct op *o = l->offline, *n; o; o = n) {
		n = o->next;
		op_free(o);
	}
	for (size_t i = 0; i < l->nrooms; i++)
		occupants_clear(&l->rooms[i]);
	free(l->bound);
	l->bound = NULL;
	atomic_store(&l->connected, 0);
	return NULL;
}

/* ---- core side ---- */

static void
queue_message(struct xlink *l, const char *to, const char *from, const char *thread,
              int groupchat, const char *text)
{
	struct op *o = sb_calloc(1, sizeof(*o));

	o->kind = OP_MESSAGE;
	o->to = sb_strdup(to);
	o->from = sb_strdup(from);
	o->thread = sb_strdup(thread);
	o->groupchat = groupchat;
	o->text = sb_strdup(text);
	push_op(l, o);
}

static void
handle_message(struct sb_channel *ch, struct xlink *l, struct xevent *e)
{
	struct sb_msg *m;
	char *identity, *text = e->body, *node = NULL;

	if (e->group) {
		/* "<node>: <command>" addresses a node; anything else is people
		 * talking to each other. */
		char *colon = strchr(text, ':');

		if (colon == NULL || colon == text)
			return;
		node = sb_strndup(text, (size_t)(colon - text));
		if (sb_node_find(node) == NULL) {
			free(node);
			return;
		}
		text = colon + 1;
		while (*text == ' ')
			text++;
		if (e->from_bare == NULL) {
			sb_notice("xmpp %s: %s/%s: command refused: the room hides real JIDs",
			    l->chan, e->room, e->nick);
			queue_message(l, e->room, NULL, NULL, 1,
			    "commands are refused here: this room hides real JIDs");
			free(node);
			return;
		}
	} else if (l->component) {
		char buf[256];
		const char *n = node_of_jid(l, e->to, buf, sizeof(buf));

		if (n && sb_node_find(n) == NULL) {
			queue_message(l, e->from_full, e->to, e->thread, 0, "no such node here");
			return;
		}
		node = sb_strdup(n);
	} else {
		node = sb_strdup(l->node);
	}
	identity = sb_asprintf("xmpp:%s", e->from_bare);
	m = sb_msg_new(ch->name, identity, e->group ? e->room : e->from_full, text);
	m->kind = e->group ? SB_MSG_GROUP : SB_MSG_DIRECT;
	if (node)
		sb_msg_set_node(m, node);
	if (e->thread)
		sb_msg_set_thread(m, e->thread);
	/* Confirmation codes belong to the person, whichever resource. */
	sb_msg_set_session(m, e->group ? e->room : e->from_bare);
	free(identity);
	free(node);
	sb_dispatch(m);
}

static void
handle_subscribe(struct xlink *l, struct xevent *e)
{
	struct op *o = sb_calloc(1, sizeof(*o));
	char *identity = sb_asprintf("xmpp:%s", e->from_bare);
	int level;

	o->kind = OP_SUBSCRIPTION;
	o->to = sb_strdup(e->from_bare);
	o->node = sb_strdup(e->to);
	o->accept = sb_acl_role(identity, &level) != NULL;
	/* In gateway mode, only a node that exists can be subscribed to. */
	if (o->accept && l->component && *e->to && sb_node_find(e->to) == NULL) {
		o->accept = 0;
		sb_notice("xmpp %s: subscription from %s to unknown node %s refused",
		    l->chan, e->from_bare, e->to);
	} else if (!o->accept)
		sb_notice("xmpp %s: subscription request from %s refused: not authorized",
		    l->chan, e->from_bare);
	free(identity);
	push_op(l, o);
}

static void
send_raw(void *ud, const char *xml)
{
	struct xlink *l = ud;
	struct op *o = sb_calloc(1, sizeof(*o));

	o->kind = OP_RAW;
	o->text = sb_strdup(xml);
	push_op(l, o);
}

static void
handle_adhoc(struct sb_channel *ch, struct xlink *l, struct xevent *e)
{
	char buf[256];
	const char *implied = node_of_jid(l, e->adhoc->to, buf, sizeof(buf));

	if (implied && sb_node_find(implied) == NULL)
		implied = NULL;
	xa_handle(ch, implied, e->adhoc, send_raw, l);
}

static void
ev_run(void *ud)
{
	struct xevent *e = ud;
	struct xlink *l = e->l;
	struct sb_channel *ch = sb_channel_find(l->chan);

	if (!atomic_load(&l->closed) && ch && ch->priv == l && ch->started) {
		switch (e->kind) {
		case EV_MESSAGE:
			if (e->from_bare || e->group)
				handle_message(ch, l, e);
			break;
		case EV_SUBSCRIBE:
			handle_subscribe(l, e);
			break;
		case EV_ADHOC:
			handle_adhoc(ch, l, e);
			break;
		case EV_STATE:
			break;
		}
	}
	xevent_free(e);
	link_unref(l);
}

static void
xevent_free(struct xevent *e)
{
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

static char *
copy_str(const config_setting_t *s, const char *key, const char *def)
{
	return sb_strdup(sb_conf_str(s, key, def));
}

static int
xc_open(struct sb_channel *ch, const config_setting_t *s, char *err, size_t errlen)
{
	struct xlink *l = sb_calloc(1, sizeof(*l));
	const char *mode = sb_conf_str(s, "mode", "client");
	const char *refuse = sb_conf_str(s, "refuse", "reply");
	config_setting_t *rooms = config_setting_get_member(s, "rooms");
	config_setting_t *w = config_setting_get_member(s, "watchers");

	atomic_init(&l->refs, 1);
	pthread_mutex_init(&l->lock, NULL);
	l->efd = -1;
	l->chan = sb_strdup(ch->name);
	if (strcmp(mode, "component") == 0) {
		l->component = 1;
	} else if (strcmp(mode, "client") != 0) {
		snprintf(err, errlen, "mode must be client or component, not \"%s\"", mode);
		goto fail;
	}
	if (strcmp(refuse, "reply") == 0)
		l->silent = 0;
	else if (strcmp(refuse, "silent") == 0)
		l->silent = 1;
	else {
		snprintf(err, errlen, "refuse must be reply or silent, not \"%s\"", refuse);
		goto fail;
	}
	if (l->component) {
		l->domain = copy_str(s, "component", NULL);
		l->secret = copy_str(s, "secret", NULL);
		if (!l->domain || !l->secret) {
			snprintf(err, errlen, "component mode needs 'component' and 'secret'");
			goto fail;
		}
		l->server = copy_str(s, "server", l->domain);
		l->port = (int)sb_conf_int(s, "port", 5347);
	} else {
		const char *at;

		l->jid = copy_str(s, "jid", NULL);
		l->password = copy_str(s, "password", NULL);
		if (!l->jid || !l->password || !(at = strchr(l->jid, '@')) || strchr(l->jid, '/')) {
			snprintf(err, errlen, "client mode needs 'jid' (user@domain, no resource) and 'password'");
			goto fail;
		}
		l->server = copy_str(s, "server", at + 1);
		l->port = (int)sb_conf_int(s, "port", 5222);
		l->resource = copy_str(s, "resource", "switchboard");
		l->node = copy_str(s, "node", NULL);
		if (l->node == NULL && sb_core.opening && sb_core.opening->nnodes == 1)
			l->node = sb_strdup(sb_core.opening->nodes[0].name);
		if (l->node == NULL) {
			snprintf(err, errlen, "client mode needs 'node': the node this account represents");
			goto fail;
		}
	}
	if (l->port < 1 || l->port > 65535) {
		snprintf(err, errlen, "port must be 1 to 65535");
		goto fail;
	}
	l->tls_verify = sb_conf_bool(s, "tls_verify", 1);
	l->ca_file = copy_str(s, "ca_file", NULL);
	l->nick = copy_str(s, "nick", "switchboard");
	l->max_message = (size_t)sb_conf_int(s, "max_message", 4000);
	if (l->max_message < 64 || l->max_message > 1000000) {
		snprintf(err, errlen, "max_message must be 64 to 1000000 bytes");
		goto fail;
	}
	l->ping_interval = (int)sb_conf_int(s, "ping_interval", 60);
	l->ping_timeout = l->ping_interval > 0 ? (l->ping_interval < 30 ? l->ping_interval : 30) : 0;
	l->queue_max = (size_t)sb_conf_int(s, "queue_max", 1000);
	l->rejoin = sb_conf_bool(s, "rejoin", 1);
	l->nrooms = rooms ? (size_t)config_setting_length(rooms) : 0;
	l->rooms = sb_calloc(l->nrooms + 1, sizeof(*l->rooms));
	for (size_t i = 0; i < l->nrooms; i++)
		l->rooms[i].jid = sb_strdup(config_setting_get_string_elem(rooms, (int)i));
	l->nwatch_cfg = w ? (size_t)config_setting_length(w) : 0;
	l->watch_cfg = sb_calloc(l->nwatch_cfg + 1, sizeof(char *));
	for (size_t i = 0; i < l->nwatch_cfg; i++)
		l->watch_cfg[i] = sb_strdup(config_setting_get_string_elem(w, (int)i));
	ch->priv = l;
	ch->silent_refusal = l->silent;
	return 0;
fail:
	link_unref(l);
	return -1;
}

static void
presence_of(const struct sb_node *n, struct op *o)
{
	const char *show = "";

	o->known = n->state != SB_ST_UNKNOWN;
	switch (n->state) {
	case SB_ST_WARNING:
		show = "away";
		break;
	case SB_ST_CRITICAL:
		show = "dnd";
		break;
	case SB_ST_OFF:
	case SB_ST_MAINT:
		show = "xa";
		break;
	case SB_ST_DOWN:
		o->unavailable = 1;
		break;
	default:
		break;
	}
	o->show = sb_strdup(show);
	o->status = sb_strdup(n->reason);
}

static int
xc_presence(struct sb_channel *ch, const struct sb_node *n)
{
	struct xlink *l = ch->priv;
	struct op *o;

	if (!l->component && (l->node == NULL || strcmp(l->node, n->name) != 0))
		return 0;
	o = sb_calloc(1, sizeof(*o));
	o->kind = OP_PRESENCE;
	o->node = sb_strdup(n->name);
	presence_of(n, o);
	push_op(l, o);
	return 0;
}

static int
xc_start(struct sb_channel *ch)
{
	struct xlink *l = ch->priv;
	sigset_t all, old;
	int rc;

	if ((l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		sb_warn("xmpp %s: eventfd", l->chan);
		return -1;
	}
	atomic_store(&l->stop, 0);
	for (size_t i = 0; i < sb_node_count(); i++)
		xc_presence(ch, sb_node_at(i));
	/* The thread takes no signals: the loop's signalfd gets them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_fetch_add(&l->refs, 1);		/* the thread's */
	rc = pthread_create(&l->thread, NULL, thread_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		atomic_fetch_sub(&l->refs, 1);
		errno = rc;
		sb_warn("xmpp %s: cannot start its thread", l->chan);
		return -1;
	}
	l->thread_started = 1;
	return 0;
}

static int
xc_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text, unsigned flags)
{
	struct xlink *l = ch->priv;
	char from[512], *f = NULL;

	if (xa_reply(ch, req, text, flags, send_raw, l))
		return 0;
	if (text == NULL || *text == '\0')
		return 0;
	if (req->kind == SB_MSG_GROUP) {
		queue_message(l, req->conv, NULL, NULL, 1, text);
		return 0;
	}
	if (l->component) {
		if (req->node)
			snprintf(from, sizeof(from), "%s@%s", req->node, l->domain);
		else
			snprintf(from, sizeof(from), "%s", l->domain);
		f = from;
	}
	queue_message(l, req->conv, f, req->thread, 0, text);
	return 0;
}

static int
xc_send(struct sb_channel *ch, const char *to, const char *text)
{
	struct xlink *l = ch->priv;
	char *bare;
	int room = 0;

	if (to == NULL || *to == '\0')
		return -1;	/* no default audience on XMPP */
	bare = bare_of(to);
	for (size_t i = 0; i < l->nrooms && !room; i++)
		room = strcasecmp(l->rooms[i].jid, bare) == 0;
	queue_message(l, room ? bare : to, NULL, NULL, room, text);
	free(bare);
	return 0;
}

static void
xc_describe(struct sb_channel *ch, struct sb_buf *b)
{
	struct xlink *l = ch->priv;

	sb_buf_printf(b, "%s %s via %s:%d, %s, %lu in, %lu out%s",
	    l->component ? "component" : "client", l->component ? l->domain : l->jid,
	    l->server, l->port, atomic_load(&l->connected) ? "connected" : "connecting",
	    atomic_load(&l->stanzas_in), atomic_load(&l->stanzas_out),
	    atomic_load(&l->dropped) ? ", some offline messages dropped" : "");
}

static void
xc_stop(struct sb_channel *ch)
{
	struct xlink *l = ch->priv;
	uint64_t one = 1;

	if (!l->thread_started)
		return;
	atomic_store(&l->stop, 1);
	(void)!write(l->efd, &one, sizeof(one));
	pthread_join(l->thread, NULL);
	l->thread_started = 0;
	link_unref(l);		/* the thread's reference */
}

static void
xc_close(struct sb_channel *ch)
{
	struct xlink *l = ch->priv;

	xc_stop(ch);
	xa_forget(ch);
	atomic_store(&l->closed, 1);
	link_unref(l);
	ch->priv = NULL;
}

const struct sb_channel_driver sb_chan_xmpp = {
	.name = "xmpp",
	.abi = SB_CHANNEL_ABI,
	.keys = xmpp_keys,
	.open = xc_open,
	.start = xc_start,
	.reply = xc_reply,
	.send = xc_send,
	.presence = xc_presence,
	.describe = xc_describe,
	.stop = xc_stop,
	.close = xc_close,
};
