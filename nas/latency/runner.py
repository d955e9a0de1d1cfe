"""The latency measurement protocol, and a stand-alone runner for devices without PyTorch.

This file is self-contained: it needs only Python 3.8+, numpy and onnxruntime, so it can be
copied to a Raspberry Pi or to a phone under Termux next to a bundle written by
``nas latency bundle``::

    python runner.py ops.zip -o device.csv          # or: python -m nas.latency.runner ...

The project's own profiler and validator import their timing from here, so a table measured
on the device and one measured by ``nas latency profile`` follow literally the same protocol:

* one ONNX Runtime session per model, ``threads`` intra-op threads (1 by default), sequential
  execution, batch 1, float32, graph optimisations up to ``extended`` (fusions, constant
  folding) but not the x86 NCHWc layout transform of ``all``: that one wraps every model in
  layout reorders at its boundaries, which an op timed alone pays and the same op inside a
  network does not, so op latencies would stop adding up (``optimization="all"`` keeps it);
* the process is pinned to one CPU (the last one it may use: on big.LITTLE phones that is
  usually a big core), so the timed thread does not migrate;
* inputs and outputs are bound once, before timing (IOBinding with preallocated buffers), so
  a timed call is one ``run_with_iobinding``: no allocation or numpy conversion per call;
* every model is warmed up, then timed call by call in ``rounds`` interleaved rounds (each
  round visits the models in a new random order, so slow drifts of a shared machine spread
  over all of them instead of biasing a few); the statistic is the median;
* a model whose round medians disagree by more than ``max_spread`` is an outlier: it is
  measured again (up to ``retries`` times) and the steadiest attempt is kept;
* the fixed cost of one session call (``overhead``) is measured with the same protocol on a
  one-element model embedded below, and stored with the results: a network pays it once,
  while each separately timed op paid it once too (see nas.latency.table).

Latency is always in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import json
import math
import os
import platform
import random
import sys
import time
import zipfile

import numpy as np

STAT_COLUMNS = ("n", "median", "mean", "std", "p10", "p90")
OPTIMIZATIONS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
OVERHEAD_KEY = "__overhead__"
RUNNER_VERSION = 1


class Protocol:
    """Measurement settings; the defaults are the project's protocol."""

    def __init__(self, warmup: int = 10, repeats: int = 60, rounds: int = 6, max_spread: float = 0.05,
                 retries: int = 2, threads: int = 1, cpu: int | None = -1, seed: int = 0,
                 optimization: str = "extended"):
        if warmup < 0 or repeats < 1 or rounds < 1 or threads < 1 or retries < 0 or max_spread <= 0:
            raise ValueError(f"invalid protocol: warmup={warmup} repeats={repeats} rounds={rounds} "
                             f"threads={threads} retries={retries} max_spread={max_spread}")
        if optimization not in OPTIMIZATIONS:
            raise ValueError(f"optimization must be one of {sorted(OPTIMIZATIONS)}, got {optimization!r}")
        self.warmup, self.repeats, self.rounds = warmup, repeats, min(rounds, repeats)
        self.max_spread, self.retries, self.threads, self.cpu, self.seed = max_spread, retries, threads, cpu, seed
        self.optimization = optimization

    def as_dict(self) -> dict:
        return {"warmup": self.warmup, "repeats": self.repeats, "rounds": self.rounds,
                "max_spread": self.max_spread, "retries": self.retries, "threads": self.threads,
                "cpu": self.cpu, "seed": self.seed, "optimization": self.optimization, "statistic": "median",
                "batch": 1, "dtype": "float32",
                "binding": "iobinding-preallocated", "runner_version": RUNNER_VERSION}

    _ARGS = ("warmup", "repeats", "rounds", "max_spread", "retries", "threads", "cpu", "seed", "optimization")

    def arguments(self) -> dict:
        """The constructor's arguments: ``Protocol(**p.arguments())`` is a copy of ``p``."""
        return {k: getattr(self, k) for k in self._ARGS}

    @classmethod
    def from_dict(cls, data: dict) -> Protocol:
        return cls(**{k: data[k] for k in cls._ARGS if k in data})


# ---------------------------------------------------------------------------------------
# sessions and timed calls


