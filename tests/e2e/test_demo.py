"""tools/demo, driven through its standard input as a script would: it
starts the demo farm (a private prosody and, when the build has the irc
driver, a private ngircd; with ipmi_sim installed, a simulated BMC read as
a fifth node, bmc1; then the daemon serving every node as its own
XMPP JID, a bot in #ops, and the status page), runs the console's commands,
and when the console ends (or on SIGTERM/SIGINT) leaves no process and no
temp folder behind.

tools/demo appends "PID PART" for each process it starts to the file named
by SB_DEMO_PIDFILE, and writes what it printed about logging in with XMPP,
connecting with IRC and opening the status page to the file named by
SB_DEMO_INFO; TMPDIR points at a folder of the test's own, which must be
empty again afterwards.  An independent XMPP client (xmpp_env.Operator, on
Debian's python3-slixmpp) logs in with the printed credentials, as a
newcomer's client would; an IRC client of a few lines on a plain socket
joins #ops with the printed port and nick; urllib fetches the printed
URL."""
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import sbtest
from sbtest import wait_for

NODES = ("ftp", "web", "mail", "db")
GROUP = "Systems Management"
DEMO = os.path.join(sbtest.ROOT, "tools", "demo")


@functools.lru_cache(maxsize=None)
def irc_driver():
    """The build has the irc channel driver (its keys are listed)."""
    p = subprocess.run([os.path.join(sbtest.ROOT, sbtest.BUILD, "switchboard"), "--dump-keys"],
                       capture_output=True, text=True, timeout=60)
    return "channels[driver=irc]" in p.stdout


def irc_expected():
    """The demo runs a private ngircd: the driver is built and ngircd is
    installed."""
    return irc_driver() and shutil.which("ngircd") is not None


def demo_env(**extra):
    t = sbtest.tmpdir()
    tmp = os.path.join(t, "tmp")
    os.mkdir(tmp)
    pidfile = os.path.join(t, "pids")
    env = dict(os.environ, TMPDIR=tmp, SB_DEMO_PIDFILE=pidfile, BUILD=sbtest.BUILD, **extra)
    return t, tmp, pidfile, env


def started(pidfile):
    """{part: [pid, ...]} from the demo's PID file."""
    parts = {}
    try:
        with open(pidfile) as f:
            for line in f:
                pid, part = line.split()
                parts.setdefault(part, []).append(int(pid))
    except FileNotFoundError:
        pass
    return parts


def running(pid):
    """True if pid is a live switchboard, prosody, ngircd or ipmi_sim process (not a
    zombie, and not a later process that happens to reuse the number)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and \
        (b"switchboard" in cmdline or b"prosody" in cmdline or b"ngircd" in cmdline or
         b"ipmi_sim" in cmdline)


def kill_leftovers(pidfile):
    """If the test fails half-way, do not leave the demo's processes behind."""
    for pids in started(pidfile).values():
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def assert_all_gone(pidfile, tmp, output, xmpp=True, irc=None):
    """Everything the demo started (its PID file) is gone, and so is its
    folder; with xmpp (irc: by default when expected) prosody (ngircd) was
    among them."""
    if irc is None:
        irc = irc_expected()
    parts = started(pidfile)
    assert "daemon" in parts and "console" in parts, (parts, output)
    if xmpp:
        assert "prosody" in parts, (parts, output)
    if irc:
        assert len(parts.get("ngircd", [])) == 1, (parts, output)
    left = [(part, pid) for part, pids in parts.items() for pid in pids if running(pid)]
    assert not left, "still running after the demo ended: %r" % left
    assert os.listdir(tmp) == [], "temp folder left: %r" % os.listdir(tmp)
    m = re.search(r"^demo: working in (\S+)$", output, re.M)
    assert m, output
    assert m.group(1).startswith(tmp + "/"), (m.group(1), tmp)
    assert not os.path.exists(m.group(1))


def node_names(table):
    return {ln.split()[0] for ln in table.splitlines() if ln.split()}


def command_output(stdout, cmd):
    """What the console printed for cmd (up to the next prompt)."""
    assert "switchboard> " + cmd in stdout, stdout
    return stdout.split("switchboard> " + cmd, 1)[1].split("switchboard> ", 1)[0]


