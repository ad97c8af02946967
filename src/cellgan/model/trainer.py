"""Training the InfoGAN-style WGAN-GP of Hu et al. 2019 on real cell patches.

One *step* (generator iteration) is ``critic_steps`` critic updates, each on a new
real batch, then one generator update and one Q update from the same generated
batch, the schedule of Hu et al. 2019. Three Adam optimisers as in the authors' code:
critic (trunk + score head), generator (L_G), and Q (L_MI, updating the
generator, the critic trunk and the Q head). With ``separate_q`` Q has its own
trunk, trained in the critic step on the generated half of the batch (L_MI) and
on the real half (the optional real-cell terms); the Q step then moves only
the generator.

Every random draw of step s comes from a generator seeded by (seed, s) and the
real batches are a pure function of (seed, batch index) (:class:`PatchSampler`),
so a run resumed from the checkpoint at step s repeats the uninterrupted run
exactly (bit for bit on the CPU).

Under ``torchrun`` the same loop runs on every rank with DDP
(:mod:`cellgan.model.distributed`): rank r draws from its share of the patches and
from the stream of (seed, s, r), and only rank 0 writes to the model directory.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cellgan.device import resolve_device
from cellgan.io.files import atomic_write, remove_temporaries
from cellgan.io.lock import folder_lock
from cellgan.model import distributed
from cellgan.model.checkpoint import (
    CONFIG_NAME,
    META_NAME,
    CheckpointError,
    load_checkpoint,
    load_model_tensors,
    load_optimizer_tensors,
    read_config,
    save_training_state,
    write_config,
)
from cellgan.model.config import ConfigError, TrainConfig
from cellgan.model.critic import Critic
from cellgan.model.data import PatchSampler
from cellgan.model.generator import Generator
from cellgan.model.guard import StopSignals, TrainingDiverged, lowered_scale, non_finite, set_learning_rates
from cellgan.model.losses import (
    critic_wasserstein_loss,
    generator_loss,
    gradient_penalty,
    mutual_information_loss,
    pair_mutual_information_loss,
)
from cellgan.model.self_labels import neighbourhood_clusters
from cellgan.neighbourhood import PLACE_FEATURES, nearest_cells, place_description

__all__ = [
    "TrainResult",
    "TrainedModel",
    "build_models",
    "build_optimizers",
    "train",
    "load_trained",
    "sample_grid",
    "read_log",
    "LOG_NAME",
]

LOG_NAME = "log.csv"
#: The step of the first checkpoint after the one a fresh run saves before training.
FIRST_CHECKPOINT_STEP = 10
SAMPLE_COLUMNS = 8  #: fixed noise vectors (columns) of the sample grid
#: ``log.csv`` columns averaged over a step's critic updates. With ``separate_q``,
#: ``critic_loss`` and ``critic_grad_norm`` include Q's losses and its own trunk.
CRITIC_LOG_COLUMNS = (
    "critic_loss",
    "wasserstein",
    "gradient_penalty",
    "critic_grad_norm",
    "pair_loss",
    "self_label_loss",
)


class TrainResult(NamedTuple):
    """What :func:`train` did."""

    model_dir: Path
    step: int  #: generator iterations done in total (resumed runs included)
    elapsed_seconds: float  #: training seconds in total (resumed runs included)
    stopped_by: str  #: "iterations" or "minutes"


class TrainedModel(NamedTuple):
    """A trained model in evaluation mode, as :func:`load_trained` returns it."""

    generator: Generator
    critic: Critic
    config: TrainConfig


def build_models(config: TrainConfig, device: torch.device | str = "cpu") -> tuple[Generator, Critic]:
    """The generator and critic of ``config``, initialised from its seed, on ``device``.

    The convolution weights are stored channels-last, which makes a training step
    15–25 % faster on the CPU (oneDNN's preferred layout); the results are the
    same up to float rounding.
    """
    generator = Generator(categories=config.categories, noise_dim=config.noise_dim, width=config.width, seed=config.seed)
    critic = Critic(
        categories=config.categories,
        width=config.width,
        seed=config.seed + 1,
        separate_q=config.separate_q,
        place_features=PLACE_FEATURES if config.q_reads_place else 0,
    )
    layout = dict(memory_format=torch.channels_last)
    return generator.to(device, **layout), critic.to(device, **layout)


def build_optimizers(generator: Generator, critic: Critic, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """The three Adam optimisers of the authors' code, keyed "critic", "generator", "q".

    The critic optimiser holds the Q head too, so that the terms on real cells
    (pair, self-labels) can update it; Adam skips the head while it has no gradient. With ``separate_q`` it holds
    Q's own trunk as well, which then learns every one of Q's losses there (one
    Adam), and the "q" optimiser moves only the generator.
    """
    rates, adam = learning_rates(config), dict(betas=config.betas)
    shared_q = [*critic.trunk.parameters(), *critic.q_head.parameters()] if critic.q_trunk is None else []
    return {
        "critic": torch.optim.Adam(critic.parameters(), lr=rates["critic"], **adam),
        "generator": torch.optim.Adam(generator.parameters(), lr=rates["generator"], **adam),
        "q": torch.optim.Adam([*generator.parameters(), *shared_q], lr=rates["q"], **adam),
    }


def learning_rates(config: TrainConfig) -> dict[str, float]:
    """The recipe's learning rate of each optimiser of :func:`build_optimizers`."""
    return {"critic": config.critic_lr, "generator": config.lr, "q": config.lr}


def _step_rng(seed: int, step: int, device: torch.device, *, rank: int | None = None) -> torch.Generator:
    """The random source of one step: a function of (seed, step) only, and of the rank under DDP."""
    entropy = (seed, step) if rank is None else (seed, step, rank)
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & ((1 << 63) - 1))


