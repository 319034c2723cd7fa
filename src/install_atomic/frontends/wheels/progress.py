"""What ``install-atomic install`` prints while it works.

On a terminal each phase (resolving, fetching or building, staging N of M,
compiling, checking, committing) replaces the previous one on a single status
line of standard error, and the summary line stays.  When standard error is
not a terminal the phases are plain lines on standard output, nothing
decorative; ``-q`` keeps only warnings and errors, ``-v`` keeps every phase
line even on a terminal.  With ``--report -`` (the report on standard output)
every line goes to standard error, so that standard output is the JSON alone.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, *, quiet: int = 0, verbose: int = 0, stream: TextIO | None = None,
                 stdout_free: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.stream = stream or sys.stderr
        #: Where plain lines go: standard output, or standard error when standard output
        #: is kept for something else (``--report -``).
        self.out: TextIO | None = sys.stderr if stdout_free else None
        self.live = (not quiet and not verbose and hasattr(self.stream, "isatty")
                     and self.stream.isatty())
        self.started = time.monotonic()
        self._shown = False

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def phase(self, text: str, n: int | None = None, total: int | None = None) -> None:
        """A new phase of the work began."""
        if self.quiet:
            return
        counter = f"[{n}/{total}] " if n is not None and total else ""
        if self.live:
            elapsed = time.monotonic() - self.started
            line = f"install-atomic: {counter}{text} ({elapsed:.0f}s)"
            width = 120
            self._clear()
            self.stream.write(line[:width])
            self.stream.flush()
            self._shown = True
        else:
            print(f"install-atomic: {counter}{text}", file=self.out, flush=True)

    def say(self, text: str) -> None:
        """A line worth keeping (a planned step with --dry-run, say)."""
        if self.quiet:
            return
        self._clear()
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self._clear()
        print(text, file=sys.stderr, flush=True)

    def summary(self, text: str) -> None:
        if self.quiet:
            return
        self._clear()
        print(f"install-atomic: {text} ({time.monotonic() - self.started:.1f}s in all)",
              file=self.out, flush=True)

    def done(self) -> None:
        self._clear()
