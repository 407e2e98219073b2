"""three-task (Chrupała et al. 2019, Chrupała 2019 §3): shared speech and text encoders, task encoders
for speech/image, speech/text and text/image, any of the last two ablated (model.three.* = -1).
An epoch lasts until the objective with the fewest batches runs out; data.speech_text=nonaligned
takes the speech/text objective's data from a second corpus."""

from __future__ import annotations

from vgs.config import ModelConfig
from vgs.models.families import ThreeTask as ThreeTaskNet
from vgs.models.families import three_task_objectives
from vgs.tasks.base import Task


class ThreeTask(Task):
    family = "three-task"
    sections = ("speech", "three", "text.embed", "image")
    network = ThreeTaskNet
    text = "transcript"
    epoch_rule = "shortest"
    nonaligned_speech_text = True

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return three_task_objectives(cfg.three)

    def model_name(self, cfg: ModelConfig) -> str:
        t = cfg.three
        cells = [t.speech_layers, t.text_layers, t.s2i, t.s2t, t.t2s, t.t2i]
        return "three-task-" + ".".join("x" if v < 0 else str(v) for v in cells) + f"A{cfg.latent}"
