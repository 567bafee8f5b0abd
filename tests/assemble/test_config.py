"""Tests of dcrmodel.assemble.config: defaults, validation, TOML loading and overrides."""

import json
import math

import pytest

from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.errors import DcrConfigError, DcrValueError


def test_defaults_are_the_reference_values():
    config = DcrAssembleConfig()
    # a deliberate difference: the number of subfilters is chosen from the data (issue 18);
    # until a run has chosen, the settings that follow it use the reference's 3
    assert config.dcrNumSubfilters == "auto" and config.leastNumSubfilters() == 3
    assert config.resolveMinNumIter() == 3
    assert config.resolveMaxNumIter() == 9
    assert config.convergenceThreshold == 0.001
    assert config.useConvergence is True
    assert config.resolveBaseGain() == pytest.approx(0.5)
    assert config.useProgressiveGain is True
    assert config.accelerateModel == 3
    assert config.useModelWeights is True
    assert config.modelWeightsWidth == 3
    assert config.splitSubfilters is True
    assert config.splitThreshold == 0.1
    assert config.regularizeModelIterations == 2
    assert config.regularizeModelFrequency == 4
    assert config.regularizationWidth == 2
    assert config.imageInterpOrder == 1
    assert config.doAirmassWeight is False
    assert config.convergenceMaskPlanes == ("DETECTED",)
    assert config.badMaskPlanes == ("BAD", "SAT", "NO_DATA", "EDGE", "CR")
    assert config.subregionSize == (512, 512)
    # the PSF-aware direct solver is the default; the model PSF the sharpest the inputs allow
    assert config.solver == "direct"
    assert config.usePsf is True and config.modelPsf == "sharpestInput"
    assert config.psfDamping == 3e-3


def test_resolved_values_follow_the_number_of_subfilters():
    config = DcrAssembleConfig(dcrNumSubfilters=5)
    assert config.resolveMinNumIter() == 5
    assert config.resolveMaxNumIter() == 15
    assert config.resolveBaseGain() == pytest.approx(0.25)
    # gain g weights the new solution by g/(1+g): 1/N of it, as the residual goes to N images
    g = config.resolveBaseGain()
    assert g / (1 + g) == pytest.approx(1 / 5)
    assert DcrAssembleConfig(dcrNumSubfilters=1).resolveBaseGain() == math.inf
    assert DcrAssembleConfig(baseGain=0.3).resolveBaseGain() == 0.3
    # a minimum above 3N raises the default maximum with it
    assert DcrAssembleConfig(minNumIter=12).resolveMaxNumIter() == 12


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"baseGain": 0.0}, "baseGain must be a finite number > 0"),
        ({"baseGain": -1.0}, "baseGain must be a finite number > 0"),
        ({"modelWeightsWidth": -1}, "modelWeightsWidth must be a finite number >= 0"),
        ({"regularizationWidth": -2}, "regularizationWidth must be an integer >= 0"),
        ({"regularizationWidth": 1.5}, "regularizationWidth must be an integer"),
        ({"minNumIter": 5, "maxNumIter": 3}, "minNumIter must not exceed maxNumIter"),
        ({"maxNumIter": 0}, "maxNumIter must be an integer >= 1"),
        ({"dcrNumSubfilters": 0}, "dcrNumSubfilters must be an integer >= 1"),
        ({"dcrNumSubfilters": 2.5}, "dcrNumSubfilters must be an integer >= 1"),
        ({"convergenceThreshold": -0.1}, "convergenceThreshold must be a finite number >= 0"),
        ({"convergenceThreshold": math.nan}, "convergenceThreshold must be a finite number"),
        ({"accelerateModel": 0.5}, "accelerateModel must be a finite number >= 1"),
        ({"regularizeModelIterations": 0.5}, "use 0 to disable it or a value > 1"),
        ({"regularizeModelFrequency": -4}, "regularizeModelFrequency must be a finite number"),
        ({"imageInterpOrder": 6}, "imageInterpOrder must be a spline order from 0 to 5"),
        ({"subregionSize": (0, 10)}, "subregionSize must be two integers >= 1"),
        ({"subregionSize": (10, 10, 10)}, "subregionSize must be two integers >= 1"),
        ({"subregionBuffer": -1}, "subregionBuffer must be an integer >= 0"),
        ({"solver": "magic"}, "unknown solver; choose one of iterative, direct"),
        ({"engine": "cubic"}, "unknown engine; choose one of spline, fourier"),
        ({"transferMode": "box"}, "unknown transferMode; choose one of mean, split, smear"),
        ({"convergenceMaskPlanes": ()}, "convergenceMaskPlanes must name at least one"),
        ({"badMaskPlanes": ("BAD", 3)}, "badMaskPlanes must be a list of mask plane names"),
        ({"effectiveWavelength": 480.0}, "give effectiveWavelength and bandwidth together"),
        ({"effectiveWavelength": -480.0, "bandwidth": 10.0}, "effectiveWavelength must be"),
        ({"effectiveWavelength": 480.0, "bandwidth": 0.0}, "bandwidth must be a finite number > 0"),
        ({"useConvergence": "yes"}, "useConvergence must be true or false"),
        ({"detectionThreshold": 0}, "detectionThreshold must be a finite number > 0"),
        ({"usePsf": 1}, "usePsf must be true or false"),
        ({"modelPsf": "smallest"}, "unknown modelPsf policy; choose one of sharpest"),
        ({"modelPsf": -3.0}, "modelPsf must be a policy name or a FWHM in pixels"),
        ({"modelPsf": math.inf}, "modelPsf must be a policy name or a FWHM in pixels"),
        ({"psfDamping": 0.0}, "psfDamping must be a finite number > 0"),
    ],
)
def test_out_of_range_values_are_rejected(overrides, match):
    with pytest.raises(DcrConfigError, match=match):
        DcrAssembleConfig(**overrides)
    with pytest.raises(DcrConfigError, match=match):
        DcrAssembleConfig().withOverrides(**overrides)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError, match="baseGain"):
        DcrAssembleConfig(baseGain=-1)
    assert issubclass(DcrConfigError, DcrValueError)


