/*
 * hal_ipmi.c: the IPMI HAL backend ("ipmi"): a server's BMC over IPMI LAN
 * 2.0 (RMCP+), through FreeIPMI's libfreeipmi.
 *
 * It reads the sensors the BMC's SDR describes, with their thresholds and
 * FreeIPMI's interpretation of each into nominal / warning / critical; the
 * chassis power state; the system event log (the newest N on request, and
 * every entry new since the last poll as an event to the router); the FRU
 * inventory; and it runs chassis power control.
 *
 * BMC I/O never runs on the loop.  A pool of worker threads, shared by
 * every ipmi node of the daemon, takes requests from a queue: interactive
 * ones (power, events, inventory) before polls, so an operator never waits
 * behind a round of polls.  Each request opens its own session, is bounded
 * by a per-exchange timeout and an overall deadline, and its result comes
 * back to the loop through the pool's eventfd, which the loop watches.  The
 * pool's size, the largest "workers" of any ipmi node, bounds how many
 * BMCs are talked to at once however many nodes there are.
 *
 * Why an eventfd of its own rather than sb_loop_post(): the core keeps a
 * node (and so its HAL) alive while a request is in flight and never
 * closes it at shutdown, so a worker may finish after the loop was freed.
 * Writing to an eventfd nobody watches any more is harmless; posting to a
 * freed loop is not.
 *
 * This file is the loop side: configuration, instances, the pool, and
 * answering finished jobs.  What a worker says to a BMC is hal_ipmi_io.c.
 *
 * What it does not do: it knows no node state (a BMC that does not answer
 * is an error result; the policy makes that "down"), and it never logs a
 * password or puts one in a reply.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <freeipmi/freeipmi.h>

#include "conf.h"
#include "core.h"
#include "hal.h"
#include "hal_ipmi.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define IPMI_PORT_DEF		623
#define IPMI_WORKERS_DEF	8
#define IPMI_WORKERS_MAX	256
#define IPMI_IDLE_MS		30000	/* an idle worker thread exits after this */
#define IPMI_EVENTS_DEF		10
#define IPMI_EVENTS_MAX		1000

static const struct sb_conf_key ipmi_keys[] = {
	{ .name = "backend", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "\"ipmi\" for a BMC reached over IPMI LAN 2.0" },
	{ .name = "host", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "the BMC's address or name" },
	{ .name = "port", .type = SB_CT_INT, .def = "623",
	  .doc = "the BMC's UDP port" },
	{ .name = "username", .type = SB_CT_STRING, .flags = SB_KEY_REQUIRED,
	  .doc = "the IPMI user" },
	{ .name = "password", .type = SB_CT_STRING, .def = "none",
	  .doc = "the IPMI password (the config file must not be world-readable)" },
	{ .name = "password_file", .type = SB_CT_STRING, .def = "none",
	  .doc = "a file holding the password instead (not world-readable); relative: in "
	         "$CREDENTIALS_DIRECTORY" },
	{ .name = "k_g", .type = SB_CT_STRING, .def = "none",
	  .doc = "the BMC key K_g, as text or 0x-prefixed hex" },
	{ .name = "privilege", .type = SB_CT_STRING, .def = "operator",
	  .doc = "session privilege: user (read only), operator (power) or admin" },
	{ .name = "cipher_suite", .type = SB_CT_INT, .def = "3",
	  .doc = "RMCP+ cipher suite ID (3: HMAC-SHA1, AES-128)" },
	{ .name = "workarounds", .type = SB_CT_STRINGS, .def = "[ ]",
	  .doc = "FreeIPMI workarounds: opensesspriv, authcap, intel20, "
	         "supermicro20, sun20, integritycheckvalue, nochecksumcheck" },
	{ .name = "timeout", .type = SB_CT_FLOAT, .def = "5",
	  .doc = "seconds one exchange may take before the BMC counts as not answering" },
	{ .name = "request_timeout", .type = SB_CT_FLOAT, .def = "30",
	  .doc = "seconds one whole request (a poll, a power action) may take" },
	{ .name = "workers", .type = SB_CT_INT, .def = "8",
	  .doc = "worker threads shared by all ipmi nodes (the largest value wins)" },
	{ .name = "sel_events", .type = SB_CT_BOOL, .def = "true",
	  .doc = "announce SEL entries new since the last poll as events" },
	{ .name = "sdr_cache", .type = SB_CT_STRING, .def = "<state_dir>/sdr/<node>.sdr",
	  .doc = "where the node's SDR is cached" },
	{ .name = NULL },
};

