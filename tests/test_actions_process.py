import os
import sys
import time

import pytest

from voiced.actions.process import ActionError, run_process


def test_output_is_capped_and_the_child_still_finishes():
    result = run_process([sys.executable, "-c", "import sys; sys.stdout.write('x' * 200000)"],
                         timeout_s=30, max_output_bytes=1000)
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
