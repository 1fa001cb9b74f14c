"""The learner's worker process: one learn step (:func:`f2p_learning.learn.learn`) run on a
:class:`~f2p_learning.learn.LearnConfig`, its stages and log sent to the learner as structured
messages over a pipe, its :class:`~f2p_learning.learn.LearnReport` sent back as the result.

Nothing heavy is imported at module level: the worker is a ``spawn``-ed process that sets its
torch / OpenMP thread count before torch is imported, so the config crosses the process
boundary as plain data (:func:`config_to_dict`). Messages, each a tuple: ``("log", text)``,
``("stage", name, figures)``, and one of ``("report", LearnReport)``, ``("bad_input", why)``,
``("interrupted", why)``, ``("crashed", why)`` at the end. SIGTERM stops the step cleanly (an ``interrupted`` report, no
half-made child); the worker dies with the learner (Linux parent-death signal), so a learner
killed mid-job leaves no orphan writing into the job folder it will run again on restart.
"""
from __future__ import annotations

import errno
import os
import signal
from dataclasses import asdict, fields


def config_to_dict(cfg) -> dict:
    """A LearnConfig as plain data (its callbacks left out)."""
    d = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("log", "on_stage")}
    d["fine_tune"] = asdict(cfg.fine_tune)
    return {k: ([str(x) for x in v] if isinstance(v, (list, tuple)) else str(v) if isinstance(v, os.PathLike) else v)
            for k, v in d.items()}


def config_from_dict(d: dict):
    from f2p_learning.learn import LearnConfig
    from f2p_training.train import FineTuneRecipe
    return LearnConfig(**{**d, "fine_tune": FineTuneRecipe(**d["fine_tune"])})


def _die_with_parent(parent_pid: int) -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:          # the learner died before the signal was armed
        os._exit(1)


def run(config: dict, threads: int, conn, parent_pid: int) -> None:
    """The worker's body (module docstring)."""
    _die_with_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from f2p_learning.learn import LearnInputError, LearnInterrupted, learn

    def interrupt(signum, _frame):
        raise LearnInterrupted(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupt)
    import torch
    torch.set_num_threads(threads)
    cfg = config_from_dict(config)
    cfg.log = lambda text: conn.send(("log", text))
    cfg.on_stage = lambda name, figures: conn.send(("stage", name, figures))
    try:
        report = learn(cfg)
        final = ("report", report)
    except LearnInputError as exc:
        final = ("bad_input", str(exc))
    except LearnInterrupted:                # before learn() could catch it: nothing was written
        final = ("interrupted", "stopped before the learn step started")
    except OSError as exc:                  # a full disk passes; anything else is a crash
        final = ("no_space" if exc.errno == errno.ENOSPC else "crashed", f"{type(exc).__name__}: {exc}")
    except Exception as exc:                # noqa: BLE001  reported to the learner, which keeps the event
        final = ("crashed", f"{type(exc).__name__}: {exc}")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)       # the result is sent whole
    conn.send(final)
    conn.close()
