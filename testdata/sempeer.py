"""sempeer.py: a Python 3 peer for named POSIX semaphores, with only the
standard library: ctypes on the C library's own sem_open family.

    sempeer.py pong A B N   N+1 times (as sempeer.c): sem_wait(A), sem_post(B)
    sempeer.py create S     creates S (O_CREAT|O_EXCL, 0600, 0), prints
                            "ready", sem_wait(S), prints "got", closes and
                            unlinks it
"""
import ctypes
import ctypes.util
import os
import sys


def load_libc():
    # glibc 2.34+ has sem_open in libc; older glibc in libpthread.
    for name in (None, ctypes.util.find_library("pthread")):
        lib = ctypes.CDLL(name, use_errno=True)
        if hasattr(lib, "sem_open"):
            return lib
    raise OSError("no sem_open in the C library")


libc = load_libc()
libc.sem_open.restype = ctypes.c_void_p  # variadic: arguments typed per call
for f in ("sem_wait", "sem_post", "sem_close"):
    getattr(libc, f).argtypes = [ctypes.c_void_p]
libc.sem_unlink.argtypes = [ctypes.c_char_p]


def check(r, what):
    if r in (None, -1) or (what == "sem_open" and not r):
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))
    return r


def sem_open(name, oflag=0, mode=0, value=0):
    if oflag & os.O_CREAT:
        r = libc.sem_open(name.encode(), ctypes.c_int(oflag), ctypes.c_uint(mode), ctypes.c_uint(value))
    else:
        r = libc.sem_open(name.encode(), ctypes.c_int(oflag))
    return check(r, "sem_open")


def sem_wait(s):
    while libc.sem_wait(s) != 0:
        if ctypes.get_errno() != 4:  # EINTR
            check(-1, "sem_wait")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "pong":
        a, b = sem_open(sys.argv[2]), sem_open(sys.argv[3])
        for _ in range(int(sys.argv[4]) + 1):
            sem_wait(a)
            check(libc.sem_post(b), "sem_post")
    elif len(sys.argv) == 3 and sys.argv[1] == "create":
        s = sem_open(sys.argv[2], os.O_CREAT | os.O_EXCL, 0o600, 0)
        print("ready", flush=True)
        sem_wait(s)
        print("got", flush=True)
        libc.sem_close(s)
        check(libc.sem_unlink(sys.argv[2].encode()), "sem_unlink")
    else:
        sys.exit(__doc__)


main()