def pin_cpu(cpu: int | None) -> int | None:
    """Pin this process to one CPU: ``cpu`` indexes the allowed CPUs (-1: the last one).
    Returns the CPU id, or None where affinity is unsupported or ``cpu`` is None."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[cpu] if -len(allowed) <= cpu < len(allowed) else allowed[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


class pinned:
    """Context manager: pin to one CPU (see :func:`pin_cpu`) and restore the affinity after.
    ``cpu`` is the CPU id (or None) once entered."""

    def __init__(self, cpu: int | None):
        self.index, self.cpu, self._saved = cpu, None, None

    def __enter__(self) -> pinned:
        if self.index is not None and hasattr(os, "sched_getaffinity"):
            self._saved = os.sched_getaffinity(0)
        self.cpu = pin_cpu(self.index)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            os.sched_setaffinity(0, self._saved)


def make_session(model, threads: int = 1, provider: str = "CPUExecutionProvider", optimization: str = "extended"):
    """An ONNX Runtime session for ``model`` (bytes or a path) under the protocol's settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATIONS[optimization])
    options.log_severity_level = 3
    if threads > 1:  # spinning workers steal the timed core's time slices from neighbours
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=[provider])


def bound_call(session, seed: int = 0):
    """A zero-argument function running ``session`` once on a fixed random input, with the
    input and output bound to preallocated buffers (nothing is allocated per call)."""
    import onnxruntime as ort

    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input(inp.name, x)
    binding.bind_output(out.name, "cpu")
    session.run_with_iobinding(binding)  # learn the output shape once
    out_shape = binding.get_outputs()[0].shape()
    buffer = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, "cpu", 0)
    binding.bind_ortvalue_output(out.name, buffer)
    run = session.run_with_iobinding

    def call():
        run(binding)

    call.keep = (x, buffer)  # the bound buffers must outlive the binding
    return call


class PreemptionGuard:
    """Tells whether the calling thread waited on the run queue (was preempted by another
    process) between two readings, from Linux's ``/proc/thread-self/schedstat`` (its second
    field: nanoseconds spent runnable but not running). A timed call during which that grew
    did not measure the model alone; it is discarded and timed again. Where the file does not
    exist (other systems), nothing is discarded."""

    def __init__(self):
        try:
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None
        self.discarded = 0

    def wait_ns(self) -> int:
        if self._fd is None:
            return 0
        return int(os.pread(self._fd, 96, 0).split()[1])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def time_calls(call, count: int, guard: PreemptionGuard | None = None) -> list:
    """Milliseconds of each of ``count`` calls of ``call()``; with a ``guard``, calls during
    which this thread was preempted are timed again (at most ``4 * count`` tries)."""
    clock = time.perf_counter_ns
    samples = []
    tries = 0
    while len(samples) < count and tries < 4 * count:
        tries += 1
        waited = guard.wait_ns() if guard else 0
        start = clock()
        call()
        elapsed = clock() - start
        if guard and guard.wait_ns() != waited and tries < 4 * count:
            guard.discarded += 1
            continue
        samples.append(elapsed * 1e-6)
    return samples


