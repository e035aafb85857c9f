"""Security lots through the production pipeline: the orchestrator and ``station run`` on
simulated devices (esp32-mock-bootloader) paired with espefuse's virtual eFuses, one file per
device; espefuse's own ``summary`` and espsecure's decryption check the result."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from station.cli import main
from station.errors import StationError
from station.flashing.device import open_device
from station.flashing.simulated import SimulatedDevice
from station.ledger.security_steps import LedgerJournal
from station.production import LogEvent, Orchestrator, PortUpdate, open_lot
from station.security import chip_caps
from station.security.flashenc import decrypt
from tests.security.conftest import BOOTLOADER_AT, CHIPS, espefuse_summary, key_for, make_lot

pytestmark = pytest.mark.slow


def security_lot(
    folder: Path,
    chip: str,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    *,
    rows: int = 3,
    extra: str = "",
    final_lock: bool = True,
) -> Path:
    """A lot with every recipe the chip can do (nvs_hmac where it has the HMAC peripheral)."""
    caps = chip_caps(chip)
    assert caps is not None
    folder.mkdir(parents=True, exist_ok=True)
    key = key_for(chip, rsa_keys, ecdsa_keys)
    (folder / "sb0.pem").write_bytes(key)
    (folder / "hmac.key").write_bytes(os.urandom(32))
    recipes = ["flash_encryption", "secure_boot"]
    if caps.hmac:
        recipes.insert(0, "nvs_hmac")
    if final_lock:
        recipes.append("final_lock")
    security = (
        f"recipes = {recipes!r}\n".replace("'", '"')
        + ('hmac_key_id = 0\nhmac_keyfile = "hmac.key"\n' if caps.hmac else "")
        + 'secure_boot_keys = ["sb0.pem"]\n'
        + extra
    )
    return make_lot(folder, chip=chip, sign_with=key, security=security, rows=rows)


def enable(lot_path: Path) -> None:
    """An engineer's go-ahead for the lot's recipe on its ledger (station security enable)."""
    from station.production import security_step

    with open_lot(lot_path) as lot:
        security_step.enable(lot, "test engineer")


def run_units(lot_path: Path, devices: list[SimulatedDevice]) -> list[object]:
    """One orchestrator run, one unit per device; every event it sent."""
    events: list[object] = []
    lock = threading.Lock()

    def on_event(e: object) -> None:
        with lock:
            events.append(e)

    with open_lot(lot_path) as lot, Orchestrator(lot, on_event=on_event, no_stub=True) as orch:
        for dev in devices:
            orch.add_port(dev.port)
        orch.start_all()
        assert orch.wait_idle(300)
    return events


def last_update(events: list[object], port: str) -> PortUpdate:
    return [e for e in events if isinstance(e, PortUpdate) and e.port == port][-1]


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[list[SimulatedDevice]]:
    made: list[SimulatedDevice] = []
    yield made
    for d in made:
        d.stop()


def simulated(made: list[SimulatedDevice], chip: str, efuse_file: Path) -> SimulatedDevice:
    dev = SimulatedDevice(chip=chip, efuse_file=str(efuse_file))
    made.append(dev)
    return dev


@pytest.mark.parametrize("chip", CHIPS)
def test_a_unit_of_every_chip_gets_its_recipe(
    tmp_path: Path,
    chip: str,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    devices: list[SimulatedDevice],
) -> None:
    caps = chip_caps(chip)
    assert caps is not None
    lot_path = security_lot(tmp_path / "lot", chip, rsa_keys, ecdsa_keys)
    efuse = tmp_path / "unit.efuse"
    dev = simulated(devices, chip, efuse)
    events = run_units(lot_path, [dev])
    end = last_update(events, dev.port)
    assert end.state == "passed", end
    phases = [e.phase for e in events if isinstance(e, PortUpdate) and e.port == dev.port]
    assert "burning eFuses" in phases
    assert phases.index("verifying") < phases.index("burning eFuses") < phases.index("resetting")

    # espefuse's own view of the chip afterwards
    summary = espefuse_summary(chip, efuse)
    purposes = {summary[f"KEY_PURPOSE_{i}"]["value"] for i in range(6)}
    assert "XTS_AES_128_KEY" in purposes
    assert "SECURE_BOOT_DIGEST0" in purposes
    assert ("HMAC_UP" in purposes) == caps.hmac
    for i in range(6):
        if summary[f"KEY_PURPOSE_{i}"]["value"] in ("XTS_AES_128_KEY", "HMAC_UP"):
            assert summary[f"BLOCK_KEY{i}"]["readable"] is False  # read-protected
        if summary[f"KEY_PURPOSE_{i}"]["value"] == "SECURE_BOOT_DIGEST0":
            assert summary[f"BLOCK_KEY{i}"]["readable"] is True  # the ROM reads the digest
            digest = sbv2_digest(lot_path.parent / "sb0.pem", tmp_path / "digest.bin")
            assert summary[f"BLOCK_KEY{i}"]["value"].replace(" ", "") == digest.hex()
    assert summary["SPI_BOOT_CRYPT_CNT"]["value"] == "Enable"  # 7 in release mode
    assert summary["SECURE_BOOT_EN"]["value"] is True
    assert summary["ENABLE_SECURITY_DOWNLOAD"]["value"] is True

    # the ledger: every step begun and done on this device, the key's hash on record
    with open_lot(lot_path) as lot:
        journal = LedgerJournal(lot.ledger)
        row = lot.ledger.row(0)
        assert row.state == "done"
        assert row.mac is not None
        steps = journal.steps(row.mac)
        settings = lot.security
        assert settings is not None
        from station.security import Provisioner

        plan = Provisioner(settings, journal).plan
        assert steps == {s.id: "done" for s in plan.steps}
        unit = row.unit_id
        key_file = settings.key_folder / f"{unit}.xts.bin"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(settings.key_folder.stat().st_mode) == 0o700
        import hashlib

        assert journal.keys()[(unit, "xts")] == hashlib.sha256(key_file.read_bytes()).hexdigest()

    # the escrow handed over with the ledger's records: hash and device per key
    assert main(["security", "export", str(lot_path), "--out", str(tmp_path / "handover")]) == 0
    manifest = json.loads((tmp_path / "handover" / "manifest.json").read_text())
    xts_entry = next(e for e in manifest["keys"] if e["key"] == "xts")
    assert xts_entry["recorded_sha256"] == xts_entry["sha256"]
    assert xts_entry["device"] == row.mac

    # what the flash holds decrypts (XTS-AES, espsecure's own code) to the plain images
    build = lot_path.parent / "build"
    boot_at = BOOTLOADER_AT.get(chip, 0x0)
    with open_device(dev.port, chip=chip, no_stub=True, baud=115200) as session:
        app = (build / "app.bin").read_bytes()
        held_app = session.read(0x10000, len(app))
        boot = (build / "bootloader.bin").read_bytes()
        held_boot = session.read(boot_at, len(boot))
    xts = key_file.read_bytes()
    assert held_app != app  # encrypted on the host …
    assert decrypt(xts, 0x10000, held_app) == app  # … for its own offset
    assert decrypt(xts, boot_at, held_boot) == boot


def sbv2_digest(key: Path, out: Path) -> bytes:
    """``espsecure digest-sbv2-public-key``, the real command: what the ROM compares."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "espsecure", "digest-sbv2-public-key", "--keyfile", str(key),
         "--output", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out.read_bytes()


