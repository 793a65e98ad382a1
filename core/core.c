/*
 * core.c: the daemon's life cycle.  Boots the model, the ACL and the
 * channels from a loaded config; reloads it in place (nodes and ACL change
 * in place, a channel restarts only if its own section changed, a config
 * that fails leaves the running one untouched); stops everything.  Also the
 * channel instance registry and the simplest notification path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dialplan.h"
#include "hal.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "notify.h"
#include "retain.h"
#include "util.h"

struct sb_core sb_core;

static struct sb_channel **chans;
static size_t nchans;
/* Channels stopped from inside a callback are freed before the next sleep,
 * when no callback of theirs is on the stack. */
static struct sb_channel **graveyard;
static size_t ngraveyard;

/* ---- channel instances ---- */

struct sb_channel *
sb_channel_find(const char *name)
{
	for (size_t i = 0; i < nchans; i++)
		if (strcmp(chans[i]->name, name) == 0)
			return chans[i];
	return NULL;
}

size_t
sb_channel_count(void)
{
	return nchans;
}

struct sb_channel *
sb_channel_at(size_t i)
{
	return i < nchans ? chans[i] : NULL;
}

struct sb_channel *
sb_channel_for_dest(const char *dest, const char **addr)
{
	const char *colon = strchr(dest, ':');
	size_t len = colon ? (size_t)(colon - dest) : strlen(dest);

	*addr = colon && colon[1] ? colon + 1 : NULL;
	for (size_t i = 0; i < nchans; i++)
		if (strlen(chans[i]->name) == len && strncmp(chans[i]->name, dest, len) == 0)
			return chans[i];
	/* a driver's name stands for its first instance: "xmpp:ops@example.org" */
	for (size_t i = 0; i < nchans; i++)
		if (strlen(chans[i]->drv->name) == len &&
		    strncmp(chans[i]->drv->name, dest, len) == 0)
			return chans[i];
	return NULL;
}

int
sb_channel_register(struct sb_channel *ch)
{
	if (sb_channel_find(ch->name) != NULL)
		return -1;
	chans = sb_realloc(chans, (nchans + 1) * sizeof(*chans));
	chans[nchans++] = ch;
	return 0;
}

void
sb_channel_unregister(struct sb_channel *ch)
{
	for (size_t i = 0; i < nchans; i++)
		if (chans[i] == ch) {
			memmove(&chans[i], &chans[i + 1], (nchans - i - 1) * sizeof(*chans));
			if (--nchans == 0) {
				free(chans);
				chans = NULL;
			}
			return;
		}
}

static struct sb_channel *
channel_open(const struct sb_channel_driver *d, const char *name, const char *context,
             const char *group_context, const char *fingerprint,
             const config_setting_t *setting, char *err, size_t errlen)
{
	struct sb_channel *ch = sb_calloc(1, sizeof(*ch));
	char msg[256] = "";

	ch->drv = d;
	ch->name = sb_strdup(name);
	ch->context = sb_strdup(context);
	ch->group_context = sb_strdup(group_context);
	ch->fingerprint = sb_strdup(fingerprint);
	if (d->abi != SB_CHANNEL_ABI) {
		snprintf(err, errlen, "channel %s: driver %s has ABI %u, core has %u",
		    name, d->name, d->abi, SB_CHANNEL_ABI);
		goto fail;
	}
	if (d->open(ch, setting, msg, sizeof(msg)) < 0) {
		char where[256] = "";

		if (setting)
			sb_conf_where(setting, where, sizeof(where));
		snprintf(err, errlen, "%s%schannel %s: %s", where, *where ? ": " : "",
		    name, msg);
		goto fail;
	}
	return ch;
fail:
	free(ch->name);
	free(ch->context);
	free(ch->group_context);
	free(ch->fingerprint);
	free(ch);
	return NULL;
}

static void
channel_free(struct sb_channel *ch)
{
	ch->drv->close(ch);
	free(ch->name);
	free(ch->context);
	free(ch->group_context);
	free(ch->fingerprint);
	free(ch);
}

static void
channel_retire(struct sb_channel *ch)
{
	if (ch->started) {
		ch->drv->stop(ch);
		ch->started = 0;
	}
	graveyard = sb_realloc(graveyard, (ngraveyard + 1) * sizeof(*graveyard));
	graveyard[ngraveyard++] = ch;
}

static void
bury(struct sb_loop *loop, void *ud)
{
	(void)loop;
	(void)ud;
	for (size_t i = 0; i < ngraveyard; i++)
		channel_free(graveyard[i]);
	ngraveyard = 0;
}

static int
channel_start(struct sb_channel *ch)
{
	if (ch->drv->start(ch) < 0) {
		sb_warnx("channel %s (%s) did not start", ch->name, ch->drv->name);
		return -1;
	}
	ch->started = 1;
	sb_info("channel %s (%s) started", ch->name, ch->drv->name);
	return 0;
}