def read_info(path):
    """SB_DEMO_INFO's KEY=VALUE lines (shell-quoted) as a dict."""
    info = {}
    with open(path) as f:
        for line in f:
            for word in shlex.split(line):
                k, v = word.split("=", 1)
                info[k] = v
    return info


def channel_lines(chans, name, driver):
    return [ln for ln in chans.splitlines() if ln.split()[:2] == [name, driver]]


def printed_url(text):
    """The status page's URL, as the demo printed it."""
    m = re.search(r"^  (http://127\.0\.0\.1:\d+/)$", text, re.M)
    assert m, "no status page URL:\n" + text
    return m.group(1)


def section(text, heading):
    """The paragraphs of text from the line starting with heading up to the
    next one that is not indented."""
    m = re.search(r"^%s.*?(?=\n\n\S|\Z)" % re.escape(heading), text, re.M | re.S)
    assert m, "no %r in:\n%s" % (heading, text)
    return m.group(0)


IRC_HEADING = "Talk to the farm from any IRC client"
XMPP_HEADING = "Chat with the farm from any XMPP client"


def printed_irc(text):
    """The port and nick the demo printed for IRC clients."""
    text = section(text, IRC_HEADING)
    port = re.search(r"^  server +127\.0\.0\.1, port (\d+) ", text, re.M)
    nick = re.search(r"^  nick +(\S+) ", text, re.M)
    assert port and nick, "no IRC text:\n" + text
    return int(port.group(1)), nick.group(1)


