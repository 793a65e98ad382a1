/*
 * hal_sim.c: the simulated HAL backend ("sim").
 *
 * A node that lives in memory: the sensors, power state and inventory of
 * its config, an event log, and the admin's "sim" commands to change them.
 * Readings are judged by sb_sensor_eval() and threshold crossings are
 * logged the way a BMC's SEL logs them, so that a policy, a script or an
 * end-to-end test cannot tell it from a real machine.  Every request is
 * answered at once, before request() returns.
 *
 * It invents nothing by itself: values change only with "set", and
 * "fail on" is the only fault it injects.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "hal.h"
#include "util.h"

#define SIM_LOG_SIZE	256	/* events kept, like a small SEL */
#define SIM_EVENTS_DEF	10	/* EVENTS_GET without a count */

#define FAIL_TEXT	"simulated failure: node does not answer"

/*
 * The limit a value is past.  The event log follows this rather than the
 * sensor's state so that a jump from one side to the other (a fan from
 * 20000 RPM straight to 0) is logged although the state stays "critical".
 */
enum limit {
	LIM_NOREADING,
	LIM_NONE,
	LIM_LOW_CRIT,
	LIM_LOW_WARN,
	LIM_HIGH_WARN,
	LIM_HIGH_CRIT,
};

struct sim_sensor {
	struct sb_sensor s;	/* the value as if powered on, evaluated */
	enum limit logged;	/* what the event log last said of it */
};

struct sim {
	struct sim_sensor *sensors;
	size_t  nsensors;
	enum sb_power power;
	int     failed;
	struct sb_inventory inv;
	/* A ring of SIM_LOG_SIZE, allocated with the first event: 46 kB
	 * that most nodes never use, and a gateway may hold 10,000 nodes. */
	struct sb_hal_event *log;
	size_t  log_next;	/* the slot the next event goes to */
	size_t  log_count;
};

static const struct sb_conf_key sensor_keys[] = {
	{ .name = "name", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "the sensor's name, one word, unique within the node" },
	{ .name = "kind", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "temperature, fan, voltage, power, current or other" },
	{ .name = "unit", .type = SB_CT_STRING, .def = "C, RPM, V, W, A or none, by kind",
	  .doc = "the unit printed after the value" },
	{ .name = "value", .type = SB_CT_FLOAT, .def = "none (no reading until set)",
	  .doc = "the reading at start-up" },
	{ .name = "low_critical", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "critical at or below this value" },
	{ .name = "low_warning", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "warning at or below this value" },
	{ .name = "high_warning", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "warning at or above this value" },
	{ .name = "high_critical", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "critical at or above this value" },
	{ .name = NULL },
};

static const struct sb_conf_key sim_keys[] = {
	{ .name = "backend", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "\"sim\" for a simulated node" },
	{ .name = "vendor", .type = SB_CT_STRING, .def = "Switchboard",
	  .doc = "the vendor the inventory reports" },
	{ .name = "model", .type = SB_CT_STRING, .def = "Simulated node",
	  .doc = "the model the inventory reports" },
	{ .name = "serial", .type = SB_CT_STRING, .def = "SIM-<node name>",
	  .doc = "the serial number the inventory reports" },
	{ .name = "firmware", .type = SB_CT_STRING, .def = "sim",
	  .doc = "the firmware version the inventory reports" },
	{ .name = "power", .type = SB_CT_STRING, .def = "on",
	  .doc = "the power state at start-up: \"on\" or \"off\"" },
	{ .name = "sensors", .type = SB_CT_LIST, .sub = sensor_keys, .def = "none",
	  .doc = "the simulated sensors, one group each" },
	{ .name = NULL },
};

/* Same form as sb_sensor_describe(), so that logs and replies agree. */
static void
fmt_num(char *out, size_t outlen, double v)
{
	if (isfinite(v) && fabs(v) >= 1e6 && fabs(v) < 1e15)
		snprintf(out, outlen, "%.0f", v);
	else
		snprintf(out, outlen, "%g", v);
}

/* "95 C", "12.1 V", or "-" without a reading. */
static void
fmt_reading(char *out, size_t outlen, const struct sb_sensor *s)
{
	char val[32];

	if (!s->has_value) {
		snprintf(out, outlen, "-");
		return;
	}
	fmt_num(val, sizeof(val), s->value);
	snprintf(out, outlen, "%s%s%s", val, s->unit[0] != '\0' ? " " : "",
	         s->unit);
}

