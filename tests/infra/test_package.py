"""The Lambda artifact (`make package`): built from the application packages only, and complete."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.infra import cfn


def packager() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_lambda", cfn.ROOT / "infra" / "package_lambda.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("package_lambda", module)
    spec.loader.exec_module(module)
    return module


def test_lambda_artifact_holds_the_application_packages_only(tmp_path: Path) -> None:
    out, archive = tmp_path / "lambda", tmp_path / "stackherd-lambda.zip"
    packager().build(out, archive)

    with zipfile.ZipFile(archive) as built:
        names = sorted(built.namelist())
    assert names == sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    for name in names:
        assert name == "requirements.txt" or name.split("/")[0] in ("models", "reconciler", "handlers"), name
        assert name.endswith(".py") or name == "requirements.txt", name
        for left_out in ("tests/", "docs/", "reconciler/fakes/", "handlers/local/", "moto", "infra/", "bench"):
            assert left_out not in name, name
    assert (out / "requirements.txt").read_text() == (cfn.ROOT / "requirements.txt").read_text()

    # Every handler the template names is in it (the worker once it is written).
    platform = cfn.load(cfn.PLATFORM)
    for function in cfn.of_type(platform, "AWS::Serverless::Function").values():
        module = function["Properties"]["Handler"].rpartition(".")[0]
        path = module.replace(".", "/") + ".py"
        if (cfn.ROOT / path).exists():
            assert path in names, path
    for needed in ("handlers/runtime.py", "reconciler/engine.py", "reconciler/adapters/aws.py", "models/tables.py"):
        assert needed in names, needed


def write(root: Path, files: dict[str, str]) -> None:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)


TREE = {
    "requirements.txt": "boto3\n",
    "models/__init__.py": "",
    "reconciler/__init__.py": "",
    "reconciler/engine.py": "from models import config\n",
    "models/config.py": "X = 1\n",
    "reconciler/fakes/__init__.py": "",
    "reconciler/fakes/cloud.py": "import moto\n",
    "handlers/__init__.py": "",
    "handlers/local/__init__.py": "",
    "handlers/runtime.py": "",
}


@pytest.mark.parametrize(
    "source",
    [
        "from reconciler.fakes import cloud\n",
        "from reconciler import fakes\n",
        "import handlers.local\n",
        "from .local import cli\n",
        "import moto\n",
        "from tests.infra import cfn\n",
    ],
)
def test_packaging_fails_when_a_shipped_module_needs_what_is_left_out(tmp_path: Path, source: str) -> None:
    module = packager()
    write(tmp_path, {**TREE, "handlers/stream.py": source})
    with pytest.raises(module.PackagingError, match=r"handlers/stream\.py imports"):
        module.build(tmp_path / "out", None, root=tmp_path)


def test_packaging_a_self_contained_tree(tmp_path: Path) -> None:
    module = packager()
    write(tmp_path, {**TREE, "handlers/stream.py": "from reconciler.engine import config\nfrom . import runtime\n"})
    files = module.build(tmp_path / "out", tmp_path / "a.zip", root=tmp_path)
    assert [f.as_posix() for f in files] == [
        "handlers/__init__.py",
        "handlers/runtime.py",
        "handlers/stream.py",
        "models/__init__.py",
        "models/config.py",
        "reconciler/__init__.py",
        "reconciler/engine.py",
        "requirements.txt",
    ]
