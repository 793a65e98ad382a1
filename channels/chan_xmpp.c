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
 * This file is the core side: config, the driver table, turning events
 * into messages and replies into ops.  xmpp_link.c is the thread side,
 * xmpp_adhoc.c the XEP-0050 forms.  It knows XMPP, not commands or policy.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <strophe.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dialplan.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "node.h"
#include "notify.h"
#include "util.h"
#include "xmpp_adhoc.h"
#include "xmpp_link.h"

static const struct sb_conf_key xmpp_keys[] = {
	{ "mode", SB_CT_STRING, 0, NULL, "client",
	  "client (agent mode: this account is one node) or component (gateway mode, XEP-0114)" },
	{ "server", SB_CT_STRING, 0, NULL, "the JID's domain",
	  "host to connect to" },
	{ "port", SB_CT_INT, 0, NULL, "5222 (client), 5347 (component)", "port to connect to" },
	{ "jid", SB_CT_STRING, 0, NULL, NULL, "client mode: the account, user@domain" },
	{ "password", SB_CT_STRING, 0, NULL, NULL,
	  "client mode: its password (the config file must not be world-readable)" },
	{ "password_file", SB_CT_STRING, 0, NULL, NULL,
	  "client mode: a file holding the password instead; relative: in $CREDENTIALS_DIRECTORY" },
	{ "resource", SB_CT_STRING, 0, NULL, "switchboard",
	  "client mode: the resource, kept stable so ad-hoc queries can reach it" },
	{ "node", SB_CT_STRING, 0, NULL, "the only node",
	  "client mode: the node this account represents" },
	{ "component", SB_CT_STRING, 0, NULL, NULL,
	  "component mode: the component's domain; nodes are <node>@<component>" },
	{ "secret", SB_CT_STRING, 0, NULL, NULL,
	  "component mode: the shared secret (the config file must not be world-readable)" },
	{ "secret_file", SB_CT_STRING, 0, NULL, NULL,
	  "component mode: a file holding the secret instead; relative: in $CREDENTIALS_DIRECTORY" },
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
	  "replies kept while disconnected (notifications wait in the spool); the oldest are dropped past it, and logged" },
	{ "rejoin", SB_CT_BOOL, 0, NULL, "true", "rejoin a room after being kicked" },
	{ "suggest_roster", SB_CT_BOOL, 0, NULL, "false",
	  "component mode: the first time a node is seen, ask each watcher to subscribe, "
	  "suggesting roster_group (XEP-0144); for servers without shared rosters" },
	{ "roster_group", SB_CT_STRING, 0, NULL, "Systems Management",
	  "the roster group suggest_roster proposes" },
	{ "watchers", SB_CT_STRINGS, 0, NULL, "[ ]",
	  "component mode: bare JIDs sent every node's presence at connect (operators)" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

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
	xl_push_op(l, o);
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
		const char *n = xl_node_of_jid(l, e->to, buf, sizeof(buf));

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
	xl_push_op(l, o);
}

static void
send_raw(void *ud, const char *xml)
{
	struct xlink *l = ud;
	struct op *o = sb_calloc(1, sizeof(*o));

	o->kind = OP_RAW;
	o->text = sb_strdup(xml);
	xl_push_op(l, o);
}

static void
handle_adhoc(struct sb_channel *ch, struct xlink *l, struct xevent *e)
{
	char buf[256];
	const char *implied = xl_node_of_jid(l, e->adhoc->to, buf, sizeof(buf));

	if (implied && sb_node_find(implied) == NULL)
		implied = NULL;
	xa_handle(ch, implied, e->adhoc, send_raw, l);
}

