"""The port cards: one per slot, laid out so that every slot is in view (compact cards when
full ones do not fit), refreshed from the bridge's folded state.

May import: PySide6, station.gui (widgets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QSizePolicy, QWidget

from station.gui.widgets import PortCard, PortView

# Cards built per turn of the event loop when many ports come at once (a 32-port hub): a card
# costs ~4 ms to build and as much again to lay out and paint the first time, and 32 of them
# in one turn froze the window for a quarter of a second.
CARDS_PER_TURN = 4


class PortsPanel(QScrollArea):
    """The cards in a grid; ``room()`` says how much of the window they may take. Every card's
    requests come out of the panel's own signals (port name)."""

    # Cards forward to these, Qt signal to Qt signal. PySide6 keeps a weak reference for each
    # connection of a card straight to a plain Python object's method, after the card is gone:
    # two per device swapped, ~20,000 in a shift (the window soak's leak).
    start_requested = Signal(str)
    cancel_requested = Signal(str)
    chosen = Signal(str)

    def __init__(self, room: Callable[[], tuple[int, int]]) -> None:
        super().__init__()
        self._room = room
        self.cards: dict[str, PortCard] = {}
        self.host = QWidget()
        self.grid = QGridLayout(self.host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(8)
        self.no_ports = QLabel(
            "No ports yet. Plug in a device, or add ports in Settings (engineer mode)."
        )
        self.no_ports.setWordWrap(True)
        self.no_ports.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid.addWidget(self.no_ports, 0, 0)
        self.setWidgetResizable(True)
        self.setWidget(self.host)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._mode: tuple[int, bool] | None = None

    # --- cards ---------------------------------------------------------------------------------
    def add_card(self, port: str, slot: str, view: PortView | None) -> PortCard:
        card = PortCard(port, slot)
        if view is not None:
            card.set_view(view)
        card.start_requested.connect(self.start_requested)
        card.cancel_requested.connect(self.cancel_requested)
        card.chosen.connect(self.chosen)
        self.cards[port] = card
        return card

    def rename_card(self, old: str, new: str, view: PortView | None) -> PortCard | None:
        """The card of ``old``'s slot now stands for port ``new`` (a device swapped in the
        slot): the same widget in the same place, so a swap lays nothing out again."""
        card = self.cards.get(old)
        if card is None:
            return None
        cards = [(new if p == old else p, c) for p, c in self.cards.items()]
        self.cards.clear()
        self.cards.update(cards)  # the same dict: the window shares it
        if view is not None:
            card.set_view(view)
        return card

    def remove_card(self, port: str) -> None:
        self.remove_cards([port])

    def remove_cards(self, ports: list[str]) -> None:
        for port in ports:
            card = self.cards.pop(port, None)
            if card is not None:
                self.grid.removeWidget(card)
                card.deleteLater()
        self.relayout()

    def reorder(self, order: list[str]) -> None:
        cards = {p: self.cards[p] for p in order if p in self.cards}
        self.cards.clear()
        self.cards.update(cards)  # the same dict: the window shares it
        self.relayout()

    def show_views(self, views: dict[str, PortView] | None, now: float) -> None:
        if views is not None:
            for port, view in views.items():
                card = self.cards.get(port)
                if card is not None:
                    card.set_view(view)
        for card in self.cards.values():
            card.tick(now)  # a working port's clock runs between its events

    def select(self, port: str | None) -> None:
        for p, card in self.cards.items():
            card.set_selected(p == port)

    # --- layout --------------------------------------------------------------------------------
    def card_layout(self, expected: int = 0) -> tuple[int, bool]:
        """Columns, and whether the cards are compact: full cards when they all fit in view,
        else compact ones (an operator must see every slot without scrolling: eight ports on a
        1366x768 line PC). ``expected``: the cards still being built count too."""
        if not self.cards:
            return 1, False
        n = max(expected, len(self.cards))
        card = next(iter(self.cards.values()))
        room_width, room_height = self._room()
        spacing = self.grid.spacing()

        def columns(compact: bool) -> int:
            width = card.width_for(compact=compact) + spacing
            return max(1, min(n, (room_width + spacing) // width))

        def fits(cols: int, height: int) -> bool:
            return -(-n // cols) * (height + spacing) <= room_height + spacing

        cols = columns(False)
        if n == 1 or fits(cols, card.full_height):
            return cols, False
        widest = columns(True)
        # the fewest columns that fit: the widest cards, the state word at its largest
        return next((c for c in range(1, widest + 1) if fits(c, card.compact_height)), widest), True

    def place(self, cards: list[PortCard], expected: int) -> None:
        """Put new ``cards`` (the last ones of :attr:`cards`) in the grid, laid out for
        ``expected`` cards in all: the cards already there stay where they are."""
        mode = self.card_layout(expected)
        shown = list(self.cards.values())
        if mode != self._mode or not cards or shown[-len(cards) :] != cards:
            self.relayout(expected)
            return
        cols, compact = mode
        for i, card in enumerate(cards, start=len(shown) - len(cards)):
            card.set_compact(compact)
            self.grid.addWidget(card, i // cols, i % cols)
        self.updateGeometry()

    def relayout(self, expected: int = 0) -> None:
        for card in self.cards.values():
            self.grid.removeWidget(card)
        self.grid.removeWidget(self.no_ports)
        self.no_ports.setVisible(not self.cards)
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)
        if not self.cards:
            self.grid.addWidget(self.no_ports, 0, 0)
            self._mode = None
            self.updateGeometry()
            return
        cols, compact = self.card_layout(expected)
        for i, card in enumerate(self.cards.values()):
            card.set_compact(compact)
            self.grid.addWidget(card, i // cols, i % cols)
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 1 if c < cols else 0)
        # every row of cards has its height from the start, counting the cards still being
        # built: the window's layout does not change (the row table below is not laid out and
        # repainted again) as they come
        rows = -(-max(expected, len(self.cards)) // cols)
        card = next(iter(self.cards.values()))
        height = card.compact_height if compact else card.full_height
        for r in range(self.grid.rowCount()):
            self.grid.setRowMinimumHeight(r, height if r < rows else 0)
        self.grid.setRowStretch(rows, 1)  # the room below the last row
        self._mode = (cols, compact)
        self.updateGeometry()  # the size hint is the cards' height

    def room_changed(self) -> None:
        """The cards' room changed (window, dock or log resized): relayout if the mode does."""
        if self.cards and self.card_layout() != self._mode:
            self.relayout()

    # --- QScrollArea ---------------------------------------------------------------------------
    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.room_changed()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        handled = super().eventFilter(watched, event)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the cards' height changed: so does this area's size hint
        return handled

    def sizeHint(self) -> QSize:
        """As tall as the cards (the scan panel below takes the rest of the room)."""
        hint = super().sizeHint()
        widget = self.widget()
        if widget is None:
            return hint
        return QSize(hint.width(), widget.sizeHint().height() + 2 * self.frameWidth())


class StationPorts:
    """The station's ports as the window shows them: a card per slot in ``panel``, the
    bridge's folded state behind each, the session told of every port that comes or goes."""

    def __init__(self, window: Any, panel: PortsPanel) -> None:
        self.window = window
        self.panel = panel
        self.session = window.session
        self.bridge = window.bridge
        self.chosen: str | None = None
        # ports plugged in whose cards are still being built (or painted): the session gets
        # them all at once when the last card is on screen (port -> slot name, in order)
        self._waiting: dict[str, str] = {}
        self._turn_queued = False  # a later turn of card building (or the hand-over) is due
        panel.start_requested.connect(window.start_port)
        panel.cancel_requested.connect(self.session.cancel)  # and drops the unit waiting
        panel.chosen.connect(self.choose_port)

    def add_port(self, port: str, slot: str | None = None) -> None:
        """Put ``port`` on the station (a card, then the session)."""
        self.add_ports([(port, slot)])

    def add_ports(self, ports: list[tuple[str, str | None]]) -> None:
        """Put several ports on the station: every card is built and laid out first, then the
        session gets the ports (in continuous mode each starts working at once, and building
        widgets while flashing threads compete for the GIL would freeze the window).

        Up to :data:`CARDS_PER_TURN` cards are built at once; more are built over the next
        turns of the event loop, each turn's cards painted before the next are built, and the
        session gets the ports when the last card is on screen."""
        if self.session.lot is None:
            return
        for port, slot in ports:
            if port in self.panel.cards or port in self._waiting:
                continue
            name = slot or f"Slot {len(self.panel.cards) + len(self._unbuilt()) + 1}"
            self.window.slot_names[port] = name
            self.bridge.add_port(port, name)
            self._waiting[port] = name
        if not self._waiting or self._turn_queued:
            return  # nothing new, or the queued turn takes the new ports too
        self.session.start_device_host()
        self._build_some()
        if self._unbuilt():
            self._queue_turn()
            return
        self.panel.host.repaint()  # paint the cards now, before any port works
        self._hand_over()

    @property
    def plugging(self) -> bool:
        """Ports are plugged in whose cards are still being built: the session has not got
        them yet."""
        return bool(self._waiting)

    def _unbuilt(self) -> list[str]:
        return [p for p in self._waiting if p not in self.panel.cards]

    def _build_some(self) -> None:
        """Build the next cards, laid out for all the cards still to come."""
        unbuilt = self._unbuilt()
        batch = [
            self.panel.add_card(port, self._waiting[port], self.bridge.view(port))
            for port in unbuilt[:CARDS_PER_TURN]
        ]
        self.panel.place(batch, expected=len(self.panel.cards) + len(unbuilt) - len(batch))

    def _queue_turn(self) -> None:
        # a timer, not a posted call: those run in the same pass as the paint, with no input
        # or timer of the window's in between
        self._turn_queued = True
        QTimer.singleShot(1, self.panel, self._turn)

    def _turn(self) -> None:
        """A later turn, after the last one's paint: more cards, or the ports to the session."""
        self._turn_queued = False
        if self.session.lot is None:  # the lot closed meanwhile
            self._waiting.clear()
            return
        if self._unbuilt():
            self._build_some()
            self._queue_turn()  # the hand-over after this turn's paint
        else:
            self._hand_over()

    def _hand_over(self) -> None:
        """Every waiting port's card is on screen: the session gets the ports."""
        waiting, self._waiting = self._waiting, {}
        for port, name in waiting.items():
            if not self.session.add_port(port, name):
                self.remove_card(port)

    def replace_port(self, old: str, new: str) -> None:
        """A slot's device now answers on another port (e.g. a new simulated device): keep the
        slot's card, name, place, counters and choice. A shift swaps thousands of devices: a
        new card per swap cost the window a widget tree and three layouts each time."""
        card = self.panel.cards.get(old)
        waiting = old in self._waiting  # plugged in a moment ago: the session has not got it
        if (card is None and not waiting) or self.session.lot is None:
            return
        if new in self.panel.cards or new in self._waiting:
            return
        view = self.bridge.view(old) or (card.view if card is not None else None)
        slot = view.slot if view is not None else self._waiting[old]
        settings = self.window.settings
        ports = settings.ports
        if old in ports:  # the station's port list follows (Settings shows the ports as they are)
            ports[ports.index(old)] = new
            settings.ports = ports
        if not waiting:
            self.session.remove_port(old)
        self.bridge.remove_port(old)
        passed, failed = (view.passed_count, view.failed_count) if view is not None else (0, 0)
        self.bridge.add_port(new, slot, passed=passed, failed=failed)
        self.window.slot_names[new] = slot
        if card is not None:
            self.panel.rename_card(old, new, self.bridge.view(new))
        if self.chosen == old:
            self.chosen = new  # the operator chose the slot, whichever device is in it
        if waiting:  # the session gets it with the others
            self._waiting = {(new if p == old else p): n for p, n in self._waiting.items()}
            return
        self.session.start_device_host()
        if not self.session.add_port(new, slot):
            self.remove_card(new)

    def remove_port(self, port: str) -> None:
        if port in self.panel.cards and port not in self._waiting:
            self.session.remove_port(port)
        self.remove_card(port)

    def remove_card(self, port: str) -> None:
        self.remove_cards([port])

    def remove_cards(self, ports: list[str]) -> None:
        for port in ports:
            self._waiting.pop(port, None)
            self.bridge.remove_port(port)
        self.panel.remove_cards(ports)  # one layout for all
        if self.chosen in ports:
            self.choose_port(None)

    def remove_all(self) -> None:
        self.remove_cards(list(dict.fromkeys([*self._waiting, *self.panel.cards])))

    def choose_port(self, port: str | None) -> None:
        """The port the next scan goes to (None: the next free one)."""
        cards = self.panel.cards
        self.chosen = port if port in cards else None
        self.panel.select(self.chosen)
        self.window.scan_panel.set_port_choice(
            cards[self.chosen].view.slot if self.chosen else None
        )

    def choose_port_number(self, n: int) -> None:
        ports = list(self.panel.cards)
        if 0 < n <= len(ports):
            self.choose_port(ports[n - 1])
