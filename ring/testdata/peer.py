"""peer.py: a Python end of a ring for ring_test.go, on ring/python/shmring.py.

    peer.py write NAME COUNT SEED   send COUNT messages of the stream SEED, then close
    peer.py read NAME COUNT SEED    receive and verify them, then expect EOFError
    peer.py write-zc|read-zc NAME COUNT SEED   the same without a copy: reserve/commit (reserving up to
                                 16 bytes more than it commits), next/release (checking each view through
                                 bytes() and memoryview.cast, and that it raises ValueError once released)
    peer.py hold-writer|hold-reader NAME   claim, say "ready", wait for death
    peer.py recv-wait|send-wait NAME [alarm]  claim, say "ready", receive/send until an error; print its name
                                           (alarm: a SIGALRM every 100 ms, SA_RESTART handler that says "alarm";
                                           print how many at the end)
    peer.py fork-writer NAME     claim the writer, send "p0", fork; the child tries to send "c", claim and
                                 receive, reports the exceptions' names to the parent and lives on idle
                                 (stdout and stderr on /dev/null); the parent sends "p1", prints
                                 "ready child PID SEND CLAIM RECV" and waits for death
    peer.py [--zc] try-send|try-recv NAME [guard]  (--zc: by reserve/commit, next/release) claim, send/receive up to 8 messages (20 ms timeout each),
                                 print "RESULT COUNT": the first exception's class name, or OK (a header
                                 Ring.open refuses: "ValueError 0")
                                 (guard is C's; Python cannot touch memory outside the mapping)

Version 2 (many readers and writers):
    peer.py create NAME CAPACITY READERS WRITERS   make the ring (Ring.create), print "ok", exit (the caller unlinks)
    peer.py seq-write NAME ID COUNT [SIZE [PAUSEAT,...]]  claim a writer slot, print "ready SLOT", send COUNT
                                 messages of SIZE bytes (default 64, at least 16) of writer ID (seqmsg below), close,
                                 print "ok SLOT"; at each PAUSEAT (a count of messages sent) print "paused" and wait
                                 for a line on stdin first
    peer.py [--zc] seq-read NAME [stop=K] [hold]   claim a reader slot, print "ready SLOT", receive until an
                                 exception (--zc: next/release, the view checked before and refused after release),
                                 checking every message whole and each writer's sequence numbers consecutive from
                                 the first received; stop=K: after K messages print "stopped" and wait to be
                                 killed (the slot held, nothing more consumed); hold (with --zc): keep the first
                                 message's view, print "holding", wait for a line on stdin, check the view again,
                                 then go on. At the end print "done EXC TOTAL MAXGAPMS ID:FIRST:LAST:COUNT ..."
    peer.py stat NAME            print Ring.stat() as JSON
    peer.py claim-hold NAME reader|writer   print "won SLOT" or "busy", then wait to be killed
    peer.py hold-reserve NAME N  claim a writer slot, reserve N bytes, fill them with 0xEE, print "ready SLOT",
                                 wait to be killed

seqmsg(ID, SEQ, SIZE) is peer.c's sequenced stream: u32 ID, u32 SIZE, u64 SEQ, then byte k (16 <= k < SIZE)
(seq_hash(ID, SEQ) + 31*k) & 0xFF, so that C and Python seq peers check each other's messages.

The stream is testdata/peer.c's. With SHMRING_INSTALLED=1 in the environment,
shmring is imported from wherever Python finds it (an installed package), not
from ../python, and must not be ../python's.
"""
import json
import os
import signal
import struct
import sys
import time

SRC = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
if os.environ.get("SHMRING_INSTALLED") != "1":
    sys.path.insert(0, SRC)
import shmring  # noqa: E402

if os.environ.get("SHMRING_INSTALLED") == "1" and os.path.dirname(os.path.realpath(shmring.__file__)) == SRC:
    sys.exit("shmring was imported from %s, not from an installed package" % shmring.__file__)

PATN = (1 << 20) + 4093
M64 = (1 << 64) - 1


def pattern(seed, ext):
    p = bytearray(PATN + ext)
    x = (2 * seed + 1) & M64
    for i in range(PATN):
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        p[i] = ((x * 0x2545F4914F6CDD1D) & M64) >> 56
    p[PATN:] = p[:ext]
    return bytes(p)


class Lengths:
    def __init__(self, seed, mx):
        self.y, self.mx, self.i = (seed & 0xFFFFFFFF) | 1, mx, 0

    def next(self):
        y = self.y
        y ^= (y << 13) & 0xFFFFFFFF
        y ^= y >> 17
        y ^= (y << 5) & 0xFFFFFFFF
        self.y = y
        i, self.i = self.i, self.i + 1
        if i == 0:
            return 0
        if i == 1:
            return self.mx
        if y & 1:
            return min((y >> 1) % 64, self.mx)
        return (y >> 1) % (self.mx + 1)


def outcome(f):
    try:
        f()
        return "OK"
    except Exception as e:
        return type(e).__name__


