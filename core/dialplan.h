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
/* Script files the running dialplan loaded. */
size_t sb_dialplan_files(void);

#endif
