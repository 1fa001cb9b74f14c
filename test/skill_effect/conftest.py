"""Fixtures of the skill-effect model tests (synthetic data: support.synthetic)."""
import pytest

from support.synthetic import TINY


@pytest.fixture
def tiny_config():
    return TINY

