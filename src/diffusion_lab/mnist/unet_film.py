"""A time-conditioned UNet for Part B's graduate question, "a better time-conditioned only UNet":
the course's trunk (same widths, same resolutions, same skip connections), with the time entering
every convolution instead of two places.

Shapes for hidden width D, as the course's UNet (mnist/unet.py):
    x0 (N, D, 28, 28) -> x1 (N, D, 14, 14) -> x2 (N, 2D, 7, 7) -> u (N, 2D, 7, 7) -> up1 (N, D, 14, 14)
    -> up2 (N, D, 28, 28) -> out (N, C, 28, 28)
Changes, each a standard one in diffusion UNets (Ho et al. 2020; Dhariwal and Nichol 2021):
    - t is embedded with sinusoids of 16 frequencies and a two-layer MLP (4D features), not a
      two-layer MLP of the scalar alone;
    - every Conv + BN + GELU gets a FiLM of that embedding after its norm: x <- x (1 + s(t)) + b(t),
      s and b initialised at zero, so the untrained network is the course's trunk;
    - optionally, one self-attention layer over the 7 x 7 bottleneck's 49 positions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffusion_lab.mnist.unet import GELU


def sinusoids(t: torch.Tensor, frequencies: int = 16) -> torch.Tensor:
    """(N, 2 * frequencies) features [sin, cos] of t (N, 1) in [0, 1], periods from 1 down to 1/1000."""
    scales = torch.exp(torch.linspace(0.0, math.log(1000.0), frequencies, device=t.device, dtype=t.dtype))
    angles = 2 * math.pi * t * scales
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class TimeEmbedding(nn.Module):
    def __init__(self, features: int, frequencies: int = 16):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(2 * frequencies, features), GELU(), nn.Linear(features, features))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoids(t, self.frequencies))


def zero_film(embedding: int, channels: int) -> nn.Linear:
    """The embedding -> (scale, shift) map of `channels` channels, at zero: a block starts unmodulated."""
    film = nn.Linear(embedding, 2 * channels)
    nn.init.zeros_(film.weight)
    nn.init.zeros_(film.bias)
    return film


class FiLMConv(nn.Module):
    """conv -> BN -> x (1 + s(emb)) + b(emb) -> GELU; conv is 3x3 same, 3x3 stride 2, or 4x4 transposed stride 2."""

    def __init__(self, in_channels: int, out_channels: int, embedding: int, kind: str = "same"):
        super().__init__()
        if kind == "same":
            self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        elif kind == "down":
            self.conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        else:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.film = zero_film(embedding, out_channels)
        self.act = GELU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        return self.act(self.norm(self.conv(x)) * (1 + scale) + shift)


class FiLMBlock(nn.Module):
    """An optional resolution change, then two same-size FiLMConvs (the course's ConvBlock)."""

    def __init__(self, in_channels: int, out_channels: int, embedding: int, kind: str | None = None):
        super().__init__()
        self.change = None if kind is None else FiLMConv(in_channels, out_channels, embedding, kind)
        first_in = in_channels if kind is None else out_channels
        self.first = FiLMConv(first_in, out_channels, embedding)
        self.second = FiLMConv(out_channels, out_channels, embedding)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.change is not None:
            x = self.change(x, emb)
        return self.second(self.first(x, emb), emb)


class Bottleneck(nn.Module):
    """The course's Flatten/Unflatten (7x7 -> 1x1 -> 7x7), then optionally self-attention over 7x7."""

    def __init__(self, channels: int, embedding: int, attention: bool):
        super().__init__()
        self.pool = nn.Sequential(nn.AvgPool2d(7), GELU())
        self.unflatten = nn.ConvTranspose2d(channels, channels, 7, 7, 0)
        self.norm = nn.BatchNorm2d(channels)
        self.film = zero_film(embedding, channels)
        self.act = GELU()
        self.attention = nn.MultiheadAttention(channels, num_heads=4, batch_first=True) if attention else None
        self.attention_norm = nn.LayerNorm(channels) if attention else None

    def forward(self, x2: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        u = self.act(self.norm(self.unflatten(self.pool(x2))) * (1 + scale) + shift)
        if self.attention is None:
            return u
        n, c, h, w = u.shape
        tokens = u.flatten(2).transpose(1, 2)
        normed = self.attention_norm(tokens)
        tokens = tokens + self.attention(normed, normed, normed, need_weights=False)[0]
        return tokens.transpose(1, 2).reshape(n, c, h, w)


class TimeFiLMUNet(nn.Module):
    """forward(x_t, t) -> eps_hat (or velocity), t = timestep / T in [0, 1] shaped (N,) or (N, 1);
    x_t (N, C, 28, 28)."""

    def __init__(self, in_channels: int = 1, num_hiddens: int = 32, attention: bool = False):
        super().__init__()
        d, e = num_hiddens, 4 * num_hiddens
        self.in_channels, self.num_hiddens = in_channels, num_hiddens
        self.embed = TimeEmbedding(e)
        self.conv_in = FiLMBlock(in_channels, d, e)
        self.down1 = FiLMBlock(d, d, e, "down")
        self.down2 = FiLMBlock(d, 2 * d, e, "down")
        self.bottleneck = Bottleneck(2 * d, e, attention)
        self.up1 = FiLMBlock(4 * d, d, e, "up")
        self.up2 = FiLMBlock(2 * d, d, e, "up")
        self.conv_out = FiLMBlock(2 * d, d, e)
        self.head = nn.Conv2d(d, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.embed(t.reshape(-1, 1).to(device=x.device, dtype=x.dtype))
        x0 = self.conv_in(x, emb)
        x1 = self.down1(x0, emb)
        x2 = self.down2(x1, emb)
        u = self.bottleneck(x2, emb)
        up1 = self.up1(torch.cat([x2, u], dim=1), emb)
        up2 = self.up2(torch.cat([x1, up1], dim=1), emb)
        return self.head(self.conv_out(torch.cat([x0, up2], dim=1), emb))
