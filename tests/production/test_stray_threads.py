"""A port taken off while its device does not let go: close() still ends its thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from station.flashing import FlashError
from station.production import Orchestrator, open_lot
from tests.production.conftest import make_small_lot


def test_close_joins_the_thread_of_a_port_removed_while_stuck(tmp_path: Path) -> None:
    """A device stuck in a call that does not see the cancel (a hung link) outlives
    remove_port()'s wait; close() must still wait for that thread, or it runs on after the
    station closed (found by the soak: a port thread left running after the window closed)."""
    entered = threading.Event()
    release = threading.Event()
    closed = threading.Event()  # set once close() returned
    orch: Orchestrator | None = None

    def stuck_opener(port: str, **_: Any) -> Any:
        entered.set()
        release.wait()  # deaf to the port's cancel
        assert orch is not None
        orch._closing.wait()  # and it lets go only once the station closes,
        closed.wait(0.5)  # and not at once (close() must wait for it, not race it)
        raise FlashError("no answer", port=port)

    lot = open_lot(make_small_lot(tmp_path / "lot", 4))
    try:
        orch = Orchestrator(
            lot, on_event=lambda ev: None, auto_start=True, opener=stuck_opener, poll_interval=0.01
        )
        orch.add_port("stuck")
        assert entered.wait(30.0)
        thread = next(t for t in threading.enumerate() if "stuck" in t.name)
        orch.remove_port("stuck", timeout=0.0)
        assert thread.is_alive()  # removed, still winding down
        release.set()
        orch.close(timeout=30.0)
        alive = thread.is_alive()
        closed.set()
        assert not alive
    finally:
        release.set()
        closed.set()
        lot.close()
