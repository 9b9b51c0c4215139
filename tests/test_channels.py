"""Structured (channel) pruning: exact on the channels it removes, smaller MACs and parameters as the recipe says,
and the pruned model stays an Ultralytics model that loads, fine-tunes and runs on every CPU runtime."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from posebench.compress.channel_groups import conv_macs, find_groups
from posebench.compress.channel_surgery import fix_attributes
from posebench.compress.channels import ChannelPlan, apply_removals_, prune_channels_
from posebench.compress.recipe import Recipe, RecipeError
from posebench.errors import InvalidInputError
from posebench.ultralytics_adapter import build_pose_model, load_yolo

FAMILIES = ["yolov8n-pose.yaml", "yolo11n-pose.yaml", "yolo26n-pose.yaml"]


def _tensors(value):  # every tensor of a (nested) model output, in a fixed order
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _tensors(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _damage_meter(default_source, images: torch.Tensor):  # noqa: ANN001, ANN202
    """The dense yolo11n-pose and a function: how far a pruned copy's head outputs on `images` moved from the
    dense model's (the distillation output terms, their value at equality subtracted)."""
    from posebench.compress.scan_damage import damage

    dense = load_yolo(default_source.path).model.float().eval()
    with torch.no_grad():
        reference = dense(images)[1]
    floor = damage(copy.deepcopy(dense), reference, images)
    return dense, lambda net: damage(net, reference, images) - floor


def _predictions(value):  # a model's outputs without the neck features the head reads (pruned between blocks)
    if isinstance(value, dict):
        return {k: _predictions(v) for k, v in value.items() if k != "feats"}
    if isinstance(value, (list, tuple)):
        return [_predictions(v) for v in value]
    return value


@pytest.mark.parametrize("between", [False, True], ids=["blocks", "between-blocks"])
@pytest.mark.parametrize("family", FAMILIES)
def test_removing_dead_channels_changes_nothing(family, between):
    """Silence every other channel of every group along its whole path (BatchNorm scale and shift 0: SiLU(0) = 0),
    then prune exactly those: every prediction of the model, both heads of YOLO26 included, is unchanged. A group
    whose couplings were wrong would change the outputs or fail to run. `between`: the channels blocks hand to each
    other too (stem, downsamplers, block outputs through Upsample and Concat into the head)."""
    net = build_pose_model(family, nc=1, seed=0).model.float().eval()
    groups = find_groups(net, between)
    names = [g.name for g in groups]
    assert any(".m.0.cv1" in n for n in names) and any("cv2" in n for n in names)  # bottlenecks, head branches
    assert any(n.endswith(".a") for n in names) and any(".b" in n for n in names)  # both halves of C2f / C3k2
    if between:  # the stem, a Concat reader at an offset, and the head's inputs
        assert {"model.0.out", "model.4.out", "model.6.out"} <= set(names)
        assert any(g.depthwise or len(g.consumers) >= 3 for g in groups if g.name.endswith(".out"))
    if family.startswith("yolo26"):
        assert any("one2one_cv4" in n for n in names)
    for group in groups:
        with torch.no_grad():
            for block, rows in group.producers:
                block.bn.weight[rows[::2]] = 0
                block.bn.bias[rows[::2]] = 0
            for block in group.depthwise:
                block.bn.weight[::2] = 0
                block.bn.bias[::2] = 0
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = _tensors(_predictions(net(x)) if between else net(x))
    pruned = copy.deepcopy(net)
    pruned_groups = find_groups(pruned, between)
    apply_removals_(pruned_groups, {g.name: torch.arange(0, g.size, 2) for g in pruned_groups})
    fix_attributes(pruned)
    with torch.no_grad():
        after = _tensors(_predictions(pruned(x)) if between else pruned(x))
    assert len(before) == len(after) > 3
    for a, b in zip(before, after):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-3)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in net.parameters())
    if between:  # the stem lost half its filters: the first conv the image meets is narrower
        assert pruned.model[0].conv.out_channels == net.model[0].conv.out_channels // 2


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_macs_target_is_met_and_the_pruned_model_runs_on_every_cpu_runtime(family, tmp_path):
    from posebench.compress.run import CompressOptions, compress
    from posebench.export import ArtifactStore, read_metadata
    from posebench.models import resolve_model
    from posebench.runtimes import backend_class, create_backend

    recipe = Recipe.from_yaml("modifiers:\n  - type: channel_pruning\n    macs: 0.7\n    imgsz: 160\n")
    summary = compress(resolve_model(family), recipe, tmp_path, options=CompressOptions(cache_dir=tmp_path / "cache"))
    info = summary["channel_pruning"]
    assert 0.3 < info["macs_kept"] <= 0.70 and info["params_after"] < 0.9 * info["params_before"]
    net = load_yolo(summary["checkpoint"]).model  # Ultralytics loads it as it is, channels and all
    assert conv_macs(net, (160, 160)) == info["macs_after"]
    assert sum(p.numel() for p in net.parameters()) == info["params_after"]
    store = ArtifactStore(resolve_model(summary["checkpoint"]), tmp_path / "cache")
    imgsz = (160, 192)
    meta = read_metadata(store.get("onnx", imgsz))
    assert meta["end2end"] is family.startswith("yolo26")
    x = np.random.default_rng(0).random((1, 3, *imgsz), dtype=np.float32)
    outputs = {}
    for runtime in ("torch", "onnxruntime", "openvino", "deepsparse"):
        with create_backend(runtime, store.get(backend_class(runtime).artifact_format, imgsz), threads=2) as b:
            outputs[runtime] = b.infer(x)[0]
    reference = outputs.pop("torch")
    scale = float(np.abs(reference).max())
    for runtime, out in outputs.items():
        assert out.shape == reference.shape, runtime
        if not family.startswith("yolo26"):  # end-to-end top-k of random weights ties: shapes only
            assert float(np.abs(out - reference).max()) < 1e-3 * scale, runtime


