"""shmring: the message ring of github.com/posixshm/shm/ring in Python.

Standard library only (ctypes for the futex system call, fcntl for the
claims, mmap for the memory). It speaks ring/LAYOUT.md, version 1, so a
Python process can be either end of a ring whose other end is Go, C or
Python. Install it with `pip install ./ring/python` (no index needed: the
build backend beside it is standard library only).

Where it is correct: 64-bit CPython on Linux x86-64, and nowhere else.
Python has no atomics, so this module relies on what x86-64 gives plain
instructions: aligned 8-byte loads and stores (the counters, through ctypes)
are single instructions, stores become visible in program order, loads are
not reordered with older loads nor stores with older loads (total store
order), and each step is a separate C call of the interpreter, which the
compiler cannot reorder. The one reordering TSO allows, a load passing an
older store, is what the sleep handshake must forbid: there the kernel's
FUTEX_WAKE_OP (an atomic exchange, a full fence) does the store. On other
machines (arm64, POWER: weaker orderings), under a 32-bit Python (an 8-byte
counter is two 4-byte moves, torn) or another implementation
(PyPy's JIT may reorder raw memory accesses), Ring.create and Ring.open
raise OSError(ENOSYS) naming what is missing, rather than run wrongly.

    r = shmring.Ring.create("/jobs", 1 << 20)   # or Ring.open("/jobs")
    r.writer()                                  # or r.reader()
    r.send(b"hello")                            # data = r.recv(timeout=1.0)
    r.close()

Without a copy: next() hands out the message in the ring itself, a
read-only memoryview valid until it is released (on leaving the with
block, or Message.release()); reserve(n) hands out n writable bytes in the
ring, published by commit(m) (m <= n; leaving the with block commits all
n). numpy.frombuffer(view, dtype) reads such a view in place.

    with r.next() as view:                      # reader: waits like recv
        total = sum(view)                       # the message, in place
    with r.reserve(5) as buf:                   # writer: waits like send
        buf[:] = b"hello"                       # committed on leaving

A view is released before the ring moves on: afterwards using it raises
ValueError, never reads memory the writer may be reusing. Anything made
from a view that can still read the ring (a slice or cast of it, a numpy
array) must be gone first: while one lives, release() and commit() raise
BufferError and the ring does not move (the message stays held, the
reservation pending, with a live view in .view): copy what you keep
(bytes(view[:4]), array.copy()), drop the rest and call again.

A Ring holds at most one end. Errors: BusyError (the end is claimed by a
live process), TooLargeError (a message beyond max_message), EOFError
(recv: the writer closed and every message was received), BrokenPipeError
(send: the reader closed its end and the ring is full), PeerGoneError (the
other end's process died; recv first delivers what it committed),
TimeoutError, BufferError (release, commit or close while something made
from a message's view still lives), ValueError (not a ring of this layout,
a call the Ring's end or state does not allow, or a corrupt record or
counter: every head, tail, length and wrap marker read from the shared
memory is checked before it decides an offset, so a buggy or hostile peer
gets ValueError, never struct.error or IndexError), ChildProcessError
(errno ECHILD: the Ring was inherited through fork, below).
A timeout of None waits forever, 0 never blocks. A blocked call tests the
peer's life every 150 ms of the monotonic clock, whatever ends its sleeps
(a wake-up, a timeout, a signal handler's EINTR): a dead peer is
PeerGoneError within about 300 ms even in a process that takes a signal
every few ms.

fork: a child holds no claim. An os.register_at_fork hook closes, in the
child, the descriptor and the mapping of every Ring the parent had open
(both hold the open file description that carries the claims: it stays the
parent's alone, so the parent's death frees its end while the child lives);
in the child those Rings refuse everything with ChildProcessError (their
Messages' and Reservations' release and commit too), and close() does
nothing more (it leaves the parent's end open). A view the parent held is
released in the child; where something made from it still lives there (an
array), the child's mapping is replaced by anonymous memory (that array
reads zeros, never the ring) and the child's descriptors of the ring's
description by /dev/null: the mmap object's own duplicate (its number is
noted when the ring is mapped) and any other kcmp(2) finds (where seccomp
refuses kcmp, as Docker's default profile does, only that one). Open the
ring again in the child to use it
(multiprocessing's "fork" start method included).
"""

