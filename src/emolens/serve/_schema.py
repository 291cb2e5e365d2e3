"""The JSON the server returns, as Pydantic models: published in OpenAPI and as a JSON Schema.

``AnalysisResultModel`` describes exactly :meth:`emolens.AnalysisResult.to_dict` (the same JSON as
``emolens analyze --json``); ``tests/test_serve.py`` checks real results against it with extra keys
forbidden, so the schema cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnalysisResultModel",
    "BatchItemModel",
    "BatchResponseModel",
    "ErrorModel",
    "ErrorResponseModel",
    "FaceModel",
    "ModelsResponseModel",
    "analysis_result_json_schema",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoxModel(_Strict):
    x: int
    y: int
    width: int
    height: int


class PointModel(_Strict):
    x: float
    y: float


class LandmarksModel(_Strict):
    left_eye: PointModel
    right_eye: PointModel
    nose: PointModel
    mouth_left: PointModel
    mouth_right: PointModel


class FaceModel(_Strict):
    """One face: where it is and what it shows."""

    box: BoxModel = Field(description="Face box in original-image pixels.")
    score: float = Field(description="Detector confidence in [0, 1]; 1.0 for a fallback face.")
    label: str = Field(description="The most probable label.")
    emotion: str | None = Field(description="The label when it is a canonical emotion, else null.")
    confidence: float = Field(description="Probability of the top label.")
    probabilities: dict[str, float] = Field(description="Probability per label, in the model's label order.")
    valence: float | None = Field(description="Valence in [-1, 1] for models that predict it, else null.")
    arousal: float | None = Field(description="Arousal in [-1, 1] for models that predict it, else null.")
    landmarks: LandmarksModel | None = Field(description="Five landmarks when the detector gives them.")
    fallback: bool = Field(description="True when no face was found and the whole image was classified.")


class ImageSizeModel(_Strict):
    width: int
    height: int


class AnalysisResultModel(_Strict):
    """Everything found in one image: ``AnalysisResult.to_dict()``."""

    source: str | None = Field(description="File path of the input when given as a path; null over HTTP.")
    image: ImageSizeModel
    detector: str = Field(description="Detector actually used ('none' when detection was skipped).")
    model: str = Field(description="Emotion model used ('default', or 'default@v4' when pinned).")
    detector_id: str = Field(
        description="Which detector answered: '<name>@<first 12 hex digits of its weights' sha256>'."
    )
    model_id: str = Field(
        description="Which weights answered: '<weights file>@<first 12 hex digits of its sha256>'; send it as "
        "model= to get the same answers after an upgrade."
    )
    faces: list[FaceModel] = Field(description="Faces, largest first.")
    timings_ms: dict[str, float] = Field(description="Wall time per stage: load, detect, classify, total.")


class ErrorModel(_Strict):
    type: str = Field(description="The emolens error class, e.g. InvalidImageError, UnknownNameError.")
    message: str = Field(description="What went wrong and what to do about it.")


class ErrorResponseModel(_Strict):
    error: ErrorModel


class BatchItemModel(_Strict):
    """One file of a batch: its result or its error (never both)."""

    filename: str | None
    result: AnalysisResultModel | None = None
    error: ErrorModel | None = None


class BatchResponseModel(_Strict):
    results: list[BatchItemModel]


class ModelInfoModel(_Strict):
    name: str
    description: str
    labels: list[str]
    label_set: str
    valence_arousal: bool
    runtime: str
    version: str = Field(description="Release of this name ('v3'); '' when unversioned.")
    identity: str = Field(description="'<weights file>@<sha256 prefix>' of the weights this name loads.")
    available: bool = Field(description="Its weights and packages are on this server: a request can use it.")
    loaded: bool


class DetectorInfoModel(_Strict):
    name: str
    description: str
    available: bool = Field(description="Its optional packages and weights are on this server.")


class ModelsResponseModel(_Strict):
    default_model: str
    default_detector: str
    label_colors: dict[str, str] = Field(description="A colour per canonical label, as in emolens' plots.")
    display_names: dict[str, str] = Field(description="English display name per canonical label.")
    models: list[ModelInfoModel]
    detectors: list[DetectorInfoModel]


def analysis_result_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``AnalysisResult.to_dict()``."""
    schema = AnalysisResultModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
