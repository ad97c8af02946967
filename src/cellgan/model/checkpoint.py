"""Saving and loading a training run's state: safetensors + JSON, never pickle.

A model directory holds

- ``config.json``: the :class:`~cellgan.model.config.TrainConfig` of the run;
- ``checkpoint.safetensors``: the generator's and critic's weights and buffers
  (``generator.*``, ``critic.*``) and the Adam moments (``optim.<name>.<i>.<key>``);
- ``checkpoint.json``: the step, the training seconds so far, the config, and the
  SHA-256 of the safetensors file, so that a file changed or swapped after it was
  written is refused.

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
from safetensors.torch import load_file, save_file

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write
from cellgan.model.config import ConfigError, TrainConfig

__all__ = [
    "CheckpointError",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "META_NAME",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "read_config",
    "write_config",
    "model_tensors",
    "load_model_tensors",
    "optimizer_tensors",
    "load_optimizer_tensors",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "checkpoint.safetensors"
META_NAME = "checkpoint.json"
FORMAT_VERSION = 1
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


def save_checkpoint(model_dir: Path, tensors: dict[str, torch.Tensor], *, step: int, elapsed_seconds: float, config: TrainConfig) -> None:
    """Write the checkpoint files atomically: the tensors first, then the JSON naming their hash."""
    model_dir = Path(model_dir)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    weights = model_dir / WEIGHTS_NAME
    atomic_write(weights, lambda p: save_file(cpu, str(p), metadata={"format_version": str(FORMAT_VERSION), "step": str(step)}))
    meta = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "elapsed_seconds": elapsed_seconds,
        "weights_sha256": _sha256(weights),
        "torch_version": torch.__version__,
        "config": config.to_dict(),
    }
    atomic_write(model_dir / META_NAME, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))


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
    meta_path, weights = model_dir / META_NAME, model_dir / WEIGHTS_NAME
    for path in (meta_path, weights):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing, no checkpoint to load")
    try:
        meta = json.loads(meta_path.read_text())
        step, digest, recorded = int(meta["step"]), str(meta["weights_sha256"]), meta["config"]
        float(meta["elapsed_seconds"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata ({err})") from err
    except RecursionError:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata (nested too deeply)") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: unsupported format version {meta.get('format_version')!r}")
    if step < 0:
        raise CheckpointError(f"{meta_path}: negative step {step}")
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
