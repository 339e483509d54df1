"""The simulator refuses steps that make no sense, naming the step; it never guesses."""

import pytest

from services.monitor.updates import ParticipantUpdate
from simulation.scenario import STEP_FIELDS, ScenarioError, load_scenario, load_yaml, parse_scenario
from simulation.steps import HANDLERS
from tests.fakes import play

A_RINGS = """
- {t: 0, do: incoming, call: A, from: '1', did: PragueDID, to: '800'}
- {t: 1, do: ring, call: A, dn: ['101']}
"""
ANSWERED = A_RINGS + "- {t: 2, do: answer, call: A, dn: '101'}\n"

IMPOSSIBLE = [
    ("- {t: 0, do: hangup, call: Z, by: external}", "step 1 (t=0, hangup): unknown call label 'Z'"),
    ("- {t: 0, do: incoming, call: A, from: '1', did: NoSuchDID, to: '800'}", "DID rule 'NoSuchDID'"),
    (
        "- {t: 0, do: outgoing, call: B, from: '999', to: '5'}",
        "step 1 (t=0, outgoing): DN 999 is not in the directory",
    ),
    (
        A_RINGS + "- {t: 2, do: answer, call: A, dn: '102'}",
        "step 3 (t=2, answer): 102 is not ringing for call A",
    ),
    (
        "- {t: 0, do: outgoing, call: B, from: '101', to: '5'}\n- {t: 1, do: ring, call: B, dn: ['102']}",
        "step 2 (t=1, ring): call B is outgoing: no extension rings before a transfer",
    ),
    (
        ANSWERED + "- {t: 3, do: consult, call: A, by: '101', to: '103', consult: C}\n"
        "- {t: 4, do: ring, call: C, dn: ['103']}\n- {t: 5, do: complete, call: A, consult: C}",
        "step 6 (t=5, complete): 103 has not answered the consultation call C",
    ),
    (
        ANSWERED + "- {t: 3, do: reconnect, call: A, dn: '102'}",
        "step 4 (t=3, reconnect): 102 is not talking on call A",
    ),
    (
        ANSWERED + "- {t: 3, do: hangup, call: A, by: external}\n- {t: 4, do: hold, call: A, by: '101'}",
        "step 5 (t=4, hold): call A has already ended",
    ),
    (
        A_RINGS + "- {t: 2, do: ring, call: A, dn: ['101']}",
        "step 3 (t=2, ring): 101 is already ringing on call A",
    ),
    (ANSWERED + "- {t: 3, do: ring, call: A, dn: ['102']}", "call A is connected to 101; transfer it first"),
    (
        A_RINGS + "- {t: 2, do: incoming, call: A, from: '1', did: PragueDID, to: '800'}",
        "call label 'A' is already in use",
    ),
    (
        A_RINGS + "- {t: 2, do: hangup, call: A, by: '101'}",
        "101 is ringing, not talking, on call A; use stop_ring",
    ),
    (A_RINGS + "- {t: 2, do: transfer, call: A, by: '101', to: '102'}", "101 is not talking on call A"),
    (ANSWERED + "- {t: 3, do: resume, call: A, by: '101'}", "101 does not hold call A"),
    (
        "- {t: 0, do: incoming, call: A, from: '1', did: PragueDID, to: '600'}\n"
        "- {t: 1, do: callback, call: A}",
        "call A is not waiting in a queue",
    ),
    (ANSWERED + "- {t: 3, do: route, call: A, to: '801'}", "call A is answered; use transfer"),
    ("- {t: 0, do: queue_login, dn: '103', queue: '800', on: true}", "103 is not an agent of queue 800"),
    ("- {t: 0, do: internal, call: I, from: '101', to: '800'}", "DN 800 is a queue, not a extension"),
    (
        "- {t: 0, do: outgoing, call: B, from: '101', to: '5'}\n- {t: 1, do: answer, call: B, dn: external}\n"
        "- {t: 2, do: answer, call: B, dn: external}",
        "step 3 (t=2, answer): call B is not dialling",
    ),
    (
        "- {t: 0, do: incoming, call: A, from: '1', did: PragueDID, to: '800'}\n"
        "- {t: 1, do: answer, call: A, dn: external}",
        "only the far end of an outgoing call answers",
    ),
]


