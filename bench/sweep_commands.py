"""bench_commands.py --sweep: the Whisper engine's decisions replayed for a grid of thresholds.

The direct engine runs with every threshold open, so each utterance's best candidate, its gap,
its number lead and whether a second recognizer vetoed its numbers are known; each setting
of the grid is then a replay, not a new run.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any


def replay(choice, margin: float, number_margin: float, number_lead: float) -> str | None:
    """What the Whisper engine would have reported with these thresholds: the direct engine
    ran with every threshold open, so each utterance's best candidate, its gap, its lead over
    a number that sounds alike, and whether the second recognizer vetoed its numbers are known."""
    if choice is None or (not choice.form and choice.gap is None):
        return None  # nothing heard, or nothing near: no threshold matters
    # (Russian: a number with no runner-up lead known was not confirmed)
    lead_ok = choice.lead >= number_lead if choice.lead is not None else "by nothing" not in choice.reason
    lead_ok = lead_ok and not choice.number_unclear  # only ever asked back
    vetoed = "other numbers" in choice.reason
    if choice.gap is None:  # heard as a command
        return choice.heard if lead_ok and not vetoed else ""
    strict = choice.changes_number and not choice.number_unclear
    within = choice.gap <= (number_margin if strict else margin)
    return choice.heard if not within else choice.candidate if lead_ok and not vetoed else ""


def sweep(sets: list[tuple[Any, list[Any], object]], judge: Callable[[object, Any, str | None], str]) -> None:
    """Accuracy and false actions for a grid of the Whisper engine's thresholds. `judge(command
    set, heard, replayed text or None)`: right / rejected / wrong / silent."""
    print("margin number_margin number_lead  " + "  ".join(f"{spec.name:>14s}" for spec, _, _ in sets))
    per_token = any(spec.language != "en" for spec, _, _ in sets)  # the multilingual model's scores
    margins = (0.5, 1.0, 1.45, 2.0, 3.0) if per_token else (1.0, 2.0, 3.0, 4.0, 5.0)
    number_margins = (0.25, 0.5, 1.0, 1.45) if per_token else (0.5, 1.0, 2.0, 3.0)
    leads = (0.0, 0.5, 1.0, 2.0, 3.0) if per_token else (2.0, 3.0, 4.0, 5.0)
    for margin in margins:
        for number_margin in number_margins:
            for number_lead in leads:
                if number_margin > margin:
                    continue
                row = []
                for _spec, heard, command_set in sets:
                    counts = collections.Counter()
                    for h in heard:
                        text = replay(h.choice, margin, number_margin, number_lead)
                        counts[judge(command_set, h, text)] += 1
                    commands = sum(h.expected is not None for h in heard)
                    row.append(f"{counts['right'] / max(1, commands):6.1%}/{counts['wrong'] / len(heard):5.1%}")
                print(f"{margin:6g} {number_margin:13g} {number_lead:11g}  " + "  ".join(f"{c:>14s}" for c in row))
