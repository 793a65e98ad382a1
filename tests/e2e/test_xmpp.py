"""The XMPP channel end to end (issue 5), against a real prosody on loopback
(tests/e2e/xmpp_env.py) with Debian's python3-slixmpp as the operators'
client, so that a misunderstanding of the protocol shared by the driver and
its tests cannot pass.

  test_env_*        the environment alone (prosody, operators, MUC, a
                    plain XEP-0114 component): no switchboard involved
  test_component_*  gateway mode: every node is <node>@nodes.sb.test
  test_muc_*        group chat: announcements, "<node>: <command>", rejoin
  test_outage_*     prosody stopped for 5 s while states change, or hung
                    (SIGSTOP) until pings find the dead link
  test_client_*     agent mode: the daemon logs in as web@sb.test
  test_adhoc_*      XEP-0050 ad-hoc commands.  THESE MAY LAND LATER than
                    the rest of the channel: a failure there says the
                    feature is missing, not that the channel is broken.

Run: /usr/bin/python3 tests/e2e/run.py -k xmpp

When a test fails, the daemon's and prosody's logs (prosody's at debug
level) are kept in build/test-logs/e2e-xmpp/<test>/ for the evidence.
"""
import functools
import os
import re
import shutil
import sqlite3
import time

import sbtest
from sbtest import Daemon, wait_for
from xmpp_env import (COMMANDS_NODE, DEMO_NODES, GROUP, Component, Operator, Prosody,
                      daemon_conf, script_dir)

PW = "secret"
ROOM = "ops@conference.sb.test"
ACCOUNTS = ("admin", "operator", "viewer", "stranger")
IN_GROUP = ("admin", "operator", "viewer")       # stranger: no ACL entry, not in the group
LONG = 60                                       # deadline for reconnects and big farms

BIG_SCRIPT = """-- a 20 kB reply, for the splitting test
command "big" {
  help = "400 numbered lines",
  run = function()
    local t = {}
    for i = 1, 400 do t[#t + 1] = string.format("line %04d %s", i, ("x"):rep(40)) end
    return table.concat(t, "\\n")
  end,
}
"""
BIG_TEXT = "\n".join("line %04d %s" % (i, "x" * 40) for i in range(1, 401))

ROUTE_ROOM = 'route { to = { "xmpp:%s" } }\n' % ROOM
ROUTE_ADMIN = 'route { to = { "xmpp:admin@sb.test" } }\n'


# ---------------------------------------------------------------- helpers

_current = {}       # what the running test started, for the evidence


def evidence(fn):
    """On failure keep the daemon's and prosody's logs where the report
    names them, and end the message with the daemon log's last lines."""
    @functools.wraps(fn)
    def run():
        _current.clear()
        keep = os.path.join(sbtest.ROOT, "build", "test-logs", "e2e-xmpp", fn.__name__)
        shutil.rmtree(keep, ignore_errors=True)     # only the last run's evidence
        try:
            return fn()
        except BaseException as e:
            os.makedirs(keep, exist_ok=True)
            tail = []
            for name, obj in _current.items():
                for attr in ("log", "conf", "out"):
                    path = getattr(obj, attr, None)
                    if path and os.path.exists(path):
                        shutil.copy(path, os.path.join(keep, "%s.%s" % (name, os.path.basename(path))))
                if isinstance(obj, Daemon):
                    tail = obj.logtext().splitlines()[-12:]
            note = "\n-- logs kept in %s; daemon log ends:\n%s" % (keep, "\n".join(tail))
            if isinstance(e, AssertionError):
                raise AssertionError(str(e) + note) from e
            raise
    return run


def channel_line(d, name="xmpp"):
    for line in d.ok("core show channels").splitlines():
        if line.split() and line.split()[0] == name:
            return line
    return ""


def wait_linked(d, timeout=LONG):
    """Wait until the xmpp channel says it is connected."""
    return wait_for(lambda: re.search(r"\bconnected\b", channel_line(d)) and channel_line(d),
                    timeout, "the xmpp channel to connect (core show channels)")


class Farm:
    """prosody + accounts + the daemon on an XMPP channel (+ operators).

    Gateway mode by default: the four demo nodes served as
    <node>@nodes.sb.test, and the operators admin, operator and viewer
    given every node through mod_groups' "Systems Management" group."""

    def __init__(self, nodes=DEMO_NODES, mode="component", group_nodes=None,
                 group_operators=IN_GROUP, accounts=ACCOUNTS, scripts=None,
                 prosody_kw=None, start=True, **conf_kw):
        self.nodes = list(nodes)
        self.p = Prosody(operators=group_operators,
                         nodes=self.nodes if group_nodes is None else group_nodes,
                         **(prosody_kw or {}))
        _current["prosody"] = self.p
        self.p.start()
        for u in accounts:
            self.p.register(u, PW)
        dirs = [script_dir(scripts)] if scripts else []
        self.conf_text = daemon_conf(self.p, nodes=self.nodes, mode=mode, scripts=dirs,
                                     password=PW, **conf_kw)
        self.d = Daemon(conf_text=self.conf_text)
        _current["daemon"] = self.d
        if start:
            self.start_daemon()

    def start_daemon(self):
        self.d.start()
        wait_linked(self.d)
        return self.d

    def op(self, user, resource="test", **kw):
        """An operator logged in (account made by Farm)."""
        return Operator(self.p, user, PW, resource=resource, register=False, **kw).connect()

    def wait_polled(self, nodes=None, timeout=LONG):
        for n in nodes or self.nodes:
            self.d.wait_state(n, ("ok", "warning", "critical", "off", "maint", "down"), timeout)


def node_jid(node):
    return "%s@nodes.sb.test" % node


def chat_from(jid):
    """pred for wait_message: a chat message with a body from jid (bare)."""
    return lambda m: m["from_bare"] == jid and m["type"] == "chat" and m["body"] is not None


def ask(op, jid, text, thread=None, pred=None, timeout=sbtest.WAIT):
    """Send text to jid and return the first chat reply from it."""
    since = op.mark()
    op.send(jid, text, thread=thread)
    bare = jid.split("/", 1)[0]
    want = pred or (lambda m: True)
    return op.wait_message(lambda m: m["from_bare"] == bare and m["type"] in ("chat", "normal")
                           and m["body"] is not None and want(m), timeout, since=since)


def healthy(t, show, status):
    return t == "available" and show == "" and "normal" in status


# ---------------------------------------------------------------- the environment alone

