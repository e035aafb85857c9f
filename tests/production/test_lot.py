"""Lot files and opening a lot: located errors, validation, import once, changed-CSV refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.errors import StationError
from station.nvs import decode_image
from station.production import LotSettings, open_lot, read_lot_file, write_lot_file
from tests.production.conftest import make_small_lot


def problems(err: pytest.ExceptionInfo[StationError]) -> list[str]:
    return [str(p) for p in err.value.problems]


def test_sample_lot_opens(sample_lot: Path) -> None:
    with open_lot(sample_lot) as lot:
        assert lot.name == "SAMPLE-2611" and len(lot.mfg.rows) == 200
        assert (lot.factory.name, lot.factory.offset, lot.factory.size) == (
            "fctry",
            0x10000,
            0x6000,
        )
        assert {"device_key", "ca_cert"} <= lot.secret_columns
        assert lot.ledger.count("pending") == 200 and lot.imported.created
        assert lot.ledger.path == sample_lot.parent / "SAMPLE-2611.station.db"
        row = lot.row(7)
        decoded = decode_image(lot.image_for(row)).as_dict()["factory"]
        assert decoded["serial_no"] == "SN26110008" == lot.ledger.row(7).unit_id
        assert decoded["device_key"] == bytes.fromhex(row.values["device_key"])
        masked = lot.masked_values(row)
        assert masked["serial_no"] == "SN26110008"
        assert row.values["device_key"] not in masked.values()
    with open_lot(sample_lot) as lot:
        assert not lot.imported.created and lot.imported.imported == 0


def test_bad_toml_is_located(tmp_path: Path) -> None:
    lot = tmp_path / "lot.toml"
    lot.write_text('name = "A"\nconfig = "c.csv\n', encoding="utf-8")
    with pytest.raises(StationError) as err:
        read_lot_file(lot)
    (p,) = problems(err)
    assert p.startswith(f"{lot}:2:") and "not valid TOML" in p


def test_every_problem_of_a_lot_file_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("x", encoding="utf-8")
    lot = tmp_path / "lot.toml"
    lot.write_text(
        'name = "bad name!"\nconfig = "c.csv"\nvalues = "missing.csv"\nchip = "esp99"\n'
        'nvs_version = 3\ncolour = 1\nsecret_columns = "pin"\n'
        'encryption = { keyfile = "nokey.bin", salt = 1 }\n',
        encoding="utf-8",
    )
    with pytest.raises(StationError) as err:
        read_lot_file(lot)
    got = problems(err)
    f = str(lot)
    assert f"{f}:1:1: name: use 1-64 letters" in got[0] or any(
        p.startswith(f"{f}:1:1: name:") for p in got
    )
    expected = [
        f"{f}:3:1: values: missing.csv: no such file",
        f"{f}:4:1: chip: unknown chip 'esp99'",
        f"{f}:5:1: nvs_version: must be 1 or 2",
        f"{f}:6:1: colour: unknown key",
        f"{f}:7:1: secret_columns: must be a list",
        f"{f}:8:16: encryption.keyfile: nokey.bin: no such file",
        f"{f}:8:39: encryption.salt: unknown encryption key",
        f"{f}:0:0: partition_table: missing (required)",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in got), (e, got)


def test_columns_named_by_the_lot_must_exist(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    text = lot.read_text(encoding="utf-8").replace(
        'scan_column = "serial_no"', 'scan_column = "barcode"'
    )
    lot.write_text(text + 'secret_columns = ["nope"]\n', encoding="utf-8")
    with pytest.raises(StationError) as err:
        open_lot(lot)
    got = problems(err)
    assert any(p.startswith(f"{lot}:7:1: scan_column: no column 'barcode'") for p in got)
    assert any(p.startswith(f"{lot}:8:1: secret_columns: no column 'nope'") for p in got)
    assert not list(lot.parent.glob("*.station.db*"))  # nothing written


def test_duplicate_scan_values_are_refused(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    values = lot.parent / "values.csv"
    lines = values.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("SN0003", "SN0001")
    values.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(StationError) as err:
        open_lot(lot, db_url=str(tmp_path / "x.db"))
    # mfg may report the duplicate file id too; ours names the scan column
    assert any(f"{values}:4:" in p for p in problems(err))


def test_inputs_problems_are_reported_with_the_lot(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    values = lot.parent / "values.csv"
    values.write_text(
        values.read_text(encoding="utf-8").replace(",1\n", ",notanumber\n"), encoding="utf-8"
    )
    (lot.parent / "partitions.csv").write_text(
        "fctry, data, nvs, 0xd000, 0x1234,\n", encoding="utf-8"
    )
    with pytest.raises(StationError) as err:
        open_lot(lot)
    got = "\n".join(problems(err))
    assert "values.csv:3:" in got and "partitions.csv:1:" in got
    assert not list(lot.parent.glob("*.station.db*"))


def test_reopen_after_production_refuses_a_changed_csv(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 4)
    with open_lot(lot) as opened:
        c = opened.ledger.claim_next(mac="aa:bb:cc:00:00:01", port="p")
        assert c is not None
    values = lot.parent / "values.csv"
    original = values.read_text(encoding="utf-8")
    lines = original.splitlines()
    lines[2] = lines[2][:-1] + "9"  # row 2's hw_rev
    values.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(StationError) as err:
        open_lot(lot)
    assert any(
        p.startswith(f"{values}:3:0: row 2: changed after production started")
        for p in problems(err)
    )
    values.write_text(original + "SN0099,00112233445566778899aabbccddeeff,7\n", encoding="utf-8")
    with open_lot(lot) as opened:
        assert opened.imported.imported == 1 and opened.ledger.count() == 5
    config = lot.parent / "config.csv"
    config.write_text(config.read_text(encoding="utf-8").replace("u32", "u16"), encoding="utf-8")
    with pytest.raises(StationError, match="changed after production started"):
        open_lot(lot)


def test_write_lot_file_round_trips(tmp_path: Path, sample_lot: Path) -> None:
    s = read_lot_file(sample_lot)
    again = sample_lot.parent / "again.toml"
    write_lot_file(s, again)
    assert 'config = "config.csv"' in again.read_text(encoding="utf-8")
    r = read_lot_file(again)
    assert r == LotSettings(**{**s.__dict__, "path": again.resolve()})


def test_encrypted_lot_images_decode_with_the_key(tmp_path: Path) -> None:
    from station.nvs import generate_keys, key_partition_image

    lot = make_small_lot(tmp_path / "l", 2, nvs_keys="encrypted")
    keys = generate_keys()
    (lot.parent / "keys.bin").write_bytes(key_partition_image(keys))
    lot.write_text(
        lot.read_text(encoding="utf-8") + 'encryption = { keyfile = "keys.bin" }\n',
        encoding="utf-8",
    )
    with open_lot(lot) as opened:
        image = opened.image_for(opened.row(1))
        assert decode_image(image, keys).as_dict()["factory"]["serial_no"] == "SN0002"
        assert b"SN0002" not in image


def test_homekit_lot_images_carry_hap_setup_and_are_stable(tmp_path: Path) -> None:
    from station.homekit import srp_salt_verifier

    lot = make_small_lot(tmp_path / "l", 3, partition="factory_nvs")
    values = lot.parent / "values.csv"
    lines = values.read_text(encoding="utf-8").splitlines()
    lines = [lines[0] + ",setup_code,setup_id"] + [f"{line},," for line in lines[1:]]
    values.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lot.write_text(
        lot.read_text(encoding="utf-8") + 'homekit = { category = "outlet", generate = true }\n',
        encoding="utf-8",
    )
    with open_lot(lot) as opened:
        assert opened.homekit is not None
        assert "setup_code" in opened.secret_columns
        row = opened.row(1)
        code, setup_id = row.values["setup_code"], row.values["setup_id"]
        assert code and setup_id  # generated and kept in the values file before any import
        assert f",{code},{setup_id}" in values.read_text(encoding="utf-8")
        image = opened.image_for(row)
        assert opened.image_for(row) == image  # same bytes every time
        hap = decode_image(image).as_dict()["hap_setup"]
        assert hap["setup_id"] == setup_id.encode()
        assert srp_salt_verifier(code, hap["setup_salt"])[1] == hap["setup_verifier"]
        assert decode_image(image).as_dict()["factory"]["serial_no"] == "SN0002"
        salts = {
            decode_image(opened.image_for(opened.row(i))).as_dict()["hap_setup"]["setup_salt"]
            for i in range(3)
        }
        assert len(salts) == 3
    with open_lot(lot) as again:  # re-open: nothing changed, nothing re-imported
        assert again.imported.imported == 0 and again.image_for(again.row(1)) == image


def test_homekit_rows_without_codes_are_located_errors(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2, partition="factory_nvs")
    lot.write_text(
        lot.read_text(encoding="utf-8") + "homekit = { category = 7 }\n", encoding="utf-8"
    )
    with pytest.raises(StationError) as err:
        open_lot(lot)
    got = problems(err)
    assert any(":2:0: setup_code:" in p and "not a column" in p for p in got)
    assert not list(lot.parent.glob("*.station.db*"))


# --- whole-lot checks of the partition table against the lot's settings ---------------------
def no_ledger(lot: Path) -> bool:
    return not list(lot.parent.glob("*.station.db*"))


def test_flash_encryption_scheme_needs_an_nvs_keys_partition(tmp_path: Path) -> None:
    from station.nvs import generate_keys, key_partition_image

    lot = make_small_lot(tmp_path / "l", 2, extra='encryption = { keyfile = "keys.bin" }\n')
    (lot.parent / "keys.bin").write_bytes(key_partition_image(generate_keys()))
    with pytest.raises(StationError) as err:
        open_lot(lot)
    (p,) = problems(err)
    assert p.startswith(f"{lot.parent / 'partitions.csv'}:0:0: encryption: NVS encryption")
    assert "nvs_keys" in p and err.value.exit_code == 2
    assert no_ledger(lot)


def test_the_nvs_keys_partition_must_be_flagged_encrypted(tmp_path: Path) -> None:
    from station.nvs import generate_keys, key_partition_image

    lot = make_small_lot(
        tmp_path / "l", 2, nvs_keys="", extra='encryption = { keyfile = "keys.bin" }\n'
    )
    (lot.parent / "keys.bin").write_bytes(key_partition_image(generate_keys()))
    with pytest.raises(StationError) as err:
        open_lot(lot)
    (p,) = problems(err)
    assert p.startswith(f"{lot.parent / 'partitions.csv'}:2:")
    assert "nvs_key: the nvs_keys partition must be flagged 'encrypted'" in p
    assert no_ledger(lot)


def test_hmac_scheme_needs_no_key_partition(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2, extra='encryption = { hmac_keyfile = "hmac.key" }\n')
    (lot.parent / "hmac.key").write_bytes(bytes(range(32)))
    with open_lot(lot) as opened:
        assert opened.keys is not None and opened.key_partition is None


def test_homekit_lots_write_factory_nvs(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2, extra="homekit = { category = 7, generate = true }\n")
    values = lot.parent / "values.csv"
    before = values.read_bytes()
    with pytest.raises(StationError) as err:
        open_lot(lot)
    got = problems(err)
    assert any(
        p.startswith(f"{lot.parent / 'partitions.csv'}:0:0: homekit:") and "'factory_nvs'" in p
        for p in got
    ), got
    assert no_ledger(lot) and values.read_bytes() == before  # no codes generated either


def test_an_image_that_does_not_fill_the_partition_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import station.mfg

    real = station.mfg.build_row_image
    monkeypatch.setattr(station.mfg, "build_row_image", lambda *a, **k: real(*a, **k)[:-4096])
    lot = make_small_lot(tmp_path / "l", 2)
    with pytest.raises(StationError) as err:
        open_lot(lot)
    (p,) = problems(err)
    assert p.startswith(f"{lot.parent / 'partitions.csv'}:2:1: fctry: the image is 0x2000 bytes")
    assert no_ledger(lot)


def test_lot_file_inputs_and_table_problems_come_together(tmp_path: Path) -> None:
    lot = make_small_lot(
        tmp_path / "l", 3, extra='chip = "esp99"\nencryption = { hmac_keyfile = "hmac.key" }\n'
    )
    (lot.parent / "hmac.key").write_bytes(bytes(31))
    values = lot.parent / "values.csv"
    values.write_text(
        values.read_text(encoding="utf-8").replace(",1\n", ",notanumber\n"), encoding="utf-8"
    )
    (lot.parent / "partitions.csv").write_text(
        "fctry, data, nvs, 0xd000, 0x3000,\nfctry, data, nvs, 0x20000, 0x3000,\n",
        encoding="utf-8",
    )
    with pytest.raises(StationError) as err:
        open_lot(lot)
    got = "\n".join(problems(err))
    assert f"{lot}:8:1: chip: unknown chip 'esp99'" in got
    assert f"{lot.parent / 'hmac.key'}:0:0: hmac_keyfile: an HMAC key is 32 bytes" in got
    assert f"{values}:3:" in got
    assert f"{lot.parent / 'partitions.csv'}:2:" in got and "duplicate name" in got
    assert err.value.exit_code == 2 and no_ledger(lot)


@pytest.mark.parametrize("value", ["0", "7200", '"30"', "true", "[30]"])
def test_a_bad_lease_is_located(tmp_path: Path, value: str) -> None:
    lot = make_small_lot(tmp_path / "l", 2, extra=f"lease = {value}\n")
    with pytest.raises(StationError) as err:
        read_lot_file(lot)
    (p,) = problems(err)
    assert p.startswith(f"{lot}:8:1: lease: must be a number of seconds from 1 to 3600"), p


def test_the_lots_lease_holds_its_runs_claims(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2, extra="lease = 45\n")
    settings = read_lot_file(lot)
    assert settings.lease == 45.0
    again = lot.parent / "again.toml"
    write_lot_file(settings, again)
    assert read_lot_file(again).lease == 45.0
    with open_lot(lot) as opened:
        run = opened.ledger.start_run()
        (lease_s,) = opened.ledger._q("SELECT lease_s FROM runs WHERE id = ?", (run,))[0]
        assert lease_s == 45.0
        opened.ledger.end_run(run)
    default = make_small_lot(tmp_path / "d", 2)
    assert read_lot_file(default).lease == 30.0
