/*
 * dispatch.c: runs a message as a command.  It checks the sender against
 * the ACL and the rate limit, splits the line into words, and hands it to
 * a built-in admin command (after the rules) or to the dialplan (whose
 * prelude checks the rules once the arguments are known); replies go back
 * through the channel the message came from.  Every command ends in
 * sb_cmd_done, which counts it and writes it to the audit log.  It does
 * not know any protocol or any command's meaning.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "audit.h"
#include "channel.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "store.h"
#include "util.h"

static sb_dialplan_fn *dialplan;
static void *dialplan_ud;
static struct sb_dispatch_stats stats;
/* A freed command kept for the next: most end before the next arrives. */
static struct sb_cmd *spare;

void
sb_dispatch_stats(struct sb_dispatch_stats *out)
{
	*out = stats;
}

void
sb_dispatch_set_dialplan(sb_dialplan_fn *fn, void *ud)
{
	dialplan = fn;
	dialplan_ud = ud;
}

int
sb_tokenize(const char *text, char ***argvp, char **storep)
{
	size_t len = strlen(text);
	char *store = sb_malloc(len + 1), *o = store;
	/* A word takes a byte and a blank at least: room for them all and
	 * the NULL, not for SB_MAX_ARGS when the line is short. */
	size_t max = (len + 1) / 2 < SB_MAX_ARGS ? (len + 1) / 2 + 1 : SB_MAX_ARGS + 1;
	char **argv = sb_malloc(max * sizeof(*argv));
	const char *p = text;
	int argc = 0;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (argc == SB_MAX_ARGS)
			goto fail;
		argv[argc++] = o;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p != '"') {
				*o++ = *p++;
				continue;
			}
			for (p++; *p != '"'; p++) {
				if (*p == '\0')
					goto fail;
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				*o++ = *p;
			}
			p++;
		}
		*o++ = '\0';
	}
	argv[argc] = NULL;
	*argvp = argv;
	*storep = store;
	return argc;
fail:
	free(argv);
	free(store);
	return -1;
}

static void
send_reply(struct sb_cmd *cmd, const char *text, unsigned flags)
{
	struct sb_channel *ch = sb_channel_find(cmd->msg->channel);

	/* The channel may have gone away (reload) while the command ran. */
	if (ch == NULL || !ch->started || ch->drv->reply == NULL) {
		sb_debug("reply for %s dropped: channel %s is gone",
		    cmd->msg->from, cmd->msg->channel);
		return;
	}
	if (ch->drv->reply(ch, cmd->msg, text, flags) < 0)
		sb_warnx("%s: reply to %s failed", ch->name, cmd->msg->from);
	else if (text)
		ch->msgs_out++;
}

void
sb_cmd_reply(struct sb_cmd *cmd, const char *text)
{
	if (!cmd->done)
		send_reply(cmd, text, 0);
}

void
sb_cmd_replyf(struct sb_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = sb_vasprintf(fmt, ap);
	va_end(ap);
	sb_cmd_reply(cmd, s);
	free(s);
}

static void
cmd_free(struct sb_cmd *cmd)
{
	sb_msg_unref(cmd->msg);
	free(cmd->identity);
	free(cmd->role);
	free(cmd->argv);
	free(cmd->store);
	if (cmd->line != cmd->heard)
		free(cmd->line);
	free(cmd->channel);
	free(cmd->room);
	free(cmd->heard);
	free(cmd->nodes);
	if (spare == NULL)
		spare = cmd;
	else
		free(cmd);
}

void
sb_cmd_set_nodes(struct sb_cmd *cmd, const char *nodes)
{
	free(cmd->nodes);
	cmd->nodes = sb_strdup(nodes);
}

/* Count cmd and write it to the audit log as it ends. */
static void
record(struct sb_cmd *cmd, int ok, const char *text)
{
	struct sb_audit_rec r = { 0 };
	const char *outcome = cmd->outcome;
	char detail[256];

