"""The `experiment` verb of the `wildpose` command: reproducible experiments that print a table.

`wildpose experiment synthpose` is the paper's ablation on SynthPose (issue #5; see
`training/synthpose/experiment.py`). PyTorch is imported inside the handler so `wildpose --version`
stays fast.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("wildpose")

EXAMPLES = """examples:
  wildpose experiment synthpose                         # A/B/C on two CPU cores, under an hour
  wildpose experiment synthpose --quick --output /tmp/x # the same table from a tiny run (about a minute)
  wildpose experiment synthpose --device cuda --workers 4
"""

EXPERIMENTS = ("synthpose",)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    """Add `experiment` to the `wildpose` subcommands."""
    parser = verbs.add_parser("experiment", help="run a named experiment end to end and print its table",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=EXPERIMENTS, help="synthpose: 3D lab only vs + 2D wild vs + geometric "
                        "loss, scored on held-out wild motions")
    parser.add_argument("--quick", action="store_true", help="a tiny run with the same table (about a minute)")
    parser.add_argument("--output", help="folder for the runs and results.{json,csv,md} (default "
                        "runs/experiment-synthpose, or runs/experiment-synthpose-quick with --quick)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--workers", type=int, default=0, help="data loader workers (default 0: the rendered "
                        "images are cached in this process)")
    parser.add_argument("--mocap", help="CMU BVH folder (default ../shared/data/cmu_mocap beside the project)")
    parser.set_defaults(handler=_experiment)


def _experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wildpose.training.synthpose import experiment

    output = args.output or ("runs/experiment-synthpose-quick" if args.quick else "runs/experiment-synthpose")
    mocap = str(Path(args.mocap).resolve()) if args.mocap else None
    options = {"device": args.device, "threads": args.threads, "workers": args.workers, "mocap": mocap}
    output = str(Path(output).resolve())
    config = (experiment.ExperimentConfig.quick(output, **options) if args.quick
              else experiment.ExperimentConfig(output=output, **options))
    record = experiment.run(config)
    print(experiment.format_table(record))
    print(f"\nwrote {Path(output) / 'results.json'}, results.csv and results.md")
    return 0
