/*
 * audit.c: the audit log in the store's audit table: one row per command
 * that reached the dispatcher (dispatch.c writes it where every command
 * ends), and the admin command "audit [n] [node]" that reads it back.
 *
 * It does not decide what is refused or why: it records what the
 * dispatcher says.  The table belongs to store.c's schema.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "audit.h"
#include "dispatch.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define AUDIT_DEFAULT 20
#define AUDIT_MAX     1000
#define AUDIT_COLS    10	/* time and the nine strings of a row */
#define AUDIT_BATCH   6	/* one INSERT writes up to 2^6 rows */
#define AUDIT_HELD    1024	/* rows held back at most before they are written */

/*
 * Rows are held back until the store commits (store.c calls flush() just
 * before) and then written up to 64 to an INSERT: a statement's run
 * costs about as much as the row it writes (a power of two of them to a
 * statement, so that any number takes few), and a row written earlier in
 * the open transaction would not be durable any sooner.  A crash loses the
 * same rows either way (those of the transaction not yet committed).  The
 * query below writes them first, so that it sees every row.
 */
struct held {
	int64_t time_ms;
	size_t  off[AUDIT_COLS - 1];	/* its strings, in strs */
	int     len[AUDIT_COLS - 1];	/* their lengths (-1: NULL), for the binds */
};

static struct sqlite3_stmt *st_insert[AUDIT_BATCH + 1];	/* [k]: 2^k rows */
static struct sqlite3_stmt *st_query;
static struct held *held;
static size_t nheld, held_cap;
static struct sb_buf strs;	/* the held rows' strings, one after another */
static int failing;	/* a write failed: say so once, not per command */

