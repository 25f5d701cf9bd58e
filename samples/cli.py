"""Command line for the sample world: images, videos, training, evaluation, AutoML export.

``main(argv)`` is a plain argparse function, so ``add_parser`` hands the umbrella
``graffiti-edge samples`` command's arguments to it unparsed. Heavy imports happen inside the
sub-commands: ``--help`` stays instant and torch is only touched by ``train``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from infra.commands import Groups, command
from infra.logs import event, setup_logging

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_WORK_DIR = Path("build/samples-work")

log = logging.getLogger(__name__)


def latest_package(directory: Path = MODELS_DIR) -> Path:
    """The shipped package with the highest version number."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.stem.rsplit("-", 1)[1].split("."))

    packages = sorted(directory.glob("graffiti-sample-*.zip"), key=version)
    if not packages:
        raise FileNotFoundError(f"no graffiti-sample-*.zip in {directory}")
    return packages[-1]


def _generate_images(args: argparse.Namespace) -> int:
    from samples.dataset import generate_images

    path = generate_images(
        args.out, args.first_seed, args.count, args.width, args.height, args.clean_every
    )
    sys.stdout.write(f"{path}\n")
    return 0


def _generate_video(args: argparse.Namespace) -> int:
    from samples.world.encode import write_mp4
    from samples.world.video import generate

    frames, truth = generate(args.scenario, args.seed, args.width, args.height, args.fps)
    write_mp4(args.out, frames, args.width, args.height, args.fps, preset=args.preset,
              bframes=0)
    truth_path = args.out.with_suffix(".json")
    truth_path.write_text(json.dumps(truth.to_json()) + "\n")
    event(log, logging.INFO, "samples.truth_written", path=truth_path,
          appearances=len(truth.appearances()))
    sys.stdout.write(f"{args.out}\n")
    return 0


def _export_jsonl(args: argparse.Namespace) -> int:
    from samples.world.annotations import export_jsonl

    count = export_jsonl(args.annotations, args.out, args.url_prefix)
    event(log, logging.INFO, "samples.jsonl_written", path=args.out, lines=count)
    sys.stdout.write(f"{args.out}\n")
    return 0


def _train(args: argparse.Namespace) -> int:
    from samples.training.train import RECIPES, train

    versions = list(RECIPES) if args.version == "all" else [args.version]
    for version in versions:
        train(version, args.out, args.work_dir)
    return 0


