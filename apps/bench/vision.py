"""Benchmark: images and videos to patch rows, ours vs transformers, on one core.

    python -m apps.bench.vision [--out bench_results/vision.json] [--quick]

Images: the same JPEGs at each size through (a) transformers' PIL image processor, (b) ours as the
loader runs it (uint8 rows), (b') ours producing the float32 reference rows, (c) bare PIL decode +
resize to the same size (the floor). Every path starts from the encoded bytes. Videos: sampled
frames per second end to end from MP4 bytes, ours vs transformers (decord loading + its video
processor, which needs torchvision; skipped where it is not importable). Ratios are within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qvltrain.vision import (
    ImageBudget,
    VideoBudget,
    load_image_patches,
    patches_to_pixel_values,
    video_to_patches,
)
from qvltrain.vision.resize import smart_resize
from qvltrain.vision.sampling import num_sampled_frames, sample_frame_indices

IMAGE_BUDGET = ImageBudget(min_pixels=56 * 56, max_pixels=28 * 28 * 1280)  # transformers' class default
VIDEO_BUDGET = VideoBudget(total_pixels=int(24576 * 784 * 0.9 // 784 * 784))
SIZES = ((640, 480), (1024, 768), (1920, 1080), (4000, 3000))


def pin_to_one_core() -> str:
    """Run on one CPU (the first this process may use) with one torch thread; returns a description."""
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    return f"core {core}, torch threads 1"


def photo_like_jpeg(width: int, height: int, seed: int) -> bytes:
    """A JPEG with the rough statistics of a photo: smooth regions, edges and sensor noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    picture = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    blocks = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize((width, height))
    picture = picture // 2 + np.asarray(blocks, dtype=np.int16) // 2 + rng.integers(-6, 7, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Timing:
    seconds: float
    items: int

    @property
    def per_second(self) -> float:
        return self.items / self.seconds


def best_of(rounds: int, methods: dict[str, Callable[[], int]]) -> dict[str, Timing]:
    """Fastest round of each method; methods alternate inside a round so drift hits all alike."""
    best: dict[str, Timing] = {}
    for _ in range(rounds):
        for name, run in methods.items():
            start = time.perf_counter()
            items = run()
            timing = Timing(time.perf_counter() - start, items)
            if name not in best or timing.seconds < best[name].seconds:
                best[name] = timing
    return best


def bench_image_size(processor, width: int, height: int, num_images: int, rounds: int) -> dict:
    jpegs = [photo_like_jpeg(width, height, seed) for seed in range(num_images)]
    resized_height, resized_width = smart_resize(
        height, width, min_pixels=IMAGE_BUDGET.min_pixels, max_pixels=IMAGE_BUDGET.max_pixels
    )

    def transformers_pil() -> int:
        for data in jpegs:
            processor(images=[Image.open(io.BytesIO(data))], return_tensors="np")
        return len(jpegs)

    def ours_loader() -> int:
        for index, data in enumerate(jpegs):
            load_image_patches(data, IMAGE_BUDGET, f"bench/{index}")
        return len(jpegs)

    def ours_float() -> int:
        for index, data in enumerate(jpegs):
            patches_to_pixel_values(load_image_patches(data, IMAGE_BUDGET, f"bench/{index}"))
        return len(jpegs)

    def pil_floor() -> int:
        for data in jpegs:
            Image.open(io.BytesIO(data)).resize((resized_width, resized_height), Image.Resampling.BICUBIC)
        return len(jpegs)

    timings = best_of(
        rounds, {"a": transformers_pil, "b": ours_loader, "b_prime": ours_float, "c": pil_floor}
    )
    return {
        "size": f"{width}x{height}",
        "resized": f"{resized_width}x{resized_height}",
        "images_per_s": {name: round(t.per_second, 2) for name, t in timings.items()},
        "b_over_c_time": round(timings["b"].seconds / timings["c"].seconds, 3),
        "b_speedup_vs_a": round(timings["a"].seconds / timings["b"].seconds, 3),
        "b_prime_speedup_vs_a": round(timings["a"].seconds / timings["b_prime"].seconds, 3),
        "floor_speedup_vs_a": round(timings["a"].seconds / timings["c"].seconds, 3),
    }


