"""Where the channels of an Ultralytics pose model are coupled (the groups channel pruning removes together), and
what its convolutions cost: see `posebench.compress.channels` for why the groups are stated, not traced."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

BRANCHES = ("cv2", "cv3", "cv4", "one2one_cv2", "one2one_cv3", "one2one_cv4")


@dataclass
class ChannelGroup:
    """`size` channels that must be removed together. Channel j is row `rows[j]` of each producer (an Ultralytics
    Conv: conv + BatchNorm; several when residual adds tie their outputs), passes through `depthwise` convs whole,
    and is input column `cols[j]` of each consumer conv (a consumer may read the group more than once, e.g. SPPF's
    concatenated max-pools)."""

    name: str
    producers: list[tuple[Any, torch.Tensor]]
    consumers: list[tuple[nn.Conv2d, torch.Tensor]]
    depthwise: list[Any] = field(default_factory=list)
    tied: str | None = None  # a group that must keep as many channels (C2f's other half: chunk(2) splits evenly)

    @property
    def size(self) -> int:
        return int(self.producers[0][1].numel())


def _conv_block(m: Any) -> bool:
    return isinstance(getattr(m, "conv", None), nn.Conv2d) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d)


def conv_blocks(net: nn.Module) -> list[nn.Module]:
    """Every Ultralytics Conv block (conv + BatchNorm) of `net`."""
    return [m for m in net.modules() if _conv_block(m)]


TAYLOR_ATTRIBUTE = "taylor_importance"  # per output channel, set on each block's conv by posebench.compress.taylor


def _is_depthwise(m: Any) -> bool:
    return _conv_block(m) and m.conv.groups > 1 and m.conv.groups == m.conv.in_channels == m.conv.out_channels


def _rows(block: Any, start: int = 0, size: int | None = None) -> tuple[Any, torch.Tensor]:
    size = block.conv.out_channels - start if size is None else size
    return block, torch.arange(start, start + size)


def _cols(conv: nn.Conv2d, start: int, size: int) -> tuple[nn.Conv2d, torch.Tensor]:
    return conv, torch.arange(start, start + size)


def _flatten(seq: nn.Module) -> list[Any]:
    """A head branch's layers in call order: Conv / DWConv blocks and the final bare Conv2d."""
    if _conv_block(seq) or isinstance(seq, nn.Conv2d):
        return [seq]
    out = []
    for child in seq.children():
        out += _flatten(child)
    return out


def _plain_conv_block(m: Any) -> bool:
    return _conv_block(m) and m.conv.groups == 1


def _chain(name: str, head: tuple[Any, torch.Tensor], blocks: list[Any],
           readers: list[tuple[nn.Conv2d, int] | None], size: int) -> list[ChannelGroup] | None:
    """The channel groups of `head` (a producer's rows) flowing through `blocks` in sequence (Bottlenecks, C3k),
    block k's input also read by `readers[k]` (conv, column offset, or None), the last output by `readers[-1]`. A
    residual Bottleneck ties its output to its input (one group); anything else starts a new group. None when a
    block is of a kind posebench does not know the couplings of (e.g. attention): the chain stays whole."""
    groups: list[ChannelGroup] = []
    producers = [head]
    consumers = [_cols(readers[0][0], readers[0][1], size)] if readers[0] else []
    for k, block in enumerate(blocks):
        kind = type(block).__name__
        if kind == "Bottleneck" and _plain_conv_block(block.cv1):
            inputs = [block.cv1.conv]
        elif kind in ("C3k", "C3") and _plain_conv_block(block.cv1) and _plain_conv_block(block.cv2):
            inputs = [block.cv1.conv, block.cv2.conv]
        else:
            return None
        consumers += [_cols(conv, 0, size) for conv in inputs]
        out_block = block.cv2 if kind == "Bottleneck" else block.cv3
        if kind == "Bottleneck" and block.add:
            producers.append(_rows(out_block))
        else:
            groups.append(ChannelGroup(f"{name}.{k}.in" if k else name, producers, consumers))
            producers, consumers = [_rows(out_block)], []
        if readers[k + 1]:
            consumers.append(_cols(readers[k + 1][0], readers[k + 1][1], size))
    groups.append(ChannelGroup(f"{name}.out" if groups else name, producers, consumers))
    return groups


# blocks whose input is read only by their first conv block (`cv1`), or by `cv1` and `cv2` (C3, C3k)
_READS_WITH_CV1 = ("C2f", "C3k2", "SPPF", "C2PSA")
_READS_WITH_CV1_CV2 = ("C3", "C3k")
_PASS_THROUGH = ("Upsample",)


