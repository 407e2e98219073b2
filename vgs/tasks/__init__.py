"""The model families, one Task each, by their model.family name.

Adding a family: a file here with a Task subclass (see base.py for what it declares) and its
line in TASKS.  `vgs.tasks.factory.build_model` and the training loop then know it.
"""

from __future__ import annotations

from vgs.config import ConfigError, ModelConfig, current_key
from vgs.tasks.base import OBJECTIVES, Needs, Run, Sizes, Task, refuse_foreign_keys
from vgs.tasks.multitask import MultitaskMatching, MultitaskRecognition
from vgs.tasks.pipeline import Pipeline, SequentialPipeline
from vgs.tasks.recognition import Recognition
from vgs.tasks.speech_image import SpeechImage
from vgs.tasks.text_image import TextImage
from vgs.tasks.three_task import ThreeTask

TASKS: dict[str, Task] = {
    t.family: t
    for t in (
        SpeechImage("coembed"),
        SpeechImage("speech-image"),
        TextImage(),
        Recognition("asr", "transcript"),
        Recognition("slt", "translation"),
        Pipeline("pipe-ind"),
        SequentialPipeline(),
        MultitaskRecognition("mtl-transcribe", "transcript"),
        MultitaskRecognition("mtl-translate", "translation"),
        MultitaskMatching(),
        ThreeTask(),
    )
}


def task_of(cfg: ModelConfig) -> Task:
    """The Task of a model configuration; an unknown family is a ValueError naming the known ones."""
    if cfg.family not in TASKS:
        raise ValueError(f"unknown model family '{cfg.family}'; known: {', '.join(TASKS)}")
    return TASKS[cfg.family]


def check_family_keys(cfg: ModelConfig, keys, families: set[str] | None = None) -> None:
    """Refuse model.* keys (given by the user) that the configuration's family does not read;
    with `families` (a sweep whose cells choose the family), keys that none of them reads."""
    try:
        tasks = [task_of(cfg)] if families is None else [task_of(ModelConfig(family=f)) for f in sorted(families)]
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if len(tasks) == 1:
        refuse_foreign_keys(tasks[0], keys)
        return
    unread = sorted(k for k in keys if k.startswith("model.") and not any(t.reads(current_key(k)) for t in tasks))
    if unread:
        raise ConfigError(
            f"{', '.join(unread)}: not a setting of any of this sweep's families ({', '.join(t.family for t in tasks)})"
        )


__all__ = ["OBJECTIVES", "Needs", "Run", "Sizes", "Task", "TASKS", "task_of", "check_family_keys"]
