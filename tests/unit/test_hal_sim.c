/*
 * test_hal_sim.c: unit tests for hal/hal.c (backend table, request checks,
 * sensor helpers) and hal/hal_sim.c (config, thresholds, event log, power,
 * faults, admin commands).
 *
 * The simulator is driven only through the public interface: sb_hal_open()
 * on a parsed libconfig group, sb_hal_request() and the backend's
 * control().  Other backends are not tested here.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libconfig.h>

#include "conf.h"
#include "hal.h"

#define FAIL_TEXT "simulated failure: node does not answer"

static const char base_conf[] =
	"hal = {\n"
	"  backend = \"sim\"; model = \"PowerEdge R650\"; serial = \"SIM-0001\";\n"
	"  sensors = (\n"
	"    { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0;\n"
	"      high_warning = 85.0; high_critical = 90.0; },\n"
	"    { name = \"fan1\"; kind = \"fan\"; unit = \"RPM\"; value = 7200;\n"
	"      low_warning = 1000; low_critical = 500; },\n"
	"    { name = \"psu_volt\"; kind = \"voltage\"; value = 12.1;\n"
	"      low_critical = 10.8; high_critical = 13.2; },\n"
	"    { name = \"intrusion\"; kind = \"other\"; value = 0; high_critical = 1; }\n"
	"  );\n"
	"};\n";

/* --- helpers ------------------------------------------------------------ */

/* A copy of everything one answer carried (the result is borrowed). */
struct answer {
	int     calls;
	int     status;
	char    error[200];
	int     has_error;
	enum sb_power power;
	char    message[160];
	int     has_message;
	struct sb_readings *readings;
	struct sb_hal_event events[300];
	size_t  nevents;
	struct sb_inventory inv;
	int     has_inv;
};

static void
on_done(struct sb_hal *hal, const struct sb_hal_result *res, void *ud)
{
	struct answer *a = ud;
	size_t i;

	(void)hal;
	a->calls++;
	a->status = res->status;
	a->has_error = res->error != NULL;
	snprintf(a->error, sizeof(a->error), "%s", res->error ? res->error : "");
	a->power = res->power;
	a->has_message = res->message != NULL;
	snprintf(a->message, sizeof(a->message), "%s",
	         res->message ? res->message : "");
	sb_readings_free(a->readings);
	a->readings = sb_readings_dup(res->readings);
	assert_true(res->nevents <= 300);
	for (i = 0; i < res->nevents; i++)
		a->events[i] = res->events[i];
	a->nevents = res->nevents;
	a->has_inv = res->inventory != NULL;
	if (res->inventory)
		a->inv = *res->inventory;
}

static void
answer_clear(struct answer *a)
{
	sb_readings_free(a->readings);
	memset(a, 0, sizeof(*a));
}

/* One request, which the simulator must answer exactly once, at once. */
static void
ask(struct sb_hal *hal, enum sb_hal_op op, const char *arg, int count,
    struct answer *a)
{
	struct sb_hal_req req = { .op = op, .arg = arg, .count = count };

	answer_clear(a);
	assert_int_equal(sb_hal_request(hal, &req, on_done, a), 0);
	assert_int_equal(a->calls, 1);
}

/*
 * Parse text, open its "hal" group as node, and destroy the parsed config
 * at once: open() only borrows it, so a backend that kept a pointer into
 * it shows up under the sanitizer.
 */
static struct sb_hal *
open_text(const char *text, const char *node, char *err, size_t errlen)
{
	config_t cf;
	config_setting_t *g;
	struct sb_hal *hal;

	config_init(&cf);
	if (config_read_string(&cf, text) != CONFIG_TRUE)
		fail_msg("test config does not parse: line %d: %s",
		         config_error_line(&cf), config_error_text(&cf));
	g = config_lookup(&cf, "hal");
	assert_non_null(g);
	hal = sb_hal_open(sb_hal_backend_find("sim"), node, g, err, errlen);
	config_destroy(&cf);
	return hal;
}

static struct sb_hal *
open_base(void)
{
	char err[256] = "";
	struct sb_hal *hal = open_text(base_conf, "mail", err, sizeof(err));

	if (hal == NULL)
		fail_msg("open failed: %s", err);
	assert_string_equal(err, "");
	return hal;
}

/* The error open() gives for a config; fails the test if it opens. */
static void
expect_open_error(const char *text, const char *want)
{
	char err[256] = "";
	struct sb_hal *hal = open_text(text, "mail", err, sizeof(err));

	if (hal != NULL) {
		sb_hal_close(hal);
		fail_msg("config opened, expected error: %s", want);
	}
	assert_string_equal(err, want);
}

/* Run an admin command given as one string of words. */
static int
ctl(struct sb_hal *hal, const char *line, char *out, size_t outlen)
{
	char buf[256], *argv[16], *w;
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (w = strtok(buf, " "); w != NULL && argc < 16; w = strtok(NULL, " "))
		argv[argc++] = w;
	return hal->be->control(hal, argc, argv, out, outlen);
}

static void
ctl_ok(struct sb_hal *hal, const char *line, const char *want)
{
	char out[512];

	if (ctl(hal, line, out, sizeof(out)) != 0)
		fail_msg("\"%s\" failed: %s", line, out);
	if (want != NULL)
		assert_string_equal(out, want);
}

static void
ctl_err(struct sb_hal *hal, const char *line, const char *want)
{
	char out[512];

	assert_int_equal(ctl(hal, line, out, sizeof(out)), -1);
	assert_string_equal(out, want);
}

static const struct sb_sensor *
find(const struct sb_readings *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nsensors; i++)
		if (strcmp(r->sensors[i].name, name) == 0)
			return &r->sensors[i];
	fail_msg("no sensor %s in readings", name);
	return NULL;
}

/* Read and return the state the HAL reports for one sensor. */
static enum sb_sensor_state
read_state(struct sb_hal *hal, const char *name)
{
	struct answer a = { 0 };
	enum sb_sensor_state st;

	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	st = find(a.readings, name)->state;
	answer_clear(&a);
	return st;
}

static size_t
event_count(struct sb_hal *hal)
{
	struct answer a = { 0 };
	size_t n;

	ask(hal, SB_HAL_EVENTS_GET, NULL, 1000, &a);
	n = a.nevents;
	answer_clear(&a);
	return n;
}

/* The newest event must be (sev, text). */
static void
expect_newest(struct sb_hal *hal, enum sb_event_severity sev, const char *text)
{
	struct answer a = { 0 };

	ask(hal, SB_HAL_EVENTS_GET, NULL, 1, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.nevents, 1);
	assert_string_equal(a.events[0].text, text);
	assert_int_equal(a.events[0].severity, sev);
	assert_true(a.events[0].when > 0);
	answer_clear(&a);
}