def _output_block(layer: Any) -> Any:
    """The conv block whose rows are `layer`'s output channels, or None (a layer of unknown make)."""
    kind = type(layer).__name__
    if _plain_conv_block(layer):
        return layer
    if kind in ("C2f", "C3k2", "SPPF", "C2PSA") and _plain_conv_block(layer.cv2):
        return layer.cv2
    if kind in ("C3", "C3k") and _plain_conv_block(layer.cv3):
        return layer.cv3
    return None


def _head_readers(head: Any, level: int) -> tuple[list[nn.Conv2d], list[Any]] | None:
    """The convs that read the head's input at `level` (each branch's first conv after its leading depthwise ones)
    and those depthwise blocks; None when a branch starts with a layer of unknown make."""
    readers, dws = [], []
    for branch in BRANCHES:
        levels = getattr(head, branch, None)
        if levels is None:
            continue
        layers = _flatten(levels[level])
        j = 0
        while j < len(layers) - 1 and _is_depthwise(layers[j]):
            dws.append(layers[j])
            j += 1
        first = layers[j]
        if _plain_conv_block(first):
            readers.append(first.conv)
        elif isinstance(first, nn.Conv2d) and first.groups == 1:
            readers.append(first)
        else:
            return None
    return readers, dws


def _readers(net: nn.Module, index: int, offset: int, size: int) -> tuple[list, list] | None:
    """Who reads layer `index`'s output (`size` channels placed at `offset` of what the reader sees): (consumers,
    depthwise blocks), following Upsample and Concat; None when a reader is of a kind posebench does not know."""
    consumers: list[tuple[nn.Conv2d, torch.Tensor]] = []
    dws: list[Any] = []
    layers = list(net.model)
    for j in range(index + 1, len(layers)):
        sources = [layers[j].f] if isinstance(layers[j].f, int) else list(layers[j].f)
        sources = [j - 1 if s == -1 else (s if s >= 0 else j + s) for s in sources]
        if index not in sources:
            continue
        reader, kind = layers[j], type(layers[j]).__name__
        if j == len(layers) - 1:  # the head: one level per source
            found = _head_readers(reader, sources.index(index))
            if found is None or offset:
                return None
            consumers += [_cols(conv, 0, size) for conv in found[0]]
            dws += found[1]
        elif _plain_conv_block(reader):
            consumers.append(_cols(reader.conv, offset, size))
        elif kind in _READS_WITH_CV1 and _plain_conv_block(reader.cv1):
            consumers.append(_cols(reader.cv1.conv, offset, size))
        elif kind in _READS_WITH_CV1_CV2 and _plain_conv_block(reader.cv1) and _plain_conv_block(reader.cv2):
            consumers += [_cols(reader.cv1.conv, offset, size), _cols(reader.cv2.conv, offset, size)]
        elif kind in _PASS_THROUGH or kind == "Concat":
            before = sum(_channels(net, s) for s in sources[:sources.index(index)]) if kind == "Concat" else 0
            found = _readers(net, j, offset + before, size)
            if found is None:
                return None
            consumers += found[0]
            dws += found[1]
        else:
            return None
    return (consumers, dws) if consumers else None


def _channels(net: nn.Module, index: int) -> int:
    """Output channels of layer `index` (through Upsample and Concat)."""
    layer = net.model[index]
    kind = type(layer).__name__
    sources = [layer.f] if isinstance(layer.f, int) else list(layer.f)
    sources = [index - 1 if s == -1 else (s if s >= 0 else index + s) for s in sources]
    if kind in _PASS_THROUGH:
        return _channels(net, sources[0])
    if kind == "Concat":
        return sum(_channels(net, s) for s in sources)
    return _output_block(layer).conv.out_channels


def between_groups(net: nn.Module) -> list[ChannelGroup]:
    """The channels each block hands to the next (stem, downsamplers, block outputs): one group per layer output
    whose producer and every reader posebench knows (through Upsample and Concat, into the head's branches); the
    head's own outputs are never pruned."""
    groups = []
    layers = list(net.model)
    for index, layer in enumerate(layers[:-1]):
        block = _output_block(layer)
        if block is None:
            continue
        found = _readers(net, index, 0, block.conv.out_channels)
        if found is not None:
            groups.append(ChannelGroup(f"model.{index}.out", [_rows(block)], *found))
    return groups


