"""Source ids and sequence numbers for services that publish events of their own."""

import socket
from itertools import count
from typing import Any
from uuid import uuid4


class Stamper:
    """`source` and the next `seq` for each event a service run publishes (see shared/events.py)."""

    def __init__(self, service: str) -> None:
        self.source = f"{service}/{socket.gethostname()}/{uuid4().hex[:8]}"
        self._seq = count(1)

    def next(self) -> dict[str, Any]:
        return {"source": self.source, "seq": next(self._seq)}
