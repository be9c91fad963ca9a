"""Run one program of an action and take down everything it started, when it ends or is stopped.

A process group alone does not hold an action: `setsid` (or a daemonizing program) leaves
it, and a background job (`yes & exit 0`) outlives the program it came from. So each action
runs under this small supervisor (stdlib only, started as `python -I -S supervisor.py`):

- it is started ahead of time (the interpreter takes ~25 ms to start, longer than most
  programs run) and waits for its program on the request pipe: `marshal` of (argv, env, cwd),
  then end of file; an end of file alone dismisses it;
- it is a child subreaper (PR_SET_CHILD_SUBREAPER), so every orphan the program leaves,
  `setsid` or not, becomes its child instead of init's;
- it starts the program in a process group of its own and waits for it, reaping orphans;
- when the program exits, or the supervisor gets SIGTERM (the action's timeout, the daemon
  stopping) or its parent dies (PR_SET_PDEATHSIG), it kills the group and every remaining
  descendant, then reports on its status pipe: `exit <code>` (negative: killed by that
  signal) or `error <errno>` when the program could not be started.

Usage: python -I -S supervisor.py STATUS_FD REQUEST_FD PARENT_PID
"""

import ctypes
import marshal
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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


def _request(request_fd):
    """(argv, env, cwd) from the request pipe; None when it closes empty (dismissed)."""
    data = bytearray()
    while chunk := os.read(request_fd, 65536):
        data += chunk
    os.close(request_fd)
    return marshal.loads(data) if data else None


def _spawn(program, env, cwd):
    if cwd is not None:
        os.chdir(cwd)
    # posix_spawnp looks the program up in this process's PATH: make it the program's
    os.environ.clear()
    os.environ.update(env)
    return os.posix_spawnp(program[0], program, env, setpgroup=0, setsigmask=())  # its own mask: none blocked


def main(argv):
    status_fd, request_fd, parent = int(argv[1]), int(argv[2]), int(argv[3])
    os.set_inheritable(status_fd, False)  # a program holding it would hide the supervisor's end
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for signum in STOPPING:
        signal.signal(signum, _stop)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the daemon died before the line above: nobody to work for
        return
    try:
        request = _request(request_fd)
    except Stop:  # stopped while waiting: nothing was started
        return
    if request is None:
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)  # a stop now must find the program's pid known
    try:
        pid = _spawn(*request)
    except OSError as exc:
        os.write(status_fd, f"error {exc.errno}\n".encode())
        return
    code = -signal.SIGKILL
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)  # a stop that came meanwhile is raised here
        while True:
            reaped, status = os.waitpid(-1, 0)
            if reaped == pid:
                code = os.waitstatus_to_exitcode(status)
                break
    except Stop:
        pass
    finally:
        for signum in STOPPING:
            signal.signal(signum, signal.SIG_IGN)  # a second request must not cut the cleanup short
        kill_descendants(pid)
        os.write(status_fd, f"exit {code}\n".encode())


if __name__ == "__main__":
    main(sys.argv)
    os._exit(0)  # nothing to flush; the interpreter's teardown would cost every action ~5 ms
