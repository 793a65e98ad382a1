/*
 * maint.c: silences and maintenance windows, and their commands.
 *
 * A silence mutes a node's notifications for a while; a maintenance window
 * also puts the node in state maint (xa presence, the reason as status),
 * now ("maint web on") or scheduled ("maint web at 22:00 for 2h").  Both
 * live in the store, so they outlast a restart.  notify.c asks
 * sb_notify_muted() of every event; node.c asks sb_notify_in_maint() after
 * every poll.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "core.h"
#include "dispatch.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "notify.h"
#include "store.h"
#include "util.h"

struct silence {
	int64_t id;
	char   *pattern, *reason, *by;
	time_t  until;
	struct silence *next;
};

struct window {
	int64_t id;
	char   *node, *reason, *by;
	time_t  start, until;	/* until 0: until "maint off" */
	struct window *next;
};

static struct silence *silences;
static struct window *windows;
static struct sb_timer *maint_timer;
static sqlite3_stmt *s_si_ins, *s_si_del, *s_mw_ins, *s_mw_del;

static void maint_rearm(void);

static void
fmt_time(char *out, size_t len, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M", &tm);
}

int
sb_notify_muted(const char *node)
{
	time_t now = time(NULL);

	if (node == NULL)
		return 0;
	for (struct silence *s = silences; s; s = s->next)
		if (s->until > now && sb_glob(s->pattern, node))
			return 1;
	return sb_notify_in_maint(node, NULL);
}