@evidence
def test_env_prosody_starts_stops_restarts():
    p = Prosody()
    _current["prosody"] = p
    p.start()
    assert p.running()
    pid = p.proc.pid
    with open(p.pidfile) as f:
        assert int(f.read().strip()) == pid, "pidfile does not name our prosody"
    p.register("admin", PW)
    p.restart()
    assert p.proc.pid != pid
    rc = p.stop()
    assert rc == 0, "prosody exited with %s:\n%s" % (rc, p.tail())
    assert not p.running()
    # Nothing on the system config: the log is ours and names our host.
    assert "sb.test" in p.logtext()


@evidence
def test_env_operators_chat_presence_and_roster_group():
    p = Prosody(operators=("admin", "viewer"), nodes=("web", "mail"))
    _current["prosody"] = p
    p.start()
    a = Operator(p, "admin", PW).connect()
    v = Operator(p, "viewer", PW).connect()
    # mod_groups puts the other operator and the node JIDs in the roster.
    roster = a.roster()
    for j in ("viewer@sb.test", "web@nodes.sb.test", "mail@nodes.sb.test"):
        assert j in roster, roster
        assert roster[j]["subscription"] == "both", roster[j]
        assert GROUP in roster[j]["groups"], roster[j]
    a.wait_presence("viewer@sb.test", "available")
    v.send_presence(pshow="dnd", pstatus="cpu_temp 95 C (critical >= 90)")
    a.wait_presence("viewer@sb.test", ("available", "dnd", "cpu_temp 95 C (critical >= 90)"))
    since = v.mark()
    a.send("viewer@sb.test/test", "hello", thread="t-env")
    m = v.wait_message(lambda m: m["body"] == "hello", since=since)
    assert m["from"] == "admin@sb.test/test" and m["thread"] == "t-env" and m["type"] == "chat", m
    v.close()
    a.wait_presence("viewer@sb.test", "unavailable")


@evidence
def test_env_muc_room():
    p = Prosody(operators=("admin", "viewer"))
    _current["prosody"] = p
    p.start()
    a = Operator(p, "admin", PW).connect()
    v = Operator(p, "viewer", PW).connect()
    a.join_room(ROOM, "alice")
    v.join_room(ROOM, "vic")
    # Rooms show real JIDs (muc_room_default_public_jids), which the
    # daemon needs to authorize occupants.
    assert a.room_occupants(ROOM).get("vic") == "viewer@sb.test", a.room_occupants(ROOM)
    since = a.mark()
    v.say(ROOM, "hello room")
    m = a.wait_message(lambda m: m["type"] == "groupchat" and m["body"] == "hello room", since=since)
    assert m["from"] == ROOM + "/vic", m
    # After a server restart the clients reconnect and rejoin.
    s = a.sessions
    p.restart()
    a.wait_online(LONG, after_sessions=s)
    v.wait_online(LONG, after_sessions=s)
    since = a.mark()
    wait_for(lambda: v.presence_of(ROOM + "/alice") == ("available", "", ""), what="alice back in the room")
    v.say(ROOM, "after restart")
    a.wait_message(lambda m: m["type"] == "groupchat" and m["body"] == "after restart", since=since)


@evidence
def test_env_component_port():
    """A plain slixmpp ComponentXMPP on the component port: the server side
    of gateway mode works without switchboard."""
    p = Prosody(operators=("admin",), nodes=("web", "mail"))
    _current["prosody"] = p
    p.start()
    c = Component(p)
    assert c.connect() is True
    a = Operator(p, "admin", PW).connect()
    # Logging in, the operator's server probes every node in its roster.
    wait_for(lambda: sum("type=\"probe\"" in x and "mail@nodes.sb.test" in x for x in c.presence_log),
             what="a probe for mail@nodes.sb.test")
    c.send_presence("mail@nodes.sb.test", "admin@sb.test", pshow="away", pstatus="cpu_temp 87 C (warning >= 85)")
    a.wait_presence("mail@nodes.sb.test", ("available", "away", "cpu_temp 87 C (warning >= 85)"))
    since = a.mark()
    a.send("mail@nodes.sb.test", "status")
    wait_for(lambda: any("<ns0:body>status</ns0:body>" in x or ">status</" in x for x in c.messages),
             what="the component to get the chat message")
    c.send_message("mail@nodes.sb.test", "admin@sb.test/test", "mail: ok")
    a.wait_message(lambda m: m["from"] == "mail@nodes.sb.test" and m["body"] == "mail: ok", since=since)
    # The facts of issue 5: a second connection for the domain is refused,
    # so is a wrong secret and an unknown domain.
    assert Component(p).connect() == "conflict"
    assert Component(p, secret="wrong").connect() == "not-authorized"
    assert Component(p, domain="other.sb.test").connect() == "host-unknown"


# ---------------------------------------------------------------- gateway mode

