"""The directory: extensions, ring groups, queues, IVRs and lines."""

from fastapi import APIRouter

from shared.keys import READ

from .. import answers
from ..deps import READ_ERRORS, State

router = APIRouter(tags=["directory"], dependencies=READ, responses=READ_ERRORS)


@router.get("/all.ext.get")
async def all_extensions(pbx: State) -> answers.ExtensionsAnswer:
    """Every extension."""
    listed = [answers.Entry(num=e.number, name=e.name) for e in pbx.extensions.values()]
    return answers.ExtensionsAnswer(count=len(listed), extensions=listed)


@router.get("/all.registered.get")
async def registered_extensions(pbx: State) -> answers.ExtensionsAnswer:
    """The extensions whose phone is registered."""
    listed = [answers.Entry(num=e.number, name=e.name) for e in pbx.extensions.values() if e.registered]
    return answers.ExtensionsAnswer(count=len(listed), extensions=listed)


@router.get("/all.group.get")
async def all_groups(pbx: State) -> answers.GroupsAnswer:
    """Every ring group and its members."""
    listed = [answers.GroupEntry(num=g.number, name=g.name, members=list(g.members)) for g in pbx.groups]
    return answers.GroupsAnswer(count=len(listed), groups=listed)


@router.get("/all.queue.get")
async def all_queues(pbx: State) -> answers.QueuesAnswer:
    """Every queue and its agents."""
    listed = [answers.QueueEntry(num=q.number, name=q.name, agents=list(q.agents)) for q in pbx.queues]
    return answers.QueuesAnswer(count=len(listed), queues=listed)


@router.get("/all.ivr.get")
async def all_ivrs(pbx: State) -> answers.IvrsAnswer:
    """Every IVR (digital receptionist)."""
    listed = [answers.Entry(num=i.number, name=i.name) for i in pbx.ivrs]
    return answers.IvrsAnswer(count=len(listed), ivrs=listed)


@router.get("/all.line.get")
async def all_lines(pbx: State) -> answers.LinesAnswer:
    """Every line (trunk) and its DID rules."""
    listed = [
        answers.LineEntry(
            num=line.number,
            name=line.name,
            dids=[answers.DidEntry(number=d.number, name=d.name) for d in line.dids],
        )
        for line in pbx.lines
    ]
    return answers.LinesAnswer(count=len(listed), lines=listed)
