"""The model put together and trained in stages: image tokens land on the <IMG_CONTEXT> slots, the loss
counts the replies only, frozen parts stay frozen, cached ViT features equal fresh ones, and a tiny
run of all three stages learns."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import cnclip_edu as cc
from cnclip_edu.mllm.batches import ImageBank, prompt_batch, train_batch
from cnclip_edu.mllm.chat import IGNORE_INDEX
from cnclip_edu.mllm.decoder import DecoderConfig
from cnclip_edu.mllm.recipe import RecipeConfig, build_model, make_world, run_stages
from cnclip_edu.mllm.train import Stage, next_token_loss, set_trainable, train_stage
from cnclip_edu.mllm.vlm import VLMConfig

TINY = RecipeConfig(n_train_canvases=60, chats_per_canvas=2, n_text_chats=120, steps=(6, 4, 4), batch_size=8,
                    n_test_canvases=20, n_test_per_type=2, n_heldout_per_combo=1, n_multi_round=4,
                    vlm=VLMConfig(decoder=DecoderConfig(vocab_size=0, width=32, layers=1, heads=2, mlp_hidden=64)))


@pytest.fixture(scope="module")
def setup():
    clip, pre = cc.load("course")
    world = make_world(TINY)
    model, bank = build_model(TINY, world, clip.visual, pre)
    return clip, pre, world, model, bank


def test_bank_pixels_are_the_vits_preprocessing_of_each_tile(setup):
    clip, pre, world, model, bank = setup
    from cnclip_edu.mllm.world import render_canvas

    img = render_canvas(world.train_canvases[5], size_scale=TINY.world.size_scale)
    want = torch.stack([pre(t) for t in model.tiles(img)])
    torch.testing.assert_close(bank.pixels([5]), want)
    assert bank.n_tiles[5] == len(want) == (1 if world.train_canvases[5].cells == 1 else world.train_canvases[5].cells + 1)


def test_cached_features_equal_fresh_ones(setup):
    _, _, _, model, bank = setup
    bank.cache_features(model)
    with torch.no_grad():
        fresh = model.tile_features(bank.pixels([3, 7]))
    torch.testing.assert_close(bank.feats(model, [3, 7]), fresh)
    assert fresh.shape[1:] == (4, 512)


def test_image_tokens_fill_the_placeholders_in_order(setup):
    _, _, world, model, bank = setup
    samples = world.sft_chats[:3]
    b = train_batch(samples, bank, model.vocab, model.tokens_per_tile)
    feats = bank.feats(model, b.images)
    x = model.embed_inputs(b.ids, feats)
    slots = b.ids == model.img_context
    assert int(slots.sum()) == sum(bank.n_tiles[s.canvas] for s in samples) * 4
    with torch.no_grad():
        torch.testing.assert_close(x[slots], model.projector(feats).reshape(-1, x.shape[-1]))
        torch.testing.assert_close(x[~slots], model.decoder.embed(b.ids)[~slots])
    with pytest.raises(ValueError, match="IMG_CONTEXT"):
        model.embed_inputs(b.ids, feats[:-1])


def test_loss_counts_only_the_replies(setup):
    _, _, world, model, bank = setup
    b = train_batch(world.sft_chats[:4], bank, model.vocab, model.tokens_per_tile)
    assert (b.labels != IGNORE_INDEX).sum() < b.valid.sum() / 3  # questions and image are most of the tokens
    logits = torch.randn(*b.ids.shape, len(model.vocab))
    loss = next_token_loss(logits, b.labels)
    # by hand: position t predicts labels[t + 1], only where that label is kept
    keep = b.labels[:, 1:] != IGNORE_INDEX
    manual = F.cross_entropy(logits[:, :-1][keep], b.labels[:, 1:][keep])
    torch.testing.assert_close(loss, manual)
    logits2 = logits.clone()
    logits2[:, :-1][~keep] = torch.randn_like(logits2[:, :-1][~keep])  # scramble the ignored predictions
    torch.testing.assert_close(next_token_loss(logits2, b.labels), loss)


def test_weighted_loss_averages_per_token_per_chat_or_between():
    from cnclip_edu.mllm.train import weighted_next_token_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 9, 11, generator=g)
    labels = torch.randint(0, 11, (3, 9), generator=g)
    labels[0, :2] = labels[1, :7] = labels[2, :5] = IGNORE_INDEX          # 6, 1 and 3 reply tokens after the shift
    torch.testing.assert_close(weighted_next_token_loss(logits, labels, "token"), next_token_loss(logits, labels))
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none")
    per_chat = [ce[i][labels[i, 1:] != IGNORE_INDEX] for i in range(3)]
    torch.testing.assert_close(weighted_next_token_loss(logits, labels, "sample"), torch.stack([c.mean() for c in per_chat]).mean())
    square = sum(c.sum() / len(c) ** 0.5 for c in per_chat) / sum(len(c) ** 0.5 for c in per_chat)
    torch.testing.assert_close(weighted_next_token_loss(logits, labels, "square"), square)
    with pytest.raises(ValueError, match="loss_weighting"):
        weighted_next_token_loss(logits, labels, "chat")


def test_frozen_parts_do_not_move(setup):
    _, _, world, model, bank = setup
    m = copy.deepcopy(model)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = train_stage(m, world.caption_chats, bank, Stage("1", 3, ("projector",), 1e-2, 4))
    after = m.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"projector"} and res.trainable == sum(p.numel() for p in m.projector.parameters())
    with pytest.raises(ValueError, match="unknown parts"):
        set_trainable(m, ("llm",))


def test_vit_trains_when_asked_and_cache_is_dropped(setup):
    _, _, world, model, bank = setup
    m = copy.deepcopy(model)
    bank.cache_features(m)
    v0 = m.vision.visual.conv1.weight.clone()
    train_stage(m, world.caption_chats, bank, Stage("1", 2, ("vit", "projector"), 1e-2, 4))
    assert not torch.equal(v0, m.vision.visual.conv1.weight) and bank.features is None


def test_three_stages_learn_and_generation_is_batch_invariant(setup):
    clip, pre, world, _, _ = setup
    model, bank = build_model(TINY, world, clip.visual, pre)
    cfg = copy.deepcopy(TINY)
    cfg.steps = (30, 5, 10)
    cfg.lrs = (1e-2, 3e-3, 3e-3)
    results = run_stages(model, world, bank, cfg)
    assert [r.name[0] for r in results] == ["0", "1", "2"]
    for r in results:
        assert all(torch.isfinite(torch.tensor(r.losses)))
    first, last = results[0].losses[:5], results[0].losses[-5:]
    assert sum(last) < 0.7 * sum(first)  # the language model learns the world's text
    assert torch.equal(model.vision.visual.conv1.weight, clip.visual.conv1.weight)  # ViT frozen by default
    prompts = [(s.canvas, [(s.turns[0][0], None)]) for s in world.sft_chats[:5]]
    bank.cache_features(model)
    b = prompt_batch(prompts, bank, model.vocab, model.tokens_per_tile)
    together = model.generate(b.ids, b.valid, bank.feats(model, b.images), 12)
    for p, reply in zip(prompts, together):
        b1 = prompt_batch([p], bank, model.vocab, model.tokens_per_tile)
        assert model.generate(b1.ids, b1.valid, bank.feats(model, b1.images), 12) == [reply]


def test_length_batches_cover_every_sample_once_per_epoch_and_pad_less():
    from cnclip_edu.mllm.train import length_batches

    lengths = [5 + (i * 37) % 50 for i in range(64)]
    encoded = [([1] * n, [1] * n, None) for n in lengths]
    plain = length_batches(encoded, 8, 8, bucket=1, seed=3)
    bucketed = length_batches(encoded, 8, 8, bucket=8, seed=3)
    for batches in (plain, bucketed):
        assert len(batches) == 8 and all(len(b) == 8 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(64))  # 8 x 8 = one epoch exactly

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(bucketed) < padding(plain) / 3
    assert length_batches(encoded, 8, 20, seed=3)[:8] != length_batches(encoded, 8, 20, seed=4)[:8]
    assert len(length_batches(encoded, 8, 20, seed=3)) == 20  # more steps than one epoch: epoch after epoch


def test_tile_embedding_marks_each_cell_and_the_thumbnail(setup):
    clip, pre, world, _, _ = setup
    cfg = VLMConfig(tile_embed=True, downsample=0.25, decoder=DecoderConfig(vocab_size=0, width=32, layers=1, heads=2,
                                                                              mlp_hidden=64))
    model = copy.deepcopy(build_model(replace_vlm(TINY, cfg), world, clip.visual, pre)[0])
    assert model.tokens_per_tile == 1
    ctx = model.img_context
    # row 0: a 3-cell canvas (3 tiles + thumbnail), row 1: one cell (no thumbnail), row 2: no image
    ids = torch.tensor([[9, ctx, ctx, ctx, ctx, 9], [9, ctx, 9, 9, 0, 0], [9, 9, 9, 9, 9, 9]])
    idx = model.tile_index(ids == ctx)
    assert idx[0, 1:5].tolist() == [0, 1, 2, model.cfg.max_num] and idx[1, 1].item() == 0
    feats = torch.randn(5, 1, model.projector.norm.normalized_shape[0])
    with torch.no_grad():
        x = model.embed_inputs(ids, feats)
        want = model.projector(feats).reshape(-1, 32) + model.tile_pos.weight[[0, 1, 2, model.cfg.max_num, 0]]
    torch.testing.assert_close(x[ids == ctx], want)
    set_trainable(model, ("decoder",))
    assert not model.tile_pos.weight.requires_grad
    set_trainable(model, ("projector",))
    assert model.tile_pos.weight.requires_grad and not model.decoder.embed.weight.requires_grad


def replace_vlm(cfg: RecipeConfig, vlm: VLMConfig) -> RecipeConfig:
    from dataclasses import replace

    return replace(cfg, vlm=vlm)


def test_image_after_the_question_reaches_training_and_generation(setup, monkeypatch):
    """VLMConfig.image_first=False: the model's config decides the layout wherever chats are rendered, in
    train_stage's batches and in evaluate's prompts, so a model is always asked in the layout it learned."""
    from cnclip_edu.mllm import batches, evaluate, train
    from cnclip_edu.mllm.chat import IMG_START_ID, IM_START_ID

    _, _, world, model, bank = setup
    s = world.sft_chats[0]
    q_len = len(model.vocab.to_compact(batches.encode_chat(s.turns[0][0])))
    start = model.vocab.index[IMG_START_ID]
    first = train_batch([s], bank, model.vocab, model.tokens_per_tile).ids[0].tolist()
    after = train_batch([s], bank, model.vocab, model.tokens_per_tile, image_first=False).ids[0].tolist()
    assert sorted(first) == sorted(after) and first.index(start) == 2 and after.index(start) == 2 + q_len
    assert after[0] == model.vocab.index[IM_START_ID]
    seen = []
    for mod, name in ((train, "encode_samples"), (evaluate, "prompt_batch")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, **k: (seen.append(a[-1]), _real(*a, **k))[1])
    tweaked = copy.copy(model)
    tweaked.cfg = VLMConfig(image_first=False, decoder=model.cfg.decoder)
    train_stage(tweaked, world.sft_chats[:8], bank, Stage("2 sft", steps=1, lr=1e-4, batch_size=4, train=("projector",)))
    evaluate.answer_all(tweaked, bank, [(s.canvas, [(s.turns[0][0], None)])])
    assert seen == [False, False]


def test_a_step_function_can_drive_a_stage_and_matches_the_loop(setup):
    """Notebook 11 trains stages 1-2 with the student's train_step (11.8) once it passes: a step written as the
    exercise asks gives the loop's own losses and weights; a stage where the ViT trains is refused."""
    from cnclip_edu.course.exercises.nb11_step import _step_reference as step   # 11.8's reference answer

    _, _, world, model, bank = setup
    st = Stage("1 align", steps=3, lr=3e-3, batch_size=4, train=("projector",))
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ra = train_stage(a, world.caption_chats[:12], bank, st)
    rb = train_stage(b, world.caption_chats[:12], bank, st, step_fn=step)
    assert ra.losses == rb.losses and len(ra.losses) == 3
    assert all(torch.equal(x, y) for x, y in zip(a.projector.parameters(), b.projector.parameters()))
    assert not torch.equal(next(a.projector.parameters()), next(model.projector.parameters()))   # it did train
    with pytest.raises(ValueError, match="step_fn"):
        train_stage(b, world.caption_chats[:12], bank, Stage("1 vit", steps=1, train=("vit", "projector")), step_fn=step)
