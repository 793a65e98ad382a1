"""The dialplan end to end: the daemon on config/demo.conf (or a copy of it
whose scripts folder is a private copy of scripts/), driven through
"switchboard -x": the shipped commands, the hysteresis policy, the power
confirmation flow, roles in help, reload with a broken script, and script
errors reported as file:line while the daemon keeps answering."""
import os
import re
import shutil
import signal
import time

import sbtest
from sbtest import Daemon, wait_for

NODES = ("ftp", "web", "mail", "db")
CODE = r"([A-Z2-9]{6})"
SINCE = r"\d+[smhd](?:\d+[smh])?"


def demo_text(scripts=None, confirm_timeout=None):
    """demo.conf with an absolute scripts folder (the shipped one, or
    scripts) and optionally another confirm_timeout."""
    with open(os.path.join(sbtest.ROOT, "config", "demo.conf")) as f:
        text = f.read()
    folder = scripts or os.path.join(sbtest.ROOT, "scripts")
    assert '"../scripts"' in text
    text = text.replace('"../scripts"', '"%s"' % folder)
    if confirm_timeout is not None:
        assert "confirm_timeout = 60;" in text
        text = text.replace("confirm_timeout = 60;", "confirm_timeout = %d;" % confirm_timeout)
    return text


def scripts_copy():
    """A private copy of the shipped scripts, free to break."""
    d = os.path.join(sbtest.tmpdir(), "scripts")
    shutil.copytree(os.path.join(sbtest.ROOT, "scripts"), d)
    return d


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def nodes_table(d):
    """The 'nodes' command's table: {name: (state, since, reason)}, in order."""
    out = d.ok("nodes")
    lines = out.rstrip("\n").split("\n")
    assert re.match(r"^NODE +STATE +SINCE +REASON$", lines[0]), out
    rows = {}
    for line in lines[1:]:
        m = re.match(r"^(\S+) +(\S+) +(%s) +(.*)$" % SINCE, line)
        assert m, "bad row %r in:\n%s" % (line, out)
        rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return rows


def wait_node(d, name, state, reason):
    """Wait until 'nodes' shows name in state with exactly reason."""
    def seen():
        row = nodes_table(d)[name]
        return row[0] == state and row[2] == reason and row
    return wait_for(seen, what="%s to be %s: %s" % (name, state, reason))


def wait_all_ok(d):
    wait_for(lambda: [r[0] for r in nodes_table(d).values()] == ["ok"] * 4,
             what="all four nodes ok")


def ask(d, cmd, scope, timeout=60, quoted=None):
    """Run cmd, which must ask for confirmation; returns the code.  quoted:
    the command as the request quotes it (without "as IDENTITY")."""
    rc, out = d.x(cmd)
    assert rc == 0, (cmd, rc, out)
    m = re.match(r"^'%s' needs confirmation\. %s Send 'confirm %s' within %d s\.\n$"
                 % (re.escape(quoted or cmd), re.escape(scope), CODE, timeout), out)
    assert m, (cmd, out)
    return m.group(1)


def expect(d, cmd, rc, text):
    got_rc, out = d.x(cmd)
    assert (got_rc, out) == (rc, text + "\n"), (cmd, got_rc, out)


def test_nodes_shows_all_four_with_state_reason_since():
    d = Daemon().start()
    wait_all_ok(d)
    rows = nodes_table(d)
    assert list(rows) == list(NODES), rows
    for name in NODES:
        assert rows[name][2] == "all 6 sensors normal", rows
    # A change resets since: it is counted from the change, in seconds.
    d.ok("sim set mail cpu_temp 95")
    t0 = time.monotonic()
    state, since, reason = wait_node(d, "mail", "critical", "cpu_temp 95 C (critical >= 90)")
    m = re.match(r"^(\d+)s$", since)
    assert m and int(m.group(1)) <= time.monotonic() - t0 + 1, since
    assert [nodes_table(d)[n][0] for n in ("ftp", "web", "db")] == ["ok"] * 3


def test_sim_threshold_over_and_back_with_hysteresis():
    d = Daemon().start()
    wait_all_ok(d)
    d.ok("sim set mail cpu_temp 95")
    wait_node(d, "mail", "critical", "cpu_temp 95 C (critical >= 90)")
    # Back under the limit, but within 2 % of it: held critical, while the
    # sensor on its own already reads warning.
    d.ok("sim set mail cpu_temp 89")
    wait_node(d, "mail", "critical", "cpu_temp 89 C (critical >= 90)")
    out = d.ok("sensors mail cpu_temp")
    assert re.search(r"^  cpu_temp +89 C +warning +\(warn >= 85, crit >= 90\)$", out, re.M), out
    assert d.node_state("mail") == "critical"
    d.ok("sim set mail cpu_temp 88")
    wait_node(d, "mail", "warning", "cpu_temp 88 C (warning >= 85)")
    d.ok("sim set mail cpu_temp 84")
    wait_node(d, "mail", "warning", "cpu_temp 84 C (warning >= 85)")
    d.ok("sim set mail cpu_temp 40")
    wait_node(d, "mail", "ok", "all 6 sensors normal")
    # Going up, the plain limits apply.
    d.ok("sim set mail cpu_temp 89")
    wait_node(d, "mail", "warning", "cpu_temp 89 C (warning >= 85)")
    d.ok("sim set mail cpu_temp 90")
    wait_node(d, "mail", "critical", "cpu_temp 90 C (critical >= 90)")
    rc, out = d.x("status mail")
    assert rc == 0 and re.match(r"^mail: critical since %s ago - cpu_temp 90 C \(critical >= 90\)\n$"
                                % SINCE, out), (rc, out)
    assert all(nodes_table(d)[n][0] == "ok" for n in ("ftp", "web", "db"))


