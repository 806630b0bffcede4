import numpy as np
import pytest

from bm_gym.utils.video import Mp4Writer, read_video, video_info


def moving_bar(k: int, size=(61, 81)) -> np.ndarray:
    frame = np.zeros((*size, 3), dtype=np.uint8)
    frame[:, 3 * k : 3 * k + 10] = (255, 200, 40)
    return frame


def test_mp4_round_trip_keeps_frame_count_rate_and_content(tmp_path):
    path = tmp_path / "clip.mp4"
    with Mp4Writer(path, fps=20) as video:
        for k in range(20):
            video.append(moving_bar(k))
    assert video.seconds == 1.0
    info = video_info(path)
    assert info["fps"] == 20 and info["size"] == (82, 62)  # odd sizes padded to even, not rescaled
    frames = list(read_video(path))
    assert len(frames) == 20
    bright = frames[10][:61, :81, 0].mean(axis=0) > 128
    assert bright[30:40].all() and not bright[:25].any(), "the bar is where frame 10 put it"
    assert not list(tmp_path.glob("*.part.mp4"))


def test_video_keeps_what_was_recorded_when_the_run_fails(tmp_path):
    path = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError), Mp4Writer(path, fps=10) as video:
        for k in range(5):
            video.append(moving_bar(k))
        raise RuntimeError("simulated crash")
    assert len(list(read_video(path))) == 5


def test_bad_frames_and_rates_are_refused(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        Mp4Writer(tmp_path / "a.mp4", fps=0)
    video = Mp4Writer(tmp_path / "b.mp4", fps=10)
    with pytest.raises(ValueError, match="uint8"):
        video.append(np.zeros((4, 4, 3), dtype=np.float32))
    video.append(moving_bar(0))
    with pytest.raises(ValueError, match="differs"):
        video.append(moving_bar(0, size=(60, 80)))
    assert video.close() == tmp_path / "b.mp4"
    assert Mp4Writer(tmp_path / "none.mp4", fps=10).close() is None and not (tmp_path / "none.mp4").exists()
