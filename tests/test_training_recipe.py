"""The training recipe's pieces (no training run): augmentation, calibration, network, split use."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training is an optional extra (pip install torch==2.13.0)")

from training.augment import (  # noqa: E402
    affine,
    augment_batch,
    corner_swap,
    cutmix,
    dihedral,
    stain_jitter,
    white_balance,
)
from training.calibration import fit_temperature, nll  # noqa: E402
from training.model import SmearNet, count_parameters  # noqa: E402


def _batch(seed: int = 0, n: int = 6, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 0.6 + 0.2


def test_augmentation_is_seeded_in_range_and_changes_images() -> None:
    x = _batch()
    a = augment_batch(x, torch.Generator().manual_seed(7))
    b = augment_batch(x, torch.Generator().manual_seed(7))
    c = augment_batch(x, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_colour_share_decides_which_images_keep_their_colours() -> None:
    """colour_share=0 leaves each image's mean colour alone (geometry and noise only); 1 changes it."""
    x = _batch(n=16)
    before = x.mean(dim=(2, 3))

    def colour_shift(share: float) -> torch.Tensor:
        out = augment_batch(x, torch.Generator().manual_seed(3), colour_share=share, p_blur=0.0, p_res=0.0)
        return (out.mean(dim=(2, 3)) - before).abs().amax(dim=1)

    assert float(colour_shift(0.0).max()) < 0.02
    assert float(colour_shift(1.0).min()) > 0.02
    half = colour_shift(0.5)
    assert 0 < int((half > 0.02).sum()) < len(half)


def _disc(n: int, size: int = 64, radius: float = 12.0) -> torch.Tensor:
    """Dark discs ("cells") on a white background, one per image."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2) < radius**2
    return torch.where(inside, 0.2, 1.0).float().expand(n, 3, size, size).clone()


def test_zoom_range_is_log_uniform_so_cells_shrink_as_often_as_they_grow() -> None:
    x = _disc(400)
    area = (x[0, 0] < 0.6).float().sum()
    out = augment_batch(x, torch.Generator().manual_seed(2), colour_share=0.0, p_blur=0.0, p_res=0.0, zoom=(0.6, 1.65))
    ratio = (out[:, 0] < 0.6).float().sum(dim=(1, 2)) / area  # cell area changes by zoom squared
    assert float(ratio.min()) < 0.6**2 * 1.25 and float(ratio.max()) > 1.65**2 * 0.8
    assert 0.35 < float((ratio < 1).float().mean()) < 0.65
    narrow = affine(x, torch.Generator().manual_seed(2), shift=0.0, angle=0.0)  # default: 0.85-1.15
    narrow_ratio = (narrow[:, 0] < 0.6).float().sum(dim=(1, 2)) / area
    assert float(narrow_ratio.min()) > 0.85**2 * 0.9 and float(narrow_ratio.max()) < 1.15**2 * 1.1


def test_zoom_share_keeps_the_rest_of_the_batch_near_its_own_cell_size() -> None:
    x = _disc(400)
    area = (x[0, 0] < 0.6).float().sum()
    kw = dict(zoom=(0.6, 1.65), shift=0.0, angle=0.0)
    ratio = {share: (affine(x, torch.Generator().manual_seed(5), zoom_share=share, **kw)[:, 0] < 0.6).float().sum(
        dim=(1, 2)) / area for share in (1.0, 0.5)}
    near = {share: float(((r > 0.85**2 * 0.9) & (r < 1.15**2 * 1.1)).float().mean()) for share, r in ratio.items()}
    assert near[0.5] > near[1.0] + 0.25  # about half kept in the narrow range on top of the wide draws that land there
    assert float(ratio[0.5].min()) < 0.6**2 * 1.25 and float(ratio[0.5].max()) > 1.65**2 * 0.8
    same = affine(x, torch.Generator().manual_seed(5), **kw)
    assert torch.equal(same, affine(x, torch.Generator().manual_seed(5), zoom_share=1.0, **kw))


def test_cutmix_pastes_one_box_from_a_shuffled_batch_and_reports_the_own_share() -> None:
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 3, 32, 32).contiguous()
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    same, perm, own = cutmix(x, g, 0.0)
    assert same is x and perm is None and own == 1.0
    assert torch.equal(g.get_state(), state)  # p = 0 draws nothing: the recipes without CutMix are unchanged
    pasted = 0
    for _ in range(20):
        mixed, perm, own = cutmix(x, g, 1.0)
        if perm is None:
            continue
        pasted += 1
        assert torch.equal(x[:, 0, 0, 0], torch.arange(6.0))  # the input batch is not changed in place
        for i in range(6):
            from_other = (mixed[i] == x[perm[i], 0, 0, 0]).all(dim=0)
            if perm[i] != i:  # the share of each image still its own is what the loss weights its label by
                assert abs(1.0 - from_other.float().mean().item() - own) < 1e-6
            rows, cols = torch.nonzero(~(mixed[i] == x[i]).all(dim=0), as_tuple=True)
            if rows.numel():  # one rectangle
                assert rows.numel() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert pasted >= 15


def test_corner_swap_replaces_only_the_scale_bar_corner_with_another_images() -> None:
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 50, 50).contiguous()
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert corner_swap(x, g, 0.0) is x and torch.equal(g.get_state(), state)  # p = 0 draws nothing
    swapped = corner_swap(x, g, 1.0)
    assert torch.equal(x[:, 0, 0, 0], torch.arange(8.0))  # the input batch is not changed in place
    corner = swapped[:, :, -9:, -19:]  # 0.18 x 50 = 9 rows, 0.38 x 50 = 19 columns
    outside = swapped.clone()
    outside[:, :, -9:, -19:] = x[:, :, -9:, -19:]
    assert torch.equal(outside, x)  # nothing outside the corner moves
    donors = corner[:, 0, 0, 0]
    assert (corner == donors.view(8, 1, 1, 1)).all()  # each corner is one donor image's corner
    assert sorted(donors.tolist()) == list(range(8))  # donors are a permutation of the batch
    assert (donors != torch.arange(8.0)).sum() >= 4  # and most images got another image's corner
    some = [int((corner_swap(x, g, 0.5)[:, 0, -1, -1] != torch.arange(8.0)).sum()) for _ in range(50)]
    assert 1.5 < sum(some) / 50 < 6.0  # about half get swapped (a few draw themselves)


def test_white_balance_scales_each_channel_within_the_tint() -> None:
    x = torch.full((32, 3, 4, 4), 0.5)
    y = white_balance(x, torch.Generator().manual_seed(0), tint=0.15)
    gains = y[:, :, 0, 0] / 0.5
    assert float(gains.min()) >= 0.85 - 1e-6 and float(gains.max()) <= 1.15 + 1e-6
    assert float(gains.std()) > 0.03  # channels move independently, not one brightness factor


def test_dihedral_only_permutes_pixels() -> None:
    x = _batch(n=16)
    y = dihedral(x, torch.Generator().manual_seed(1))
    for i in range(16):
        assert torch.allclose(torch.sort(x[i].flatten()).values, torch.sort(y[i].flatten()).values)


def test_stain_jitter_keeps_white_background_white() -> None:
    x = torch.ones(4, 3, 8, 8)
    y = stain_jitter(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-6)  # zero optical density stays zero whatever the stain matrix


def test_temperature_fit_recovers_known_temperature() -> None:
    rng = np.random.default_rng(0)
    true_t = 2.5
    logits = rng.normal(size=(4000, 4)) * 4.0
    z = logits / true_t
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in p])
    t = fit_temperature(logits, labels)
    assert abs(t - true_t) < 0.25
    assert nll(logits, labels, t) <= nll(logits, labels, 1.0)
    assert math.isfinite(t)


class _BrightnessScorer(torch.nn.Module):
    """Logits from mean brightness: class 1 = bright (a 'model' whose errors augmentation can provoke)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 8.0 * x.mean(dim=(1, 2, 3))
        return torch.stack([-z, z], 1)


