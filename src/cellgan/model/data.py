"""Real cell patches as training tensors: scaling, dihedral augmentation, batches.

Patches come from the cell store as uint8 (n, 32, 32, 3). The network sees float
(B, 3, 32, 32) in [−1, 1] (x / 127.5 − 1, as the authors' ``normalized``).
"""

from __future__ import annotations

import numpy as np
import torch

from cellgan.errors import CellganError

__all__ = ["PatchError", "validate_patches", "patches_to_tensor", "dihedral", "jitter", "PatchSampler"]

#: The eight symmetries of the square: index t = 4·flip + k, a horizontal flip
#: (when flip = 1) followed by k quarter turns.
N_DIHEDRAL = 8
#: Largest shift (pixels) and the ranges of the stain-intensity gains of :func:`jitter`
#: as :class:`PatchSampler` draws them for the two views of a pair.
MAX_SHIFT = 2
GAIN_RANGE = (0.85, 1.15)
CHANNEL_GAIN_RANGE = (0.95, 1.05)


class PatchError(CellganError, ValueError):
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


def jitter(x: torch.Tensor, shifts: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Shift each image by whole pixels and scale its darkness: a new view of the same cell.

    Parameters
    ----------
    x : torch.Tensor
        (B, C, H, W) in [−1, 1] (white = 1).
    shifts : torch.Tensor
        (B, 2) integer (dx, dy); pixels entering at the border copy the border.
    gains : torch.Tensor
        (B, C) factors on the distance from white, 1 − gain·(1 − x): a stain
        that is more or less intense, with the white background unchanged.
    """
    b, _, h, w = x.shape
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0].to(x.dtype) / w
    theta[:, 1, 2] = -2 * shifts[:, 1].to(x.dtype) / h
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    return (1 - gains[:, :, None, None].to(x.dtype) * (1 - moved)).clamp_(-1, 1)


class PatchSampler:
    """Batches of real patches, a pure function of (seed, batch index).

    The stream is epoch-based like the authors' shuffled loader: epoch e visits
    its m rows in the order ``rows[default_rng((seed, e)).permutation(m)]`` (the last,
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
        i + batch_size // 2 are the same cell under two different symmetries,
        each also shifted by up to ``MAX_SHIFT`` pixels and with its stain
        intensity scaled (:func:`jitter`), so that a category that both views
        share cannot rest on orientation, position or staining strength
        (for :func:`cellgan.model.losses.pair_mutual_information_loss`).
    partners : np.ndarray or None
        With ``pairs``, int (n, k) rows of candidate partners per cell (such as
        :func:`cellgan.neighbourhood.nearest_cells`): the second view is then
        a partner drawn at random each epoch instead of the cell itself, under
        its own symmetry, shift and stain gain.
    rows : np.ndarray or None
        The patch rows the batches are drawn from (a rank's share under DDP,
        :func:`cellgan.model.distributed.rank_rows`); every row when None.
        Partners may be any row.
    device : torch.device or str
    """

    def __init__(
        self,
        patches: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        augment: bool = True,
        pairs: bool = False,
        partners: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        device="cpu",
    ):
        patches = validate_patches(patches)
        if pairs and batch_size % 2:
            raise PatchError(f"pairs need an even batch size, got {batch_size}")
        if partners is not None:
            partners = _validate_partners(partners, len(patches), pairs=pairs)
        rows = np.arange(len(patches)) if rows is None else _validate_rows(rows, len(patches))
        self.cells_per_batch = batch_size // 2 if pairs else batch_size
        if len(rows) < self.cells_per_batch:
            raise PatchError(f"only {len(rows)} patches, fewer than the {self.cells_per_batch} cells a batch needs")
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.pairs = pairs
        self.device = torch.device(device)
        self.batches_per_epoch = len(rows) // self.cells_per_batch
        self._data = torch.from_numpy(np.ascontiguousarray(patches)).to(self.device)
        self._rows = torch.from_numpy(rows.astype(np.int64)).to(self.device)
        self._partners = partners
        self._epoch_cache: tuple | None = None

    def __len__(self) -> int:
        return len(self._data)

    def _epoch(self, epoch: int) -> tuple[torch.Tensor, ...]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng((self.seed, epoch))
            order = self._rows[torch.from_numpy(rng.permutation(len(self._rows))).to(self.device)]
            first = rng.integers(0, N_DIHEDRAL, len(self._data))
            second = (first + rng.integers(1, N_DIHEDRAL, len(self._data))) % N_DIHEDRAL
            transforms = torch.from_numpy(np.stack([first, second], axis=1)).to(self.device)
            n = len(self._data)
            shifts = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, (n, 2, 2))
            gains = rng.uniform(*GAIN_RANGE, (n, 2, 1)) * rng.uniform(*CHANNEL_GAIN_RANGE, (n, 2, 3))
            views = (torch.from_numpy(shifts).to(self.device), torch.from_numpy(gains).float().to(self.device))
            partner = np.arange(n)
            if self._partners is not None:
                partner = self._partners[partner, rng.integers(0, self._partners.shape[1], n)]
            self._epoch_cache = (epoch, order, transforms, *views, torch.from_numpy(partner).to(self.device))
        return self._epoch_cache[1:]

    def batch(self, index: int) -> torch.Tensor:
        """The ``index``-th batch of the stream: float32 (B, 3, 32, 32) in [−1, 1]."""
        rows, partner_rows, views, shifts, gains = self._draw(index)
        x = self._patches(rows)
        if self.pairs:
            second = x if self._partners is None else self._patches(partner_rows)
            pair = [jitter(dihedral(cells, views[:, v]), shifts[:, v], gains[:, v]) for v, cells in enumerate((x, second))]
            return torch.cat(pair)
        return dihedral(x, views[:, 0]) if self.augment else x

    def cells(self, index: int) -> torch.Tensor:
        """The patch row of every image of ``batch(index)``: int64 (B,)."""
        rows, partner_rows, *_ = self._draw(index)
        return torch.cat([rows, partner_rows]) if self.pairs else rows

    def _draw(self, index: int) -> tuple[torch.Tensor, ...]:
        """Rows, partner rows, symmetries (cells, 2), shifts and gains of the cells of batch ``index``."""
        epoch, position = divmod(index, self.batches_per_epoch)
        order, transforms, shifts, gains, partner = self._epoch(epoch)
        rows = order[position * self.cells_per_batch : (position + 1) * self.cells_per_batch]
        picked = (t.index_select(0, rows) for t in (partner, transforms, shifts, gains))
        return rows, *picked

    def _patches(self, rows: torch.Tensor) -> torch.Tensor:
        return patches_to_tensor(self._data.index_select(0, rows), device=self.device)


def _validate_rows(rows, n: int) -> np.ndarray:
    """Return ``rows`` as int64 (m,) of distinct rows in [0, n), else raise PatchError."""
    rows = np.asarray(rows)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or len(np.unique(rows)) != len(rows):
        raise PatchError(f"rows must be distinct integers (m,), got {rows.dtype} {rows.shape}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise PatchError(f"rows must be in [0, {n}), got values from {rows.min()} to {rows.max()}")
    return rows.astype(np.int64)


def _validate_partners(partners, n: int, *, pairs: bool) -> np.ndarray:
    """Return ``partners`` as int64 (n, k) with every entry a row in [0, n), else raise PatchError."""
    if not pairs:
        raise PatchError("partners only apply to pairs (pairs=True)")
    partners = np.asarray(partners)
    if partners.ndim != 2 or len(partners) != n or partners.shape[1] < 1 or not np.issubdtype(partners.dtype, np.integer):
        raise PatchError(f"partners must be integer ({n}, k) with k ≥ 1, got {partners.dtype} {partners.shape}")
    if partners.min() < 0 or partners.max() >= n:
        raise PatchError(f"partners must be rows in [0, {n}), got values from {partners.min()} to {partners.max()}")
    return partners.astype(np.int64)
