"""The `train`, `eval` and `blend` verbs of the `wildpose` command (wired in by `tools/cli.py`).

Kept apart from cli.py so the training room's command line lives next to nothing else; PyTorch and
the trainer are imported inside the handlers so `wildpose --version` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("wildpose")

TRAIN_EXAMPLES = """examples:
  wildpose train --config configs/train_example.toml
  wildpose train --config configs/train_example.toml --resume runs/example/last.pt
  torchrun --nproc_per_node 4 -m wildpose.tools.cli train --config configs/train_example.toml
"""

EVAL_EXAMPLES = """examples:
  wildpose eval runs/example/3_geometric.pt --format h36m --annotations data/h36m/annot/valid.h5 \\
      --images data/h36m/images --split test
  wildpose eval runs/example/last.pt --config configs/train_example.toml     # its [[data.val]] sets
  wildpose eval --predictions preds.npz --format mpii --annotations data/mpii/annot/valid.h5
  wildpose eval runs/example/last.pt --format synthpose --domain wild --split test --size 400 --seed 3
  wildpose eval weights/realtime-synthpose.pt --format coco --annotations person_keypoints_val2017.json \
      --images val2017                           # COCO keypoints (or CVAT / Label Studio exports of them)
  wildpose eval --tracking                       # identity switches and MOTA on rendered 2-4 person scenes
  wildpose eval --tracking --people 2 --detector ../shared/data/models/yolox_nano.onnx --json ids.json
"""

BLEND_EXAMPLES = """examples:
  wildpose blend weights/realtime-synthpose.pt runs/long/last.pt --output blended.pt          # half and half
  wildpose blend START.pt TUNED.pt --share 1 --depth-share 0 --output blended.pt              # the bundled blend
