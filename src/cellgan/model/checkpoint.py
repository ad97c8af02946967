"""Saving and loading a training run's state: safetensors + JSON, never pickle.

A model directory holds

- ``config.json``: the :class:`~cellgan.model.config.TrainConfig` of the run;
- ``checkpoint-<step>-<hash>.safetensors``: the generator's and critic's weights
  and buffers (``generator.*``, ``critic.*``) and the Adam moments
  (``optim.<name>.<i>.<key>``), named by the step and the start of their SHA-256;
- ``checkpoint.json``: the manifest: the step, the training seconds so far, the
  config, the learning-rate scale (lowered once after a divergence, see
  :mod:`cellgan.model.guard`), the name of the weights file and its SHA-256, so
  that a file changed or swapped after it was written is refused.

A checkpoint is one atomic unit: the weights go to a new file, then the manifest
naming it is renamed into place, and only then are older weights files deleted.
A run killed at any point of a save leaves the previous manifest and the file it
names intact (and at worst an unnamed weights file, deleted by the next save).

No random-number-generator state needs saving: every random draw of a step is
made from a generator seeded by (seed, step) (see :mod:`cellgan.model.trainer`),
so the step alone fixes the rest of the schedule.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as serialise

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write
from cellgan.model.config import ConfigError, TrainConfig

__all__ = [
    "CheckpointError",
    "CONFIG_NAME",
    "META_NAME",
    "FORMAT_VERSION",
    "save_checkpoint",
    "save_training_state",
    "weights_path",
    "load_checkpoint",
    "read_config",
    "write_config",
    "model_tensors",
    "load_model_tensors",
    "optimizer_tensors",
    "load_optimizer_tensors",
]

CONFIG_NAME = "config.json"
META_NAME = "checkpoint.json"
#: Version 2: the weights file is named by the manifest (version 1: always ``checkpoint.safetensors``).
FORMAT_VERSION = 2
_V1_WEIGHTS_NAME = "checkpoint.safetensors"
_WEIGHTS_FILE = re.compile(r"^checkpoint-\d{9,}-[0-9a-f]{12}\.safetensors$")
_OPTIM_KEY = re.compile(r"^optim\.(?P<name>[a-z_]+)\.(?P<index>\d+)\.(?P<key>[a-z_]+)$")


class CheckpointError(CellganError, ValueError):
    """A model directory whose files are missing, corrupt, tampered with or inconsistent."""


def write_config(model_dir: Path, config: TrainConfig) -> None:
    """Write ``config.json`` atomically."""
    path = Path(model_dir) / CONFIG_NAME
    atomic_write(path, lambda p: p.write_text(json.dumps(config.to_dict(), indent=2) + "\n"))


def read_config(model_dir: Path) -> TrainConfig:
    """Read ``config.json``, raising :class:`CheckpointError` naming the file on any problem."""
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (is {model_dir} a model directory written by `cellgan train`?)")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()), source=str(path))
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError and ConfigError are ValueErrors
        raise CheckpointError(f"{path}: unreadable config ({err})") from err
    except RecursionError:
        raise CheckpointError(f"{path}: unreadable config (nested too deeply)") from None


def save_checkpoint(
    model_dir: Path,
    tensors: dict[str, torch.Tensor],
    *,
    step: int,
    elapsed_seconds: float,
    config: TrainConfig,
    lr_scale: float = 1.0,
) -> Path:
    """Write a checkpoint as one atomic unit; return the manifest's path.

    The tensors go to ``checkpoint-<step>-<hash>.safetensors`` (a file of that
    name already holds the same bytes), then the manifest ``checkpoint.json``
    naming that file and its SHA-256 replaces the old one, and only then are the
    weights files it no longer names deleted. A kill at any point leaves a
    manifest and the weights it names, the old pair or the new one.
    """
    model_dir = Path(model_dir)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = serialise(cpu, metadata={"format_version": str(FORMAT_VERSION), "step": str(step)})
    digest = hashlib.sha256(data).hexdigest()
    weights = model_dir / f"checkpoint-{step:09d}-{digest[:12]}.safetensors"
    if not (weights.is_file() and _sha256(weights) == digest):
        atomic_write(weights, lambda p: p.write_bytes(data))
    meta = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "elapsed_seconds": elapsed_seconds,
        "lr_scale": lr_scale,
        "weights": weights.name,
        "weights_sha256": digest,
        "torch_version": torch.__version__,
        "config": config.to_dict(),
    }
    manifest = model_dir / META_NAME
    atomic_write(manifest, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    for old in model_dir.iterdir():  # weights no manifest names, and temporaries of killed saves
        stale = _WEIGHTS_FILE.match(old.name) or old.name == _V1_WEIGHTS_NAME or old.name.startswith(".checkpoint")
        if stale and old.name != weights.name:
            old.unlink(missing_ok=True)
    return manifest


def save_training_state(
    model_dir: Path,
    generator: torch.nn.Module,
    critic: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    step: int,
    elapsed_seconds: float,
    config: TrainConfig,
    lr_scale: float = 1.0,
) -> Path:
    """Checkpoint a training run: both networks and every optimiser (:func:`save_checkpoint`).

    The one function through which training saves, so that a multi-process run
    can let a single process call it.
    """
    tensors = {**model_tensors("generator", generator), **model_tensors("critic", critic)}
    for name, optimizer in optimizers.items():
        tensors.update(optimizer_tensors(name, optimizer))
    return save_checkpoint(
        model_dir, tensors, step=step, elapsed_seconds=elapsed_seconds, config=config, lr_scale=lr_scale
    )


def weights_path(model_dir: Path, meta: dict) -> Path:
    """The weights file a manifest names (format 1: ``checkpoint.safetensors``).

    Raises
    ------
    CheckpointError
        The name is not one a checkpoint is saved under (a path elsewhere, say).
    """
    name = meta.get("weights", _V1_WEIGHTS_NAME) if meta.get("format_version") == 1 else meta.get("weights")
    if not isinstance(name, str) or not (_WEIGHTS_FILE.match(name) or name == _V1_WEIGHTS_NAME):
        raise CheckpointError(f"{Path(model_dir) / META_NAME}: names no valid weights file ({name!r})")
    return Path(model_dir) / name


def load_checkpoint(model_dir: Path, *, device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint; return ``(tensors, meta)``.

    Raises
    ------
    CheckpointError
        When a file is missing, the JSON is unreadable, the tensors' hash differs
        from the one recorded (the file was modified or replaced), the
        safetensors file is corrupt, the recorded config differs from
        ``config.json``, the recorded step from the one the tensors were saved
        at, or a tensor holds NaN or infinite values.
    """
    model_dir = Path(model_dir)
    meta_path = model_dir / META_NAME
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing, no checkpoint to load")
    try:
        meta = json.loads(meta_path.read_text())
        step, digest, recorded = int(meta["step"]), str(meta["weights_sha256"]), meta["config"]
        float(meta["elapsed_seconds"])
        lr_scale = float(meta.get("lr_scale", 1.0))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata ({err})") from err
    except RecursionError:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata (nested too deeply)") from None
    if meta.get("format_version") not in (1, FORMAT_VERSION):
        raise CheckpointError(f"{meta_path}: unsupported format version {meta.get('format_version')!r}")
    if step < 0:
        raise CheckpointError(f"{meta_path}: negative step {step}")
    if not 0 < lr_scale <= 1:
        raise CheckpointError(f"{meta_path}: learning-rate scale {lr_scale} outside (0, 1]")
    weights = weights_path(model_dir, meta)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing (named by {meta_path}), no checkpoint to load")
    if _sha256(weights) != digest:
        raise CheckpointError(f"{weights}: contents differ from the SHA-256 recorded in {meta_path} (file modified or replaced)")
    try:
        config = TrainConfig.from_dict(recorded, source=str(meta_path))
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    if config.recipe() != read_config(model_dir).recipe():
        raise CheckpointError(f"{meta_path}: its config differs from {model_dir / CONFIG_NAME}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            saved_step = (f.metadata() or {}).get("step")
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: corrupt safetensors file ({err})") from err
    if saved_step != str(step):
        raise CheckpointError(f"{meta_path}: step {step}, but {weights.name} was saved at step {saved_step}")
    broken = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise CheckpointError(f"{weights}: {broken} holds NaN or infinite values (the run diverged)")
    return tensors, meta


def model_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict with every key prefixed by ``prefix.``."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_model_tensors(prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor], *, source: str) -> None:
    """Load the ``prefix.*`` tensors into ``module``, refusing missing, extra or mis-shaped ones."""
    expected = module.state_dict()
    given = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{source}: {prefix} tensors do not match the model (missing {missing[:5]}, unexpected {extra[:5]})")
    for key, value in expected.items():
        if given[key].shape != value.shape or given[key].dtype != value.dtype:
            raise CheckpointError(
                f"{source}: {prefix}.{key} is {given[key].dtype} {tuple(given[key].shape)}, "
                f"the model needs {value.dtype} {tuple(value.shape)}"
            )
    module.load_state_dict(given)


def optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The per-parameter state of ``optimizer`` (e.g. Adam's step and moments) as flat tensors."""
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optim.{name}.{index}.{key}"] = torch.as_tensor(value)
    return out


def load_optimizer_tensors(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], *, source: str) -> None:
    """Restore ``optimizer``'s per-parameter state from :func:`optimizer_tensors` output.

    The hyper-parameters (learning rate, betas) come from the optimizer as built
    from the config, which :func:`load_checkpoint` has matched with the checkpoint.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        match = _OPTIM_KEY.match(key)
        if match is None or match["name"] != name:
            continue
        index = int(match["index"])
        if index >= len(params):
            raise CheckpointError(f"{source}: {key} names parameter {index}, the {name} optimizer has {len(params)}")
        if match["key"] in ("exp_avg", "exp_avg_sq") and value.shape != params[index].shape:
            raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)}, the parameter has {tuple(params[index].shape)}")
        # Adam keeps its step count on the CPU unless it is capturable or fused.
        state.setdefault(index, {})[match["key"]] = value.cpu() if match["key"] == "step" else value
    for index, entry in state.items():
        if set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise CheckpointError(f"{source}: incomplete {name} optimizer state for parameter {index} ({sorted(entry)})")
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
