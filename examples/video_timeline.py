"""Turn a video into an annotated copy, a CSV timeline and a per-person summary.

    python examples/video_timeline.py [VIDEO] [OUT_DIR]

Without a VIDEO argument, a 4-second clip is generated from the group photo in ../shared.
"""

import sys
from pathlib import Path

import cv2

import emolens
from emolens.labels import display_label
from emolens.video import AnnotatedVideoWriter, VideoAnalysis, analyze_video

REPO = Path(__file__).resolve().parents[1]
out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else "video-out")
out_dir.mkdir(parents=True, exist_ok=True)

if len(sys.argv) > 1:
    video = sys.argv[1]
else:  # a slow zoom into the group photo
    photo = cv2.imread(str(REPO.parent / "shared" / "images" / "group" / "multiface.jpg"))
    h, w = photo.shape[:2]
    video = str(out_dir / "input.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter.fourcc(*"mp4v"), 25, (640, 336))
    for i in range(100):
        s = 1 - 0.15 * i / 99
        crop = photo[int(h * (1 - s) / 2) : int(h * (1 + s) / 2), int(w * (1 - s) / 2) : int(w * (1 + s) / 2)]
        writer.write(cv2.resize(crop, (640, 336), interpolation=cv2.INTER_AREA))
    writer.release()

analysis = VideoAnalysis()
writer = None
for frame in analyze_video(video, smoothing=0.6):
    analysis.add(frame)
    if writer is None:
        writer = AnnotatedVideoWriter(out_dir / "annotated.mp4", 25, (frame.width, frame.height))
    writer.write(frame)
if writer is not None:
    writer.close()
analysis.to_csv(out_dir / "timeline.csv")
for summary in analysis.summary().values():
    print(f"person {summary.track_id}: mostly {display_label(summary.dominant)} over {summary.frames} frames")
print(f"wrote {out_dir / 'annotated.mp4'} and {out_dir / 'timeline.csv'} ({emolens.__version__})")
