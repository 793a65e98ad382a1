/*
 * dispatch.h: from a message to a command and back.
 *
 * sb_dispatch() maps the sender to a role (acl.h), refuses unknown senders,
 * and runs the command: a built-in admin command in C, or a dialplan
 * command in Lua.  A command in flight is a struct sb_cmd; it may answer
 * many times (sb_cmd_reply) and ends exactly once (sb_cmd_done), on the
 * same channel and conversation it came from.
 */
#ifndef SB_DISPATCH_H
#define SB_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct sb_msg;

#define SB_MAX_ARGS 64
#define SB_MAX_LINE 4096	/* a command line longer than this is refused */

struct sb_cmd {
	struct sb_msg *msg;	/* a reference: the request */
	char   *identity;	/* who it runs as (differs from msg->from with "as") */
	char   *role;		/* role name */
	int     level;		/* role level, SB_LEVEL_* */
	int     argc;
	char  **argv;		/* tokenised line (quotes honoured) */
	char   *store;		/* argv's strings */
	char   *line;		/* the sanitised command line (may be heard) */
	const char *rest;	/* line after the command's words, blanks skipped */
	int     done;
	void   *ud;		/* whoever runs it owns and frees this */
	/* Where it counts as coming from, for rules and the dialplan: the
	 * message's, unless "as IDENTITY on CHANNEL in ROOM" said otherwise
	 * (replies still go to msg's conversation). */
	char   *channel;	/* NULL: msg's */
	int     group;		/* from a room or IRC channel */
	char   *room;		/* that conversation, NULL when direct */
	/* For the audit log (audit.h), written when the command ends. */
	char   *heard;		/* the line as it arrived, sanitised */
	char   *nodes;		/* its target nodes, "web,db", or NULL */
	const char *outcome;	/* static: "refused", "denied", "rate-limited";
				   NULL: "ok", "confirm" or "failed" at the end */
	int     rated;		/* the rate limit was applied */
};

/* Takes msg. */
void sb_dispatch(struct sb_msg *);

/* Every command that reached the dispatcher, on any channel, by outcome
 * (for /metrics).  refused: unknown sender, permission denied, an ACL rule
 * or the rate limit; failed: it ran (or tried to) and failed. */
struct sb_dispatch_stats {
	uint64_t ok;
	uint64_t failed;
	uint64_t refused;
	uint64_t rate_limited;	/* also counted in refused */
};
void sb_dispatch_stats(struct sb_dispatch_stats *);

struct sb_acl_who;
/* Who cmd runs as and from where, for sb_acl_check (borrows cmd's strings). */
void sb_cmd_who(const struct sb_cmd *, struct sb_acl_who *);
/* May cmd run command (its words) on nodes (borrowed), the command asking
 * for own_level named own_role (NULL: a built-in name)?  0 if so; else -1:
 * the refusal is logged, cmd's outcome set and msg holds the answer, which
 * quotes what ("'power web cycle' needs role operator"). */
int  sb_cmd_allowed(struct sb_cmd *, const char *command, const char *const *nodes, size_t n,
                    int own_level, const char *own_role, const char *what, char *msg,
                    size_t msglen);
/* Record cmd's target nodes for the audit log (copied). */
void sb_cmd_set_nodes(struct sb_cmd *, const char *nodes);

void sb_cmd_reply(struct sb_cmd *, const char *text);
void sb_cmd_replyf(struct sb_cmd *, const char *fmt, ...) SB_PRINTF(2, 3);
/* Ends the command: ok or failed, with optional final text; frees cmd. */
void sb_cmd_done(struct sb_cmd *, int ok, const char *text);
void sb_cmd_donef(struct sb_cmd *, int ok, const char *fmt, ...) SB_PRINTF(3, 4);

/*
 * The dialplan's entry point: return 1 if it took the command (it then
 * calls sb_cmd_done, now or later), 0 if it has no such command.
 */
typedef int sb_dialplan_fn(struct sb_cmd *, void *ud);
void sb_dispatch_set_dialplan(sb_dialplan_fn *, void *ud);

/* Split text into words; "double quotes" group, backslash escapes inside
 * quotes.  Returns argc or -1 (unbalanced quote, too many words).  argv
 * receives pointers into a copy that *store owns (free it). */
int sb_tokenize(const char *text, char ***argv, char **store);

/* The built-in admin commands, for "help". */
struct sb_builtin {
	const char *words;	/* "core show nodes" */
	const char *usage;	/* "core show nodes" */
	const char *help;
	int level;
	void (*run)(struct sb_cmd *, int argc, char **argv);	/* args after words */
};
size_t sb_builtin_count(void);
const struct sb_builtin *sb_builtin_at(size_t);

#endif
