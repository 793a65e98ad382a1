/*
 * hal_ipmi_io.c: the IPMI backend's worker side: everything a worker
 * thread says to a BMC, through FreeIPMI, for one job: a session, the SDR
 * cache, sensor readings with thresholds and FreeIPMI's interpretation,
 * chassis power, the SEL, the FRU inventory.
 *
 * It runs off the loop and touches nothing of the core: no logging, no
 * loop, no node.  Results and errors go into the job; hal_ipmi.c answers
 * them on the loop.  Error texts name the BMC and the user, never the
 * password.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <freeipmi/freeipmi.h>

#include "hal.h"
#include "hal_ipmi.h"
#include "loop.h"
#include "util.h"

/* FreeIPMI initialises libgcrypt on the first session it opens; until one
 * has, opens are serialised so that initialisation never runs twice at
 * once. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t crypt_mu = PTHREAD_MUTEX_INITIALIZER;
static int crypt_ready;

static void __attribute__((format(printf, 3, 4)))
job_fail(struct ipmi_job *j, int status, const char *fmt, ...)
{
	va_list ap;

	j->status = status;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
}

static int
past_deadline(struct ipmi_job *j)
{
	if (sb_now_ms() < j->deadline)
		return 0;
	job_fail(j, -ETIMEDOUT, "BMC %s: the request took longer than %g s",
	         j->bmc->c.shown, j->bmc->c.request_ms / 1000.0);
	return 1;
}

/* A failed exchange, in words an operator can act on; no secret in it. */
static void
ctx_fail(struct ipmi_job *j, ipmi_ctx_t ctx, const char *doing)
{
	const struct ipmi_conf *c = &j->bmc->c;
	int e = ipmi_ctx_errnum(ctx);

	switch (e) {
	case IPMI_ERR_SESSION_TIMEOUT:
	case IPMI_ERR_CONNECTION_TIMEOUT:
	case IPMI_ERR_MESSAGE_TIMEOUT:
		job_fail(j, -ETIMEDOUT, "BMC %s does not answer (%s: no reply "
		         "within %g s)", c->shown, doing, c->timeout_ms / 1000.0);
		break;
	case IPMI_ERR_USERNAME_INVALID:
	case IPMI_ERR_PASSWORD_INVALID:
	case IPMI_ERR_PASSWORD_VERIFICATION_TIMEOUT:
	case IPMI_ERR_K_G_INVALID:
		job_fail(j, -EACCES, "BMC %s refused the login of user \"%s\" "
		         "(wrong user name, password or K_g)", c->shown, c->user);
		break;
	case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
	case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
		job_fail(j, -EACCES, "BMC %s: user \"%s\" lacks the privilege to %s",
		         c->shown, c->user, doing);
		break;
	case IPMI_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
	case IPMI_ERR_IPMI_2_0_UNAVAILABLE:
	case IPMI_ERR_AUTHENTICATION_TYPE_UNAVAILABLE:
		job_fail(j, -EPROTONOSUPPORT, "BMC %s: %s (try another cipher_suite "
		         "or workaround)", c->shown, ipmi_ctx_errormsg(ctx));
		break;
	case IPMI_ERR_HOSTNAME_INVALID:
		job_fail(j, -EHOSTUNREACH, "BMC %s: cannot resolve the host name",
		         c->shown);
		break;
	default:
		job_fail(j, -EIO, "BMC %s: %s failed: %s", c->shown, doing,
		         ipmi_ctx_errormsg(ctx));
		break;
	}
}

static int
ctx_timed_out(ipmi_ctx_t ctx)
{
	int e = ipmi_ctx_errnum(ctx);

	return e == IPMI_ERR_SESSION_TIMEOUT || e == IPMI_ERR_CONNECTION_TIMEOUT ||
	    e == IPMI_ERR_MESSAGE_TIMEOUT;
}

