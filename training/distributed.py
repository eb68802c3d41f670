"""Data-parallel training across processes: set-up from torchrun's environment, and sync checks.

`torchrun --nproc_per_node N -m wildpose.tools.cli train --config FILE` starts N copies; each reads
RANK, WORLD_SIZE and LOCAL_RANK, joins the process group (NCCL on GPUs, gloo on CPUs) and trains
on its own slice of every epoch. Only rank 0 logs and writes checkpoints. A plain `wildpose train`
is a world of one and needs no process group.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from wildpose.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available here; set device = "
                          "\"cpu\" or \"auto\"")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def setup(device: str) -> Context:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); else a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
        log.info("rank %d of %d on %s", rank, world_size, target)
        if rank != 0:  # rank 0 speaks for the run; the others only report problems
            logging.getLogger("wildpose").setLevel(logging.WARNING)
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def teardown(context: Context) -> None:
    """Leave the process group. Call it after every DistributedDataParallel wrapper is gone.

    A wrapper's reducer holds the group in C++. If dropping the wrapper is what destroys the gloo
    group, its destructor joins gloo's threads while holding the GIL, and a gloo thread that still
    has to free a finished collective's tensors waits for that GIL: both hang, after training is
    done (seen under load, about one run in 25). `destroy_process_group` drops the last reference
    through the group's Python object, whose destructor releases the GIL first.
    """
    if context.distributed and dist.is_initialized():
        # every rank reaches the end before any leaves, so none destroys the group while another
        # still talks to it
        dist.barrier()
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def mean_across_ranks(context: Context, values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must call this with the same keys)."""
    if not context.distributed:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                          device=context.device if context.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return {k: float(v) / context.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def sync_buffers(context: Context, model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them at the start of each forward, so after the last step of a stretch every rank
    still holds its own statistics; syncing before a checkpoint makes the saved file equal to every
    replica. It changes nothing the next forward would not (that broadcast happens anyway).
    """
    if not context.distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's bytes in key order: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def gather_digests(context: Context, model: torch.nn.Module) -> list[str]:
    """Every rank's `weights_digest` (on every rank), to check the replicas never drifted apart."""
    mine = weights_digest(model.state_dict())
    if not context.distributed:
        return [mine]
    digests: list[str] = [""] * context.world_size
    dist.all_gather_object(digests, mine)
    return digests
