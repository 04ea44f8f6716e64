"""``[chain.inputs]`` and CONFIG_FILE requests (``NAME[.xml][?results=MODE]``)."""

from __future__ import annotations

import pytest

from kmtr_stream.chain.config import InputPolicy, load_chain_config, parse_chain_config
from kmtr_stream.errors import ConfigError
from kmtr_stream.transport.catalog import ChainCatalog, ChainRequest
from tests.integration.conftest import PASSTHROUGH, ROOT

BASE = '[chain]\nname = "c"\n{inputs}\n[[gadgets]]\nid = "p"\ntype = "passthrough"\n'


def test_defaults_refuse_images_and_report_waveforms() -> None:
    spec = parse_chain_config(BASE.format(inputs=""), "c.toml")
    assert spec.inputs == InputPolicy("pass", "error", "warn", "pass")


def test_shipped_chains_say_what_they_take() -> None:
    assert load_chain_config(PASSTHROUGH).inputs == InputPolicy("pass", "pass", "pass", "pass")
    kmtr = load_chain_config(ROOT / "configs" / "kmtr.toml").inputs
    assert (kmtr.acquisition, kmtr.image, kmtr.waveform, kmtr.text) == (
        "pass", "error", "warn", "warn")


@pytest.mark.parametrize("table, needle", [
    ('[chain.inputs]\nimage = "drop"', "key 'image': 'drop' is not one of pass, warn, error"),
    ('[chain.inputs]\nnoise = "pass"', "key 'noise': unknown key (known: acquisition, image"),
    ('[chain.inputs]\nimage = 1', "key 'image': 1 is a int, expected str"),
])
def test_bad_inputs_name_the_file_table_and_key(table: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml: \[chain\.inputs\]") as info:
        parse_chain_config(BASE.format(inputs=table), "c.toml")
    assert needle in str(info.value)


@pytest.fixture(scope="module")
def catalog() -> ChainCatalog:
    return ChainCatalog.from_paths([PASSTHROUGH, ROOT / "configs" / "kmtr.toml"])


@pytest.mark.parametrize("text, want", [
    ("kmtr", ChainRequest("kmtr")),
    ("kmtr.xml", ChainRequest("kmtr")),
    ("default.xml", ChainRequest("default")),  # python-ismrmrd-server client's default
    ("passthrough.toml?results=msgpack", ChainRequest("passthrough", "msgpack")),
    ("default?results=standard", ChainRequest("default", "standard")),
])
def test_config_requests(catalog: ChainCatalog, text: str, want: ChainRequest) -> None:
    assert catalog.parse_request(text) == want


@pytest.mark.parametrize("text, needle", [
    ("kmtr.json", "unknown chain config 'kmtr.json'"),
    ("../configs/kmtr.toml", "unknown chain config"),
    ("kmtr?results", "unknown parameter 'results'"),
    ("kmtr?results=xml", "results='xml' is not one of standard, msgpack"),
])
def test_bad_config_requests_are_refused(catalog: ChainCatalog, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        catalog.parse_request(text)
    assert needle in str(info.value)