import ctypes
import errno
import fcntl
import mmap
import os
import pickle
import platform
import struct
import sys
import time
import weakref

try:
    import _posixshmem  # CPython's own shm_open, as multiprocessing.shared_memory uses
except ImportError:  # pragma: no cover
    _posixshmem = None

__all__ = ["Ring", "Message", "Reservation", "PeerGoneError", "BusyError", "TooLargeError", "VERSION"]

VERSION = 1
MAGIC = b"SHMRING\x00"
HEADER = 512
WRAP = 0xFFFFFFFF

OFF_VERSION, OFF_HEADER_SIZE, OFF_CAPACITY, OFF_MAX_MESSAGE = 8, 12, 16, 24
OFF_WRITER_STATE, OFF_READER_STATE = 32, 36
OFF_WRITER_PID, OFF_READER_PID = 40, 44
OFF_HEAD, OFF_TAIL = 64, 128
OFF_READER_SLEEP, OFF_WRITER_SLEEP = 192, 256
LOCK_WRITER, LOCK_READER = 448, 449
END_NONE, END_OPEN, END_CLOSED = 0, 1, 2

POLL_PEER = 0.150  # seconds of waiting between two tests of the peer's lock
M64 = (1 << 64) - 1  # the counters are u64: they wrap as C's and Go's do

F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_FLOCK = "hh4xqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid

_SYS_FUTEX = 202  # x86-64's; _unsupported refuses every other machine
FUTEX_WAIT, FUTEX_WAKE_OP = 0, 5
# FUTEX_WAKE_OP operations: ((op << 28) | (cmp << 24) | (oparg << 12) | cmparg).
_OP_SET_1 = 1 << 12  # *uaddr2 = 1 (an atomic exchange in the kernel: a full fence)
_OP_SET_0_WAKE_IF_SET = 1 << 24  # *uaddr2 = 0; wake uaddr2 if the old value != 0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class PeerGoneError(Exception):
    """The process at the other end died without closing it."""


class BusyError(OSError):
    """The end is claimed by a live process (or by this Ring)."""

    def __init__(self, what):
        super().__init__(errno.EBUSY, "ring end already claimed by a live process: " + what)


class TooLargeError(ValueError):
    """A message larger than max_message."""


# Every Ring open in this process, for the fork hook.
_rings = weakref.WeakSet()


def _after_fork_in_child():
    for r in list(_rings):
        r._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _unsupported():
    """Why this module's memory ordering is not known to be correct in this
    process (see the module's doc), or None where it is."""
    machine = platform.machine()
    if machine.lower() not in ("x86_64", "amd64"):
        return "machine %s (only x86-64's total store order is known correct)" % (machine or "unknown")
    if sys.maxsize < 1 << 32:
        return "a 32-bit Python (its 8-byte counter loads and stores are not single instructions)"
    if sys.implementation.name != "cpython":
        return "Python implementation %s (only CPython's access pattern is known correct)" % sys.implementation.name
    return None


def _check_platform():
    why = _unsupported()
    if why is not None:
        raise OSError(errno.ENOSYS, "shmring: its memory ordering is correct only under 64-bit CPython on x86-64, not " + why)


_MAP_FIXED = 0x10
_SYS_KCMP, _KCMP_FILE = 312, 0  # x86-64's


# _kcmp_usable is False where kcmp is not to be tried (tests: as under
# Docker's default seccomp profile, which refuses it).
_kcmp_usable = True


def _mmap_noting_fd(fd, size):
    """mmap.mmap(fd, size) shared read-write, and the number of the
    duplicate of fd that the mmap object keeps for itself (it shares fd's
    open file description, and so its claims), or -1 if it cannot be told:
    the new descriptor of the same file that appeared during the call."""
    def same_file_fds():
        st, out = os.fstat(fd), set()
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return None
        for f in names:
            try:
                o = os.stat("/proc/self/fd/" + f)
            except OSError:
                continue
            if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
                out.add(int(f))
        return out
    before = same_file_fds()
    mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    after = same_file_fds()
    new = (after - before) if before is not None and after is not None else set()
    return mm, (new.pop() if len(new) == 1 else -1)


