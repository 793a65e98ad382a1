/*
 * store.c: the durable store, one SQLite database in WAL mode.
 *
 * One transaction is open while there are writes to commit.  When someone
 * waits for the commit (sb_store_when_committed(): a webhook's 2xx, a
 * spool row to deliver), a before-sleep hook commits before the loop
 * sleeps, so a burst of writes in one turn costs one fsync; writes nobody
 * waits for (audit rows, bookkeeping) commit at most LAZY_MS later, so that
 * a stream of commands does not pay an fsync each.  Callbacks run after the
 * commit that covers them: that is where "accepted" may be said.
 *
 * The schema is versioned with PRAGMA user_version.  migrations[i] takes a
 * store from version i to i + 1; a store from a newer switchboard is
 * refused rather than guessed at.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "loop.h"
#include "store.h"
#include "util.h"

static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE spool ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  dest TEXT NOT NULL, text TEXT NOT NULL, json TEXT,"
	"  created INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  key TEXT NOT NULL, source TEXT NOT NULL, node TEXT,"
	"  severity TEXT NOT NULL, text TEXT NOT NULL, time INTEGER NOT NULL,"
	"  resolves INTEGER, routed INTEGER NOT NULL DEFAULT 0,"
	"  open INTEGER NOT NULL DEFAULT 0, escalated INTEGER NOT NULL DEFAULT 0,"
	"  ack_by TEXT, ack_at INTEGER, ack_comment TEXT);"
	"CREATE INDEX events_live ON events(open, routed);"
	"CREATE TABLE silences ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, pattern TEXT NOT NULL,"
	"  until INTEGER NOT NULL, reason TEXT, by TEXT, created INTEGER NOT NULL);"
	"CREATE TABLE maint ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL,"
	"  start INTEGER NOT NULL, until INTEGER, reason TEXT, by TEXT);"
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
	"  identity TEXT NOT NULL, role TEXT, channel TEXT, conv TEXT, kind TEXT,"
	"  line TEXT NOT NULL, node TEXT, outcome TEXT NOT NULL, detail TEXT);"
	"CREATE INDEX audit_node ON audit(node);",
	/* 1 -> 2: the audit log is append-only, so its ids need not be
	 * AUTOINCREMENT's (an extra sqlite_sequence write per row), and no
	 * query used audit_node (a node filter matches inside a list): each
	 * command's row costs about half as much. */
	"DROP INDEX audit_node;"
	"CREATE TABLE audit2 ("
	"  id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	"  identity TEXT NOT NULL, role TEXT, channel TEXT, conv TEXT, kind TEXT,"
	"  line TEXT NOT NULL, node TEXT, outcome TEXT NOT NULL, detail TEXT);"
	"INSERT INTO audit2 SELECT id, time, identity, role, channel, conv, kind, line, node,"
	"  outcome, detail FROM audit;"
	"DROP TABLE audit;"
	"ALTER TABLE audit2 RENAME TO audit;"
	"DELETE FROM sqlite_sequence WHERE name = 'audit';",
};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(NMIGRATIONS == SB_STORE_SCHEMA, "one migration per schema version");

#define LAZY_MS	100	/* the longest a write nobody waits for stays uncommitted */

struct waiter {
	sb_store_done_fn *fn;
	void   *ud;
};

static sqlite3 *db;
static char *db_path;
static struct sb_loop *loop;
static int in_txn;
static int urgent;		/* the open transaction holds promised writes */
static struct waiter *waiters;
static size_t nwaiters, waiters_cap;
static sqlite3_stmt **stmts[64];	/* slots handed out by sb_store_stmt */
static size_t nstmts;
static struct sb_store_stats stats;
static struct sb_timer *lazy_timer;
static sb_store_flush_fn *before_fn;	/* writes held back until the commit */
static sb_store_done_fn *after_fn;	/* told of every commit's outcome */
static void *after_ud;
static unsigned failing;		/* commits failed in a row */
static time_t failing_logged;

static int
exec(const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", db_path, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
user_version(void)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int
migrate(char *err, size_t errlen)
{
	int v = user_version();
	char sql[64];

	if (v < 0) {
		snprintf(err, errlen, "%s: not a switchboard store: %s", db_path,
		    sqlite3_errmsg(db));
		return -1;
	}
	if (v > SB_STORE_SCHEMA) {
		snprintf(err, errlen, "%s: written by a newer switchboard (schema version %d; "
		    "this one knows up to %d): refusing to touch it; upgrade switchboard "
		    "or move the file away", db_path, v, SB_STORE_SCHEMA);
		return -1;
	}
	for (; v < SB_STORE_SCHEMA; v++) {
		if (exec("BEGIN IMMEDIATE", err, errlen) < 0)
			return -1;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (exec(migrations[v], err, errlen) < 0 || exec(sql, err, errlen) < 0) {
			char ignore[64];

			exec("ROLLBACK", ignore, sizeof(ignore));
			return -1;
		}
		if (exec("COMMIT", err, errlen) < 0)
			return -1;
		if (v > 0)
			sb_notice("%s: store migrated to schema version %d", db_path, v + 1);
	}
	return 0;
}

static void
hook(struct sb_loop *l, void *ud)
{
	(void)l;
	(void)ud;
	if (nwaiters || urgent)
		sb_store_commit();
}

void
sb_store_urgent(void)
{
	if (in_txn)
		urgent = 1;
}

int
sb_store_has_urgent(void)
{
	return in_txn && urgent;
}

static long
lazy_fire(struct sb_loop *l, struct sb_timer *t, void *ud)
{
	(void)l;
	(void)t;
	(void)ud;
	lazy_timer = NULL;
	if (in_txn)
		sb_store_commit();
	return SB_TIMER_STOP;
}

int
sb_store_open(const char *path, struct sb_loop *l, char *err, size_t errlen)
{
	if (db)
		sb_store_close();
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open the store: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		db = NULL;
		return -1;
	}
	db_path = sb_strdup(path);
	sqlite3_busy_timeout(db, 2000);
	/* WAL: readers (sqlite3 shell, backups) never block the daemon; FULL:
	 * a commit survives a power cut, not only a crash. */
	if (exec("PRAGMA journal_mode = WAL", err, errlen) < 0 ||
	    exec("PRAGMA synchronous = FULL", err, errlen) < 0 ||
	    migrate(err, errlen) < 0) {
		sqlite3_close(db);
		db = NULL;
		free(db_path);
		db_path = NULL;
		return -1;
	}
	loop = l;
	if (loop)
		sb_loop_add_before_sleep(loop, hook, NULL);
	return 0;
}

