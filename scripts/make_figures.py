"""Make the README's pictures from the bundled samples: ``python scripts/make_figures.py``.

Renders the first second of ``sample_videos/pan.mp4`` with both bundled styles at the default
settings and writes ``docs/demo.png``: input frames on top, each style below, frame numbers
on the left column's frames.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidstyle.config import RenderConfig
from vidstyle.io import iter_frames
from vidstyle.pipeline import render

ROOT = Path(__file__).resolve().parents[1]
SHOW = (0, 8, 16, 23)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def main() -> int:
    clip = ROOT / "sample_videos" / "pan.mp4"
    rows = [[_label(f.image, f"input {f.index}") for f in iter_frames(clip, stop_index=24)
             if f.index in SHOW]]
    with tempfile.TemporaryDirectory() as tmp:
        for style in ("ink", "embers"):
            out = Path(tmp) / f"{style}.mp4"
            render(RenderConfig(input=clip, styles=(ROOT / "sample_videos" / f"{style}.jpg",),
                                output=out, frames=(0, 24)))
            rows.append([_label(f.image, f"{style} {f.index}") for f in iter_frames(out)
                         if f.index in SHOW])
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    target = ROOT / "docs" / "demo.png"
    target.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(target), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {target.relative_to(ROOT)} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