@pytest.mark.parametrize(("steps", "message"), IMPOSSIBLE, ids=[m for _, m in IMPOSSIBLE])
def test_impossible_steps_are_refused(steps: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        play(steps)
    assert message in str(caught.value)


MALFORMED = [
    ({"steps": [{"t": 0, "do": "register", "dn": "101"}]}, "start is required"),
    (
        {"start": "2024-01-01T00:00:00+01:00", "steps": [{"t": 0, "do": "register", "dn": "1"}]},
        "without a UTC offset",
    ),
    ({"start": "yesterday", "steps": [{"t": 0, "do": "register", "dn": "1"}]}, "not an ISO date"),
    ({"start": "2024-01-01T00:00:00", "steps": []}, "steps must be a non-empty list"),
    (
        {"start": "2024-01-01T00:00:00", "steps": [{"t": 0, "do": "ring", "call": "A", "dn": "101"}]},
        "step 1 (t=0, ring): dn must be a non-empty list",
    ),
    (
        {
            "start": "2024-01-01T00:00:00",
            "steps": [{"t": 0, "do": "incoming", "call": "A", "from": 420603555777, "did": "D", "to": "1"}],
        },
        "from is a phone number: quote it",
    ),
    (
        {"start": "2024-01-01T00:00:00", "steps": [{"t": -1, "do": "register", "dn": "1"}]},
        "t must be a number",
    ),
    (
        {"start": "2024-01-01T00:00:00", "steps": [{"t": 0, "do": "register", "dn": "1", "extra": 1}]},
        "unexpected field(s) extra",
    ),
    (
        {
            "start": "2024-01-01T00:00:00",
            "steps": [{"t": 0, "do": "set_forwarding", "dn": "1", "profile": "Gone"}],
        },
        "unknown profile 'Gone'",
    ),
    (
        {
            "start": "2024-01-01T00:00:00",
            "first_call_number": 0,
            "steps": [{"t": 0, "do": "register", "dn": "1"}],
        },
        "first_call_number must be a positive",
    ),
    ({"start": "2024-01-01T00:00:00", "stepz": []}, "unknown top-level field(s): stepz"),
    (
        {
            "start": "2024-01-01T00:00:00",
            "directory": {"queues": [{"number": "800", "agents": ["1"]}]},
            "steps": [{"t": 0, "do": "register", "dn": "1"}],
        },
        "queue 800 has unknown agent(s) 1",
    ),
    (
        {
            "start": "2024-01-01T00:00:00",
            "directory": {"extensions": [{"number": "1"}], "ivrs": [{"number": "1"}]},
            "steps": [{"t": 0, "do": "register", "dn": "1"}],
        },
        "number 1 is both a extension and a IVR",
    ),
    (
        {
            "start": "2024-01-01T00:00:00",
            "directory": {"extensions": [{"number": "1", "recording": "sometimes"}]},
            "steps": [{"t": 0, "do": "register", "dn": "1"}],
        },
        "extensions.0.recording",
    ),
]


@pytest.mark.parametrize(("document", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_scenarios_are_refused(document: dict[str, object], message: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(document, base=tmp_path)
    assert message in str(caught.value)


def test_file_errors_name_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("start: [unclosed")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")
    missing_dir = tmp_path / "s.yaml"
    missing_dir.write_text(
        'start: "2024-01-01T00:00:00"\ndirectory: nope.yaml\nsteps: [{t: 0, do: register, dn: "1"}]'
    )
    with pytest.raises(ScenarioError, match=r"nope\.yaml: cannot read"):
        load_scenario(missing_dir)


def test_a_json_document_is_read_as_json_and_flow_yaml_as_yaml() -> None:
    """JSON, YAML's subset, skips libyaml (simulation/scenario.py says why); PyYAML's YAML 1.1
    would read JSON's `1e3` as a string."""
    assert load_yaml('{"extensions": [{"number": "101"}], "n": 1e3}') == {
        "extensions": [{"number": "101"}],
        "n": 1000.0,
    }
    assert load_yaml("{extensions: [{number: '101'}]}") == {"extensions": [{"number": "101"}]}


def test_participants_look_like_3cx_call_control() -> None:
    from datetime import UTC, datetime

    from simulation.scenario import default_directory
    from simulation.simulator import PbxSimulator

    sim = PbxSimulator(default_directory(), first_call_number=1264)
    doc = parse_scenario(
        {
            "start": "2024-01-01T00:00:00",
            "steps": [
                {
                    "t": 0,
                    "do": "incoming",
                    "call": "A",
                    "from": "0123456789",
                    "did": "PragueDID",
                    "to": "800",
                },
                {"t": 1, "do": "ring", "call": "A", "dn": ["101"]},
            ],
        },
        base=__import__("pathlib").Path("."),
    )
    at = datetime(2024, 1, 1, tzinfo=UTC)
    leg = sim.apply(doc.steps[0], at)[0]
    ring = sim.apply(doc.steps[1], at)[0]
    assert isinstance(leg, ParticipantUpdate) and isinstance(ring, ParticipantUpdate)
    assert (leg.dn_type, leg.party_caller_id, leg.party_dn, leg.party_dn_type, leg.party_did, leg.callid) == (
        "Wexternalline",
        "0123456789",
        "800",
        "Wqueue",
        "+420221000000",
        1264,
    )
    assert (
        ring.dn,
        ring.status,
        ring.party_caller_id,
        ring.party_dn_type,
        ring.on_behalf_of_dn,
        ring.on_behalf_of_type,
        ring.callid,
    ) == ("101", "Ringing", "0123456789", "Wexternalline", "800", "Wqueue", 1264)
    assert ring.id != leg.id and ring.legid != leg.legid


def test_every_step_of_the_scenario_format_has_its_handler_and_no_more() -> None:
    assert set(HANDLERS) == set(STEP_FIELDS)


def test_the_labels_of_ended_calls_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated traffic never ends: the simulator refuses a recent ended call's label again, but
    remembers only the latest ENDED_REMEMBERED of them, not every call it ever played."""
    monkeypatch.setattr("simulation.pbx.ENDED_REMEMBERED", 3)
    calls = "".join(
        f"- {{t: {n}, do: outgoing, call: {label}, from: '101', to: '5'}}\n"
        f"- {{t: {n + 0.5}, do: hangup, call: {label}, by: '101'}}\n"
        for n, label in enumerate("ABCDE")
    )
    play(calls + "- {t: 9, do: outgoing, call: A, from: '101', to: '5'}")  # A is forgotten: a new call
    with pytest.raises(ScenarioError, match="call label 'D' is already in use"):
        play(calls + "- {t: 9, do: outgoing, call: D, from: '101', to: '5'}")
    with pytest.raises(ScenarioError, match="call E has already ended"):
        play(calls + "- {t: 9, do: hold, call: E, by: '101'}")
