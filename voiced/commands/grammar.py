"""Compile the command templates of one language into a JSGF grammar for pocketsphinx.

Each hassil template becomes one JSGF alternative, walking hassil's own parse tree, so the
grammar accepts exactly the sentences the matcher does (list values and number ranges spelled
out as words, every Russian case and gender of a number included).

Rejection: a closed grammar forces any speech onto the nearest command. So the top rule
also offers a "garbage" loop of common short words; speech that is not a command decodes to
a string of those filler words, which then matches no command and runs nothing. The weight
of the command branch against the garbage branch trades missed commands for false actions
(measured in bench/bench_commands.py).
"""

from __future__ import annotations

import re

from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
)
from hassil.intents import Intents, RangeSlotList, TextSlotList

from voiced.commands.matching import CommandSet, base_language
from voiced.textnorm import number_words, spoken_words

# Filler words for the garbage loop: frequent, short, phonetically varied, so any speech
# finds a cheap path through them. Words used by the commands themselves are left out.
GARBAGE_WORDS = {
    "en": (
        "a the of and to in is it you that he was for on are as with his they i at be this have from or one "
        "had by but not what all were we when your can said there use an each which she do how their if will "
        "up other about out many then them these so some her would make like him into time has look two more "
        "write go see number no way could people my than first water been call who oil its now find long down "
        "day did get come made may part over new sound take only little work know place year live me back "
        "give most very after thing our just name good sentence man think say great where help through much "
        "before line right too mean old any same tell boy follow came want show also around form three small "
        "put end does another well large must big even such because turn here why ask went men read need land "
        "different home us move try kind hand picture again change play spell air away animal house point "
        "page letter mother answer found study still learn should world high every near add food between own "
        "below country plant last school father keep tree never start city earth eye light thought head under "
        "story saw left few while along might close something seem next hard open example begin life always "
        "those both paper together got group often run important until children side feet car mile night walk "
        "white sea began grow took river four carry state once book hear stop without second later miss idea "
        "enough eat face watch far really almost let above girl sometimes mountain cut young talk soon list "
        "song being leave family it's oh uh um ah yes okay hey"
    ).split(),
    "ru": (
        "и в не на я он что с а как это по но они к у же вы за бы от то из о мы так все её его ты был она "
        "только мне было вот меня еще нет ему теперь когда даже ну вдруг ли если уже или ни быть был него до "
        "вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их "
        "чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой "
        "совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем всех никогда можно при "
        "наконец два об другой хоть после над больше тот через эти нас про всего них какая много разве три "
        "эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно "
        "всю между да ага угу э ммм"
    ).split(),
}

_TOKEN = re.compile(r"^[\w']+$")


class _Compiler:
    def __init__(self, intents: Intents, language: str):
        self.intents = intents
        self.language = language
        self.rules: dict[str, str] = {}  # JSGF rule name -> body
        self.words: set[str] = set()

    def words_of(self, text: str) -> list[str]:
        tokens = []
        for token in spoken_words(text):
            if token.isdigit():
                spoken = number_words(int(token), self.language)[0].split()
                tokens.extend(spoken)
            else:
                tokens.append(token)
        self.words.update(tokens)
        return tokens

    def expression(self, expression: Expression) -> str:
        if isinstance(expression, TextChunk):
            return " ".join(self.words_of(expression.text))
        if isinstance(expression, Alternative):
            items = [self.expression(item) for item in expression.items]
            present = [item for item in items if item]
            body = "(" + " | ".join(dict.fromkeys(present)) + ")" if present else ""
            if expression.is_optional or len(present) < len(items):
                return f"[{body}]" if body else ""
            return body
        if isinstance(expression, Permutation):
            # JSGF has no permutation: spell out every order (templates keep these small)
            orders = [self.expression(Sequence(items=[item, rest])) for item, rest in expression.iterate_permutations()]
            return "(" + " | ".join(dict.fromkeys(o for o in orders if o)) + ")"
        if isinstance(expression, Sequence):
            return " ".join(part for part in (self.expression(item) for item in expression.items) if part)
        if isinstance(expression, RuleReference):
            return self.rule(expression.rule_name)
        if isinstance(expression, ListReference):
            return self.slot_list(expression)
        raise TypeError(f"unsupported template element {expression!r}")

    def rule(self, name: str) -> str:
        jsgf_name = "rule_" + _safe(name)
        if jsgf_name not in self.rules:
            self.rules[jsgf_name] = ""  # placeholder: a rule may refer to itself indirectly
            sentence: Sentence = self.intents.expansion_rules[name]
            self.rules[jsgf_name] = self.expression(sentence.expression)
        return f"<{jsgf_name}>"

    def slot_list(self, reference: ListReference) -> str:
        inline = reference.get_inline_range()
        slot_list = self.intents.slot_lists.get(reference.list_name)
        if slot_list is None and inline is not None:
            slot_list = RangeSlotList(name=reference.list_name, start=inline[0], stop=inline[1], step=inline[2])
        jsgf_name = "list_" + _safe(reference.list_name)
        if jsgf_name in self.rules:
            return f"<{jsgf_name}>"
        if isinstance(slot_list, RangeSlotList):
            spoken = []
            for value in range(slot_list.start, slot_list.stop + 1, slot_list.step):
                for form in number_words(value, self.language):
                    self.words.update(form.split())
                    spoken.append(form)
            body = "(" + " | ".join(dict.fromkeys(spoken)) + ")"
        elif isinstance(slot_list, TextSlotList):
            values = [self.expression(value.text_in) for value in slot_list.values]
            body = "(" + " | ".join(dict.fromkeys(v for v in values if v)) + ")"
        else:
            raise ValueError(f"list {{{reference.list_name}}} cannot be spoken (missing or wildcard)")
        self.rules[jsgf_name] = body
        return f"<{jsgf_name}>"


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name.replace("..", "_to_"))


def to_jsgf(
    command_set: CommandSet, language: str, garbage_weight: float | None = 1.0, command_weight: float = 1.0
) -> str:
    """The JSGF grammar of `language`'s commands. `garbage_weight=None` leaves out rejection."""
    language = base_language(language)
    intents = command_set.spoken_intents(language)
    compiler = _Compiler(intents, language)
    commands = []
    for name, intent in intents.intents.items():
        bodies = [compiler.expression(s.expression) for data in intent.data for s in data.sentences]
        rule = "cmd_" + _safe(name)
        compiler.rules[rule] = "(" + " | ".join(dict.fromkeys(b for b in bodies if b)) + ")"
        commands.append(f"<{rule}>")
    wake = [" ".join(compiler.words_of(w)) for w in command_set.wake_names(language)]
    command = "(" + " | ".join(commands) + ")"
    if wake:
        command = f"[{'(' + ' | '.join(wake) + ')'}] {command}"
    lines = ["#JSGF V1.0;", f"grammar voiced_{language};", ""]
    if garbage_weight is None:
        lines.append(f"public <utterance> = {command};")
    else:
        fillers = [w for w in GARBAGE_WORDS.get(language, ()) if w not in compiler.words and _TOKEN.match(w)]
        lines.append(f"public <utterance> = /{command_weight:g}/ {command} | /{garbage_weight:g}/ <garbage>;")
        lines.append("<garbage> = <filler>+;")
        lines.append("<filler> = (" + " | ".join(dict.fromkeys(fillers)) + ");")
    lines.extend(f"<{name}> = {body};" for name, body in compiler.rules.items() if body)
    return "\n".join(lines) + "\n"
