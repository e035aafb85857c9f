"""Run a lot's recipe on one unit, over the unit's own connection, resumably.

:class:`Provisioner` is what the orchestrator calls per unit::

    prov = Provisioner(settings, journal)            # once per lot
    keys = prov.keys(unit)                            # escrowed, hashes on record
    regions = prov.encrypt(keys, regions, table, …)   # host-side flash encryption
    … write + verify the (encrypted) regions …
    prov.burn(esp, unit)                              # keys, enables, release eFuses
    prov.lock(esp, unit)                              # the final lock, last
    prov.verified(unit)                               # optional: delete host key copies

The regions are written before the burn: esptool refuses to write the bootloader once secure
boot is on, and any region once flash encryption's release eFuses are burned. A unit that
comes back with part of its recipe burned (see :meth:`Provisioner.inspect`) has its regions
read back and compared rather than rewritten; a rewrite then needs esptool's ``force``.

``esp`` is the unit's connected esptool loader (or espefuse's virtual controller). Each run
reads the eFuses first and classifies every step: done, partly done, to do, or foreign. A
board with anything foreign (a key block holding a key this station did not burn for this
device, eFuses of a recipe the lot does not have) is refused before anything is burned. Steps
already done are skipped, a step cut short is completed, nothing is burned twice.
"""

from __future__ import annotations

import enum
import io
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from station.errors import Problem, StationError
from station.security.chips import ChipCaps, chip_caps
from station.security.escrow import KeyEscrow
from station.security.journal import StepJournal
from station.security.recipes import KeySource, Kind, Phase, Plan, Step, build_plan
from station.security.settings import SecuritySettings

SECURITY_PURPOSES = ("XTS_AES", "HMAC_", "SECURE_BOOT_DIGEST", "ECDSA_KEY")


class State(enum.Enum):
    TODO = "to do"
    PARTIAL = "partly done"
    DONE = "done"


