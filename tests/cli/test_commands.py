import json

import numpy as np
import pytest

from dcrmodel.cli.main import main
from dcrmodel.fits.exposure import readExposure
from dcrmodel.simulate import loadManifest


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["simulate", "--out", str(root / "sim"), "--size", "112", "--visits", "10",
                 "--no-progress", "-q"]) == 0
    manifest = loadManifest(root / "sim")
    training = [str(manifest.path(v["file"])) for v in manifest.visits()
                if v["role"] == "training"]
    test = [v for v in manifest.visits() if v["role"] == "test"][0]
    model = root / "model"
    assert main(["assemble", *training, "--coadd", str(manifest.coaddPath), "--out",
                 str(model), "--solver", "direct", "-q"]) == 0
    return root, manifest, model, manifest.path(test["file"])


def test_assemble_writes_model_and_summary(field):
    root, manifest, model, _ = field
    names = sorted(p.name for p in model.iterdir())
    assert names == ["dcrCoadd_0.fits", "dcrCoadd_1.fits", "dcrCoadd_2.fits", "nImage.fits",
                     "stackedCoadd.fits", "summary.json"]
    summary = json.loads((model / "summary.json").read_text())
    assert len(summary["visits"]) == sum(v["role"] == "training" for v in manifest.visits())


def test_template_and_diff(field, capsys):
    root, _, model, science = field
    out = root / "template.fits"
    assert main(["template", str(model), str(science), "--out", str(out)]) == 0
    template = readExposure(out)
    exposure = readExposure(science)
    assert template.bbox == exposure.bbox
    assert np.isfinite(template.image.array).all()
    # an existing output is refused unless --overwrite
    assert main(["template", str(model), str(science), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    diff = root / "diff.fits"
    assert main(["diff", str(model), str(science), "--out", str(diff), "-q"]) == 0
    detections = json.loads(diff.with_suffix(".json").read_text())
    assert detections["numDetections"] == len(detections["detections"])
    difference = readExposure(diff)
    np.testing.assert_allclose(difference.image.array,
                               exposure.image.array - template.image.array, atol=2e-2)


def test_diff_match_to(field, capsys):
    root, _, model, science = field
    for mode in ("template", "science", "auto"):
        diff = root / f"diff-{mode}.fits"
        assert main(["diff", str(model), str(science), "--out", str(diff), "-q",
                     "--match-to", mode]) == 0
        chosen = json.loads(diff.with_suffix(".json").read_text())["matchTo"]
        assert chosen == mode if mode != "auto" else chosen in ("template", "science")
    assert main(["diff", str(model), str(science), "--out", str(root / "x.fits"),
                 "--match-to", "model"]) == 2
    assert "--match-to" in capsys.readouterr().err
    assert not (root / "x.fits").exists()


def test_bad_input_exit_codes(field, tmp_path, capsys):
    root, manifest, _, science = field
    visit = str(science)
    assert main(["assemble", visit, "--out", str(tmp_path / "m")]) == 2
    assert "subfilters" in capsys.readouterr().err
    assert main(["assemble", visit, visit, visit, "--out", str(tmp_path / "m"),
                 "--set", "notAKnob=1"]) == 2
    assert "unknown setting" in capsys.readouterr().err
    assert main(["assemble", visit, "--out", str(tmp_path / "m"), "--bandwidth", "100"]) == 2
    assert "together" in capsys.readouterr().err
    assert main(["template", str(tmp_path / "missing"), visit, "--out",
                 str(tmp_path / "t.fits")]) != 0
    assert not (tmp_path / "t.fits").exists()
    assert not (tmp_path / "m").exists()


def test_assemble_on_workers_equals_serial(field, tmp_path):
    root, manifest, model, _ = field
    training = [str(manifest.path(v["file"])) for v in manifest.visits()
                if v["role"] == "training"]
    options = ["--coadd", str(manifest.coaddPath), "--solver", "direct", "-q",
               "--set", "subregionSize=[64, 64]"]
    assert main(["assemble", *training, "--out", str(tmp_path / "serial"), *options]) == 0
    assert main(["assemble", *training, "--out", str(tmp_path / "cluster"), "--workers", "2",
                 *options]) == 0
    for k in range(3):
        serial = readExposure(tmp_path / "serial" / f"dcrCoadd_{k}.fits").image.array
        cluster = readExposure(tmp_path / "cluster" / f"dcrCoadd_{k}.fits").image.array
        np.testing.assert_allclose(cluster, serial, rtol=0, atol=1e-5 * np.abs(serial).max())


def test_assemble_patches_plan(field, tmp_path, capsys):
    root, manifest, _, _ = field
    training = [manifest.path(v["file"]) for v in manifest.visits() if v["role"] == "training"]
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[[patch]]\nname = 'north'\n"
        f"visits = {[str(p) for p in training[:5]]}\nout = 'models/north'\n"
        "[[patch]]\nname = 'south'\n"
        f"visits = {[str(p) for p in training[3:]]}\ncoadd = '{manifest.coaddPath}'\n"
        "out = 'models/south'\n"
    )
    assert main(["assemble-patches", str(plan)]) == 0
    table = capsys.readouterr().out
    assert "north" in table and "south" in table and "done" in table
    assert (tmp_path / "models" / "south" / "dcrCoadd_2.fits").exists()
    plan.write_text(plan.read_text().replace(str(training[0]), str(tmp_path / "gone.fits")))
    assert main(["assemble-patches", str(plan), "--overwrite"]) == 2
    assert "gone.fits" in capsys.readouterr().err
