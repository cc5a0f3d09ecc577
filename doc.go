// Package shm gives Go programs POSIX shared memory with exactly the C
// library's semantics. It calls libc's shm_open, shm_unlink, fallocate,
// ftruncate, mmap, msync and munmap through a small C shim, one cgo crossing
// per operation, and hands the mapping to Go as a []byte.
//
// A Go program and a C, C++, Python (multiprocessing.shared_memory) or Rust
// program that name the same object share the same bytes:
//
//	s, err := shm.Create("/demo", 4096) // shm_open(O_CREAT|O_EXCL|O_RDWR, 0600)
//	if err != nil { ... }
//	defer s.Close()  // munmap + close; never unlinks
//	defer s.Unlink() // shm_unlink: the name goes, the memory stays mapped
//	copy(s.Bytes(), "hello")
//
// and in another process
//
//	s, err := shm.Open("/demo")
//
// # Names
//
// Names go to libc unchanged: what "/x", "x" or "a/b" mean is what the C
// library makes of them (glibc and musl strip leading slashes and refuse a
// slash inside). The one exception is a name holding a NUL byte, which is
// EINVAL before any C call, since C would cut it short and act on another
// object.
//
// # Errors
//
// Errors are *fs.PathError with Path the name and Err the syscall.Errno
// (or an error wrapping it), so errors.Is(err, fs.ErrExist),
// fs.ErrNotExist, fs.ErrPermission or syscall.ENOSPC work. Bad arguments
// are errors wrapping syscall.EINVAL, never panics and never silent clamps;
// after Close, errors wrap fs.ErrClosed.
//
// Op follows one rule. A function or method that stands for one libc or
// kernel call names that call in every error it returns, a bad argument
// and fs.ErrClosed included: "fchmod" for Mapping.Chmod, "fchown" for
// Mapping.Chown, "fstat" for Mapping.Stat, "msync" for Sync and
// SyncRange, "fcntl" for File and Seals, "futex" for Wait and Wake,
// "sem_post" for Post, "shm_unlink" for Unlink. One that makes several
// calls, or none, names the call that failed ("shm_open", "fallocate",
// "mmap", "link", ...) and otherwise itself, in lower case: "openfile",
// "mapfile", "createtemp", "creatememfd", "opensemaphorewith", "chmod",
// "chown", "truncate", "remap", "addseals", "readat", "writeat", "uint32",
// "uint64", "close".
//
// # Safety
//
// A page of a shared mapping can vanish: another process shrinks the
// object, or a full /dev/shm cannot supply a page of a sparse object.
// Touching it raises SIGBUS, which kills a Go program. This package
// reserves every page when it creates an object (a full /dev/shm is ENOSPC
// from Create, and nothing is left behind), and ReadAt and WriteAt turn the
// fault into ErrFault. Bytes is the fast, unguarded path.
//
// A new object is published atomically: it is made under a random
// temporary name, reserved and mapped, then renamed to its real name
// (renameat2 RENAME_NOREPLACE), which fails with EEXIST exactly as O_EXCL
// would, and leaves /proc showing the object by its real name, as
// shm_open does. Another process never sees a
// half-made object, and a failed Create removes only its temporary name,
// never another process's object of the same name.
//
// Only regular files are objects: a FIFO, directory or socket under a name
// is an error, and opening never blocks.
//
// # Descriptors and memfd
//
// CreateMemfd makes an object with no name (memfd_create), reserved and
// sealed so that no process can ever change its size: its Bytes can never
// fault from truncation, and nothing is left behind. Having no name, it is
// a Mapping, not a Segment: it has no Name to mistake for an object's and
// no Unlink. Hand it, or a named Segment, to another process with File
// (exec.Cmd's ExtraFiles, or a Unix socket with syscall.UnixRights); the
// receiver maps the descriptor with MapFile, which gives a Mapping too:
// everything but a name that a Segment has (a Segment is a Mapping with a
// name). Seals and ShrinkSealed tell an object's seals; AddSeals adds
// some, for example SealWrite for a read-only hand-off.
//
// # Lifecycle
//
// List and Objects show what exists (the regular files of Dir, /dev/shm
// for glibc 2.34 and later and musl; semaphores left out), Stat
// describes an object, and Holders finds the processes that have it open or
// mapped, by device and inode as fuser does. Mapping.Chmod and
// Mapping.Chown set the exact mode and the owner; Lstat, Chmod and Chown
// describe and change an object by name, needing no read permission on it
// (as lstat, chmod(1) and chown(1)). Mapping.Truncate resizes
// the object, reserving what it grows by, and this process's mapping;
// Mapping.Remap follows a resize made elsewhere. The command's
// "shm rm -stale" removes the objects nobody holds.
//
// # Coordination
//
// Two standard ways to wait for another process, both shared with C and
// Python peers: named POSIX semaphores (Semaphore, libc's sem_open family)
// and futex words of a mapping (Uint32 and Uint64 give an aligned word for
// sync/atomic; Wait and Wake are the Linux shared futex). Waits honour a
// context: a deadline is exact, and cancellation and Close end a wait at
// once, by a wake-up of that wait alone, whatever the program does with
// its signals; a waiting goroutine costs no CPU until something happens.
//
// # Locks
//
// Mapping.Mutex gives a lock between processes in MutexSize bytes of a
// mapping, held by a process (not a thread), shared with C through
// c/shmmutex.h. When its holder dies, the next Lock or TryLock takes it
// and reports ErrOwnerDead; a holder's life is asked of the kernel (an
// open-file-description lock the holder keeps on a byte of the object),
// never judged from a pid, so pid reuse and pid namespaces do not fool it.
// A process keeps that byte lock, and a descriptor for it, while it has a
// Mapping of the object open from which it made a Mutex; a lock it holds
// when the last such Mapping closes is taken by the next locker with
// ErrOwnerDead. c/LAYOUT.md specifies the layout.
//
// # Concurrency
//
// A Segment, Mapping or Semaphore is safe for concurrent use by its
// methods. Close waits for ReadAt, WriteAt, Sync and Wait in flight, then
// they return errors wrapping fs.ErrClosed; Truncate and Remap wait for
// them too.
package shm
