/*
 * msg.h: the message that travels between channel drivers and the core.
 *
 * A driver builds one per incoming chat line and hands it to sb_dispatch(),
 * which takes the reference.  A message is reference-counted because a
 * command that waits on hardware keeps it alive past the driver's callback.
 */
#ifndef SB_MSG_H
#define SB_MSG_H

enum sb_msg_kind {
	SB_MSG_DIRECT,		/* a one-to-one conversation */
	SB_MSG_GROUP,		/* a room or IRC channel */
};

struct sb_msg {
	unsigned refs;
	enum sb_msg_kind kind;
	char   *channel;	/* channel instance name: where replies go */
	char   *from;		/* identity, "driver:address": "xmpp:bob@example.org" */
	char   *conv;		/* driver-defined conversation handle for replies */
	char   *session;	/* stable conversation key (confirmation codes are
				   bound to it); NULL: conv */
	char   *thread;		/* optional thread id, echoed in replies */
	char   *node;		/* implied target node, or NULL */
	char   *text;		/* the command line, NUL-free */
	char   *confirm;	/* set by the dialplan when the command answered
				   with a confirmation code (forms use it) */
};

/* Copies every string; conv and text may not be NULL. */
struct sb_msg *sb_msg_new(const char *channel, const char *from,
                          const char *conv, const char *text);
void sb_msg_set_thread(struct sb_msg *, const char *);	/* copies */
void sb_msg_set_node(struct sb_msg *, const char *);	/* copies */
void sb_msg_set_session(struct sb_msg *, const char *);	/* copies */
void sb_msg_set_confirm(struct sb_msg *, const char *);	/* copies */
struct sb_msg *sb_msg_ref(struct sb_msg *);
void sb_msg_unref(struct sb_msg *);			/* NULL-safe */

#endif
