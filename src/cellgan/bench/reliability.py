"""Reliability: ``kill -9`` at random points of every stage, and hostile inputs, with nothing lost.

Two parts, both written to one JSON by ``cellgan bench reliability``:

- **Faults** (:func:`kill_trials`): each stage (``segment``, ``train``, ``assign``,
  ``run``) runs in a forked child that is killed with SIGKILL after a random delay,
  re-started and killed again (a *chain*), then run to the end; the result must equal
  an uninterrupted run's (the same cell tables and patches; training bit for bit,
  since a resumed run repeats the uninterrupted one; the same assignments). After every
  kill the state on disk is checked: every shard, checkpoint and marker written is
  whole, and training lost at most one checkpoint interval.
- **Cases** (:func:`hostile_cases`): hostile files and options given to the
  ``cellgan`` command in a fresh process; handled cleanly means the expected exit
  status and, for a refusal, one line naming the problem and no traceback. The peak
  memory (RSS) of each process is measured; the bombs (files whose headers claim
  billions of pixels or bytes, a YAML "billion laughs") must stay under 1 GB.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

__all__ = ["STAGES", "hostile_cases", "kill_trials", "prepare_harness", "run_reliability_benchmark", "tiff_bomb", "white_png"]

STAGES = ("segment", "train", "assign", "run")

#: The pixel size the bone-marrow crops are segmented at: that estimated from all 11 whole images
#: (:mod:`cellgan.segment.pixel_size`; bm_graz states none).
BM_GRAZ_MPP = 0.3
#: The toy training of the harness: a width-8 GAN, checkpoints every 5 steps.
TRAIN_OPTIONS = dict(
    categories=3, width=8, batch_size=8, critic_steps=1, iterations=30, minutes=None,
    sample_every=10, checkpoint_every=5, checkpoint_seconds=None,
)  # fmt: skip
REPORT_OPTIONS = dict(overlay_images=1, sweep_columns=4, gallery_cells=6)
#: Peak memory a bomb case may reach.
BOMB_RSS_LIMIT_MB = 1024


# -- the stages, as functions of their folders ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Harness:
    """The inputs of the kill trials: images, the run configuration, and the finished outputs they need."""

    images: tuple[Path, ...]
    config: object  # cellgan.config.RunConfig
    cells: Path  # a finished cell store (input of train and assign)
    model: Path  # a finished model (input of assign)


def _work(stage: str, harness: Harness, out: Path) -> None:
    """Run ``stage`` into ``out`` to its end (resuming what is there)."""
    from cellgan.io.cellstore import CellStore

    if stage == "segment":
        from cellgan.segment import segment_images

        store = CellStore.create(out, patch_mode=harness.config.segment.patch_mode)
        segment_images(list(harness.images), store, harness.config.segment, progress=False)
    elif stage == "train":
        from cellgan.model import train

        store = CellStore.open(harness.cells)
        train(store.read_patches(), out, harness.config.train, device="cpu", resume=True, progress=False,
              table=store.read_table())  # fmt: skip
    elif stage == "assign":
        from cellgan.analysis.assign import write_assignments

        write_assignments(harness.model, harness.cells, out, device="cpu")
    elif stage == "run":
        from cellgan.pipeline import run_pipeline

        run_pipeline(list(harness.images), out, harness.config, device="cpu", progress=False, log=lambda *_: None)
    else:
        raise ValueError(f"unknown stage {stage!r} (one of {STAGES})")


def _child(stage: str, harness: Harness, out: Path) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    _work(stage, harness, out)


def _start(stage: str, harness: Harness, out: Path):
    process = multiprocessing.get_context("fork").Process(target=_child, args=(stage, harness, out))
    process.start()
    return process


# -- what a kill may leave, and what the end must be ---------------------------------


def _store_problem(cells: Path, reference: Path) -> str | None:
    """Why the store at ``cells`` is not sound: a shard unreadable or unlike the reference's."""
    import pandas as pd

    from cellgan.errors import CellganError
    from cellgan.io.cellstore import CellStore

    if not (cells / "store.json").is_file():
        return None  # killed before the store was made
    try:
        store, ref = CellStore.open(cells), CellStore.open(reference)
        for image_id in store.image_ids():
            table, patches = store.read_table([image_id]), store.read_patches([image_id])
            pd.testing.assert_frame_equal(table, ref.read_table([image_id]))
            if not np.array_equal(patches, ref.read_patches([image_id])):
                return f"{image_id}: patches differ from the uninterrupted run's"
    except (CellganError, AssertionError, OSError, ValueError) as err:
        return f"{cells}: {str(err).splitlines()[0]}"
    return None