def summarize(samples) -> dict:
    """n, median, mean, std, p10, p90 of latency samples (ms)."""
    a = np.asarray(samples, dtype=float)
    return {"n": int(a.size), "median": float(np.median(a)), "mean": float(a.mean()), "std": float(a.std()),
            "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90))}


def _rounds(calls: dict, protocol: Protocol, rng: random.Random, guard: PreemptionGuard) -> dict:
    """Interleaved timing: per model, the samples of each round."""
    per_round = max(1, math.ceil(protocol.repeats / protocol.rounds))
    keys = list(calls)
    samples: dict = {k: [] for k in keys}
    for _ in range(protocol.rounds):
        rng.shuffle(keys)
        for k in keys:
            samples[k].append(time_calls(calls[k], per_round, guard))
    return samples


def _spread(rounds: list) -> float:
    medians = [float(np.median(r)) for r in rounds]
    overall = float(np.median([s for r in rounds for s in r]))
    return (max(medians) - min(medians)) / overall if overall > 0 else 0.0


def measure(calls: dict, protocol: Protocol, on_done=None, guard: PreemptionGuard | None = None) -> dict:
    """Measure every zero-argument callable of ``calls`` under ``protocol``.

    Returns ``{key: summary}`` (see :func:`summarize`) with ``attempts`` and ``spread`` (the
    relative disagreement of the round medians) added. ``on_done(key)`` is called once per
    key when its measurement is final. Pass a ``guard`` to read how many preempted calls
    were discarded (``guard.discarded``).
    """
    rng = random.Random(protocol.seed)
    for call in calls.values():
        for _ in range(protocol.warmup):
            call()
    own = guard is None
    guard = guard or PreemptionGuard()
    try:
        best, pending = _attempts(calls, protocol, rng, guard, on_done)
    finally:
        if own:
            guard.close()
    for key in pending:
        if on_done:
            on_done(key)
    results = {}
    for key, (rounds, spread, attempt) in best.items():
        results[key] = {**summarize([s for r in rounds for s in r]), "attempts": attempt, "spread": spread}
    return results


def _attempts(calls: dict, protocol: Protocol, rng: random.Random, guard: PreemptionGuard, on_done) -> tuple:
    """Measure, then measure again the models whose rounds disagree; (best per key, unsteady keys)."""
    best: dict = {}
    pending = dict(calls)
    for attempt in range(1, protocol.retries + 2):
        measured = _rounds(pending, protocol, rng, guard)
        for key, rounds in measured.items():
            spread = _spread(rounds)
            if key not in best or spread < best[key][1]:
                best[key] = (rounds, spread, attempt)
        pending = {k: calls[k] for k in pending if best[k][1] > protocol.max_spread}
        for key in measured:
            if key not in pending and on_done:
                on_done(key)
        if not pending:
            break
    return best, pending


# A one-element float model (input -> Relu -> output, opset 17): timing it gives the fixed
# cost of one session call under this protocol. Embedded so the runner needs no onnx package.
OVERHEAD_MODEL = base64.b64decode(
    "CAgSA25hczpUChUKBWlucHV0EgZvdXRwdXQiBFJlbHUSCG92ZXJoZWFkWhcKBWlucHV0Eg4KDAgBEggKAggB"
    "CgIIAWIYCgZvdXRwdXQSDgoMCAESCAoCCAEKAggBQgQKABAR")


def measure_overhead(protocol: Protocol, provider: str = "CPUExecutionProvider") -> dict:
    """The fixed cost of one session call (ms), as a summary."""
    session = make_session(OVERHEAD_MODEL, protocol.threads, provider, protocol.optimization)
    call = bound_call(session)
    # more samples than for an op: it is tiny, and every prediction depends on it
    heavier = Protocol(**{**protocol.arguments(), "repeats": max(protocol.repeats, 300)})
    return measure({OVERHEAD_KEY: call}, heavier)[OVERHEAD_KEY]


# ---------------------------------------------------------------------------------------
# provenance


# Linux on arm64 prints no CPU name, only each core's implementer and part numbers: the cores
# of common boards and phones, named (others are reported by their numbers).
ARM_IMPLEMENTERS = {"0x41": "ARM", "0x51": "Qualcomm", "0x53": "Samsung", "0x61": "Apple", "0x48": "HiSilicon"}
ARM_CORES = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd04"): "Cortex-A35", ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72", ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75", ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77", ("0x41", "0xd40"): "Neoverse-V1", ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd44"): "Cortex-X1", ("0x41", "0xd46"): "Cortex-A510", ("0x41", "0xd47"): "Cortex-A710",
    ("0x41", "0xd48"): "Cortex-X2", ("0x41", "0xd49"): "Neoverse-N2", ("0x41", "0xd4d"): "Cortex-A715",
    ("0x41", "0xd4e"): "Cortex-X3", ("0x41", "0xd80"): "Cortex-A520", ("0x41", "0xd81"): "Cortex-A720",
    ("0x41", "0xd82"): "Cortex-X4", ("0x51", "0x205"): "Kryo Gold", ("0x51", "0x211"): "Kryo Silver",
    ("0x51", "0x800"): "Kryo 2xx Gold", ("0x51", "0x801"): "Kryo 2xx Silver", ("0x51", "0x803"): "Kryo 3xx Silver",
    ("0x51", "0x804"): "Kryo 4xx Gold", ("0x51", "0x805"): "Kryo 4xx Silver",
}


