/*
 * fuzz_command.c: the command line as any channel hands it over.  The
 * tokenizer on its own, then the whole line through sb_dispatch(): the
 * ACL, "as", the built-ins, and the dialplan matcher (core/prelude.lua)
 * against the shipped scripts, on a fake channel, until the command ends.
 *
 * Input: one byte choosing the sender, the kind of conversation and an
 * implied node, then the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "msg.h"
#include "util.h"

#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const senders[] = {
	"fuzz:viewer", "fuzz:op", "fuzz:oncall", "fuzz:stranger",
};
static const char *const implied[] = { NULL, "web", "db", "nosuch" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, **argv, *store;
	unsigned sel;
	struct sb_msg *m;
	unsigned long want;
	int argc;

	if (size < 1 || size > SB_MAX_LINE + 64)
		return -1;
	sb_fuzz_world_start(NULL);
	sel = data[0];
	text = sb_fuzz_strndup(data + 1, size - 1);

	if ((argc = sb_tokenize(text, &argv, &store)) >= 0) {
		for (int i = 0; i < argc; i++)
			if (strlen(argv[i]) > strlen(text))
				abort();
		if (argv[argc] != NULL)
			abort();
		free(argv);
		free(store);
	}

	m = sb_msg_new("fuzz", senders[sel & 3], "conv", text);
	sb_msg_set_session(m, "s");
	if (implied[(sel >> 2) & 3])
		sb_msg_set_node(m, implied[(sel >> 2) & 3]);
	if (sel & 0x10)
		m->kind = SB_MSG_GROUP;
	want = sb_fuzz_done + 1;
	sb_dispatch(m);
	sb_fuzz_world_run(want);
	free(text);
	return 0;
}
