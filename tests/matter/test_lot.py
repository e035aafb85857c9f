"""A lot with a ``[matter]`` table: each unit's Matter data made once, the same image after."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from station.errors import StationError
from station.matter import certs
from station.matter.payload import parse_manual_code, parse_qr_code
from station.matter.spake2p import verifier_matches
from station.matter.unit import label_facts, settings_from_dict, store_path
from station.nvs import decode_image
from station.production import open_lot
from tests.matter.pki import Pki
from tests.production.conftest import make_small_lot


def matter_lot(folder: Path, pki: Pki, rows: int = 2, table: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pai_cert.pem", "pai_key.pem", "paa_cert.pem", "cd.der"):
        shutil.copy(pki.folder / name, folder / name)
    table = table or (
        '[matter]\nvendor_id = 0xFFF2\nproduct_id = 0x8001\nvendor_name = "ACME"\n'
        'pai_cert = "pai_cert.pem"\npai_key = "pai_key.pem"\npaa_cert = "paa_cert.pem"\n'
        'cd = "cd.der"\nlifetime_days = 3650\nvalid_from = "2025-01-01"\n'
    )
    return make_small_lot(folder, rows, name="MATTER", extra=table)


def test_unit_image_is_made_once_and_the_same_after(pki: Pki, tmp_path: Path) -> None:
    lot_file = matter_lot(tmp_path / "lot", pki)
    with open_lot(lot_file) as lot:
        first = lot.image_for(lot.row(0))
        assert lot.image_for(lot.row(0)) == first
        other = lot.image_for(lot.row(1))
        unit = lot.unit_id(lot.row(0))
    with open_lot(lot_file) as lot:  # a new session: the kept record gives the same bytes
        assert lot.image_for(lot.row(0)) == first
    record = store_path(lot_file, unit)
    assert record.stat().st_mode & 0o777 == 0o600
    data = json.loads(record.read_bytes())

    values = decode_image(first).as_dict()
    assert values["factory"]["serial_no"] == "SN0001"  # the lot's own keys stay
    chip = values["chip-factory"]
    assert chip["vendor-id"] == 0xFFF2 and chip["vendor-name"] == "ACME"
    assert chip["serial-num"] == unit  # the unit's ID unless a serial column is named
    dac = certs.load_certificate(chip["dac-cert"])  # type: ignore[arg-type]
    pai = certs.load_certificate(Path(pki.pai_cert).read_bytes())
    paa = certs.load_certificate(Path(pki.paa_cert).read_bytes())
    assert (
        certs.chain_problems(dac, pai, "DAC") == [] and certs.chain_problems(pai, paa, "PAI") == []
    )
    assert dac.not_valid_before_utc.year == 2025
    assert verifier_matches(
        base64.b64decode(str(chip["verifier"])),
        data["passcode"],
        base64.b64decode(str(chip["salt"])),
        10000,
    )
    assert decode_image(other).as_dict()["chip-factory"]["dac-cert"] != chip["dac-cert"]


def test_label_codes_decode_back(pki: Pki, tmp_path: Path) -> None:
    lot_file = matter_lot(tmp_path / "lot", pki)
    with open_lot(lot_file) as lot:
        lot.image_for(lot.row(0))
        unit = lot.unit_id(lot.row(0))
    settings = settings_from_dict(json.loads("{}") or _table(lot_file), lot_file)
    from station.matter.unit import unit_device

    device = unit_device(settings, lot_file, unit, {})
    facts = label_facts(settings, device)
    qr = parse_qr_code(facts["matter_qr"])
    assert (qr.vendor_id, qr.product_id, qr.passcode, qr.discriminator) == (
        0xFFF2, 0x8001, device.passcode, device.discriminator,
    )  # fmt: skip
    assert parse_manual_code(facts["matter_manual_code"]).passcode == device.passcode


def _table(lot_file: Path) -> dict[str, object]:
    import tomllib

    return dict(tomllib.loads(lot_file.read_text())["matter"])


def test_values_columns_are_used(pki: Pki, tmp_path: Path) -> None:
    folder = tmp_path / "lot"
    lot_file = matter_lot(folder, pki, table="")
    text = lot_file.read_text() + 'passcode_column = "matter_code"\nserial_column = "serial_no"\n'
    lot_file.write_text(text)
    values = (folder / "values.csv").read_text().splitlines()
    values = [values[0] + ",matter_code"] + [
        v + f",{20202021 + i}" for i, v in enumerate(values[1:])
    ]
    (folder / "values.csv").write_text("\n".join(values) + "\n")
    (folder / "config.csv").write_text((folder / "config.csv").read_text())
    with open_lot(lot_file) as lot:
        image = lot.image_for(lot.row(1))
        masked = lot.masked_values(lot.row(1))
    chip = decode_image(image).as_dict()["chip-factory"]
    assert chip["serial-num"] == "SN0002"
    assert masked["matter_code"] != "20202022"  # the passcode column is a secret column


def test_bad_matter_table_every_problem_located(pki: Pki, tmp_path: Path) -> None:
    folder = tmp_path / "lot"
    (folder).mkdir()
    (folder / "bad_cd.der").write_bytes(b"nonsense")
    other_key = folder / "other_key.pem"
    shutil.copy(pki.dac_key, other_key)
    lot_file = matter_lot(
        folder,
        pki,
        table=(
            "[matter]\nvendor_id = 0x1FFF2\nproduct_id = 0x8001\n"
            'pai_cert = "pai_cert.pem"\npai_key = "other_key.pem"\ncd = "bad_cd.der"\n'
            'discovery = 1\nlifetime_days = 10\nvalid_from = "2001-01-01"\ncolour = 1\n'
        ),
    )
    with pytest.raises(StationError) as exc:
        open_lot(lot_file)
    shown = [str(p) for p in exc.value.problems]
    text = "\n".join(shown)
    assert exc.value.exit_code == 2
    for needle in (
        f"{lot_file}:9:1: matter.vendor_id: 131058 is out of range",
        f"{lot_file}:12:1: matter.pai_key: is not the private key of the PAI certificate",
        f"{lot_file}:13:1: matter.cd: is not DER",
        f"{lot_file}:14:1: matter.discovery: discovery mode 1 is not allowed",
        f"{lot_file}:15:1: matter.lifetime_days: validity 2001-01-01",
        f"{lot_file}:17:1: matter.colour: unknown key",
    ):
        assert needle in text, (needle, text)
    assert not (folder / "matter").exists()


def test_matter_label_reads_back(pki: Pki, tmp_path: Path, qapp: object) -> None:
    """The label's QR code is the unit's MT: payload; it decodes to the unit's passcode."""
    pytest.importorskip("PySide6")
    from station.gui.label_render import render_png
    from station.labels import label_fields, template_from_dict
    from tests.labels.conftest import decode_lum

    lot_file = matter_lot(tmp_path / "lot", pki)
    template = template_from_dict(
        {"width_mm": 50, "height_mm": 25, "lines": ["{matter_manual_code}"], "qr": "{matter_qr}"}
    )
    with open_lot(lot_file) as lot:
        row = lot.row(0)
        assert lot.matter_label_facts(row) == {}  # no Matter data before the unit is built
        lot.image_for(row)
        facts = lot.matter_label_facts(row)
        record = json.loads(store_path(lot_file, lot.unit_id(row)).read_bytes())
        fields = label_fields(template, row.values, facts, lot.secret_columns)
    from PySide6.QtGui import QImage

    image = QImage.fromData(render_png(template, fields), "PNG")
    grey = image.convertToFormat(QImage.Format.Format_Grayscale8)
    data = bytes(grey.constBits())[: grey.bytesPerLine() * grey.height()]
    [(kind, text)] = decode_lum(data, grey.width(), grey.height(), grey.bytesPerLine())
    payload = parse_qr_code(text)
    assert kind == "QRCode" and payload.passcode == record["passcode"]
    assert (payload.vendor_id, payload.product_id) == (0xFFF2, 0x8001)
    assert parse_manual_code(facts["matter_manual_code"]).passcode == record["passcode"]


