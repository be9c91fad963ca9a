"""Wyoming ASR for the local server: what it describes, and how a request maps onto the same
recognition session as a SpeechKit v2 call (pure: no sockets, no engine).

Models: one per installed language, named by its code (its open language model: the v2
API's model `general`), and one per grammar model, by its name. `transcribe` chooses by
`name`, by `language`, or both; without either, the first installed language's open model.
A bare language ("en") stands for the one installed code of that language ("en-US").

A stream's transcript is its utterances' finals joined by spaces (the session cuts the audio
at each pause, as for the v2 API). Clients whose wyoming library has transcript streaming
(1.7.0 on) also get each final as a `transcript-chunk` as soon as it is decoded; the chunks
concatenate to the transcript.
"""

from __future__ import annotations

from dataclasses import dataclass

from wyoming.asr import Transcribe
from wyoming.audio import AudioStart
from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from voiced import __version__
from voiced.protocol.vocabulary import DEFAULT_MODEL, OPEN_MODELS
from voiced.server.config import ServerSettings
from voiced.server.session import Result
from voiced.server.spec import FieldNames, SessionSpec, SpecError, check_audio_format, check_model, shown

PROGRAM = "voiced"
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM, as the v2 API's LINEAR16_PCM
# the wyoming release that added transcript-start / transcript-chunk / transcript-stop
TRANSCRIPT_STREAMING_SINCE = (1, 7, 0)
WYOMING_FIELDS = FieldNames(language="language", model="name", sample_rate="rate", channels="channels")
POCKETSPHINX = Attribution(name="CMU Sphinx (pocketsphinx)", url="https://github.com/cmusphinx/pocketsphinx")
WHISPER = Attribution(name="OpenAI Whisper (tiny.en through CTranslate2)", url="https://github.com/openai/whisper")


class RequestError(Exception):
    """What ends a client's request: the `code` and `text` of its `error` event."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


def describe(settings: ServerSettings) -> Info:
    """The `info` answer: one ASR program with every model and its language."""
    models = [
        AsrModel(
            name=code,
            languages=[code],
            attribution=POCKETSPHINX,
            installed=True,
            version=None,
            description=f"open language model ({code}): any sentence; the v2 API's model 'general'",
        )
        for code in settings.languages
    ]
    for name, grammar in settings.models.items():
        whisper = grammar.engine == "whisper"
        what = "command sentences: Whisper chooses among them (or none)" if whisper else "grammar: only its sentences"
        models.append(
            AsrModel(
                name=name,
                languages=[grammar.language],
                installed=True,
                version=None,
                attribution=WHISPER if whisper else POCKETSPHINX,
                description=f"{what} ({grammar.language})",
            )
        )
    program = AsrProgram(
        name=PROGRAM,
        attribution=Attribution(name="voiced", url=""),
        installed=True,
        description="voiced: offline speech recognition (pocketsphinx, Whisper commands)",
        version=__version__,
        models=models,
        supports_transcript_streaming=True,
    )
    return Info(asr=[program])


def installed_language(asked: str, languages: list[str]) -> str:
    """The installed code `asked` means: itself, its spelling ("en_us"), or for a bare
    language the one installed code of it; else `asked` (the check then says what is installed)."""
    if asked in languages:
        return asked
    spelled = {code.lower(): code for code in languages}.get(asked.replace("_", "-").lower())
    if spelled is not None:
        return spelled
    same_language = [code for code in languages if code.split("-")[0].lower() == asked.lower()]
    return same_language[0] if len(same_language) == 1 else asked


def choose_model(request: Transcribe, languages: list[str], grammars: dict[str, str]) -> tuple[str, str]:
    """(model, language) of a `transcribe`: the engine's model name ("general" or a grammar's)."""
    name, asked = request.name, request.language
    for field, value in (("name", name), ("language", asked)):
        if value is not None and not isinstance(value, str):
            raise RequestError("bad-event", f"transcribe: {field} must be a string")
    language = installed_language(asked, languages) if asked else None
    if not name or name in OPEN_MODELS:
        model, language = DEFAULT_MODEL, language or languages[0]
    elif name in languages:
        if language is not None and language != name:
            raise RequestError(
                "unknown-model", f"model {name!r} is the {name} open model, but language is {shown(asked or '')}"
            )
        model, language = DEFAULT_MODEL, name
    elif name in grammars:
        model, language = name, language or grammars[name]
    else:
        raise RequestError(
            "unknown-model", f"model '{shown(name)}' is not available; available: {', '.join([*languages, *grammars])}"
        )
    try:
        return check_model(model, language, languages, grammars, WYOMING_FIELDS), language
    except SpecError as error:
        raise RequestError("unknown-model", str(error)) from None


def audio_format(start: AudioStart) -> tuple[int, int, int]:
    """(rate, width, channels) of an `audio-start` this server takes: 16-bit mono PCM at a rate
    the session resamples to the engine's (the v2 API's LINEAR16_PCM rates)."""
    fields = (start.rate, start.width, start.channels)
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in fields):
        raise RequestError("bad-event", "audio-start: rate, width and channels must be whole numbers")
    if start.width != SAMPLE_WIDTH:
        raise RequestError(
            "unsupported-audio",
            f"width {start.width} is not supported: audio must be 16-bit PCM (width {SAMPLE_WIDTH})",
        )
    try:
        check_audio_format(start.rate, start.channels, WYOMING_FIELDS)
    except SpecError as error:
        raise RequestError("unsupported-audio", str(error)) from None
    return fields


def session_spec(model: str, language: str, rate: int) -> SessionSpec:
    """A Wyoming stream as a recognition session: no partials (the protocol has none), numbers
    as digits ("set a timer for 5 minutes"), nothing masked, every utterance of the stream."""
    return SessionSpec(
        language=language,
        model=model,
        sample_rate=rate,
        partial_results=False,
        single_utterance=False,
        raw_results=False,
        profanity_filter=False,
    )


def has_transcript_streaming(version: object) -> bool:
    """Whether a peer whose event headers carry `version` (its wyoming library's) knows the
    transcript-start / -chunk / -stop events; a header without one predates them."""
    if not isinstance(version, str):
        return False
    try:
        return tuple(int(part) for part in version.split(".")[:3]) >= TRANSCRIPT_STREAMING_SINCE
    except ValueError:
        return False


@dataclass
class TranscriptText:
    """The transcript of one audio stream, built from the session's results."""

    text: str = ""

    def add(self, results: list[Result]) -> list[str]:
        """The transcript-chunks the finals among `results` make (they concatenate to `text`)."""
        chunks = []
        for result in results:
            if result.final and result.text:
                chunks.append(f" {result.text}" if self.text else result.text)
                self.text += chunks[-1]
        return chunks
