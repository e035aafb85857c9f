"""A port taken off while its device does not let go: close() still ends its thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from station.flashing import FlashError
from station.production import Orchestrator, open_lot
from tests.conftest import TellingLock
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


class _Recorder:
    def __init__(self) -> None:
        self.items: list[object] = []
        self.lock = threading.Condition()

    def __call__(self, event: object) -> None:
        with self.lock:
            self.items.append(event)
            self.lock.notify_all()

    def wait_for(self, what: type, port: str) -> bool:
        with self.lock:
            return self.lock.wait_for(
                lambda: any(isinstance(e, what) and e.port == port for e in self.items),  # type: ignore[attr-defined]
                timeout=30.0,
            )


def test_remove_port_does_not_wait_for_the_port_and_says_when_it_let_go(tmp_path: Path) -> None:
    """The window's GUI thread calls remove_port (hot-plug, the demo's swaps): it returns while
    the port's thread still winds down; PortRemoved says when the device is free, no update of
    the port follows, and the port added again under that name waits for the old thread."""
    from station.production import PortRemoved, PortUpdate

    release = threading.Event()
    opened: list[str] = []
    lock = threading.Lock()

    def opener(port: str, **_: Any) -> Any:
        with lock:
            opened.append(port)
            first = len(opened) == 1
        if first:
            entered.set()
            release.wait()  # deaf to the cancel until released
        raise FlashError("no answer", port=port)

    entered = threading.Event()
    events = _Recorder()
    lot = open_lot(make_small_lot(tmp_path / "lot", 2))
    try:
        with Orchestrator(
            lot, on_event=events, auto_start=True, opener=opener, poll_interval=0.01
        ) as orch:
            orch.add_port("p")
            assert entered.wait(30.0)
            thread = next(t for t in threading.enumerate() if t.name == "port p")
            orch.remove_port("p")  # returns at once: the opener has not let go
            assert thread.is_alive() and orch.ports() == []
            with events.lock:
                seen = len(events.items)
                assert not any(isinstance(e, PortRemoved) for e in events.items)
            orch.add_port("p")  # the same port again: its worker waits for the old one
            with lock:
                assert opened == ["p"]
            release.set()
            assert events.wait_for(PortRemoved, "p")
            thread.join(30.0)
            assert not thread.is_alive()
            with events.lock:
                after = events.items[seen:]
            first_new = next(
                i for i, e in enumerate(after) if isinstance(e, PortUpdate) and e.port == "p"
            )
            removed = next(i for i, e in enumerate(after) if isinstance(e, PortRemoved))
            # the added port's first update ("idle") may come before the old thread ended;
            # the old thread's own updates ("cancelled", "waiting") never come
            assert all(
                e.state == "idle" and not e.message
                for e in after[:removed]
                if isinstance(e, PortUpdate)
            ), after[:removed]
            assert first_new < removed
            orch.remove_port("p")
            assert events.wait_for(PortRemoved, "p")
    finally:
        release.set()
        lot.close()


def test_remove_port_of_an_idle_port_says_so_at_once(tmp_path: Path) -> None:
    from station.production import PortRemoved

    events = _Recorder()
    lot = open_lot(make_small_lot(tmp_path / "lot", 2))
    try:
        with Orchestrator(lot, on_event=events) as orch:
            orch.add_port("idle")
            orch.remove_port("idle")
            assert [e for e in events.items if isinstance(e, PortRemoved)] == [PortRemoved("idle")]
            orch.remove_port("idle")  # twice: nothing more
            assert len([e for e in events.items if isinstance(e, PortRemoved)]) == 1
    finally:
        lot.close()


def test_no_update_of_a_port_arrives_after_remove_port_returned(tmp_path: Path) -> None:
    """An update already on its way out when the GUI thread removes its port is delivered
    before remove_port() returns, never after: the window forgets the port's view right after
    the call, and a late update brought it back (a view per swap in the window soak).

    (It watched the remover's frame with sys._current_frames() before. On CPython 3.11 that call
    can collect garbage while it holds the interpreter's thread list; a finalizer that lets go
    of the GIL then lets a thread that ends wait for the list while holding the GIL: the whole
    process hangs, beyond pytest-timeout's reach (python/cpython#106883). A CI run hung here.)"""
    from station.production import PortUpdate

    delivering, release = threading.Event(), threading.Event()
    order: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, PortUpdate) and event.port == "p" and event.message.startswith("next"):
            delivering.set()
            release.wait(30.0)  # a slow subscriber, half way through this update
            order.append("delivered")

    lot = open_lot(make_small_lot(tmp_path / "lot", 2))
    try:
        with Orchestrator(lot, on_event=on_event) as orch:
            orch.add_port("p")
            emit_lock = TellingLock(asker="remover")
            orch._table.get("p").emit_lock = emit_lock  # type: ignore[assignment]
            assigner = threading.Thread(target=orch.assign, args=("p", 0))
            assigner.start()
            assert delivering.wait(30.0)
            returned = threading.Event()

            def remove() -> None:
                orch.remove_port("p")
                order.append("removed")
                returned.set()

            remover = threading.Thread(target=remove, name="remover")
            remover.start()
            # until remove_port returned, or waits for the update on its way out
            while not emit_lock.asked.wait(0.01) and not returned.is_set():
                assert remover.is_alive()
            release.set()
            assigner.join(30.0)
            remover.join(30.0)
            assert order == ["delivered", "removed"]
    finally:
        release.set()
        lot.close()
