"""FolderWatch: finished files only, each once, old ones never, new folders noticed."""

import os
import time
from pathlib import Path

from services.recordings.watch import FolderWatch


def touch(path: Path, content: bytes = b"x", age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_file_is_offered_once_it_stopped_changing(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path, settle=0.5, horizon=86400)
    wav = touch(tmp_path / "101" / "a.wav", age=10)
    assert watch.finished() == []  # first sight
    assert watch.finished() == [wav]  # unchanged, old enough
    touch(wav, b"more", age=10)
    assert watch.finished() == []  # it changed since
    assert watch.finished() == [wav]
    watch.settle(wav)
    assert watch.finished() == []  # dealt with: never again


def test_young_files_wait_for_the_settle_time(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path, settle=60, horizon=86400)
    touch(tmp_path / "101" / "a.wav")
    watch.finished()
    assert watch.finished() == []


def test_old_recordings_are_not_considered(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path, settle=0, horizon=86400)
    touch(tmp_path / "101" / "last-year.wav", age=400 * 86400)
    fresh = touch(tmp_path / "101" / "today.wav", age=5)
    assert watch.finished() == [fresh]


def test_new_files_and_folders_are_noticed(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path, settle=0, horizon=86400)
    first = touch(tmp_path / "101" / "a.wav")
    assert watch.finished() == [first]
    watch.settle(first)
    second = touch(tmp_path / "101" / "b.wav")
    third = touch(tmp_path / "205" / "c.wav")
    assert watch.finished() == [second, third]
    (tmp_path / "101" / "notes.txt").write_text("not audio")
    watch.settle(second)
    watch.settle(third)
    assert watch.finished() == []


def test_unplaced_files_become_stale_past_the_horizon(tmp_path: Path) -> None:
    watch = FolderWatch(tmp_path, settle=0, horizon=100)
    wav = touch(tmp_path / "101" / "a.wav", age=99.5)
    assert watch.finished() == [wav]
    assert not watch.stale(wav)
    os.utime(wav, (time.time() - 101, time.time() - 101))
    watch.finished()
    assert watch.stale(wav)


def test_ages_are_measured_on_the_wall_clock_it_is_given(tmp_path: Path) -> None:
    wall = [time.time()]
    watch = FolderWatch(tmp_path, settle=30, horizon=3600, wall=lambda: wall[0])
    wav = touch(tmp_path / "101" / "a.wav")
    assert watch.finished() == []  # first sight
    assert watch.finished() == []  # unchanged, but not 30 s old on this clock
    wall[0] += 31
    assert watch.finished() == [wav]
    wall[0] += 3600  # past the horizon: an offered file nobody placed is stale
    assert watch.stale(wav)
