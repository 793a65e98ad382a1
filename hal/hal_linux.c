/*
 * hal_linux.c: the Linux HAL backend ("linux"), for agent mode: the daemon
 * runs on the machine it reports on.
 *
 * It reads what the kernel publishes: load, uptime, memory and swap from
 * procfs; filesystem use from statvfs() on the configured mounts; every
 * hwmon sensor (temperatures, fans, voltages, currents, power meters) with
 * the driver's limits and alarm flags; thermal zones with their trip
 * points; power supplies (mains online, battery charge); and the DMI
 * identity for the inventory.  Every path is taken below a configurable
 * root, so tests point it at a fake tree built in a temp folder.
 *
 * Power actions are refused with a reason, unless the operator allowed an
 * action by giving it an exact command (argv, run without a shell, with a
 * timeout).  The command runs in a child process whose output pipe the loop
 * watches; the loop never waits for it.
 *
 * It knows nothing of nodes' states or policies: a sensor's state here is
 * its own thresholds and the kernel's alarm flags, nothing more.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "conf.h"
#include "core.h"
#include "hal.h"
#include "loop.h"
#include "util.h"

#define LX_FILE_MAX	4096	/* no sysfs attribute we read is longer */
#define LX_OUT_MAX	512	/* command output kept for the reply */
#define LX_REAP_MS	50	/* how often to look for a child that closed its pipe */

static const char *const actions[] = { "on", "off", "cycle", "reset", "soft" };
#define LX_NACTIONS (sizeof(actions) / sizeof(actions[0]))

/* A running power command.  Owned by the instance; at most one at a time. */
struct lx_cmd {
	pid_t   pid;
	int     fd;		/* read end of the child's stdout+stderr, -1 at EOF */
	int     exited;
	int     wstatus;
	int     timed_out;
	char    action[8];
	char    out[LX_OUT_MAX];
	size_t  outlen;
	struct sb_timer *timer;	/* timeout, then reaping */
	uint64_t deadline;	/* sb_now_ms() */
	sb_hal_done_fn *done;
	void   *ud;
};

struct lx {
	struct sb_hal *hal;
	char   *root;		/* "" for "/", else without a trailing slash */
	char  **mounts;
	size_t  nmounts;
	char  **ignore;
	size_t  nignore;
	int     hwmon, thermal, psu;
	double  fs_warn, fs_crit, mem_warn, mem_crit, swap_warn, swap_crit;
	double  load_warn, load_crit, bat_warn, bat_crit;
	char  **power_argv[LX_NACTIONS];	/* NULL: the action is refused */
	double  power_timeout;	/* seconds */
	struct lx_cmd *cmd;
};

/* A growable list of sensors, for one reading. */
struct svec {
	struct sb_sensor *v;
	size_t  n, cap;
};

static const struct sb_conf_key power_keys[] = {
	{ .name = "on", .type = SB_CT_STRINGS, .def = "refused",
	  .doc = "argv run for \"power on\" (absolute path first; no shell)" },
	{ .name = "off", .type = SB_CT_STRINGS, .def = "refused",
	  .doc = "argv run for \"power off\"" },
	{ .name = "cycle", .type = SB_CT_STRINGS, .def = "refused",
	  .doc = "argv run for \"power cycle\"" },
	{ .name = "reset", .type = SB_CT_STRINGS, .def = "refused",
	  .doc = "argv run for \"power reset\"" },
	{ .name = "soft", .type = SB_CT_STRINGS, .def = "refused",
	  .doc = "argv run for \"power soft\" (an orderly shutdown)" },
	{ .name = NULL },
};

static const struct sb_conf_key linux_keys[] = {
	{ .name = "backend", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "\"linux\" for the machine the daemon runs on" },
	{ .name = "root", .type = SB_CT_STRING, .def = "/",
	  .doc = "the folder holding proc/ and sys/ (a fake tree in tests)" },
	{ .name = "mounts", .type = SB_CT_STRINGS, .def = "[ \"/\" ]",
	  .doc = "filesystems whose use is reported (local ones: statvfs may hang on NFS)" },
	{ .name = "fs_warning", .type = SB_CT_FLOAT, .def = "90",
	  .doc = "filesystem use in % that is a warning" },
	{ .name = "fs_critical", .type = SB_CT_FLOAT, .def = "95",
	  .doc = "filesystem use in % that is critical" },
	{ .name = "memory_warning", .type = SB_CT_FLOAT, .def = "90",
	  .doc = "memory use in % (MemAvailable counted free) that is a warning" },
	{ .name = "memory_critical", .type = SB_CT_FLOAT, .def = "95",
	  .doc = "memory use in % that is critical" },
	{ .name = "swap_warning", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "swap use in % that is a warning" },
	{ .name = "swap_critical", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "swap use in % that is critical" },
	{ .name = "load_warning", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "5-minute load average that is a warning" },
	{ .name = "load_critical", .type = SB_CT_FLOAT, .def = "none",
	  .doc = "5-minute load average that is critical" },
	{ .name = "battery_warning", .type = SB_CT_FLOAT, .def = "20",
	  .doc = "battery charge in % at or below which is a warning" },
	{ .name = "battery_critical", .type = SB_CT_FLOAT, .def = "10",
	  .doc = "battery charge in % at or below which is critical" },
	{ .name = "hwmon", .type = SB_CT_BOOL, .def = "true",
	  .doc = "report every sensor under sys/class/hwmon" },
	{ .name = "thermal", .type = SB_CT_BOOL, .def = "true",
	  .doc = "report the thermal zones under sys/class/thermal" },
	{ .name = "power_supply", .type = SB_CT_BOOL, .def = "true",
	  .doc = "report mains and batteries under sys/class/power_supply" },
	{ .name = "ignore", .type = SB_CT_STRINGS, .def = "[ ]",
	  .doc = "globs of sensor names not to report (\"nct6775_in*\")" },
	{ .name = "power_commands", .type = SB_CT_GROUP, .sub = power_keys,
	  .def = "none: every power action is refused",
	  .doc = "the power actions allowed, each an exact command" },
	{ .name = "power_timeout", .type = SB_CT_FLOAT, .def = "30",
	  .doc = "seconds a power command may run before it is killed" },
	{ .name = NULL },
};

