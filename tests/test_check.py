import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def voiced(*args):
    return subprocess.run([sys.executable, "-m", "voiced", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_check_config_accepts_the_example_and_locates_errors(tmp_path):
    ok = voiced("check-config", "--config", "config/voiced.yaml", "--commands", "config/commands.yaml")
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 6 commands (en, ru)")
    broken, template = tmp_path / "broken.yaml", tmp_path / "template.yaml"
    broken.write_text("commands:\n  A:\n    sentences: {en: ['a']}\n    actions:\n      - type: exec\n")
    template.write_text("commands:\n  B:\n    sentences: {en: ['turn [on']}\n")
    result = voiced(
        "check-config",
        "--config",
        "config/voiced.yaml",
        "--commands",
        str(broken),
        "config/commands.yaml",
        str(template),
    )
    assert result.returncode == 1
    config, *lines = result.stderr.strip().splitlines()
    assert config == "config: config/voiced.yaml (--config)"
    assert lines[0].startswith(f"{broken}:5:9: commands.A.actions.0.argv: Field required")
    assert lines[1].startswith(f"{template}:3:22: template 'turn [on'")


def test_match_prints_intent_slots_actions_and_runs_them(tmp_path):
    out = tmp_path / "ran"
    commands = tmp_path / "c.yaml"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['VOICED_SLOT_N'])"
    commands.write_text(
        yaml.safe_dump(
            {
                "commands": {
                    "Note": {
                        "sentences": {"en": ["note {1..99:n}"], "ru": ["заметка {1..99:n}"]},
                        "actions": [{"type": "exec", "argv": [sys.executable, "-c", script]}],
                    }
                }
            },
            allow_unicode=True,
        )
    )
    shown = voiced("match", "Note forty two", "--commands", str(commands))
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["slots"] == {"n": 42} and not out.exists()
    ran = voiced("match", "заметка сорок три", "--language", "ru", "--commands", str(commands), "--run")
    assert ran.returncode == 0 and out.read_text() == "43"
    assert '"type": "action_finished"' in ran.stdout
    assert voiced("match", "hello there", "--commands", str(commands)).returncode == 2
