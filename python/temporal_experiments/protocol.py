"""The wire side of the trainer protocol (docs/trainer-protocol.md): protocol lines on stdout, log text
on stderr, the interruption flag (SIGTERM/SIGINT handlers and the stdin watcher) and durable file
writes. Standard library only.
"""
from __future__ import annotations

import json
import math
import os
import select
import signal
import stat
import sys
import threading
import time

EXIT_NONRETRYABLE = 3
EXIT_CRASH = 1
#: After stdin reaches EOF (the plugin is gone), the main loop gets this long (seconds) to save and exit.
ORPHAN_GRACE_SECONDS = 2.0
#: Interruptible sleeps are cut into slices this long (seconds), so an interruption is noticed promptly.
SLEEP_SLICE_SECONDS = 0.05


class Fatal(Exception):
    """A non-retryable error: reported with a `fatal` line and exit code 3 (protocol section 4.6)."""


class _Flag:
    """The process-wide interruption flag. Signals are per process, so there is exactly one."""

    requested = False  # read at step boundaries
    reason: str | None = None  # "SIGTERM", "SIGINT", "stdin-eof" or "stdout-broken"
    signum = 0  # the signal that asked, 0 if none
    parent_gone = False  # stdin reached EOF or stdout is broken: nobody reads our lines any more
    stdout_broken = False


FLAG = _Flag()
_log_prefix = "trainer"


def set_log_prefix(prefix: str) -> None:
    global _log_prefix
    _log_prefix = prefix


def request_interrupt(reason: str) -> None:
    """Sets the flag (first reason wins). Safe in a signal handler: no I/O, no locks."""
    if not FLAG.requested:
        FLAG.reason = reason
    FLAG.requested = True


def _on_stop_signal(signum, _frame) -> None:
    # Only set flags here. The training loop acts on them at the next step boundary.
    if not FLAG.requested:
        FLAG.signum = signum
    request_interrupt("SIGTERM" if signum == signal.SIGTERM else "SIGINT")


def install_signal_handlers() -> None:
    """SIGTERM (the plugin's interruption) and SIGINT (Ctrl-C when run by hand) only set the flag."""
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)


def watch_stdin(grace_seconds: float = ORPHAN_GRACE_SECONDS) -> bool:
    """Treats EOF on stdin as "the plugin died": sets the flag, and hard-exits if the loop does not stop.

    Only when stdin is a pipe or socket (what the plugin provides); a terminal or /dev/null is left
    alone so the script can be run by hand. Returns whether it watches.
    """
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False

    def run() -> None:
        # os.read on the raw fd, not sys.stdin: a daemon thread blocked inside a buffered reader can
        # abort the interpreter at shutdown.
        try:
            while True:
                try:
                    chunk = os.read(0, 65536)
                except BlockingIOError:
                    select.select([0], [], [])
                    continue
                if not chunk:
                    break  # EOF: the write end is closed, i.e. the plugin process is gone
        except OSError:
            pass
        FLAG.parent_gone = True
        request_interrupt("stdin-eof")
        time.sleep(grace_seconds)
        # Still alive: the main loop is stuck somewhere. Do not outlive the plugin.
        try:
            os.write(2, f"{_log_prefix}: stdin closed and the training loop did not stop; exiting\n".encode())
        except OSError:
            pass
        os._exit(EXIT_CRASH)

    threading.Thread(target=run, name="stdin-watch", daemon=True).start()
    return True


def _silence_fd(fd: int) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def emit(message: dict) -> None:
    """Writes one protocol line to stdout and flushes it. A broken pipe means the plugin is gone."""
    if FLAG.stdout_broken:
        return
    line = json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n"
    write_stdout(line)


def write_stdout(text: str) -> None:
    """Raw text on stdout (protocol lines go through emit). EPIPE sets the flag instead of raising."""
    if FLAG.stdout_broken:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        FLAG.stdout_broken = True
        FLAG.parent_gone = True
        request_interrupt("stdout-broken")
        _silence_fd(sys.stdout.fileno())  # so the interpreter's final flush does not fail too


def log(text: str) -> None:
    """Human-readable log line on stderr (the plugin logs it; the last lines go into failure messages)."""
    try:
        sys.stderr.write(f"{_log_prefix}: {text}\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        _silence_fd(2)


def interruptible_sleep(seconds: float) -> None:
    """Sleeps up to `seconds`, returning early once the flag is set."""
    deadline = time.monotonic() + seconds
    while not FLAG.requested:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLEEP_SLICE_SECONDS))


def _fsync_dir(directory: str) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_file_atomically(directory: str, name: str, data: bytes) -> str:
    """Protocol section 5: temp file in the same directory, flush + fsync, rename over the final
    name, fsync the directory. Returns the final path. On failure the temp file is removed."""
    final = os.path.join(directory, name)
    # The `.tmp-` prefix: the plugin never adopts such files and deletes stale ones left by a kill.
    tmp = os.path.join(directory, f".tmp-{name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return final


def replace_symlink(directory: str, name: str, target: str) -> None:
    """Points `directory/name` at `target` (relative), atomically: a temp link renamed over it."""
    tmp = os.path.join(directory, f".tmp-{name}-{os.getpid()}")
    try:
        _unlink_quietly(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, os.path.join(directory, name))
        _fsync_dir(directory)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def describe(value) -> str:
    """How a received value is named in error messages (same wording as the plugin's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"number {json.dumps(value) if isinstance(value, int) or math.isfinite(value) else value}"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:60] + "\u2026")
    if isinstance(value, list):
        return "an array"
    return "an object"
