"""Inference-only rewrites of the network for the compiled CUDA path.

Batch norm in evaluation mode is a fixed per-channel affine map; where it directly follows a
convolution it is folded into that convolution's weights, which removes a memory-bound pass over
the feature map. The pre-activation residuals keep the batch norm that opens each block (it follows
a sum, not a convolution): the compiler fuses that one with its ReLU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every `Conv2d -> BatchNorm2d` pair inside an `nn.Sequential` of `module` (in place, eval
    mode); the batch norm becomes an identity. Returns how many pairs were folded."""
    folded = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        for index in range(len(child) - 1):
            conv, norm = child[index], child[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                child[index] = fuse_conv_bn_eval(conv.eval(), norm.eval())
                child[index + 1] = nn.Identity()
                folded += 1
    return folded


def precision_dtype(precision: str) -> torch.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        from wildpose.errors import ConfigError

        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}") from None