/* Append to a reply; a reply too long for out is cut, not overrun. */
static void __attribute__((format(printf, 3, 4)))
append(char *out, size_t outlen, const char *fmt, ...)
{
	size_t len = strnlen(out, outlen);
	va_list ap;

	if (len + 1 >= outlen)
		return;
	va_start(ap, fmt);
	vsnprintf(out + len, outlen - len, fmt, ap);
	va_end(ap);
}

static void
sim_free(struct sim *sim)
{
	if (sim == NULL)
		return;
	free(sim->sensors);
	free(sim->log);
	free(sim);
}

/* --- the event log ------------------------------------------------------ */

static void __attribute__((format(printf, 3, 4)))
log_event(struct sim *sim, enum sb_event_severity sev, const char *fmt, ...)
{
	struct sb_hal_event *ev;
	va_list ap;

	if (sim->log == NULL)
		sim->log = sb_calloc(SIM_LOG_SIZE, sizeof(*sim->log));
	ev = &sim->log[sim->log_next];
	ev->when = time(NULL);
	ev->severity = sev;
	va_start(ap, fmt);
	vsnprintf(ev->text, sizeof(ev->text), fmt, ap);
	va_end(ap);
	sim->log_next = (sim->log_next + 1) % SIM_LOG_SIZE;
	if (sim->log_count < SIM_LOG_SIZE)
		sim->log_count++;
}

/* Which limit an evaluated sensor is past; the same tests, in the same
 * order, as sb_sensor_eval() made. */
static enum limit
limit_of(const struct sb_sensor *s)
{
	switch (s->state) {
	case SB_SENSOR_UNKNOWN:
		return LIM_NOREADING;
	case SB_SENSOR_OK:
		return LIM_NONE;
	case SB_SENSOR_WARNING:
		return s->value >= s->high_warn ? LIM_HIGH_WARN : LIM_LOW_WARN;
	case SB_SENSOR_CRITICAL:
		return s->value >= s->high_crit ? LIM_HIGH_CRIT : LIM_LOW_CRIT;
	}
	return LIM_NOREADING;
}

static double
limit_value(const struct sb_sensor *s, enum limit lim)
{
	switch (lim) {
	case LIM_LOW_CRIT:	return s->low_crit;
	case LIM_LOW_WARN:	return s->low_warn;
	case LIM_HIGH_WARN:	return s->high_warn;
	case LIM_HIGH_CRIT:	return s->high_crit;
	default:		return NAN;
	}
}

/*
 * One SEL-style entry for a sensor whose limit changed from old to now.
 * Going back to normal is information; clearing a critical limit while a
 * warning one still holds is a warning; crossing a limit has its severity.
 */
static void
log_crossing(struct sim *sim, const struct sb_sensor *s, enum limit old,
             enum limit now)
{
	char head[128], val[48], lim[32];
	int high = now == LIM_HIGH_WARN || now == LIM_HIGH_CRIT;
	int crit = now == LIM_LOW_CRIT || now == LIM_HIGH_CRIT;

	fmt_reading(val, sizeof(val), s);
	snprintf(head, sizeof(head), "%s %s", s->name, val);	/* "cpu_temp 95 C" */
	if (now == LIM_NOREADING)
		return;		/* a sensor that stops reading logs nothing */
	if (now == LIM_NONE) {
		if (old != LIM_NOREADING)
			log_event(sim, SB_EV_INFO, "%s: back to normal", head);
		return;
	}
	if ((old == LIM_HIGH_CRIT && now == LIM_HIGH_WARN) ||
	    (old == LIM_LOW_CRIT && now == LIM_LOW_WARN)) {
		fmt_num(lim, sizeof(lim), limit_value(s, old));
		log_event(sim, SB_EV_WARNING,
		          "%s: %s critical threshold cleared (%s %s)", head,
		          high ? "upper" : "lower", high ? "<" : ">", lim);
		return;
	}
	fmt_num(lim, sizeof(lim), limit_value(s, now));
	log_event(sim, crit ? SB_EV_CRITICAL : SB_EV_WARNING,
	          "%s: %s %s threshold crossed (%s %s)", head,
	          high ? "upper" : "lower", crit ? "critical" : "warning",
	          high ? ">=" : "<=", lim);
}