int
sb_store_is_open(void)
{
	return db != NULL;
}

struct sqlite3 *
sb_store_db(void)
{
	return db;
}

int
sb_store_begin(void)
{
	char err[512];

	if (db == NULL)
		return -1;
	if (in_txn)
		return 0;
	if (exec("BEGIN IMMEDIATE", err, sizeof(err)) < 0) {
		sb_warnx("store: %s", err);
		return -1;
	}
	in_txn = 1;
	if (loop && lazy_timer == NULL)
		lazy_timer = sb_loop_add_timer(loop, LAZY_MS, lazy_fire, NULL);
	return 0;
}

static void
run_waiters(int ok)
{
	/* Callbacks may write (and so queue more waiters): run a snapshot. */
	while (nwaiters) {
		struct waiter *v = waiters;
		size_t n = nwaiters;

		waiters = NULL;
		nwaiters = waiters_cap = 0;
		for (size_t i = 0; i < n; i++)
			v[i].fn(v[i].ud, ok);
		free(v);
		if (in_txn)
			break;		/* they wrote: the next commit covers them */
	}
}

int
sb_store_commit(void)
{
	char err[512];
	int ok = 1;

	if (db == NULL) {
		run_waiters(0);
		return -1;
	}
	if (lazy_timer) {
		sb_loop_del_timer(loop, lazy_timer);
		lazy_timer = NULL;
	}
	if (in_txn) {
		struct timespec a, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		if (before_fn)
			before_fn();
		if (exec("COMMIT", err, sizeof(err)) < 0) {
			char ignore[64];

			/* Once, then once a minute while it lasts (a full disk
			 * fails every commit). */
			if (failing++ == 0 || time(NULL) - failing_logged >= 60) {
				sb_warnx("store: commit failed%s, its writes are lost: %s",
				    failing > 1 ? " again" : "", err);
				failing_logged = time(NULL);
			}
			exec("ROLLBACK", ignore, sizeof(ignore));
			stats.commit_failures++;
			ok = 0;
		} else {
			if (failing)
				sb_notice("store: commits work again (after %u failed)", failing);
			failing = 0;
			stats.commits++;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		stats.last_commit_us = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000u +
		    (uint64_t)(b.tv_nsec - a.tv_nsec) / 1000u;
		urgent = 0;
		in_txn = 0;
		if (after_fn)
			after_fn(after_ud, ok);
	}
	run_waiters(ok);
	return ok ? 0 : -1;
}

void
sb_store_after_commit(sb_store_done_fn *fn, void *ud)
{
	after_fn = fn;
	after_ud = ud;
}

void
sb_store_before_commit(sb_store_flush_fn *fn)
{
	before_fn = fn;
}

void
sb_store_when_committed(sb_store_done_fn *fn, void *ud)
{
	if (nwaiters == waiters_cap) {
		waiters_cap = waiters_cap ? 2 * waiters_cap : 16;
		waiters = sb_realloc(waiters, waiters_cap * sizeof(*waiters));
	}
	waiters[nwaiters].fn = fn;
	waiters[nwaiters].ud = ud;
	nwaiters++;
}

void
sb_store_stats(struct sb_store_stats *s)
{
	*s = stats;
}

struct sqlite3_stmt *
sb_store_stmt(struct sqlite3_stmt **slot, const char *sql)
{
	if (*slot) {
		sqlite3_reset(*slot);
		sqlite3_clear_bindings(*slot);
		return *slot;
	}
	if (db == NULL)
		return NULL;
	if (nstmts == sizeof(stmts) / sizeof(stmts[0]))
		sb_fatalx("store: more than %zu cached statements", nstmts);
	if (sqlite3_prepare_v2(db, sql, -1, slot, NULL) != SQLITE_OK) {
		sb_warnx("store: %s: %s", sqlite3_errmsg(db), sql);
		*slot = NULL;
		return NULL;
	}
	stmts[nstmts++] = slot;
	return *slot;
}

void
sb_store_close(void)
{
	if (db == NULL)
		return;
	sb_store_commit();
	if (loop)
		sb_loop_del_before_sleep(loop, hook, NULL);
	loop = NULL;
	for (size_t i = 0; i < nstmts; i++) {
		sqlite3_finalize(*stmts[i]);
		*stmts[i] = NULL;
	}
	nstmts = 0;
	sqlite3_close(db);
	db = NULL;
	free(db_path);
	db_path = NULL;
	free(waiters);
	waiters = NULL;
	nwaiters = waiters_cap = 0;
}

int
sb_store_exec(struct sqlite3_stmt *s)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		sb_warnx("store: %s", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

void
sb_store_bind_text(struct sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}
