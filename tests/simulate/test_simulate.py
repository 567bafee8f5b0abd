"""Tests of dcrmodel.simulate (field, config, catalogue, plan, defects, manifest): the simulated
field, its visits and the files written.

Visits are checked against the geometry they claim (airmass from the altitude, DCR toward
the zenith given by the parallactic angle, subfilter centroids against
`dcrmodel.physics.dcr.calculateDcr`), noise against the variance plane, defects and transients
against the manifest, the coadd against its definition; runs against the folder rules and
seeded reproducibility.
"""

from __future__ import annotations

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time

from dcrmodel.errors import DcrOutputError, DcrTypeError, DcrValueError
from dcrmodel.fits.exposure import readExposure
from dcrmodel.fits.model import readDcrModel
from dcrmodel.image import Box
from dcrmodel.physics.dcr import calculateDcr
from dcrmodel.simulate.catalogue import makeCatalogue
from dcrmodel.simulate.config import SimulationConfig, VisitSpec
from dcrmodel.simulate.field import _Simulation, runSimulation, simulateField
from dcrmodel.simulate.manifest import MANIFEST_NAME, loadManifest
from dcrmodel.simulate.render import FourierSkyRenderer
from dcrmodel.simulate.seeing import AtmosphericPsf
from dcrmodel.simulate.sources import PointProfile, Source, SourceComponent
from dcrmodel.simulate.spectra import Bandpass, PowerLawSpectrum
from helpers import imageMoments


def _smallConfig(**changes):
    values = dict(
        size=96, numTraining=6, numTest=2, nights=1, numStars=12, numGalaxies=5,
        defectFraction=0.5, transientsPerTestVisit=2,
    )
    values.update(changes)
    return SimulationConfig(**values)


@pytest.fixture(scope="module")
def field():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulateField(_smallConfig(), seed=11)


def _badPixels(exposure):
    planes = exposure.mask.getPlaneBitMask(["BAD", "SAT", "CR"])
    return (exposure.mask.array & planes) != 0


def test_visits_span_airmass_on_both_sides_of_the_meridian(field):
    records = field.manifest["visits"]
    training = [v for v in records if v["role"] == "training"]
    test = [v for v in records if v["role"] == "test"]
    assert len(training) == 6 and len(test) == 2
    assert {v["side"] for v in training} == {"east", "west"}
    airmass = [v["airmass"] for v in training]
    assert min(airmass) < 1.1 and max(airmass) > 1.9
    assert all(v["airmass"] >= 1.5 for v in test)
    # Parallactic angle positive west of the meridian (primer), negative east.
    for v in records:
        assert (v["parallacticAngle"] > 0) == (v["side"] == "west")
    times = [v["mjd"] for v in records]
    assert times == sorted(times)


def test_default_plan_is_the_demo_field():
    # The demo (issue 5) needs >= 12 training visits over airmass 1.0-2.0 on both sides of
    # the meridian in g band, and held-out visits at airmass >= 1.5 with transients.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = _Simulation(SimulationConfig(), seed=0)
    assert sim.band.name == "g" and sim.config.numSubfilters == 3
    assert sim.bbox.width == sim.bbox.height == 320
    training = [(p, i) for p, i in zip(sim.plan, sim.visitInfos, strict=True)
                if p.role == "training"]
    test = [(p, i) for p, i in zip(sim.plan, sim.visitInfos, strict=True) if p.role == "test"]
    assert len(training) >= 12 and 2 <= len(test) <= 6
    airmass = [i.boresightAirmass for _, i in training]
    assert min(airmass) < 1.05 and max(airmass) > 2.0
    for side in (-1, 1):
        sideAirmass = [i.boresightAirmass for _, i in training
                       if np.sign(i.hourAngle.wrap_at(180 * u.deg).deg) == side]
        assert len(sideAirmass) >= 5 and max(sideAirmass) > 1.9
    assert all(i.boresightAirmass >= 1.5 and p.numTransients > 0 for p, i in test)
    assert len({p.night for p, _ in training}) == 2