	if (outcome == NULL)
		outcome = !ok ? "failed" : cmd->msg->confirm ? "confirm" : "ok";
	if (strcmp(outcome, "ok") == 0 || strcmp(outcome, "confirm") == 0)
		stats.ok++;
	else if (strcmp(outcome, "failed") == 0)
		stats.failed++;
	else {
		stats.refused++;
		if (strcmp(outcome, "rate-limited") == 0)
			stats.rate_limited++;
	}
	if (cmd->heard == NULL || *cmd->heard == '\0')
		return;		/* an empty line is no command */
	r.identity = cmd->identity;
	r.role = cmd->role;
	r.channel = cmd->channel ? cmd->channel : cmd->msg->channel;
	r.conv = cmd->room ? cmd->room : cmd->msg->conv;
	r.kind = cmd->group ? "group" : "direct";
	r.line = cmd->heard;
	r.node = cmd->nodes ? cmd->nodes : cmd->msg->node;
	r.outcome = outcome;
	if (!ok && text) {
		snprintf(detail, sizeof(detail), "%.*s", (int)strcspn(text, "\n"), text);
		r.detail = detail;
	}
	sb_audit_add(&r);
}

struct deferred {
	struct sb_cmd *cmd;
	int     ok;
	char   *text;
};

/* The commit a command's final answer waited for is done (or failed). */
static void
answer_after_commit(void *ud, int committed)
{
	struct deferred *d = ud;
	char *text = d->text;

	if (!committed) {
		text = sb_asprintf("%s%s(warning: the store could not save this; what it "
		    "accepted is kept in memory only)", d->text ? d->text : "",
		    d->text ? "\n" : "");
		free(d->text);
	}
	send_reply(d->cmd, text, SB_REPLY_DONE | (d->ok ? 0 : SB_REPLY_FAIL));
	cmd_free(d->cmd);
	free(text);
	free(d);
}

void
sb_cmd_done(struct sb_cmd *cmd, int ok, const char *text)
{
	if (cmd->done)
		return;
	cmd->done = 1;
	/* A command that made a promise (notify() accepted an event) says it
	 * is done only once that is on disk: a crash in between must not
	 * lose what the operator was told was accepted. */
	if (sb_store_has_urgent()) {
		struct deferred *d = sb_calloc(1, sizeof(*d));

		record(cmd, ok, text);
		d->cmd = cmd;
		d->ok = ok;
		d->text = sb_strdup(text);
		sb_store_when_committed(answer_after_commit, d);
		return;
	}
	/* The answer first, then its audit row (committed lazily, within
	 * 100 ms, like every row nobody waits for): the insert is off the
	 * reply's path, and the channel's thread sends while it runs. */
	send_reply(cmd, text, SB_REPLY_DONE | (ok ? 0 : SB_REPLY_FAIL));
	record(cmd, ok, text);
	cmd_free(cmd);
}

void
sb_cmd_who(const struct sb_cmd *cmd, struct sb_acl_who *who)
{
	who->identity = cmd->identity;
	who->level = cmd->level;
	who->channel = cmd->channel ? cmd->channel : cmd->msg->channel;
	who->group = cmd->group;
	who->room = cmd->room;
}

int
sb_cmd_allowed(struct sb_cmd *cmd, const char *command, const char *const *nodes, size_t n,
               int own_level, const char *own_role, const char *what, char *msg,
               size_t msglen)
{
	struct sb_acl_verdict v;
	struct sb_acl_who who;

	sb_cmd_who(cmd, &who);
	switch (sb_acl_check(&who, command, nodes, n, own_level, own_role, &v)) {
	case SB_ACL_ALLOW:
		return 0;
	case SB_ACL_DENY:
		sb_notice("%s (%s) on %s%s%s: '%s' denied by the rule at %s", cmd->identity,
		    cmd->role, who.channel, who.room ? " in " : "", who.room ? who.room : "",
		    cmd->line, v.rule);
		snprintf(msg, msglen, "permission denied: a rule forbids '%s' here (%s%s%s on %s)",
		    command, who.group ? "group chat" : "direct messages",
		    who.room ? " in " : "", who.room ? who.room : "", who.channel);
		cmd->outcome = "denied";
		return -1;
	default:
		sb_notice("%s (%s) refused '%s': needs %s%s%s", cmd->identity, cmd->role,
		    cmd->line, v.role, v.rule ? ", by the rule at " : "", v.rule ? v.rule : "");
		if (own_role)
			snprintf(msg, msglen, "permission denied: '%s' needs role %s (you are %s)",
			    what, v.role, cmd->role);
		else
			snprintf(msg, msglen, "permission denied: '%s' needs role %s", what, v.role);
		cmd->outcome = "refused";
		return -1;
	}
}

