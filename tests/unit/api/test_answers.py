"""The calls' list answers: rendered per call, equal to the whole answer's JSON, and a change
re-renders only the call that changed."""

import json

from services.api import answers
from shared.call_state import CallState
from shared.event_base import Event
from shared.pbx_state import PbxState
from tests.fakes import play

TWO_CALLS = """
- {t: 0, do: incoming, call: A, from: '111', did: PragueDID, to: '800'}
- {t: 1, do: ring, call: A, dn: ['101']}
- {t: 2, do: outgoing, call: B, from: '103', to: '222'}
"""


def state_of(events: list[Event]) -> PbxState:
    state = PbxState()
    for event in events:
        state.apply(event)
    return state


def test_rendered_lists_equal_the_whole_answers() -> None:
    state = state_of(play(TWO_CALLS))
    calls = sorted(state.calls.values(), key=lambda c: c.call_number)
    info = answers.RenderedCalls(answers.call_info, "callsInfo").json(state)
    whole = answers.CallsInfoAnswer(count=2, callsInfo=[answers.call_info(c) for c in calls])
    assert json.loads(info) == json.loads(whole.model_dump_json())
    active = answers.RenderedCalls(answers.active_call, "AConnByCallID").json(state)
    assert answers.ActiveCallsAnswer.model_validate_json(active).count == 2


def test_a_change_renders_only_the_changed_call() -> None:
    events = play(TWO_CALLS + "- {t: 3, do: answer, call: A, dn: '101'}")
    rendered: list[int] = []

    def counting(call: CallState) -> answers.CallInfo:
        rendered.append(call.call_number)
        return answers.call_info(call)

    calls = answers.RenderedCalls(counting, "callsInfo")
    before = events[
        : max(i for i, e in enumerate(events) if isinstance(e, CallState) and e.call_number == 2) + 1
    ]
    calls.json(state_of(before))
    assert sorted(rendered) == [1, 2]
    rendered.clear()
    after = json.loads(calls.json(state_of(events)))  # call 1 was answered meanwhile
    assert rendered == [1]
    assert [c["state"] for c in after["callsInfo"]] == ["Talking", "Initiating"]
