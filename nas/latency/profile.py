"""Profiling here: measure every distinct op of a space (or of given networks) into a table.

Each op is exported on its own as a small ONNX model (batch norm folded, as deployed) and
timed with the protocol of :mod:`nas.latency.runner` (the same function, imported), or, with
``runtime="torch"``, run eagerly in PyTorch under the same protocol for comparison. Ops are
measured in chunks; the table is saved after every chunk, and ops already in the output file
are never measured again, so an interrupted or time-limited run resumes where it stopped.
"""

from __future__ import annotations

import datetime
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from nas.latency import runner
from nas.latency.errors import LatencyTableError
from nas.latency.table import Composition, LatencyTable
from nas.ops import OpInstance

RUNTIMES = ("onnxruntime", "torch")
# Provenance fields that must agree for measurements to share a table.
COMPATIBLE = ("runtime", "runtime_version", "execution_provider", "threads", "graph_optimization", "batch", "dtype",
              "input", "machine", "cpu_model", "opset")


def git_revision(root: Path | None = None) -> str:
    """The project's git revision (with ``-dirty`` when nas/ has uncommitted changes)."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nas", "search_spaces"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("-dirty" if dirty else "")) if rev else "unknown"


def torch_provenance(protocol: runner.Protocol, device: str | None = None) -> dict:
    import torch

    prov = runner.device_provenance(protocol, "CPUExecutionProvider", device)
    prov.update(runtime="torch", runtime_version=torch.__version__, execution_provider="eager-cpu")
    return prov


def table_provenance(protocol: runner.Protocol, runtime: str, input_shape, classes: int,
                     spaces: Sequence[str], device: str | None = None) -> dict:
    """Everything a table records about where, how and for what it was measured."""
    from nas.export.to_onnx import OPSET

    if runtime == "torch":
        prov = torch_provenance(protocol, device)
    else:
        prov = runner.device_provenance(protocol, "CPUExecutionProvider", device)
    prov.update(opset=OPSET if runtime == "onnxruntime" else None, input="x".join(map(str, input_shape)),
                classes=classes, spaces=list(spaces), git_revision=git_revision(), source="profile",
                bn_folded=True)
    return prov


# ---------------------------------------------------------------------------------------
# the timed calls of one op, per runtime


def onnx_call(op: OpInstance, protocol: runner.Protocol):
    from nas.export.to_onnx import export_ops

    model = export_ops([op]).SerializeToString()
    return runner.bound_call(runner.make_session(model, protocol.threads, optimization=protocol.optimization))


def torch_call(op: OpInstance, protocol: runner.Protocol):
    """Eager PyTorch: the op's module, BN folded, in eval mode under no_grad."""
    from nas.build import build_op

    return _torch_module_call(build_op(op), op.input, protocol)


def torch_call_network(ops: Sequence[OpInstance], protocol: runner.Protocol):
    from nas.build import build_model

    return _torch_module_call(build_model(ops), ops[0].input, protocol)


def _torch_module_call(module, input_shape, protocol: runner.Protocol):
    import torch

    from nas.export.fold import fold_batchnorm

    torch.set_num_threads(protocol.threads)
    module = fold_batchnorm(module).eval()
    h, w, c = input_shape
    x = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(protocol.seed))

    def call():
        with torch.no_grad():
            module(x)

    return call


def torch_overhead(protocol: runner.Protocol) -> dict:
    import torch

    module, x = torch.nn.ReLU(), torch.zeros(1, 1)

    def call():
        with torch.no_grad():
            module(x)

    heavier = runner.Protocol(**{**protocol.arguments(), "repeats": max(protocol.repeats, 300)})
    return runner.measure({runner.OVERHEAD_KEY: call}, heavier)[runner.OVERHEAD_KEY]


CALL_FACTORIES: dict[str, Callable] = {"onnxruntime": onnx_call, "torch": torch_call}


