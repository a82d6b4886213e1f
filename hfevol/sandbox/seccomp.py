"""A deny-list seccomp filter through a small ctypes binding to the system ``libseccomp.so.2``.

Standard library only: it runs inside the sandbox, under ``python -S``, next to ``runner.py``.
The library is opened by its soname (no ``ctypes.util.find_library``, which needs ``ldconfig``
inside the sandbox). The filter is built once in the zygote (:func:`build`) and loaded by each
forked child (:func:`load`) before it reads untrusted code; from then on every listed system
call fails with ``EPERM``, even for root. Not importable from hfevol: use it through the runner.
"""

from __future__ import annotations

import ctypes
import errno
import os

SONAME = "libseccomp.so.2"
_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_CMP_MASKED_EQ = 7

# Denied outright. Names unknown to this kernel or architecture are skipped.
DENIED = (
    # processes, threads, programs
    "fork",
    "vfork",
    "clone",
    "clone3",
    "execve",
    "execveat",
    # network and local sockets
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "sendto",
    "sendmsg",
    "sendmmsg",
    # other processes, signals, debugging
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    # changing the file system
    "creat",
    "openat2",
    "open_by_handle_at",
    "name_to_handle_at",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "ftruncate",
    "fallocate",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "mount",
    "umount2",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "pivot_root",
    "chroot",
    "swapon",
    "swapoff",
    # limits, sessions, identity, namespaces
    "setrlimit",
    "prlimit64",
    "setsid",
    "setpgid",
    "unshare",
    "setns",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "capset",
    # kernel interfaces with a history of escapes
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "acct",
    "quotactl",
    "ioperm",
    "iopl",
)
# Opening for writing: each flag bit is denied on its own (arg & bit == bit).
WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)
OPEN_FLAG_ARG = (("open", 1), ("openat", 2))


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class SeccompUnavailable(Exception):
    """libseccomp cannot be opened, or the filter cannot be built."""


class Filter:
    """A built, not yet loaded filter."""

    def __init__(self, lib: ctypes.CDLL, ctx: int) -> None:
        self._lib = lib
        self._ctx = ctx

    def load(self) -> int:
        """Install the filter in the calling process (irreversible). Returns 0 or a negative errno."""
        return int(self._lib.seccomp_load(ctypes.c_void_p(self._ctx)))


def _library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(SONAME, use_errno=True)
    except OSError as error:
        raise SeccompUnavailable(f"cannot open {SONAME}: {error}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def build() -> Filter:
    """The deny-list filter: everything allowed except :data:`DENIED` and write-opens (``EPERM``)."""
    lib = _library()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    deny = _ACT_ERRNO | errno.EPERM

    def rule(name: str, cmps: list[_ArgCmp]) -> None:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not on this architecture (e.g. `open` on aarch64)
            return
        array = (_ArgCmp * len(cmps))(*cmps) if cmps else None
        rc = lib.seccomp_rule_add_array(ctx, deny, number, len(cmps), array)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_rule_add({name}) failed: {os.strerror(-rc)}")

    for name in DENIED:
        rule(name, [])
    for name, arg in OPEN_FLAG_ARG:
        for bit in WRITE_FLAGS:
            rule(name, [_ArgCmp(arg, _CMP_MASKED_EQ, bit, bit)])
    return Filter(lib, ctx)
