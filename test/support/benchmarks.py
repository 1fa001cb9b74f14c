"""Import a script of benchmarks/ (not a package) as a module, for its tests."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(filename: str):
    spec = importlib.util.spec_from_file_location(f"bench_{Path(filename).stem}", ROOT / "benchmarks" / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
