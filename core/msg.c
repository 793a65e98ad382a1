/*
 * msg.c: construction and reference counting of struct sb_msg.
 */
#include <stdlib.h>

#include "msg.h"
#include "util.h"

struct sb_msg *
sb_msg_new(const char *channel, const char *from, const char *conv, const char *text)
{
	struct sb_msg *m = sb_calloc(1, sizeof(*m));

	m->refs = 1;
	m->kind = SB_MSG_DIRECT;
	m->channel = sb_strdup(channel);
	m->from = sb_strdup(from);
	m->conv = sb_strdup(conv);
	m->text = sb_strdup(text);
	return m;
}

void
sb_msg_set_thread(struct sb_msg *m, const char *thread)
{
	free(m->thread);
	m->thread = sb_strdup(thread);
}

void
sb_msg_set_node(struct sb_msg *m, const char *node)
{
	free(m->node);
	m->node = sb_strdup(node);
}

void
sb_msg_set_session(struct sb_msg *m, const char *session)
{
	free(m->session);
	m->session = sb_strdup(session);
}

void
sb_msg_set_confirm(struct sb_msg *m, const char *code)
{
	free(m->confirm);
	m->confirm = sb_strdup(code);
}

struct sb_msg *
sb_msg_ref(struct sb_msg *m)
{
	m->refs++;
	return m;
}

void
sb_msg_unref(struct sb_msg *m)
{
	if (m == NULL || --m->refs > 0)
		return;
	free(m->channel);
	free(m->from);
	free(m->conv);
	free(m->thread);
	free(m->session);
	free(m->node);
	free(m->text);
	free(m->confirm);
	free(m);
}
