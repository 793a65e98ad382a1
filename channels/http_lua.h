/*
 * http_lua.h: what a Lua webhook handler is handed: the parsed payload as
 * plain Lua tables, and the request's description.  Pure conversions onto
 * a lua_State; they raise Lua errors, so they run inside a protected call
 * (the dialplan's sb_dialplan_webhook() calls them from one).
 */
#ifndef SB_HTTP_LUA_H
#define SB_HTTP_LUA_H

#include <stddef.h>

#include <jansson.h>
#include <lua.h>

#define HTTP_LUA_MAX_DEPTH	32	/* nesting of objects and arrays */
#define HTTP_LUA_MAX_VALUES	200000	/* values in one payload, all levels */
#define HTTP_LUA_MAX_HEADERS	64	/* request headers handed over */

/*
 * Push j (borrowed) as a Lua value: an object becomes a table with string
 * keys, an array a sequence (1-based), strings, numbers (integers stay
 * integers) and booleans themselves; null becomes nil (an object's member
 * is then absent, an array has a hole).  Raises an error past max_depth
 * levels or max_values values.
 */
void http_lua_push_json(lua_State *, json_t *j, int max_depth, size_t max_values);

struct http_lua_header {
	const char *name;	/* as sent; pushed in lower case */
	const char *value;
};

/*
 * Push the request table: { hook =, method =, path =, peer =, headers =
 * { ["content-type"] = ..., ... } }; every string borrowed.  Headers
 * named in hide (NULL-terminated, case-insensitive: the credentials) are
 * left out.
 */
void http_lua_push_request(lua_State *, const char *hook, const char *method,
                           const char *path, const char *peer,
                           const struct http_lua_header *, size_t n,
                           const char *const *hide);

#endif
