/*
 * channel.c: the channel drivers.  A third-party driver is a file under
 * channels/ that defines a const struct sb_channel_driver and gets a line
 * in the table below (doc/architecture.md).
 *
 * The HTTP driver is a module (module.h): libmicrohttpd and GnuTLS are a
 * third of the libraries the daemon would map at exec, and most of its
 * start-up before main().  Its keys stay here, so that a configuration is
 * checked without loading it; its channels start after the others, once
 * it is loaded: on a thread of its own while the core starts
 * (sb_channel_driver_preload) when privileges are dropped after the
 * start, else on the main thread after the first polls (core.c).  Programs linked with chan_http.o (the tests) have
 * it at once: the reference is weak.
 */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "channel.h"
#include "conf.h"
#include "log.h"
#include "module.h"
#include "util.h"

#pragma weak sb_chan_http
extern const struct sb_conf_key http_keys[];

static struct {
	const char *name;
	const struct sb_channel_driver *drv;
	const struct sb_conf_key *keys;	/* a module's, before it is loaded */
	const char *module;	/* where to load it from if not linked in */
	int     tried;
	int     preloading;
	char    why[256];	/* why the module did not load */
} slots[] = {
	{ "console", &sb_chan_console, NULL, NULL, 0, 0, "" },
	{ "xmpp",    &sb_chan_xmpp,    NULL, NULL, 0, 0, "" },
	{ "irc",     &sb_chan_irc,     NULL, NULL, 0, 0, "" },
	{ "http",    &sb_chan_http,    http_keys, "chan_http", 0, 0, "" },
};

static ssize_t
index_of(const char *name)
{
	for (size_t i = 0; name && i < SB_ARRAY_LEN(slots); i++)
		if (strcmp(slots[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static const struct sb_channel_driver *
slot(size_t i)
{
	if (slots[i].drv == NULL && slots[i].module)
		slots[i].drv = sb_module_entry(slots[i].module, "chan", slots[i].name,
		    &slots[i].tried, slots[i].why, sizeof(slots[i].why));
	return slots[i].drv;
}

const struct sb_channel_driver *
sb_channel_driver_find(const char *name)
{
	ssize_t i = index_of(name);

	return i < 0 ? NULL : slot((size_t)i);
}

const char *
sb_channel_driver_known(const char *name)
{
	ssize_t i = index_of(name);

	return i < 0 ? NULL : slots[i].name;
}

const char *
sb_channel_driver_error(const char *name)
{
	ssize_t i = index_of(name);

	if (i < 0)
		return "unknown channel driver";
	return slot((size_t)i) ? NULL : slots[i].why[0] ? slots[i].why : "not built";
}

int
sb_channel_driver_loaded(const char *name)
{
	ssize_t i = index_of(name);

	return i >= 0 && (slots[i].drv != NULL || slots[i].tried);
}

const struct sb_conf_key *
sb_channel_driver_keys(const char *name)
{
	ssize_t i = index_of(name);

	if (i < 0)
		return NULL;
	return slots[i].drv ? slots[i].drv->keys : slots[i].keys;
}

const char *
sb_channel_driver_name_at(size_t i)
{
	return i < SB_ARRAY_LEN(slots) ? slots[i].name : NULL;
}

/* The i-th driver that can be had (a module that will not load is
 * skipped). */
const struct sb_channel_driver *
sb_channel_driver_at(size_t i)
{
	for (size_t j = 0; j < SB_ARRAY_LEN(slots); j++)
		if (slot(j) != NULL && i-- == 0)
			return slots[j].drv;
	return NULL;
}

/*
 * The preload thread maps the module and runs its libraries' constructors;
 * it shares nothing with the core but the dynamic loader, whose lock makes
 * the core's own sb_module_sym() (slot()) wait for it, or load the module
 * itself if the thread has not begun.  What it finds is dropped: slot()
 * looks again, and a failure is reported there.
 */
static void *
preload(void *arg)
{
	const char *module = arg;
	char sym[64], why[256];

	sb_thread_name("load %s", module);
	snprintf(sym, sizeof(sym), "sb_%s", module);
	(void)sb_module_sym(module, sym, why, sizeof(why));
	return NULL;
}

void
sb_channel_driver_preload(const char *name)
{
	ssize_t i = index_of(name);
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;

	if (i < 0 || slots[i].drv || slots[i].tried || slots[i].preloading)
		return;
	slots[i].preloading = 1;
	/* Like every thread of the daemon, it takes no signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, preload, (void *)slots[i].module) != 0)
		sb_debug("channel driver %s: no preload thread; loaded when needed", name);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
