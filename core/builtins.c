/*
 * builtins.c: the admin commands written in C: "core show nodes",
 * "core show channels", "module show", "core reload", "core stop" and the
 * simulator's "sim ...".  They work with no dialplan loaded, so an admin
 * can always see and steer the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "audit.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dialplan.h"
#include "dispatch.h"
#include "hal.h"
#include "loop.h"
#include "node.h"
#include "notify.h"
#include "util.h"

#define VERSION_STRING SB_VERSION

static void
show_nodes(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_buf b = { 0 };
	time_t now = time(NULL);

	(void)argc;
	(void)argv;
	if (sb_node_count() == 0) {
		sb_cmd_done(cmd, 1, "no nodes configured");
		return;
	}
	sb_buf_printf(&b, "%-16s %-9s %-8s %s", "NODE", "STATE", "SINCE", "REASON");
	for (size_t i = 0; i < sb_node_count(); i++) {
		struct sb_node *n = sb_node_at(i);
		char since[32];

		sb_fmt_duration(since, sizeof(since), (long long)(now - n->since));
		sb_buf_printf(&b, "\n%-16s %-9s %-8s %s", n->name, sb_state_name(n->state),
		    since, n->reason);
	}
	sb_cmd_done(cmd, 1, b.buf);
	sb_buf_free(&b);
}

static void
show_channels(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_buf b = { 0 };

	(void)argc;
	(void)argv;
	sb_buf_printf(&b, "%-12s %-8s %-8s %-10s %s", "CHANNEL", "DRIVER", "STATE",
	    "CONTEXT", "DETAIL");
	for (size_t i = 0; i < sb_channel_count(); i++) {
		struct sb_channel *ch = sb_channel_at(i);
		struct sb_buf d = { 0 };

		if (ch->drv->describe)
			ch->drv->describe(ch, &d);
		sb_buf_printf(&b, "\n%-12s %-8s %-8s %-10s %s", ch->name, ch->drv->name,
		    ch->started ? "up" : "stopped", ch->context, d.buf ? d.buf : "");
		sb_buf_free(&d);
	}
	sb_cmd_done(cmd, 1, b.buf);
	sb_buf_free(&b);
}

static void
module_show(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_buf b = { 0 };
	const struct sb_channel_driver *d;
	const struct sb_hal_backend *h;

	(void)argc;
	(void)argv;
	sb_buf_printf(&b, "%-8s %-8s %s", "KIND", "NAME", "ABI");
	for (size_t i = 0; (d = sb_channel_driver_at(i)) != NULL; i++)
		sb_buf_printf(&b, "\n%-8s %-8s %u", "channel", d->name, d->abi);
	for (size_t i = 0; (h = sb_hal_backend_at(i)) != NULL; i++)
		sb_buf_printf(&b, "\n%-8s %-8s %u", "hal", h->name, h->abi);
	sb_cmd_done(cmd, 1, b.buf);
	sb_buf_free(&b);
}

static void
reload_task(void *ud)
{
	struct sb_cmd *cmd = ud;
	char err[1024];

	if (sb_core.stopping)
		sb_cmd_done(cmd, 0, "not reloaded: the daemon is stopping");
	else if (sb_core_reload(err, sizeof(err)) < 0)
		sb_cmd_donef(cmd, 0, "reload failed, the running configuration stays: %s", err);
	else
		sb_cmd_done(cmd, 1, "configuration reloaded");
}

static void
core_reload(struct sb_cmd *cmd, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* A reload joins the threads of the channels it replaces: never from
	 * one of them (a chat command may run on its XMPP link's thread,
	 * sb_loop_try_run).  The loop thread runs it next. */
	if (sb_loop_elsewhere(sb_core.loop) && sb_loop_post(sb_core.loop, reload_task, cmd) == 0)
		return;
	reload_task(cmd);
}

static void
core_stop(struct sb_cmd *cmd, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	sb_cmd_done(cmd, 1, "stopping");
	sb_core_stop();
}

