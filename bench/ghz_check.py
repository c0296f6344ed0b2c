"""Check bench/ghz/*.json against ghz's config fields and the proto.

``python -m bench.ghz_check``: every key must be one ghz's config file
accepts (the JSON names in ghz's runner/config.go), ``call`` must name a
method of the service, durations must parse as Go durations, and ``data``
(or ``data-file``) must parse into that method's request message.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from .canned import MESSAGES
from .procs import REPO
from .workloads import SERVICE

GHZ_KEYS = frozenset(
    [
        "proto",
        "protoset",
        "call",
        "cacert",
        "cert",
        "key",
        "skipTLS",
        "cname",
        "authority",
        "insecure",
        "total",
        "concurrency",
        "connections",
        "qps",
        "duration",
        "duration-stop",
        "max-duration",
        "timeout",
        "data",
        "data-file",
        "binary-file",
        "metadata",
        "metadata-file",
        "stream-interval",
        "output",
        "format",
        "connect-timeout",
        "keepalive",
        "cpus",
        "import-paths",
        "name",
        "tags",
        "reflect-metadata",
        "debug",
        "host",
        "enable-compression",
    ]
)
GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+\Z")


def problems(path: Path) -> list[str]:
    config: dict[str, Any] = json.loads(path.read_text())
    found = [f"unknown key {k!r}" for k in config if k not in GHZ_KEYS]
    for key in ("duration", "timeout", "max-duration", "connect-timeout"):
        if key in config and not GO_DURATION.match(config[key]):
            found.append(f"{key} {config[key]!r} is not a Go duration")
    if "total" not in config and "duration" not in config:
        found.append("neither total nor duration")
    service, _, method = config.get("call", "").rpartition(".")
    if service != SERVICE or method not in MESSAGES:
        return [*found, f"call {config.get('call')!r} is not a measured method"]
    data: dict[str, Any] = config.get("data") or {}
    if "data-file" in config:
        data = json.loads((REPO / config["data-file"]).read_text())
    try:
        json_format.ParseDict(data, MESSAGES[method][0]())
    except json_format.ParseError as exc:
        found.append(f"data does not parse as the request: {exc}")
    if "proto" in config and not (REPO / config["proto"]).exists():
        found.append(f"proto {config['proto']} does not exist")
    return found


def main() -> int:
    bad = 0
    for path in sorted((REPO / "bench" / "ghz").glob("*.json")):
        if path.name.endswith(".data.json"):
            continue
        found = problems(path)
        bad += bool(found)
        print(f"{path.relative_to(REPO)}: {'; '.join(found) or 'ok'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