/* --- the worker pool --------------------------------------------------------- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ipmi_job *hi, *hi_tail;	/* interactive requests */
	struct ipmi_job *lo, *lo_tail;	/* polls */
	struct ipmi_job *done, *done_tail;
	int     nthreads, nidle, max;
	int     efd;			/* workers -> loop: "jobs are done" */
} pool = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
	.efd = -1,
	.max = IPMI_WORKERS_DEF,
};


static void
queue_push(struct ipmi_job **head, struct ipmi_job **tail, struct ipmi_job *j)
{
	j->next = NULL;
	if (*tail != NULL)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static struct ipmi_job *
queue_pop(struct ipmi_job **head, struct ipmi_job **tail)
{
	struct ipmi_job *j = *head;

	if (j != NULL) {
		*head = j->next;
		if (*head == NULL)
			*tail = NULL;
		j->next = NULL;
	}
	return j;
}

/* Take j out of a queue; 1 if it was there. */
static int
queue_remove(struct ipmi_job **head, struct ipmi_job **tail, struct ipmi_job *j)
{
	struct ipmi_job *prev = NULL;

	for (struct ipmi_job *p = *head; p != NULL; prev = p, p = p->next) {
		if (p != j)
			continue;
		if (prev != NULL)
			prev->next = p->next;
		else
			*head = p->next;
		if (*tail == p)
			*tail = prev;
		p->next = NULL;
		return 1;
	}
	return 0;
}

/*
 * A worker: takes the next job, interactive first, runs it without the
 * lock, hands it to the done list and wakes the loop.  One interpretation
 * context per thread, since building one parses FreeIPMI's tables.
 */
static void *
worker(void *arg)
{
	ipmi_interpret_ctx_t ictx = ipmi_interpret_ctx_create();
	struct ipmi_job *j;

	(void)arg;
	sb_thread_name("ipmi");
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		j = queue_pop(&pool.hi, &pool.hi_tail);
		if (j == NULL)
			j = queue_pop(&pool.lo, &pool.lo_tail);
		if (j == NULL) {
			struct timespec ts;
			int rc;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += IPMI_IDLE_MS / 1000;
			pool.nidle++;
			rc = pthread_cond_timedwait(&pool.cv, &pool.mu, &ts);
			pool.nidle--;
			if (rc == ETIMEDOUT && pool.hi == NULL && pool.lo == NULL)
				break;
			continue;
		}
		j->state = IPMI_JOB_RUNNING;
		pthread_mutex_unlock(&pool.mu);

		sb_ipmi_run(j, ictx);

		pthread_mutex_lock(&pool.mu);
		j->state = IPMI_JOB_DONE;
		queue_push(&pool.done, &pool.done_tail, j);
		if (pool.efd >= 0) {
			uint64_t one = 1;
			ssize_t ignore = write(pool.efd, &one, sizeof(one));

			(void)ignore;
		}
	}
	pool.nthreads--;
	pthread_mutex_unlock(&pool.mu);
	if (ictx != NULL)
		ipmi_interpret_ctx_destroy(ictx);
	return NULL;
}

static void bmc_unref(struct ipmi_bmc *);
static void job_free(struct ipmi_job *);
static void job_answer(struct ipmi_job *);

/* On the loop: every finished job is answered, unless close() already did. */
static void
on_done(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct ipmi_job *list, *j;
	uint64_t n;
	ssize_t ignore;

	(void)loop;
	(void)mask;
	(void)ud;
	ignore = read(fd, &n, sizeof(n));
	(void)ignore;
	pthread_mutex_lock(&pool.mu);
	list = pool.done;
	pool.done = pool.done_tail = NULL;
	pthread_mutex_unlock(&pool.mu);
	while ((j = list) != NULL) {
		list = j->next;
		job_answer(j);
	}
}

