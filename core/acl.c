/*
 * acl.c: identities to roles, first matching glob wins; roles are levels,
 * operator-defined roles inherit one.  The per-command and per-node rules
 * of the access-control issue build on this.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "conf.h"
#include "util.h"

struct rule {
	char   *pattern;
	char   *role;
	int     level;
};

struct role {
	char   *name;
	int     level;
};

static struct rule *rules;
static size_t nrules;
static struct role *roles;
static size_t nroles;

static int
builtin_level(const char *name)
{
	if (strcmp(name, "viewer") == 0)
		return SB_LEVEL_VIEWER;
	if (strcmp(name, "operator") == 0)
		return SB_LEVEL_OPERATOR;
	if (strcmp(name, "admin") == 0)
		return SB_LEVEL_ADMIN;
	return SB_LEVEL_NONE;
}

static int
level_in(const struct role *rs, size_t n, const char *name)
{
	int l = builtin_level(name);

	for (size_t i = 0; l == SB_LEVEL_NONE && i < n; i++)
		if (strcmp(rs[i].name, name) == 0)
			l = rs[i].level;
	return l;
}

static void
free_tables(struct rule *r, size_t nr, struct role *o, size_t no)
{
	for (size_t i = 0; i < nr; i++) {
		free(r[i].pattern);
		free(r[i].role);
	}
	free(r);
	for (size_t i = 0; i < no; i++)
		free(o[i].name);
	free(o);
}

int
sb_acl_apply(const char *file, const struct sb_acl_rule *acl, size_t nacl,
             const struct sb_role_conf *rc, size_t nrc, char *err, size_t errlen)
{
	struct role *o = sb_calloc(nrc + 1, sizeof(*o));
	struct rule *r = sb_calloc(nacl + 1, sizeof(*r));
	size_t resolved = 0;

	/* Resolve inheritance in passes: a role is resolved once the role it
	 * inherits is; a pass that resolves nothing means a cycle or an
	 * unknown parent. */
	for (size_t i = 0; i < nrc; i++) {
		if (builtin_level(rc[i].name) != SB_LEVEL_NONE) {
			snprintf(err, errlen, "%s:%d: role \"%s\" is built in",
			    file, rc[i].line, rc[i].name);
			goto fail;
		}
		o[i].name = sb_strdup(rc[i].name);
	}
	while (resolved < nrc) {
		size_t before = resolved;

		for (size_t i = 0; i < nrc; i++) {
			int l;

			if (o[i].level)
				continue;
			if ((l = level_in(o, nrc, rc[i].inherits)) != SB_LEVEL_NONE) {
				o[i].level = l;
				resolved++;
			}
		}
		if (resolved == before) {
			for (size_t i = 0; i < nrc; i++)
				if (o[i].level == 0) {
					snprintf(err, errlen,
					    "%s:%d: role \"%s\" inherits \"%s\", which is unknown or circular",
					    file, rc[i].line, rc[i].name, rc[i].inherits);
					break;
				}
			goto fail;
		}
	}
	for (size_t i = 0; i < nacl; i++) {
		r[i].pattern = sb_strdup(acl[i].pattern);
		r[i].role = sb_strdup(acl[i].role);
		if ((r[i].level = level_in(o, nrc, acl[i].role)) == SB_LEVEL_NONE) {
			snprintf(err, errlen, "%s:%d: unknown role \"%s\"",
			    file, acl[i].line, acl[i].role);
			nacl = i + 1;
			free_tables(r, nacl, o, nrc);
			return -1;
		}
	}
	free_tables(rules, nrules, roles, nroles);
	rules = r;
	nrules = nacl;
	roles = o;
	nroles = nrc;
	return 0;
fail:
	free_tables(r, 0, o, nrc);
	return -1;
}

void
sb_acl_clear(void)
{
	free_tables(rules, nrules, roles, nroles);
	rules = NULL;
	roles = NULL;
	nrules = nroles = 0;
}

const char *
sb_acl_role(const char *identity, int *level)
{
	/* The control socket is mode 0600: whoever reaches it is trusted. */
	if (strncmp(identity, "console:", 8) == 0) {
		*level = SB_LEVEL_ADMIN;
		return "admin";
	}
	for (size_t i = 0; i < nrules; i++)
		if (sb_glob(rules[i].pattern, identity)) {
			*level = rules[i].level;
			return rules[i].role;
		}
	*level = SB_LEVEL_NONE;
	return NULL;
}

int
sb_acl_level(const char *role)
{
	return level_in(roles, nroles, role);
}
