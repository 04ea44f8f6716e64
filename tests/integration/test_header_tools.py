"""Every XML header the project writes passes libismrmrd and the ISMRMRD schema.

``ismrmrd_test_xml`` (Debian/Ubuntu package ``ismrmrd-tools``) parses a header
with the C++ library and writes it back; it aborts on a ``<version>`` that is
not its own schema version. The schema is ``ismrmrd-schema``'s ismrmrd.xsd.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import xmlschema

from simulator.config import SimConfig
from simulator.xml_header import header_xml
from tests.integration.conftest import make_header_xml

TOOL = "ismrmrd_test_xml"
SCHEMA = Path("/usr/share/ismrmrd/schema/ismrmrd.xsd")

HEADERS = {
    "simulator default": lambda: header_xml(SimConfig(), 1, 1.9, 80.0, 178.0),
    "simulator small, 8x": lambda: header_xml(
        SimConfig(n_slices=2, n_phases=3, accel=8, mask_kind="variable_density"), 9, 1.6, 55.0,
        160.0),
    "simulator 96x80, 12 coils": lambda: header_xml(
        SimConfig(nx=96, ny=80, n_coils=12), 4, 2.1, 95.0, 190.0),
    "test streams": make_header_xml,
}


@pytest.mark.skipif(shutil.which(TOOL) is None,
                    reason=f"{TOOL} not found: install the Debian/Ubuntu package 'ismrmrd-tools'")
@pytest.mark.parametrize("name", sorted(HEADERS))
def test_libismrmrd_reads_the_header(name: str, tmp_path: Path) -> None:
    xml = HEADERS[name]()
    path = tmp_path / "header.xml"
    path.write_text(xml, encoding="utf-8")
    # cwd: the tool writes raw.xml and processed.xml where it runs.
    done = subprocess.run([TOOL, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ISMRMRD Header:")


@pytest.mark.skipif(shutil.which(TOOL) is None,
                    reason=f"{TOOL} not found: install the Debian/Ubuntu package 'ismrmrd-tools'")
def test_the_tool_does_refuse_a_version_it_does_not_know(tmp_path: Path) -> None:
    # What the simulator used to write: libismrmrd aborts on it (so the check above is real).
    xml = make_header_xml().replace("<ismrmrdHeader", "<ismrmrdHeader", 1)
    head, sep, rest = xml.partition("<experimentalConditions>")
    path = tmp_path / "v1.xml"
    path.write_text(f"{head}<version>1</version>{sep}{rest}", encoding="utf-8")
    # cwd: the tool writes raw.xml and processed.xml where it runs.
    done = subprocess.run([TOOL, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)
    assert done.returncode != 0
    assert "version does not match" in done.stderr


@pytest.mark.skipif(not SCHEMA.exists(),
                    reason=f"{SCHEMA} missing: install the Debian/Ubuntu package 'ismrmrd-schema'")
@pytest.mark.parametrize("name", sorted(HEADERS))
def test_header_validates_against_the_schema(name: str) -> None:
    xmlschema.XMLSchema(str(SCHEMA)).validate(HEADERS[name]())