/*
 * On the loop, before each job: create the eventfd once, and make sure the
 * loop in use watches it.  Asking every time (an fd already watched is
 * -EEXIST, a cheap no-op) rather than remembering the loop is what copes
 * with a test that frees its loop and makes a new one at the same address.
 */
static int
pool_attach(void)
{
	int rc;

	if (sb_core.loop == NULL)
		return -ENOTSUP;
	if (pool.efd < 0 &&
	    (pool.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -errno;
	rc = sb_loop_add_fd(sb_core.loop, pool.efd, SB_READ, on_done, NULL);
	return rc == -EEXIST ? 0 : rc;
}

/* On the loop: queue a job, and start a thread if none is idle. */
static int
pool_submit(struct ipmi_job *j)
{
	int rc;

	if ((rc = pool_attach()) < 0)
		return rc;
	pthread_mutex_lock(&pool.mu);
	if (j->bmc->c.workers > pool.max)
		pool.max = j->bmc->c.workers;
	j->state = IPMI_JOB_QUEUED;
	if (j->op == SB_HAL_READ)
		queue_push(&pool.lo, &pool.lo_tail, j);
	else
		queue_push(&pool.hi, &pool.hi_tail, j);
	if (pool.nidle > 0) {
		pthread_cond_signal(&pool.cv);
	} else if (pool.nthreads < pool.max) {
		pthread_attr_t attr;
		pthread_t t;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, worker, NULL) == 0)
			pool.nthreads++;
		pthread_attr_destroy(&attr);
		if (pool.nthreads == 0) {	/* no thread, and none to come */
			queue_remove(j->op == SB_HAL_READ ? &pool.lo : &pool.hi,
			             j->op == SB_HAL_READ ? &pool.lo_tail : &pool.hi_tail, j);
			pthread_mutex_unlock(&pool.mu);
			return -EAGAIN;
		}
	}
	pthread_mutex_unlock(&pool.mu);
	return 0;
}

/* --- jobs on the loop side --------------------------------------------------- */

static void
job_free(struct ipmi_job *j)
{
	free(j->sensors);
	free(j->events);
	free(j->fresh);
	free(j);
}

static void
bmc_unlink(struct ipmi_bmc *b, struct ipmi_job *j)
{
	if (j->bprev != NULL)
		j->bprev->bnext = j->bnext;
	else if (b->jobs == j)
		b->jobs = j->bnext;
	if (j->bnext != NULL)
		j->bnext->bprev = j->bprev;
	j->bnext = j->bprev = NULL;
}

/* The result of a finished job, to its caller; then the job is freed. */
static void
job_answer(struct ipmi_job *j)
{
	struct ipmi_bmc *b = j->bmc;
	struct sb_readings r = { 0 };
	struct sb_hal_result res = { .status = j->status, .power = j->power };
	struct sb_hal *hal = b->hal;

	bmc_unlink(b, j);
	if (j->cancelled || hal == NULL) {
		job_free(j);
		bmc_unref(b);
		return;
	}
	if (j->status < 0) {
		res.error = j->error;
	} else {
		switch (j->op) {
		case SB_HAL_READ:
			r.sensors = j->sensors;
			r.nsensors = j->nsensors;
			r.power = j->power;
			r.taken = time(NULL);
			res.readings = &r;
			break;
		case SB_HAL_POWER_ACT:
			res.message = j->message;
			break;
		case SB_HAL_EVENTS_GET:
			res.events = j->events;
			res.nevents = j->nevents;
			break;
		case SB_HAL_INVENTORY_GET:
			res.inventory = &j->inv;
			break;
		}
	}
	/* SEL entries new since the last poll go to the router before the
	 * reading: an operator sees the cause before the state it caused. */
	if (j->status == 0 && j->op == SB_HAL_READ && b->c.sel_events) {
		for (size_t i = j->nfresh; i-- > 0;) {
			char text[256];

			snprintf(text, sizeof(text), "%s: SEL: %s", b->node, j->fresh[i].text);
			sb_notice("node %s: new SEL entry (%s): %s", b->node,
			          sb_event_severity_name(j->fresh[i].severity), j->fresh[i].text);
			sb_core_event("sel", b->node,
			              sb_event_severity_name(j->fresh[i].severity), text);
		}
		if (j->fresh_more > 0) {
			char text[160];

			snprintf(text, sizeof(text), "%s: SEL: %zu more new entries; see "
			         "\"events %s\"", b->node, j->fresh_more, b->node);
			sb_core_event("sel", b->node, "info", text);
		}
	}
	/* done() may close the instance: b stays alive through our reference. */
	j->done(hal, &res, j->ud);
	job_free(j);
	bmc_unref(b);
}

