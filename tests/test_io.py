"""vidstyle.io: probe, working size, streaming decode, atomic encode with audio remux."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidstyle.errors import DecodeError, InputError, OutputError
from vidstyle.io import VideoWriter, check_output_path, iter_frames, probe, working_size

RATE = Fraction(24)
TIME_BASE = Fraction(1, 12288)


def listing(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden files included."""
    return sorted(os.listdir(folder))


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def audio_span(path: Path) -> float:
    """Seconds of sound a player plays: the decoded samples (after the skips the container
    asks for) over the sample rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(stream))
        assert samples, "the audio stream holds no sound"
        return samples / stream.codec_context.sample_rate


def write_audio_only(path: Path) -> Path:
    """A short AAC track in an .m4a container: a real media file without video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="mono")
        n = stream.codec_context.frame_size or 1024
        for i in range(8):
            samples = np.zeros((1, n), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * n, Fraction(1, 48000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def solid(width: int = 96, height: int = 64, value: int = 128) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


# -- probe -------------------------------------------------------------------------------------


def test_probe_tiny_clip(tiny_clip: Path) -> None:
    info = probe(tiny_clip)
    assert info.path == tiny_clip
    assert (info.width, info.height) == (96, 64)
    assert info.rate == 24
    assert info.audio_streams == 1
    assert info.frame_count == 12
    assert info.duration == pytest.approx(0.5, abs=1e-3)
    assert info.time_base > 0


def test_probe_accepts_str(tiny_clip: Path) -> None:
    assert probe(str(tiny_clip)).width == 96


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found") as info:
        probe(tmp_path / "missing.mp4")
    assert not isinstance(info.value, DecodeError)


def test_probe_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        probe(tmp_path)


def test_probe_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(DecodeError, match="empty"):
        probe(empty)


def test_probe_text_file(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a shopping list, not a video\n" * 20)
    with pytest.raises(DecodeError, match="not a video file") as info:
        probe(fake)
    assert str(fake) in str(info.value)


def test_probe_audio_only(tmp_path: Path) -> None:
    song = write_audio_only(tmp_path / "song.m4a")
    with pytest.raises(DecodeError, match="no video stream"):
        probe(song)
    with pytest.raises(DecodeError, match="no video stream"):
        next(iter_frames(song))


def _truncated_frames(path: Path) -> int | None:
    """Frames decoded from a damaged file, or None when it raised DecodeError."""
    try:
        return len(list(iter_frames(path)))
    except DecodeError:
        return None


def test_truncated_clip_raises_decode_error_or_yields_fewer(
    tiny_clip: Path, tmp_path: Path
) -> None:
    data = tiny_clip.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    frames = _truncated_frames(broken)  # any exception other than DecodeError fails the test
    assert frames is None or frames < 12


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_streamable_file(
    tiny_clip: Path, tmp_path: Path, suffix: str, fraction: float
) -> None:
    """Files with their index up front (faststart MP4, Matroska) decode until the cut."""
    whole = tmp_path / f"whole{suffix}"
    with VideoWriter(whole, width=96, height=64, rate=RATE, time_base=TIME_BASE) as writer:
        for frame in iter_frames(tiny_clip):
            writer.write(frame.image, frame.time)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    frames = _truncated_frames(cut)
    assert frames is None or frames < 12


# -- working size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((96, 64), 0, (96, 64)),
        ((96, 64), 512, (96, 64)),  # never upscaled
        ((101, 75), 0, (100, 74)),  # odd sides round down to even
        ((1920, 1080), 512, (512, 288)),
        ((1080, 1920), 320, (180, 320)),
        ((96, 64), 64, (64, 42)),
    ],
)
def test_working_size(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    assert working_size(*size, max_side) == expected


@pytest.mark.parametrize("size", [(101, 75), (1279, 719), (333, 777), (4000, 3001), (97, 63)])
@pytest.mark.parametrize("max_side", [0, 64, 320, 513])
def test_working_size_is_even_bounded_and_keeps_aspect(
    size: tuple[int, int], max_side: int
) -> None:
    w, h = working_size(*size, max_side)
    assert w % 2 == 0 and h % 2 == 0
    if max_side:
        assert max(w, h) <= max_side
    # Each side is the exactly scaled side rounded down to even: the aspect ratio is kept.
    scale = min(1.0, max_side / max(size)) if max_side else 1.0
    assert 0 <= size[0] * scale - w < 2
    assert 0 <= size[1] * scale - h < 2


def test_working_size_never_below_two() -> None:
    assert working_size(4000, 3, 64) == (64, 2)


# -- decode ------------------------------------------------------------------------------------


def test_iter_frames_whole_clip(tiny_clip: Path) -> None:
    frames = list(iter_frames(tiny_clip))
    assert [f.index for f in frames] == list(range(12))
    times = [f.time for f in frames]
    assert times[0] == pytest.approx(0.0)
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert np.diff(times) == pytest.approx(np.full(11, 1 / 24), abs=1e-4)
    for f in frames:
        assert f.image.shape == (64, 96, 3)
        assert f.image.dtype == np.uint8
    # The frames really differ (a pan with a ball), so no frame is decoded twice.
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_iter_frames_is_rgb(tiny_clip: Path) -> None:
    """The sample sky is blue at the top: blue channel above red there (not BGR)."""
    first = next(iter_frames(tiny_clip)).image.astype(np.float32)
    top = first[:8].reshape(-1, 3).mean(axis=0)
    assert top[2] > top[0]


def test_iter_frames_is_a_lazy_generator(tiny_clip: Path) -> None:
    frames = iter_frames(tiny_clip)
    first = next(frames)
    assert first.index == 0
    frames.close()  # closing early releases the container without error


def test_iter_frames_index_range(tiny_clip: Path) -> None:
    everything = list(iter_frames(tiny_clip))
    frames = list(iter_frames(tiny_clip, start_index=3, stop_index=9))
    assert [f.index for f in frames] == [3, 4, 5, 6, 7, 8]
    assert frames[0].time == pytest.approx(3 / 24, abs=1e-4)
    np.testing.assert_array_equal(frames[0].image, everything[3].image)


def test_iter_frames_open_end(tiny_clip: Path) -> None:
    assert [f.index for f in iter_frames(tiny_clip, start_index=10)] == [10, 11]


def test_iter_frames_range_past_the_end_is_empty(tiny_clip: Path) -> None:
    assert list(iter_frames(tiny_clip, start_index=20)) == []


def test_iter_frames_time_range(tiny_clip: Path) -> None:
    frames = list(iter_frames(tiny_clip, start_time=3 / 24, end_time=6 / 24))
    assert [f.index for f in frames] == [3, 4, 5]  # end exclusive


def test_iter_frames_time_and_index_combine(tiny_clip: Path) -> None:
    frames = list(iter_frames(tiny_clip, start_index=4, stop_index=10, end_time=7 / 24))
    assert [f.index for f in frames] == [4, 5, 6]


def test_iter_frames_resizes(tiny_clip: Path) -> None:
    frames = list(iter_frames(tiny_clip, size=(48, 32), stop_index=2))
    assert [f.image.shape for f in frames] == [(32, 48, 3)] * 2
    assert all(f.image.dtype == np.uint8 for f in frames)


def test_iter_frames_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        next(iter_frames(tmp_path / "nope.mp4"))


def test_iter_frames_text_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(DecodeError):
        list(iter_frames(fake))


# -- encode ------------------------------------------------------------------------------------


def test_round_trip_keeps_timing_and_audio(tiny_clip: Path, tmp_path: Path) -> None:
    """Frames 3:9 re-encoded as the pipeline does: timeline from 0, audio of that range."""
    frames = list(iter_frames(tiny_clip, start_index=3, stop_index=9))
    out = tmp_path / "part.mp4"
    info = probe(tiny_clip)
    with VideoWriter(
        out,
        width=96,
        height=64,
        rate=info.rate,
        time_base=info.time_base,
        audio_source=tiny_clip,
        start_time=frames[0].time,
    ) as writer:
        for frame in frames:
            writer.write(frame.image, frame.time)
        writer.end_time = frames[-1].time + 1.0 / float(info.rate)
    assert writer.frames_written == 6
    assert writer.dropped_audio == []
    assert listing(tmp_path) == ["part.mp4"]  # the temporary file was renamed into place

    got = probe(out)
    assert (got.width, got.height) == (96, 64)
    assert got.rate == 24
    assert got.audio_streams == 1
    times = video_times(out)
    assert len(times) == 6
    assert times == pytest.approx([i / 24 for i in range(6)], abs=1e-3)
    assert audio_span(out) == pytest.approx(6 / 24, abs=0.05)

    # The content survives the re-encode (crf 18 on a smooth image).
    decoded = [f.image.astype(np.int16) for f in iter_frames(out)]
    diff = np.abs(decoded[0] - frames[0].image.astype(np.int16)).mean()
    assert diff < 8


def test_whole_clip_audio_span(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.mkv"
    frames = list(iter_frames(tiny_clip))
    with VideoWriter(
        out, width=96, height=64, rate=RATE, time_base=TIME_BASE, audio_source=tiny_clip
    ) as writer:
        for frame in frames:
            writer.write(frame.image, frame.time)
        writer.end_time = frames[-1].time + 1 / 24
    assert len(video_times(out)) == 12
    assert audio_span(out) == pytest.approx(0.5, abs=0.05)


def test_writer_without_audio(tmp_path: Path) -> None:
    out = tmp_path / "silent.mov"
    with VideoWriter(out, width=32, height=32, rate=RATE, time_base=TIME_BASE) as writer:
        for i in range(3):
            writer.write(solid(32, 32, 40 * i), i / 24)
    info = probe(out)
    assert info.audio_streams == 0
    assert len(video_times(out)) == 3


def test_output_permissions_follow_umask(tmp_path: Path) -> None:
    """The finished video is an ordinary file, not a private temp file (mode 0600)."""
    out = tmp_path / "shared.mp4"
    old = os.umask(0o022)
    try:
        with VideoWriter(out, width=32, height=32, rate=RATE, time_base=TIME_BASE) as writer:
            writer.write(solid(32, 32), 0.0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_failed_block_leaves_nothing(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(
        out, width=96, height=64, rate=RATE, time_base=TIME_BASE, audio_source=tiny_clip
    ) as writer:
        writer.write(solid(), 0.0)
        writer.write(solid(), 1 / 24)
        assert any(name.endswith(".partial.mp4") for name in listing(tmp_path))
        raise RuntimeError("boom")
    assert listing(tmp_path) == []


def test_interrupt_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), VideoWriter(
        out, width=32, height=32, rate=RATE, time_base=TIME_BASE
    ) as writer:
        writer.write(solid(32, 32), 0.0)
        raise KeyboardInterrupt
    assert listing(tmp_path) == []


def test_failed_block_keeps_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous render")
    with pytest.raises(RuntimeError), VideoWriter(
        out, width=32, height=32, rate=RATE, time_base=TIME_BASE
    ) as writer:
        writer.write(solid(32, 32), 0.0)
        raise RuntimeError
    assert out.read_bytes() == b"previous render"
    assert listing(tmp_path) == ["out.mp4"]


def test_zero_frames_raises_and_leaves_nothing(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="no frames"), VideoWriter(
        out, width=96, height=64, rate=RATE, time_base=TIME_BASE, audio_source=tiny_clip
    ):
        pass
    assert listing(tmp_path) == []


@pytest.mark.parametrize(("width", "height"), [(95, 64), (96, 63), (33, 33)])
def test_odd_size_raises(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "o.mp4", width=width, height=height, rate=RATE, time_base=TIME_BASE)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((64, 96), np.uint8),  # no channel axis
        np.zeros((96, 64, 3), np.uint8),  # transposed
        np.zeros((64, 96, 4), np.uint8),  # RGBA
        np.zeros((64, 96, 3), np.float32),  # not uint8
    ],
    ids=["gray", "transposed", "rgba", "float"],
)
def test_wrong_frame_raises(tmp_path: Path, image: np.ndarray) -> None:
    out = tmp_path / "o.mp4"
    with pytest.raises(ValueError, match=r"expected a \(64, 96, 3\) uint8 frame"), VideoWriter(
        out, width=96, height=64, rate=RATE, time_base=TIME_BASE
    ) as writer:
        writer.write(image, 0.0)
    assert listing(tmp_path) == []


def test_write_outside_block_raises(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "o.mp4", width=32, height=32, rate=RATE, time_base=TIME_BASE)
    with pytest.raises(RuntimeError, match="outside its with block"):
        writer.write(solid(32, 32), 0.0)


def test_duplicate_timestamps_are_nudged(tmp_path: Path) -> None:
    out = tmp_path / "dup.mp4"
    with VideoWriter(out, width=32, height=32, rate=RATE, time_base=TIME_BASE) as writer:
        for _ in range(3):
            writer.write(solid(32, 32), 0.0)
    times = video_times(out)
    assert len(times) == 3
    assert times == sorted(set(times))


# -- check_output_path -------------------------------------------------------------------------


def test_check_output_path_ok(tmp_path: Path) -> None:
    check_output_path(tmp_path / "new.mp4", overwrite=False)
    for suffix in (".mov", ".mkv", ".m4v", ".MP4"):
        check_output_path(tmp_path / f"new{suffix}", overwrite=False)


def test_check_output_path_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="output directory does not exist"):
        check_output_path(tmp_path / "nowhere" / "out.mp4", overwrite=True)


def test_check_output_path_exists(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"x")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_path(out, overwrite=False)
    check_output_path(out, overwrite=True)
    assert out.read_bytes() == b"x"


def test_check_output_path_same_as_input(tiny_clip: Path) -> None:
    with pytest.raises(OutputError, match="same file as an input"):
        check_output_path(tiny_clip, overwrite=True, inputs=(tiny_clip,))


def test_check_output_path_same_as_input_by_another_name(tiny_clip: Path) -> None:
    other = tiny_clip.parent / ".." / tiny_clip.parent.name / tiny_clip.name
    with pytest.raises(OutputError, match="same file as an input"):
        check_output_path(other, overwrite=True, inputs=(tiny_clip,))


@pytest.mark.parametrize("name", ["out.gif", "out.avi", "out"])
def test_check_output_path_bad_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError, match="unsupported output type"):
        check_output_path(tmp_path / name, overwrite=True)


