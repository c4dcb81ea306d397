from __future__ import annotations

import pytest
import torch

from vidstyle.losses import content_loss, gram_matrix, style_loss, temporal_loss, tv_loss


def test_gram_matrix_of_known_tensor() -> None:
    f = torch.tensor([[1.0, 2.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[5.0, 2.0], [2.0, 1.0]]) / 4  # / (C*H*W)
    torch.testing.assert_close(gram_matrix(f)[0], expected)


def test_gram_matrix_is_size_invariant_for_tiled_input() -> None:
    f = torch.rand(1, 4, 3, 5)
    torch.testing.assert_close(gram_matrix(f), gram_matrix(f.repeat(1, 1, 2, 3)))


def test_gram_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\(B,C,H,W\)"):
        gram_matrix(torch.rand(4, 5))


def test_content_loss_value() -> None:
    a = torch.zeros(1, 2, 2, 2)
    b = torch.full((1, 2, 2, 2), 3.0)
    assert content_loss(a, b).item() == pytest.approx(9.0)


def test_style_loss_zero_at_target_and_weighted_mean() -> None:
    f = {"a": torch.rand(1, 3, 4, 4), "b": torch.rand(1, 5, 2, 2)}
    targets = {k: gram_matrix(v) for k, v in f.items()}
    assert style_loss(f, targets).item() == pytest.approx(0.0, abs=1e-12)
    shifted = {k: v + 1.0 for k, v in targets.items()}
    # Each layer's Gram differs by 1 everywhere: MSE 1 per layer, averaged over two layers.
    assert style_loss(f, shifted).item() == pytest.approx(1.0)
    assert style_loss(f, shifted, {"a": 1.0, "b": 2.0}).item() == pytest.approx(3.0)


def test_tv_of_checkerboard() -> None:
    board = (torch.arange(4).view(1, 4) + torch.arange(4).view(4, 1)) % 2
    image = board.float().view(1, 1, 4, 4)
    assert tv_loss(image).item() == pytest.approx(2.0)  # every neighbour pair differs by 1
    assert tv_loss(torch.ones(1, 3, 5, 5)).item() == 0.0


def test_temporal_loss_masks_and_normalises_by_all_pixels() -> None:
    x = torch.ones(1, 3, 2, 2)
    w = torch.zeros(1, 3, 2, 2)
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    # One trusted pixel out of four, difference 1 in each channel: D = 3*H*W.
    assert temporal_loss(x, w, mask).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ"):
        temporal_loss(x, torch.zeros(1, 3, 2, 3), mask)


@pytest.mark.parametrize("fn", ["gram", "content", "tv", "temporal", "style"])
def test_losses_gradcheck(fn: str) -> None:
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    mask = (torch.rand(1, 1, 4, 5) > 0.5).double()
    target = {"a": torch.rand(1, 3, 3, dtype=torch.float64)}
    funcs = {
        "gram": lambda t: gram_matrix(t),
        "content": lambda t: content_loss(t, y),
        "tv": lambda t: tv_loss(t),
        "temporal": lambda t: temporal_loss(t, y, mask),
        "style": lambda t: style_loss({"a": t}, target),
    }
    assert torch.autograd.gradcheck(funcs[fn], (x,))
