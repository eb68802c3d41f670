"""Inference-only rewrites of the network for the compiled CUDA path.

Batch norm in evaluation mode is a fixed per-channel affine map; where it directly follows a
convolution it is folded into that convolution's weights, which removes a memory-bound pass over
the feature map. The pre-activation residuals keep the batch norm that opens each block (it follows
a sum, not a convolution): the compiler fuses that one with its ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


@torch.library.custom_op("wildpose::conv2d_relu", mutates_args=())
def conv2d_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """ReLU(conv2d(x)): on CUDA one cuDNN kernel, elsewhere the two operators. A custom operator, so
    the compiler keeps it whole (cuDNN's fused convolution has no meta kernel of its own)."""
    if x.is_cuda:
        return torch.cudnn_convolution_relu(x, weight, bias, [stride, stride], [padding, padding], [1, 1], 1)
    return F.relu(F.conv2d(x, weight, bias, stride=stride, padding=padding))


@conv2d_relu.register_fake
def _conv2d_relu_shape(x, weight, bias, stride, padding):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)  # same shape and memory format


class ConvReLU(nn.Module):
    """A `Conv2d` (square stride and padding, no dilation or groups) and the ReLU after it, as one
    `conv2d_relu`."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias if conv.bias is not None else nn.Parameter(
            torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device), requires_grad=False)
        self.stride, self.padding = conv.stride[0], conv.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_relu(x, self.weight, self.bias, self.stride, self.padding)


def fuse_conv_relu(module: nn.Module) -> int:
    """Replace every `Conv2d -> (Identity...) -> ReLU` run inside an `nn.Sequential` of `module` (in
    place; after `fold_batchnorm`, whose folded batch norms are the identities) by a `ConvReLU` and
    identities. Returns how many were fused."""
    fused = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        for index, conv in enumerate(child):
            if not _plain_conv(conv):
                continue
            after = index + 1
            while after < len(child) and isinstance(child[after], nn.Identity):
                after += 1
            if after < len(child) and isinstance(child[after], nn.ReLU):
                child[index], child[after] = ConvReLU(conv), nn.Identity()
                fused += 1
    return fused


def _plain_conv(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.dilation == (1, 1)
            and module.stride[0] == module.stride[1] and isinstance(module.padding, tuple)
            and module.padding[0] == module.padding[1] and module.padding_mode == "zeros")


def precision_dtype(precision: str) -> torch.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        from wildpose.errors import ConfigError

        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}") from None