def http_get(url):
    """GET url straight (never through a proxy): (status, content type, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=sbtest.WAIT) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def printed_login(text):
    """The account, password and port the demo printed for XMPP clients."""
    text = section(text, XMPP_HEADING)
    account = re.search(r"^  account +(\S+)$", text, re.M)
    password = re.search(r"^  password +(\S+)$", text, re.M)
    port = re.search(r"^  server +127\.0\.0\.1, port (\d+) ", text, re.M)
    assert account and password and port, "no XMPP log-in text:\n" + text
    return account.group(1), password.group(1), int(port.group(1))


def test_demo_from_stdin_shows_nodes_and_cleans_up():
    t, tmp, pidfile, env = demo_env()
    try:
        p = subprocess.run([DEMO], input="nodes\ncore show channels\nquit\n",
                           capture_output=True, text=True, timeout=120, env=env)
        out = p.stdout + p.stderr
        assert p.returncode == 0, (p.returncode, out)
        table = command_output(p.stdout, "nodes")
        assert set(NODES) <= node_names(table), table
        assert "NODE" in table and "STATE" in table, table
        assert "sim set mail cpu_temp 95" in p.stdout, "no 'try this' text:\n" + out
        # The XMPP channel is up before the console opens: gateway mode on
        # the demo's prosody.
        assert "XMPP is off" not in out, out
        chans = command_output(p.stdout, "core show channels")
        xmpp = channel_lines(chans, "xmpp", "xmpp")
        assert xmpp, chans
        assert " up " in xmpp[0] and "component nodes.demo.switchboard.test" in xmpp[0], xmpp
        assert ", connected," in xmpp[0], xmpp
        before = re.split(r"^switchboard> ", p.stdout, 1, re.M)[0]
        # The status page is served, on the port of the URL printed.
        assert "status page is off" not in out, out
        url = printed_url(before)
        http = channel_lines(chans, "http", "http")
        assert len(http) == 1 and " up " in http[0], chans
        assert " %s," % url in http[0], (url, http)
        # The bot is on the demo's ngircd and in #ops before the console
        # opens, when the build has the irc driver.
        irc = channel_lines(chans, "irc", "irc")
        if irc_expected():
            assert "IRC is off" not in out, out
            port, nick = printed_irc(before)
            assert nick == "operator", before
            assert len(irc) == 1 and " up " in irc[0], chans
            assert "127.0.0.1:%d, connected as sbbot, in 1 of 1 channels" % port in irc[0], irc
            assert "/join #ops" in before and "mail: status" in before, before
        else:
            assert not irc, chans
            assert "IRC is off: " in before, before
        # How to log in, printed before the console opened.
        account, password, port = printed_login(before)
        assert account == "operator@demo.switchboard.test", before
        assert "accept" in before and "self-signed" in before, before
        assert '"%s"' % GROUP in before, before
        assert "mail@nodes.demo.switchboard.test" in before, before
        assert "dnd" in before, before
        # prosody (and ngircd) were among the demo's processes, and are
        # gone too.
        assert len(started(pidfile).get("prosody", [])) == 1, started(pidfile)
        assert_all_gone(pidfile, tmp, p.stdout)
    finally:
        kill_leftovers(pidfile)


class DemoRun:
    """tools/demo in the background, its output in a file, its standard
    input kept open (the console waits for more) until close()."""

    def __init__(self, **extra):
        self.t, self.tmp, self.pidfile, self.env = demo_env(**extra)
        self.info_path = os.path.join(self.t, "info")
        self.env["SB_DEMO_INFO"] = self.info_path
        self.outpath = os.path.join(self.t, "out")
        with open(self.outpath, "wb") as outf:
            self.p = subprocess.Popen([DEMO], stdin=subprocess.PIPE, stdout=outf,
                                      stderr=subprocess.STDOUT, env=self.env)

    def output(self):
        with open(self.outpath, errors="replace") as f:
            return f.read()

    def wait_info(self):
        """The demo writes the info file just before the console opens."""
        def ready():
            if self.p.poll() is not None:
                raise AssertionError("demo exited with %s:\n%s" % (self.p.returncode, self.output()))
            return os.path.exists(self.info_path)
        wait_for(ready, 90, "the demo's info file")
        return read_info(self.info_path)

    def type(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def close(self):
        """End of input: the console ends, and the demo stops everything."""
        self.p.stdin.close()
        rc = self.p.wait(sbtest.WAIT)
        assert rc == 0, (rc, self.output())
        assert "stopped everything" in self.output(), self.output()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if not self.p.stdin.closed:
            self.p.stdin.close()
        kill_leftovers(self.pidfile)


def test_demo_status_page_serves_the_nodes():
    d = DemoRun()
    try:
        info = d.wait_info()
        assert info["WEB"] == "on", (info, d.output())
        url = printed_url(d.output())
        assert url == info["WEB_URL"], (url, info)
        # The page, from the tree's web/ folder.
        status, ctype, body = http_get(url)
        assert status == 200 and ctype.startswith("text/html"), (status, ctype)
        with open(os.path.join(sbtest.ROOT, "web", "index.html"), "rb") as f:
            assert body == f.read(), body[:200]
        # The farm as JSON, with no token (public_read).
        status, ctype, body = http_get(url + "api/nodes")
        assert status == 200 and "json" in ctype, (status, ctype)
        nodes = json.loads(body)["nodes"]
        # bmc1, the demo's ipmi_sim node, when ipmi_sim is installed.
        bmc = ["bmc1"] if info.get("BMC") == "on" else []
        assert sorted(n["name"] for n in nodes) == sorted(list(NODES) + bmc), nodes
        assert all(n["state"] in ("ok", "unknown") for n in nodes), nodes
        d.close()
        assert_all_gone(d.pidfile, d.tmp, d.output())
        # The page went with the daemon.
        try:
            http_get(url)
            raise AssertionError("%s still answers after the demo ended" % url)
        except OSError:
            pass
    finally:
        d.kill()


class IrcClient:
    """Just enough of an IRC client, on a plain socket: every line the
    server sent is kept (PINGs answered) for wait() to look through."""

    def __init__(self, port, nick):
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=sbtest.WAIT)
        self.buf = b""
        self.lines = []     # (prefix nick, command, params)
        self.raw = []
        self.send("NICK " + nick)
        self.send("USER %s 0 * :switchboard demo test" % nick)

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def _read(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            raise AssertionError("the IRC server closed the connection:\n" + "\n".join(self.raw))
        self.buf += data
        while b"\r\n" in self.buf:
            raw, self.buf = self.buf.split(b"\r\n", 1)
            line = raw.decode("utf-8", "replace")
            self.raw.append(line)
            prefix = ""
            if line.startswith(":"):
                prefix, line = line[1:].split(" ", 1)
            if " :" in line:
                head, trailing = line.split(" :", 1)
                params = head.split() + [trailing]
            else:
                params = line.split()
            cmd, params = params[0].upper(), params[1:]
            if cmd == "PING":
                self.send("PONG :" + (params[-1] if params else ""))
            self.lines.append((prefix.split("!", 1)[0], cmd, params))

    def mark(self):
        return len(self.lines)

    def wait(self, pred, what, since=0, timeout=sbtest.WAIT):
        """The first line from index since on for which pred(nick, cmd,
        params) holds, reading more until the deadline."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.lines):
                if pred(*self.lines[i]):
                    return self.lines[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out after %s s waiting for %s; the server sent:\n%s"
                                     % (timeout, what, "\n".join(self.raw[-40:])))
            self._read(min(left, 1.0))

    def close(self):
        try:
            self.send("QUIT :done")
        except OSError:
            pass
        self.sock.close()


