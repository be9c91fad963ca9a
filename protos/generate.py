"""Generate the Python gRPC stubs in voiced/proto/ from the .proto files in protos/.

    python protos/generate.py          # write voiced/proto/
    python protos/generate.py --check  # exit 1 if the committed stubs are stale

protoc's Python output imports sibling stubs as top-level `yandex.*` modules. We rewrite
those imports to `voiced.proto.yandex.*` so that the stubs live inside our package and
never shadow (or get shadowed by) the official `yandexcloud` SDK's `yandex` package.
Generated code must match the protobuf runtime pinned in pyproject.toml: the pinned
grpcio-tools in the `dev` extra decides the gencode version.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUTPUT = ROOT / "voiced" / "proto"
PACKAGE = "voiced.proto"


def generate(out_dir: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out_dir.rglob("*.py*"):
        text = path.read_text()
        text = re.sub(r"^from yandex\.", f"from {PACKAGE}.yandex.", text, flags=re.M)
        text = re.sub(r"^import yandex\.", f"import {PACKAGE}.yandex.", text, flags=re.M)
        path.write_text(text)
    for directory in [out_dir, *(p for p in out_dir.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


def stale_files(fresh: Path, committed: Path) -> list[str]:
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    committed_files = {
        p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    differing = [
        str(rel)
        for rel in fresh_files & committed_files
        if not filecmp.cmp(fresh / rel, committed / rel, shallow=False)
    ]
    return sorted(differing + [str(p) for p in fresh_files ^ committed_files])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if args.check:
            stale = stale_files(fresh, OUTPUT)
            if stale:
                print("stale generated stubs (run python protos/generate.py):", *stale, sep="\n  ")
                return 1
            print("generated stubs are up to date")
            return 0
        shutil.rmtree(OUTPUT, ignore_errors=True)
        shutil.copytree(fresh, OUTPUT)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
