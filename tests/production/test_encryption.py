"""NVS encryption: the key partition written with the factory image (flash-encryption scheme),
per-lot or per-device keys, nothing extra for the HMAC scheme; read back and decrypted."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from station.errors import StationError
from station.flashing import SimulatedDevice, open_device
from station.nvs import (
    decode_image,
    generate_keys,
    hmac_derive_keys,
    key_partition_image,
    parse_key_partition,
)
from station.production import Orchestrator, open_lot, read_lot_file
from station.production.lot import Lot
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice

KEYS_AT, FCTRY_AT = 0xC000, 0xD000


def run(lot: Lot, devices: list[FakeDevice]) -> FakeBench:
    bench = FakeBench()
    with Orchestrator(lot, on_event=lambda e: None, opener=bench.opener) as orch:
        for i, dev in enumerate(devices):
            bench.put(f"fake://{i}", dev)
            orch.add_port(f"fake://{i}")
        orch.start_all()
        assert orch.wait_idle(30)
    return bench


def factory_of(dev: FakeDevice) -> bytes:
    return bytes(dev.flash[FCTRY_AT : FCTRY_AT + 0x3000])


def keys_of(dev: FakeDevice) -> bytes:
    return bytes(dev.flash[KEYS_AT : KEYS_AT + 0x1000])


def test_a_lot_key_goes_to_nvs_keys_with_the_factory_image(tmp_path: Path) -> None:
    lot = make_small_lot(
        tmp_path / "l", 2, nvs_keys="encrypted", extra='encryption = { keyfile = "k.bin" }\n'
    )
    keys = generate_keys()
    (lot.parent / "k.bin").write_bytes(key_partition_image(keys))
    dev = FakeDevice("aa:00:00:00:01:01")
    with open_lot(lot) as opened:
        assert opened.key_partition is not None and not opened.per_device_keys
        bench = run(opened, [dev])
        assert opened.ledger.row(0).state == "done"
    assert bench.sessions == 1 and len(bench.write_calls) == 1
    assert [r.offset for r in bench.write_calls[0]] == [KEYS_AT, FCTRY_AT]
    assert parse_key_partition(keys_of(dev)) == keys
    image = factory_of(dev)
    assert b"SN0001" not in image
    assert decode_image(image, keys).as_dict()["factory"]["serial_no"] == "SN0001"
    assert decode_image(image).errors  # useless without the key


def test_hmac_scheme_writes_nothing_but_the_factory_image(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2, extra='encryption = { hmac_keyfile = "h.key" }\n')
    hmac_key = bytes(range(32))
    (lot.parent / "h.key").write_bytes(hmac_key)
    dev = FakeDevice("aa:00:00:00:01:02")
    with open_lot(lot) as opened:
        assert opened.key_partition is None
        bench = run(opened, [dev])
    assert [r.offset for r in bench.write_calls[0]] == [FCTRY_AT]
    assert keys_of(dev) == b"\xff" * 0x1000
    decoded = decode_image(factory_of(dev), hmac_derive_keys(hmac_key))
    assert decoded.as_dict()["factory"]["serial_no"] == "SN0001"


def test_per_device_keys_are_kept_0600_and_only_hashed_in_the_ledger(tmp_path: Path) -> None:
    lot = make_small_lot(
        tmp_path / "l", 3, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    devs = [FakeDevice(f"aa:00:00:00:02:0{i}") for i in range(2)]
    with open_lot(lot) as opened:
        assert opened.per_device_keys and opened.keys is None
        run(opened, devs)
        by_mac = {r.mac: r for r in opened.ledger.rows(0, 3) if r.state == "done"}
        assert set(by_mac) == {d.mac for d in devs}
        folder = lot.parent / "keys"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        own = []
        for dev in devs:
            row = opened.row(by_mac[dev.mac].index)
            key_file = folder / f"keys-{row.values['serial_no']}.bin"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert keys_of(dev) == key_file.read_bytes()  # the device holds its own key
            keys = parse_key_partition(key_file.read_bytes())
            values = decode_image(factory_of(dev), keys).as_dict()["factory"]
            assert values["serial_no"] == row.values["serial_no"]
            assert values["device_key"] == bytes.fromhex(row.values["device_key"])
            assert opened.image_for(row) == factory_of(dev)  # the same bytes on every build
            own.append(keys)
            digest = hashlib.sha256(keys.data_key + keys.tweak_key).hexdigest()
            assert opened.ledger.key_hash(row.index) == digest
        assert own[0] != own[1]
        assert decode_image(factory_of(devs[0]), own[1]).errors  # the other unit's key fails
    stored = b"".join(p.read_bytes() for p in lot.parent.glob("*.station.db*"))
    for keys in own:
        assert keys.data_key not in stored and keys.tweak_key not in stored


def test_a_replaced_key_file_is_refused(tmp_path: Path) -> None:
    lot = make_small_lot(
        tmp_path / "l", 2, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    with open_lot(lot) as opened:
        row = opened.row(0)
        first = opened.image_for(row)
        key_file = opened.key_file(row)
        key_file.write_bytes(key_partition_image(generate_keys()))
        with pytest.raises(StationError) as err:
            opened.image_for(row)
        (p,) = err.value.problems
        assert p.file == str(key_file) and "not the key unit SN0001 was given" in p.message
        assert first  # the original image was built with the recorded key


def test_keygen_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "k.bin").write_bytes(key_partition_image(generate_keys()))
    lot = make_small_lot(
        tmp_path / "l", 2, extra='encryption = { keygen = "yes", keyfile = "../k.bin" }\n'
    )
    with pytest.raises(StationError) as err:
        read_lot_file(lot)
    got = [str(p) for p in err.value.problems]
    assert any(":8:" in p and "encryption.keygen: must be true or false" in p for p in got), got
    assert any("encryption.keygen: give one of keyfile, hmac_keyfile, keygen" in p for p in got)
    again = make_small_lot(tmp_path / "m", 2, extra="encryption = { keygen = true }\n")
    with pytest.raises(StationError, match="nvs_keys partition"):
        open_lot(again)  # per-device keys need somewhere to go
    assert not (again.parent / "keys").exists()


@pytest.mark.slow
def test_per_device_key_on_a_simulated_device_decrypts_its_data(tmp_path: Path) -> None:
    lot = make_small_lot(
        tmp_path / "l", 2, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    with SimulatedDevice() as dev, open_lot(lot) as opened:
        with Orchestrator(opened, on_event=lambda e: None, no_stub=True) as orch:
            orch.add_port(dev.port)
            orch.start(dev.port)
            assert orch.wait_idle(120)
        assert opened.ledger.row(0).state == "done", opened.ledger.attempts(0)
        with open_device(dev.port, no_stub=True) as session:
            key_sector = session.read(KEYS_AT, 0x1000)
            factory = session.read(FCTRY_AT, 0x3000)
        keys = parse_key_partition(key_sector)
        assert key_sector == opened.key_file(opened.row(0)).read_bytes()
        values = decode_image(factory, keys).as_dict()["factory"]
        row = opened.row(0)
        assert values["serial_no"] == "SN0001" and values["hw_rev"] == 0
        assert values["device_key"] == bytes.fromhex(row.values["device_key"])


def test_station_run_names_what_each_unit_gets(tmp_path: Path) -> None:
    from station.production.commands import _what_each_unit_gets
    from tests.production.conftest import make_build

    lot = make_small_lot(
        tmp_path / "l", 2, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    make_build(lot)
    with open_lot(lot) as opened:
        fw, enc = _what_each_unit_gets(opened)
    assert fw.startswith("firmware: bootloader@0x1000, partition table@0x8000, app@0x10000")
    assert enc == "NVS encryption: key partition nvs_key@0xc000 (each unit's own, kept in keys/)"


@pytest.mark.slow
def test_station_run_with_firmware_and_per_device_keys_on_simulated_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from station.cli import main
    from tests.production.conftest import make_build

    lot = make_small_lot(
        tmp_path / "l", 3, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    build = make_build(lot)
    with SimulatedDevice() as a, SimulatedDevice() as b:
        for dev in (a, b):
            assert main(["run", str(lot), "--port", dev.port, "--count", "1", "--no-stub"]) == 0
        out = capsys.readouterr().out
        assert out.count("PASS ") == 2 and "NVS encryption: key partition nvs_key@0xc000" in out
        app = (build / "app.bin").read_bytes()
        with open_lot(lot) as opened:
            for dev in (a, b):
                with open_device(dev.port, no_stub=True) as session:
                    assert session.read(0x10000, len(app)) == app
                    key_sector = session.read(KEYS_AT, 0x1000)
                    factory = session.read(FCTRY_AT, 0x3000)
                index = opened.ledger.row_of_mac(dev.mac).index  # type: ignore[union-attr]
                row = opened.row(index)
                assert key_sector == opened.key_file(row).read_bytes()
                values = decode_image(factory, parse_key_partition(key_sector)).as_dict()
                assert values["factory"]["serial_no"] == row.values["serial_no"]


def test_unit_ids_that_are_not_file_names_get_key_files_of_their_own(tmp_path: Path) -> None:
    """Unit ``SN 77 2`` on row 2 was given ``keys-row2.bin``, the file of unit ``row2``: two
    boards got the same keys. Now an unsafe id gets a name no other id can have."""
    lot = make_small_lot(
        tmp_path / "l", 3, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    values = lot.parent / "values.csv"
    values.write_text(
        "serial_no,device_key,hw_rev\nrow2,00,1\nSN 77 2,00,2\nSN0003,00,3\n", encoding="utf-8"
    )
    with open_lot(lot) as opened:
        files = [opened.key_file(opened.row(i)) for i in range(3)]
        assert [f.name for f in files] == [
            "keys-row2.bin",
            "keys-%SN%2077%202.bin",
            "keys-SN0003.bin",
        ]
        keys = [opened.keys_for(opened.row(i)) for i in range(3)]
        assert keys[0] != keys[1]
        assert len({f.read_bytes() for f in files}) == 3
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700


def test_key_file_stems_are_one_to_one() -> None:
    from station.production.lot import key_file_stem

    ids = [
        "row2",
        "SN 77 2",
        "SN%2077%202",
        "%SN%2077%202",
        "a/b",
        "a%2Fb",
        ".hidden",
        "-x",
        "x" * 200,
        "y" * 200,
    ]
    stems = [key_file_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)
    assert stems[0] == "row2" and stems[2] == "%SN%252077%25202"
    assert all("/" not in s and "\\" not in s and len(s) <= 130 for s in stems)


def test_a_key_file_of_the_old_name_is_kept_for_its_unit(tmp_path: Path) -> None:
    """A lot started before the new names: the unit's key is in ``keys-row2.bin`` and its hash
    is the ledger's; the unit keeps that key (copied to its new name), not a fresh one."""
    lot = make_small_lot(
        tmp_path / "l", 2, nvs_keys="encrypted", extra="encryption = { keygen = true }\n"
    )
    (lot.parent / "values.csv").write_text(
        "serial_no,device_key,hw_rev\nSN1,00,1\nSN 77 2,00,2\n", encoding="utf-8"
    )
    old = key_partition_image(generate_keys())
    with open_lot(lot) as opened:
        row = opened.row(1)
        legacy = lot.parent / "keys" / "keys-row2.bin"
        legacy.parent.mkdir(mode=0o700)
        legacy.write_bytes(old)
        keys = parse_key_partition(old)
        opened.ledger.record_key_hash(1, hashlib.sha256(keys.data_key + keys.tweak_key).hexdigest())
        assert opened.keys_for(row) == keys
        assert opened.key_file(row).read_bytes() == old
