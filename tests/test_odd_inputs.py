"""Odd but valid inputs render; the remaining bad ones are refused cleanly.

Every input is written with PyAV into ``tmp_path``; renders use tiny settings (64 px, one or two
iterations a frame) so each takes a second or two on a CPU. A refused render must leave no
output, no temporary file and its inputs untouched.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import vidstyle.device as device_policy
import vidstyle.pipeline as pipeline
from vidstyle.cli import main
from vidstyle.config import FastConfig, OptimConfig, RenderConfig, StyleConfig
from vidstyle.errors import DecodeError, DeviceError, Interrupted, OutputError
from vidstyle.io import VideoWriter, iter_frames, probe, working_size
from vidstyle.io.images import load_image
from vidstyle.io.store import FrameStore
from vidstyle.samples import render_scene_frame

TINY = OptimConfig(first_iterations=2, iterations=1, early_stop=0)
TINY_FLAGS = ["--max-side", "64", "--first-iterations", "2", "--iterations", "1",
              "--early-stop", "0", "-q"]  # fmt: skip
RED, BLUE = (230, 20, 20), (20, 20, 230)


# -- helpers -----------------------------------------------------------------------------------


def scenes(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    return [render_scene_frame(i, width=width, height=height) for i in range(count)]


def write_clip(
    path: Path,
    images: Sequence[np.ndarray],
    *,
    times: Sequence[float] | None = None,
    rate: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    tones: Sequence[tuple[float, float]] = (),
) -> Path:
    """Encode RGB ``images`` with PyAV and return ``path``.

    ``times`` gives each frame's time in seconds (default ``i / rate``); ``rotation`` is a display
    rotation in degrees counter-clockwise; ``tones`` adds one AAC stream per
    ``(frequency, seconds)``.
    """
    time_base = Fraction(1, 1000) if times is not None else Fraction(1, rate)
    with av.open(str(path), "w") as container:
        # The codec is a run-time name, so the stubs cannot tell this is a video stream.
        video = cast(av.VideoStream, container.add_stream(codec, rate=rate))
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = pix_fmt
        video.time_base = video.codec_context.time_base = time_base
        if rotation is not None:
            if not hasattr(video, "set_display_rotation"):
                pytest.skip(f"PyAV {av.__version__} cannot write a display rotation")
            video.set_display_rotation(rotation)
        sounds = [container.add_stream("aac", rate=48000, layout="mono") for _ in tones]
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = round((times[i] if times is not None else i / rate) / time_base)
            frame.time_base = time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for sound, (freq, seconds) in zip(sounds, tones):
            n = sound.codec_context.frame_size or 1024
            for start in range(0, round(48000 * seconds), n):
                t = np.arange(start, start + n) / 48000
                wave = (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def audio_streams(path: Path) -> int:
    with av.open(str(path)) as container:
        return len(container.streams.audio)


def config(clip: Path, image: Path, out: Path, **kwargs: object) -> RenderConfig:
    """A tiny render of ``clip`` styled by ``image``; ``kwargs`` override RenderConfig fields."""
    kwargs.setdefault("max_side", 64)
    return RenderConfig(input=clip, styles=(image,), output=out, optim=TINY, **kwargs)  # type: ignore[arg-type]


def fingerprint(*paths: Path) -> dict[Path, tuple[str, int]]:
    """Content hash and mtime of each file, to show that inputs were left alone."""
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


def work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.vidstyle"


def stored_frames(out: Path) -> int:
    folder = work_folder(out)
    lines = (folder / "frames.jsonl").read_text().splitlines()
    assert len(list(folder.glob("*.png"))) == len(lines)
    return len(lines)


def assert_refused_cleanly(out: Path, inputs: dict[Path, tuple[str, int]]) -> None:
    """No output, no temporary file beside it, inputs untouched."""
    assert not out.exists()
    leftovers = [n for n in os.listdir(out.parent) if "partial" in n or n.endswith(".tmp")]
    assert not leftovers
    assert fingerprint(*inputs) == inputs


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidstyle: error: "), err
    return lines[0]


# -- odd but valid inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "suffix"), [("ffv1", "yuv444p", ".mkv"), ("mpeg4", "yuv420p", ".mp4")]
)
def test_odd_frame_size(
    tmp_path: Path, styles: list[Path], codec: str, pix_fmt: str, suffix: str
) -> None:
    clip = write_clip(tmp_path / f"odd{suffix}", scenes(1, 101, 75), codec=codec, pix_fmt=pix_fmt)
    assert (probe(clip).width, probe(clip).height) == (101, 75)
    result = pipeline.render(config(clip, styles[0], tmp_path / "out.mp4"))
    frames = decoded(result.output)
    width, height = frames[0].width, frames[0].height
    assert len(frames) == 1 and (width, height) == result.size == (64, 46)
    assert width % 2 == 0 and height % 2 == 0
    # The documented contract: the exactly scaled sides rounded down to even, so the aspect
    # ratio is kept to within that rounding (here 64x47.5 -> 64x46).
    exact_height = width * 75 / 101
    assert 0 <= exact_height - height < 2
    assert sorted(os.listdir(tmp_path)) == sorted([clip.name, "out.mp4"])


def test_single_frame_video(tmp_path: Path, styles: list[Path]) -> None:
    clip = write_clip(tmp_path / "one.mp4", scenes(1), tones=[(440.0, 0.5)])
    result = pipeline.render(config(clip, styles[0], tmp_path / "out.mp4"))
    assert result.frames == 1
    assert len(decoded(result.output)) == 1
    assert audio_streams(result.output) == 1


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_keeps_frame_times(
    tmp_path: Path, styles: list[Path], suffix: str
) -> None:
    times = [0.0, 0.04, 0.1, 0.13, 0.2, 0.31]
    clip = write_clip(tmp_path / f"vfr{suffix}", scenes(len(times)), times=times)
    source = [f.time for f in iter_frames(clip)]
    assert source == pytest.approx(times, abs=1e-3)
    result = pipeline.render(config(clip, styles[0], tmp_path / "out.mp4"))
    out = [float(f.time) for f in decoded(result.output)]
    assert out == pytest.approx(source, abs=1e-3)  # not re-timed to a constant rate


def rotated_clip(path: Path, rotation: int) -> tuple[Path, np.ndarray]:
    """A 64x32 clip stored left half red, right half blue, with a display ``rotation``."""
    raw = np.zeros((32, 64, 3), np.uint8)
    raw[:, :32], raw[:, 32:] = RED, BLUE
    clip = write_clip(path, [raw] * 3, rotation=rotation)
    if not decoded(clip)[0].rotation:
        pytest.skip("PyAV wrote no display rotation into the file")
    return clip, raw


@pytest.mark.parametrize(("rotation", "turns"), [(90, 1), (180, 2), (-90, 3), (270, 3)])
def test_rotation_is_applied_on_decode(tmp_path: Path, rotation: int, turns: int) -> None:
    clip, raw = rotated_clip(tmp_path / "phone.mp4", rotation)
    upright = np.rot90(raw, k=turns)  # rotation is in degrees counter-clockwise, as np.rot90
    info = probe(clip)
    assert (info.width, info.height) == (upright.shape[1], upright.shape[0])
    assert info.rotation == turns * 90
    image = next(iter_frames(clip)).image
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright).mean() < 8


def test_rotation_metadata_gives_upright_output(tmp_path: Path, styles: list[Path]) -> None:
    clip, raw = rotated_clip(tmp_path / "phone.mp4", 90)
    assert decoded(clip)[0].rotation == 90  # stored as metadata, not in the pixels

    info = probe(clip)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    # `rotation` is degrees counter-clockwise: the stored right half (blue) ends up on top.
    upright = next(iter_frames(clip)).image
    assert upright.shape == (64, 32, 3)
    assert np.abs(upright.astype(int) - np.rot90(raw, k=1)).mean() < 8

    cfg = config(clip, styles[0], tmp_path / "out.mp4", frames=(0, 1),
                 style=StyleConfig(content_weight=1.0, style_weight=1e-6))
    result = pipeline.render(cfg)
    frame = decoded(result.output)[0]
    assert (frame.width, frame.height) == (32, 64)  # portrait
    assert not frame.rotation  # upright pixels, not rotated twice by a player
    image = frame.to_ndarray(format="rgb24").astype(float)
    top, bottom = image[:32].mean(axis=(0, 1)), image[32:].mean(axis=(0, 1))
    assert top[2] > top[0] + 100 and bottom[0] > bottom[2] + 100, (top, bottom)


def test_several_audio_streams_are_kept(tmp_path: Path, styles: list[Path]) -> None:
    clip = write_clip(tmp_path / "two.mp4", scenes(2), tones=[(440.0, 0.3), (660.0, 0.2)])
    assert probe(clip).audio_streams == 2
    result = pipeline.render(config(clip, styles[0], tmp_path / "out.mp4"))
    assert result.dropped_audio == ()
    with av.open(str(result.output)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac", "aac"]
        packets = {s.index: 0 for s in container.streams.audio}
        for packet in container.demux(*container.streams.audio):
            if packet.size:
                packets[packet.stream.index] += 1
    assert all(count > 0 for count in packets.values()), packets


def test_no_audio_gives_no_audio_stream(tmp_path: Path, styles: list[Path]) -> None:
    clip = write_clip(tmp_path / "mute.mp4", scenes(1))
    result = pipeline.render(config(clip, styles[0], tmp_path / "out.mp4"))
    assert audio_streams(result.output) == 0
    assert result.dropped_audio == ()


def test_non_ascii_file_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, styles: list[Path]
) -> None:
    clip = write_clip(tmp_path / "clip ünïcode 日本.mp4", scenes(2), tones=[(440.0, 0.2)])
    style = tmp_path / "stíle.jpg"
    style.write_bytes(styles[0].read_bytes())
    out = tmp_path / "öut 出力.mp4"
    code = main(["run", str(clip), "--style", str(style), "-o", str(out), *TINY_FLAGS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith(f"wrote {out}: 2 frames")
    assert len(decoded(out)) == 2 and audio_streams(out) == 1
    assert sorted(os.listdir(tmp_path)) == sorted([clip.name, style.name, out.name])


def non_utf8(folder: Path, name: bytes) -> Path:
    """``folder / name`` for a POSIX file name that is not valid UTF-8 (Latin-1 bytes)."""
    if sys.platform in ("win32", "darwin") or sys.getfilesystemencoding().lower() != "utf-8":
        pytest.skip("file names here are always valid Unicode")
    path = folder / os.fsdecode(name)
    try:
        path.touch()
        path.unlink()
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    return path


def test_work_folder_with_a_non_utf8_name(tmp_path: Path) -> None:
    """Stored frames load back whatever bytes the output's name has (cv2.imread crashed)."""
    out = non_utf8(tmp_path, b"r\xe9sultat.mp4")
    store = FrameStore(out, "key")
    store.start()
    image = scenes(1)[0]
    store.add(0, 0.0, image)
    again = FrameStore(out, "key")
    assert again.exists() and again.read() == store.frames
    assert np.array_equal(again.load(0), image)


