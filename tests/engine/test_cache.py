"""The cache folder: made on first use; when it cannot be (a container run as an unexpected user, a
path through a file), one line names it and the variable that moves it, never a traceback."""

import pytest
from support import assert_one_error_line, wildpose

from wildpose.engine.cache import CACHE_ENV, cache_dir
from wildpose.errors import ConfigError


def test_a_cache_folder_is_made_under_the_configured_root(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    folder = cache_dir("detectors")
    assert folder == tmp_path / "cache" / "detectors" and folder.is_dir()


def test_a_cache_that_cannot_be_made_is_a_config_error_naming_the_variable(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a-file" / "cache"))
    with pytest.raises(ConfigError, match=f"cannot create the cache folder .*a-file/cache/demo .*set {CACHE_ENV}"):
        cache_dir("demo")


def test_the_demo_with_an_unusable_cache_says_so_in_one_line(tmp_path):
    """It was a traceback from `mkdir` (found running the image as another uid)."""
    (tmp_path / "a-file").write_text("")
    result = wildpose("demo", env={CACHE_ENV: str(tmp_path / "a-file" / "cache")})
    assert_one_error_line(result, "cannot create the cache folder", CACHE_ENV)