/* --- hal.c: table and requests ------------------------------------------ */

static void
test_backend_table(void **state)
{
	(void)state;
	assert_ptr_equal(sb_hal_backend_find("sim"), &sb_hal_sim);
	assert_null(sb_hal_backend_find("SIM"));
	assert_null(sb_hal_backend_find("ipmi-nope"));
	assert_null(sb_hal_backend_find(NULL));
	assert_ptr_equal(sb_hal_backend_at(0), &sb_hal_sim);
	assert_ptr_equal(sb_hal_backend_at(1), &sb_hal_linux);
	assert_ptr_equal(sb_hal_backend_at(2), &sb_hal_ipmi);
	assert_null(sb_hal_backend_at(3));
	assert_string_equal(sb_hal_sim.name, "sim");
	assert_int_equal(sb_hal_sim.abi, SB_HAL_ABI);
	assert_int_equal(sb_hal_sim.caps, SB_HAL_SENSORS | SB_HAL_POWER |
	                 SB_HAL_EVENTS | SB_HAL_INVENTORY);
	assert_non_null(sb_hal_sim.keys);
	assert_string_equal(sb_hal_sim.keys[0].name, "backend");
	assert_int_equal(sb_hal_sim.keys[0].flags & SB_KEY_REQUIRED, SB_KEY_REQUIRED);
}

/* The schema the config checker sees: every key the simulator reads. */
static const struct sb_conf_key *
key(const struct sb_conf_key *keys, const char *name)
{
	for (; keys->name != NULL; keys++)
		if (strcmp(keys->name, name) == 0)
			return keys;
	fail_msg("no key %s", name);
	return NULL;
}

static void
test_sim_keys(void **state)
{
	static const char *const strings[] = {
		"backend", "model", "serial", "vendor", "firmware", "power",
	};
	static const char *const floats[] = {
		"value", "low_critical", "low_warning", "high_warning",
		"high_critical",
	};
	const struct sb_conf_key *k, *sensors;
	size_t i, n = 0;

	(void)state;
	for (k = sb_hal_sim.keys; k->name != NULL; k++) {
		assert_non_null(k->doc);
		n++;
	}
	assert_int_equal(n, 7);
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		assert_int_equal(key(sb_hal_sim.keys, strings[i])->type, SB_CT_STRING);
	assert_string_equal(key(sb_hal_sim.keys, "power")->def, "on");
	assert_int_equal(key(sb_hal_sim.keys, "model")->flags, 0);

	sensors = key(sb_hal_sim.keys, "sensors");
	assert_int_equal(sensors->type, SB_CT_LIST);
	assert_non_null(sensors->sub);
	k = key(sensors->sub, "name");
	assert_int_equal(k->type, SB_CT_STRING);
	assert_int_equal(k->flags, SB_KEY_REQUIRED);
	k = key(sensors->sub, "kind");
	assert_int_equal(k->flags, SB_KEY_REQUIRED);
	assert_int_equal(key(sensors->sub, "unit")->flags, 0);
	for (i = 0; i < sizeof(floats) / sizeof(floats[0]); i++) {
		k = key(sensors->sub, floats[i]);
		assert_int_equal(k->type, SB_CT_FLOAT);
		assert_int_equal(k->flags, 0);
		assert_non_null(k->def);
		assert_non_null(k->doc);
	}
}

/* A backend that can only read, to test the capability check. */
static int fake_requests;

static int
fake_open(struct sb_hal *hal, const config_setting_t *conf, char *err,
          size_t errlen)
{
	(void)hal, (void)conf, (void)err, (void)errlen;
	return 0;
}

static int
fake_open_fails(struct sb_hal *hal, const config_setting_t *conf, char *err,
                size_t errlen)
{
	(void)hal, (void)conf, (void)err, (void)errlen;
	return -1;	/* and "forgets" to say why */
}

static int
fake_request(struct sb_hal *hal, const struct sb_hal_req *req,
             sb_hal_done_fn *done, void *ud)
{
	struct sb_hal_result res = { .status = 0, .power = SB_POWER_ON };

	(void)req;
	fake_requests++;
	done(hal, &res, ud);
	return 0;
}

static void
fake_close(struct sb_hal *hal)
{
	(void)hal;
}

static void
test_request_caps(void **state)
{
	const struct sb_hal_backend fake = {
		.name = "fake", .abi = SB_HAL_ABI, .caps = SB_HAL_SENSORS,
		.open = fake_open, .request = fake_request, .close = fake_close,
	};
	struct sb_hal_req req = { .op = SB_HAL_POWER_ACT, .arg = "cycle" };
	struct answer a = { 0 };
	char err[128];
	struct sb_hal *hal;

	(void)state;
	hal = sb_hal_open(&fake, "web01", NULL, err, sizeof(err));
	assert_non_null(hal);
	assert_string_equal(hal->node, "web01");
	assert_ptr_equal(hal->be, &fake);

	fake_requests = 0;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), -ENOTSUP);
	req.op = SB_HAL_EVENTS_GET;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), -ENOTSUP);
	req.op = SB_HAL_INVENTORY_GET;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), -ENOTSUP);
	req.op = (enum sb_hal_op)99;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), -EINVAL);
	assert_int_equal(sb_hal_request(hal, NULL, on_done, &a), -EINVAL);
	assert_int_equal(a.calls, 0);
	assert_int_equal(fake_requests, 0);

	req.op = SB_HAL_READ;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(fake_requests, 1);
	answer_clear(&a);
	sb_hal_close(hal);
	sb_hal_close(NULL);
}

static void
test_open_failures(void **state)
{
	struct sb_hal_backend fake = {
		.name = "fake", .abi = SB_HAL_ABI + 1, .caps = SB_HAL_SENSORS,
		.open = fake_open, .request = fake_request, .close = fake_close,
	};
	char err[128];

	(void)state;
	assert_null(sb_hal_open(&fake, "web01", NULL, err, sizeof(err)));
	assert_string_equal(err, "HAL backend \"fake\" was built for ABI 2, not 1");

	fake.abi = SB_HAL_ABI;
	fake.open = fake_open_fails;
	assert_null(sb_hal_open(&fake, "web01", NULL, err, sizeof(err)));
	assert_string_equal(err, "HAL backend \"fake\" failed to open");

	assert_null(sb_hal_open(NULL, "web01", NULL, err, sizeof(err)));
	assert_string_equal(err, "no HAL backend given");

	assert_null(sb_hal_open(&sb_hal_sim, "web01", NULL, err, sizeof(err)));
	assert_string_equal(err, "the sim backend needs a hal group");
}