def test_demo_irc_client_sees_state_changes_in_ops():
    if not irc_expected():
        print("    (skipped: no irc driver in this build, or no ngircd)")
        return
    d = DemoRun()
    irc = None
    try:
        info = d.wait_info()
        assert info["IRC"] == "on", (info, d.output())
        port, nick = printed_irc(d.output())
        assert (port, nick) == (int(info["IRC_PORT"]), info["IRC_NICK"]), (info, d.output())
        chan = info["IRC_CHANNEL"]
        assert chan == "#ops" and "/join #ops" in d.output(), info

        # Connect as the printed nick, join #ops: the bot is there.
        irc = IrcClient(port, nick)
        irc.wait(lambda n, c, p: c == "001", "the server's welcome")
        since = irc.mark()
        irc.send("JOIN " + chan)
        names = set()

        def names_done(n, c, p):
            if c == "353" and p[-2].lower() == chan:
                names.update(x.lstrip("@+%~&") for x in p[-1].split())
            return c == "366"
        irc.wait(names_done, "NAMES of " + chan, since)
        assert "sbbot" in names, names

        # What the demo suggests: heat mail from the console; the bot
        # announces the state change in #ops.
        since = irc.mark()
        d.type("sim set mail cpu_temp 95")
        _, cmd, params = irc.wait(
            lambda n, c, p: n == "sbbot" and c in ("NOTICE", "PRIVMSG") and p[0].lower() == chan
            and "mail: ok -> critical" in p[-1], "the bot to announce mail's state change", since)
        assert cmd == "NOTICE" and "cpu_temp 95" in params[-1], params
        # "mail: status" in the channel asks mail; the answer comes back there.
        since = irc.mark()
        irc.send("PRIVMSG %s :mail: status" % chan)
        _, _, params = irc.wait(
            lambda n, c, p: n == "sbbot" and c == "PRIVMSG" and p[0].lower() == chan
            and "mail" in p[-1], "the bot's answer to mail: status", since)
        assert "mail: critical" in params[-1], params
        # The printed nick is an admin (the acl rule added for it).
        since = irc.mark()
        irc.send("PRIVMSG %s :!whoami" % chan)
        _, _, params = irc.wait(
            lambda n, c, p: n == "sbbot" and c == "PRIVMSG" and p[0].lower() == chan
            and "role" in p[-1], "the bot's answer to !whoami", since)
        assert params[-1].startswith("irc:%s!" % nick) and "role admin" in params[-1], params
        irc.close()
        irc = None

        d.close()
        assert_all_gone(d.pidfile, d.tmp, d.output(), irc=True)
    finally:
        if irc is not None:
            irc.close()
        d.kill()


class DemoServer:
    """What Operator needs to know of a prosody: the demo's, from what it
    printed (and SB_DEMO_INFO for the certificate to trust)."""

    def __init__(self, domain, c2s_port, cert):
        self.domain = domain
        self.c2s_port = c2s_port
        self.cert = cert