class BoardRefused(StationError):
    """The board's eFuses do not fit the lot's recipe; nothing was burned. ``reasons`` are in
    the operator's words (exit code 1: a failed device, not bad input)."""

    def __init__(self, device: str, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__([Problem(device, 0, 0, "security", r) for r in reasons], exit_code=1)


class BurnFailed(StationError):
    """A step was burned but its eFuses do not read back as planned."""

    def __init__(self, device: str, step: Step, detail: str) -> None:
        self.step = step
        super().__init__(Problem(device, 0, 0, step.id, detail), exit_code=1)


@dataclass(frozen=True)
class UnitKeys:
    """A unit's key material (never logged): the XTS-AES key and the HMAC key."""

    unit: str
    xts: bytes | None = None
    hmac: bytes | None = None

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return (
            f"UnitKeys({self.unit!r}, xts={'set' if self.xts else None}, "
            f"hmac={'set' if self.hmac else None})"
        )


@dataclass(frozen=True)
class StepOutcome:
    step: Step
    before: State  # what the eFuses showed
    burned: bool  # False when it was already done


class Provisioner:
    """A lot's recipe, ready to run on units (thread-safe: one call per unit connection)."""

    def __init__(
        self,
        settings: SecuritySettings,
        journal: StepJournal,
        *,
        escrow: KeyEscrow | None = None,
        caps: ChipCaps | None = None,
    ) -> None:
        self.settings = settings
        self.journal = journal
        caps = caps or chip_caps(settings.chip)
        if caps is None:
            raise StationError.at(
                str(settings.lot_file), f"no recipes for {settings.chip}", key="security.chip"
            )
        self.caps = caps
        self.plan: Plan = build_plan(settings, caps)
        self.escrow = escrow or KeyEscrow(settings.key_folder, journal)
        self._lot_hmac = settings.hmac_keyfile.read_bytes() if settings.hmac_keyfile else None

    # -- key material ----------------------------------------------------------------------
    def keys(self, unit: str) -> UnitKeys:
        """The unit's keys: made once (``secrets``), escrowed durably with their SHA-256 on
        record before they are returned, the same on every later call."""
        xts = hmac = None
        if self.settings.has("flash_encryption"):
            xts = self.escrow.key(unit, "xts", 32 if self.settings.xts_aes == 128 else 64)
        if self.settings.has("nvs_hmac"):
            if self.settings.hmac_key_source == "per-unit":
                hmac = self.escrow.key(unit, "hmac", 32)
            else:
                hmac = self._lot_hmac
        return UnitKeys(unit, xts, hmac)

    def encrypt(
        self,
        keys: UnitKeys,
        regions: Sequence[Any],
        partitions: Sequence[Any],
        *,
        bootloader: int | None,
        table: int | None,
    ) -> tuple[Any, ...]:
        """The unit's write regions, flash-encrypted where ESP-IDF expects it (unchanged when
        the lot has no flash encryption recipe)."""
        if keys.xts is None:
            return tuple(regions)
        from station.security.flashenc import encrypt_regions

        return encrypt_regions(keys.xts, regions, partitions, bootloader=bootloader, table=table)

    # -- eFuses ----------------------------------------------------------------------------
    def inspect(
        self, esp: Any, unit: str, device: str | None = None
    ) -> tuple[str, list[tuple[Step, State]]]:
        """Read the eFuses and classify every step; BoardRefused if anything is foreign.
        Returns the device id (its MAC, unless given) and the states."""
        with _quiet():
            commands = _commands(esp)
        return self._classify(commands, unit, device)

    def check_board(self, esp: Any, device: str, unit: str | None = None) -> None:
        """Refuse a board whose eFuses do not fit the lot (BoardRefused) before a unit is
        chosen for it: ``unit`` is the unit the device is known to hold, if any (without it,
        only what the journal recorded for ``device`` counts as this station's)."""
        with _quiet():
            commands = _commands(esp)
        self._classify(commands, unit, device)

    def burn(
        self,
        esp: Any,
        unit: str,
        device: str | None = None,
        *,
        on_step: Callable[[Step, State], None] | None = None,
    ) -> list[StepOutcome]:
        """Burn the unit's :attr:`Phase.BURN` steps (keys, enables, release eFuses), after
        its regions were written and verified."""
        return self._run(esp, unit, device, Phase.BURN, on_step)

    def lock(
        self,
        esp: Any,
        unit: str,
        device: str | None = None,
        *,
        on_step: Callable[[Step, State], None] | None = None,
    ) -> list[StepOutcome]:
        """The final lock: after :meth:`burn`, and only once the unit's read-back verification
        passed (after it the chip answers no reads)."""
        return self._run(esp, unit, device, Phase.LOCK, on_step)

    def verified(self, unit: str) -> None:
        """The unit passed verification: delete its host key copies if the lot says so."""
        if self.settings.delete_keys_after_verify:
            self.escrow.delete(unit)

    # -- the engine ------------------------------------------------------------------------
    def _run(
        self,
        esp: Any,
        unit: str,
        device: str | None,
        phase: Phase,
        on_step: Callable[[Step, State], None] | None,
    ) -> list[StepOutcome]:
        with _quiet() as sink:
            commands = _commands(esp)
            device, states = self._classify(commands, unit, device)
            if phase is Phase.LOCK:
                undone = [
                    s.id for s, st in states if s.phase is Phase.BURN and st is not State.DONE
                ]
                if undone:
                    raise BoardRefused(
                        device, [f"cannot lock: steps not done yet: {', '.join(undone)}"]
                    )
            keys = (
                self.keys(unit)
                if any(
                    s.kind is Kind.KEY and s.source is not KeySource.SB_DIGEST
                    for s, st in states
                    if st is not State.DONE
                )
                else UnitKeys(unit)
            )
            out = []
            for step, state in states:
                if step.phase is not phase:
                    continue
                if state is State.DONE:
                    out.append(StepOutcome(step, state, False))
                    continue
                if on_step is not None:
                    on_step(step, state)
                self.journal.begin(unit, device, step.id)
                try:
                    self._apply(commands, step, state, keys)
                except Exception as err:  # espefuse raises FatalError and others
                    raise BurnFailed(device, step, _reason(err, sink.messages)) from err
                if step.phase is not Phase.LOCK:  # after the lock the chip answers no reads
                    after = self._state(commands.efuses, step, keys, device, recorded=True)
                    if after is not State.DONE:
                        raise BurnFailed(device, step, f"reads back {after.value} after burning")
                self.journal.done(unit, device, step.id)
                out.append(StepOutcome(step, state, True))
            return out

    def _classify(
        self, commands: Any, unit: str | None, device: str | None
    ) -> tuple[str, list[tuple[Step, State]]]:
        efuses = commands.efuses
        device = device or str(efuses["MAC"].get()).split(" ")[0]
        recorded = self.journal.steps(device)
        reasons: list[str] = []
        states: list[tuple[Step, State]] = []
        need_keys = any(
            s.kind is Kind.KEY and s.source is not KeySource.SB_DIGEST for s in self.plan.steps
        )
        if unit is None:  # no unit yet: only the lot's own HMAC key is known
            keys = UnitKeys(
                "", None, self._lot_hmac if self.settings.hmac_key_source == "lot" else None
            )
        else:
            keys = self._known_keys(unit) if need_keys else UnitKeys(unit)
        for step in self.plan.steps:
            try:
                state = self._state(efuses, step, keys, device, recorded=step.id in recorded)
            except _Foreign as err:
                reasons.append(str(err))
                continue
            states.append((step, state))
        reasons.extend(self._foreign_recipes(efuses))
        if reasons:
            raise BoardRefused(device, reasons)
        return device, states

    def _known_keys(self, unit: str) -> UnitKeys:
        """The unit's keys if they exist already (classification never makes keys)."""
        xts = hmac = None
        for name in ("xts", "hmac"):
            p = self.escrow.path(unit, name)
            if p.exists():
                if name == "xts":
                    xts = p.read_bytes()
                else:
                    hmac = p.read_bytes()
        if self.settings.hmac_key_source == "lot":
            hmac = self._lot_hmac
        return UnitKeys(unit, xts, hmac)

    def _expected(self, step: Step, keys: UnitKeys) -> bytes | None:
        if step.source is KeySource.SB_DIGEST:
            return step.digest
        if step.source is KeySource.UNIT_XTS:
            return keys.xts[32 * step.part : 32 * step.part + 32] if keys.xts else None
        return keys.hmac

    def _state(
        self, efuses: Any, step: Step, keys: UnitKeys, device: str, *, recorded: bool
    ) -> State:
        if step.kind is Kind.WRITE_PROTECT:
            if efuses[step.target].is_writeable():
                return State.TODO
            if not recorded:
                raise _Foreign(
                    f"{step.target} is write-protected already, not by this station "
                    f"for this unit ({step.recipe} of another recipe?)"
                )
            return State.DONE
        if step.kind is Kind.EFUSE:
            done = 0
            for name, value in step.values:
                cur = int(efuses[name].get_bitstring().uint)
                if cur & ~value:
                    raise _Foreign(
                        f"{name} = {cur}, the lot's recipe burns {value} "
                        f"({self.settings.mode} mode): a different recipe"
                    )
                done += cur == value
                if cur and not recorded:
                    raise _Foreign(
                        f"{name} = {cur} already, not burned by this station for "
                        "this unit: a different recipe"
                    )
            if done == len(step.values):
                return State.DONE
            return (
                State.PARTIAL
                if done or any(efuses[n].get_bitstring().uint for n, _ in step.values)
                else State.TODO
            )
        return self._key_state(efuses, step, keys, recorded=recorded)

    def _key_state(self, efuses: Any, step: Step, keys: UnitKeys, *, recorded: bool) -> State:
        block = efuses.blocks[efuses.get_index_block_by_name(step.target)]
        field = efuses[block.name]
        kp = efuses[block.key_purpose_name]
        purpose = kp.get()
        readable = field.is_readable()
        data = block.get_bitstring().bytes[::-1] if readable else None
        expected = self._expected(step, keys)
        if expected is not None and kp.need_reverse(step.purpose):
            expected = expected[::-1]
        what = f"{step.target} ({step.recipe})"
        if purpose not in ("USER", step.purpose):
            raise _Foreign(
                f"{what} holds a key with purpose {purpose}, the lot's recipe "
                f"puts {step.purpose} there"
            )
        if purpose == "USER":
            if data is None:
                raise _Foreign(f"{what} is read-protected with no purpose: not usable")
            if not any(data):
                if not field.is_writeable() or not kp.is_writeable():
                    raise _Foreign(f"{what} is empty but write-protected: not usable")
                return State.TODO
            if expected is not None and data == expected and recorded:
                return State.PARTIAL  # the key is in, its purpose and protections are not
            raise _Foreign(f"{what} holds data this station did not burn for this unit")
        # the purpose is the lot's
        if data is not None and expected is not None:
            if data != expected:
                raise _Foreign(f"{what} holds a different {step.purpose} (a foreign key or digest)")
        elif not recorded:
            raise _Foreign(
                f"{what} holds a read-protected {step.purpose} key this station did "
                "not burn for this unit (a foreign key)"
            )
        if expected is None and data is not None and not recorded:
            raise _Foreign(f"{what} holds a {step.purpose} this station has no record of")
        protected = (
            (not step.read_protect or not readable)
            and (not step.write_protect or not field.is_writeable())
            and not kp.is_writeable()
        )
        return State.DONE if protected else State.PARTIAL

    def _foreign_recipes(self, efuses: Any) -> list[str]:
        """eFuses of a recipe the lot does not have (checked on every board, before burning)."""
        out = []
        planned = self.plan.key_blocks
        for name in self.caps.key_blocks:
            if name in planned:
                continue
            block = efuses.blocks[efuses.get_index_block_by_name(name)]
            purpose = str(efuses[block.key_purpose_name].get())
            if purpose.startswith(SECURITY_PURPOSES):
                out.append(
                    f"{name} holds a {purpose} key the lot's recipe does not burn: the "
                    "board was provisioned with a different recipe"
                )
        if (
            not self.settings.has("flash_encryption")
            and efuses["SPI_BOOT_CRYPT_CNT"].get_bitstring().uint
        ):
            out.append(
                "flash encryption is on (SPI_BOOT_CRYPT_CNT set) and the lot has no "
                "flash_encryption recipe"
            )
        if not self.settings.has("secure_boot") and efuses["SECURE_BOOT_EN"].get():
            out.append("secure boot is on (SECURE_BOOT_EN) and the lot has no secure_boot recipe")
        if not self.settings.has("final_lock"):
            for lock in ("ENABLE_SECURITY_DOWNLOAD", "DIS_DOWNLOAD_MODE"):
                if self.caps.has(lock) and efuses[lock].get():
                    out.append(f"{lock} is burned and the lot has no final_lock recipe")
        return out

    def _apply(self, commands: Any, step: Step, state: State, keys: UnitKeys) -> None:
        efuses = commands.efuses
        if step.kind is Kind.WRITE_PROTECT:
            commands.write_protect_efuse([step.target])
            return
        if step.kind is Kind.EFUSE:
            todo = {n: v for n, v in step.values if int(efuses[n].get_bitstring().uint) != v}
            commands.burn_efuse(todo)
            return
        data = self._expected(step, keys)
        if data is None:
            raise ValueError(f"no key material for {step.id}")
        if state is State.TODO:
            # espefuse's own burn-key: data, purpose, write protection of the purpose, and
            # the protections the purpose needs
            commands.burn_key(
                [step.target],
                [io.BytesIO(data)],
                [step.purpose],
                no_write_protect=not step.write_protect,
                no_read_protect=not step.read_protect,
            )
            return
        # PARTIAL: the key is in; what burn-key does after writing the data
        block = efuses.blocks[efuses.get_index_block_by_name(step.target)]
        field = efuses[block.name]
        kp = efuses[block.key_purpose_name]
        if kp.get() != step.purpose:
            kp.save(step.purpose)
        if kp.is_writeable():
            kp.disable_write()
        if step.read_protect and field.is_readable():
            field.disable_read()
        if step.write_protect and field.is_writeable():
            field.disable_write()
        efuses.burn_all(check_batch_mode=True)


class _Foreign(Exception):
    pass


_by_connection: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_by_connection_lock = threading.Lock()


def _commands(esp: Any) -> Any:
    """espefuse's commands on ``esp``, made once per connection: reading and decoding every
    eFuse is most of a unit's time (0.4 s on a virtual chip, more over a serial line), and
    espefuse re-reads the eFuses after each burn, so the state stays current between
    :meth:`Provisioner.burn` and :meth:`Provisioner.lock` on the same connection."""
    import espefuse

    with _by_connection_lock:
        commands = _by_connection.get(esp)
    if commands is None:
        try:
            commands = espefuse.init_commands(esp=esp, do_not_confirm=True)
        except Exception as err:  # esptool's FatalError, serial errors, a chip mismatch
            port = str(getattr(getattr(esp, "_port", None), "port", "") or "device")
            raise StationError.at(
                port,
                f"cannot read the eFuses: {str(err).strip() or type(err).__name__} (a chip in "
                "secure download mode answers no eFuse reads)",
                key="security",
                exit_code=1,
            ) from err
        with _by_connection_lock:
            _by_connection[esp] = commands
    return commands


def _quiet() -> Any:
    from station.security.quiet import quiet

    return quiet()


def _reason(err: BaseException, messages: Sequence[str]) -> str:
    text = str(err).strip() or type(err).__name__
    tail = [m for m in messages[-3:] if m]
    return text + (f" ({' | '.join(tail)})" if tail and text not in " ".join(tail) else "")
