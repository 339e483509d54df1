"""The PBX simulator: scenario steps in, 3CX-shaped participant updates out.

`PbxSimulator.apply(step, at)` changes the simulated phone system and returns the updates a
real 3CX would cause (see `updates.py` for their meaning), or raises `ScenarioError` naming the
step when the step makes no sense at that moment. It also records answered external
conversations through a `WavRecorder`, one file per stretch. No I/O besides the recorder.
"""

from datetime import datetime

from services.monitor.updates import PbxUpdate
from shared.directory import Directory

from .pbx import SimulatedPbx
from .recorder import WavRecorder
from .scenario import Step
from .steps import HANDLERS


class PbxSimulator:
    def __init__(
        self, directory: Directory, *, first_call_number: int = 1, recorder: WavRecorder | None = None
    ) -> None:
        self._pbx = SimulatedPbx(directory, first_call_number=first_call_number, recorder=recorder)

    @property
    def directory(self) -> Directory:
        """The directory with each extension's current state."""
        return self._pbx.directory

    @property
    def active_calls(self) -> int:
        return len(self._pbx.calls)

    def call_number(self, label: str) -> int | None:
        call = self._pbx.calls.get(label)
        return call.callid if call else None

    def is_internal(self, dn: str) -> bool:
        return dn in self._pbx.kinds

    def apply(self, step: Step, at: datetime) -> list[PbxUpdate]:
        self._pbx.begin(step, at)
        HANDLERS[step.do](self._pbx, step)
        return self._pbx.emitted
