"""Pricing a network at the shape it will be deployed at, not the shape it is trained at.

A search may train candidates on a small proxy input (28x28 Fashion-MNIST) while the network
ships at 224x224x3 on a phone. ``latency: {table: pixel1-proxylessnas, input: 224x224x3}``
says so: each candidate is rebuilt at the deployment shape by the same search space (the
space takes the input shape and class count: stems and strides follow the input) from the
same parameters, and that network is priced. A baseline that is not a member of the space is
rebuilt from the reference network it is.

:func:`load_pricing` is the one entry point the search calls; without a deployment shape it
returns the table itself, checked against the training input as before.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

from nas.latency.errors import InputShapeError
from nas.latency.table import EstimatedLatencyWarning
from nas.ops import OpInstance, resolve
from nas.space import SearchSpace, get_reference, get_space, list_references
from nas.spec import ArchSpec, SpecError, parse_shape


class DeploymentPricing:
    """A latency model that prices specs of ``train_space`` as ``deploy_space`` builds them.

    ``predict_spec(spec)`` is what the search calls (nas.search.controller.measure);
    ``predict(ops)`` accepts only ops already at the deployment shape, since ops of the
    training network cannot be priced as the deployed one.
    """

    def __init__(self, model, train_space: SearchSpace, deploy_space: SearchSpace):
        self.model = model
        self.train_space = train_space
        self.deploy_space = deploy_space
        self.provenance = getattr(model, "provenance", {})
        self.estimated: dict[str, int] = {}  # arch_id -> estimated ops, of the networks priced
        self._deployed: dict[ArchSpec, ArchSpec] = {}  # the search prices a spec several times

    @property
    def deploy_shape(self) -> tuple[int, int, int]:
        return tuple(self.deploy_space.input_shape)

    def check_input(self, shape: Sequence[int]) -> None:
        """The training input must be the train space's (the table was checked at deployment)."""
        if tuple(shape) != tuple(self.train_space.input_shape):
            raise InputShapeError(f"this pricing rebuilds networks of input {self.train_space.input_shape}, "
                                  f"not {tuple(shape)}")

    def deployment_spec(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` as it is deployed: the same parameters (or the same reference network)
        built at the deployment shape.

        Raises:
            SpecError: ``spec`` is neither a member of the space nor a reference network.
        """
        if tuple(spec.input) == self.deploy_shape:
            return spec
        deployed = self._deployed.get(spec)
        if deployed is None:
            deployed = self._deployed[spec] = self._rebuild(spec)
        return deployed

    def _rebuild(self, spec: ArchSpec) -> ArchSpec:
        try:
            params = self.train_space.encode(spec)
            if self.train_space.decode(params) == spec:  # a member of the space
                return self.deploy_space.decode(params)
        except SpecError:
            pass
        name = _reference_name(spec)
        if name is None:
            raise SpecError(f"cannot rebuild {spec.arch_id} at the deployment shape "
                            f"{'x'.join(map(str, self.deploy_shape))}: it is neither a member of space "
                            f"{self.train_space.name!r} nor a reference network")
        return get_reference(name, self.deploy_shape, spec.classes)

    def predict_spec(self, spec: ArchSpec) -> float:
        """The deployed network's latency (ms), counting the ops the table had to estimate."""
        deployed = self.deployment_spec(spec)
        ops = resolve(deployed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EstimatedLatencyWarning)  # counted instead, once per network
            ms = float(self.model.predict(ops))
        if spec.arch_id not in self.estimated and hasattr(self.model, "missing"):
            keys = set(self.model.missing(ops))
            self.estimated[spec.arch_id] = sum(op.key in keys for op in ops)
        return ms

    def predict(self, ops: Sequence[OpInstance]) -> float:
        if ops and tuple(ops[0].input) != self.deploy_shape:
            raise InputShapeError(f"ops of input {ops[0].input} given to a pricing at the deployment shape "
                                  f"{self.deploy_shape}: price the spec (predict_spec) so it is rebuilt")
        return self.model.predict(ops)

    def breakdown(self, ops: Sequence[OpInstance]) -> list[dict]:
        self.predict(ops)
        return self.model.breakdown(ops)


@functools.lru_cache(maxsize=256)
def _reference_name(spec: ArchSpec) -> str | None:
    """The reference network ``spec`` is (built at its own input and classes), if any."""
    for name in list_references():
        try:
            if get_reference(name, tuple(spec.input), spec.classes) == spec:
                return name
        except (SpecError, ValueError):
            continue
    return None


def parse_deployment_shape(text: str) -> tuple[int, int, int]:
    try:
        return tuple(parse_shape(text, "latency.input"))
    except SpecError as exc:
        raise SpecError(f"latency.input: {exc} (the deployment shape HxWxC, e.g. 224x224x3)") from None


def load_pricing(table: str, missing: str | None, deploy_input: str | None, space: SearchSpace,
                 space_options: dict[str, Any] | None = None):
    """The latency model a search prices with: the table (a path or shipped name) checked
    against the training input, or, with ``deploy_input``, a :class:`DeploymentPricing` that
    rebuilds each network at that shape (the table checked against it)."""
    from nas.latency import load_latency_model

    model = load_latency_model(table, missing=missing)
    if not deploy_input:
        model.check_input(space.input_shape)
        return model
    shape = parse_deployment_shape(deploy_input)
    model.check_input(shape)
    deploy_space = get_space(space.name, shape, space.classes, **(space_options or {}))
    return DeploymentPricing(model, space, deploy_space)


def pricing_summary(model, table: str, deploy_input: str | None) -> dict[str, Any]:
    """What the latencies of a run are: device, runtime, threads and the shape priced, and
    how many ops of the priced networks the table had to estimate."""
    p = getattr(model, "provenance", {}) or {}
    out = {"table": table, "device": p.get("device"), "runtime": p.get("runtime"), "threads": p.get("threads"),
           "shape": deploy_input or p.get("input"), "deployment_shape": bool(deploy_input),
           "profiled": p.get("source") == "profile", "measured_here": profiled_on_this_machine(p)}
    counts = getattr(model, "estimated", None)
    if counts is not None:
        out.update(networks_priced=len(counts), networks_with_estimates=sum(1 for n in counts.values() if n),
                   estimated_ops_min=min(counts.values(), default=0), estimated_ops_max=max(counts.values(), default=0))
    return out


def profiled_on_this_machine(provenance: dict[str, Any]) -> bool:
    """Whether a table was measured by `nas latency profile` on a machine like the one running
    now (same CPU model and architecture): only then is it "this host's". A profiled table
    shipped with the project or copied from another machine is that machine's."""
    if provenance.get("source") != "profile":
        return False
    import platform

    from nas.latency.runner import cpu_model

    return provenance.get("cpu_model") == cpu_model() and provenance.get("machine") == platform.machine()


def device_label(summary: dict[str, Any], *, long: bool = False) -> str:
    """The device a run's latencies are for, saying whose machine a profiled table measured:
    "xeon2c (this host)" or "xeon2c (profiled on another machine)"; the long form is the
    report's sentence's."""
    device = summary.get("device") or "an unnamed device"
    if summary.get("measured_here"):
        return f"{device} (this host's table, nas latency profile)" if long else f"{device} (this host)"
    if summary.get("profiled"):
        return (f"{device} (a table profiled with nas latency profile on another machine, not this host)"
                if long else f"{device} (profiled on another machine)")
    return device


def price(model, spec: ArchSpec) -> float:
    """``spec``'s latency (ms) under ``model``: as deployed when the model rebuilds specs
    (:class:`DeploymentPricing`), else its ops priced as they are. The one call the search
    makes to price a network."""
    predict_spec = getattr(model, "predict_spec", None)
    return float(predict_spec(spec) if predict_spec is not None else model.predict(resolve(spec)))


def pricing_sentence(summary: dict | None) -> str:
    """One sentence for a report: what the latencies are for (see :func:`pricing_summary`)."""
    if not summary:
        return ""
    s = summary
    device = device_label(s, long=True)
    threads = f", {s['threads']} thread(s)" if s.get("threads") else ""
    shape = f"input {s['shape']}" + (" (the deployment shape; networks are trained at the dataset's input)"
                                     if s.get("deployment_shape") else "")
    text = f"Latencies are predicted for {device}, {s['runtime']}{threads}, {shape}, from table {s['table']}."
    if s.get("networks_with_estimates"):
        text += (f" Ops the table lacks were estimated from its own entries: {s['estimated_ops_min']} to "
                 f"{s['estimated_ops_max']} per network, in {s['networks_with_estimates']} of the "
                 f"{s['networks_priced']} networks priced (candidates, baselines and the pre-flight sample).")
    elif "networks_priced" in s:
        text += f" Every op of the {s['networks_priced']} networks priced was in the table (none estimated)."
    return text


def price_for_config(latency, space_name: str, space_options: dict[str, Any] | None, spec: ArchSpec):
    """``spec`` (a member or baseline of a run) priced as the run's search priced it: with its
    ``latency`` config (a LatencyConfig: table, missing, input), at ``latency.input`` when
    given. Returns (ms, the latency model)."""
    space = get_space(space_name, tuple(spec.input), spec.classes, **(space_options or {}))
    model = load_pricing(latency.table, latency.missing, latency.input, space, space_options)
    return price(model, spec), model