static ipmi_ctx_t
session_open(struct ipmi_job *j)
{
	const struct ipmi_conf *c = &j->bmc->c;
	ipmi_ctx_t ctx = ipmi_ctx_create();
	int rc, serial;

	if (ctx == NULL) {
		job_fail(j, -ENOMEM, "out of memory for an IPMI context");
		return NULL;
	}
	pthread_mutex_lock(&crypt_mu);
	serial = !crypt_ready;
	pthread_mutex_unlock(&crypt_mu);
	if (serial)
		pthread_mutex_lock(&open_mu);
	rc = ipmi_ctx_open_outofband_2_0(ctx, c->host, c->user, c->password,
	    c->k_g_len ? c->k_g : NULL, c->k_g_len, c->priv, c->cipher,
	    c->timeout_ms, c->retrans_ms, c->workarounds, IPMI_FLAGS_DEFAULT);
	if (serial) {
		pthread_mutex_lock(&crypt_mu);
		crypt_ready = 1;
		pthread_mutex_unlock(&crypt_mu);
		pthread_mutex_unlock(&open_mu);
	}
	if (rc < 0) {
		ctx_fail(j, ctx, "open a session");
		ipmi_ctx_destroy(ctx);
		return NULL;
	}
	return ctx;
}

static void
session_close(ipmi_ctx_t ctx)
{
	if (ctx == NULL)
		return;
	ipmi_ctx_close(ctx);
	ipmi_ctx_destroy(ctx);
}

/* The folder of the cache file, private to us; under b->mu. */
static int
sdr_dir(struct ipmi_job *j)
{
	char *dir = sb_strdup(j->bmc->c.sdr_cache), *slash = strrchr(dir, '/');
	struct stat st;
	int rc = 0;

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		else if (lstat(dir, &st) < 0)
			rc = -errno;
		else if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			rc = -EPERM;
		if (rc < 0)
			job_fail(j, rc, "SDR cache folder %s: %s", dir, rc == -EPERM ?
			         "not a folder of ours" : strerror(-rc));
	}
	free(dir);
	return rc;
}

/*
 * Open the node's SDR cache, checked against the BMC's repository
 * timestamps; (re)create it when missing, stale or damaged.  One node's
 * jobs take turns here, so two never write the file at once.
 */
static ipmi_sdr_ctx_t
sdr_open(struct ipmi_job *j, ipmi_ctx_t ctx)
{
	struct ipmi_bmc *b = j->bmc;
	ipmi_sdr_ctx_t sdr = ipmi_sdr_ctx_create();
	int e;

	if (sdr == NULL) {
		job_fail(j, -ENOMEM, "out of memory for an SDR context");
		return NULL;
	}
	pthread_mutex_lock(&b->mu);
	if (ipmi_sdr_cache_open(sdr, ctx, b->c.sdr_cache) == 0) {
		pthread_mutex_unlock(&b->mu);
		return sdr;
	}
	e = ipmi_sdr_ctx_errnum(sdr);
	if (e == IPMI_SDR_ERR_IPMI_ERROR || e == IPMI_SDR_ERR_SYSTEM_ERROR) {
		if (ctx_timed_out(ctx))
			ctx_fail(j, ctx, "read the SDR repository info");
		else
			job_fail(j, -EIO, "BMC %s: reading the SDR failed: %s",
			         b->c.shown, ipmi_sdr_ctx_errormsg(sdr));
		goto fail;
	}
	if (sdr_dir(j) < 0)
		goto fail;
	if (ipmi_sdr_cache_create(sdr, ctx, b->c.sdr_cache,
	                          IPMI_SDR_CACHE_CREATE_FLAGS_OVERWRITE, NULL, NULL) < 0) {
		if (ctx_timed_out(ctx))
			ctx_fail(j, ctx, "read the SDR");
		else
			job_fail(j, -EIO, "BMC %s: caching the SDR in %s failed: %s",
			         b->c.shown, b->c.sdr_cache, ipmi_sdr_ctx_errormsg(sdr));
		goto fail;
	}
	if (ipmi_sdr_cache_open(sdr, ctx, b->c.sdr_cache) < 0) {
		job_fail(j, -EIO, "BMC %s: the SDR cache %s: %s", b->c.shown,
		         b->c.sdr_cache, ipmi_sdr_ctx_errormsg(sdr));
		goto fail;
	}
	pthread_mutex_unlock(&b->mu);
	return sdr;
fail:
	pthread_mutex_unlock(&b->mu);
	ipmi_sdr_ctx_destroy(sdr);
	return NULL;
}

static void
sdr_close(ipmi_sdr_ctx_t sdr)
{
	if (sdr == NULL)
		return;
	ipmi_sdr_cache_close(sdr);
	ipmi_sdr_ctx_destroy(sdr);
}

/* --- reading sensors ------------------------------------------------------------ */

static struct sb_sensor *
job_sensor(struct ipmi_job *j)
{
	if (j->nsensors == j->cap) {
		j->cap = j->cap ? j->cap * 2 : 16;
		j->sensors = sb_realloc(j->sensors, j->cap * sizeof(*j->sensors));
	}
	return &j->sensors[j->nsensors++];
}

