"""shmring: the message ring of github.com/posixshm/shm/ring in Python.

Standard library only (ctypes for the futex system call, fcntl for the
claims, mmap for the memory). It speaks ring/LAYOUT.md, version 2, so a
Python process can be any writer or reader of a ring whose other ends are
Go, C or Python. Install it with `pip install ./ring/python` (no index
needed: the build backend beside it is standard library only).

Where it is correct: 64-bit CPython on Linux x86-64, and nowhere else.
Python has no atomics, so this module relies on what x86-64 gives plain
instructions: aligned 8-byte loads and stores (the counters, through ctypes)
are single instructions, stores become visible in program order, loads are
not reordered with older loads nor stores with older loads (total store
order), and each step is a separate C call of the interpreter, which the
compiler cannot reorder. The one reordering TSO allows, a load passing an
older store, is what the sleep handshake and a fan-out reader's join must
forbid: there the kernel's FUTEX_WAKE_OP (an atomic exchange, a full fence)
does the store, or follows it as the fence. On other
machines (arm64, POWER: weaker orderings), under a 32-bit Python (an 8-byte
counter is two 4-byte moves, torn) or another implementation
(PyPy's JIT may reorder raw memory accesses), Ring.create and Ring.open
raise OSError(ENOSYS) naming what is missing, rather than run wrongly.

    r = shmring.Ring.create("/jobs", 1 << 20)   # or Ring.open("/jobs")
    r.writer()                                  # or r.reader()
    r.send(b"hello")                            # data = r.recv(timeout=1.0)
    r.close()

A ring has 1 to 64 writer slots and 1 to 64 reader slots
(Ring.create(name, capacity, readers=R, writers=W)). Each writer has a lane
of its own (capacity bytes each); every reader receives every message
published while it holds its slot, each writer's messages in that writer's
order, taking the lanes in turn. writer() and reader() claim the first slot
of that kind no live process holds; a Ring holds at most one slot (open the
ring again for another). With R = 1 the one reader slot keeps its place
across readers (a new reader starts at the first message the last one did
not release); with R > 1 a reader that claims a slot starts at the next
message published after its claim, a writer waits for the slowest live
reader (a slow reader holds back every writer, and so every other reader:
the ring moves at its pace), and a reader that closes or dies stops
holding it back (a dead one within about 300 ms). stat() describes the ring
without claiming anything; wait_peer() waits until a live process holds a
slot of the other kind.

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

Errors: BusyError (every slot of that kind is claimed by a live process,
or this Ring already holds one), TooLargeError (a message beyond
max_message), EOFError (recv: every writer that claimed a slot closed it
and every message was received), BrokenPipeError (send, one reader slot
only: the reader closed its end and the ring is full), PeerGoneError (recv:
a writer's process died without closing, once what it committed is
received; send, one reader slot only: the reader died and the ring is
full), TimeoutError, BufferError (release, commit or close while something
made from a message's view still lives), ValueError (not a ring of this
layout, a version-1 ring included, a call the Ring's slot or state does not
allow, a closed Ring, an argument out of its range, or a corrupt record,
counter or state word: every head, tail, length and wrap marker read from
the shared memory is checked before it decides an offset, so a buggy or
hostile peer gets ValueError, never struct.error or IndexError), TypeError
(an argument of the wrong type: reserve's n and commit's m are integers,
by operator.index; a timeout is a real number), ChildProcessError (errno
ECHILD: the Ring was inherited through fork, below). Arguments are checked
before anything changes: a refused commit(m) leaves the reservation
pending.
A timeout of None waits forever, 0 never blocks; a timeout is otherwise a
number of seconds, 0 or more (inf: forever); NaN or a negative number is
ValueError, raised before the call looks at the ring. A blocked call tests its
peers' lives every 150 ms of the monotonic clock, whatever ends its sleeps
(a wake-up, a timeout, a signal handler's EINTR): a dead peer is
PeerGoneError (or, for a fan-out writer, no longer waited for) within about
300 ms even in a process that takes a signal every few ms.

fork: a child holds no claim. An os.register_at_fork hook closes, in the
child, the descriptor and the mapping of every Ring the parent had open
(both hold the open file description that carries the claims: it stays the
parent's alone, so the parent's death frees its slot while the child lives);
in the child those Rings refuse everything with ChildProcessError (their
Messages' and Reservations' release and commit too), and close() does
nothing more (it leaves the parent's slot open). A view the parent held is
released in the child; where something made from it still lives there (an
array), the child's mapping is replaced by anonymous memory (that array
reads zeros, never the ring) and the child's descriptors of the ring's
description by /dev/null: the mmap object's own duplicate (its number is
noted when the ring is mapped) and any other kcmp(2) finds (where seccomp
refuses kcmp, as Docker's default profile does, only that one). Open the
ring again in the child to use it
(multiprocessing's "fork" start method included).

Threads and signal handlers: use a Ring (and its Messages and
Reservations) from one thread at a time; its calls are not serialized.
close() is the exception: any thread or signal handler may call it at any
time. A call on the Ring that is blocked then ends at once with ValueError
(closed), and the memory stays mapped until no call is in progress
(Ring.close tells the rest): no call reads or writes unmapped memory.
"""

import ctypes
import errno
import fcntl
import functools
import mmap
import numbers
import operator
import os
import pickle
import platform
import struct
import sys
import threading
import time
import weakref

try:
    import _posixshmem  # CPython's own shm_open, as multiprocessing.shared_memory uses
except ImportError:  # pragma: no cover
    _posixshmem = None

__all__ = ["Ring", "Message", "Reservation", "PeerGoneError", "BusyError", "TooLargeError", "VERSION", "layout"]

VERSION = 2
MAGIC = b"SHMRING\x00"
HEADER = 512  # the fixed header; the slots follow it
MAX_SLOTS = 64  # writers and readers: 1 to 64 of each
WRAP = 0xFFFFFFFF

OFF_VERSION, OFF_HEADER_SIZE, OFF_CAPACITY, OFF_MAX_MESSAGE, OFF_READERS, OFF_WRITERS = 8, 12, 16, 24, 32, 36
LOCK_WRITER, LOCK_READER = 64, 128  # + the slot: the byte its OFD lock covers
WSLOT = 192  # bytes of a writer slot; writer slot w at HEADER + WSLOT*w
W_STATE, W_PID, W_HEAD, W_SLEEP = 0, 4, 64, 128  # in a writer slot
R_STATE, R_PID, R_SLEEP, R_TAIL = 0, 4, 64, 128  # in a reader slot; tail[w] at R_TAIL + 8*w
ST_NEVER, ST_OPEN, ST_CLOSED = 0, 1, 2  # a state word's low byte; its high 24 bits count the claims
STATES = ("never", "open", "closed", "dead")  # stat()'s names

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
_get_ident = threading.get_ident


class PeerGoneError(Exception):
    """A process at the other end died without closing its slot."""


class BusyError(OSError):
    """Every slot of the kind asked for is claimed by a live process (or
    this Ring already holds a slot)."""

    def __init__(self, what):
        super().__init__(errno.EBUSY, "ring slot already claimed by a live process: " + what)


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


def _close_fd(fd):
    # A dropped Ring's finalizer: close its descriptor, nothing else.
    try:
        os.close(fd)
    except OSError:
        pass


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


def _index(name, op, what, v):
    # An integer argument as an int (operator.index: int, bool, numpy's
    # integers), checked before anything changes; TypeError otherwise.
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError("shmring %s: %s: %s %r is not an integer" % (name, op, what, v)) from None


def _timeout(name, op, timeout):
    # A timeout argument as a float (None: forever), checked before the
    # call looks at the ring: a real number of seconds, 0 or more (inf:
    # forever); ValueError for NaN or a negative number, TypeError for
    # what is not a real number (a str included).
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)) or isinstance(timeout, numbers.Real):
        try:
            t = float(timeout)
        except OverflowError:  # an int beyond a float's range: forever
            t = float("inf")
        if t >= 0.0:  # false for NaN
            return t
        raise ValueError("shmring %s: %s: timeout %r: want None or seconds, 0 or more" % (name, op, timeout))
    raise TypeError("shmring %s: %s: timeout %r: want None or a number of seconds" % (name, op, timeout))


def _anon(base, size):
    # Put private anonymous memory in place of the mapping at base (size
    # bytes): what still reads it through a view left alive reads zeros,
    # never the ring.
    _libc.mmap.restype = ctypes.c_void_p
    _libc.mmap(ctypes.c_void_p(base), ctypes.c_size_t(size), mmap.PROT_READ | mmap.PROT_WRITE,
               mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED, -1, ctypes.c_long(0))


