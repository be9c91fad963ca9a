"""install-service (dry run, and a real install into a --root image), signals, bounded stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from voiced.ops.install import (
    SOURCE_ROOT,
    InstallError,
    InstallFile,
    MakeDir,
    Note,
    Run,
    Symlink,
    SystemState,
    plan_install,
)
from voiced.ops.signals import SignalRequests

VOICED = Path(sys.executable).parent / "voiced"
UNIT = SOURCE_ROOT / "systemd" / "voiced.service"
FRESH = SystemState(
    user_exists=False,
    user_in_audio=False,
    audio_group_exists=True,
    config_dir_exists=False,
    credentials_dir_exists=False,
    config_exists=False,
    installed_unit=None,
    link_target=None,
    link_is_symlink=False,
    systemd_running=True,
)


def _voiced(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VOICED), *args], capture_output=True, text=True, timeout=120)


def _plan(state: SystemState, executable: Path = Path("/opt/voiced/.venv/bin/voiced"), **kwargs):
    options = {
        "root": Path("/"),
        "executable": executable,
        "unit_source": UNIT,
        "unit_text": UNIT.read_bytes(),
        "example_config": None,
        "start": False,
    } | kwargs
    return plan_install(state, **options)


def test_dry_run_prints_every_step_and_changes_nothing():
    host_files = {p: Path(p).read_bytes() for p in ("/etc/passwd", "/etc/group")}
    before = Path("/etc/voiced").exists()
    result = _voiced("install-service", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("would ") for line in lines)
    text = result.stdout
    if not Path("/etc/systemd/system/voiced.service").exists():
        assert "as /etc/systemd/system/voiced.service (mode 644" in text
    assert "/etc/voiced/voiced.yaml" in text
    assert "enable" in lines[-1] and lines[-1].endswith("voiced.service")
    if "useradd" in text:
        assert "--groups audio" in text and "--shell /usr/sbin/nologin" in text
    assert Path("/etc/voiced").exists() == before
    assert {p: Path(p).read_bytes() for p in host_files} == host_files


def test_plan_for_a_fresh_system():
    steps = _plan(FRESH, start=True)
    argvs = [step.argv for step in steps if isinstance(step, Run)]
    assert argvs[0][:2] == ("useradd", "--system") and argvs[0][-1] == "voiced"
    assert argvs[-2:] == [("systemctl", "daemon-reload"), ("systemctl", "enable", "--now", "voiced.service")]
    assert Symlink(PurePosixPath("/usr/local/bin/voiced"), Path("/opt/voiced/.venv/bin/voiced")) in steps
    assert [step.path for step in steps if isinstance(step, MakeDir)] == [
        PurePosixPath("/etc/voiced"),
        PurePosixPath("/etc/voiced/credentials"),
    ]
    config, unit = [step for step in steps if isinstance(step, InstallFile)]
    assert (config.path, config.mode, config.group) == (PurePosixPath("/etc/voiced/voiced.yaml"), 0o640, "voiced")
    assert config.source is None and config.text.strip().endswith("{}")  # no example: all defaults
    assert (unit.path, unit.source) == (PurePosixPath("/etc/systemd/system/voiced.service"), UNIT)


def test_plan_keeps_what_is_already_right():
    state = replace(
        FRESH,
        user_exists=True,
        user_in_audio=True,
        config_dir_exists=True,
        credentials_dir_exists=True,
        config_exists=True,
        installed_unit=UNIT.read_bytes(),
        link_target=Path("/opt/voiced/.venv/bin/voiced"),
        link_is_symlink=True,
    )
    steps = _plan(state)
    assert [type(step) for step in steps] == [Note, Run, Run]
    assert "voiced.yaml" in steps[0].describe()


def test_plan_repairs_group_membership_and_a_stale_link():
    state = replace(FRESH, user_exists=True, link_target=Path("/srv/old/bin/voiced"), link_is_symlink=True)
    steps = _plan(state)
    assert steps[0] == Run(("usermod", "--append", "--groups", "audio", "voiced"), "add voiced to audio")
    assert any(isinstance(step, Symlink) and step.target == Path("/opt/voiced/.venv/bin/voiced") for step in steps)


def test_plan_refuses_an_executable_the_service_cannot_see():
    with pytest.raises(InstallError, match="ProtectHome"):
        _plan(FRESH, executable=Path("/home/pi/voiced/.venv/bin/voiced"))


def test_offline_system_is_enabled_with_systemctl_root():
    steps = _plan(replace(FRESH, systemd_running=False))
    assert steps[-1].argv == ("systemctl", "--root=/", "enable", "voiced.service")


@pytest.fixture
def image_root(tmp_path):
    """A directory with a copy of the host's account files, as an OS image would have."""
    if os.geteuid() != 0:
        pytest.skip("useradd --prefix and chown need root")
    for tool in ("useradd", "systemctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    etc = tmp_path / "image" / "etc"
    etc.mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy2(Path("/etc") / name, etc / name)
    return tmp_path / "image"


def test_install_into_an_image_root(image_root, tmp_path):
    example = tmp_path / "example.yaml"
    example.write_text("metrics:\n  enabled: true\n")
    host_passwd = Path("/etc/passwd").read_bytes()
    args = ("install-service", "--root", str(image_root), "--executable", str(VOICED), "--example-config", str(example))
    result = _voiced(*args)
    assert result.returncode == 0, result.stdout + result.stderr

    passwd = {line.split(":")[0]: line.split(":") for line in (image_root / "etc/passwd").read_text().splitlines()}
    assert passwd["voiced"][5:] == ["/var/lib/voiced", "/usr/sbin/nologin"]
    groups = {line.split(":")[0]: line.split(":") for line in (image_root / "etc/group").read_text().splitlines()}
    assert "voiced" in groups["audio"][3].split(",")
    config = image_root / "etc/voiced/voiced.yaml"
    assert config.read_text() == example.read_text()
    assert (config.stat().st_mode & 0o777, config.stat().st_gid) == (0o640, int(groups["voiced"][2]))
    assert (image_root / "etc/voiced/credentials").stat().st_mode & 0o777 == 0o700
    assert (image_root / "etc/systemd/system/voiced.service").read_bytes() == UNIT.read_bytes()
    wanted = image_root / "etc/systemd/system/multi-user.target.wants/voiced.service"
    assert os.readlink(wanted) == "/etc/systemd/system/voiced.service"
    assert (image_root / "usr/local/bin/voiced").resolve() == VOICED.resolve()
    assert Path("/etc/passwd").read_bytes() == host_passwd

    config.write_text("# edited by the owner\n")
    again = _voiced(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "useradd" not in again.stdout and "keep: existing /etc/voiced/voiced.yaml" in again.stdout
    assert "voiced.service as" not in again.stdout
    assert config.read_text() == "# edited by the owner\n"


SIGNAL_LOOP = """\
import sys
from voiced.ops.signals import SignalRequests
with SignalRequests() as requests:
    print("ready", flush=True)
    while (request := requests.next(timeout=30)) is not None:
        print(request, flush=True)
        if request == "stop":
            sys.exit(0)
sys.exit(3)
"""


def test_signals_become_requests_for_the_main_loop():
    child = subprocess.Popen([sys.executable, "-c", SIGNAL_LOOP], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGHUP)
        assert child.stdout.readline().strip() == "reload"
        child.send_signal(signal.SIGHUP)
        assert child.stdout.readline().strip() == "reload"
        child.send_signal(signal.SIGTERM)
        assert child.stdout.readline().strip() == "stop"
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.stdout.close()


def test_signal_handlers_are_restored():
    before = signal.getsignal(signal.SIGHUP)
    with SignalRequests():
        assert signal.getsignal(signal.SIGHUP) is not before
    assert signal.getsignal(signal.SIGHUP) is before


def test_plan_installs_the_example_commands_beside_the_example_config():
    example = Path(__file__).resolve().parents[2] / "config" / "voiced.yaml"
    steps = _plan(FRESH, start=False, example_config=example)
    installed = {step.path: step.source for step in steps if isinstance(step, InstallFile)}
    assert installed[PurePosixPath("/etc/voiced/voiced.yaml")] == example
    assert installed[PurePosixPath("/etc/voiced/commands.yaml")] == example.parent / "commands.yaml"
    kept = _plan(replace(FRESH, commands_exist=True), start=False, example_config=example)
    assert PurePosixPath("/etc/voiced/commands.yaml") not in {s.path for s in kept if isinstance(s, InstallFile)}
