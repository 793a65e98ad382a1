"""Notifications end to end: routes, grouping, resolution, escalation and
acknowledgement, maintenance, silences, deduplication, and the durable
spool across a kill -9, against a real prosody and independent XMPP
clients (xmpp_env.py).

  test_grouping_*        40 crossings become one message per destination
  test_escalation_*      unacked critical reaches the second tier; ack stops it
  test_maintenance_*     xa presence, muted until "maint off"
  test_durability_*      100 notifications survive kill -9 with the server down
  test_store_*           schema version checks
"""
import os
import re
import signal
import sqlite3
import subprocess

import sbtest
from sbtest import Daemon, wait_for
from xmpp_env import Operator, Prosody, daemon_conf, lua_str, script_dir

LONG = 60
NOTIFY_FAST = "notify = { group_wait = %s; group_max = 30.0; retry_min = 0.2; retry_max = 2.0; };"


def xmpp_farm(nodes, scripts, operators=("admin",), notify="1.5", extra_modules=(),
              notify_extra="", **kw):
    p = Prosody(operators=list(operators), nodes=list(nodes),
                extra_modules=extra_modules).start()
    for name in operators:
        p.register(name, "secret")
    extra = (NOTIFY_FAST % notify).replace("};", notify_extra + " };")
    conf = daemon_conf(p, nodes=list(nodes), scripts=[script_dir(scripts)],
                       extra=extra, poll=0.5, **kw)
    return p, Daemon(conf_text=conf), None


def xmpp_link(d):
    for line in d.ok("core show channels").splitlines():
        if line.startswith("xmpp "):
            return line
    return ""


def demo_conf(extra_scripts=None):
    """config/demo.conf with its paths made absolute, fast notifications."""
    text = open(os.path.join(sbtest.ROOT, "config", "demo.conf")).read()
    dirs = ([extra_scripts] if extra_scripts else []) + [os.path.join(sbtest.ROOT, "scripts")]
    text = text.replace('scripts = [ "../scripts" ];',
                        "scripts = [ %s ];" % ", ".join(lua_str(x) for x in dirs), 1)
    return text + "\n" + NOTIFY_FAST % "0" + "\n"


def bodies(op, since, pred=lambda m: True):
    return [m for m in op.messages_since(since) if m["body"] and pred(m)]


def spool_count(d):
    db = sqlite3.connect(os.path.join(d.state, "switchboard.db"), timeout=10)
    try:
        return db.execute("SELECT count(*) FROM spool").fetchone()[0]
    finally:
        db.close()


# ---------------------------------------------------------------- grouping

def test_grouping_forty_crossings_one_message_then_one_resolution():
    nodes = ["n%02d" % i for i in range(40)]
    route = 'route { severity = "warning", to = { "xmpp:admin@sb.test" } }\n'
    p, d, _ = xmpp_farm(nodes, {"zz_route.lua": route}, notify="3.0")
    d.start()
    op = Operator(p, "admin", "secret", register=False).connect()
    wait_for(lambda: all(d.node_state(n) == "ok" for n in nodes[::13]), what="first polls")
    since = op.mark()
    for n in nodes:
        d.ok("sim set %s cpu_temp 95" % n)
    crit = op.wait_message(lambda m: m["body"] and m["body"].startswith("40 events:"),
                           timeout=LONG, since=since)
    lines = crit["body"].split("\n")
    ids = set(re.findall(r"^\[(E\d+)\] n\d\d: ok -> critical", crit["body"], re.M))
    assert len(ids) == 40, crit["body"]
    assert len(lines) == 41, crit["body"]
    # One message, not one per node.
    assert len(bodies(op, since, lambda m: "-> critical" in m["body"])) == 1
    since = op.mark()
    for n in nodes:
        d.ok("sim set %s cpu_temp 40" % n)
    res = op.wait_message(lambda m: m["body"] and m["body"].startswith("40 events:"),
                          timeout=LONG, since=since)
    resolved = set(re.findall(r"critical -> ok: .* \(resolves (E\d+)\)$", res["body"], re.M))
    assert resolved == ids, res["body"]
    assert d.ok("alerts").strip() == "no open events"


