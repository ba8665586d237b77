"""The Part B UNets, block for block as SPEC.md draws them (28x28 inputs).

Shapes for hidden width D:
    x0 = ConvBlock(in -> D)            (N, D, 28, 28)
    x1 = DownBlock(D -> D)             (N, D, 14, 14)
    x2 = DownBlock(D -> 2D)            (N, 2D, 7, 7)
    u  = Unflatten(Flatten(x2))        (N, 2D, 7, 7)
    up1 = UpBlock(cat(x2, u): 4D -> D) (N, D, 14, 14)
    up2 = UpBlock(cat(x1, up1): 2D -> D)   (N, D, 28, 28)
    out = Conv2d(ConvBlock(cat(x0, up2): 2D -> D) -> in)
Conditioning (B2.1, B2.4) acts on u and up1 only: u <- c1 * u + t1, up1 <- c2 * up1 + t2.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class GELU(nn.GELU):
    """nn.GELU (exact, erf form), elementwise on any layout: the same function, computed faster.

    On a channels_last (N, C, H, W) tensor, torch's GELU and its backward take a strided path
    about twice as slow as on contiguous memory; the (N, H, W, C) permutation of such a tensor is
    contiguous, and an elementwise function does not care which view it is applied to (the
    results agree to float rounding, about 5e-7: the contiguous kernel is vectorised). On this
    project's 2-core CPU it makes a bf16 training step of the width-32 UNets about 8% faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return super().forward(x)


class Conv(nn.Sequential):
    """Conv2d(3, 1, 1) + BN + GELU: keeps the resolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_channels),
            GELU(),
        )


class DownConv(nn.Sequential):
    """Conv2d(3, 2, 1) + BN + GELU: halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
            GELU(),
        )


class UpConv(nn.Sequential):
    """ConvTranspose2d(4, 2, 1) + BN + GELU: doubles the resolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
            GELU(),
        )


class Flatten(nn.Sequential):
    """AvgPool2d(7) + GELU: 7x7 -> 1x1."""

    def __init__(self):
        super().__init__(nn.AvgPool2d(kernel_size=7), GELU())


class Unflatten(nn.Sequential):
    """ConvTranspose2d(7, 7, 0) + BN + GELU: 1x1 -> 7x7."""

    def __init__(self, in_channels: int):
        super().__init__(
            nn.ConvTranspose2d(in_channels, in_channels, kernel_size=7, stride=7, padding=0),
            nn.BatchNorm2d(in_channels),
            GELU(),
        )


class ConvBlock(nn.Sequential):
    """Conv, Conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(Conv(in_channels, out_channels), Conv(out_channels, out_channels))


class DownBlock(nn.Sequential):
    """DownConv, ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(DownConv(in_channels, out_channels), ConvBlock(out_channels, out_channels))


class UpBlock(nn.Sequential):
    """UpConv, ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(UpConv(in_channels, out_channels), ConvBlock(out_channels, out_channels))


class FCBlock(nn.Sequential):
    """Linear + GELU, Linear: embeds a scalar time or a one-hot class into a channel vector."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(
            nn.Linear(in_features, out_features),
            GELU(),
            nn.Linear(out_features, out_features),
        )


def _per_channel(vector: torch.Tensor) -> torch.Tensor:
    return vector[:, :, None, None]


class _UNetTrunk(nn.Module):
    """The shared encoder/decoder; conditioning enters as per-channel scales and shifts."""

    def __init__(self, in_channels: int, num_hiddens: int):
        super().__init__()
        d = num_hiddens
        self.in_channels = in_channels
        self.num_hiddens = num_hiddens
        self.conv_in = ConvBlock(in_channels, d)
        self.down1 = DownBlock(d, d)
        self.down2 = DownBlock(d, 2 * d)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * d)
        self.up1 = UpBlock(4 * d, d)
        self.up2 = UpBlock(2 * d, d)
        self.conv_out = ConvBlock(2 * d, d)
        self.head = nn.Conv2d(d, in_channels, kernel_size=3, stride=1, padding=1)

    def run(
        self,
        x: torch.Tensor,
        unflatten_scale: torch.Tensor | None = None,
        unflatten_shift: torch.Tensor | None = None,
        up1_scale: torch.Tensor | None = None,
        up1_shift: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x0 = self.conv_in(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        u = self.unflatten(self.flatten(x2))
        if unflatten_scale is not None:
            u = _per_channel(unflatten_scale) * u
        if unflatten_shift is not None:
            u = u + _per_channel(unflatten_shift)
        up1 = self.up1(torch.cat([x2, u], dim=1))
        if up1_scale is not None:
            up1 = _per_channel(up1_scale) * up1
        if up1_shift is not None:
            up1 = up1 + _per_channel(up1_shift)
        up2 = self.up2(torch.cat([x1, up1], dim=1))
        return self.head(self.conv_out(torch.cat([x0, up2], dim=1)))


def _as_column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) or (N, 1) -> (N, 1) in `like`'s dtype and device."""
    return values.reshape(-1, 1).to(device=like.device, dtype=like.dtype)


