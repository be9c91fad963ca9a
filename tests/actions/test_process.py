import json
import os
import sys
import tempfile
import threading
import time

import pytest

from voiced.actions.errors import ActionError
from voiced.actions.process import CHILD_VARIABLES, RunningPrograms, child_environment, run_process
from voiced.testing import action_supervisors


def test_output_is_capped_and_the_child_still_finishes():
    result = run_process(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 200000)"], timeout_s=30, max_output_bytes=1000
    )
    assert result.returncode == 0
    assert result.stdout == b"x" * 1000
    assert result.truncated


def test_hanging_process_group_is_killed_at_timeout(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # the child starts a grandchild that would outlive it; both must die at the timeout
    script = (
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(600)"
    )
    with pytest.raises(ActionError, match="timeout"):
        run_process([sys.executable, "-c", script], timeout_s=1.5)
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("grandchild still alive after the timeout")


def test_missing_program_is_an_action_error():
    with pytest.raises(ActionError, match="cannot start"):
        run_process(["/nonexistent/voiced-test-program"], timeout_s=5)


def test_a_program_that_exits_without_reading_its_input_is_fine():
    # more than a pipe buffer of stdin to a program that is already gone: no BrokenPipeError
    for _ in range(5):
        result = run_process([sys.executable, "-c", "pass"], stdin=b"x" * 1_000_000, timeout_s=10)
        assert result.returncode == 0


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _pids(stderr: bytes) -> list[int]:
    return [int(word) for word in stderr.split() if word.isdigit()]


def test_a_background_job_does_not_outlive_its_program():
    """`yes & exit 0`: the program is gone at once, its job keeps the output pipe busy. It is
    killed when the program exits, so the call returns and nothing keeps running."""
    result = run_process(["sh", "-c", "yes & echo $! >&2; exit 0"], timeout_s=60, max_output_bytes=1000)
    assert result.returncode == 0
    [job] = _pids(result.stderr)
    assert not _alive(job)


def test_setsid_children_are_taken_down_too():
    """A new session leaves the process group; the supervisor (a child subreaper) still has it."""
    result = run_process(["sh", "-c", "setsid sleep 1000 & echo $! >&2; exit 0"], timeout_s=60)
    [escaped] = _pids(result.stderr)
    assert result.returncode == 0 and not _alive(escaped)
    # ... at a timeout as well; the pid comes through a file, output is not read after a kill
    with tempfile.NamedTemporaryFile("r") as pidfile:
        with pytest.raises(ActionError, match="killed after 1 s timeout"):
            run_process(["sh", "-c", f"setsid sleep 1000 & echo $! > {pidfile.name}; sleep 1000"], timeout_s=1)
        assert not _alive(int(pidfile.read()))


def test_programs_get_a_minimal_environment(monkeypatch):
    monkeypatch.setenv("HA_AUTHORIZATION", "Bearer secret")
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    seen = json.loads(run_process([sys.executable, "-c", code], timeout_s=30).stdout)
    assert "HA_AUTHORIZATION" not in seen and seen["LC_TIME"] == "C.UTF-8"
    assert set(seen) <= {*CHILD_VARIABLES, "LC_TIME", "LC_CTYPE"}  # (Python may add LC_CTYPE itself)
    given = json.loads(
        run_process(
            [sys.executable, "-c", code], timeout_s=30, env=child_environment({"EXTRA": "1"}, ("HA_AUTHORIZATION",))
        ).stdout
    )
    assert given["EXTRA"] == "1" and given["HA_AUTHORIZATION"] == "Bearer secret"


def test_a_signal_death_is_reported_as_such():
    result = run_process(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"], timeout_s=30
    )
    assert result.returncode == -11


def test_stop_all_ends_running_programs_with_their_children(tmp_path):
    programs = RunningPrograms()
    pidfile = tmp_path / "pid"
    results = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_process(
                ["sh", "-c", f"setsid sleep 1000 & echo $! > {pidfile}; sleep 1000"], timeout_s=600, programs=programs
            )
        )
    )
    worker.start()
    while not (pidfile.exists() and pidfile.read_text().strip()):  # running: now stop it
        time.sleep(0.01)
    programs.stop_all()
    worker.join(30)
    assert not worker.is_alive() and results[0].returncode == -9 and len(programs) == 0
    assert not _alive(int(pidfile.read_text()))