static void
cmd_silence(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_buf b = { 0 };
	struct silence *s;
	long long secs;
	time_t now = time(NULL);
	const char *reason;
	char until[32];

	if (argc == 0) {
		for (s = silences; s; s = s->next)
			if (s->until > now) {
				fmt_time(until, sizeof(until), s->until);
				sb_buf_printf(&b, "%s%s until %s (by %s)%s%s", b.len ? "\n" : "",
				    s->pattern, until, s->by, *s->reason ? ": " : "", s->reason);
			}
		sb_cmd_done(cmd, 1, b.len ? b.buf : "no silences");
		sb_buf_free(&b);
		return;
	}
	if (argc < 2 || sb_parse_duration(argv[1], &secs) < 0 || secs == 0) {
		sb_cmd_done(cmd, 0, "usage: silence <node|pattern> <duration: 30m, 2h, 1d> [reason]");
		return;
	}
	reason = sb_skip_words(cmd->rest, 2);
	s = sb_calloc(1, sizeof(*s));
	s->pattern = sb_strdup(argv[0]);
	s->reason = sb_strdup(reason);
	s->by = sb_strdup(cmd->identity);
	s->until = now + (time_t)secs;
	if (sb_store_begin() == 0 && sb_store_stmt(&s_si_ins, "INSERT INTO silences "
	    "(pattern, until, reason, by, created) VALUES (?, ?, ?, ?, ?)")) {
		sqlite3_bind_text(s_si_ins, 1, s->pattern, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s_si_ins, 2, (sqlite3_int64)s->until);
		sqlite3_bind_text(s_si_ins, 3, s->reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(s_si_ins, 4, s->by, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s_si_ins, 5, (sqlite3_int64)now);
		sb_store_exec(s_si_ins);
		s->id = sqlite3_last_insert_rowid(sb_store_db());
	}
	s->next = silences;
	silences = s;
	fmt_time(until, sizeof(until), s->until);
	sb_notice("%s silenced %s until %s%s%s", s->by, s->pattern, until,
	    *s->reason ? ": " : "", s->reason);
	sb_cmd_donef(cmd, 1, "%s silenced until %s", s->pattern, until);
}

static void
silence_free(struct silence *s)
{
	free(s->pattern);
	free(s->reason);
	free(s->by);
	free(s);
}

static void
cmd_unsilence(struct sb_cmd *cmd, int argc, char **argv)
{
	struct silence **pp = &silences;
	int n = 0;

	if (argc != 1) {
		sb_cmd_done(cmd, 0, "usage: unsilence <node|pattern>");
		return;
	}
	while (*pp) {
		struct silence *s = *pp;

		if (strcmp(s->pattern, argv[0]) == 0 || (strcmp(argv[0], "all") == 0)) {
			*pp = s->next;
			if (s->id && sb_store_begin() == 0 && sb_store_stmt(&s_si_del,
			    "DELETE FROM silences WHERE id = ?")) {
				sqlite3_bind_int64(s_si_del, 1, s->id);
				sb_store_exec(s_si_del);
			}
			silence_free(s);
			n++;
		} else
			pp = &s->next;
	}
	sb_notify_unmute();
	if (n == 0)
		sb_cmd_donef(cmd, 0, "no silence for %s; 'silence' lists them", argv[0]);
	else
		sb_cmd_donef(cmd, 1, "%s: %d silence%s lifted", argv[0], n, n == 1 ? "" : "s");
}


int
sb_notify_in_maint(const char *node, const char **reason)
{
	time_t now = time(NULL);

	for (struct window *w = windows; w; w = w->next)
		if (w->start <= now && (w->until == 0 || now < w->until) &&
		    sb_glob(w->node, node)) {
			if (reason)
				*reason = w->reason;
			return 1;
		}
	return 0;
}

/* Put every node in line with the windows: enter or leave maint now. */
void
sb_maint_apply(void)
{
	for (size_t i = 0; i < sb_node_count(); i++) {
		struct sb_node *n = sb_node_at(i);
		const char *why;

		if (sb_notify_in_maint(n->name, &why)) {
			char reason[256];

			snprintf(reason, sizeof(reason), "maintenance%s%s", *why ? ": " : "", why);
			sb_node_set_state(n, SB_ST_MAINT, reason);
		} else if (n->state == SB_ST_MAINT && !n->polling) {
			sb_node_poll(n);
		}
	}
	sb_notify_unmute();
}

static long
maint_tick(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	(void)loop;
	(void)t;
	(void)ud;
	maint_timer = NULL;
	sb_maint_apply();
	maint_rearm();
	return SB_TIMER_STOP;
}

static void
maint_rearm(void)
{
	time_t now = time(NULL), at = 0;
	struct window **pp = &windows;

	/* Windows that are over go. */
	while (*pp) {
		struct window *w = *pp;

		if (w->until && w->until <= now) {
			*pp = w->next;
			if (sb_store_begin() == 0 && sb_store_stmt(&s_mw_del,
			    "DELETE FROM maint WHERE id = ?")) {
				sqlite3_bind_int64(s_mw_del, 1, w->id);
				sb_store_exec(s_mw_del);
			}
			free(w->node);
			free(w->reason);
			free(w->by);
			free(w);
			continue;
		}
		if (w->start > now && (at == 0 || w->start < at))
			at = w->start;
		if (w->until > now && (at == 0 || w->until < at))
			at = w->until;
		pp = &w->next;
	}
	if (maint_timer)
		sb_loop_del_timer(sb_core.loop, maint_timer);
	maint_timer = NULL;
	if (at && sb_core.loop)
		maint_timer = sb_loop_add_timer(sb_core.loop, (long)(at - now) * 1000 + 10,
		    maint_tick, NULL);
}

static struct window *
window_add(const char *node, time_t start, time_t until, const char *reason, const char *by)
{
	struct window *w = sb_calloc(1, sizeof(*w));

	w->node = sb_strdup(node);
	w->reason = sb_strdup(reason);
	w->by = sb_strdup(by);
	w->start = start;
	w->until = until;
	if (sb_store_begin() == 0 && sb_store_stmt(&s_mw_ins, "INSERT INTO maint "
	    "(node, start, until, reason, by) VALUES (?, ?, ?, ?, ?)")) {
		sqlite3_bind_text(s_mw_ins, 1, w->node, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s_mw_ins, 2, (sqlite3_int64)start);
		if (until)
			sqlite3_bind_int64(s_mw_ins, 3, (sqlite3_int64)until);
		else
			sqlite3_bind_null(s_mw_ins, 3);
		sqlite3_bind_text(s_mw_ins, 4, w->reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(s_mw_ins, 5, w->by, -1, SQLITE_STATIC);
		sb_store_exec(s_mw_ins);
		w->id = sqlite3_last_insert_rowid(sb_store_db());
	}
	w->next = windows;
	windows = w;
	return w;
}

/* "14:00" (next occurrence), "2026-12-01T14:00", "+2h". */
static int
parse_when(const char *s, time_t *out)
{
	time_t now = time(NULL);
	struct tm tm;
	long long secs;
	int h, m, n = 0;

	if (*s == '+') {
		if (sb_parse_duration(s + 1, &secs) < 0)
			return -1;
		*out = now + (time_t)secs;
		return 0;
	}
	localtime_r(&now, &tm);
	if (sscanf(s, "%d:%d%n", &h, &m, &n) == 2 && s[n] == '\0') {
		if (h < 0 || h > 23 || m < 0 || m > 59)
			return -1;
		tm.tm_hour = h;
		tm.tm_min = m;
		tm.tm_sec = 0;
		tm.tm_isdst = -1;
		*out = mktime(&tm);
		if (*out <= now)
			*out += 86400;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	n = 0;
	if (sscanf(s, "%d-%d-%dT%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &h, &m, &n) == 5 &&
	    s[n] == '\0') {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		tm.tm_hour = h;
		tm.tm_min = m;
		tm.tm_isdst = -1;
		*out = mktime(&tm);
		return *out == (time_t)-1 ? -1 : 0;
	}
	return -1;
}

static int
nodes_matching(const char *pat)
{
	int n = 0;

	for (size_t i = 0; i < sb_node_count(); i++)
		n += sb_glob(pat, sb_node_at(i)->name) != 0;
	return n;
}

static void
cmd_maint(struct sb_cmd *cmd, int argc, char **argv)
{
	static const char usage[] = "usage: maint <node> on|off [reason] | "
	    "maint <node> at <14:00|2026-12-01T14:00|+2h> for <duration> [reason] | maint";
	const char *reason;
	time_t start, until;
	long long secs;
	char a[32], b2[32];

	if (argc == 0) {
		struct sb_buf b = { 0 };
		time_t now = time(NULL);

		maint_rearm();		/* drops the windows that are over */
		for (struct window *w = windows; w; w = w->next) {
			fmt_time(a, sizeof(a), w->start);
			fmt_time(b2, sizeof(b2), w->until);
			sb_buf_printf(&b, "%s%s %s %s%s%s (by %s)%s%s", b.len ? "\n" : "", w->node,
			    w->start <= now ? "in maintenance since" : "scheduled from", a,
			    w->until ? " until " : "", w->until ? b2 : "", w->by,
			    *w->reason ? ": " : "", w->reason);
		}
		sb_cmd_done(cmd, 1, b.len ? b.buf : "no maintenance windows");
		sb_buf_free(&b);
		return;
	}
	if (argc < 2) {
		sb_cmd_done(cmd, 0, usage);
		return;
	}
	if (nodes_matching(argv[0]) == 0) {
		sb_cmd_donef(cmd, 0, "no node matches '%s'; try 'nodes'", argv[0]);
		return;
	}
	if (strcmp(argv[1], "off") == 0) {
		struct window **pp = &windows;
		int n = 0;

		while (*pp) {
			struct window *w = *pp;

			if (strcmp(w->node, argv[0]) == 0 || sb_glob(argv[0], w->node)) {
				*pp = w->next;
				if (sb_store_begin() == 0 && sb_store_stmt(&s_mw_del,
				    "DELETE FROM maint WHERE id = ?")) {
					sqlite3_bind_int64(s_mw_del, 1, w->id);
					sb_store_exec(s_mw_del);
				}
				free(w->node);
				free(w->reason);
				free(w->by);
				free(w);
				n++;
			} else
				pp = &w->next;
		}
		sb_maint_apply();
		maint_rearm();
		sb_notice("%s ended maintenance of %s", cmd->identity, argv[0]);
		sb_cmd_donef(cmd, n > 0, n ? "%s: maintenance over (%d window%s removed); "
		    "polling again" : "%s was not in maintenance", argv[0], n, n == 1 ? "" : "s");
		return;
	}
	if (strcmp(argv[1], "on") == 0) {
		reason = sb_skip_words(cmd->rest, 2);
		window_add(argv[0], time(NULL), 0, reason, cmd->identity);
		sb_maint_apply();
		maint_rearm();
		sb_notice("%s put %s in maintenance%s%s", cmd->identity, argv[0],
		    *reason ? ": " : "", reason);
		sb_cmd_donef(cmd, 1, "%s in maintenance until 'maint %s off'; its notifications "
		    "are muted", argv[0], argv[0]);
		return;
	}
	if (strcmp(argv[1], "at") == 0 && argc >= 5 && strcmp(argv[3], "for") == 0) {
		if (parse_when(argv[2], &start) < 0) {
			sb_cmd_donef(cmd, 0, "bad time '%s' (14:00, 2026-12-01T14:00 or +2h)", argv[2]);
			return;
		}
		if (sb_parse_duration(argv[4], &secs) < 0 || secs == 0) {
			sb_cmd_donef(cmd, 0, "bad duration '%s' (30m, 2h, 1d, 1h30m)", argv[4]);
			return;
		}
		until = start + (time_t)secs;
		reason = sb_skip_words(cmd->rest, 5);
		window_add(argv[0], start, until, reason, cmd->identity);
		sb_maint_apply();
		maint_rearm();
		fmt_time(a, sizeof(a), start);
		fmt_time(b2, sizeof(b2), until);
		sb_notice("%s scheduled maintenance of %s from %s to %s", cmd->identity,
		    argv[0], a, b2);
		sb_cmd_donef(cmd, 1, "%s: maintenance from %s to %s", argv[0], a, b2);
		return;
	}
	sb_cmd_done(cmd, 0, usage);
}


static const struct sb_builtin builtins[] = {
	{ "silence", "silence [<node|pattern> <duration> [reason]]",
	  "mute a node's notifications for a while; alone: list silences",
	  SB_LEVEL_OPERATOR, cmd_silence },
	{ "unsilence", "unsilence <node|pattern|all>", "lift a silence",
	  SB_LEVEL_OPERATOR, cmd_unsilence },
	{ "maint", "maint [<node> on|off [reason] | <node> at <time> for <duration> [reason]]",
	  "maintenance: state maint (xa), notifications muted; alone: list windows",
	  SB_LEVEL_OPERATOR, cmd_maint },
	{ NULL, NULL, NULL, 0, NULL },
};
const struct sb_builtin *const sb_maint_builtin_table = builtins;

int
sb_maint_load(void)
{
	sqlite3 *db = sb_store_db();
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(db, "SELECT id, pattern, until, reason, by FROM silences",
	    -1, &s, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct silence *si = sb_calloc(1, sizeof(*si));

		si->id = sqlite3_column_int64(s, 0);
		si->pattern = sb_strdup((const char *)sqlite3_column_text(s, 1));
		si->until = (time_t)sqlite3_column_int64(s, 2);
		si->reason = sb_strdup((const char *)sqlite3_column_text(s, 3));
		si->by = sb_strdup((const char *)sqlite3_column_text(s, 4));
		if (si->reason == NULL)
			si->reason = sb_strdup("");
		si->next = silences;
		silences = si;
	}
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db, "SELECT id, node, start, until, reason, by FROM maint",
	    -1, &s, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct window *w = sb_calloc(1, sizeof(*w));

		w->id = sqlite3_column_int64(s, 0);
		w->node = sb_strdup((const char *)sqlite3_column_text(s, 1));
		w->start = (time_t)sqlite3_column_int64(s, 2);
		w->until = (time_t)sqlite3_column_int64(s, 3);
		w->reason = sb_strdup((const char *)sqlite3_column_text(s, 4));
		w->by = sb_strdup((const char *)sqlite3_column_text(s, 5));
		if (w->reason == NULL)
			w->reason = sb_strdup("");
		w->next = windows;
		windows = w;
	}
	sqlite3_finalize(s);
	maint_rearm();
	return 0;
}

void
sb_maint_stop(void)
{
	while (silences) {
		struct silence *s = silences;

		silences = s->next;
		silence_free(s);
	}
	while (windows) {
		struct window *w = windows;

		windows = w->next;
		free(w->node);
		free(w->reason);
		free(w->by);
		free(w);
	}
	if (maint_timer && sb_core.loop)
		sb_loop_del_timer(sb_core.loop, maint_timer);
	maint_timer = NULL;
}