def test_demo_xmpp_client_logs_in_and_sees_the_nodes():
    import xmpp_env
    d = DemoRun()
    op = None
    try:
        info = d.wait_info()
        assert info["XMPP"] == "on", (info, d.output())
        account, password, port = printed_login(d.output())
        assert (account, password, port) == \
            (info["XMPP_USER"], info["XMPP_PASSWORD"], int(info["XMPP_PORT"])), (info, d.output())
        user, domain = account.split("@", 1)
        component = info["XMPP_COMPONENT"]
        assert component == "nodes." + domain, info
        assert info["XMPP_NODES"].split() == list(NODES), info

        # A client of its own logs in with what was printed, checking the
        # self-signed certificate (host name included) against itself.
        server = DemoServer(domain, port, info["XMPP_CERT"])
        op = xmpp_env.Operator(server, user, password, register=False).connect()
        jids = ["%s@%s" % (n, component) for n in NODES]
        for j in jids:
            op.wait_presence(j, lambda t_, s, st: t_ == "available" and s == "")
        roster = op.roster()
        for j in jids:
            assert j in roster, roster
            assert GROUP in roster[j]["groups"], roster[j]
        # What the demo suggests: overheat mail from the console, watch it
        # turn busy, and ask it by chat.
        mail = "mail@" + component
        since = op.mark()
        d.type("sim set mail cpu_temp 95")
        _, _, why = op.wait_presence(mail, lambda t_, s, st: t_ == "available" and s == "dnd")
        assert "cpu_temp" in why, why
        # The demo's route tells the operator too, with the event's id.
        m = op.wait_message(lambda m: m["body"] and "mail: ok -> critical" in m["body"],
                            since=since)
        assert m["body"].startswith("[E"), m["xml"]
        since = op.mark()
        op.send(mail, "status")
        m = op.wait_message(lambda m: m["from_bare"] == mail and m["body"], since=since)
        assert m["body"].startswith("mail: critical"), m["xml"]
        # The demo's operator is an admin (the acl rule added for it).
        since = op.mark()
        op.send(mail, "whoami")
        m = op.wait_message(lambda m: m["from_bare"] == mail and m["body"], since=since)
        assert "xmpp:%s, role admin" % account in m["body"], m["body"]
        op.close()

        # End of input: the console ends, and the demo stops everything.
        d.close()
        assert_all_gone(d.pidfile, d.tmp, d.output())
    finally:
        if op is not None:
            op.close()
        d.kill()


def run_piped(env, lines="nodes\ncore show channels\nquit\n"):
    p = subprocess.run([DEMO], input=lines, capture_output=True, text=True, timeout=120, env=env)
    return p, p.stdout + p.stderr


def test_demo_bmc_node_reads_ipmi_sim():
    """With ipmi_sim installed the demo starts one, with its own lan.conf
    and emulation script in the demo's folder, and adds node bmc1 (ipmi
    backend) beside the four simulated ones; the piped console's first
    "nodes" already shows it polled; the simulator is stopped with the
    rest.  SB_DEMO_BMC=0 leaves it out; a simulator that fails to start is
    left out with the reason, and the farm runs on."""
    assert shutil.which("ipmi_sim"), "ipmi_sim is not installed (Debian package openipmi)"
    light = dict(SB_DEMO_XMPP="0", SB_DEMO_IRC="0")
    t, tmp, pidfile, env = demo_env(**light)
    env["SB_DEMO_INFO"] = os.path.join(t, "info")
    try:
        p, out = run_piped(env, "nodes\nsensors bmc1\ninventory bmc1\nquit\n")
        assert p.returncode == 0, (p.returncode, out)
        table = command_output(p.stdout, "nodes")
        assert set(NODES) | {"bmc1"} <= node_names(table), table
        line = [ln for ln in table.splitlines() if ln.split()[:1] == ["bmc1"]][0]
        assert line.split()[1] == "ok", line          # polled: not unknown
        assert "all 2 sensors normal" in line, line
        sensors = command_output(p.stdout, "sensors bmc1")
        assert re.search(r"CPU_Temp\s+45 C\s+ok", sensors), sensors
        assert re.search(r"FAN1\s+7200 RPM\s+ok", sensors), sensors
        assert "SB-DEMO-BMC" in command_output(p.stdout, "inventory bmc1"), out
        assert "A fifth node, bmc1" in p.stdout, out
        info = read_info(env["SB_DEMO_INFO"])
        assert info["BMC"] == "on" and info["BMC_NODE"] == "bmc1", info
        parts = started(pidfile)
        assert len(parts.get("bmc", [])) == 1, parts
        # The BMC's password never reaches the output.
        assert "password" not in p.stdout.lower(), out
        # ipmi_sim (checked by running(): its PID, still ipmi_sim) is gone.
        assert_all_gone(pidfile, tmp, p.stdout, xmpp=False, irc=False)
        assert not running(parts["bmc"][0]), parts
    finally:
        kill_leftovers(pidfile)

    for extra, why in (({"SB_DEMO_BMC": "0"}, "SB_DEMO_BMC=0 turned it off"),
                       ({"SB_DEMO_IPMI_SIM": "/nonexistent/ipmi_sim"},
                        "/nonexistent/ipmi_sim not found"),
                       ({"SB_DEMO_IPMI_SIM": "/bin/false"}, "bmc exited during start-up")):
        t, tmp, pidfile, env = demo_env(**dict(light, **extra))
        env["SB_DEMO_INFO"] = os.path.join(t, "info")
        try:
            p, out = run_piped(env)
            assert p.returncode == 0, (extra, p.returncode, out)
            names = node_names(command_output(p.stdout, "nodes"))
            assert set(NODES) <= names and "bmc1" not in names, (extra, out)
            assert "The ipmi_sim node bmc1 is off: " + why in p.stdout, (extra, out)
            info = read_info(env["SB_DEMO_INFO"])
            assert info["BMC"] == "off" and why in info["BMC_WHY"], info
            assert_all_gone(pidfile, tmp, p.stdout, xmpp=False, irc=False)
        finally:
            kill_leftovers(pidfile)


def test_demo_without_prosody_runs_without_xmpp():
    # prosody missing, or failing at start: the farm runs without XMPP (the
    # status page and IRC still on), and the demo says why.
    for prosody, why in (("/nonexistent/prosody", "/nonexistent/prosody not found"),
                         ("/bin/false", "prosody exited during start-up")):
        t, tmp, pidfile, env = demo_env(SB_DEMO_PROSODY=prosody)
        env["SB_DEMO_INFO"] = os.path.join(t, "info")
        try:
            p, out = run_piped(env)
            assert p.returncode == 0, (prosody, p.returncode, out)
            assert set(NODES) <= node_names(command_output(p.stdout, "nodes")), out
            assert "XMPP is off: " + why in p.stdout, out
            assert "demo: XMPP is off: " + why in p.stderr, out
            chans = command_output(p.stdout, "core show channels")
            assert "console" in chans and "xmpp" not in chans, chans
            assert " up " in channel_lines(chans, "http", "http")[0], chans
            assert bool(channel_lines(chans, "irc", "irc")) == irc_expected(), chans
            assert "password" not in p.stdout, out
            info = read_info(env["SB_DEMO_INFO"])
            assert info["XMPP"] == "off" and why in info["XMPP_WHY"], info
            assert info["WEB"] == "on", info
            assert_all_gone(pidfile, tmp, p.stdout, xmpp=False)
        finally:
            kill_leftovers(pidfile)


def test_demo_without_ngircd_runs_without_irc():
    # ngircd missing, rejecting its config, or failing at start: the farm
    # runs without IRC, and the demo says why.  (XMPP off, to be quick.)
    if not irc_driver():
        print("    (skipped: no irc driver in this build)")
        return
    for ngircd, why in (("/nonexistent/ngircd", "/nonexistent/ngircd not found"),
                        ("/bin/false", "/bin/false -t -f "),
                        ("/bin/true", "ngircd exited during start-up")):
        t, tmp, pidfile, env = demo_env(SB_DEMO_NGIRCD=ngircd, SB_DEMO_XMPP="0")
        env["SB_DEMO_INFO"] = os.path.join(t, "info")
        try:
            p, out = run_piped(env)
            assert p.returncode == 0, (ngircd, p.returncode, out)
            assert set(NODES) <= node_names(command_output(p.stdout, "nodes")), out
            assert "IRC is off: " + why in p.stdout, out
            assert "demo: IRC is off: " + why in p.stderr, out
            chans = command_output(p.stdout, "core show channels")
            assert not channel_lines(chans, "irc", "irc"), chans
            assert " up " in channel_lines(chans, "http", "http")[0], chans
            info = read_info(env["SB_DEMO_INFO"])
            assert info["IRC"] == "off" and why in info["IRC_WHY"], info
            assert "IRC_PORT" not in info, info
            assert_all_gone(pidfile, tmp, p.stdout, xmpp=False, irc=False)
        finally:
            kill_leftovers(pidfile)


