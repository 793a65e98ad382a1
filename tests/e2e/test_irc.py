"""The IRC channel end to end (issue 6), against a real ngircd on loopback
(tests/e2e/irc_env.py) with Debian's python3-irc as the people on IRC, so
that a misunderstanding of the protocol shared by the driver and its tests
cannot pass.

  test_env_*        the environment alone (ngircd and two clients)
  test_query_*      commands in a private query, masks and refusals
  test_channel_*    "!cmd", "<bot>: cmd", "<node>: cmd", the line limit
  test_announce_*   state changes through a route to irc:#ops
  test_away_*       AWAY mirrors the worst node
  test_injection_*  CR/LF in replies and policy reasons stay text
  test_flood_*      a long reply paced past ngircd's penalties
  test_reconnect_*  ngircd restarted: rejoin, queued announcement delivered
  test_nick_*       nick collision and NickServ
  test_kick_*       rejoin after a kick
  test_tls_*        through stunnel, as doc/irc.md describes
  test_config_*     config errors name file and line

Run: /usr/bin/python3 tests/e2e/run.py -k irc

When a test fails, the daemon's and ngircd's logs are kept in
build/test-logs/e2e-irc/<test>/.
"""
import functools
import os
import re
import shutil
import subprocess

import sbtest
from sbtest import Daemon, wait_for
from irc_env import (LONG, IrcUser, Ngircd, Stunnel, daemon_conf, make_cert, script_dir)

BOT = "sbbot"

TEST_SCRIPT = """-- commands for the IRC tests
command "lines <n:number>" {
  help = "n numbered lines",
  run = function(ctx, a)
    local t = {}
    for i = 1, a.n do t[#t + 1] = string.format("line %03d of %d", i, a.n) end
    return table.concat(t, "\\n")
  end,
}

command "inject" {
  help = "a reply that tries to smuggle IRC commands",
  run = function()
    return "harmless\\r\\nQUIT :injected\\r\\nPRIVMSG #ops :smuggled\\rKICK #ops alice\\0NUL"
  end,
}
"""
ROUTE_OPS = 'route { to = { "irc:#ops" } }\n'
# A policy (loaded after the shipped one, so it wins) whose reason tries
# to smuggle IRC commands.
EVIL_POLICY = """policy(function(node, r)
  if r.error then return "down", r.error end
  for _, s in ipairs(r.sensors) do
    if node.name == "db" and s.name == "cpu_temp" and s.value and s.value >= 90 then
      return "critical", "hot\\r\\nQUIT :policy\\r\\nJOIN #evil\\rKICK #ops alice"
    end
  end
  return "ok", "fine"
end)
"""


# ---------------------------------------------------------------- helpers

_current = {}


def evidence(fn):
    """On failure keep the daemon's and ngircd's logs, and end the message
    with the daemon log's last lines."""
    @functools.wraps(fn)
    def run():
        _current.clear()
        try:
            return fn()
        except BaseException as e:
            keep = os.path.join(sbtest.ROOT, "build", "test-logs", "e2e-irc", fn.__name__)
            shutil.rmtree(keep, ignore_errors=True)
            os.makedirs(keep, exist_ok=True)
            tail = []
            for name, obj in _current.items():
                for attr in ("log", "conf"):
                    path = getattr(obj, attr, None)
                    if path and os.path.exists(path):
                        shutil.copy(path, os.path.join(keep, "%s.%s" % (name, os.path.basename(path))))
                if isinstance(obj, Daemon):
                    tail = obj.logtext().splitlines()[-15:]
            note = "\n-- logs kept in %s; daemon log ends:\n%s" % (keep, "\n".join(tail))
            if isinstance(e, AssertionError):
                raise AssertionError(str(e) + note) from e
            raise
    return run


def channel_line(d, name="irc"):
    for line in d.ok("core show channels").splitlines():
        if line.split() and line.split()[0] == name:
            return line
    return ""


def connects(d):
    m = re.search(r"(\d+) connects", channel_line(d))
    return int(m.group(1)) if m else 0


