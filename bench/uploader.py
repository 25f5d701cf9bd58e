"""Uploader benchmark against Azurite: throughput against a bare SDK upload, and the bytes
re-sent after an upload killed half-way.

    .venv/bin/python -m bench.uploader [--clips 10] [--mb 10]

1. The same batch of clip sets (``--clips`` videos of ``--mb`` MB, a thumbnail, a sidecar) is
   uploaded to the same Azurite in the same run, ``--rounds`` times, the contenders in a
   rotating order (medians are printed, because the machine is shared): a bare
   azure-storage-blob ``upload_blob`` per file on as many threads as the uploader's
   ``max_concurrency``, once with the SDK's defaults (a 10 MB file goes as one Put Blob) and
   once with the uploader's block size (the same requests the uploader makes: Put Block + Put
   Block List); and the uploader service (hashing, SHA-256 check, resume probe, confirmation,
   messages, local clean-up included). Target: uploader / bare with the same block size
   >= 0.8.
2. A ``--mb`` clip is uploaded by ``uploader-module`` processes through a byte-counting relay:
   once cleanly, and once killed with SIGKILL half-way (bandwidth cap on, so the kill lands
   mid-upload) and restarted. Re-sent bytes = interrupted total - clean total. Target: at most
   one block.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from azure.storage.blob import BlobServiceClient

from config.uploader import UploaderSettings
from contracts.blob_layout import API_VERSION
from contracts.messages import ClipUploaded, Message
from infra.logs import setup_logging
from infra.supervision import Workers
from local_run.azurite import Azurite, connection_string, start_azurite
from local_run.relay import ByteCounter
from samples.clips import at, video_bytes, write_clip
from uploader_module.outbox import MB
from uploader_module.service import UploaderService

SCRIPT = Path(sys.executable).parent / "uploader-module"


class BenchHost:
    """Just enough of the module runtime (``uploader_module.service.Host``): fixed settings,
    uploaded clips counted."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.settings = UploaderSettings.model_validate(doc)
        self.clips = 0
        self.done = threading.Event()
        self.expected = 0
        self.workers = Workers()

    def send(self, message: Message) -> None:
        if isinstance(message, ClipUploaded):
            self.clips += 1
            if self.clips >= self.expected:
                self.done.set()

    def status_changed(self) -> None:
        """Reported properties are not measured."""


def bare_upload(azurite: Azurite, container: str, files: list[Path], workers: int,
                block_bytes: int | None = None) -> float:
    """Seconds to upload ``files`` with the SDK alone; ``block_bytes`` forces staged blocks."""
    sizes = {"max_single_put_size": block_bytes, "max_block_size": block_bytes}
    client = BlobServiceClient.from_connection_string(
        azurite.connection_string, api_version=API_VERSION,
        **(sizes if block_bytes else {}))
    client.create_container(container)

    def put(path: Path) -> None:
        with path.open("rb") as fh:
            client.get_blob_client(container, path.name).upload_blob(fh, overwrite=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, files))
    return time.perf_counter() - started


def service_upload(azurite: Azurite, container: str, outbox: Path, clips: int) -> float:
    host = BenchHost({"upload": {"connection_string": azurite.connection_string,
                                 "container": container},
                      "outbox": {"dir": str(outbox), "quota_mb": 1_000_000}})
    host.expected = clips
    service = UploaderService(host)
    started = time.perf_counter()
    service.start()
    if not host.done.wait(600):
        raise RuntimeError(f"only {host.clips} of {clips} clips uploaded in 600 s")
    elapsed = time.perf_counter() - started
    service.stop()
    return elapsed


def _uncommitted(azurite: Azurite, container: str) -> int:
    client = BlobServiceClient.from_connection_string(azurite.connection_string,
                                                      api_version=API_VERSION)
    cont = client.get_container_client(container)
    if not cont.exists():
        return 0
    names = [b.name for b in cont.list_blobs(include=["uncommittedblobs"])]
    return sum(len(cont.get_blob_client(n).get_block_list("uncommitted")[1]) for n in names)


