"""Independent PyTorch definitions of the networks tsc-nn trains, to check its checkpoints against real PyTorch.

They are written from the papers and the reference implementations their parameter names come from, not from
tsc-nn's model code, with the same module tree so that `state_dict()` names match tsc-nn's checkpoints:

* ShuffleNetV1 (Zhang et al. 2017, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
  Devices"), as MindSpore's ShuffleNet tutorial (after Megvii's official code) builds it: `first_conv`, `features`
  of ShuffleV1Block units (`branch_main_1`, channel shuffle, `branch_main_2`), global average pooling and
  `classifier`. Stride-2 units concatenate a 3x3 average pool of the input in front of the branch; MindSpore's
  pools use pad_mode='same' (TensorFlow's SAME: the output is ceil(n / stride) and the odd padding row/column
  goes at the end) and average over the elements inside the image only. That is not PyTorch's
  AvgPool2d(3, 2, padding=1), which pads one on each side: on a 32x32 map its windows start at -1, 1, ..., 29, SAME's
  at 0, 2, ..., 30. `SamePool2d` below does SAME.
* ResNet for CIFAR-10 (He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2): 6n + 2 layers,
  three stages of n basic blocks with 16, 32, 64 filters, option-A shortcuts (subsample, zero-pad channels), with
  akamaster/pytorch_resnet_cifar10's names.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- ShuffleNetV1

# Output channels of the stem and of stages 2-4 (the paper's Table 1; the stem is 24 at 1.0x, scaled for 0.5x and
# 2.0x as Megvii's code does), per group count and width multiplier.
SHUFFLENET_CHANNELS = {
    3: {"0.5x": [12, 120, 240, 480], "1.0x": [24, 240, 480, 960], "1.5x": [24, 360, 720, 1440], "2.0x": [48, 480, 960, 1920]},
    8: {"0.5x": [16, 192, 384, 768], "1.0x": [24, 384, 768, 1536], "1.5x": [24, 576, 1152, 2304], "2.0x": [48, 768, 1536, 3072]},
}
SHUFFLENET_REPEATS = [4, 8, 4]  # units in stages 2, 3, 4


class SamePool2d(nn.Module):
    """Average or max pooling with TensorFlow/MindSpore pad_mode='same'; averages count in-image elements only."""

    def __init__(self, kernel, stride, mode):
        super().__init__()
        self.kernel, self.stride, self.mode = kernel, stride, mode

    def _pads(self, n):
        out = math.ceil(n / self.stride)
        total = max((out - 1) * self.stride + self.kernel - n, 0)
        return total // 2, total - total // 2

    def forward(self, x):
        top, bottom = self._pads(x.shape[2])
        left, right = self._pads(x.shape[3])
        if self.mode == "max":
            return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-math.inf), self.kernel, self.stride)
        sums = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), self.kernel, self.stride, divisor_override=1)
        ones = torch.ones((1, 1, x.shape[2], x.shape[3]), dtype=x.dtype, device=x.device)
        counts = F.avg_pool2d(F.pad(ones, (left, right, top, bottom)), self.kernel, self.stride, divisor_override=1)
        return sums / counts


def channel_shuffle(x, groups):
    """Megvii's / MindSpore's shuffle: view the channels as [C / g, g], transpose to [g, C / g], flatten."""
    n, c, h, w = x.shape
    return x.reshape(n, c // groups, groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class ShuffleV1Block(nn.Module):
    def __init__(self, inp, oup, *, group, first_group, mid_channels, ksize, stride):
        super().__init__()
        assert stride in (1, 2)
        self.stride = stride
        self.group = group
        # Stride 2 concatenates the pooled input (inp channels) in front, so the branch supplies the rest.
        outputs = oup - inp if stride == 2 else oup
        self.branch_main_1 = nn.Sequential(
            # The first unit's input (the stem's 12-48 channels) is too narrow to split into groups.
            nn.Conv2d(inp, mid_channels, 1, 1, 0, groups=1 if first_group else group, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
        )
        self.branch_main_2 = nn.Sequential(
            nn.Conv2d(mid_channels, mid_channels, ksize, stride, ksize // 2, groups=mid_channels, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.Conv2d(mid_channels, outputs, 1, 1, 0, groups=group, bias=False),
            nn.BatchNorm2d(outputs),
        )
        if stride == 2:
            self.branch_proj = SamePool2d(3, 2, "avg")

    def forward(self, old_x):
        x = self.branch_main_1(old_x)
        if self.group > 1:
            x = channel_shuffle(x, self.group)
        x = self.branch_main_2(x)
        if self.stride == 1:
            return F.relu(x + old_x)
        return torch.cat((self.branch_proj(old_x), F.relu(x)), 1)


class ShuffleNetV1(nn.Module):
    def __init__(self, size="2.0x", group=3, classes=10, stem="cifar"):
        super().__init__()
        if group not in SHUFFLENET_CHANNELS or size not in SHUFFLENET_CHANNELS[group]:
            raise ValueError(f"no ShuffleNetV1 of size {size} with {group} groups")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"unknown stem {stem!r}: cifar or imagenet")
        channels = SHUFFLENET_CHANNELS[group][size]
        # The 'cifar' stem keeps 32x32 (stride 1, no pooling); 'imagenet' is the paper's stride-2 conv + max pool.
        self.first_conv = nn.Sequential(
            nn.Conv2d(3, channels[0], 3, 2 if stem == "imagenet" else 1, 1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.maxpool = SamePool2d(3, 2, "max") if stem == "imagenet" else None
        units = []
        inp = channels[0]
        for stage, repeats in enumerate(SHUFFLENET_REPEATS):
            oup = channels[stage + 1]
            for i in range(repeats):
                units.append(ShuffleV1Block(inp, oup, group=group, first_group=stage == 0 and i == 0,
                                            mid_channels=oup // 4, ksize=3, stride=2 if i == 0 else 1))
                inp = oup
        self.features = nn.Sequential(*units)
        self.classifier = nn.Linear(channels[-1], classes)

    def forward(self, x):
        x = self.first_conv(x)
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.features(x)
        return self.classifier(x.mean(dim=(2, 3)))


# ---- ResNet for CIFAR-10 (akamaster/pytorch_resnet_cifar10's module names)

class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            # Option A: every other pixel, and planes // 4 zero channels on each side (16 -> 32 -> 64 filters).
            pad = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, depth=20, classes=10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._stage(16, n, 1)
        self.layer2 = self._stage(32, n, 2)
        self.layer3 = self._stage(64, n, 2)
        self.linear = nn.Linear(64, classes)

    def _stage(self, planes, blocks, stride):
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(out.mean(dim=(2, 3)))


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":  # python3 tools/torch/models.py: the parameter counts
    for depth in (20, 32, 44, 56, 110):
        print(f"resnet{depth}", parameter_count(ResNetCifar(depth)))
    for group in (3, 8):
        for size in ("0.5x", "1.0x", "1.5x", "2.0x"):
            print(f"shufflenet {size} g{group}", parameter_count(ShuffleNetV1(size, group)))