def seed_range(text: str) -> list[int]:
    """``N`` (the first N held-out seeds) or ``FIRST:END`` (END excluded)."""
    from samples.seeds import HELD_OUT_VIDEOS

    try:
        if ":" in text:
            first, end = (int(part) for part in text.split(":", 1))
            return list(range(first, end))
        return list(range(HELD_OUT_VIDEOS.start, HELD_OUT_VIDEOS.start + int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither N nor FIRST:END") from None


def _evaluate(args: argparse.Namespace) -> int:
    from samples.evaluate import evaluate
    from samples.product import camera_twin
    from samples.report import SWEEP, format_report
    from samples.scoring import summarise

    package = args.package or latest_package()
    twin = camera_twin()
    try:
        runs = evaluate(package, args.seeds, args.stills_per_seed, args.provider, args.workers)
    except ValueError as exc:
        sys.stderr.write(f"evaluate: {exc}\n")
        return 2
    summary = summarise(runs, twin, event_threshold=args.min_score)
    sweep = [summarise(runs, twin, t, t) for t in SWEEP]
    sys.stdout.write(f"{format_report(summary, twin, runs.seconds, sweep)}\n")
    if args.json:
        args.json.write_text(json.dumps(
            {"summary": summary.as_dict(), "sweep": [s.as_dict() for s in sweep]}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m samples",
        description="Synthetic railway scenes with graffiti, their ground truth, and the "
        "demonstration model trained on them.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_render_commands(sub)
    _add_model_commands(sub)
    return parser


def _add_render_commands(sub: Groups) -> None:
    """generate-images and generate-video: the synthetic world on disk."""
    images = command(sub, "generate-images", _generate_images,
                     help="render still images + annotations.json")
    images.add_argument("--out", type=Path, required=True, help="output directory")
    images.add_argument("--count", type=int, default=100, help="number of images (100)")
    images.add_argument("--first-seed", type=int, default=0, help="seed of the first image")
    images.add_argument("--width", type=int, default=1280)
    images.add_argument("--height", type=int, default=720)
    images.add_argument("--clean-every", type=int, default=0,
                        help="make every n-th image distractor-only (0: never)")

    video = command(
        sub, "generate-video", _generate_video, help="render an H.264 MP4 + ground-truth JSON",
        description="Writes FILE and FILE with a .json suffix (ground "
        "truth: appearances with frame ranges, per-frame boxes). No B-frames, as from a "
        "camera, so the simulated camera can replay it live.",
    )
    video.add_argument("--scenario", choices=("passing", "spraying", "clean", "tunnel", "demo"),
                       default="demo", help="what happens in the video (default demo, 75 s)")
    video.add_argument("--out", type=Path, required=True, help="output .mp4 file")
    video.add_argument("--seed", type=int, default=1)
    video.add_argument("--width", type=int, default=1280)
    video.add_argument("--height", type=int, default=720)
    video.add_argument("--fps", type=int, default=25)
    video.add_argument("--preset", default="veryfast", help="libx264 preset (veryfast)")


def _add_model_commands(sub: Groups) -> None:
    """export-jsonl, train and evaluate: the demonstration model and its data."""
    export = command(sub, "export-jsonl", _export_jsonl,
                     help="annotations.json -> Azure ML AutoML JSONL")
    export.add_argument("--annotations", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True, help="output .jsonl file")
    export.add_argument("--url-prefix", default="",
                        help="prepended to each file name, e.g. azureml://.../paths/images/")

    train = command(
        sub, "train", _train, help="re-train the demonstration model (needs torch)",
        description="Seeded, reproducible training; writes "
        "graffiti-sample-<version>.zip. 'all' trains every shipped version.",
    )
    train.add_argument("--version", default="all", help="1.0.0, 1.1.0 or all (default)")
    train.add_argument("--out", type=Path, default=MODELS_DIR, help="package directory")
    train.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="checkpoints and rendered-data cache (default %(default)s)",
    )

    evaluate = command(
        sub, "evaluate", _evaluate, help="held-out seeds through the product's detector and "
        "trigger: delays, false frames and events, mAP",
        description="Every video scenario and a set of stills per held-out seed (seeds "
        "900000000..900099999, never used in training), scored through the detector module "
        "and the camera trigger under config/camera.yaml; mean and worst over the seeds.",
    )
    evaluate.add_argument("--package", type=Path, help="model zip (default: newest shipped)")
    evaluate.add_argument("--seeds", type=seed_range, default="10",
                          help="N (the first N held-out seeds) or FIRST:END (default 10)")
    evaluate.add_argument("--stills-per-seed", type=int, default=30,
                          help="held-out stills per seed, 1..100 (default 30)")
    evaluate.add_argument("--min-score", type=float,
                          help="trigger min_score (default: config/camera.yaml's)")
    evaluate.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    evaluate.add_argument("--json", type=Path, help="also write every figure to this file")
    evaluate.add_argument(
        "--provider",
        default="OpenVINOExecutionProvider",
        choices=("OpenVINOExecutionProvider", "CPUExecutionProvider"),
    )


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the sub-command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    setup_logging("samples", level=args.log_level.upper())
    return int(args.func(args))


def _delegate(args: argparse.Namespace) -> int:
    return main(args.args)


def add_parser(groups: Groups) -> None:
    """The ``samples`` command for ``graffiti-edge``: everything after it goes to :func:`main`
    (``prefix_chars`` that no argument uses, so ``--help`` reaches main's parser too)."""
    samples = groups.add_parser(
        "samples", add_help=False, prefix_chars="\0",
        help="The sample world: synthetic scenes, videos, the demonstration model "
        "(`graffiti-edge samples --help`).",
    )
    samples.add_argument("args", nargs=argparse.REMAINDER)
    samples.set_defaults(func=_delegate)
