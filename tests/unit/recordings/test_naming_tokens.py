"""File names in and out, and signed links."""

from datetime import datetime
from pathlib import Path

import pytest

from services.recordings.naming import archive_name, is_archive_name, parse_pbx_name
from services.recordings.retention import next_run
from services.recordings.tokens import check, download_url, signed_query

ROOT = Path("/pbx")


@pytest.mark.parametrize(
    ("name", "extension", "caller", "callee", "started", "number"),
    [  # names seen on real 3CX systems (docs/3cx.md §3), and the simulator's
        ("[]_100-0836826436_20190211124709(2).wav", "100", "100", "0836826436", "2019-02-11 12:47:09", 2),
        (
            "[27836826436]_27836826436-100_20190211124743(3).wav",
            "100",
            "27836826436",
            "100",
            "2019-02-11 12:47:43",
            3,
        ),
        (
            "[Zinhle Phungula]_201-0114627554_20190219120918(380).wav",
            "201",
            "201",
            "0114627554",
            "2019-02-19 12:09:18",
            380,
        ),
        (
            "[420774852629]_420774852629-105_20211230102749(669).wav",
            "105",
            "420774852629",
            "105",
            "2021-12-30 10:27:49",
            669,
        ),
    ],
)
def test_pbx_names(name: str, extension: str, caller: str, callee: str, started: str, number: int) -> None:
    parsed = parse_pbx_name(ROOT / extension / name, ROOT)
    assert parsed is not None
    assert (parsed.extension, parsed.caller, parsed.callee, parsed.number) == (
        extension,
        caller,
        callee,
        number,
    )
    assert parsed.started == datetime.fromisoformat(started)


@pytest.mark.parametrize(
    "name", ["notes.wav", "[x]_1-2_2019021112470(2).wav", "[x]_1-2_20191311124709(2).wav"]
)
def test_other_files_are_not_recordings(name: str) -> None:
    assert parse_pbx_name(ROOT / "100" / name, ROOT) is None


def test_a_recording_must_sit_in_an_extension_folder() -> None:
    assert parse_pbx_name(ROOT / "[]_100-5_20190211124709(2).wav", ROOT) is None


def test_archive_names() -> None:
    assert archive_name("211230100614_665-1", 2) == "211230100614_665-1-2.mp3"
    assert is_archive_name("211230100614_665-1-2.mp3")
    for bad in (
        "../211230100614_665-1-2.mp3",
        "211230100614_665-1-2.mp3/..",
        "x.mp3",
        "211230100614_665-1.mp3",
        "211230100614_665-1-2.wav",
        "%2e%2e%2fetc",
    ):
        assert not is_archive_name(bad), bad


def test_tokens() -> None:
    secret = b"s3cret"
    query = dict(part.split("=") for part in signed_query(secret, "a-1-1.mp3", 2000).split("&"))
    assert check(secret, "a-1-1.mp3", 2000, query["token"], now=1999)
    assert not check(secret, "a-1-1.mp3", 2000, query["token"], now=2001)  # expired
    assert not check(secret, "a-1-2.mp3", 2000, query["token"], now=1999)  # another file
    assert not check(secret, "a-1-1.mp3", 3000, query["token"], now=1999)  # a longer life
    assert not check(b"other", "a-1-1.mp3", 2000, query["token"], now=1999)
    url = download_url("https://pbx.example.com:5001/", secret, "a-1-1.mp3", 2000)
    assert url.startswith("https://pbx.example.com:5001/webapi/recording/a-1-1.mp3?expires=2000&token=")


def test_next_cleanup() -> None:
    assert next_run(datetime(2026, 1, 1, 2, 59), 3) == datetime(2026, 1, 1, 3, 0)
    assert next_run(datetime(2026, 1, 1, 3, 0), 3) == datetime(2026, 1, 2, 3, 0)
    assert next_run(datetime(2026, 1, 1, 23, 0), 3) == datetime(2026, 1, 2, 3, 0)