/* --- hal.c: sensor helpers ---------------------------------------------- */

static struct sb_sensor
sensor(const char *name, enum sb_sensor_kind kind, const char *unit,
       double value, double lc, double lw, double hw, double hc)
{
	struct sb_sensor s;

	sb_sensor_init(&s, name, kind, unit);
	s.low_crit = lc;
	s.low_warn = lw;
	s.high_warn = hw;
	s.high_crit = hc;
	if (!isnan(value)) {
		s.has_value = 1;
		s.value = value;
	}
	sb_sensor_eval(&s);
	return s;
}

static void
test_sensor_init(void **state)
{
	struct sb_sensor s;

	(void)state;
	memset(&s, 0x5a, sizeof(s));
	sb_sensor_init(&s, "a_name_that_is_far_too_long_for_the_forty_eight_byte_field",
	               SB_SENSOR_FAN, "RPMRPMRPMRPM");
	assert_string_equal(s.name, "a_name_that_is_far_too_long_for_the_forty_eight");
	assert_string_equal(s.unit, "RPMRPMR");
	assert_int_equal(s.kind, SB_SENSOR_FAN);
	assert_int_equal(s.has_value, 0);
	assert_true(isnan(s.low_crit) && isnan(s.low_warn));
	assert_true(isnan(s.high_warn) && isnan(s.high_crit));
	assert_int_equal(s.state, SB_SENSOR_UNKNOWN);
}

static void
test_sensor_eval(void **state)
{
	struct sb_sensor s;

	(void)state;
	/* High side, at and around the exact limits. */
	s = sensor("t", SB_SENSOR_TEMPERATURE, "C", 84.999, NAN, NAN, 85, 90);
	assert_int_equal(s.state, SB_SENSOR_OK);
	s = sensor("t", SB_SENSOR_TEMPERATURE, "C", 85, NAN, NAN, 85, 90);
	assert_int_equal(s.state, SB_SENSOR_WARNING);
	s = sensor("t", SB_SENSOR_TEMPERATURE, "C", 89.999, NAN, NAN, 85, 90);
	assert_int_equal(s.state, SB_SENSOR_WARNING);
	s = sensor("t", SB_SENSOR_TEMPERATURE, "C", 90, NAN, NAN, 85, 90);
	assert_int_equal(s.state, SB_SENSOR_CRITICAL);
	/* Low side. */
	s = sensor("f", SB_SENSOR_FAN, "RPM", 1000.001, 500, 1000, NAN, NAN);
	assert_int_equal(s.state, SB_SENSOR_OK);
	s = sensor("f", SB_SENSOR_FAN, "RPM", 1000, 500, 1000, NAN, NAN);
	assert_int_equal(s.state, SB_SENSOR_WARNING);
	s = sensor("f", SB_SENSOR_FAN, "RPM", 500, 500, 1000, NAN, NAN);
	assert_int_equal(s.state, SB_SENSOR_CRITICAL);
	s = sensor("f", SB_SENSOR_FAN, "RPM", -1, 500, 1000, NAN, NAN);
	assert_int_equal(s.state, SB_SENSOR_CRITICAL);
	/* No thresholds: always ok; only a critical one: no warning band. */
	s = sensor("x", SB_SENSOR_OTHER, "", 1e300, NAN, NAN, NAN, NAN);
	assert_int_equal(s.state, SB_SENSOR_OK);
	s = sensor("x", SB_SENSOR_OTHER, "", 0.99, NAN, NAN, NAN, 1);
	assert_int_equal(s.state, SB_SENSOR_OK);
	/* Critical wins over a warning limit of the other side. */
	s = sensor("x", SB_SENSOR_OTHER, "", 100, NAN, 200, NAN, 100);
	assert_int_equal(s.state, SB_SENSOR_CRITICAL);
	/* No reading, or a NAN one: unknown. */
	s = sensor("t", SB_SENSOR_TEMPERATURE, "C", NAN, NAN, NAN, 85, 90);
	assert_int_equal(s.state, SB_SENSOR_UNKNOWN);
	s.has_value = 1;
	s.value = NAN;
	sb_sensor_eval(&s);
	assert_int_equal(s.state, SB_SENSOR_UNKNOWN);
	s.has_value = 0;
	s.value = 95;
	sb_sensor_eval(&s);
	assert_int_equal(s.state, SB_SENSOR_UNKNOWN);
}

static void
expect_describe(struct sb_sensor s, const char *want)
{
	char out[128];

	memset(out, 'x', sizeof(out));
	sb_sensor_describe(&s, out, sizeof(out));
	assert_string_equal(out, want);
}

static void
test_sensor_describe(void **state)
{
	struct sb_sensor s;
	char small[8];

	(void)state;
	expect_describe(sensor("cpu_temp", SB_SENSOR_TEMPERATURE, "C", 95,
	                       NAN, NAN, 85, 90), "cpu_temp 95 C (critical >= 90)");
	expect_describe(sensor("cpu_temp", SB_SENSOR_TEMPERATURE, "C", 86.5,
	                       NAN, NAN, 85, 90), "cpu_temp 86.5 C (warning >= 85)");
	expect_describe(sensor("cpu_temp", SB_SENSOR_TEMPERATURE, "C", 45,
	                       NAN, NAN, 85, 90), "cpu_temp 45 C");
	expect_describe(sensor("fan1", SB_SENSOR_FAN, "RPM", 300,
	                       500, 1000, NAN, NAN), "fan1 300 RPM (critical <= 500)");
	expect_describe(sensor("fan1", SB_SENSOR_FAN, "RPM", 800,
	                       500, 1000, NAN, NAN), "fan1 800 RPM (warning <= 1000)");
	expect_describe(sensor("psu_volt", SB_SENSOR_VOLTAGE, "V", 12.1,
	                       10.8, NAN, NAN, 13.2), "psu_volt 12.1 V");
	expect_describe(sensor("psu_volt", SB_SENSOR_VOLTAGE, "V", 10.5,
	                       10.8, NAN, NAN, 13.2), "psu_volt 10.5 V (critical <= 10.8)");
	expect_describe(sensor("p3v3", SB_SENSOR_VOLTAGE, "V", 3.3,
	                       NAN, NAN, NAN, NAN), "p3v3 3.3 V");
	expect_describe(sensor("intrusion", SB_SENSOR_OTHER, "", 1,
	                       NAN, NAN, NAN, 1), "intrusion 1 (critical >= 1)");
	expect_describe(sensor("energy", SB_SENSOR_POWER, "Wh", 2500000,
	                       NAN, NAN, NAN, NAN), "energy 2500000 Wh");
	expect_describe(sensor("cpu_temp", SB_SENSOR_TEMPERATURE, "C", NAN,
	                       NAN, NAN, 85, 90), "cpu_temp no reading");

	/* A state given by the device without known limits (IPMI). */
	s = sensor("psu1", SB_SENSOR_OTHER, "", 1, NAN, NAN, NAN, NAN);
	s.state = SB_SENSOR_CRITICAL;
	expect_describe(s, "psu1 1 (critical)");

	/* Cut, never overrun. */
	s = sensor("cpu_temp", SB_SENSOR_TEMPERATURE, "C", 95, NAN, NAN, 85, 90);
	sb_sensor_describe(&s, small, sizeof(small));
	assert_string_equal(small, "cpu_tem");
}