class Farm:
    """ngircd + the daemon on an IRC channel named "irc" + people."""

    def __init__(self, scripts=None, ircd_kw=None, start=True, **conf_kw):
        self.ircd = Ngircd(**(ircd_kw or {}))
        _current["ngircd"] = self.ircd
        self.ircd.start()
        dirs = [script_dir(scripts)] if scripts else []
        self.conf_kw = conf_kw
        self.d = Daemon(conf_text=daemon_conf(self.ircd, scripts=dirs, **conf_kw))
        _current["daemon"] = self.d
        self.nick = conf_kw.get("nick", BOT)
        self.nchannels = len(conf_kw.get("channels", ("#ops",)))
        if start:
            self.start_daemon()

    def start_daemon(self, nick=None):
        self.d.start()
        self.wait_joined(nick=nick)
        return self.d

    def wait_joined(self, nick=None, timeout=LONG):
        """Wait until the bot says it is connected and in its channels."""
        want = "connected as %s, in %d of" % (nick or self.nick, self.nchannels)
        return wait_for(lambda: want in channel_line(self.d) and channel_line(self.d),
                        timeout, "the bot to connect and join (core show channels: %r)"
                        % channel_line(self.d))

    def user(self, nick, username=None, join=("#ops",), **kw):
        u = IrcUser(self.ircd, nick, username=username, **kw).connect()
        for c in join:
            u.join(c)
        return u


# ---------------------------------------------------------------- the environment

@evidence
def test_env_ngircd_and_two_clients():
    s = Ngircd().start()
    _current["ngircd"] = s
    a = IrcUser(s, "alice").connect()
    b = IrcUser(s, "bob").connect()
    a.join("#ops")
    b.join("#ops")
    since = b.mark()
    a.say("#ops", "hello from alice")
    m = b.wait_msg(lambda m: m.cmd == "PRIVMSG" and m.frm == "alice", since=since)
    assert m.target == "#ops" and m.text == "hello from alice", m
    assert m.mask == "alice!~alice@127.0.0.1", m.mask
    assert b.whois("alice") is None


# ---------------------------------------------------------------- commands

@evidence
def test_query_commands_allowed_and_refused_by_mask():
    f = Farm()
    alice = f.user("alice", join=())
    r = alice.ask(BOT, "whoami")
    assert "irc:alice!~alice@127.0.0.1, role admin" in r[0].text, r
    r = alice.ask(BOT, "status mail")
    assert r[0].text.startswith("mail: "), r
    # A viewer may look but not act.
    bob = f.user("bob", join=())
    r = bob.ask(BOT, "status")
    assert "nodes" in r[0].text or "ok" in r[0].text, r
    r = bob.ask(BOT, "power web cycle")
    assert "permission denied" in r[0].text, r
    # No mask: one short NOTICE, and nothing runs however often she asks.
    eve = f.user("eve", join=())
    since = eve.mark()
    for _ in range(3):
        eve.say(BOT, "power web off")
    eve.wait_msg(lambda m: m.frm == BOT and m.cmd == "NOTICE", since=since)
    # Another user name is not alice.
    impostor = IrcUser(f.ircd, "alice2", username="mallory").connect()
    impostor.say(BOT, "power web off")
    impostor.wait_msg(lambda m: m.frm == BOT and m.cmd == "NOTICE" and m.text == "not authorized")
    wait_for(lambda: f.d.logtext().count("not authorized; refused") >= 4,
             what="four refusals in the log")
    notes = eve.from_bot(BOT, "NOTICE", since=since)
    assert [m.text for m in notes] == ["not authorized"], notes
    assert not eve.from_bot(BOT, "PRIVMSG", since=since)
    assert f.d.node_state("web") == "ok", f.d.node_line("web")     # nothing ran


@evidence
def test_channel_commands_are_answered_in_the_channel():
    f = Farm(scripts={"irc_test.lua": TEST_SCRIPT})
    alice = f.user("alice")
    f.d.wait_state("mail", ("ok", "warning", "critical"))
    r = alice.ask(BOT, "mail: status", target="#ops")
    assert r[0].text.startswith("mail: ok"), r
    r = alice.ask(BOT, "!whoami", target="#ops")
    assert "irc:alice!~alice@127.0.0.1" in r[0].text and "channel irc" in r[0].text, r
    r = alice.ask(BOT, "%s: status web" % BOT, target="#ops")
    assert r[0].text.startswith("web: "), r
    # People talking to each other, or to someone else: the bot keeps quiet.
    since = alice.mark()
    alice.say("#ops", "lunch at noon?")
    alice.say("#ops", "bob: can you check mail later")
    r = alice.ask(BOT, "!lines 1", target="#ops")
    assert [m.text for m in alice.from_bot(BOT, target="#ops", since=since)] == ["line 001 of 1"]