def _sample_latent(n: int, config: TrainConfig, rng: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(z ~ N(0, I), c uniform over the K categories) for ``n`` samples."""
    codes = torch.randint(0, config.categories, (n,), generator=rng, device=device)
    z = torch.randn(n, config.noise_dim, generator=rng, device=device)
    return z, codes


def _fixed_latent(config: TrainConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample grid's inputs: row k = category k, column j = noise vector j (CPU-drawn)."""
    rng = torch.Generator().manual_seed(config.seed)
    z = torch.randn(SAMPLE_COLUMNS, config.noise_dim, generator=rng).repeat(config.categories, 1)
    codes = torch.arange(config.categories).repeat_interleave(SAMPLE_COLUMNS)
    return z.to(device), codes.to(device)


def _train_step(
    generator: Generator,
    critic: Critic,
    optimizers: dict[str, torch.optim.Optimizer],
    sampler: PatchSampler,
    step: int,
    config: TrainConfig,
    *,
    self_labels: torch.Tensor | None = None,
    places: torch.Tensor | None = None,
    ddp: distributed.DistributedModels | None = None,
) -> dict[str, float]:
    """One generator iteration (``critic_steps`` critic updates, then G and Q); returns the log row.

    ``self_labels`` holds every real cell's target for Q, fitted on each critic
    step's real batch (``config.lambda_self_label``). In the critic's loss, not
    in the Q update: there (Q's own Adam, once per generator step) Q fitted
    them worse in 10-minute runs on CRCHistoPhenotypes (NMI 0.04–0.06 against 0.11).
    ``places``: every real cell's place description, when Q reads it
    (``config.q_reads_place``); generated cells have none.
    ``ddp``: the DDP wrappers of the models on several ranks; the log row is then the ranks' mean.
    """
    device = sampler.device
    rng = _step_rng(config.seed, step, device, rank=None if ddp is None else ddp.ranks.rank)
    k, b = config.categories, config.batch_size
    critic_params = [p for p in critic.parameters()]
    own_q_trunk = critic.q_trunk is not None
    sums = torch.zeros(len(CRITIC_LOG_COLUMNS), device=device)
    zero = torch.zeros((), device=device)
    counts = torch.zeros(k, device=device)
    for i in range(config.critic_steps):
        index = step * config.critic_steps + i
        real = sampler.batch(index)
        z, codes = _sample_latent(b, config, rng, device)
        alpha = torch.rand(b, 1, 1, 1, generator=rng, device=device)
        with torch.no_grad():
            fake = generator(z, F.one_hot(codes, k).float())
        place = _batch_places(places, sampler.cells(index), generated=len(fake))
        out = (critic if ddp is None else ddp.critic)(torch.cat([real, fake]), place=place)
        real_score, fake_score = out.score[:b], out.score[b:]
        fake_logits, real_logits = out.q_logits[b:], out.q_logits[:b]
        targets = self_labels[sampler.cells(index)] if self_labels is not None else None
        wasserstein = critic_wasserstein_loss(real_score, fake_score)
        penalty = gradient_penalty(critic.score, real, fake, alpha, weight=config.lambda_gp)
        loss = wasserstein + penalty
        if own_q_trunk:  # Q's own trunk learns the codes here, with one Adam for all of Q's losses
            loss = loss + mutual_information_loss(fake_logits, codes, weight=config.lambda_mi)
        pair = pair_mutual_information_loss(*real_logits.chunk(2)) if config.lambda_pair > 0 else zero
        taught = F.cross_entropy(real_logits, targets) if targets is not None else zero
        loss = loss + config.lambda_pair * pair + config.lambda_self_label * taught
        if ddp is not None:  # DDP waits for a gradient of every critic parameter, Q's head too when no term uses it
            loss = loss + 0.0 * out.q_logits.sum()
        optimizers["critic"].zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in critic_params if p.grad is not None])
        optimizers["critic"].step()
        terms = (loss, -wasserstein, penalty, grad_norm, pair, taught)
        sums += torch.stack([t.detach() for t in terms])
        counts += torch.bincount(real_logits.detach().argmax(1), minlength=k)

    z, codes = _sample_latent(b, config, rng, device)
    g_params = list(generator.parameters())
    q_params = [p for group in optimizers["q"].param_groups for p in group["params"]]
    if ddp is None:
        out = critic(generator(z, F.one_hot(codes, k).float()))
        loss_g = generator_loss(out.score)
        loss_mi = mutual_information_loss(out.q_logits, codes, weight=config.lambda_mi)
        grads_g = torch.autograd.grad(loss_g, g_params, retain_graph=True)
        grads_q = torch.autograd.grad(loss_mi, q_params)
    else:
        loss_g, loss_mi, grads_g, grads_q = distributed.generator_gradients(
            ddp, z, codes, g_params=g_params, q_params=q_params, lambda_mi=config.lambda_mi
        )
    for name, params, grads in (("generator", g_params, grads_g), ("q", q_params, grads_q)):
        for p, g in zip(params, grads):
            p.grad = g
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    means = (sums / config.critic_steps).tolist()
    shares = (counts / counts.sum()).tolist()
    row = dict(zip(CRITIC_LOG_COLUMNS, means))
    row.update(generator_loss=loss_g.item(), mi_loss=loss_mi.item())
    row.update({f"share_{j}": s for j, s in enumerate(shares)})
    return row if ddp is None else distributed.mean_over_ranks(row, device)


