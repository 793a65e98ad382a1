/*
 * chan_irc.h: the IRC channel's internals, shared by its files and its
 * unit test (tests/unit/test_chan_irc.c).  The core knows the driver only
 * as sb_chan_irc (channel.h).
 *
 * irc_text.c: the pure parts, which touch neither the network nor
 * libircclient: line budgets, cutting text into protocol-safe pieces, the
 * token bucket that paces output, how a chat line addresses the bot.
 * irc_resolve.c: a host name lookup off the loop.
 */
#ifndef SB_CHAN_IRC_H
#define SB_CHAN_IRC_H

#include <stddef.h>
#include <stdint.h>

/* RFC 2812 2.3: a message is at most 512 bytes, CR LF included. */
#define SB_IRC_LINE_MAX 512

/*
 * Bytes of text that fit in one message as the server relays it to the
 * other side: ":<prefix> <cmd> <target> :<text>\r\n", where prefix is our
 * "nick!user@host" of prefixlen bytes.  0 if nothing fits.
 */
size_t sb_irc_text_budget(size_t prefixlen, const char *cmd, const char *target);

/*
 * How many bytes of s[0..len) go into the next piece of at most max bytes:
 * never in the middle of a UTF-8 character, and after a space when one is
 * in the last quarter of the piece.  At least 1 when len and max are not 0
 * (a run of bytes that is not UTF-8 is cut where it must be).
 */
size_t sb_irc_cut(const char *s, size_t len, size_t max);

/* Replace every CR, LF and NUL in s[0..len) with a space, in place. */
void sb_irc_scrub(char *s, size_t len);

/*
 * Cut text into pieces that are each safe as the trailing parameter of one
 * message: lines end at LF (a CR before it is dropped), a line longer than
 * budget is cut with sb_irc_cut, stray CR and NUL become spaces, and empty
 * lines are skipped.  text is len bytes (it may hold NULs).  Returns the
 * number of pieces; *out receives a NULL-terminated array of strings that
 * the caller frees (each, then the array).
 */
size_t sb_irc_wrap(const char *text, size_t len, size_t budget, char ***out);

/* Output pacing: burst lines at once, then rate lines a second. */
struct sb_irc_bucket {
	double   tokens, burst, rate;
	uint64_t last;		/* ms, when tokens was last brought up to date */
};
void sb_irc_bucket_init(struct sb_irc_bucket *, double burst, double rate, uint64_t now);
/* Take one token: 1 if there was one, else 0. */
int  sb_irc_bucket_take(struct sb_irc_bucket *, uint64_t now);
/* Milliseconds until a token is there (0: now). */
long sb_irc_bucket_wait(const struct sb_irc_bucket *, uint64_t now);

/* Is name a node?  For sb_irc_parse_command. */
typedef int sb_irc_node_fn(const char *name, void *ud);

/*
 * Is a chat line a command for the bot, and which?  In a query every line
 * is; in a channel only "<prefix><command>" (prefix "!" by default),
 * "<botnick>: <command>" (or a comma) and "<node>: <command>" are.  A
 * query may start the same ways.  Returns 1 with *cmd pointing into text
 * at the command and node set to the addressed node ("" if none), or 0 if
 * the line is not for the bot.  botnick is compared as IRC compares nicks.
 */
int sb_irc_parse_command(const char *text, int query, const char *botnick, const char *prefix,
                         sb_irc_node_fn *is_node, void *ud, char *node, size_t nodelen,
                         const char **cmd);

/* Compare as IRC does (RFC 1459 case mapping: [ ] \ ~ are the capitals
 * of { } | ^). */
int sb_irc_casecmp(const char *a, const char *b);

/* A nick or channel we may put on the wire as a command's parameter:
 * not empty, at most 200 bytes, no blank, comma, CR, LF, NUL or control
 * character, not starting with ':'. */
int sb_irc_valid_target(const char *);

/* A channel name: a valid target starting with # & + or !. */
int sb_irc_is_channel(const char *);

/* Is a numeric address (IPv4 or IPv6) on this host's loopback? */
int sb_irc_is_loopback(const char *addr);

/*
 * libircclient (1.9, as Debian ships it) passes the PASS, NICK and USER
 * lines it builds from irc_connect()'s strings through printf a second
 * time, so a '%' in a password would be read as a conversion.  Returns a
 * copy of s with every '%' doubled (NULL stays NULL).
 */
char *sb_irc_escape_percent(const char *s);

/*
 * Where the driver tells the spool (core/notify.c) of a notice's result
 * and that the channel is ready to deliver: sb_notice_result and
 * sb_notify_kick, called on the loop; the unit test points them elsewhere.
 */
extern void (*sb_irc_notice_result)(uint64_t id, int result);
extern void (*sb_irc_notify_kick)(const char *channel);

/*
 * A host name lookup off the loop (irc_resolve.c): done(ud, addr, family,
 * err) runs on the loop later with a numeric address and AF_INET or
 * AF_INET6, or family 0 and an error text; the handle ends with that call.
 * Returns NULL if no thread could be started.
 */
typedef void sb_irc_resolved_fn(void *ud, const char *addr, int family, const char *err);
struct sb_irc_resolve;
struct sb_irc_resolve *sb_irc_resolve(const char *host, sb_irc_resolved_fn *done, void *ud);
/* The caller no longer wants the answer: done() will not run.  Ends the
 * handle. */
void sb_irc_resolve_abandon(struct sb_irc_resolve *);

#endif
