/*
 * fuzz_hooks.c: incoming webhook bodies through the shipped adapters
 * (channels/http_hooks.c): Alertmanager, Grafana (unified and legacy) and
 * the generic JSON format, with deduplication by fingerprint across
 * inputs as in the daemon, and the events checked for what the notifier
 * relies on: a known severity, text no longer than the cap.
 *
 * The fourth way in is a hook whose handler is a Lua script: the payload
 * is handed to it as Lua tables (channels/http_lua.c), within the limits
 * of depth and count, inside a protected call as the dialplan makes it.
 *
 * Input: one byte choosing the format (0 json, 1 alertmanager, 2 grafana,
 * 3 Lua tables; +0x80: no deduplication), then the body (JSON, as jansson
 * parses it in chan_http.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "http_hooks.h"
#include "http_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
is_node(const char *name, void *ud)
{
	(void)ud;
	return strcmp(name, "web") == 0 || strcmp(name, "db") == 0 ||
	    strcmp(name, "web.example.org") == 0;
}

static const char *const hooks[] = { "json", "alertmanager", "grafana" };

static int
push_payload(lua_State *L)
{
	json_t *j = lua_touserdata(L, 1);

	http_lua_push_json(L, j, HTTP_LUA_MAX_DEPTH, HTTP_LUA_MAX_VALUES);
	return 1;
}

/* The payload as a Lua handler gets it: an error past the limits, never a
 * crash; one value on the stack otherwise. */
static void
to_lua(json_t *j)
{
	static lua_State *L;

	if (L == NULL)
		L = luaL_newstate();
	lua_pushcfunction(L, push_payload);
	lua_pushlightuserdata(L, j);
	if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_gettop(L) != 1)
		abort();
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_dedup *dedup;
	struct http_events ev = { 0 };
	enum http_hook_format fmt;
	char err[1100];
	json_error_t je;
	json_t *j;

	if (size < 1)
		return -1;
	if (dedup == NULL)
		dedup = http_dedup_new(64);
	err[0] = '\0';
	j = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return 0;
	if (data[0] % 4 == 3) {
		to_lua(j);
		json_decref(j);
		return 0;
	}
	fmt = (enum http_hook_format)(data[0] % 4);
	if (http_hook_format_parse(http_hook_format_name(fmt)) != (int)fmt)
		abort();
	if (http_hook_adapt(fmt, hooks[fmt], j, (data[0] & 0x80) ? NULL : dedup, is_node, NULL,
	    &ev, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < ev.n; i++) {
			const char *sev = ev.v[i].severity;

			if (sev == NULL || (strcmp(sev, "info") && strcmp(sev, "warning") &&
			    strcmp(sev, "critical")))
				abort();
			if (ev.v[i].text == NULL || strlen(ev.v[i].text) > HTTP_HOOK_MAX_TEXT + 8)
				abort();
		}
	} else if (err[0] == '\0') {
		abort();	/* a refusal says why */
	}
	if (http_dedup_size(dedup) > 64)
		abort();
	http_events_free(&ev);
	json_decref(j);
	return 0;
}
