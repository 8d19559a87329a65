"""check_determinism: run the same work under the same seed and show where results part.

Separate processes by default, because that is how a rerun happens: state left
in one interpreter (caches, RNGs advanced by imports, autotuners) cannot mask
or cause a difference. Outputs are compared bitwise unless a tolerance is given.
"""

from __future__ import annotations

import math
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import blake3

_ROOT = "(return value)"


@dataclass
class Difference:
    """Where two outputs first part, and the two values found there (short reprs)."""

    path: str
    first: str
    second: str
    reason: str = "values differ"


@dataclass
class DeterminismReport:
    """The verdict of check_determinism; truthy when every run matched the first."""

    deterministic: bool
    seed: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    in_process: bool = False
    rtol: float = 0.0
    atol: float = 0.0
    first_difference: str | None = None
    values: tuple[str, str] | None = None
    reason: str | None = None
    differing_run: int | None = None
    outputs: list[Any] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return self.deterministic

    def __str__(self) -> str:
        how = (
            "bitwise"
            if self.rtol == 0 and self.atol == 0
            else f"within rtol={self.rtol}, atol={self.atol}"
        )
        where = "in-process" if self.in_process else "separate processes"
        if self.deterministic:
            return f"deterministic: {len(self.runs)} runs ({where}, seed {self.seed}) matched {how}"
        assert self.values is not None
        return (
            f"not deterministic: run {self.differing_run} differs from run 1 at {self.first_difference} "
            f"({self.reason}): {self.values[0]} vs {self.values[1]} ({where}, seed {self.seed}, {how})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "deterministic": self.deterministic,
            "seed": self.seed,
            "in_process": self.in_process,
            "rtol": self.rtol,
            "atol": self.atol,
            "first_difference": self.first_difference,
            "values": list(self.values) if self.values else None,
            "reason": self.reason,
            "differing_run": self.differing_run,
            "runs": self.runs,
        }


# -- comparison ---------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(path: str, key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_ndarray(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, (np.ndarray, np.generic))


def _tensor_to_numpy(value: Any) -> Any:
    tensor = value.detach().cpu()
    if tensor.is_conj():
        tensor = tensor.resolve_conj()
    try:
        return tensor.numpy()
    except TypeError:  # bfloat16 and friends: float32 holds them exactly
        return tensor.float().numpy()


def _float_bits(x: float) -> bytes:
    import struct

    return struct.pack("<d", x)


def _numbers_match(a: float, b: float, rtol: float, atol: float) -> bool:
    if rtol == 0 and atol == 0:
        return _float_bits(a) == _float_bits(b) or (math.isnan(a) and math.isnan(b))
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def _bits_differ(np: Any, a: Any, b: Any) -> Any:
    """Element-wise: not the same float bits (sign of zero included), NaN matching NaN."""
    same = (a == b) & (np.signbit(a) == np.signbit(b))
    return ~(same | (np.isnan(a) & np.isnan(b)))


def _compare_arrays(
    a: Any, b: Any, path: str, rtol: float, atol: float, kind: str
) -> Difference | None:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    label = path or _ROOT
    if a.dtype != b.dtype:
        return Difference(label, f"{kind} {a.dtype}", f"{kind} {b.dtype}", "dtypes differ")
    if a.shape != b.shape:
        return Difference(label, f"shape {a.shape}", f"shape {b.shape}", "shapes differ")
    if a.dtype == object:
        return _compare(a.tolist(), b.tolist(), path, rtol, atol)
    if np.issubdtype(a.dtype, np.inexact):
        if rtol == 0 and atol == 0:
            differ = _bits_differ(np, a.real, b.real)
            if np.issubdtype(a.dtype, np.complexfloating):
                differ |= _bits_differ(np, a.imag, b.imag)
        else:
            differ = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    else:
        differ = a != b
    bad = np.flatnonzero(differ)
    if bad.size == 0:
        return None
    index = np.unravel_index(bad[0], a.shape)
    where = path + ("[" + ", ".join(str(int(i)) for i in index) + "]" if a.ndim else "")
    return Difference(
        where or _ROOT,
        _short(a[index].item() if a.ndim else a.item()),
        _short(b[index].item() if b.ndim else b.item()),
        f"{int(bad.size)} of {a.size} elements differ" if a.ndim else "values differ",
    )


