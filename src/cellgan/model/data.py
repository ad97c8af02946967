"""Real cell patches as training tensors: scaling, dihedral augmentation, batches.

Patches come from the cell store as uint8 (n, 32, 32, 3). The network sees float
(B, 3, 32, 32) in [−1, 1] (x / 127.5 − 1, as the authors' ``normalized``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PatchError", "validate_patches", "patches_to_tensor", "dihedral", "PatchSampler"]

#: The eight symmetries of the square: index t = 4·flip + k, a horizontal flip
#: (when flip = 1) followed by k quarter turns.
N_DIHEDRAL = 8


class PatchError(ValueError):
    """Patches that cannot be trained on (wrong dtype, shape or too few)."""


def validate_patches(patches: np.ndarray, *, source: str = "patches") -> np.ndarray:
    """Return ``patches`` if it is uint8 (n, 32, 32, 3) with n ≥ 1, else raise PatchError."""
    patches = np.asarray(patches)
    if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[1:] != (32, 32, 3):
        raise PatchError(f"{source}: expected uint8 patches of shape (n, 32, 32, 3), got {patches.dtype} {patches.shape}")
    if len(patches) == 0:
        raise PatchError(f"{source}: no patches")
    return patches


def patches_to_tensor(patches, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (n, 32, 32, 3) array or tensor → float32 (n, 3, 32, 32) in [−1, 1] on ``device``."""
    x = torch.as_tensor(patches).to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def dihedral(x: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Apply symmetry ``transforms[i]`` (0–7, see ``N_DIHEDRAL``) to image ``x[i]`` (B, C, H, W).

    Cells have no preferred orientation, so the four flips of the authors' code
    plus the quarter turns are label-preserving augmentations.
    """
    out = torch.empty_like(x)
    for t in range(N_DIHEDRAL):
        idx = (transforms == t).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        part = x.index_select(0, idx)
        if t >= 4:
            part = part.flip(3)
        out[idx] = torch.rot90(part, t % 4, dims=(2, 3))
    return out


class PatchSampler:
    """Batches of real patches, a pure function of (seed, batch index).

    The stream is epoch-based like the authors' shuffled loader: epoch e visits
    the patches in the order ``default_rng((seed, e)).permutation(n)`` (the last,
    incomplete batch dropped), each patch with a random symmetry from the same
    source. Because batch i depends only on i, a resumed run sees exactly the
    batches the uninterrupted run would have seen.

    Parameters
    ----------
    patches : np.ndarray
        uint8 (n, 32, 32, 3), n ≥ ``batch_size``; kept on ``device`` as uint8.
    batch_size : int
    seed : int
    augment : bool
        Apply a random symmetry of the square to every patch.
    pairs : bool
        Make every batch two views of ``batch_size // 2`` cells: rows i and
        i + batch_size // 2 are the same cell under two different symmetries
        (for :func:`cellgan.model.losses.pair_mutual_information_loss`).
    device : torch.device or str
    """

    def __init__(
        self, patches: np.ndarray, *, batch_size: int, seed: int, augment: bool = True, pairs: bool = False, device="cpu"
    ):
        patches = validate_patches(patches)
        if pairs and batch_size % 2:
            raise PatchError(f"pairs need an even batch size, got {batch_size}")
        self.cells_per_batch = batch_size // 2 if pairs else batch_size
        if len(patches) < self.cells_per_batch:
            raise PatchError(f"only {len(patches)} patches, fewer than the {self.cells_per_batch} cells a batch needs")
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.pairs = pairs
        self.device = torch.device(device)
        self.batches_per_epoch = len(patches) // self.cells_per_batch
        self._data = torch.from_numpy(np.ascontiguousarray(patches)).to(self.device)
        self._epoch_cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self._data)

    def _epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng((self.seed, epoch))
            order = torch.from_numpy(rng.permutation(len(self._data))).to(self.device)
            first = rng.integers(0, N_DIHEDRAL, len(self._data))
            second = (first + rng.integers(1, N_DIHEDRAL, len(self._data))) % N_DIHEDRAL
            transforms = torch.from_numpy(np.stack([first, second], axis=1)).to(self.device)
            self._epoch_cache = (epoch, order, transforms)
        return self._epoch_cache[1], self._epoch_cache[2]

    def batch(self, index: int) -> torch.Tensor:
        """The ``index``-th batch of the stream: float32 (B, 3, 32, 32) in [−1, 1]."""
        epoch, position = divmod(index, self.batches_per_epoch)
        order, transforms = self._epoch(epoch)
        rows = order[position * self.cells_per_batch : (position + 1) * self.cells_per_batch]
        x = patches_to_tensor(self._data.index_select(0, rows), device=self.device)
        views = transforms.index_select(0, rows)  # (cells, 2): two different symmetries per cell
        if self.pairs:
            return torch.cat([dihedral(x, views[:, 0]), dihedral(x, views[:, 1])])
        return dihedral(x, views[:, 0]) if self.augment else x
