"""Test doubles for the search: a deterministic evaluator and a MAC-proportional latency
model. They let the controller's logic be tested in milliseconds; the real evaluators and
tables have their own tests."""

from __future__ import annotations

import hashlib
import math
import os
import time

from nas.ops import count_macs, count_params


class FakeEvaluator:
    """'Accuracy' grows with the parameter count, plus a small arch-dependent jitter."""

    objective = "accuracy"
    budget_key = "fake"

    def __init__(self, input_shape=(28, 28, 1), classes=10, interrupt_at: int | None = None,
                 fail_at: int | None = None, sleep_s: float = 0.0, log_path=None):
        self.input_shape, self.classes = input_shape, classes
        self.calls: list[str] = []
        self.interrupt_at, self.fail_at = interrupt_at, fail_at
        self.sleep_s, self.log_path = sleep_s, log_path

    def evaluate(self, spec):
        self.calls.append(spec.arch_id)
        if self.log_path is not None:  # lets multi-process tests see who evaluated what
            with open(self.log_path, "a") as log:
                log.write(f"{os.getpid()} {spec.arch_id}\n")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            return {"accuracy": float("nan"), "status": "diverged", "reason": "loss became nan at step 3"}
        from nas.ops import resolve

        params = count_params(resolve(spec))
        jitter = int(hashlib.sha256(spec.arch_id.encode()).hexdigest()[:4], 16) / 65535 * 0.02
        return {"accuracy": 1 - 1 / math.log(params) - jitter, "status": "ok", "train_time_s": 0.0}


class FakeLatency:
    """Latency proportional to MACs plus a per-op overhead (ms)."""

    def __init__(self, input_shape=(28, 28, 1)):
        self.input_shape = input_shape

    def predict(self, ops) -> float:
        return count_macs(ops) / 2e7 + 0.005 * len(ops)

    def check_input(self, shape) -> None:
        if tuple(shape) != tuple(self.input_shape):
            raise ValueError(f"table measured for {self.input_shape}, not {shape}")