class Killed(BaseException):
    """The station dies (not an error the orchestrator handles)."""


def test_killed_between_any_two_steps_resumes_and_burns_nothing_twice(
    tmp_path: Path,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    devices: list[SimulatedDevice],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The station dies before each step's burn, and after each burn before its record: the
    next run reads the eFuses, continues where it stopped, and each step is burned once."""
    from station.security.provision import Provisioner

    lot_path = security_lot(tmp_path / "lot", "esp32c3", rsa_keys, ecdsa_keys)
    efuse = tmp_path / "unit.efuse"
    dev = simulated(devices, "esp32c3", efuse)
    with open_lot(lot_path) as lot:
        assert lot.security is not None
        steps = [s.id for s in Provisioner(lot.security, LedgerJournal(lot.ledger)).plan.steps]
    kill_at = [(s, when) for s in steps for when in ("begin", "done")]
    applied: list[str] = []
    real_apply = Provisioner._apply

    def counting_apply(self: Any, commands: Any, step: Any, state: Any, keys: Any) -> None:
        applied.append(step.id)
        real_apply(self, commands, step, state, keys)

    monkeypatch.setattr(Provisioner, "_apply", counting_apply)
    target: list[tuple[str, str]] = []
    real_begin, real_done = LedgerJournal.begin, LedgerJournal.done

    def begin(self: LedgerJournal, unit: str, device: str, step: str) -> None:
        if target and target[0] == (step, "begin"):
            raise Killed(step)
        real_begin(self, unit, device, step)

    def done(self: LedgerJournal, unit: str, device: str, step: str) -> None:
        if target and target[0] == (step, "done"):
            raise Killed(step)  # burned, not recorded as done
        real_done(self, unit, device, step)

    monkeypatch.setattr(LedgerJournal, "begin", begin)
    monkeypatch.setattr(LedgerJournal, "done", done)
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: died.append(a.exc_value))
    for point in kill_at:
        target[:] = [point]
        events = run_units(lot_path, [dev])
        assert isinstance(died[-1], Killed), (point, died[-1:])
        assert last_update(events, dev.port).state == "busy", last_update(events, dev.port)
    target.clear()
    n_died = len(died)
    events = run_units(lot_path, [dev])
    assert len(died) == n_died
    assert last_update(events, dev.port).state == "passed", last_update(events, dev.port)
    assert sorted(applied) == sorted(steps)  # each step burned exactly once over 23 runs
    summary = espefuse_summary("esp32c3", efuse)
    assert summary["ENABLE_SECURITY_DOWNLOAD"]["value"] is True
    assert summary["KEY_PURPOSE_1"]["value"] == "XTS_AES_128_KEY"
    logs = [e.text for e in events if isinstance(e, LogEvent)]
    assert any("0 eFuse step(s) burned" in t or "found done already" in t for t in logs), logs


def test_a_foreign_board_is_refused_untouched(
    tmp_path: Path,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    devices: list[SimulatedDevice],
) -> None:
    from tests.security.test_provision import _burn_foreign

    lot_path = security_lot(tmp_path / "lot", "esp32c3", rsa_keys, ecdsa_keys)
    efuse = tmp_path / "unit.efuse"
    foreign_key = tmp_path / "foreign.key"
    foreign_key.write_bytes(os.urandom(32))
    _burn_foreign(efuse, "esp32c3", "burn-key", "BLOCK_KEY1", str(foreign_key), "XTS_AES_128_KEY")
    dev = simulated(devices, "esp32c3", efuse)
    before = efuse.read_bytes()
    events = run_units(lot_path, [dev])
    end = last_update(events, dev.port)
    assert end.state == "attention"
    assert "BLOCK_KEY1" in end.message and "left untouched" in end.message, end.message
    assert efuse.read_bytes() == before
    with open_lot(lot_path) as lot:
        assert lot.ledger.count("pending") == 3  # no row claimed, nothing written
        assert lot.ledger.attempts() == []
        assert LedgerJournal(lot.ledger).devices() == {}
        assert lot.security is not None
        assert not list(lot.security.key_folder.glob("*.bin"))  # no key made for it
    with open_device(dev.port, chip="esp32c3", no_stub=True, baud=115200) as session:
        assert session.read(0x10000, 0x1000) == b"\xff" * 0x1000


def test_station_run_and_delete_keys_after_verify(
    tmp_path: Path,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    devices: list[SimulatedDevice],
    capsys: pytest.CaptureFixture[str],
) -> None:
    lot_path = security_lot(
        tmp_path / "lot",
        "esp32c6",
        rsa_keys,
        ecdsa_keys,
        extra="delete_keys_after_verify = true\n",
        final_lock=False,
    )
    efuse = tmp_path / "unit.efuse"
    dev = simulated(devices, "esp32c6", efuse)
    enable(lot_path)
    assert main(["run", str(lot_path), "--port", dev.port, "--count", "1", "--no-stub"]) == 0
    out = capsys.readouterr()
    assert "security: nvs_hmac, flash_encryption, secure_boot (release mode, esp32c6)" in out.out
    assert "1 done, 0 failed" in out.out
    summary = espefuse_summary("esp32c6", efuse)
    assert summary["SECURE_BOOT_EN"]["value"] is True
    assert summary["ENABLE_SECURITY_DOWNLOAD"]["value"] is False  # no final_lock recipe
    with open_lot(lot_path) as lot:
        assert lot.security is not None
        assert not list(lot.security.key_folder.glob("*.bin"))  # deleted once verified
        assert LedgerJournal(lot.ledger).keys()  # the hash stays on record


def test_bad_security_input_at_lot_open(
    tmp_path: Path, rsa_keys: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong key size, recipe/chip mismatch, wrongly signed firmware: every problem located,
    exit code 2, no ledger made, no key made."""
    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "sb0.pem").write_bytes(rsa_keys[0])
    (folder / "hmac.key").write_bytes(os.urandom(16))
    lot_path = make_lot(
        folder,
        chip="esp32c3",
        sign_with=rsa_keys[1],  # not the lot's key
        security=(
            'recipes = ["nvs_hmac", "flash_encryption", "secure_boot"]\n'
            'hmac_key_id = 0\nhmac_keyfile = "hmac.key"\nxts_aes = 256\n'
            'secure_boot_keys = ["sb0.pem"]\n'
        ),
    )
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(StationError) as err:
        open_lot(lot_path)
    found = [str(p) for p in err.value.problems]
    line = lot_path.read_text().splitlines().index("[security]") + 1
    assert any(
        p.startswith(f"{lot_path}:{line + 3}:1: security.hmac_keyfile: ") and "32 bytes" in p
        for p in found
    ), found
    assert any(
        p.startswith(f"{lot_path}:{line + 4}:1: security.xts_aes: ") and "XTS-AES-256" in p
        for p in found
    ), found
    assert main(["run", str(lot_path), "--port", "socket://127.0.0.1:9", "--count", "1"]) == 2
    cap = capsys.readouterr()
    assert "security.xts_aes" in cap.err and "Traceback" not in cap.err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_wrongly_signed_firmware_at_lot_open(
    tmp_path: Path, rsa_keys: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "sb0.pem").write_bytes(rsa_keys[0])
    lot_path = make_lot(
        folder,
        chip="esp32c3",
        sign_with=rsa_keys[1],  # not the lot's key
        security='recipes = ["secure_boot"]\nsecure_boot_keys = ["sb0.pem"]\n',
    )
    assert main(["run", str(lot_path), "--port", "socket://127.0.0.1:9", "--count", "1"]) == 2
    err = capsys.readouterr().err
    flasher_args = folder / "build" / "flasher_args.json"
    assert (
        f"{flasher_args}:0:0: secure_boot: app: no signature block verifies with the lot's "
        "keys (sb0.pem)" in err
    ), err
    assert "Traceback" not in err
    assert not list(folder.glob("*.station.db"))


