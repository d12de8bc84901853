"""Qwen2.5-VL inputs against transformers' own processing: image rows and grids from the image
processor transformers maps `qwen2_5_vl` to (PIL backend), and ids, modality types, positions and
`second_per_grid_ts` from `Qwen2_5_VLProcessor` + `Qwen2_5_VLModel.get_rope_index`.

transformers' video processor needs torchvision, which does not import beside the project venv's CPU
torch: the real-video test (a decoded MP4 through Qwen2_5_VLProcessor and its real video processor:
rows, grid, `second_per_grid_ts` at dynamic rates, ids, positions) runs in the parity venv
(`make parity`) and skips here with that reason. For ids and times on many conversations a stand-in
returns the grids and sampled fps we chose; the processor's own code turns the fps into
`second_per_grid_ts` and the grids into pad tokens.
"""

from __future__ import annotations

import importlib
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from transformers import Qwen2_5_VLProcessor
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
from transformers.models.auto.video_processing_auto import VIDEO_PROCESSOR_MAPPING_NAMES

from qvltrain.text.chat_template import QWEN2_VL_CHAT_TEMPLATE
from qvltrain.text.config import RenderConfig
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision import ImageBudget, load_image_patches, patches_to_pixel_values
from qvltrain.vision.sampling import second_per_grid
from tests.model.qwen2_5_vl.test_positions import RopeIndexOracle
from tests.text.conversations import ConversationGenerator, oracle_messages
from tests.vision.media import image_cases

MIN_PIXELS, MAX_PIXELS = 4 * 28 * 28, 64 * 28 * 28


def qwen2_5_vl_image_processor_class():
    """The PIL image processor class transformers' auto mapping gives a qwen2_5_vl checkpoint."""
    name = IMAGE_PROCESSOR_MAPPING_NAMES["qwen2_5_vl"]["pil"]
    return getattr(transformers, name, None) or getattr(
        importlib.import_module("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl"), name
    )


@pytest.mark.parametrize("case", image_cases()[::6], ids=lambda case: case.name)
def test_image_rows_and_grids_equal_the_qwen2_5_vl_image_processor(case) -> None:
    processor = qwen2_5_vl_image_processor_class()(min_pixels=case.min_pixels, max_pixels=case.max_pixels)
    patches = load_image_patches(case.data, ImageBudget(case.min_pixels, case.max_pixels), case.name)
    import io

    from PIL import ImageOps

    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(case.data)))
    expected = processor(images=[upright], return_tensors="np")
    assert patches.grid_thw == tuple(int(v) for v in expected["image_grid_thw"][0])
    torch.testing.assert_close(
        patches_to_pixel_values(patches), torch.from_numpy(expected["pixel_values"]), rtol=0, atol=1e-5
    )


def test_video_pixels_are_the_qwen2_vl_video_processors() -> None:
    """transformers maps qwen2_5_vl videos to Qwen2VLVideoProcessor, whose rows
    tests/vision/test_video_parity.py compares with ours (in the `make parity` venv: torchvision)."""
    source = importlib.import_module("transformers.models.auto.video_processing_auto")
    text = open(source.__file__).read()
    assert '("qwen2_5_vl", {"torchvision": "Qwen2VLVideoProcessor"})' in text
    pytest.importorskip(
        "torchvision",
        reason="transformers' video processor needs torchvision (not installed here); the Qwen2VLVideoProcessor "
        "row parity runs in `make parity` (tests/vision/test_video_parity.py)",
    )
    assert VIDEO_PROCESSOR_MAPPING_NAMES["qwen2_5_vl"]["torchvision"] == "Qwen2VLVideoProcessor"


class GridAndFpsVideoProcessor:
    """Stands in for the video processor's pixel work: preset grids and the sampled fps of each video."""

    merge_size = 2
    temporal_patch_size = 2

    def __init__(self) -> None:
        self.next: list[tuple[tuple[int, int, int], float]] = []

    def __call__(self, videos, **kwargs):
        assert len(videos) == len(self.next), "one preset grid per video"
        return {
            "video_grid_thw": torch.tensor([grid for grid, _ in self.next], dtype=torch.long).reshape(-1, 3),
            "video_metadata": [SimpleNamespace(sampled_fps=fps) for _, fps in self.next],
        }


class OracleProcessor(Qwen2_5_VLProcessor):
    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor":
            return type(argument)
        return super().check_argument_for_proper_class(argument_name, argument)