/* --- small helpers ------------------------------------------------------ */

static void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* A string array from config, NULL-terminated; *n its length. */
static char **
strv_conf(const config_setting_t *s, size_t *n)
{
	size_t len = s != NULL ? (size_t)config_setting_length(s) : 0;
	char **v = sb_calloc(len + 1, sizeof(*v));

	for (size_t i = 0; i < len; i++) {
		const char *e = config_setting_get_string_elem(s, (int)i);

		v[i] = sb_strdup(e != NULL ? e : "");
	}
	if (n != NULL)
		*n = len;
	return v;
}

/*
 * Read a small file below root into buf, NUL-terminated, without the
 * trailing newline.  Returns the length or -1.  The path is "root" +
 * "rel", rel starting with '/'.
 */
static ssize_t
read_small(const struct lx *lx, const char *rel, char *buf, size_t len)
{
	char path[4096];
	ssize_t n = 0, got = 0;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s%s", lx->root, rel) >= sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while ((size_t)got < len - 1) {
		n = read(fd, buf + got, len - 1 - (size_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	if (n < 0)
		return -1;
	buf[got] = '\0';
	while (got > 0 && isspace((unsigned char)buf[got - 1]))
		buf[--got] = '\0';
	return got;
}

/* A whole number, strictly: "42", "-7", with surrounding blanks only. */
static int
parse_ll(const char *s, long long *out)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (end == s || errno == ERANGE)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	return *end == '\0' ? 0 : -1;
}

/* A number file (sysfs attributes are integers); -1 if absent or garbage. */
static int
read_ll(const struct lx *lx, const char *rel, long long *out)
{
	char buf[64];

	if (read_small(lx, rel, buf, sizeof(buf)) < 0)
		return -1;
	return parse_ll(buf, out);
}

/* A scaled attribute, NAN when absent or not a number. */
static double
read_scaled(const struct lx *lx, const char *rel, double scale)
{
	long long v;

	return read_ll(lx, rel, &v) == 0 ? (double)v / scale : NAN;
}

static int
ignored(const struct lx *lx, const char *name)
{
	for (size_t i = 0; i < lx->nignore; i++)
		if (sb_glob(lx->ignore[i], name))
			return 1;
	return 0;
}

/*
 * A sensor name: one word of letters, digits and "_.-", at most
 * sizeof(name) - 1 long, unique in the reading ("_2", "_3" appended).
 */
static void
make_name(const struct svec *sv, char *out, size_t outlen, const char *raw)
{
	char base[sizeof(((struct sb_sensor *)0)->name)];
	size_t i, j = 0;
	int dup = 1;

	for (i = 0; raw[i] != '\0' && j + 1 < sizeof(base); i++) {
		unsigned char c = (unsigned char)raw[i];

		base[j++] = isalnum(c) || c == '_' || c == '.' || c == '-' ? (char)c : '_';
	}
	base[j] = '\0';
	if (j == 0)
		sb_strlcpy(base, "sensor", sizeof(base));
	sb_strlcpy(out, base, outlen);
	for (;;) {
		int clash = 0;

		for (i = 0; i < sv->n && !clash; i++)
			clash = strcmp(sv->v[i].name, out) == 0;
		if (!clash)
			return;
		dup++;
		{
			char suffix[16];
			size_t sl = (size_t)snprintf(suffix, sizeof(suffix), "_%d", dup);
			size_t keep = strlen(base);

			if (keep + sl >= outlen)
				keep = outlen - sl - 1;
			snprintf(out, outlen, "%.*s%s", (int)keep, base, suffix);
		}
	}
}

/* Append a sensor, named from raw; NULL if the name is ignored. */
static struct sb_sensor *
add_sensor(const struct lx *lx, struct svec *sv, const char *raw,
           enum sb_sensor_kind kind, const char *unit)
{
	char name[sizeof(sv->v->name)];
	struct sb_sensor *s;

	make_name(sv, name, sizeof(name), raw);
	if (ignored(lx, name))
		return NULL;
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 16;
		sv->v = sb_realloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	s = &sv->v[sv->n++];
	sb_sensor_init(s, name, kind, unit);
	return s;
}

static void
set_value(struct sb_sensor *s, double v)
{
	s->has_value = !isnan(v);
	s->value = v;
}

/* Raise a sensor's state to at least st (alarm flags, faults). */
static void
raise_state(struct sb_sensor *s, enum sb_sensor_state st)
{
	if (s->state < st)
		s->state = st;
}

/* --- procfs and statvfs ------------------------------------------------- */

static void
read_load(const struct lx *lx, struct svec *sv)
{
	char buf[256];
	double l[3];
	struct sb_sensor *s;
	static const char *const names[] = { "load1", "load5", "load15" };

	if (read_small(lx, "/proc/loadavg", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3)
		return;
	for (int i = 0; i < 3; i++) {
		if ((s = add_sensor(lx, sv, names[i], SB_SENSOR_OTHER, "")) == NULL)
			continue;
		set_value(s, isfinite(l[i]) && l[i] >= 0 ? l[i] : NAN);
		if (i == 1) {	/* thresholds on the 5-minute average: no flapping */
			s->high_warn = lx->load_warn;
			s->high_crit = lx->load_crit;
		}
		sb_sensor_eval(s);
	}
}

static void
read_uptime(const struct lx *lx, struct svec *sv)
{
	char buf[128];
	double up;
	struct sb_sensor *s;

	if (read_small(lx, "/proc/uptime", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%lf", &up) != 1 || !isfinite(up) || up < 0)
		return;
	if ((s = add_sensor(lx, sv, "uptime", SB_SENSOR_OTHER, "s")) == NULL)
		return;
	set_value(s, floor(up));
	sb_sensor_eval(s);
}

/* One "Key:   123 kB" line of /proc/meminfo, in kB; -1 if absent. */
static long long
meminfo_kb(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;
	long long v;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			char *end;

			errno = 0;
			v = strtoll(p + klen + 1, &end, 10);
			if (end == p + klen + 1 || errno == ERANGE || v < 0)
				return -1;
			return v;
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

static void
add_percent(const struct lx *lx, struct svec *sv, const char *name,
            double used, double total, double warn, double crit)
{
	struct sb_sensor *s;

	if (total <= 0 || used < 0)
		return;
	if ((s = add_sensor(lx, sv, name, SB_SENSOR_OTHER, "%")) == NULL)
		return;
	set_value(s, round(used / total * 1000.0) / 10.0);	/* 0.1 % steps */
	s->high_warn = warn;
	s->high_crit = crit;
	sb_sensor_eval(s);
}

static void
read_memory(const struct lx *lx, struct svec *sv)
{
	char buf[LX_FILE_MAX];
	long long total, avail, free_kb, stotal, sfree;

	if (read_small(lx, "/proc/meminfo", buf, sizeof(buf)) < 0)
		return;
	total = meminfo_kb(buf, "MemTotal");
	avail = meminfo_kb(buf, "MemAvailable");
	if (avail < 0) {	/* kernels before 3.14: free + page cache */
		free_kb = meminfo_kb(buf, "MemFree");
		avail = free_kb < 0 ? -1 : free_kb + (meminfo_kb(buf, "Buffers") > 0 ?
		    meminfo_kb(buf, "Buffers") : 0) + (meminfo_kb(buf, "Cached") > 0 ?
		    meminfo_kb(buf, "Cached") : 0);
	}
	if (total > 0 && avail >= 0 && avail <= total)
		add_percent(lx, sv, "mem_used", (double)(total - avail), (double)total,
		            lx->mem_warn, lx->mem_crit);
	stotal = meminfo_kb(buf, "SwapTotal");
	sfree = meminfo_kb(buf, "SwapFree");
	if (stotal > 0 && sfree >= 0 && sfree <= stotal)
		add_percent(lx, sv, "swap_used", (double)(stotal - sfree), (double)stotal,
		            lx->swap_warn, lx->swap_crit);
}

/* "/" is "fs_root", "/var/log" is "fs_var_log". */
static void
fs_name(const char *mount, char *out, size_t outlen)
{
	const char *p = mount;

	while (*p == '/')
		p++;
	snprintf(out, outlen, "fs_%s", *p != '\0' ? p : "root");
	for (char *q = out; *q != '\0'; q++)
		if (*q == '/')
			*q = '_';
	if (strlen(out) > 3 && out[strlen(out) - 1] == '_')
		out[strlen(out) - 1] = '\0';
}

/*
 * statvfs() is a system call answered from the kernel's superblock for a
 * local filesystem; on a network filesystem whose server is gone it may
 * block, which is why only configured mounts are asked.
 */
static void
read_filesystems(const struct lx *lx, struct svec *sv)
{
	for (size_t i = 0; i < lx->nmounts; i++) {
		char path[4096], name[64];
		struct statvfs st;
		struct sb_sensor *s;
		double used, avail;

		fs_name(lx->mounts[i], name, sizeof(name));
		snprintf(path, sizeof(path), "%s%s", lx->root, lx->mounts[i]);
		if ((s = add_sensor(lx, sv, name, SB_SENSOR_OTHER, "%")) == NULL)
			continue;
		s->high_warn = lx->fs_warn;
		s->high_crit = lx->fs_crit;
		/* df's "Use%": used over what an unprivileged user could have. */
		if (statvfs(path, &st) == 0 && st.f_blocks > 0) {
			used = (double)(st.f_blocks - st.f_bfree);
			avail = (double)st.f_bavail;
			if (used + avail > 0)
				set_value(s, round(used / (used + avail) * 1000.0) / 10.0);
		}
		sb_sensor_eval(s);	/* a mount that cannot be read: no reading */
	}
}

/* --- hwmon ---------------------------------------------------------------- */

static const struct hwmon_type {
	const char *prefix;
	enum sb_sensor_kind kind;
	const char *unit;
	double scale;		/* raw units per reported unit */
} hwmon_types[] = {
	{ "temp",  SB_SENSOR_TEMPERATURE, "C",   1000.0 },	/* m°C */
	{ "fan",   SB_SENSOR_FAN,         "RPM", 1.0 },
	{ "in",    SB_SENSOR_VOLTAGE,     "V",   1000.0 },	/* mV */
	{ "curr",  SB_SENSOR_CURRENT,     "A",   1000.0 },	/* mA */
	{ "power", SB_SENSOR_POWER,       "W",   1000000.0 },	/* µW */
};

/* Entries of a folder below root, sorted naturally ("hwmon2" < "hwmon10"). */
static int
cmp_natural(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;

	while (*x != '\0' && *y != '\0') {
		if (isdigit((unsigned char)*x) && isdigit((unsigned char)*y)) {
			unsigned long long nx = strtoull(x, (char **)&x, 10);
			unsigned long long ny = strtoull(y, (char **)&y, 10);

			if (nx != ny)
				return nx < ny ? -1 : 1;
			continue;
		}
		if (*x != *y)
			return (unsigned char)*x - (unsigned char)*y;
		x++;
		y++;
	}
	return (unsigned char)*x - (unsigned char)*y;
}

static char **
list_dir(const struct lx *lx, const char *rel, size_t *n)
{
	char path[4096];
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;
	DIR *d;

	*n = 0;
	snprintf(path, sizeof(path), "%s%s", lx->root, rel);
	if ((d = opendir(path)) == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (*n + 1 >= cap) {
			cap = cap ? cap * 2 : 32;
			v = sb_realloc(v, cap * sizeof(*v));
		}
		v[(*n)++] = sb_strdup(de->d_name);
	}
	closedir(d);
	if (v != NULL) {
		qsort(v, *n, sizeof(*v), cmp_natural);
		v[*n] = NULL;
	}
	return v;
}

/* "temp3_input" -> type index and channel 3; -1 if not an input. */
static int
hwmon_input(const char *entry, int *channel)
{
	for (size_t t = 0; t < SB_ARRAY_LEN(hwmon_types); t++) {
		size_t pl = strlen(hwmon_types[t].prefix);
		const char *p = entry + pl;
		char *end;
		long ch;

		if (strncmp(entry, hwmon_types[t].prefix, pl) != 0 ||
		    !isdigit((unsigned char)*p))
			continue;
		ch = strtol(p, &end, 10);
		if (strcmp(end, "_input") != 0 || ch < 0 || ch > 100000)
			continue;
		*channel = (int)ch;
		return (int)t;
	}
	return -1;
}

/* A flag attribute ("temp1_crit_alarm") that is present and non-zero. */
static int
flag_set(const struct lx *lx, const char *dir, const char *attr)
{
	char rel[512];
	long long v;

	snprintf(rel, sizeof(rel), "%s/%s", dir, attr);
	return read_ll(lx, rel, &v) == 0 && v != 0;
}

static void
hwmon_channel(const struct lx *lx, struct svec *sv, const char *dir,
              const char *chip, const struct hwmon_type *ht, int ch)
{
	char rel[512], label[128], raw[256], attr[64];
	const char *pfx = ht->prefix;
	struct sb_sensor *s;
	double v;

	/* A path that does not fit names no file: skip the channel. */
	if ((size_t)snprintf(rel, sizeof(rel), "%s/%s%d_label", dir, pfx, ch) >= sizeof(rel))
		return;
	if (read_small(lx, rel, label, sizeof(label)) <= 0)
		snprintf(label, sizeof(label), "%s%d", pfx, ch);
	snprintf(raw, sizeof(raw), "%s_%s", chip, label);
	if ((s = add_sensor(lx, sv, raw, ht->kind, ht->unit)) == NULL)
		return;

	if ((size_t)snprintf(rel, sizeof(rel), "%s/%s%d_input", dir, pfx, ch) >= sizeof(rel))
		return;
	v = read_scaled(lx, rel, ht->scale);
	/* A fan input of 0 is a stopped fan: a reading, not an absence. */
	set_value(s, v);
#define LIMIT(field, suffix) do { \
		if ((size_t)snprintf(rel, sizeof(rel), "%s/%s%d_" suffix, dir, pfx, \
		    ch) < sizeof(rel)) \
			s->field = read_scaled(lx, rel, ht->scale); \
	} while (0)
	LIMIT(high_crit, "crit");
	LIMIT(high_warn, "max");
	LIMIT(low_warn, "min");
	LIMIT(low_crit, "lcrit");
#undef LIMIT
	/* Many drivers report an unset fan minimum as 0, and a limit a value
	 * cannot go below is no limit: a stopped fan is caught by _alarm. */
	if (s->low_warn == 0 && ht->kind == SB_SENSOR_FAN)
		s->low_warn = NAN;
	sb_sensor_eval(s);

	/* The chip's own verdict, where it gives one. */
	snprintf(attr, sizeof(attr), "%s%d_fault", pfx, ch);
	if (flag_set(lx, dir, attr)) {
		if (ht->kind == SB_SENSOR_FAN) {	/* a failed fan */
			raise_state(s, SB_SENSOR_CRITICAL);
		} else {				/* a broken probe reads nothing */
			s->has_value = 0;
			s->value = NAN;
			s->state = SB_SENSOR_UNKNOWN;
			return;
		}
	}
	snprintf(attr, sizeof(attr), "%s%d_crit_alarm", pfx, ch);
	if (flag_set(lx, dir, attr))
		raise_state(s, SB_SENSOR_CRITICAL);
	snprintf(attr, sizeof(attr), "%s%d_lcrit_alarm", pfx, ch);
	if (flag_set(lx, dir, attr))
		raise_state(s, SB_SENSOR_CRITICAL);
	snprintf(attr, sizeof(attr), "%s%d_alarm", pfx, ch);
	if (flag_set(lx, dir, attr))
		raise_state(s, SB_SENSOR_WARNING);
	snprintf(attr, sizeof(attr), "%s%d_max_alarm", pfx, ch);
	if (flag_set(lx, dir, attr))
		raise_state(s, SB_SENSOR_WARNING);
	snprintf(attr, sizeof(attr), "%s%d_min_alarm", pfx, ch);
	if (flag_set(lx, dir, attr))
		raise_state(s, SB_SENSOR_WARNING);
	if (!s->has_value)
		s->state = SB_SENSOR_UNKNOWN;	/* an alarm without a value */
}

struct hw_input {
	int     type, ch;
};

static int
cmp_input(const void *a, const void *b)
{
	const struct hw_input *x = a, *y = b;

	if (x->type != y->type)
		return x->type - y->type;
	return x->ch - y->ch;
}

/*
 * One hwmon device.  Old drivers keep their attributes in device/ beside
 * the class folder; the "name" file tells which folder to read.
 */
static void
hwmon_device(const struct lx *lx, struct svec *sv, const char *entry)
{
	char dir[512], rel[600], chip[64];
	struct hw_input *in = NULL;
	size_t nent = 0, nin = 0;
	char **ents;
	int ch, t;

	snprintf(dir, sizeof(dir), "/sys/class/hwmon/%s", entry);
	snprintf(rel, sizeof(rel), "%s/name", dir);
	if (read_small(lx, rel, chip, sizeof(chip)) <= 0) {
		snprintf(rel, sizeof(rel), "%s/device/name", dir);
		if (read_small(lx, rel, chip, sizeof(chip)) > 0) {
			size_t l = strlen(dir);

			snprintf(dir + l, sizeof(dir) - l, "/device");
		} else {
			sb_strlcpy(chip, entry, sizeof(chip));
		}
	}
	if ((ents = list_dir(lx, dir, &nent)) == NULL)
		return;
	in = sb_calloc(nent + 1, sizeof(*in));
	for (size_t i = 0; i < nent; i++)
		if ((t = hwmon_input(ents[i], &ch)) >= 0) {
			in[nin].type = t;
			in[nin].ch = ch;
			nin++;
		}
	qsort(in, nin, sizeof(*in), cmp_input);
	for (size_t i = 0; i < nin; i++)
		hwmon_channel(lx, sv, dir, chip, &hwmon_types[in[i].type], in[i].ch);
	free(in);
	strv_free(ents);
}

static void
read_hwmon(const struct lx *lx, struct svec *sv)
{
	size_t n;
	char **ents = list_dir(lx, "/sys/class/hwmon", &n);

	for (size_t i = 0; i < n; i++)
		hwmon_device(lx, sv, ents[i]);
	strv_free(ents);
}

/* --- thermal zones and power supplies ------------------------------------ */

static void
thermal_zone(const struct lx *lx, struct svec *sv, const char *entry)
{
	char dir[512], rel[600], type[64], raw[128], ttype[32];
	struct sb_sensor *s;
	double v;

	snprintf(dir, sizeof(dir), "/sys/class/thermal/%s", entry);
	snprintf(rel, sizeof(rel), "%s/temp", dir);
	v = read_scaled(lx, rel, 1000.0);
	snprintf(rel, sizeof(rel), "%s/type", dir);
	if (read_small(lx, rel, type, sizeof(type)) <= 0)
		sb_strlcpy(type, entry, sizeof(type));
	snprintf(raw, sizeof(raw), "tz_%s", type);
	if ((s = add_sensor(lx, sv, raw, SB_SENSOR_TEMPERATURE, "C")) == NULL)
		return;
	set_value(s, v);
	/* Trip points: "critical" shuts the machine down, "hot" warns; a
	 * "passive" trip (throttling) warns only where there is no "hot". */
	for (int i = 0; i < 32; i++) {
		double t;

		snprintf(rel, sizeof(rel), "%s/trip_point_%d_type", dir, i);
		if (read_small(lx, rel, ttype, sizeof(ttype)) <= 0)
			break;
		snprintf(rel, sizeof(rel), "%s/trip_point_%d_temp", dir, i);
		if (isnan(t = read_scaled(lx, rel, 1000.0)) || t <= 0)
			continue;	/* 0 and negatives mean "disabled" */
		if (strcmp(ttype, "critical") == 0 && (isnan(s->high_crit) || t < s->high_crit))
			s->high_crit = t;
		else if (strcmp(ttype, "hot") == 0 && (isnan(s->high_warn) || t < s->high_warn))
			s->high_warn = t;
	}
	if (isnan(s->high_warn)) {
		for (int i = 0; i < 32; i++) {
			double t;

			snprintf(rel, sizeof(rel), "%s/trip_point_%d_type", dir, i);
			if (read_small(lx, rel, ttype, sizeof(ttype)) <= 0)
				break;
			snprintf(rel, sizeof(rel), "%s/trip_point_%d_temp", dir, i);
			if (strcmp(ttype, "passive") == 0 &&
			    !isnan(t = read_scaled(lx, rel, 1000.0)) && t > 0 &&
			    (isnan(s->high_warn) || t < s->high_warn))
				s->high_warn = t;
		}
	}
	if (!isnan(s->high_warn) && !isnan(s->high_crit) && s->high_warn > s->high_crit)
		s->high_warn = NAN;	/* a passive trip above critical is no warning */
	sb_sensor_eval(s);
}

static void
read_thermal(const struct lx *lx, struct svec *sv)
{
	size_t n;
	char **ents = list_dir(lx, "/sys/class/thermal", &n);

	for (size_t i = 0; i < n; i++)
		if (strncmp(ents[i], "thermal_zone", 12) == 0)
			thermal_zone(lx, sv, ents[i]);
	strv_free(ents);
}

/*
 * A supply that feeds the machine ("Mains", "UPS") reports whether it is
 * online: 0 means the machine runs on its battery, a warning.  A battery
 * reports its charge in %.  USB and other supplies are a laptop's business.
 */
static void
power_supply(const struct lx *lx, struct svec *sv, const char *entry)
{
	char rel[600], type[32], raw[128];
	struct sb_sensor *s;
	long long v;

	snprintf(rel, sizeof(rel), "/sys/class/power_supply/%s/type", entry);
	if (read_small(lx, rel, type, sizeof(type)) <= 0)
		return;
	if (strcmp(type, "Mains") == 0 || strcmp(type, "UPS") == 0) {
		snprintf(raw, sizeof(raw), "%s_online", entry);
		if ((s = add_sensor(lx, sv, raw, SB_SENSOR_OTHER, "")) == NULL)
			return;
		snprintf(rel, sizeof(rel), "/sys/class/power_supply/%s/online", entry);
		if (read_ll(lx, rel, &v) == 0)
			set_value(s, v != 0);
		s->low_warn = 0;
		sb_sensor_eval(s);
	} else if (strcmp(type, "Battery") == 0) {
		snprintf(raw, sizeof(raw), "%s_charge", entry);
		if ((s = add_sensor(lx, sv, raw, SB_SENSOR_OTHER, "%")) == NULL)
			return;
		snprintf(rel, sizeof(rel), "/sys/class/power_supply/%s/capacity", entry);
		if (read_ll(lx, rel, &v) == 0 && v >= 0 && v <= 100)
			set_value(s, (double)v);
		s->low_warn = lx->bat_warn;
		s->low_crit = lx->bat_crit;
		sb_sensor_eval(s);
	}
}

static void
read_power_supplies(const struct lx *lx, struct svec *sv)
{
	size_t n;
	char **ents = list_dir(lx, "/sys/class/power_supply", &n);

	for (size_t i = 0; i < n; i++)
		power_supply(lx, sv, ents[i]);
	strv_free(ents);
}

/* --- configuration ------------------------------------------------------ */

/* A number key, or def when absent (NAN: no threshold). */
static double
num(const config_setting_t *g, const char *key, double def)
{
	const config_setting_t *m = config_setting_get_member(g, key);

	if (m == NULL)
		return def;
	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:	return config_setting_get_int(m);
	case CONFIG_TYPE_INT64:	return (double)config_setting_get_int64(m);
	case CONFIG_TYPE_FLOAT:	return config_setting_get_float(m);
	default:		return NAN;
	}
}

static int
check_pair(const char *what, double warn, double crit, char *err, size_t errlen)
{
	if (!isnan(warn) && !isnan(crit) && warn > crit) {
		snprintf(err, errlen, "%s_warning (%g) must not be above %s_critical (%g)",
		         what, warn, what, crit);
		return -1;
	}
	return 0;
}

static int
parse_power(struct lx *lx, const config_setting_t *conf, char *err, size_t errlen)
{
	const config_setting_t *g = config_setting_get_member(conf, "power_commands");

	if (g == NULL)
		return 0;
	if (!config_setting_is_group(g)) {
		snprintf(err, errlen, "power_commands must be a group { off = [ ... ]; }");
		return -1;
	}
	for (size_t i = 0; i < LX_NACTIONS; i++) {
		const config_setting_t *a = config_setting_get_member(g, actions[i]);
		size_t n;

		if (a == NULL)
			continue;
		lx->power_argv[i] = strv_conf(a, &n);
		/* An absolute path: no PATH search decides what runs as us. */
		if (n == 0 || lx->power_argv[i][0][0] != '/') {
			snprintf(err, errlen, "power_commands.%s must start with an "
			         "absolute path to a program, e.g. [ \"/sbin/poweroff\" ]",
			         actions[i]);
			return -1;
		}
	}
	return 0;
}

static void
lx_free(struct lx *lx)
{
	if (lx == NULL)
		return;
	free(lx->root);
	strv_free(lx->mounts);
	strv_free(lx->ignore);
	for (size_t i = 0; i < LX_NACTIONS; i++)
		strv_free(lx->power_argv[i]);
	free(lx);
}

static int
parse(struct lx *lx, const config_setting_t *conf, char *err, size_t errlen)
{
	const char *root = conf ? sb_conf_str(conf, "root", "/") : "/";
	const config_setting_t *m;
	size_t len = strlen(root);

	if (root[0] != '/') {
		snprintf(err, errlen, "root must be an absolute path, not \"%s\"", root);
		return -1;
	}
	while (len > 0 && root[len - 1] == '/')
		len--;
	lx->root = sb_strndup(root, len);
	if (conf != NULL && (m = config_setting_get_member(conf, "mounts")) != NULL)
		lx->mounts = strv_conf(m, &lx->nmounts);
	else {
		lx->mounts = sb_calloc(2, sizeof(char *));
		lx->mounts[0] = sb_strdup("/");
		lx->nmounts = 1;
	}
	for (size_t i = 0; i < lx->nmounts; i++)
		if (lx->mounts[i][0] != '/') {
			snprintf(err, errlen, "mounts: \"%s\" is not an absolute path",
			         lx->mounts[i]);
			return -1;
		}
	lx->ignore = strv_conf(conf ? config_setting_get_member(conf, "ignore") : NULL,
	                       &lx->nignore);
	lx->hwmon = conf ? sb_conf_bool(conf, "hwmon", 1) : 1;
	lx->thermal = conf ? sb_conf_bool(conf, "thermal", 1) : 1;
	lx->psu = conf ? sb_conf_bool(conf, "power_supply", 1) : 1;
	lx->fs_warn = num(conf, "fs_warning", 90);
	lx->fs_crit = num(conf, "fs_critical", 95);
	lx->mem_warn = num(conf, "memory_warning", 90);
	lx->mem_crit = num(conf, "memory_critical", 95);
	lx->swap_warn = num(conf, "swap_warning", NAN);
	lx->swap_crit = num(conf, "swap_critical", NAN);
	lx->load_warn = num(conf, "load_warning", NAN);
	lx->load_crit = num(conf, "load_critical", NAN);
	lx->bat_warn = num(conf, "battery_warning", 20);
	lx->bat_crit = num(conf, "battery_critical", 10);
	lx->power_timeout = num(conf, "power_timeout", 30);
	if (check_pair("fs", lx->fs_warn, lx->fs_crit, err, errlen) < 0 ||
	    check_pair("memory", lx->mem_warn, lx->mem_crit, err, errlen) < 0 ||
	    check_pair("swap", lx->swap_warn, lx->swap_crit, err, errlen) < 0 ||
	    check_pair("load", lx->load_warn, lx->load_crit, err, errlen) < 0)
		return -1;
	if (!isnan(lx->bat_warn) && !isnan(lx->bat_crit) && lx->bat_warn < lx->bat_crit) {
		snprintf(err, errlen, "battery_warning must not be below battery_critical");
		return -1;
	}
	if (isnan(lx->power_timeout) || lx->power_timeout <= 0 || lx->power_timeout > 3600) {
		snprintf(err, errlen, "power_timeout must be 0 to 3600 seconds");
		return -1;
	}
	return conf ? parse_power(lx, conf, err, errlen) : 0;
}

static int
lx_open(struct sb_hal *hal, const config_setting_t *conf, char *err, size_t errlen)
{
	struct lx *lx = sb_calloc(1, sizeof(*lx));

	lx->hal = hal;
	if (parse(lx, conf, err, errlen) < 0) {
		lx_free(lx);
		return -1;
	}
	hal->priv = lx;
	return 0;
}

/* --- requests ------------------------------------------------------------- */

/*
 * A reading runs on the loop, before request() returns.  Everything it
 * touches is procfs and sysfs, whose files the kernel fills from memory
 * when they are read, plus statvfs() on the configured local mounts: each
 * is a system call of microseconds, and a full reading of a server with a
 * few dozen sensors stays well under a millisecond.  (A few hwmon drivers
 * talk to a slow bus when read, an SMBus chip for instance; "ignore" or
 * "hwmon = false" leaves them out.)  A worker thread would cost more than
 * it saves.
 */
static void
answer_read(struct sb_hal *hal, struct lx *lx, sb_hal_done_fn *done, void *ud)
{
	struct svec sv = { 0 };
	struct sb_readings r = { .power = SB_POWER_ON };
	struct sb_hal_result res = { .status = 0, .power = SB_POWER_ON };

	read_load(lx, &sv);
	read_uptime(lx, &sv);
	read_memory(lx, &sv);
	read_filesystems(lx, &sv);
	if (lx->hwmon)
		read_hwmon(lx, &sv);
	if (lx->thermal)
		read_thermal(lx, &sv);
	if (lx->psu)
		read_power_supplies(lx, &sv);
	r.sensors = sv.v;
	r.nsensors = sv.n;
	r.taken = time(NULL);
	res.readings = &r;
	done(hal, &res, ud);
	free(sv.v);
}

static void
answer_inventory(struct sb_hal *hal, struct lx *lx, sb_hal_done_fn *done, void *ud)
{
	struct sb_inventory inv;
	char buf[64];

	memset(&inv, 0, sizeof(inv));
	/* product_serial is readable by root only: without it, no serial. */
	if (read_small(lx, "/sys/class/dmi/id/sys_vendor", buf, sizeof(buf)) > 0)
		sb_strlcpy(inv.vendor, buf, sizeof(inv.vendor));
	if (read_small(lx, "/sys/class/dmi/id/product_name", buf, sizeof(buf)) > 0)
		sb_strlcpy(inv.model, buf, sizeof(inv.model));
	if (read_small(lx, "/sys/class/dmi/id/product_serial", buf, sizeof(buf)) > 0)
		sb_strlcpy(inv.serial, buf, sizeof(inv.serial));
	if (read_small(lx, "/sys/class/dmi/id/bios_version", buf, sizeof(buf)) > 0)
		snprintf(inv.firmware, sizeof(inv.firmware), "BIOS %.58s", buf);
	/* Firmware strings end up in chat replies: no control characters. */
	sb_sanitize_line(inv.vendor);
	sb_sanitize_line(inv.model);
	sb_sanitize_line(inv.serial);
	sb_sanitize_line(inv.firmware);
	done(hal, &(struct sb_hal_result){ .inventory = &inv, .power = SB_POWER_ON }, ud);
}

/* --- power commands -------------------------------------------------------- */

static void cmd_finish(struct lx *);

/* The first line of what the command printed, for the reply. */
static void
first_line(const struct lx_cmd *c, char *out, size_t outlen)
{
	size_t i = 0, j = 0;

	while (i < c->outlen && isspace((unsigned char)c->out[i]))
		i++;
	for (; i < c->outlen && c->out[i] != '\n' && j + 1 < outlen; i++)
		out[j++] = iscntrl((unsigned char)c->out[i]) ? ' ' : c->out[i];
	out[j] = '\0';
}

static void
cmd_reap(struct lx_cmd *c)
{
	pid_t r;

	if (c->exited)
		return;
	do
		r = waitpid(c->pid, &c->wstatus, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == c->pid || (r < 0 && errno == ECHILD))
		c->exited = 1;
}

static void
cmd_close_fd(struct lx_cmd *c)
{
	if (c->fd < 0)
		return;
	sb_loop_del_fd(sb_core.loop, c->fd);
	close(c->fd);
	c->fd = -1;
}

/*
 * The child's output, until EOF.  A child that closed its output is not
 * necessarily gone (it may have handed the pipe to nobody and kept
 * working), so EOF hands over to the timer, which reaps.
 */
static void
on_cmd_output(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct lx *lx = ud;
	struct lx_cmd *c = lx->cmd;
	char buf[512];
	ssize_t n;

	(void)loop;
	(void)mask;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		size_t room = sizeof(c->out) - 1 - c->outlen;
		size_t take = (size_t)n < room ? (size_t)n : room;

		memcpy(c->out + c->outlen, buf, take);
		c->outlen += take;
		c->out[c->outlen] = '\0';
		return;
	}
	cmd_close_fd(c);
	cmd_reap(c);
	if (c->exited)
		cmd_finish(lx);
}

static long
on_cmd_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct lx *lx = ud;
	struct lx_cmd *c = lx->cmd;

	(void)loop;
	(void)t;
	cmd_reap(c);
	if (c->exited) {
		c->timer = NULL;	/* freed by returning STOP */
		cmd_finish(lx);
		return SB_TIMER_STOP;
	}
	if (!c->timed_out && sb_now_ms() >= c->deadline) {
		/* The whole process group: a script's own children too. */
		c->timed_out = 1;
		kill(-c->pid, SIGKILL);
		kill(c->pid, SIGKILL);
	}
	return LX_REAP_MS;
}

/* Answer the request; the instance is free for the next command. */
static void
cmd_finish(struct lx *lx)
{
	struct lx_cmd *c = lx->cmd;
	struct sb_hal_result res = { .power = SB_POWER_UNKNOWN };
	char line[200], text[400];

	cmd_close_fd(c);
	if (c->timer != NULL) {
		sb_loop_del_timer(sb_core.loop, c->timer);
		c->timer = NULL;
	}
	first_line(c, line, sizeof(line));
	if (c->timed_out) {
		snprintf(text, sizeof(text), "power %s: the command did not finish "
		         "within %g s and was killed", c->action, lx->power_timeout);
		res.status = -ETIMEDOUT;
		res.error = text;
	} else if (WIFEXITED(c->wstatus) && WEXITSTATUS(c->wstatus) == 0) {
		snprintf(text, sizeof(text), "power %s issued (command exited 0)%s%s",
		         c->action, line[0] ? ": " : "", line);
		res.message = text;
		res.power = strcmp(c->action, "off") == 0 || strcmp(c->action, "soft") == 0 ?
		    SB_POWER_OFF : SB_POWER_ON;
	} else if (WIFEXITED(c->wstatus)) {
		snprintf(text, sizeof(text), "power %s: the command failed with exit "
		         "status %d%s%s", c->action, WEXITSTATUS(c->wstatus),
		         line[0] ? ": " : "", line);
		res.status = -EIO;
		res.error = text;
	} else {
		snprintf(text, sizeof(text), "power %s: the command was killed by "
		         "signal %d", c->action, WIFSIGNALED(c->wstatus) ?
		         WTERMSIG(c->wstatus) : 0);
		res.status = -EIO;
		res.error = text;
	}
	lx->cmd = NULL;
	/* done() may close this instance: nothing of lx is touched after. */
	{
		sb_hal_done_fn *done = c->done;
		void *ud = c->ud;

		free(c);
		done(lx->hal, &res, ud);
	}
}

/*
 * fork() and execv() of the allowed argv, never a shell.  Between fork and
 * exec the child calls only async-signal-safe functions, as a threaded
 * process must.  It gets: its own process group (so a timeout kills its
 * children too), /dev/null for input, the pipe for output, the default
 * signal mask and SIGPIPE disposition (the daemon blocks and ignores some),
 * no other descriptor, and a fixed PATH.
 */
static int
cmd_spawn(struct lx_cmd *c, char **argv)
{
	static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if ((pid = fork()) < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		sigset_t none;
		struct sigaction dfl;
		int nul;

		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &dfl, NULL);
		if ((nul = open("/dev/null", O_RDONLY)) >= 0 && nul != 0) {
			dup2(nul, 0);
			close(nul);
		}
		dup2(p[1], 1);
		dup2(p[1], 2);
		close_range(3, ~0U, 0);
		execve(argv[0], argv, envp);
		{
			static const char msg[] = "cannot execute the command\n";
			ssize_t ignore = write(2, msg, sizeof(msg) - 1);

			(void)ignore;
		}
		_exit(127);
	}
	setpgid(pid, pid);	/* also from here: no race with the child's */
	close(p[1]);
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	c->pid = pid;
	c->fd = p[0];
	return 0;
}

