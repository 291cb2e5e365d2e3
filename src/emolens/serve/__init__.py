"""``emolens serve``: a REST API and a web app around :class:`emolens.Analyzer` (the ``emolens[serve]`` extra).

>>> from emolens.serve import ServeConfig, create_app
>>> app = create_app(ServeConfig(model="fast"))   # doctest: +SKIP  (an ASGI app for any server)
"""

from __future__ import annotations

from ._config import ServeConfig
from ._run import serve

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # imports FastAPI: only when asked for
        from ._app import create_app

        return create_app
    raise AttributeError(f"module 'emolens.serve' has no attribute {name!r}")
