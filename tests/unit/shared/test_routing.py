import pytest

from shared.routing import topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("call.ringing", "call.ringing", True),
        ("call.*", "call.ringing", True),
        ("call.*", "call", False),
        ("call.*", "call.ringing.extra", False),
        ("call.#", "call", True),  # '#' matches zero words (FastStream's fake got this wrong)
        ("call.#", "call.ringing.extra", True),
        ("#", "anything.at.all", True),
        ("#.ended", "call.ended", True),
        ("*.ended", "ended", False),
        ("call.#.x", "call.x", True),
        ("extension.#", "call.ended", False),
    ],
)
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected
