"""Exercises 09.7 and 09.8 of notebook 09 (deployment): the TensorRT build, the optimization profile (09.7)
and the builder calls (09.8).

They run on a recording stand-in for `tensorrt` (deploy/trt_recorder.py) where there is no GPU, with
ONNX files that hold only the inputs (`signature_onnx`), in milliseconds.
"""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 09.7 the optimization profile
def _reference_profile(shape, context_length, max_batch, opt_batch=None, opt_length=None):
    from cnclip_edu.deploy.trt import profile_shapes

    tower = "text" if len(shape) == 2 else "image"
    return profile_shapes(shape, {"tower": tower, "context_length": str(context_length)}, 1, opt_batch, max_batch,
                          opt_length=opt_length)


def _profile_case(label: str, shape, context_length: int, max_batch: int, opt_batch=None, opt_length=None) -> Case:
    def run(f):
        try:
            out = f(tuple(shape), context_length, max_batch, opt_batch, opt_length=opt_length)
        except ValueError:
            return "ValueError（拒绝了这个输入）"
        return [list(int(d) for d in s) for s in out]  # (min, opt, max), tuples or lists alike
    return Case(label, run)


def _profile_cases():
    return [_profile_case("图像输入 (-1, 3, 224, 224)，max_batch 128", (-1, 3, 224, 224), 52, 128),
            _profile_case("文本输入 (-1, -1)，context 52，max_batch 64，opt_batch 8", (-1, -1), 52, 64, 8),
            _profile_case("长度固定的文本输入 (-1, 52)", (-1, 52), 52, 32),
            _profile_case("长度固定的文本输入 (-1, 52)，给了 opt_length 60（不起作用：忽略，不报错）", (-1, 52), 52, 32, None, 60),
            _profile_case("max_batch = 1", (-1, -1), 24, 1),
            _profile_case("在线搜索那样的文本配置：opt_batch 1，opt_length 16", (-1, -1), 52, 64, 1, 16),
            _profile_case("opt_length 大于 context_length（应当报 ValueError）", (-1, -1), 52, 64, 1, 60),
            _profile_case("opt_batch 大于 max_batch（应当报 ValueError）", (-1, -1), 52, 16, 32),
            _profile_case("分辨率也是动态的图像输入 (-1, 3, -1, -1)（应当报 ValueError）", (-1, 3, -1, -1), 52, 8),
            _profile_case("batch 固定为 1 的图像输入 (1, 3, 224, 224)（应当报 ValueError）", (1, 3, 224, 224), 52, 8)]


def _profile_hidden(seed: int):
    rng = random.Random(seed)
    L, r, mb = rng.randint(8, 77), rng.choice([16, 32, 64, 224, 336]), rng.randint(2, 256)
    return [_profile_case("随机分辨率的图像输入", (-1, 3, r, r), L, mb, rng.choice([None, rng.randint(1, mb)])),
            _profile_case("随机 context 长度的文本输入", (-1, -1), L, mb, rng.choice([None, rng.randint(1, mb)])),
            _profile_case("长度固定的文本输入", (-1, L), L, mb),
            _profile_case("长度固定的文本输入，给了超出范围的 opt_length", (-1, L), L, mb, None, L + rng.randint(1, 9)),
            _profile_case("给了 opt_length 的文本输入", (-1, -1), L, mb, rng.randint(1, mb), rng.randint(1, L - 1)),
            _profile_case("opt_length 超出长度范围", (-1, -1), L, mb, None, L + rng.randint(1, 9)),
            _profile_case("opt_batch 大于 max_batch", (-1, -1), L, mb, mb + rng.randint(1, 9)),
            _profile_case("还有别的动态维", (-1, 3, -1, r), L, mb),
            _profile_case("batch 固定的输入", rng.choice([(rng.randint(1, 8), 3, r, r), (rng.randint(1, 8), -1)]), L, mb)]


