/*
 * test_chan_http.c: unit tests for the HTTP channel's pure parts:
 * channels/http_auth.c (SHA-256 and HMAC-SHA256 against RFC 4231's
 * vectors, constant-time comparison, signature headers, bearer tokens),
 * channels/http_hooks.c (Alertmanager, Grafana and generic payloads to
 * events, deduplication by fingerprint), channels/http_out.c (request
 * bodies, retry rules, backoff), channels/http_lua.c (payloads and
 * requests as Lua tables, bounded) and channels/http_render.c (Prometheus
 * label escaping).  No socket, loop or daemon is involved; the end-to-end
 * test (tests/e2e/test_http.py) covers those.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "http_auth.h"
#include "http_hooks.h"
#include "http_lua.h"
#include "http_out.h"
#include "http_render.h"
#include "util.h"

/* ---- helpers ---- */

static void
unhex(const char *hex, unsigned char *out, size_t *len)
{
	*len = strlen(hex) / 2;
	assert_int_equal(http_hex_decode(hex, out, *len), 0);
}

static void
assert_hex(const unsigned char *d, size_t len, const char *want)
{
	char got[2 * 64 + 1];

	assert_true(len <= 64);
	http_hex_encode(d, len, got);
	assert_string_equal(got, want);
}

static json_t *
parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (j == NULL)
		fail_msg("test JSON does not parse: %s (line %d)", e.text, e.line);
	return j;
}

static int
known(const char *name, void *ud)
{
	static const char *const nodes[] = { "ftp", "web", "mail", "db", NULL };

	(void)ud;
	for (size_t i = 0; nodes[i]; i++)
		if (strcmp(nodes[i], name) == 0)
			return 1;
	return 0;
}

/* Adapt text; returns the adapter's result, events in *ev. */
static int
adapt(enum http_hook_format f, const char *hook, const char *text, struct http_dedup *d,
      struct http_events *ev, char *err, size_t errlen)
{
	json_t *j = parse(text);
	int rc;

	memset(ev, 0, sizeof(*ev));
	err[0] = '\0';
	rc = http_hook_adapt(f, hook, j, d, known, NULL, ev, err, errlen);
	json_decref(j);
	return rc;
}

/* ---- SHA-256, HMAC (RFC 4231) ---- */

