"""Fast mode: the network, its training, and ``--fast`` renders end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import vidstyle.pipeline as pipeline
from vidstyle import fast
from vidstyle.config import FastConfig, OptimConfig, RenderConfig, StyleConfig
from vidstyle.errors import Interrupted, UsageError
from vidstyle.features import Backbone
from vidstyle.io import iter_frames
from vidstyle.io.images import load_image
from vidstyle.io.store import FrameStore
from vidstyle.metrics import clip_warping_error
from vidstyle.optimize import FrameStylizer
from vidstyle.pipeline import Progress, render, run_key

# A few steps and iterations: these tests check what the code does, not the look.
QUICK = FastConfig(fast=True, fast_steps=6, fast_crop=64, fast_keyframes=2)
OPTIM = OptimConfig(first_iterations=4, iterations=2)


@pytest.mark.parametrize("size", [(64, 96), (37, 53), (5, 7)])
def test_network_keeps_the_frame_size_and_range(size: tuple[int, int]) -> None:
    net = fast.TransformNet(width=4, blocks=1)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_network_refuses_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        fast.TransformNet(width=4, blocks=1)(torch.rand(1, 4, 16, 16))


def test_pairs_and_keyframes_are_spread_over_the_range() -> None:
    assert fast.sample_pairs(100, 4) == [12, 37, 61, 86]  # over the 99 pairs
    assert fast.sample_pairs(3, 10) == [0, 1]  # no more pairs than the range has
    assert fast.sample_pairs(1, 4) == []
    assert fast.sample_keyframes(100, 4) == [12, 37, 62, 87]
    assert fast.sample_keyframes(2, 4) == [0, 1]
    for count in (2, 7, 600):
        pairs = fast.sample_pairs(count, 24)
        assert all(0 <= i < count - 1 for i in pairs)
        assert all(0 <= i < count for i in fast.sample_keyframes(count, 4))


def test_a_crop_does_not_trust_flow_that_leaves_it() -> None:
    frame = torch.rand(1, 3, 20, 30)
    flow = torch.zeros(1, 2, 20, 30)
    flow[:, 0] = 3.0  # everything moves 3 px to the right
    pair = fast.Pair.of(frame, frame, flow, torch.ones(1, 1, 20, 30))
    earlier, later, cut_flow, mask = pair.crop((5, 10, 8, 12))
    assert earlier.shape == (1, 3, 8, 12) and cut_flow.shape == (1, 2, 8, 12)
    assert torch.allclose(earlier, frame[..., 5:13, 10:22], atol=1 / 255)
    # The last three columns point outside the crop; the rest are kept.
    assert mask[..., :, -3:].sum() == 0
    assert torch.all(mask[..., :, :-3] == 1)


def test_the_pair_loss_follows_the_motion() -> None:
    torch.manual_seed(0)
    earlier = torch.rand(1, 3, 16, 20)
    later = torch.roll(earlier, shifts=2, dims=-1)  # the scene moved 2 px right
    mask = torch.ones(1, 1, 16, 20)
    mask[..., :2] = 0  # what came in at the left edge
    back = torch.zeros(1, 2, 16, 20)
    back[:, 0] = -2  # later(p) = earlier(p - 2): the backward flow points left
    assert float(fast.pair_loss(earlier, later, back, mask)) < 1e-10
    assert float(fast.pair_loss(earlier, later, -back, mask)) > 0.05  # the wrong direction
    assert float(fast.pair_loss(later, earlier, back, mask)) > 0.05  # the frames swapped
    assert float(fast.pair_loss(earlier, later, torch.zeros_like(back), mask)) > 0.05


def test_training_lowers_the_loss_and_learns_the_keyframes(lite0: Backbone,
                                                           styles: list[Path]) -> None:
    stylizer = FrameStylizer(lite0, [load_image(styles[0])], style=StyleConfig(),
                             optim=OptimConfig(), frame_size=(48, 64))
    torch.manual_seed(0)
    content = torch.rand(1, 3, 48, 64)
    painting = torch.full((1, 3, 48, 64), 0.8)  # a look far from the input
    key = fast.Keyframe.of(content, painting)
    net = fast.TransformNet(width=8, blocks=2)
    with torch.no_grad():
        before = float((net(content) - painting).abs().mean())
    steps: list[fast.TrainingStep] = []
    losses = fast.train(net, stylizer, [], [key], fast.Training(steps=40, crop=48, lr=5e-3),
                        temporal_weight=0.0, on_step=steps.append)
    assert [s.step for s in steps] == list(range(1, 41))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    after = float((fast.stylize(net, content) - painting).abs().mean())
    assert after < 0.5 * before


def test_training_needs_something_to_learn_from(lite0: Backbone, styles: list[Path]) -> None:
    stylizer = FrameStylizer(lite0, [load_image(styles[0])], style=StyleConfig(),
                             optim=OptimConfig(), frame_size=(48, 64))
    with pytest.raises(ValueError, match="at least one"):
        fast.train(fast.TransformNet(width=4, blocks=1), stylizer, [], [],
                   fast.Training(steps=1, crop=48), temporal_weight=0.0)


@pytest.mark.parametrize("values", [{"fast_steps": 0}, {"fast_crop": 32}, {"fast_hold": 1.5},
                                    {"fast_keyframes": 0}])
def test_bad_fast_settings_are_refused(values: dict) -> None:
    with pytest.raises(UsageError):
        FastConfig(**values)


def test_fast_refuses_passes(tiny_clip: Path, styles: list[Path]) -> None:
    with pytest.raises(UsageError, match="--passes"):
        RenderConfig(input=tiny_clip, styles=(styles[0],), fast=QUICK,
                     optim=OptimConfig(passes=2))


def _config(clip: Path, style: Path, out: Path, **extra: object) -> RenderConfig:
    extra.setdefault("fast", QUICK)
    return RenderConfig(input=clip, styles=(style,), output=out, max_side=96, optim=OPTIM,
                        **extra)  # type: ignore[arg-type]


def test_fast_render_paints_every_frame_once(tiny_clip: Path, styles: list[Path],
                                             tmp_path: Path) -> None:
    out = tmp_path / "fast.mp4"
    reports: list[Progress] = []
    result = render(_config(tiny_clip, styles[0], out), progress=reports.append)
    assert result.frames == 12
    frames = [f.image for f in iter_frames(out)]
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)
    sources = [f.image for f in iter_frames(tiny_clip)]
    assert np.abs(frames[5].astype(int) - sources[5]).mean() > 1  # painted, not copied
    phases = [p.phase for p in reports]
    # Keyframes, then training, then the frames, each phase once and in that order.
    runs = [a for a, b in zip(phases, [None, *phases]) if a != b]
    assert runs == ["keyframes", "training", "frames"]
    training = [p for p in reports if p.phase == "training"]
    assert [p.iteration for p in training] == list(range(1, QUICK.fast_steps + 1))
    assert all(p.iterations == QUICK.fast_steps for p in training)
    assert sum(p.frame_done for p in reports) == 12
    assert not FrameStore(out, "").folder.exists()


def test_the_hold_steadies_the_network_output(tiny_clip: Path, styles: list[Path],
                                              tmp_path: Path, kept_frames) -> None:
    free, held = tmp_path / "free.mp4", tmp_path / "held.mp4"
    render(_config(tiny_clip, styles[0], free, fast=dataclasses.replace(QUICK, fast_hold=0.0)))
    render(_config(tiny_clip, styles[0], held, fast=dataclasses.replace(QUICK, fast_hold=0.9)))
    a, b = kept_frames(free), kept_frames(held)
    # The same network (the same seed and data): the first frame, held to nothing, is the same.
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1:], b[1:])
    # Held, the frames follow the motion more closely from one to the next.
    assert (clip_warping_error(tiny_clip, held).output
            < 0.8 * clip_warping_error(tiny_clip, free).output)


def test_a_resumed_fast_render_does_not_train_again(tiny_clip: Path, styles: list[Path],
                                                    tmp_path: Path, kept_frames) -> None:
    out = tmp_path / "resumed.mp4"
    whole = tmp_path / "whole.mp4"
    render(_config(tiny_clip, styles[0], whole))

    def stop_after_four(p: Progress) -> None:
        if p.phase == "frames" and p.frame_done and p.frame == 4:
            raise KeyboardInterrupt

    cfg = _config(tiny_clip, styles[0], out)
    with pytest.raises(Interrupted):
        render(cfg, progress=stop_after_four)
    store = FrameStore(out, run_key(cfg, torch.device("cpu")))
    assert store.kept_file("network.pt") is not None
    reports: list[Progress] = []
    result = render(_config(tiny_clip, styles[0], out, resume=True), progress=reports.append)
    assert result.resumed_frames == 4
    assert {p.phase for p in reports} == {"frames"}  # no keyframes, no training
    assert np.array_equal(kept_frames(out), kept_frames(whole))


def test_an_interrupted_training_says_it_starts_again(tiny_clip: Path, styles: list[Path],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"

    def stop_in_training(p: Progress) -> None:
        if p.phase == "training" and p.iteration == 3:
            raise KeyboardInterrupt

    cfg = _config(tiny_clip, styles[0], out)
    with pytest.raises(Interrupted, match="starts it again") as info:
        render(cfg, progress=stop_in_training)
    assert "--resume" not in str(info.value)
    reports: list[Progress] = []
    render(_config(tiny_clip, styles[0], out, resume=True), progress=reports.append)
    assert "training" in {p.phase for p in reports} and out.exists()


def test_a_network_of_other_training_settings_is_not_resumed(
    monkeypatch: pytest.MonkeyPatch, tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    cpu = torch.device("cpu")
    cfg = _config(tiny_clip, styles[0], tmp_path / "o.mp4")
    plain = dataclasses.replace(cfg, fast=FastConfig())
    keys = run_key(cfg, cpu), run_key(plain, cpu)
    monkeypatch.setattr(fast, "WIDTH", fast.WIDTH * 2)
    assert run_key(cfg, cpu) != keys[0]
    assert run_key(plain, cpu) == keys[1]  # a render without --fast keeps no network
    monkeypatch.undo()
    assert run_key(cfg, cpu) == keys[0]
    monkeypatch.setattr(pipeline, "FAST_PAIRS", pipeline.FAST_PAIRS + 1)
    assert run_key(cfg, cpu) != keys[0]