def test_ledger_keeps_hashes_and_the_dac_identity(pki: Pki, tmp_path: Path) -> None:
    import hashlib

    lot_file = matter_lot(tmp_path / "lot", pki)
    with open_lot(lot_file) as lot:
        row = lot.row(0)
        lot.image_for(row)
        lot.image_for(row)
        unit = lot.unit_id(row)
        notes = [a for a in lot.ledger.audit_log() if a.action == "matter-data"]
    record = store_path(lot_file, unit).read_bytes()
    data = json.loads(record)
    dac = certs.load_certificate(base64.b64decode(data["dac_cert"]))
    assert len(notes) == 1  # once, when the data was made
    detail = notes[0].detail
    assert f"unit {unit}:" in detail and hashlib.sha256(record).hexdigest() in detail
    assert f"DAC serial {dac.serial_number:x}" in detail and f"CN={data['uuid']}" in detail
    assert str(data["passcode"]) not in detail and data["dac_key"] not in detail


def test_dac_in_esp_secure_cert_is_written_with_the_unit(pki: Pki, tmp_path: Path) -> None:
    from station.matter.secure_cert import CA_CERT, DEV_CERT, PRIV_KEY, parse_secure_cert

    folder = tmp_path / "lot"
    lot_file = matter_lot(folder, pki)
    lot_file.write_text(lot_file.read_text() + "secure_cert = true\n")
    with pytest.raises(StationError) as exc:
        open_lot(lot_file)
    assert (
        f"{lot_file}:18:1: matter.secure_cert: the partition table has no esp_secure_cert"
        in str(exc.value)
    )
    (folder / "partitions.csv").write_text(
        "nvs, data, nvs, 0x9000, 0x3000,\nesp_secure_cert, 0x3F, , 0xc000, 0x1000,\n"
        "fctry, data, nvs, 0xd000, 0x3000,\nfactory, app, factory, 0x10000, 1M,\n"
    )
    with open_lot(lot_file) as lot:
        ordered = lot.regions_for(lot.row(0))
        assert ordered[-1].name == "fctry"  # the orchestrator takes the last region as the image
        regions = {r.name: r for r in ordered}
        again = {r.name: r for r in lot.regions_for(lot.row(0))}
    sc = regions["esp_secure_cert"]
    assert sc.offset == 0xC000 and len(sc.data) == 0x1000 and sc.readback
    assert again["esp_secure_cert"].data == sc.data and again["fctry"].data == regions["fctry"].data
    entries = {t: d for t, _s, d in parse_secure_cert(sc.data)}
    dac = certs.load_certificate(entries[DEV_CERT])
    assert certs.load_certificate(entries[CA_CERT]).subject == dac.issuer
    assert certs.key_matches(dac, certs.load_private_key(entries[PRIV_KEY]))
    chip = decode_image(regions["fctry"].data).as_dict()["chip-factory"]
    assert "dac-cert" not in chip and "dac-key" not in chip and "verifier" in chip


def test_a_changed_record_is_refused(pki: Pki, tmp_path: Path) -> None:
    lot_file = matter_lot(tmp_path / "lot", pki)
    with open_lot(lot_file) as lot:
        lot.image_for(lot.row(0))
        unit = lot.unit_id(lot.row(0))
    record = store_path(lot_file, unit)
    data = json.loads(record.read_bytes())
    data["passcode"] = 34567890
    record.write_text(json.dumps(data))
    with open_lot(lot_file) as lot, pytest.raises(StationError) as exc:
        lot.image_for(lot.row(0))
    assert f"{record}:0:0: matter: unit {unit}'s Matter record changed since it was made" in str(
        exc.value
    )
