"""Tests of detector-frame visits (dcrmodel.simulate.frames and the field's detector frames).

A visit's truth is checked against an analytic rendering of a point source at the position
astropy's own WCS puts it (pixel-integrated Gaussians summed over the band's wavelength
samples) and an elliptical Gaussian galaxy's second moments against the rotation the
rotator angle implies (derived from position angles, not from the WCS code); the rotator
metadata against the zenith direction through the WCS; SIP distortion against its
definition and the files; the default configuration against the files it wrote before
detector frames existed.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings

import astropy
import astropy.units as u
import numpy as np
import pytest
import scipy
from astropy.coordinates import Angle, SkyCoord

from dcrmodel.errors import DcrConfigError, DcrTypeError, DcrValueError
from dcrmodel.fits.exposure import readExposure
from dcrmodel.image import Box
from dcrmodel.physics import calculateImageParallacticAngle, differentialRefraction
from dcrmodel.simulate.config import SimulationConfig
from dcrmodel.simulate.coverage import coverageMap
from dcrmodel.simulate.field import _Simulation, runSimulation, simulateField
from dcrmodel.simulate.frames import frameFromRecord, makeFrame
from dcrmodel.simulate.plan import makeWcs
from dcrmodel.simulate.sources import (
    GaussianProfile,
    PointProfile,
    Source,
    SourceComponent,
)
from dcrmodel.simulate.spectra import BlackbodySpectrum
from dcrmodel.warp import warpExposure


def _frameConfig(**changes):
    values = dict(
        size=64, numTraining=4, numTest=1, nights=1, numStars=6, numGalaxies=3,
        defectFraction=0.0, transientsPerTestVisit=1, detectorFrames=True,
    )
    values.update(changes)
    return SimulationConfig(**values)


def _simulation(config, seed=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _Simulation(config, seed)


def _onlySources(sim, sources):
    """Replace the simulation's catalogue (and drop its transients)."""
    sim.sources = sources
    sim.transients = {i: [] for i in range(len(sim.plan))}
    sim.frameTransients = {i: [] for i in range(len(sim.plan))}


def _bandWeights(sim, spectrum, flux):
    density = spectrum.photonDensity(sim.wavelengths) * sim.bandWeights
    return flux * density / density.sum()


def _expectedPointSource(sim, index, patchX, patchY, weights):
    """A point source on visit ``index``'s detector, drawn independently of the simulator.

    Its undistorted position and the zenith direction at the detector's centre come from a
    plain TAN WCS of the frame and astropy's horizontal frame; each wavelength's image sits
    where the (distorted) WCS puts the undistorted position moved by its refraction; the
    Gaussian seeing is transformed by the grid's local Jacobian there. Drawn by a direct
    FFT synthesis (pixel response included) on a padded grid.
    """
    info, frame = sim.visitInfos[index], sim.frames[index]
    plain = makeWcs(frame.boresight, frame.bbox, sim.config.pixelScale,
                    frame.rotation * u.deg)
    xc, yc = frame.bbox.center
    horizontal = plain.pixel_to_world(xc, yc).transform_to(info.altAzFrame())
    ends = [plain.world_to_pixel(SkyCoord(az=horizontal.az, alt=horizontal.alt + h * u.arcsec,
                                          frame=info.altAzFrame()).icrs) for h in (-0.5, 0.5)]
    vx, vy = (float(ends[1][k] - ends[0][k]) for k in (0, 1))
    dr = differentialRefraction(sim.wavelengths, sim.band.effectiveWavelength,
                                info.boresightAzAlt[1], sim.observatory,
                                info.weather).to_value(u.arcsec)
    ux, uy = (float(v) for v in plain.world_to_pixel(sim.wcs.pixel_to_world(patchX, patchY)))

    def detector(px, py):
        ra, dec = plain.all_pix2world(px, py, 0)
        return frame.wcs.all_world2pix(ra, dec, 0, tolerance=1e-12, maxiter=200)

    xs, ys = detector(ux + dr * vx, uy + dr * vy)
    sx, sy = detector(ux + np.array([0.5, -0.5, 0, 0]), uy + np.array([0, 0, 0.5, -0.5]))
    jacobian = np.array([[sx[0] - sx[1], sx[2] - sx[3]], [sy[0] - sy[1], sy[2] - sy[3]]])
    sigma = sim.psfs[index].fwhm / 2.3548200450309493
    cov = sigma**2 * jacobian @ jacobian.T
    pad = 64
    n = frame.bbox.width + 2 * pad
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    x0, y0 = frame.bbox.minX - pad, frame.bbox.minY - pad
    phases = sum(w * np.exp(-2j * np.pi * (fx * (x - x0) + fy * (y - y0)))
                 for w, x, y in zip(weights, xs, ys, strict=True))
    otf = np.exp(-2 * np.pi**2 * (cov[0, 0] * fx * fx + 2 * cov[0, 1] * fx * fy
                                  + cov[1, 1] * fy * fy))
    image = np.fft.irfft2(phases * otf * np.sinc(fx) * np.sinc(fy), s=(n, n))
    return image[pad:pad + frame.bbox.height, pad:pad + frame.bbox.width], (xs, ys)


