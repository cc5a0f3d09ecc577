"""peer.py: a Python end of a ring for ring_test.go, on ring/python/shmring.py.

    peer.py write NAME COUNT SEED   send COUNT messages of the stream SEED, then close
    peer.py read NAME COUNT SEED    receive and verify them, then expect EOFError
    peer.py hold-writer|hold-reader NAME   claim, say "ready", wait for death
    peer.py recv-wait|send-wait NAME       claim, say "ready", receive/send until an error; print its name

The stream is testdata/peer.c's.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import shmring  # noqa: E402

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


def main():
    mode, name = sys.argv[1], sys.argv[2]
    r = shmring.Ring.open(name)
    if mode in ("hold-writer", "hold-reader", "recv-wait", "send-wait"):
        (r.writer if mode in ("hold-writer", "send-wait") else r.reader)()
        print("ready", flush=True)
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
