"""The ASR/SLT attention decoder: batched beam search against an exhaustive search, batch
independence, greedy = beam 1, and the character vocabulary."""

import itertools
import math

import pytest
import torch

from vgs.config import AsrConfig
from vgs.data.text import BOS, EOS, Vocabulary
from vgs.models.seq2seq import AttentionDecoder

V = 6  # <pad> <s> </s> <unk> + two characters


def tiny_decoder(seed=0):
    torch.manual_seed(seed)
    dec = AttentionDecoder(AsrConfig(hidden=8, embed=4, attention=8, max_chars=4), V, memory_size=6).eval()
    with torch.no_grad():  # sharper distributions so the search has real choices to make
        dec.out.weight.mul_(6)
    memory = torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    return dec, memory, mask


def sequence_logprob(dec, memory, mask, seq):
    state, keys = dec.start(memory, mask)
    prev, total = torch.tensor([BOS]), 0.0
    for c in seq:
        logp, state = dec.step(prev, state, memory, keys, mask)
        total += logp[0, c].item()
        prev = torch.tensor([c])
    return total


def exhaustive(dec, memory, mask, max_chars, penalty=0.0):
    """Best of every sequence ending in </s> within max_chars (no earlier </s>)."""
    best = (-math.inf, None)
    for n in range(0, max_chars):
        for body in itertools.product([c for c in range(V) if c != EOS], repeat=n):
            seq = list(body) + [EOS]
            score = sequence_logprob(dec, memory, mask, seq) / (len(seq) ** penalty)
            if score > best[0]:
                best = (score, list(body))
    return best


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_wide_beam_equals_exhaustive_search(penalty):
    dec, memory, mask = tiny_decoder()
    with torch.no_grad():
        got = dec.beam_search(memory, mask, beam=V**4, max_chars=4, length_penalty=penalty)
    for b in range(3):
        _, expected = exhaustive(dec, memory[b : b + 1], mask[b : b + 1], 4, penalty)
        assert got[b] == expected


def test_batched_beam_search_equals_one_utterance_at_a_time_and_beam_one_is_greedy():
    dec, memory, mask = tiny_decoder(seed=1)
    with torch.no_grad():
        batched = dec.beam_search(memory, mask, beam=3, max_chars=4)
        alone = []
        for b in range(3):
            n = int(mask[b].sum())  # each utterance on its own, without padding
            alone += dec.beam_search(memory[b : b + 1, :n], mask[b : b + 1, :n], beam=3, max_chars=4)
        assert batched == alone
        assert dec.beam_search(memory, mask, beam=1, max_chars=4) == dec.greedy(memory, mask, max_chars=4)


def test_padding_does_not_change_decoding():
    dec, memory, mask = tiny_decoder(seed=2)
    padded = torch.cat([memory, torch.randn(3, 4, 6)], 1)
    padded_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    with torch.no_grad():
        assert dec.beam_search(padded, padded_mask, beam=3) == dec.beam_search(memory, mask, beam=3)


def test_teacher_forced_loss_is_mean_negative_logprob():
    dec, memory, mask = tiny_decoder(seed=3)
    targets = torch.tensor([[4, 5, EOS, 0], [5, EOS, 0, 0], [4, 4, 5, EOS]])
    with torch.no_grad():
        loss = dec.loss(memory, mask, targets).item()
    expected = []
    for b in range(3):
        seq = [int(c) for c in targets[b] if c != 0]
        total = sequence_logprob(dec, memory[b : b + 1], mask[b : b + 1], seq)
        expected.append((total, len(seq)))
    assert loss == pytest.approx(-sum(t for t, _ in expected) / sum(n for _, n in expected), rel=1e-5)


def test_vocabulary_round_trip_and_unknown_characters():
    vocab = Vocabulary.from_texts(["a red dog", "two cats"])
    ids = vocab.encode("a dog")
    assert ids[-1] == EOS and vocab.decode(ids) == "a dog"
    assert vocab.decode(vocab.encode("a zed")) == "a ed"  # z is unknown: <unk> is dropped on decoding
    assert Vocabulary.from_texts(["two cats", "a red dog"]).chars == vocab.chars
