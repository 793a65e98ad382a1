/*
 * conf.c: loads switchboard.conf with libconfig and checks it against the
 * schema: the core's key tables below plus the keys each channel driver and
 * HAL backend declares.  Every error names file and line.  Drivers parse
 * their own sections later, in their open(); here we only make sure no
 * unknown key, wrong type or missing required key gets that far.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <malloc.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "conf.h"
#include "notify.h"
#include "retain.h"
#include "hal.h"
#include "log.h"
#include "util.h"

#define DEFAULT_SOCKET "/run/switchboard/switchboard.sock"
#define DEFAULT_STATE  "/var/lib/switchboard"
#define DEFAULT_SCRIPTS_SYS SB_DATADIR "/scripts"

#ifndef SB_DATADIR
#define SB_DATADIR "/usr/local/share/switchboard"
#endif
#ifndef SB_SYSCONFDIR
#define SB_SYSCONFDIR "/etc/switchboard"
#endif

static const struct sb_conf_key daemon_keys[] = {
	{ "socket", SB_CT_STRING, 0, NULL, DEFAULT_SOCKET,
	  "path of the control socket (the -s option overrides it)" },
	{ "state_dir", SB_CT_STRING, 0, NULL, DEFAULT_STATE,
	  "folder for durable state (the -d option overrides it)" },
	{ "log_level", SB_CT_STRING, 0, NULL, "info",
	  "debug, info, notice, warning or error" },
	{ "syslog", SB_CT_BOOL, 0, NULL, "true",
	  "also log to syslog (facility daemon)" },
	{ "scripts", SB_CT_STRINGS, 0, NULL,
	  "[ \"" SB_SYSCONFDIR "/scripts\", \"" DEFAULT_SCRIPTS_SYS "\" ]",
	  "dialplan script folders; a file in an earlier folder overrides one of the same name in a later" },
	{ "poll_interval", SB_CT_FLOAT, 0, NULL, "5.0",
	  "default seconds between two polls of a node" },
	{ "confirm_timeout", SB_CT_INT, 0, NULL, "60",
	  "seconds a confirmation code stays valid" },
	{ "default_context", SB_CT_STRING, 0, NULL, "default",
	  "dialplan context of a channel that names none" },
	{ "user", SB_CT_STRING, 0, NULL, "-",
	  "started as root: the user to run as once sockets, ports and the store are open" },
	{ "group", SB_CT_STRING, 0, NULL, "the user's group",
	  "started as root: the group to run as (with user)" },
	{ "socket_group", SB_CT_STRING, 0, NULL, "-",
	  "a group whose members may use the control socket (mode 0660); else 0600" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key channel_keys[] = {
	{ "name", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "instance name; destinations are written name:address" },
	{ "driver", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "channel driver: console, xmpp, irc or http" },
	{ "context", SB_CT_STRING, 0, NULL, "daemon.default_context",
	  "dialplan context for direct messages" },
	{ "group_context", SB_CT_STRING, 0, NULL, "context",
	  "dialplan context for messages in rooms and IRC channels" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key hal_keys[] = {
	{ "backend", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "HAL backend: sim, linux or ipmi" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key node_keys[] = {
	{ "name", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "node name, as operators type it" },
	{ "groups", SB_CT_STRINGS, 0, NULL, "[ ]",
	  "groups the node belongs to (commands accept group:NAME)" },
	{ "poll_interval", SB_CT_FLOAT, 0, NULL, "daemon.poll_interval",
	  "seconds between two polls of this node" },
	{ "hal", SB_CT_DRIVER, SB_KEY_REQUIRED, hal_keys, NULL,
	  "hardware backend and its settings" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key acl_keys[] = {
	{ "match", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "identity glob, e.g. \"xmpp:*@example.org\" or \"irc:alice!*@*\"" },
	{ "role", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "role granted: viewer, operator, admin or one from roles" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key role_keys[] = {
	{ "name", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL, "role name" },
	{ "inherits", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "the role whose level (and so commands) it has" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key rule_keys[] = {
	{ "command", SB_CT_STRING, 0, NULL, "\"*\"",
	  "glob over the command's words (\"power\", \"core show nodes\")" },
	{ "node", SB_CT_STRING, 0, NULL, "-",
	  "glob over the target nodes: the rule applies if any target matches" },
	{ "channel", SB_CT_STRING, 0, NULL, "-",
	  "glob over the channel instance name" },
	{ "room", SB_CT_STRING, 0, NULL, "-",
	  "glob over the group conversation: a MUC room's bare JID or an IRC #channel" },
	{ "where", SB_CT_STRING, 0, NULL, "any",
	  "direct (one-to-one), group (rooms, IRC channels) or any" },
	{ "identity", SB_CT_STRING, 0, NULL, "-",
	  "glob over the sender's identity, e.g. \"xmpp:*@example.org\"" },
	{ "role", SB_CT_STRING, 0, NULL, "-",
	  "the role needed, in place of the command's own (raises or lowers it)" },
	{ "allow", SB_CT_BOOL, 0, NULL, "true",
	  "false: the command is refused outright where the rule matches" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key rate_keys[] = {
	{ "rate", SB_CT_FLOAT, 0, NULL, "2.0",
	  "commands per second each identity may send, on average" },
	{ "burst", SB_CT_INT, 0, NULL, "30",
	  "commands an identity may send at once; 0 turns the limit off" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key top_keys[] = {
	{ "daemon", SB_CT_GROUP, 0, daemon_keys, NULL, "process-wide settings" },
	{ "channels", SB_CT_LIST, 0, channel_keys, NULL,
	  "channel instances (the console is always there)" },
	{ "nodes", SB_CT_LIST, 0, node_keys, NULL, "managed servers" },
	{ "acl", SB_CT_LIST, 0, acl_keys, NULL,
	  "identity globs to roles, first match wins" },
	{ "roles", SB_CT_LIST, 0, role_keys, NULL, "operator-defined roles" },
	{ "notify", SB_CT_GROUP, 0, sb_notify_keys, NULL,
	  "notifications: grouping, deduplication, retries, the spool's bounds" },
	{ "rules", SB_CT_LIST, 0, rule_keys, NULL,
	  "per command, node, channel, room and identity: the role needed or a refusal; first match wins" },
	{ "rate_limit", SB_CT_GROUP, 0, rate_keys, NULL,
	  "commands per identity (token bucket); the local console is exempt" },
	{ "store", SB_CT_GROUP, 0, sb_store_keys, NULL,
	  "how long the store keeps closed events and audit rows" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/* ---- helpers for drivers ---- */

