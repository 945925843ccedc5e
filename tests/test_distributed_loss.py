"""ClipLoss across 2 real ranks (gloo, CPU): every mode's gradients equal one process on the
concatenated batch, and the losses equal open_clip's gathered ClipLoss.

One spawn runs every case (starting processes is the slow part), each rank saves what it measured,
and the tests below compare those numbers with a single-process reference computed here.
What "equal" means under DDP: DDP averages parameter gradients over the W ranks, so
- parameter gradients (after DDP) == single-process gradients of the global mean loss;
- the gradient reaching rank r's features == W x the single-process gradient of its slice;
- the loss on each rank == the global loss (full modes) or its rank's share (local_loss: the mean
  over ranks == the global loss).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_loss_stand_in import TinyClip, load_open_clip_loss, make_batch

from cnclip_edu.loss import ClipLoss, positive_mask_from_tokens

WORLD, B = 2, 4                       # 2 ranks x 4 pairs = global batch of 8
DUPLICATES = ((0, 5), (2, 3))         # same caption across ranks (0 / 5) and within rank 0 (2 / 3)
GOLD_EXTRA = ((1, 6), (7, 2))         # image i also matches (different) text j, e.g. from gold lists
# name -> (local_loss, gather_with_grad, use positive_mask, accum_freq)
CASES = {
    "default": (False, False, False, 1),
    "gather_with_grad": (False, True, False, 1),
    "local_loss+gather_with_grad": (True, True, False, 1),
    "default+mask": (False, False, True, 1),
    "gather_with_grad+mask": (False, True, True, 1),
    "local_loss+gather_with_grad+mask": (True, True, True, 1),
    "accum2+default+mask": (False, False, True, 2),
    "accum2+local_loss+gather_with_grad": (True, True, False, 2),
}
OPEN_CLIP_MODES = [(False, False), (False, True), (True, True), (True, False)]


def _global_data():
    images, tokens = make_batch(WORLD * B, seed=1, duplicate_pairs=DUPLICATES)
    mask = positive_mask_from_tokens(tokens)  # (8, 8)
    for i, j in GOLD_EXTRA:
        mask[i, j] = True
    return images, tokens, mask


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- what each rank runs
def _average_grads(model: torch.nn.Module) -> None:
    """What DDP does to .grad after backward (average over ranks), without DDP's ~6 s first-use
    import of torch._dynamo; the slow variant of these tests uses real DDP."""
    for p in model.parameters():
        torch.distributed.all_reduce(p.grad)
        p.grad /= WORLD


def _worker(rank: int, port: int, out_dir: str, use_ddp: bool) -> None:
    import warnings

    from cnclip_edu import distributed as D
    from cnclip_edu.train.accumulate import accumulated_step

    warnings.filterwarnings("ignore", category=FutureWarning)  # open_clip's deprecated torch.distributed.nn call

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    info = D.init_distributed(backend="gloo")
    res: dict = {"info": (info.rank, info.world_size, info.backend, D.is_main(), D.get_world_size())}
    images, tokens, mask = _global_data()
    mine = slice(rank * B, (rank + 1) * B)

    for name, (local_loss, gwg, use_mask, accum) in CASES.items():
        if use_ddp:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(TinyClip(seed=3))
        else:
            model = TinyClip(seed=3)
        loss_fn = ClipLoss(local_loss=local_loss, gather_with_grad=gwg, rank=rank, world_size=WORLD)
        pm = mask if use_mask else None
        if accum == 1:
            img_f, txt_f, scale = model(images[mine], tokens[mine])
            img_f.retain_grad()
            txt_f.retain_grad()
            loss = loss_fn(img_f, txt_f, scale, positive_mask=pm)
            loss.backward()
            entry = {"loss": loss.item(), "img_grad": img_f.grad, "txt_grad": txt_f.grad}
        else:
            micro = list(zip(images[mine].chunk(accum), tokens[mine].chunk(accum)))  # this rank's K micro-batches
            loss, _ = accumulated_step(model, micro, loss_fn, positive_mask=pm)
            entry = {"loss": loss}
        if not use_ddp:
            _average_grads(model)
        entry["params"] = {n: p.grad.clone() for n, p in getattr(model, "module", model).named_parameters()}
        res[name] = entry

    # open_clip's own ClipLoss, gathered across the same 2 ranks, on leaf features
    oc = load_open_clip_loss()
    ref_model = TinyClip(seed=3)
    with torch.no_grad():
        all_img, all_txt, scale = ref_model(images, tokens)
    for local_loss, gwg in OPEN_CLIP_MODES:
        for impl in ("open_clip", "ours"):
            if impl == "ours" and local_loss and not gwg:
                continue  # refused by our ClipLoss
            img = all_img[mine].clone().requires_grad_()
            txt = all_txt[mine].clone().requires_grad_()
            cls = oc.ClipLoss if impl == "open_clip" else ClipLoss
            loss = cls(local_loss=local_loss, gather_with_grad=gwg, rank=rank, world_size=WORLD)(img, txt, scale)
            loss.backward()
            res[(impl, local_loss, gwg)] = {"loss": loss.item(), "img_grad": img.grad, "txt_grad": txt.grad}

    # the two gathers on their own
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)
    y = D.all_gather_with_grad(x)                                 # (4, 3)
    weights = torch.arange(12.0).reshape(4, 3)
    (y * weights * (rank + 1)).sum().backward()                   # rank r's loss weighs by r + 1
    res["gather"] = {"with_grad": y.detach(), "x_grad": x.grad, "no_grad": D.all_gather_no_grad(x),
                     "no_grad_requires_grad": D.all_gather_no_grad(x).requires_grad}
    D.barrier()
    torch.save(res, Path(out_dir) / f"rank{rank}.pt")
    D.cleanup()


@pytest.fixture(scope="module", params=["all_reduce", pytest.param("ddp", marks=pytest.mark.slow)])
def ranks(request, tmp_path_factory):
    """Both ranks' measurements. "all_reduce" averages .grad by hand; "ddp" (slow) wraps the model
    in DistributedDataParallel, so accumulated_step's no_sync path runs too."""
    out = tmp_path_factory.mktemp("two_ranks")
    mp.start_processes(_worker, args=(_free_port(), str(out), request.param == "ddp"), nprocs=WORLD,
                       start_method="spawn", join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# ----------------------------------------------------------------------------- single-process reference
def _reference(use_mask: bool):
    images, tokens, mask = _global_data()
    model = TinyClip(seed=3)
    img_f, txt_f, scale = model(images, tokens)
    img_f.retain_grad()
    txt_f.retain_grad()
    loss = ClipLoss()(img_f, txt_f, scale, positive_mask=mask if use_mask else None)
    loss.backward()
    return {"loss": loss.item(), "img_grad": img_f.grad, "txt_grad": txt_f.grad,
            "params": {n: p.grad.clone() for n, p in model.named_parameters()}}


def test_process_group_info(ranks):
    assert [r["info"] for r in ranks] == [(0, 2, "gloo", True, 2), (1, 2, "gloo", False, 2)]


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_equal_one_process_on_the_concatenated_batch(ranks, case):
    local_loss, _, use_mask, accum = CASES[case]
    ref = _reference(use_mask)
    for r, res in enumerate(ranks):
        got = res[case]
        for name, g in ref["params"].items():  # what DDP left in .grad (the average over ranks)
            torch.testing.assert_close(got["params"][name], g, rtol=1e-5, atol=1e-6, msg=f"{case} rank {r} {name}")
        if accum == 1:
            mine = slice(r * B, (r + 1) * B)
            torch.testing.assert_close(got["img_grad"], WORLD * ref["img_grad"][mine], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got["txt_grad"], WORLD * ref["txt_grad"][mine], rtol=1e-5, atol=1e-6)
    losses = [res[case]["loss"] for res in ranks]
    if local_loss:
        assert sum(losses) / WORLD == pytest.approx(ref["loss"], rel=1e-5)
    else:
        assert losses == pytest.approx([ref["loss"]] * WORLD, rel=1e-5)


def test_mask_changes_the_gradient(ranks):
    """The mask matters here, so the masked cases above test something. (Identical captions alone
    would not do: see test_loss.py::test_identical_captions_mask_shifts_the_loss_by_a_constant.)"""
    g_plain, g_mask = ranks[0]["default"]["params"], ranks[0]["default+mask"]["params"]
    for name in ("visual.weight", "text_proj.weight", "logit_scale"):
        assert not torch.allclose(g_plain[name], g_mask[name], atol=1e-4), name


@pytest.mark.parametrize("local_loss,gwg", OPEN_CLIP_MODES)
def test_loss_equals_open_clip_gathered(ranks, local_loss, gwg):
    for res in ranks:
        oc = res[("open_clip", local_loss, gwg)]
        ours = res[("ours", local_loss, True if local_loss else gwg)]  # local w/o grad: same value, refused
        assert ours["loss"] == pytest.approx(oc["loss"], rel=1e-6)
        if gwg:  # open_clip's differentiable gather is exact too: same feature gradients
            torch.testing.assert_close(ours["img_grad"], oc["img_grad"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ours["txt_grad"], oc["txt_grad"], rtol=1e-5, atol=1e-6)
        elif not local_loss:  # open_clip's default: the same direction, 1/W of the exact size
            torch.testing.assert_close(ours["img_grad"], WORLD * oc["img_grad"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ours["txt_grad"], WORLD * oc["txt_grad"], rtol=1e-5, atol=1e-6)


def test_open_clip_local_loss_without_grad_gather_is_not_exact(ranks):
    """Why ClipLoss refuses local_loss without gather_with_grad: open_clip's gradient misses the
    other ranks' contribution (no scaling fixes it: the direction differs)."""
    res = ranks[0]
    exact = res[("ours", True, True)]["img_grad"]
    partial = res[("open_clip", True, False)]["img_grad"]
    cos = torch.nn.functional.cosine_similarity(exact.flatten(), partial.flatten(), dim=0)
    assert cos < 0.999


def test_all_gathers(ranks):
    for r, res in enumerate(ranks):
        g = res["gather"]
        expected = torch.cat([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)])
        assert torch.equal(g["with_grad"], expected) and torch.equal(g["no_grad"], expected)
        assert g["no_grad_requires_grad"] is False
        # both ranks' losses reach this rank's slice: weights x (1 + 2)
        assert torch.equal(g["x_grad"], 3 * torch.arange(12.0).reshape(4, 3)[r * 2:(r + 1) * 2])
