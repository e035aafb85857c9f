"""A line's worth of ledger history for the figures' tests, the report page and the dashboard:
stations working one lot through the ledger's own API on a clock the test moves."""

from __future__ import annotations

import random
from collections.abc import Sequence

from station.ledger import Ledger, LedgerRow

T0 = 1_764_000_000.0  # 2025-11-24 16:00 UTC: a whole hour, so buckets start at T0


class Clock:
    """Stands in for the ledger's ``time`` module (patch ``station.ledger.connection.time``)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:  # the ledger's waits for a lock (none in these tests)
        return self.now


def rows(n: int, unit: str = "SN{:04d}") -> list[LedgerRow]:
    return [
        LedgerRow(i, i + 2, unit.format(i), unit.format(i), [unit.format(i), "v"]) for i in range(n)
    ]


def passed(led: Ledger, clock: Clock, mac: str, slot: str, timings: dict[str, float]) -> None:
    c = led.claim_next(mac=mac, port=f"/dev/ttyUSB{slot[-1]}", slot=slot)
    assert c is not None
    led.set_image(c, "ab" * 32)
    clock.now += timings.get("writing", 0.0)
    led.mark_written(c, {k: v for k, v in timings.items() if k != "verifying"})
    clock.now += timings.get("verifying", 0.0)
    led.complete(c, {"verifying": timings.get("verifying", 0.0)})


def failed(led: Ledger, clock: Clock, mac: str, slot: str, reason: str) -> None:
    c = led.claim_next(mac=mac, port=f"/dev/ttyUSB{slot[-1]}", slot=slot)
    assert c is not None
    clock.now += 1.0
    led.fail(c, reason, {"connecting": 1.0})


REASONS = (
    "writing: timed out after {n}.0 s waiting for {port}",
    "connecting: no answer from {port} (is the device in download mode?)",
    "verifying: read back differs at 0x{n}000",
    "checking: partition table has no partition named 'fctry'",
)


def busy_line(
    url: str,
    clock: Clock,
    *,
    stations: Sequence[str] = ("line-a", "line-b", "line-c"),
    slots: int = 4,
    hours: int = 6,
    lot_rows: int = 1200,
    seed: int = 7,
    start: float = T0,
) -> None:
    """A lot worked for ``hours`` by a few stations with ``slots`` slots each: most units pass,
    some fail (one slot of the second station is bad); the last station is still running.
    The work starts at ``start``."""
    rnd = random.Random(seed)
    first = Ledger(url, station_id=stations[0])
    first.import_lot("LINE-1", "r", rows(lot_rows))
    leds = [first] + [Ledger(url, station_id=s) for s in stations[1:]]
    for led in leds[1:]:
        led.attach("LINE-1")
    run_ids = [led.start_run() for led in leds]
    n = 0
    for hour in range(hours):
        rate = (0.5, 1.0, 1.0, 0.7, 1.0, 0.9)[hour % 6]
        for minute in range(0, 60, 3):
            clock.now = start + hour * 3600 + minute * 60
            for si, led in enumerate(leds):
                for slot in range(1, slots + 1):
                    if rnd.random() > rate:
                        continue
                    n += 1
                    mac = f"24:0a:c4:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
                    bad = 0.25 if (si == 1 and slot == 3) else 0.03
                    if rnd.random() < bad:
                        reason = rnd.choice(REASONS).format(
                            n=rnd.randint(2, 9), port=f"/dev/ttyUSB{slot}"
                        )
                        failed(led, clock, mac, f"slot {slot}", reason)
                        continue
                    passed(
                        led,
                        clock,
                        mac,
                        f"slot {slot}",
                        {
                            "connecting": rnd.gauss(0.8, 0.15) + (0.6 if si == 2 else 0.0),
                            "checking": abs(rnd.gauss(0.3, 0.05)),
                            "writing": rnd.gauss(4.0, 0.5),
                            "verifying": rnd.gauss(1.6, 0.3),
                            "resetting": abs(rnd.gauss(0.2, 0.05)),
                        },
                    )
    for led, run in zip(leds[:-1], run_ids[:-1], strict=True):
        led.end_run(run)
    for led in leds:
        led.close()