def test_visit_info_is_consistent(field):
    for visit in field.visits:
        info = visit.exposure.visitInfo
        alt = info.boresightAzAlt[1].deg
        assert info.boresightAirmass == pytest.approx(1 / math.sin(math.radians(alt)))
        assert visit.record["airmass"] == pytest.approx(info.boresightAirmass)
        assert info.weather is not None
        assert visit.exposure.psf.fwhm == pytest.approx(0.7 / 0.2)


def test_dcr_points_to_the_zenith_given_by_the_parallactic_angle():
    # Independent of the WCS path: on a North-up, East-left image the zenith lies along
    # (dx, dy) ~ (-sin q, cos q), q from hour angle, declination and latitude.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = _Simulation(_smallConfig(), seed=2)
    for info, d in zip(sim.visitInfos, sim.displacements, strict=True):
        blueMinusRed = d[0] - d[-1]  # (dy, dx): toward the zenith
        q = info.boresightParAngle.rad
        if np.hypot(*blueMinusRed) < 0.5:
            continue  # near the zenith the direction is ill defined
        angle = math.atan2(blueMinusRed[1], blueMinusRed[0])  # atan2(dx, dy)
        expected = math.atan2(-math.sin(q), math.cos(q))
        difference = (angle - expected + math.pi) % (2 * math.pi) - math.pi
        # Precession between ICRS and the apparent frame turns it by ~0.4 deg (primer).
        assert abs(math.degrees(difference)) < 1.0


def test_subfilter_centroids_follow_calculate_dcr():
    # A flat-spectrum point source: each subfilter's light moves by the mean differential
    # refraction over the subfilter. calculateDcr gives the mean of a subfilter's edges;
    # for 3 subfilters that overestimates the bluest one by ~4 % (refraction is convex in
    # wavelength), so compare with calculateDcr on 30 narrow subfilters, 10 per ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = _Simulation(_smallConfig(), seed=2)
    index = int(np.argmax([v.boresightAirmass for v in sim.visitInfos]))
    info = sim.visitInfos[index]
    star = Source(1, 48.0, 48.0, "star", "blueStar",
                  (SourceComponent(PointProfile(), PowerLawSpectrum(0.0), 1e4),))
    renderer = FourierSkyRenderer([star], sim.bbox, sim.wavelengths, sim.bandWeights,
                                  sim.padding)
    psf = AtmosphericPsf("gaussian", 3.0, sim.band.effectiveWavelength)
    fine = np.array(calculateDcr(info, sim.wcs, sim.band.effectiveWavelength,
                                 sim.band.bandwidth, 30, bbox=sim.bbox))
    coarse = calculateDcr(info, sim.wcs, sim.band.effectiveWavelength, sim.band.bandwidth, 3,
                          bbox=sim.bbox)
    for k in range(3):
        image = renderer.render(sim.displacements[index], psf, (sim.subfilter == k) * 1.0)
        _, xc, yc, *_ = imageMoments(image)
        expected = fine[10 * k:10 * (k + 1)].mean(axis=0)
        assert (yc - 48.0, xc - 48.0) == pytest.approx(tuple(expected), abs=0.005)
        assert (yc - 48.0, xc - 48.0) == pytest.approx(coarse[k], abs=0.2)
    assert np.hypot(*coarse[0]) > 2.0  # the test is not trivial


def test_noise_matches_the_variance_plane(field):
    for visit in field.visits:
        good = ~_badPixels(visit.exposure)
        residual = visit.exposure.image.array - visit.truth.image.array
        z = residual[good] / np.sqrt(visit.exposure.variance.array[good])
        assert abs(z.mean()) < 0.02
        assert z.std() == pytest.approx(1.0, abs=0.03)


def test_defects_are_flagged_and_corrupt_the_pixels(field):
    withDefects = [v for v in field.visits if v.record["defects"] is not None]
    assert len(withDefects) == 4  # half of 8 visits
    for visit in withDefects:
        mask = visit.exposure.mask
        for plane in ("BAD", "CR", "SAT"):
            flagged = (mask.array & mask.getPlaneBitMask(plane)) != 0
            assert flagged.any(), plane
            z = (visit.exposure.image.array - visit.truth.image.array) / np.sqrt(
                visit.exposure.variance.array
            )
            assert np.median(np.abs(z[flagged])) > 5.0, plane
        column = visit.record["defects"]["badColumns"][0]["x"]
        assert np.all((mask.array[-1, column] & mask.getPlaneBitMask("BAD")) != 0)
    clean = [v for v in field.visits if v.record["defects"] is None]
    assert all(not _badPixels(v.exposure).any() for v in clean)


