"""cellgan.model: the InfoGAN-style WGAN-GP of Hu et al. (IEEE JBHI 2019).

Networks (:class:`Generator`, :class:`Critic`), losses, the training loop
(:func:`train`) and model directories (:func:`load_trained`).
"""

from cellgan.model.checkpoint import CheckpointError
from cellgan.model.config import ConfigError, TrainConfig
from cellgan.model.critic import Critic, CriticOutput
from cellgan.model.data import PatchError, PatchSampler, dihedral, patches_to_tensor
from cellgan.model.generator import Generator
from cellgan.model.guard import TrainingDiverged, TrainingInterrupted
from cellgan.model.losses import (
    critic_wasserstein_loss,
    generator_loss,
    gradient_penalty,
    mutual_information_loss,
    pair_mutual_information_loss,
)
from cellgan.model.trainer import TrainedModel, TrainResult, build_models, load_trained, read_log, sample_grid, train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "Critic",
    "CriticOutput",
    "Generator",
    "PatchError",
    "PatchSampler",
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_models",
    "critic_wasserstein_loss",
    "dihedral",
    "generator_loss",
    "gradient_penalty",
    "load_trained",
    "mutual_information_loss",
    "pair_mutual_information_loss",
    "patches_to_tensor",
    "read_log",
    "sample_grid",
    "train",
]
