/*
 * acl.c: identities to roles, first matching glob wins; roles are levels,
 * operator-defined roles inherit one.  Rules then raise, lower or refuse a
 * command per command, node, channel, room, kind of conversation and
 * identity, first match wins.  And a token bucket per identity limits how
 * fast its commands may come.  Who asks and what runs is the dispatcher's
 * business (dispatch.c, the prelude); this file only answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "conf.h"
#include "log.h"
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

/* One rule of the rules list; NULL globs match anything. */
struct crule {
	char   *command, *node, *channel, *room, *identity;
	int     where;		/* 0 any, 1 direct, 2 group */
	int     level;		/* the role needed; SB_LEVEL_NONE: the command's own */
	char   *role;		/* its name */
	int     deny;
	char   *at;		/* "file:line" */
};

struct bucket {
	char   *identity;
	double  tokens;
	double  last;		/* when tokens was computed */
	int     limited;	/* in an over-limit spell: refused until full */
};

static struct rule *rules;
static size_t nrules;
static struct role *roles;
static size_t nroles;
static struct crule *crules;
static size_t ncrules;
static struct bucket *buckets;
static size_t nbuckets;
/* Identities to buckets[]: every command spends a token of its sender's. */
static const char *bucket_identity(size_t i);
static struct sb_index bidx = { .key = bucket_identity };
static double rate_rate = 2.0;
static int rate_burst;			/* 0 (off) until configured */

#define MAX_BUCKETS 1024		/* past this, full buckets are forgotten */
static size_t prune_at = MAX_BUCKETS;

static void crules_free(struct crule *, size_t);

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
	crules_free(crules, ncrules);
	crules = NULL;
	ncrules = 0;
	sb_acl_rate_set(0, 0);
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

const char *
sb_acl_role_name(int level)
{
	if (level >= SB_LEVEL_ADMIN)
		return "admin";
	if (level >= SB_LEVEL_OPERATOR)
		return "operator";
	if (level >= SB_LEVEL_VIEWER)
		return "viewer";
	return "nobody";
}

/* ---- rules ---- */

static void
crules_free(struct crule *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].command);
		free(v[i].node);
		free(v[i].channel);
		free(v[i].room);
		free(v[i].identity);
		free(v[i].role);
		free(v[i].at);
	}
	free(v);
}

int
sb_acl_rules_apply(const struct sb_rule_conf *rc, size_t n, char *err, size_t errlen)
{
	struct crule *v = sb_calloc(n + 1, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		struct crule *r = &v[i];

		r->command = sb_strdup(rc[i].command);
		r->node = sb_strdup(rc[i].node);
		r->channel = sb_strdup(rc[i].channel);
		r->room = sb_strdup(rc[i].room);
		r->identity = sb_strdup(rc[i].identity);
		r->role = sb_strdup(rc[i].role);
		r->at = sb_asprintf("%s:%d", rc[i].file ? rc[i].file : "(config)", rc[i].line);
		r->deny = !rc[i].allow;
		if (rc[i].where == NULL || strcmp(rc[i].where, "any") == 0)
			r->where = 0;
		else if (strcmp(rc[i].where, "direct") == 0)
			r->where = 1;
		else if (strcmp(rc[i].where, "group") == 0)
			r->where = 2;
		else {
			snprintf(err, errlen, "%s: rule: where must be \"direct\", \"group\" or \"any\"",
			    r->at);
			crules_free(v, i + 1);
			return -1;
		}
		if (rc[i].role && (r->level = sb_acl_level(rc[i].role)) == SB_LEVEL_NONE) {
			snprintf(err, errlen, "%s: rule: unknown role \"%s\"", r->at, rc[i].role);
			crules_free(v, i + 1);
			return -1;
		}
	}
	crules_free(crules, ncrules);
	crules = v;
	ncrules = n;
	return 0;
}

static int
glob_or_any(const char *pattern, const char *s)
{
	return pattern == NULL || (s != NULL && sb_glob(pattern, s));
}

static int
rule_matches(const struct crule *r, const struct sb_acl_who *who, const char *command,
             const char *const *nodes, size_t n)
{
	if (!glob_or_any(r->command, command) || !glob_or_any(r->identity, who->identity) ||
	    !glob_or_any(r->channel, who->channel))
		return 0;
	if ((r->where == 1 && who->group) || (r->where == 2 && !who->group))
		return 0;
	if (r->room && !(who->group && glob_or_any(r->room, who->room)))
		return 0;
	if (r->node) {
		for (size_t i = 0; i < n; i++)
			if (sb_glob(r->node, nodes[i]))
				return 1;
		return 0;
	}
	return 1;
}

