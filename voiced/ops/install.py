"""`voiced install-service`: voiced as an installed systemd service.

install-service turns the shipped unit into an installed, enabled service: a system user
`voiced` in the `audio` group, /etc/voiced/ with the example config (never overwritten)
and a root-only credentials directory, /usr/local/bin/voiced pointing at this installation
(the unit's ExecStart, so the unit is installed verbatim, as CI verified it), the unit in
/etc/systemd/system/, enabled. The steps are planned first from the probed state of the
system (pure: `plan_install`), then printed (--dry-run) or applied. --root DIR installs into
an image or a chroot instead: useradd --prefix and systemctl --root work on DIR's files.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout: systemd/ and config/
UNITS = {"voiced": "voiced.service", "serve": "voiced-serve.service"}
USER = "voiced"
CONFIG_DIR = PurePosixPath("/etc/voiced")
CONFIG_PATH = CONFIG_DIR / "voiced.yaml"
COMMANDS_PATH = CONFIG_DIR / "commands.yaml"  # the example config names it, relative to itself
CREDENTIALS_DIR = CONFIG_DIR / "credentials"
EXECUTABLE_LINK = PurePosixPath("/usr/local/bin/voiced")
UNIT_DIR = PurePosixPath("/etc/systemd/system")
# ProtectHome=yes hides these from the service: an executable there cannot start
HIDDEN_PREFIXES = ("/home/", "/root/", "/run/user/")
MINIMAL_CONFIG = "# voiced configuration: every section is optional (see README)\n{}\n"


# ---- install-service: plan ---------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    why: str

    def describe(self) -> str:
        return f"{self.why}: {shlex.join(self.argv)}"


@dataclass(frozen=True)
class MakeDir:
    path: PurePosixPath
    mode: int

    def describe(self) -> str:
        return f"create directory {self.path} (mode {self.mode:o}, owner root)"


@dataclass(frozen=True)
class InstallFile:
    path: PurePosixPath
    mode: int
    group: str
    source: Path | None = None  # None: write `text`
    text: str = ""

    def describe(self) -> str:
        what = str(self.source) if self.source else "a minimal config (all defaults)"
        return f"install {what} as {self.path} (mode {self.mode:o}, owner root:{self.group})"


@dataclass(frozen=True)
class Symlink:
    path: PurePosixPath
    target: Path

    def describe(self) -> str:
        return f"link {self.path} -> {self.target}"


@dataclass(frozen=True)
class Note:
    text: str

    def describe(self) -> str:
        return f"keep: {self.text}"


Step = Run | MakeDir | InstallFile | Symlink | Note


@dataclass(frozen=True)
class SystemState:
    """What install-service found on the target system."""

    user_exists: bool
    user_in_audio: bool
    audio_group_exists: bool
    config_dir_exists: bool
    credentials_dir_exists: bool
    config_exists: bool
    installed_unit: bytes | None  # content of the unit already installed
    link_target: Path | None  # what /usr/local/bin/voiced resolves to
    link_is_symlink: bool
    systemd_running: bool
    commands_exist: bool = False


class InstallError(Exception):
    pass


def plan_install(
    state: SystemState,
    *,
    root: Path,
    executable: Path,
    unit_source: Path,
    unit_text: bytes,
    example_config: Path | None,
    start: bool,
) -> list[Step]:
    """The steps that bring the system from `state` to an installed, enabled service."""
    if str(executable).startswith(HIDDEN_PREFIXES):
        raise InstallError(
            f"{executable} is under a home directory, which the service cannot see "
            "(ProtectHome=yes): install voiced under /opt or /usr/local"
        )
    prefix = () if root == Path("/") else ("--prefix", str(root))
    unit_name = unit_source.name
    steps: list[Step] = []
    if not state.audio_group_exists:
        steps.append(Run(("groupadd", *prefix, "--system", "audio"), "create group audio"))
    if not state.user_exists:
        steps.append(
            Run(
                (
                    "useradd",
                    *prefix,
                    "--system",
                    "--user-group",
                    "--groups",
                    "audio",
                    "--home-dir",
                    "/var/lib/voiced",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "voiced voice-command daemon",
                    USER,
                ),
                f"create system user {USER}",
            )
        )
    elif not state.user_in_audio:
        steps.append(Run(("usermod", *prefix, "--append", "--groups", "audio", USER), f"add {USER} to audio"))
    if not state.config_dir_exists:
        steps.append(MakeDir(CONFIG_DIR, 0o755))
    if not state.credentials_dir_exists:
        steps.append(MakeDir(CREDENTIALS_DIR, 0o700))
    if state.config_exists:
        steps.append(Note(f"existing {CONFIG_PATH}"))
    else:
        steps.append(InstallFile(CONFIG_PATH, 0o640, USER, example_config, "" if example_config else MINIMAL_CONFIG))
    example_commands = example_config.parent / "commands.yaml" if example_config else None
    if example_commands is not None and example_commands.is_file() and not state.commands_exist:
        steps.append(InstallFile(COMMANDS_PATH, 0o640, USER, example_commands))
    if state.link_target is None or (state.link_is_symlink and state.link_target != executable):
        steps.append(Symlink(EXECUTABLE_LINK, executable))
    elif state.link_target != executable:
        steps.append(Note(f"{EXECUTABLE_LINK} is a file of another installation, not {executable}"))
    if state.installed_unit != unit_text:
        steps.append(InstallFile(UNIT_DIR / unit_name, 0o644, "root", unit_source))
    if state.systemd_running and root == Path("/"):
        steps.append(Run(("systemctl", "daemon-reload"), "reload systemd"))
        steps.append(
            Run(
                ("systemctl", "enable", *(["--now"] if start else []), unit_name),
                "enable and start" if start else "enable at boot",
            )
        )
    else:
        steps.append(Run(("systemctl", f"--root={root}", "enable", unit_name), "enable at boot (offline)"))
    return steps


# ---- install-service: probe and apply ----------------------------------------------------


def _under(root: Path, path: PurePosixPath) -> Path:
    return root / path.relative_to("/")


def _group_members(root: Path) -> dict[str, tuple[int, set[str]]]:
    """name -> (gid, members) from root's /etc/group (the host's NSS when root is /)."""
    if root == Path("/"):
        return {g.gr_name: (g.gr_gid, set(g.gr_mem)) for g in grp.getgrall()}
    groups = {}
    for line in _under(root, PurePosixPath("/etc/group")).read_text().splitlines():
        name, _, gid, members = ([*line.split(":"), "", "", ""])[:4]
        groups[name] = (int(gid), set(filter(None, members.split(","))))
    return groups


def _user_exists(root: Path) -> bool:
    if root == Path("/"):
        try:
            pwd.getpwnam(USER)
            return True
        except KeyError:
            return False
    passwd = _under(root, PurePosixPath("/etc/passwd")).read_text().splitlines()
    return any(line.split(":", 1)[0] == USER for line in passwd)


def probe(root: Path, unit_name: str) -> SystemState:
    groups = _group_members(root)
    link = _under(root, EXECUTABLE_LINK)
    unit = _under(root, UNIT_DIR / unit_name)
    return SystemState(
        user_exists=_user_exists(root),
        user_in_audio=USER in groups.get("audio", (0, set()))[1],
        audio_group_exists="audio" in groups,
        config_dir_exists=_under(root, CONFIG_DIR).is_dir(),
        credentials_dir_exists=_under(root, CREDENTIALS_DIR).is_dir(),
        config_exists=_under(root, CONFIG_PATH).exists(),
        commands_exist=_under(root, COMMANDS_PATH).exists(),
        installed_unit=unit.read_bytes() if unit.is_file() else None,
        link_target=link.resolve() if link.exists() else None,
        link_is_symlink=link.is_symlink(),
        systemd_running=Path("/run/systemd/system").is_dir(),
    )


def apply(step: Step, root: Path) -> None:
    if isinstance(step, Run):
        subprocess.run(step.argv, check=True)
    elif isinstance(step, MakeDir):
        target = _under(root, step.path)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(step.mode)
    elif isinstance(step, InstallFile):
        target = _under(root, step.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.new")
        if step.source:
            shutil.copyfile(step.source, temporary)
        else:
            temporary.write_text(step.text)
        temporary.chmod(step.mode)
        os.chown(temporary, 0, _group_members(root)[step.group][0])
        temporary.replace(target)  # atomic: a running reload never sees half a file
    elif isinstance(step, Symlink):
        target = _under(root, step.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(step.target)


def default_executable() -> Path:
    beside_python = Path(sys.executable).parent / "voiced"
    found = beside_python if beside_python.exists() else shutil.which("voiced")
    if not found:
        raise InstallError("cannot find the voiced executable: give --executable")
    return Path(found).resolve()


def main(args) -> int:
    root = Path(args.root).resolve()
    unit_source = SOURCE_ROOT / "systemd" / UNITS[args.unit]
    from voiced.settings import EXAMPLE_CONFIG

    example = Path(args.example_config) if args.example_config else EXAMPLE_CONFIG
    try:
        if not args.dry_run and os.geteuid() != 0:
            raise InstallError("install-service needs root (or --dry-run to see what it would do)")
        steps = plan_install(
            probe(root, unit_source.name),
            root=root,
            executable=Path(args.executable).resolve() if args.executable else default_executable(),
            unit_source=unit_source,
            unit_text=unit_source.read_bytes(),
            example_config=example if example.is_file() else None,
            start=args.now,
        )
    except (InstallError, OSError) as exc:
        print(f"voiced install-service: {exc}", file=sys.stderr)
        return 1
    for step in steps:
        print(("would " if args.dry_run else "") + step.describe(), flush=True)
        if not args.dry_run:
            try:
                apply(step, root)
            except (OSError, subprocess.CalledProcessError) as exc:
                print(f"voiced install-service: failed: {exc}", file=sys.stderr)
                return 1
    return 0