static void
kind_unit(uint8_t type, uint8_t base, uint8_t percent, enum sb_sensor_kind *kind,
          const char **unit)
{
	switch (type) {
	case IPMI_SENSOR_TYPE_TEMPERATURE:	*kind = SB_SENSOR_TEMPERATURE; break;
	case IPMI_SENSOR_TYPE_VOLTAGE:		*kind = SB_SENSOR_VOLTAGE; break;
	case IPMI_SENSOR_TYPE_CURRENT:		*kind = SB_SENSOR_CURRENT; break;
	case IPMI_SENSOR_TYPE_FAN:		*kind = SB_SENSOR_FAN; break;
	default:				*kind = SB_SENSOR_OTHER; break;
	}
	switch (base) {
	case IPMI_SENSOR_UNIT_DEGREES_C:	*unit = "C"; break;
	case IPMI_SENSOR_UNIT_DEGREES_F:	*unit = "F"; break;
	case IPMI_SENSOR_UNIT_VOLTS:		*unit = "V"; break;
	case IPMI_SENSOR_UNIT_AMPS:		*unit = "A"; break;
	case IPMI_SENSOR_UNIT_WATTS:		*unit = "W"; *kind = SB_SENSOR_POWER; break;
	case IPMI_SENSOR_UNIT_RPM:		*unit = "RPM"; break;
	default:				*unit = ""; break;
	}
	if (percent)
		*unit = "%";
}

/* A one-word name from the SDR's ID string: "CPU1 Temp" -> "CPU1_Temp". */
static void
word_name(char *out, size_t outlen, const char *raw, unsigned number)
{
	size_t j = 0;

	while (*raw == ' ')
		raw++;
	for (; *raw != '\0' && j + 1 < outlen; raw++) {
		unsigned char ch = (unsigned char)*raw;

		out[j++] = isalnum(ch) || ch == '.' || ch == '-' || ch == '_' ? (char)ch : '_';
	}
	while (j > 0 && out[j - 1] == '_')
		j--;
	out[j] = '\0';
	if (j == 0)
		snprintf(out, outlen, "sensor%u", number);
}

/*
 * The thresholds in force, from Get Sensor Thresholds (an operator may have
 * changed them since the SDR was written), decoded with the SDR's
 * conversion factors; the SDR's own values where the BMC does not say.
 * IPMI's non-critical is our warning, and non-recoverable counts as
 * critical where there is no critical limit.
 */
static void
thresholds(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr, const void *rec,
           unsigned len, uint8_t number, struct sb_sensor *s)
{
	static const char *const fields[6] = {
		"lower_non_critical_threshold", "lower_critical_threshold",
		"lower_non_recoverable_threshold", "upper_non_critical_threshold",
		"upper_critical_threshold", "upper_non_recoverable_threshold",
	};
	double v[6] = { NAN, NAN, NAN, NAN, NAN, NAN };
	double *p[6] = { NULL };
	int8_t r_exp, b_exp;
	int16_t m, bb;
	uint8_t lin, fmt;
	fiid_obj_t obj;

	(void)j;
	if (ipmi_sdr_parse_thresholds(sdr, rec, len, &p[0], &p[1], &p[2], &p[3],
	                              &p[4], &p[5]) == 0) {
		for (int i = 0; i < 6; i++) {
			if (p[i] != NULL)
				v[i] = *p[i];
			free(p[i]);
		}
	}
	if (ipmi_sdr_parse_sensor_decoding_data(sdr, rec, len, &r_exp, &b_exp, &m,
	                                        &bb, &lin, &fmt) == 0 &&
	    (obj = fiid_obj_create(tmpl_cmd_get_sensor_thresholds_rs)) != NULL) {
		if (ipmi_cmd_get_sensor_thresholds(ctx, number, obj) == 0) {
			for (int i = 0; i < 6; i++) {
				char readable[96];
				uint64_t ok = 0, raw = 0;
				double d;

				snprintf(readable, sizeof(readable), "readable_thresholds.%s",
				         fields[i]);
				if (fiid_obj_get(obj, readable, &ok) == 1 && ok &&
				    fiid_obj_get(obj, fields[i], &raw) == 1 &&
				    ipmi_sensor_decode_value(r_exp, b_exp, m, bb, lin, fmt,
				                             (uint8_t)raw, &d) == 0)
					v[i] = d;
				else if (fiid_obj_get(obj, readable, &ok) == 1 && !ok)
					v[i] = NAN;	/* the BMC says: no such limit */
			}
		}
		fiid_obj_destroy(obj);
	}
	s->low_warn = v[0];
	s->low_crit = !isnan(v[1]) ? v[1] : v[2];
	s->high_warn = v[3];
	s->high_crit = !isnan(v[4]) ? v[4] : v[5];
}

