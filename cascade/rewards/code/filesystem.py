"""What of the host a sandboxed program sees: the interpreter and the system libraries, nothing else.

Binding the host's `/` read-only would show the program every world-readable file: the
repository, the offline benchmark cache with its reference solutions and tests, other users'
datasets, `/var/tmp`. So the sandbox's root is empty and gets, read-only: `/usr/bin` and
`/usr/lib*` (the dynamic loader, libc, the interpreter's shared libraries), the interpreter's
own binary and standard library where they live elsewhere (a pyenv or conda build), and
`/etc/ld.so.cache`. Every Python package directory inside those (`site-packages`,
`dist-packages`: where datasets ship inside packages) is covered by an empty read-only tmpfs.
Writable space is only the size-capped `/tmp` and `/dev/shm` that the sandbox adds.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from functools import lru_cache

SYSTEM_DIRS = ("/usr/bin", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32")
TOP_LEVEL = ("/bin", "/lib", "/lib64", "/sbin")
ETC_FILES = ("/etc/ld.so.cache",)
_PROBE = ("import json, sys, sysconfig; p = sysconfig.get_paths(); v = sysconfig.get_config_var; "
          "print(json.dumps([sys.executable, p['stdlib'], p['platstdlib'], v('LIBDIR') or '', "
          "v('LDLIBRARY') or '', bool(v('Py_ENABLE_SHARED'))]))")


@lru_cache(maxsize=None)
def interpreter_paths(python: str) -> tuple[str, tuple[str, ...]]:
    """(the interpreter's real path, the paths it needs to start with -I -S)."""
    out = subprocess.run([python, "-I", "-S", "-c", _PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    exe, stdlib, platstdlib, libdir, ldlibrary, shared = json.loads(out)
    exe = os.path.realpath(exe)
    paths = {exe, os.path.realpath(stdlib), os.path.realpath(platstdlib)}
    if shared and ldlibrary:
        paths.update(os.path.realpath(p) for p in glob.glob(os.path.join(libdir, ldlibrary + "*")))
    return exe, tuple(sorted(p for p in paths if os.path.exists(p)))


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _package_dirs(roots: list[str]) -> list[str]:
    found: set[str] = set()
    for root in roots:
        for pattern in ("python3*/site-packages", "python3*/dist-packages", "python3/dist-packages",
                        "site-packages", "dist-packages"):
            found.update(d for d in glob.glob(os.path.join(root, pattern)) if os.path.isdir(d)
                         and not os.path.islink(d))
    return sorted(found)


def bwrap_mounts(python: str) -> tuple[str, list[str]]:
    """(the interpreter path to run inside, bwrap arguments building the sandbox's file system)."""
    exe, needed = interpreter_paths(python)
    args: list[str] = []
    roots = [d for d in SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    for d in roots:
        args += ["--ro-bind", d, d]
    for top in TOP_LEVEL:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            roots.append(top)
    extra = [p for p in needed if not _covered(p, roots)]
    for p in extra:
        args += ["--ro-bind", p, p]
    for d in _package_dirs(roots + [p for p in extra if os.path.isdir(p)]):
        args += ["--tmpfs", d, "--remount-ro", d]
    for f in ETC_FILES:
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    return exe, args
