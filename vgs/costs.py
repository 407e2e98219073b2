"""What a trained configuration costs to use, for recall against size and speed (the sweep's Pareto
sets): its trainable and total parameters, a frozen front-end's upstream counted in the total, and
the time its speech side takes per second of speech on its device, from the recording on: the
features (MFCCs, or a frozen SSL model's states) and the network's speech encoder."""

from __future__ import annotations

import time

import numpy as np
import torch

from vgs.config import Config
from vgs.data.batching import PairSplit
from vgs.data.featurisers import SAMPLE_RATE, load_audio
from vgs.data.prepare import Prepared
from vgs.data.records import CorpusError
from vgs.log import get_logger
from vgs.models.ssl import cached, count_parameters, featuriser_for, upstream_parameters

log = get_logger(__name__)

TIMED_RECORDINGS = 8  # validation recordings timed, encoded in one batch (a first, short call warms up)


def parameter_counts(model: torch.nn.Module, cfg: Config) -> dict[str, float]:
    """params_trainable and params_total (a cached front-end's upstream is not in the model: added)."""
    trainable, total = count_parameters(model)
    if cached(cfg.model.speech.frontend):
        total += upstream_parameters(cfg.model.speech.frontend)
    return {"params_trainable": float(trainable), "params_total": float(total)}


@torch.no_grad()
def encoding_speed(model, cfg: Config, data: Prepared, split: PairSplit, device: torch.device) -> dict[str, float]:
    """encode_ms_per_s: milliseconds of featurising (one recording at a time, as a store is built)
    and encoding (one batch, as evaluation does) per second of speech, over the first
    TIMED_RECORDINGS recordings of `split`.  Empty for a network without speech, and where the
    recordings cannot be read (a home carried with its stores only, no soundfile): said, not fatal."""
    if not hasattr(model, "speech_states"):
        return {}
    featuriser = featuriser_for(cfg)
    audio = {u.id: u.audio for u in data.corpus.utterances}
    try:
        waves = [load_audio(audio[u]) for u in split.utt_ids[:TIMED_RECORDINGS]]
    except (ImportError, CorpusError) as e:
        log.warning(f"encode_ms_per_s not measured: the recordings cannot be read ({e})")
        return {}
    per_utterance = data.speech_norm == "utterance"
    was_training = model.training
    model.eval()

    def encode(batch: list) -> None:
        frames = [data.speech.standardise(featuriser(w), per_utterance) for w in batch]
        x = np.zeros((len(frames), max(max(len(f) for f in frames), 6), frames[0].shape[1]), np.float32)
        for k, f in enumerate(frames):
            x[k, : len(f)] = f
        model.speech_states(torch.from_numpy(x).to(device), torch.tensor([len(f) for f in frames]))
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    encode(waves[:1])  # lazy loads (an SSL featuriser's model), kernel choice
    start = time.perf_counter()
    encode(waves)
    seconds = time.perf_counter() - start
    model.train(was_training)
    return {"encode_ms_per_s": 1000 * seconds / (sum(len(w) for w in waves) / SAMPLE_RATE)}
