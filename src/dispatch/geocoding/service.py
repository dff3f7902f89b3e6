"""Addresses to coordinates through a geopy geocoder chosen in settings, with a shared cache.

Geocoding is a network call, so it runs before the request's write transaction begins and
never holds a database lock. Any failure (no geocoder, time-out, no match) returns None: the
job is still accepted and flagged for a dispatcher to place.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from geopy.adapters import URLLibAdapter
from geopy.exc import GeopyError
from geopy.geocoders import get_geocoder_for_service
from geopy.geocoders.base import Geocoder
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.geocoding.models import GeocodeCacheEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Geocoded:
    lat: float
    lon: float
    cached: bool


def normalise(address: str) -> str:
    return " ".join(address.split()).casefold()


def _key(address: str) -> str:
    return hashlib.sha256(normalise(address).encode()).hexdigest()


@lru_cache(maxsize=8)
def _geocoder(name: str, domain: str | None, scheme: str, timeout: float, user_agent: str) -> Geocoder:
    cls = get_geocoder_for_service(name)
    # The standard library's HTTP client: one attempt per job (geopy's requests adapter retries
    # time-outs, tripling the wait), and the same behaviour whatever else is installed.
    kwargs: dict[str, object] = {
        "timeout": timeout,
        "user_agent": user_agent,
        "scheme": scheme,
        "adapter_factory": URLLibAdapter,
    }
    if domain:
        kwargs["domain"] = domain
    return cls(**kwargs)


def geocoder_for(settings: Settings) -> Geocoder | None:
    if settings.geocoder is None:
        return None
    return _geocoder(
        settings.geocoder,
        settings.geocoder_domain,
        settings.geocoder_scheme,
        settings.geocoder_timeout_seconds,
        settings.geocoder_user_agent,
    )


def locate(*, database: Database, settings: Settings, address: str) -> Geocoded | None:
    key = _key(address)
    with database.transaction(write=False) as session:
        hit = session.scalar(select(GeocodeCacheEntry).where(GeocodeCacheEntry.query_hash == key))
    if hit is not None:
        return Geocoded(hit.lat, hit.lon, cached=True)
    geocoder = geocoder_for(settings)
    if geocoder is None:
        return None
    try:
        found = geocoder.geocode(address, exactly_one=True)
    except (GeopyError, OSError, ValueError) as exc:
        log.warning("geocoding failed for an address: %s", exc)
        return None
    if found is None:
        return None
    lat, lon = float(found.latitude), float(found.longitude)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        log.warning("geocoder answered coordinates out of range: %s, %s", lat, lon)
        return None
    return Geocoded(lat, lon, cached=False)


def remember(*, session: Session, address: str, result: Geocoded, now: datetime) -> None:
    """Cache a fresh answer inside the caller's transaction; a concurrent twin is fine."""
    if result.cached:
        return
    try:
        with session.begin_nested():
            session.add(
                GeocodeCacheEntry(
                    query_hash=_key(address), query=normalise(address), lat=result.lat, lon=result.lon, created_at=now
                )
            )
    except IntegrityError:
        pass
