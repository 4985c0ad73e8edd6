"""Single-core cost of the pure metric suite, per family, beside cv2.imread of the same JPEG.

    python benchmarks/science_pure.py [--repeats 15]

Prints milliseconds (median wall time) of the 1600 x 1200 -> 1024 x 768 area resize, of each
family on the 1024 x 768 working image (generated, photo-like; each family's time includes
the shared planes it needs), of the whole suite on the 1600 x 1200 source (resize included),
of decode-only ``cv2.imread`` of that source as a JPEG and of ``analyse_file`` (decode and
suite), and the ratio suite-throughput / decode-throughput per process. The machine may be
shared: compare figures from the same run, not across runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from itagger_lib.samples import facade
from itagger_lib.science import analyse_file, family_costs


def photo_like(width: int, height: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = facade(width, height, seed=seed).astype(np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 2)
    rgb += 8 * texture[..., None] / texture.std() + rng.normal(0, 3, rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def median_ms(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    source = photo_like(1600, 1200)
    costs = family_costs(source, args.repeats)
    print("resize, families on the 1024 x 768 working image, total with resize (ms, median, 1 thread):")
    for name, ms in costs.items():
        print(f"  {name:12s} {ms:7.1f}")
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "photo.jpg")
        cv2.imwrite(path, cv2.cvtColor(source, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        decode = median_ms(lambda: cv2.imread(path, cv2.IMREAD_COLOR), args.repeats)
        full = median_ms(lambda: analyse_file(path, None, 1600, 1200), args.repeats)
    print(f"cv2.imread 1600 x 1200 JPEG:            {decode:7.1f} ms")
    print(f"analyse_file (decode + suite):          {full:7.1f} ms")
    print(f"suite throughput / decode throughput:   {decode / full:7.2f}")


if __name__ == "__main__":
    main()
