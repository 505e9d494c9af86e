"""Open311 GeoReport v2 mapping: services, requests, errors, JSON and XML, form parsing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.city.models import CategoryRoute
from geo_router.errors import InputError, InvalidCoordinatesError
from geo_router.intake import open311
from geo_router.intake.reports.models import Report

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
FIRE = CategoryRoute("fire", "Kebakaran (fire)", "Damkar", ["fire_station"], True)
WASTE = CategoryRoute("waste", None, "Dinas Lingkungan Hidup", [], False)


def _report(**changes: Any) -> Report:
    values: dict[str, Any] = {
        "id": "r_abcdefghijklmnop",
        "channel": "web",
        "category": "waste",
        "description": "sampah <menumpuk> & bau",
        "status": "open",
        "resolution": None,
        "lon": 107.64,
        "lat": -6.85,
        "location_source": "geocoded",
        "location_confidence": 0.9,
        "reporter_phone_hash": "secret-hash",
        "reporter_phone_enc": "secret-ciphertext",
        "media_url": "https://example.org/a.jpg",
        "decision": {"agency": "Dinas Lingkungan Hidup", "location": {"label": "Jalan Aceh 1"}},
        "zones": {"kelurahan": "3273010001"},
        "flags": [],
        "api_key_id": "k1",
        "created_at": NOW,
        "updated_at": NOW + timedelta(hours=1),
        "closed_at": None,
    }
    values.update(changes)
    return Report(**values)


def test_service_list_and_definition() -> None:
    services = open311.service_list([FIRE, WASTE])
    assert services[0] == {
        "service_code": "fire",
        "service_name": "Kebakaran (fire)",
        "description": "Kebakaran (fire)",
        "metadata": False,
        "type": "realtime",
        "keywords": "fire, emergency",
        "group": "Damkar",
    }
    assert services[1]["service_name"] == "waste"
    assert open311.service_definition(FIRE) == {"service_code": "fire", "attributes": []}


@pytest.mark.parametrize(
    ("status", "expected"),
    [("open", "open"), ("acknowledged", "open"), ("in_progress", "open"), ("closed", "closed")],
)
def test_status_mapping(status: str, expected: str) -> None:
    assert open311.service_request(_report(status=status))["status"] == expected


def test_service_request_fields() -> None:
    out = open311.service_request(_report(status="closed", resolution="resolved"), "Sampah")
    assert list(out) == [
        "service_request_id",
        "status",
        "status_notes",
        "service_name",
        "service_code",
        "description",
        "agency_responsible",
        "service_notice",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "address",
        "address_id",
        "zipcode",
        "lat",
        "long",
        "media_url",
    ]
    assert out["status_notes"] == "resolved"
    assert out["service_name"] == "Sampah"
    assert out["agency_responsible"] == "Dinas Lingkungan Hidup"
    assert out["requested_datetime"] == "2026-03-01T08:00:00+00:00"
    assert datetime.fromisoformat(out["updated_datetime"]).tzinfo is not None
    assert (out["lat"], out["long"]) == (-6.85, 107.64)
    assert out["address"] == "Jalan Aceh 1"
    assert "secret" not in str(out)


def test_post_and_token_responses() -> None:
    report = _report()
    assert open311.post_response(report) == [
        {
            "service_request_id": report.id,
            "service_notice": "Routed to Dinas Lingkungan Hidup",
            "account_id": None,
        }
    ]
    assert open311.token_response("t1", "r_1") == [{"service_request_id": "r_1", "token": "t1"}]


def test_xml_shapes_and_escaping() -> None:
    body, media_type = open311.render("requests", [open311.service_request(_report())], "xml")
    assert media_type == "text/xml; charset=utf-8"
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None
    assert request.findtext("description") == "sampah <menumpuk> & bau"
    assert request.findtext("lat") == "-6.85"
    assert request.find("expected_datetime") is not None
    assert b"<menumpuk>" not in body

    services = ET.fromstring(open311.render("services", open311.service_list([FIRE]), "xml")[0])
    assert services.tag == "services"
    assert services.find("service/metadata").text == "false"  # type: ignore[union-attr]
    definition = ET.fromstring(
        open311.render("definition", open311.service_definition(FIRE), "xml")[0]
    )
    assert definition.tag == "service_definition"
    assert definition.findtext("service_code") == "fire"
    errors = ET.fromstring(open311.render("errors", open311.error_list(403, "bad key"), "xml")[0])
    assert [(e.findtext("code"), e.findtext("description")) for e in errors] == [("403", "bad key")]
    body, media_type = open311.render("errors", open311.error_list(400, "x"), "json")
    assert media_type == "application/json"
    assert orjson.loads(body) == [{"code": 400, "description": "x"}]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_description_gives_well_formed_xml(text: str) -> None:
    """User text cannot break the document: escaped, and unencodable characters dropped."""
    body, _ = open311.render(
        "requests", [open311.service_request(_report(description=text))], "xml"
    )
    parsed = ET.fromstring(body).findtext("request/description") or ""
    kept = open311._NOT_XML.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    assert parsed == kept


def test_parse_post_spec_example() -> None:
    form = {
        "api_key": "xyz",
        "jurisdiction_id": "city.gov",
        "service_code": "waste",
        "lat": "-6.85",
        "long": "107.64",
        "email": "smit222@sfgov.edu",
        "first_name": "John",
        "last_name": "Smith",
        "phone": "111111111",
        "description": "A large sinkhole is destroying the street",
        "media_url": "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg",
    }
    post = open311.parse_post(form)
    assert (post.api_key, post.service_code, post.lat, post.long) == ("xyz", "waste", -6.85, 107.64)
    report_in = post.to_report_input("web")
    assert report_in.location is not None
    assert (report_in.location.lon, report_in.location.lat) == (107.64, -6.85)
    assert report_in.reporter_phone == "111111111"
    assert report_in.channel == "web"
    by_address = open311.parse_post({"service_code": "waste", "address_string": "Jalan Aceh 1"})
    assert by_address.to_report_input("web").address == "Jalan Aceh 1"


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"lat": "1", "long": "2"}, "service_code"),
        ({"service_code": "waste"}, "lat"),
        ({"service_code": "waste", "lat": "1"}, "long"),
        ({"service_code": "waste", "lat": "north", "long": "2"}, "lat"),
    ],
)
def test_parse_post_errors(form: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as info:
        open311.parse_post(form)
    assert info.value.detail["field"] == field


def test_non_finite_coordinates_are_refused() -> None:
    post = open311.parse_post({"service_code": "waste", "lat": "1e400", "long": "2"})
    with pytest.raises(InvalidCoordinatesError):
        post.to_report_input("web")


@pytest.mark.parametrize("text", ["nan", "inf", "1_0", "\u0661\u0660"])
def test_only_decimal_numbers_are_coordinates(text: str) -> None:
    # Issue 10, Low: Python's float() took "1_0" as 10.0.
    with pytest.raises(InputError, match="lat must be a number"):
        open311.parse_post({"service_code": "waste", "lat": text, "long": "2"})


def test_parse_query() -> None:
    default = open311.parse_query({}, now=NOW)
    assert default.filters.created_from == NOW - timedelta(days=90)
    assert default.filters.created_to is None
    assert default.limit == open311.MAX_REQUESTS
    q = open311.parse_query(
        {
            "service_code": "waste",
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2026-02-01T00:00:00-05:00",
            "status": "open",
        },
        now=NOW,
    )
    assert q.filters.category == "waste"
    assert q.filters.created_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert q.filters.created_to == datetime(2026, 2, 1, 5, tzinfo=UTC)
    assert q.filters.statuses == ("open", "acknowledged", "in_progress")
    ids = open311.parse_query({"service_request_id": "r_1, r_2,r_1", "status": "closed"}, now=NOW)
    assert ids.filters.ids == ("r_1", "r_2") and ids.filters.statuses is None
    only_end = open311.parse_query({"end_date": "2025-12-31T00:00:00Z"}, now=NOW)
    assert only_end.filters.created_from == datetime(2025, 10, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "last week"},
        {"status": "pending"},
        {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
    ],
)
def test_parse_query_errors(params: dict[str, str]) -> None:
    with pytest.raises(InputError):
        open311.parse_query(params, now=NOW)


def test_format() -> None:
    assert open311.parse_format("JSON") == "json"
    with pytest.raises(InputError):
        open311.parse_format("yaml")


def test_a_report_waiting_for_the_store_is_open_with_a_notice() -> None:
    report = _report(status="pending_store")
    assert open311.open311_status("pending_store") == "open"
    notice = open311.service_notice(report) or ""
    assert "database was unavailable" in notice
    assert open311.service_request(report)["status"] == "open"
