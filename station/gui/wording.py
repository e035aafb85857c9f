"""What the operator reads: ports by their slot names, reasons without command-line flags.

Plain Python (no Qt), so the window, its models and the tests share one set of rules. The full
text (with the port's real name) stays in tooltips and in the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

# Command-line advice in the flashing layer's reasons -> what an operator can do in the window.
_CLI_ADVICE = (
    (re.compile(r",?\s*or use a lower --baud\b"), ", or ask the engineer to lower the baud rate"),
    (re.compile(r"\brun without --no-stub\b"), "ask the engineer (the device needs the stub)"),
    (re.compile(r"\s*\(?--[a-z][a-z0-9-]*\)?"), ""),  # any other flag: left out
)


def port_label(port: str, slots: Mapping[str, str]) -> str:
    """The name the operator knows a port by: its slot, else the port without its URL scheme
    ("127.0.0.1:9001" says more in a narrow column than "socket://127.…")."""
    if not port:
        return ""
    slot = slots.get(port)
    if slot:
        return slot
    return port.split("://", 1)[1] if "://" in port else port


# a word of a message that may be a port's name: up to whitespace, a quote, a bracket or a comma
_WORD = re.compile(r"[^\s'\"()\[\]<>{},;]+")


def for_operator(text: str, slots: Mapping[str, str] = {}) -> str:
    """``text`` with every known port named by its slot and command-line flags replaced by
    what the operator can do."""
    if slots:
        text = _WORD.sub(lambda word: _slot_of(word.group(0), slots), text)
    for pattern, replacement in _CLI_ADVICE:
        text = pattern.sub(replacement, text)
    return text


def _slot_of(word: str, slots: Mapping[str, str]) -> str:
    """``word`` with the port it names (perhaps followed by ":" or ".": "COM3: no answer")
    replaced by its slot's name. The words of a message are looked up, not every known port
    in turn: the window knows each port a device was ever swapped in on, thousands in a
    shift, and messages are read on every repaint. A whole word only: COM10 is not COM1."""
    slot = slots.get(word)
    if slot:
        return slot
    for end in range(len(word) - 1, 0, -1):
        if word[end] in ":.":
            slot = slots.get(word[:end])
            if slot:
                return slot + word[end:]
    return word


def elide_lines(text: str, width: int, lines: int, advance: Callable[[str], int]) -> str:
    """``text`` word-wrapped into at most ``lines`` lines of ``width`` pixels, the last one
    ending in "…" if the text goes on; ``advance(str) -> int`` measures a string (a
    QFontMetrics' horizontalAdvance). Keeps a card's height fixed whatever the message."""
    measure = advance
    words = text.split()
    out: list[str] = []
    current = ""
    i = 0
    while i < len(words):
        candidate = f"{current} {words[i]}" if current else words[i]
        if measure(candidate) <= width or not current:
            current = candidate
            i += 1
            continue
        out.append(current)
        current = ""
        if len(out) == lines:
            break
    if current and len(out) < lines:
        out.append(current)
        current = ""
    rest = i < len(words) or current
    if rest and out:
        last = out[-1]
        while last and measure(last + "…") > width:
            last = last[:-1]
        out[-1] = last.rstrip() + "…"
    # a single word wider than the line: cut it too
    out = [_cut(line, width, measure) for line in out]
    return "\n".join(out)


def _cut(line: str, width: int, measure: Callable[[str], int]) -> str:
    if measure(line) <= width:
        return line
    while line and measure(line + "…") > width:
        line = line[:-1]
    return line + "…"
