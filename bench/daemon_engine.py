"""bench_commands' `--engine daemon`: the whole `voiced run`, spoken to as a user would.

The daemon reads raw audio on stdin and writes JSONL events; the bench speaks one utterance
(then two seconds of the noise floor), waits for the daemon's verdict on it, and when the
daemon asks a number back (`confirmation_asked`), answers as the speaker would: "да" if it
asks what was said, "нет" otherwise, in the same voice. Every wait is for an event.
"""

from __future__ import annotations

import collections
import functools
import json
import queue
import re
import resource
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from voiced.testing import mix, noise, silence

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
LOCALES = {"en": "en-US", "ru": "ru-RU"}
# what tells the bench the daemon has decided on a session's final
VERDICTS = {"command_matched", "rejected", "confirmation_asked", "confirmation_answered", "session_error"}
STDIN_JSONL = ("--input", "-", "--events", "jsonl")
WAIT_S = 120.0  # for one verdict: far beyond any decision on a busy machine; a hang fails the run


@functools.cache
def room_floor() -> bytes:
    """Ten minutes of a quiet room's noise, the same every run (sox -R)."""
    return noise(600.0, RATE, "brownnoise", 0.005)


@dataclass(frozen=True)
class Trace:
    """What the daemon said about one utterance, for `-v`: why it ran nothing, what it asked."""

    notes: tuple[str, ...]
    unsure: str = ""  # the question asked, if any (a question for chatter is counted)


@dataclass
class User:
    """Who speaks: what each utterance should run (None: nothing), and the answers' audio."""

    expected: list[tuple | None]
    yes: bytes
    no: bytes


