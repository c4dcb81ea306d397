"""Speed of ``vidstyle run`` against a bare optimization loop, measured in one run.

    python benchmarks/speed.py                      # CPU: efficientnet-lite0 at 384 px, 20 frames
    python benchmarks/speed.py --device cuda        # GPU: 360p/720p/1080p, both backbones
    python benchmarks/speed.py --memory-run         # host memory over a 1000-frame render
    python benchmarks/speed.py --overlap 2          # also: stage overlap on against off, 2 pairs

For each backbone and size it times, in separate processes so peak memory is per case:

* **vidstyle**: the whole :func:`vidstyle.pipeline.render` (probe, model load, decode, flow,
  warp, masks, optimization, lossless frame store, encode with audio), start-up included;
* **bare**: a plain content + Gram optimization of the same frames (already in memory) on the
  same backbone, size and iteration counts, written simply here.

With ``--overlap`` it also times **in turn**: the same render with decode and optical flow done
between frames instead of in a worker thread while the previous frame is optimized, and the
seconds spent inside the optimizer in both (the overlap must not slow it down).

``vidstyle / bare`` is the pipeline's overhead. Early stopping is off in both, so the
iteration counts are equal. On a GPU the **floor** is also printed: the backbone's forward
plus input-gradient FLOPs per iteration (counted by ``torch.utils.flop_counter`` on one real
iteration) divided by the device's measured matrix throughput, and the share of it reached.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {"360": (640, 360), "384": (384, 216), "720": (1280, 720), "1080": (1920, 1080),
         "2160": (3840, 2160)}


def _case(backbone: str, size: str, frames: int, first: int, later: int, device: str,
          mode: str, workdir: Path, precision: str = "auto",
          compile: bool = False, max_memory: float = 0.0) -> dict[str, Any]:
    import torch

    from vidstyle.config import OptimConfig, RenderConfig, StyleConfig
    from vidstyle.samples import make_clip, make_style_images

    width, height = SIZES[size]
    clip = make_clip(workdir / "clip.mp4", width=width, height=height, frames=frames)
    style = make_style_images(workdir, size=384)[0]
    weights = _weights(backbone, workdir)
    optim = OptimConfig(first_iterations=first, iterations=later, early_stop=0,
                        precision=precision, compile=compile)
    style_cfg = StyleConfig(backbone=backbone, weights=weights)
    dev = torch.device(device)
    optimizing = 0.0
    done: list[float] = []  # when each frame was finished
    tiles = [1, 1]
    if mode in ("vidstyle", "serial"):
        from vidstyle import pipeline

        stylize = pipeline.FrameStylizer.stylize

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            # Time inside the optimizer, to see whether the overlapped stages slow it down.
            nonlocal optimizing
            t = time.perf_counter()
            result = stylize(*args, **kwargs)
            optimizing += time.perf_counter() - t
            return result

        pipeline.FrameStylizer.stylize = timed  # type: ignore[method-assign]

        def finished(p: pipeline.Progress) -> None:
            tiles[:] = p.tiles
            if p.frame_done:
                done.append(time.perf_counter())

        began = time.perf_counter()
        pipeline.render(RenderConfig(input=clip, styles=(style,), output=workdir / "out.mp4",
                                     max_side=0, device=device, style=style_cfg, optim=optim,
                                     max_memory=max_memory),
                        overlap=mode == "vidstyle", progress=finished)
    else:
        from vidstyle.features import load_backbone
        from vidstyle.io import iter_frames
        from vidstyle.io.images import to_tensor

        # The bare loop gets its frames and network ready before the clock starts.
        frames = [to_tensor(f.image, dev) for f in iter_frames(clip)]
        net = load_backbone(backbone, device=dev, weights_file=weights)
        began = time.perf_counter()
        _bare(frames, net, style, style_cfg.style_weight, optim)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": seconds, "rss_mb": peak_rss, "optimize_s": optimizing,
              "tiles": f"{tiles[0]}x{tiles[1]}"}
    if len(done) > 1:  # a later frame: from the first frame's end to the last's, per frame
        result["later_s"] = (done[-1] - done[0]) / (len(done) - 1)
    if dev.type == "cuda":
        result["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _bare(frames, net, style: Path, style_weight: float, optim) -> None:  # type: ignore[no-untyped-def]
    """Content + Gram loss, Adam on the pixels, every frame from its input: nothing else."""
    import torch

    from vidstyle.io.images import load_image
    from vidstyle.losses import content_loss, gram_matrix

    device = frames[0].device
    layers = net.style_layers
    with torch.no_grad():
        s = load_image(style).to(device)
        targets = {k: gram_matrix(v) for k, v in net(s, layers).items()}
    for i, frame in enumerate(frames):
        with torch.no_grad():
            content = net(frame, net.content_layers)
        x = frame.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=optim.lr)
        for _ in range(optim.first_iterations if i == 0 else optim.iterations):
            opt.zero_grad()
            feats = net(x, tuple(dict.fromkeys(net.content_layers + layers)))
            loss = sum(content_loss(feats[k], content[k]) for k in net.content_layers)
            loss = loss + style_weight * sum(
                torch.mean((gram_matrix(feats[k]) - targets[k]) ** 2) for k in layers
            ) / len(layers)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        x.detach().cpu()


def _weights(backbone: str, folder: Path) -> Path | None:
    """A weights file of random VGG-19 weights in ``folder`` (None for other backbones): the
    ImageNet ones cannot be downloaded everywhere, and for speed random weights cost the same."""
    if backbone != "vgg19":
        return None
    import torch
    import torchvision

    weights = folder / "vgg19-random.pth"
    torch.save(torchvision.models.vgg19().state_dict(), weights)
    return weights


def _floor(backbone: str, size: str, device: str) -> tuple[float, float]:
    """(FLOPs of one iteration, measured dense matmul FLOP/s) on ``device``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vidstyle.features import load_backbone

    width, height = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        net = load_backbone(backbone, device=device, weights_file=_weights(backbone, Path(tmp)))
    x = torch.rand(1, 3, height, width, device=device, requires_grad=True)
    taps = tuple(dict.fromkeys(net.content_layers + net.style_layers))
    with FlopCounterMode(display=False) as counter:
        sum(v.square().mean() for v in net(x, taps).values()).backward()
    flops = float(counter.get_total_flops())
    a = torch.randn(4096, 4096, device=device)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize() if device == "cuda" else None
    t = time.perf_counter()
    for _ in range(20):
        a @ a
    torch.cuda.synchronize() if device == "cuda" else None
    return flops, 20 * 2 * 4096**3 / (time.perf_counter() - t)


