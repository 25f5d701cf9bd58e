"""``graffiti-edge clips list|download``: the viewer's list and downloads, in a terminal.

For a maintainer on a train's console or a script: the same catalogue as the page (newest
first, the same filters, sidecars never read for the list), through the same store.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from contracts.blob_layout import BadClipId, parse
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX
from viewer.catalog import Catalog, Filters
from viewer.settings import ViewerSettings
from viewer.store import AzureStore, StoreError

T = TypeVar("T")


def _with_store(settings: ViewerSettings, work: Callable[[AzureStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = AzureStore(settings)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _filters(args: argparse.Namespace) -> Filters:
    query = {"train": args.train or "", "camera": args.camera or "",
             "carriage": args.carriage or "",
             "min_score": "" if args.min_score is None else str(args.min_score),
             "state": args.state or "", "from": args.date_from or "", "to": args.date_to or ""}
    return Filters.from_query(query)


def list_clips(args: argparse.Namespace, settings: ViewerSettings) -> int:
    try:
        filters = _filters(args)
    except BadClipId as exc:
        sys.stderr.write(f"clips list: {exc}\n")
        return 2

    async def work(store: AzureStore) -> list[Any]:
        page = await Catalog(store, 0).page(filters, args.limit)
        return page.clips

    try:
        clips = _with_store(settings, work)
    except StoreError as exc:
        sys.stderr.write(f"clips list: {exc}\n")
        return 1
    if not clips:
        sys.stdout.write(f"no clips in container {settings.container} match\n")
        return 0
    sys.stdout.write(f"{'start (UTC)':<25} {'train':<12} {'camera':<12} {'carriage':<14} "
                     f"{'dur s':>6} {'score':>5} {'review':<14} clip id\n")
    for clip in clips:
        duration = "" if clip.duration_s is None else f"{clip.duration_s:.1f}"
        score = "?" if clip.max_score is None else f"{clip.max_score:.2f}"
        state = "unreadable" if clip.problems else clip.review_state
        place = " ".join(p for p in (clip.carriage, clip.position) if p) or "-"
        sys.stdout.write(f"{(clip.start_utc or '?')[:25]:<25} {clip.id.train:<12} "
                         f"{clip.id.camera:<12} {place:<14} {duration:>6} {score:>5} {state:<14} "
                         f"{clip.id}\n")
    return 0


def download_clips(args: argparse.Namespace, settings: ViewerSettings) -> int:
    try:
        wanted = [parse(text) for text in args.clip_ids]
    except BadClipId as exc:
        sys.stderr.write(f"clips download: {exc}\n")
        return 2

    async def work(store: AzureStore) -> list[Path]:
        ids = wanted or [c.id async for c in Catalog(store, 0).all(Filters())]
        args.to.mkdir(parents=True, exist_ok=True)
        saved = []
        for clip in ids:
            summary = await Catalog(store, 0).clip(clip)
            suffixes = [VIDEO_SUFFIX, SIDECAR_SUFFIX] + ([THUMBNAIL_SUFFIX]
                                                         if summary.thumbnail else [])
            for suffix in suffixes:
                data, _ = await store.read(clip.blob(suffix))
                path = args.to / f"{clip.stem}{suffix}"
                path.write_bytes(data)
                saved.append(path)
        return saved

    try:
        saved = _with_store(settings, work)
    except StoreError as exc:
        sys.stderr.write(f"clips download: {exc}\n")
        return 1
    for path in saved:
        sys.stdout.write(f"{path}\n")
    return 0


def configure(parser: argparse.ArgumentParser,
              storage: Callable[[argparse.ArgumentParser], None],
              run: Callable[[Callable[..., int]], Callable[[argparse.Namespace], int]]) -> None:
    """``clips list`` and ``clips download`` under ``parser``; ``storage`` adds the storage
    options, ``run`` turns a command into a parser ``func`` (settings, --demo)."""
    commands = parser.add_subparsers(dest="clips_command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list", help="List clips, newest first.",
        description="List the clips in blob storage, newest first, with the viewer's filters.")
    storage(listing)
    listing.add_argument("--train")
    listing.add_argument("--camera")
    listing.add_argument("--carriage", help="Only clips from cameras on this carriage.")
    listing.add_argument("--min-score", type=float)
    listing.add_argument("--state", help="unreviewed, reviewed, confirmed, false_positive or "
                         "cleaned.")
    listing.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    listing.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    listing.add_argument("--limit", type=int, default=50, help="Most clips shown (default 50).")
    listing.set_defaults(func=run(list_clips))
    download = commands.add_parser(
        "download", help="Download clips (video, sidecar, thumbnail) to a folder.",
        description="Download the named clips (ids as `clips list` shows them), or every clip "
        "when none is named, into --to.")
    storage(download)
    download.add_argument("clip_ids", nargs="*", metavar="CLIP_ID")
    download.add_argument("--to", type=Path, default=Path("clips"),
                          help="Folder to write to (default clips).")
    download.set_defaults(func=run(download_clips))
