/*
 * module.h: code loaded at run time.  A backend whose library is big and
 * seldom needed (FreeIPMI, with libgcrypt) is built as a shared object and
 * loaded by the first configuration that names it, so that a daemon
 * without BMCs neither maps nor initialises it.
 */
#ifndef SB_MODULE_H
#define SB_MODULE_H

#include <stddef.h>

/*
 * The address of symbol sym in module name ("hal_ipmi"), loaded from
 * MODULES/name.so next to the executable (the build tree) or else from
 * SB_MODDIR (the installed place); NULL with the reason in err.  A module
 * stays loaded for the life of the process.
 */
void *sb_module_sym(const char *name, const char *sym, char *err, size_t errlen);

/*
 * A system library used through a table of its calls (libcurl, libedit):
 * opens the first of sonames that loads and stores each symbol's address
 * at its offset in table.  The library stays loaded.  0, or -1 with the
 * reason in err (dlopen's, or the symbol it lacks).
 */
/*
 * A table's entry that may live in a module (a channel driver, a HAL
 * backend): the symbol sb_KIND_NAME of module, looked for once (*tried
 * is set by the first call; later calls return NULL at once).  NULL with
 * the reason in why.
 */
void *sb_module_entry(const char *module, const char *kind, const char *name, int *tried,
                      char *why, size_t whylen);

struct sb_libsym {
	const char *name;
	size_t  off;		/* offsetof() in the caller's table */
};
int sb_library_load(const char *const *sonames, size_t nsonames,
                    const struct sb_libsym *syms, size_t nsyms, void *table,
                    char *err, size_t errlen);

#endif