static int
action_index(const char *arg)
{
	for (size_t i = 0; arg != NULL && i < LX_NACTIONS; i++)
		if (strcmp(actions[i], arg) == 0)
			return (int)i;
	return -1;
}

static void
answer_power(struct sb_hal *hal, struct lx *lx, const char *arg,
             sb_hal_done_fn *done, void *ud)
{
	struct sb_hal_result res = { .power = SB_POWER_ON };
	char text[300];
	struct lx_cmd *c;
	int i, rc;

	if (arg != NULL && strcmp(arg, "status") == 0) {
		res.message = "power is on (this is the machine the daemon runs on)";
		done(hal, &res, ud);
		return;
	}
	if ((i = action_index(arg)) < 0) {
		snprintf(text, sizeof(text), "unknown power action \"%s\"; use status, "
		         "on, off, cycle, reset or soft", arg != NULL ? arg : "");
		res.status = -EINVAL;
		res.error = text;
	} else if (lx->power_argv[i] == NULL) {
		snprintf(text, sizeof(text), "power %s refused: this node is the "
		         "machine switchboard runs on, and an agent does not power its "
		         "own machine %s unless hal.power_commands.%s allows it",
		         arg, strcmp(arg, "on") == 0 ? "on (it is on)" : "down",
		         arg);
		res.status = -EPERM;
		res.error = text;
	} else if (lx->cmd != NULL) {
		snprintf(text, sizeof(text), "power %s refused: power %s is still "
		         "running", arg, lx->cmd->action);
		res.status = -EBUSY;
		res.error = text;
	} else {
		c = sb_calloc(1, sizeof(*c));
		c->fd = -1;
		c->done = done;
		c->ud = ud;
		sb_strlcpy(c->action, arg, sizeof(c->action));
		if ((rc = cmd_spawn(c, lx->power_argv[i])) < 0) {
			snprintf(text, sizeof(text), "power %s: cannot start the "
			         "command: %s", arg, strerror(-rc));
			free(c);
			res.status = rc;
			res.error = text;
		} else {
			lx->cmd = c;
			c->deadline = sb_now_ms() + (uint64_t)llround(lx->power_timeout * 1000);
			sb_loop_add_fd(sb_core.loop, c->fd, SB_READ, on_cmd_output, lx);
			c->timer = sb_loop_add_timer(sb_core.loop, LX_REAP_MS, on_cmd_timer, lx);
			return;		/* answered by cmd_finish() */
		}
	}
	res.power = SB_POWER_UNKNOWN;
	done(hal, &res, ud);
}

