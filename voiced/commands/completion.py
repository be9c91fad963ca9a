"""Whether the words heard so far already are a whole command that nothing can follow.

The listening core ends a session early on such a partial transcript (after a short silence)
instead of waiting out the full end-of-speech silence. The answer comes from the commands
themselves: every sentence their templates accept is spelled out (voiced.commands.expansion),
and a text is a finished command when
- it is one of those sentences: "turn on the kitchen light";
- no sentence goes on from it: "set the volume to 50" is a sentence, but "percent" may
  follow; "set the fan to 20" may go on to "25";
- and it is no sentence one word longer than another sentence: "set the fan to 28" would
  also be "set the fan to 20" with one word more, "open the garage door" "open the garage".
  A grammar decoder's partial may well have that one word more than was said: the
  pocketsphinx grammar heard "twenty" followed by a pause as "twenty eight". Ending there
  would cut the speaker short ("... five" would be a session of its own), so such sentences
  wait out the end silence.

Numbers are compared as spoken words, so a number that may grow is seen to: "twenty" is the
start of "twenty five", "one" of "one hundred". Partials of the local engine write numbers as
digits ("set a timer for 20"): both sides are brought to the same spoken form first. Skip
words ("please") are no sentence's words here: said anywhere, they would keep every command
open; said after the pause, they are a session of their own that runs nothing. Pure.
"""

from __future__ import annotations

import functools

from voiced.commands.matching import CommandSet
from voiced.textnorm import base_language, digits_to_words, normalize, words_to_digits


def spoken_form(text: str, language: str) -> tuple[str, ...]:
    """Normalized words with every number in its one default spoken form: "20 five" and
    "twenty-five" both become ("twenty", "five")."""
    return tuple(digits_to_words(words_to_digits(text, language), language).split())


@functools.cache
def _number_words(digits: str, language: str) -> tuple[str, ...]:
    return spoken_form(digits, language)


def _sentence_words(words: tuple[str, ...], language: str) -> tuple[str, ...]:
    """A spelled-out sentence's spoken form: its numbers are the digits of range values (their
    words as written in a template are left as they are), each spoken once for all sentences.
    Russian numbers are slow to speak, and a language may have 50 000 sentences."""
    return tuple(spoken for word in words for spoken in (_number_words(word, language) if word.isdigit() else (word,)))


class CommandCompletion:
    """The finished commands of one language (see the module's docstring)."""

    def __init__(self, command_set: CommandSet, language: str):
        """The sentences come from `command_set.sentences` (bounded when the commands were
        loaded: commands.max_sentences)."""
        self._commands = command_set
        self._language = base_language(language)
        self._sentences: set[tuple[str, ...]] = set()
        self._go_on: set[tuple[str, ...]] = set()  # every proper start of a sentence
        for sentence in command_set.sentences(self._language):
            words = _sentence_words(sentence.words, self._language)
            self._sentences.add(words)
            self._go_on.update(words[:end] for end in range(1, len(words)))

    def finished(self, text: str) -> bool:
        """`text` is a whole command sentence (after an optional wake name), no command
        sentence goes on from it, and without its last word it is no sentence."""
        words = self._words(text)
        return (
            words is not None
            and words in self._sentences
            and words not in self._go_on
            and words[:-1] not in self._sentences
        )

    def is_sentence(self, text: str) -> bool:
        """`text` is a whole command sentence (more may follow or not)."""
        words = self._words(text)
        return words is not None and words in self._sentences

    def goes_on(self, text: str) -> bool:
        """Some command sentence goes on from `text` (a sentence itself or not)."""
        words = self._words(text)
        return words is not None and words in self._go_on

    def _words(self, text: str) -> tuple[str, ...] | None:
        """The spoken form of `text` without a wake name; None if it cannot be a command."""
        heard, had_wake_name = self._commands.strip_wake_name(normalize(text, self._language), self._language)
        if self._commands.settings.require_wake_name and not had_wake_name:
            return None
        return spoken_form(heard, self._language)
