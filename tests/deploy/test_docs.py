"""The deployment docs point at files that exist and name the images the files actually use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.conftest import CHART, ROOT

pytestmark = pytest.mark.deploy

DOCS = [ROOT / "README.md", ROOT / "docs" / "deploy.md", CHART / "README.md", ROOT / "helm" / "README.md"]


def test_readme_has_a_deploy_section_before_development() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "README.md").read_text(), re.M)
    assert headings.index("Deploy") + 1 == headings.index("Development")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
        assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def test_image_versions_in_the_docs_match_the_files() -> None:
    used = (ROOT / "Dockerfile").read_text() + (ROOT / "docker-compose.yml").read_text()
    pattern = r"(?:apache/kafka|confluentinc/cp-schema-registry|python):[0-9][\w.-]*"
    for doc in DOCS:
        for image in set(re.findall(pattern, doc.read_text())):
            assert image in used, f"{doc.relative_to(ROOT)} names {image}, which the files do not use"
