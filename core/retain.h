/*
 * retain.h: how long the store keeps its history.
 *
 * Closed events and audit rows are history: kept for the ages the config's
 * store section gives (0: for ever), then deleted, a batch at a time, from
 * an hourly timer.  Open events, events not yet routed, the spool, silences
 * and maintenance windows are never touched here.
 */
#ifndef SB_RETAIN_H
#define SB_RETAIN_H

#include <time.h>

#include "conf.h"		/* struct sb_conf_key, for sb_store_keys */

struct sb_loop;

extern const struct sb_conf_key sb_store_keys[];

/* Read the store section (NULL: the defaults); 0, or -1 with err. */
int  sb_retain_apply(const config_setting_t *, char *err, size_t errlen);
/* Prune a minute after this, then hourly (and at once again while a batch
 * came back full); stop cancels that.  The store must be open. */
void sb_retain_start(struct sb_loop *);
void sb_retain_stop(void);
/* One batch of each: delete what is past its age at now; returns the rows
 * deleted, or -1 (logged). */
long sb_retain_prune(time_t now);

#endif
