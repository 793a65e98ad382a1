/*
 * dialplan.c: placeholder until the Lua dialplan lands; the built-in
 * admin commands serve meanwhile.
 */
#include "dialplan.h"

int
sb_dialplan_start(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}

int
sb_dialplan_reload(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}

void
sb_dialplan_stop(void)
{
}
