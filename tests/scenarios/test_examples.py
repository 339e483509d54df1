"""callbridge's example scenarios (examples/scenarios) give exactly their expected classic
webhooks, recording POSTs included, written by hand from the rules in docs/classic-webhooks.md.

Each runs through the real commands: `callbridge scenario run FILE`, judged by `callbridge
scenario check` (directly, and in process through `check_webhooks`).
"""

import asyncio
import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from simulation.scenario import STEP_FIELDS, load_scenario
from tests.conftest import EXAMPLES, check_webhooks, expected_webhooks
from tests.receiver import Receiver

NAMES = sorted(p.name.removesuffix(".expected.jsonl") for p in EXAMPLES.glob("*.expected.jsonl"))


def callbridge(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_scenario(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return callbridge("scenario", "run", str(path), *extra)


def test_there_are_examples_and_between_them_they_use_every_step() -> None:
    assert len(NAMES) >= 8, NAMES
    steps = {step.do for name in NAMES for step in load_scenario(EXAMPLES / f"{name}.yaml").steps}
    assert set(STEP_FIELDS) - steps <= {"makecall", "set_options"}  # callbridge's own: the API tests'


@pytest.mark.parametrize("name", NAMES)
def test_example_scenario_matches_in_full(name: str) -> None:
    result = run_scenario(EXAMPLES / f"{name}.yaml")
    assert result.returncode == 0, result.stderr
    assert check_webhooks(name, result.stdout.splitlines()) == "", result.stdout
    checked = callbridge(
        "scenario", "check", str(EXAMPLES / f"{name}.expected.jsonl"), "-", stdin=result.stdout
    )
    assert checked.returncode == 0 and checked.stdout.endswith("call chains match\n"), checked.stdout


def test_the_examples_record_and_announce_recordings() -> None:
    assert all(any("FILES" in w for w in expected_webhooks(name)) for name in NAMES if name != "missed-calls")


@pytest.mark.parametrize("name", NAMES)
def test_example_scenario_matches_through_a_fake_3cx(name: str) -> None:
    """The same classic webhooks when a fake 3CX plays the scenario and the 3CX driver watches it
    over HTTP and WebSocket as when the simulator feeds the tracker directly."""
    result = run_scenario(EXAMPLES / f"{name}.yaml", "--via", "fake-3cx")
    assert result.returncode == 0, result.stderr
    assert check_webhooks(name, result.stdout.splitlines()) == "", result.stdout


def test_a_paced_playback_through_a_fake_3cx_gives_the_same_webhooks() -> None:
    """--speed caps the pace (200 times real time: the 6 minutes in under 2 s); the clock still
    waits for the driver, so nothing moves by a second."""
    result = run_scenario(EXAMPLES / "queue-to-queue-transfer.yaml", "--via", "fake-3cx", "--speed", "200")
    assert result.returncode == 0, result.stderr
    assert check_webhooks("queue-to-queue-transfer", result.stdout.splitlines()) == "", result.stdout


def test_recordings_are_written_as_3cx_does(tmp_path: Path) -> None:
    result = run_scenario(EXAMPLES / "recording-variants.yaml", "--recordings-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("*/*.wav"))
    # 205 talks from 4.2 s to 124.9 s, its media reconnecting at 30 s and 75.5 s: three files;
    # 207 records nothing; 206 records external calls, this one of 46.6 s
    assert [f.parent.name for f in files] == ["205", "205", "205", "206"]
    assert [f.name for f in files] == [
        "[447700903333]_447700903333-205_20231023150435(5120).wav",
        "[447700903333]_447700903333-205_20231023150501(5120).wav",
        "[447700903333]_447700903333-205_20231023150546(5120).wav",
        "[447700905555]_447700905555-206_20231023150804(5122).wav",
    ]
    durations = []
    for f in files:
        with wave.open(str(f)) as audio:
            assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 8000)
            durations.append(audio.getnframes() / audio.getframerate())
    assert durations == pytest.approx([25.8, 45.5, 49.4, 46.6])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_long_generated_scenarios_give_the_same_webhooks_through_a_fake_3cx(
    seed: int, tmp_path: Path
) -> None:
    """Hundreds of calls from the traffic generator: the 3CX driver watching a fake 3CX gives
    exactly what the simulator gives, every call id and duration to the second."""
    generated = callbridge(
        "scenario", "generate", "--seed", str(seed), "--minutes", "40", "--calls-per-minute", "6"
    )
    assert generated.returncode == 0, generated.stderr
    scenario = tmp_path / "generated.yaml"
    scenario.write_text(generated.stdout)
    direct, watched = run_scenario(scenario), run_scenario(scenario, "--via", "fake-3cx")
    assert direct.returncode == watched.returncode == 0, direct.stderr + watched.stderr
    simulated = tmp_path / "simulator.jsonl"
    simulated.write_text(direct.stdout)
    chains = {line.split('"id": "')[1].rsplit("-", 1)[0] for line in direct.stdout.splitlines()}
    assert len(chains) >= 150, len(chains)
    checked = callbridge("scenario", "check", str(simulated), "-", stdin=watched.stdout)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert checked.stdout.splitlines()[-1] == f"{len(chains)} of {len(chains)} call chains match"


def test_a_generated_scenario_is_the_same_for_the_same_seed_and_a_valid_scenario(tmp_path: Path) -> None:
    once = callbridge("scenario", "generate", "--seed", "5", "--minutes", "3")
    again = callbridge("scenario", "generate", "--seed", "5", "--minutes", "3")
    other = callbridge("scenario", "generate", "--seed", "6", "--minutes", "3")
    assert once.returncode == 0 and once.stdout == again.stdout != other.stdout
    scenario = tmp_path / "g.yaml"
    scenario.write_text(once.stdout)
    assert load_scenario(scenario).steps[0].do in ("incoming", "outgoing", "internal")


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


async def test_webhook_url_delivers_the_classic_webhooks() -> None:
    async with Receiver() as receiver:
        status, stdout, stderr = await run_to_url(EXAMPLES / "queue-to-queue-transfer.yaml", receiver.url)
    assert status == 0, stderr.decode()
    assert stdout == b""  # delivered, not printed
    assert {r.method for r in receiver.requests} == {"GET", "POST"}  # call events, then recordings
    assert all("FILES" in r.webhook() for r in receiver.requests if r.method == "POST")
    lines = [json.dumps(r.webhook()) for r in receiver.requests]
    assert check_webhooks("queue-to-queue-transfer", lines) == ""


async def test_webhook_url_that_never_answers_fails_the_run() -> None:
    async with Receiver(lambda request, receiver: (500, {})) as receiver:
        status, _, stderr = await run_to_url(EXAMPLES / "outgoing-transfer.yaml", receiver.url)
    assert status == 1
    assert (
        "call.answered 230907112005_87 not delivered: gave up after 8 attempts; last: HTTP 500"
        in stderr.decode()
    )