def _agreement(backbone: str, size: str, device: str, iterations: int) -> str:
    """One frame optimized in float32 and at each faster precision: seconds per iteration and
    how far the results are from the float32 one."""
    import torch

    from vidstyle.config import OptimConfig, StyleConfig
    from vidstyle.features import load_backbone
    from vidstyle.io.images import load_image
    from vidstyle.optimize import FrameStylizer
    from vidstyle.samples import make_style_images, render_scene_frame

    width, height = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        net = load_backbone(backbone, device=device, weights_file=_weights(backbone, Path(tmp)))
        style = load_image(make_style_images(Path(tmp), size=384)[0]).to(device)
    frame = torch.from_numpy(render_scene_frame(0, width=width, height=height))
    content = frame.permute(2, 0, 1)[None].float().div(255).to(device)
    results = {}
    for precision in ("float32", "tf32", "bf16"):
        stylizer = FrameStylizer(net, [style], style=StyleConfig(), frame_size=(height, width),
                                 optim=OptimConfig(early_stop=0, precision=precision))
        stylizer.stylize(content, content, iterations=3)  # warm-up: cuDNN's search, caches
        torch.cuda.synchronize() if device == "cuda" else None
        t = time.perf_counter()
        out, stats = stylizer.stylize(content, content, iterations=iterations)
        torch.cuda.synchronize() if device == "cuda" else None
        results[precision] = (out, stats.loss, (time.perf_counter() - t) / iterations)
    ref, ref_loss, ref_time = results["float32"]
    moved = (ref - content).abs().mean().item()
    lines = []
    for precision, (out, loss, seconds) in results.items():
        diff = (out - ref).abs().mean().item()
        lines.append(f"  {backbone} {width}x{height} {precision:8} {seconds:7.4f} s/iter "
                     f"({ref_time / seconds:4.2f}x float32)  mean |pixel - float32's| "
                     f"{diff:.4f} (float32 moved the pixels by {moved:.4f})  loss "
                     f"{loss / ref_loss:6.3f}x float32's")
    return "\n".join(lines)


