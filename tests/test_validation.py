"""Validation (seed 000's "Validation notes"): every bad value is refused
at construction, or at ``acquire()`` for per-call values, with a
``ValueError`` whose message names the argument."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any

import pytest

from neoleasepool import LeasedExecutorManager
from tests.support import run, serving

NAN = float("nan")
INF = float("inf")

#: Not a positive integer, as leasepool judges (``operator.index``):
#: booleans, floats (whole ones too), NaN, infinities, strings, zero,
#: negatives, None and other non-numbers.
BAD_COUNTS = [
    True, False, NAN, INF, -INF, "4", "four", 0, 0.0, 2.0, -1, -2.0, 1.9, 0.5, None, [4]
]

#: Not a finite duration, as leasepool judges (``float()``, booleans
#: excepted): numeric strings are fine, zero is not.
BAD_DURATIONS = [True, False, NAN, INF, -INF, "nan", "inf", "one", 0, 0.0, "0", -1, -0.001,
                 None, [1]]

#: As BAD_DURATIONS, but zero is allowed (no grace period).
BAD_GRACE = [True, False, NAN, INF, -INF, "inf", "fifteen", -1, -0.001, "-1", None]

COUNT_ARGS = ["max_pools", "min_pools", "units_per_pool", "workers_per_pool"]
DURATION_ARGS = ["check_interval", "default_lease_seconds"]


def build(**kwargs: Any) -> LeasedExecutorManager:
    kwargs.setdefault("max_pools", 4)
    return LeasedExecutorManager(**kwargs)


def names(name: str) -> str:
    return rf"\b{re.escape(name)}\b"


def _ids(value: Any) -> str:
    return repr(value)


@pytest.mark.parametrize("value", BAD_COUNTS, ids=_ids)
@pytest.mark.parametrize("name", COUNT_ARGS)
def test_invalid_counts_are_rejected_naming_the_argument(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=names(name)) as info:
        build(**{name: value})
    assert ">= 1" in str(info.value)


@pytest.mark.parametrize("value", BAD_DURATIONS, ids=_ids)
@pytest.mark.parametrize("name", DURATION_ARGS)
def test_invalid_durations_are_rejected_naming_the_argument(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=names(name)) as info:
        build(**{name: value})
    assert "> 0" in str(info.value)


@pytest.mark.parametrize("value", BAD_GRACE, ids=_ids)
def test_invalid_grace_is_rejected_naming_the_argument(value: Any) -> None:
    with pytest.raises(ValueError, match=names("lease_grace_seconds")) as info:
        build(lease_grace_seconds=value)
    assert ">= 0" in str(info.value)


def test_max_pools_is_required() -> None:
    with pytest.raises(TypeError, match="max_pools"):
        LeasedExecutorManager()  # type: ignore[call-arg]


class _Index:
    """An integer-like object (as a numpy integer is): it has ``__index__``."""

    def __index__(self) -> int:
        return 2


@pytest.mark.parametrize("name", COUNT_ARGS)
def test_integer_like_counts_are_accepted(name: str) -> None:
    manager = build(**{name: _Index()})
    if name in ("max_pools", "min_pools"):
        assert getattr(manager, name) == 2
        assert isinstance(getattr(manager, name), int)
    if name == "workers_per_pool":
        assert manager.workers_per_pool == 2


def test_valid_durations_are_accepted() -> None:
    manager = build(check_interval=0.5, default_lease_seconds=1, lease_grace_seconds=0)
    assert manager.started is False
    build(lease_grace_seconds=0.0)


def test_numeric_strings_are_durations_as_in_leasepool() -> None:
    manager = build(check_interval="2.5", default_lease_seconds=" 30 ",
                    lease_grace_seconds="0", surplus_idle_seconds=Decimal("1.5"))
    options = manager._options
    assert options.check_interval == 2.5
    assert options.default_lease_seconds == 30.0
    assert options.grace_seconds == 0.0
    assert options.surplus_idle_seconds == 1.5


def test_min_pools_above_max_pools_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"^min_pools cannot be greater than max_pools: .*min_pools=3.*max_pools=2"
    ):
        LeasedExecutorManager(max_pools=2, min_pools=3)


@pytest.mark.parametrize("value", [3, "devices", [1]], ids=_ids)
def test_non_callable_size_provider_is_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="size_provider"):
        build(size_provider=value)


@pytest.mark.parametrize("value", ["", None, 3], ids=_ids)
def test_invalid_name_prefix_is_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="name_prefix"):
        build(name_prefix=value)


def test_non_logger_is_rejected() -> None:
    with pytest.raises(ValueError, match="logger"):
        build(logger="neoleasepool")
    build(logger=logging.getLogger("tests.validation"))


# ------------------------------------------------------------ per call


@pytest.mark.parametrize(
    "value", [v for v in BAD_DURATIONS if v is not None], ids=_ids  # None: default
)
def test_invalid_lease_seconds_are_rejected_at_acquire(value: Any) -> None:
    async def main() -> None:
        manager = build(max_pools=1)
        async with serving(manager):
            with pytest.raises(ValueError, match=names("lease_seconds")):
                await manager.acquire(lease_seconds=value)
            assert manager.leased_count == 0  # nothing was leased
            assert manager.available_count == 1

    run(main())


@pytest.mark.parametrize("value", [True, NAN, INF, -INF, -1, "2", [1]], ids=_ids)
def test_invalid_timeout_is_rejected_at_acquire(value: Any) -> None:
    async def main() -> None:
        manager = build(max_pools=1)
        async with serving(manager):
            with pytest.raises(ValueError, match=names("timeout")):
                await manager.acquire(timeout=value)
            assert manager.leased_count == 0

    run(main())


def test_lease_seconds_none_means_the_default() -> None:
    async def main() -> None:
        manager = build(max_pools=1, default_lease_seconds=12.0)
        async with serving(manager):
            lease = await manager.acquire(lease_seconds=None, timeout=None)
            assert lease.lease_seconds == 12.0
            await lease.release()

    run(main())