def test_separated_validation_falls_back_to_augmented_copies_for_the_temperature() -> None:
    from dataclasses import replace

    from training.calibration import TEMPERATURE_FLOOR
    from training.data import SplitArrays
    from training.train import CONFIGS, validation_temperature

    rng = np.random.default_rng(0)
    levels = np.r_[rng.uniform(30, 110, 20), rng.uniform(150, 230, 20)]  # a wide gap: separated
    images = np.stack([np.full((16, 16, 3), v) for v in levels]).astype(np.uint8)
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    separated = SplitArrays(images, labels, [f"{i}.jpg" for i in range(40)])
    plain = replace(CONFIGS["all4"], augmented_temperature=False)  # fits on the validation block when it can
    t, how = validation_temperature(_BrightnessScorer(), separated, plain)
    assert how.startswith("validation all right") and t > 2 * TEMPERATURE_FLOOR
    assert validation_temperature(_BrightnessScorer(), separated, plain) == (t, how)  # seeded

    overlapping = SplitArrays(images, labels[rng.permutation(40)], separated.files)
    t, how = validation_temperature(_BrightnessScorer(), overlapping, plain)
    assert how.startswith("val NLL") and t > 2 * TEMPERATURE_FLOOR
    # The ALL recipe fits on augmented copies even when the block has errors (rule 329cc70).
    assert CONFIGS["all4"].augmented_temperature and not plain.augmented_temperature
    t_aug, how = validation_temperature(_BrightnessScorer(), overlapping, CONFIGS["all4"])
    assert how.startswith("the recipe asks for it: fitted on 4 augmented copies") and t_aug > 2 * TEMPERATURE_FLOOR


def test_network_shapes_and_size_budget() -> None:
    model = SmearNet(8).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 128, 128))
        feats = model.features(torch.zeros(1, 3, 128, 128))
    assert out.shape == (2, 8)
    assert feats.shape[-2:] == (8, 8)  # the Grad-CAM map
    assert count_parameters(model) * 4 < 20e6  # float32 weights under the 20 MB budget


