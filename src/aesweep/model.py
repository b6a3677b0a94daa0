"""Autoencoders whose bottleneck is scored as a clustering of the digits.

Every model has `encoder` (image -> bottleneck code, the part that gets scored) and `decoder`
(code -> image in [0, 1]) as separately callable `nn.Sequential`s. The encoder ends in `Heads` (the
bottleneck's logits) and the bottleneck activation, so `encoder[:-1]` gives the logits that are scored.

A model may have several heads (`model.heads`): bottlenecks side by side on the same features, each its
own `bottleneck`-wide softmax, all trained, all read by the decoder. One of them - chosen without labels,
by its own clustering loss (aesweep.train) - is the encoder's output and the one scored.

A model may also have an over-clustering head (`model.overcluster`, IIC's auxiliary head): a wider softmax on
the same features, trained by the loss to split the data into more clusters than there are digits, so the
features learn to tell apart the styles within a digit. It is never scored and the decoder does not read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class BottleneckActivation(nn.Module):
    """softmax or sigmoid of logits / temperature, or the logits unchanged ("none")."""

    def __init__(self, kind: str = "softmax", temperature: float = 1.0):
        super().__init__()
        self.kind, self.temperature = kind, float(temperature)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "softmax":
            return torch.softmax(logits / self.temperature, dim=-1)
        if self.kind == "sigmoid":
            return torch.sigmoid(logits / self.temperature)
        return logits

    def extra_repr(self) -> str:
        return f"kind={self.kind}, temperature={self.temperature}"


class LogitsLinear(nn.Linear):
    """The linear layer that gives the bottleneck its logits, computed in float32 even under bf16 autocast.

    The clustering terms and the argmax readout work on these logits, and bf16 keeps ~3 significant
    digits: with the whole IIC model in bf16 on a CPU, val.mapped_acc fell on 7 of 10 seeds (two by 11
    points). The layer is small (width -> bottleneck), so float32 here costs little.
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast(features.device.type, enabled=False):
            return super().forward(features.float())


class Heads(nn.Module):
    """`heads` bottlenecks side by side on the same features, each `width` logits wide (one LogitsLinear for all).

    Called, it gives the selected head's logits (what the encoder outputs and the readout scores); `all` gives
    every head's, [batch, heads, width], for training. `selected` is a buffer: it travels with the weights.
    """

    def __init__(self, in_features: int, width: int, heads: int = 1):
        super().__init__()
        self.width, self.heads = width, heads
        self.linear = LogitsLinear(in_features, width * heads)
        self.register_buffer("selected", torch.zeros((), dtype=torch.long))

    def all(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).unflatten(1, (self.heads, self.width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.all(features)[:, self.selected]

    def extra_repr(self) -> str:
        return f"heads={self.heads}, width={self.width}"


class Parts(NamedTuple):
    """Every stage of one forward pass, for the losses: logits and code of every head, [batch, heads, width],
    the reconstruction, and the over-clustering head's logits (None without one)."""

    logits: torch.Tensor
    code: torch.Tensor
    recon: torch.Tensor
    overcluster: torch.Tensor | None


class Autoencoder(nn.Module):
    """Shared behaviour: forward = the reconstruction; `parts` exposes every stage for the losses."""

    encoder: nn.Sequential
    decoder: nn.Sequential

    def __init__(self):
        super().__init__()
        self.overcluster: LogitsLinear | None = None  # a model with an over-clustering head sets it

    @property
    def heads(self) -> Heads:
        return self.encoder[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts(x)[2]

    def parts(self, x: torch.Tensor) -> Parts:
        logits, overcluster = self.all_logits(x)
        code = self.encoder[-1](logits)
        return Parts(logits, code, self.decoder(code.flatten(1)), overcluster)

    def all_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every head's logits, [batch, heads, width], and the over-clustering head's (None without one), from
        one pass of the encoder's features (the clustering losses' view of an augmented image)."""
        features = self.encoder[:-2](x)
        overcluster = self.overcluster(features) if self.overcluster is not None else None
        return self.heads.all(features), overcluster

    def cluster_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Soft cluster assignment used by the clustering losses: softmax of logits / temperature."""
        return torch.softmax(logits / self.encoder[-1].temperature, dim=-1)


class BlogAutoencoder(Autoencoder):
    """The blog's network, layer for layer; 1,644,083 parameters at the default width of 10."""

    def __init__(
        self,
        bottleneck: int = 10,
        bottleneck_activation: str = "softmax",
        temperature: float = 1.0,
        activation: str = "relu",
    ):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=5),  # 4 x 24 x 24
            make_activation(activation),
            nn.Conv2d(4, 8, kernel_size=5),  # 8 x 20 x 20
            make_activation(activation),
            nn.Flatten(),
            Heads(3200, bottleneck),  # one Linear(3200, bottleneck), computed in float32
            BottleneckActivation(bottleneck_activation, temperature),
        )
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck, 400),
            make_activation(activation),
            nn.Linear(400, 4000),
            make_activation(activation),
            nn.Unflatten(1, (10, 20, 20)),
            nn.ConvTranspose2d(10, 10, kernel_size=5),  # 10 x 24 x 24
            nn.ConvTranspose2d(10, 1, kernel_size=5),  # 1 x 28 x 28
            nn.Sigmoid(),
        )


