from __future__ import annotations

import pytest
import torch

from vidstyle.config import OptimConfig, StyleConfig
from vidstyle.features import Backbone
from vidstyle.io.encode import chroma_blocks
from vidstyle.io.images import load_image
from vidstyle.optimize import FrameStylizer, _converged, seen_as_delivered


@pytest.fixture()
def content() -> torch.Tensor:
    from vidstyle.samples import render_scene_frame

    frame = render_scene_frame(0, width=96, height=64)
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255


def test_loss_decreases_and_pixels_stay_in_range(lite0: Backbone, styles, content) -> None:
    stylizer = FrameStylizer(
        lite0, [load_image(styles[0])], style=StyleConfig(), optim=OptimConfig(early_stop=0),
        frame_size=(64, 96),
    )
    losses: list[float] = []
    out, stats = stylizer.stylize(content, content, iterations=15,
                                  on_iteration=lambda i, loss: losses.append(loss))
    assert stats.iterations == 15 and len(losses) == 15 and not stats.stopped_early
    assert losses[-1] < 0.7 * losses[0]
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert not out.requires_grad


def test_early_stop_ends_a_settled_frame(lite0: Backbone, styles, content) -> None:
    stylizer = FrameStylizer(
        lite0, [load_image(styles[0])], style=StyleConfig(),
        optim=OptimConfig(early_stop=0.5, patience=2), frame_size=(64, 96),
    )
    _, stats = stylizer.stylize(content, content, iterations=50)
    # Never in the first half, where a warm-started frame's loss is flat before it settles.
    assert stats.stopped_early and 25 <= stats.iterations < 50


def test_step_schedule_goes_from_lr_to_its_final_fraction() -> None:
    from vidstyle.optimize import _cosine

    steps = [_cosine(i, 50, 0.1) for i in range(50)]
    assert steps[0] == 1.0 and abs(steps[-1] - 0.1) < 1e-12
    assert all(a >= b for a, b in zip(steps, steps[1:]))  # never grows
    assert _cosine(0, 1, 0.1) == 1.0  # one iteration: the full step


def test_converged_rule() -> None:
    assert not _converged([10, 9, 8], 0.01, 5)  # not enough history
    assert _converged([10, 10, 10, 10], 0.01, 2)
    assert not _converged([10, 8, 6, 4], 0.01, 2)
    assert not _converged([10, 10, 10, 10], 0.0, 2)  # 0 disables


def test_temporal_term_pulls_towards_warped(lite0: Backbone, styles, content) -> None:
    stylizer = FrameStylizer(
        lite0, [load_image(styles[0])], style=StyleConfig(temporal_weight=1e5),
        # A constant step: this pins the loss term, not the step schedule.
        optim=OptimConfig(early_stop=0, lr_decay=1.0), frame_size=(64, 96),
    )
    previous, _ = stylizer.stylize(content, content, iterations=20)
    # The next frame's input differs (a brighter exposure): with the temporal term the result
    # stays near the previous stylized frame where the mask trusts it, without it it drifts.
    brighter = (content * 1.3).clamp(0, 1)
    ones = torch.ones(1, 1, 64, 96)
    pulled, _ = stylizer.stylize(brighter, previous, iterations=30, warped=previous, mask=ones)
    free, _ = stylizer.stylize(brighter, previous, iterations=30, warped=previous, mask=ones * 0)
    assert (pulled - previous).abs().mean() < 0.6 * (free - previous).abs().mean()


def test_blended_targets_are_weighted_means(lite0: Backbone, styles) -> None:
    imgs = [load_image(p) for p in styles]
    kw = dict(style=StyleConfig(), optim=OptimConfig(), frame_size=(64, 96))
    a = FrameStylizer(lite0, imgs[:1], **kw).targets
    b = FrameStylizer(lite0, imgs[1:], **kw).targets
    mixed = FrameStylizer(lite0, imgs, blend=[0.75, 0.25], **kw).targets
    for layer in a:
        torch.testing.assert_close(mixed[layer], 0.75 * a[layer] + 0.25 * b[layer])
    with pytest.raises(ValueError, match="blend"):
        FrameStylizer(lite0, imgs, blend=[1.0], **kw)


