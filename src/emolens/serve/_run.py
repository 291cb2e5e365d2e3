"""Start the server: one process, or several uvicorn workers that each build the app from the environment."""

from __future__ import annotations

import os

from .._optional import require
from ._config import CONFIG_ENV, ServeConfig

__all__ = ["serve"]


def serve(config: ServeConfig) -> None:
    """Serve until interrupted (Ctrl-C). Raises MissingDependencyError without ``emolens[serve]``."""
    uvicorn = require("uvicorn", extra="serve", feature="emolens serve")
    require("fastapi", extra="serve", feature="emolens serve")
    require("python_multipart", extra="serve", feature="emolens serve", package="python-multipart")
    options = {"host": config.host, "port": config.port, "log_level": "info", "timeout_keep_alive": 5}
    if config.workers == 1:
        from ._app import create_app

        uvicorn.run(create_app(config), **options)
    else:  # each worker process imports the app by name, so the configuration travels in the environment
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run("emolens.serve._app:app_from_env", factory=True, workers=config.workers, **options)
