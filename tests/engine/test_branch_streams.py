"""The hourglass split into pieces whose full-resolution branches can run on CUDA streams of their
own computes exactly what the whole network does (on the CPU the pieces run in order; the CUDA run
of the same split is held to ONNX Runtime in test_gpu_engines.py)."""

import pytest
import torch

from wildpose.engine.branch_streams import BranchStreams
from wildpose.engine.graph import DecodedPoseNet
from wildpose.training.models import hourglass


@pytest.mark.parametrize("preset, flip_test", [("tiny", False), ("realtime", False), ("tiny", True)])
def test_the_split_network_gives_the_whole_networks_outputs_bit_for_bit(preset, flip_test):
    network = hourglass.build(hourglass.preset(preset), seed=0).eval()
    generator = torch.Generator().manual_seed(1)
    for module in network.modules():  # trained-looking statistics, so every piece changes its input
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    whole = DecodedPoseNet(network, flip_test=flip_test).eval()
    split = BranchStreams(whole, compile=False)
    levels, _, _ = split.stacks[0]
    assert len(split.stacks) == network.config.stacks and len(levels) == network.config.hourglass_depth
    assert split.streams == []  # the CPU has none: the pieces run in order
    size = network.config.input_size
    for batch in (1, 3):
        image = torch.rand(batch, 3, size, size, generator=generator)
        with torch.inference_mode():
            expected, got = whole(image), split(image)
        for name, a, b in zip(("joints2d_crop", "conf", "depth"), expected, got, strict=True):
            assert torch.equal(a, b), name
