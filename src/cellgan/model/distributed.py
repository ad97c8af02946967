"""Training on several processes with PyTorch DistributedDataParallel (DDP), under ``torchrun``.

``torchrun --nproc_per_node N -m cellgan train ...`` starts N processes (ranks) and
tells each its place in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`process_group` joins
them (gloo on the CPU, NCCL on CUDA, one GPU per local rank). Without those variables,
or with one rank, nothing here runs and training is the plain single-process loop.

Each rank draws its real batches from its own disjoint share of the patch rows
(:func:`rank_rows`) and its generated batches from its own random stream, so that N
ranks train on N × ``batch_size`` real and N × ``batch_size`` generated cells per
critic update; DDP averages the gradients, so every rank holds the same weights after
every update. Rank 0 alone writes the model directory.

Which parts need the other ranks:

- The gradient penalty and Q's terms are per-sample; the penalty's double backward runs
  inside the critic step's one backward, through the DDP critic, and its gradient is
  averaged with the rest (tests/test_distributed.py checks it).
- Every critic update is its own optimiser step, so every backward is synced (no
  ``no_sync``: there is no gradient accumulation to save communication on). DDP waits
  for a gradient of every parameter it wraps, so the critic's loss holds Q's logits with
  weight 0 (the paper's recipe uses Q's head only in the Q step): a zero gradient, which
  Adam turns into no move; the self-label warm-up holds the critic's score likewise.
- The generator step takes two gradients of the generator's weights from one batch,
  ∂L_G for the generator's Adam and ∂L_MI for Q's (:func:`generator_gradients`). DDP
  averages only gradients left in ``.grad`` by a backward that follows a forward through
  the wrapper, so under DDP each is one forward and backward through its own wrapper.
- The generator's batch norm normalises each rank's batch by its own statistics (the
  batch of ``batch_size`` cells it was built for, as in single-process training); DDP
  broadcasts rank 0's running statistics. ``SyncBatchNorm`` would normalise over all
  ranks' cells, a batch N times larger than the recipe's, and runs on GPUs only.
- Self-labels (a k-means of the whole table) are computed once, on rank 0, and
  broadcast (:func:`from_rank_zero`).

Under ``torchrun ... -m cellgan run`` the ranks other than 0 wait for rank 0's stages
before training (:func:`waiting_group`, :func:`send_from_rank_zero`): its segmentation
can take far longer than torch's collectives wait by default (30 minutes).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cellgan.errors import CellganError
from cellgan.model.losses import generator_loss, mutual_information_loss

__all__ = [
    "DistributedError",
    "Ranks",
    "DistributedModels",
    "ranks_from_env",
    "process_group",
    "current_ranks",
    "rank_rows",
    "wrap_models",
    "generator_gradients",
    "from_rank_zero",
    "rank_zero_decides",
    "mean_over_ranks",
    "barrier",
    "waiting_group",
    "send_from_rank_zero",
]

#: How long the other ranks of a ``cellgan run`` wait for rank 0's segmentation (a study's slides
#: can take days); the training's own collectives keep torch's default timeout.
RANK_ZERO_WAIT = datetime.timedelta(days=7)


class DistributedError(CellganError, ValueError):
    """torchrun's environment variables are malformed or inconsistent."""


class Ranks(NamedTuple):
    """This process's place among the training processes."""

    rank: int = 0  #: among all processes (0 writes the model directory)
    world_size: int = 1  #: number of processes
    local_rank: int = 0  #: among the processes of this machine (its GPU)
    local_world_size: int = 1  #: processes on this machine (they share its CPU cores)

    @property
    def leads(self) -> bool:
        """Whether this process writes checkpoints, logs and samples (rank 0)."""
        return self.rank == 0


class DistributedModels(NamedTuple):
    """The DDP wrappers the training step runs through, one per kind of backward."""

    ranks: Ranks
    critic: DistributedDataParallel  #: the critic updates: D's loss, the penalty, Q's terms on the critic side
    generator: DistributedDataParallel  #: L_G, moving the generator
    information: DistributedDataParallel  #: L_MI, moving the parameters of Q's optimiser


def ranks_from_env(environ=None) -> Ranks:
    """This process's :class:`Ranks` from torchrun's variables (one rank when they are absent).

    Raises
    ------
    DistributedError
        A variable that is not an integer, or ranks outside their world.
    """
    environ = os.environ if environ is None else environ
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    try:
        rank, world, local_rank, local_world = (int(environ.get(name, default)) for name, default in zip(names, Ranks()))
    except ValueError as err:
        raise DistributedError(f"torchrun environment: {err}") from None
    if "LOCAL_WORLD_SIZE" not in environ:
        local_world = world
    if not (0 <= rank < world and 0 <= local_rank < local_world <= world):
        raise DistributedError(
            f"torchrun environment: RANK {rank}, WORLD_SIZE {world}, LOCAL_RANK {local_rank}, "
            f"LOCAL_WORLD_SIZE {local_world} are inconsistent"
        )
    return Ranks(rank, world, local_rank, local_world)