def test_power_confirmation_flow():
    d = Daemon().start()
    wait_node(d, "web", "ok", "all 6 sensors normal")
    expect(d, "power web status", 0, "web: power is on")
    code = ask(d, "power web off", "Node: web.")
    expect(d, "power web status", 0, "web: power is on")    # nothing done yet
    # Another identity may not use it; a wrong code is refused.
    expect(d, "as xmpp:oncall@example.org confirm " + code, 1,
           "that code was issued to another conversation")
    expect(d, "confirm BADCODE", 1, "unknown or already used confirmation code")
    expect(d, "confirm " + code.lower(), 0, "web: power off issued")
    wait_node(d, "web", "off", "powered off")
    expect(d, "confirm " + code, 1, "unknown or already used confirmation code")

    # A viewer may not; oncall inherits operator and may, confirming as itself.
    expect(d, "as xmpp:someone@example.org power web on", 1,
           "permission denied: 'power web on' needs role operator (you are viewer)")
    expect(d, "as xmpp:someone@example.org power web status", 0, "web: power is off")
    code = ask(d, "as xmpp:oncall@example.org power web on", "Node: web.",
               quoted="power web on")
    expect(d, "confirm " + code, 1, "that code was issued to another conversation")
    expect(d, "as xmpp:oncall@example.org confirm " + code, 0, "web: power on issued")
    wait_node(d, "web", "ok", "all 6 sensors normal")

    # A group: the request says how many nodes; each answers.
    code = ask(d, "power group:rack1 cycle", "It will touch 2 nodes: ftp, web.")
    rc, out = d.x("confirm " + code)
    assert (rc, out) == (0, "ftp: power cycle issued\nweb: power cycle issued\n"), (rc, out)
    rc, out = d.x("events ftp 1")
    assert rc == 0 and re.match(r"^ftp:\n  \S+ \S+ info +power cycle requested\n$", out), out


def test_confirmation_code_survives_dialplan_reload():
    d = Daemon().start()
    wait_node(d, "web", "ok", "all 6 sensors normal")
    code = ask(d, "power web off", "Node: web.")
    out = d.ok("dialplan reload")
    assert "dialplan reloaded" in out, out
    assert "1 pending confirmation carried over" in d.logtext()
    # Still bound to its conversation, and matched again in the new dialplan.
    expect(d, "as xmpp:oncall@example.org confirm " + code, 1,
           "that code was issued to another conversation")
    expect(d, "confirm " + code, 0, "web: power off issued")
    wait_node(d, "web", "off", "powered off")
    expect(d, "confirm " + code, 1, "unknown or already used confirmation code")

def test_expired_code_exits_1():
    d = Daemon(conf_text=demo_text(confirm_timeout=1)).start()
    code = ask(d, "power db off", "Node: db.", timeout=1)
    # Issued at or before this second, good for one: expired two seconds on.
    issued = int(time.time())
    wait_for(lambda: int(time.time()) >= issued + 2, what="the code's lifetime to pass")
    expect(d, "confirm " + code, 1, "confirmation code expired; run the command again")
    expect(d, "confirm " + code, 1, "unknown or already used confirmation code")
    expect(d, "power db status", 0, "db: power is on")


HELP_VIEWER = ["alerts", "confirm <code>", "events <node> [<count:number>]", "help [<topic...>]",
               "inventory <node>", "nodes", "power <node> <action:status|on|off|cycle|reset|soft>",
               "sensors <node> [<sensor>]", "status [<node>]", "whoami"]
OPERATOR_BUILTINS = ["ack <event-id> [comment]",
                     "maint [<node> on|off [reason] | <node> at <time> for <duration> [reason]]",
                     "silence [<node|pattern> <duration> [reason]]",
                     "unsilence <node|pattern|all>"]
ADMIN_ONLY = ["core reload", "core show nodes", "core stop", "dialplan reload",
              "sim set|power|fail|show NODE ..."]


