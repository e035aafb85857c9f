"""`station generate` on ESP-IDF's own mfg_gen samples, byte for byte against the official flow.

The samples and their test data are copied unchanged from espressif/esp-idf
``tools/mass_mfg/samples`` and ``tools/mass_mfg/testdata`` (Apache-2.0) into
``tests/peers/mass_mfg``; the commands are the ones in ``tools/mass_mfg/docs/README.rst``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mfg.conftest import files_under
from tests.mfg.reference import official_generate

Station = Callable[..., tuple[int, str, str]]
MASS_MFG = Path(__file__).parents[1] / "peers" / "mass_mfg"


@pytest.fixture
def samples(lotdir: Path) -> Path:
    """The lot folder holding samples/ and testdata/ (the values name testdata/… files)."""
    shutil.copytree(MASS_MFG / "samples", lotdir / "samples")
    shutil.copytree(MASS_MFG / "testdata", lotdir / "testdata")
    return lotdir


@pytest.mark.parametrize(
    ("config", "values", "size", "version"),
    [
        ("sample_config.csv", "sample_values_singlepage_blob.csv", "0x3000", 2),
        ("sample_config.csv", "sample_values_singlepage_blob.csv", "0x3000", 1),
        ("sample_config.csv", "sample_values_multipage_blob.csv", "0x4000", 2),
        (
            "sample_config_blank_lines.csv",
            "sample_values_singlepage_blob_blank_lines.csv",
            "0x3000",
            2,
        ),
    ],
)
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "inputkey"])
def test_idf_samples_are_byte_identical(
    station: Station,
    samples: Path,
    config: str,
    values: str,
    size: str,
    version: int,
    encrypted: bool,
) -> None:
    conf, vals = Path("samples") / config, Path("samples") / values
    key = Path("testdata/sample_encryption_keys.bin")
    extra = ["--inputkey", str(key)] if encrypted else []
    code, _out, err = station(
        "generate",
        conf,
        vals,
        "Sample",
        size,
        "--outdir",
        "ours",
        "--version",
        str(version),
        *extra,
    )
    assert code == 0
    # Espressif's samples repeat values in columns named like keys (dummyU64Key): the station
    # warns about two devices sharing a key, and writes the images all the same
    assert all(": warning: same value as line " in line for line in err.splitlines()), err
    official_generate(
        conf,
        vals,
        "Sample",
        size,
        samples / "theirs",
        version=version,
        inputkey=key if encrypted else None,
    )
    ours, theirs = files_under(samples / "ours"), files_under(samples / "theirs")
    assert (
        sorted(ours)
        == sorted(theirs)
        == [f"{kind}/Sample-{n}.{kind}" for kind in ("bin", "csv") for n in (1, 2, 3)]
    )
    for name in ours:
        assert ours[name] == theirs[name], name
