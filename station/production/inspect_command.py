"""``station inspect IMAGE``: an NVS image decoded (:mod:`station.nvs.commands`), with the
factory data of the layers above it in words: a Matter ``chip-factory`` namespace shows its
VID/PID, discriminator and DAC, never the DAC's private key."""

from __future__ import annotations

import argparse

from station.matter.describe import hide_secrets, matter_summary
from station.nvs.commands import inspect as inspect_nvs


def inspect(args: argparse.Namespace) -> int:
    return inspect_nvs(args, hide=hide_secrets, describe=matter_summary)
