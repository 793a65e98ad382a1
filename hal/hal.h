/*
 * hal.h: the hardware abstraction layer's interface.
 *
 * A backend (hal_sim.c, hal_linux.c, hal_ipmi.c) is a const table of
 * function pointers.  Each node owns one backend instance (struct sb_hal).
 * Requests complete asynchronously through a callback on the loop thread; a
 * backend may call it before request() returns (the simulator does), so
 * callers must not hold state that the callback invalidates.
 *
 * This layer knows sensors, power and event logs; it knows nothing of
 * nodes' states, channels or scripts.
 */
#ifndef SB_HAL_H
#define SB_HAL_H

#include <stddef.h>
#include <time.h>

#include <libconfig.h>

#define SB_HAL_ABI 1

#define SB_HAL_SENSORS   0x1u
#define SB_HAL_POWER     0x2u
#define SB_HAL_EVENTS    0x4u
#define SB_HAL_INVENTORY 0x8u

enum sb_sensor_kind {
	SB_SENSOR_TEMPERATURE,
	SB_SENSOR_FAN,
	SB_SENSOR_VOLTAGE,
	SB_SENSOR_POWER,
	SB_SENSOR_CURRENT,
	SB_SENSOR_OTHER,
};

/* A sensor's own verdict from its thresholds (no hysteresis here). */
enum sb_sensor_state {
	SB_SENSOR_UNKNOWN,	/* no reading */
	SB_SENSOR_OK,
	SB_SENSOR_WARNING,
	SB_SENSOR_CRITICAL,
};

struct sb_sensor {
	char    name[48];
	enum sb_sensor_kind kind;
	char    unit[8];	/* "C", "RPM", "V", "W", "A", "%" or "" */
	int     has_value;
	double  value;
	/* Thresholds; NAN where the sensor has none. */
	double  low_crit, low_warn, high_warn, high_crit;
	enum sb_sensor_state state;
};

enum sb_power {
	SB_POWER_UNKNOWN,
	SB_POWER_ON,
	SB_POWER_OFF,
};

struct sb_readings {
	struct sb_sensor *sensors;
	size_t  nsensors;
	enum sb_power power;
	time_t  taken;
};

enum sb_event_severity {
	SB_EV_INFO,
	SB_EV_WARNING,
	SB_EV_CRITICAL,
};

struct sb_hal_event {
	time_t  when;
	enum sb_event_severity severity;
	char    text[160];
};

struct sb_inventory {
	char    vendor[64], model[64], serial[64], firmware[64];
};

enum sb_hal_op {
	SB_HAL_READ,		/* sensors + power state */
	SB_HAL_POWER_ACT,	/* arg: "status", "on", "off", "cycle", "reset", "soft" */
	SB_HAL_EVENTS_GET,	/* count: newest N */
	SB_HAL_INVENTORY_GET,
};

struct sb_hal_req {
	enum sb_hal_op op;
	const char *arg;	/* borrowed for the call */
	int     count;
};

/*
 * What a request produced.  Everything is borrowed for the duration of the
 * callback only; copy what you keep.  status is 0 or a negative errno-style
 * code, with error saying why in a short sentence.
 */
struct sb_hal_result {
	int     status;
	const char *error;
	const struct sb_readings *readings;		/* SB_HAL_READ */
	enum sb_power power;				/* READ, POWER_ACT */
	const char *message;				/* POWER_ACT: "power cycle issued" */
	const struct sb_hal_event *events;		/* EVENTS_GET, newest first */
	size_t  nevents;
	const struct sb_inventory *inventory;		/* INVENTORY_GET */
};

struct sb_hal;
typedef void sb_hal_done_fn(struct sb_hal *, const struct sb_hal_result *, void *ud);

struct sb_conf_key;

struct sb_hal_backend {
	const char *name;	/* "sim", "linux", "ipmi": matches config */
	unsigned abi;		/* SB_HAL_ABI */
	unsigned caps;		/* SB_HAL_* */
	const struct sb_conf_key *keys;	/* keys accepted in a node's hal group */
	/* Parse the node's hal group (borrowed).  On failure write a message
	 * into err (the caller adds file:line) and return -1. */
	int  (*open)(struct sb_hal *, const config_setting_t *, char *err, size_t errlen);
	/* Start a request; done is called exactly once, maybe before return.
	 * Returns 0, or a negative code if the request could not start (then
	 * done is not called). */
	int  (*request)(struct sb_hal *, const struct sb_hal_req *, sb_hal_done_fn *, void *ud);
	/* Handle a "sim ..."-style admin command addressed to this backend
	 * (optional); writes a reply into out.  Returns 0 or -1. */
	int  (*control)(struct sb_hal *, int argc, char **argv, char *out, size_t outlen);
	/* Free everything; pending requests are answered with an error first. */
	void (*close)(struct sb_hal *);
};

struct sb_hal {
	const struct sb_hal_backend *be;
	char   *node;		/* the node's name, owned */
	void   *priv;		/* the backend's */
};

/* The compiled-in backends, and lookup by name. */
extern const struct sb_hal_backend sb_hal_sim;
extern const struct sb_hal_backend sb_hal_linux;
extern const struct sb_hal_backend sb_hal_ipmi;
const struct sb_hal_backend *sb_hal_backend_find(const char *name);
/* Why a backend by that name cannot be had (its module did not load), or
 * NULL if it can or no backend has that name. */
const char *sb_hal_backend_error(const char *name);
/* Iterate: i from 0 until NULL. */
const struct sb_hal_backend *sb_hal_backend_at(size_t i);

/* Create and open an instance for a node; NULL with err set on failure. */
struct sb_hal *sb_hal_open(const struct sb_hal_backend *, const char *node,
                           const config_setting_t *, char *err, size_t errlen);
void sb_hal_close(struct sb_hal *);	/* NULL-safe */
int  sb_hal_request(struct sb_hal *, const struct sb_hal_req *, sb_hal_done_fn *, void *ud);

/* Shared helpers for backends and policies. */
void sb_sensor_init(struct sb_sensor *, const char *name, enum sb_sensor_kind, const char *unit);
/* Set s->state from value and thresholds: at or past a critical limit is
 * critical, at or past a warning limit is warning. */
void sb_sensor_eval(struct sb_sensor *);
/* "cpu_temp 95 C (critical >= 90)"; the limit named is the one crossed. */
void sb_sensor_describe(const struct sb_sensor *, char *out, size_t outlen);
const char *sb_sensor_kind_name(enum sb_sensor_kind);
int  sb_sensor_kind_parse(const char *);	/* -1 if unknown */
const char *sb_sensor_state_name(enum sb_sensor_state);
const char *sb_power_name(enum sb_power);
const char *sb_event_severity_name(enum sb_event_severity);
/* Deep copy / free of readings (for the node model's "last readings"). */
struct sb_readings *sb_readings_dup(const struct sb_readings *);
void sb_readings_free(struct sb_readings *);
/* The worst sensor, or NULL if none has a reading. */
const struct sb_sensor *sb_readings_worst(const struct sb_readings *);

#endif
