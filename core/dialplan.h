/*
 * dialplan.h: the Lua dialplan: commands, status policy, routes and timers
 * written in scripts.  Loaded at boot, swapped atomically on reload.
 */
#ifndef SB_DIALPLAN_H
#define SB_DIALPLAN_H

#include <stddef.h>

/* Load the scripts named by the config; 0 or -1 with err. */
int  sb_dialplan_start(char *err, size_t errlen);
/* Load into a fresh state; replace the old one only if all went well. */
int  sb_dialplan_reload(char *err, size_t errlen);
void sb_dialplan_stop(void);
struct sb_node;
/* The presence a script maps a node to (presence(fn) in the dialplan):
 * show ("", "away", "dnd", "xa" or "unavailable") and status; -1 if no
 * script maps it (the channel's own mapping applies). */
int  sb_dialplan_presence(const struct sb_node *, char *show, size_t showlen,
                          char *status, size_t statuslen);
/* The commands a role level may run in a context: fn(pattern, help). */
typedef void sb_dialplan_cmd_fn(const char *pattern, const char *help, void *ud);
int  sb_dialplan_list(const char *context, int level, sb_dialplan_cmd_fn *, void *ud);
/* The commands who (borrowed) may run there, by role and rules (acl.h):
 * what help and ad-hoc lists show.  context NULL: who's channel's. */
struct sb_acl_who;
int  sb_dialplan_list_for(const struct sb_acl_who *who, const char *context,
                          sb_dialplan_cmd_fn *, void *ud);
/* Script files the running dialplan loaded. */
size_t sb_dialplan_files(void);

/*
 * Webhook handlers (the HTTP channel's handler = "lua:NAME"): run the
 * handler a script registered with webhook "NAME" (function ...).  push
 * pushes its two arguments, the payload and the request, onto the Lua
 * stack (it may raise Lua errors: it runs inside the protected call); ev
 * gets each event the handler returned (strings borrowed for the call).
 * Returns 0, or -1 with err (no dialplan, no such handler, a script error,
 * a result that is not a list of events): no event is to be used then.
 */
struct lua_State;
struct sb_dialplan_event {
	const char *node;	/* or NULL */
	const char *severity;	/* info, warning, critical */
	const char *text;
	const char *key;	/* or NULL */
	int         resolved;
};
typedef void sb_dialplan_push_fn(struct lua_State *, void *ud);
typedef void sb_dialplan_event_fn(void *ud, const struct sb_dialplan_event *);
int  sb_dialplan_webhook(const char *name, sb_dialplan_push_fn *push, void *pud,
                         sb_dialplan_event_fn *ev, void *eud, char *err, size_t errlen);

#endif
