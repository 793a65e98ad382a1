/*
 * xmpp_adhoc.h: XEP-0050 ad-hoc commands for the XMPP channel, built from
 * the dialplan's command patterns.  Core side only (the loop thread): the
 * XMPP thread parses the request and sends the XML this module builds.
 */
#ifndef SB_XMPP_ADHOC_H
#define SB_XMPP_ADHOC_H

#include <stddef.h>

struct sb_channel;
struct sb_msg;

struct xa_request {
	char   *from_full, *from_bare, *to, *id;
	int     list;		/* disco#items on the commands node */
	char   *node, *action, *sessionid;
	char  **vars, **vals;	/* submitted form fields */
	size_t  nfields;
};

/* Sends a complete stanza (XML text) on the channel's link. */
typedef void xa_send_fn(void *ud, const char *xml);

/* Answer req (borrowed); implied is the node the request was addressed to
 * (NULL for the gateway itself). */
void xa_handle(struct sb_channel *, const char *implied, const struct xa_request *,
               xa_send_fn *, void *ud);
/* A reply to a command started by a form: returns 1 if it took it. */
int  xa_reply(struct sb_channel *, const struct sb_msg *req, const char *text,
              unsigned flags, xa_send_fn *, void *ud);
/* Forget the sessions of a channel that closes. */
void xa_forget(const struct sb_channel *);
void xa_request_free(struct xa_request *);
/* Append s to b with XML's five special characters escaped. */
struct sb_buf;
void xa_escape(struct sb_buf *, const char *s);

#endif