# ---------------------------------------------------------------- escalation

ESCALATE = """
route { severity = "critical", to = { "xmpp:oncall@sb.test" },
        escalate = { { after = 3, to = { "xmpp:boss@sb.test" } } } }
"""


def test_escalation_reaches_second_tier_and_ack_stops_it():
    p, d, _ = xmpp_farm(["web", "mail", "db"], {"zz_route.lua": ESCALATE},
                        operators=("admin", "oncall", "boss"), notify="0")
    d.start()
    oncall = Operator(p, "oncall", "secret", register=False).connect()
    boss = Operator(p, "boss", "secret", register=False).connect()
    d.wait_state("web", "ok")
    d.wait_state("mail", "ok")
    # web: nobody answers; the boss hears of it after 3 s.
    d.ok("sim set web cpu_temp 95")
    first = oncall.wait_message(lambda m: m["body"] and "web: ok -> critical" in m["body"],
                                timeout=LONG)
    eid = re.match(r"\[(E\d+)\]", first["body"]).group(1)
    esc = boss.wait_message(lambda m: m["body"] and m["body"].startswith("[%s] escalated" % eid),
                            timeout=LONG)
    assert "unacknowledged for" in esc["body"], esc["body"]
    assert "[escalated, tier 1]" in d.ok("alerts")
    # mail: acknowledged at once, so its escalation never comes.
    since = boss.mark()
    d.ok("sim set mail cpu_temp 95")
    m2 = oncall.wait_message(lambda m: m["body"] and "mail: ok -> critical" in m["body"],
                             timeout=LONG)
    eid2 = re.match(r"\[(E\d+)\]", m2["body"]).group(1)
    out = d.ok("ack %s on it, fan replaced tomorrow" % eid2)
    assert "escalation stopped" in out, out
    assert "acked by console:" in d.ok("alerts")
    # A barrier: db goes critical after the ack and escalates; by the time
    # the boss has db's escalation, mail's (due earlier) would have come.
    d.ok("sim set db cpu_temp 95")
    boss.wait_message(lambda m: m["body"] and "escalated" in m["body"] and "db:" in m["body"],
                      timeout=LONG, since=since)
    assert not bodies(boss, since, lambda m: eid2 in m["body"] and "escalated" in m["body"])
    # The acknowledgement itself was announced to whoever heard of it.
    oncall.wait_message(lambda m: m["body"] and ("%s acknowledged by" % eid2) in m["body"],
                        timeout=LONG)
    assert "acknowledged" in d.logtext()



ESCALATE_SLOW = """
route { severity = "critical", to = { "xmpp:oncall@sb.test" },
        escalate = { { after = 350, to = { "xmpp:boss@sb.test" } } }, every = 60 }
"""


