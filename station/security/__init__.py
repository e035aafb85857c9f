"""Security provisioning: eFuse recipes (NVS HMAC key, host-based flash encryption, Secure
Boot v2, final locks) through espefuse and espsecure as libraries. No Qt, no subprocess.

The orchestrator's API is :class:`Provisioner` (see :mod:`station.security.provision`); the
ledger implements :class:`StepJournal`.
"""

from station.security.chips import ChipCaps, chip_caps, supported_chips
from station.security.escrow import KeyEscrow
from station.security.journal import JsonlJournal, StepJournal
from station.security.lotcheck import LotSecurity, check_lot
from station.security.provision import (
    BoardRefused,
    BurnFailed,
    Provisioner,
    State,
    StepOutcome,
    UnitKeys,
)
from station.security.recipes import Kind, Phase, Plan, Step, build_plan
from station.security.settings import (
    SecuritySettings,
    check_signatures,
    hmac_warning,
    parse_security,
)

__all__ = [
    "BoardRefused",
    "BurnFailed",
    "ChipCaps",
    "JsonlJournal",
    "KeyEscrow",
    "Kind",
    "LotSecurity",
    "Phase",
    "Plan",
    "Provisioner",
    "SecuritySettings",
    "State",
    "Step",
    "StepJournal",
    "StepOutcome",
    "UnitKeys",
    "build_plan",
    "check_lot",
    "check_signatures",
    "chip_caps",
    "hmac_warning",
    "parse_security",
    "supported_chips",
]
