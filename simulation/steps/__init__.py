"""Every scenario step the simulator knows, by its `do`: an explicit table (the scenario file's
format checks the same names, `scenario.STEP_FIELDS`)."""

from collections.abc import Callable

from ..pbx import SimulatedPbx
from ..scenario import Step
from . import calls, conversation, state

Handler = Callable[[SimulatedPbx, Step], None]

HANDLERS: dict[str, Handler] = {
    "incoming": calls.incoming,
    "outgoing": calls.outgoing,
    "internal": calls.internal,
    "makecall": calls.makecall,
    "route": calls.route,
    "ring": calls.ring,
    "stop_ring": calls.stop_ring,
    "answer": calls.answer,
    "transfer": conversation.transfer,
    "consult": conversation.consult,
    "complete": conversation.complete,
    "hold": conversation.hold,
    "resume": conversation.resume,
    "reconnect": conversation.reconnect,
    "callback": conversation.callback,
    "hangup": conversation.hangup,
    "register": state.register,
    "unregister": state.unregister,
    "set_forwarding": state.set_forwarding,
    "set_options": state.set_options,
    "queue_login": state.queue_login,
}
