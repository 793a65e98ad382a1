/*
 * hal.c: the HAL's common code: the table of compiled-in backends, opening
 * and closing an instance, checking a request against the backend's
 * capabilities, and the sensor helpers every backend and policy shares
 * (threshold evaluation, descriptions, names, copies of readings).
 *
 * It talks to no hardware and keeps no state of its own; each backend file
 * (hal_sim.c, hal_linux.c, hal_ipmi.c) owns its device and its instance
 * data.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "module.h"
#include "util.h"

/*
 * Every backend, in the order --dump-keys lists them.  A backend whose
 * library is optional still gets a plain entry here: its file compiles to
 * a stub that refuses to open, so this table never needs an #ifdef.
 *
 * IPMI is a module (module.h): the daemon is linked without it, and its
 * entry is filled in by the first lookup.  Programs linked with
 * hal_ipmi.o (the tests) have it at once: the reference is weak.
 */
#pragma weak sb_hal_ipmi

static struct {
	const char *name;
	const struct sb_hal_backend *be;
	const char *module;	/* where to load it from if not linked in */
	int     tried;
	char    why[256];	/* why the module did not load */
} backends[] = {
	{ "sim",   &sb_hal_sim,   NULL, 0, "" },
	{ "linux", &sb_hal_linux, NULL, 0, "" },
	{ "ipmi",  &sb_hal_ipmi,  "hal_ipmi", 0, "" },
};

static const struct sb_hal_backend *
slot(size_t i)
{
	if (backends[i].be == NULL && backends[i].module)
		backends[i].be = sb_module_entry(backends[i].module, "hal", backends[i].name,
		    &backends[i].tried, backends[i].why, sizeof(backends[i].why));
	return backends[i].be;
}

const struct sb_hal_backend *
sb_hal_backend_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < SB_ARRAY_LEN(backends); i++)
		if (strcmp(backends[i].name, name) == 0)
			return slot(i);
	return NULL;
}

const char *
sb_hal_backend_error(const char *name)
{
	for (size_t i = 0; i < SB_ARRAY_LEN(backends); i++)
		if (strcmp(backends[i].name, name) == 0)
			return slot(i) ? NULL : backends[i].why[0] ? backends[i].why :
			    "not built";
	return NULL;
}

/* The i-th backend that can be had (a module that will not load is
 * skipped). */
const struct sb_hal_backend *
sb_hal_backend_at(size_t i)
{
	for (size_t k = 0; k < SB_ARRAY_LEN(backends); k++)
		if (slot(k) && i-- == 0)
			return backends[k].be;
	return NULL;
}

/*
 * The backend must leave nothing behind when its open() fails: the instance
 * is freed here without calling close(), which would otherwise have to cope
 * with every half-built state.
 */
struct sb_hal *
sb_hal_open(const struct sb_hal_backend *be, const char *node,
            const config_setting_t *conf, char *err, size_t errlen)
{
	struct sb_hal *hal;

	if (errlen > 0)
		err[0] = '\0';
	if (be == NULL) {
		snprintf(err, errlen, "no HAL backend given");
		return NULL;
	}
	if (be->abi != SB_HAL_ABI) {
		snprintf(err, errlen, "HAL backend \"%s\" was built for ABI %u, "
		         "not %u", be->name, be->abi, (unsigned)SB_HAL_ABI);
		return NULL;
	}
	hal = sb_calloc(1, sizeof(*hal));
	hal->be = be;
	hal->node = sb_strdup(node != NULL ? node : "");
	if (be->open(hal, conf, err, errlen) < 0) {
		if (errlen > 0 && err[0] == '\0')	/* a backend that forgot */
			snprintf(err, errlen, "HAL backend \"%s\" failed to open",
			         be->name);
		free(hal->node);
		free(hal);
		return NULL;
	}
	return hal;
}

void
sb_hal_close(struct sb_hal *hal)
{
	if (hal == NULL)
		return;
	if (hal->be->close != NULL)
		hal->be->close(hal);
	free(hal->node);
	free(hal);
}

/* The capability an operation needs, or 0 for an operation we don't know. */
static unsigned
op_cap(enum sb_hal_op op)
{
	switch (op) {
	case SB_HAL_READ:		return SB_HAL_SENSORS;
	case SB_HAL_POWER_ACT:		return SB_HAL_POWER;
	case SB_HAL_EVENTS_GET:		return SB_HAL_EVENTS;
	case SB_HAL_INVENTORY_GET:	return SB_HAL_INVENTORY;
	}
	return 0;
}

int
sb_hal_request(struct sb_hal *hal, const struct sb_hal_req *req,
               sb_hal_done_fn *done, void *ud)
{
	unsigned cap;

	if (hal == NULL || req == NULL || done == NULL)
		return -EINVAL;
	if ((cap = op_cap(req->op)) == 0)
		return -EINVAL;
	/* Checked here so that no backend has to answer for what it lacks,
	 * and so that the caller learns it before anything is queued. */
	if ((hal->be->caps & cap) == 0 || hal->be->request == NULL)
		return -ENOTSUP;
	return hal->be->request(hal, req, done, ud);
}

void
sb_sensor_init(struct sb_sensor *s, const char *name, enum sb_sensor_kind kind,
               const char *unit)
{
	memset(s, 0, sizeof(*s));
	sb_strlcpy(s->name, name != NULL ? name : "", sizeof(s->name));
	s->kind = kind;
	sb_strlcpy(s->unit, unit != NULL ? unit : "", sizeof(s->unit));
	s->has_value = 0;
	s->value = NAN;
	s->low_crit = s->low_warn = s->high_warn = s->high_crit = NAN;
	s->state = SB_SENSOR_UNKNOWN;
}