def _model_problem(model: Path, checkpoint_every: int) -> tuple[str | None, int]:
    """Why the model folder is not sound, and how many logged steps the last checkpoint lacks."""
    from cellgan.errors import CellganError
    from cellgan.model.checkpoint import META_NAME, load_checkpoint

    if not (model / META_NAME).is_file():
        return None, 0  # killed before the first save (at step 0)
    try:
        _, meta = load_checkpoint(model)
    except (CellganError, OSError) as err:
        return f"{model}: {err}", 0
    logged = 0
    if (model / "log.csv").is_file():
        lines = [line for line in (model / "log.csv").read_text().splitlines()[1:] if line.count(",") > 2]
        logged = int(lines[-1].split(",")[0]) if lines else 0
    lost = max(0, logged - int(meta["step"]))
    if lost > checkpoint_every:
        return f"{model}: {lost} steps logged past the checkpoint, more than one interval ({checkpoint_every})", lost
    return None, lost


def _assignments_problem(out: Path, reference: Path) -> str | None:
    """Why an ASSIGNMENTS folder is not sound: a table written that differs from the reference's."""
    import pandas as pd

    table = out / "assignments.parquet"
    if not table.is_file():
        return None
    try:
        pd.testing.assert_frame_equal(pd.read_parquet(table), pd.read_parquet(reference / "assignments.parquet"))
    except (AssertionError, OSError, ValueError) as err:
        return f"{table}: {str(err).splitlines()[0]}"
    return None


def _markers_problem(run_dir: Path) -> str | None:
    from cellgan.pipeline import StageConflict, read_marker

    for marker in sorted(run_dir.glob("*.done")) + sorted(run_dir.glob("*.started")):
        try:
            read_marker(marker)
        except StageConflict as err:
            return str(err)
    return None


def _state_problem(stage: str, out: Path, reference: Path, checkpoint_every: int) -> tuple[str | None, int]:
    """What is wrong with the state a kill left (None when sound), and the training steps lost."""
    if stage == "segment":
        return _store_problem(out, reference), 0
    if stage == "train":
        return _model_problem(out, checkpoint_every)
    if stage == "assign":
        return _assignments_problem(out, reference), 0
    problem = _markers_problem(out) or _store_problem(out / "cells", reference / "cells")
    if problem is None and (out / "model").is_dir():
        return _model_problem(out / "model", checkpoint_every)
    return problem, 0


def _final_problem(stage: str, out: Path, reference: Path) -> str | None:
    """How the finished result differs from the uninterrupted run's (None when identical)."""
    import pandas as pd

    if stage == "segment":
        from cellgan.io.cellstore import CellStore

        if CellStore.open(out).image_ids() != CellStore.open(reference).image_ids():
            return f"{out}: other images than the uninterrupted run's"
        return _store_problem(out, reference)
    if stage == "train":
        from safetensors.torch import load_file

        from cellgan.model.checkpoint import META_NAME, weights_path

        tensors = []
        for folder in (out, reference):
            tensors.append(load_file(str(weights_path(folder, json.loads((folder / META_NAME).read_text())))))
        differ = [k for k in tensors[1] if k not in tensors[0] or not bool((tensors[0][k] == tensors[1][k]).all())]
        if differ:
            return f"{out}: {len(differ)} tensors differ from the uninterrupted run's (e.g. {differ[0]})"
        logs = [pd.read_csv(d / "log.csv").drop(columns="seconds") for d in (out, reference)]
        return None if logs[0].equals(logs[1]) else f"{out}: log.csv differs from the uninterrupted run's"
    if stage == "assign":
        if not (out / "assignments.parquet").is_file():
            return f"{out}: no assignments.parquet"
        return _assignments_problem(out, reference)
    for stage_name in ("segment", "train", "assign", "compose", "export", "report"):
        if not (out / f"{stage_name}.done").is_file():
            return f"{out}: {stage_name} not done"
    return (
        _final_problem("segment", out / "cells", reference / "cells")
        or _final_problem("train", out / "model", reference / "model")
        or _assignments_problem(out / "assignments", reference / "assignments")
    )


# -- the trials ------------------------------------------------------------------------