static void
test_names(void **state)
{
	int k;

	(void)state;
	for (k = SB_SENSOR_TEMPERATURE; k <= SB_SENSOR_OTHER; k++)
		assert_int_equal(sb_sensor_kind_parse(sb_sensor_kind_name(k)), k);
	assert_string_equal(sb_sensor_kind_name(SB_SENSOR_FAN), "fan");
	assert_int_equal(sb_sensor_kind_parse("temperature"), SB_SENSOR_TEMPERATURE);
	assert_int_equal(sb_sensor_kind_parse("current"), SB_SENSOR_CURRENT);
	assert_int_equal(sb_sensor_kind_parse("humidity"), -1);
	assert_int_equal(sb_sensor_kind_parse(""), -1);
	assert_int_equal(sb_sensor_kind_parse(NULL), -1);
	assert_string_equal(sb_sensor_kind_name((enum sb_sensor_kind)42), "?");
	assert_string_equal(sb_sensor_state_name(SB_SENSOR_UNKNOWN), "unknown");
	assert_string_equal(sb_sensor_state_name(SB_SENSOR_OK), "ok");
	assert_string_equal(sb_sensor_state_name(SB_SENSOR_WARNING), "warning");
	assert_string_equal(sb_sensor_state_name(SB_SENSOR_CRITICAL), "critical");
	assert_string_equal(sb_power_name(SB_POWER_UNKNOWN), "unknown");
	assert_string_equal(sb_power_name(SB_POWER_ON), "on");
	assert_string_equal(sb_power_name(SB_POWER_OFF), "off");
	assert_string_equal(sb_event_severity_name(SB_EV_INFO), "info");
	assert_string_equal(sb_event_severity_name(SB_EV_WARNING), "warning");
	assert_string_equal(sb_event_severity_name(SB_EV_CRITICAL), "critical");
}

static void
test_readings_worst(void **state)
{
	struct sb_sensor s[5];
	struct sb_readings r = { .sensors = s, .power = SB_POWER_ON };

	(void)state;
	s[0] = sensor("none", SB_SENSOR_TEMPERATURE, "C", NAN, NAN, NAN, 85, 90);
	s[1] = sensor("ok", SB_SENSOR_TEMPERATURE, "C", 40, NAN, NAN, 85, 90);
	s[2] = sensor("warm", SB_SENSOR_TEMPERATURE, "C", 86, NAN, NAN, 85, 90);
	s[3] = sensor("hot", SB_SENSOR_TEMPERATURE, "C", 95, NAN, NAN, 85, 90);
	s[4] = sensor("hot2", SB_SENSOR_TEMPERATURE, "C", 99, NAN, NAN, 85, 90);

	r.nsensors = 5;
	assert_ptr_equal(sb_readings_worst(&r), &s[3]);	/* first of the two */
	r.nsensors = 3;
	assert_ptr_equal(sb_readings_worst(&r), &s[2]);
	r.nsensors = 2;
	assert_ptr_equal(sb_readings_worst(&r), &s[1]);	/* all ok: first read */
	r.nsensors = 1;
	assert_null(sb_readings_worst(&r));		/* no reading at all */
	r.nsensors = 0;
	assert_null(sb_readings_worst(&r));
	assert_null(sb_readings_worst(NULL));

	/* Ties at warning go to the first too. */
	s[0] = sensor("fan", SB_SENSOR_FAN, "RPM", 800, 500, 1000, NAN, NAN);
	r.nsensors = 3;
	assert_ptr_equal(sb_readings_worst(&r), &s[0]);
}

static void
test_readings_dup(void **state)
{
	struct sb_sensor s[2];
	struct sb_readings r = { .sensors = s, .nsensors = 2,
	                         .power = SB_POWER_OFF, .taken = 1234 };
	struct sb_readings *copy;

	(void)state;
	s[0] = sensor("a", SB_SENSOR_FAN, "RPM", 800, 500, 1000, NAN, NAN);
	s[1] = sensor("b", SB_SENSOR_OTHER, "", 1, NAN, NAN, NAN, NAN);
	copy = sb_readings_dup(&r);
	assert_non_null(copy);
	assert_ptr_not_equal(copy->sensors, s);
	assert_int_equal(copy->nsensors, 2);
	assert_int_equal(copy->power, SB_POWER_OFF);
	assert_int_equal(copy->taken, 1234);
	assert_memory_equal(copy->sensors, s, sizeof(s));
	s[0].value = 1;		/* the copy is its own */
	assert_true(copy->sensors[0].value == 800);
	sb_readings_free(copy);

	r.nsensors = 0;
	r.sensors = NULL;
	copy = sb_readings_dup(&r);
	assert_null(copy->sensors);
	assert_int_equal(copy->nsensors, 0);
	sb_readings_free(copy);
	assert_null(sb_readings_dup(NULL));
	sb_readings_free(NULL);
}

/* --- hal_sim.c: config -------------------------------------------------- */

