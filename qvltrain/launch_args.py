"""Command-line plumbing shared by the entry points in launch/."""

from __future__ import annotations

import os


def strip_launcher_args(argv: list[str]) -> list[str]:
    """Remove `--local_rank=N` / `--local_rank N` that the DeepSpeed launcher appends.

    Hydra would reject it as an override; the value is kept in the LOCAL_RANK environment variable,
    where DeepSpeed and our process-group set-up read it.
    """
    kept: list[str] = []
    skip_next = False
    for index, arg in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        for flag in ("--local_rank", "--local-rank"):
            if arg == flag and index + 1 < len(argv):
                os.environ.setdefault("LOCAL_RANK", argv[index + 1])
                skip_next = True
                break
            if arg.startswith(flag + "="):
                os.environ.setdefault("LOCAL_RANK", arg.split("=", 1)[1])
                break
        else:
            kept.append(arg)
    return kept
