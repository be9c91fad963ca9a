"""What the tests and the benchmarks share: real synthesized speech and sounds, and a
`voiced serve` child process to measure.

Speech comes from flite or espeak-ng and is converted with sox to 16-bit mono WAV (Debian
packages: `bash .ci/setup --dev`). Nothing here runs in the daemon.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import wave
from pathlib import Path


def synthesize(text: str, voice: str, rate: int, out_dir: Path) -> Path:
    """Speak `text` with `voice` into a 16-bit mono WAV at `rate` Hz (cached by content).

    A voice is "engine:name" with optional settings after commas: espeak-ng's speed `s` (words
    per minute) and pitch `p` (0-99), and sox's `tempo` (factor) and `pitch` (cents) for any
    engine, e.g. "espeak:en-us+m3,s=140,p=30", "flite:kal,tempo=1.1" or "festival:msu_ru_nsh_clunits"."""
    spec, *options = voice.split(",")
    engine, _, name = spec.partition(":")
    settings = dict(option.split("=", 1) for option in options)
    key = hashlib.sha1(f"{voice}|{rate}|{text}".encode()).hexdigest()[:16]
    out = out_dir / f"{engine}-{name.replace('+', '_')}-{rate}-{key}.wav"
    if out.exists():
        return out
    raw = out_dir / f"{key}.tts.wav"
    if engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(raw)], check=True)
    elif engine == "espeak":
        tuning = [arg for flag in ("s", "p") if flag in settings for arg in (f"-{flag}", settings[flag])]
        subprocess.run(["espeak-ng", "-v", name, *tuning, "-w", str(raw), text], check=True)
    elif engine == "festival":  # e.g. festival:msu_ru_nsh_clunits (Debian's festvox-ru)
        command = ["text2wave", "-eval", f"(voice_{name})", "-o", str(raw)]
        subprocess.run(command, input=text.encode(), check=True, capture_output=True)
    else:
        raise ValueError(f"unknown TTS engine in voice {voice!r}")
    effects = [
        *(["tempo", settings["tempo"]] if "tempo" in settings else []),
        *(["pitch", settings["pitch"]] if "pitch" in settings else []),
    ]
    # -R: the same audio every run; sox otherwise dithers with a random seed, and the model
    # heard one espeak-ng utterance as a garble in one test run and as the command in the next
    subprocess.run(
        ["sox", "-R", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(out), *effects],
        check=True,
    )
    raw.unlink()
    return out


def read_pcm(path: Path) -> tuple[bytes, int]:
    """Samples and sample rate of a 16-bit mono WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1, path
        return wav.readframes(wav.getnframes()), wav.getframerate()


def write_wav(path: Path, pcm: bytes, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def silence(seconds: float, rate: int) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


def tone(seconds: float, rate: int, amplitude: int, hz: float = 220) -> bytes:
    """A sine tone as raw 16-bit mono PCM, of a known loudness (RMS: amplitude / sqrt 2)."""
    import numpy as np

    return (amplitude * np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * hz / rate)).astype(np.int16).tobytes()


def free_port() -> int:
    """A loopback TCP port nobody listens on (for servers to bind, or to be refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def noise(seconds: float, rate: int, kind: str = "pinknoise", volume: float = 0.05) -> bytes:
    """Background noise as raw 16-bit mono PCM (sox synth: whitenoise, pinknoise, brownnoise).
    The same every run (`-R`): without it sox seeds from the clock, and a recognition test on
    noisy speech passes or fails with the noise it happened to draw."""
    return subprocess.run(
        [
            "sox",
            "-R",
            "-n",
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            "-",
            "synth",
            str(seconds),
            kind,
            "vol",
            str(volume),
        ],
        check=True,
        capture_output=True,
    ).stdout


def mix(pcm: bytes, background: bytes) -> bytes:
    """`pcm` with `background` added under it (background is cut or repeated to fit)."""
    import numpy as np

    samples = np.frombuffer(pcm, np.int16).astype(np.int32)
    bed = np.resize(np.frombuffer(background, np.int16), samples.shape)
    return np.clip(samples + bed, -32768, 32767).astype(np.int16).tobytes()


def speech_span(pcm: bytes, rate: int, floor: float = 0.05) -> tuple[float, float]:
    """Where a clean recording's speech starts and ends, in seconds: the first and the last
    10 ms window whose RMS is above `floor` of the loudest window's."""
    import numpy as np

    window = rate // 100
    samples = np.frombuffer(pcm, np.int16)
    frames = samples[: len(samples) // window * window].astype(np.float32).reshape(-1, window)
    energy = np.sqrt((frames**2).mean(axis=1))
    loud = np.flatnonzero(energy > floor * energy.max())
    return loud[0] / 100, (loud[-1] + 1) / 100


def trimmed(pcm: bytes, rate: int, floor: float = 0.02) -> bytes:
    """`pcm` without the TTS's own leading and trailing silence (see speech_span), so positions
    in it are the speech's."""
    start, end = speech_span(pcm, rate, floor)
    return pcm[round(start * rate) * 2 : round(end * rate) * 2]


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...; see proc(5)),
    or None once the process has ended."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sorted(tree)


def action_supervisors() -> set[int]:
    """The action supervisors (voiced.actions.supervisor) this process has running: each
    program's, and the spare that waits for the next program."""
    found = set()
    for pid in process_tree(os.getpid()):
        fields = proc_stat(pid)
        if fields is None or int(fields[1]) != os.getpid() or fields[0] in ("Z", "X"):
            continue
        try:
            if b"supervisor.py" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                found.add(pid)
        except OSError:
            pass
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (0.0 once it has ended), from /proc."""
    fields = proc_stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS: now, VmHWM: peak) in MB."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared between processes counted once in all (fork's
    copy-on-write model data across workers), so the figures of a tree add up."""
    for line in (Path("/proc") / str(pid) / "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for {pid}")


class ServeProcess:
    """`voiced serve` in a child process on a free loopback port, ready (READY=1) when built.

    `server` is the `server:` section (JSON is YAML); `args` more command-line options; `env`
    more environment variables."""

    def __init__(
        self,
        directory: Path,
        server: dict | None = None,
        args: tuple[str, ...] = (),
        ready_timeout_s: float = 120,
        env: dict[str, str] | None = None,
    ):
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "serve.yaml"
        self.config.write_text(json.dumps({"server": server or {}}))
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        notify_path = directory / f"notify-{self.port}"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self._notify.settimeout(ready_timeout_s)
        self.log = directory / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "voiced",
                    "serve",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    *args,
                ],
                env={**os.environ, "NOTIFY_SOCKET": str(notify_path), **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            while b"READY=1" not in self._notify.recv(4096):
                pass
        except OSError:
            self.stop()
            raise RuntimeError(f"voiced serve did not get ready: {self.log.read_text()[-2000:]}") from None

    def pss_mb(self) -> float:
        """Memory of the server and its decoder processes, shared pages counted once."""
        total = 0.0
        for pid in process_tree(self.process.pid):
            try:
                total += pss_mb(pid)
            except OSError:
                continue
        return total

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        finally:
            self.process.kill()
            self.process.wait()
            self._notify.close()
