/*
 * fuzz_xmpp.c: the XMPP message handler, from stanza to struct sb_msg and
 * on through the dispatcher: the link's handlers for <message>, <presence>
 * (rooms' occupants and their real JIDs, subscriptions, probes) and <iq>
 * (ping, disco, version, ad-hoc commands), then the core side's turning
 * of events into messages (chan_xmpp.c), the ACL and the dialplan.  Two
 * links: a client account (agent mode, one room) and a component
 * (gateway mode, a node per JID).
 *
 * xmpp_link.c is included rather than linked so that its static handlers
 * can be called; libstrophe parses the input with
 * xmpp_stanza_new_from_string() as it parses a stream.  The links have
 * contexts and connections but never connect: what they would send is
 * dropped.
 *
 * Input: one byte choosing the link, then one stanza's XML.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_link.c"

#include "channel.h"
#include "core.h"
#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const confs[2] = {
	"name = \"xmpp\"; driver = \"xmpp\"; jid = \"switchboard@sb.test\";\n"
	"password = \"secret\"; node = \"web\"; nick = \"switchboard\";\n"
	"rooms = [ \"ops@conference.sb.test\" ];\n",
	"name = \"gw\"; driver = \"xmpp\"; mode = \"component\";\n"
	"component = \"nodes.sb.test\"; secret = \"secret\";\n"
	"rooms = [ \"ops@conference.sb.test\" ];\n",
};
static struct sb_channel chans[2];
static struct xlink *links[2];

static void
setup(void)
{
	static char ctx[] = "default";

	sb_fuzz_world_start(NULL);
	for (int i = 0; i < 2; i++) {
		config_t *cf = calloc(1, sizeof(*cf));
		char err[512] = "";

		config_init(cf);
		if (config_read_string(cf, confs[i]) != CONFIG_TRUE)
			abort();
		chans[i].drv = &sb_chan_xmpp;
		chans[i].name = strdup(i ? "gw" : "xmpp");
		chans[i].context = chans[i].group_context = ctx;
		if (sb_chan_xmpp.open(&chans[i], config_root_setting(cf), err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_xmpp: open: %s\n", err);
			exit(1);
		}
		chans[i].started = 1;
		if (sb_channel_register(&chans[i]) < 0)
			abort();
		links[i] = chans[i].priv;
		links[i]->ctx = xmpp_ctx_new(NULL, NULL);
		links[i]->conn = xmpp_conn_new(links[i]->ctx);
	}
}

/* The room as it stands after a join: one occupant whose real JID the
 * room shows, one hidden, and us. */
static void
room_reset(struct xlink *l)
{
	struct room *r = &l->rooms[0];
	static const char *const nicks[] = { "alice", "bob" }, *const real[] = {
		"admin@example.org/laptop", NULL };

	occupants_clear(r);
	r->joined = 1;
	for (int i = 0; i < 2; i++) {
		struct occupant *o = sb_calloc(1, sizeof(*o));

		o->nick = sb_strdup(nicks[i]);
		o->real = xl_bare_of(real[i]);
		o->next = r->occupants;
		r->occupants = o;
	}
}

/* What the core side asked the link to send: dropped. */
static void
ops_drop(struct xlink *l)
{
	struct op *o, *next;

	pthread_mutex_lock(&l->lock);
	o = l->head;
	l->head = l->tail = NULL;
	pthread_mutex_unlock(&l->lock);
	for (; o; o = next) {
		next = o->next;
		xl_op_free(o);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xlink *l;
	xmpp_stanza_t *st;
	const char *name;
	char *xml;

	if (size < 1 || size > 16384)
		return -1;
	if (links[0] == NULL)
		setup();
	l = links[data[0] & 1];
	room_reset(l);
	xml = sb_fuzz_strndup(data + 1, size - 1);
	st = xmpp_stanza_new_from_string(l->ctx, xml);
	free(xml);
	if (st == NULL)
		return 0;
	if ((name = xmpp_stanza_get_name(st)) != NULL) {
		if (strcmp(name, "message") == 0)
			on_message(l->conn, st, l);
		else if (strcmp(name, "presence") == 0)
			on_presence(l->conn, st, l);
		else if (strcmp(name, "iq") == 0)
			on_iq(l->conn, st, l);
	}
	xmpp_stanza_release(st);
	for (int i = 0; i < 8; i++)
		sb_loop_once(sb_core.loop, 0);
	ops_drop(l);
	return 0;
}