static void
conf_free(struct ipmi_conf *c)
{
	free(c->host);
	free(c->shown);
	free(c->user);
	if (c->password != NULL) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	explicit_bzero(c->k_g, sizeof(c->k_g));
	free(c->sdr_cache);
}

static void
bmc_unref(struct ipmi_bmc *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	conf_free(&b->c);
	pthread_mutex_destroy(&b->mu);
	free(b->node);
	free(b);
}

/* --- configuration ----------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned flag;
} workaround_names[] = {
	{ "authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_AUTHENTICATION_CAPABILITIES },
	{ "intel20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_INTEL_2_0_SESSION },
	{ "supermicro20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUPERMICRO_2_0_SESSION },
	{ "sun20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUN_2_0_SESSION },
	{ "opensesspriv", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE },
	{ "integritycheckvalue", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NON_EMPTY_INTEGRITY_CHECK_VALUE },
	{ "nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NO_CHECKSUM_CHECK },
};

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
parse_k_g(struct ipmi_conf *c, const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);

	if (strncmp(s, "0x", 2) == 0) {
		if ((len - 2) % 2 != 0 || (len - 2) / 2 > sizeof(c->k_g))
			goto bad;
		for (size_t i = 2; i < len; i += 2) {
			unsigned v;

			if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]) ||
			    sscanf(s + i, "%2x", &v) != 1)
				goto bad;
			c->k_g[c->k_g_len++] = (unsigned char)v;
		}
		return 0;
	}
	if (len > sizeof(c->k_g))
		goto bad;
	memcpy(c->k_g, s, len);
	c->k_g_len = (unsigned)len;
	return 0;
bad:
	snprintf(err, errlen, "k_g must be at most 20 characters, or 0x and at "
	         "most 40 hex digits");
	return -1;
}

static int
parse(struct ipmi_bmc *b, const config_setting_t *conf, char *err, size_t errlen)
{
	struct ipmi_conf *c = &b->c;
	const config_setting_t *w;
	const char *host, *user, *priv, *kg, *cache;
	long long port, cipher, workers;
	double t, rt;

	host = sb_conf_str(conf, "host", NULL);
	user = sb_conf_str(conf, "username", NULL);
	if (host == NULL || *host == '\0' || strchr(host, ' ') != NULL) {
		snprintf(err, errlen, "host must be the BMC's address or name");
		return -1;
	}
	if (user == NULL || strlen(user) > 16) {
		snprintf(err, errlen, "username is required, at most 16 characters");
		return -1;
	}
	port = sb_conf_int(conf, "port", IPMI_PORT_DEF);
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "port must be 1 to 65535");
		return -1;
	}
	/* FreeIPMI takes "host:port"; an IPv6 address goes in brackets. */
	if (strchr(host, ':') != NULL)
		c->host = sb_asprintf("[%s]:%lld", host, port);
	else
		c->host = sb_asprintf("%s:%lld", host, port);
	c->shown = sb_strdup(c->host);
	c->user = sb_strdup(user);

	/* Inline only in a private config file, or from a private file. */
	if (sb_conf_secret(conf, "password", &c->password, err, errlen) < 0)
		return -1;
	if (c->password == NULL)
		c->password = sb_strdup("");
	if (strlen(c->password) > 20) {
		snprintf(err, errlen, "the password is longer than IPMI's 20 characters");
		return -1;
	}
	if ((kg = sb_conf_str(conf, "k_g", NULL)) != NULL &&
	    parse_k_g(c, kg, err, errlen) < 0)
		return -1;

	priv = sb_conf_str(conf, "privilege", "operator");
	if (strcmp(priv, "user") == 0)
		c->priv = IPMI_PRIVILEGE_LEVEL_USER;
	else if (strcmp(priv, "operator") == 0)
		c->priv = IPMI_PRIVILEGE_LEVEL_OPERATOR;
	else if (strcmp(priv, "admin") == 0)
		c->priv = IPMI_PRIVILEGE_LEVEL_ADMIN;
	else {
		snprintf(err, errlen, "privilege must be user, operator or admin, "
		         "not \"%s\"", priv);
		return -1;
	}
	cipher = sb_conf_int(conf, "cipher_suite", 3);
	if (!IPMI_CIPHER_SUITE_ID_SUPPORTED(cipher)) {
		snprintf(err, errlen, "cipher_suite %lld is not one FreeIPMI supports "
		         "(0-3, 6-8, 11, 12, 15-17)", cipher);
		return -1;
	}
	c->cipher = (uint8_t)cipher;

	if ((w = config_setting_get_member(conf, "workarounds")) != NULL) {
		for (int i = 0; i < config_setting_length(w); i++) {
			const char *name = config_setting_get_string_elem(w, i);
			size_t k;

			for (k = 0; k < SB_ARRAY_LEN(workaround_names); k++)
				if (name != NULL && strcmp(name, workaround_names[k].name) == 0)
					break;
			if (k == SB_ARRAY_LEN(workaround_names)) {
				snprintf(err, errlen, "unknown workaround \"%s\"; use opensesspriv, "
				         "authcap, intel20, supermicro20, sun20, "
				         "integritycheckvalue or nochecksumcheck",
				         name != NULL ? name : "");
				return -1;
			}
			c->workarounds |= workaround_names[k].flag;
		}
	}
	t = num(conf, "timeout", 5);
	rt = num(conf, "request_timeout", 30);
	if (isnan(t) || t < 0.1 || t > 120) {
		snprintf(err, errlen, "timeout must be 0.1 to 120 seconds");
		return -1;
	}
	if (isnan(rt) || rt < t || rt > 3600) {
		snprintf(err, errlen, "request_timeout must be at least timeout (%g s) "
		         "and at most 3600 seconds", t);
		return -1;
	}
	c->timeout_ms = (unsigned)llround(t * 1000);
	/* FreeIPMI resends an unanswered packet after this; a lost UDP packet
	 * must not cost the whole timeout. */
	c->retrans_ms = c->timeout_ms / 4 > 1000 ? 1000 : c->timeout_ms / 4;
	if (c->retrans_ms < 50)
		c->retrans_ms = 50;
	c->request_ms = (unsigned)llround(rt * 1000);
	workers = sb_conf_int(conf, "workers", IPMI_WORKERS_DEF);
	if (workers < 1 || workers > IPMI_WORKERS_MAX) {
		snprintf(err, errlen, "workers must be 1 to %d", IPMI_WORKERS_MAX);
		return -1;
	}
	c->workers = (int)workers;
	c->sel_events = sb_conf_bool(conf, "sel_events", 1);
	if ((cache = sb_conf_str(conf, "sdr_cache", NULL)) != NULL) {
		if (cache[0] != '/') {
			snprintf(err, errlen, "sdr_cache must be an absolute path");
			return -1;
		}
		c->sdr_cache = sb_strdup(cache);
	}
	return 0;
}

