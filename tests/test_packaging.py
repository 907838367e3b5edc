"""`pip install .` (not only the editable install of development) must carry every file the
package reads at run time: templates, catalogs, policies, migrations, samples."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_every_data_file_of_the_package(tmp_path: Path) -> None:
    # Built from the tracked files alone: a build/ folder left by an earlier build would hand
    # setuptools stale copies of files the package data no longer names.
    source = tmp_path / "source"
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("refundlens-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "src" / "refundlens"
    wanted = {
        "refundlens/" + p.relative_to(package).as_posix()
        for p in package.rglob("*")
        # Markdown beside the code is for readers of the source, not read at run time.
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".md")
    }
    assert sorted(wanted - shipped) == []