@evidence
def test_channel_long_reply_is_cut_and_whole_in_query():
    f = Farm(scripts={"irc_test.lua": TEST_SCRIPT}, channel_extra="flood_rate = 3.0;")
    alice = f.user("alice")
    since = alice.mark()
    alice.say("#ops", "!lines 50")
    got = alice.wait_count(lambda m: m.frm == BOT and m.target == "#ops", 11, since=since,
                           what="10 lines and the pointer")
    assert [m.text for m in got[:10]] == ["line %03d of 50" % i for i in range(1, 11)], got
    assert got[10].text == "(40 more lines cut; for all of it: /msg %s lines 50)" % BOT, got[10]
    # Nothing more comes to the channel.
    r = alice.ask(BOT, "!lines 1", target="#ops")
    assert len(alice.from_bot(BOT, target="#ops", since=since)) == 12
    # In a query the reply arrives whole, in order.
    got = alice.ask(BOT, "lines 50", n=50, timeout=LONG)
    assert [m.text for m in got] == ["line %03d of 50" % i for i in range(1, 51)]


# ---------------------------------------------------------------- health on IRC

@evidence
def test_announce_state_change_in_channel():
    f = Farm(scripts={"zz_irc_route.lua": ROUTE_OPS})
    alice = f.user("alice")
    f.d.wait_state("mail", "ok")
    since = alice.mark()
    f.d.ok("sim set mail cpu_temp 95")
    # Notifications name their event ("[E7] mail: ok -> ..."), and the
    # first polls' may come grouped before it.
    m = alice.wait_msg(lambda m: m.frm == BOT and m.cmd == "NOTICE" and m.target == "#ops" and
                       "mail: ok -> critical" in m.text, since=since, what="the announcement")
    assert "mail: ok -> critical: cpu_temp 95 C (critical >= 90)" in m.text, m


@evidence
def test_away_mirrors_the_worst_node_and_clears():
    f = Farm()
    alice = f.user("alice", join=())
    for n in ("ftp", "web", "mail", "db"):
        f.d.wait_state(n, "ok")
    assert alice.whois(BOT) is None
    f.d.ok("sim set web cpu_temp 87")
    f.d.wait_state("web", "warning")
    wait_for(lambda: alice.whois(BOT) == "web: warning, cpu_temp 87 C (warning >= 85)",
             what="AWAY for the warning")
    f.d.ok("sim set mail cpu_temp 95")
    f.d.wait_state("mail", "critical")
    wait_for(lambda: alice.whois(BOT) == "mail: critical, cpu_temp 95 C (critical >= 90) (+1 more)",
             what="AWAY for the worse node")
    f.d.ok("sim set mail cpu_temp 40")
    f.d.ok("sim set web cpu_temp 40")
    f.d.wait_state("mail", "ok")
    f.d.wait_state("web", "ok")
    wait_for(lambda: alice.whois(BOT) is None, what="AWAY to clear")


# ---------------------------------------------------------------- injection

@evidence
def test_injection_in_reply_and_policy_reason_stays_text():
    f = Farm(scripts={"irc_test.lua": TEST_SCRIPT, "zz_irc_route.lua": ROUTE_OPS,
                      "zz_policy.lua": EVIL_POLICY}, start=False)
    alice = f.user("alice")
    f.start_daemon()
    first = connects(f.d)
    since = alice.mark()
    r = alice.ask(BOT, "inject", n=2)
    assert [m.text for m in r] == ["harmless", "QUIT :injected"], r
    r = alice.wait_count(lambda m: m.frm == BOT and m.target == alice.nick, 3, since=since)
    assert r[2].text == "PRIVMSG #ops :smuggled KICK #ops alice", r
    alice.ask(BOT, "!inject", target="#ops", n=3)
    # A policy's reason with CR LF: text in the announcement and the AWAY
    # message, never a command.
    f.d.ok("sim set db cpu_temp 95")
    alice.wait_msg(lambda m: m.frm == BOT and m.cmd == "NOTICE" and
                   "db: ok -> critical: hot" in m.text, since=since,
                   what="the db announcement")
    wait_for(lambda: "QUIT :policy" in " ".join(m.text for m in alice.from_bot(
             BOT, "NOTICE", "#ops", since=since)), what="the reason's text in #ops")
    wait_for(lambda: "QUIT :policy" in (alice.whois(BOT) or ""), what="AWAY with the reason")
    # The bot never quit, joined #evil, kicked or spoke in #ops but for the
    # announcements; its connection is the first one.
    lines = alice.since(since)
    assert not [m for m in lines if m.frm == BOT and m.cmd in ("QUIT", "KICK", "JOIN")], lines
    assert not [m for m in lines if m.frm == BOT and m.cmd == "PRIVMSG" and m.target == "#ops"
                and "smuggled" == m.text], lines
    assert BOT in alice.names("#ops")
    assert "#evil" not in f.ircd.logtext()
    assert connects(f.d) == first, channel_line(f.d)


