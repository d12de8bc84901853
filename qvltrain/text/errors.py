"""The counted-skip exception shared by the text side."""


class SkipSample(ValueError):
    """A sample that cannot be trained on; the data pipeline counts it by `reason` and moves on.

    Reasons raised by qvltrain.text: "degenerate_box", "flipped_box", "box_image_unknown",
    "unknown_content_type", "unknown_role", "visual_tokens_exceed_length", "no_turn_boundary_fits",
    "no_trained_tokens"; by qvltrain.data: "image_size_mismatch".
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