def test_a_key_block_conflict_with_the_firmware_at_lot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The firmware reads its NVS HMAC key from another key block than the lot burns."""
    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "hmac.key").write_bytes(os.urandom(32))
    lot_path = make_lot(
        folder,
        chip="esp32c3",
        security='recipes = ["nvs_hmac"]\nhmac_key_id = 0\nhmac_keyfile = "hmac.key"\n',
    )
    config = folder / "build" / "config"
    config.mkdir()
    (config / "sdkconfig.json").write_text(json.dumps({"NVS_SEC_HMAC_EFUSE_KEY_ID": 3}))
    assert main(["run", str(lot_path), "--port", "socket://127.0.0.1:9", "--count", "1"]) == 2
    err = capsys.readouterr().err
    line = lot_path.read_text().splitlines().index("hmac_key_id = 0") + 1
    assert (
        f"{lot_path}:{line}:1: security.hmac_key_id: key block conflict: the lot burns the HMAC "
        "key into BLOCK_KEY0, the firmware reads it from BLOCK_KEY3" in err
    ), err
    assert not list(folder.glob("*.station.db"))
    (config / "sdkconfig.json").write_text(json.dumps({"NVS_SEC_HMAC_EFUSE_KEY_ID": 0}))
    with open_lot(lot_path) as lot:
        assert lot.security is not None


def test_station_run_killed_with_sigkill_while_burning_resumes(
    tmp_path: Path,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    devices: list[SimulatedDevice],
) -> None:
    """``station run`` SIGKILLed each time the ledger shows two more step records than when the
    run began (so mostly in the middle of a burn), restarted until it completes: every step
    burned, none twice (espefuse refuses to burn a key block twice, and the run would fail)."""
    import signal
    import sqlite3
    import subprocess
    import sys

    from tests.production.jig import Jig

    lot_path = security_lot(tmp_path / "lot", "esp32c3", rsa_keys, ecdsa_keys, rows=1)
    dev = simulated(devices, "esp32c3", tmp_path / "unit.efuse")
    db = lot_path.parent / "SEC.station.db"
    enable(lot_path)

    def records() -> int:
        if not db.exists():
            return 0
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(
                con.execute("SELECT COUNT(*) + SUM(state = 'done') FROM security_steps").fetchone()[
                    0
                ]
                or 0
            )
        except sqlite3.OperationalError:  # no table yet
            return 0
        finally:
            con.close()

    jig = Jig()
    try:
        jig.insert(dev.port)
        kills = 0
        for _ in range(30):
            start = records()
            proc = subprocess.Popen(
                [sys.executable, "-m", "station", "run", str(lot_path), "--no-stub",
                 "--poll", "0.05", "--port", jig.port],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            killed = threading.Event()

            def watch(_j: Jig, proc: Any = proc, start: int = start, killed: Any = killed) -> None:
                if not killed.is_set() and records() >= start + 2:
                    killed.set()
                    proc.send_signal(signal.SIGKILL)

            jig.on_bytes = watch
            code = proc.wait(300)
            jig.on_bytes = None
            if not killed.is_set():
                assert code == 0, code  # a double burn would fail the unit (exit code 1)
                break
            assert code == -signal.SIGKILL
            kills += 1
        else:
            pytest.fail("the run never completed")
    finally:
        jig.close()
    assert kills >= 5, kills
    summary = espefuse_summary("esp32c3", tmp_path / "unit.efuse")
    assert summary["KEY_PURPOSE_1"]["value"] == "XTS_AES_128_KEY"
    assert summary["SECURE_BOOT_EN"]["value"] is True
    assert summary["ENABLE_SECURITY_DOWNLOAD"]["value"] is True
    with open_lot(lot_path) as lot:
        assert lot.ledger.row(0).state == "done"
        records = LedgerJournal(lot.ledger)
        steps = records.steps(dev.mac)
        assert set(steps.values()) == {"done"} and len(steps) == 11
        history = [r[:4] for r in records.history()]
        keys = records.keys()
    assert keys  # the unit's XTS key hash, at least
    # the journal, appended through every kill (a line lost to a kill between the ledger's
    # commit and the journal's append is journaled again at the next open), agrees with the
    # ledger, and a ledger rebuilt from it has every eFuse record
    assert main(["ledger", "check", str(lot_path)]) == 0
    rebuilt = lot_path.parent / "rebuilt.db"
    assert main(["ledger", "rebuild", str(lot_path), "--db", str(rebuilt)]) == 0
    with open_lot(lot_path, db_url=str(rebuilt)) as lot:
        again = LedgerJournal(lot.ledger)
        assert sorted(r[:4] for r in again.history()) == sorted(history)
        assert again.keys() == keys


def test_station_run_burns_nothing_until_an_engineer_enables_the_recipe(
    tmp_path: Path,
    rsa_keys: list[bytes],
    ecdsa_keys: list[bytes],
    devices: list[SimulatedDevice],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lot file copied onto a station (or a recipe changed since it was enabled) is refused
    with a located error; ``station security enable`` asks the PIN and the lot's name."""
    from station.production import security_step
    from station.production.engineer import PinStore

    lot_path = security_lot(tmp_path / "lot", "esp32c3", rsa_keys, ecdsa_keys, rows=1)
    efuse = tmp_path / "unit.efuse"
    dev = simulated(devices, "esp32c3", efuse)
    before = espefuse_summary("esp32c3", efuse)
    run = ["run", str(lot_path), "--port", dev.port, "--count", "1", "--no-stub"]
    assert main(run) == 2
    err = capsys.readouterr().err
    lines = lot_path.read_text(encoding="utf-8").splitlines()
    line = next(n for n, t in enumerate(lines, 1) if t.startswith("recipes"))  # in [security]
    assert f"{lot_path}:{line}:1: security: this lot burns eFuses" in err
    assert "Traceback" not in err
    assert espefuse_summary("esp32c3", efuse) == before  # nothing was touched

    enable_cmd = ["security", "enable", str(lot_path), "--operator", "eve"]
    assert main(enable_cmd) == 2  # no engineer PIN on this machine yet
    assert "station engineer-pin" in capsys.readouterr().err
    PinStore().set("246810")
    answers = {"pin": "111111", "name": "SEC"}
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers["pin"])
    monkeypatch.setattr("builtins.input", lambda prompt="": answers["name"])
    assert main(enable_cmd) == 2  # a wrong PIN enables nothing
    answers.update(pin="246810", name="not the lot")
    assert main(enable_cmd) == 2  # nor does a wrong confirmation
    with open_lot(lot_path) as lot:
        assert not security_step.enabled(lot)
    answers["name"] = "SEC"
    assert main(enable_cmd) == 0
    out = capsys.readouterr().out
    assert "cannot be undone" in out and "eFuse burning enabled (audited, by eve)" in out
    with open_lot(lot_path) as lot:
        assert security_step.enabled(lot)
        assert [a.operator for a in lot.ledger.audit_log() if "recipe" in a.detail] == ["eve"]
    assert main(run) == 0
    assert espefuse_summary("esp32c3", efuse) != before