def _dcrDisplacements(sim, index):
    """(dy, dx) of each wavelength sample: refraction along the zenith through the visit's
    undistorted grid (astropy: the altitude of the detector's centre raised by 1 arcsec)."""
    info, frame = sim.visitInfos[index], sim.frames[index]
    plain = makeWcs(frame.boresight, frame.bbox, sim.config.pixelScale,
                    frame.rotation * u.deg)
    alt = info.boresightAzAlt[1]
    dr = differentialRefraction(sim.wavelengths, sim.band.effectiveWavelength, alt,
                                sim.observatory, info.weather).to_value(u.arcsec)
    xc, yc = frame.bbox.center
    sky = plain.pixel_to_world(xc, yc).transform_to(info.altAzFrame())
    raised = SkyCoord(az=sky.az, alt=sky.alt + 0.5 * u.arcsec, frame=info.altAzFrame())
    lowered = SkyCoord(az=sky.az, alt=sky.alt - 0.5 * u.arcsec, frame=info.altAzFrame())
    x1, y1 = plain.world_to_pixel(raised.icrs)
    x0, y0 = plain.world_to_pixel(lowered.icrs)
    return np.stack([dr * (y1 - y0), dr * (x1 - x0)], axis=1)


# --------------------------------------------------------------------------------------
# The truth in a visit's own frame
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("distortion", [0.0, 0.02])
def test_point_source_truth_is_the_analytic_rendering_at_its_wcs_position(distortion):
    config = _frameConfig(
        psfProfile="gaussian", rotations=Angle(37.0, u.deg), distortion=distortion,
        offsets=[(1.3, -0.7)] * 5, transientsPerTestVisit=0,
    )
    sim = _simulation(config)
    spectrum = BlackbodySpectrum(9000.0)
    # Off the centre, where the detector's distortion moves it and changes its scale.
    star = Source(1, 30.0, 68.0, "star", "blueStar",
                  (SourceComponent(PointProfile(), spectrum, 2.0e4),))
    _onlySources(sim, [star])
    index = int(np.argmax([v.boresightAirmass for v in sim.visitInfos]))
    visit = [v for i, v in enumerate(sim.visits(None)) if i == index][0]
    frame = sim.frames[index]
    assert visit.frame is frame and visit.truthStatic.bbox == frame.bbox
    expected, (xs, ys) = _expectedPointSource(sim, index, star.x, star.y,
                                              _bandWeights(sim, spectrum, 2.0e4))
    # Not trivial: a few pixels of DCR, and (with distortion) a shift of its own.
    assert np.hypot(np.ptp(xs), np.ptp(ys)) > 2.0
    plain = makeWcs(frame.boresight, frame.bbox, config.pixelScale, 37.0 * u.deg)
    sky = sim.wcs.pixel_to_world(star.x, star.y)
    x, y = frame.wcs.all_world2pix(sky.ra.deg, sky.dec.deg, 0, tolerance=1e-12)
    xPlain, yPlain = plain.world_to_pixel(sky)
    assert (math.hypot(x - xPlain, y - yPlain) > 0.1) == (distortion != 0.0)
    truth = visit.truthStatic.image.array
    assert np.max(np.abs(truth - expected)) < 2e-5 * expected.max()


