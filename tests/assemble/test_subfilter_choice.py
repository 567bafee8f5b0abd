"""Tests of dcrmodel.assemble.subfilters: the number of subfilters chosen from the data."""

import json
import logging
import types
import warnings

import numpy as np
import pytest

from dcrmodel.assemble import (
    MAX_AUTO_SUBFILTERS,
    DcrAssembleCoadd,
    DcrAssembleConfig,
    chooseSubfilters,
    distinctConfigurations,
)
from dcrmodel.cli import main
from dcrmodel.errors import DcrConfigError, DcrWarning
from dcrmodel.image import Filter
from dcrmodel.simulate import SimulationConfig, runSimulation
from helpers import meridianVisitInfo

BOX = "box"
HOUR_ANGLES = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)  # airmass 1.1 to 2.1


def _visits(hourAngles=HOUR_ANGLES, scale=5.0):
    """Stand-ins for assembly inputs: real visit infos, zenith directions on a 0.2"/px grid."""
    visits = []
    for i, hourAngle in enumerate(hourAngles):
        angle = np.radians(10.0 * hourAngle)
        visits.append(types.SimpleNamespace(
            name=f"visit {i}", visitInfo=meridianVisitInfo(hourAngle, i), psf=None,
            zenith={BOX: (scale * np.cos(angle), scale * np.sin(angle))}))
    return visits


def _choose(band, fwhm=3.5, requested="auto", visits=None):
    return chooseSubfilters(requested, _visits() if visits is None else visits,
                            Filter.fromBand(band), BOX, fwhm)


def test_bluer_bands_get_more_subfilters_and_r_keeps_three():
    u, g, r = (_choose(band) for band in "ugr")
    assert u.number > g.number >= r.number == 3
    assert u.spreadPixels <= u.limitPixels == pytest.approx(1.2 * 3.5)
    assert u.maxAirmass == pytest.approx(max(v.visitInfo.boresightAirmass for v in _visits()))
    assert "auto" in u.reason and f"{u.spreadPixels:.2f} px" in u.reason
    # a sharper model PSF needs more subfilters, a blurrier one fewer (never below 3)
    assert _choose("g", fwhm=2.5).number > g.number
    assert _choose("u", fwhm=20.0).number == 3


def test_the_scale_is_the_visits_median_fwhm_or_the_models_when_broader():
    sharp = _choose("g", fwhm=2.5)
    visits = _visits()
    for visit, fwhm in zip(visits, (2.5, 3.0, 4.0, 4.0, 4.0, 4.0, 4.5, 5.0, 6.0), strict=True):
        visit.psf = types.SimpleNamespace(fwhm=fwhm)  # variable seeing, median 4 px
    broad = _choose("g", fwhm=2.5, visits=visits)
    assert broad.number < sharp.number and broad.psfFwhm == 4.0
    assert broad.limitPixels == pytest.approx(1.2 * 4.0) and broad.modelPsfFwhm == 2.5
    assert _choose("g", fwhm=5.0, visits=visits).psfFwhm == 5.0  # the model's, broader
    # without a model PSF the visits' decide; without any PSF "auto" keeps 3
    assert _choose("g", fwhm=None, visits=visits).number == broad.number
    none = _choose("u", fwhm=None)
    assert none.number == 3 and "no PSF is known" in none.reason


def test_a_visit_at_the_zenith_has_no_dcr():
    visits = _visits()
    visits[4].zenith[BOX] = (0.0, 0.0)
    assert _choose("u", visits=visits).number == _choose("u").number


def test_larger_airmass_needs_more_subfilters():
    low = _choose("u", fwhm=2.5, visits=_visits((-2.0, -1.0, 0.0, 1.0, 2.0, 1.5, -1.5)))
    high = _choose("u", fwhm=2.5)
    assert high.maxAirmass > low.maxAirmass and high.number > low.number


def test_capped_by_the_visits_configurations_and_the_maximum():
    same = _visits((2.0,) * 6)
    assert distinctConfigurations(same, BOX) == 1
    choice = _choose("u", fwhm=1.0, visits=same)
    assert choice.number == 3 and choice.cap == 3 and choice.needed is None
    assert "the most the visits can constrain" in choice.reason
    five = _visits((-4.0, -2.0, 0.0, 2.0, 4.0) * 2)
    assert distinctConfigurations(five, BOX) == 5
    assert _choose("u", fwhm=1.0, visits=five).number == 5
    many = _visits(tuple(np.linspace(-4.0, 4.0, 20)))
    assert _choose("u", fwhm=0.5, visits=many).number == MAX_AUTO_SUBFILTERS


