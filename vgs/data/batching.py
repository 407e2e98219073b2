"""Batches of (speech, image) pairs from the feature stores."""

from __future__ import annotations

import numpy as np
import torch

from vgs.data.prepare import Prepared
from vgs.data.text import Vocabulary, text_of

PIXEL_MEAN, PIXEL_STD = 0.5, 0.25
WINDOW_BATCHES = 16  # captions are length-sorted within windows of this many batches


def length_sorted_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Cut `order` into batches, sorting by length within windows (less padding, still shuffled)."""
    batches = []
    window = batch_size * WINDOW_BATCHES
    for w in range(0, len(order), window):
        part = order[w : w + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    return batches


def encode_texts(utts, text_source: str | None, vocab: Vocabulary | None) -> list[list[int] | None]:
    """Character ids (ending in </s>) per caption; None where it has no text of that source."""
    if text_source is None or vocab is None:
        return [None] * len(utts)
    return [vocab.encode(t) if (t := text_of(u, text_source)) else None for u in utts]


def shuffled_without_singles(batches: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    batches = [b for b in batches if len(b) > 1]  # a lone pair has no negatives
    return [batches[i] for i in rng.permutation(len(batches))]


def standardise_pixels(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> the image encoder's (B, 3, H, W) standardised float input."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    return x.sub_(PIXEL_MEAN).div_(PIXEL_STD).contiguous()


def centre_crop(image: np.ndarray, crop: int) -> np.ndarray:
    """The middle crop x crop pixels of a (S, S, 3) image (evaluation's view of it)."""
    size = image.shape[0]
    top = (size - crop) // 2
    return image[top : top + crop, top : top + crop]


class PairSplit:
    """One split's captions, their images, their text (for the text families), and tensors for
    batches of them."""

    decoded = False  # True on pipe-seq's copy whose texts are the recognizer's output (vgs.tasks.pipeline)

    def __init__(
        self,
        data: Prepared,
        split: str,
        text_source: str | None = None,
        vocab: Vocabulary | None = None,
        images: set[str] | None = None,
    ):
        """images: only the captions of these images (a sample of the split)."""
        self.speech, self.image_store = data.speech, data.images
        self.per_utterance = data.speech_norm == "utterance"
        utts = [u for u in data.corpus.split(split) if u.id in data.speech.index]  # over-long ones were dropped
        if images is not None:
            utts = [u for u in utts if u.image in images]
        if not utts:
            raise ValueError(f"split '{split}' of {data.corpus.root} has no usable utterances")
        self.utt_ids = [u.id for u in utts]
        self.speakers = [u.speaker for u in utts]
        self.transcripts = [text_of(u, "transcript") or "" for u in utts]
        self.image_names = list(dict.fromkeys(u.image for u in utts))
        position = {name: i for i, name in enumerate(self.image_names)}
        self.image_of_caption = np.array([position[u.image] for u in utts])
        self.image_rows = np.array([self.image_store.index[n] for n in self.image_names])
        self.lengths = np.array([data.speech.lengths[data.speech.index[u]] for u in self.utt_ids])
        self.text_source = text_source
        self.texts = encode_texts(utts, text_source, vocab)
        # Captions whose text the text-supervised tasks may train on (textual downsampling).
        keep = data.text_ids if split == "train" else None
        self.text_captions = np.array(
            [i for i, (u, t) in enumerate(zip(utts, self.texts)) if t is not None and (keep is None or u.id in keep)],
            dtype=np.int64,
        )

    def __len__(self) -> int:
        return len(self.utt_ids)

    def epoch_batches(
        self,
        rng: np.random.Generator,
        batch_size: int,
        captions_per_image: int = 0,
        allowed: np.ndarray | None = None,
        any_images: bool = False,
    ) -> list[np.ndarray]:
        """Caption-index batches for one epoch; no batch holds two captions of one image.

        Captions are dealt in rounds (one caption of every image per round), each round is
        sorted by length within windows of 16 batches (less padding), cut into batches, and
        the batches of all rounds are shuffled.  any_images (train.negatives=batch): the chosen
        captions in one shuffled order instead, as the papers draw them; a batch may then hold
        two captions of one image."""
        by_image: list[list[int]] = [[] for _ in self.image_names]
        captions = range(len(self)) if allowed is None else allowed
        for c in captions:
            by_image[self.image_of_caption[c]].append(c)
        by_image = [cs for cs in by_image if cs]
        if not by_image:
            return []
        chosen = [rng.permutation(cs)[: captions_per_image or len(cs)] for cs in by_image]
        if any_images:
            order = rng.permutation(np.concatenate(chosen))
            return shuffled_without_singles(length_sorted_batches(order, self.lengths, batch_size), rng)
        batches = []
        for r in range(max(len(c) for c in chosen)):
            round_ = np.array([chosen[i][r] for i in rng.permutation(len(chosen)) if len(chosen[i]) > r])
            batches += length_sorted_batches(round_, self.lengths, batch_size)
        return shuffled_without_singles(batches, rng)

    def speech_batch(self, idx: np.ndarray, min_frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
        frames = [self.speech.normalised(self.utt_ids[i], self.per_utterance) for i in idx]
        lengths = torch.tensor([len(f) for f in frames])
        out = np.zeros((len(frames), max(int(lengths.max()), min_frames), self.speech.dim), np.float32)
        for k, f in enumerate(frames):
            out[k, : len(f)] = f
        return torch.from_numpy(out), lengths

    def pixels(self, image_idx: np.ndarray, crop: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Images as standardised (B, 3, crop, crop); random crop + flip when rng is given, else centre crop.
        With precomputed image features: their (B, D) vectors (no augmentation)."""
        if self.image_store.feature_dim:
            return torch.from_numpy(np.ascontiguousarray(self.image_store.array[self.image_rows[image_idx]]))
        raw = self.image_store.array[self.image_rows[image_idx]]  # (B, S, S, 3) uint8
        size = raw.shape[1]
        if crop > size:
            raise ValueError(f"data.image_crop ({crop}) is larger than data.image_resize ({size})")
        out = np.empty((len(raw), crop, crop, 3), np.uint8)
        for k, img in enumerate(raw):
            if rng is None:
                top = left = (size - crop) // 2
            else:
                top, left = rng.integers(0, size - crop + 1, size=2)
            patch = img[top : top + crop, left : left + crop]
            out[k] = patch[:, ::-1] if rng is not None and rng.random() < 0.5 else patch
        return standardise_pixels(out)

    def text_batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [self.texts[i] for i in idx]
        if any(s is None for s in seqs):
            raise ValueError("a text batch holds captions without text")
        lengths = torch.tensor([len(s) for s in seqs])
        out = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)  # 0 = <pad>
        for k, s in enumerate(seqs):
            out[k, : len(s)] = torch.tensor(s)
        return out, lengths

    def batch(
        self,
        idx: np.ndarray,
        crop: int,
        rng: np.random.Generator | None = None,
        text: bool = False,
        images: bool = True,
    ) -> dict:
        speech, lengths = self.speech_batch(idx)
        image_ids = self.image_of_caption[idx]
        out = {"speech": speech, "lengths": lengths, "image_ids": torch.from_numpy(image_ids)}
        if images:
            out["pixels"] = self.pixels(image_ids, crop, rng)
        if text:
            out["text"], out["text_lengths"] = self.text_batch(idx)
        return out


def image_sample(split: PairSplit, images: int, seed: int) -> set[str]:
    """A fixed sample of `images` of the split's images (all of them when it has no more)."""
    if images >= len(split.image_names):
        return set(split.image_names)
    chosen = np.random.default_rng(seed).choice(len(split.image_names), size=images, replace=False)
    return {split.image_names[i] for i in chosen}


class SpeechTextSplit(PairSplit):
    """Speech/text pairs without images: the NON-ALIGNED speech/text data of Chrupała 2019 (LibriSpeech,
    or a second built-in corpus).  Each caption is its own match, so no pairs are masked."""

    def __init__(self, corpus, speech, split: str, text_source: str, vocab: Vocabulary, speech_norm: str = "corpus"):
        utts = [u for u in corpus.split(split) if u.id in speech.index]
        self.per_utterance = speech_norm == "utterance"
        if not utts:
            raise ValueError(f"split '{split}' of {corpus.root} has no usable utterances")
        self.speech, self.image_store, self.text_source = speech, None, text_source
        self.utt_ids = [u.id for u in utts]
        self.image_names = []
        self.image_of_caption = np.arange(len(utts))
        self.lengths = np.array([speech.lengths[speech.index[u]] for u in self.utt_ids])
        self.texts = encode_texts(utts, text_source, vocab)
        self.text_captions = np.array([i for i, t in enumerate(self.texts) if t is not None], dtype=np.int64)

    def epoch_batches(
        self,
        rng: np.random.Generator,
        batch_size: int,
        captions_per_image: int = 0,
        allowed: np.ndarray | None = None,
        any_images: bool = False,  # no images here: every batch is drawn this way
    ) -> list[np.ndarray]:
        order = rng.permutation(self.text_captions if allowed is None else allowed)
        return shuffled_without_singles(length_sorted_batches(order, self.lengths, batch_size), rng)
