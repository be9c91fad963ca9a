import pytest

from voiced.commands import load_commands
from voiced.config.loader import ConfigError


def _problems(paths):
    with pytest.raises(ConfigError) as error:
        load_commands(paths)
    return [str(p) for p in error.value.problems]


def test_directory_of_files_is_merged(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "commands:\n  A:\n    sentences: {en: ['alpha {n}']}\n"
        "languages:\n  en:\n    lists:\n      n: {range: {from: 1, to: 3}}\n"
    )
    (tmp_path / "b.yml").write_text("commands:\n  B:\n    sentences: {en: ['{1..9:count} bravo']}\n")
    (tmp_path / "notes.txt").write_text("not a command file")
    commands = load_commands([tmp_path])
    assert commands.match("alpha two", "en").slots == {"n": 2}
    assert commands.match("nine bravo", "en").slots == {"count": 9}


def test_every_problem_is_located(tmp_path):
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("commands:\n  A:\n    sentences: {en: ['x']\n")
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "commands:\n  A:\n    sentences: {en: ['a']}\n    actions:\n"
        "      - type: exec\n        argv: []\n      - type: teleport\n"
    )
    template = tmp_path / "template.yaml"
    template.write_text("commands:\n  T:\n    sentences:\n      en:\n        - 'ok'\n        - 'turn (on|off'\n")
    problems = _problems([syntax, schema, template])
    assert problems[0].startswith(f"{syntax}:4:1: YAML")
    assert any(p.startswith(f"{schema}:6:15: commands.A.actions.0.argv") for p in problems)
    assert any(p.startswith(f"{schema}:7:9: ") and "teleport" in p for p in problems)
    assert any(p.startswith(f"{template}:6:11: template 'turn (on|off'") for p in problems)


def test_duplicates_and_undefined_lists_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("commands:\n  A:\n    sentences: {en: ['a']}\n")
    (tmp_path / "b.yaml").write_text("\ncommands:\n  A:\n    sentences: {en: ['b']}\n")
    assert _problems([tmp_path]) == [f"{tmp_path}/b.yaml:4:5: command 'A' also defined in {tmp_path}/a.yaml"]
    (tmp_path / "b.yaml").write_text("commands:\n  B:\n    sentences: {en: ['to {nowhere}']}\n")
    assert "nowhere" in _problems([tmp_path])[0]


def test_missing_file(tmp_path):
    assert _problems([tmp_path / "absent.yaml"])[0].startswith(f"{tmp_path}/absent.yaml:1:1: cannot read")
