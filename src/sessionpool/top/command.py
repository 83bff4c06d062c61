"""`sessionpool top`: the refresh loop. Picks the source (metrics URL or database URL), scrapes
every interval, hands the figures to `view`, and turns an unreachable endpoint into exit 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from .._optional import require
from ..errors import UsageError
from .errors import EndpointError
from .metrics import Scrape, fetch, figures, parse, shown_url
from .server import ServerView, ServerWatcher, is_database_url

if TYPE_CHECKING:  # rich is an optional extra ([cli]); imported when the command runs
    from rich.console import Console, RenderableType

    Frames = Callable[[], RenderableType]

__all__ = ["TopOptions", "run_top"]

EXIT_OK = 0
EXIT_UNREACHABLE = 1
PLAIN_WIDTH = 200  # columns for plain output: a pipe or file has no width, and rows must not fold


@dataclass(frozen=True)
class TopOptions:
    """What `sessionpool top` was asked for.

    Raises:
        UsageError: the endpoint is neither an http(s) URL nor a database URL top can read, or
            the interval is not positive.
    """

    endpoint: str
    interval: float = 2.0
    once: bool = False

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise UsageError(f"interval must be more than 0 s (got {self.interval})")
        if not (self.is_metrics_url or is_database_url(self.endpoint)):
            # Never echo the endpoint: a malformed database URL may still hold a password.
            raise UsageError(
                "ENDPOINT must be a metrics URL (http://host:port/metrics) or a database URL "
                "(postgresql://..., mysql://...)"
            )

    @property
    def is_metrics_url(self) -> bool:
        return self.endpoint.lower().startswith(("http://", "https://"))


def run_top(options: TopOptions, stdout: TextIO | None = None) -> int:
    """Show the endpoint's figures until Ctrl-C, or one frame with ``once``.

    Args:
        options: the endpoint, refresh interval and mode.
        stdout: where frames go (default ``sys.stdout``); errors go to stderr.
    Returns:
        0, or 1 when the endpoint cannot be reached or read on the first try (later failures
        are shown under the last good frame while top keeps trying).
    Raises:
        ConfigError: a database URL that cannot be parsed (the message hides its password).
        MissingExtra: rich or prometheus_client is not installed (the [cli] extra).
    """
    require("sessionpool top", "cli", "rich", "prometheus_client")
    from rich.console import Console

    out = stdout if stdout is not None else sys.stdout
    plain = not out.isatty()
    console = Console(
        file=out,
        width=PLAIN_WIDTH if plain else None,
        color_system=None if plain else "auto",
        highlight=False,
    )
    watcher: ServerWatcher | None = None
    try:
        if options.is_metrics_url:
            frames = _metrics_frames(options.endpoint, plain)
        else:
            watcher = ServerWatcher(options.endpoint)
            watcher.open()
            frames = _server_frames(watcher, plain)
        first = frames()  # a failure here is fatal: most likely a wrong endpoint
        if options.once:
            if options.is_metrics_url:  # a second scrape, so rates cover one interval
                time.sleep(options.interval)
                first = frames()
            console.print(first)
            return EXIT_OK
        return _live(console, frames, first, options.interval)
    except EndpointError as exc:
        print(f"sessionpool top: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        if watcher is not None:
            watcher.close()


def _live(console: Console, frames: Frames, first: RenderableType, interval: float) -> int:
    from rich.live import Live

    try:
        with Live(first, console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(frames(), refresh=True)
    except KeyboardInterrupt:  # the way out of a live view, not a failure
        return EXIT_OK


def _metrics_frames(endpoint: str, plain: bool) -> Frames:
    """A frame maker that keeps the previous scrape, for rates and windowed percentiles."""
    from .view import metrics_frame

    previous: list[Scrape] = []
    shown = shown_url(endpoint)

    def frame() -> RenderableType:
        stamp = time.strftime("%H:%M:%S")
        try:
            scrape = parse(fetch(endpoint))
        except EndpointError as exc:
            if not previous:
                raise
            rows = figures(previous[-1])  # the last good figures, under the failure
            return metrics_frame(shown, rows, stamp, plain, f"scrape failed: {exc}")
        rows = figures(scrape, previous[-1] if previous else None)
        previous[:] = [scrape]
        return metrics_frame(shown, rows, stamp, plain)

    return frame


def _server_frames(watcher: ServerWatcher, plain: bool) -> Frames:
    from .view import server_frame

    last: list[ServerView] = []

    def frame() -> RenderableType:
        stamp = time.strftime("%H:%M:%S")
        try:
            view = watcher.read()
        except EndpointError as exc:
            if not last:
                raise
            return server_frame(last[-1], stamp, plain, str(exc))
        last[:] = [view]
        return server_frame(view, stamp, plain)

    return frame
