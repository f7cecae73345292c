"""The commands README.md shows a user, read out of it as a user would copy them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
STARTS = ("python ", "make ", "pip ", "bash ")
COMMENT = re.compile(r"\s+#\s.*$")                      # `cmd   # what it does`
INLINE = re.compile(r"`((?:python|make|bash) [^`]+)`")       # `python score.py ...` in a sentence


def normalise(command: str) -> str:
    return " ".join(command.split())


def code_block_commands(lines: list[str]) -> list[str]:
    """Command lines of the indented code blocks (fenced ones hold Python, not commands)."""
    found, fenced, i = [], False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("    ") and line.lstrip().startswith(STARTS):
            command = COMMENT.sub("", line.strip())
            while command.endswith("\\") and i + 1 < len(lines):   # shell line continuation
                i += 1
                command = command[:-1] + " " + COMMENT.sub("", lines[i].strip())
            found.append(command)
        i += 1
    return found


def readme_commands(text: str | None = None) -> list[str]:
    """Every distinct command of the README, in order of first appearance."""
    text = README.read_text() if text is None else text
    found = code_block_commands(text.splitlines()) + [m.group(1) for m in INLINE.finditer(text)]
    return list(dict.fromkeys(normalise(c) for c in found))
