"""The one error an action raises."""


class ActionError(Exception):
    """An action failed; the message is safe to log (no secrets)."""
