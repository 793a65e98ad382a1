"""make install and make uninstall: every file lands where the binary looks
for it, the installed sample config passes --check-config, a re-install
keeps the operator's config, uninstall removes the rest and keeps that.
The installed daemon starts from its installed config and scripts and tells
systemd it is ready."""
import filecmp
import glob
import os
import re
import shutil
import socket
import subprocess

import sbtest
from sbtest import Daemon, wait_for

UNIT_NAME = "switchboard.service"


def make(*args, build=None):
    """Run make at the top of the tree on the build folder under test (or
    BUILD=build), with SAN=1 when that is a sanitizer build so nothing is
    rebuilt with other flags; returns the output."""
    build = build or sbtest.BUILD
    env = dict(os.environ)
    # Called from "make check", we must not join the outer make's jobserver
    # nor inherit its command-line variables.
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    cmd = ["make", "--no-print-directory", "-C", sbtest.ROOT, "BUILD=" + build]
    if sbtest.BUILD.rstrip("/").endswith("san"):
        cmd.append("SAN=1")
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=200, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, "%s failed (%d):\n%s" % (" ".join(cmd + list(args)), p.returncode, out)
    return out


def read(path):
    with open(path) as f:
        return f.read()


def shipped_scripts():
    return sorted(os.path.basename(f) for f in glob.glob(os.path.join(sbtest.ROOT, "scripts", "*.lua")))


def shipped_man_pages():
    """(source, section) for each doc/*.5, *.7, *.8."""
    pages = []
    for sec in ("5", "7", "8"):
        for f in sorted(glob.glob(os.path.join(sbtest.ROOT, "doc", "*." + sec))):
            pages.append((f, sec))
    return pages


def unit_settings(text):
    """The unit's KEY=VALUE lines as (key, value) pairs, comments left out."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    return pairs


def check_config(binary, conf):
    p = subprocess.run([binary, "-c", conf, "--check-config"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "configuration OK" in p.stdout, p.stdout
    return p.stdout


def test_install_destdir_layout_reinstall_uninstall():
    dest = sbtest.tmpdir()
    vars_ = ("DESTDIR=" + dest, "PREFIX=/usr/local")
    make("install", *vars_)
    top = os.path.join(dest, "usr", "local")
    binary = os.path.join(top, "bin", "switchboard")
    etc = os.path.join(top, "etc", "switchboard")
    share = os.path.join(top, "share", "switchboard")
    conf = os.path.join(etc, "switchboard.conf")
    unit = os.path.join(top, "lib", "systemd", "system", UNIT_NAME)

    # The binary is the one this build made; so are its modules.
    assert os.access(binary, os.X_OK), binary
    assert filecmp.cmp(binary, sbtest.BIN, shallow=False)
    for name in ("hal_ipmi.so", "chan_http.so"):
        module = os.path.join(top, "lib", "switchboard", name)
        assert filecmp.cmp(module, os.path.join(os.path.dirname(sbtest.BIN), "modules", name),
                           shallow=False), name

    # The shipped scripts, all of them and only them.
    scripts = shipped_scripts()
    assert scripts, "no scripts/*.lua in the tree"
    assert sorted(os.listdir(os.path.join(share, "scripts"))) == scripts
    for s in scripts:
        assert filecmp.cmp(os.path.join(share, "scripts", s),
                           os.path.join(sbtest.ROOT, "scripts", s), shallow=False), s

    # The sample config, and an empty folder for the operator's scripts.
    sample = os.path.join(sbtest.ROOT, "config", "switchboard.conf.sample")
    assert read(conf) == read(sample)
    assert os.path.isdir(os.path.join(etc, "scripts"))
    assert os.listdir(os.path.join(etc, "scripts")) == []

    # Man pages by section, whichever doc/*.[578] exist.
    for src, sec in shipped_man_pages():
        dst = os.path.join(top, "share", "man", "man" + sec, os.path.basename(src))
        assert filecmp.cmp(dst, src, shallow=False), dst

    # The unit, with the install's paths and nothing left to substitute.
    text = read(unit)
    settings = unit_settings(text)
    for want in [("Type", "notify"),
                 ("ExecStart", "/usr/local/bin/switchboard -f -c /usr/local/etc/switchboard/switchboard.conf"),
                 ("ExecReload", "/bin/kill -HUP $MAINPID"),
                 ("RuntimeDirectory", "switchboard"),
                 ("StateDirectory", "switchboard"),
                 ("ProtectSystem", "strict"),
                 ("NoNewPrivileges", "yes"),
                 ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK")]:
        assert want in settings, (want, text)
    assert not re.search(r"@[A-Z_]+@", text), text

    # The binary looks for scripts where install put them.
    p = subprocess.run([binary, "--dump-keys"], capture_output=True, text=True, timeout=30)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("daemon.scripts")]
    assert line, p.stdout
    assert '"/usr/local/etc/switchboard/scripts", "/usr/local/share/switchboard/scripts"' in line[0], line

    # The installed config passes as installed (--check-config loads no
    # scripts, so the paths outside DESTDIR do not matter).
    check_config(binary, conf)

    # A re-install keeps the operator's edit.
    with open(conf, "a") as f:
        f.write("\n# operator's edit: keep me\n")
    edited = read(conf)
    out = make("install", *vars_)
    assert read(conf) == edited, "install overwrote the operator's config"
    assert "keeping" in out, out
    check_config(binary, conf)

    # Uninstall removes what install put there but the operator's files.
    out = make("uninstall", *vars_)
    assert not os.path.exists(binary)
    assert not os.path.exists(os.path.dirname(module))
    assert not os.path.exists(unit)
    assert not os.path.exists(os.path.join(share, "scripts"))
    for src, sec in shipped_man_pages():
        assert not os.path.exists(os.path.join(top, "share", "man", "man" + sec, os.path.basename(src)))
    assert read(conf) == edited
    assert os.path.isdir(os.path.join(etc, "scripts"))
    assert "kept" in out, out


class InstalledDaemon(Daemon):
    """The daemon as installed: its binary and config, with the socket and
    state folder in the test's temp folder (-s, -d), and a NOTIFY_SOCKET
    standing in for systemd's."""

    def __init__(self, binary, conf):
        super().__init__(conf=conf)
        self.binary = binary
        self.notify_path = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)

    def start(self, wait=True, extra=()):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", self.conf, "-s", self.sock, "-d", self.state, "-f"],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
            env=dict(os.environ, NOTIFY_SOCKET=self.notify_path))
        logf.close()
        sbtest._daemons.append(self)    # so cleanup() stops it and reads its log
        return self


