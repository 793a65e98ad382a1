"""The skeleton end to end: the daemon on config/demo.conf, driven through
"switchboard -x": node states follow the simulator, signals behave, config
errors name file and line."""
import os
import re
import signal
import stat
import subprocess

import sbtest
from sbtest import Daemon, wait_for


def demo_text():
    with open(os.path.join(sbtest.ROOT, "config", "demo.conf")) as f:
        text = f.read()
    # A copy elsewhere must still find the shipped scripts.
    return text.replace('"../scripts"', '"%s"' % os.path.join(sbtest.ROOT, "scripts"))


def test_nodes_listed_and_polled():
    d = Daemon().start()
    for n in ("ftp", "web", "mail", "db"):
        d.wait_state(n, "ok")
    line = d.node_line("mail")
    assert "sensors normal" in line, line


def test_sim_set_moves_state_with_reason():
    d = Daemon().start()
    d.wait_state("mail", "ok")
    rc, out = d.x("sim set mail cpu_temp 95")
    assert rc == 0, out
    line = d.wait_state("mail", "critical", timeout=3 * 10)
    assert "cpu_temp 95 C (critical >= 90)" in line, line
    d.ok("sim set mail cpu_temp 87")
    line = d.wait_state("mail", "warning")
    assert "cpu_temp 87 C (warning >= 85)" in line, line
    d.ok("sim set mail cpu_temp 40")
    d.wait_state("mail", "ok")
    # Other nodes are untouched.
    assert d.node_state("web") == "ok"


def test_fan_low_threshold():
    d = Daemon().start()
    d.ok("sim set db fan1 300")
    line = d.wait_state("db", "critical")
    assert "fan1 300 RPM (critical <= 500)" in line, line


def test_sim_fail_makes_node_down_and_back():
    d = Daemon().start()
    d.wait_state("db", "ok")
    d.ok("sim fail db on")
    line = d.wait_state("db", "down")
    assert "does not answer" in line, line
    d.ok("sim fail db off")
    d.wait_state("db", "ok")


def test_power_off_is_state_off():
    d = Daemon().start()
    d.ok("sim power web off")
    d.wait_state("web", "off")
    d.ok("sim power web on")
    d.wait_state("web", "ok")


def test_exit_statuses():
    d = Daemon().start()
    rc, out = d.x("no-such-command")
    assert rc == 1 and "unknown command" in out, (rc, out)
    rc, out = d.x("sim set mail no_sensor 3")
    assert rc == 1 and "no sensor" in out, (rc, out)
    rc, out = d.x("sim set mail cpu_temp 9x")
    assert rc == 1, (rc, out)
    rc, out = d.x('sim set mail "unbalanced')
    assert rc == 1 and "quote" in out, (rc, out)
    rc, out = d.x("core show channels")
    assert rc == 0 and "console" in out, (rc, out)
    rc, out = d.x("module show")
    assert rc == 0 and "sim" in out, (rc, out)


