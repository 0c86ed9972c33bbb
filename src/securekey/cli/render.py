"""Everything the CLI shows on a terminal: the seed's lines, headers, tables, prompts, errors.

The text is the same with and without colour; colour (and glyph styling) is on only when the
stream is a terminal and ``NO_COLOR`` is unset. The ``⬢`` glyph before app names stays in plain
text too, as the seed shows it. Progress lines ("Creating … done") and warnings go to stderr,
results to stdout, as the Heroku CLI does, so ``securekey config -a X | grep`` sees only vars.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from securekey.cli.text import GLYPH, mask_keys, safe, wants_color
from securekey.cli.text import MARK as _MARK

__all__ = [
    "GLYPH",
    "Column",
    "Part",
    "Progress",
    "Renderer",
    "Status",
    "mask_keys",
    "wants_color",
    "when",
]

Part = str | Text


def when(value: object, *, short: bool = False) -> str:
    """An API timestamp (``2026-11-29T12:00:05Z``) as ``2026-11-29 12:00:05 UTC``.

    ``short`` gives ``2026-11-29 12:00Z`` for tables, where width is scarce.
    """
    if not isinstance(value, str) or "T" not in value:
        return "never" if value is None else safe(str(value))
    day, _, clock = value.rstrip("Z").partition("T")
    return f"{day} {clock[:5]}Z" if short else f"{day} {clock} UTC"


@dataclass
class Column:
    """A table column; ``flex`` columns are cut (with …) to fit the terminal's width."""

    title: str
    flex: bool = False
    minimum: int = 8


@dataclass
class Status:
    """What an action prints after ``...`` when it succeeds (``done``, ``free``, ``done, v2``)."""

    text: str = "done"


class Progress:
    """How far a long action is: ``advance(n)`` after each step (a bar, or a line per step)."""

    def __init__(self, step: Callable[[int], None]) -> None:
        self._step = step
        self.done = 0

    def advance(self, count: int) -> None:
        """``count`` more items are done."""
        self.done += count
        self._step(count)


def _console(stream: TextIO, color: bool, width: int) -> Console:
    return Console(
        file=stream,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        width=width,
        tab_size=4,
    )