def help_patterns(out, known):
    """The header, and which of the known patterns each line starts with
    (or the line itself).  The lines come sorted."""
    lines = out.rstrip("\n").split("\n")
    assert lines[1:] == sorted(lines[1:]), out
    found = []
    for line in lines[1:]:
        hits = [p for p in known if line.startswith("  " + p + " ")]
        assert len(hits) <= 1, line
        found.append(hits[0] if hits else line)
    return lines[0], found


def test_help_differs_between_viewer_and_admin():
    d = Daemon().start()
    known = HELP_VIEWER + OPERATOR_BUILTINS + ADMIN_ONLY
    head, viewer = help_patterns(d.ok("as xmpp:someone@example.org help"), known)
    assert head == "Commands for xmpp:someone@example.org (role viewer):", head
    assert viewer == HELP_VIEWER, viewer
    head, admin = help_patterns(d.ok("help"), known)
    assert re.match(r"^Commands for console:\S+ \(role admin\):$", head), head
    assert set(HELP_VIEWER + ADMIN_ONLY) <= set(admin), admin
    assert len(admin) > len(HELP_VIEWER) + len(ADMIN_ONLY), admin
    # oncall is an operator by inheritance: no admin built-ins either.
    head, oncall = help_patterns(d.ok("as xmpp:oncall@example.org help"), known)
    assert head == "Commands for xmpp:oncall@example.org (role oncall):", head
    assert oncall == sorted(HELP_VIEWER + OPERATOR_BUILTINS), oncall
    # help with a topic.
    expect(d, "as xmpp:someone@example.org help sim", 1, "no command starts with 'sim'; try 'help'")
    rc, out = d.x("help sim")
    assert rc == 0 and help_patterns(out, known)[1] == ["sim set|power|fail|show NODE ..."], out


def test_broken_script_on_reload_keeps_old_commands():
    scripts = scripts_copy()
    d = Daemon(conf_text=demo_text(scripts)).start()
    wait_node(d, "mail", "ok", "all 6 sensors normal")
    core = os.path.join(scripts, "core.lua")
    with open(core) as f:
        good = f.read()
    broken_line = good.count("\n") + 2
    # core.lua defines help and nodes; break it at its end.
    write(core, good + "\ncommand \"newcmd\" { run = function() return 'new' end }\nlocal x = = 1\n")
    expect(d, "dialplan reload", 1, "dialplan reload failed, the old dialplan stays: "
           "%s:%d: unexpected symbol near '='" % (core, broken_line + 1))
    expect(d, "newcmd", 1, "unknown command 'newcmd'; try 'help'")
    assert list(nodes_table(d)) == list(NODES)
    assert d.ok("help").startswith("Commands for console:")
    code = ask(d, "power web off", "Node: web.")
    expect(d, "confirm " + code, 0, "web: power off issued")
    # The old policy still judges, with its hysteresis.
    d.ok("sim set mail cpu_temp 95")
    wait_node(d, "mail", "critical", "cpu_temp 95 C (critical >= 90)")
    d.ok("sim set mail cpu_temp 89")
    wait_node(d, "mail", "critical", "cpu_temp 89 C (critical >= 90)")

    # SIGHUP re-reads the config and the scripts: the same refusal, logged.
    d.signal(signal.SIGHUP)
    wait_for(lambda: "the dialplan kept its old scripts: %s:%d: " % (core, broken_line + 1)
             in d.logtext(), what="the refused dialplan in the log")
    expect(d, "newcmd", 1, "unknown command 'newcmd'; try 'help'")
    assert list(nodes_table(d)) == list(NODES)

    # Mended, the new command arrives.
    write(core, good + "\ncommand \"newcmd\" { run = function() return 'new' end }\n")
    expect(d, "dialplan reload", 0, "dialplan reloaded (4 script files)")
    expect(d, "newcmd", 0, "new")
    assert list(nodes_table(d)) == list(NODES)


OOPS = """-- oops.lua: a command with a bug in it
command "oops <node>" {
\trun = function(ctx, a)
\t\tlocal n = node(a.node)
\t\treturn n.name .. n.nosuch.field
\tend,
}
"""


def test_script_error_names_file_and_line_and_daemon_answers():
    scripts = scripts_copy()
    oops = os.path.join(scripts, "oops.lua")
    write(oops, OOPS)
    d = Daemon(conf_text=demo_text(scripts)).start()
    err = "%s:5: attempt to index a nil value (field 'nosuch')" % oops
    for _ in range(3):
        expect(d, "oops web", 1, err)
    rc, out = d.x("oops all")
    assert (rc, out) == (1, "".join("%s: error: %s\n" % (n, err) for n in NODES)), (rc, out)
    assert "script error in oops web: " + err in d.logtext()
    # The daemon keeps answering, built-ins and scripts alike.
    assert d.proc.poll() is None
    d.ok("core show version")
    assert list(nodes_table(d)) == list(NODES)
    rc, out = d.x("status web")
    assert rc == 0 and out.startswith("web: "), out
    wait_node(d, "db", "ok", "all 6 sensors normal")