def _arm_cores(entries: list) -> str:
    """'4x ARM Cortex-A55 + 4x ARM Cortex-A76' from (implementer, part) per core, in core order."""
    counts: dict = {}
    for implementer, part in entries:
        vendor = ARM_IMPLEMENTERS.get(implementer, f"implementer {implementer}")
        name = f"{vendor} {ARM_CORES.get((implementer, part), f'part {part}')}"
        counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's name where the system tells it (x86's "model name", Android's "Hardware", a
    Raspberry Pi's "Model"), with the ARM cores named from their part numbers; else platform's."""
    fields: dict = {}
    cores, implementer = [], None
    try:
        with open(cpuinfo) as f:
            for line in f:
                name, _, value = line.partition(":")
                key, value = name.strip().lower(), value.strip()
                fields.setdefault(key, value)
                if key == "cpu implementer":
                    implementer = value
                elif key == "cpu part":
                    cores.append((implementer, value))
    except OSError:
        pass
    named = next((fields[k] for k in ("model name", "hardware", "processor name", "cpu model") if fields.get(k)),
                 None)
    if named is None and fields.get("model") and not fields["model"].isdigit():  # x86's "model" is a number
        named = fields["model"]
    if cores:
        return f"{named} ({_arm_cores(cores)})" if named else _arm_cores(cores)
    return named or platform.processor() or "unknown"


def device_provenance(protocol: Protocol, provider: str, device: str | None = None) -> dict:
    """What a table must record about where and how it was measured."""
    import onnxruntime as ort

    return {
        "device": device or platform.node() or "unknown",
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "runtime": "onnxruntime",
        "runtime_version": ort.__version__,
        "execution_provider": provider,
        "threads": protocol.threads,
        "graph_optimization": protocol.optimization,
        "batch": 1,
        "dtype": "float32",
        "warmup": protocol.warmup,
        "repeats": protocol.repeats,
        "protocol": protocol.as_dict(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (3.8+)
    }


# ---------------------------------------------------------------------------------------
# the stand-alone runner: bundle zip -> CSV + JSON sidecar


class BundleError(ValueError):
    """The file is not a readable latency bundle."""


def read_bundle(path: str) -> tuple:
    """(manifest dict, zipfile) of a bundle written by ``nas latency bundle``."""
    try:
        archive = zipfile.ZipFile(path)
        manifest = json.loads(archive.read("manifest.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BundleError(f"{path} is not a latency bundle (a zip with manifest.json): {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "nas-latency-bundle" or "ops" not in manifest:
        raise BundleError(f"{path}: manifest.json is not a nas latency bundle manifest")
    missing = [e["file"] for e in manifest["ops"] if e.get("file") not in archive.namelist()]
    if missing:
        raise BundleError(f"{path}: the manifest names model file(s) the zip lacks: {missing[:5]}")
    return manifest, archive


def _read_done(csv_path: str) -> dict:
    if not os.path.exists(csv_path):
        return {}
    with open(csv_path, newline="") as f:
        return {row["key"]: row for row in csv.DictReader(f)}


def _write_csv(csv_path: str, columns: list, rows: list) -> None:
    tmp = csv_path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def run_bundle(bundle: str, out: str, protocol: Protocol, provider: str = "CPUExecutionProvider",
               chunk: int = 32, device: str | None = None, log=print) -> int:
    """Measure every op of ``bundle`` and write ``out`` (CSV) and ``out``.json (provenance).
    Resumes: ops already in ``out`` are kept and not measured again. Returns ops measured."""
    manifest, archive = read_bundle(bundle)
    columns = ["key"] + list(manifest["columns"]) + list(STAT_COLUMNS)
    done = _read_done(out)
    rows = [done[e["key"]] for e in manifest["ops"] if e["key"] in done]
    todo = [e for e in manifest["ops"] if e["key"] not in done]
    with pinned(protocol.cpu) as pin:
        overhead = measure_overhead(protocol, provider)
        _run_chunks(todo, archive, out, columns, rows, protocol, provider, chunk, log)
    provenance = {**manifest.get("provenance", {}), **device_provenance(protocol, provider, device),
                  "cpu_affinity": pin.cpu, "overhead": overhead, "source": "runner",
                  "bundle": os.path.basename(bundle)}
    with open(out[:-4] + ".json" if out.endswith(".csv") else out + ".json", "w") as f:
        json.dump(provenance, f, indent=2)
    return len(todo)


def _run_chunks(todo, archive, out, columns, rows, protocol, provider, chunk, log) -> None:
    start, total = time.time(), len(todo)
    for i in range(0, total, chunk):
        part = todo[i:i + chunk]
        calls = {e["key"]: bound_call(make_session(archive.read(e["file"]), protocol.threads, provider,
                                                   protocol.optimization))
                 for e in part}
        results = measure(calls, protocol)
        for e in part:
            stats = {k: _fmt(results[e["key"]][k]) for k in STAT_COLUMNS}
            rows.append({"key": e["key"], **e["fields"], **stats})
        _write_csv(out, columns, rows)
        done_n = min(i + chunk, total)
        left = (time.time() - start) / done_n * (total - done_n)
        log(f"{done_n}/{total} ops measured, about {left:.0f} s left")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Measure the ops of a latency bundle with ONNX Runtime.")
    parser.add_argument("bundle", help="zip written by `nas latency bundle`")
    parser.add_argument("-o", "--output", required=True, help="CSV to write (resumed if it exists)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cpu", type=int, default=-1, help="index of the allowed CPU to pin to (-1: last)")
    parser.add_argument("--provider", default="CPUExecutionProvider")
    parser.add_argument("--optimization", choices=sorted(OPTIMIZATIONS), default="extended",
                        help="ONNX Runtime graph optimisation level (default extended: see the module doc)")
    parser.add_argument("--device", default=None, help="device name for the provenance (default: host name)")
    parser.add_argument("--chunk", type=int, default=32, help="ops measured (interleaved) between saves")
    args = parser.parse_args(argv)
    try:
        protocol = Protocol(args.warmup, args.repeats, args.rounds, threads=args.threads, cpu=args.cpu,
                            optimization=args.optimization)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        n = run_bundle(args.bundle, args.output, protocol, args.provider, args.chunk, args.device,
                       log=lambda msg: print(msg, file=sys.stderr))
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"measured {n} ops -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
