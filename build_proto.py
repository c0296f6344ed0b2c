"""Hatch build hook: generate the Python stubs from proto/ at build time.

The generated package lives in sidecar/_proto/ (git-ignored). Nobody edits
it; `pip install .` or `pip install -e .` regenerates it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PROTO_ROOT = "proto"
TARGET = "sidecar/_proto"


def generate(root: Path) -> None:
    """Run protoc (from grpcio-tools) over every .proto file under proto/."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(
        p.relative_to(root / PROTO_ROOT) for p in (root / PROTO_ROOT).rglob("*.proto")
    )
    include = Path(grpc_tools.__file__).parent / "_proto"
    plugins = [
        f"--plugin=protoc-gen-{name}={_script(name)}" for name in ("mypy", "mypy_grpc")
    ]
    args = [
        "protoc",
        # Map proto/ onto the sidecar/_proto package so generated imports resolve.
        f"-I{TARGET}={root / PROTO_ROOT}",
        f"-I{include}",
        *plugins,
        f"--python_out={root}",
        f"--grpc_python_out={root}",
        f"--mypy_out={root}",
        f"--mypy_grpc_out={root}",
        *(f"{TARGET}/{p}" for p in protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + ", ".join(map(str, protos)))

    for folder in (root / TARGET).rglob("*"):
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (root / TARGET / "__init__.py").touch()


def _script(name: str) -> str:
    """Find a protoc plugin installed by mypy-protobuf in this environment."""
    candidate = Path(sys.executable).parent / f"protoc-gen-{name}"
    found = str(candidate) if candidate.exists() else shutil.which(f"protoc-gen-{name}")
    if found is None:
        raise RuntimeError(f"protoc-gen-{name} not found: install mypy-protobuf")
    return found


class ProtoBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        generate(Path(self.root))
        build_data["artifacts"].append(f"/{TARGET}")


if __name__ == "__main__":
    generate(Path(__file__).resolve().parent)
    sys.exit(0)
