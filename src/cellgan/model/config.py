"""The training recipe: every option of :func:`cellgan.model.train`, with defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cellgan.config import MAX_BATCH_SIZE
from cellgan.errors import ConfigError
from cellgan.fields import as_dict, check_types
from cellgan.io.palette import MAX_CATEGORIES

__all__ = ["TrainConfig", "ConfigError", "MAXIMA", "RUN_LENGTH_FIELDS"]

#: Options that only say how long to run and how often to save; they may change
#: when a run is resumed. Every other option must match the checkpoint.
RUN_LENGTH_FIELDS = frozenset({"iterations", "minutes", "sample_every", "checkpoint_every", "checkpoint_seconds"})

#: The largest value of a size option, and why: beyond it a run cannot be
#: drawn, or its networks or batches would not fit in memory.
MAXIMA = {
    "categories": (MAX_CATEGORIES, "the palette has that many colours"),
    "width": (1024, "8× the paper's 128"),
    "noise_dim": (1024, "32× the paper's 32"),
    "batch_size": (MAX_BATCH_SIZE, "every batch is held in memory"),
}


@dataclass(frozen=True)
class TrainConfig:
    """Options of the InfoGAN-style WGAN-GP of Hu et al. 2019 and of its training run.

    ``TrainConfig(**yaml.safe_load(f))`` works: lists become tuples and every value
    is checked. The networks and losses are the paper's; the defaults learn more
    per CPU-minute (narrower networks, 2 critic steps, larger learning rates, the
    pair term on real cells). The shipped recipes lie over them: ``default`` (the
    best measured: own Q, self-labels) and ``paper``, which sets every value of
    the authors' code (Hu et al. 2019, bohu615/nu_gan), given here in brackets
    (``cellgan.config.resolve_config(recipe="paper")``).

    Parameters
    ----------
    categories : int
        K, the number of cell categories (one-hot code c; Q's outputs).
    width : int
        Channels of every block of both networks [128]. Width 32 runs about 15×
        faster than 128 on a CPU.
    noise_dim : int
        Size of z ~ N(0, I) [32].
    batch_size : int
        Patches per batch, real and generated alike [10 in the code, 64 in the text].
    lr : float
        Adam learning rate of the generator and of the Q step [1e-4]. As the Q
        step has its own Adam optimiser, this (not ``lambda_mi``) sets how fast
        Q and the generator learn the categories.
    lr_critic : float or None
        Adam learning rate of the critic; None means ``lr`` [None] (two
        time-scale updates, Heusel et al. 2017, when different).
    betas : tuple of float
        Adam betas [(0.5, 0.9)].
    critic_steps : int
        Critic updates per generator update, each on a new real batch [5].
    lambda_gp : float
        Weight of the gradient penalty [10].
    lambda_mi : float
        Weight of the mutual-information (Q) loss on generated samples [1].
    lambda_pair : float
        Weight of the invariant-information term on real batches
        (:func:`cellgan.model.losses.pair_mutual_information_loss`; every real
        batch is then two views of half as many cells, see
        :class:`~cellgan.model.data.PatchSampler`), added to every critic step and
        updating the trunk and Q [0: not in the paper]. It keeps Q from putting
        every real cell in one category, which the paper's recipe does at first.
    pair_neighbours : int
        What the pair term pairs [not in the paper]: 0, two views of one cell;
        k ≥ 1, a cell and one of its k nearest cells in the same image
        (:mod:`cellgan.neighbourhood`), so the categories follow what a
        tissue neighbourhood shares. Needs the cell table (``train(table=...)``).
    lambda_self_label : float
        Weight of the cross-entropy between Q on real cells and their
        self-labels (:func:`cellgan.model.self_labels.neighbourhood_clusters`),
        added to every critic step and updating the trunk and Q [0: not in the
        paper]. Needs the cell table when ``self_label_neighbours`` > 0.
    self_label_neighbours : int
        Nearest cells (same image) whose pixels are averaged with a cell's
        before the k-means that makes the self-labels; 0, the cell alone.
    self_label_moments : float
        Total weight, against the pixels' PCA (scaled to 1), of the rotation-invariant
        nucleus moments (:func:`cellgan.model.self_labels.nucleus_moments`: size,
        elongation, darkness) in the description the self-labels cluster; 0, pixels
        only [not in the paper].
    self_label_crowding : float
        Total weight, likewise, of the crowding of each cell's place
        (:func:`cellgan.neighbourhood.crowding`: distances to its 1st, 4th and 8th
        nearest cell) in that description; needs the cell table [0: not in the paper].
    self_label_warmup : int
        Updates of Q alone on its self-labels (cross-entropy, the critic's Adam and
        batches) before the first generator update, so that the generator learns
        to draw categories Q already tells apart on real cells [0: not in the
        paper]. Needs ``lambda_self_label`` > 0. At most six passes over the cells
        (:func:`cellgan.model.trainer.warmup_updates`); their time counts in the
        run's ``minutes``; they are not generator iterations.
    q_reads_place : bool
        Q's head reads, beside the patch's features, where the cell lies: its
        crowding and nucleus moments and their mean over its
        ``self_label_neighbours`` nearest cells
        (:func:`cellgan.neighbourhood.place_description`); a generated cell reads
        the average place. Needs the cell table, at training and when assigning
        [False: the paper's Q reads the patch alone].
    separate_q : bool
        Give Q a trunk of its own instead of sharing the critic's [False: the
        paper shares it]. Q's losses (generated and real cells) then train that
        trunk; the critic's losses train the critic's.
    augment : bool
        Random symmetries of the square on real patches [the code used the four flips].
    iterations : int or None
        Stop after this many generator updates.
    minutes : float or None
        Stop after this much training time (summed over resumed runs). With both
        set, whichever comes first; at least one must be set.
    seed : int
        Fixes initial weights, the order of real batches, every noise draw.
    sample_every : int
        Write a sample grid every this many generator updates.
    checkpoint_every : int or None
        Save a checkpoint every this many generator updates.
    checkpoint_seconds : float or None
        Also save one when this many seconds passed since the last save.
    """

    categories: int = 4
    width: int = 32
    noise_dim: int = 32
    batch_size: int = 64
    lr: float = 4e-4
    lr_critic: float | None = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    critic_steps: int = 2
    lambda_gp: float = 10.0
    lambda_mi: float = 1.0
    lambda_pair: float = 2.0
    pair_neighbours: int = 0
    lambda_self_label: float = 0.0
    self_label_neighbours: int = 5
    self_label_moments: float = 0.0
    self_label_crowding: float = 0.0
    self_label_warmup: int = 0
    q_reads_place: bool = False
    separate_q: bool = False
    augment: bool = True
    iterations: int | None = None
    minutes: float | None = 30.0
    seed: int = 0
    sample_every: int = 100
    checkpoint_every: int | None = 100
    checkpoint_seconds: float | None = 300.0

    def __post_init__(self):
        check_types(self)
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("categories", "width", "noise_dim", "batch_size", "critic_steps", "sample_every"):
            _check_minimum(name, getattr(self, name), minimum=2 if name == "categories" else 1)
        for name, (maximum, why) in MAXIMA.items():
            if getattr(self, name) > maximum:
                raise ConfigError(f"{name} must be at most {maximum} ({why}), got {getattr(self, name)!r}")
        _check_minimum("seed", self.seed, minimum=0)
        _check_minimum("pair_neighbours", self.pair_neighbours, minimum=0)
        _check_minimum("self_label_neighbours", self.self_label_neighbours, minimum=0)
        _check_minimum("self_label_warmup", self.self_label_warmup, minimum=0)
        for name in ("iterations", "checkpoint_every"):
            if getattr(self, name) is not None:
                _check_minimum(name, getattr(self, name), minimum=1)
        for name in ("lr", "lr_critic", "minutes", "checkpoint_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in (
            "lambda_gp",
            "lambda_mi",
            "lambda_pair",
            "lambda_self_label",
            "self_label_moments",
            "self_label_crowding",
        ):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
        if self.pair_neighbours and not self.lambda_pair:
            raise ConfigError("pair_neighbours needs the pair term: set lambda_pair > 0")
        if self.self_label_warmup and not self.lambda_self_label:
            raise ConfigError("self_label_warmup needs the self-labels: set lambda_self_label > 0")
        if self.iterations is None and self.minutes is None:
            raise ConfigError("set iterations, minutes or both: the run needs a stopping rule")

    @property
    def critic_lr(self) -> float:
        """The critic's learning rate: ``lr_critic``, or ``lr`` when unset."""
        return self.lr if self.lr_critic is None else self.lr_critic

    def to_dict(self) -> dict:
        """A JSON/YAML-ready dict; ``TrainConfig(**config.to_dict()) == config``."""
        return as_dict(self)

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "config") -> "TrainConfig":
        """Build from a dict (a parsed JSON/YAML file), naming ``source`` in errors."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of options, got {type(values).__name__}")
        retired = sorted(k for k, off in RETIRED_OPTIONS.items() if k in values and values[k] != off)
        if retired:
            raise ConfigError(
                f"{source}: {', '.join(retired)} no longer exist (they lost in the benchmarks and were "
                "removed); a model trained with them needs the cellgan that made it"
            )
        values = {k: v for k, v in values.items() if k not in RETIRED_OPTIONS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown training options {unknown}")
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from err

    def recipe(self) -> dict:
        """The options that define the model and its training, i.e. all but the run length."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_LENGTH_FIELDS}


#: Options that were removed, with the value that meant "off": a model directory that
#: records them off still loads; one that used them is refused with why.
RETIRED_OPTIONS = {
    "strong_views": False,
    "lambda_contrastive": 0.0,
    "self_label_overclusters": 0,
    "self_label_own_pixels": 0.0,
}


def _check_minimum(name: str, value: int, *, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
