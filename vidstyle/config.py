"""Frozen, keyword-only configuration dataclasses.

These are the single source of truth for every setting: the CLI derives its flags, defaults
and help from the fields' metadata, and a ``pipelines/*.toml`` recipe maps onto the same
classes (:mod:`vidstyle.recipes`); both read a field's value the way
:func:`vidstyle.options.option_kind` says, from the field's type. Values are validated on
construction, so a config that exists is a config that can run; a value that cannot work
raises :class:`~vidstyle.errors.UsageError` (a :class:`ValueError`).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidstyle.errors import UsageError

BACKBONES = ("efficientnet-lite0", "vgg19")
FLOW_METHODS = ("dis", "dis-coarse", "dis-medium", "deepflow", "raft")
FLOW_EDGES = ("sharpen", "fill")
CODECS = ("h264", "h265", "prores")
OPTIMIZERS = ("adam", "lbfgs")
DEVICES = ("auto", "cpu", "cuda")
INITS = ("prev-warped", "content", "random")
VIEWS = ("delivered", "pixels")
PRECISIONS = ("auto", "float32", "tf32", "bf16")


def _opt(help: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: ``help`` is shown by ``--help``; ``cli=False`` hides a field;
    ``choices`` lists a string field's values; ``metavar`` names the value in ``--help``."""
    return {"help": help, **extra}


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` with a "did you mean" when ``value`` is not one of ``choices``."""
    if value in choices:
        return
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"unknown {name} {value!r} (choose from {', '.join(choices)}){hint}")


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{name} must be {bound}, got {value}")


@dataclass(frozen=True, kw_only=True)
class StyleConfig:
    """What the optimizer is pulled towards: the backbone and the loss weights.

    Losses are mean-squared (see :mod:`vidstyle.losses`), so the weights are comparable
    across backbones and frame sizes.
    """

    backbone: str = field(
        default="efficientnet-lite0",
        metadata=_opt(
            "feature network: efficientnet-lite0 (bundled weights, fast) or vgg19 "
            "(the papers' network; weights downloaded once into the torch cache)",
            choices=BACKBONES,
        ),
    )
    weights: Path | None = field(
        default=None,
        metadata=_opt("local state-dict file for the backbone (for machines without network)"),
    )
    content_weight: float = field(
        default=1.0, metadata=_opt("how closely the frame keeps the input's shapes")
    )
    style_weight: float = field(
        default=1e4,
        metadata=_opt("how strongly texture and colour move towards the style image(s)"),
    )
    tv_weight: float = field(
        default=1e-3, metadata=_opt("total-variation smoothing; raise to tame pixel noise")
    )
    temporal_weight: float = field(
        # Five times the earlier 1e5 since the losses see the frame as delivered
        # (OptimConfig.view): the painting then keeps its stylization under a hold this
        # strong, and along the true motion of benchmarks/truth.py's scenes it drifts far
        # less (slow pan 10-frame ratio 6.8 to 2.6 at a lower style loss). Before, a hold this
        # strong kept each frame's bilinear blur and the strokes faded (see
        # benchmarks/RESULTS.md, 2026-12-02 and 2026-12-03).
        default=5e5,
        metadata=_opt(
            "how strongly each frame follows the previous stylized frame along the motion; "
            "0 stylizes every frame on its own from the input, each with --first-iterations "
            "(flickers)"
        ),
    )
    long_term: tuple[int, ...] = field(
        # On by default since the true-motion scenes measured it: a chain of consecutive
        # flows lets the painting slide, one direct flow ten frames back does not, for a few
        # optical flows per frame (see benchmarks/RESULTS.md, 2026-12-02).
        default=(1, 2, 5, 10),
        metadata=_opt(
            "hold each frame to the stylized frames this many frames back (for example "
            "1,2,5,10), each pixel to the closest one in which it was visible: a region "
            "hidden for a moment comes back with its old strokes instead of new ones; 1 "
            "looks at the previous frame only",
            metavar="N1,N2",
        ),
    )
    long_term_anchor: float = field(
        # A light hold: it takes much of the slow drift out for a little more flicker, while
        # a harder one adds flicker for little more (measured: benchmarks/temporal.py
        # --anchors, see benchmarks/RESULTS.md).
        default=0.25,
        metadata=_opt(
            "with --long-term, how strongly the farther frames in which a pixel was also "
            "visible hold it, against 1 for the closest: one direct flow ten frames back "
            "stops the slow sliding of the painting that a chain of ten consecutive flows "
            "lets through; 0 holds each pixel to the closest frame only (Ruder et al.)"
        ),
    )
    style_scale: float = field(
        default=1.0,
        metadata=_opt("size of the style image relative to the frame: >1 gives larger strokes"),
    )
    style_blend: tuple[float, ...] | None = field(
        default=None,
        metadata=_opt(
            "weights of several --style images, in order (for example 0.7,0.3); equal if unset",
            metavar="W1,W2",
        ),
    )
    preserve_colors: bool = field(
        default=False,
        metadata=_opt(
            "keep the input's colours: strokes, texture and light/dark come from the style, "
            "hues from the input"
        ),
    )

    def __post_init__(self) -> None:
        check_choice("backbone", self.backbone, BACKBONES)
        for name in ("content_weight", "style_weight", "tv_weight", "temporal_weight"):
            _check_positive(name.replace("_", "-"), getattr(self, name), allow_zero=True)
        _check_positive("style-scale", self.style_scale)
        _check_positive("long-term-anchor", self.long_term_anchor, allow_zero=True)
        offsets = self.long_term
        if not offsets or min(offsets) < 1 or list(offsets) != sorted(set(offsets)):
            raise UsageError(
                f"long-term offsets must be increasing whole numbers >= 1, got {offsets}"
            )
        blend = self.style_blend
        if blend is not None and (not blend or min(blend) < 0 or sum(blend) <= 0):
            raise UsageError(f"style-blend weights must be >= 0 and not all 0, got {blend}")
        # 0 is meaningful for the other weights (no temporal term: per-frame; no content: pure
        # texture; no smoothing), but without the style term the output is the input.
        if self.style_weight == 0:
            raise UsageError("style-weight must be > 0 (0 would only copy the input)")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """How each frame's pixels are optimized."""

    optimizer: str = field(
        default="adam", metadata=_opt("pixel optimizer: adam or lbfgs", choices=OPTIMIZERS)
    )
    lr: float = field(
        default=0.02,
        metadata=_opt("Adam step size on [0,1] pixels (L-BFGS takes unit quasi-Newton steps)"),
    )
    first_iterations: int = field(
        default=150, metadata=_opt("iterations for the first frame (it starts from the input)")
    )
    iterations: int = field(
        default=50,
        metadata=_opt("iterations for later frames (they start from the warped previous one)"),
    )
    early_stop: float = field(
        default=1e-3,
        metadata=_opt(
            "stop a frame, in the second half of its iterations, when its loss improved by "
            "less than this fraction over the last --patience iterations; 0 always runs all "
            "iterations"
        ),
    )
    patience: int = field(default=10, metadata=_opt("window of the early-stop rule"))
    passes: int = field(
        default=1,
        metadata=_opt(
            "passes over the whole range, alternating forward and backward (Ruder et al.'s "
            "multi-pass): each later pass starts every frame from a blend of itself and its "
            "warped neighbour and runs --iterations more, so the first frames get as steady "
            "as the rest; later passes also hold each frame to the frames --long-term names, "
            "or to the one 10 back in their direction; costs about --iterations per frame "
            "per extra pass"
        ),
    )
    lr_decay: float = field(
        default=0.1,
        metadata=_opt(
            "Adam's step at a frame's last iteration as a fraction of --lr (cosine schedule); "
            "small steps at the end let settled strokes stand still instead of jittering "
            "from frame to frame (1 keeps the step constant)"
        ),
    )
    view: str = field(
        # Measured on one frame, its style loss rose tenfold once encoded as H.264 yuv420p:
        # the optimizer had matched the style partly with single-pixel colour patterns that
        # the codec's half-resolution chroma drops (see benchmarks/RESULTS.md, 2026-12-03).
        default="delivered",
        metadata=_opt(
            "what the losses look at: delivered (the frame with its colour at the output "
            "codec's chroma resolution, as a player will show it: texture that survives "
            "encoding and the warp to the next frame) or pixels (the optimizer's pixels "
            "as they are, as in Gatys et al.)",
            choices=VIEWS,
        ),
    )
    init: str = field(
        default="prev-warped",
        metadata=_opt(
            "where a frame's pixels start: prev-warped (the previous result moved along the "
            "motion; the first frame starts from the input), content (the input) or random "
            "(noise)",
            choices=INITS,
        ),
    )

    precision: str = field(
        default="auto",
        metadata=_opt(
            "arithmetic of the feature network: float32; tf32 (CUDA's TensorFloat-32 "
            "matrix units); bf16 (bfloat16 autocast, for the faster bfloat16 matrix units of "
            "recent GPUs; pixels and losses stay float32); auto is tf32 on CUDA, float32 "
            "on CPU (measured: see benchmarks/RESULTS.md)",
            choices=PRECISIONS,
        ),
    )
    compile: bool = field(
        default=False,
        metadata=_opt(
            "compile the feature network with torch.compile, to fuse its operations: the "
            "compiling is a start-up cost paid again for each frame size (needs Triton on a "
            "GPU, a C++ compiler on a CPU)"
        ),
    )

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("init", self.init, INITS)
        check_choice("view", self.view, VIEWS)
        check_choice("precision", self.precision, PRECISIONS)
        _check_positive("lr", self.lr)
        for name in ("first_iterations", "iterations", "patience", "passes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name.replace('_', '-')} must be an integer >= 1, got {value}")
        _check_positive("early-stop", self.early_stop, allow_zero=True)
        if not (math.isfinite(self.lr_decay) and 0 <= self.lr_decay <= 1):
            raise UsageError(f"lr-decay must be between 0 and 1, got {self.lr_decay}")


@dataclass(frozen=True, kw_only=True)
class FlowConfig:
    """Optical flow between consecutive *input* frames."""

    flow: str = field(
        default="dis",
        metadata=_opt(
            "optical flow: dis (OpenCV DIS refined to full resolution, edges filled; CPU), "
            "dis-coarse (the same from one pyramid level up: cheaper), dis-medium (OpenCV's "
            "medium preset: faster, coarser), deepflow (OpenCV DeepFlow: "
            "slow) or raft (torchvision RAFT-small; best on a GPU, weights downloaded once)",
            choices=FLOW_METHODS,
        ),
    )
    long_term_flow: str = field(
        default="same",
        metadata=_opt(
            "optical flow to the --long-term references beyond the previous frame: same (as "
            "--flow) or a --flow method; each reference costs one flow pair per frame, and "
            "dis-coarse and dis-medium cost a fraction of dis, at some steadiness over ten "
            "frames (benchmarks/RESULTS.md)",
            choices=("same", *FLOW_METHODS),
        ),
    )
    flow_edges: str = field(
        default="sharpen",
        metadata=_opt(
            "how dis and dis-coarse treat the edges of moving things: sharpen (each pixel "
            "beside an edge takes the motion of the neighbour that matches it best, then the "
            "fill) or fill (only the pixels the two directions disagree on are filled from "
            "their neighbours: cheaper, drags the background beside a moving object along)",
            choices=FLOW_EDGES,
        ),
    )

    def __post_init__(self) -> None:
        check_choice("flow method", self.flow, FLOW_METHODS)
        check_choice("long-term flow method", self.long_term_flow, ("same", *FLOW_METHODS))
        check_choice("flow edges", self.flow_edges, FLOW_EDGES)


@dataclass(frozen=True, kw_only=True)
class FastConfig:
    """Fast mode (experimental): a small network trained on the video itself, then run once
    per frame instead of optimizing every frame (:mod:`vidstyle.fast`)."""

    fast: bool = field(
        default=False,
        metadata=_opt(
            "experimental: train a small network on this video with this style (the same "
            "losses, a few frames optimized as usual to anchor the look), then stylize each "
            "frame with one pass of it, held to the previous frame where the motion is "
            "reliable; for long clips, where its training pays for itself (figures: "
            "benchmarks/RESULTS.md)"
        ),
    )
    fast_steps: int = field(
        default=500,
        metadata=_opt("with --fast: training steps of the network (each on crops of "
                      "--fast-crop, whatever the clip's length and frame size)"),
    )
    fast_crop: int = field(
        default=160,
        metadata=_opt(
            "with --fast: side of the square crops of the frames the network trains on, at "
            "the render's size, so its strokes come out the size the optimizer paints them"
        ),
    )
    fast_keyframes: int = field(
        default=4,
        metadata=_opt(
            "with --fast: frames, evenly spread over the range, optimized as in a normal "
            "render (--first-iterations each) for the network to learn the look from"
        ),
    )
    fast_hold: float = field(
        default=0.15,
        metadata=_opt(
            "with --fast: how far each frame moves towards the previous stylized frame "
            "warped along the motion, where the motion is reliable (0: the network's output "
            "as it is)"
        ),
    )
    fast_temporal_weight: float = field(
        # The network's own balance, measured at this value (benchmarks/RESULTS.md,
        # 2026-12-03); the optimizer's --temporal-weight has since changed for other reasons.
        default=1e5,
        metadata=_opt(
            "with --fast: how strongly the network's training holds its outputs for "
            "consecutive frames to each other along the motion (0, or --temporal-weight 0: "
            "not at all)"
        ),
    )

    def __post_init__(self) -> None:
        _check_positive("fast-temporal-weight", self.fast_temporal_weight, allow_zero=True)
        for name in ("fast_steps", "fast_crop", "fast_keyframes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name.replace('_', '-')} must be an integer >= 1, got {value}")
        if self.fast_crop < 64:
            raise UsageError(f"fast-crop must be at least 64 pixels, got {self.fast_crop}")
        if not (math.isfinite(self.fast_hold) and 0 <= self.fast_hold <= 1):
            raise UsageError(f"fast-hold must be between 0 and 1, got {self.fast_hold}")


@dataclass(frozen=True, kw_only=True)
class RenderConfig:
    """One render: which input, which style(s), which frames, where to, on what device."""

    input: Path = field(metadata=_opt("input video", cli=False))
    styles: tuple[Path, ...] = field(metadata=_opt("style image(s)", cli=False))
    output: Path | None = field(default=None, metadata=_opt("output video", cli=False))
    frames: tuple[int, int | None] | None = field(
        default=None, metadata=_opt("input frame range A:B", cli=False)
    )
    start: float | None = field(default=None, metadata=_opt("start time", cli=False))
    end: float | None = field(default=None, metadata=_opt("end time", cli=False))
    max_side: int = field(
        default=512,
        metadata=_opt(
            "resize so the longer side is at most N pixels, keeping the aspect ratio "
            "(0 keeps the source size); cost grows with the pixel count"
        ),
    )
    max_memory: float = field(
        default=0.0,
        metadata=_opt(
            "GB of memory the render may use on its device (0: what the device has free); "
            "frames that would need more are optimized in overlapping tiles, one tile's "
            "network activations at a time: slower, never refused while a tile fits"
        ),
    )
    codec: str = field(
        default="h264",
        metadata=_opt(
            "video codec: h264 (plays everywhere), h265 (smaller files; .mp4/.mov/.mkv) or "
            "prores (ProRes 422 HQ for editing: near-lossless, large; .mov/.mkv)",
            choices=CODECS,
        ),
    )
    crf: int = field(
        default=18,
        metadata=_opt(
            "quality of h264 and h265, 0-51: lower keeps the frames closer and the file "
            "larger (0 is lossless; 18 looks lossless for painted frames)"
        ),
    )
    device: str = field(
        default="auto",
        metadata=_opt("auto (CUDA when present), cpu or cuda", choices=DEVICES),
    )
    seed: int = field(default=0, metadata=_opt("random seed, for repeatable renders"))
    overwrite: bool = field(
        default=False,
        metadata=_opt("replace an existing output file (and discard an interrupted render of it)"),
    )
    resume: bool = field(
        default=False,
        metadata=_opt(
            "continue an interrupted render of the same output with the same settings; "
            "finished frames are not redone"
        ),
    )
    keep_partial: bool = field(
        default=False,
        metadata=_opt("if the input turns out corrupt mid-way, keep the frames rendered before it"),
    )
    debug_dir: Path | None = field(
        default=None,
        metadata=_opt(
            "write, per frame, the optical flow as a colour image, the consistency mask and "
            "the warped previous frame into this folder (to see why a region smears)"
        ),
    )
    style: StyleConfig = field(default_factory=StyleConfig, metadata=_opt("", cli=False))
    optim: OptimConfig = field(default_factory=OptimConfig, metadata=_opt("", cli=False))
    flow: FlowConfig = field(default_factory=FlowConfig, metadata=_opt("", cli=False))
    fast: FastConfig = field(default_factory=FastConfig, metadata=_opt("", cli=False))

    def __post_init__(self) -> None:
        if not self.styles:
            raise UsageError("at least one --style image is needed")
        blend = self.style.style_blend
        if blend is not None and len(blend) != len(self.styles):
            raise UsageError(
                f"--style-blend has {len(blend)} weights for {len(self.styles)} style images"
            )
        check_choice("device", self.device, DEVICES)
        if not isinstance(self.max_side, int) or self.max_side < 0:
            raise UsageError(f"max-side must be an integer >= 0, got {self.max_side}")
        if 0 < self.max_side < 32:
            raise UsageError(f"max-side must be at least 32 pixels, got {self.max_side}")
        if not (math.isfinite(self.max_memory) and self.max_memory >= 0):
            raise UsageError(f"max-memory must be a number of GB >= 0, got {self.max_memory}")
        check_choice("codec", self.codec, CODECS)
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise UsageError(f"crf must be a whole number from 0 to 51, got {self.crf}")
        if self.optim.passes > 1 and self.style.temporal_weight == 0:
            raise UsageError(
                "--passes needs the temporal loss: it blends each frame with its neighbours "
                "(set --temporal-weight > 0, or use one pass)"
            )
        if self.fast.fast and self.optim.passes > 1:
            raise UsageError("--fast paints each frame once: use it without --passes")
        if self.frames is not None and (self.start is not None or self.end is not None):
            raise UsageError("use either --frames or --start/--end, not both")
        if self.frames is not None:
            a, b = self.frames
            if a < 0 or (b is not None and b <= a):
                raise UsageError(f"frame range {a}:{b} is empty or reversed (A:B needs 0 <= A < B)")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise UsageError(f"--{name} must be a time in seconds >= 0, got {value}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError(f"--end ({self.end}) must be after --start ({self.start})")

    def default_output(self) -> Path:
        """``clip.ink.mp4`` next to the input (styles joined with ``+``)."""
        tag = "+".join(p.stem for p in self.styles)
        return self.input.with_name(f"{self.input.stem}.{tag}.mp4")

    @property
    def output_path(self) -> Path:
        return self.output if self.output is not None else self.default_output()


def parse_frame_range(text: str) -> tuple[int, int | None]:
    """Parse ``"A:B"`` (end exclusive; ``"A:"`` runs to the end) into ``(A, B)``."""
    head, sep, tail = text.partition(":")
    try:
        if not sep:
            raise ValueError
        start = int(head) if head.strip() else 0
        stop = int(tail) if tail.strip() else None
    except ValueError:
        raise UsageError(
            f"frame range must look like A:B (for example 0:48), got {text!r}"
        ) from None
    if start < 0 or (stop is not None and stop <= start):
        raise UsageError(f"frame range {text!r} is empty or reversed (A:B needs 0 <= A < B)")
    return start, stop
