/*
 * channel.h: the channel driver interface.
 *
 * One driver per protocol (chan_console.c, chan_xmpp.c, chan_irc.c,
 * chan_http.c), a const table of function pointers filled in by name.  The
 * core owns the instances; a driver owns its priv.  A driver turns protocol
 * events into struct sb_msg and core requests into protocol traffic; it
 * knows nothing of commands or policy.
 */
#ifndef SB_CHANNEL_H
#define SB_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#define SB_CHANNEL_ABI 1

/* reply() flags */
#define SB_REPLY_DONE 0x1u	/* the command finished; text may be NULL */
#define SB_REPLY_FAIL 0x2u	/* with DONE: it failed (refused, error) */

/* deliver() results, and what a driver reports with sb_notice_result() */
#define SB_SEND_DONE     0	/* delivered: the channel's confirmation is in */
#define SB_SEND_PENDING  1	/* taken; the driver calls sb_notice_result() later */
#define SB_SEND_LATER    2	/* not now (disconnected, busy, 5xx): retried with backoff */
#define SB_SEND_FAIL   (-1)	/* never (no such address): dropped, logged, counted */

/*
 * One spooled notification.  The id is stable: the same on every retry and
 * after a restart, so that a destination can drop duplicates (XMPP: the
 * message id "sb-<id>"; webhooks: the JSON's "id").  The text names the
 * events' own ids ("E12").  Delivery is at least once.
 */
struct sb_notice {
	uint64_t    id;
	const char *to;		/* address after "channel:", NULL: default audience */
	const char *text;	/* rendered, may hold newlines */
	const char *json;	/* {"id":N,"text":...,"events":[{...}]}: for webhooks */
	unsigned    attempt;	/* 1 on the first try */
};

struct sb_buf;
struct sb_channel;
struct sb_conf_key;
struct sb_msg;
struct sb_node;

struct sb_channel_driver {
	const char *name;	/* "console", "xmpp": matches config */
	unsigned abi;		/* SB_CHANNEL_ABI */
	const struct sb_conf_key *keys;	/* keys accepted in its section */
	/* Parse the channel's section (borrowed; copy what you keep: the
	 * config may be freed on reload).  On failure, message into err. */
	int  (*open)(struct sb_channel *, const config_setting_t *, char *err, size_t errlen);
	/* Connect or listen; add fds and timers to the loop. */
	int  (*start)(struct sb_channel *);
	/* Answer the conversation req came from (req borrowed). */
	int  (*reply)(struct sb_channel *, const struct sb_msg *req, const char *text, unsigned flags);
	/* Send a notification to an address ("oncall@example.org", "#ops";
	 * NULL: the driver's default audience).  Optional. */
	int  (*send)(struct sb_channel *, const char *to, const char *text);
	/* Deliver a spooled notification (n and its strings are borrowed:
	 * copy what is kept).  Returns an SB_SEND_* result; with PENDING the
	 * driver later calls sb_notice_result(n->id, ...) on the loop thread
	 * (DONE once confirmed: XMPP after a ping round trip that follows the
	 * message, IRC once written to the socket, a webhook on 2xx; LATER or
	 * FAIL otherwise).  A PENDING that is never reported is retried after
	 * a timeout.  Optional: without it, send() is used and 0 means DONE. */
	int  (*deliver)(struct sb_channel *, const struct sb_notice *n);
	/* A node's state or reason changed.  Optional. */
	int  (*presence)(struct sb_channel *, const struct sb_node *);
	/* One line of status for "core show channels".  Optional. */
	void (*describe)(struct sb_channel *, struct sb_buf *);
	/* Disconnect; idempotent. */
	void (*stop)(struct sb_channel *);
	/* Free priv. */
	void (*close)(struct sb_channel *);
};

struct sb_channel {
	const struct sb_channel_driver *drv;
	char   *name;		/* instance name, from config */
	char   *context;	/* dialplan context for direct messages */
	char   *group_context;	/* for rooms and IRC channels */
	char   *fingerprint;	/* its config section, to detect changes */
	int     started;
	int     silent_refusal;	/* unauthorized senders get no answer */
	void   *priv;
	/* Counters for /metrics (the core counts messages; a driver counts
	 * its reconnects). */
	uint64_t msgs_in;	/* chat messages handed to the dispatcher */
	uint64_t msgs_out;	/* replies and notifications sent */
	uint64_t reconnects;	/* connections re-established after a loss */
};

/* A driver's answer to a PENDING delivery (loop thread only; an id the
 * spool no longer waits for is ignored). */
void sb_notice_result(uint64_t id, int result);

extern const struct sb_channel_driver sb_chan_console;
extern const struct sb_channel_driver sb_chan_xmpp;
extern const struct sb_channel_driver sb_chan_irc;
extern const struct sb_channel_driver sb_chan_http;

/* The driver called name, loading its module if it is one: NULL if it
 * is unknown or will not load (sb_channel_driver_error says why). */
const struct sb_channel_driver *sb_channel_driver_find(const char *name);
const char *sb_channel_driver_error(const char *name);
/* Without loading anything: the driver's own spelling of name (NULL:
 * unknown), the keys its section takes, whether it is loaded (or has
 * failed to), and the i-th name (NULL past the last). */
const char *sb_channel_driver_known(const char *name);
const struct sb_conf_key *sb_channel_driver_keys(const char *name);
int  sb_channel_driver_loaded(const char *name);
const char *sb_channel_driver_name_at(size_t i);
/* Start loading a module driver's code on a thread of its own. */
void sb_channel_driver_preload(const char *name);
/* The i-th driver that can be had, loading modules (NULL past the last). */
const struct sb_channel_driver *sb_channel_driver_at(size_t i);

/* Instances, owned by the core. */
struct sb_channel *sb_channel_find(const char *name);
size_t sb_channel_count(void);
struct sb_channel *sb_channel_at(size_t i);
/* The instance a destination "channel:address" names ("console",
 * "xmpp:oncall@example.org"; a driver's name stands for its first
 * instance), or NULL; *addr is the address part or NULL. */
struct sb_channel *sb_channel_for_dest(const char *dest, const char **addr);

#endif