def test_escalation_after_a_restart_counts_from_the_event():
    """An open critical event goes on across a restart: web, still hot
    when the daemon is back, continues its event instead of opening another
    (though the event, 400 s old, is past the 300 s dedup window: its time
    was moved back in the store while the daemon was down), and its
    escalation counts from the event's time, not from the restart: the
    350 s tier comes at once, and the `every` repeats due meanwhile are not
    all sent at once (the next is the next multiple of 60 s)."""
    p, d, _ = xmpp_farm(["web", "db"], {"zz_route.lua": ESCALATE_SLOW},
                        operators=("admin", "oncall", "boss"), notify="0")
    d.start()
    oncall = Operator(p, "oncall", "secret", register=False).connect()
    boss = Operator(p, "boss", "secret", register=False).connect()
    d.wait_state("web", "ok")
    d.ok("sim set web cpu_temp 95")
    first = oncall.wait_message(lambda m: m["body"] and "web: ok -> critical" in m["body"],
                                timeout=LONG)
    eid = re.match(r"\[(E\d+)\]", first["body"]).group(1)
    assert d.stop() == 0
    db = sqlite3.connect(os.path.join(d.state, "switchboard.db"), timeout=10)
    try:
        with db:
            n = db.execute("UPDATE events SET time = time - 400 WHERE id = ? AND open = 1",
                           (int(eid[1:]),)).rowcount
    finally:
        db.close()
    assert n == 1, n
    since_boss, since_oncall = boss.mark(), oncall.mark()
    # The simulator starts from its config: web starts hot this time.
    conf = open(d.conf).read()
    hot = 'name = "cpu_temp"; kind = "temperature"; unit = "C"; value = 42.0;'
    assert conf.count(hot) == 1, conf
    with open(d.conf, "w") as f:
        f.write(conf.replace(hot, hot.replace("42.0", "95.0")))
    d.start()
    esc = boss.wait_message(lambda m: m["body"] and m["body"].startswith("[%s] escalated" % eid),
                            timeout=LONG, since=since_boss)
    assert re.search(r"unacknowledged for 6m", esc["body"]), esc["body"]
    # A barrier: db's first message to oncall comes after anything the
    # restart sent at once; no "still unacknowledged" burst before it.
    d.wait_state("db", "ok")
    d.ok("sim set db cpu_temp 95")
    oncall.wait_message(lambda m: m["body"] and "db: ok -> critical" in m["body"],
                        timeout=LONG, since=since_oncall)
    assert not bodies(oncall, since_oncall, lambda m: "still unacknowledged" in m["body"])
    assert not bodies(boss, since_boss, lambda m: "still unacknowledged" in m["body"])
    assert not bodies(oncall, since_oncall, lambda m: "web: unknown -> critical" in m["body"])
    alerts = d.ok("alerts")
    assert re.search(r"^%s .*web.*\[escalated, tier 1\]" % eid, alerts, re.M), alerts


# ---------------------------------------------------------------- maintenance

def test_maintenance_is_xa_and_mutes_until_off():
    route = 'route { severity = "warning", to = { "xmpp:admin@sb.test" } }\n'
    p, d, _ = xmpp_farm(["web", "mail"], {"zz_route.lua": route}, notify="0")
    d.start()
    op = Operator(p, "admin", "secret", register=False).connect()
    web = p.node_jid("web")
    op.wait_presence(web, lambda t, s, st: t == "available", timeout=LONG)
    d.wait_state("mail", "ok")
    out = d.ok("maint web on kernel upgrade")
    assert "in maintenance" in out, out
    op.wait_presence(web, lambda t, s, st: t == "available" and s == "xa" and
                     "maintenance" in (st or "") and "kernel upgrade" in (st or ""),
                     timeout=LONG)
    assert d.node_state("web") == "maint"
    since = op.mark()
    d.ok("sim set web cpu_temp 95")
    d.ok("sim set mail cpu_temp 95")
    # mail's notification is the barrier: web's would be as quick.
    op.wait_message(lambda m: m["body"] and "mail: ok -> critical" in m["body"],
                    timeout=LONG, since=since)
    assert d.node_state("web") == "maint"
    assert not bodies(op, since, lambda m: "web:" in m["body"])
    assert "maint web" not in d.ok("alerts")
    d.ok("maint web off")
    op.wait_message(lambda m: m["body"] and "web: maint -> critical" in m["body"],
                    timeout=LONG, since=since)
    op.wait_presence(web, lambda t, s, st: s == "dnd", timeout=LONG)


