"""Seeds: one global seed, named sub-seeds, and a record of every source of randomness.

Seeding touches only libraries the script has already imported (as Sacred does):
importing torch or numpy just to seed them would slow every script and could
change what a run does. Capture is passive: it reads seeds and RNG states as the
user left them, so runs seeded by Lightning or `torch.manual_seed` are recorded
too, and a run about which nothing is known is marked unseeded.
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import blake3

from repro_common.isolation import guarded
from repro_common.logs import Once

log = logging.getLogger("mlrepro")

MAX_SEED = 2**32 - 1
SEED_RANGE = f"an integer from 0 to {MAX_SEED} (2**32-1)"
SEED_ENV_VARS = ("MLREPRO_SEED", "PL_GLOBAL_SEED")
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")
_DERIVE_DOMAIN = "mlrepro.derive_seed/1"
_WORKER_DOMAIN = "mlrepro.worker_seed/1"

_lock = threading.Lock()
_state: dict[str, Any] = {"global": None, "source": None, "frameworks": [], "derived": {}}
_warned = Once()
_env_seed_applied = False  # MLREPRO_SEED is applied once, at the first capture
_HASHSEED_AT_IMPORT = os.environ.get("PYTHONHASHSEED")


# -- validation ---------------------------------------------------------------


def check_seed(value: Any, what: str = "seed") -> int:
    """Return `value` as an int seed, or raise ValueError naming the accepted range."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be {SEED_RANGE}, got a bool ({value!r})")
    try:
        number = operator.index(value)  # int and numpy integers; never floats or strings
    except TypeError:
        raise ValueError(
            f"{what} must be {SEED_RANGE}, got {type(value).__name__} {value!r}"
        ) from None
    if not 0 <= number <= MAX_SEED:
        raise ValueError(f"{what} must be {SEED_RANGE}, got {number}")
    return number


def parse_seed(text: str, what: str) -> int:
    """A seed from an environment variable or the command line: decimal digits only."""
    stripped = text.strip()
    if not stripped.lstrip("-").isdigit():
        raise ValueError(f"{what}={text!r} is not a seed: expected {SEED_RANGE}")
    return check_seed(int(stripped), what)


def resolve_seed(seed: Any = None) -> tuple[int, str]:
    """The seed to use and where it came from: argument, MLREPRO_SEED, PL_GLOBAL_SEED, else the OS."""
    if seed is not None:
        return check_seed(seed), "argument"
    for name in SEED_ENV_VARS:
        text = os.environ.get(name)
        if text is not None and text.strip():
            return parse_seed(text, name), name
    return int.from_bytes(os.urandom(4), "big"), "os"


# -- setting seeds ------------------------------------------------------------


def seed_everything(
    seed: int | None = None, deterministic: bool = False, workers: bool = True
) -> dict[str, Any]:
    """Seed every RNG already in use with one recorded seed; return the seed record.

    The seed is the argument, else MLREPRO_SEED, else PL_GLOBAL_SEED, else one drawn
    from the OS (and recorded: a run is never left unseeded and unrecorded). Seeds
    Python `random`, numpy's global RNG, torch (CPU and every CUDA device), Keras and
    TensorFlow — each only if already imported: import them first. Sets PL_GLOBAL_SEED
    and PL_SEED_WORKERS so Lightning and its sub-processes agree.

    `deterministic=True` also asks torch for deterministic algorithms, turns cuDNN
    autotuning off, sets CUBLAS_WORKSPACE_CONFIG, and sets PYTHONHASHSEED for child
    processes (the running interpreter's hash seed cannot change after start-up).

    The returned dict is the manifest's `seeds` section plus `frameworks`, the
    libraries this call seeded.
    """
    value, source = resolve_seed(seed)
    frameworks = _seed_frameworks(value)
    os.environ["PL_GLOBAL_SEED"] = str(value)
    os.environ["PL_SEED_WORKERS"] = "1" if workers else "0"
    if deterministic:
        _enable_determinism(value)
    with _lock:
        if _state["global"] != value:
            _state["derived"] = {}
        _state.update({"global": value, "source": source, "frameworks": frameworks})
    log.info("mlrepro: seed %d (from %s) set for %s", value, source, ", ".join(frameworks))
    record = collect_seeds([])
    record["frameworks"] = list(frameworks)
    return record


