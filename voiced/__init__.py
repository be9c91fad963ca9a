"""voiced: a voice-command daemon speaking the SpeechKit STT v2 streaming protocol."""

import os
from importlib.metadata import PackageNotFoundError, version

# numpy's OpenBLAS starts a thread per core, and after each matrix product they spin waiting for
# the next: after the Whisper features (one small product) they burned a second core all
# through the encoder, twice the CPU for the same work (measured). One thread is all a
# product of this size needs; set before numpy is first loaded.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

try:
    __version__ = version("voiced")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