static int
ipmi_open(struct sb_hal *hal, const config_setting_t *conf, char *err, size_t errlen)
{
	struct ipmi_bmc *b;

	if (conf == NULL) {
		snprintf(err, errlen, "the ipmi backend needs a hal group");
		return -1;
	}
	b = sb_calloc(1, sizeof(*b));
	b->refs = 1;
	b->hal = hal;
	b->node = sb_strdup(hal->node);
	pthread_mutex_init(&b->mu, NULL);
	if (parse(b, conf, err, errlen) < 0) {
		bmc_unref(b);
		return -1;
	}
	hal->priv = b;
	return 0;
}

/* The SDR cache file, decided on the loop (the state folder is the core's). */
static void
sdr_path(struct ipmi_bmc *b)
{
	const char *dir = sb_core.state_dir;
	char *base;

	if (b->c.sdr_cache != NULL)
		return;
	if (dir != NULL)
		base = sb_asprintf("%s/sdr", dir);
	else
		base = sb_asprintf("%s/switchboard-sdr-%u", getenv("TMPDIR") ?
		    getenv("TMPDIR") : "/tmp", (unsigned)getuid());
	b->c.sdr_cache = sb_asprintf("%s/%s.sdr", base, b->node);
	free(base);
}

static int
ipmi_request(struct sb_hal *hal, const struct sb_hal_req *req, sb_hal_done_fn *done,
             void *ud)
{
	struct ipmi_bmc *b = hal->priv;
	struct ipmi_job *j;
	int rc;

	switch (req->op) {
	case SB_HAL_READ:
	case SB_HAL_EVENTS_GET:
	case SB_HAL_INVENTORY_GET:
		break;
	case SB_HAL_POWER_ACT: {
		static const char *const ok[] = { "status", "on", "off", "cycle", "reset", "soft" };
		size_t i;

		for (i = 0; i < SB_ARRAY_LEN(ok); i++)
			if (req->arg != NULL && strcmp(req->arg, ok[i]) == 0)
				break;
		if (i == SB_ARRAY_LEN(ok)) {
			char text[160];

			snprintf(text, sizeof(text), "unknown power action \"%s\"; use "
			         "status, on, off, cycle, reset or soft",
			         req->arg != NULL ? req->arg : "");
			done(hal, &(struct sb_hal_result){ .status = -EINVAL, .error = text }, ud);
			return 0;
		}
		break;
	}
	default:
		return -EINVAL;
	}
	sdr_path(b);
	j = sb_calloc(1, sizeof(*j));
	j->bmc = b;
	j->op = req->op;
	if (req->arg != NULL)
		sb_strlcpy(j->action, req->arg, sizeof(j->action));
	j->count = req->count > 0 ? req->count : IPMI_EVENTS_DEF;
	if (j->count > IPMI_EVENTS_MAX)
		j->count = IPMI_EVENTS_MAX;
	j->done = done;
	j->ud = ud;
	j->power = SB_POWER_UNKNOWN;
	/* The deadline counts from now: time spent queued behind other BMCs
	 * is part of what the caller waits. */
	j->deadline = sb_now_ms() + b->c.request_ms;
	b->refs++;
	j->bnext = b->jobs;
	if (b->jobs != NULL)
		b->jobs->bprev = j;
	b->jobs = j;
	if ((rc = pool_submit(j)) < 0) {
		bmc_unlink(b, j);
		job_free(j);
		b->refs--;
		return rc;
	}
	return 0;
}

