"""Video input and output: streaming decode and atomic encode with audio remux."""

from vidstyle.io.decode import Frame, VideoInfo, iter_frames, probe, working_size
from vidstyle.io.encode import VideoWriter, check_output_path

__all__ = [
    "Frame",
    "VideoInfo",
    "VideoWriter",
    "check_output_path",
    "iter_frames",
    "probe",
    "working_size",
]
