"""Queues and ring groups: who is in them, and who could take a call now."""

from collections.abc import Callable

from fastapi import APIRouter, HTTPException

from shared.keys import READ
from shared.pbx_state import PbxState

from .. import answers
from ..deps import LOOKUP_ERRORS, Number, State

router = APIRouter(tags=["queues and groups"], dependencies=READ, responses=LOOKUP_ERRORS)


def queue_members(pbx: PbxState, num: str) -> answers.MembersAnswer:
    queue = next((q for q in pbx.queues if q.number == num), None)
    if queue is None:
        raise HTTPException(404, f"queue {num} does not exist")
    return answers.members(pbx, num, queue.agents, queue=True)


def group_members(pbx: PbxState, num: str) -> answers.MembersAnswer:
    group = next((g for g in pbx.groups if g.number == num), None)
    if group is None:
        raise HTTPException(404, f"ring group {num} does not exist")
    return answers.members(pbx, num, group.members, queue=False)


def only(listed: answers.MembersAnswer, keep: Callable[[answers.Member], bool]) -> answers.MembersAnswer:
    kept = [m for m in listed.members if keep(m)]
    return answers.MembersAnswer(num=listed.num, count=len(kept), members=kept)


@router.get("/queue.members.get")
async def queue_all(pbx: State, num: Number) -> answers.MembersAnswer:
    """A queue's agents, with registration, presence and login status."""
    return queue_members(pbx, num)


@router.get("/queue.free.get")
async def queue_free(pbx: State, num: Number) -> answers.MembersAnswer:
    """A queue's agents who could take a call now: registered, logged in and free."""
    return only(queue_members(pbx, num), answers.can_take_a_call)


@router.get("/queue.talk.get")
async def queue_talking(pbx: State, num: Number) -> answers.MembersAnswer:
    """A queue's agents who are on a call."""
    return only(queue_members(pbx, num), lambda m: m.status == "Busy")


@router.get("/queue.isfree.get")
async def queue_is_free(pbx: State, num: Number) -> answers.IsFreeAnswer:
    """Whether at least one of a queue's agents could take a call now."""
    return answers.IsFreeAnswer(
        num=num, free=any(map(answers.can_take_a_call, queue_members(pbx, num).members))
    )


@router.get("/group.members.get")
async def group_all(pbx: State, num: Number) -> answers.MembersAnswer:
    """A ring group's members, with registration and presence."""
    return group_members(pbx, num)


@router.get("/group.free.get")
async def group_free(pbx: State, num: Number) -> answers.MembersAnswer:
    """A ring group's members who could take a call now: registered and free."""
    return only(group_members(pbx, num), answers.can_take_a_call)