def _memory_run(frames: int) -> None:
    """Render ``frames`` tiny frames; print host RSS at ten points (it must stay flat)."""
    from vidstyle.config import OptimConfig, RenderConfig
    from vidstyle.pipeline import render
    from vidstyle.samples import make_clip, make_style_images

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_clip(work / "long.mp4", width=64, height=36, frames=frames, fps=24)
        style = make_style_images(work, size=64)[0]
        samples: list[tuple[int, float]] = []
        every = max(1, frames // 10)

        def rss(p) -> None:  # type: ignore[no-untyped-def]
            if p.frame_done and p.frame % every == 0:
                status = Path("/proc/self/status").read_text().splitlines()
                kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
                samples.append((p.frame, kb / 1024))

        render(RenderConfig(input=clip, styles=(style,), output=work / "o.mp4", max_side=64,
                            optim=OptimConfig(first_iterations=1, iterations=1, early_stop=0)),
               progress=rss)
    print(f"host RSS over a {frames}-frame render (MB): "
          + ", ".join(f"{n}: {mb:.0f}" for n, mb in samples))
    first, last = samples[0][1], samples[-1][1]
    print(f"growth from frame {samples[0][0]} to {samples[-1][0]}: {last - first:+.0f} MB "
          f"({last / first:.3f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", help="comma list of 360,384,720,1080,2160")
    parser.add_argument("--backbones", help="comma list (default: lite0 on CPU, both on GPU)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--first-iterations", type=int, default=150)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--memory-run", type=int, nargs="?", const=1000, metavar="FRAMES")
    parser.add_argument("--overlap", type=int, nargs="?", const=2, default=0, metavar="PAIRS",
                        help="also time PAIRS (default 2) renders with and without decode and "
                        "flow overlapped with the optimizer, in alternating order")
    parser.add_argument("--precision", default="auto",
                        help="auto, float32, tf32 or bf16 for the vidstyle runs (default auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--max-memory", type=float, default=0.0, metavar="GB",
                        help="the renders' memory budget (default: what is free); frames "
                        "over it are optimized in tiles")
    parser.add_argument("--no-bare", action="store_true",
                        help="skip the bare loop (for large frames on a CPU)")
    parser.add_argument("--case", nargs=2, metavar=("MODE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        _memory_run(args.memory_run)
        return 0
    if args.case:
        mode, spec = args.case
        backbone, size = spec.split("@")
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(_case(backbone, size, args.frames, args.first_iterations,
                                   args.iterations, args.device, mode, Path(tmp),
                                   args.precision, args.compile, args.max_memory)))
        return 0

    gpu = args.device == "cuda"
    sizes = (args.sizes or ("360,720,1080" if gpu else "384")).split(",")
    nan = float("nan")
    backbones = (args.backbones or ("efficientnet-lite0,vgg19" if gpu
                                    else "efficientnet-lite0")).split(",")
    iterations = args.first_iterations + (args.frames - 1) * args.iterations
    print(f"device {args.device}, precision {args.precision}"
          f"{', compiled' if args.compile else ''}; {args.frames} frames, "
          f"{args.first_iterations} iterations for "
          f"the first and {args.iterations} for each later frame ({iterations} in all)")
    print(f"{'backbone':20} {'size':>9} {'vidstyle s':>10} {'bare s':>8} {'ratio':>6} "
          f"{'s/iter':>7} {'s/frame':>8} {'later s/frame':>13} {'RSS MB':>7} {'GPU MB':>7} "
          f"{'floor':>6} {'tiles':>6}")
    overlap_rows = []
    for backbone in backbones:
        for size in sizes:
            def case(mode: str, backbone: str = backbone, size: str = size) -> dict[str, Any]:
                cmd = [sys.executable, __file__, "--device", args.device, "--frames",
                       str(args.frames), "--first-iterations", str(args.first_iterations),
                       "--iterations", str(args.iterations), "--precision", args.precision,
                       "--max-memory", str(args.max_memory),
                       "--case", mode, f"{backbone}@{size}"] + (
                           ["--compile"] if args.compile else [])
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                return json.loads(out.strip().splitlines()[-1])

            runs = {mode: case(mode) for mode in ("vidstyle", *(() if args.no_bare
                                                                 else ("bare",)))}
            if args.overlap:
                # Run-to-run spread on a shared machine is several percent, larger than what
                # the overlap can change on a CPU: alternate the order and keep every pair.
                pairs = []
                for r in range(args.overlap):
                    order = ("serial", "vidstyle") if r % 2 == 0 else ("vidstyle", "serial")
                    got = {mode: case(mode) for mode in order}
                    pairs.append((got["vidstyle"], got["serial"]))
            v, b = runs["vidstyle"], runs.get("bare")
            # Seconds per iteration of the bare loop; without it, of the whole render.
            per_iter = (b or v)["seconds"] / iterations
            floor = ""
            if gpu:
                flops, rate = _floor(backbone, size, args.device)
                floor = f"{100 * flops / rate / per_iter:5.0f}%"
            w, h = SIZES[size]
            bare_s = b["seconds"] if b else nan
            print(f"{backbone:20} {w:>4}x{h:<4} {v['seconds']:10.1f} {bare_s:8.1f} "
                  f"{v['seconds'] / bare_s:6.2f} {per_iter:7.3f} "
                  f"{v['seconds'] / args.frames:8.2f} {v.get('later_s', nan):13.2f} "
                  f"{v['rss_mb']:7.0f} {v.get('gpu_mb', nan):7.0f} {floor:>6} "
                  f"{v['tiles']:>6}")
            if args.overlap:
                overlap_rows.extend((backbone, f"{w}x{h}", o, t) for o, t in pairs)
    if gpu:
        print("\nfast paths against float32 (one frame, 50 iterations):")
        for backbone in backbones:
            for size in sizes:
                print(_agreement(backbone, size, args.device, 50), flush=True)
    if overlap_rows:
        print("\nstage overlap (decode + flow in a worker thread) against the same stages in "
              "turn:")
        print(f"{'backbone':20} {'size':>9} {'overlap s':>9} {'in turn s':>9} {'ratio':>6} "
              f"{'optimizer s (overlap / in turn)':>32}")
        for backbone, size, v, s in overlap_rows:
            print(f"{backbone:20} {size:>9} {v['seconds']:9.1f} {s['seconds']:9.1f} "
                  f"{v['seconds'] / s['seconds']:6.3f} "
                  f"{v['optimize_s']:14.1f} / {s['optimize_s']:.1f} "
                  f"({v['optimize_s'] / s['optimize_s']:.3f})")
        total = [sum(r[k]["seconds"] for r in overlap_rows) for k in (2, 3)]
        print(f"all pairs: overlap / in turn = {total[0] / total[1]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
