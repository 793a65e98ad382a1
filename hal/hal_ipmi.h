/*
 * hal_ipmi.h: what the IPMI backend's two halves share, and nothing else
 * includes: hal_ipmi.c (configuration, instances, the worker pool, the
 * loop side) and hal_ipmi_io.c (what a worker thread says to a BMC through
 * FreeIPMI).
 *
 * A job is created and answered on the loop thread; between the two, only
 * the worker that runs it touches it.  The configuration of a BMC is
 * immutable once opened; its SDR cache file and SEL cursor are shared by
 * its jobs under its mutex.
 */
#ifndef SB_HAL_IPMI_H
#define SB_HAL_IPMI_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <freeipmi/freeipmi.h>

#include "hal.h"

#define IPMI_SEL_NEW_MAX	20	/* SEL entries announced per poll at most */

struct ipmi_conf {
	char   *host;		/* "host:port" as FreeIPMI takes it */
	char   *shown;		/* the same, for messages */
	char   *user;
	char   *password;	/* never logged */
	unsigned char k_g[20];
	unsigned k_g_len;
	uint8_t priv;
	uint8_t cipher;
	unsigned timeout_ms;	/* one exchange with the BMC */
	unsigned retrans_ms;
	unsigned request_ms;	/* one whole request */
	unsigned workarounds;
	int     workers;
	int     sel_events;
	char   *sdr_cache;	/* NULL: <state_dir>/sdr/<node>.sdr, set on first use */
};

struct ipmi_job;

/*
 * One node's BMC.  The instance holds a reference, and so does every job
 * in flight, so that a job finishing after close() still has its
 * configuration; references change only on the loop thread.
 */
struct ipmi_bmc {
	unsigned refs;
	struct sb_hal *hal;	/* NULL once closed */
	char   *node;
	struct ipmi_conf c;
	struct ipmi_job *jobs;	/* in flight (queued, running or done): loop thread */
	/* The worker side: the SDR cache file and the SEL cursor. */
	pthread_mutex_t mu;
	int     sel_primed;
	unsigned sel_last_id;
	uint32_t sel_add_ts, sel_erase_ts;
	unsigned sel_entries;
};

enum ipmi_job_state { IPMI_JOB_QUEUED, IPMI_JOB_RUNNING, IPMI_JOB_DONE };

struct ipmi_job {
	struct ipmi_job *next;		/* pool queue or done list */
	struct ipmi_job *bnext, *bprev;	/* bmc->jobs */
	struct ipmi_bmc *bmc;
	enum ipmi_job_state state;	/* under the pool's mutex */
	int     cancelled;		/* answered by close(): loop thread */
	enum sb_hal_op op;
	char    action[8];
	int     count;
	sb_hal_done_fn *done;
	void   *ud;
	uint64_t deadline;		/* sb_now_ms() */
	/* results, written by the worker, read on the loop after IPMI_JOB_DONE */
	int     status;
	char    error[200];
	char    message[120];
	enum sb_power power;
	struct sb_sensor *sensors;
	size_t  nsensors, cap;
	struct sb_hal_event *events;	/* EVENTS_GET: newest first */
	size_t  nevents;
	struct sb_hal_event *fresh;	/* READ: SEL entries new since the last poll */
	size_t  nfresh, fresh_more;
	struct sb_inventory inv;
};

/* On a worker thread: open a session, do what the job asks, fill in its
 * results (status 0, or an error with its text).  ictx may be NULL. */
void sb_ipmi_run(struct ipmi_job *, ipmi_interpret_ctx_t ictx);

#endif
