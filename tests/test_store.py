from __future__ import annotations

from pathlib import Path

import numpy as np

from vidstyle.io.store import FrameStore, StoredFrame


def _image(value: int) -> np.ndarray:
    image = np.full((6, 8, 3), value, np.uint8)
    image[0, 0] = (255, 0, 0)  # colour order must survive the round trip
    return image


def test_frames_round_trip_losslessly(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "out.mp4", key="k")
    store.start()
    assert not store.folder.exists(), "nothing is written before the first frame"
    store.add(3, 0.125, _image(10))
    store.add(4, 0.1667, _image(20))
    assert store.folder.name == ".out.mp4.vidstyle"
    np.testing.assert_array_equal(store.load(3), _image(10))
    again = FrameStore(tmp_path / "out.mp4", key="k")
    assert again.exists() and again.stored_key() == "k"
    assert again.read() == [StoredFrame(3, 0.125), StoredFrame(4, 0.1667)]


def test_a_cut_journal_or_missing_image_ends_the_list(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "o.mp4", key="k")
    store.start()
    for i in range(3):
        store.add(i, i / 24, _image(i))
    journal = store.folder / "frames.jsonl"
    journal.write_text(journal.read_text() + '{"index": 3, "ti')  # power cut mid-line
    assert [f.index for f in FrameStore(tmp_path / "o.mp4", key="k").read()] == [0, 1, 2]
    (store.folder / "000001.png").unlink()
    reread = FrameStore(tmp_path / "o.mp4", key="k")
    assert [f.index for f in reread.read()] == [0]
    reread.resume()  # the journal is rewritten to what is usable
    assert [f.index for f in FrameStore(tmp_path / "o.mp4", key="k").read()] == [0]


def test_start_discards_and_remove_cleans(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "o.mp4", key="a")
    store.start()
    store.add(0, 0.0, _image(1))
    fresh = FrameStore(tmp_path / "o.mp4", key="b")
    fresh.start()
    assert not fresh.exists() and fresh.frames == []
    fresh.add(0, 0.0, _image(2))
    assert fresh.stored_key() == "b"
    fresh.remove()
    assert list(tmp_path.iterdir()) == []


def test_later_passes_add_versions_and_resume_where_the_pass_stopped(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "o.mp4", key="k")
    store.start()
    for i in range(3):
        store.add(i, i / 24, _image(i))
        store.keep_input(i, _image(100 + i))
    store.add(2, 2 / 24, _image(52), pass_=2)  # pass 2 runs backward: 2, then 1
    store.add(1, 1 / 24, _image(51), pass_=2)
    assert store.work_done == 5 and store.done_in_pass(2) == {1, 2}
    np.testing.assert_array_equal(store.load(1), _image(51))  # the latest pass
    np.testing.assert_array_equal(store.load(0), _image(0))
    np.testing.assert_array_equal(store.load_input(2), _image(102))
    # The first pass's file is kept: a pass cut short leaves its inputs intact.
    assert (store.folder / "000001.png").is_file()

    again = FrameStore(tmp_path / "o.mp4", key="k")
    assert [f.index for f in again.read()] == [0, 1, 2]
    assert again.done_in_pass(2) == {1, 2} and again.latest_pass(1) == 2
    (store.folder / "000001.p2.png").unlink()  # a crash before this frame was durable
    cut = FrameStore(tmp_path / "o.mp4", key="k")
    cut.read()
    assert cut.done_in_pass(2) == {2} and cut.work_done == 4
    cut.resume()
    np.testing.assert_array_equal(cut.load(1), _image(1))
    reread = FrameStore(tmp_path / "o.mp4", key="k")
    reread.read()
    assert reread.done_in_pass(2) == {2} and [f.index for f in reread.frames] == [0, 1, 2]
