from __future__ import annotations

from pathlib import Path

import pytest

from geo_router.city.profile import CityProfile, LayerSpec, load_profile
from geo_router.errors import ProfileError

BASE = """
name = "Kota Uji"
phone_region = "ID"

[[layers]]
name = "kelurahan"
path = "kel.geojson"
id_field = "kode"
name_field = "nama"
parent = "kecamatan"

[[layers]]
name = "kecamatan"
path = "kec.geojson"
id_field = "kode"

[[facilities]]
type = "fire_station"
path = "fire.csv"
id_field = "id"
name_field = "name"
lon_field = "lon"
lat_field = "lat"

[[categories]]
code = "fire"
name = "Fire"
agency = "Damkar"
responders = ["fire_station"]
emergency = true

[address_points]
path = "addr.csv"
street_field = "street"
number_field = "number"
lon_field = "lon"
lat_field = "lat"
"""


def write_profile(tmp_path: Path, text: str = BASE, files: tuple[str, ...] = ()) -> Path:
    for name in ("kel.geojson", "kec.geojson", "fire.csv", "addr.csv", *files):
        (tmp_path / name).write_text("x")
    path = tmp_path / "city.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile(write_profile(tmp_path, text))
    return info.value.message


def test_loads_and_resolves_paths(tmp_path: Path) -> None:
    profile = load_profile(write_profile(tmp_path))
    assert profile.name == "Kota Uji"
    assert profile.base_dir == tmp_path.resolve()
    assert profile.path == (tmp_path / "city.toml").resolve()
    assert profile.layer("kelurahan").path == (tmp_path / "kel.geojson").resolve()
    assert profile.layer("kelurahan").parent == "kecamatan"
    assert profile.layer("kecamatan").name_field is None
    assert profile.layer("kecamatan").repair is False
    assert profile.facility("fire_station").lon_field == "lon"
    assert profile.category("fire").responders == ["fire_station"]
    assert profile.category("fire").emergency is True
    assert profile.address_points is not None
    assert profile.address_points.path.is_absolute()
    assert profile.address_points.kelurahan_field is None


def test_lookups_name_the_known_entries(tmp_path: Path) -> None:
    profile = load_profile(write_profile(tmp_path))
    with pytest.raises(ProfileError, match=r"no layer 'x' \(layers: kelurahan, kecamatan\)"):
        profile.layer("x")
    with pytest.raises(ProfileError, match="fire_station"):
        profile.facility("hospital")
    with pytest.raises(ProfileError, match="categories: fire"):
        profile.category("noise")


def test_optional_sections(tmp_path: Path) -> None:
    text = 'name = "Mini"\n[[layers]]\nname = "a"\npath = "kel.geojson"\nid_field = "id"\n'
    profile = load_profile(write_profile(tmp_path, text))
    assert profile.facilities == [] and profile.categories == []
    assert profile.address_points is None
    assert profile.phone_region == "ID"


def test_unknown_parent_names_file_and_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace('parent = "kecamatan"', 'parent = "kecamatn"'))
    assert message == (
        "city.toml: layers[0].parent: layer 'kecamatn' does not exist "
        "(layers: kelurahan, kecamatan)"
    )


def test_missing_file_names_key_and_absolute_path(tmp_path: Path) -> None:
    path = write_profile(tmp_path)
    (tmp_path / "kec.geojson").unlink()
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.message == (
        f"city.toml: layers[1].path: file not found: {(tmp_path / 'kec.geojson').resolve()}"
    )


def test_unknown_key(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, BASE.replace('id_field = "kode"\n\n[[fac', 'idfield = "k"\n\n[[fac')
    )
    assert "unknown key 'idfield' in layers[1]" in message
    assert message.startswith("city.toml: ")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert "unknown key 'colour'" in error_of(tmp_path, 'colour = "red"\n' + BASE)


def test_missing_required_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace('id_field = "id"\n', ""))
    assert "facilities[0].id_field: required key is missing" in message


@pytest.mark.parametrize("bad", ["Kelurahan", "1st", "kel-urahan", "kel urahan", ""])
def test_layer_name_must_be_identifier(tmp_path: Path, bad: str) -> None:
    text = BASE.replace('name = "kecamatan"', f'name = "{bad}"').replace(
        'parent = "kecamatan"', f'parent = "{bad}"'
    )
    assert "layers[1].name" in error_of(tmp_path, text)


