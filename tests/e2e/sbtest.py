"""Helpers for the end-to-end tests: start the real daemon on a private
socket and state folder, drive it with "switchboard -x", wait for
conditions with generous deadlines, and make sure nothing is left running.
"""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = "build"
BIN = None
TEST_DEADLINE = 240     # seconds per test, sanitizer build on 2 cores included
WAIT = 30               # default deadline for one condition

_daemons = []
_tmpdirs = []
_cleanups = []


def add_cleanup(fn):
    """Have cleanup() call fn() after the test (last added, first called),
    e.g. to stop a server the test started.  fn may return an error text."""
    _cleanups.append(fn)


def configure(build):
    global BUILD, BIN
    BUILD = build
    BIN = os.path.join(ROOT, build, "switchboard")


def tmpdir():
    d = tempfile.mkdtemp(prefix="sb-e2e-")
    _tmpdirs.append(d)
    return d


def binary_alone():
    """A copy of the daemon in a folder of its own, without the build's
    modules/ beside it: it finds only modules installed in MODDIR (under
    INSTALLED_MODULES after a "make install" on this machine)."""
    d = os.path.join(tmpdir(), "bin")
    os.makedirs(d)
    shutil.copy(BIN, d)
    return os.path.join(d, "switchboard")


INSTALLED_MODULES = "/usr/local/lib/switchboard"


def free_port():
    """A free loopback TCP port (bind to port 0 and let the kernel pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    """Does something accept TCP connections on host:port?"""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(pred, timeout=WAIT, what="condition"):
    """Poll pred() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out after %s s waiting for %s (last: %r)" % (timeout, what, last))


class Daemon:
    def __init__(self, conf=None, conf_text=None):
        self.dir = tmpdir()
        if conf_text is not None:
            conf = os.path.join(self.dir, "switchboard.conf")
            with open(conf, "w") as f:
                f.write(conf_text)
            # Inline secrets are refused in a config others may read.
            os.chmod(conf, 0o600)
        self.conf = conf or os.path.join(ROOT, "config", "demo.conf")
        self.sock = os.path.join(self.dir, "sb.sock")
        self.state = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "daemon.log")
        self.proc = None

    def start(self, wait=True, extra=()):
        logf = open(self.log, "ab")
        # SB_WRAP="valgrind ..." runs the daemon under a tool (make check-valgrind).
        wrap = shlex.split(os.environ.get("SB_WRAP", ""))
        self.proc = subprocess.Popen(
            wrap + [BIN, "-c", self.conf, "-s", self.sock, "-d", self.state, "-f"] + list(extra),
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        _daemons.append(self)
        if wait:
            wait_for(lambda: self.alive_and_answering(), what="the daemon to answer")
        return self

    def alive_and_answering(self):
        if self.proc.poll() is not None:
            raise AssertionError("daemon exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
        return self.x("core show version")[0] == 0

    def x(self, cmd, timeout=60):
        """Run one command through -x; returns (exit status, output)."""
        p = subprocess.run([BIN, "-s", self.sock, "-x", cmd], capture_output=True,
                           text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr

    def ok(self, cmd):
        rc, out = self.x(cmd)
        assert rc == 0, "%r failed (%d): %s" % (cmd, rc, out)
        return out

    def node_line(self, name):
        out = self.ok("core show nodes")
        for line in out.splitlines():
            if line.split() and line.split()[0] == name:
                return line
        raise AssertionError("node %s not in:\n%s" % (name, out))

    def node_state(self, name):
        return self.node_line(name).split()[1]

    def wait_state(self, name, states, timeout=WAIT):
        if isinstance(states, str):
            states = (states,)
        return wait_for(lambda: self.node_state(name) in states and self.node_line(name),
                        timeout, "node %s to be %s" % (name, "/".join(states)))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=WAIT):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon ignored SIGTERM for %s s" % timeout)

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def cleanup():
    """Stop what the test left running; returns an error text if a daemon
    crashed, leaked or tripped a sanitizer, else None."""
    problems = []
    for d in _daemons:
        if d.proc and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
                problems.append("daemon did not stop on SIGTERM")
        text = d.logtext()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                problems.append("sanitizer report in daemon log:\n" + text[max(0, i - 200):i + 3000])
                break
        if d.proc and d.proc.returncode not in (0, None, -9) and not getattr(d, "expect_fail", False):
            problems.append("daemon exited with status %s" % d.proc.returncode)
    _daemons.clear()
    while _cleanups:
        fn = _cleanups.pop()
        try:
            msg = fn()
        except Exception as e:  # noqa: B902 - report, then go on cleaning
            msg = "cleanup %r failed: %r" % (fn, e)
        if msg:
            problems.append(msg)
    for t in _tmpdirs:
        shutil.rmtree(t, ignore_errors=True)
    _tmpdirs.clear()
    return "\n".join(problems) if problems else None