def seed_from_environment(errors: list[dict[str, Any]]) -> None:
    """`MLREPRO_SEED=N python train.py`, no code change: seed at the first capture, before the run.

    Called by capture(), so for MLflow at the provider's first capture (inside
    `start_run`, before the user's training) and for W&B when the callback starts.
    Seeds every framework already imported, once per process, recorded with source
    "environment". Its limits: a framework imported later is not seeded, randomness
    drawn before the first capture (a model built before `start_run`) is not
    replayed, and code that seeds itself later wins: seed_everything() replaces
    the record, and a later `torch.manual_seed` shows as source "torch".
    """
    global _env_seed_applied
    with _lock:
        if _env_seed_applied or _state["global"] is not None:
            return
        _env_seed_applied = True
    text = os.environ.get("MLREPRO_SEED")
    if text is None or not text.strip():
        return
    try:
        value = parse_seed(text, "MLREPRO_SEED")
    except ValueError as exc:
        errors.append({"collector": "seeds.environment", "error": f"{exc}: nothing seeded"})
        return
    if value == guarded("seeds.torch", _torch_initial_seed, None, errors):
        # The code seeded itself with this very seed (a HF Trainer's set_seed(args.seed)),
        # and this first capture may come mid-run (inside Trainer.train): seeding again
        # here would restart the streams the original run went on drawing from.
        return
    seed_everything(value)
    with _lock:
        _state["source"] = "environment"


def _seed_frameworks(value: int) -> list[str]:
    random.seed(value)
    seeded = ["random"]
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(value)
        seeded.append("numpy")
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(value)  # CPU now, every CUDA device when CUDA starts
        seeded.append("torch")
        if torch.cuda.is_available():
            seeded.append("torch.cuda")
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "utils"):
        keras.utils.set_random_seed(value)  # also resets Keras' global SeedGenerator
        seeded.append("keras")
    elif "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(value)
        seeded.append("tensorflow")
    return seeded


def _cuda_initialised() -> bool:
    return "torch" in sys.modules and bool(sys.modules["torch"].cuda.is_initialized())


def _warn_once(key: str, message: str) -> None:
    if _warned.first(key):
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _enable_determinism(value: int) -> None:
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in CUBLAS_DETERMINISTIC:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC[0]
    os.environ.setdefault("PYTHONHASHSEED", str(value))  # for child processes only
    if "torch" in sys.modules:
        import torch

        if _cuda_initialised():
            _warn_once(
                "cuda-initialised",
                "mlrepro: CUDA was initialised before seed_everything(deterministic=True); "
                "CUBLAS_WORKSPACE_CONFIG may not take effect: call it before any CUDA work",
            )
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            _warn_once(
                "torch-not-imported",
                "mlrepro: torch is installed but not imported, so seed_everything(deterministic=True) "
                "could not switch on its deterministic algorithms: import torch first",
            )
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].config.experimental.enable_op_determinism()


# -- named sub-seeds ----------------------------------------------------------


def current_seed() -> int | None:
    """The global seed of this process: seed_everything's, else MLREPRO_SEED, else PL_GLOBAL_SEED."""
    with _lock:
        if _state["global"] is not None:
            return int(_state["global"])
    for name in SEED_ENV_VARS:
        text = os.environ.get(name)
        if text is not None and text.strip():
            return parse_seed(text, name)
    return None


