"""Attention decoder for ASR/SLT (Higy et al. 2020 §3.1.3): Bahdanau (additive) attention over the speech
encoder's states, a GRU fed the previous character and the context, a linear layer and a
softmax over characters.  Trained with teacher-forced cross-entropy; decoded greedily or with a
batched beam search.

Beam search and lengths: every hypothesis ends with </s> or at `max_chars`; finished hypotheses
leave the beam and compete by log-probability divided by length**length_penalty (0 = plain
log-probability, which favours short outputs; ~1 = per-character average).  Search stops for
an utterance when its best finished score beats every live beam's score (log-probabilities only
fall, so with penalty 0 no live beam can still win), when `beam` hypotheses have finished, or at
max_chars.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vgs.config import AsrConfig
from vgs.data.text import BOS, EOS, PAD

NEG_INF = float("-inf")


class AttentionDecoder(nn.Module):
    def __init__(self, cfg: AsrConfig, vocab_size: int, memory_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.embed = nn.Embedding(vocab_size, cfg.embed, padding_idx=PAD)
        self.key = nn.Linear(memory_size, cfg.attention, bias=False)
        self.query = nn.Linear(cfg.hidden * cfg.decoder_layers, cfg.attention)
        self.energy = nn.Linear(cfg.attention, 1, bias=False)
        self.gru = nn.GRU(cfg.embed + memory_size, cfg.hidden, num_layers=cfg.decoder_layers, batch_first=True)
        self.init = nn.Linear(memory_size, cfg.hidden * cfg.decoder_layers)
        self.out = nn.Linear(cfg.hidden + memory_size, vocab_size)

    # -- one step -------------------------------------------------------------------------
    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial decoder state (from the mean encoder state) and precomputed attention keys."""
        mean = (memory * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        state = torch.tanh(self.init(mean)).view(len(memory), self.cfg.decoder_layers, -1).transpose(0, 1)
        return state.contiguous(), self.key(memory)

    def step(
        self, prev: torch.Tensor, state: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """prev: (B,) previous characters -> (log-probabilities (B, V), new state)."""
        q = self.query(state.transpose(0, 1).reshape(len(prev), -1))  # (B, A)
        e = self.energy(torch.tanh(keys + q[:, None, :])).squeeze(-1)  # (B, T)
        alpha = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
        context = torch.bmm(alpha[:, None, :], memory).squeeze(1)  # (B, M)
        out, state = self.gru(torch.cat([self.embed(prev), context], -1)[:, None, :], state)
        logits = self.out(torch.cat([out.squeeze(1), context], -1))
        return F.log_softmax(logits.float(), -1), state

    # -- training ---------------------------------------------------------------------------
    def loss(self, memory: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy; targets (B, L): characters then </s>, padded with PAD."""
        state, keys = self.start(memory, mask)
        prev = torch.full((len(targets),), BOS, dtype=torch.long, device=targets.device)
        steps = []
        for t in range(targets.size(1)):
            logp, state = self.step(prev, state, memory, keys, mask)
            steps.append(logp)
            prev = targets[:, t]
        logp = torch.stack(steps, 1)  # (B, L, V)
        return F.nll_loss(logp.reshape(-1, self.vocab_size), targets.reshape(-1), ignore_index=PAD)

    # -- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, memory: torch.Tensor, mask: torch.Tensor, max_chars: int | None = None) -> list[list[int]]:
        max_chars = max_chars or self.cfg.max_chars
        state, keys = self.start(memory, mask)
        prev = torch.full((len(memory),), BOS, dtype=torch.long, device=memory.device)
        out = torch.zeros(len(memory), max_chars, dtype=torch.long, device=memory.device)
        done = torch.zeros(len(memory), dtype=torch.bool, device=memory.device)
        for t in range(max_chars):
            logp, state = self.step(prev, state, memory, keys, mask)
            prev = logp.argmax(-1)
            out[:, t] = prev.masked_fill(done, PAD)
            done |= prev == EOS
            if done.all():
                break
        return [_until_eos(row) for row in out.tolist()]

    @torch.no_grad()
    def beam_search(
        self,
        memory: torch.Tensor,
        mask: torch.Tensor,
        beam: int | None = None,
        max_chars: int | None = None,
        length_penalty: float | None = None,
    ) -> list[list[int]]:
        """Batched beam search: all utterances and all their beams advance in one decoder step."""
        beam = beam or self.cfg.beam
        max_chars = max_chars or self.cfg.max_chars
        penalty = self.cfg.length_penalty if length_penalty is None else length_penalty
        if beam == 1:
            return self.greedy(memory, mask, max_chars)
        B, V, dev = len(memory), self.vocab_size, memory.device
        state, keys = self.start(memory, mask)
        # every tensor below is (B * beam, ...): utterance b's beams are rows b*beam .. b*beam+beam-1
        rep = lambda x: x.repeat_interleave(beam, 0)
        memory_b, keys_b, mask_b = rep(memory), rep(keys), rep(mask)
        state = state.repeat_interleave(beam, 1)
        scores = torch.full((B, beam), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # one live hypothesis at the start, not `beam` copies
        prev = torch.full((B * beam,), BOS, dtype=torch.long, device=dev)
        history = torch.zeros(B * beam, 0, dtype=torch.long, device=dev)
        best: list[tuple[float, list[int]] | None] = [None] * B
        finished = [0] * B
        for t in range(1, max_chars + 1):
            logp, state = self.step(prev, state, memory_b, keys_b, mask_b)
            total = (scores.view(-1, 1) + logp).view(B, beam * V)
            top, idx = total.topk(min(2 * beam, beam * V), dim=1)  # room for beams that end here
            # the bookkeeping below runs on Python lists, made into tensors once per step (writing
            # tensor elements one by one cost as much as the decoder step on a CPU)
            top_l, src_l, char_l = top.tolist(), (idx // V).tolist(), (idx % V).tolist()
            new_scores_l = [[NEG_INF] * beam for _ in range(B)]
            new_src_l = [[0] * beam for _ in range(B)]
            new_char_l = [[PAD] * beam for _ in range(B)]
            for b in range(B):
                k = 0
                for score, s, c in zip(top_l[b], src_l[b], char_l[b]):
                    if score == NEG_INF:
                        break
                    if c == EOS:
                        finished[b] += 1
                        final = score / (t**penalty)
                        if best[b] is None or final > best[b][0]:
                            best[b] = (final, history[b * beam + s].tolist())
                        continue
                    if k < beam:
                        new_scores_l[b][k], new_src_l[b][k], new_char_l[b][k] = score, s, c
                        k += 1
                # Stop this utterance once no live beam can beat its best finished hypothesis (exact
                # for penalty 0: scores only fall), or, with a length penalty, once `beam`
                # hypotheses have finished (the usual rule).
                live = max(new_scores_l[b])
                if best[b] is not None and (
                    live == NEG_INF or (penalty != 0 and finished[b] >= beam) or (penalty == 0 and live <= best[b][0])
                ):
                    new_scores_l[b] = [NEG_INF] * beam
            if all(max(row) == NEG_INF for row in new_scores_l):
                break
            new_scores = torch.tensor(new_scores_l, dtype=scores.dtype, device=dev)
            new_src = torch.tensor(new_src_l, dtype=torch.long, device=dev)
            new_char = torch.tensor(new_char_l, dtype=torch.long, device=dev)
            rows = (torch.arange(B, device=dev)[:, None] * beam + new_src).view(-1)
            state = state[:, rows]
            history = torch.cat([history[rows], new_char.view(-1, 1)], 1)
            scores, prev = new_scores, new_char.view(-1)
        for b in range(B):  # max_chars reached: the best live hypothesis, if nothing finished
            if best[b] is None:
                k = int(scores[b].argmax())
                best[b] = (0.0, history[b * beam + k].tolist())
        return [list(h) for _, h in best]


def _until_eos(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS)] if EOS in ids else [i for i in ids if i != PAD]