def measure_ops(ops: Sequence[OpInstance], protocol: runner.Protocol, runtime: str = "onnxruntime",
                on_done: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Measure ``ops`` together (one interleaved batch); ``{op key: stats}``."""
    factory = CALL_FACTORIES[runtime]
    calls = {op.key: factory(op, protocol) for op in ops}
    return runner.measure(calls, protocol, on_done=on_done)


def measure_overhead(protocol: runner.Protocol, runtime: str = "onnxruntime") -> dict:
    return torch_overhead(protocol) if runtime == "torch" else runner.measure_overhead(protocol)


# ---------------------------------------------------------------------------------------
# a whole profiling run


def open_table(path: Path, provenance: dict) -> LatencyTable:
    """The table at ``path`` to resume (checked compatible with ``provenance``), or a new one."""
    if not path.exists():
        return LatencyTable({}, {}, provenance, path=str(path))
    table = LatencyTable.from_file(path)
    clash = {k: (table.provenance.get(k), provenance.get(k)) for k in COMPATIBLE
             if table.provenance.get(k) != provenance.get(k)}
    if clash:
        detail = ", ".join(f"{k}: table {a!r} vs now {b!r}" for k, (a, b) in clash.items())
        raise LatencyTableError(f"cannot resume {path}: it was measured under other conditions ({detail}); "
                                f"write to another file")
    spaces = sorted(set(table.provenance.get("spaces", [])) | set(provenance.get("spaces", [])))
    table.provenance.update(spaces=spaces, git_revision=provenance["git_revision"])
    table.provenance.setdefault("sessions", []).append(provenance["date"])
    return table


def profile(ops: Iterable[OpInstance], output: str | Path, provenance: dict, protocol: runner.Protocol,
            runtime: str = "onnxruntime", chunk: int = 32, limit: int | None = None,
            max_seconds: float | None = None, progress: bool = True) -> tuple[LatencyTable, int, int]:
    """Measure the ops of ``ops`` that the table at ``output`` lacks, saving after each chunk.

    Stops early after ``limit`` ops or ``max_seconds`` (the next run resumes). Returns the
    table, the number of ops measured now and the number still missing.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    output = Path(output)
    table = open_table(output, provenance)
    wanted = sorted(set(ops), key=lambda o: (o.type, o.input, o.key))
    todo = [op for op in wanted if op.key not in table.entries]
    if limit is not None:
        todo = todo[:limit]
    bar = _progress_bar(len(wanted), len(wanted) - len(_missing(wanted, table)), progress)
    measured = 0
    try:
        with runner.pinned(protocol.cpu) as pin:
            table.provenance["cpu_affinity"] = pin.cpu
            if "overhead" not in table.provenance:
                overhead = measure_overhead(protocol, runtime)
                table.provenance["overhead"] = overhead
                table.composition = Composition(overhead_ms=overhead["median"])
            table, measured = _profile_chunks(table, todo, output, protocol, runtime, chunk, max_seconds, bar)
    finally:
        bar.close()
    if measured == 0 and not output.exists():
        table.save(output)
    return table, measured, len(_missing(wanted, table))


def _profile_chunks(table, todo, output, protocol, runtime, chunk, max_seconds, bar) -> tuple[LatencyTable, int]:
    start, measured = time.monotonic(), 0
    for i in range(0, len(todo), chunk):
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
        part = todo[i:i + chunk]
        results = measure_ops(part, protocol, runtime, on_done=lambda _key: bar.update(1))
        table = table.with_entries(results, {op.key: op for op in part})
        table.provenance["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        table.save(output)
        measured += len(part)
    return table, measured


def _missing(ops: Sequence[OpInstance], table: LatencyTable) -> list[OpInstance]:
    return [op for op in ops if op.key not in table.entries]


def _progress_bar(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="op", desc="profiling", disable=not enabled,
                bar_format="{desc}: {n_fmt}/{total_fmt} ops |{bar}| {elapsed}<{remaining} left")