def _as_list(value: int | Sequence[int], length: int) -> list[int]:
    """One value per conv layer (the config's rules check that a list has one per entry of channels)."""
    return [int(value)] * length if isinstance(value, int) else [int(v) for v in value]


class ConvAutoencoder(Autoencoder):
    """Conv encoder (channels/kernels/strides as lists) -> dense -> bottleneck; the decoder mirrors it."""

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        kernels: int | Sequence[int] = 3,
        strides: int | Sequence[int] = (2, 2, 1),
        hidden: int | None = 128,
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.0,
        bottleneck: int = 10,
        bottleneck_activation: str = "softmax",
        temperature: float = 1.0,
        heads: int = 1,
        overcluster: int = 0,
        image_size: int = 28,
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        kernels = _as_list(kernels, len(channels))
        strides = _as_list(strides, len(channels))

        encoder: list[nn.Module] = []
        sizes = [image_size]  # spatial size before each conv, then after the last
        in_channels = 1
        for out_channels, k, s in zip(channels, kernels, strides):
            encoder += [nn.Conv2d(in_channels, out_channels, k, stride=s, padding=k // 2, bias=not batch_norm)]
            encoder += [nn.BatchNorm2d(out_channels)] if batch_norm else []
            encoder += [make_activation(activation)]
            encoder += [nn.Dropout2d(dropout)] if dropout > 0 else []
            sizes.append((sizes[-1] + 2 * (k // 2) - k) // s + 1)
            in_channels = out_channels
        flat = channels[-1] * sizes[-1] ** 2
        encoder.append(nn.Flatten())
        encoder += _dense(flat, hidden, activation, batch_norm) if hidden else []
        encoder += [Heads(hidden or flat, bottleneck, heads), BottleneckActivation(bottleneck_activation, temperature)]
        self.overcluster = LogitsLinear(hidden or flat, overcluster) if overcluster else None

        decoder: list[nn.Module] = _dense_from(bottleneck * heads, hidden, flat, activation, batch_norm)
        decoder.append(nn.Unflatten(1, (channels[-1], sizes[-1], sizes[-1])))
        targets = [1] + channels[:-1]
        for i in reversed(range(len(channels))):
            k, s = kernels[i], strides[i]
            natural = (sizes[i + 1] - 1) * s - 2 * (k // 2) + k
            decoder.append(
                nn.ConvTranspose2d(
                    channels[i], targets[i], k, stride=s, padding=k // 2, output_padding=sizes[i] - natural
                )
            )
            if i > 0:  # hidden layers get norm + activation; the output layer goes straight to sigmoid
                decoder += [nn.BatchNorm2d(targets[i])] if batch_norm else []
                decoder.append(make_activation(activation))
        decoder.append(nn.Sigmoid())
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)


class MLPAutoencoder(Autoencoder):
    """Fully connected encoder 784 -> hidden... -> bottleneck; the decoder mirrors it."""

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.0,
        bottleneck: int = 10,
        bottleneck_activation: str = "softmax",
        temperature: float = 1.0,
        heads: int = 1,
        overcluster: int = 0,
        image_size: int = 28,
    ):
        super().__init__()
        widths = [image_size * image_size] + [int(h) for h in hidden]
        encoder: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths, widths[1:]):
            encoder += _dense(w_in, w_out, activation, batch_norm)
            encoder += [nn.Dropout(dropout)] if dropout > 0 else []
        encoder += [Heads(widths[-1], bottleneck, heads), BottleneckActivation(bottleneck_activation, temperature)]
        self.overcluster = LogitsLinear(widths[-1], overcluster) if overcluster else None
        decoder: list[nn.Module] = []
        back = [bottleneck * heads] + widths[::-1]
        for w_in, w_out in zip(back[:-2], back[1:-1]):
            decoder += _dense(w_in, w_out, activation, batch_norm)
        decoder += [nn.Linear(back[-2], back[-1]), nn.Sigmoid(), nn.Unflatten(1, (1, image_size, image_size))]
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)


def _dense(w_in: int, w_out: int, activation: str, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(w_in, w_out, bias=not batch_norm)]
    layers += [nn.BatchNorm1d(w_out)] if batch_norm else []
    return layers + [make_activation(activation)]


def _dense_from(bottleneck: int, hidden: int | None, flat: int, activation: str, batch_norm: bool) -> list[nn.Module]:
    if hidden:
        return _dense(bottleneck, hidden, activation, batch_norm) + _dense(hidden, flat, activation, batch_norm)
    return _dense(bottleneck, flat, activation, batch_norm)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