def fork_writer(r):
    r.writer()
    r.send(b"p0", timeout=1)
    rd, wr = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 1)  # the test waits for the parent's stdout to end
        os.dup2(null, 2)
        rep = " ".join((outcome(lambda: r.send(b"c", timeout=0)), outcome(r.writer), outcome(lambda: r.recv(timeout=0))))
        os.write(wr, rep.encode())
        os.close(wr)
        while True:
            signal.pause()  # idle, until the test kills it
    os.close(wr)
    rep = os.read(rd, 256).decode()
    r.send(b"p1", timeout=1)
    print("ready child", pid, rep, flush=True)
    while True:
        time.sleep(3600)


def try_ops(r, rd, zc):
    (r.reader if rd else r.writer)()
    mx = r.max_message
    lens = (0, mx, 1, 13, mx // 2, 7, mx - 1, 64)
    i = 0
    try:
        for i in range(8):
            if rd and zc:
                with r.next(timeout=0.02) as v:
                    if len(v) > mx:
                        print("TOOBIG", i, flush=True)
                        return
                    bytes(v)
            elif rd:
                m = r.recv(timeout=0.02)
                if len(m) > mx:
                    print("TOOBIG", i, flush=True)
                    return
            elif zc:
                with r.reserve(min(lens[i], mx), timeout=0.02) as b:
                    b[:] = bytes(len(b))
            else:
                r.send(bytes(min(lens[i], mx)), timeout=0.02)
        i = 8
        print("OK", i, flush=True)
    except Exception as e:
        print(type(e).__name__, i, flush=True)
    r.close()


def seq_hash(wid, seq):
    h = ((wid * 0x9E3779B1) ^ (seq * 0x85EBCA6B) ^ (seq >> 32)) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    return h ^ (h >> 12)


def seqmsg(wid, seq, size):
    h = seq_hash(wid, seq)
    return struct.pack("<IIQ", wid, size, seq) + bytes((h + k * 31) & 0xFF for k in range(16, size))


def seq_write(name, wid, count, size, pause_at):
    r = shmring.Ring.open(name).writer()
    print("ready", r.slot, flush=True)
    for i in range(count):
        if i in pause_at:
            print("paused", flush=True)
            sys.stdin.readline()
        r.send(seqmsg(wid, i, size), timeout=30)
    slot = r.slot
    r.close()
    print("ok", slot, flush=True)


def seq_read(name, zc, args):
    stop = hold = None
    for a in args:
        if a.startswith("stop="):
            stop = int(a[5:])
        elif a == "hold":
            hold = True
    r = shmring.Ring.open(name).reader()
    print("ready", r.slot, flush=True)
    seen = {}  # id -> [first, last, count]
    total, maxgap, last_t, end = 0, 0.0, None, "OK"

    def check(m):
        if len(m) < 16:
            sys.exit("message %d: %d bytes, shorter than a seqmsg" % (total, len(m)))
        wid, size, seq = struct.unpack_from("<IIQ", m)
        if size != len(m) or bytes(m) != seqmsg(wid, seq, size):
            sys.exit("message %d (writer %d, seq %d): torn or wrong: %d bytes, says %d" % (total, wid, seq, len(m), size))
        s = seen.get(wid)
        if s is None:
            seen[wid] = [seq, seq, 1]
        elif seq != s[1] + 1:
            sys.exit("writer %d: seq %d after %d" % (wid, seq, s[1]))
        else:
            s[1], s[2] = seq, s[2] + 1

    try:
        while True:
            if stop is not None and total == stop:
                print("stopped", flush=True)
                while True:
                    time.sleep(3600)
            if zc:
                msg = r.next(timeout=30)
                v = msg.view
                check(v)
                if hold and total == 0:
                    keep = bytes(v)
                    print("holding", flush=True)
                    sys.stdin.readline()
                    if bytes(v) != keep:
                        sys.exit("the held view changed under it")
                msg.release()
                try:
                    bytes(v)
                    sys.exit("message %d: its view was readable after release" % total)
                except ValueError:
                    pass
            else:
                check(r.recv(timeout=30))
            now = time.monotonic()
            if last_t is not None:
                maxgap = max(maxgap, now - last_t)
            last_t, total = now, total + 1
    except Exception as e:
        end = type(e).__name__
    r.close()
    print("done", end, total, "%.0f" % (maxgap * 1000),
          " ".join("%d:%d:%d:%d" % (k, v[0], v[1], v[2]) for k, v in sorted(seen.items())), flush=True)


def main():
    zc = sys.argv[1] == "--zc"  # try-send and try-recv by reserve/commit and next/release
    if zc:
        del sys.argv[1]
    mode, name = sys.argv[1], sys.argv[2]
    if mode == "create":
        shmring.Ring.create(name, int(sys.argv[3]), readers=int(sys.argv[4]), writers=int(sys.argv[5])).close()
        print("ok", flush=True)
        return
    if mode == "seq-write":
        a = sys.argv[3:]
        seq_write(name, int(a[0]), int(a[1]), int(a[2]) if len(a) > 2 else 64, [int(x) for x in a[3].split(",")] if len(a) > 3 else [])
        return
    if mode == "seq-read":
        seq_read(name, zc, sys.argv[3:])
        return
    if mode in ("try-send", "try-recv"):
        try:
            r = shmring.Ring.open(name)
        except ValueError:  # a header refused at open: the ring is corrupt
            print("ValueError 0", flush=True)
            return
        try_ops(r, mode == "try-recv", zc)
        return
    r = shmring.Ring.open(name)
    if mode == "stat":
        print(json.dumps(r.stat()), flush=True)
        return
    if mode == "claim-hold":
        try:
            (r.reader if sys.argv[3] == "reader" else r.writer)()
            print("won", r.slot, flush=True)
        except shmring.BusyError:
            print("busy", flush=True)
        while True:
            time.sleep(3600)
    if mode == "hold-reserve":
        r.writer()
        res = r.reserve(int(sys.argv[3]), timeout=10)
        res.view[:] = b"\xee" * len(res.view)
        print("ready", r.slot, flush=True)
        while True:
            time.sleep(3600)
    if mode == "fork-writer":
        fork_writer(r)
        return
    if mode in ("hold-writer", "hold-reader", "recv-wait", "send-wait"):
        (r.writer if mode in ("hold-writer", "send-wait") else r.reader)()
        alarms = None
        if len(sys.argv) > 3 and sys.argv[3] == "alarm":
            alarms = [0]

            def on_alarm(sig, frame):
                alarms[0] += 1
                os.write(1, b"alarm\n")  # the test counts them

            signal.signal(signal.SIGALRM, on_alarm)
            signal.siginterrupt(signal.SIGALRM, False)  # SA_RESTART
        print("ready", flush=True)
        if alarms is not None:
            signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
        if mode.startswith("hold"):
            while True:
                time.sleep(3600)
        n = 0
        try:
            while True:
                if mode == "recv-wait":
                    r.recv()
                else:
                    r.send(b"12345678")
                n += 1
        except Exception as e:
            if alarms is not None:
                signal.setitimer(signal.ITIMER_REAL, 0, 0)
                print(type(e).__name__, n, "alarms=%d" % alarms[0], flush=True)
            else:
                print(type(e).__name__, n, flush=True)
        return
    count, seed = int(sys.argv[3]), int(sys.argv[4])
    pat, lens, p = pattern(seed, r.max_message), Lengths(seed, r.max_message), 0
    if mode == "write":
        r.writer()
        for i in range(count):
            n = lens.next()
            r.send(pat[p % PATN:p % PATN + n], timeout=10)
            p += n
        try:
            r.send(bytes(r.max_message + 1))
            sys.exit("send of max+1 bytes did not raise TooLargeError")
        except shmring.TooLargeError:
            pass
        r.close()
    elif mode == "write-zc":
        r.writer()
        for i in range(count):
            n = lens.next()
            k = min(n + 8 * (i % 3), r.max_message)
            if k == n:
                with r.reserve(n, timeout=10) as buf:
                    buf[:] = pat[p % PATN:p % PATN + n]
            else:
                res = r.reserve(k, timeout=10)
                res.view[:n] = pat[p % PATN:p % PATN + n]
                res.commit(n)
                try:
                    res.view[:1] = b"x"
                    sys.exit("reservation %d: its view was writable after commit" % i)
                except ValueError:
                    pass
            p += n
        r.close()
    elif mode == "read-zc":
        r.reader()
        for i in range(count):
            n = lens.next()
            want = pat[p % PATN:p % PATN + n]
            with r.next(timeout=10) as view:
                if len(view) != n:
                    sys.exit("message %d has length %d, want %d" % (i, len(view), n))
                if bytes(view) != want:
                    sys.exit("message %d at byte %d: wrong content" % (i, p))
                if n >= 8:  # the buffer protocol, as numpy.frombuffer uses it
                    with view[:n & ~7].cast("Q") as q:
                        if q.tolist() != list(struct.unpack("<%dQ" % (n // 8), want[:n & ~7])):
                            sys.exit("message %d: wrong content through cast('Q')" % i)
            try:
                bytes(view)
                sys.exit("message %d: its view was readable after release" % i)
            except ValueError:
                pass
            p += n
        try:
            r.next(timeout=10)
            sys.exit("a message after the stream")
        except EOFError:
            pass
        r.close()
    elif mode == "read":
        r.reader()
        for i in range(count):
            n = lens.next()
            m = r.recv(timeout=10)
            if len(m) != n:
                sys.exit("message %d has length %d, want %d" % (i, len(m), n))
            if m != pat[p % PATN:p % PATN + n]:
                sys.exit("message %d at byte %d: wrong content" % (i, p))
            p += n
        try:
            r.recv(timeout=10)
            sys.exit("a message after the stream")
        except EOFError:
            pass
        r.close()
    print("ok", count, p, flush=True)


main()
