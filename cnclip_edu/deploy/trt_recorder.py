"""A recording stand-in for the `tensorrt` module: builder code runs here without a GPU, and we read what it did.

    rec = RecordingTensorRT()
    build_engine(rec, "deploy/course.txt.fp32.onnx", "/tmp/x.engine", ...)   # code written for `import tensorrt as trt`
    rec.summary()   # plain data: network flags, workspace, the profiles added to the config, whether it built

Notebook 09's student writes the TensorRT build as a function of the module (`build_engine(trt, ...)`);
the check passes this object instead of `tensorrt`. It offers the part of the TensorRT Python API an
engine build uses — `Logger`, `Builder` (`create_network`, `create_builder_config`,
`create_optimization_profile`, `build_serialized_network`), `OnnxParser` (`parse_from_file`, `parse`,
`num_errors`, `get_error`), the network's inputs (`num_inputs`, `get_input(i).name / .shape`),
`IBuilderConfig.set_memory_pool_limit / set_flag / clear_flag / add_optimization_profile`,
`IOptimizationProfile.set_shape(name, min, opt, max)` — with the names and signatures of TensorRT 10,
records every call, and then judges the build as TensorRT would: `build_serialized_network` returns
None (and logs why) when the network was not parsed, no profile was added, or a profile misses an
input, names an input the network lacks, or breaks min <= opt <= max or a fixed dimension.

The parser reads the real ONNX file (inputs, their names and dynamic axes), so the recorded profile
can be compared with `trt.plan_profile`. Names that TensorRT 10 deprecated and TensorRT 11 removed are
absent, and reaching for one raises an AttributeError saying what replaced it:
`NetworkDefinitionCreationFlag.EXPLICIT_BATCH` (every network is explicit-batch since TensorRT 10.0)
and `BuilderFlag.FP16` (weak typing, deprecated in 10.12: precision now comes from the graph, e.g. an
fp16 ONNX file in a STRONGLY_TYPED network). The "plan" is a few bytes naming what was built, not an
engine: nothing here runs a network.
"""
from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

Shape = tuple[int, ...]


# names TensorRT 10 deprecated and 11 removed, per enum: what to say when code reaches for one
_REMOVED: dict[str, dict[str, str]] = {
    "NetworkDefinitionCreationFlag": {
        "EXPLICIT_BATCH": "deprecated in TensorRT 10.0 and removed in 11: every network is explicit-batch now "
                          "(the batch axis is an ordinary axis with its own range in the optimization profile); "
                          "create the network with 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)"},
    "BuilderFlag": {
        name: f"weak typing (BuilderFlag.{name}) is deprecated since TensorRT 10.12, removed in 11, and not allowed "
              f"in a STRONGLY_TYPED network: the precision comes from the graph (build an fp16 ONNX file for fp16)"
        for name in ("FP16", "BF16", "INT8", "FP8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS")},
}


class _EnumMeta(enum.EnumMeta):
    """Enum classes that explain the TensorRT names they no longer have (`_REMOVED`)."""

    def __getattr__(cls, name: str) -> Any:
        gone = _REMOVED.get(cls.__name__, {})
        if name in gone:
            raise AttributeError(f"tensorrt.{cls.__name__}.{name}: {gone[name]}")
        raise AttributeError(f"tensorrt.{cls.__name__} has no member {name!r}")


class NetworkDefinitionCreationFlag(enum.IntEnum, metaclass=_EnumMeta):
    STRONGLY_TYPED = 1
    PREFER_AOT_PYTHON_PLUGINS = 2
    PREFER_JIT_PYTHON_PLUGINS = 3


class BuilderFlag(enum.IntEnum, metaclass=_EnumMeta):
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    DISABLE_TIMING_CACHE = 5
    TF32 = 6
    SPARSE_WEIGHTS = 7


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


class Logger:
    """tensorrt.Logger(min_severity): records what TensorRT would have logged."""

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = 2):
        self.min_severity = min_severity
        self.messages: list[str] = []

    def log(self, severity: int, msg: str) -> None:
        self.messages.append(msg)


_Logger = Logger  # the class, for annotations inside RecordingTensorRT (where `Logger` is an attribute)


class _Tensor:
    def __init__(self, name: str, shape: Shape):
        self.name, self.shape = name, shape

    def __repr__(self) -> str:
        return f"ITensor(name={self.name!r}, shape={self.shape})"


class _Network:
    def __init__(self, flags: int):
        self.flags = flags
        self.inputs: list[_Tensor] = []
        self.outputs: list[_Tensor] = []
        self.parsed_from: str | None = None

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> _Tensor:
        return self.inputs[index]

    def get_output(self, index: int) -> _Tensor:
        return self.outputs[index]


class _ParserError:
    def __init__(self, desc: str):
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return self._desc


def _dims(value_info) -> Shape:
    """An ONNX input's shape as TensorRT shows it: -1 for every symbolic (dynamic) axis."""
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                 for d in value_info.type.tensor_type.shape.dim)


