/*
 * irc_text.c: the IRC channel's pure parts (chan_irc.h): line budgets,
 * cutting text into pieces that are safe on the wire, the token bucket,
 * how a line addresses the bot.  No network, no libircclient, no core
 * state: tests/unit/test_chan_irc.c tests them alone.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "chan_irc.h"
#include "util.h"

size_t
sb_irc_text_budget(size_t prefixlen, const char *cmd, const char *target)
{
	/* ":" prefix " " cmd " " target " :" text "\r\n" */
	size_t fixed = 1 + prefixlen + 1 + strlen(cmd) + 1 + strlen(target) + 2 + 2;

	return fixed >= SB_IRC_LINE_MAX ? 0 : SB_IRC_LINE_MAX - fixed;
}

size_t
sb_irc_cut(const char *s, size_t len, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t cut, sp;

	if (len <= max)
		return len;
	if (max == 0)
		return 0;
	/* Back up to the start of a character: never before a continuation
	 * byte.  A UTF-8 character is at most 4 bytes, so more than 3 steps
	 * back means the text is not UTF-8: cut where the limit is. */
	cut = max;
	while (cut > 0 && max - cut < 4 && (u[cut] & 0xC0) == 0x80)
		cut--;
	if (cut == 0 || max - cut >= 4)
		cut = max;
	/* A space in the last quarter makes a kinder break. */
	for (sp = cut; sp > cut - cut / 4; sp--)
		if (u[sp - 1] == ' ')
			return sp;
	return cut;
}

void
sb_irc_scrub(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			s[i] = ' ';
}

size_t
sb_irc_wrap(const char *text, size_t len, size_t budget, char ***out)
{
	char **v = NULL;
	size_t n = 0, cap = 0, off = 0;

	while (budget > 0 && off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - text) : len, llen = end - off, pos = 0;

		if (llen > 0 && text[off + llen - 1] == '\r')
			llen--;
		while (pos < llen) {
			size_t take = sb_irc_cut(text + off + pos, llen - pos, budget);

			if (n + 2 > cap) {
				cap = cap ? cap * 2 : 8;
				v = sb_realloc(v, cap * sizeof(*v));
			}
			/* not strndup: the text may hold NULs, scrubbed here */
			v[n] = sb_malloc(take + 1);
			memcpy(v[n], text + off + pos, take);
			v[n][take] = '\0';
			sb_irc_scrub(v[n], take);
			n++;
			pos += take;
		}
		off = end + 1;
	}
	if (v == NULL)
		v = sb_calloc(1, sizeof(*v));
	v[n] = NULL;
	*out = v;
	return n;
}

void
sb_irc_bucket_init(struct sb_irc_bucket *b, double burst, double rate, uint64_t now)
{
	b->burst = burst < 1 ? 1 : burst;
	b->rate = rate > 0 ? rate : 1;
	b->tokens = b->burst;
	b->last = now;
}

static void
bucket_fill(struct sb_irc_bucket *b, uint64_t now)
{
	if (now > b->last) {
		b->tokens += (double)(now - b->last) * b->rate / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
	}
	b->last = now;
}

int
sb_irc_bucket_take(struct sb_irc_bucket *b, uint64_t now)
{
	bucket_fill(b, now);
	if (b->tokens < 1.0)
		return 0;
	b->tokens -= 1.0;
	return 1;
}

long
sb_irc_bucket_wait(const struct sb_irc_bucket *b, uint64_t now)
{
	struct sb_irc_bucket t = *b;
	double need;

	bucket_fill(&t, now);
	if (t.tokens >= 1.0)
		return 0;
	need = (1.0 - t.tokens) * 1000.0 / t.rate;
	return (long)need + 1;	/* round up: the token is there when we wake */
}

static int
irc_lower(int c)
{
	if (c >= 'A' && c <= '^')	/* A-Z [ \ ] ^ */
		return c + ('a' - 'A');
	return c;
}

int
sb_irc_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = irc_lower((unsigned char)*a), y = irc_lower((unsigned char)*b);

		if (x != y || x == 0)
			return x - y;
	}
}

int
sb_irc_valid_target(const char *s)
{
	size_t len;

	if (s == NULL || *s == '\0' || *s == ':' || (len = strlen(s)) > 200)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == ',' || c == 0x7f)
			return 0;
	}
	return 1;
}

int
sb_irc_is_channel(const char *s)
{
	return s && *s && strchr("#&+!", *s) && s[1] && sb_irc_valid_target(s);
}

int
sb_irc_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		    (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return 0;
}

char *
sb_irc_escape_percent(const char *s)
{
	struct sb_buf b = { 0 };

	if (s == NULL)
		return NULL;
	for (; *s; s++) {
		if (*s == '%')
			sb_buf_add(&b, "%%", 2);
		else
			sb_buf_add(&b, s, 1);
	}
	if (b.buf == NULL)
		return sb_strdup("");
	return sb_buf_steal(&b);
}

static const char *
skip_blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* If text starts with "<word><sep>" (sep one of seps), copy word (at most
 * wlen-1 bytes) and return what follows, blanks skipped; else NULL. */
static const char *
addressed(const char *text, const char *seps, char *word, size_t wlen)
{
	size_t n = strcspn(text, " \t:,");

	if (n == 0 || n >= wlen || text[n] == '\0' || !strchr(seps, text[n]))
		return NULL;
	memcpy(word, text, n);
	word[n] = '\0';
	return skip_blanks(text + n + 1);
}

int
sb_irc_parse_command(const char *text, int query, const char *botnick, const char *prefix,
                     sb_irc_node_fn *is_node, void *ud, char *node, size_t nodelen,
                     const char **cmd)
{
	const char *p = skip_blanks(text), *rest;
	size_t plen = prefix ? strlen(prefix) : 0;
	char word[128];
	int addressed_us = query;

	if (nodelen)
		*node = '\0';
	if (plen && strncmp(p, prefix, plen) == 0 && p[plen] != '\0' && p[plen] != ' ' &&
	    p[plen] != '\t') {
		p += plen;
		addressed_us = 1;
	} else if ((rest = addressed(p, ":,", word, sizeof(word))) != NULL && botnick &&
	    sb_irc_casecmp(word, botnick) == 0) {
		p = rest;
		addressed_us = 1;
	}
	/* "<node>: <command>", alone or after the bot's address. */
	if ((rest = addressed(p, ":", word, sizeof(word))) != NULL && is_node &&
	    strlen(word) < nodelen && is_node(word, ud)) {
		memcpy(node, word, strlen(word) + 1);
		p = rest;
		addressed_us = 1;
	}
	p = skip_blanks(p);
	if (!addressed_us || *p == '\0') {
		if (nodelen)
			*node = '\0';
		return 0;
	}
	*cmd = p;
	return 1;
}
