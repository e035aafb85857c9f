"""``station inspect`` on a Matter partition: its fields in words, never the DAC key."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from station.cli import main
from station.matter import certs
from tests.matter.conftest import station
from tests.matter.pki import Pki


def _inspect(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["inspect", *args])
    return code, out.getvalue()


def test_inspect_shows_matter_fields_in_words(pki: Pki, tmp_path: Path) -> None:
    code, _o, err = station(
        ["-v", "0xFFF2", "-p", "0x8001", "--pai", "-c", pki.pai_cert, "--dac-cert", pki.dac_cert,
         "--dac-key", pki.dac_key, "-cd", pki.cd, "--discriminator", "3840", "--serial-num", "SN1",
         "--vendor-name", "ACME", "--outdir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, err
    [image] = tmp_path.glob("fff2_8001/*/*-partition.bin")
    code, text = _inspect([str(image)])
    assert code == 0
    for needle in (
        "Matter factory data (chip-factory):",
        "vendor ID 0xFFF2, product ID 0x8001",
        "vendor: ACME",
        "serial number: SN1",
        "discriminator 3840 (0xF00)",
        "SPAKE2+ verifier present, salt 32 bytes, 10000 iterations",
        "DAC: PID=8001,VID=FFF2,CN=5b5a6c4e-6f0c-4b3e-9a47-2f4c4d1e8a11",
        "DAC private key present (not shown)",
        "PAI: PID=8001,VID=FFF2,CN=Test PAI",
    ):
        assert needle in text, needle
    key = certs.load_private_key(Path(pki.dac_key).read_bytes())
    secret = certs.raw_private_key(key).hex()
    assert secret not in text
    code, as_json = _inspect([str(image), "--json"])
    assert secret not in as_json and "not shown" in as_json