def test_transients_are_injected_where_the_manifest_says(field):
    transients = field.manifest["transients"]
    test = [v for v in field.visits if v.role == "test"]
    assert len(transients) == 4
    for visit in test:
        mine = [t for t in transients if t["visit"] == visit.id]
        assert len(mine) == 2 and visit.record["transients"] == [t["id"] for t in mine]
        extra = visit.truth.image.array - visit.truthStatic.image.array
        # Kolmogorov wings beyond the field's edge (transients sit >= 16 px inside) hold
        # a few 1e-3 of the flux.
        assert extra.sum() == pytest.approx(sum(t["flux"] for t in mine), rel=5e-3)
        for t in mine:
            x, y = int(round(t["x"])), int(round(t["y"]))
            # The transient's pixel holds a sizeable fraction of its flux (DCR moves it
            # by up to ~1 px at airmass 2 for a hot source; the PSF spreads it).
            assert extra[y - 2:y + 3, x - 2:x + 3].sum() > 0.4 * t["flux"]
    for visit in field.visits:
        if visit.role == "training":
            assert visit.truth is visit.truthStatic


def test_catalogue_has_blue_and_red_stars_and_galaxies_over_two_decades(field):
    sources = field.manifest["sources"]
    classes = {s["colourClass"] for s in sources}
    assert classes == {"blueStar", "redStar", "galaxy"}
    stars = [s for s in sources if s["type"] == "star"]
    blue = [s["meanWavelength"] for s in stars if s["colourClass"] == "blueStar"]
    red = [s["meanWavelength"] for s in stars if s["colourClass"] == "redStar"]
    assert max(blue) < min(red)
    assert all(3000 <= s["temperature"] <= 30000 for s in stars)
    config = _smallConfig(numStars=300, numGalaxies=100)
    catalogue = makeCatalogue(config, Box(0, 0, 96, 96), np.random.default_rng(3))
    fluxes = np.array([s.flux for s in catalogue])
    assert fluxes.max() / fluxes.min() > 100
    assert fluxes.min() >= config.starFlux[0] and fluxes.max() <= config.starFlux[1]
    galaxies = [s for s in catalogue if s.kind == "galaxy"]
    assert len(galaxies) == 100 and all(len(g.components) in (1, 2) for g in galaxies)


def test_coadd_is_an_inverse_variance_mean_of_the_training_visits(field):
    coadd = field.coadd
    training = [v for v in field.visits if v.role == "training"]
    weights = np.array([1 / np.median(v.exposure.variance.array) for v in training])
    truths = np.array([v.truth.image.array for v in training])
    goods = np.array([~_badPixels(v.exposure) for v in training])
    w = weights[:, None, None] * goods
    expected = (w * truths).sum(axis=0) / w.sum(axis=0)
    z = (coadd.image.array - expected) / np.sqrt(coadd.variance.array)
    assert abs(z.mean()) < 0.05 and z.std() == pytest.approx(1.0, abs=0.05)
    detected = (coadd.mask.array & coadd.mask.getPlaneBitMask("DETECTED")) != 0
    for s in field.manifest["sources"]:
        if s["flux"] > 2e4:
            assert detected[int(round(s["y"])), int(round(s["x"]))]
    assert 0.05 < detected.mean() < 0.9


