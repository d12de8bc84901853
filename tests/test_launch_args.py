import os

from qvltrain.launch_args import strip_launcher_args


def test_strips_equals_form_and_keeps_hydra_overrides(monkeypatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    argv = ["launch/train.py", "--local_rank=1", "+stage=vit_pretrain", "train.max_steps=3"]
    assert strip_launcher_args(argv) == ["launch/train.py", "+stage=vit_pretrain", "train.max_steps=3"]
    assert os.environ["LOCAL_RANK"] == "1"


def test_strips_space_form_and_dash_spelling(monkeypatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    argv = ["train.py", "+stage=instruct", "--local-rank", "3", "logger=none"]
    assert strip_launcher_args(argv) == ["train.py", "+stage=instruct", "logger=none"]
    assert os.environ["LOCAL_RANK"] == "3"


def test_launcher_value_does_not_override_environment(monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert strip_launcher_args(["train.py", "--local_rank=1"]) == ["train.py"]
    assert os.environ["LOCAL_RANK"] == "0"