static int
read_one(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr,
         ipmi_sensor_read_ctx_t rd, ipmi_interpret_ctx_t ictx)
{
	uint8_t rec[IPMI_SDR_MAX_RECORD_LENGTH];
	uint8_t number, type, ert, pct, mod, rate, base, modbase, raw = 0;
	char idstr[IPMI_SDR_MAX_SENSOR_NAME_LENGTH + 1];
	enum sb_sensor_kind kind;
	const char *unit;
	uint16_t id, bitmask = 0;
	uint8_t rtype;
	unsigned state;
	double *reading = NULL;
	struct sb_sensor *s;
	int len, rc;

	if ((len = ipmi_sdr_cache_record_read(sdr, rec, sizeof(rec))) <= 0 ||
	    ipmi_sdr_parse_record_id_and_type(sdr, rec, (unsigned)len, &id, &rtype) < 0)
		return 0;
	if (rtype != IPMI_SDR_FORMAT_FULL_SENSOR_RECORD &&
	    rtype != IPMI_SDR_FORMAT_COMPACT_SENSOR_RECORD)
		return 0;
	if (ipmi_sdr_parse_sensor_number(sdr, rec, (unsigned)len, &number) < 0 ||
	    ipmi_sdr_parse_sensor_type(sdr, rec, (unsigned)len, &type) < 0 ||
	    ipmi_sdr_parse_event_reading_type_code(sdr, rec, (unsigned)len, &ert) < 0)
		return 0;
	if (ipmi_sdr_parse_sensor_name(sdr, rec, (unsigned)len, number, 0, idstr,
	                               sizeof(idstr)) < 0)
		idstr[0] = '\0';
	if (ipmi_sdr_parse_sensor_units(sdr, rec, (unsigned)len, &pct, &mod, &rate,
	                                &base, &modbase) < 0)
		pct = base = 0;
	kind_unit(type, base, pct, &kind, &unit);

	s = job_sensor(j);
	{
		char name[sizeof(s->name)];

		word_name(name, sizeof(name), idstr, number);
		sb_sensor_init(s, name, kind, unit);
	}
	rc = ipmi_sensor_read(rd, rec, (unsigned)len, 0, &raw, &reading, &bitmask);
	if (rc < 0) {
		/* One sensor the BMC cannot read is no reading; a BMC that
		 * stopped answering ends the request. */
		if (ctx_timed_out(ctx)) {
			ctx_fail(j, ctx, "read a sensor");
			return -1;
		}
		return 0;
	}
	if (reading != NULL) {
		s->has_value = isfinite(*reading);
		s->value = s->has_value ? *reading : NAN;
		free(reading);
	} else if (ert != IPMI_EVENT_READING_TYPE_CODE_THRESHOLD && rc == 1) {
		/* A discrete sensor: its "value" is the state bits it asserts,
		 * and its verdict comes from FreeIPMI's interpretation alone. */
		s->has_value = 1;
		s->value = bitmask;
	}
	if (ert == IPMI_EVENT_READING_TYPE_CODE_THRESHOLD &&
	    rtype == IPMI_SDR_FORMAT_FULL_SENSOR_RECORD)
		thresholds(j, ctx, sdr, rec, (unsigned)len, number, s);
	sb_sensor_eval(s);
	/* The BMC's own verdict, as FreeIPMI interprets it, wins over our
	 * arithmetic: it knows hysteresis and sensor types we do not. */
	if (s->has_value && ictx != NULL && rc == 1 &&
	    ipmi_interpret_sensor(ictx, ert, type, bitmask, &state) == 0) {
		switch (state) {
		case IPMI_INTERPRET_STATE_NOMINAL:	s->state = SB_SENSOR_OK; break;
		case IPMI_INTERPRET_STATE_WARNING:	s->state = SB_SENSOR_WARNING; break;
		case IPMI_INTERPRET_STATE_CRITICAL:	s->state = SB_SENSOR_CRITICAL; break;
		default:				break;	/* keep the thresholds' */
		}
	}
	return 0;
}

