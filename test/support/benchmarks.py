"""Import a script of benchmarks/ (not a package) as a module, for its tests."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(filename: str):
    # the scripts import their siblings (``from fail2progress import ...``) as when run from there
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{Path(filename).stem}", ROOT / "benchmarks" / filename)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                 # dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod
