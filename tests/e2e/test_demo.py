"""tools/demo, driven through its standard input as a script would: it
starts the demo farm (a private prosody, then the daemon serving every node
as its own XMPP JID), runs the console's commands, and when the console
ends (or on SIGTERM/SIGINT) leaves no process and no temp folder behind.

tools/demo appends "PID PART" for each process it starts to the file named
by SB_DEMO_PIDFILE, and writes what it printed about logging in with XMPP
to the file named by SB_DEMO_INFO; TMPDIR points at a folder of the test's
own, which must be empty again afterwards.  An independent XMPP client
(xmpp_env.Operator, on Debian's python3-slixmpp) logs in with the printed
credentials, as a newcomer's client would."""
import os
import re
import shlex
import signal
import subprocess

import sbtest
from sbtest import wait_for

NODES = ("ftp", "web", "mail", "db")
GROUP = "Systems Management"


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
    """True if pid is a live switchboard or prosody process (not a zombie,
    and not a later process that happens to reuse the number)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and \
        (b"switchboard" in cmdline or b"prosody" in cmdline)


def kill_leftovers(pidfile):
    """If the test fails half-way, do not leave the demo's processes behind."""
    for pids in started(pidfile).values():
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def assert_all_gone(pidfile, tmp, output, xmpp=True):
    parts = started(pidfile)
    assert "daemon" in parts and "console" in parts, (parts, output)
    if xmpp:
        assert "prosody" in parts, (parts, output)
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


def printed_login(text):
    """The account, password and port the demo printed for XMPP clients."""
    account = re.search(r"^  account +(\S+)$", text, re.M)
    password = re.search(r"^  password +(\S+)$", text, re.M)
    port = re.search(r"^  server +127\.0\.0\.1, port (\d+) ", text, re.M)
    assert account and password and port, "no XMPP log-in text:\n" + text
    return account.group(1), password.group(1), int(port.group(1))


def test_demo_from_stdin_shows_nodes_and_cleans_up():
    t, tmp, pidfile, env = demo_env()
    try:
        p = subprocess.run([os.path.join(sbtest.ROOT, "tools", "demo")],
                           input="nodes\ncore show channels\nquit\n",
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
        xmpp = [ln for ln in chans.splitlines() if ln.split()[:2] == ["xmpp", "xmpp"]]
        assert xmpp, chans
        assert " up " in xmpp[0] and "component nodes.demo.switchboard.test" in xmpp[0], xmpp
        assert ", connected," in xmpp[0], xmpp
        # How to log in, printed before the console opened.
        before = re.split(r"^switchboard> ", p.stdout, 1, re.M)[0]
        account, password, port = printed_login(before)
        assert account == "operator@demo.switchboard.test", before
        assert "accept" in before and "self-signed" in before, before
        assert '"%s"' % GROUP in before, before
        assert "mail@nodes.demo.switchboard.test" in before, before
        assert "dnd" in before, before
        # prosody was one of the demo's processes, and is gone too.
        assert len(started(pidfile).get("prosody", [])) == 1, started(pidfile)
        assert_all_gone(pidfile, tmp, p.stdout)
    finally:
        kill_leftovers(pidfile)


class DemoServer:
    """What Operator needs to know of a prosody: the demo's, from what it
    printed (and SB_DEMO_INFO for the certificate to trust)."""

    def __init__(self, domain, c2s_port, cert):
        self.domain = domain
        self.c2s_port = c2s_port
        self.cert = cert


def test_demo_xmpp_client_logs_in_and_sees_the_nodes():
    import xmpp_env
    t, tmp, pidfile, env = demo_env()
    info_path = os.path.join(t, "info")
    env["SB_DEMO_INFO"] = info_path
    outpath = os.path.join(t, "out")
    with open(outpath, "wb") as outf:
        p = subprocess.Popen([os.path.join(sbtest.ROOT, "tools", "demo")], stdin=subprocess.PIPE,
                             stdout=outf, stderr=subprocess.STDOUT, env=env)
    op = None

    def output():
        with open(outpath, errors="replace") as f:
            return f.read()
    try:
        # The demo writes the info file just before the console opens;
        # its standard input stays open, so the console waits for more.
        def ready():
            if p.poll() is not None:
                raise AssertionError("demo exited with %s:\n%s" % (p.returncode, output()))
            return os.path.exists(info_path)
        wait_for(ready, 90, "the demo's info file")
        info = read_info(info_path)
        assert info["XMPP"] == "on", (info, output())
        account, password, port = printed_login(output())
        assert (account, password, port) == \
            (info["XMPP_USER"], info["XMPP_PASSWORD"], int(info["XMPP_PORT"])), (info, output())
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
        p.stdin.write(b"sim set mail cpu_temp 95\n")
        p.stdin.flush()
        _, _, why = op.wait_presence(mail, lambda t_, s, st: t_ == "available" and s == "dnd")
        assert "cpu_temp" in why, why
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
        p.stdin.close()
        rc = p.wait(sbtest.WAIT)
        assert rc == 0, (rc, output())
        assert "stopped everything" in output(), output()
        assert_all_gone(pidfile, tmp, output())
    finally:
        if op is not None:
            op.close()
        if p.poll() is None:
            p.kill()
            p.wait()
        if not p.stdin.closed:
            p.stdin.close()
        kill_leftovers(pidfile)


def test_demo_without_prosody_runs_console_only():
    # prosody missing, or failing at start: the farm runs with the console
    # only, and the demo says why.
    for prosody, why in (("/nonexistent/prosody", "/nonexistent/prosody not found"),
                         ("/bin/false", "prosody exited during start-up")):
        t, tmp, pidfile, env = demo_env(SB_DEMO_PROSODY=prosody)
        env["SB_DEMO_INFO"] = os.path.join(t, "info")
        try:
            p = subprocess.run([os.path.join(sbtest.ROOT, "tools", "demo")],
                               input="nodes\ncore show channels\nquit\n",
                               capture_output=True, text=True, timeout=120, env=env)
            out = p.stdout + p.stderr
            assert p.returncode == 0, (prosody, p.returncode, out)
            assert set(NODES) <= node_names(command_output(p.stdout, "nodes")), out
            assert "XMPP is off: " + why in p.stdout, out
            assert "demo: XMPP is off: " + why in p.stderr, out
            chans = command_output(p.stdout, "core show channels")
            assert "console" in chans and "xmpp" not in chans, chans
            assert "password" not in p.stdout, out
            info = read_info(env["SB_DEMO_INFO"])
            assert info["XMPP"] == "off" and why in info["XMPP_WHY"], info
            assert_all_gone(pidfile, tmp, p.stdout, xmpp=False)
        finally:
            kill_leftovers(pidfile)


def test_demo_signal_stops_everything():
    for sig in (signal.SIGTERM, signal.SIGINT):
        t, tmp, pidfile, env = demo_env()
        outpath = os.path.join(t, "out")
        with open(outpath, "wb") as outf:
            p = subprocess.Popen([os.path.join(sbtest.ROOT, "tools", "demo")], stdin=subprocess.PIPE,
                                 stdout=outf, stderr=subprocess.STDOUT, env=env)
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
            assert any(running(pid) for pid in started(pidfile).get("prosody", [])), \
                started(pidfile)
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