def test_install_prefix_daemon_starts_from_installed_files():
    t = sbtest.tmpdir()
    prefix = os.path.join(t, "prefix")
    # Its own build folder: the compiled-in paths differ from the tree's.
    make("install", "PREFIX=" + prefix, build=os.path.join(t, "build"))
    binary = os.path.join(prefix, "bin", "switchboard")
    etc = os.path.join(prefix, "etc", "switchboard")
    conf = os.path.join(etc, "switchboard.conf")
    unit = os.path.join(prefix, "lib", "systemd", "system", UNIT_NAME)

    # An operator's script in the override folder is loaded along with the
    # shipped ones.
    with open(os.path.join(etc, "scripts", "local.lua"), "w") as f:
        f.write('command "hello" {\n  help = "say hello",\n'
                '  run = function(ctx) return "hello from the override folder" end,\n}\n')

    d = InstalledDaemon(binary, conf).start()
    # Type=notify: READY=1 arrives once it is up.
    d.notify.settimeout(sbtest.WAIT)
    try:
        msg = d.notify.recv(4096)
    except socket.timeout:
        raise AssertionError("no READY=1 on NOTIFY_SOCKET within %s s:\n%s" % (sbtest.WAIT, d.logtext()))
    finally:
        d.notify.close()
    assert msg == b"READY=1", msg
    wait_for(d.alive_and_answering, what="the installed daemon to answer")
    out = d.ok("nodes")
    assert "example" in out, out
    assert d.ok("hello").strip() == "hello from the override folder"
    out = d.ok("help")
    assert "sensors" in out and "power" in out, out   # the shipped hardware.lua
    assert d.stop() == 0

    # The installed binary finds its IPMI module where it was installed.
    ipmi = os.path.join(t, "ipmi.conf")
    with open(ipmi, "w") as f:
        f.write('nodes = ( { name = "bmc"; hal = { backend = "ipmi"; host = "127.0.0.1";\n'
                '  username = "u"; password = "p"; }; } );\n')
    os.chmod(ipmi, 0o600)
    check_config(binary, ipmi)

    # The unit passes systemd's own check, where systemd-analyze exists
    # (here the paths in it are real).
    if shutil.which("systemd-analyze"):
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
