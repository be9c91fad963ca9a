"""Wake word: a session opens only when the speaker's name is heard.

- `settings`: the `wake:` section (mode, model, threshold, refractory period, command timeout).
- `engines`: the thin edge that loads a wake model (microWakeWord or openWakeWord) as a scorer.
- `detector`: the pure core, 16 kHz frames in, `WakeDetected` out, with the VAD gate and
  the position where the wake phrase ended.
- `gate`: an endpointer that only opens on the wake word, a drop-in for `Endpointer` in the
  listening core.
"""