def _profile_mutants() -> dict:
    def make(*, swap_min_opt=False, max_len_minus_1=False, min_len_full=False, fixed_min_1=False,
             text_axis_always=False, opt_default_1=False, no_check=False, all_dynamic_as_length=False,
             fixed_batch="raise", ignore_opt_length=False, no_length_check=False, length_max_is_opt=False,
             opt_length_anywhere=False):
        def answer(shape, context_length, max_batch, opt_batch=None, opt_length=None):
            if shape[0] >= 0 and fixed_batch == "raise":
                raise ValueError("the batch axis is fixed")
            opt_batch = opt_batch or (1 if opt_default_1 else max_batch)
            if not no_check and not 1 <= opt_batch <= max_batch:
                raise ValueError("need 1 <= opt_batch <= max_batch")
            if opt_length_anywhere and opt_length and not 1 <= opt_length <= context_length:
                raise ValueError("need 1 <= opt_length <= context_length")   # checked before knowing the graph has a length
            lo, opt, hi = [1], [opt_batch], [max_batch]
            if shape[0] >= 0 and fixed_batch == "itself":
                lo, opt, hi = [shape[0]], [shape[0]], [shape[0]]
            for axis, d in enumerate(shape[1:], start=1):
                is_length = (axis == 1 and len(shape) == 2 and (d < 0 or text_axis_always)) or \
                    (all_dynamic_as_length and d < 0)
                if is_length:
                    length = context_length if ignore_opt_length else (opt_length or context_length)
                    if not no_length_check and not 1 <= length <= context_length:
                        raise ValueError("need 1 <= opt_length <= context_length")
                    lo.append(context_length if min_len_full else 1)
                    opt.append(length)
                    hi.append(length if length_max_is_opt else context_length - 1 if max_len_minus_1 else context_length)
                elif d >= 0:
                    lo.append(1 if fixed_min_1 else d)
                    opt.append(d)
                    hi.append(d)
                else:
                    raise ValueError(f"axis {axis} is dynamic")
            if swap_min_opt:
                lo, opt = opt, lo
            return tuple(lo), tuple(opt), tuple(hi)
        return answer

    return {"min 和 opt 写反了（min > opt）": make(swap_min_opt=True),
            "长度的 max 写成 context_length - 1（最长的句子放不进）": make(max_len_minus_1=True),
            "长度的 min 也是 context_length（截过 padding 的短句跑不了）": make(min_len_full=True),
            "固定的维也给了从 1 开始的范围": make(fixed_min_1=True),
            "文本的第 1 维一律当成长度（长度固定的图才出错）": make(text_axis_always=True),
            "opt_batch 默认取 1": make(opt_default_1=True),
            "没有检查 1 <= opt_batch <= max_batch": make(no_check=True),
            "把所有动态维都当成长度": make(all_dynamic_as_length=True),
            "batch 固定时照样给 (1, opt_batch, max_batch)（TensorRT 不能用这个 profile）": make(fixed_batch="range"),
            "batch 固定时给 (d, d, d)，没有报错（max_batch 被悄悄忽略）": make(fixed_batch="itself"),
            "没理会 opt_length（长度的 opt 总是 context_length）": make(ignore_opt_length=True),
            "没有检查 1 <= opt_length <= context_length": make(no_length_check=True),
            "长度的 max 也取了 opt_length（比 opt 长的句子放不进）": make(length_max_is_opt=True),
            "长度固定的图上也检查 opt_length（它不起作用，应当忽略）": make(opt_length_anywhere=True)}


register(Exercise(
    id="09.7", title="TensorRT 的优化配置 (optimization profile)", points=3,
    hint="逐维想：min 和 max 是服务要能跑的范围（batch 1 到 max_batch；文本长度从截过 padding 的最短 1 到 context_length），"
         "opt 是调用者选的形状（opt_batch / opt_length，不给时取最大），要在 [1, max] 里，否则报 ValueError；"
         "固定的维三个数都等于它自己；第 0 维固定、或有 batch 和文本长度以外的动态维时，给不出合法的配置，报 ValueError。",
    reference=_reference_profile,
    cases=_profile_cases,
    mutants=_profile_mutants,
    hidden=_profile_hidden,
    builds=("cnclip_edu.deploy.trt.profile_shapes", "cnclip_edu.deploy.trt.plan_profile"),
))


