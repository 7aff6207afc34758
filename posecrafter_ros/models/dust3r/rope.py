"""2D rotary position embedding (CroCo's RoPE2D, pure torch).

The head dimension is split in two halves: the first half is rotated by the token's row
(y) index, the second by its column (x) index. Inside each half the classic 1D RoPE layout
is used: frequencies `F0 / base**(2i/D)`, cos/sin of `cat(freqs, freqs)`, and
`rotate_half(x) = cat(-x2, x1)`.
"""

from __future__ import annotations

import torch
from torch import nn


class RoPE2D(nn.Module):
    """Rotary embedding over (row, column) token positions; no parameters."""

    def __init__(self, base: float = 100.0, f0: float = 1.0):
        super().__init__()
        self.base = base
        self.f0 = f0
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _cos_sin(
        self, dim: int, length: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin tables [length x dim] for positions 0..length-1 (computed in float32)."""
        key = (dim, length, device, dtype)
        if key not in self._cache:
            exponents = torch.arange(0, dim, 2, device=device).float() / dim
            inv_freq = self.f0 / (self.base**exponents)
            positions = torch.arange(length, device=device, dtype=inv_freq.dtype)
            angles = torch.einsum("i,j->ij", positions, inv_freq).to(dtype)
            angles = torch.cat((angles, angles), dim=-1)
            self._cache[key] = (angles.cos(), angles.sin())
        return self._cache[key]

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=-1)
        return torch.cat((-second, first), dim=-1)

    def _rotate(
        self, x: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """x: [B x heads x N x D], pos: [B x N] int64."""
        cos_at = nn.functional.embedding(pos, cos)[:, None]
        sin_at = nn.functional.embedding(pos, sin)[:, None]
        return x * cos_at + self._rotate_half(x) * sin_at

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """tokens: [B x heads x N x head_dim], positions: [B x N x 2] (row, col) int64."""
        half = tokens.shape[-1] // 2
        if tokens.shape[-1] % 2:
            raise ValueError("RoPE2D needs an even head dimension")
        cos, sin = self._cos_sin(half, int(positions.max()) + 1, tokens.device, tokens.dtype)
        rows, cols = tokens.chunk(2, dim=-1)
        rows = self._rotate(rows, positions[..., 0], cos, sin)
        cols = self._rotate(cols, positions[..., 1], cos, sin)
        return torch.cat((rows, cols), dim=-1)
