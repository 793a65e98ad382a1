#!/usr/bin/python3
"""End-to-end test runner: imports tests/e2e/test_*.py and runs every
test_* function in it, each with its own deadline.  Prints one line per test
and "e2e: N passed, N failed" at the end.

Usage: run.py [--build DIR] [-k SUBSTRING]
"""
import argparse
import importlib.util
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sbtest  # noqa: E402


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout("test exceeded its %d s deadline" % sbtest.TEST_DEADLINE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", dest="only", default=None)
    args = ap.parse_args()
    sbtest.configure(args.build)
    signal.signal(signal.SIGALRM, on_alarm)
    passed = failed = 0
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = "%s.%s" % (fn[:-3], name)
            if args.only and args.only not in full:
                continue
            t0 = time.monotonic()
            signal.alarm(sbtest.TEST_DEADLINE)
            try:
                getattr(mod, name)()
                err = None
            except BaseException as e:  # noqa: B902 - report everything
                if isinstance(e, KeyboardInterrupt):
                    raise
                err = traceback.format_exc()
            finally:
                signal.alarm(0)
                leftover = sbtest.cleanup()
            if err is None and leftover:
                err = leftover
            dt = time.monotonic() - t0
            if err is None:
                passed += 1
                print("ok   e2e/%s (%.1f s)" % (full, dt), flush=True)
            else:
                failed += 1
                print("FAIL e2e/%s (%.1f s)" % (full, dt), flush=True)
                for line in err.rstrip().splitlines()[-30:]:
                    print("    " + line)
    print("e2e: %d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
