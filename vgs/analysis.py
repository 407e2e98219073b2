"""Chrupała 2019's analyses of a trained speech model (train.analysis=true), on validation captions:
speaker-ID probe and RSA (§3.7, Tables 3-4), and phoneme decoding from the speech encoder's
frame-level states (Table 5)."""

from __future__ import annotations

import numpy as np
import torch

from vgs.config import Config
from vgs.data.alignments import alignments, frame_labels
from vgs.data.batching import PairSplit
from vgs.data.featurisers import PRESETS, SAMPLE_RATE
from vgs.inference import embed_images, embed_pairs, embed_queries, to_device
from vgs.log import get_logger
from vgs.metrics import cosine_similarity, logistic_probe, rsa, speaker_probe, text_similarity
from vgs.tasks import Task, task_of

log = get_logger(__name__)


def analyses_apply(task: Task) -> bool:
    """Chrupała 2019's analyses need speech queries ranking images."""
    return task.image_queries == "speech"


@torch.no_grad()
def analyse(model, split: PairSplit, cfg: Config, device: torch.device, limit: int | None = None) -> dict[str, float]:
    """Chrupała 2019 §3.7 / Tables 3-4 on `limit` validation captions (train.analysis_captions; 0: all of
    them, as the paper): speaker-ID probe accuracy on the speech->image embeddings, and RSA of
    their similarities with the input (mean standardised MFCCs), the text (normalised Levenshtein)
    and the image: "the features of the image" (Table 4) where the image side is fixed features,
    else the learned image embedding (analysis_rsa_image_embedding is always the embedding); the
    same for the speech->text branch where the family has one (analysis_s2t_*), and the image
    space's own RSA with the MFCCs and the text (Table 4's last row)."""
    model.eval()
    limit = cfg.train.analysis_captions if limit is None else limit
    captions = np.random.default_rng(0).permutation(len(split))[: limit or len(split)]
    captions.sort()
    queries = embed_queries(model, split, cfg, device, captions, beam=1)
    image_rows = split.image_of_caption[captions]
    embedded = cosine_similarity(embed_images(model, split, cfg, device, image_rows))
    fixed = split.image_store.feature_dim  # precomputed features: the paper's image space
    images = cosine_similarity(split.pixels(image_rows, cfg.data.image_crop).numpy()) if fixed else embedded
    spaces = {
        "mfcc": cosine_similarity(np.stack([split.speech.normalised(split.utt_ids[c]).mean(0) for c in captions])),
        "text": text_similarity([split.transcripts[c] for c in captions]),
        "image": images,
        "image_embedding": embedded,
    }
    out = {
        "analysis_speaker_acc": speaker_probe(queries, [split.speakers[c] for c in captions]),
        **{f"analysis_rsa_{k}": rsa(cosine_similarity(queries), v) for k, v in spaces.items()},
        "analysis_image_rsa_mfcc": rsa(images, spaces["mfcc"]),
        "analysis_image_rsa_text": rsa(images, spaces["text"]),
    }
    if task_of(cfg.model).ranks_speech_text(cfg.model) and len(split.text_captions):
        with_text = np.intersect1d(captions, split.text_captions)
        if len(with_text) > 2:
            keep = np.searchsorted(captions, with_text)
            s2t = cosine_similarity(embed_pairs(model, split, cfg, device, with_text)[0])
            out.update({f"analysis_s2t_rsa_{k}": rsa(s2t, v[np.ix_(keep, keep)]) for k, v in spaces.items()})
    return out


def state_times(n: int, cfg: Config) -> np.ndarray:
    """Centre (seconds into the recording) of each of the encoder's first n states: state j of
    the conv front end (kernel k, stride s) covers MFCC frames j*s .. j*s+k-1, and MFCC frame i
    is centred at i * hop (torchaudio's centred frames)."""
    hop = PRESETS[cfg.data.features]["hop"] / SAMPLE_RATE
    s = cfg.model.speech
    return (np.arange(n) * s.conv_stride + (s.conv_kernel - 1) / 2) * hop


