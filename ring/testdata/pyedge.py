"""pyedge.py: edge cases of ring/python/shmring.py for python_edge_test.go,
on a one-reader, one-writer ring NAME of 4096-byte lanes that the test made.

    pyedge.py close OP signal|thread NAME
        OP is recv, next, send, reserve, wait_peer (a writer) or hold (a
        reader holding a message from next(), a slice of its view alive, in
        wait_peer: its writer closed). This process holds the other end
        itself (a writer, or for send and reserve a reader that never reads,
        whose lane it fills). It prints
        "ready", then blocks in OP: wait_peer and hold print "asleep" when
        wait_peer first sleeps; the others' sleep word tells. signal: a
        SIGUSR1 handler closes the Ring (the test sends it). thread: OP runs
        on a second thread; the main thread closes the Ring on a line of
        stdin, and prints what close() left ("after close: ..."). Then it prints what OP raised ("result CLASS: MESSAGE"), the
        slot's state and whether close released the descriptors and the
        mapping, what a further OP raises, and "ok".
    pyedge.py args NAME
        integer arguments that are not integers, or out of range: commit(m),
        reserve(n), create(capacity, readers); then close with a failing step.
    pyedge.py timeouts NAME
        timeouts that are NaN, negative, not numbers, or inf, in every call
        that takes one.
"""
import errno
import faulthandler
import gc
import math
import os
import signal
import sys
import threading
import time
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import shmring  # noqa: E402

signal.alarm(30)  # a hang is a failure, not a stuck test
faulthandler.enable()  # a crash says where


def say(*a):
    print(*a, flush=True)


def outcome(f):
    try:
        v = f()
        return "OK" if v is None else "OK %r" % (v,)
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


def fds():
    return len(os.listdir("/proc/self/fd"))


def maps(name):
    with open("/proc/self/maps") as f:
        return sum(1 for ln in f if ln.rstrip().endswith("/dev/shm" + name) or ln.rstrip().endswith(name + " (deleted)"))


def state(name, kind):
    with shmring.Ring.open(name) as o:
        return o.stat()[kind][0]["state"]


def close_mode(op, trigger, name):
    reader = op in ("recv", "next", "hold")
    peer = shmring.Ring.open(name)
    if reader:
        peer.writer()
        if op == "hold":
            peer.send(b"held")
            peer.close()  # wait_peer waits for a live writer
    elif op != "wait_peer":  # (which waits for a live reader)
        peer.reader()  # holds, never reads
    fds0, maps0 = fds(), maps(name)
    r = shmring.Ring.open(name)
    (r.reader if reader else r.writer)()
    held = None
    if op == "hold":
        msg = r.next(timeout=1)
        held = msg.view[1:3]  # made from the view: it pins the mapping
    elif op in ("send", "reserve"):
        while True:
            try:
                r.send(b"x" * 100, timeout=0)
            except TimeoutError:
                break
    if op in ("wait_peer", "hold"):  # announce wait_peer's first sleep
        real = shmring.time

        def sleep(d):
            shmring.time = real
            say("asleep")
            real.sleep(d)
        shmring.time = types.SimpleNamespace(monotonic=real.monotonic, sleep=sleep)
    calls = {
        "recv": lambda: r.recv(),
        "next": lambda: r.next(),
        "send": lambda: r.send(b"y" * 100),
        "reserve": lambda: r.reserve(100),
        "wait_peer": lambda: r.wait_peer(),
        "hold": lambda: r.wait_peer(),
    }
    call = calls[op]
    # Only close's wake-up (or the signal) ends a sleep: the peers' locks
    # are not tested again for 10 s, so the wait sleeps that long otherwise.
    shmring.POLL_PEER = 10.0
    say("ready")
    if trigger == "signal":
        signal.signal(signal.SIGUSR1, lambda s, f: r.close())
        res = outcome(call)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    else:
        out = []
        t = threading.Thread(target=lambda: out.append(outcome(call)))
        t.start()
        sys.stdin.readline()
        r.close()
        # close() returned: the slot is released, the descriptors and the mapping gone
        say("after close: slot", state(name, "readers" if reader else "writers"),
            "descriptors", fds() - fds0, "mappings", maps(name) - maps0)
        t.join()
        res = out[0]
    say("result", res)
    say("slot", state(name, "readers" if reader else "writers"))
    if held is not None:
        say("held slice reads", bytes(held), "message dropped", outcome(msg.release).split(":")[0])
        del held, msg
        gc.collect()
    say("descriptors", fds() - fds0, "mappings", maps(name) - maps0)
    say("again", outcome(call))
    if op == "hold":  # the message stays for the next reader
        with shmring.Ring.open(name) as n:
            n.reader()
            say("next reader", outcome(lambda: n.recv(timeout=1)))
    peer.close()
    say("ok")


