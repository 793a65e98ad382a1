/*
 * acl.h: identities to roles.
 *
 * Roles are ordered levels (viewer < operator < admin); an operator-defined
 * role names the role it inherits, and so its level.  The acl config
 * section maps identity globs ("xmpp:*@example.org") to roles, first match
 * wins.  The local console is always admin.
 *
 * Rules (the rules config list) then say, per command, node, channel, room,
 * kind of conversation and identity, which role a command needs there or
 * that it is refused outright; first match wins, and with no match the
 * command's own role applies.  A token bucket per identity limits how fast
 * commands come (rate_limit); the console is exempt.
 */
#ifndef SB_ACL_H
#define SB_ACL_H

#include <stddef.h>

#define SB_LEVEL_NONE     0
#define SB_LEVEL_VIEWER   10
#define SB_LEVEL_OPERATOR 20
#define SB_LEVEL_ADMIN    30

struct sb_acl_rule;
struct sb_config;
struct sb_role_conf;
struct sb_rule_conf;

/* Replace the rules and roles (copied).  Returns 0, or -1 with err set
 * ("file:line: ...": an unknown or circular role); the old rules stay. */
int sb_acl_apply(const char *file, const struct sb_acl_rule *, size_t, const struct sb_role_conf *,
                 size_t, char *err, size_t errlen);
void sb_acl_clear(void);

/* The role of an identity: its name (static or owned by the ACL; valid
 * until the next apply) and level; NULL/SB_LEVEL_NONE if unknown. */
const char *sb_acl_role(const char *identity, int *level);
/* Level of a role name, SB_LEVEL_NONE if unknown. */
int sb_acl_level(const char *role);
/* The name of the lowest role with at least level (static or owned by the
 * ACL, like sb_acl_role's). */
const char *sb_acl_role_name(int level);

/* Everything above plus the rules and the rate limit, from a loaded
 * configuration (borrowed; copied); all or nothing.  0, or -1 with err. */
int sb_acl_configure(const struct sb_config *, char *err, size_t errlen);
/* Replace only the rules (copied); 0, or -1 with err ("file:line: ..."). */
int sb_acl_rules_apply(const struct sb_rule_conf *, size_t, char *err, size_t errlen);

/* Who asks, and from where (all borrowed). */
struct sb_acl_who {
	const char *identity;
	int         level;
	const char *channel;	/* channel instance name */
	int         group;	/* 1: a room or IRC channel; 0: direct */
	const char *room;	/* the group conversation, NULL when direct */
};

#define SB_ACL_ALLOW 0
#define SB_ACL_ROLE  1		/* the role is too low (the verdict says which is needed) */
#define SB_ACL_DENY  2		/* a rule (allow = false) refuses it here */

/* What sb_acl_check decided, and why. */
struct sb_acl_verdict {
	int         need;	/* the level that applies (own or a rule's); < 0: none */
	const char *role;	/* its name: the rule's role, own_role or a built-in name */
	const char *rule;	/* the deciding rule as "file:line"; NULL: none matched */
};

/*
 * May who run command (its words: "power", "core show nodes") on nodes (n
 * names, borrowed; n = 0: no node) when the command itself asks for
 * own_level, named own_role (may be NULL)?  own_level < 0: not known, as
 * for a role that depends on the arguments; then only a rule's role
 * counts.  Returns SB_ACL_*; v (may be NULL) receives the details, valid
 * until the next apply.
 */
int sb_acl_check(const struct sb_acl_who *, const char *command, const char *const *nodes,
                 size_t n, int own_level, const char *own_role, struct sb_acl_verdict *v);

/* The rate limit (limit) per identity, at time now (seconds, monotonic).
 * wait (may be NULL) receives the seconds until the bucket is full. */
#define SB_RATE_OK     0	/* go ahead: one token spent */
#define SB_RATE_NOTICE 1	/* over the limit: refuse and tell them, once */
#define SB_RATE_SILENT 2	/* still over: refuse without a word */
int  sb_acl_rate(const char *identity, double now, double *wait);
/* Set the limit by hand (unit tests); burst 0 turns it off.  Forgets every
 * bucket. */
void sb_acl_rate_set(double rate, int burst);
/* The limit: *rate commands a second, *burst at once (0: off). */
void sb_acl_rate_get(double *rate, int *burst);

#endif
