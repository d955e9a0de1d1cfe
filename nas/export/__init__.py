"""Export a network chosen from a search run: retrain it, write it as ONNX fp32 (batch norm
folded), int8 and fp16, verify each format against PyTorch and measure it.

One entry function, :func:`export_network` (what ``nas export`` calls)::

    from nas.export import export_network
    card = export_network("runs/quickstart", "exports/fast", max_latency_ms=1.0, retrain_epochs=5)

The steps, one module each:

- :mod:`nas.export.selection`: which architecture of the run (trial, Pareto index, latency limit);
- :mod:`nas.export.retrain`: the weights, retrained on the whole training set or loaded;
- :mod:`nas.export.pipeline`: the output folder and the export of a trained network
  (:func:`nas.export.pipeline.export_model`, for a network trained elsewhere too);
- :mod:`nas.export.fold` and :mod:`nas.export.to_onnx`: batch-norm folding and the fp32 ONNX file;
- :mod:`nas.export.quantize`: the int8 and fp16 copies;
- :mod:`nas.export.verify`: parity with PyTorch, accuracy and latency of each format;
- :mod:`nas.export.card`: ``card.json`` and ``README.md``;
- :mod:`nas.export.check`: the stand-alone checker every export folder carries; it runs with
  onnxruntime and numpy alone.

This file imports nothing heavy at import time, and must not: ``python -m nas.export.check``
runs it first, on a device that may have no PyTorch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.data import Dataset
    from nas.export.pipeline import ExportOptions

__all__ = ["ExportError", "ExportOptions", "export_network"]


def export_network(run_folder: str | Path, out: str | Path, *, trial: int | None = None,
                   pareto_index: int | None = None, max_latency_ms: float | None = None,
                   retrain_epochs: int | None = None, weights: str | Path | None = None,
                   dataset: Dataset | None = None, options: ExportOptions | None = None, progress: bool = True,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Export one architecture of the search run in ``run_folder`` into the folder ``out``.

    Choose it with exactly one of ``trial`` (a completed trial's number), ``pareto_index`` (the
    K-th network of the Pareto front, 0 = fastest, as ``nas pareto`` lists them) or
    ``max_latency_ms`` (the most accurate Pareto network predicted to take at most that many ms). It is
    retrained for ``retrain_epochs`` (default
    :data:`nas.export.retrain.DEFAULT_RETRAIN_EPOCHS`) on the whole training set of the run's
    dataset, or ``weights`` (a state_dict file) are loaded instead; ``dataset`` overrides the
    run's dataset; ``options`` (:class:`ExportOptions`) sets calibration, parity and the latency
    protocol. Returns the model card (also written as ``card.json`` and ``README.md``).

    Raises:
        ExportError: any bad input, before training starts (missing run folder, unknown trial,
            empty Pareto front, no network under the latency limit, unwritable output folder,
            weights that do not fit, both ``weights`` and ``retrain_epochs``).
    """
    from nas.export import pipeline, retrain
    from nas.export.selection import ExportError, select_architecture

    options = options or pipeline.ExportOptions()
    if weights is not None and retrain_epochs is not None:
        raise ExportError("give either --weights (export those) or --retrain-epochs (retrain), not both")
    selection = select_architecture(run_folder, trial=trial, pareto_index=pareto_index,
                                    max_latency_ms=max_latency_ms)
    # every check that needs no output folder comes first: a refused export leaves nothing behind
    if weights is not None:
        model = retrain.load_weights(selection.spec, weights)
        record = {"origin": "loaded", "path": str(weights), "description": f"loaded from {weights}"}
        budget = None
    else:
        budget = retrain.retrain_budget(selection.config, retrain_epochs or retrain.DEFAULT_RETRAIN_EPOCHS)
    dataset = dataset or retrain.load_run_dataset(selection.config)
    pipeline.prepare_output(out, options.overwrite)
    log(f"chose trial {selection.trial} ({selection.how}): {selection.spec.to_string()}")
    if budget is not None:
        log(f"retraining for {budget.epochs} epochs on {len(dataset.train) + len(dataset.val)} training images")
        model, summary = retrain.retrain(selection.spec, dataset, budget, progress=progress)
        record = {"origin": "retrained", **summary,
                  "description": f"retrained from scratch for {budget.epochs} epochs on the whole training set "
                                 f"({summary['train_images']} images, {summary['train_time_s']:.0f} s)"}
    return pipeline.export_model(model, selection.spec, dataset, out,
                                 options=dataclasses.replace(options, overwrite=True),
                                 predicted=pipeline.predict_latency(selection), source=selection.to_dict(),
                                 weights=record, log=log)


def __getattr__(name: str) -> Any:
    """``nas.export.ExportError`` and ``nas.export.ExportOptions``, imported on first use (see
    the module docstring for why nothing is imported up front)."""
    if name == "ExportError":
        from nas.export.selection import ExportError

        return ExportError
    if name == "ExportOptions":
        from nas.export.pipeline import ExportOptions

        return ExportOptions
    raise AttributeError(f"module 'nas.export' has no attribute {name!r}")
