"""Trial loads: a model is opened, warmed up and sanity-checked in a child process first.

A model package comes from outside (the twin, a USB drop, a repository written by an older
version), and a model can misbehave in ways no thread can recover from: an ONNX graph with
an endless Loop keeps a core at 100 % inside one C++ call that nothing interrupts, and a
hostile graph can allocate gigabytes in its warm-up. So before the serving process opens a
model, a child process does exactly the same work (:func:`engine.load_model`, which warms it
up, then :func:`engine.sanity_check`) under a time limit (``inference.load_timeout_s``) and a
memory limit (``inference.load_memory_mb``, as RLIMIT_DATA: private memory, not address
space, which the inference runtime reserves by the gigabyte without using it). A child that
overruns is killed, and so is one no longer wanted (a newer patch, the module stopping), at
once. Only a model whose trial passed is opened in the serving process, where the same
package and options give the same, bounded behaviour.

Children fork from a multiprocessing fork server that has the inference stack imported, so a
trial costs the model's own load time plus a few milliseconds rather than an interpreter
start (0.8 s here); the fork server itself starts with the first trial.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from config.detector import InferenceSettings
from detector_module.backends import BackendError, InferenceOptions
from detector_module.engine import load_model, sanity_check
from detector_module.package import load_package

MB = 1024 * 1024
#: How soon a running trial notices a deadline, a cancellation or its child's death.
POLL_S = 0.05

_CONTEXT = multiprocessing.get_context("forkserver")
# This module, and the console script's module, which multiprocessing imports again in each
# child as it does a program's main module (0.5 s, for the IoT SDK, if not preloaded).
_CONTEXT.set_forkserver_preload([__name__, "detector_module.__main__"])
#: What ONNX Runtime says when an allocation fails (under RLIMIT_DATA, say).
_OUT_OF_MEMORY = ("Failed to allocate memory", "bad_alloc", "std::bad_alloc")

Cancelled = Callable[[], bool]


class TrialCancelled(Exception):
    """The trial was no longer wanted (a newer model was asked for, or the module stops)."""


@dataclass(frozen=True)
class TrialLimits:
    timeout_s: float = 120.0
    memory_mb: int = 2048

    @classmethod
    def from_settings(cls, inference: InferenceSettings) -> TrialLimits:
        return cls(timeout_s=inference.load_timeout_s, memory_mb=inference.load_memory_mb)


def _child(source: str, options: InferenceOptions, memory_mb: int, out: Connection) -> None:
    """In the child: the serving process's load, warm-up and sanity check; sends None when
    they passed, else the reason."""
    # The parent reports the outcome, once: neither this process's log nor ONNX Runtime's
    # own lines (written to file descriptor 2 from C++) are wanted.
    logging.disable(logging.CRITICAL)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    os.close(quiet)
    limit = memory_mb * MB
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        sanity_check(load_model(load_package(Path(source)), options))
    except Exception as exc:  # noqa: BLE001 - the child's one job is to report any failure
        out.send(_reason(exc, memory_mb))
    else:
        out.send(None)


def _reason(exc: Exception, memory_mb: int) -> str:
    """Why the trial failed, in one line; running out of the memory limit says so."""
    text = " ".join(str(e) for e in (exc, exc.__cause__) if e is not None)
    if isinstance(exc, MemoryError) or any(sign in text for sign in _OUT_OF_MEMORY):
        return (f"it needs more than {memory_mb} MB (inference.load_memory_mb) to open and "
                "warm up")
    return str(exc).strip()[:300] or type(exc).__name__


def _died(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return f"the trial process was killed by {name} (out of memory?)"
    return f"the trial process ended with exit code {code} without an answer"


def trial(source: Path, options: InferenceOptions, limits: TrialLimits,
          cancelled: Cancelled) -> None:
    """Load, warm up and sanity-check the package at ``source`` in a child process.

    Raises BackendError with the reason when it fails, overruns ``limits`` or dies, and
    TrialCancelled as soon as ``cancelled()`` is true; returns when the model passed."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child, name="model-trial", daemon=True,
                             args=(str(source), options, limits.memory_mb, send))
    child.start()
    send.close()
    deadline = time.monotonic() + limits.timeout_s
    try:
        while not receive.poll(POLL_S):
            if cancelled():
                raise TrialCancelled()
            if not child.is_alive() and not receive.poll(0):
                raise BackendError(_died(child.exitcode))
            if time.monotonic() > deadline:
                raise BackendError(f"it did not open, warm up and pass the sanity check within "
                                   f"{limits.timeout_s} s (inference.load_timeout_s): an "
                                   "endless loop in the graph, or a model too slow for this "
                                   "device")
        reason = receive.recv()
    except EOFError:  # the child closed the pipe without an answer
        raise BackendError(_died(child.exitcode)) from None
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if reason is not None:
        raise BackendError(reason)
