import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamingRecognitionRequest(_message.Message):
    __slots__ = ("config", "audio_content")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio_content: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class StreamingRecognitionResponse(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[SpeechRecognitionChunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[SpeechRecognitionChunk, _Mapping]]] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("specification", "folder_id")
    SPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    FOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    specification: RecognitionSpec
    folder_id: str
    def __init__(self, specification: _Optional[_Union[RecognitionSpec, _Mapping]] = ..., folder_id: _Optional[str] = ...) -> None: ...

class RecognitionSpec(_message.Message):
    __slots__ = ("audio_encoding", "sample_rate_hertz", "language_code", "profanity_filter", "model", "partial_results", "single_utterance", "audio_channel_count", "raw_results", "literature_text")
    class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        AUDIO_ENCODING_UNSPECIFIED: _ClassVar[RecognitionSpec.AudioEncoding]
        LINEAR16_PCM: _ClassVar[RecognitionSpec.AudioEncoding]
        OGG_OPUS: _ClassVar[RecognitionSpec.AudioEncoding]
        MP3: _ClassVar[RecognitionSpec.AudioEncoding]
    AUDIO_ENCODING_UNSPECIFIED: RecognitionSpec.AudioEncoding
    LINEAR16_PCM: RecognitionSpec.AudioEncoding
    OGG_OPUS: RecognitionSpec.AudioEncoding
    MP3: RecognitionSpec.AudioEncoding
    AUDIO_ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HERTZ_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    PROFANITY_FILTER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SINGLE_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHANNEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    RAW_RESULTS_FIELD_NUMBER: _ClassVar[int]
    LITERATURE_TEXT_FIELD_NUMBER: _ClassVar[int]
    audio_encoding: RecognitionSpec.AudioEncoding
    sample_rate_hertz: int
    language_code: str
    profanity_filter: bool
    model: str
    partial_results: bool
    single_utterance: bool
    audio_channel_count: int
    raw_results: bool
    literature_text: bool
    def __init__(self, audio_encoding: _Optional[_Union[RecognitionSpec.AudioEncoding, str]] = ..., sample_rate_hertz: _Optional[int] = ..., language_code: _Optional[str] = ..., profanity_filter: _Optional[bool] = ..., model: _Optional[str] = ..., partial_results: _Optional[bool] = ..., single_utterance: _Optional[bool] = ..., audio_channel_count: _Optional[int] = ..., raw_results: _Optional[bool] = ..., literature_text: _Optional[bool] = ...) -> None: ...

class SpeechRecognitionChunk(_message.Message):
    __slots__ = ("alternatives", "final", "end_of_utterance")
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    END_OF_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    alternatives: _containers.RepeatedCompositeFieldContainer[SpeechRecognitionAlternative]
    final: bool
    end_of_utterance: bool
    def __init__(self, alternatives: _Optional[_Iterable[_Union[SpeechRecognitionAlternative, _Mapping]]] = ..., final: _Optional[bool] = ..., end_of_utterance: _Optional[bool] = ...) -> None: ...

class SpeechRecognitionAlternative(_message.Message):
    __slots__ = ("text", "confidence", "words")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    confidence: float
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    def __init__(self, text: _Optional[str] = ..., confidence: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("start_time", "end_time", "word", "confidence")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    start_time: _duration_pb2.Duration
    end_time: _duration_pb2.Duration
    word: str
    confidence: float
    def __init__(self, start_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., end_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., word: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...
