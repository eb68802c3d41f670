"""Small batches on CUDA: each hourglass level's full-resolution branch on a CUDA stream of its own.

At batch 1 the paper preset is a chain of a few hundred kernels, each far too small to fill the GPU,
so its time is the length of that chain, not its arithmetic. In every hourglass level the
full-resolution branch (`up`, two residuals) needs only the level's input, not the pooled branch
below it, so it can run beside everything beneath it: with each level's `up` on its own stream, 8 of
the 26 residuals of each hourglass leave the critical path. A CUDA graph captured from this forward
keeps the forks and joins, so a replay runs the branches side by side.

The pieces (stem, each level's branches and merge, each stack's head, the depth module and decoding)
are compiled one by one: inductor fuses inside a piece, not across pieces. On the CPU (no streams)
the same pieces run one after another, which is how the tests check that the split computes exactly
what the whole network does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from wildpose.engine.graph import DecodedPoseNet
from wildpose.training.models.hourglass import Hourglass

# dynamo counts compiled variants per code object, and the pieces share a few (`Sequential.forward`,
# the merge and head methods): about 20 pieces at two batch shapes (1, and dynamic) each.
_RECOMPILE_LIMIT = 64


class _Method(nn.Module):
    """One bound method of a module as a module of its own, so it can be compiled on its own."""

    def __init__(self, owner: nn.Module, name: str) -> None:
        super().__init__()
        self.owner, self.name = owner, name

    def forward(self, *tensors: torch.Tensor):
        return getattr(self.owner, self.name)(*tensors)


class _Depth(nn.Module):
    def __init__(self, graph: DecodedPoseNet) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, heatmap: torch.Tensor, x: torch.Tensor):
        return self.graph.decode(heatmap, self.graph.network.depth(x))


class _Level:
    """One hourglass level's compiled pieces: `up` (beside), `down` (ahead), `merge` (after both)."""

    def __init__(self, hourglass: Hourglass, piece: Callable[[nn.Module], Callable]) -> None:
        self.up, self.down = piece(hourglass.up), piece(hourglass.down)
        self.merge = piece(_Method(hourglass, "merge"))


class BranchStreams:
    """`DecodedPoseNet`'s forward with the hourglass branches forked onto streams (CUDA) or run in
    order (CPU); `compile`: each piece through `torch.compile`, with inductor `options`."""

    def __init__(self, graph: DecodedPoseNet, *, compile: bool, options: dict | None = None) -> None:
        network = graph.network
        self.compile = compile
        if compile and hasattr(torch._dynamo.config, "recompile_limit"):
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _RECOMPILE_LIMIT)
        piece = (lambda module: torch.compile(module, options=options)) if compile else (lambda module: module)
        self.stem = piece(network.stem)
        self.stacks = []
        for stack in network.stacks:
            levels, hourglass = [], stack.hourglass
            while isinstance(hourglass, Hourglass):
                levels.append(_Level(hourglass, piece))
                hourglass = hourglass.inner
            self.stacks.append((levels, piece(hourglass), piece(_Method(stack, "head"))))
        self.outputs = piece(_Depth(graph))
        self.network_input = graph.network_input
        depth = max(len(levels) for levels, _, _ in self.stacks)
        self.device = next(network.parameters()).device
        self.streams = [torch.cuda.Stream(self.device) for _ in range(depth)] if self.device.type == "cuda" else []

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dynamic = self.compile and image.shape[0] > 1  # one compiled variant for every batch above 1
        run = (lambda piece, *tensors: piece(*_marked(tensors))) if dynamic else (lambda piece, *t: piece(*t))
        x = run(self.stem, self.network_input(image))
        heatmap = None
        for levels, innermost, head in self.stacks:
            heatmap, x = run(head, self._hourglass(levels, innermost, x, run), x)
        return run(self.outputs, heatmap, x)

    def _hourglass(self, levels: list[_Level], innermost: Callable, x: torch.Tensor, run: Callable) -> torch.Tensor:
        main = torch.cuda.current_stream(self.device) if self.streams else None
        inputs, ups = [], []
        for index, level in enumerate(levels):
            inputs.append(x)  # kept until the join: the side stream still reads it
            with self._beside(index, main):
                ups.append(run(level.up, x))
            x = run(level.down, x)
        x = run(innermost, x)
        for index in reversed(range(len(levels))):
            if main is not None:
                main.wait_stream(self.streams[index])
            x = run(levels[index].merge, ups[index], x)
        del inputs
        return x

    def _beside(self, index: int, main: torch.cuda.Stream | None):
        if main is None:
            return contextlib.nullcontext()
        stream = self.streams[index]
        stream.wait_stream(main)  # the level's input is ready
        return torch.cuda.stream(stream)


def _marked(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    for tensor in tensors:
        torch._dynamo.mark_dynamic(tensor, 0)
    return tensors