def bench_images(num_images: int, rounds: int, sizes=SIZES) -> list[dict]:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(
        min_pixels=IMAGE_BUDGET.min_pixels, max_pixels=IMAGE_BUDGET.max_pixels
    )
    results = []
    for width, height in sizes:
        results.append(bench_image_size(processor, width, height, num_images, rounds))
        print_image_row(results[-1])
    return results


def bench_videos(num_clips: int, seconds: int, rounds: int) -> dict:
    import av

    clips = []
    for seed in range(num_clips):
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            base = np.asarray(Image.open(io.BytesIO(photo_like_jpeg(1280, 360, seed))))
            for index in range(seconds * 30):
                shift = index * 4 % 640
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(base[:, shift : shift + 640]), format="rgb24"
                )
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        clips.append(buffer.getvalue())
    frames_per_clip = num_sampled_frames(seconds * 30, 30.0, VIDEO_BUDGET)

    def ours() -> int:
        for index, data in enumerate(clips):
            video_to_patches(data, VIDEO_BUDGET, f"clip/{index}", timeout_s=None)
        return frames_per_clip * len(clips)

    def ours_float() -> int:
        for index, data in enumerate(clips):
            patches_to_pixel_values(video_to_patches(data, VIDEO_BUDGET, f"clip/{index}", timeout_s=None))
        return frames_per_clip * len(clips)

    methods = {"ours": ours, "ours_float": ours_float}
    result: dict = {
        "clips": f"{num_clips} x {seconds} s, 640x360 @ 30 fps, libx264",
        "frames_per_clip": frames_per_clip,
    }
    try:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
        from transformers.video_utils import load_video
    except (ImportError, RuntimeError) as error:
        result["transformers"] = f"skipped: {error}"
    else:
        processor = Qwen2VLVideoProcessor(
            min_pixels=VIDEO_BUDGET.min_pixels,
            max_pixels=VIDEO_BUDGET.max_pixels,
            cap_pixels_per_frame=True,
            max_video_tokens=int(VIDEO_BUDGET.total_pixels / 784 / 0.9 + 1),
        )
        folder = Path(tempfile.mkdtemp())
        paths = []
        for index, data in enumerate(clips):
            paths.append(folder / f"clip{index}.mp4")
            paths[-1].write_bytes(data)

        def same_indices(metadata, **kwargs):
            return np.array(sample_frame_indices(metadata.total_num_frames, frames_per_clip))

        def transformers_video() -> int:
            for path in paths:
                frames, _ = load_video(str(path), backend="decord", sample_indices_fn=same_indices)
                processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
            return frames_per_clip * len(paths)

        methods["transformers"] = transformers_video
    timings = best_of(rounds, methods)
    result["frames_per_s"] = {name: round(t.per_second, 2) for name, t in timings.items()}
    if "transformers" in timings:
        result["ours_speedup"] = round(timings["transformers"].seconds / timings["ours"].seconds, 3)
        result["ours_float_speedup"] = round(
            timings["transformers"].seconds / timings["ours_float"].seconds, 3
        )
    print(f"video {result['clips']}: {json.dumps({k: v for k, v in result.items() if k != 'clips'})}")
    return result


def print_image_row(row: dict) -> None:
    rate = row["images_per_s"]
    print(
        f"{row['size']:>10} -> {row['resized']:>9} | img/s a {rate['a']:7.1f}  b {rate['b']:7.1f}  "
        f"b' {rate['b_prime']:7.1f}  c {rate['c']:7.1f} | b/c time {row['b_over_c_time']:.2f} "
        f"(<=1.2)  a/b {row['b_speedup_vs_a']:.2f} (>=2)  a/b' {row['b_prime_speedup_vs_a']:.2f} (>=1.8)  "
        f"a/c {row['floor_speedup_vs_a']:.2f}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results/vision.json"))
    parser.add_argument("--images", type=int, default=6, help="distinct JPEGs per size")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the fastest counts")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (tests)")
    args = parser.parse_args(argv)

    cores = pin_to_one_core()
    report: dict = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; {cores}".strip(),
        "versions": {
            "torch": torch.__version__,
            "pillow": Image.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "image_budget": IMAGE_BUDGET.describe(),
        "video_budget": VIDEO_BUDGET.describe(),
    }
    if args.quick:
        report["images"] = bench_images(2, 1, sizes=((64, 48),))
        report["video"] = bench_videos(1, 1, 1)
    else:
        report["images"] = bench_images(args.images, args.rounds)
        report["video"] = bench_videos(2, 4, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