class UnconditionalUNet(_UNetTrunk):
    """B1: a one-step denoiser, forward(z) -> x_hat."""

    def __init__(self, in_channels: int = 1, num_hiddens: int = 128):
        super().__init__(in_channels, num_hiddens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x_hat (N, C, 28, 28), the denoised estimate of noisy digits x (N, C, 28, 28), whose clean
        part is in [0, 1] (the output is not clamped)."""
        return self.run(x)


class TimeConditionalUNet(_UNetTrunk):
    """B2.1: forward(x_t, t) -> eps_hat, with t = timestep / T in [0, 1], shaped (N,) or (N, 1)."""

    def __init__(self, in_channels: int = 1, num_hiddens: int = 64):
        super().__init__(in_channels, num_hiddens)
        self.t1 = FCBlock(1, 2 * num_hiddens)
        self.t2 = FCBlock(1, num_hiddens)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_hat (N, C, 28, 28) for x_t (N, C, 28, 28) and t (N,) or (N, 1) float in [0, 1]."""
        t = _as_column(t, x)
        return self.run(x, unflatten_shift=self.t1(t), up1_shift=self.t2(t))


class ClassConditionalUNet(_UNetTrunk):
    """B2.4: forward(x_t, t, c) -> eps_hat; c is a float one-hot (N, num_classes), a zero row
    meaning "no class" (the unconditional estimate used by classifier-free guidance)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, num_hiddens: int = 64):
        super().__init__(in_channels, num_hiddens)
        self.num_classes = num_classes
        self.t1 = FCBlock(1, 2 * num_hiddens)
        self.t2 = FCBlock(1, num_hiddens)
        self.c1 = FCBlock(num_classes, 2 * num_hiddens)
        self.c2 = FCBlock(num_classes, num_hiddens)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """eps_hat (N, C, 28, 28) for x_t (N, C, 28, 28), t (N,) or (N, 1) float in [0, 1] and
        c (N, num_classes) one-hot float, zero rows for the unconditional estimate."""
        t = _as_column(t, x)
        c = c.to(device=x.device, dtype=x.dtype)
        return self.run(
            x,
            unflatten_scale=self.c1(c),
            unflatten_shift=self.t1(t),
            up1_scale=self.c2(c),
            up1_shift=self.t2(t),
        )


def one_hot(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Integer labels (N,) -> float one-hot rows (N, num_classes); label -1 -> a zero row."""
    labels = labels.long()
    rows = torch.zeros(labels.shape[0], num_classes, device=labels.device)
    known = labels >= 0
    rows[known] = nn.functional.one_hot(labels[known], num_classes).float()
    return rows


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy in which every BatchNorm is folded into the convolution before it.

    Same function as model.eval() up to float rounding, one elementwise pass fewer per block:
    what sampling (hundreds of evaluations per image) runs. The original is left untouched."""
    folded = copy.deepcopy(model).eval()
    for block in folded.modules():
        if isinstance(block, (Conv, DownConv, UpConv, Unflatten)) and isinstance(block[1], nn.BatchNorm2d):
            conv = block[0]
            block[0] = fuse_conv_bn_eval(conv, block[1], transpose=isinstance(conv, nn.ConvTranspose2d))
            block[1] = nn.Identity()
    return folded
