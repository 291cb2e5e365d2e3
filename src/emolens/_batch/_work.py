"""The work both engines do: a chunk of inputs in, table rows out (so their rows are the same)."""

from __future__ import annotations

from collections.abc import Sequence

from .._analyzer import Analyzer, Detected
from .._rows import Row, error_row, result_rows
from ._inputs import BatchInput
from ._job import Job
from ._store import mixed_results

__all__ = ["FRAMES_PER_PASS", "Worker"]

#: Video frames classified in one forward pass.
FRAMES_PER_PASS = 16


class Worker:
    """One Analyzer and the loop that turns inputs into rows; one per process or actor."""

    def __init__(self, job: Job, *, threads: int | None = None) -> None:
        if threads is not None:
            import cv2
            import torch

            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
        self.job = job
        self.analyzer = Analyzer(
            job.detector,
            job.model,
            device=job.device,
            fallback=job.fallback,
            max_pixels=job.max_pixels,
            precision=job.precision,
        )
        if job.resumes is not None and job.resumes[1] != self.analyzer.detector_id:
            out, found = job.resumes
            raise mixed_results(
                out,
                f"detector {found!r}, not {self.analyzer.detector_id!r}",
                f"the detector that found them ({found}; the part after @ is its weights, another there means "
                "emolens was upgraded)",
            )
        self.labels = self.analyzer.model.labels

    def rows(self, inputs: Sequence[BatchInput]) -> list[Row]:
        """Rows of every input, grouped by input in the given order; a failed input is an error row."""
        images = [item for item in inputs if not item.video]
        by_path = self._image_rows(images)
        rows: list[Row] = []
        for item in inputs:
            rows.extend(self._video_rows(item) if item.video else by_path[item.path])
        return rows

    def _error(self, path: str, exc: BaseException) -> Row:
        analyzer = self.analyzer
        return error_row(
            path,
            exc,
            self.labels,
            detector=analyzer.detector_name,
            model=analyzer.model.name,
            detector_id=analyzer.detector_id,
            model_id=analyzer.model.identity,
        )

    def _image_rows(self, images: Sequence[BatchInput]) -> dict[str, list[Row]]:
        """Each image is decoded and its faces cropped in turn (only the crops wait, not the decoded images), then
        every face is classified in one forward pass."""
        out: dict[str, list[Row]] = {}
        found: list[tuple[str, Detected]] = []
        for item in images:
            try:
                found.append((item.path, self.analyzer.detect(item.path, min_face_size=self.job.min_face_size)))
            except Exception as exc:  # an unreadable file is a row, whatever failed
                out[item.path] = [self._error(item.path, exc)]
        try:
            results = self.analyzer.classify([detected for _, detected in found])
        except Exception:  # one image broke the forward pass: one by one, to find which
            for path, detected in found:
                try:
                    (result,) = self.analyzer.classify([detected])
                    out[path] = result_rows(result, self.labels, file=path)
                except Exception as exc:
                    out[path] = [self._error(path, exc)]
            return out
        for (path, _), result in zip(found, results, strict=True):
            out[path] = result_rows(result, self.labels, file=path)
        return out

    def _video_rows(self, item: BatchInput) -> list[Row]:
        """One row per face per analysed frame (every ``job.every``-th); frames read before a failure are kept."""
        from ..video import open_source

        rows: list[Row] = []
        pending: list[tuple[int, float, Detected]] = []  # frames' crops, not their pixels

        def flush() -> None:
            results = self.analyzer.classify([detected for _, _, detected in pending])
            for (index, time_s, _), result in zip(pending, results, strict=True):
                rows.extend(result_rows(result, self.labels, file=item.path, frame=index, time_s=time_s))
            pending.clear()

        try:
            for frame in open_source(item.path, max_pixels=self.job.max_pixels):
                if frame.index % self.job.every == 0:
                    detected = self.analyzer.detect(frame.image, min_face_size=self.job.min_face_size)
                    pending.append((frame.index, frame.time, detected))
                    if len(pending) == FRAMES_PER_PASS:
                        flush()
            if pending:
                flush()
        except Exception as exc:
            rows.append(self._error(item.path, exc))
        return rows
