"""The example scenarios in ../shared/scenarios give exactly their expected classic webhooks,
recording POSTs included.

Each runs through the real command (`callbridge scenario run FILE`) and is judged by the
contract's own `check.py`.
"""

import asyncio
import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from tests.conftest import SHARED, check_webhooks, expected_webhooks
from tests.receiver import Receiver

EXAMPLES = sorted(
    p.stem for p in (SHARED / "scenarios").glob("*.yaml") if p.with_suffix(".expected.jsonl").exists()
)


def run_scenario(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "scenario", "run", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4, EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_scenario_matches_in_full(name: str, contracts: Path, tmp_path: Path) -> None:
    assert any("FILES" in line for line in expected_webhooks(name))  # recordings included
    result = run_scenario(contracts / "scenarios" / f"{name}.yaml")
    assert result.returncode == 0, result.stderr
    assert check_webhooks(name, result.stdout.splitlines(), tmp_path) == "", result.stdout


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_scenario_matches_through_a_fake_3cx(name: str, contracts: Path, tmp_path: Path) -> None:
    """The same classic webhooks when a fake 3CX plays the scenario and the 3CX driver watches it
    over HTTP and WebSocket (real time × 20) as when the simulator feeds the tracker directly."""
    result = run_scenario(contracts / "scenarios" / f"{name}.yaml", "--via", "fake-3cx", "--speed", "20")
    assert result.returncode == 0, result.stderr
    assert check_webhooks(name, result.stdout.splitlines(), tmp_path) == "", result.stdout


def test_recordings_are_written_as_3cx_does(contracts: Path, tmp_path: Path) -> None:
    result = run_scenario(contracts / "scenarios" / "queue-callback.yaml", "--recordings-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("*/*.wav"))
    # 105 talked 11 s → 101 s with a reconnect at 41 s: two files, 30 s and 60 s
    assert [f.parent.name for f in files] == ["105", "105"]
    assert [f.name for f in files] == [
        "[420774852629]_420774852629-105_20211230102749(669).wav",
        "[420774852629]_420774852629-105_20211230102819(669).wav",
    ]
    durations = []
    for f in files:
        with wave.open(str(f)) as audio:
            assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 8000)
            durations.append(audio.getnframes() / audio.getframerate())
    assert durations == [30.0, 60.0]


def test_extension_with_recording_off_writes_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""
start: "2024-01-01T09:00:00"
directory:
  extensions: [{number: "104", recording: "off"}, {number: "101", recording: all}]
  lines: [{number: "10000", dids: [{number: "+1", name: D}]}]
steps:
  - {t: 0, do: incoming, call: A, from: "111", did: D, to: "104"}
  - {t: 1, do: ring, call: A, dn: ["104"]}
  - {t: 2, do: answer, call: A, dn: "104"}
  - {t: 9, do: hangup, call: A, by: external}
""")
    result = run_scenario(scenario, "--recordings-dir", str(tmp_path / "rec"))
    assert result.returncode == 0, result.stderr
    assert not list((tmp_path / "rec").glob("**/*.wav"))
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == [
        "ringing",
        "hangupincoming",
        "incoming",
    ]


MALFORMED = {
    "unknown label": (
        '- {t: 0, do: ring, call: Z, dn: ["101"]}',
        "step 1 (t=0, ring): unknown call label 'Z'",
    ),
    "answer not ringing": (
        '- {t: 0, do: incoming, call: A, from: "1", did: PragueDID, to: "800"}\n'
        '  - {t: 1, do: answer, call: A, dn: "101"}',
        "step 2 (t=1, answer): 101 is not ringing for call A",
    ),
    "unknown DN": (
        '- {t: 0, do: incoming, call: A, from: "1", did: PragueDID, to: "999"}',
        "step 1 (t=0, incoming): DN 999 is not in the directory",
    ),
    "missing field": ("- {t: 0, do: hangup, call: A}", "step 1 (t=0, hangup): missing field(s) by"),
    "t backwards": (
        '- {t: 5, do: register, dn: "101"}\n  - {t: 1, do: register, dn: "101"}',
        "step 2 (t=1, register): t goes backwards",
    ),
    "unknown do": ("- {t: 0, do: dance, call: A}", "step 1: unknown or missing 'do' 'dance'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_scenario_fails_clearly(case: str, tmp_path: Path) -> None:
    steps, message = MALFORMED[case]
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(f'start: "2024-01-01T09:00:00"\nsteps:\n  {steps}\n')
    result = run_scenario(scenario)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""  # nothing is sent before the whole scenario is known to be possible


async def run_to_url(scenario: Path, url: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "scenario",
        "run",
        str(scenario),
        "--webhook-url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def test_webhook_url_delivers_the_classic_webhooks(contracts: Path, tmp_path: Path) -> None:
    async with Receiver() as receiver:
        status, stdout, stderr = await run_to_url(
            contracts / "scenarios" / "queue-blind-transfer.yaml", receiver.url
        )
    assert status == 0, stderr.decode()
    assert stdout == b""  # delivered, not printed
    assert {r.method for r in receiver.requests} == {"GET", "POST"}  # call events, then recordings
    assert all("FILES" in r.webhook() for r in receiver.requests if r.method == "POST")
    lines = [json.dumps(r.webhook()) for r in receiver.requests]
    assert check_webhooks("queue-blind-transfer", lines, tmp_path) == ""


async def test_webhook_url_that_never_answers_fails_the_run(contracts: Path) -> None:
    async with Receiver(lambda request, receiver: (500, {})) as receiver:
        status, _, stderr = await run_to_url(contracts / "scenarios" / "outgoing.yaml", receiver.url)
    assert status == 1
    assert (
        "call.answered 220106205945_755 not delivered: gave up after 8 attempts; last: HTTP 500"
        in stderr.decode()
    )