def test_galaxy_shape_turns_with_the_rotator_angle():
    rotation = 110.0
    config = _frameConfig(psfProfile="gaussian", rotations=Angle(rotation, u.deg),
                          offsetFraction=0.0)
    sim = _simulation(config, seed=4)
    spectrum = BlackbodySpectrum(5000.0)
    phi, major, minor = 20.0, 3.0, 1.2
    galaxy = Source(1, 48.0, 48.0, "galaxy", "galaxy",
                    (SourceComponent(GaussianProfile(major, minor / major, phi), spectrum,
                                     5.0e4),))
    _onlySources(sim, [galaxy])
    index = int(np.argmin([v.boresightAirmass for v in sim.visitInfos]))
    visit = [v for i, v in enumerate(sim.visits(None)) if i == index][0]
    image = visit.truthStatic.image.array
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float64)
    total = image.sum()
    xc, yc = (image * xx).sum() / total, (image * yy).sum() / total
    cxx = (image * (xx - xc) ** 2).sum() / total
    cyy = (image * (yy - yc) ** 2).sum() / total
    cxy = (image * (xx - xc) * (yy - yc)).sum() / total
    # A pixel direction at angle phi (from +x toward +y) has position angle phi - 90 deg
    # on the North-up East-left patch and rotation + phi' - 90 deg on the visit's
    # detector: the galaxy's axis turns to phi - rotation there.
    theta = math.radians(phi - rotation)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    shape = rot @ np.diag([major**2, minor**2]) @ rot.T
    sigma = sim.psfs[index].fwhm / 2.3548200450309493
    weights = _bandWeights(sim, spectrum, 1.0)
    d = _dcrDisplacements(sim, index)[:, ::-1]  # (dx, dy)
    mean = weights @ d
    dcr = (weights[:, None] * (d - mean)).T @ (d - mean)
    expected = shape + (sigma**2 + 1.0 / 12.0) * np.eye(2) + dcr
    measured = np.array([[cxx, cxy], [cxy, cyy]])
    assert measured == pytest.approx(expected, abs=2e-3 * expected.max())
    # The orientation alone, for scale: the measured major axis is within a degree.
    values, vectors = np.linalg.eigh(measured)
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
    assert (angle - (phi - rotation) + 90.0) % 180.0 - 90.0 == pytest.approx(0.0, abs=1.0)


def test_rotator_angle_and_wcs_agree():
    config = _frameConfig(numTraining=8, numTest=2)
    sim = _simulation(config, seed=5)
    rotations = [frame.rotation for frame in sim.frames]
    assert np.ptp(rotations) > 90.0  # drawn over 0-360
    for info, frame in zip(sim.visitInfos, sim.frames, strict=True):
        assert info.rotType == "SKY"
        assert info.boresightRotAngle.deg == pytest.approx(frame.rotation, abs=1e-9)
        # The detector's +y axis points at position angle `rotation` (North through East).
        xc, yc = frame.bbox.center
        centre = frame.wcs.pixel_to_world(xc, yc)
        up = frame.wcs.pixel_to_world(xc, yc + 1.0)
        assert centre.position_angle(up).deg == pytest.approx(frame.rotation % 360, abs=1e-4)
        assert centre.separation(info.boresightRaDec).arcsec < 1e-6
        # The zenith through the WCS and parallactic minus rotator angle (metadata only)
        # agree to the precession between ICRS and the apparent frame (~0.4 deg).
        throughWcs = calculateImageParallacticAngle(info, frame.wcs, frame.bbox).deg
        fromMetadata = calculateImageParallacticAngle(info).deg
        assert (throughWcs - fromMetadata + 180.0) % 360.0 - 180.0 == pytest.approx(0, abs=1.0)