void
xl_event_run(void *ud)
{
	struct xevent *e = ud;
	struct xlink *l = e->l;
	struct sb_channel *ch = sb_channel_find(l->chan);

	/* The spool waits for these whatever became of the channel. */
	if (e->kind == EV_RESULT) {
		for (size_t i = 0; i < e->nids; i++)
			sb_notice_result(e->ids[i], e->result);
		xl_event_free(e);
		xl_unref(l);
		return;
	}
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
			if (!e->up)
				break;
			if (e->room == NULL) {
				if (l->up_once)
					ch->reconnects++;
				l->up_once = 1;
			}
			/* Connected, or in a room: what waits may go now. */
			sb_notify_kick(ch->name);
			break;
		case EV_RESULT:
			break;
		}
	}
	xl_event_free(e);
	xl_unref(l);
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
		if (sb_conf_secret(s, "secret", &l->secret, err, errlen) < 0)
			goto fail;
		if (!l->domain || !l->secret) {
			snprintf(err, errlen, "component mode needs 'component' and 'secret' "
			    "(or 'secret_file')");
			goto fail;
		}
		l->server = copy_str(s, "server", l->domain);
		l->port = (int)sb_conf_int(s, "port", 5347);
	} else {
		const char *at;

		l->jid = copy_str(s, "jid", NULL);
		if (sb_conf_secret(s, "password", &l->password, err, errlen) < 0)
			goto fail;
		if (!l->jid || !l->password || !(at = strchr(l->jid, '@')) || strchr(l->jid, '/')) {
			snprintf(err, errlen, "client mode needs 'jid' (user@domain, no resource) and "
			    "'password' (or 'password_file')");
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
	l->suggest = sb_conf_bool(s, "suggest_roster", 0);
	l->roster_group = copy_str(s, "roster_group", "Systems Management");
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
	xl_unref(l);
	return -1;
}

static void
presence_of(const struct sb_node *n, struct op *o)
{
	const char *show = "";
	char lshow[32], lstatus[256];

	/* The dialplan may map states to presence its own way. */
	if (sb_dialplan_presence(n, lshow, sizeof(lshow), lstatus, sizeof(lstatus)) == 0) {
		o->known = 1;
		o->unavailable = strcmp(lshow, "unavailable") == 0;
		o->show = sb_strdup(o->unavailable ? "" : lshow);
		o->status = sb_strdup(lstatus);
		return;
	}

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
	xl_push_op(l, o);
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
	rc = pthread_create(&l->thread, NULL, xl_thread_main, l);
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
	bare = xl_bare_of(to);
	for (size_t i = 0; i < l->nrooms && !room; i++)
		room = strcasecmp(l->rooms[i].jid, bare) == 0;
	queue_message(l, room ? bare : to, NULL, NULL, room, text);
	free(bare);
	return 0;
}

/* The notices of one loop turn go to the link together: one ping after
 * them confirms them all. */
static long
batch_fire(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct xlink *l = ud;

	(void)loop;
	(void)t;
	l->batch_timer = NULL;
	xl_push_ops(l, l->batch, l->batch_tail);
	l->batch = l->batch_tail = NULL;
	return SB_TIMER_STOP;
}

/* Report LATER for the notices in a chain of ops, and free those ops;
 * the others stay, in order.  Returns the new head (*tail updated). */
static struct op *
notices_later(struct xlink *l, struct op *head, struct op **tail)
{
	struct op *keep = NULL, **kp = &keep, *o, *n;
	uint64_t *ids = NULL;
	size_t nids = 0;

	*tail = NULL;
	for (o = head; o; o = n) {
		n = o->next;
		o->next = NULL;
		if (o->kind == OP_NOTICE) {
			ids = sb_realloc(ids, (nids + 1) * sizeof(*ids));
			ids[nids++] = o->id;
			xl_op_free(o);
		} else {
			*kp = o;
			kp = &o->next;
			*tail = o;
		}
	}
	xl_post_results(l, ids, nids, SB_SEND_LATER);
	return keep;
}

/* A JID as an address: something, with no blank or control character. */
static int
valid_address(const char *to)
{
	if (to == NULL || *to == '\0' || *to == '@' || *to == '/' || strlen(to) > 3071)
		return 0;
	for (; *to; to++)
		if ((unsigned char)*to <= ' ' || *to == 0x7F)
			return 0;
	return 1;
}

static int
xc_deliver(struct sb_channel *ch, const struct sb_notice *n)
{
	struct xlink *l = ch->priv;
	struct op *o;
	char *bare;
	int room = 0;

	if (n->to == NULL || *n->to == '\0') {
		sb_warnx("xmpp %s: notice %llu has no address (no default audience on XMPP)",
		    ch->name, (unsigned long long)n->id);
		return SB_SEND_FAIL;
	}
	if (!valid_address(n->to)) {
		sb_warnx("xmpp %s: notice %llu: \"%.60s\" is not a JID", ch->name,
		    (unsigned long long)n->id, n->to);
		return SB_SEND_FAIL;
	}
	if (!l->thread_started || !atomic_load(&l->connected))
		return SB_SEND_LATER;
	bare = xl_bare_of(n->to);
	for (size_t i = 0; i < l->nrooms && !room; i++)
		room = strcasecmp(l->rooms[i].jid, bare) == 0;
	o = sb_calloc(1, sizeof(*o));
	o->kind = OP_NOTICE;
	o->id = n->id;
	o->to = room ? bare : sb_strdup(n->to);
	if (!room)
		free(bare);
	o->groupchat = room;
	o->text = sb_strdup(n->text ? n->text : "");
	if (l->batch_tail)
		l->batch_tail->next = o;
	else
		l->batch = o;
	l->batch_tail = o;
	if (l->batch_timer == NULL)
		l->batch_timer = sb_loop_add_timer(sb_core.loop, 0, batch_fire, l);
	return SB_SEND_PENDING;
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
	struct op *tail;
	uint64_t one = 1;

	if (l->batch_timer)
		sb_loop_del_timer(sb_core.loop, l->batch_timer);
	l->batch_timer = NULL;
	l->batch = notices_later(l, l->batch, &l->batch_tail);
	if (!l->thread_started)
		return;
	atomic_store(&l->stop, 1);
	(void)!write(l->efd, &one, sizeof(one));
	pthread_join(l->thread, NULL);
	l->thread_started = 0;
	/* Notices the thread never took: the spool sends them again. */
	l->head = notices_later(l, l->head, &tail);
	l->tail = tail;
	xl_unref(l);		/* the thread's reference */
}

static void
xc_close(struct sb_channel *ch)
{
	struct xlink *l = ch->priv;

	xc_stop(ch);
	xa_forget(ch);
	atomic_store(&l->closed, 1);
	xl_unref(l);
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
	.deliver = xc_deliver,
	.presence = xc_presence,
	.describe = xc_describe,
	.stop = xc_stop,
	.close = xc_close,
};
