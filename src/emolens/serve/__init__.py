"""``emolens serve``: a REST API and a web app around :class:`emolens.Analyzer` (the ``emolens[serve]`` extra).

>>> from emolens.serve import ServeConfig, create_app
>>> app = create_app(ServeConfig(model="fast"))   # doctest: +SKIP  (an ASGI app for any server)

The response models (Pydantic) describe the JSON the server returns; ``STATUS_FOR_ERROR`` maps
emolens' exception tree to HTTP statuses. Importing them needs FastAPI, so they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._config import API_KEY_ENV, MAX_URL_BYTES, ServeConfig
from ._run import serve

if TYPE_CHECKING:
    from ._app import create_app
    from ._batcher import DetectingSlot, FaceBatcher
    from ._errors import STATUS_FOR_ERROR, status_for
    from ._schema import (
        AnalysisResultModel,
        BatchResponseModel,
        ErrorResponseModel,
        ModelsResponseModel,
        analysis_result_json_schema,
    )

__all__ = [
    "API_KEY_ENV",
    "MAX_URL_BYTES",
    "STATUS_FOR_ERROR",
    "AnalysisResultModel",
    "BatchResponseModel",
    "DetectingSlot",
    "ErrorResponseModel",
    "FaceBatcher",
    "ModelsResponseModel",
    "ServeConfig",
    "analysis_result_json_schema",
    "create_app",
    "serve",
    "status_for",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "._app": ["create_app"],
        "._batcher": ["DetectingSlot", "FaceBatcher"],
        "._errors": ["STATUS_FOR_ERROR", "status_for"],
        "._schema": [
            "AnalysisResultModel",
            "BatchResponseModel",
            "ErrorResponseModel",
            "ModelsResponseModel",
            "analysis_result_json_schema",
        ],
    },
    __all__,
)