def test_sip_distortion_matches_its_definition_and_round_trips():
    box = Box(0, 0, 96, 64)
    k = 0.01
    frame = makeFrame(SkyCoord(10.0 * u.deg, -35.0 * u.deg), box, 0.2, 250.0, (0.5, 0.5), k)
    plain = makeWcs(frame.boresight, box, 0.2, 250.0 * u.deg)
    xc, yc = box.center
    radius = math.hypot(box.width - 1, box.height - 1) / 2.0
    yy, xx = np.mgrid[0:64:7, 0:96:7].astype(np.float64)
    x, y = xx.ravel(), yy.ravel()
    # Pixel (x, y) is seen where the plain WCS sees (u, v) (1 + k r^2 / R^2).
    r2 = ((x - xc) ** 2 + (y - yc) ** 2) / radius**2
    ra, dec = frame.wcs.all_pix2world(x, y, 0)
    px, py = plain.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(px - (xc + (x - xc) * (1 + k * r2)),
                           py - (yc + (y - yc) * (1 + k * r2)))) < 1e-6
    corner = math.hypot(px[0] - x[0], py[0] - y[0])
    assert corner == pytest.approx(k * math.hypot(xc, yc), rel=1e-6)
    # Sky and back, through the forward polynomials (astropy iterates) ...
    bx, by = frame.wcs.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(bx - x, by - y)) < 1e-6
    # ... and through the fitted inverse ones that other readers use.
    focal = frame.wcs.sip_pix2foc(np.stack([x + 1, y + 1], axis=1), 1)
    back = frame.wcs.sip_foc2pix(focal, 1)
    assert np.max(np.abs(back - np.stack([x + 1, y + 1], axis=1))) < 1e-3
    # The manifest's record gives the same WCS.
    wcs, bbox = frameFromRecord(json.loads(json.dumps(frame.describe())))
    assert bbox == box
    assert np.allclose(wcs.all_pix2world(x, y, 0), (ra, dec), rtol=0, atol=1e-11)


