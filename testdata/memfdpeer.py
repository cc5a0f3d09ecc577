"""A CPython peer for the memfd tests, standard library only; fd 3 is its
end of a Unix socket pair with the Go test (exec.Cmd's ExtraFiles).

    memfdpeer.py recv   receive a descriptor (socket.recv_fds), map all of
                        it (mmap.mmap: size from fstat), print the
                        NUL-terminated message at its start, write an
                        answer at offset 512, try os.ftruncate to half the
                        size and print what it said ("ok" or the errno's
                        name), then send b"done".
    memfdpeer.py send   os.memfd_create, os.ftruncate to 8192, write a
                        message, seal it (F_SEAL_SHRINK|F_SEAL_GROW|
                        F_SEAL_SEAL), send the descriptor (socket.send_fds),
                        wait for the Go side's b"done", print the answer it
                        wrote at offset 512.
"""
import errno
import fcntl
import mmap
import os
import socket
import sys


def main():
    sock = socket.socket(fileno=3)
    role = sys.argv[1]
    if role == "recv":
        msg, fds, _, _ = socket.recv_fds(sock, 64, 1)
        if len(fds) != 1:
            print("received %r and %d descriptors" % (msg, len(fds)), file=sys.stderr)
            return 1
        fd = fds[0]
        m = mmap.mmap(fd, 0)  # size from fstat; MAP_SHARED, read-write
        data = bytes(m[:512])
        text = data[: data.index(b"\0")].decode()
        print("size %d read %r" % (len(m), text))
        answer = ("python %d got: %s" % (os.getpid(), text)).encode() + b"\0"
        m[512 : 512 + len(answer)] = answer
        try:
            os.ftruncate(fd, len(m) // 2)
            print("ftruncate: ok")
        except OSError as e:
            print("ftruncate: %s" % errno.errorcode[e.errno])
        m.close()
        os.close(fd)
        sock.sendall(b"done")
    elif role == "send":
        fd = os.memfd_create("py-peer", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, 8192)
        m = mmap.mmap(fd, 8192)
        m[:18] = b"hello from python\0"
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        socket.send_fds(sock, [b"memfd"], [fd])
        os.close(fd)  # the mapping keeps the object; the Go side has its own descriptor
        if sock.recv(4) != b"done":
            print("no done from Go", file=sys.stderr)
            return 1
        answer = bytes(m[512:1024])
        print("python read %r" % answer[: answer.index(b"\0")].decode())
        m.close()
    else:
        print("unknown role", role, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