# ----------------------------------------------------------------------------- 09.8 the TensorRT build
def _reference_build(trt, onnx_path, engine_path, context_length, max_batch, workspace_gib=1.0):
    from cnclip_edu.deploy.trt import build_plan

    build_plan(trt, trt.Logger(trt.Logger.WARNING), onnx_path, engine_path,
               lambda shape: _reference_profile(shape, context_length, max_batch), workspace_gib=workspace_gib)


def _build_case(label: str, inputs: dict | None, context_length: int, max_batch: int,
                workspace_gib: float = 1.0, as_path: bool = False) -> Case:
    """Run the answer on the recording stand-in with an ONNX file holding `inputs` (None: a broken file).

    as_path: hand the answer pathlib.Path objects instead of str (TensorRT's parse_from_file takes str only)."""
    def run(f):
        from cnclip_edu.deploy.trt_recorder import RecordingTensorRT, signature_onnx

        rec = RecordingTensorRT()
        with tempfile.TemporaryDirectory() as tmp:
            src, engine = Path(tmp) / "tower.onnx", Path(tmp) / "tower.engine"
            if inputs is None:
                src.write_bytes(b"\x08\x07 not an ONNX file")
                try:
                    f(rec, str(src), str(engine), context_length, max_batch, workspace_gib)
                    raised = False
                except NotImplementedError:
                    raise
                except Exception:  # noqa: BLE001 - any error stops the build; what matters is where
                    raised = True
                return {"报错了": raised, "调用 build_serialized_network 的次数": rec.build_calls,
                        "写出了引擎文件": engine.exists()}
            signature_onnx(src, inputs, {"tower": "text" if len(next(iter(inputs.values()))) == 2 else "image"})
            f(rec, src if as_path else str(src), engine if as_path else str(engine), context_length, max_batch,
              workspace_gib)
            return {**rec.summary(), "写出的文件就是 build_serialized_network 返回的 plan": rec.wrote_plan(engine)}
    return Case(label, run)


def _build_cases():
    return [_build_case("文本塔 (-1, -1)，context 52，max_batch 64", {"text": (-1, -1)}, 52, 64),
            _build_case("视觉塔 (-1, 3, 32, 32)，max_batch 16，工作区 0.5 GiB，路径是 pathlib.Path",
                        {"image": (-1, 3, 32, 32)}, 52, 16, 0.5, as_path=True),
            _build_case("两个输入的文本图 (input_ids, attention_mask)",
                        {"input_ids": (-1, -1), "attention_mask": (-1, -1)}, 24, 8),
            _build_case("坏掉的 ONNX 文件（解析失败）", None, 52, 8)]


def _build_hidden(seed: int):
    rng = random.Random(seed)
    L, r, mb, ws = rng.randint(8, 77), rng.choice([16, 32, 224]), rng.randint(1, 256), rng.choice([0.25, 1.0, 2.0, 4.0])
    return [_build_case("随机 context 长度和 max_batch 的文本塔", {"text": (-1, -1)}, L, mb, ws),
            _build_case("随机分辨率的视觉塔，路径是 pathlib.Path", {"image": (-1, 3, r, r)}, L, mb, ws, as_path=True),
            _build_case("长度固定的文本塔", {"text": (-1, L)}, L, mb, ws),
            _build_case("两个输入的图", {"input_ids": (-1, -1), "attention_mask": (-1, -1)}, L, mb, ws),
            _build_case("坏掉的 ONNX 文件", None, L, mb, ws)]


