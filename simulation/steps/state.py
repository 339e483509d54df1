"""Steps that change the PBX's state rather than a call: registration, forwarding profile, options,
queue login."""

from services.monitor.updates import ForwardingUpdate, OptionsUpdate, QueueLoginUpdate, RegistrationUpdate

from ..pbx import SimulatedPbx
from ..scenario import Step


def register(pbx: SimulatedPbx, step: Step) -> None:
    pbx.set(step["dn"], registered=True)
    pbx.emit(RegistrationUpdate(pbx.at, step["dn"], True))


def unregister(pbx: SimulatedPbx, step: Step) -> None:
    pbx.set(step["dn"], registered=False)
    pbx.emit(RegistrationUpdate(pbx.at, step["dn"], False))


def set_forwarding(pbx: SimulatedPbx, step: Step) -> None:
    pbx.set(step["dn"], profile=step["profile"])
    pbx.emit(ForwardingUpdate(pbx.at, step["dn"], step["profile"]))


def set_options(pbx: SimulatedPbx, step: Step) -> None:
    pbx.set(step["dn"], enabled=step["enabled"], external=step["external"], recording=step["recording"])
    pbx.emit(OptionsUpdate(pbx.at, step["dn"], step["enabled"], step["external"], step["recording"]))


def queue_login(pbx: SimulatedPbx, step: Step) -> None:
    extension = pbx.extension(step["dn"])
    queue, on = step["queue"], step["on"]
    if queue == "all":
        pbx.set(extension.number, queue_logged_in=on)
    else:
        pbx.dn(queue, "queue")
        if extension.number not in pbx.agents[queue]:
            raise pbx.fail(f"{extension.number} is not an agent of queue {queue}")
        out = set(extension.logged_out_queues)
        out = out - {queue} if on else out | {queue}
        pbx.set(extension.number, logged_out_queues=tuple(sorted(out)))
    pbx.emit(QueueLoginUpdate(pbx.at, extension.number, queue, on))