def _compare(a: Any, b: Any, path: str, rtol: float, atol: float) -> Difference | None:
    label = path or _ROOT
    if _is_tensor(a) or _is_tensor(b):
        if not (_is_tensor(a) and _is_tensor(b)):
            return Difference(label, type(a).__name__, type(b).__name__, "types differ")
        if a.dtype != b.dtype:
            return Difference(label, f"tensor {a.dtype}", f"tensor {b.dtype}", "dtypes differ")
        return _compare_arrays(_tensor_to_numpy(a), _tensor_to_numpy(b), path, rtol, atol, "tensor")
    if _is_ndarray(a) and _is_ndarray(b):
        return _compare_arrays(a, b, path, rtol, atol, "array")
    if _is_ndarray(a) or _is_ndarray(b):  # a numpy scalar against a Python one: compare the numbers
        a, b = (x.item() if _is_ndarray(x) and x.ndim == 0 else x for x in (a, b))
        if _is_ndarray(a) or _is_ndarray(b):
            return Difference(label, type(a).__name__, type(b).__name__, "types differ")
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        same = type(a) is type(b) and a == b
        return None if same else Difference(label, _short(a), _short(b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return None if a == b else Difference(label, _short(a), _short(b))
        same = _numbers_match(float(a), float(b), rtol, atol)
        return None if same else Difference(label, _short(a), _short(b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys_a, keys_b = list(a.keys()), list(b.keys())
        missing = [k for k in keys_a if k not in b] + [k for k in keys_b if k not in a]
        if missing:
            key = missing[0]
            return Difference(
                _join(path, key),
                _short(a[key]) if key in a else "(missing)",
                _short(b[key]) if key in b else "(missing)",
                "keys differ",
            )
        for key in keys_a:
            found = _compare(a[key], b[key], _join(path, key), rtol, atol)
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b):
            return Difference(label, type(a).__name__, type(b).__name__, "types differ")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):  # lengths are compared after
            found = _compare(x, y, f"{path}[{i}]", rtol, atol)
            if found:
                return found
        if len(a) != len(b):
            return Difference(label, f"length {len(a)}", f"length {len(b)}", "lengths differ")
        return None
    if type(a) is not type(b):
        return Difference(label, type(a).__name__, type(b).__name__, "types differ")
    try:
        same = bool(a == b)
    except Exception:
        same = repr(a) == repr(b)
    return None if same else Difference(label, _short(a), _short(b))


def compare(a: Any, b: Any, rtol: float = 0.0, atol: float = 0.0) -> Difference | None:
    """The first place where `a` and `b` differ (numbers, arrays, tensors, dicts, lists), or None.

    Bitwise when rtol and atol are 0 (NaN equals NaN, -0.0 differs from 0.0); else
    |a - b| <= atol + rtol * |b| element by element. Dtypes and shapes must match.
    """
    _check_tolerance(rtol, "rtol")
    _check_tolerance(atol, "atol")
    return _compare(a, b, "", float(rtol), float(atol))


def _check_tolerance(value: Any, what: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value >= 0
        or math.isinf(value)
    ):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")


def output_digest(value: Any) -> str:
    """A short content digest of a run's output: equal outputs, equal digests, in any process."""
    hasher = blake3.blake3()
    _feed(hasher, value)
    return hasher.hexdigest()[:16]


def _feed(hasher: Any, value: Any) -> None:
    if _is_tensor(value):
        value = _tensor_to_numpy(value)
    if _is_ndarray(value) and getattr(value, "dtype", None) is not None and value.dtype != object:
        import numpy as np

        array = np.ascontiguousarray(value)
        hasher.update(f"array:{array.dtype.str}:{array.shape}:".encode())
        hasher.update(array.tobytes())
    elif isinstance(value, Mapping):
        hasher.update(b"map{")
        for key in sorted(value, key=repr):
            hasher.update(repr(key).encode() + b":")
            _feed(hasher, value[key])
        hasher.update(b"}")
    elif isinstance(value, (list, tuple)):
        hasher.update(f"{type(value).__name__}[".encode())
        for item in value:
            _feed(hasher, item)
            hasher.update(b",")
        hasher.update(b"]")
    elif isinstance(value, float):
        hasher.update(b"float:" + _float_bits(value))
    else:
        hasher.update(f"{type(value).__name__}:{value!r};".encode())


# -- running ------------------------------------------------------------------


def _run_child(
    writer: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], seed: int
) -> None:
    """Body of each spawned run: seed like a fresh script would, call fn, send back pickled bytes."""
    import os

    from repro_common.seeds import seed_everything

    try:
        os.environ["MLREPRO_SEED"] = str(seed)
        seed_everything(seed)
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - started
        payload = pickle.dumps(("ok", result, seconds), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        payload = pickle.dumps(("error", traceback.format_exc(), 0.0))
    writer.send_bytes(payload)
    writer.close()


def _run_in_process(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], seed: int
) -> Any:
    from repro_common.seeds import seed_everything

    seed_everything(seed)
    started = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - started


def _run_spawned(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], seed: int, index: int
) -> Any:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_run_child,
        args=(writer, fn, args, kwargs, seed),
        name=f"mlrepro-determinism-{index}",
    )
    process.start()
    writer.close()
    try:
        payload = reader.recv_bytes()
    except EOFError:
        payload = None
    finally:
        reader.close()
        process.join()
    if payload is None:
        raise RuntimeError(
            f"run {index} of {_name(fn)} died without a result (exit code {process.exitcode})"
        )
    status, value, seconds = pickle.loads(payload)
    if status != "ok":
        raise RuntimeError(f"run {index} of {_name(fn)} raised:\n{value}")
    return value, seconds