# ---------------------------------------------------------------- flood control

@evidence
def test_flood_long_query_reply_arrives_whole_and_bot_survives():
    # A burst of 10 is more than ngircd takes at once from a user (it
    # handles 3 commands, then stalls the connection for a second): its
    # penalties meet the bot, which must wait, not lose lines or be killed.
    f = Farm(scripts={"irc_test.lua": TEST_SCRIPT},
             channel_extra="flood_burst = 10; flood_rate = 5.0;")
    alice = f.user("alice", join=())
    first = connects(f.d)
    got = alice.ask(BOT, "lines 300", n=300, timeout=6 * LONG)
    assert [m.text for m in got] == ["line %03d of 300" % i for i in range(1, 301)]
    # paced: 290 lines after the burst at 5 a second take 58 s at least
    assert got[-1].t - got[0].t >= 55, got[-1].t - got[0].t
    assert connects(f.d) == first, channel_line(f.d)
    r = alice.ask(BOT, "whoami")
    assert "role admin" in r[0].text
    assert "Excess" not in f.ircd.logtext() and "sbbot" in alice.names("#ops")


# ---------------------------------------------------------------- reconnect

@evidence
def test_reconnect_after_ngircd_restart_delivers_queued_announcement():
    f = Farm(scripts={"zz_irc_route.lua": ROUTE_OPS}, ircd_kw={"password": "pw-one"},
             password="pw-one")
    f.d.wait_state("mail", "ok")
    first = connects(f.d)
    f.ircd.stop()
    wait_for(lambda: "disconnected" in channel_line(f.d) or "connecting" in channel_line(f.d),
             what="the bot to notice")
    # Produced while the server is away: kept in the spool.
    f.d.ok("sim set mail cpu_temp 95")
    f.d.wait_state("mail", "critical")
    # The server comes back with a password the bot does not know, so that
    # alice is surely in #ops before the bot can be; then the old one.
    f.ircd.set_password("pw-two", rehash=False)
    f.ircd.start()
    alice = f.user("alice", password="pw-two")
    since = alice.mark()
    wait_for(lambda: "Bad password" in f.d.logtext() or "refused the password" in f.d.logtext(),
             LONG, "the bot to be refused once")
    f.ircd.set_password("pw-one")
    m = alice.wait_msg(lambda m: m.frm == BOT and m.cmd == "NOTICE" and m.target == "#ops" and
                       "mail: ok -> critical" in m.text, LONG, "the queued announcement",
                       since=since)
    assert "mail: ok -> critical: cpu_temp 95 C" in m.text, m
    f.wait_joined()
    assert connects(f.d) > first + 1, channel_line(f.d)
    # and AWAY is set again on the new connection
    wait_for(lambda: (alice.whois(BOT) or "").startswith("mail: critical"), what="AWAY again")


@evidence
def test_reconnect_host_name_resolved_off_the_loop():
    # "localhost" goes through the resolver thread, then a numeric connect.
    f = Farm(server="localhost")
    assert re.search(r"irc irc: localhost is 127\.0\.0\.1", f.d.logtext()), f.d.logtext()
    assert "is not this host" not in f.d.logtext()
    alice = f.user("alice", join=())
    assert "role admin" in alice.ask(BOT, "whoami")[0].text
    # and again after the server went away
    first = connects(f.d)
    f.ircd.stop()
    f.ircd.start()
    wait_for(lambda: connects(f.d) > first and "connected as" in channel_line(f.d), LONG,
             "the bot to reconnect")
    assert f.d.logtext().count("localhost is 127.0.0.1") >= 2


# ---------------------------------------------------------------- nicks