static void
test_sim_open_read(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };
	const struct sb_sensor *s;

	(void)state;
	assert_string_equal(hal->node, "mail");
	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.has_error, 0);
	assert_int_equal(a.power, SB_POWER_ON);
	assert_int_equal(a.readings->power, SB_POWER_ON);
	assert_true(a.readings->taken > 0);
	assert_int_equal(a.readings->nsensors, 4);

	s = &a.readings->sensors[0];
	assert_string_equal(s->name, "cpu_temp");
	assert_int_equal(s->kind, SB_SENSOR_TEMPERATURE);
	assert_string_equal(s->unit, "C");
	assert_int_equal(s->has_value, 1);
	assert_true(s->value == 45.0);
	assert_true(s->high_warn == 85.0 && s->high_crit == 90.0);
	assert_true(isnan(s->low_warn) && isnan(s->low_crit));
	assert_int_equal(s->state, SB_SENSOR_OK);

	/* Integers in the config are numbers too. */
	s = &a.readings->sensors[1];
	assert_string_equal(s->name, "fan1");
	assert_int_equal(s->kind, SB_SENSOR_FAN);
	assert_true(s->value == 7200.0);
	assert_true(s->low_warn == 1000.0 && s->low_crit == 500.0);
	assert_int_equal(s->state, SB_SENSOR_OK);

	s = &a.readings->sensors[2];
	assert_string_equal(s->name, "psu_volt");
	assert_string_equal(s->unit, "V");	/* by kind */
	assert_true(s->value == 12.1);

	s = &a.readings->sensors[3];
	assert_string_equal(s->unit, "");
	assert_int_equal(s->kind, SB_SENSOR_OTHER);

	/* All normal at start: nothing logged. */
	assert_int_equal(event_count(hal), 0);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_sim_inventory(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };
	char err[256];

	(void)state;
	ask(hal, SB_HAL_INVENTORY_GET, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	assert_true(a.has_inv);
	assert_string_equal(a.inv.model, "PowerEdge R650");
	assert_string_equal(a.inv.serial, "SIM-0001");
	assert_string_equal(a.inv.vendor, "Switchboard");
	assert_string_equal(a.inv.firmware, "sim");
	sb_hal_close(hal);

	hal = open_text("hal = { backend = \"sim\"; vendor = \"Dell Inc.\"; "
	                "firmware = \"2.1.3\"; };", "db01", err, sizeof(err));
	assert_non_null(hal);
	ask(hal, SB_HAL_INVENTORY_GET, NULL, 0, &a);
	assert_string_equal(a.inv.vendor, "Dell Inc.");
	assert_string_equal(a.inv.model, "Simulated node");
	assert_string_equal(a.inv.serial, "SIM-db01");
	assert_string_equal(a.inv.firmware, "2.1.3");

	/* No sensors at all is a valid node. */
	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.readings->nsensors, 0);
	assert_null(sb_readings_worst(a.readings));
	answer_clear(&a);
	sb_hal_close(hal);
}

#define SENSOR_CONF(body) \
	"hal = { backend = \"sim\"; sensors = ( " body " ); };"

static void
test_sim_bad_config(void **state)
{
	char err[256];
	struct sb_hal *hal;

	(void)state;
	expect_open_error(SENSOR_CONF(
		"{ name = \"h1\"; kind = \"humidity\"; }"),
		"sensor \"h1\": unknown kind \"humidity\"; use temperature, fan, "
		"voltage, power, current or other");
	expect_open_error(SENSOR_CONF(
		"{ name = \"fan1\"; kind = \"fan\"; },"
		"{ name = \"fan1\"; kind = \"fan\"; }"),
		"sensor \"fan1\" is defined twice (sensors 1 and 2)");
	expect_open_error(SENSOR_CONF(
		"{ name = \"cpu_temp\"; kind = \"temperature\"; "
		"high_warning = 95.0; high_critical = 90.0; }"),
		"sensor \"cpu_temp\": high_warning must be below high_critical");
	expect_open_error(SENSOR_CONF(
		"{ name = \"fan1\"; kind = \"fan\"; "
		"low_warning = 500; low_critical = 1000; }"),
		"sensor \"fan1\": low_critical must be below low_warning");
	expect_open_error(SENSOR_CONF(
		"{ name = \"v\"; kind = \"voltage\"; "
		"low_warning = 12; high_warning = 12; }"),
		"sensor \"v\": low_warning must be below high_warning");
	expect_open_error(SENSOR_CONF(
		"{ name = \"v\"; kind = \"voltage\"; "
		"low_critical = 14; high_critical = 13.2; }"),
		"sensor \"v\": low_critical must be below high_critical");
	expect_open_error(SENSOR_CONF(
		"{ name = \"t\"; kind = \"temperature\"; },"
		"{ kind = \"fan\"; }"),
		"sensor 2: name is required");
	expect_open_error(SENSOR_CONF(
		"{ name = \"t\"; }"),
		"sensor \"t\": kind is required");
	expect_open_error(SENSOR_CONF(
		"{ name = \"cpu temp\"; kind = \"temperature\"; }"),
		"sensor 1: name \"cpu temp\" must be one word");
	expect_open_error(SENSOR_CONF(
		"{ name = \"t\"; kind = \"temperature\"; value = \"hot\"; }"),
		"sensor \"t\": value must be a number");
	expect_open_error(SENSOR_CONF(
		"{ name = \"t\"; kind = \"temperature\"; unit = \"degreesC\"; }"),
		"sensor \"t\": unit \"degreesC\" is longer than 7 characters");
	expect_open_error(SENSOR_CONF("\"cpu_temp\""),
		"sensor 1: must be a group { name = ...; kind = ...; }");
	expect_open_error("hal = { backend = \"sim\"; power = \"maybe\"; };",
		"power must be \"on\" or \"off\", not \"maybe\"");
	expect_open_error("hal = { backend = \"sim\"; sensors = { a = 1; }; };",
		"sensors must be a list: ( { name = ...; kind = ...; }, ... )");
	expect_open_error("hal = { backend = \"sim\"; model = "
		"\"0123456789012345678901234567890123456789012345678901234567890123\"; };",
		"model is longer than 63 characters");

	/* Equal warning and critical limits on one side are allowed. */
	hal = open_text(SENSOR_CONF(
		"{ name = \"t\"; kind = \"temperature\"; value = 90; "
		"high_warning = 90; high_critical = 90; }"), "mail", err, sizeof(err));
	assert_non_null(hal);
	assert_int_equal(read_state(hal, "t"), SB_SENSOR_CRITICAL);
	sb_hal_close(hal);
}

/* --- hal_sim.c: thresholds and the event log ---------------------------- */