/*
 * Comparisons with a NAN threshold are false, so a missing limit never
 * fires without a test of its own.  Critical limits are checked on both
 * sides before any warning limit: a fan at 300 RPM is critical even if its
 * (misconfigured) high warning is 200.
 */
void
sb_sensor_eval(struct sb_sensor *s)
{
	double v = s->value;

	if (!s->has_value || isnan(v))
		s->state = SB_SENSOR_UNKNOWN;
	else if (v >= s->high_crit || v <= s->low_crit)
		s->state = SB_SENSOR_CRITICAL;
	else if (v >= s->high_warn || v <= s->low_warn)
		s->state = SB_SENSOR_WARNING;
	else
		s->state = SB_SENSOR_OK;
}

/*
 * A number as a person would write it: "95", "12.1", "3.3".  %g alone
 * switches to exponents from a million on, which reads badly for a power
 * meter's watt-hours, so large values are printed whole instead.
 */
static void
fmt_num(char *out, size_t outlen, double v)
{
	if (isfinite(v) && fabs(v) >= 1e6 && fabs(v) < 1e15)
		snprintf(out, outlen, "%.0f", v);
	else
		snprintf(out, outlen, "%g", v);
}

void
sb_sensor_describe(const struct sb_sensor *s, char *out, size_t outlen)
{
	char val[32], lim[32];
	const char *op = NULL;
	double limit = NAN;
	const char *sp = s->unit[0] != '\0' ? " " : "";

	if (!s->has_value) {
		snprintf(out, outlen, "%s no reading", s->name);
		return;
	}
	fmt_num(val, sizeof(val), s->value);

	/* Name the limit that was crossed, judged from the value so that a
	 * backend which sets state from the device's own verdict (IPMI) is
	 * described with whatever limits it knows. */
	if (s->state == SB_SENSOR_CRITICAL) {
		if (s->value >= s->high_crit) {
			op = ">=";
			limit = s->high_crit;
		} else if (s->value <= s->low_crit) {
			op = "<=";
			limit = s->low_crit;
		}
	} else if (s->state == SB_SENSOR_WARNING) {
		if (s->value >= s->high_warn) {
			op = ">=";
			limit = s->high_warn;
		} else if (s->value <= s->low_warn) {
			op = "<=";
			limit = s->low_warn;
		}
	}

	if (s->state != SB_SENSOR_CRITICAL && s->state != SB_SENSOR_WARNING)
		snprintf(out, outlen, "%s %s%s%s", s->name, val, sp, s->unit);
	else if (op == NULL)
		snprintf(out, outlen, "%s %s%s%s (%s)", s->name, val, sp,
		         s->unit, sb_sensor_state_name(s->state));
	else {
		fmt_num(lim, sizeof(lim), limit);
		snprintf(out, outlen, "%s %s%s%s (%s %s %s)", s->name, val, sp,
		         s->unit, sb_sensor_state_name(s->state), op, lim);
	}
}

static const char *const kind_names[] = {
	[SB_SENSOR_TEMPERATURE]	= "temperature",
	[SB_SENSOR_FAN]		= "fan",
	[SB_SENSOR_VOLTAGE]	= "voltage",
	[SB_SENSOR_POWER]	= "power",
	[SB_SENSOR_CURRENT]	= "current",
	[SB_SENSOR_OTHER]	= "other",
};

const char *
sb_sensor_kind_name(enum sb_sensor_kind kind)
{
	if ((unsigned)kind >= SB_ARRAY_LEN(kind_names))
		return "?";
	return kind_names[kind];
}

int
sb_sensor_kind_parse(const char *name)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < SB_ARRAY_LEN(kind_names); i++)
		if (strcmp(kind_names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *
sb_sensor_state_name(enum sb_sensor_state state)
{
	switch (state) {
	case SB_SENSOR_UNKNOWN:		return "unknown";
	case SB_SENSOR_OK:		return "ok";
	case SB_SENSOR_WARNING:		return "warning";
	case SB_SENSOR_CRITICAL:	return "critical";
	}
	return "?";
}

const char *
sb_power_name(enum sb_power power)
{
	switch (power) {
	case SB_POWER_UNKNOWN:	return "unknown";
	case SB_POWER_ON:	return "on";
	case SB_POWER_OFF:	return "off";
	}
	return "?";
}

const char *
sb_event_severity_name(enum sb_event_severity sev)
{
	switch (sev) {
	case SB_EV_INFO:	return "info";
	case SB_EV_WARNING:	return "warning";
	case SB_EV_CRITICAL:	return "critical";
	}
	return "?";
}

struct sb_readings *
sb_readings_dup(const struct sb_readings *r)
{
	struct sb_readings *copy;

	if (r == NULL)
		return NULL;
	copy = sb_calloc(1, sizeof(*copy));
	*copy = *r;
	copy->sensors = NULL;
	if (r->nsensors > 0) {
		copy->sensors = sb_calloc(r->nsensors, sizeof(*copy->sensors));
		memcpy(copy->sensors, r->sensors,
		       r->nsensors * sizeof(*copy->sensors));
	}
	return copy;
}

void
sb_readings_free(struct sb_readings *r)
{
	if (r == NULL)
		return;
	free(r->sensors);
	free(r);
}

/*
 * The enum's order is the severity order (unknown < ok < warning <
 * critical); only a strictly worse sensor replaces the one found first, so
 * the configuration's order breaks ties.
 */
const struct sb_sensor *
sb_readings_worst(const struct sb_readings *r)
{
	const struct sb_sensor *worst = NULL;
	size_t i;

	if (r == NULL)
		return NULL;
	for (i = 0; i < r->nsensors; i++) {
		const struct sb_sensor *s = &r->sensors[i];

		if (!s->has_value)
			continue;
		if (worst == NULL || s->state > worst->state)
			worst = s;
	}
	return worst;
}
