"""What channel pruning is asked to do (`ChannelPlan`), checked on its own: no torch, so a recipe can be read and
validated anywhere; `posebench.compress.channels.prune_channels_` carries it out."""

from __future__ import annotations

from dataclasses import dataclass

from posebench.errors import InvalidInputError

CRITERIA = ("magnitude", "bn_scale", "taylor")
ALLOCATIONS = ("uniform", "sensitivity")
TARGETS = ("ratio", "macs", "latency")
DAMAGES = ("outputs", "ap")  # what the sensitivity scan scores a step by (posebench.compress.scan_damage)
WEIGHTINGS = ("uniform", "scores")  # how the reconstruction weighs output positions (posebench.compress.reconstruct)
# Conv module names posebench's default int8 (recipes/int8-ptq.yaml, preset yolo-pose-float-head) keeps in float: the
# pose head's keypoint branch and the DFL decode (what a latency target prices in float).
DEFAULT_FLOAT_CONVS = (r"^model\.\d+\.(?:(?:one2one_)?cv4|dfl)\.",)


@dataclass(frozen=True)
class ChannelPlan:
    """What to prune: a uniform ratio per group, the ratio found for a MACs target, or (sensitivity allocation) the
    cuts that bring the conv MACs or the estimated conv latency down to a target."""

    ratio: float | None = None  # fraction of each group's channels removed
    macs: float | None = None  # fraction of the model's conv MACs kept (searched for a uniform ratio)
    latency: float | None = None  # fraction of the model's conv time kept on the deployment, as a latency table
    #                               estimates it (posebench.compress.conv_latency; sensitivity allocation only)
    criterion: str = "magnitude"
    round_to: int = 16  # keep channel counts multiples of this (SIMD-friendly; DeepSparse 1.8 crashes compiling
    #                     some YOLO26 graphs pruned to multiples of 8)
    exclude: tuple[str, ...] = ()  # group-name regexes left alone
    between: bool = False  # also the channels blocks hand to each other: stem, downsamplers, block outputs (groups
    #                        named model.<i>.out; channel_groups.between_groups)
    compensate: bool = False  # move removed channels' mean activation into their readers (`expected_shifts`;
    #                           measured on yolo11n-pose, coco-pose-val: a loss, 0.490 -> 0.486 at 80 % of the MACs,
    #                           0.426 -> 0.377 at 75 %; benchmarks/results/bn-settle)
    allocation: str = "uniform"  # uniform: one ratio for every group; sensitivity: per group, from a scan
    damage: str = "outputs"  # sensitivity: a step's damage is how far the head outputs move on 8 images (outputs) or
    #                          the pose mAP50-95 points it loses on `damage_images` labelled images (ap)
    damage_images: int = 128  # ap: labelled images, spread over the recovery data's train split
    reconstruct: bool = False  # re-fit the convs that lost inputs to the dense model's outputs (least squares on
    #                            images, no labels: posebench.compress.reconstruct)
    reconstruct_weighting: str = "scores"  # scores: the head branches' positions weighted by the dense model's person
    #                                        score (reconstruct.score_weights); uniform: every output position alike
    float_convs: tuple[str, ...] = DEFAULT_FLOAT_CONVS  # latency: conv module names the deployment keeps in float

    def __post_init__(self) -> None:
        if sum(getattr(self, t) is not None for t in TARGETS) != 1:
            raise InvalidInputError("channel pruning needs exactly one target: ratio (fraction of each group's "
                                    "channels removed), macs (fraction of the model's conv MACs kept) or latency "
                                    "(fraction of its estimated conv time kept)")
        if self.allocation not in ALLOCATIONS:
            raise InvalidInputError(f"unknown channel allocation '{self.allocation}'; known: {', '.join(ALLOCATIONS)}")
        if self.allocation == "sensitivity" and self.ratio is not None:
            raise InvalidInputError("allocation: sensitivity spreads a MACs or latency target over the groups: give "
                                    "macs or latency, not ratio")
        if self.latency is not None and self.allocation != "sensitivity":
            raise InvalidInputError("a latency target is spread over the groups by the sensitivity scan: add "
                                    "allocation: sensitivity")
        for target in ("macs", "latency"):
            value = getattr(self, target)
            if value is not None and not 0.05 <= value <= 1.0:
                raise InvalidInputError(f"{target}: {value} is the fraction kept: give a number in [0.05, 1]")
        if self.compensate and self.reconstruct:
            raise InvalidInputError("compensate and reconstruct both correct the readers of removed channels: "
                                    "reconstruct fits what compensate estimates, choose one")
        if self.reconstruct_weighting not in WEIGHTINGS:
            raise InvalidInputError(f"unknown reconstruct_weighting '{self.reconstruct_weighting}'; known: "
                                    f"{', '.join(WEIGHTINGS)}")
        if self.damage not in DAMAGES:
            raise InvalidInputError(f"unknown scan damage '{self.damage}'; known: {', '.join(DAMAGES)}")
        if self.damage != "outputs" and self.allocation != "sensitivity":
            raise InvalidInputError(f"damage: {self.damage} scores the sensitivity scan's steps: add allocation: "
                                    "sensitivity")
        if self.criterion not in CRITERIA:
            raise InvalidInputError(f"unknown channel-pruning criterion '{self.criterion}'; known: {', '.join(CRITERIA)}")