/* A chassis that is off reads nothing but its standby sensors, which the
 * simulator models as those of kind "other". */
static int
visible(const struct sim *sim, const struct sim_sensor *ss)
{
	return sim->power == SB_POWER_ON || ss->s.kind == SB_SENSOR_OTHER;
}

/*
 * Log every readable sensor whose limit changed since the log last spoke
 * of it.  A sensor hidden by power off keeps its old entry, so that power
 * coming back on logs what changed meanwhile, as a BMC rearming its
 * sensors does.
 */
static void
log_crossings(struct sim *sim)
{
	size_t i;

	for (i = 0; i < sim->nsensors; i++) {
		struct sim_sensor *ss = &sim->sensors[i];
		enum limit now;

		if (!visible(sim, ss))
			continue;
		now = limit_of(&ss->s);
		if (now != ss->logged) {
			log_crossing(sim, &ss->s, ss->logged, now);
			ss->logged = now;
		}
	}
}

/* --- configuration ------------------------------------------------------ */

/*
 * A numeric key: 1 with *out set, 0 if absent (*out is NAN), -1 if not a
 * number.  libconfig's own float lookup refuses an integer ("value =
 * 7200;") unless auto-conversion is on, and a threshold silently dropped
 * is an alarm that never rings, so the type is checked here.
 */
static int
number(const config_setting_t *g, const char *key, double *out)
{
	const config_setting_t *m = config_setting_get_member(g, key);

	*out = NAN;
	if (m == NULL)
		return 0;
	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
		*out = config_setting_get_int(m);
		return 1;
	case CONFIG_TYPE_INT64:
		*out = (double)config_setting_get_int64(m);
		return 1;
	case CONFIG_TYPE_FLOAT:
		*out = config_setting_get_float(m);
		return isfinite(*out) ? 1 : -1;
	default:
		return -1;
	}
}

static const char *
default_unit(enum sb_sensor_kind kind)
{
	switch (kind) {
	case SB_SENSOR_TEMPERATURE:	return "C";
	case SB_SENSOR_FAN:		return "RPM";
	case SB_SENSOR_VOLTAGE:		return "V";
	case SB_SENSOR_POWER:		return "W";
	case SB_SENSOR_CURRENT:		return "A";
	case SB_SENSOR_OTHER:		return "";
	}
	return "";
}

/* The admin addresses a sensor as one word of a command line. */
static int
valid_name(const char *name)
{
	const unsigned char *p;

	if (*name == '\0')
		return 0;
	for (p = (const unsigned char *)name; *p != '\0'; p++)
		if (isspace(*p) || iscntrl(*p))
			return 0;
	return 1;
}

/*
 * Thresholds must be ordered low_critical <= low_warning < high_warning <=
 * high_critical wherever both of a pair are given.  A low limit equal to a
 * high one would make a single value both too low and too high.
 */
static int
check_order(const struct sb_sensor *s, char *err, size_t errlen)
{
	static const char *const names[] = {
		"low_critical", "low_warning", "high_warning", "high_critical",
	};
	const double t[] = { s->low_crit, s->low_warn, s->high_warn, s->high_crit };
	size_t i, j;

	for (i = 0; i < SB_ARRAY_LEN(t); i++) {
		for (j = i + 1; j < SB_ARRAY_LEN(t); j++) {
			int strict = i < 2 && j >= 2;

			if (isnan(t[i]) || isnan(t[j]))
				continue;
			if (strict ? t[i] < t[j] : t[i] <= t[j])
				continue;
			snprintf(err, errlen, "sensor \"%s\": %s must be below %s",
			         s->name, names[i], names[j]);
			return -1;
		}
	}
	return 0;
}