#: The most passes over the cells that the self-label warm-up makes (:func:`warmup_updates`).
WARMUP_EPOCHS = 6


def warmup_updates(config: TrainConfig, cells: int, cells_per_batch: int) -> int:
    """The warm-up's length: ``config.self_label_warmup`` updates, at most :data:`WARMUP_EPOCHS` passes over ``cells``.

    ``cells_per_batch``: the sampler's (:attr:`cellgan.model.data.PatchSampler.cells_per_batch`).

    The default recipe's 2,000 updates were measured on 22,443 cells (fewer than 3
    passes at 32 cells a batch); a small run fits its self-labels in fewer, and more
    passes over few cells would only learn them by heart.
    """
    return min(config.self_label_warmup, math.ceil(WARMUP_EPOCHS * cells / cells_per_batch))


def _batch_places(places: torch.Tensor | None, cells: torch.Tensor, *, generated: int = 0) -> torch.Tensor | None:
    """The place descriptions of a batch's real ``cells``, then ``generated`` rows of NaN (no place).

    None when Q reads no place.
    """
    if places is None:
        return None
    return torch.cat([places[cells], places.new_full((generated, places.shape[1]), float("nan"))])


def _warm_up_q(
    critic, optimizer, sampler, self_labels, config: TrainConfig, *, places=None, ddp=None, progress=False
) -> float:
    """Train Q alone on the self-labels for :func:`warmup_updates` updates; return the seconds it took.

    Update ``i`` is on the sampler's ``i``-th batch (the stream the GAN then starts
    on), so a run is the same whatever stops it; under DDP the ranks' gradients
    are averaged through the wrapped critic. ``progress``: show a tqdm bar.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    updates = range(warmup_updates(config, len(self_labels), sampler.cells_per_batch))
    for index in tqdm(updates, desc="warm-up of Q", unit="update", disable=not progress, dynamic_ncols=True):
        real = sampler.batch(index)
        place = _batch_places(places, sampler.cells(index))
        if ddp is None:
            logits, _ = critic.q(real, place=place)
            loss = F.cross_entropy(logits, self_labels[sampler.cells(index)])
        else:  # DDP waits for a gradient of every critic parameter
            out = ddp.critic(real, place=place)
            loss = F.cross_entropy(out.q_logits, self_labels[sampler.cells(index)]) + 0.0 * out.score.sum()
        optimizer.zero_grad(set_to_none=True)
        (config.lambda_self_label * loss).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def sample_grid(generator: Generator, z: torch.Tensor, codes: torch.Tensor, *, columns: int, scale: int = 2) -> np.ndarray:
    """Generate ``G(z, c)`` in evaluation mode and tile it: uint8 (H, W, 3), rows of ``columns``.

    Tiles are separated by 2 white pixels and enlarged ``scale`` times
    (nearest neighbour) so that a 32×32 cell is visible on screen.
    """
    was_training = generator.training
    generator.eval()
    with torch.inference_mode():
        images = generator(z, F.one_hot(codes, generator.categories).float())
    generator.train(was_training)
    tiles = ((images.float().cpu().numpy() + 1) * 127.5).clip(0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
    tiles = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)
    rows, size, gap = len(tiles) // columns, tiles.shape[1], 2
    grid = np.full((rows * (size + gap) + gap, columns * (size + gap) + gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[gap + r * (size + gap) : (r + 1) * (size + gap), gap + c * (size + gap) : (c + 1) * (size + gap)] = tile
    return grid


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    atomic_write(path, lambda p: Image.fromarray(image).save(p, format="PNG"))


class _Log:
    """``log.csv``: one row per generator iteration, appended and flushed as it goes."""

    def __init__(self, path: Path, categories: int, *, keep_until: int | None):
        self.path = path
        shares = (f"share_{j}" for j in range(categories))
        self.columns = ["step", "seconds", *CRITIC_LOG_COLUMNS, "generator_loss", "mi_loss", *shares]
        rows = []
        if keep_until is not None and path.is_file():  # drop rows past the checkpoint we resume from
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if None not in r.values() and int(r["step"]) <= keep_until]

        def write(p: Path) -> None:
            with open(p, "w", newline="") as f:
                writer = csv.DictWriter(f, self.columns)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(path, write)
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, self.columns)

    def write(self, row: dict) -> None:
        self._writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def train(
    patches_uint8: np.ndarray,
    out_dir: Path | str,
    config: TrainConfig,
    *,
    device: torch.device | str = "auto",
    resume: bool = False,
    progress: bool = True,
    table: pd.DataFrame | None = None,
) -> TrainResult:
    """Train on real patches, writing checkpoints, ``log.csv`` and sample grids to ``out_dir``.

    Parameters
    ----------
    patches_uint8 : np.ndarray
        Real cell patches, uint8 (n, 32, 32, 3), n ≥ ``config.batch_size``.
    out_dir : path
        The model directory. It must hold no checkpoint unless ``resume``.
    config : TrainConfig
    device : torch.device or str
        "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
    resume : bool
        Continue from ``out_dir``'s checkpoint. The recipe (every option but the
        run length and saving frequency) must equal the checkpoint's; the
        iteration and minute budgets count the earlier runs too.
    progress : bool
        Show a progress bar on stderr.
    table : pandas.DataFrame or None
        The cells' table, row i describing patch i; needed when the recipe
        uses the cells' positions (``pair_neighbours``, or ``lambda_self_label``
        with ``self_label_neighbours``).

    Returns
    -------
    TrainResult

    Raises
    ------
    cellgan.io.lock.FolderLocked
        Another process is training in ``out_dir``.
    TrainingInterrupted
        SIGINT or SIGTERM came; a checkpoint was saved first (:mod:`cellgan.model.guard`).
    TrainingDiverged
        A loss or weight became NaN or infinite again after one rollback with lower learning rates.

    Notes
    -----
    Inside a process group of several ranks (:func:`cellgan.model.distributed.process_group`,
    as ``torchrun`` sets up), every rank calls this with the same arguments and trains its
    DDP replica; ``batch_size`` is then per rank, and rank 0 alone writes ``out_dir``.
    """
    out_dir = Path(out_dir)
    ranks = distributed.current_ranks()
    arguments = dict(device=device, resume=resume, progress=progress, table=table, ranks=ranks)
    if ranks is not None and not ranks.leads:  # rank 0 alone writes out_dir, and holds its lock
        return _train(patches_uint8, out_dir, config, **arguments)
    with folder_lock(out_dir):
        for folder in (out_dir, out_dir / "samples"):  # what writers killed before left
            remove_temporaries(folder)
        return _train(patches_uint8, out_dir, config, **arguments)


def _train(patches_uint8, out_dir: Path, config: TrainConfig, *, device, resume, progress, table, ranks) -> TrainResult:
    """:func:`train`, once rank 0 holds ``out_dir``'s lock."""
    _check_table(config, table, len(patches_uint8))
    device = resolve_device(device, set_threads=False)
    generator, critic = build_models(config, device)
    optimizers = build_optimizers(generator, critic, config)
    step, elapsed, lr_scale = 0, 0.0, 1.0
    resume = resume and _has_checkpoint(out_dir)
    if resume:
        step, elapsed, lr_scale = _restore(out_dir, config, generator, critic, optimizers, device)
    elif (out_dir / META_NAME).exists():
        raise CheckpointError(f"{out_dir}: already holds a training run; resume it or choose another directory")
    rates = learning_rates(config)
    set_learning_rates(optimizers, rates, lr_scale)
    partners = nearest_cells(table, config.pair_neighbours) if config.pair_neighbours else None
    self_labels = _self_labels(config, patches_uint8, table, device, ranks)
    places = _places(config, patches_uint8, table, device, ranks)
    if places is not None and not resume:  # a resumed critic keeps the scale it was trained with
        critic.set_place_scale(places)
    ddp = None if ranks is None else distributed.wrap_models(generator, critic, ranks, device)
    leads = ranks is None or ranks.leads
    if leads:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(out_dir, config)
    sampler = PatchSampler(
        patches_uint8,
        batch_size=config.batch_size,
        seed=config.seed,
        augment=config.augment,
        pairs=config.lambda_pair > 0,
        partners=partners,
        rows=None if ranks is None else distributed.rank_rows(len(patches_uint8), ranks),
        device=device,
    )
    fixed_z, fixed_codes = _fixed_latent(config, device)
    log = _Log(out_dir / LOG_NAME, config.categories, keep_until=step if resume else None) if leads else None

    def budget_left(signals: StopSignals) -> bool:
        left = (
            (config.iterations is None or step < config.iterations)
            and (config.minutes is None or elapsed < config.minutes * 60)
            and signals.received is None
        )
        return left if ranks is None else distributed.rank_zero_decides(left, device)

    def save() -> None:  # the one place training saves (rank 0 alone, in a multi-process run)
        nonlocal saved_step, last_save
        saved_step, last_save = step, time.perf_counter()
        if leads:
            save_training_state(
                out_dir, generator, critic, optimizers, step=step, elapsed_seconds=elapsed, config=config, lr_scale=lr_scale
            )

    def write_samples() -> None:
        grid = sample_grid(generator, fixed_z, fixed_codes, columns=SAMPLE_COLUMNS)
        _write_png(out_dir / "samples" / f"step_{step:06d}.png", grid)
        _write_png(out_dir / "samples" / "latest.png", grid)

    bar = None
    if progress and leads:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, initial=step, unit="it", desc="train", dynamic_ncols=True)
    saved_step, last_save = step, time.perf_counter()
    generator.train()
    critic.train()
    with StopSignals() as signals:
        try:
            if not resume:
                if config.self_label_warmup:  # its time counts in the run's minutes, and is kept by the checkpoint
                    elapsed += _warm_up_q(
                        critic,
                        optimizers["critic"],
                        sampler,
                        self_labels,
                        config,
                        places=places,
                        ddp=ddp,
                        progress=progress and leads,
                    )
                    problem = non_finite({}, {"critic": critic})
                    if problem is not None:
                        raise TrainingDiverged(
                            f"{out_dir}: training diverged in the self-label warm-up of Q ({problem}); "
                            "lower lr_critic (or set self_label_warmup: 0)"
                        )
                save()  # step 0: from here on a kill leaves a checkpoint to resume, and a divergence one to roll back to
            while budget_left(signals):
                tic = time.perf_counter()
                row = _train_step(
                    generator, critic, optimizers, sampler, step, config,
                    self_labels=self_labels, places=places, ddp=ddp,
                )
                # the same on every rank: the row is the ranks' mean and the weights are in step
                problem = non_finite(row, {"generator": generator, "critic": critic})
                if problem is not None:  # roll back to the last checkpoint, with the rates lowered once
                    source = out_dir / META_NAME
                    lr_scale = lowered_scale(lr_scale, problem=problem, step=step + 1, checkpoint_step=saved_step, source=source)
                    failed_at, (step, _, _) = step + 1, _restore(out_dir, config, generator, critic, optimizers, device)
                    set_learning_rates(optimizers, rates, lr_scale)
                    if leads:
                        log.close()
                        log = _Log(out_dir / LOG_NAME, config.categories, keep_until=step)
                        print(
                            f"{out_dir}: training diverged at step {failed_at} ({problem}); rolled back to step {step}, "
                            f"learning rates lowered to {lr_scale:g}× the recipe's",
                            file=sys.stderr,
                        )
                    save()
                    continue
                step += 1
                elapsed += time.perf_counter() - tic
                if not leads:
                    continue
                log.write({"step": step, "seconds": elapsed, **row})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(W=f"{row['wasserstein']:.3g}", mi=f"{row['mi_loss']:.3g}", refresh=False)
                if step % config.sample_every == 0:
                    write_samples()
                due_steps = config.checkpoint_every is not None and step % config.checkpoint_every == 0
                due_time = config.checkpoint_seconds is not None and time.perf_counter() - last_save >= config.checkpoint_seconds
                if due_steps or due_time or step == FIRST_CHECKPOINT_STEP:
                    save()
        finally:
            if log is not None:
                log.close()
            if bar is not None:
                bar.close()
        if step != saved_step:
            save()
        if signals.received is not None:
            raise signals.interrupted(out_dir / META_NAME, step)
    if leads:
        write_samples()
    if ranks is not None:  # the other ranks return once the checkpoint is written
        distributed.barrier()
    stopped_by = "iterations" if config.iterations is not None and step >= config.iterations else "minutes"
    return TrainResult(out_dir, step, elapsed, stopped_by)