@pytest.mark.slow
@pytest.mark.train
def test_a_channel_pruned_model_fine_tunes_as_itself(mini, tmp_path):
    """Ultralytics' trainer rebuilds a network from its YAML; posebench hands it the pruned model instead, so the
    fine-tuned checkpoint keeps the pruned channels (and learned weights, not a random re-initialisation)."""
    from posebench.compress.run import CompressOptions, compress
    from posebench.models import resolve_model

    recipe = Recipe.from_yaml("modifiers:\n  - type: channel_pruning\n    ratio: 0.5\n    imgsz: 96\n"
                              "finetune:\n  epochs: 1\n  imgsz: 96\n  batch: 4\n")
    summary = compress(resolve_model("default"), recipe, tmp_path,
                       options=CompressOptions(data=mini / "coco-pose-mini.yaml", cache_dir=tmp_path / "cache"))
    info = summary["channel_pruning"]
    tuned = load_yolo(summary["checkpoint"]).model
    assert sum(p.numel() for p in tuned.parameters()) == info["params_after"] < info["params_before"]
    assert summary["epochs"] == 1


def test_a_pruned_checkpoint_is_told_apart_from_its_yaml(default_source, tmp_path):
    """What decides whether a checkpoint can go through Ultralytics' own trainer (which rebuilds it from the YAML)."""
    from posebench.ultralytics_adapter import differs_from_its_yaml

    dense = load_yolo(default_source.path).model.float()
    assert not differs_from_its_yaml(dense)
    pruned = copy.deepcopy(dense)
    prune_channels_(pruned, ChannelPlan(ratio=0.25), (96, 96))
    assert differs_from_its_yaml(pruned)


