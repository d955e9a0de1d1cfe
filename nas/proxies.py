"""Zero-cost proxies: scores of an untrained network that try to rank architectures by the
accuracy they would reach after training, computed at initialisation on a batch or two.

Each proxy takes a freshly initialised model and leaves it untouched (it works on a copy).
Higher is better for every proxy here. Implemented (after Abdelfattah et al., "Zero-Cost
Proxies for Lightweight NAS", 2021, and Mellor et al., "Neural Architecture Search without
Training", 2021):

- ``synflow``: log of sum |theta * dR/dtheta| with R the sum of outputs of the network with
  absolute weights on an all-ones input (data-free). Saturating activations (ReLU6,
  hard-swish) are replaced by ReLU for this score so that it stays the path-norm it is
  meant to be, and it is computed in float64.
- ``naswot``: log-determinant of the Hamming-similarity kernel of the binary activation codes
  (which units are on) of a batch, over every activation module; a ridge of 1 keeps it finite
  when two inputs share a code.
- ``jacob_cov``: how uncorrelated the input Jacobians of a batch are (the first NASWOT score).
- ``grad_norm``: sum over conv/linear weights of ||dL/dW|| for the cross-entropy of a batch.
- ``snip``: sum over conv/linear weights of |W * dL/dW|.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish)


def _weights(model: nn.Module):
    """Conv and linear weights: the 'prunable' parameters the proxies sum over."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            yield module.weight


def _replace_activations(model: nn.Module) -> None:
    for name, child in model.named_children():
        if isinstance(child, (nn.ReLU6, nn.Hardswish)):
            setattr(model, name, nn.ReLU())
        else:
            _replace_activations(child)


def synflow(model: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Log synaptic flow of ``model`` for an (H, W, C) input; data-free."""
    net = copy.deepcopy(model).double().eval()  # eval: BN at init is the identity, dropout off
    _replace_activations(net)
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    h, w, c = input_shape
    net.zero_grad()
    net(torch.ones(1, c, h, w, dtype=torch.float64)).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in _weights(net) if p.grad is not None)
    if total <= 0:
        return -math.inf
    return math.log(total)


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """log|K| + ridge, K[i, j] = number of units on which inputs i and j agree (on/off)."""
    net = copy.deepcopy(model).train()
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module, inputs, output):
        codes = (output.detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel + torch.eye(n, dtype=torch.float64))[1])


def jacob_cov(model: nn.Module, images: torch.Tensor) -> float:
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation matrix of the
    per-input Jacobians of the summed output (k = 1e-5)."""
    net = copy.deepcopy(model).train()
    x = images.clone().requires_grad_(True)
    net(x).sum().backward()
    jacobians = x.grad.reshape(len(x), -1).double()
    corr = torch.corrcoef(jacobians)
    corr = torch.nan_to_num(corr, nan=0.0)  # a constant Jacobian row has no correlation
    values = torch.linalg.eigvalsh(corr).clamp_min(0)
    k = 1e-5
    return float(-(torch.log(values + k) + 1 / (values + k)).sum())


def _loss_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[tuple]:
    """(weight, gradient) of every conv/linear weight for the cross-entropy of the batch."""
    net = copy.deepcopy(model).train()
    net.zero_grad()
    F.cross_entropy(net(images), labels).backward()
    return [(p.detach(), p.grad) for p in _weights(net) if p.grad is not None]


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return sum(float(g.norm()) for _, g in _loss_gradients(model, images, labels))


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return sum(float((w * g).abs().sum()) for w, g in _loss_gradients(model, images, labels))


PROXIES = ("synflow", "naswot", "jacob_cov", "grad_norm", "snip")


def compute_proxies(names: tuple[str, ...], model: nn.Module, images: torch.Tensor,
                    labels: torch.Tensor) -> dict[str, float]:
    """Proxies ``names`` of ``model`` (left untouched) on a normalised batch ``images``
    (N, C, H, W) with ``labels``. grad_norm and snip share one backward pass."""
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise ValueError(f"unknown proxy {unknown[0]!r}; expected one of {list(PROXIES)}")
    _, c, h, w = images.shape
    out: dict[str, float] = {}
    if "synflow" in names:
        out["synflow"] = synflow(model, (h, w, c))
    if "naswot" in names:
        out["naswot"] = naswot(model, images)
    if "jacob_cov" in names:
        out["jacob_cov"] = jacob_cov(model, images)
    if "grad_norm" in names or "snip" in names:
        grads = _loss_gradients(model, images, labels)
        if "grad_norm" in names:
            out["grad_norm"] = sum(float(g.norm()) for _, g in grads)
        if "snip" in names:
            out["snip"] = sum(float((w * g).abs().sum()) for w, g in grads)
    return {name: out[name] for name in names}