def args_mode(name):
    r = shmring.Ring.open(name).writer()
    rd = shmring.Ring.open(name).reader()
    res = r.reserve(4)
    res.view[:] = b"abcd"
    for m in (2.0, "2", -1, 5):
        say("commit(%r)" % (m,), outcome(lambda: res.commit(m)))
    say("view after", bytes(res.view))
    say("commit(2)", outcome(lambda: res.commit(2)))
    say("recv", outcome(lambda: rd.recv(timeout=1)))
    for n in (2.0, "1", -1):
        say("reserve(%r)" % (n,), outcome(lambda: r.reserve(n)))
    say("send", outcome(lambda: r.send(b"z", timeout=1)))
    say("recv", outcome(lambda: rd.recv(timeout=1)))
    other = name + "_c"
    for kw in ({"capacity": 4096.0}, {"capacity": 4096, "readers": 1.0}, {"capacity": 4096, "writers": "1"}):
        say("create(%s)" % kw, outcome(lambda: shmring.Ring.create(other, **kw)).split(":")[0],
            "made" if os.path.exists("/dev/shm" + other) else "nothing made")
    say("create(capacity=60)", outcome(lambda: shmring.Ring.create(other, 60)).split(":")[0])
    # close with a step that fails (the wake of the peer): everything else
    # is still released, and the error raised
    r.close()
    fds0, maps0 = fds(), maps(name)
    w = shmring.Ring.open(name).writer()
    res = w.reserve(8)

    def fail(word):
        raise OSError(errno.EIO, "injected")
    w._wake = fail
    say("failing close", outcome(w.close))
    say("slot", state(name, "writers"), "descriptors", fds() - fds0, "mappings", maps(name) - maps0)
    say("reservation", outcome(res.commit))
    say("close again", outcome(w.close))
    say("reclaim", outcome(lambda: shmring.Ring.open(name).writer().slot))
    rd.close()
    say("ok")


def timeouts_mode(name):
    r = shmring.Ring.open(name).reader()
    w = shmring.Ring.open(name).writer()
    w.send(b"m1")
    nan = float("nan")
    # the reader has a message: refused all the same, nothing consumed
    for op, f in (("recv", r.recv), ("next", r.next), ("wait_peer", r.wait_peer)):
        for t in (nan, -1, -0.0001, "1", 1j):
            say(op, repr(t), outcome(lambda: f(timeout=t)).split(":")[0])
    say("recv inf", outcome(lambda: r.recv(timeout=math.inf)))
    # an empty ring: refused at once, not waited on
    start = time.monotonic()
    say("recv nan, empty", outcome(lambda: r.recv(timeout=nan)).split(":")[0])
    say("next -1, empty", outcome(lambda: r.next(timeout=-1)).split(":")[0])
    # the writer has room: refused all the same, nothing sent or reserved
    for op, f in (("send", lambda t: w.send(b"x", timeout=t)), ("reserve", lambda t: w.reserve(1, timeout=t)),
                  ("wait_peer", lambda t: w.wait_peer(timeout=t))):
        for t in (nan, -1, "1"):
            say(op, repr(t), outcome(lambda: f(t)).split(":")[0])
    say("within", time.monotonic() - start < 5)
    say("messages", r.stat()["messages"], "send", outcome(lambda: w.send(b"m2", timeout=0)))
    say("recv 0", outcome(lambda: r.recv(timeout=0)))
    w.send(b"m3")
    say("recv 10**400", outcome(lambda: r.recv(timeout=10**400)))
    r.close()
    w.close()
    say("ok")


def main():
    mode = sys.argv[1]
    if mode == "close":
        close_mode(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "args":
        args_mode(sys.argv[2])
    elif mode == "timeouts":
        timeouts_mode(sys.argv[2])
    else:
        sys.exit("pyedge.py: unknown mode %r" % mode)


main()
