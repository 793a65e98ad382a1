/*
 * http_lua.c: jansson values and requests to Lua values, for the Lua
 * webhook handlers (see http_lua.h).  Owns nothing; bounded in depth and
 * in the number of values, so that a payload cannot exhaust the C stack;
 * the memory it takes is the sandbox's, under the call's budget.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "http_lua.h"

struct conv {
	lua_State *L;
	int     max_depth;
	size_t  left;
};

static void
push(struct conv *c, json_t *j, int depth)
{
	lua_State *L = c->L;
	const char *k;
	json_t *v;
	size_t i;

	if (c->left == 0)
		luaL_error(L, "the payload has more than %d values", HTTP_LUA_MAX_VALUES);
	c->left--;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		if (depth >= c->max_depth)
			luaL_error(L, "the payload nests deeper than %d levels", c->max_depth);
		luaL_checkstack(L, 3, "payload");
		lua_createtable(L, 0, (int)(json_object_size(j) < 1024 ? json_object_size(j) : 1024));
		json_object_foreach(j, k, v) {
			if (json_is_null(v))
				continue;
			lua_pushstring(L, k);
			push(c, v, depth + 1);
			lua_rawset(L, -3);
		}
		break;
	case JSON_ARRAY:
		if (depth >= c->max_depth)
			luaL_error(L, "the payload nests deeper than %d levels", c->max_depth);
		luaL_checkstack(L, 2, "payload");
		lua_createtable(L, (int)(json_array_size(j) < 65536 ? json_array_size(j) : 65536), 0);
		json_array_foreach(j, i, v) {
			if (json_is_null(v))
				continue;
			push(c, v, depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(j));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		lua_pushboolean(L, json_is_true(j));
		break;
	case JSON_NULL:
		lua_pushnil(L);
		break;
	}
}

void
http_lua_push_json(lua_State *L, json_t *j, int max_depth, size_t max_values)
{
	struct conv c = { L, max_depth, max_values };

	push(&c, j, 0);
}

static int
hidden(const char *name, const char *const *hide)
{
	for (; hide && *hide; hide++)
		if (strcasecmp(name, *hide) == 0)
			return 1;
	return 0;
}

void
http_lua_push_request(lua_State *L, const char *hook, const char *method, const char *path,
                      const char *peer, const struct http_lua_header *h, size_t n,
                      const char *const *hide)
{
	luaL_checkstack(L, 4, "request");
	lua_createtable(L, 0, 5);
	lua_pushstring(L, hook);
	lua_setfield(L, -2, "hook");
	lua_pushstring(L, method);
	lua_setfield(L, -2, "method");
	lua_pushstring(L, path);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, peer);
	lua_setfield(L, -2, "peer");
	lua_createtable(L, 0, (int)(n < HTTP_LUA_MAX_HEADERS ? n : HTTP_LUA_MAX_HEADERS));
	for (size_t i = 0; i < n && i < HTTP_LUA_MAX_HEADERS; i++) {
		luaL_Buffer b;

		if (h[i].name == NULL || h[i].value == NULL || hidden(h[i].name, hide))
			continue;
		luaL_buffinit(L, &b);
		for (const char *p = h[i].name; *p; p++)
			luaL_addchar(&b, (char)tolower((unsigned char)*p));
		luaL_pushresult(&b);
		lua_pushstring(L, h[i].value);
		lua_rawset(L, -3);
	}
	lua_setfield(L, -2, "headers");
}
