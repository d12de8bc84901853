"""Video QA JSON + video files -> video shards of pre-extracted JPEG frames with timestamps.

    python -m data_recipes.video_qa --json video_qa.json --videos clips/ --out data/video_qa \
        --image-budget 3136:1003520 --video-total-pixels 7225344 [--video-fps 2] [--max-pixels 200704]

Input: a JSON array (or JSONL) of {"video": "clip.mp4", "question": "...", "answer": "..."} or of
LLaVA-Video-style {"video": ..., "conversations": [{"from": "human", "value": "<video>\\nQ"}, ...]}.
Each video is decoded once, here: the frames the loader would sample under the video budget
(--video-fps, --video-frames) are stored as KEY.0.f000.jpg ... with their timestamps, so training
never decodes a full video. --max-pixels shrinks larger frames before they are stored.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from qvltrain.shards.recipe_cli import add_output_arguments, add_token_arguments, run_recipe, token_settings
from qvltrain.shards.recipe_inputs import conversation_messages, read_json_records
from qvltrain.shards.recipe_media import ExtractedFrames, extract_frames
from qvltrain.shards.recipe_tools import BadRecord, RecipeSample
from qvltrain.vision.budgets import VideoBudget


def video_item(frames: ExtractedFrames, index: int) -> tuple[dict, dict[str, bytes]]:
    """The schema's video item for stored frames, and its media members `<index>.fNNN.jpg`."""
    names = [f"{index}.f{number:03d}.jpg" for number in range(len(frames.frames))]
    item = {"type": "video", "frames": names, "timestamps": frames.timestamps}
    return item, dict(zip(names, frames.frames, strict=True))


def question_answer_turns(record: dict) -> list[dict]:
    for field_name in ("question", "answer"):
        if not isinstance(record.get(field_name), str) or not record[field_name].strip():
            raise BadRecord("invalid_record", f"needs a non-empty '{field_name}' (or 'conversations')")
    return [{"from": "human", "value": record["question"]}, {"from": "gpt", "value": record["answer"]}]


@dataclass
class VideoQAConverter:
    video_root: str
    budget: VideoBudget
    max_pixels: int | None = None

    def __call__(self, record: dict) -> RecipeSample:
        file_name = record.get("video")
        if not isinstance(file_name, str):
            raise BadRecord("invalid_record", "needs 'video': a file relative to --videos")
        path = os.path.join(self.video_root, file_name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no video file {path}")
        frames = extract_frames(path, self.budget, file_name, self.max_pixels)
        item, media = video_item(frames, 0)
        turns = record["conversations"] if "conversations" in record else question_answer_turns(record)
        meta = {"image_sizes": [], "video_sizes": [[frames.width, frames.height]]}
        if "id" in record:
            meta["id"] = str(record["id"])
        return RecipeSample(
            {"task": "video", "messages": conversation_messages(turns, "<video>", [item]), "meta": meta},
            media,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--json", required=True, help="video QA .json array or .jsonl")
    parser.add_argument("--videos", required=True, help="folder the records' video paths are relative to")
    parser.add_argument("--source", default="video_qa", help="meta.source of every sample")
    add_output_arguments(parser)
    add_token_arguments(parser, video=True)
    args = parser.parse_args(argv)
    settings = token_settings(args)
    run_recipe(
        args,
        read_json_records(args.json),
        VideoQAConverter(args.videos, settings.video_budget, args.max_pixels),
        settings,
    )


if __name__ == "__main__":
    main()
