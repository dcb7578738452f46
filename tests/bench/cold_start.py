"""Cold start: the import time of each Lambda handler module, as a ratio to `import boto3` alone, each
measured in fresh processes (median of N). Run alone with `python -m tests.bench.cold_start`."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("boto3", "handlers.stream", "handlers.sweep", "handlers.admin", "handlers.requeue", "handlers.api.app")
PROBE = (
    "import time, importlib, sys; t = time.perf_counter(); importlib.import_module(sys.argv[1]); "
    "print(time.perf_counter() - t)"
)


def import_seconds(module: str) -> float:
    output = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return float(output.strip())


def measure_import_ratios(runs: int = 10) -> dict[str, Any]:
    samples: dict[str, list[float]] = {m: [] for m in MODULES}
    for _ in range(runs):  # interleaved, so drifting machine load hits every module alike
        for module in MODULES:
            if module == "handlers.api.app" and not (ROOT / "handlers" / "api").is_dir():
                continue
            samples[module].append(import_seconds(module))
    medians = {m: statistics.median(v) for m, v in samples.items() if v}
    base = medians["boto3"]
    return {
        "runs": runs,
        "boto3_import_ms": round(base * 1000, 1),
        "import_ms": {m: round(v * 1000, 1) for m, v in medians.items()},
        "ratio_to_boto3": {m: round(v / base, 2) for m, v in medians.items() if m != "boto3"},
    }


if __name__ == "__main__":
    json.dump(measure_import_ratios(), sys.stdout, indent=2)
    sys.stdout.write("\n")
