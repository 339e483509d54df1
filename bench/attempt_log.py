"""What keeping each attempt's request costs the webhooks service: `described()` (the request
without its secrets, for the attempt log) per delivery, by format, and `redact()` over a line
with and without a link in it (every log line goes through it).

    .venv/bin/python bench/attempt_log.py [--rounds 20000]
"""

import argparse
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from services.webhooks.formats import build_request
from services.webhooks.outgoing import described
from shared.logging import redact
from tests.factories import make_call_ringing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def micro(work: object, rounds: int) -> float:
    """Microseconds per call, the best of three."""
    return min(timeit.repeat(work, number=rounds, repeat=3)) / rounds * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    rounds = parser.parse_args().rounds
    event, now = make_call_ringing(), datetime.now(UTC)
    for fmt, url, secrets in (
        ("classic", "https://crm.example.com/hook?token=abc", ()),
        ("json", "https://crm.example.com/hook", (SecretStr(SECRET),)),
    ):
        request = build_request(url, fmt, secrets, event, now)
        assert request is not None
        cost = micro(lambda request=request: described(request, [SECRET]), rounds)
        print(f"described(), {fmt:7}: {cost:6.1f} µs per attempt")
    plain = "call.ringing 211230100614_665 delivered to crm in 3 ms " * 4
    linked = plain + "https://crm.example.com/hook?token=abc"
    print(f"redact(), a line without a link: {micro(lambda: redact(plain), rounds):6.1f} µs")
    print(f"redact(), a line with a link:    {micro(lambda: redact(linked), rounds):6.1f} µs")


if __name__ == "__main__":
    main()