void
sb_cmd_donef(struct sb_cmd *cmd, int ok, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = sb_vasprintf(fmt, ap);
	va_end(ap);
	sb_cmd_done(cmd, ok, s);
	free(s);
}

/* The built-in whose words start argv; the longest match wins. */
static const struct sb_builtin *
find_builtin(int argc, char **argv, int *nwords)
{
	const struct sb_builtin *best = NULL;
	size_t count = sb_builtin_count(), len0 = strlen(argv[0]);
	int bestn = 0;

	for (size_t i = 0; i < count; i++) {
		const struct sb_builtin *b = sb_builtin_at(i);
		const char *w = b->words;
		int n = 0, match = 1;

		/* Every line is looked up here before the dialplan runs it, and
		 * most match no built-in: reject on the first word cheaply. */
		if (w[0] != argv[0][0] || strncmp(w, argv[0], len0) != 0 ||
		    (w[len0] != ' ' && w[len0] != '\0'))
			continue;
		while (match && *w) {
			size_t len = strcspn(w, " ");

			match = n < argc && strlen(argv[n]) == len &&
			    strncmp(argv[n], w, len) == 0;
			n++;
			w += len;
			w += strspn(w, " ");
		}
		if (match && n > bestn) {
			best = b;
			bestn = n;
		}
	}
	*nwords = bestn;
	return best;
}

/* "as IDENTITY [on CHANNEL] [in ROOM|direct] COMMAND...": an admin sees
 * what another would get, there.  Returns how many words it took before
 * the command, or -1 (cmd is done). */
static int
as_prefix(struct sb_cmd *cmd)
{
	const char *role;
	int level, i = 2;

	if (cmd->level < SB_LEVEL_ADMIN) {
		cmd->outcome = "refused";
		sb_cmd_done(cmd, 0, "permission denied: 'as' needs role admin");
		return -1;
	}
	if ((role = sb_acl_role(cmd->argv[1], &level)) == NULL) {
		sb_cmd_donef(cmd, 0, "%s is not authorized: it would be refused", cmd->argv[1]);
		return -1;
	}
	while (i + 2 < cmd->argc) {
		if (strcmp(cmd->argv[i], "on") == 0) {
			free(cmd->channel);
			cmd->channel = sb_strdup(cmd->argv[i + 1]);
		} else if (strcmp(cmd->argv[i], "in") == 0) {
			free(cmd->room);
			cmd->room = NULL;
			cmd->group = strcmp(cmd->argv[i + 1], "direct") != 0;
			if (cmd->group)
				cmd->room = sb_strdup(cmd->argv[i + 1]);
		} else
			break;
		i += 2;
	}
	free(cmd->identity);
	free(cmd->role);
	cmd->identity = sb_strdup(cmd->argv[1]);
	cmd->role = sb_strdup(role);
	cmd->level = level;
	return i;
}

static double
monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spend a token of cmd's identity; 0 to go on, -1 if cmd was refused. */
static int
rate_check(struct sb_cmd *cmd)
{
	double wait, rate;
	int burst;

	cmd->rated = 1;
	switch (sb_acl_rate(cmd->identity, monotonic(), &wait)) {
	case SB_RATE_OK:
		return 0;
	case SB_RATE_NOTICE:
		sb_acl_rate_get(&rate, &burst);
		sb_notice("%s on %s: over the rate limit; its commands are refused for %.0f s",
		    cmd->identity, cmd->msg->channel, wait);
		cmd->outcome = "rate-limited";
		sb_cmd_donef(cmd, 0, "rate limit: %d commands in %.0f s; wait %.0f s", burst,
		    burst / rate, wait < 1 ? 1 : wait);
		return -1;
	default:
		sb_debug("%s on %s: still over the rate limit; refused \"%.60s\"", cmd->identity,
		    cmd->msg->channel, cmd->line);
		cmd->outcome = "rate-limited";
		sb_cmd_done(cmd, 0, NULL);
		return -1;
	}
}