def test_lbfgs_also_lowers_the_loss(lite0: Backbone, styles, content) -> None:
    stylizer = FrameStylizer(
        lite0, [load_image(styles[0])], style=StyleConfig(),
        optim=OptimConfig(optimizer="lbfgs", early_stop=0), frame_size=(64, 96),
    )
    losses: list[float] = []
    stylizer.stylize(content, content, iterations=8, on_iteration=lambda i, v: losses.append(v))
    assert losses[-1] < losses[0]


def test_keep_colors_takes_luminance_from_stylized_and_chroma_from_content() -> None:
    import kornia

    from vidstyle.optimize import keep_colors

    stylized = torch.rand(1, 3, 16, 16) * 0.8 + 0.1
    content = torch.rand(1, 3, 16, 16) * 0.8 + 0.1
    out = keep_colors(stylized, content)
    y_out, y_sty = (kornia.color.rgb_to_ycbcr(t)[:, :1] for t in (out, stylized))
    c_out, c_con = (kornia.color.rgb_to_ycbcr(t)[:, 1:] for t in (out, content))
    # Exact up to clipping at the RGB cube's edges.
    assert (y_out - y_sty).abs().mean() < 0.02
    assert (c_out - c_con).abs().mean() < 0.02


def test_blended_style_lies_between_the_single_styles(lite0: Backbone, styles, content) -> None:
    from vidstyle.losses import style_loss

    imgs = [load_image(p) for p in styles]
    kw = dict(style=StyleConfig(), optim=OptimConfig(early_stop=0), frame_size=(64, 96))
    only_a, only_b = FrameStylizer(lite0, imgs[:1], **kw), FrameStylizer(lite0, imgs[1:], **kw)
    mixed = FrameStylizer(lite0, imgs, blend=[0.5, 0.5], **kw)
    results = {name: s.stylize(content, content, iterations=40)[0]
               for name, s in (("a", only_a), ("b", only_b), ("mix", mixed))}

    def gram_distance(x: torch.Tensor, targets: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return float(style_loss(lite0(x, tuple(targets)), targets))

    to_a = {k: gram_distance(v, only_a.targets) for k, v in results.items()}
    to_b = {k: gram_distance(v, only_b.targets) for k, v in results.items()}
    assert to_a["a"] < to_a["mix"] < to_a["b"], to_a
    assert to_b["b"] < to_b["mix"] < to_b["a"], to_b


def _run(lite0: Backbone, style: torch.Tensor, content: torch.Tensor, iterations: int = 20,
         **optim: object):
    stylizer = FrameStylizer(
        lite0, [style], style=StyleConfig(),
        optim=OptimConfig(**{"early_stop": 0.0, **optim}),  # type: ignore[arg-type]
        frame_size=(64, 96),
    )
    return stylizer, stylizer.stylize(content, content, iterations=iterations)


def test_bf16_features_agree_with_float32(lite0: Backbone, styles, content) -> None:
    """The fast path changes the arithmetic inside the network, not the picture."""
    style = load_image(styles[0])
    fast, (out16, stats16) = _run(lite0, style, content, precision="bf16")
    exact, (out32, stats32) = _run(lite0, style, content, precision="float32")
    assert fast.precision == "bf16" and exact.precision == "float32"
    # Features and losses come back in float32 (accumulated in float32).
    assert all(f.dtype == torch.float32 for f in fast.features(content, fast.taps).values())
    assert out16.dtype == torch.float32
    # Pixel optimization amplifies small differences (the strokes grow in slightly different
    # places), so the check is on what matters: both moved the frame the same way, and the
    # bf16 result scores as well as the float32 one by the float32 objective.
    move16, move32 = out16 - content, out32 - content
    cosine = torch.nn.functional.cosine_similarity(move16.flatten(), move32.flatten(), dim=0)
    assert cosine > 0.9
    with torch.no_grad():
        targets = exact.features(content, exact.content_layers)
        score16 = float(exact.loss(out16, targets, None, None))
        score32 = float(exact.loss(out32, targets, None, None))
    assert abs(score16 - score32) < 0.05 * score32
    assert abs(stats16.loss - stats32.loss) < 0.05 * stats32.loss


def test_precision_resolves_per_device() -> None:
    from vidstyle.optimize import resolve_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "float32"
    assert resolve_precision("auto", cuda) == "tf32"
    assert resolve_precision("tf32", cpu) == "float32"  # no TF32 units on a CPU
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp16'.*did you mean 'bf16'"):
        OptimConfig(precision="fp16")


@pytest.mark.slow
def test_compiled_network_gives_the_eager_result(lite0: Backbone, styles, content) -> None:
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on a CPU needs a C++ compiler")
    style = load_image(styles[0])
    # A few steps: over many, float rounding in another order grows into other strokes.
    _, (compiled, _) = _run(lite0, style, content, iterations=3, compile=True)
    _, (eager, _) = _run(lite0, style, content, iterations=3)
    torch.testing.assert_close(compiled, eager, atol=1e-3, rtol=0)


def test_reading_losses_a_step_late_changes_nothing_but_the_stop(
    lite0: Backbone, styles, content
) -> None:
    """On a GPU losses are read one step late, so the device never idles; same frames."""
    style = load_image(styles[0])
    exact, _ = _run(lite0, style, content)
    lagged, _ = _run(lite0, style, content)
    lagged.read_lag = 1
    seen: list[tuple[int, float]] = []
    a, stats_a = exact.stylize(content, content, iterations=12)
    b, stats_b = lagged.stylize(content, content, iterations=12,
                                on_iteration=lambda i, loss: seen.append((i, loss)))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert stats_a == stats_b and [i for i, _ in seen] == list(range(1, 13))
    # With early stopping, the lagged loop stops one step after the rule fired.
    early = {"early_stop": 0.5, "patience": 2}
    exact, _ = _run(lite0, style, content, **early)
    lagged, _ = _run(lite0, style, content, **early)
    lagged.read_lag = 1
    _, stop_a = exact.stylize(content, content, iterations=50)
    _, stop_b = lagged.stylize(content, content, iterations=50)
    assert stop_a.stopped_early and stop_b.stopped_early
    assert stop_b.iterations == stop_a.iterations + 1


def test_the_delivered_view_keeps_luma_and_averages_chroma_over_blocks() -> None:
    x = 0.25 + 0.5 * torch.rand(1, 3, 8, 12)  # no colour that leaves the RGB cube
    assert seen_as_delivered(x) is x
    seen = seen_as_delivered(x, chroma=(2, 2))
    import kornia

    before, after = kornia.color.rgb_to_ycbcr(x), kornia.color.rgb_to_ycbcr(seen)
    torch.testing.assert_close(after[:, :1], before[:, :1], atol=1e-5, rtol=0)
    flat = torch.full((1, 3, 8, 12), 0.3)
    torch.testing.assert_close(seen_as_delivered(flat, chroma=(2, 2)), flat)
    # Chroma that alternates from pixel to pixel is gone; luma that does is not.
    checker = (torch.arange(12)[None, :] + torch.arange(8)[:, None]) % 2
    pattern = torch.stack([0.5 + 0.2 * checker, 0.5 - 0.2 * checker, 0.5 + 0 * checker])[None]
    before = kornia.color.rgb_to_ycbcr(pattern.float())[:, 1:].std(dim=(2, 3))
    after = kornia.color.rgb_to_ycbcr(seen_as_delivered(pattern.float(), chroma=(2, 2)))
    assert (after[:, 1:, 2:-2, 2:-2].std(dim=(2, 3)) < 0.1 * before).all()


def test_codecs_name_their_chroma_blocks() -> None:
    assert chroma_blocks("h264") == chroma_blocks("h265") == (2, 2)
    assert chroma_blocks("prores") == (1, 2)


def test_a_stylizer_that_sees_the_delivered_frame_still_lowers_its_loss(
        lite0: Backbone, styles, content) -> None:
    stylizer = FrameStylizer(
        lite0, [load_image(styles[0])], style=StyleConfig(),
        optim=OptimConfig(early_stop=0), frame_size=(64, 96), chroma=(2, 2),
    )
    losses: list[float] = []
    stylizer.stylize(content, content, iterations=15,
                     on_iteration=lambda i, loss: losses.append(loss))
    assert losses[-1] < 0.7 * losses[0] and stylizer.chroma == (2, 2)
    plain = FrameStylizer(
        lite0, [load_image(styles[0])], style=StyleConfig(),
        optim=OptimConfig(view="pixels"), frame_size=(64, 96), chroma=(2, 2),
    )
    assert plain.chroma == (1, 1)
