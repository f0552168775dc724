"""Safe reading of untrusted source archives (rlctx_utils.data.snapshots)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections import Counter

import pytest

from rlctx_utils.data.errors import UnsafeArchiveError
from rlctx_utils.data.snapshots import decode_text, read_archive, read_dir, safe_member_path


def _add(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    tf.addfile(info, io.BytesIO(data) if data else None)


def test_tar_with_hostile_members(tmp_path):
    path = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, "evil-1.0/pkg/__init__.py", b"x = 1\n")
        _add(tf, "evil-1.0/../../escape.py", b"print('out')\n")
        _add(tf, "/etc/passwd_abs", b"root\n")
        _add(tf, "evil-1.0/link.py", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(tf, "evil-1.0/hard.py", type=tarfile.LNKTYPE, linkname="evil-1.0/pkg/__init__.py")
        _add(tf, "evil-1.0/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _add(tf, "evil-1.0/fifo", type=tarfile.FIFOTYPE)
        _add(tf, "evil-1.0/logo.png", b"\x89PNG\x00\x00binary")
        _add(tf, "evil-1.0/latin.py", "# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n".encode("latin-1"))
        _add(tf, "evil-1.0/bad.txt", b"\xff\xfe\xfa not utf8")
        _add(tf, "evil-1.0/big.py", b"a" * 5000)
    before = set(os.listdir(tmp_path))
    stats: Counter = Counter()
    snap = read_archive(path, max_file_bytes=4000, stats=stats)
    assert set(os.listdir(tmp_path)) == before  # nothing extracted anywhere
    # the top folder is not stripped when hostile members sit outside it, but nothing escapes
    assert all(not p.startswith("/") and ".." not in p.split("/") for p in snap)
    assert stats["unsafe_path"] == 2
    assert stats["link"] == 2
    assert stats["special_file"] == 2
    assert stats["too_large"] == 1
    assert snap["pkg/__init__.py"] == "x = 1\n"
    assert snap["logo.png"] is None and snap["bad.txt"] is None and snap["big.py"] is None
    assert snap["latin.py"].endswith("s = 'café'\n")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for i in range(5):
            _add(tf, f"bomb/f{i}.py", b"0" * 300_000)  # compresses to almost nothing
    assert path.stat().st_size < 10_000
    with pytest.raises(UnsafeArchiveError, match="bomb"):
        read_archive(path, max_total_bytes=1_000_000)
    with pytest.raises(UnsafeArchiveError, match="declares"):
        read_archive(path, max_declared_bytes=500_000)


def test_zip_reader_caps_and_links(tmp_path):
    path = tmp_path / "pkg-2.0.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg-2.0/a.py", "def f():\n    return 1\n")
        zf.writestr("pkg-2.0/../up.py", "x")
        zf.writestr("pkg-2.0/huge.txt", "z" * 50_000)
        link = zipfile.ZipInfo("pkg-2.0/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    stats: Counter = Counter()
    snap = read_archive(path, max_file_bytes=10_000, stats=stats)
    assert snap == {"a.py": "def f():\n    return 1\n", "huge.txt": None}
    assert stats["unsafe_path"] == 1 and stats["link"] == 1 and stats["too_large"] == 1


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.tar.gz"
    p.write_bytes(b"definitely not an archive")
    with pytest.raises(UnsafeArchiveError):
        read_archive(p)


def test_safe_member_path():
    assert safe_member_path("a/./b/../c") is None
    assert safe_member_path("a//b/./c.py") == "a/b/c.py"
    for bad in ("/abs", "C:/x", "a\\b", "..", "a/\x00b", ""):
        assert safe_member_path(bad) is None


def test_read_dir_skips_links_and_decodes(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    (tmp_path / "ln.py").symlink_to(tmp_path / "src" / "m.py")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    stats: Counter = Counter()
    snap = read_dir(tmp_path, stats=stats)
    assert snap == {"src/m.py": "x = 1\n", "blob.bin": None}
    assert stats["link"] == 1


def test_decode_text():
    assert decode_text("\ufeffé".encode("utf-8")) == "é"
    assert decode_text(b"a\x00b") is None
    assert decode_text(b"\xe9", "x.txt") is None
