"""The sensitivity allocation's choice of steps, priced by MACs or by a latency table of conv shapes."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from posebench.compress.channel_allocation import Step, cheapest_step
from posebench.compress.channel_groups import conv_macs
from posebench.compress.channels import ChannelPlan, prune_channels_
from posebench.compress.conv_latency import ConvShape, LatencyTable, conv_shapes, openvino_conv_ms, table_from_json
from posebench.ultralytics_adapter import load_yolo


def test_the_step_with_the_most_latency_saved_per_damage_is_taken_first():
    # a table's latency saved per unit and level (share of the network's time), and the damage of each level
    steps = {0: [Step(48, 0.10, 1.0), Step(32, 0.12, 1.1)],  # 0.10 per 1.0 of damage
             1: [Step(48, 0.02, 0.1), Step(32, 0.03, 0.6)],  # 0.02 per 0.1: the best first step
             2: [Step(96, 0.00, 0.0)]}  # saves nothing: never worth a step while another saves something
    assert cheapest_step(steps, {}) == (1, 0)
    # unit 1 taken: its next level costs 0.5 more for 0.01 (50 per share); unit 0's first costs 10, its next
    # (after it) 0.1 for 0.02 (5 per share), so the order is 1, 0, 0, then 1's second level
    assert cheapest_step(steps, {1: 0}) == (0, 0)
    assert cheapest_step(steps, {1: 0, 0: 0}) == (0, 1)
    assert cheapest_step(steps, {1: 0, 0: 1}) == (1, 1)
    assert cheapest_step(steps, {0: 1, 1: 1}) is None  # unit 2's only level saves nothing: never taken for free


def test_a_level_the_table_prices_no_faster_is_passed_over():
    """Measured times need not fall at every level (SIMD blocks): a level that saves nothing over the one before is
    skipped, the next one that saves is priced from where the unit is."""
    steps = {0: [Step(48, 0.05, 0.5), Step(32, 0.05, 0.6), Step(16, 0.09, 0.7)],
             1: [Step(48, 0.01, 0.3)]}
    assert cheapest_step(steps, {}) == (0, 0)  # 10 per share against 30
    assert cheapest_step(steps, {0: 0}) == (0, 2)  # 0.2 for 0.04 (5 per share), level 1 passed over
    assert cheapest_step(steps, {0: 2}) == (1, 0)


def test_a_channel_modifier_built_in_code_is_checked_as_a_recipe_is():
    from posebench.compress.modifiers import ChannelPruningModifier
    from posebench.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="add allocation: sensitivity"):
        ChannelPruningModifier(latency=0.8)
    with pytest.raises(InvalidInputError, match="exactly one target"):
        ChannelPruningModifier(macs=0.8, latency=0.8, allocation="sensitivity")
    with pytest.raises(InvalidInputError, match="gradual channel schedule"):
        ChannelPruningModifier(ratio=0.3, steps=2)
    assert ChannelPruningModifier(latency=0.8, allocation="sensitivity").plan().latency == 0.8


def _macs_of(shape: ConvShape) -> float:
    out = (shape.height // shape.stride) * (shape.width // shape.stride)
    return out * shape.cout * shape.cin // shape.groups * shape.kernel ** 2 * 1e-6


@pytest.fixture(scope="module")
def dense_and_images(default_source):  # noqa: ANN001, ANN201
    net = load_yolo(default_source.path).model.float().eval()
    return net, torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_a_table_priced_as_macs_allocates_as_macs_do(dense_and_images):
    """With every conv priced at its MACs the latency target is the MACs target: the same cuts."""
    net, images = dense_and_images
    by_macs = prune_channels_(copy.deepcopy(net), ChannelPlan(macs=0.85, allocation="sensitivity"), (64, 64), images)
    table = LatencyTable(_macs_of)
    by_table = prune_channels_(copy.deepcopy(net), ChannelPlan(latency=0.85, allocation="sensitivity", float_convs=()),
                               (64, 64), images, latency_table=table)
    assert by_table["groups"] == by_macs["groups"]
    assert by_table["latency_estimate"]["kept"] == pytest.approx(by_table["macs_kept"], abs=1e-6)
    assert table.measured == len(table.times) > 0


@pytest.mark.slow
def test_the_allocation_cuts_only_where_the_table_says_time_is(dense_and_images):
    """A table that prices the head's convs at nothing: a latency target never cuts the head (it saves no time),
    while the MACs allocation at the same share does."""
    net, images = dense_and_images
    head = r"^model\.23\."
    table = LatencyTable(lambda shape: 0.0 if shape.precision == "float" else _macs_of(shape))
    by_latency = prune_channels_(copy.deepcopy(net), ChannelPlan(latency=0.8, allocation="sensitivity",
                                                                 float_convs=(head,)),
                                 (64, 64), images, latency_table=table)
    by_macs = prune_channels_(copy.deepcopy(net), ChannelPlan(macs=0.8, allocation="sensitivity"), (64, 64), images)
    cut = {p: {g["group"] for g in info["groups"] if g["kept"] < g["channels"]}
           for p, info in (("latency", by_latency), ("macs", by_macs))}
    assert cut["latency"] and not {g for g in cut["latency"] if g.startswith("model.23.")}
    assert {g for g in cut["macs"] if g.startswith("model.23.")}
    assert by_latency["latency_estimate"]["kept"] <= 0.8 + 1e-9


def test_conv_shapes_and_the_table_price_a_network_as_the_sum_of_its_convs(dense_and_images, tmp_path):
    net, _ = dense_and_images
    shapes = conv_shapes(net, (64, 64), float_convs=(r"^model\.23\.cv4\.",))
    assert len(shapes) == sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert shapes["model.0.conv"] == ConvShape(3, 16, 3, 2, 1, 64, 64, "int8")
    assert shapes["model.23.cv4.0.0.conv"].precision == "float"
    assert sum(_macs_of(s) for s in shapes.values()) * 1e6 == pytest.approx(conv_macs(net, (64, 64)), rel=0.02)
    stored = tmp_path / "table.json"
    table = LatencyTable(lambda shape: 1.0, stored, {"runtime": "test", "cpu_kind": "any", "threads": 2})
    assert table.network_ms(net, (64, 64)) == len(shapes)  # every conv, shapes repeated or not
    table.save()
    again = table_from_json(stored)  # measures nothing: a shape it lacks is an error that names the shape
    assert again.network_ms(net, (64, 64)) == len(shapes)
    with pytest.raises(KeyError, match="no time for conv shape int8:5x7k3s1g1@9x9"):
        again.ms(ConvShape(5, 7, 3, 1, 1, 9, 9))
    with pytest.raises(ValueError, match="holds times for"):
        LatencyTable(None, stored, {"runtime": "openvino", "cpu_kind": "avx2", "threads": 2})
    assert json.loads(stored.read_text())["identity"]["runtime"] == "test"


def test_openvino_prices_a_conv_with_more_output_channels_higher():
    """A real measurement: an int8 3x3 conv with 4x the output channels takes longer on this CPU."""
    wide, narrow = ConvShape(64, 128, 3, 1, 1, 40, 40), ConvShape(64, 16, 3, 1, 1, 40, 40)
    assert openvino_conv_ms(wide) > 1.3 * openvino_conv_ms(narrow)


def test_ap_damage_is_zero_for_the_dense_model_and_sees_a_cut_class_branch(coco_pose_mini, default_source):
    """`damage: ap` scores a scan step by the pose mAP50-95 points it loses on labelled images: nothing for the
    model itself, many points when the class branches' last hidden convs are silenced (boxes and keypoints
    untouched, every person's score falls), and a plan asking for it without labels says what to give."""
    from posebench.compress.scan_damage import APDamage, labelled_samples

    dense = load_yolo(default_source.path).model.float().eval()
    samples = labelled_samples(coco_pose_mini / "coco-pose-mini.yaml", 8)
    assert len(samples) == 8 and all(len(s.boxes) for s in samples)
    meter = APDamage(dense, samples, (17, 3), imgsz=(320, 320), batch=8)
    assert 0.2 < meter.reference <= 1.0
    assert meter(copy.deepcopy(dense)) == 0.0
    silenced = copy.deepcopy(dense)
    with torch.no_grad():
        for branch in silenced.model[-1].cv3:
            branch[-2][-1].bn.weight.zero_()  # the last hidden conv of each level's class branch
    assert meter(silenced) > 10.0
    with pytest.raises(Exception, match="damage: ap validates each scan step on labelled images"):
        prune_channels_(copy.deepcopy(dense), ChannelPlan(macs=0.9, allocation="sensitivity", damage="ap"),
                        (64, 64), torch.zeros(1, 3, 64, 64))


def test_every_group_is_in_exactly_one_unit_and_c2f_halves_share_one():
    from posebench.compress.channel_allocation import units_of
    from posebench.compress.channel_groups import find_groups
    from posebench.ultralytics_adapter import build_pose_model

    groups = find_groups(build_pose_model("yolo11n-pose.yaml", nc=1, seed=0).model)
    units = units_of(groups)
    names = [g.name for unit in units for g in unit]
    assert sorted(names) == sorted(g.name for g in groups)  # each once: no group listed twice in a unit
    assert ["model.2.a", "model.2.b"] in [[g.name for g in unit] for unit in units]