int
sb_acl_check(const struct sb_acl_who *who, const char *command, const char *const *nodes,
             size_t n, int own_level, const char *own_role, struct sb_acl_verdict *v)
{
	struct sb_acl_verdict tmp;

	if (v == NULL)
		v = &tmp;
	v->need = own_level;
	v->role = own_role ? own_role : sb_acl_role_name(own_level);
	v->rule = NULL;
	for (size_t i = 0; i < ncrules; i++) {
		const struct crule *r = &crules[i];

		if (!rule_matches(r, who, command, nodes, n))
			continue;
		v->rule = r->at;
		if (r->deny)
			return SB_ACL_DENY;
		if (r->level != SB_LEVEL_NONE) {
			v->need = r->level;
			v->role = r->role;
		}
		break;
	}
	return v->need < 0 || who->level >= v->need ? SB_ACL_ALLOW : SB_ACL_ROLE;
}

/* ---- the whole configuration, all or nothing ---- */

int
sb_acl_configure(const struct sb_config *conf, char *err, size_t errlen)
{
	struct rule *old_rules = rules;
	struct role *old_roles = roles;
	size_t old_nrules = nrules, old_nroles = nroles;

	/* Keep the old tables aside: the rules are resolved against the new
	 * roles, and if they fail the old ones come back. */
	rules = NULL;
	roles = NULL;
	nrules = nroles = 0;
	if (sb_acl_apply(conf->path, conf->acl, conf->nacl, conf->roles, conf->nroles,
	    err, errlen) < 0)
		goto fail;
	if (sb_acl_rules_apply(conf->rules, conf->nrules, err, errlen) < 0) {
		free_tables(rules, nrules, roles, nroles);
		goto fail;
	}
	free_tables(old_rules, old_nrules, old_roles, old_nroles);
	if (conf->rate != rate_rate || conf->burst != rate_burst)
		sb_acl_rate_set(conf->rate, conf->burst);
	return 0;
fail:
	rules = old_rules;
	roles = old_roles;
	nrules = old_nrules;
	nroles = old_nroles;
	return -1;
}

/* ---- the rate limit ---- */

static const char *
bucket_identity(size_t i)
{
	return buckets[i].identity;
}

static struct bucket *
bucket_find(const char *identity)
{
	size_t i = sb_index_find(&bidx, identity);

	return i == SIZE_MAX ? NULL : &buckets[i];
}

void
sb_acl_rate_set(double rate, int burst)
{
	for (size_t i = 0; i < nbuckets; i++)
		free(buckets[i].identity);
	free(buckets);
	buckets = NULL;
	nbuckets = 0;
	sb_index_free(&bidx);
	prune_at = MAX_BUCKETS;
	rate_rate = rate > 0 ? rate : 1.0;
	rate_burst = burst > 0 ? burst : 0;
}

void
sb_acl_rate_get(double *rate, int *burst)
{
	*rate = rate_rate;
	*burst = rate_burst;
}

static void
refill(struct bucket *b, double now)
{
	if (now > b->last) {
		b->tokens += (now - b->last) * rate_rate;
		if (b->tokens > rate_burst)
			b->tokens = rate_burst;
	}
	b->last = now;
}

/* Forget buckets that are full again: they hold nothing a new one would
 * not.  Without this, every identity ever seen would stay. */
static void
prune(double now)
{
	size_t j = 0;

	for (size_t i = 0; i < nbuckets; i++) {
		refill(&buckets[i], now);
		if (!buckets[i].limited && buckets[i].tokens >= rate_burst)
			free(buckets[i].identity);
		else
			buckets[j++] = buckets[i];
	}
	nbuckets = j;
	sb_index_build(&bidx, nbuckets);
}

int
sb_acl_rate(const char *identity, double now, double *wait)
{
	struct bucket *b = NULL;

	if (wait)
		*wait = 0;
	/* The control socket is mode 0600: whoever reaches it is trusted. */
	if (rate_burst == 0 || strncmp(identity, "console:", 8) == 0)
		return SB_RATE_OK;
	if ((b = bucket_find(identity)) == NULL) {
		/* Prune when the table doubled since the last time, so that a
		 * crowd of new identities costs linear time, not quadratic. */
		if (nbuckets >= prune_at) {
			prune(now);
			prune_at = nbuckets * 2 > MAX_BUCKETS ? nbuckets * 2 : MAX_BUCKETS;
		}
		buckets = sb_realloc(buckets, (nbuckets + 1) * sizeof(*buckets));
		b = &buckets[nbuckets++];
		b->identity = sb_strdup(identity);
		b->tokens = rate_burst;
		b->last = now;
		b->limited = 0;
		sb_index_append(&bidx);
	}
	refill(b, now);
	/* An over-limit spell lasts until the bucket is full again: a flood
	 * gets one notice, not one per token that trickles in. */
	if (b->limited && b->tokens >= rate_burst)
		b->limited = 0;
	if (!b->limited && b->tokens >= 1) {
		b->tokens -= 1;
		return SB_RATE_OK;
	}
	if (wait)
		*wait = (rate_burst - b->tokens) / rate_rate;
	if (b->limited)
		return SB_RATE_SILENT;
	b->limited = 1;
	return SB_RATE_NOTICE;
}
