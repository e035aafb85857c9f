"""What the operator reads: ports named by their slots, whatever the window has seen."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from station.gui.wording import for_operator

SLOTS = {
    "socket://127.0.0.1:9": "Slot 1",
    "COM1": "Slot 2",
    "/dev/ttyUSB0": "Slot 3",
}


def test_ports_are_named_by_their_slots_wherever_they_stand() -> None:
    said = for_operator(
        "garbled data from socket://127.0.0.1:9 while writing; COM1: no answer. "
        "could not open port '/dev/ttyUSB0' (on /dev/ttyUSB0.)",
        SLOTS,
    )
    assert said == (
        "garbled data from Slot 1 while writing; Slot 2: no answer. "
        "could not open port 'Slot 3' (on Slot 3.)"
    )


def test_only_whole_port_names_are_replaced() -> None:
    assert for_operator("COM10 and COM1", SLOTS) == "COM10 and Slot 2"
    assert for_operator("socket://127.0.0.1:99 hung", SLOTS) == "socket://127.0.0.1:99 hung"
    both = {**SLOTS, "COM10": "Slot 10"}
    assert for_operator("COM10 and COM1", both) == "Slot 10 and Slot 2"


def test_flags_become_what_an_operator_can_do() -> None:
    said = for_operator("COM1 stopped answering, or use a lower --baud", SLOTS)
    assert said == "Slot 2 stopped answering, or ask the engineer to lower the baud rate"


class _LookupsOnly(Mapping[str, str]):
    """Thousands of known ports (a shift's swaps), which a message must not be checked
    against one by one: iterating them fails the test."""

    def __init__(self, slots: dict[str, str]) -> None:
        self._slots = slots

    def __getitem__(self, port: str) -> str:
        return self._slots[port]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("every known port was checked against the message")

    def __len__(self) -> int:
        return len(self._slots)


def test_a_shift_of_swapped_ports_is_looked_up_not_scanned() -> None:
    known = {f"socket://127.0.0.1:{40000 + n}": f"Slot {n % 8 + 1}" for n in range(20_000)}
    said = for_operator("unit 7 done on socket://127.0.0.1:59999 (4.1 s)", _LookupsOnly(known))
    assert said == "unit 7 done on Slot 8 (4.1 s)"
