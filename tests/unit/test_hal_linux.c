/*
 * test_hal_linux.c: unit tests for hal/hal_linux.c, the agent-mode backend.
 *
 * Each test builds a fake procfs/sysfs tree in a temp folder and points
 * the backend's "root" at it: known values and limits (a sensor exactly at
 * its critical limit among them), alarm and fault flags, labels, missing
 * files and garbage contents.  One test reads the real /proc of the
 * machine running it, asserting only that the values are sane.  Power
 * commands run real programs (/bin/echo, /bin/false, /bin/sleep) under a
 * real loop.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libconfig.h>

#include "conf.h"
#include "core.h"
#include "hal.h"
#include "loop.h"

/* --- the fake tree ------------------------------------------------------- */

static char root[256];

/* Write text to root/rel, creating the folders on the way. */
static void
put(const char *rel, const char *text)
{
	char path[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
	if ((f = fopen(path, "w")) == NULL)
		fail_msg("fopen %s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

static void
drop(const char *rel)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	unlink(path);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "%s/sb-hal-linux-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(root) == NULL)
		return -1;
	sb_core.loop = sb_loop_new();
	return sb_core.loop == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	sb_loop_free(sb_core.loop);
	sb_core.loop = NULL;
	return 0;
}

/* A machine with a bit of everything. */
static void
full_tree(void)
{
	put("proc/loadavg", "0.50 1.25 2.00 1/100 1234\n");
	put("proc/uptime", "12345.67 100.00\n");
	put("proc/meminfo", "MemTotal:        1000000 kB\nMemFree:          10000 kB\n"
	    "MemAvailable:     400000 kB\nSwapTotal:        200000 kB\n"
	    "SwapFree:          50000 kB\n");
	/* coretemp: a label, limits, one sensor exactly at its critical limit */
	put("sys/class/hwmon/hwmon0/name", "coretemp\n");
	put("sys/class/hwmon/hwmon0/temp1_input", "45000\n");
	put("sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
	put("sys/class/hwmon/hwmon0/temp1_max", "80000\n");
	put("sys/class/hwmon/hwmon0/temp1_crit", "100000\n");
	put("sys/class/hwmon/hwmon0/temp2_input", "100000\n");
	put("sys/class/hwmon/hwmon0/temp2_label", "Core 0\n");
	put("sys/class/hwmon/hwmon0/temp2_max", "80000\n");
	put("sys/class/hwmon/hwmon0/temp2_crit", "100000\n");
	put("sys/class/hwmon/hwmon0/temp3_input", "forty-two\n");
	put("sys/class/hwmon/hwmon0/temp4_input", "50000\n");
	put("sys/class/hwmon/hwmon0/temp4_crit_alarm", "1\n");
	/* a Super I/O chip: fans, voltages, power, current */
	put("sys/class/hwmon/hwmon1/name", "nct6775\n");
	put("sys/class/hwmon/hwmon1/fan1_input", "1200\n");
	put("sys/class/hwmon/hwmon1/fan1_min", "300\n");
	put("sys/class/hwmon/hwmon1/fan2_input", "0\n");
	put("sys/class/hwmon/hwmon1/fan2_min", "0\n");
	put("sys/class/hwmon/hwmon1/fan2_alarm", "1\n");
	put("sys/class/hwmon/hwmon1/fan3_input", "900\n");
	put("sys/class/hwmon/hwmon1/fan3_fault", "1\n");
	put("sys/class/hwmon/hwmon1/in0_input", "1200\n");
	put("sys/class/hwmon/hwmon1/in0_min", "1000\n");
	put("sys/class/hwmon/hwmon1/in0_max", "1400\n");
	put("sys/class/hwmon/hwmon1/in0_lcrit", "900\n");
	put("sys/class/hwmon/hwmon1/power1_input", "150000000\n");
	put("sys/class/hwmon/hwmon1/curr1_input", "2500\n");
	put("sys/class/hwmon/hwmon1/fan1_label", "CPU fan\n");
	/* an old driver: attributes under device/ */
	put("sys/class/hwmon/hwmon2/device/name", "oldchip\n");
	put("sys/class/hwmon/hwmon2/device/temp1_input", "30000\n");
	/* a thermal zone with trip points */
	put("sys/class/thermal/thermal_zone0/type", "x86_pkg_temp\n");
	put("sys/class/thermal/thermal_zone0/temp", "60000\n");
	put("sys/class/thermal/thermal_zone0/trip_point_0_type", "critical\n");
	put("sys/class/thermal/thermal_zone0/trip_point_0_temp", "105000\n");
	put("sys/class/thermal/thermal_zone0/trip_point_1_type", "passive\n");
	put("sys/class/thermal/thermal_zone0/trip_point_1_temp", "95000\n");
	put("sys/class/thermal/cooling_device0/type", "Processor\n");
	/* mains off, battery nearly flat */
	put("sys/class/power_supply/AC/type", "Mains\n");
	put("sys/class/power_supply/AC/online", "0\n");
	put("sys/class/power_supply/BAT0/type", "Battery\n");
	put("sys/class/power_supply/BAT0/capacity", "5\n");
	put("sys/class/power_supply/usb/type", "USB\n");
	/* the DMI identity */
	put("sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
	put("sys/class/dmi/id/product_name", "PowerEdge R650\n");
	put("sys/class/dmi/id/bios_version", "1.2.3\n");
}

/* --- requests ---------------------------------------------------------- */

struct answer {
	int     calls;
	int     status;
	char    error[400];
	char    message[400];
	enum sb_power power;
	struct sb_readings *readings;
	struct sb_inventory inv;
	int     has_inv;
};

static void
on_done(struct sb_hal *hal, const struct sb_hal_result *res, void *ud)
{
	struct answer *a = ud;

	(void)hal;
	a->calls++;
	a->status = res->status;
	snprintf(a->error, sizeof(a->error), "%s", res->error ? res->error : "");
	snprintf(a->message, sizeof(a->message), "%s", res->message ? res->message : "");
	a->power = res->power;
	sb_readings_free(a->readings);
	a->readings = sb_readings_dup(res->readings);
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

/* Open a hal group given as text; NULL with err set if open() refuses. */
static struct sb_hal *
open_text(const char *text, char *err, size_t errlen)
{
	config_t cf;
	struct sb_hal *hal;

	config_init(&cf);
	if (config_read_string(&cf, text) != CONFIG_TRUE)
		fail_msg("test config does not parse: line %d: %s",
		         config_error_line(&cf), config_error_text(&cf));
	hal = sb_hal_open(sb_hal_backend_find("linux"), "self",
	                  config_lookup(&cf, "hal"), err, errlen);
	config_destroy(&cf);	/* open() only borrows it */
	return hal;
}

/* Open with root set to the fake tree and extra keys. */
static struct sb_hal *
open_root(const char *extra)
{
	char text[2048], err[256] = "";
	struct sb_hal *hal;

	snprintf(text, sizeof(text), "hal = { backend = \"linux\"; root = \"%s\"; %s };",
	         root, extra ? extra : "");
	if ((hal = open_text(text, err, sizeof(err))) == NULL)
		fail_msg("open failed: %s", err);
	return hal;
}

static const char *
open_error(const char *extra)
{
	static char err[256];
	char text[2048];
	struct sb_hal *hal;

	snprintf(text, sizeof(text), "hal = { backend = \"linux\"; root = \"%s\"; %s };",
	         root, extra);
	err[0] = '\0';
	if ((hal = open_text(text, err, sizeof(err))) != NULL) {
		sb_hal_close(hal);
		fail_msg("opened, but should not: %s", extra);
	}
	return err;
}

static void
read_all(struct sb_hal *hal, struct answer *a)
{
	struct sb_hal_req req = { .op = SB_HAL_READ };

	answer_clear(a);
	assert_int_equal(sb_hal_request(hal, &req, on_done, a), 0);
	assert_int_equal(a->calls, 1);	/* answered at once, on the loop */
	assert_int_equal(a->status, 0);
	assert_non_null(a->readings);
}

static const struct sb_sensor *
find(const struct answer *a, const char *name)
{
	for (size_t i = 0; i < a->readings->nsensors; i++)
		if (strcmp(a->readings->sensors[i].name, name) == 0)
			return &a->readings->sensors[i];
	return NULL;
}

static const struct sb_sensor *
must_find(const struct answer *a, const char *name)
{
	const struct sb_sensor *s = find(a, name);

	if (s == NULL) {
		char names[2048] = "";

		for (size_t i = 0; i < a->readings->nsensors; i++) {
			strncat(names, a->readings->sensors[i].name, sizeof(names) - strlen(names) - 2);
			strncat(names, " ", sizeof(names) - strlen(names) - 1);
		}
		fail_msg("no sensor %s among: %s", name, names);
	}
	return s;
}

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-6)

/* Run the loop until the answer came, at most ms. */
static void
wait_answer(struct answer *a, long ms)
{
	uint64_t end = sb_now_ms() + (uint64_t)ms;

	while (a->calls == 0 && sb_now_ms() < end)
		sb_loop_once(sb_core.loop, 20);
	assert_int_equal(a->calls, 1);
}

/* --- tests --------------------------------------------------------------- */

static void
test_backend_registered(void **state)
{
	const struct sb_hal_backend *be = sb_hal_backend_find("linux");

	(void)state;
	assert_non_null(be);
	assert_int_equal(be->abi, SB_HAL_ABI);
	assert_true(be->caps & SB_HAL_SENSORS);
	assert_true(be->caps & SB_HAL_POWER);
	assert_false(be->caps & SB_HAL_EVENTS);
}

static void
test_procfs(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;
	const struct sb_sensor *s;

	(void)state;
	full_tree();
	hal = open_root("load_warning = 1.0; load_critical = 4.0; swap_warning = 70;");
	read_all(hal, &a);
	assert_int_equal(a.readings->power, SB_POWER_ON);
	s = must_find(&a, "load1");
	assert_near(s->value, 0.5);
	assert_true(isnan(s->high_warn));	/* thresholds on load5 only */
	s = must_find(&a, "load5");
	assert_near(s->value, 1.25);
	assert_near(s->high_warn, 1.0);
	assert_int_equal(s->state, SB_SENSOR_WARNING);
	s = must_find(&a, "load15");
	assert_near(s->value, 2.0);
	s = must_find(&a, "uptime");
	assert_near(s->value, 12345);
	assert_string_equal(s->unit, "s");
	s = must_find(&a, "mem_used");		/* (1000000 - 400000) / 1000000 */
	assert_near(s->value, 60.0);
	assert_string_equal(s->unit, "%");
	assert_int_equal(s->state, SB_SENSOR_OK);
	s = must_find(&a, "swap_used");		/* 150000 / 200000 */
	assert_near(s->value, 75.0);
	assert_int_equal(s->state, SB_SENSOR_WARNING);
	/* The default mount "/" is the fake root's folder itself. */
	s = must_find(&a, "fs_root");
	assert_true(s->has_value);
	assert_true(s->value >= 0 && s->value <= 100);
	assert_near(s->high_warn, 90);
	assert_near(s->high_crit, 95);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_memory_critical_and_old_kernel(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;

	(void)state;
	/* No MemAvailable (before 3.14): free + buffers + cached. 95 % used
	 * is at the critical limit, which counts. */
	put("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 20 kB\nBuffers: 10 kB\n"
	    "Cached: 20 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n");
	hal = open_root(NULL);
	read_all(hal, &a);
	assert_near(must_find(&a, "mem_used")->value, 95.0);
	assert_int_equal(must_find(&a, "mem_used")->state, SB_SENSOR_CRITICAL);
	assert_null(find(&a, "swap_used"));	/* no swap, no sensor */
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_hwmon_values_labels_limits(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;
	const struct sb_sensor *s;

	(void)state;
	full_tree();
	hal = open_root(NULL);
	read_all(hal, &a);

	s = must_find(&a, "coretemp_Package_id_0");	/* from temp1_label */
	assert_int_equal(s->kind, SB_SENSOR_TEMPERATURE);
	assert_string_equal(s->unit, "C");
	assert_near(s->value, 45.0);			/* m°C */
	assert_near(s->high_warn, 80.0);		/* _max */
	assert_near(s->high_crit, 100.0);		/* _crit */
	assert_true(isnan(s->low_warn));
	assert_int_equal(s->state, SB_SENSOR_OK);

	s = must_find(&a, "coretemp_Core_0");		/* exactly at _crit */
	assert_near(s->value, 100.0);
	assert_int_equal(s->state, SB_SENSOR_CRITICAL);
	{
		char text[128];

		sb_sensor_describe(s, text, sizeof(text));
		assert_string_equal(text, "coretemp_Core_0 100 C (critical >= 100)");
	}

	s = must_find(&a, "coretemp_temp3");		/* garbage: no reading */
	assert_false(s->has_value);
	assert_int_equal(s->state, SB_SENSOR_UNKNOWN);

	s = must_find(&a, "nct6775_CPU_fan");
	assert_int_equal(s->kind, SB_SENSOR_FAN);
	assert_string_equal(s->unit, "RPM");
	assert_near(s->value, 1200);
	assert_near(s->low_warn, 300);			/* _min */

	s = must_find(&a, "nct6775_in0");
	assert_int_equal(s->kind, SB_SENSOR_VOLTAGE);
	assert_string_equal(s->unit, "V");
	assert_near(s->value, 1.2);			/* mV */
	assert_near(s->low_warn, 1.0);
	assert_near(s->high_warn, 1.4);
	assert_near(s->low_crit, 0.9);			/* _lcrit */
	assert_int_equal(s->state, SB_SENSOR_OK);

	s = must_find(&a, "nct6775_power1");
	assert_int_equal(s->kind, SB_SENSOR_POWER);
	assert_near(s->value, 150.0);			/* µW */
	assert_string_equal(s->unit, "W");
	s = must_find(&a, "nct6775_curr1");
	assert_int_equal(s->kind, SB_SENSOR_CURRENT);
	assert_near(s->value, 2.5);			/* mA */

	s = must_find(&a, "oldchip_temp1");		/* device/ layout */
	assert_near(s->value, 30.0);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_hwmon_alarms_and_faults(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;
	const struct sb_sensor *s;

	(void)state;
	full_tree();
	hal = open_root(NULL);
	read_all(hal, &a);
	/* 50 C with no limit crossed, but the chip raised its critical alarm */
	s = must_find(&a, "coretemp_temp4");
	assert_near(s->value, 50);
	assert_int_equal(s->state, SB_SENSOR_CRITICAL);
	/* a stopped fan with an unset (0) minimum: the alarm flag tells */
	s = must_find(&a, "nct6775_fan2");
	assert_true(s->has_value);
	assert_near(s->value, 0);
	assert_true(isnan(s->low_warn));
	assert_int_equal(s->state, SB_SENSOR_WARNING);
	/* a fan the chip reports failed */
	s = must_find(&a, "nct6775_fan3");
	assert_int_equal(s->state, SB_SENSOR_CRITICAL);
	/* the worst of the reading is critical */
	assert_int_equal(sb_readings_worst(a.readings)->state, SB_SENSOR_CRITICAL);

	/* An alarm that clears clears the state. */
	put("sys/class/hwmon/hwmon0/temp4_crit_alarm", "0\n");
	read_all(hal, &a);
	assert_int_equal(must_find(&a, "coretemp_temp4")->state, SB_SENSOR_OK);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_values_follow_files(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;

	(void)state;
	full_tree();
	hal = open_root(NULL);
	read_all(hal, &a);
	assert_int_equal(must_find(&a, "coretemp_Package_id_0")->state, SB_SENSOR_OK);
	put("sys/class/hwmon/hwmon0/temp1_input", "85000\n");
	read_all(hal, &a);
	assert_near(must_find(&a, "coretemp_Package_id_0")->value, 85.0);
	assert_int_equal(must_find(&a, "coretemp_Package_id_0")->state, SB_SENSOR_WARNING);
	/* A file that disappears (a module unloaded) is no reading, not a crash. */
	drop("sys/class/hwmon/hwmon0/temp1_input");
	read_all(hal, &a);
	assert_null(find(&a, "coretemp_Package_id_0"));
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_thermal_and_power_supply(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;
	const struct sb_sensor *s;

	(void)state;
	full_tree();
	hal = open_root(NULL);
	read_all(hal, &a);
	s = must_find(&a, "tz_x86_pkg_temp");
	assert_near(s->value, 60.0);
	assert_near(s->high_crit, 105.0);	/* the critical trip */
	assert_near(s->high_warn, 95.0);	/* passive, as there is no hot trip */
	assert_int_equal(s->state, SB_SENSOR_OK);
	s = must_find(&a, "AC_online");		/* on battery: a warning */
	assert_near(s->value, 0);
	assert_int_equal(s->state, SB_SENSOR_WARNING);
	s = must_find(&a, "BAT0_charge");
	assert_near(s->value, 5);
	assert_string_equal(s->unit, "%");
	assert_int_equal(s->state, SB_SENSOR_CRITICAL);	/* <= 10 % */
	assert_null(find(&a, "usb_online"));	/* USB supplies are ignored */
	assert_null(find(&a, "tz_Processor"));	/* cooling devices too */
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_switches_and_ignore(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;

	(void)state;
	full_tree();
	hal = open_root("hwmon = false; power_supply = false; "
	                "ignore = [ \"load*\", \"tz_*\" ];");
	read_all(hal, &a);
	assert_null(find(&a, "load1"));
	assert_null(find(&a, "tz_x86_pkg_temp"));
	assert_null(find(&a, "coretemp_Core_0"));
	assert_null(find(&a, "AC_online"));
	assert_non_null(find(&a, "uptime"));
	answer_clear(&a);
	sb_hal_close(hal);

	hal = open_root("ignore = [ \"nct6775_*\", \"coretemp_temp?\" ];");
	read_all(hal, &a);
	assert_null(find(&a, "nct6775_CPU_fan"));
	assert_null(find(&a, "coretemp_temp3"));
	assert_non_null(find(&a, "coretemp_Core_0"));
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_names_unique_and_one_word(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;

	(void)state;
	/* Two chips of the same name with the same labels. */
	put("sys/class/hwmon/hwmon0/name", "drivetemp\n");
	put("sys/class/hwmon/hwmon0/temp1_input", "30000\n");
	put("sys/class/hwmon/hwmon1/name", "drivetemp\n");
	put("sys/class/hwmon/hwmon1/temp1_input", "31000\n");
	put("sys/class/hwmon/hwmon2/name", "weird chip/name\n");
	put("sys/class/hwmon/hwmon2/temp1_input", "32000\n");
	put("sys/class/hwmon/hwmon2/temp1_label", "a\tvery long label that goes on and on and on\n");
	hal = open_root("mounts = [ \"/\", \"/var/log/\" ];");
	read_all(hal, &a);
	assert_near(must_find(&a, "drivetemp_temp1")->value, 30.0);
	assert_near(must_find(&a, "drivetemp_temp1_2")->value, 31.0);
	for (size_t i = 0; i < a.readings->nsensors; i++) {
		const char *n = a.readings->sensors[i].name;

		assert_true(strlen(n) > 0 && strlen(n) < sizeof(a.readings->sensors[i].name));
		assert_null(strpbrk(n, " \t/"));
	}
	/* A mount that does not exist is a sensor without a reading. */
	assert_false(must_find(&a, "fs_var_log")->has_value);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_empty_and_garbage_tree(void **state)
{
	struct answer a = { 0 };
	struct sb_hal *hal;

	(void)state;
	hal = open_root(NULL);
	read_all(hal, &a);
	/* Nothing but the filesystem of the root folder itself. */
	assert_int_equal(a.readings->nsensors, 1);
	assert_string_equal(a.readings->sensors[0].name, "fs_root");

	put("proc/loadavg", "not numbers at all\n");
	put("proc/uptime", "\n");
	put("proc/meminfo", "MemTotal: lots\nMemAvailable: 5 kB\n");
	put("sys/class/hwmon/hwmon0/name", "\n");
	put("sys/class/hwmon/hwmon0/temp1_input", "123abc\n");
	put("sys/class/hwmon/hwmon0/temp1_max", "99999999999999999999999\n");
	put("sys/class/hwmon/hwmon0/temp2_crit", "90000\n");	/* no input */
	put("sys/class/thermal/thermal_zone0/temp", "\n");
	put("sys/class/power_supply/BAT0/type", "Battery\n");
	put("sys/class/power_supply/BAT0/capacity", "250\n");
	read_all(hal, &a);
	assert_null(find(&a, "load1"));
	assert_null(find(&a, "uptime"));
	assert_null(find(&a, "mem_used"));
	assert_false(must_find(&a, "hwmon0_temp1")->has_value);	/* no name: the folder's */
	assert_true(isnan(must_find(&a, "hwmon0_temp1")->high_warn));
	assert_null(find(&a, "hwmon0_temp2"));
	assert_false(must_find(&a, "tz_thermal_zone0")->has_value);
	assert_false(must_find(&a, "BAT0_charge")->has_value);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_real_proc(void **state)
{
	struct answer a = { 0 };
	char err[256] = "";
	struct sb_hal *hal;
	const struct sb_sensor *s;

	(void)state;
	hal = open_text("hal = { backend = \"linux\"; };", err, sizeof(err));
	assert_non_null(hal);
	read_all(hal, &a);
	s = must_find(&a, "load1");
	assert_true(s->has_value && s->value >= 0 && s->value < 10000);
	s = must_find(&a, "uptime");
	assert_true(s->has_value && s->value > 0);
	s = must_find(&a, "mem_used");
	assert_true(s->has_value && s->value > 0 && s->value <= 100);
	s = must_find(&a, "fs_root");
	assert_true(s->has_value && s->value >= 0 && s->value <= 100);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_inventory(void **state)
{
	struct answer a = { 0 };
	struct sb_hal_req req = { .op = SB_HAL_INVENTORY_GET };
	struct sb_hal *hal;

	(void)state;
	full_tree();
	hal = open_root(NULL);
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 1);
	assert_true(a.has_inv);
	assert_string_equal(a.inv.vendor, "Dell Inc.");
	assert_string_equal(a.inv.model, "PowerEdge R650");
	assert_string_equal(a.inv.serial, "");	/* root-only on a real machine */
	assert_string_equal(a.inv.firmware, "BIOS 1.2.3");
	answer_clear(&a);
	/* Events are not something this backend has. */
	req.op = SB_HAL_EVENTS_GET;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), -ENOTSUP);
	sb_hal_close(hal);
}

static void
test_power_refused_without_command(void **state)
{
	struct answer a = { 0 };
	struct sb_hal_req req = { .op = SB_HAL_POWER_ACT, .arg = "status" };
	struct sb_hal *hal;

	(void)state;
	hal = open_root(NULL);
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.power, SB_POWER_ON);
	assert_non_null(strstr(a.message, "power is on"));

	static const char *const acts[] = { "off", "cycle", "reset", "soft", "on" };
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		answer_clear(&a);
		req.arg = acts[i];
		assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
		assert_int_equal(a.calls, 1);
		assert_int_equal(a.status, -EPERM);
		assert_non_null(strstr(a.error, "refused"));
		assert_non_null(strstr(a.error, "power_commands"));
	}
	answer_clear(&a);
	req.arg = "explode";
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.status, -EINVAL);
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_power_command_runs(void **state)
{
	struct answer a = { 0 };
	struct sb_hal_req req = { .op = SB_HAL_POWER_ACT, .arg = "off" };
	struct sb_hal *hal;
	char marker[512], extra[1024];

	(void)state;
	/* The argv reaches the program word for word: no shell splits or
	 * expands it ("$HOME" and ";" stay as they are). */
	snprintf(marker, sizeof(marker), "%s/ran", root);
	snprintf(extra, sizeof(extra), "power_commands = { off = [ \"/bin/echo\", "
	         "\"bye; $HOME\" ]; cycle = [ \"/usr/bin/touch\", \"%s\" ]; "
	         "reset = [ \"/bin/false\" ]; soft = [ \"/bin/sleep\", \"5\" ]; "
	         "on = [ \"/nonexistent/program\" ]; }; power_timeout = 0.3;", marker);
	hal = open_root(extra);

	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 0);		/* a child runs; the loop waits for it */
	wait_answer(&a, 5000);
	assert_int_equal(a.status, 0);
	assert_string_equal(a.message, "power off issued (command exited 0): bye; $HOME");
	assert_int_equal(a.power, SB_POWER_OFF);

	answer_clear(&a);
	req.arg = "cycle";
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	wait_answer(&a, 5000);
	assert_int_equal(a.status, 0);
	assert_int_equal(access(marker, F_OK), 0);

	answer_clear(&a);
	req.arg = "reset";
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	wait_answer(&a, 5000);
	assert_int_equal(a.status, -EIO);
	assert_non_null(strstr(a.error, "exit status 1"));

	answer_clear(&a);
	req.arg = "on";
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	wait_answer(&a, 5000);
	assert_int_equal(a.status, -EIO);
	assert_non_null(strstr(a.error, "exit status 127"));

	/* A command that outlives its timeout is killed; while it runs, a
	 * second action is refused. */
	answer_clear(&a);
	req.arg = "soft";
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	{
		struct answer b = { 0 };
		struct sb_hal_req r2 = { .op = SB_HAL_POWER_ACT, .arg = "off" };

		assert_int_equal(sb_hal_request(hal, &r2, on_done, &b), 0);
		assert_int_equal(b.calls, 1);
		assert_int_equal(b.status, -EBUSY);
		answer_clear(&b);
	}
	wait_answer(&a, 5000);
	assert_int_equal(a.status, -ETIMEDOUT);
	assert_non_null(strstr(a.error, "killed"));
	answer_clear(&a);
	sb_hal_close(hal);
}

static void
test_close_while_command_runs(void **state)
{
	struct answer a = { 0 };
	struct sb_hal_req req = { .op = SB_HAL_POWER_ACT, .arg = "off" };
	struct sb_hal *hal;

	(void)state;
	hal = open_root("power_commands = { off = [ \"/bin/sleep\", \"10\" ]; };");
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 0);
	sb_hal_close(hal);		/* answers the pending request, kills the child */
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, -ECANCELED);
	sb_loop_once(sb_core.loop, 0);	/* nothing left that fires */
	assert_int_equal(a.calls, 1);
	answer_clear(&a);
}

static void
test_config_errors(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(open_text("hal = { backend = \"linux\"; root = \"relative/path\"; };",
	                      err, sizeof(err)));
	assert_non_null(strstr(err, "absolute"));
	assert_non_null(strstr(open_error("fs_warning = 96; fs_critical = 95;"),
	                       "fs_warning"));
	assert_non_null(strstr(open_error("memory_warning = 99.5; memory_critical = 90;"),
	                       "memory_warning"));
	assert_non_null(strstr(open_error("mounts = [ \"var\" ];"), "absolute"));
	assert_non_null(strstr(open_error("power_commands = { off = [ \"poweroff\" ]; };"),
	                       "absolute path"));
	assert_non_null(strstr(open_error("power_commands = { off = [ ]; };"),
	                       "absolute path"));
	assert_non_null(strstr(open_error("power_timeout = 0;"), "power_timeout"));
	assert_non_null(strstr(open_error("battery_warning = 5; battery_critical = 10;"),
	                       "battery_warning"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backend_registered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_procfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_critical_and_old_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hwmon_values_labels_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hwmon_alarms_and_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_follow_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thermal_and_power_supply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switches_and_ignore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_unique_and_one_word, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_garbage_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inventory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_refused_without_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_command_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_command_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
