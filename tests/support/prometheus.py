"""Prometheus text read back strictly, as a scraper would: every sample line must parse."""

from __future__ import annotations

import re
import urllib.request

from infra.prometheus import CONTENT_TYPE

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
Series = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Series, float]:
    """``{(name, labels): value}``; a line that is neither a comment nor a sample fails."""
    series: dict[Series, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), line
        key = (name, frozenset(pairs))
        assert key not in series, f"series twice: {line!r}"
        series[key] = float(value)
    return series


def scrape(url: str) -> dict[Series, float]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.headers["Content-Type"] == CONTENT_TYPE
        return parse(answer.read().decode())
