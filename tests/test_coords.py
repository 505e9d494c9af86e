"""Coordinate checks, CRS conversion and geodesic helpers."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo_router.city.coords import (
    GEOD,
    box_problem,
    check_lonlat,
    decimal_number,
    geodesic_inverse,
    get_transformer,
    json_number,
    local_utm,
    parse_bbox,
    require_lonlat,
    swap_plausible,
    to_lonlat,
)
from geo_router.errors import InputError, InvalidCoordinatesError, UnknownCRSError

AXIS_HINT = "(is the order lat, lon? GeoJSON order is lon, lat)"


def test_geod_is_wgs84() -> None:
    assert isinstance(GEOD, pyproj.Geod)
    assert GEOD.a == pytest.approx(6378137.0)


@pytest.mark.parametrize(
    ("lon", "lat", "reason"),
    [
        (np.nan, 1.0, "longitude is NaN"),
        (1.0, np.nan, "latitude is NaN"),
        (np.inf, 1.0, "longitude is infinite"),
        (1.0, -np.inf, "latitude is infinite"),
        (-200.0, 1.0, "longitude -200 is out of range [-180, 180]"),
        (-6.9, 107.6, f"latitude 107.6 is out of range [-90, 90] {AXIS_HINT}"),
        (120.0, 500.0, "latitude 500 is out of range [-90, 90]"),
    ],
)
def test_check_lonlat_reasons(lon: float, lat: float, reason: str) -> None:
    valid, reasons = check_lonlat(np.array([lon, 1.0]), np.array([lat, 2.0]))
    assert valid.tolist() == [False, True]
    assert reasons == [reason, None]


def test_check_lonlat_objects_and_strings() -> None:
    lon = np.array(["106.8", "abc", None, "nan", True, 12], dtype=object)
    lat = np.array([-6.2, 1, 1, 1, 1, "-91"], dtype=object)
    valid, reasons = check_lonlat(lon, lat)
    assert valid.tolist() == [True, False, False, False, False, False]
    assert reasons[1] == "longitude is not a number"
    assert reasons[2] == "longitude is missing"
    assert reasons[3] == "longitude is NaN"
    assert reasons[4] == "longitude is not a number"
    assert reasons[5].startswith("latitude -91 is out of range [-90, 90]")


def test_check_lonlat_both_reasons_and_scalars() -> None:
    valid, reasons = check_lonlat(np.nan, 95.0)
    assert valid.tolist() == [False]
    assert reasons[0].startswith("longitude is NaN; latitude 95 is out of range")
    valid, _ = check_lonlat(180.0, -90.0)
    assert valid.tolist() == [True]


def test_check_lonlat_length_mismatch() -> None:
    with pytest.raises(InvalidCoordinatesError, match="different lengths"):
        check_lonlat([1.0, 2.0], [1.0])


@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=50,
    )
)
def test_check_lonlat_matches_definition(pairs: list[tuple[float, float]]) -> None:
    lon = np.array([p[0] for p in pairs], dtype=float)
    lat = np.array([p[1] for p in pairs], dtype=float)
    valid, reasons = check_lonlat(lon, lat)
    expected = [
        math.isfinite(x) and math.isfinite(y) and abs(x) <= 180 and abs(y) <= 90 for x, y in pairs
    ]
    assert valid.tolist() == expected
    assert [r is None for r in reasons] == expected


def test_require_lonlat_ok_and_errors() -> None:
    assert require_lonlat(107.6, -6.9) == (107.6, -6.9)
    assert require_lonlat("107.6", "-6.9") == (107.6, -6.9)  # type: ignore[arg-type]
    with pytest.raises(InvalidCoordinatesError) as err:
        require_lonlat(-6.9, 107.6, row=12)
    assert err.value.message.startswith("row 12: latitude 107.6 is out of range")
    assert AXIS_HINT in err.value.message
    assert err.value.detail["row"] == 12
    assert err.value.detail["field"] == "latitude"
    with pytest.raises(InvalidCoordinatesError) as err:
        require_lonlat(float("nan"), 1.0)
    assert err.value.message == "longitude is NaN"
    assert err.value.detail == {
        "row": None,
        "field": "longitude",
        "reason": "longitude is NaN",
        "errors": [{"field": "longitude", "message": "longitude is NaN"}],
    }


def test_to_lonlat_state_plane() -> None:
    # a NYC 311 record: state plane feet (EPSG:2263) and the city's own lon/lat
    lon, lat = to_lonlat([1018422.0], [177096.0], "EPSG:2263")
    assert lon[0] == pytest.approx(-73.87684765925744, abs=1e-6)
    assert lat[0] == pytest.approx(40.65269835500481, abs=1e-6)
    lon2, lat2 = to_lonlat(np.array([1018422.0]), np.array([177096.0]), pyproj.CRS(2263))
    assert lon2[0] == lon[0] and lat2[0] == lat[0]


@pytest.mark.parametrize("crs", ["EPSG:4326", 4326, "OGC:CRS84", "epsg:4326"])
def test_to_lonlat_passes_wgs84_through(crs: object) -> None:
    lon, lat = to_lonlat([107.6, 1.0], [-6.9, 2.0], crs)
    assert lon.tolist() == [107.6, 1.0] and lat.tolist() == [-6.9, 2.0]


def test_to_lonlat_utm_round_trip() -> None:
    utm = local_utm(107.6, -6.9)
    x, y = get_transformer("EPSG:4326", utm).transform([107.6], [-6.9])
    lon, lat = to_lonlat(x, y, utm.to_string())
    assert lon[0] == pytest.approx(107.6, abs=1e-9) and lat[0] == pytest.approx(-6.9, abs=1e-9)


@pytest.mark.parametrize("crs", ["EPSG:999999", "not a crs", ""])
def test_to_lonlat_unknown_crs(crs: str) -> None:
    with pytest.raises(UnknownCRSError) as err:
        to_lonlat([1.0], [2.0], crs)
    assert repr(crs) in err.value.message
    assert err.value.detail["crs"] == crs


def test_transformers_are_cached() -> None:
    assert get_transformer("EPSG:2263", "EPSG:4326") is get_transformer("EPSG:2263", "EPSG:4326")


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        ([-74.25, -73.7], [40.5, 40.9], 32618),  # New York
        (107.6, -6.9, 32748),  # Bandung
        (-180.0, 0.0, 32601),
        (179.99, -0.01, 32760),
        (3.0, 0.0, 32631),
    ],
)
def test_local_utm(lon: object, lat: object, epsg: int) -> None:
    assert local_utm(lon, lat).to_epsg() == epsg


def test_local_utm_needs_finite_points() -> None:
    with pytest.raises(InvalidCoordinatesError):
        local_utm([np.nan], [np.nan])


def test_geodesic_inverse_known_values() -> None:
    dist, bearing = geodesic_inverse(0.0, 0.0, [0.0, 1.0, 0.0, -1.0], [1.0, 0.0, -1.0, 0.0])
    np.testing.assert_allclose(dist, [110574.389, 111319.491, 110574.389, 111319.491], rtol=1e-6)
    np.testing.assert_allclose(bearing, [0.0, 90.0, 180.0, 270.0], atol=1e-9)


@given(
    st.floats(-179, 179),
    st.floats(-80, 80),
    st.floats(-179, 179),
    st.floats(-80, 80),
)
def test_geodesic_inverse_properties(lon1: float, lat1: float, lon2: float, lat2: float) -> None:
    d12, b12 = geodesic_inverse(lon1, lat1, lon2, lat2)
    d21, _ = geodesic_inverse(lon2, lat2, lon1, lat1)
    assert d12 >= 0 and d12 == pytest.approx(d21, rel=1e-9, abs=1e-6)
    assert 0.0 <= b12 < 360.0


def test_require_lonlat_names_every_problem_with_the_callers_names() -> None:
    with pytest.raises(InvalidCoordinatesError) as err:
        require_lonlat(float("nan"), 100.0, names=("lon", "lat"))
    assert err.value.message == "lon is NaN; lat 100 is out of range [-90, 90]"
    assert [e["field"] for e in err.value.detail["errors"]] == ["lon", "lat"]


@pytest.mark.parametrize("bad", [True, False, None, "abc", [1.0]])
def test_require_lonlat_refuses_what_is_not_a_number(bad: object) -> None:
    with pytest.raises(InvalidCoordinatesError):
        require_lonlat(bad, 1.0)


def test_swap_plausible_is_the_axis_swap_rule() -> None:
    assert swap_plausible(np.array([-6.9, 107.6]), np.array([107.6, -6.9])).tolist() == [
        True,
        False,
    ]
    assert swap_plausible(np.nan, 10.0).tolist() is False
    assert swap_plausible(np.array([np.nan]), np.array([10.0])).tolist() == [False]


def test_parse_bbox_rules() -> None:
    assert parse_bbox(None) is None
    assert parse_bbox("1,2,3,4") == (1.0, 2.0, 3.0, 4.0)
    assert parse_bbox("1,2,0,3,4,9") == (1.0, 2.0, 3.0, 4.0)
    for bad in ("1,2,3", "a,b,c,d", "5,0,1,1", "0,-95,1,1", "nan,0,1,1", "0,0,inf,1"):
        with pytest.raises(InputError, match="bbox"):
            parse_bbox(bad)
    assert box_problem(0, 0, 1, 1) is None
    assert "out of range" in str(box_problem(0, 0, 200, 1))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("107.6", 107.6),
        ("-6.9", -6.9),
        ("+6.9", 6.9),
        (" 6.9 ", 6.9),
        ("1e-3", 0.001),
        ("7", 7.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e400", math.inf),
    ],
)
def test_decimal_number_reads_the_decimal_grammar(text: str, value: float) -> None:
    assert decimal_number(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "1_0",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "\u0661\u0660",
        "\uff11",
        "0x10",
        "1e",
        "",
        "--1",
        "1,5",
    ],
)
def test_decimal_number_refuses_what_python_float_also_takes(text: str) -> None:
    # Issue 10, Low: Open311 took lat=1_0 as 10.0 (Python's float syntax leaked).
    assert decimal_number(text) is None


@pytest.mark.parametrize("bad", [True, False, None, "107.6", [107.6], {"v": 1}])
def test_json_number_refuses_booleans_strings_and_null(bad: object) -> None:
    with pytest.raises(InputError) as info:
        json_number(bad, "lon")
    assert info.value.detail["field"] == "lon"


def test_parse_bbox_takes_only_decimal_numbers() -> None:
    assert parse_bbox("107,-7,108,-6") == (107.0, -7.0, 108.0, -6.0)
    with pytest.raises(InputError, match="4 numbers"):
        parse_bbox("1_07,-7,108,-6")
