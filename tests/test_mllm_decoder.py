"""The small decoder: causal, padding-invariant, rotary positions relative, and greedy generation with
a KV cache equal to recomputing the whole sequence, batched (left padding) equal to one by one."""
from __future__ import annotations

import torch

from cnclip_edu.mllm.decoder import Decoder, DecoderConfig, apply_rope, positions_from_mask, rope_tables

V = 30


def _model(seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    m = Decoder(DecoderConfig(vocab_size=V, width=32, layers=2, heads=4, mlp_hidden=64, init_std=0.2)).eval()
    return m


def _logits(m, ids, valid=None):
    valid = torch.ones_like(ids, dtype=torch.bool) if valid is None else valid
    return m(m.embed(ids), valid)


def test_output_layer_is_tied_to_the_embedding():
    m = _model()
    assert [p.shape for p in m.parameters()].count(torch.Size([V, 32])) == 1  # no separate output matrix
    with torch.no_grad():
        m.embed.weight[7] = 0  # token 7's embedding row is also its output row: its logit becomes 0
        logits = _logits(m, torch.tensor([[1, 2, 3]]))
    assert torch.all(logits[..., 7] == 0) and torch.all(logits[..., 6] != 0)


def test_causal_future_tokens_do_not_change_the_past():
    m = _model()
    a = torch.randint(1, V, (2, 9))
    b = a.clone()
    b[:, 6:] = torch.randint(1, V, (2, 3))
    with torch.no_grad():
        torch.testing.assert_close(_logits(m, a)[:, :6], _logits(m, b)[:, :6])


def test_left_padding_changes_nothing_for_real_tokens():
    m = _model()
    ids = torch.randint(1, V, (1, 7))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    valid = padded != 0
    assert positions_from_mask(valid).tolist() == [[0, 0, 0, 0, 1, 2, 3, 4, 5, 6]]
    with torch.no_grad():
        torch.testing.assert_close(_logits(m, padded, valid)[:, 3:], _logits(m, ids), atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_on_distance_only():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(i, j):
        cq, sq = rope_tables(torch.tensor([[i]]), 16, 10_000.0)
        ck, sk = rope_tables(torch.tensor([[j]]), 16, 10_000.0)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    torch.testing.assert_close(score(5, 2), score(13, 10))
    assert not torch.allclose(score(5, 2), score(5, 4))


def _greedy_naive(m, ids, n, eos):
    out = []
    for _ in range(n):
        nxt = _logits(m, ids)[:, -1].argmax(-1)
        out.append(nxt.item())
        if out[-1] == eos:
            break
        ids = torch.cat([ids, nxt[:, None]], 1)
    return out


def test_kv_cache_generation_equals_recomputing_everything():
    m = _model()
    ids = torch.randint(1, V, (1, 6))
    with torch.no_grad():
        cached = m.generate(m.embed(ids), torch.ones(1, 6, dtype=torch.bool), 12, eos_id=V + 5)[0].tolist()
        assert cached == _greedy_naive(m, ids, 12, eos=V + 5)


def test_batched_left_padded_generation_equals_one_by_one():
    m = _model(1)
    prompts = [torch.randint(1, V, (n,)) for n in (3, 8, 5)]
    L = max(len(p) for p in prompts)
    ids = torch.stack([torch.cat([torch.zeros(L - len(p), dtype=torch.long), p]) for p in prompts])
    with torch.no_grad():
        eos = 7
        batch = m.generate(m.embed(ids), ids != 0, 10, eos_id=eos)
        for row, p in zip(batch.tolist(), prompts):
            alone = m.generate(m.embed(p[None]), torch.ones(1, len(p), dtype=torch.bool), 10, eos_id=eos)[0].tolist()
            cut = row[: row.index(eos) + 1] if eos in row else row
            assert cut == (alone[: alone.index(eos) + 1] if eos in alone else alone)
            assert all(t == eos for t in row[len(cut):])  # after eos a row only repeats eos


def test_right_padded_batches_take_the_causal_kernel_with_the_same_result():
    """Training batches are right-padded: the decoder then skips the (B, 1, L, L) mask and uses the
    plain causal kernel. Real tokens must get the logits the explicit padding mask gives them."""
    m = _model()
    ids = torch.randint(1, V, (3, 8))
    valid = torch.ones_like(ids, dtype=torch.bool)
    valid[0, 5:] = False  # right padding of different lengths
    valid[1, 7:] = False
    with torch.no_grad():
        fast = m(m.embed(ids), valid)
        masked = m(m.embed(ids), valid, caches=[{} for _ in m.blocks])  # the cache path always builds the mask
    torch.testing.assert_close(fast[valid], masked[valid], atol=1e-5, rtol=1e-5)
    for row, n in ((0, 5), (1, 7), (2, 8)):  # and each row equals the row alone, unpadded
        with torch.no_grad():
            torch.testing.assert_close(fast[row, :n], _logits(m, ids[row:row + 1, :n])[0], atol=1e-5, rtol=1e-5)
