/*
 * world.h: a small switchboard running in the calling process, for the
 * unit tests, the fuzz harnesses and the dispatch benchmark that drive the
 * real command path without sockets: a private folder, a config written
 * there, the ACL (roles, rules, rate limit), the nodes, the caller's fake
 * channels, the store and notifier, and the dialplan.  One world at a time.
 */
#ifndef SB_TEST_WORLD_H
#define SB_TEST_WORLD_H

#include <stddef.h>

struct sb_channel;

/*
 * The nodes of the test worlds (a string literal, to be pasted into a
 * config's text): web (rack1, frontend; cpu_temp 45 C, fan1), web2 (rack1;
 * cpu_temp 20 C), db (rack2; cpu_temp 30 C, vcore 1.2 V), all simulated.
 */
#define SB_WORLD_NODES \
	"nodes = (\n" \
	"  { name = \"web\"; groups = [ \"rack1\", \"frontend\" ];\n" \
	"    hal = { backend = \"sim\"; sensors = (\n" \
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 45.0;\n" \
	"        high_warning = 85.0; high_critical = 90.0; },\n" \
	"      { name = \"fan1\"; kind = \"fan\"; unit = \"RPM\"; value = 7200.0;\n" \
	"        low_critical = 500.0; low_warning = 1000.0; } ); }; },\n" \
	"  { name = \"web2\"; groups = [ \"rack1\" ];\n" \
	"    hal = { backend = \"sim\"; sensors = (\n" \
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 20.0; } ); }; },\n" \
	"  { name = \"db\"; groups = [ \"rack2\" ];\n" \
	"    hal = { backend = \"sim\"; sensors = (\n" \
	"      { name = \"cpu_temp\"; kind = \"temperature\"; unit = \"C\"; value = 30.0; },\n" \
	"      { name = \"vcore\"; kind = \"voltage\"; unit = \"V\"; value = 1.2;\n" \
	"        low_critical = 1.0; low_warning = 1.1; high_warning = 1.35; high_critical = 1.45; }\n" \
	"    ); }; }\n" \
	");\n"

/*
 * Make the world's private folder, BASE/PREFIX-XXXXXX (base NULL: /tmp),
 * and return its path; NULL if it cannot be made.  sb_world_start() makes
 * one itself if none exists; make it first when the config must name it.
 */
const char *sb_world_dir_new(const char *base, const char *prefix);
const char *sb_world_dir(void);		/* the folder, or NULL */

/*
 * The path of REL in the source tree, found upwards from this binary's
 * place (BUILD/tests/unit/, BUILD/bench/, ...), else from the working
 * folder.  0 if it exists, -1 if not (out then holds REL).
 */
int sb_world_source(const char *rel, char *out, size_t len);

/*
 * Write conf_text to DIR/switchboard.conf and start from it as the daemon
 * does: config, ACL, nodes, the n channels given (borrowed: registered,
 * never freed), the notifier with its store in DIR, the dialplan.  -1 and
 * a message in err if any step fails (sb_world_stop() then cleans up).
 */
int sb_world_start(const char *conf_text, struct sb_channel *const *chans, size_t n,
                   char *err, size_t errlen);

/* Undo sb_world_start() and remove the folder. */
void sb_world_stop(void);

#endif