"""

FORMATS = ("h36m", "mpii", "mpi_inf_3dhp", "coco", "folder", "synthpose")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    """Add `train`, `eval` and `blend` to the `wildpose` subcommands."""
    train = verbs.add_parser("train", help="train the paper's model (2D, + depth, + geometry) from a TOML config",
                             epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", required=True, help="training config (TOML); see configs/train_example.toml")
    train.add_argument("--resume", help="continue from this checkpoint of the run (last.pt or a stage file)")
    train.add_argument("--output", help="output folder (overrides the config's `output`)")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides the config's `device`)")
    train.add_argument("--workers", type=int, help="data loader workers per process (overrides `workers`)")
    train.add_argument("--precision", choices=("fp32", "bf16"), help="forward-pass arithmetic (overrides "
                       "`precision`); bf16 is about 2x faster on CPUs with AMX or AVX512-BF16")
    train.add_argument("--stop-at-step", type=int, help="stop after this many steps in total, writing last.pt "
                       "to resume from")
    train.set_defaults(handler=_train)

    evaluate = verbs.add_parser("eval", help="score a checkpoint or saved predictions by the paper's protocols",
                                epilog=EVAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("checkpoint", nargs="?", help="checkpoint (.pt) to evaluate")
    evaluate.add_argument("--predictions", help="instead of a checkpoint: an .npz with joints2d (N,16,2) image "
                          "px and/or pose3d (N,16,3)")
    evaluate.add_argument("--config", help="evaluate on this training config's [[data.val]] datasets")
    evaluate.add_argument("--format", choices=FORMATS, help="or one dataset: its format")
    evaluate.add_argument("--annotations", help="the dataset's annotation file")
    evaluate.add_argument("--images", help="the dataset's image folder")
    evaluate.add_argument("--split", default="test", help="h36m: train, test or all; synthpose: train or test "
                          "(default test)")
    evaluate.add_argument("--domain", default="wild", help="synthpose: lab or wild (default wild)")
    evaluate.add_argument("--size", type=int, default=400, help="synthpose: how many samples (default 400)")
    evaluate.add_argument("--seed", type=int, default=3, help="synthpose: render seed (default 3, the wild "
                          "test set of `wildpose experiment synthpose`)")
    evaluate.add_argument("--mocap", help="synthpose: CMU BVH folder (default ../shared/data/cmu_mocap)")
    evaluate.add_argument("--faces", action="store_true", help="synthpose: figures with eyes, brows, nose and a "
                          "neckline (the same samples otherwise)")
    evaluate.add_argument("--limit", type=int, default=0, help="score only the first N samples (default all)")
    evaluate.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    evaluate.add_argument("--workers", type=int, default=0, help="data loader workers (default 0)")
    evaluate.add_argument("--per-joint", action="store_true", help="also the 2D PCK@0.1 of every joint "
                          "(synthpose): where a model misses")
    evaluate.add_argument("--flip-test", action="store_true", help="also run each crop mirrored and average "
                          "the heatmaps, as `wildpose run --flip-test` does")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.add_argument("--save-predictions", help="write the predictions to this .npz (one dataset only)")
    tracking = evaluate.add_argument_group("tracking (--tracking: the pipeline on rendered crowd scenes)")
    tracking.add_argument("--tracking", action="store_true",
                          help="score the pipeline's identities (MOTA, IDF1, switches) on SynthPose crowd scenes")
    tracking.add_argument("--people", default="2,3,4",
                          help="people per scene, comma-separated, 2..4 (default 2,3,4)")
    tracking.add_argument("--frames", type=int, default=80, help="frames per scene at 30 fps (default 80)")
    tracking.add_argument("--model", help="pipeline model (.onnx or .pt; default: the bundled weights)")
    tracking.add_argument("--detector", default="yolox", help="pipeline detector: yolox (default), PATH, hog or none")
    evaluate.set_defaults(handler=_eval)

    blend = verbs.add_parser("blend", help="average a fine-tune's weights with those it started from",
                             epilog=BLEND_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    blend.add_argument("start", help="the checkpoint the fine-tune started from (.pt)")
    blend.add_argument("tuned", help="the fine-tune's checkpoint (.pt)")
    blend.add_argument("--output", required=True, help="where to write the blended checkpoint (.pt)")
    blend.add_argument("--share", type=float, default=0.5, help="the fine-tune's part of the 2D module "
                       "(stem and hourglass stacks): 0 keeps the start, 1 the fine-tune (default 0.5)")
    blend.add_argument("--depth-share", type=float, help="the fine-tune's part of the depth regressor "
                       "(default: --share)")
    blend.add_argument("--label", help="what the blended weights are, stored in the checkpoint (default: a line "
                       "naming both sources and the shares)")
    blend.set_defaults(handler=_blend)


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from wildpose.errors import ConfigError
    from wildpose.training import train_config

    config = train_config.load(args.config)  # checked before PyTorch is imported: a bad config fails fast
    overrides = {}
    if args.output:
        overrides["output"] = str(Path(args.output).resolve())
    if args.device:
        overrides["device"] = args.device
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.precision:
        overrides["precision"] = args.precision
    if overrides:
        config = dataclasses.replace(config, **overrides)
    if args.stop_at_step is not None and args.stop_at_step < 1:
        raise ConfigError(f"--stop-at-step must be >= 1, got {args.stop_at_step}")
    from wildpose.training import trainer

    result = trainer.train(config, resume=args.resume, stop_at_step=args.stop_at_step)
    if result.rank == 0:
        print(f"{'finished' if result.finished else 'stopped'} after {result.position.global_step} steps: "
              f"{result.last_checkpoint}")
    return 0


def _blend(args: argparse.Namespace) -> int:
    from wildpose.training import blend

    shares = blend.Shares(args.share, args.share if args.depth_share is None else args.depth_share)
    _, info = blend.blend(args.start, args.tuned, shares, args.output, args.label)
    log.info("wrote %s: %s", args.output, info.weights)
    return 0


def _datasets(args: argparse.Namespace):
    from wildpose.errors import ConfigError
    from wildpose.training import train_config
    from wildpose.training.datasets import DatasetConfig

    if (args.config is None) == (args.format is None):
        raise ConfigError("give the dataset either as --config FILE (its [[data.val]] tables) or as "
                          "--format F --annotations FILE [--images DIR], not both or neither")
    if args.faces and args.format != "synthpose":
        raise ConfigError("--faces applies to --format synthpose only (with --config, set faces = true in its "
                          "synthpose [[data.val]] tables)")
    if args.config is not None:
        configs = train_config.load(args.config).data.val
        if not configs:
            raise ConfigError(f"{args.config} has no [[data.val]] datasets to evaluate on")
        return list(configs)
    if args.format == "synthpose":
        if args.annotations or args.images:
            raise ConfigError("--format synthpose renders its samples: give --domain, --split, --size, --seed "
                              "and optionally --mocap DIR, not --annotations or --images")
        return [DatasetConfig(format="synthpose", domain=args.domain, split=args.split, size=args.size,
                              seed=args.seed, limit=args.limit, faces=args.faces,
                              mocap=str(Path(args.mocap).resolve()) if args.mocap else None)]
    if not args.annotations:
        raise ConfigError(f"--format {args.format} needs --annotations FILE")
    return [DatasetConfig(format=args.format, annotations=args.annotations, images=args.images,
                          split=args.split, limit=args.limit)]


def _eval(args: argparse.Namespace) -> int:
    import numpy as np

    from wildpose.errors import ConfigError

    if args.tracking:
        return _eval_tracking(args)
    if (args.checkpoint is None) == (args.predictions is None):
        raise ConfigError("give either a checkpoint or --predictions FILE.npz, not both or neither")
    configs = _datasets(args)
    if args.save_predictions and len(configs) != 1:
        raise ConfigError("--save-predictions needs exactly one dataset")
    if args.flip_test and args.predictions:
        raise ConfigError("--flip-test runs a checkpoint; saved --predictions were made as they were")
    from wildpose.training import checkpoint, datasets, distributed, evaluate  # PyTorch: after the checks

    rows: dict[str, dict[str, float]] = {}
    if args.predictions:
        joints2d, pose = evaluate.load_predictions(args.predictions)
        for i, config in enumerate(configs):
            dataset = datasets.build(config, input_size=256)
            rows[f"{i}_{config.format}"] = evaluate.score(
                dataset.annotations(), joints2d, pose,
                protocol_3d="mpi_inf_3dhp" if config.format == "mpi_inf_3dhp" else "h36m", per_joint=args.per_joint)
    else:
        model, info = checkpoint.load(args.checkpoint)
        device = distributed.resolve_device(args.device)
        model.to(device)
        log.info("evaluating %s (%s)", args.checkpoint, info.weights)
        for i, config in enumerate(configs):
            dataset = datasets.build(config, input_size=model.config.input_size)
            predictions = evaluate.predict(model, dataset, args.batch, device, args.workers, progress=True,
                                           flip_test=args.flip_test)
            rows[f"{i}_{config.format}"] = evaluate.score(
                dataset.annotations(), predictions["joints2d"], predictions["pose3d"],
                protocol_3d="mpi_inf_3dhp" if config.format == "mpi_inf_3dhp" else "h36m", per_joint=args.per_joint)
            if args.save_predictions:
                Path(args.save_predictions).parent.mkdir(parents=True, exist_ok=True)
                np.savez(args.save_predictions, joints2d=predictions["joints2d"], pose3d=predictions["pose3d"])
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _eval_tracking(args: argparse.Namespace) -> int:
    from wildpose.errors import ConfigError
    from wildpose.tools import eval_tracking

    if args.checkpoint or args.predictions or args.format or args.config:
        raise ConfigError("--tracking scores the pipeline on rendered scenes: give no checkpoint, --predictions, "
                          "--format or --config (use --model for the pipeline's model)")
    try:
        people = [int(part) for part in args.people.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--people expects comma-separated counts like 2,3,4, got {args.people!r}") from None
    run_args = ["--detector", args.detector] + (["--model", args.model] if args.model else [])
    results = eval_tracking.evaluate_scenes([(n, 0) for n in people], frames=args.frames, run_args=run_args,
                                            mocap=args.mocap)
    print(eval_tracking.format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(eval_tracking.as_json(results), indent=2) + "\n")
    return 0


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """`| dataset | metric | value |` markdown table, one line per metric."""
    lines = ["| dataset | metric | value |", "|---|---|---|"]
    for dataset, results in rows.items():
        lines += [f"| {dataset} | {name} | {value:.4g} |" for name, value in results.items()]
    return "\n".join(lines)
