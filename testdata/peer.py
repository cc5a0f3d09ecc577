"""A CPython peer for the interop tests: multiprocessing.shared_memory.

    peer.py create NAME   create NAME (4096 bytes), write a message, say
                          "ready", wait for a line, check the Go side's
                          answer at offset 100, close and unlink: Python
                          owns what it created.
    peer.py attach NAME   attach to Go's object, print the NUL-terminated
                          string at its start, write an answer at offset
                          100, close; never unlink: Go owns it.

CPython before 3.13 registers every segment, attached ones too, with its
resource tracker, which unlinks them when the program ends. An attaching
peer that does not own the object must opt out: track=False on 3.13 and
later, resource_tracker.unregister before.
"""
import sys
from multiprocessing import resource_tracker, shared_memory


def attach(name):
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm


def main():
    role, name = sys.argv[1], sys.argv[2]
    if role == "create":
        shm = shared_memory.SharedMemory(name=name, create=True, size=4096)
        try:
            msg = b"hello from python\0"
            shm.buf[: len(msg)] = msg
            print("ready", flush=True)
            sys.stdin.readline()
            got = bytes(shm.buf[100:111])
            if got != b"hello back!":
                print("python read %r" % got, file=sys.stderr)
                return 1
            print("ok", flush=True)
        finally:
            shm.close()
            shm.unlink()
    elif role == "attach":
        shm = attach(name)
        try:
            data = bytes(shm.buf)
            sys.stdout.write(data[: data.index(b"\0")].decode())
            shm.buf[100:111] = b"hello back!"
        finally:
            shm.close()
    else:
        print("unknown role", role, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
