"""voiced: a voice-command daemon speaking the SpeechKit STT v2 streaming protocol."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voiced")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
