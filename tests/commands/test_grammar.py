import re

import pytest
from hassil.sample import sample_intents

from voiced.commands import load_commands
from voiced.commands.grammar import GARBAGE_WORDS, to_jsgf
from voiced.server.pocketsphinx import grammar_words
from voiced.textnorm import digits_to_words, normalize


@pytest.fixture(scope="module")
def commands():
    return load_commands(["config/commands.yaml"])


def _expand(jsgf: str, rule: str = "utterance", limit: int = 200000) -> set[str]:
    """All sentences of a (non-recursive part of a) JSGF grammar, by naive expansion."""
    rules = dict(re.findall(r"^(?:public )?<(\w+)> = (.*);$", jsgf, re.M))

    def expand(body: str) -> set[str]:
        body = re.sub(r"/[\d.e-]+/", "", body).strip()
        tokens = re.findall(r"<\w+>|[()\[\]|]|[^\s()\[\]|<>]+", body)

        def seq(tokens):
            out = {""}
            i = 0
            while i < len(tokens):
                tok = tokens[i]
                if tok in "([":
                    depth, j = 1, i + 1
                    while depth:
                        depth += (tokens[j] in "([" and 1) or (tokens[j] in ")]" and -1) or 0
                        j += 1
                    inner = tokens[i + 1 : j - 1]
                    options = set()
                    for alt in split(inner):
                        options |= seq(alt)
                    if tok == "[":
                        options.add("")
                    i = j
                elif tok.startswith("<"):
                    options = expand(rules[tok[1:-1]])
                    i += 1
                else:
                    options = {tok}
                    i += 1
                out = {f"{a} {b}".strip() for a in out for b in options}
                assert len(out) < limit
            return out

        def split(tokens):
            parts, depth, cur = [], 0, []
            for tok in tokens:
                if tok == "|" and depth == 0:
                    parts.append(cur)
                    cur = []
                    continue
                depth += (tok in "([" and 1) or (tok in ")]" and -1) or 0
                cur.append(tok)
            parts.append(cur)
            return parts

        options = set()
        for alt in split(tokens):
            options |= seq(alt)
        return options

    return expand(rules[rule])


def test_grammar_accepts_exactly_what_the_matcher_matches(commands):
    jsgf = to_jsgf(commands, "en", garbage_weight=None)
    sentences = _expand(jsgf)
    # every sentence the grammar can produce is a command with the right slots
    for sentence in sorted(sentences)[::7]:
        assert commands.match(sentence, "en") is not None, sentence
    assert "alice set a timer for twenty five minutes" in sentences
    assert "switch off the lights in the living room" in sentences
    # and every template sample (digits spelled as words) is in the grammar
    samples = {s for _, s in sample_intents(commands.intents("en"), language="en")}
    spoken = {normalize(digits_to_words(s, "en"), "en") for s in samples}
    assert spoken <= sentences


def test_russian_grammar_spells_every_number_form(commands):
    jsgf = to_jsgf(commands, "ru", garbage_weight=None)
    sentences = _expand(jsgf)
    for text in (
        "поставь таймер на двадцать одну минуту",
        "заведи таймер на пять минут",
        "алиса включи свет на кухне",
        "сделай громкость сорок процентов",
    ):
        assert text in sentences
        assert commands.match(text, "ru") is not None


def test_rejection_branch_uses_only_non_command_filler_words(commands):
    jsgf = to_jsgf(commands, "en")
    assert "public <utterance> = /1/ [(computer | alice)] (" in jsgf
    fillers = set(re.search(r"^<filler> = \((.*)\);$", jsgf, re.M).group(1).split(" | "))
    assert len(fillers) > 100 and fillers <= set(GARBAGE_WORDS["en"])
    said = grammar_words(to_jsgf(commands, "en", garbage_weight=None))  # every word of the commands
    assert not fillers & said  # "the", "turn", "on", "light" are commands'
    assert {"the", "on", "light"} <= said
    # filler-only text never matches a command
    assert commands.match(" ".join(sorted(fillers)[:6]), "en") is None