@evidence
def test_component_presence_is_health():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    for n in DEMO_NODES:
        p = a.wait_presence(node_jid(n), healthy)
        assert p[2] == "all 6 sensors normal", (n, p)
    since = a.mark()
    t0 = time.monotonic()
    f.d.ok("sim set mail cpu_temp 87")
    a.wait_presence(node_jid("mail"), ("available", "away", "cpu_temp 87 C (warning >= 85)"))
    # Within about one poll period (1 s here; 5 s leaves room for a slow
    # sanitizer build, and still catches a batch flush on a slow timer).
    assert time.monotonic() - t0 < 5, "presence took %.1f s" % (time.monotonic() - t0)
    f.d.ok("sim set mail cpu_temp 95")
    a.wait_presence(node_jid("mail"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"))
    f.d.ok("sim set mail cpu_temp 40")
    a.wait_presence(node_jid("mail"), healthy)
    # Power off is xa, a node that does not answer is offline.
    f.d.ok("sim power db off")
    a.wait_presence(node_jid("db"), lambda t, s, st: t == "available" and s == "xa")
    f.d.ok("sim fail ftp on")
    a.wait_presence(node_jid("ftp"), "unavailable")
    f.d.ok("sim fail ftp off")
    a.wait_presence(node_jid("ftp"), healthy)
    # web never changed: no presence stanza for it since the first round.
    assert not a.presences_since(since, node_jid("web")), a.presences_since(since, node_jid("web"))
    assert a.presence_of(node_jid("web"))[0:2] == ("available", "")


@evidence
def test_component_status_by_chat_implied_node_same_thread():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    m = ask(a, node_jid("mail"), "status", thread="thread-42")
    assert m["body"].startswith("mail: ok since "), m["body"]
    assert "all 6 sensors normal" in m["body"], m["body"]
    assert m["thread"] == "thread-42", m["xml"]
    assert m["from_bare"] == node_jid("mail"), m["xml"]
    # The reply goes to the full JID that asked.
    assert m["to"] == "admin@sb.test/test", m["xml"]
    m = ask(a, node_jid("web"), "whoami")
    assert "xmpp:admin@sb.test, role admin" in m["body"], m["body"]
    assert "talking to node web" in m["body"], m["body"]


@evidence
def test_component_reload_by_chat_that_replaces_the_xmpp_channel():
    """"core reload" sent over XMPP, with the XMPP section changed: the
    reload stops the very link the command came in on and starts a new
    one.  A chat command may run on its link's thread (sb_loop_try_run):
    there the reload would join that thread from itself and free it under
    it (ASan saw it); it is handed to the loop thread instead.  The daemon
    keeps running, the new link connects and answers."""
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    assert ask(a, node_jid("mail"), "status")["body"].startswith("mail: ok since ")
    with open(f.d.conf) as fh:
        text = fh.read()
    assert 'driver = "xmpp";' in text
    with open(f.d.conf, "w") as fh:
        fh.write(text.replace('driver = "xmpp";', 'driver = "xmpp"; ping_interval = 45;', 1))
    a.send(node_jid("mail"), "core reload")
    wait_for(lambda: "configuration reloaded" in f.d.logtext(), sbtest.WAIT,
             "the reload to finish")
    assert f.d.proc.poll() is None, f.d.logtext()[-3000:]
    wait_linked(f.d)
    m = ask(a, node_jid("web"), "status", timeout=LONG)
    assert m["body"].startswith("web: ok since "), m["body"]
    assert f.d.ok("core show version")


@evidence
def test_component_reply_to_the_asking_resource_only():
    f = Farm()
    f.wait_polled()
    a1 = f.op("admin", resource="desk")
    a2 = f.op("admin", resource="phone")
    since2 = a2.mark()
    m = ask(a1, node_jid("db"), "status")
    assert m["to"] == "admin@sb.test/desk", m["xml"]
    # Barrier: the other resource asks too and gets its own answer; the
    # first answer never reached it.
    m2 = ask(a2, node_jid("db"), "status")
    assert m2["to"] == "admin@sb.test/phone", m2["xml"]
    got = [x for x in a2.messages_since(since2) if x["from_bare"] == node_jid("db")]
    assert len(got) == 1, [x["xml"] for x in got]


@evidence
def test_component_viewer_may_look_not_touch():
    f = Farm()
    f.wait_polled()
    v = f.op("viewer")
    m = ask(v, node_jid("mail"), "status")
    assert m["body"].startswith("mail: ok"), m["body"]
    m = ask(v, node_jid("mail"), "power cycle")
    assert "permission denied" in m["body"], m["body"]
    assert "needs role operator" in m["body"], m["body"]
    assert "confirm" not in m["body"].replace("confirmation", ""), m["body"]
    rc, out = f.d.x("events mail 20")
    assert "power cycle" not in out, out


@evidence
def test_component_unauthorized_gets_one_refusal_and_nothing_runs():
    f = Farm()
    f.wait_polled()
    s = f.op("stranger")
    a = f.op("admin")
    since = s.mark()
    s.send(node_jid("web"), "power off")
    first = s.wait_message(chat_from(node_jid("web")), since=since)
    assert "not authorized" in first["body"], first["xml"]
    # Barrier: an authorized command handled after the stranger's, then a
    # ping from the stranger answered over the same component stream: any
    # second refusal would have arrived by now.
    ask(a, node_jid("web"), "status")
    assert s.ping(node_jid("web")) is True
    got = [m for m in s.messages_since(since) if m["from_bare"] == node_jid("web")]
    assert len(got) == 1, [m["xml"] for m in got]
    # Logged, and nothing ran: no confirmation asked, power still on.
    wait_for(lambda: re.search(r'xmpp:stranger@sb\.test on xmpp: not authorized; refused "power off"',
                               f.d.logtext()), what="the refusal in the daemon log")
    assert f.d.node_state("web") == "ok", f.d.node_line("web")
    rc, out = f.d.x("events web 20")
    assert "power off" not in out, out
    rc, out = f.d.x("power web status")
    assert "on" in out, out


@evidence
def test_component_unauthorized_silent_refusal():
    f = Farm(refuse="silent")
    f.wait_polled()
    s = f.op("stranger")
    since = s.mark()
    s.send(node_jid("web"), "status")
    wait_for(lambda: 'xmpp:stranger@sb.test on xmpp: not authorized; refused "status"' in f.d.logtext(),
             what="the refusal in the daemon log")
    assert s.ping(node_jid("web")) is True
    got = [m for m in s.messages_since(since) if m["from_bare"] == node_jid("web")]
    assert got == [], [m["xml"] for m in got]


@evidence
def test_component_errors_and_bodyless_messages_are_not_commands():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    since = a.mark()
    to = node_jid("mail")
    a.send_raw("<message type='error' to='%s' id='e1'><body>status</body>"
               "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "</error></message>" % to)
    a.send_raw("<message type='chat' to='%s' id='e2'>"
               "<active xmlns='http://jabber.org/protocol/chatstates'/></message>" % to)
    a.send_raw("<message type='headline' to='%s' id='e3'><subject>no body</subject></message>" % to)
    # A carbon copy (XEP-0280) wrapping a command: a copy, never a command.
    a.send_raw("<message type='chat' to='%s' id='e4'><body>status</body>"
               "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
               "<message xmlns='jabber:client' type='chat' from='%s' to='admin@sb.test/x'>"
               "<body>status</body></message></forwarded></received></message>" % (to, to))
    m = ask(a, to, "whoami")        # the barrier: handled after the three above
    assert "role admin" in m["body"], m["body"]
    assert s_ping(a, to)
    got = [x for x in a.messages_since(since) if x["from_bare"] == to]
    assert len(got) == 1, [x["xml"] for x in got]


def s_ping(op, jid):
    r = op.ping(jid)
    assert r is True, "ping %s: %r" % (jid, r)
    return True


@evidence
def test_component_confirmation_flow():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    o = f.op("operator")
    m = ask(a, node_jid("web"), "power cycle", thread="pc")
    got = re.search(r"needs confirmation.*Send 'confirm (\w+)'", m["body"])
    assert got, m["body"]
    code = got.group(1)
    assert m["thread"] == "pc", m["xml"]
    # Not run yet; another person cannot use the code.
    rc, out = f.d.x("events web 20")
    assert "power cycle requested" not in out, out
    m = ask(o, node_jid("web"), "confirm " + code)
    assert "another conversation" in m["body"] or "unknown" in m["body"], m["body"]
    m = ask(a, node_jid("web"), "confirm " + code, thread="pc")
    assert m["body"] == "web: power cycle issued", m["body"]
    rc, out = f.d.x("events web 20")
    assert "power cycle requested" in out, out
    # A code works once.
    m = ask(a, node_jid("web"), "confirm " + code)
    assert "unknown or already used" in m["body"], m["body"]


@evidence
def test_component_long_reply_whole_and_in_order():
    f = Farm(scripts={"big.lua": BIG_SCRIPT})
    f.wait_polled()
    a = f.op("admin")
    since = a.mark()
    a.send(node_jid("mail"), "big", thread="big-1")

    def all_lines():
        parts = [m for m in a.messages_since(since) if m["from_bare"] == node_jid("mail")
                 and m["body"] is not None]
        text = "\n".join(m["body"] for m in parts)
        return parts if "line 0400" in text else None
    parts = wait_for(all_lines, LONG, "the 400 lines of 'big'")
    assert len(parts) >= 5, "a %d-byte reply in %d messages" % (len(BIG_TEXT), len(parts))
    for m in parts:
        assert len(m["body"].encode()) <= 4000, len(m["body"].encode())
        assert m["thread"] == "big-1", m["xml"][:300]
        assert m["type"] == "chat", m["xml"][:300]
        # Split on line boundaries: every piece is whole lines.
        assert m["body"].startswith("line "), m["body"][:60]
        assert re.search(r"line \d{4} x{40}$", m["body"]), m["body"][-60:]
    assert "\n".join(m["body"] for m in parts) == BIG_TEXT


@evidence
def test_component_long_reply_respects_max_message():
    f = Farm(scripts={"big.lua": BIG_SCRIPT}, max_message=500)
    f.wait_polled()
    a = f.op("admin")
    since = a.mark()
    a.send(node_jid("db"), "big")

    def all_lines():
        parts = [m for m in a.messages_since(since) if m["from_bare"] == node_jid("db")]
        return parts if any("line 0400" in (m["body"] or "") for m in parts) else None
    parts = wait_for(all_lines, LONG, "the 400 lines of 'big'")
    assert all(len(m["body"].encode()) <= 500 for m in parts), max(len(m["body"]) for m in parts)
    assert len(parts) >= 40, len(parts)
    assert "\n".join(m["body"] for m in parts) == BIG_TEXT


@evidence
def test_component_replies_one_after_another():
    """Twenty commands in a row, each answered before the next is sent.
    How fast is the benchmark's to say (make bench: reply latency against
    an echo baseline on the same prosody, doc/performance.md); no test
    asserts a timing."""
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    for _ in range(20):
        m = ask(a, node_jid("mail"), "whoami")
        assert "admin" in m["body"], m["body"]


@evidence
def test_component_subscription_requests():
    """Authorized identities are subscribed both ways; anyone else is
    refused (unsubscribed) and gets no presence."""
    f = Farm(group_operators=())        # nobody gets the nodes from the shared roster
    f.wait_polled()
    s = f.op("stranger")
    since = s.mark()
    s.subscribe(node_jid("web"))
    wait_for(lambda: any(r["from_bare"] == node_jid("web") and r["type"] == "unsubscribed"
                         for r in s.presences_since(since)), what="an unsubscribed answer")
    assert s.ping(node_jid("web")) is True
    assert not [r for r in s.presences_since(since)
                if r["from_bare"] == node_jid("web") and r["type"] == "available"]
    a = f.op("admin")
    since = a.mark()
    a.subscribe(node_jid("web"))
    a.wait_presence(node_jid("web"), healthy)
    types = {r["type"] for r in a.presences_since(since, node_jid("web"))}
    assert "subscribed" in types, types
    wait_for(lambda: a.roster().get(node_jid("web"), {}).get("subscription") == "both",
             what="a subscription both ways")
    f.d.ok("sim set web cpu_temp 95")
    a.wait_presence(node_jid("web"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"))


@evidence
def test_component_survives_a_long_run():
    """libstrophe 0.12.2 crashes a component right after the handshake
    unless worked around (issue 5): 20 s connected, with pings every
    second and state changes, and still the same link."""
    f = Farm(channel_extra="ping_interval = 1;")
    f.wait_polled()
    a = f.op("admin")
    end = time.monotonic() + 20
    i = 0
    while time.monotonic() < end:
        f.d.ok("sim set mail cpu_temp %d" % (95 if i % 2 == 0 else 40))
        a.wait_presence(node_jid("mail"), (lambda t, sh, st: sh == "dnd") if i % 2 == 0 else healthy)
        i += 1
    assert f.d.proc.poll() is None
    # One link all along: prosody authenticated the component once.
    n = f.p.logtext().count("External component successfully authenticated")
    assert n == 1, "the component connected %d times" % n
    assert re.search(r"\bconnected\b", channel_line(f.d)), channel_line(f.d)
    assert ask(a, node_jid("mail"), "whoami")


@evidence
def test_component_pings_stay_on_the_server():
    """XEP-0199 pings that watch the link go to an entity the server itself
    routes (its domain, the component's, a node's), never to a remote
    domain: the channel's 'server' is a TCP host, not a JID, and on a
    server with federation a ping to it would start an s2s connection
    (and time out, or be answered by a stranger).  Here federation is off,
    so prosody logs anything it would have to send to a remote domain."""
    # stanza_debug logs each stanza prosody receives: the evidence.
    f = Farm(channel_extra="ping_interval = 1;", prosody_kw={"extra_modules": ("stanza_debug",)})
    f.wait_polled()

    def out():
        m = re.search(r"(\d+) out", channel_line(f.d))
        return int(m.group(1)) if m else 0
    n0 = out()
    wait_for(lambda: out() >= n0 + 3, what="three pings (stanzas out: %d at start)" % n0)
    lines = f.p.logtext().splitlines()
    remote = [i for i, ln in enumerate(lines) if "Could not route stanza to remote" in ln]
    assert not remote, "prosody was asked to route %d stanzas to a remote domain, e.g.:\n%s" % (
        len(remote), "\n".join(lines[max(0, remote[0] - 1):remote[0] + 1]))


@evidence
def test_component_nonexistent_node_jid():
    """A JID of the component that names no configured node is no entity
    (RFC 6120 10.5.3.1, no such account): iqs get an error, not a result,
    a subscription request is not granted, and a chat message gets a
    short answer or an error, never a command run."""
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    j = "nosuch@nodes.sb.test"
    since = a.mark()
    a.send(j, "status")
    m = a.wait_message(lambda m: m["from_bare"] == j, since=since)
    assert m["type"] == "error" or "no such node" in (m["body"] or ""), m["xml"]
    info = a.disco_info(j)
    assert info is not None and info["type"] == "error", info and info["xml"]
    assert info["condition"] in ("service-unavailable", "item-not-found"), info["xml"]
    r = a.send_iq_raw("<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % j)
    assert r is not None and r["type"] == "error", r
    since = a.mark()
    a.subscribe(j)
    assert s_ping(a, node_jid("web"))      # a barrier over the same component stream
    granted = [r["xml"] for r in a.presences_since(since, j) if r["type"] in ("subscribed", "subscribe")]
    assert not granted, granted


@evidence
def test_component_unknown_iq_gets_service_unavailable():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    for to in (node_jid("mail"), "nodes.sb.test"):
        for typ in ("get", "set"):
            r = a.send_iq_raw("<iq type='%s' to='%s'><query xmlns='urn:example:nothing'/></iq>" % (typ, to))
            assert r is not None, "iq %s to %s left unanswered" % (typ, to)
            assert r["type"] == "error" and r["condition"] == "service-unavailable", r["xml"]
            assert ("from=\"%s\"" % to) in r["xml"] or ("from='%s'" % to) in r["xml"], r["xml"]
    assert a.ping(node_jid("mail")) is True


@evidence
def test_component_disco_info_and_items():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    for to in (node_jid("mail"), "nodes.sb.test"):
        r = a.disco_info(to)
        assert r is not None and r["type"] == "result", r and r["xml"]
        assert r["identities"], r["xml"]
        assert "http://jabber.org/protocol/disco#info" in r["features"], r["xml"]
        r = a.disco_items(to)
        assert r is not None and r["type"] == "result", r and r["xml"]


@evidence
def test_component_gateway_restart_reannounces_to_watchers():
    """A gateway that restarts while operators stay online gets no probes
    (prosody keeps nothing for a component): configured watchers get every
    node's presence again at connect."""
    f = Farm(channel_extra='watchers = [ "admin@sb.test" ];')
    f.wait_polled()
    a = f.op("admin")
    a.wait_presence(node_jid("mail"), healthy)
    f.d.stop()
    since = a.mark()
    d2 = Daemon(conf_text=f.conf_text)
    _current["daemon"] = d2
    d2.start()
    wait_linked(d2)
    d2.ok("sim set mail cpu_temp 95")
    a.wait_presence(node_jid("mail"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"), LONG)
    for n in ("ftp", "web", "db"):
        wait_for(lambda: a.presences_since(since, node_jid(n)), LONG, "%s re-announced" % n)


@evidence
def test_component_200_nodes_each_own_presence():
    nodes = ["n%03d" % i for i in range(200)]
    f = Farm(nodes=nodes, poll=2.0)
    f.wait_polled(timeout=LONG)
    a = f.op("admin")
    for n in nodes:
        a.wait_presence(node_jid(n), healthy, LONG)
    since = a.mark()
    f.d.ok("sim set n137 cpu_temp 95")
    a.wait_presence(node_jid("n137"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"), LONG)
    # A barrier for anything sent with or after that change.
    assert s_ping(a, node_jid("n000"))
    others = [r for r in a.presences_since(since)
              if r["from_bare"].endswith("@nodes.sb.test") and r["from_bare"] != node_jid("n137")]
    assert not others, "%d presence stanzas for other nodes, e.g. %s" % (len(others), others[0]["xml"])
    for n in nodes:
        if n != "n137":
            assert healthy(*a.presence_of(node_jid(n))), (n, a.presence_of(node_jid(n)))


# ---------------------------------------------------------------- group chat

@evidence
def test_muc_join_announce_command_and_rejoin_after_restart():
    f = Farm(rooms=[ROOM], scripts={"routes_room.lua": ROUTE_ROOM})
    f.wait_polled()
    a = f.op("admin")
    a.join_room(ROOM, "alice")
    # The daemon is in the room (its own nick).
    a.wait_presence(ROOM + "/switchboard", "available")
    since = a.mark()
    f.d.ok("sim set mail cpu_temp 95")
    m = a.wait_message(lambda m: m["type"] == "groupchat" and m["body"]
                       and "cpu_temp 95 C (critical >= 90)" in m["body"], since=since)
    assert m["from"] == ROOM + "/switchboard", m["xml"]
    assert "mail" in m["body"], m["body"]
    # "<node>: <command>" from an occupant whose real JID is authorized.
    since = a.mark()
    a.say(ROOM, "mail: status")
    m = a.wait_message(lambda m: m["type"] == "groupchat" and m["from"] == ROOM + "/switchboard"
                       and m["body"] and m["body"].startswith("mail: critical"), since=since)
    assert "cpu_temp 95 C" in m["body"], m["body"]
    # People talking to each other are not commands.
    since = a.mark()
    a.say(ROOM, "lunch: anyone?")
    a.say(ROOM, "web: whoami")
    m = a.wait_message(lambda m: m["type"] == "groupchat" and m["from"] == ROOM + "/switchboard"
                       and m["body"] and "role admin" in m["body"], since=since)
    said = [x for x in a.messages_since(since) if x["from"] == ROOM + "/switchboard"]
    assert len(said) == 1, [x["xml"] for x in said]
    # prosody restarts: the daemon is back in the room and answers there.
    s = a.sessions
    f.p.restart()
    a.wait_online(LONG, after_sessions=s)
    a.wait_presence(ROOM + "/switchboard", "available", LONG)
    wait_linked(f.d)
    since = a.mark()
    a.say(ROOM, "mail: status")
    a.wait_message(lambda m: m["type"] == "groupchat" and m["from"] == ROOM + "/switchboard"
                   and m["body"] and m["body"].startswith("mail: "), LONG, since=since)
    # Its own announcements ("mail: ok -> critical: ...") echoed by the
    # room were never taken for commands.
    echoes = [m["body"] for m in a.messages if m["from"] == ROOM + "/switchboard"
              and "unknown command" in (m["body"] or "")]
    assert not echoes, echoes


@evidence
def test_muc_rejoin_after_kick():
    f = Farm(rooms=[ROOM], start=False)
    a = f.op("admin")
    a.join_room(ROOM, "alice")          # alice owns the room: she may kick
    f.start_daemon()
    a.wait_presence(ROOM + "/switchboard", "available", LONG)
    since = a.mark()
    a.kick(ROOM, "switchboard")
    wait_for(lambda: any(r["from"] == ROOM + "/switchboard" and r["type"] == "unavailable"
                         for r in a.presences_since(since)), what="the kick")
    a.wait_presence(ROOM + "/switchboard", "available", LONG)
    since = a.mark()
    a.say(ROOM, "web: whoami")
    a.wait_message(lambda m: m["from"] == ROOM + "/switchboard" and "role admin" in (m["body"] or ""),
                   since=since)


@evidence
def test_muc_unauthorized_occupant_refused():
    f = Farm(rooms=[ROOM])
    f.wait_polled()
    s = f.op("stranger")
    s.join_room(ROOM, "eve")
    s.wait_presence(ROOM + "/switchboard", "available")
    since = s.mark()
    s.say(ROOM, "web: power off")
    wait_for(lambda: "xmpp:stranger@sb.test" in f.d.logtext() and "not authorized" in f.d.logtext(),
             what="the refusal in the daemon log")
    rc, out = f.d.x("events web 20")
    assert "power off" not in out, out
    said = [x for x in s.messages_since(since) if x["from"] == ROOM + "/switchboard"]
    assert all("confirm" not in (x["body"] or "") for x in said), [x["xml"] for x in said]


@evidence
def test_muc_room_hiding_real_jids_refuses_commands():
    """A room that shows real JIDs to moderators only, created by the
    operator (so the daemon is no moderator): commands are refused with a
    clear reason."""
    f = Farm(rooms=[ROOM], prosody_kw={"public_jids": False}, start=False)
    a = f.op("admin")
    a.join_room(ROOM, "alice")          # alice creates it and owns it
    f.start_daemon()
    a.wait_presence(ROOM + "/switchboard", "available", LONG)
    since = a.mark()
    a.say(ROOM, "mail: status")
    m = a.wait_message(lambda m: m["type"] == "groupchat" and m["from"] == ROOM + "/switchboard"
                       and m["body"], since=since)
    assert "real JID" in m["body"] or "refused" in m["body"], m["body"]
    assert not m["body"].startswith("mail: ok"), m["body"]


# ---------------------------------------------------------------- outage

@evidence
def test_outage_prosody_down_5s_reconnects_and_loses_nothing():
    # mod_offline keeps the notifications for admin when they reach prosody
    # before admin's own client is back: under test is the daemon's queue,
    # not the race between two reconnecting clients.
    f = Farm(scripts={"routes_admin.lua": ROUTE_ADMIN}, prosody_kw={"extra_modules": ("offline",)})
    f.wait_polled()
    a = f.op("admin")
    for n in DEMO_NODES:
        a.wait_presence(node_jid(n), healthy)
    s = a.sessions
    since = a.mark()
    f.p.stop()
    down = time.monotonic()
    # A burst of state changes while the server is away.
    f.d.ok("sim set mail cpu_temp 95")
    f.d.wait_state("mail", "critical")
    f.d.ok("sim set web cpu_temp 87")
    f.d.wait_state("web", "warning")
    f.d.ok("sim set db cpu_temp 95")
    f.d.wait_state("db", "critical")
    f.d.ok("sim set db cpu_temp 40")
    f.d.wait_state("db", "ok")
    f.d.ok("sim power ftp off")
    f.d.wait_state("ftp", "off")
    # 5 s of outage in all (the state changes above count).
    wait_for(lambda: time.monotonic() - down >= 5, 10, "5 s of outage")
    f.p.start()
    a.wait_online(LONG, after_sessions=s)
    wait_linked(f.d)
    a.wait_presence(node_jid("mail"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"), LONG)
    a.wait_presence(node_jid("web"), ("available", "away", "cpu_temp 87 C (warning >= 85)"), LONG)
    a.wait_presence(node_jid("db"), healthy, LONG)
    a.wait_presence(node_jid("ftp"), lambda t, sh, st: t == "available" and sh == "xa", LONG)
    # Every notification produced during the outage arrives, in order.
    want = ["mail: ok -> critical", "web: ok -> warning", "db: ok -> critical",
            "db: critical -> ok", "ftp: ok -> off"]

    def got():
        bodies = [m["body"] or "" for m in a.messages_since(since) if m["type"] != "error"]
        idx = []
        for w in want:
            hit = [i for i, b in enumerate(bodies) if w in b]
            if not hit:
                return None
            idx.append(hit[0])
        return idx
    idx = wait_for(got, LONG, "the outage's notifications: %s" % want)
    assert idx == sorted(idx), "notifications out of order: %r" % [
        m["body"] for m in a.messages_since(since)]
    errors = [m["xml"] for m in a.messages_since(since) if m["type"] == "error"]
    assert not errors, errors


@evidence
def test_outage_hung_server_detected_by_ping_console_responsive():
    """prosody stops answering (SIGSTOP) with the connection open: the
    console stays responsive, XEP-0199 pings find the dead link, and once
    the server answers again the daemon is back with the right presence."""
    f = Farm(channel_extra="ping_interval = 2;")
    f.wait_polled()
    a = f.op("admin")
    a.wait_presence(node_jid("mail"), healthy)
    f.p.pause()
    t0 = time.monotonic()
    f.d.ok("sim set mail cpu_temp 95")
    f.d.wait_state("mail", "critical")
    wait_for(lambda: not re.search(r"\bconnected\b", channel_line(f.d)), LONG,
             "the daemon to notice the hung server (core show channels)")
    assert time.monotonic() - t0 >= 1.5, "no hang to notice: %s" % channel_line(f.d)
    for _ in range(5):
        c0 = time.monotonic()
        f.d.ok("core show nodes")
        assert time.monotonic() - c0 < 2, "the console took %.1f s" % (time.monotonic() - c0)
    f.p.resume()
    wait_linked(f.d)
    a.wait_presence(node_jid("mail"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"), LONG)


@evidence
def test_outage_notifications_wait_in_the_spool_not_the_queue():
    """queue_max = 2 bounds only the replies kept while offline: the five
    notifications made while offline wait in the durable spool and all
    arrive after the reconnect, each with its stanza id "sb-<id>"."""
    f = Farm(scripts={"routes_admin.lua": ROUTE_ADMIN}, channel_extra="queue_max = 2;",
             prosody_kw={"extra_modules": ("offline",)})
    f.wait_polled()
    a = f.op("admin")
    a.wait_presence(node_jid("ftp"), healthy)
    since = a.mark()
    s = a.sessions
    f.p.stop()
    wait_for(lambda: not re.search(r"\bconnected\b", channel_line(f.d)), LONG,
             "the channel to notice the outage")
    want = ["mail: ok -> critical", "web: ok -> warning", "db: ok -> critical",
            "db: critical -> ok", "ftp: ok -> off"]
    for cmd, node, state in (("sim set mail cpu_temp 95", "mail", "critical"),
                             ("sim set web cpu_temp 87", "web", "warning"),
                             ("sim set db cpu_temp 95", "db", "critical"),
                             ("sim set db cpu_temp 40", "db", "ok"),
                             ("sim power ftp off", "ftp", "off")):
        f.d.ok(cmd)
        f.d.wait_state(node, state)
    f.p.start()
    a.wait_online(LONG, after_sessions=s)
    wait_linked(f.d)

    def all_in():
        text = "\n".join(m["body"] or "" for m in a.messages_since(since))
        return all(w in text for w in want)
    wait_for(all_in, LONG, "every notification of the outage: %s" % want)
    notes = [m for m in a.messages_since(since) if m["body"] and " -> " in m["body"]]
    assert all(re.fullmatch(r"sb-[0-9]+", m["id"] or "") for m in notes), [m["xml"] for m in notes]
    assert "offline queue full" not in f.d.logtext()


@evidence
def test_notification_carries_its_spool_id_once_confirmed():
    """A notification is one message whose stanza id is "sb-<id>"; the
    ping that follows it confirms it, so it is delivered once and the
    spool is empty afterwards."""
    f = Farm(scripts={"routes_admin.lua": ROUTE_ADMIN})
    f.wait_polled()
    a = f.op("admin")
    a.wait_presence(node_jid("mail"), healthy)
    since = a.mark()
    f.d.ok("sim set mail cpu_temp 95")
    m = a.wait_message(lambda m: "mail: ok -> critical" in (m["body"] or ""), since=since)
    assert re.fullmatch(r"sb-[0-9]+", m["id"] or ""), m["xml"]
    assert m["type"] == "chat", m["xml"]
    # Confirmed by the ping round trip, well before the spool's own
    # timeout for an unconfirmed delivery (60 s): its row is gone, and
    # nothing is sent again.
    nid = int(m["id"][3:])
    db = os.path.join(f.d.state, "switchboard.db")

    def spooled():
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM spool WHERE id = ?", (nid,)).fetchone()[0]
        finally:
            con.close()
    wait_for(lambda: spooled() == 0, 10, "notification %d to leave the spool" % nid)
    time.sleep(1)
    same = [x for x in a.messages_since(since) if x["id"] == m["id"]]
    assert len(same) == 1, [x["xml"] for x in same]
    assert "no confirmation" not in f.d.logtext()


# ---------------------------------------------------------------- agent mode

def agent_farm(**kw):
    """The daemon logs in as web@sb.test (agent mode, STARTTLS: prosody
    requires encryption before authentication, so a login proves TLS),
    serving the one node web.  web@sb.test is in nobody's roster: an
    operator subscribes."""
    f = Farm(nodes=["web"], mode="client", group_nodes=[], accounts=ACCOUNTS + ("web",),
             jid="web@sb.test", node="web", **kw)
    f.wait_polled()
    return f


@evidence
def test_client_mode_login_subscribe_presence_and_status():
    f = agent_farm()
    assert "web@sb.test/switchboard" in channel_line(f.d) or "web@sb.test" in channel_line(f.d), \
        channel_line(f.d)
    a = f.op("admin")
    a.subscribe("web@sb.test")
    # The daemon accepts an authorized identity's request (and asks back,
    # which slixmpp grants): both ways.
    a.wait_presence("web@sb.test", healthy, LONG)
    wait_for(lambda: a.roster().get("web@sb.test", {}).get("subscription") == "both", LONG,
             "a subscription both ways")
    f.d.ok("sim set web cpu_temp 87")
    a.wait_presence("web@sb.test", ("available", "away", "cpu_temp 87 C (warning >= 85)"))
    f.d.ok("sim set web cpu_temp 95")
    a.wait_presence("web@sb.test", ("available", "dnd", "cpu_temp 95 C (critical >= 90)"))
    f.d.ok("sim set web cpu_temp 40")
    a.wait_presence("web@sb.test", healthy)
    # Its stable resource answers commands, in the same thread.
    m = ask(a, "web@sb.test/switchboard", "status", thread="agent-1")
    assert m["body"].startswith("web: ok"), m["body"]
    assert m["thread"] == "agent-1", m["xml"]
    assert m["from"] == "web@sb.test/switchboard", m["xml"]
    # The bare JID too (the server routes it to the one resource).
    m = ask(a, "web@sb.test", "whoami")
    assert "role admin" in m["body"] and "talking to node web" in m["body"], m["body"]
    r = a.send_iq_raw("<iq type='get' to='web@sb.test/switchboard'>"
                      "<query xmlns='urn:example:nothing'/></iq>")
    assert r is not None and r["condition"] == "service-unavailable", r


@evidence
def test_client_mode_refuses_strangers_subscription():
    f = agent_farm()
    s = f.op("stranger")
    since = s.mark()
    s.subscribe("web@sb.test")
    wait_for(lambda: any(r["from_bare"] == "web@sb.test" and r["type"] == "unsubscribed"
                         for r in s.presences_since(since)), LONG, "an unsubscribed answer")
    wait_for(lambda: "subscription request from stranger@sb.test refused" in f.d.logtext()
             or ("stranger@sb.test" in f.d.logtext() and "refused" in f.d.logtext()),
             what="the refusal in the daemon log")
    avail = [r for r in s.presences_since(since)
             if r["from_bare"] == "web@sb.test" and r["type"] == "available"]
    assert not avail, [r["xml"] for r in avail]


# ---------------------------------------------------------------- ad-hoc commands (XEP-0050)
#
# MAY LAND LATER than the rest of the channel.  The design (issue 5): every
# dialplan command the requester's role allows is listed under the
# commands node, named by its leading words ("status", "power"), with a
# XEP-0004 form for its arguments; executing gives the same reply as
# typing; confirmation is a second form step.

ROLE_SCRIPT = """-- commands with fixed roles, to tell the lists apart
command "drain <node>" {
  help = "take a node out of service", role = "operator",
  run = function(ctx, a) return a.node .. ": drained" end,
}
command "wipe-all" {
  help = "admins only", role = "admin",
  run = function() return "wiped" end,
}
"""


def command_node(items, word):
    """The ad-hoc node of the command whose leading word is word."""
    for node, name in items or []:
        if node == word or (node or "").split("/")[-1] == word or (name or "").split()[:1] == [word]:
            return node
    return None


def reply_text(resp):
    """The text a completed ad-hoc command gave: its notes, else the form's
    instructions and text fields."""
    parts = [t for _, t in resp["notes"]]
    form = resp["form"]
    if form:
        parts += form["instructions"]
        for var in form["order"]:
            parts += form["fields"][var]["values"]
    return "\n".join(parts)


@evidence
def test_adhoc_disco_advertises_commands():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    # XEP-0050 2.1: support is a disco#info feature; 2.2: the list is
    # disco#items on the commands node (a top-level item is not required).
    for to in (node_jid("mail"), "nodes.sb.test"):
        r = a.disco_info(to)
        assert r and COMMANDS_NODE in r["features"], r and r["xml"]
    r = a.disco_items(node_jid("mail"), COMMANDS_NODE)
    assert r and r["type"] == "result" and r["items"], r and r["xml"]


@evidence
def test_adhoc_list_follows_role():
    f = Farm(scripts={"roles.lua": ROLE_SCRIPT})
    f.wait_polled()
    a = f.op("admin")
    v = f.op("viewer")
    o = f.op("operator")
    la = a.adhoc_list(node_jid("web"))
    lv = v.adhoc_list(node_jid("web"))
    lo = o.adhoc_list(node_jid("web"))
    assert la is not None and lv is not None and lo is not None, (la, lv, lo)
    for lst in (la, lv, lo):
        assert command_node(lst, "status"), lst
        for node, _ in lst:
            assert node, lst
    assert command_node(la, "wipe-all") and command_node(la, "drain"), la
    assert command_node(lo, "drain") and not command_node(lo, "wipe-all"), lo
    assert not command_node(lv, "drain") and not command_node(lv, "wipe-all"), lv
    # Items are the node's own JID.
    r = v.disco_items(node_jid("web"), COMMANDS_NODE)
    assert all(j == node_jid("web") for j, _, _ in r["items"]), r["xml"]
    # A stranger gets no commands.
    s = f.op("stranger")
    ls = s.adhoc_list(node_jid("web"))
    assert not ls, ls


@evidence
def test_adhoc_run_status_form():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    node = command_node(a.adhoc_list(node_jid("mail")), "status")
    assert node, a.adhoc_list(node_jid("mail"))
    res = a.adhoc_run(node_jid("mail"), node, {})
    last = res[-1]
    assert last["type"] == "result" and last["status"] == "completed", [r["xml"] for r in res]
    text = reply_text(last)
    typed = ask(a, node_jid("mail"), "status")["body"]
    assert text.startswith("mail: ok") and "all 6 sensors normal" in text, (text, last["xml"])
    assert re.sub(r"since \S+ ago", "", text) == re.sub(r"since \S+ ago", "", typed), (text, typed)


@evidence
def test_adhoc_power_with_confirmation_step():
    f = Farm()
    f.wait_polled()
    a = f.op("admin")
    node = command_node(a.adhoc_list(node_jid("web")), "power")
    assert node, a.adhoc_list(node_jid("web"))
    first = a.adhoc_run(node_jid("web"), node)[0]
    assert first["type"] == "result" and first["status"] == "executing", first["xml"]
    form = first["form"]
    assert form and "action" in form["fields"], first["xml"]
    field = form["fields"]["action"]
    assert field["type"] == "list-single", first["xml"]
    assert {"on", "off", "cycle", "status"} <= {v for _, v in field["options"]}, field
    res = a.adhoc_run(node_jid("web"), node, {"action": "cycle"}, CONFIRM)
    assert len(res) == 3, [r["xml"] for r in res]
    second = res[1]
    assert second["status"] == "executing" and second["form"], second["xml"]
    assert confirm_field(second["form"]), second["xml"]
    last = res[2]
    assert last["status"] == "completed", last["xml"]
    assert "web: power cycle issued" in reply_text(last), last["xml"]
    wait_for(lambda: "power cycle requested" in f.d.x("events web 20")[1], what="the power cycle to run")
    # A viewer may not.
    v = f.op("viewer")
    res = v.adhoc_run(node_jid("web"), node, {"action": "cycle"}, CONFIRM)
    texts = " ".join(reply_text(r) + (r["condition"] or "") for r in res)
    assert "permission denied" in texts or "forbidden" in texts or "not-allowed" in texts, \
        [r["xml"] for r in res]


def confirm_field(form):
    """The confirmation checkbox: the form's boolean field."""
    for var in (form or {}).get("order", []):
        if form["fields"][var]["type"] == "boolean":
            return var
    return None


def CONFIRM(resp):
    """The confirmation step: tick the checkbox the second form shows."""
    return {confirm_field(resp["form"]) or "confirm": "true"}


@evidence
def test_adhoc_client_mode_full_jid():
    """In agent mode the server answers for the bare JID: ad-hoc commands
    live at the full JID, whose resource is stable (issue 5)."""
    f = agent_farm()
    a = f.op("admin")
    a.subscribe("web@sb.test")
    a.wait_presence("web@sb.test", healthy, LONG)
    lst = a.adhoc_list("web@sb.test/switchboard")
    node = command_node(lst, "status")
    assert node, lst
    res = a.adhoc_run("web@sb.test/switchboard", node, {})
    assert res[-1]["status"] == "completed", [r["xml"] for r in res]
    assert reply_text(res[-1]).startswith("web: ok"), res[-1]["xml"]


# ---------------------------------------------------------------- presence mapping, roster suggestions

PRESENCE_MAIL = """
-- mail shows extended away, with its state in the status; the rest keep
-- the built-in mapping (nil).
presence(function(node)
  if node.name == "mail" then return "xa", "custom: " .. node.state end
end)
"""


@evidence
def test_presence_mapping_is_the_dialplans_to_change():
    f = Farm(scripts={"presence.lua": PRESENCE_MAIL})
    f.wait_polled()
    a = f.op("admin")
    a.wait_presence(node_jid("mail"), ("available", "xa", "custom: ok"))
    a.wait_presence(node_jid("web"), healthy)
    f.d.ok("sim set mail cpu_temp 95")
    a.wait_presence(node_jid("mail"), ("available", "xa", "custom: critical"))
    f.d.ok("sim set web cpu_temp 95")
    a.wait_presence(node_jid("web"), ("available", "dnd", "cpu_temp 95 C (critical >= 90)"))


@evidence
def test_component_suggests_roster_items_when_asked():
    f = Farm(group_operators=("admin", "viewer"),
             channel_extra='suggest_roster = true; roster_group = "Farm"; '
                           'watchers = [ "operator@sb.test" ];')
    s = f.op("operator")
    f.wait_polled()
    # The operator is in no shared group: the gateway asks it to subscribe
    # to each node, with a XEP-0144 item exchange naming the group.
    m = s.wait_message(lambda m: "rosterx" in m["xml"] and m["from_bare"] == node_jid("mail"),
                       timeout=LONG)
    assert "Farm" in m["xml"] and 'action="add"' in m["xml"], m["xml"]
    wait_for(lambda: any(p["type"] == "subscribe" for p in s.presences_since(0, node_jid("mail"))),
             LONG, "a subscription request from mail")
    # Once, not at every state change.
    f.d.ok("sim set mail cpu_temp 95")
    s.wait_presence(node_jid("mail"), lambda t, show, st: show == "dnd", timeout=LONG)
    rosterx = [x for x in s.messages_since(0) if "rosterx" in x["xml"] and x["from_bare"] == node_jid("mail")]
    assert len(rosterx) == 1, [x["xml"] for x in rosterx]