static void
test_sim_high_crossings(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };

	(void)state;
	ctl_ok(hal, "set cpu_temp 84.9", "mail cpu_temp = 84.9 C (ok)");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_OK);
	assert_int_equal(event_count(hal), 0);

	ctl_ok(hal, "set cpu_temp 85", "mail cpu_temp = 85 C (warning)");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_WARNING);
	expect_newest(hal, SB_EV_WARNING,
	              "cpu_temp 85 C: upper warning threshold crossed (>= 85)");

	ctl_ok(hal, "set cpu_temp 89.99", "mail cpu_temp = 89.99 C (warning)");
	assert_int_equal(event_count(hal), 1);	/* no change, no entry */

	ctl_ok(hal, "set cpu_temp 90", "mail cpu_temp = 90 C (critical)");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_CRITICAL);
	expect_newest(hal, SB_EV_CRITICAL,
	              "cpu_temp 90 C: upper critical threshold crossed (>= 90)");

	ctl_ok(hal, "set cpu_temp 95", "mail cpu_temp = 95 C (critical)");
	assert_int_equal(event_count(hal), 2);

	ctl_ok(hal, "set cpu_temp 89.999", "mail cpu_temp = 89.999 C (warning)");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_WARNING);
	expect_newest(hal, SB_EV_WARNING,
	              "cpu_temp 89.999 C: upper critical threshold cleared (< 90)");

	ctl_ok(hal, "set cpu_temp 85", "mail cpu_temp = 85 C (warning)");
	assert_int_equal(event_count(hal), 3);

	ctl_ok(hal, "set cpu_temp 70", "mail cpu_temp = 70 C (ok)");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_OK);
	expect_newest(hal, SB_EV_INFO, "cpu_temp 70 C: back to normal");

	/* Straight from normal to critical: one entry, critical. */
	ctl_ok(hal, "set cpu_temp 100", NULL);
	expect_newest(hal, SB_EV_CRITICAL,
	              "cpu_temp 100 C: upper critical threshold crossed (>= 90)");
	ctl_ok(hal, "set cpu_temp 40", NULL);
	expect_newest(hal, SB_EV_INFO, "cpu_temp 40 C: back to normal");

	/* The whole log, newest first. */
	ask(hal, SB_HAL_EVENTS_GET, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.nevents, 6);
	assert_string_equal(a.events[0].text, "cpu_temp 40 C: back to normal");
	assert_int_equal(a.events[1].severity, SB_EV_CRITICAL);
	assert_string_equal(a.events[2].text, "cpu_temp 70 C: back to normal");
	assert_int_equal(a.events[3].severity, SB_EV_WARNING);
	assert_int_equal(a.events[4].severity, SB_EV_CRITICAL);
	assert_string_equal(a.events[5].text,
	                    "cpu_temp 85 C: upper warning threshold crossed (>= 85)");
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_sim_low_crossings(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };
	char desc[128];

	(void)state;
	ctl_ok(hal, "set fan1 1001", "mail fan1 = 1001 RPM (ok)");
	assert_int_equal(event_count(hal), 0);
	ctl_ok(hal, "set fan1 1000", "mail fan1 = 1000 RPM (warning)");
	expect_newest(hal, SB_EV_WARNING,
	              "fan1 1000 RPM: lower warning threshold crossed (<= 1000)");
	ctl_ok(hal, "set fan1 500", "mail fan1 = 500 RPM (critical)");
	expect_newest(hal, SB_EV_CRITICAL,
	              "fan1 500 RPM: lower critical threshold crossed (<= 500)");
	ctl_ok(hal, "set fan1 300", NULL);
	assert_int_equal(event_count(hal), 2);

	ask(hal, SB_HAL_READ, NULL, 0, &a);
	sb_sensor_describe(find(a.readings, "fan1"), desc, sizeof(desc));
	assert_string_equal(desc, "fan1 300 RPM (critical <= 500)");
	assert_string_equal(sb_readings_worst(a.readings)->name, "fan1");

	ctl_ok(hal, "set fan1 501", "mail fan1 = 501 RPM (warning)");
	expect_newest(hal, SB_EV_WARNING,
	              "fan1 501 RPM: lower critical threshold cleared (> 500)");
	ctl_ok(hal, "set fan1 7200", "mail fan1 = 7200 RPM (ok)");
	expect_newest(hal, SB_EV_INFO, "fan1 7200 RPM: back to normal");
	assert_int_equal(event_count(hal), 4);

	/* From one side's critical limit straight to the other's: a SEL logs
	 * it although the state stays critical. */
	ctl_ok(hal, "set psu_volt 13.5", NULL);
	expect_newest(hal, SB_EV_CRITICAL,
	              "psu_volt 13.5 V: upper critical threshold crossed (>= 13.2)");
	ctl_ok(hal, "set psu_volt 10", "mail psu_volt = 10 V (critical)");
	expect_newest(hal, SB_EV_CRITICAL,
	              "psu_volt 10 V: lower critical threshold crossed (<= 10.8)");
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_sim_initial_crossing(void **state)
{
	char err[256];
	struct sb_hal *hal;
	struct answer a = { 0 };
	static const char text[] = SENSOR_CONF(
		"{ name = \"cpu_temp\"; kind = \"temperature\"; value = 95; "
		"high_warning = 85; high_critical = 90; }");

	(void)state;
	/* Past a limit at start-up: logged as a BMC logs it when it starts. */
	hal = open_text(text, "mail", err, sizeof(err));
	assert_non_null(hal);
	expect_newest(hal, SB_EV_CRITICAL,
	              "cpu_temp 95 C: upper critical threshold crossed (>= 90)");
	assert_int_equal(event_count(hal), 1);
	sb_hal_close(hal);

	/* Powered off at start-up: nothing is read, so nothing is logged
	 * until power comes on. */
	hal = open_text("hal = { backend = \"sim\"; power = \"off\"; sensors = ("
	                "{ name = \"cpu_temp\"; kind = \"temperature\"; value = 95; "
	                "high_critical = 90; } ); };", "mail", err, sizeof(err));
	assert_non_null(hal);
	assert_int_equal(event_count(hal), 0);
	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.power, SB_POWER_OFF);
	assert_int_equal(a.readings->sensors[0].has_value, 0);
	ask(hal, SB_HAL_POWER_ACT, "on", 0, &a);
	assert_int_equal(a.power, SB_POWER_ON);
	expect_newest(hal, SB_EV_CRITICAL,
	              "cpu_temp 95 C: upper critical threshold crossed (>= 90)");
	assert_int_equal(event_count(hal), 2);	/* and "power on requested" */
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_sim_event_ring(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };
	char line[64];
	int i;

	(void)state;
	/* 300 entries, each naming its step, into a log of 256. */
	for (i = 0; i < 150; i++) {
		snprintf(line, sizeof(line), "set cpu_temp %d", 1000 + i);
		ctl_ok(hal, line, NULL);
		snprintf(line, sizeof(line), "set cpu_temp %d", i % 80);
		ctl_ok(hal, line, NULL);
	}
	ask(hal, SB_HAL_EVENTS_GET, NULL, 0, &a);
	assert_int_equal(a.nevents, 10);	/* the default */
	assert_string_equal(a.events[0].text, "cpu_temp 69 C: back to normal");
	assert_string_equal(a.events[1].text,
	                    "cpu_temp 1149 C: upper critical threshold crossed (>= 90)");
	assert_string_equal(a.events[9].text,
	                    "cpu_temp 1145 C: upper critical threshold crossed (>= 90)");

	ask(hal, SB_HAL_EVENTS_GET, NULL, 3, &a);
	assert_int_equal(a.nevents, 3);
	assert_string_equal(a.events[2].text, "cpu_temp 68 C: back to normal");

	ask(hal, SB_HAL_EVENTS_GET, NULL, -5, &a);
	assert_int_equal(a.nevents, 10);

	/* The oldest kept is entry 44 of 0..299: step 22's crossing. */
	ask(hal, SB_HAL_EVENTS_GET, NULL, 1000, &a);
	assert_int_equal(a.nevents, 256);
	assert_string_equal(a.events[255].text,
	                    "cpu_temp 1022 C: upper critical threshold crossed (>= 90)");
	assert_string_equal(a.events[254].text, "cpu_temp 22 C: back to normal");
	answer_clear(&a);
	sb_hal_close(hal);
}

