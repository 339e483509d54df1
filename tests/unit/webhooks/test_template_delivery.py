"""Templated endpoints through the dispatcher: the id a CRM answered with is kept in the delivery
store, so the chain's later requests update the same record, across retries and replicas; a
template's failure is a dead letter naming it; a blank rendering sends nothing but is
remembered."""

import asyncio
import json
from pathlib import Path

from services.webhooks.outgoing import WebhookRequest
from services.webhooks.sender import Answer
from services.webhooks.store import DeliveryStore
from tests.factories import make_call_ended, make_call_ringing
from tests.unit.webhooks.test_dispatcher import Harness, Receiver

CREATE = """POST https://crm.test/calls
Content-Type: application/json
Callbridge-Remember: call = id

{{ {"from": event.external_number} | tojson }}
"""
UPDATE = """PATCH https://crm.test/calls/{{ remote.call }}

{{ {"answered": event.answered, "rang": chain["call.ringing"].extension} | tojson }}
"""


def folder(tmp_path: Path, **files: str) -> Path:
    where = tmp_path / "templates"
    where.mkdir(exist_ok=True)
    for name, text in files.items():
        (where / f"{name.replace('_', '.')}.http").write_text(text)
    return where


def crm(*statuses: int) -> Receiver:
    """Creates answer `{"id": "c-1"}`; updates answer the statuses in turn, then 200."""
    remaining = list(statuses)

    def answer(request: WebhookRequest) -> Answer:
        if request.method == "POST":
            return Answer(201, None, json.dumps({"id": "c-1", "properties": {"x": "y" * 4000}}))
        return Answer(remaining.pop(0) if remaining else 200, None, "")

    return Receiver(answer)


async def test_the_remote_id_reaches_the_update_across_a_retry_and_a_replica(tmp_path: Path) -> None:
    templates = folder(tmp_path, call_ringing=CREATE, call_ended=UPDATE)
    receiver = crm(503)
    one = await Harness.open(tmp_path, receiver, format="template", templates=templates)
    ring, end = make_call_ringing(), make_call_ended()
    for job in one.jobs(ring):
        await one.dispatcher.handle(job)
    other = Harness(
        await DeliveryStore.open(tmp_path / "webhooks.db"), receiver, format="template", templates=templates
    )
    for job in other.jobs(end):  # another replica takes the chain's next event
        await other.dispatcher.handle(job)
    await other.fire_retries()  # the first PATCH answered 503: retried from the store's memory
    assert [(r.method, r.url) for r in receiver.requests] == [
        ("POST", "https://crm.test/calls"),
        ("PATCH", "https://crm.test/calls/c-1"),
        ("PATCH", "https://crm.test/calls/c-1"),
    ]
    assert json.loads(receiver.requests[-1].body or b"") == {"answered": True, "rang": ring.extension}
    attempts = await other.store.attempts()
    assert attempts[0].request.startswith("PATCH https://crm.test/…") and attempts[0].outcome == "Delivered"


async def test_a_template_that_fails_is_a_dead_letter_and_the_chain_goes_on(tmp_path: Path) -> None:
    templates = folder(
        tmp_path, call_ringing="POST https://crm.test/\n\n{{ remote.never }}", call_ended=CREATE
    )
    receiver = crm()
    h = await Harness.open(tmp_path, receiver, format="template", templates=templates)
    for job in h.jobs(make_call_ringing(), make_call_ended()):
        await h.dispatcher.handle(job)
    dead = await h.store.dead()
    assert [d.event_type for d in dead] == ["call.ringing"]
    assert dead[0].reason.startswith("template: ") and "call.ringing.http" in dead[0].reason
    assert [r.method for r in receiver.requests] == ["POST"]  # the ended event, not held back


async def test_a_blank_rendering_sends_nothing_and_is_remembered(tmp_path: Path) -> None:
    quiet = "{# nothing for a ringing phone #}"
    templates = folder(
        tmp_path,
        call_ringing=quiet,
        call_ended="POST https://crm.test/\n\n{{ chain['call.ringing'].extension }}",
    )
    receiver = crm()
    h = await Harness.open(tmp_path, receiver, format="template", templates=templates)
    ring = make_call_ringing(extension="123")
    for job in h.jobs(ring, make_call_ended()):
        await h.dispatcher.handle(job)
    assert [r.body for r in receiver.requests] == [b"123"]
    assert len(await h.store.attempts()) == 1


async def test_an_event_without_a_template_is_not_wanted(tmp_path: Path) -> None:
    h = await Harness.open(tmp_path, crm(), format="template", templates=folder(tmp_path, call_ended=CREATE))
    assert [job.event_type for job in h.jobs(make_call_ringing(), make_call_ended())] == ["call.ended"]


async def test_a_template_at_its_time_bound_holds_up_nothing_else(tmp_path: Path) -> None:
    loops = "{% for i in range(9999) %}{% for c in 'x' * 999999 %}{{ c.upper() }}{% endfor %}{% endfor %}"
    slow = f"POST https://crm.test/\n\n{loops}"
    h = await Harness.open(tmp_path, crm(), format="template", templates=folder(tmp_path, call_ringing=slow))
    turns = 0

    async def meanwhile() -> None:  # another delivery's lane, say: it needs the event loop
        nonlocal turns
        while True:
            await asyncio.sleep(0.01)
            turns += 1

    other = asyncio.create_task(meanwhile())
    for job in h.jobs(make_call_ringing()):
        await h.dispatcher.handle(job)
    other.cancel()
    assert turns > 20  # the loop went on through the rendering's second
    [dead] = await h.store.dead()
    assert "over 1 s" in dead.reason
