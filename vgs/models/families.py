"""The networks of the text-supervised families of Higy et al. 2020 (§3.1) and Chrupała 2019's three-task
model, beside Mortazavi 2020's speech-image co-embedding (models/coembed.py).

These are the computations only; what a family trains when, on which data, how it is evaluated
and which metric selects its best epoch is its Task (vgs/tasks/).  What every network provides
(objectives, objective, query, image, transcribe, match, speech_states) is typed in
vgs/models/contract.py.  Objectives: s2i (speech-image hinge), t2i (text-image hinge), s2t
(speech-text hinge), asr (ASR/SLT cross-entropy).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vgs.config import ModelConfig
from vgs.data.text import EOS, PAD
from vgs.losses import Loss, contrastive
from vgs.models.blocks import BiGRU, ConvFrontEnd, attention, length_mask
from vgs.models.image import ImageEncoder
from vgs.models.seq2seq import AttentionDecoder
from vgs.models.text import TextEncoder


def _text_in(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return batch["text"], batch["text_lengths"]


class Family(nn.Module):
    objectives: tuple[str, ...] = ()


class SpeechBranch(nn.Module):
    """Task-specific BiGRU layers (0 = none) + attention (vectorial or scalar) + L2 into the joint space."""

    def __init__(
        self,
        in_size: int,
        latent: int,
        layers: int,
        attention_hidden: int,
        hidden: int = 0,
        bidirectional: bool = True,
        attention_kind: str = "vectorial",
    ):
        super().__init__()
        # hidden: units per direction (default: N/2 per direction, or N forward-only)
        self.gru = BiGRU(in_size, hidden or (latent // 2 if bidirectional else latent), layers, bidirectional)
        self.project = nn.Linear(self.gru.out_size, latent) if self.gru.out_size != latent else nn.Identity()
        self.attention = attention(attention_kind, latent, attention_hidden)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.project(self.gru(h, lengths))
        return F.normalize(self.attention(h, length_mask(lengths.to(h.device), h.size(1))), dim=-1)


class SharedSpeech(nn.Module):
    """Conv front end + shared BiGRU layers; returns the state sequence and its lengths."""

    def __init__(self, cfg: ModelConfig, input_dim: int, hidden: int, layers: int, bidirectional: bool = True):
        super().__init__()
        self.front = ConvFrontEnd(cfg.speech, input_dim)
        self.gru = BiGRU(self.front.out_size, hidden, layers, bidirectional)
        self.out_size = self.gru.out_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, out_len = self.front(x, lengths)
        return self.gru(y, out_len), out_len


class TextImage(Family):
    """text-image (§3.1.2): text at test time too; the high estimate for the core models."""

    objectives = ("t2i",)

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        self.text = TextEncoder(cfg.text, vocab_size, cfg.latent)
        self.image = ImageEncoder(cfg.image, cfg.latent, image_dim)

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        return {"t2i": contrastive(self.text(*_text_in(batch)), self.image(batch["pixels"]), loss, batch["image_ids"])}

    def query(self, batch: dict, beam: int = 1) -> torch.Tensor:
        return self.text(*_text_in(batch))


class Recognizer(Family):
    """ASR (transcripts) or SLT (translations), §3.1.3: conv + BiGRU encoder, attention decoder."""

    objectives = ("asr",)

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        self.encoder = SharedSpeech(cfg, input_dim, cfg.asr.hidden, cfg.asr.encoder_layers)
        self.decoder = AttentionDecoder(cfg.asr, vocab_size, self.encoder.out_size)

    def speech_states(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(speech, lengths)

    def memory(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        h, lengths = self.encoder(batch["speech"], batch["lengths"])
        return h, length_mask(lengths.to(h.device), h.size(1))

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        return {"asr": self.decoder.loss(*self.memory(batch), batch["text"])}

    def transcribe(self, batch: dict, beam: int = 1) -> list[list[int]]:
        return self.decoder.beam_search(*self.memory(batch), beam=beam)


class Pipeline(Family):
    """pipe-ind / pipe-seq (§3.1.3, §3.2.2): an ASR/SLT recognizer and a text-image model that
    ranks images by the recognizer's output."""

    objectives = ("asr", "t2i")

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        self.recognizer = Recognizer(cfg, input_dim, image_dim, vocab_size)
        self.text_image = TextImage(cfg, input_dim, image_dim, vocab_size)
        self.image = self.text_image.image

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        part = self.recognizer if objective == "asr" else self.text_image
        return part.objective(batch, objective, loss)

    def transcribe(self, batch: dict, beam: int = 1) -> list[list[int]]:
        return self.recognizer.transcribe(batch, beam)

    def speech_states(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.recognizer.speech_states(speech, lengths)

    def query(self, batch: dict, beam: int = 1) -> torch.Tensor:
        """Speech -> decoded characters -> text encoder: evaluation is always from speech."""
        return self.query_decoded(self.transcribe(batch, beam), batch["speech"].device)

    def query_decoded(self, hyps: list[list[int]], device: torch.device) -> torch.Tensor:
        """The joint-space queries of already decoded speech (evaluation decodes once for both
        the queries and WER/BLEU)."""
        text, lengths = pad_ids([h + [EOS] for h in hyps], device)
        return self.text_image.text(text, lengths)


class SharedEncoderFamily(Family):
    """Multitask families: a shared speech encoder whose speech->image branch gives the queries."""

    def s2i_loss(self, h: torch.Tensor, lengths: torch.Tensor, batch: dict, loss: Loss) -> dict[str, torch.Tensor]:
        return {"s2i": contrastive(self.s2i(h, lengths), self.image(batch["pixels"]), loss, batch["image_ids"])}

    def query(self, batch: dict, beam: int = 1) -> torch.Tensor:
        return self.s2i(*self.shared(batch["speech"], batch["lengths"]))

    def speech_states(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared encoder's output (Chrupała 2019's S)."""
        return self.shared(speech, lengths)


class MultitaskTranscribe(SharedEncoderFamily):
    """mtl-transcribe / mtl-translate (§3.1.4): shared conv + BiGRU, then a speech->image branch
    (BiGRU + attention + L2) and an ASR/SLT branch (BiGRU + attention decoder)."""

    objectives = ("s2i", "asr")

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        m = cfg.mtl
        self.shared = SharedSpeech(cfg, input_dim, cfg.asr.hidden, m.shared_layers)
        # §3.1.4: the speech->image branch is "the same GRU layer" as the ASR branch (768 per
        # direction at the paper's size), then a linear map into the N-d joint space
        self.s2i = SpeechBranch(
            self.shared.out_size,
            cfg.latent,
            m.s2i_layers,
            cfg.speech.attention_hidden,
            hidden=cfg.asr.hidden,
            attention_kind=cfg.speech.attention,
        )
        self.asr_gru = BiGRU(self.shared.out_size, cfg.asr.hidden, m.objective_layers)
        self.decoder = AttentionDecoder(cfg.asr, vocab_size, self.asr_gru.out_size)
        self.image = ImageEncoder(cfg.image, cfg.latent, image_dim)

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        h, lengths = self.shared(batch["speech"], batch["lengths"])
        if objective == "s2i":
            return self.s2i_loss(h, lengths, batch, loss)
        return {"asr": self.decoder.loss(*self._asr_memory(h, lengths), batch["text"])}

    def _asr_memory(self, h: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ASR/SLT branch's states and their mask: what the decoder attends to."""
        return self.asr_gru(h, lengths), length_mask(lengths.to(h.device), h.size(1))

    def transcribe(self, batch: dict, beam: int = 1) -> list[list[int]]:
        h, lengths = self.shared(batch["speech"], batch["lengths"])
        return self.decoder.beam_search(*self._asr_memory(h, lengths), beam=beam)


class MultitaskMatch(SharedEncoderFamily):
    """mtl-match (§3.1.5, after Chrupała 2019): shared conv + BiGRU, a speech->image branch and a
    speech->text branch (layers may be 0: attention only), a text encoder and an image encoder;
    the secondary task is speech/text retrieval."""

    objectives = ("s2i", "s2t")

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        m = cfg.match  # its own split (model.match), not mtl-transcribe's
        self.shared = SharedSpeech(cfg, input_dim, cfg.latent // 2, m.shared_layers)
        kind = cfg.speech.attention
        self.s2i = SpeechBranch(
            self.shared.out_size, cfg.latent, m.s2i_layers, cfg.speech.attention_hidden, attention_kind=kind
        )
        self.s2t = SpeechBranch(
            self.shared.out_size, cfg.latent, m.objective_layers, cfg.speech.attention_hidden, attention_kind=kind
        )
        self.text = TextEncoder(cfg.text, vocab_size, cfg.latent)
        self.image = ImageEncoder(cfg.image, cfg.latent, image_dim)

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        h, lengths = self.shared(batch["speech"], batch["lengths"])
        if objective == "s2i":
            return self.s2i_loss(h, lengths, batch, loss)
        return {"s2t": contrastive(self.s2t(h, lengths), self.text(*_text_in(batch)), loss)}

    def match(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        h, lengths = self.shared(batch["speech"], batch["lengths"])
        return self.s2t(h, lengths), self.text(*_text_in(batch))


def pad_ids(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Character-id lists -> (B, L) PAD-padded tensor and lengths (an empty sequence gets one PAD)."""
    lengths = torch.tensor([max(1, len(s)) for s in seqs])
    out = torch.full((len(seqs), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device), lengths


class ThreeTask(SharedEncoderFamily):
    """Chrupała's three-task model (Chrupała 2019 §3): shared speech (S) and text (T) encoders, task
    encoders S2I, S2T, T2S, T2I (BiGRU layers + attention + L2; 0 layers = attention only) and two
    image mappings I2S, I2T; tasks speech/image, speech/text, text/image, any of the last two
    ablated (-1)."""

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        c, att = cfg.three, cfg.speech.attention_hidden
        if c.speech_layers < 1 or c.s2i < 0:
            raise ValueError(
                "model.three.speech_layers must be >= 1 and model.three.s2i >= 0 (speech/image is the main task)"
            )
        if (c.s2t < 0) != (c.t2s < 0):
            raise ValueError("model.three.s2t and model.three.t2s are ablated together (-1 both) or not at all")
        speech_text, text_image = c.s2t >= 0, c.t2i >= 0
        if (speech_text or text_image) and c.text_layers < 1:
            raise ValueError("model.three.text_layers must be >= 1 when a text task is on")
        self.objectives = three_task_objectives(c)
        bi = c.bidirectional  # False: Chrupała 2019's forward-only GRUs of N units (model.three.bidirectional)
        kind = cfg.speech.attention
        hidden = cfg.latent // 2 if bi else cfg.latent
        self.shared = SharedSpeech(cfg, input_dim, hidden, c.speech_layers, bi)
        self.s2i = SpeechBranch(self.shared.out_size, cfg.latent, c.s2i, att, bidirectional=bi, attention_kind=kind)
        self.image = ImageEncoder(cfg.image, cfg.latent, image_dim)  # I2S
        if speech_text or text_image:
            self.embed = nn.Embedding(vocab_size, cfg.text.embed, padding_idx=PAD)
            self.text_shared = BiGRU(cfg.text.embed, hidden, c.text_layers, bi)
        if speech_text:
            self.s2t = SpeechBranch(self.shared.out_size, cfg.latent, c.s2t, att, bidirectional=bi, attention_kind=kind)
            self.t2s = SpeechBranch(
                self.text_shared.out_size, cfg.latent, c.t2s, att, bidirectional=bi, attention_kind=kind
            )
        if text_image:
            self.t2i = SpeechBranch(
                self.text_shared.out_size, cfg.latent, c.t2i, att, bidirectional=bi, attention_kind=kind
            )
            self.i2t = ImageEncoder(cfg.image, cfg.latent, image_dim)

    def _text(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        text, lengths = _text_in(batch)
        return self.text_shared(self.embed(text), lengths), lengths

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        if objective == "s2i":
            return self.s2i_loss(*self.shared(batch["speech"], batch["lengths"]), batch, loss)
        if objective == "s2t":
            return {"s2t": contrastive(*self.match(batch), loss)}
        text = self.t2i(*self._text(batch))
        return {"t2i": contrastive(text, self.i2t(batch["pixels"]), loss, batch["image_ids"])}

    def match(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return self.s2t(*self.shared(batch["speech"], batch["lengths"])), self.t2s(*self._text(batch))


def three_task_objectives(c) -> tuple[str, ...]:
    """The objectives of a three-task configuration (model.three): speech/image always, speech/text
    and text/image unless ablated (-1)."""
    return ("s2i",) + (("s2t",) if c.s2t >= 0 else ()) + (("t2i",) if c.t2i >= 0 else ())