@pytest.mark.slow
@pytest.mark.train
def test_an_already_pruned_checkpoint_fine_tunes_as_itself(mini, tmp_path):
    """A shipped (channel-pruned) model given to a recipe that only fine-tunes: the checkpoint that comes back keeps
    its channels and its weights' scale, not a network rebuilt from the YAML with its pruned layers random."""
    from posebench.compress.run import CompressOptions, compress
    from posebench.models import resolve_model, shipped_models

    name = sorted(shipped_models())[-1]
    before = load_yolo(shipped_models()[name] / "model.pt").model.float()
    recipe = Recipe.from_yaml("finetune:\n  epochs: 1\n  imgsz: 96\n  batch: 4\n  lr0: 0.00001\n  batchnorm: frozen\n")
    summary = compress(resolve_model(name), recipe, tmp_path,
                       options=CompressOptions(data=mini / "coco-pose-mini.yaml", cache_dir=tmp_path / "cache"))
    after = load_yolo(summary["checkpoint"]).model.float()
    assert sum(p.numel() for p in after.parameters()) == sum(p.numel() for p in before.parameters())
    drift = max(float((a - b).abs().max()) for a, b in zip(after.state_dict().values(), before.state_dict().values())
                if a.is_floating_point())
    assert drift < 0.05  # lr 1e-5 for one epoch of a few images: the weights barely move (random ones would not match)


