/*
 * op.c: the benchmark's operator, an XMPP client on libstrophe.  The same
 * client measures switchboard and the echo baseline, so whatever it costs
 * is in both figures.  It logs in, sends its initial presence, records the
 * first available presence of every contact (CLOCK_MONOTONIC, the clock
 * Python's time.monotonic() reads), and obeys one command per line on
 * stdin, answering each with one JSON line on stdout:
 *
 *   lat JID N BODY        N messages one at a time: round-trip percentiles
 *                         and every round trip (ms, sorted)
 *   tput JID N K BODY     N messages, K in flight: replies per second
 *   seen JID              when JID's first available presence came
 *   count DOMAIN N SECS   when N JIDs of DOMAIN had been seen available
 *   forget                forget every presence seen (count starts again)
 *   next JID TEXT SECS    answers {"armed":1} at once, then when the next
 *                         available presence from JID whose status holds
 *                         TEXT ("-": any) comes
 *   quit
 *
 * usage: op JID PASSWORD PORT
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <strophe.h>

#define MAXSEEN	(1 << 15)	/* open addressing: twice the largest farm */

static xmpp_ctx_t *ctx;
static xmpp_conn_t *conn;
static int online, failed;

/* First available presence of each bare JID. */
static struct seen {
	char   *jid;
	double  t;
} seen[MAXSEEN];
static size_t nseen;

/* The command running. */
static enum { IDLE, LAT, TPUT, CHANGE } mode;
static char target[512], body[512], want[256];
static long total, sent, got, inflight;
static double *rtt, t_send, t_start, deadline;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
bare(const char *jid, char *out, size_t len)
{
	snprintf(out, len, "%s", jid ? jid : "");
	out[strcspn(out, "/")] = '\0';
}

