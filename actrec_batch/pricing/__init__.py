"""The pricing catalogue: what an instance-hour, an S3 request and a stored GB cost, by region.

The package ships one catalogue, :data:`SHIPPED` (``aws-2026-11.yaml`` beside this module, dated
and naming its sources); the setting ``price_catalogue`` points at a file of the same shape
instead. The file is YAML::

    catalogue: NAME            # shown in every cost report
    currency: USD
    as_of: "YYYY-MM-DD"        # the date its figures are stated for
    sources: {on_demand: ..., spot: ..., s3: ...}
    instances:
      g5.xlarge:
        vcpus: 4
        gpus: 1
        gpu_model: NVIDIA A10G 24 GB      # when gpus > 0
        price_per_hour:                   # USD per instance-hour, per region
          us-east-1: {on_demand: 1.006, spot: 0.4183}
    s3:
      us-east-1: {storage_gb_month: ..., put_per_1k: ..., get_per_1k: ...,
                  egress_internet_gb: ..., transfer_in_region_gb: ...}

:func:`load_catalogue` checks all of it once and raises :class:`CatalogueError` with one line
naming the file, the first thing wrong and the fix. Prices are non-negative USD; a spot price is
never above the on-demand one.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actrec_batch.errors import ConfigError

SHIPPED = "aws-2026-11.yaml"
MARKETS = ("spot", "on_demand")
S3_PRICES = ("storage_gb_month", "put_per_1k", "get_per_1k", "egress_internet_gb", "transfer_in_region_gb")


class CatalogueError(ConfigError):
    """A pricing catalogue that cannot be used; the message names the file and the fix."""

    reason = "bad_catalogue"


@dataclass(frozen=True)
class InstanceType:
    """One instance type: its size and its USD per hour by region and market."""

    name: str
    vcpus: int
    gpus: int
    gpu_model: str | None
    price_per_hour: dict[str, dict[str, float]]  # region -> market -> USD per instance-hour

    def price(self, region: str, market: str) -> float:
        """USD per hour in ``region`` on ``market``; KeyError when the catalogue has no such price."""
        return self.price_per_hour[region][market]


@dataclass(frozen=True)
class Catalogue:
    name: str
    currency: str
    as_of: str
    sources: dict[str, str]
    instances: dict[str, InstanceType]
    s3: dict[str, dict[str, float]]  # region -> S3_PRICES
    path: str  # where it was read from ("package:actrec_batch/pricing/<file>" for the shipped one)

    def instance(
        self, name: str, *, region: str, setting: str = "the Ray node's instance-type label"
    ) -> InstanceType:
        """The instance type ``name``, priced in ``region``. Raises ConfigError naming ``setting``."""
        it = self.instances.get(name)
        if it is None or region not in it.price_per_hour:
            what = f"no instance type {name!r}" if it is None else f"no {region} price for {name}"
            raise ConfigError(
                f"pricing catalogue {self.path}: {what} ({setting}). Fix: use one of "
                f"{', '.join(sorted(self.instances))}, or add it to your own catalogue (setting price_catalogue)"
            )
        return it

    def s3_prices(self, region: str) -> dict[str, float]:
        if region not in self.s3:
            raise ConfigError(
                f"pricing catalogue {self.path}: no S3 prices for region {region!r} (setting price_region). "
                f"Fix: use one of {', '.join(sorted(self.s3))}, or add it to your own catalogue"
            )
        return self.s3[region]

    def summary(self) -> dict[str, Any]:
        """What a cost record says about the prices it used."""
        return {"catalogue": self.name, "as_of": self.as_of, "path": self.path, "sources": dict(self.sources)}


def load_catalogue(path: str | None = None) -> Catalogue:
    """The catalogue at ``path`` (a YAML file), or the shipped one. Raises CatalogueError."""
    import yaml

    if path is None:
        where = f"package:actrec_batch/pricing/{SHIPPED}"
        text = importlib.resources.files(__package__).joinpath(SHIPPED).read_text(encoding="utf-8")
    else:
        where = str(Path(path).expanduser())
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise _bad(where, f"cannot read it ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise _bad(where, f"not YAML{at} ({getattr(exc, 'problem', None) or 'parse error'})") from None
    return _catalogue(doc, where)


def _bad(where: str, why: str) -> CatalogueError:
    return CatalogueError(
        f"bad pricing catalogue {where}: {why}. Fix: correct the file (the shipped "
        f"actrec_batch/pricing/{SHIPPED} shows every key), or unset price_catalogue to use the shipped one"
    )


def _catalogue(doc: Any, where: str) -> Catalogue:
    if not isinstance(doc, dict):
        raise _bad(where, "the top level is not a mapping")
    for key in ("catalogue", "as_of", "instances", "s3"):
        if key not in doc:
            raise _bad(where, f"missing key {key!r}")
    instances_doc = doc["instances"]
    if not isinstance(instances_doc, dict) or not instances_doc:
        raise _bad(where, "'instances' is not a non-empty mapping")
    instances = {str(name): _instance(str(name), spec, where) for name, spec in instances_doc.items()}
    s3_doc = doc["s3"]
    if not isinstance(s3_doc, dict) or not s3_doc:
        raise _bad(where, "'s3' is not a non-empty mapping of region to prices")
    s3 = {}
    for region, prices in s3_doc.items():
        if not isinstance(prices, dict):
            raise _bad(where, f"s3.{region} is not a mapping")
        s3[str(region)] = {k: _price(prices.get(k), f"s3.{region}.{k}", where) for k in S3_PRICES}
    sources = doc.get("sources") or {}
    return Catalogue(
        name=str(doc["catalogue"]),
        currency=str(doc.get("currency", "USD")),
        as_of=str(doc["as_of"]),
        sources={str(k): str(v) for k, v in sources.items()} if isinstance(sources, dict) else {},
        instances=instances,
        s3=s3,
        path=where,
    )


def _instance(name: str, spec: Any, where: str) -> InstanceType:
    at = f"instances.{name}"
    if not isinstance(spec, dict):
        raise _bad(where, f"{at} is not a mapping")
    counts = {}
    for key in ("vcpus", "gpus"):
        value = spec.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(where, f"{at}.{key} is {value!r}, not a whole number >= 0")
        counts[key] = value
    if counts["vcpus"] == 0:
        raise _bad(where, f"{at}.vcpus is 0")
    prices_doc = spec.get("price_per_hour")
    if not isinstance(prices_doc, dict) or not prices_doc:
        raise _bad(where, f"{at}.price_per_hour is not a mapping of region to {{on_demand, spot}}")
    prices: dict[str, dict[str, float]] = {}
    for region, by_market in prices_doc.items():
        if not isinstance(by_market, dict):
            raise _bad(where, f"{at}.price_per_hour.{region} is not a mapping")
        p = {m: _price(by_market.get(m), f"{at}.price_per_hour.{region}.{m}", where) for m in MARKETS}
        if p["spot"] > p["on_demand"]:
            raise _bad(
                where, f"{at}.price_per_hour.{region}: spot {p['spot']} is above on_demand {p['on_demand']}"
            )
        prices[str(region)] = p
    gpu_model = spec.get("gpu_model")
    if counts["gpus"] > 0 and not gpu_model:
        raise _bad(where, f"{at}.gpu_model is missing (it has {counts['gpus']} GPUs)")
    return InstanceType(name, counts["vcpus"], counts["gpus"], str(gpu_model) if gpu_model else None, prices)


def _price(value: Any, at: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _bad(where, f"{at} is {value!r}, not a price in USD >= 0")
    return float(value)