static int64_t
now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
bind(struct sqlite3_stmt *st, int i, const char *v, int len)
{
	if (v)
		sqlite3_bind_text(st, i, v, len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* "INSERT ... VALUES (?, ...), ..." for n rows. */
static char *
insert_sql(int n)
{
	struct sb_buf b = { 0 };

	sb_buf_puts(&b, "INSERT INTO audit (time, identity, role, channel, conv, kind, line, "
	    "node, outcome, detail) VALUES ");
	for (int i = 0; i < n; i++)
		sb_buf_puts(&b, i ? ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" :
		    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	return b.buf;
}

static struct sqlite3_stmt *
stmt(struct sqlite3_stmt **slot, int n)
{
	struct sqlite3_stmt *st;
	char *sql;

	if (*slot)
		return *slot;
	sql = insert_sql(n);
	st = sb_store_stmt(slot, sql);
	free(sql);
	return st;
}

/* Write rows [from, from + n) with st; 0 or -1. */
static int
write_rows(struct sqlite3_stmt *st, size_t from, int n)
{
	int rc, col = 1;

	for (size_t i = from; i < from + (size_t)n; i++) {
		sqlite3_bind_int64(st, col++, held[i].time_ms);
		for (int j = 0; j < AUDIT_COLS - 1; j++)
			bind(st, col++, held[i].len[j] < 0 ? NULL : strs.buf + held[i].off[j],
			    held[i].len[j]);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Write the rows held back into the open transaction. */
static void
flush(void)
{
	struct sqlite3_stmt *st;
	size_t i = 0;
	int rc = 0;

	if (nheld == 0)
		return;
	if (!sb_store_is_open())
		rc = -1;
	for (int k = AUDIT_BATCH; rc == 0 && i < nheld; ) {
		int n = 1 << k;

		if (nheld - i < (size_t)n) {
			k--;
			continue;
		}
		if ((st = stmt(&st_insert[k], n)) == NULL || write_rows(st, i, n) < 0)
			rc = -1;
		i += n;
	}
	if (rc < 0 && !failing)
		sb_warnx("audit: cannot write: %s", sb_store_is_open() ?
		    sqlite3_errmsg(sb_store_db()) : "the store is closed");
	failing = rc < 0;
	nheld = 0;
	strs.len = 0;
	if (strs.cap > 64 * 1024)	/* after a burst: not kept for ever */
		sb_buf_free(&strs);
}

int
sb_audit_add(const struct sb_audit_rec *r)
{
	const char *v[AUDIT_COLS - 1] = { r->identity ? r->identity : "?", r->role, r->channel,
	    r->conv, r->kind, r->line ? r->line : "", r->node, r->outcome ? r->outcome : "?",
	    r->detail };
	struct held *h;

	if (!sb_store_is_open())
		return -1;
	/* The transaction the row will be written in: its commit is due
	 * within 100 ms from now, as for a row written at once. */
	if (sb_store_begin() < 0) {
		failing = 1;
		return -1;
	}
	if (nheld == AUDIT_HELD)
		flush();
	if (nheld == held_cap) {
		held_cap = held_cap ? 2 * held_cap : 64;
		held = sb_realloc(held, held_cap * sizeof(*held));
	}
	h = &held[nheld++];
	h->time_ms = r->time_ms ? r->time_ms : now_ms();
	for (int j = 0; j < AUDIT_COLS - 1; j++) {
		size_t n;

		if (v[j] == NULL) {
			h->len[j] = -1;
			continue;
		}
		n = strlen(v[j]);
		h->off[j] = strs.len;
		h->len[j] = (int)n;
		sb_buf_add(&strs, v[j], n + 1);
	}
	sb_store_before_commit(flush);
	return failing ? -1 : 0;
}

static const char *
col(struct sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int
sb_audit_query(size_t n, const char *node, sb_audit_fn *fn, void *ud)
{
	struct sb_audit_rec *v;
	char **keep;
	size_t got = 0;
	struct sqlite3_stmt *st;

	if (!sb_store_is_open())
		return -1;
	flush();
	/* node holds "web,db": match one name exactly. */
	st = sb_store_stmt(&st_query,
	    "SELECT time, identity, role, channel, conv, kind, line, node, outcome, detail "
	    "FROM audit WHERE ?1 IS NULL OR instr(',' || node || ',', ',' || ?1 || ',') > 0 "
	    "ORDER BY id DESC LIMIT ?2");
	if (st == NULL)
		return -1;
	sb_store_bind_text(st, 1, node);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
	v = sb_calloc(n + 1, sizeof(*v));
	keep = sb_calloc((n + 1) * 9, sizeof(*keep));
	while (got < n && sqlite3_step(st) == SQLITE_ROW) {
		char **k = keep + got * 9;

		v[got].time_ms = sqlite3_column_int64(st, 0);
		for (int i = 0; i < 9; i++)
			k[i] = sb_strdup(col(st, i + 1));
		v[got].identity = k[0];
		v[got].role = k[1];
		v[got].channel = k[2];
		v[got].conv = k[3];
		v[got].kind = k[4];
		v[got].line = k[5];
		v[got].node = k[6];
		v[got].outcome = k[7];
		v[got].detail = k[8];
		got++;
	}
	sqlite3_reset(st);
	/* Newest last, as a log reads. */
	for (size_t i = got; i-- > 0;)
		fn(&v[i], ud);
	for (size_t i = 0; i < got * 9; i++)
		free(keep[i]);
	free(keep);
	free(v);
	return (int)got;
}

static void
format_one(const struct sb_audit_rec *r, void *ud)
{
	struct sb_buf *b = ud;
	time_t t = (time_t)(r->time_ms / 1000);
	struct tm tm;
	char when[32];

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	sb_buf_printf(b, "\n%s %s (%s) %s/%s %s: %s -> %s", when, r->identity,
	    r->role ? r->role : "-", r->channel ? r->channel : "-", r->conv ? r->conv : "-",
	    r->kind ? r->kind : "-", r->line, r->outcome);
	if (r->node)
		sb_buf_printf(b, " [%s]", r->node);
	if (r->detail)
		sb_buf_printf(b, " (%s)", r->detail);
}

void
sb_audit_cmd(struct sb_cmd *cmd, int argc, char **argv)
{
	struct sb_buf b = { 0 };
	const char *node = NULL;
	long n = AUDIT_DEFAULT;
	char *end;
	int i = 0, got;

	if (i < argc && argv[i][0] >= '0' && argv[i][0] <= '9') {
		n = strtol(argv[i], &end, 10);
		if (*end || n < 1 || n > AUDIT_MAX) {
			sb_cmd_donef(cmd, 0, "audit: n must be 1 to %d", AUDIT_MAX);
			return;
		}
		i++;
	}
	if (i < argc)
		node = argv[i++];
	if (i < argc) {
		sb_cmd_done(cmd, 0, "usage: audit [n] [node]");
		return;
	}
	sb_buf_printf(&b, "TIME (UTC)          WHO (ROLE) CHANNEL/CONVERSATION KIND: COMMAND -> OUTCOME");
	if ((got = sb_audit_query((size_t)n, node, format_one, &b)) < 0) {
		sb_buf_free(&b);
		sb_cmd_done(cmd, 0, "audit: the store is not open; nothing is recorded");
		return;
	}
	if (got == 0) {
		sb_buf_free(&b);
		sb_cmd_done(cmd, 1, node ? "audit: nothing recorded about that node" :
		    "audit: nothing recorded yet");
		return;
	}
	sb_cmd_done(cmd, 1, b.buf);
	sb_buf_free(&b);
}