/* --- hal_sim.c: power and faults ---------------------------------------- */

static void
test_sim_power_off_hides(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };
	const struct sb_sensor *s;

	(void)state;
	ctl_ok(hal, "power off", "mail power off");
	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.power, SB_POWER_OFF);
	assert_int_equal(a.readings->power, SB_POWER_OFF);
	assert_int_equal(a.readings->nsensors, 4);
	s = find(a.readings, "cpu_temp");
	assert_int_equal(s->has_value, 0);
	assert_int_equal(s->state, SB_SENSOR_UNKNOWN);
	assert_true(s->high_crit == 90.0);	/* limits are still known */
	s = find(a.readings, "fan1");
	assert_int_equal(s->has_value, 0);
	assert_int_equal(s->state, SB_SENSOR_UNKNOWN);
	/* A standby sensor still reads. */
	s = find(a.readings, "intrusion");
	assert_int_equal(s->has_value, 1);
	assert_true(s->value == 0.0);
	assert_int_equal(s->state, SB_SENSOR_OK);
	assert_string_equal(sb_readings_worst(a.readings)->name, "intrusion");

	/* A change while off is not read, so not logged, until power on. */
	ctl_ok(hal, "set cpu_temp 95", "mail cpu_temp = 95 C (critical); power "
	       "is off, so it reads nothing until power on");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_UNKNOWN);
	assert_int_equal(event_count(hal), 0);
	ctl_ok(hal, "set intrusion 1", "mail intrusion = 1 (critical)");
	expect_newest(hal, SB_EV_CRITICAL,
	              "intrusion 1: upper critical threshold crossed (>= 1)");

	ctl_ok(hal, "power on", "mail power on");
	expect_newest(hal, SB_EV_CRITICAL,
	              "cpu_temp 95 C: upper critical threshold crossed (>= 90)");
	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.power, SB_POWER_ON);
	s = find(a.readings, "cpu_temp");
	assert_int_equal(s->has_value, 1);
	assert_true(s->value == 95.0);
	assert_int_equal(s->state, SB_SENSOR_CRITICAL);
	assert_true(find(a.readings, "fan1")->value == 7200.0);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_sim_power_actions(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };

	(void)state;
	ask(hal, SB_HAL_POWER_ACT, "status", 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.power, SB_POWER_ON);
	assert_string_equal(a.message, "power is on");
	assert_int_equal(event_count(hal), 0);

	ask(hal, SB_HAL_POWER_ACT, "off", 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.power, SB_POWER_OFF);
	assert_string_equal(a.message, "power off issued");
	expect_newest(hal, SB_EV_INFO, "power off requested");
	ask(hal, SB_HAL_POWER_ACT, "status", 0, &a);
	assert_string_equal(a.message, "power is off");

	ask(hal, SB_HAL_POWER_ACT, "cycle", 0, &a);
	assert_int_equal(a.power, SB_POWER_ON);
	assert_string_equal(a.message, "power cycle issued");
	expect_newest(hal, SB_EV_INFO, "power cycle requested");
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_OK);

	ask(hal, SB_HAL_POWER_ACT, "reset", 0, &a);
	assert_int_equal(a.power, SB_POWER_ON);
	assert_string_equal(a.message, "power reset issued");
	expect_newest(hal, SB_EV_INFO, "power reset requested");

	ask(hal, SB_HAL_POWER_ACT, "soft", 0, &a);
	assert_int_equal(a.power, SB_POWER_OFF);
	assert_string_equal(a.message, "soft power off issued");
	expect_newest(hal, SB_EV_INFO, "soft power off requested");

	ask(hal, SB_HAL_POWER_ACT, "on", 0, &a);
	assert_int_equal(a.power, SB_POWER_ON);
	assert_string_equal(a.message, "power on issued");
	assert_int_equal(event_count(hal), 5);

	ask(hal, SB_HAL_POWER_ACT, "explode", 0, &a);
	assert_int_equal(a.status, -EINVAL);
	assert_string_equal(a.error, "unknown power action \"explode\"; use "
	                    "status, on, off, cycle, reset or soft");
	assert_int_equal(a.power, SB_POWER_ON);
	assert_int_equal(a.has_message, 0);
	ask(hal, SB_HAL_POWER_ACT, NULL, 0, &a);
	assert_int_equal(a.status, -EINVAL);
	assert_int_equal(event_count(hal), 5);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_sim_fail(void **state)
{
	struct sb_hal *hal = open_base();
	struct answer a = { 0 };
	static const enum sb_hal_op ops[] = {
		SB_HAL_READ, SB_HAL_POWER_ACT, SB_HAL_EVENTS_GET,
		SB_HAL_INVENTORY_GET,
	};
	size_t i;

	(void)state;
	ctl_ok(hal, "fail on", "mail no longer answers");
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		ask(hal, ops[i], "off", 5, &a);
		assert_int_equal(a.status, -EHOSTUNREACH);
		assert_string_equal(a.error, FAIL_TEXT);
		assert_null(a.readings);
		assert_int_equal(a.nevents, 0);
		assert_int_equal(a.has_inv, 0);
	}
	/* The admin can still change what a node that does not answer
	 * would read. */
	ctl_ok(hal, "set cpu_temp 91", "mail cpu_temp = 91 C (critical)");
	ctl_ok(hal, "fail off", "mail answers again");
	ask(hal, SB_HAL_READ, NULL, 0, &a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.power, SB_POWER_ON);	/* the "off" was not done */
	assert_int_equal(find(a.readings, "cpu_temp")->state, SB_SENSOR_CRITICAL);
	expect_newest(hal, SB_EV_CRITICAL,
	              "cpu_temp 91 C: upper critical threshold crossed (>= 90)");
	answer_clear(&a);
	sb_hal_close(hal);
}

