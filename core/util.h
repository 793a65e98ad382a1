/*
 * util.h: small helpers shared by every layer: checked allocation, string
 * building, globbing.  No policy lives here.
 */
#ifndef SB_UTIL_H
#define SB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>	/* SIZE_MAX: sb_index_find() */

#define SB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that never returns NULL: out of memory is fatal. */
void *sb_malloc(size_t);
void *sb_calloc(size_t, size_t);
void *sb_realloc(void *, size_t);
char *sb_strdup(const char *);			/* NULL stays NULL */
char *sb_strndup(const char *, size_t);
char *sb_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Name the calling thread (ps -L, top -H, /proc/PID/task/TID/comm), cut
 * to the kernel's 15 bytes. */
void  sb_thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *sb_vasprintf(const char *fmt, va_list);

/* A growable string buffer; buf is always NUL-terminated once used. */
struct sb_buf {
	char   *buf;
	size_t  len, cap;
};
void sb_buf_add(struct sb_buf *, const char *, size_t);
void sb_buf_puts(struct sb_buf *, const char *);
void sb_buf_printf(struct sb_buf *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *sb_buf_steal(struct sb_buf *);	/* caller takes the string; buf reset */
void sb_buf_free(struct sb_buf *);

/* fnmatch-style glob ('*', '?', '[...]'), case-sensitive. */
int sb_glob(const char *pattern, const char *s);
/* Bounded copy that always terminates; returns strlen(src). */
size_t sb_strlcpy(char *dst, const char *src, size_t size);

/* FNV-1a of a string, for the hash tables (node names, identities). */
unsigned sb_strhash(const char *);

/*
 * An index from strings to positions 0..n-1 of the caller's array (open
 * addressing, at most half full).  The caller keeps the strings; key(pos)
 * reads the one at a position, so the array may move.
 */
struct sb_index {
	const char *(*key)(size_t pos);
	size_t *slot;		/* position + 1; 0: free */
	size_t  mask, n;
};
void   sb_index_build(struct sb_index *, size_t n);	/* positions 0..n-1 anew */
void   sb_index_append(struct sb_index *);		/* position n, just added */
size_t sb_index_find(const struct sb_index *, const char *);	/* or SIZE_MAX */
void   sb_index_free(struct sb_index *);
/* Format seconds as "3d4h", "5m12s", "42s". */
void sb_fmt_duration(char *out, size_t size, long long seconds);
/* Replace every control character but tab with a space, in place. */
void sb_sanitize_line(char *);
/* What follows the first n blank-separated words of s (blanks skipped). */
const char *sb_skip_words(const char *s, int n);

#endif
