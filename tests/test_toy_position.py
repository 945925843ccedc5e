"""data.toy_position: the counts notebook 00 quotes about position in the training captions, checked
by brute force over every (pair, negative) of a small split."""
from cnclip_edu.data import toy
from cnclip_edu.data.toy_position import _place, position_evidence

SMALL = toy.ToyConfig(seed=3, n_train=300, n_valid=80, n_test=80, zeroshot_per_class=3, workers=1)


def test_position_evidence_matches_a_brute_force_count():
    ev = position_evidence("train", SMALL)
    _, scenes, items, keys = toy._make_split(SMALL, "train", toy._split_combos(SMALL, "train"),
                                             seed=f"{SMALL.seed}-train", with_keys=True)
    pairs = [(iid, key) for (_, _, image_ids), key in zip(items, keys) for iid in image_ids]
    base = SMALL.id_offsets["train"]
    alone = [(sc["shapes"][0].color, sc["shapes"][0].shape, sc["shapes"][0].cell) if sc["layout"] == "one" else None
             for sc in (scenes[iid - base] for iid, _ in pairs)]
    assert ev.pairs == len(pairs) and ev.captions == len(keys)
    assert ev.cell_captions == ev.pos_captions + ev.full_captions == sum(_place(k) is not None for k in keys)
    drawn = [(p.color, p.shape, p.cell, p.size) for sc in scenes if sc["layout"] == "one" for p in sc["shapes"]]
    both = [k for k in keys if k[0] == "pos" and {d[3] for d in drawn if d[:3] == _place(k)} == {"大", "小"}]
    assert ev.pos_both_sizes == len(both) <= ev.pos_captions
    placed = [_place(k) for _, k in pairs]
    hits = image_hits = total = 0
    for i, a in enumerate(placed):
        if a is None:
            continue
        assert alone[i] == a   # a position caption's pictures show that shape alone in that cell
        for j, b in enumerate(placed):
            if j != i:
                total += 1
                hits += b is not None and b[:2] == a[:2] and b[2] != a[2]   # same colour and shape, other cell
                image_hits += alone[j] is not None and alone[j][:2] == a[:2] and alone[j][2] != a[2]
    assert ev.position_pairs == sum(p is not None for p in placed) > 0
    assert abs(ev.position_only_share - hits / total) < 1e-12 and hits > 0
    assert abs(ev.per_batch(32) - 31 * hits / total) < 1e-9
    assert abs(ev.image_side_share - image_hits / total) < 1e-12 and image_hits >= hits
    assert abs(ev.per_batch_images(64) - 63 * image_hits / total) < 1e-9


def test_place_reads_both_position_kinds():
    assert _place(("pos", "红色", "圆形", (0, 2))) == ("红色", "圆形", (0, 2))
    assert _place(("full", ("小", "红色", "圆形"), (0, 2))) == ("红色", "圆形", (0, 2))
    assert _place(("set", (("红色", "圆形"),))) is None
