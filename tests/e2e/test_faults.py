"""Fault injection end to end (issue 10): the real daemon against real
peers that die, hang, lie or run out of room.  For each fault the daemon
keeps serving what is up, says what is wrong (log, `core show channels`,
`core show nodes`), recovers, and loses no queued notification: the
receivers are counted by distinct notification text and the spool table
of state/switchboard.db must end empty.

  test_fault_xmpp_server_killed_*    prosody SIGKILLed mid command and
                                     notification burst, then restarted
  test_fault_irc_server_killed_*     ngircd likewise
  test_fault_bmc_*                   ipmi_sim frozen (SIGSTOP), slowed by a
                                     delaying proxy, and a "BMC" that
                                     answers garbage
  test_fault_webhook_receiver_hangs  accepts, never answers; then answers
  test_fault_state_disk_full         the state folder on a full tmpfs (in
                                     the daemon's own mount namespace)
  test_fault_daemon_sigkill_*        kill -9 mid burst, restart: every
                                     accepted notification arrives

Run: /usr/bin/python3 tests/e2e/run.py -k test_faults
"""
import errno
import heapq
import http.server
import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import sbtest
from sbtest import Daemon, wait_for
import irc_env
import xmpp_env
import test_hal as hal_t
import test_http as http_t

LONG = 60
NOTIFY = "notify = { group_wait = 0.0; group_max = 30.0; retry_min = 0.2; retry_max = 1.0; };\n"

# note N: one notification with its own key and text; accepted when the
# command answers.
NOTES = """
command "note <n:number>" {
  role = "admin",
  run = function(ctx, a)
    local id = notify { severity = "warning", key = "note/" .. a.n,
                        text = string.format("note %%03d", a.n) }
    return "accepted " .. tostring(id)
  end,
}
route { source = "script", to = { %s } }
"""


# ---------------------------------------------------------------- helpers

def db_path(d):
    return os.path.join(d.state, "switchboard.db")


def spool_rows(d):
    db = sqlite3.connect(db_path(d), timeout=10)
    try:
        return db.execute("SELECT id, dest, text FROM spool").fetchall()
    finally:
        db.close()


def channel_line(d, name):
    for line in d.ok("core show channels").splitlines():
        if line.split() and line.split()[0] == name:
            return line
    return ""


def prompt(d, limit=3.0):
    """The console answers, and promptly, whatever else is broken."""
    t0 = time.monotonic()
    out = d.ok("core show nodes")
    dt = time.monotonic() - t0
    assert dt < limit, "the console took %.1f s to answer" % dt
    return out


def note_numbers(texts):
    """The distinct note numbers found in texts."""
    got = set()
    for t in texts:
        got.update(int(n) for n in re.findall(r"note (\d{3})", t or ""))
    return got


class Burst:
    """Runs "note i" for i in numbers through -x in a thread, one after the
    other; accepted holds the numbers whose command answered "accepted".
    gate(i), when given, is called before note i (it may wait)."""

    def __init__(self, d, numbers, gate=None, pause=0.0):
        self.d = d
        self.numbers = list(numbers)
        self.gate = gate
        self.pause = pause
        self.accepted = []
        self.failed = []
        self.error = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        sbtest.add_cleanup(lambda: self.t.join(LONG) and None)

    def _run(self):
        try:
            for i in self.numbers:
                if self.gate:
                    self.gate(i)
                try:
                    rc, out = self.d.x("note %d" % i, timeout=30)
                except (subprocess.TimeoutExpired, OSError) as e:
                    rc, out = -1, repr(e)
                if rc == 0 and "accepted E" in out:
                    self.accepted.append(i)
                else:
                    self.failed.append((i, rc, out.strip()))
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as e:  # noqa: B902 - reported by wait()
            self.error = e
        finally:
            self.done.set()

    def wait(self, timeout=LONG):
        assert self.done.wait(timeout), "the burst did not finish"
        if self.error:
            raise self.error
        return self


def http_daemon(extra, routes, cls=Daemon, **kw):
    """The demo farm with an http channel (test_http's), our NOTIFY
    settings; returns the started daemon with .scheme and .port."""
    d = cls(conf_text=http_t.conf_text(extra, routes=routes) + NOTIFY, **kw).start()
    m = wait_for(lambda: re.search(r"http web: listening on (https?)://127\.0\.0\.1:(\d+)/",
                                   d.logtext()), what="the http channel to listen")
    d.scheme, d.port = m.group(1), int(m.group(2))
    return d


