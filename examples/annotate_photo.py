"""Analyze a photo and save an annotated copy.

python examples/annotate_photo.py [PHOTO] [OUT]
"""

import sys
from pathlib import Path

import cv2

import emolens

REPO = Path(__file__).resolve().parents[1]
photo = sys.argv[1] if len(sys.argv) > 1 else str(REPO.parent / "shared" / "images" / "group" / "multiface.jpg")
out = sys.argv[2] if len(sys.argv) > 2 else "annotated.jpg"

result = emolens.analyze(photo)
for i, face in enumerate(result.faces, 1):
    print(f"face {i}: {face.label} ({face.confidence:.0%}) at {face.box.xyxy}")
cv2.imwrite(out, emolens.annotate(photo, result))
print(f"{len(result.faces)} faces, detector {result.detector}; wrote {out}")
