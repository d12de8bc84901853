"""Plots of a run a person can look at: `python -m apps.report RUN` writes RUN/plots/*.png.

Drawn with Pillow (already a dependency) rather than adding matplotlib: line charts with axes,
ticks and a legend are all a training curve needs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 720, 420
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 20, 40, 50
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
PLOTS = {
    "loss": ("loss", "val_loss"),
    "lr": ("lr/",),
    "tokens_per_s": ("tokens_per_s",),
    "packing_efficiency": ("packing_efficiency",),
    "grad_norm": ("grad_norm",),
}


def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise ValueError(f"{path} does not exist: is {run_dir} a qvltrain run directory?")
    by_step: dict[int, dict] = {}
    with open(path) as handle:
        for line in handle:
            record = json.loads(line)
            by_step.setdefault(record["step"], {}).update(record)  # a resumed run may repeat a step
    return [by_step[step] for step in sorted(by_step)]


def _format(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def line_chart(title: str, series: dict[str, Sequence[tuple[float, float]]], path: str) -> None:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    points = [point for values in series.values() for point in values if math.isfinite(point[1])]
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    if x_high == x_low:
        x_high = x_low + 1
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return (
            MARGIN_LEFT + (x - x_low) / (x_high - x_low) * plot_w,
            MARGIN_TOP + (1 - (y - y_low) / (y_high - y_low)) * plot_h,
        )

    draw.rectangle([MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT + plot_w, MARGIN_TOP + plot_h], outline="black")
    for tick in range(5):
        y_value = y_low + (y_high - y_low) * tick / 4
        _, y_pixel = to_pixel(x_low, y_value)
        draw.line([MARGIN_LEFT - 4, y_pixel, MARGIN_LEFT, y_pixel], fill="black")
        draw.line([MARGIN_LEFT, y_pixel, MARGIN_LEFT + plot_w, y_pixel], fill=(230, 230, 230))
        draw.text((6, y_pixel - 6), _format(y_value), fill="black")
        x_value = x_low + (x_high - x_low) * tick / 4
        x_pixel, _ = to_pixel(x_value, y_low)
        draw.line([x_pixel, MARGIN_TOP + plot_h, x_pixel, MARGIN_TOP + plot_h + 4], fill="black")
        draw.text((x_pixel - 10, MARGIN_TOP + plot_h + 8), f"{x_value:.0f}", fill="black")
    draw.text((MARGIN_LEFT + plot_w // 2 - 12, HEIGHT - 18), "step", fill="black")
    draw.text((MARGIN_LEFT, 12), title, fill="black")
    for index, (name, values) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        pixels = [to_pixel(x, y) for x, y in values if math.isfinite(y)]
        if len(pixels) > 1:
            draw.line(pixels, fill=color, width=2)
        for x_pixel, y_pixel in pixels if len(pixels) < 40 else []:
            draw.ellipse([x_pixel - 2, y_pixel - 2, x_pixel + 2, y_pixel + 2], fill=color)
        draw.line([WIDTH - 200, 14 + 14 * index, WIDTH - 180, 14 + 14 * index], fill=color, width=3)
        draw.text((WIDTH - 175, 8 + 14 * index), name, fill="black")
    image.save(path)


def write_report(run_dir: str) -> list[str]:
    records = read_metrics(run_dir)
    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for plot_name, prefixes in PLOTS.items():
        keys = sorted(
            {
                key
                for record in records
                for key in record
                if any(key == p or (p.endswith("/") and key.startswith(p)) for p in prefixes)
            }
        )
        series = {
            key: [
                (record["step"], float(record[key]))
                for record in records
                if key in record and record[key] is not None
            ]
            for key in keys
        }
        series = {key: values for key, values in series.items() if any(math.isfinite(v) for _, v in values)}
        if not series:
            continue
        path = os.path.join(out_dir, f"{plot_name}.png")
        line_chart(f"{os.path.basename(os.path.abspath(run_dir))}: {plot_name}", series, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory holding metrics.jsonl")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.run_dir)
    except ValueError as error:
        raise SystemExit(f"report error: {error}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