def test_single_names_and_sizes_are_normalised():
    config = DcrAssembleConfig(convergenceMaskPlanes="DETECTED", subregionSize=64)
    assert config.convergenceMaskPlanes == ("DETECTED",)
    assert config.subregionSize == (64, 64)
    config = DcrAssembleConfig(badMaskPlanes=["BAD", "SAT"], subregionSize=[32, 48])
    assert config.badMaskPlanes == ("BAD", "SAT")
    assert config.subregionSize == (32, 48)
    assert hash(config) == hash(DcrAssembleConfig(badMaskPlanes=("BAD", "SAT"),
                                                  subregionSize=(32, 48)))


def test_with_overrides_returns_a_checked_copy():
    config = DcrAssembleConfig()
    other = config.withOverrides(dcrNumSubfilters=4, baseGain=0.2)
    assert other.dcrNumSubfilters == 4 and other.baseGain == 0.2
    assert config.dcrNumSubfilters == "auto"  # unchanged
    with pytest.raises(DcrConfigError, match="unknown setting.*numSubfilters"):
        config.withOverrides(numSubfilters=4)


def test_to_dict_round_trips_through_json():
    config = DcrAssembleConfig(dcrNumSubfilters=4, badMaskPlanes=("BAD",), subregionSize=(40, 30))
    data = json.loads(json.dumps(config.toDict()))
    assert data["badMaskPlanes"] == ["BAD"]
    assert DcrAssembleConfig.fromDict(data) == config
    assert set(data) == set(DcrAssembleConfig.fieldNames())


def test_from_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'dcrNumSubfilters = 4\nbadMaskPlanes = ["BAD", "SAT"]\nsubregionSize = [128, 64]\n'
        "baseGain = 0.4\nuseProgressiveGain = false\n"
    )
    config = DcrAssembleConfig.fromToml(path)
    assert config.dcrNumSubfilters == 4
    assert config.badMaskPlanes == ("BAD", "SAT")
    assert config.subregionSize == (128, 64)
    assert config.baseGain == 0.4
    assert config.useProgressiveGain is False
    assert config.accelerateModel == 3  # default kept

    tabled = tmp_path / "t.toml"
    tabled.write_text("[assemble]\nmaxNumIter = 7\n[other]\nx = 1\n")
    assert DcrAssembleConfig.fromToml(tabled).maxNumIter == 7


def test_from_toml_errors(tmp_path):
    with pytest.raises(DcrConfigError, match="cannot read the configuration file"):
        DcrAssembleConfig.fromToml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("dcrNumSubfilters = = 3\n")
    with pytest.raises(DcrConfigError, match="not valid TOML"):
        DcrAssembleConfig.fromToml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("gain = 3\n")
    with pytest.raises(DcrConfigError, match=r"unknown setting\(s\) gain.*unknown.toml"):
        DcrAssembleConfig.fromToml(unknown)
    out = tmp_path / "range.toml"
    out.write_text("baseGain = -2.0\n")
    with pytest.raises(DcrConfigError, match="baseGain must be.*range.toml"):
        DcrAssembleConfig.fromToml(out)


class _FakeMask:
    planes = {"BAD": 0, "SAT": 1, "DETECTED": 5}


def test_validate_against_a_mask():
    DcrAssembleConfig().validate(mask=_FakeMask())
    config = DcrAssembleConfig(convergenceMaskPlanes=("DETECTED", "STREAK"))
    with pytest.raises(DcrConfigError, match="mask plane\\(s\\) STREAK that the mask does not"):
        config.validate(mask=_FakeMask())
