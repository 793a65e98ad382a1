"""The IRC test environment: a private ngircd on a free loopback port, IRC
users that are an independent client implementation (Debian's python3-irc,
so a misunderstanding of the protocol shared with chan_irc.c cannot make a
test pass), stunnel for the TLS tunnel, and a switchboard config for the
IRC channel.

    s = Ngircd().start()
    alice = IrcUser(s, "alice").connect()
    alice.join("#ops")
    alice.say("#ops", "!status")
    m = alice.wait_msg(lambda m: m.frm == "sbbot" and m.target == "#ops")

Everything started here is registered with sbtest's cleanup, so no ngircd,
stunnel or client thread outlives its test, even when the test fails.

Facts this relies on (see issue 6): ngircd runs in the foreground with
"ngircd -n -f FILE" (as root it drops to its ServerUID and cannot write a
pid file in a private folder, so the PID is the child's); [Options]
Ident = no and DNS = no make a user "nick!~user@127.0.0.1"; ngircd re-reads
its config on SIGHUP (a changed Password applies to the next login).
"""
import os
import signal
import socket
import subprocess
import threading
import time

import sbtest
from sbtest import free_port, port_open, wait_for  # noqa: F401 - re-exported

SERVER_NAME = "irc.sb.test"
LONG = 60


class _Proc:
    """A child process of the test, stopped by PID in cleanup."""

    name = "process"

    def __init__(self):
        self.proc = None
        self.dir = sbtest.tmpdir()
        self.out = os.path.join(self.dir, self.name + ".out")
        sbtest.add_cleanup(self._cleanup)

    def _spawn(self, argv):
        logf = open(self.out, "ab")
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     cwd=self.dir)
        logf.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=sbtest.WAIT):
        """SIGTERM our child (by PID) and wait; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s ignored SIGTERM for %s s" % (self.name, timeout))
        return self.proc.returncode

    def _cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(sbtest.WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "%s did not stop on SIGTERM" % self.name
        return None

    def logtext(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# ---------------------------------------------------------------- ngircd

class Ngircd(_Proc):
    """A private ngircd: its own folder and config, on a free port of
    127.0.0.1.  channels are predefined (persistent, mode +n: only members
    may speak, which the bot's join handling must respect)."""

    name = "ngircd"

    def __init__(self, password=None, channels=("#ops",), max_nick=9):
        super().__init__()
        self.port = free_port()
        self.conf = os.path.join(self.dir, "ngircd.conf")
        self.log = self.out
        self.channels = list(channels)
        self.max_nick = max_nick
        # ngircd drops to its ServerUID at start; on SIGHUP it re-reads the
        # config as that user, so the folder and file must be readable.
        os.chmod(self.dir, 0o755)
        self.set_password(password, rehash=False)

    def set_password(self, password, rehash=True):
        """Write the config with this server password (None: none); with
        rehash, make the running server re-read it (SIGHUP)."""
        self.password = password
        chans = "".join("[Channel]\nName = %s\nModes = +n\n\n" % c for c in self.channels)
        text = """# ngircd config written by tests/e2e/irc_env.py: private, loopback only
[Global]
Name = {name}
Info = switchboard test server
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = switchboard test network
{password}

[Limits]
MaxConnectionsIP = 0
MaxNickLength = {max_nick}
PingTimeout = 120
PongTimeout = 20

[Options]
PAM = no
Ident = no
DNS = no

{chans}""".format(name=SERVER_NAME, port=self.port, max_nick=self.max_nick,
                  password=("Password = %s" % password) if password else "", chans=chans)
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o644)
        if rehash and self.running():
            before = self.logtext().count("Re-reading of configuration done")
            self.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: self.logtext().count("Re-reading of configuration done") > before,
                     what="ngircd to re-read its config")

    def start(self, timeout=sbtest.WAIT):
        """ngircd -n -f CONF in the background; returns when the port
        accepts connections."""
        if self.running():
            return self
        self._spawn(["ngircd", "-n", "-f", self.conf])

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("ngircd exited with %s:\n%s"
                                     % (self.proc.returncode, self.logtext()[-3000:]))
            return port_open(self.port)
        wait_for(up, timeout, "ngircd to listen on %d" % self.port)
        return self

    def stop(self, timeout=sbtest.WAIT):
        rc = super().stop(timeout)
        wait_for(lambda: not port_open(self.port), 10, "ngircd's port to close")
        return rc


# ---------------------------------------------------------------- stunnel