def test_no_daemon_exit_2():
    sock = os.path.join(sbtest.tmpdir(), "nothing.sock")
    p = subprocess.run([sbtest.BIN, "-s", sock, "-x", "core show nodes"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)


def test_socket_is_private_and_single():
    d = Daemon().start()
    mode = stat.S_IMODE(os.stat(d.sock).st_mode)
    assert mode == 0o600, oct(mode)
    # A second daemon on the same socket refuses to start and leaves the
    # first one running.
    d2 = Daemon()
    d2.sock = d.sock
    d2.expect_fail = True
    d2.start(wait=False)
    assert d2.proc.wait(30) == 1
    assert "already listening" in d2.logtext()
    d.ok("core show nodes")


def test_sigterm_exits_zero_and_removes_socket():
    d = Daemon().start()
    assert d.stop() == 0
    assert not os.path.exists(d.sock)


def test_sighup_with_broken_config_keeps_running_one():
    d = Daemon(conf_text=demo_text()).start()
    d.wait_state("mail", "ok")
    with open(d.conf, "a") as f:
        f.write("\nthis is not libconfig\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in d.logtext(), what="the reload failure in the log")
    assert re.search(r"switchboard\.conf:\d+: ", d.logtext()), d.logtext()
    out = d.ok("core show nodes")
    assert all(n in out for n in ("ftp", "web", "mail", "db")), out
    # A good config with one more node takes effect in place.
    text = demo_text().replace("nodes = (", """nodes = (
  { name = "extra"; hal = { backend = "sim";
      sensors = ( { name = "t"; kind = "temperature"; unit = "C"; value = 20.0; } ); }; },""", 1)
    with open(d.conf, "w") as f:
        f.write(text)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "extra" in d.ok("core show nodes"), what="the new node")
    d.wait_state("extra", "ok")


def test_reload_failing_at_a_node_leaves_channels_and_nodes_as_they_were():
    """The nodes are applied last in a reload: a node whose backend refuses
    to open fails the reload after the new channels were opened, and they
    are dropped unstarted; the running config stays whole, and the next
    good reload applies (the nodes' settings were released after the first
    start, so nothing may lean on them)."""
    d = Daemon(conf_text=demo_text()).start()
    d.wait_state("mail", "ok")
    console = '  { name = "console"; driver = "console"; context = "default"; }\n'
    web = '  { name = "web2"; driver = "http"; bind = "127.0.0.1"; port = 0; }\n'
    bad = ('  { name = "broken"; hal = { backend = "sim";\n'
           '      sensors = ( { name = "t"; kind = "smell"; } ); }; },')
    good = ('  { name = "extra"; hal = { backend = "sim";\n'
            '      sensors = ( { name = "t"; kind = "temperature"; unit = "C"; value = 20.0; } ); }; },')
    base = demo_text().replace(console, console.rstrip("\n") + ",\n" + web, 1)
    assert base != demo_text()
    with open(d.conf, "w") as f:
        f.write(base.replace("nodes = (", "nodes = (\n" + bad, 1))
    rc, out = d.x("core reload")
    assert rc == 1 and "smell" in out, out
    assert "web2" not in d.ok("core show channels")
    out = d.ok("core show nodes")
    assert "broken" not in out and all(n in out for n in ("ftp", "web", "mail", "db")), out
    d.ok("sim set mail cpu_temp 95")
    d.wait_state("mail", "critical")
    with open(d.conf, "w") as f:
        f.write(base.replace("nodes = (", "nodes = (\n" + good, 1))
    rc, out = d.x("core reload")
    assert rc == 0, out
    assert "web2" in d.ok("core show channels")
    d.wait_state("extra", "ok")
    assert d.node_state("mail") == "critical"     # unchanged node, same simulator


def test_reload_keeps_node_state():
    d = Daemon(conf_text=demo_text()).start()
    d.ok("sim set mail cpu_temp 95")
    d.wait_state("mail", "critical")
    rc, out = d.x("core reload")
    assert rc == 0, out
    # The unchanged node kept its simulator and so its state.
    assert d.node_state("mail") == "critical"


BAD = [
    ("syntax", 'daemon = { log_level = "info" }\nnodes = ( { name = "a" ', r":\d+: "),
    ("unknown key", 'daemon = {\n  colour = "blue";\n};\n', r":2: unknown key 'colour'"),
    ("wrong type", 'daemon = {\n  poll_interval = "fast";\n};\n', r":2: 'poll_interval' must be a number"),
    ("unknown backend", 'nodes = (\n { name = "a";\n   hal = { backend = "quantum"; }; }\n);\n',
     r":3: unknown HAL backend \"quantum\""),
    ("duplicate node", 'nodes = (\n { name = "a"; hal = { backend = "sim"; }; },\n'
     ' { name = "a"; hal = { backend = "sim"; }; }\n);\n', r":3: duplicate node \"a\""),
    ("missing key", 'nodes = (\n { hal = { backend = "sim"; }; }\n);\n',
     r":2: .*missing required key 'name'"),
    ("unknown driver", 'channels = (\n { name = "x"; driver = "telex"; }\n);\n',
     r":2: unknown channel driver \"telex\""),
    ("bad sensor", 'nodes = (\n { name = "a"; hal = { backend = "sim";\n'
     '   sensors = ( { name = "t"; kind = "smell"; } ); }; }\n);\n', r":\d+: .*smell"),
    ("unknown role", 'acl = (\n { match = "xmpp:*"; role = "wizard"; }\n);\n', r"wizard"),
    ("history too short", 'store = {\n  event_max_age = 60.0;\n};\n',
     r":2: store: event_max_age must be 0 \(keep for ever\) or at least 3600 seconds"),
]


def test_check_config_reports_file_and_line():
    t = sbtest.tmpdir()
    for name, text, pattern in BAD:
        path = os.path.join(t, name.replace(" ", "_") + ".conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([sbtest.BIN, "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, (name, p.returncode, p.stdout, p.stderr)
        assert path in p.stderr, (name, p.stderr)
        assert re.search(pattern, p.stderr), (name, pattern, p.stderr)
    p = subprocess.run([sbtest.BIN, "-c", os.path.join(t, "missing.conf"), "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "No such file" in p.stderr, p.stderr
    p = subprocess.run([sbtest.BIN, "-c", os.path.join(sbtest.ROOT, "config", "demo.conf"),
                        "--check-config"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_version():
    p = subprocess.run([sbtest.BIN, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and re.match(r"switchboard \d+\.\d+", p.stdout), p.stdout


def test_remote_console_on_a_terminal():
    """-r on a terminal loads libedit (the daemon and -x never map it): a
    prompt, a command and its output, an event printed above the prompt,
    ^D leaves with status 0 and the line is in the history file."""
    import pty
    import select
    d = Daemon().start()
    d.wait_state("web", "ok")
    home = sbtest.tmpdir()
    pid, fd = pty.fork()
    if pid == 0:
        env = dict(os.environ, HOME=home, TERM="dumb")
        os.execve(sbtest.BIN, [sbtest.BIN, "-s", d.sock, "-r"], env)
    seen = bytearray()

    def until(text):
        def more():
            if text.encode() in seen:
                return True
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen.extend(os.read(fd, 4096))
                except OSError:
                    pass
            return text.encode() in seen
        return wait_for(more, what="%r from the console; it printed %r" % (text, bytes(seen)))

    try:
        until("switchboard> ")
        os.write(fd, b"core show version\r")
        until("switchboard 0.")
        d.ok("sim set web cpu_temp 86")
        until("warning")
        os.write(fd, b"\x04")
        _, status = os.waitpid(pid, 0)
        pid = None
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        os.close(fd)
    with open(os.path.join(home, ".switchboard_history")) as f:
        hist = f.read()
    # libedit's format: a header line, then each line with spaces as \040
    assert "core\\040show\\040version" in hist, hist
