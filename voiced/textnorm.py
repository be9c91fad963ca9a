"""Text normalization shared by the matcher and the local server (en and ru).

The cloud writes numbers as digits, the local grammar engine as words; commands must match
either way. Number words come from unicode-rbnf (CLDR spell-out rules, already a hassil
dependency, the engines hassil holds) in both directions: digits -> words formats with it, and words -> digits looks
phrases up in a table built from every spell-out form it produces (all Russian genders and
cases included), so the two directions always agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

from hassil.numbers import get_rbnf_engine
from unicode_rbnf import RbnfEngine

# Numbers spoken in commands (timers, volumes, temperatures) stay well below this.
MAX_SPOKEN_NUMBER = 1000

# apostrophes join their word ("what's" -> "whats"): recognizers write "what's", "whats" or
# "what s", and templates are written with them; every other mark separates words
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")
_NON_WORD = re.compile(r"[^\w\s]|_")
_SPOKEN_NON_WORD = re.compile(r"[^\w\s']|_")
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")


def fold(text: str) -> str:
    """Lower case, `ё`->`е`, apostrophes dropped: what the words of templates and transcripts
    share before punctuation is removed (templates keep their syntax characters)."""
    return _APOSTROPHES.sub("", text.lower().replace("ё", "е"))


# signs recognizers write for words ("40%"): said as these words
_SIGN_WORDS = {"en": {"%": " percent "}, "ru": {"%": " процентов "}}


def normalize(text: str, language: str) -> str:
    """`fold`, signs that stand for words spelled out ("40%" -> "40 percent"), then punctuation
    and hyphens to spaces, single spaces. Templates and transcripts go through this function."""
    text = fold(text)
    for sign, words in _SIGN_WORDS.get(base_language(language), {}).items():
        text = text.replace(sign, words)
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def spoken_words(text: str) -> list[str]:
    """The words as a pronunciation dictionary spells them: like `normalize`, but apostrophes
    stay ("what's" is a dictionary word, "whats" is not)."""
    kept = _APOSTROPHES.sub("'", text.lower().replace("ё", "е"))
    return [word.strip("'") for word in _SPACES.split(_SPOKEN_NON_WORD.sub(" ", kept)) if word.strip("'")]


def base_language(language: str) -> str:
    """ "en-US", "en_us", "EN" -> "en"."""
    return language.replace("_", "-").split("-")[0].lower()


def _engine(language: str) -> RbnfEngine:
    # hassil's own cache: one engine per language in the process (Russian's holds ~1.7 MB)
    return get_rbnf_engine(base_language(language))


@lru_cache(maxsize=8)
def _word_table(language: str) -> tuple[dict[tuple[str, ...], int], int]:
    """Every spell-out form of 0..MAX_SPOKEN_NUMBER as a token tuple -> value; longest length."""
    engine = _engine(language)
    table: dict[tuple[str, ...], int] = {}
    for value in range(MAX_SPOKEN_NUMBER + 1):
        for ruleset, form in engine.format_number(value).text_by_ruleset.items():
            if "ordinal" in ruleset or "year" in ruleset:  # "twenty-first", "nineteen oh five"
                continue
            tokens = tuple(normalize(form, language).split())
            table.setdefault(tokens, value)
            if base_language(language) == "en" and "hundred" in tokens[:-1]:
                # "one hundred and five" is how many English speakers say it
                at = tokens.index("hundred") + 1
                table.setdefault((*tokens[:at], "and", *tokens[at:]), value)
    return table, max(len(key) for key in table)


def words_to_digits(text: str, language: str) -> str:
    """Replace spoken numbers by digits: "set a timer for twenty five minutes" -> "... 25 ...".

    The text is normalized first; the longest number phrase at each position wins.
    """
    tokens = normalize(text, language).split()
    table, longest = _word_table(language)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for length in range(min(longest, len(tokens) - i), 0, -1):
            value = table.get(tuple(tokens[i : i + length]))
            if value is not None:
                out.append(str(value))
                i += length
                break
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(_join_tens_and_units(out))


def _join_tens_and_units(tokens: list[str]) -> list[str]:
    """Tens and units written apart, as said ("40 9" or "50 09": Whisper's ways with "сорок
    девять", "пятьдесят девять"), are one number: 49, 59."""
    joined: list[str] = []
    for token in tokens:
        last = joined[-1] if joined else ""
        unit = token[1:] if len(token) == 2 and token[0] == "0" else token
        if (
            len(unit) == 1
            and unit.isdigit()
            and unit != "0"
            and len(last) == 2
            and last.isdigit()
            and last[1] == "0"
            and last[0] >= "2"
        ):
            joined[-1] = last[0] + unit
        else:
            joined.append(token)
    return joined


def number_words(value: int, language: str) -> list[str]:
    """All distinct normalized spoken forms of `value` (for grammars: every case and gender)."""
    forms = _engine(language).format_number(value).text_by_ruleset.values()
    return sorted({normalize(form, language) for form in forms})


def spell_number(value: int, language: str, ruleset: str | None = None) -> str:
    """How `value` is written in words, as a writer would ("twenty-five"); `ruleset`: a CLDR
    spell-out ruleset of the language ("spellout-cardinal-feminine-accusative": "одну")."""
    result = _engine(language).format_number(value)
    return result.text_by_ruleset.get(ruleset, result.text) if ruleset else result.text


def digits_to_words(text: str, language: str) -> str:
    """Replace digit runs by their default spoken form: "25 minutes" -> "twenty five minutes"."""
    return _DIGITS.sub(lambda m: normalize(spell_number(int(m.group()), language), language), text)