def scripts(route_to):
    return xmpp_env.script_dir({"zz_notes.lua": NOTES % route_to})


# ---------------------------------------------------------------- XMPP

def test_fault_xmpp_server_killed_mid_command_and_notification_burst():
    p = xmpp_env.Prosody(operators=["admin"], nodes=["web", "mail"],
                         extra_modules=("offline",)).start()
    p.register("admin", "secret")
    conf = xmpp_env.daemon_conf(p, nodes=["web", "mail"], scripts=[scripts('"xmpp:admin@sb.test"')],
                                extra=NOTIFY, poll=0.5)
    d = Daemon(conf_text=conf).start()
    op = xmpp_env.Operator(p, "admin", "secret", register=False).connect()
    web = p.node_jid("web")
    wait_for(lambda: "connected" in channel_line(d, "xmpp") and
             "connecting" not in channel_line(d, "xmpp"), LONG, "the XMPP link up")
    op.wait_presence(web, "available", timeout=LONG)
    killed = threading.Event()
    restarted = threading.Event()

    def gate(i):
        # Notes 1-10 with the server up, 11-20 while it is dead, 21-30
        # while it comes back.
        if i == 11:
            killed.wait(LONG)
        if i == 21:
            restarted.wait(LONG)
    burst = Burst(d, range(1, 31), gate=gate, pause=0.02)
    # A command burst at the same time.
    since = op.mark()
    for _ in range(10):
        op.send(web, "status")
    op.wait_message(lambda m: m["from_bare"] == web and m["body"] and "web: ok" in m["body"],
                    timeout=LONG, since=since)
    wait_for(lambda: len(burst.accepted) >= 8, LONG, "the first notes")
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait()
    killed.set()
    # Reported: the link is down, in the log and in core show channels.
    wait_for(lambda: "connected" not in channel_line(d, "xmpp").replace("connecting", ""),
             LONG, "the link to be reported down (%r)" % channel_line(d, "xmpp"))
    wait_for(lambda: len(burst.accepted) + len(burst.failed) >= 20, LONG, "notes 11-20")
    # The console keeps answering while the server is gone.
    for _ in range(3):
        prompt(d)
    assert len(spool_rows(d)) > 0, "nothing waits in the spool while the server is dead"
    p.start()
    restarted.set()
    burst.wait()
    assert burst.accepted == list(range(1, 31)), burst.failed
    wait_for(lambda: "connected" in channel_line(d, "xmpp") and
             "connecting" not in channel_line(d, "xmpp"), LONG, "the link back up")
    op.wait_online(LONG, after_sessions=1)
    # Commands work again.
    since = op.mark()
    for _ in range(3):
        op.send(web, "status")
    wait_for(lambda: len([m for m in op.messages_since(since) if m["from_bare"] == web and
                          m["body"] and "web: ok" in m["body"]]) >= 3, LONG,
             "three answers after the restart")
    # Every note arrives (online or from offline storage), the spool empties.
    wait_for(lambda: note_numbers(m["body"] for m in op.messages_since(0)) >= set(range(1, 31)),
             2 * LONG, "all 30 notes at the operator (got %s)"
             % sorted(note_numbers(m["body"] for m in op.messages_since(0))))
    wait_for(lambda: not spool_rows(d), LONG, "an empty spool")
    log = d.logtext()
    assert re.search(r"xmpp.*(disconnect|lost|closed|cannot connect)", log, re.I), log[-3000:]
    assert d.proc.poll() is None


# ---------------------------------------------------------------- IRC

