"""bench.py OP NAME N: the comparison's operations through CPython's
multiprocessing.shared_memory. Prints ns per operation, timed around the
loop only. OP is create (create, touch, close, unlink 4096 bytes) or open
(attach to the existing object NAME, touch, close)."""
import sys
import time
from multiprocessing import resource_tracker, shared_memory


def main():
    op, name, n = sys.argv[1], sys.argv[2].lstrip("/"), int(sys.argv[3])
    t0 = time.perf_counter_ns()
    for _ in range(n):
        if op == "create":
            shm = shared_memory.SharedMemory(name=name, create=True, size=4096)
            shm.buf[0] = 1
            shm.close()
            shm.unlink()
        elif op == "open":
            shm = shared_memory.SharedMemory(name=name)
            # Not ours to unlink: leave the resource tracker out of it
            # (it would unlink the object when this program ends).
            resource_tracker.unregister(shm._name, "shared_memory")
            shm.buf[0] = (shm.buf[0] + 1) % 256
            shm.close()
        else:
            sys.exit("unknown op " + op)
    print("%.1f" % ((time.perf_counter_ns() - t0) / n))


if __name__ == "__main__":
    main()