def _name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _check_importable(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Spawned runs re-import fn by name: fail early, in the caller, with the way out."""
    hint = "define it at module level in an importable file, or pass in_process=True"
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise ValueError(
            f"check_determinism cannot send {_name(fn)} to another process ({exc}): {hint}"
        ) from None
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise ValueError(
            f"{_name(fn)} lives in an interactive __main__ that other processes cannot import: {hint}"
        )
    try:
        pickle.dumps((args, kwargs))
    except Exception as exc:
        raise ValueError(
            f"check_determinism cannot send the arguments to another process: {exc}"
        ) from None


def check_determinism(
    fn: Callable[..., Any],
    runs: int = 2,
    seed: int | None = None,
    in_process: bool = False,
    rtol: float = 0.0,
    atol: float = 0.0,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
) -> DeterminismReport:
    """Run `fn(*args, **kwargs)` `runs` times under one seed and compare what it returns.

    Each run is a fresh process (multiprocessing "spawn") with MLREPRO_SEED set and
    `seed_everything(seed)` called first, so `fn` may call `seed_everything()` itself
    (with `deterministic=True`, say) and get the same seed. `fn` must be importable
    (module level) and its result picklable. `in_process=True` reruns in this
    process instead, reseeding before each run (this process's RNGs are left
    advanced). The seed is the argument, else MLREPRO_SEED / PL_GLOBAL_SEED, else
    one drawn from the OS and reported.

    Returns a DeterminismReport (truthy when deterministic) naming the first
    difference by path, e.g. ``metrics.loss[3]``, with what each run returned in
    `.outputs`. Raises RuntimeError if a run fails.
    """
    from repro_common.seeds import resolve_seed

    if not callable(fn):
        raise ValueError(f"check_determinism needs a callable, got {type(fn).__name__}")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 2:
        raise ValueError(f"runs must be an integer >= 2, got {runs!r}")
    _check_tolerance(rtol, "rtol")
    _check_tolerance(atol, "atol")
    chosen, _source = resolve_seed(seed)
    call_kwargs = dict(kwargs or {})
    call_args = tuple(args)
    if not in_process:
        _check_importable(fn, call_args, call_kwargs)
    report = DeterminismReport(
        deterministic=True, seed=chosen, in_process=in_process, rtol=float(rtol), atol=float(atol)
    )
    first: Any = None
    for index in range(1, runs + 1):
        if in_process:
            result, seconds = _run_in_process(fn, call_args, call_kwargs, chosen)
        else:
            result, seconds = _run_spawned(fn, call_args, call_kwargs, chosen, index)
        report.runs.append(
            {
                "run": index,
                "output": type(result).__name__,
                "digest": output_digest(result),
                "seconds": round(seconds, 3),
            }
        )
        report.outputs.append(result)
        if index == 1:
            first = result
            continue
        found = compare(first, result, rtol, atol)
        if found and report.deterministic:
            report.deterministic = False
            report.first_difference = found.path
            report.values = (found.first, found.second)
            report.reason = found.reason
            report.differing_run = index
    return report