/*
 * Open the channels a config asks for, without starting them: open() only
 * parses, so a bad section fails here before anything running is touched.
 * The console is always there, even if the config names none.
 */
static struct sb_channel **channels_open_1(const struct sb_config *, int, size_t *, char *,
                                           size_t);
static void channels_discard(struct sb_channel **, size_t);

/* What decides whether a running channel can stay: its section, and for
 * the console the socket path, which comes from elsewhere. */
static char *
fingerprint_of(const struct sb_channel_driver *d, const char *section,
               const struct sb_config *conf)
{
	const char *sock = sb_core.socket_override ? sb_core.socket_override : conf->socket;

	if (d == &sb_chan_console)
		return sb_asprintf("%s|socket=%s", section, sock);
	return sb_strdup(section);
}

/* The channels of conf, the running ones that stay among them; with
 * loaded_only, only those whose driver is in (see sb_core_start). */
static struct sb_channel **
channels_open(const struct sb_config *conf, int loaded_only, size_t *np, char *err,
              size_t errlen)
{
	struct sb_channel **v;

	sb_core.opening = conf;
	v = channels_open_1(conf, loaded_only, np, err, errlen);
	sb_core.opening = NULL;
	return v;
}

static struct sb_channel **
channels_open_1(const struct sb_config *conf, int loaded_only, size_t *np, char *err,
                size_t errlen)
{
	struct sb_channel **v = sb_calloc(conf->nchannels + 2, sizeof(*v));
	size_t n = 0;
	int have_console = 0;
	char *fp;

	for (size_t i = 0; i < conf->nchannels; i++)
		have_console |= strcmp(conf->channels[i].driver, "console") == 0;
	fp = fingerprint_of(&sb_chan_console, "", conf);
	if (!have_console && (v[n] = sb_channel_find("console")) != NULL &&
	    v[n]->drv == &sb_chan_console && strcmp(v[n]->fingerprint, fp) == 0) {
		/* the implicit console keeps running, in the new context */
		free(v[n]->context);
		free(v[n]->group_context);
		v[n]->context = sb_strdup(conf->default_context);
		v[n]->group_context = sb_strdup(conf->default_context);
		n++;
	} else if (!have_console) {
		v[n] = channel_open(&sb_chan_console, "console", conf->default_context,
		    conf->default_context, fp, NULL, err, errlen);
		if (v[n] == NULL) {
			free(fp);
			goto fail;
		}
		n++;
	}
	free(fp);
	for (size_t i = 0; i < conf->nchannels; i++) {
		const struct sb_chan_conf *cc = &conf->channels[i];
		struct sb_channel *old = sb_channel_find(cc->name);
		const struct sb_channel_driver *d;

		if (loaded_only && !sb_channel_driver_loaded(cc->driver))
			continue;
		if ((d = sb_channel_driver_find(cc->driver)) == NULL) {
			char where[256] = "";

			sb_conf_where(cc->setting, where, sizeof(where));
			snprintf(err, errlen, "%s%schannel %s: driver %s: %s", where,
			    *where ? ": " : "", cc->name, cc->driver,
			    sb_channel_driver_error(cc->driver));
			goto fail;
		}
		fp = fingerprint_of(d, cc->fingerprint, conf);
		if (old && old->drv == d && strcmp(old->fingerprint, fp) == 0) {
			/* Unchanged: keeps running; its context may come from
			 * daemon.default_context, which may have changed. */
			free(old->context);
			free(old->group_context);
			old->context = sb_strdup(cc->context);
			old->group_context = sb_strdup(cc->group_context);
			v[n++] = old;
			free(fp);
			continue;
		}
		v[n] = channel_open(d, cc->name, cc->context, cc->group_context,
		    fp, cc->setting, err, errlen);
		free(fp);
		if (v[n] == NULL)
			goto fail;
		n++;
	}
	*np = n;
	return v;
fail:
	channels_discard(v, n);
	return NULL;
}

/* Drop a list channels_open() made without committing it: the channels it
 * opened go, the running ones it kept stay. */
static void
channels_discard(struct sb_channel **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!sb_channel_find(v[i]->name) || sb_channel_find(v[i]->name) != v[i])
			channel_free(v[i]);
	free(v);
}

/* Swap in a new channel list: retire the channels not in it, start the
 * new ones. */
static void
channels_commit(struct sb_channel **v, size_t n)
{
	for (size_t i = 0; i < nchans; i++) {
		int kept = 0;

		for (size_t j = 0; j < n && !kept; j++)
			kept = v[j] == chans[i];
		if (!kept) {
			sb_info("channel %s stopped", chans[i]->name);
			channel_retire(chans[i]);
		}
	}
	free(chans);
	chans = v;
	nchans = n;
	for (size_t i = 0; i < nchans; i++)
		if (!chans[i]->started)
			channel_start(chans[i]);
}