static int
lx_request(struct sb_hal *hal, const struct sb_hal_req *req, sb_hal_done_fn *done,
           void *ud)
{
	struct lx *lx = hal->priv;

	switch (req->op) {
	case SB_HAL_READ:
		answer_read(hal, lx, done, ud);
		return 0;
	case SB_HAL_POWER_ACT:
		if (sb_core.loop == NULL && req->arg != NULL &&
		    strcmp(req->arg, "status") != 0 && action_index(req->arg) >= 0 &&
		    lx->power_argv[action_index(req->arg)] != NULL)
			return -ENOTSUP;	/* no loop to watch a child with */
		answer_power(hal, lx, req->arg, done, ud);
		return 0;
	case SB_HAL_INVENTORY_GET:
		answer_inventory(hal, lx, done, ud);
		return 0;
	default:
		return -ENOTSUP;
	}
}

/*
 * A running command is killed and answered, so that close() leaves no
 * request behind.  waitpid() after SIGKILL returns as soon as the kernel
 * has torn the child down.
 */
static void
lx_close(struct sb_hal *hal)
{
	struct lx *lx = hal->priv;
	struct lx_cmd *c = lx->cmd;

	if (c != NULL) {
		struct sb_hal_result res = { .status = -ECANCELED,
		    .error = "the node was closed while its power command ran",
		    .power = SB_POWER_UNKNOWN };

		kill(-c->pid, SIGKILL);
		kill(c->pid, SIGKILL);
		cmd_close_fd(c);
		if (c->timer != NULL)
			sb_loop_del_timer(sb_core.loop, c->timer);
		(void)waitpid(c->pid, NULL, 0);	/* SIGKILLed: returns at once */
		lx->cmd = NULL;
		c->done(hal, &res, c->ud);
		free(c);
	}
	lx_free(lx);
	hal->priv = NULL;
}

const struct sb_hal_backend sb_hal_linux = {
	.name = "linux",
	.abi = SB_HAL_ABI,
	.caps = SB_HAL_SENSORS | SB_HAL_POWER | SB_HAL_INVENTORY,
	.keys = linux_keys,
	.open = lx_open,
	.request = lx_request,
	.close = lx_close,
};
