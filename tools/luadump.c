/*
 * luadump.c: a build tool.  Compiles a Lua file with the Lua the daemon
 * is built against and writes a C file holding both its text and its
 * bytecode (with debug information, so messages keep their line numbers):
 *
 *	const char NAME[];		the text, NUL-terminated
 *	const unsigned char NAME_bc[];	the bytecode
 *	const size_t NAME_bc_len;
 *
 * The daemon runs the bytecode (loading it is ~10x cheaper than parsing
 * the text at every start) and falls back to the text when the Lua found
 * at run time cannot load it.
 *
 * usage: luadump NAME CHUNKNAME FILE > FILE.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

struct out {
	size_t	n;
};

static void
put_bytes(struct out *o, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++, o->n++)
		printf("%s0x%02x,", o->n % 16 ? "" : "\n", p[i]);
}

static int
writer(lua_State *L, const void *p, size_t len, void *ud)
{
	(void)L;
	put_bytes(ud, p, len);
	return 0;
}

int
main(int argc, char **argv)
{
	struct out text = { 0 }, bc = { 0 };
	unsigned char *buf;
	lua_State *L;
	size_t len;
	long size;
	FILE *f;

	if (argc != 4) {
		fprintf(stderr, "usage: luadump NAME CHUNKNAME FILE\n");
		return 2;
	}
	if ((f = fopen(argv[3], "rb")) == NULL || fseek(f, 0, SEEK_END) < 0 ||
	    (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		perror(argv[3]);
		return 1;
	}
	len = (size_t)size;
	if ((buf = malloc(len + 1)) == NULL || fread(buf, 1, len, f) != len) {
		perror(argv[3]);
		return 1;
	}
	fclose(f);
	if ((L = luaL_newstate()) == NULL) {
		fprintf(stderr, "luadump: cannot create a Lua state\n");
		return 1;
	}
	if (luaL_loadbufferx(L, (const char *)buf, len, argv[2], "t") != LUA_OK) {
		fprintf(stderr, "luadump: %s\n", lua_tostring(L, -1));
		return 1;
	}
	printf("/* generated from %s by tools/luadump.c (%s); do not edit */\n",
	    argv[3], LUA_RELEASE);
	printf("#include <stddef.h>\n");
	printf("extern const char %s[];\n", argv[1]);
	printf("extern const unsigned char %s_bc[];\n", argv[1]);
	printf("extern const size_t %s_bc_len;\n", argv[1]);
	printf("const char %s[] = {", argv[1]);
	buf[len] = '\0';
	put_bytes(&text, buf, len + 1);
	printf("\n};\nconst unsigned char %s_bc[] = {", argv[1]);
	if (lua_dump(L, writer, &bc, 0) != 0) {
		fprintf(stderr, "luadump: lua_dump failed\n");
		return 1;
	}
	printf("\n};\nconst size_t %s_bc_len = %zu;\n", argv[1], bc.n);
	lua_close(L);
	free(buf);
	return ferror(stdout) ? 1 : 0;
}
