/*
 * xmpp_adhoc.c: XEP-0050 ad-hoc commands generated from the dialplan.
 *
 * Each dialplan command the requester's role may run is listed under the
 * commands node; its node name is the command's leading words ("power").
 * Executing it returns a XEP-0004 form with one field per pattern argument
 * (a choice becomes a list), and submitting the form runs exactly the
 * command line that typing would, through the normal dispatcher: same ACL,
 * same replies.  A command that asks for confirmation shows a second form
 * step with a confirm checkbox, which runs "confirm <code>".
 *
 * Runs on the loop thread only; it owns the sessions in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "acl.h"
#include "channel.h"
#include "dialplan.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "util.h"
#include "xmpp_adhoc.h"

#define NS_COMMANDS "http://jabber.org/protocol/commands"
#define NS_DATA     "jabber:x:data"
#define MAX_SESSIONS 256

struct session {
	struct session *next;
	char   *id;		/* sessionid */
	char   *chan;
	char   *requester;	/* full JID */
	char   *node;		/* command node */
	char   *iq_id;		/* the iq waiting for the command's end */
	char   *from;		/* the JID we answer from */
	char   *code;		/* confirmation code, on the second step */
	struct sb_buf out;	/* replies so far */
	int     running;
};

static struct session *sessions;
static size_t nsessions;

void
xa_escape(struct sb_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': sb_buf_puts(b, "&lt;"); break;
		case '>': sb_buf_puts(b, "&gt;"); break;
		case '&': sb_buf_puts(b, "&amp;"); break;
		case '"': sb_buf_puts(b, "&quot;"); break;
		case '\'': sb_buf_puts(b, "&apos;"); break;
		default:
			/* XML 1.0 forbids most control characters. */
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				sb_buf_add(b, " ", 1);
			else
				sb_buf_add(b, s, 1);
		}
	}
}

void
xa_request_free(struct xa_request *r)
{
	if (r == NULL)
		return;
	free(r->from_full);
	free(r->from_bare);
	free(r->to);
	free(r->id);
	free(r->node);
	free(r->action);
	free(r->sessionid);
	for (size_t i = 0; i < r->nfields; i++) {
		free(r->vars[i]);
		free(r->vals[i]);
	}
	free(r->vars);
	free(r->vals);
	free(r);
}

static void
session_free(struct session *s)
{
	free(s->id);
	free(s->chan);
	free(s->requester);
	free(s->node);
	free(s->iq_id);
	free(s->from);
	free(s->code);
	sb_buf_free(&s->out);
	free(s);
}

static void
session_drop(struct session *s)
{
	for (struct session **p = &sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			nsessions--;
			session_free(s);
			return;
		}
}

void
xa_forget(const struct sb_channel *ch)
{
	struct session *s, *n;

	for (s = sessions; s; s = n) {
		n = s->next;
		if (strcmp(s->chan, ch->name) == 0)
			session_drop(s);
	}
}

static struct session *
session_find(const char *chan, const char *id, const char *requester)
{
	for (struct session *s = sessions; s; s = s->next)
		if (strcmp(s->chan, chan) == 0 && strcmp(s->id, id) == 0 &&
		    strcmp(s->requester, requester) == 0)
			return s;
	return NULL;
}

/* ---- patterns ---- */

struct arg {
	char    name[48];
	char    choices[256];	/* "on|off|cycle", or "" */
	int     optional, node, rest;
};

struct pattern {
	char    words[128];	/* the leading literal words: the command node */
	char    literal[16][48];	/* every literal in order, "" for an argument */
	struct arg args[16];
	int     nelem;		/* literal[] and args[] run in parallel */
};

/* Parse the dialplan's pattern syntax (doc/scripting.md). */
static int
parse_pattern(const char *pat, struct pattern *p)
{
	char *copy = sb_strdup(pat), *save = NULL, *tok;
	int leading = 1;

	memset(p, 0, sizeof(*p));
	for (tok = strtok_r(copy, " \t", &save); tok && p->nelem < 16;
	    tok = strtok_r(NULL, " \t", &save)) {
		struct arg *a = &p->args[p->nelem];
		size_t len = strlen(tok);
		char *colon, *inner = tok;

		if (tok[0] == '[' && tok[len - 1] == ']') {
			a->optional = 1;
			tok[len - 1] = '\0';
			inner = tok + 1;
			len -= 2;
		}
		if (inner[0] != '<') {
			sb_strlcpy(p->literal[p->nelem++], inner, sizeof(p->literal[0]));
			if (leading) {
				if (*p->words)
					sb_strlcpy(p->words + strlen(p->words), " ",
					    sizeof(p->words) - strlen(p->words));
				sb_strlcpy(p->words + strlen(p->words), inner,
				    sizeof(p->words) - strlen(p->words));
			}
			continue;
		}
		leading = 0;
		inner++;
		inner[strcspn(inner, ">")] = '\0';
		if ((len = strlen(inner)) > 3 && strcmp(inner + len - 3, "...") == 0) {
			inner[len - 3] = '\0';
			a->rest = 1;
		}
		if ((colon = strchr(inner, ':')) != NULL) {
			*colon++ = '\0';
			if (strcmp(colon, "rest") == 0)
				a->rest = 1;
			else if (strcmp(colon, "node") == 0)
				a->node = 1;
			else if (strcmp(colon, "word") != 0 && strcmp(colon, "number") != 0)
				sb_strlcpy(a->choices, colon, sizeof(a->choices));
		} else if (strcmp(inner, "node") == 0) {
			a->node = 1;
		}
		sb_strlcpy(a->name, inner, sizeof(a->name));
		p->nelem++;
	}
	free(copy);
	return *p->words ? 0 : -1;
}

