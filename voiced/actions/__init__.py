"""Actions a matched command runs: exec, http, mqtt, sound, say."""

from voiced.actions.config import ActionsSettings
from voiced.actions.runner import ActionRunner

__all__ = ["ActionRunner", "ActionsSettings"]