def _replace_sharers(fd, mmfd):
    """Put /dev/null in place of every other descriptor of this process that
    shares fd's open file description: mmfd (the mmap object's own
    duplicate, noted when it was made), and any other kcmp finds (where
    kcmp is refused, as under Docker's default seccomp profile, only
    mmfd)."""
    pid = os.getpid()
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if mmfd >= 0 and mmfd != fd:
            try:
                if os.path.samestat(os.fstat(mmfd), os.fstat(fd)):
                    os.dup2(null, mmfd, inheritable=False)
            except OSError:
                pass
        if not _kcmp_usable:
            return
        try:
            fds = [int(f) for f in os.listdir("/proc/self/fd")]
        except OSError:
            return
        for other in fds:
            if other not in (fd, null) and _libc.syscall(ctypes.c_long(_SYS_KCMP), pid, pid, _KCMP_FILE, fd, other) == 0:
                os.dup2(null, other, inheritable=False)
    finally:
        os.close(null)


def _futex(addr, op, val, timeout_or_val2, addr2, val3):
    return _libc.syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(addr), ctypes.c_int(op),
                         ctypes.c_int(val), timeout_or_val2, ctypes.c_void_p(addr2), ctypes.c_int(val3))


def _shm_open(name, flags, mode):
    if _posixshmem is not None:
        return _posixshmem.shm_open(name, flags, mode)
    return os.open("/dev/shm/" + name.lstrip("/"), flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def _shm_unlink(name):
    if _posixshmem is not None:
        _posixshmem.shm_unlink(name)
    else:
        os.unlink("/dev/shm/" + name.lstrip("/"))


def _size(n):
    return 8 + ((n + 7) & ~7)


class _InPlace:
    """The views of a message or reservation in the ring. The user's view is
    a memoryview of a pickle.PickleBuffer of a private slice of the mapping:
    whatever can still read the bytes (the view, an array or ctypes object
    made from it, a slice or cast of it, which share its buffer) holds an
    export of the private slice, so the private slice's release() fails
    with BufferError while something can still read them; what is made from
    view.obj (a memoryview of the message's own ctypes array) instead holds
    a reference to that array, counted after. The ring moves on (tail
    stored, head published) only after both succeeded."""

    __slots__ = ("_ring", "_base", "_refs", "_inner", "_pb", "view", "_off", "_n", "_state")

    def __init__(self, ring, off, n):
        # The innermost buffer is a ctypes array of the message's bytes, not
        # a slice of the whole mapping: view.obj is then a memoryview whose
        # buffer is that array's, and whatever is made from view.obj (or
        # from the array) holds a reference to the array, which _free
        # counts (a slice of a mapping-wide view would share the mapping's
        # buffer, unseen).
        # (an empty message reads nothing of the ring: a bytearray of its own)
        self._base = (ctypes.c_ubyte * n).from_buffer(ring._mm, HEADER + off + 8) if n else bytearray()  # off + 8 + n <= capacity: checked by the caller
        self._refs = sys.getrefcount(self._base)  # with no view made: what _free expects
        self._ring, self._off, self._n, self._state = ring, off, n, 0
        self._views()

    def _views(self):
        inner = memoryview(self._base)
        if inner.format != "B":  # ctypes' "<B"
            whole, inner = inner, inner.cast("B")
            whole.release()
        if isinstance(self, Message):
            ro = inner.toreadonly()
            inner.release()
            inner = ro
        self._inner = inner
        self._pb = pickle.PickleBuffer(inner)
        self.view = memoryview(self._pb)

    def _free(self, what):
        # BufferError: something made from the view lives; the message stays
        # held (the reservation pending), with a live view, and a later call
        # tries again.
        msg = ("shmring %s: %s: something made from the view (a slice, a cast, a numpy array) still "
               "uses the ring's memory; copy what you keep and drop it first" % (self._ring.name, what))
        try:
            self.view.release()  # an export of the view itself (numpy.frombuffer)
        except BufferError:
            raise BufferError(msg) from None
        self._pb.release()
        try:
            self._inner.release()  # a slice or cast of the view, or what was made from one
        except BufferError:
            self._pb = pickle.PickleBuffer(self._inner)  # the released view's successor
            self.view = memoryview(self._pb)
            raise BufferError(msg + " (the view was released: use .view again)") from None
        if sys.getrefcount(self._base) > self._refs:  # a view of view.obj, or the array itself, lives
            self._views()
            raise BufferError(msg + " (through view.obj; the view was released: use .view again)")
        self._base = None  # the mapping's export goes with it

    def _drop(self, what):
        # Free the views if nothing else holds them (False if something
        # does); consume or publish nothing.
        try:
            self._free(what)
        except BufferError:
            return False
        self._state = 2
        return True


class Message(_InPlace):
    """A received message in the ring itself (Ring.next): view is a read-only
    memoryview of its bytes, valid until release(). Used as a context manager
    it gives the view and releases the message on leaving the block, however
    it is left."""

    __slots__ = ()

    def release(self):
        """Consume the message: release the view (using it afterwards raises
        ValueError), then move the ring's tail past it and wake the writer.
        BufferError if something made from the view still lives (nothing
        changes: drop it and call again). Releasing again does nothing."""
        if self._state == 1:
            return
        self._ring._usable()  # a Ring closed or inherited through fork
        if self._state == 2:
            raise ValueError("shmring %s: the message was dropped by close" % self._ring.name)
        self._free("release")
        self._state = 1
        self._ring._consumed(self)

    def __len__(self):
        return self._n

    def __enter__(self):
        return self.view

    def __exit__(self, *exc):
        self.release()


class Reservation(_InPlace):
    """Room for a message in the ring itself (Ring.reserve): view is a writable
    memoryview of n bytes, valid until commit(). Used as a context manager it
    gives the view and commits all of it on leaving the block, or, left by
    an exception, aborts it (nothing is sent)."""

    __slots__ = ("_skip",)

    def commit(self, m=None):
        """Publish the first m bytes of the view (all of them if m is None)
        as one message and wake the reader. The view is released first
        (using it afterwards raises ValueError); BufferError if something
        made from it still lives (nothing is published: drop it and call
        again)."""
        r = self._ring
        r._usable()
        if self._state != 0:
            raise ValueError("shmring %s: commit: the reservation was %s" % (r.name, "committed" if self._state == 1 else "dropped"))
        m = self._n if m is None else m
        if not 0 <= m <= self._n:
            raise ValueError("shmring %s: commit of %d bytes with %d reserved" % (r.name, m, self._n))
        self._free("commit")
        self._state = 1
        r._publish(self, m)

    def __enter__(self):
        return self.view

    def abort(self):
        """Drop the reservation: nothing is sent, and the view is released.
        BufferError if something made from it still lives (the reservation
        stays pending: drop it and call again)."""
        r = self._ring
        r._usable()
        if self._state != 0:
            raise ValueError("shmring %s: abort: the reservation was %s" % (r.name, "committed" if self._state == 1 else "dropped"))
        self._free("abort")
        self._state = 2
        r._held = None

    def __exit__(self, exc_type, exc, tb):
        if self._state != 0:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()  # BufferError (chained to exc) if a slice of the view outlived the block


class Ring:
    """A ring in a shared memory object, open in this process."""

    def __init__(self, name, fd):
        _check_platform()
        self.name = name
        self._fd = fd
        self._role = 0  # 1 writer, 2 reader
        self._check_at = None  # monotonic time of the next test of the peer's lock; None: not waiting
        self._forked = False
        self._mm = None
        self._held = None  # the Message from next() not yet released, or the Reservation not yet committed
        size = os.fstat(fd).st_size
        if size < HEADER:
            raise ValueError("shmring %s: %d bytes, less than a ring's header" % (name, size))
        self._mm, self._mmfd = _mmap_noting_fd(fd, size)
        mm = self._mm
        if mm[0:8] != MAGIC:
            raise ValueError("shmring %s: magic %r, want %r: not a ring of layout version %d" % (name, mm[0:8], MAGIC, VERSION))
        version, hsize, cap, mx = struct.unpack_from("<IIQQ", mm, OFF_VERSION)
        if version != VERSION:
            raise ValueError("shmring %s: layout version %d, this module knows %d" % (name, version, VERSION))
        if hsize != HEADER or cap < 64 or cap > 1 << 40 or cap % 8 or cap > size - HEADER or mx != cap // 2 - 8:
            raise ValueError("shmring %s: header size %d, capacity %d, max message %d do not fit a %d-byte ring object"
                             % (name, hsize, cap, mx, size))
        self.capacity, self.max_message = cap, mx
        # Words by address (from_address does not pin the mmap, which
        # close must be able to unmap); never used after close.
        probe = ctypes.c_char.from_buffer(mm)
        base = ctypes.addressof(probe)
        del probe
        self._base, self._size = base, size
        self._head = ctypes.c_uint64.from_address(base + OFF_HEAD)
        self._tail = ctypes.c_uint64.from_address(base + OFF_TAIL)
        self._wstate = ctypes.c_uint32.from_address(base + OFF_WRITER_STATE)
        self._rstate = ctypes.c_uint32.from_address(base + OFF_READER_STATE)
        self._wpid = ctypes.c_uint32.from_address(base + OFF_WRITER_PID)
        self._rpid = ctypes.c_uint32.from_address(base + OFF_READER_PID)
        self._rsleep = ctypes.c_uint32.from_address(base + OFF_READER_SLEEP)
        self._wsleep = ctypes.c_uint32.from_address(base + OFF_WRITER_SLEEP)
        _rings.add(self)

    def _forget_after_fork(self):
        # In a fork's child: the descriptor shares the parent's open file
        # description, hence its claims, and so does the mapping (mmap keeps
        # a duplicate of the descriptor, and the kernel's mapping refers to
        # the description): close both so that the parent's death frees its
        # end. The Ring is dead here.
        self._forked = True
        held, self._held = self._held, None
        if held is not None:
            held._drop("fork")  # release its views if nothing else holds them
            held._state = 2
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                # Something made from a view (an array, a slice) lives in
                # the child and pins the mapping and mmap's duplicate of the
                # descriptor. Put anonymous memory in the mapping's place (the
                # child's stale views then read zeros, never the ring), and
                # /dev/null in place of each descriptor that shares the
                # description (kcmp; mmap closes its number itself later).
                _libc.mmap.restype = ctypes.c_void_p
                _libc.mmap(ctypes.c_void_p(self._base), ctypes.c_size_t(self._size), mmap.PROT_READ | mmap.PROT_WRITE,
                           mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED, -1, ctypes.c_long(0))
                _replace_sharers(self._fd, self._mmfd)
            except OSError:
                pass
        if self._fd is not None and self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1

    def _usable(self):
        if self._forked:
            raise ChildProcessError(errno.ECHILD, "shmring %s: inherited through fork: a child holds no claim; open the ring again" % self.name)
        if self._mm is None:
            raise ValueError("shmring %s: closed" % self.name)

    @classmethod
    def create(cls, name, capacity):
        """Make a new ring of capacity data bytes (a multiple of 8 from 64 to
        2**40) in a new object name (exclusive, mode 0600, pages reserved)."""
        _check_platform()  # before making anything
        if capacity < 64 or capacity > 1 << 40 or capacity % 8:
            raise ValueError("shmring: capacity %d: want a multiple of 8 from 64 to 2**40" % capacity)
        fd = _shm_open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size = HEADER + capacity
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
            with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as mm:
                struct.pack_into("<IIQQ", mm, OFF_VERSION, VERSION, HEADER, capacity, capacity // 2 - 8)
                magic = ctypes.c_uint64.from_buffer(mm, 0)
                magic.value = struct.unpack("<Q", MAGIC)[0]  # last: one 8-byte store
                del magic
        except BaseException:
            os.close(fd)
            _shm_unlink(name)
            raise
        try:
            return cls(name, fd)
        except BaseException:
            os.close(fd)
            _shm_unlink(name)  # ours, just made: nothing left behind
            raise

    @classmethod
    def open(cls, name):
        """Open the ring in the existing object name and check its header
        (ValueError if it is not a ring of this layout). A header its creator
        is still writing is waited for, up to a second."""
        _check_platform()
        deadline = time.monotonic() + 1.0
        while True:
            fd = _shm_open(name, os.O_RDWR, 0)
            try:
                st = os.fstat(fd).st_size
                fresh = st == 0 or (st >= 8 and os.pread(fd, 8, 0) == bytes(8))
                if fresh and time.monotonic() < deadline:
                    os.close(fd)
                    time.sleep(0.001)
                    continue
                return cls(name, fd)
            except BaseException:
                os.close(fd)
                raise

    # -- claims ----------------------------------------------------------

    def _lock(self, cmd, typ, off):
        return fcntl.fcntl(self._fd, cmd, struct.pack(_FLOCK, typ, os.SEEK_SET, off, 1, 0))

    def _claim(self, role, lock, state, pid):
        self._usable()
        if self._role:
            raise BusyError(self.name)
        try:
            self._lock(F_OFD_SETLK, fcntl.F_WRLCK, lock)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise BusyError(self.name) from None
            raise
        pid.value = os.getpid()  # informational only (LAYOUT.md §2), before the state
        state.value = END_OPEN
        self._role = role
        self._check_at = None
        # checked where it is used: send and recv refuse a position that is
        # not a multiple of 8 (ValueError)
        self._pos = (self._head if role == 1 else self._tail).value
        return self

    def writer(self):
        """Claim the writing end; BusyError if a live process holds it."""
        return self._claim(1, LOCK_WRITER, self._wstate, self._wpid)

    def reader(self):
        """Claim the reading end; BusyError if a live process holds it."""
        return self._claim(2, LOCK_READER, self._rstate, self._rpid)

    def _peer_alive(self, lock):
        try:
            got = struct.unpack(_FLOCK, self._lock(F_OFD_GETLK, fcntl.F_WRLCK, lock))[0]
        except OSError:
            return True  # never declare dead what we cannot judge
        return got != fcntl.F_UNLCK

    # -- the protocol ----------------------------------------------------

    def _addr(self, word):
        return ctypes.addressof(word)

    def _wake(self, word):
        # *word = 0 and wake its sleeper if it was 1, atomically in the
        # kernel: the exchange is the fence between our counter's store and
        # our look at the peer's sleep word.
        a = self._addr(word)
        _futex(a, FUTEX_WAKE_OP, 0, ctypes.c_void_p(1), a, _OP_SET_0_WAKE_IF_SET)

    def _wait(self, ready, timeout, closed_exc):
        # ready() is true, false, or raises ValueError (a corrupt ring). The
        # peer's lock is tested when POLL_PEER seconds have passed on the
        # monotonic clock since the wait first slept (or last tested it),
        # whatever ended the sleeps: a signal's EINTR every few ms must not
        # put it off. The clock runs on across calls that time out, until the
        # ring moves.
        deadline = None if timeout is None else time.monotonic() + timeout
        if ready():
            self._check_at = None
            return
        me = self._wsleep if self._role == 1 else self._rsleep
        peer_state = self._rstate if self._role == 1 else self._wstate
        peer_lock = LOCK_READER if self._role == 1 else LOCK_WRITER
        a = self._addr(me)
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("shmring %s: timed out" % self.name)
            _futex(a, FUTEX_WAKE_OP, 0, None, a, _OP_SET_1)  # announce (a fenced store), then look again
            try:
                ok = ready()
            except BaseException:
                me.value = 0
                raise
            if ok:
                me.value = 0
                self._check_at = None
                return
            if self._check_at is None:
                self._check_at = now + POLL_PEER  # the first sleep: the clock starts
            st = peer_state.value
            exc = None
            if st == END_CLOSED:
                exc = closed_exc
            elif st == END_OPEN and now >= self._check_at:
                self._check_at = now + POLL_PEER
                if not self._peer_alive(peer_lock):
                    exc = PeerGoneError("shmring %s: the process at the other end died" % self.name)
                    self._check_at = float("-inf")  # due: the next call tests again at once
            if exc is not None:
                me.value = 0
                if ready():
                    self._check_at = None
                    return
                raise exc
            # Sleep until the next test of the peer (at most POLL_PEER: the
            # peer's state is read again then) or the deadline; woken, timed
            # out or interrupted, go round.
            until = now + POLL_PEER
            if st == END_OPEN:
                until = min(until, self._check_at)
            if deadline is not None:
                until = min(until, deadline)
            slice_ = max(until - now, 0.0)
            ts = _Timespec(int(slice_), int((slice_ - int(slice_)) * 1e9))
            _futex(a, FUTEX_WAIT, 1, ctypes.byref(ts), 0, 0)

    def _reserve(self, op, n, timeout):
        # Send's steps 1-3 (LAYOUT.md §5): wait for room for an n-byte
        # message, write the wrap marker if it goes to offset 0; return the
        # record's data offset and the bytes skipped.
        self._usable()
        if self._role != 1:
            raise ValueError("shmring %s: %s needs the writing end (writer())" % (self.name, op))
        if n < 0:
            raise ValueError("shmring %s: %s of %d bytes" % (self.name, op, n))
        if n > self.max_message:
            raise TooLargeError("shmring %s: message of %d bytes, max %d" % (self.name, n, self.max_message))
        if self._held is not None:
            raise ValueError("shmring %s: %s: a reservation is pending: commit it first" % (self.name, op))
        cap, pos = self.capacity, self._pos
        if pos % 8:  # the head this writer took over at its claim
            raise ValueError("shmring %s: corrupt: head %d is not a multiple of 8" % (self.name, pos))
        # pos and cap are multiples of 8: off <= cap - 8, and the marker and
        # the record below lie inside the data
        rec, off, skip = _size(n), pos % cap, 0
        if rec > cap - off:
            skip = cap - off
        need = skip + rec
        tail = self._tail

        def room():
            t = tail.value
            used = (pos - t) & M64
            if used > cap or t % 8:
                raise ValueError("shmring %s: corrupt: tail %d, head %d" % (self.name, t, pos))
            return cap - used >= need

        self._wait(room, timeout, BrokenPipeError("shmring %s: the reader closed its end" % self.name))
        if skip:
            struct.pack_into("<Q", self._mm, HEADER + off, WRAP)
            off = 0
        return off, skip

    def _publish(self, res, m):
        # Send's steps 4-6 for the record at res._off, with the skip decided
        # at the reservation (res._n bytes were reserved, m <= res._n sent).
        struct.pack_into("<Q", self._mm, HEADER + res._off, m)
        self._held = None
        self._pos = (self._pos + res._skip + _size(m)) & M64
        self._head.value = self._pos  # a plain 8-byte store: after the record's (TSO)
        self._wake(self._rsleep)

    def send(self, data, timeout=None):
        """Send data (bytes-like) as one message, waiting while the ring is
        full, up to timeout seconds (None: forever). Its bytes are sent,
        whatever its item size (array.array("Q") included)."""
        with memoryview(data) as mv:  # len(data) counts items, not bytes
            if mv.ndim != 1 or mv.itemsize != 1:
                data = mv.cast("B")  # TypeError if it is not contiguous
        n = len(data)
        off, skip = self._reserve("send", n, timeout)
        mm, base = self._mm, HEADER
        mm[base + off + 8:base + off + 8 + n] = data
        struct.pack_into("<Q", mm, base + off, n)
        self._pos = (self._pos + skip + _size(n)) & M64
        self._head.value = self._pos  # a plain 8-byte store: after the record's (TSO)
        self._wake(self._rsleep)

    def reserve(self, n, timeout=None):
        """Reserve room for an n-byte message in the ring itself, waiting as
        send does, and return it as a Reservation: its view is n writable
        bytes in the ring, published by commit(m) (m <= n). One reservation
        at a time: send and reserve refuse (ValueError) while one is
        pending; abort() or close drops it.

            with r.reserve(n) as buf:   # commits all n on leaving
                buf[:] = ...
        """
        off, skip = self._reserve("reserve", n, timeout)
        res = Reservation(self, off, n)
        res._skip, self._held = skip, res
        return res

    def commit(self, m=None):
        """Commit the pending reservation's first m bytes (Reservation.commit)."""
        self._usable()
        if self._role != 1 or self._held is None:
            raise ValueError("shmring %s: commit: no reservation pending: call reserve first" % self.name)
        self._held.commit(m)

    def abort(self):
        """Abort the pending reservation (Reservation.abort)."""
        self._usable()
        if self._role != 1 or self._held is None:
            raise ValueError("shmring %s: abort: no reservation pending: call reserve first" % self.name)
        self._held.abort()

    def _locate(self, timeout):
        # Receive's steps 1-4 (LAYOUT.md §5): wait for a record, skip wrap
        # markers, check it; return its data offset and length.
        mm, cap, head = self._mm, self.capacity, self._head
        while True:
            pos = self._pos
            if pos % 8:  # the tail this reader took over at its claim
                raise ValueError("shmring %s: corrupt: tail %d is not a multiple of 8" % (self.name, pos))
            h = head.value
            if h == pos:
                self._wait(lambda: head.value != pos, timeout,
                           EOFError("shmring %s: end of stream" % self.name))
                continue
            avail = (h - pos) & M64
            if avail > cap or h % 8:
                raise ValueError("shmring %s: corrupt: head %d, tail %d" % (self.name, h, pos))
            off = pos % cap  # a multiple of 8, <= cap - 8
            (n,) = struct.unpack_from("<I", mm, HEADER + off)
            if n == WRAP:
                if off == 0 or avail < cap - off:
                    raise ValueError("shmring %s: corrupt wrap marker at %d" % (self.name, off))
                self._pos = (pos + cap - off) & M64
                continue
            rec = _size(n)
            if n > self.max_message or rec > avail or off + rec > cap:
                raise ValueError("shmring %s: corrupt record of %d bytes at %d" % (self.name, n, off))
            return off, n

    def _consumed(self, msg):
        # Receive's steps 6-7, once the message's views are released.
        self._held = None
        self._pos = (self._pos + _size(msg._n)) & M64
        self._tail.value = self._pos  # after the reads of the message (TSO: loads before a later store)
        self._wake(self._wsleep)

    def _reading(self, op):
        self._usable()
        if self._role != 2:
            raise ValueError("shmring %s: %s needs the reading end (reader())" % (self.name, op))

    def recv(self, timeout=None):
        """Receive the next message as bytes, waiting while the ring is empty,
        up to timeout seconds (None: forever). EOFError at the end of the
        stream, PeerGoneError if the writer died. A message from next() not
        yet released is the one received (and released)."""
        self._reading("recv")
        if self._held is not None:
            held = self._held
            msg = bytes(held._inner)  # held._inner lives until release succeeds
            held.release()
            return msg
        off, n = self._locate(timeout)
        msg = self._mm[HEADER + off + 8:HEADER + off + 8 + n]
        self._pos = (self._pos + _size(n)) & M64
        self._tail.value = self._pos  # after the copy
        self._wake(self._wsleep)
        return msg

    def next(self, timeout=None):
        """Return the next message in the ring itself, waiting as recv does,
        as a Message: its view is a read-only memoryview of the message,
        valid until release(), which consumes it (a reader that dies before
        leaves it to the next reader: at least once). Next again before
        release returns the same Message.

            with r.next() as view:      # released on leaving
                a = numpy.frombuffer(view, numpy.uint8).copy()
        """
        self._reading("next")
        if self._held is None:
            off, n = self._locate(timeout)
            self._held = Message(self, off, n)
        return self._held

    def release(self):
        """Release the message from next() (Message.release)."""
        self._reading("release")
        if self._held is None:
            raise ValueError("shmring %s: release: no message held: call next first" % self.name)
        self._held.release()

    def close(self):
        """Release this Ring's end (a writer's close ends the stream) and
        unmap. A message from next() not yet released stays in the ring for
        the next reader, a pending reservation is dropped; their views are
        released (BufferError, and nothing closed, while something made from
        one still lives). Closing again does nothing."""
        if self._mm is None or self._forked:
            self._mm = None
            return
        if self._held is not None:
            self._held._free("close")
            self._held._state = 2
            self._held = None
        if self._role:
            (self._wstate if self._role == 1 else self._rstate).value = END_CLOSED
            self._wake(self._rsleep if self._role == 1 else self._wsleep)
            self._lock(F_OFD_SETLK, fcntl.F_UNLCK, LOCK_WRITER if self._role == 1 else LOCK_READER)
            self._role = 0
        self._mm.close()
        self._mm = None
        os.close(self._fd)
        self._fd = -1

    def unlink(self):
        """Remove the ring's object name (shm_unlink)."""
        _shm_unlink(self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