/* Run cmd's line, which it owns (taken). */
static void
run(struct sb_cmd *cmd, char *line)
{
	const struct sb_builtin *b;
	char msg[512];
	int nwords;

	free(cmd->argv);
	free(cmd->store);
	if (cmd->line != cmd->heard)
		free(cmd->line);
	cmd->argv = NULL;
	cmd->store = NULL;
	cmd->line = line;
	cmd->argc = sb_tokenize(line, &cmd->argv, &cmd->store);
	if (cmd->argc < 0) {
		sb_cmd_done(cmd, 0, "unbalanced quote or too many words");
		return;
	}
	cmd->rest = sb_skip_words(line, 1);
	if (cmd->argc == 0) {
		sb_cmd_done(cmd, 1, NULL);
		return;
	}

	if (strcmp(cmd->argv[0], "as") == 0 && cmd->argc >= 3) {
		int skip = as_prefix(cmd);

		if (skip > 0)
			run(cmd, sb_strdup(sb_skip_words(line, skip)));
		return;
	}
	/* The identity is final now ("as" names another): count it. */
	if (!cmd->rated && rate_check(cmd) < 0)
		return;

	if ((b = find_builtin(cmd->argc, cmd->argv, &nwords)) != NULL) {
		const char *node = cmd->msg->node;

		if (sb_cmd_allowed(cmd, b->words, node ? &node : NULL, node ? 1 : 0, b->level,
		    NULL, b->words, msg, sizeof(msg)) < 0) {
			sb_cmd_done(cmd, 0, msg);
			return;
		}
		cmd->rest = sb_skip_words(line, nwords);
		b->run(cmd, cmd->argc - nwords, cmd->argv + nwords);
		return;
	}
	if (dialplan && dialplan(cmd, dialplan_ud))
		return;
	sb_cmd_donef(cmd, 0, "unknown command '%s'; try 'help'", cmd->argv[0]);
}

void
sb_dispatch(struct sb_msg *m)
{
	struct sb_channel *ch = sb_channel_find(m->channel);
	struct sb_cmd *cmd;
	const char *role;
	char *text;
	size_t len;
	int level;

	if (ch == NULL) {
		sb_warnx("message from %s on unknown channel %s dropped", m->from, m->channel);
		sb_msg_unref(m);
		return;
	}
	ch->msgs_in++;
	if ((cmd = spare) != NULL) {
		spare = NULL;
		memset(cmd, 0, sizeof(*cmd));
	} else
		cmd = sb_calloc(1, sizeof(*cmd));
	cmd->msg = m;
	cmd->identity = sb_strdup(m->from);
	cmd->group = m->kind == SB_MSG_GROUP;
	cmd->room = cmd->group ? sb_strdup(m->conv) : NULL;
	len = strlen(m->text);
	if (len > SB_MAX_LINE) {
		sb_notice("%s on %s: %zu-byte message refused", m->from, ch->name, len);
		cmd->heard = sb_asprintf("%.200s...", m->text);
		sb_sanitize_line(cmd->heard);
		cmd->outcome = "refused";
		sb_cmd_donef(cmd, 0, "message too long (%zu bytes; the limit is %d)",
		    len, SB_MAX_LINE);
		return;
	}
	text = sb_strdup(m->text);
	/* Chat clients add trailing newlines and carriage returns. */
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
	    text[len - 1] == ' '))
		text[--len] = '\0';
	sb_sanitize_line(text);
	cmd->heard = text;	/* the line, until "as" makes another: one copy */
	if ((role = sb_acl_role(m->from, &level)) == NULL) {
		sb_notice("%s on %s: not authorized; refused \"%.60s\"", m->from,
		    ch->name, m->text);
		cmd->outcome = "refused";
		sb_cmd_done(cmd, 0, ch->silent_refusal ? NULL : "not authorized");
		return;
	}
	cmd->role = sb_strdup(role);
	cmd->level = level;
	sb_debug("%s (%s) on %s: %s", m->from, role, ch->name, text);
	run(cmd, text);
}