@evidence
def test_nick_collision_takes_alternative_and_identifies():
    f = Farm(channel_extra='nickserv_password = "s3cret"; alt_nicks = [ "sbbot_" ];',
             start=False)
    squatter = IrcUser(f.ircd, BOT, username="squat").connect()
    nickserv = IrcUser(f.ircd, "NickServ").connect()
    f.start_daemon(nick="sbbot_")
    m = nickserv.wait_msg(lambda m: m.cmd == "PRIVMSG" and m.frm == "sbbot_",
                          what="IDENTIFY from the bot")
    assert m.text == "IDENTIFY s3cret" and m.target == "NickServ", m
    alice = f.user("alice", join=())
    r = alice.ask("sbbot_", "whoami")
    assert "role admin" in r[0].text, r
    assert squatter.whois(BOT) is None     # the squatter keeps its nick
    assert "nick sbbot is taken; using sbbot_" in f.d.logtext()


@evidence
def test_kick_rejoin():
    f = Farm(channels=("#ops", "#kick"), start=False)
    alice = f.user("alice", join=("#kick",))    # first in: channel operator
    f.start_daemon()
    since = alice.mark()
    alice.kick("#kick", BOT, "testing")
    alice.wait_msg(lambda m: m.cmd == "KICK" and m.params[1] == BOT, since=since)
    alice.wait_msg(lambda m: m.cmd == "JOIN" and m.frm == BOT and m.target == "#kick",
                   LONG, "the bot to rejoin", since=since)
    assert "kicked from #kick by alice" in f.d.logtext()


# ---------------------------------------------------------------- TLS

@evidence
def test_tls_through_stunnel():
    ircd = Ngircd().start()
    _current["ngircd"] = ircd
    cert, key = make_cert(ircd.dir)
    server = Stunnel("server", ircd.port, cert=cert, key=key).start()
    client = Stunnel("client", server.port, cafile=cert, check_host="irc.sb.test").start()
    _current["stunnel-server"] = server
    _current["stunnel-client"] = client
    d = Daemon(conf_text=daemon_conf(ircd, port=client.port))
    _current["daemon"] = d
    d.start()
    wait_for(lambda: "connected as sbbot, in 1 of 1" in channel_line(d), LONG, "the bot via stunnel")
    alice = IrcUser(ircd, "alice").connect()
    alice.join("#ops")
    r = alice.ask(BOT, "!whoami", target="#ops")
    assert "irc:alice!~alice@127.0.0.1" in r[0].text, r
    # Both ends of the tunnel carried the bot: TLS between them.
    wait_for(lambda: "accepted connection" in server.tunnel_log(), what="the server side")
    assert re.search(r"(TLS|SSL)", server.tunnel_log()), server.tunnel_log()
    assert "connected remote server" in client.tunnel_log(), client.tunnel_log()
    assert "is not this host" not in d.logtext()


# ---------------------------------------------------------------- configuration

BAD = [
    ("unknown key", 'colour = "blue";', r":\d+: unknown key 'colour'"),
    ("bad channel", 'channels = [ "#ops key extra" ];', r"channels: \"#ops key extra\""),
    ("tls prefix", 'server = "#irc.example.org";', r"no TLS"),
    ("bad port", "port = 70000;", r"port must be 1 to 65535"),
    ("bad nick", 'nick = "bad nick";', r"not a valid nick"),
    ("bad refuse", 'refuse = "loud";', r"refuse must be notice or silent"),
    ("bad rate", "flood_rate = 0.0;", r"flood_rate must be"),
]


def test_config_errors_name_file_and_line():
    t = sbtest.tmpdir()
    for name, key, pattern in BAD:
        path = os.path.join(t, name.replace(" ", "_") + ".conf")
        with open(path, "w") as f:
            f.write('channels = (\n  { name = "irc"; driver = "irc";\n    %s\n  }\n);\n' % key)
        p = subprocess.run([sbtest.BIN, "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, (name, p.returncode, p.stdout, p.stderr)
        assert path in p.stderr and re.search(pattern, p.stderr), (name, p.stderr)
    path = os.path.join(t, "good.conf")
    with open(path, "w") as f:
        f.write('channels = (\n  { name = "irc"; driver = "irc"; server = "127.0.0.1";'
                ' channels = [ "#ops", "#secret sesame" ]; alt_nicks = [ "sb_", "sb__" ];'
                ' flood_rate = 0.5; refuse = "silent"; }\n);\n')
    p = subprocess.run([sbtest.BIN, "-c", path, "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sbtest.BIN, "--dump-keys"], capture_output=True, text=True, timeout=30)
    for key in ("server", "port", "password", "nick", "alt_nicks", "username", "realname",
                "channels", "nickserv_password", "rejoin", "max_channel_lines", "flood_burst",
                "flood_rate", "queue_max", "refuse"):
        assert "channels[driver=irc].%s" % key in p.stdout, key
