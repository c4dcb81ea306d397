"""Video input and output: streaming decode and atomic encode with audio remux, in the
source's colour (:mod:`vidstyle.io.colour`; HDR: :mod:`vidstyle.io.hdr`)."""

from vidstyle.io.decode import Frame, VideoInfo, iter_frames, probe, working_size
from vidstyle.io.encode import VideoWriter, check_codec, check_output_path

__all__ = [
    "Frame",
    "VideoInfo",
    "VideoWriter",
    "check_codec",
    "check_output_path",
    "iter_frames",
    "probe",
    "working_size",
]
