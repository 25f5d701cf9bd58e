"""Azurite for the tests: the launcher is :mod:`local_run.azurite`, shared with the demo and
the benchmarks."""

from __future__ import annotations

from local_run.azurite import ACCOUNT, DEV_KEY, Azurite, connection_string, start_azurite

__all__ = ["ACCOUNT", "DEV_KEY", "Azurite", "connection_string", "start_azurite"]
