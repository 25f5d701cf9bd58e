"""``graffiti-edge model package``: a raw export to a package, its twin patch and its rollout.

The work is :mod:`detector_module.packaging` (build and check) and
:mod:`detector_module.rollout` (what to send); this file is the command around them, and
imports them only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.commands import Groups, command, group
from infra.durable import write_atomic

_PACKAGE_HELP = "Package a raw export after loading and running it on the detector's engine."
_PACKAGE_DESCRIPTION = (
    "Build a detector model package from a Custom Vision ONNX export zip, an Azure ML AutoML "
    "output folder (model.onnx, labels.json) or a model file with --labels. The package is "
    "loaded by the detector's own loader and engine (OpenVINO provider) and run on the sanity "
    "image before anything is written; then the twin patch and the layered deployment "
    "command are printed.")


def _manifest_fields(args: argparse.Namespace) -> dict[str, object]:
    fields: dict[str, object] = {"format": args.format, "xy_sigmoid": args.xy_sigmoid}
    if args.allow_label_count_mismatch:
        fields["allow_label_count_mismatch"] = True
    return {k: v for k, v in fields.items() if v is not None}


def _package(args: argparse.Namespace) -> int:
    # Here, not at the top: every graffiti-edge command imports this file, and the engine
    # pulls in onnxruntime and OpenCV.
    from detector_module.adapters import AdapterError
    from detector_module.backends import BackendError
    from detector_module.package import PackageError
    from detector_module.packaging import build_package
    from detector_module.rollout import deployment_command, layered_content, twin_patch

    try:
        data, built = build_package(args.source, version=args.version, name=args.name,
                                    labels=args.labels, manifest=_manifest_fields(args))
    except (PackageError, AdapterError, BackendError, OSError) as exc:
        sys.stderr.write(f"model package: {exc}\n")
        return 1
    output = args.output or Path("build") / "models" / built.file_name
    write_atomic(output, data)
    patch = twin_patch(built, args.url)
    layer = output.with_name(f"{output.stem}.layer.json")
    write_atomic(layer, json.dumps(layered_content(patch), indent=2) + "\n")
    sys.stdout.write(
        f"{output}: {built.name} {built.version}, format {built.format}, "
        f"{len(built.labels)} labels; loaded and run on the sanity image\n\n"
        f"Twin patch (properties.desired of detector_module):\n"
        f"{json.dumps(patch, indent=2)}\n\n"
        f"Upload {output.name}, put its read-only SAS URL in {layer}, then roll it out:\n"
        f"{deployment_command(built, str(layer), target_condition=args.target_condition)}\n")
    return 0


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is neither true nor false")
    return text.lower() == "true"


def add_parser(groups: Groups) -> None:
    """The ``model`` group (package) for ``graffiti-edge``."""
    commands = group(groups, "model", help="Build model packages for the detector.")
    package = command(commands, "package", _package, help=_PACKAGE_HELP,
                      description=_PACKAGE_DESCRIPTION)
    package.add_argument("source", type=Path, help="Export zip, folder or model file.")
    package.add_argument("--version", required=True, help="Package version, e.g. 1.2.0.")
    package.add_argument("--name", help="Package name (default: from the source's name).")
    package.add_argument("--labels", type=Path, metavar="FILE",
                         help="labels.txt or labels.json, for a bare model file.")
    package.add_argument("-o", "--output", type=Path, metavar="FILE",
                         help="Where to write (default build/models/<name>-<version>.zip).")
    package.add_argument("--format", help="Model format, when the signature is ambiguous.")
    package.add_argument("--xy-sigmoid", type=_bool, metavar="true|false",
                         help="Custom Vision compact: x/y are logits (older exports).")
    package.add_argument("--allow-label-count-mismatch", action="store_true",
                         help="Package even if the class count differs from the labels.")
    package.add_argument("--url", help="The zip's download URL, if already known.")
    package.add_argument("--target-condition", default="tags.fleet='graffiti'",
                         help="Devices the layered deployment targets.")