/*
 * Pending requests are answered with an error now.  A queued job is taken
 * out of the queue; a running one cannot be stopped mid-exchange, so it is
 * marked and its result dropped when it comes back (it holds a reference
 * to what it reads).
 */
static void
ipmi_close(struct sb_hal *hal)
{
	struct ipmi_bmc *b = hal->priv;
	struct sb_hal_result res = { .status = -ECANCELED, .power = SB_POWER_UNKNOWN,
	    .error = "the node was closed while a BMC request was pending" };
	struct ipmi_job *j, *next;

	for (j = b->jobs; j != NULL; j = next) {
		int removed = 0;

		next = j->bnext;
		if (j->cancelled)
			continue;
		pthread_mutex_lock(&pool.mu);
		if (j->state == IPMI_JOB_QUEUED)
			removed = queue_remove(&pool.hi, &pool.hi_tail, j) ||
			    queue_remove(&pool.lo, &pool.lo_tail, j);
		pthread_mutex_unlock(&pool.mu);
		j->cancelled = 1;
		j->done(hal, &res, j->ud);
		if (removed) {
			bmc_unlink(b, j);
			job_free(j);
			b->refs--;	/* never the last: the instance holds one */
		}
	}
	b->hal = NULL;
	hal->priv = NULL;
	bmc_unref(b);
}

const struct sb_hal_backend sb_hal_ipmi = {
	.name = "ipmi",
	.abi = SB_HAL_ABI,
	.caps = SB_HAL_SENSORS | SB_HAL_POWER | SB_HAL_EVENTS | SB_HAL_INVENTORY,
	.keys = ipmi_keys,
	.open = ipmi_open,
	.request = ipmi_request,
	.close = ipmi_close,
};