static int
read_sensors(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr, ipmi_interpret_ctx_t ictx)
{
	ipmi_sensor_read_ctx_t rd = ipmi_sensor_read_ctx_create(ctx);
	uint16_t count = 0;
	int rc = 0;

	if (rd == NULL) {
		job_fail(j, -ENOMEM, "out of memory for a sensor-read context");
		return -1;
	}
	if (ipmi_sdr_cache_record_count(sdr, &count) == 0 && count > 0 &&
	    ipmi_sdr_cache_first(sdr) == 0) {
		do {
			if (past_deadline(j) || read_one(j, ctx, sdr, rd, ictx) < 0) {
				rc = -1;
				break;
			}
		} while (ipmi_sdr_cache_next(sdr) == 1);
	}
	ipmi_sensor_read_ctx_destroy(rd);
	return rc;
}

static int
chassis_power(struct ipmi_job *j, ipmi_ctx_t ctx, enum sb_power *out)
{
	fiid_obj_t obj = fiid_obj_create(tmpl_cmd_get_chassis_status_rs);
	uint64_t on = 0;
	int rc = -1;

	*out = SB_POWER_UNKNOWN;
	if (obj == NULL) {
		job_fail(j, -ENOMEM, "out of memory");
		return -1;
	}
	if (ipmi_cmd_get_chassis_status(ctx, obj) < 0)
		ctx_fail(j, ctx, "get the chassis status");
	else if (fiid_obj_get(obj, "current_power_state.power_is_on", &on) != 1)
		job_fail(j, -EIO, "BMC %s: a chassis status without a power state",
		         j->bmc->c.shown);
	else {
		*out = on ? SB_POWER_ON : SB_POWER_OFF;
		rc = 0;
	}
	fiid_obj_destroy(obj);
	return rc;
}

/* --- the event log ----------------------------------------------------------------- */

struct sel_walk {
	struct ipmi_job *job;
	ipmi_interpret_ctx_t ictx;
	unsigned after;		/* keep records with a higher ID */
	unsigned max_id;
	struct sb_hal_event *ring;	/* the newest `keep`, oldest first when full */
	size_t  keep, n, next;
	size_t  seen;		/* kept or not */
};

/* "CPU_Temp: Upper Critical - going high; Sensor Reading = 92.00 C; ..." */
static void
sel_text(ipmi_sel_ctx_t sel, char *out, size_t outlen)
{
	char dir[64] = "";

	if (ipmi_sel_parse_read_record_string(sel, "%s: %E", NULL, 0, out,
	                                      (unsigned)outlen,
	                                      IPMI_SEL_STRING_FLAGS_IGNORE_UNAVAILABLE_FIELD) < 0)
		snprintf(out, outlen, "(an entry FreeIPMI cannot parse)");
	out[outlen - 1] = '\0';
	if (ipmi_sel_parse_read_record_string(sel, "%k", NULL, 0, dir, sizeof(dir),
	                                      IPMI_SEL_STRING_FLAGS_IGNORE_UNAVAILABLE_FIELD) > 0 &&
	    strstr(dir, "Deassertion") != NULL) {
		size_t l = strlen(out);

		snprintf(out + l, outlen - l, " (cleared)");
	}
	for (char *p = out; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p))
			*p = ' ';
}

static int
sel_record(ipmi_sel_ctx_t sel, void *data)
{
	struct sel_walk *w = data;
	uint8_t rec[IPMI_SEL_RECORD_MAX_RECORD_LENGTH];
	struct sb_hal_event *ev;
	uint16_t id = 0;
	uint32_t ts = 0;
	unsigned state = IPMI_INTERPRET_STATE_NOMINAL;
	int len;

	if (ipmi_sel_parse_read_record_id(sel, NULL, 0, &id) < 0)
		return 0;
	if (id > w->max_id)
		w->max_id = id;
	if (id <= w->after)
		return 0;
	w->seen++;
	if (w->keep == 0)
		return 0;
	ev = &w->ring[w->next];
	memset(ev, 0, sizeof(*ev));
	/* Timestamps before 0x20000000 count from the BMC's start, not the
	 * epoch: such an entry is dated when we read it. */
	if (ipmi_sel_parse_read_timestamp(sel, NULL, 0, &ts) == 0 && ts > 0x20000000u)
		ev->when = (time_t)ts;
	else
		ev->when = time(NULL);
	if (w->ictx != NULL &&
	    (len = ipmi_sel_parse_read_record(sel, rec, sizeof(rec))) > 0)
		ipmi_interpret_sel(w->ictx, rec, (unsigned)len, &state);
	ev->severity = state == IPMI_INTERPRET_STATE_CRITICAL ? SB_EV_CRITICAL :
	    state == IPMI_INTERPRET_STATE_WARNING ? SB_EV_WARNING : SB_EV_INFO;
	sel_text(sel, ev->text, sizeof(ev->text));
	w->next = (w->next + 1) % w->keep;
	if (w->n < w->keep)
		w->n++;
	return 0;
}

