/*
 * test_notify.c: unit tests for core/notify.c: deduplication, resolution,
 * grouping, delivery results (done, pending, later, never), the retry
 * backoff, escalation and the spool across a stop and a start.
 *
 * The real loop, store (a private folder) and notifier; a fake channel
 * driver "pager" whose deliver() records each notice and answers what the
 * test says; a C router in place of the dialplan.  Nothing sleeps: the
 * loop runs until what is awaited happens, or a deadline passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libconfig.h>
#include <sqlite3.h>

#include "channel.h"
#include "core.h"
#include "loop.h"
#include "notify.h"
#include "store.h"

#define DEADLINE_MS 10000

/* ---- the fake channel ---------------------------------------------------- */

struct got {
	uint64_t id;
	char   *to, *text, *json;
	unsigned attempt;
};

static struct got got[256];
static size_t ngot;
static int answer = SB_SEND_DONE;	/* what deliver() says */

static int
fake_deliver(struct sb_channel *ch, const struct sb_notice *n)
{
	(void)ch;
	if (ngot == sizeof(got) / sizeof(got[0]))
		fail_msg("too many notices");
	got[ngot].id = n->id;
	got[ngot].to = strdup(n->to ? n->to : "");
	got[ngot].text = strdup(n->text);
	got[ngot].json = strdup(n->json ? n->json : "");
	got[ngot].attempt = n->attempt;
	ngot++;
	return answer;
}

static const struct sb_channel_driver fake_driver = {
	.name = "fake",
	.abi = SB_CHANNEL_ABI,
	.deliver = fake_deliver,
};

static char pager_name[] = "pager";
static struct sb_channel pager = { .drv = &fake_driver, .name = pager_name, .started = 1 };

static void
got_clear(void)
{
	for (size_t i = 0; i < ngot; i++) {
		free(got[i].to);
		free(got[i].text);
		free(got[i].json);
	}
	ngot = 0;
}

/* ---- the router: every event to pager:ops; critical ones escalate ------ */

static double esc_after = 0;	/* 0: no escalation tier */

static int
route(const struct sb_event_view *ev, struct sb_route_plan *plan, void *ud)
{
	(void)ud;
	sb_route_plan_add(plan, "pager:ops", 0, 0);
	if (esc_after > 0 && strcmp(ev->severity, "critical") == 0)
		sb_route_plan_add(plan, "pager:boss", 1, esc_after);
	return 0;
}

/* ---- fixture -------------------------------------------------------------- */

static char dir[64];
static struct sb_notify_stats base;	/* counters run for the process: compare deltas */

static int
start(const char *settings)
{
	config_t cf;
	char err[512] = "";
	int rc;

	config_init(&cf);
	if (config_read_string(&cf, settings) != CONFIG_TRUE)
		fail_msg("bad settings: %s", config_error_text(&cf));
	rc = sb_notify_apply(config_lookup(&cf, "notify"), err, sizeof(err));
	config_destroy(&cf);
	if (rc < 0 || sb_notify_start(dir, err, sizeof(err)) < 0)
		fail_msg("start: %s", err);
	sb_notify_set_router(route, NULL);
	sb_notify_go();
	sb_notify_stats(&base);
	return 0;
}