def test_ids_types_positions_and_seconds_equal_the_processor() -> None:
    tokenizer = load_tokenizer(None)
    info = TokenizerInfo.from_tokenizer(tokenizer)
    processor = OracleProcessor(
        image_processor=qwen2_5_vl_image_processor_class()(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer,
        video_processor=GridAndFpsVideoProcessor(),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    generator, rng, oracle = ConversationGenerator(seed=21), random.Random(4), RopeIndexOracle()
    num_fractional = 0
    for kind in ("single_image", "multi_image", "video", "mixed", "multi_turn") * 6:
        conversation = generator.generate(kind)
        # Each video as sampled from a source: (total frames, source fps) -> frames kept, seconds per tube.
        seconds = []
        for grid in conversation.video_grids:
            total, video_fps = rng.choice([(2 * grid[0], 4.0), (5 * grid[0], 29.97), (3 * grid[0], 2.5)])
            seconds.append(second_per_grid(2 * grid[0], total, video_fps))
        processor.video_processor.next = [
            (grid, 2 / s) for grid, s in zip(conversation.video_grids, seconds, strict=True)
        ]
        text = processor.apply_chat_template(oracle_messages(conversation), tokenize=False)
        images = [Image.new("RGB", size, color=(40, 90, 160)) for size in conversation.image_sizes]
        videos = [np.zeros((2 * g[0], 28, 28, 3), dtype=np.uint8) for g in conversation.video_grids]
        outputs = processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt")
        image_grids = [tuple(g) for g in outputs["image_grid_thw"].tolist()] if images else []
        grids = iter(image_grids), iter(conversation.video_grids)
        visual_grids = [next(grids[kind == "video"]) for kind in conversation.visual_kinds]
        config = RenderConfig(position_rule="transformers", tokens_per_second=2)
        sample = render_sample(
            conversation.messages, visual_grids, conversation.image_sizes, info, config,
            video_second_per_grid=seconds,
        )  # fmt: skip
        assert sample.input_ids.tolist() == outputs["input_ids"][0].tolist(), text
        assert sample.mm_token_type_ids.tolist() == outputs["mm_token_type_ids"][0].tolist(), text
        if seconds:
            expected_seconds = outputs["second_per_grid_ts"]
            torch.testing.assert_close(expected_seconds, torch.tensor(seconds, dtype=expected_seconds.dtype))
            num_fractional += any((2 * s) % 1 for s in seconds)
        processor_seconds = outputs["second_per_grid_ts"].tolist() if seconds else None  # float32 values
        expected = oracle(
            outputs["mm_token_type_ids"][0], image_grids, list(conversation.video_grids), processor_seconds
        )
        assert torch.equal(sample.position_ids[1:], expected), text
    assert num_fractional > 3


# (name, frames, source fps, (height, width), VideoBudget overrides): a clip sampled at the nominal
# 2 fps, one long enough that max_frames lowers the rate, one short enough that min_frames raises it.
REAL_CLIPS = [
    ("nominal-2fps", 40, 10, (56, 84), {}),
    ("max-frames-slows", 90, 10, (48, 64), {"max_frames": 6}),
    ("min-frames-speeds", 9, 25, (60, 44), {"min_frames": 6}),
]


@pytest.mark.parametrize("clip", REAL_CLIPS, ids=[clip[0] for clip in REAL_CLIPS])
def test_a_real_video_through_the_qwen2_5_vl_processor_equals_ours(clip) -> None:
    """A real encoded video end to end through transformers' Qwen2_5_VLProcessor with its real video
    processor (torchvision; `make parity`), fed the frames we sample and their source metadata: pixel
    rows, grid, `second_per_grid_ts` (from the dynamic rate) and ids equal ours, and the positions
    equal `get_rope_index` on the processor's own outputs."""
    try:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    except (ImportError, RuntimeError) as error:  # a torchvision built for another torch raises RuntimeError
        pytest.skip(f"transformers' video processor needs torchvision ({error}); run `make parity`")
    from qvltrain.vision import VideoBudget, video_to_patches
    from qvltrain.vision.sampling import num_sampled_frames, sample_frame_indices
    from qvltrain.vision.video_decode import DecordVideo
    from tests.vision.media import write_video

    name, num_frames, fps, size, overrides = clip
    max_video_tokens = 64
    budget = VideoBudget(
        min_pixels=4 * 784, max_pixels=32 * 784, total_pixels=int(max_video_tokens * 784 * 0.9), **overrides
    )
    data = write_video(num_frames, fps=fps, size=size)
    ours = video_to_patches(data, budget, name)

    video = DecordVideo(data, name)
    total = video.info.num_frames
    indices = sample_frame_indices(total, num_sampled_frames(total, video.info.fps, budget, name))
    frames = torch.cat(video.frames(indices)).numpy()
    tokenizer = load_tokenizer(None)
    processor = Qwen2_5_VLProcessor(
        image_processor=qwen2_5_vl_image_processor_class()(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(
            min_pixels=budget.min_pixels, max_pixels=budget.max_pixels,
            cap_pixels_per_frame=True, max_video_tokens=max_video_tokens,
        ),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )  # fmt: skip
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way does it move?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "left"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    metadata = {"total_num_frames": total, "fps": video.info.fps, "frames_indices": indices}
    outputs = processor(
        text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False, return_tensors="pt"
    )

    assert ours.grid_thw == tuple(outputs["video_grid_thw"][0].tolist())
    torch.testing.assert_close(
        patches_to_pixel_values(ours), outputs["pixel_values_videos"], rtol=0, atol=1e-5
    )
    seconds = float(outputs["second_per_grid_ts"][0])
    assert ours.second_per_grid_t == pytest.approx(seconds, rel=1e-6)
    if overrides:  # the rate moved off the nominal 2 fps: one tube spans other than one second
        assert abs(seconds - 1.0) > 0.1
    sample = render_sample(
        messages,
        [ours.grid_thw], [], TokenizerInfo.from_tokenizer(tokenizer),
        RenderConfig(position_rule="transformers", tokens_per_second=2),
        video_second_per_grid=[ours.second_per_grid_t],
    )  # fmt: skip
    assert sample.input_ids.tolist() == outputs["input_ids"][0].tolist()
    expected = RopeIndexOracle()(outputs["mm_token_type_ids"][0], [], [ours.grid_thw], [seconds])
    assert torch.equal(sample.position_ids[1:], expected)
