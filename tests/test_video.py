"""Video analysis on videos built here from real photos and FER2013 faces, so the truth is known."""

import csv
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import emolens
from emolens import Emotion, InvalidVideoError
from emolens.cli import main
from emolens.video import Tracker, VideoAnalysis, analyze_video

from .conftest import fer_samples

FPS = 15


def _write(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def pan_video(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-second pan and zoom across the 6-person group photo, 640x336."""
    photo = cv2.imread(str(photos / "group" / "multiface.jpg"))
    h, w = photo.shape[:2]
    frames = []
    for i in range(45):
        t = i / 44
        scale = 1.0 - 0.1 * t  # zoom in by 10 %
        cw, ch = int(w * scale), int(h * scale)
        x0, y0 = int((w - cw) * t), int((h - ch) * 0.5)  # pan left to right
        frames.append(cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (640, 336), interpolation=cv2.INTER_AREA))
    return _write(tmp_path_factory.mktemp("video") / "pan.mp4", frames)


def test_tracks_stay_stable_through_a_pan(pan_video: Path) -> None:
    results = list(analyze_video(pan_video, detector="yunet"))
    assert len(results) == 45
    assert [r.index for r in results] == list(range(45))
    assert results[1].time == pytest.approx(1 / FPS, abs=1e-3)
    counts = [len(r.faces) for r in results]
    assert min(counts) >= 5 and np.median(counts) == 6
    ids = {f.track_id for r in results for f in r.faces}
    assert len(ids) <= 7, f"faces changed identity during the pan: {len(ids)} track ids for 6 people"
    # Each track moves smoothly: its box never jumps across the frame.
    last: dict[int, tuple[float, float]] = {}
    for r in results:
        for f in r.faces:
            if f.track_id in last:
                (x, y), (px, py) = f.box.center, last[f.track_id]
                assert abs(x - px) < 40 and abs(y - py) < 40
            last[f.track_id] = f.box.center


def test_slideshow_timeline_follows_the_true_labels(fer_val: Path) -> None:
    files, labels = fer_samples(fer_val, per_class=4)
    per_face = 6
    frames = [cv2.resize(cv2.imread(str(f)), (192, 192)) for f in files for _ in range(per_face)]
    results = list(analyze_video(frames, detector=None, smoothing=0.6))
    assert len(results) == len(frames)
    assert all(len(r.faces) == 1 and r.faces[0].track_id == 1 for r in results)  # same place: one track
    followed = 0
    for k, label in enumerate(labels):
        settled = results[k * per_face + per_face // 2 : (k + 1) * per_face]  # after the smoothing lag
        votes = [r.faces[0].emotion.value for r in settled]
        followed += max(set(votes), key=votes.count) == label
    assert followed / len(labels) >= 0.5, f"timeline matched {followed}/{len(labels)} true labels (chance 1/7)"


def test_smoothing_is_an_ema_and_raw_stays_available(fer_val: Path) -> None:
    happy, sad = (cv2.resize(cv2.imread(str(next((fer_val / e).glob("*.jpg")))), (96, 96)) for e in ("happy", "sad"))
    raw = list(analyze_video([happy, sad], detector=None, smoothing=0.0))
    smooth = list(analyze_video([happy, sad], detector=None, smoothing=0.5))
    p_happy, p_sad = (np.array(r.faces[0].raw.probabilities) for r in raw)
    expected = 0.5 * p_happy + 0.5 * p_sad
    assert np.allclose(smooth[1].faces[0].probabilities, expected / expected.sum(), atol=1e-6)
    assert np.allclose(smooth[1].faces[0].raw.probabilities, raw[1].faces[0].raw.probabilities)
    assert np.allclose(raw[1].faces[0].probabilities, p_sad)  # smoothing=0 is off


def test_tracker_keeps_ids_through_short_gaps() -> None:
    face = emolens.Face(emolens.Box(100, 100, 50, 50), 1.0, (1 / 7,) * 7)
    moved = emolens.Face(emolens.Box(110, 104, 50, 50), 1.0, (1 / 7,) * 7)
    tracker = Tracker(max_missed=3)
    first = tracker.update((face,))[0].track_id
    for _ in range(3):
        assert tracker.update(()) == ()
    assert tracker.update((moved,))[0].track_id == first
    for _ in range(4):
        tracker.update(())
    assert tracker.update((face,))[0].track_id != first  # forgotten after max_missed frames


def test_every_and_max_frames(pan_video: Path) -> None:
    results = list(analyze_video(pan_video, detector="yunet", every=5, max_frames=4))
    assert [r.index for r in results] == [0, 5, 10, 15]


def test_detector_options_reach_the_video_detector(pan_video: Path) -> None:
    found = [len(r.faces) for r in analyze_video(pan_video, detector="yunet", max_frames=3)]
    blind = [
        len(r.faces)
        for r in analyze_video(pan_video, detector="yunet", max_frames=3, detector_options={"max_side": 32})
    ]
    assert min(found) > 0 and blind == [0, 0, 0]


def test_precision_and_max_pixels_reach_the_video_analyzer(pan_video: Path) -> None:
    """analyze_video takes precision and max_pixels as `emolens video` does (they were a TypeError), and an
    analyzer given with other settings is an error instead of silently ignoring them."""
    int8 = list(analyze_video(pan_video, detector="yunet", precision="int8", max_frames=2))
    mine = list(analyze_video(pan_video, analyzer=emolens.Analyzer("yunet", precision="int8"), max_frames=2))
    auto = list(analyze_video(pan_video, detector="yunet", max_frames=2))
    probabilities = [[f.probabilities for f in r.faces] for r in int8]
    assert int8[0].faces and probabilities == [[f.probabilities for f in r.faces] for r in mine]
    assert probabilities != [[f.probabilities for f in r.faces] for r in auto]  # the int8 graph answered
    with pytest.raises(emolens.ImageTooLargeError, match="its frames are 640x336"):
        analyze_video(pan_video, max_pixels=640 * 336 - 1)
    with pytest.raises(emolens.InvalidOptionError, match="max_pixels"):
        analyze_video(pan_video, max_pixels=0)
    with pytest.raises(emolens.InvalidOptionError, match="pass either analyzer or model, precision"):
        analyze_video(pan_video, analyzer=emolens.Analyzer("yunet"), model="fast", precision="int8")


def test_the_annotated_writer_keeps_frames_of_another_size(pan_video: Path, tmp_path: Path) -> None:
    """A frame of another size than the writer's is scaled to it (OpenCV's writer dropped it without a word)."""
    from emolens.video import AnnotatedVideoWriter

    frames = list(analyze_video(pan_video, detector="yunet", model="fast", max_frames=3))
    out = tmp_path / "small.mp4"
    with AnnotatedVideoWriter(out, FPS, (320, 168)) as writer:
        for frame in frames:
            writer.write(frame)
    written = cv2.VideoCapture(str(out))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert (written.get(cv2.CAP_PROP_FRAME_WIDTH), written.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 168)
    written.release()


def test_bad_sources() -> None:
    with pytest.raises(InvalidVideoError, match="not found"):
        list(analyze_video("/no/such/video.mp4"))
    with pytest.raises(InvalidVideoError, match="unsupported video source"):
        list(analyze_video(3.5))


def test_frames_over_max_pixels_are_refused_before_one_is_decoded(
    pan_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The frame size a video declares is checked at open (a 1.6 MB video of 16000x16000 frames cost 2 GB when its
    first frame was decoded): over the analyzer's max_pixels is an ImageTooLargeError at the call, one CLI line."""
    pixels = 640 * 336
    tight = emolens.Analyzer("yunet", "fast", max_pixels=pixels - 1)
    with pytest.raises(emolens.ImageTooLargeError, match="its frames are 640x336 pixels"):
        analyze_video(pan_video, analyzer=tight)
    roomy = emolens.Analyzer("yunet", "fast", max_pixels=pixels)
    assert [r.width for r in analyze_video(pan_video, analyzer=roomy, max_frames=1)] == [640]
    big = _write(pan_video.parent / "big.avi", [np.full((6400, 6400, 3), 90, np.uint8)])  # 41 megapixels
    with pytest.raises(emolens.ImageTooLargeError, match="over the limit of 40 megapixels"):
        analyze_video(big, detector="yunet", model="fast")
    assert main(["video", str(big), "--model", "fast"]) == 2
    line = capsys.readouterr().err
    assert "its frames are 6400x6400 pixels" in line and "pass a larger --max-megapixels" in line
    assert main(["video", str(pan_video), "--model", "fast", "--max-megapixels", "0.2"]) == 2
    assert "over the limit of 0.2 megapixels" in capsys.readouterr().err


def test_cli_writes_video_csv_and_plot(pan_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, table, plot = tmp_path / "annotated.mp4", tmp_path / "timeline.csv", tmp_path / "timeline.png"
    code = main(
        ["video", str(pan_video), "--out", str(out), "--csv", str(table), "--plot", str(plot), "--detector", "yunet"]
    )
    assert code == 0
    assert "track 1:" in capsys.readouterr().out
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 45
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 336)
    capture.release()
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert len(rows) >= 45 * 5
    assert {"frame", "time", "track", "emotion", "happy", "raw_happy"} <= set(rows[0])
    assert cv2.imread(str(plot)) is not None


def test_cli_ctrl_c_still_writes_what_was_collected(pan_video: Path, tmp_path: Path, monkeypatch) -> None:
    import emolens.video as video

    real = video.analyze_video

    def interrupted(*args: object, **kwargs: object):
        for i, frame in enumerate(real(*args, **kwargs)):  # type: ignore[arg-type]
            if i == 10:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(video, "analyze_video", interrupted)
    table = tmp_path / "partial.csv"
    assert main(["video", str(pan_video), "--csv", str(table), "--quiet", "--detector", "yunet"]) == 130
    frames = {row["frame"] for row in csv.DictReader(table.read_text().splitlines())}
    assert len(frames) == 10


def test_missing_webcam_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["video", "7"]) == 2
    assert "cannot open camera 7" in capsys.readouterr().err


