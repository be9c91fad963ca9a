"""Command line: one subcommand per job. Handlers are imported only when chosen, so
`voiced --help` stays fast and a missing optional extra only breaks the command needing it."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from voiced import __version__
from voiced.ops.notify import JournalFormatter, stderr_is_journal
from voiced.protocol.vocabulary import DEFAULT_PORT

# -v is accepted after the subcommand too (`voiced run -v`); counted apart, then added up
_VERBOSITY = argparse.ArgumentParser(add_help=False)
_VERBOSITY.add_argument(
    "-v", "--verbose", dest="verbose_after", action="count", default=0, help="more logging (-vv for debug)"
)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", parents=[_VERBOSITY], help="run the local SpeechKit-v2-compatible recognition server")
    p.add_argument("--config", metavar="FILE", help="YAML file with a `server:` section")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"TCP port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="decoder processes the sessions are spread over, e.g. one per core (default: server.workers, 1)",
    )
    p.add_argument(
        "--wyoming",
        metavar="tcp://HOST:PORT",
        help="also serve Wyoming ASR (Home Assistant) there, e.g. tcp://0.0.0.0:10300 "
        "(default: server.wyoming.uri, off)",
    )
    p.set_defaults(handler="voiced.server.serve:main")


def _add_transcribe(sub) -> None:
    p = sub.add_parser(
        "transcribe", parents=[_VERBOSITY], help="stream a WAV or raw PCM file to a recognizer and print results"
    )
    p.add_argument("file", help="WAV file, or raw 16-bit PCM with --rate; - reads stdin")
    p.add_argument(
        "--endpoint", default=f"127.0.0.1:{DEFAULT_PORT}", help="host:port of the server (default: the local server)"
    )
    p.add_argument("--language", default="en-US", help="language code (default en-US)")
    p.add_argument("--model", default="general", help="model name (default general)")
    p.add_argument("--partial", action="store_true", help="ask for intermediate results")
    p.add_argument("--rate", type=int, help="sample rate of raw PCM input (WAV files carry theirs)")
    p.add_argument("--fast", action="store_true", help="send as fast as possible, not at real-time pace")
    p.set_defaults(handler="voiced.transcribe:main")


def _add_run(sub) -> None:
    p = sub.add_parser("run", parents=[_VERBOSITY], help="run the voice-command daemon in the foreground")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="daemon YAML (default: $VOICED_CONFIG, ~/.config/voiced/voiced.yaml, "
        "/etc/voiced/voiced.yaml, then the bundled example)",
    )
    p.add_argument(
        "--input", metavar="FILE|-", help="read a WAV file (or raw PCM on stdin with -) instead of the microphone"
    )
    p.add_argument("--fast", action="store_true", help="read --input FILE as fast as possible, not at real-time pace")
    p.add_argument(
        "--events",
        choices=["text", "jsonl"],
        default="text",
        help="text: live caption and finals; jsonl: one JSON event per line on stdout",
    )
    p.set_defaults(handler="voiced.daemon:main")


def _add_devices(sub) -> None:
    p = sub.add_parser("devices", parents=[_VERBOSITY], help="list audio input devices")
    p.set_defaults(handler="voiced.audio.devices:list_devices_main")


def _add_check_config(sub) -> None:
    p = sub.add_parser(
        "check-config", parents=[_VERBOSITY], help="validate the config and command files; print located errors"
    )
    p.add_argument("--config", metavar="FILE", help="daemon YAML to check (default: as `voiced run` finds it)")
    p.add_argument(
        "--commands", nargs="+", metavar="PATH", help="command files or directories (default: those the config names)"
    )
    p.set_defaults(handler="voiced.check:check_config_main")


def _add_match(sub) -> None:
    p = sub.add_parser(
        "match", parents=[_VERBOSITY], help="show which command a sentence matches and the actions it would run"
    )
    p.add_argument("text", help="the sentence, as a recognizer would return it")
    p.add_argument("--config", metavar="FILE", help="daemon YAML naming the command files")
    p.add_argument("--run", action="store_true", help="also run the actions")
    p.add_argument(
        "--commands", nargs="+", metavar="PATH", help="command files or directories (default: those the config names)"
    )
    p.add_argument("--language", help="language of the text (default: the config's recognition language)")
    p.set_defaults(handler="voiced.check:match_main")


def _add_install_service(sub) -> None:
    p = sub.add_parser(
        "install-service", parents=[_VERBOSITY], help="install voiced as a systemd service (user, config, unit)"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.add_argument(
        "--unit",
        choices=["voiced", "serve"],
        default="voiced",
        help="voiced: the daemon (default); serve: the standalone recognition server",
    )
    p.add_argument("--now", action="store_true", help="also start the service")
    p.add_argument("--executable", metavar="PATH", help="voiced executable the unit runs (default: this one)")
    p.add_argument(
        "--example-config",
        metavar="FILE",
        help="copied to /etc/voiced/voiced.yaml if that is absent "
        "(default: this checkout's config/voiced.yaml, with its commands.yaml)",
    )
    p.add_argument("--root", default="/", metavar="DIR", help="install into an image or chroot at DIR")
    p.set_defaults(handler="voiced.ops.install:main")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voiced",
        description="Voice-command daemon for the SpeechKit STT v2 protocol, with an offline local recognizer.",
    )
    parser.add_argument("--version", action="version", version=f"voiced {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(sub)
    _add_transcribe(sub)
    _add_run(sub)
    _add_devices(sub)
    _add_check_config(sub)
    _add_match(sub)
    _add_install_service(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * (args.verbose + args.verbose_after)
    logging.basicConfig(
        level=max(level, logging.DEBUG), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if stderr_is_journal():  # under systemd: journald records the level itself
        logging.getLogger().handlers[0].setFormatter(JournalFormatter("%(name)s: %(message)s"))
    if args.command in ("run", "serve"):  # long-running: before any thread starts
        from voiced.ops.memory import limit_malloc_arenas

        limit_malloc_arenas()
    module_name, _, function_name = args.handler.partition(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `voiced ... | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush stays quiet
        return 0
