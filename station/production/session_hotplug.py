"""Hot-plug for the station session: watch the serial ports; new devices become
:class:`~station.production.session.PortsPlugged`, unplugged ones
:class:`~station.production.session.PortOffline` (and back).

May import: station.flashing (lazily: PortWatcher), station.production.session's events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from station.production.session import StationSession


class HotPlug:
    """The ports a watcher sees, compared with the session's."""

    def __init__(self, session: StationSession) -> None:
        self.session = session
        self._present: set[str] = set()  # ports the watcher saw last
        self._watcher: Any | None = None

    def start(self, poll_interval: float = 1.0) -> None:
        if self._watcher is not None:
            return
        try:
            from station.flashing import PortWatcher
        except ImportError:
            return
        self._watcher = PortWatcher(poll_interval=poll_interval, on_change=self.changed)

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        stop = getattr(watcher, "stop", None)
        if stop is not None:
            stop()
        self._present = set()

    def changed(self, ports: Sequence[Any]) -> None:
        """The serial port list as it is now (PortInfo records or names; any thread)."""
        from station.production.session import PortOffline, PortsPlugged

        session = self.session
        slots = {getattr(p, "device", p): getattr(p, "slot", "") or None for p in ports}
        names = set(slots)
        new: list[tuple[str, str | None]] = []
        for name in sorted(names - self._present):
            session.log("info", "device plugged in", name)
            if session.mark_offline(name, False):
                session.emit(PortOffline(name, False))
            else:
                new.append((name, slots[name]))
        for name in sorted(self._present - names):
            session.log("warning", "device unplugged", name)
            session.mark_offline(name, True)
            session.emit(PortOffline(name, True))
        self._present = names
        if new:
            session.emit(PortsPlugged(tuple(new)))

    def present(self, port: str) -> bool:
        """Whether the watcher sees a device on ``port``."""
        return port in self._present