def make_cert(folder, cn=SERVER_NAME):
    """A self-signed certificate for cn, made offline; returns (cert, key)."""
    cert, key = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
    p = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "30", "-keyout", key, "-out", cert, "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:" + cn],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError("openssl failed: %s" % p.stderr)
    os.chmod(key, 0o600)
    return cert, key


class Stunnel(_Proc):
    """One stunnel4 in the foreground with one service.

    server: accept TLS on a free port and forward plaintext to
    connect_port, with cert/key.  client: accept plaintext on a free port
    and forward over TLS to connect_port, verifying the peer against
    cafile and its name.  self.port is where it accepts."""

    name = "stunnel"

    def __init__(self, mode, connect_port, cert=None, key=None, cafile=None, check_host=None):
        super().__init__()
        self.port = free_port()
        self.conf = os.path.join(self.dir, "stunnel.conf")
        self.log = os.path.join(self.dir, "stunnel.log")
        lines = ["; written by tests/e2e/irc_env.py", "foreground = yes", "pid =",
                 "output = %s" % self.log, "debug = info", "", "[irc-%s]" % mode,
                 "accept = 127.0.0.1:%d" % self.port, "connect = 127.0.0.1:%d" % connect_port]
        if mode == "server":
            lines += ["cert = %s" % cert, "key = %s" % key]
        else:
            lines += ["client = yes", "CAfile = %s" % cafile, "verifyChain = yes",
                      "checkHost = %s" % check_host]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=sbtest.WAIT):
        self._spawn(["stunnel4", self.conf])

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("stunnel exited with %s:\n%s%s"
                                     % (self.proc.returncode, self.logtext(), self.tunnel_log()))
            return port_open(self.port)
        wait_for(up, timeout, "stunnel to listen on %d" % self.port)
        return self

    def tunnel_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# ---------------------------------------------------------------- users

class Msg:
    """One line from the server, parsed: frm is the nick (or server name),
    mask the whole prefix, cmd upper case, params a list (the trailing one
    last), target the first parameter, text the last."""

    __slots__ = ("seq", "t", "raw", "mask", "frm", "cmd", "params")

    def __init__(self, seq, t, raw):
        self.seq, self.t, self.raw = seq, t, raw
        rest = raw
        self.mask = ""
        if rest.startswith(":"):
            self.mask, _, rest = rest[1:].partition(" ")
        self.frm = self.mask.split("!", 1)[0]
        trailing = None
        if " :" in rest:
            rest, _, trailing = rest.partition(" :")
        words = rest.split()
        self.cmd = words[0].upper() if words else ""
        self.params = words[1:] + ([trailing] if trailing is not None else [])

    @property
    def target(self):
        return self.params[0] if self.params else ""

    @property
    def text(self):
        return self.params[-1] if self.params else ""

    def __repr__(self):
        return "Msg(%r)" % self.raw


