/*
 * channel.c: the compiled-in channel drivers.  A third-party driver is a
 * file under channels/ that defines a const struct sb_channel_driver and
 * gets a line in the table below (doc/architecture.md).
 */
#include <stddef.h>
#include <string.h>

#include "channel.h"

static const struct sb_channel_driver *const drivers[] = {
	&sb_chan_console,
	&sb_chan_xmpp,
	&sb_chan_irc,
	&sb_chan_http,
};

const struct sb_channel_driver *
sb_channel_driver_find(const char *name)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

const struct sb_channel_driver *
sb_channel_driver_at(size_t i)
{
	return i < sizeof(drivers) / sizeof(drivers[0]) ? drivers[i] : NULL;
}