def _check_table(config: TrainConfig, table: pd.DataFrame | None, n_patches: int) -> None:
    """Refuse a missing or mismatched cell table when the recipe needs the cells' positions."""
    uses = {
        "pair_neighbours": config.pair_neighbours,
        "self_label_neighbours": config.lambda_self_label and config.self_label_neighbours,
        "self_label_crowding": config.lambda_self_label and config.self_label_crowding,
        "q_reads_place": config.q_reads_place,
    }
    needs = [name for name, used in uses.items() if used]
    if not needs:
        return
    if table is None:
        raise ConfigError(f"{needs[0]} needs the cell table: pass train(..., table=store.read_table())")
    if len(table) != n_patches:
        raise ConfigError(f"the cell table has {len(table)} rows but there are {n_patches} patches")


def _self_labels(config: TrainConfig, patches, table: pd.DataFrame | None, device, ranks=None) -> torch.Tensor | None:
    """Every real cell's self-label on ``device`` when the recipe teaches Q with them, else None.

    Under DDP (``ranks``) rank 0 computes them on the whole table and sends them to the others.
    """
    if not config.lambda_self_label:
        return None

    def compute() -> torch.Tensor:
        labels = neighbourhood_clusters(
            patches,
            table,
            clusters=config.categories,
            neighbours=config.self_label_neighbours,
            seed=config.seed,
            moments_weight=config.self_label_moments,
            crowding_weight=config.self_label_crowding,
        )
        return torch.from_numpy(labels).to(device)

    like = torch.empty(len(patches), dtype=torch.int64, device=device)
    return distributed.from_rank_zero(compute, like, ranks)


