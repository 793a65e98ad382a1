"""tools/demo, driven through its standard input as a script would: it
starts the demo farm, runs the console's commands, and when the console
ends (or on SIGTERM/SIGINT) leaves no process and no temp folder behind.

tools/demo appends "PID PART" for each process it starts to the file named
by SB_DEMO_PIDFILE; TMPDIR points at a folder of the test's own, which must
be empty again afterwards."""
import os
import re
import signal
import subprocess

import sbtest
from sbtest import wait_for

NODES = ("ftp", "web", "mail", "db")


def demo_env():
    t = sbtest.tmpdir()
    tmp = os.path.join(t, "tmp")
    os.mkdir(tmp)
    pidfile = os.path.join(t, "pids")
    env = dict(os.environ, TMPDIR=tmp, SB_DEMO_PIDFILE=pidfile, BUILD=sbtest.BUILD)
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
    """True if pid is a live switchboard process (not a zombie, and not a
    later process that happens to reuse the number)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"switchboard" in cmdline


def kill_leftovers(pidfile):
    """If the test fails half-way, do not leave the demo's daemon behind."""
    for pids in started(pidfile).values():
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def assert_all_gone(pidfile, tmp, output):
    parts = started(pidfile)
    assert "daemon" in parts and "console" in parts, (parts, output)
    left = [(part, pid) for part, pids in parts.items() for pid in pids if running(pid)]
    assert not left, "still running after the demo ended: %r" % left
    assert os.listdir(tmp) == [], "temp folder left: %r" % os.listdir(tmp)
    m = re.search(r"^demo: working in (\S+)$", output, re.M)
    assert m, output
    assert m.group(1).startswith(tmp + "/"), (m.group(1), tmp)
    assert not os.path.exists(m.group(1))


def node_names(table):
    return {ln.split()[0] for ln in table.splitlines() if ln.split()}


def test_demo_from_stdin_shows_nodes_and_cleans_up():
    t, tmp, pidfile, env = demo_env()
    try:
        p = subprocess.run([os.path.join(sbtest.ROOT, "tools", "demo")], input="nodes\nquit\n",
                           capture_output=True, text=True, timeout=120, env=env)
        out = p.stdout + p.stderr
        assert p.returncode == 0, (p.returncode, out)
        assert "switchboard> nodes" in p.stdout, out
        table = p.stdout.split("switchboard> nodes", 1)[1]
        assert set(NODES) <= node_names(table), table
        assert "NODE" in table and "STATE" in table, table
        assert "sim set mail cpu_temp 95" in p.stdout, "no 'try this' text:\n" + out
        assert_all_gone(pidfile, tmp, p.stdout)
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