static int
parse_sensor(const config_setting_t *g, size_t idx, struct sb_sensor *s,
             char *err, size_t errlen)
{
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
		{ .key = "value",         .off = offsetof(struct sb_sensor, value) },
		{ .key = "low_critical",  .off = offsetof(struct sb_sensor, low_crit) },
		{ .key = "low_warning",   .off = offsetof(struct sb_sensor, low_warn) },
		{ .key = "high_warning",  .off = offsetof(struct sb_sensor, high_warn) },
		{ .key = "high_critical", .off = offsetof(struct sb_sensor, high_crit) },
	};
	const char *name, *kindname, *unit;
	int kind;
	size_t i;

	if (!config_setting_is_group(g)) {
		snprintf(err, errlen, "sensor %zu: must be a group "
		         "{ name = ...; kind = ...; }", idx + 1);
		return -1;
	}
	if ((name = sb_conf_str(g, "name", NULL)) == NULL) {
		snprintf(err, errlen, "sensor %zu: name is required", idx + 1);
		return -1;
	}
	if (!valid_name(name)) {
		snprintf(err, errlen, "sensor %zu: name \"%s\" must be one word",
		         idx + 1, name);
		return -1;
	}
	if (strlen(name) >= sizeof(s->name)) {
		snprintf(err, errlen, "sensor \"%s\": name is longer than %zu "
		         "characters", name, sizeof(s->name) - 1);
		return -1;
	}
	if ((kindname = sb_conf_str(g, "kind", NULL)) == NULL) {
		snprintf(err, errlen, "sensor \"%s\": kind is required", name);
		return -1;
	}
	if ((kind = sb_sensor_kind_parse(kindname)) < 0) {
		snprintf(err, errlen, "sensor \"%s\": unknown kind \"%s\"; use "
		         "temperature, fan, voltage, power, current or other",
		         name, kindname);
		return -1;
	}
	unit = sb_conf_str(g, "unit", default_unit(kind));
	if (strlen(unit) >= sizeof(s->unit)) {
		snprintf(err, errlen, "sensor \"%s\": unit \"%s\" is longer than "
		         "%zu characters", name, unit, sizeof(s->unit) - 1);
		return -1;
	}
	sb_sensor_init(s, name, kind, unit);

	for (i = 0; i < SB_ARRAY_LEN(nums); i++) {
		double *field = (double *)((char *)s + nums[i].off);

		if (number(g, nums[i].key, field) < 0) {
			snprintf(err, errlen, "sensor \"%s\": %s must be a number",
			         name, nums[i].key);
			return -1;
		}
	}
	s->has_value = !isnan(s->value);
	if (check_order(s, err, errlen) < 0)
		return -1;
	sb_sensor_eval(s);
	return 0;
}

static int
parse_sensors(struct sim *sim, const config_setting_t *conf, char *err,
              size_t errlen)
{
	const config_setting_t *list = config_setting_get_member(conf, "sensors");
	size_t i, j, n;

	if (list == NULL)
		return 0;
	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		snprintf(err, errlen, "sensors must be a list: "
		         "( { name = ...; kind = ...; }, ... )");
		return -1;
	}
	n = (size_t)config_setting_length(list);
	if (n == 0)
		return 0;
	sim->sensors = sb_calloc(n, sizeof(*sim->sensors));
	for (i = 0; i < n; i++) {
		struct sim_sensor *ss = &sim->sensors[i];

		if (parse_sensor(config_setting_get_elem(list, (unsigned)i), i,
		                 &ss->s, err, errlen) < 0)
			return -1;
		for (j = 0; j < i; j++) {
			if (strcmp(sim->sensors[j].s.name, ss->s.name) == 0) {
				snprintf(err, errlen, "sensor \"%s\" is defined "
				         "twice (sensors %zu and %zu)", ss->s.name,
				         j + 1, i + 1);
				return -1;
			}
		}
		ss->logged = LIM_NOREADING;
		sim->nsensors++;
	}
	return 0;
}

static int
parse_string(char *dst, size_t dstlen, const config_setting_t *conf,
             const char *key, const char *def, char *err, size_t errlen)
{
	const char *v = sb_conf_str(conf, key, def);

	if (strlen(v) >= dstlen) {
		snprintf(err, errlen, "%s is longer than %zu characters", key,
		         dstlen - 1);
		return -1;
	}
	sb_strlcpy(dst, v, dstlen);
	return 0;
}