def kill_trials(stage: str, harness: Harness, work_dir: Path, *, kills: int, chain: int = 2, seed: int = 0) -> dict:
    """Kill ``stage`` with SIGKILL at random points, ``kills`` times in all, and check nothing is lost.

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    harness : Harness
        The inputs (:func:`prepare_harness`).
    work_dir : Path
        Where the uninterrupted run and the trials write.
    kills : int
        SIGKILLs to send (to a live process; one that finished first does not count).
    chain : int
        Kills of each trial before it is let finish: a trial starts in a new folder,
        is killed, re-started, killed again ``chain`` times, then run to the end.
    seed : int
        Seed of the random delays.

    Returns
    -------
    dict
        ``faults_injected``, ``faults_survived`` (kills after which the state was sound
        and the finished result identical), ``trials``, ``max_steps_lost``,
        ``reference_seconds`` and ``problems`` (one line each).
    """
    rng = np.random.default_rng(seed)
    reference = work_dir / f"{stage}_reference"
    tic = time.perf_counter()
    _work(stage, harness, reference)
    duration = time.perf_counter() - tic
    every = harness.config.train.checkpoint_every or 0
    injected = survived = trials = lost_max = 0
    problems: list[str] = []
    while injected < kills:
        out = work_dir / f"{stage}_trial{trials}"
        trials += 1
        trial_kills, trial_sound = 0, True
        for _ in range(chain):
            process = _start(stage, harness, out)
            process.join(rng.uniform(0.05, duration))
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                process.join()
                trial_kills += 1
            problem, lost = _state_problem(stage, out, reference, every)
            lost_max = max(lost_max, lost)
            if problem is not None:
                problems.append(f"after a kill: {problem}")
                trial_sound = False
        process = _start(stage, harness, out)
        process.join()
        problem = f"the re-run exited with {process.exitcode}" if process.exitcode else _final_problem(stage, out, reference)
        if problem is not None:
            problems.append(f"at the end: {problem}")
            trial_sound = False
        injected += trial_kills
        survived += trial_kills if trial_sound else 0
        if trials > 10 * kills:  # the stage finishes before any kill lands: stop rather than loop
            problems.append(f"only {injected} of {kills} kills landed in {trials} trials")
            break
    return {
        "faults_injected": injected,
        "faults_survived": survived,
        "trials": trials,
        "max_steps_lost": lost_max,
        "checkpoint_every": every,
        "reference_seconds": round(duration, 2),
        "problems": problems,
    }


def prepare_harness(data_root: Path, work_dir: Path, *, size: int = 200, train_options: dict | None = None) -> Harness:
    """Two ``size``² bone-marrow crops (Hu et al.'s Dataset A), the default recipe at toy size, a store and a model.

    ``train_options`` replace some of :data:`TRAIN_OPTIONS`.
    """
    from PIL import Image

    from cellgan.config import resolve_config
    from cellgan.io.images import read_rgb

    folder = work_dir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for name in ("BM_GRAZ_HE_0001_01", "BM_GRAZ_HE_0002_01"):
        path = folder / f"{name}.png"
        if not path.is_file():
            Image.fromarray(read_rgb(Path(data_root) / "bm_graz" / "source" / f"{name}.png")[:size, :size]).save(path)
        images.append(path)
    config = resolve_config(  # the crops are too small to estimate the pixel size from: bm_graz's estimate
        overrides={"segment": {"mpp": BM_GRAZ_MPP}, "train": {**TRAIN_OPTIONS, **(train_options or {})},
                   "report": REPORT_OPTIONS}
    )
    harness = Harness(tuple(images), config, work_dir / "cells", work_dir / "model")
    _work("segment", harness, harness.cells)
    _work("train", harness, harness.model)
    return harness


# -- hostile inputs ---------------------------------------------------------------------


#: Runs ``cellgan`` and, at exit, writes the process's peak RSS (``VmHWM``, which exec resets, unlike
#: ``ru_maxrss``) to the file named by ``$CELLGAN_PEAK_RSS``.
_MEASURED_MAIN = """
import atexit, os, sys
def peak():
    with open("/proc/self/status") as status, open(os.environ["CELLGAN_PEAK_RSS"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
from cellgan.cli.main import main
sys.argv[0] = "cellgan"
sys.exit(main())
"""