/* The walk's ring as an array, newest first; *n its length. */
static struct sb_hal_event *
sel_newest_first(struct sel_walk *w, size_t *n)
{
	struct sb_hal_event *v;

	*n = w->n;
	if (w->n == 0)
		return NULL;
	v = sb_calloc(w->n, sizeof(*v));
	for (size_t k = 0; k < w->n; k++)
		v[k] = w->ring[(w->next + w->keep - 1 - k) % w->keep];
	return v;
}

static int
sel_walk(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr, struct sel_walk *w,
         unsigned from)
{
	ipmi_sel_ctx_t sel = ipmi_sel_ctx_create(ctx, sdr);
	int rc;

	if (sel == NULL) {
		job_fail(j, -ENOMEM, "out of memory for a SEL context");
		return -1;
	}
	ipmi_sel_ctx_set_separator(sel, "; ");
	w->job = j;
	rc = ipmi_sel_parse(sel, from ? (uint16_t)from : IPMI_SEL_RECORD_ID_FIRST,
	                    IPMI_SEL_RECORD_ID_LAST, sel_record, w);
	if (rc < 0 && ipmi_sel_ctx_errnum(sel) == IPMI_SEL_ERR_NO_SEL_ENTRIES)
		rc = 0;
	if (rc < 0) {
		if (ctx_timed_out(ctx))
			ctx_fail(j, ctx, "read the SEL");
		else
			job_fail(j, -EIO, "BMC %s: reading the SEL failed: %s",
			         j->bmc->c.shown, ipmi_sel_ctx_errormsg(sel));
	}
	ipmi_sel_ctx_destroy(sel);
	return rc < 0 ? -1 : 0;
}

/*
 * The SEL entries added since the last poll.  Get SEL Info's timestamps say
 * whether anything changed, so an unchanged log costs one exchange.  The
 * first poll only learns where the log ends: a backlog is not news.  A
 * cleared log starts over.  Failures here never fail the poll.
 */
static void
sel_fresh(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr, ipmi_interpret_ctx_t ictx)
{
	struct ipmi_bmc *b = j->bmc;
	fiid_obj_t obj = fiid_obj_create(tmpl_cmd_get_sel_info_rs);
	uint64_t entries = 0, add = 0, erase = 0;
	struct sb_hal_event ring[IPMI_SEL_NEW_MAX];
	struct sel_walk w = { .ictx = ictx, .ring = ring, .keep = IPMI_SEL_NEW_MAX };
	int primed, rc;

	if (obj == NULL)
		return;
	/* One job of a BMC at a time looks at its SEL, so that a poll and a
	 * "sensors" command running side by side never both announce an
	 * entry. */
	pthread_mutex_lock(&b->mu);
	if (ipmi_cmd_get_sel_info(ctx, obj) < 0 ||
	    fiid_obj_get(obj, "entries", &entries) != 1 ||
	    fiid_obj_get(obj, "most_recent_addition_timestamp", &add) != 1 ||
	    fiid_obj_get(obj, "most_recent_erase_timestamp", &erase) != 1)
		goto out;
	primed = b->sel_primed;
	if (primed && add == b->sel_add_ts && erase == b->sel_erase_ts &&
	    entries == b->sel_entries)
		goto out;			/* nothing new */
	if (primed && (erase != b->sel_erase_ts || entries < b->sel_entries))
		b->sel_last_id = 0;		/* cleared: everything is new */
	w.after = b->sel_last_id;
	if (!primed)
		w.keep = 0;
	/* From the last entry seen; if that one is gone, from the start. */
	rc = sel_walk(j, ctx, sdr, &w, w.after);
	if (rc < 0 && w.after != 0) {
		w.n = w.next = w.seen = 0;
		rc = sel_walk(j, ctx, sdr, &w, 0);
	}
	j->status = 0;			/* the SEL never fails a poll */
	j->error[0] = '\0';
	if (rc < 0)
		goto out;
	b->sel_primed = 1;
	b->sel_add_ts = (uint32_t)add;
	b->sel_erase_ts = (uint32_t)erase;
	b->sel_entries = (unsigned)entries;
	if (w.max_id > b->sel_last_id)
		b->sel_last_id = w.max_id;
	if (primed) {
		j->fresh = sel_newest_first(&w, &j->nfresh);
		j->fresh_more = w.seen > w.n ? w.seen - w.n : 0;
	}
out:
	pthread_mutex_unlock(&b->mu);
	fiid_obj_destroy(obj);
}