static int
parse_node(struct sim *sim, const char *node, const config_setting_t *conf,
           char *err, size_t errlen)
{
	struct sb_inventory *inv = &sim->inv;
	const char *power;

	if (parse_string(inv->vendor, sizeof(inv->vendor), conf, "vendor",
	                 "Switchboard", err, errlen) < 0 ||
	    parse_string(inv->model, sizeof(inv->model), conf, "model",
	                 "Simulated node", err, errlen) < 0 ||
	    parse_string(inv->firmware, sizeof(inv->firmware), conf, "firmware",
	                 "sim", err, errlen) < 0)
		return -1;
	if (sb_conf_str(conf, "serial", NULL) == NULL)
		snprintf(inv->serial, sizeof(inv->serial), "SIM-%s", node);
	else if (parse_string(inv->serial, sizeof(inv->serial), conf, "serial",
	                      NULL, err, errlen) < 0)
		return -1;

	power = sb_conf_str(conf, "power", "on");
	if (strcmp(power, "on") == 0)
		sim->power = SB_POWER_ON;
	else if (strcmp(power, "off") == 0)
		sim->power = SB_POWER_OFF;
	else {
		snprintf(err, errlen, "power must be \"on\" or \"off\", not \"%s\"",
		         power);
		return -1;
	}
	return parse_sensors(sim, conf, err, errlen);
}

/* --- the backend -------------------------------------------------------- */

static int
sim_open(struct sb_hal *hal, const config_setting_t *conf, char *err,
         size_t errlen)
{
	struct sim *sim;

	if (conf == NULL) {
		snprintf(err, errlen, "the sim backend needs a hal group");
		return -1;
	}
	sim = sb_calloc(1, sizeof(*sim));
	if (parse_node(sim, hal->node, conf, err, errlen) < 0) {
		sim_free(sim);
		return -1;
	}
	/* A BMC logs the sensors it finds past a limit when it starts. */
	log_crossings(sim);
	hal->priv = sim;
	return 0;
}

/*
 * Each answer is built in memory of its own and freed after done(): the
 * callback may close this instance, or start another request that would
 * otherwise overwrite what it is still reading.  Nothing of sim is touched
 * once done() was called.
 */
static void
answer_read(struct sb_hal *hal, struct sim *sim, sb_hal_done_fn *done, void *ud)
{
	struct sb_hal_result res = { .status = 0 };
	struct sb_readings r = {
		.nsensors = sim->nsensors,
		.power = sim->power,
		.taken = time(NULL),
	};
	size_t i;

	if (r.nsensors > 0)
		r.sensors = sb_calloc(r.nsensors, sizeof(*r.sensors));
	for (i = 0; i < sim->nsensors; i++) {
		r.sensors[i] = sim->sensors[i].s;
		if (!visible(sim, &sim->sensors[i])) {
			r.sensors[i].has_value = 0;
			r.sensors[i].value = NAN;
		}
		sb_sensor_eval(&r.sensors[i]);
	}
	res.readings = &r;
	res.power = r.power;
	done(hal, &res, ud);
	free(r.sensors);
}

static const struct power_action {
	const char *name;
	enum sb_power after;	/* UNKNOWN: unchanged */
	const char *message;
	const char *event;
} power_actions[] = {
	{ .name = "status", .after = SB_POWER_UNKNOWN },
	{ .name = "on", .after = SB_POWER_ON,
	  .message = "power on issued", .event = "power on requested" },
	{ .name = "off", .after = SB_POWER_OFF,
	  .message = "power off issued", .event = "power off requested" },
	{ .name = "cycle", .after = SB_POWER_ON,
	  .message = "power cycle issued", .event = "power cycle requested" },
	{ .name = "reset", .after = SB_POWER_ON,
	  .message = "power reset issued", .event = "power reset requested" },
	{ .name = "soft", .after = SB_POWER_OFF,
	  .message = "soft power off issued", .event = "soft power off requested" },
};

static void
answer_power(struct sb_hal *hal, struct sim *sim, const char *arg,
             sb_hal_done_fn *done, void *ud)
{
	struct sb_hal_result res = { .status = 0 };
	const struct power_action *act = NULL;
	char text[160];
	size_t i;

	for (i = 0; arg != NULL && i < SB_ARRAY_LEN(power_actions); i++)
		if (strcmp(power_actions[i].name, arg) == 0)
			act = &power_actions[i];
	if (act == NULL) {
		snprintf(text, sizeof(text), "unknown power action \"%s\"; use "
		         "status, on, off, cycle, reset or soft",
		         arg != NULL ? arg : "");
		res.status = -EINVAL;
		res.error = text;
	} else if (act->after == SB_POWER_UNKNOWN) {
		snprintf(text, sizeof(text), "power is %s",
		         sb_power_name(sim->power));
		res.message = text;
	} else {
		enum sb_power before = sim->power;

		log_event(sim, SB_EV_INFO, "%s", act->event);
		sim->power = act->after;
		if (before != SB_POWER_ON && sim->power == SB_POWER_ON)
			log_crossings(sim);
		res.message = act->message;
	}
	res.power = sim->power;
	done(hal, &res, ud);
}

