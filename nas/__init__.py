"""edgenas: hardware-aware neural architecture search for edge devices.

The Python API (guide: docs/python-api.md) does what the ``nas`` commands do::

    import nas

    config = nas.load_config("experiments/quickstart.yaml")
    nas.run_search(config)
    nas.pareto_front(config.output_dir())          # a pandas DataFrame
    nas.price("mobilenet_v2_1.0", "pixel1-proxylessnas").latency_ms

Importing ``nas`` changes no global state (warning filters, logging, the matplotlib backend,
threads) and loads no heavy library; see :mod:`nas.api`.
"""

from importlib.metadata import PackageNotFoundError, version

from nas.api import (
    ArchSpec,
    ConfigError,
    ExperimentConfig,
    Price,
    SpecError,
    change_config,
    export_network,
    latency_tables,
    load_arch,
    load_config,
    make_config,
    open_run,
    pareto_front,
    price,
    run_search,
    trials,
    verify_run,
    write_report,
)

__all__ = ["ArchSpec", "ConfigError", "ExperimentConfig", "Price", "SpecError", "change_config", "export_network",
           "latency_tables", "load_arch", "load_config", "make_config", "open_run", "pareto_front", "price",
           "run_search", "trials", "verify_run", "write_report"]

try:
    __version__ = version("edgenas")  # the installed distribution's, from setup.cfg
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown"