def _build_mutants() -> dict:
    def profile(shape, context_length, max_batch):
        return _reference_profile(shape, context_length, max_batch)

    def make(*, explicit_batch=False, no_flags=False, unshifted=False, fp16_flag=False, check_parse=True,
             workspace="bytes", add_profile=True, name=None, first_input_only=False, profile_per_input=False, write="bytes",
             path_as_given=False, order="right"):
        def answer(trt, onnx_path, engine_path, context_length, max_batch, workspace_gib=1.0):
            logger = trt.Logger(trt.Logger.WARNING)
            builder = trt.Builder(logger)
            if explicit_batch:
                flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
            else:
                flags = 0 if no_flags else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            if unshifted:                                     # the enum's value, not its bit: bit 0 is EXPLICIT_BATCH
                flags = int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            network = builder.create_network(flags)
            parser = trt.OnnxParser(network, logger)
            config = builder.create_builder_config()
            prof = builder.create_optimization_profile()

            def parse():
                ok = parser.parse_from_file(onnx_path if path_as_given else str(onnx_path))
                if check_parse and not ok:
                    raise RuntimeError("parse failed")

            def set_workspace():
                if workspace == "bytes":
                    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
                elif workspace == "float":
                    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib * 1024 ** 3)
                elif workspace == "gib":
                    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib))

            def fill_profile(prof):
                for i in range(1 if first_input_only else network.num_inputs):
                    inp = network.get_input(i)
                    if profile_per_input:
                        prof = builder.create_optimization_profile()
                    prof.set_shape(name or inp.name, *profile(tuple(inp.shape), context_length, max_batch))
                    if profile_per_input:
                        config.add_optimization_profile(prof)

            if order == "profile before parse":               # the network has no inputs yet: nothing is set
                fill_profile(prof)
                parse()
            else:
                parse()
            if order != "workspace after build":
                set_workspace()
            if fp16_flag:
                config.set_flag(trt.BuilderFlag.FP16)
            if order != "profile before parse":
                fill_profile(prof)
            if add_profile and not profile_per_input:
                config.add_optimization_profile(prof)
            plan = builder.build_serialized_network(network, config)
            if order == "workspace after build":              # too late: the build has used the config
                set_workspace()
            if plan is None:
                raise RuntimeError("build failed")
            if write == "bytes":
                Path(engine_path).write_bytes(bytes(plan))
            elif write == "str":
                Path(engine_path).write_text(str(plan))
        return answer

    return {"用了 EXPLICIT_BATCH 标志（TensorRT 8 的写法，10 起废弃）": make(explicit_batch=True),
            "创建网络时没有 STRONGLY_TYPED（精度不由图决定）": make(no_flags=True),
            "flags 是枚举值 1 本身，没有移位（打开的是第 0 位，不是 STRONGLY_TYPED 的第 1 位）": make(unshifted=True),
            "设了 BuilderFlag.FP16（强类型网络里不允许，11 已删除）": make(fp16_flag=True),
            "没有检查解析结果（坏文件也接着构建）": make(check_parse=False),
            "工作区上限的单位错了（GiB 数当成字节数）": make(workspace="gib"),
            "工作区上限是浮点数（TensorRT 只收整数字节）": make(workspace="float"),
            "没有设工作区上限": make(workspace=None),
            "profile 没有加进 config": make(add_profile=False),
            "形状设在了写死的输入名 'input' 上": make(name="input"),
            "只给第 0 个输入设了形状（两个输入的图才出错）": make(first_input_only=True),
            "每个输入一个 profile（两个输入的图才出错）": make(profile_per_input=True),
            "把 plan 转成字符串写进文件": make(write="str"),
            "顺序错：解析之前就按网络的输入填 profile（那时网络还没有输入）": make(order="profile before parse"),
            "顺序错：构建之后才设工作区上限（构建已经用过 config 了）": make(order="workspace after build"),
            "把 onnx_path 原样交给 parse_from_file（是 pathlib.Path 时真的 TensorRT 报 TypeError）":
                make(path_as_given=True)}


register(Exercise(
    id="09.8", title="构建 TensorRT 引擎", points=5,
    hint="顺序看依赖：一个对象要由另一个对象造出来，或者要读另一个对象里已经有的东西，它就排在后面（网络的输入要解析之后才有；"
         "构建用的是构建那一刻的 config）。标志用 STRONGLY_TYPED 的位（1 << 它的值）；解析只收 str 路径，失败就把解析器记下的错误报出来、"
         "不要继续；工作区上限是整数字节；同一个 profile 里给**每一个**输入按它自己的名字设形状（用练习 09.7 的函数）；"
         "构建返回 None 表示失败；plan 的字节原样写进 engine_path。",
    reference=_reference_build,
    cases=_build_cases,
    mutants=_build_mutants,
    hidden=_build_hidden,
    builds=("cnclip_edu.deploy.trt.build_plan", "cnclip_edu.deploy.trt.build_engine"),
    needs=("09.7",),
))