static void
answer_events(struct sb_hal *hal, struct sim *sim, int count,
              sb_hal_done_fn *done, void *ud)
{
	struct sb_hal_result res = { .status = 0 };
	struct sb_hal_event *evs = NULL;
	size_t want = count > 0 ? (size_t)count : SIM_EVENTS_DEF;
	size_t k;

	if (want > sim->log_count)
		want = sim->log_count;
	if (want > 0)
		evs = sb_calloc(want, sizeof(*evs));
	for (k = 0; k < want; k++)	/* newest first */
		evs[k] = sim->log[(sim->log_next + SIM_LOG_SIZE - 1 - k) %
		                  SIM_LOG_SIZE];
	res.events = evs;
	res.nevents = want;
	done(hal, &res, ud);
	free(evs);
}

static int
sim_request(struct sb_hal *hal, const struct sb_hal_req *req,
            sb_hal_done_fn *done, void *ud)
{
	struct sim *sim = hal->priv;
	struct sb_inventory inv;

	switch (req->op) {
	case SB_HAL_READ:
	case SB_HAL_POWER_ACT:
	case SB_HAL_EVENTS_GET:
	case SB_HAL_INVENTORY_GET:
		break;
	default:
		return -EINVAL;
	}
	if (sim->failed) {
		struct sb_hal_result res = {
			.status = -EHOSTUNREACH,
			.error = FAIL_TEXT,
			.power = SB_POWER_UNKNOWN,
		};
		done(hal, &res, ud);
		return 0;
	}
	switch (req->op) {
	case SB_HAL_READ:
		answer_read(hal, sim, done, ud);
		break;
	case SB_HAL_POWER_ACT:
		answer_power(hal, sim, req->arg, done, ud);
		break;
	case SB_HAL_EVENTS_GET:
		answer_events(hal, sim, req->count, done, ud);
		break;
	case SB_HAL_INVENTORY_GET:
		inv = sim->inv;
		done(hal, &(struct sb_hal_result){ .inventory = &inv }, ud);
		break;
	}
	return 0;
}

/* --- admin commands ----------------------------------------------------- */

static struct sim_sensor *
find_sensor(struct sim *sim, const char *name)
{
	size_t i;

	for (i = 0; i < sim->nsensors; i++)
		if (strcmp(sim->sensors[i].s.name, name) == 0)
			return &sim->sensors[i];
	return NULL;
}

/* strtod, strictly: the whole word, finite, in range.  "9x", " 9", "nan"
 * and "1e999" are typing mistakes, not readings. */
static int
parse_value(const char *text, double *out)
{
	char *end;

	if (*text == '\0' || isspace((unsigned char)*text))
		return -1;
	errno = 0;
	*out = strtod(text, &end);
	if (end == text || *end != '\0' || errno == ERANGE || !isfinite(*out))
		return -1;
	return 0;
}

static int
ctl_set(struct sb_hal *hal, struct sim *sim, char **argv, char *out,
        size_t outlen)
{
	struct sim_sensor *ss;
	char val[48];
	double v;
	size_t i;

	if ((ss = find_sensor(sim, argv[1])) == NULL) {
		snprintf(out, outlen, "no sensor \"%s\" on %s", argv[1], hal->node);
		if (sim->nsensors == 0)
			append(out, outlen, "; it has no sensors");
		for (i = 0; i < sim->nsensors; i++)
			append(out, outlen, "%s%s", i == 0 ? "; sensors: " : ", ",
			       sim->sensors[i].s.name);
		return -1;
	}
	if (parse_value(argv[2], &v) < 0) {
		snprintf(out, outlen, "bad value \"%s\" for %s: expected a number "
		         "such as 95 or 12.1", argv[2], ss->s.name);
		return -1;
	}
	ss->s.has_value = 1;
	ss->s.value = v;
	sb_sensor_eval(&ss->s);
	log_crossings(sim);

	fmt_reading(val, sizeof(val), &ss->s);
	snprintf(out, outlen, "%s %s = %s (%s)", hal->node, ss->s.name, val,
	         sb_sensor_state_name(ss->s.state));
	if (!visible(sim, ss))
		append(out, outlen, "; power is off, so it reads nothing until "
		       "power on");
	return 0;
}

