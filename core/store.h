/*
 * store.h: the daemon's durable store: one SQLite database (WAL mode) in
 * the state folder, holding the notification spool, the events, silences,
 * maintenance windows and the audit log.
 *
 * Writes are grouped: every write joins one open transaction.  It commits
 * before the loop sleeps when someone waits for it (sb_store_when_committed:
 * nothing may be reported as accepted before its commit), else at most
 * 100 ms after its first write, or when sb_store_commit() is called.
 *
 * The schema has a version (PRAGMA user_version); sb_store_open() migrates
 * an older store forward and refuses one written by a newer switchboard.
 * Modules keep their own prepared statements on sb_store_db().
 */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <stddef.h>
#include <stdint.h>

struct sb_loop;
struct sqlite3;

#define SB_STORE_SCHEMA 2	/* the schema version this build writes */

/* Open (create, migrate) path; 0 or -1 with err.  loop may be NULL (unit
 * tests, tools): then only sb_store_commit() commits. */
int  sb_store_open(const char *path, struct sb_loop *, char *err, size_t errlen);
/* Commit what is pending, finalize statements, close.  Idempotent. */
void sb_store_close(void);
int  sb_store_is_open(void);
struct sqlite3 *sb_store_db(void);	/* NULL when closed */

/* Join the open transaction (begin one if none): call before any write.
 * Returns 0 or -1 (logged). */
int  sb_store_begin(void);
/* Commit now; 0 or -1 (logged; the writes since the last commit are lost,
 * and every pending callback is told ok = 0). */
int  sb_store_commit(void);
/* fn(ud, ok) runs after the commit that makes the writes made so far
 * durable (ok = 1) or after it failed (ok = 0).  With nothing pending it
 * runs after the next commit (this loop turn).  Callbacks may write. */
typedef void sb_store_done_fn(void *ud, int ok);
void sb_store_when_committed(sb_store_done_fn *, void *ud);
/* fn(ud, ok) after every commit of a transaction (one owner; NULL: none):
 * a module whose writes must not be lost (the spool's deletions) redoes
 * them after a failed commit. */
void sb_store_after_commit(sb_store_done_fn *, void *ud);
/* fn() runs inside the open transaction just before it commits (one
 * owner; NULL: none): a module that holds back its writes (audit.c's rows)
 * writes them there, so that they are in the commit as if written at once. */
typedef void sb_store_flush_fn(void);
void sb_store_before_commit(sb_store_flush_fn *);
/* The writes made so far are a promise (an accepted event): commit them
 * before the loop sleeps even if nobody waits.  has_urgent: such writes
 * are not yet committed (a command's final answer then waits for it). */
void sb_store_urgent(void);
int  sb_store_has_urgent(void);

/* Counters for /metrics and "core show store". */
struct sb_store_stats {
	uint64_t commits;
	uint64_t commit_failures;
	uint64_t last_commit_us;	/* duration of the last commit */
};
void sb_store_stats(struct sb_store_stats *);

/* Prepare a statement once; it is finalized by sb_store_close().  NULL
 * (logged) on error.  *slot caches it. */
struct sqlite3_stmt *sb_store_stmt(struct sqlite3_stmt **slot, const char *sql);

/* Step a write statement once and reset it: 0, or -1 (logged). */
int  sb_store_exec(struct sqlite3_stmt *);
/* Bind text, or NULL when v is NULL (copied). */
void sb_store_bind_text(struct sqlite3_stmt *, int i, const char *v);

#endif