class OnnxParser:
    """tensorrt.OnnxParser(network, logger): fills the network's inputs and outputs from an ONNX file."""

    def __init__(self, network: _Network, logger: Logger):
        if not isinstance(network, _Network):
            raise TypeError(f"OnnxParser(network, logger): network must come from builder.create_network(), "
                            f"got {type(network).__name__}")
        self.network, self.logger = network, logger
        self.errors: list[_ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> _ParserError:
        return self.errors[index]

    def clear_errors(self) -> None:
        self.errors.clear()

    def parse_from_file(self, model: str) -> bool:
        if not isinstance(model, str):  # TensorRT's pybind binding takes a str only: a pathlib.Path is a TypeError
            raise TypeError(f"parse_from_file(): incompatible function arguments: takes a str path, got {type(model).__name__}")
        path = Path(model)
        if not path.is_file():
            self.errors.append(_ParserError(f"ONNX file not found: {model}"))
            return False
        return self._parse(path.read_bytes(), path.name)

    def parse(self, model: bytes, path: str | None = None) -> bool:
        return self._parse(bytes(model), Path(path).name if path else "<bytes>")

    def _parse(self, data: bytes, name: str) -> bool:
        import onnx

        try:
            graph = onnx.load_from_string(data).graph
        except Exception as exc:  # noqa: BLE001 - any undecodable file is a parse failure, as in TensorRT
            self.errors.append(_ParserError(f"{name}: not a valid ONNX model ({type(exc).__name__})"))
            return False
        if not graph.input:
            self.errors.append(_ParserError(f"{name}: the graph has no inputs"))
            return False
        weights = {w.name for w in graph.initializer}
        self.network.inputs = [_Tensor(i.name, _dims(i)) for i in graph.input if i.name not in weights]
        self.network.outputs = [_Tensor(o.name, _dims(o)) for o in graph.output]
        self.network.parsed_from = name
        return True


class _Profile:
    def __init__(self, recorder: "RecordingTensorRT"):
        self.shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
        self._recorder = recorder

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 - TensorRT's names
        lo, mid, hi = (tuple(int(d) for d in s) for s in (min, opt, max))
        self.shapes[str(input)] = (lo, mid, hi)

    def get_shape(self, input: str) -> list[Shape]:
        return list(self.shapes.get(input, ((), (), ())))


class _BuilderConfig:
    def __init__(self):
        self.memory_pools: dict[str, int] = {}
        self.flags_set: set[str] = set()
        self.flags_cleared: set[str] = set()
        self.profiles: list[_Profile] = []

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        if not isinstance(pool, MemoryPoolType):
            raise TypeError(f"set_memory_pool_limit(pool, pool_size): pool must be a trt.MemoryPoolType, "
                            f"got {pool!r}")
        if not isinstance(pool_size, int) or isinstance(pool_size, bool):  # TensorRT's binding takes an integer
            raise TypeError(f"set_memory_pool_limit(pool, pool_size): pool_size is a number of bytes (int), "
                            f"got {pool_size!r}")
        self.memory_pools[pool.name] = pool_size

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags_set.add(BuilderFlag(flag).name)
        self.flags_cleared.discard(BuilderFlag(flag).name)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags_cleared.add(BuilderFlag(flag).name)
        self.flags_set.discard(BuilderFlag(flag).name)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return BuilderFlag(flag).name in self.flags_set

    def snapshot(self) -> "_BuilderConfig":
        """A copy of the settings as they are now (a build uses the config as it is when it runs)."""
        copy = _BuilderConfig()
        copy.memory_pools, copy.flags_set, copy.flags_cleared = \
            dict(self.memory_pools), set(self.flags_set), set(self.flags_cleared)
        for p in self.profiles:
            q = _Profile(p._recorder)
            q.shapes = dict(p.shapes)
            copy.profiles.append(q)
        return copy

    def add_optimization_profile(self, profile: _Profile) -> int:
        if not isinstance(profile, _Profile):
            raise TypeError(f"add_optimization_profile: expected builder.create_optimization_profile(), "
                            f"got {type(profile).__name__}")
        self.profiles.append(profile)
        return len(self.profiles) - 1


class _HostMemory(bytes):
    """What build_serialized_network returns: bytes(plan) and file.write(plan) both work, as with IHostMemory."""

    @property
    def nbytes(self) -> int:
        return len(self)


class Builder:
    """tensorrt.Builder(logger)."""

    def __init__(self, logger: Logger, _recorder: "RecordingTensorRT"):
        if not isinstance(logger, Logger):
            raise TypeError(f"trt.Builder(logger): logger must be a trt.Logger, got {type(logger).__name__}")
        self.logger, self._rec = logger, _recorder

    def create_network(self, flags: int = 0) -> _Network:
        network = _Network(int(flags))
        self._rec.networks.append(network)
        return network

    def create_builder_config(self) -> _BuilderConfig:
        config = _BuilderConfig()
        self._rec.configs.append(config)
        return config

    def create_optimization_profile(self) -> _Profile:
        return _Profile(self._rec)

    def build_serialized_network(self, network: _Network, config: _BuilderConfig) -> _HostMemory | None:
        self._rec.build_calls += 1
        problems = _build_problems(network, config)
        self._rec.built = (network, config.snapshot(), problems)   # what this build saw: later settings are too late
        if problems:
            for p in problems:
                self.logger.log(Logger.ERROR, p)
            return None
        plan = json.dumps({"network": network.parsed_from, "inputs": [t.name for t in network.inputs]})
        self._rec.plan = _HostMemory(b"recorded-plan:" + plan.encode())
        return self._rec.plan


def _build_problems(network: _Network, config: _BuilderConfig) -> list[str]:
    """Why TensorRT would refuse this build (empty: it would build)."""
    if not network.inputs:
        return ["the network is empty: nothing was parsed into it (did parsing fail?)"]
    dynamic = [t for t in network.inputs if -1 in t.shape]
    if dynamic and not config.profiles:
        return [f"network has dynamic inputs ({', '.join(t.name for t in dynamic)}) but no optimization profile "
                f"was added to the builder config"]
    problems = []
    by_name = {t.name: t for t in network.inputs}
    for k, profile in enumerate(config.profiles):
        for name in profile.shapes:
            if name not in by_name:
                problems.append(f"profile {k}: the network has no input named {name!r} "
                                f"(its inputs: {', '.join(by_name)})")
        for t in dynamic:
            if t.name not in profile.shapes:
                problems.append(f"profile {k}: no shapes for the dynamic input {t.name!r} {t.shape}")
                continue
            for what, s in zip(("min", "opt", "max"), profile.shapes[t.name]):
                if len(s) != len(t.shape) or any(d != -1 and d != v for d, v in zip(t.shape, s)):
                    problems.append(f"profile {k}: {t.name} {what} shape {s} does not fit the input shape {t.shape}")
            lo, opt, hi = profile.shapes[t.name]
            if len(lo) == len(opt) == len(hi) and not all(1 <= a <= b <= c for a, b, c in zip(lo, opt, hi)):
                problems.append(f"profile {k}: {t.name} needs 1 <= min <= opt <= max on every axis, "
                                f"got min {lo}, opt {opt}, max {hi}")
    return problems


class RecordingTensorRT:
    """Pass this where code expects the `tensorrt` module; `summary()` says what the code did, as plain data."""

    __version__ = "10 (recording stand-in: no GPU, nothing is built)"
    Logger = Logger
    OnnxParser = OnnxParser
    NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
    BuilderFlag = BuilderFlag
    MemoryPoolType = MemoryPoolType

    def __init__(self):
        self.networks: list[_Network] = []
        self.configs: list[_BuilderConfig] = []
        self.build_calls = 0
        self.built: tuple[_Network, _BuilderConfig, list[str]] | None = None
        self.plan: _HostMemory | None = None

    def Builder(self, logger: _Logger) -> Builder:  # noqa: N802 - TensorRT's name
        return Builder(logger, self)

    def summary(self) -> dict[str, Any]:
        """What the build did: the facts a reviewer checks, as plain data (no objects), keyed in Chinese for the
        course's check messages."""
        network, config, problems = self.built if self.built else (
            self.networks[-1] if self.networks else None, self.configs[-1] if self.configs else None, None)
        flags = network.flags if network else 0
        return {
            "网络标志 (network flags)": sorted(f.name for f in NetworkDefinitionCreationFlag if flags >> int(f) & 1),
            "解析的文件": network.parsed_from if network else None,
            "工作区上限 (字节)": config.memory_pools.get("WORKSPACE") if config else None,
            "设置的构建标志 (builder flags)": sorted(config.flags_set) if config else [],
            "加进 config 的 profile": [{name: [list(s) for s in shapes] for name, shapes in sorted(p.shapes.items())}
                               for p in config.profiles] if config else [],
            "build_serialized_network 调用次数": self.build_calls,
            "模拟对象查出的构建问题": problems,
        }

    def wrote_plan(self, engine_path: str | Path) -> bool:
        """Whether `engine_path` holds exactly the bytes build_serialized_network returned."""
        path = Path(engine_path)
        return self.plan is not None and path.is_file() and path.read_bytes() == bytes(self.plan)


def signature_onnx(path: str | Path, inputs: dict[str, Shape], metadata: dict[str, str] | None = None,
                   dtype: str = "int64") -> str:
    """Write an ONNX file that has only these inputs (-1 = a dynamic axis) and one Identity output each.

    What the stand-in's parser reads is the inputs, so a build can be checked on graphs of any shape
    (two inputs, a fixed text length, odd resolutions) in milliseconds, without exporting a model.
    """
    import onnx
    from onnx import TensorProto, helper

    elem = {"int64": TensorProto.INT64, "float32": TensorProto.FLOAT}[dtype]
    axis_names = ("batch", "length", "h", "w")

    def dims(shape: Shape) -> list:
        return [axis_names[i] if d == -1 else int(d) for i, d in enumerate(shape)]

    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name in inputs]
    graph = helper.make_graph(nodes, "signature",
                              [helper.make_tensor_value_info(n, elem, dims(s)) for n, s in inputs.items()],
                              [helper.make_tensor_value_info(f"{n}_out", elem, dims(s)) for n, s in inputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))
    return str(path)
