"""The contract's own example scenarios, where its folder lies beside the checkout (`../shared`,
as in CI): each through `callbridge scenario run`, judged by the contract's own `check.py`.
Without the folder there is nothing here, and the run ends with a line saying so (conftest)."""

import subprocess
import sys

import pytest

from tests.conftest import CONTRACTS

NAMES = sorted(p.name.removesuffix(".expected.jsonl") for p in CONTRACTS.glob("*.expected.jsonl"))

if NAMES:

    @pytest.mark.parametrize("name", NAMES)
    def test_contract_scenario(name: str) -> None:
        run = subprocess.run(
            [sys.executable, "-m", "services.cli", "scenario", "run", str(CONTRACTS / f"{name}.yaml")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        judged = subprocess.run(
            [sys.executable, str(CONTRACTS / "check.py"), str(CONTRACTS / f"{name}.expected.jsonl"), "-"],
            input=run.stdout,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert judged.returncode == 0, judged.stdout