@torch.no_grad()
def speech_state_frames(
    model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray
) -> list[np.ndarray]:
    """Each caption's frame-level states of the model's speech encoder (model.speech_states)."""
    model.eval()
    out = []
    bs = cfg.train.eval_batch_size
    for a in range(0, len(captions), bs):
        idx = captions[a : a + bs]
        batch = to_device(split.batch(idx, cfg.data.image_crop, images=False), device)
        states, lengths = model.speech_states(batch["speech"], batch["lengths"])
        out += [states[b, : int(lengths[b])].float().cpu().numpy() for b in range(len(idx))]
    return out


def labelled_frames(
    frames: list[np.ndarray], times: list[np.ndarray], segs: list, cap: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """The frames that fall inside a phoneme, with its label; at most `cap` of them (a seeded sample)."""
    xs, ys = [], []
    for f, t, s in zip(frames, times, segs):
        for row, label in zip(f, frame_labels(s, t)):
            if label is not None:
                xs.append(row)
                ys.append(label)
    keep = np.sort(rng.permutation(len(ys))[: cap or len(ys)])  # 0: every frame
    return np.stack([xs[i] for i in keep]), [ys[i] for i in keep]


def phoneme_decoding(
    trained,
    untrained,
    split: PairSplit,
    cfg: Config,
    device: torch.device,
    root,
    limit: int | None = None,
    cap: int | None = None,
) -> dict[str, float]:
    """Chrupała 2019 Table 5: accuracy of an L2-penalised logistic regression decoding the phoneme at
    each frame from the input MFCCs (analysis_phoneme_acc_mfcc), from the speech encoder of the
    same configuration at its random initialisation (analysis_phoneme_acc_random) and from the
    trained encoder (analysis_phoneme_acc); trained on half of (at most `limit`) validation
    utterances (train.phoneme_utterances; the paper 2,500 + 2,500), tested on the other half, at
    most `cap` frames each (train.phoneme_frames; 0: all).  Empty for a corpus without phoneme
    timings (the built-in corpus has them, a real one has data.alignments: vgs.data.alignments), and
    a warning says so."""
    limit = cfg.train.phoneme_utterances if limit is None else limit
    cap = cfg.train.phoneme_frames if cap is None else cap
    captions = np.sort(np.random.default_rng(1).permutation(len(split))[: limit or len(split)])
    segs = alignments(root, [split.utt_ids[c] for c in captions], source=cfg.data.alignments)
    if segs is None or len(captions) < 4:
        log.warning(
            f"phoneme decoding (Chrupała 2019 Table 5) skipped: the corpus at {root} has no phoneme timings "
            f"(the built-in corpus has them; for a real corpus pass a forced aligner's output as "
            f"data.alignments: Montreal Forced Aligner TextGrids or Gentle JSONs)"
        )
        return {}
    segs = [segs[split.utt_ids[c]] for c in captions]
    half = len(captions) // 2
    hop = PRESETS[cfg.data.features]["hop"] / SAMPLE_RATE
    representations = {
        "mfcc": [split.speech.normalised(split.utt_ids[c]) for c in captions],
        "random": speech_state_frames(untrained, split, cfg, device, captions),
        "": speech_state_frames(trained, split, cfg, device, captions),
    }
    out = {}
    for name, frames in representations.items():
        times = [np.arange(len(f)) * hop if name == "mfcc" else state_times(len(f), cfg) for f in frames]
        rng = np.random.default_rng(2)
        train = labelled_frames(frames[:half], times[:half], segs[:half], cap, rng)
        test = labelled_frames(frames[half:], times[half:], segs[half:], cap, rng)
        out["analysis_phoneme_acc" + (f"_{name}" if name else "")] = logistic_probe(*train, *test, steps=100)
    return out