def test_summary_and_dataframe(pan_video: Path) -> None:
    analysis = VideoAnalysis(analyze_video(pan_video, detector="yunet", max_frames=10))
    summary = analysis.summary()
    assert len(summary) >= 5
    for s in summary.values():
        assert sum(s.shares.values()) == pytest.approx(1.0)
        assert s.dominant in analysis.labels and Emotion(s.dominant) in Emotion  # a canonical label
    pytest.importorskip("pandas")
    frame = analysis.to_dataframe()
    assert len(frame) == sum(s.frames for s in summary.values())


@pytest.mark.parametrize(("every", "max_frames"), [(1, None), (3, 7)])
def test_pipelined_video_gives_the_same_frames_in_the_same_order(pan_video: Path, every: int, max_frames: int) -> None:
    """Detection of the next frames in a second thread changes nothing but the wall time."""

    def frames(pipelined: bool) -> list[tuple[int, list[tuple[int | None, object, tuple[float, ...]]]]]:
        stream = analyze_video(pan_video, detector="yunet", every=every, max_frames=max_frames, pipelined=pipelined)
        return [(r.index, [(f.track_id, f.box, f.probabilities) for f in r.faces]) for r in stream]

    sequential = frames(False)
    assert sequential and sequential == frames(True)


def test_pipelined_video_stops_cleanly_and_raises_the_sources_errors(pan_video: Path) -> None:
    import threading

    before = threading.active_count()
    stream = analyze_video(pan_video, detector="yunet", pipelined=True)
    next(stream)
    stream.close()  # the consumer stops early: the detecting thread ends too
    assert threading.active_count() == before

    def broken() -> Iterator[np.ndarray]:
        yield np.zeros((64, 64, 3), np.uint8)
        raise emolens.InvalidVideoError("the camera went away")

    with pytest.raises(emolens.InvalidVideoError, match="went away"):
        list(analyze_video(broken(), detector="yunet", pipelined=True))


def test_cli_pipelined_writes_the_same_timeline(pan_video: Path, tmp_path: Path) -> None:
    plain, piped = tmp_path / "plain.csv", tmp_path / "piped.csv"
    common = [str(pan_video), "--detector", "yunet", "--max-frames", "12", "--quiet"]
    assert main(["video", *common, "--csv", str(plain)]) == 0
    assert main(["video", *common, "--csv", str(piped), "--pipelined"]) == 0
    assert plain.read_text() == piped.read_text() and plain.read_text().count("\n") > 12
