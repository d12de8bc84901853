"""Plain-text JSONL -> text shards (no media).

    python -m data_recipes.text_jsonl --jsonl corpus.jsonl --out data/text [--template plain]

Input: one JSON object per line, either {"text": "a document"} (one assistant message, so it is
trained under both templates) or {"messages": [{"role": "user", "content": "Q"},
{"role": "assistant", "content": "A"}]} (roles system/user/assistant, string content)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from qvltrain.shards.recipe_cli import add_output_arguments, add_token_arguments, run_recipe
from qvltrain.shards.recipe_inputs import conversation_messages, read_json_records
from qvltrain.shards.recipe_tools import BadRecord, RecipeSample


@dataclass
class TextConverter:
    text_field: str = "text"

    def __call__(self, record: dict) -> RecipeSample:
        if not isinstance(record, dict):
            raise BadRecord("invalid_record", f"expected an object, got {type(record).__name__}")
        if "messages" in record:
            messages = conversation_messages(record["messages"], "<image>", [])
        else:
            text = record.get(self.text_field)
            if not isinstance(text, str) or not text.strip():
                raise BadRecord("empty_text", f"needs a non-empty '{self.text_field}' or 'messages'")
            messages = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
        meta = {"image_sizes": []}
        if "id" in record:
            meta["id"] = str(record["id"])
        return RecipeSample({"task": "text", "messages": messages, "meta": meta})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--jsonl", required=True, help="input .jsonl (a .json array works too)")
    parser.add_argument("--text-field", default="text", help="field holding a document's text")
    parser.add_argument("--source", default="text", help="meta.source of every sample")
    add_output_arguments(parser)
    add_token_arguments(parser, images=False)
    args = parser.parse_args(argv)
    run_recipe(args, read_json_records(args.jsonl), TextConverter(args.text_field))


if __name__ == "__main__":
    main()