class Renderer:
    """Writes the CLI's output to one stdout and one stderr, with or without colour."""

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        stdin: TextIO,
        *,
        color_out: bool = False,
        color_err: bool = False,
        width: int = 80,
    ) -> None:
        self._out_stream = out
        self._err_stream = err
        self._stdin = stdin
        self.width = max(width, 40)
        self.color = color_out
        self._out = _console(out, color_out, self.width)
        self._err = _console(err, color_err, self.width)

    @classmethod
    def for_terminal(cls, env: Mapping[str, str]) -> Renderer:
        """A renderer on this process's standard streams."""
        width = shutil.get_terminal_size((80, 24)).columns
        return cls(
            sys.stdout,
            sys.stderr,
            sys.stdin,
            color_out=wants_color(sys.stdout, env),
            color_err=wants_color(sys.stderr, env),
            width=width,
        )

    # ---------------------------------------------------------- styled names

    @staticmethod
    def app(name: str) -> Text:
        """``⬢ service-1``, in Heroku's app colour."""
        return Text(f"{GLYPH} {safe(name)}", style="magenta")

    @staticmethod
    def addon(name: str) -> Text:
        """An add-on's name."""
        return Text(safe(name), style="yellow")

    @staticmethod
    def attachment(name: str) -> Text:
        """An attachment or config var name."""
        return Text(safe(name), style="green")

    @staticmethod
    def strong(text: str) -> Text:
        """Emphasised text (what to type, a flag)."""
        return Text(safe(text), style="bold")

    # --------------------------------------------------------------- lines

    @staticmethod
    def _join(parts: Sequence[Part]) -> Text:
        return Text.assemble(*(p if isinstance(p, Text) else safe(p) for p in parts))

    def say(self, *parts: Part) -> None:
        """One line of results on stdout."""
        self._out.print(self._join(parts))

    def tell(self, *parts: Part) -> None:
        """One line for the person (progress, advice) on stderr."""
        self._err.print(self._join(parts))

    def raw(self, text: str) -> None:
        """Text exactly as given on stdout (a config value, a token, shell lines)."""
        self._out_stream.write(text + "\n")
        self._out_stream.flush()

    def json(self, data: Any) -> None:
        """Machine-readable output for scripts."""
        self.raw(json.dumps(data, indent=2, ensure_ascii=False))

    @contextmanager
    def action(self, *parts: Part) -> Iterator[Status]:
        """``Doing something... done``: the start now, the outcome when the block ends."""
        self._err.print(self._join([*parts, "... "]), end="")
        self._err.file.flush()
        status = Status()
        try:
            yield status
        except BaseException:
            self._err.print(Text("!", style="bold red"))
            raise
        self._err.print(status.text)

    @contextmanager
    def progress(self, total: int, *parts: Part) -> Iterator[Progress]:
        """A progress bar on stderr for ``total`` items (on a terminal; else a line per step)."""
        label = self._join(parts)
        try:
            terminal = self._err_stream.isatty()
        except (AttributeError, ValueError):
            terminal = False
        if not terminal:
            plain = label.plain

            def line(count: int) -> None:
                if count:
                    self._err.print(f"{plain}: {bar.done}/{total}")

            bar = Progress(line)
            yield bar
            return
        # rich.progress is imported here: only long actions need it (help stays quick).
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        with RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            # A terminal without colour (NO_COLOR) still gets the bar, in plain characters.
            console=Console(
                file=self._err_stream,
                force_terminal=True,
                no_color=not self._err.is_terminal,
                color_system="standard" if self._err.is_terminal else None,
                width=self.width,
            ),
            transient=False,
        ) as rich_bar:
            task = rich_bar.add_task(label.plain, total=total)
            yield Progress(lambda count: rich_bar.advance(task, count))

    def header(self, title: str) -> None:
        """``=== title``, as Heroku's styled headers."""
        self._out.print(Text.assemble(Text("=== ", style="dim"), Text(safe(title), style="bold")))

    def fields(self, rows: Sequence[tuple[str, Part | Sequence[str]]]) -> None:
        """``Key:  value`` lines with the values aligned; a list continues on the next lines."""
        if not rows:
            return
        pad = max(cell_len(key) for key, _ in rows) + 2
        for key, value in rows:
            label = Text(f"{key}:".ljust(pad), style="bold")
            values: list[Part] = (
                [value] if isinstance(value, str | Text) else list(value) or ["none"]
            )
            for i, item in enumerate(values):
                lead = label if i == 0 else Text(" " * pad)
                self._out.print(Text.assemble(lead, self._join([item])))

    def config(self, variables: Mapping[str, str]) -> None:
        """Config vars as ``NAME: value``, values aligned (Heroku's ``config`` view)."""
        pad = max((len(name) for name in variables), default=0)
        for name, value in variables.items():
            self._out.print(
                Text.assemble(
                    Text(f"{safe(name)}:", style="green"),
                    " " * (pad - len(name) + 1),
                    safe(value),
                )
            )

    def table(
        self, columns: Sequence[Column], rows: Sequence[Sequence[str]], *, titles: bool = True
    ) -> None:
        """Aligned columns that fit the width: flexible columns are cut with ``…``."""
        cells = [[[safe(line) for line in str(cell).split("\n")] for cell in row] for row in rows]
        widths = [cell_len(c.title) if titles else 0 for c in columns]
        for row in cells:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], *(cell_len(line) for line in cell))
        gap = 2
        excess = sum(widths) + gap * (len(columns) - 1) - self.width
        for i in sorted(range(len(columns)), key=lambda k: -widths[k]):
            if excess <= 0:
                break
            if columns[i].flex and widths[i] > columns[i].minimum:
                cut = min(excess, widths[i] - columns[i].minimum)
                widths[i] -= cut
                excess -= cut

        def line(texts: Sequence[Text]) -> Text:
            out = Text()
            for i, text in enumerate(texts):
                last = i == len(texts) - 1
                out.append_text(text)
                if not last:
                    out.append(" " * (max(widths[i] - cell_len(text.plain), 0) + gap))
            out.rstrip()
            return out

        if titles:
            # A title is cut like any cell when its column had to shrink below it.
            heads = [
                c.title if cell_len(c.title) <= w else _cut(c.title, w)
                for c, w in zip(columns, widths, strict=True)
            ]
            self._out.print(line([Text(h, style="bold") for h in heads]))
            self._out.print(line([Text("─" * w, style="dim") for w in widths]))
        for row in cells:
            for n in range(max(len(cell) for cell in row)):
                texts = []
                for i, cell in enumerate(row):
                    text = cell[n] if n < len(cell) else ""
                    if cell_len(text) > widths[i]:
                        text = _cut(text, widths[i])
                    texts.append(Text(text))
                self._out.print(line(texts))

    # ------------------------------------------------- warnings, prompts, errors

    def warning(self, lines: Sequence[Sequence[Part]]) -> None:
        """Heroku's ``▸`` block on stderr; the first line is the warning's title."""
        for i, parts in enumerate(lines):
            style = "bold red" if i == 0 else ""
            self._err.print(
                Text.assemble(Text(_MARK, style="yellow"), self._join(parts)), style=style
            )

    def ask(self, prompt: str = "> ") -> str | None:
        """Read one answer after ``prompt``; ``None`` at end of input."""
        self._err.print(prompt, end="")
        self._err.file.flush()
        line = self._stdin.readline()
        if not line:
            self._err.print()
            return None
        return line.rstrip("\r\n")

    def error(self, message: str) -> None:
        """One error line on stderr."""
        self._err.print(Text.assemble(Text(_MARK, style="red"), safe(message)))

    def stdout_is_terminal(self) -> bool:
        """Whether results go to a person's terminal (not a pipe or a file)."""
        try:
            return self._out_stream.isatty()
        except (AttributeError, ValueError):
            return False

    def stdin_is_terminal(self) -> bool:
        """Whether someone can answer a prompt."""
        try:
            return self._stdin.isatty()
        except (AttributeError, ValueError):
            return False


def _cut(text: str, width: int) -> str:
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out + "…"
