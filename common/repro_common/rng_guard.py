"""Read a user's dataset without touching the random streams its training draws from.

Fingerprinting a dataset calls its `__getitem__`, and an augmenting dataset draws
from the global RNGs there: reading it at train start would shift every later draw
and change the training. `preserved_rng()` saves every global stream a dataset can
draw from (Python `random`, numpy's legacy global RandomState, torch CPU, torch
CUDA when already initialised, Keras' global SeedGenerator when keras is imported)
and puts each back afterwards. `reseeded(seed)` (inside it) gives a read a fixed
state of its own, so two reads under different states tell augmentation apart
from content. Only libraries already imported are touched; CUDA is never started.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_KERAS_GLOBAL_GENERATOR = "global_seed_generator"


_inside = threading.local()


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Every global random stream is as it was when the block ends, whatever happened inside.

    Nested blocks (a dataset's items inside a dataset) save nothing more: the outer one
    restores. The streams are process-wide, so a read from a background thread while the
    training draws in another would rewind those draws: fingerprint where you train.
    """
    if getattr(_inside, "active", False):
        yield
        return
    restores = [_save_python(), *_save_numpy(), *_save_torch(), *_save_keras()]
    _inside.active = True
    try:
        yield
    finally:
        _inside.active = False
        for restore in reversed(restores):
            restore()


def reseeded(seed: int) -> None:
    """Seed the global streams with `seed` (call inside `preserved_rng`: they are put back)."""
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        # The CPU generator only: torch.manual_seed would queue a seed for CUDA's lazy start.
        torch.default_generator.manual_seed(seed)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(seed)
    generator = _keras_global_generator()
    if generator is not None:
        generator.state.assign(
            generator.backend.convert_to_tensor([seed, 0], dtype=generator.state.dtype)
        )


def _save_python() -> Callable[[], None]:
    state = random.getstate()
    return lambda: random.setstate(state)


def _save_numpy() -> list[Callable[[], None]]:
    np = sys.modules.get("numpy")
    if np is None:
        return []
    state = np.random.get_state()
    return [lambda: np.random.set_state(state)]


def _save_torch() -> list[Callable[[], None]]:
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    cpu = torch.get_rng_state()
    restores = [lambda: torch.set_rng_state(cpu)]
    if torch.cuda.is_initialized():  # never start CUDA just to save its state
        cuda = torch.cuda.get_rng_state_all()
        restores.append(lambda: torch.cuda.set_rng_state_all(cuda))
    return restores


def _keras_global_state() -> Any:
    if "keras" not in sys.modules:
        return None
    return sys.modules.get("keras.src.backend.common.global_state")


def _keras_global_generator() -> Any:
    global_state = _keras_global_state()
    if global_state is None:
        return None
    return global_state.get_global_attribute(_KERAS_GLOBAL_GENERATOR)


def _save_keras() -> list[Callable[[], None]]:
    """Keras' unseeded random ops advance one global SeedGenerator; a read may even create it."""
    global_state = _keras_global_state()
    if global_state is None:
        return []
    generator = global_state.get_global_attribute(_KERAS_GLOBAL_GENERATOR)
    if generator is None:

        def forget_created() -> None:
            global_state.set_global_attribute(_KERAS_GLOBAL_GENERATOR, None)

        return [forget_created]
    saved = generator.state.value * 1  # a copy, as SeedGenerator.next() takes one

    def restore() -> None:
        global_state.set_global_attribute(_KERAS_GLOBAL_GENERATOR, generator)
        generator.state.assign(saved)

    return [restore]