struct find {
	const char *node;
	char   *pattern, *help;
	struct sb_buf *items;
	const char *jid;
};

static void
list_one(const char *pattern, const char *help, void *ud)
{
	struct find *f = ud;
	struct pattern p;

	if (parse_pattern(pattern, &p) < 0)
		return;
	if (f->items) {
		sb_buf_puts(f->items, "<item jid='");
		xa_escape(f->items, f->jid);
		sb_buf_puts(f->items, "' node='");
		xa_escape(f->items, p.words);
		sb_buf_puts(f->items, "' name='");
		xa_escape(f->items, *help ? help : pattern);
		sb_buf_puts(f->items, "'/>");
	} else if (f->pattern == NULL && strcmp(p.words, f->node) == 0) {
		f->pattern = sb_strdup(pattern);
		f->help = sb_strdup(help);
	}
}

/* ---- answers ---- */

static void
iq_start(struct sb_buf *b, const struct xa_request *r, const char *from, const char *type)
{
	sb_buf_printf(b, "<iq type='%s' id='", type);
	xa_escape(b, r->id);
	sb_buf_puts(b, "' to='");
	xa_escape(b, r->from_full);
	if (from) {
		sb_buf_puts(b, "' from='");
		xa_escape(b, from);
	}
	sb_buf_puts(b, "'>");
}

static void
send_error(const struct xa_request *r, const char *from, const char *type,
           const char *cond, const char *extra, xa_send_fn *send, void *ud)
{
	struct sb_buf b = { 0 };

	iq_start(&b, r, from, "error");
	sb_buf_printf(&b, "<error type='%s'><%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>%s"
	    "</error></iq>", type, cond, extra ? extra : "");
	send(ud, b.buf);
	sb_buf_free(&b);
}

static void
command_head(struct sb_buf *b, const char *node, const char *sid, const char *status)
{
	sb_buf_puts(b, "<command xmlns='" NS_COMMANDS "' node='");
	xa_escape(b, node);
	sb_buf_puts(b, "' sessionid='");
	xa_escape(b, sid);
	sb_buf_printf(b, "' status='%s'>", status);
}

static void
send_completed(struct session *s, int ok, const char *text, xa_send_fn *send, void *ud)
{
	struct sb_buf b = { 0 };

	sb_buf_puts(&b, "<iq type='result' id='");
	xa_escape(&b, s->iq_id);
	sb_buf_puts(&b, "' to='");
	xa_escape(&b, s->requester);
	sb_buf_puts(&b, "' from='");
	xa_escape(&b, s->from);
	sb_buf_puts(&b, "'>");
	command_head(&b, s->node, s->id, "completed");
	sb_buf_printf(&b, "<note type='%s'>", ok ? "info" : "error");
	xa_escape(&b, text && *text ? text : (ok ? "done" : "failed"));
	sb_buf_puts(&b, "</note></command></iq>");
	send(ud, b.buf);
	sb_buf_free(&b);
}

