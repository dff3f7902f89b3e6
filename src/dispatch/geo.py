"""Geometry used by dispatch and stock search: exact distances and index-friendly boxes.

Exact distances are geodesic on the WGS-84 ellipsoid (geopy). Searching uses latitude
bands: a technician's row carries ``lat_band = floor(lat / LAT_BAND_DEGREES)`` and an index
on (skill, lat_band, lon) turns "who is within this box" into one short index range per
band, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geopy.distance import geodesic

LAT_BAND_DEGREES = 0.1
# The shortest a degree of latitude gets (at the equator), and a degree of longitude at the
# equator; both on WGS-84, in km. Boxes built from them never cut a circle short.
_KM_PER_DEG_LAT_MIN = 110.574
_KM_PER_DEG_LON_EQUATOR = 111.320
# A sphere and the ellipsoid disagree by less than 0.6% on distance.
SPHERE_ERROR = 0.006
EARTH_RADIUS_KM = 6371.0088


def lat_band(lat: float) -> int:
    return math.floor(lat / LAT_BAND_DEGREES)


def geodesic_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return geodesic((lat1, lon1), (lat2, lon2)).km


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """A fast spherical estimate, used only to decide which exact distances to compute."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Box:
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float

    @property
    def bands(self) -> range:
        return range(lat_band(self.min_lat), lat_band(self.max_lat) + 1)


def box_around(lat: float, lon: float, radius_km: float) -> Box | None:
    """A lat/lon box that holds every point within ``radius_km`` (geodesic) of the centre.

    None when the box would reach a pole or cross the antimeridian: callers then search
    without a box, which is rare and still correct.
    """
    margin = radius_km * (1 + 2 * SPHERE_ERROR) + 0.01
    dlat = margin / _KM_PER_DEG_LAT_MIN
    min_lat, max_lat = lat - dlat, lat + dlat
    if min_lat <= -89.0 or max_lat >= 89.0:
        return None
    widest = max(abs(min_lat), abs(max_lat))
    dlon = margin / (_KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(widest)))
    min_lon, max_lon = lon - dlon, lon + dlon
    if min_lon < -180.0 or max_lon > 180.0:
        return None
    return Box(min_lat, max_lat, min_lon, max_lon)