def test_non_utf8_file_names(tmp_path: Path, styles: list[Path]) -> None:
    clip = write_clip(non_utf8(tmp_path, b"clip\xe9.mp4"), scenes(2), tones=[(440.0, 0.2)])
    style = non_utf8(tmp_path, b"st\xefle.jpg")
    style.write_bytes(styles[0].read_bytes())
    out = non_utf8(tmp_path, b"\xf6ut.mp4")
    result = pipeline.render(config(clip, style, out))
    assert result.output == out
    assert len(decoded(out)) == 2 and audio_streams(out) == 1
    assert sorted(os.listdir(tmp_path)) == sorted([clip.name, style.name, out.name])


def style_kinds(folder: Path, source: Path) -> dict[str, Path]:
    """The same picture as grayscale, RGBA, 16-bit gray, 16-bit RGB PNGs and a CMYK JPEG."""
    with Image.open(source) as im:
        rgb = im.convert("RGB")
    arr = np.asarray(rgb)
    paths = {name: folder / name for name in
             ("gray.png", "rgba.png", "gray16.png", "rgb16.png", "cmyk.jpg")}  # fmt: skip
    rgb.convert("L").save(paths["gray.png"])
    alpha = np.linspace(0, 255, arr.shape[1], dtype=np.uint8)[None, :].repeat(arr.shape[0], 0)
    Image.fromarray(np.dstack([arr, alpha]), "RGBA").save(paths["rgba.png"])
    gray16 = np.asarray(rgb.convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray16).save(paths["gray16.png"])
    cv2.imwrite(str(paths["rgb16.png"]), arr[..., ::-1].astype(np.uint16) * 257)
    rgb.convert("CMYK").save(paths["cmyk.jpg"])
    return paths