def test_check_output_path_is_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        check_output_path(folder, overwrite=True)


def test_truncated_file_with_intact_header_is_reported(tmp_path: Path) -> None:
    import av.logging

    from vidstyle.samples import make_clip

    clip = make_clip(tmp_path / "clip.mp4", width=96, height=64, frames=24)

    # Re-encode with the index at the front (as vidstyle writes), then cut the data short:
    # FFmpeg stops quietly at the cut, so only its log tells a truncated file from a short one.
    info = probe(clip)
    frames = list(iter_frames(clip))
    front = tmp_path / "front.mp4"
    with VideoWriter(front, width=info.width, height=info.height, rate=info.rate,
                     time_base=info.time_base, start_time=frames[0].time) as writer:
        for f in frames:
            writer.write(f.image, f.time)
    data = front.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert probe(cut).frame_count == len(frames), "the header is intact"
    level = av.logging.get_level()
    with pytest.raises(DecodeError, match=r"after frame \d+: the file is truncated"):
        for _ in iter_frames(cut):
            pass
    assert av.logging.get_level() == level, "FFmpeg's log level is restored"
    assert sum(1 for _ in iter_frames(front)) == len(frames)


def _tone_clip(path: Path, tone: np.ndarray, *, encoder: str, sample_format: str, chunk: int,
               size: tuple[int, int], frames: int, step: int) -> Path:
    """``frames`` frames of 24 fps ``size`` video, each ``step`` brighter than the last, with
    ``tone`` (mono, 48 kHz) encoded by ``encoder`` from ``chunk``-sample frames."""
    rate = 48000
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream(encoder, rate=rate, layout="mono")
        for start in range(0, len(tone), chunk):
            piece = av.AudioFrame.from_ndarray(tone[None, start:start + chunk],
                                               format=sample_format, layout="mono")
            piece.sample_rate, piece.pts = rate, start
            for packet in sound.encode(piece):
                container.mux(packet)
        for packet in sound.encode(None):
            container.mux(packet)
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), step * t, np.uint8),
                                               "rgb24")
            frame.pts = t
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def _pcm_mov(path: Path) -> Path:
    """Half a second of 96x64 video with a 16-bit PCM tone, in MOV (as cameras write)."""
    tone = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    return _tone_clip(path, tone, encoder="pcm_s16le", sample_format="s16", chunk=1024,
                      size=(96, 64), frames=12, step=20)


