/*
 * fuzz_world.h: a small running switchboard for the fuzz harnesses that
 * dispatch what they parse: a private folder with a config of simulated
 * nodes, the shipped scripts, the ACL, the store and the dialplan, and a
 * fake channel "fuzz" whose reply() only counts.  Built once per process;
 * each input then runs against it.  No sockets.
 */
#ifndef SB_FUZZ_WORLD_H
#define SB_FUZZ_WORLD_H

#include <stddef.h>
#include <stdint.h>

struct sb_channel;

/* The fake channel "fuzz" (context default, rooms in default too). */
extern struct sb_channel sb_fuzz_chan;
/* Replies and ends (SB_REPLY_DONE) the fake channel has seen. */
extern unsigned long sb_fuzz_replies, sb_fuzz_done;

/*
 * Start the world once (later calls do nothing); extra is appended to the
 * config text (a "channels" list, say) and may be NULL.  Silences the log
 * unless FUZZ_VERBOSE is set.  Exits on failure: a harness without its
 * world would only report false crashes.
 */
void sb_fuzz_world_start(const char *extra);

/* Run the loop until sb_fuzz_done reaches want or nothing is left to do
 * quickly; aborts if a command has not ended within 10 s (a hang). */
void sb_fuzz_world_run(unsigned long want);

/* Run whatever is ready (posted tasks, due timers) without waiting. */
void sb_fuzz_world_settle(void);

/* The config file's path, for harnesses that want to read it. */
const char *sb_fuzz_world_conf(void);

/* A NUL-terminated copy of the fuzzer's input (caller frees). */
char *sb_fuzz_strndup(const uint8_t *, size_t);

#endif