class DaemonEngine:
    """`voiced run` with the set's command file (every action replaced by `true`), fed one
    recording per voice on stdin over a quiet noise floor; its endpointer, pre-roll,
    sessions, embedded server and questions decide. A session's commands count for the
    utterance its speech was detected in (a question's answer, for the utterance asked about).
    The daemon's own CPU time and peak RSS are read from the kernel (getrusage of the child);
    a start's CPU time, measured on a run with no speech, is left out of each run's."""

    GAP_S = 2.0
    confirm = True  # ask numbers back (commands.confirm); False: reject them (--no-confirm)

    def __init__(self, commands_file: Path, recognizer: str, options: dict, language: str = "en"):
        self._workdir = tempfile.TemporaryDirectory(prefix="voiced-bench-daemon-")  # removed with the engine
        workdir = Path(self._workdir.name)
        commands = yaml.safe_load(commands_file.read_text(encoding="utf-8"))
        for command in commands["commands"].values():
            command["actions"] = [{"type": "exec", "argv": ["true"]}]
        (workdir / "commands.yaml").write_text(yaml.safe_dump(commands, allow_unicode=True), encoding="utf-8")
        local_grammar: dict = {"model": "commands", "engine": recognizer}
        if options:
            local_grammar.update(options if recognizer == "pocketsphinx" else {"whisper": options})
        self.config = workdir / "voiced.yaml"
        config = {
            "recognition": {"language": LOCALES[language]},
            "commands": {
                "files": ["commands.yaml"],
                "local_grammar": local_grammar,
                "confirm": {"enabled": self.confirm},
            },
            # no loudspeaker: the question is synthesized, not played, and holds no input
            "actions": {"sound_command": ["true"]},
            "feedback": {"mute_input": False},
        }
        self.config.write_text(yaml.safe_dump(config))
        self.sessions_per_utterance: collections.Counter[int] = collections.Counter()
        self.questions: collections.Counter[str] = collections.Counter()  # how they were answered
        self.cpu_s = 0.0  # of the runs, each less a start
        self.start_cpu_s: float | None = None  # a start: loading the models, with no speech
        self.answers_s = 0.0
        self.peak_rss_mb = 0.0
        self._stages: collections.Counter[str] = collections.Counter()
        self.log = workdir / "daemon.log"

    def run(self, pcms: list[bytes], user: User) -> list[tuple[str, object]]:
        if self.start_cpu_s is None:
            # a daemon's start (loading the models) happens once in its life, here once per
            # voice: measured apart, on runs with no speech, and left out of cpu_s (the least
            # of two: the first start may read the model from a cold cache, 1 s more measured,
            # and too little left out only overstates the figure)
            self.start_cpu_s, starts = 0.0, []
            for _ in range(2):
                self.cpu_s = 0.0
                self.run([], User([], b"", b""))
                starts.append(self.cpu_s)
            self.start_cpu_s, self.cpu_s = min(starts), 0.0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with self.log.open("w") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "voiced", "-v", "run", "--config", str(self.config), *STDIN_JSONL],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=False,
                cwd=ROOT,
            )
            conversation = _Conversation(daemon)
            conversation.write(silence(self.GAP_S, RATE), 0)  # as before any utterance, a room's floor
            for index, pcm in enumerate(pcms):
                conversation.say(pcm, index, self.GAP_S, user)
            assert daemon.stdin is not None
            daemon.stdin.close()
            conversation.read_to_end()
            if daemon.wait(timeout=WAIT_S) != 0:
                raise RuntimeError(f"voiced run failed: {self.log.read_text()[-2000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_s += after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime - self.start_cpu_s
        self.peak_rss_mb = max(self.peak_rss_mb, after.ru_maxrss / 1024)
        for stage, seconds in re.findall(r"(partials|final) ([\d.]+) s", self.log.read_text()):
            self._stages[stage] += float(seconds)
        self.questions.update(conversation.answers)
        self.answers_s += conversation.answers_s
        sessions = collections.Counter(conversation.utterance_of.values())
        self.sessions_per_utterance.update(sessions[index] for index in range(len(pcms)))
        # a confirmed command carries the session of its question, so it counts where it was said
        commands: list[list[str]] = [[] for _ in pcms]
        notes: list[list[str]] = [[] for _ in pcms]
        questions: list[str] = ["" for _ in pcms]
        for event in conversation.seen:
            utterance = conversation.utterance_of.get(event.get("session"))
            if utterance is None:
                continue
            if event["type"] == "command_matched":
                commands[utterance].append(event["text"])
            elif event["type"] == "rejected":
                notes[utterance].append(f"rejected {event['text']!r}: {event['reason']}")
            elif event["type"] == "confirmation_asked":
                questions[utterance] = event["question"]
                notes[utterance].append(f"asked {event['question']!r}")
            elif event["type"] == "confirmation_answered":
                notes[utterance].append(f"answered {event['answer']}")
        return [(" ".join(texts), Trace(tuple(n), q)) for texts, n, q in zip(commands, notes, questions)]

    def stages(self) -> dict[str, float]:
        return dict(self._stages)


class _Conversation:
    """The bench's side of one daemon run: audio out, events in."""

    def __init__(self, daemon: subprocess.Popen):
        self.daemon = daemon
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.written_s = 0.0
        self.starts: list[tuple[float, int]] = []  # (audio time a segment starts, its utterance)
        self.utterance_of: dict[int, int] = {}  # session -> utterance
        self.answers: list[str] = []
        self.answers_s = 0.0  # speech said in answer, as much the daemon's work as the commands
        self.seen: list[dict] = []
        self.floor_at = 0  # where in room_floor() the next audio is laid over
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.daemon.stdout is not None
        for line in self.daemon.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def write(self, pcm: bytes, utterance: int) -> None:
        """`pcm` over the next stretch of one continuous noise floor (a microphone's)."""
        self.starts.append((self.written_s, utterance))
        floor, room = bytearray(), room_floor()
        while len(floor) < len(pcm):  # the floor's recording, looped
            taken = room[self.floor_at : self.floor_at + len(pcm) - len(floor)]
            floor += taken
            self.floor_at = (self.floor_at + len(taken)) % len(room)
        pcm = mix(pcm, bytes(floor))
        assert self.daemon.stdin is not None
        self.daemon.stdin.write(pcm)
        self.daemon.stdin.flush()
        self.written_s += len(pcm) / 2 / RATE

    def _take(self, event: dict) -> None:
        self.seen.append(event)
        if event["type"] == "speech_started":
            # where speech was detected (its audio begins a pre-roll earlier); a session that
            # starts in the gap after an utterance still belongs to it
            detected_s = event["audio_s"] + event["pre_roll_s"]
            self.utterance_of[event["session"]] = max(u for start, u in self.starts if start <= detected_s)

    def _next_verdict(self, utterance: int) -> dict:
        """Events up to the first verdict on a session of this utterance."""
        while (event := self.events.get(timeout=WAIT_S)) is not None:
            self._take(event)
            if event["type"] in VERDICTS and self.utterance_of.get(event.get("session")) == utterance:
                return event
        raise RuntimeError("the daemon ended before deciding")

    def say(self, pcm: bytes, utterance: int, gap_s: float, user: User) -> None:
        """Speak one utterance, and the answer when the daemon asks about it."""
        self.write(pcm + silence(gap_s, RATE), utterance)
        verdict = self._next_verdict(utterance)
        if verdict["type"] == "confirmation_asked":
            right = (verdict["intent"], verdict["slots"]) == user.expected[utterance]
            self.answers.append("yes (asked what was said)" if right else "no (asked something else)")
            answer = user.yes if right else user.no
            self.answers_s += len(answer) / 2 / RATE
            self.write(answer + silence(gap_s, RATE), utterance)
            self._next_verdict(utterance)

    def read_to_end(self) -> None:
        while (event := self.events.get(timeout=WAIT_S)) is not None:
            self._take(event)
