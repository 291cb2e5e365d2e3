"""Results display in a real Jupyter kernel (nbclient runs a notebook, as Jupyter would)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs nbformat, nbclient and ipykernel (emolens[test])")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def test_a_result_shows_its_annotated_image_and_probabilities(photos: Path) -> None:
    photo = photos / "group" / "multiface.jpg"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(f"import emolens\nresult = emolens.analyze({str(photo)!r})\nresult"),
        nbformat.v4.new_code_cell(f"emolens.analyze(open({str(photo)!r}, 'rb').read())"),
    ]
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert all(o for o in outputs) and not any(out.get("output_type") == "error" for o in outputs for out in o)
    from_file = outputs[0][0]["data"]["text/html"]
    assert from_file.count('<img src="data:image/png;base64,') == 1  # the annotated photo
    assert "6 faces" in from_file and from_file.count("</b>") == 6  # one row per face
    assert "Happy" in from_file and "%" in from_file
    from_bytes = outputs[1][0]["data"]["text/html"]
    assert "<img" not in from_bytes and "6 faces" in from_bytes  # no source file: the table only
    assert "AnalysisResult(" in outputs[0][0]["data"]["text/plain"]
