"""Least privilege and process hygiene, end to end: the drop from root to
daemon.user, the control socket's mode, secrets read from files (and refused
when everyone may read them), systemd's readiness and watchdog pings on a
fake NOTIFY_SOCKET, and descriptors under a flood of HTTP connections.

The privilege tests need root (CI runs the suite as root); run as anyone
else they say so and pass without checking anything."""
import grp
import http.client
import json
import os
import pwd
import re
import resource
import signal
import socket
import stat
import subprocess
import time

import sbtest
from sbtest import Daemon, wait_for

TOKEN = "file-token-0123456789abcdef"
WEB = os.path.join(sbtest.ROOT, "web")


def demo_text(daemon_extra="", channels_extra="", acl_extra=""):
    with open(os.path.join(sbtest.ROOT, "config", "demo.conf")) as f:
        text = f.read()
    text = text.replace('"../scripts"', '"%s"' % os.path.join(sbtest.ROOT, "scripts"))
    if daemon_extra:
        text = text.replace("  confirm_timeout = 60;\n",
                            "  confirm_timeout = 60;\n" + daemon_extra + "\n", 1)
        assert daemon_extra in text
    if channels_extra:
        console = '{ name = "console"; driver = "console"; context = "default"; }'
        assert console in text
        text = text.replace(console, console + ",\n" + channels_extra, 1)
    if acl_extra:
        assert "acl = (\n" in text
        text = text.replace("acl = (\n", "acl = (\n" + acl_extra, 1)
    return text


def http_section(tokens):
    return ('  { name = "web"; driver = "http"; bind = "127.0.0.1"; port = 0;\n'
            '    web_root = "%s"; public_read = false; max_connections = 256;\n'
            '    tokens = ( %s ); }' % (os.path.join(sbtest.ROOT, "web"), tokens))


def http_port(d):
    m = wait_for(lambda: re.search(r"http web: listening on http://127\.0\.0\.1:(\d+)/",
                                   d.logtext()), what="the http channel to listen")
    return int(m.group(1))