def test_scheduled_maintenance_window_and_silence():
    d = Daemon(conf_text=demo_conf()).start()
    d.wait_state("web", "ok")
    out = d.ok("maint web at +2s for 3s planned reboot")
    assert "maintenance from" in out, out
    d.wait_state("web", "maint", timeout=LONG)
    assert "planned reboot" in d.node_line("web")
    d.wait_state("web", "ok", timeout=LONG)
    assert d.ok("maint").strip() == "no maintenance windows"
    # A silence mutes without changing the state.
    d.ok("silence mail 10m noisy fan")
    assert "mail until" in d.ok("silence")
    d.ok("sim set mail cpu_temp 95")
    d.wait_state("mail", "critical")
    wait_for(lambda: re.search(r"E\d+ muted \(mail\)", d.logtext()), what="the muted event")
    assert "[muted]" in d.ok("alerts")
    assert not re.search(r"console: notice \d+: \[E\d+\] mail: ok -> critical", d.logtext())
    d.ok("unsilence mail")
    assert d.ok("silence").strip() == "no silences"
    # Still critical: what the silence held back goes out now.
    wait_for(lambda: re.search(r"console: notice \d+: \[E\d+\] mail: ok -> critical",
                               d.logtext()), what="the unmuted event delivered")
    assert "[muted]" not in d.ok("alerts")
    rc, out = d.x("maint nosuchnode on")
    assert rc != 0 and "no node matches" in out, out
    rc, out = d.x("silence mail soon")
    assert rc != 0 and "usage" in out, out


# ---------------------------------------------------------------- durability

BURST = """
command "burst <n:number>" {
  role = "admin",
  run = function(ctx, a)
    for i = 1, a.n do
      notify { severity = "warning", key = "burst/" .. i, text = string.format("burst %03d", i) }
    end
    return "queued " .. a.n
  end,
}
route { source = "script", to = { "xmpp:admin@sb.test" } }
"""


def test_durability_kill9_with_server_down_delivers_all_once():
    p, d, _ = xmpp_farm(["web"], {"zz_burst.lua": BURST}, notify="0",
                        extra_modules=("offline",))
    d.start()
    op = Operator(p, "admin", "secret", register=False).connect()
    op.close()
    p.stop()
    wait_for(lambda: "connecting" in xmpp_link(d), timeout=LONG, what="the link down")
    assert "queued 100" in d.ok("burst 100")
    wait_for(lambda: spool_count(d) == 100, timeout=LONG, what="100 spooled")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.start()
    assert "100 notifications to deliver" in d.logtext()
    p.start()
    op = Operator(p, "admin", "secret", register=False).connect()
    got = wait_for(lambda: (lambda b: len(b) >= 100 and b)(
        bodies(op, 0, lambda m: m["body"].startswith("[E") and "burst" in m["body"])),
        timeout=3 * LONG, what="100 notifications")
    texts = sorted(re.search(r"burst \d+", m["body"]).group(0) for m in got)
    assert texts == ["burst %03d" % i for i in range(1, 101)], texts
    ids = [m["id"] for m in got]
    assert all(i and i.startswith("sb-") for i in ids), ids
    assert len(set(ids)) == len(ids) == 100, "a duplicate by id: %r" % ids
    wait_for(lambda: spool_count(d) == 0, timeout=LONG, what="an empty spool")


def test_spool_cap_drops_oldest_loudly():
    p, d, _ = xmpp_farm(["web"], {"zz_burst.lua": BURST}, notify="0",
                        notify_extra="spool_max = 5;")
    d.start()
    wait_for(lambda: "connected" in xmpp_link(d), timeout=LONG, what="the link up")
    p.stop()
    wait_for(lambda: "connecting" in xmpp_link(d), timeout=LONG, what="the link down")
    d.ok("burst 8")
    # The console takes its 8 at once; the 8 for the XMPP operator wait.
    wait_for(lambda: d.logtext().count("spool full") == 3, timeout=LONG, what="3 drops logged")
    # The deletions commit within 100 ms (nobody waits for them).
    wait_for(lambda: spool_count(d) == 5, timeout=LONG, what="5 left in the spool")
    dropped = re.findall(r"spool full \(5 messages\): dropped message \d+ for (\S+): "
                         r"\[E\d+\] (burst \d+)", d.logtext())
    assert dropped == [("xmpp:admin@sb.test", "burst %03d" % i) for i in (1, 2, 3)], dropped


# ---------------------------------------------------------------- store