def process_upload(azurite: Azurite, work: Path, container: str, size: int, *,
                   kill_after_blocks: int | None, block_mb: float) -> int:
    """Upload one clip with uploader-module processes through a relay; bytes the client sent.
    With ``kill_after_blocks``, the first process is killed once that many blocks are staged
    and a second one finishes the job."""
    outbox = work / "outbox"
    write_clip(outbox, "bench-resume", video_bytes(size, seed=42))
    relay = ByteCounter(azurite.port)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("IOTEDGE_", "UPLOADER_"))},
           "UPLOADER_UPLOAD__CONNECTION_STRING": connection_string(relay.port)}
    twin = work / "twin.yaml"
    upload = {"container": container, "block_size_mb": block_mb,
              "retry": {"initial_s": 0.2, "max_s": 1.0}}
    try:
        for run, capped in enumerate([True, False] if kill_after_blocks else [False]):
            cap = {"bandwidth_kbps": 2000} if capped else {}
            twin.write_text(yaml.safe_dump({"upload": {**upload, **cap},
                                            "outbox": {"dir": str(outbox)}}))
            data = work / f"data{run}"
            with (work / f"run{run}.log").open("ab") as log:
                proc = subprocess.Popen([str(SCRIPT), "--config", str(twin), "--data-dir",
                                         str(data), "--twin-wait", "2"], stdout=log, stderr=log,
                                        env=env)
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    if capped and _uncommitted(azurite, container) >= (kill_after_blocks or 0):
                        proc.kill()
                        break
                    if not capped and (data / "outputs" / "clips.jsonl").exists():
                        break
                    time.sleep(0.02)
                else:
                    raise RuntimeError(f"upload run {run} did not finish; see {work}")
            finally:
                if proc.poll() is None:
                    proc.terminate()
                proc.wait(timeout=20)
        return relay.sent
    finally:
        relay.close()


def throughput_rounds(azurite: Azurite, work: Path, clips: int, size: int,
                      rounds: int) -> tuple[int, dict[str, float], dict[str, float]]:
    """(batch bytes, median wall seconds, median CPU seconds of this process) per contender
    over ``rounds`` rounds. The order of the contenders rotates from round to round, so none
    always runs on a fuller Azurite."""
    defaults = UploaderSettings().upload
    workers, block = defaults.max_concurrency, int(defaults.block_size_mb * MB)
    batch = work / "batch"
    for i in range(clips):
        write_clip(batch, f"bench-{i:03d}", video_bytes(size, seed=i), start=at(i))
    files = sorted(p for p in batch.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)

    def uploader(r: int) -> float:
        outbox = work / f"outbox{r}"  # hard links: the uploader deletes what it uploaded
        outbox.mkdir()
        for path in files:
            os.link(path, outbox / path.name)
        return service_upload(azurite, f"uploader-{r}", outbox, clips)

    contenders: dict[str, Callable[[int], float]] = {
        "bare": lambda r: bare_upload(azurite, f"bare-{r}", files, workers),
        "bare_blocks": lambda r: bare_upload(azurite, f"bare-blocks-{r}", files, workers,
                                             block),
        "uploader": uploader,
    }
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            before = time.process_time()
            times[name].append(contenders[name](r))
            cpu[name].append(time.process_time() - before)
    return (total, {k: statistics.median(v) for k, v in times.items()},
            {k: statistics.median(v) for k, v in cpu.items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup_logging("uploader", level="WARNING")
    size = int(args.mb * MB)
    work = Path(tempfile.mkdtemp(prefix="bench-uploader-"))
    azurite = start_azurite(work)
    defaults = UploaderSettings().upload
    try:
        total, med, cpu = throughput_rounds(azurite, work, args.clips, size, args.rounds)

        block_mb = 1.0
        clean = process_upload(azurite, work / "clean", "bench-clean", size,
                               kill_after_blocks=None, block_mb=block_mb)
        half = int(args.mb / block_mb / 2)
        interrupted = process_upload(azurite, work / "killed", "bench-killed", size,
                                     kill_after_blocks=half, block_mb=block_mb)
    finally:
        azurite.stop()
    resent = interrupted - clean
    rate = {k: total / MB / v for k, v in med.items()}
    rows = [
        ("batch", f"{args.clips} clips x {args.mb:g} MB video + jpg + json = "
                  f"{total / MB:.1f} MB, {defaults.max_concurrency} at once, median of "
                  f"{args.rounds} rounds"),
        ("bare SDK, one Put Blob per file",
         f"{med['bare']:.2f} s, {rate['bare']:.1f} MB/s, client CPU {cpu['bare']:.2f} s"),
        (f"bare SDK, {defaults.block_size_mb:g} MB blocks",
         f"{med['bare_blocks']:.2f} s, {rate['bare_blocks']:.1f} MB/s, "
         f"client CPU {cpu['bare_blocks']:.2f} s"),
        (f"uploader service, {defaults.block_size_mb:g} MB blocks",
         f"{med['uploader']:.2f} s, {rate['uploader']:.1f} MB/s, "
         f"client CPU {cpu['uploader']:.2f} s"),
        ("ratio uploader / bare blocks",
         f"{rate['uploader'] / rate['bare_blocks']:.2f} (target >= 0.8)"),
        ("ratio uploader / bare Put Blob", f"{rate['uploader'] / rate['bare']:.2f}"),
        ("clean upload, on the wire", f"{clean:,} bytes ({args.mb:g} MB clip, "
                                      f"{block_mb:g} MB blocks)"),
        ("killed at >= " + str(half) + " blocks + restart", f"{interrupted:,} bytes"),
        ("re-sent after the kill", f"{resent:,} bytes = {resent / (block_mb * MB):.2f} "
                                   "block (target <= 1 block)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
