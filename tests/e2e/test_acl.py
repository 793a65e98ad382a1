"""Access control end to end: the daemon on config/demo.conf plus rules and
a rate limit, driven through "switchboard -x".  The console's "as IDENTITY
[on CHANNEL] [in ROOM|direct] COMMAND" runs a command as another identity,
in a room or a direct conversation, so the roles, the rules per command,
node and room, help, the rate limit and the audit log are all seen as a
chat user would see them."""
import os
import re
import subprocess
import time

import sbtest
from sbtest import Daemon

CODE = r"([A-Z2-9]{6})"
VIEWER = "xmpp:someone@example.org"
ONCALL = "xmpp:oncall@example.org"      # oncall inherits operator
ROOM = "ops@conference.example.org"

RULES = """
rules = (
  { command = "power"; where = "group"; allow = false; },
  { command = "power"; node = "db*"; role = "admin"; },
  { command = "*"; channel = "irc"; room = "#lobby"; role = "admin"; }
);
rate_limit = { rate = 1.0; burst = 10; };
"""


def conf_text(extra=RULES):
    with open(os.path.join(sbtest.ROOT, "config", "demo.conf")) as f:
        text = f.read()
    assert '"../scripts"' in text
    return text.replace('"../scripts"', '"%s"' % os.path.join(sbtest.ROOT, "scripts")) + extra


def start(extra=RULES):
    return Daemon(conf_text=conf_text(extra)).start()


def expect(d, cmd, rc, text):
    got_rc, out = d.x(cmd)
    assert (got_rc, out) == (rc, text + "\n"), (cmd, got_rc, out)


def help_commands(out):
    """The first word(s) of each pattern help lists."""
    lines = out.rstrip("\n").split("\n")[1:]
    return [re.split(r" [<\[]| {2,}", l.strip())[0] for l in lines]


def rules_line(n):
    """The config line of the n-th rule (1-based) in conf_text()."""
    lines = conf_text().split("\n")
    hits = [i + 1 for i, l in enumerate(lines) if l.startswith("  { command = ")]
    return hits[n - 1]


def test_viewer_cannot_power():
    d = start()
    expect(d, "as %s power web cycle" % VIEWER, 1,
           "permission denied: 'power web cycle' needs role operator (you are viewer)")
    # The command's own role function still lets a viewer ask the status.
    expect(d, "as %s power web status" % VIEWER, 0, "web: power is on")
    assert "xmpp:someone@example.org (viewer) refused 'power web cycle': needs operator" \
        in d.logtext()


def test_room_rule_forbids_power_in_room_but_not_direct():
    d = start()
    conf = d.conf
    # In the room: refused outright, with the rule's file:line in the log.
    expect(d, "as %s in %s power web cycle" % (ONCALL, ROOM), 1,
           "permission denied: a rule forbids 'power' here (group chat in %s on console)" % ROOM)
    assert "'power web cycle' denied by the rule at %s:%d" % (conf, rules_line(1)) in d.logtext()
    # Even an admin is refused there.
    expect(d, "as xmpp:admin@example.org in %s power web cycle" % ROOM, 1,
           "permission denied: a rule forbids 'power' here (group chat in %s on console)" % ROOM)
    # Directly, the same person may, after confirming.
    rc, out = d.x("as %s power web cycle" % ONCALL)
    m = re.match(r"^'power web cycle' needs confirmation\. Node: web\. Send 'confirm %s' within 60 s\.\n$"
                 % CODE, out)
    assert rc == 0 and m, out
    expect(d, "as %s confirm %s" % (ONCALL, m.group(1)), 0, "web: power cycle issued")
    # A node rule: db needs admin, for an operator and for a glob reaching db.
    expect(d, "as %s power db cycle" % ONCALL, 1,
           "permission denied: 'power db cycle' needs role admin (you are oncall)")
    expect(d, "as %s power all off" % ONCALL, 1,
           "permission denied: 'power all off' needs role admin (you are oncall)")
    rc, out = d.x("as xmpp:admin@example.org power db cycle")
    assert rc == 0 and "needs confirmation. Node: db." in out, out
    # The #lobby rule: everything needs admin there, on that channel only.
    expect(d, "as %s on irc in #lobby status web" % ONCALL, 1,
           "permission denied: 'status web' needs role admin (you are oncall)")
    rc, out = d.x("as %s on irc in #ops status web" % ONCALL)
    assert rc == 0 and out.startswith("web: "), out


def test_help_lists_only_what_the_caller_may_run_here():
    d = start()
    viewer = help_commands(d.ok("as %s help" % VIEWER))
    oncall = help_commands(d.ok("as %s help" % ONCALL))
    oncall_room = help_commands(d.ok("as %s in %s help" % (ONCALL, ROOM)))
    admin = help_commands(d.ok("help"))
    # power's own role depends on its action: listed for a viewer (status).
    assert "power" in viewer and "whoami" in viewer, viewer
    assert "power" in oncall, oncall
    # The room rule takes power out of help in the room.
    assert "power" not in oncall_room and "status" in oncall_room, oncall_room
    # Built-ins by role: audit is admin's.
    assert "audit" in admin and "audit" not in oncall and "audit" not in viewer, admin
    # In #lobby on irc everything needs admin: an operator may not even ask.
    expect(d, "as %s on irc in #lobby help" % ONCALL, 1,
           "permission denied: 'help' needs role admin (you are oncall)")
    assert "power" not in help_commands(d.ok("as xmpp:admin@example.org in %s help" % ROOM))


