"""The reference convolutional autoencoder, built from config values.

Encoder: a stack of unpadded convolutions, flattened into a linear code. Decoder: a linear layer back
to the stack's output shape, then the stack's transposed mirror. With the reference values
(3x32x32, code 128, channels 24/32/48, kernel 5) it has exactly 5,053,491 parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation_class(name: str) -> type[nn.Module]:
    """The activation module class for a config name such as ``"relu"``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class ConvStack(nn.Module):
    """Unpadded stride-1 convolutions (or their transposes), each but maybe the last activated.

    ``channels=(3, 24, 32, 48)`` makes three layers 3->24->32->48. Input (B, C0, H, W) gives
    (B, C_last, H -/+ n*(k-1), W -/+ n*(k-1)) for plain / transposed stacks.
    """

    def __init__(
        self,
        channels: Sequence[int],
        kernel_size: int,
        activation: str,
        act_last_layer: bool = True,
        transposed: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"model.channels needs at least one layer, got {list(channels)}")
        if kernel_size < 1:
            raise ValueError(f"model.kernel_size must be >= 1, got {kernel_size}")
        self.channels = tuple(int(c) for c in channels)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.act_last_layer = act_last_layer
        self.transposed = transposed
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        act = activation_class(activation)
        layers: list[nn.Module] = []
        n = len(self.channels) - 1
        for i, (c_in, c_out) in enumerate(zip(self.channels[:-1], self.channels[1:], strict=True)):
            layers.append(conv(c_in, c_out, self.kernel_size))
            if i < n - 1 or act_last_layer:
                layers.append(act())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C0, H, W) -> (B, C_last, H', W')."""
        return self.layers(x)

    def get_output_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """The (C, H, W) this stack makes of a (C, H, W) input, without running it."""
        c, h, w = (int(s) for s in shape)
        if c != self.channels[0]:
            raise ValueError(
                f"the stack takes {self.channels[0]} channels, got shape {list(shape)}"
            )
        grow = (self.kernel_size - 1) * (len(self.channels) - 1)
        if not self.transposed:
            grow = -grow
        if h + grow < 1 or w + grow < 1:
            raise ValueError(
                f"model.shape {list(shape)} is too small for {len(self.channels) - 1} unpadded "
                f"convolutions of model.kernel_size={self.kernel_size}"
            )
        return self.channels[-1], h + grow, w + grow

    def create_transposed(self, act_last_layer: bool = False) -> ConvStack:
        """The mirror stack: transposed convolutions with the channels reversed."""
        return ConvStack(
            channels=self.channels[::-1],
            kernel_size=self.kernel_size,
            activation=self.activation,
            act_last_layer=act_last_layer,
            transposed=not self.transposed,
        )


class Reshape(nn.Module):
    """(B, prod(shape)) -> (B, *shape)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, code_size): a ConvStack, flattened, then one linear layer."""

    def __init__(
        self,
        shape: Sequence[int],
        code_size: int,
        channels: Sequence[int],
        kernel_size: int,
        activation: str,
    ) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.convolution = ConvStack((self.shape[0], *channels), kernel_size, activation)
        self.encoded_shape = self.convolution.get_output_shape(self.shape)
        self.linear = nn.Linear(math.prod(self.encoded_shape), code_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convolution(x).flatten(1))


class ConvAutoencoder(nn.Module):
    """The reference encoder-decoder.

    ``forward``: (B, C, H, W) -> (B, C, H, W), unbounded (no final activation, as the reference).
    ``encoder``: (B, C, H, W) -> (B, code_size); ``decoder``: (B, code_size) -> (B, C, H, W).
    """

    def __init__(
        self,
        shape: Sequence[int] = (3, 32, 32),
        code_size: int = 128,
        channels: Sequence[int] = (24, 32, 48),
        kernel_size: int = 5,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if len(shape) != 3 or any(int(s) < 1 for s in shape):
            raise ValueError(f"model.shape must be [channels, height, width], got {list(shape)}")
        if code_size < 1:
            raise ValueError(f"model.code_size must be >= 1, got {code_size}")
        if len(channels) < 1:
            raise ValueError("model.channels needs at least one layer, got []")
        self.shape = tuple(int(s) for s in shape)
        self.encoder = ConvEncoder(self.shape, code_size, channels, kernel_size, activation)
        encoded = self.encoder.encoded_shape
        self.decoder = nn.Sequential(
            nn.Linear(code_size, math.prod(encoded)),
            Reshape(encoded),
            self.encoder.convolution.create_transposed(act_last_layer=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W) -> the (B, C, H, W) reconstruction and the (B, code_size) code."""
        code = self.encoder(x)
        return self.decoder(code), code


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ConvAutoencoder", "ConvEncoder", "ConvStack", "Reshape", "count_parameters"]
