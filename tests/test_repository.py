"""What the repository tracks: source and text, never a built or downloaded archive (a wheel was committed at
the root once, commit 8e9c808, and stayed for rounds)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import REPO

# the first bytes of archives and other binaries a build or a download leaves behind
MAGIC = {b"PK\x03\x04": "zip (a wheel, a jar)", b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
         b"7z\xbc\xaf\x27\x1c": "7z", b"\x7fELF": "ELF binary", b"\x80\x02": "pickle (a torch checkpoint)"}
SUFFIXES = (".whl", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".egg", ".pt", ".pth", ".ckpt",
            ".safetensors", ".so", ".pyc", ".npy", ".npz")


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def test_no_binary_archive_is_tracked() -> None:
    found = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        with path.open("rb") as f:
            head = f.read(8)
        kinds = [kind for magic, kind in MAGIC.items() if head.startswith(magic)]
        if name.lower().endswith(SUFFIXES) or kinds:
            found.append(f"{name} ({', '.join(kinds) or 'archive suffix'})")
    assert found == [], f"binary archives tracked by git: {found}; remove them with git rm"


def test_the_check_sees_an_archive(tmp_path) -> None:
    """The magic numbers above are read from a real wheel-like zip, so the check can fail."""
    import zipfile

    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("x.py", "")
    head = wheel.read_bytes()[:8]
    assert any(head.startswith(magic) for magic in MAGIC)


def test_every_module_the_architecture_page_names_exists() -> None:
    """docs/architecture.md names each module of the house: a name that no longer exists is a page gone stale."""
    import re
    from pathlib import PurePosixPath

    files = tracked_files()
    names = {PurePosixPath(f).name for f in files}
    text = (REPO / "docs" / "architecture.md").read_text()
    stale = [tok for tok in sorted(set(re.findall(r"[\w/.]*\w\.py\b", text)))
             if not (any(f.endswith(tok) for f in files) if "/" in tok else tok in names)]
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def test_the_user_guide_lists_every_guide_page_and_the_readme_links_it() -> None:
    """One list of the guide's pages, the user guide's index, kept whole (the README links the index, not a
    second list kept by hand): a new page is linked where users look."""
    from pathlib import Path

    index = (REPO / "docs" / "user-guide.md").read_text()
    pages = sorted(p.name for p in Path(REPO / "docs" / "guide").glob("*.md"))
    missing = [p for p in pages if f"(guide/{p})" not in index]
    assert not missing, f"docs/user-guide.md does not list these guide pages: {missing}"
    assert "(docs/user-guide.md)" in (REPO / "README.md").read_text()
