"""Batched inference over a split, sharded across the workers of a multi-GPU trial and gathered
back in order: speech and image embeddings, speech/text pairs, decoded captions.  Below the Tasks
(vgs.tasks.pipeline decodes its training speech here) and above the models' own forward passes."""

from __future__ import annotations

import numpy as np
import torch

from vgs import distributed
from vgs.config import Config
from vgs.data.batching import PairSplit


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def batches_in_order(split: PairSplit, captions: np.ndarray, bs: int):
    """Caption index batches sorted by speech length (less padding)."""
    order = captions[np.argsort(split.lengths[captions], kind="stable")]
    for a in range(0, len(order), bs):
        yield order[a : a + bs]


def my_caption_batches(split: PairSplit, captions: np.ndarray, cfg: Config) -> tuple[int, list]:
    """This rank's shard of `captions`: its size, and its length-sorted evaluation batches, each as
    (rows of the shard's output it fills, caption indices)."""
    mine = distributed.shard(captions)
    position = {c: k for k, c in enumerate(mine)}
    return len(mine), [
        ([position[c] for c in idx], idx) for idx in batches_in_order(split, mine, cfg.train.eval_batch_size)
    ]


def embed_queries(
    model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray, beam: int = 1, text: bool = False
) -> np.ndarray:
    """Joint-space embeddings of the captions' queries (speech, text or decoded speech); `text`:
    whether the queries are the captions' text (a Task whose image_queries is "text")."""
    n, batches = my_caption_batches(split, captions, cfg)
    out = np.empty((n, cfg.model.latent), np.float32)
    for rows, idx in batches:
        batch = to_device(split.batch(idx, cfg.data.image_crop, images=False, text=text), device)
        out[rows] = model.query(batch, beam).float().cpu().numpy()
    return distributed.gather_rows(out, len(captions))


def embed_decoded(
    model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray, hyps: dict[int, list[int]]
) -> np.ndarray:
    """Joint-space embeddings of the captions' speech as already decoded (`hyps`: caption ->
    characters), for families whose queries are the recognizer's text."""
    n, batches = my_caption_batches(split, captions, cfg)
    out = np.empty((n, cfg.model.latent), np.float32)
    for rows, idx in batches:
        out[rows] = model.query_decoded([hyps[int(c)] for c in idx], device).float().cpu().numpy()
    return distributed.gather_rows(out, len(captions))


def embed_images(model, split: PairSplit, cfg: Config, device: torch.device, rows: np.ndarray) -> np.ndarray:
    mine = distributed.shard(rows)
    out = np.empty((len(mine), cfg.model.latent), np.float32)
    bs = cfg.train.eval_batch_size
    for a in range(0, len(mine), bs):
        part = mine[a : a + bs]
        out[a : a + len(part)] = model.image(split.pixels(part, cfg.data.image_crop).to(device)).float().cpu().numpy()
    return distributed.gather_rows(out, len(rows))


def embed_pairs(
    model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(speech, text) embeddings of the captions from model.match (speech/text retrieval)."""
    n, batches = my_caption_batches(split, captions, cfg)
    speech = np.empty((n, cfg.model.latent), np.float32)
    text = np.empty_like(speech)
    for rows, idx in batches:
        s_emb, t_emb = model.match(to_device(split.batch(idx, cfg.data.image_crop, images=False, text=True), device))
        speech[rows], text[rows] = s_emb.float().cpu().numpy(), t_emb.float().cpu().numpy()
    return distributed.gather_rows(speech, len(captions)), distributed.gather_rows(text, len(captions))


def decode_captions(
    model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray, beam: int
) -> list[list[int]]:
    """Character ids decoded from each caption's speech (ASR/SLT), in the order of `captions`."""
    n, batches = my_caption_batches(split, captions, cfg)
    hyps: list = [None] * n
    for rows, idx in batches:
        batch = to_device(split.batch(idx, cfg.data.image_crop, images=False), device)
        for row, h in zip(rows, model.transcribe(batch, beam)):
            hyps[row] = h
    return distributed.gather_objects(hyps, len(captions))