static int
on_off(const char *word, int *out)
{
	if (strcmp(word, "on") == 0)
		*out = 1;
	else if (strcmp(word, "off") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/* Power changed behind the BMC's back (a pulled plug, a hand on the
 * button): unlike a POWER_ACT it is not a request, so nothing is logged
 * for it but what the sensors show when they come back. */
static int
ctl_power(struct sb_hal *hal, struct sim *sim, char **argv, char *out,
          size_t outlen)
{
	int on;

	if (on_off(argv[1], &on) < 0) {
		snprintf(out, outlen, "usage: power on|off");
		return -1;
	}
	sim->power = on ? SB_POWER_ON : SB_POWER_OFF;
	if (on)
		log_crossings(sim);
	snprintf(out, outlen, "%s power %s", hal->node, on ? "on" : "off");
	return 0;
}

static int
ctl_fail(struct sb_hal *hal, struct sim *sim, char **argv, char *out,
         size_t outlen)
{
	int on;

	if (on_off(argv[1], &on) < 0) {
		snprintf(out, outlen, "usage: fail on|off");
		return -1;
	}
	sim->failed = on;
	snprintf(out, outlen, on ? "%s no longer answers" : "%s answers again",
	         hal->node);
	return 0;
}

/* The simulator's own view: values are shown even while power hides them
 * from requests. */
static int
ctl_show(struct sb_hal *hal, struct sim *sim, char **argv, char *out,
         size_t outlen)
{
	char val[48];
	size_t i;

	(void)argv;
	snprintf(out, outlen, "%s: power %s%s", hal->node,
	         sb_power_name(sim->power),
	         sim->failed ? ", failing (does not answer)" : "");
	if (sim->nsensors == 0)
		append(out, outlen, "\nno sensors");
	for (i = 0; i < sim->nsensors; i++) {
		const struct sb_sensor *s = &sim->sensors[i].s;

		fmt_reading(val, sizeof(val), s);
		append(out, outlen, "\n%s %s %s", s->name, val,
		       sb_sensor_state_name(s->state));
	}
	return 0;
}

static const struct {
	const char *verb;
	int argc;
	const char *usage;
	int (*fn)(struct sb_hal *, struct sim *, char **, char *, size_t);
} commands[] = {
	{ .verb = "set", .argc = 3, .usage = "set <sensor> <value>", .fn = ctl_set },
	{ .verb = "power", .argc = 2, .usage = "power on|off", .fn = ctl_power },
	{ .verb = "fail", .argc = 2, .usage = "fail on|off", .fn = ctl_fail },
	{ .verb = "show", .argc = 1, .usage = "show", .fn = ctl_show },
};

static int
sim_control(struct sb_hal *hal, int argc, char **argv, char *out, size_t outlen)
{
	size_t i;

	if (outlen > 0)
		out[0] = '\0';
	for (i = 0; argc > 0 && i < SB_ARRAY_LEN(commands); i++) {
		if (strcmp(commands[i].verb, argv[0]) != 0)
			continue;
		if (argc != commands[i].argc) {
			snprintf(out, outlen, "usage: %s", commands[i].usage);
			return -1;
		}
		return commands[i].fn(hal, hal->priv, argv, out, outlen);
	}
	snprintf(out, outlen, "unknown sim command%s%s%s; use set, power, fail "
	         "or show", argc > 0 ? " \"" : "", argc > 0 ? argv[0] : "",
	         argc > 0 ? "\"" : "");
	return -1;
}

static void
sim_close(struct sb_hal *hal)
{
	sim_free(hal->priv);	/* nothing is ever pending */
	hal->priv = NULL;
}

const struct sb_hal_backend sb_hal_sim = {
	.name = "sim",
	.abi = SB_HAL_ABI,
	.caps = SB_HAL_SENSORS | SB_HAL_POWER | SB_HAL_EVENTS | SB_HAL_INVENTORY,
	.keys = sim_keys,
	.open = sim_open,
	.request = sim_request,
	.control = sim_control,
	.close = sim_close,
};
