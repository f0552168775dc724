"""The PyPI miner on sdist-like tarballs built in the test (no network), and the data specs."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from rlctx_utils.cli import main
from rlctx_utils.data import load_corpus, load_datapoints
from rlctx_utils.data.errors import DownloadError, SpecError
from rlctx_utils.data.pypi import load_spec
from rlctx_utils.paths import CONFIGS


def py(name: str, n: int = 30, call: str = "") -> str:
    lines = [f"def {name}(x):"] + [f"    y{i} = x + {i}  # keep the file long enough" for i in range(n)]
    lines += [f"    return {call}(x)" if call else "    return x"]
    return "\n".join(lines) + "\n"


VENDORED = py("vendored_helper", 40)


def sdist(cache: Path, name: str, version: str, files: dict[str, str | bytes], evil: bool = False) -> str:
    """Write ``name-version.tar.gz`` like an sdist (one top folder, PKG-INFO, egg-info)."""
    path = cache / f"{name}-{version}.tar.gz"
    top = f"{name}-{version}"
    allf = {"PKG-INFO": f"Name: {name}\nVersion: {version}\n",
            f"{name}.egg-info/SOURCES.txt": "x\n", **files}
    with tarfile.open(path, "w:gz") as tf:
        for rel, data in allf.items():
            raw = data if isinstance(data, bytes) else data.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
        if evil:
            info = tarfile.TarInfo(f"{top}/../../../escaped.py")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"x=1"))
            link = tarfile.TarInfo(f"{top}/link.py")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(link)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def spec(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    (cache / "sdists").mkdir(parents=True)
    monkeypatch.setenv("RLCTX_CACHE", str(cache))
    d = cache / "sdists"
    entries = []

    def pkg(name, split, releases):
        rows = [f'[[package]]\nname = "{name}"\nsplit = "{split}"\nreleases = [']
        for ver, files, evil in releases:
            sha = sdist(d, name, ver, files, evil)
            rows.append(f'  {{version = "{ver}", filename = "{name}-{ver}.tar.gz", sha256 = "{sha}", '
                        f'date = 2021-0{len(rows)}-01}},')
        entries.append("\n".join(rows) + "\n]\n")

    base = {"alpha/__init__.py": py("alpha_core"), "tests/test_a.py": py("test_a", call="alpha_core"),
            "docs/index.rst": "Alpha\n=====\n", "setup.cfg": "[metadata]\nname = alpha\n"}
    pkg("alpha", "train", [
        ("1.0", base, False),
        ("1.1", {**base, "alpha/extra.py": py("extra_fn", call="alpha_core"), "alpha/_vendor/six.py": VENDORED,
                 "alpha/small.py": "x = 1\n"}, True),
        ("2.0", {**{k: v for k, v in base.items() if k != "alpha/__init__.py"},  # move: not an addition
                 "src/alpha/__init__.py": py("alpha_core"), "alpha/extra.py": py("extra_fn", call="alpha_core"),
                 "alpha/_vendor/six.py": VENDORED, "alpha/new2.py": py("new2")}, False),
    ])
    gbase = {"gamma/__init__.py": py("gamma_core")}
    pkg("gamma", "benchmark", [
        ("0.1", gbase, False),
        ("0.2", {**gbase, "gamma/api.py": py("gamma_api", call="gamma_core"), "gamma/six.py": VENDORED}, False),
    ])
    path = tmp_path / "spec.toml"
    path.write_text('profile = "smoke"\n\n' + "\n".join(entries))
    return path


def test_pypi_mining_end_to_end(spec, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["mine", "pypi", "--spec", str(spec), "--out", str(out), "--offline", "--quiet"]) == 0
    train = load_datapoints(out, split="train")
    bench = load_datapoints(out, split="benchmark")
    assert sorted(dp.completion_path for dp in train) == ["alpha/extra.py", "alpha/new2.py"]
    assert sorted(dp.completion_path for dp in bench) == ["gamma/api.py", "gamma/six.py"]
    extra = next(dp for dp in train if dp.completion_path == "alpha/extra.py")
    assert extra.meta["release"] == "1.1" and extra.meta["previous_release"] == "1.0"
    assert set(extra.snapshot) == {"alpha/__init__.py", "tests/test_a.py", "docs/index.rst", "setup.cfg"}
    assert extra.completion_lines_raw["inproject"], "alpha_core is declared in the snapshot"
    api = next(dp for dp in bench if dp.completion_path == "gamma/api.py")
    assert api.completion_lines["inproject"] and api.repo == "pypi__gamma"
    # the vendored copy is in the benchmark: it is dropped from training and from the corpus
    manifest = (out / "manifest.json").read_text()
    assert '"train:content_in_benchmark": 1' in manifest
    corpus = list(load_corpus(out))
    assert corpus and VENDORED not in corpus
    # hostile members were skipped and counted, nothing escaped
    assert '"unsafe_path": 1' in manifest and '"link": 1' in manifest and '"renamed_not_added": 1' in manifest
    assert not (tmp_path / "escaped.py").exists() and not any(tmp_path.rglob("escaped.py"))


def test_bad_pin_and_missing_cache(spec, tmp_path, capsys):
    text = spec.read_text()
    first = text.split('sha256 = "')[1][:64]
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(first, "0" * 64, 1))
    assert main(["mine", "pypi", "--spec", str(bad), "--out", str(tmp_path / "o"), "--offline", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    # the cached file does not match the (bad) pin: reported, and the file is kept (issue 12, item 9)
    err = "\n".join(ln for ln in err.splitlines() if ": error:" in ln)  # one error line (others are information)
    assert len(err.splitlines()) == 1 and "does not match the pin" in err and "alpha-1.0.tar.gz" in err
    assert (tmp_path / "cache" / "sdists" / "alpha-1.0.tar.gz").exists()
    # a file missing from the cache, offline: named, with what to do
    (tmp_path / "cache" / "sdists" / "alpha-1.0.tar.gz").unlink()
    assert main(["mine", "pypi", "--spec", str(bad), "--out", str(tmp_path / "o"), "--offline", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    err = "\n".join(ln for ln in err.splitlines() if ": error:" in ln)
    assert len(err.splitlines()) == 1 and "is not in" in err and "cache" in err
    with pytest.raises(SpecError):
        broken = tmp_path / "broken.toml"
        broken.write_text('[[package]]\nname = "x"\nreleases = [{version = "1", filename = "x-1.tar.gz", '
                          'sha256 = "abc"}]\n')
        load_spec(broken)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_shipped_specs_are_valid(profile):
    from rlctx_utils.config import load_profile

    spec = load_spec(CONFIGS / "data" / f"{profile}.toml")
    assert spec.profile == profile
    assert load_profile(profile)["data"]["spec"] == f"configs/data/{profile}.toml"
    splits = {p.split for p in spec.packages}
    assert {"train", "benchmark"} <= splits
    bench = [p.name for p in spec.packages if p.split != "train"]
    # evaluation packages are not installed in the environment (so they cannot leak via site-packages)
    from importlib import metadata
    installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert not {b.lower() for b in bench} & installed
    # a package belongs to one split only (no repository is both trained on and evaluated)
    by_split: dict[str, set[str]] = {}
    for p in spec.packages:
        by_split.setdefault(p.split, set()).add(p.name.lower())
    names = [n for s in by_split.values() for n in s]
    assert len(names) == len(set(names))
    if profile == "cpu":
        # the second cpu study's sizes (configs/data/cpu.toml's header): 71 / 6 / 32 packages
        assert 50 <= len(by_split["train"]) <= 100
        assert len(by_split.get("validation", ())) >= 3
        assert len(by_split["benchmark"]) >= 30


def test_first_cpu_study_spec_is_kept_and_valid():
    """configs/data/cpu-v1.toml is the spec of the first cpu study and of the frozen tuning sweep."""
    from rlctx_utils.config import load_profile

    spec = load_spec(CONFIGS / "data" / "cpu-v1.toml")
    counts = {s: sum(p.split == s for p in spec.packages) for s in ("train", "validation", "benchmark")}
    assert counts == {"train": 24, "validation": 3, "benchmark": 5}
    frozen = load_profile("cpu").get("tuning", {}).get("profile", {})
    assert frozen.get("data", {}).get("spec") == "configs/data/cpu-v1.toml"
