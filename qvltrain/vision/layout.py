"""Numbers of the Qwen2-VL patch layout, shared by the CPU and device sides."""

PATCH_SIZE = 14
"""Side of one ViT patch in pixels."""
MERGE_SIZE = 2
"""The merger folds MERGE_SIZE x MERGE_SIZE neighbouring patches into one LLM token."""
TEMPORAL_PATCH_SIZE = 2
"""Frames per patch (Conv3d kernel depth); an image is two identical frames."""
FACTOR = PATCH_SIZE * MERGE_SIZE
"""Resized sides are multiples of this (28)."""
ROW_WIDTH = 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE * PATCH_SIZE
"""Values per patch row the patch embedding takes (1176), ordered [C=3][t=2][14][14]."""
MAX_ASPECT_RATIO = 200
"""Longer side / shorter side above which an input is refused (as transformers refuses it)."""

# OpenAI CLIP statistics, on the 0..1 scale (release preprocessor_config.json).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