const char *
sb_conf_str(const config_setting_t *s, const char *key, const char *def)
{
	const char *v;

	if (s && config_setting_lookup_string(s, key, &v) == CONFIG_TRUE)
		return v;
	return def;
}

long long
sb_conf_int(const config_setting_t *s, const char *key, long long def)
{
	config_setting_t *c = s ? config_setting_get_member(s, key) : NULL;

	if (c == NULL)
		return def;
	switch (config_setting_type(c)) {
	case CONFIG_TYPE_INT:
		return config_setting_get_int(c);
	case CONFIG_TYPE_INT64:
		return config_setting_get_int64(c);
	case CONFIG_TYPE_FLOAT:
		return (long long)config_setting_get_float(c);
	default:
		return def;
	}
}

double
sb_conf_float(const config_setting_t *s, const char *key, double def)
{
	config_setting_t *c = s ? config_setting_get_member(s, key) : NULL;

	if (c == NULL)
		return def;
	switch (config_setting_type(c)) {
	case CONFIG_TYPE_INT:
		return config_setting_get_int(c);
	case CONFIG_TYPE_INT64:
		return (double)config_setting_get_int64(c);
	case CONFIG_TYPE_FLOAT:
		return config_setting_get_float(c);
	default:
		return def;
	}
}

int
sb_conf_bool(const config_setting_t *s, const char *key, int def)
{
	int v;

	if (s && config_setting_lookup_bool(s, key, &v) == CONFIG_TRUE)
		return v;
	return def;
}

void
sb_conf_where(const config_setting_t *s, char *out, size_t len)
{
	const char *file = config_setting_source_file(s);

	snprintf(out, len, "%s:%u", file ? file : "(config)",
	    config_setting_source_line(s));
}

