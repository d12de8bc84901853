"""Cutting overlong samples without breaking them.

A sample longer than `max_length` is cut at the last turn boundary that fits AND lies after its last
visual block: every visual block is kept whole, so the sample's pixel rows and grids stay valid as
the vision side produced them ("image features and image tokens do not match" cannot happen).
Samples that cannot be cut that way are counted skips.
"""

from __future__ import annotations

from qvltrain.text.errors import SkipSample
from qvltrain.text.sample import RenderedSample


def truncate_at_turn_boundary(sample: RenderedSample, max_length: int) -> RenderedSample:
    """`sample` if it fits, else its longest fitting prefix ending at a turn after the last visual block.

    Raises SkipSample with reason "visual_tokens_exceed_length" (the visual blocks alone do not fit),
    "no_turn_boundary_fits" (no legal cut point fits) or "no_trained_tokens" (the prefix trains nothing).
    """
    if len(sample) <= max_length:
        return sample
    if sample.num_visual_tokens > max_length:
        raise SkipSample(
            "visual_tokens_exceed_length",
            f"{sample.num_visual_tokens} visual tokens do not fit in max_length {max_length}",
        )
    last_visual_end = max((end for _, end in sample.visual_spans), default=0)
    cut_points = [end for end in sample.turn_ends if last_visual_end <= end <= max_length and end > 0]
    if not cut_points:
        raise SkipSample(
            "no_turn_boundary_fits",
            f"{len(sample)} tokens; no turn ends between the last visual block (token {last_visual_end}) "
            f"and max_length {max_length}",
        )
    truncated = sample.prefix(max(cut_points))
    if truncated.num_loss_tokens == 0:
        raise SkipSample("no_trained_tokens", f"the {len(truncated)}-token prefix that fits trains nothing")
    return truncated