static void
core_version(struct sb_cmd *cmd, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	sb_cmd_done(cmd, 1, "switchboard " VERSION_STRING);
}

static void
dialplan_reload(struct sb_cmd *cmd, int argc, char **argv)
{
	char err[1024];

	(void)argc;
	(void)argv;
	if (sb_dialplan_reload(err, sizeof(err)) < 0)
		sb_cmd_donef(cmd, 0, "dialplan reload failed, the old dialplan stays: %s", err);
	else
		sb_cmd_donef(cmd, 1, "dialplan reloaded (%zu script files)", sb_dialplan_files());
}

/* "sim VERB NODE ARGS...": hand VERB ARGS to the node's backend. */
static void
sim(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_node *n;
	char out[1024] = "", *args[SB_MAX_ARGS];
	int rc;

	if (argc < 2) {
		sb_cmd_done(cmd, 0, "usage: sim set NODE SENSOR VALUE | sim power NODE on|off | "
		    "sim fail NODE on|off | sim show NODE");
		return;
	}
	if ((n = sb_node_find(argv[1])) == NULL) {
		sb_cmd_donef(cmd, 0, "no node \"%s\"", argv[1]);
		return;
	}
	if (n->hal->be->control == NULL) {
		sb_cmd_donef(cmd, 0, "node %s uses the %s backend, which takes no sim commands",
		    n->name, n->hal->be->name);
		return;
	}
	args[0] = argv[0];
	for (int i = 2; i < argc; i++)
		args[i - 1] = argv[i];
	rc = n->hal->be->control(n->hal, argc - 1, args, out, sizeof(out));
	if (rc == 0 && strcmp(argv[0], "show") != 0)
		sb_node_poll(n);	/* let the state follow now, not next tick */
	sb_cmd_done(cmd, rc == 0, out);
}

static const struct sb_builtin builtins[] = {
	{ "core show nodes", "core show nodes", "every node with its state, since when and why",
	  SB_LEVEL_ADMIN, show_nodes },
	{ "core show channels", "core show channels", "channel instances and their state",
	  SB_LEVEL_ADMIN, show_channels },
	{ "core show version", "core show version", "the daemon's version",
	  SB_LEVEL_ADMIN, core_version },
	{ "module show", "module show", "compiled-in channel drivers and HAL backends",
	  SB_LEVEL_ADMIN, module_show },
	{ "core reload", "core reload", "re-read the configuration (as SIGHUP does)",
	  SB_LEVEL_ADMIN, core_reload },
	{ "core stop", "core stop", "stop the daemon", SB_LEVEL_ADMIN, core_stop },
	{ "dialplan reload", "dialplan reload",
	  "load the scripts again; on any error the running dialplan stays",
	  SB_LEVEL_ADMIN, dialplan_reload },
	{ "sim", "sim set|power|fail|show NODE ...",
	  "change a simulated node: sensor values, power, failure", SB_LEVEL_ADMIN, sim },
	{ "audit", "audit [n] [node]",
	  "the newest n commands (default 20), or those touching a node: who, where, outcome",
	  SB_LEVEL_ADMIN, sb_audit_cmd },
};

/* Other modules' built-ins (NULL-terminated tables) follow ours. */


size_t
sb_builtin_count(void)
{
	size_t n = SB_ARRAY_LEN(builtins);

	for (const struct sb_builtin *b = sb_notify_builtin_table; b->words; b++)
		n++;
	for (const struct sb_builtin *b = sb_maint_builtin_table; b->words; b++)
		n++;
	return n;
}

const struct sb_builtin *
sb_builtin_at(size_t i)
{
	if (i < SB_ARRAY_LEN(builtins))
		return &builtins[i];
	i -= SB_ARRAY_LEN(builtins);
	for (const struct sb_builtin *b = sb_notify_builtin_table; b->words; b++)
		if (i-- == 0)
			return b;
	for (const struct sb_builtin *b = sb_maint_builtin_table; b->words; b++)
		if (i-- == 0)
			return b;
	return NULL;
}
