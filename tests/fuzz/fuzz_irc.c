/*
 * fuzz_irc.c: the IRC channel's own text handling (channels/irc_text.c):
 * how an incoming chat line addresses the bot (sb_irc_parse_command), nick
 * comparison and target checks, and the cutting of outgoing text into
 * protocol-safe pieces, with the properties the driver relies on checked:
 * no piece longer than its budget, none holding CR, LF or NUL, none empty,
 * and nothing but line ends and blanks lost.  The wire format itself is
 * parsed by libircclient, not here.
 *
 * Input: two bytes (a budget and flags), then the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chan_irc.h"

#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
is_node(const char *name, void *ud)
{
	(void)ud;
	return strcmp(name, "web") == 0 || strcmp(name, "db") == 0;
}

static void
check_wrap(const char *text, size_t len, size_t budget)
{
	char **pieces;
	size_t n = sb_irc_wrap(text, len, budget, &pieces), kept = 0, visible = 0;

	for (size_t i = 0; i < len; i++)
		if (text[i] != '\n' && text[i] != '\r' && text[i] != '\0' && text[i] != ' ')
			visible++;
	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(pieces[i]);

		if (pl == 0 || (budget && pl > budget) || strpbrk(pieces[i], "\r\n"))
			abort();
		for (size_t j = 0; j < pl; j++)
			if (pieces[i][j] != ' ')
				kept++;
		free(pieces[i]);
	}
	if (pieces[n] != NULL)
		abort();
	free(pieces);
	if (budget && kept != visible)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, node[32], *esc, *copy;
	const char *cmd = NULL;
	size_t budget, len;

	if (size < 2)
		return -1;
	budget = data[0] * 2u;		/* 0 .. 510 */
	text = sb_fuzz_strndup(data + 2, size - 2);
	len = size - 2;

	check_wrap(text, len, budget);
	if (budget && len) {
		size_t c = sb_irc_cut(text, len, budget);

		if (c == 0 || c > budget || c > len)
			abort();
	}
	if (sb_irc_parse_command(text, data[1] & 1, "switchboard", (data[1] & 2) ? "!" : NULL,
	    is_node, NULL, node, sizeof(node), &cmd)) {
		if (cmd < text || cmd > text + strlen(text) || *cmd == '\0')
			abort();
		if (node[0] && !is_node(node, NULL))
			abort();
	}
	sb_irc_casecmp(text, "Switch[board]");
	if (sb_irc_valid_target(text) && strpbrk(text, " ,\r\n"))
		abort();
	sb_irc_is_channel(text);
	sb_irc_is_loopback(text);
	esc = sb_irc_escape_percent(text);
	free(esc);
	copy = sb_fuzz_strndup(data + 2, size - 2);
	sb_irc_scrub(copy, len);
	if (memchr(copy, '\r', len) || memchr(copy, '\n', len) || memchr(copy, '\0', len))
		abort();
	free(copy);
	free(text);
	return 0;
}
