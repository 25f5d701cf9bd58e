"""Units: clip ids, ranges, settings, and the catalog's filters and pages on a fake container."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contracts.blob_layout import BadClipId, parse
from viewer import reviews
from viewer.catalog import Catalog, Filters, decode_cursor
from viewer.export import _box, parse_states, pick_frames
from viewer.ranges import Unsatisfiable, parse_range
from viewer.settings import ViewerSettings
from viewer.store import Conflict, Entry, Missing, TooLarge


class FakeStore:
    """An in-memory container with ETags, counting list calls."""

    describe = "fake container"

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, dict[str, str], str]] = {}
        self.list_calls: list[str] = []
        self._n = 0

    def put(self, name: str, data: bytes = b"x", **meta: str) -> None:
        self._n += 1
        self.blobs[name] = (data, meta, f'"{self._n}"')

    async def folders(self, prefix: str) -> list[str]:
        self.list_calls.append(prefix)
        found = {prefix + n[len(prefix):].split("/", 1)[0] + "/"
                 for n in self.blobs if n.startswith(prefix) and "/" in n[len(prefix):]}
        return sorted(found)

    async def entries(self, prefix: str) -> list[Entry]:
        self.list_calls.append(prefix)
        return [Entry(n, m, e, len(d)) for n, (d, m, e) in sorted(self.blobs.items())
                if n.startswith(prefix)]

    async def read(self, name: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        if name not in self.blobs:
            raise Missing(name)
        if max_bytes is not None and len(self.blobs[name][0]) > max_bytes:
            raise TooLarge(name)
        return self.blobs[name][0], self.blobs[name][2]

    async def size(self, name: str) -> int:
        return len((await self.read(name))[0])

    async def stream(self, name: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield (await self.read(name))[0][offset:offset + length]

    async def write(self, name: str, data: bytes, *, content_type: str,
                    metadata: dict[str, str], etag: str | None) -> str:
        current = self.blobs.get(name)
        if (etag is None and current is not None) or (
                etag is not None and (current is None or current[2] != etag)):
            raise Conflict(name)
        self.put(name, data, **metadata)
        return self.blobs[name][2]

    async def close(self) -> None:
        pass


def clip(store: FakeStore, clip_id: str, score: float, **extra: str) -> None:
    meta = {"max_score": f"{score:.4f}", "start_utc": "2026-11-21T10:00:00+00:00",
            "event_id": clip_id.rsplit("_", 1)[1], **extra}
    for suffix in (".mp4", ".jpg", ".json"):
        store.put(clip_id + suffix, **meta)


IDS = [
    "t1/c1/2026/11/21/100000_e1", "t1/c1/2026/11/21/120000_e2", "t1/c2/2026/11/21/110000_e3",
    "t2/c1/2026/11/21/090000_e4", "t1/c1/2026/11/20/230000_e5", "t2/c1/2026/10/31/080000_e6",
    "t1/c1/2025/12/31/235959_e7",
]


@pytest.fixture
def store() -> FakeStore:
    fake = FakeStore()
    for n, clip_id in enumerate(IDS):
        clip(fake, clip_id, 0.5 + n * 0.05)
    fake.put("t1/c1/2026/11/21/130000_half.mp4")  # no sidecar yet: not a clip
    fake.put("notes.txt")
    return fake


def ids(page: Any) -> list[str]:
    return [str(c.id) for c in page.clips]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_order_is_newest_day_first_grouped_by_train_and_camera(store: FakeStore) -> None:
    page = run(Catalog(store).page(Filters(), 100))
    assert ids(page) == [
        "t1/c1/2026/11/21/120000_e2", "t1/c1/2026/11/21/100000_e1", "t1/c2/2026/11/21/110000_e3",
        "t2/c1/2026/11/21/090000_e4", "t1/c1/2026/11/20/230000_e5",
        "t2/c1/2026/10/31/080000_e6", "t1/c1/2025/12/31/235959_e7",
    ]
    assert page.next is None


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
def test_pages_cover_every_clip_once(store: FakeStore, limit: int) -> None:
    catalog = Catalog(store)
    seen, cursor = [], None
    for _ in range(20):
        page = run(catalog.page(Filters(), limit, cursor))
        assert len(page.clips) <= limit
        seen += ids(page)
        cursor = page.next
        if cursor is None:
            break
    assert seen == ids(run(catalog.page(Filters(), 100)))


def test_filters_narrow_the_listing_prefix(store: FakeStore) -> None:
    catalog = Catalog(store)
    filters = Filters(train="t1", camera="c1", day_from=Filters.from_query(
        {"from": "2026-11-21"}).day_from)
    assert ids(run(catalog.page(filters, 100))) == ["t1/c1/2026/11/21/120000_e2",
                                                    "t1/c1/2026/11/21/100000_e1"]
    # Only t1/c1 was walked and only the 2026/11/21 day listed with its blobs.
    assert all(p.startswith("t1/c1/") for p in store.list_calls)
    assert "t1/c1/2026/11/21/" in store.list_calls
    assert "t1/c1/2026/11/20/" not in store.list_calls
    high = run(catalog.page(Filters(min_score=0.74), 100))
    assert ids(high) == ["t2/c1/2026/10/31/080000_e6", "t1/c1/2025/12/31/235959_e7"]
    window = Filters.from_query({"from": "2026-10-01", "to": "2026-11-20"})
    assert ids(run(catalog.page(window, 100))) == ["t1/c1/2026/11/20/230000_e5",
                                                   "t2/c1/2026/10/31/080000_e6"]


def test_review_state_filter_and_conflicts(store: FakeStore) -> None:
    catalog = Catalog(store)
    target = parse(IDS[0])
    _, etag = run(reviews.write(store, target, "confirmed", "tag on door", None))
    with pytest.raises(Conflict):  # someone else saw no review either
        run(reviews.write(store, target, "false_positive", "", None))
    with pytest.raises(Conflict):
        run(reviews.write(store, target, "false_positive", "", '"stale"'))
    run(reviews.write(store, target, "cleaned", "", etag))
    assert ids(run(catalog.page(Filters(state="cleaned"), 100))) == [IDS[0]]
    assert IDS[0] not in ids(run(catalog.page(Filters(state="unreviewed"), 100)))
    review, _ = run(reviews.read(store, target))
    assert review is not None and review.state == "cleaned"


@pytest.mark.parametrize("bad", [
    "../t1/c1/2026/11/21/100000_e1", "/t1/c1/2026/11/21/100000_e1", "t1\\c1/2026/11/21/1_e",
    "t1/c1/2026/11/21/100000_%2e%2e", "t1/c1/2026/11/21/100000_e1/../../x", "t1/c1/x",
    "t1/c1/2026/11/21/100000_e..1", "", "t1/c1/2026/11/21/100000_",
])
def test_clip_ids_outside_the_layout_are_refused(bad: str) -> None:
    with pytest.raises(BadClipId):
        parse(bad)


def test_bad_filters_and_cursors_are_refused() -> None:
    for query in ({"train": "../x"}, {"train": "a/b"}, {"min_score": "2"},
                  {"from": "yesterday"}, {"state": "maybe"}):
        with pytest.raises(BadClipId):
            Filters.from_query(query)
    for cursor in ("garbage!", "eyJ2IjoxfQ", ""):
        with pytest.raises(BadClipId):
            decode_cursor(cursor)


def test_ranges() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=50-500", 100) == (50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: whole blob
    for bad in ("bytes=100-", "bytes=-0", "bytes=200-300"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 100)


def test_settings_refuse_open_bind_without_token() -> None:
    base = {"connection_string": "UseDevelopmentStorage=true"}
    assert ViewerSettings(**base).problems() == []
    assert ViewerSettings(**base, host="::1").problems() == []
    assert "without an access token" in ViewerSettings(**base, host="0.0.0.0").problems()[0]
    assert ViewerSettings(**base, host="0.0.0.0", token="x" * 16).problems() == []
    assert "shorter" in ViewerSettings(**base, host="0.0.0.0", token="short").problems()[0]
    assert "connection string" in ViewerSettings().problems()[0]


def test_export_helpers() -> None:
    from contracts.clip import FrameDetections

    frames = [FrameDetections(t_s=i / 5, detections=[] if i % 2 else [
        {"label": "graffiti", "class_id": 0, "score": 0.9, "box": (0.1, 0.2, 0.3, 0.4)}])
        for i in range(40)]
    picked = pick_frames(frames, 5)
    assert len(picked) == 5 and all(f.detections for f in picked)
    assert picked[0].t_s == 0 and picked[-1].t_s > 6
    assert _box((1.2, -0.1, 0.5, 0.6)) == [0.5, 0.0, 1.0, 0.6]
    assert parse_states("confirmed, false_positive") == ("confirmed", "false_positive")
    with pytest.raises(ValueError):
        parse_states("confirmed,unreviewed")


def test_hostile_metadata_marks_its_clip_unreadable_and_the_list_still_works(
        store: FakeStore) -> None:
    import json

    bad = {
        "t1/c1/2026/11/21/130500_nan": {"max_score": "nan", "start_utc": "2026-11-21T13:05:00"
                                        "+00:00"},
        "t1/c1/2026/11/21/130600_empty": {},
        "t1/c1/2026/11/21/130700_mixed": {"max_score": "0.7", "start_utc":
                                          "2026-11-21T13:07:00", "end_utc":
                                          "2026-11-21T13:07:09+00:00"},
        "t1/c1/2026/11/21/130800_odd": {"max_score": "inf", "start_utc": "yesterday",
                                        "event_id": "x\nforged=1", "part": "1e9",
                                        "duration_s": "-3", "labels": "a,\x1b[31m,b"},
    }
    for clip_id, meta in bad.items():
        for suffix in (".mp4", ".json"):
            store.put(clip_id + suffix, **meta)
    page = run(Catalog(store).page(Filters(), 100))
    body = json.dumps(page.to_json(), allow_nan=False)  # valid JSON: no NaN, no Infinity
    shown = {c["id"]: c for c in json.loads(body)["clips"]}
    assert set(IDS) <= set(shown) and set(bad) <= set(shown)
    assert all(not shown[i]["unreadable"] for i in IDS)
    for clip_id in bad:
        assert shown[clip_id]["unreadable"] and shown[clip_id]["problems"], clip_id
    odd = shown["t1/c1/2026/11/21/130800_odd"]
    assert odd["event_id"] == "odd" and odd["max_score"] is None
    assert odd["labels"] == ["a", "b"] and odd["part"] == 1 and odd["duration_s"] is None
    assert shown["t1/c1/2026/11/21/130700_mixed"]["start_utc"] is None
    # An unreadable score never passes a minimum; a readable one does, whatever else is odd.
    kept = set(ids(run(Catalog(store).page(Filters(min_score=0.1), 100))))
    assert kept & set(bad) == {"t1/c1/2026/11/21/130700_mixed"}


def test_blob_names_outside_the_identifier_rule_are_not_clips(store: FakeStore) -> None:
    for name in ("t" * 65 + "/c1/2026/11/21/100000_e9", "t1/-c/2026/11/21/100000_e9",
                 "t1/c1/2026/11/21/100000_" + "e" * 120, "t1/c\u00e9/2026/11/21/100000_e9"):
        for suffix in (".mp4", ".json"):
            store.put(name + suffix)
        with pytest.raises(BadClipId, match="not a valid identifier|not a clip id"):
            parse(name)
    assert sorted(ids(run(Catalog(store).page(Filters(), 100)))) == sorted(IDS)


def test_hostile_review_blobs_read_as_no_review(store: FakeStore) -> None:
    target = parse(IDS[1])
    for body in (b"[" * 100_000, b'{"state": "confirmed", "note": 5}', b"[1, 2]",
                 b'{"state": "maybe"}', b"\xff\xfe", b" " * (reviews.MAX_REVIEW_BYTES + 1)):
        store.put(IDS[1] + ".review.json", body)
        review, etag = run(reviews.read(store, target))
        assert review is None and etag, body[:20]


def test_cursors_and_etags_from_clients_are_checked() -> None:
    import base64

    deep = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    with pytest.raises(BadClipId):
        decode_cursor(deep)
    assert reviews.check_etag(None) is None and reviews.check_etag('"0x8D"') == '"0x8D"'
    for bad in ('"0x8D"\r\nX-Evil: 1', "\x00", "é", "x" * 200, 5, ""):
        with pytest.raises(BadClipId, match="etag"):
            reviews.check_etag(bad)


def test_writes_through_a_reverse_proxy_are_same_origin_for_an_allowed_name() -> None:
    from aiohttp.test_utils import make_mocked_request

    from viewer.guard import cross_site_problem, host_name, is_loopback_name

    proxied = make_mocked_request("POST", "/api/reviews", headers={
        "Host": "127.0.0.1:8090", "Origin": "https://viewer.depot"})
    assert cross_site_problem(proxied, {"viewer.depot"}) is None
    assert "Origin" in (cross_site_problem(proxied, set()) or "")
    direct = make_mocked_request("PUT", "/api/reviews/x", headers={
        "Host": "127.0.0.1:8090", "Origin": "http://127.0.0.1:8090",
        "Sec-Fetch-Site": "same-origin"})
    assert cross_site_problem(direct, set()) is None
    assert host_name("[::1]:8090") == "::1" and host_name("LocalHost:1") == "localhost"
    assert is_loopback_name("127.8.9.10") and is_loopback_name("a.localhost")
    assert not is_loopback_name("127.0.0.1.nip.io") and not is_loopback_name("10.0.0.1")


def test_token_comparison_takes_any_header_bytes() -> None:
    from viewer.auth import _same

    assert _same("s3cret-token-for-the-depot", "s3cret-token-for-the-depot")
    assert not _same("\udcff\udcfe", "s3cret-token-for-the-depot")