def test_a_spare_supervisor_waits_for_the_next_program_and_close_ends_it():
    others = action_supervisors()  # (of runners other tests left to the garbage collector)
    programs = RunningPrograms(keep_spare=True)
    spare = programs.spare_ready(60)  # started with it: the first program is quick too
    assert spare in action_supervisors() - others
    ppid = "import os; print(os.getppid())"
    first = int(run_process([sys.executable, "-c", ppid], timeout_s=30, programs=programs).stdout)
    assert first == spare  # ran in the supervisor started before it was asked for
    next_spare = programs.spare_ready(60)
    assert next_spare not in (None, spare) and not _alive(first)
    programs.close()
    assert not action_supervisors() - others
    assert run_process(["true"], timeout_s=30, programs=programs).returncode == 0  # starts its own now
    assert not action_supervisors() - others


def test_a_spare_killed_while_waiting_is_replaced():
    programs = RunningPrograms(keep_spare=True)
    spare = programs.spare_ready(60)
    assert spare is not None
    os.kill(spare, 9)
    while _alive(spare):
        time.sleep(0.01)
    assert run_process(["sh", "-c", "exit 4"], timeout_s=30, programs=programs).returncode == 4
    programs.close()


def test_the_program_gets_its_own_environment_cwd_and_path(tmp_path):
    """A spare supervisor was started with another environment: the program's PATH, variables
    and directory are the ones asked for, not the supervisor's."""
    tool = tmp_path / "bin" / "voiced-test-tool"
    tool.parent.mkdir()
    tool.write_text('#!/bin/sh\necho "$(pwd) $ONLY_HERE"\n')
    tool.chmod(0o755)
    programs = RunningPrograms(keep_spare=True)
    assert programs.spare_ready(60)
    env = {"PATH": f"{tool.parent}:/usr/bin:/bin", "ONLY_HERE": "yes"}
    result = run_process(["voiced-test-tool"], env=env, cwd=tmp_path, timeout_s=30, programs=programs)
    assert result.stdout.decode().split() == [str(tmp_path), "yes"]
    with pytest.raises(ActionError, match="cannot start 'voiced-test-tool': No such file"):
        run_process(["voiced-test-tool"], timeout_s=30, programs=programs)  # not on the default PATH
    with pytest.raises(ActionError, match="cannot start 'true': No such file"):
        run_process(["true"], cwd=tmp_path / "missing", timeout_s=30, programs=programs)
    programs.close()


def test_a_program_asked_for_after_stop_all_never_starts(tmp_path):
    others = action_supervisors()
    programs = RunningPrograms(keep_spare=True)
    programs.stop_all()
    marker = tmp_path / "ran"
    with pytest.raises(ActionError, match="not started: the actions are being stopped"):
        run_process(["touch", str(marker)], timeout_s=30, programs=programs)
    assert not marker.exists() and not action_supervisors() - others


def test_a_spare_outlives_the_thread_that_wanted_it():
    """The spare started after one worker's program runs another worker's program; the first
    worker ends meanwhile (a daemon stopping: its idle workers end). The program is not killed
    with it (a supervisor's parent-death signal follows the thread that started it)."""
    programs = RunningPrograms(keep_spare=True)
    started = threading.Event()
    with tempfile.TemporaryDirectory() as directory:
        flag = os.path.join(directory, "running")
        code = f"import os, time; open({flag!r}, 'w').close(); time.sleep(1); print('done')"
        results = []

        def first_worker():
            run_process(["true"], timeout_s=30, programs=programs)  # wants the next spare
            started.set()
            while not os.path.exists(flag):  # the other worker's program runs: now end
                time.sleep(0.01)

        first = threading.Thread(target=first_worker)
        first.start()
        started.wait(60)
        results.append(run_process([sys.executable, "-c", code], timeout_s=60, programs=programs))
        first.join(60)
    programs.close()
    assert (results[0].returncode, results[0].stdout) == (0, b"done\n")


def test_a_nul_byte_or_a_bad_variable_name_is_a_clear_error_and_costs_no_supervisor():
    """A transcript is untrusted: `$raw_text` may carry a NUL byte, which exec cannot pass."""
    programs = RunningPrograms(keep_spare=True)
    spare = programs.spare_ready(60)
    for argv, env, reason in (
        (["echo", "a\0b"], None, "a NUL byte in its arguments or environment"),
        (["echo", "x"], {"PATH": "/usr/bin:/bin", "A": "a\0b"}, "a NUL byte in its arguments or environment"),
        (["echo", "x"], {"PATH": "/usr/bin:/bin", "A=B": "x"}, "bad environment variable name 'A=B'"),
    ):
        with pytest.raises(ActionError, match=f"cannot start 'echo': {reason}"):
            run_process(argv, env=env, timeout_s=30, programs=programs)
    assert programs.spare_ready(60) == spare  # still waiting for a program it can run
    assert run_process(["echo", "x"], timeout_s=30, programs=programs).stdout == b"x\n"
    programs.close()
