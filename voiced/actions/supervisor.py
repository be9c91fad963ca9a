"""Run one program of an action and take down everything it started, when it ends or is stopped.

A process group alone does not hold an action: `setsid` (or a daemonizing program) leaves
it, and a background job (`yes & exit 0`) outlives the program it came from. So each action
runs under this small supervisor (stdlib only, started as `python -I -S supervisor.py`):

- it is a child subreaper (PR_SET_CHILD_SUBREAPER), so every orphan the program leaves,
  `setsid` or not, becomes its child instead of init's;
- it starts the program in a process group of its own and waits for it, reaping orphans;
- when the program exits, or the supervisor gets SIGTERM (the action's timeout, the daemon
  stopping) or its parent dies (PR_SET_PDEATHSIG), it kills the group and every remaining
  descendant, then reports on its status pipe: `exit <code>` (negative: killed by that
  signal) or `error <errno>` when the program could not be started.

Usage: python -I -S supervisor.py STATUS_FD PARENT_PID -- PROGRAM [ARGS...]
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


class Stop(Exception):
    pass


def _stop(signum, frame):
    raise Stop


def _children():
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as listing:
            return [int(pid) for pid in listing.read().split()]
    except OSError:
        return []


def kill_descendants(group):
    """SIGKILL the program's group, then every child left (orphans come to us, so killing one
    hands its own children over): until none is left."""
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
    while children := _children():
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main(argv):
    status_fd, parent, program = int(argv[1]), int(argv[2]), argv[4:]
    os.set_inheritable(status_fd, False)  # a program holding it would hide the supervisor's end
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the daemon died before the line above: nobody to work for
        return
    try:
        pid = os.posix_spawnp(program[0], program, os.environ, setpgroup=0)
    except OSError as exc:
        os.write(status_fd, f"error {exc.errno}\n".encode())
        return
    code = -signal.SIGKILL
    try:
        while True:
            reaped, status = os.waitpid(-1, 0)
            if reaped == pid:
                code = os.waitstatus_to_exitcode(status)
                break
    except Stop:
        pass
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second request must not cut the cleanup short
        kill_descendants(pid)
        os.write(status_fd, f"exit {code}\n".encode())


if __name__ == "__main__":
    main(sys.argv)