def test_store_from_newer_version_is_refused():
    d = Daemon()
    os.makedirs(d.state, exist_ok=True)
    db = sqlite3.connect(os.path.join(d.state, "switchboard.db"))
    db.execute("PRAGMA user_version = 99")
    db.close()
    p = subprocess.run([sbtest.BIN, "-c", d.conf, "-s", d.sock, "-d", d.state, "-f"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "newer switchboard (schema version 99" in p.stdout + p.stderr, p.stdout + p.stderr


def test_notify_dedup_and_ids_from_lua():
    script = """
command "twice" { role = "admin", run = function()
  local a = notify { severity = "critical", key = "disk/web", text = "disk full", node = "web" }
  local b = notify { severity = "critical", key = "disk/web", text = "disk still full", node = "web" }
  local c = notify { key = "disk/web", resolved = true, text = "disk ok", node = "web" }
  return string.format("%s %s %s", tostring(a), tostring(b), tostring(c))
end }
"""
    d = Daemon(conf_text=demo_conf(script_dir({"zz_twice.lua": script}))).start()
    out = d.ok("twice").strip()
    m = re.match(r"^E(\d+) nil E(\d+)$", out)
    assert m and int(m.group(2)) > int(m.group(1)), out
    db = sqlite3.connect(os.path.join(d.state, "switchboard.db"), timeout=10)
    row = db.execute("SELECT resolves, severity, text FROM events WHERE id = ?",
                     (int(m.group(2)),)).fetchone()
    db.close()
    assert row == (int(m.group(1)), "info", "disk ok"), row
    assert d.ok("alerts").strip() == "no open events"


def test_repeat_every_until_ack():
    script = 'route { severity = "critical", to = { "console" }, every = 2 }\n'
    d = Daemon(conf_text=demo_conf(script_dir({"zz_every.lua": script}))).start()
    d.wait_state("web", "ok")
    d.ok("sim set web cpu_temp 95")
    d.wait_state("web", "critical")
    pat = r"console: notice \d+: \[(E\d+)\] still unacknowledged after \d+s: web: ok -> critical"
    wait_for(lambda: len(re.findall(pat, d.logtext())) >= 2, timeout=LONG,
             what="two repeats")
    eid = re.search(pat, d.logtext()).group(1)
    d.ok("ack %s" % eid)
    n = len(re.findall(pat, d.logtext()))
    # A barrier later than the next repeat would be: mail's own repeats.
    d.ok("sim set mail cpu_temp 95")
    mail = r"console: notice \d+: \[E\d+\] still unacknowledged after \d+s: mail:"
    wait_for(lambda: len(re.findall(mail, d.logtext())) >= 2, timeout=LONG,
             what="mail's repeats")
    assert len(re.findall(pat, d.logtext())) == n, "web repeated after its ack"
    rc, out = d.x("ack %s" % eid)
    assert "already acknowledged" in out, out
    rc, out = d.x("ack E999999")
    assert rc != 0 and "not an open event" in out, out


def test_first_ok_is_no_news_unless_it_ends_an_open_event():
    d = Daemon(conf_text=demo_conf()).start()
    for n in ("ftp", "web", "mail", "db"):
        d.wait_state(n, "ok")
    notice = r"console: notice \d+: \[E\d+\] (\w+): unknown -> ok"
    d.ok("sim set web cpu_temp 95")
    d.wait_state("web", "critical")
    eid = wait_for(lambda: re.search(r"\[(E\d+)\] web: ok -> critical", d.logtext()),
                   what="web's event").group(1)
    assert not re.findall(notice, d.logtext()), "a first ok announced"
    assert eid in d.ok("alerts")
    # Restarted (the sim starts from its config: web is fine again).
    assert d.stop() == 0
    d.start()
    for n in ("ftp", "web", "mail", "db"):
        d.wait_state(n, "ok")
    wait_for(lambda: re.search(r"\[E\d+\] web: unknown -> ok: .* \(resolves %s\)" % eid,
                               d.logtext()), what="the resolution of %s" % eid)
    assert re.findall(notice, d.logtext()) == ["web"], re.findall(notice, d.logtext())
    assert d.ok("alerts").strip() == "no open events"