/* The counters since start(). */
static void
stats(struct sb_notify_stats *st)
{
	sb_notify_stats(st);
	st->events -= base.events;
	st->deduplicated -= base.deduplicated;
	st->delivered -= base.delivered;
	st->retries -= base.retries;
	st->failed -= base.failed;
	st->escalations -= base.escalations;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sb-notify-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	sb_core.loop = sb_loop_new();
	if (sb_channel_register(&pager) < 0)
		return -1;
	answer = SB_SEND_DONE;
	esc_after = 0;
	got_clear();
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	sb_notify_stop();
	sb_channel_unregister(&pager);
	sb_loop_free(sb_core.loop);
	sb_core.loop = NULL;
	got_clear();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

static void
run_until(int (*pred)(void), const char *what)
{
	uint64_t deadline = sb_now_ms() + DEADLINE_MS;

	while (!pred()) {
		if (sb_now_ms() > deadline)
			fail_msg("timed out waiting for %s", what);
		sb_loop_once(sb_core.loop, 20);
	}
}

static size_t want_got;
static int
enough_got(void)
{
	return ngot >= want_got;
}

static void
wait_got(size_t n)
{
	want_got = n;
	run_until(enough_got, "notices");
}

/* Turn the loop a few times (commits, routing, zero timers). */
static void
settle(void)
{
	for (int i = 0; i < 5; i++)
		sb_loop_once(sb_core.loop, 0);
}

static int64_t
event(const char *key, const char *sev, const char *text, int resolved)
{
	struct sb_event_in in = { .source = "test", .node = "web", .severity = sev,
	    .text = text, .key = key, .resolved = resolved };

	return sb_event_submit(&in, NULL, NULL);
}

static long long
spool_rows(void)
{
	sqlite3_stmt *s;
	long long n = -1;

	sb_store_commit();
	sqlite3_prepare_v2(sb_store_db(), "SELECT count(*) FROM spool", -1, &s, NULL);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_dedup_and_resolution(void **state)
{
	struct sb_notify_stats st;
	int64_t a, b, c, d;

	(void)state;
	start("notify = { group_wait = 0.0; };");
	a = event("disk", "critical", "disk full", 0);
	assert_true(a > 0);
	b = event("disk", "critical", "disk still full", 0);
	assert_int_equal(b, 0);				/* a repeat: dropped */
	c = event("disk", "warning", "disk 90 %", 0);	/* another severity: new */
	assert_true(c > a);
	d = event("disk", "info", "disk fine", 1);
	assert_true(d > c);
	wait_got(3);
	assert_non_null(strstr(got[0].text, "disk full"));
	assert_non_null(strstr(got[1].text, "disk 90 %"));
	{
		char want[64];

		snprintf(want, sizeof(want), "disk fine (resolves E%lld)", (long long)c);
		assert_non_null(strstr(got[2].text, want));
	}
	stats(&st);
	assert_int_equal(st.deduplicated, 1);
	assert_int_equal(st.open_events, 0);
	assert_int_equal(st.events, 3);
	/* Every notice is JSON too, with its id and its events. */
	assert_non_null(strstr(got[0].json, "\"events\""));
	assert_non_null(strstr(got[0].json, "\"severity\":\"critical\""));
	assert_string_equal(got[0].to, "ops");
}

static void
test_group_window_makes_one_message(void **state)
{
	(void)state;
	start("notify = { group_wait = 0.3; group_max = 5.0; };");
	for (int i = 0; i < 5; i++) {
		char key[16], text[32];

		snprintf(key, sizeof(key), "k%d", i);
		snprintf(text, sizeof(text), "problem %d", i);
		assert_true(event(key, "warning", text, 0) > 0);
	}
	wait_got(1);
	settle();
	assert_int_equal(ngot, 1);
	assert_true(strncmp(got[0].text, "5 events:\n", 10) == 0);
	assert_non_null(strstr(got[0].text, "problem 0"));
	assert_non_null(strstr(got[0].text, "problem 4"));
	assert_int_equal(spool_rows(), 0);		/* delivered: gone */
}

static int
retried(void)
{
	return ngot >= 2;
}

static void
test_later_is_retried_with_the_same_id(void **state)
{
	struct sb_notify_stats st;

	(void)state;
	start("notify = { group_wait = 0.0; retry_min = 0.1; retry_max = 0.2; };");
	answer = SB_SEND_LATER;
	event("x", "warning", "try again", 0);
	wait_got(1);
	assert_int_equal(spool_rows(), 1);		/* kept while not delivered */
	answer = SB_SEND_DONE;
	run_until(retried, "the retry");
	assert_int_equal(got[1].id, got[0].id);
	assert_int_equal(got[1].attempt, 2);
	assert_string_equal(got[1].text, got[0].text);
	assert_int_equal(spool_rows(), 0);
	stats(&st);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.delivered, 1);
}

static void
test_pending_then_result(void **state)
{
	struct sb_notify_stats st;

	(void)state;
	start("notify = { group_wait = 0.0; };");
	answer = SB_SEND_PENDING;
	event("p", "warning", "waiting for the ping", 0);
	wait_got(1);
	settle();
	assert_int_equal(spool_rows(), 1);		/* not confirmed yet */
	sb_notice_result(got[0].id, SB_SEND_DONE);
	settle();
	assert_int_equal(spool_rows(), 0);
	sb_notice_result(got[0].id, SB_SEND_DONE);	/* a stray second answer */
	sb_notice_result(424242, SB_SEND_DONE);		/* an id nobody waits for */
	stats(&st);
	assert_int_equal(st.delivered, 1);
}

static void
test_fail_drops_and_counts(void **state)
{
	struct sb_notify_stats st;

	(void)state;
	start("notify = { group_wait = 0.0; };");
	answer = SB_SEND_FAIL;
	event("f", "warning", "nobody there", 0);
	wait_got(1);
	settle();
	assert_int_equal(spool_rows(), 0);
	stats(&st);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.delivered, 0);
}

