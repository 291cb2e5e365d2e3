"""Analyze every image of a folder in batches and write one CSV row per face.

python examples/folder_to_csv.py [FOLDER] [OUT.csv]
"""

import csv
import sys
from pathlib import Path

import emolens

REPO = Path(__file__).resolve().parents[1]
folder = Path(sys.argv[1] if len(sys.argv) > 1 else REPO.parent / "shared" / "images" / "dlib-faces")
out = Path(sys.argv[2] if len(sys.argv) > 2 else "faces.csv")

files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
analyzer = emolens.Analyzer()
with out.open("w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["file", "face", "x", "y", "width", "height", "label", *analyzer.model.labels])
    for start in range(0, len(files), 8):
        batch = files[start : start + 8]
        for path, result in zip(batch, analyzer.analyze_batch(batch), strict=True):
            for i, face in enumerate(result.faces, 1):
                writer.writerow([path.name, i, *face.box.to_dict().values(), face.label, *face.probabilities])
print(f"wrote {out} for {len(files)} images")
