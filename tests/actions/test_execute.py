import json
import sys

import pytest

from voiced.actions.config import ActionsSettings, ExecAction, SayAction, SoundAction
from voiced.actions.context import Match
from voiced.actions.errors import ActionError
from voiced.actions.execute import exec_action, say_action, sound_action
from voiced.textnorm import normalize

DUMP = (
    "import json, os, sys;"
    "json.dump({'argv': sys.argv[1:], 'stdin': sys.stdin.read(),"
    " 'env': {k: v for k, v in os.environ.items() if k.startswith('VOICED_')}},"
    " open(os.environ['OUT'], 'w'))"
)
HOSTILE = "; rm -rf / $(touch PWNED) `touch PWNED2`\nnext line && echo hi | cat > x"


def _match(text=HOSTILE, slots=None):
    # as the matcher makes it: `text` normalized, `original_text` as the recognizer said it
    return Match(
        "Note", slots or {"room": "kitchen; reboot", "minutes": 5}, normalize(text, "en"), 1.0, "en", original_text=text
    )


def test_exec_passes_transcript_only_as_data(tmp_path):
    out = tmp_path / "out.json"
    action = ExecAction(
        type="exec",
        argv=[sys.executable, "-c", DUMP, "$text", "$raw_text", "room=$room", "${minutes}m"],
        env={"OUT": str(out)},
        cwd=tmp_path,
    )
    detail, spoken = exec_action(action, _match())
    assert detail == "exit 0" and spoken is None
    seen = json.loads(out.read_text())
    # $text: words and single spaces, like a slot value; the raw form only when asked for by name
    normalized = "rm rf touch pwned touch pwned2 next line echo hi cat x"
    assert seen["argv"] == [normalized, HOSTILE, "room=kitchen; reboot", "5m"]
    assert seen["env"] == {
        "VOICED_INTENT": "Note",
        "VOICED_TEXT": normalized,
        "VOICED_RAW_TEXT": HOSTILE,
        "VOICED_SLOT_ROOM": "kitchen; reboot",
        "VOICED_SLOT_MINUTES": "5",
    }
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
    recorder = [
        sys.executable,
        "-c",
        f"import sys; open({str(out)!r}, 'a').write(repr(sys.argv[1:]) + sys.stdin.read() + '\\n')",
    ]
    # the speech command gets the text on stdin and writes audio on stdout, for the player
    synthesizer = [sys.executable, "-c", "import sys; sys.stdout.write('RIFF:' + sys.stdin.read())"]
    settings = ActionsSettings(sound_command=recorder, say_command=synthesizer)
    wav = tmp_path / "ding.wav"
    assert sound_action(SoundAction(type="sound", file=wav), settings) == "played"
    # the spoken text goes on stdin: a text starting with "-" cannot become an option
    say = SayAction(type="say", text="-w /tmp/x timer for $minutes minutes")
    assert say_action(say, _match(), settings) == "spoken"
    assert out.read_text().splitlines() == [repr([str(wav)]), "['-']RIFF:-w /tmp/x timer for 5 minutes"]


def test_say_is_spoken_only_when_it_is_heard(tmp_path, monkeypatch):
    """espeak-ng exits 0 when there is no audio device: the default say_command makes a WAV
    that aplay plays, and aplay's exit status is what is reported."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the programs' ALSA reads $HOME/.asoundrc
    say = SayAction(type="say", text="timer set")
    (tmp_path / ".asoundrc").write_text('pcm.!default { type hw card "NoSuchCard" }\n')
    with pytest.raises(ActionError) as error:
        say_action(say, _match(), ActionsSettings())
    assert str(error.value).startswith("'aplay' exited with 1: ") and "audio open error" in str(error.value)
    (tmp_path / ".asoundrc").write_text("pcm.!default { type null }\n")  # a device that takes anything
    assert say_action(say, _match(), ActionsSettings()) == "spoken"


def test_a_failure_shows_whole_last_lines_of_the_program_output(tmp_path):
    lines = [f"warning {n}: a line of what the program said along the way" for n in range(20)]
    said = (
        "\n".join(lines) + "\nALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default\n"
        "aplay: main:831: audio open error"
    )
    code = f"import sys; sys.stderr.write({said!r}); sys.exit(1)"
    settings = ActionsSettings(sound_command=[sys.executable, "-c", code])
    with pytest.raises(ActionError) as error:
        sound_action(SoundAction(type="sound", file=tmp_path / "a.wav"), settings)
    shown = str(error.value).split(": ", 1)[1].split(" / ")
    assert shown[-1] == "aplay: main:831: audio open error"  # whole lines, ALSA's chatter left out
    assert shown[:-1] and all(line in lines for line in shown[:-1]) and len(str(error.value)) < 400
