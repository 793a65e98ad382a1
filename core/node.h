/*
 * node.h: the node model.
 *
 * A node is a managed server: a name, groups, a HAL instance, its last
 * readings, and a state with a one-line reason and the time it entered the
 * state.  A poll timer per node asks the HAL for readings; the status
 * policy turns them into a state; a change reaches every channel's
 * presence() and the notification router.
 */
#ifndef SB_NODE_H
#define SB_NODE_H

#include <stddef.h>
#include <time.h>

struct sb_hal;
struct sb_hal_result;
struct sb_node_conf;
struct sb_readings;
struct sb_timer;

enum sb_state {
	SB_ST_UNKNOWN,		/* not yet polled */
	SB_ST_OK,
	SB_ST_WARNING,
	SB_ST_CRITICAL,
	SB_ST_OFF,		/* powered off */
	SB_ST_MAINT,		/* in maintenance */
	SB_ST_DOWN,		/* unreachable */
};
#define SB_ST_COUNT 7

struct sb_node {
	unsigned refs;		/* the core's, plus one per request in flight */
	int     dead;		/* removed from the model; freed at last unref */
	int     keep;		/* scratch for sb_nodes_apply */
	char   *name;
	char  **groups;
	size_t  ngroups;
	struct sb_hal *hal;
	char   *hal_fingerprint;
	double  poll_interval;	/* seconds */
	struct sb_timer *poll_timer;
	long    rephase_ms;	/* after the first poll: the wait to its slot, or 0 */
	int     polling;	/* a READ is in flight */
	struct sb_readings *last;	/* NULL until the first answer */
	int     last_status;	/* 0, or the HAL's error code */
	char    last_error[160];
	time_t  last_poll;
	enum sb_state state;
	char    reason[256];
	time_t  since;
	unsigned long polls;
};

const char *sb_state_name(enum sb_state);
int sb_state_parse(const char *);	/* -1 if unknown */
/* Severity order for "worst of": ok < unknown < off/maint < warning <
 * critical < down. */
int sb_state_rank(enum sb_state);

/*
 * A status policy turns a poll's result into a state and reason.  The core
 * has a built-in one (the worst sensor); the dialplan installs the Lua one.
 * Returns 0 with *state and reason set, or -1 to fall back to the built-in.
 */
typedef int sb_policy_fn(struct sb_node *, const struct sb_hal_result *,
                         enum sb_state *state, char *reason, size_t len, void *ud);
void sb_node_set_policy(sb_policy_fn *, void *ud);
int  sb_policy_builtin(struct sb_node *, const struct sb_hal_result *,
                       enum sb_state *state, char *reason, size_t len);

/* Observers of state changes (the router, the console). */
typedef void sb_node_observer_fn(struct sb_node *, enum sb_state old, void *ud);
void sb_node_observe(sb_node_observer_fn *, void *ud);
void sb_node_unobserve(sb_node_observer_fn *, void *ud);

/* Model. */
struct sb_node *sb_node_find(const char *name);
size_t sb_node_count(void);
struct sb_node *sb_node_at(size_t i);
int  sb_node_in_group(const struct sb_node *, const char *group);

/* Bring the model in line with a config: keep nodes whose HAL config did
 * not change (their state too), replace the others, drop the missing.
 * Returns 0, or -1 with err set (the model is then unchanged). */
int  sb_nodes_apply(const struct sb_node_conf *, size_t n, char *err, size_t errlen);
void sb_nodes_clear(void);

/* Set state and reason; tells channels and observers on a change. */
void sb_node_set_state(struct sb_node *, enum sb_state, const char *reason);
/* Poll now (the timer keeps its schedule). */
void sb_node_poll(struct sb_node *);

struct sb_node *sb_node_ref(struct sb_node *);
void sb_node_unref(struct sb_node *);

#endif