def test_fault_irc_server_killed_mid_notification_burst():
    """IRC has no acknowledgement: a notice is confirmed once written to
    the socket, so a line written in the instant the server dies may be
    lost (the protocol's limit, doc/notifications.md).  Everything still
    queued in the bot or the spool must arrive."""
    ircd = irc_env.Ngircd(password="pw-one").start()
    conf = irc_env.daemon_conf(ircd, nodes=("web", "mail"), scripts=[scripts('"irc:#ops"')],
                               password="pw-one", poll=0.5) + NOTIFY
    d = Daemon(conf_text=conf).start()
    bot = "sbbot"
    wait_for(lambda: "in 1 of 1 channels" in channel_line(d, "irc"), LONG, "the bot in #ops")
    alice = irc_env.IrcUser(ircd, "alice", password="pw-one").connect()
    alice.join("#ops")
    killed = threading.Event()

    def gate(i):
        if i == 13:
            killed.wait(LONG)
    burst = Burst(d, range(1, 25), gate=gate)

    def received(u):
        return note_numbers(m.text for m in u.since(0) if m.frm == bot and m.target == "#ops")
    # Mid burst: the first notices are arriving, more are queued (the bot
    # paces its lines).
    wait_for(lambda: len(received(alice)) >= 2, LONG, "the first notices")
    ircd.proc.send_signal(signal.SIGKILL)
    ircd.proc.wait()
    before = received(alice)
    killed.set()
    wait_for(lambda: re.search(r"irc \S+: disconnected from", d.logtext()), LONG,
             "the disconnection in the log")
    wait_for(lambda: "in 1 of 1" not in channel_line(d, "irc"), LONG, "core show channels")
    prompt(d)
    burst.wait()
    assert burst.accepted == list(range(1, 25)), burst.failed
    assert len(spool_rows(d)) > 0
    # Back, with a password the bot does not know yet, so that alice is in
    # #ops before the bot can be; then the right one.
    ircd.set_password("pw-two", rehash=False)
    ircd.start()
    alice2 = irc_env.IrcUser(ircd, "alice", password="pw-two").connect()
    alice2.join("#ops")
    wait_for(lambda: "Bad password" in d.logtext() or "refused the password" in d.logtext(),
             LONG, "the bot to be refused once")
    ircd.set_password("pw-one")
    want = set(range(1, 25))
    wait_for(lambda: not spool_rows(d), 2 * LONG, "an empty spool")
    wait_for(lambda: "in 1 of 1 channels" in channel_line(d, "irc"), LONG, "the bot back")
    got = before | received(alice2)
    missing = want - got
    # Only a notice written as the server died may be missing: the ones
    # right after the last that arrived before the kill.
    top = max(before)
    assert missing <= {top + 1, top + 2}, "lost %s (before the kill: %s)" % (sorted(missing),
                                                                           sorted(before))
    assert d.proc.poll() is None


# ---------------------------------------------------------------- BMC

class DelayProxy:
    """A UDP proxy to a BMC that holds each request for self.delay
    seconds: a BMC that answers slowly (or, past the daemon's timeout,
    not at all)."""

    def __init__(self, target_port, delay=0.0):
        self.target = ("127.0.0.1", target_port)
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = {}             # client address -> upstream socket
        self.down = {}           # upstream socket -> client address
        self.heap = []
        self.seq = 0
        self.stop_flag = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        sbtest.add_cleanup(self.stop)

    def _run(self):
        while not self.stop_flag:
            now = time.monotonic()
            while self.heap and self.heap[0][0] <= now:
                _, _, s, data, addr = heapq.heappop(self.heap)
                try:
                    s.sendto(data, addr)
                except OSError:
                    pass
            wait = min(0.05, max(0.0, self.heap[0][0] - now)) if self.heap else 0.05
            r, _, _ = select.select([self.sock] + list(self.down), [], [], wait)
            for s in r:
                try:
                    data, addr = s.recvfrom(65536)
                except OSError:
                    continue
                if s is self.sock:
                    u = self.up.get(addr)
                    if u is None:
                        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        u.bind(("127.0.0.1", 0))
                        self.up[addr], self.down[u] = u, addr
                    self.seq += 1
                    heapq.heappush(self.heap, (time.monotonic() + self.delay, self.seq, u,
                                               data, self.target))
                else:
                    self.sock.sendto(data, self.down[s])

    def stop(self):
        self.stop_flag = True
        self.t.join(5)
        for s in [self.sock] + list(self.down):
            s.close()


