"""glibc malloc tuning for the server process."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from api.malloc_tuning import tune_malloc


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_applies_on_glibc() -> None:
    assert ctypes.util.find_library("c")
    assert tune_malloc() is True
    assert tune_malloc(trim_bytes=128 << 20, mmap_bytes=32 << 20) is True  # idempotent


def test_without_mallopt_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*_args: object, **_kwargs: object) -> None:
        raise OSError("no C library here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert tune_malloc() is False
