"""edgeHub routes match the outputs the code declares, and survive a day offline."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from contracts.outputs import MODULE_OUTPUTS, Output

ROUTE = re.compile(r"^FROM /messages/modules/(?P<module>\w+)/outputs/(?P<output>\w+)"
                   r"(?: WHERE .+)? INTO \$upstream$")
DAY_S = 24 * 3600


def routes_of(document: dict[str, Any]) -> dict[str, Any]:
    return document["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]


def route_problems(routes: Mapping[str, Any],
                   declared: Mapping[str, frozenset[Output]]) -> list[str]:
    """Routes naming an output the code never sends, and declared outputs without a route.

    Module ``x_module`` in the manifest is module ``x`` in the code.
    """
    problems: list[str] = []
    routed: set[tuple[str, str]] = set()
    for name, spec in routes.items():
        text = spec["route"] if isinstance(spec, dict) else spec
        match = ROUTE.match(text)
        if match is None:
            problems.append(f"{name}: not a module-output-to-$upstream route: {text}")
            continue
        module = match["module"].removesuffix("_module")
        output = match["output"]
        if output not in declared.get(module, frozenset()):
            problems.append(f"{name}: {module} never sends output {output!r}")
        routed.add((module, output))
    for module, outputs in declared.items():
        problems += [f"{module} output {o.value!r} has no route"
                     for o in sorted(outputs) if (module, o.value) not in routed]
    return problems


def test_routes_name_exactly_the_declared_outputs(manifest: dict[str, Any]) -> None:
    assert route_problems(routes_of(manifest), MODULE_OUTPUTS) == []


def test_a_misspelt_route_and_the_output_it_leaves_unrouted_are_both_caught(
    manifest: dict[str, Any],
) -> None:
    routes = copy.deepcopy(routes_of(manifest))
    routes["detectorDetections"]["route"] = routes["detectorDetections"]["route"].replace(
        "/outputs/detections", "/outputs/detection")
    assert route_problems(routes, MODULE_OUTPUTS) == [
        "detectorDetections: detector never sends output 'detection'",
        "detector output 'detections' has no route",
    ]


def test_alerts_go_first(manifest: dict[str, Any]) -> None:
    """IoT Edge priority 0 is the highest: after a day offline, alerts leave before the rest."""
    priorities = {ROUTE.match(r["route"])["output"]: r["priority"]
                  for r in routes_of(manifest).values()}
    assert priorities[Output.ALERTS] == 0
    assert all(p > 0 for output, p in priorities.items() if output != Output.ALERTS)


def test_messages_outlive_a_day_offline(manifest: dict[str, Any]) -> None:
    hub = manifest["modulesContent"]["$edgeHub"]["properties.desired"]
    assert hub["schemaVersion"] == "1.2"
    assert hub["storeAndForwardConfiguration"]["timeToLiveSecs"] >= 3 * DAY_S
    for name, route in hub["routes"].items():
        assert route.get("timeToLiveSecs", DAY_S) >= DAY_S, name


def test_edgehub_keeps_its_queue_on_the_host(manifest: dict[str, Any]) -> None:
    """Store-and-forward is only as durable as edgeHub's storage folder: it must be bound."""
    hub = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["systemModules"][
        "edgeHub"]
    folder = hub["env"]["storageFolder"]["value"]
    binds = json.loads(hub["settings"]["createOptions"])["HostConfig"]["Binds"]
    assert any(b.split(":")[1] == folder for b in binds)
