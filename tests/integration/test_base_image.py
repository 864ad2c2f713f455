"""The local Debian base image: made with debootstrap, trimmed, and keeping later packages slim."""

from __future__ import annotations

import pytest

from cryostack.engine.base import Engine

pytestmark = pytest.mark.docker


def test_the_base_carries_no_downloads_and_later_packages_keep_only_their_licences(engine: Engine, base_image: str):
    info = engine.image(base_image)
    assert info.labels.get("io.cryostack.base-layout"), info.labels
    # Nothing debootstrap downloaded stays behind; the copyright files of its packages do.
    code, output = engine.run(base_image, "ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_* 2>/dev/null | wc -l; "
                                          "test -f /usr/share/doc/bash/copyright && echo licence-kept")
    assert output.split() == ["0", "licence-kept"], output
    # A package installed later, as a recipe would: its licence is kept, its manual and translations are not.
    code, output = engine.run(base_image, (
        "apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        "less >/dev/null 2>&1 && dpkg -L less | while read -r f; do if [ -f \"$f\" ]; then echo \"$f\"; fi; done"),
        network_mode="host", timeout=300)
    assert code == 0, output
    files = output.split()
    assert "/usr/bin/less" in files and "/usr/share/doc/less/copyright" in files, output
    assert not [f for f in files if f.startswith(("/usr/share/man/", "/usr/share/locale/"))
                or (f.startswith("/usr/share/doc/") and not f.endswith("/copyright"))], output