class JunkBmc:
    """A UDP socket that answers every datagram with garbage."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.stop_flag = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        sbtest.add_cleanup(self.stop)

    def _run(self):
        junk = [b"\x06\x00\xff\x07" + os.urandom(40), b"garbage\r\n", os.urandom(300),
                b"\x06\x00\xff\x07\x06\xc0" + b"\xff" * 60, b""]
        while not self.stop_flag:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                data, addr = self.sock.recvfrom(65536)
                self.count += 1
                # Sometimes the request echoed back, byte-flipped.
                j = junk[self.count % len(junk)] or bytes(b ^ 0x5a for b in data)
                self.sock.sendto(j, addr)

    def stop(self):
        self.stop_flag = True
        self.t.join(5)
        self.sock.close()


def ipmi_node(name, port, timeout):
    return """  { name = "%s"; poll_interval = 0.5;
    hal = { backend = "ipmi"; host = "127.0.0.1"; port = %d;
            username = "%s"; password = "%s"; privilege = "admin";
            workarounds = [ "opensesspriv" ]; timeout = %s; request_timeout = 20.0; }; }""" % (
        name, port, hal_t.Bmc.USER, hal_t.Bmc.PASSWORD, timeout)


def sim_node(name):
    return """  { name = "%s"; poll_interval = 0.5; hal = { backend = "sim"; sensors = (
      { name = "cpu_temp"; kind = "temperature"; unit = "C"; value = 40.0;
        high_warning = 85.0; high_critical = 90.0; } ); }; }""" % name


def test_fault_bmc_frozen_slow_and_garbage():
    bmc = hal_t.Bmc().start()
    proxy = DelayProxy(bmc.port)
    junk = JunkBmc()
    timeout = 3.0
    d = hal_t.start([ipmi_node("frozen", bmc.port, timeout), ipmi_node("slow", proxy.port, timeout),
                     ipmi_node("junk", junk.port, timeout), sim_node("web")])
    d.wait_state("frozen", "ok", timeout=LONG)
    d.wait_state("slow", "ok", timeout=LONG)
    d.wait_state("web", "ok")
    # Garbage: down, with a reason naming the BMC, never a crash.
    line = d.wait_state("junk", "down", timeout=LONG)
    assert "127.0.0.1:%d" % junk.port in line, line
    assert junk.count > 0
    rc, out = d.x("sensors junk")
    assert rc != 0 and out.strip(), (rc, out)

    # Slow but within the timeout (each of a session's round trips held
    # 0.3 s): still ok, and answers.
    proxy.delay = 0.3
    t0 = time.monotonic()
    out = d.ok("sensors slow")
    assert "CPU_Temp" in out and time.monotonic() - t0 >= 0.6, out
    prompt(d, limit=1.0)
    assert d.node_state("slow") == "ok"
    # Slower than the timeout: down, "does not answer".
    proxy.delay = timeout + 3
    line = d.wait_state("slow", "down", timeout=LONG)
    assert "does not answer" in line, line
    # Frozen: down too; the sim node and the console go on.
    bmc.freeze()
    for _ in range(3):
        prompt(d, limit=1.5)
    line = d.wait_state("frozen", "down", timeout=LONG)
    assert "BMC 127.0.0.1:%d does not answer" % bmc.port in line, line
    assert d.node_state("web") == "ok"
    d.ok("sim set web cpu_temp 95")
    d.wait_state("web", "critical")
    assert "web: critical" in d.ok("status web")
    # Recovery.
    bmc.thaw()
    proxy.delay = 0.0
    d.wait_state("frozen", "ok", timeout=LONG)
    d.wait_state("slow", "ok", timeout=LONG)
    assert d.node_state("junk") == "down"
    assert d.proc.poll() is None


# ---------------------------------------------------------------- webhook

class HangingReceiver:
    """An HTTP receiver that reads each request and, while self.hang is
    set, never answers it; once released it answers 200.  Records every
    body it received and the ones it answered."""

    def __init__(self):
        self.release = threading.Event()
        self.got, self.answered = [], []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.got.append(body)
                if not outer.release.is_set():
                    outer.release.wait(LONG)
                    return          # the client gave up long ago: no answer
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with outer.lock:
                    outer.answered.append(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        sbtest.add_cleanup(self.stop)

    def stop(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()


def webhook(name, port, timeout=2):
    return ('{ name = "%s"; url = "http://127.0.0.1:%d/hook"; format = "json"; '
            'retry_delay = 0.2; timeout = %s; }' % (name, port, timeout))


def test_fault_webhook_receiver_hangs():
    hang = HangingReceiver()
    good = http_t.Receiver([200])
    extra = "    webhooks = ( %s, %s );\n" % (webhook("hang", hang.port), webhook("good", good.port))
    routes = ('route { source = "ci", to = { "web:hang", "web:good" } }\n'
              'route { to = { "console" } }\n')
    d = http_daemon(extra, routes)
    st, b = http_t.post_hook(d, "ci", {"node": "web", "severity": "critical", "text": "disk 1"},
                             token=http_t.CI_HOOK_TOKEN)
    assert st == 200, (st, b)
    eid = b["ids"][0]
    # The good destination has it at once; the hanging one holds it.
    wait_for(lambda: good.bodies(), LONG, "the good receiver")
    wait_for(lambda: len(hang.got) >= 2, LONG, "the hanging receiver to be tried twice")
    wait_for(lambda: re.search(r"webhook hang: attempt \d+ failed", d.logtext()) or
             "webhook hang: attempt" in d.logtext(), LONG, "the failed attempt in the log")
    # Meanwhile: the API, the console and another notification go through.
    assert http_t.get_json(d, "/health")["ok"] is True
    prompt(d)
    st, b2 = http_t.post_hook(d, "ci", {"node": "mail", "severity": "warning", "text": "disk 2"},
                              token=http_t.CI_HOOK_TOKEN)
    assert st == 200, (st, b2)
    wait_for(lambda: len(good.bodies()) >= 2, LONG, "the second notification at the good one")
    assert [json.loads(g[1])["text"] for g in good.bodies()] == [
        "[%s] ci: web: disk 1" % eid, "[%s] ci: mail: disk 2" % b2["ids"][0]], good.bodies()
    assert len(spool_rows(d)) >= 1
    # The receiver answers again: both are delivered, the spool empties.
    hang.release.set()
    wait_for(lambda: not spool_rows(d), LONG, "an empty spool")
    texts = [json.loads(x)["text"] for x in hang.answered]
    assert sorted(set(texts)) == sorted(["[%s] ci: web: disk 1" % eid,
                                         "[%s] ci: mail: disk 2" % b2["ids"][0]]), texts
    assert len(good.bodies()) == 2      # the good one was not repeated
    assert d.proc.poll() is None


# ---------------------------------------------------------------- disk full

class NamespacedDaemon(Daemon):
    """A daemon whose state folder is a small tmpfs mounted in its own
    mount namespace (unshare --mount): nothing outside sees the mount, and
    it goes away with the daemon.  The test reaches the folder through
    /proc/PID/root."""

    def __init__(self, size, **kw):
        super().__init__(**kw)
        self.size = size

    def start(self, wait=True, extra=()):
        os.makedirs(self.state, exist_ok=True)
        logf = open(self.log, "ab")
        script = 'mount -t tmpfs -o size=%s,mode=0700 sbstate "$0" && exec "$@"' % self.size
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, self.state,
             sbtest.BIN, "-c", self.conf, "-s", self.sock, "-d", self.state, "-f"] + list(extra),
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        sbtest._daemons.append(self)
        if wait:
            wait_for(lambda: self.alive_and_answering(), what="the daemon to answer")
        return self

    def spool_rows(self):
        """The spool table, read inside the daemon's namespace (SQLite
        resolves /proc/PID/root, a symbolic link, to the outer folder)."""
        code = ("import sqlite3, sys, json; db = sqlite3.connect(sys.argv[1], timeout=10); "
                "print(json.dumps(db.execute('SELECT id, dest, text FROM spool').fetchall()))")
        p = subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", "/usr/bin/python3", "-c",
                            code, db_path(self)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def inside(self, *rel):
        return os.path.join("/proc/%d/root" % self.proc.pid, self.state.lstrip("/"), *rel)


def can_unshare():
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("unshare"):
        return "no unshare(1)"
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs -o size=64k t /mnt && umount /mnt"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return "unshare --mount / mount -t tmpfs not permitted: %s" % p.stderr.strip()
    return None


def fill(path):
    """Write zeros to path until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        try:
            while True:
                f.write(b"\0" * 512)
                f.flush()
        except OSError:
            pass