def test_truth_model_holds_the_subfilter_light(field):
    model = field.truthModel
    assert len(model) == 3
    total = sum(image.array for image in model)
    # Some light of sources near the edges of the small field falls outside it (~0.5 %).
    assert total.sum() == pytest.approx(
        sum(s["flux"] for s in field.manifest["sources"]), rel=1e-2
    )
    zenithward = min(field.visits, key=lambda v: v.record["airmass"])
    assert total.sum() == pytest.approx(zenithward.truthStatic.image.array.sum(), rel=2e-3)
    # A blue star is brighter in the bluest subfilter than a red one, relative to its flux.
    fractions = {}
    for s in field.manifest["sources"]:
        if s["type"] != "star":
            continue
        x, y = int(round(s["x"])), int(round(s["y"]))
        parts = [m.array[y - 1:y + 2, x - 1:x + 2].sum() for m in model]
        fractions.setdefault(s["colourClass"], []).append(parts[0] / sum(parts))
    # Medians: a few stars are blended with neighbours in this crowded small field.
    assert np.median(fractions["blueStar"]) > np.median(fractions["redStar"]) + 0.1


# --------------------------------------------------------------------------------------
# Files, reproducibility and bad input
# --------------------------------------------------------------------------------------


def _run(path, config=None, seed=5, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runSimulation(path, config or _smallConfig(), seed=seed, **kwargs)


def test_written_files_and_manifest(tmp_path):
    out = tmp_path / "sim"
    steps = []
    manifest = _run(out, progress=lambda event: steps.append((event["done"], event["total"])))
    assert steps[-1][0] == steps[-1][1] == 10  # 8 visits, truth model, coadd
    assert (out / MANIFEST_NAME).is_file()
    assert sorted(manifest["files"]) == sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*.fits")
    )
    visit = manifest.visits("test")[0]
    exposure = readExposure(manifest.path(visit["file"]))
    assert exposure.visitInfo.boresightAirmass == pytest.approx(visit["airmass"])
    assert exposure.psf is not None and exposure.psf.fwhm == pytest.approx(3.5)
    assert exposure.filter.bandName == "g"
    assert manifest.path(visit["truth"]) != manifest.path(visit["truthStatic"])
    coadd = readExposure(manifest.coaddPath)
    assert coadd.visitInfo is None
    assert set(manifest["coadd"]["visits"]) == {v["id"] for v in manifest.visits("training")}
    model = readDcrModel(manifest.truthModelPath)
    assert model.dcrNumSubfilters == 3
    assert len(manifest.transients(visit["id"])) == 2
    assert not list(tmp_path.glob(".*"))  # no temporary folders left


def test_same_seed_gives_the_same_files_and_another_seed_does_not(tmp_path):
    a = _run(tmp_path / "a", seed=5)
    b = _run(tmp_path / "b", seed=5)
    c = _run(tmp_path / "c", seed=6)
    for name in a["files"]:
        assert a.path(name).read_bytes() == b.path(name).read_bytes(), name
    first = a["visits"][0]["file"]
    assert a.path(first).read_bytes() != c.path(first).read_bytes()
    strip = {"elapsedSeconds"}
    assert {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }


def test_output_folder_rules(tmp_path):
    out = tmp_path / "sim"
    first = _run(out, seed=5)
    before = first.path(first["files"][0]).read_bytes()
    with pytest.raises(DcrOutputError, match="already holds another run's simulation.*overwrite"):
        _run(out, seed=6)
    assert first.path(first["files"][0]).read_bytes() == before
    second = _run(out, seed=6, overwrite=True)
    assert second["seed"] == 6
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DcrOutputError, match="holds a dcrmodel simulation and other files"):
        _run(out, seed=7, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.fits").write_text("x")
    with pytest.raises(DcrOutputError, match="holds other files.*not a dcrmodel simulation"):
        _run(other, overwrite=True)
    assert (other / "data.fits").read_text() == "x"
    with pytest.raises(DcrOutputError, match="is a file"):
        _run(other / "data.fits")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(empty)["seed"] == 5


def test_an_interrupted_run_leaves_the_earlier_simulation(tmp_path, monkeypatch):
    import dcrmodel.fits.exposure
    import dcrmodel.simulate.field

    out = tmp_path / "sim"
    first = _run(out, seed=5)
    calls = {"n": 0}
    original = dcrmodel.fits.exposure.writeExposure

    def failing(exposure, path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        original(exposure, path)

    monkeypatch.setattr(dcrmodel.simulate.field, "writeExposure", failing)
    with pytest.raises(KeyboardInterrupt):
        _run(out, seed=6, overwrite=True)
    assert loadManifest(out)["seed"] == first["seed"]
    assert [p.name for p in tmp_path.iterdir()] == ["sim"]


def test_manifest_naming_missing_files_is_an_error(tmp_path):
    out = tmp_path / "sim"
    manifest = _run(out)
    manifest.path(manifest["files"][3]).unlink()
    with pytest.raises(DcrValueError, match="names 1 file.* that do not exist"):
        loadManifest(out)
    with pytest.raises(DcrValueError, match="no simulation manifest"):
        loadManifest(tmp_path)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(DcrValueError, match="not a dcrmodel simulation manifest"):
        loadManifest(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(numTraining=1), DcrValueError, "fewer than 2 training visits"),
        (dict(fieldDec=70 * u.deg), DcrValueError, "never above the horizon"),
        (dict(band=Bandpass.topHat(2000.0, 300.0)), DcrValueError,
         "outside the range of the refraction formula"),
        (dict(band=Bandpass.topHat(250.0, 60.0)), DcrValueError,
         "outside the range of the refraction formula"),
        (dict(starFlux=(-10.0, 1e5)), DcrValueError, "negative fluxes"),
        (dict(seeing=(-0.5, 0.9)), DcrValueError, "seeing must be positive"),
        (dict(seeing=(1.0, 0.5)), DcrValueError, "minimum exceeds the maximum"),
        (dict(nightHours=1.0, testAirmass=(2.5, 3.0)), DcrValueError,
         "airmass >= 2.5 for the held-out test visits"),
        (dict(fieldDec=-35.0), DcrTypeError, "Angle or Quantity"),
        (dict(samplesPerSubfilter=5), DcrValueError, "at least 20 wavelength samples"),
        (dict(chromaticSeeing=-2.0), DcrValueError, "chromaticSeeing"),
        (dict(visits=(VisitSpec(Time("2026-09-16T16:00:00")), VisitSpec(Time(
            "2026-09-16T04:00:00")))), DcrValueError, "below the horizon"),
        (dict(band="q"), DcrValueError, "unknown band"),
    ],
)
def test_impossible_requests_fail_before_any_work(tmp_path, changes, error, match):
    out = tmp_path / "sim"
    with pytest.raises(error, match=match):
        _run(out, _smallConfig(**changes))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_explicit_visits_and_variable_chromatic_seeing():
    specs = (
        VisitSpec(Time("2026-09-16T01:30:00"), seeing=0.6),
        VisitSpec(Time("2026-09-16T04:40:00"), seeing=1.1),
        VisitSpec(Time("2026-09-16T07:30:00"), role="test", seeing=0.8, numTransients=1),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = simulateField(
            _smallConfig(visits=specs, chromaticSeeing=-0.2, psfProfile="moffat",
                         defectFraction=0.0, origin=(1000, 2000)),
            seed=1,
        )
    seeing = [v.record["seeing"] for v in result.visits]
    assert seeing == [0.6, 1.1, 0.8]
    assert [v.role for v in result.visits] == ["training", "training", "test"]
    assert result.visits[0].exposure.psf.alpha == -0.2
    assert len(result.manifest["transients"]) == 1
    # The truth model is seen through the sharpest training seeing.
    assert result.truthModel.psf.fwhm == pytest.approx(0.6 / 0.2)
    east, west = result.visits[0].record["side"], result.visits[2].record["side"]
    assert {east, west} == {"east", "west"}
    # A field away from the parent origin: sources, transients and images in parent pixels.
    exposure = result.visits[2].exposure
    assert exposure.bbox == Box(1000, 2000, 96, 96)
    transient = result.manifest["transients"][0]
    x, y = int(round(transient["x"])), int(round(transient["y"]))
    extra = result.visits[2].truth.image[Box(x - 2, y - 2, 5, 5)].array - (
        result.visits[2].truthStatic.image[Box(x - 2, y - 2, 5, 5)].array
    )
    assert extra.sum() > 0.4 * transient["flux"]
    sky = exposure.wcs.pixel_to_world(transient["x"], transient["y"])
    assert (sky.ra.deg, sky.dec.deg) == pytest.approx((transient["ra"], transient["dec"]))