def test_style_image_kinds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, styles: list[Path]
) -> None:
    kinds = style_kinds(tmp_path, styles[0])
    with Image.open(styles[0]) as im:
        size = (im.height, im.width)
    modes = {}
    for name, path in kinds.items():
        with Image.open(path) as im:
            modes[name] = im.mode
        image = load_image(path)
        assert image.shape == (1, 3, *size) and image.dtype == torch.float32
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert float(image.std()) > 0.05, f"{name} lost its picture"
    assert modes["gray.png"] == "L" and modes["rgba.png"] == "RGBA"
    assert modes["gray16.png"].startswith("I") and modes["cmyk.jpg"] == "CMYK"
    # 16-bit gray is scaled, not clipped: it matches the 8-bit gray image.
    assert torch.allclose(load_image(kinds["gray16.png"]), load_image(kinds["gray.png"]),
                          atol=1 / 255)

    clip = write_clip(tmp_path / "clip.mp4", scenes(1))
    out = tmp_path / "out.mp4"
    style_args = [arg for path in kinds.values() for arg in ("--style", str(path))]
    code = main(["run", str(clip), *style_args, "-o", str(out), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().err
    assert len(decoded(out)) == 1


# -- corrupt input -----------------------------------------------------------------------------


def damaged_clip(path: Path, frames: int = 8, damaged: int = 3) -> Path:
    """An MJPEG AVI whose frame ``damaged`` has its JPEG data zeroed (container intact)."""
    write_clip(path, scenes(frames), codec="mjpeg", pix_fmt="yuvj420p")
    data = bytearray(path.read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", data)]  # JPEG start markers
    assert len(starts) == frames
    begin, end = starts[damaged] + 2, starts[damaged + 1] - 8  # keep the next chunk header
    data[begin:end] = bytes(end - begin)
    path.write_bytes(bytes(data))
    return path


def decode_fails(path: Path) -> bool:
    try:
        list(iter_frames(path))
    except DecodeError:
        return True
    return False


def test_corrupt_mid_stream(tmp_path: Path, styles: list[Path]) -> None:
    clip = damaged_clip(tmp_path / "broken.avi")
    out = tmp_path / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    if not decode_fails(clip):
        # FFmpeg concealed the damage: rendering what it decodes is acceptable too.
        try:
            pipeline.render(config(clip, styles[0], out))
        except DecodeError:
            assert_refused_cleanly(out, inputs)
        pytest.skip("this FFmpeg conceals the damaged frame; the DecodeError path is untested")

    with pytest.raises(DecodeError, match=r"after frame 2\b") as info:
        pipeline.render(config(clip, styles[0], out))
    assert "kept" not in str(info.value)
    assert_refused_cleanly(out, inputs)
    assert not work_folder(out).exists()

    with pytest.raises(DecodeError, match=r"after frame 2\b.*kept the 3 frames") as info:
        pipeline.render(config(clip, styles[0], out, keep_partial=True))
    assert str(out) in str(info.value)
    assert len(decoded(out)) == 3
    assert not work_folder(out).exists()
    assert sorted(os.listdir(tmp_path)) == ["broken.avi", "out.mp4"]
    assert fingerprint(clip, styles[0]) == inputs


def test_fast_with_keep_partial_trains_on_the_frames_before_the_damage(
    tmp_path: Path, styles: list[Path]
) -> None:
    clip = damaged_clip(tmp_path / "broken.avi", damaged=5)
    if not decode_fails(clip):
        pytest.skip("this FFmpeg conceals the damaged frame; the DecodeError path is untested")
    out = tmp_path / "out.mp4"
    quick = FastConfig(fast=True, fast_steps=2, fast_crop=64, fast_keyframes=2)
    with pytest.raises(DecodeError, match=r"after frame 4\b.*kept the 5 frames"):
        pipeline.render(config(clip, styles[0], out, fast=quick, keep_partial=True))
    assert len(decoded(out)) == 5
    assert not work_folder(out).exists()
    plain = tmp_path / "plain.mp4"
    with pytest.raises(DecodeError, match=r"after frame 4\b") as info:
        pipeline.render(config(clip, styles[0], plain, fast=quick))
    assert "kept" not in str(info.value) and not plain.exists()
    assert not work_folder(plain).exists()


# -- output and memory failures ----------------------------------------------------------------


def test_disk_full_keeps_finished_frames_for_resume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, styles: list[Path]
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", scenes(2), tones=[(440.0, 0.2)])
    out = tmp_path / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    cfg = config(clip, styles[0], out)

    def full(self: VideoWriter, packets: list[av.Packet]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(VideoWriter, "_mux_video", full)
        with pytest.raises(OutputError, match="disk full"):
            pipeline.render(cfg)
    assert_refused_cleanly(out, inputs)
    assert stored_frames(out) == 2  # finished work is not lost

    result = pipeline.render(dataclasses.replace(cfg, resume=True))
    assert result.resumed_frames == 2 and result.frames == 2
    assert len(decoded(out)) == 2 and audio_streams(out) == 1
    assert not work_folder(out).exists()


def big_clip(folder: Path) -> Path:
    return write_clip(folder / "big.mp4", scenes(1, 640, 360))


def test_memory_refusal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, styles: list[Path]
) -> None:
    clip = big_clip(tmp_path)
    out = tmp_path / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    monkeypatch.setattr(device_policy, "available_memory", lambda device: 1.2e9)
    with pytest.raises(DeviceError, match="--max-side") as info:
        pipeline.render(config(clip, styles[0], out, max_side=0))
    assert_refused_cleanly(out, inputs)
    assert os.listdir(tmp_path) == [clip.name]  # refused before any work folder exists
    # The suggested size does fit, whole.
    side = int(re.search(r"--max-side (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    assert 64 <= side < 640
    assert device_policy.plan_tiles("efficientnet-lite0", *working_size(640, 360, side),
                                    torch.device("cpu")) == (1, 1)


def test_memory_refusal_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    styles: list[Path],
) -> None:
    clip = big_clip(tmp_path)
    out = tmp_path / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    monkeypatch.setattr(device_policy, "available_memory", lambda device: 1.2e9)
    code = main(["run", str(clip), "--style", str(styles[0]), "-o", str(out),
                 "--max-side", "0", "-q"])
    captured = capsys.readouterr()
    assert code == 6
    assert "--max-side" in one_error_line(captured.err)
    assert captured.out == ""
    assert_refused_cleanly(out, inputs)
    assert os.listdir(tmp_path) == [clip.name]


def test_frames_too_big_for_the_memory_budget_are_rendered_in_tiles(
    tmp_path: Path, styles: list[Path]
) -> None:
    clip = write_clip(tmp_path / "big.mp4", scenes(2, 1280, 720))
    out = tmp_path / "out.mp4"
    whole = device_policy.estimate_memory("efficientnet-lite0", 1280, 720)
    reports: list[pipeline.Progress] = []
    result = pipeline.render(config(clip, styles[0], out, max_side=0, max_memory=2.2),
                             progress=reports.append)
    assert whole > 2.2e9  # whole frames would not fit the budget ...
    tiles = reports[-1].tiles
    assert tiles != (1, 1) and all(r.tiles == tiles for r in reports)  # ... so tiles were used
    assert result.frames == 2 and result.size == (1280, 720)
    assert [f.width for f in decoded(out)] == [1280, 1280]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only directories anyway")
def test_output_directory_not_writable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, styles: list[Path]
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", scenes(2))
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    locked.chmod(0o555)
    try:
        code = main(["run", str(clip), "--style", str(styles[0]), "-o", str(out), *TINY_FLAGS])
        captured = capsys.readouterr()
        assert code == 4
        assert "not writable" in one_error_line(captured.err)
        assert os.listdir(locked) == []
        assert_refused_cleanly(out, inputs)
    finally:
        locked.chmod(0o755)


def test_output_directory_reported_unwritable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, styles: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same refusal where the test runs as root (which writes anywhere): the folder
    # reports itself unwritable, as a read-only mount or a foreign owner's folder would.
    clip = write_clip(tmp_path / "clip.mp4", scenes(2))
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if Path(str(path)) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    code = main(["run", str(clip), "--style", str(styles[0]), "-o", str(out), *TINY_FLAGS])
    captured = capsys.readouterr()
    assert code == 4
    assert "not writable" in one_error_line(captured.err)
    assert os.listdir(locked) == []
    assert_refused_cleanly(out, inputs)


# -- interrupted render ------------------------------------------------------------------------


def test_interrupted_render_guard_and_resume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, styles: list[Path]
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", scenes(3))
    out = tmp_path / "out.mp4"
    inputs = fingerprint(clip, styles[0])
    cfg = config(clip, styles[0], out)
    original = pipeline.FrameStylizer.stylize
    calls = 0

    def stylize(self: pipeline.FrameStylizer, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.FrameStylizer, "stylize", stylize)
        with pytest.raises(Interrupted, match="after 2 of 3 frames.*--resume"):
            pipeline.render(cfg)
    assert_refused_cleanly(out, inputs)
    assert stored_frames(out) == 2

    with pytest.raises(OutputError, match="--resume"):
        pipeline.render(cfg)
    assert_refused_cleanly(out, inputs)
    assert stored_frames(out) == 2

    other = dataclasses.replace(cfg, resume=True, style=StyleConfig(style_weight=5e3))
    with pytest.raises(OutputError, match="other settings"):
        pipeline.render(other)
    assert_refused_cleanly(out, inputs)
    assert stored_frames(out) == 2  # a refused resume leaves the frames alone

    result = pipeline.render(dataclasses.replace(cfg, resume=True))
    assert result.resumed_frames == 2 and result.frames == 3
    assert len(decoded(out)) == 3
    assert not work_folder(out).exists()
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "out.mp4"]
    assert fingerprint(clip, styles[0]) == inputs
