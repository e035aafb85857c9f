"""The [security] table: every problem located and reported at once, exit code 2, before
anything is burned; firmware signatures checked against the lot's keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from station.cli import main
from station.errors import StationError
from station.production.security_commands import load
from station.security import hmac_warning, parse_security
from tests.security.conftest import make_lot


def _problems(lot: Path) -> list[str]:
    with pytest.raises(StationError) as err:
        load(str(lot))
    assert err.value.exit_code == 2
    return [str(p) for p in err.value.problems]


def test_a_good_table(tmp_path: Path, rsa_keys: list[bytes]) -> None:
    (tmp_path / "sb0.pem").write_bytes(rsa_keys[0])
    (tmp_path / "hmac.key").write_bytes(os.urandom(32))
    lot = make_lot(
        tmp_path,
        chip="esp32s3",
        sign_with=rsa_keys[0],
        security=(
            'recipes = ["final_lock", "secure_boot", "nvs_hmac", "flash_encryption"]\n'
            'hmac_key_id = 4\nhmac_keyfile = "hmac.key"\nxts_aes = 256\n'
            'secure_boot_keys = ["sb0.pem"]\nfinal_lock = "disable_download"\n'
        ),
    )
    s = load(str(lot))[0].settings
    assert s is not None
    assert s.recipes == ("nvs_hmac", "flash_encryption", "secure_boot", "final_lock")
    assert (s.chip, s.hmac_key_id, s.xts_aes, s.mode) == ("esp32s3", 4, 256, "release")
    assert s.secure_boot_keys[0].scheme == "rsa"
    assert s.key_folder == tmp_path.resolve() / "keys" / "security"


def test_every_problem_at_once_with_its_place(tmp_path: Path, ecdsa_keys: list[bytes]) -> None:
    (tmp_path / "sb0.pem").write_bytes(ecdsa_keys[0])
    (tmp_path / "hmac.key").write_bytes(os.urandom(16))
    lot = make_lot(
        tmp_path,
        chip="esp32c3",
        build=False,
        security=(
            'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "tamper"]\n'  # line 10
            'mode = "production"\n'
            'hmac_keyfile = "hmac.key"\n'
            "xts_aes = 256\n"
            'secure_boot_keys = ["sb0.pem", "missing.pem"]\n'
            "colour = 1\n"
        ),
    )
    text = lot.read_text().splitlines()
    first = text.index("[security]") + 2  # 1-based line of 'recipes'
    found = _problems(lot)
    f = str(lot)

    def at(line: int, key: str, words: str) -> None:
        hits = [p for p in found if p.startswith(f"{f}:{line}:1: security.{key}: ")]
        assert any(words in p for p in hits), (line, key, words, found)

    at(first, "recipes", "unknown recipe 'tamper'")
    at(first + 1, "mode", "development, release")
    at(first + 2, "hmac_keyfile", "an HMAC key is 32 bytes, this file has 16")
    at(first + 3, "xts_aes", "no XTS-AES-256")
    at(first + 4, "secure_boot_keys", "an ECDSA key, the esp32c3 verifies RSA signatures only")
    at(first + 4, "secure_boot_keys", "missing.pem: no such file")
    at(first + 5, "colour", "unknown key")
    assert any("security.hmac_key_id: required for nvs_hmac" in p for p in found)
    assert any(
        "firmware: flash_encryption and secure_boot need the lot's firmware" in p for p in found
    )


@pytest.mark.parametrize(
    ("chip", "security", "words"),
    [
        ("esp32", 'recipes = ["flash_encryption"]\n', "BLOCK1"),
        ("esp32c2", 'recipes = ["flash_encryption"]\n', "one key block"),
        ("esp32c61", 'recipes = ["nvs_hmac"]\nhmac_key_id = 0\n', "no HMAC peripheral"),
        ("auto", 'recipes = ["flash_encryption"]\n', "name the chip"),
        ("esp32c3", 'recipes = ["final_lock"]\n', "final_lock alone"),
        ("esp32c3", 'recipes = ["nvs_hmac"]\nhmac_key_id = 6\n', "0..5"),
        ("esp32c3", 'recipes = ["flash_encryption"]\nhmac_key_id = 1\n', "only used by"),
        ("esp32c3", "recipes = []\n", "must be a list"),
    ],
)
def test_recipe_and_chip_mismatch(tmp_path: Path, chip: str, security: str, words: str) -> None:
    (tmp_path / "hmac.key").write_bytes(os.urandom(32))
    lot = make_lot(
        tmp_path,
        chip=chip,
        security=security + 'hmac_keyfile = "hmac.key"\n' if "nvs_hmac" in security else security,
    )
    settings, problems = parse_security(lot)
    assert settings is None
    assert any(words in str(p) for p in problems), problems


def test_unsigned_and_wrongly_signed_firmware(tmp_path: Path, rsa_keys: list[bytes]) -> None:
    (tmp_path / "sb0.pem").write_bytes(rsa_keys[0])
    security = 'recipes = ["secure_boot"]\nsecure_boot_keys = ["sb0.pem"]\n'
    unsigned = make_lot(tmp_path / "a", chip="esp32c3", security=security)
    (tmp_path / "a" / "sb0.pem").write_bytes(rsa_keys[0])
    found = _problems(unsigned)
    assert any("bootloader: not signed" in p for p in found), found
    assert any("app: not signed" in p for p in found), found

    other = make_lot(tmp_path / "b", chip="esp32c3", security=security, sign_with=rsa_keys[1])
    (tmp_path / "b" / "sb0.pem").write_bytes(rsa_keys[0])
    found = _problems(other)
    assert any(
        "bootloader: no signature block verifies with the lot's keys (sb0.pem)" in p for p in found
    ), found

    tampered = make_lot(tmp_path / "c", chip="esp32c3", security=security, sign_with=rsa_keys[0])
    (tmp_path / "c" / "sb0.pem").write_bytes(rsa_keys[0])
    app = tmp_path / "c" / "build" / "app.bin"
    data = bytearray(app.read_bytes())
    data[100] ^= 1
    app.write_bytes(bytes(data))
    found = _problems(tampered)
    assert any("app: its signature block does not match the image" in p for p in found), found
    assert not any("bootloader" in p for p in found)


def test_either_of_two_keys_may_sign(tmp_path: Path, rsa_keys: list[bytes]) -> None:
    for i, k in enumerate(rsa_keys):
        (tmp_path / f"sb{i}.pem").write_bytes(k)
    lot = make_lot(
        tmp_path,
        chip="esp32c3",
        sign_with=rsa_keys[1],
        security=('recipes = ["secure_boot"]\nsecure_boot_keys = ["sb0.pem", "sb1.pem"]\n'),
    )
    s = load(str(lot))[0].settings
    assert s is not None and len(s.secure_boot_keys) == 2


def test_the_cli_exits_2_with_located_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lot = make_lot(
        tmp_path, chip="esp32c3", security='recipes = ["flash_encryption"]\nxts_aes = 7\n'
    )
    assert main(["security", "plan", str(lot)]) == 2
    err = capsys.readouterr().err
    assert f"{lot}:" in err and "security.xts_aes: must be 128" in err
    assert "Traceback" not in err


def test_hmac_warning_at_lot_open(tmp_path: Path) -> None:
    (tmp_path / "hmac.key").write_bytes(os.urandom(32))
    warn = hmac_warning({"hmac_keyfile": tmp_path / "hmac.key"}, None)
    assert warn is not None
    assert "burns it read-protected" in warn and "can then never be read" in warn
    lot = make_lot(
        tmp_path,
        chip="esp32c3",
        build=False,
        security=('recipes = ["nvs_hmac"]\nhmac_key_id = 0\n'),
        extra='encryption = { hmac_keyfile = "hmac.key" }\n',
    )
    checked, _lot, _units = load(str(lot))
    assert checked.warning is None  # the recipe burns the lot's key from [encryption]
    assert checked.settings is not None and checked.settings.hmac_keyfile is not None
    assert hmac_warning({"keyfile": "x"}, None) is None  # the flash-encryption scheme


def test_plan_prints_every_write_and_touches_nothing(
    tmp_path: Path, rsa_keys: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sb0.pem").write_bytes(rsa_keys[0])
    (tmp_path / "hmac.key").write_bytes(os.urandom(32))
    lot = make_lot(
        tmp_path,
        chip="esp32c3",
        sign_with=rsa_keys[0],
        security=(
            'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "final_lock"]\n'
            'hmac_key_id = 0\nhmac_keyfile = "hmac.key"\nsecure_boot_keys = ["sb0.pem"]\n'
        ),
    )
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["security", "plan", str(lot)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert "BLOCK_KEY0 <- lot HMAC key; KEY_PURPOSE = HMAC_UP; read-protected" in out
    assert "BLOCK_KEY1 <- per-unit XTS-AES key; KEY_PURPOSE = XTS_AES_128_KEY" in out
    assert "SPI_BOOT_CRYPT_CNT = 7" in out
    assert "ENABLE_SECURITY_DOWNLOAD = 1   (after verify)" in out
    assert "11 of 11 steps cannot be undone" in out
    assert "SN0003: same steps; keys keys/security/SN0003.xts.bin (made at its first burn)" in out
    capsys.readouterr()
    assert main(["security", "plan", str(lot), "--chip", "esp32c61"]) == 2
    err = capsys.readouterr().err
    assert "no HMAC peripheral" in err and "verifies ECDSA signatures only" in err


def test_production_checks_the_security_table_at_lot_open(tmp_path: Path) -> None:
    """station run / the window open a security lot only when its table is good."""
    from station.production.lot import open_lot

    lot = make_lot(
        tmp_path, chip="esp32c3", build=False, security=('recipes = ["flash_encryption"]\n')
    )
    with pytest.raises(StationError) as err:
        open_lot(lot)
    assert any(
        str(p).startswith(f"{lot}:0:0: firmware: flash_encryption and secure_boot need")
        or "flash_encryption need the lot's firmware" in str(p)
        for p in err.value.problems
    ), err.value.problems
    assert not list(tmp_path.glob("*.station.db"))


def test_the_bundle_carries_espefuse_tables() -> None:
    """espefuse reads its eFuse tables (YAML) at run time; a frozen station needs them."""
    spec = (Path(__file__).resolve().parents[2] / "installer" / "station.spec").read_text()
    assert 'collect_data_files("espefuse")' in spec