static void
send_form(const struct xa_request *r, const char *from, struct session *s,
          const struct pattern *p, const char *help, const char *implied,
          xa_send_fn *send, void *ud)
{
	struct sb_buf b = { 0 };

	iq_start(&b, r, from, "result");
	command_head(&b, s->node, s->id, "executing");
	sb_buf_puts(&b, "<actions execute='complete'><complete/></actions>"
	    "<x xmlns='" NS_DATA "' type='form'><title>");
	xa_escape(&b, p->words);
	sb_buf_puts(&b, "</title><instructions>");
	xa_escape(&b, help);
	sb_buf_puts(&b, "</instructions>");
	for (int i = 0; i < p->nelem; i++) {
		const struct arg *a = &p->args[i];

		if (*p->literal[i])
			continue;
		sb_buf_puts(&b, "<field var='");
		xa_escape(&b, a->name);
		sb_buf_puts(&b, "' label='");
		xa_escape(&b, a->name);
		sb_buf_printf(&b, "' type='%s'>", *a->choices ? "list-single" : "text-single");
		if (!a->optional && !(a->node && implied))
			sb_buf_puts(&b, "<required/>");
		if (a->node && implied) {
			sb_buf_puts(&b, "<value>");
			xa_escape(&b, implied);
			sb_buf_puts(&b, "</value>");
		}
		if (*a->choices) {
			char *c = sb_strdup(a->choices), *save = NULL;

			for (char *o = strtok_r(c, "|", &save); o; o = strtok_r(NULL, "|", &save)) {
				sb_buf_puts(&b, "<option label='");
				xa_escape(&b, o);
				sb_buf_puts(&b, "'><value>");
				xa_escape(&b, o);
				sb_buf_puts(&b, "</value></option>");
			}
			free(c);
		}
		sb_buf_puts(&b, "</field>");
	}
	sb_buf_puts(&b, "</x></command></iq>");
	send(ud, b.buf);
	sb_buf_free(&b);
}

static void
send_confirm_form(struct session *s, const char *text, xa_send_fn *send, void *ud)
{
	struct sb_buf b = { 0 };

	sb_buf_puts(&b, "<iq type='result' id='");
	xa_escape(&b, s->iq_id);
	sb_buf_puts(&b, "' to='");
	xa_escape(&b, s->requester);
	sb_buf_puts(&b, "' from='");
	xa_escape(&b, s->from);
	sb_buf_puts(&b, "'>");
	command_head(&b, s->node, s->id, "executing");
	sb_buf_puts(&b, "<actions execute='complete'><complete/></actions>"
	    "<x xmlns='" NS_DATA "' type='form'><title>Confirm</title><instructions>");
	xa_escape(&b, text);
	sb_buf_puts(&b, "</instructions><field var='confirm' type='boolean' label='Confirm'>"
	    "<required/><value>0</value></field></x></command></iq>");
	send(ud, b.buf);
	sb_buf_free(&b);
}

static const char *
field(const struct xa_request *r, const char *var)
{
	for (size_t i = 0; i < r->nfields; i++)
		if (strcmp(r->vars[i], var) == 0)
			return r->vals[i];
	return NULL;
}

static void
append_word(struct sb_buf *b, const char *v)
{
	sb_buf_puts(b, " ");
	if (*v && strpbrk(v, " \t\"\\") == NULL) {
		sb_buf_puts(b, v);
		return;
	}
	sb_buf_puts(b, "\"");
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			sb_buf_add(b, "\\", 1);
		sb_buf_add(b, v, 1);
	}
	sb_buf_puts(b, "\"");
}

static void
run_line(struct sb_channel *ch, struct session *s, const struct xa_request *r,
         const char *implied, const char *line)
{
	struct sb_msg *m;
	char *identity = sb_asprintf("xmpp:%s", r->from_bare);
	char *conv = sb_asprintf("adhoc:%s", s->id);

	free(s->iq_id);
	s->iq_id = sb_strdup(r->id);
	s->running = 1;
	s->out.len = 0;
	m = sb_msg_new(ch->name, identity, conv, line);
	if (implied)
		sb_msg_set_node(m, implied);
	sb_msg_set_session(m, r->from_bare);
	free(identity);
	free(conv);
	sb_dispatch(m);
}

static char *
new_sid(void)
{
	unsigned char raw[8];
	char out[17];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		memset(raw, 0x5a, sizeof(raw));
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return sb_strdup(out);
}

