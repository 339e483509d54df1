"""Recordings against real files: MP3s decoded (tests/mp3.py), HTTP downloads, scanning, retention."""

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Network
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.recordings.http import create_app
from services.recordings.ledger import RecordingLedger
from services.recordings.main import running
from services.recordings.retention import prune
from services.recordings.service import Recordings
from services.recordings.tokens import signed_query
from services.recordings.transcode import (
    MAX_PADDING,
    Converted,
    CorruptRecording,
    processes,
    transcode,
)
from services.recordings.work import POOL_DEATHS, ConversionJob, Pool, Worker
from shared.bus import PublishError, Transient
from shared.clock import SystemClock, VirtualClock
from shared.events import BATCH_KEY, CallAnswered, CallEnded, RecordingFailed, encode_batch, encode_event
from shared.http_server import free_port, serving
from shared.memory_bus import InMemoryBus
from shared.settings import RecordingsSettings, Settings
from shared.work_queue import MemoryWorkQueue
from tests import mp3
from tests.factories import make_call_ended, make_call_ringing
from tests.fakes import Recorder


def write_wav(path: Path, seconds: float, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 2:
            sample = [struct.pack("<h", (i * 37) % 2000 - 1000) * channels for i in range(frames)]
        else:
            sample = [bytes([128 + (i * 7) % 60]) * channels for i in range(frames)]
        out.writeframes(b"".join(sample))
    return path


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "width"),
    [(37.3, 8000, 1, 2), (5.0, 44100, 2, 2), (3.0, 8000, 1, 1), (0.5, 16000, 1, 2)],
)
def test_mp3_decodes_to_the_wav_duration(
    tmp_path: Path, seconds: float, rate: int, channels: int, width: int
) -> None:
    source = write_wav(tmp_path / "in.wav", seconds, rate, channels, width)
    result = transcode(source, tmp_path / "out" / "x-1-1.mp3", bitrate=32, quality=7)
    decoded = mp3.decode(result.target)
    assert decoded.channels == 1
    # plus LAME's encoder delay and the padding of the last frame, which a file without a LAME
    # tag cannot ask the decoder to trim: a few 576-sample frames, well under 0.3 s at 8 kHz
    assert 0 <= decoded.seconds - seconds < 0.3, decoded
    assert decoded.bitrate == 32000
    assert result.seconds == pytest.approx(seconds, abs=0.001)
    assert not list((tmp_path / "out").glob(".*"))  # no partial file left behind


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", os.urandom(4000)])
def test_corrupt_wavs_are_refused(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "bad.wav"
    source.write_bytes(content)
    with pytest.raises(CorruptRecording, match="not a readable PCM WAV"):
        transcode(source, tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()


def test_a_wav_without_audio_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptRecording, match="no audio"):
        transcode(write_wav(tmp_path / "silent.wav", 0), tmp_path / "out.mp3")


async def test_downloads(tmp_path: Path) -> None:
    name = "211230100614_665-1-1.mp3"
    (tmp_path / "2021-12-30").mkdir()
    (tmp_path / "2021-12-30" / name).write_bytes(bytes(range(256)) * 40)
    secret = b"k" * 32
    expires = int(time.time()) + 60
    app = create_app(tmp_path, secret, SystemClock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://pbx") as client:
        url = f"/webapi/recording/{name}?{signed_query(secret, name, expires)}"
        whole = await client.get(url)
        assert (whole.status_code, whole.headers["content-type"], len(whole.content)) == (
            200,
            "audio/mpeg",
            10240,
        )
        part = await client.get(url, headers={"range": "bytes=100-199"})
        assert (part.status_code, part.headers["content-range"], part.content) == (
            206,
            "bytes 100-199/10240",
            whole.content[100:200],
        )
        assert (await client.get(f"/webapi/recording/{name}")).status_code == 403
        assert (await client.get(url.replace("token=", "token=0"))).status_code == 403
        old = f"/webapi/recording/{name}?{signed_query(secret, name, int(time.time()) - 1)}"
        assert (await client.get(old)).status_code == 403
        other = "211230100614_665-2-1.mp3"
        assert (
            await client.get(f"/webapi/recording/{other}?{signed_query(secret, other, expires)}")
        ).status_code == 404
        for sneaky in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e/secret.mp3", "2021-12-30%2F" + name):
            assert (
                await client.get(f"/webapi/recording/{sneaky}?{signed_query(secret, sneaky, expires)}")
            ).status_code == 404
        for token in ("%C3%A9" * 32, "%00", "x" * 5000):  # non-ASCII, a NUL, far too long
            forged = await client.get(f"/webapi/recording/{name}?expires={expires}&token={token}")
            assert forged.status_code == 403, token


async def test_the_download_server_shows_no_docs_and_its_figures_to_its_networks_only(tmp_path: Path) -> None:
    lan = create_app(tmp_path, b"k" * 32, SystemClock(), metrics_from=RecordingsSettings().metrics_from)
    internet = create_app(tmp_path, b"k" * 32, SystemClock(), metrics_from=(IPv4Network("10.0.0.0/8"),))
    for app, metrics in ((lan, 200), (internet, 403)):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://pbx") as client:
            assert (await client.get("/metrics")).status_code == metrics
            for hidden in ("/docs", "/redoc", "/openapi.json"):
                assert (await client.get(hidden)).status_code == 404


def test_retention_never_removes_a_younger_file(tmp_path: Path) -> None:
    now = time.time()
    old_day, new_day = tmp_path / "2020-01-01", tmp_path / "2026-11-27"
    old_day.mkdir()
    new_day.mkdir()
    old, young = old_day / "a-1-1.mp3", new_day / "b-1-1.mp3"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (now - 91 * 86400, now - 91 * 86400))
    os.utime(young, (now - 89 * 86400, now - 89 * 86400))
    assert prune(tmp_path, 90, now) == [old]
    assert young.exists() and not old_day.exists()


def test_retention_removes_what_a_conversion_cut_short_left(tmp_path: Path) -> None:
    now = time.time()
    day = tmp_path / "2026-11-27"
    day.mkdir()
    left, writing = day / ".a-1-1.mp3.77.part", day / ".b-1-1.mp3.78.part"
    left.write_bytes(b"x")
    writing.write_bytes(b"y")
    os.utime(left, (now - 2 * 3600, now - 2 * 3600))
    assert prune(tmp_path, 90, now) == [left]
    assert writing.exists()


class TestScanning:
    chain: ClassVar[dict[str, object]] = {
        "chain_id": "211230100614_665",
        "call_number": 665,
        "direction": "inbound",
        "external_number": "1",
    }
    start = datetime(2021, 12, 30, 10, 6, 14, tzinfo=UTC)

    @contextlib.asynccontextmanager
    async def service(self, tmp_path: Path, bus: InMemoryBus, **options: object) -> AsyncIterator[Recordings]:
        """The recordings service as its composition root wires it, passes driven by the test."""
        config = RecordingsSettings(
            pbx_dir=tmp_path / "pbx",
            archive_dir=tmp_path / "archive",
            database=tmp_path / "ledger.db",
            quiet=0,
            **options,
        )  # type: ignore[arg-type]
        clock = VirtualClock(self.start)
        with Pool(lambda: ThreadPoolExecutor(1)) as pool:
            conversions: MemoryWorkQueue[ConversionJob] = MemoryWorkQueue("conversions")
            await conversions.consume(Worker(bus, pool, clock))
            wired = running(Settings(recordings=config), bus, clock, conversions, secret=b"s", live=False)
            try:
                async with wired as recordings:
                    yield recordings
            finally:
                await conversions.close()

    def answered(self, seq: int = 1) -> CallAnswered:
        """102 answers at 5 s."""
        return CallAnswered(
            occurred_at=self.start + timedelta(seconds=5),
            source="t",
            seq=seq,
            link=1,
            extension="102",
            transfer_type="NotDef",
            **self.chain,
        )

    def ended(self, *, chain_ended: bool, seq: int = 1) -> CallEnded:
        """102 hangs up, or hands the call on, at 30 s."""
        return make_call_ended(
            link=1,
            extension="102",
            chain_ended=chain_ended,
            **self.chain,
            seq=seq,
            occurred_at=self.start + timedelta(seconds=30),
        )

    async def talk(self, recordings: Recordings, *, hang_up: bool = True) -> None:
        """102 answers and (with `hang_up`) hands the call on: its file is done."""
        await recordings.on_event(self.answered())
        if hang_up:
            await self.hang_up(recordings, chain_ended=False)

    async def hang_up(self, recordings: Recordings, *, chain_ended: bool) -> None:
        await recordings.on_event(self.ended(chain_ended=chain_ended))

    async def test_the_ledger_takes_its_events_from_the_monitors_batches(self, tmp_path: Path) -> None:
        """Subscribed as the service subscribes: the call's answer and end come in one of the
        monitor's batches, among events the ledger does not take."""
        bus = InMemoryBus()
        async with self.service(tmp_path, bus, settle=0) as recordings:
            batch = [
                make_call_ringing(**self.chain, seq=1),
                self.answered(2),
                self.ended(chain_ended=True, seq=3),
            ]
            await bus.publish_raw(BATCH_KEY, encode_batch([encode_event(e) for e in batch], batch[-1]))
            write_wav(tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
            assert await recordings.scan() == 1  # matched to the call the batch told of

    async def test_a_file_of_a_call_in_progress_waits_for_the_call(self, tmp_path: Path) -> None:
        async with self.service(tmp_path, InMemoryBus(), settle=0) as recordings:
            await self.talk(recordings, hang_up=False)
            write_wav(tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
            assert await recordings.scan() == 0  # unchanged, but the call is on hold: not finished
            await self.hang_up(recordings, chain_ended=True)
            assert await recordings.scan() == 1

    async def test_a_backlog_older_than_a_day_is_taken_after_a_long_downtime(self, tmp_path: Path) -> None:
        ledger = await RecordingLedger.open(ZoneInfo("UTC"), tmp_path / "ledger.db")
        await ledger.turned(time.time() - 3 * 86400)
        await ledger.close()
        wav = write_wav(tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
        os.utime(wav, (time.time() - 2 * 86400, time.time() - 2 * 86400))  # written while we were down
        async with self.service(tmp_path, InMemoryBus(), settle=0) as recordings:
            await self.talk(recordings)
            assert await recordings.scan() == 1

    async def test_an_announcement_made_again_is_the_same_event(self, tmp_path: Path) -> None:
        """What a replica killed before it marked its announcement, or another replica after the
        lease ran out, sends again: the same event id, for consumers to drop."""
        announced = []
        for replica in ("a", "b"):
            bus, recorder = InMemoryBus(), Recorder()
            await bus.subscribe("ops", recorder, bindings=["recording.ready"])
            async with self.service(tmp_path / replica, bus, settle=0) as recordings:
                await self.talk(recordings)
                write_wav(tmp_path / replica / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
                assert await recordings.scan() == 1
                await recordings.drain()
                await self.hang_up(recordings, chain_ended=True)
                announced += await recorder.wait_for(1)
        assert announced[0].event_id == announced[1].event_id

    async def test_a_file_still_being_written_waits(self, tmp_path: Path) -> None:
        bus = InMemoryBus()
        async with self.service(tmp_path, bus, settle=0.5, keep_wav=False) as recordings:
            await self.talk(recordings)
            wav = write_wav(tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
            assert await recordings.scan() == 0  # seen once: not known to be finished
            with wave.open(str(wav), "rb") as grown:  # the PBX writes on
                frames = grown.readframes(grown.getnframes())
            with wave.open(str(wav), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(8000)
                out.writeframes(frames * 2)
            os.utime(wav, (time.time() - 1, time.time() - 1))
            assert await recordings.scan() == 0  # changed since the last look
            assert await recordings.scan() == 1  # unchanged and old enough
            await recordings.drain()
            assert [p.name for p in (tmp_path / "archive").rglob("*.mp3")] == ["211230100614_665-1-1.mp3"]
            assert not wav.exists()  # keep_wav = false, and the MP3 was verified

    async def test_a_corrupt_file_is_reported_once_and_skipped(
        self, tmp_path: Path, recorder: Recorder
    ) -> None:
        bus = InMemoryBus()
        await bus.subscribe("ops", recorder, bindings=["recording.failed", "recording.ready"])
        async with self.service(tmp_path, bus, settle=0) as recordings:
            await self.talk(recordings)
            broken = tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav"
            broken.parent.mkdir(parents=True)
            broken.write_bytes(b"RIFF....garbage")
            assert await recordings.scan() == 1
            await recordings.drain()
            [failed] = await recorder.wait_for(1)
            assert isinstance(failed, RecordingFailed) and failed.path == str(broken)
            assert await recordings.scan() == 0  # never tried again
            assert broken.exists()  # kept for a person to look at
            await self.hang_up(recordings, chain_ended=True)
            assert recordings.failed == 1 and len(recorder.events) == 1  # no recording webhook without a file

    async def test_a_file_whose_job_could_not_be_handed_out_is_offered_again(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bus = InMemoryBus()
        async with self.service(tmp_path, bus, settle=0) as recordings:
            await self.talk(recordings)
            wav = write_wav(tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
            submit = MemoryWorkQueue.submit

            async def broker_away(queue: MemoryWorkQueue[ConversionJob], job: ConversionJob) -> None:
                raise PublishError("1 message(s) not confirmed, first: RabbitMQ is away")

            monkeypatch.setattr(MemoryWorkQueue, "submit", broker_away)
            with pytest.raises(PublishError):
                await recordings.turn()  # the watch chore logs it and comes again
            assert not await recordings.ledger.claimed(wav)  # not lost in a claim that leads nowhere
            monkeypatch.setattr(MemoryWorkQueue, "submit", submit)
            assert await recordings.scan() == 1
            await recordings.drain()
            assert [p.name for p in (tmp_path / "archive").rglob("*.mp3")] == ["211230100614_665-1-1.mp3"]

    async def test_a_full_disk_holds_the_conversion_until_there_is_room(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
    ) -> None:
        bus = InMemoryBus()
        await bus.subscribe("ops", recorder, bindings=["recording.failed", "recording.converted"])
        write = Path.write_bytes
        full = 2

        def disk_full(path: Path, data: bytes) -> int:
            nonlocal full
            if path.suffix == ".part" and full:
                full -= 1
                path.touch()  # what the full disk took before it refused
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(path, data)

        monkeypatch.setattr(Path, "write_bytes", disk_full)
        async with self.service(tmp_path, bus, settle=0) as recordings:
            await self.talk(recordings)
            write_wav(tmp_path / "pbx" / "102" / "[1]_1-102_20211230100619(665).wav", 2.0)
            assert await recordings.scan() == 1
            [converted] = await recorder.wait_for(1)
            assert converted.type == "recording.converted" and full == 0
            assert converted.ok and recordings.failed == 0  # held, tried again, never failed
            assert [p.name for p in (tmp_path / "archive").rglob("*")] == [
                "2021-12-30",
                "211230100614_665-1-1.mp3",
            ]  # no .part left behind


def test_a_conversion_done_twice_answers_as_the_first_time(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", 2.0)
    first = transcode(wav, tmp_path / "out.mp3", delete_source=True)
    again = transcode(wav, tmp_path / "out.mp3", delete_source=True)  # the job came twice
    assert not wav.exists() and 0 <= again.seconds - first.seconds <= MAX_PADDING  # the MP3's frames


def _die() -> None:
    os._exit(1)  # as the OOM killer would end a conversion process


def _signal_wakeup() -> int:
    return signal.set_wakeup_fd(-1)


async def test_conversion_processes_are_not_woken_by_the_services_signals() -> None:
    """A forked conversion process shared the event loop's signal wake-up socket: the SIGTERM a
    broken pool sends its other processes stopped the service."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: None)
    try:
        with processes(1) as pool:
            assert await loop.run_in_executor(pool, _signal_wakeup) == -1
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def test_a_pool_whose_process_died_is_started_again() -> None:
    with Pool(lambda: processes(1)) as pool:
        with pytest.raises(BrokenProcessPool):
            await pool.run(_die)
        assert pool.restarts == 1
        assert await pool.run(os.getpid) != os.getpid()  # a fresh process does the next job


async def test_a_job_that_kills_its_process_each_time_is_reported_failed(recorder: Recorder) -> None:
    class Dying(Pool):
        async def run(self, function: Callable[..., Converted], *args: object) -> Converted:
            raise BrokenProcessPool("killed")

    bus = InMemoryBus()
    await bus.subscribe("ops", recorder, bindings=["recording.converted"])
    job = ConversionJob(
        chain_id="c", link=1, source="/x.wav", target="/c-1-1.mp3", bitrate=32, quality=7, keep_wav=True
    )
    with Dying(lambda: ThreadPoolExecutor(1)) as pool:
        worker = Worker(bus, pool, SystemClock())
        for _ in range(POOL_DEATHS - 1):
            with pytest.raises(Transient):  # tried again: the OOM killer may have hit another's memory
                await worker(job)
            assert worker.failing
        await worker(job)
    [converted] = await recorder.wait_for(1)
    assert not converted.ok and "died 3 times" in converted.reason


def test_backlog_conversion(tmp_path: Path) -> None:
    for n in (1, 2):
        write_wav(tmp_path / "in" / "101" / f"call{n}.wav", 2.0)
    (tmp_path / "in" / "broken.wav").write_bytes(b"nonsense")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "recordings",
            "convert",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1  # one file failed: scripts notice
    assert "[##############################] 3/3 files" in result.stderr
    assert "2 converted (0.00 h of audio" in result.stdout and "1 failed" in result.stdout
    assert f"failed: {tmp_path / 'in' / 'broken.wav'}: not a readable PCM WAV" in result.stdout
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.mp3")) == [
        "101/call1.mp3",
        "101/call2.mp3",
    ]


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
    )
    return cert, key


async def test_downloads_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    name = "211230100614_665-1-1.mp3"
    (tmp_path / "archive" / "2021-12-30").mkdir(parents=True)
    (tmp_path / "archive" / "2021-12-30" / name).write_bytes(b"ID3" + bytes(500))
    port = free_port()
    app = create_app(tmp_path / "archive", b"k", SystemClock())
    trust = ssl.create_default_context(cafile=str(cert))
    async with serving(app, "127.0.0.1", port, cert=cert, key=key), httpx.AsyncClient(verify=trust) as client:
        query = signed_query(b"k", name, int(time.time()) + 60)
        response = await client.get(f"https://127.0.0.1:{port}/webapi/recording/{name}?{query}")
    assert (response.status_code, len(response.content)) == (200, 503)