def _command(args: list[str], *, timeout: float = 600) -> tuple[int, str, float]:
    """Run ``cellgan ARGS`` in a fresh process: (exit status, stderr, peak RSS in MB)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak_kb"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CELLGAN_PEAK_RSS": str(peak)}
        try:
            done = subprocess.run([sys.executable, "-c", _MEASURED_MAIN, *args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired as err:
            return -9, (err.stderr or b"").decode(errors="replace") + "\ntimed out", float("nan")
        rss = int(peak.read_text()) / 1024 if peak.is_file() else float("nan")
    return done.returncode, done.stderr.decode(errors="replace"), rss


def tiff_bomb(path: Path, side: int, *, tile: int = 1024) -> Path:
    """An RGB TIFF of ``side``² zero pixels, written as one zlib tile repeated (a few MB)."""
    import tifffile

    encoded = zlib.compress(bytes(tile * tile * 3), 9)
    count = (-(-side // tile)) ** 2
    tifffile.imwrite(
        path,
        (encoded for _ in range(count)),
        shape=(side, side, 3),
        dtype=np.uint8,
        tile=(tile, tile),
        compression="zlib",
        photometric="rgb",
    )
    return path


def white_png(path: Path, side: int) -> Path:
    """A white 8-bit RGB PNG of ``side``² pixels, compressed row by row (about 0.4 MB for 12000²)."""
    row = b"\x00" + b"\xff" * (3 * side)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def _cases(folder: Path, harness: Harness) -> list[dict]:
    """The hostile cases: name, the command's arguments, the exit status expected, words the error must hold."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = str(folder / "out")
    cases = []

    def case(name, args, status, words="", bomb=False):
        if args[0] in ("segment", "cells"):  # crops too small to estimate the pixel size from
            args = [*args, "--mpp", BM_GRAZ_MPP]
        cases.append({"name": name, "args": [str(a) for a in args], "status": status, "words": words, "bomb": bomb})

    good = harness.images[0]

    def segment_case(name, path, words, bomb=False):  # beside a good image, as one odd file among many
        case(name, ["segment", good, path, "--out", folder / f"out_{len(cases)}"], 1, words, bomb=bomb)

    for side in (20_000, 60_000):
        tiff = tiff_bomb(folder / f"claims_{side}.tif", side)
        segment_case(f"{tiff.stat().st_size / 1e6:.1f} MB TIFF claiming {side}² px", tiff, "pixels", bomb=True)
    png = white_png(folder / "white_12000.png", 12_000)
    segment_case(f"{png.stat().st_size / 1e3:.0f} kB white 12000² PNG", png, "pixels", bomb=True)
    laughs = folder / "laughs.yaml"
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    laughs.write_text("\n".join(lines) + "\ntrain: {categories: 3}\n")
    case("YAML billion laughs", ["train", harness.cells, "--out", out, "--config", laughs], 2, "alias", bomb=True)
    store = folder / "npy_bomb"
    _copy_store(harness.cells, store)
    first = sorted((store / "patches").glob("*.npy"))[0]
    header = b"\x93NUMPY\x01\x00" + _npy_header("{'descr': '|u1', 'fortran_order': False, 'shape': (300000000, 32, 32, 3), }")
    first.write_bytes(header + b"\0" * 4096)
    case(".npy header claiming 286 GiB", ["train", store, "--out", out, "--iterations", "1"], 2, "header claims", bomb=True)

    grey = folder / "grey.png"
    Image.new("L", (256, 256), 128).save(grey)
    segment_case("greyscale image", grey, "greyscale")
    dark = folder / "fluorescence.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 40, (256, 256, 3), dtype=np.uint8)).save(dark)
    segment_case("dark-background image", dark, "dark background")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    segment_case("empty file", empty, "empty")
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:5000])
    segment_case("truncated PNG", truncated, "decode")
    unicode = folder / "细胞.png"
    unicode.write_bytes(good.read_bytes())
    case("file name without ASCII letters", ["segment", unicode, "--out", folder / "unicode_out"], 0)
    inside = folder / "slides"
    inside.mkdir(exist_ok=True)
    (inside / "one.png").write_bytes(good.read_bytes())
    case("--out inside the input folder (twice)", ["segment", inside, "--out", inside / "run"], 0)
    case("--out inside the input folder (again)", ["segment", inside, "--out", inside / "run"], 0)
    for name, text, words in (
        ("non-UTF-8 YAML", b"train: {categories: \xff}\n", "UTF-8"),
        ("top-level list YAML", b"- 1\n- 2\n", "mapping"),
        ("categories: 1e8", b"train: {categories: 100000000}\n", "categories"),
        ("width: 1e5", b"train: {width: 100000}\n", "width"),
        ("duplicate YAML keys", b"train: {width: 8, width: 16}\n", "width"),
        ("a YAML tag", b"train: !!python/object/apply:os.system ['true']\n", "tag"),
    ):
        path = folder / f"{len(cases)}.yaml"
        path.write_bytes(text)
        case(name, ["train", harness.cells, "--out", out, "--config", path], 2, words)
    nested = folder / "nested_model"
    nested.mkdir(exist_ok=True)
    (nested / "config.json").write_text("[" * 100000 + "]" * 100000)
    case("deeply nested config.json", ["assign", nested, harness.cells, "--out", out], 2, "config.json")
    forged = folder / "nan_model"
    _copy_nan_model(harness.model, forged)
    case("NaN weights with a valid hash", ["assign", forged, harness.cells, "--out", out], 2, "NaN")
    huge_lr = folder / "huge_lr.yaml"
    huge_lr.write_text("train: {lr: 1.0e+6, lr_critic: 1.0e+6, width: 8, batch_size: 8, categories: 3}\n")
    case("learning rate 1e6 (diverges)", ["train", harness.cells, "--out", folder / "diverged", "--config", huge_lr,
                                          "--iterations", "5", "--quiet"], 2, "diverged again")  # fmt: skip
    case("--device mps", ["train", harness.cells, "--out", out, "--device", "mps"], 2, "mps")
    case("evaluate --folds 0", ["evaluate", folder / "nothing", "--folds", "0"], 2, "folds")
    repeated = folder / "points.csv"
    repeated.write_text("x,y\n40,50\n40,50\n")
    case("repeated points", ["cells", "from-points", harness.images[0], "--points", repeated, "--out", out], 2, "same point")
    return cases