def _places(config: TrainConfig, patches, table: pd.DataFrame | None, device, ranks=None) -> torch.Tensor | None:
    """Every real cell's place description on ``device`` when Q reads it (``q_reads_place``), else None.

    Under DDP (``ranks``) rank 0 computes them on the whole table and sends them to the others.
    """
    if not config.q_reads_place:
        return None

    def compute() -> torch.Tensor:
        return torch.from_numpy(place_description(patches, table, neighbours=config.self_label_neighbours)).to(device)

    like = torch.empty(len(patches), PLACE_FEATURES, dtype=torch.float32, device=device)
    return distributed.from_rank_zero(compute, like, ranks)


def _has_checkpoint(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a checkpoint; a run killed before its first save holds none, and starts afresh."""
    if (out_dir / META_NAME).is_file():
        return True
    print(f"{out_dir}: no checkpoint to resume from, training starts afresh", file=sys.stderr)
    return False


def _restore(out_dir: Path, config: TrainConfig, generator, critic, optimizers, device) -> tuple[int, float, float]:
    """Load ``out_dir``'s checkpoint into the models and optimisers; return (step, seconds, learning-rate scale)."""
    saved = read_config(out_dir)
    differ = sorted(k for k, v in config.recipe().items() if saved.recipe()[k] != v)
    if differ:
        detail = ", ".join(f"{k}: {saved.recipe()[k]!r} saved vs {config.recipe()[k]!r} asked" for k in differ)
        raise CheckpointError(f"{out_dir / CONFIG_NAME}: cannot resume with a different recipe ({detail})")
    tensors, meta = load_checkpoint(out_dir, device=device)
    source = str(out_dir / META_NAME)
    load_model_tensors("generator", generator, tensors, source=source)
    load_model_tensors("critic", critic, tensors, source=source)
    known = {k for k in tensors if k.startswith(("generator.", "critic."))}
    for name, optimizer in optimizers.items():
        load_optimizer_tensors(name, optimizer, tensors, source=source)
        known |= {k for k in tensors if k.startswith(f"optim.{name}.")}
    unknown = sorted(set(tensors) - known)
    if unknown:
        raise CheckpointError(f"{source}: unexpected tensors in the checkpoint {unknown[:5]}")
    return int(meta["step"]), float(meta["elapsed_seconds"]), float(meta.get("lr_scale", 1.0))


def load_trained(model_dir: Path | str, *, device: torch.device | str = "auto") -> TrainedModel:
    """Load a model directory written by :func:`train`, verified, in evaluation mode.

    Raises
    ------
    CheckpointError
        When the directory's files are missing, corrupt, tampered with or do not
        fit the networks its config describes.
    """
    model_dir = Path(model_dir)
    device = resolve_device(device, set_threads=False)
    config = read_config(model_dir)
    tensors, _ = load_checkpoint(model_dir, device=device)
    generator, critic = build_models(config, device)
    source = str(model_dir / META_NAME)
    load_model_tensors("generator", generator, tensors, source=source)
    load_model_tensors("critic", critic, tensors, source=source)
    return TrainedModel(generator.eval(), critic.eval(), config)


def read_log(model_dir: Path | str):
    """``log.csv`` of a model directory as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(model_dir) / LOG_NAME)