def derive_seed(name: str, seed: int | None = None) -> int:
    """A named sub-seed in [0, 2**32-1]: blake3 of (global seed, name), the same on every machine.

    Never Python's `hash()`, which is salted per process. Recorded in `seeds.derived`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"derive_seed needs a non-empty name, got {name!r}")
    if seed is None:
        base = current_seed()
        if base is None:
            raise ValueError(
                f"derive_seed({name!r}) needs a global seed: call seed_everything() first, "
                "set MLREPRO_SEED, or pass seed="
            )
    else:
        base = check_seed(seed)
    digest = blake3.blake3(f"{_DERIVE_DOMAIN}:{base}:{name}".encode()).digest()
    value = int.from_bytes(digest[:4], "big")
    with _lock:
        _state["derived"][name] = value
    return value


def numpy_generator(name: str, seed: int | None = None) -> Any:
    """A `numpy.random.Generator` seeded with `derive_seed(name)`."""
    import numpy as np

    return np.random.default_rng(derive_seed(name, seed))


def torch_generator(name: str, seed: int | None = None, device: str = "cpu") -> Any:
    """A `torch.Generator` seeded with `derive_seed(name)`."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(name, seed))
    return generator


def dataloader_kwargs(
    name: str = "dataloader", seed: int | None = None, rank: int | None = None
) -> dict[str, Any]:
    """`generator` and `worker_init_fn` for a torch DataLoader: reproducible, new every epoch.

    The generator drives shuffling and, each epoch, the DataLoader's base seed; every
    worker starts from `torch.initial_seed()` (base seed + worker id), so its draws
    (random, numpy, torch and torch.distributions) are the same for the same seed and
    change from epoch to epoch. The rank is mixed in so DDP ranks augment differently.
    """
    if rank is None:
        rank = _rank_info()[1]
    return {
        "generator": torch_generator(name, seed),
        "worker_init_fn": functools.partial(_seed_worker, rank=int(rank)),
    }


def _seed_worker(worker_id: int, rank: int = 0) -> None:
    """worker_init_fn: reseed a DataLoader worker from its (per-epoch) initial seed and the rank."""
    import torch

    material = blake3.blake3(f"{_WORKER_DOMAIN}:{torch.initial_seed()}:{rank}".encode()).digest(
        length=40
    )
    torch.manual_seed(int.from_bytes(material[:8], "big"))
    random.seed(int.from_bytes(material[8:24], "big"))
    if "numpy" in sys.modules:
        words = [int.from_bytes(material[i : i + 4], "big") for i in range(24, 40, 4)]
        sys.modules["numpy"].random.seed(words)


# -- passive capture ----------------------------------------------------------


