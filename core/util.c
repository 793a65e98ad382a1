/*
 * util.c: checked allocation, a growable string buffer, globbing and small
 * formatting helpers.  Out of memory is the one error here that is fatal.
 */
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

void *
sb_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		sb_fatalx("out of memory (%zu bytes)", n);
	return p;
}

void *
sb_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		sb_fatalx("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *
sb_realloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);

	if (p == NULL)
		sb_fatalx("out of memory (%zu bytes)", n);
	return p;
}

char *
sb_strdup(const char *s)
{
	return s ? sb_strndup(s, strlen(s)) : NULL;
}

char *
sb_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = sb_malloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
sb_vasprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *p;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		sb_fatalx("vsnprintf failed");
	p = sb_malloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
sb_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = sb_vasprintf(fmt, ap);
	va_end(ap);
	return p;
}

static void
buf_reserve(struct sb_buf *b, size_t more)
{
	size_t need = b->len + more + 1;

	if (need <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 64;
	while (b->cap < need)
		b->cap *= 2;
	b->buf = sb_realloc(b->buf, b->cap);
}

void
sb_buf_add(struct sb_buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

void
sb_buf_puts(struct sb_buf *b, const char *s)
{
	sb_buf_add(b, s, strlen(s));
}

void
sb_buf_printf(struct sb_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	int n;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n > 0) {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
		b->len += (size_t)n;
	}
	va_end(ap);
}

char *
sb_buf_steal(struct sb_buf *b)
{
	char *p = b->buf ? b->buf : sb_strdup("");

	b->buf = NULL;
	b->len = b->cap = 0;
	return p;
}

void
sb_buf_free(struct sb_buf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}

int
sb_glob(const char *pattern, const char *s)
{
	return fnmatch(pattern, s, 0) == 0;
}

unsigned
sb_strhash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static void
index_put(struct sb_index *x, size_t pos)
{
	size_t h = sb_strhash(x->key(pos)) & x->mask;

	while (x->slot[h])
		h = (h + 1) & x->mask;
	x->slot[h] = pos + 1;
}

void
sb_index_build(struct sb_index *x, size_t n)
{
	size_t size = 16;

	while (size < n * 2)
		size <<= 1;
	free(x->slot);
	x->slot = sb_calloc(size, sizeof(*x->slot));
	x->mask = size - 1;
	x->n = n;
	for (size_t i = 0; i < n; i++)
		index_put(x, i);
}

void
sb_index_append(struct sb_index *x)
{
	if (x->slot == NULL || (x->n + 1) * 2 > x->mask + 1) {
		sb_index_build(x, x->n + 1);
		return;
	}
	index_put(x, x->n++);
}

size_t
sb_index_find(const struct sb_index *x, const char *s)
{
	if (x->slot == NULL)
		return SIZE_MAX;
	for (size_t h = sb_strhash(s) & x->mask; x->slot[h]; h = (h + 1) & x->mask)
		if (strcmp(x->key(x->slot[h] - 1), s) == 0)
			return x->slot[h] - 1;
	return SIZE_MAX;
}

void
sb_index_free(struct sb_index *x)
{
	free(x->slot);
	x->slot = NULL;
	x->mask = x->n = 0;
}

size_t
sb_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

void
sb_fmt_duration(char *out, size_t size, long long s)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(out, size, "%lldd%lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, size, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, size, "%lldm%llds", s / 60, s % 60);
	else
		snprintf(out, size, "%llds", s);
}

void
sb_sanitize_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			*s = ' ';
		else if (*s == 0x7f)
			*s = ' ';
}

const char *
sb_skip_words(const char *s, int n)
{
	for (int i = 0; i < n; i++) {
		s += strspn(s, " \t");
		s += strcspn(s, " \t");
	}
	return s + strspn(s, " \t");
}

void
sb_thread_name(const char *fmt, ...)
{
	char name[16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	pthread_setname_np(pthread_self(), name);
}
