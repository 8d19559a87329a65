"""Fixtures for end-to-end runs: a user's environment where mlrepro is installed, not editable."""

from __future__ import annotations

import pytest

from support.installed_env import build_installed_python
from support.template_project import TrainedProject, train_new_project


@pytest.fixture(scope="session")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter where mlrepro comes from a built wheel (see support.installed_env)."""
    return build_installed_python(tmp_path_factory.mktemp("user-env"))


@pytest.fixture(scope="session")
def trained_project(
    tmp_path_factory: pytest.TempPathFactory, installed_python: str
) -> TrainedProject:
    """A new `mlrepro init` project with one production run (see support.template_project)."""
    return train_new_project(tmp_path_factory.mktemp("trained-project"), installed_python)
