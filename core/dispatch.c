/*
 * dispatch.c: runs a message as a command.  It checks the sender against
 * the ACL, splits the line into words, and hands it to a built-in admin
 * command or to the dialplan; replies go back through the channel the
 * message came from.  It does not know any protocol or any command's
 * meaning.
 */
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "channel.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "util.h"

static sb_dialplan_fn *dialplan;
static void *dialplan_ud;

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
	char **argv = sb_calloc(SB_MAX_ARGS + 1, sizeof(*argv));
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
	free(cmd->line);
	free(cmd);
}

void
sb_cmd_done(struct sb_cmd *cmd, int ok, const char *text)
{
	if (cmd->done)
		return;
	send_reply(cmd, text, SB_REPLY_DONE | (ok ? 0 : SB_REPLY_FAIL));
	cmd->done = 1;
	cmd_free(cmd);
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
	int bestn = 0;

	for (size_t i = 0; i < sb_builtin_count(); i++) {
		const struct sb_builtin *b = sb_builtin_at(i);
		const char *w = b->words;
		int n = 0, match = 1;

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

static const char *
skip_words(const char *text, int n)
{
	const char *p = text;

	for (int i = 0; i < n; i++) {
		while (*p == ' ' || *p == '\t')
			p++;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Run cmd's line, which it owns (taken). */
static void
run(struct sb_cmd *cmd, char *line)
{
	const struct sb_builtin *b;
	int nwords;

	free(cmd->argv);
	free(cmd->store);
	free(cmd->line);
	cmd->argv = NULL;
	cmd->store = NULL;
	cmd->line = line;
	cmd->argc = sb_tokenize(line, &cmd->argv, &cmd->store);
	if (cmd->argc < 0) {
		sb_cmd_done(cmd, 0, "unbalanced quote or too many words");
		return;
	}
	cmd->rest = skip_words(line, 1);
	if (cmd->argc == 0) {
		sb_cmd_done(cmd, 1, NULL);
		return;
	}

	/* "as IDENTITY COMMAND...": an admin sees what another would get. */
	if (strcmp(cmd->argv[0], "as") == 0 && cmd->argc >= 3) {
		const char *role;
		int level;

		if (cmd->level < SB_LEVEL_ADMIN) {
			sb_cmd_done(cmd, 0, "permission denied: 'as' needs role admin");
			return;
		}
		if ((role = sb_acl_role(cmd->argv[1], &level)) == NULL) {
			sb_cmd_donef(cmd, 0, "%s is not authorized: it would be refused",
			    cmd->argv[1]);
			return;
		}
		free(cmd->identity);
		free(cmd->role);
		cmd->identity = sb_strdup(cmd->argv[1]);
		cmd->role = sb_strdup(role);
		cmd->level = level;
		run(cmd, sb_strdup(skip_words(line, 2)));
		return;
	}

	if ((b = find_builtin(cmd->argc, cmd->argv, &nwords)) != NULL) {
		if (cmd->level < b->level) {
			sb_cmd_donef(cmd, 0, "permission denied: '%s' needs role %s",
			    b->words, b->level >= SB_LEVEL_ADMIN ? "admin" :
			    b->level >= SB_LEVEL_OPERATOR ? "operator" : "viewer");
			return;
		}
		cmd->rest = skip_words(line, nwords);
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
	cmd = sb_calloc(1, sizeof(*cmd));
	cmd->msg = m;
	cmd->identity = sb_strdup(m->from);
	len = strlen(m->text);
	if (len > SB_MAX_LINE) {
		sb_notice("%s on %s: %zu-byte message refused", m->from, ch->name, len);
		sb_cmd_donef(cmd, 0, "message too long (%zu bytes; the limit is %d)",
		    len, SB_MAX_LINE);
		return;
	}
	if ((role = sb_acl_role(m->from, &level)) == NULL) {
		sb_notice("%s on %s: not authorized; refused \"%.60s\"", m->from,
		    ch->name, m->text);
		sb_cmd_done(cmd, 0, ch->silent_refusal ? NULL : "not authorized");
		return;
	}
	cmd->role = sb_strdup(role);
	cmd->level = level;
	text = sb_strdup(m->text);
	/* Chat clients add trailing newlines and carriage returns. */
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
	    text[len - 1] == ' '))
		text[--len] = '\0';
	sb_sanitize_line(text);
	sb_debug("%s (%s) on %s: %s", m->from, role, ch->name, text);
	run(cmd, text);
}
