"""Client side of the SpeechKit STT v2 streaming protocol.

`settings` (the `recognition:` section), `events` (what a session yields), `messages` (pure
protobuf translation) and `client` (the gRPC edge: channel and sessions).
"""
