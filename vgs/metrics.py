"""Evaluation metrics: pure functions, tested against brute-force references.

Retrieval protocol (docs/corpora.md, "Retrieval protocol"):
- speech->image: every caption queries the distinct images of its split; its rank is
  1 + the number of images scored strictly higher than its own image.
- image->speech: every image queries all captions; its rank is the best rank of any of its
  own captions.
- R@n = fraction of queries with rank <= n; medr = median rank.  Cosine similarity of
  L2-normalised embeddings.
"""

from __future__ import annotations

import numpy as np
import torch


def retrieval_ranks(speech_emb, image_emb, image_of_caption, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Return (speech->image ranks per caption, image->speech ranks per image)."""
    s = torch.as_tensor(np.asarray(speech_emb), dtype=torch.float32)
    v = torch.as_tensor(np.asarray(image_emb), dtype=torch.float32)
    own = torch.as_tensor(np.asarray(image_of_caption), dtype=torch.long)
    if s.ndim != 2 or v.ndim != 2 or s.shape[1] != v.shape[1] or own.shape != (s.shape[0],):
        raise ValueError(
            f"shape mismatch: speech {tuple(s.shape)}, image {tuple(v.shape)}, image_of_caption {tuple(own.shape)}"
        )
    if len(own) and (own.min() < 0 or own.max() >= v.shape[0]):
        raise ValueError("image_of_caption holds indices outside the image embeddings")
    s2i = torch.empty(s.shape[0], dtype=torch.long)
    for a in range(0, s.shape[0], chunk):
        sim = s[a : a + chunk] @ v.t()
        mine = sim.gather(1, own[a : a + chunk, None])
        s2i[a : a + chunk] = 1 + (sim > mine).sum(1)
    i2s = torch.empty(v.shape[0], dtype=torch.long)
    for a in range(0, v.shape[0], chunk):
        sim = v[a : a + chunk] @ s.t()  # (images, captions)
        is_own = own[None, :] == torch.arange(a, a + sim.shape[0])[:, None]
        # the best rank among an image's captions is the rank of its most similar own caption
        best_own = sim.masked_fill(~is_own, float("-inf")).max(1).values
        i2s[a : a + sim.shape[0]] = 1 + (sim > best_own[:, None]).sum(1)
    return s2i.numpy(), i2s.numpy()


def recall_summary(ranks: np.ndarray, prefix: str, ns=(1, 5, 10)) -> dict[str, float]:
    out = {f"{prefix}_r{n}": float(np.mean(ranks <= n)) for n in ns}
    out[f"{prefix}_medr"] = float(np.median(ranks))
    return out


def retrieval(
    speech_emb, image_emb, image_of_caption, query: str = "s2i", reverse: str | None = "i2s"
) -> dict[str, float]:
    """Keys s2i_r1 s2i_r5 s2i_r10 s2i_medr i2s_r1 i2s_r5 i2s_r10 i2s_medr; `query` and `reverse`
    name the two directions (vgs.metric_names: t2i/i2t for text queries; reverse None: only the
    queries' own direction)."""
    s2i, i2s = retrieval_ranks(speech_emb, image_emb, image_of_caption)
    return {**recall_summary(s2i, query), **(recall_summary(i2s, reverse) if reverse else {})}


def chance_hit_rate(candidates: int, k: int, own: int = 1) -> float:
    """P(rank <= k) for a query whose `own` matches sit among `candidates` in random order:
    1 - C(candidates - own, k) / C(candidates, k) (own=1: k / candidates)."""
    if not 1 <= own <= candidates or k < 0:
        raise ValueError(f"need 1 <= own <= candidates and k >= 0, got own={own}, candidates={candidates}, k={k}")
    miss = 1.0
    for j in range(min(k, candidates)):  # the first k drawn all miss the own matches
        miss *= max(0.0, (candidates - own - j) / (candidates - j))
    return 1.0 - miss


def chance_recall_bound(units: int, hit_rate: float, alpha: float = 1e-3) -> float:
    """The smallest R@k that a model with no information reaches with probability below `alpha`,
    counting `units` independent hits at `hit_rate` each (Binomial(units, hit_rate) / units).

    For speech->image R@k, units are the images, not the captions: a model that has learnt nothing
    about images may still rank an image's captions alike, so its five captions are one piece of
    evidence (the worst case).  One more unit over the bound is one image, the smallest change the
    score can show."""
    from scipy import stats

    return (float(stats.binom.isf(alpha, units, hit_rate)) + 1) / units


# ------------------------------------------------------------------ transcription / translation


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance between two token sequences (substitution, insertion, deletion = 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus-level word error rate: total word edits / total reference words (whitespace words,
    as given: normalise case/punctuation before calling if wanted)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    words = sum(len(r.split()) for r in refs)
    if words == 0:
        raise ValueError("references hold no words")
    return sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps)) / words


def cer(refs: list[str], hyps: list[str]) -> float:
    """Corpus-level character error rate (for Japanese, which has no spaces)."""
    chars = sum(len(r) for r in refs)
    if len(refs) != len(hyps) or chars == 0:
        raise ValueError("refs and hyps must pair up and references must hold characters")
    return sum(edit_distance(list(r), list(h)) for r, h in zip(refs, hyps)) / chars


def bleu(refs: list[str], hyps: list[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (sacrebleu) as a fraction 0..1, like the papers; tokenize="char" for Japanese."""
    import sacrebleu

    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize).score / 100.0


# ------------------------------------------------------------------ analysis (Chrupała 2019 §3.7)


def text_similarity(texts: list[str]) -> np.ndarray:
    """sim(a, b) = 1 - Levenshtein(a, b) / max(|a|, |b|) over characters, for every pair
    (Chrupała 2019 eq. 6).  rapidfuzz's C++ Levenshtein over all pairs: a whole development set
    (5,000 captions, 12.5 M pairs) takes seconds, where a Python loop took hours."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    out = cdist(texts, texts, scorer=Levenshtein.normalized_similarity, dtype=np.float64, workers=-1)
    np.fill_diagonal(out, 1.0)
    return out


def rsa(sim_a: np.ndarray, sim_b: np.ndarray) -> float:
    """Representational similarity: Pearson correlation of two similarity matrices over their
    upper triangles, diagonal excluded."""
    iu = np.triu_indices(len(sim_a), k=1)
    a, b = np.asarray(sim_a, np.float64)[iu], np.asarray(sim_b, np.float64)[iu]
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def cosine_similarity(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def logistic_probe(train_x, train_y, test_x, test_y, l2: float = 1e-2, steps: int = 200) -> float:
    """Test accuracy of an L2-penalised multinomial logistic regression (features standardised
    with the training set's statistics; LBFGS) trained on (train_x, train_y).  Labels: any
    hashable values; a test label never seen in training counts as an error."""
    names = sorted(set(train_y), key=str)
    if len(names) < 2 or len(test_y) == 0:
        raise ValueError("a probe needs at least 2 training classes and 1 test item")
    index = {n: k for k, n in enumerate(names)}
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float64)
    xt = torch.as_tensor(np.asarray(test_x), dtype=torch.float64)
    y = torch.tensor([index[v] for v in train_y])
    yt = torch.tensor([index.get(v, -1) for v in test_y])
    mean, std = x.mean(0), x.std(0).clamp(min=1e-8)
    x, xt = (x - mean) / std, (xt - mean) / std
    w = torch.zeros(x.shape[1], len(names), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xt @ w + b).argmax(1) == yt).double().mean())


def speaker_probe(
    embeddings: np.ndarray, speakers: list[str], l2: float = 1e-2, seed: int = 0, steps: int = 200
) -> float:
    """Accuracy of an L2-penalised multinomial logistic regression that decodes the speaker from
    utterance embeddings, trained on 2/3 of them (random, seeded) and tested on the other 1/3."""
    x = np.asarray(embeddings)
    order = np.random.default_rng(seed).permutation(len(speakers))
    cut = (2 * len(speakers)) // 3
    train, test = order[:cut], order[cut:]
    if len(test) == 0 or len(set(speakers)) < 2:
        raise ValueError("speaker_probe needs at least 3 utterances and 2 speakers")
    return logistic_probe(x[train], [speakers[i] for i in train], x[test], [speakers[i] for i in test], l2, steps)
