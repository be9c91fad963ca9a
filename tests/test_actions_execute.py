import json
import sys

import pytest

from voiced.actions.config import ActionsSettings, ExecAction, SayAction, SoundAction
from voiced.actions.execute import exec_action, say_action, sound_action
from voiced.actions.process import ActionError
from voiced.commands.matching import Match

DUMP = (
    "import json, os, sys;"
    "json.dump({'argv': sys.argv[1:], 'stdin': sys.stdin.read(),"
    " 'env': {k: v for k, v in os.environ.items() if k.startswith('VOICED_')}},"
    " open(os.environ['OUT'], 'w'))"
)
HOSTILE = "; rm -rf / $(touch PWNED) `touch PWNED2`\nnext line && echo hi | cat > x"


def _match(text=HOSTILE, slots=None):
    return Match("Note", slots or {"room": "kitchen; reboot", "minutes": 5}, text, 1.0, "en",
                 original_text=text)


def test_exec_passes_transcript_only_as_data(tmp_path):
    out = tmp_path / "out.json"
    action = ExecAction(type="exec", argv=[sys.executable, "-c", DUMP, "$text", "room=$room", "${minutes}m"],
                        env={"OUT": str(out)}, cwd=tmp_path)
    detail, spoken = exec_action(action, _match())
    assert detail == "exit 0" and spoken is None
    seen = json.loads(out.read_text())
    assert seen["argv"] == [HOSTILE, "room=kitchen; reboot", "5m"]
    assert seen["env"] == {"VOICED_INTENT": "Note", "VOICED_TEXT": HOSTILE,
                           "VOICED_SLOT_ROOM": "kitchen; reboot", "VOICED_SLOT_MINUTES": "5"}
    stdin = json.loads(seen["stdin"])
    assert stdin["intent"] == "Note" and stdin["slots"]["minutes"] == 5 and stdin["original_text"] == HOSTILE
    # nothing the transcript "asked for" happened
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_exec_stdout_is_returned_for_speaking_and_failures_raise(tmp_path):
    speak = ExecAction(type="exec", argv=[sys.executable, "-c", "print('It is 10:30')"], speak_output=True)
    assert exec_action(speak, _match())[1] == "It is 10:30"
    failing = ExecAction(type="exec", argv=[sys.executable, "-c", "import sys; sys.exit('boom')"])
    with pytest.raises(ActionError, match="exited with 1: boom"):
        exec_action(failing, _match())


def test_sound_and_say_use_the_configured_commands(tmp_path):
    out = tmp_path / "played"
    recorder = [sys.executable, "-c",
                f"import sys; open({str(out)!r}, 'a').write(repr(sys.argv[1:]) + sys.stdin.read() + '\\n')"]
    settings = ActionsSettings(sound_command=recorder, say_command=recorder)
    wav = tmp_path / "ding.wav"
    assert sound_action(SoundAction(type="sound", file=wav), settings) == "played"
    # the spoken text goes on stdin: a text starting with "-" cannot become an option
    say = SayAction(type="say", text="-w /tmp/x timer for $minutes minutes")
    assert say_action(say, _match(), settings) == "spoken"
    assert out.read_text().splitlines() == [repr([str(wav)]), "[]-w /tmp/x timer for 5 minutes"]
