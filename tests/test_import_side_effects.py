"""Importing ``nas`` (the package, its Python API and every module under it) changes no global
state of the importing program: warning filters, logging handlers and levels, Optuna's
verbosity, the matplotlib backend, threads, signal handlers, environment variables, sys.path,
the working directory, the random states of random, NumPy and PyTorch, NumPy's error and
print settings, PyTorch's threads and default dtype.

Libraries set some of these when they are first imported (NumPy and PyTorch add warning
filters, Optuna gives its logger a handler). That is theirs, not ours: each check runs in a
fresh interpreter that first imports every outside module ``nas`` would import (listed by a
first interpreter that imports all of ``nas``), then takes the snapshot, then imports the
``nas`` modules one by one, so a change is pinned on the module whose own code made it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Prints, as JSON, the modules to check and the outside modules they import, in import order.
LIST_MODULES = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    before = set(sys.modules)
    import nas, nas.api
    root = Path(nas.__file__).parent
    files = [p.relative_to(root.parent).with_suffix("") for p in root.rglob("*.py")]
    # every module, folders without __init__.py included; __main__ would run the CLI
    names = ["nas", "nas.api"] + sorted(
        ".".join(f.parts if f.name != "__init__" else f.parts[:-1]) for f in files
        if f.name != "__main__" and f.parts not in (("nas", "__init__"), ("nas", "api")))
    for name in names:
        __import__(name)
    outside = [m for m in sys.modules if m not in before and m != "nas" and not m.startswith("nas.")]
    print(json.dumps({"nas": names, "outside": outside}))
""")

# Imports the outside modules, snapshots the global state, imports each nas module and prints
# what its import changed.
CHECK = textwrap.dedent("""
    import hashlib, importlib, json, logging, os, random, signal, sys, threading, warnings

    modules = json.loads(sys.argv[1])
    for name in modules["outside"]:
        try:
            importlib.import_module(name)
        except Exception:  # a private or platform-only submodule that needs its parent's setup
            pass
    import matplotlib
    matplotlib.use("svg")  # a backend nas would never choose: a change to any other shows

    def all_loggers():
        found = {"<root>": logging.getLogger()}
        found.update((name, logger) for name, logger in logging.root.manager.loggerDict.items()
                     if isinstance(logger, logging.Logger))
        return found

    def loggers():
        # Level, handlers and propagation of every logger that existed before, and of new ones
        # only when configured (a module may create its logger, not set it up).
        return {name: (logger.level, [repr(h) for h in logger.handlers], logger.propagate)
                for name, logger in all_loggers().items()
                if name in existing or logger.level or logger.handlers or not logger.propagate}

    def snapshot():
        state = {
            "warnings.filters": [repr(f) for f in warnings.filters],
            "loggers": loggers(),
            "matplotlib backend": matplotlib.get_backend(),
            "threads": sorted(t.name for t in threading.enumerate()),
            "signal handlers": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)},
            "environment": dict(os.environ),
            "sys.excepthook": repr(sys.excepthook),
            "sys.path": list(sys.path),
            "working directory": os.getcwd(),
            "random's state": hash(random.getstate()),
        }
        if "numpy" in sys.modules:
            numpy = sys.modules["numpy"]
            state["numpy's random state"] = hashlib.sha256(repr(numpy.random.get_state()).encode()).hexdigest()
            state["numpy's error handling"] = numpy.geterr()
            state["numpy's print options"] = repr(numpy.get_printoptions())
        if "optuna" in sys.modules:
            state["optuna verbosity"] = sys.modules["optuna"].logging.get_verbosity()
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            state["torch threads"] = torch.get_num_threads()
            state["torch's random state"] = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
            state["torch's default dtype"] = str(torch.get_default_dtype())
        return state

    def difference(old, new):
        if isinstance(old, dict) and isinstance(new, dict):
            return {key: difference(old.get(key), new.get(key))
                    for key in {**old, **new} if old.get(key) != new.get(key)}
        if isinstance(old, list) and isinstance(new, list) and set(old) != set(new):
            return {"added": [x for x in new if x not in old], "removed": [x for x in old if x not in new]}
        return {"before": old, "after": new}

    existing = set(all_loggers())
    changes = {}
    before = snapshot()
    for name in modules["nas"]:
        importlib.import_module(name)
        after = snapshot()
        changed = {key: difference(before.get(key), after[key]) for key in after if after[key] != before.get(key)}
        if changed:
            changes[name] = changed
        before = after
    print(json.dumps(changes, indent=1, default=str))
""")


def run_python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_nas_and_every_module_in_it_changes_no_global_state():
    modules = json.loads(run_python(LIST_MODULES))
    assert {"nas", "nas.api", "nas.report", "nas.search.runner", "nas.search.study"} <= set(modules["nas"])
    changes = json.loads(run_python(CHECK, json.dumps(modules)))
    if changes:
        pytest.fail("importing these modules changed global state:\n" + json.dumps(changes, indent=1), pytrace=False)


def test_importing_nas_loads_no_heavy_library():
    """``import nas`` is what a notebook's first cell pays for: the API loads PyTorch, Optuna,
    pandas and matplotlib only when a function needs them."""
    loaded = json.loads(run_python("import json, sys, nas; print(json.dumps(sorted(sys.modules)))"))
    assert not {"torch", "optuna", "pandas", "matplotlib", "onnx", "onnxruntime", "sqlalchemy"} & set(loaded)