def _npy_header(text: str) -> bytes:
    """A .npy 1.0 header: its dict padded with spaces to a multiple of 64 bytes with the preamble."""
    body = text.encode()
    pad = 64 - (10 + len(body) + 1) % 64
    body += b" " * pad + b"\n"
    return len(body).to_bytes(2, "little") + body


def _copy_store(source: Path, target: Path) -> None:
    import shutil

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def _copy_nan_model(source: Path, target: Path) -> None:
    """A copy of a model whose critic weights are NaN, saved with a valid manifest (a careful forger's)."""
    import torch

    from cellgan.model.checkpoint import load_checkpoint, read_config, save_checkpoint, write_config

    tensors, meta = load_checkpoint(source)
    tensors = {k: (torch.full_like(v, float("nan")) if k == "critic.q_head.weight" else v) for k, v in tensors.items()}
    config = read_config(source)
    write_config(target, config)
    save_checkpoint(target, tensors, step=int(meta["step"]), elapsed_seconds=0.0, config=config)


def hostile_cases(folder: Path, harness: Harness) -> list[dict]:
    """Run every hostile case (:func:`_cases`) in a fresh process; what each did.

    A case is handled cleanly when the exit status is the one expected and stderr
    holds no traceback; for a refusal also when its last line is one
    ``cellgan COMMAND: error:`` or ``failed:`` line holding the expected words.
    """
    results = []
    for case in _cases(Path(folder), harness):
        tic = time.perf_counter()
        status, stderr, rss = _command(case["args"])
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        said = [line for line in lines if line.startswith(("cellgan ", "failed: "))]
        clean = status == case["status"] and "Traceback" not in stderr
        if case["status"] != 0:
            clean = clean and bool(said) and case["words"].lower() in said[-1].lower()
        if case["bomb"]:
            clean = clean and rss < BOMB_RSS_LIMIT_MB
        results.append(
            {
                "case": case["name"],
                "exit_status": status,
                "expected_status": case["status"],
                "handled": clean,
                "message": said[-1] if said else (lines[-1] if lines else ""),
                "peak_rss_mb": round(rss, 1),
                "bomb": case["bomb"],
                "seconds": round(time.perf_counter() - tic, 2),
            }
        )
    return results


def run_reliability_benchmark(data_root: Path, work_dir: Path, *, kills: int = 20, seed: int = 0) -> dict:
    """Both parts: the kill trials of every stage (``kills`` each) and the hostile cases."""
    from cellgan.bench._common import machine_info

    work_dir = Path(work_dir)
    tic = time.perf_counter()
    harness = prepare_harness(data_root, work_dir)
    faults = {}
    for i, stage in enumerate(STAGES):
        faults[stage] = kill_trials(stage, harness, work_dir / "kills", kills=kills, chain=4 if stage == "run" else 2,
                                    seed=seed + i)  # fmt: skip
    cases = hostile_cases(work_dir / "cases", harness)
    bombs = [c for c in cases if c["bomb"]]
    return {
        "benchmark": "reliability",
        "cases_tried": len(cases),
        "cases_handled": sum(c["handled"] for c in cases),
        "faults_injected": sum(f["faults_injected"] for f in faults.values()),
        "faults_survived": sum(f["faults_survived"] for f in faults.values()),
        "bomb_peak_rss_mb": max(c["peak_rss_mb"] for c in bombs),
        "faults": faults,
        "cases": cases,
        "settings": {"kills_per_stage": kills, "seed": seed, "train": TRAIN_OPTIONS, "images": [p.name for p in harness.images]},
        "seconds": round(time.perf_counter() - tic, 1),
        "machine": machine_info("cpu"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
