"""``emolens serve``: a REST API and a web app around :class:`emolens.Analyzer` (the ``emolens[serve]`` extra).

>>> from emolens.serve import ServeConfig, create_app
>>> app = create_app(ServeConfig(model="fast"))   # doctest: +SKIP  (an ASGI app for any server)

The response models (Pydantic) describe the JSON the server returns; ``STATUS_FOR_ERROR`` maps
emolens' exception tree to HTTP statuses. Importing them needs FastAPI, so they load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._config import ServeConfig
from ._run import serve

__all__ = [
    "STATUS_FOR_ERROR",
    "AnalysisResultModel",
    "BatchResponseModel",
    "ErrorResponseModel",
    "ModelsResponseModel",
    "ServeConfig",
    "analysis_result_json_schema",
    "create_app",
    "serve",
]

_LAZY = {
    "create_app": "._app",
    "STATUS_FOR_ERROR": "._errors",
    "AnalysisResultModel": "._schema",
    "BatchResponseModel": "._schema",
    "ErrorResponseModel": "._schema",
    "ModelsResponseModel": "._schema",
    "analysis_result_json_schema": "._schema",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emolens.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
