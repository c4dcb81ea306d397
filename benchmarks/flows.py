"""Optical flow estimators against the true motion: end-point error and time per pair.

    pip install -e ".[bench]"                # scikit-image: the photographs
    python benchmarks/flows.py               # every CPU estimator on the five scenes, 320x180
    python benchmarks/flows.py --sizes 320,640,1280 --methods dis,dis-medium
    python benchmarks/flows.py --methods dis,dis+fill --decoded   # edges sharpened or filled only

The scenes are those of benchmarks/truth.py (:mod:`vidstyle.scenes` built from scikit-image's
photographs), whose flow and occlusion are known exactly. Each estimator computes both
directions of every consecutive pair as the render does (:func:`vidstyle.flow.flow_pair`,
so ``dis`` includes its sharpening at motion edges and its fill of the pixels the two
directions disagree on; ``dis+fill`` is ``--flow-edges fill``); the error is the
mean end-point error of the backward flow (px) over the pixels visible in both frames, over
all of them and within 3 px of an occlusion edge (where an object's motion meets the
background's), and the share of pixels off by more than 1 px. Time is per pair (both
directions), on one thread, after a warm-up pair; larger sizes render the same scenes
larger (the motion scales with them) and report time only beside the error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth import photos, read, write  # noqa: E402

from vidstyle.config import FLOW_METHODS  # noqa: E402
from vidstyle.flow import flow_pair, make_flow  # noqa: E402
from vidstyle.scenes import SCENES, scene  # noqa: E402

CPU_METHODS = tuple(m for m in FLOW_METHODS if m != "raft")


def _edges(mask: np.ndarray, width: int = 3) -> np.ndarray:
    """Visible pixels within ``width`` px of an invisible one: the occlusion edges."""
    hidden = (~mask).astype(np.uint8)
    near = cv2.dilate(hidden, np.ones((2 * width + 1, 2 * width + 1), np.uint8)) > 0
    return mask & near


def measure(method: str, name: str, width: int, height: int, frames: int,
            decoded: bool = False) -> dict[str, float]:
    sc = scene(name, photos(name), width=width, height=height, frames=frames)
    images = [sc.frame(t) for t in range(frames)]
    if decoded:  # as the render sees the scene in benchmarks/truth.py: H.264 CRF 10, 4:2:0
        with tempfile.TemporaryDirectory() as tmp:
            images = read(write(Path(tmp) / "scene.mp4", images, width, height, crf=10))
    base, _, edges = method.partition("+")
    estimator = make_flow(base, edges=edges or "sharpen")
    flow_pair(estimator, images[0], images[1])  # warm-up
    seconds, epe, edge, bad = 0.0, [], [], []
    for t in range(1, frames):
        began = time.perf_counter()
        backward, _ = flow_pair(estimator, images[t - 1], images[t])
        seconds += time.perf_counter() - began
        mask = sc.mask(t, t - 1)
        error = np.linalg.norm(backward[0].numpy() - sc.flow(t, t - 1), axis=0)
        epe.append(error[mask].mean())
        near = _edges(mask)
        if near.any():
            edge.append(error[near].mean())
        bad.append((error[mask] > 1).mean())
    return {"epe": float(np.mean(epe)), "edge": float(np.mean(edge)) if edge else float("nan"),
            "bad": float(np.mean(bad)), "ms": 1000 * seconds / (frames - 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(CPU_METHODS),
                        help=f"comma-separated (default: {','.join(CPU_METHODS)})")
    parser.add_argument("--scenes", default=",".join(SCENES), help="comma-separated")
    parser.add_argument("--sizes", default="320", help="scene widths, 16:9 (default 320)")
    parser.add_argument("--frames", type=int, default=16, help="frames per scene (default 16)")
    parser.add_argument("--decoded", action="store_true",
                        help="estimate on the scenes as encoded for benchmarks/truth.py (H.264 "
                        "CRF 10, 4:2:0), as the render sees them, instead of the exact frames")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print("| size | estimator | scene | EPE px | EPE near occlusion edges px | > 1 px | "
          "ms per pair |\n|---|---|---|---|---|---|---|", flush=True)
    for width in (int(w) for w in args.sizes.split(",")):
        height = round(width * 9 / 16)
        for method in args.methods.split(","):
            rows = [measure(method, name, width, height, args.frames, args.decoded)
                    for name in args.scenes.split(",")]
            for name, r in zip(args.scenes.split(","), rows):
                print(f"| {width}x{height} | {method} | {name} | {r['epe']:.3f} | "
                      f"{r['edge']:.2f} | {100 * r['bad']:.1f}% | {r['ms']:.0f} |", flush=True)
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            print(f"| {width}x{height} | {method} | **mean** | {mean['epe']:.3f} | "
                  f"{mean['edge']:.2f} | {100 * mean['bad']:.1f}% | {mean['ms']:.0f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