def test_rules_config_errors_name_file_and_line():
    bad = [
        ('rules = ( { command = "power"; role = "wizard"; } );\n', r':\d+: rule: unknown role "wizard"'),
        ('rules = ( { command = "power"; where = "upstairs"; allow = false; } );\n',
         r':\d+: rule: where must be "direct", "group" or "any"'),
        ('rules = ( { command = "power"; } );\n', r':\d+: rule: say what it does'),
        ('rules = ( { command = "power"; allow = false; role = "admin"; } );\n',
         r':\d+: rule: allow = false refuses the command'),
        ('rate_limit = { rate = 0.0; };\n', r":\d+: rate_limit: rate must be"),
    ]
    for extra, want in bad:
        path = os.path.join(sbtest.tmpdir(), "bad.conf")
        with open(path, "w") as f:
            f.write(conf_text(extra))
        p = subprocess.run([sbtest.BIN, "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0, (extra, p.stdout, p.stderr)
        assert re.search(re.escape(path) + want, p.stderr), (extra, p.stderr)


def audit_rows(d, args=""):
    """The audit command's rows, without the start-up check's own
    'core show version' (Daemon.start asks it)."""
    out = d.ok("audit " + args).rstrip("\n").split("\n")
    assert out[0].startswith("TIME (UTC)"), out
    return [r for r in out[1:] if not r.endswith(" core show version -> ok")]


def test_audit_shows_each_run_and_refusal():
    d = start()
    d.ok("as %s status web" % VIEWER)
    d.x("as %s power web cycle" % VIEWER)
    d.x("as %s in %s power web cycle" % (ONCALL, ROOM))
    rc, out = d.x("as %s power mail cycle" % ONCALL)
    code = re.search(CODE + r"' within", out).group(1)
    d.ok("as %s confirm %s" % (ONCALL, code))
    d.x("as %s nosuch" % ONCALL)
    rows = audit_rows(d)
    assert len(rows) == 6, rows
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    want = [
        r"%s \(viewer\) console/\S+ direct: as %s status web -> ok \[web\]$" % (VIEWER, VIEWER),
        r"%s \(viewer\) console/\S+ direct: as %s power web cycle -> refused \[web\] "
        r"\(permission denied: 'power web cycle' needs role operator \(you are viewer\)\)$"
        % (VIEWER, VIEWER),
        r"%s \(oncall\) console/%s group: as %s in %s power web cycle -> denied \[web\] "
        r"\(permission denied: a rule forbids 'power' here" % (ONCALL, ROOM, ONCALL, ROOM),
        r"%s \(oncall\) console/\S+ direct: as %s power mail cycle -> confirm \[mail\]$"
        % (ONCALL, ONCALL),
        r"%s \(oncall\) console/\S+ direct: as %s confirm %s -> ok \[mail\]$" % (ONCALL, ONCALL, code),
        r"%s \(oncall\) console/\S+ direct: as %s nosuch -> failed \(unknown command 'nosuch'"
        % (ONCALL, ONCALL),
    ]
    for row, pat in zip(rows, want):
        assert re.match(stamp + pat.replace(".", r"\."), row) or re.match(stamp + pat, row), \
            "%r does not match %r" % (row, pat)
    # n and node: the newest n, about one node.
    # (The audit command is recorded too, after it answered.)
    two = d.ok("audit 2").rstrip("\n").split("\n")[1:]
    assert len(two) == 2 and two[0] == rows[-1] and re.search(r"audit -> ok$", two[1]), two
    mail = audit_rows(d, "10 mail")
    assert len(mail) == 2 and all("[mail]" in r for r in mail), mail
    web = audit_rows(d, "web")
    assert len(web) == 3, web
    # Admin only.
    expect(d, "as %s audit" % ONCALL, 1, "permission denied: 'audit' needs role admin")
    # The store is the state folder's: the rows survive a restart.
    d.stop()
    d2 = Daemon(conf=d.conf)
    d2.dir, d2.sock, d2.state = d.dir, d.sock, d.state
    d2.start()
    assert len(audit_rows(d2, "100")) >= 8


def test_rate_limit_burst_then_one_notice():
    # 50 commands back to back (a second or two; the bucket takes 10 s to
    # refill, so every refusal comes before it is full again).
    d = start()
    t0 = time.monotonic()
    results = [d.x("as %s whoami" % VIEWER) for _ in range(50)]
    elapsed = time.monotonic() - t0
    ran = [r for r in results if r[0] == 0]
    n = len(ran)
    # The burst of 10, plus what the bucket refilled (1 a second) before it
    # ran dry: a slow machine (the sanitizer build) may fit one or two.
    assert 10 <= n <= 10 + int(elapsed) + 1 and results[:n] == ran, (elapsed, results[:n + 2])
    assert all(out.startswith("xmpp:someone@example.org, role viewer") for _, out in ran), ran
    notices = [out for rc, out in results[n:] if out]
    assert len(notices) == 1 and results[n][1] == notices[0], results[n:n + 3]
    assert re.match(r"^rate limit: 10 commands in 10 s; wait ([1-9]|10) s\n$", notices[0]), notices
    assert all(rc == 1 for rc, _ in results[n:]), results[n:]
    # Others are not held up; the console itself never is.
    rc, out = d.x("as %s whoami" % ONCALL)
    assert rc == 0, out
    for _ in range(30):
        d.ok("core show version")
    # Each refusal is in the audit log; one notice in the daemon's log.
    rows = audit_rows(d, "200")
    limited = [r for r in rows if r.endswith("-> rate-limited") or "-> rate-limited (" in r]
    assert len(limited) == 50 - n, rows
    assert d.logtext().count("over the rate limit") == 1
    # Once the bucket is full again, commands run.
    sbtest.wait_for(lambda: d.x("as %s whoami" % VIEWER)[0] == 0, timeout=30,
                    what="the bucket to refill")
