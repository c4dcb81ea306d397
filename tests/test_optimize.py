from __future__ import annotations

import pytest
import torch

from vidstyle.config import OptimConfig, StyleConfig
from vidstyle.features import Backbone
from vidstyle.io.images import load_image
from vidstyle.optimize import FrameStylizer, _converged


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
    assert stats.stopped_early and stats.iterations < 50


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