def layout(readers, writers):
    """The offsets of a ring of readers reader slots and writers writer
    slots (LAYOUT.md §2): (RS, RSZ, D): reader slot r at RS + RSZ*r, lane w's
    data at D + capacity*w (D is the header_size)."""
    rsz = 128 + 64 * ((writers + 7) // 8)
    rs = HEADER + WSLOT * writers
    return rs, rsz, rs + rsz * readers


def _call(f):
    # A Ring's method that looks at the ring: counted among the Ring's calls
    # in progress, so that close() leaves the mapping in place until it
    # returns (send, recv, next, reserve and Message's and Reservation's
    # calls do the same inline).
    @functools.wraps(f)
    def call(self, *args, **kwargs):
        me, calls = _get_ident(), self._calls
        try:
            calls.append(me)
            return f(self, *args, **kwargs)
        finally:
            calls.remove(me)
            if self._closing and not calls:
                self._end_call()
    return call


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
        # off is the record's offset in the mapping (its lane's data
        # offset plus the record's offset in the lane). The innermost buffer is a ctypes array of the message's bytes, not
        # a slice of the whole mapping: view.obj is then a memoryview whose
        # buffer is that array's, and whatever is made from view.obj (or
        # from the array) holds a reference to the array, which _free
        # counts (a slice of a mapping-wide view would share the mapping's
        # buffer, unseen).
        # (an empty message reads nothing of the ring: a bytearray of its own)
        self._base = (ctypes.c_ubyte * n).from_buffer(ring._mm, off + 8) if n else bytearray()  # inside the lane: checked by the caller
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
        r = self._ring
        me, calls = _get_ident(), r._calls
        try:
            calls.append(me)  # a call in progress (Ring.close)
            r._usable()  # a Ring closed or inherited through fork
            if self._state == 2:
                raise ValueError("shmring %s: the message was dropped by close" % r.name)
            self._free("release")
            self._state = 1
            r._consumed(self)
        finally:
            calls.remove(me)
            if r._closing and not calls:
                r._end_call()

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
        again). m is an integer (TypeError otherwise) from 0 to n
        (ValueError otherwise), checked first: a refused m leaves the
        reservation pending, its view usable."""
        r = self._ring
        me, calls = _get_ident(), r._calls
        try:
            calls.append(me)  # a call in progress (Ring.close)
            r._usable()
            if self._state != 0:
                raise ValueError("shmring %s: commit: the reservation was %s" % (r.name, "committed" if self._state == 1 else "dropped"))
            # m is checked before anything changes: a bad m leaves the
            # reservation pending, its view usable
            m = self._n if m is None else _index(r.name, "commit", "length", m)
            if not 0 <= m <= self._n:
                raise ValueError("shmring %s: commit of %d bytes with %d reserved" % (r.name, m, self._n))
            self._free("commit")
            self._state = 1
            r._publish(self, m)
        finally:
            calls.remove(me)
            if r._closing and not calls:
                r._end_call()

    def __enter__(self):
        return self.view

    def abort(self):
        """Drop the reservation: nothing is sent, and the view is released.
        BufferError if something made from it still lives (the reservation
        stays pending: drop it and call again)."""
        r = self._ring
        me, calls = _get_ident(), r._calls
        try:
            calls.append(me)  # a call in progress (Ring.close)
            r._usable()
            if self._state != 0:
                raise ValueError("shmring %s: abort: the reservation was %s" % (r.name, "committed" if self._state == 1 else "dropped"))
            self._free("abort")
            self._state = 2
            r._held = None
        finally:
            calls.remove(me)
            if r._closing and not calls:
                r._end_call()

    def __exit__(self, exc_type, exc, tb):
        if self._state != 0:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()  # BufferError (chained to exc) if a slice of the view outlived the block


class Ring:
    """A ring in a shared memory object, open in this process.

    Its attributes: name, capacity (data bytes of each lane), max_message,
    readers and writers (the numbers of reader and writer slots), and slot
    (the slot this Ring holds, None before writer() or reader())."""

    def __init__(self, name, fd):
        _check_platform()
        self.name = name
        self._fd = fd
        self._role = 0  # 1 writer, 2 reader
        self.slot = None
        self._check_at = None  # monotonic time of the next test of the peers' locks; None: not waiting
        self._forked = False
        self._mm = None
        self._held = None  # the Message from next() not yet released, or the Reservation not yet committed
        # Close and the calls in progress (see close): the thread of each
        # call in progress (a list: append and remove are each one step
        # under the GIL, so a signal handler's or another thread's close
        # sees a call either counted or refused), the threads in close(),
        # closing (set by close before it looks at the calls; a call
        # refuses once it is set), and the condition close waits on.
        self._calls = []
        self._closers = []
        self._closing = False
        self._finishing = False
        self._cv = threading.Condition()
        size = os.fstat(fd).st_size
        if size < HEADER:
            raise ValueError("shmring %s: %d bytes, less than a ring's header" % (name, size))
        self._mm, self._mmfd = _mmap_noting_fd(fd, size)
        mm = self._mm
        # LAYOUT.md §2 "Opening", in its order
        if mm[0:8] != MAGIC:
            raise ValueError("shmring %s: magic %r, want %r: not a ring" % (name, mm[0:8], MAGIC))
        version, hsize, cap, mx, nr, nw = struct.unpack_from("<IIQQII", mm, OFF_VERSION)
        if version != VERSION:
            raise ValueError("shmring %s: layout version %d, this module knows only version %d: recreate the ring"
                             % (name, version, VERSION))
        if not (1 <= nr <= MAX_SLOTS and 1 <= nw <= MAX_SLOTS):
            raise ValueError("shmring %s: %d readers, %d writers: want 1 to %d of each" % (name, nr, nw, MAX_SLOTS))
        rs, rsz, d = layout(nr, nw)
        if hsize != d or cap < 64 or cap > 1 << 40 or cap % 8 or nw * cap > 1 << 40 or mx != cap // 2 - 8 or size < d + nw * cap:
            raise ValueError("shmring %s: header size %d, capacity %d, max message %d, %d writers do not fit a %d-byte ring object"
                             % (name, hsize, cap, mx, nw, size))
        self.capacity, self.max_message, self.readers, self.writers = cap, mx, nr, nw
        # Words by address (from_address does not pin the mmap, which
        # close must be able to unmap); never used after close.
        probe = ctypes.c_char.from_buffer(mm)
        base = ctypes.addressof(probe)
        del probe
        self._base, self._size = base, size
        u32, u64 = ctypes.c_uint32.from_address, ctypes.c_uint64.from_address
        ws = [base + HEADER + WSLOT * w for w in range(nw)]
        self._wstate = [u32(a + W_STATE) for a in ws]
        self._wpid = [u32(a + W_PID) for a in ws]
        self._whead = [u64(a + W_HEAD) for a in ws]
        self._wsleep = [u32(a + W_SLEEP) for a in ws]
        rsl = [base + rs + rsz * r for r in range(nr)]
        self._rstate = [u32(a + R_STATE) for a in rsl]
        self._rpid = [u32(a + R_PID) for a in rsl]
        self._rsleep = [u32(a + R_SLEEP) for a in rsl]
        self._rtail = [[u64(a + R_TAIL + 8 * w) for w in range(nw)] for a in rsl]  # [r][w]
        self._lanes = [d + cap * w for w in range(nw)]  # lane w's data offset in the mapping
        # A Ring dropped without close() closes its descriptor when it is
        # collected (the mmap object closes its own duplicate and unmaps),
        # so that its claim's lock goes with it: its slot is then a dead
        # process's, its state word untouched. Not at interpreter exit
        # (the process's end releases everything), and detached by close
        # and in a fork's child, which close the descriptor themselves.
        self._finalizer = weakref.finalize(self, _close_fd, fd)
        self._finalizer.atexit = False
        _rings.add(self)

    def _forget_after_fork(self):
        # In a fork's child: the descriptor shares the parent's open file
        # description, hence its claims, and so does the mapping (mmap keeps
        # a duplicate of the descriptor, and the kernel's mapping refers to
        # the description): close both so that the parent's death frees its
        # slot. The Ring is dead here.
        self._forked = True
        self._closing = True  # every call refuses (ChildProcessError)
        # The forking thread is the child's only one: other threads' calls
        # and closes are not in progress here, and the condition's lock may
        # have been held by one of them.
        me = _get_ident()
        in_call = me in self._calls  # fork from a signal handler during a call: the call goes on here
        self._calls, self._closers, self._cv = [], [], threading.Condition()
        fin = getattr(self, "_finalizer", None)
        if fin is not None:
            fin.detach()  # the descriptor is closed below
        held, self._held = self._held, None
        if held is not None:
            held._drop("fork")  # release its views if nothing else holds them
            held._state = 2
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                if in_call:
                    raise BufferError  # the interrupted call may touch the mapping yet: never unmap it
                mm.close()
            except BufferError:
                # Something made from a view (an array, a slice) lives in
                # the child and pins the mapping and mmap's duplicate of the
                # descriptor (or a call in progress may read it). Put
                # anonymous memory in the mapping's place (the child's
                # stale views then read zeros, never the ring), and
                # /dev/null in place of each descriptor that shares the
                # description (kcmp; mmap closes its number itself later).
                if in_call:
                    self._stale = mm  # kept: the interrupted call's words point into it
                _anon(self._base, self._size)
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
        if self._closing or self._mm is None:
            raise ValueError("shmring %s: closed" % self.name)

    @classmethod
    def create(cls, name, capacity, readers=1, writers=1):
        """Make a new ring in a new object name (exclusive, mode 0600, pages
        reserved) with readers reader slots and writers writer slots (1 to
        64 each), each writer's lane capacity data bytes (a multiple of 8
        from 64 to 2**40, writers*capacity at most 2**40); ValueError
        otherwise (TypeError for an argument that is not an integer). The
        object takes layout(readers, writers)[2] + writers*capacity bytes."""
        _check_platform()  # before making anything
        capacity = _index(name, "create", "capacity", capacity)
        readers = _index(name, "create", "readers", readers)
        writers = _index(name, "create", "writers", writers)
        for what, v in (("readers", readers), ("writers", writers)):
            if not 1 <= v <= MAX_SLOTS:
                raise ValueError("shmring: %s %r: want 1 to %d" % (what, v, MAX_SLOTS))
        if capacity < 64 or capacity > 1 << 40 or capacity % 8 or writers * capacity > 1 << 40:
            raise ValueError("shmring: capacity %d: want a multiple of 8 from 64 to 2**40, times %d writers at most 2**40"
                             % (capacity, writers))
        d = layout(readers, writers)[2]
        fd = _shm_open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size = d + writers * capacity
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
            with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as mm:
                struct.pack_into("<IIQQII", mm, OFF_VERSION, VERSION, d, capacity, capacity // 2 - 8, readers, writers)
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
        (ValueError if it is not a ring of this layout; a version-1 ring's
        names its version). A header its creator is still writing is waited
        for, up to a second."""
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

    def _alive(self, lock):
        # Whether another open file description holds the lock byte.
        try:
            got = struct.unpack(_FLOCK, self._lock(F_OFD_GETLK, fcntl.F_WRLCK, lock))[0]
        except OSError:
            return True  # never declare dead what we cannot judge
        return got != fcntl.F_UNLCK

    def _fence(self):
        # A full fence: the kernel's atomic exchange of our own sleep word
        # with 0 (nobody sleeps on it while we run this).
        a = ctypes.addressof(self._sleep)
        _futex(a, FUTEX_WAKE_OP, 0, ctypes.c_void_p(1), a, _OP_SET_0_WAKE_IF_SET)

    @_call
    def _claim(self, role):
        self._usable()
        kind = "writer" if role == 1 else "reader"
        if self._role:
            raise BusyError("%s: this Ring already holds a slot (open the ring again for another)" % self.name)
        lock0, n = (LOCK_WRITER, self.writers) if role == 1 else (LOCK_READER, self.readers)
        for i in range(n):  # LAYOUT.md §4: the first free slot
            try:
                self._lock(F_OFD_SETLK, fcntl.F_WRLCK, lock0 + i)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
        else:
            raise BusyError("%s: all %d %s slots" % (self.name, n, kind))
        state = (self._wstate if role == 1 else self._rstate)[i]
        (self._wpid if role == 1 else self._rpid)[i].value = os.getpid()  # informational only (LAYOUT.md §2), before the state
        state.value = ((((state.value >> 8) + 1) & 0xFFFFFF) << 8) | ST_OPEN
        self._role, self.slot, self._check_at = role, i, None
        self._word = state
        # Counters are checked where they are used: send and recv refuse a
        # position that is not a multiple of 8 (ValueError).
        if role == 1:
            self._sleep = self._wsleep[i]
            self._head = self._whead[i]
            self._lane = self._lanes[i]
            self._pos = self._head.value  # continue the lane
            self._least = None  # the least tail of the holding readers, once computed
            self._ltail = [t[i] for t in self._rtail]  # each reader slot's tail of this lane
            self._dead = [None] * self.readers  # the state word of a reader slot found dead
            self._rsleep0, self._rsleep_rest = self._rsleep[0], self._rsleep[1:]
        else:
            self._sleep = self._rsleep[i]
            self._tailw = self._rtail[i]
            if self.readers == 1:  # keep the slot's place
                self._tails = [t.value for t in self._tailw]
            else:  # join: from the heads now on, after the state word is seen (the fence)
                self._fence()
                self._tails = [h.value for h in self._whead]
                for t, v in zip(self._tailw, self._tails):
                    t.value = v
                for s in self._wsleep:
                    self._wake(s)
            self._heads = list(self._tails)  # the heads last loaded
            self._last = self.writers - 1  # the lane last received from: lane 0 comes first
            self._hw = self._whead[0]
        return self

    def writer(self):
        """Claim the first writer slot no live process holds, and continue
        its lane; BusyError if live processes hold every one (or this Ring
        holds a slot already). Returns the Ring."""
        return self._claim(1)

    def reader(self):
        """Claim the first reader slot no live process holds; BusyError if
        live processes hold every one (or this Ring holds a slot already).
        With one reader slot it continues where the last reader left off;
        with several it receives what is published from now on. Returns
        the Ring."""
        return self._claim(2)

    @_call
    def wait_peer(self, timeout=None):
        """Wait until a live process (or another Ring of this one) holds a
        slot of the other kind: a reader for a writer, a writer for a
        reader. It polls the slots every few milliseconds (LAYOUT.md §5,
        "Waiting for a peer"), up to timeout seconds (None: forever;
        TimeoutError after)."""
        timeout = _timeout(self.name, "wait_peer", timeout)
        self._usable()
        if not self._role:
            raise ValueError("shmring %s: wait_peer needs a slot: call writer() or reader() first" % self.name)
        deadline = None if timeout is None else time.monotonic() + timeout
        states, lock0 = (self._rstate, LOCK_READER) if self._role == 1 else (self._wstate, LOCK_WRITER)
        while True:
            if self._closing:  # closed meanwhile (another thread, a signal handler)
                self._usable()
            for i, s in enumerate(states):
                if s.value & 0xFF == ST_OPEN and self._alive(lock0 + i):
                    return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("shmring %s: no live %s" % (self.name, "reader" if self._role == 1 else "writer"))
            time.sleep(0.005 if deadline is None else max(0.0, min(0.005, deadline - now)))

    # -- looking ---------------------------------------------------------

    def _slot_state(self, word, lock, mine):
        s = word & 0xFF
        if s > ST_CLOSED:
            raise ValueError("shmring %s: corrupt: state word %#x" % (self.name, word))
        if s == ST_OPEN and not mine and not self._alive(lock):
            return "dead"
        return STATES[s]

    @_call
    def stat(self):
        """Describe the ring without claiming or storing anything (LAYOUT.md
        §6), as a dict:

            capacity      data bytes of each lane
            max_message   the largest message
            messages      messages not yet consumed by the slowest holding
                          reader, summed over the lanes
            bytes         their lengths' sum
            used          lane bytes they take (with record headers,
                          padding and bytes skipped at a wrap)
            lanes         per lane (by writer slot), {"head": bytes published,
                          "tail": the least tail of the readers that hold
                          it (head if none does), "messages", "bytes",
                          "used": the same for the lane alone}
            writers       per writer slot, {"state": s, "pid": p}
            readers       per reader slot, likewise

        where s is "never" (never claimed), "open", "closed" or "dead" (open,
        but nobody holds its lock: its process died) and p the pid its last
        claimant recorded (0: none; informational only). A reader holding a
        message from next() has not consumed it. ValueError on a corrupt
        ring; BlockingIOError (EAGAIN) if readers kept consuming under the
        count 64 times over (try again)."""
        self._usable()
        mine_w = self.slot if self._role == 1 else None
        mine_r = self.slot if self._role == 2 else None
        writers = [{"state": self._slot_state(self._wstate[w].value, LOCK_WRITER + w, w == mine_w), "pid": self._wpid[w].value}
                   for w in range(self.writers)]
        readers = [{"state": self._slot_state(self._rstate[r].value, LOCK_READER + r, r == mine_r), "pid": self._rpid[r].value}
                   for r in range(self.readers)]
        if self.readers == 1:
            holders = [0]  # the one reader slot always holds
        else:
            holders = [r for r in range(self.readers) if readers[r]["state"] == "open"]
        lanes = [self._backlog(w, holders) for w in range(self.writers)]
        return {"capacity": self.capacity, "max_message": self.max_message,
                "messages": sum(ln["messages"] for ln in lanes), "bytes": sum(ln["bytes"] for ln in lanes),
                "used": sum(ln["used"] for ln in lanes), "lanes": lanes, "writers": writers, "readers": readers}

    def _backlog(self, w, holders):
        # Lane w's stat: its messages, their bytes and the lane bytes they
        # take, from the least tail of the holding readers to the head,
        # walked as a reader does (Receive steps 2-4), storing nothing.
        def result(h, t, msgs, nbytes):
            return {"head": h, "tail": t, "messages": msgs, "bytes": nbytes, "used": (h - t) & M64}

        if not holders:
            h = self._whead[w].value
            return result(h, h, 0, 0)
        mm, cap, mx, lane, hw = self._mm, self.capacity, self.max_message, self._lanes[w], self._whead[w]
        for _ in range(64):
            tails = [(self._rtail[r][w].value, r) for r in holders]  # the tails first, then the head
            h = hw.value
            least = lr = bad = None
            for t, r in tails:
                used, ahead = (h - t) & M64, (t - h) & M64
                if t % 8 or h % 8 or (ahead and ahead < 1 << 63):
                    bad, least, lr = "head %d, tail %d of reader %d" % (h, t, r), t, r
                    break
                if used > cap:
                    if self.readers > 1:
                        continue  # a reader still joining (LAYOUT.md §5, "Room"): it will start at a head
                    bad, least, lr = "head %d, tail %d" % (h, t), t, r
                    break
                if least is None or used > (h - least) & M64:
                    least, lr = t, r
            if least is None:
                return result(h, h, 0, 0)
            tw = self._rtail[lr][w]
            msgs = nbytes = 0
            p = least
            while bad is None and p != h:
                avail, off = (h - p) & M64, p % cap
                (n,) = struct.unpack_from("<I", mm, lane + off)
                if n == WRAP:
                    if off == 0 or avail < cap - off:
                        bad = "wrap marker at %d" % off
                        break
                    rec = cap - off
                else:
                    rec = _size(n)
                    if n > mx or rec > avail or off + rec > cap:
                        bad = "record of %d bytes at %d" % (n, off)
                        break
                    msgs, nbytes = msgs + 1, nbytes + n
                if (tw.value - least) & M64 > (p - least) & M64:
                    break  # the reader consumed the record meanwhile: it may be overwritten; count again
                p = (p + rec) & M64
            else:
                if bad is None:
                    return result(h, least, msgs, nbytes)
            if bad is not None and tw.value == least:  # the tail did not move: the pair is the ring's
                raise ValueError("shmring %s: corrupt lane %d: %s" % (self.name, w, bad))
        raise BlockingIOError(errno.EAGAIN, "shmring %s: readers kept consuming under the count: try again" % self.name)

    # -- the protocol ----------------------------------------------------

    def _wake(self, word):
        # *word = 0 and wake its sleeper if it was 1, atomically in the
        # kernel: the exchange is the fence between our counter's store and
        # our look at the peer's sleep word.
        a = ctypes.addressof(word)
        _futex(a, FUTEX_WAKE_OP, 0, ctypes.c_void_p(1), a, _OP_SET_0_WAKE_IF_SET)

    def _wake_readers(self):
        # After a head's store: the first reader slot's wake is the fence,
        # after which a plain load of the others' sleep words is ordered.
        self._wake(self._rsleep0)
        for s in self._rsleep_rest:
            if s.value:
                self._wake(s)

    def _wait(self, ready, timeout, judge):
        # ready() is true, false, or raises ValueError (a corrupt ring).
        # judge(test) looks at the peers (test: their locks are to be
        # tested now) and returns an exception to raise, True to look again
        # at once, or None. The peers' locks are tested when POLL_PEER
        # seconds have passed on the monotonic clock since the wait first
        # slept (or last tested them), whatever ended the sleeps: a
        # signal's EINTR every few ms must not put it off. The clock runs
        # on across calls that time out, until the ring moves.
        # A close() meanwhile (another thread's, or a signal handler's
        # between two steps here) stores closing, then wakes our sleep
        # word: closing is looked at on every round and after every
        # announce, so the wait ends with ValueError (closed) at once. The
        # mapping stays while this call is in progress (close).
        deadline = None if timeout is None else time.monotonic() + timeout
        if ready():
            self._check_at = None
            return
        me = self._sleep
        a = ctypes.addressof(me)
        while True:
            if self._closing:
                me.value = 0
                self._usable()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("shmring %s: timed out" % self.name)
            _futex(a, FUTEX_WAKE_OP, 0, None, a, _OP_SET_1)  # announce (a fenced store), then look again
            try:
                if self._closing:  # stored before close's wake: seen here, or the wake comes after the announce
                    self._usable()
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
            test = now >= self._check_at
            if test:
                self._check_at = now + POLL_PEER
            try:
                exc = judge(test)
            except BaseException:
                me.value = 0
                raise
            if exc is True:
                continue
            if exc is not None:
                me.value = 0
                if ready():
                    self._check_at = None
                    return
                raise exc
            # Sleep until the next test of the peers (at most POLL_PEER: the
            # states are read again then) or the deadline; woken, timed out
            # or interrupted, go round.
            until = min(now + POLL_PEER, self._check_at)
            if deadline is not None:
                until = min(until, deadline)
            slice_ = max(until - now, 0.0)
            ts = _Timespec(int(slice_), int((slice_ - int(slice_)) * 1e9))
            _futex(a, FUTEX_WAIT, 1, ctypes.byref(ts), 0, 0)

    def _room(self, need):
        # Whether the writer has room for need bytes at its head (LAYOUT.md
        # §5, "Room"), computing the least tail of the holding readers again.
        pos, cap, nr = self._pos, self.capacity, self.readers
        worst = 0  # bytes the slowest holding reader has not consumed
        for r, tw in enumerate(self._ltail):
            if nr > 1:
                word = self._rstate[r].value
                if word & 0xFF > ST_CLOSED:
                    raise ValueError("shmring %s: corrupt: reader %d's state word %#x" % (self.name, r, word))
                if word & 0xFF != ST_OPEN or self._dead[r] == word:
                    continue  # closed, never claimed, or found dead: holds nothing
            t = tw.value
            ahead = (t - pos) & M64
            if t % 8 or (ahead and ahead < 1 << 63):
                raise ValueError("shmring %s: corrupt: tail %d of reader %d, head %d" % (self.name, t, r, pos))
            used = (pos - t) & M64
            if used > cap:
                if nr == 1:
                    raise ValueError("shmring %s: corrupt: tail %d, head %d" % (self.name, t, pos))
                self._least = None  # a reader still joining: no room until it stored its tails
                return False
            if used > worst:
                worst = used
        self._least = (pos - worst) & M64
        return cap - worst >= need

    def _judge_writer(self, need):
        def judge(test):
            if self.readers == 1:
                st = self._rstate[0].value & 0xFF
                if st == ST_CLOSED:
                    return BrokenPipeError("shmring %s: the reader closed its end" % self.name)
                if st > ST_CLOSED:
                    raise ValueError("shmring %s: corrupt: reader state word %#x" % (self.name, self._rstate[0].value))
                if st == ST_OPEN and test and not self._alive(LOCK_READER):
                    self._check_at = float("-inf")  # due: the next call tests again at once
                    return PeerGoneError("shmring %s: the reader's process died" % self.name)
                return None
            if not test:
                return None
            found = None
            pos, cap = self._pos, self.capacity
            for r, tw in enumerate(self._ltail):  # the holding readers that keep it from room
                word = self._rstate[r].value
                if word & 0xFF != ST_OPEN or self._dead[r] == word:
                    continue
                if cap - ((pos - tw.value) & M64) >= need:
                    continue
                if not self._alive(LOCK_READER + r):
                    self._dead[r] = word  # disregarded until the word changes (a new claim)
                    found = True
            return found
        return judge

    def _judge_reader(self, test):
        # LAYOUT.md §5, "End of stream", with every lane empty.
        opened, claimed = [], False
        for w, s in enumerate(self._wstate):
            st = s.value & 0xFF
            if st == ST_OPEN:
                opened.append(w)
            elif st == ST_CLOSED:
                claimed = True
            elif st != ST_NEVER:
                raise ValueError("shmring %s: corrupt: writer %d's state word %#x" % (self.name, w, s.value))
        if opened:
            if not test:
                return None
            for w in opened:
                if self._alive(LOCK_WRITER + w):
                    return None
            self._check_at = float("-inf")  # due: the next call tests again at once
            return PeerGoneError("shmring %s: a writer's process died" % self.name)
        if not claimed:
            return None
        return EOFError("shmring %s: end of stream" % self.name)

    def _reserve(self, op, n, timeout):
        # Send's steps 1-3 (LAYOUT.md §5): wait for room for an n-byte
        # message, write the wrap marker if it goes to offset 0; return the
        # record's offset in the mapping and the bytes skipped.
        if self._role != 1:
            self._usable()
            raise ValueError("shmring %s: %s needs a writer slot (writer())" % (self.name, op))
        if self._closing:
            self._usable()
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
        # the record below lie inside the lane
        rec, off, skip = _size(n), pos % cap, 0
        if rec > cap - off:
            skip = cap - off
        need = skip + rec
        least = self._least
        if least is None or cap - ((pos - least) & M64) < need:  # the least tail kept: enough room
            self._wait(lambda: self._room(need), timeout, self._judge_writer(need))
            if self._closing:  # closed as it woke: store nothing
                self._usable()
        off += self._lane
        if skip:
            struct.pack_into("<Q", self._mm, off, WRAP)
            off = self._lane
        return off, skip

    def _publish(self, res, m):
        # Send's steps 4-6 for the record at res._off, with the skip decided
        # at the reservation (res._n bytes were reserved, m <= res._n sent).
        struct.pack_into("<Q", self._mm, res._off, m)
        self._held = None
        self._pos = (self._pos + res._skip + _size(m)) & M64
        self._head.value = self._pos  # a plain 8-byte store: after the record's (TSO)
        self._wake_readers()

    def send(self, data, timeout=None):
        """Send data (bytes-like) as one message, waiting while the lane is
        full, up to timeout seconds (None: forever). Its bytes are sent,
        whatever its item size (array.array("Q") included)."""
        me, calls = _get_ident(), self._calls
        try:
            calls.append(me)  # a call in progress (close)
            if timeout is not None:
                timeout = _timeout(self.name, "send", timeout)
            with memoryview(data) as mv:  # len(data) counts items, not bytes
                if mv.ndim != 1 or mv.itemsize != 1:
                    data = mv.cast("B")  # TypeError if it is not contiguous
            n = len(data)
            off, skip = self._reserve("send", n, timeout)
            mm = self._mm
            mm[off + 8:off + 8 + n] = data
            struct.pack_into("<Q", mm, off, n)
            self._pos = (self._pos + skip + _size(n)) & M64
            self._head.value = self._pos  # a plain 8-byte store: after the record's (TSO)
            self._wake_readers()
        finally:
            calls.remove(me)
            if self._closing and not calls:
                self._end_call()

    def reserve(self, n, timeout=None):
        """Reserve room for an n-byte message in the ring itself, waiting as
        send does, and return it as a Reservation: its view is n writable
        bytes in the ring, published by commit(m) (m <= n). One reservation
        at a time: send and reserve refuse (ValueError) while one is
        pending; abort() or close drops it.

            with r.reserve(n) as buf:   # commits all n on leaving
                buf[:] = ...
        """
        me, calls = _get_ident(), self._calls
        try:
            calls.append(me)  # a call in progress (close)
            if timeout is not None:
                timeout = _timeout(self.name, "reserve", timeout)
            n = _index(self.name, "reserve", "n", n)
            off, skip = self._reserve("reserve", n, timeout)
            res = Reservation(self, off, n)
            res._skip, self._held = skip, res
            return res
        finally:
            calls.remove(me)
            if self._closing and not calls:
                self._end_call()

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

    def _any(self):
        # Whether some lane has a message (a head not at its tail).
        for hw, t in zip(self._whead, self._tails):
            if hw.value != t:
                return True
        return False

    def _locate(self, timeout):
        # Receive's steps 1-4 (LAYOUT.md §5): choose a lane round robin, wait
        # for a record, skip wrap markers, check it; return the lane and the
        # record's offset in the mapping and length.
        mm, cap, tails, heads, nw = self._mm, self.capacity, self._tails, self._heads, self.writers
        while True:
            if nw == 1:
                w = 0
                pos = tails[0]
                if pos % 8:  # the tail this reader took over at its claim
                    raise ValueError("shmring %s: corrupt: tail %d is not a multiple of 8" % (self.name, pos))
                h = heads[0]
                if h == pos:
                    h = heads[0] = self._hw.value
                    if h == pos:
                        self._wait(lambda: self._hw.value != pos, timeout, self._judge_reader)
                        if self._closing:  # closed as it woke
                            self._usable()
                        continue
            else:
                w = self._last
                for _ in range(nw):
                    w = w + 1 if w + 1 < nw else 0
                    pos = tails[w]
                    if pos % 8:
                        raise ValueError("shmring %s: corrupt: tail %d of lane %d is not a multiple of 8" % (self.name, pos, w))
                    h = heads[w]
                    if h == pos:
                        h = heads[w] = self._whead[w].value
                    if h != pos:
                        break
                else:
                    self._wait(self._any, timeout, self._judge_reader)
                    if self._closing:  # closed as it woke
                        self._usable()
                    continue
            lane = self._lanes[w]
            while True:
                avail = (h - pos) & M64
                if avail > cap or h % 8:
                    raise ValueError("shmring %s: corrupt: head %d, tail %d of lane %d" % (self.name, h, pos, w))
                if not avail:
                    break  # a wrap marker was the lane's last record: choose again
                off = pos % cap  # a multiple of 8, <= cap - 8
                (n,) = struct.unpack_from("<I", mm, lane + off)
                if n == WRAP:
                    if off == 0 or avail < cap - off:
                        raise ValueError("shmring %s: corrupt wrap marker at %d of lane %d" % (self.name, off, w))
                    pos = tails[w] = (pos + cap - off) & M64
                    continue
                rec = _size(n)
                if n > self.max_message or rec > avail or off + rec > cap:
                    raise ValueError("shmring %s: corrupt record of %d bytes at %d of lane %d" % (self.name, n, off, w))
                return w, lane + off, n

    def _consumed(self, msg):
        # Receive's steps 6-7, once the message's views are released.
        self._held = None
        w = self._hlane
        t = self._tails[w] = (self._tails[w] + _size(msg._n)) & M64
        self._tailw[w].value = t  # after the reads of the message (TSO: loads before a later store)
        self._last = w
        self._wake(self._wsleep[w])

    def _reading(self, op):
        self._usable()
        if self._role != 2:
            raise ValueError("shmring %s: %s needs a reader slot (reader())" % (self.name, op))

    def recv(self, timeout=None):
        """Receive the next message as bytes, waiting while every lane is
        empty, up to timeout seconds (None: forever). EOFError at the end of
        the stream (every writer that claimed a slot closed it), PeerGoneError
        if a writer died. A message from next() not yet released is the one
        received (and released)."""
        me, calls = _get_ident(), self._calls
        try:
            calls.append(me)  # a call in progress (close)
            if timeout is not None:
                timeout = _timeout(self.name, "recv", timeout)
            if self._role != 2 or self._closing:
                self._reading("recv")
            if self._held is not None:
                held = self._held
                msg = bytes(held._inner)  # held._inner lives until release succeeds
                held.release()
                return msg
            w, off, n = self._locate(timeout)
            msg = self._mm[off + 8:off + 8 + n]
            t = self._tails[w] = (self._tails[w] + _size(n)) & M64
            self._tailw[w].value = t  # after the copy
            self._last = w
            self._wake(self._wsleep[w])
            return msg
        finally:
            calls.remove(me)
            if self._closing and not calls:
                self._end_call()

    def next(self, timeout=None):
        """Return the next message in the ring itself, waiting as recv does,
        as a Message: its view is a read-only memoryview of the message,
        valid until release(), which consumes it (a reader that dies before
        leaves it to the next reader of a one-reader ring: at least once).
        Next again before release returns the same Message.

            with r.next() as view:      # released on leaving
                a = numpy.frombuffer(view, numpy.uint8).copy()
        """
        me, calls = _get_ident(), self._calls
        try:
            calls.append(me)  # a call in progress (close)
            if timeout is not None:
                timeout = _timeout(self.name, "next", timeout)
            self._reading("next")
            if self._held is None:
                w, off, n = self._locate(timeout)
                self._held = Message(self, off, n)
                self._hlane = w
            return self._held
        finally:
            calls.remove(me)
            if self._closing and not calls:
                self._end_call()

    def release(self):
        """Release the message from next() (Message.release)."""
        self._reading("release")
        if self._held is None:
            raise ValueError("shmring %s: release: no message held: call next first" % self.name)
        self._held.release()

    def close(self):
        """Release this Ring's slot (a writer's close ends its lane's
        stream) and unmap. A message from next() not yet released stays in
        a one-reader ring for the next reader, a pending reservation is
        dropped; their views are released (BufferError, and nothing closed,
        while something made from one still lives). Closing again does
        nothing.

        close() may be called from another thread or a signal handler while
        a call on this Ring is in progress: that call ends with ValueError
        (closed), at once if it is blocked, unless it had done its work (it
        returns as usual; a Message or Reservation it returns was dropped:
        its view is released). The slot is released and the memory unmapped
        once no call is in progress: close() from another thread returns
        after that; close() from a signal handler that interrupted a call
        on this Ring returns at once, leaving it to that call's return. A
        view held then is released as above, except that something made
        from it does not stop the close: it reads zeros from then on, never
        the ring (and mmap's own descriptor of the ring closes once it
        goes)."""
        if self._forked:
            self._mm = None
            return
        me = _get_ident()
        with self._cv:  # an RLock: a signal handler's close in this thread goes in
            if self._mm is None or me in self._closers:
                return  # closed, or this close interrupted a close in this thread (a signal handler): that one goes on
            self._closers.append(me)
            try:
                if not self._closing:
                    held = self._held
                    if held is not None and not self._calls:  # (with a call in progress, the close's end drops it)
                        if held._state == 0:
                            held._free("close")  # BufferError: nothing closed
                        held._state = 2
                        self._held = None
                    self._closing = True  # stored before the calls are looked at: a call counted after refuses
                    if self._role and self._calls:
                        self._wake(self._sleep)  # a call asleep on it wakes and sees closing
                while self._calls:
                    if me in self._calls:
                        return  # a call of this thread is in progress (this is a signal handler): it ends the close as it returns
                    self._cv.wait()
                self._finish()
            finally:
                self._closers.remove(me)

    def _end_call(self):
        # The end of the last call in progress after a close() that left the
        # rest to it. Errors here are not the call's (it raises its own).
        if self._forked:
            return
        with self._cv:
            if not self._calls:
                try:
                    self._finish()
                except Exception:
                    pass
                self._cv.notify_all()  # a close() in another thread waits for this

    def _finish(self):
        # Close's work, with no call in progress (under self._cv): every step
        # is taken even if an earlier one raises; the error propagates after.
        mm = self._mm
        if mm is None or self._finishing:
            return
        self._finishing = True  # a signal handler's close during this one returns
        try:
            held, self._held = self._held, None
            if held is not None:
                if held._state == 0:
                    held._drop("close")  # where something made from its view lives, the mapping is replaced below
                held._state = 2
            if self._role:
                lock = (LOCK_WRITER if self._role == 1 else LOCK_READER) + self.slot
                try:
                    self._word.value = (self._word.value & ~0xFF) | ST_CLOSED  # the same claim count
                    for s in (self._rsleep if self._role == 1 else self._wsleep):
                        self._wake(s)
                finally:
                    self._role, self.slot = 0, None
                    self._lock(F_OFD_SETLK, fcntl.F_UNLCK, lock)
        finally:
            self._mm = None
            self._finalizer.detach()
            try:
                try:
                    mm.close()
                except BufferError:
                    # Something made from a view lives (a close at the end of
                    # a call, which cannot refuse): anonymous memory takes the
                    # mapping's place; mmap unmaps it and closes its own
                    # descriptor once those go.
                    _anon(self._base, self._size)
            finally:
                fd, self._fd = self._fd, -1
                os.close(fd)

    def unlink(self):
        """Remove the ring's object name (shm_unlink)."""
        _shm_unlink(self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