static int
escalated(void)
{
	for (size_t i = 0; i < ngot; i++)
		if (strcmp(got[i].to, "boss") == 0)
			return 1;
	return 0;
}

static void
test_escalation_and_resolution_stops_it(void **state)
{
	struct sb_notify_stats st;
	size_t before;

	(void)state;
	esc_after = 0.3;
	start("notify = { group_wait = 0.0; };");
	event("hot", "critical", "cpu 95 C", 0);
	run_until(escalated, "the escalation");
	assert_string_equal(got[0].to, "ops");
	assert_non_null(strstr(got[ngot - 1].text, "escalated (unacknowledged for"));
	stats(&st);
	assert_int_equal(st.escalations, 1);
	/* A warning does not escalate; a resolved critical stops at once. */
	esc_after = 0.3;
	event("warm", "warning", "cpu 86 C", 0);
	event("hot2", "critical", "cpu 96 C", 0);
	event("hot2", "info", "cpu 40 C", 1);
	wait_got(ngot + 3);
	before = ngot;
	/* Another critical whose escalation is a barrier past hot2's. */
	event("hot3", "critical", "cpu 97 C", 0);
	want_got = before + 2;
	run_until(enough_got, "hot3 and its escalation");
	for (size_t i = before; i < ngot; i++)
		assert_null(strstr(got[i].text, "cpu 96 C"));
	for (size_t i = 0; i < ngot; i++)
		if (strstr(got[i].text, "cpu 86 C"))
			assert_string_equal(got[i].to, "ops");
}

static void
test_spool_survives_a_restart(void **state)
{
	uint64_t id;
	size_t n;

	(void)state;
	start("notify = { group_wait = 0.0; };");
	answer = SB_SEND_LATER;
	event("r", "critical", "while the pager is away", 0);
	wait_got(1);
	id = got[0].id;
	sb_notify_stop();			/* the spool keeps it */
	answer = SB_SEND_DONE;
	n = ngot;
	start("notify = { group_wait = 0.0; };");
	wait_got(n + 1);
	assert_int_equal(got[n].id, id);		/* the same id, after a restart */
	assert_string_equal(got[n].text, got[0].text);
	settle();
	assert_int_equal(spool_rows(), 0);
}

static void
test_settings_are_checked(void **state)
{
	config_t cf;
	char err[256] = "";

	(void)state;
	config_init(&cf);
	assert_int_equal(config_read_string(&cf, "notify = { group_wait = 10.0; group_max = 5.0; };"),
	    CONFIG_TRUE);
	assert_int_equal(sb_notify_apply(config_lookup(&cf, "notify"), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "group_max"));
	config_destroy(&cf);
	config_init(&cf);
	assert_int_equal(config_read_string(&cf, "notify = { retry_min = 0.0; };"), CONFIG_TRUE);
	assert_int_equal(sb_notify_apply(config_lookup(&cf, "notify"), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "retry_min"));
	config_destroy(&cf);
	/* The defaults, for the tests that follow. */
	assert_int_equal(sb_notify_apply(NULL, err, sizeof(err)), 0);
	start("notify = { group_wait = 0.0; };");
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_dedup_and_resolution),
		T(test_group_window_makes_one_message),
		T(test_later_is_retried_with_the_same_id),
		T(test_pending_then_result),
		T(test_fail_drops_and_counts),
		T(test_escalation_and_resolution_stops_it),
		T(test_spool_survives_a_restart),
		T(test_settings_are_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