/* ---- state changes to events ---- */

static void
on_state(struct sb_node *n, enum sb_state old, void *ud)
{
	struct sb_event_in ev = { .source = "state", .node = n->name };
	char text[512], key[300];
	const char *open_sev;

	(void)ud;
	switch (n->state) {
	case SB_ST_CRITICAL:
	case SB_ST_DOWN:
		ev.severity = "critical";
		break;
	case SB_ST_WARNING:
		ev.severity = "warning";
		break;
	default:
		/* ok, off, maint, unknown: whatever was wrong is over. */
		ev.severity = "info";
		ev.resolved = 1;
		break;
	}
	snprintf(key, sizeof(key), "state/%s", n->name);
	open_sev = old == SB_ST_UNKNOWN ? sb_notify_open_severity(key) : NULL;
	/* A node's first answer saying all is well is not news (10,000
	 * gateway nodes starting would make 10,000 events), unless it ends
	 * a problem still open from before a restart; nor is one repeating
	 * that problem: it goes on, and so do its event and escalation
	 * (a new event would supersede it, past the dedup window). */
	if (old == SB_ST_UNKNOWN && n->state == SB_ST_OK && open_sev == NULL)
		return;
	if (old == SB_ST_UNKNOWN && !ev.resolved && open_sev != NULL &&
	    strcmp(open_sev, ev.severity) == 0)
		return;
	snprintf(text, sizeof(text), "%s: %s -> %s: %s", n->name, sb_state_name(old),
	    sb_state_name(n->state), n->reason);
	ev.text = text;
	ev.key = key;
	sb_event_submit(&ev, NULL, NULL);
}

void
sb_core_event(const char *source, const char *node, const char *severity,
              const char *text)
{
	struct sb_event_in ev = { .source = source, .node = node, .severity = severity,
	    .text = text };
	struct sb_channel *con;
	const char *addr;

	if (sb_event_submit(&ev, NULL, NULL) < 0 &&
	    (con = sb_channel_for_dest("console", &addr)) != NULL && con->started &&
	    con->drv->send != NULL)
		con->drv->send(con, addr, text);
}

/* ---- life cycle ---- */

static int
make_state_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create state folder: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a folder", dir);
		return -1;
	}
	return 0;
}

static void
apply_daemon(const struct sb_config *conf)
{
	sb_core.socket = sb_core.socket_override ? sb_core.socket_override : conf->socket;
	sb_core.state_dir = sb_core.state_override ? sb_core.state_override : conf->state_dir;
	sb_log_set_level(sb_core.verbose ? SB_LOG_DEBUG : (enum sb_log_level)conf->log_level);
}

int
sb_core_start(struct sb_config *conf, char *err, size_t errlen)
{
	struct sb_channel **v;
	size_t n;
	int early;

	sb_core.conf = conf;
	apply_daemon(conf);
	if (make_state_dir(sb_core.state_dir, err, errlen) < 0)
		return -1;
	if (sb_notify_apply(config_lookup(&conf->cf, "notify"), err, errlen) < 0)
		return -1;
	if (sb_retain_apply(config_lookup(&conf->cf, "store"), err, errlen) < 0)
		return -1;
	if (sb_acl_configure(conf, err, errlen) < 0)
		return -1;
	if (sb_nodes_apply(conf->nodes, conf->nnodes, err, errlen) < 0)
		return -1;
	sb_node_observe(on_state, NULL);
	sb_loop_add_before_sleep(sb_core.loop, bury, NULL);
	/*
	 * The start is ordered for the time to the first presence.  The
	 * channels whose drivers are in start first: their links connect on
	 * their threads while the store opens and the scripts load (nothing
	 * reaches the dialplan or the notifier before the loop runs, and no
	 * node has a state to announce before its first poll).
	 *
	 * Then it depends on whether privileges are dropped after this
	 * (main.c).  If not, the first polls run here, before the module
	 * drivers' channels start: their states are the first presences,
	 * which the links send on their threads while this one loads the
	 * module (measured: loading it on another core meanwhile made the
	 * polls later, not the module sooner, on two cores).  The maintenance
	 * windows apply first, so that a node in one is never announced as
	 * anything else; nothing but the due timers runs, so the console
	 * still answers only once every channel has started.  If privileges
	 * are dropped, no poll may run before that, and the module channels
	 * must start before it (a port below 1024, a root-only key): the
	 * module loads on another core while the store opens and the
	 * scripts load (not earlier: while the dynamic loader holds its lock
	 * no thread can start), and the polls wait for the loop.
	 */
	early = !sb_core.will_drop;
	if ((v = channels_open(conf, 1, &n, err, errlen)) == NULL)
		return -1;
	channels_commit(v, n);
	for (size_t i = 0; !early && i < conf->nchannels; i++)
		sb_channel_driver_preload(conf->channels[i].driver);
	if (sb_notify_start(sb_core.state_dir, err, errlen) < 0)
		return -1;
	sb_retain_start(sb_core.loop);
	if (sb_dialplan_start(err, errlen) < 0)
		return -1;
	if (early) {
		sb_maint_apply();
		sb_loop_run_due(sb_core.loop);
	}
	if ((v = channels_open(conf, 0, &n, err, errlen)) == NULL)
		return -1;
	channels_commit(v, n);
	sb_notify_go();
	/* Without its control socket the daemon cannot be driven: fatal. */
	for (size_t i = 0; i < nchans; i++)
		if (chans[i]->drv == &sb_chan_console && !chans[i]->started) {
			snprintf(err, errlen, "the console channel could not start");
			return -1;
		}
	sb_notice("switchboard started: %zu nodes, %zu channels", sb_node_count(), nchans);
	sb_conf_release_nodes(conf);
	return 0;
}

