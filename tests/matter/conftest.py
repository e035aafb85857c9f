"""Fixtures of the Matter tests: a test PKI, the oracle, and running ``station matter``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from station.cli import main
from tests.matter.oracle import ensure_oracle
from tests.matter.pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def oracle() -> Path:
    """esp-matter-mfg-tool 1.0.29 (one environment per machine, made once per session)."""
    try:
        return ensure_oracle()
    except (RuntimeError, OSError) as err:  # no network, no PyPI: say so, do not fail
        pytest.skip(f"esp-matter-mfg-tool 1.0.29 could not be installed: {err}")


def station(args: list[str]) -> tuple[int, str, str]:
    """``station matter ARGS``: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["matter", *args])
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
