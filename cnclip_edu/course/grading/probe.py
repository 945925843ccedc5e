"""The code the grader injects into the student's kernel: re-run the recorded answers, return plain data.

`check(id, answer)` records every answer in the kernel (`core._ANSWERS`). After the cell that made the
check has run (and once more at the end of the notebook), the grader executes a cell that loads
this file afresh and calls `run(spec)`; for each exercise id of the spec it writes
`<out>/<id>.json` (+ `<id>.<k>.npy` blobs) and nothing else. It never decides anything: the grader
compares what it finds there with the reference results it computes in its own process.

What is written for one answer:

- `{"status": "no_answer"}`: no check of this id ran in this kernel;
- `{"status": "value", "value": ...}`: the answer is plain data (a number, a tensor, None for the
  untouched stub, ...): it travels as is and the grader runs the cases on it itself;
- `{"status": "reference"}`: the answer is the library's reference object itself;
- `{"status": "ran", "cases": [...], "intact": bool}`: the answer is code; every case the grader
  asked for (the public ones, then the hidden ones drawn from the student's seed) was run with the
  exercise's tripwires armed, and each gives `{"result": <plain data>}`, `{"tripped": path}`,
  `{"raised": name, "message": text}`, `{"timeout": true}` or `{"unencodable": type}`.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

MESSAGE_CHARS = 300


class _CaseTimeout(BaseException):
    pass


def _alarm(_signum, _frame):
    raise _CaseTimeout()


def _write(out: Path, exercise_id: str, doc: dict, blobs: list[bytes]) -> None:
    for k, b in enumerate(blobs):
        (out / f"{exercise_id}.{k}.npy").write_bytes(b)
    tmp = out / f".{exercise_id}.json.tmp"
    tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out / f"{exercise_id}.json")  # a reader never sees half a file


def _run_case(case, answer, armed_factory, builds, case_timeout_s: float, protocol) -> tuple[dict, list[str], bool]:
    """One case with the tripwires armed and a time limit: (record, tripwire hits, wires intact)."""
    armed = armed_factory(builds)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case_timeout_s)
    try:
        try:
            result = case.run(answer)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            intact = armed.intact()
            armed.disarm()
        record: dict[str, Any] = {"result": result}
    except _CaseTimeout:
        record = {"timeout": True}
    except BaseException as exc:  # noqa: BLE001 - a tripwire, the stub's NotImplementedError, any error
        if type(exc).__name__ == "Tripped":
            record = {"tripped": armed.hits[0] if armed.hits else str(exc)}
        elif isinstance(exc, KeyboardInterrupt):
            raise  # the grader's own interrupt: stop the probe
        else:
            record = {"raised": type(exc).__name__, "message": str(exc)[:MESSAGE_CHARS]}
    finally:
        signal.signal(signal.SIGALRM, previous)
    return record, list(armed.hits), intact


def run(spec_text: str, protocol, tripwires) -> None:
    """Probe every id of the spec: {"ids": [...], "seeds": {id: int}, "out": folder, "case_timeout_s": s}."""
    from cnclip_edu.course.exercises import core

    spec = json.loads(spec_text)
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    answers = getattr(core, "_ANSWERS", {})
    for exercise_id in spec["ids"]:
        try:
            _probe_one(exercise_id, answers, spec, out, core, protocol, tripwires)
        except KeyboardInterrupt:
            raise  # the probe's time limit: the worker stops here
        except Exception as exc:  # noqa: BLE001 - a broken registry, a case that cannot be built, ...
            _write(out, exercise_id, {"status": "probe_error", "message": f"{type(exc).__name__}: {exc}"[:MESSAGE_CHARS]}, [])


def _probe_one(exercise_id: str, answers: dict, spec: dict, out: Path, core, protocol, tripwires) -> None:
    """Probe one exercise; writes its file."""
    if exercise_id not in answers:
        _write(out, exercise_id, {"status": "no_answer"}, [])
        return
    answer = answers[exercise_id]
    try:
        ex = core.get(exercise_id)
    except KeyError:
        _write(out, exercise_id, {"status": "no_answer"}, [])
        return
    if protocol.is_plain(answer):
        doc, blobs = protocol.encode(answer)
        _write(out, exercise_id, {"status": "value", "value": doc["value"]}, blobs)
        return
    if answer is ex.reference:
        _write(out, exercise_id, {"status": "reference"}, [])
        return
    cases = list(ex.run_cases())
    if ex.hidden is not None:
        cases += list(ex.hidden(int(spec["seeds"][exercise_id])))
    records, blobs, hits, intact = [], [], [], True
    for case in cases:
        record, case_hits, case_intact = _run_case(case, answer, tripwires.arm, tuple(ex.builds),
                                                   float(spec["case_timeout_s"]), protocol)
        hits += case_hits
        intact = intact and case_intact
        if "result" in record:
            try:
                doc, case_blobs = protocol.encode(record["result"])
            except Exception as exc:  # noqa: BLE001 - a module, a model, ...: named, not sent
                record = {"unencodable": f"{type(exc).__name__}: {exc}"[:MESSAGE_CHARS]}
            else:
                shift = len(blobs)
                blobs += case_blobs
                record = {"result": _shift(doc["value"], shift)}
        records.append(record)
        if "tripped" in record or record.get("raised") == "NotImplementedError":
            break  # the library reached, or the stub: the other cases cannot change the verdict
    _write(out, exercise_id, {"status": "ran", "cases": records, "hits": hits[:5], "intact": intact}, blobs)


def _shift(node: Any, by: int) -> Any:
    """Blob numbers of one case's encoding moved past the blobs of the cases before it."""
    if isinstance(node, list):
        return [_shift(v, by) for v in node]
    if isinstance(node, dict):
        node = {k: _shift(v, by) for k, v in node.items()}
        if node.get("t") in ("ndarray", "npscalar", "tensor"):
            node["b"] = node["b"] + by
        return node
    return node


def injected_source(folder: str, spec: dict) -> str:
    """The cell the grader executes in the kernel: fresh copies of protocol, tripwires and this file
    (loaded from their files, not imported, so that a notebook cannot have replaced them), then `run`."""
    files = {name: os.path.join(folder, f"{name}.py") for name in ("protocol", "tripwires", "probe")}
    return (
        "def __cnclip_grader_probe():\n"
        "    import importlib.util\n"
        "    def load(name, path):\n"
        "        spec = importlib.util.spec_from_file_location('_cnclip_grading_' + name, path)\n"
        "        module = importlib.util.module_from_spec(spec)\n"
        "        spec.loader.exec_module(module)\n"
        "        return module\n"
        f"    files = {files!r}\n"
        "    mods = {name: load(name, path) for name, path in files.items()}\n"
        f"    mods['probe'].run({json.dumps(spec)!r}, mods['protocol'], mods['tripwires'])\n"
        "__cnclip_grader_probe()\n"
        "del __cnclip_grader_probe\n"
    )
