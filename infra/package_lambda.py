"""Builds the Lambda artifact from the application packages only.

`make package` writes `build/lambda/` (the template's CodeUri) and `build/stackherd-lambda.zip` with the same
files: the `models`, `reconciler` and `handlers` packages without the test doubles (`reconciler/fakes`) or the
local tools (`handlers/local`), and `requirements.txt`, which `sam build` installs beside them. Tests, docs,
moto and anything else in the repository stay out. The build fails if a packaged module imports a project
module that is not packaged, so a handler cannot depend on what was left out.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "reconciler", "handlers")
#: Package directories (relative to the repository root) that never ship.
EXCLUDED = (Path("reconciler/fakes"), Path("handlers/local"))
#: Top-level modules no packaged module may import.
FORBIDDEN_IMPORTS = ("moto", "tests", "pytest", "hypothesis", "freezegun")


class PackagingError(RuntimeError):
    """The application code cannot be packaged as it is."""


def application_files(root: Path = ROOT) -> list[Path]:
    """The repository-relative paths of every file that goes into the artifact, sorted."""
    found: list[Path] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if any(relative.is_relative_to(excluded) for excluded in EXCLUDED):
                continue
            found.append(relative)
    found.append(Path("requirements.txt"))
    return sorted(found)


def module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> Iterable[str]:
    """Absolute names of the modules a source file imports (relative imports resolved)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            yield prefix
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def check_imports(root: Path, files: list[Path]) -> None:
    """Fail when a packaged module imports a left-out project module or a test-only library."""
    modules = {module_name(f) for f in files if f.suffix == ".py"}
    left_out = tuple(module_name(e) for e in EXCLUDED)
    problems = []
    for relative in files:
        if relative.suffix != ".py":
            continue
        module = module_name(relative)
        for name in imported_modules((root / relative).read_text(), module, relative.name == "__init__.py"):
            top = name.split(".")[0]
            if top in FORBIDDEN_IMPORTS:
                problems.append(f"{relative} imports {name}")
            elif top in PACKAGES and (
                any(name == x or name.startswith(f"{x}.") for x in left_out)
                # `from package import name` names a module or an attribute of one that is packaged
                or (name not in modules and name.rpartition(".")[0] not in modules)
            ):
                problems.append(f"{relative} imports {name}, which is not packaged")
    if problems:
        raise PackagingError("the Lambda artifact would be incomplete:\n  " + "\n  ".join(sorted(set(problems))))


def build(out: Path, zip_path: Path | None, root: Path = ROOT) -> list[Path]:
    """Write the artifact directory (replacing what was there) and, when asked, the zip; return the files."""
    files = application_files(root)
    check_imports(root, files)
    if out.exists():
        shutil.rmtree(out)
    for relative in files:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
    if zip_path is not None:
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for relative in files:
                archive.write(root / relative, relative.as_posix())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda", help="artifact directory")
    parser.add_argument("--zip", type=Path, default=ROOT / "build" / "stackherd-lambda.zip", help="artifact zip")
    args = parser.parse_args(argv)
    try:
        files = build(args.out, args.zip)
    except PackagingError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{len(files)} files -> {args.out} and {args.zip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