def collect_seeds(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The `seeds` section as things stand now; imports nothing the user has not imported."""
    state = _snapshot()
    global_seed, source, seeded = _known_seed(state, errors)
    record: dict[str, Any] = {
        "global": global_seed,
        "source": source,
        "seeded": seeded,
        "derived": dict(sorted(state["derived"].items())),
        "determinism": _part("seeds.determinism", _determinism_switches, errors),
        "hash_randomization": _part("seeds.hash_randomization", _hash_randomization, errors),
        "rng_digests": _part("seeds.rng_digests", _rng_digests, errors),
        "ranks": _part("seeds.ranks", lambda: _ranks(global_seed), errors),
    }
    return record


def _part(
    collector: str, fn: Callable[[], dict[str, Any]], errors: list[dict[str, Any]]
) -> dict[str, Any]:
    empty: dict[str, Any] = {}
    return guarded(collector, fn, empty, errors)


def _snapshot() -> dict[str, Any]:
    with _lock:
        return {
            "global": _state["global"],
            "source": _state["source"],
            "frameworks": list(_state["frameworks"]),
            "derived": dict(_state["derived"]),
        }


def _torch_initial_seed() -> int | None:
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].initial_seed())


def _known_seed(
    state: dict[str, Any], errors: list[dict[str, Any]]
) -> tuple[int | None, str, bool]:
    torch_seed = guarded("seeds.torch", _torch_initial_seed, None, errors)
    # torch seeds itself from the OS with 64 bits at start-up: a seed in 32-bit range was set by someone.
    torch_explicit = torch_seed is not None and torch_seed <= MAX_SEED
    if state["global"] is not None:
        if state["source"] == "environment" and torch_explicit and torch_seed != state["global"]:
            return torch_seed, "torch", True  # the code reseeded torch after MLREPRO_SEED: it wins
        if torch_seed is not None and "torch" not in state["frameworks"] and not torch_explicit:
            errors.append(
                {
                    "collector": "seeds",
                    "error": "torch was imported after seed_everything() and is not seeded by it: "
                    "import torch before calling seed_everything()",
                }
            )
        return int(state["global"]), str(state["source"]), True
    pl_text = os.environ.get("PL_GLOBAL_SEED")
    pl_seed: int | None = None
    if pl_text is not None and pl_text.strip():
        try:
            pl_seed = parse_seed(pl_text, "PL_GLOBAL_SEED")
        except ValueError as exc:
            errors.append({"collector": "seeds", "error": str(exc)})
    if pl_seed is not None:
        if torch_seed is None or torch_seed == pl_seed:
            return pl_seed, "passive", True
        if torch_explicit:
            return torch_seed, "torch", True
        return pl_seed, "passive", False  # announced to this process, but torch here is unseeded
    if torch_explicit:
        return torch_seed, "torch", True
    return None, "none", False


def _determinism_switches() -> dict[str, Any]:
    switches: dict[str, Any] = {
        "torch_deterministic_algorithms": None,
        "cudnn_deterministic": None,
        "cudnn_benchmark": None,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED"),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        switches["torch_deterministic_algorithms"] = bool(
            torch.are_deterministic_algorithms_enabled()
        )
        switches["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)
        switches["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    return switches


@functools.lru_cache(maxsize=1)
def _startup_environment() -> dict[str, str] | None:
    """The environment the interpreter started with (Linux), untouched by later os.environ edits."""
    try:
        with open("/proc/self/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _hash_randomization() -> dict[str, Any]:
    """Whether str hashes (set order, dict-of-set iteration) change from one process to the next.

    Only the value at interpreter start-up counts; setting PYTHONHASHSEED later changes nothing here.
    """
    startup = _startup_environment()
    at_start = startup.get("PYTHONHASHSEED") if startup is not None else _HASHSEED_AT_IMPORT
    enabled = bool(sys.flags.hash_randomization)
    if enabled and at_start is not None and at_start.strip().isdigit():
        enabled = False  # a fixed, non-zero hash seed: hashes are the same in every process
    return {"enabled": enabled, "pythonhashseed_at_start": at_start}


def _short_digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()[:16]


def _rng_digests() -> dict[str, Any]:
    digests: dict[str, Any] = {"random": _short_digest(repr(random.getstate()).encode())}
    np = sys.modules.get("numpy")
    if np is not None:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        digests["numpy"] = _short_digest(
            f"{name}:{pos}:{has_gauss}:{gauss!r}:".encode() + keys.tobytes()
        )
    torch = sys.modules.get("torch")
    if torch is not None:
        digests["torch"] = _short_digest(bytes(torch.get_rng_state().tolist()))
        digests["torch_initial_seed"] = int(torch.initial_seed())
        if torch.cuda.is_initialized():  # never start CUDA just to look at it
            states = torch.cuda.get_rng_state_all()
            digests["torch.cuda"] = _short_digest(b"".join(bytes(s.tolist()) for s in states))
    return digests


def _rank_info() -> tuple[int, int]:
    """(world_size, global_rank): torch.distributed when initialised, else the launcher's variables."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size()), int(dist.get_rank())
    world = os.environ.get("WORLD_SIZE", "1")
    rank = os.environ.get("RANK")
    if rank is None and os.environ.get("NODE_RANK", "0") == "0":
        rank = os.environ.get("LOCAL_RANK")  # Lightning's launcher on one node
    try:
        return max(int(world), 1), int(rank or 0)
    except ValueError:
        return 1, 0


_RANK_SEED_KEY = "mlrepro/seed/{rank}"


def _process_group_store() -> Any:
    """torch.distributed's key-value store when a process group is up, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def _ranks(global_seed: int | None) -> dict[str, Any]:
    """This rank's seed, plus those other ranks already posted to the process group's
    store. Never waits on another rank: a rank that has not posted is simply absent."""
    world_size, rank = _rank_info()
    known = {str(rank): global_seed} if global_seed is not None else {}
    store = _process_group_store() if world_size > 1 else None
    if store is not None:
        if global_seed is not None:
            store.set(_RANK_SEED_KEY.format(rank=rank), str(global_seed))
        _read_posted(store, world_size, known, skip=rank)
    return {"world_size": world_size, "global_rank": rank, "seeds": known}


def _read_posted(store: Any, world_size: int, known: dict[str, Any], skip: int) -> None:
    """Add to `known` the seed of each rank (but `skip`) that has posted one; never waits."""
    for other in range(world_size):
        key = _RANK_SEED_KEY.format(rank=other)
        if other != skip and str(other) not in known and store.check([key]):
            known[str(other)] = int(store.get(key))


# A non-zero rank waits this long for the process group before giving up on announcing.
ANNOUNCE_WAIT_S = 3600.0
ANNOUNCE_POLL_S = 0.05
_announcer: threading.Thread | None = None


def announce_rank_seed() -> None:
    """On a non-zero rank of a distributed launch, post this rank's seed once the group is up.

    Rank zero writes the record, often before any other rank runs code of ours after
    `init_process_group` (Lightning's MLFlowLogger creates the run on rank zero only,
    and the other ranks never call MLflow). So each other rank posts its seed to the
    process group's store from a daemon thread that polls for the group; a store write
    is no collective, so it cannot stall or desynchronise training. Idempotent, never raises.
    """
    global _announcer
    try:
        world_size, rank = _rank_info()
        if world_size <= 1 or rank == 0 or _announcer is not None:
            return
        _announcer = threading.Thread(
            target=_announce_when_grouped, name="mlrepro-rank-seed", daemon=True
        )
        _announcer.start()
    except Exception:  # pragma: no cover - e.g. no new threads at interpreter shutdown
        pass


def _announce_when_grouped() -> None:
    deadline = time.monotonic() + ANNOUNCE_WAIT_S
    while time.monotonic() < deadline:
        try:
            if _process_group_store() is not None:
                scratch: list[dict[str, Any]] = []
                global_seed, _, _ = _known_seed(_snapshot(), scratch)
                _ranks(global_seed)  # posts this rank's seed
                return
        except Exception as exc:  # the group went away, or a store we cannot write
            log.debug("mlrepro could not post this rank's seed: %r", exc)
            return
        time.sleep(ANNOUNCE_POLL_S)


def await_rank_seeds(ranks: dict[str, Any], timeout: float) -> dict[str, Any]:
    """`ranks` (a manifest's seeds.ranks) completed with the seeds other ranks post within
    `timeout` seconds. For the background uploader on rank zero: the record is written
    once, so it is worth a short wait for ranks that announce just after the run began."""
    world_size = int(ranks.get("world_size") or 1)
    known = dict(ranks.get("seeds") or {})
    if world_size <= 1 or len(known) >= world_size:
        return ranks
    deadline = time.monotonic() + timeout
    try:
        store = _process_group_store()
        while store is not None:
            _read_posted(store, world_size, known, skip=int(ranks.get("global_rank") or 0))
            if len(known) >= world_size or time.monotonic() >= deadline:
                break
            time.sleep(ANNOUNCE_POLL_S)
    except Exception as exc:  # the group was torn down: keep what we have
        log.debug("mlrepro could not read other ranks' seeds: %r", exc)
    ordered = dict(sorted(known.items(), key=lambda item: int(item[0])))
    return {**ranks, "seeds": ordered}


def _forget() -> None:
    """Drop what seed_everything/derive_seed recorded (tests; a new run in one process)."""
    global _env_seed_applied
    with _lock:
        _state.update({"global": None, "source": None, "frameworks": [], "derived": {}})
        _env_seed_applied = False
    _warned.clear()