def test_fault_state_disk_full():
    why = can_unshare()
    if why:
        print("    skipped test_fault_state_disk_full: %s" % why)
        return
    good = http_t.Receiver([200])
    extra = "    webhooks = ( %s );\n" % webhook("good", good.port)
    notes = NOTES % '"web:good"'
    d = http_daemon(extra, notes + 'route { to = { "console" } }\n', cls=NamespacedDaemon,
                    size="4m")
    assert os.path.exists(d.inside("switchboard.db"))
    assert not os.path.exists(db_path(d)), "the tmpfs is visible outside the namespace"
    for i in range(1, 6):
        assert "accepted E" in d.ok("note %d" % i)
    wait_for(lambda: note_numbers(json.loads(b)["text"] for _, b, _ in good.bodies()) >= set(range(1, 6)),
             LONG, "notes 1-5")
    # The disk fills up.
    filler = d.inside("filler")
    fill(filler)
    results = {}
    for i in range(6, 16):
        results[i] = d.x("note %d" % i)
        prompt(d)
    wait_for(lambda: re.search(r"store: .*(full|disk)", d.logtext(), re.I), LONG,
             "the store failure in the log")
    # Commands not writing the store keep working.
    assert "web: ok" in d.ok("status web") or "web:" in d.ok("status web")
    # Space is back: what was accepted is delivered, new notes work.
    os.unlink(filler)
    for i in range(16, 21):
        assert "accepted E" in d.ok("note %d" % i), i
    accepted = {i for i, (rc, out) in results.items() if rc == 0 and "accepted E" in out}
    refused = {i: out for i, (rc, out) in results.items() if i not in accepted}
    for i, out in refused.items():
        assert "store" in out, "note %d refused without a clear reason: %r" % (i, out)
    want = set(range(1, 6)) | accepted | set(range(16, 21))
    wait_for(lambda: note_numbers(json.loads(b)["text"] for _, b, _ in good.bodies()) >= want,
             LONG, "every accepted note at the receiver (accepted while full: %s, refused: %s)"
             % (sorted(accepted), sorted(refused)))
    try:
        wait_for(lambda: not d.spool_rows(), LONG, "an empty spool")
    except AssertionError:
        raise AssertionError("%s\nthe spool still holds %r" % (d.logtext()[-1500:], d.spool_rows()))
    # Every event kept its own id: a failed commit must not hand the same
    # id to the next event (it did: E8 for notes 8 to 20).
    ids = {}
    for _, b, _ in good.bodies():
        m = re.match(r"\[(E\d+)\] .*(note \d{3})", json.loads(b)["text"])
        ids.setdefault(m.group(1), set()).add(m.group(2))
    shared = {k: v for k, v in ids.items() if len(v) > 1}
    assert not shared, "one id for several events: %r" % shared
    print("    disk full: %d accepted, %d refused" % (len(accepted), len(refused)))
    assert d.proc.poll() is None


