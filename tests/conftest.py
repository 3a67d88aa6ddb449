"""pytest fixtures; the helpers the tests share are in helpers.py."""

import pytest

from helpers import small_config


@pytest.fixture
def small():
    return small_config()