def test_colour_standardisation_removes_each_images_colour_balance() -> None:
    x = _batch(7, n=3)
    gain = torch.tensor([1.15, 1.0, 0.85]).view(1, 3, 1, 1)
    warm = x * gain + 0.05
    net = SmearNet(4, (8, 8, 8, 8, 8), standardise_colour=True).eval()
    with torch.no_grad():
        seen, seen_warm = net.colour(x), net.colour(warm)
        torch.testing.assert_close(net(x), net(warm), atol=1e-5, rtol=0)
    torch.testing.assert_close(seen, seen_warm, atol=2e-2, rtol=0)  # eps 1e-3 against variances ~0.03
    torch.testing.assert_close(seen.mean(dim=(2, 3)), torch.zeros(3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(seen.std(dim=(2, 3), correction=0), torch.ones(3, 3), atol=3e-2, rtol=0)
    assert float((x - warm).abs().max()) > 0.05  # the input did change


def test_colour_standardised_network_exports_with_verified_gradcam(tmp_path) -> None:
    """export/ verifies scores and Grad-CAM against PyTorch (it raises otherwise); the runtime's call
    then ignores a white-balance change up to the rounding of the warmed uint8 image."""
    from export.pytorch import export_pytorch
    from inference.session import ModelSession

    rgb = np.random.default_rng(5).integers(40, 200, (48, 48, 3)).astype(np.uint8)
    warm = np.clip(rgb * np.array([1.15, 1.0, 0.85]), 0, 255).astype(np.uint8)
    torch.manual_seed(3)
    net = SmearNet(4, (8, 8, 8, 8, 8), standardise_colour=True).eval()
    out = tmp_path / "standardised.onnx"
    report = export_pytorch(net, out, labels=["a", "b", "c", "d"], input_size=32, mean=(0.5,) * 3,
                            std=(0.25,) * 3, name="colour test", log=None, sample_images=[rgb, warm])
    assert report.figures["cam_correlation"] >= 0.99
    session = ModelSession.load(out)
    assert session.cam_method == "grad-cam"
    np.testing.assert_allclose(session.predict(rgb).probabilities, session.predict(warm).probabilities, atol=1e-3)


def test_old_checkpoint_configs_build_the_plain_network() -> None:
    from training.model import smearnet_for

    config = {"widths": [8, 8, 8, 8, 8]}  # written before standardise_colour existed
    assert isinstance(smearnet_for(config, 3).colour, torch.nn.Identity)
    standardise = smearnet_for({**config, "standardise_colour": True}, 3).colour
    x = _batch(2, n=2)
    torch.testing.assert_close(standardise(x), torch.nn.functional.instance_norm(x, eps=1e-3), atol=1e-5, rtol=0)


def _toy_runs(tmp_path, monkeypatch, per_class: int = 20):
    """A two-class image folder under tmp_path/data/toy; runs and cache go under tmp_path too."""
    import cv2

    import training.data
    import training.train as recipe

    rng = np.random.default_rng(0)
    for cls, colour in (("blue", (200, 60, 60)), ("red", (60, 60, 200))):  # BGR
        (tmp_path / "data" / "toy" / cls).mkdir(parents=True)
        for i in range(per_class):
            img = np.full((40, 40, 3), colour, np.uint8) + rng.integers(0, 30, (40, 40, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / "data" / "toy" / cls / f"img-{i:03d}.png"), img)
    monkeypatch.setattr(recipe, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(training.data, "CACHE_DIR", tmp_path / "cache")
    return recipe


def test_train_then_refit_on_a_tiny_image_folder(tmp_path, monkeypatch) -> None:
    """The whole recipe runs end to end (one epoch, 32 px); the refit trains on train + validation,
    keeps the validated run's temperature and leaves the validated checkpoint beside it."""
    recipe = _toy_runs(tmp_path, monkeypatch)

    def config() -> recipe.TrainConfig:
        return recipe.TrainConfig(model="toy", dataset="toy", display_names={}, size=32, epochs=2, batch_size=8,
                                  widths=(4, 4, 8, 8, 8))

    first = recipe.train(config(), tmp_path / "data")
    validated = torch.load(first, weights_only=False)
    refit = torch.load(recipe.train(config(), tmp_path / "data", refit=True), weights_only=False)
    assert (tmp_path / "runs" / "toy" / "validated_checkpoint.pt").is_file()
    assert refit["temperature"] == validated["temperature"]
    assert refit["config"]["extra"]["fit_on"] == "train+val"
    assert refit["best_epoch"] == 2 and len(refit["history"]) == 2
    assert "val_acc" not in refit["history"][-1]  # no figures on images it trained on
    assert not all(torch.equal(refit["state_dict"][n], t) for n, t in validated["state_dict"].items())
    recipe.train(config(), tmp_path / "data", refit=True)  # a second refit must not overwrite the validated run
    kept = torch.load(tmp_path / "runs" / "toy" / "validated_checkpoint.pt", weights_only=False)
    assert "fit_on" not in kept["config"]["extra"] and kept["temperature"] == validated["temperature"]

    # Another seed of the same recipe goes to its own run folder and leaves the first run alone.
    monkeypatch.setattr(recipe, "CONFIGS", {"toy": config()})
    before = (tmp_path / "runs" / "toy" / "checkpoint.pt").read_bytes()
    assert recipe.main(["toy", "--data", str(tmp_path / "data"), "--seed", "7", "--run", "toy_seed7"]) == 0
    other = torch.load(tmp_path / "runs" / "toy_seed7" / "checkpoint.pt", weights_only=False)
    assert other["config"]["seed"] == 7 and other["config"]["model"] == "toy_seed7"
    assert (tmp_path / "runs" / "toy" / "checkpoint.pt").read_bytes() == before

    # A second schedule at another size starts from the first run's weights (a tiny learning rate keeps
    # the convolutions where they were; a random start could not match them).
    start = torch.load(first, weights_only=False)["state_dict"]  # the refit's weights by now
    monkeypatch.setattr(recipe, "CONFIGS", {"toy": config()})
    assert recipe.main(["toy", "--data", str(tmp_path / "data"), "--init", str(first), "--size", "48",
                        "--lr", "1e-9", "--epochs", "1", "--run", "toy_ft"]) == 0
    tuned = torch.load(tmp_path / "runs" / "toy_ft" / "checkpoint.pt", weights_only=False)
    assert tuned["config"]["size"] == 48 and tuned["config"]["lr"] == 1e-9
    assert tuned["config"]["extra"]["init_from"] == first.as_posix()
    convs = [n for n in start if n.endswith("conv1.weight")]
    assert convs
    for n in convs:
        torch.testing.assert_close(tuned["state_dict"][n], start[n], atol=1e-6, rtol=0)


def test_robustness_transforms_keep_the_image_shape_and_do_what_their_names_say() -> None:
    from training.robustness import TRANSFORMS, _zoom

    rgb = np.full((90, 100, 3), 230, np.uint8)
    rgb[35:55, 40:60] = (90, 40, 140)  # a 20x20 "cell"
    for name, fn in TRANSFORMS.items():
        out = fn(rgb)
        assert out.dtype == np.uint8, name
        if "16:9" in name:
            assert out.shape == (90, 160, 3) and np.array_equal(out[:, 30:130], rgb)
        else:
            assert out.shape == rgb.shape, name
    cell = lambda img: int((img[:, :, 1] < 120).sum())  # noqa: E731
    assert cell(_zoom(rgb, 0.6)) == pytest.approx(400 * 0.36, rel=0.25)
    assert cell(_zoom(rgb, 1.6)) == pytest.approx(400 * 2.56, rel=0.15)
    warm = TRANSFORMS["camera: warm white balance (R x1.15, B x0.85)"](rgb)
    assert warm[0, 0, 0] == 255 and warm[0, 0, 2] == int(230 * 0.85)


def test_flip_trial_transforms_are_the_eight_symmetries_of_the_square() -> None:
    from training.flip_trial import FLIPS, MIRROR
    from training.flip_trial import dihedral as np_dihedral

    img = np.arange(2 * 5 * 5 * 3, dtype=np.uint8).reshape(2, 5, 5, 3)
    copies = [np_dihedral(img, t) for t in range(8)]
    assert len({c.tobytes() for c in copies}) == 8
    ident, lr, ud, half_turn = (copies[t] for t in FLIPS)
    assert np.array_equal(ident, img)
    assert np.array_equal(lr, img[:, :, ::-1])
    assert np.array_equal(ud, img[:, ::-1])
    assert np.array_equal(half_turn, img[:, ::-1, ::-1])
    assert np.array_equal(copies[MIRROR[0]], img) and np.array_equal(copies[MIRROR[1]], img[:, :, ::-1])


def test_ensemble_is_the_mean_of_its_members_temperature_scaled_logits() -> None:
    from training.ensemble import LogitMeanEnsemble

    torch.manual_seed(0)
    members = [SmearNet(3, (4, 8, 8, 8, 12)).eval(), SmearNet(3, (4, 8, 8, 8, 16), standardise_colour=True).eval()]
    temperatures = [0.5, 2.0]
    ensemble = LogitMeanEnsemble(members, temperatures).eval()
    x = _batch(n=3, size=32)
    with torch.no_grad():
        expected = (members[0](x) / 0.5 + members[1](x) / 2.0) / 2
        joined = ensemble.joined(torch.cat([m.features(m.colour(x)) for m in members], 1))
        got = ensemble(x)
    assert joined.shape[1] == 12 + 16  # one Grad-CAM map over both members' channels
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        LogitMeanEnsemble(members[:1], [1.0])


def test_card_says_how_a_refit_was_trained_and_how_to_reproduce_it() -> None:
    """A refitted model's card names the refit and its reproduce line includes the --refit command
    (it used to give only the validated run's command)."""
    from training.export_model import _schedule, _train_commands

    def ckpt(epochs: int, extra: dict) -> dict:
        return {"config": {"extra": extra}, "history": [{}] * epochs, "best_epoch": epochs - 2,
                "train_seconds": 60.0 * epochs}

    refit = ckpt(30, {"fit_on": "train+val"})
    assert _schedule(refit).startswith("30 epochs on the train + validation blocks, 30 min on 2 shared CPU cores")
    assert _schedule(ckpt(14, {})) == "14 epochs, 14 min on 2 shared CPU cores (best 12 by validation)"
    assert _train_commands("pbc", refit) == "python -m training.train pbc && python -m training.train pbc --refit"
    assert _train_commands("aml", ckpt(14, {})) == "python -m training.train aml"


def test_card_says_where_the_weights_started() -> None:
    from training.export_model import VERSIONS, _start_words

    assert _start_words({"config": {"extra": {}}}) == "from scratch"
    started = {"config": {"start_from": "pbc", "extra": {"init_from": "training/runs/pbc_pre/checkpoint.pt"}}}
    assert _start_words(started).startswith("starting from the pbc recipe's validated network "
                                            "(training/runs/pbc_pre/checkpoint.pt")
    assert _start_words({"config": {"extra": {"init_from": "a.pt"}}}) == "starting from a.pt"
    pre = "training/runs/pbc_pre/checkpoint.pt"
    for dataset, head in (("pbc", "same classes"), ("all4", "new classifier layer")):
        words = _start_words({"config": {"dataset": dataset, "start_from": "pbc_pre", "extra": {"init_from": pre}}})
        assert words == (f"starting from the validated pbc network pbc_pre ({pre}: 30 epochs at 128 px from random "
                         f"weights, trained first by the same command; {head})")
    refit = "training/runs/pbc160/checkpoint.pt"
    words = _start_words({"config": {"dataset": "all4", "start_from": "pbc160", "extra": {"init_from": refit}}})
    assert VERSIONS["pbc160"] == "1.1.0" != VERSIONS["pbc"]
    assert words == (f"starting from the refit of the pbc recipe pbc160 ({refit}: shipped as hemalens-pbc 1.1.0, 15 "
                     "epochs at 160 px, trained first by the same command; new classifier layer)")


def test_command_line_overrides_reach_the_run_and_leave_the_recipe_as_written(monkeypatch) -> None:
    import training.train as tt

    seen = {}
    def fake_train(cfg, data, refit=False, init=None):
        seen.update(cfg=cfg, refit=refit, init=init)

    monkeypatch.setattr(tt, "train", fake_train)
    assert tt.main(["pbc", "--run", "pbc_x", "--size", "192", "--epochs", "10", "--lr", "0.002", "--colour-share", "1",
                    "--cutmix", "0.5", "--corner-swap", "0.5", "--zoom", "0.7", "1.5", "--tint", "0.1",
                    "--zoom-share", "0.25", "--init", "runs/a.pt", "--refit"]) == 0
    cfg = seen["cfg"]
    assert (cfg.model, cfg.size, cfg.epochs, cfg.lr) == ("pbc_x", 192, 10, 0.002)
    assert (cfg.colour_share, cfg.cutmix, cfg.corner_swap) == (1.0, 0.5, 0.5)
    assert (cfg.zoom, cfg.tint, cfg.zoom_share) == ((0.7, 1.5), 0.1, 0.25)
    assert seen["refit"] and str(seen["init"]) == "runs/a.pt"
    recipe = tt.CONFIGS["pbc"]
    assert (recipe.model, recipe.size, recipe.epochs, recipe.lr, recipe.colour_share, recipe.cutmix,
            recipe.corner_swap) == ("pbc", 160, 15, 1e-3, 0.5, 0.0, 0.0)
    assert (recipe.zoom, recipe.tint, recipe.zoom_share) == ((0.6, 1.65), 0.15, 0.5)


def test_crossval_judges_the_same_recipe_variant_that_training_would_train(monkeypatch) -> None:
    import training.crossval as cv
    import training.train as tt

    seen = {}
    def fake_crossval(cfg, data, folds, init):
        seen.update(cfg=cfg, folds=folds, init=init)
        return {"temperature": 1.0}

    monkeypatch.setattr(cv, "crossval", fake_crossval)
    monkeypatch.setattr(cv, "pretrained_start", lambda cfg, data: None)
    options = ["--run", "all4_zh", "--zoom", "0.6", "1.65", "--zoom-share", "0.5", "--tint", "0.15", "--size", "144",
               "--standardise-colour"]
    assert cv.main(["all4", *options, "--folds", "3", "--figures-only"]) == 0
    trained = {}
    monkeypatch.setattr(tt, "train", lambda cfg, data, refit=False, init=None: trained.update(cfg=cfg))
    monkeypatch.setattr(tt, "pretrained_start", lambda cfg, data: None)
    assert tt.main(["all4", *options]) == 0
    assert seen["cfg"] == trained["cfg"] and seen["folds"] == 3
    assert (seen["cfg"].zoom, seen["cfg"].zoom_share, seen["cfg"].tint, seen["cfg"].size) == ((0.6, 1.65), 0.5, 0.15,
                                                                                             144)
    assert seen["cfg"].standardise_colour and seen["cfg"].model == "all4_zh"


def test_scale_bar_probe_counts_the_calls_a_swapped_corner_changes() -> None:
    from training.scale_bar_probe import corner_sensitivity, with_corner_of

    def field(cls: int, size: int = 50) -> np.ndarray:
        img = np.full((size, size, 3), 200, np.uint8)
        img[-5:, -10:] = (255, 0, 0) if cls == 0 else (0, 0, 0)  # class-coded "scale bar"
        img[:10, :10] = cls * 100  # class-coded "cells", away from the corner
        return img

    donor = field(1, 100)
    moved = with_corner_of(field(0), donor)
    assert (moved[-2:, -5:] == 0).all()  # the donor's bar, scaled to this image's size
    assert (moved[-9:, -19:] == 200).sum() > 0.9 * (9 * 19 - 10)  # 0.18 x 50 rows, 0.38 x 50 columns: donor background
    assert (moved[:-9, :] == field(0)[:-9, :]).all() and (moved[:, :-19] == field(0)[:, :-19]).all()

    def reads_bar(images: list[np.ndarray]) -> np.ndarray:
        red = np.array([float(x[-1, -1, 0] > 128) for x in images])
        return np.stack([red, 1 - red], 1)

    def reads_cells(images: list[np.ndarray]) -> np.ndarray:
        c1 = np.array([float(x[0, 0, 0] > 50) for x in images])
        return np.stack([1 - c1, c1], 1)

    test = [(field(0), 0)] * 4 + [(field(1), 1)] * 6
    donors = [(field(0), 0), (field(1), 1)]
    bar = corner_sensitivity(reads_bar, test, reads_bar([x for x, _ in test]).argmax(1), donors, ["A", "B"])
    assert bar["accuracy"] == 1.0
    assert bar["by_donor_class"]["A"] == {"accuracy": 0.4, "calls_changed": 0.6, "calls_moved_to_donor_class": 6,
                                         "calls_moved_away_from_it": 0}
    assert bar["by_donor_class"]["B"]["calls_changed"] == 0.4 and bar["mean_calls_changed"] == 0.5
    cells = corner_sensitivity(reads_cells, test, reads_cells([x for x, _ in test]).argmax(1), donors, ["A", "B"])
    assert cells["mean_calls_changed"] == 0.0 and cells["by_donor_class"]["A"]["accuracy"] == 1.0


def test_weights_from_a_model_with_other_classes_fill_all_but_the_classifier() -> None:
    from training.model import SmearNet, load_matching_weights

    torch.manual_seed(0)
    donor = SmearNet(8, (8, 8, 16, 16, 24))
    target = SmearNet(4, (8, 8, 16, 16, 24))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    fresh = load_matching_weights(target, donor.state_dict())
    assert fresh == ["fc.bias", "fc.weight"]
    for k, v in target.state_dict().items():
        if k.startswith("fc."):
            assert torch.equal(v, before[k])  # the 4-class head keeps its own initialisation
        else:
            assert torch.equal(v, donor.state_dict()[k])
    assert target(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_the_all_recipe_starts_from_the_blood_cell_refit_and_trains_it_first_when_missing(
        monkeypatch, tmp_path: Path) -> None:
    import training.train as tt

    calls = []

    def fake_train(cfg, data, refit=False, init=None):
        calls.append((cfg.model, cfg.dataset, cfg.start_from, refit, init))
        (tmp_path / cfg.model).mkdir(exist_ok=True)
        torch.save({"config": {"extra": {"fit_on": "train+val"} if refit else {}}},
                   tmp_path / cfg.model / "checkpoint.pt")

    monkeypatch.setattr(tt, "train", fake_train)
    monkeypatch.setattr(tt, "RUNS", tmp_path)
    assert tt.main(["all4"]) == 0  # nothing yet: pbc_pre, then the blood-cell recipe and its refit, then all4
    pre, pbc = tmp_path / "pbc_pre" / "checkpoint.pt", tmp_path / "pbc160" / "checkpoint.pt"
    assert calls == [("pbc_pre", "pbc", "", False, None), ("pbc160", "pbc", "pbc_pre", False, pre),
                     ("pbc160", "pbc", "pbc_pre", True, pre), ("all4", "all4", "pbc160", False, pbc)]
    calls.clear()
    assert tt.main(["all4", "--refit"]) == 0  # now it is there: reused, the refit starts from it too
    assert calls == [("all4", "all4", "pbc160", True, pbc)]
    calls.clear()
    fake_train(tt.START_RECIPES["pbc160"], None)  # a validated blood-cell run only: not what ships, so refit first
    calls.clear()
    assert tt.main(["aml"]) == 0
    assert calls == [("pbc160", "pbc", "pbc_pre", False, pre), ("pbc160", "pbc", "pbc_pre", True, pre),
                     ("aml", "aml", "pbc160", False, pbc)]
    calls.clear()
    assert tt.main(["all4", "--start-from", "pbc_pre", "--run", "all4_pre"]) == 0
    assert calls == [("all4_pre", "all4", "pbc_pre", False, pre)]
    calls.clear()
    assert tt.main(["all4", "--start-from", "none", "--run", "all4_scratch"]) == 0
    assert calls == [("all4_scratch", "all4", "", False, None)]
    calls.clear()
    assert tt.main(["pbc", "--run", "pbc2"]) == 0 and calls == [("pbc2", "pbc", "pbc_pre", False, pre)]
    calls.clear()
    assert tt.main(["pbc", "--start-from", "none", "--run", "pbc_scratch"]) == 0
    assert calls == [("pbc_scratch", "pbc", "", False, None)]
    assert (tt.CONFIGS["all4"].start_from, tt.CONFIGS["aml"].start_from) == ("pbc160", "pbc160")
    assert tt.CONFIGS["pbc"].start_from == "pbc_pre"


def test_the_blood_cell_recipe_is_a_second_schedule_of_its_start_network() -> None:
    import training.train as tt

    base, pbc160, pbc = tt.STARTS["pbc_pre"], tt.START_RECIPES["pbc160"], tt.CONFIGS["pbc"]
    assert (base.size, base.epochs, base.zoom, base.start_from) == (128, 30, None, "")
    assert (pbc160.size, pbc160.epochs, pbc160.lr, pbc160.zoom, pbc160.zoom_share, pbc160.tint) == (
        160, 15, 1e-3, (0.6, 1.65), 0.5, 0.15)
    assert (pbc160.dataset, pbc160.colour_share, pbc160.p_blur, pbc160.p_res, pbc160.seed) == (
        base.dataset, base.colour_share, base.p_blur, base.p_res, base.seed)
    # Blood cell types 1.2.0 is the 1.1.0 recipe (the start of the ALL and AML recipes) with per-image colour
    # standardisation, nothing else.
    assert pbc == replace(pbc160, model="pbc", standardise_colour=True) and not pbc160.standardise_colour
    # The start recipe trains by its own name too: its two commands give back blood cell types 1.1.0's refit.
    parser = tt.argparse.ArgumentParser()
    tt.add_recipe_options(parser)
    assert tt.recipe_from_options(parser.parse_args(["pbc160"])) == pbc160


def test_bar_styles_are_told_apart_and_errors_are_counted_per_style() -> None:
    from training.scale_bar_probe import bar_style, errors_by_bar_style

    pale = np.full((224, 224, 3), 215, np.uint8)
    large = pale.copy()
    large[196:222, 170:222] = 255  # white box ...
    large[205:209, 175:220] = 0  # ... with a black bar and text
    red = pale.copy()
    red[210:214, 190:200] = (220, 30, 30)
    assert [bar_style(x) for x in (large, red, pale)] == ["large box", "red text", "other"]
    assert bar_style(np.zeros((100, 100, 3), np.uint8)) == "other"  # not the data set's size: no guess
    test = [(large, 0), (large, 0), (red, 0), (pale, 1)]
    assert errors_by_bar_style(np.array([1, 0, 0, 1]), test, ["Benign", "Early Pre-B"]) == {
        "Benign": {"large box": "1/2", "red text": "0/1"}, "Early Pre-B": {"other": "0/1"}}


def test_cross_validation_folds_are_contiguous_file_number_blocks_within_each_class() -> None:
    from training.crossval import block_folds

    labels = np.array([0] * 10 + [1] * 5 + [2] * 3)
    fold = block_folds(labels, 3)
    assert fold[:10].tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert fold[10:15].tolist() == [0, 0, 1, 1, 2]
    assert fold[15:].tolist() == [0, 1, 2]


def test_cross_validation_predicts_every_train_and_validation_image_from_a_model_that_never_saw_it(
        tmp_path, monkeypatch) -> None:
    """Out-of-fold logits for the pooled train + validation blocks (in file-number order per class), never
    the test block, and a temperature fitted on them."""
    import json

    import training.crossval as cv

    recipe = _toy_runs(tmp_path, monkeypatch)
    monkeypatch.setattr(cv, "RUNS", tmp_path / "runs")
    cfg = recipe.TrainConfig(model="toy", dataset="toy", display_names={}, size=32, epochs=2, batch_size=4,
                             widths=(4, 4, 8, 8, 8))
    returned = cv.crossval(cfg, tmp_path / "data", 2, None)
    oof = np.load(tmp_path / "runs" / "toy_cv" / "oof.npz")
    files = [str(f) for f in oof["files"]]
    assert len(files) == 34 and int(oof["done"]) == 2  # 17 of 20 per class: train + validation blocks
    assert files[:17] == [f"blue/img-{i:03d}.png" for i in range(17)]
    assert not any(f.endswith(("017.png", "018.png", "019.png")) for f in files)  # the test block
    assert oof["fold"].tolist() == [0] * 9 + [1] * 8 + [0] * 9 + [1] * 8
    assert np.abs(oof["logits"]).sum(1).min() > 0  # every image was predicted
    summary = json.loads((tmp_path / "runs" / "toy_cv" / "summary.json").read_text())
    assert summary["temperature"] > 0 and len(summary["per_fold_accuracy"]) == 2
    assert np.asarray(summary["confusion"]).sum() == 34
    assert returned == summary  # main() takes the temperature from the return value, not the file


def test_the_cross_validated_temperature_goes_into_a_refit_and_says_so() -> None:
    from training.crossval import with_crossval_temperature
    from training.export_model import _schedule, _temperature_words, _train_commands

    state = {"fc.bias": torch.zeros(4)}
    refit = {"state_dict": state, "temperature": 0.5, "history": [{}] * 30, "best_epoch": 30,
             "train_seconds": 420.0, "config": {"extra": {"fit_on": "train+val", "temperature_from": "validated run"}}}
    new = with_crossval_temperature(refit, 0.593, 5)
    assert new["temperature"] == 0.593 and refit["temperature"] == 0.5 and new["state_dict"] is state
    assert new["config"]["extra"]["crossval_folds"] == 5
    assert _train_commands("all4", new) == ("python -m training.train all4 && python -m training.train all4 --refit "
                                            "&& python -m training.crossval all4")
    assert "temperature from a 5-fold block cross-validation" in _schedule(new)
    assert "out-of-fold" in _temperature_words(new) and _temperature_words(refit) == "fitted on validation"
    with pytest.raises(ValueError, match="refit"):
        with_crossval_temperature({**refit, "config": {"extra": {}}}, 0.6, 5)


def test_cross_validation_asks_for_the_refit_before_it_spends_half_an_hour(tmp_path, monkeypatch, capsys) -> None:
    import training.crossval as cv

    monkeypatch.setattr(cv, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(cv, "crossval", lambda *a, **k: pytest.fail("cross-validation ran without a refit"))
    assert cv.main(["all4", "--data", str(tmp_path)]) == 1
    assert "--refit first" in capsys.readouterr().out


def test_cross_validation_can_compare_a_recipe_variant_without_touching_any_refit(tmp_path, monkeypatch) -> None:
    import training.crossval as cv
    import training.train as tt

    seen = {}
    monkeypatch.setattr(cv, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(cv, "pretrained_start", lambda cfg, data: None)
    monkeypatch.setattr(cv, "crossval",
                        lambda cfg, data, folds, init: seen.update(cfg=cfg, folds=folds) or {"temperature": 0.6})
    assert cv.main(["all4", "--data", str(tmp_path), "--figures-only", "--size", "160", "--run", "all4_160"]) == 0
    assert (seen["cfg"].size, seen["cfg"].model, seen["folds"]) == (160, "all4_160", 5)
    assert tt.CONFIGS["all4"].size == 128 and not (tmp_path / "runs").exists()


def test_cross_validation_can_start_every_fold_from_another_network_only_to_compare(tmp_path, monkeypatch,
                                                                                    capsys) -> None:
    import training.crossval as cv

    seen = {}
    start = tmp_path / "other.pt"
    monkeypatch.setattr(cv, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(cv, "pretrained_start", lambda cfg, data: pytest.fail("the recipe's start was trained"))
    monkeypatch.setattr(cv, "crossval",
                        lambda cfg, data, folds, init: seen.update(init=init) or {"temperature": 0.6})
    assert cv.main(["all4", "--data", str(tmp_path), "--init", str(start)]) == 1  # would mislabel the refit
    assert "--figures-only" in capsys.readouterr().out and not seen
    assert cv.main(["all4", "--data", str(tmp_path), "--init", str(start), "--figures-only", "--run", "x"]) == 0
    assert seen["init"] == start


def test_card_names_the_zoom_range_and_the_share_of_each_batch_it_was_given() -> None:
    from training.export_model import _zoom_words

    assert _zoom_words({}) == "zoom 0.85-1.15x, "
    assert _zoom_words({"zoom": [0.6, 1.65], "tint": 0.15}) == (
        "zoom 0.6-1.65x log-uniform, white-balance gains 1 +- 0.15, ")
    assert _zoom_words({"zoom": [0.6, 1.65], "zoom_share": 0.5}).startswith(
        "zoom 0.6-1.65x log-uniform on 50% of each batch (0.85-1.15x on the rest)")


def test_a_trial_candidate_is_exported_beside_not_over_the_shipped_model(tmp_path, monkeypatch, capsys) -> None:
    """`--checkpoint RUN/validated_checkpoint.pt --out DIR` writes a runnable, self-describing file under the
    run's own id into DIR, leaves assets/models alone and scores no block; a lone flag is refused."""
    import training.export_model as em
    from inference.session import ModelSession

    recipe = _toy_runs(tmp_path, monkeypatch, per_class=40)  # a train block big enough for the typical-image reference
    config = recipe.TrainConfig(model="toy", dataset="toy", display_names={"blue": "Blue", "red": "Red"}, size=32,
                                epochs=2, batch_size=8, widths=(4, 4, 8, 8, 8))
    monkeypatch.setattr(recipe, "CONFIGS", {"toy": config})
    monkeypatch.setattr(em, "CONFIGS", {"toy": config})
    monkeypatch.setattr(em, "ASSETS", tmp_path / "assets")
    monkeypatch.setattr(em, "DATASETS", {"toy": {**em.DATASETS["pbc"], "name": "Toy colours"}})
    monkeypatch.setattr(em, "VERSIONS", {"toy": "1.0.0"})
    monkeypatch.setattr(em, "measure", lambda *a, **k: pytest.fail("a candidate must not be scored"))
    recipe.train(config, tmp_path / "data")
    recipe.train(config, tmp_path / "data", refit=True)
    data = ["--data", str(tmp_path / "data")]

    for lone in (["--out", str(tmp_path / "cand")], ["--checkpoint", str(tmp_path / "x.pt")]):
        with pytest.raises(SystemExit):
            em.main(["toy", *data, *lone])
    assert not (tmp_path / "cand").exists()

    for ckpt, run in (("validated_checkpoint.pt", "toy-validated"), ("checkpoint.pt", "toy-refit")):
        assert em.main(["toy", *data, "--checkpoint", str(tmp_path / "runs" / "toy" / ckpt),
                        "--out", str(tmp_path / "cand")]) == 0
        session = ModelSession.load(tmp_path / "cand" / f"hemalens-toy-{run}.onnx")
        assert session.spec.id == f"hemalens-toy-{run}" and session.spec.version == f"1.0.0+{run}"
        assert session.spec.name == f"Toy colours (trial candidate {run})"
        assert session.spec.labels == ["Blue", "Red"] and session.cam_method == "grad-cam"
        assert session.spec.training_reference is not None  # "unlike training" notes work on it too
        assert f"robustness {tmp_path / 'cand' / f'hemalens-toy-{run}.onnx'} " in capsys.readouterr().out
    assert not (tmp_path / "assets").exists()
