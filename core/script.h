/*
 * script.h: the Lua sandbox.
 *
 * One struct sb_lua is a Lua 5.4 state with a curated environment and hard
 * limits: a memory ceiling for the whole state, an allocation budget and an
 * instruction budget per call, and bounded string functions.  It loads text
 * chunks only.  It knows nothing of commands or nodes: the dialplan
 * (dialplan.c) builds its API on top.
 */
#ifndef SB_SCRIPT_H
#define SB_SCRIPT_H

#include <stddef.h>

#include <lua.h>

struct sb_lua_limits {
	size_t  mem_max;	/* bytes the whole state may hold (0: 64 MiB) */
	size_t  call_alloc;	/* bytes one call/resume may allocate (0: 16 MiB) */
	long    call_instr;	/* VM instructions one call/resume may run (0: 10M) */
	size_t  str_max;	/* longest string string.rep/gsub/format/concat
				   helpers may build, and longest subject for
				   pattern functions (0: 1 MiB) */
};

struct sb_lua;

/* A fresh sandbox; NULL on out of memory. */
struct sb_lua *sb_lua_new(const struct sb_lua_limits *);
void sb_lua_free(struct sb_lua *);	/* NULL-safe */
lua_State *sb_lua_state(struct sb_lua *);
/* The sandbox from a lua_State (main state or a coroutine) of it. */
struct sb_lua *sb_lua_from(lua_State *);

/* Load a text chunk (binary chunks are refused) named chunkname (e.g.
 * "@scripts/power.lua" gives "power.lua:12:" in messages) with the sandbox
 * environment as _ENV, and run it under the call limits.  Returns 0, or -1
 * with "file:line: message" (plus a short traceback) in err. */
int sb_lua_dostring(struct sb_lua *, const char *chunkname, const char *buf,
                    size_t len, char *err, size_t errlen);

/* The same for the daemon's own chunks, which the build compiled
 * (tools/luadump.c): runs the bytecode bc, or the text when this Lua
 * cannot load that bytecode (another release than the build's). */
int sb_lua_dobuilt(struct sb_lua *, const char *chunkname, const void *bc,
                   size_t bclen, const char *text, size_t textlen, char *err,
                   size_t errlen);

/* Call the function below nargs arguments on the stack, under the call
 * limits, with a traceback handler.  Returns 0 (nresults pushed) or -1 with
 * the error in err (nothing pushed). */
int sb_lua_call(struct sb_lua *, int nargs, int nresults, char *err, size_t errlen);

/* Resume coroutine co (a thread of this sandbox) under the call limits.
 * Returns LUA_OK (finished; *nres results on co's stack), LUA_YIELD
 * (suspended; *nres values yielded), or -1 with the error and a traceback in
 * err (the coroutine is dead). */
int sb_lua_resume(struct sb_lua *, lua_State *co, int nargs, int *nres,
                  char *err, size_t errlen);

/* Push the sandbox's global table (what scripts see as _ENV). */
void sb_lua_push_env(struct sb_lua *);

/* Bytes the state holds now, and the ceiling. */
size_t sb_lua_mem_used(const struct sb_lua *);

#endif