def find_groups(net: nn.Module, between: bool = False) -> list[ChannelGroup]:
    """Every prunable channel group of an Ultralytics pose network (see the module doc); `between`: the channels
    blocks hand to each other too (`between_groups`)."""
    groups: list[ChannelGroup] = between_groups(net) if between else []
    for name, m in net.named_modules():
        kind = type(m).__name__
        if kind == "Bottleneck" and _plain_conv_block(m.cv1) and _plain_conv_block(m.cv2):
            groups.append(ChannelGroup(f"{name}.cv1", [_rows(m.cv1)], [_cols(m.cv2.conv, 0, m.cv1.conv.out_channels)]))
        elif kind == "SPPF" and _plain_conv_block(m.cv1):
            c = m.cv1.conv.out_channels
            groups.append(ChannelGroup(f"{name}.cv1", [_rows(m.cv1)],
                                       [_cols(m.cv2.conv, r * c, c) for r in range(m.cv2.conv.in_channels // c)]))
        elif kind in ("C2f", "C3k2") and _plain_conv_block(m.cv1) and _plain_conv_block(m.cv2):
            c = m.cv1.conv.out_channels // 2  # chunk(2): both halves must keep the same count
            readers = [(m.cv2.conv, (1 + k) * c) for k in range(len(m.m) + 1)]
            chain = _chain(f"{name}.b", _rows(m.cv1, c, c), list(m.m), readers, c)
            if chain:  # an opaque block (attention) holds half b whole, and so half a too
                chain[0].tied = f"{name}.a"
                groups += [ChannelGroup(f"{name}.a", [_rows(m.cv1, 0, c)], [_cols(m.cv2.conv, 0, c)],
                                        tied=chain[0].name), *chain]
        elif kind in ("C3", "C3k") and _plain_conv_block(m.cv1) and _plain_conv_block(m.cv2):
            c = m.cv1.conv.out_channels
            groups.append(ChannelGroup(f"{name}.cv2", [_rows(m.cv2)], [_cols(m.cv3.conv, c, c)]))
            readers = [None] * len(m.m) + [(m.cv3.conv, 0)]  # only the last output reaches cv3
            groups += _chain(f"{name}.cv1", _rows(m.cv1), list(m.m), readers, c) or []
    head_name, head = f"model.{len(net.model) - 1}", net.model[-1]
    for branch in BRANCHES:
        levels = getattr(head, branch, None)
        if levels is None:
            continue
        for level, seq in enumerate(levels):
            layers = _flatten(seq)
            extra = [getattr(head, f"{branch}_{suffix}", None) for suffix in ("kpts", "sigma")]
            tails = [e[level] for e in extra if e is not None]  # Pose26: cv4 ends in a Conv, then these read it
            if tails:
                layers = layers + [tails]
            for i, layer in enumerate(layers[:-1]):
                if not _plain_conv_block(layer):
                    continue
                j, dws = i + 1, []
                while j < len(layers) and not isinstance(layers[j], list) and _is_depthwise(layers[j]):
                    dws.append(layers[j])
                    j += 1
                if j >= len(layers):
                    break
                nxt = layers[j]
                readers = nxt if isinstance(nxt, list) else [nxt.conv if _conv_block(nxt) else nxt]
                size = layer.conv.out_channels
                groups.append(ChannelGroup(f"{head_name}.{branch}.{level}.{i}", [_rows(layer)],
                                           [_cols(conv, 0, size) for conv in readers], dws))
    return groups


def visit_convs(net: nn.Module, imgsz: tuple[int, int],
                visit: Callable[[str, nn.Conv2d, torch.Tensor, torch.Tensor], None]) -> None:
    """One eval-mode forward of a blank image at `imgsz`, calling `visit(name, conv, input, output)` for every
    convolution as it runs; the network's mode is restored."""
    handles = [m.register_forward_hook(lambda conv, inputs, output, name=name: visit(name, conv, inputs[0], output))
               for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, *imgsz))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)


def conv_macs(net: nn.Module, imgsz: tuple[int, int]) -> int:
    """Multiply-accumulates of every convolution for one image at `imgsz` (eval-mode forward)."""
    total = [0]

    def count(_name: str, conv: nn.Conv2d, _input: torch.Tensor, output: torch.Tensor) -> None:
        k = conv.kernel_size[0] * conv.kernel_size[1]
        total[0] += int(output.numel() * conv.in_channels // conv.groups * k)

    visit_convs(net, imgsz, count)
    return total[0]


def batchnorm_after(net: nn.Module) -> dict[int, nn.Module]:
    """id(conv) -> the BatchNorm that follows it in an Ultralytics Conv block."""
    return {id(m.conv): m.bn for m in conv_blocks(net)}


def select_groups(net: nn.Module, exclude: Iterable[str] = (), between: bool = False) -> list[ChannelGroup]:
    """The groups not excluded by name (a group tied to an excluded one is excluded with it); `between`: with the
    channels between blocks (`between_groups`)."""
    patterns = [re.compile(p) for p in exclude]
    groups = find_groups(net, between)
    out = {g.name for g in groups if any(p.search(g.name) for p in patterns)}
    out |= {g.name for g in groups if g.tied in out}
    return [g for g in groups if g.name not in out]