int
sb_core_reload(char *err, size_t errlen)
{
	struct sb_config *conf, *old = sb_core.conf;
	struct sb_channel **v;
	size_t n;

	/* Everything that can fail comes before the nodes change: the nodes
	 * are applied last, so a failure never has to re-apply the old ones
	 * (whose settings were released once they were applied). */
	if ((conf = sb_conf_load(sb_core.conf_path, err, errlen)) == NULL)
		goto fail;
	if (sb_notify_apply(config_lookup(&conf->cf, "notify"), err, errlen) < 0 ||
	    sb_retain_apply(config_lookup(&conf->cf, "store"), err, errlen) < 0)
		goto fail_conf;
	if (sb_acl_configure(conf, err, errlen) < 0)
		goto fail_conf;
	if ((v = channels_open(conf, 0, &n, err, errlen)) == NULL)
		goto fail_acl;
	if (sb_nodes_apply(conf->nodes, conf->nnodes, err, errlen) < 0) {
		channels_discard(v, n);
		goto fail_acl;
	}
	channels_commit(v, n);
	sb_core.conf = conf;
	apply_daemon(conf);
	sb_conf_free(old);
	sb_conf_release_nodes(conf);
	if (sb_dialplan_reload(err, errlen) < 0)
		sb_warnx("config reloaded, but the dialplan kept its old scripts: %s", err);
	sb_notice("configuration reloaded: %zu nodes, %zu channels", sb_node_count(), nchans);
	return 0;
fail_acl:
	{
		char ignore[256];

		sb_acl_configure(old, ignore, sizeof(ignore));
	}
fail_conf:
	sb_conf_free(conf);
fail:
	sb_warnx("reload failed, the running configuration stays: %s", err);
	return -1;
}

void
sb_core_stop(void)
{
	sb_core.stopping = 1;
	sb_loop_stop(sb_core.loop);
}

void
sb_core_shutdown(void)
{
	sb_notify_hold();
	for (size_t i = nchans; i-- > 0;)
		channel_retire(chans[i]);
	free(chans);
	chans = NULL;
	nchans = 0;
	/* Channel threads are joined now; what they posted last is run (and,
	 * its channel being gone, dropped) before their memory goes. */
	sb_loop_run_posted(sb_core.loop);
	bury(NULL, NULL);
	free(graveyard);
	graveyard = NULL;
	sb_dialplan_stop();
	sb_retain_stop();
	sb_notify_stop();
	sb_nodes_clear();
	sb_acl_clear();
	sb_conf_free(sb_core.conf);
	sb_core.conf = NULL;
}

int
sb_core_check(const struct sb_config *conf, char *err, size_t errlen)
{
	struct sb_channel **v;
	size_t n;

	/* Everything a start would parse, without starting anything. */
	if (sb_notify_apply(config_lookup(&conf->cf, "notify"), err, errlen) < 0 ||
	    sb_retain_apply(config_lookup(&conf->cf, "store"), err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < conf->nnodes; i++) {
		const struct sb_node_conf *c = &conf->nodes[i];
		char msg[256] = "", where[256];
		struct sb_hal *h = sb_hal_open(c->backend, c->name, c->hal, msg, sizeof(msg));

		if (h == NULL) {
			sb_conf_where(c->hal, where, sizeof(where));
			snprintf(err, errlen, "%s: node %s: %s", where, c->name, msg);
			return -1;
		}
		sb_hal_close(h);
	}
	if (sb_acl_configure(conf, err, errlen) < 0)
		return -1;
	sb_acl_clear();
	if ((v = channels_open(conf, 0, &n, err, errlen)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		channel_free(v[i]);
	free(v);
	return 0;
}
