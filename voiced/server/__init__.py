"""`voiced serve`: a local, wire-compatible SpeechKit STT v2 server on pocketsphinx.

`config` (the `server:` section), `spec` (pure validation of the first message), `engine`
(pocketsphinx decoders and their pool), `session` (pure-ish core: audio in, result chunks
out), `service` (the gRPC servicer: auth, limits, concurrency) and `app` (start/stop, CLI).
"""