@pytest.mark.parametrize("text, message", [
    ("  - type: channel_pruning\n    criterion: magnitude\n", "exactly one target"),
    ("  - type: channel_pruning\n    ratio: 0.3\n    macs: 0.5\n", "exactly one target"),
    ("  - type: channel_pruning\n    ratio: 0.99\n", r"ratio: 0.99 is outside"),
    ("  - type: channel_pruning\n    ratio: 0.3\n    criterion: random\n", "must be one of magnitude, bn_scale, taylor"),
    ("  - type: channel_pruning\n    ratio: 0.3\n    exclude: ['(']\n", "bad regular expression"),
    ("  - type: channel_pruning\n    ratio: 0.3\n    allocation: sensitivity\n", "give macs or latency, not ratio"),
    ("  - type: channel_pruning\n    latency: 0.8\n", "add allocation: sensitivity"),
    ("  - type: channel_pruning\n    latency: 0.8\n    macs: 0.8\n    allocation: sensitivity\n", "exactly one target"),
    ("  - type: channel_pruning\n    latency: 1.5\n    allocation: sensitivity\n", r"latency: 1.5 is outside"),
    ("  - type: channel_pruning\n    macs: 0.7\n    allocation: greedy\n", "must be one of uniform, sensitivity"),
    ("  - type: channel_pruning\n    macs: 0.7\n    reconstruct: yes please\n", "reconstruct: must be true or false"),
    ("  - type: channel_pruning\n    macs: 0.7\n    reconstruct_images: 0\n", r"reconstruct_images: 0 is outside"),
    ("  - type: channel_pruning\n    macs: 0.7\n    reconstruct: true\n    compensate: true\n", "choose one"),
    ("  - type: channel_pruning\n    macs: 0.7\n    reconstruct: true\n    reconstruct_weighting: detections\n",
     "reconstruct_weighting: must be one of uniform, scores"),
    ("  - type: channel_pruning\n    macs: 0.7\n    between: 2\n", "between: must be true or false"),
    ("  - type: channel_pruning\n    macs: 0.7\n    damage: ap\n", "damage: ap scores the sensitivity scan"),
    ("  - type: channel_pruning\n    macs: 0.7\n    allocation: sensitivity\n    damage: psnr\n",
     "must be one of outputs, ap"),
])
def test_broken_channel_pruning_recipes_name_the_line(text, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_yaml("modifiers:\n" + text)


def test_a_macs_target_out_of_reach_says_how_low_it_can_go():
    net = build_pose_model("yolo11n-pose.yaml", nc=1, seed=0).model.float()
    with pytest.raises(InvalidInputError, match=r"ask for macs >= 0\.\d\d"):
        prune_channels_(net, ChannelPlan(macs=0.06), (96, 96))


def test_exclude_keeps_a_branch_whole():
    def cv4_shapes(ratio: float, exclude: tuple[str, ...]) -> list[tuple[int, ...]]:
        net = build_pose_model("yolo11n-pose.yaml", nc=1, seed=0).model.float()
        head = net.model[-1]
        prune_channels_(net, ChannelPlan(ratio=ratio, exclude=exclude), (96, 96))
        return [tuple(m.weight.shape) for m in head.cv4.modules() if isinstance(m, torch.nn.Conv2d)]

    dense = cv4_shapes(0.0, ())
    assert cv4_shapes(0.5, (r"^model\.23\.cv4\.",)) == dense  # the keypoint branch kept whole
    assert cv4_shapes(0.5, ()) != dense


def test_recipe_shipped_for_channels_round_trips():
    path = Path(__file__).resolve().parents[1] / "recipes" / "yolo-pose-channels-m70.yaml"
    recipe = Recipe.load(path)
    assert recipe.channel_pruning().macs == 0.70 and Recipe.from_yaml(recipe.to_yaml()) == recipe


@pytest.mark.slow
def test_sensitivity_allocation_spends_the_macs_where_they_hurt_least(default_source):
    """Each group pruned alone is scored by how far the head outputs move; the cheapest steps meet the target.
    Measured (yolo11n-pose, 160x160, the two Ultralytics images): uniform ratio 0.25 keeps 0.856 of the MACs at
    output damage 0.875; sensitivity at macs 0.8 keeps 0.794 at 0.274."""
    from posebench.compress.images import scan_images as _scan_images
    from ultralytics.utils import ASSETS

    images = _scan_images(Path(ASSETS), imgsz=160)
    dense, damage = _damage_meter(default_source, images)

    def pruned(plan: ChannelPlan) -> tuple[dict, float]:
        net = copy.deepcopy(dense)
        info = prune_channels_(net, plan, (160, 160), images if plan.allocation == "sensitivity" else None)
        return info, damage(net)

    uniform, uniform_damage = pruned(ChannelPlan(ratio=0.25))
    scanned, scanned_damage = pruned(ChannelPlan(macs=0.8, allocation="sensitivity"))
    assert scanned["macs_kept"] <= 0.8 < uniform["macs_kept"]  # more MACs removed ...
    assert scanned_damage < 0.6 * uniform_damage  # ... for much less damage
    fractions = {g["kept"] / g["channels"] for g in scanned["groups"]}
    assert len(fractions) >= 3 and 1.0 in fractions  # not one ratio: some groups untouched, others cut deep
    assert {s["groups"][0] for s in scanned["sensitivity"]} <= {g["group"] for g in scanned["groups"]}
    with pytest.raises(InvalidInputError, match="needs images"):
        prune_channels_(copy.deepcopy(dense), ChannelPlan(macs=0.8, allocation="sensitivity"), (160, 160))


def test_reconstruction_restores_what_a_pruned_channel_carried():
    """Two Ultralytics Conv blocks, the first one's channels 4-7 copies of 0-3: removing 4-7 loses half of what
    the second conv reads, and re-fitting it on images (no labels) gets the dense output back exactly (the
    copies' weights fold into the channels that stay). Without the fit the output is far off."""
    from ultralytics.nn.modules import Conv

    from posebench.compress.channel_groups import ChannelGroup
    from posebench.compress.reconstruct import reconstruct_

    torch.manual_seed(0)
    dense = torch.nn.Sequential(Conv(3, 8, 3), Conv(8, 4, 3, 2)).eval()
    with torch.no_grad():
        for tensor in (dense[0].conv.weight, dense[0].bn.weight, dense[0].bn.bias, dense[0].bn.running_mean,
                       dense[0].bn.running_var):
            tensor[4:] = tensor[:4]
    images = torch.rand(6, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    held_out = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = dense(held_out)

    def prune(fit: bool) -> tuple[torch.nn.Module, list[dict]]:
        net = copy.deepcopy(dense)
        group = ChannelGroup("g", [(net[0], torch.arange(8))], [(net[1].conv, torch.arange(8))])
        kept = apply_removals_([group], {"g": torch.arange(4, 8)})
        names = {id(m): n for n, m in net.named_modules()}
        errors = reconstruct_(net, dense, {names[k]: v for k, v in kept.items()}, images, ridge=1e-9) if fit else []
        return net, errors

    plain, _ = prune(fit=False)
    fitted, errors = prune(fit=True)
    assert fitted[1].conv.weight.shape == (4, 4, 3, 3)
    with torch.no_grad():
        scale = float(reference.abs().max())
        plain_error = float((plain(held_out) - reference).abs().max()) / scale
        fitted_error = float((fitted(held_out) - reference).abs().max()) / scale
    assert plain_error > 0.2 and fitted_error < 1e-3
    assert [e["conv"] for e in errors] == ["1.conv"] and errors[0]["error_after"] < 1e-6 < errors[0]["error_before"]


def test_reconstruction_brings_a_pruned_pose_model_back_toward_the_dense_one(default_source):
    """The real yolo11n-pose pruned by a quarter of every group's channels: fitted on Ultralytics' two sample
    images, judged on their mirror images, its head outputs move much less from the dense model's than without
    the fit, and every fitted conv's error drops. Needs no labels."""
    from posebench.compress.images import scan_images as _scan_images
    from ultralytics.utils import ASSETS

    images = _scan_images(Path(ASSETS), imgsz=160)
    fit, judge = images, images.flip(3)
    dense, damage = _damage_meter(default_source, judge)

    def pruned(reconstruct: bool) -> tuple[float, dict]:
        net = copy.deepcopy(dense)
        info = prune_channels_(net, ChannelPlan(ratio=0.25, reconstruct=reconstruct), (160, 160),
                               fit_images=fit if reconstruct else None)
        return damage(net), info

    plain, plain_info = pruned(False)
    fitted, info = pruned(True)
    assert info["macs_kept"] == plain_info["macs_kept"] < 0.9
    assert fitted < 0.5 * plain  # measured: 0.80 -> 0.25
    fit_report = info["reconstruction"]
    assert fit_report["convs"] > 20 and fit_report["images"] == len(fit)
    assert all(e["error_after"] < e["error_before"] for e in fit_report["per_conv"])
    with pytest.raises(InvalidInputError, match="reconstruct: true fits"):
        prune_channels_(copy.deepcopy(dense), ChannelPlan(ratio=0.25, reconstruct=True), (160, 160))


def test_score_weights_follow_the_dense_models_people_in_the_head_only(default_source):
    """`reconstruct_weighting: scores`: a head-branch conv's output positions weigh what the dense model's person
    score is at that anchor (plus a floor); convs outside the head are fitted uniformly (None). On Ultralytics'
    sample images (people) the P3 grid has anchors near 1 and background near the floor; a weighted fit still lowers
    every conv's error."""
    from ultralytics.utils import ASSETS

    from posebench.compress.images import scan_images as _scan_images
    from posebench.compress.reconstruct import score_weights

    images = _scan_images(Path(ASSETS), imgsz=160)
    dense = load_yolo(default_source.path).model.float().eval()
    weigh = score_weights(dense, floor=0.02)
    p3 = weigh("model.23.cv3.0.1.1.conv", images)
    assert p3.shape == (len(images), 20, 20) and weigh("model.23.cv4.2.0.conv", images).shape == (len(images), 5, 5)
    assert float(p3.min()) >= 0.02 and float(p3.max()) > 0.5 and float(p3.median()) < 0.1
    assert weigh("model.2.cv1.conv", images) is None and weigh("model.23.dfl.conv", images) is None
    net = copy.deepcopy(dense)
    info = prune_channels_(net, ChannelPlan(ratio=0.25, reconstruct=True, reconstruct_weighting="scores"), (160, 160),
                           fit_images=images)
    assert all(e["error_after"] < e["error_before"] for e in info["reconstruction"]["per_conv"])


def test_compress_reconstructs_on_the_recovery_images_and_says_when_it_has_none(default_source, tmp_path):
    """Through `compress`: the reconstruction fits on images of the calibration source (here Ultralytics' two
    sample images), records what it did, and a recipe that asks for it without any images fails before work."""
    from ultralytics.utils import ASSETS

    from posebench.compress.run import CompressOptions, compress
    from posebench.models import resolve_model

    recipe = Recipe.from_yaml("modifiers:\n  - type: channel_pruning\n    ratio: 0.25\n    imgsz: 96\n"
                              "    reconstruct: true\n    reconstruct_images: 4\n")
    assert recipe.channel_pruning().plan().reconstruct and Recipe.from_yaml(recipe.to_yaml()) == recipe
    summary = compress(resolve_model("default"), recipe, tmp_path / "fitted",
                       options=CompressOptions(calibration=Path(ASSETS), cache_dir=tmp_path / "cache"))
    fitted = summary["channel_pruning"]["reconstruction"]
    assert fitted["images"] == 2 and fitted["convs"] > 20
    assert fitted["mean_error_after"] < fitted["mean_error_before"]
    assert load_yolo(summary["checkpoint"]).model is not None
    with pytest.raises(InvalidInputError, match="reconstruct: true fits the pruned convs"):
        compress(resolve_model("default"), recipe, tmp_path / "none", options=CompressOptions())


def test_taylor_prune_removes_the_channels_with_the_smallest_loss_gradient_product(mini, default_source):
    """criterion: taylor ranks each channel by |sum p x dL/dp| of the task loss on labelled batches (conv row +
    BatchNorm), and the prune keeps exactly the highest-ranked filters."""
    from posebench.compress.taylor import loss_batches, taylor_importance_

    net = load_yolo(default_source.path).model.float()
    batches = loss_batches(mini / "coco-pose-mini.yaml", size=160, batch=4, limit=2)
    assert taylor_importance_(net, batches) == 8
    groups = [g for g in find_groups(net) if len(g.producers) == 1 and not g.depthwise and g.tied is None
              and g.producers[0][1].numel() == g.producers[0][0].conv.out_channels]  # the group is the whole conv
    group = groups[len(groups) // 2]
    block, rows = group.producers[0]
    importance = block.conv.taylor_importance[rows]
    magnitude = block.conv.weight.detach()[rows].flatten(1).norm(dim=1)
    scale, shift = block.bn.weight.detach()[rows].clone(), block.bn.bias.detach()[rows].clone()
    plan = ChannelPlan(ratio=0.5, criterion="taylor", round_to=1)
    prune_channels_(net, plan, (160, 160))
    kept = group.size - group.size // 2
    expected = importance.argsort(descending=True)[:kept].sort().values
    # the kept output channels are the highest-ranked ones (their BatchNorm rows move with them; the conv may also
    # have lost input columns to another group)
    assert block.conv.out_channels == kept and torch.equal(block.bn.weight.detach(), scale[expected])
    assert torch.equal(block.bn.bias.detach(), shift[expected])
    dropped = sorted(set(range(group.size)) - set(expected.tolist()))
    assert importance[dropped].max() <= importance[expected].min()  # the smallest products went
    by_magnitude = magnitude.argsort(descending=True)[:kept].sort().values
    assert not torch.equal(expected, by_magnitude)  # a different ranking from the filters' norms
    assert not any(hasattr(m, "taylor_importance") for m in net.modules())  # checkpoints do not carry it


def test_taylor_without_labels_or_without_importance_is_refused(default_source, tmp_path):
    from posebench.compress.run import CompressOptions, compress

    recipe = Recipe.from_yaml("modifiers:\n  - type: channel_pruning\n    ratio: 0.25\n    criterion: taylor\n")
    with pytest.raises(InvalidInputError, match="criterion: taylor ranks channels by the task loss's gradients"):
        compress(default_source, recipe, tmp_path, options=CompressOptions(cache_dir=tmp_path / "c"))
    net = load_yolo(default_source.path).model.float()
    with pytest.raises(InvalidInputError, match="has no importance"):
        prune_channels_(net, ChannelPlan(ratio=0.25, criterion="taylor"), (160, 160))


def _two_blocks() -> torch.nn.Module:
    from ultralytics.nn.modules import Conv

    torch.manual_seed(0)
    net = torch.nn.Sequential(Conv(3, 8, 3), Conv(8, 4, 3, 2)).eval()
    with torch.no_grad():
        net[0].bn.bias += 1.0  # removed channels with a clear mean activation (SiLU of ~N(1, 1))
    return net


def test_the_measured_correction_restores_the_readers_mean_and_leaves_an_unpruned_net_alone():
    """Removing channels 4-7 of a conv shifts what its reader computes by their mean contribution; moving the
    measured contribution into the reader's BatchNorm mean gives back the dense pre-activation mean on the images
    it was measured on (zero padding included). With nothing removed, the correction changes no output."""
    from posebench.compress.channel_groups import ChannelGroup, batchnorm_after
    from posebench.compress.channel_shifts import measured_shifts

    dense = _two_blocks()
    images = torch.rand(6, 3, 24, 32, generator=torch.Generator().manual_seed(1))

    def reader_input(net: torch.nn.Module) -> torch.Tensor:  # the reader's BatchNorm output, before SiLU
        with torch.no_grad():
            return net[1].bn(net[1].conv(net[0](images)))

    def pruned(drop: torch.Tensor, correct: bool) -> torch.nn.Module:
        net = copy.deepcopy(dense)
        groups = [ChannelGroup("g", [(net[0], torch.arange(8))], [(net[1].conv, torch.arange(8))])]
        removed = {"g": drop}
        shifts = measured_shifts(net, groups, removed, images) if correct else None
        apply_removals_(groups, removed, batchnorm_after(net) if correct else None, shifts)
        return net

    target = reader_input(dense).mean((0, 2, 3))
    plain = reader_input(pruned(torch.arange(4, 8), correct=False)).mean((0, 2, 3))
    fixed = reader_input(pruned(torch.arange(4, 8), correct=True)).mean((0, 2, 3))
    assert float((plain - target).abs().max()) > 0.1
    torch.testing.assert_close(fixed, target, rtol=0, atol=1e-4)
    unpruned = pruned(torch.zeros(0, dtype=torch.long), correct=True)
    with torch.no_grad():
        torch.testing.assert_close(unpruned(images), dense(images), rtol=0, atol=0)
    with pytest.raises(InvalidInputError, match="at least one image"):
        measured_shifts(copy.deepcopy(dense), [ChannelGroup("g", [(dense[0], torch.arange(8))],
                                                            [(dense[1].conv, torch.arange(8))])],
                        {"g": torch.arange(4, 8)}, images[:0])


def test_between_blocks_reaches_lower_and_cuts_the_stem():
    """With `between`, the channels blocks hand to each other are pruned too: a uniform MACs target below what the
    block-internal groups can reach is met, the stem and a downsampler narrow, and the model still predicts."""
    plan = ChannelPlan(macs=0.30, between=True, round_to=8)
    net = build_pose_model("yolo11n-pose.yaml", nc=1, seed=0).model.float().eval()
    with pytest.raises(InvalidInputError, match="ask for macs"):  # inside blocks alone, 30 % is out of reach (36 %)
        prune_channels_(copy.deepcopy(net), ChannelPlan(macs=0.30, round_to=8), (96, 96))
    info = prune_channels_(net, plan, (96, 96))
    assert info["macs_kept"] <= 0.30
    assert net.model[0].conv.out_channels < 16 and net.model[1].conv.out_channels < 32
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 3, 96, 96))
    assert out[0].shape == (1, 56, 189)  # 4 box + 1 class + 17 x 3 keypoints, 12x12 + 6x6 + 3x3 anchors
