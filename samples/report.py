"""Plain-text evaluation report, for the terminal and for pasting into docs/model.md."""

from __future__ import annotations

from config.camera import CameraSettings
from samples.scoring import IN_TIME_S, LONG_S, NO_EVENT_SCENARIOS, Goals, Spread, Summary, unmet

SWEEP = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def _pct(s: Spread) -> str:
    return f"{100 * s.mean:.1f} / {100 * s.worst:.1f}"


def scenario_table(summary: Summary) -> list[str]:
    """One markdown row per scenario: mean / worst over the seeds."""
    lines = [
        f"| scenario | appearances found | visible >= {LONG_S:g} s, found within "
        f"{IN_TIME_S:g} s (%) | delay s | frames with a false detection (%) | false events |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary.scenarios:
        in_time = f"{s.long_in_time} / {s.long}: {_pct(s.in_time)}" if s.long else "-"
        delay = f"{s.delay_s.mean:.2f} / {s.delay_s.worst:.2f}" if s.detected else "-"
        lines.append(
            f"| {s.scenario} | {s.detected} / {s.appearances} | {in_time} | {delay} | "
            f"{_pct(s.false_frames)} | {s.false_events.mean:.1f} / {s.false_events.worst:.0f} |")
    return lines


def stills_lines(summary: Summary) -> list[str]:
    st = summary.stills
    return [
        f"stills: {st.images} images ({st.clean_images} distractor-only), {st.objects} graffiti",
        f"  mAP@0.5 {st.map50:.3f} (per seed: mean {st.map50_per_seed.mean:.3f}, worst "
        f"{st.map50_per_seed.worst:.3f})",
        f"  at {st.threshold:.2f}: precision {st.precision:.3f}, recall {st.recall:.3f}, "
        f"distractor-only stills with a detection {st.clean_with_detection}/{st.clean_images}",
    ]


def sweep_table(sweep: list[Summary]) -> list[str]:
    """Per threshold (frames and trigger alike): what the twin's min_score would give."""
    lines = [
        f"| threshold | found within {IN_TIME_S:g} s (%) | worst scenario false frames (%) | "
        f"false events ({' / '.join(NO_EVENT_SCENARIOS)} / spraying) |",
        "|---|---|---|---|",
    ]
    for s in sweep:
        long = sum(x.long for x in s.scenarios)
        in_time = sum(x.long_in_time for x in s.scenarios) / max(long, 1)
        worst = max(x.false_frames.mean for x in s.scenarios)
        events = {x.scenario: round(x.false_events.mean * x.seeds) for x in s.scenarios}
        counts = " / ".join(str(events.get(k, "-")) for k in (*NO_EVENT_SCENARIOS, "spraying"))
        lines.append(f"| {s.event_threshold:.2f} | {100 * in_time:.1f} | {100 * worst:.2f} | "
                     f"{counts} |")
    return lines


def format_report(summary: Summary, twin: CameraSettings, seconds: float,
                  sweep: list[Summary]) -> str:
    seeds = summary.seeds
    trig = twin.trigger
    misses = unmet(summary, Goals())
    lines = [
        f"package: {summary.package} on {', '.join(summary.providers)}",
        f"held-out seeds: {len(seeds)} ({seeds[0]}..{seeds[-1]}), {seconds:.0f} s",
        f"frames at the package threshold {summary.frame_threshold:.2f}; events by the camera "
        f"trigger at min_score {summary.event_threshold:.2f}, {trig.confirm_hits} of "
        f"{trig.confirm_window} samples, cooldown {trig.cooldown_s:g} s",
        "values are mean / worst over the seeds",
        "",
        *scenario_table(summary),
        "",
        *stills_lines(summary),
        "",
        "goals: all met" if not misses else "goals missed:\n  " + "\n  ".join(misses),
        "",
        "threshold sweep (frames and trigger at the same threshold):",
        *sweep_table(sweep),
    ]
    return "\n".join(lines)
