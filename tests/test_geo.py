"""The search box never cuts the circle short, wherever on Earth it is drawn."""

from geopy.distance import geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import SPHERE_ERROR, box_around, haversine_km, lat_band


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(-80, 80),
    lon=st.floats(-179, 179),
    radius=st.floats(0.1, 2000),
    bearing=st.floats(0, 360),
    fraction=st.floats(0, 1),
)
def test_every_point_within_the_radius_is_inside_the_box(lat, lon, radius, bearing, fraction):
    box = box_around(lat, lon, radius)
    if box is None:  # near a pole or across the antimeridian the caller searches everyone
        return
    point = geodesic(kilometers=radius * fraction).destination((lat, lon), bearing)
    assert box.min_lat <= point.latitude <= box.max_lat
    assert box.min_lon <= point.longitude <= box.max_lon
    assert lat_band(point.latitude) in box.bands


@settings(max_examples=300, deadline=None)
@given(lat1=st.floats(-85, 85), lon1=st.floats(-180, 180), lat2=st.floats(-85, 85), lon2=st.floats(-180, 180))
def test_the_spherical_estimate_is_within_its_stated_error(lat1, lon1, lat2, lon2):
    exact = geodesic((lat1, lon1), (lat2, lon2)).km
    estimate = haversine_km(lat1, lon1, lat2, lon2)
    assert abs(estimate - exact) <= exact * SPHERE_ERROR + 1e-6


def test_boxes_that_would_cross_the_antimeridian_or_a_pole_are_not_drawn():
    assert box_around(10.0, 179.99, 50) is None
    assert box_around(88.9, 0.0, 50) is None
    assert box_around(52.0, 21.0, 50) is not None
