/*
 * echo.c: the benchmark's baseline, the least an XMPP responder on
 * libstrophe can do.  It joins the server as an external component
 * (XEP-0114), as switchboard's gateway mode does, announces one JID
 * (node@DOMAIN) as available to the watcher and to whoever probes it, and
 * answers each chat message at once with the same body and thread.
 *
 * With COUNT, it announces n00000@DOMAIN ... (COUNT JIDs, the gateway
 * benchmark's node names) to the watcher instead, all at once on connect:
 * what the server alone takes to deliver that many presences.
 *
 * usage: echo DOMAIN SECRET PORT WATCHER [COUNT]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <strophe.h>

static xmpp_ctx_t *ctx;
static char node[512], domain[256];
static long count;

static void
presence_from(xmpp_conn_t *c, const char *from, const char *to)
{
	xmpp_stanza_t *p = xmpp_presence_new(ctx);

	xmpp_stanza_set_from(p, from);
	xmpp_stanza_set_to(p, to);
	if (count > 0) {
		/* as switchboard's: a status text */
		xmpp_stanza_t *st = xmpp_stanza_new(ctx), *tx = xmpp_stanza_new(ctx);

		xmpp_stanza_set_name(st, "status");
		xmpp_stanza_set_text(tx, "ok: all 2 sensors normal");
		xmpp_stanza_add_child(st, tx);
		xmpp_stanza_add_child(p, st);
		xmpp_stanza_release(tx);
		xmpp_stanza_release(st);
	}
	xmpp_send(c, p);
	xmpp_stanza_release(p);
}

static void
presence_to(xmpp_conn_t *c, const char *to)
{
	presence_from(c, node, to);
}

static int
on_message(xmpp_conn_t *c, xmpp_stanza_t *st, void *ud)
{
	const char *type = xmpp_stanza_get_type(st);
	xmpp_stanza_t *r, *thread;
	char *text;

	(void)ud;
	if (type && strcmp(type, "error") == 0)
		return 1;
	if ((text = xmpp_message_get_body(st)) == NULL)
		return 1;
	r = xmpp_message_new(ctx, "chat", xmpp_stanza_get_from(st), NULL);
	xmpp_stanza_set_from(r, xmpp_stanza_get_to(st));
	xmpp_message_set_body(r, text);
	if ((thread = xmpp_stanza_get_child_by_name(st, "thread")) != NULL) {
		thread = xmpp_stanza_copy(thread);
		xmpp_stanza_add_child(r, thread);
		xmpp_stanza_release(thread);
	}
	xmpp_send(c, r);
	xmpp_stanza_release(r);
	xmpp_free(ctx, text);
	return 1;
}

static int
on_presence(xmpp_conn_t *c, xmpp_stanza_t *st, void *ud)
{
	const char *type = xmpp_stanza_get_type(st);

	(void)ud;
	if (type && strcmp(type, "probe") == 0)
		presence_to(c, xmpp_stanza_get_from(st));
	return 1;
}

static int
nodelay(xmpp_conn_t *c, void *sock)
{
	int one = 1;

	(void)c;
	setsockopt(*(int *)sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static void
on_conn(xmpp_conn_t *c, xmpp_conn_event_t status, int error, xmpp_stream_error_t *se,
        void *watcher)
{
	(void)error;
	(void)se;
	if (status != XMPP_CONN_CONNECT) {
		xmpp_stop(ctx);
		return;
	}
	xmpp_handler_add(c, on_message, NULL, "message", NULL, NULL);
	xmpp_handler_add(c, on_presence, NULL, "presence", NULL, NULL);
	if (count == 0) {
		presence_to(c, watcher);
		return;
	}
	for (long i = 0; i < count; i++) {
		char from[512];

		snprintf(from, sizeof(from), "n%05ld@%s", i, domain);
		presence_from(c, from, watcher);
	}
}

int
main(int argc, char **argv)
{
	xmpp_conn_t *c;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: echo DOMAIN SECRET PORT WATCHER [COUNT]\n");
		return 2;
	}
	snprintf(node, sizeof(node), "echo@%s", argv[1]);
	snprintf(domain, sizeof(domain), "%s", argv[1]);
	count = argc == 6 ? atol(argv[5]) : 0;
	xmpp_initialize();
	ctx = xmpp_ctx_new(NULL, NULL);
	c = xmpp_conn_new(ctx);
	xmpp_conn_set_jid(c, argv[1]);
	xmpp_conn_set_pass(c, argv[2]);
	xmpp_conn_set_sockopt_callback(c, nodelay);
	/* libstrophe 0.12.2 needs this first for a component: see do_connect()
	 * in channels/xmpp_link.c. */
	xmpp_connect_client(c, "", 0, NULL, NULL);
	if (xmpp_connect_component(c, "127.0.0.1", (unsigned short)atoi(argv[3]), on_conn,
	    argv[4]) != XMPP_EOK)
		return 1;
	xmpp_run(ctx);
	return 0;
}
