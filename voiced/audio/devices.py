"""Audio input devices as PortAudio (PyAudio) sees them: finding the one `audio.device`
names, and `voiced devices`. ALSA's and JACK's own error printing is silenced here."""

from __future__ import annotations

import sys


class DeviceNotFound(LookupError):
    pass


NO_INPUT_HINT = "list the inputs with `voiced devices`, then set audio.device to an index or a part of a name"
_QUIET_HANDLERS: list = []  # the C callbacks installed below, kept alive


def quiet_audio_libraries() -> None:
    """Silence ALSA's and JACK's error printing (once per process). PortAudio probes every
    device they know at each start, and each failure is printed on stderr: ~90 lines on a
    machine without JACK or a sound card, ~400 in 15 s of reopening a missing microphone,
    none of them meaning anything to a voiced user. Failures still reach voiced as errors."""
    if _QUIET_HANDLERS:
        return
    import ctypes

    try:
        alsa = ctypes.CDLL("libasound.so.2")
        # snd_lib_error_handler_t is variadic; a no-op that ignores its arguments is safe to call
        handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)(
            lambda *args: None
        )
        alsa.snd_lib_error_set_handler(handler)
        _QUIET_HANDLERS.append(handler)
    except (OSError, AttributeError):
        pass
    try:
        jack = ctypes.CDLL("libjack.so.0")
        handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: None)
        jack.jack_set_error_function(handler)
        jack.jack_set_info_function(handler)
        _QUIET_HANDLERS.append(handler)
    except (OSError, AttributeError):
        pass
    _QUIET_HANDLERS.append(None)  # tried: not again


def default_input(pa) -> int:
    """The index of the system's default input; DeviceNotFound (with what to do) if none."""
    try:
        return pa.get_default_input_device_info()["index"]
    except OSError:
        found = input_devices(pa)
        names = ", ".join(f"{d['index']}: {d['name']!r}" for d in found)
        raise DeviceNotFound(
            f"no default audio input device{f' (inputs: {names})' if found else ''}: {NO_INPUT_HINT}"
        ) from None


def input_devices(pa) -> list[dict]:
    devices = (pa.get_device_info_by_index(i) for i in range(pa.get_device_count()))
    return [d for d in devices if d.get("maxInputChannels", 0) > 0]


def find_device(pa, device: int | str | None) -> int | None:
    """PyAudio index of the input device named by index or name substring (None = default)."""
    if device is None:
        return default_input(pa)
    candidates = input_devices(pa)
    if isinstance(device, int):
        if any(d["index"] == device for d in candidates):
            return device
        raise DeviceNotFound(f"no input device with index {device}: {NO_INPUT_HINT}")
    wanted = device.casefold()
    exact = [d for d in candidates if d["name"].casefold() == wanted]
    matches = exact or [d for d in candidates if wanted in d["name"].casefold()]
    if not matches:
        names = ", ".join(repr(d["name"]) for d in candidates) or "none"
        raise DeviceNotFound(f"no input device matching {device!r} (inputs: {names}): {NO_INPUT_HINT}")
    return matches[0]["index"]


def list_devices_main(args) -> int:
    """`voiced devices`: the input devices PortAudio sees, with what `audio.device` accepts."""
    import pyaudio

    quiet_audio_libraries()
    pa = pyaudio.PyAudio()
    try:
        try:
            default = pa.get_default_input_device_info()["index"]
        except OSError:
            default = None
        devices = input_devices(pa)
        if not devices:
            print(
                f"no audio input devices found (PortAudio sees {pa.get_device_count()} devices, none with an "
                "input): connect a microphone; the service user must be in the audio group",
                file=sys.stderr,
            )
            return 1
        for d in devices:
            mark = "*" if d["index"] == default else " "
            print(f"{mark}{d['index']:3d}  {d['name']}  ({d['maxInputChannels']} ch, {d['defaultSampleRate']:.0f} Hz)")
        print("\n* = default input. Set `audio: device:` to an index or a part of the name.")
        return 0
    finally:
        pa.terminate()