/* v in base 10 or 16, without printf. */
static void
add_number(struct sb_buf *b, unsigned long long v, unsigned base)
{
	char tmp[24], *p = tmp + sizeof(tmp);

	do {
		*--p = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	sb_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void
fingerprint_into(struct sb_buf *b, const config_setting_t *s)
{
	const char *name = config_setting_name(s), *str;
	int n = config_setting_length(s);
	long long v;
	double d;

	/* No printf: this runs for every channel and node at each start, and
	 * a float's exact decimal digits cost more than all the rest.  The
	 * text is only ever compared, so a float is its bits in hex. */
	if (name) {
		sb_buf_puts(b, name);
		sb_buf_add(b, "=", 1);
	}
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_ARRAY:
		sb_buf_puts(b, config_setting_type(s) == CONFIG_TYPE_GROUP ? "{" : "(");
		for (int i = 0; i < n; i++)
			fingerprint_into(b, config_setting_get_elem(s, (unsigned)i));
		sb_buf_puts(b, ")");
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v = config_setting_type(s) == CONFIG_TYPE_INT ? config_setting_get_int(s) :
		    config_setting_get_int64(s);
		if (v < 0)
			sb_buf_add(b, "-", 1);
		add_number(b, v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v, 10);
		break;
	case CONFIG_TYPE_FLOAT: {
		unsigned long long bits;

		d = config_setting_get_float(s);
		memcpy(&bits, &d, sizeof(bits));
		sb_buf_add(b, "f", 1);
		add_number(b, bits, 16);
		break;
	}
	case CONFIG_TYPE_BOOL:
		sb_buf_puts(b, config_setting_get_bool(s) ? "true" : "false");
		break;
	case CONFIG_TYPE_STRING:
		/* Length-prefixed so no string can imitate structure. */
		str = config_setting_get_string(s);
		add_number(b, strlen(str), 10);
		sb_buf_add(b, ":", 1);
		sb_buf_puts(b, str);
		break;
	}
	sb_buf_add(b, ";", 1);
}

char *
sb_conf_fingerprint(const config_setting_t *s)
{
	struct sb_buf b = { 0 };

	if (s)
		fingerprint_into(&b, s);
	return sb_buf_steal(&b);
}

/* ---- secrets ---- */

#define SECRET_MAX 4096		/* bytes; a password, a token, a key */

int
sb_conf_check_private(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (st.st_mode & S_IROTH) {
		snprintf(err, errlen, "%s %s holds a secret but is readable by everyone "
		    "(mode %04o): chmod o-r it", what, path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Read a secret file into *out (taken by the caller).  The mode is checked
 * on the open descriptor, so a file swapped after the check is not read. */
static int
secret_read(const char *path, char **out, char *msg, size_t msglen)
{
	char buf[SECRET_MAX + 2];
	struct stat st;
	size_t len = 0;
	ssize_t n = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & S_IROTH) {
		snprintf(msg, msglen, "%s holds a secret but is readable by everyone "
		    "(mode %04o): chmod o-r it", path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	while (len < sizeof(buf) - 1 &&
	    ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(fd);
	if (n < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/* The first line, without its newline (echo and editors add one). */
	buf[len] = '\0';
	len = strcspn(buf, "\r\n");
	if (len > SECRET_MAX || len == 0 || memchr(buf, '\0', len) != NULL) {
		snprintf(msg, msglen, "%s: %s", path, len == 0 ? "empty first line" :
		    len > SECRET_MAX ? "longer than 4096 bytes" : "holds a NUL byte");
		goto fail;
	}
	buf[len] = '\0';
	*out = sb_strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
fail:
	explicit_bzero(buf, sizeof(buf));
	return -1;
}

int
sb_conf_secret(const config_setting_t *g, const char *key, char **out, char *err,
               size_t errlen)
{
	char fkey[128], where[512], msg[512];
	const config_setting_t *inl, *fil;
	const char *file, *v, *dir;
	char *path, *copy;
	int rc;

	*out = NULL;
	snprintf(fkey, sizeof(fkey), "%s_file", key);
	inl = g ? config_setting_get_member(g, key) : NULL;
	fil = g ? config_setting_get_member(g, fkey) : NULL;
	if (inl == NULL && fil == NULL)
		return 0;
	sb_conf_where(fil ? fil : inl, where, sizeof(where));
	if (inl && fil) {
		snprintf(err, errlen, "%s: give %s or %s, not both", where, key, fkey);
		return -1;
	}
	if (inl) {
		/* An inline secret is as private as the file it is written in. */
		file = config_setting_source_file(inl);
		if (file && sb_conf_check_private(file, "the config file", msg,
		    sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s: %s: %s (or use %s)", where, key, msg, fkey);
			return -1;
		}
		if ((v = config_setting_get_string(inl)) == NULL)
			v = "";
		*out = sb_strdup(v);
		return 0;
	}
	if ((v = config_setting_get_string(fil)) == NULL || *v == '\0') {
		snprintf(err, errlen, "%s: %s is empty", where, fkey);
		return -1;
	}
	if (v[0] == '/') {
		path = sb_strdup(v);
	} else if ((dir = getenv("CREDENTIALS_DIRECTORY")) != NULL && *dir) {
		path = sb_asprintf("%s/%s", dir, v);
	} else {
		file = config_setting_source_file(fil);
		copy = sb_strdup(file ? file : ".");
		path = sb_asprintf("%s/%s", file ? dirname(copy) : ".", v);
		free(copy);
	}
	rc = secret_read(path, out, msg, sizeof(msg));
	free(path);
	if (rc < 0)
		snprintf(err, errlen, "%s: %s %s", where, fkey, msg);
	return rc;
}

void
sb_secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- schema check ---- */

struct check {
	char   *err;
	size_t  errlen;
	int     failed;
};

static void SB_PRINTF(3, 4)
fail(struct check *c, const config_setting_t *s, const char *fmt, ...)
{
	char where[512], msg[512];
	va_list ap;

	if (c->failed)
		return;		/* the first error is the one reported */
	c->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_conf_where(s, where, sizeof(where));
	snprintf(c->err, c->errlen, "%s: %s", where, msg);
}

static const char *
type_name(enum sb_conf_type t)
{
	switch (t) {
	case SB_CT_STRING:	return "a string";
	case SB_CT_INT:		return "an integer";
	case SB_CT_FLOAT:	return "a number";
	case SB_CT_BOOL:	return "true or false";
	case SB_CT_GROUP:	return "a group { ... }";
	case SB_CT_LIST:	return "a list ( { ... }, ... )";
	case SB_CT_STRINGS:	return "a list of strings [ \"...\", ... ]";
	case SB_CT_DRIVER:	return "a group { ... }";
	}
	return "?";
}

static const struct sb_conf_key *
key_find(const struct sb_conf_key *keys, const char *name)
{
	for (; keys && keys->name; keys++)
		if (strcmp(keys->name, name) == 0)
			return keys;
	return NULL;
}

static void check_group(struct check *, const config_setting_t *,
                        const struct sb_conf_key *, const struct sb_conf_key *,
                        const char *what);

static const struct sb_conf_key *
driver_keys(const config_setting_t *e)
{
	const char *name;

	if (config_setting_lookup_string(e, "driver", &name) != CONFIG_TRUE)
		return NULL;
	return sb_channel_driver_keys(name);
}

static int
type_ok(const config_setting_t *s, enum sb_conf_type t)
{
	int ct = config_setting_type(s);

	switch (t) {
	case SB_CT_STRING:
		return ct == CONFIG_TYPE_STRING;
	case SB_CT_INT:
		return ct == CONFIG_TYPE_INT || ct == CONFIG_TYPE_INT64;
	case SB_CT_FLOAT:
		return ct == CONFIG_TYPE_INT || ct == CONFIG_TYPE_INT64 ||
		    ct == CONFIG_TYPE_FLOAT;
	case SB_CT_BOOL:
		return ct == CONFIG_TYPE_BOOL;
	case SB_CT_GROUP:
	case SB_CT_DRIVER:
		return ct == CONFIG_TYPE_GROUP;
	case SB_CT_LIST:
		return ct == CONFIG_TYPE_LIST;
	case SB_CT_STRINGS:
		if (ct != CONFIG_TYPE_ARRAY && ct != CONFIG_TYPE_LIST)
			return 0;
		for (int i = 0; i < config_setting_length(s); i++)
			if (config_setting_type(config_setting_get_elem(s,
			    (unsigned)i)) != CONFIG_TYPE_STRING)
				return 0;
		return 1;
	}
	return 0;
}

static void
check_value(struct check *c, const config_setting_t *s, const struct sb_conf_key *k)
{
	const char *name = config_setting_name(s);

	if (!type_ok(s, k->type)) {
		fail(c, s, "'%s' must be %s", name, type_name(k->type));
		return;
	}
	if (k->type == SB_CT_GROUP) {
		check_group(c, s, k->sub, NULL, name);
	} else if (k->type == SB_CT_LIST) {
		for (int i = 0; i < config_setting_length(s); i++) {
			config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

			if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
				fail(c, e, "each entry of '%s' must be a group { ... }", name);
				return;
			}
			/* A channel's section also takes its driver's keys. */
			check_group(c, e, k->sub, k->sub == channel_keys ?
			    driver_keys(e) : NULL, name);
		}
	} else if (k->type == SB_CT_DRIVER) {
		/* A HAL group: its backend names the extra keys it takes. */
		const char *be = NULL;
		const struct sb_hal_backend *b;

		if (config_setting_lookup_string(s, "backend", &be) != CONFIG_TRUE) {
			fail(c, s, "'%s' needs a string 'backend'", name);
			return;
		}
		if ((b = sb_hal_backend_find(be)) == NULL) {
			if (sb_hal_backend_error(be))
				fail(c, config_setting_get_member(s, "backend"),
				    "HAL backend \"%s\" cannot be loaded: %s", be,
				    sb_hal_backend_error(be));
			else
				fail(c, config_setting_get_member(s, "backend"),
				    "unknown HAL backend \"%s\"", be);
			return;
		}
		check_group(c, s, k->sub, b->keys, name);
	}
}

static void
check_group(struct check *c, const config_setting_t *g,
            const struct sb_conf_key *keys, const struct sb_conf_key *extra,
            const char *what)
{
	const struct sb_conf_key *k;

	for (int i = 0; i < config_setting_length(g) && !c->failed; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);

		if ((k = key_find(keys, name)) == NULL)
			k = key_find(extra, name);
		if (k == NULL) {
			fail(c, s, "unknown key '%s' in %s", name, what);
			return;
		}
		check_value(c, s, k);
	}
	for (int pass = 0; pass < 2 && !c->failed; pass++)
		for (k = pass ? extra : keys; k && k->name; k++)
			if ((k->flags & SB_KEY_REQUIRED) &&
			    config_setting_get_member(g, k->name) == NULL) {
				fail(c, g, "%s: missing required key '%s'", what, k->name);
				return;
			}
}

/* ---- building the struct ---- */

static char **
strings_dup(const config_setting_t *s, size_t *n)
{
	char **v;

	*n = s ? (size_t)config_setting_length(s) : 0;
	v = sb_calloc(*n + 1, sizeof(*v));
	for (size_t i = 0; i < *n; i++)
		v[i] = sb_strdup(config_setting_get_string_elem(s, (int)i));
	return v;
}

static void
strings_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char *
str_or_null(const config_setting_t *e, const char *key)
{
	const char *v = sb_conf_str(e, key, NULL);

	return v ? sb_strdup(v) : NULL;
}

static int
load_daemon(struct check *c, struct sb_config *conf)
{
	config_setting_t *d = config_lookup(&conf->cf, "daemon");
	config_setting_t *s;
	const char *lvl = sb_conf_str(d, "log_level", "info");

	conf->socket = sb_strdup(sb_conf_str(d, "socket", DEFAULT_SOCKET));
	conf->state_dir = sb_strdup(sb_conf_str(d, "state_dir", DEFAULT_STATE));
	conf->default_context = sb_strdup(sb_conf_str(d, "default_context", "default"));
	conf->use_syslog = sb_conf_bool(d, "syslog", 1);
	conf->poll_interval = sb_conf_float(d, "poll_interval", 5.0);
	conf->confirm_timeout = (int)sb_conf_int(d, "confirm_timeout", 60);
	if ((conf->log_level = sb_log_level_parse(lvl)) < 0) {
		fail(c, config_setting_get_member(d, "log_level"),
		    "unknown log_level \"%s\" (debug, info, notice, warning, error)", lvl);
		return -1;
	}
	if (!(conf->poll_interval >= 0.05 && conf->poll_interval <= 86400)) {
		fail(c, config_setting_get_member(d, "poll_interval"),
		    "poll_interval must be between 0.05 and 86400 seconds");
		return -1;
	}
	if (conf->confirm_timeout < 1 || conf->confirm_timeout > 3600) {
		fail(c, config_setting_get_member(d, "confirm_timeout"),
		    "confirm_timeout must be between 1 and 3600 seconds");
		return -1;
	}
	conf->user = str_or_null(d, "user");
	conf->group = str_or_null(d, "group");
	conf->socket_group = str_or_null(d, "socket_group");
	if (conf->user && getpwnam(conf->user) == NULL) {
		fail(c, config_setting_get_member(d, "user"), "no user \"%s\"", conf->user);
		return -1;
	}
	if (conf->group && conf->user == NULL) {
		fail(c, config_setting_get_member(d, "group"), "group needs user");
		return -1;
	}
	if (conf->group && getgrnam(conf->group) == NULL) {
		fail(c, config_setting_get_member(d, "group"), "no group \"%s\"", conf->group);
		return -1;
	}
	if (conf->socket_group && getgrnam(conf->socket_group) == NULL) {
		fail(c, config_setting_get_member(d, "socket_group"), "no group \"%s\"",
		    conf->socket_group);
		return -1;
	}
	if (d && (s = config_setting_get_member(d, "scripts")) != NULL) {
		conf->scripts = strings_dup(s, &conf->nscripts);
	} else {
		conf->nscripts = 2;
		conf->scripts = sb_calloc(3, sizeof(char *));
		conf->scripts[0] = sb_strdup(SB_SYSCONFDIR "/scripts");
		conf->scripts[1] = sb_strdup(DEFAULT_SCRIPTS_SYS);
	}
	return 0;
}

static int
valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static int
load_channels(struct check *c, struct sb_config *conf)
{
	config_setting_t *l = config_lookup(&conf->cf, "channels");
	size_t n = l ? (size_t)config_setting_length(l) : 0;

	conf->channels = sb_calloc(n + 1, sizeof(*conf->channels));
	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		struct sb_chan_conf *cc = &conf->channels[conf->nchannels];
		const char *name = sb_conf_str(e, "name", "");
		const char *drv = sb_conf_str(e, "driver", "");
		const char *d = sb_channel_driver_known(drv);

		if (!valid_name(name)) {
			fail(c, config_setting_get_member(e, "name"),
			    "channel name \"%s\" must be 1-63 letters, digits, '-', '_' or '.'", name);
			return -1;
		}
		if (d == NULL) {
			fail(c, config_setting_get_member(e, "driver"),
			    "unknown channel driver \"%s\"", drv);
			return -1;
		}
		for (size_t j = 0; j < conf->nchannels; j++)
			if (strcmp(conf->channels[j].name, name) == 0) {
				fail(c, e, "duplicate channel \"%s\" (first at line %d)",
				    name, conf->channels[j].line);
				return -1;
			}
		check_group(c, e, channel_keys, sb_channel_driver_keys(d), "channel");
		if (c->failed)
			return -1;
		cc->name = sb_strdup(name);
		cc->driver = d;
		cc->context = sb_strdup(sb_conf_str(e, "context", conf->default_context));
		cc->group_context = sb_strdup(sb_conf_str(e, "group_context", cc->context));
		cc->setting = e;
		cc->fingerprint = sb_conf_fingerprint(e);
		cc->line = (int)config_setting_source_line(e);
		conf->nchannels++;
	}
	return 0;
}

static int
load_nodes(struct check *c, struct sb_config *conf)
{
	config_setting_t *l = config_lookup(&conf->cf, "nodes");
	size_t n = l ? (size_t)config_setting_length(l) : 0;

	conf->nodes = sb_calloc(n + 1, sizeof(*conf->nodes));
	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		struct sb_node_conf *nc = &conf->nodes[conf->nnodes];
		const char *name = sb_conf_str(e, "name", "");
		config_setting_t *hal = config_setting_get_member(e, "hal");

		if (!valid_name(name)) {
			fail(c, config_setting_get_member(e, "name"),
			    "node name \"%s\" must be 1-63 letters, digits, '-', '_' or '.'", name);
			return -1;
		}
		for (size_t j = 0; j < conf->nnodes; j++)
			if (strcmp(conf->nodes[j].name, name) == 0) {
				fail(c, e, "duplicate node \"%s\" (first at line %d)",
				    name, conf->nodes[j].line);
				return -1;
			}
		nc->name = sb_strdup(name);
		nc->line = (int)config_setting_source_line(e);
		nc->groups = strings_dup(config_setting_get_member(e, "groups"), &nc->ngroups);
		nc->poll_interval = sb_conf_float(e, "poll_interval", conf->poll_interval);
		conf->nnodes++;
		if (!(nc->poll_interval >= 0.05 && nc->poll_interval <= 86400)) {
			fail(c, config_setting_get_member(e, "poll_interval"),
			    "poll_interval must be between 0.05 and 86400 seconds");
			return -1;
		}
		nc->backend = sb_hal_backend_find(sb_conf_str(hal, "backend", ""));
		nc->hal = hal;
		nc->hal_fingerprint = sb_conf_fingerprint(hal);
	}
	return 0;
}

static int
load_acl(struct check *c, struct sb_config *conf)
{
	config_setting_t *l = config_lookup(&conf->cf, "acl");
	config_setting_t *r = config_lookup(&conf->cf, "roles");
	size_t n = l ? (size_t)config_setting_length(l) : 0;
	size_t m = r ? (size_t)config_setting_length(r) : 0;

	(void)c;
	conf->acl = sb_calloc(n + 1, sizeof(*conf->acl));
	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);

		conf->acl[i].pattern = sb_strdup(sb_conf_str(e, "match", ""));
		conf->acl[i].role = sb_strdup(sb_conf_str(e, "role", ""));
		conf->acl[i].line = (int)config_setting_source_line(e);
	}
	conf->nacl = n;
	conf->roles = sb_calloc(m + 1, sizeof(*conf->roles));
	for (size_t i = 0; i < m; i++) {
		config_setting_t *e = config_setting_get_elem(r, (unsigned)i);

		conf->roles[i].name = sb_strdup(sb_conf_str(e, "name", ""));
		conf->roles[i].inherits = sb_strdup(sb_conf_str(e, "inherits", ""));
		conf->roles[i].line = (int)config_setting_source_line(e);
	}
	conf->nroles = m;
	return 0;
}

static int
load_rules(struct check *c, struct sb_config *conf)
{
	config_setting_t *l = config_lookup(&conf->cf, "rules");
	config_setting_t *r = config_lookup(&conf->cf, "rate_limit");
	size_t n = l ? (size_t)config_setting_length(l) : 0;

	conf->rules = sb_calloc(n + 1, sizeof(*conf->rules));
	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		struct sb_rule_conf *rc = &conf->rules[i];
		const char *file = config_setting_source_file(e);

		rc->command = str_or_null(e, "command");
		rc->node = str_or_null(e, "node");
		rc->channel = str_or_null(e, "channel");
		rc->room = str_or_null(e, "room");
		rc->where = str_or_null(e, "where");
		rc->identity = str_or_null(e, "identity");
		rc->role = str_or_null(e, "role");
		rc->allow = sb_conf_bool(e, "allow", 1);
		rc->file = sb_strdup(file ? file : conf->path);
		rc->line = (int)config_setting_source_line(e);
		conf->nrules++;
		if (rc->where && strcmp(rc->where, "direct") != 0 &&
		    strcmp(rc->where, "group") != 0 && strcmp(rc->where, "any") != 0) {
			fail(c, config_setting_get_member(e, "where"),
			    "rule: where must be \"direct\", \"group\" or \"any\", not \"%s\"",
			    rc->where);
			return -1;
		}
		if (!rc->allow && rc->role) {
			fail(c, e, "rule: allow = false refuses the command: it takes no role");
			return -1;
		}
		if (rc->allow && rc->role == NULL && !config_setting_get_member(e, "allow")) {
			fail(c, e, "rule: say what it does: role = \"...\" or allow = false");
			return -1;
		}
	}
	conf->rate = sb_conf_float(r, "rate", 2.0);
	conf->burst = (int)sb_conf_int(r, "burst", 30);
	if (!(conf->rate > 0 && conf->rate <= 1000)) {
		fail(c, config_setting_get_member(r, "rate"),
		    "rate_limit: rate must be more than 0 and at most 1000 commands a second");
		return -1;
	}
	if (conf->burst < 0 || conf->burst > 100000) {
		fail(c, config_setting_get_member(r, "burst"),
		    "rate_limit: burst must be between 0 (no limit) and 100000");
		return -1;
	}
	return 0;
}

struct sb_config *
sb_conf_load(const char *path, char *err, size_t errlen)
{
	struct sb_config *conf = sb_calloc(1, sizeof(*conf));
	struct check c = { .err = err, .errlen = errlen };
	FILE *f;
	char *dir;

	conf->path = sb_strdup(path);
	config_init(&conf->cf);
	/* @include "x.conf" is relative to the including file's folder. */
	dir = sb_strdup(path);
	config_set_include_dir(&conf->cf, dirname(dir));
	free(dir);

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	if (config_read_file(&conf->cf, path) != CONFIG_TRUE) {
		const char *file = config_error_file(&conf->cf);

		snprintf(err, errlen, "%s:%d: %s", file ? file : path,
		    config_error_line(&conf->cf), config_error_text(&conf->cf));
		goto fail;
	}
	check_group(&c, config_root_setting(&conf->cf), top_keys, NULL, "the top level");
	if (c.failed)
		goto fail;
	if (load_daemon(&c, conf) || load_channels(&c, conf) ||
	    load_nodes(&c, conf) || load_acl(&c, conf) || load_rules(&c, conf))
		goto fail;
	return conf;
fail:
	sb_conf_free(conf);
	return NULL;
}

void
sb_conf_release_nodes(struct sb_config *conf)
{
	config_setting_t *root = config_root_setting(&conf->cf);

	for (size_t i = 0; i < conf->nnodes; i++) {
		conf->nodes[i].hal = NULL;
		free(conf->nodes[i].hal_fingerprint);
		conf->nodes[i].hal_fingerprint = NULL;
	}
	if (config_setting_get_member(root, "nodes") != NULL)
		config_setting_remove(root, "nodes");
	/* Give the parse tree's pages back: at 10,000 nodes it is the
	 * largest thing the daemon ever held. */
	malloc_trim(0);
}

void
sb_conf_free(struct sb_config *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->nchannels; i++) {
		free(conf->channels[i].name);
		free(conf->channels[i].context);
		free(conf->channels[i].group_context);
		free(conf->channels[i].fingerprint);
	}
	free(conf->channels);
	for (size_t i = 0; i < conf->nnodes; i++) {
		free(conf->nodes[i].name);
		strings_free(conf->nodes[i].groups, conf->nodes[i].ngroups);
		free(conf->nodes[i].hal_fingerprint);
	}
	free(conf->nodes);
	for (size_t i = 0; i < conf->nacl; i++) {
		free(conf->acl[i].pattern);
		free(conf->acl[i].role);
	}
	free(conf->acl);
	for (size_t i = 0; i < conf->nroles; i++) {
		free(conf->roles[i].name);
		free(conf->roles[i].inherits);
	}
	free(conf->roles);
	for (size_t i = 0; i < conf->nrules; i++) {
		struct sb_rule_conf *rc = &conf->rules[i];

		free(rc->command);
		free(rc->node);
		free(rc->channel);
		free(rc->room);
		free(rc->where);
		free(rc->identity);
		free(rc->role);
		free(rc->file);
	}
	free(conf->rules);
	strings_free(conf->scripts, conf->nscripts);
	free(conf->socket);
	free(conf->state_dir);
	free(conf->default_context);
	free(conf->user);
	free(conf->group);
	free(conf->socket_group);
	free(conf->path);
	config_destroy(&conf->cf);
	free(conf);
}

