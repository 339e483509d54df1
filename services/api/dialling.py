"""Who may dial what. Click to dial (`makecall`) makes the PBX dial out on the company's lines, so
a leaked key must not reach premium-rate, emergency or feature-code numbers, nor dial without
end: the number dialled (`second`) must be a number of the PBX's own (an extension, queue, ring
group or IVR), or match one of `[api] dial_allow` and none of `dial_deny` (whole-number regular
expressions); and each key places at most `makecall_per_minute` calls (a token bucket per key,
in each API replica). Pure: the route asks, and answers 403 or 429."""

import math
import re
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DialPolicy:
    allow: tuple[re.Pattern[str], ...]
    deny: tuple[re.Pattern[str], ...]

    def refusal(self, number: str, own: Container[str]) -> str | None:
        """Why `number` may not be dialled; None when it may."""
        if number in own:
            return None
        if any(pattern.fullmatch(number) for pattern in self.deny):
            return f"second: {number} is refused by [api] dial_deny"
        if not any(pattern.fullmatch(number) for pattern in self.allow):
            return f"second: {number} is not a number of the PBX and matches no pattern of [api] dial_allow"
        return None


@dataclass
class RateLimit:
    """`per_minute` takes a minute per key, up to `per_minute` at once (a token bucket)."""

    per_minute: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key → (tokens, when)

    def take(self, key: str) -> int:
        """Take one for `key`: 0 when it may go ahead, else the seconds to wait (Retry-After)."""
        now = self.clock()
        tokens, when = self._buckets.get(key, (self.per_minute, now))
        tokens = min(self.per_minute, tokens + (now - when) * self.per_minute / 60)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) * 60 / self.per_minute))
        self._buckets[key] = (tokens - 1, now)
        return 0
