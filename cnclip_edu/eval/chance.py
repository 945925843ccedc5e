"""Could a count this small be chance? Exact answers for the two questions a tiny evaluation raises.

With 17 validation captions, "5 of 8 colour captions right against 2 of 9 black-and-white ones" looks
like a difference, and "the one caption with 2 gold photos in a gallery of 4 put one first" looks like
a success. Before explaining either, ask how often it happens when nothing is going on:

- `more_hits_p(hits_a, n_a, hits_b, n_b)`: if the hits had nothing to do with the groups, the
  `hits_a + hits_b` hits would fall on the `n_a + n_b` items at random; the probability that group a
  gets `hits_a` of them or more (a one-sided permutation test; exact, the hypergeometric tail, i.e.
  Fisher's exact test). Small (say < 0.05): hard to explain by chance. Large: the counts cannot tell.
- `random_ranking_p(n_gold, n_gallery, top)`: the probability that a random ranking of `n_gallery`
  photos puts a gold photo first (`top="any"`: n_gold / n_gallery) or all the gold photos at the top
  (`top="all"`: 1 / C(n_gallery, n_gold)).
- `at_least_hits_p(probs, hits)`: captions ranked independently, caption i a hit with probability
  probs[i] (a random ranking: its gold photos / the gallery); the probability of `hits` hits or more
  (exact: the distribution of the number of hits, built one caption at a time).
"""
from __future__ import annotations

from math import comb


def more_hits_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """P(group a gets >= hits_a of the hits | the hits fall on the n_a + n_b items at random)."""
    if not (0 <= hits_a <= n_a and 0 <= hits_b <= n_b):
        raise ValueError(f"hits must be between 0 and the group size: {hits_a}/{n_a}, {hits_b}/{n_b}")
    hits, n = hits_a + hits_b, n_a + n_b
    tail = sum(comb(hits, k) * comb(n - hits, n_a - k) for k in range(hits_a, min(hits, n_a) + 1))
    return tail / comb(n, n_a)


def random_ranking_p(n_gold: int, n_gallery: int, top: str = "any") -> float:
    """P(a random ranking puts a gold photo first) (`top="any"`) or all gold photos first (`top="all"`)."""
    if not 1 <= n_gold <= n_gallery:
        raise ValueError(f"need 1 <= n_gold <= n_gallery, got {n_gold}, {n_gallery}")
    if top == "any":
        return n_gold / n_gallery
    if top == "all":
        return 1 / comb(n_gallery, n_gold)
    raise ValueError(f"top must be 'any' or 'all', got {top!r}")


def at_least_hits_p(probs, hits: int) -> float:
    """P(at least `hits` of independent events happen | event i happens with probability probs[i]).

    Why not the binomial: with a gallery of 4 photos a caption with one gold photo is a hit with
    probability 1/4, one with two gold photos with 1/2; the hits of a random ranking are then a sum of
    unequal coins. dist[j] = P(j hits so far), updated caption by caption."""
    dist = [1.0]
    for p in probs:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"a probability must be in [0, 1], got {p}")
        dist = [(dist[j] if j < len(dist) else 0.0) * (1 - p) + (dist[j - 1] * p if j >= 1 else 0.0)
                for j in range(len(dist) + 1)]
    return float(sum(dist[max(0, hits):]))