/* --- the jobs ---------------------------------------------------------------------- */

static void
do_read(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_interpret_ctx_t ictx)
{
	ipmi_sdr_ctx_t sdr = sdr_open(j, ctx);

	if (sdr == NULL)
		return;
	if (read_sensors(j, ctx, sdr, ictx) == 0 && chassis_power(j, ctx, &j->power) == 0 &&
	    j->bmc->c.sel_events && !past_deadline(j))
		sel_fresh(j, ctx, sdr, ictx);
	sdr_close(sdr);
}

static void
do_power(struct ipmi_job *j, ipmi_ctx_t ctx)
{
	static const struct {
		const char *name;
		uint8_t control;
		enum sb_power after;
		const char *message;
	} acts[] = {
		{ "on", IPMI_CHASSIS_CONTROL_POWER_UP, SB_POWER_ON, "power on issued" },
		{ "off", IPMI_CHASSIS_CONTROL_POWER_DOWN, SB_POWER_OFF, "power off issued" },
		{ "cycle", IPMI_CHASSIS_CONTROL_POWER_CYCLE, SB_POWER_ON, "power cycle issued" },
		{ "reset", IPMI_CHASSIS_CONTROL_HARD_RESET, SB_POWER_ON, "power reset issued" },
		{ "soft", IPMI_CHASSIS_CONTROL_INITIATE_SOFT_SHUTDOWN, SB_POWER_UNKNOWN,
		  "soft power off issued (the operating system shuts down)" },
	};
	fiid_obj_t obj;
	size_t i;

	if (strcmp(j->action, "status") == 0) {
		if (chassis_power(j, ctx, &j->power) == 0)
			snprintf(j->message, sizeof(j->message), "power is %s",
			         sb_power_name(j->power));
		return;
	}
	for (i = 0; i < SB_ARRAY_LEN(acts); i++)
		if (strcmp(acts[i].name, j->action) == 0)
			break;
	if (i == SB_ARRAY_LEN(acts))
		return;		/* checked on the loop already */
	if ((obj = fiid_obj_create(tmpl_cmd_chassis_control_rs)) == NULL) {
		job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	if (ipmi_cmd_chassis_control(ctx, acts[i].control, obj) < 0) {
		char doing[32];

		snprintf(doing, sizeof(doing), "power %s", j->action);
		ctx_fail(j, ctx, doing);
	} else {
		j->power = acts[i].after;
		snprintf(j->message, sizeof(j->message), "%s", acts[i].message);
	}
	fiid_obj_destroy(obj);
}

static void
do_events(struct ipmi_job *j, ipmi_ctx_t ctx, ipmi_interpret_ctx_t ictx)
{
	ipmi_sdr_ctx_t sdr = sdr_open(j, ctx);
	struct sel_walk w = { .ictx = ictx, .keep = (size_t)j->count };

	if (sdr == NULL)
		return;
	w.ring = sb_calloc(w.keep, sizeof(*w.ring));
	if (sel_walk(j, ctx, sdr, &w, 0) == 0)
		j->events = sel_newest_first(&w, &j->nevents);
	free(w.ring);
	sdr_close(sdr);
}

/* A FRU text field, or "" where it has none. */
static void
fru_field(ipmi_fru_ctx_t fru, const ipmi_fru_field_t *f, uint8_t lang, char *out,
          size_t outlen)
{
	char buf[IPMI_FRU_AREA_STRING_MAX + 1];
	unsigned len = sizeof(buf) - 1;

	out[0] = '\0';
	if (f->type_length_field_length == 0 ||
	    ipmi_fru_type_length_field_to_string(fru, f->type_length_field,
	        f->type_length_field_length, lang, buf, &len) < 0)
		return;
	buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
	sb_strlcpy(out, buf, outlen);
}

/* Vendor, model and serial from FRU device 0's product area, else its
 * board area.  A BMC without FRU data still answers with its firmware. */
static void
fru_inventory(struct ipmi_job *j, ipmi_ctx_t ctx)
{
	ipmi_fru_ctx_t fru = ipmi_fru_ctx_create(ctx);
	uint8_t *area;

	if (fru == NULL)
		return;
	if (ipmi_fru_open_device_id(fru, 0) < 0) {
		ipmi_fru_ctx_destroy(fru);
		return;
	}
	area = sb_malloc(IPMI_FRU_AREA_SIZE_MAX + 1);
	do {
		unsigned type = 0, alen = 0;
		ipmi_fru_field_t f[8];
		uint8_t lang = 0;
		uint32_t when;

		memset(f, 0, sizeof(f));
		if (ipmi_fru_read_data_area(fru, &type, &alen, area, IPMI_FRU_AREA_SIZE_MAX) < 0)
			break;
		if (type == IPMI_FRU_AREA_TYPE_PRODUCT_INFO_AREA &&
		    ipmi_fru_product_info_area(fru, area, alen, &lang, &f[0], &f[1],
		        &f[2], &f[3], &f[4], &f[5], &f[6], NULL, 0) == 0) {
			fru_field(fru, &f[0], lang, j->inv.vendor, sizeof(j->inv.vendor));
			fru_field(fru, &f[1], lang, j->inv.model, sizeof(j->inv.model));
			fru_field(fru, &f[4], lang, j->inv.serial, sizeof(j->inv.serial));
		} else if (type == IPMI_FRU_AREA_TYPE_BOARD_INFO_AREA && j->inv.model[0] == '\0' &&
		    ipmi_fru_board_info_area(fru, area, alen, &lang, &when, &f[0], &f[1],
		        &f[2], &f[3], &f[4], NULL, 0) == 0) {
			fru_field(fru, &f[0], lang, j->inv.vendor, sizeof(j->inv.vendor));
			fru_field(fru, &f[1], lang, j->inv.model, sizeof(j->inv.model));
			fru_field(fru, &f[2], lang, j->inv.serial, sizeof(j->inv.serial));
		}
	} while (ipmi_fru_next(fru) == 1);
	free(area);
	ipmi_fru_close_device_id(fru);
	ipmi_fru_ctx_destroy(fru);
}

static void
do_inventory(struct ipmi_job *j, ipmi_ctx_t ctx)
{
	fiid_obj_t obj = fiid_obj_create(tmpl_cmd_get_device_id_rs);
	uint64_t major = 0, minor = 0, mfr = 0;

	if (obj == NULL) {
		job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	if (ipmi_cmd_get_device_id(ctx, obj) < 0) {
		ctx_fail(j, ctx, "get the device ID");
		fiid_obj_destroy(obj);
		return;
	}
	if (fiid_obj_get(obj, "firmware_revision1.major_revision", &major) == 1 &&
	    fiid_obj_get(obj, "firmware_revision2.minor_revision", &minor) == 1)
		snprintf(j->inv.firmware, sizeof(j->inv.firmware), "BMC %u.%02x",
		         (unsigned)major, (unsigned)minor);	/* minor is BCD */
	if (fiid_obj_get(obj, "manufacturer_id.id", &mfr) == 1)
		snprintf(j->inv.vendor, sizeof(j->inv.vendor), "IANA %u", (unsigned)mfr);
	fiid_obj_destroy(obj);
	{
		char vendor[sizeof(j->inv.vendor)];

		sb_strlcpy(vendor, j->inv.vendor, sizeof(vendor));
		j->inv.vendor[0] = '\0';
		fru_inventory(j, ctx);
		if (j->inv.vendor[0] == '\0')
			sb_strlcpy(j->inv.vendor, vendor, sizeof(j->inv.vendor));
	}
	for (char *p = j->inv.model; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p))
			*p = ' ';
}

/* Everything the job needs from the BMC, in one session. */
void
sb_ipmi_run(struct ipmi_job *j, ipmi_interpret_ctx_t ictx)
{
	ipmi_ctx_t ctx;

	if (past_deadline(j))
		return;		/* it waited in the queue too long */
	if ((ctx = session_open(j)) == NULL)
		return;
	switch (j->op) {
	case SB_HAL_READ:
		do_read(j, ctx, ictx);
		break;
	case SB_HAL_POWER_ACT:
		do_power(j, ctx);
		break;
	case SB_HAL_EVENTS_GET:
		do_events(j, ctx, ictx);
		break;
	case SB_HAL_INVENTORY_GET:
		do_inventory(j, ctx);
		break;
	}
	session_close(ctx);
}

