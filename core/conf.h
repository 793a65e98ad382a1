/*
 * conf.h: the configuration file (libconfig), checked against a schema.
 *
 * The schema is a tree of key tables: the core's own, plus the keys each
 * channel driver and HAL backend declares.  Every error is reported as
 * "file:line: message".  A loaded configuration is immutable; SIGHUP loads a
 * new one beside it and the core swaps when it loaded cleanly.
 */
#ifndef SB_CONF_H
#define SB_CONF_H

#include <stddef.h>

#include <libconfig.h>

enum sb_conf_type {
	SB_CT_STRING,
	SB_CT_INT,
	SB_CT_FLOAT,		/* an integer is accepted too */
	SB_CT_BOOL,
	SB_CT_GROUP,		/* sub: the group's keys */
	SB_CT_LIST,		/* a list of groups, sub: each group's keys */
	SB_CT_STRINGS,		/* an array (or list) of strings */
	SB_CT_DRIVER,		/* a group whose keys come from its driver */
};

#define SB_KEY_REQUIRED 0x1u

struct sb_conf_key {
	const char *name;
	enum sb_conf_type type;
	unsigned flags;
	const struct sb_conf_key *sub;	/* GROUP, LIST; terminated by name NULL */
	const char *def;		/* default, as text, for the reference */
	const char *doc;		/* one line, for --dump-keys */
};

struct sb_acl_rule {
	char   *pattern;	/* glob over "channel:address" identities */
	char   *role;
	int     line;
};

struct sb_role_conf {
	char   *name;
	char   *inherits;	/* viewer, operator, admin or another role */
	int     line;
};

/* One entry of "rules": who may run which command where.  Every match
 * field is a glob, NULL for "any". */
struct sb_rule_conf {
	char   *command;	/* the command's words: "power", "core show nodes" */
	char   *node;		/* matches if any target node matches */
	char   *channel;	/* channel instance name */
	char   *room;		/* group conversation: MUC room, IRC #channel */
	char   *where;		/* "direct", "group" or NULL (any) */
	char   *identity;
	char   *role;		/* minimum role; NULL: the command's own */
	int     allow;		/* 0: allow = false, denied outright */
	char   *file;		/* where it was written, for messages */
	int     line;
};

struct sb_node_conf {
	char   *name;
	char  **groups;
	size_t  ngroups;
	double  poll_interval;	/* seconds */
	const struct sb_hal_backend *backend;
	config_setting_t *hal;	/* the node's hal group, inside cf */
	char   *hal_fingerprint;	/* canonical text of the hal group */
	int     line;
};

struct sb_chan_conf {
	char   *name;
	const char *driver;	/* its name (static: sb_channel_driver_known) */
	char   *context;	/* dialplan context for direct messages */
	char   *group_context;	/* for rooms / channels; NULL: context */
	config_setting_t *setting;	/* the whole channel group, inside cf */
	char   *fingerprint;	/* canonical text of the section */
	int     line;
};

struct sb_config {
	config_t cf;
	char   *path;
	/* daemon */
	char   *socket;
	char   *state_dir;
	int     log_level;
	int     use_syslog;
	char  **scripts;	/* script folders, searched in order */
	size_t  nscripts;
	double  poll_interval;
	int     confirm_timeout;
	char   *default_context;
	/* least privilege, applied at start only (a reload cannot regain root) */
	char   *user;		/* NULL: stay who we were started as */
	char   *group;		/* NULL: the user's primary group */
	char   *socket_group;	/* NULL: the control socket is 0600 */
	/* sections */
	struct sb_chan_conf *channels;
	size_t  nchannels;
	struct sb_node_conf *nodes;
	size_t  nnodes;
	struct sb_acl_rule *acl;
	size_t  nacl;
	struct sb_role_conf *roles;
	size_t  nroles;
	struct sb_rule_conf *rules;
	size_t  nrules;
	double  rate;		/* rate_limit: commands per second per identity */
	int     burst;		/* and how many may come at once; 0: no limit */
};

/* Load and check path.  On error returns NULL and writes "file:line: msg"
 * into err. */
struct sb_config *sb_conf_load(const char *path, char *err, size_t errlen);
void sb_conf_free(struct sb_config *);	/* NULL-safe */

/* Print every key the parser accepts, one dotted path per line with type
 * and default (switchboard --dump-keys; the man page test uses it). */
void sb_conf_dump_keys(void);

/* Helpers for drivers reading their own group (borrowed setting). */
const char *sb_conf_str(const config_setting_t *, const char *key, const char *def);
long long   sb_conf_int(const config_setting_t *, const char *key, long long def);
double      sb_conf_float(const config_setting_t *, const char *key, double def);
int         sb_conf_bool(const config_setting_t *, const char *key, int def);
/*
 * A secret the group g gives as key (inline) or key_file (a file), e.g.
 * "password" or "password_file".  On success *out is a copy the caller
 * takes (free it with sb_secret_free()), NULL if neither key is there.
 * Refused, -1 with "file:line: ..." in err: both keys; an inline secret in
 * a config file everyone may read; a secret file everyone may read, or one
 * that cannot be read.  A relative key_file is looked up in
 * $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) when that is set, else
 * next to the config file.  The secret is the file's first line, without
 * its newline.
 */
int         sb_conf_secret(const config_setting_t *g, const char *key, char **out,
                           char *err, size_t errlen);
void        sb_secret_free(char *);	/* NULL-safe; wipes it first */
/* Is the file path (a secret, or a config holding one) private: not
 * readable by everyone?  0, or -1 with a message naming what in err. */
int         sb_conf_check_private(const char *path, const char *what, char *err,
                                  size_t errlen);
/*
 * Once the nodes are applied (sb_nodes_apply() opened their HAL), their
 * settings are no longer read: drop them from the parse tree (most of its
 * memory at gateway scale).  conf->nodes keeps names and groups; each
 * node's hal pointer and fingerprint become NULL.
 */
void        sb_conf_release_nodes(struct sb_config *);

/* "file:line" of a setting, for error messages. */
void        sb_conf_where(const config_setting_t *, char *out, size_t outlen);
/* Canonical text of a setting (stable across reloads of equal text). */
char       *sb_conf_fingerprint(const config_setting_t *);

#endif