def get(port, path, token=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def check_config(path, env=None):
    return subprocess.run([sbtest.BIN, "-c", path, "--check-config"], capture_output=True,
                          text=True, timeout=30, env=env)


def is_root():
    if os.geteuid() != 0:
        print("    skipped: needs root (the drop from root to daemon.user)", flush=True)
        return False
    return True


def write_secret(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


# ---- dropping privileges ----

def test_drop_to_nobody_keeps_working():
    """Started as root with user = "nobody": runs as nobody (all four ids,
    no supplementary root group, no way back), owns its state, and still
    runs commands, polls, and writes events and audit rows to the store."""
    if not is_root():
        return
    nobody = pwd.getpwnam("nobody")
    d = Daemon(conf_text=demo_text('  user = "nobody";'))
    os.chmod(d.dir, 0o711)      # nobody must reach the state folder below
    # ... and read the config again on reload: root's, group-readable.
    os.chown(d.conf, 0, nobody.pw_gid)
    os.chmod(d.conf, 0o640)
    d.start()
    st = proc_status(d.proc.pid)
    assert st["Uid"] == [str(nobody.pw_uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(nobody.pw_gid)] * 4, st["Gid"]
    assert "0" not in st.get("Groups", []), st.get("Groups")
    assert st["CapEff"] == ["0000000000000000"], st["CapEff"]
    assert "running as user nobody" in d.logtext()
    # Every thread switched, not only the main one (glibc's setxid).
    for tid in os.listdir("/proc/%d/task" % d.proc.pid):
        assert proc_status(int(tid))["Uid"][1] == str(nobody.pw_uid), tid
    # The state folder and the store are the daemon's now.
    for name in [d.state] + [os.path.join(d.state, n) for n in os.listdir(d.state)]:
        assert os.lstat(name).st_uid == nobody.pw_uid, name
    # The socket stays private: the daemon's user, mode 0600.
    s = os.stat(d.sock)
    assert stat.S_IMODE(s.st_mode) == 0o600 and s.st_uid == nobody.pw_uid, oct(s.st_mode)
    # It still works: commands, polls, a state change becomes an event in
    # the store (alerts lists it) and every command an audit row.
    for n in ("ftp", "web", "mail", "db"):
        d.wait_state(n, "ok")
    # No node was polled as root: the first states come after the drop.
    log = d.logtext()
    first = re.search(r"node \w+: \w+ -> \w+", log)
    assert first and first.start() > log.find("running as user nobody") >= 0, log[-3000:]
    d.ok("sim set mail cpu_temp 95")
    d.wait_state("mail", "critical")
    wait_for(lambda: "mail" in d.ok("alerts"), what="the event in the store")
    assert "sim set mail cpu_temp 95" in d.ok("audit 5")
    d.ok("core reload")
    assert d.stop() == 0
    assert "Traceback" not in d.logtext()


def test_unknown_user_is_a_config_error_with_line():
    text = demo_text('  user = "no-such-user-sb";')
    d = Daemon(conf_text=text)
    line = text.split("\n").index('  user = "no-such-user-sb";') + 1
    p = check_config(d.conf)
    assert p.returncode == 1, p.stderr
    assert "%s:%d:" % (d.conf, line) in p.stderr and "no-such-user-sb" in p.stderr, p.stderr


def test_socket_group_makes_socket_0660():
    if not is_root():
        return
    group = "adm" if _group_exists("adm") else grp.getgrgid(os.getgid()).gr_name
    d = Daemon(conf_text=demo_text('  socket_group = "%s";' % group)).start()
    s = os.stat(d.sock)
    assert stat.S_IMODE(s.st_mode) == 0o660, oct(s.st_mode)
    assert s.st_gid == grp.getgrnam(group).gr_gid


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


# ---- secrets from files ----

def test_http_token_from_file_and_credentials_directory():
    """A token from token_file (trailing newline stripped) authenticates; a
    relative name is looked up in $CREDENTIALS_DIRECTORY."""
    creds = sbtest.tmpdir()
    write_secret(os.path.join(creds, "api"), TOKEN + "\n", 0o400)
    old = os.environ.get("CREDENTIALS_DIRECTORY")
    os.environ["CREDENTIALS_DIRECTORY"] = creds
    try:
        d = Daemon(conf_text=demo_text(
            channels_extra=http_section('{ name = "ci"; token_file = "api"; }'),
            acl_extra='  { match = "http:ci"; role = "viewer"; },\n')).start()
    finally:
        if old is None:
            del os.environ["CREDENTIALS_DIRECTORY"]
        else:
            os.environ["CREDENTIALS_DIRECTORY"] = old
    port = http_port(d)
    st, body = get(port, "/api/nodes", TOKEN)
    assert st == 200, (st, body)
    assert "mail" in json.dumps(json.loads(body))
    st, _ = get(port, "/api/nodes")
    assert st == 401, st
    assert TOKEN not in d.logtext()


def test_world_readable_secret_files_refused_with_line():
    """Every *_file key refuses a file everyone may read, naming the config
    file and line; 0640 is accepted."""
    d = Daemon(conf_text="")        # a folder to work in
    sec = os.path.join(d.dir, "secret")
    write_secret(sec, "s3cret-s3cret-s3cret\n", 0o644)
    cases = [
        ('{ name = "x"; driver = "xmpp"; jid = "sb@example.org"; node = "web";\n'
         '    password_file = "%s"; }' % sec, "password_file"),
        ('{ name = "x"; driver = "xmpp"; mode = "component"; component = "sb.example.org";\n'
         '    secret_file = "%s"; }' % sec, "secret_file"),
        ('{ name = "i"; driver = "irc"; password_file = "%s"; }' % sec, "password_file"),
        ('{ name = "i"; driver = "irc"; nickserv_password_file = "%s"; }' % sec,
         "nickserv_password_file"),
        (http_section('{ name = "ci"; token_file = "%s"; }' % sec), "token_file"),
        ('{ name = "web"; driver = "http"; port = 0; web_root = "%s";\n'
         '    hooks = ( { name = "h"; hmac_secret_file = "%s"; } ); }' % (WEB, sec),
         "hmac_secret_file"),
        ('{ name = "web"; driver = "http"; port = 0; web_root = "%s";\n'
         '    webhooks = ( { name = "w"; url = "http://127.0.0.1:9/"; token_file = "%s"; } ); }'
         % (WEB, sec), "token_file"),
    ]
    for section, key in cases:
        text = demo_text(channels_extra=section)
        with open(d.conf, "w") as f:
            f.write(text)
        os.chmod(d.conf, 0o600)
        line = next(i + 1 for i, ln in enumerate(text.split("\n")) if key + " =" in ln)
        os.chmod(sec, 0o644)
        p = check_config(d.conf)
        assert p.returncode == 1, (key, p.stdout)
        assert "%s:%d: %s" % (d.conf, line, key) in p.stderr, (key, p.stderr)
        assert "readable by everyone" in p.stderr and "s3cret" not in p.stderr, p.stderr
        os.chmod(sec, 0o640)
        p = check_config(d.conf)
        assert p.returncode == 0, (key, p.stderr)


def test_inline_secret_needs_a_private_config():
    text = demo_text(channels_extra=http_section('{ name = "ci"; token = "%s"; }' % TOKEN))
    d = Daemon(conf_text=text)
    line = next(i + 1 for i, ln in enumerate(text.split("\n")) if "token =" in ln)
    os.chmod(d.conf, 0o644)
    p = check_config(d.conf)
    assert p.returncode == 1
    assert "%s:%d: token" % (d.conf, line) in p.stderr, p.stderr
    assert "readable by everyone" in p.stderr and TOKEN not in p.stderr, p.stderr
    os.chmod(d.conf, 0o640)
    assert check_config(d.conf).returncode == 0
    # Both forms at once is a mistake, not a preference.
    sec = os.path.join(d.dir, "tok")
    write_secret(sec, TOKEN, 0o600)
    with open(d.conf, "w") as f:
        f.write(text.replace('token = "%s";' % TOKEN,
                             'token = "%s"; token_file = "%s";' % (TOKEN, sec)))
    p = check_config(d.conf)
    assert p.returncode == 1 and "not both" in p.stderr, p.stderr


# ---- systemd: READY=1 and the watchdog ----

def test_watchdog_pings_on_notify_socket():
    """With NOTIFY_SOCKET and WATCHDOG_USEC set (as systemd does for
    WatchdogSec=), READY=1 comes first, then WATCHDOG=1 at about half the
    interval, and STOPPING=1 at the end."""
    d = Daemon(conf_text=demo_text())
    path = os.path.join(d.dir, "notify")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(10)
    sbtest.add_cleanup(rx.close)
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    os.environ.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    os.environ.pop("WATCHDOG_PID", None)
    try:
        d.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert rx.recv(256) == b"READY=1"
    times = []
    while len(times) < 6:
        assert rx.recv(256) == b"WATCHDOG=1"
        times.append(time.monotonic())
    gaps = [b - a for a, b in zip(times, times[1:])]
    # 200 ms apart; generous bounds for a loaded 2-core machine.
    assert all(0.1 <= g <= 0.6 for g in gaps), gaps
    assert "ok" in d.node_line("web") or d.wait_state("web", "ok")
    d.signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = rx.recv(256)
        if m == b"STOPPING=1":
            break
        assert m == b"WATCHDOG=1", m
    else:
        raise AssertionError("no STOPPING=1")
    assert d.proc.wait(30) == 0


# ---- descriptors ----

def test_many_http_connections_no_descriptor_past_1023():
    """1,200 connections at once, far over max_connections (256): the ones
    over the cap get 503 and are closed, no descriptor of the daemon reaches
    1024 (libstrophe and libircclient select()), its soft descriptor limit
    is 1024, and the console and the HTTP API keep answering throughout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    d = Daemon(conf_text=demo_text(
        channels_extra=http_section('{ name = "ci"; token = "%s"; }' % TOKEN),
        acl_extra='  { match = "http:ci"; role = "viewer"; },\n')).start()
    port = http_port(d)
    pid = d.proc.pid
    with open("/proc/%d/limits" % pid) as f:
        lim = [ln for ln in f if ln.startswith("Max open files")][0].split()
    # (valgrind emulates the limit: /proc shows its own, not the daemon's)
    assert lim[3] == "1024" or os.environ.get("SB_WRAP"), lim

    def top_fd():
        return max(int(n) for n in os.listdir("/proc/%d/fd" % pid))

    socks, busy, highest = [], 0, 0
    try:
        for i in range(1200):
            s = socket.socket()
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            socks.append(s)
            if i % 100 == 99:
                highest = max(highest, top_fd())
                assert d.x("core show version")[0] == 0
        # Those over the cap were told so and closed.
        for s in socks[256 + 8:]:
            busy += s.recv(200).startswith(b"HTTP/1.1 503")
        highest = max(highest, top_fd())
        assert highest < 1024, highest
        assert busy == len(socks) - 256 - 8, busy
        # Every channel still answers while the idle ones are held open.
        assert d.x("core show nodes")[0] == 0
        d.ok("sim set db cpu_temp 95")
        d.wait_state("db", "critical")
    finally:
        for s in socks:
            s.close()
    # Once they are gone, HTTP answers again.
    st, _ = wait_for(lambda: (lambda r: r[0] == 200 and r)(get(port, "/api/nodes", TOKEN)),
                     what="HTTP to answer after the flood")
    wait_for(lambda: top_fd() < 256, what="the daemon to close what the clients closed")
    assert "past 1024" not in d.logtext()