static struct seen *
seen_slot(const char *jid)
{
	unsigned h = 2166136261u;

	for (const char *s = jid; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	for (size_t i = h % MAXSEEN;; i = (i + 1) % MAXSEEN)
		if (seen[i].jid == NULL || strcmp(seen[i].jid, jid) == 0)
			return &seen[i];
}

static void
send_one(void)
{
	xmpp_stanza_t *m;
	char id[32];

	snprintf(id, sizeof(id), "b%ld", sent);
	m = xmpp_message_new(ctx, "chat", target, id);
	xmpp_message_set_body(m, body);
	xmpp_send(conn, m);
	xmpp_stanza_release(m);
	sent++;
	inflight++;
	t_send = now();
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, long n, double p)
{
	long i = (long)(p * n + 0.5) - 1;

	return v[i < 0 ? 0 : i >= n ? n - 1 : i] * 1000;
}

static void
finish(void)
{
	if (mode == LAT) {
		qsort(rtt, total, sizeof(double), cmp_double);
		printf("{\"n\":%ld,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"ms\":[",
		    total, pct(rtt, total, .5), pct(rtt, total, .9), pct(rtt, total, .99),
		    rtt[total - 1] * 1000);
		for (long i = 0; i < total; i++)	/* every round trip, for merging */
			printf("%s%.3f", i ? "," : "", rtt[i] * 1000);
		printf("]}\n");
		free(rtt);
		rtt = NULL;
	} else if (mode == TPUT) {
		double dt = now() - t_start;

		printf("{\"n\":%ld,\"seconds\":%.4f,\"per_s\":%.1f}\n", total, dt, total / dt);
	}
	fflush(stdout);
	mode = IDLE;
}

static int
on_message(xmpp_conn_t *c, xmpp_stanza_t *st, void *ud)
{
	char from[512];
	const char *type = xmpp_stanza_get_type(st);

	(void)c;
	(void)ud;
	if (type && strcmp(type, "error") == 0)
		return 1;
	bare(xmpp_stanza_get_from(st), from, sizeof(from));
	if ((mode != LAT && mode != TPUT) || strcmp(from, target) != 0)
		return 1;
	if (mode == LAT)
		rtt[got] = now() - t_send;
	got++;
	inflight--;
	if (got == total) {
		finish();
		return 1;
	}
	if (sent < total && (mode == TPUT || inflight == 0))
		send_one();
	return 1;
}

static int
on_presence(xmpp_conn_t *c, xmpp_stanza_t *st, void *ud)
{
	char from[512];
	const char *type = xmpp_stanza_get_type(st);
	xmpp_stanza_t *s;
	struct seen *e;
	double t = now();

	(void)c;
	(void)ud;
	if (type && strcmp(type, "unavailable") != 0)
		return 1;	/* subscriptions, errors, probes */
	bare(xmpp_stanza_get_from(st), from, sizeof(from));
	if (type == NULL && nseen < MAXSEEN / 2 && (e = seen_slot(from))->jid == NULL) {
		e->jid = strdup(from);
		e->t = t;
		nseen++;
	}
	if (mode == CHANGE && type == NULL && strcmp(from, target) == 0) {
		char *text = NULL;

		if ((s = xmpp_stanza_get_child_by_name(st, "status")) != NULL)
			text = xmpp_stanza_get_text(s);
		if (strcmp(want, "-") == 0 || (text && strstr(text, want))) {
			printf("{\"t\":%.6f}\n", t);
			fflush(stdout);
			mode = IDLE;
		}
		if (text)
			xmpp_free(ctx, text);
	}
	return 1;
}

static int
nodelay(xmpp_conn_t *c, void *sock)
{
	int one = 1;

	(void)c;
	setsockopt(*(int *)sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static void
on_conn(xmpp_conn_t *c, xmpp_conn_event_t status, int error, xmpp_stream_error_t *se,
        void *ud)
{
	xmpp_stanza_t *p;

	(void)error;
	(void)se;
	(void)ud;
	if (status != XMPP_CONN_CONNECT) {
		failed = 1;
		return;
	}
	xmpp_handler_add(c, on_message, NULL, "message", NULL, NULL);
	xmpp_handler_add(c, on_presence, NULL, "presence", NULL, NULL);
	p = xmpp_presence_new(ctx);
	xmpp_send(c, p);
	xmpp_stanza_release(p);
	online = 1;
}

/* count DOMAIN N: how many seen JIDs end in @DOMAIN, and the latest time. */
static long
count_domain(const char *domain, double *first, double *last)
{
	size_t dl = strlen(domain);
	long n = 0;

	*first = 1e18;
	*last = 0;
	for (size_t i = 0; i < MAXSEEN; i++) {
		const char *j = seen[i].jid, *at;

		if (j == NULL || (at = strchr(j, '@')) == NULL || strlen(at + 1) != dl ||
		    strcmp(at + 1, domain) != 0)
			continue;
		n++;
		if (seen[i].t < *first)
			*first = seen[i].t;
		if (seen[i].t > *last)
			*last = seen[i].t;
	}
	return n;
}

/* One command line; blocking ones leave mode set and answer later. */
static void
command(char *line)
{
	char a[512], b[256];
	long n, k;
	double secs;

	if (sscanf(line, "lat %511s %ld %255[^\n]", a, &n, b) == 3 && n > 0) {
		snprintf(target, sizeof(target), "%s", a);
		snprintf(body, sizeof(body), "%s", b);
		total = n;
		sent = got = inflight = 0;
		rtt = calloc(n, sizeof(double));
		mode = LAT;
		send_one();
	} else if (sscanf(line, "tput %511s %ld %ld %255[^\n]", a, &n, &k, b) == 4 && n > 0) {
		snprintf(target, sizeof(target), "%s", a);
		snprintf(body, sizeof(body), "%s", b);
		total = n;
		sent = got = inflight = 0;
		mode = TPUT;
		t_start = now();
		while (sent < total && inflight < k)
			send_one();
	} else if (sscanf(line, "seen %511s %lf", a, &secs) == 2) {
		struct seen *e;

		deadline = now() + secs;
		while ((e = seen_slot(a))->jid == NULL && now() < deadline && !failed)
			xmpp_run_once(ctx, 1);
		printf("{\"t\":%.6f}\n", e->jid ? e->t : -1.0);
		fflush(stdout);
	} else if (sscanf(line, "count %511s %ld %lf", a, &n, &secs) == 3) {
		double first, last;
		long c = 0;

		deadline = now() + secs;
		while ((c = count_domain(a, &first, &last)) < n && now() < deadline && !failed) {
			double stop = now() + 0.05;

			while (now() < stop)
				xmpp_run_once(ctx, 1);
		}
		printf("{\"n\":%ld,\"first\":%.6f,\"last\":%.6f}\n", c, first, last);
		fflush(stdout);
	} else if (sscanf(line, "next %511s %255s %lf", a, b, &secs) == 3) {
		snprintf(target, sizeof(target), "%s", a);
		snprintf(want, sizeof(want), "%s", b);
		deadline = now() + secs;
		mode = CHANGE;
		printf("{\"armed\":1}\n");
		fflush(stdout);
	} else if (strncmp(line, "forget", 6) == 0) {
		for (size_t i = 0; i < MAXSEEN; i++) {
			free(seen[i].jid);
			seen[i].jid = NULL;
		}
		nseen = 0;
		printf("{\"forgot\":1}\n");
		fflush(stdout);
	} else if (strncmp(line, "quit", 4) == 0) {
		xmpp_disconnect(conn);
		for (int i = 0; i < 200 && !xmpp_conn_is_disconnected(conn); i++)
			xmpp_run_once(ctx, 5);
		exit(0);
	} else {
		printf("{\"error\":\"bad command\"}\n");
		fflush(stdout);
	}
}

int
main(int argc, char **argv)
{
	char buf[4096];
	size_t have = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: op JID PASSWORD PORT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	xmpp_initialize();
	ctx = xmpp_ctx_new(NULL, NULL);
	conn = xmpp_conn_new(ctx);
	xmpp_conn_set_jid(conn, argv[1]);
	xmpp_conn_set_pass(conn, argv[2]);
	xmpp_conn_set_flags(conn, XMPP_CONN_FLAG_TRUST_TLS);	/* the lab's own certificate */
	xmpp_conn_set_sockopt_callback(conn, nodelay);
	if (xmpp_connect_client(conn, "127.0.0.1", (unsigned short)atoi(argv[3]), on_conn,
	    NULL) != XMPP_EOK)
		return 1;
	while (!online && !failed)
		xmpp_run_once(ctx, 10);
	if (failed)
		return 1;
	printf("{\"ready\":%.6f}\n", now());
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	while (!failed) {
		ssize_t r;
		char *nl;

		/* A short wait: the socket is what matters; stdin is only
		 * looked at between turns. */
		xmpp_run_once(ctx, 1);
		if (mode == CHANGE && now() > deadline) {
			printf("{\"t\":-1}\n");
			fflush(stdout);
			mode = IDLE;
		}
		if (mode != IDLE)
			continue;
		r = read(0, buf + have, sizeof(buf) - 1 - have);
		if (r == 0)
			break;
		if (r < 0 && errno != EAGAIN)
			break;
		if (r > 0)
			have += r;
		while ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t len = nl - buf + 1;

			*nl = '\0';
			command(buf);
			memmove(buf, buf + len, have - len);
			have -= len;
			if (mode != IDLE)
				break;
		}
	}
	return failed;
}