def test_explicit_number_too_small_warns_with_the_automatic_choice():
    auto = _choose("u").number
    with pytest.warns(DcrWarning, match=rf"dcrNumSubfilters=3 is too few for these visits: the "
                      rf"DCR across one subfilter reaches \d+\.\d\d pixels at airmass 2\.\d\d "
                      rf".*\"auto\" would choose {auto}"):
        choice = _choose("u", requested=3)
    assert choice.number == 3 and choice.requested == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _choose("u", requested=auto).number == auto  # enough: no warning
        assert _choose("r", requested=3).number == 3
        assert _choose("u", requested=3, fwhm=None).number == 3  # no PSF: nothing to compare


def test_config_and_toml_accept_auto(tmp_path):
    assert DcrAssembleConfig().dcrNumSubfilters == "auto"
    assert DcrAssembleConfig(dcrNumSubfilters=5).dcrNumSubfilters == 5
    path = tmp_path / "c.toml"
    path.write_text('dcrNumSubfilters = "auto"\nmaxNumIter = 4\n')
    config = DcrAssembleConfig.fromToml(path)
    assert config.autoSubfilters and config.leastNumSubfilters() == 3
    # a chosen number above maxNumIter lowers the default minimum of iterations with it
    resolved = config.withSubfilters(5)
    assert resolved.dcrNumSubfilters == 5 and resolved.resolveMinNumIter() == 4
    for bad in ("many", "AUTO", 0, 2.5, True):
        with pytest.raises(DcrConfigError, match='dcrNumSubfilters must be an integer >= 1 or '
                           '"auto"'):
            DcrAssembleConfig(dcrNumSubfilters=bad)


@pytest.fixture(scope="module")
def uField(tmp_path_factory):
    root = tmp_path_factory.mktemp("ufield")
    config = SimulationConfig(size=64, numTraining=8, numTest=1, band="u", numStars=6,
                              numGalaxies=2, trainingAirmass=(1.0, 2.0), testAirmass=(1.5, 1.6),
                              transientsPerTestVisit=0, defectFraction=0.0)
    manifest = runSimulation(root / "sim", config, seed=3)
    return [manifest.path(v["file"]) for v in manifest.visits("training")], root


def test_assembly_records_and_logs_the_choice(uField, caplog):
    visits, _ = uField
    with caplog.at_level(logging.INFO, logger="dcrmodel.assemble.task"):
        result = DcrAssembleCoadd().run(visits)
    choice = result.summary["subfilters"]
    assert choice["requested"] == "auto" and choice["number"] == result.dcrModel.dcrNumSubfilters
    assert choice["number"] > 3  # u band at airmass 2 in 0.7" seeing
    assert result.summary["config"]["dcrNumSubfilters"] == choice["number"]
    assert {"reason", "spreadPixels", "limitPixels", "modelPsfFwhm", "maxAirmass",
            "distinctConfigurations", "cap", "fraction"} <= set(choice)
    assert choice["reason"] in caplog.text
    json.dumps(result.summary)


def test_explicit_numbers_are_used_as_given(uField):
    visits, _ = uField
    auto = DcrAssembleCoadd().run(visits)
    n = auto.dcrModel.dcrNumSubfilters
    explicit = DcrAssembleCoadd(DcrAssembleConfig(dcrNumSubfilters=n)).run(visits)
    for a, b in zip(auto.dcrModel, explicit.dcrModel, strict=True):
        np.testing.assert_array_equal(a.array, b.array)  # the same model, bit for bit
    with pytest.warns(DcrWarning, match=f'"auto" would choose {n}'):
        three = DcrAssembleCoadd(DcrAssembleConfig(dcrNumSubfilters=3)).run(visits)
    assert three.dcrModel.dcrNumSubfilters == 3
    assert three.summary["subfilters"]["requested"] == 3


def test_command_line_subfilters_auto(uField, capsys):
    visits, root = uField
    out = root / "model-auto"
    assert main(["assemble", *map(str, visits), "--out", str(out), "--subfilters", "auto",
                 "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["subfilters"]["requested"] == "auto"
    assert main(["assemble", *map(str, visits), "--out", str(root / "m"), "--subfilters",
                 "several"]) == 2
    assert "--subfilters: expected a number of subfilters or auto" in capsys.readouterr().err
    path = root / "c.toml"
    path.write_text('dcrNumSubfilters = "auto"\n')
    assert main(["assemble", *map(str, visits), "--out", str(root / "m2"), "--config",
                 str(path), "-q"]) == 0