def test_sip_visits_are_written_and_read_with_their_distortion(tmp_path):
    config = _frameConfig(distortion=0.02, numTraining=3, numTest=1, numStars=4,
                          numGalaxies=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = runSimulation(tmp_path / "sip", config, seed=2)
    assert manifest["detectorFrames"]["distortion"] == 0.02
    for record in manifest.visits():
        exposure = readExposure(manifest.path(record["file"]))
        wcs, bbox = frameFromRecord(record["frame"])
        assert exposure.bbox == bbox and exposure.wcs.sip is not None
        assert exposure.visitInfo.rotType == "SKY"
        assert exposure.visitInfo.boresightRotAngle.deg == pytest.approx(
            record["frame"]["rotation"])
        x = np.array([0.0, 63.0, 20.5])
        y = np.array([0.0, 63.0, 40.0])
        assert np.allclose(exposure.wcs.all_pix2world(x, y, 0), wcs.all_pix2world(x, y, 0),
                           rtol=0, atol=1e-10)
        for t in manifest.transients(record["id"]):
            fx, fy = exposure.wcs.all_world2pix(t["ra"], t["dec"], 0)
            assert (float(fx), float(fy)) == pytest.approx((t["frameX"], t["frameY"]),
                                                           abs=1e-6)


# --------------------------------------------------------------------------------------
# The field: coadd on the patch, manifest
# --------------------------------------------------------------------------------------


def test_detector_frame_field_coadd_is_on_the_patch():
    config = _frameConfig(numTraining=5, numTest=1, defectFraction=0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        field = simulateField(config, seed=7)
    assert field.coadd.bbox == Box(0, 0, 96, 96) == field.truthModel.bbox
    for visit in field.visits:
        assert visit.exposure.bbox == Box(0, 0, 64, 64)
        assert visit.frame is not None and "frame" in visit.record
    training = [v for v in field.visits if v.role == "training"]
    # NO_DATA exactly where no training visit's good pixels reach (the coverage map).
    coverage = coverageMap([v.exposure for v in training], field.coadd.wcs, field.coadd.bbox)
    noData = field.coadd.mask.getBadPixels("NO_DATA")
    assert np.array_equal(noData, coverage == 0)
    assert noData[0, 0] and noData[-1, -1] and not noData[48, 48]
    assert 0.1 < noData.mean() < 0.6 and coverage.max() == len(training)
    # The inverse-variance mean of the visits warped onto the patch: against the same mean
    # of their noiseless truths, the coadd differs by its own noise.
    weights, truths, goods = [], [], []
    for visit in training:
        good = ~visit.exposure.mask.getBadPixels()
        weights.append(1.0 / np.median(visit.exposure.variance.array[good]))
        warped = warpExposure(visit.exposure, field.coadd.wcs, field.coadd.bbox)
        goods.append(~warped.mask.getBadPixels())
        truths.append(warpExposure(visit.truth, field.coadd.wcs, field.coadd.bbox).image.array)
    w = np.array(weights)[:, None, None] * np.array(goods)
    covered = w.sum(axis=0) > 0
    expected = (w * np.array(truths)).sum(axis=0)[covered] / w.sum(axis=0)[covered]
    z = (field.coadd.image.array[covered] - expected) / np.sqrt(
        field.coadd.variance.array[covered])
    # The warp correlates neighbouring pixels' noise; the variance plane is per pixel.
    assert abs(z.mean()) < 0.05 and 0.8 < z.std() < 1.1
    assert field.coadd.psf.fwhm == pytest.approx(0.7 / 0.2, rel=1e-6)


# --------------------------------------------------------------------------------------
# Default configuration: the same files as before detector frames existed
# --------------------------------------------------------------------------------------

#: sha256 of every file of `_HASHED_CONFIG` (seed 5) written at commit a1eec3b, before
#: detector frames existed, with these library versions (other versions may round
#: differently; the test then skips).
_HASH_VERSIONS = {"numpy": "2.4.6", "scipy": "1.17.1", "astropy": "8.0.2"}
_HASHES = {
    "visits/visit_01000.fits": "e863e437fb97bcedf5b4e8da5d1677828563b19f4acaffdc4149e6f1c9bf3e18",
    "truth/visit_01000_static.fits":
        "2453299a9669b6ed10c43bdbc17007148b3aea368d73dbb360955309834ef55a",
    "visits/visit_01001.fits": "fd6d1c83899ffc4e022f0898cddb3bb49668b3c802a2fef46da9228eea3e68af",
    "truth/visit_01001_static.fits":
        "32b4164fd940bfe07060adb814e676823d0c01c286cc7ca90dc194e047f29b29",
    "visits/visit_01002.fits": "95824df04a247ba45cdaf741e45ebe7f6e4615d14b63c49f695cd4047f8e5114",
    "truth/visit_01002_static.fits":
        "643d3c7d197ca17891891b8e6a4f6e71da2864ec5b633e997291e30df3776fab",
    "visits/visit_01003.fits": "e4c60d66c0ef6f049bc978801c4a24fe3d8af3919a3d8b56cce2aef2f3370143",
    "truth/visit_01003_static.fits":
        "35920aaffe488b8da50237648aa16a05b1a0ce2ca360d74e07f7ae63dacfb497",
    "truth/visit_01003_full.fits":
        "979eb5072c2a231caf3da1d578f506b11806fcc25a4736a38e0ea3d990c8711c",
    "visits/visit_01004.fits": "4309915cc9d3f058393e66945a0b46ab25d36008906ab08d91e8a0c05616b07d",
    "truth/visit_01004_static.fits":
        "2f22977230d8194e22db8f6611cf4aef1247726b244c4bb78c53ef33c5ae2125",
    # Model files carry the model's identity (the card DCR-RUN) since the safety work;
    # without that card their bytes are the ones recorded before it.
    "truth/model/dcrCoadd_0.fits":
        "59ee0642b7058135bf9ce4154b7df908bb60f87c7e07e1f7ec6296663d602808",
    "truth/model/dcrCoadd_1.fits":
        "c6052fedce988b3612b5db6c1d5db923cea4500264292918ca6b5ceb1a5d3bd8",
    "truth/model/dcrCoadd_2.fits":
        "55f3c4c582b0d666fc3b4adda84af7fd5eeb785a523de3da04ca2b4d30ee15c9",
    "coadd.fits": "3d5902d2c35d0ba4705a71ddaf6506a674979078408d04b69d14d376f85d4a43",
    # The manifest without its elapsed time, keys sorted.
    "manifest.json": "5e3a39f68f5914a1603f7795f74b90c87a7a0e820a888bb0cc45fb39dc478178",
}
_HASHED_CONFIG = dict(size=64, numTraining=4, numTest=1, nights=1, numStars=6, numGalaxies=3,
                      defectFraction=0.4, transientsPerTestVisit=1)


def test_default_configuration_writes_the_same_files_as_before(tmp_path):
    versions = {"numpy": np.__version__, "scipy": scipy.__version__,
                "astropy": astropy.__version__}
    if versions != _HASH_VERSIONS:
        pytest.skip(f"hashes recorded with {_HASH_VERSIONS}, running {versions}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = runSimulation(tmp_path / "field", SimulationConfig(**_HASHED_CONFIG), seed=5)
    hashes = {name: hashlib.sha256(manifest.path(name).read_bytes()).hexdigest()
              for name in manifest["files"]}
    data = json.loads(manifest.path("manifest.json").read_text())
    data.pop("elapsedSeconds")
    hashes["manifest.json"] = hashlib.sha256(
        json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert hashes == _HASHES
    assert "detectorFrames" not in data and "frame" not in data["visits"][0]


# --------------------------------------------------------------------------------------
# Bad configuration values
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"detectorFrames": False, "rotations": Angle(30, u.deg)}, DcrConfigError,
         "rotations applies to detector-frame visits only"),
        ({"detectorFrames": False, "patchScale": 2.0}, DcrConfigError,
         "patchScale applies to detector-frame visits only"),
        ({"detectorFrames": False, "distortion": 0.01}, DcrConfigError,
         "distortion applies"),
        ({"detectorFrames": "yes"}, DcrTypeError, "detectorFrames must be True or False"),
        ({"patchScale": 0.5}, DcrValueError, r"patchScale must be in \[1, 4\]"),
        ({"patchScale": float("nan")}, DcrValueError, "patchScale must be finite"),
        ({"offsetFraction": 0.5}, DcrValueError, r"offsetFraction must be in \[0, 0.25\]"),
        ({"offsetFraction": -0.1}, DcrValueError, "offsetFraction"),
        ({"distortion": 0.2}, DcrValueError, r"distortion must be within \[-0.05, 0.05\]"),
        ({"rotations": 30.0}, DcrTypeError, "not a bare number"),
        ({"rotations": Angle([10, 20], u.deg)}, DcrValueError,
         "rotations has 2 angle.s. for 5 visits"),
        ({"rotations": [30 * u.deg] * 4 + [1.0]}, DcrTypeError, r"rotations\[4\]"),
        ({"offsets": [(0.0, 0.0)] * 3}, DcrValueError, "one .east, north. pair"),
        ({"offsets": [(0.0, 0.0)] * 4 + [(100.0, 0.0)]}, DcrValueError,
         "moves the detector's centre off the patch"),
        ({"offsets": [(0.0, "x")] * 5}, DcrTypeError, "must be a number in arcsec"),
    ],
)
def test_bad_frame_options_fail_before_any_work(changes, error, match):
    config = _frameConfig(**changes)
    with pytest.raises(error, match=match):
        config.validate()
