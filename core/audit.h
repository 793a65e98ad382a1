/*
 * audit.h: the audit log: every command that reached the dispatcher, who
 * sent it, from where, what it touched and how it ended.  Append-only, in
 * the durable store (store.h), in the store's grouped commits.  With no
 * store open (unit tests, --check-config) adding is a no-op.
 */
#ifndef SB_AUDIT_H
#define SB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct sb_cmd;

/* One entry; every string is borrowed and may be NULL but identity, line
 * and outcome. */
struct sb_audit_rec {
	int64_t     time_ms;	/* unix time in milliseconds; 0: now */
	const char *identity;	/* who it ran as */
	const char *role;
	const char *channel;	/* channel instance name */
	const char *conv;	/* the conversation: room, #channel, peer */
	const char *kind;	/* "direct" or "group" */
	const char *line;	/* the command line as it arrived */
	const char *node;	/* target nodes, comma-separated */
	const char *outcome;	/* ok, confirm, failed, refused, denied, rate-limited */
	const char *detail;	/* first line of the answer when not ok */
};

/* Append (rec borrowed).  0, or -1 (store closed or failing; logged once
 * per failure spell). */
int  sb_audit_add(const struct sb_audit_rec *);

/* The newest n entries, touching node if node is not NULL, oldest first:
 * fn(rec, ud) for each (rec and its strings borrowed for the call).
 * Returns how many, or -1 if the store is not open. */
typedef void sb_audit_fn(const struct sb_audit_rec *, void *ud);
int  sb_audit_query(size_t n, const char *node, sb_audit_fn *, void *ud);

/* The admin command "audit [n] [node]" (builtins.c's table names it). */
void sb_audit_cmd(struct sb_cmd *, int argc, char **argv);

#endif
