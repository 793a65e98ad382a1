/*
 * module.c: loading run-time modules, and system libraries used through a
 * table of their calls (module.h).
 *
 * The executable exports its symbols (-Wl,--export-dynamic), which the
 * modules use as they would if linked in.  The folder next to the
 * executable comes first so that a build tree runs its own modules and
 * never an installed older set.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "module.h"

#ifndef SB_MODDIR
#define SB_MODDIR "/usr/local/lib/switchboard"
#endif

int
sb_library_load(const char *const *sonames, size_t nsonames,
                const struct sb_libsym *syms, size_t nsyms, void *table,
                char *err, size_t errlen)
{
	void *lib = NULL;

	snprintf(err, errlen, "no library to load");
	for (size_t i = 0; i < nsonames && lib == NULL; i++)
		if ((lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL)) == NULL)
			snprintf(err, errlen, "%s", dlerror());
	if (lib == NULL)
		return -1;
	for (size_t i = 0; i < nsyms; i++) {
		void *p = dlsym(lib, syms[i].name);

		if (p == NULL) {
			snprintf(err, errlen, "%s lacks %s", sonames[0], syms[i].name);
			dlclose(lib);
			return -1;
		}
		memcpy((char *)table + syms[i].off, &p, sizeof(p));
	}
	return 0;
}

void *
sb_module_entry(const char *module, const char *kind, const char *name, int *tried,
                char *why, size_t whylen)
{
	char sym[64];

	if (*tried)
		return NULL;
	*tried = 1;
	snprintf(sym, sizeof(sym), "sb_%s_%s", kind, name);
	return sb_module_sym(module, sym, why, whylen);
}

void *
sb_module_sym(const char *name, const char *sym, char *err, size_t errlen)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	void *lib = NULL, *p;
	char *slash;

	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/modules/%s.so", exe, name);
			if (access(path, F_OK) == 0 &&
			    (lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
				snprintf(err, errlen, "%s", dlerror());
				return NULL;
			}
		}
	}
	if (lib == NULL) {
		snprintf(path, sizeof(path), "%s/%s.so", SB_MODDIR, name);
		if ((lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
			snprintf(err, errlen, "%s", dlerror());
			return NULL;
		}
	}
	if ((p = dlsym(lib, sym)) == NULL) {
		snprintf(err, errlen, "%s: no symbol %s", path, sym);
		dlclose(lib);
	}
	return p;
}