@contextmanager
def process_group(device: torch.device, *, share_cpu_threads: bool = True) -> Iterator[tuple[Ranks, torch.device]]:
    """Join the training processes for the duration of the block; yield (ranks, this rank's device).

    With one rank this does nothing and yields ``device`` unchanged. Otherwise it
    initialises the default process group from torchrun's variables: gloo on the CPU,
    where the ranks of a machine share its threads (with ``share_cpu_threads``, torch's
    thread count divided by ``LOCAL_WORLD_SIZE``), NCCL on CUDA, where rank r of a
    machine uses GPU r.
    """
    ranks = ranks_from_env()
    if ranks.world_size == 1:
        yield ranks, device
        return
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {ranks.local_rank}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    elif share_cpu_threads:
        torch.set_num_threads(max(1, torch.get_num_threads() // ranks.local_world_size))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.world_size)
    try:
        yield ranks, device
    finally:
        dist.destroy_process_group()


def current_ranks() -> Ranks | None:
    """The :class:`Ranks` of the joined process group, or None outside one (or with one rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return ranks_from_env()._replace(rank=dist.get_rank(), world_size=dist.get_world_size())


def rank_rows(n: int, ranks: Ranks) -> np.ndarray:
    """The patch rows rank r trains on: r, r + N, r + 2N, … (int64).

    Disjoint, together every row, fixed by (n, N) alone; interleaved rather than in
    blocks so that every rank sees cells of every image (the store's rows run image
    by image).
    """
    return np.arange(ranks.rank, n, ranks.world_size, dtype=np.int64)


class _InformationPath(nn.Module):
    """Q(c | G(z, c)): the logits L_MI is computed from, over the parameters Q's optimiser moves.

    Those are the generator's and, on a shared trunk, the critic's trunk and Q head;
    with Q's own trunk (learnt in the critic step) only the generator's, so the critic
    is then held outside the module's parameters.
    """

    def __init__(self, generator: nn.Module, critic: nn.Module):
        super().__init__()
        self.generator = generator
        if critic.q_trunk is None:
            self.trunk, self.q_head = critic.trunk, critic.q_head
        self._critic = (critic,)

    def forward(self, z: torch.Tensor, c_onehot: torch.Tensor) -> torch.Tensor:
        return self._critic[0].q(self.generator(z, c_onehot))[0]


def wrap_models(generator: nn.Module, critic: nn.Module, ranks: Ranks, device: torch.device) -> DistributedModels:
    """The DDP wrappers of one training run. Collective: each wrapper starts by sending rank 0's weights to every rank."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedModels(
        ranks,
        critic=DistributedDataParallel(critic, device_ids=ids),
        generator=DistributedDataParallel(generator, device_ids=ids),
        information=DistributedDataParallel(_InformationPath(generator, critic), device_ids=ids),
    )


def generator_gradients(
    models: DistributedModels,
    z: torch.Tensor,
    codes: torch.Tensor,
    *,
    g_params: list[torch.Tensor],
    q_params: list[torch.Tensor],
    lambda_mi: float,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """(L_G, L_MI, ∂L_G/∂g_params, ∂L_MI/∂q_params) of one generated batch, averaged over the ranks.

    The DDP form of the single-process step's two ``torch.autograd.grad`` calls (which
    DDP does not average): one forward and backward per loss, each through its
    wrapper, with ``backward(inputs=...)`` leaving every other gradient untouched. The
    generator runs twice on the same (z, c), so its batch norm's running statistics
    take one more update per step than on one process (they are not used in training).
    """
    critic = models.critic.module
    c_onehot = nn.functional.one_hot(codes, critic.categories).float()
    loss_g = generator_loss(critic.score(models.generator(z, c_onehot)))
    grads_g = _gradients(loss_g, g_params)
    loss_mi = mutual_information_loss(models.information(z, c_onehot), codes, weight=lambda_mi)
    grads_q = _gradients(loss_mi, q_params)
    return loss_g, loss_mi, grads_g, grads_q


def _gradients(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Backward ``loss`` into ``params`` alone; return their (averaged) gradients and clear them."""
    for p in params:
        p.grad = None
    loss.backward(inputs=params)
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    return grads


def from_rank_zero(compute: Callable[[], torch.Tensor], like: torch.Tensor, ranks: Ranks | None) -> torch.Tensor:
    """``compute()`` run on rank 0 alone and sent to every rank (``like`` gives the others its shape, dtype, device)."""
    if ranks is None:
        return compute()
    tensor = compute() if ranks.leads else like
    dist.broadcast(tensor, src=0)
    return tensor


def rank_zero_decides(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (whether to train on: the minute budget is rank 0's clock)."""
    tensor = torch.tensor([int(flag)], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def mean_over_ranks(row: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value of a log row averaged over the ranks (the shares then cover every rank's cells)."""
    values = torch.tensor(list(row.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(row, (values / dist.get_world_size()).tolist()))


def barrier() -> None:
    """Wait for every rank."""
    dist.barrier()


def waiting_group() -> dist.ProcessGroup:
    """A gloo group of every rank whose collectives wait up to :data:`RANK_ZERO_WAIT`.

    Collective: every rank calls it, at the same point. Gloo whatever the training's
    backend, so that what it sends stays on the CPU.
    """
    return dist.new_group(backend="gloo", timeout=RANK_ZERO_WAIT)


def send_from_rank_zero(value: int, group: dist.ProcessGroup) -> int:
    """Rank 0's ``value`` on every rank, through ``group`` (:func:`waiting_group`); the others' is ignored."""
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.broadcast(tensor, src=0, group=group)
    return int(tensor.item())
