"""Per-station settings kept in QSettings: ports, baud, auto-start, the PIN hash, window layout."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QSettings

from station.production.engineer import PinStore
from station.production.session import SessionConfig

DEFAULT_BAUD = 460800
DEMO_PIN = "123456"  # the engineer PIN of `station --demo` (documented in docs/operator.md)


def _as_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"1", "true", "yes", "on"}


class StationSettings:
    """Typed access to the station's QSettings; pass a QSettings (e.g. an INI file) in tests.

    The engineer PIN is not among them: its hash is kept machine-wide (:class:`PinStore`), where
    an operator account cannot change it."""

    def __init__(self, qsettings: QSettings | None = None, pins: PinStore | None = None) -> None:
        self.qs = qsettings if qsettings is not None else QSettings("station", "station")
        self.pins = pins if pins is not None else PinStore()
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each setting is written (the window tells the session)."""
        self._listeners.append(listener)

    def _set(self, key: str, value: object) -> None:
        self.qs.setValue(key, value)
        for listener in self._listeners:
            listener()

    def session_config(self) -> SessionConfig:
        """The settings the station session runs with (ports, labels, operator)."""
        return SessionConfig(
            baud=self.baud,
            operator=self.operator,
            continuous=self.continuous,
            auto_start=self.auto_start,
            label_output=self.label_output,
            print_on_pass=self.print_on_pass,
        )

    # --- ports -------------------------------------------------------------------------------
    @property
    def ports(self) -> list[str]:
        value = self.qs.value("ports/list", [])
        if isinstance(value, str):  # an INI file with a single port gives a plain string
            return [value] if value else []
        return [str(v) for v in value] if isinstance(value, list | tuple) else []

    @ports.setter
    def ports(self, ports: list[str]) -> None:
        self._set("ports/list", list(ports))

    @property
    def baud(self) -> int:
        try:
            return int(str(self.qs.value("ports/baud", DEFAULT_BAUD)))
        except (TypeError, ValueError):
            return DEFAULT_BAUD

    @baud.setter
    def baud(self, baud: int) -> None:
        self._set("ports/baud", int(baud))

    @property
    def auto_start(self) -> bool:
        return _as_bool(self.qs.value("ports/auto_start"), True)

    @auto_start.setter
    def auto_start(self, on: bool) -> None:
        self._set("ports/auto_start", bool(on))

    @property
    def continuous(self) -> bool:
        """Every port flashes whatever device is connected with the next pending row, no scan
        needed (the orchestrator's auto mode). Off: a port starts when a unit is scanned."""
        return _as_bool(self.qs.value("ports/continuous"), False)

    @continuous.setter
    def continuous(self, on: bool) -> None:
        self._set("ports/continuous", bool(on))

    @property
    def hot_plug(self) -> bool:
        """Add serial ports to the station as they are plugged in."""
        return _as_bool(self.qs.value("ports/hot_plug"), True)

    @hot_plug.setter
    def hot_plug(self, on: bool) -> None:
        self._set("ports/hot_plug", bool(on))

    @property
    def scanner_port(self) -> str:
        """A serial-port barcode scanner ("" for none: keyboard-wedge scanners need nothing)."""
        return str(self.qs.value("scanner/port", "") or "")

    @scanner_port.setter
    def scanner_port(self, port: str) -> None:
        self._set("scanner/port", port)

    @property
    def sound(self) -> bool:
        return _as_bool(self.qs.value("ui/sound"), True)

    @sound.setter
    def sound(self, on: bool) -> None:
        self._set("ui/sound", bool(on))

    @property
    def operator(self) -> str:
        return str(self.qs.value("ui/operator", "") or "")

    @operator.setter
    def operator(self, name: str) -> None:
        self._set("ui/operator", name)

    # --- labels --------------------------------------------------------------------------------
    @property
    def label_output(self) -> str:
        """Where labels go (``printer:``, ``printer:NAME``, ``pdf:PATH``, ``zpl:tcp://H:9100``,
        ``zpl:/dev/usb/lp0``); "" until an engineer sets one."""
        return str(self.qs.value("labels/output", "") or "")

    @label_output.setter
    def label_output(self, output: str) -> None:
        self._set("labels/output", output)

    @property
    def print_on_pass(self) -> bool:
        """Print a unit's label as soon as it passes (needs :attr:`label_output`)."""
        return _as_bool(self.qs.value("labels/print_on_pass"), False)

    @print_on_pass.setter
    def print_on_pass(self, on: bool) -> None:
        self._set("labels/print_on_pass", bool(on))

    @property
    def last_lot(self) -> str:
        return str(self.qs.value("lot/last", "") or "")

    @last_lot.setter
    def last_lot(self, path: str) -> None:
        self._set("lot/last", path)

    # --- engineer PIN --------------------------------------------------------------------------
    @property
    def has_pin(self) -> bool:
        return self.pins.has_pin

    def set_pin(self, pin: str) -> None:
        """Store a salted hash of the PIN (never the PIN itself), machine-wide; PinError when
        it is too short or this account cannot change the PIN file."""
        self.pins.set(pin)

    def check_pin(self, pin: str) -> bool:
        """The right PIN? Wrong tries are delayed more and more (see :meth:`pin_wait`)."""
        return self.pins.check(pin)

    def pin_wait(self) -> float:
        """Seconds until the next PIN is checked (after wrong tries); 0 for now."""
        return self.pins.wait()

    # --- window layout -------------------------------------------------------------------------
    def window_layout(self) -> tuple[QByteArray | None, QByteArray | None]:
        geometry = self.qs.value("window/geometry")
        state = self.qs.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def save_window_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        self._set("window/geometry", geometry)
        self._set("window/state", state)

    def sync(self) -> None:
        self.qs.sync()