static void
test_sha256_known_answers(void **state)
{
	unsigned char d[HTTP_SHA256_LEN];

	(void)state;
	http_sha256("", 0, d);
	assert_hex(d, sizeof(d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	http_sha256("abc", 3, d);
	assert_hex(d, sizeof(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_hmac_rfc4231(void **state)
{
	/* RFC 4231, section 4: test cases 1-4, 6 and 7 (case 5 is a
	 * truncated output, which we never use). */
	static const struct {
		const char *key_hex, *data, *data_hex, *mac;
	} cases[] = {
		{ "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There", NULL,
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ "4a656665", "what do ya want for nothing?", NULL,
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL,
		  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
		  "dddddddddddddddddddddddd",
		  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
		{ "0102030405060708090a0b0c0d0e0f10111213141516171819", NULL,
		  "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
		  "cdcdcdcdcdcdcdcdcdcdcdcd",
		  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
		{ NULL, "Test Using Larger Than Block-Size Key - Hash Key First", NULL,
		  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
		{ NULL, "This is a test using a larger than block-size key and a larger than "
		  "block-size data. The key needs to be hashed before being used by the HMAC "
		  "algorithm.", NULL,
		  "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
	};

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
		unsigned char key[256], data[256], mac[HTTP_SHA256_LEN];
		size_t klen, dlen;

		if (cases[i].key_hex) {
			unhex(cases[i].key_hex, key, &klen);
		} else {
			klen = 131;	/* cases 6 and 7: 131 bytes of 0xaa */
			memset(key, 0xaa, klen);
		}
		if (cases[i].data_hex) {
			unhex(cases[i].data_hex, data, &dlen);
		} else {
			dlen = strlen(cases[i].data);
			memcpy(data, cases[i].data, dlen);
		}
		http_hmac_sha256(key, klen, data, dlen, mac);
		assert_hex(mac, sizeof(mac), cases[i].mac);
	}
}

static void
test_ct_equal(void **state)
{
	(void)state;
	assert_true(http_ct_equal("abcdef", "abcdef", 6));
	assert_false(http_ct_equal("abcdef", "abcdeg", 6));
	assert_false(http_ct_equal("xbcdef", "abcdef", 6));
	assert_true(http_ct_equal("", "", 0));
}

static void
test_hex_decode_rejects(void **state)
{
	unsigned char b[2];

	(void)state;
	assert_int_equal(http_hex_decode("0aFF", b, 2), 0);
	assert_int_equal(b[0], 0x0a);
	assert_int_equal(b[1], 0xff);
	assert_int_equal(http_hex_decode("0aF", b, 2), -1);	/* short */
	assert_int_equal(http_hex_decode("0aFFF0", b, 2), -1);	/* long */
	assert_int_equal(http_hex_decode("0aFg", b, 2), -1);	/* not hex */
}

static void
test_hmac_check_header_forms(void **state)
{
	static const char secret[] = "a-webhook-secret-of-some-length";
	static const char body[] = "{\"status\":\"firing\"}";
	unsigned char mac[HTTP_SHA256_LEN];
	char hex[2 * HTTP_SHA256_LEN + 1], header[100];

	(void)state;
	http_hmac_sha256(secret, strlen(secret), body, strlen(body), mac);
	http_hex_encode(mac, sizeof(mac), hex);
	assert_true(http_hmac_check(secret, body, strlen(body), hex));
	snprintf(header, sizeof(header), "sha256=%s", hex);
	assert_true(http_hmac_check(secret, body, strlen(body), header));
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	assert_true(http_hmac_check(secret, body, strlen(body), hex));	/* upper case */
	/* One bit off in the body, the secret or the signature: refused. */
	assert_false(http_hmac_check(secret, body, strlen(body) - 1, hex));
	assert_false(http_hmac_check("another-secret-entirely", body, strlen(body), hex));
	hex[5] = hex[5] == '0' ? '1' : '0';
	assert_false(http_hmac_check(secret, body, strlen(body), hex));
	assert_false(http_hmac_check(secret, body, strlen(body), "sha256=abc"));
	assert_false(http_hmac_check(secret, body, strlen(body), ""));
	assert_false(http_hmac_check(secret, body, strlen(body), NULL));
}

static void
test_bearer_parsing(void **state)
{
	(void)state;
	assert_string_equal(http_bearer("Bearer abc.def"), "abc.def");
	assert_string_equal(http_bearer("bearer   xyz"), "xyz");
	assert_string_equal(http_bearer("  BEARER\tq"), "q");
	assert_null(http_bearer("Basic dXNlcjpwdw=="));
	assert_null(http_bearer("Bearer"));
	assert_null(http_bearer("Bearer   "));
	assert_null(http_bearer("Bearerabc"));
	assert_null(http_bearer(NULL));
}

static void
test_token_match_checks_all(void **state)
{
	struct http_token t[3] = { { .name = "ci" }, { .name = "grafana" }, { .name = "ops" } };

	(void)state;
	http_sha256("token-of-the-ci-robot", 21, t[0].digest);
	http_sha256("token-of-grafana-12345", 22, t[1].digest);
	http_sha256("token-of-ops-people-99", 22, t[2].digest);
	assert_int_equal(http_token_match(t, 3, "token-of-the-ci-robot"), 0);
	assert_int_equal(http_token_match(t, 3, "token-of-grafana-12345"), 1);
	assert_int_equal(http_token_match(t, 3, "token-of-ops-people-99"), 2);
	assert_int_equal(http_token_match(t, 3, "token-of-ops-people-9"), -1);	/* a prefix */
	assert_int_equal(http_token_match(t, 3, "token-of-ops-people-999"), -1);
	assert_int_equal(http_token_match(t, 3, ""), -1);
	assert_int_equal(http_token_match(t, 3, NULL), -1);
	assert_int_equal(http_token_match(t, 0, "token-of-the-ci-robot"), -1);
}

/* ---- Alertmanager ---- */

/* A real Alertmanager webhook (version 4), two alerts of one group. */
static const char am_firing[] =
    "{\"receiver\":\"switchboard\",\"status\":\"firing\",\"alerts\":["
    "{\"status\":\"firing\",\"labels\":{\"alertname\":\"HighCPUTemp\",\"instance\":\"web:9100\","
    "\"job\":\"node\",\"severity\":\"critical\"},\"annotations\":{\"summary\":\"CPU at 95 C\"},"
    "\"startsAt\":\"2024-05-01T10:00:00Z\",\"endsAt\":\"0001-01-01T00:00:00Z\","
    "\"generatorURL\":\"http://prometheus/graph\",\"fingerprint\":\"aaaa000000000001\"},"
    "{\"status\":\"firing\",\"labels\":{\"alertname\":\"HighCPUTemp\",\"instance\":\"mail:9100\","
    "\"job\":\"node\",\"severity\":\"warning\"},\"annotations\":{\"summary\":\"CPU at 86 C\"},"
    "\"startsAt\":\"2024-05-01T10:00:05Z\",\"endsAt\":\"0001-01-01T00:00:00Z\","
    "\"generatorURL\":\"http://prometheus/graph\",\"fingerprint\":\"aaaa000000000002\"}],"
    "\"groupLabels\":{\"alertname\":\"HighCPUTemp\",\"job\":\"node\"},"
    "\"commonLabels\":{\"alertname\":\"HighCPUTemp\",\"job\":\"node\"},"
    "\"commonAnnotations\":{},\"externalURL\":\"http://alertmanager:9093\","
    "\"version\":\"4\",\"groupKey\":\"{}:{alertname=\\\"HighCPUTemp\\\"}\",\"truncatedAlerts\":0}";

static void
test_alertmanager_group_is_one_event(void **state)
{
	struct http_dedup *d = http_dedup_new(100);
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", am_firing, d, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].severity, "critical");	/* the worst of the two */
	assert_null(ev.v[0].node);				/* two nodes */
	assert_string_equal(ev.v[0].text,
	    "am: [FIRING:2] HighCPUTemp (job=node): "
	    "web: CPU at 95 C [critical]; "
	    "mail: CPU at 86 C [warning]");
	http_events_free(&ev);
	http_dedup_free(d);
}

/* A copy of s with every from replaced by to; the caller frees it. */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	struct sb_buf b = { 0 };
	size_t n = strlen(from);

	while (*s) {
		if (strncmp(s, from, n) == 0) {
			sb_buf_puts(&b, to);
			s += n;
		} else {
			sb_buf_add(&b, s++, 1);
		}
	}
	return sb_buf_steal(&b);
}

static void
test_alertmanager_repeat_is_silent_then_resolved(void **state)
{
	struct http_dedup *d = http_dedup_new(100);
	char *resolved = replace_all(am_firing, "\"firing\"", "\"resolved\"");
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", am_firing, d, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].key, "am:aaaa000000000001,aaaa000000000002");
	assert_false(ev.v[0].resolved);
	http_events_free(&ev);
	/* The repeat interval sends the same group again: nothing new. */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", am_firing, d, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 0);
	/* Both resolved at once: one message. */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", resolved, d, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].severity, "critical");	/* heard by whoever was paged */
	assert_string_equal(ev.v[0].text,
	    "am: [RESOLVED:2] HighCPUTemp (job=node): web: CPU at 95 C; mail: CPU at 86 C");
	/* The same key as the firing event's: it resolves that event. */
	assert_string_equal(ev.v[0].key, "am:aaaa000000000001,aaaa000000000002");
	assert_true(ev.v[0].resolved);
	http_events_free(&ev);
	/* ... and resolved again is silent too. */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", resolved, d, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 0);
	free(resolved);
	/* Another hook has its own memory. */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am2", am_firing, d, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	http_events_free(&ev);
	http_dedup_free(d);
}

static void
test_alertmanager_single_node_and_mixed_status(void **state)
{
	static const char mixed[] =
	    "{\"version\":\"4\",\"status\":\"firing\",\"alerts\":["
	    "{\"status\":\"firing\",\"labels\":{\"alertname\":\"FanSlow\",\"node\":\"db\"},"
	    "\"annotations\":{\"description\":\"fan1 at 300 RPM\"},\"fingerprint\":\"f1\"},"
	    "{\"status\":\"resolved\",\"labels\":{\"alertname\":\"DiskFull\",\"host\":\"db\","
	    "\"severity\":\"page\"},\"annotations\":{},\"fingerprint\":\"f2\"}]}";
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", mixed, NULL, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.v[0].node, "db");
	assert_string_equal(ev.v[0].severity, "warning");	/* no label: warning */
	assert_string_equal(ev.v[0].text, "am: [FIRING:1] FanSlow: db: fan1 at 300 RPM [warning]");
	assert_string_equal(ev.v[1].node, "db");
	assert_string_equal(ev.v[1].severity, "critical");	/* "page" */
	assert_string_equal(ev.v[1].text, "am: [RESOLVED:1] DiskFull: db: DiskFull");
	http_events_free(&ev);
}

static void
test_alertmanager_unknown_instance_is_not_a_node(void **state)
{
	static const char other[] =
	    "{\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\","
	    "\"labels\":{\"alertname\":\"Up\",\"instance\":\"10.0.0.9:9100\"},\"annotations\":{}}]}";
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", other, NULL, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_null(ev.v[0].node);
	assert_string_equal(ev.v[0].text, "am: [FIRING:1] Up: 10.0.0.9:9100: Up [warning]");
	http_events_free(&ev);
}

static void
test_alertmanager_bad_shapes(void **state)
{
	struct http_dedup *d = http_dedup_new(100);
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", "[1,2]", d, &ev, err, sizeof(err)), -1);
	assert_string_equal(err, "the payload must be a JSON object");
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", "{\"alerts\":3}", d, &ev, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "'alerts' must be a list");
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", "{\"alerts\":[\"x\"]}", d, &ev, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "alerts[0] must be an object");
	/* A bad alert after a good one: refused whole, and nothing remembered,
	 * so the sender's retry is announced in full. */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am",
	    "{\"alerts\":[{\"status\":\"firing\",\"fingerprint\":\"x1\"},"
	    "{\"status\":\"burning\",\"fingerprint\":\"x2\"}]}", d, &ev, err, sizeof(err)), -1);
	assert_string_equal(err, "alerts[1]: status must be \"firing\" or \"resolved\"");
	assert_int_equal(http_dedup_size(d), 0);
	assert_int_equal(ev.n, 0);
	http_dedup_free(d);
}

static void
test_dedup_forgets_least_recent(void **state)
{
	static const char one[] = "{\"alerts\":[{\"status\":\"firing\",\"fingerprint\":\"%s\"}]}";
	struct http_dedup *d = http_dedup_new(2);
	struct http_events ev;
	char err[256], text[128];

	(void)state;
	snprintf(text, sizeof(text), one, "a");
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", text, d, &ev, err, sizeof(err)), 0);
	http_events_free(&ev);
	snprintf(text, sizeof(text), one, "b");
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", text, d, &ev, err, sizeof(err)), 0);
	http_events_free(&ev);
	snprintf(text, sizeof(text), one, "c");		/* evicts a */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", text, d, &ev, err, sizeof(err)), 0);
	http_events_free(&ev);
	assert_int_equal(http_dedup_size(d), 2);
	snprintf(text, sizeof(text), one, "b");		/* still known */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", text, d, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 0);
	snprintf(text, sizeof(text), one, "a");		/* forgotten: news again */
	assert_int_equal(adapt(HTTP_HOOK_ALERTMANAGER, "am", text, d, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	http_events_free(&ev);
	http_dedup_free(d);
}

/* ---- Grafana ---- */

static void
test_grafana_unified(void **state)
{
	/* Grafana 9+ unified alerting's webhook contact point. */
	static const char payload[] =
	    "{\"receiver\":\"sb\",\"status\":\"firing\",\"orgId\":1,\"alerts\":[{"
	    "\"status\":\"firing\",\"labels\":{\"alertname\":\"InletHot\",\"grafana_folder\":\"DC\","
	    "\"node\":\"ftp\",\"severity\":\"critical\"},\"annotations\":{\"summary\":\"inlet 41 C\"},"
	    "\"startsAt\":\"2024-05-01T10:00:00Z\",\"endsAt\":\"0001-01-01T00:00:00Z\","
	    "\"generatorURL\":\"http://grafana/alerting/grafana/x/view\",\"fingerprint\":\"9a1b\","
	    "\"silenceURL\":\"http://grafana/alerting/silence/new\",\"dashboardURL\":\"\","
	    "\"panelURL\":\"\",\"values\":{\"B\":41},\"valueString\":\"[ var='B' value=41 ]\"}],"
	    "\"groupLabels\":{\"alertname\":\"InletHot\"},\"commonLabels\":{\"alertname\":\"InletHot\"},"
	    "\"commonAnnotations\":{},\"externalURL\":\"http://grafana/\",\"version\":\"1\","
	    "\"groupKey\":\"{}:{alertname=\\\"InletHot\\\"}\",\"truncatedAlerts\":0,"
	    "\"title\":\"[FIRING:1] InletHot\",\"state\":\"alerting\",\"message\":\"...\"}";
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_GRAFANA, "grafana", payload, NULL, &ev, err,
	    sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].node, "ftp");
	assert_string_equal(ev.v[0].severity, "critical");
	assert_string_equal(ev.v[0].text, "grafana: [FIRING:1] InletHot: ftp: inlet 41 C [critical]");
	http_events_free(&ev);
}

static void
test_grafana_legacy(void **state)
{
	/* Grafana before 8: one rule per post. */
	static const char alerting[] =
	    "{\"title\":\"[Alerting] Fan speed\",\"ruleId\":7,\"ruleName\":\"Fan speed\","
	    "\"state\":\"alerting\",\"evalMatches\":[{\"value\":310,\"metric\":\"fan1\","
	    "\"tags\":{\"host\":\"db\"}}],\"message\":\"fan too slow\","
	    "\"ruleUrl\":\"http://grafana/d/x\",\"tags\":{}}";
	static const char ok[] =
	    "{\"title\":\"[OK] Fan speed\",\"ruleId\":7,\"ruleName\":\"Fan speed\","
	    "\"state\":\"ok\",\"evalMatches\":[],\"message\":\"\",\"tags\":{}}";
	struct http_dedup *d = http_dedup_new(10);
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_GRAFANA, "g", alerting, d, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].node, "db");
	assert_string_equal(ev.v[0].severity, "critical");
	assert_string_equal(ev.v[0].text, "g: [ALERTING] Fan speed: fan too slow; fan1 = 310");
	http_events_free(&ev);
	assert_int_equal(adapt(HTTP_HOOK_GRAFANA, "g", alerting, d, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 0);				/* same state again */
	assert_int_equal(adapt(HTTP_HOOK_GRAFANA, "g", ok, d, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].severity, "info");
	assert_string_equal(ev.v[0].text, "g: [OK] Fan speed");
	http_events_free(&ev);
	assert_int_equal(adapt(HTTP_HOOK_GRAFANA, "g", "{\"x\":1}", d, &ev, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'alerts'"));
	http_dedup_free(d);
}

/* ---- generic JSON ---- */

static void
test_generic_events(void **state)
{
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", "{\"node\":\"web\",\"severity\":\"warning\","
	    "\"text\":\"deploy failed\"}", NULL, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.v[0].node, "web");
	assert_string_equal(ev.v[0].severity, "warning");
	assert_string_equal(ev.v[0].text, "ci: web: deploy failed");
	http_events_free(&ev);

	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", "[{\"text\":\"one\"},{\"text\":\"two\","
	    "\"severity\":\"CRIT\",\"node\":null}]", NULL, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.n, 2);
	assert_null(ev.v[0].node);
	assert_string_equal(ev.v[0].severity, "info");
	assert_string_equal(ev.v[0].text, "ci: one");
	assert_string_equal(ev.v[1].severity, "critical");
	http_events_free(&ev);
}

static void
test_generic_refusals(void **state)
{
	static const struct {
		const char *payload, *err;
	} bad[] = {
		{ "{}", "the payload: 'text' must be a non-empty string" },
		{ "{\"text\":\"\"}", "the payload: 'text' must be a non-empty string" },
		{ "{\"text\":5}", "the payload: 'text' must be a non-empty string" },
		{ "{\"text\":\"x\",\"severity\":\"purple\"}",
		  "the payload: 'severity' must be info, warning or critical" },
		{ "{\"text\":\"x\",\"node\":\"../etc\"}",
		  "the payload: 'node' must be a node name (letters, digits, '-', '_', '.')" },
		{ "[{\"text\":\"ok\"},7]", "item 1 must be an object" },
		{ "\"text\"", "the payload must be an object" },
	};

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++) {
		struct http_events ev;
		char err[256];

		assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", bad[i].payload, NULL, &ev, err,
		    sizeof(err)), -1);
		assert_string_equal(err, bad[i].err);
		assert_int_equal(ev.n, 0);
	}
}

static void
test_generic_long_text_is_cut(void **state)
{
	struct sb_buf b = { 0 };
	struct http_events ev;
	char err[256], *payload;

	(void)state;
	sb_buf_puts(&b, "{\"text\":\"");
	for (int i = 0; i < 5000; i++)
		sb_buf_puts(&b, "\xc3\xa9");		/* e acute: 2 bytes */
	sb_buf_puts(&b, "\"}");
	payload = sb_buf_steal(&b);
	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", payload, NULL, &ev, err, sizeof(err)), 0);
	assert_true(strlen(ev.v[0].text) <= HTTP_HOOK_MAX_TEXT);
	assert_string_equal(ev.v[0].text + strlen(ev.v[0].text) - 3, "...");
	/* Cut on a character boundary: the byte before "..." ends one. */
	assert_int_equal((unsigned char)ev.v[0].text[strlen(ev.v[0].text) - 4], 0xa9);
	http_events_free(&ev);
	free(payload);
}

static void
test_severity_and_formats(void **state)
{
	(void)state;
	assert_string_equal(http_severity_normalize("Critical", "x"), "critical");
	assert_string_equal(http_severity_normalize("page", "x"), "critical");
	assert_string_equal(http_severity_normalize("warn", "x"), "warning");
	assert_string_equal(http_severity_normalize("low", "x"), "info");
	assert_string_equal(http_severity_normalize("weird", "warning"), "warning");
	assert_null(http_severity_normalize("weird", NULL));
	assert_string_equal(http_severity_normalize(NULL, "info"), "info");
	assert_int_equal(http_hook_format_parse("alertmanager"), HTTP_HOOK_ALERTMANAGER);
	assert_int_equal(http_hook_format_parse("grafana"), HTTP_HOOK_GRAFANA);
	assert_int_equal(http_hook_format_parse("json"), HTTP_HOOK_JSON);
	assert_int_equal(http_hook_format_parse("xml"), -1);
}

/* ---- outgoing webhooks ---- */

static void
test_out_bodies(void **state)
{
	char *s;

	(void)state;
	s = http_out_body(HTTP_OUT_SLACK, "web", "mail: ok -> critical: \"hot\"", 0);
	assert_string_equal(s, "{\"text\":\"mail: ok -> critical: \\\"hot\\\"\"}");
	free(s);
	s = http_out_body(HTTP_OUT_JSON, "web", "a\nb", 86400);
	assert_string_equal(s, "{\"text\":\"a\\nb\",\"channel\":\"web\",\"time\":\"1970-01-02T00:00:00Z\"}");
	free(s);
}

static void
test_out_notice_bodies(void **state)
{
	static const char notice[] = "{\"id\":7,\"text\":\"[E3] x\",\"events\":[{\"id\":\"E3\"}]}";
	char *s;

	(void)state;
	/* Slack gets the text alone; json the notice, the channel and time added. */
	s = http_out_notice_body(HTTP_OUT_SLACK, "web", "[E3] x", notice, 0);
	assert_string_equal(s, "{\"text\":\"[E3] x\"}");
	free(s);
	s = http_out_notice_body(HTTP_OUT_JSON, "web", "[E3] x", notice, 86400);
	assert_string_equal(s, "{\"id\":7,\"text\":\"[E3] x\",\"events\":[{\"id\":\"E3\"}],"
	    "\"channel\":\"web\",\"time\":\"1970-01-02T00:00:00Z\"}");
	free(s);
	/* No (or no usable) notice JSON: the plain body. */
	s = http_out_notice_body(HTTP_OUT_JSON, "web", "t", "[1]", 0);
	assert_string_equal(s, "{\"text\":\"t\",\"channel\":\"web\",\"time\":\"1970-01-01T00:00:00Z\"}");
	free(s);
}

static void
test_hmac_signed_timestamp(void **state)
{
	static const char secret[] = "grafana-hmac-secret-0123456789";
	static const char body[] = "{\"status\":\"firing\"}";
	unsigned char mac[HTTP_SHA256_LEN];
	char hex[2 * HTTP_SHA256_LEN + 1], *signed_text;

	(void)state;
	signed_text = sb_asprintf("1714557600:%s", body);
	http_hmac_sha256(secret, strlen(secret), signed_text, strlen(signed_text), mac);
	free(signed_text);
	http_hex_encode(mac, sizeof(mac), hex);
	assert_true(http_hmac_check_ts(secret, "1714557600", body, strlen(body), hex));
	assert_false(http_hmac_check_ts(secret, "1714557601", body, strlen(body), hex));
	assert_false(http_hmac_check(secret, body, strlen(body), hex));	/* body alone */
	assert_true(http_timestamp_fresh("1714557600", 1714557600, 60));
	assert_true(http_timestamp_fresh("1714557540", 1714557600, 60));
	assert_true(http_timestamp_fresh("1714557660", 1714557600, 60));
	assert_false(http_timestamp_fresh("1714557539", 1714557600, 60));
	assert_false(http_timestamp_fresh("1714557661", 1714557600, 60));
	assert_false(http_timestamp_fresh("", 1714557600, 60));
	assert_false(http_timestamp_fresh("17145576x0", 1714557600, 60));
	assert_false(http_timestamp_fresh("-1714557600", 1714557600, 60));
	assert_false(http_timestamp_fresh("1714557600000", 1714557600, 60));	/* ms */
	assert_false(http_timestamp_fresh(NULL, 1714557600, 60));
}

static void
test_generic_key_and_resolved(void **state)
{
	struct http_events ev;
	char err[256];

	(void)state;
	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", "{\"text\":\"disk\",\"key\":\"d1\","
	    "\"resolved\":true}", NULL, &ev, err, sizeof(err)), 0);
	assert_string_equal(ev.v[0].key, "ci:d1");	/* scoped to the hook */
	assert_true(ev.v[0].resolved);
	http_events_free(&ev);
	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", "{\"text\":\"x\"}", NULL, &ev, err,
	    sizeof(err)), 0);
	assert_null(ev.v[0].key);			/* the notifier's default */
	assert_false(ev.v[0].resolved);
	http_events_free(&ev);
	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", "{\"text\":\"x\",\"key\":7}", NULL, &ev,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "the payload: 'key' must be a string of 1 to 200 bytes");
	assert_int_equal(adapt(HTTP_HOOK_JSON, "ci", "{\"text\":\"x\",\"resolved\":1}", NULL, &ev,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "the payload: 'resolved' must be true or false");
}

/* ---- Lua handlers' arguments ---- */

struct pushjob {
	json_t *j;
	int     depth;
	size_t  values;
};

static int
push_job(lua_State *L)
{
	struct pushjob *job = lua_touserdata(L, 1);

	lua_settop(L, 0);
	http_lua_push_json(L, job->j, job->depth, job->values);
	return 1;
}

/* Push the JSON text as Lua in protected mode; the Lua error or NULL. */
static const char *
to_lua(lua_State *L, const char *text, int depth, size_t values)
{
	struct pushjob job = { json_loads(text, JSON_DECODE_ANY, NULL), depth, values };
	int rc;

	assert_non_null(job.j);
	lua_pushcfunction(L, push_job);
	lua_pushlightuserdata(L, &job);
	rc = lua_pcall(L, 1, 1, 0);
	json_decref(job.j);
	return rc == LUA_OK ? NULL : lua_tostring(L, -1);
}

/* Run chunk with the converted value as "p"; its result as a string. */
static const char *
eval(lua_State *L, const char *chunk)
{
	lua_setglobal(L, "p");
	assert_int_equal(luaL_dostring(L, chunk), LUA_OK);
	return lua_tostring(L, -1);
}

static void
test_lua_payload_conversion(void **state)
{
	lua_State *L = luaL_newstate();
	const char *err;

	(void)state;
	luaL_openlibs(L);
	assert_null(to_lua(L, "{\"a\":[1,2.5,\"x\",true,null,{\"b\":false}],\"n\":null,"
	    "\"big\":9007199254740993}", 32, 1000));
	assert_string_equal(eval(L, "return string.format('%s %s %s %s %s %s %s %s %s', "
	    "math.type(p.a[1]), p.a[2], p.a[3], p.a[4], tostring(p.a[5]), tostring(p.a[6].b), "
	    "tostring(p.n), math.type(p.big), p.big)"),
	    "integer 2.5 x true nil false nil integer 9007199254740993");
	/* Depth and size are bounded: an error, not a crash. */
	err = to_lua(L, "[[[[1]]]]", 3, 1000);
	assert_non_null(err);
	assert_non_null(strstr(err, "nests deeper than 3 levels"));
	assert_null(to_lua(L, "[[[1]]]", 3, 1000));
	err = to_lua(L, "[1,2,3,4,5]", 32, 5);
	assert_non_null(err);
	assert_non_null(strstr(err, "more than"));
	lua_close(L);
}

static void
test_lua_request_table(void **state)
{
	static const struct http_lua_header hdr[] = {
		{ "Content-Type", "application/json" },
		{ "Authorization", "Bearer secret" },
		{ "X-Grafana-Alerting-Signature", "abc" },
	};
	static const char *const hide[] = { "authorization", NULL };
	lua_State *L = luaL_newstate();

	(void)state;
	luaL_openlibs(L);
	http_lua_push_request(L, "am", "POST", "/hooks/am", "127.0.0.1", hdr, 3, hide);
	assert_string_equal(eval(L, "return string.format('%s %s %s %s %s %s %s', p.hook, "
	    "p.method, p.path, p.peer, p.headers['content-type'], "
	    "tostring(p.headers.authorization), p.headers['x-grafana-alerting-signature'])"),
	    "am POST /hooks/am 127.0.0.1 application/json nil abc");
	lua_close(L);
}

static void
test_out_retry_rules(void **state)
{
	(void)state;
	assert_true(http_out_retryable(0));		/* no answer */
	assert_true(http_out_retryable(500));
	assert_true(http_out_retryable(503));
	assert_true(http_out_retryable(429));
	assert_true(http_out_retryable(408));
	assert_false(http_out_retryable(400));
	assert_false(http_out_retryable(404));
	assert_false(http_out_retryable(401));
	assert_int_equal(http_out_backoff(1000, 300000, 1), 1000);
	assert_int_equal(http_out_backoff(1000, 300000, 2), 2000);
	assert_int_equal(http_out_backoff(1000, 300000, 4), 8000);
	assert_int_equal(http_out_backoff(1000, 5000, 10), 5000);
	assert_int_equal(http_out_backoff(1000, 300000, 1000), 300000);
}

static void
test_prom_label_escaping(void **state)
{
	struct sb_buf b = { 0 };

	(void)state;
	http_prom_label(&b, "a\"b\\c\nd");
	assert_string_equal(b.buf, "a\\\"b\\\\c\\nd");
	sb_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_known_answers),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_hex_decode_rejects),
		cmocka_unit_test(test_hmac_check_header_forms),
		cmocka_unit_test(test_bearer_parsing),
		cmocka_unit_test(test_token_match_checks_all),
		cmocka_unit_test(test_alertmanager_group_is_one_event),
		cmocka_unit_test(test_alertmanager_repeat_is_silent_then_resolved),
		cmocka_unit_test(test_alertmanager_single_node_and_mixed_status),
		cmocka_unit_test(test_alertmanager_unknown_instance_is_not_a_node),
		cmocka_unit_test(test_alertmanager_bad_shapes),
		cmocka_unit_test(test_dedup_forgets_least_recent),
		cmocka_unit_test(test_grafana_unified),
		cmocka_unit_test(test_grafana_legacy),
		cmocka_unit_test(test_generic_events),
		cmocka_unit_test(test_generic_refusals),
		cmocka_unit_test(test_generic_long_text_is_cut),
		cmocka_unit_test(test_severity_and_formats),
		cmocka_unit_test(test_out_bodies),
		cmocka_unit_test(test_out_retry_rules),
		cmocka_unit_test(test_prom_label_escaping),
		cmocka_unit_test(test_out_notice_bodies),
		cmocka_unit_test(test_hmac_signed_timestamp),
		cmocka_unit_test(test_generic_key_and_resolved),
		cmocka_unit_test(test_lua_payload_conversion),
		cmocka_unit_test(test_lua_request_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