def test_demo_falls_back_to_the_farms_config():
    # A farm config the demo's additions break (it has a channel named
    # "http" already): the copy fails --check-config, the demo says why,
    # stops prosody and ngircd, and runs the farm's config as it is.
    t, tmp, pidfile, env = demo_env()
    with open(os.path.join(sbtest.ROOT, "config", "demo.conf")) as f:
        text = f.read()
    text = text.replace('"../scripts"', '"%s"' % os.path.join(sbtest.ROOT, "scripts"))
    console = '  { name = "console"; driver = "console"; context = "default"; }'
    assert console in text
    text = text.replace(console, console + ',\n  { name = "http"; driver = "http"; port = 0; '
                        'web_root = "%s"; }' % os.path.join(sbtest.ROOT, "web"))
    conf = os.path.join(t, "farm.conf")
    with open(conf, "w") as f:
        f.write(text)
    env.update(SB_DEMO_CONF=conf, SB_DEMO_INFO=os.path.join(t, "info"))
    try:
        p, out = run_piped(env)
        assert p.returncode == 0, (p.returncode, out)
        assert set(NODES) <= node_names(command_output(p.stdout, "nodes")), out
        assert "does not pass switchboard --check-config" in p.stderr, out
        assert 'duplicate channel "http"' in p.stderr, out
        assert "demo: the daemon runs on %s as it is" % conf in p.stderr, out
        chans = command_output(p.stdout, "core show channels")
        names = [ln.split()[0] for ln in chans.splitlines()
                 if len(ln.split()) > 3 and ln.split()[2] in ("up", "stopped")]
        assert names == ["console", "http"], chans
        info = read_info(env["SB_DEMO_INFO"])
        assert info["CONF"] == conf, info
        for part in ("XMPP", "IRC", "WEB"):
            assert info[part] == "off", info
        assert "the daemon runs on %s as it is" % conf in info["XMPP_WHY"], info
        assert "The status page is off: the daemon runs on" in p.stdout, out
        assert_all_gone(pidfile, tmp, p.stdout)
    finally:
        kill_leftovers(pidfile)


def test_demo_signal_stops_everything():
    for sig in (signal.SIGTERM, signal.SIGINT):
        t, tmp, pidfile, env = demo_env()
        outpath = os.path.join(t, "out")
        with open(outpath, "wb") as outf:
            p = subprocess.Popen([DEMO], stdin=subprocess.PIPE, stdout=outf,
                                 stderr=subprocess.STDOUT, env=env)
        try:
            # Standard input stays open: the console waits for more.
            p.stdin.write(b"nodes\n")
            p.stdin.flush()

            def nodes_shown():
                with open(outpath, errors="replace") as f:
                    text = f.read()
                return "switchboard> nodes" in text and \
                    set(NODES) <= node_names(text.split("switchboard> nodes", 1)[1])
            wait_for(nodes_shown, what="the nodes table")
            assert "console" in started(pidfile)
            for part in ("prosody", "ngircd") if irc_expected() else ("prosody",):
                assert any(running(pid) for pid in started(pidfile).get(part, [])), \
                    (part, started(pidfile))
            p.send_signal(sig)
            rc = p.wait(sbtest.WAIT)
            with open(outpath, errors="replace") as f:
                out = f.read()
            assert rc == 128 + sig, (sig, rc, out)
            assert "stopped everything" in out, out
            assert_all_gone(pidfile, tmp, out)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
            kill_leftovers(pidfile)