/* ---- the reference ---- */

static const char *
type_word(enum sb_conf_type t)
{
	switch (t) {
	case SB_CT_STRING:	return "string";
	case SB_CT_INT:		return "integer";
	case SB_CT_FLOAT:	return "number";
	case SB_CT_BOOL:	return "boolean";
	case SB_CT_GROUP:	return "group";
	case SB_CT_LIST:	return "list";
	case SB_CT_STRINGS:	return "strings";
	case SB_CT_DRIVER:	return "group";
	}
	return "?";
}

static void
dump(const char *prefix, const struct sb_conf_key *keys)
{
	char path[256];

	for (; keys && keys->name; keys++) {
		snprintf(path, sizeof(path), "%s%s", prefix, keys->name);
		printf("%s\t%s\t%s\t%s\n", path, type_word(keys->type),
		    (keys->flags & SB_KEY_REQUIRED) ? "(required)" :
		    keys->def ? keys->def : "-", keys->doc ? keys->doc : "");
		if (keys->type == SB_CT_GROUP || keys->type == SB_CT_DRIVER) {
			snprintf(path, sizeof(path), "%s%s.", prefix, keys->name);
			dump(path, keys->sub);
		} else if (keys->type == SB_CT_LIST) {
			snprintf(path, sizeof(path), "%s%s[].", prefix, keys->name);
			dump(path, keys->sub);
		}
	}
}

void
sb_conf_dump_keys(void)
{
	char prefix[128];
	const struct sb_hal_backend *b;
	const char *d;

	dump("", top_keys);
	for (size_t i = 0; (d = sb_channel_driver_name_at(i)) != NULL; i++) {
		snprintf(prefix, sizeof(prefix), "channels[driver=%s].", d);
		dump(prefix, sb_channel_driver_keys(d));
	}
	for (size_t i = 0; (b = sb_hal_backend_at(i)) != NULL; i++) {
		snprintf(prefix, sizeof(prefix), "nodes[].hal[backend=%s].", b->name);
		/* "backend" itself is in the core's table. */
		for (const struct sb_conf_key *k = b->keys; k && k->name; k++)
			if (strcmp(k->name, "backend") != 0) {
				struct sb_conf_key one[2] = { *k, { 0 } };

				dump(prefix, one);
			}
	}
}
