"""``emolens batch`` / ``emolens.batch()``: inputs, rows, formats, resume, and the local and Ray engines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from tools.hostile import peak_memory
from tools.server import free_port

import emolens
from emolens import Analyzer, InvalidOptionError, expand_inputs

pyarrow = pytest.importorskip("pyarrow", reason="needs emolens[batch]")

FLOAT_COLUMNS = ("time_s", "score", "valence", "arousal")


@pytest.fixture(scope="module")
def collection(photos: Path, fer_val: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos, 210 FER2013 val crops, a short video and four broken files, in one folder tree."""
    root = tmp_path_factory.mktemp("collection")
    shutil.copytree(photos / "dlib-faces", root / "photos", ignore=shutil.ignore_patterns("*.xml"))
    shutil.copy(photos / "group" / "multiface.jpg", root / "photos" / "multiface.jpg")
    for folder in sorted(p for p in fer_val.iterdir() if p.is_dir()):
        target = root / "crops" / folder.name
        target.mkdir(parents=True)
        for file in sorted(folder.glob("*.jpg"))[:30]:
            shutil.copy(file, target / file.name)
    broken = root / "broken"
    broken.mkdir()
    (broken / "text.jpg").write_text("not an image")
    (broken / "empty.png").write_bytes(b"")
    (broken / "truncated.jpg").write_bytes((photos / "group" / "multiface.jpg").read_bytes()[:3000])
    (broken / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    _write_video(photos / "dlib-faces" / "Tom_Cruise_avp_2014_4.jpg", root / "clip.avi", frames=12)
    return root


def _write_video(photo: Path, target: Path, *, frames: int) -> None:
    image = cv2.resize(cv2.imread(str(photo)), (320, 452))
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 452))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(image)
    writer.release()


def _inputs(collection: Path) -> int:
    return len(expand_inputs([collection]))


