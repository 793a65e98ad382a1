/*
 * xmpp_link.h: what the XMPP channel's two halves share: the core side
 * (chan_xmpp.c: config, ACL, dispatch, on the loop thread) and the link
 * (xmpp_link.c: libstrophe, on the channel's own thread).  They meet only
 * through struct xlink's op queue (core -> link) and xl_post_event()
 * (link -> core); everything else in struct xlink below "the XMPP thread's
 * own" is touched by the link thread alone.
 */
#ifndef SB_XMPP_LINK_H
#define SB_XMPP_LINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <strophe.h>

#include "util.h"

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
#define NS_ROSTERX     "http://jabber.org/protocol/rosterx"

#define BUCKETS 4096

struct sb_timer;

/* ---- shared between the core and the XMPP thread ---- */

enum op_kind {
	OP_PRESENCE,		/* a node's presence changed */
	OP_MESSAGE,		/* send text */
	OP_SUBSCRIPTION,	/* answer a subscription request */
	OP_RAW,			/* send this XML (ad-hoc answers) */
	OP_NOTICE,		/* a spooled notification: id "sb-<id>", then a ping */
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
	uint64_t id;		/* NOTICE: the spool's id */
};

/* Notices sent before a ping, confirmed together by its answer. */
struct barrier {
	struct barrier *next;
	unsigned long seq;	/* the ping's id is "sbnote<seq>" */
	uint64_t sent;		/* ms */
	uint64_t *ids;
	size_t  n;
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

#define SB_XMPP_MAX_WATCHERS 256	/* per node: probes from more are answered, not kept */

struct watcher_list {
	char  **jids;
	size_t  n;
	int     full_logged;
};

struct pres {
	struct pres *next;
	char   *node;
	char   *show, *status;
	int     unavailable, known;
	int     suggested;	/* XEP-0144 suggestion sent on this link */
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
	int     suggest;	/* XEP-0144: suggest new nodes to watchers */
	char   *roster_group;
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

	/* core side only (the loop thread): notices of this loop turn, pushed
	 * together so that one ping confirms them all */
	struct op *batch, *batch_tail;
	struct sb_timer *batch_timer;
	int     up_once;	/* connected before: the next connect is a reconnect */

	/* status, for describe() */
	atomic_int connected;
	atomic_ulong reconnects, stanzas_in, stanzas_out, dropped;

	/* ---- the XMPP thread's own ---- */
	xmpp_ctx_t *ctx;
	xmpp_conn_t *conn;
	int     sock;
	int     active;		/* a connection attempt or session exists */
	int     tcp_pending;	/* its TCP connect has not completed yet */
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
	struct barrier *barriers, *barriers_tail;	/* oldest first */
	unsigned long note_seq;
	int     batching;	/* in drain(), component: sends go to out */
	struct sb_buf out;	/* what one drain() sends, in one write */
	int     ran_inline;	/* a message ran here: drain, send, wake the loop */
};

enum ev_kind { EV_MESSAGE, EV_SUBSCRIBE, EV_STATE, EV_ADHOC, EV_RESULT };

struct xevent {
	struct xlink *l;
	enum ev_kind kind;
	char   *from_bare, *from_full, *to, *body, *thread, *room, *nick;
	int     group;
	int     up;		/* EV_STATE (with room: that room was joined) */
	struct xa_request *adhoc;	/* EV_ADHOC */
	uint64_t *ids;		/* EV_RESULT: these notices ... */
	size_t  nids;
	int     result;		/* ... have this SB_SEND_* result */
};

struct xa_request;

/* Both sides. */
void  xl_op_free(struct op *);
void  xl_unref(struct xlink *);			/* frees at the last reference */
void  xl_push_op(struct xlink *, struct op *);	/* core -> link; takes op */
/* core -> link: a chain of ops linked by next, in one go; takes them. */
void  xl_push_ops(struct xlink *, struct op *head, struct op *tail);
/* Report notices' results to the core (from either thread); takes ids. */
void  xl_post_results(struct xlink *, uint64_t *ids, size_t n, int result);
void  xl_event_free(struct xevent *);
char *xl_bare_of(const char *jid);		/* NULL-safe, caller frees */
/* The node a JID of ours names (component: <node>@<domain>; client: the
 * configured node), in buf; NULL if none. */
const char *xl_node_of_jid(struct xlink *, const char *to, char *buf, size_t len);

/* Link side. */
void *xl_thread_main(void *xlink);
void  xl_post_event(struct xlink *, struct xevent *);	/* takes e */

/* Core side: runs a posted event on the loop thread. */
void  xl_event_run(void *xevent);

#endif