@pytest.mark.parametrize(("suffix", "kept"), [(".mov", True), (".mkv", True), (".mp4", False)])
def test_pcm_audio_is_kept_where_the_container_holds_it(
    tmp_path: Path, suffix: str, kept: bool
) -> None:
    source = _pcm_mov(tmp_path / "camera.mov")
    frames = list(iter_frames(source))
    info = probe(source)
    out = tmp_path / f"out{suffix}"
    with VideoWriter(out, width=96, height=64, rate=info.rate, time_base=info.time_base,
                     audio_source=source) as writer:
        for frame in frames:
            writer.write(frame.image, frame.time)
    assert probe(out).audio_streams == (1 if kept else 0)
    assert bool(writer.dropped_audio) != kept
    if kept:
        with av.open(str(out)) as container:
            assert container.streams.audio[0].codec_context.name == "pcm_s16le"


def _samples(path: Path) -> tuple[float, np.ndarray]:
    """The first audio frame's time and the whole first audio stream, mono float."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    return float(frames[0].time or 0.0), np.concatenate([f.to_ndarray()[0] for f in frames])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_the_audio_of_a_range_starts_on_its_first_frame(
    tmp_path: Path, styles: list[Path], suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidstyle.cli import main
    from vidstyle.samples import AUDIO_RATE, make_clip

    clip = make_clip(tmp_path / "tone.mp4", width=64, height=48, frames=48, fps=24)
    out = tmp_path / f"range{suffix}"
    code = main(["run", str(clip), "--style", str(styles[0]), "-o", str(out), "-q",
                 "--frames", "25:45", "--first-iterations", "1", "--iterations", "1"])
    assert code == 0, capsys.readouterr().err
    video = video_times(out)
    began, sound = _samples(out)
    assert abs(began - video[0]) < 1 / 24  # it starts with the first frame
    assert len(sound) >= 20 / 24 * AUDIO_RATE  # and lasts as long: no gap
    origin, source = _samples(clip)
    at = round((25 / 24 - origin) * AUDIO_RATE)
    window = slice(2048, 2048 + 8192)
    lags = range(-256, 257)
    best = max(lags, key=lambda lag: float(np.dot(sound[window],
                                                  source[at + lag + 2048:at + lag + 2048 + 8192])))
    assert best == 0, f"the audio is {best} samples off the picture"
    # The sound from its first sample on is the source's (AAC's own error aside): no click,
    # no fade-in. A Matroska cut starts without pre-roll: its first 15 ms carry the encoder's
    # start-up error, so it is held to the whole-packet bound only.
    error = np.abs(sound[:1024] - source[at:at + 1024]).max()
    loud = np.abs(source[at:at + 1024]).max()
    assert error < (0.1 if suffix == ".mp4" else 0.8) * loud, (error, loud)
    assert np.abs(sound[2048:16384] - source[at + 2048:at + 16384]).max() < 0.05 * loud


def _mp3_clip(path: Path) -> Path:
    """One second of 64x48 video with an MP3 tone (FFmpeg decodes it as ``mp3float``)."""
    tone = (np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000) * 0.3).astype(np.float32)
    return _tone_clip(path, tone, encoder="libmp3lame", sample_format="fltp", chunk=1152,
                      size=(64, 48), frames=24, step=10)


@pytest.mark.parametrize("first", [0, 5], ids=["whole", "range"])
def test_mp3_audio_is_kept_in_mp4(tmp_path: Path, first: int) -> None:
    source = _mp3_clip(tmp_path / "mp3.mp4")
    frames = list(iter_frames(source, start_index=first))
    info = probe(source)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=64, height=48, rate=info.rate, time_base=info.time_base,
                     audio_source=source, start_time=frames[0].time) as writer:
        for frame in frames:
            writer.write(frame.image, frame.time)
    assert writer.dropped_audio == []
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.codec.canonical_name == "mp3"