# ---------------------------------------------------------------- kill -9

class SlowReceiver(http_t.Receiver):
    """Answers 200 after a short pause, so that a burst is still being
    delivered when the daemon dies."""

    def __init__(self, pause=0.05):
        super().__init__([200])
        handler = self.srv.RequestHandlerClass
        orig = handler.do_POST

        def slow(h):
            time.sleep(pause)
            orig(h)
        handler.do_POST = slow


def test_fault_daemon_sigkill_mid_burst():
    recv = SlowReceiver()
    extra = "    webhooks = ( %s );\n" % webhook("good", recv.port, timeout=5)
    notes = NOTES % '"web:good"'
    d = http_daemon(extra, notes + 'route { to = { "console" } }\n')
    burst = Burst(d, range(1, 81))
    wait_for(lambda: len(burst.accepted) >= 40, LONG, "40 notes accepted")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    burst.wait()
    accepted = set(burst.accepted)
    assert len(accepted) >= 40
    left = spool_rows(d)
    d.start()
    wait_for(lambda: not spool_rows(d), LONG, "an empty spool")
    wait_for(lambda: "notifications for" not in d.ok("core show channels") and
             not spool_rows(d), LONG, "the spool delivered")
    got_n = note_numbers(json.loads(b)["text"] for _, b, _ in recv.bodies())
    lost = sorted(accepted - got_n)
    if lost:
        db = sqlite3.connect(db_path(d), timeout=10)
        stored = {int(t[5:]) for (t,) in db.execute("SELECT text FROM events")}
        db.close()
        # A command answers before the store commits what it wrote (the
        # before-sleep hook commits after the reply is sent): a kill in
        # between loses an event that was reported accepted.
        raise AssertionError("accepted but lost after kill -9: %s (in the events table: %s)"
                             % (lost, sorted(set(lost) & stored)))
    got = [json.loads(b)["text"] for _, b, _ in recv.bodies()]
    dups = len(got) - len(set(got))
    print("    kill -9: %d accepted, %d in the spool at the kill, %d delivered twice"
          % (len(accepted), len(left), dups))
    assert d.proc.poll() is None