/* The callback may close the instance: nothing may touch it afterwards. */
static void
close_in_callback(struct sb_hal *hal, const struct sb_hal_result *res, void *ud)
{
	int *calls = ud;

	assert_int_equal(res->status, 0);
	(*calls)++;
	sb_hal_close(hal);
}

static void
test_sim_close_in_callback(void **state)
{
	static const enum sb_hal_op ops[] = {
		SB_HAL_READ, SB_HAL_POWER_ACT, SB_HAL_EVENTS_GET,
		SB_HAL_INVENTORY_GET,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct sb_hal *hal = open_base();
		struct sb_hal_req req = { .op = ops[i], .arg = "cycle" };
		int calls = 0;

		assert_int_equal(sb_hal_request(hal, &req, close_in_callback,
		                                &calls), 0);
		assert_int_equal(calls, 1);
	}
}

/* --- hal_sim.c: admin commands ------------------------------------------ */

static void
test_sim_control_errors(void **state)
{
	struct sb_hal *hal = open_base();
	char out[256];
	char *argv[3];

	(void)state;
	ctl_err(hal, "set cpu_temp 9x",
	        "bad value \"9x\" for cpu_temp: expected a number such as 95 or 12.1");
	ctl_err(hal, "set cpu_temp nan",
	        "bad value \"nan\" for cpu_temp: expected a number such as 95 or 12.1");
	ctl_err(hal, "set cpu_temp inf",
	        "bad value \"inf\" for cpu_temp: expected a number such as 95 or 12.1");
	ctl_err(hal, "set cpu_temp 1e999",
	        "bad value \"1e999\" for cpu_temp: expected a number such as 95 or 12.1");
	ctl_err(hal, "set cpu_temp 95C",
	        "bad value \"95C\" for cpu_temp: expected a number such as 95 or 12.1");
	argv[0] = "set", argv[1] = "cpu_temp", argv[2] = "";
	assert_int_equal(hal->be->control(hal, 3, argv, out, sizeof(out)), -1);
	assert_string_equal(out,
	        "bad value \"\" for cpu_temp: expected a number such as 95 or 12.1");
	argv[2] = " 95";
	assert_int_equal(hal->be->control(hal, 3, argv, out, sizeof(out)), -1);
	/* None of that changed anything. */
	assert_int_equal(read_state(hal, "cpu_temp"), SB_SENSOR_OK);
	ctl_ok(hal, "show", NULL);

	ctl_err(hal, "set gpu_temp 5", "no sensor \"gpu_temp\" on mail; sensors: "
	        "cpu_temp, fan1, psu_volt, intrusion");
	ctl_err(hal, "set cpu_temp", "usage: set <sensor> <value>");
	ctl_err(hal, "set cpu_temp 1 2", "usage: set <sensor> <value>");
	ctl_err(hal, "power maybe", "usage: power on|off");
	ctl_err(hal, "power", "usage: power on|off");
	ctl_err(hal, "fail sometimes", "usage: fail on|off");
	ctl_err(hal, "explode", "unknown sim command \"explode\"; use set, "
	        "power, fail or show");
	ctl_err(hal, "", "unknown sim command; use set, power, fail or show");

	/* What strtod reads in full is fine. */
	ctl_ok(hal, "set cpu_temp -3.5", "mail cpu_temp = -3.5 C (ok)");
	ctl_ok(hal, "set cpu_temp 1e2", "mail cpu_temp = 100 C (critical)");
	ctl_ok(hal, "set cpu_temp 0x10", "mail cpu_temp = 16 C (ok)");

	/* A reply longer than out is cut, not overrun. */
	assert_int_equal(ctl(hal, "set gpu_temp 5", out, 12), -1);
	assert_string_equal(out, "no sensor \"");
	sb_hal_close(hal);

	hal = open_text("hal = { backend = \"sim\"; };", "bare", out, sizeof(out));
	assert_non_null(hal);
	ctl_err(hal, "set cpu_temp 5", "no sensor \"cpu_temp\" on bare; it has no "
	        "sensors");
	ctl_ok(hal, "show", "bare: power on\nno sensors");
	sb_hal_close(hal);
}

static void
test_sim_show(void **state)
{
	struct sb_hal *hal = open_base();

	(void)state;
	ctl_ok(hal, "set cpu_temp 86", NULL);
	ctl_ok(hal, "show", "mail: power on\n"
	       "cpu_temp 86 C warning\n"
	       "fan1 7200 RPM ok\n"
	       "psu_volt 12.1 V ok\n"
	       "intrusion 0 ok");
	ctl_ok(hal, "power off", NULL);
	ctl_ok(hal, "fail on", NULL);
	ctl_ok(hal, "show", "mail: power off, failing (does not answer)\n"
	       "cpu_temp 86 C warning\n"
	       "fan1 7200 RPM ok\n"
	       "psu_volt 12.1 V ok\n"
	       "intrusion 0 ok");
	sb_hal_close(hal);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_table),
		cmocka_unit_test(test_request_caps),
		cmocka_unit_test(test_open_failures),
		cmocka_unit_test(test_sensor_init),
		cmocka_unit_test(test_sensor_eval),
		cmocka_unit_test(test_sensor_describe),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_readings_worst),
		cmocka_unit_test(test_readings_dup),
		cmocka_unit_test(test_sim_keys),
		cmocka_unit_test(test_sim_open_read),
		cmocka_unit_test(test_sim_inventory),
		cmocka_unit_test(test_sim_bad_config),
		cmocka_unit_test(test_sim_high_crossings),
		cmocka_unit_test(test_sim_low_crossings),
		cmocka_unit_test(test_sim_initial_crossing),
		cmocka_unit_test(test_sim_event_ring),
		cmocka_unit_test(test_sim_power_off_hides),
		cmocka_unit_test(test_sim_power_actions),
		cmocka_unit_test(test_sim_fail),
		cmocka_unit_test(test_sim_close_in_callback),
		cmocka_unit_test(test_sim_control_errors),
		cmocka_unit_test(test_sim_show),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
