/*
 * test_store.c: unit tests for core/store.c (the SQLite store) and the
 * duration parser of core/notify.c.
 *
 * A real database in a private folder: the schema appears, grouped writes
 * commit once and call back after the commit, a store written by a newer
 * version is refused untouched, a reopened store keeps its rows, and a
 * failed commit tells its waiters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libconfig.h>
#include <sqlite3.h>

#include "loop.h"
#include "notify.h"
#include "retain.h"
#include "store.h"

static char dir[64], path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sb-store-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/switchboard.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char p[160];

	(void)state;
	sb_store_close();
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	rmdir(dir);
	return 0;
}

static long long
count(const char *sql)
{
	sqlite3_stmt *s;
	long long n = -1;

	assert_int_equal(sqlite3_prepare_v2(sb_store_db(), sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void
test_schema_and_version(void **state)
{
	char err[512] = "";

	(void)state;
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), 0);
	assert_int_equal(count("PRAGMA user_version"), SB_STORE_SCHEMA);
	assert_int_equal(count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
	    "name IN ('spool', 'events', 'silences', 'maint', 'audit')"), 5);
	/* WAL, so that sqlite3 on the side never blocks the daemon. */
	{
		sqlite3_stmt *s;

		sqlite3_prepare_v2(sb_store_db(), "PRAGMA journal_mode", -1, &s, NULL);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
	}
	assert_true(sb_store_is_open());
	sb_store_close();
	assert_false(sb_store_is_open());
	sb_store_close();		/* idempotent */
}

static int calls, last_ok;

static void
done(void *ud, int ok)
{
	(void)ud;
	calls++;
	last_ok = ok;
}

static sqlite3_stmt *ins;

static void
insert_one(const char *dest)
{
	assert_int_equal(sb_store_begin(), 0);
	assert_non_null(sb_store_stmt(&ins, "INSERT INTO spool (dest, text, created) "
	    "VALUES (?, 'x', 0)"));
	sqlite3_bind_text(ins, 1, dest, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
}

static void
test_grouped_commit_calls_back_after(void **state)
{
	struct sb_store_stats st;
	struct sb_loop *loop = sb_loop_new();
	char err[512] = "";

	(void)state;
	assert_int_equal(sb_store_open(path, loop, err, sizeof(err)), 0);
	calls = 0;
	for (int i = 0; i < 100; i++)
		insert_one("console");
	sb_store_when_committed(done, NULL);
	assert_int_equal(calls, 0);		/* not before the commit */
	sb_store_stats(&st);
	assert_int_equal(st.commits, 0);	/* the first test to commit */
	/* One loop turn: the before-sleep hook commits the 100 rows once. */
	sb_loop_once(loop, 0);
	assert_int_equal(calls, 1);
	assert_int_equal(last_ok, 1);
	sb_store_stats(&st);
	assert_int_equal(st.commits, 1);
	assert_int_equal(count("SELECT count(*) FROM spool"), 100);
	/* With nothing pending, a waiter runs at the next commit all the same. */
	sb_store_when_committed(done, NULL);
	sb_loop_once(loop, 0);
	assert_int_equal(calls, 2);
	sb_store_close();
	sb_loop_free(loop);
	/* Reopened: the rows are there. */
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), 0);
	assert_int_equal(count("SELECT count(*) FROM spool"), 100);
}

static void
test_unwaited_writes_commit_lazily(void **state)
{
	struct sb_store_stats st;
	struct sb_loop *loop = sb_loop_new();
	char err[512] = "";
	uint64_t t0, deadline, before;

	(void)state;
	assert_int_equal(sb_store_open(path, loop, err, sizeof(err)), 0);
	sb_store_stats(&st);
	before = st.commits;		/* the counters run for the process */
	t0 = sb_now_ms();
	insert_one("audit-like");
	/* Nobody waits: the turn ends without an fsync ... */
	sb_loop_once(loop, 0);
	sb_store_stats(&st);
	assert_int_equal(st.commits, before);
	/* ... and the write is committed within about 100 ms all the same. */
	deadline = t0 + 10000;
	do {
		sb_loop_once(loop, 50);
		sb_store_stats(&st);
	} while (st.commits == before && sb_now_ms() < deadline);
	assert_int_equal(st.commits, before + 1);
	assert_true(sb_now_ms() - t0 >= 90);
	sb_store_close();
	sb_loop_free(loop);
}

/* A store from schema version 1 (audit ids AUTOINCREMENT, an unused index)
 * is migrated on open; its audit rows keep their ids and order. */