void
xa_handle(struct sb_channel *ch, const char *implied, const struct xa_request *r,
          xa_send_fn *send, void *ud)
{
	char *identity = sb_asprintf("xmpp:%s", r->from_bare);
	const char *from = r->to;
	struct find f = { 0 };
	struct session *s;
	struct pattern p;
	int level;

	if (sb_acl_role(identity, &level) == NULL) {
		sb_notice("xmpp %s: ad-hoc request from %s refused: not authorized",
		    ch->name, r->from_bare);
		free(identity);
		send_error(r, from, "auth", "forbidden", NULL, send, ud);
		return;
	}
	free(identity);
	if (r->list) {
		struct sb_buf b = { 0 };
		char *id = sb_asprintf("xmpp:%s", r->from_bare);
		/* Only what this sender may run, by role and rules. */
		struct sb_acl_who who = { .identity = id, .level = level, .channel = ch->name };

		iq_start(&b, r, from, "result");
		sb_buf_puts(&b, "<query xmlns='http://jabber.org/protocol/disco#items' node='" NS_COMMANDS "'>");
		f.items = &b;
		f.jid = r->to;
		sb_dialplan_list_for(&who, ch->context, list_one, &f);
		free(id);
		sb_buf_puts(&b, "</query></iq>");
		send(ud, b.buf);
		sb_buf_free(&b);
		return;
	}

	/* A step of a running session. */
	if (r->sessionid) {
		const char *c;

		if ((s = session_find(ch->name, r->sessionid, r->from_full)) == NULL) {
			send_error(r, from, "modify", "bad-request",
			    "<bad-sessionid xmlns='" NS_COMMANDS "'/>", send, ud);
			return;
		}
		if (s->running) {
			send_error(r, from, "wait", "resource-constraint", NULL, send, ud);
			return;
		}
		if (r->action && strcmp(r->action, "cancel") == 0) {
			struct sb_buf b = { 0 };

			iq_start(&b, r, from, "result");
			command_head(&b, s->node, s->id, "canceled");
			sb_buf_puts(&b, "</command></iq>");
			send(ud, b.buf);
			sb_buf_free(&b);
			session_drop(s);
			return;
		}
		if (s->code) {
			char *line;

			c = field(r, "confirm");
			if (c == NULL || (strcmp(c, "1") != 0 && strcmp(c, "true") != 0)) {
				free(s->iq_id);
				s->iq_id = sb_strdup(r->id);
				send_completed(s, 0, "not confirmed: nothing was done", send, ud);
				session_drop(s);
				return;
			}
			line = sb_asprintf("confirm %s", s->code);
			run_line(ch, s, r, implied, line);
			free(line);
			return;
		}
		f.node = s->node;
		sb_dialplan_list(ch->context, level, list_one, &f);
		if (f.pattern == NULL || parse_pattern(f.pattern, &p) < 0) {
			send_error(r, from, "cancel", "item-not-found", NULL, send, ud);
			session_drop(s);
		} else {
			struct sb_buf line = { 0 };

			for (int i = 0; i < p.nelem; i++) {
				const char *v;

				if (*p.literal[i]) {
					if (i)
						sb_buf_puts(&line, " ");
					sb_buf_puts(&line, p.literal[i]);
				} else if ((v = field(r, p.args[i].name)) != NULL && *v) {
					if (p.args[i].rest) {
						sb_buf_puts(&line, " ");
						sb_buf_puts(&line, v);
					} else {
						append_word(&line, v);
					}
				}
			}
			run_line(ch, s, r, implied, line.buf);
			sb_buf_free(&line);
		}
		free(f.pattern);
		free(f.help);
		return;
	}

	/* A new session: the command's form, or its result if it takes no
	 * arguments. */
	f.node = r->node ? r->node : "";
	sb_dialplan_list(ch->context, level, list_one, &f);
	if (f.pattern == NULL || parse_pattern(f.pattern, &p) < 0) {
		send_error(r, from, "cancel", "item-not-found", NULL, send, ud);
		goto out;
	}
	if (nsessions >= MAX_SESSIONS) {
		send_error(r, from, "wait", "resource-constraint", NULL, send, ud);
		goto out;
	}
	s = sb_calloc(1, sizeof(*s));
	s->id = new_sid();
	s->chan = sb_strdup(ch->name);
	s->requester = sb_strdup(r->from_full);
	s->node = sb_strdup(p.words);
	s->from = sb_strdup(from);
	s->iq_id = sb_strdup(r->id);
	s->next = sessions;
	sessions = s;
	nsessions++;
	{
		int has_args = 0;

		for (int i = 0; i < p.nelem; i++)
			has_args |= *p.literal[i] == '\0';
		if (has_args)
			send_form(r, from, s, &p, f.help, implied, send, ud);
		else
			run_line(ch, s, r, implied, p.words);
	}
out:
	free(f.pattern);
	free(f.help);
}

int
xa_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text, unsigned flags,
         xa_send_fn *send, void *ud)
{
	struct session *s;

	if (strncmp(req->conv, "adhoc:", 6) != 0)
		return 0;
	for (s = sessions; s; s = s->next)
		if (strcmp(s->chan, ch->name) == 0 && strcmp(s->id, req->conv + 6) == 0)
			break;
	if (s == NULL)
		return 1;	/* the session is gone; so is the answer */
	if (text && *text) {
		if (s->out.len)
			sb_buf_puts(&s->out, "\n");
		sb_buf_puts(&s->out, text);
	}
	if (!(flags & SB_REPLY_DONE))
		return 1;
	s->running = 0;
	if (req->confirm && !(flags & SB_REPLY_FAIL) && s->code == NULL) {
		s->code = sb_strdup(req->confirm);
		send_confirm_form(s, s->out.buf ? s->out.buf : "", send, ud);
		return 1;
	}
	send_completed(s, !(flags & SB_REPLY_FAIL), s->out.buf, send, ud);
	session_drop(s);
	return 1;
}
