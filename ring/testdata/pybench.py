"""pybench.py: the per-message cost of shmring.py's 1x1 path, Python to Python.

    python3 pybench.py [--module DIR] [--size N] [--count N] [--zc] [--runs K]

A writer process sends COUNT messages of SIZE bytes (default 64) to a reader
process through a 1 MiB ring (send/recv; --zc: reserve/commit and
next/release); prints the time per message, as seen by the reader (from its
first message to its last), best of RUNS. --module DIR imports shmring from
DIR (default ../python), so that two versions can be compared in one run.
"""
import argparse
import os
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--module", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
p.add_argument("--size", type=int, default=64)
p.add_argument("--count", type=int, default=200000)
p.add_argument("--zc", action="store_true")
p.add_argument("--runs", type=int, default=1)
p.add_argument("--inproc", action="store_true", help="writer and reader in this one process, 64 messages at a time: the calls' own cost, without a second process's scheduling")
p.add_argument("--role", default="")
p.add_argument("--name", default="")
a = p.parse_args()
sys.path.insert(0, os.path.abspath(a.module))
import shmring  # noqa: E402

if a.role == "read":
    r = shmring.Ring.open(a.name)
    r.reader()
    print("ready", flush=True)
    n = 0
    if a.zc:
        with r.next() as v:
            n += 1
        t0 = time.perf_counter()
        try:
            while True:
                with r.next() as v:
                    n += 1
        except EOFError:
            pass
    else:
        r.recv()
        n += 1
        t0 = time.perf_counter()
        try:
            while True:
                r.recv()
                n += 1
        except EOFError:
            pass
    t1 = time.perf_counter()
    r.close()
    print((t1 - t0) / (n - 1) * 1e9, n, flush=True)
    sys.exit(0)

best = None
if a.inproc:
    for run in range(a.runs):
        name = "/pybench-%d-%d" % (os.getpid(), run)
        w = shmring.Ring.create(name, 1 << 20)
        try:
            rd = shmring.Ring.open(name)
            rd.reader()
            w.writer()
            msg, k = bytes(a.size), a.count // 64
            t0 = time.perf_counter()
            for i in range(k):
                if a.zc:
                    for j in range(64):
                        with w.reserve(a.size):
                            pass
                    for j in range(64):
                        with rd.next():
                            pass
                else:
                    for j in range(64):
                        w.send(msg)
                    for j in range(64):
                        rd.recv()
            ns = (time.perf_counter() - t0) / (k * 64) * 1e9
            best = ns if best is None else min(best, ns)
            rd.close()
            w.close()
        finally:
            w.unlink()
    print("%.0f ns/message in one process (%s, %d bytes, %s)" % (best, os.path.abspath(a.module), a.size, "zero-copy" if a.zc else "send/recv"))
    sys.exit(0)
for run in range(a.runs):
    name = "/pybench-%d-%d" % (os.getpid(), run)
    w = shmring.Ring.create(name, 1 << 20)
    try:
        rd = subprocess.Popen([sys.executable, __file__, "--module", a.module, "--role", "read", "--name", name]
                              + (["--zc"] if a.zc else []), stdout=subprocess.PIPE, text=True)
        assert rd.stdout.readline().startswith("ready")
        w.writer()
        msg = bytes(a.size)
        if a.zc:
            for i in range(a.count):
                with w.reserve(a.size) as b:
                    pass
        else:
            send = w.send
            for i in range(a.count):
                send(msg)
        w.close()
        ns, n = rd.stdout.readline().split()
        rd.wait()
        assert int(n) == a.count, (n, a.count)
        ns = float(ns)
        best = ns if best is None else min(best, ns)
    finally:
        w.unlink()
print("%.0f ns/message (%s, %d bytes, %s)" % (best, os.path.abspath(a.module), a.size, "zero-copy" if a.zc else "send/recv"))