static void
test_version1_store_migrates_audit(void **state)
{
	sqlite3 *db;
	char err[512] = "";

	(void)state;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
	    "  identity TEXT NOT NULL, role TEXT, channel TEXT, conv TEXT, kind TEXT,"
	    "  line TEXT NOT NULL, node TEXT, outcome TEXT NOT NULL, detail TEXT);"
	    "CREATE INDEX audit_node ON audit(node);"
	    "INSERT INTO audit (id, time, identity, line, outcome) VALUES"
	    "  (5, 1, 'a', 'status', 'ok'), (9, 2, 'b', 'sensors', 'ok'), (12, 3, 'c', 'x', 'fail');"
	    "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), 0);
	assert_int_equal(count("PRAGMA user_version"), SB_STORE_SCHEMA);
	assert_int_equal(count("SELECT count(*) FROM audit"), 3);
	assert_int_equal(count("SELECT id FROM audit WHERE identity = 'c'"), 12);
	assert_int_equal(count("SELECT count(*) FROM sqlite_master WHERE name = 'audit_node'"), 0);
	assert_int_equal(count("SELECT count(*) FROM sqlite_sequence WHERE name = 'audit'"), 0);
	assert_int_equal(sb_store_begin(), 0);
	assert_int_equal(sqlite3_exec(sb_store_db(), "INSERT INTO audit (time, identity, line, "
	    "outcome) VALUES (4, 'd', 'y', 'ok')", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(count("SELECT max(id) FROM audit"), 13);
	sb_store_close();
}

static void
test_newer_schema_refused_untouched(void **state)
{
	sqlite3 *db;
	char err[512] = "";

	(void)state;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 7",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "written by a newer switchboard (schema version 7"));
	assert_false(sb_store_is_open());
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	{
		sqlite3_stmt *s;

		sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = 'spool'",
		    -1, &s, NULL);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(s, 0), 0);	/* not migrated */
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
}

static void
test_not_a_database(void **state)
{
	FILE *f = fopen(path, "w");
	char err[512] = "";

	(void)state;
	fputs("this is not SQLite, it is a text file that happens to be here\n", f);
	fclose(f);
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
}

static void
test_failed_commit_tells_waiters(void **state)
{
	struct sb_store_stats st;
	char err[512] = "";

	(void)state;
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), 0);
	/* A constraint only the commit checks: a deferred foreign key. */
	assert_int_equal(sqlite3_exec(sb_store_db(), "PRAGMA foreign_keys = ON",
	    NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sb_store_begin(), 0);
	assert_int_equal(sqlite3_exec(sb_store_db(), "CREATE TABLE p (id INTEGER PRIMARY KEY);"
	    "CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);"
	    "INSERT INTO c VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
	calls = 0;
	sb_store_when_committed(done, NULL);
	assert_int_equal(sb_store_commit(), -1);
	assert_int_equal(calls, 1);
	assert_int_equal(last_ok, 0);
	sb_store_stats(&st);
	assert_int_equal(st.commit_failures, 1);
	/* The writes are gone, and the store goes on working. */
	assert_int_equal(count("SELECT count(*) FROM sqlite_master WHERE name = 'c'"), 0);
	insert_one("console");
	sb_store_when_committed(done, NULL);
	assert_int_equal(sb_store_commit(), 0);
	assert_int_equal(calls, 2);
	assert_int_equal(last_ok, 1);
	sb_store_close();
	/* With the store closed, a waiter hears "not durable" at once. */
	calls = 0;
	sb_store_when_committed(done, NULL);
	assert_int_equal(sb_store_commit(), -1);
	assert_int_equal(calls, 1);
	assert_int_equal(last_ok, 0);
}

static void
test_parse_duration(void **state)
{
	long long s;

	(void)state;
	assert_int_equal(sb_parse_duration("90s", &s), 0);
	assert_int_equal(s, 90);
	assert_int_equal(sb_parse_duration("30m", &s), 0);
	assert_int_equal(s, 1800);
	assert_int_equal(sb_parse_duration("1h30m", &s), 0);
	assert_int_equal(s, 5400);
	assert_int_equal(sb_parse_duration("2d", &s), 0);
	assert_int_equal(s, 172800);
	assert_int_equal(sb_parse_duration("45", &s), 0);
	assert_int_equal(s, 45);
	assert_int_equal(sb_parse_duration("", &s), -1);
	assert_int_equal(sb_parse_duration("soon", &s), -1);
	assert_int_equal(sb_parse_duration("5x", &s), -1);
	assert_int_equal(sb_parse_duration("-5m", &s), -1);
	assert_int_equal(sb_parse_duration("400d", &s), -1);	/* over a year */
	assert_int_equal(sb_parse_duration("99999999999999999999h", &s), -1);
	assert_int_equal(sb_parse_duration("999999999999999d", &s), -1);	/* no overflow */
}

static void
sql(const char *text)
{
	char *e = NULL;

	if (sqlite3_exec(sb_store_db(), text, NULL, NULL, &e) != SQLITE_OK)
		fail_msg("%s: %s", text, e);
}

static int
retain_conf(const char *text, char *err, size_t errlen)
{
	config_t cf;
	int rc;

	config_init(&cf);
	assert_int_equal(config_read_string(&cf, text), CONFIG_TRUE);
	rc = sb_retain_apply(config_lookup(&cf, "store"), err, errlen);
	config_destroy(&cf);
	return rc;
}

/*
 * Closed, routed events older than event_max_age and audit rows older than
 * audit_max_age go, oldest first, a batch of 1,000 at a time; an open
 * event, one not yet routed, newer rows, the spool, silences and
 * maintenance windows stay.  0 keeps for ever; an age under an hour is
 * refused.
 */
static void
test_retention_prunes_only_old_history(void **state)
{
	const time_t now = 1000000000;
	char err[512] = "";

	(void)state;
	assert_int_equal(sb_store_open(path, NULL, err, sizeof(err)), 0);
	sql("BEGIN");
	for (int i = 0; i < 1500; i++)	/* old, closed, routed: they go */
		sql("INSERT INTO events (key, source, severity, text, time, routed, open) "
		    "VALUES ('k', 'node', 'warning', 'old', 1000, 1, 0)");
	sql("INSERT INTO events (key, source, severity, text, time, routed, open) VALUES "
	    "('k', 'node', 'critical', 'old but open', 1000, 1, 1),"
	    "('k', 'node', 'warning', 'old, not routed', 1000, 0, 0),"
	    "('k', 'node', 'warning', 'young', 999999000, 1, 0)");
	sql("INSERT INTO audit (time, identity, line, outcome) VALUES "
	    "(1000000, 'a', 'status', 'ok'), (999999000000, 'a', 'status', 'ok')");
	sql("INSERT INTO spool (dest, text, created) VALUES ('d', 'x', 1000)");
	sql("INSERT INTO silences (pattern, until, created) VALUES ('*', 1000, 1000)");
	sql("INSERT INTO maint (node, start, until) VALUES ('web', 1000, 2000)");
	sql("COMMIT");

	assert_int_equal(retain_conf("store = { event_max_age = 3600.0; "
	    "audit_max_age = 7200.0; };", err, sizeof(err)), 0);
	assert_int_equal(sb_retain_prune(now), 1000 + 1);	/* a batch of each */
	assert_int_equal(sb_retain_prune(now), 500);
	assert_int_equal(sb_retain_prune(now), 0);
	assert_int_equal(sb_store_commit(), 0);
	assert_int_equal(count("SELECT count(*) FROM events"), 3);
	assert_int_equal(count("SELECT count(*) FROM events WHERE text = 'old'"), 0);
	assert_int_equal(count("SELECT count(*) FROM audit"), 1);
	assert_int_equal(count("SELECT time FROM audit"), 999999000000LL);
	assert_int_equal(count("SELECT count(*) FROM spool"), 1);
	assert_int_equal(count("SELECT count(*) FROM silences"), 1);
	assert_int_equal(count("SELECT count(*) FROM maint"), 1);

	/* 0: for ever. */
	assert_int_equal(retain_conf("store = { event_max_age = 0.0; audit_max_age = 0.0; };",
	    err, sizeof(err)), 0);
	assert_int_equal(sb_retain_prune(now + 100000000), 0);
	assert_int_equal(count("SELECT count(*) FROM events"), 3);
	/* Under an hour is a mistake, said with the section's name. */
	assert_int_equal(retain_conf("store = { event_max_age = 60.0; };", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "store: event_max_age"));
	assert_int_equal(retain_conf("x = 1;", err, sizeof(err)), 0);	/* the defaults */
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_schema_and_version),
		T(test_grouped_commit_calls_back_after),
		T(test_unwaited_writes_commit_lazily),
		T(test_newer_schema_refused_untouched),
		T(test_version1_store_migrates_audit),
		T(test_not_a_database),
		T(test_failed_commit_tells_waiters),
		T(test_parse_duration),
		T(test_retention_prunes_only_old_history),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