def test_duplicate_layer_names(tmp_path: Path) -> None:
    text = BASE.replace('name = "kecamatan"', 'name = "kelurahan"').replace(
        'parent = "kecamatan"\n', ""
    )
    assert "duplicate layer name 'kelurahan'" in error_of(tmp_path, text)


def test_duplicate_facility_types_and_category_codes(tmp_path: Path) -> None:
    fac = BASE.split("[[facilities]]")[1].split("[[categories]]")[0]
    assert "duplicate facility type 'fire_station'" in error_of(
        tmp_path, BASE + "\n[[facilities]]" + fac
    )
    cat = '\n[[categories]]\ncode = "fire"\nagency = "X"\n'
    assert "duplicate category code 'fire'" in error_of(tmp_path, BASE + cat)


def test_unknown_responder(tmp_path: Path) -> None:
    text = BASE.replace('responders = ["fire_station"]', 'responders = ["fire_station", "ufo"]')
    message = error_of(tmp_path, text)
    assert "categories[0].responders[1]: facility type 'ufo' does not exist" in message


def test_parent_cycle(tmp_path: Path) -> None:
    text = BASE.replace(
        'id_field = "kode"\n\n[[fac', 'id_field = "kode"\nparent = "kelurahan"\n\n[[fac'
    )
    assert "parent cycle kelurahan -> kecamatan -> kelurahan" in error_of(tmp_path, text)


def test_self_parent(tmp_path: Path) -> None:
    text = BASE.replace('parent = "kecamatan"', 'parent = "kelurahan"')
    assert "layers[0].parent: layer 'kelurahan' cannot be its own parent" in error_of(
        tmp_path, text
    )


def test_facility_type_clashing_with_layer(tmp_path: Path) -> None:
    text = BASE.replace('type = "fire_station"', 'type = "kecamatan"').replace(
        '["fire_station"]', '["kecamatan"]'
    )
    assert "facilities[0].type" in error_of(tmp_path, text)


def test_csv_facility_needs_coordinate_fields(tmp_path: Path) -> None:
    text = BASE.replace('lon_field = "lon"\nlat_field = "lat"\n\n[[cat', "\n[[cat")
    assert "facilities[0]: a CSV file needs lon_field and lat_field" in error_of(tmp_path, text)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace('id_field = "id"', "id_field = id"))
    assert message.startswith("city.toml: TOML syntax error")
    assert "line 20" in message


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nope\.toml: cannot read profile"):
        load_profile(tmp_path / "nope.toml")


def test_bad_phone_region(tmp_path: Path) -> None:
    assert "phone_region" in error_of(tmp_path, BASE.replace('"ID"', '"indonesia"'))


def test_absolute_paths_stay(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "k.geojson").write_text("x")
    text = BASE.replace('path = "kec.geojson"', f'path = "{other / "k.geojson"}"')
    profile = load_profile(write_profile(tmp_path, text))
    assert profile.layer("kecamatan").path == (other / "k.geojson").resolve()


def test_specs_are_frozen_and_forbid_extras() -> None:
    spec = LayerSpec(name="a", path=Path("/x"), id_field="id")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error class is internal
        spec.name = "b"  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017
        LayerSpec(name="a", path=Path("/x"), id_field="id", colour="red")  # type: ignore[call-arg]


def test_profile_built_in_code_checks_references() -> None:
    layer = LayerSpec(name="a", path=Path("/x"), id_field="id", parent="b")
    with pytest.raises(ValueError, match="layer 'b' does not exist"):
        CityProfile(name="X", layers=[layer])


def test_demo_city_profile(demo_profile_path: Path) -> None:
    if not demo_profile_path.exists():
        pytest.skip("demo city not generated yet")
    profile = load_profile(demo_profile_path)
    assert [layer.name for layer in profile.layers][:2] == ["kelurahan", "kecamatan"]
    assert profile.layer("kelurahan").parent == "kecamatan"
    assert {f.type for f in profile.facilities} >= {"fire_station", "police_post", "hospital"}
    assert profile.address_points is not None
