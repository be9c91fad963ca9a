"""Voice commands: YAML command files, matching transcripts to them, grammars for the local engine."""

from voiced.commands.config import CommandsSettings
from voiced.commands.loading import load_commands
from voiced.commands.matching import CommandSet

__all__ = ["CommandSet", "CommandsSettings", "load_commands"]
