"""``cellgan train CELLS --out MODEL_DIR --categories K``: train the GAN on a cell store."""

from __future__ import annotations

from cellgan.cli.common import (
    add_config_option,
    add_device_option,
    add_quiet_option,
    add_recipe_option,
    add_seed_option,
)
from cellgan.cli.experimental import add_pair_neighbours_option
from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the InfoGAN-style WGAN-GP on a cell store's patches",
        description=(
            "Train the generator, critic and Q head of Hu et al. 2019 on every patch of a cell store. "
            "Writes MODEL_DIR/config.json, checkpoint-*.safetensors + checkpoint.json, log.csv and "
            "samples/latest.png (rows = categories, columns = fixed noise). Ctrl-C or SIGTERM saves a "
            "checkpoint, then stops; --resume continues. Options not given take "
            "their values from --config, else from the recipe (--recipe, default: default). "
            "Under torchrun (torchrun --nproc_per_node N -m cellgan train ...) it trains on N processes with "
            "DistributedDataParallel, --batch-size patches per process, and rank 0 writes MODEL_DIR."
        ),
    )
    parser.add_argument("cells", metavar="CELLS", help="a cell store directory, or the run directory above it")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="where to write the model")
    parser.add_argument("--categories", type=int, metavar="K", help="number of cell categories [the recipe's: 4]")
    add_recipe_option(parser)
    add_config_option(
        parser,
        help="a YAML/JSON file of TrainConfig options, flat or under a train: section (as in run and benchmark configs)",
    )
    parser.add_argument("--width", type=int, metavar="W", help="channels of the networks")
    parser.add_argument("--batch-size", type=int, metavar="B", help="patches per batch")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, metavar="N", help="stop after N generator iterations")
    budget.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes of training")
    add_pair_neighbours_option(parser)
    add_seed_option(parser)
    add_device_option(parser)
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: the cores not busy with other programs)",
    )
    parser.add_argument("--resume", action="store_true", help="continue MODEL_DIR's run from its last checkpoint")
    add_quiet_option(parser)
    parser.set_defaults(func=run, seed=None)


def run(args) -> int:
    from pathlib import Path

    from cellgan.config import given_options, layered_sections, read_train_options, recipe_sections
    from cellgan.device import resolve_device, set_cpu_threads
    from cellgan.io.cellstore import CellStore
    from cellgan.model import TrainConfig, train
    from cellgan.model.distributed import process_group

    from_file = read_train_options(args.config) if args.config else {}
    if not isinstance(from_file, dict):
        raise UsageError(f"{args.config}: expected a mapping of training options, got {type(from_file).__name__}")
    given = {
        "categories": args.categories,
        "width": args.width,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "pair_neighbours": args.pair_neighbours,
    }
    options = layered_sections(recipe_sections(args.recipe), {"train": from_file}, {"train": given_options(given)})["train"]
    if args.iterations is not None or args.minutes is not None:  # a budget flag replaces both budgets
        options.update(iterations=args.iterations, minutes=args.minutes)
    config = TrainConfig.from_dict(options, source=args.config or "options")
    device = resolve_device(args.device)
    if args.threads is not None:  # per process under torchrun
        set_cpu_threads(args.threads)
    store = CellStore.open(Path(args.cells))
    patches, table = store.read_patches(), store.read_table()
    if len(patches) == 0:
        raise UsageError(f"{args.cells}: the cell store holds no cells")
    with process_group(device, share_cpu_threads=args.threads is None) as (ranks, device):
        result = train(
            patches, Path(args.out), config, device=device, resume=args.resume, progress=not args.quiet, table=table
        )
    if not ranks.leads:
        return 0
    where = f"{device} × {ranks.world_size} ranks" if ranks.world_size > 1 else str(device)
    print(
        f"trained {result.step} iterations in {result.elapsed_seconds / 60:.1f} min on {where} "
        f"(stopped by {result.stopped_by}); model in {result.model_dir}"
    )
    return 0
