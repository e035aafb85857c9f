"""Keep espefuse's and espsecure's console output out of the station's output.

Both print through esptool's process-wide logger; on this thread, for the block's duration,
their messages go to a :class:`~station.flashing.routing.JobSink` instead (kept for error
reasons; espefuse prints key bytes only as ``??`` unless asked, and we never ask).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from station.flashing.routing import JobSink, router


@contextlib.contextmanager
def quiet() -> Iterator[JobSink]:
    # a per-thread sink, not contextlib.redirect_stdout: several ports burn at once, and
    # swapping the process's sys.stdout from several threads would lose or keep it redirected
    sink = JobSink()
    with router().bound(sink):
        yield sink
