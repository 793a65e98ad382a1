/*
 * acl.h: identities to roles.
 *
 * Roles are ordered levels (viewer < operator < admin); an operator-defined
 * role names the role it inherits, and so its level.  The acl config
 * section maps identity globs ("xmpp:*@example.org") to roles, first match
 * wins.  The local console is always admin.
 */
#ifndef SB_ACL_H
#define SB_ACL_H

#include <stddef.h>

#define SB_LEVEL_NONE     0
#define SB_LEVEL_VIEWER   10
#define SB_LEVEL_OPERATOR 20
#define SB_LEVEL_ADMIN    30

struct sb_acl_rule;
struct sb_role_conf;

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

#endif