class IrcUser:
    """A person on IRC: a python3-irc ServerConnection driven by its own
    thread (the library's IRC object is not meant to be shared between
    threads: every command goes through a queue the thread drains).  Every
    line from the server is recorded as a Msg under a lock.

    The user name is the nick unless given; ngircd shows it as "~user"."""

    def __init__(self, server, nick, username=None, password=None, port=None):
        import irc.client  # Debian's python3-irc; imported late for a clear failure
        self._irc_client = irc.client
        self.server = server
        self.nick = nick
        self.username = username or nick
        self.password = password
        self.port = port or server.port
        self.lines = []
        self._cv = threading.Condition()
        self._seq = 0
        self._todo = []
        self._stop = False
        self._thread = None
        self._conn = None
        self._welcome = False
        self._closed = False
        sbtest.add_cleanup(self._cleanup)

    # -- life cycle

    def connect(self, timeout=sbtest.WAIT, expect_welcome=True):
        reactor = self._irc_client.IRC()
        self._reactor = reactor
        self._conn = reactor.server()
        self._conn.add_global_handler("all_raw_messages", self._on_raw, -10)
        self._conn.connect("127.0.0.1", self.port, self.nick, password=self.password,
                           username=self.username, ircname="test user " + self.nick)
        self._thread = threading.Thread(target=self._run, name="irc-" + self.nick, daemon=True)
        self._thread.start()
        if expect_welcome:
            self.wait_msg(lambda m: m.cmd == "001", timeout, "welcome for " + self.nick)
            with self._cv:
                self._welcome = True
        return self

    def _on_raw(self, conn, event):
        line = event.arguments[0]
        with self._cv:
            self._seq += 1
            self.lines.append(Msg(self._seq, time.monotonic(), line))
            self._cv.notify_all()

    def _run(self):
        while True:
            with self._cv:
                todo, self._todo = self._todo, []
                stop = self._stop
            for fn in todo:
                try:
                    fn()
                except Exception as e:  # noqa: B902 - recorded for the test
                    with self._cv:
                        self._seq += 1
                        self.lines.append(Msg(self._seq, time.monotonic(),
                                              ":client ERROR :%r" % e))
            if stop:
                break
            try:
                self._reactor.process_once(0.05)
            except Exception as e:  # noqa: B902 - a closed socket ends the thread
                with self._cv:
                    self._seq += 1
                    self.lines.append(Msg(self._seq, time.monotonic(), ":client ERROR :%r" % e))
                    self._closed = True
                break

    def _do(self, fn):
        with self._cv:
            self._todo.append(fn)

    def close(self, timeout=10):
        if self._thread is None:
            return
        conn = self._conn

        def bye():
            try:
                conn.disconnect("bye")
            except Exception:  # noqa: B902
                pass
        self._do(bye)
        with self._cv:
            self._stop = True
        self._thread.join(timeout)
        self._thread = None

    def _cleanup(self):
        self.close()

    # -- commands (from the test thread)

    def raw(self, line):
        self._do(lambda: self._conn.send_raw(line))

    def join(self, channel, key="", timeout=sbtest.WAIT):
        since = self.mark()
        self._do(lambda: self._conn.join(channel, key))
        self.wait_msg(lambda m: m.cmd == "JOIN" and m.frm == self.nick and
                      m.target.lower() == channel.lower(), timeout, "%s to join %s" % (self.nick, channel),
                      since=since)

    def say(self, target, text):
        self._do(lambda: self._conn.privmsg(target, text))

    def kick(self, channel, nick, reason="out"):
        self._do(lambda: self._conn.kick(channel, nick, reason))

    def whois(self, nick, timeout=sbtest.WAIT):
        """WHOIS nick: returns its AWAY text, or None if it is not away.
        Raises if the nick is not on the server."""
        since = self.mark()
        self._do(lambda: self._conn.whois([nick]))
        end = self.wait_msg(lambda m: m.cmd in ("318", "401") and len(m.params) > 1 and
                            m.params[1].lower() == nick.lower(), timeout, "WHOIS %s" % nick,
                            since=since)
        if end.cmd == "401":
            raise AssertionError("%s is not on the server" % nick)
        away = [m for m in self.since(since) if m.cmd == "301" and len(m.params) > 2 and
                m.params[1].lower() == nick.lower()]
        return away[-1].text if away else None

    def names(self, channel, timeout=sbtest.WAIT):
        """The nicks in a channel (prefixes like @ removed)."""
        since = self.mark()
        self._do(lambda: self._conn.names([channel]))
        self.wait_msg(lambda m: m.cmd == "366", timeout, "NAMES %s" % channel, since=since)
        out = []
        for m in self.since(since):
            if m.cmd == "353":
                out += [n.lstrip("@+") for n in m.text.split()]
        return out

    # -- what arrived

    def mark(self):
        """A position: only lines after it count for since= arguments."""
        with self._cv:
            return self._seq

    def since(self, mark=0):
        with self._cv:
            return [m for m in self.lines if m.seq > mark]

    def wait_msg(self, pred, timeout=sbtest.WAIT, what="a line", since=0):
        """Wait for the first line after since that pred accepts."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for m in self.lines:
                    if m.seq > since and pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = [m.raw for m in self.lines[-15:]]
                    raise AssertionError("%s: timed out after %s s waiting for %s; last lines:\n  %s"
                                         % (self.nick, timeout, what, "\n  ".join(tail)))
                self._cv.wait(min(left, 0.2))

    def wait_count(self, pred, n, timeout=sbtest.WAIT, what="lines", since=0):
        """Wait until n lines after since satisfy pred; returns them."""
        def enough():
            got = [m for m in self.since(since) if pred(m)]
            return got if len(got) >= n else None
        try:
            return wait_for(enough, timeout, what)
        except AssertionError:
            got = [m.raw for m in self.since(since) if pred(m)]
            raise AssertionError("%s: %d of %d %s after %s s; the last: %r"
                                 % (self.nick, len(got), n, what, timeout, got[-3:]))

    def from_bot(self, bot, cmd="PRIVMSG", target=None, since=0):
        """Lines the bot sent (PRIVMSG or NOTICE) to target (our nick
        when None)."""
        target = target or self.nick
        return [m for m in self.since(since) if m.frm == bot and m.cmd == cmd and
                m.target.lower() == target.lower()]

    def ask(self, bot, text, target=None, n=1, timeout=sbtest.WAIT, cmd="PRIVMSG"):
        """Send text to target (the bot in a query when None) and return
        the first n lines the bot sends back to that conversation."""
        since = self.mark()
        self.say(target or bot, text)
        where = target or self.nick
        return self.wait_count(lambda m: m.frm == bot and m.cmd == cmd and
                               m.target.lower() == where.lower(), n, timeout,
                               "%d answer line(s) to %r" % (n, text), since=since)[:n]


# ---------------------------------------------------------------- switchboard config

SENSORS = """(
        { name = "cpu_temp"; kind = "temperature"; unit = "C"; value = %(cpu).1f;
          high_warning = 85.0; high_critical = 90.0; },
        { name = "fan1"; kind = "fan"; unit = "RPM"; value = 7200.0;
          low_critical = 500.0; low_warning = 1000.0; }%(extra)s
      )"""

NODES = ("ftp", "web", "mail", "db")


def cfg_str(s):
    """A libconfig string literal (\\r and \\n as escapes)."""
    return '"' + (str(s).replace("\\", "\\\\").replace('"', '\\"')
                  .replace("\r", "\\r").replace("\n", "\\n")) + '"'


def node_conf(name, i=0, poll=1.0, extra_sensor=None):
    extra = ""
    if extra_sensor:
        extra = """,
        { name = %s; kind = "temperature"; unit = "C"; value = 20.0;
          high_warning = 85.0; high_critical = 90.0; }""" % cfg_str(extra_sensor)
    return """  { name = %s;
    poll_interval = %.1f;
    hal = { backend = "sim"; vendor = "Simulated Systems"; model = "SIM-1U"; serial = "IRC-%04d";
      sensors = %s; };
  }""" % (cfg_str(name), poll, i + 1, SENSORS % {"cpu": 40.0 + i, "extra": extra})


def daemon_conf(ircd, nodes=NODES, acl=None, scripts=(), channel_extra="", nick="sbbot",
                channels=("#ops",), port=None, password=None, log_level="debug", poll=1.0,
                extra_sensors=None, server="127.0.0.1"):
    """A switchboard config text with an IRC channel named "irc" (so
    notification destinations are "irc:#ops", "irc:alice").

    acl: a list of (match, role); default alice (user ~alice on
    127.0.0.1) admin, bob viewer, nobody else.  scripts: folders put before
    the shipped scripts.  channel_extra: more keys in the channel group.
    """
    if acl is None:
        acl = [("irc:alice!~alice@127.0.0.1", "admin"), ("irc:bob!~bob@127.0.0.1", "viewer")]
    script_dirs = list(scripts) + [os.path.join(sbtest.ROOT, "scripts")]
    extra_sensors = extra_sensors or {}
    nodes_text = ",\n".join(node_conf(n, i, poll, extra_sensors.get(n)) for i, n in enumerate(nodes))
    acl_text = ",\n".join("  { match = %s; role = %s; }" % (cfg_str(m), cfg_str(r)) for m, r in acl)
    return """# written by tests/e2e/irc_env.py
daemon = {
  log_level = %(log_level)s;
  syslog = false;
  scripts = [ %(scripts)s ];
  poll_interval = %(poll).1f;
  confirm_timeout = 60;
};

channels = (
  { name = "console"; driver = "console"; context = "default"; },
  { name = "irc"; driver = "irc";
    server = %(server)s; port = %(port)d;
    nick = %(nick)s;
    channels = [ %(channels)s ];
    %(password)s
    %(channel_extra)s
  }
);

acl = (
%(acl)s
);

nodes = (
%(nodes)s
);
""" % {"log_level": cfg_str(log_level), "scripts": ", ".join(cfg_str(s) for s in script_dirs),
       "poll": poll, "port": port or ircd.port, "nick": cfg_str(nick), "server": cfg_str(server),
       "channels": ", ".join(cfg_str(c) for c in channels),
       "password": ("password = %s;" % cfg_str(password)) if password else "",
       "channel_extra": channel_extra, "acl": acl_text, "nodes": nodes_text}


def script_dir(files):
    """A temporary scripts folder holding files {name: Lua text}; list it
    first in daemon.scripts (scripts= of daemon_conf)."""
    d = os.path.join(sbtest.tmpdir(), "scripts")
    os.makedirs(d)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d
