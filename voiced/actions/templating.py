"""Substitute match values into action templates: `string.Template`, never evaluation.

Values are data: they are inserted as text into one argument / one string and are never
parsed again. Where the destination has its own syntax, the value is escaped for it
(URL components are percent-encoded, MQTT topic wildcards and level separators replaced).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote


def template_values(match) -> dict[str, Any]:
    """What `$name` can refer to in an action: the slots, `$intent`, `$text` and `$raw_text`.

    A transcript is untrusted input. `$text` is what the matcher matched, like a slot value:
    normalized to words and single spaces (no punctuation, so no leading "-rf", no newlines or
    control characters). `$raw_text` is the transcript exactly as the recognizer returned it,
    only for an action that asks for it by that name."""
    return {**match.slots, "intent": match.intent, "text": match.text, "raw_text": match.original_text or match.text}


def render(template: str, values: Mapping[str, Any], escape: Callable[[str], str] = str) -> str:
    """`$name` / `${name}` replaced by escape(str(value)); unknown names are left as written."""
    return string.Template(template).safe_substitute({k: escape(str(v)) for k, v in values.items()})


def render_data(data: Any, values: Mapping[str, Any]) -> Any:
    """Render every string in a JSON-like structure. A string that is exactly one reference
    (`"$minutes"`) becomes the typed value, so numbers stay numbers in a JSON body."""
    if isinstance(data, str):
        template = string.Template(data)
        names = template.get_identifiers()
        if len(names) == 1 and data.strip() in (f"${names[0]}", f"${{{names[0]}}}") and names[0] in values:
            return values[names[0]]
        return render(data, values)
    if isinstance(data, Mapping):
        return {render(str(k), values): render_data(v, values) for k, v in data.items()}
    if isinstance(data, list):
        return [render_data(item, values) for item in data]
    return data


def url_component(value: str) -> str:
    return quote(value, safe="")


def topic_level(value: str) -> str:
    # a value must not add levels or wildcards to the topic it is put in
    return value.replace("/", "_").replace("+", "_").replace("#", "_").replace("\0", "")


MAX_TOPIC_BYTES = 65535  # the length field of an MQTT string


def topic_problem(topic: str) -> str | None:
    """Why `topic` cannot be published to (None: it can): empty, too long, wildcards, or
    characters MQTT forbids (U+0000, surrogates) or brokers refuse (other control characters:
    mosquitto drops the connection over them)."""
    if not topic:
        return "it is empty"
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return f"it is longer than {MAX_TOPIC_BYTES} bytes"
    if "+" in topic or "#" in topic:
        return "wildcards (+, #) are for subscriptions"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in topic):
        return "it contains control characters"
    return None
