"""Where each key of a TOML document sits: tomllib gives values, not lines.

`key_lines` walks a document tomllib has already accepted and records the
line of every key, array element and table header under the same path the
checks report (`xtr.database-mapping[0].rlocs[1].weight`). It only has to
follow valid TOML, so it skips values rather than parsing them; it is best
effort, and a document it cannot follow just yields fewer lines.
"""

from __future__ import annotations

import contextlib

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}#\r\n")


def key_lines(text: str) -> dict[str, int]:
    """Map the path of every key, array element and [table] of `text` to its 1-based line."""
    scanner = _Scanner(text)
    # A construct the scanner does not follow ends the walk: keep what was found.
    with contextlib.suppress(IndexError, ValueError):
        scanner.document()
    return scanner.lines


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[str, int] = {}
        # Array-of-tables path (parents already indexed) -> index of its last element.
        self.arrays: dict[str, int] = {}

    def peek(self, ahead: int = 0) -> str:
        at = self.pos + ahead
        return self.text[at] if at < len(self.text) else ""

    def starts(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.advance()

    def skip_blank(self) -> None:
        """Spaces, newlines and comments: everything between two TOML tokens."""
        while self.peek():
            if self.peek() in " \t\r\n":
                self.advance()
            elif self.peek() == "#":
                end = self.text.find("\n", self.pos)
                self.advance((end if end >= 0 else len(self.text)) - self.pos)
            else:
                return

    def expect(self, token: str) -> None:
        if not self.starts(token):
            raise ValueError(f"expected {token!r} at line {self.line}")
        self.advance(len(token))

    def document(self) -> None:
        table = ""
        while True:
            self.skip_blank()
            if not self.peek():
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.keyval(table)

    def header(self) -> str:
        line = self.line
        is_array = self.starts("[[")
        self.advance(2 if is_array else 1)
        keys = self.dotted_key()
        self.expect("]]" if is_array else "]")
        path = ""
        for key in keys[:-1] if is_array else keys:
            path = self.indexed(join(path, key))
        if is_array:
            path = join(path, keys[-1])
            self.lines.setdefault(path, line)
            index = self.arrays.get(path, -1) + 1
            self.arrays[path] = index
            path = f"{path}[{index}]"
        self.lines.setdefault(path, line)
        return path

    def indexed(self, path: str) -> str:
        """A header names an array of tables by its last element: `[[a]]` then `[a.b]`."""
        return f"{path}[{self.arrays[path]}]" if path in self.arrays else path

    def dotted_key(self) -> list[str]:
        keys = [self.simple_key()]
        self.skip_spaces()
        while self.peek() == ".":
            self.advance()
            self.skip_spaces()
            keys.append(self.simple_key())
            self.skip_spaces()
        return keys

    def simple_key(self) -> str:
        self.skip_spaces()
        quote = self.peek()
        if quote in ('"', "'"):
            start = self.pos + 1
            self.string()
            return self.text[start : self.pos - 1]
        start = self.pos
        while self.peek() in _BARE_KEY:
            self.advance()
        if self.pos == start:
            raise ValueError(f"no key at line {self.line}")
        return self.text[start : self.pos]

    def keyval(self, table: str) -> None:
        line = self.line
        path = table
        for key in self.dotted_key():
            path = join(path, key)
            self.lines.setdefault(path, line)
        self.expect("=")
        self.skip_spaces()
        self.value(path)

    def value(self, path: str) -> None:
        char = self.peek()
        if char == "[":
            self.advance()
            index = 0
            while True:
                self.skip_blank()
                if self.peek() == "]":
                    self.advance()
                    return
                element = f"{path}[{index}]"
                self.lines[element] = self.line
                self.value(element)
                self.skip_blank()
                if self.peek() == ",":
                    self.advance()
                index += 1
        elif char == "{":
            self.advance()
            while True:
                self.skip_blank()
                if self.peek() == "}":
                    self.advance()
                    return
                self.keyval(path)
                self.skip_blank()
                if self.peek() == ",":
                    self.advance()
        elif char in ('"', "'"):
            self.string()
        else:
            start = self.pos
            while self.peek() and self.peek() not in _SCALAR_END:
                self.advance()
            if self.pos == start:
                raise ValueError(f"no value at line {self.line}")

    def string(self) -> None:
        quote = self.peek()
        triple = quote * 3
        if self.starts(triple):
            self.advance(3)
            while not self.starts(triple):
                self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
                if not self.peek():
                    raise ValueError("unterminated string")
            self.advance(3)
            # Up to two quotes may sit right before the closing three.
            for _ in range(2):
                if self.peek() == quote:
                    self.advance()
            return
        self.advance()
        while self.peek() != quote:
            if not self.peek() or self.peek() == "\n":
                raise ValueError("unterminated string")
            self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
        self.advance()