def _read(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as parquet

    rows: list[dict[str, Any]] = parquet.read_table(path).to_pylist()
    return rows


def _read_any(path: Path) -> list[dict[str, Any]]:
    """The rows of a .parquet, .csv or .jsonl table, as strict UTF-8 readers see them."""
    if path.suffix == ".parquet":
        return _read(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        import csv

        return list(csv.DictReader(text.splitlines()))
    return [json.loads(line) for line in text.splitlines()]


def _same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        for key, value in left.items():
            if isinstance(value, float) and not key.startswith("prob_") and key not in FLOAT_COLUMNS:
                raise AssertionError(f"unexpected float column {key}")
            if isinstance(value, float):
                assert right[key] == pytest.approx(value, abs=1e-6), (left["file"], key)
            else:
                assert right[key] == value, (left["file"], key)


@pytest.fixture(scope="module")
def local_run(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, emolens.BatchReport]:
    out = tmp_path_factory.mktemp("local") / "faces.parquet"
    report = emolens.batch(collection, out, workers=2, every=3, progress=False)
    return out, report


# --- rows --------------------------------------------------------------------------------------------


def test_every_input_has_rows_and_bad_files_are_error_rows(collection: Path, local_run: Any) -> None:
    out, report = local_run
    rows = _read(out)
    files = {row["file"] for row in rows}
    assert files == {item.path for item in expand_inputs([collection])}  # nothing lost
    assert report.inputs == report.analysed == len(files) == _inputs(collection)
    errors = {Path(row["file"]).name: row for row in rows if row["error_type"] is not None}
    assert set(errors) == {"text.jpg", "empty.png", "truncated.jpg", "video.mp4"}
    assert errors["text.jpg"]["error_type"] == "InvalidImageError"
    assert errors["video.mp4"]["error_type"] == "InvalidVideoError"
    assert all(row["error_message"] for row in errors.values())
    assert report.errors == 4
    # Error rows carry no face columns; face rows carry no error.
    for row in rows:
        if row["error_type"] is not None:
            assert row["face"] is None and row["label"] is None
        else:
            assert row["label"] in emolens.labels.FER2013.labels


def test_rows_match_in_process_analysis(collection: Path, local_run: Any) -> None:
    out, _ = local_run
    rows = _read(out)
    analyzer = Analyzer()
    photo = collection / "photos" / "multiface.jpg"
    expected = analyzer.analyze(photo)
    mine = [row for row in rows if row["file"] == str(photo)]
    assert [row["face"] for row in mine] == list(range(6))
    assert [row["label"] for row in mine] == [face.label for face in expected.faces]
    assert [(row["x"], row["y"], row["width"], row["height"]) for row in mine] == [
        (f.box.x, f.box.y, f.box.width, f.box.height) for f in expected.faces
    ]
    for row, face in zip(mine, expected.faces, strict=True):
        for label, probability in face.scores.items():
            assert row[f"prob_{label}"] == pytest.approx(probability, abs=1e-5)
    # A FER2013 crop: the whole 48x48 image is one face (YuNet finds it or the fallback classifies it).
    crop = next(row for row in rows if "/crops/happy/" in row["file"])
    assert crop["face"] == 0 and crop["label"] is not None


def test_video_rows_every_third_frame(local_run: Any) -> None:
    out, _ = local_run
    frames = [row for row in _read(out) if row["file"].endswith("clip.avi")]
    assert [row["frame"] for row in frames] == [0, 3, 6, 9]
    assert [row["time_s"] for row in frames] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert all(row["face"] == 0 and row["label"] for row in frames)


def test_video_frames_over_max_pixels_are_one_error_row(collection: Path, tmp_path: Path) -> None:
    """A video whose frames exceed max_pixels is refused before a frame is decoded: one error row, nothing else."""
    clip = next(item.path for item in expand_inputs([collection]) if item.path.endswith("clip.avi"))
    out = tmp_path / "rows.parquet"
    emolens.batch([clip], out, max_pixels=100, progress=False)
    rows = _read(out)
    assert [(row["error_type"], row["frame"]) for row in rows] == [("ImageTooLargeError", None)]
    assert "its frames are" in rows[0]["error_message"]
    assert "raise max_pixels (--max-megapixels of emolens batch)" in rows[0]["error_message"]


def test_a_chunk_of_huge_images_costs_what_one_does(tmp_path: Path) -> None:
    """A worker decodes a chunk's images one at a time and keeps only their crops for the forward pass: 16 flat
    6324x6324 WebPs (1.9 GB decoded) stay within the 1 GB one analysis may add."""
    flat = bytes(cv2.imencode(".webp", np.full((6324, 6324, 3), 120, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])[1])
    for i in range(16):
        (tmp_path / f"{i:02}.webp").write_bytes(flat)
    emolens.batch([tmp_path / "00.webp"], tmp_path / "warm.csv", workers=1, model="fast", progress=False)
    with peak_memory() as memory:
        report = emolens.batch([tmp_path], tmp_path / "rows.csv", workers=1, model="fast", progress=False)
    assert report.analysed == 16 and report.errors == 0
    assert memory.mb < 1024, f"{memory.mb:.0f} MB for one chunk"


def test_columns_follow_the_model_labels(local_run: Any) -> None:
    out, report = local_run
    import pyarrow.parquet as parquet

    names = parquet.read_schema(out).names
    assert names == list(report.columns)
    assert [n for n in names if n.startswith("prob_")] == [f"prob_{label}" for label in emolens.labels.FER2013.labels]
    assert names[:4] == ["file", "frame", "time_s", "face"] and names[-2:] == ["error_type", "error_message"]


def test_to_dataframe_for_results_and_reports(photos: Path, local_run: Any) -> None:
    pandas = pytest.importorskip("pandas")
    result = emolens.analyze(photos / "group" / "multiface.jpg")
    frame = result.to_dataframe()
    assert len(frame) == 6 and frame["label"].tolist() == [face.label for face in result.faces]
    several = emolens.to_dataframe(emolens.analyze_batch([photos / "group" / "multiface.jpg"] * 2))
    assert len(several) == 12
    out, report = local_run
    assert report.to_dataframe().shape == pandas.read_parquet(out).shape
    assert list(frame.columns) == list(report.columns)
    for stray in ([1, 2], None):  # an AttributeError or TypeError from deep inside before
        with pytest.raises(InvalidOptionError, match="takes AnalysisResult objects"):
            emolens.to_dataframe(stray)


# --- formats, inputs and options ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_csv_and_json_lines_hold_the_same_rows(collection: Path, local_run: Any, tmp_path: Path, suffix: str) -> None:
    out, _ = local_run
    photos = collection / "photos"
    other = tmp_path / f"faces{suffix}"
    report = emolens.batch([photos, collection / "broken"], other, workers=1, progress=False)
    expected = [row for row in _read(out) if "/photos/" in row["file"] or "/broken/" in row["file"]]
    _same_rows(expected, list(report.rows))
    if suffix == ".jsonl":
        lines = [json.loads(line) for line in other.read_text().splitlines()]
    else:
        import csv

        lines = list(csv.DictReader(other.open()))
    assert len(lines) == len(expected)


def test_lists_and_globs(collection: Path, tmp_path: Path) -> None:
    photos = sorted((collection / "photos").glob("*.jpg"))
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\n" + "\n".join(str(p) for p in photos[:2]) + "\nmissing.jpg\n")
    table = tmp_path / "list.csv"
    table.write_text("id,path\n1," + str(photos[2]) + "\n")
    found = expand_inputs([listing, table, str(collection / "photos" / "2008_00*.jpg")])
    paths = [item.path for item in found]
    assert paths[:2] == [str(p) for p in photos[:2]]
    assert paths[2] == str(tmp_path / "missing.jpg")  # kept: it becomes an error row, never a silent gap
    assert str(photos[2]) in paths and len(paths) == len(set(paths))
    report = emolens.batch([listing], tmp_path / "out.csv", workers=1, progress=False)
    missing = [row for row in report.rows if row["file"].endswith("missing.jpg")]
    assert missing and missing[0]["error_type"] == "InvalidImageError"
    with pytest.raises(InvalidOptionError, match="no files match"):
        expand_inputs([str(tmp_path / "nothing-*.jpg")])
    with pytest.raises(InvalidOptionError, match="empty input"):  # not the current folder, as Path("") is
        expand_inputs([""])
    bad_table = tmp_path / "bad.csv"
    bad_table.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidOptionError, match="no column named path"):
        expand_inputs([bad_table])


def test_submission_format(collection: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission.csv"
    emolens.batch([collection / "photos", collection / "broken"], out, format="submission", workers=1, progress=False)
    lines = out.read_text().splitlines()
    assert lines[0] == "file,label"
    entries = dict(line.rsplit(",", 1) for line in lines[1:])
    assert len(entries) == len(expand_inputs([collection / "photos", collection / "broken"]))
    assert entries[str(collection / "photos" / "multiface.jpg")] in emolens.labels.FER2013.labels
    assert entries[str(collection / "broken" / "text.jpg")] == ""


def test_the_command_counts_the_lines_a_submission_has(collection: Path, tmp_path: Path) -> None:
    """It printed the number of face rows ("34 rows in submission.csv" for a file of 7 lines)."""
    out = tmp_path / "submission.csv"
    command = [sys.executable, "-m", "emolens", "batch", str(collection / "photos"), "--out", str(out)]
    run = subprocess.run(
        [*command, "--format", "submission", "--workers", "1", "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith(f"; {len(out.read_text().splitlines()) - 1} rows in {out}")


def test_an_output_is_resumed_only_when_this_kind_of_run_wrote_it(photos: Path, tmp_path: Path) -> None:
    """A foreign table, or the other format, at `out` is refused, untouched, unless overwrite=True (a CSV of
    people was overwritten; a table and a submission on one path doubled rows or replaced each other)."""
    image = photos / "group" / "multiface.jpg"
    foreign = tmp_path / "people.csv"
    foreign.write_text("name,age\nbob,3\n")
    with pytest.raises(InvalidOptionError, match="exists and is not a table"):
        emolens.batch([image], foreign, workers=1, progress=False)
    assert foreign.read_text() == "name,age\nbob,3\n"
    assert len(emolens.batch([image], foreign, workers=1, progress=False, overwrite=True).rows) == 6
    submission, table = tmp_path / "submission.csv", tmp_path / "table.csv"
    emolens.batch([image], submission, format="submission", workers=1, progress=False)
    with pytest.raises(InvalidOptionError, match="exists and is not a table"):
        emolens.batch([image], submission, workers=1, progress=False)
    emolens.batch([image], table, workers=1, progress=False)
    kept = table.read_text()
    with pytest.raises(InvalidOptionError, match="exists and is not a submission"):
        emolens.batch([image], table, format="submission", workers=1, progress=False)
    assert table.read_text() == kept
    # a table of an older emolens, without the columns added since (detector_id, model_id), still resumes
    import csv

    rows = list(csv.DictReader(kept.splitlines()))
    older = tmp_path / "older.csv"
    with older.open("w", newline="") as handle:
        names = [name for name in rows[0] if name not in ("detector_id", "model_id")]
        writer = csv.DictWriter(handle, names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    resumed = emolens.batch([image], older, workers=1, progress=False)
    assert (resumed.skipped, len(resumed.rows)) == (1, 6)
    jsonl = tmp_path / "rows.jsonl"
    for text in ('{"x": 1}\n', "5\n", "[1, 2]\n", "not json\n"):
        jsonl.write_text(text)
        with pytest.raises(InvalidOptionError, match="exists and is not a table"):
            emolens.batch([image], jsonl, workers=1, progress=False)


def test_a_table_of_another_detector_is_refused_not_mixed(photos: Path, tmp_path: Path) -> None:
    """Resuming with another detector added its rows to the same table (found by another detector, so not
    comparable); now it is refused, untouched, naming the detector that wrote the rows, and resumes with it.
    ``"auto"`` is compared as the detector it resolves to; the workers check, so two of them refuse alike."""
    image = photos / "group" / "multiface.jpg"
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(image, extra / "another.jpg")
    out = tmp_path / "faces.csv"
    first = emolens.batch([image], out, detector="haar", workers=1, progress=False)
    assert {row["detector_id"] for row in first.rows} == {"haar"}
    kept = out.read_text()
    with pytest.raises(InvalidOptionError, match=r"detector 'haar', not 'yunet@[0-9a-f]+'.*found them \(haar;"):
        emolens.batch([image, extra], out, detector="yunet", workers=1, progress=False)
    with pytest.raises(InvalidOptionError, match="detector 'haar'"):
        emolens.batch([image, extra], out, workers=2, progress=False)  # "auto" is YuNet here
    assert out.read_text() == kept
    resumed = emolens.batch([image, extra], out, detector="haar", workers=1, progress=False)
    assert (resumed.skipped, resumed.analysed) == (1, 1)
    assert {row["detector_id"] for row in resumed.rows} == {"haar"}
    auto = tmp_path / "auto.csv"
    emolens.batch([image], auto, workers=1, progress=False)
    again = emolens.batch([image, extra], auto, detector="yunet", workers=1, progress=False)
    assert (again.skipped, again.analysed) == (1, 1)


def test_one_run_at_a_time_writes_an_output(photos: Path, tmp_path: Path) -> None:
    """A second run on the same `out` is refused while another holds it (two runs doubled every row); the hold
    is an flock on the hidden `.<name>.lock` beside the output, holding the pid of the run that has it."""
    import fcntl

    out = tmp_path / "rows.csv"
    with (tmp_path / ".rows.csv.lock").open("a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242")
        holder.flush()
        with pytest.raises(InvalidOptionError, match=r"another emolens batch run \(pid 4242\) is writing"):
            emolens.batch([photos / "group" / "multiface.jpg"], out, workers=1, progress=False)
        assert not out.exists()
    assert len(emolens.batch([photos / "group" / "multiface.jpg"], out, workers=1, progress=False).rows) == 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "spark"}, "engine"),
        ({"batch_size": 0}, "batch_size"),
        ({"every": 0}, "every"),
        ({"format": "submission"}, "needs an out file"),
    ],
)
def test_bad_options(collection: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidOptionError, match=match):
        emolens.batch(collection / "broken", **kwargs)


def test_a_setting_the_workers_cannot_start_with_is_its_own_error(collection: Path, tmp_path: Path) -> None:
    """An unknown detector (or no CUDA, or weights offline) failed in each worker's start: a traceback per worker,
    then "a worker process died (out of memory, or killed)" and exit 70; now the worker's own typed error."""
    out = tmp_path / "rows.csv"
    with pytest.raises(emolens.UnknownNameError, match=r"unknown detector 'yunnet'\. Did you mean 'yunet'"):
        emolens.batch(collection / "photos", out, detector="yunnet", workers=2, progress=False)
    command = [sys.executable, "-m", "emolens", "batch", str(collection / "photos"), "--out", str(out)]
    run = subprocess.run(
        [*command, "--workers", "2", "--detector", "yunnet", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr and "worker process died" not in run.stderr
    assert "unknown detector 'yunnet'" in run.stderr


def test_a_missing_folder_is_refused_at_once(tmp_path: Path) -> None:
    """`emolens batch nofolder/` made one error row and exited 0 (a misspelt folder looked like a finished run)."""
    with pytest.raises(InvalidOptionError, match=r"folder .*nofolder/ does not exist"):
        emolens.batch(f"{tmp_path}/nofolder/", tmp_path / "rows.csv", workers=1, progress=False)
    assert not (tmp_path / "rows.csv").exists()
    missing_file = emolens.batch(tmp_path / "missing.jpg", workers=1, progress=False)  # still an error row
    assert [row["error_type"] for row in missing_file.rows] == ["InvalidImageError"]


def test_bad_out_paths(collection: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="suffix"):
        emolens.batch(collection / "broken", tmp_path / "faces.xlsx")
    with pytest.raises(InvalidOptionError, match="does not exist"):
        emolens.batch(collection / "broken", tmp_path / "no" / "faces.csv")


# --- resume ------------------------------------------------------------------------------------------


def test_resume_skips_what_is_done_and_refuses_another_model(collection: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.csv"
    first = emolens.batch(collection / "photos", out, workers=1, progress=False)
    again = emolens.batch([collection / "photos", collection / "broken"], out, workers=1, progress=False)
    assert (again.skipped, again.analysed) == (first.analysed, 4)
    assert len(again.rows) == len(first.rows) + 4
    with pytest.raises(InvalidOptionError, match="--overwrite"):
        emolens.batch(collection / "photos", out, model="fast", progress=False)
    fresh = emolens.batch(collection / "photos", out, model="fast", overwrite=True, workers=1, progress=False)
    assert fresh.skipped == 0 and {row["model"] for row in fresh.rows} == {"fast"}


def test_a_killed_run_resumes_to_the_same_rows(collection: Path, local_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "faces.parquet"
    command = [sys.executable, "-m", "emolens", "batch", str(collection), "--out", str(out), "--every", "3"]
    command += ["--workers", "2", "--batch-size", "4", "--part-size", "8", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = out.with_name(out.name + ".parts")
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and len(list(parts.glob("part-*.jsonl"))) >= 3):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no parts written within 2 minutes"
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers, "the pool's worker processes should be running"
    process.send_signal(signal.SIGKILL)  # no chance to clean up: only the atomically renamed parts survive
    process.wait()
    assert not out.exists()
    deadline = time.monotonic() + 10  # the orphaned workers notice and end themselves
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "worker processes outlived a killed run"
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already done" in done.stdout
    assert not parts.exists()
    _same_rows(_read(local_run[0]), _read(out))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


# --- the Ray engine ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_module() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="needs emolens[ray]")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


def test_ray_engine_gives_the_same_rows(ray_module: Any, collection: Path, local_run: Any, tmp_path: Path) -> None:
    ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "faces.parquet"
        report = emolens.batch(collection, out, engine="ray", workers=2, every=3, progress=False)
    finally:
        ray_module.shutdown()
    assert report.errors == 4 and report.analysed == _inputs(collection)
    _same_rows(_read(local_run[0]), _read(out))


def test_ray_engine_refuses_with_the_typed_error(ray_module: Any, photos: Path, tmp_path: Path) -> None:
    """An actor that cannot start (an unknown detector, an output another detector wrote) died, and the driver
    got Ray's ActorDiedError with the traceback as its message, which `emolens batch` printed as "a bug in
    emolens"; a task builds one worker first, so the error arrives as itself."""
    from emolens.errors import UnknownNameError

    image = photos / "group" / "multiface.jpg"
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(image, extra / "another.jpg")
    out = tmp_path / "faces.csv"
    emolens.batch([image], out, detector="haar", workers=1, progress=False)
    ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(InvalidOptionError, match="detector 'haar', not 'yunet@"):
            emolens.batch([image, extra], out, detector="yunet", engine="ray", workers=1, progress=False)
        with pytest.raises(UnknownNameError, match="yunnet"):
            emolens.batch([image], tmp_path / "new.csv", detector="yunnet", engine="ray", workers=1, progress=False)
    finally:
        ray_module.shutdown()


def test_ray_cli_joins_a_cluster_started_with_ray_start(
    ray_module: Any, collection: Path, local_run: Any, tmp_path: Path
) -> None:
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    subprocess.run(
        [*start, "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
        check=True,
        capture_output=True,
        timeout=180,
        env=env,
    )
    try:
        out = tmp_path / "faces.parquet"
        command = [sys.executable, "-m", "emolens", "batch", str(collection / "photos"), str(collection / "broken")]
        command += ["--out", str(out), "--engine", "ray", "--address", f"127.0.0.1:{port}", "--workers", "2", "--quiet"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120, env=env)
    expected = [row for row in _read(local_run[0]) if "/photos/" in row["file"] or "/broken/" in row["file"]]
    expected = [row for row in expected if not row["file"].endswith("clip.avi")]
    _same_rows(expected, _read(out))


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_nothing_listens_fails_within_seconds(
    ray_module: Any, scheme: str, collection: Path, tmp_path: Path
) -> None:
    address = f"{scheme}127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "emolens", "batch", str(collection / "photos"), "--out", str(tmp_path / "f.csv")]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--engine", "ray", "--address", address], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and time.monotonic() - started < 60
    assert f"nothing answers at {address}" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def _ray_processes_under(root: int) -> dict[int, bytes]:
    """pid -> start time field of each Ray process (``ray::...`` or a program in the ray package) under ``root``."""
    proc = Path("/proc")
    parent: dict[int, int] = {}
    for entry in proc.iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            parent[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                try:
                    stat = (proc / str(child) / "stat").read_bytes()
                except OSError:
                    continue
                found[child] = stat.split(b") ", 1)[1].split()[19]
                frontier.append(child)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_a_killed_ray_run_leaves_no_process_of_its_cluster(ray_module: Any, collection: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "emolens", "batch", str(collection / "photos"), "--out", str(tmp_path / "f.csv")]
    driver = subprocess.Popen(
        [*command, "--engine", "ray", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    cluster: dict[int, bytes] = {}
    while time.monotonic() < deadline and not any(b"ray::" in _cmdline(pid) for pid in cluster):
        time.sleep(0.5)
        cluster.update(_ray_processes_under(driver.pid))
    assert cluster and driver.poll() is None, "the local Ray cluster did not start"
    time.sleep(3)  # the agents are up
    cluster.update(_ray_processes_under(driver.pid))
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (alive := [pid for pid, start in cluster.items() if _started(pid) == start]):
        time.sleep(0.5)
    assert not alive, [_cmdline(pid)[:80] for pid in alive]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _started(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def test_nothing_is_lost_with_numpy_inputs_in_a_list_file(tmp_path: Path) -> None:
    """A Parquet list of paths works as input too (what a Ray user often has)."""
    import pyarrow.parquet as parquet

    image = tmp_path / "grey.png"
    cv2.imwrite(str(image), np.full((64, 64), 128, np.uint8))
    listing = tmp_path / "inputs.parquet"
    parquet.write_table(pyarrow.table({"path": ["grey.png", "absent.png"]}), listing)
    report = emolens.batch(listing, workers=1, fallback=False, progress=False)
    by_file = {Path(row["file"]).name: row for row in report.rows}
    assert by_file["grey.png"]["face"] is None and by_file["grey.png"]["error_type"] is None  # no face: one row
    assert by_file["absent.png"]["error_type"] == "InvalidImageError"


def test_a_file_name_that_is_not_utf8_is_a_row_in_every_format(photos: Path, tmp_path: Path) -> None:
    """Linux allows any bytes in a name: such a file is analysed, its name written with the bytes escaped, and a
    resumed run recognises it (one such file crashed the whole run before)."""
    folder = tmp_path / "odd"
    folder.mkdir()
    odd = os.fsdecode(bytes(folder) + b"/caf\xe9.jpg")
    Path(odd).write_bytes((photos / "group" / "multiface.jpg").read_bytes())
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"rows{suffix}"
        report = emolens.batch([folder], out, workers=1, progress=False)
        assert report.errors == 0 and report.faces == 6
        assert {row["file"] for row in _read_any(out)} == {str(folder) + "/caf\\xe9.jpg"}, suffix
        again = emolens.batch([folder], out, workers=1, progress=False)
        assert (again.skipped, again.analysed, len(_read_any(out))) == (1, 0, 6)
    assert emolens.analyze(odd).to_dataframe()["file"].iloc[0].endswith("caf\\xe9.jpg")
